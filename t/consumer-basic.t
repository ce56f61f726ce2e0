#!/usr/bin/perl
# The reference consumer (docker/consumer/webhook_consumer.py) against real
# Redis and the real module: events pushed through nginx are consumed in
# priority order and acknowledged; a failing handler retries with backoff and
# ends in the dead list, which the status location counts; redrive moves it
# back; a consumer killed mid-event gets the event again when it restarts;
# recover --all takes over a dead consumer's list; SIGTERM finishes the
# current event.  Also runs the consumer's Python unit tests.
#
# Needs /usr/bin/python3 with redis-py (Debian's python3-redis); skipped
# without it.  CONSUMER_PYTHON selects another interpreter.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use WebhookTest;

my $PYTHON = $ENV{CONSUMER_PYTHON} || '/usr/bin/python3';
my $DIR = "$FindBin::Bin/../docker/consumer";
my $CONSUMER = "$DIR/webhook_consumer.py";

cannot_run("$PYTHON cannot import redis (install python3-redis)")
    unless system($PYTHON, '-c', 'import redis') == 0;

require_module();

my $TOKEN = 'tok-consumer-7f3a91c2';
my $Q = '{webhook}';
my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . receive_location()
        . "        location = /status { webhook_status; }\n"
        . "    }\n",
);

# The test's handler: appends each envelope it is given to $OUT (a JSON
# line), fails for the model in FAIL_MODEL, and for the model in SLOW_MODEL
# touches $OUT.start, sleeps SLOW_SECONDS, then touches $OUT.done.
my $tmp = tempdir('consumer-t-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
my $OUT = "$tmp/seen.jsonl";
write_file("$tmp/test_handler.py", <<'PY');
import json
import os
import time


def handle(envelope):
    out = os.environ["CONSUMER_TEST_OUT"]
    with open(out, "a") as f:
        f.write(json.dumps(envelope) + "\n")
    model = envelope.get("model")
    if model and model == os.environ.get("FAIL_MODEL"):
        raise RuntimeError("handler failed on purpose")
    if model and model == os.environ.get("SLOW_MODEL"):
        open(out + ".start", "w").close()
        time.sleep(float(os.environ.get("SLOW_SECONDS", "1")))
        open(out + ".done", "w").close()
PY

$ENV{PYTHONPATH} = $tmp;
$ENV{PYTHONDONTWRITEBYTECODE} = '1';
$ENV{CONSUMER_TEST_OUT} = $OUT;
$ENV{REDIS_URL} = 'redis://127.0.0.1:' . $redis->port . '/0';
$ENV{WEBHOOK_QUEUE} = $Q;
$ENV{CONSUMER_NAME} = 'worker-1';
$ENV{WEBHOOK_HANDLER} = 'test_handler:handle';
$ENV{MAX_ATTEMPTS} = 3;
$ENV{BACKOFF_BASE} = 0.05;
$ENV{BLOCK_TIMEOUT} = 0.2;
$ENV{LEASE_TTL} = 3;
delete @ENV{qw(FAIL_MODEL SLOW_MODEL SLOW_SECONDS)};

my $SAMPLE = sample_json('odoo-event.json');
my $next_event_id = 1000;

# push(priority => 'high', model => 'sale.order'): one event through nginx;
# returns its envelope id
sub push_event {
    my (%o) = @_;
    my %ev = (%$SAMPLE, event_id => $next_event_id++, priority => $o{priority} // 'medium',
        model => $o{model} // 'sale.order');
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        { Authorization => "Bearer $TOKEN", 'Content-Type' => 'application/json' },
        json_encode(\%ev));
    is_queued($res, $ev{priority}, "push $ev{model} ($ev{priority}) through nginx");
    return $res->{json} ? $res->{json}{id} : '';
}

# consumer(@args): runs the consumer to completion; returns (exit code, log)
sub consumer {
    my ($rc, $out) = WebhookTest::run_cmd([$PYTHON, $CONSUMER, @_], timeout => 60);
    return ($rc, $out);
}

# the first JSON line of a command's output (the log lines are mixed in)
sub json_line {
    my ($out) = @_;
    my ($line) = grep { /^[{\[]/ } split /\n/, $out // '';
    return json_decode($line);
}

sub drain {
    my ($name, @args) = @_;
    my ($rc, $log) = consumer('run', '--drain', @args);
    is($rc, 0, "$name: consumer exits 0") or diag($log);
    return $log;
}

# start_consumer(@args): in the background; returns { pid, log }
my @BACKGROUND;
sub start_consumer {
    my $log = "$tmp/consumer-" . (scalar(@BACKGROUND) + 1) . '.log';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec($PYTHON, $CONSUMER, @_) or POSIX::_exit(127);
    }
    push @BACKGROUND, $pid;
    return { pid => $pid, log => $log };
}

# wait_exit($c, $timeout): its exit code, or undef if still running
sub wait_exit {
    my ($c, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        if (waitpid($c->{pid}, WNOHANG) == $c->{pid}) {
            @BACKGROUND = grep { $_ != $c->{pid} } @BACKGROUND;
            return ($? & 127) ? 128 + ($? & 127) : $? >> 8;
        }
        sleep 0.05;
    }
    return undef;
}

END {
    for my $pid (@BACKGROUND) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

# slow_event_in_handler($priority, $seconds): pushes a slow.model event,
# starts a consumer whose handler takes $seconds over it, and returns
# (envelope id, consumer) once the handler has started
sub slow_event_in_handler {
    my ($priority, $seconds) = @_;
    my $id = push_event(priority => $priority, model => 'slow.model');
    local $ENV{SLOW_MODEL} = 'slow.model';
    local $ENV{SLOW_SECONDS} = $seconds;
    my $c = start_consumer('run');
    ok(wait_until(sub { -e "$OUT.start" }, timeout => 30), 'the handler started')
        or diag(read_file($c->{log}));
    return ($id, $c);
}

# the envelopes the handler was given since the last call, in order
sub seen {
    my $text = read_file($OUT) // '';
    unlink $OUT, "$OUT.start", "$OUT.done";
    return map { json_decode($_) } grep { length } split /\n/, $text;
}

sub ids { join ' ', map { $_->{id} // 'undef' } @_ }

sub status_queue {
    my $res = $ng->request('GET', '/status', {}, undef);
    is($res->{status}, 200, 'status answers 200') or diag(dump_res($res));
    return $res->{json} ? $res->{json}{queues}{$Q} : {};
}

sub keys_left { join ' ', grep { !/^\Q$Q\E:seen:/ } $redis->keys }

# ================================================================ unit tests

{
    local $ENV{REDIS_SERVER} = $ENV{REDIS_SERVER} || 'redis-server';
    my ($rc, $out) = WebhookTest::run_cmd([$PYTHON, "$DIR/test_webhook_consumer.py"],
        timeout => 120);
    is($rc, 0, 'the consumer\'s Python unit tests pass') or diag($out);
}

# ================================================================ one event

{
    my $id = push_event(priority => 'high');
    my ($raw) = $redis->lrange("$Q:queue:high");
    my $log = drain('one event');
    my @seen = seen();
    is(ids(@seen), $id, 'the handler got the event pushed through nginx');
    is($seen[0]{event_id}, $next_event_id - 1, 'with its event_id');
    is($seen[0]{model}, 'sale.order', 'and model');
    is($seen[0]{payload}{data}{name}, $SAMPLE->{data}{name}, 'and payload');
    is($redis->llen("$Q:queue:high"), 0, 'the queue is empty');
    is($redis->llen("$Q:processing:worker-1"), 0, 'the processing list is empty');
    is(keys_left(), '', 'nothing else is left in Redis (attempts, lease, retries)');
    is(status_queue()->{high}{depth}, 0, 'status: depth 0');
    like($log, qr/consumer worker-1 stopped/, 'the consumer logs its stop');
}

# ================================================================ priority order

{
    my %id;
    for my $round (1, 2) {
        for my $p (qw(low medium high)) {
            $id{"$p$round"} = push_event(priority => $p);
        }
    }
    drain('priority order');
    is(ids(seen()), join(' ', map { $id{$_} } qw(high1 high2 medium1 medium2 low1 low2)),
        'high before medium before low, oldest first within a priority');
    is(keys_left(), '', 'all acknowledged');
}

# ================================================================ dead letters, redrive

{
    my $id = push_event(priority => 'medium', model => 'fail.model');
    my ($raw) = $redis->lrange("$Q:queue:medium");
    my $log = do {
        local $ENV{FAIL_MODEL} = 'fail.model';
        drain('failing handler');
    };
    my @seen = seen();
    is(ids(@seen), "$id $id $id", 'the handler was called MAX_ATTEMPTS (3) times');
    my @dead = $redis->lrange("$Q:dead:medium");
    is(scalar(@dead), 1, 'one dead letter in {webhook}:dead:medium');
    is($dead[0], $raw, 'it is the original envelope, as nginx queued it');
    is($redis->llen("$Q:queue:medium"), 0, 'the queue is empty');
    is($redis->llen("$Q:processing:worker-1"), 0, 'the processing list is empty');
    like($log, qr/attempt 1 of 3\), retry in 0\.05s.*\n.*attempt 2 of 3\), retry in 0\.1s/,
        'retries logged with exponential backoff');
    like($log, qr/dead-lettered to \Q$Q\E:dead:medium after 3 attempt\(s\): RuntimeError: handler failed on purpose/,
        'the dead-lettering is logged with the error');

    my $st = status_queue();
    is($st->{medium}{dead}, 1, 'status location: dead 1 for medium');
    is($st->{high}{dead}, 0, 'and 0 for high');
    my $prom = $ng->request('GET', '/status?format=prometheus', {}, undef);
    like($prom->{body},
        qr/^nginx_webhook_dead_letter_depth\{queue="\Q$Q\E",priority="medium"\} 1$/m,
        'Prometheus: nginx_webhook_dead_letter_depth 1 for medium');

    my ($rc, $out) = consumer('dead');
    my $letter = json_line($out) || {};
    is($letter->{id}, $id, 'dead: lists the dead letter') or diag($out);
    is($letter->{failure}{attempts}, 3, 'with its attempts');
    like($letter->{failure}{error} // '', qr/handler failed on purpose/, 'and its error');

    ($rc, $out) = consumer('redrive', '--priority', 'medium');
    is($rc, 0, 'redrive exits 0') or diag($out);
    is_deeply(json_line($out), { medium => 1 }, 'redrive reports 1 moved');
    is($redis->llen("$Q:dead:medium"), 0, 'the dead list is empty');
    is(join(',', $redis->lrange("$Q:queue:medium")), $raw, 'the envelope is back in its queue');
    $st = status_queue();
    is($st->{medium}{dead}, 0, 'status location: dead 0');
    is($st->{medium}{depth}, 1, 'status location: depth 1');

    # fixed handler: the redriven event goes through
    drain('after redrive');
    is(ids(seen()), $id, 'the redriven event is handled');
    is(keys_left(), '', 'nothing left: no attempts, no failure info');
}

# ================================================================ crash recovery

{
    my ($id, $c) = slow_event_in_handler('low', 60);
    kill 'KILL', $c->{pid};
    wait_exit($c, 10);
    my @proc = $redis->lrange("$Q:processing:worker-1");
    is(scalar(@proc), 1, 'killed mid-event: the envelope is in its processing list');
    is(json_decode($proc[0] // 'null')->{id}, $id, 'it is that event');
    is($redis->llen("$Q:queue:low"), 0, 'and not in the queue');
    seen();

    # the same name again: waits for the dead one's lease, then recovers
    my $t0 = time;
    my $log = drain('restart after a crash');
    is(ids(seen()), $id, 'the event left in the processing list is handled on start');
    like($log, qr/recovered event \Q$id\E \(low\) from \Q$Q\E:processing:worker-1: attempt 1/,
        'the recovery is logged and counted as an attempt');
    is($redis->llen("$Q:processing:worker-1"), 0, 'the processing list is empty');
    is(keys_left(), '', 'nothing left');
}

# ================================================================ recover --all

{
    my $id = push_event(priority => 'high');
    # a consumer "ghost" took it and died without a trace of a lease
    $redis->cli('LMOVE', "$Q:queue:high", "$Q:processing:ghost", 'RIGHT', 'LEFT');
    my $alive = push_event(priority => 'high');
    $redis->cli('LMOVE', "$Q:queue:high", "$Q:processing:alive", 'RIGHT', 'LEFT');
    $redis->cli('SET', "$Q:consumer:alive", 'some-live-process', 'EX', 60);
    my ($rc, $out) = consumer('recover', '--all');
    is($rc, 0, 'recover --all exits 0') or diag($out);
    is_deeply(json_line($out), { ghost => 1 },
        'it recovered the dead consumer\'s event only');
    is($redis->llen("$Q:processing:ghost"), 0, 'the dead consumer\'s list is empty');
    is($redis->llen("$Q:processing:alive"), 1, 'the live consumer\'s list is untouched');
    drain('after recover --all');
    is(ids(seen()), $id, 'the recovered event is handled');
    $redis->cli('DEL', "$Q:processing:alive", "$Q:consumer:alive");
    is(keys_left(), '', 'nothing left');
}

# ================================================================ SIGTERM

{
    my ($id, $c) = slow_event_in_handler('medium', 1);
    kill 'TERM', $c->{pid};
    my $rc = wait_exit($c, 30);
    is($rc, 0, 'SIGTERM: the consumer exits 0');
    ok(-e "$OUT.done", 'after the handler finished the current event');
    my $log = read_file($c->{log});
    like($log, qr/SIGTERM: finishing the current event/, 'it logs the signal');
    is(ids(seen()), $id, 'the event was handled once');
    is($redis->llen("$Q:processing:worker-1"), 0, 'and acknowledged');
    is(keys_left(), '', 'the lease is released, nothing left');

    # idle: SIGTERM stops it within the block timeout
    $c = start_consumer('run');
    ok(wait_until(sub { $redis->cli('EXISTS', "$Q:consumer:worker-1") }, timeout => 30),
        'an idle consumer holds its lease') or diag(read_file($c->{log}));
    kill 'TERM', $c->{pid};
    is(wait_exit($c, 30), 0, 'an idle consumer stops on SIGTERM');
}

# ================================================================ wrong settings

{
    my ($rc, $out) = consumer('run', '--handler', 'test_handler:missing');
    is($rc, 1, 'an unknown handler: exit 1');
    like($out, qr/cannot load handler test_handler:missing/, 'with a message');
    ($rc, $out) = consumer('run', '--max-attempts', 0);
    is($rc, 1, 'max attempts 0: exit 1');
    like($out, qr/max attempts must be 1 or more/, 'with a message');
}

done_testing();
