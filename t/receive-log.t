#!/usr/bin/perl
# Access-log variables $webhook_result, $webhook_priority, $webhook_event_id;
# tokens never appear in the error log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-log-secret-3a9f1c77e2';
my $TOKEN2 = 'tok-log-apikey-5b0d4e88f1';
my $WRONG = 'tok-log-wrong-0c6e2a1b9d';

my $redis = start_redis();
my $ng = start_nginx(
    workers => 2,
    error_level => 'info',
    files => { 'webhook.tokens' => "$TOKEN\n$TOKEN2\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 2s;\n"
        . "log_format audit '\$webhook_result \$webhook_priority \$webhook_event_id';\n"
        . "log_format ids '\$request_id \$status \$webhook_result';\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(default_priority => 'medium', api_key_header => 'X-API-Key', max_body => '8k',
            extra => "access_log %%PREFIX%%/audit.log audit;\n"
                   . "            access_log %%PREFIX%%/ids.log ids;")
        . receive_location(path => '/strict', schema => 'event', default_priority => 'medium',
            max_body => '8k',
            extra => "access_log %%PREFIX%%/audit.log audit;\n"
                   . "            access_log %%PREFIX%%/ids.log ids;")
        . "    }\n",
);

my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $EVENT = sample_text('odoo-event.json');
my $INSTANT = sample_text('odoo-instant.json');

my $n_lines = 0;
# next_line($file): waits for the next access-log line (written after the response)
sub next_line {
    my ($file, $want) = @_;
    my $got = wait_until(sub {
        my @l = split /\n/, $ng->access_log($file);
        return @l >= $want ? $l[$want - 1] : undef;
    }, timeout => 10);
    return $got;
}

# logged($res, $expect_regex, $name): the request's audit line matches
sub logged {
    my ($res, $re, $name) = @_;
    $n_lines++;
    my $line = next_line('audit.log', $n_lines);
    ok(defined $line, "$name: an audit line was written") or return;
    like($line, $re, "$name: audit line") or diag "response:\n" . dump_res($res);
    my $ids = next_line('ids.log', $n_lines);
    like($ids // '', qr/^[0-9a-f]{32} $res->{status} /, "$name: ids line has the request id and status");
    return $ids;
}

$redis->flushall;

my $res = $ng->request('POST', $R, \%H, $EVENT);
is_queued($res, 'high', 'event sample queued');
my $ids = logged($res, qr/^queued high 48213$/, 'event sample');
is((split / /, $ids // '')[0], $res->{json}{id}, 'the answered id is $request_id');

$res = $ng->request('POST', $R, \%H, $INSTANT);
is_queued($res, 'high', 'instant sample queued (webhook_instant_priority)');
$ids = logged($res, qr/^queued high 48214$/, 'instant sample');
is((split / /, $ids // '')[0], $res->{json}{id}, 'the answered id is $request_id (instant)');

$res = $ng->request('POST', $R, { %H, Authorization => undef, 'X-API-Key' => $TOKEN2 },
    json_encode({ event_id => 5150, model => 'res.partner', record_id => 1, event => 'write', priority => 'low' }));
is_queued($res, 'low', 'X-API-Key event queued');
logged($res, qr/^queued low 5150$/, 'X-API-Key event');

$res = $ng->request('POST', $R, { %H, Authorization => undef }, $EVENT);
is($res->{status}, 401, 'no token: 401');
logged($res, qr/^unauthorized /, 'no token');

$res = $ng->request('POST', $R, { %H, Authorization => "Bearer $WRONG" }, $EVENT);
is($res->{status}, 401, 'wrong token: 401');
logged($res, qr/^unauthorized /, 'wrong token');

$res = $ng->request('POST', $R, { %H, Authorization => undef, 'X-API-Key' => $WRONG }, $EVENT);
is($res->{status}, 401, 'wrong X-API-Key: 401');
logged($res, qr/^unauthorized /, 'wrong X-API-Key');

$res = $ng->request('POST', $R, \%H, '{"event_id": 1, ');
is($res->{status}, 400, 'bad JSON: 400');
logged($res, qr/^invalid /, 'bad JSON');

$res = $ng->request('POST', '/strict', \%H, json_encode({ model => 'x', record_id => 1 }));
is($res->{status}, 400, 'missing event, webhook_schema event: 400');
logged($res, qr/^invalid /, 'missing event, webhook_schema event');

$res = $ng->request('POST', $R, \%H, json_encode({ model => 'x', record_id => 1 }));
is_queued($res, 'medium', 'missing event_id and event, webhook_schema any: queued');
logged($res, qr/^queued medium -$/, 'missing event_id and event, webhook_schema any');

$res = $ng->request('POST', $R, { %H, 'X-Webhook-Priority' => 'urgent' },
    json_encode({ event_id => 1, model => 'x', record_id => 1, event => 'write' }));
is($res->{status}, 400, 'bad priority: 400');
logged($res, qr/^invalid /, 'bad priority');

$res = $ng->request('POST', $R, { %H, 'Content-Type' => 'text/plain' }, $EVENT);
is($res->{status}, 415, 'text/plain: 415');
logged($res, qr/^unsupported_media_type /, 'text/plain');

$res = $ng->request('GET', $R, \%H);
is($res->{status}, 405, 'GET: 405');
logged($res, qr/^method_not_allowed /, 'GET');

$res = $ng->request('HEAD', $R, {});
is($res->{status}, 200, 'HEAD: 200');
logged($res, qr/^probe /, 'HEAD');

$res = $ng->raw(timeout => 15, pieces => [
    "POST $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
    . "Authorization: Bearer $TOKEN\r\nContent-Length: 100000\r\n\r\n"]);
is($res->{status}, 413, 'Content-Length over the limit: 413');
logged($res, qr/^too_large /, 'Content-Length over the limit');

my $big = 'x' x 1000;
$res = $ng->chunked(path => $R, headers => \%H, chunks => [('{"a":"' . $big), ($big) x 10, '"}'], timeout => 20);
is($res->{status}, 413, 'chunked body over the limit: 413');
logged($res, qr/^too_large /, 'chunked body over the limit');

$redis->stop;
$res = $ng->request('POST', $R, \%H, json_encode({ event_id => 6001, model => 'x', record_id => 1, event => 'write' }));
is($res->{status}, 503, 'Redis down: 503');
logged($res, qr/^unavailable /, 'Redis down');

ok($ng->stop, 'nginx stops gracefully');
my $elog = $ng->error_log;
for my $t ([$TOKEN, 'bearer token'], [$TOKEN2, 'api-key token'], [$WRONG, 'wrong token tried']) {
    unlike($elog, qr/\Q$t->[0]\E/, "the error log does not contain the $t->[1]");
}
my @tok = grep { /tok-log-/ } split /\n/, $elog;
is_deeply(\@tok, [], 'no token-like string in the error log') or diag join "\n", @tok;
unlike($elog, qr/\[alert\]|open socket/, 'no alert/open socket in the error log');

done_testing;
