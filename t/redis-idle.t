#!/usr/bin/perl
# Redis closing an idle connection (`timeout` in redis.conf) is normal: the
# worker logs it at info and reconnects quietly, with no error-level line.
# A connection lost while a command waits for its answer is an outage: that
# stays an error (and the request gets 503).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-idle-8a4c1f';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { json_encode({ event_id => ++$n, model => 'res.partner', record_id => $n, event => 'write' }) }

my $redis = start_redis();
my $ng = start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(default_priority => 'low')
        . "    }\n");

sub count { my ($re) = @_; scalar(() = $ng->error_log =~ /$re/g) }
sub errors { grep { /\[(error|crit|alert|emerg)\]/ } split /\n/, $ng->error_log }

is_queued($ng->request('POST', $R, \%H, body()), 'low', 'an event before');
is(count(qr/webhook: connected to redis/), 1, 'connected once');

subtest 'Redis closes the idle connection (timeout 1)' => sub {
    is($redis->cli('CONFIG', 'SET', 'timeout', 1), 'OK', 'CONFIG SET timeout 1');
    # the worker's connection is idle: Redis closes it after 1 s, and again
    # each time the worker has reconnected
    ok(wait_until(sub { count(qr/webhook: connected to redis/) >= 3 }, timeout => 15),
        'Redis closed the idle connection twice, the worker reconnected each time')
        or diag $ng->error_log;
    is($redis->cli('CONFIG', 'SET', 'timeout', 0), 'OK', 'CONFIG SET timeout 0');
    is_deeply([errors()], [], 'no error-level line');
    like($ng->error_log, qr/\[info\].*webhook: redis closed the idle connection to \S+/,
        'the idle close is logged at info');
    is(count(qr/\[notice\][^\n]*webhook: connected to redis/), 1,
        'only the first connection is a notice, not the reconnections after idle closes');
    # the worker connects again (the handshake may still be on its way:
    # an event then waits behind it)
    ok(wait_until(sub { ($redis->cli('CLIENT', 'LIST') // '') =~ /cmd=script\|load/ }, timeout => 10),
        'the worker is connected');
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'the next event: 200');
};

subtest 'a connection lost with a command in flight is an error' => sub {
    # Redis takes the command and holds it (writes paused), then drops the
    # connection
    is($redis->cli('CLIENT', 'PAUSE', 10000, 'WRITE'), 'OK', 'CLIENT PAUSE WRITE');
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
        Proto => 'tcp', Timeout => 5) or die "connect: $!";
    my $b = body();
    syswrite($sock, "POST $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nAuthorization: Bearer $TOKEN\r\n"
        . 'Content-Length: ' . length($b) . "\r\n\r\n$b");
    ok(wait_until(sub { ($redis->cli('CLIENT', 'LIST') // '') =~ /flags=b /
        }, timeout => 10, interval => 0.05), "the worker's command waits in Redis");
    ok($redis->cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes') >= 1, 'CLIENT KILL');
    is($redis->cli('CLIENT', 'UNPAUSE'), 'OK', 'CLIENT UNPAUSE');
    my $buf = '';
    my $res = WebhookTest::_read_response($sock, 'POST', time + 10, \$buf);
    close $sock;
    is_json_error($res, 503, 'unavailable', 'that request: 503');
    ok(scalar(grep { /\[error\].*webhook: redis connection to \S+ lost/ } errors()),
        'the loss is logged as an error') or diag $ng->error_log;
    my $ok;
    ok(wait_until(sub { $ok = $ng->request('POST', $R, \%H, body()); $ok->{status} == 200 }, timeout => 10),
        'the worker reconnects and serves') or diag dump_res($ok);
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert nor crash');

done_testing;
