#!/usr/bin/perl
# Fault 2 of issue 6: Redis slower than webhook_redis_timeout.
#
# Redis hangs for 3 s (DEBUG SLEEP, then CLIENT PAUSE) while forked clients
# keep sending events; webhook_redis_timeout is 1s.  Every request gets 503
# with Retry-After within the timeout plus a margin.  When Redis wakes up it
# runs what it had already read (so a refused event may be queued all the
# same: Odoo retries it and the retry is a duplicate), and its late replies
# must touch no request that is gone: the error log has no crash nor alert,
# and afterwards every answer matches what Redis holds (a queued event's
# envelope has the answer's id, a duplicate's answer names the envelope
# queued the first time).  Service then resumes without a reload.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-chaos-slow-77b0e2';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TIMEOUT = 1;
my $MARGIN = slow_nginx() ? 8 : 1;
my $HANG = slow_nginx() ? 6 : 3;    # longer than the timeout, by far
my $CLIENTS = slow_nginx() ? 4 : 10;

my $redis = start_redis();
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => "${TIMEOUT}s",
    priority => 'low');

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
    my $t_hang;
    my ($recs, $bad) = run_clients(
        n => $CLIENTS, dir => $ng->path("results-$base"), timeout => 60,
        work => sub {
            my ($c) = @_;
            sleep 0.4;    # Redis is hanging by now
            my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
            my @r;
            my $t0 = time;
            my $i = 0;
            while (time - $t0 < $HANG - 1.2) {
                my $id = $base + $c * 1000 + ++$i;
                push @r, WebhookLoad::Client->record($id, $cl->post($R, \%H, body($id)));
            }
            return @r;
        },
        while_running => sub { $t_hang = time; $start_hang->() },
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
            my @mine = grep { int(($_ - $base) / 1000) == $c } @ids;
            for my $k (0 .. $#mine) {
                my $new = $base + 500000 + $c * 1000 + $k;
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
sleep 1.3;    # the pause ends
after('CLIENT PAUSE', $hang, 200000);

my $elog = $ng->error_log;
like($elog, qr/redis did not acknowledge the event in time/, 'the timeouts are logged');
unlike($elog, qr/exited on signal|\[alert\]|\[emerg\]|\[crit\]/, 'no crash, alert or crit in the error log')
    or diag join "\n", grep { /exited on signal|\[alert\]|\[emerg\]|\[crit\]/ } split /\n/, $elog;

ok($ng->stop(timeout => 20), 'nginx stops gracefully');
unlike($ng->error_log, qr/exited on signal|open socket|\[alert\]/, 'no open socket left at exit');

done_testing;
