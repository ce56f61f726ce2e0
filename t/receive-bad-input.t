#!/usr/bin/perl
# Hostile and broken input, against a real nginx and redis-server: deep
# nesting, huge numbers, odd record_ids, strings that are not UTF-8, NUL bytes,
# duplicate keys, 1 MB strings, empty and short bodies, Transfer-Encoding
# tricks.  Each request gets a JSON 4xx and leaves nothing in Redis (but
# the bounded list of rejected bodies), or is queued intact (the envelope's
# payload is the exact text sent); no worker dies and error.log has no crit,
# alert or "exited on signal".  A field the module reads that has the wrong
# type is refused by webhook_schema event (/strict) and, under the default
# webhook_schema any, taken as absent (null) and named in the envelope's
# "warnings".
#
# What is promised where: the module answers in JSON whatever happens in a
# receive location, including nginx's own errors while the body is read
# (a broken chunked body: 400, too large: 413).  Errors nginx raises while
# it reads the request headers (Content-Length with Transfer-Encoding, an
# unknown or repeated Transfer-Encoding, obs-fold, HTTP/1.0 chunked) come
# before any location is chosen: the module's filter cannot see them, and
# nginx answers its own HTML page (400 or 501).  A server-level error_page
# to a location that answers JSON covers them: that is tested too.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::INET;
use Socket qw(SHUT_WR);
use Test::More;
use Time::HiRes qw(time);
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-bad-input-7c1e5a90d2';
my $AUTH = "Authorization: Bearer $TOKEN\r\n";
my $JSON_CT = "Content-Type: application/json\r\n";

my $redis = start_redis();

# the receive locations: $R takes 4 MB bodies in memory, /strict too with
# webhook_schema event, /small 1 MB, /slow waits 1 s for a body, /deep takes
# 1000 levels of nesting (webhook_json_max_depth); the second
# server answers its own errors in JSON with error_page
my $locations = receive_location(max_body => '4m',
        extra => 'client_body_buffer_size 4m;')
    . receive_location(path => '/strict', max_body => '4m', schema => 'event',
        extra => 'client_body_buffer_size 4m;')
    . receive_location(path => '/small', max_body => '1m')
    . receive_location(path => '/slow', extra => 'client_body_timeout 1s;')
    . receive_location(path => '/deep', max_body => '4m', extra => 'webhook_json_max_depth 1000;');

my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 5s;\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n    server_name localhost;\n"
        . $locations . "}\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n    server_name json-errors;\n"
        . "    error_page 400 501 \@json_error;\n"
        . "    location \@json_error {\n"
        . "        default_type application/json;\n"
        . "        return 200 '{\"status\":\"error\",\"error\":\"bad_request\","
        . "\"message\":\"nginx refused the request (\$status)\"}\\n';\n"
        . "    }\n"
        . $locations . "}\n",
);

my @WORKERS = $ng->workers;

# ---------------------------------------------------------------- helpers

sub post {
    my ($body, %o) = @_;
    return $ng->request('POST', $o{path} // $R,
        ['Content-Type' => 'application/json', Authorization => "Bearer $TOKEN",
         @{ $o{headers} || [] }],
        $body, timeout => 60);
}

sub event_text {
    my (%f) = @_;
    my $id = $f{event_id} // '"' . rand() . '"';
    return '{"event_id":' . $id . ',"model":' . ($f{model} // '"sale.order"')
        . ',"record_id":' . ($f{record_id} // 7) . ',"event":' . ($f{event} // '"write"')
        . ($f{extra} // '') . '}';
}

# the keys of events: not the list of rejected bodies nor a test's write
sub event_keys { grep { !/\A\{[^}]*\}:(?:rejected(?::.*)?|probe)\z/s } $redis->keys }

# refused($res, $status, $codes, $name): a JSON error, and no event in Redis
sub refused {
    my ($res, $status, $codes, $name) = @_;
    is_json_error($res, $status, $codes, "$name: $status JSON");
    my @k = event_keys();
    is_deeply(\@k, [], "$name: nothing in Redis") or diag "keys: @k";
    $redis->flushall;
}

# strict($body, $codes, $name): webhook_schema event refuses it with a 400
sub strict { refused(post($_[0], path => '/strict'), 400, $_[1], "$_[2], webhook_schema event") }

# queued($res, $priority, $payload, $name): 200 queued, and the one envelope
# in Redis ends with "payload": and exactly the text sent.  Returns the
# envelope (raw text and decoded), Redis emptied.
sub queued {
    my ($res, $priority, $payload, $name) = @_;
    is_queued($res, $priority, "$name: 200 queued") or do { $redis->flushall; return };
    my @e = $redis->take("{webhook}:queue:$priority");
    my @left = grep { !/:seen:/ } $redis->keys;
    $redis->flushall;
    is(scalar @e, 1, "$name: one envelope") or return;
    is(scalar @left, 0, "$name: and nothing else queued") or diag "keys: @left";
    my $tail = ',"payload":' . $payload . '}';
    ok(length $e[0]{raw} > length $tail && substr($e[0]{raw}, -length $tail) eq $tail,
        "$name: payload is the text sent, byte for byte")
        or diag 'envelope head: ' . substr($e[0]{raw}, 0, 300);
    return $e[0];
}

# warned($res, $priority, $payload, [fields], $name): queued (webhook_schema
# any) as queued() checks, the fields null in the envelope (a priority: the
# default one) and named in its "warnings"
sub warned {
    my ($res, $priority, $payload, $fields, $name) = @_;
    $name .= ', webhook_schema any';
    my $e = queued($res, $priority, $payload, $name) or return;
    is_deeply($e->{env}{warnings}, $fields, "$name: \"warnings\": [@$fields]");
    for my $f (grep { $_ ne 'priority' } @$fields) {
        ok(exists $e->{env}{$f} && !defined $e->{env}{$f}, "$name: envelope $f is null")
            or diag 'envelope head: ' . substr($e->{raw}, 0, 300);
    }
    return $e;
}

# send raw bytes, half-close, read what comes back until EOF
sub send_and_close {
    my ($bytes, $timeout) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
        Proto => 'tcp', Timeout => 5) or return { error => "connect: $!" };
    syswrite($s, $bytes);
    shutdown($s, SHUT_WR);
    my ($buf, $sel, $until) = ('', IO::Select->new($s), time + $timeout);
    while (time < $until && $sel->can_read($until - time)) {
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    my ($status) = $buf =~ m{^HTTP/1\.\d (\d{3})};
    my ($body) = $buf =~ /\r\n\r\n(.*)\z/s;
    return { raw => $buf, status => $status // 0, body => $body // '' };
}

sub head_lines { my ($host) = @_; "Host: " . ($host // 'localhost') . "\r\nConnection: close\r\n$JSON_CT$AUTH" }

# ---------------------------------------------------------------- nesting

subtest 'deep nesting' => sub {
    # every mainstream JSON reader takes 64 levels (.NET's default is the
    # shallowest), and an envelope is one level deeper than its event:
    # webhook_json_max_depth defaults to 63
    my $deep = qr/^the body nests deeper than 63 levels \(at byte \d+\)\z/;
    for my $c (['[' x 100_000, '100 000 ['], ['{"a":' x 100_000, '100 000 nested objects'],
               [('[' x 100_000) . (']' x 100_000), '100 000 [ closed again'],
               [event_text(extra => ',"data":' . ('[' x 100_000)), '100 000 [ inside an event'])
    {
        my $res = post($c->[0]);
        refused($res, 400, 'invalid_json', $c->[1]);
        like($res->{json}{message} // '', $deep, "$c->[1]: the message says the body nests too deep");
    }

    # 63 levels in all (the event is the first) are taken, 64 are not, and
    # the body refused is kept in the rejected list
    my $nest = ('[' x 61) . '1' . (']' x 61);
    my $text = event_text(extra => ',"data":{"x":' . $nest . '}');
    queued(post($text), 'medium', $text, '63 levels in all');
    $nest = ('{"a":' x 63) . '1' . ('}' x 63);
    $text = event_text(extra => ',"data":' . $nest);
    my $res = post($text);
    is_json_error($res, 400, 'invalid_json', '64 levels in all: 400');
    # the event is level 1, the 63 objects of "data" levels 2 to 64
    is($res->{json}{message}, 'the body nests deeper than 63 levels (at byte '
        . (index($text, '{"a":') + 62 * length('{"a":')) . ')',
        '64 levels: the message names the limit and the byte of the 64th level');
    my @rej = map { json_decode($_) } $redis->lrange('{webhook}:rejected');
    is(scalar @rej && $rej[0]{body}, $text, '64 levels: the body is kept in the rejected list');
    $redis->flushall;

    # a batch: its element's envelope is shallower than the batch
    my $batch = '{"batch":true,"events":[' . event_text(extra => ',"data":' . ('[' x 60) . (']' x 60)) . ']}';
    is_batch_answer(post($batch), { status => 'queued', queued => 1, duplicates => 0, nids => 1 },
        'a batch of 63 levels');
    $redis->flushall;
    refused(post('{"batch":true,"events":[' . event_text(extra => ',"data":' . ('[' x 61) . (']' x 61)) . ']}'),
        400, 'invalid_json', 'a batch of 64 levels');

    # webhook_json_max_depth 1000 (/deep): as deep as cJSON goes
    $nest = ('[' x 999) . '1' . (']' x 999);
    $text = event_text(extra => ',"data":' . $nest);
    queued(post($text, path => '/deep'), 'medium', $text, 'webhook_json_max_depth 1000: 1000 levels');
    $nest = ('{"a":' x 1000) . '1' . ('}' x 1000);
    $res = post(event_text(extra => ',"data":' . $nest), path => '/deep');
    refused($res, 400, 'invalid_json', 'webhook_json_max_depth 1000: 1001 levels');
    like($res->{json}{message} // '', qr/^the body nests deeper than 1000 levels/, '1001 levels: the message');
};

# ---------------------------------------------------------------- numbers

subtest 'huge numbers' => sub {
    my $digits = '9' x 400;
    for my $n ('1e400', '-1e400', $digits, "-$digits", "0.$digits", "1${digits}e-400") {
        my $short = length $n > 12 ? substr($n, 0, 8) . '...(' . length($n) . ')' : $n;
        strict(event_text(event_id => $n), 'invalid_payload', "event_id $short");
        strict(event_text(record_id => $n), 'invalid_payload', "record_id $short");
        my $t = event_text(event_id => $n);
        warned(post($t), 'medium', $t, ['event_id'], "event_id $short");
        $t = event_text(record_id => $n);
        warned(post($t), 'medium', $t, ['record_id'], "record_id $short");
        my $text = event_text(extra => ',"data":{"n":' . $n . ',"list":[' . $n . ']}');
        queued(post($text), 'medium', $text, "$short in the payload");
    }
};

subtest 'record_id: float, negative, beyond int64' => sub {
    for my $n ('1.5', '-0.5', '1e-3', '9007199254740993', '9007199254740992',
               '9223372036854775807', '9223372036854775808', '-9223372036854775809',
               '18446744073709551616', '"7"', 'true', 'null', '[7]', '{"id":7}')
    {
        strict(event_text(record_id => $n), 'invalid_payload', "record_id $n");
        next if $n eq 'null';
        my $t = event_text(record_id => $n);
        warned(post($t), 'medium', $t, ['record_id'], "record_id $n");
    }

    # under schema any, null is absent: no warning
    my $nt = event_text(record_id => 'null');
    my $ne = queued(post($nt), 'medium', $nt, 'record_id null, schema any');
    ok(!exists $ne->{env}{warnings}, 'record_id null, schema any: no warning') if $ne;

    # integral values in any notation are integers, written plainly
    for my $c (['-7', -7], ['-0', 0], ['2.0', 2], ['1e3', 1000], ['1E+2', 100],
               ['9007199254740991', 9007199254740991], ['-9007199254740991', -9007199254740991])
    {
        my $text = event_text(record_id => $c->[0]);
        my $e = queued(post($text), 'medium', $text, "record_id $c->[0]") or next;
        like($e->{raw}, qr/,"record_id":\Q$c->[1]\E,/, "record_id $c->[0] written as $c->[1]");
    }

    # the same for a numeric event_id, which is also the dedupe key
    my $text = event_text(event_id => '4.2e1');
    my $e = queued(post($text), 'medium', $text, 'event_id 4.2e1') or return;
    like($e->{raw}, qr/,"event_id":42,/, 'event_id 4.2e1 written as 42');
};

# ---------------------------------------------------------------- bytes

subtest 'strings must be UTF-8: anything else is refused, and kept as rejected' => sub {
    # what a consumer cannot decode never reaches Redis (RFC 3629: no
    # overlong form, no UTF-16 surrogate, nothing past U+10FFFF)
    for my $c (["\xff\xfe", 'ff fe'], ["\xc0\x80", 'overlong NUL'], ["\xe0\x80\xaf", 'overlong /'],
               ["\xed\xa0\x80", 'UTF-16 surrogate'], ["\xf4\x90\x80\x80", 'past U+10FFFF'],
               ["\xe2\x82", 'truncated sequence'], ["\x80", 'lone continuation byte'],
               ["\xf8\x88\x80\x80\x80", '5-byte form'], ["\xe9t\xe9", 'Latin-1'])
    {
        my ($bytes, $what) = @$c;
        for my $w (['data', event_text(extra => ',"data":{"name":"a' . $bytes . 'b"}')],
                   ['model', event_text(model => "\"sale.order$bytes\"")],
                   ['key', event_text(extra => ",\"k$bytes\":1")])
        {
            my ($where, $text) = @$w;
            my $at = index($text, $bytes);
            for my $path ($R, '/strict') {
                my $res = post($text, path => $path);
                is_json_error($res, 400, 'invalid_json', "$what in the $where ($path): 400");
                is($res->{json}{message}, "a string of the body is not valid UTF-8 (at byte $at)",
                    "$what in the $where ($path): the message names the byte");
                my @k = event_keys();
                is_deeply(\@k, [], "$what in the $where ($path): nothing queued") or diag "keys: @k";
                is($redis->llen('{webhook}:rejected'), 1, "$what in the $where ($path): kept as rejected");
                $redis->flushall;
            }
        }
    }

    # UTF-8, from the first character of each length to the last one
    my $utf8 = "\xc2\x80\xdf\xbf \xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf "
        . "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    my $text = event_text(model => "\"m$utf8\"", extra => ",\"k$utf8\":\"$utf8\"");
    my $e = queued(post($text), 'medium', $text, 'UTF-8 of every length') or return;
    like($e->{raw}, qr/"model":"m\Q$utf8\E"/, 'the model written as sent');
};

subtest 'white space between tokens is kept as sent' => sub {
    # a pretty-printed body: CR, LF and TAB between tokens reach the
    # payload and the rejected list byte for byte
    my $text = "{\r\n\t\"event_id\": \"ws-1\",\r\n\t\"model\":\t\"sale.order\",\n"
        . "\t\"record_id\": 7\t,\n\t\"event\": \"write\",\n\t\"data\": [\n\t\t1,\r\n\t\ttrue\n\t]\n}";
    my $e = queued(post("\n\t$text\r\n"), 'medium', $text, 'a pretty-printed event');
    is_deeply($e && [@{ $e->{env} }{qw(event_id model record_id event)}], ['ws-1', 'sale.order', 7, 'write'],
        'its fields are read across the line breaks');

    my $batch = "{\"batch\": true,\n \"events\": [\n\t{\"event_id\": \"ws-2\",\n\t \"model\": \"m\"}\n]}";
    is_batch_answer(post($batch), { status => 'queued', queued => 1, duplicates => 0, nids => 1 },
        'a pretty-printed batch');
    my @b = $redis->take('{webhook}:queue:medium');
    my $elt = "{\"event_id\": \"ws-2\",\n\t \"model\": \"m\"}";
    is(scalar @b && substr($b[0]{raw}, -length($elt) - 1), "$elt}", 'its element is kept as sent');
    $redis->flushall;

    my $bad = "{\n\t\"model\": \"m\",\r\n\t\"event\": \"write\"\n}";
    my $res = post($bad, path => '/strict');
    is_json_error($res, 400, 'invalid_payload', 'a pretty-printed body refused: 400');
    my ($entry) = $redis->lrange('{webhook}:rejected');
    is($entry && json_decode($entry)->{body}, $bad, 'the rejected list keeps it as sent');
    $redis->flushall;
};

subtest 'NUL bytes and other control characters' => sub {
    for my $c (["\0", 'NUL'], ["\x01", 'SOH'], ["\x1f", 'US'], ["\n", 'LF'], ["\r", 'CR'], ["\t", 'TAB']) {
        my ($b, $what) = @$c;
        refused(post(event_text(extra => ',"data":"a' . $b . 'b"')), 400, 'invalid_json',
            "raw $what in a payload string");
        refused(post(event_text(model => "\"m$b\"")), 400, 'invalid_json', "raw $what in the model");
        refused(post(event_text(extra => ',"k' . $b . '":1')), 400, 'invalid_json', "raw $what in a key");
    }
    refused(post(event_text() . "\0"), 400, 'invalid_json', 'raw NUL after the object');
    refused(post("\0" . event_text()), 400, 'invalid_json', 'raw NUL before the object');
    refused(post(event_text(extra => ",\0\"x\":1")), 400, 'invalid_json', 'raw NUL between members');

    # escaped, in the payload: fine, kept as written
    my $text = event_text(extra => ',"data":"a\u0000b\u001f\n","k\u0000":1');
    queued(post($text), 'medium', $text, '\u0000 in payload strings and keys');

    # in a field the module reads, it would cut the value short: refused,
    # or (webhook_schema any) taken as absent
    for my $c ([event_text(event_id => '"a\u0000b"'), 'invalid_payload', '\u0000 in event_id', 'medium', 'event_id'],
               [event_text(event_id => '"\u0000"'), 'invalid_payload', 'event_id "\u0000"', 'medium', 'event_id'],
               [event_text(model => '"sale.order\u0000x"'), 'invalid_payload', '\u0000 in model', 'medium', 'model'],
               [event_text(event => '"write\u0000x"'), 'invalid_payload', '\u0000 in event', 'medium', 'event'],
               [event_text(extra => ',"priority":"high\u0000x"'), 'invalid_priority', '\u0000 in priority',
                'medium', 'priority'],
               ['{"_webhook_metadata":{"event_id":"m\u0000","model":"m","record_id":1,"event_type":"create"}}',
                'invalid_payload', '\u0000 in _webhook_metadata.event_id', 'high', 'event_id'])
    {
        my ($t, $code, $what, $prio, $field) = @$c;
        strict($t, $code, $what);
        warned(post($t), $prio, $t, [$field], $what);
    }

    # a key "model\u0000" is not "model" (for any JSON reader it is not)
    $text = '{"event_id":"nul-key","model\u0000":"evil","model":"sale.order","record_id":1,'
        . '"event":"write","event\u0000x":"evil"}';
    my $e = queued(post($text), 'medium', $text, 'keys "model\u0000" and "event\u0000x"');
    is_deeply($e && [@{ $e->{env} }{qw(model event)}], ['sale.order', 'write'],
        'the envelope has the fields named exactly so');

    # two ids that differ after a \u0000 are two events, never a duplicate
    my $s = post(event_text(event_id => '"nul-a\u0000one"'));
    my $t = post(event_text(event_id => '"nul-a\u0000two"'));
    ok(!($s->{status} == 200 && $t->{status} == 200
         && ($t->{json}{status} // '') eq 'duplicate'),
        'ids differing after \u0000 are not taken for one another')
        or diag dump_res($t);
    $redis->flushall;

    # escapes decoded as any JSON reader does: model "sale.order"
    $text = event_text(model => '"sale\u002eorder"', event => '"\u0077rite"');
    $e = queued(post($text), 'medium', $text, 'escaped model and event') or return;
    is_deeply([@{ $e->{env} }{qw(model event)}], ['sale.order', 'write'],
        'the envelope holds them unescaped');
};

# ---------------------------------------------------------------- keys

subtest 'duplicate keys: the first one counts, everywhere' => sub {
    # the first priority decides the list, the answer and the envelope
    my $text = event_text(extra => ',"priority":"low","priority":"high"');
    my $e = queued(post($text), 'low', $text, 'two priorities') or return;
    is($e->{env}{priority}, 'low', 'envelope priority is the first');

    $text = event_text(extra => ',"pri\u006frity":"high","priority":"low"');
    $e = queued(post($text), 'high', $text, 'an escaped priority key first');

    $text = event_text(extra => ',"priority":"urgent","priority":"high"');
    strict($text, 'invalid_priority', 'first priority invalid');
    warned(post($text), 'medium', $text, ['priority'], 'first priority invalid, the second not taken');
    $text = event_text(extra => ',"priority":"high","priority":"urgent"');
    queued(post($text), 'high', $text, 'second priority invalid, ignored');

    # the first event_id is the dedupe key and the envelope's
    $text = '{"event_id":"dup-first","model":"m","record_id":1,"event":"w","event_id":"dup-second"}';
    is_queued(post($text), 'medium', 'two event_ids: queued');
    is_deeply([grep { /:seen:/ } $redis->keys], ['{webhook}:seen:id::dup-first'],
        'the seen key is the first id');
    is(post('{"event_id":"dup-first","model":"m","record_id":1,"event":"w"}')->{json}{status},
        'duplicate', 'the first id is a duplicate');
    is(post('{"event_id":"dup-second","model":"m","record_id":1,"event":"w"}')->{json}{status},
        'queued', 'the second id is not');
    my ($env) = map { $_->{env} } grep { $_->{raw} =~ /dup-first.*dup-second/ }
        $redis->take('{webhook}:queue:medium');
    is($env && $env->{event_id}, 'dup-first', 'envelope event_id is the first');
    $redis->flushall;

    # the first record_id and model
    $text = '{"event_id":"dk1","model":"first","record_id":1,"event":"w","model":7,"record_id":"x"}';
    $e = queued(post($text), 'medium', $text, 'two models and record_ids') or return;
    is_deeply([@{ $e->{env} }{qw(model record_id)}], ['first', 1], 'envelope has the first ones');
    $text = '{"model":7,"model":"m","record_id":1,"event":"w"}';
    strict($text, 'invalid_payload', 'first model invalid');
    warned(post($text), 'medium', $text, ['model'], 'first model invalid, the second not taken');

    # the first _webhook_metadata
    $text = '{"_webhook_metadata":{"event_id":"meta1","model":"a","record_id":1,"event_type":"create"},'
        . '"_webhook_metadata":{"event_id":"meta2","model":"b","record_id":2,"event_type":"unlink"}}';
    $e = queued(post($text), 'high', $text, 'two _webhook_metadata (webhook_instant_priority)') or return;
    is_deeply([@{ $e->{env} }{qw(event_id model event)}], ['meta1', 'a', 'create'],
        'envelope fields from the first');

    # batch: the first "batch" and the first "events"
    $text = '{"batch":false,"batch":true,"event_id":"notbatch","model":"m","record_id":1,"event":"w",'
        . '"events":[1]}';
    queued(post($text), 'medium', $text, '"batch": false first: one event');

    my @ev = map { event_text(event_id => "\"bk$_\"") } 1 .. 3;
    for my $c (['"events"', 'plain'], ['"ev\u0065nts"', 'escaped']) {
        my $body = '{"batch":true,' . $c->[0] . ':[' . $ev[0] . '],"events":[' . "$ev[1],$ev[2]]}";
        my @ids = is_batch_answer(post($body), { status => 'queued', queued => 1, duplicates => 0,
            nids => 1 }, "two events arrays, the first $c->[1]: one event queued");
        my @e = $redis->take('{webhook}:queue:medium');
        $redis->flushall;
        is(scalar @e, 1, "$c->[1]: one envelope");
        ok(@e && substr($e[0]{raw}, -length($ev[0]) - 1) eq "$ev[0]}",
            "$c->[1]: its payload is the first array's element");
    }
};

# ---------------------------------------------------------------- sizes

subtest '1 MB strings' => sub {
    my $mb = 'x' x (1 << 20);
    my $text = event_text(extra => ',"data":{"body":"' . $mb . '"}');
    queued(post($text), 'medium', $text, '1 MB payload string');

    $text = event_text(model => "\"$mb\"");
    my $e = queued(post($text), 'medium', $text, '1 MB model') or return;
    is(length($e->{env}{model} // ''), 1 << 20, 'envelope model is 1 MB');

    $text = event_text(event_id => "\"$mb\"");
    $e = queued(post($text), 'medium', $text, '1 MB event_id');

    # 1 MB of escapes: unescaped to 512 KB of quotes and backslashes
    my $esc = '\"\\\\' x (1 << 18);
    $text = event_text(event => "\"$esc\"");
    $e = queued(post($text), 'medium', $text, '1 MB of escapes in event') or return;
    is($e->{env}{event}, '"\\' x (1 << 18), 'event unescaped and escaped back');

    # \u escapes into 3-byte UTF-8: 1 MB of \u20ac
    $text = event_text(model => '"' . ('\u20ac' x 174_763) . '"');
    $e = queued(post($text), 'medium', $text, '1 MB of \u20ac in model');

    $text = '{"batch":true,"events":[' . join(',', map { event_text(event_id => "\"big$_\"",
        extra => ',"data":"' . ('y' x 300_000) . '"') } 1 .. 3) . ']}';
    is_batch_answer(post($text), { status => 'queued', queued => 3, duplicates => 0, nids => 3 },
        'batch of three 300 KB events');
    is($redis->llen('{webhook}:queue:medium'), 3, 'three envelopes');
    $redis->flushall;

    refused(post(event_text(extra => ',"data":"' . $mb . '"'), path => '/small'), 413, 'too_large',
        '1 MB string over client_max_body_size 1m');
    refused(post(('x' x 5_000_000)), 413, 'too_large', '5 MB over 4m');
};

# ---------------------------------------------------------------- bodies

subtest 'empty and short bodies' => sub {
    refused(post(''), 400, 'invalid_json', 'empty body (Content-Length: 0)');
    refused($ng->raw(pieces => ["POST $R HTTP/1.1\r\n" . head_lines() . "\r\n"]), 400, 'invalid_json',
        'no body, no Content-Length');
    refused(post('   '), 400, 'invalid_json', 'spaces only');
    refused(post("\r\n\t "), 400, 'invalid_json', 'white space only');
    strict('{}', 'invalid_payload', 'empty object');
    my $e = queued(post('{}'), 'medium', '{}', 'empty object, webhook_schema any');
    is_deeply($e && [@{ $e->{env} }{qw(event_id model record_id event sender)}, exists $e->{env}{warnings}],
        [undef, undef, undef, undef, undef, ''], 'empty object: every field null, no warnings');
    refused(post('[]'), 400, 'invalid_payload', 'empty array');
    refused(post('""'), 400, 'invalid_payload', 'empty string');
    refused(post("\xef\xbb\xbf" . event_text()), 400, 'invalid_json', 'a UTF-8 BOM first');
    refused(post(event_text() . ' {}'), 400, 'invalid_json', 'a second value');
    refused(post('{"batch":true,"events":[]}'), 400, 'invalid_payload', 'an empty batch');

    # fewer bytes than Content-Length, then the client closes: nothing
    # queued, no answer or a JSON one
    my $text = event_text();
    for my $cut (0, 1, int(length($text) / 2), length($text) - 1) {
        my $res = send_and_close("POST $R HTTP/1.1\r\n" . head_lines()
            . 'Content-Length: ' . length($text) . "\r\n\r\n" . substr($text, 0, $cut), 10);
        ok($res->{status} == 0 || ($res->{status} == 400 && json_decode($res->{body})),
            "$cut of " . length($text) . " bytes then close: no answer, or a JSON 400")
            or diag $res->{raw};
        my @k = event_keys();
        is_deeply(\@k, [], "$cut bytes then close: nothing in Redis");
    }

    # fewer bytes, then waiting: client_body_timeout (1 s), 408 or close
    my $t0 = time;
    my $res = $ng->raw(path => '/slow', timeout => 15, pieces => ["POST /slow HTTP/1.1\r\n"
        . head_lines() . 'Content-Length: ' . length($text) . "\r\n\r\n" . substr($text, 0, 10)]);
    my $took = time - $t0;
    ok($res->{status} == 0 || ($res->{status} == 408 && ref $res->{json} eq 'HASH'),
        sprintf('half a body then silence: no answer or a JSON 408 (after %.1f s)', $took))
        or diag dump_res($res);
    cmp_ok($took, '<', 10, 'the connection does not hang');
    my @k = event_keys();
    is_deeply(\@k, [], 'half a body then silence: nothing in Redis');
};

# ---------------------------------------------------------------- HTTP framing

# raw_post($host, $headers, $body, $path): a POST with exactly these
# header lines
sub raw_post {
    my ($host, $headers, $body, $path) = @_;
    return $ng->raw(timeout => 15, pieces => ["POST " . ($path // $R) . " HTTP/1.1\r\n"
        . head_lines($host) . $headers . "\r\n" . $body]);
}

sub chunk { sprintf("%x\r\n%s\r\n", length $_[0], $_[0]) }

subtest 'Transfer-Encoding and Content-Length tricks' => sub {
    my $text = event_text();
    my $len = length $text;
    my $chunked = chunk(substr($text, 0, 10)) . chunk(substr($text, 10)) . "0\r\n\r\n";

    # in the body: the module's answer, JSON
    queued(raw_post(undef, "Transfer-Encoding: chunked\r\n", $chunked), 'medium', $text,
        'chunked');
    queued(raw_post(undef, "Transfer-Encoding: Chunked\r\n", $chunked), 'medium', $text,
        'chunked, mixed case');
    queued(raw_post(undef, "Transfer-Encoding: chunked\r\n",
        sprintf("%x;name=value;flag\r\n%s\r\n0;last=1\r\nX-Trailer: t\r\n\r\n", $len, $text)),
        'medium', $text, 'chunk extensions and a trailer');
    queued(raw_post(undef, "Transfer-Encoding: chunked\r\n",
        sprintf("%x 1\r\n%s\r\n0\r\n\r\n", $len, $text)), 'medium', $text,
        'a second number after the size (nginx reads it as an extension)');
    queued(raw_post(undef, "Transfer-Encoding: chunked\r\n",
        sprintf("%08X\r\n%s\r\n0\r\n\r\n", $len, $text)), 'medium', $text, 'zero-padded chunk size');
    for my $c (["zz\r\n$text\r\n0\r\n\r\n", 'chunk size not hex'],
               [sprintf("-%x\r\n%s\r\n0\r\n\r\n", $len, $text), 'negative chunk size'],
               ["ffffffffffffffffffff\r\n$text\r\n0\r\n\r\n", 'chunk size past 64 bits'],
               [sprintf("%x\r\n%s\r\n0\r\n\r\n", $len - 5, $text), 'chunk shorter than its data'],
               [sprintf("%x\r\n%sXX0\r\n\r\n", $len, $text), 'no CRLF after the data'],
               [sprintf("1%s\r\n%s\r\n0\r\n\r\n", ' ' x 5, $text), 'size then spaces, short data'])
    {
        refused(raw_post(undef, "Transfer-Encoding: chunked\r\n", $c->[0]), 400,
            'bad_request', $c->[1]);
    }
    refused(raw_post(undef, "Transfer-Encoding: chunked\r\n",
        chunk(substr($text, 0, 10)) . chunk('x' x 2_000_000) . "0\r\n\r\n", '/small'), 413,
        'too_large', 'chunks past client_max_body_size');

    # in the headers: nginx answers before any location, HTML unless the
    # server has an error_page; never queued
    my @framing = (
        ["Content-Length: $len\r\nTransfer-Encoding: chunked\r\n", $chunked, 400,
         'Transfer-Encoding and Content-Length'],
        ["Transfer-Encoding: chunked\r\nContent-Length: $len\r\n", $chunked, 400,
         'Content-Length after Transfer-Encoding'],
        ["Transfer-Encoding: gzip, chunked\r\n", $chunked, 501, 'Transfer-Encoding: gzip, chunked'],
        ["Transfer-Encoding: chunked, chunked\r\n", $chunked, 501, 'Transfer-Encoding: chunked, chunked'],
        ["Transfer-Encoding: identity\r\nContent-Length: $len\r\n", $text, 501,
         'Transfer-Encoding: identity'],
        ["Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", $chunked, 400,
         'Transfer-Encoding twice'],
        ["Transfer-Encoding:\r\n chunked\r\n", $chunked, 400, 'obs-fold of Transfer-Encoding'],
        ["X-Note: a\r\n  folded\r\nContent-Length: $len\r\n", $text, 400, 'obs-fold of another header'],
        ["Content-Length: $len\r\nContent-Length: $len\r\n", $text, 400, 'Content-Length twice'],
        ["Content-Length: -1\r\n", $text, 400, 'negative Content-Length'],
        ["Content-Length: 0x20\r\n", $text, 400, 'hex Content-Length'],
        ["Content-Length: 99999999999999999999999\r\n", $text, 400, 'Content-Length past 64 bits'],
    );
    for my $f (@framing) {
        my ($h, $body, $status, $name) = @$f;
        my $res = raw_post(undef, $h, $body);
        is($res->{status}, $status, "$name: $status from nginx");
        my @k = event_keys();
        is_deeply(\@k, [], "$name: nothing in Redis");
        $res = raw_post('json-errors', $h, $body);
        is_json_error($res, $status, 'bad_request', "$name: JSON with a server error_page");
        @k = event_keys();
        is_deeply(\@k, [], "$name (error_page): nothing in Redis");
        $redis->flushall;
    }

    my $res = $ng->raw(timeout => 15, pieces => ["POST $R HTTP/1.0\r\n" . head_lines()
        . "Transfer-Encoding: chunked\r\n\r\n$chunked"]);
    is($res->{status}, 400, 'HTTP/1.0 with Transfer-Encoding: 400 from nginx');
    my @k = event_keys();
    is_deeply(\@k, [], 'HTTP/1.0 chunked: nothing in Redis');

    # smuggling: what follows a complete body on a keep-alive connection
    # is a request of its own, refused without a token
    my $smuggled = "POST $R HTTP/1.1\r\nHost: localhost\r\n$JSON_CT"
        . "Content-Length: $len\r\n\r\n$text";
    $res = $ng->raw(timeout => 15, drain => 2, pieces => ["POST $R HTTP/1.1\r\nHost: localhost\r\n"
        . "$JSON_CT${AUTH}Content-Length: $len\r\n\r\n$text$smuggled"]);
    is_queued($res, 'medium', 'keep-alive: the first request is queued');
    like($res->{after} // '', qr{^HTTP/1\.1 401 }, 'the bytes after it are a request of their own: 401');
    is($redis->llen('{webhook}:queue:medium'), 1, 'one envelope only');
    $redis->flushall;
};

# ---------------------------------------------------------------- batches

subtest 'bad input inside a batch: all or nothing (webhook_schema event), warnings (any)' => sub {
    my $good = event_text(event_id => '"b-good"');
    for my $c ([event_text(record_id => '1.5'), 'invalid_payload', 'a float record_id', 'record_id'],
               [event_text(record_id => '1e400'), 'invalid_payload', 'record_id 1e400', 'record_id'],
               [event_text(event_id => '"x\u0000y"'), 'invalid_payload', 'a \u0000 in an event_id', 'event_id'],
               [event_text(extra => ',"priority":"urgent"'), 'invalid_priority', 'a bad priority', 'priority'])
    {
        my ($el, $code, $what, $field) = @$c;
        my $body = '{"batch":true,"events":[' . "$good,$good,$el" . ']}';
        strict($body, $code, "batch with $what last");
        my @ids = is_batch_answer(post($body), { status => 'queued', queued => 2, duplicates => 1, nids => 2 },
            "batch with $what last, webhook_schema any: the good event once, and the last");
        my @e = $redis->take('{webhook}:queue:medium');
        $redis->flushall;
        is_deeply([map { $_->{env}{warnings} } @e], [undef, [$field]],
            "batch with $what last: its envelope alone has \"warnings\": [\"$field\"]");
        ok(@e == 2 && substr($e[1]{raw}, -length($el) - 1) eq "$el}", "batch with $what last: payload intact");
    }
    for my $c (['"not an object"', 'a string element'], ['null', 'a null element']) {
        refused(post('{"batch":true,"events":[' . "$good,$good,$c->[0]" . ']}'), 400, 'invalid_payload',
            "batch with $c->[1] last");
    }
    refused(post('{"batch":true,"events":[' . $good . ',' . ('[' x 100_000) . ']}'), 400,
        'invalid_json', 'batch with 100 000 [');
    refused(post('{"batch":true,"events":{"0":' . $good . '}}'), 400, 'invalid_payload',
        'events an object');
    refused(post('{"batch":true,"events":[' . join(',', ($good) x 10001) . ']}'), 413,
        'too_large', '10001 events (webhook_batch_max 10000)');
};

# ---------------------------------------------------------------- the end

is_deeply([sort { $a <=> $b } $ng->workers], [sort { $a <=> $b } @WORKERS],
    'the worker is the one that started (none died)');
my $after = post(event_text(event_id => '"after-all"'));
is_queued($after, 'medium', 'still serving');
ok($ng->stop(timeout => 60), 'nginx stops gracefully');    # valgrind takes its time
my @bad = grep { /\[(crit|alert|emerg)\]|exited on signal|open socket/ } split /\n/, $ng->error_log;
is_deeply(\@bad, [], 'error.log: no crit, alert, emerg, "exited on signal" or open socket');

done_testing;
