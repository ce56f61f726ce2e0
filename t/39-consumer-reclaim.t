#!/usr/bin/perl
# Work of a consumer that never comes back (issue 29, item 9): a consumer
# killed with SIGKILL in the middle of an event and never started again
# under its name (pods get new names).  A live consumer takes it back by
# itself once the dead one's lease has expired, logs it and counts it
# (<queue>:reclaimed), and handles it once; three events left behind are
# handled in the order they were taken, and with two live consumers each
# is handled once.
#
# Needs /usr/bin/python3 with redis-py; skipped without it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookConsumer;

plan skip_all => consumer_python() . ' cannot import redis (install python3-redis)'
    unless system(consumer_python(), '-c', 'import redis') == 0;

my $Q = '{webhook}';
my $redis = start_redis();
# ================================================ one consumer killed mid-event

my $a = WebhookConsumer->new(redis => $redis, name => 'pod-a',
                             env => { LEASE_TTL => 3 });
$a->enqueue(envelope(id => 'left-1', model => 'sleep:2'));
my $pa = $a->start('run');
ok(wait_until(sub { $a->started('left-1') }, timeout => 30), 'pod-a took the event')
    or diag($a->logs);
kill 'KILL', $pa->{pid};
$a->wait_exit($pa, 10);
is($redis->llen("$Q:processing:pod-a"), 1, 'killed: the event waits in its processing list');

# another consumer, under another name: it takes the event back by itself
my $b = WebhookConsumer->new(redis => $redis, name => 'pod-b', env => { LEASE_TTL => 6 });
$b->{out} = $a->{out};
$b->{env}{CONSUMER_TEST_OUT} = $a->{out};
my $pb = $b->start('run');
my $done = wait_until(sub { $b->done_of('left-1') }, timeout => 30);
my %f = $b->figures;
note("figures: consumer killed, never restarted: events 1, handler runs $f{runs}, "
     . "done $f{done}, done twice $f{twice}, reclaimed by pod-b: " . ($done ? 'yes' : 'no'));
ok($done, 'pod-b handled the event pod-a left') or diag($b->logs);
is($b->done_of('left-1'), 1, 'once');
like($b->logs, qr/reclaimed 1 event\(s\) of consumer pod-a, whose lease expired/,
     'pod-b logs the reclaim');
is($redis->llen("$Q:processing:pod-a"), 0, 'pod-a\'s processing list is empty');
is($redis->cli('ZSCORE', "$Q:consumers", 'pod-a') // '', '', 'pod-a is forgotten');
is($redis->cli('GET', "$Q:reclaimed"), 1, 'counted in {webhook}:reclaimed');
$b->stop($pb);

# ================================================ three left: in order; two reclaimers: once

# left($name, @ids): consumer $name took these (oldest on the right) and
# died without a lease
sub left {
    my ($name, @ids) = @_;
    $redis->cli('LPUSH', "$Q:processing:$name", envelope(id => $_)) for @ids;
    $redis->cli('ZADD', "$Q:consumers", time - 5, $name);
}

{
    my @ids = map { "three-$_" } 1 .. 3;
    left('pod-x', @ids);
    my $c = WebhookConsumer->new(redis => $redis, name => 'pod-c', env => { LEASE_TTL => 3 });
    my $pc = $c->start('run');
    ok(wait_until(sub { my %g = $c->figures; $g{done} == 3 }, timeout => 30),
       'a live consumer handled the three events') or diag($c->logs);
    is(join(' ', map { $_->{id} } grep { $_->{phase} eq 'start' } $c->notes), "@ids",
       'in the order they were taken');
    $c->stop($pc);

    @ids = map { "race-$_" } 1 .. 3;
    left('pod-y', @ids);
    my $d = WebhookConsumer->new(redis => $redis, name => 'pod-d', env => { LEASE_TTL => 3 });
    my $e = WebhookConsumer->new(redis => $redis, name => 'pod-e', env => { LEASE_TTL => 3 });
    $e->{out} = $d->{out};
    $e->{env}{CONSUMER_TEST_OUT} = $d->{out};
    my ($pd, $pe) = ($d->start('run'), $e->start('run'));
    ok(wait_until(sub { my %g = $d->figures; $g{done} == 3 }, timeout => 30),
       'two live consumers handled the three events of another') or diag($d->logs . $e->logs);
    sleep 1;
    my %g = $d->figures;
    note("figures: 3 events left, 2 reclaimers: handler runs $g{runs}, done twice $g{twice}");
    is($g{runs}, 3, 'each once');
    is($redis->cli('GET', "$Q:reclaimed"), 7, 'the counter says 7 reclaimed in all');
    like($d->logs . $e->logs, qr/reclaimed 3 event\(s\) of consumer pod-y/,
         'one of them reclaimed the three');
    $d->stop($pd);
    $e->stop($pe);
}

done_testing();
