#!/usr/bin/perl
# The shipped examples work: conf.d/webhook.conf serves a real push and a
# status scrape; the Prometheus scrape job and alert rules pass promtool.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use WebhookTest;

require_module();

my $repo = "$FindBin::Bin/..";
my $conf = read_file("$repo/conf.d/webhook.conf");
ok(defined $conf, 'conf.d/webhook.conf is there');

my $redis = start_redis();

# the same file, with this test's paths and ports
(my $http = $conf) =~ s{/etc/nginx/webhook\.tokens}{%%PREFIX%%/webhook.tokens}g;
$http =~ s{/var/log/nginx/webhook\.log}{%%PREFIX%%/webhook.log}g;
$http =~ s{listen 127\.0\.0\.1:8080;}{listen 127.0.0.1:%%PORT%%;};
$http =~ s{webhook_redis 127\.0\.0\.1:6379;}{'webhook_redis ' . $redis->addr . ';'}e;
isnt($http, $conf, 'paths and ports replaced');

my $ng = start_nginx(http => $http, files => { 'webhook.tokens' => "example-token\n" });

my $res = $ng->request('POST', '/api/v1/webhooks/receive',
    { 'Content-Type' => 'application/json', Authorization => 'Bearer example-token' },
    sample_text('odoo-event.json'));
is_queued($res, 'high', 'the example location queues the Odoo event');
is($redis->llen('{webhook}:queue:high'), 1, 'the envelope is in {webhook}:queue:high');

$res = $ng->request('GET', '/webhook/status');
is($res->{status}, 200, 'the example status location answers on loopback');
my $status = json_decode($res->{body});
is($status->{queues}{'{webhook}'}{high}{depth}, 1, 'and reports the depth');

like($ng->access_log('webhook.log'), qr/result=queued priority=high event_id=48213/,
     'the audit log line names result, priority and event id');

SKIP: {
    skip_or_fail('promtool is not installed', 2) unless have_promtool();
    my $dir = tempdir(CLEANUP => 1);
    system('cp', "$repo/conf.d/prometheus.yml", "$repo/conf.d/webhook-alerts.yml", $dir);
    my $out = `promtool check config $dir/prometheus.yml 2>&1`;
    is($?, 0, 'promtool check config accepts conf.d/prometheus.yml') or diag $out;
    $out = `promtool check rules $dir/webhook-alerts.yml 2>&1`;
    is($?, 0, 'promtool check rules accepts conf.d/webhook-alerts.yml') or diag $out;
}

done_testing();
