#!/usr/bin/perl
# A hostile or impersonated Redis (t/lib/WebhookPeer.pm: it answers the
# handshake, then the enqueue script with bytes no Redis sends) must not
# make a worker allocate what the peer only announces: an array header of
# 10^8 elements (12 bytes that made hiredis 0.14 reserve 800 MB, and free
# it element by element on the event loop), a reply of more small elements
# than any the module asks for (each a reply object of its own), a bulk
# string or a line that never ends.  The reply is refused at its
# header, the connection closed with a clear log line, the request
# answered 503 at once (not at webhook_redis_timeout), the worker's
# address space does not grow, and the worker goes on serving.  And the
# bounds fit the largest replies the module asks for: a batch of
# webhook_batch_max events, and its duplicates, from a real Redis.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;
use WebhookPeer;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-hostile-5c2e81';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { json_encode({ event_id => 'h-' . ++$n, model => 'res.partner', record_id => 1, event => 'write' }) }

sub webhook_nginx {
    my ($addr, %o) = @_;
    return start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
        http => "webhook_redis $addr;\nwebhook_redis_timeout " . ($o{timeout} // '10s') . ";\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low', max_body => '4m', extra => $o{extra} // '')
            . "        location = /ping { return 200 \"pong\\n\"; }\n"
            . "    }\n");
}

# the worker's peak address space, in kB
sub vm_peak {
    my ($pid) = @_;
    my $st = WebhookTest::read_file("/proc/$pid/status") // '';
    return $st =~ /^VmPeak:\s+(\d+)/m ? $1 : 0;
}

# a stream of $total bytes of $byte, 64 KiB a call, until the module closes
sub stream {
    my ($head, $total, $byte) = @_;
    my $sent = -1;
    my $chunk = $byte x 65536;
    return sub {
        my ($s) = @_;
        my $out = $sent < 0 ? $head : $chunk;
        my $w = syswrite($s, $out);
        return 0 unless $w;
        $sent += $sent < 0 ? 1 : $w;
        return $sent < $total;
    };
}

my @cases = (
    [ 'an array of 10^8 elements', sub { "*100000000\r\n" },
      qr/an array of 100000000 elements/ ],
    [ 'a reply of 2^20 elements, in arrays of 64', sub { "*16384\r\n" . (("*64\r\n" . (":1\r\n" x 64)) x 16384) },
      qr/more than \d+ elements in one reply/ ],
    [ 'a bulk string of 10^8 bytes, sent', sub { stream("\$100000000\r\n", 100_000_000, 'x') },
      qr/a bulk string of 100000000 bytes/ ],
    [ 'an error line that never ends', sub { stream("-ERR ", 100_000_000, 'x') },
      qr/a line longer than \d+ bytes/ ],
    [ 'a RESP3 map (never asked for)', sub { "%1\r\n+a\r\n+b\r\n" },
      qr/a byte 0x25 where a reply starts/ ],
);

for my $case (@cases) {
    my ($name, $payload, $why) = @$case;
    subtest $name => sub {
        my $peer = WebhookPeer->new(answer => sub {
            my ($args) = @_;
            return $args->[0] =~ /^EVAL/i ? $payload->() : "+OK\r\n";
        });
        my $ng = webhook_nginx($peer->addr);
        my ($worker) = $ng->workers;
        ok(wait_until(sub { $ng->error_log =~ /webhook: connected to redis at/ }, timeout => 10),
            'the handshake is done') or diag $ng->error_log;
        my $before = vm_peak($worker);

        my $res = $ng->request('POST', $R, \%H, body(), timeout => 30);
        is_json_error($res, 503, 'unavailable', 'the event: 503');
        my $log = $ng->error_log;
        like($log, qr/\[error\].*webhook: redis at 127\.0\.0\.1:\d+ sent a reply past the bounds \($why[^)]*\), closing the connection/,
            'the reply is refused at its header, the log says why')
            or diag join "\n", grep { /webhook/ } split /\n/, $log;
        unlike($log, qr/webhook: redis did not acknowledge the event in time/,
            'refused at once, not at webhook_redis_timeout');
        my $grown = vm_peak($worker) - $before;
        cmp_ok($grown, '<', 64 * 1024, "the worker's address space did not grow (+$grown kB)");
        is(($ng->workers)[0], $worker, 'the same worker');
        is($ng->request('GET', '/ping')->{status}, 200, 'it serves');
        ok($ng->stop, 'nginx stops gracefully');
        unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert nor crash');
    };
}

subtest 'the largest replies the module asks for fit' => sub {
    my $redis = start_redis();
    my $ng = webhook_nginx($redis->addr, timeout => '2s', extra => 'webhook_batch_max 20000;');
    my $batch = json_encode({ batch => JSON::PP::true(), events => [ map {
        { event_id => "big-$_", model => 'res.partner', record_id => $_, event => 'write' } } 1 .. 20000 ] });
    my $res = $ng->request('POST', $R, \%H, $batch, timeout => 30);
    is($res->{status}, 200, 'a batch of 20000 events (past 16384): 200') or diag dump_res($res);
    is($redis->llen('{webhook}:queue:low'), 20000, 'all in Redis');
    $res = $ng->request('POST', $R, \%H, $batch, timeout => 30);
    is($res->{status}, 200, 'again: 200 (20000 duplicates: an array of 20000 envelope ids)')
        or diag dump_res($res);
    is($redis->llen('{webhook}:queue:low'), 20000, 'nothing pushed twice');
    unlike($ng->error_log, qr/past the bounds/, 'no reply refused');
    ok($ng->stop, 'nginx stops gracefully');
};

done_testing;
