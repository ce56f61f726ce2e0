#!/usr/bin/perl
# Redis Cluster under address churn (containers, rescheduled pods: a node
# comes back at another address): a worker forgets the nodes that own no
# slot and have nothing in flight, so that past 64 distinct addresses (the
# size of the node table that was never emptied) a primary at a new
# address is still reached, without a reload.  A real cluster of three
# primaries; the second announces 70 addresses in turn (CONFIG SET
# cluster-announce-port, gossiped to the others, from which the worker
# reads CLUSTER SLOTS), then restarts on a new port.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookCluster;

skip_without_cluster();

my $TOKEN = 'tok-churn-6a0d2b';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $CHURN = 70;

my $c = start_cluster(primaries => 3, replicas => 0, node_timeout => 500);
my ($ta, $tb) = $c->tags_on_each_primary('churn');
my ($A, $B, $C) = $c->primaries;
my $ng = cluster_nginx(cluster => $c, queues => [$ta, $tb], token => $TOKEN, workers => 1);

my $n = 0;
sub post { $ng->request('POST', "/q/$_[0]", \%H, cluster_event('churn-' . ++$n)) }
sub nodes {
    my $st = json_decode($ng->request('GET', '/status')->{body}) // {};
    return { map { $_->{address} => $_ } @{ $st->{redis}{cluster}{nodes} // [] } };
}

ok(wait_until(sub { post(1)->{status} == 200 }, timeout => 15), "an event on the second primary's queue: 200")
    or diag $ng->error_log;

# the second primary announces one new address after the other
my ($seen, $t0) = (0, time);
my %used = map { $_->port => 1 } $c->nodes;
for my $k (1 .. $CHURN) {
    my $p;
    do { $p = 20000 + int rand 30000 } while $used{$p}++;
    $B->cli('CONFIG', 'SET', 'cluster-announce-port', $p);
    # the others know it (gossip), then the worker's connection to it (at
    # its real port, the first time) is lost: the map is read again
    wait_until(sub { !grep { ($_->cli('CLUSTER', 'SLOTS') // '') !~ /^$p$/m } $A, $C },
        timeout => 10, interval => 0.05);
    $B->cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    last unless wait_until(sub { nodes()->{"127.0.0.1:$p"} }, timeout => 10, interval => 0.05);
    $seen++;
}
is($seen, $CHURN, "the worker followed $CHURN addresses of the second primary")
    or diag join "\n", grep { defined && /webhook/ } (split /\n/, $ng->error_log)[-20 .. -1];
note sprintf '%d addresses in %.1fs', $seen, time - $t0;

# back at a new port of its own
$B->stop;
$B->{port} = cluster_port();
$B->start;
ok($c->wait_ok(timeout => 30), 'the cluster is ok with the second primary on ' . $B->addr);
my $at;
ok(wait_until(sub { $at = nodes()->{ $B->addr }; $at && $at->{up} }, timeout => 20),
    'the worker is connected to it at its new address')
    or diag explain(nodes()), join "\n", grep { defined && /webhook: redis cluster/ } (split /\n/, $ng->error_log)[-20 .. -1];

my $res;
ok(wait_until(sub { $res = post(1); $res->{status} == 200 }, timeout => 10), "an event on its queue: 200")
    or diag dump_res($res);
is(scalar(() = $B->lrange("$tb:queue:medium")), 1, 'in the second primary (it lost the first: no persistence)');
is(post(0)->{status}, 200, "an event on the first primary's queue: 200");

is_deeply([sort keys %{ nodes() }], [sort map { $_->addr } $A, $B, $C], 'the status names the three primaries only');
my @forgotten = $ng->error_log =~ /webhook: redis cluster: \S+ owns no slot and has nothing in flight: forgotten/g;
cmp_ok(scalar @forgotten, '>=', $CHURN - 2, 'the addresses it left were forgotten (' . scalar(@forgotten) . ')');
unlike($ng->error_log, qr/left out/, 'no node left out');

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal|open socket/, 'no alert nor crash');

done_testing;
