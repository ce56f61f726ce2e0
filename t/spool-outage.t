#!/usr/bin/perl
# The spool through an outage under load: Redis (appendonly, appendfsync
# always) is stopped for 20 s while forked keep-alive clients send events
# with unique event_ids, one of them a sequential sender (each event after
# the answer to the one before).  Then:
#   - zero non-2xx answers, none slower than the timeout plus a margin;
#   - every event answered 200 is in Redis exactly once (event_ids
#     compared), with the envelope id of its answer;
#   - the sequential sender's events are in their list in the order sent;
#   - the spool is empty within a bound, its segments removed;
#   - the status counts what was spooled and drained.
# Under valgrind (see WebhookLoad::load_scale) the load is lighter and the
# outage shorter.

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
my $TOKEN = 'tok-spool-outage-9d2f';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TIMEOUT = 1;
my $SLOW = slow_nginx();
my $MARGIN = $SLOW ? 8 : 1.5;
my $CLIENTS = $SLOW ? 4 : 16;
my $OUTAGE = $SLOW ? 8 : 20;                  # seconds without Redis
my $BEFORE = 2;
my $AFTER = 4;
my $DRAIN_BOUND = $SLOW ? 120 : 30;

my $redis = start_redis(extra => [qw(--appendonly yes --appendfsync always)]);
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => "${TIMEOUT}s",
    http => "webhook_redis_connect_timeout 1s;\nwebhook_spool %%PREFIX%%/spool;\n",
    server => "        location = /status { webhook_status; }\n");

sub body {
    my ($id, $prio) = @_;
    return json_encode({ event_id => $id, model => 'sale.order', record_id => 7,
        event => 'write', priority => $prio, values => { name => "SO $id" } });
}

my $t_start = time;
my ($t_down, $t_up);
my ($recs, $bad) = run_clients(
    n => $CLIENTS + 1,
    dir => $ng->path('results'),
    timeout => $BEFORE + $OUTAGE + $AFTER + 60,
    work => sub {
        my ($c) = @_;
        my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 30);
        my ($i, @r) = (0);
        my @p = qw(high medium low);
        while (time - $t_start < $BEFORE + $OUTAGE + $AFTER) {
            $i++;
            # client 1 is the sequential sender, on one list
            my $id = $c == 1 ? sprintf('seq-%06d', $i) : "c$c-$i";
            my $res = $cl->post($R, \%H, body($id, $c == 1 ? 'low' : $p[$i % 3]));
            push @r, WebhookLoad::Client->record($id, $res);
            sleep 0.005 unless $c == 1;
        }
        return @r;
    },
    while_running => sub {
        sleep $BEFORE;
        $t_down = time;
        $redis->stop;
        note 'Redis stopped';
        sleep $OUTAGE;
        $redis->start;
        $t_up = time;
        note 'Redis started again';
    },
);

is_deeply($bad, [], 'every client finished');
my $s = summarize($recs);
my %answered = map { $_->{id} => $_ } grep { $_->{status} == 200 } @$recs;
my $spooled = grep { ($_->{answer_status} // '') eq 'spooled' } @$recs;

is($s->{ok}, $s->{sent}, "zero non-2xx: $s->{sent} events, $s->{ok} answered 200")
    or diag "$s->{unavailable} x 503, $s->{conn_error} connection errors, $s->{other} other";
cmp_ok($spooled, '>', 0, "$spooled of them spooled");
cmp_ok($s->{max}, '<', $TIMEOUT + $MARGIN,
    sprintf('no answer slower than the timeout + %ss (slowest %.3fs)', $MARGIN, $s->{max}));

# the drain
my $t_empty;
my $drained = wait_until(sub {
    my $st = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
    my $q = $st->{queues}{'{webhook}'}{spool} || {};
    return 0 unless defined $q->{events} && $q->{events} == 0 && !(() = glob $ng->path('spool/*.seg'));
    $t_empty = time;
    return 1;
}, timeout => $DRAIN_BOUND, interval => 0.2);
ok($drained, sprintf('the spool is empty %.1fs after Redis is back (bound %ss)',
    ($t_empty // time) - $t_up, $DRAIN_BOUND));

my @env = envelopes($redis);
my (%in, @twice);
for my $e (@env) {
    my $id = $e->{event_id} // next;
    push @twice, $id if exists $in{$id};
    $in{$id} = $e->{id};
}
my @lost = grep { !exists $in{$_} } sort keys %answered;
my @wrong = grep { exists $in{$_} && ($answered{$_}{answer} // '') ne $in{$_} } sort keys %answered;
is(scalar @lost, 0, 'every event answered 200 is in Redis') or diag "lost: @lost[0 .. 9]";
is_deeply(\@twice, [], 'none twice');
is_deeply(\@wrong, [], 'each with the envelope id of its answer');

my @seq_sent = sort grep { /^seq-/ } keys %answered;
my @seq_redis = map { $_->{event_id} } grep { ($_->{event_id} // '') =~ /^seq-/ }
    map { json_decode($_) } reverse $redis->lrange('{webhook}:queue:low');
is_deeply(\@seq_redis, \@seq_sent,
    sprintf('the sequential sender\'s %d events are in the order sent', scalar @seq_sent));

my $st = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
my $q = $st->{queues}{'{webhook}'}{spool} || {};
is($q->{spooled}, $spooled, 'status: spooled counts the events spooled');
is($q->{drained}, $spooled, 'status: drained, the same');
is($q->{quarantined}, 0, 'status: none quarantined');

diag sprintf 'Redis stopped %ds under load: %d events sent, %d x 200 (%d spooled), %d in Redis '
    . 'after, %d lost, %d doubled; slowest answer %.3fs; spool empty %.1fs after Redis was back',
    $OUTAGE, $s->{sent}, $s->{ok}, $spooled, scalar(keys %in), scalar(@lost), scalar(@twice),
    $s->{max}, ($t_empty // time) - $t_up;

my $elog = $ng->error_log;
unlike($elog, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert, no crash')
    or diag join "\n", grep { /\[alert\]|\[emerg\]|exited on signal/ } split /\n/, $elog;
ok($ng->stop(timeout => 20), 'nginx stops gracefully');

done_testing;
