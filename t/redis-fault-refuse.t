#!/usr/bin/perl
# Fault 3 of issue 6: Redis up but refusing the writes.
#
#   - maxmemory reached (noeviction): the script gets an OOM error;
#   - a READONLY replica (REPLICAOF a second redis-server);
#   - LOADING: DEBUG RELOAD of a dataset loaded slowly on purpose
#     (key-load-delay, a hidden Redis setting made for tests);
#   - a wrong password, and a password changed at runtime (CONFIG SET
#     requirepass, then the module's connections killed).
# Each time: 503 with Retry-After, a clear error.log line, never a 200,
# nothing queued; and service comes back when Redis accepts writes again.

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
my $TOKEN = 'tok-chaos-refuse-2f8d41';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $MARGIN = slow_nginx() ? 8 : 1.5;
my $n = 0;

sub body {
    my $id = ++$n;
    json_encode({ event_id => $id, model => 'stock.picking', record_id => $id, event => 'create' });
}

sub batch {
    json_encode({ batch => JSON::PP::true(), events => [map {
        my $id = ++$n;
        { event_id => $id, model => 'stock.picking', record_id => $id, event => 'write' }
    } 1 .. 3] });
}

sub webhook_nginx {
    my ($redis, %o) = @_;
    return fault_nginx(redis => $redis, token => $TOKEN, priority => 'high', %o,
        http => "webhook_redis_connect_timeout 1s;\n" . ($o{http} // ''));
}

sub nothing_queued {
    my ($redis, $name) = @_;
    my @k = grep { /^\{webhook\}:/ } $redis->keys;
    is_deeply(\@k, [], "$name: nothing queued, no seen key");
}

# refused($ng, $name, $count): $count single events and a batch, every
# answer 503 unavailable with Retry-After, none 200
sub refused {
    my ($ng, $name, $count) = @_;
    my ($n503, $max, @other) = (0, 0);
    for my $i (1 .. $count) {
        my $res = $ng->request('POST', $R, \%H, $i % 4 ? body() : batch(), timeout => 20);
        $max = $res->{elapsed} if $res->{elapsed} > $max;
        if ($res->{status} == 503 && ($res->{headers}{'retry-after'} // '') =~ /^\d+\z/
            && ref $res->{json} eq 'HASH' && ($res->{json}{error} // '') eq 'unavailable')
        {
            $n503++;
        } else {
            push @other, dump_res($res);
        }
    }
    is($n503, $count, "$name: $count requests (singles and batches), every one 503 unavailable "
        . 'with Retry-After') or diag join "\n", @other;
    cmp_ok($max, '<', 2 + $MARGIN, sprintf('%s: answered within the timeout (max %.3fs)', $name, $max));
    diag sprintf '%s: %d requests sent, 0 x 200 expected, %d x 503, max latency %.3fs',
        $name, $count, $n503, $max;
}

# log_has($ng, $re, $name): the error log gets a line matching $re
sub log_has {
    my ($ng, $re, $name) = @_;
    my $ok = wait_until(sub { $ng->error_log =~ $re }, timeout => 10);
    ok($ok, "$name: error.log says so ($re)")
        or diag join "\n", grep { /webhook/ } (split /\n/, $ng->error_log)[-15 .. -1];
}

sub serves {
    my ($ng, $name) = @_;
    serves_again(sub { $ng->request('POST', $R, \%H, body(), timeout => 10) }, $name);
}

sub clean_log {
    my ($ng, $name) = @_;
    unlike($ng->error_log, qr/exited on signal|\[alert\]|\[emerg\]/, "$name: no crash nor alert");
}

my $redis = start_redis();
my $ng = webhook_nginx($redis);
serves($ng, 'start');
$redis->flushall;

# ------------------------------------------------------------ OOM
subtest 'maxmemory reached (OOM)' => sub {
    is($redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), 'OK', 'noeviction');
    is($redis->cli('CONFIG', 'SET', 'maxmemory', '1'), 'OK', 'maxmemory 1');
    refused($ng, 'OOM', 12);
    log_has($ng, qr/webhook: redis refused the events: OOM command not allowed/, 'OOM');
    is($redis->cli('CONFIG', 'SET', 'maxmemory', '0'), 'OK', 'maxmemory back to 0');
    nothing_queued($redis, 'OOM');
    serves($ng, 'OOM');
    $redis->flushall;
};

# ------------------------------------------------------------ READONLY
subtest 'READONLY replica' => sub {
    my $master = start_redis();
    is($redis->cli('REPLICAOF', '127.0.0.1', $master->port), 'OK', 'REPLICAOF the second redis');
    ok(wait_until(sub { ($redis->cli('INFO', 'replication') // '') =~ /master_link_status:up/ },
        timeout => 15), 'the replica is in sync');
    refused($ng, 'READONLY', 12);
    log_has($ng, qr/webhook: redis refused the events: READONLY/, 'READONLY');
    nothing_queued($redis, 'READONLY (replica)');
    nothing_queued($master, 'READONLY (master)');
    is($redis->cli('REPLICAOF', 'NO', 'ONE'), 'OK', 'REPLICAOF NO ONE');
    serves($ng, 'READONLY');
    $redis->flushall;
    $master->stop;
};

# ------------------------------------------------------------ LOADING
subtest 'LOADING (DEBUG RELOAD of a slowly loaded dataset)' => sub {
    my $keys = 30000;
    is($redis->cli('DEBUG', 'POPULATE', $keys, 'filler'), 'OK', "DEBUG POPULATE $keys keys");
    # hidden settings made for Redis's own tests: 100 us per key loaded, and
    # answer other clients (with -LOADING) every KB of the file
    my $slow = $redis->cli('CONFIG', 'SET', 'key-load-delay', '100') // 'error';
    $redis->cli('CONFIG', 'SET', 'loading-process-events-interval-bytes', '1024');
    SKIP: {
        skip_or_fail("this redis-server has no key-load-delay ($slow): LOADING cannot be held", 5)
            unless $slow eq 'OK';
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            open STDOUT, '>', '/dev/null';
            exec('redis-cli', '-p', $redis->port, 'DEBUG', 'RELOAD') or POSIX::_exit(127);
        }
        my $loading = wait_until(sub { ($redis->cli('INFO', 'persistence') // '') =~ /^loading:1/m },
            timeout => 10, interval => 0.05);
        ok($loading, 'Redis is loading');
        my $t0 = time;
        refused($ng, 'LOADING', 8);
        my $still = ($redis->cli('INFO', 'persistence') // '') =~ /^loading:1/m;
        ok($still, sprintf('Redis was still loading after the requests (%.2fs)', time - $t0));
        log_has($ng, qr/webhook: redis (refused the events|\S+( \S+)? failed): LOADING/, 'LOADING');
        waitpid($pid, 0);
        is($? >> 8, 0, 'DEBUG RELOAD finished');
    }
    $redis->cli('CONFIG', 'SET', 'key-load-delay', '0');
    $redis->cli('CONFIG', 'SET', 'loading-process-events-interval-bytes', '2097152');
    nothing_queued($redis, 'LOADING');
    serves($ng, 'LOADING');
    $redis->flushall;
};

clean_log($ng, 'OOM, READONLY, LOADING');

# Redis crashes and, started again, loads its dataset for a few seconds: the
# module reconnects into LOADING (its handshake fails), refuses with 503,
# and serves once the dataset is loaded
subtest 'LOADING after a restart (the handshake meets LOADING)' => sub {
    my $r2 = start_redis(extra => [qw(--key-load-delay 100 --loading-process-events-interval-bytes 1024)]);
    is($r2->cli('DEBUG', 'POPULATE', 20000, 'filler'), 'OK', 'DEBUG POPULATE 20000 keys');
    is($r2->cli('SAVE'), 'OK', 'SAVE');
    my $ng2 = webhook_nginx($r2);
    serves($ng2, 'before the crash');
    $r2->cli('DEL', map { "{webhook}:queue:$_" } qw(high medium low));
    $r2->stop(signal => 'KILL');
    my $loaded_at;
    my ($recs, $bad) = run_clients(
        n => 2, dir => $ng2->path('results-loading'), timeout => 60,
        work => sub {
            my ($c) = @_;
            my ($row, @r) = (0);
            my $t0 = time;
            while ($row < 3 && time - $t0 < 30) {
                my $id = 700000 + $c * 1000 + @r;
                my $res = $ng2->request('POST', $R, \%H, json_encode({ event_id => $id,
                    model => 'stock.picking', record_id => 1, event => 'write' }), timeout => 20);
                push @r, { %{ WebhookLoad::Client->record($id, $res) }, answer => sprintf('%.3f', time) };
                $row = $res->{status} == 200 ? $row + 1 : 0;
                sleep 0.05;
            }
            return @r;
        },
        while_running => sub { sleep 0.5; $r2->start; $loaded_at = time },
    );
    is_deeply($bad, [], 'the clients finished');
    my $s = summarize($recs);
    my @early = grep { $_->{status} == 200 && $_->{answer} < $loaded_at - 0.5 } @$recs;
    diag sprintf 'LOADING after a restart: %d requests, %d x 503 while Redis was down or loading, '
        . '%d x 200 after, %d other; max latency %.3fs', $s->{sent}, $s->{unavailable}, $s->{ok},
        $s->{other} + $s->{conn_error}, $s->{max};
    cmp_ok($s->{unavailable}, '>', 0, 'refused while Redis was down or loading');
    is($s->{other} + $s->{conn_error}, 0, 'only 503 and 200');
    is($s->{no_retry_after}, 0, 'every 503 has Retry-After');
    is_deeply(\@early, [], 'no 200 before Redis had loaded its dataset');
    cmp_ok($s->{max}, '<', 2 + $MARGIN, sprintf('answered within the timeout (max %.3fs)', $s->{max}));
    like($ng2->error_log, qr/webhook: redis (AUTH|SELECT|SCRIPT LOAD) failed: LOADING/,
        'the handshake meeting LOADING is logged');
    my %ok = map { $_->{id} => 1 } grep { $_->{status} == 200 } @$recs;
    my @queued = map { $_->{event_id} } envelopes($r2);
    is_deeply([sort @queued], [sort keys %ok], 'Redis holds exactly the events answered 200');
    clean_log($ng2, 'LOADING after a restart');
    ok($ng2->stop(timeout => 20), 'nginx stops gracefully');
    $r2->stop;
};
ok($ng->stop(timeout => 20), 'nginx stops gracefully');
$redis->stop;

# ------------------------------------------------------------ passwords
subtest 'wrong password' => sub {
    my $pw = start_redis(password => 'right-secret-1');
    my $bad = webhook_nginx($pw,
        http => "webhook_redis_password_file %%PREFIX%%/redis.pass;\n",
        files => { 'redis.pass' => "wrong-secret\n" });
    refused($bad, 'wrong password', 8);
    log_has($bad, qr/webhook: redis AUTH failed: WRONGPASS/, 'wrong password');
    unlike($bad->error_log, qr/wrong-secret|right-secret/, 'the passwords are not logged');
    nothing_queued($pw, 'wrong password');
    clean_log($bad, 'wrong password');
    ok($bad->stop(timeout => 20), 'nginx stops gracefully');
    $pw->stop;
};

subtest 'password changed at runtime' => sub {
    my $pw = start_redis(password => 'first-secret-1');
    my $ng = webhook_nginx($pw,
        http => "webhook_redis_password_file %%PREFIX%%/redis.pass;\n",
        files => { 'redis.pass' => "first-secret-1\n" });
    serves($ng, 'right password');
    $pw->flushall;

    is($pw->cli('CONFIG', 'SET', 'requirepass', 'second-secret-2'), 'OK', 'CONFIG SET requirepass');
    $pw->{password} = 'second-secret-2';    # for the harness's redis-cli
    my $res = $ng->request('POST', $R, \%H, body());
    is($res->{status}, 200, 'the authenticated connections keep working');
    $pw->flushall;

    # the module's connections drop (a Redis restart, a network cut ...)
    my $killed = $pw->cli('CLIENT', 'KILL', 'TYPE', 'normal');
    cmp_ok($killed // 0, '>=', 1, "CLIENT KILL TYPE normal: $killed connections");
    refused($ng, 'changed password', 8);
    log_has($ng, qr/webhook: redis AUTH failed: WRONGPASS/, 'changed password');
    nothing_queued($pw, 'changed password');

    # back to the password of the file: service resumes by itself
    is($pw->cli('CONFIG', 'SET', 'requirepass', 'first-secret-1'), 'OK', 'requirepass as before');
    $pw->{password} = 'first-secret-1';
    serves($ng, 'password restored');

    # or the operator's way: the new password in the file, then a reload
    is($pw->cli('CONFIG', 'SET', 'requirepass', 'third-secret-3'), 'OK', 'a third password');
    $pw->{password} = 'third-secret-3';
    $pw->cli('CLIENT', 'KILL', 'TYPE', 'normal');
    refused($ng, 'third password, old file', 4);
    write_file($ng->path('redis.pass'), "third-secret-3\n", 0600);
    ok($ng->reload(wait_old => 1), 'nginx -s reload with the new password file');
    serves($ng, 'after the reload');
    unlike($ng->error_log, qr/first-secret|second-secret|third-secret/, 'no password in the error log');
    clean_log($ng, 'password changes');
    ok($ng->stop(timeout => 20), 'nginx stops gracefully');
    $pw->stop;
};

done_testing;
