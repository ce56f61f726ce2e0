#!/usr/bin/perl
# Work of a consumer that never comes back (issue 29, item 9): a consumer
# killed with SIGKILL in the middle of an event and never started again
# under its name (pods get new names).  The status location shows the
# event in flight and its age, in JSON and Prometheus; a live consumer
# takes it back by itself once the dead one's lease has expired, logs it
# and counts it (the status's "reclaimed"), and handles it once; with two
# live consumers and three events left behind, each event is handled
# once.  The alert on events in flight too long fires (promtool test
# rules on conf.d/webhook-alerts.yml).
#
# Needs /usr/bin/python3 with redis-py; skipped without it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookConsumer;

cannot_run(consumer_python() . ' cannot import redis (install python3-redis)')
    unless system(consumer_python(), '-c', 'import redis') == 0;
require_module();

my $Q = '{webhook}';
my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "tok-reclaim-40c2e1\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . receive_location()
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
);

sub status {
    my $res = $ng->request('GET', '/status', {}, undef);
    is($res->{status}, 200, 'status answers 200') or diag(dump_res($res));
    return ($res->{json} || {})->{queues}{$Q} || {};
}

sub prometheus {
    my $res = $ng->request('GET', '/status?format=prometheus', {}, undef);
    return $res->{body} // '';
}

sub metric {
    my ($body, $name) = @_;
    return $body =~ /^\Q$name\E\{queue="\Q$Q\E"\} (\S+)$/m ? $1 : undef;
}

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
sleep 1.1;

my $st = status();
is($st->{in_flight}{events}, 1, 'status: 1 event in flight') or diag(explain($st));
cmp_ok($st->{in_flight}{oldest_age_seconds} // 0, '>=', 1,
       'status: the oldest taken at least 1 s ago');
my $prom = prometheus();
is(metric($prom, 'nginx_webhook_in_flight_events'), 1, 'Prometheus: nginx_webhook_in_flight_events 1')
    or diag($prom);
cmp_ok(metric($prom, 'nginx_webhook_in_flight_oldest_age_seconds') // 0, '>=', 1,
       'Prometheus: nginx_webhook_in_flight_oldest_age_seconds');
is(metric($prom, 'nginx_webhook_reclaimed_events_total'), 0,
   'Prometheus: nginx_webhook_reclaimed_events_total 0');

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
$st = status();
is($st->{in_flight}{events}, 0, 'status: nothing in flight');
is($st->{in_flight}{reclaimed}, 1, 'status: 1 event reclaimed');
is(metric(prometheus(), 'nginx_webhook_reclaimed_events_total'), 1,
   'Prometheus: nginx_webhook_reclaimed_events_total 1');
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

# ================================================ the alert

SKIP: {
    skip_or_fail('promtool is not installed', 1) unless have_promtool();
    my $dir = tempdir('alert-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $summary = 'A consumer of {webhook} holds an event for more than 5 minutes';
    my $description = 'An event taken by a consumer is neither done nor failed: no live '
        . 'consumer reclaims the processing list of a dead one (all stopped?), or a consumer '
        . 'is stuck. Find it in {webhook}:consumers (ZRANGE ... WITHSCORES: the time it took '
        . 'the event); webhook-consumer recover --all takes back the lists of dead ones.';
    write_file("$dir/test.yml", <<"YML");
rule_files:
  - $FindBin::Bin/../conf.d/webhook-alerts.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'nginx_webhook_in_flight_oldest_age_seconds{queue="{webhook}",instance="n1"}'
        values: '0 60 120 180 240 300 360 420 480 540 600 660 720 780'
      - series: 'nginx_webhook_in_flight_oldest_age_seconds{queue="{other}",instance="n1"}'
        values: '5 5 5 5 5 5 5 5 5 5 5 5 5 5'
    alert_rule_test:
      - eval_time: 4m
        alertname: WebhookEventInFlightTooLong
        exp_alerts: []
      - eval_time: 12m
        alertname: WebhookEventInFlightTooLong
        exp_alerts:
          - exp_labels:
              severity: warning
              queue: '{webhook}'
              instance: n1
            exp_annotations:
              summary: "$summary"
              description: "$description"
YML
    my $out = `promtool test rules $dir/test.yml 2>&1`;
    is($?, 0, 'WebhookEventInFlightTooLong fires for an event in flight too long, only then')
        or diag($out);
}

done_testing();
