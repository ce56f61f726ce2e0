#!/usr/bin/perl
# webhook_redis_sentinel with webhook_redis_wait 1: one primary, one
# replica, three sentinels on loopback ports.  Forked clients send events
# with unique event_ids; the primary gets SIGKILL; the sentinels promote
# the replica; the old primary starts again and the sentinels make it a
# replica of the new one (until then WAIT 1 cannot hold: 503).  Then:
# every event answered 200 is in the new primary (0 lost), no request
# waited past the timeout, the module writes to the new primary and answers
# 200 again without a reload.  The same for SENTINEL FAILOVER (planned).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;
use WebhookSentinel;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-sentinel-0b3f6e';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TIMEOUT = 2;                               # webhook_redis_timeout
my $MARGIN = slow_nginx() ? 8 : 1;
my $CLIENTS = slow_nginx() ? 4 : 10;
my $NAME = 'webhooks';

# ------------------------------------------------------------ the cluster
my @sentinels;

# down after 2 s, not 1: on a loaded 2-CPU machine a sentinel's first PING
# to a just-promoted primary once went unanswered for 1.08 s, the
# sentinels failed over again to the restarted old primary (empty: no
# persistence here), and the new one resynced from it, emptied
sub start_one {
    my ($primary_port) = @_;
    push @sentinels, start_sentinel(primary => $primary_port, name => $NAME, quorum => 2,
        conf => ["sentinel down-after-milliseconds $NAME 2000",
                 "sentinel failover-timeout $NAME 5000",
                 "sentinel parallel-syncs $NAME 1"]);
}

sub master_port {
    my $out = sentinel_cli($sentinels[0], 'SENTINEL', 'get-master-addr-by-name', $NAME) // '';
    my (undef, $port) = split /\n/, $out;
    return $port // 0;
}


my %redis;
# no delay before a full sync (5 s by default, for more replicas to come)
my @fast = ('--repl-diskless-sync-delay', 0);
my $a = start_redis(extra => [@fast]);
my $b = start_redis(extra => [@fast, '--replicaof', '127.0.0.1', $a->port]);
%redis = ($a->port => $a, $b->port => $b);
# the replicas in sync (a replica still waiting for its full sync acknowledges nothing)
sub replicas_of { my ($r) = @_; scalar(() = ($r->cli('INFO', 'replication') // '') =~ /^slave\d+:.*state=online/mg) }
ok(wait_until(sub { replicas_of($a) >= 1 }, timeout => 15), 'the replica is in sync');

start_one($a->port) for 1 .. 3;
ok(wait_until(sub {
        my $ok = 1;
        for my $s (@sentinels) {
            my $m = sentinel_cli($s, 'SENTINEL', 'master', $NAME) // '';
            my %f = split /\n/, $m;
            $ok &&= ($f{'num-slaves'} // 0) >= 1 && ($f{'num-other-sentinels'} // 0) >= 2;
        }
        $ok }, timeout => 30, interval => 0.25),
    'three sentinels know the primary, the replica and each other');

my $ng = start_nginx(workers => 2, files => { 'webhook.tokens' => "$TOKEN\n" },
    http => "webhook_redis_sentinel $NAME " . join(' ', map { "127.0.0.1:$_->{port}" } @sentinels) . ";\n"
        . "webhook_redis_wait 1 500ms;\nwebhook_redis_timeout ${TIMEOUT}s;\n"
        . "webhook_redis_connect_timeout 500ms;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(default_priority => 'medium')
        . "        location = /status { webhook_status; }\n"
        . "    }\n");

sub status { json_decode($ng->request('GET', '/status')->{body}) }

subtest 'the sentinels name the primary' => sub {
    my $res;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, json_encode({ event_id => 'warm',
        model => 'res.partner', record_id => 1, event => 'write' })); $res->{status} == 200 }, timeout => 10),
        'an event: 200') or diag dump_res($res), $ng->error_log;
    my $st = status();
    is($st->{redis}{address}, '127.0.0.1:' . $a->port, 'the status shows the primary');
    is($st->{redis}{sentinel}, "127.0.0.1:$sentinels[0]{port}", '... and the sentinel that named it');
    like($ng->error_log, qr/webhook: redis sentinel \S+: the primary of "$NAME" is 127\.0\.0\.1:${\ $a->port}/,
        'the error log says who is the primary');
    is($b->llen('{webhook}:queue:medium'), 1, 'the replica has the event');
    $a->cli('DEL', '{webhook}:queue:medium');
};

sub body {
    my ($id) = @_;
    return json_encode({ event_id => $id, model => 'sale.order', record_id => 1, event => 'write',
        priority => 'medium' });
}

# failover($name, $how): load through a failover done by $how; returns the
# summary
sub failover {
    my ($name, $how) = @_;
    my $old = $redis{ master_port() };
    my ($new) = grep { $_ != $old } values %redis;
    my $stop = $ng->path("stop-$name");
    my $t_switch;
    my ($recs, $bad) = run_clients(
        n => $CLIENTS, dir => $ng->path("results-$name"), timeout => 120,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            my @r;
            for (my $i = 1; !-e $stop; $i++) {
                my $id = "$name-$c-$i";
                my $res = $cl->post($R, \%H, body($id));
                push @r, WebhookLoad::Client->record($id, $res);
                sleep($res->{status} == 200 ? 0.005 : 0.05);
            }
            return @r;
        },
        while_running => sub {
            sleep 1;
            my $t0 = time;
            $how->($old);
            wait_until(sub { master_port() == $new->port }, timeout => 30, interval => 0.05);
            $t_switch = time - $t0;
            note sprintf '%s: the sentinels named the new primary after %.2fs', $name, $t_switch;
            $old->start unless $old->running;
            # the old primary a replica of the new one: WAIT 1 holds again
            wait_until(sub { replicas_of($new) >= 1 }, timeout => 30, interval => 0.1);
            note sprintf '%s: a replica in sync again %.2fs after', $name, time - $t0;
            wait_until(sub { $ng->request('POST', $R, \%H, body("$name-probe-" . time))->{status} == 200 },
                timeout => 10, interval => 0.1);
            sleep 1;
            WebhookTest::write_file($stop, '');
        },
    );
    is_deeply($bad, [], "$name: every client finished");
    my $s = summarize($recs);
    my %in = map { ($_->{event_id} // '') => 1 } grep { ref $_ eq 'HASH' } envelopes($new);
    my @lost = grep { !$in{$_->{id}} } grep { $_->{status} == 200 } @$recs;
    # the last answer of each client
    my %last;
    for my $r (@$recs) {
        my (undef, $c, $i) = split /-/, $r->{id};
        $last{$c} = $r if !$last{$c} || (split /-/, $last{$c}{id})[2] < $i;
    }
    my @after = grep { $_->{status} == 200 } values %last;
    is(scalar @lost, 0, "$name: 0 lost: every event answered 200 is in the new primary")
        or diag "lost: @{[ map { $_->{id} } @lost[0 .. ($#lost < 9 ? $#lost : 9)] ]}";
    cmp_ok($s->{max}, '<=', $TIMEOUT + $MARGIN, "$name: no request waited past the timeout (max $s->{max}s)");
    is($s->{other} + $s->{conn_error}, 0, "$name: only 200 and 503");
    ok($s->{ok} > 0 && $s->{unavailable} > 0, "$name: 200s and 503s");
    is(scalar @after, $CLIENTS, "$name: 200 again at the end, without reload")
        or diag join("\n", map { "$_->{id} $_->{status} $_->{elapsed}" } values %last), "\n",
            join("\n", grep { /webhook/ } (split /\n/, $ng->error_log)[-30 .. -1]);
    my $st = status();
    is($st->{redis}{address}, '127.0.0.1:' . $new->port, "$name: the status shows the new primary");
    diag sprintf "%s: %d events sent, %d x 200, %d in the new primary, %d lost, %d x 503, "
        . "longest answer %.3fs, new primary named after %.2fs",
        $name, $s->{sent}, $s->{ok}, scalar(keys %in), scalar @lost, $s->{unavailable}, $s->{max}, $t_switch;
    return $s;
}

subtest 'SIGKILL of the primary under load' => sub {
    failover('kill', sub { $_[0]->stop(signal => 'KILL') });
    like($ng->error_log, qr/webhook: redis sentinel \S+: \+switch-master $NAME /,
        'the +switch-master is logged');
};

subtest 'SENTINEL FAILOVER under load' => sub {
    failover('planned', sub { sentinel_cli($sentinels[1], 'SENTINEL', 'FAILOVER', $NAME) });
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal|open socket/, 'no alert nor crash');

done_testing;
