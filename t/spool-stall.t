#!/usr/bin/perl
# A stalled disk under the spool (every fdatasync of the worker delayed by
# strace's fault injection), Redis away: a request whose write is in flight
# past the spool's 10 s wait gets 503, and its event may still be delivered
# (at least once, as the docs say); one whose records wait behind that
# write gets 503 and its records are taken back, never delivered; one whose
# write cannot be posted to the thread pool (its queue full) gets 503 at
# once, and its records are taken back too.  The answer says what happens.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;

require_module();

my $strace = -x '/usr/bin/strace' ? '/usr/bin/strace' : undef;
cannot_run('needs strace and root (fault injection into nginx\'s fdatasync)')
    if !$strace || $> != 0;

my $TOKEN = 'tok-spool-stall-60aa';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");

my $redis = start_redis();
my $loc = join '', map {
    receive_location(path => "/q$_", extra => "webhook_queue \"{$_}\";")
} qw(a b c);
my $ng = start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
    main => "thread_pool spool threads=1 max_queue=1;\n",
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "webhook_redis_connect_timeout 1s;\nwebhook_redis_timeout 1s;\n"
        . "webhook_spool %%PREFIX%%/spool thread_pool=spool;\n"
        . "server {\n listen 127.0.0.1:%%PORT%%;\n$loc"
        . " location = /status { webhook_status; }\n}\n");
$redis->stop;

sub event { json_encode({ event_id => $_[0], model => 'x.y', record_id => 1, event => 'write',
    data => { note => 'n' x 2000 } }) }

# post in the background: returns a sub that waits for the answer
sub bg_post {
    my ($path, $id) = @_;
    my $file = $ng->path("answer-$id");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $res = $ng->request('POST', $path, \%H, event($id), timeout => 40);
        write_file($file, sprintf("%d %.1f %s", $res->{status}, $res->{elapsed} // 0,
            $res->{body} // ''));
        POSIX::_exit(0);
    }
    return sub {
        waitpid($pid, 0);
        my ($status, $elapsed, $body) = split / /, read_file($file) // '0 0 ', 3;
        return { status => $status, elapsed => $elapsed, json => json_decode($body) };
    };
}

# every fdatasync of the worker (its thread pool's) waits 12 s
my ($worker) = $ng->workers;
my $tracer = fork // die "fork: $!";
if (!$tracer) {
    open STDOUT, '>', $ng->path('strace.log');
    open STDERR, '>&', \*STDOUT;
    exec $strace, '-f', '-p', $worker, '-e', 'trace=fdatasync',
        '-e', 'inject=fdatasync:delay_enter=12000000' or POSIX::_exit(127);
}
ok(wait_until(sub { (read_file($ng->path('strace.log')) // '') =~ /attached/ }, timeout => 10),
    'strace attached to the worker (fdatasync delayed by 12 s)')
    or diag read_file($ng->path('strace.log'));
sleep 0.5;

my $a1 = bg_post('/qa', 'a1');          # its write stalls in fdatasync
sleep 1;
my $a2 = bg_post('/qa', 'a2');          # waits behind it
sleep 0.3;
my $b1 = bg_post('/qb', 'b1');          # posted: waits in the pool's queue
sleep 0.3;
my $c1 = bg_post('/qc', 'c1');          # the pool's queue is full

my $c = $c1->();
is($c->{status}, 503, 'a write the thread pool cannot take: 503');
cmp_ok($c->{elapsed}, '<', 5, "... at once ($c->{elapsed} s), not after the wait");
is($c->{json}{error}, 'unavailable', '... "unavailable"');

my $r2 = $a2->();
is($r2->{status}, 503, 'records waiting behind a stalled write: 503 after the spool\'s wait');
my $r1 = $a1->();
is($r1->{status}, 503, 'a write stalled past the wait: 503');
$b1->();

kill 'TERM', $tracer;
waitpid($tracer, 0);

like($ng->error_log, qr/the spool did not sync the event in time \(its write goes on: it may still be delivered\)/,
    'the log says that a stalled write goes on');

# the next event of that queue takes no record of the refused one along
# (once the pool's queue is free again: b1's write, waiting, has begun)
ok(wait_until(sub { opendir(my $d, $ng->path('spool')) or return 0;
                    grep { /^\{b\}\..*\.seg\z/ } readdir $d }, timeout => 20),
    'the write that waited in the pool\'s queue goes on');
sleep 0.5;
my $c2 = $ng->request('POST', '/qc', \%H, event('c2'), timeout => 20);
is($c2->{json}{status}, 'spooled', 'the disk back: the next event of that queue is spooled')
    or diag dump_res($c2);

$redis->start;
ok(wait_until(sub {
    my $st = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
    return !grep { ($_->{spool}{events} // 1) != 0 } values %{ $st->{queues} || {} };
}, timeout => 40), 'the spool drains once the disk and Redis are back');
my %in = map { ($_->{event_id} // '') => 1 } map { envelopes($redis, $_) } qw({a} {b} {c});
ok(!$in{a2}, 'the records taken back after the wait are not delivered');
ok(!$in{c1}, 'the records of the write that could not be posted are not delivered');
ok($in{c2}, '... the next one is');
note 'delivered after a 503: ' . join(' ', grep { $in{$_} } qw(a1 b1)) . ' (writes that went on)';

# max_size counts what every writer holds, written or not
$ng->stop;
$redis->flushall;
$ng = start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "webhook_redis_connect_timeout 1s;\nwebhook_redis_timeout 1s;\n"
        . "webhook_spool %%PREFIX%%/spool max_size=3000;\n"
        . "server {\n listen 127.0.0.1:%%PORT%%;\n$loc}\n");
$redis->stop;
($worker) = $ng->workers;
$tracer = fork // die "fork: $!";
if (!$tracer) {
    open STDOUT, '>', $ng->path('strace.log');
    open STDERR, '>&', \*STDOUT;
    exec $strace, '-f', '-p', $worker, '-e', 'trace=fdatasync',
        '-e', 'inject=fdatasync:delay_enter=3000000' or POSIX::_exit(127);
}
ok(wait_until(sub { (read_file($ng->path('strace.log')) // '') =~ /attached/ }, timeout => 10),
    'max_size=3000: strace attached again (fdatasync delayed by 3 s)');
sleep 0.5;
my $m1 = bg_post('/qa', 'm1');          # about 2.3 KB, in flight
sleep 1;
my $m2 = $ng->request('POST', '/qb', \%H, event('m2'), timeout => 20);
is($m2->{status}, 503, 'a second queue\'s event while the first one\'s write is in flight: 503') or diag dump_res($m2);
like($m2->{json}{message} // '', qr/spool is full/, '... the spool is full: the bytes in flight count');
is($m1->()->{status}, 200, 'the first one is answered 200 once written');
kill 'TERM', $tracer;
waitpid($tracer, 0);

done_testing;
