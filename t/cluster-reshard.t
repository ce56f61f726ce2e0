#!/usr/bin/perl
# Resharding under load (issue 15): a Redis Cluster of 3 primaries and 3
# replicas, one queue per primary (hash tags chosen with CLUSTER KEYSLOT),
# webhook_spool on.  While forked keep-alive clients post events with
# unique event_ids (most of them to the busy queue), the busy queue's slot
# is moved to another primary with CLUSTER SETSLOT IMPORTING/MIGRATING,
# GETKEYSINSLOT + MIGRATE ... KEYS in small steps over about 1.5 s, then
# SETSLOT NODE on every primary.  During the migration the dedupe script
# gets TRYAGAIN: those events are spooled.  Then:
#   - zero non-2xx answers, none slower than the timeout plus a margin;
#   - the spool drains (status: no spooled event left, no segment);
#   - every event answered 200 is found exactly once, in its own queue, on
#     the slot's owner (the new primary for the busy queue), with the
#     envelope id of its answer;
#   - the old owner has none of the busy queue's keys any more;
#   - the status location names the new node for the busy queue.
# Skipped when the module has no webhook_redis_cluster.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;
use WebhookCluster;

skip_without_cluster();

my $TOKEN = 'tok-cluster-reshard-5b1e';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TIMEOUT = 1;
my $SLOW = slow_nginx();
my $MARGIN = $SLOW ? 8 : 1.5;
my $CLIENTS = $SLOW ? 3 : 8;
my $BEFORE = 2;         # seconds of load before the migration
my $AFTER = 3;          # and after it
my $DRAIN_BOUND = $SLOW ? 90 : 30;

my $c = start_cluster();
my @P = $c->primaries;
my @Q = $c->tags_on_each_primary('tenant');    # $Q[i] on $P[i]
my $BUSY = $Q[0];
my $SLOT = $c->slot_of($BUSY);
my $FROM = $c->owner($BUSY);
my $TO = $P[1];
note "queues: " . join(', ', map { "$Q[$_] on " . $P[$_]->addr } 0 .. $#Q)
    . "; $BUSY (slot $SLOT) moves from " . $FROM->addr . ' to ' . $TO->addr;

my $ng = cluster_nginx(cluster => $c, queues => \@Q, token => $TOKEN,
    timeout => "${TIMEOUT}s", spool => 1);

# a first event on each queue: the module serves every primary
for my $i (0 .. $#Q) {
    my $res = $ng->request('POST', "/q/$i", \%H, cluster_event("warm-$i"));
    is($res->{status}, 200, "an event to $Q[$i] before the migration") or diag dump_res($res);
}

my ($migration, $t_start, $t_mig0, $t_mig1) = (undef, time);
my ($recs, $bad) = run_clients(
    n => $CLIENTS,
    dir => $ng->path('results'),
    timeout => 90,
    work => sub {
        my ($n) = @_;
        my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 30, retry_closed => 1);
        my ($i, @r) = (0);
        my @p = qw(high medium low);
        # keep sending until the parent says the migration is over + $AFTER
        while (time - $t_start < 60) {
            last if -e $ng->path('results/stop');
            $i++;
            # three events of four to the busy queue
            my $q = $i % 4 ? 0 : 1 + int($i / 4) % 2;
            my $id = "c$n-$i-q$q";
            my $res = $cl->post("/q/$q", \%H, cluster_event($id, $p[$i % 3]));
            push @r, WebhookLoad::Client->record($id, $res);
            sleep 0.003;
        }
        return @r;
    },
    while_running => sub {
        sleep $BEFORE;
        $t_mig0 = time;
        $migration = eval { $c->migrate_slot($SLOT, $TO, duration => 1.5) };
        $t_mig1 = time;
        diag "migration failed: $@" unless $migration;
        sleep $AFTER;
        WebhookTest::write_file($ng->path('results/stop'), '');
    },
);
ok($migration, 'the slot was migrated') or BAIL_OUT('no migration');
note sprintf 'migration: %d keys in %d MIGRATE steps, %.2fs', $migration->{keys},
    $migration->{steps}, $migration->{seconds};
is($c->owner($SLOT)->addr, $TO->addr, "slot $SLOT is on " . $TO->addr . ' now');

is_deeply($bad, [], 'every client finished');
my %queue_of = map { $_->{id} => $Q[($_->{id} =~ /-q(\d)\z/)[0]] } @$recs;
my $s = summarize($recs);
my $spooled = grep { ($_->{answer_status} // '') eq 'spooled' } @$recs;
my $busy_sent = grep { $_->{id} =~ /-q0\z/ } @$recs;
is($s->{ok}, $s->{sent}, "zero non-2xx: $s->{sent} events, $s->{ok} answered 200")
    or diag "$s->{unavailable} x 503, $s->{conn_error} connection errors, $s->{other} other: "
        . join(', ', map { "$_->{id}=$_->{status}" . ($_->{error} ? "($_->{error})" : '') }
            firsts(10, grep { $_->{status} != 200 } @$recs));
cmp_ok($s->{max}, '<', $TIMEOUT + $MARGIN,
    sprintf('no answer slower than the timeout + %ss (slowest %.3fs)', $MARGIN, $s->{max}));
note "$spooled events spooled (the migration lasted "
    . sprintf('%.2fs', $migration->{seconds}) . ')';

# the drain
my $t_empty;
my $drained = wait_until(sub {
    my $st = $ng->request('GET', '/status', {}, undef, timeout => 5)->{json} || {};
    for my $q (@Q) {
        my $sp = ($st->{queues}{$q} || {})->{spool} || {};
        return 0 unless defined $sp->{events} && $sp->{events} == 0;
    }
    return 0 if () = glob $ng->path('spool/*.seg');
    $t_empty = time;
    return 1;
}, timeout => $DRAIN_BOUND, interval => 0.2);
ok($drained, sprintf('the spool is empty %.1fs after the migration (bound %ss)',
    ($t_empty // time) - $t_mig1, $DRAIN_BOUND));

my $d = check_delivery($c, $recs, \%queue_of);
is(scalar @{ $d->{lost} }, 0, 'every event answered 200 is on its queue\'s owner')
    or diag "lost: " . join(' ', firsts(10, @{ $d->{lost} }));
is_deeply($d->{twice}, [], 'none twice');
is_deeply($d->{misplaced}, [], 'each in its own queue');
is_deeply($d->{wrong_id}, [], 'each with the envelope id of its answer');
my @left = grep { /^\Q$BUSY\E:/ } $FROM->keys;
is_deeply(\@left, [], 'the old owner holds none of the busy queue\'s keys')
    or diag "left on " . $FROM->addr . ": " . join(' ', firsts(10, @left));
# all the busy queue's keys on the new owner
cmp_ok($TO->llen("$BUSY:queue:medium") + $TO->llen("$BUSY:queue:high")
    + $TO->llen("$BUSY:queue:low"), '>', 0, 'the busy queue\'s lists are on ' . $TO->addr);

my $st = $ng->request('GET', '/status', {}, undef, timeout => 5);
is($st->{status}, 200, 'status 200');
my $j = $st->{json} || {};
is(($j->{queues}{$BUSY} || {})->{node}, $TO->addr, 'status: the busy queue\'s node is the new owner')
    or diag "queues: " . json_encode($j->{queues} // {});
my $sp = ($j->{queues}{$BUSY} || {})->{spool} || {};
is($sp->{spooled} // 0, $spooled, 'status: spooled counts the events answered "spooled"');

diag sprintf 'resharding under load (slot %d, %d keys, %.2fs): %d events sent (%d to the busy '
    . 'queue), %d x 200 (%d spooled), %d found, %d lost, %d twice, %d non-2xx; longest answer '
    . '%.3fs; spool empty %.1fs after the migration',
    $SLOT, $migration->{keys}, $migration->{seconds}, $s->{sent}, $busy_sent, $s->{ok}, $spooled,
    $d->{found}, scalar @{ $d->{lost} }, scalar @{ $d->{twice} }, $s->{sent} - $s->{ok}, $s->{max},
    ($t_empty // time) - $t_mig1;

my $elog = $ng->error_log;
unlike($elog, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert, no crash')
    or diag join "\n", grep { /\[alert\]|\[emerg\]|exited on signal/ } split /\n/, $elog;
note 'error log (cluster lines): ' . join("\n", firsts(15, grep { /cluster|MOVED|ASK|TRYAGAIN/i } split /\n/, $elog));
ok($ng->stop(timeout => 20), 'nginx stops gracefully');

done_testing;
