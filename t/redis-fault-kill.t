#!/usr/bin/perl
# Fault 1 of issue 6: Redis killed under load.
#
# Redis runs with appendonly yes / appendfsync always.  Forked keep-alive
# clients send a few thousand events with unique event_ids; when about a
# quarter of them are queued, Redis gets SIGKILL, and a second later starts
# again on the same port and directory (its AOF is loaded); once more at
# half.  Then:
#   - every event answered 200 is in Redis (count and event_ids), with the
#     envelope id of its answer; none is there twice;
#   - every other answer is 503 with Retry-After, or a connection error;
#   - no request waited longer than webhook_redis_timeout plus a margin;
#   - no worker died, the workers are the same (no respawn, no reload);
#   - the module serves again by itself: Odoo-style retries of every
#     refused event get 200, and afterwards Redis holds every event once.
# Under valgrind (see WebhookLoad::load_scale) the load is a tenth.

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
my $TOKEN = 'tok-chaos-kill-4c1e9a';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TIMEOUT = 2;                               # webhook_redis_timeout
my $MARGIN = slow_nginx() ? 8 : 1.5;           # a loaded 2-core machine
my $CLIENTS = slow_nginx() ? 6 : 20;
my $PER = int(150 * load_scale()) || 10;       # events per client
my $TOTAL = $CLIENTS * $PER;

my $redis = start_redis(extra => [qw(--appendonly yes --appendfsync always)]);
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => "${TIMEOUT}s",
    http => "webhook_redis_connect_timeout 1s;\n",
    server => "        location = /status { webhook_status; }\n");

sub body {
    my ($id) = @_;
    my @p = qw(high medium low);
    return json_encode({ event_id => $id, model => 'sale.order', record_id => $id,
        event => 'write', priority => $p[$id % 3], values => { name => "SO$id" } });
}

sub queued_count {
    my $n = $redis->cli('EVAL', "return redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])"
        . " + redis.call('LLEN', KEYS[3])", 3, map { "{webhook}:queue:$_" } qw(high medium low));
    return defined $n && $n =~ /^\d+\z/ ? $n : -1;
}

my $res = $ng->request('POST', $R, \%H, body(1), timeout => 10);
is_queued($res, 'medium', 'warm-up event queued');
$redis->flushall;
my @workers = sort $ng->workers;

# ------------------------------------------------------------ the load run
my $kills = 0;
my ($recs, $bad) = run_clients(
    n => $CLIENTS,
    dir => $ng->path('results'),
    timeout => 120,
    work => sub {
        my ($c) = @_;
        my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
        my @r;
        for my $i (1 .. $PER) {
            my $id = $c * 100000 + $i;
            my $res = $cl->post($R, \%H, body($id));
            push @r, WebhookLoad::Client->record($id, $res);
            # a refused sender backs off a little, as Odoo does (in seconds there)
            sleep 0.1 unless $res->{status} == 200;
        }
        return @r;
    },
    while_running => sub {
        # two crashes: at a quarter and at half of the events queued
        for my $k (1, 2) {
            my $target = int($TOTAL * $k / 4);
            wait_until(sub { queued_count() >= $target }, timeout => 30, interval => 0.05);
            $redis->stop(signal => 'KILL');
            my $t = time;
            note "SIGKILL $k to Redis";
            sleep 1;
            $redis->start;    # same port, same dir: the AOF is loaded
            note sprintf 'Redis back after %.2fs', time - $t;
            $kills++;
        }
    },
);

is_deeply($bad, [], 'every client finished');
is($kills, 2, 'Redis was killed twice during the run');
is(scalar @$recs, $TOTAL, "a result for every event sent ($TOTAL)");

my $s = summarize($recs);
my %answered = map { $_->{id} => $_ } grep { $_->{status} == 200 } @$recs;

# what Redis holds after the crash
my @env = envelopes($redis);
my (%in_redis, @twice, @broken);
for my $e (@env) {
    my $id = ref $e eq 'HASH' ? $e->{event_id} : undef;
    if (!defined $id || !defined $e->{id}) { push @broken, $e; next }
    push @twice, $id if exists $in_redis{$id};
    $in_redis{$id} = $e->{id};
}
my @lost = grep { !exists $in_redis{$_} } sort keys %answered;
my @wrong_id = grep { exists $in_redis{$_} && ($answered{$_}{answer} // '') ne $in_redis{$_} }
    grep { ($answered{$_}{answer_status} // '') eq 'queued' } sort keys %answered;
my $refused_but_in = grep { $_->{status} != 200 && exists $in_redis{ $_->{id} } } @$recs;

diag sprintf 'Redis SIGKILL (twice) under load: %d events sent, %d x 200, %d found in Redis, '
    . '%d lost, %d x 503, %d connection errors, %d other; max latency %.3fs; '
    . '%d refused events were in Redis anyway (applied before the crash)',
    $s->{sent}, $s->{ok}, scalar(keys %in_redis), scalar(@lost), $s->{unavailable},
    $s->{conn_error}, $s->{other}, $s->{max}, $refused_but_in;

cmp_ok($s->{ok}, '>', 0, 'some events were queued');
cmp_ok($s->{unavailable} + $s->{conn_error}, '>', 0, 'the crash was seen by some requests');
is(scalar @lost, 0, 'no event answered 200 is missing from Redis')
    or diag 'lost: ' . join ' ', @lost[0 .. ($#lost > 20 ? 20 : $#lost)];
is_deeply(\@wrong_id, [], 'each envelope has the id its 200 answer gave');
is_deeply(\@twice, [], 'no event_id is queued twice');
is(scalar @broken, 0, 'every element of the lists is a whole envelope');
is($s->{other}, 0, 'no answer other than 200 and 503')
    or diag join "\n", map { "$_->{id}: $_->{status}" } grep { $_->{status} != 200 && $_->{status} != 503 && $_->{status} != 0 } @$recs;
is($s->{no_retry_after}, 0, 'every 503 has Retry-After');
cmp_ok($s->{max}, '<', $TIMEOUT + $MARGIN,
    sprintf('no request waited longer than webhook_redis_timeout + %ss (max %.3fs)', $MARGIN, $s->{max}));

# ------------------------------------------------------------ after the crash
my $elog = $ng->error_log;
unlike($elog, qr/exited on signal/, 'no worker died (no "exited on signal")')
    or diag join "\n", grep { /exited on signal/ } split /\n/, $elog;
unlike($elog, qr/\[alert\]|\[emerg\]/, 'no [alert] nor [emerg] in the error log')
    or diag join "\n", grep { /\[alert\]|\[emerg\]/ } split /\n/, $elog;
like($elog, qr/webhook: redis connection to \S+ lost/, 'the lost connection is logged');
is_deeply([sort $ng->workers], \@workers, 'the same workers still run (no respawn, no reload)');

# Odoo retries what was not a 2xx: every refused event, once more; service
# must be back by itself (the workers reconnect with a backoff up to 2 s)
my @retry = map { $_->{id} } grep { $_->{status} != 200 } @$recs;
my ($retried_ok, @still) = (0);
my $cl = WebhookLoad::Client->new(port => $ng->port, timeout => 20);
my $t_retry = time;
for my $id (@retry) {
    my $res;
    for my $try (1 .. 20) {
        $res = $cl->post($R, \%H, body($id));
        last if $res->{status} == 200;
        sleep 0.25;
    }
    if ($res->{status} == 200) { $retried_ok++ } else { push @still, "$id: " . dump_res($res) }
}
is_deeply(\@still, [], sprintf('the %d refused events, sent again, get 200 (%.1fs)',
    scalar @retry, time - $t_retry));

@env = envelopes($redis);
my %count;
$count{ $_->{event_id} // 'undef' }++ for @env;
my @missing = grep { !$count{$_} } map { $_->{id} } @$recs;
my @dups = grep { $count{$_} > 1 } sort keys %count;
is(scalar @env, $TOTAL, "after the retries Redis holds each of the $TOTAL events")
    or diag scalar(@missing) . ' missing, ' . scalar(@dups) . ' twice';
is_deeply(\@dups, [], 'and each once (dedupe survived the crash in the AOF)');

$res = $ng->request('GET', '/status', {}, undef, timeout => 10);
my $st = $res->{json} || {};
ok(ref $st eq 'HASH' && $st->{redis} && $st->{redis}{up}, 'status: redis up again')
    or diag dump_res($res);
cmp_ok($st->{redis}{reconnects} // 0, '>=', 1, 'status: the reconnections are counted');

ok($ng->stop(timeout => 20), 'nginx stops gracefully');
$elog = $ng->error_log;
unlike($elog, qr/exited on signal|open socket|\[alert\]/, 'no crash, no open socket left at exit');

done_testing;
