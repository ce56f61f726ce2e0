#!/usr/bin/perl
# The status location (webhook_status): JSON and Prometheus text, queue
# depths / dead letters / oldest age read live from Redis, request and event
# counters in shared memory (exact across 2 workers, counted before the
# answer is sent, kept across reloads), Redis down and back, several queues,
# access restrictions, methods, HEAD, format negotiation, promtool.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp ();
use IO::Socket::INET;
use POSIX qw(floor strftime);
use Time::HiRes qw(time sleep);
use WebhookTest;

require_module();

my $TOKEN = 'tok-status-4c1e9a7b2d';
my $VERSION = '0.1.0';
my @PRIOS = qw(high medium low);
my @RESULTS = qw(queued duplicate spooled test unauthorized invalid unsupported_media_type
    too_large method_not_allowed unavailable overloaded rate_limited probe error);
my @LE = qw(0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 +Inf);
my $PROM_CT = 'text/plain; version=0.0.4; charset=utf-8';
my $Q = '{webhook}';
# WEBHOOK_TEST_CLUSTER (t/cluster-suites.t): the same suite against a
# Redis Cluster; where the status differs by design, the checks say so
my $CLUSTER = $ENV{WEBHOOK_TEST_CLUSTER} ? 1 : 0;

my $redis = start_redis();

# reuseport: the kernel spreads the connections over both workers, so that
# the "exact across workers" checks really involve both of them
my $ng = start_nginx(
    workers => 2,
    files => {
        'webhook.tokens' => "$TOKEN\n",
        'extra.conf' => "# filled in by the reload test\n",
    },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_connect_timeout 1s;\n"
        . "webhook_redis_timeout 3s;\n"
        . "log_format pids '\$pid \$status \$request_uri';\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%% reuseport;\n        server_name localhost;\n"
        . "        access_log %%PREFIX%%/pids.log pids;\n"
        . receive_location(path => '/r', max_body => '4k', extra => 'webhook_batch_max 5;')
        . receive_location(path => '/strict', max_body => '4k', schema => 'event')
        . receive_location(path => '/capped', extra => 'webhook_max_depth 1;')
        . receive_location(path => '/denied', extra => 'deny all;')
        . "        include %%PREFIX%%/extra.conf;\n"
        . "        location = /status { webhook_status; }\n"
        . "        location = /status-local { allow 127.0.0.1; deny all; webhook_status; }\n"
        . "        location = /status-denied { deny all; webhook_status; }\n"
        . "        location / { return 404; }\n"
        . "    }\n",
);

# ================================================================ helpers


# a JSON number (not a string, not null, not a boolean)
sub is_json_number {
    my ($v) = @_;
    return 0 unless defined $v && !ref $v;
    return json_scalar($v) =~ /^-?\d+(\.\d+)?([eE][-+]?\d+)?\z/ ? 1 : 0;
}

sub is_json_bool { JSON::PP::is_bool($_[0]) }

# get_status($ng, path => '/status', accept => ..., query => ...)
sub get_status {
    my ($n, %o) = @_;
    my $path = ($o{path} // '/status') . (defined $o{query} ? "?$o{query}" : '');
    my %h;
    $h{Accept} = $o{accept} if defined $o{accept};
    return $n->request($o{method} // 'GET', $path, \%h, undef, timeout => $o{timeout} // 30);
}

# status_json($ng, $name): GET /status, checks 200 + JSON, returns the object
# cluster_ready($n): with a cluster, each worker reads the slot map after
# it starts, and its status says "up": false until then (a single Redis
# makes the status wait for its handshake instead); a "fresh" check waits
# for a few answers in a row that say "up"
sub cluster_ready {
    my ($n) = @_;
    return 1 unless $CLUSTER;
    my $ups = 0;
    return wait_until(sub {
        my $res = get_status($n);
        $ups = ref $res->{json} eq 'HASH' && $res->{json}{redis}{up} ? $ups + 1 : 0;
        $ups >= 4;
    }, timeout => 20, interval => 0.05);
}

sub status_json {
    my ($n, $name, %o) = @_;
    my $res = get_status($n, %o);
    my $ok = $res->{status} == 200
        && ($res->{headers}{'content-type'} // '') =~ m{^application/json\b}
        && ref $res->{json} eq 'HASH';
    unless ($ok) {
        fail("$name: GET /status answers 200 with a JSON object");
        diag dump_res($res);
        return undef;
    }
    return $res->{json};
}

# status_prom($ng, $name): GET /status?format=prometheus, returns (parsed, body)
sub status_prom {
    my ($n, $name, %o) = @_;
    my $res = get_status($n, query => 'format=prometheus', %o);
    unless ($res->{status} == 200 && ($res->{headers}{'content-type'} // '') eq $PROM_CT) {
        fail("$name: GET /status?format=prometheus answers 200 $PROM_CT");
        diag dump_res($res);
        return (undef, $res->{body});
    }
    my $p = parse_prom($res->{body});
    is_deeply($p->{bad}, [], "$name: every Prometheus line is well-formed")
        or diag $res->{body};
    return ($p, $res->{body});
}

# flat($json): every counter of a status object, as "path" => value
sub flat {
    my ($j) = @_;
    my %f;
    return \%f unless ref $j eq 'HASH';
    # with a cluster, reconnects counts every node's connections (a worker
    # has one per primary, and remakes them as nodes go and come): not
    # compared exactly
    $f{reconnects} = $j->{redis}{reconnects} unless $CLUSTER;
    for my $q (sort keys %{ $j->{queues} || {} }) {
        my $qo = $j->{queues}{$q};
        $f{"$q/requests/$_"} = $qo->{requests}{$_} for keys %{ $qo->{requests} || {} };
        $f{"$q/events/$_"} = $qo->{$_}{events} for grep { ref $qo->{$_} eq 'HASH' && exists $qo->{$_}{events} } @PRIOS;
    }
    $f{"requests/$_"} = $j->{requests}{$_} for keys %{ $j->{requests} || {} };
    $f{"events/$_"} = $j->{events}{$_} for keys %{ $j->{events} || {} };
    return \%f;
}

# zero counters for the queues
sub zero_flat {
    my (@queues) = @_;
    my %f = $CLUSTER ? () : (reconnects => 0);    # see flat()
    for my $q (@queues) {
        $f{"$q/requests/$_"} = 0 for @RESULTS;
        $f{"$q/events/$_"} = 0 for @PRIOS;
    }
    $f{"requests/$_"} = 0 for @RESULTS;
    $f{"events/$_"} = 0 for @PRIOS;
    return \%f;
}

# count($exp, $queue, $result, {prio => n}): add to expected counters
sub count {
    my ($exp, $q, $result, $events) = @_;
    if (defined $result) {
        $exp->{"$q/requests/$result"}++;
        $exp->{"requests/$result"}++;
    }
    for my $p (keys %{ $events || {} }) {
        $exp->{"$q/events/$p"} += $events->{$p};
        $exp->{"events/$p"} += $events->{$p};
    }
}

# check_shape($j, [queues], $name): the exact structure and types
sub check_shape {
    my ($j, $queues, $name, %o) = @_;
    my $up = $o{up} // 1;
    return fail("$name: no status object") unless ref $j eq 'HASH';
    my @why;
    my $keys = sub { join ',', sort keys %{ ref $_[0] eq 'HASH' ? $_[0] : {} } };
    push @why, 'top-level keys ' . $keys->($j) unless $keys->($j) eq 'events,queues,redis,requests,spool,version';
    push @why, "version " . json_scalar($j->{version}) unless ($j->{version} // '') eq $VERSION && !is_json_number($j->{version});
    my $rd = $j->{redis};
    if ($ENV{WEBHOOK_TEST_CLUSTER}) {
        # against a cluster (t/cluster-suites.t): "cluster" with its nodes;
        # "address" is no single node's
        push @why, 'redis keys ' . $keys->($rd) unless $keys->($rd) =~ /^(address,)?cluster,reconnects,up\z/;
        push @why, 'redis.cluster.nodes is not a list of nodes'
            unless ref $rd->{cluster} eq 'HASH' && ref $rd->{cluster}{nodes} eq 'ARRAY' && @{ $rd->{cluster}{nodes} };
    } else {
        push @why, 'redis keys ' . $keys->($rd) unless $keys->($rd) eq 'address,reconnects,up';
    }
    push @why, 'redis.up is not a JSON boolean' unless is_json_bool($rd->{up});
    push @why, 'redis.up is ' . ($rd->{up} ? 'true' : 'false') . ', want ' . ($up ? 'true' : 'false')
        if is_json_bool($rd->{up}) && !!$rd->{up} != !!$up;
    push @why, 'redis.address ' . json_scalar($rd->{address}) unless ($rd->{address} // '') eq '127.0.0.1:' . $redis->port
        || $ENV{WEBHOOK_TEST_CLUSTER};
    push @why, 'redis.reconnects is not a number' unless is_json_number($rd->{reconnects});
    push @why, 'queues keys ' . $keys->($j->{queues}) unless $keys->($j->{queues}) eq join(',', sort @$queues);
    for my $q (@$queues) {
        my $qo = $j->{queues}{$q};
        push @why, "queue $q keys " . $keys->($qo) unless $keys->($qo) eq
            ($CLUSTER ? 'high,in_flight,low,medium,node,reconcilers,rejected,replays,requests,spool,warnings'
                      : 'high,in_flight,low,medium,reconcilers,rejected,replays,requests,spool,warnings');
        # the consumers' events in flight: read from Redis with the depths
        my $in = ref $qo eq 'HASH' ? $qo->{in_flight} : undef;
        if ($up) {
            push @why, "$q.in_flight keys " . $keys->($in)
                unless $keys->($in) eq 'events,oldest_age_seconds,reclaimed';
            push @why, "$q.in_flight has non-numbers"
                if grep { !is_json_number($in->{$_}) } keys %{ $in || {} };
        } else {
            push @why, "$q.in_flight is " . json_scalar($in) . ', not null'
                unless exists $qo->{in_flight} && !defined $in;
        }
        push @why, "queue $q node " . json_scalar($qo->{node}) if $CLUSTER && ($qo->{node} // '') !~ /^127\.0\.0\.1:\d+\z/;
        push @why, "$q.warnings is not a number" unless is_json_number($qo->{warnings});
        push @why, "$q.rejected is " . json_scalar($qo->{rejected}) . ($up ? ', not a number' : ', not null')
            unless $up ? is_json_number($qo->{rejected}) : exists $qo->{rejected} && !defined $qo->{rejected};
        for my $p (@PRIOS) {
            my $po = ref $qo eq 'HASH' ? $qo->{$p} : undef;
            push @why, "$q.$p keys " . $keys->($po) unless $keys->($po) eq 'dead,depth,events,oldest_age_seconds';
            next unless ref $po eq 'HASH';
            push @why, "$q.$p.events is not a number" unless is_json_number($po->{events});
            for my $f (qw(depth dead oldest_age_seconds)) {
                if ($up) {
                    push @why, "$q.$p.$f is " . json_scalar($po->{$f}) . ', not a number'
                        unless is_json_number($po->{$f});
                } else {
                    push @why, "$q.$p.$f is " . json_scalar($po->{$f}) . ', not null'
                        unless exists $po->{$f} && !defined $po->{$f};
                }
            }
            push @why, "$q.$p depth/dead not integers"
                if $up && !(json_scalar($po->{depth} // '') =~ /^\d+\z/ && json_scalar($po->{dead} // '') =~ /^\d+\z/);
        }
        my $rq = ref $qo eq 'HASH' ? $qo->{requests} : undef;
        push @why, "$q.requests keys " . $keys->($rq) unless $keys->($rq) eq join(',', sort @RESULTS);
        push @why, "$q.requests has non-numbers" if grep { !is_json_number($rq->{$_}) } keys %{ $rq || {} };
    }
    push @why, 'requests keys ' . $keys->($j->{requests}) unless $keys->($j->{requests}) eq join(',', sort @RESULTS);
    push @why, 'requests has non-numbers' if grep { !is_json_number($j->{requests}{$_}) } keys %{ $j->{requests} || {} };
    push @why, 'events keys ' . $keys->($j->{events}) unless $keys->($j->{events}) eq 'high,low,medium';
    push @why, 'events has non-numbers' if grep { !is_json_number($j->{events}{$_}) } keys %{ $j->{events} || {} };
    ok(!@why, "$name: JSON shape and types") or diag join("\n", @why) . "\n" . json_encode($j);
}

# ---------------------------------------------------------------- Prometheus

# parse_prom($text): { series => {key => value}, type => {name => type},
#   help => {name => text}, bad => [lines], order => [keys] }
# key: name{l1="v1",l2="v2"} with the labels sorted, or name alone.
sub parse_prom {
    my ($text) = @_;
    my %p = (series => {}, type => {}, help => {}, bad => [], labels => {});
    push @{ $p{bad} }, 'body does not end with a newline' unless $text =~ /\n\z/;
    for my $line (split /\n/, $text) {
        if ($line =~ /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/) {
            $p{lc $1}{$2} = $3;
            next;
        }
        if ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*(?:"[^"]*"[^}]*)*)\})? (\S+)$/) {
            my ($name, $labels, $v) = ($1, $2, $3);
            my %l;
            if (defined $labels) {
                my $rebuilt = '';
                while ($labels =~ /\G([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/gc) {
                    $l{$1} = $2;
                    $rebuilt .= "$1=\"$2\"$3";
                }
                if ($rebuilt ne $labels) {
                    push @{ $p{bad} }, "bad labels: $line";
                    next;
                }
            }
            unless ($v =~ /^[-+]?(\d+(\.\d+)?|\.\d+)([eE][-+]?\d+)?\z/ || $v =~ /^[-+]Inf\z/) {
                push @{ $p{bad} }, "bad value: $line";
            }
            my $key = series_key($name, %l);
            push @{ $p{bad} }, "duplicate series: $line" if exists $p{series}{$key};
            $p{series}{$key} = $v;
            push @{ $p{labels}{$name} }, \%l;
            next;
        }
        push @{ $p{bad} }, "unparsed: $line";
    }
    return \%p;
}

sub series_key {
    my ($name, %l) = @_;
    return $name unless %l;
    return $name . '{' . join(',', map { "$_=\"$l{$_}\"" } sort keys %l) . '}';
}

sub prom_val {
    my ($p, $name, %l) = @_;
    return undef unless $p;
    return $p->{series}{ series_key($name, %l) };
}

# label sets of a metric, as sorted strings
sub prom_label_sets {
    my ($p, $name) = @_;
    return [sort map { my $l = $_; join ',', map { "$_=$l->{$_}" } sort keys %$l } @{ $p->{labels}{$name} || [] }];
}

sub expected_label_sets {
    my ($queues, $key, $values) = @_;
    return [sort map { my $q = $_; map { join ',', sort("$key=$_", "queue=$q") } @$values } @$queues];
}

# check_prom($p, $j, [queues], $name, up => 1): the exposition agrees with
# the JSON status taken just before (no traffic in between)
sub check_prom {
    my ($p, $j, $queues, $name, %o) = @_;
    my $up = $o{up} // 1;
    return fail("$name: no exposition") unless $p;
    my %types = (
        nginx_webhook_info => 'gauge',
        nginx_webhook_redis_up => 'gauge',
        nginx_webhook_redis_reconnects_total => 'counter',
        nginx_webhook_requests_total => 'counter',
        nginx_webhook_events_total => 'counter',
        nginx_webhook_enqueue_duration_seconds => 'histogram',
        ($up ? (
            nginx_webhook_queue_depth => 'gauge',
            nginx_webhook_dead_letter_depth => 'gauge',
            nginx_webhook_oldest_event_age_seconds => 'gauge',
            nginx_webhook_in_flight_events => 'gauge',
            nginx_webhook_in_flight_oldest_age_seconds => 'gauge',
            nginx_webhook_reclaimed_events_total => 'counter',
        ) : ()),
    );
    for my $m (sort keys %types) {
        is($p->{type}{$m}, $types{$m}, "$name: # TYPE $m $types{$m}");
        ok(defined $p->{help}{$m} && length $p->{help}{$m}, "$name: # HELP $m");
    }
    is(prom_val($p, 'nginx_webhook_info', version => $VERSION), 1, "$name: nginx_webhook_info{version=\"$VERSION\"} 1");
    is(prom_val($p, 'nginx_webhook_redis_up'), $up, "$name: nginx_webhook_redis_up $up");
    is(prom_val($p, 'nginx_webhook_redis_reconnects_total'), $j->{redis}{reconnects},
        "$name: nginx_webhook_redis_reconnects_total is the JSON's reconnects");

    # the label sets are exactly queue x priority / queue x result
    for my $m (qw(nginx_webhook_queue_depth nginx_webhook_dead_letter_depth nginx_webhook_oldest_event_age_seconds)) {
        if ($up) {
            is_deeply(prom_label_sets($p, $m), expected_label_sets($queues, 'priority', \@PRIOS),
                "$name: $m has one series per queue and priority");
        } else {
            is_deeply(prom_label_sets($p, $m), [], "$name: no $m series while Redis is down");
        }
    }
    is_deeply(prom_label_sets($p, 'nginx_webhook_events_total'), expected_label_sets($queues, 'priority', \@PRIOS),
        "$name: nginx_webhook_events_total has one series per queue and priority");
    is_deeply(prom_label_sets($p, 'nginx_webhook_requests_total'), expected_label_sets($queues, 'result', \@RESULTS),
        "$name: nginx_webhook_requests_total has one series per queue and result");

    # values agree with the JSON
    my @diff;
    for my $q (@$queues) {
        my $qo = $j->{queues}{$q} or next;
        for my $pr (@PRIOS) {
            my %l = (queue => $q, priority => $pr);
            my $e = prom_val($p, 'nginx_webhook_events_total', %l);
            push @diff, "events_total $q $pr: " . ($e // 'none') . " vs $qo->{$pr}{events}"
                unless defined $e && $e == $qo->{$pr}{events};
            next unless $up;
            for ([queue_depth => 'depth'], [dead_letter_depth => 'dead'], [oldest_event_age_seconds => 'oldest_age_seconds']) {
                my ($m, $f) = @$_;
                my $v = prom_val($p, "nginx_webhook_$m", %l);
                my $jv = $qo->{$pr}{$f};
                # the age is computed on each scrape: allow the time between them
                my $tol = $f eq 'oldest_age_seconds' ? 5 : 0;
                push @diff, "$m $q $pr: " . ($v // 'none') . ' vs ' . ($jv // 'null')
                    unless defined $v && defined $jv && abs($v - $jv) <= $tol && ($tol || $v == $jv);
            }
        }
        for ([in_flight_events => 'events'], [reclaimed_events_total => 'reclaimed']) {
            next unless $up;
            my ($m, $f) = @$_;
            my $v = prom_val($p, "nginx_webhook_$m", queue => $q);
            push @diff, "$m $q: " . ($v // 'none') . ' vs ' . ($qo->{in_flight}{$f} // 'null')
                unless defined $v && $v == ($qo->{in_flight}{$f} // -1);
        }
        for my $r (@RESULTS) {
            my $v = prom_val($p, 'nginx_webhook_requests_total', queue => $q, result => $r);
            push @diff, "requests_total $q $r: " . ($v // 'none') . " vs $qo->{requests}{$r}"
                unless defined $v && $v == $qo->{requests}{$r};
        }
    }
    is_deeply(\@diff, [], "$name: Prometheus values are the JSON's") or diag join "\n", @diff;

    # histogram
    is_deeply(prom_label_sets($p, 'nginx_webhook_enqueue_duration_seconds_bucket'),
        [sort map { "le=$_" } @LE], "$name: histogram buckets le=0.0005 .. 2.5, +Inf");
    my @b = map { prom_val($p, 'nginx_webhook_enqueue_duration_seconds_bucket', le => $_) } @LE;
    my $count = prom_val($p, 'nginx_webhook_enqueue_duration_seconds_count');
    my $sum = prom_val($p, 'nginx_webhook_enqueue_duration_seconds_sum');
    ok(defined $count && defined $sum, "$name: histogram _sum and _count");
    my @dec = grep { defined $b[$_] && defined $b[$_ - 1] && $b[$_] < $b[$_ - 1] } 1 .. $#b;
    ok(!(grep { !defined } @b) && !@dec, "$name: buckets are cumulative") or diag "buckets: @{[ map { $_ // 'none' } @b ]}";
    is($b[-1], $count, "$name: le=\"+Inf\" bucket equals _count");
    # the histogram is global: it also holds the requests of queues that a
    # reload removed since (acked_extra)
    my $acked = ($o{acked_extra} // 0) + $j->{requests}{queued} + $j->{requests}{duplicate};
    is($count, $acked, "$name: histogram _count ($count) = queued + duplicate answers ($acked)");
    if (defined $count && defined $sum) {
        ok($count > 0 ? $sum > 0 : $sum == 0, "$name: _sum ($sum) fits _count ($count)");
        ok($sum <= $count * 60, "$name: _sum is in seconds (< 60 s per request)");
    }
    ok(!(grep { /nan/i } values %{ $p->{series} }), "$name: no NaN value");
    return $count;
}

# ---------------------------------------------------------------- requests

sub ev {
    my ($id, $prio, %x) = @_;
    return json_encode({ event_id => $id, model => 'sale.order', record_id => $id, event => 'write',
        (defined $prio ? (priority => $prio) : ()), %x });
}

sub batch { json_encode({ batch => JSON::PP::true, events => [map { json_decode(ev(@$_)) } @_] }) }

# post($ng, $path, $body, header => value...): POST with the token and JSON
# content type unless overridden (undef removes a header)
sub post {
    my ($n, $path, $body, %h) = @_;
    my %headers = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN", %h);
    return $n->request('POST', $path, \%headers, $body);
}

sub head_req {
    my ($n, $path, %o) = @_;
    return $n->raw(method => 'HEAD', drain => 1, pieces => [
        "HEAD $path HTTP/1.1\r\nHost: localhost\r\n"
        . (defined $o{accept} ? "Accept: $o{accept}\r\n" : '')
        . "Connection: close\r\n\r\n"]);
}

# check_answer($res, $want, $name): $want is [status, 'status-field'] for
# 200 answers or [status, 'error-code'(s)] for JSON errors
sub check_answer {
    my ($res, $want, $name) = @_;
    my ($status, $what) = @$want;
    if ($status == 200 && defined $what) {
        my $ok = is($res->{status}, 200, "$name: 200")
            && is(ref $res->{json} eq 'HASH' ? $res->{json}{status} : undef, $what, "$name: status \"$what\"");
        diag dump_res($res) unless $ok;
        return;
    }
    if (defined $what) {
        is_json_error($res, $status, $what, "$name: $status " . (ref $what ? "@$what" : $what));
        return;
    }
    is($res->{status}, $status, "$name: $status") or diag dump_res($res);
}

# step($n, $exp, $queue, $name, $send, [status, what], $result, {events}):
# sends one request, checks its answer, then scrapes at once: the counters
# must already include it
sub step {
    my ($n, $exp, $q, $name, $send, $want, $result, $events) = @_;
    my $res = $send->();
    check_answer($res, $want, $name);
    count($exp, $q, $result, $events);
    my $j = status_json($n, "$name: scrape");
    is_deeply(flat($j), $exp, "$name: counted as $result" . ($events ? ' ' . json_encode($events) : '')
        . ' in the scrape right after the answer')
        or diag "got:\n" . json_encode(flat($j)) . "\nwant:\n" . json_encode($exp);
    return $res;
}

sub subtest_fresh {
    my ($name, $code) = @_;
    $redis->flushall;
    subtest $name, $code;
}

sub utc_ms {
    my ($t) = @_;
    my $ms = floor($t * 1000);
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime(int($ms / 1000))) . sprintf('.%03dZ', $ms % 1000);
}

sub envelope {
    my ($id, $t, $prio) = @_;
    return json_encode({ id => sprintf('%032x', $id), received_at => utc_ms($t), priority => $prio,
        event_id => $id, model => 'sale.order', record_id => $id, event => 'write',
        payload => { event_id => $id, model => 'sale.order', record_id => $id, event => 'write' } });
}

my $EXP = zero_flat($Q);    # expected counters of $ng, updated as we go
my $ACKED_GONE = 0;         # enqueue acknowledgements of queues removed by a reload

# ================================================================ tests

subtest_fresh 'fresh nginx: shape, zero counters, empty queues' => sub {
    my $res = get_status($ng);
    is($res->{status}, 200, 'GET /status: 200') or diag dump_res($res);
    is($res->{headers}{'content-type'}, 'application/json', 'Content-Type application/json');
    my $j = $res->{json};
    check_shape($j, [$Q], 'fresh');
    is_deeply(flat($j), $EXP, 'all counters 0, reconnects 0') or diag json_encode($j);
    for my $p (@PRIOS) {
        is_deeply([@{ $j->{queues}{$Q}{$p} }{qw(depth dead oldest_age_seconds)}], [0, 0, 0],
            "$p: depth 0, dead 0, oldest_age_seconds 0");
    }
    my ($pr, $body) = status_prom($ng, 'fresh');
    check_prom($pr, $j, [$Q], 'fresh');
    promtool_ok($body, 'fresh, Redis up');
};

subtest 'methods: GET and HEAD only' => sub {
    for my $m (qw(POST PUT DELETE PATCH OPTIONS)) {
        my $res = $ng->request($m, '/status', { 'Content-Type' => 'application/json' },
            $m =~ /^(POST|PUT|PATCH)\z/ ? '{"x":1}' : undef);
        is($res->{status}, 405, "$m /status: 405") or diag dump_res($res);
    }
    my $res = head_req($ng, '/status');
    is($res->{status}, 200, 'HEAD /status: 200') or diag dump_res($res);
    is(($res->{body} // '') . ($res->{after} // ''), '', 'HEAD /status: no body');
    like($res->{headers}{'content-type'} // '', qr{^application/json}, 'HEAD /status: Content-Type application/json');
    $res = head_req($ng, '/status?format=prometheus');
    is($res->{status}, 200, 'HEAD /status?format=prometheus: 200') or diag dump_res($res);
    is(($res->{body} // '') . ($res->{after} // ''), '', 'HEAD /status?format=prometheus: no body');
    is($res->{headers}{'content-type'}, $PROM_CT, 'HEAD /status?format=prometheus: Prometheus Content-Type');
    my $j = status_json($ng, 'after the methods');
    is_deeply(flat($j), $EXP, 'requests to the status location are not counted as receive answers')
        or diag json_encode($j);
};

subtest 'format negotiation' => sub {
    my @cases = (
        ['no Accept', {}, 0],
        ['Accept: application/json', { accept => 'application/json' }, 0],
        ['Accept: */*', { accept => '*/*' }, 0],
        ['Accept: text/plain', { accept => 'text/plain' }, 1],
        ['Accept: TEXT/PLAIN', { accept => 'TEXT/PLAIN' }, 1],
        ['Accept: text/plain;version=0.0.4', { accept => 'text/plain;version=0.0.4' }, 1],
        ["Prometheus's own Accept", { accept => 'application/openmetrics-text;version=1.0.0,'
            . 'application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' }, 1],
        ['Accept: text/plain, application/json', { accept => 'text/plain, application/json' }, 0],
        ['Accept: application/json, text/plain', { accept => 'application/json, text/plain' }, 0],
        ['?format=prometheus', { query => 'format=prometheus' }, 1],
        ['?format=prometheus, Accept: application/json', { query => 'format=prometheus', accept => 'application/json' }, 1],
        ['?a=1&format=prometheus', { query => 'a=1&format=prometheus' }, 1],
        ['?format=json', { query => 'format=json' }, 0],
    );
    for my $c (@cases) {
        my ($name, $o, $prom) = @$c;
        my $res = get_status($ng, %$o);
        is($res->{status}, 200, "$name: 200") or diag dump_res($res);
        if ($prom) {
            is($res->{headers}{'content-type'}, $PROM_CT, "$name: Prometheus text");
            like($res->{body} // '', qr/^# HELP nginx_webhook_/m, "$name: body is the exposition");
        } else {
            is($res->{headers}{'content-type'}, 'application/json', "$name: JSON");
            is(ref $res->{json}, 'HASH', "$name: body is a JSON object");
        }
    }
};

subtest 'keep-alive: several scrapes on one connection' => sub {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp', Timeout => 10);
    ok($sock, 'connected') or return;
    my $buf = '';
    for my $i (1 .. 4) {
        my $res = WebhookTest::http_request(port => $ng->port, sock => $sock, keepalive => 1, bufref => \$buf,
            method => 'GET', path => ($i % 2 ? '/status' : '/status?format=prometheus'));
        is($res->{status}, 200, "scrape $i on the same connection: 200") or diag dump_res($res);
        ok($i % 2 ? ref $res->{json} eq 'HASH' : ($res->{body} // '') =~ /nginx_webhook_redis_up 1\n/,
            "scrape $i: complete body");
    }
    close $sock;
};

subtest 'access restrictions the nginx way' => sub {
    my $res = get_status($ng, path => '/status-local');
    is($res->{status}, 200, 'allow 127.0.0.1; deny all: 200 from 127.0.0.1') or diag dump_res($res);
    is(ref $res->{json}, 'HASH', 'allow 127.0.0.1: JSON body');
    $res = get_status($ng, path => '/status-local', query => 'format=prometheus');
    is($res->{status}, 200, 'allow 127.0.0.1: Prometheus too');
    $res = get_status($ng, path => '/status-denied');
    is($res->{status}, 403, 'deny all: 403') or diag dump_res($res);
    unlike($res->{body} // '', qr/"queues"|nginx_webhook_/, 'deny all: no status in the body');
    $res = get_status($ng, path => '/status-denied', query => 'format=prometheus');
    is($res->{status}, 403, 'deny all, format=prometheus: 403');
    $res = head_req($ng, '/status-denied');
    is($res->{status}, 403, 'deny all, HEAD: 403');
    my $j = status_json($ng, 'after the access checks');
    is_deeply(flat($j), $EXP, 'refused status requests are not counted') or diag json_encode($j);
};

subtest_fresh 'every result, counted at once and exactly over both workers' => sub {
    my $n = $ng;
    my $big = ev(9999, 'high', note => 'x' x 5000);
    my @steps = (
        # name, send, [status, what], result, {events}
        ['queued high', sub { post($n, '/r', ev(1001, 'high')) }, [200, 'queued'], 'queued', { high => 1 }],
        ['queued medium', sub { post($n, '/r', ev(1002, 'medium')) }, [200, 'queued'], 'queued', { medium => 1 }],
        ['queued low', sub { post($n, '/r', ev(1003, 'low')) }, [200, 'queued'], 'queued', { low => 1 }],
        ['queued, default priority (medium)', sub { post($n, '/r', ev(1004)) }, [200, 'queued'], 'queued', { medium => 1 }],
        ['queued high again', sub { post($n, '/r', ev(1005, 'high')) }, [200, 'queued'], 'queued', { high => 1 }],
        ['duplicate of 1001', sub { post($n, '/r', ev(1001, 'high')) }, [200, 'duplicate'], 'duplicate'],
        ['duplicate of 1002', sub { post($n, '/r', ev(1002, 'medium')) }, [200, 'duplicate'], 'duplicate'],
        ['duplicate of 1003', sub { post($n, '/r', ev(1003, 'low')) }, [200, 'duplicate'], 'duplicate'],
        ['batch of 3 new', sub { post($n, '/r', batch([2001, 'high'], [2002, 'low'], [2003, 'low'])) },
            [200, 'queued'], 'queued', { high => 1, low => 2 }],
        ['batch of 2 duplicates', sub { post($n, '/r', batch([2001, 'high'], [2002, 'low'])) },
            [200, 'duplicate'], 'duplicate'],
        ['batch, 1 duplicate + 2 new', sub { post($n, '/r', batch([2003, 'low'], [2004, 'medium'], [2005, 'high'])) },
            [200, 'queued'], 'queued', { medium => 1, high => 1 }],
        ['batch of 5 (the maximum)', sub { post($n, '/r', batch(map { [3000 + $_, $PRIOS[$_ % 3]] } 0 .. 4)) },
            [200, 'queued'], 'queued', { high => 2, medium => 2, low => 1 }],
        ['test connection', sub { post($n, '/r', '{"test": true}') }, [200, 'ok'], 'test'],
        ["Odoo's test connection", sub { post($n, '/r', sample_text('odoo-test-connection.json')) }, [200, 'ok'], 'test'],
        ['no Authorization', sub { post($n, '/r', ev(4001, 'high'), Authorization => undef) },
            [401, 'unauthorized'], 'unauthorized'],
        ['wrong token', sub { post($n, '/r', ev(4002, 'high'), Authorization => 'Bearer tok-wrong-000') },
            [401, 'unauthorized'], 'unauthorized'],
        ['Basic user:password, wrong password', sub { post($n, '/r', ev(4003, 'high'), Authorization => 'Basic dXNlcjpwYXNz') },
            [401, 'unauthorized'], 'unauthorized'],
        ['not JSON', sub { post($n, '/r', 'this is not json') }, [400, 'invalid_json'], 'invalid'],
        ['JSON array', sub { post($n, '/r', '[1,2,3]') }, [400, 'invalid_payload'], 'invalid'],
        ['missing model, webhook_schema event', sub { post($n, '/strict', '{"event_id": 5001, "record_id": 1, "event": "write"}') },
            [400, 'invalid_payload'], 'invalid'],
        ['bad priority, webhook_schema event', sub { post($n, '/strict', ev(5002, 'urgent')) }, [400, 'invalid_priority'], 'invalid'],
        ['missing model, webhook_schema any: queued', sub { post($n, '/r', '{"event_id": 5003, "record_id": 1, "event": "write"}') },
            [200, 'queued'], 'queued', { medium => 1 }],
        ['bad priority, webhook_schema any: queued with the default', sub { post($n, '/r', ev(5004, 'urgent')) },
            [200, 'queued'], 'queued', { medium => 1 }],
        ['empty batch', sub { post($n, '/r', '{"batch": true, "events": []}') }, [400, 'invalid_payload'], 'invalid'],
        ['Content-Type text/plain', sub { post($n, '/r', ev(6001, 'high'), 'Content-Type' => 'text/plain') },
            [415, 'unsupported_media_type'], 'unsupported_media_type'],
        ['no Content-Type', sub { post($n, '/r', ev(6002, 'high'), 'Content-Type' => undef) },
            [415, 'unsupported_media_type'], 'unsupported_media_type'],
        ["body over client_max_body_size (nginx's 413)", sub { post($n, '/r', $big) }, [413, 'too_large'], 'too_large'],
        ['Content-Length over the limit, no body sent', sub {
            $n->raw(pieces => ["POST /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                . "Content-Type: application/json\r\nAuthorization: Bearer $TOKEN\r\n"
                . "Content-Length: 1000000\r\n\r\n"]) }, [413, 'too_large'], 'too_large'],
        ['batch over webhook_batch_max', sub { post($n, '/r', batch(map { [7000 + $_, 'low'] } 1 .. 6)) },
            [413, 'too_large'], 'too_large'],
        ['GET', sub { $n->request('GET', '/r', { Authorization => "Bearer $TOKEN" }) },
            [405, 'method_not_allowed'], 'method_not_allowed'],
        ['PUT', sub { $n->request('PUT', '/r', { Authorization => "Bearer $TOKEN", 'Content-Type' => 'application/json' },
            ev(7101, 'high')) }, [405, 'method_not_allowed'], 'method_not_allowed'],
        ['DELETE', sub { $n->request('DELETE', '/r', {}) }, [405, 'method_not_allowed'], 'method_not_allowed'],
        ['HEAD (probe)', sub { head_req($n, '/r') }, [200], 'probe'],
        ['HEAD (probe) with token', sub { $n->raw(method => 'HEAD', drain => 1, pieces => [
            "HEAD /r HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer $TOKEN\r\nConnection: close\r\n\r\n"]) },
            [200], 'probe'],
        ['receive location with deny all (403)', sub { post($n, '/denied', ev(8001, 'high')) },
            [403, 'forbidden'], 'unauthorized'],
        ['GET on that location (403 first)', sub { $n->request('GET', '/denied', {}) },
            [403, 'forbidden'], 'unauthorized'],
        # {webhook}:queue:high and :medium already hold events: over webhook_max_depth 1
        ['webhook_max_depth reached (high)', sub { post($n, '/capped', ev(9001, 'high')) }, [503, 'overloaded'], 'overloaded'],
        ['webhook_max_depth reached (medium)', sub { post($n, '/capped', ev(9002, 'medium')) }, [503, 'overloaded'], 'overloaded'],
        ['webhook_max_depth reached (batch)', sub { post($n, '/capped', batch([9003, 'low'], [9004, 'low'])) },
            [503, 'overloaded'], 'overloaded'],
        # and more, over separate connections, so that both workers take some
        (map { my $i = $_; ["queued #$i", sub { post($n, '/r', ev(1100 + $i, $PRIOS[$i % 3])) }, [200, 'queued'],
            'queued', { $PRIOS[$i % 3] => 1 }] } 1 .. 6),
        (map { my $i = $_; ["duplicate #$i", sub { post($n, '/r', ev(1100 + $i, $PRIOS[$i % 3])) }, [200, 'duplicate'],
            'duplicate'] } 1 .. 3),
    );
    cmp_ok(scalar @steps, '>=', 40, scalar(@steps) . ' requests');
    my $before = $ng->access_log('pids.log');
    step($n, $EXP, $Q, @$_) for @steps;

    # both workers took part, in the receives and in the scrapes
    my @workers = sort { $a <=> $b } $ng->workers;
    my $log = $ng->access_log('pids.log');
    my $new = substr($log, length $before);
    my (%recv, %scrape);
    for (split /\n/, $new) {
        my ($pid, $st, $uri) = split / /;
        next unless defined $uri;
        if ($uri =~ m{^/(r|strict|capped|denied)\z}) { $recv{$pid}++ } elsif ($uri eq '/status') { $scrape{$pid}++ }
    }
    is_deeply([sort { $a <=> $b } keys %recv], \@workers, 'both workers answered receive requests')
        or diag 'receive requests per pid: ' . json_encode(\%recv) . " workers: @workers";
    is_deeply([sort { $a <=> $b } keys %scrape], \@workers, 'both workers answered scrapes')
        or diag 'scrapes per pid: ' . json_encode(\%scrape);

    # depths: read live, equal to Redis and to the events counted here
    my $j = status_json($ng, 'after the mix');
    check_shape($j, [$Q], 'after the mix');
    for my $p (@PRIOS) {
        my $llen = $redis->llen("$Q:queue:$p");
        is($j->{queues}{$Q}{$p}{depth}, $llen, "$p: depth is LLEN $Q:queue:$p ($llen)");
        is($j->{queues}{$Q}{$p}{depth}, $j->{queues}{$Q}{$p}{events}, "$p: depth = events enqueued (Redis was empty)");
        is($j->{queues}{$Q}{$p}{dead}, 0, "$p: no dead letters");
        my $age = $j->{queues}{$Q}{$p}{oldest_age_seconds};
        ok(is_json_number($age) && $age >= 0 && $age < 600, "$p: oldest_age_seconds is a small number ($age)");
    }
    is_deeply($j->{events}, { map { $_ => $EXP->{"events/$_"} } @PRIOS }, 'top-level events = the queue\'s');
    is_deeply($j->{requests}, $j->{queues}{$Q}{requests}, 'top-level requests = the only queue\'s');
    my ($p, $body) = status_prom($ng, 'after the mix');
    my $count = check_prom($p, $j, [$Q], 'after the mix');
    promtool_ok($body, 'after the mix');
    # check that the counts are really those we sent (not just self-consistent)
    my %n;
    $n{$_->[3]}++ for @steps;
    is($j->{requests}{$_}, $n{$_} // 0, "requests.$_ = " . ($n{$_} // 0)) for @RESULTS;
};

subtest_fresh 'depth, dead letters and oldest age are read live from Redis' => sub {
    my $t0 = time;
    # the oldest waits at the tail: LPUSH it first
    $redis->cli('LPUSH', "$Q:queue:low", envelope(1, $t0 - 90, 'low'));
    $redis->cli('LPUSH', "$Q:queue:low", envelope(2, $t0 - 10, 'low'));
    $redis->cli('LPUSH', "$Q:queue:low", envelope(3, $t0, 'low'));
    $redis->cli('LPUSH', "$Q:queue:high", envelope(4, $t0 - 30, 'high'));
    $redis->cli('LPUSH', "$Q:dead:medium", envelope($_, $t0 - 500, 'medium')) for 5 .. 7;
    $redis->cli('LPUSH', "$Q:dead:low", envelope(8, $t0 - 500, 'low'));
    my $j = status_json($ng, 'hand-made envelopes');
    my $elapsed = time - $t0;
    check_shape($j, [$Q], 'hand-made envelopes');
    my $low = $j->{queues}{$Q}{low};
    is($low->{depth}, 3, 'low: depth 3');
    is($low->{dead}, 1, 'low: dead 1');
    my $age = $low->{oldest_age_seconds};
    ok(is_json_number($age) && $age >= 89.9 && $age <= 90 + $elapsed + 5,
        sprintf('low: oldest_age_seconds ~90 (%s; %.1f s elapsed)', json_scalar($age), $elapsed));
    like(json_scalar($age), qr/^\d+(\.\d{1,3})?\z/, 'low: age has at most millisecond digits');
    my $high = $j->{queues}{$Q}{high};
    is($high->{depth}, 1, 'high: depth 1');
    ok($high->{oldest_age_seconds} >= 29.9 && $high->{oldest_age_seconds} <= 30 + $elapsed + 5,
        "high: oldest_age_seconds ~30 ($high->{oldest_age_seconds})");
    is_deeply([@{ $j->{queues}{$Q}{medium} }{qw(depth dead oldest_age_seconds)}], [0, 3, 0],
        'medium: depth 0, dead 3, oldest_age_seconds 0 (empty queue)');
    is_deeply(flat($j), $EXP, 'hand-made envelopes are not counted as events');

    my ($p, $body) = status_prom($ng, 'hand-made envelopes');
    check_prom($p, $j, [$Q], 'hand-made envelopes');
    my $page = prom_val($p, 'nginx_webhook_oldest_event_age_seconds', queue => $Q, priority => 'low');
    ok(defined $page && $page >= 89.9 && $page <= 90 + (time - $t0) + 5, 'Prometheus: oldest age of low ~90 (' . ($page // 'none') . ')');
    is(prom_val($p, 'nginx_webhook_queue_depth', queue => $Q, priority => 'low'), 3, 'Prometheus: depth of low 3');
    is(prom_val($p, 'nginx_webhook_dead_letter_depth', queue => $Q, priority => 'medium'), 3, 'Prometheus: dead of medium 3');
    is(prom_val($p, 'nginx_webhook_oldest_event_age_seconds', queue => $Q, priority => 'medium'), 0,
        'Prometheus: oldest age of an empty queue 0');
    promtool_ok($body, 'hand-made envelopes');

    # a consumer takes the oldest: the age drops to the next one (~10 s)
    $redis->cli('RPOP', "$Q:queue:low");
    $j = status_json($ng, 'after RPOP');
    $low = $j->{queues}{$Q}{low};
    is($low->{depth}, 2, 'after RPOP: low depth 2');
    ok($low->{oldest_age_seconds} >= 9.9 && $low->{oldest_age_seconds} <= 10 + (time - $t0) + 5,
        "after RPOP: oldest_age_seconds ~10 ($low->{oldest_age_seconds})");
    $redis->cli('RPUSH', "$Q:dead:medium", envelope(9, $t0, 'medium'));
    $redis->cli('DEL', "$Q:queue:low", "$Q:queue:high");
    $j = status_json($ng, 'after DEL');
    for my $pr (@PRIOS) {
        is($j->{queues}{$Q}{$pr}{depth}, 0, "after DEL: $pr depth 0");
        is($j->{queues}{$Q}{$pr}{oldest_age_seconds}, 0, "after DEL: $pr oldest_age_seconds 0");
    }
    is($j->{queues}{$Q}{medium}{dead}, 4, 'dead list grown: medium dead 4');

    # an envelope enqueued through nginx now: age close to 0
    my $res = post($ng, '/r', ev(20001, 'high'));
    is_queued($res, 'high', 'POST queued');
    count($EXP, $Q, 'queued', { high => 1 });
    $j = status_json($ng, 'after a POST');
    is($j->{queues}{$Q}{high}{depth}, 1, 'high depth 1 after a POST');
    ok($j->{queues}{$Q}{high}{oldest_age_seconds} < 10,
        "a fresh event's age is small ($j->{queues}{$Q}{high}{oldest_age_seconds})");
    is_deeply(flat($j), $EXP, 'counters');
};

subtest 'counters survive reloads' => sub {
    my $j0 = status_json($ng, 'before the reload');
    my ($p0) = status_prom($ng, 'before the reload');
    my $count0 = prom_val($p0, 'nginx_webhook_enqueue_duration_seconds_count');
    is_deeply(flat($j0), $EXP, 'before: the expected counters');
    cmp_ok($EXP->{'requests/queued'}, '>', 0, 'some counters are not 0');

    ok($ng->reload(wait_old => 1), 'reload (HUP): new workers up, old ones gone');
    for my $i (1 .. 6) {    # several scrapes: both new workers
        my $j = status_json($ng, "after the reload, scrape $i");
        is_deeply(flat($j), $EXP, "after the reload, scrape $i: the same counters (reconnects too)")
            or diag json_encode(flat($j));
    }
    my ($p1, $body1) = status_prom($ng, 'after the reload');
    is(prom_val($p1, 'nginx_webhook_enqueue_duration_seconds_count'), $count0, 'histogram _count kept');
    is(prom_val($p1, 'nginx_webhook_enqueue_duration_seconds_sum'),
        prom_val($p0, 'nginx_webhook_enqueue_duration_seconds_sum'), 'histogram _sum kept');
    is_deeply([map { prom_val($p1, 'nginx_webhook_enqueue_duration_seconds_bucket', le => $_) } @LE],
        [map { prom_val($p0, 'nginx_webhook_enqueue_duration_seconds_bucket', le => $_) } @LE], 'histogram buckets kept');

    # and they keep counting
    step($ng, $EXP, $Q, 'queued after the reload', sub { post($ng, '/r', ev(30001, 'low')) }, [200, 'queued'], 'queued', { low => 1 });
    step($ng, $EXP, $Q, 'duplicate after the reload', sub { post($ng, '/r', ev(30001, 'low')) }, [200, 'duplicate'], 'duplicate');
    step($ng, $EXP, $Q, 'unauthorized after the reload', sub { post($ng, '/r', ev(30002, 'low'), Authorization => undef) },
        [401, 'unauthorized'], 'unauthorized');

    # a reload that adds a queue: the old queue keeps its counters, the new one starts at 0
    write_file($ng->path('extra.conf'),
        "location = /extra {\n webhook_receive;\n webhook_token_file " . $ng->path('webhook.tokens')
        . ";\n webhook_queue \"{extra}\";\n}\n");
    ok($ng->reload(wait_old => 1), 'reload with a new receive location on queue {extra}');
    $EXP->{"{extra}/requests/$_"} = 0 for @RESULTS;
    $EXP->{"{extra}/events/$_"} = 0 for @PRIOS;
    my $j = status_json($ng, 'after adding {extra}');
    check_shape($j, [$Q, '{extra}'], 'after adding {extra}');
    is_deeply(flat($j), $EXP, "$Q keeps its counters, {extra} starts at 0") or diag json_encode(flat($j));
    step($ng, $EXP, '{extra}', 'queued on {extra}', sub { post($ng, '/extra', ev(31001, 'high')) }, [200, 'queued'], 'queued', { high => 1 });
    step($ng, $EXP, '{extra}', 'test on {extra}', sub { post($ng, '/extra', '{"test":true}') }, [200, 'ok'], 'test');
    is($redis->llen('{extra}:queue:high'), 1, 'the {extra} event is in {extra}:queue:high');
    $j = status_json($ng, 'both queues');
    is($j->{queues}{'{extra}'}{high}{depth}, 1, '{extra} high depth 1');
    is($j->{requests}{queued}, $j->{queues}{$Q}{requests}{queued} + 1, 'top-level queued sums both queues');
    my ($p, $body) = status_prom($ng, 'both queues');
    check_prom($p, $j, [$Q, '{extra}'], 'both queues');
    promtool_ok($body, 'two queues after a reload');

    # and back: the location removed again
    write_file($ng->path('extra.conf'), "# removed\n");
    ok($ng->reload(wait_old => 1), 'reload without the {extra} location');
    $ACKED_GONE += $EXP->{"{extra}/requests/queued"} + $EXP->{"{extra}/requests/duplicate"};
    delete $EXP->{$_} for grep { m{^\{extra\}/} } keys %$EXP;
    $j = status_json($ng, 'after removing {extra}');
    check_shape($j, [$Q], 'after removing {extra}');
    is_deeply([sort keys %{ $j->{queues} || {} }], [$Q], 'only the queues in use are reported');
    is_deeply([map { $j->{queues}{$Q}{requests}{$_} } @RESULTS], [map { $EXP->{"$Q/requests/$_"} } @RESULTS],
        "$Q counters kept");
    # the sums are only over the queues in use: reset our view of them
    $EXP->{"requests/$_"} = $EXP->{"$Q/requests/$_"} for @RESULTS;
    $EXP->{"events/$_"} = $EXP->{"$Q/events/$_"} for @PRIOS;
    is_deeply(flat($j), $EXP, 'top-level sums are those of the queues in use');
};

subtest 'Redis down, then back' => sub {
    my $j0 = status_json($ng, 'before') or return;
    my $reconnects0 = $j0->{redis}{reconnects};
    is($reconnects0, 0, 'no reconnect so far');
    $redis->stop;

    # within a few seconds every worker sees it down
    my $down = wait_until(sub {
        for (1 .. 4) {
            my $j = status_json($ng, 'polling') or return 0;
            return 0 if $j->{redis}{up};
        }
        return 1;
    }, timeout => 10, interval => 0.2);
    ok($down, 'status says "up": false (4 scrapes in a row) within 10 s');

    my $res = get_status($ng);
    is($res->{status}, 200, 'GET /status: still 200 with Redis down') or diag dump_res($res);
    my $j = $res->{json};
    check_shape($j, [$Q], 'Redis down', up => 0);
    is_deeply(flat($j), $EXP, 'counters still reported') or diag json_encode(flat($j));

    step($ng, $EXP, $Q, 'POST with Redis down', sub { post($ng, '/r', ev(40001, 'high')) },
        [503, 'unavailable'], 'unavailable');
    step($ng, $EXP, $Q, 'another POST with Redis down', sub { post($ng, '/r', batch([40002, 'low'])) },
        [503, 'unavailable'], 'unavailable');
    step($ng, $EXP, $Q, 'test connection with Redis down: the write check fails', sub { post($ng, '/r', '{"test":true}') },
        [503, 'unavailable'], 'unavailable');
    step($ng, $EXP, $Q, 'HEAD with Redis down', sub { head_req($ng, '/r') }, [200], 'probe');

    $j = status_json($ng, 'Redis down');
    my ($p, $body) = status_prom($ng, 'Redis down');
    check_prom($p, $j, [$Q], 'Redis down', up => 0, acked_extra => $ACKED_GONE);
    unlike($body // '', qr/^nginx_webhook_(queue_depth|dead_letter_depth|oldest_event_age_seconds)\b/m,
        'no depth, dead-letter or age series at all');
    unlike($body // "", qr/ [-+]?nan$/im, "no NaN value");
    promtool_ok($body, 'Redis down');
    my $res2 = head_req($ng, '/status');
    is($res2->{status}, 200, 'HEAD /status with Redis down: 200');

    $redis->start;
    my $t0 = time;
    my $back = wait_until(sub {
        for (1 .. 4) {
            my $j = status_json($ng, 'polling') or return 0;
            return 0 unless $j->{redis}{up};
        }
        return 1;
    }, timeout => 10, interval => 0.2);
    ok($back, sprintf('"up": true again (4 scrapes in a row) after %.1f s', time - $t0));
    $j = status_json($ng, 'Redis back');
    cmp_ok($j->{redis}{reconnects}, '>', $reconnects0, "reconnects increased ($reconnects0 -> $j->{redis}{reconnects})");
    # each of the 2 workers lost its connection and made it again: 2
    my $both = wait_until(sub {
        my $j = status_json($ng, 'polling') or return 0;
        return $j->{redis}{reconnects} >= 2 ? $j : 0;
    }, timeout => 10, interval => 0.2);
    ok($both, 'within 10 s both workers have reconnected (reconnects >= 2)');
    $j = status_json($ng, 'Redis back');
    check_shape($j, [$Q], 'Redis back');
    if ($CLUSTER) {
        cmp_ok($j->{redis}{reconnects}, '>=', 2, 'reconnects: at least one per worker (a cluster: one per node and worker)');
    } else {
        is($j->{redis}{reconnects}, 2, 'reconnects: 2, one per worker (failed attempts while down do not count)');
    }
    $EXP->{reconnects} = $j->{redis}{reconnects} unless $CLUSTER;
    is_deeply(flat($j), $EXP, 'other counters unchanged') or diag json_encode(flat($j));
    is_deeply([map { $j->{queues}{$Q}{$_}{depth} } @PRIOS], [0, 0, 0], 'the new Redis is empty: depths 0');
    ($p, $body) = status_prom($ng, 'Redis back');
    check_prom($p, $j, [$Q], 'Redis back', acked_extra => $ACKED_GONE);
    is(prom_val($p, 'nginx_webhook_redis_reconnects_total'), $j->{redis}{reconnects},
        'nginx_webhook_redis_reconnects_total increased too');
    promtool_ok($body, 'Redis back');

    # until every worker has its connection back, a POST may still get 503
    my $ok = wait_until(sub {
        my $r = post($ng, '/r', ev(41000 + int(rand 1e6), 'low'));
        count($EXP, $Q, $r->{status} == 200 ? 'queued' : $r->{status} == 503 ? 'unavailable' : 'error',
            $r->{status} == 200 ? { low => 1 } : undef);
        return $r->{status} == 200;
    }, timeout => 10, interval => 0.2);
    ok($ok, 'POST queued again');
    step($ng, $EXP, $Q, 'queued after Redis came back', sub { post($ng, '/r', ev(42001, 'medium')) },
        [200, 'queued'], 'queued', { medium => 1 });
};

subtest_fresh 'several queues: each its own counters' => sub {
    my ($TA, $TB) = ('tok-tenant-a-111111', 'tok-tenant-b-222222');
    my $n2 = start_nginx(
        workers => 2,
        files => { 'a.tokens' => "$TA\n", 'b.tokens' => "$TB\n" },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
            . "webhook_redis_timeout 3s;\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(path => '/a', queue => '{tenant_a}', tokens => 'a.tokens')
            . receive_location(path => '/b', queue => '{tenant_b}', tokens => 'b.tokens')
            . "        location = /status { webhook_status; }\n"
            . "    }\n",
    );
    my @Q2 = ('{tenant_a}', '{tenant_b}');
    my $exp = zero_flat(@Q2);
    cluster_ready($n2);
    my $j = status_json($n2, 'two queues, fresh') or return;
    check_shape($j, \@Q2, 'two queues, fresh');
    is_deeply(flat($j), $exp, 'two queues: all 0 (the default queue is not used, so not reported)');
    my $pa = sub { my ($body, $tok) = @_; $n2->request('POST', '/a', { 'Content-Type' => 'application/json',
        Authorization => 'Bearer ' . ($tok // $TA) }, $body) };
    my $pb = sub { my ($body, $tok) = @_; $n2->request('POST', '/b', { 'Content-Type' => 'application/json',
        Authorization => 'Bearer ' . ($tok // $TB) }, $body) };
    my @steps = (
        ['{tenant_a}', 'a: queued high', sub { $pa->(ev(1, 'high')) }, [200, 'queued'], 'queued', { high => 1 }],
        ['{tenant_a}', 'a: queued high', sub { $pa->(ev(2, 'high')) }, [200, 'queued'], 'queued', { high => 1 }],
        ['{tenant_a}', 'a: queued medium', sub { $pa->(ev(3, 'medium')) }, [200, 'queued'], 'queued', { medium => 1 }],
        ['{tenant_a}', "a: b's token", sub { $pa->(ev(4, 'high'), $TB) }, [401, 'unauthorized'], 'unauthorized'],
        # the same event ids in the other queue are not duplicates
        ['{tenant_b}', 'b: queued low (same event_id as in a)', sub { $pb->(ev(1, 'low')) }, [200, 'queued'], 'queued', { low => 1 }],
        ['{tenant_b}', 'b: batch', sub { $pb->(batch([2, 'low'], [5, 'high'])) }, [200, 'queued'], 'queued', { low => 1, high => 1 }],
        ['{tenant_b}', 'b: duplicate', sub { $pb->(ev(1, 'low')) }, [200, 'duplicate'], 'duplicate'],
        ['{tenant_b}', 'b: test', sub { $pb->('{"test":true}') }, [200, 'ok'], 'test'],
        ['{tenant_b}', "b: a's token", sub { $pb->(ev(6, 'low'), $TA) }, [401, 'unauthorized'], 'unauthorized'],
        ['{tenant_b}', 'b: invalid', sub { $pb->('{') }, [400, 'invalid_json'], 'invalid'],
        ['{tenant_b}', 'b: HEAD', sub { head_req($n2, '/b') }, [200], 'probe'],
    );
    step($n2, $exp, @$_) for @steps;
    $j = status_json($n2, 'two queues');
    check_shape($j, \@Q2, 'two queues');
    is_deeply([map { $j->{queues}{'{tenant_a}'}{$_}{depth} } @PRIOS], [2, 1, 0], '{tenant_a} depths 2/1/0');
    is_deeply([map { $j->{queues}{'{tenant_b}'}{$_}{depth} } @PRIOS], [1, 0, 2], '{tenant_b} depths 1/0/2');
    is_deeply([map { $redis->llen("{tenant_b}:queue:$_") } @PRIOS], [1, 0, 2], '... as in Redis');
    is($j->{queues}{'{tenant_a}'}{requests}{queued}, 3, '{tenant_a} queued 3');
    is($j->{queues}{'{tenant_b}'}{requests}{queued}, 2, '{tenant_b} queued 2');
    is($j->{requests}{queued}, 5, 'top-level queued 5');
    is($j->{requests}{unauthorized}, 2, 'top-level unauthorized 2');
    is_deeply($j->{events}, { high => 3, medium => 1, low => 2 }, 'top-level events summed');
    my ($p, $body) = status_prom($n2, 'two queues');
    check_prom($p, $j, \@Q2, 'two queues');
    is(prom_val($p, 'nginx_webhook_requests_total', queue => '{tenant_b}', result => 'duplicate'), 1,
        'nginx_webhook_requests_total{queue="{tenant_b}",result="duplicate"} 1');
    is(prom_val($p, 'nginx_webhook_queue_depth', queue => '{tenant_a}', priority => 'high'), 2,
        'nginx_webhook_queue_depth{queue="{tenant_a}",priority="high"} 2');
    promtool_ok($body, 'two queues');

    # the first nginx did not see any of this
    my $j1 = status_json($ng, 'the other nginx');
    is_deeply(flat($j1), $EXP, 'the other nginx has its own counters');
    ok($n2->stop, 'second nginx stops');
};

subtest 'slow Redis: the scrape waits for it, or answers "up": false after webhook_redis_timeout' => sub {
    my @workers = sort { $a <=> $b } $ng->workers;
    my $sleep = sub { $redis->sleep_in_background($_[0]) };

    # 1 s: within webhook_redis_timeout (3 s)
    my $pid = $sleep->(1);
    my $res = get_status($ng);
    is($res->{status}, 200, 'Redis busy for 1 s: 200') or diag dump_res($res);
    ok(ref $res->{json} eq 'HASH' && $res->{json}{redis}{up}, 'Redis busy for 1 s (< timeout): "up": true');
    waitpid($pid, 0);

    # clients that leave while their status query waits
    $pid = $sleep->(1);
    for my $i (1 .. 4) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp', Timeout => 5);
        print {$s} "GET /status" . ($i % 2 ? '' : '?format=prometheus') . " HTTP/1.1\r\nHost: localhost\r\n\r\n" if $s;
        sleep 0.05;
        close $s if $s;
    }
    waitpid($pid, 0);
    sleep 0.3;
    my $j = status_json($ng, 'after the clients left');
    ok($j && $j->{redis}{up}, 'scrapes work after clients left during the query');

    # 5 s: longer than webhook_redis_timeout (3 s)
    $pid = $sleep->(5);
    $res = get_status($ng, timeout => 30);
    is($res->{status}, 200, 'Redis busy for 5 s: still 200') or diag dump_res($res);
    ok(ref $res->{json} eq 'HASH' && is_json_bool($res->{json}{redis}{up}) && !$res->{json}{redis}{up},
        'Redis busy past webhook_redis_timeout: "up": false') or diag dump_res($res);
    check_shape($res->{json}, [$Q], 'Redis busy', up => 0);
    waitpid($pid, 0);
    my $up = wait_until(sub {
        for (1 .. 4) { my $j = status_json($ng, 'polling') or return 0; return 0 unless $j->{redis}{up} }
        return 1;
    }, timeout => 10, interval => 0.2);
    ok($up, '"up": true again once Redis answers');
    is_deeply([sort { $a <=> $b } $ng->workers], \@workers, 'the same workers run (none crashed)');
    $j = status_json($ng, 'after the slow Redis');
    $EXP->{reconnects} = $j->{redis}{reconnects} unless $CLUSTER;    # a timed-out connection may be remade
    is_deeply(flat($j), $EXP, 'counters unchanged') or diag json_encode(flat($j));
};

subtest 'queue names are escaped in JSON and Prometheus' => sub {
    # with a cluster, a queue name needs a hash tag: the same odd characters
    # inside one
    my $name = $CLUSTER ? '{we"ird\\q}' : 'we"ird\\q';
    my $conf_name = $CLUSTER ? "{we\"ird\\\\q}" : "we\"ird\\\\q";
    my $n4 = start_nginx(
        workers => 1,
        files => { 'webhook.tokens' => "$TOKEN\n" },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . "        location = /w { webhook_receive; webhook_token_file %%PREFIX%%/webhook.tokens; webhook_queue '$conf_name'; }\n"
            . "        location = /status { webhook_status; }\n"
            . "    }\n",
    );
    is_queued(post($n4, '/w', ev(1, 'low')), 'low', 'queued');
    is($redis->llen("$name:queue:low"), 1, "the event is in $name:queue:low");
    my $j = status_json($n4, 'odd name') or return;
    check_shape($j, [$name], 'odd name');
    is($j->{queues}{$name}{low}{depth}, 1, 'the JSON key is the queue name, depth 1');
    is($j->{queues}{$name}{requests}{queued}, 1, 'queued 1');
    my ($p, $body) = status_prom($n4, 'odd name');
    my $label = $CLUSTER ? '{we\\"ird\\\\q}' : 'we\\"ird\\\\q';
    is(prom_val($p, 'nginx_webhook_queue_depth', queue => $label, priority => 'low'), 1,
        'Prometheus label value escaped: queue="we\\"ird\\\\q"');
    promtool_ok($body, 'odd queue name');
    ok($n4->stop, 'nginx stops');
};

subtest 'a status location without any receive location' => sub {
    my $n3 = start_nginx(
        workers => 1,
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . "        location = /status { webhook_status; }\n"
            . "    }\n",
    );
    cluster_ready($n3);
    my $j = status_json($n3, 'no queues') or return;
    check_shape($j, [], 'no queues');
    is_deeply($j->{queues}, {}, 'queues: {}');
    ok($j->{redis}{up}, 'Redis up');
    my ($p, $body) = status_prom($n3, 'no queues');
    check_prom($p, $j, [], 'no queues');
    promtool_ok($body, 'no queues');
    ok($n3->stop, 'nginx stops');
};

my @bad = grep { /\[(alert|emerg|crit)\]|open socket|exited on signal/ } split /\n/, $ng->error_log;
is_deeply(\@bad, [], 'no alert, crit, emerg, crashed worker nor "open socket" in the error log');
ok($ng->stop(timeout => 20), 'nginx exits on QUIT');

done_testing;
