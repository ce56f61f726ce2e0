#!/usr/bin/perl
# The plain push: with nothing to check before it (no idempotency key, no
# webhook_max_depth) and every event of the request on one list, the
# module sends one LPUSH instead of the enqueue script.  Same lists, same
# order, same answers as the script; the script still runs whenever a
# check or several lists are involved.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $TOKEN = 'tok-plain-61d0';

my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n"
        . receive_location(path => '/off', queue => '{off}', extra => 'webhook_dedupe off;')
        . receive_location(path => '/on', queue => '{on}')
        . receive_location(path => '/max', queue => '{max}',
                           extra => 'webhook_dedupe off; webhook_max_depth 3;')
        . "}\n",
);

sub post {
    my ($path, $body) = @_;
    return $ng->request('POST', $path, ['Content-Type' => 'application/json',
        Authorization => "Bearer $TOKEN"], $body);
}

sub ev {
    my ($id, $prio) = @_;
    return { (defined $id ? (event_id => $id) : ()), model => 'sale.order',
        record_id => 7, event => 'write', (defined $prio ? (priority => $prio) : ()) };
}

sub batch { json_encode({ batch => JSON::PP::true(), events => [@_] }) }

# which command carried each request: Redis's own counters (an LPUSH
# inside the script counts as an LPUSH too)
sub calls {
    my %n;
    for (split /\n/, $redis->cli('INFO', 'commandstats') // '') {
        $n{$1} = $2 if /^cmdstat_(\w+):calls=(\d+)/;
    }
    $redis->cli('CONFIG', 'RESETSTAT');
    return { lpush => $n{lpush} // 0, evalsha => $n{evalsha} // 0 };
}

calls();

my $res = post('/off', json_encode(ev(1, 'high')));
is_queued($res, 'high', 'dedupe off: a single event is queued');
is_deeply(calls(), { lpush => 1, evalsha => 0 }, 'with one LPUSH and no script');
my ($env) = $redis->take('{off}:queue:high');
is($env->{env}{id}, $res->{json}{id}, 'the envelope is the one answered');
is($env->{env}{event_id}, 1, 'and it is whole');

$res = post('/off', batch(ev(10, 'low'), ev(11, 'low'), ev(12)));
is_batch_answer($res, { status => 'queued', queued => 3, duplicates => 0, nids => 3 }, 'a batch of low, low and a default');
is_deeply(calls(), { lpush => 2, evalsha => 1 },
          'the script when an event falls back to another priority (medium), '
          . 'with one LPUSH a list');
$redis->flushall;
calls();

$res = post('/off', batch(ev(20, 'low'), ev(21, 'low'), ev(22, 'low')));
is_batch_answer($res, { status => 'queued', queued => 3, duplicates => 0, nids => 3 }, 'a batch of three on one list');
is_deeply(calls(), { lpush => 1, evalsha => 0 }, 'is one LPUSH');
my @envs = $redis->take('{off}:queue:low');
is_deeply([map { $_->{env}{event_id} } @envs], [20, 21, 22],
          'oldest first, in the order of the batch, as the script pushes');
is_deeply([map { $_->{env}{id} } @envs], $res->{json}{ids}, 'with the answered ids');

$res = post('/on', json_encode(ev(30, 'high')));
is_queued($res, 'high', 'dedupe on, with an event_id');
is_deeply(calls(), { lpush => 1, evalsha => 1 }, 'runs the script');
$res = post('/on', json_encode(ev(30, 'high')));
is($res->{json}{status}, 'duplicate', 'which drops the retry');
calls();

$res = post('/on', json_encode(ev(undef, 'high')));
is_queued($res, 'high', 'dedupe on, an event without id nor Idempotency-Key');
is_deeply(calls(), { lpush => 1, evalsha => 0 }, 'is a plain push: nothing to check');

for my $i (1 .. 3) {
    is_queued(post('/max', json_encode(ev(40 + $i, 'high'))), 'high', "max depth: event $i of 3");
}
is(calls()->{evalsha}, 3, 'a depth limit always runs the script');
$res = post('/max', json_encode(ev(44, 'high')));
is_json_error($res, 503, 'overloaded', 'and refuses the fourth');

$redis->cli('CONFIG', 'SET', 'maxmemory', '1');
$res = post('/off', json_encode(ev(50, 'high')));
is_json_error($res, 503, 'unavailable', 'an LPUSH refused (OOM) is a 503');
like($ng->error_log, qr/webhook: redis refused the events: OOM/, 'with the reason in the error log');
$res = post('/off', '{"test": true}');
is_json_error($res, 503, 'unavailable', 'a test connection whose write check (SET {off}:probe) is refused: 503');
is($redis->cli('EXISTS', '{off}:probe'), '0', 'and no probe key was written');
$redis->cli('CONFIG', 'SET', 'maxmemory', '0');
$res = post('/off', '{"test": true}');
is_deeply([$res->{status}, $res->{json}], [200, { status => 'ok', test => JSON::PP::true() }],
    'with memory again, the test connection is answered ok') or diag dump_res($res);

done_testing();
