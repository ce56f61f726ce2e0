#!/usr/bin/perl
# NGINX's own rate limiting in a receive location: limit_req's 429 is a
# JSON answer with Retry-After, counted and logged as rate_limited, so
# that the sender retries and monitoring tells throttling from failures.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $TOKEN = 'tok-rate-0a9c';
my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "limit_req_zone \$binary_remote_addr zone=senders:1m rate=1r/m;\n"
        . "log_format audit '\$status \$webhook_result';\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n"
        . "    access_log %%PREFIX%%/audit.log audit;\n"
        . receive_location(extra => "limit_req zone=senders; limit_req_status 429;\n"
                                  . "            webhook_retry_after 7s;")
        . "    location = /status { webhook_status; }\n"
        . "}\n",
);

my @h = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $body = sample_text('odoo-event.json');

is_queued($ng->request('POST', '/api/v1/webhooks/receive', \@h, $body), 'high',
          'the first event of the minute is queued');

my $res = $ng->request('POST', '/api/v1/webhooks/receive', \@h, $body);
is_json_error($res, 429, 'rate_limited', 'the next one gets a JSON 429');
is($res->{headers}{'retry-after'}, 7, 'with Retry-After: webhook_retry_after');
is($redis->llen('{webhook}:queue:high'), 1, 'and is not queued');

my $st = json_decode($ng->request('GET', '/status')->{body});
is($st->{requests}{rate_limited}, 1, 'the status location counts it as rate_limited');
is($st->{requests}{error}, 0, 'not as an error');

my $prom = $ng->request('GET', '/status?format=prometheus')->{body};
like($prom, qr/^nginx_webhook_requests_total\{queue="\{webhook\}",result="rate_limited"\} 1$/m,
     'Prometheus too');

like($ng->access_log('audit.log'), qr/^429 rate_limited$/m, '$webhook_result is rate_limited');

done_testing();
