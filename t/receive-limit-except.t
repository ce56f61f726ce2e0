#!/usr/bin/perl
# limit_except in a receive location.  nginx runs the methods it restricts
# with the limit_except block's own location configuration: those requests
# are still the receive location's.  A method the block denies gets the
# module's JSON 403; one it allows is received as usual.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $TOKEN = 'tok-limit-except-92f4';
my @H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $body = sample_text('odoo-event.json');

my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "log_format audit '\$uri \$request_method \$status \$webhook_result';\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n"
        . "    access_log %%PREFIX%%/audit.log audit;\n"
        # only Odoo's addresses may post; the HEAD probe is open to all
        . receive_location(path => '/odoo-only',
                           extra => 'limit_except HEAD { allow 192.0.2.1; deny all; }')
        # POST from loopback only
        . receive_location(path => '/loopback',
                           extra => 'limit_except HEAD { allow 127.0.0.1; deny all; }')
        . "    location = /status { webhook_status; }\n"
        . "}\n",
);

my $res = $ng->request('POST', '/odoo-only', \@H, $body);
is_json_error($res, 403, 'forbidden', 'a POST limit_except denies: JSON 403 forbidden');

$res = $ng->request('GET', '/odoo-only', {});
is_json_error($res, 403, 'forbidden', 'a GET limit_except denies: JSON 403 forbidden');

$res = $ng->raw(method => 'HEAD', drain => 1, pieces => [
    "HEAD /odoo-only HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"]);
is($res->{status}, 200, 'HEAD, outside limit_except: the probe answer');

is_queued($ng->request('POST', '/loopback', \@H, $body), 'high',
          'a POST limit_except allows is queued');

$res = $ng->request('GET', '/loopback', {});
is_json_error($res, 405, 'method_not_allowed', 'a GET limit_except allows: JSON 405');

my $st = json_decode($ng->request('GET', '/status')->{body});
is($st->{requests}{unauthorized}, 2, 'the status location counts the 403s as unauthorized');
is($st->{requests}{queued}, 1, 'and the queued event');

like($ng->access_log('audit.log'), qr{^/odoo-only POST 403 unauthorized$}m,
     '$webhook_result of the 403 is unauthorized');

done_testing();
