#!/usr/bin/perl
# webhook_redis_cluster: a Redis Cluster of 3 primaries and 3 replicas on
# loopback ports.  nginx -t refusals (a queue without a hash tag, Cluster
# with Sentinel, with webhook_redis, with a database); three queues whose
# hash tags land on the three primaries: each event is on its slot's
# primary (read directly); the status tells each queue's node, every
# primary and its slots; a slot moved with CLUSTER SETSLOT (MOVED) is
# followed; a primary killed: the status stays 200 with that queue
# unknown, then its replica takes over and the queue takes events again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookCluster;

require_module();

my $TOKEN = 'tok-cluster-5e2a91';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");

# ------------------------------------------------------------ the cluster
# 3 primaries + 3 replicas (t/lib/WebhookCluster.pm: node ports from
# cluster_port(), the bus port free too; no delay before a replica's full
# sync, or a replica that never synced could not fail over)
my $c = eval { start_cluster(primaries => 3, replicas => 1, node_timeout => 2000) };
ok($c, 'the cluster is created') or do { diag($@); done_testing(); exit 1 };
my @nodes = $c->nodes;

ok($c->wait_ok(timeout => 30), 'every node says cluster_state:ok');

ok(wait_until(sub { scalar($c->replicas) == 3 && $c->replicas_in_sync }, timeout => 30),
    'the three replicas are in sync');

# three hash tags on three different primaries (in the primaries' port
# order), without their braces: tag "t1" is queue "{t1}:orders", path /t1
my @primaries = $c->primaries;
my @tags = map { /^\{(.*)\}\z/ ? $1 : $_ } eval { $c->tags_on_each_primary('t') };
is(scalar @tags, 3, 'three hash tags on three primaries') or diag($@);
my %tag_of = map { ($primaries[$_]->addr => $tags[$_]) } 0 .. $#primaries;
# each tag's slot is on its primary
is(scalar(grep { ($c->owner("{$tag_of{ $_->addr }}") // $nodes[0])->addr eq $_->addr } @primaries),
    3, 'each tag on its own primary');

my $seed = $nodes[0]->addr;

# ------------------------------------------------------------ nginx -t
sub conf {
    my (%o) = @_;
    my $queue = $o{queue} // '{a}';
    return ($o{redis} // "webhook_redis_cluster $seed;\n")
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . receive_location(path => '/x', queue => $queue)
        . "    }\n";
}

my %t_files = (files => { 'webhook.tokens' => "$TOKEN\n" });
my ($rc, $out);

($rc, $out) = nginx_t(conf(queue => 'tenant1'), %t_files);
isnt($rc, 0, 'nginx -t refuses a queue without a hash tag with Cluster');
like($out, qr/"webhook_queue tenant1" has no hash tag.*CROSSSLOT/s,
    'and says why (CROSSSLOT)');

($rc, $out) = nginx_t(conf(queue => 'x{}y'), %t_files);
isnt($rc, 0, 'an empty hash tag is no hash tag');

($rc, $out) = nginx_t(conf(queue => 'tenant1', redis => "webhook_redis $seed;\n"), %t_files);
is($rc, 0, 'without Cluster, a queue without a hash tag is fine') or diag($out);

($rc, $out) = nginx_t(conf(redis => "webhook_redis_cluster $seed;\n"
    . "webhook_redis_sentinel mymaster 127.0.0.1:26379;\n"), %t_files);
isnt($rc, 0, 'nginx -t refuses Cluster with Sentinel');
like($out, qr/"webhook_redis_cluster" and "webhook_redis_sentinel" are exclusive/,
    'and says so');

($rc, $out) = nginx_t(conf(redis => "webhook_redis_cluster $seed;\n"
    . "webhook_redis $seed;\n"), %t_files);
isnt($rc, 0, 'nginx -t refuses Cluster with webhook_redis');
like($out, qr/"webhook_redis_cluster" and "webhook_redis" are exclusive/, 'and says so');

($rc, $out) = nginx_t(conf(redis => "webhook_redis_cluster $seed;\nwebhook_redis_db 2;\n"),
    %t_files);
isnt($rc, 0, 'nginx -t refuses a database other than 0 with Cluster');
like($out, qr/only database 0/, 'and says so');

($rc, $out) = nginx_t(conf(), %t_files);
is($rc, 0, 'nginx -t takes a Cluster configuration') or diag($out);

# ------------------------------------------------------------ nginx
# seeds: a replica first (it names the primaries all the same)
my $replica = ($c->replicas)[0];
my $locs = join '', map {
    receive_location(path => "/$tags[$_]", queue => "{$tags[$_]}:orders",
        extra => 'webhook_spool off;')
} 0 .. 2;
# plain LPUSH (one key): follows ASK during a migration
my $pt = $tag_of{ $primaries[1]->addr };
$locs .= receive_location(path => '/plain', queue => "{$pt}:plain",
    extra => 'webhook_dedupe off; webhook_spool off;');
# the spool, for a queue in the same slot as {$pt}:orders
$locs .= receive_location(path => '/spooled', queue => "{$pt}:spooled");

my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => "webhook_redis_cluster " . $replica->addr . " $seed;\n"
        . "webhook_redis_timeout 2s;\n"
        . "webhook_spool %%PREFIX%%/spool;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . $locs
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
);

sub body {
    my ($id) = @_;
    return json_encode({ event_id => $id, model => 'sale.order', record_id => 1,
        event => 'write', priority => 'medium' });
}

sub post { $ng->request('POST', "/$_[0]", \%H, body($_[1]))->{status} }

sub status { json_decode($ng->request('GET', '/status')->{body}) }

# the length of queue {$tag}:orders's medium list, read on node $node
sub list_len {
    my ($node, $tag) = @_;
    my $n = $node->cli('LLEN', "{$tag}:orders:queue:medium") // '';
    return $n =~ /^\d+$/ ? $n + 0 : -1;
}

ok(wait_until(sub { (status()->{redis}{up} // 0) }, timeout => 15),
    'the status says Redis is up once the primaries are connected');

for my $p (@primaries) {
    my $t = $tag_of{ $p->addr };
    is(post($t, "ev-$t-1"), 200, "an event of queue {$t}:orders is taken");
    is(list_len($p, $t), 1, "it is on its slot's primary (" . $p->addr . ")");
}

my $st = status();
my @sn = @{ $st->{redis}{cluster}{nodes} // [] };
is(scalar @sn, 3, 'the status lists the three primaries');
my $slots = 0;
$slots += $_->{slots} for @sn;
is($slots, 16384, 'which own every slot');
is(scalar(grep { $_->{up} } @sn), 3, 'all up');
for my $p (@primaries) {
    my $t = $tag_of{ $p->addr };
    my $q = $st->{queues}{"{$t}:orders"};
    is($q->{node}, $p->addr, "the status tells queue {$t}'s node");
    is($q->{medium}{depth}, 1, 'and its depth, read on that node');
}

my $prom = $ng->request('GET', '/status?format=prometheus')->{body};
for my $p (@primaries) {
    my $a = $p->addr;
    like($prom, qr/^nginx_webhook_redis_node_up\{node="\Q$a\E"\} 1$/m,
        "prometheus: node $a up");
}

# the module's own keyslot (CRC16 of the hash tag) agrees with Redis's
unlike($ng->error_log, qr/moved from/, 'no MOVED so far: every slot computed right');

# ------------------------------------------------------------ MOVED
# the slot of the first tag moves to the second tag's primary (no
# traffic meanwhile: the keys, then SETSLOT NODE everywhere)
my ($src, $dst) = @primaries[0, 1];
my $t = $tag_of{ $src->addr };
my $slot = $c->slot_of("{$t}");
my $mv = eval { $c->migrate_slot($slot, $dst, duration => 0) };
ok($mv, "slot $slot migrated to " . $dst->addr) or diag($@);
is(($c->owner($slot) // $src)->addr, $dst->addr, 'the cluster says so');

is(list_len($dst, $t), 1, "the queue's list moved to " . $dst->addr);
is(post($t, "ev-$t-2"), 200, 'an event after the move is taken (MOVED followed)');
is(list_len($dst, $t), 2, 'and is on the new owner');
my ($sa, $da) = ($src->addr, $dst->addr);
like($ng->error_log, qr/slot $slot moved from \Q$sa\E to \Q$da\E/,
    'the error log says the slot moved');
ok(wait_until(sub { (status()->{queues}{"{$t}:orders"}{node} // '') eq $da },
    timeout => 5), 'the status tells the new node');
is(post($t, "ev-$t-3"), 200, 'the next event goes there directly');
is(list_len($dst, $t), 3, 'and is there');

# ------------------------------------------------------------ ASK, TRYAGAIN
# the slot of queue {$pt} (on the second primary) moved to the first
# one: the checks below run while it is half migrated (IMPORTING and
# MIGRATING set, no key moved yet)
($src, $dst) = @primaries[1, 0];
$slot = $c->slot_of("{$pt}");
my $res;
$mv = eval { $c->migrate_slot($slot, $dst, duration => 0, on_start => sub {
    $res = $ng->request('POST', '/plain', \%H, body('ev-plain-1'));
    is($res->{status}, 200, 'a plain LPUSH during a migration is taken (ASK followed)');

    is(post($pt, "ev-$pt-2"), 503,
        "the script on a half-migrated queue is answered 503 (no spool): TRYAGAIN");
    like($ng->error_log, qr/redis refused the events: TRYAGAIN/, 'the error log says TRYAGAIN');

    $res = $ng->request('POST', '/spooled', \%H, body('ev-spooled-1'));
    is($res->{status}, 200, 'with the spool, an event of a half-migrated queue: 200');
    is($res->{json}{status}, 'spooled', '... spooled');
}) };
ok($mv, "then slot $slot migrated to " . $dst->addr) or diag($@);

is($dst->cli('LLEN', "{$pt}:plain:queue:medium"), 1,
    'the plain LPUSH went to the importing node');
is(post($pt, "ev-$pt-3"), 200, 'once migrated, the queue takes events again');
is(list_len($dst, $pt), 2, 'on its new node');
ok(wait_until(sub { ($dst->cli('LLEN', "{$pt}:spooled:queue:medium") // '') eq '1' },
    timeout => 15), 'the spooled event is drained to the new owner');

# ------------------------------------------------------------ a primary lost
my $victim = $primaries[2];
my $vt = $tag_of{ $victim->addr };
my ($st_down, $t0);
# the checks while it is down, before a replica is promoted
my $kill = eval { $c->kill_primary($victim, on_kill => sub {
    $t0 = time;
    $res = $ng->request('GET', '/status');
    is($res->{status}, 200, 'the status stays 200 with a primary down');
    $st = json_decode($res->{body});
    ok(!$st->{redis}{up}, 'redis.up is false');
    is($st->{queues}{"{$vt}:orders"}{medium}{depth}, undef, "queue {$vt}'s depth is null");
    is($st->{queues}{"{$pt}:orders"}{medium}{depth}, 2,
        'another queue is read all the same');
    isnt($ng->request('GET', '/status?format=prometheus')->{body}, undef, 'prometheus too');
}) };
ok($kill, 'a replica is promoted') or diag($@, $c->describe);

ok(wait_until(sub { post($vt, 'ev-after-failover-' . time) == 200 }, timeout => 20, interval => 0.2),
    "the replica took over: queue {$vt} takes events again")
    or diag($ng->error_log, $c->describe);
diag(sprintf 'back after %.1f s (the cluster after %.1f s)', time - $t0, $kill ? $kill->{seconds} : -1);
ok(wait_until(sub { status()->{redis}{up} }, timeout => 10), 'redis.up again');

# ------------------------------------------------------------ WAIT 1
# the killed primary's shard has no replica now: WAIT 1 cannot hold there
my $seeds = join ' ', map { $_->addr } @primaries[0, 1];
my $nw = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => "webhook_redis_cluster $seeds;\n"
        . "webhook_redis_timeout 2s;\n"
        . "webhook_redis_wait 1;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . receive_location(path => "/$vt", queue => "{$vt}:orders")
        . receive_location(path => "/$pt", queue => "{$pt}:orders")
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
);
sub post_wait { $nw->request('POST', "/$_[0]", \%H, body($_[1]))->{status} }

ok(wait_until(sub { (json_decode($nw->request('GET', '/status')->{body}) // {})->{redis}{up} },
    timeout => 15), 'WAIT 1: nginx connected to the primaries');
is(post_wait($pt, 'ev-wait-1'), 200, 'WAIT 1: a primary with its replica: 200');
is(post_wait($vt, 'ev-wait-2'), 503, "WAIT 1: queue {$vt}'s new primary has no replica: 503");
like($nw->error_log, qr/WAIT 1 \d+: 0 replicas acknowledged/, 'the error log says why');

eval { $c->restart_node($victim) };
diag("restart_node: $@") if $@;
ok(wait_until(sub { post_wait($vt, 'ev-wait-3-' . time) == 200 }, timeout => 30, interval => 0.3),
    'the killed node is back as a replica: WAIT 1 holds again, 200');
$nw->stop;
unlike($nw->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in its error log');

$ng->stop;
unlike($ng->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the error log');

# ------------------------------------------------------------ TLS
# three TLS primaries (the cluster bus too): every node's certificate is
# checked against the address it announces
SKIP: {
    skip_or_fail('openssl is not installed', 4)
        unless (WebhookTest::run_cmd(['openssl', 'version'], timeout => 10))[0] == 0;

    my $pki = WebhookTest::make_dir('pki');
    my $ossl = sub {
        my ($rc, $o) = WebhookTest::run_cmd(['openssl', @_], timeout => 60);
        die "openssl @_: $o" if $rc != 0;
    };
    $ossl->('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', 2,
        '-subj', '/CN=ca', '-keyout', "$pki/ca.key", '-out', "$pki/ca.pem");
    $ossl->('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=node',
        '-keyout', "$pki/node.key", '-out', "$pki/node.csr");
    WebhookTest::write_file("$pki/node.ext", "subjectAltName=IP:127.0.0.1\n");
    $ossl->('x509', '-req', '-in', "$pki/node.csr", '-CA', "$pki/ca.pem",
        '-CAkey', "$pki/ca.key", '-CAcreateserial', '-days', 2,
        '-extfile', "$pki/node.ext", '-out', "$pki/node.pem");
    chmod 0644, "$pki/node.key";

    my %tls = (cert => "$pki/node.pem", key => "$pki/node.key", ca => "$pki/ca.pem");
    my $tc = eval { start_cluster(primaries => 3, replicas => 0, tls => \%tls) };
    ok($tc, 'TLS: the cluster is created') or diag($@);
    my @tn = $tc ? $tc->nodes : ();
    skip 'no TLS cluster', 3 unless $tc;

    my $nt = start_nginx(
        files => { 'webhook.tokens' => "$TOKEN\n" },
        http => "webhook_redis_cluster " . $tn[0]->addr . ";\n"
            . "webhook_redis_ssl on;\n"
            . "webhook_redis_ssl_verify on;\n"
            . "webhook_redis_ssl_trusted_certificate $pki/ca.pem;\n"
            . "webhook_redis_timeout 2s;\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
            . join('', map { receive_location(path => "/$_", queue => "{$_}:tls") } 'a' .. 'f')
            . "        location = /status { webhook_status; }\n"
            . "    }\n",
    );
    ok(wait_until(sub { (json_decode($nt->request('GET', '/status')->{body}) // {})->{redis}{up} },
        timeout => 15), 'TLS: every primary connected, certificates verified')
        or diag($nt->error_log);
    my $found = 0;
    for my $t ('a' .. 'f') {
        next unless $nt->request('POST', "/$t", \%H, body("tls-$t"))->{status} == 200;
        for my $n (@tn) {
            $found++ if ($n->cli('LLEN', "{$t}:tls:queue:medium") // '') eq '1';
        }
    }
    is($found, 6, 'TLS: six queues, each event on its node');
    my $st = json_decode($nt->request('GET', '/status')->{body});
    is(scalar(@{ $st->{redis}{cluster}{nodes} // [] }), 3, 'TLS: three primaries');
    $nt->stop;
}

done_testing();
