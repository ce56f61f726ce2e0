#!/usr/bin/perl
# The spool takes the events whatever keeps Redis from taking them, and
# delivers each once: CLIENT PAUSE past the timeout (the pushes sent before
# are applied late, after their events were spooled), maxmemory reached
# (OOM), DEBUG SLEEP, Redis made a replica (READONLY).  Half the events
# carry an event_id, half none (their dedupe is by envelope id).  For each
# fault: every answer 200, the event spooled or queued; after it, each
# event in Redis exactly once, the spool empty.

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
my $TOKEN = 'tok-spool-faults-77ab';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $SLOW = slow_nginx();
my $N = $SLOW ? 6 : 20;                      # events per fault

my $redis = start_redis();
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => '1s', workers => 2,
    http => "webhook_redis_connect_timeout 1s;\nwebhook_spool %%PREFIX%%/spool;\n",
    server => "        location = /status { webhook_status; }\n");

my $rid = 0;
sub body {
    my ($with_id) = @_;
    $rid++;
    return ($rid, json_encode({ ($with_id ? (event_id => "ev-$rid") : ()), model => 'sale.order',
        record_id => $rid, event => 'write' }));
}

sub spool_events {
    my $j = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
    return $j->{queues}{'{webhook}'}{spool}{events} // -1;
}

# run_fault($name, $start, $end): $N events sent during the fault (from
# two forked clients), then the fault ended and the spool drained
sub run_fault {
    my ($name, $start, $end) = @_;
    $redis->flushall;
    $start->();
    my ($recs, $bad) = run_clients(
        n => 2,
        dir => $ng->path("res-$name"),
        timeout => 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            my @r;
            $rid = $c * 1_000_000 + int(rand(1000)) * 1000;
            for my $i (1 .. $N / 2) {
                my ($id, $b) = body($i % 2);
                push @r, WebhookLoad::Client->record($id, $cl->post($R, \%H, $b));
            }
            return @r;
        },
    );
    $end->();
    is_deeply($bad, [], "$name: the clients finished");
    my @not200 = grep { $_->{status} != 200 } @$recs;
    is(scalar @not200, 0, "$name: every event answered 200")
        or diag join "\n", map { "$_->{id}: $_->{status} $_->{error}" } @not200;
    my $spooled = grep { ($_->{answer_status} // '') eq 'spooled' } @$recs;
    cmp_ok($spooled, '>', 0, "$name: $spooled of " . scalar(@$recs) . ' spooled');
    ok(wait_until(sub { spool_events() == 0 && !(() = glob $ng->path('spool/*.seg')) }, timeout => 30),
        "$name: the spool drains once the fault ends")
        or diag 'spool events ' . spool_events() . ', segments ' . join(' ', glob $ng->path('spool/*'))
            . ', keys ' . join(' ', $redis->cli('KEYS', '*'));
    my %count;
    $count{ $_->{record_id} }++ for envelopes($redis);
    my @lost = grep { !$count{ $_->{id} } } @$recs;
    my @twice = grep { ($count{ $_->{id} } // 0) > 1 } @$recs;
    is(scalar @lost, 0, "$name: none lost") or diag 'lost: ' . join ' ', map { $_->{id} } @lost;
    is(scalar @twice, 0, "$name: none doubled (with and without event_id)")
        or diag 'twice: ' . join ' ', map { $_->{id} } @twice;
    diag sprintf '%s: %d events, %d spooled, %d in Redis after, %d lost, %d doubled',
        $name, scalar @$recs, $spooled, scalar(keys %count), scalar @lost, scalar @twice;
}

# ---------------------------------------------------------------- faults

run_fault('CLIENT PAUSE 2500 ms (timeout 1 s)',
    sub { $redis->cli('CLIENT', 'PAUSE', 2500) },
    sub { sleep 2.6 });

run_fault('maxmemory reached (OOM)',
    sub { $redis->cli('CONFIG', 'SET', 'maxmemory', 1) },
    sub { sleep 1; $redis->cli('CONFIG', 'SET', 'maxmemory', 0) });

run_fault('DEBUG SLEEP 2.5 (timeout 1 s)',
    sub { $redis->sleep_in_background(2.5); sleep 0.1 },
    sub { sleep 2.6 });

run_fault('a replica (READONLY)',
    sub { $redis->cli('REPLICAOF', '127.0.0.1', WebhookTest::free_port()) },
    sub { sleep 1; $redis->cli('REPLICAOF', 'NO', 'ONE') });

like($ng->error_log, qr/redis refused the events \(OOM/, 'the OOM is logged');
like($ng->error_log, qr/redis refused the events \(READONLY/, 'the READONLY is logged');
unlike($ng->error_log, qr/\[alert\]|exited on signal/, 'no alert, no crash');

done_testing;
