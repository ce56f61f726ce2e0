#!/usr/bin/perl
# webhook-reconcile through faults, against the real module, a real Redis
# and the Odoo stand-in; each time the events Odoo recorded as not
# acknowledged end in Redis exactly once (compared by event_id), and the
# status location tells what happened:
#   - the reconciler killed (SIGKILL) mid-pass, then run again: it resumes
#     (at most the one replay in flight is sent again, answered duplicate);
#   - two instances at once: one makes the passes, the other stands by and
#     takes over when the first stops;
#   - Redis down during a pass: the module spools the replays, the
#     reconciler keeps what it could not record until Redis is back;
#   - Odoo down, then back; Odoo trickling its answers (each call ends at
#     --timeout, for the whole of it); nginx down, then back; nginx answering 401 (a
#     wrong token), then the right token: the error and the events waiting
#     in the status, nothing skipped;
#   - one event the module still refuses (413): the others are replayed,
#     the mark stays below it, it is replayed once the limit is raised;
#   - a pending event: left alone within the grace, replayed after it;
#   - Redis Cluster: the progress and the heartbeat on the queue's slot.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use WebhookTest;
use WebhookOdoo;

my $why = reconcile_skip_reason();
cannot_run($why) if $why;
require_module();

my $Q = $WebhookOdoo::QUEUE;

# n events recorded while nginx was down (503, "Connection error")
sub lost_events {
    my ($t, $n, $base) = @_;
    $t->{ng}->stop;
    my @ids = $t->{odoo}->new_events(map { event(record_id => $base + $_) } 1 .. $n);
    $t->{odoo}->control(cron => { limit => 100 });
    $t->{ng}->start;
    return @ids;
}

# ok when each id is in Redis exactly once
sub exactly_once {
    my ($t, $ids, $name) = @_;
    my $r = in_redis($t->{redis});
    my @wrong = grep { ($r->{$_} // 0) != 1 } @$ids;
    is_deeply(\@wrong, [], "$name: each of the " . scalar(@$ids) . ' events in Redis exactly once')
        or diag json_encode({ map { $_ => $r->{$_} // 0 } @wrong });
}

sub replays { (reconciler_status($_[0]{ng}))[1] }
sub rec { (reconciler_status($_[0]{ng}))[0] || {} }

subtest 'killed mid-pass, then run again' => sub {
    my $t = WebhookOdoo::setup();
    my @ids = lost_events($t, 20, 100);
    $t->{odoo}->control(delay => 0.15);
    my $r = spawn_reconcile(reconcile_args($t, '--page', 2, '--lease-ttl', '3s'));
    ok(wait_until(sub { (replays($t)->{queued} // 0) >= 6 }, timeout => 60),
        'the first instance has replayed some') or diag $r->log_text;
    $r->kill('KILL');
    my $done = replays($t)->{queued};
    my $in = grep { in_redis($t->{redis})->{$_} } @ids;
    cmp_ok($in, '<', 20, "killed with $in of 20 in Redis");
    $t->{odoo}->control(delay => 0);
    my ($rc, $out) = run_reconcile(reconcile_args($t, '--page', 2, '--lease-ttl', '3s', '--once'));
    is($rc, 0, 'run again: --once exits 0') or diag $out;
    exactly_once($t, \@ids, 'after the restart');
    my $rp = replays($t);
    is($rp->{queued}, 20, 'each queued by one replay');
    cmp_ok($rp->{duplicate} // 0, '<=', 1, 'at most the replay in flight sent again (a duplicate)');
    cmp_ok(summary($out)->{replayed}, '<=', 20 - $done + 1, 'the second run replays only what was left');
};

subtest 'two instances at once' => sub {
    my $t = WebhookOdoo::setup();
    my @ids = lost_events($t, 20, 200);
    $t->{odoo}->control(delay => 0.05);
    my @args = (reconcile_args($t, '--page', 3, '--lease-ttl', '3s'));
    my $a = spawn_reconcile(@args);
    my $b = spawn_reconcile(@args);
    ok(wait_until(sub { my $x = rec($t); ($x->{replayed} // 0) >= 20 && !$x->{waiting} }, timeout => 60),
        'the events are replayed') or diag $a->log_text . $b->log_text;
    exactly_once($t, \@ids, 'two instances');
    my $rp = replays($t);
    is($rp->{queued}, 20, 'replays.queued 20');
    is($rp->{duplicate}, 0, 'no replay twice');
    my ($active, $standby) = $a->log_text =~ /standing by/ ? ($b, $a) : ($a, $b);
    like($standby->log_text, qr/runs elsewhere .*standing by/, 'one stands by');
    unlike($active->log_text, qr/standing by/, 'the other makes the passes');

    is($active->stop, 0, 'the active one stopped (SIGTERM): exit 0');
    my @more = lost_events($t, 5, 300);
    ok(wait_until(sub { my $r = in_redis($t->{redis}); !grep { !$r->{$_} } @more }, timeout => 60),
        'the other takes over and replays what came since') or diag $standby->log_text;
    exactly_once($t, [@ids, @more], 'after the takeover');
    is(replays($t)->{duplicate}, 0, 'still no replay twice');
    $standby->stop;
};

subtest 'Redis down during a pass' => sub {
    my $t = WebhookOdoo::setup(slow => 5);
    my @ids = lost_events($t, 15, 400);
    my $r = spawn_reconcile(reconcile_args($t, '--page', 50));
    ok(wait_until(sub { (replays($t)->{queued} // 0) >= 3 }, timeout => 60),
        'some replays queued') or diag $r->log_text;
    $t->{redis}->stop;
    ok(wait_until(sub { my $x = replays($t); ($x->{queued} // 0) + ($x->{spooled} // 0) >= 15 }, timeout => 60),
        'the rest replayed while Redis is down') or diag $r->log_text;
    cmp_ok(replays($t)->{spooled}, '>', 0, 'the module spooled them (replays.spooled ' . replays($t)->{spooled} . ')');
    like($r->log_text, qr/not recorded yet.*kept until Redis answers/, 'the reconciler keeps what it could not record');
    $t->{redis}->start;
    ok(wait_until(sub { my $x = rec($t); $x->{last_pass_age_seconds} && !$x->{failing}
            && ($x->{replayed} // 0) >= 15 }, timeout => 60),
        'Redis back: a successful pass') or diag $r->log_text;
    ok(wait_until(sub { my $in = in_redis($t->{redis}); !grep { !$in->{$_} } @ids }, timeout => 30),
        'the spool drained');
    exactly_once($t, \@ids, 'Redis down and back');
    my ($rc, $out) = run_reconcile(reconcile_args($t, '--once', '--lease-ttl', '3s'), timeout => 120)
        if $r->stop == 0;
    is(summary($out // '')->{replayed}, 0, 'a pass after it replays nothing') or diag $out;
};

subtest 'Odoo down, then back' => sub {
    my $t = WebhookOdoo::setup();
    my @ids = lost_events($t, 10, 500);
    $t->{odoo}->stop;
    my $r = spawn_reconcile(reconcile_args($t));
    ok(wait_until(sub { rec($t)->{failing} }, timeout => 60), 'the status shows the reconciler failing')
        or diag $r->log_text;
    like(rec($t)->{error} // '', qr/Odoo unreachable/, 'with the error: ' . (rec($t)->{error} // ''));
    is(scalar(grep { in_redis($t->{redis})->{$_} } @ids), 0, 'nothing replayed');
    like($r->log_text, qr/WARNING .*Odoo unreachable/, 'logged with the reason');
    $t->{odoo}->start;
    ok(wait_until(sub { my $x = rec($t); !$x->{failing} && ($x->{replayed} // 0) == 10 }, timeout => 60),
        'Odoo back: the events replayed, the reconciler not failing') or diag $r->log_text;
    exactly_once($t, \@ids, 'Odoo down and back');
    is($r->stop, 0, 'it kept running (SIGTERM: exit 0)');
};

subtest 'Odoo trickling its answers: each call ends at --timeout' => sub {
    # a proxy in front of Odoo that sends a byte every 0.4 s: each read
    # within a socket timeout of 2 s, the answer never whole within it
    my $t = WebhookOdoo::setup();
    my @ids = lost_events($t, 5, 600);
    $t->{odoo}->control(trickle => 0.4);
    my $r = spawn_reconcile(reconcile_args($t, '--timeout', '2s'));
    ok(wait_until(sub { rec($t)->{failing} }, timeout => 60),
        'the status shows the reconciler failing, not a pass held by the trickle') or diag $r->log_text;
    like(rec($t)->{error} // '', qr/Odoo unreachable .*no answer to the whole request within 2s/,
        'with the error: ' . (rec($t)->{error} // ''));
    $t->{odoo}->control(trickle => 0);
    ok(wait_until(sub { my $x = rec($t); !$x->{failing} && ($x->{replayed} // 0) == 5 }, timeout => 60),
        'Odoo at full speed again: the events replayed') or diag $r->log_text;
    exactly_once($t, \@ids, 'Odoo trickling, then not');
    is($r->stop, 0, 'it kept running (SIGTERM: exit 0)');
};

subtest 'nginx down, then back' => sub {
    my $t = WebhookOdoo::setup();
    my @ids = lost_events($t, 10, 550);
    $t->{ng}->stop;
    my $r = spawn_reconcile(reconcile_args($t));
    ok(wait_until(sub { $r->log_text =~ /pass: .*nginx unreachable/ }, timeout => 60),
        'a pass fails: nginx unreachable') or diag $r->log_text;
    like($r->log_text, qr/pass: 10 not acknowledged, 0 replayed, 10 waiting/, 'the 10 events waiting');
    $t->{ng}->start;
    ok(wait_until(sub { my $x = rec($t); !$x->{failing} && ($x->{replayed} // 0) == 10 }, timeout => 60),
        'nginx back: the events replayed') or diag $r->log_text;
    like(rec($t)->{error} // '', qr/nginx unreachable/, 'the status keeps the last error: ' . (rec($t)->{error} // ''));
    exactly_once($t, \@ids, 'nginx down and back');
    is($r->stop, 0, 'it kept running (SIGTERM: exit 0)');
};

subtest 'nginx answering 401, then the right token' => sub {
    my $t = WebhookOdoo::setup();
    my @ids = lost_events($t, 10, 600);
    my $tokfile = $t->{odoo}->dir . '/token';
    write_file($tokfile, "tok-wrong\n", 0600);
    my $r = spawn_reconcile(reconcile_args($t));
    ok(wait_until(sub { rec($t)->{failing} }, timeout => 60), 'the status shows the reconciler failing')
        or diag $r->log_text;
    my $x = rec($t);
    like($x->{error} // '', qr/nginx answered 401/, 'with the error: ' . ($x->{error} // ''));
    is($x->{waiting}, 10, 'and 10 events waiting');
    cmp_ok(replays($t)->{unauthorized}, '>=', 1, 'replays.unauthorized counts the refused replays');
    is(scalar(grep { in_redis($t->{redis})->{$_} } @ids), 0, 'nothing in Redis');
    write_file($tokfile, "$WebhookOdoo::TOKEN\n", 0600);
    ok(wait_until(sub { my $x = rec($t); !$x->{failing} && !$x->{waiting} }, timeout => 60),
        'the right token: the events replayed, nothing waiting') or diag $r->log_text;
    exactly_once($t, \@ids, 'after the 401s');
    $r->stop;
};

subtest 'one event still refused (413): the others go on, it waits' => sub {
    my $t = WebhookOdoo::setup();
    $t->{ng}->stop;
    my $big = event(record_id => 700, payload => { note => 'x' x 4000 });
    my @ids = $t->{odoo}->new_events(event(record_id => 701), $big, event(record_id => 702));
    $t->{odoo}->control(cron => {});
    $t->{ng}->start;
    WebhookOdoo::reconfigure($t, max_body => '2k');
    my ($rc, $out) = run_reconcile(reconcile_args($t, '--once'));
    is($rc, 1, '--once exits 1: one event not answered 200') or diag $out;
    my $s = summary($out);
    is($s->{waiting}, 1, 'one waiting');
    is($s->{replayed}, 2, 'the two others replayed');
    like($out, qr/event $ids[1] not replayed: nginx answered 413/, 'the log says which and why');
    cmp_ok($s->{new_mark}, '<', $ids[1], "the mark ($s->{new_mark}) stays below it");
    WebhookOdoo::reconfigure($t);
    ($rc, $out) = run_reconcile(reconcile_args($t, '--once'));
    is($rc, 0, 'the limit raised: --once exits 0') or diag $out;
    is(summary($out)->{replayed}, 1, 'it replays that one');
    exactly_once($t, \@ids, 'after the 413');
};

subtest 'a pending event: left within the grace, replayed after' => sub {
    my $t = WebhookOdoo::setup();
    my ($id) = $t->{odoo}->new_events(event(record_id => 800));
    # the grace of the first pass is long enough for any load on the
    # machine (at 2 s, a busy machine started it past the grace); the
    # second's is passed by the sleep, whatever the load
    my ($rc, $out) = run_reconcile(reconcile_args($t, '--once', '--grace', '1h'));
    is($rc, 0, 'within the grace: exits 0') or diag $out;
    is(summary($out)->{young}, 1, 'one pending within the grace');
    is(in_redis($t->{redis})->{$id}, undef, 'not replayed');
    sleep 3;
    ($rc, $out) = run_reconcile(reconcile_args($t, '--once', '--grace', '2s'));
    is(summary($out)->{replayed}, 1, 'past the grace: replayed') or diag $out;
    exactly_once($t, [$id], 'the pending event');
};

subtest 'Redis Cluster: the progress under the queue\'s hash tag' => sub {
    require WebhookCluster;
    my $no = WebhookCluster::cluster_support();
    return if $no && cannot_run_subtest($no);
    my $c = WebhookCluster::start_cluster(primaries => 3, replicas => 0);
    my $ng = WebhookCluster::cluster_nginx(cluster => $c, queues => [$Q], workers => 1,
        token => "odoo-prod $WebhookOdoo::TOKEN");
    my $odoo = WebhookOdoo->new;
    my $dir = $odoo->dir;
    write_file("$dir/key", "$WebhookOdoo::KEY\n", 0600);
    write_file("$dir/token", "$WebhookOdoo::TOKEN\n", 0600);
    $odoo->control(users => [{ uid => 7, login => 'reconciler', key => $WebhookOdoo::KEY }],
        subscribers => [{ id => 3, name => 'nginx', endpoint_url => $ng->url('/q/0'),
                          auth_token => $WebhookOdoo::TOKEN }]);
    # a node that does not own the queue's slot: the client follows MOVED
    my ($other) = grep { $_->addr ne $c->owner($Q)->addr } $c->primaries;
    my $t = { redis => $other, ng => $ng, odoo => $odoo };
    my @ids = lost_events($t, 8, 900);
    my ($rc, $out) = run_reconcile(reconcile_args($t, '--redis-cluster', '--receive-url',
        $ng->url('/q/0'), '--once'));
    is($rc, 0, '--once with --redis-cluster exits 0') or diag $out;
    my %n;
    $n{ $_->{event_id} }++ for $c->envelopes($Q);
    is_deeply([grep { ($n{$_} // 0) != 1 } @ids], [], 'each of the 8 events once in the cluster');
    ok(defined $c->owner($Q)->cli('GET', "$Q:reconcile:odoo-prod/3:mark"),
        'the mark is on the queue\'s owner');
    my $rec = ($ng->request('GET', '/status')->{json}{queues}{$Q}{reconcilers} || {})->{'odoo-prod/3'};
    is($rec && $rec->{replayed}, 8, 'the status reads the heartbeat from the owner');
    ($rc, $out) = run_reconcile([@{ reconcile_args($t, '--redis-cluster', '--once') }, '--queue', 'webhook']);
    is($rc, 1, 'a queue without a hash tag: refused');
    like($out, qr/needs a hash tag/, 'saying why');
};

done_testing();
