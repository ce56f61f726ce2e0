#!/usr/bin/perl
# Odoo's auto-webhook addon as it really sends (../shared/README.md): each
# payload shape and each authentication type, with the addon's headers,
# replayed against nginx + the module + a real redis-server, and Redis
# checked after each.  The addon marks an event "sent" whatever the answer,
# so what matters is what the module takes:
#   - auth none (webhook_token_file off, allow/deny), bearer, api_key,
#     basic as the addon sends it (the token as typed);
#   - named senders: the envelope's "sender", dedupe per sender (two
#     databases with the same event_id both queued);
#   - instant events on webhook_instant_priority (default high, or a map
#     of $webhook_model);
#   - a template payload of any shape queued with null fields, fields of
#     the wrong type named in "warnings";
#   - a body that is no JSON object: 400, nothing queued, kept in
#     <queue>:rejected (bounded);
#   - the test buttons: not queued, and "test connection" tells the truth
#     when Redis is down.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 ();
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOK_PROD = 'tok-prod-5c1e0b9a7d3f';
my $TOK_STAGE = 'tok-stage-81f0c2d4e6a9';
my $TOK_ANON = 'tok-anon-2b7d9e1f4c6a';

my $redis = start_redis();
my $ng = start_nginx(
    files => {
        'webhook.tokens' => "odoo-prod $TOK_PROD\nodoo-stage\t$TOK_STAGE\n$TOK_ANON\n",
    },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 2s;\n"
        . "map \$webhook_model \$instant_prio { default high; stock.picking low; }\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(queue => '{webhook}', api_key_header => 'X-API-Key')
        . receive_location(path => '/mapped', queue => '{mapped}',
            extra => 'webhook_instant_priority $instant_prio;')
        . receive_location(path => '/small-rejected', queue => '{small}',
            extra => 'webhook_rejected 3 max_size=100k entry=64;')
        . "        location = /open {\n"
        . "            webhook_receive;\n"
        . "            webhook_queue \"{open}\";\n"
        . "            webhook_token_file off;\n"
        . "            webhook_sender \$http_x_odoo_db;\n"
        . "            allow 127.0.0.1;\n"
        . "            deny all;\n"
        . "        }\n"
        . "        location = /by-header {\n"
        . "            webhook_receive;\n"
        . "            webhook_token_file %%PREFIX%%/webhook.tokens;\n"
        . "            webhook_sender \$http_x_odoo_db;\n"
        . "        }\n"
        . "        location = /closed {\n"
        . "            webhook_receive;\n"
        . "            webhook_queue \"{closed}\";\n"
        . "            webhook_token_file off;\n"
        . "            deny all;\n"
        . "        }\n"
        . "        location = /status { webhook_status; }\n"
        . "        location / { return 404; }\n    }\n",
);

# the addon's requests: POST, JSON, its User-Agent; auth as configured
sub odoo {
    my ($body, %o) = @_;
    my %h = ('Content-Type' => 'application/json', 'User-Agent' => 'Odoo-Webhook/1.0',
        %{ $o{headers} // {} });
    return $ng->request('POST', $o{path} // $R, \%h, $body, timeout => 30);
}

sub envelopes {
    my ($list) = @_;
    return map { json_decode($_) } reverse $redis->lrange($list);
}

sub subtest_fresh { $redis->flushall; subtest @_ }

my $EVENT = sample_text('odoo-event.json');
my $INSTANT = sample_text('odoo-instant.json');
my $BATCH = sample_text('odoo-batch.json');

subtest_fresh 'auth types as the addon sends them' => sub {
    my @types = (
        ['bearer', { Authorization => "Bearer $TOK_PROD" }, 'odoo-prod'],
        ['api_key (X-API-Key)', { 'X-API-Key' => $TOK_STAGE }, 'odoo-stage'],
        ['basic, the token as typed', { Authorization => "Basic $TOK_ANON" }, undef],
        ['basic, user:token in base64',
            { Authorization => 'Basic ' . MIME::Base64::encode_base64("odoo:$TOK_PROD", '') }, 'odoo-prod'],
    );
    my $id = 900;
    for my $t (@types) {
        my ($name, $h, $sender) = @$t;
        my $body = json_decode($EVENT);
        $body->{event_id} = ++$id;
        my $res = odoo(json_encode($body), headers => $h);
        is_queued($res, 'high', "$name: queued");
        my ($env) = grep { $_->{event_id} == $id } envelopes('{webhook}:queue:high');
        ok($env, "$name: envelope in {webhook}:queue:high") or next;
        is($env->{sender}, $sender, "$name: sender " . ($sender // 'null'));
    }

    my $res = odoo($EVENT, headers => { Authorization => 'Basic bm9wZTpub3Bl' });
    is_json_error($res, 401, 'unauthorized', 'basic with a wrong password: 401');

    # auth none: the addon sends no header; nginx's allow/deny decide
    $res = odoo($EVENT, path => '/open', headers => { 'X-Odoo-Db' => 'prod db' });
    is_queued($res, 'high', 'none (webhook_token_file off, allow 127.0.0.1): queued');
    my ($env) = envelopes('{open}:queue:high');
    is($env->{sender}, 'prod%20db', 'webhook_sender $http_x_odoo_db names it (unsafe bytes as %XX)')
        if $env;
    $res = odoo($EVENT, path => '/closed');
    is_json_error($res, 403, 'forbidden', 'none behind deny all: 403 in JSON');
    is_deeply([grep { /^\{closed\}/ } $redis->keys], [], 'nothing of {closed} in Redis');
};

subtest_fresh 'named senders: dedupe per sender' => sub {
    my $res = odoo($EVENT, headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'high', 'event 48213 from odoo-prod: queued');
    $res = odoo($EVENT, headers => { Authorization => "Bearer $TOK_STAGE" });
    is_queued($res, 'high', 'event 48213 from odoo-stage: queued too (another database)');
    $res = odoo($EVENT, headers => { Authorization => "Bearer $TOK_PROD" });
    is($res->{json}{status}, 'duplicate', 'event 48213 from odoo-prod again: duplicate');
    is($redis->llen('{webhook}:queue:high'), 2, 'two envelopes');
    ok(defined $redis->cli('GET', '{webhook}:seen:id:odoo-prod:48213'), 'seen key of odoo-prod');
    ok(defined $redis->cli('GET', '{webhook}:seen:id:odoo-stage:48213'), 'seen key of odoo-stage');
};

subtest_fresh 'a header cannot take a named token\'s name' => sub {
    # the README's webhook_sender $http_x_odoo_db, with the unnamed token:
    # posing as odoo-prod, it would take odoo-prod's event_id first, and
    # the real event would be answered "duplicate" and dropped
    my %anon = (Authorization => "Bearer $TOK_ANON");
    for my $name ('odoo-prod', 'ODOO-Prod', 'odoo-stage') {
        my $res = odoo($EVENT, path => '/by-header', headers => { %anon, 'X-Odoo-Db' => $name });
        is_json_error($res, 403, 'forbidden', "the unnamed token calling itself $name: 403");
    }
    my $res = odoo($EVENT, path => '/open', headers => { 'X-Odoo-Db' => 'odoo-prod' });
    is_json_error($res, 403, 'forbidden', 'webhook_token_file off, calling itself odoo-prod: 403');
    is_deeply([grep { /:(queue|seen):/ } $redis->keys], [], 'nothing queued, no seen key taken');
    like($ng->error_log, qr/\[warn\].*webhook: the sender name "odoo-prod" of webhook_sender is a named token's: refused/,
        'the error log says so');

    $res = odoo($EVENT, headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'high', 'the real odoo-prod event: queued, not a duplicate');

    # a name no named token has is the header's to give
    $res = odoo($EVENT, path => '/by-header', headers => { %anon, 'X-Odoo-Db' => 'odoo-other' });
    is_queued($res, 'high', 'the unnamed token calling itself odoo-other: queued');
    my @env = envelopes('{webhook}:queue:high');
    is_deeply([map { $_->{sender} } @env], ['odoo-prod', 'odoo-other'], 'each under its own name');
    $res = odoo($EVENT, path => '/by-header', headers => { Authorization => "Bearer $TOK_PROD",
        'X-Odoo-Db' => 'odoo-other' });
    is($res->{json}{status}, 'duplicate', 'a named token\'s name wins over the header: odoo-prod\'s duplicate');
};

subtest_fresh 'instant path: priority from configuration' => sub {
    my $res = odoo($INSTANT, headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'high', 'instant sample: high (webhook_instant_priority default)');
    ok($res->{status} == 200, 'a status the instant path counts as delivered');

    my $pick = json_decode($INSTANT);
    $pick->{_webhook_metadata}{model} = 'stock.picking';
    $pick->{_webhook_metadata}{event_id} = 48299;
    $res = odoo(json_encode($pick), path => '/mapped', headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'low', 'webhook_instant_priority $instant_prio, map of $webhook_model: stock.picking low');
    $res = odoo($INSTANT, path => '/mapped', headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'high', 'res.partner: the map default, high');

    # the cron sends the same event later in the event shape: a duplicate
    my $again = json_decode($EVENT);
    $again->{event_id} = 48214;
    $res = odoo(json_encode($again), headers => { Authorization => "Bearer $TOK_PROD" });
    is($res->{json}{status}, 'duplicate', 'the cron resend of instant event 48214: duplicate');
};

subtest_fresh 'templates of any shape are queued' => sub {
    my $res = odoo('{"type": "sale.order.write", "object_id": 5, "total": 1483.5}',
        headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'medium', 'a template payload: queued on the default priority');
    my ($env) = envelopes('{webhook}:queue:medium');
    is_deeply([map { $env->{$_} } qw(event_id model record_id event)], [undef, undef, undef, undef],
        'its fields are null') if $env;
    ok(!exists $env->{warnings}, 'no warnings: nothing was of the wrong type') if $env;

    $res = odoo('{"event_id": 77, "model": 5, "record_id": "x", "event": "write", "priority": "urgent"}',
        headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'medium', 'wrong types and an unknown priority: queued on the default priority');
    ($env) = grep { ($_->{event_id} // 0) == 77 } envelopes('{webhook}:queue:medium');
    is_deeply($env->{warnings}, ['priority', 'model', 'record_id'], 'the envelope names them')
        if $env;
    is($env->{model}, undef, 'model taken as absent') if $env;

    $res = odoo('{"_webhook_metadata": 5, "model": "res.partner", "record_id": 4, "event": "write"}',
        headers => { Authorization => "Bearer $TOK_PROD" });
    is_queued($res, 'medium', 'a _webhook_metadata that is no object: queued as the event shape');
    ($env) = grep { ($_->{record_id} // 0) == 4 } envelopes('{webhook}:queue:medium');
    is_deeply($env->{warnings}, ['_webhook_metadata'], 'and named in the warnings') if $env;

    $res = odoo($BATCH, headers => { Authorization => "Bearer $TOK_PROD" });
    is($res->{json}{queued}, 3, 'the batch sample: 3 queued');

    my $st = $ng->request('GET', '/status')->{json} // {};
    cmp_ok($st->{queues}{'{webhook}'}{warnings} // 0, '>=', 1, 'the status counts the event with warnings');
    my $text = $ng->request('GET', '/status?format=prometheus')->{body} // '';
    like($text, qr/^nginx_webhook_warnings_total\{queue="\{webhook\}"\} [1-9]/m, 'and Prometheus');
};

subtest_fresh 'a body that is no JSON object: 400, kept in the rejected list' => sub {
    my @bad = (['not JSON', '{"event_id": 1,'], ['an array', '[1, 2]'],
        ['a batch with a number', '{"batch": true, "events": [{"event_id": 1}, 42]}']);
    for my $b (@bad) {
        my $res = odoo($b->[1], headers => { Authorization => "Bearer $TOK_PROD" });
        is($res->{status}, 400, "$b->[0]: 400");
    }
    is_deeply([grep { /:queue:/ } $redis->keys], [], 'nothing queued');
    my @rej = map { json_decode($_) } $redis->lrange('{webhook}:rejected');
    is(scalar @rej, 3, 'three entries in {webhook}:rejected');
    my $last = $rej[0] // {};
    is($last->{body}, $bad[2][1], 'the newest entry keeps the body');
    is($last->{sender}, 'odoo-prod', 'and the sender');
    is($last->{answer}{error}, 'invalid_payload', 'and the answer');

    my $res = odoo('nope', headers => { Authorization => 'Bearer wrong' });
    is($res->{status}, 401, 'an unauthenticated body: 401');
    is($redis->llen('{webhook}:rejected'), 3, 'not kept');

    # the bounds: 3 entries, each body cut at 64 bytes
    for my $i (1 .. 5) {
        odoo("[$i, \"" . ('x' x 100) . '"]', path => '/small-rejected',
            headers => { Authorization => "Bearer $TOK_PROD" });
    }
    my @small = map { json_decode($_) } $redis->lrange('{small}:rejected');
    is(scalar @small, 3, 'webhook_rejected 3: the 3 newest kept');
    like($small[0]{body} // '', qr/^\[5, "x{59}\z/, 'entry=64: the body cut at 64 bytes');
    ok($small[0]{truncated}, 'marked truncated');
    is($small[0]{size}, 107, 'with its size');

    # entries stay JSON that strict readers take: a cut inside a character
    # leaves it out whole, a byte of no UTF-8 character is U+FFFD
    odoo('[7, "' . ('x' x 58) . "\xe2\x82\xac\xe2\x82\xac\"]", path => '/small-rejected',
        headers => { Authorization => "Bearer $TOK_PROD" });
    odoo("[8, \"a\xffb\xe2\x82\"]", path => '/small-rejected', headers => { Authorization => "Bearer $TOK_PROD" });
    my @raw = $redis->lrange('{small}:rejected');
    my ($bad, $cut) = map { json_decode($_) } @raw[0, 1];
    ok($cut, 'an entry cut at entry=64 inside a 3-byte character is JSON') or diag $raw[1];
    is($cut && $cut->{body}, '[7, "' . ('x' x 58), 'cut before that character');
    ok($cut && $cut->{truncated}, 'marked truncated');
    ok($bad, 'an entry of a body that is no UTF-8 is JSON') or diag $raw[0];
    is($bad && $bad->{body}, "[8, \"a\x{fffd}b\x{fffd}\x{fffd}\"]", 'its bytes of no character read as U+FFFD');
    like($bad && $bad->{answer}{message}, qr/not valid UTF-8 \(at byte 6\)/, 'its answer says why');

    my $st = $ng->request('GET', '/status')->{json} // {};
    is($st->{queues}{'{webhook}'}{rejected}, 3, 'the status shows the rejected list\'s depth');
    is($st->{queues}{'{small}'}{rejected}, 3, 'of each queue');
    my $text = $ng->request('GET', '/status?format=prometheus')->{body} // '';
    like($text, qr/^nginx_webhook_rejected_depth\{queue="\{webhook\}"\} 3$/m, 'and Prometheus');
};

subtest_fresh 'the test buttons' => sub {
    my $res = $ng->request('HEAD', $R, {});
    is($res->{status}, 200, 'test connection: HEAD 200');
    $res = odoo(sample_text('odoo-test-connection.json'), headers => { Authorization => "Bearer $TOK_PROD" });
    is_deeply($res->{json}, { status => 'ok', test => JSON::PP::true() }, 'test connection body: ok');

    my $test = json_decode($EVENT);
    $test->{data}{_test_event} = JSON::PP::true();
    $res = odoo(json_encode($test), headers => { Authorization => "Bearer $TOK_PROD" });
    is_deeply($res->{json}, { status => 'ok', test => JSON::PP::true() }, '"Test webhook" (data._test_event): test answer');
    my $m1 = json_decode($EVENT);
    $m1->{record_id} = -1;
    $m1->{event_id} = 31337;
    $res = odoo(json_encode($m1), headers => { Authorization => "Bearer $TOK_PROD" });
    is_deeply($res->{json}, { status => 'ok', test => JSON::PP::true() }, 'record_id -1: test answer');
    is_deeply([grep { /:queue:|:seen:/ } $redis->keys], [], 'no test event queued or seen');

    $redis->stop;
    $res = odoo(sample_text('odoo-test-connection.json'), headers => { Authorization => "Bearer $TOK_PROD" });
    is_json_error($res, 503, 'unavailable', 'Redis down: test connection answers 503');
    $redis->start;
    ok(wait_until(sub {
        my $r = odoo(sample_text('odoo-test-connection.json'), headers => { Authorization => "Bearer $TOK_PROD" });
        $r->{status} == 200;
    }, timeout => 15), 'Redis back: test connection 200 again');

    $redis->cli('CONFIG', 'SET', 'maxmemory', '1');
    $res = odoo(sample_text('odoo-test-connection.json'), headers => { Authorization => "Bearer $TOK_PROD" });
    is_json_error($res, 503, 'unavailable', 'Redis out of memory: test connection answers 503');
    like($res->{json}{message} // '', qr/OOM/, 'with Redis\'s reason');
    $redis->cli('CONFIG', 'SET', 'maxmemory', '0');
};

ok($ng->stop, 'nginx stops');
unlike($ng->error_log, qr/\[(alert|emerg|crit)\]/, 'no alert in the error log');

done_testing;
