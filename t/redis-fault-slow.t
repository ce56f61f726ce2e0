#!/usr/bin/perl
# Fault 2 of issue 6: Redis slower than webhook_redis_timeout.
#
# Redis hangs for 3 s (DEBUG SLEEP, CLIENT PAUSE, SIGSTOP) while forked clients
# keep sending events; webhook_redis_timeout is 1s.  Every request gets 503
# with Retry-After within the timeout plus a margin.  When Redis wakes up it
# runs what it had already read (so a refused event may be queued all the
# same: Odoo retries it and the retry is a duplicate), and its late replies
# must touch no request that is gone: the error log has no crash nor alert,
# and afterwards every answer matches what Redis holds (a queued event's
# envelope has the answer's id, a duplicate's answer names the envelope
# queued the first time).  Service then resumes without a reload.
# Also: late replies to timed-out status scrapes, which leave the connection
# open; and connects that hang (webhook_redis_connect_timeout).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use POSIX ();
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-chaos-slow-77b0e2';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TIMEOUT = 1;
my $MARGIN = slow_nginx() ? 8 : 1;
my $HANG = slow_nginx() ? 4 : 3;    # longer than the timeout, by far
my $CLIENTS = slow_nginx() ? 4 : 10;

my $redis = start_redis();
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => "${TIMEOUT}s",
    priority => 'low', server => "        location = /status { webhook_status; }\n");

sub body {
    json_encode({ event_id => $_[0], model => 'res.partner', record_id => $_[0], event => 'write' });
}

my $n = 0;
sub recover {
    my ($name) = @_;
    serves_again(sub { $ng->request('POST', $R, \%H, body(900000 + $n++), timeout => 10) }, $name);
}

# during_hang($name, $start_hang, $end_hang): clients send events while
# Redis hangs; returns the records
sub during_hang {
    my ($name, $base, $start_hang) = @_;
    my $t_hang = time;
    $start_hang->();
    ok(wait_until(sub { redis_hangs($redis) }, timeout => 5, interval => 0.05), "$name: Redis hangs");
    # clients stop in time for their last request to end before Redis wakes
    my $stop_at = $t_hang + $HANG - $TIMEOUT - 0.4;
    my ($recs, $bad) = run_clients(
        n => $CLIENTS, dir => $ng->path("results-$base"), timeout => 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            my @r;
            my $i = 0;
            while (time < $stop_at && $i < 9999) {
                my $id = $base + $c * 10000 + ++$i;
                push @r, WebhookLoad::Client->record($id, $cl->post($R, \%H, body($id)));
            }
            return @r;
        },
    );
    is_deeply($bad, [], "$name: every client finished");
    my $s = summarize($recs);
    diag sprintf '%s: %d events sent while Redis hung %ss, %d x 200, %d x 503, '
        . '%d connection errors; max latency %.3fs (timeout %ss)', $name, $s->{sent}, $HANG,
        $s->{ok}, $s->{unavailable}, $s->{conn_error}, $s->{max}, $TIMEOUT;
    cmp_ok($s->{sent}, '>=', $CLIENTS, "$name: each client sent at least one event");
    is($s->{unavailable}, $s->{sent}, "$name: every request got 503")
        or diag join "\n", map { "$_->{id}: $_->{status} " . ($_->{error} // '') }
            grep { $_->{status} != 503 } @$recs;
    is($s->{no_retry_after}, 0, "$name: every 503 has Retry-After");
    cmp_ok($s->{max}, '<', $TIMEOUT + $MARGIN,
        sprintf('%s: answered within the timeout + %ss (max %.3fs)', $name, $MARGIN, $s->{max}));
    return $recs;
}

# check_answers(\@records, $name): each 200 answer agrees with Redis
sub check_answers {
    my ($recs, $name) = @_;
    my %env;
    for my $e (envelopes($redis, '{webhook}')) {
        push @{ $env{ $e->{event_id} // 'undef' } }, $e->{id} // 'undef';
    }
    my @bad;
    for my $r (grep { $_->{status} == 200 } @$recs) {
        my $ids = $env{ $r->{id} } || [];
        if (@$ids != 1) {
            push @bad, "$r->{id}: " . scalar(@$ids) . ' envelopes';
        } elsif (($r->{answer} // '') ne $ids->[0]) {
            push @bad, "$r->{id}: answer $r->{answer_status} $r->{answer}, envelope $ids->[0]";
        }
    }
    is_deeply(\@bad, [], "$name: every answer matches what Redis holds (event once, same envelope id)");
}

# after($name, \@hang_records): resume, then the events refused during the
# hang and as many new ones, from concurrent clients
sub after {
    my ($name, $hang, $base) = @_;
    recover($name);
    my @ids = map { $_->{id} } @$hang;
    my %in = map { ($_->{event_id} // '') => 1 } envelopes($redis, '{webhook}');
    my $applied = grep { $in{$_} } @ids;
    diag "$name: $applied of the " . scalar(@ids) . ' refused events were applied by Redis after it woke up';
    my ($recs, $bad) = run_clients(
        n => $CLIENTS, dir => $ng->path("after-$base"), timeout => 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            my @r;
            my @mine = grep { int(($_ - $base) / 10000) == $c } @ids;
            for my $k (0 .. $#mine) {
                my $new = $base + 500000 + $c * 10000 + $k;
                for my $id ($mine[$k], $new) {
                    push @r, WebhookLoad::Client->record($id, $cl->post($R, \%H, body($id)));
                }
            }
            return @r;
        },
    );
    is_deeply($bad, [], "$name, after: every client finished");
    my $s = summarize($recs);
    is($s->{ok}, $s->{sent}, "$name, after: all $s->{sent} events (refused ones again, and new ones) get 200");
    my $dups = grep { ($_->{answer_status} // '') eq 'duplicate' } @$recs;
    is($dups, $applied, "$name, after: the late-applied events are answered as duplicates ($dups)");
    check_answers($recs, "$name, after");
    $redis->flushall;
}

is_queued($ng->request('POST', $R, \%H, body(1)), 'low', 'warm-up');
is_queued($ng->request('POST', $R, \%H, body(2)), 'low', 'warm-up');
$redis->flushall;

# ------------------------------------------------------------ DEBUG SLEEP
my $sleeper;
my $hang = during_hang('DEBUG SLEEP', 100000, sub {
    $sleeper = $redis->sleep_in_background($HANG, 0.2);
});
waitpid($sleeper, 0);
is($? >> 8, 0, 'DEBUG SLEEP ran (debug command enabled)');
after('DEBUG SLEEP', $hang, 100000);

# ------------------------------------------------------------ CLIENT PAUSE
$hang = during_hang('CLIENT PAUSE', 200000, sub {
    is($redis->cli('CLIENT', 'PAUSE', $HANG * 1000, 'ALL'), 'OK', 'CLIENT PAUSE');
});
wait_until(sub { !redis_hangs($redis) }, timeout => 10);    # the pause ends
after('CLIENT PAUSE', $hang, 200000);

# ------------------------------------------------------------ late replies
# A status scrape that times out leaves the Redis connection open (only an
# enqueue timeout closes it): Redis's late answer then arrives for a request
# that is gone.  It must be dropped (ASan and valgrind see a use after
# free), and the replies after it must still go to their own requests.
subtest 'late replies to timed-out status scrapes' => sub {
    my $sleeper = $redis->sleep_in_background($HANG, 0.2);
    my ($recs, $bad) = run_clients(
        n => 6, dir => $ng->path('results-status'), timeout => 60,
        work => sub {
            my ($c) = @_;
            my $res = $ng->request('GET', '/status', {}, undef, timeout => 20);
            my $up = ref $res->{json} eq 'HASH' && ref $res->{json}{redis} eq 'HASH'
                ? ($res->{json}{redis}{up} ? 'up' : 'down') : 'no json';
            return { id => $c, status => $res->{status}, elapsed => $res->{elapsed},
                answer_status => $up };
        },
    );
    is_deeply($bad, [], 'every scrape finished');
    is_deeply([map { "$_->{status} $_->{answer_status}" } @$recs], [('200 down') x 6],
        'each scrape answered 200 with redis.up false');
    my $s = summarize($recs);
    cmp_ok($s->{max}, '<', $TIMEOUT + $MARGIN, sprintf('within the timeout (max %.3fs)', $s->{max}));
    waitpid($sleeper, 0);
    # the late replies arrive now; then each client sends new events, each
    # twice: "queued" with its id, then "duplicate" naming the same id
    ($recs, $bad) = run_clients(
        n => $CLIENTS, dir => $ng->path('after-status'), timeout => 60,
        work => sub {
            my ($c) = @_;
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            return map {
                my $id = 300000 + $c * 1000 + $_;
                map { WebhookLoad::Client->record($id, $cl->post($R, \%H, body($id))) } 1, 2;
            } 1 .. 20;
        },
    );
    is_deeply($bad, [], 'after the late replies: every client finished');
    my %first;
    my @wrong;
    for my $r (@$recs) {
        my $want = exists $first{ $r->{id} } ? 'duplicate' : 'queued';
        $first{ $r->{id} } //= $r->{answer} // '';
        push @wrong, "$r->{id}: $r->{status} " . ($r->{answer_status} // '-') . ' ' . ($r->{answer} // '-')
            unless $r->{status} == 200 && ($r->{answer_status} // '') eq $want
                && ($r->{answer} // '') eq $first{ $r->{id} };
    }
    is_deeply(\@wrong, [], 'after the late replies: ' . scalar(@$recs)
        . ' answers, each "queued" then "duplicate" with the same id');
    check_answers($recs, 'after the late replies');
    $redis->flushall;
    my $res = $ng->request('GET', '/status', {}, undef, timeout => 10);
    ok(ref $res->{json} eq 'HASH' && $res->{json}{redis}{up}, 'a scrape sees redis up again');
    like($ng->error_log, qr/redis did not answer the status query in time/, 'the scrape timeouts are logged');
};

# ------------------------------------------------------------ SIGSTOP
# a frozen redis-server process (a paused VM, a swap storm): its sockets
# stay open and the kernel still completes new connections
my $frozen;
$hang = during_hang('SIGSTOP', 400000, sub {
    kill 'STOP', $redis->pid;
    $frozen = fork;
    die "fork: $!" unless defined $frozen;
    if (!$frozen) {
        sleep $HANG;
        kill 'CONT', $redis->pid;
        POSIX::_exit(0);
    }
});
waitpid($frozen, 0);
after('SIGSTOP', $hang, 400000);

# ------------------------------------------------------------ connect hangs
# Redis unreachable, its SYNs unanswered (a firewall, a dead host): here a
# listener with a full accept queue on loopback.  webhook_redis_connect_timeout
# bounds each attempt; requests are refused within it.
subtest 'connects that hang (webhook_redis_connect_timeout)' => sub {
    my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
        Proto => 'tcp', ReuseAddr => 1) or die "listen: $!";
    my @fill = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $hole->sockport,
        Proto => 'tcp', Timeout => 1) } 1 .. 2;    # the accept queue is full
    my $probe = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $hole->sockport,
        Proto => 'tcp', Timeout => 0.5);
    ok(!$probe, 'a connect to the full listener hangs');
    my $blackhole = start_redis(no_start => 1, port => $hole->sockport);
    my $ng2 = fault_nginx(redis => $blackhole, token => $TOKEN, timeout => '3s', workers => 1,
        http => "webhook_redis_connect_timeout 1s;\n");
    my ($max, @bad) = (0);
    for my $i (1 .. 5) {
        my $res = $ng2->request('POST', $R, \%H, body(800000 + $i), timeout => 20);
        $max = $res->{elapsed} if $res->{elapsed} > $max;
        push @bad, dump_res($res) unless $res->{status} == 503
            && ($res->{headers}{'retry-after'} // '') =~ /^\d+\z/;
        sleep 0.5;
    }
    is_deeply(\@bad, [], '5 requests: 503 with Retry-After');
    cmp_ok($max, '<', 1 + $MARGIN, sprintf('each within the connect timeout (max %.3fs)', $max));
    diag sprintf 'connects that hang: 5 requests, 5 x 503, max latency %.3fs '
        . '(connect timeout 1s, webhook_redis_timeout 3s)', $max;
    like($ng2->error_log, qr/webhook: redis connect to \S+ timed out/, 'the connect timeout is logged');
    close $_ for grep { $_ } @fill;
    close $hole;
    $blackhole->start;    # Redis appears on that address
    serves_again(sub { $ng2->request('POST', $R, \%H, body(800100 + $n++), timeout => 10) },
        'a Redis on the address');
    unlike($ng2->error_log, qr/exited on signal|\[alert\]|\[emerg\]/, 'no crash nor alert');
    ok($ng2->stop(timeout => 20), 'nginx stops gracefully');
    $blackhole->stop;
};

my $elog = $ng->error_log;
like($elog, qr/redis did not acknowledge the event in time/, 'the timeouts are logged');
unlike($elog, qr/exited on signal|\[alert\]|\[emerg\]|\[crit\]/, 'no crash, alert or crit in the error log')
    or diag join "\n", grep { /exited on signal|\[alert\]|\[emerg\]|\[crit\]/ } split /\n/, $elog;

ok($ng->stop(timeout => 20), 'nginx stops gracefully');
unlike($ng->error_log, qr/exited on signal|open socket|\[alert\]/, 'no open socket left at exit');

done_testing;
