#!/usr/bin/perl
# The receive location: methods, auth, content type, payload shapes,
# priorities, envelopes, JSON answers, schema any; refusals leave Redis alone.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 ();
use Time::Local qw(timegm);
use Time::HiRes qw(time);
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my @TOKENS = ('tok-alpha-1234567890', 'tok-beta-0987654321');

my $redis = start_redis();
my $ng = start_nginx(
    workers => 2,
    files => { 'webhook.tokens' => "# tokens for Odoo\n\n$TOKENS[0]\n   \n# old one:\n$TOKENS[1]\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 2s;\n" . <<'HTTP'
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
HTTP
        . receive_location(queue => '{webhook}', api_key_header => 'X-API-Key',
            default_priority => 'medium', schema => 'event')
        . receive_location(path => '/any', schema => 'any')
        . receive_location(path => '/low', queue => '{other}', default_priority => 'low')
        . "        location / { return 404; }\n    }\n",
);

my $EVENT = sample_text('odoo-event.json');
my $INSTANT = sample_text('odoo-instant.json');

# post($body, header => value, ..., path => ...): POST with the default
# token and Content-Type unless overridden (undef removes a header).
sub post {
    my ($body, %h) = @_;
    my $path = delete $h{path} // $R;
    my %headers = (
        'Content-Type' => 'application/json',
        'Authorization' => "Bearer $TOKENS[0]",
        %h,
    );
    return $ng->request('POST', $path, \%headers, $body);
}

sub ev { json_encode({ event_id => 1, model => 'sale.order', record_id => 5, event => 'write', @_ }) }

# the keys of events: a test's write (<queue>:probe) and the rejected list
# (<queue>:rejected and its :bytes) are not
sub redis_empty {
    my ($name) = @_;
    my @k = grep { !/:(probe|rejected|rejected:bytes)\z/ } $redis->keys;
    is_deeply(\@k, [], "nothing in Redis: $name") or diag "keys: @k";
}

# take_one($key, $name): the list holds exactly one envelope; returns it decoded.
sub take_one {
    my ($key, $name) = @_;
    # other keys (e.g. a dedupe marker) are not this test's business, other queues are
    my @all = grep { $_ ne $key && /:queue:/ } $redis->keys;
    my @e = $redis->take($key);
    $redis->flushall;    # start the next case from an empty Redis
    is(scalar @e, 1, "one envelope in $key ($name)") or diag "got: " . join("\n", map { $_->{raw} } @e);
    is_deeply(\@all, [], "no other queue touched ($name)") or diag "other queues: @all";
    return undef unless @e;
    my $raw = $e[0]{raw};
    unlike($raw, qr/[\r\n]/, "envelope is one line ($name)");
    ok(ref $e[0]{env} eq 'HASH', "envelope is a JSON object ($name)") or diag "raw: $raw";
    return $e[0]{env};
}

# check_envelope($env, $res, {field => value...}, $payload, $name)
sub check_envelope {
    my ($env, $res, $want, $payload, $name) = @_;
    return fail("no envelope ($name)") unless ref $env eq 'HASH';
    my @missing = grep { !exists $env->{$_} } qw(id received_at priority event_id model record_id event payload);
    is_deeply(\@missing, [], "envelope has all fields ($name)") or diag explain $env;
    is($env->{id}, $res->{json}{id}, "envelope id is the answer's id ($name)");
    like($env->{id} // '', qr/^[0-9a-f]{32}\z/, "envelope id is 32 hex ($name)");
    my $ra = $env->{received_at} // '';
    if (like($ra, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/, "received_at format ($name)")) {
        my ($Y, $M, $D, $h, $m, $s) = $ra =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)/;
        my $t = timegm($s, $m, $h, $D, $M - 1, $Y);
        cmp_ok(abs($t - time), '<', 120, "received_at is now, UTC ($name)") or diag "received_at $ra";
    }
    for my $k (sort keys %$want) {
        if (!defined $want->{$k}) {
            ok(exists $env->{$k} && !defined $env->{$k}, "envelope $k is null ($name)")
                or diag "$k: " . json_scalar($env->{$k});
        } else {
            # compare JSON text so that 1842 and "1842" differ
            is(json_scalar($env->{$k}), json_scalar($want->{$k}), "envelope $k ($name)");
        }
    }
    is_deeply($env->{payload}, $payload, "envelope payload is the request's object ($name)")
        or diag "payload: " . json_encode($env->{payload});
}

# each subtest starts from an empty Redis
sub subtest_fresh {
    my ($name, $code) = @_;
    $redis->flushall;
    subtest $name, $code;
}

# ================================================================ refusals

subtest_fresh 'methods other than POST and HEAD: 405' => sub {
    for my $m (qw(GET PUT DELETE PATCH OPTIONS)) {
        for my $auth (undef, "Bearer $TOKENS[0]") {
            my $what = $m . ($auth ? ' with token' : ' without token');
            my $res = $ng->request($m, $R, { Authorization => $auth,
                'Content-Type' => 'application/json' }, $m eq 'GET' ? undef : $EVENT);
            is_json_error($res, 405, 'method_not_allowed', "$what: 405");
            my $allow = $res->{headers}{allow} // '';
            (my $norm = $allow) =~ s/\s+//g;
            is($norm, 'POST,HEAD', "$what: Allow: POST, HEAD") or diag "Allow: '$allow'";
        }
    }
    redis_empty('after 405s');
};

subtest_fresh 'HEAD: 200, empty body, no token needed' => sub {
    for my $auth (undef, "Bearer $TOKENS[0]", 'Bearer wrong') {
        my $what = defined $auth ? "HEAD with '$auth'" : 'HEAD without token';
        my $res = $ng->raw(method => 'HEAD', pieces => [
            "HEAD $R HTTP/1.1\r\nHost: localhost\r\n"
            . (defined $auth ? "Authorization: $auth\r\n" : '')
            . "Connection: close\r\n\r\n"]);
        is($res->{status}, 200, "$what: 200") or diag dump_res($res);
        is(($res->{body} // '') . ($res->{after} // ''), '', "$what: nothing after the headers");
        my $cl = $res->{headers}{'content-length'};
        ok(!defined $cl || $cl eq '0', "$what: Content-Length absent or 0")
            or diag "Content-Length: $cl";
    }
    redis_empty('after HEADs');
};

subtest_fresh 'authentication' => sub {
    my @bad = (
        ['no Authorization header', {}],
        ['wrong bearer token', { Authorization => 'Bearer tok-gamma-000' }],
        ['empty bearer token', { Authorization => 'Bearer ' }],
        ['bare "Bearer"', { Authorization => 'Bearer' }],
        ['prefix of a token', { Authorization => 'Bearer ' . substr($TOKENS[0], 0, 10) }],
        ['token plus suffix', { Authorization => "Bearer $TOKENS[0]x" }],
        ['token without scheme', { Authorization => $TOKENS[0] }],
        ['Basic with a wrong token', { Authorization => 'Basic tok-gamma-000' }],
        ['Basic user:password with a wrong password',
            { Authorization => 'Basic ' . MIME::Base64::encode_base64("odoo:nope", '') }],
        ['Basic with the token as the user', { Authorization => 'Basic '
            . MIME::Base64::encode_base64("$TOKENS[0]:x", '') }],
        ['comment line as token', { Authorization => 'Bearer # tokens for Odoo' }],
        ['wrong X-API-Key', { 'X-API-Key' => 'nope' }],
        ['X-API-Key with "Bearer "', { 'X-API-Key' => "Bearer $TOKENS[0]" }],
        ['empty X-API-Key', { 'X-API-Key' => '' }],
    );
    for my $c (@bad) {
        my ($name, $h) = @$c;
        my $res = post($EVENT, Authorization => undef, %$h);
        is_json_error($res, 401, 'unauthorized', "$name: 401");
        like($res->{headers}{'www-authenticate'} // '', qr/^Bearer\b/, "$name: WWW-Authenticate: Bearer");
    }

    # X-API-Key is only accepted where webhook_api_key_header is set
    my $res = post($EVENT, Authorization => undef, 'X-API-Key' => $TOKENS[0], path => '/low');
    is_json_error($res, 401, 'unauthorized', 'X-API-Key on a location without webhook_api_key_header: 401');

    # auth is checked before the body: a client that announces a body and
    # never sends it gets its 401 at once
    $res = $ng->raw(timeout => 15, pieces => [
        "POST $R HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        . "Content-Length: 100000\r\n\r\n{\"event_id\":"]);
    is_json_error($res, 401, 'unauthorized', 'no token, body never sent: 401');
    cmp_ok($res->{elapsed}, '<', 5, 'no token, body never sent: answered without waiting for the body');

    # auth comes before the content type and the payload
    $res = post('not json', Authorization => undef, 'Content-Type' => 'text/plain');
    is_json_error($res, 401, 'unauthorized', 'no token and text/plain: 401 first');
    $res = post('{broken', Authorization => 'Bearer nope');
    is_json_error($res, 401, 'unauthorized', 'wrong token and bad JSON: 401 first');

    redis_empty('after 401s');
};

subtest_fresh 'content type' => sub {
    for my $ct (undef, 'text/plain', 'application/x-www-form-urlencoded', 'application/jsonx',
                'application/xml', 'multipart/form-data; boundary=x', 'text/json') {
        my $what = defined $ct ? "Content-Type: $ct" : 'no Content-Type';
        my $res = post($EVENT, 'Content-Type' => $ct);
        is_json_error($res, 415, 'unsupported_media_type', "$what: 415");
    }
    redis_empty('after 415s');
};

subtest_fresh 'bad payloads: 400' => sub {
    my @cases = (
        ['malformed JSON', '{"model": "sale.order", ', 'invalid_json'],
        ['not JSON at all', 'hello', 'invalid_json'],
        ['empty body', '', ['invalid_json', 'invalid_payload']],
        ['array', '[1]', ['invalid_json', 'invalid_payload']],
        ['string', '"x"', ['invalid_json', 'invalid_payload']],
        ['number', '42', ['invalid_json', 'invalid_payload']],
        ['null', 'null', ['invalid_json', 'invalid_payload']],
        ['object then garbage', ev() . ' trailing', ['invalid_json', 'invalid_payload']],
        ['two objects', ev() . ev(), ['invalid_json', 'invalid_payload']],
        ['missing model', json_encode({ event_id => 1, record_id => 5, event => 'write' }), 'invalid_payload'],
        ['empty model', ev(model => ''), 'invalid_payload'],
        ['model not a string', ev(model => 12), 'invalid_payload'],
        ['missing record_id', json_encode({ event_id => 1, model => 'x', event => 'write' }), 'invalid_payload'],
        ['record_id a string', ev(record_id => '1842'), 'invalid_payload'],
        ['record_id a float', ev(record_id => 1.5), 'invalid_payload'],
        ['record_id null', ev(record_id => undef), 'invalid_payload'],
        ['missing event', json_encode({ event_id => 1, model => 'x', record_id => 5 }), 'invalid_payload'],
        ['event not a string', ev(event => 3), 'invalid_payload'],
        ['instant: metadata without event_type (top-level event ignored)',
            json_encode({ event => 'write', _webhook_metadata => { event_id => 2, model => 'res.partner', record_id => 7 } }),
            'invalid_payload'],
        ['instant: metadata without model (top-level model ignored)',
            json_encode({ model => 'res.partner', _webhook_metadata => { event_id => 2, event_type => 'create', record_id => 7 } }),
            'invalid_payload'],
        ['instant: metadata without record_id (top-level record_id ignored)',
            json_encode({ record_id => 7, _webhook_metadata => { event_id => 2, event_type => 'create', model => 'res.partner' } }),
            'invalid_payload'],
        ['instant: metadata record_id a string',
            json_encode({ _webhook_metadata => { event_type => 'create', model => 'res.partner', record_id => '7' } }),
            'invalid_payload'],
        ['priority "urgent"', ev(priority => 'urgent'), 'invalid_priority'],
        ['priority ""', ev(priority => ''), 'invalid_priority'],
        ['priority "HIGHEST"', ev(priority => 'highest'), 'invalid_priority'],
        ['priority a number', ev(priority => 1), ['invalid_priority', 'invalid_payload']],
        ['instant: metadata priority "urgent"',
            json_encode({ _webhook_metadata => { event_type => 'create', model => 'res.partner', record_id => 7, priority => 'urgent' } }),
            'invalid_priority'],
    );
    for my $c (@cases) {
        my ($name, $body, $code) = @$c;
        my $res = post($body);
        is_json_error($res, 400, $code, "$name: 400");
    }
    my $res = post(ev(), 'X-Webhook-Priority' => 'urgent');
    is_json_error($res, 400, 'invalid_priority', 'X-Webhook-Priority: urgent (no priority in event): 400');

    for my $c (['malformed JSON', '{"a":', 'invalid_json'], ['array', '[1]', ['invalid_json', 'invalid_payload']],
               ['string', '"x"', ['invalid_json', 'invalid_payload']]) {
        my ($name, $body, $code) = @$c;
        my $r = post($body, path => '/any');
        is_json_error($r, 400, $code, "schema any, $name: 400");
    }
    redis_empty('after 400s');
};

# ================================================================ accepted

subtest_fresh 'Odoo event shape (sample)' => sub {
    my $res = post($EVENT);
    is_queued($res, 'high', 'event sample: queued, priority high') or return;
    my $env = take_one('{webhook}:queue:high', 'event sample');
    check_envelope($env, $res, { priority => 'high', event_id => 48213, model => 'sale.order',
        record_id => 1842, event => 'write' }, sample_json('odoo-event.json'), 'event sample');
};

subtest_fresh 'Odoo instant shape (sample)' => sub {
    my $res = post($INSTANT);
    is_queued($res, 'high', 'instant sample: queued, webhook_instant_priority\'s default high') or return;
    my $env = take_one('{webhook}:queue:high', 'instant sample');
    check_envelope($env, $res, { priority => 'high', event_id => 48214, model => 'res.partner',
        record_id => 77, event => 'create' }, sample_json('odoo-instant.json'), 'instant sample');
};

subtest_fresh 'instant shape: top-level fields are record data' => sub {
    # a project.task with its own "priority": "1", "model", "record_id", "event"
    my $body = {
        id => 9, name => 'Fix the roof', priority => '1', model => 'not.this', record_id => 'nope',
        event => 99, event_id => 'ignored',
        _webhook_metadata => { event_id => 501, event_type => 'write', model => 'project.task', record_id => 9 },
    };
    my $res = post(json_encode($body));
    is_queued($res, 'high', 'task with top-level "priority": "1": queued with the instant priority');
    my $env = take_one('{webhook}:queue:high', 'task');
    check_envelope($env, $res, { priority => 'high', event_id => 501, model => 'project.task',
        record_id => 9, event => 'write' }, $body, 'task');

    $body->{_webhook_metadata}{priority} = 'high';
    $res = post(json_encode($body), 'X-Webhook-Priority' => 'low');
    is_queued($res, 'high', 'metadata priority wins over header and top-level priority');
    $env = take_one('{webhook}:queue:high', 'task, metadata priority');
    check_envelope($env, $res, { priority => 'high' }, $body, 'task, metadata priority');

    delete $body->{_webhook_metadata}{priority};
    $res = post(json_encode($body), 'X-Webhook-Priority' => 'low');
    is_queued($res, 'low', 'no metadata priority: X-Webhook-Priority used, not top-level "1"');
    take_one('{webhook}:queue:low', 'task, header priority');

    my $noid = { x => 1, _webhook_metadata => { event_type => 'unlink', model => 'res.partner', record_id => 3 } };
    $res = post(json_encode($noid));
    is_queued($res, 'high', 'instant without event_id: queued');
    $env = take_one('{webhook}:queue:high', 'instant without event_id');
    check_envelope($env, $res, { event_id => undef, event => 'unlink', record_id => 3 }, $noid,
        'instant without event_id');
};

subtest_fresh 'priorities' => sub {
    my @cases = (
        # name, body, headers, path, expected priority, key
        ['event priority low', ev(priority => 'low'), {}, $R, 'low', '{webhook}:queue:low'],
        ['event priority medium', ev(priority => 'medium'), {}, $R, 'medium', '{webhook}:queue:medium'],
        ['no priority, header high', ev(), { 'X-Webhook-Priority' => 'high' }, $R, 'high', '{webhook}:queue:high'],
        ['event low beats header high', ev(priority => 'low'), { 'X-Webhook-Priority' => 'high' }, $R, 'low', '{webhook}:queue:low'],
        ['no priority, no header: default medium', ev(), {}, $R, 'medium', '{webhook}:queue:medium'],
        ['location default low, other queue', ev(), {}, '/low', 'low', '{other}:queue:low'],
        ['location default low, header high', ev(), { 'X-Webhook-Priority' => 'high' }, '/low', 'high', '{other}:queue:high'],
    );
    for my $c (@cases) {
        my ($name, $body, $h, $path, $prio, $key) = @$c;
        my $res = post($body, %$h, path => $path);
        is_queued($res, $prio, "$name: queued as $prio") or next;
        my $env = take_one($key, $name);
        is($env->{priority}, $prio, "$name: envelope priority") if $env;
    }
};

subtest_fresh 'auth variants and content-type parameters that are accepted' => sub {
    my @ok = (
        ['second token of the file', { Authorization => "Bearer $TOKENS[1]" }],
        ['token in X-API-Key', { Authorization => undef, 'X-API-Key' => $TOKENS[0] }],
        ['second token in X-API-Key', { Authorization => undef, 'X-API-Key' => $TOKENS[1] }],
        ['Basic with the token as typed (Odoo)', { Authorization => "Basic $TOKENS[0]" }],
        ['Basic with user:token in base64', { Authorization => 'Basic '
            . MIME::Base64::encode_base64("odoo:$TOKENS[1]", '') }],
        ['wrong Authorization but good X-API-Key', { Authorization => 'Bearer nope', 'X-API-Key' => $TOKENS[1] }],
        ['Content-Type with charset', { 'Content-Type' => 'application/json; charset=utf-8' }],
        ['Content-Type with charset, no space', { 'Content-Type' => 'application/json;charset=UTF-8' }],
    );
    for my $c (@ok) {
        my ($name, $h) = @$c;
        my $res = post(ev(event_id => 7), %$h);
        is_queued($res, 'medium', "$name: 200");
        take_one('{webhook}:queue:medium', $name);
    }
    my $res = post("  \n" . ev(event_id => 8) . "\n");
    is_queued($res, 'medium', 'JSON surrounded by whitespace: 200');
    take_one('{webhook}:queue:medium', 'whitespace');
};

subtest_fresh 'event without event_id' => sub {
    my $body = { model => 'res.partner', record_id => 3, event => 'create' };
    my $res = post(json_encode($body));
    is_queued($res, 'medium', 'no event_id: 200');
    my $env = take_one('{webhook}:queue:medium', 'no event_id');
    check_envelope($env, $res, { event_id => undef, model => 'res.partner', record_id => 3, event => 'create' },
        $body, 'no event_id');
};

subtest_fresh 'schema any' => sub {
    my $body = { hello => 'world', n => [1, 2, 3] };
    my $res = post(json_encode($body), path => '/any');
    is_queued($res, 'medium', 'schema any: arbitrary object queued');
    my $env = take_one('{webhook}:queue:medium', 'schema any');
    is_deeply($env->{payload}, $body, 'schema any: payload kept') if $env;
    is($env->{id}, $res->{json}{id}, 'schema any: envelope id') if $env;

    $res = post('{}', path => '/any');
    is_queued($res, 'medium', 'schema any: empty object queued');
    take_one('{webhook}:queue:medium', 'schema any, {}');

    $res = post(json_encode($body));
    is_json_error($res, 400, 'invalid_payload', 'same object on the event-schema location: 400');
    redis_empty('after schema checks');
};

subtest_fresh 'ids are unique' => sub {
    my %seen;
    for (1 .. 10) {
        my $res = post(ev(event_id => 1000 + $_));
        is_queued($res, 'medium', "request $_") or next;
        $seen{ $res->{json}{id} }++;
    }
    is(scalar keys %seen, 10, 'ten different ids');
    my @e = $redis->take('{webhook}:queue:medium');
    is(scalar @e, 10, 'ten envelopes');
    is_deeply([sort map { $_->{env}{id} // '' } @e], [sort keys %seen], 'envelope ids are the answered ids');
    is_deeply([map { $_->{env}{payload}{event_id} } @e], [map { 1000 + $_ } 1 .. 10],
        'envelopes in arrival order (LPUSH: oldest at the tail)');
};

subtest_fresh 'other paths are not handled by the module' => sub {
    my $res = $ng->request('POST', '/api/v1/webhooks/receive/extra',
        { Authorization => "Bearer $TOKENS[0]", 'Content-Type' => 'application/json' }, $EVENT);
    is($res->{status}, 404, 'exact location only');
    redis_empty('after other path');
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[(alert|emerg)\]|open socket/, 'no alert/emerg/open socket in error log')
    or diag join "\n", grep { /\[(alert|emerg)\]|open socket/ } split /\n/, $ng->error_log;

done_testing;
