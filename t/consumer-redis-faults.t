#!/usr/bin/perl
# The reference consumer against a Redis that refuses it (issue 29, items 1
# and 5): a primary demoted to replica (REPLICAOF: READONLY at the ack,
# UNBLOCKED while idle in BLMOVE), Redis at maxmemory with noeviction,
# another client's long Lua script (BUSY), and a SIGTERM while Redis is
# away at the ack.  The consumer runs under a supervisor that starts it
# again whenever it exits; each case counts the events, the handler runs,
# the events done twice and the exits.  Every Redis error is transient:
# the consumer logs it, waits and goes on, never exits, and never runs a
# handled event again because its ack was refused.
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

cannot_run(consumer_python() . ' cannot import redis (install python3-redis)')
    unless system(consumer_python(), '-c', 'import redis') == 0;

my $Q = '{webhook}';

# ================================================ READONLY at the ack

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis);
    $c->enqueue(map { envelope(id => "ro-$_", model => 'sleep:1') } 1 .. 3);
    my ($demoted, $promoted) = (0, 0);
    my $exits = $c->supervise(seconds => 40, until => sub { $c->done_at_least(3) },
        during => sub {
            # the first event in the handler: the primary is demoted (its
            # new primary unreachable, it keeps its data) for 2.5 s
            if (!$demoted && $c->started('ro-1')) {
                $redis->cli('REPLICAOF', '127.0.0.1', free_port());
                $demoted = time;
            } elsif ($demoted && !$promoted && time > $demoted + 2.5) {
                $redis->cli('REPLICAOF', 'NO', 'ONE');
                $promoted = 1;
            }
        });
    ok($promoted, 'Redis was a replica for 2.5 s while the handler ran');
    my %f = $c->note_figures('READONLY at the ack', 3, $exits);
    is($exits, 0, 'READONLY: the consumer never exited') or diag($c->logs);
    is($f{runs}, 3, 'the handler ran 3 times for 3 events');
    is($f{twice}, 0, 'no event was done twice');
    like($c->logs, qr/ERROR .*ReadOnlyError: .*read only replica/, 'the refusal is logged at error level');
    is($redis->llen("$Q:processing:c1"), 0, 'nothing left in its processing list');
}

# ================================================ UNBLOCKED while idle

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis);
    my ($demoted, $promoted, $pushed) = (0, 0, 0);
    my $exits = $c->supervise(seconds => 30, until => sub { $c->done_at_least(1) },
        during => sub {
            # idle in BLMOVE (its lease taken, nothing queued): demoted for
            # 1.5 s, then an event
            if (!$demoted && $redis->cli('CLIENT', 'LIST') =~ /cmd=blmove/) {
                $redis->cli('REPLICAOF', '127.0.0.1', free_port());
                $demoted = time;
            } elsif ($demoted && !$promoted && time > $demoted + 1.5) {
                $redis->cli('REPLICAOF', 'NO', 'ONE');
                $promoted = time;
            } elsif ($promoted && !$pushed && time > $promoted + 0.5) {
                $c->enqueue(envelope(id => 'idle-1'));
                $pushed = 1;
            }
        });
    ok($pushed, 'Redis was a replica for 1.5 s while the consumer waited in BLMOVE');
    my %f = $c->note_figures('UNBLOCKED while idle', 1, $exits);
    is($exits, 0, 'UNBLOCKED: the consumer never exited') or diag($c->logs);
    is($f{runs}, 1, 'and handled the event queued afterwards, once');
    like($c->logs, qr/ERROR .*(UNBLOCKED|READONLY)/, 'the refusal is logged at error level');
}

# ================================================ maxmemory, noeviction

{
    my $redis = start_redis(extra => ['--maxmemory-policy', 'noeviction']);
    my $c = WebhookConsumer->new(redis => $redis);
    $c->enqueue(map { envelope(id => "oom-$_", model => 'sleep:0.2') } 1 .. 10);
    my $full = 0;
    my $exits = $c->supervise(seconds => 30, until => sub { $c->done_at_least(10) },
        during => sub {
            # after 2 events, Redis is full: every command that may grow
            # memory is refused ("OOM command not allowed")
            return if $full || !$c->done_at_least(2);
            $redis->cli('CONFIG', 'SET', 'maxmemory', 1);
            $full = 1;
        });
    my $queued = 0;
    $queued += $redis->llen("$Q:queue:$_") for qw(high medium low);
    my %f = $c->note_figures('maxmemory noeviction', 10, $exits);
    ok($full, 'Redis was full after 2 events');
    is($exits, 0, 'maxmemory: the consumer never exited') or diag($c->logs);
    is($f{done}, 10, 'it drained all 10 events from the full Redis');
    is($queued, 0, 'none is left queued');
    is($f{twice}, 0, 'none was done twice');
    like($redis->cli('LPUSH', 'probe', 'x') // '', qr/^OOM /,
         'Redis is still full (another LPUSH is refused)');
}

# ================================================ BUSY: another client's script

{
    my $redis = start_redis(extra => ['--busy-reply-threshold', 100]);
    my $c = WebhookConsumer->new(redis => $redis);
    $c->enqueue(map { envelope(id => "busy-$_", model => 'sleep:0.05') } 1 .. 30);
    my $busy;
    my $exits = $c->supervise(seconds => 40, until => sub { $c->done_at_least(30) },
        during => sub {
            # after 10 events: a read-only script that runs 2.6 s; past
            # 100 ms every other client is answered BUSY
            return if $busy || !$c->done_at_least(10);
            $busy = fork // die "fork: $!";
            if (!$busy) {
                open STDOUT, '>', '/dev/null';
                exec($ENV{REDIS_CLI} || 'redis-cli', '-p', $redis->port, 'EVAL',
                     "local s = redis.call('TIME') while true do "
                     . "local t = redis.call('TIME') if (t[1] - s[1]) * 1000000 "
                     . "+ t[2] - s[2] > 2600000 then return 1 end end", 0)
                    or POSIX::_exit(127);
            }
        });
    waitpid($busy, 0) if $busy;
    my %f = $c->note_figures('BUSY script', 30, $exits);
    ok($busy, 'a 2.6 s script ran after 10 events');
    is($exits, 0, 'BUSY: the consumer never exited') or diag($c->logs);
    is($f{done}, 30, 'all 30 events were done');
    is($f{runs}, 30, 'with 30 handler runs');
    is($f{twice}, 0, 'none twice');
    like($c->logs, qr/ERROR .*BUSY/, 'BUSY is logged at error level');
}

# ================================================ SIGTERM, Redis away at the ack

{
    my $redis = start_redis(extra => ['--appendonly', 'yes', '--appendfsync', 'always']);
    my $c = WebhookConsumer->new(redis => $redis);
    $c->enqueue(envelope(id => 'term-1', model => 'sleep:1.5'));
    my $p = $c->start('run');
    ok(wait_until(sub { $c->started('term-1') }, timeout => 30), 'the handler started')
        or diag($c->logs);
    $redis->stop;                       # shut down, its AOF written
    kill 'TERM', $p->{pid};
    my $early = $c->wait_exit($p, 3);   # the handler is done after 1.5 s
    $redis->start;                      # back, with its data
    my $rc = $early // $c->wait_exit($p, 30);
    # what a supervisor does then: start it again, until the queue is empty
    my ($rc2, $log2) = $c->run('run', '--drain');
    my %f = $c->note_figures('SIGTERM, Redis away at the ack', 1, ($rc // 1) != 0 ? 1 : 0);
    is($rc, 0, 'SIGTERM while Redis is away: exit 0 once the ack is written')
        or diag($c->logs);
    is($c->done_of('term-1'), 1, 'the event was done once');
    is($f{runs}, 1, 'its handler ran once (not again after the restart)');
    is($redis->cli('HGET', "$Q:attempts", 'term-1') // '', '', 'no failed attempt counted');
    like($c->logs, qr/finishing the current event/, 'the stop was logged');
}

done_testing();
