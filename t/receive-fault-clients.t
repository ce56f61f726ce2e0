#!/usr/bin/perl
# Fault 5 of issue 6: client faults.
#
#   - Clients that go away while their event waits for Redis (held by
#     DEBUG SLEEP): closed with FIN or reset (RST), both when Redis then
#     answers within webhook_redis_timeout and when the timeout fires first.
#     No crash (the suite also runs under ASan and valgrind, which see
#     leaks), each event is in Redis whole or not at all, each batch all or
#     none, and the next requests get their own answers.
#   - Clients that go away in the middle of the body: nothing is queued.
#   - Slow clients: client_body_timeout 1s; half a body then silence gets
#     408 (nginx closes the connection) and nothing is queued; a body sent
#     slowly but steadily is queued.
#   - Many idle keep-alive connections (500) while normal traffic goes on.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use Socket qw(SOL_SOCKET SO_LINGER);
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $SLOW = '/slow';
my $TOKEN = 'tok-chaos-clients-5e6f70';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $MARGIN = slow_nginx() ? 8 : 1.5;
my $IDLE = slow_nginx() ? 50 : 500;

my $redis = start_redis();
my $ng = fault_nginx(redis => $redis, token => $TOKEN, priority => 'low',
    server => "        keepalive_timeout 120s;\n        keepalive_requests 10000;\n"
        . receive_location(path => $SLOW, default_priority => 'low',
            extra => 'client_body_timeout 1s;'));

sub event { { event_id => $_[0], model => 'crm.lead', record_id => $_[0], event => 'write',
    values => { note => 'x' x 200 } } }
sub single { json_encode(event($_[0])) }
sub batch { json_encode({ batch => JSON::PP::true(), events => [map { event($_) } @_] }) }

sub request_text {
    my ($body, %o) = @_;
    return 'POST ' . ($o{path} // $R) . " HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: " . ($o{keepalive} ? 'keep-alive' : 'close') . "\r\n"
        . "Content-Type: application/json\r\nAuthorization: Bearer $TOKEN\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;
}

sub connect_ng {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
        Proto => 'tcp', Timeout => 10);
    die "connect: $!" unless $s;
    return $s;
}

# statuses(): status => count of the access log lines since the last call
sub statuses {
    my %st;
    $st{ $_->[1] // '?' }++ for take_log($ng);
    return \%st;
}

sub hard_close {    # RST instead of FIN
    my ($s) = @_;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $s;
}

# event_id => number of envelopes in Redis (each checked whole)
sub in_redis {
    my %n;
    my $broken = 0;
    for my $e (envelopes($redis)) {
        my $ok = ref $e eq 'HASH' && defined $e->{event_id} && ref $e->{payload} eq 'HASH'
            && ($e->{payload}{event_id} // '') eq $e->{event_id}
            && length($e->{payload}{values}{note} // '') == 200;
        $broken++ unless $ok;
        $n{ $e->{event_id} }++ if $ok;
    }
    return (\%n, $broken);
}

sub log_clean {
    my ($name) = @_;
    my @bad = grep { /exited on signal|\[alert\]|\[emerg\]|\[crit\]/ } split /\n/, $ng->error_log;
    is_deeply(\@bad, [], "$name: no crash, alert nor crit in error.log");
}

# works($name, $base): a few requests get their own answers afterwards
sub works {
    my ($name, $base) = @_;
    my @bad;
    for my $i (1 .. 6) {
        my $res = $ng->request('POST', $R, \%H, single($base + $i), timeout => 10);
        my ($n) = in_redis();
        push @bad, "$i: " . dump_res($res) unless $res->{status} == 200
            && ($res->{json}{status} // '') eq 'queued' && $n->{ $base + $i };
    }
    is_deeply(\@bad, [], "$name: then new requests are queued and answered");
}

is_queued($ng->request('POST', $R, \%H, single(1)), 'low', 'warm-up');
is_queued($ng->request('POST', $R, \%H, single(2)), 'low', 'warm-up');
$redis->flushall;

# ------------------------------------------------------------ gone while waiting
for my $case ([1, 'Redis answers within the timeout'], [3, 'the timeout fires first']) {
    my ($hold, $name) = @$case;
    my $base = $hold * 100000;
    my (@socks, @singles, @batches);
    statuses();
    my $sleeper = $redis->sleep_in_background($hold, 0.2);
    my $t0 = time;
    for my $i (1 .. 20) {
        my $s = connect_ng();
        my $body;
        if ($i % 4 == 0) {
            my @ids = map { $base + $i * 10 + $_ } 1 .. 4;
            push @batches, \@ids;
            $body = batch(@ids);
        } else {
            push @singles, $base + $i * 10;
            $body = single($base + $i * 10);
        }
        print {$s} request_text($body);
        push @socks, $s;
    }
    sleep 0.3;    # nginx has read the bodies, the commands wait in Redis
    for my $k (0 .. $#socks) {
        if ($k % 2) { hard_close($socks[$k]) } else { close $socks[$k] }
    }
    waitpid($sleeper, 0);
    sleep 0.5 + ($hold > 2 ? 0 : 0.5);
    my ($n, $broken) = in_redis();
    is($broken, 0, "$name: every envelope in Redis is whole");
    my @bad_single = grep { ($n->{$_} // 0) > 1 } @singles;
    is_deeply(\@bad_single, [], "$name: each single event is queued once or not at all");
    my @half = grep { my $c = grep { $n->{$_} } @$_; $c != 0 && $c != 4 } @batches;
    is_deeply(\@half, [], "$name: each batch is queued whole or not at all");
    my $q_single = grep { $n->{$_} } @singles;
    my $q_batch = grep { $n->{ $_->[0] } } @batches;
    my $st = statuses();
    diag sprintf '%s (Redis held %ss, clients gone after 0.3s): %d singles, %d queued; '
        . '%d batches of 4, %d queued whole, %d half; nginx logged statuses: %s',
        $name, $hold, scalar @singles, $q_single, scalar @batches, $q_batch, scalar @half,
        join(', ', map { "$_ x$st->{$_}" } sort keys %$st);
    log_clean($name);
    works($name, $base + 90000);
    $redis->flushall;
}

# ------------------------------------------------------------ gone mid-body
subtest 'clients gone in the middle of the body' => sub {
    my @ids = map { 400000 + $_ } 1 .. 10;
    for my $id (@ids) {
        my $text = request_text(single($id));
        my $s = connect_ng();
        print {$s} substr($text, 0, length($text) - 40);
        sleep 0.05;
        if ($id % 2) { hard_close($s) } else { close $s }
    }
    sleep 0.5;
    my ($n) = in_redis();
    is_deeply([grep { $n->{$_} } @ids], [], 'nothing of those requests is queued');
    log_clean('gone mid-body');
    works('gone mid-body', 410000);
    $redis->flushall;
};

# ------------------------------------------------------------ slow clients
subtest 'slow clients (client_body_timeout 1s)' => sub {
    # 20 clients send the headers and all but the last 50 bytes of the body,
    # then nothing
    my @s = map {
        my $s = connect_ng();
        print {$s} substr(request_text(single(500100 + $_), path => $SLOW), 0, -50);
        $s
    } 1 .. 20;
    my $t1 = time;
    my $sel = IO::Select->new(@s);
    my (%closed, %got);
    while (keys %closed < @s && time - $t1 < 10) {
        for my $h ($sel->can_read(0.5)) {
            my $r = sysread($h, $got{"$h"}, 4096, length($got{"$h"} // ''));
            next if $r;
            $closed{"$h"} = time - $t1;
            $sel->remove($h);
        }
    }
    my @times = sort { $a <=> $b } values %closed;
    is(scalar @times, 20, '20 stalled clients: nginx closed every connection');
    cmp_ok($times[-1] // 99, '<', 1 + $MARGIN, sprintf('within client_body_timeout + %ss (last after %.2fs)',
        $MARGIN, $times[-1] // -1));
    # nginx closes the connection of a body read timeout without an answer
    # (and logs 408); an answer, if any, must be a 408
    my @answers = grep { length } map { $got{"$_"} // '' } @s;
    is_deeply([grep { !m{^HTTP/1\.1 408 } } @answers], [], 'no answer, or 408 (' . scalar(@answers) . ' answers)');
    close $_ for @s;
    my $st = statuses();
    is($st->{408} // 0, 20, 'nginx logged 408 for each') or diag explain $st;
    my ($n) = in_redis();
    is_deeply([grep { $n->{ 500100 + $_ } } 1 .. 20], [], 'none of them queued');

    # slow but steady: a piece every 0.5 s, each read within the timeout
    my @pieces = unpack('(a60)*', request_text(single(500200), path => $SLOW));
    my $res = $ng->raw(timeout => 30, delay => 0.5, pieces => [@pieces[0 .. 4], join('', @pieces[5 .. $#pieces])]);
    is_queued($res, 'low', 'a body sent slowly but steadily is queued');
    diag sprintf 'slow clients: 20 clients stalled in the body, closed by nginx after %.2f..%.2fs '
        . '(client_body_timeout 1s), %d answered 408, none queued; a slow steady body queued',
        $times[0] // -1, $times[-1] // -1, scalar @answers;
    log_clean('slow clients');
    $redis->flushall;
};

# ------------------------------------------------------------ idle keep-alive
subtest "$IDLE idle keep-alive connections" => sub {
    my (@idle, @bad);
    my $t0 = time;
    for my $i (1 .. $IDLE) {
        my $s = connect_ng();
        my $buf = '';
        my $res = WebhookTest::http_request(port => $ng->port, sock => $s, keepalive => 1,
            bufref => \$buf, method => 'POST', path => $R, headers => \%H,
            body => single(600000 + $i), timeout => 20);
        push @bad, "$i: " . dump_res($res) unless $res->{status} == 200;
        push @idle, $s;
    }
    is_deeply(\@bad, [], sprintf('%d keep-alive connections opened, one event each (%.1fs)', $IDLE, time - $t0));

    # normal traffic meanwhile, from forked clients, a connection per request
    my ($recs, $hung) = run_clients(n => 4, dir => $ng->path('results-idle'), timeout => 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, keepalive => 0, timeout => 20);
            return map { my $id = 610000 + $c * 1000 + $_;
                WebhookLoad::Client->record($id, $cl->post($R, \%H, single($id))) } 1 .. 50;
        });
    is_deeply($hung, [], 'traffic clients finished');
    my $s = summarize($recs);
    is($s->{ok}, 200, "normal traffic: 200 events, all 200 (max latency $s->{max}s)");

    # the idle connections still work
    @bad = ();
    my $i = 0;
    for my $sock (@idle) {
        $i++;
        my $buf = '';
        my $res = WebhookTest::http_request(port => $ng->port, sock => $sock, keepalive => 1,
            bufref => \$buf, method => 'POST', path => $R, headers => \%H,
            body => single(620000 + $i), timeout => 20);
        push @bad, "$i: " . dump_res($res) unless $res->{status} == 200;
    }
    is_deeply(\@bad, [], "each of the $IDLE idle connections serves a second event");
    close $_ for @idle;
    my ($n) = in_redis();
    is(scalar keys %$n, 2 * $IDLE + 200, 'all ' . (2 * $IDLE + 200) . ' events are in Redis');
    diag sprintf '%d idle keep-alive connections: %d events on them, %d events of normal '
        . 'traffic meanwhile, %d x 200, max latency %.3fs', $IDLE, 2 * $IDLE, $s->{sent},
        $s->{ok}, $s->{max};
    log_clean('idle connections');
    $redis->flushall;
};

ok($ng->stop(timeout => 20), 'nginx stops gracefully');
unlike($ng->error_log, qr/exited on signal|open socket|\[alert\]/, 'no open socket left at exit');

done_testing;
