#!/usr/bin/perl
# Reload (HUP) with requests in flight; token file re-read on reload; no
# leaked sockets ("open socket") nor alerts, also after the final QUIT.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $OLD = 'tok-reload-old-7f7f7f';
my $NEW = 'tok-reload-new-8e8e8e';
my @QUEUES = map { "{webhook}:queue:$_" } qw(high medium low);

my $redis = start_redis();
my $ng = start_nginx(
    workers => 2,
    files => { 'webhook.tokens' => "$OLD\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 2s;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . receive_location(default_priority => 'medium')
        . "    }\n",
);

sub body { json_encode({ event_id => $_[0], model => 'sale.order', record_id => $_[0], event => 'write' }) }
sub hdr { ('Content-Type' => 'application/json', Authorization => 'Bearer ' . ($_[0] // $OLD)) }

sub envelopes {
    my @e;
    push @e, $redis->take($_) for @QUEUES;
    return @e;
}

sub bad_log_lines {
    my @l = grep { /open socket|\[alert\]/ } split /\n/, $ng->error_log;
    return @l;
}

# run_children(N, sub { my ($child_no) = @_; ... return list of "status id" lines })
# Each child writes its result lines to a file; returns all lines plus
# the children that hung or died.
sub run_children {
    my ($n, $work, %o) = @_;
    my $dir = $ng->path('results');
    mkdir $dir;
    my %pids;
    for my $c (1 .. $n) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            my @lines = eval { $work->($c) };
            push @lines, "DIED $@" if $@;
            write_file("$dir/$c.$$", join('', map { "$_\n" } @lines));
            POSIX::_exit(0);
        }
        $pids{$pid} = $c;
    }
    $o{while_running}->() if $o{while_running};
    my $deadline = time + ($o{timeout} // 90);
    my @hung;
    for my $pid (keys %pids) {
        unless (WebhookTest::wait_pid($pid, $deadline - time)) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            push @hung, $pids{$pid};
        }
    }
    my @lines;
    for my $f (glob "$dir/*") {
        push @lines, split /\n/, read_file($f);
        unlink $f;
    }
    return (\@lines, \@hung);
}

sub post_line {
    my ($id, %o) = @_;
    my $res = $ng->request('POST', $R, { hdr() }, body($id), timeout => 30);
    return $res->{status} == 0
        ? "ERR $id $res->{error}"
        : "$res->{status} $id " . ($res->{json} && ref $res->{json} eq 'HASH' ? $res->{json}{id} // '-' : '-');
}

# slow_line($id): headers and half the body, a pause (the reload happens
# meanwhile), then the rest
sub slow_line {
    my ($id, $pause) = @_;
    my $b = body($id);
    my $half = int(length($b) / 2);
    my $res = $ng->raw(timeout => 30, delay => $pause, pieces => [
        "POST $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nAuthorization: Bearer $OLD\r\n"
        . 'Content-Length: ' . length($b) . "\r\n\r\n" . substr($b, 0, $half),
        substr($b, $half)]);
    return $res->{status} == 0
        ? "ERR $id $res->{error}"
        : "$res->{status} $id " . (ref $res->{json} eq 'HASH' ? $res->{json}{id} // '-' : '-');
}

# check_results($lines, $hung, $expected_count, $name)
sub check_results {
    my ($lines, $hung, $count, $name) = @_;
    is_deeply($hung, [], "$name: no client hung");
    is(scalar @$lines, $count, "$name: every request answered ($count)");
    my @bad = grep { !/^(200|503) / } @$lines;
    is_deeply(\@bad, [], "$name: only 200 or 503, no connection error") or diag join "\n", @bad;
    my @ok_ids = sort map { (split / /)[2] } grep { /^200 / } @$lines;
    my @n503 = grep { /^503 / } @$lines;
    note "$name: " . scalar(@ok_ids) . ' x 200, ' . scalar(@n503) . ' x 503';
    my @env = envelopes();
    $redis->flushall;
    is(scalar @env, scalar @ok_ids, "$name: envelopes in Redis (" . scalar(@env) . ") = 200s (" . scalar(@ok_ids) . ')');
    is_deeply([sort map { $_->{env}{id} // 'undef' } @env], \@ok_ids, "$name: envelope ids are the answered ids");
}

# warm up: both workers connected
for (1 .. 4) {
    my $res = $ng->request('POST', $R, { hdr() }, body(90 + $_));
    is_queued($res, 'medium', "warm-up $_");
}
$redis->flushall;

subtest 'reload with requests in flight' => sub {
    my ($lines, $hung) = run_children(6, sub {
        my ($c) = @_;
        my @l;
        if ($c == 6) {    # slow senders, across the reloads
            push @l, slow_line(6000 + $_, 0.8) for 1 .. 3;
            return @l;
        }
        for my $i (1 .. 10) {
            push @l, post_line($c * 100 + $i);
            sleep 0.03;
        }
        return @l;
    }, while_running => sub {
        sleep 0.15;
        ok($ng->reload, 'first reload: new workers up');
        ok($ng->reload, 'second reload: new workers up');
    });
    check_results($lines, $hung, 53, 'in flight');
    ok(wait_until(sub { $ng->workers == 2 }, timeout => 20), 'old workers exit')
        or diag 'workers: ' . join ' ', $ng->workers;
    is_deeply([bad_log_lines()], [], 'no "open socket" nor [alert] in the error log after the reloads');
};

subtest 'reload while requests wait for Redis (DEBUG SLEEP 1)' => sub {
    my $pid = $redis->sleep_in_background(1, 0.2);
    my ($lines, $hung) = run_children(4, sub { post_line(7000 + $_[0]) },
        while_running => sub { sleep 0.2; ok($ng->reload, 'reload: new workers up') });
    waitpid($pid, 0);
    check_results($lines, $hung, 4, 'waiting for Redis');
    my $n200 = grep { /^200 / } @$lines;
    cmp_ok($n200, '>', 0, 'some of them got 200 (Redis answered within webhook_redis_timeout)');
    ok(wait_until(sub { $ng->workers == 2 }, timeout => 20), 'old workers exit');
    is_deeply([bad_log_lines()], [], 'no "open socket" nor [alert] in the error log');
};

subtest 'token file is re-read on reload' => sub {
    my $res = $ng->request('POST', $R, { hdr($OLD) }, body(8001));
    is_queued($res, 'medium', 'old token works before the change');
    write_file($ng->path('webhook.tokens'), "# rotated\n$NEW\n");
    $res = $ng->request('POST', $R, { hdr($NEW) }, body(8002));
    is_json_error($res, 401, 'unauthorized', 'new token refused before the reload (file read at config time)');
    ok($ng->reload(wait_old => 1), 'reload: new workers up, old ones gone');
    for my $i (1 .. 4) {    # several times: both workers
        $res = $ng->request('POST', $R, { hdr($OLD) }, body(8100 + $i));
        is_json_error($res, 401, 'unauthorized', "old token after the reload: 401 ($i)");
        $res = $ng->request('POST', $R, { hdr($NEW) }, body(8200 + $i));
        is_queued($res, 'medium', "new token after the reload: 200 ($i)");
    }
    my @env = envelopes();
    $redis->flushall;
    is_deeply([sort map { $_->{env}{payload}{event_id} } @env], [8001, 8201 .. 8204],
        'only the accepted requests were queued');
};

subtest 'a broken token file on reload keeps the running config' => sub {
    write_file($ng->path('webhook.tokens'), "# nothing\n");
    my %old = map { $_ => 1 } $ng->workers;
    kill 'HUP', $ng->pid;
    ok(wait_until(sub { $ng->error_log =~ /webhook_token_file/ }, timeout => 10),
        'the failed reload is logged, naming webhook_token_file')
        or diag join "\n", (split /\n/, $ng->error_log)[-10 .. -1];
    sleep 0.5;
    is_deeply([sort $ng->workers], [sort keys %old], 'the same workers keep running');
    my $res = $ng->request('POST', $R, { hdr($NEW) }, body(8300));
    is_queued($res, 'medium', 'the last good token still works');
    $redis->flushall;
    write_file($ng->path('webhook.tokens'), "$NEW\n");
};

my $graceful = $ng->stop(timeout => 20);
ok($graceful, 'nginx exits on QUIT within 20 s (no timer or connection keeps it alive)');
is_deeply([bad_log_lines()], [], 'no "open socket" nor [alert] in the error log after QUIT');

done_testing;
