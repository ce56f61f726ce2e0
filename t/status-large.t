#!/usr/bin/perl
# The status answer at the limits, where its size depends most on what it
# escapes: 64 queues (the most a configuration has) with 128-byte names
# (the longest) made of characters that escape (quotes, backslashes, tabs,
# newlines) and of non-ASCII ones, each with 32 reconcilers (the most the
# status shows) whose names escape too and whose errors reach the 256
# bytes the status keeps, control characters included.  The JSON answer is
# complete (its Content-Length), valid, and holds every name
# and error as written; the Prometheus text has every series with its
# labels as written, and `promtool check metrics` accepts it; the same with
# Redis down (nulls, no depth series); no alert in the error log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp ();
use WebhookTest;

require_module();

my $TOKEN = 'tok-status-large-5b2f07';
my $NQ = 64;
my $NREC = 32;
my @PRIOS = qw(high medium low);
my $NRESULTS = 14;

# a plain Redis even under WEBHOOK_TEST_CLUSTER: the names have no hash tag
my $redis = start_redis(bind => '127.0.0.1');

# $prefix, then $unit again and again, then "x": exactly $bytes bytes of
# UTF-8 (a character string; no character cut)
sub fill {
    my ($prefix, $unit, $bytes) = @_;
    my $s = $prefix;
    my $len = sub { my $b = $_[0]; utf8::encode($b); length $b };
    $s .= $unit while $len->($s . $unit) <= $bytes;
    $s .= 'x' while $len->($s) < $bytes;
    return $s;
}

sub bytes { my $b = $_[0]; utf8::encode($b); return $b }

my @queues = map { fill(sprintf('q%02d ', $_), "\"\\\t\n\x{e9}", 128) } 0 .. $NQ - 1;
my @recs = map { fill(sprintf('r%02d ', $_), "\"\\\n\x{fc}", 128) } 0 .. $NREC - 1;

# an error past the 256 bytes kept: 42 units of 6 bytes, "abcd", then more
my $error = ("\x01\"\\\x{e9}\n" x 42) . 'abcd';
is(length(bytes($error)), 256, 'the error kept is 256 bytes');

# nginx.conf: a quoted string takes \" \\ \t \n
sub conf_string {
    my $s = bytes($_[0]);
    $s =~ s/([\\"])/\\$1/g;
    $s =~ s/\t/\\t/g;
    $s =~ s/\n/\\n/g;
    return "\"$s\"";
}

my $locations = '';
for my $i (0 .. $NQ - 1) {
    $locations .= "        location = /r$i {\n"
        . "            webhook_receive;\n"
        . "            webhook_token_file %%PREFIX%%/webhook.tokens;\n"
        . "            webhook_queue " . conf_string($queues[$i]) . ";\n"
        . "        }\n";
}

my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_connect_timeout 1s;\n"
        . "webhook_redis_timeout 5s;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . $locations
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
);

# the Redis clock, in ms
my ($sec, $usec) = @{ $redis->call('TIME') };
my $now = $sec * 1000 + int($usec / 1000);

for my $i (0 .. $NQ - 1) {
    my $q = bytes($queues[$i]);
    my $res = $ng->request('POST', "/r$i",
        { 'Content-Type' => 'application/json', Authorization => "Bearer $TOKEN",
          'X-Webhook-Priority' => $PRIOS[$i % 3] },
        '{"_id":' . ($i + 1) . ',"_model":"res.partner","_action":"on_create"}');
    is($res->{status}, 200, "an event into queue $i") or diag dump_res($res);
    $redis->call('HSET', "$q:reconcilers", map {
        (bytes($recs[$_]), json_encode({ since => $now - 60000, pass => $now - 1000,
            ok => $now - 2000, replayed => 1000 + $_, waiting => $_, failing => $_ % 2,
            error => "$error and more, cut", error_at => $now - 3000 }))
    } 0 .. $NREC - 1);
}

# GET: 200, the whole body, a Content-Length that says so
sub answer {
    my ($query, $name) = @_;
    my $res = $ng->request('GET', "/status$query", {}, undef, timeout => 30);
    is($res->{status}, 200, "$name: 200") or diag dump_res($res);
    my $body = $res->{body} // '';
    is($res->{headers}{'content-length'}, length $body, "$name: Content-Length is the body's length");
    return $body;
}

# the series of a Prometheus text: name => [ [labels...], value ], label
# values unescaped, as characters
sub series {
    my ($body) = @_;
    my %s;
    utf8::decode($body);
    for my $line (split /\n/, $body) {
        next if $line =~ /^#/;
        $line =~ /^(\w+)(?:\{(.*)\})? (\S+)\z/ or do { push @{ $s{'<bad>'} }, $line; next };
        my ($name, $labels, $value) = ($1, $2 // '', $3);
        my %l;
        while ($labels =~ /\G(\w+)="((?:[^"\\]|\\.)*)",?/gc) {
            my ($k, $v) = ($1, $2);
            $v =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
            $l{$k} = $v;
        }
        push @{ $s{'<bad>'} }, $line if (pos($labels) // 0) != length $labels;
        push @{ $s{$name} }, [\%l, $value];
    }
    return \%s;
}

subtest 'JSON: 64 queues of 128 bytes, 32 reconcilers each' => sub {
    my $body = answer('', 'JSON');
    like($body, qr/\}\n\z/, 'the answer ends with "}" and a newline');
    my $j = json_decode($body);
    ok(ref $j eq 'HASH', 'the answer is valid JSON') or return;
    ok($j->{redis}{up}, 'Redis up');
    is_deeply([sort keys %{ $j->{queues} }], [sort @queues], 'the 64 queue names, as configured');
    my ($events, $recs, $errors) = (0, 0, 0);
    for my $i (0 .. $NQ - 1) {
        my $q = $j->{queues}{ $queues[$i] } or next;
        $events += $q->{ $PRIOS[$i % 3] }{depth} == 1 && $q->{requests}{queued} == 1;
        my $r = $q->{reconcilers} || {};
        $recs += scalar(keys %$r) == $NREC && !grep { !exists $r->{$_} } @recs;
        $errors += !grep { ($r->{$_}{error} // '') ne $error } @recs;
    }
    is($events, $NQ, 'each queue: its event, depth 1, queued 1');
    is($recs, $NQ, 'each queue: its 32 reconcilers, names as written');
    is($errors, $NQ, 'each reconciler: its error, the 256 bytes kept');
    is($j->{queues}{ $queues[5] }{reconcilers}{ $recs[7] }{replayed}, 1007, 'a reconciler\'s values');
};


subtest 'Prometheus: every series, labels as written, promtool' => sub {
    my $body = answer('?format=prometheus', 'Prometheus');
    my $s = series($body);
    is_deeply($s->{'<bad>'}, undef, 'every line is a series or a comment');
    my %count = (
        nginx_webhook_queue_depth => 3, nginx_webhook_dead_letter_depth => 3,
        nginx_webhook_rejected_depth => 1, nginx_webhook_oldest_event_age_seconds => 3,
        nginx_webhook_in_flight_events => 1, nginx_webhook_replays_total => $NRESULTS,
        nginx_webhook_reconciler_waiting => $NREC, nginx_webhook_reconciler_failing => $NREC,
        nginx_webhook_warnings_total => 1, nginx_webhook_requests_total => $NRESULTS,
        nginx_webhook_events_total => 3,
    );
    for my $family (sort keys %count) {
        my %queues = map { ($_->[0]{queue} => 1) } @{ $s->{$family} || [] };
        is(scalar @{ $s->{$family} || [] }, $count{$family} * $NQ, "$family: $count{$family} series a queue");
        is_deeply([sort keys %queues], [sort @queues], "$family: the 64 queue labels, as configured");
    }
    my %rec = map { ($_->[0]{reconciler} => 1) } @{ $s->{nginx_webhook_reconciler_waiting} };
    is_deeply([sort keys %rec], [sort @recs], 'the reconciler labels, as written');
    my ($waiting) = grep { $_->[0]{queue} eq $queues[9] && $_->[0]{reconciler} eq $recs[3] }
        @{ $s->{nginx_webhook_reconciler_waiting} };
    is($waiting && $waiting->[1], 3, 'a reconciler\'s series');
    promtool_ok($body, '64 queues');
};

subtest 'Redis down: nulls, no depth series' => sub {
    $redis->stop;
    my $j = json_decode(answer('', 'JSON, Redis down'));
    ok(ref $j eq 'HASH' && !$j->{redis}{up}, 'valid JSON, Redis not up') or return;
    is(scalar(grep { !defined $_->{reconcilers} && !defined $_->{high}{depth} } values %{ $j->{queues} }),
        $NQ, 'every queue: depths and reconcilers null');
    my $body = answer('?format=prometheus', 'Prometheus, Redis down');
    my $s = series($body);
    ok(!$s->{nginx_webhook_queue_depth} && !$s->{nginx_webhook_reconciler_waiting}, 'no depth nor reconciler series');
    is(scalar @{ $s->{nginx_webhook_requests_total} || [] }, $NRESULTS * $NQ, 'the counters\' series');
    promtool_ok($body, 'Redis down');
    $redis->start;
};

my @bad = grep { /\[(alert|emerg|crit)\]|exited on signal/ } split /\n/, $ng->error_log;
is_deeply(\@bad, [], 'no alert, crit, emerg nor crashed worker in the error log');
ok($ng->stop, 'nginx stops');

done_testing;
