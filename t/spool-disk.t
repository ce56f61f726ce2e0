#!/usr/bin/perl
# What the drainer finds on disk, however much and however damaged: 1,100
# one-record segments drained in order with few files open, the recovery
# ended only once all of them are delivered; a corrupt record, a run of
# zero bytes and a record too large to read passed over with the records
# after them delivered, the bad bytes quarantined and counted, and what
# webhook-spool list says of them; an event too large for the spool refused
# with 413 before it is answered 200, and nginx -t's warning; a trickle of
# events during an outage kept in one segment, not one file each; a large
# batch leaves no large buffer behind; webhook_spool "" and too long a path
# refused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;
use WebhookSpool;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-spool-disk-59e1';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TOKENS = { 'webhook.tokens' => "$TOKEN\n" };

my $redis = start_redis();

sub conf {
    my (%o) = @_;
    return 'webhook_redis ' . $redis->addr . ";\n"
        . "webhook_redis_connect_timeout 1s;\nwebhook_redis_timeout 1s;\n"
        . "webhook_spool %%PREFIX%%/spool;\n"
        . "server {\n listen 127.0.0.1:%%PORT%%;\n"
        . receive_location($o{body} ? (max_body => $o{body}) : ())
        . " location = /status { webhook_status; }\n"
        . "}\n";
}

# a prefix whose spool holds the segments given, as [name, bytes] pairs,
# owned by the workers' user
sub prefix_with {
    my (@files) = @_;
    my $dir = WebhookTest::make_dir('spool-disk');
    mkdir "$dir/spool" or die "mkdir: $!";
    for my $f (@files) {
        my $path = spool_segment_name("$dir/spool", '{webhook}', $f->[0], $f->[1]);
        write_file($path, $f->[2], 0600);
    }
    if ($> == 0) {
        my ($uid, $gid) = (getpwnam('nobody'))[2, 3];
        chown $uid, $gid, "$dir/spool", glob("$dir/spool/*");
    }
    return $dir;
}

sub status { $_[0]->request('GET', '/status', {}, undef, timeout => 10)->{json} || {} }

sub delivered {
    return map { $_->{event_id} } reverse envelopes($redis);     # oldest first
}

sub spool_files { my ($ng) = @_; return map { s{.*/}{}r } glob $ng->path('spool') . '/*.seg' }

# the worker's open files in the spool directory
sub open_segments {
    my ($ng) = @_;
    my $n = 0;
    for my $w ($ng->workers) {
        for my $fd (glob "/proc/$w/fd/*") {
            my $to = readlink $fd // next;
            $n++ if $to =~ /\.seg\z/;
        }
    }
    return $n;
}

# ------------------------------------------- 1,100 one-record segments

{
    my $base = spool_first_seq();
    # in the order of a directory listing, not of the numbers: writers 1..3
    my @files = map { [$base + $_, 1000 + $_ % 3,
        spool_record(seq => $base + $_, id => "s$_", envelope => spool_envelope($_))] } 1 .. 1100;
    my $dir = prefix_with(@files);
    $redis->flushall;
    my $ng = WebhookTest::Nginx->new(dir => $dir, workers => 1, files => $TOKENS, http => conf());
    $ng->start;

    my ($most_open, $llen_at_end) = (0, undef);
    my $done = wait_until(sub {
        my $open = open_segments($ng);
        $most_open = $open if $open > $most_open;
        my $st = status($ng);
        if (!defined $llen_at_end && defined $st->{spool} && !$st->{spool}{recovering}) {
            $llen_at_end = $redis->llen('{webhook}:queue:medium');
        }
        return defined $llen_at_end && $redis->llen('{webhook}:queue:medium') == 1100;
    }, timeout => 120, interval => 0.02);
    ok($done, '1,100 one-record segments found at start: all drained');
    is($llen_at_end, 1100, 'the recovery ends only once all 1,100 are in Redis');
    my @got = delivered();
    is_deeply(\@got, [1 .. 1100], '... delivered in the order of their sequence numbers')
        or diag 'first out of order: ' . (map { $got[$_ - 1] == $_ ? () : "$_ => $got[$_ - 1]" } 1 .. @got)[0];
    cmp_ok($most_open, '<=', 64, "at most 64 segments open at once (seen: $most_open)");
    ok(wait_until(sub { !spool_files($ng) }, timeout => 30), 'the drained segments are removed');
    like($ng->error_log, qr/the spool found at start is drained/, 'the end of the recovery is logged');
    diag "1,100 one-record segments: most open at once $most_open, in Redis when recovery ended "
        . ($llen_at_end // 'never') . ', order ' . (join(',', @got) eq join(',', 1 .. 1100) ? 'kept' : 'broken');
    $ng->stop;
}

# ------------------------------------------ corrupt records on disk

{
    my $base = spool_first_seq();
    my $pad = 4000;
    # 600 records of 4 KB in one segment, one byte flipped in record 3
    my @recs = map { spool_record(seq => $base + $_, id => "c$_", envelope => spool_envelope("c$_", $pad)) } 1 .. 600;
    substr($recs[2], 200, 1) = chr(ord(substr($recs[2], 200, 1)) ^ 0x20);
    # a segment of 28, one byte flipped in record 23, near the end
    my @near = map { spool_record(seq => $base + 1000 + $_, id => "n$_", envelope => spool_envelope("n$_", 100)) } 1 .. 28;
    substr($near[22], 60, 1) = chr(ord(substr($near[22], 60, 1)) ^ 0x01);
    # 20 MB of zero bytes between records; a record header that claims 80 MB
    my @zero = (spool_record(seq => $base + 2001, id => 'z1', envelope => spool_envelope('z1')),
        "\0" x (20 * 1024 * 1024),
        spool_record(seq => $base + 2002, id => 'z2', envelope => spool_envelope('z2')),
        'WHS1' . pack('VV', 0, 80 * 1024 * 1024) . ('y' x 5000),
        spool_record(seq => $base + 2003, id => 'z3', envelope => spool_envelope('z3')));
    my $dir = prefix_with([$base + 1, 'w1', join '', @recs],
        [$base + 1001, 'w2', join '', @near], [$base + 2001, 'w3', join '', @zero]);
    # and a directory with a segment's name
    mkdir spool_segment_name("$dir/spool", '{webhook}', $base, 'dir') or die "mkdir: $!";

    my ($rc, $out) = WebhookTest::run_cmd(["$FindBin::Bin/../scripts/webhook-spool", 'list',
        "$dir/spool"], timeout => 60);
    is($rc, 0, 'webhook-spool list: a directory with a segment\'s name is passed over') or diag $out;
    like($out, qr/^segment\s+\{webhook\}\s+599\s+\d+\s+\d+\s/m,
        '... the segment with one flipped byte: 599 records, and bytes that are no record') or diag $out;
    like($out, qr/^segment\s+\{webhook\}\s+3\s+\d+\s+2\d{7}\s/m,
        '... the segment with 20 MB of zeros: its 3 records') or diag $out;
    $redis->flushall;
    my $ng = WebhookTest::Nginx->new(dir => $dir, workers => 1, files => $TOKENS, http => conf());
    $ng->start;

    my @want = ((map { "c$_" } grep { $_ != 3 } 1 .. 600), (map { "n$_" } grep { $_ != 23 } 1 .. 28),
        qw(z1 z2 z3));
    ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') >= @want }, timeout => 60),
        'every record around the damaged ones is delivered: ' . scalar(@want));
    my @got = delivered();
    is_deeply(\@got, \@want, '... once each, in order') or diag "got " . scalar(@got);
    my $res = $ng->request('POST', $R, \%H, json_encode({ event_id => 'after', model => 'x.y',
        record_id => 1, event => 'write' }), timeout => 10);
    is($res->{status}, 200, 'a new event is answered 200');
    ok(wait_until(sub { (delivered())[-1] eq 'after' }, timeout => 20), '... and delivered');
    my $st = status($ng);
    ok(wait_until(sub { !status($ng)->{spool}{recovering} }, timeout => 20), 'the recovery ends');
    my $log = $ng->error_log;
    my @bad = $log =~ /\[error\].*webhook: (\d+) bytes of the spool's segment "[^"]+" at offset \d+ are no record: quarantined/g;
    is(scalar @bad, 4, 'each damaged run logged at error level with its segment and offset') or diag $log;
    my $q = status($ng)->{queues}{'{webhook}'}{spool} || {};
    cmp_ok($q->{corrupt_bytes} // 0, '>=', 20 * 1024 * 1024, 'status: the bytes passed over (corrupt_bytes)');
    my $prom = $ng->request('GET', '/status?format=prometheus', {}, undef, timeout => 10)->{body} // '';
    like($prom, qr/^nginx_webhook_spool_corrupt_bytes_total\{queue="\{webhook\}"\} [1-9]\d*$/m,
        'Prometheus: nginx_webhook_spool_corrupt_bytes_total');
    my @q = glob $ng->path('spool') . '/*.corrupt';
    is(scalar @q, 1, 'the bad bytes are kept in a .corrupt file') or diag join ' ', glob $ng->path('spool') . '/*';
    ok(wait_until(sub { spool_files($ng) == 1 }, timeout => 30), 'the segments are removed once drained');
    like($log, qr/\[warn\].*webhook: "[^"]+\.dir\.seg" in the spool is not a file: ignored/,
        'a directory with a segment\'s name is ignored, and said so');
    diag sprintf 'corrupt records: %d of 600 + %d of 28 + %d of 3 delivered, %d bytes quarantined',
        scalar(grep { /^c/ } @got), scalar(grep { /^n/ } @got), scalar(grep { /^z/ } @got),
        $q->{corrupt_bytes} // 0;
    $ng->stop;
}

# ------------------------------------ an event too large for the spool

{
    my ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:1;\nwebhook_spool \"\";\n"
        . "server { listen 127.0.0.1:%%PORT%%;\n" . receive_location() . "}\n", files => $TOKENS);
    isnt($rc, 0, 'nginx -t: webhook_spool "" is refused');
    like($out, qr/"webhook_spool" needs a directory, or off/, '... saying what it needs');
    ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:1;\nwebhook_spool /" . ('d' x 4000) . ";\n"
        . "server { listen 127.0.0.1:%%PORT%%;\n" . receive_location() . "}\n", files => $TOKENS);
    isnt($rc, 0, 'nginx -t: a spool path too long for its file names is refused');
    like($out, qr/the spool's path is too long \(4001 bytes, at most \d+\)/, '... saying so');
}

{
    my ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:1;\nwebhook_spool %%PREFIX%%/spool;\n"
        . "server { listen 127.0.0.1:%%PORT%%;\n" . receive_location(max_body => '100m') . "}\n",
        files => $TOKENS);
    is($rc, 0, 'nginx -t: client_max_body_size 100m with the spool is accepted') or diag $out;
    like($out, qr/\[warn\].*client_max_body_size 100m .*the spool keeps events up to \d+m/,
        '... with a warning that larger events cannot be spooled');

    $redis->flushall;
    my $ng = start_nginx(workers => 1, files => $TOKENS, http => conf(body => '100m'));
    $redis->stop;
    my $big = json_encode({ event_id => 'huge', model => 'ir.attachment', record_id => 1,
        event => 'create', values => { datas => 'A' x (65 * 1024 * 1024) } });
    my $res = $ng->request('POST', $R, \%H, $big, timeout => 60);
    is_json_error($res, 413, 'too_large', 'Redis down: a 65 MB event is refused with 413, not spooled');
    like($res->{json}{message} // '', qr/spool/, '... saying that the spool cannot keep it');
    my @ok = map { $ng->request('POST', $R, \%H, json_encode({ event_id => "after-$_", model => 'x.y',
        record_id => $_, event => 'write' }), timeout => 10) } 1 .. 3;
    is_deeply([map { $_->{json}{status} // '' } @ok], [('spooled') x 3], 'the next events are spooled');
    $redis->start;
    ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') == 3 }, timeout => 20),
        '... and delivered once Redis is back');
    is_deeply([delivered()], [map { "after-$_" } 1 .. 3], '... in order');
    $ng->stop;
}

# --------------------------- a trickle during an outage: one segment

{
    $redis->flushall;
    my $ng = start_nginx(workers => 1, files => $TOKENS, http => conf());
    $redis->stop;
    for my $i (1 .. 4) {
        my $res = $ng->request('POST', $R, \%H, json_encode({ event_id => "t$i", model => 'x.y',
            record_id => $i, event => 'write' }), timeout => 10);
        is($res->{json}{status}, 'spooled', "trickle: event $i spooled");
        sleep 1.3 if $i < 4;          # longer than a writer's idle time was
    }
    my @f = spool_files($ng);
    is(scalar @f, 1, 'four events 1.3 s apart: one segment, not one file each') or diag "@f";
    $redis->start;
    ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') == 4 }, timeout => 20), '... delivered');
    $ng->stop;
}

# -------------------------- a large batch leaves no large buffer behind

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = (read_file("/proc/$pid/status") // '') =~ /^VmRSS:\s+(\d+)/m;
    return $kb // 0;
}

SKIP: {
    skip 'the RSS of a worker under valgrind or ASan says nothing of its buffers', 2
        if slow_nginx() || ($ENV{NGINX_BIN} // '') =~ /asan/;
    $redis->flushall;
    # glibc gives back what is freed (no dynamic mmap threshold): the RSS
    # then shows what the worker keeps
    local $ENV{MALLOC_MMAP_THRESHOLD_} = 128 * 1024;
    my $ng = start_nginx(workers => 1, files => $TOKENS, http => conf(body => '32m'));
    my ($worker) = $ng->workers;
    my $batch = json_encode({ batch => JSON::PP::true(), events => [ map { { event_id => "big-$_",
        model => 'x.y', record_id => $_, event => 'write', data => { n => 'v' x 100_000 } } } 1 .. 120 ] });
    $ng->request('POST', $R, \%H, $batch, timeout => 30);     # warm up: Redis up
    my $before = rss_kb($worker);
    $redis->stop;
    my $res = $ng->request('POST', $R, \%H, $batch =~ s/big-/bag-/gr, timeout => 60);
    is($res->{json}{status}, 'spooled', 'a batch of 12 MB spooled');
    $redis->start;
    ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') >= 120 }, timeout => 30), '... and drained');
    sleep 1.5;
    my $grown = rss_kb($worker) - $before;
    cmp_ok($grown, '<', 6 * 1024, "the worker keeps no buffer of its size (RSS grew by $grown KB)");
    $ng->stop;
}

done_testing;
