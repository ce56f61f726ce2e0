#!/usr/bin/perl
# Bytes from outside reach the error log escaped (a byte outside printable
# ASCII, '"' and '\' as \xXX, as nginx's access log writes a variable): a
# newline in an error of a hostile Redis (t/lib/WebhookPeer.pm; a real
# Redis turns them into spaces) does not forge a log line of its own (with
# hiredis 1.x the reply is refused as a protocol error before the module
# sees it; with 0.14 it is written \x0A), nor does a header value, and a
# terminal's escape sequence or a byte that is not UTF-8 reaches the log
# as text.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;
use WebhookPeer;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-escape-77d1a0';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $FORGED = '2026/01/01 00:00:00 [emerg] 1#1: forged by';
my $n = 0;
sub body { json_encode({ event_id => 'esc-' . ++$n, model => 'res.partner', record_id => 1, event => 'write' }) }

sub webhook_nginx {
    my ($addr, $extra) = @_;
    return start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
        http => "webhook_redis $addr;\nwebhook_redis_timeout 5s;\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low', extra => $extra // '')
            . "    }\n");
}

sub no_forged_line {
    my ($log, $name) = @_;
    unlike($log, qr/^\Q$FORGED\E/m, "$name: no line of its own")
        or diag join "\n", grep { /forged|webhook/ } split /\n/, $log;
}

# hiredis 1.x refuses a CR or LF in an error reply itself (a protocol
# error, the connection closed); 0.14 passes the line on, and the module
# writes it escaped.  Either way no line of its own.
my $REFUSES = hiredis_refuses_newlines();
note('hiredis ' . ($REFUSES ? 'refuses' : 'passes on') . ' a newline in an error reply');

subtest 'a newline in a Redis error' => sub {
    my $loaded = 0;
    my $peer = WebhookPeer->new(answer => sub {
        my ($args) = @_;
        # the first SCRIPT LOAD fails: the handshake's error is logged
        return "-ERR no scripts\n$FORGED the handshake\r\n"
            if uc $args->[0] eq 'SCRIPT' && !$loaded++;
        return "-ERR refused\n$FORGED the enqueue\r\n" if $args->[0] =~ /^EVAL/i;
        return "+OK\r\n";
    });
    my $ng = webhook_nginx($peer->addr);
    ok(wait_until(sub { $ng->error_log =~ /webhook: connected to redis at/ }, timeout => 10),
        'connected after the failed handshake') or diag $ng->error_log;
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', 'the event: 503');
    my $log = $ng->error_log;
    if ($REFUSES) {
        my @refused = $log =~ /webhook: redis protocol error: Bad simple string value$/mg;
        is(scalar @refused, 2, 'the handshake and the enqueue: refused by hiredis, '
            . 'a protocol error each') or diag $log;
    } else {
        like($log, qr/webhook: redis SCRIPT LOAD failed: ERR no scripts\\x0A\Q$FORGED\E the handshake$/m,
            'the handshake: the newline written \x0A');
        like($log, qr/webhook: redis refused the events: ERR refused\\x0A\Q$FORGED\E the enqueue, client:/,
            'the enqueue: the newline written \x0A');
    }
    no_forged_line($log, 'the Redis errors');
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'bytes that are not text in a Redis error' => sub {
    my $peer = WebhookPeer->new(answer => sub {
        my ($args) = @_;
        return "-ERR refused \"\\\x1b[2J\xff\x7f $FORGED\r\n" if $args->[0] =~ /^EVAL/i;
        return "+OK\r\n";
    });
    my $ng = webhook_nginx($peer->addr);
    ok(wait_until(sub { $ng->error_log =~ /webhook: connected to redis at/ }, timeout => 10),
        'connected') or diag $ng->error_log;
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', 'the event: 503');
    like($ng->error_log,
        qr/webhook: redis refused the events: ERR refused \\x22\\x5C\\x1B\[2J\\xFF\\x7F \Q$FORGED\E, client:/,
        'the quote, the backslash, the escape, DEL and the byte that is no UTF-8 as text')
        or diag $ng->error_log;
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'a header value' => sub {
    my $redis = start_redis();
    my $ng = webhook_nginx($redis->addr, 'webhook_instant_priority $http_x_prio;');
    my $res = $ng->request('POST', $R, { %H, 'X-Prio' => "\x1b[2J\"urgent\"\xc3" }, sample_text('odoo-instant.json'));
    is_queued($res, 'low', 'an instant event: queued at the default priority');
    like($ng->error_log,
        qr/webhook: webhook_instant_priority is "\\x1B\[2J\\x22urgent\\x22\\xC3", not high, medium or low/,
        'the value as text in the error log') or diag $ng->error_log;
    ok($ng->stop, 'nginx stops gracefully');
};

done_testing;
