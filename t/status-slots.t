#!/usr/bin/perl
# The counter slots of the status zone across reloads: a reload that brings
# new queue names always takes effect, however many names were used before
# (slots of queues no configuration in use has any more are reused); a kept
# queue keeps its counters, a new one starts at 0; when even that leaves no
# room (after a failed reload), the reload still succeeds and only the new
# queue goes without counters.  nginx -t refuses more than 64 queues in one
# configuration.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use WebhookTest;

require_module();

my $TOKEN = 'tok-slots-5d2c8e1f';
my $MAX = 64;
my @PRIOS = qw(high medium low);

my $redis = start_redis();

# $n receive locations /qI on queues "{PREFIX-I}", plus /keep on {keep}
sub locations {
    my ($prefix, $n) = @_;
    return join '', map {
        "        location = /q$_ { webhook_receive; webhook_queue \"{$prefix-$_}\";\n"
        . "            webhook_token_file %%PREFIX%%/webhook.tokens; }\n"
    } 1 .. $n;
}

sub http_conf {
    my ($prefix, $n, %o) = @_;
    my $listen = $o{listen} // '';
    return 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n$listen"
        . "        server_name localhost;\n"
        . "        location = /keep { webhook_receive; webhook_queue \"{keep}\";\n"
        . "            webhook_token_file %%PREFIX%%/webhook.tokens; }\n"
        . locations($prefix, $n)
        . "        location = /status { webhook_status; }\n"
        . "    }\n";
}

sub names { my ($prefix, $n) = @_; return ('{keep}', map { "{$prefix-$_}" } 1 .. $n) }

sub post {
    my ($ng, $path, $id) = @_;
    return $ng->request('POST', $path,
        { 'Content-Type' => 'application/json', Authorization => "Bearer $TOKEN" },
        json_encode({ event_id => "e$id", model => 'sale.order', record_id => 7,
                      event => 'write', priority => 'high' }));
}

sub status {
    my ($ng) = @_;
    my $res = $ng->request('GET', '/status', {}, undef);
    return ref $res->{json} eq 'HASH' ? $res->{json} : {};
}

sub prom {
    my ($ng) = @_;
    return $ng->request('GET', '/status?format=prometheus', {}, undef)->{body} // '';
}

sub zero_counters {
    my ($q) = @_;
    return 0 unless ref $q eq 'HASH' && ref $q->{requests} eq 'HASH';
    return 0 if grep { $_ != 0 } values %{ $q->{requests} };
    return 0 if grep { ($q->{$_}{events} // -1) != 0 } @PRIOS;
    return 1;
}

# ---------------------------------------------------------------- nginx -t

subtest 'nginx -t: at most 64 queues in one configuration' => sub {
    my ($rc, $out) = nginx_t(http_conf('t', $MAX - 1), files => { 'webhook.tokens' => "$TOKEN\n" });
    is($rc, 0, '64 queues ({keep} and 63 more): accepted') or diag $out;

    ($rc, $out) = nginx_t(http_conf('t', $MAX), files => { 'webhook.tokens' => "$TOKEN\n" });
    isnt($rc, 0, '65 queues: refused');
    like($out, qr/\[emerg\].*"webhook_queue".*more than 64 queues/, 'the message says why')
        or diag $out;
    unlike($out, qr/test is successful/, 'no claim of success');
};

# ---------------------------------------------------------------- reloads

my $ng = start_nginx(
    workers => 2,
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => http_conf('r0', 40),
);

my $kept = 0;
for my $i (1 .. 3) {
    is(post($ng, '/keep', "k$i")->{status}, 200, "an event on {keep} ($i)");
    $kept++;
}
is(post($ng, '/q1', 'r0')->{status}, 200, 'an event on {r0-1}');

# 3 rounds of 40 new names: 121 names in all, 81 in two configurations in a row
for my $round (1 .. 3) {
    subtest "reload $round: 40 queues renamed" => sub {
        my $prefix = "r$round";
        $ng->set(http => http_conf($prefix, 40));
        ok($ng->reload(wait_old => 1, timeout => 10), 'the reload takes effect: new workers, old ones gone')
            or diag join "\n", grep { /emerg|webhook:/ } split /\n/, $ng->error_log;

        my $j = status($ng);
        is_deeply([sort keys %{ $j->{queues} || {} }], [sort(names($prefix, 40))],
            'the status lists the queues of the new configuration');
        is($j->{queues}{'{keep}'}{requests}{queued}, $kept, '{keep} keeps its counters');
        is($j->{queues}{'{keep}'}{high}{events}, $kept, '{keep} keeps its event counters');
        my @nonzero = grep { !zero_counters($j->{queues}{$_}) } map { "{$prefix-$_}" } 1 .. 40;
        is_deeply(\@nonzero, [], 'every new queue starts at 0');

        my $res = post($ng, '/q1', "$prefix-1");
        is_queued($res, 'high', "the new location /q1 queues on {$prefix-1}");
        is($redis->llen("{$prefix-1}:queue:high"), 1, "the event is in {$prefix-1}:queue:high");
        $res = post($ng, '/keep', "k-$round");
        is_queued($res, 'high', '/keep still queues');
        $kept++;

        $j = status($ng);
        is($j->{queues}{"{$prefix-1}"}{requests}{queued}, 1, "{$prefix-1} counts its own event");
        is($j->{queues}{'{keep}'}{requests}{queued}, $kept, '{keep} counts on');
        is($j->{requests}{queued}, $kept + 1, 'the top level sums the queues in use');
    };
}

unlike($ng->error_log, qr/no room|\[emerg\]/, 'no "no room" line nor [emerg] in the error log');

# ---------------------------------------------------------------- no room

# Fill the zone: the running configuration has 64 queues, and a reload that
# fails after the zone was set up (its listen port is taken) has stamped 64
# more.  The next configuration's new queues then find no slot: the reload
# still succeeds, and they go without counters.

subtest 'no room left: the reload succeeds, the new queues go without counters' => sub {
    $ng->set(http => http_conf('f0', $MAX - 1));
    ok($ng->reload(wait_old => 1, timeout => 10), '64 queues: the reload takes effect');
    is(post($ng, '/keep', 'k-f0')->{status}, 200, 'an event on {keep}');
    $kept++;

    my $taken = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', ReuseAddr => 0) or die "listen: $!";
    my $port = $taken->sockport;
    my %old = map { $_ => 1 } $ng->workers;
    $ng->set(http => http_conf('f1', $MAX - 1, listen => "        listen 127.0.0.1:$port;\n"));
    kill 'HUP', $ng->pid;
    ok(wait_until(sub { $ng->error_log =~ /still could not bind/ }, timeout => 15),
        'a reload onto a taken port fails');
    sleep 0.3;
    is_deeply([sort $ng->workers], [sort keys %old], 'the same workers keep running');
    is(post($ng, '/keep', 'k-f1')->{status}, 200, 'the running configuration still queues');
    $kept++;
    close $taken;

    $ng->set(http => http_conf('f2', $MAX - 1));
    ok($ng->reload(wait_old => 1, timeout => 10), 'the next reload takes effect all the same')
        or diag join "\n", grep { /emerg|webhook:/ } split /\n/, $ng->error_log;
    # 127 slots are those of {keep}, {f0-*} and {f1-*}: {f2-1} has the last
    # one (the new queues take the free slots in the configuration's order)
    my $L = $MAX - 1;
    my @lines = grep { /no room/ } split /\n/, $ng->error_log;
    is(scalar @lines, $L - 1, "an error line for each queue without counters ({f2-2} .. {f2-$L})");
    like($lines[-1] // '', qr/\[error\].*webhook: no room for the counters of queue "\{f2-$L\}"/,
        'an error-level line names the queue');

    my $j = status($ng);
    is_deeply([sort keys %{ $j->{queues} || {} }], [sort(names('f2', $L))],
        'the status lists the queues of the new configuration');
    is($j->{queues}{'{keep}'}{requests}{queued}, $kept, '{keep} keeps its counters');
    ok(zero_counters($j->{queues}{'{f2-1}'}), '{f2-1} has counters, at 0');
    ok(exists $j->{queues}{"{f2-$L}"}{requests} && !defined $j->{queues}{"{f2-$L}"}{requests},
        "{f2-$L}: requests are null");
    is_deeply([map { exists $j->{queues}{"{f2-$L}"}{$_}{events} ? $j->{queues}{"{f2-$L}"}{$_}{events} // 'null' : 'none' } @PRIOS],
        [qw(null null null)], "{f2-$L}: events are null");
    is($j->{queues}{"{f2-$L}"}{high}{depth}, 0, "{f2-$L}: its depth is still read");

    my $res = post($ng, "/q$L", "f2-$L");
    is_queued($res, 'high', 'a queue without counters still queues');
    is($redis->llen("{f2-$L}:queue:high"), 1, "the event is in {f2-$L}:queue:high");
    $res = post($ng, '/q1', 'f2-1');
    is_queued($res, 'high', '{f2-1} queues');
    $j = status($ng);
    is($j->{queues}{'{f2-1}'}{requests}{queued}, 1, '{f2-1} counts its event');
    is($j->{requests}{queued}, $kept + 1, 'the top level sums the queues that have counters');
    my $p = prom($ng);
    unlike($p, qr/nginx_webhook_(requests|events)_total\{[^}]*queue="\{f2-$L\}"/,
        "Prometheus: no counter series for {f2-$L}");
    like($p, qr/nginx_webhook_queue_depth\{[^}]*queue="\{f2-$L\}"/, 'Prometheus: its depth is there');
    like($p, qr/nginx_webhook_requests_total\{[^}]*queue="\{f2-1\}"/, 'Prometheus: {f2-1} has its counters');

    # the slots of the configuration before the failed reload are free again
    $ng->set(http => http_conf('f3', $MAX - 1));
    my $log0 = length $ng->error_log;
    ok($ng->reload(wait_old => 1, timeout => 10), 'one more reload');
    unlike(substr($ng->error_log, $log0), qr/no room/, 'now every queue has its counters');
    $j = status($ng);
    my @nonzero = grep { !zero_counters($j->{queues}{$_}) } map { "{f3-$_}" } 1 .. $L;
    is_deeply(\@nonzero, [], 'every new queue starts at 0');
    is($j->{queues}{'{keep}'}{requests}{queued}, $kept, '{keep} keeps its counters');
};

ok($ng->stop(timeout => 20), 'nginx exits on QUIT');
unlike($ng->error_log, qr/\[alert\]|\[crit\]/, 'no [alert] nor [crit] in the error log');

done_testing;
