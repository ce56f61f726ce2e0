#!/usr/bin/perl
# The receive and status suites against a Redis Cluster (issue 15): runs
# t/02-receive.t and t/10-status.t with WEBHOOK_TEST_CLUSTER=1, so that
# their start_redis() starts a 3+3 cluster (WebhookCluster::AsRedis: the
# suite's reads and writes go to each key's owner, "Redis down" stops
# every node) and their nginx.conf gets webhook_redis_cluster with every
# node instead of webhook_redis.  Their queues ({webhook}, {other},
# {tenant_a}, ...) are hash tags, on whichever primary owns their slot.
# One test per suite: it passes when the suite passes; its output is
# shown when it fails.  Skipped when the module has no
# webhook_redis_cluster.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use WebhookTest;
use WebhookCluster;

skip_without_cluster();

for my $suite (qw(02-receive.t 10-status.t)) {
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

done_testing;
