#!/usr/bin/perl
# Redis connection settings: unix socket, webhook_redis_db, password file
# ("password" and "user password"), wrong password.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-conn-9d8c7b6a5f';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { json_encode({ event_id => 100 + ++$n, model => 'res.partner', record_id => $n, event => 'write' }) }

sub webhook_nginx {
    my ($redis_line, $extra, %files) = @_;
    return start_nginx(
        workers => 1,
        files => { 'webhook.tokens' => "$TOKEN\n", %files },
        http => "$redis_line\nwebhook_redis_timeout 2s;\n$extra\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low')
            . "    }\n",
    );
}

# post_ok($ng, $redis, $db, $name): 200 and the envelope in db $db
sub post_ok {
    my ($ng, $redis, $db, $name) = @_;
    my $body = body();
    my $res = $ng->request('POST', $R, \%H, $body);
    is_queued($res, 'low', "$name: 200 queued");
    my @e = $redis->take('{webhook}:queue:low', db => $db);
    $redis->cli('FLUSHALL');    # and any dedupe marker
    is(scalar @e, 1, "$name: envelope in db $db");
    is($e[0]{env}{id}, $res->{json}{id}, "$name: envelope id") if @e;
}

subtest 'unix socket' => sub {
    my $dir = WebhookTest::make_dir('sock');
    my $redis = start_redis(unixsocket => "$dir/redis.sock");
    my $ng = webhook_nginx("webhook_redis unix:$dir/redis.sock;", '');
    post_ok($ng, $redis, 0, 'unix socket');
    $redis->stop;
    my $res = $ng->request('POST', $R, \%H, body());
    is_json_error($res, 503, 'unavailable', 'unix socket, Redis stopped: 503');
    cmp_ok($res->{elapsed}, '<', 3, 'unix socket, Redis stopped: fast');
    $redis->start;
    my $ok = wait_until(sub { $ng->request('POST', $R, \%H, body())->{status} == 200 }, timeout => 10, interval => 0.25);
    ok($ok, 'unix socket: reconnects after Redis restarts');
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'webhook_redis_db' => sub {
    my $redis = start_redis();
    my $ng = webhook_nginx('webhook_redis 127.0.0.1:' . $redis->port . ';', 'webhook_redis_db 3;');
    post_ok($ng, $redis, 3, 'db 3');
    is_deeply([$redis->keys(db => 0)], [], 'nothing in db 0');
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'password file' => sub {
    my $redis = start_redis(password => 'pw-Redis-42');
    is($redis->cli('ACL', 'SETUSER', 'hooker', 'on', '>pw-hooker-43', '~*', '+@all'), 'OK', 'ACL user created');

    my $ng = webhook_nginx('webhook_redis 127.0.0.1:' . $redis->port . ';',
        'webhook_redis_password_file %%PREFIX%%/redis.pass;', 'redis.pass' => "pw-Redis-42\n");
    post_ok($ng, $redis, 0, '"password"');
    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/pw-Redis-42/, 'the password is not in the error log');

    $ng = webhook_nginx('webhook_redis 127.0.0.1:' . $redis->port . ';',
        'webhook_redis_password_file %%PREFIX%%/redis.pass;', 'redis.pass' => "hooker pw-hooker-43\n");
    post_ok($ng, $redis, 0, '"user password"');
    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/pw-hooker-43/, 'the user password is not in the error log');

    $ng = webhook_nginx('webhook_redis 127.0.0.1:' . $redis->port . ';',
        'webhook_redis_password_file %%PREFIX%%/redis.pass;', 'redis.pass' => "not-the-password\n");
    for (1 .. 2) {
        my $res = $ng->request('POST', $R, \%H, body());
        is_json_error($res, 503, 'unavailable', "wrong password: 503 ($_)");
        cmp_ok($res->{elapsed}, '<', 3, "wrong password: fast ($_)");
    }
    is_deeply([$redis->keys], [], 'wrong password: nothing in Redis');
    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/not-the-password/, 'the wrong password is not in the error log');

    $ng = webhook_nginx('webhook_redis 127.0.0.1:' . $redis->port . ';', '');
    my $res = $ng->request('POST', $R, \%H, body());
    is_json_error($res, 503, 'unavailable', 'no password file, Redis wants one: 503');
    is_deeply([$redis->keys], [], 'no password: nothing in Redis');
    ok($ng->stop, 'nginx stops gracefully');
};

done_testing;
