#!/usr/bin/perl
# Redis unavailable: 503 + Retry-After, fast; Redis not running when nginx
# starts; reconnection without a reload; slow Redis (DEBUG SLEEP).  Test
# events (test connection, data._test_event, record_id -1) are answered
# after a real write (SET <queue>:probe): 503 too while Redis is down.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use IO::Socket::INET;
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-down-a1b2c3d4e5';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my @QUEUES = map { "{webhook}:queue:$_" } qw(high medium low);

my $redis = start_redis(no_start => 1);    # port reserved, not running yet

sub server_conf {
    my ($timeout) = @_;
    return 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_connect_timeout 1s;\n"
        . "webhook_redis_timeout $timeout;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(default_priority => 'medium')
        . "    }\n";
}

my $n = 0;
sub body { json_encode({ event_id => ++$n, model => 'sale.order', record_id => $n, event => 'write' }) }

sub post { my ($ng) = @_; $ng->request('POST', $R, \%H, body(), timeout => 20) }

sub total_envelopes { my $t = 0; $t += $redis->llen($_) for @QUEUES; $t }

# the test bodies: Odoo's test connection, its "Test webhook" button, a
# test record
my @TESTS = (
    ['test connection', '{"test": true}'],
    ['data._test_event', json_encode({ event_id => 'test-1', model => 'res.partner', record_id => 5,
        event => 'write', data => { _test_event => JSON::PP::true() } })],
    ['record_id -1', json_encode({ model => 'res.partner', record_id => -1, event => 'create' })],
);

sub post_test { my ($ng, $body) = @_; $ng->request('POST', $R, \%H, $body, timeout => 20) }

# tests_503($ng, $limit, $name): every test body answered 503, fast
sub tests_503 {
    my ($ng, $limit, $name) = @_;
    for my $t (@TESTS) {
        my $res = post_test($ng, $t->[1]);
        is_json_error($res, 503, 'unavailable', "$name, $t->[0]: 503 unavailable (the write check failed)");
        like($res->{headers}{'retry-after'} // '', qr/^\d+\z/, "$name, $t->[0]: Retry-After");
        cmp_ok($res->{elapsed}, '<', $limit, sprintf("%s, %s: answered in %.2fs", $name, $t->[0], $res->{elapsed}));
    }
}

# expect_503_fast($ng, $limit, $name)
sub expect_503_fast {
    my ($ng, $limit, $name) = @_;
    my $res = post($ng);
    is_json_error($res, 503, 'unavailable', "$name: 503 unavailable");
    like($res->{headers}{'retry-after'} // '', qr/^\d+\z/, "$name: Retry-After in seconds")
        or diag 'Retry-After: ' . ($res->{headers}{'retry-after'} // '(none)');
    cmp_ok($res->{elapsed}, '<', $limit, sprintf("%s: answered in %.2fs (< %ss)", $name, $res->{elapsed}, $limit));
    return $res;
}

# recover($ng, $name): POST every 250 ms for up to 10 s until a 200; then
# until every worker answers 200 (several 200s in a row).  Returns the
# number of 200s, or undef.
sub recover {
    my ($ng, $name, %o) = @_;
    my $want_in_row = $o{in_row} // 6;
    my $t0 = time;
    my ($ok, $in_row, $first, @other) = (0, 0);
    while (time - $t0 < 10) {
        my $res = post($ng);
        if ($res->{status} == 200) {
            $ok++;
            $in_row++;
            $first //= time - $t0;
            last if $in_row >= $want_in_row;
            next;
        }
        $in_row = 0;
        push @other, $res->{status} unless $res->{status} == 503;
        diag("unexpected answer while recovering:\n" . dump_res($res)) unless $res->{status} == 503;
        sleep 0.25;
    }
    ok(defined $first, sprintf("%s: a POST gets 200 again%s", $name,
        defined $first ? sprintf(' after %.2fs', $first) : ' (never within 10s)'));
    cmp_ok($in_row, '>=', $want_in_row, "$name: then $want_in_row 200s in a row (every worker reconnected)");
    is_deeply(\@other, [], "$name: only 503s while Redis was coming back");
    return $ok;
}

# ------------------------------------------------ Redis not running at start
my $ng = start_nginx(workers => 2, files => { 'webhook.tokens' => "$TOKEN\n" }, http => server_conf('2s'));

subtest 'Redis not running when nginx starts' => sub {
    expect_503_fast($ng, 3, "request $_") for 1 .. 4;
    my $res = $ng->request('HEAD', $R);
    is($res->{status}, 200, 'HEAD still 200 without Redis') or diag dump_res($res);
    tests_503($ng, 3, 'without Redis');
};

subtest 'Redis started later: reconnect without reload' => sub {
    $redis->start;
    my $ok = recover($ng, 'first start');
    is(total_envelopes(), $ok, "one envelope per 200 ($ok)");
    $redis->flushall;
};

# ------------------------------------------------ Redis stopped while running
subtest 'Redis stopped while nginx runs' => sub {
    my $res = post($ng);
    is_queued($res, 'medium', 'works before the stop');
    $redis->flushall;
    for my $t (@TESTS) {
        $redis->cli('DEL', '{webhook}:probe');
        $res = post_test($ng, $t->[1]);
        is($res->{status}, 200, "$t->[0]: 200") or diag dump_res($res);
        is_deeply($res->{json}, { status => 'ok', test => JSON::PP::true() }, "$t->[0]: {\"status\":\"ok\",\"test\":true}");
        like($redis->cli('GET', '{webhook}:probe') // '', qr/^[0-9a-f]{32}\z/,
            "$t->[0]: {webhook}:probe written (the request id)");
        my $pttl = $redis->cli('PTTL', '{webhook}:probe') // '';
        ok($pttl =~ /^\d+\z/ && $pttl > 0 && $pttl <= 60000, "$t->[0]: with PX 60000 (PTTL $pttl)");
    }
    is_deeply([sort $redis->keys], ['{webhook}:probe'], 'no test body was queued or marked seen');
    $redis->stop;
    expect_503_fast($ng, 3, "after stop, request $_") for 1 .. 6;
    tests_503($ng, 3, 'after stop');
};

subtest 'Redis restarted on the same port: reconnect without reload' => sub {
    $redis->start;    # empty: no persistence
    my $ok = recover($ng, 'restart');
    is(total_envelopes(), $ok, "one envelope per 200 ($ok)");
    $redis->flushall;
};

subtest 'Redis stopped and restarted twice quickly' => sub {
    $redis->stop;
    expect_503_fast($ng, 3, 'down again');
    $redis->start;
    $redis->stop;
    expect_503_fast($ng, 3, 'down once more');
    $redis->start;
    my $ok = recover($ng, 'second restart');
    is(total_envelopes(), $ok, "one envelope per 200 ($ok)");
    $redis->flushall;
};

ok($ng->stop, 'first nginx stops gracefully');
my $log1 = $ng->error_log;
unlike($log1, qr/\[alert\]|open socket/, 'first nginx: no alert/open socket in error log')
    or diag join "\n", grep { /\[alert\]|open socket/ } split /\n/, $log1;

# ------------------------------------------------ slow Redis
my $slow = start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" }, http => server_conf('1s'));

subtest 'slow Redis (DEBUG SLEEP 3) with webhook_redis_timeout 1s' => sub {
    recover($slow, 'warm-up', in_row => 2);
    $redis->flushall;

    my $t_sleep = time;
    my $pid = $redis->sleep_in_background(3);

    expect_503_fast($slow, 2.5, 'during DEBUG SLEEP');
    my $res = post($slow);
    if (time - $t_sleep < 2.8) {
        is($res->{status}, 503, 'a second request during the sleep: 503 too') or diag dump_res($res);
        cmp_ok($res->{elapsed}, '<', 2.5, 'a second request during the sleep: fast');
    }

    waitpid($pid, 0);
    is($? >> 8, 0, 'DEBUG SLEEP finished (debug command enabled)');
    recover($slow, 'after the sleep', in_row => 3);
};

subtest 'the 200 comes only after Redis acknowledged (DEBUG SLEEP 0.7 < timeout 1s)' => sub {
    recover($slow, 'warm-up', in_row => 2);
    $redis->flushall;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port, Proto => 'tcp', Timeout => 5)
        or return fail("connect to redis: $!");
    print {$s} "*3\r\n\$5\r\nDEBUG\r\n\$5\r\nSLEEP\r\n\$3\r\n0.7\r\n";
    sleep 0.2;    # Redis is now blocked
    my $res = post($slow);
    my $reply = <$s>;
    close $s;
    is($reply, "+OK\r\n", 'DEBUG SLEEP answered');
    is_queued($res, 'medium', 'POST during a short sleep: 200');
    cmp_ok($res->{elapsed}, '>=', 0.3, sprintf('the answer waited for Redis (%.2fs)', $res->{elapsed}));
    is(total_envelopes(), 1, 'and the envelope is there');
    $redis->flushall;
};

ok($slow->stop, 'second nginx stops gracefully');
unlike($slow->error_log, qr/\[alert\]|open socket/, 'second nginx: no alert/open socket in error log')
    or diag join "\n", grep { /\[alert\]|open socket/ } split /\n/, $slow->error_log;

done_testing;
