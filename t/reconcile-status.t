#!/usr/bin/perl
# What the status location shows of the reconcilers (webhook-reconcile):
#   - per queue, the requests marked "X-Webhook-Replay" counted by result
#     ("replays" in JSON, nginx_webhook_replays_total), apart from the
#     others, a value of "0" or an empty one not counting;
#   - per queue, each reconciler's heartbeat as it left it in the hash
#     <queue>:reconcilers: age of its last successful pass (of its first
#     report before one), age of its last pass, events replayed, events
#     waiting, failing, the last error and its age, by name; at most 32,
#     errors cut at 256 bytes on a character boundary; a field that is no
#     JSON object left out;
#   - null in JSON and no series while Redis is down; promtool accepts the
#     exposition, and the alert rules on these series pass promtool's
#     rule tests.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp ();
use WebhookTest;

require_module();

my $TOKEN = 'tok-reconcile-status-7d1e';
my $Q = '{webhook}';
my @RESULTS = qw(queued duplicate spooled test unauthorized invalid unsupported_media_type
    too_large method_not_allowed unavailable overloaded rate_limited probe error);

my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "odoo-prod $TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_connect_timeout 1s;\n"
        . "webhook_redis_timeout 2s;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(queue => $Q)
        . receive_location(path => '/other', queue => '{other}')
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
);

sub post {
    my ($body, %h) = @_;
    return $ng->request('POST', '/api/v1/webhooks/receive',
        { 'Content-Type' => 'application/json', Authorization => "Bearer $TOKEN", %h }, $body);
}

sub status {
    my $res = $ng->request('GET', '/status');
    is($res->{status}, 200, 'GET /status: 200') or diag dump_res($res);
    return $res->{json};
}

sub prom {
    my $res = $ng->request('GET', '/status?format=prometheus');
    is($res->{status}, 200, 'GET /status?format=prometheus: 200');
    my %s;
    for (split /\n/, $res->{body} // '') {
        next if /^#/;
        $s{$1} = $2 if /^(\S+?(?:\{.*\})?) (\S+)$/;
    }
    return (\%s, $res->{body});
}

# Redis's clock in ms
sub redis_ms {
    my ($s, $us) = split /\n/, $redis->cli('TIME');
    return $s * 1000 + int($us / 1000);
}

my $EVENT = json_decode(sample_text('odoo-event.json'));
sub event { my %o = @_; json_encode({ %$EVENT, %o }) }

subtest 'a fresh status: replays all 0, no reconciler' => sub {
    my $j = status();
    my $qo = $j->{queues}{$Q};
    is_deeply([sort keys %{ $qo->{replays} || {} }], [sort @RESULTS], 'replays has a key per result');
    is_deeply([grep { $qo->{replays}{$_} != 0 } @RESULTS], [], 'all 0');
    is_deeply($qo->{reconcilers}, {}, 'reconcilers: {} (none has reported)');
};

subtest 'replays are counted apart, by result' => sub {
    is(post(event(event_id => 1), 'X-Webhook-Replay' => '1')->{status}, 200, 'a replay: 200');
    is(post(event(event_id => 1), 'X-Webhook-Replay' => 'odoo-prod/3')->{json}{status}, 'duplicate',
        'the same again (any value marks a replay): duplicate');
    is(post(event(event_id => 2))->{status}, 200, 'an ordinary push: 200');
    is(post(event(event_id => 3), 'X-Webhook-Replay' => '0')->{status}, 200, 'X-Webhook-Replay: 0: 200');
    is(post(event(event_id => 4), 'X-Webhook-Replay' => '')->{status}, 200, 'an empty X-Webhook-Replay: 200');
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        { 'Content-Type' => 'application/json', Authorization => 'Bearer wrong', 'X-Webhook-Replay' => '1' },
        event(event_id => 5));
    is($res->{status}, 401, 'a replay with a wrong token: 401');

    my $qo = status()->{queues}{$Q};
    is($qo->{replays}{queued}, 1, 'replays.queued 1');
    is($qo->{replays}{duplicate}, 1, 'replays.duplicate 1');
    is($qo->{replays}{unauthorized}, 1, 'replays.unauthorized 1');
    is($qo->{requests}{queued}, 4, 'requests.queued counts every request, replays too');
    is($qo->{requests}{unauthorized}, 1, 'requests.unauthorized 1');
    is(status()->{queues}{'{other}'}{replays}{queued}, 0, 'another queue: its own counters');

    my ($s, $body) = prom();
    is($s->{qq(nginx_webhook_replays_total{queue="$Q",result="queued"})}, 1, 'nginx_webhook_replays_total queued 1');
    is($s->{qq(nginx_webhook_replays_total{queue="$Q",result="unauthorized"})}, 1, 'unauthorized 1');
    is($s->{qq(nginx_webhook_replays_total{queue="{other}",result="queued"})}, 0, '{other}: 0');
    promtool_ok($body, 'replays');
};

subtest 'the reconcilers\' heartbeats' => sub {
    my $now = redis_ms();
    $redis->cli('HSET', "$Q:reconcilers", 'odoo-prod/3', json_encode({
        since => $now - 600_000, pass => $now - 2_000, ok => $now - 62_500,
        replayed => 41, waiting => 3, failing => 1,
        error => "replay of event 7: nginx answered 401 \x{e9}" x 1, error_at => $now - 2_000 }));
    $redis->cli('HSET', "$Q:reconcilers", 'odoo-b/1', json_encode({
        since => $now - 30_000, pass => $now - 1_000, ok => 0, replayed => 0, waiting => 0,
        failing => 0, error => '', error_at => 0 }));
    $redis->cli('HSET', "$Q:reconcilers", 'broken', 'not json');

    my $rec = status()->{queues}{$Q}{reconcilers};
    is_deeply([sort keys %$rec], ['odoo-b/1', 'odoo-prod/3'], 'two reconcilers; a field that is no JSON object left out');
    my $a = $rec->{'odoo-prod/3'};
    is_deeply([sort keys %$a], [sort qw(last_success_age_seconds last_pass_age_seconds replayed waiting
        failing error error_age_seconds)], 'its fields');
    cmp_ok($a->{last_success_age_seconds}, '>=', 62.5, 'last_success_age_seconds from Redis\'s clock (>= 62.5)');
    cmp_ok($a->{last_success_age_seconds}, '<', 600, '... and below the age of its first report');
    cmp_ok($a->{last_pass_age_seconds}, '>=', 2, 'last_pass_age_seconds >= 2');
    is($a->{replayed}, 41, 'replayed 41');
    is($a->{waiting}, 3, 'waiting 3');
    ok($a->{failing}, 'failing: true');
    like($a->{error}, qr/^replay of event 7: nginx answered 401/, 'the error text');
    cmp_ok($a->{error_age_seconds}, '>=', 2, 'error_age_seconds >= 2');
    my $b = $rec->{'odoo-b/1'};
    cmp_ok($b->{last_success_age_seconds}, '>=', 30, 'no success yet: the age of its first report (>= 30)');
    is($b->{error}, undef, 'no error: null');
    is($b->{error_age_seconds}, undef, 'error_age_seconds null');
    ok(!$b->{failing}, 'failing: false');
    is_deeply(status()->{queues}{'{other}'}{reconcilers}, {}, '{other} has none');

    my ($s, $body) = prom();
    my $l = qq(queue="$Q",reconciler="odoo-prod/3");
    cmp_ok($s->{"nginx_webhook_reconciler_success_age_seconds{$l}"}, '>=', 62.5, 'success_age_seconds series');
    is($s->{"nginx_webhook_reconciler_replayed_total{$l}"}, 41, 'replayed_total 41');
    is($s->{"nginx_webhook_reconciler_waiting{$l}"}, 3, 'waiting 3');
    is($s->{"nginx_webhook_reconciler_failing{$l}"}, 1, 'failing 1');
    is($s->{qq(nginx_webhook_reconciler_failing{queue="$Q",reconciler="odoo-b/1"})}, 0, 'odoo-b/1 failing 0');
    promtool_ok($body, 'reconcilers');
};

subtest 'long errors, many reconcilers, odd names' => sub {
    $redis->cli('DEL', "$Q:reconcilers");
    my $now = redis_ms();
    # 255 ASCII bytes then a 2-byte character across the 256-byte cut
    my $err = ('x' x 255) . "\x{e9}" . ('y' x 100);
    my %beat = (since => $now, pass => $now, ok => $now, replayed => 1, waiting => 0, failing => 0,
        error => $err, error_at => $now);
    $redis->cli('HSET', "$Q:reconcilers", sprintf('r%02d', $_), json_encode(\%beat)) for 1 .. 40;
    $redis->cli('HSET', "$Q:reconcilers", "a \"quoted\"\\name", json_encode(\%beat));
    my $res = $ng->request('GET', '/status');
    my $rec = $res->{json}{queues}{$Q}{reconcilers};
    is(scalar(keys %$rec), 32, 'at most 32 reconcilers a queue');
    ok(exists $rec->{"a \"quoted\"\\name"}, 'a name with quotes and a backslash, escaped');
    ok(exists $rec->{r01} && !exists $rec->{r40}, 'the first 32 by name');
    is(length $rec->{r01}{error}, 255, 'the error cut at 256 bytes, the split character dropped');
    my ($s, $body) = prom();
    ok(exists $s->{qq(nginx_webhook_reconciler_waiting{queue="$Q",reconciler="a \\"quoted\\"\\\\name"})},
        'the name escaped as a label value');
    promtool_ok($body, 'odd names');
    $redis->cli('DEL', "$Q:reconcilers");
};

subtest 'Redis down: null, no reconciler series' => sub {
    $redis->cli('HSET', "$Q:reconcilers", 'odoo-prod/3', json_encode({ since => 1, pass => 1, ok => 1,
        replayed => 1, waiting => 0, failing => 0, error => '', error_at => 0 }));
    $redis->stop;
    my $j = status();
    is($j->{queues}{$Q}{reconcilers}, undef, 'reconcilers: null');
    is($j->{queues}{$Q}{replays}{queued}, 1, 'the replay counters are still there');
    my ($s, $body) = prom();
    ok(!grep({ /^nginx_webhook_reconciler_/ } keys %$s), 'no nginx_webhook_reconciler_* series');
    ok(exists $s->{qq(nginx_webhook_replays_total{queue="$Q",result="queued"})}, 'nginx_webhook_replays_total stays');
    promtool_ok($body, 'Redis down');
    $redis->start;
};

subtest 'alert rules on the reconcilers (promtool test rules)' => sub {
    return if !have_promtool() && cannot_run_subtest('promtool is not installed');
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    system('cp', "$FindBin::Bin/../conf.d/webhook-alerts.yml", $dir) == 0 or die;
    WebhookTest::write_file("$dir/test.yml", <<'YML');
rule_files: [webhook-alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # a pass every minute until minute 5, then silent
      - series: 'nginx_webhook_reconciler_success_age_seconds{queue="{webhook}",reconciler="odoo-prod/3"}'
        values: '30 30 30 30 30 30 90 150 210 270 330 390 450 510 570 630 690 750 810 870'
      - series: 'nginx_webhook_reconciler_waiting{queue="{webhook}",reconciler="odoo-prod/3"}'
        values: '0 0 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2'
    alert_rule_test:
      - eval_time: 10m
        alertname: WebhookReconcilerSilent
        exp_alerts: []
      - eval_time: 19m
        alertname: WebhookReconcilerSilent
        exp_alerts:
          - exp_labels: {severity: critical, queue: '{webhook}', reconciler: odoo-prod/3}
            exp_annotations:
              summary: 'Reconciler odoo-prod/3 of {webhook} has had no successful pass for 10 minutes'
              description: 'Events Odoo failed to push are not being replayed: see its last error in the status location (reconcilers), and its log.'
      - eval_time: 5m
        alertname: WebhookEventsWaitingForReplay
        exp_alerts: []
      - eval_time: 15m
        alertname: WebhookEventsWaitingForReplay
        exp_alerts:
          - exp_labels: {severity: warning, queue: '{webhook}', reconciler: odoo-prod/3}
            exp_annotations:
              summary: '2 events of {webhook} that Odoo holds as not acknowledged wait for replay by odoo-prod/3'
              description: 'The module refuses the replays (wrong token, body too large, Redis and spool full) or nginx cannot be reached: the reconciler''s last error says which.'
YML
    my $out = `cd '$dir' && promtool test rules test.yml 2>&1`;
    is($?, 0, 'promtool test rules: the two alerts fire when they should, not before') or diag $out;
};

done_testing();
