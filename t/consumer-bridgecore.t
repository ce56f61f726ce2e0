#!/usr/bin/perl
# The reference consumer's BridgeCore forwarder (webhook_consumer/bridgecore.py,
# `webhook_consumer.py run --forward-url ...`) against the real module and a
# stand-in BridgeCore (t/lib/bridgecore_standin.py, FastAPI with a pydantic
# WebhookReceivePayload that answers 422 to any other shape): Odoo's samples
# pushed through nginx arrive in BridgeCore's shape, each exactly once; an
# event with a string event_id arrives without it; one that has no valid
# shape is dead-lettered without a request; 429 waits for Retry-After and
# costs no attempt; 5xx and a refused connection are retried, then
# dead-lettered; 422 is dead-lettered at once with BridgeCore's answer; the
# client-side rate keeps under the stand-in's limit.
#
# Needs /usr/bin/python3 with redis-py, FastAPI and uvicorn (Debian:
# python3-redis python3-fastapi python3-uvicorn); skipped without them.
# CONSUMER_PYTHON selects another interpreter.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(time sleep);
use WebhookTest;

my $PYTHON = $ENV{CONSUMER_PYTHON} || '/usr/bin/python3';
my $CONSUMER = "$FindBin::Bin/../docker/consumer/webhook_consumer.py";
my $STANDIN = "$FindBin::Bin/lib/bridgecore_standin.py";

sub imports { system("$PYTHON -c 'import $_[0]' >/dev/null 2>&1") == 0 }
cannot_run("$PYTHON cannot import redis (install python3-redis)")
    unless imports('redis');
cannot_run("$PYTHON cannot import fastapi and uvicorn (install "
    . 'python3-fastapi python3-uvicorn)') unless imports('fastapi, uvicorn');

require_module();

my $TOKEN = 'tok-bridge-5c81e0d4';
my $BC_TOKEN = 'bridgecore-secret-93ab';
my $Q = '{webhook}';
my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . receive_location()
        . "    }\n",
);

my $tmp = tempdir('bridgecore-t-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
write_file("$tmp/bridgecore.token", "$BC_TOKEN\n", 0600);

# the stand-in BridgeCore
my $BC_PORT = free_port();
my $standin_pid = fork // die "fork: $!";
if (!$standin_pid) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$tmp/standin.log";
    open STDERR, '>&', \*STDOUT;
    exec($PYTHON, $STANDIN, '--port', $BC_PORT, '--token', $BC_TOKEN) or POSIX::_exit(127);
}
END {
    if ($standin_pid) {
        local $?;
        kill 'TERM', $standin_pid;
        waitpid($standin_pid, 0);
    }
}
my $URL = "http://127.0.0.1:$BC_PORT/api/v1/webhooks/receive";

sub standin {
    my ($method, $path, $body) = @_;
    my $res = http_request(port => $BC_PORT, method => $method, path => $path,
        headers => { 'Content-Type' => 'application/json' },
        body => defined $body ? json_encode($body) : undef, timeout => 10);
    die 'stand-in: ' . dump_res($res) unless $res->{status} == 200;
    return $res->{json};
}
sub control { standin('POST', '/_control', { reset => JSON::PP::true, @_ }) }
sub standin_log { standin('GET', '/_log') }

ok(wait_until(sub { WebhookTest::port_open($BC_PORT) }, timeout => 30),
    'the stand-in BridgeCore listens') or BAIL_OUT(read_file("$tmp/standin.log"));

$ENV{PYTHONDONTWRITEBYTECODE} = '1';
$ENV{REDIS_URL} = 'redis://127.0.0.1:' . $redis->port . '/0';
$ENV{WEBHOOK_QUEUE} = $Q;
$ENV{CONSUMER_NAME} = 'bridge-1';
$ENV{MAX_ATTEMPTS} = 3;
$ENV{BACKOFF_BASE} = 0.05;
$ENV{BACKOFF_MAX} = 5;
$ENV{BLOCK_TIMEOUT} = 0.2;
$ENV{LEASE_TTL} = 15;
$ENV{FORWARD_TIMEOUT} = 5;
delete @ENV{qw(WEBHOOK_HANDLER FORWARD_URL FORWARD_TOKEN FORWARD_TOKEN_FILE
               FORWARD_RATE FORWARD_BURST)};

# forward(@args): runs the forwarding consumer until the queues are empty;
# returns its log
sub forward {
    my ($name, @args) = @_;
    my ($rc, $log) = WebhookTest::run_cmd([$PYTHON, $CONSUMER, 'run', '--drain',
        '--forward-url', $URL, '--forward-token-file', "$tmp/bridgecore.token", @args],
        timeout => 60);
    is($rc, 0, "$name: the consumer exits 0") or diag($log);
    return $log;
}

my $EVENT = sample_json('odoo-event.json');
my $next_event_id = 60000;

# push_json($text, $name): POSTs an Odoo body through nginx; returns the answer
sub push_json {
    my ($text, $name) = @_;
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        { Authorization => "Bearer $TOKEN", 'Content-Type' => 'application/json' }, $text);
    is($res->{status}, 200, "push $name through nginx") or diag(dump_res($res));
    return $res->{json} || {};
}

# push_event(field => value, ...): the sample event with a fresh event_id
# and these changes; returns its envelope id
sub push_event {
    my %ev = (%$EVENT, event_id => $next_event_id++, @_);
    my $j = push_json(json_encode(\%ev), "event $ev{event_id} ($ev{priority})");
    return $j->{id} // '';
}

sub keys_left { join ' ', sort grep { !/^\Q$Q\E:seen:/ } $redis->keys }
sub failure { json_decode($redis->cli('HGET', "$Q:failures", $_[0]) // 'null') || {} }
sub statuses { join ' ', map { $_->{status} // 'none' } @{ $_[0]{requests} } }

# ================================================================ the samples

{
    control();
    my $instant = sample_json('odoo-instant.json');
    my $batch = sample_json('odoo-batch.json');
    my $event_id = push_json(sample_text('odoo-event.json'), 'the event sample')->{id};
    my $instant_id = push_json(sample_text('odoo-instant.json'), 'the instant sample')->{id};
    my $answer = push_json(sample_text('odoo-batch.json'), 'the batch sample');
    is($answer->{queued}, 3, 'the batch: 3 events queued');
    my $string_id = push_event(event_id => 'odoo-evt-9001', record_id => 1843);
    my $archive_id = push_event(event => 'archive', record_id => 1844, priority => 'low');

    my $log = forward('the samples');
    my $got = standin_log();
    my %by_record;
    push @{ $by_record{$_->{record_id}} }, $_ for @{ $got->{received} };

    is(statuses($got), '200 ' x 5 . '200', 'six requests, every one answered 200')
        or diag(explain($got->{requests}));
    is(join(' ', map { "$_:" . scalar(@{ $by_record{$_} }) } sort { $a <=> $b } keys %by_record),
        '77:1 78:1 310:1 902:1 1842:1 1843:1',
        'each event arrived exactly once (by record_id); the "archive" event was not sent');

    is_deeply($by_record{1842}[0], {
        event_id => 48213, model => 'sale.order', record_id => 1842, event => 'write',
        timestamp => '2026-11-27T09:14:03.412000', priority => 'high',
        category => 'business', payload => $EVENT->{data},
        changed_fields => ['state', 'amount_total'] },
        'the event shape: its fields, payload = its data') or diag(explain($by_record{1842}));

    my %record = %$instant;
    delete $record{_webhook_metadata};
    is_deeply($by_record{77}[0], {
        event_id => 48214, model => 'res.partner', record_id => 77, event => 'create',
        timestamp => '2026-11-27T09:15:10.001000', priority => 'high',
        payload => \%record },
        'the instant shape: from _webhook_metadata, payload = the record\'s fields, '
        . 'priority = the envelope\'s') or diag(explain($by_record{77}));

    my ($e0, $e1, $e2) = @{ $batch->{events} };
    is_deeply([map { $by_record{$_}[0] } 310, 78, 902], [
        { event_id => 48215, model => 'stock.picking', record_id => 310, event => 'write',
          timestamp => $e0->{timestamp}, priority => 'high', category => 'business',
          payload => { state => 'done' }, changed_fields => ['state'] },
        { event_id => 48216, model => 'res.partner', record_id => 78, event => 'create',
          timestamp => $e1->{timestamp}, priority => 'low', category => 'business',
          payload => { name => 'Gemini Furniture' } },
        { event_id => 48217, model => 'account.move', record_id => 902, event => 'unlink',
          timestamp => $e2->{timestamp}, priority => 'medium', category => 'business',
          payload => {} },
    ], 'the batch: one request per element, an unlink without data has payload {}')
        or diag(explain([map { $by_record{$_} } 310, 78, 902]));

    my $s = $by_record{1843}[0] || {};
    ok(!exists $s->{event_id}, 'a string event_id is left out') or diag(explain($s));
    is(join(',', map { $s->{$_} // 'undef' } qw(model record_id event priority)),
        'sale.order,1843,write,high', 'the rest of that event is sent');
    like($log, qr/event \Q$string_id\E: left out of the BridgeCore request: event_id is not an integer: "odoo-evt-9001"/,
        'the consumer logs what it left out');

    my %auth = map { $_->{headers}{authorization} // 'none' => 1 } @{ $got->{requests} };
    is(join(',', keys %auth), "Bearer $BC_TOKEN", 'every request carries the Bearer token of --forward-token-file');
    my ($r1842) = grep { $_->{body}{record_id} == 1842 } @{ $got->{requests} };
    is($r1842->{headers}{'idempotency-key'}, $event_id, 'and the envelope id as Idempotency-Key');

    my @dead = $redis->lrange("$Q:dead:low");
    is(scalar(@dead), 1, 'the "archive" event is dead-lettered');
    is(json_decode($dead[0] // 'null')->{id}, $archive_id, 'it is that envelope');
    is(failure($archive_id)->{error},
        'rejected: cannot forward to BridgeCore: event is not create, write or unlink: "archive"',
        'with the reason') or diag($log);
    is(failure($archive_id)->{attempts}, 1, 'at once');
    # 6 requests at 200/min: 5 gaps of 0.3 s
    my @t = map { $_->{t} } @{ $got->{requests} };
    my $span = @t ? $t[-1] - $t[0] : 0;
    cmp_ok($span, '>=', 1.5 * 0.9, sprintf('the default rate 200/min spaces them (first to last %.2fs)', $span));
    $redis->cli('DEL', "$Q:dead:low", "$Q:failures");
    is(keys_left(), '', 'nothing else is left in Redis');
}

# ================================================================ 429 then 200

{
    control(fail => [{ status => 429, count => 1, retry_after => '1' }]);
    my $id = push_event(record_id => 2001);
    my $log = forward('429 then 200');
    my $got = standin_log();
    is(statuses($got), '429 200', 'BridgeCore answered 429, then 200');
    my ($first, $again) = @{ $got->{requests} };
    is_deeply($again->{body}, $first->{body}, 'the same event was sent again');
    cmp_ok($again->{t} - $first->{t}, '>=', 0.9,
        sprintf('after Retry-After: 1 (%.2fs)', $again->{t} - $first->{t}));
    is(scalar(@{ $got->{received} }), 1, 'it arrived once');
    like($log, qr/BridgeCore answered 429 \(rate limited\), pausing 1s/, 'the pause is logged');
    like($log, qr/event \Q$id\E \(high\) deferred, taking nothing for 1s/, 'and the event deferred');
    unlike($log, qr/attempt 1 of/, 'no attempt was counted');
    is(keys_left(), '', 'nothing left in Redis: no attempts, no dead letter');
}

# ================================================================ 5xx, no answer

{
    control(fail => [{ status => 500, count => 2, body => { detail => 'db busy' } }]);
    my $id = push_event(record_id => 2002, priority => 'medium');
    my $log = forward('500, 500, 200');
    my $got = standin_log();
    is(statuses($got), '500 500 200', 'a 500 is retried');
    is(scalar(@{ $got->{received} }), 1, 'the event arrived once');
    like($log, qr/event \Q$id\E \(medium\) failed \(attempt 1 of 3\), retry in 0\.05s: ForwardError: BridgeCore answered 500: \{"detail":"db busy"\}/,
        'with the consumer\'s backoff');
    is(keys_left(), '', 'nothing left in Redis');

    control(fail => [{ status => 503, count => 10 }]);
    $id = push_event(record_id => 2003, priority => 'medium');
    forward('503 every time');
    is(statuses(standin_log()), '503 503 503', 'MAX_ATTEMPTS (3) requests');
    is(join(',', map { json_decode($_)->{id} } $redis->lrange("$Q:dead:medium")), $id,
        'then the event is dead-lettered');
    like(failure($id)->{error} // '', qr/^ForwardError: BridgeCore answered 503: /, 'with the last answer');
    $redis->cli('DEL', "$Q:dead:medium", "$Q:failures");

    my $closed = free_port();
    $id = push_event(record_id => 2004, priority => 'low');
    my ($rc, $out) = WebhookTest::run_cmd([$PYTHON, $CONSUMER, 'run', '--drain',
        '--forward-url', "http://127.0.0.1:$closed/api/v1/webhooks/receive"], timeout => 60);
    is($rc, 0, 'BridgeCore down: the consumer exits 0') or diag($out);
    like(failure($id)->{error} // '', qr/^ForwardError: cannot reach BridgeCore at .*Connection refused/,
        'the event is dead-lettered after its attempts, "cannot reach BridgeCore"');
    is(failure($id)->{attempts}, 3, 'after 3 attempts');
    $redis->cli('DEL', "$Q:dead:low", "$Q:failures");
    is(keys_left(), '', 'nothing left in Redis');
}

# ================================================================ 422

{
    # a BridgeCore whose event_id is required: the string-id event cannot fit
    control(event_id_required => JSON::PP::true);
    my $id = push_event(event_id => 'odoo-evt-9002', record_id => 2005, priority => 'low');
    my $log = forward('422');
    my $got = standin_log();
    is(statuses($got), '422', 'BridgeCore answered 422, once');
    is(join(',', map { json_decode($_)->{id} } $redis->lrange("$Q:dead:low")), $id,
        'the event is dead-lettered at once');
    my $f = failure($id);
    is($f->{attempts}, 1, 'after 1 attempt');
    like($f->{error} // '', qr/^rejected: BridgeCore answered 422: \{"detail":\[\{"loc":\["event_id"\],"msg":"field required"/,
        'with BridgeCore\'s answer as the reason') or diag(explain($f));

    # BridgeCore fixed: redrive
    control();
    my ($rc, $out) = WebhookTest::run_cmd([$PYTHON, $CONSUMER, 'redrive'], timeout => 60);
    is($rc, 0, 'redrive exits 0') or diag($out);
    forward('after redrive');
    is(scalar(@{ standin_log()->{received} }), 1, 'the redriven event arrives');
    is(keys_left(), '', 'nothing left in Redis');
}

# ================================================================ rate

{
    # the stand-in allows 3 a second; 120/min is 2 a second
    control(limit => [3, 1]);
    push_event(record_id => 3000 + $_, priority => 'medium') for 1 .. 6;
    my $t0 = time;
    forward('120/min', '--forward-rate', '120/min');
    my $took = time - $t0;
    my $got = standin_log();
    is(statuses($got), '200 200 200 200 200 200', 'at 120/min: six requests, no 429');
    my @t = map { $_->{t} } @{ $got->{requests} };
    my $span = @t ? $t[-1] - $t[0] : 0;
    cmp_ok($span, '>=', 2.5 * 0.9, sprintf('spaced 0.5 s apart (first to last %.2fs)', $span));
    cmp_ok($took, '<', 20, sprintf('in bounded time (%.1fs)', $took));

    # no client-side limit: the stand-in's 429s are waited out
    control(limit => [3, 1]);
    push_event(record_id => 3010 + $_, priority => 'medium') for 1 .. 6;
    my $log = forward('no client-side rate', '--forward-rate', 'off');
    $got = standin_log();
    my @st = map { $_->{status} } @{ $got->{requests} };
    ok((grep { $_ == 429 } @st), 'without a client-side rate, the stand-in answers 429 (' . statuses($got) . ')');
    is(join(' ', sort map { $_->{record_id} } @{ $got->{received} }),
        '3011 3012 3013 3014 3015 3016', 'and every event still arrives once');
    is(keys_left(), '', 'nothing left in Redis: no attempts, no dead letter');
}

done_testing();
