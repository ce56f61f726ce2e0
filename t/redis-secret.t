#!/usr/bin/perl
# What the README says of the Redis password file and of a unix socket: a
# password with a space is read as "user password", "default <password>"
# works; the socket is opened by the workers, as nginx's "user", not by
# the master.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-secret-6a1f0c3e';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;

sub body {
    json_encode({ event_id => 300 + ++$n, model => 'res.partner', record_id => $n,
        event => 'write', priority => 'low' });
}

sub webhook_nginx {
    my ($redis_line, %files) = @_;
    return start_nginx(
        workers => 1,
        files => { 'webhook.tokens' => "$TOKEN\n", %files },
        http => "$redis_line\nwebhook_redis_timeout 2s;\n"
            . (exists $files{'redis.pass'}
                ? "webhook_redis_password_file %%PREFIX%%/redis.pass;\n" : '')
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location()
            . "    }\n",
    );
}

subtest 'a requirepass with spaces' => sub {
    my $pw = 'correct horse  battery';
    my $redis = start_redis(password => $pw);
    my $addr = 'webhook_redis 127.0.0.1:' . $redis->port . ';';

    my $ng = webhook_nginx($addr, 'redis.pass' => "$pw\n");
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable',
        'the bare password is read as user "correct": 503');
    like($ng->error_log, qr/webhook: redis AUTH failed: WRONGPASS/,
        '... and AUTH fails');
    ok($ng->stop, 'nginx stops gracefully');

    $ng = webhook_nginx($addr, 'redis.pass' => "default $pw  \r\n");
    is_queued($ng->request('POST', $R, \%H, body()), 'low',
        '"default <password>": queued, inner spaces kept, trailing ones not');
    is($redis->llen('{webhook}:queue:low'), 1, '... and the event is in Redis');
    ok($ng->stop, 'nginx stops gracefully');
};

SKIP: {
    skip_or_fail('needs root: the workers then run as another user', 1) if $> != 0;

    subtest 'a unix socket only root can reach' => sub {
        my $dir = WebhookTest::make_dir('sock');
        chmod 0700, $dir;
        my $redis = start_redis(unixsocket => "$dir/redis.sock");
        my $ng = webhook_nginx("webhook_redis unix:$dir/redis.sock;");
        is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable',
            'the master could, the worker cannot: 503');
        like($ng->error_log, qr/webhook: redis connect to unix:\S+ failed: Permission denied/,
            '... and the error log says why');
        ok($ng->stop, 'nginx stops gracefully');

        chmod 0755, $dir;
        $ng = webhook_nginx("webhook_redis unix:$dir/redis.sock;");
        is_queued($ng->request('POST', $R, \%H, body()), 'low',
            'a socket the worker can reach: queued');
        ok($ng->stop, 'nginx stops gracefully');
    };
}

done_testing;
