#!/usr/bin/perl
# The spool through crashes, Redis away: a worker SIGKILLed while it
# appends under load; nginx SIGKILLed (master and workers) while the spool
# holds events, and again while it drains; a record torn at the end of a
# segment.  After each restart (same prefix, same spool) everything
# answered 200 is delivered exactly once, the torn bytes are skipped and
# logged.

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
my $TOKEN = 'tok-spool-crash-31c0';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $SLOW = slow_nginx();
my $CLIENTS = $SLOW ? 3 : 8;

my $redis = start_redis(extra => [qw(--appendonly yes --appendfsync always)]);
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => '1s', workers => 2,
    http => "webhook_redis_connect_timeout 1s;\nwebhook_spool %%PREFIX%%/spool;\n",
    server => "        location = /status { webhook_status; }\n");
my $spool = $ng->path('spool');

my %acked;                                   # event_id => envelope id
my $sent = 0;

sub body {
    my ($id) = @_;
    return json_encode({ event_id => $id, model => 'res.partner', record_id => 3,
        event => 'create', values => { name => "P $id" } });
}

# load($name, $seconds, $during): forked clients send events for a while,
# $during runs meanwhile; the 200s are remembered
sub load {
    my ($name, $seconds, $during) = @_;
    my $t0 = time;
    my ($recs, $bad) = run_clients(
        n => $CLIENTS,
        dir => $ng->path("res-$name"),
        timeout => $seconds + 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            my ($i, @r) = (0);
            while (time - $t0 < $seconds) {
                my $id = "$name-$c-" . ++$i;
                push @r, WebhookLoad::Client->record($id, $cl->post($R, \%H, body($id)));
            }
            return @r;
        },
        while_running => $during,
    );
    is_deeply($bad, [], "$name: the clients finished");
    my @ok = grep { $_->{status} == 200 } @$recs;
    $acked{ $_->{id} } = $_->{answer} for @ok;
    $sent += @$recs;
    my @other = grep { $_->{status} != 200 && $_->{status} != 0 } @$recs;
    is(scalar @other, 0, "$name: every answer 200, or none (a killed process)")
        or diag join "\n", map { "$_->{id}: $_->{status}" } @other[0 .. 4];
    return scalar @ok;
}

sub kill_nginx {
    # the master first: it would start new workers in place of the killed
    my @pids = ($ng->workers, $ng->pid);
    kill 'KILL', $ng->pid;
    waitpid($ng->pid, 0);
    kill 'KILL', @pids;
    delete $ng->{pid};
    my $gone = wait_until(sub { !WebhookTest::port_open($ng->port) }, timeout => 10);
    diag "still listening after SIGKILL of @pids:\n" . `ss -ltnp 2>&1 | grep :@{[$ng->port]}`
        unless $gone;
}

sub restart_nginx {
    $ng->start;
}

sub delivered_once {
    my ($name) = @_;
    my (%in, @twice);
    for my $e (envelopes($redis)) {
        my $id = $e->{event_id} // next;
        push @twice, $id if exists $in{$id};
        $in{$id} = 1;
    }
    my @lost = grep { !$in{$_} } sort keys %acked;
    is(scalar @lost, 0, "$name: every event answered 200 is in Redis (" . scalar(keys %acked) . ')')
        or diag 'lost: ' . join ' ', @lost[0 .. ($#lost > 9 ? 9 : $#lost)];
    is(scalar @twice, 0, "$name: none twice") or diag "twice: @twice[0 .. 9]";
    return (scalar keys %in, scalar @lost, scalar @twice);
}

sub spool_empty {
    my $j = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
    return ($j->{queues}{'{webhook}'}{spool}{events} // -1) == 0
        && !$j->{spool}{recovering} && !(() = glob "$spool/*.seg");
}

$redis->stop;

# 1. a worker SIGKILLed while it appends
my @before = $ng->workers;
my $ok1 = load('worker', 3, sub {
    sleep 1.5;
    kill 'KILL', $before[0];
    note "SIGKILL worker $before[0]";
});
cmp_ok($ok1, '>', 0, "worker kill: $ok1 events spooled");
ok(wait_until(sub { my @w = $ng->workers; @w == 2 && !grep { $_ == $before[0] } @w }, timeout => 10),
    'the master started a new worker');

# 2. nginx SIGKILLed while the spool holds events; a torn record
kill_nginx();
my @segs = sort glob "$spool/*.seg";
ok(@segs >= 1, scalar(@segs) . ' segments left by the killed nginx');
my $torn = "WHS1\x00\x00\x00\x00\xff\x00\x00\x00partial";
append_file($segs[0], $torn);
restart_nginx();
my $ok2 = load('restarted', 1, undef);
cmp_ok($ok2, '>', 0, "after the restart, Redis still down: $ok2 events spooled behind the others");
my $st = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
is($st->{spool}{recovering}, JSON::PP::true(), 'status: recovering the spool found at start');
like($ng->error_log, qr/the spool "[^"]+" holds \d+ segments \(\d+ bytes\): they are drained first/,
    'the spool found at start is logged');

# 3. Redis back; nginx SIGKILLed while it drains
$redis->start;
ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') > 0 }, timeout => 15, interval => 0.01),
    'the drain started');
kill_nginx();
note 'SIGKILL nginx while draining: ' . $redis->llen('{webhook}:queue:medium') . ' in Redis';
restart_nginx();
ok(wait_until(\&spool_empty, timeout => 60), 'after the restart the spool drains, and ends');

my ($in, $lost, $twice) = delivered_once('after the crashes');
like($ng->error_log, qr/\d+ bytes at the end of the spool's segment "[^"]+" are no record \(a write torn by a crash, or damage\): quarantined/,
    'the torn record is skipped and logged');
like($ng->error_log, qr/the spool found at start is drained/, 'the end of the recovery is logged');
diag sprintf 'crashes with Redis away: %d events sent, %d answered 200, %d in Redis after, %d lost, '
    . '%d doubled', $sent, scalar(keys %acked), $in, $lost, $twice;

unlike(join("\n", grep { !/exited on signal 9/ } split /\n/, $ng->error_log), qr/\[alert\]/,
    'no alert but those of the SIGKILLs');

done_testing;
