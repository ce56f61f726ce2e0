#!/usr/bin/perl
# Configuration that a receive location gets from elsewhere: a
# webhook_token_file at http or server level.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $HTTP_TOKEN = 'tok-http-level-5b7d1e';
my $SRV_TOKEN = 'tok-server-level-9c2a4f';

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

done_testing;
