#!/usr/bin/perl
# Deduplication: <queue>:seen:id:<sender>:<event_id> with the webhook_dedupe
# TTL, the instant shape's _webhook_metadata.event_id, Idempotency-Key /
# webhook-id for events without an id (<queue>:seen:key:<sender>:<key>),
# webhook_dedupe off, duplicates across and within batches, per sender.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-dedupe-5d02c8f3a1b7';
my $TOKEN_A = 'tok-dedupe-a-71c94e0b26d3';
my $TOKEN_B = 'tok-dedupe-b-0e8a35f7c142';

my $redis = start_redis();
my $ng = start_nginx(
    workers => 2,
    files => { 'webhook.tokens' => "$TOKEN\n",
               'named.tokens' => "odoo-a $TOKEN_A\nodoo-b $TOKEN_B\n$TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 5s;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(queue => '{webhook}')    # webhook_dedupe: default (1h)
        . receive_location(path => '/ttl10', queue => '{ttl}', extra => 'webhook_dedupe 10s;')
        . receive_location(path => '/nodedupe', queue => '{nod}', extra => 'webhook_dedupe off;')
        . receive_location(path => '/named', queue => '{named}', tokens => 'named.tokens')
        . "        location / { return 404; }\n    }\n",
);

# post($body, header => value, ..., path => ...)
sub post {
    my ($body, %h) = @_;
    my $path = delete $h{path} // $R;
    my %headers = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN", %h);
    return $ng->request('POST', $path, \%headers, $body, timeout => 30);
}

sub ev {
    my ($id, $prio, %f) = @_;
    return { (defined $id ? (event_id => $id) : ()), model => 'sale.order', record_id => 5,
        event => 'write', (defined $prio ? (priority => $prio) : ()), %f };
}

sub instant {
    my ($meta_id, %top) = @_;
    return { id => 77, name => 'Azure Interior', %top,
        _webhook_metadata => { (defined $meta_id ? (event_id => $meta_id) : ()),
            event_type => 'write', model => 'res.partner', record_id => 77 } };
}

sub batch { json_encode({ batch => JSON::PP::true(), timestamp => '2026-11-27T09:16:00.000000', events => [@_] }) }

sub seen_keys { grep { /:seen:/ } $redis->keys }

sub all_envelopes {
    my ($q) = @_;
    $q //= '{webhook}';
    return map { json_decode($_) } map { $redis->lrange("$q:queue:$_") } qw(high medium low);
}

sub is_dup {
    my ($res, $name) = @_;
    my $ok = ok($res->{status} == 200 && ref $res->{json} eq 'HASH'
        && ($res->{json}{status} // '') eq 'duplicate'
        && ($res->{headers}{'content-type'} // '') =~ m{^application/json\b}i,
        "$name: 200 {\"status\":\"duplicate\",...}");
    diag dump_res($res) unless $ok;
    return $ok;
}

sub ttl_between {
    my ($key, $lo, $hi, $name) = @_;
    my $ttl = $redis->cli('TTL', $key) // 'undef';
    ok($ttl =~ /^-?\d+\z/ && $ttl >= $lo && $ttl <= $hi, "$name: TTL of $key in [$lo, $hi]")
        or diag "TTL $key: $ttl";
}

sub subtest_fresh {
    my ($name, $code) = @_;
    $redis->flushall;
    subtest $name, $code;
}

# ================================================================ single events

subtest_fresh 'default dedupe (1h): event shape' => sub {
    my $body = sample_text('odoo-event.json');
    my $res = post($body);
    is_queued($res, 'high', 'first delivery: queued');
    is($redis->cli('EXISTS', '{webhook}:seen:id::48213'), '1', '{webhook}:seen:id::48213 exists');
    ttl_between('{webhook}:seen:id::48213', 3590, 3600, 'default dedupe');
    is_deeply([seen_keys()], ['{webhook}:seen:id::48213'], 'the only seen key');

    $res = post($body);
    is_dup($res, 'second delivery');
    $res = post($body);
    is_dup($res, 'third delivery');
    is($redis->llen('{webhook}:queue:high'), 1, 'the high list did not grow');

    # same event_id, other content and priority: still a duplicate
    $res = post(json_encode(ev(48213, 'low', record_id => 9)));
    is_dup($res, 'other body with the same event_id');

    # a retry learns the id of the envelope queued the first time
    my ($first) = map { json_decode($_)->{id} } $redis->lrange('{webhook}:queue:high');
    is($res->{json}{id}, $first, 'the duplicate answer carries the first envelope id');
    is($redis->cli('GET', '{webhook}:seen:id::48213'), $first, 'which the seen key keeps');
    is($redis->llen('{webhook}:queue:low'), 0, 'nothing on the low list');

    $res = post(json_encode(ev(48299, 'high')));
    is_queued($res, 'high', 'another event_id: queued');
    is($redis->llen('{webhook}:queue:high'), 2, 'two envelopes');
};

subtest_fresh 'instant shape uses _webhook_metadata.event_id' => sub {
    my $body = sample_text('odoo-instant.json');
    my $res = post($body);
    is_queued($res, 'high', 'instant sample: queued');
    is($redis->cli('EXISTS', '{webhook}:seen:id::48214'), '1', '{webhook}:seen:id::48214 exists');
    ttl_between('{webhook}:seen:id::48214', 3590, 3600, 'instant');
    $res = post($body);
    is_dup($res, 'instant sample again');
    is($redis->llen('{webhook}:queue:high'), 1, 'the high list did not grow (webhook_instant_priority)');

    # top-level event_id is record data: ignored
    $res = post(json_encode(instant(601, event_id => 999)));
    is_queued($res, 'high', 'instant, metadata 601, top-level event_id 999: queued');
    $res = post(json_encode(instant(602, event_id => 999)));
    is_queued($res, 'high', 'instant, metadata 602, same top-level event_id 999: queued');
    is($redis->llen('{webhook}:queue:high'), 3, 'both envelopes there');
    is_deeply([sort(seen_keys())], [sort map { "{webhook}:seen:id::$_" } 48214, 601, 602],
        'seen keys from the metadata ids only (no seen:999)');

    # metadata without event_id, top-level event_id: an event without id
    $res = post(json_encode(instant(undef, event_id => 999)));
    is_queued($res, 'high', 'instant without metadata event_id (top-level 999): queued');
    $res = post(json_encode(instant(undef, event_id => 999)));
    is_queued($res, 'high', 'the same again: queued again (no id to dedupe on)');
    is($redis->llen('{webhook}:queue:high'), 5, 'two more envelopes');
    is($redis->cli('EXISTS', '{webhook}:seen:id::999'), '0', 'no {webhook}:seen:id::999');
};

subtest_fresh 'webhook_dedupe 10s' => sub {
    my $t0 = time;
    my $res = post(json_encode(ev(700, 'high')), path => '/ttl10');
    is_queued($res, 'high', 'queued');
    my $ttl = $redis->cli('TTL', '{ttl}:seen:id::700') // 'undef';
    my $elapsed = time - $t0;    # request and TTL query: the key can only be this much older
    my $lo = 10 - int($elapsed) - 1;
    ok($ttl =~ /^\d+\z/ && $ttl >= $lo && $ttl <= 10, "webhook_dedupe 10s: TTL of {ttl}:seen:id::700 in [$lo, 10]")
        or diag "TTL: $ttl";
    $res = post(json_encode(ev(700, 'high')), path => '/ttl10');
    is_dup($res, 'again within 10s');
    is($redis->llen('{ttl}:queue:high'), 1, 'one envelope');
};

subtest_fresh 'webhook_dedupe off' => sub {
    my $body = sample_text('odoo-event.json');
    is_queued(post($body, path => '/nodedupe'), 'high', 'first: queued');
    is_queued(post($body, path => '/nodedupe'), 'high', 'second: queued');
    is($redis->llen('{nod}:queue:high'), 2, 'two envelopes');
    is_queued(post(json_encode(ev(undef)), path => '/nodedupe', 'Idempotency-Key' => 'abc'), 'medium',
        'no event_id, Idempotency-Key: queued');
    is_queued(post(json_encode(ev(undef)), path => '/nodedupe', 'Idempotency-Key' => 'abc'), 'medium',
        'no event_id, same Idempotency-Key: queued');
    is_deeply([seen_keys()], [], 'no seen key');

    my $res = post(batch(ev(710, 'low'), ev(710, 'low')), path => '/nodedupe');
    is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 0 }, 'batch repeating an event_id: both queued');
    $res = post(batch(ev(710, 'low'), ev(710, 'low')), path => '/nodedupe');
    is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 0 }, 'the same batch again: both queued');
    is($redis->llen('{nod}:queue:low'), 4, 'four low envelopes');
    is_deeply([seen_keys()], [], 'still no seen key');
};

subtest_fresh 'no event_id: queued every time, unless an idempotency header' => sub {
    my $body = json_encode(ev(undef));
    is_queued(post($body), 'medium', 'no event_id: queued');
    is_queued(post($body), 'medium', 'no event_id again: queued');
    is($redis->llen('{webhook}:queue:medium'), 2, 'two envelopes');
    is_deeply([seen_keys()], [], 'no seen key');
    $redis->flushall;

    my $res = post($body, 'Idempotency-Key' => 'abc');
    is_queued($res, 'medium', 'Idempotency-Key abc: queued');
    is_deeply([seen_keys()], ['{webhook}:seen:key::abc'], 'key {webhook}:seen:key::abc');
    ttl_between('{webhook}:seen:key::abc', 3590, 3600, 'Idempotency-Key');
    is_dup(post($body, 'Idempotency-Key' => 'abc'), 'Idempotency-Key abc again');
    is_dup(post(json_encode(ev(undef, 'low', record_id => 8)), 'Idempotency-Key' => 'abc'),
        'other body, same Idempotency-Key');
    is_queued(post($body, 'Idempotency-Key' => 'abd'), 'medium', 'Idempotency-Key abd: queued');
    is($redis->llen('{webhook}:queue:medium'), 2, 'two medium envelopes (abc, abd)');
    is($redis->llen('{webhook}:queue:low'), 0, 'no low envelope');
    $redis->flushall;

    $res = post($body, 'webhook-id' => 'abc');
    is_queued($res, 'medium', 'webhook-id abc: queued');
    is_deeply([seen_keys()], ['{webhook}:seen:key::abc'], 'webhook-id: key {webhook}:seen:key::abc');
    is_dup(post($body, 'webhook-id' => 'abc'), 'webhook-id abc again');
    is_dup(post($body, 'Idempotency-Key' => 'abc'), 'Idempotency-Key abc after webhook-id abc');
    is($redis->llen('{webhook}:queue:medium'), 1, 'one envelope');
    $redis->flushall;

    # namespaces: header value 5 vs event_id 5
    is_queued(post($body, 'Idempotency-Key' => '5'), 'medium', 'no event_id, Idempotency-Key 5: queued');
    is_queued(post(json_encode(ev(5))), 'medium', 'event_id 5: queued (no collision with the header key)');
    is_deeply([sort(seen_keys())], ['{webhook}:seen:id::5', '{webhook}:seen:key::5'], 'seen:5 and seen:key:5');
    is_dup(post(json_encode(ev(5))), 'event_id 5 again');
    is_dup(post($body, 'Idempotency-Key' => '5'), 'Idempotency-Key 5 again');
    is($redis->llen('{webhook}:queue:medium'), 2, 'two envelopes');
    $redis->flushall;

    # the key is a string of the IETF draft: printable ASCII only (it is
    # echoed in the answer, $webhook_event_id and a Redis key)
    my $key = ' "a key", with \\ and ~ ';
    is_queued(post($body, 'Idempotency-Key' => $key), 'medium', 'a key of printable ASCII: queued');
    my $dup = post($body, 'Idempotency-Key' => $key);
    is_dup($dup, 'that key again');
    is($dup->{json}{event_id}, $key =~ s/^ +| +$//gr, 'the duplicate answer echoes it');
    $redis->flushall;
    for my $c (["k\xe9y", 'Latin-1'], ["\xff\xfe", 'no UTF-8'], ["caf\xc3\xa9", 'UTF-8'], ["a\x01b", 'a control'],
               ["a\tb", 'a TAB'], ["a\x7fb", 'DEL'])
    {
        for my $hname ('Idempotency-Key', 'webhook-id') {
            my $res = post($body, $hname => $c->[0]);
            is_json_error($res, 400, 'invalid_idempotency_key', "$hname with $c->[1]: 400");
            is($res->{json}{message}, "header \"$hname\" must be printable ASCII",
                "$hname with $c->[1]: the message names the header, not the bytes");
        }
    }
    is_deeply([grep { /:(queue|seen):/ } $redis->keys], [], 'none queued, no seen key');
    is($redis->llen('{webhook}:rejected'), 12, 'each body kept in the rejected list');
    is_queued(post(json_encode(ev(72)), 'Idempotency-Key' => "\xff"), 'medium',
        'with an event_id, the header is not read: queued');
    $redis->flushall;

    # with an event_id, the header is not the idempotency key
    is_queued(post(json_encode(ev(70)), 'Idempotency-Key' => 'same'), 'medium', 'event_id 70 with Idempotency-Key: queued');
    is_queued(post(json_encode(ev(71)), 'Idempotency-Key' => 'same'), 'medium',
        'event_id 71, same Idempotency-Key: queued (event_id counts)');
    is_deeply([sort(seen_keys())], ['{webhook}:seen:id::70', '{webhook}:seen:id::71'], 'keys from the event ids');
};

# ================================================================ batches

subtest_fresh 'batch: headers are ignored, each element\'s event_id counts' => sub {
    my $body = batch(ev(undef, 'high'), ev(undef, 'low'));
    my $res = post($body, 'Idempotency-Key' => 'bk', 'webhook-id' => 'bw');
    is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 0 }, 'batch without ids, with headers: queued');
    $res = post($body, 'Idempotency-Key' => 'bk', 'webhook-id' => 'bw');
    is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 0 }, 'the same batch again: queued again');
    is_deeply([seen_keys()], [], 'no seen key (headers ignored in a batch)');

    $res = post(batch(ev(801, 'high'), ev(802, 'low')), 'Idempotency-Key' => 'bk');
    is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 0 }, 'batch with ids and a header: queued');
    is_deeply([sort(seen_keys())], ['{webhook}:seen:id::801', '{webhook}:seen:id::802'], 'seen keys of the elements only');
    $res = post(batch(ev(803, 'high')), 'Idempotency-Key' => 'bk');
    is_batch_answer($res, { status => 'queued', queued => 1, duplicates => 0 },
        'another batch with the same header: queued');
    ttl_between('{webhook}:seen:id::801', 3590, 3600, 'batch element');
    is($redis->llen('{webhook}:queue:high'), 4, 'four high envelopes');
    is($redis->llen('{webhook}:queue:low'), 3, 'three low envelopes');
};

subtest_fresh 'batch sent twice' => sub {
    my $text = sample_text('odoo-batch.json');
    my $res = post($text);
    is_batch_answer($res, { status => 'queued', queued => 3, duplicates => 0 }, 'first: queued 3');
    is_deeply([sort(seen_keys())], [map { "{webhook}:seen:id::$_" } 48215, 48216, 48217], 'three seen keys');
    my %before = map { $_ => [$redis->lrange("{webhook}:queue:$_")] } qw(high medium low);

    $res = post($text);
    is($res->{status}, 200, 'second: 200');
    is_deeply($res->{json}, { status => 'duplicate', queued => 0, duplicates => 3, ids => [] },
        'second: {"status":"duplicate","queued":0,"duplicates":3,"ids":[]}') or diag dump_res($res);
    my %after = map { $_ => [$redis->lrange("{webhook}:queue:$_")] } qw(high medium low);
    is_deeply(\%after, \%before, 'lists unchanged');

    # a single event with an id seen in a batch is a duplicate too
    is_dup(post(json_encode(ev(48216, 'low'))), 'single event 48216 after the batch');
};

subtest_fresh 'repeats within one batch' => sub {
    my @ev = (ev(900, 'high', record_id => 1), ev(901, 'medium'), ev(900, 'low', record_id => 2));
    my $res = post(batch(@ev));
    my @ids = is_batch_answer($res, { status => 'queued', queued => 2, duplicates => 1 },
        'batch with event 900 twice: queued 2, duplicates 1');
    my ($rid) = ($ids[0] // '') =~ /^([0-9a-f]{32})-0\z/;
    is_deeply(\@ids, [map { ($rid // '?') . "-$_" } 0, 1], 'ids: the first two elements');
    my @env = all_envelopes();
    my @e900 = grep { ($_->{event_id} // '') eq '900' } @env;
    is(scalar @e900, 1, 'one envelope for event 900');
    is($e900[0]{priority}, 'high', 'the first occurrence was kept (high)') if @e900;
    is_deeply($e900[0]{payload}, $ev[0], 'the kept envelope is the first element') if @e900;
    is($redis->llen('{webhook}:queue:low'), 0, 'the skipped repeat is not on the low list');
    is(scalar @env, 2, 'two envelopes in all');

    # a batch made only of repeats of one new id
    $res = post(batch(ev(950), ev(950), ev(950)));
    @ids = is_batch_answer($res, { status => 'queued', queued => 1, duplicates => 2 },
        'batch of three copies of a new event: queued 1, duplicates 2');
    like($ids[0] // '', qr/^[0-9a-f]{32}-0\z/, 'the queued id is element 0');
    is(scalar(grep { ($_->{event_id} // '') eq '950' } all_envelopes()), 1, 'one envelope for event 950');
};

subtest_fresh 'batch mixing new and already seen events' => sub {
    is_queued(post(json_encode(ev(910, 'high'))), 'high', 'event 910 alone');
    is_queued(post(json_encode(ev(911, 'low'))), 'low', 'event 911 alone');
    my %before = map { $_ => $redis->llen("{webhook}:queue:$_") } qw(high medium low);

    my $res = post(batch(ev(910, 'high'), ev(912, 'medium'), ev(911, 'low')));
    my @ids = is_batch_answer($res, { status => 'queued', queued => 1, duplicates => 2 },
        '1 new + 2 seen: queued 1, duplicates 2');
    is(scalar @ids, 1, 'one id');
    like($ids[0] // '', qr/^[0-9a-f]{32}-1\z/, 'the id of element 1');
    is($redis->llen('{webhook}:queue:high'), $before{high}, 'high list unchanged');
    is($redis->llen('{webhook}:queue:low'), $before{low}, 'low list unchanged');
    my @m = map { json_decode($_) } $redis->lrange('{webhook}:queue:medium');
    is(scalar @m, 1, 'one medium envelope');
    is($m[0]{id}, $ids[0], 'its id is the answered id') if @m;
    is($m[0]{event_id}, 912, 'it is event 912') if @m;
    ok($redis->cli('EXISTS', '{webhook}:seen:id::912') eq '1', 'event 912 now seen');
};

# ================================================================ senders

subtest_fresh 'named senders: own dedupe keys, the same event_id from two senders' => sub {
    my $body = json_encode(ev(4242, 'high'));
    my $res = post($body, path => '/named', Authorization => "Bearer $TOKEN_A");
    is_queued($res, 'high', 'odoo-a, event 4242: queued');
    $res = post($body, path => '/named', Authorization => "Bearer $TOKEN_B");
    is_queued($res, 'high', 'odoo-b, the same event 4242: queued (other sender)');
    $res = post($body, path => '/named', Authorization => "Bearer $TOKEN");
    is_queued($res, 'high', 'unnamed token, the same event 4242: queued');
    is_dup(post($body, path => '/named', Authorization => "Bearer $TOKEN_A"), 'odoo-a, event 4242 again');
    is_dup(post($body, path => '/named', Authorization => "Bearer $TOKEN"), 'unnamed token, event 4242 again');
    is_deeply([sort(seen_keys())],
        [sort '{named}:seen:id:odoo-a:4242', '{named}:seen:id:odoo-b:4242', '{named}:seen:id::4242'],
        'one seen key per sender');
    my @env = all_envelopes('{named}');
    is_deeply([reverse map { $_->{sender} } @env], ['odoo-a', 'odoo-b', undef],
        'envelopes in order: sender odoo-a, odoo-b, null');

    my $noid = json_encode(ev(undef));
    is_queued(post($noid, path => '/named', Authorization => "Bearer $TOKEN_A", 'Idempotency-Key' => 'k1'),
        'medium', 'odoo-a, Idempotency-Key k1: queued');
    is_queued(post($noid, path => '/named', Authorization => "Bearer $TOKEN_B", 'Idempotency-Key' => 'k1'),
        'medium', 'odoo-b, Idempotency-Key k1: queued (other sender)');
    is_dup(post($noid, path => '/named', Authorization => "Bearer $TOKEN_B", 'Idempotency-Key' => 'k1'),
        'odoo-b, Idempotency-Key k1 again');
    is_deeply([sort grep { /:seen:key:/ } seen_keys()], ['{named}:seen:key:odoo-a:k1', '{named}:seen:key:odoo-b:k1'],
        'one idempotency key per sender');
    is($redis->llen('{named}:queue:medium'), 2, 'two medium envelopes');
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[(alert|emerg|crit)\]|open socket/, 'no alert/emerg/crit/open socket in the error log')
    or diag join "\n", grep { /\[(alert|emerg|crit)\]|open socket/ } split /\n/, $ng->error_log;

done_testing;
