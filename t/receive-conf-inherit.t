#!/usr/bin/perl
# Configuration that a receive location gets from elsewhere: a
# webhook_token_file at http or server level, and the "if" and
# "limit_except" blocks inside a receive location, which must see the
# location's own settings (its queue and its counters, the JSON answers).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $HTTP_TOKEN = 'tok-http-level-5b7d1e';
my $SRV_TOKEN = 'tok-server-level-9c2a4f';
my $LOC_TOKEN = 'tok-location-level-3e8b6d';

my $redis = start_redis();
my $next_id = 1;

sub ev {
    json_encode({ event_id => $next_id++, model => 'sale.order', record_id => 5,
        event => 'write', priority => 'low' });
}

sub post {
    my ($ng, $path, $token, %h) = @_;
    return $ng->request('POST', $path, {
        'Content-Type' => 'application/json',
        'Authorization' => "Bearer $token",
        %h,
    }, ev());
}

sub status {
    my ($ng) = @_;
    my $res = $ng->request('GET', '/status');
    return ref $res->{json} eq 'HASH' ? $res->{json} : {};
}

# start(...): nginx, or undef (and a failed test) when it does not start
sub start {
    my ($name, %o) = @_;
    my $ng = eval { start_nginx(%o) };
    ok($ng, "nginx starts: $name") or diag $@;
    return $ng;
}

# ---- webhook_token_file at http and at server level

{
    my $ng = start('token files at http and server level',
        files => {
            'http.tokens' => "$HTTP_TOKEN\n",
            'server.tokens' => "$SRV_TOKEN\n",
        },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n" . <<'HTTP');
    webhook_token_file %%PREFIX%%/http.tokens;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location = /http-a { webhook_receive; webhook_queue "{a}"; }
        location = /http-b { webhook_receive; webhook_queue "{b}"; }
        location = /status { webhook_status; }
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name srv.test;
        webhook_token_file %%PREFIX%%/server.tokens;

        location = /srv { webhook_receive; webhook_queue "{srv}"; }
    }
HTTP

    SKIP: {
        skip 'nginx did not start', 5 unless $ng;

        is_queued(post($ng, '/http-a', $HTTP_TOKEN), 'low',
            'the http-level token is accepted in a location');
        is_queued(post($ng, '/http-b', $HTTP_TOKEN), 'low',
            '... and in a second location of the same file');
        is_json_error(post($ng, '/http-a', $SRV_TOKEN), 401, 'unauthorized',
            'the server-level token of another server is not');
        is_queued(post($ng, '/srv', $SRV_TOKEN, Host => 'srv.test'), 'low',
            'the server-level token is accepted in its server');
        is_json_error(post($ng, '/srv', $HTTP_TOKEN, Host => 'srv.test'), 401,
            'unauthorized', 'the server-level file replaces the http-level one');
        $ng->stop;
    }
    $redis->flushall;
}

# ---- "if" and "limit_except" inside a receive location

{
    my $ng = start('if and limit_except in receive locations',
        files => { 'webhook.tokens' => "$LOC_TOKEN\n" },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n" . <<'HTTP');
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        webhook_token_file %%PREFIX%%/webhook.tokens;

        location = /first { webhook_receive; webhook_queue "{first}"; }

        location = /iffed {
            webhook_receive;
            webhook_queue "{iffed}";

            if ($http_x_foo) {
                set $foo 1;
            }

            if ($http_x_block) {
                return 403;
            }
        }

        location = /limited {
            webhook_receive;
            webhook_queue "{limited}";

            limit_except POST {
                deny all;
            }
        }

        location /pre/ {
            webhook_receive;
            webhook_queue "{pre}";

            location /pre/inner/ {
                return 404;
            }
        }

        location = /status { webhook_status; }
    }
HTTP

    SKIP: {
        skip 'nginx did not start', 14 unless $ng;

        is_queued(post($ng, '/iffed', $LOC_TOKEN, 'X-Foo' => 'yes'), 'low',
            'a POST that matches the "if" is queued');
        is($redis->llen('{iffed}:queue:low'), 1, '... on the location\'s list');
        is($redis->llen('{first}:queue:low'), 0, '... not on the first queue\'s');

        my $j = status($ng);
        is($j->{queues}{'{iffed}'}{requests}{queued}, 1,
            'it is counted in the location\'s queue');
        is($j->{queues}{'{iffed}'}{low}{events}, 1,
            'its event is credited to the location\'s queue');
        is($j->{queues}{'{first}'}{low}{events}, 0,
            '... not to the first queue of the configuration');
        is($j->{requests}{queued}, 1, 'the top-level requests count it');

        is_json_error($ng->request('POST', '/iffed', { 'X-Block' => 1 }, ev()),
            403, ['error', 'forbidden'],
            '"return 403" in an "if" answers JSON');

        is_json_error($ng->request('GET', '/limited'), 403, ['error', 'forbidden'],
            'a method that "limit_except" denies gets a JSON 403');
        is_queued(post($ng, '/limited', $LOC_TOKEN), 'low',
            'the method it allows is queued');

        $j = status($ng);
        my $limited = 0;
        $limited += $_ for values %{ $j->{queues}{'{limited}'}{requests} || {} };
        is($limited, 2, 'both answers are counted in the location\'s queue');
        my $first = 0;
        $first += $_ for values %{ $j->{queues}{'{first}'}{requests} || {} };
        is($first, 0, 'nothing is counted in the first queue');

        # a location nested in a receive location has a handler of its own
        my $res = $ng->request('GET', '/pre/inner/x');
        is($res->{status}, 404, 'a location nested in a receive location answers itself');
        $j = status($ng);
        my $pre = 0;
        $pre += $_ for values %{ $j->{queues}{'{pre}'}{requests} || {} };
        is($pre, 0, '... and is not counted as the receive location');
        $ng->stop;
    }
}

done_testing;
