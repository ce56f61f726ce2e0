#!/usr/bin/perl
# The receive and status suites against a Redis Cluster (issue 15): runs
# t/receive-basic.t and t/status-basic.t with WEBHOOK_TEST_CLUSTER=1, so that
# their start_redis() starts a 3+3 cluster (WebhookCluster::AsRedis: the
# suite's reads and writes go to each key's owner, "Redis down" stops
# every node) and their nginx.conf gets webhook_redis_cluster with every
# node instead of webhook_redis.  Their queues ({webhook}, {other},
# {tenant_a}, ...) are hash tags, on whichever primary owns their slot.
# One test per suite: it passes when the suite passes; its output is
# shown when it fails.
# Then the status location's Cluster part, directly: redis.cluster.nodes
# (the three primaries, up, their slots), each queue's "node" (its slot's
# owner by CLUSTER KEYSLOT), nginx_webhook_redis_node_up per primary
# (promtool happy), and with a primary killed (cluster-node-timeout 15 s:
# no failover meanwhile): still 200, that node down, its queue's depths
# null, the other queues' depths read.
# And right after nginx starts (no settling time), the first events are
# answered 200, as with one Redis: a worker that has no slot map yet
# waits for it rather than answering 503.
# Skipped when the module has no webhook_redis_cluster.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp ();
use POSIX ();
use Time::HiRes qw(time);
use WebhookTest;
use WebhookCluster;

skip_without_cluster();

# WEBHOOK_CLUSTER_SUITES: the suites to run (default both; "" none)
my @suites = split ' ', $ENV{WEBHOOK_CLUSTER_SUITES} // 'receive-basic.t status-basic.t';
for my $suite (@suites) {
    my $t0 = time;
    my ($rc, $out) = do {
        local $ENV{WEBHOOK_TEST_CLUSTER} = 1;
        WebhookTest::run_cmd([$^X, "-I$FindBin::Bin/lib", "$FindBin::Bin/$suite"], timeout => 240);
    };
    my @failed = $out =~ /^(not ok \d+ .*)$/mg;
    my ($plan) = $out =~ /^1\.\.(\d+)/m;
    if ($out =~ /^1\.\.0 # SKIP (.*)$/m) {
        fail("$suite skipped against the cluster: $1");
        next;
    }
    ok($rc == 0, sprintf('%s against the cluster: %s tests, %d failed, exit %d (%.0fs)',
        $suite, $plan // '?', scalar @failed, $rc, time - $t0))
        or diag $out;
}

# ---------------------------------------------------------------- status
my $TOKEN = 'tok-cluster-status-2e8d';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $c = start_cluster(node_timeout => 15000);
my @P = $c->primaries;
my @Q = $c->tags_on_each_primary('status');
my $ng = cluster_nginx(cluster => $c, queues => \@Q, token => $TOKEN, timeout => '1s');
for my $i (0 .. $#Q) {
    my $res = $ng->request('POST', "/q/$i", \%H, cluster_event("st-$i", 'low'));
    is($res->{status}, 200, "an event to $Q[$i]") or diag dump_res($res);
}
my $res = $ng->request('GET', '/status');
is($res->{status}, 200, 'status 200');
my $j = $res->{json} || {};
my @nodes = @{ ((($j->{redis} || {})->{cluster} || {})->{nodes}) || [] };
is_deeply([sort map { $_->{address} // '' } @nodes], [sort map { $_->addr } @P],
    'redis.cluster.nodes: the three primaries') or diag json_encode($j->{redis});
is(scalar(grep { $_->{up} } @nodes), 3, 'all up');
my $slots = 0;
$slots += $_->{slots} // 0 for @nodes;
is($slots, 16384, 'their slots add up to 16384');
for my $i (0 .. $#Q) {
    my $q = $j->{queues}{$Q[$i]} || {};
    is($q->{node}, $P[$i]->addr, "$Q[$i]: node is its slot's owner " . $P[$i]->addr);
    is(($q->{low} || {})->{depth}, 1, "$Q[$i]: low depth 1 (read on its node)");
}
my $prom = $ng->request('GET', '/status?format=prometheus')->{body} // '';
for my $n (@P) {
    like($prom, qr/^nginx_webhook_redis_node_up\{node="\Q${\ $n->addr }\E"\} 1$/m,
        'nginx_webhook_redis_node_up{node="' . $n->addr . '"} 1');
}
like($prom, qr/^# TYPE nginx_webhook_redis_node_up gauge$/m, '# TYPE nginx_webhook_redis_node_up gauge')
    or diag join "\n", grep { /node_up/ } split /\n/, $prom;
promtool_ok($prom, 'a cluster of three');

# the first requests after a start: nginx started by hand (start() waits
# 0.2 s after the port opens), POSTs from the moment the port opens
for my $round (1 .. 3) {
    my $n = WebhookTest::Nginx->new(workers => 2, files => { 'webhook.tokens' => "$TOKEN\n" },
        http => 'webhook_redis_cluster ' . $c->seeds . ";\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
            . WebhookTest::receive_location(path => '/q', queue => $Q[$round % 3]) . "    }\n");
    $n->write_conf;
    my $dir = $n->dir;
    my $t0 = time;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDOUT, '>>', "$dir/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec($ENV{NGINX_BIN} || '/usr/sbin/nginx', '-p', "$dir/", '-c', "$dir/nginx.conf",
            '-g', 'daemon off;') or POSIX::_exit(127);
    }
    $n->{pid} = $pid;
    my (@first, $k);
    while (@first < 20 && time - $t0 < 10) {
        my $r = $n->request('POST', '/q', \%H, cluster_event('start-' . $round . '-' . ++$k), timeout => 5);
        next if $r->{status} == 0;    # not listening yet
        push @first, sprintf('%d at %.3fs', $r->{status}, time - $t0)
            . ($r->{status} == 200 ? '' : " ($r->{body})");
    }
    my @bad = grep { !/^200 / } @first;
    is_deeply(\@bad, [], "start $round: the first 20 events after the port opens are answered 200")
        or diag "answers: @first\n" . join "\n", grep { /webhook/ } split /\n/, $n->error_log;
    $n->stop;
}

# a primary down, before any failover
$P[0]->stop(signal => 'KILL');
my $down = wait_until(sub {
    my $r = $ng->request('GET', '/status', {}, undef, timeout => 5);
    return 0 unless $r->{status} == 200 && ref $r->{json} eq 'HASH';
    my ($n) = grep { ($_->{address} // '') eq $P[0]->addr } @{ $r->{json}{redis}{cluster}{nodes} || [] };
    return $n && !$n->{up} ? $r : 0;
}, timeout => 10, interval => 0.2);
ok($down, 'a primary killed: status 200, that node "up": false');
$j = $down ? $down->{json} : {};
is_deeply([map { ($j->{queues}{$Q[0]}{$_} || {})->{depth} } qw(high medium low)], [undef, undef, undef],
    "$Q[0] (on the killed node): depths null");
is_deeply([map { ($j->{queues}{$Q[$_]}{low} || {})->{depth} } 1, 2], [1, 1],
    'the queues on the other primaries: depths read');
is(scalar(grep { $_->{up} } @{ $j->{redis}{cluster}{nodes} || [] }), 2, 'the two others up');
$prom = $ng->request('GET', '/status?format=prometheus')->{body} // '';
like($prom, qr/^nginx_webhook_redis_node_up\{node="\Q${\ $P[0]->addr }\E"\} 0$/m,
    'nginx_webhook_redis_node_up of the killed node 0');
my $elog = $ng->error_log;
unlike($elog, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert, no crash');
ok($ng->stop(timeout => 20), 'nginx stops gracefully');

done_testing;
