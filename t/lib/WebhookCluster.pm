package WebhookCluster;

# A private Redis Cluster for the Cluster tests (t/cluster-*), on top of
# WebhookTest.  Perl core modules only.
#
#   start_cluster(primaries => 3, replicas => 1, node_timeout => 2000,
#                 tls => {cert, key, ca}, extra => [redis-server args])
#       3 primaries + 3 replicas on free loopback ports, created with
#       `redis-cli --cluster create`, returned once every node says
#       cluster_state:ok and the replicas are in sync.  Each node is a
#       WebhookTest::Redis (its own directory, killed at exit like the
#       others).  tls: every node on TLS only, the cluster bus and the
#       replication too (WebhookTest::Redis's tls option).
#   cluster_port()             a free port whose port + 10000 (the
#       cluster bus) is free too, below 55535
#   cluster_support($module)   undef when the module knows
#       webhook_redis_cluster, else the reason to skip (nginx -t's line)
#   skip_without_cluster()     skip_all unless the module has Cluster
#   cluster_nginx(...)         nginx on the cluster, a location per queue
#   check_delivery(...)        every 200 found once, in its queue, on the owner
#
# WEBHOOK_CLUSTER_DRYRUN=1 checks the harness itself with a module without
# Cluster: no skip, and nginx gets `webhook_redis <first queue's owner>`
# instead of webhook_redis_cluster (the tests are then expected to fail
# on MOVED: a way to see that they can fail).
#
# Methods of a cluster ($c):
#   nodes, primaries, replicas, seeds ("host:port host:port ...")
#   replicas_in_sync()  every replica's link up, no sync in progress
#   node_by_addr($addr), slot_of($key), owner($slot_or_key)
#   tags_on_each_primary($prefix)  a hash tag whose slot is on each primary
#   lrange($key), llen($key), keys(), flushall()  on the key's owner / all
#   envelopes($queue)  the decoded envelopes of the three lists, on the owner
#   migrate_slot($slot, $to, duration => 1.5, on_start => sub {...})
#   kill_primary($node, on_kill => sub {...})  SIGKILL, waits for a
#       replica's promotion (on_kill runs between the two)
#   restart_node($node)  start again, waits until it is a synced replica
#   wait_ok(timeout => 20)  every running node says cluster_state:ok

use strict;
use warnings;

use Exporter 'import';
use POSIX ();
use Time::HiRes qw(time sleep);
use WebhookTest;

our @EXPORT = qw(start_cluster cluster_support skip_without_cluster cluster_nginx
    cluster_event check_delivery firsts cluster_port);

# firsts($n, @list): the first $n elements (fewer when the list is shorter)
sub firsts { my $n = shift; return @_ > $n ? @_[0 .. $n - 1] : @_ }

my $REDIS_CLI = $ENV{REDIS_CLI} || 'redis-cli';

sub start_cluster { WebhookCluster->new(@_) }

# cluster_port(): a free loopback port for a cluster node: the node also
# listens on port + 10000 (the cluster bus), which must be free and exist
sub cluster_port {
    for (1 .. 200) {
        my $p = WebhookTest::free_port();
        return $p if $p < 55535 && !WebhookTest::port_open($p + 10000);
    }
    die "no free port pair (port and port + 10000)\n";
}

# cluster_support(): undef when `nginx -t` accepts webhook_redis_cluster,
# else a skip reason
sub cluster_support {
    my ($rc, $out) = WebhookTest::nginx_t(
        "webhook_redis_cluster 127.0.0.1:1 127.0.0.1:2;\n"
        . "server { listen 127.0.0.1:1; location = /r { webhook_receive; "
        . "webhook_token_file %%PREFIX%%/t; webhook_queue \"{x}\"; } }\n",
        files => { t => "tok-cluster-probe-123\n" });
    return undef if $rc == 0;
    return 'the module has no Redis Cluster support (nginx -t: unknown directive '
        . '"webhook_redis_cluster")' if $out =~ /unknown directive "webhook_redis_cluster"/;
    # the directive is known but refuses this configuration: a failure
    Test::More::BAIL_OUT("nginx -t refuses a minimal webhook_redis_cluster configuration:\n$out");
}

# skip_without_cluster(): skip_all (with nginx -t's reason) when the
# module lacks webhook_redis_cluster, so these tests can merge before the
# implementation
sub skip_without_cluster {
    WebhookTest::require_module();
    my $why = $ENV{WEBHOOK_CLUSTER_DRYRUN} ? undef : cluster_support();
    WebhookTest::cannot_run($why) if $why;
}

# cluster_nginx(cluster => $c, queues => [tags], token => T, timeout =>
#               '1s', spool => 1, http => TEXT, workers => 2): nginx with
# webhook_redis_cluster on the cluster's nodes, a receive location
# /q/<n> per queue (n = index in queues), /status, and chaos.log lines
# "$webhook_event_id $status"
sub cluster_nginx {
    my (%o) = @_;
    my $c = $o{cluster};
    my $http = ($ENV{WEBHOOK_CLUSTER_DRYRUN} ? 'webhook_redis ' . $c->owner($o{queues}[0])->addr : 'webhook_redis_cluster ' . $c->seeds) . ";\n"
        . 'webhook_redis_timeout ' . ($o{timeout} // '1s') . ";\n"
        . "webhook_redis_connect_timeout 1s;\n"
        . ($o{spool} ? "webhook_spool %%PREFIX%%/spool;\n" : '')
        . ($o{http} // '')
        . "    log_format chaos '\$webhook_event_id \$status';\n"
        . "    access_log %%PREFIX%%/chaos.log chaos;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . "        server_name localhost;\n";
    my $i = 0;
    for my $q (@{ $o{queues} }) {
        $http .= WebhookTest::receive_location(path => '/q/' . $i++, queue => $q,
            default_priority => 'medium');
    }
    $http .= "        location = /status { webhook_status; }\n"
        . "    }\n";
    return WebhookTest::start_nginx(workers => $o{workers} // 2, http => $http,
        error_level => $o{error_level} // 'info',
        files => { 'webhook.tokens' => "$o{token}\n" });
}

# cluster_event($id, $priority): an Odoo event body
sub cluster_event {
    my ($id, $prio) = @_;
    return WebhookTest::json_encode({ event_id => $id, model => 'sale.order', record_id => 7,
        event => 'write', priority => $prio // 'medium', values => { name => "SO $id" } });
}

# check_delivery($c, \@records, {event_id => queue}): reads every queue's
# lists on their owners; returns { found => n (distinct event_ids of the
# 200s found), lost => [ids], twice => [ids], wrong_id => [ids],
# misplaced => [ids in another queue], total => envelopes in all }
sub check_delivery {
    my ($c, $recs, $queue_of) = @_;
    my %q = map { $_ => 1 } values %$queue_of;
    my (%in, %where, @twice);
    my $total = 0;
    for my $q (sort keys %q) {
        for my $e ($c->envelopes($q)) {
            $total++;
            my $id = $e->{event_id} // next;
            push @twice, $id if exists $in{$id};
            $in{$id} = $e->{id} // '';
            $where{$id} = $q;
        }
    }
    my %ok = map { $_->{id} => $_ } grep { $_->{status} == 200 } @$recs;
    my @ids = sort keys %ok;
    return {
        found => scalar(grep { exists $in{$_} } @ids),
        lost => [grep { !exists $in{$_} } @ids],
        twice => \@twice,
        wrong_id => [grep { exists $in{$_} && ($ok{$_}{answer} // '') ne $in{$_} } @ids],
        misplaced => [grep { exists $where{$_} && $where{$_} ne $queue_of->{$_} } @ids],
        total => $total,
    };
}

sub new {
    my ($class, %o) = @_;
    my $np = $o{primaries} // 3;
    my $nr = $o{replicas} // 1;
    my $self = bless { node_timeout => $o{node_timeout} // 2000, nodes => [],
        tls => $o{tls} }, $class;
    for (1 .. $np * (1 + $nr)) {
        my $r = WebhookTest::Redis->new(no_start => 1, port => cluster_port(),
            ($o{tls} ? (tls => $o{tls}) : ()));
        my $dir = $r->dir;
        $r->{extra} = [
            '--cluster-enabled', 'yes',
            '--cluster-config-file', "$dir/nodes.conf",
            '--cluster-node-timeout', $self->{node_timeout},
            # a replica that was cut off a while may still be promoted
            '--cluster-replica-validity-factor', 0,
            '--cluster-require-full-coverage', 'yes',
            # a replica's full sync at once (diskless sync waits 5 s by default)
            '--repl-diskless-sync-delay', 0,
            ($o{tls} ? ('--tls-cluster', 'yes', '--tls-replication', 'yes') : ()),
            @{ $o{extra} || [] },
        ];
        $r->start;
        push @{ $self->{nodes} }, $r;
    }
    my @addrs = map { $_->addr } @{ $self->{nodes} };
    my @tls = $o{tls} ? ('--tls', '--cacert', $o{tls}{ca}) : ();
    my ($rc, $out) = WebhookTest::run_cmd([$REDIS_CLI, @tls, '--cluster', 'create', @addrs,
        '--cluster-replicas', $nr, '--cluster-yes'], timeout => 60);
    die "redis-cli --cluster create failed ($rc):\n$out" if $rc != 0;
    $self->wait_ok(timeout => 30) or die "the cluster did not reach cluster_state:ok\n"
        . join("\n", map { $_->addr . ': ' . ($_->cli('CLUSTER', 'INFO') // 'no answer') } @{ $self->{nodes} });
    # every node knows every other's role (replicas attached)
    WebhookTest::wait_until(sub { scalar($self->replicas) == $np * $nr }, timeout => 20)
        or die "replicas not attached:\n" . ($self->{nodes}[0]->cli('CLUSTER', 'NODES') // '');
    # and in sync: a write on a primary reaches its replica
    WebhookTest::wait_until(sub { $self->replicas_in_sync }, timeout => 30)
        or die "replicas not in sync\n";
    return $self;
}

# replicas_in_sync(): every replica's link to its primary is up and no
# full sync is in progress (true with no replica)
sub replicas_in_sync {
    my ($self) = @_;
    for my $r ($self->replicas) {
        my $info = $r->cli({ timeout => 2 }, 'INFO', 'replication') // return 0;
        return 0 unless $info =~ /master_link_status:up/ && $info !~ /master_sync_in_progress:1/;
    }
    return 1;
}

sub nodes { @{ $_[0]{nodes} } }
sub seeds { join ' ', map { $_->addr } grep { $_->running } $_[0]->nodes }
sub node_by_addr {
    my ($self, $addr) = @_;
    my ($n) = grep { $_->addr eq $addr } $self->nodes;
    return $n;
}

# A running node to ask (the first that answers).
sub _any {
    my ($self) = @_;
    for my $n (grep { $_->running } $self->nodes) {
        my $p = $n->cli({ timeout => 3 }, 'PING');
        return $n if defined $p && $p eq 'PONG';
    }
    die "no cluster node answers\n";
}

# topology(): [{id, addr, flags, master (id or '-'), slots => [[a, b], ...],
# node => WebhookTest::Redis}, ...] as node $from (default: any) sees it
sub topology {
    my ($self, $from) = @_;
    $from //= $self->_any;
    my $text = $from->cli({ timeout => 5 }, 'CLUSTER', 'NODES') // '';
    my @t;
    for my $l (split /\n/, $text) {
        my ($id, $addr, $flags, $master, undef, undef, undef, $link, @slots) = split ' ', $l;
        next unless defined $link;
        $addr =~ s/@.*//;
        my @ranges;
        for my $s (@slots) {
            next if $s =~ /^\[/;    # [slot->-importing] markers
            my ($a, $b) = split /-/, $s;
            push @ranges, [$a, $b // $a];
        }
        push @t, { id => $id, addr => $addr, flags => $flags, master => $master,
            link => $link, slots => \@ranges, node => $self->node_by_addr($addr) };
    }
    return \@t;
}

# primaries(): the nodes that are primaries (and not failed), in port order
sub primaries {
    my ($self, $from) = @_;
    return map { $_->{node} }
        sort { $a->{node}->port <=> $b->{node}->port }
        grep { $_->{flags} =~ /\bmaster\b/ && $_->{flags} !~ /fail/ && @{ $_->{slots} } && $_->{node} }
        @{ $self->topology($from) };
}

sub replicas {
    my ($self, $from) = @_;
    return map { $_->{node} }
        grep { $_->{flags} =~ /\bslave\b/ && $_->{flags} !~ /fail/ && $_->{node} }
        @{ $self->topology($from) };
}

sub node_id {
    my ($self, $node) = @_;
    my $id = $node->cli('CLUSTER', 'MYID');
    return $id;
}

sub slot_of {
    my ($self, $key) = @_;
    my $s = $self->_any->cli('CLUSTER', 'KEYSLOT', $key);
    die "CLUSTER KEYSLOT $key failed\n" unless defined $s && $s =~ /^\d+\z/;
    return $s + 0;
}

# owner($slot or $key): the primary (WebhookTest::Redis) serving the slot
sub owner {
    my ($self, $what, $from) = @_;
    my $slot = $what =~ /^\d+\z/ ? $what : $self->slot_of($what);
    for my $n (@{ $self->topology($from) }) {
        next unless $n->{flags} =~ /\bmaster\b/ && $n->{flags} !~ /fail/;
        for my $r (@{ $n->{slots} }) {
            return $n->{node} if $slot >= $r->[0] && $slot <= $r->[1];
        }
    }
    return undef;
}

# tags_on_each_primary($prefix): ("{prefixN}", ...) one per primary, in
# the primaries' port order
sub tags_on_each_primary {
    my ($self, $prefix) = @_;
    my @p = $self->primaries;
    my %want = map { $_->addr => undef } @p;
    for my $i (1 .. 500) {
        my $tag = "{$prefix$i}";
        my $o = $self->owner($tag) or next;
        $want{ $o->addr } //= $tag;
        last unless grep { !defined } values %want;
    }
    die "no hash tag found for every primary\n" if grep { !defined } values %want;
    return map { $want{ $_->addr } } @p;
}

sub lrange {
    my ($self, $key) = @_;
    my $o = $self->owner($key) or return ();
    return $o->lrange($key);
}

sub llen {
    my ($self, $key) = @_;
    my $o = $self->owner($key) or return -1;
    return $o->llen($key);
}

sub keys {
    my ($self) = @_;
    return sort map { $_->keys } $self->primaries;
}

sub flushall { $_->flushall for $_[0]->primaries; 'OK' }

sub take {
    my ($self, $key) = @_;
    my $o = $self->owner($key) or return ();
    return $o->take($key);
}

# envelopes($queue): the decoded envelopes of its three lists, read on the
# slot's owner
sub envelopes {
    my ($self, $queue) = @_;
    my @e;
    for my $p (qw(high medium low)) {
        push @e, map { WebhookTest::json_decode($_) // { raw => $_ } }
            $self->lrange("$queue:queue:$p");
    }
    return @e;
}

# wait_ok(timeout => T): every running node says cluster_state:ok and
# agrees on the owner of every slot range
sub wait_ok {
    my ($self, %o) = @_;
    return WebhookTest::wait_until(sub {
        for my $n (grep { $_->running } $self->nodes) {
            my $info = $n->cli({ timeout => 3 }, 'CLUSTER', 'INFO') // return 0;
            return 0 unless $info =~ /cluster_state:ok/;
            return 0 unless $info =~ /cluster_slots_assigned:16384/ && $info =~ /cluster_slots_ok:16384/;
        }
        return 1;
    }, timeout => $o{timeout} // 20, interval => 0.1);
}

# migrate_slot($slot, $to, duration => 1.5, batch => 0, on_start => sub,
# on_keys => sub): moves a slot to primary $to the way `redis-cli --cluster
# reshard` does (SETSLOT IMPORTING on the target, MIGRATING on the source,
# GETKEYSINSLOT + MIGRATE ... KEYS in small steps, SETSLOT NODE on every
# primary, target and source first), spreading the steps over about
# `duration` seconds so that traffic meets the migration.  Returns
# { keys => moved, steps => n, seconds => t, from => addr, to => addr }.
sub migrate_slot {
    my ($self, $slot, $to, %o) = @_;
    my $from = $self->owner($slot) or die "slot $slot has no owner\n";
    die "slot $slot is already on " . $to->addr . "\n" if $from->addr eq $to->addr;
    my $from_id = $self->node_id($from);
    my $to_id = $self->node_id($to);
    my $t0 = time;
    my $chk = sub { my ($what, $v) = @_; die "$what: " . ($v // 'failed') . "\n" unless ($v // '') eq 'OK' };
    $chk->('SETSLOT IMPORTING', $to->cli('CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id));
    $chk->('SETSLOT MIGRATING', $from->cli('CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id));
    $o{on_start}->() if $o{on_start};
    my $count = $from->cli('CLUSTER', 'COUNTKEYSINSLOT', $slot) // 0;
    my $duration = $o{duration} // 1.5;
    my $steps_wanted = 15;
    my $batch = $o{batch} || (int($count / $steps_wanted) + 1);
    my $pause = $duration / $steps_wanted;
    my ($moved, $steps) = (0, 0);
    while (1) {
        my $ks = $from->cli('CLUSTER', 'GETKEYSINSLOT', $slot, $batch) // '';
        my @k = grep { length } split /\n/, $ks;
        last unless @k;
        my $r = $from->cli({ timeout => 10 }, 'MIGRATE', $to->{bind}, $to->port, '', 0, 5000, 'KEYS', @k);
        die "MIGRATE of " . scalar(@k) . " keys failed: " . ($r // 'no answer') . "\n"
            unless defined $r && $r =~ /^(OK|NOKEY)$/;
        $moved += @k;
        $steps++;
        $o{on_keys}->($moved) if $o{on_keys};
        sleep $pause if time - $t0 < $duration;
    }
    # at least `duration`, even for a slot with few keys
    sleep($duration - (time - $t0)) if time - $t0 < $duration;
    $chk->('SETSLOT NODE (target)', $to->cli('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id));
    $chk->('SETSLOT NODE (source)', $from->cli('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id));
    for my $p (grep { $_->addr ne $from->addr && $_->addr ne $to->addr } $self->primaries) {
        $p->cli('CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id);
    }
    my $secs = time - $t0;
    WebhookTest::wait_until(sub {
        for my $n (grep { $_->running } $self->nodes) {
            my $own = $self->owner($slot, $n);
            return 0 unless $own && $own->addr eq $to->addr;
        }
        return 1;
    }, timeout => 10);
    return { keys => $moved, steps => $steps, seconds => $secs, from => $from->addr, to => $to->addr };
}

# kill_primary($node, on_kill => sub, timeout => 30): SIGKILL; runs
# on_kill (the primary is down, no replica promoted yet: a test looks at
# that state there); waits until one of its replicas is a
# primary with its slots and the cluster is ok again.  Returns
# { promoted => node, seconds => time from the kill to cluster_state:ok }
sub kill_primary {
    my ($self, $node, %o) = @_;
    my $id = $self->node_id($node);
    my @mine = map { $_->{node} } grep { $_->{master} eq $id && $_->{node} } @{ $self->topology };
    die $node->addr . " has no replica\n" unless @mine;
    my $t0 = time;
    $node->stop(signal => 'KILL');
    $o{on_kill}->() if $o{on_kill};
    my $promoted = WebhookTest::wait_until(sub {
        for my $r (@mine) {
            my $role = $r->cli({ timeout => 2 }, 'ROLE') // next;
            return $r if $role =~ /^master/;
        }
        return undef;
    }, timeout => $o{timeout} // 30, interval => 0.1);
    die "no replica of " . $node->addr . " was promoted\n" unless $promoted;
    $self->wait_ok(timeout => $o{timeout} // 30) or die "cluster not ok after the failover\n";
    return { promoted => $promoted, seconds => time - $t0 };
}

# restart_node($node): starts a killed node again (same port, same
# nodes.conf); it rejoins as a replica of whoever took its slots.  Waits
# until its link to the primary is up and the sync is done.
sub restart_node {
    my ($self, $node, %o) = @_;
    my $t0 = time;
    $node->start;
    my $ok = WebhookTest::wait_until(sub {
        my $info = $node->cli({ timeout => 2 }, 'INFO', 'replication') // return 0;
        return $info =~ /role:slave/ && $info =~ /master_link_status:up/
            && $info !~ /master_sync_in_progress:1/;
    }, timeout => $o{timeout} // 30, interval => 0.1);
    die $node->addr . " did not come back as a synced replica\n" unless $ok;
    $self->wait_ok(timeout => 20);
    return time - $t0;
}

# node_info(): "addr role slots" lines, for diagnostics
sub describe {
    my ($self) = @_;
    return join "\n", map {
        sprintf '%s %s %s', $_->{addr}, $_->{flags},
            join(',', map { "$_->[0]-$_->[1]" } @{ $_->{slots} })
    } @{ $self->topology };
}

1;

# ---------------------------------------------------------------- as one Redis

# WebhookCluster::AsRedis: what WebhookTest::start_redis() returns when
# WEBHOOK_TEST_CLUSTER is set: a 3+3 cluster behind the interface of one
# WebhookTest::Redis (port, addr, cli, lrange, llen, keys, take, flushall,
# stop, start, restart, sleep_in_background, log), so that a test written
# for one Redis (t/receive-basic.t, t/status-basic.t) runs against a cluster.
# port() is the first node's: WebhookTest::Nginx replaces a
# "webhook_redis 127.0.0.1:<that port>;" line by webhook_redis_cluster
# with every node.  A key command goes to the key's owner (redis-cli -c).
package WebhookCluster::AsRedis;

use strict;
use warnings;
use Time::HiRes qw(time sleep);

sub new {
    my ($class) = @_;
    WebhookCluster::skip_without_cluster();
    my $c = WebhookCluster->new;
    my $self = bless { c => $c, seed => ($c->nodes)[0] }, $class;
    $WebhookTest::CLUSTER_REDIS{ $self->port } = $ENV{WEBHOOK_CLUSTER_DRYRUN}
        ? 'webhook_redis ' . $c->owner('{webhook}')->addr
        : 'webhook_redis_cluster ' . $c->seeds;
    return $self;
}

sub cluster { $_[0]{c} }
sub port { $_[0]{seed}->port }
sub addr { $_[0]{seed}->addr }
sub dir  { $_[0]{seed}->dir }
sub running { $_[0]{seed}->running }

sub cli {
    my ($self, @args) = @_;
    my %o = ref $args[0] eq 'HASH' ? %{ shift @args } : ();
    die "WebhookCluster::AsRedis: no database but 0 in a cluster\n" if $o{db};
    my $node = $self->{c}->_any;
    my ($rc, $out) = WebhookTest::run_cmd([$REDIS_CLI, '-c', '-h', $node->{bind},
        '-p', $node->port, @args], timeout => $o{timeout} // 20);
    return undef if $rc != 0;
    $out =~ s/^\s+|\s+\z//g;
    return $out;
}

sub lrange   { my ($s, $k) = @_; $s->{c}->lrange($k) }
sub llen     { my ($s, $k) = @_; $s->{c}->llen($k) }
sub keys     { $_[0]{c}->keys }
sub take     { my ($s, $k) = @_; $s->{c}->take($k) }
sub flushall { $_[0]{c}->flushall }
sub log      { join '', map { $_->log } $_[0]{c}->nodes }

# stop(): every node (Redis down means the whole cluster down); start():
# every node again, from its nodes.conf, until cluster_state:ok
sub stop {
    my ($self, %o) = @_;
    $_->stop(%o) for grep { $_->running } $self->{c}->nodes;
}

sub start {
    my ($self) = @_;
    $_->start for grep { !$_->running } $self->{c}->nodes;
    $self->{c}->wait_ok(timeout => 30) or die "the cluster is not ok after its restart\n";
    return $self;
}

sub restart { my $s = shift; $s->stop; $s->start }

# DEBUG SLEEP on every primary, from one child; returns its pid
sub sleep_in_background {
    my ($self, $secs, $settle) = @_;
    my @p = $self->{c}->primaries;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        my @kids;
        for my $n (@p) {
            my $k = fork;
            if (defined $k && !$k) {
                open STDOUT, '>', '/dev/null';
                open STDERR, '>&', \*STDOUT;
                exec($REDIS_CLI, '-h', $n->{bind}, '-p', $n->port, 'DEBUG', 'SLEEP', $secs)
                    or POSIX::_exit(127);
            }
            push @kids, $k if $k;
        }
        waitpid($_, 0) for @kids;
        POSIX::_exit(0);
    }
    sleep($settle // 0.3);
    return $pid;
}

1;
