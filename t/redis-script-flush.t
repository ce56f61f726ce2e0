#!/usr/bin/perl
# Redis lost its script cache (SCRIPT FLUSH, a restart with the same
# connection kept, a failover): EVALSHA answers NOSCRIPT and the module
# sends the script itself (EVAL), for the enqueue and the status scripts.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $redis = start_redis();
my $ng = start_nginx(
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . receive_location()
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
    files => { 'webhook.tokens' => "flush-token\n" },
    workers => 1,
);

my %H = ('Content-Type' => 'application/json', Authorization => 'Bearer flush-token');

for my $round (1 .. 2) {
    is($redis->cli('SCRIPT', 'FLUSH'), 'OK', "round $round: script cache flushed");

    my $res = $ng->request('POST', '/api/v1/webhooks/receive', \%H,
        json_encode({ event_id => $round, model => 'sale.order', record_id => 7,
                      event => 'write', priority => 'low' }));
    is_queued($res, 'low', "round $round: the event is queued all the same");
    is($redis->llen('{webhook}:queue:low'), $round, "round $round: and it is in Redis");

    $redis->cli('SCRIPT', 'FLUSH');
    $res = $ng->request('GET', '/status');
    my $st = json_decode($res->{body});
    ok($st && $st->{redis}{up}, "round $round: the status still reads Redis")
        or diag dump_res($res);
    is($st && $st->{queues}{'{webhook}'}{low}{depth}, $round, "round $round: depth is right");
}

unlike($ng->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the error log');

done_testing();
