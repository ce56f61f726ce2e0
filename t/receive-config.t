#!/usr/bin/perl
# nginx -t: configurations the module must refuse, and ones it must accept.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $tokens = "# webhook tokens\n\ntok-config-1\n";

# A complete http-level config; %o overrides pieces of it.
sub conf {
    my (%o) = @_;
    my $redis = exists $o{redis} ? $o{redis} : 'webhook_redis 127.0.0.1:' . free_port() . ';';
    my $http_extra = $o{http_extra} // '';
    my $loc = $o{location} // receive_location(
        queue => '{webhook}', api_key_header => 'X-API-Key',
        default_priority => $o{priority} // 'medium', schema => $o{schema} // 'event',
        defined $o{tokens_path} ? (tokens => $o{tokens_path}) : (),
    );
    return <<"HTTP";
    $redis
    $http_extra
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
$loc
    }
HTTP
}

sub t_ok {
    my ($name, $http, %o) = @_;
    my ($rc, $out) = nginx_t($http, files => { 'webhook.tokens' => $tokens, %{ $o{files} || {} } });
    is($rc, 0, "nginx -t accepts: $name") or diag "output:\n$out\nconfig:\n$http";
}

sub t_fail {
    my ($name, $http, $directive, %o) = @_;
    my ($rc, $out) = nginx_t($http, files => { 'webhook.tokens' => $tokens, %{ $o{files} || {} } });
    isnt($rc, 0, "nginx -t refuses: $name") or diag "output:\n$out";
    my $re = ref $directive ? $directive : qr/\Q$directive\E/;
    like($out, $re, "  ... and the message names the directive ($name)")
        or diag "output:\n$out";
    unlike($out, qr/test is successful/, "  ... and does not claim success ($name)");
}

# ---- good configs
t_ok('a full good config', conf(http_extra => <<'X'));
    webhook_redis_db 2;
    webhook_redis_connect_timeout 1s;
    webhook_redis_timeout 2s;
X

t_ok('defaults only (no queue/priority/schema/api key)', conf(location => <<'X'));
        location = /api/v1/webhooks/receive {
            webhook_receive;
            webhook_token_file %%PREFIX%%/webhook.tokens;
        }
X

t_ok('webhook_schema any, priorities high and low, two locations', conf(location =>
    receive_location(schema => 'any', default_priority => 'high')
    . receive_location(path => '/other', queue => '{other}', default_priority => 'low')));

t_ok('unix socket redis address', conf(redis => 'webhook_redis unix:/tmp/webhook-test-nonexistent.sock;'));

t_ok('password file with "password"',
    conf(http_extra => "webhook_redis_password_file %%PREFIX%%/redis.pass;"),
    files => { 'redis.pass' => "s3cret\n" });

t_ok('password file with "user password"',
    conf(http_extra => "webhook_redis_password_file %%PREFIX%%/redis.pass;"),
    files => { 'redis.pass' => "hooker s3cret\n" });

t_ok('redis not running at config time is fine', conf());

t_ok('webhook_token_file at http level only',
    conf(http_extra => 'webhook_token_file %%PREFIX%%/webhook.tokens;',
        location => <<'X'));
        location = /a { webhook_receive; }
        location = /b { webhook_receive; webhook_queue "{b}"; }
X

t_ok('webhook_token_file at server level only', conf(location => <<'X'));
        webhook_token_file %%PREFIX%%/webhook.tokens;
        location = /a { webhook_receive; }
X

t_ok('a location\'s webhook_token_file replaces the http-level one',
    conf(http_extra => 'webhook_token_file %%PREFIX%%/other.tokens;'),
    files => { 'other.tokens' => "tok-other-1\n" });

# ---- bad configs
t_fail('unknown priority in webhook_default_priority',
    conf(priority => 'urgent'), 'webhook_default_priority');

t_fail('missing token file',
    conf(tokens_path => 'no-such-file.tokens'), 'webhook_token_file');

t_fail('token file with only comments and blank lines',
    conf(tokens_path => 'empty.tokens'), 'webhook_token_file',
    files => { 'empty.tokens' => "# nothing here\n\n   \n# still nothing\n" });

t_fail('zero-length token file',
    conf(tokens_path => 'zero.tokens'), 'webhook_token_file',
    files => { 'zero.tokens' => '' });

t_fail('missing token file at http level, named at its own line',
    conf(http_extra => 'webhook_token_file %%PREFIX%%/no-such-file.tokens;',
        location => "        location = /a { webhook_receive; }\n"),
    qr/"webhook_token_file": open\(\) ".*no-such-file\.tokens" failed.*nginx\.conf:\d+/);

t_fail('unparsable webhook_redis address',
    conf(redis => 'webhook_redis nonsense:port;'), 'webhook_redis');

for my $d (qw(webhook_redis_timeout webhook_redis_connect_timeout)) {
    for my $zero (qw(0 0s 0ms)) {
        t_fail("$d $zero", conf(http_extra => "$d $zero;"),
            qr/"\Q$d\E" must be at least 1ms.*nginx\.conf:\d+/);
    }
}

t_ok('timeouts of 1ms', conf(http_extra => <<'X'));
    webhook_redis_connect_timeout 1ms;
    webhook_redis_timeout 1ms;
X

# sun_path holds 108 bytes, the last one the terminating null
my $long = '/tmp/' . ('s' x (107 - length('/tmp/') - length('.sock'))) . '.sock';
t_ok('a unix socket path of 107 characters', conf(redis => "webhook_redis unix:$long;"));
t_fail('a unix socket path of 108 characters',
    conf(redis => "webhook_redis unix:${long}x;"),
    qr/"webhook_redis": the unix socket path in "unix:\Q${long}x\E" is longer than 107 characters/);

# webhook_json_max_depth: levels of a body, 1 to 1000 (not webhook_max_depth,
# the length of a list)
for my $v (qw(1 63 1000)) {
    t_ok("webhook_json_max_depth $v", conf(http_extra => "webhook_json_max_depth $v;"));
}
for my $v (qw(0 1001)) {
    t_fail("webhook_json_max_depth $v", conf(http_extra => "webhook_json_max_depth $v;"),
        qr/"webhook_json_max_depth" must be from 1 to 1000, not "\Q$v\E" in .*nginx\.conf:\d+/);
}
for my $v (qw(-1 abc 10k)) {
    t_fail("webhook_json_max_depth $v", conf(http_extra => "webhook_json_max_depth $v;"),
        qr/"webhook_json_max_depth" directive invalid number in .*nginx\.conf:\d+/);
}

t_fail('webhook_receive without webhook_token_file', conf(location => <<'X'), qr/webhook_receive|webhook_token_file/);
        location = /api/v1/webhooks/receive {
            webhook_receive;
        }
X

done_testing;
