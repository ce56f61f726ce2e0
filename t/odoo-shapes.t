#!/usr/bin/perl
# Odoo push-target semantics: the test-connection flow, the instant path,
# batches (envelopes, ids, atomicity, the batch bound), back-pressure
# (webhook_max_depth) and two receive locations with their own queues and
# tokens.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::Local qw(timegm);
use Time::HiRes qw(time);
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-odoo-7c1e9a0b52d4';
my $TOKEN_A = 'tok-tenant-a-3f8d21c6e0';
my $TOKEN_B = 'tok-tenant-b-9e47b05a1d';

my $redis = start_redis();
my $ng = start_nginx(
    workers => 2,
    files => {
        'webhook.tokens' => "$TOKEN\n",
        'a.tokens' => "$TOKEN_A\n",
        'b.tokens' => "$TOKEN_B\n",
    },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 5s;\n"
        . "log_format results '\$webhook_result';\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        # default settings everywhere: queue {webhook}, batch max 1000, no depth limit
        . receive_location(queue => '{webhook}', max_body => '4m',
            extra => 'access_log %%PREFIX%%/results.log results;')
        . receive_location(path => '/small', queue => '{small}', extra => 'webhook_batch_max 2;')
        . receive_location(path => '/strict', queue => '{webhook}', schema => 'event')
        . receive_location(path => '/deep', queue => '{deep}', extra => 'webhook_max_depth 3;')
        . receive_location(path => '/a', queue => '{tenant_a}', tokens => 'a.tokens')
        . receive_location(path => '/b', queue => '{tenant_b}', tokens => 'b.tokens')
        . "        location / { return 404; }\n    }\n",
);

my $BATCH_TEXT = sample_text('odoo-batch.json');
my $BATCH = sample_json('odoo-batch.json');

# post($body, header => value, ..., path => ..., token => ...): POST with the
# default token and Content-Type unless overridden (undef removes a header).
sub post {
    my ($body, %h) = @_;
    my $path = delete $h{path} // $R;
    my $token = exists $h{token} ? delete $h{token} : $TOKEN;
    my %headers = (
        'Content-Type' => 'application/json',
        'Authorization' => (defined $token ? "Bearer $token" : undef),
        %h,
    );
    return $ng->request('POST', $path, \%headers, $body, timeout => 30);
}

# ev($event_id, $priority, field => value ...): an event-shape body (hash)
sub ev {
    my ($id, $prio, %f) = @_;
    return { (defined $id ? (event_id => $id) : ()), model => 'sale.order', record_id => 5,
        event => 'write', (defined $prio ? (priority => $prio) : ()), %f };
}

sub batch { json_encode({ batch => JSON::PP::true(), timestamp => '2026-11-27T09:16:00.000000', events => [@_] }) }

# the keys of events: what a test's write leaves (<queue>:probe) and the
# rejected list (<queue>:rejected, its :bytes) are not
sub redis_empty {
    my ($name) = @_;
    my @k = grep { !/:(probe|rejected|rejected:bytes)\z/ } $redis->keys;
    is_deeply(\@k, [], "nothing in Redis: $name") or diag "keys: @k";
}

sub queue_keys {
    my ($prefix) = @_;
    return grep { index($_, $prefix) == 0 } $redis->keys;
}

sub check_received_at {
    my ($ra, $name) = @_;
    if (like($ra // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/, "received_at format ($name)")) {
        my ($Y, $M, $D, $h, $m, $s) = $ra =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/;
        cmp_ok(abs(timegm($s, $m, $h, $D, $M - 1, $Y) - time), '<', 120, "received_at is now ($name)");
    }
}

# results-log lines of the default location
my $n_results = 0;
sub next_result {
    $n_results++;
    return wait_until(sub {
        my @l = split /\n/, $ng->access_log('results.log');
        return @l >= $n_results ? $l[$n_results - 1] : undef;
    }, timeout => 10);
}

sub subtest_fresh {
    my ($name, $code) = @_;
    $redis->flushall;
    subtest $name, $code;
}

# ================================================================ test connection

subtest_fresh 'Odoo test connection: HEAD, then the test body' => sub {
    my $res = $ng->raw(method => 'HEAD', pieces => [
        "HEAD $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"]);
    is($res->{status}, 200, 'HEAD without token: 200') or diag dump_res($res);
    is(($res->{body} // '') . ($res->{after} // ''), '', 'HEAD: empty body');
    my $line = next_result();    # the HEAD's line

    my $body = sample_text('odoo-test-connection.json');
    $res = post($body);
    is($res->{status}, 200, 'test body with token: 200') or diag dump_res($res);
    like($res->{headers}{'content-type'} // '', qr{^application/json\b}i, 'test body: JSON answer');
    is_deeply($res->{json}, { status => 'ok', test => JSON::PP::true() },
        'test body: {"status":"ok","test":true}') or diag dump_res($res);
    ok(ref $res->{json} eq 'HASH' && JSON::PP::is_bool($res->{json}{test}), 'test is a JSON boolean')
        or diag dump_res($res);
    is(next_result(), 'test', '$webhook_result is "test"');
    redis_empty('after the test body');

    $res = post($body, token => undef);
    is_json_error($res, 401, 'unauthorized', 'test body without token: 401');
    $res = post($body, token => 'tok-nope');
    is_json_error($res, 401, 'unauthorized', 'test body with a wrong token: 401');
    redis_empty('after the unauthorized test bodies');
};

# ================================================================ instant path

subtest_fresh 'instant path: 200 with a JSON body' => sub {
    my $res = post(sample_text('odoo-instant.json'));
    is_queued($res, 'high', 'instant sample: 200 {"status":"queued","id":...,"priority":"high"} (webhook_instant_priority)');
    ok($res->{status} == 200 || $res->{status} == 201 || $res->{status} == 204,
        'a status Odoo accepts on the instant path');
    is($redis->llen('{webhook}:queue:high'), 1, 'one envelope on the high list');
    my @e = $redis->lrange('{webhook}:queue:high');
    my $env = json_decode($e[0] // '');
    is($env->{id}, $res->{json}{id}, 'envelope id is the answered id') if $env;
    is($env->{event_id}, 48214, 'envelope event_id from _webhook_metadata') if $env;
};

subtest_fresh 'instant path: a record with its own field "batch": true is an event' => sub {
    my $rec = json_decode(sample_text('odoo-instant.json'));
    $rec->{batch} = JSON::PP::true();
    my $res = post(json_encode($rec));
    is_queued($res, 'high', 'instant record with "batch": true: queued, not a batch');
    is($redis->llen('{webhook}:queue:high'), 1, 'one envelope on the high list');
};

# ================================================================ batches

subtest_fresh 'batch sample: one envelope per event, on its own list' => sub {
    my $res = post($BATCH_TEXT);
    my @ids = is_batch_answer($res, { status => 'queued', queued => 3, duplicates => 0, nids => 3 },
        'batch sample: 200 {"status":"queued","queued":3,"duplicates":0,"ids":[...]}');
    my ($rid) = ($ids[0] // '') =~ /^([0-9a-f]{32})-0\z/;
    ok($rid, 'ids[0] is <32 hex>-0') or diag "ids: @ids";
    for my $i (0 .. $#ids) {
        is($ids[$i], ($rid // '?') . "-$i", "ids[$i] is <request id>-$i (batch order)");
    }

    # the exact text of each element in the sample
    my @texts = map { /^\s*(\{.*\}),?\s*$/ ? $1 : () } grep { /"event_id"/ } split /\n/, $BATCH_TEXT;
    is(scalar @texts, 3, 'three element texts found in the sample');

    my @lists = ('{webhook}:queue:high', '{webhook}:queue:low', '{webhook}:queue:medium');
    my @expect = (
        [48215, 'high', 'stock.picking', 310, 'write'],
        [48216, 'low', 'res.partner', 78, 'create'],
        [48217, 'medium', 'account.move', 902, 'unlink'],
    );
    my @queues = sort grep { /:queue:/ } $redis->keys;
    is_deeply(\@queues, [sort @lists], 'exactly the three priority lists exist');
    for my $i (0 .. 2) {
        my ($eid, $prio, $model, $rec, $event) = @{ $expect[$i] };
        my @raw = $redis->lrange("{webhook}:queue:$prio");
        is(scalar @raw, 1, "event $i: one envelope on {webhook}:queue:$prio") or next;
        my $raw = $raw[0];
        my $env = json_decode($raw);
        ok(ref $env eq 'HASH', "event $i: envelope is a JSON object") or do { diag $raw; next };
        my @fields = sort keys %$env;
        is_deeply(\@fields, [sort qw(id received_at priority event_id model record_id event sender payload)],
            "event $i: envelope fields");
        is($env->{id}, $ids[$i], "event $i: envelope id is ids[$i]");
        check_received_at($env->{received_at}, "event $i");
        is(json_scalar($env->{priority}), json_scalar($prio), "event $i: priority");
        is(json_scalar($env->{event_id}), json_scalar($eid), "event $i: event_id");
        is(json_scalar($env->{model}), json_scalar($model), "event $i: model");
        is(json_scalar($env->{record_id}), json_scalar($rec), "event $i: record_id");
        is(json_scalar($env->{event}), json_scalar($event), "event $i: event");
        is_deeply($env->{payload}, $BATCH->{events}[$i], "event $i: payload is the element")
            or diag "payload: " . json_encode($env->{payload});
        my ($ptext) = $raw =~ /,"payload":(.*)\}\z/s;
        is($ptext, $texts[$i], "event $i: payload is the element's exact text");
        unlike($raw, qr/[\r\n]/, "event $i: envelope is one line");
    }
};

subtest_fresh 'batch: envelope ids and order for many events on one list' => sub {
    my @ev = map { ev(2000 + $_, 'low', record_id => $_) } 0 .. 9;
    my $res = post(batch(@ev));
    my @ids = is_batch_answer($res, { status => 'queued', queued => 10, duplicates => 0, nids => 10 },
        'ten low events queued');
    my @e = $redis->take('{webhook}:queue:low');
    is(scalar @e, 10, 'ten envelopes on the low list');
    is_deeply([map { $_->{env}{id} } @e], \@ids, 'envelopes in batch order (oldest at the tail), ids match');
    is_deeply([map { $_->{env}{payload} } @e], \@ev, 'payloads in batch order');
};

subtest_fresh 'batch, webhook_schema event: a bad element refuses the whole batch' => sub {
    my @cases = (
        ['record_id "x" in element 1', [ev(3001, 'high'), ev(3002, 'low', record_id => 'x'), ev(3003, 'medium')],
            'invalid_payload', 1],
        ['missing model in element 1', [ev(3001, 'high'), do { my $e = ev(3002, 'low'); delete $e->{model}; $e }, ev(3003)],
            'invalid_payload', 1],
        ['missing event in element 2', [ev(3001, 'high'), ev(3002, 'low'), do { my $e = ev(3003); delete $e->{event}; $e }],
            'invalid_payload', 2],
        ['record_id missing in element 0', [do { my $e = ev(3001); delete $e->{record_id}; $e }, ev(3002)],
            'invalid_payload', 0],
        ['element 1 not an object', [ev(3001, 'high'), 42, ev(3003)], 'invalid_payload', 1],
        ['priority "urgent" in element 1', [ev(3001, 'high'), ev(3002, 'urgent'), ev(3003)], 'invalid_priority', 1],
        ['priority "" in element 2', [ev(3001), ev(3002), ev(3003, '')], 'invalid_priority', 2],
    );
    for my $c (@cases) {
        my ($name, $events, $code, $idx) = @$c;
        my $res = post(batch(@$events), path => '/strict');
        is_json_error($res, 400, $code, "$name: 400 $code");
        like(ref $res->{json} eq 'HASH' ? $res->{json}{message} // '' : '', qr/^events\[$idx\]: \S/,
            "$name: message names events[$idx]") or diag dump_res($res);
        redis_empty($name);
    }

    # the good elements of a refused batch were not marked as seen
    my $res = post(json_encode(ev(3001, 'high')));
    is_queued($res, 'high', 'element 0 of a refused batch, sent alone: queued (not a duplicate)');
};

subtest_fresh 'batch: "events" missing, not an array or empty' => sub {
    my @cases = (
        ['events missing', json_encode({ batch => JSON::PP::true(), timestamp => 'x' })],
        ['events null', '{"batch": true, "events": null}'],
        ['events an object', '{"batch": true, "events": {"0": ' . json_encode(ev(4001)) . '}}'],
        ['events a string', '{"batch": true, "events": "[]"}'],
        ['events a number', '{"batch": true, "events": 3}'],
        ['events empty', '{"batch": true, "events": []}'],
    );
    for my $c (@cases) {
        my ($name, $body) = @$c;
        my $res = post($body);
        is_json_error($res, 400, 'invalid_payload', "$name: 400 invalid_payload");
    }
    redis_empty('after the refused batches');
};

subtest_fresh 'batch bound: webhook_batch_max 2' => sub {
    my $res = post(batch(ev(5001, 'high'), ev(5002, 'low'), ev(5003, 'medium')), path => '/small');
    is_json_error($res, 413, 'too_large', 'batch of 3 with webhook_batch_max 2: 413 too_large');
    redis_empty('after the batch of 3');

    $res = post(batch(ev(5001, 'high'), ev(5002, 'low')), path => '/small');
    is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 0, nids => 2 },
        'batch of 2 with webhook_batch_max 2: queued');
    is($redis->llen('{small}:queue:high') + $redis->llen('{small}:queue:low'), 2, 'two envelopes');
};

subtest_fresh 'batch bound: default 10000' => sub {
    my @ev = map { { event_id => 100000 + $_, model => 'x', record_id => $_, event => 'write' } } 1 .. 10001;
    my $res = post(batch(@ev));
    is_json_error($res, 413, 'too_large', 'batch of 10001: 413 too_large');
    redis_empty('after the batch of 10001');

    pop @ev;
    $res = post(batch(@ev));
    my @ids = is_batch_answer($res, { status => 'queued', queued => 10000, duplicates => 0, nids => 10000 },
        'batch of 10000: queued');
    is($redis->llen('{webhook}:queue:medium'), 10000, '10000 envelopes on the medium list');
    is($ids[9999] // '', ($ids[0] // '') =~ s/-0\z/-9999/r, 'ids[9999] ends in -9999');
};

# ================================================================ back-pressure

subtest_fresh 'back-pressure: webhook_max_depth 3' => sub {
    for my $i (1 .. 3) {
        my $res = post(json_encode(ev(6000 + $i, 'high')), path => '/deep');
        is_queued($res, 'high', "high event $i: queued");
    }
    is($redis->llen('{deep}:queue:high'), 3, 'three envelopes on the high list');

    my $res = post(json_encode(ev(6004, 'high')), path => '/deep');
    is_json_error($res, 503, 'overloaded', '4th high event: 503 overloaded');
    like($res->{headers}{'retry-after'} // '', qr/^[1-9]\d*\z/, '4th high event: Retry-After in seconds')
        or diag 'Retry-After: ' . ($res->{headers}{'retry-after'} // '(none)');
    is($redis->llen('{deep}:queue:high'), 3, 'the high list did not grow');
    is($redis->cli('EXISTS', '{deep}:seen:6004'), '0', 'the refused event is not marked as seen');

    $res = post(json_encode(ev(6005, 'medium')), path => '/deep');
    is_queued($res, 'medium', 'a medium event still passes (the limit is per list)');
    is($redis->llen('{deep}:queue:medium'), 1, 'one envelope on the medium list');

    # medium holds 1: a batch adding 3 medium would reach 4
    my @keys_before = $redis->keys;
    $res = post(batch(ev(6010, 'low'), ev(6011, 'medium'), ev(6012, 'medium'), ev(6013, 'medium')), path => '/deep');
    is_json_error($res, 503, 'overloaded', 'batch pushing the medium list past the limit: 503 overloaded');
    like($res->{headers}{'retry-after'} // '', qr/^[1-9]\d*\z/, 'batch refused: Retry-After');
    is_deeply([$redis->keys], \@keys_before, 'batch refused whole: no key added (no low list, no seen keys)')
        or diag 'keys: ' . join ' ', $redis->keys;
    is($redis->llen('{deep}:queue:medium'), 1, 'the medium list did not grow');

    $res = post(batch(ev(6010, 'low'), ev(6011, 'medium'), ev(6012, 'medium')), path => '/deep');
    is_batch_answer($res, { status => 'queued', queued => 3, duplicates => 0, nids => 3 },
        'batch filling the medium list exactly to the limit: queued');
    is($redis->llen('{deep}:queue:medium'), 3, 'medium list at the limit');
    is($redis->llen('{deep}:queue:low'), 1, 'low list has the batch event');

    # once a worker takes one, the refused event can be sent again
    $redis->cli('RPOP', '{deep}:queue:high');
    $res = post(json_encode(ev(6004, 'high')), path => '/deep');
    is_queued($res, 'high', 'the refused event, after the list shrank: queued');
    is($redis->llen('{deep}:queue:high'), 3, 'high list back at the limit');
};

subtest_fresh 'back-pressure off by default' => sub {
    my $res = post(batch(map { ev(7000 + $_, 'high') } 1 .. 50));
    is_batch_answer($res, { status => 'queued', queued => 50, duplicates => 0, nids => 50 }, 'a batch of 50 high events');
    my $ok = 0;
    for my $i (1 .. 10) {
        $res = post(json_encode(ev(7100 + $i, 'high')));
        $ok++ if $res->{status} == 200 && ($res->{json}{status} // '') eq 'queued';
    }
    is($ok, 10, 'ten more single high events queued');
    is($redis->llen('{webhook}:queue:high'), 60, '60 envelopes on the high list');
};

# ================================================================ two locations

subtest_fresh 'two receive locations: own tokens, own queues, own dedupe keys' => sub {
    my $body = json_encode(ev(8001, 'high'));
    my $res = post($body, path => '/a', token => $TOKEN_A);
    is_queued($res, 'high', 'token A on /a: queued');
    $res = post($body, path => '/b', token => $TOKEN_A);
    is_json_error($res, 401, 'unauthorized', 'token A on /b: 401');
    $res = post($body, path => '/a', token => $TOKEN_B);
    is_json_error($res, 401, 'unauthorized', 'token B on /a: 401');
    $res = post($body, path => '/a', token => $TOKEN);
    is_json_error($res, 401, 'unauthorized', 'the default location\'s token on /a: 401');
    $res = post($body, path => '/b', token => $TOKEN_B);
    is_queued($res, 'high', 'token B on /b: queued (same event_id, other queue: not a duplicate)');
    $res = post($body, path => $R, token => $TOKEN_A);
    is_json_error($res, 401, 'unauthorized', 'token A on the default location: 401');

    $res = post($body, path => '/a', token => $TOKEN_A);
    is($res->{status}, 200, 'same event again on /a: 200');
    is($res->{json}{status} // '', 'duplicate', 'same event again on /a: duplicate') or diag dump_res($res);
    $res = post($body, path => '/b', token => $TOKEN_B);
    is($res->{json}{status} // '', 'duplicate', 'same event again on /b: duplicate') or diag dump_res($res);

    $res = post(json_encode(ev(8002, 'low')), path => '/b', token => $TOKEN_B);
    is_queued($res, 'low', 'a low event on /b');

    is_deeply([queue_keys('{tenant_a}')], ['{tenant_a}:queue:high', '{tenant_a}:seen:id::8001'], 'keys of tenant a');
    is_deeply([queue_keys('{tenant_b}')],
        ['{tenant_b}:queue:high', '{tenant_b}:queue:low', '{tenant_b}:seen:id::8001', '{tenant_b}:seen:id::8002'],
        'keys of tenant b');
    is_deeply([queue_keys('{webhook}')], [], 'nothing in the default queue');
    is($redis->llen('{tenant_a}:queue:high'), 1, 'tenant a: one high envelope');
    is($redis->llen('{tenant_b}:queue:high'), 1, 'tenant b: one high envelope');
    my ($ea) = $redis->lrange('{tenant_a}:queue:high');
    is(json_decode($ea // '')->{event_id}, 8001, 'tenant a envelope is event 8001') if $ea;
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[(alert|emerg|crit)\]|open socket/, 'no alert/emerg/crit/open socket in the error log')
    or diag join "\n", grep { /\[(alert|emerg|crit)\]|open socket/ } split /\n/, $ng->error_log;

done_testing;
