#!/usr/bin/perl
# The errors nginx raises itself in a receive location before the module
# took the request: what JSON they get, how they are counted and logged.
#
#   - limit_req and limit_conn with their default status, 503: a rate
#     limit (rate_limited, Retry-After), not an internal error;
#   - another 503 (return 503): unavailable, with Retry-After;
#   - deny: 403 forbidden, auth_basic: 401 unauthorized, both counted as
#     unauthorized.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;

require_module();

my $TOKEN = 'tok-nginx-errors-7d21';
my @H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $body = sample_text('odoo-event.json');

my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n", 'htpasswd' => "odoo:{PLAIN}secret\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "limit_req_zone \$binary_remote_addr zone=senders:1m rate=1r/m;\n"
        . "limit_conn_zone \$binary_remote_addr zone=conns:1m;\n"
        . "log_format audit '\$uri \$status \$webhook_result';\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n"
        . "    access_log %%PREFIX%%/audit.log audit;\n"
        . "    webhook_retry_after 7s;\n"
        . receive_location(path => '/req', extra => 'limit_req zone=senders;')
        . receive_location(path => '/conn', extra => 'limit_conn conns 1;')
        . receive_location(path => '/down', extra => 'return 503;')
        . receive_location(path => '/denied', extra => 'deny all;')
        . receive_location(path => '/basic',
                           extra => 'auth_basic "webhook"; auth_basic_user_file %%PREFIX%%/htpasswd;')
        . "    location = /status { webhook_status; }\n"
        . "}\n",
);

sub status { json_decode($ng->request('GET', '/status')->{body}) }

# limit_req, limit_req_status left at 503
is_queued($ng->request('POST', '/req', \@H, $body), 'high', 'limit_req: the first event passes');
my $res = $ng->request('POST', '/req', \@H, $body);
is_json_error($res, 503, 'rate_limited', 'limit_req: the next one is a JSON 503 rate_limited');
is($res->{headers}{'retry-after'}, 7, 'with Retry-After: webhook_retry_after');

# limit_conn 1: a request still sending its body holds the one connection
my $held = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
    Proto => 'tcp', Timeout => 5) or die "connect: $!";
print {$held} "POST /conn HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    . "Authorization: Bearer $TOKEN\r\nContent-Length: 100\r\n\r\n{";
$res = wait_until(sub {
    my $r = $ng->request('POST', '/conn', \@H, $body, timeout => 5);
    return $r->{status} == 503 ? $r : undef;
}, timeout => 10);
ok($res, 'limit_conn: a second connection is refused while the first one is open')
    or diag $ng->error_log;
is_json_error($res // {}, 503, 'rate_limited', 'limit_conn: a JSON 503 rate_limited');
is(($res // {})->{headers}{'retry-after'}, 7, 'with Retry-After');
close $held;

# another 503 raised by nginx
$res = $ng->request('POST', '/down', \@H, $body);
is_json_error($res, 503, 'unavailable', 'return 503: a JSON 503 unavailable');
is($res->{headers}{'retry-after'}, 7, 'with Retry-After');

# deny
$res = $ng->request('POST', '/denied', \@H, $body);
is_json_error($res, 403, 'forbidden', 'deny: a JSON 403 forbidden');
ok(!exists $res->{headers}{'retry-after'}, 'without Retry-After');

# auth_basic
$res = $ng->request('POST', '/basic', \@H, $body);
is_json_error($res, 401, 'unauthorized', 'auth_basic: a JSON 401 unauthorized');
like($res->{headers}{'www-authenticate'} // '', qr/^Basic realm="webhook"/,
     "with auth_basic's WWW-Authenticate");

my $st = status();
is($st->{requests}{rate_limited}, 2, 'the status location counts both limits as rate_limited');
is($st->{requests}{unavailable}, 1, 'return 503 as unavailable');
is($st->{requests}{unauthorized}, 2, 'deny and auth_basic as unauthorized');
is($st->{requests}{error}, 0, 'nothing as an error');

my $log = $ng->access_log('audit.log');
like($log, qr{^/req 503 rate_limited$}m, '$webhook_result of limit_req is rate_limited');
like($log, qr{^/conn 503 rate_limited$}m, 'of limit_conn too');
like($log, qr{^/down 503 unavailable$}m, 'of return 503: unavailable');
like($log, qr{^/denied 403 unauthorized$}m, 'of deny: unauthorized');
like($log, qr{^/basic 401 unauthorized$}m, 'of auth_basic: unauthorized');

done_testing();
