#!/usr/bin/perl
# webhook_redis_wait: a primary and a real replica (redis-server
# --replicaof).  Events are answered 200 once the replica has them; one
# WAIT covers a write pass of pipelined commands (fewer WAITs than events
# under concurrent load); with the replica gone, WAIT comes back short:
# 503 unavailable within the WAIT timeout, the connection stays, the error
# log says how many replicas there are; the replica back, 200 again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-wait-71c2d0';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { my $id = $_[0] // 'w-' . ++$n;
    json_encode({ event_id => $id, model => 'res.partner', record_id => 1, event => 'write' }) }

sub conf_t {
    my ($lines) = @_;
    return nginx_t("webhook_redis 127.0.0.1:6379;\n$lines\n"
        . "server { listen 127.0.0.1:1; location / { webhook_receive; webhook_token_file off; } }\n");
}

subtest 'nginx -t' => sub {
    my ($rc, $out) = conf_t("webhook_redis_timeout 1s;\nwebhook_redis_wait 1 400ms;");
    isnt($rc, 0, 'twice the WAIT timeout and 100 ms not below webhook_redis_timeout: refused');
    like($out, qr/"webhook_redis_wait": the timeout \(400 ms\) must be below half of webhook_redis_timeout \(1000 ms\) minus 100 ms/,
        '... saying why');
    ($rc, $out) = conf_t("webhook_redis_timeout 1s;\nwebhook_redis_wait 1 350ms;");
    is($rc, 0, '350 ms with a timeout of 1 s: accepted') or diag $out;
    ($rc, $out) = conf_t("webhook_redis_wait 1;");
    is($rc, 0, 'the default timeout (500 ms with webhook_redis_timeout 2 s): accepted') or diag $out;
    ($rc, $out) = conf_t("webhook_redis_wait 0;");
    isnt($rc, 0, 'webhook_redis_wait 0: refused');
    ($rc, $out) = conf_t("webhook_redis_wait 1 0;");
    isnt($rc, 0, 'a timeout of 0 (wait for ever): refused');
};

my $primary = start_redis();
my $replica = start_redis(extra => ['--replicaof', '127.0.0.1', $primary->port]);
sub link_up { ($replica->cli('INFO', 'replication') // '') =~ /^master_link_status:up/m }
ok(wait_until(\&link_up, timeout => 15), 'the replica is in sync');

my $ng = fault_nginx(redis => $primary, token => $TOKEN, timeout => '2s', workers => 1,
    http => "webhook_redis_wait 1 500ms;\n", priority => 'low');

sub nginx_conns {
    return map { /\bid=(\d+)\b/ ? $1 : () } grep { !/cmd=client\|list/ && !/flags=S/ }
        split /\n/, $primary->cli('CLIENT', 'LIST') // '';
}

subtest 'with the replica: 200, and the replica has the event' => sub {
    for my $i (1 .. 5) {
        is_queued($ng->request('POST', $R, \%H, body()), 'low', "event $i: 200");
        is($replica->llen('{webhook}:queue:low'), $i, "... on the replica at once");
    }
    my $stats = $primary->cli('INFO', 'commandstats') // '';
    my ($waits) = $stats =~ /^cmdstat_wait:calls=(\d+)/m;
    is($waits, 5, 'one WAIT an event sent one after another');
};

subtest 'one WAIT a write pass under concurrent load' => sub {
    $primary->cli('CONFIG', 'RESETSTAT');
    my $clients = 20;
    my ($recs, $bad) = run_clients(n => $clients, dir => $ng->path('results-load'), timeout => 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 10);
            return map { WebhookLoad::Client->record("c$c-$_", $cl->post($R, \%H, body("c$c-$_"))) } 1 .. 10;
        });
    is_deeply($bad, [], 'every client finished');
    my $s = summarize($recs);
    is($s->{ok}, $clients * 10, 'every event: 200');
    my ($waits) = ($primary->cli('INFO', 'commandstats') // '') =~ /^cmdstat_wait:calls=(\d+)/m;
    my ($evals) = ($primary->cli('INFO', 'commandstats') // '') =~ /^cmdstat_evalsha:calls=(\d+)/m;
    cmp_ok($waits, '<', $evals, "fewer WAITs ($waits) than enqueue commands ($evals)");
    note "concurrent load: $s->{ok} x 200, $evals EVALSHA, $waits WAIT, max latency $s->{max}s";
    is($replica->llen('{webhook}:queue:low'), $primary->llen('{webhook}:queue:low'),
        'the replica has every event');
};

subtest 'the replica gone: 503 in the WAIT timeout, the connection stays' => sub {
    my @before = nginx_conns();
    is(scalar @before, 1, "one connection of nginx's");
    $replica->stop;
    ok(wait_until(sub { ($primary->cli('INFO', 'replication') // '') =~ /^connected_slaves:0/m }, timeout => 10),
        'the primary has no replica');
    my $id = 'gone-1';
    my $res = $ng->request('POST', $R, \%H, body($id));
    is_json_error($res, 503, 'unavailable', 'an event: 503 unavailable');
    like($res->{json}{message} // '', qr/replicas did not acknowledge/, '... saying the replicas did not acknowledge it');
    cmp_ok($res->{elapsed}, '<', 1.5, sprintf('... within the WAIT timeout and Redis\'s granularity (%.2fs)', $res->{elapsed}));
    ok(wait_until(sub { $ng->error_log =~ /webhook: redis at \S+ has 0 connected replicas, webhook_redis_wait asks for 1/ }),
        'the error log says how many replicas there are') or diag $ng->error_log;
    like($ng->error_log, qr/\[warn\].*webhook: redis WAIT 1 500: 0 replicas acknowledged, 1 writes answered as not replicated/,
        'and the short WAIT');
    is_deeply([nginx_conns()], \@before, 'the same connection');
    my $again = $ng->request('POST', $R, \%H, body($id));
    is($again->{status}, 503, 'the same event again: 503 again (not acknowledged either)');
    is(scalar(grep { /gone-1/ } $primary->lrange('{webhook}:queue:low')), 1,
        'the event was written once on the primary (dedupe)');
    is_deeply([nginx_conns()], \@before, 'still the same connection');
};

subtest 'the replica back: 200 again, without reload' => sub {
    $replica->start;
    ok(wait_until(\&link_up, timeout => 15), 'the replica is in sync again');
    my $res;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, body()); $res->{status} == 200 }, timeout => 10),
        '200 again') or diag dump_res($res);
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal|open socket/, 'no alert nor crash');

done_testing;
