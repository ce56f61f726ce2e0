#!/usr/bin/perl
# The BridgeCore forwarder against servers that misbehave (issue 29, items
# 2 and 8): one that trickles its answer a byte at a time for ever
# (FORWARD_TIMEOUT bounds the whole request: connect, headers, body), the
# startup check of the timeouts, 1,100 consecutive 429s without
# Retry-After (a bounded backoff), a 200 that is not BridgeCore's JSON (a
# proxy's login page: retried, never taken for delivered), and 408 and 425
# (retried like a 5xx, not dead-lettered).  Real redis-server, the
# stand-in BridgeCore of t/lib/bridgecore_standin.py, and a trickling
# server of this test.
#
# Needs /usr/bin/python3 with redis-py, FastAPI and uvicorn (Debian:
# python3-redis python3-fastapi python3-uvicorn); skipped without them.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookConsumer;

sub imports { system(consumer_python() . " -c 'import $_[0]' >/dev/null 2>&1") == 0 }
cannot_run(consumer_python() . ' cannot import redis (install python3-redis)')
    unless imports('redis');
cannot_run(consumer_python() . ' cannot import fastapi and uvicorn (install '
    . 'python3-fastapi python3-uvicorn)') unless imports('fastapi, uvicorn');

my $Q = '{webhook}';
my $bc = WebhookConsumer::Standin->new;
my $redis = start_redis();

# forwarder(%env): a consumer that forwards to BridgeCore
sub forwarder {
    my (%env) = @_;
    return WebhookConsumer->new(redis => $redis, name => 'fwd',
        env => { WEBHOOK_HANDLER => '', FORWARD_URL => $bc->url, FORWARD_RATE => 'off',
                 FORWARD_TIMEOUT => 2, LEASE_TTL => 6, %env });
}

sub event {
    my ($id, %o) = @_;
    return envelope(id => $id, model => 'sale.order', %o);
}

sub statuses { join ' ', map { $_->{status} // 'none' } @{ $_[0]{requests} } }
sub failure { json_decode($redis->cli('HGET', "$Q:failures", $_[0]) // 'null') || {} }
sub dead { map { (json_decode($_) || {})->{id} } $redis->lrange("$Q:dead:high") }

# ================================================ a server that trickles its answer

{
    # one byte every 0.5 s, for ever; each connection noted in a file
    my $port = free_port();
    my $conns = File::Temp->new;
    my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
        Listen => 5, ReuseAddr => 1) or die "listen: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{PIPE} = 'IGNORE';
        while (my $s = $server->accept) {
            append_file($conns->filename, "connection\n");
            my $head = '';
            $head .= $_ while defined($_ = <$s>) && $_ ne "\r\n";
            my $answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                . "Content-Length: 100000\r\n\r\n" . ('x' x 100000);
            for my $byte (split //, $answer) {
                last unless print {$s} $byte and $s->flush;
                sleep 0.5;
            }
            close $s;
        }
        POSIX::_exit(0);
    }
    close $server;
    my $c = forwarder(FORWARD_URL => "http://127.0.0.1:$port/api/v1/webhooks/receive",
                      MAX_ATTEMPTS => 2);
    $c->enqueue(event('trickle-1'));
    my $p = $c->start('run', '--drain');
    my $lapsed = 0;
    my $rc;
    wait_until(sub {
        $rc = $c->wait_exit($p, 0);
            $lapsed++ if $c->lapsed;
        defined $rc;
    }, timeout => 20, interval => 0.2);
    my $n = () = (read_file($conns->filename) // '') =~ /connection/g;
    note("figures: trickling server: events 1, requests $n, exit "
         . ($rc // 'none: killed after 20 s') . ", lease lapsed $lapsed time(s)");
    $c->stop($p, 1);
    kill 'KILL', $pid;
    waitpid($pid, 0);
    is($rc, 0, 'the consumer gave up on the trickling server and went on')
        or diag($c->logs);
    is($n, 2, 'one request per attempt (MAX_ATTEMPTS 2)');
    is(join(' ', dead()), 'trickle-1', 'then the event was dead-lettered');
    like(failure('trickle-1')->{error} // '', qr/no answer .*within 2s/,
         'saying the whole request took longer than FORWARD_TIMEOUT');
    is($lapsed, 0, 'the lease never lapsed meanwhile');
    $redis->flushall;
}

# ================================================ the startup check

{
    my $c = forwarder(LEASE_TTL => 30);
    my ($rc, $out) = $c->run('run', '--forward-timeout', 10, '--handler-timeout', 10);
    is($rc, 1, 'a forward timeout that the handler timeout cuts short: exit 1');
    like($out, qr/forward timeout \(10s\) .* shorter than the handler timeout \(10s\)/,
         'saying why') or diag($out);
    ($rc, $out) = $c->run('run', '--handler-timeout', 30);
    is($rc, 1, 'a handler timeout as long as the lease TTL: exit 1');
    like($out, qr/handler timeout must be shorter than the lease TTL/, 'saying why')
        or diag($out);
}

# ================================================ 1,100 429s without Retry-After

{
    $bc->control(fail => [{ status => 429, count => 1100 }], limit => [1000000, 1]);
    my $c = forwarder(BACKOFF_BASE => 0.001, BACKOFF_MAX => 0.001);
    $c->enqueue(event('throttled-1'));
    my ($rc, $out) = $c->run('run', '--drain');
    my $got = $bc->log;
    my $n429 = grep { ($_->{status} // 0) == 429 } @{ $got->{requests} };
    note('figures: 1,100 429s: events 1, requests ' . scalar(@{ $got->{requests} })
         . ", received " . scalar(@{ $got->{received} }) . ", dead " . scalar(dead()));
    is($rc, 0, 'the consumer exits 0') or diag(substr($out, -3000));
    is($n429, 1100, '1,100 answers 429');
    is(scalar(@{ $got->{received} }), 1, 'then the event was delivered');
    is(scalar(dead()), 0, 'not dead-lettered');
    unlike($out, qr/OverflowError/, 'no OverflowError');
    $redis->flushall;
}

# ================================================ 200 that is not BridgeCore's answer

{
    $bc->control(fail => [{ status => 200, count => 2,
                            html => '<html><body>Sign in</body></html>' }]);
    my $c = forwarder();
    $c->enqueue(event('html-1'));
    my ($rc, $out) = $c->run('run', '--drain');
    my $got = $bc->log;
    note('figures: 200 text/html twice: events 1, requests ' . scalar(@{ $got->{requests} })
         . ', received by BridgeCore ' . scalar(@{ $got->{received} }));
    is($rc, 0, 'the consumer exits 0') or diag($out);
    is(statuses($got), '200 200 200', 'two HTML pages, then BridgeCore');
    is(scalar(@{ $got->{received} }), 1, 'the event reached BridgeCore');
    like($out, qr/answered 200 .*not BridgeCore's JSON answer.*Sign in/,
         'the HTML answers were taken as failed attempts');
    $redis->flushall;
}

# ================================================ 408 and 425

{
    $bc->control(fail => [{ status => 408, count => 1 }, { status => 425, count => 1 }]);
    my $c = forwarder();
    $c->enqueue(event('late-1'));
    my ($rc, $out) = $c->run('run', '--drain');
    my $got = $bc->log;
    note('figures: 408, 425: events 1, requests ' . scalar(@{ $got->{requests} })
         . ', received ' . scalar(@{ $got->{received} }) . ', dead ' . scalar(dead()));
    is($rc, 0, 'the consumer exits 0') or diag($out);
    is(statuses($got), '408 425 200', '408 and 425 were retried');
    is(scalar(@{ $got->{received} }), 1, 'the event reached BridgeCore');
    is(scalar(dead()), 0, 'not dead-lettered');
}

done_testing();
