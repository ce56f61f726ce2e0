#!/usr/bin/perl
# Only the processes that serve requests connect to Redis.  With a
# proxy_cache_path, nginx also runs a cache manager and a cache loader:
# they run the modules' init_process too, and must not open a Redis
# connection of their own (nor count reconnects).  master_process off
# (one process serving everything) still connects.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-helpers-5b2d8e';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { json_encode({ event_id => ++$n, model => 'res.partner', record_id => $n, event => 'write' }) }

my $redis = start_redis();

sub conf {
    return 'webhook_redis ' . $redis->addr . ";\n"
        . "proxy_cache_path %%PREFIX%%/cache keys_zone=hooks:1m;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(default_priority => 'low')
        . "        location = /status { webhook_status; }\n"
        . "    }\n";
}

sub connected_lines { scalar(() = $_[0]->error_log =~ /webhook: connected to redis/g) }

# Redis's clients other than the redis-cli asking
sub redis_clients {
    my $list = $redis->cli('CLIENT', 'LIST') // '';
    return scalar grep { !/ cmd=client\|list / } split /\n/, $list;
}

sub title {
    my $t = WebhookTest::read_file("/proc/$_[0]/cmdline") // '';
    $t =~ s/\0+\z//;
    return $t;
}

subtest 'a worker, a cache manager and a cache loader' => sub {
    my $ng = start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" }, http => conf());
    ok(wait_until(sub { $ng->workers >= 3 }, timeout => 10), '3 processes under the master')
        or diag join "\n", map { title($_) } $ng->workers;
    SKIP: {
        # valgrind's own command line hides nginx's process titles
        skip 'process titles under valgrind', 2 if slow_nginx();
        my @titles = sort map { title($_) } $ng->workers;
        is(scalar(grep { /cache manager process/ } @titles), 1, 'one is the cache manager');
        is(scalar(grep { /cache loader process/ } @titles), 1, 'one is the cache loader');
    }

    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'the worker queues an event');
    # all three processes started together: any helper connecting would have
    # done so by now, give it 2 s more all the same
    wait_until(sub { connected_lines($ng) > 1 || redis_clients() > 1 }, timeout => 2);
    is(connected_lines($ng), 1, 'one "connected to redis" line')
        or diag $ng->error_log;
    is(redis_clients(), 1, 'Redis has one client from nginx')
        or diag $redis->cli('CLIENT', 'LIST');

    # Redis drops every connection: only the worker reconnects, once
    ok($redis->cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes') >= 1, 'CLIENT KILL');
    ok(wait_until(sub { connected_lines($ng) >= 2 }, timeout => 10), 'the worker reconnects');
    wait_until(sub { connected_lines($ng) > 2 }, timeout => 2);
    is(connected_lines($ng), 2, 'and nothing else connects');
    my $res = $ng->request('GET', '/status');
    is($res->{json} && $res->{json}{redis}{reconnects}, 1, 'status: reconnects 1')
        or diag dump_res($res);
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'the worker queues an event again');

    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert nor crash');
};

subtest 'master_process off' => sub {
    my $ng = start_nginx(workers => 0, main => "master_process off;\n",
        files => { 'webhook.tokens' => "$TOKEN\n" }, http => conf());
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'the single process queues an event');
    is(connected_lines($ng), 1, 'one "connected to redis" line');
    ok($ng->stop, 'nginx stops gracefully');
};

done_testing;
