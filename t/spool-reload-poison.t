#!/usr/bin/perl
# The spool through reloads and graceful quits, while it takes events and
# while it drains: nothing answered 200 is lost, nothing doubled.  A poison
# record (Redis refuses it for good: WRONGTYPE) is quarantined after a few
# tries, counted and logged, and the queue goes on; scripts/webhook-spool
# lists the spool, shows the quarantined record and gives it back to the
# drainer once the cause is gone.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-spool-reload-5e1a';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TOOL = "$FindBin::Bin/../scripts/webhook-spool";
my $CLIENTS = slow_nginx() ? 3 : 6;

my $redis = start_redis(extra => [qw(--appendonly yes --appendfsync always)]);
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => '1s', workers => 2,
    http => "webhook_redis_connect_timeout 1s;\nwebhook_spool %%PREFIX%%/spool;\n",
    server => "        location = /status { webhook_status; }\n");
my $spool = $ng->path('spool');
my %acked;

sub body {
    my ($id, $prio) = @_;
    return json_encode({ event_id => $id, model => 'sale.order', record_id => 9,
        event => 'write', priority => $prio // 'medium' });
}

sub load {
    my ($name, $seconds, $during) = @_;
    my $t0 = time;
    my ($recs, $bad) = run_clients(
        n => $CLIENTS,
        dir => $ng->path("res-$name"),
        timeout => $seconds + 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20, retry_closed => 1);
            my ($i, @r) = (0);
            while (time - $t0 < $seconds) {
                my $id = "$name-$c-" . ++$i;
                push @r, WebhookLoad::Client->record($id, $cl->post($R, \%H, body($id)));
                sleep 0.002;
            }
            return @r;
        },
        while_running => $during,
    );
    is_deeply($bad, [], "$name: the clients finished");
    my @not = grep { $_->{status} != 200 } @$recs;
    is(scalar @not, 0, "$name: every one of " . scalar(@$recs) . ' events answered 200')
        or diag join "\n", map { "$_->{id}: $_->{status} " . ($_->{error} // '') } @not[0 .. 4];
    $acked{ $_->{id} } = 1 for grep { $_->{status} == 200 } @$recs;
}

sub spool_events {
    my $j = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
    return $j->{queues}{'{webhook}'}{spool}{events} // -1;
}

sub check_delivered {
    my ($name) = @_;
    my (%in, @twice);
    for my $e (envelopes($redis)) {
        my $id = $e->{event_id} // next;
        push @twice, $id if $in{$id}++;
    }
    my @lost = grep { !$in{$_} } sort keys %acked;
    is(scalar @lost, 0, "$name: none of the " . scalar(keys %acked) . ' events answered 200 lost')
        or diag "lost: @lost[0 .. 9]\n" . join "\n", grep { /webhook|exited|alert/ && !/keepalive|\[info\]/ }
            split /\n/, $ng->error_log;
    is(scalar @twice, 0, "$name: none doubled");
}

# 1. reloads while spooling, then while draining
$redis->stop;
load('reload-spooling', 3, sub { sleep 1; $ng->reload; sleep 1; $ng->reload });
$redis->start;
load('reload-draining', 2, sub {
    wait_until(sub { $redis->llen('{webhook}:queue:medium') > 0 }, timeout => 10, interval => 0.01);
    $ng->reload;
});
ok(wait_until(sub { spool_events() == 0 && !(() = glob "$spool/*.seg") }, timeout => 30),
    'the spool drains after the reloads');
check_delivered('reloads');

# 2. a graceful quit while spooling: what was answered is on disk
$redis->stop;
load('quit-spooling', 2, undef);
ok($ng->stop(timeout => 20), 'nginx -s quit with the spool holding events: graceful');
ok(scalar(() = glob "$spool/*.seg"), 'the segments stay for the next start');
$ng->start;
$redis->start;
# and a graceful quit while it drains
ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') > 0 }, timeout => 15, interval => 0.01),
    'the drain started');
ok($ng->stop(timeout => 20), 'nginx -s quit while the spool drains: graceful');
$ng->start;
ok(wait_until(sub { spool_events() == 0 && !(() = glob "$spool/*.seg") }, timeout => 30),
    'after the next start the spool drains');
check_delivered('quit');

# 3. a poison record: the low list is a string, LPUSH gets WRONGTYPE
$redis->cli('SET', '{webhook}:queue:low', 'not a list');
my $res = $ng->request('POST', $R, \%H, body('poison-1', 'low'), timeout => 20);
is($res->{status}, 200, 'an event Redis refuses for good: 200');
is($res->{json}{status}, 'spooled', '... spooled');
$res = $ng->request('POST', $R, \%H, body('after-poison', 'high'), timeout => 20);
is($res->{json}{status}, 'spooled', 'the next event of the queue goes behind it');
ok(wait_until(sub { $redis->llen('{webhook}:queue:high') == 1 }, timeout => 20),
    'the queue goes on: the next event is delivered once the poison one is set aside');
my $st = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
is($st->{queues}{'{webhook}'}{spool}{quarantined}, 1, 'status: 1 quarantined');
like($ng->error_log, qr/redis refused the spooled event "[0-9a-f]+" of queue "\{webhook\}" 3 times \(WRONGTYPE/,
    'the quarantine is logged, with the reason');
my $qfile = "$spool/{webhook}.quarantine";
ok(-s $qfile, 'the record is in {webhook}.quarantine');
like(read_file("$qfile.txt") // '', qr/WRONGTYPE/, '... its reason in {webhook}.quarantine.txt');

# the tool
my ($rc, $out) = WebhookTest::run_cmd([$TOOL, 'list', $spool], timeout => 20);
is($rc, 0, 'webhook-spool list');
like($out, qr/^quarantine\s+\{webhook\}\s+1\s/m, '... shows the quarantined record') or diag $out;
($rc, $out) = WebhookTest::run_cmd([$TOOL, 'show', $qfile], timeout => 20);
my $rec = json_decode((split /\n/, $out)[0]) || {};
is($rec->{envelope}{event_id}, 'poison-1', 'webhook-spool show: the envelope');
is($rec->{list}, '{webhook}:queue:low', '... its list');
$redis->cli('DEL', '{webhook}:queue:low');
($rc, $out) = WebhookTest::run_cmd([$TOOL, 'requeue', $spool, '{webhook}'], timeout => 20);
is($rc, 0, 'webhook-spool requeue') or diag $out;
ok(wait_until(sub { $redis->llen('{webhook}:queue:low') == 1 }, timeout => 20),
    'the requeued event is delivered');
ok(!-e $qfile, 'the quarantine file is gone');

unlike($ng->error_log, qr/\[alert\]|exited on signal/, 'no alert, no crash');

done_testing;
