#!/usr/bin/perl
# The reference consumer against its handler and its envelopes (issue 29,
# items 3, 4, 6 and 7; issue 21, item 4): a handler that never returns (it
# is interrupted at HANDLER_TIMEOUT and the event counts as a failed
# attempt; one that swallows the interruption makes the consumer exit
# non-zero, saying why, for its supervisor to start it again), the lease
# renewed while a handler runs, SIGTERM during such a handler, every
# BaseException from a handler (a failed attempt, never an exit), redrive
# while a consumer fails the redriven events again (it moves what was dead
# when it started), and envelopes Python's json cannot read (1,000 levels
# deep, invalid UTF-8: dead-lettered under their envelope id, also when
# found in the processing list at start) or reads only with care (a number
# of 5,000 digits, also pushed through nginx: handled).
#
# Needs /usr/bin/python3 with redis-py; skipped without it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;
use WebhookConsumer;

cannot_run(consumer_python() . ' cannot import redis (install python3-redis)')
    unless system(consumer_python(), '-c', 'import redis') == 0;

my $Q = '{webhook}';

sub dead_ids {
    my ($redis, $p) = @_;
    return map { json_decode($_) ? json_decode($_)->{id} : $_ }
        reverse $redis->lrange("$Q:dead:" . ($p // 'high'));
}

sub failure {
    my ($redis, $id) = @_;
    return json_decode($redis->cli('HGET', "$Q:failures", $id) // 'null') || {};
}

# ================================================ a handler that never returns

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis,
        env => { MAX_ATTEMPTS => 2, HANDLER_TIMEOUT => 1.5 });
    $c->enqueue(envelope(id => 'wedge-1', model => 'forever'),
             envelope(id => 'wedge-2'), envelope(id => 'wedge-3'));
    my $lapsed = 0;
    my $exits = $c->supervise(seconds => 20,
        until => sub { $c->done_at_least(2) && $redis->llen("$Q:dead:high") == 1 },
        during => sub {
            $lapsed++ if $c->lapsed;
        });
    my %f = $c->note_figures('handler that never returns', 3, $exits);
    is($exits, 0, 'the consumer never exited') or diag($c->logs);
    is($f{done}, 2, 'the events after it were done');
    is(join(' ', dead_ids($redis)), 'wedge-1',
       'the wedged event was dead-lettered after 2 attempts');
    is($c->runs_of('wedge-1'), 2, 'its handler ran twice');
    like(failure($redis, 'wedge-1')->{error} // '', qr/HandlerTimeout: .*1\.5 ?s/,
         'the failure says the handler passed HANDLER_TIMEOUT');
    like($c->logs, qr/did not return within 1\.5s/, 'and the log says so');
    is($lapsed, 0, 'the lease never lapsed meanwhile');
}

# ================================================ SIGTERM during such a handler

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis, env => { HANDLER_TIMEOUT => 1.5 });
    $c->enqueue(envelope(id => 'term-1', model => 'forever'));
    my $p = $c->start('run');
    ok(wait_until(sub { $c->started('term-1') }, timeout => 30), 'the handler started');
    kill 'TERM', $p->{pid};
    my $rc = $c->wait_exit($p, 10);
    is($rc, 0, 'SIGTERM: the consumer stops after the handler\'s deadline')
        or diag($c->logs);
    $c->stop($p);
    is($redis->cli('ZCARD', "$Q:retry:high"), 1, 'the event waits for its retry');
}

# ================================================ a handler that cannot be interrupted

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis,
        env => { MAX_ATTEMPTS => 2, HANDLER_TIMEOUT => 1 });
    $c->enqueue(envelope(id => 'stub-1', model => 'stubborn'), envelope(id => 'stub-2'));
    my $exits = $c->supervise(seconds => 30,
        until => sub { $c->done_at_least(1) && $redis->llen("$Q:dead:high") == 1 });
    my %f = $c->note_figures('handler that swallows the interruption', 2, $exits);
    is($exits, 2, 'the consumer exited once per attempt, for its supervisor')
        or diag($c->logs);
    is_deeply([grep { $_ } @{ $c->{exits} }[0 .. 1]], [4, 4], 'with exit code 4');
    like($c->logs, qr/CRITICAL .*stub-1.* ignored the interruption/,
         'saying which event and why');
    is(join(' ', dead_ids($redis)), 'stub-1', 'the event was dead-lettered after 2 attempts');
    is($c->done_of('stub-2'), 1, 'the next event was done');
}

# ================================================ the lease is renewed during a handler

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis,
        env => { LEASE_TTL => 3, HANDLER_TIMEOUT => 2.8 });
    $c->enqueue(envelope(id => 'long-1', model => 'sleep:2.6'));
    my $p = $c->start('run');
    ok(wait_until(sub { $c->started('long-1') }, timeout => 30), 'the handler started');
    sleep 2;
    my $pttl = $redis->cli('PTTL', "$Q:consumer:c1");
    note("figures: lease PTTL 2 s into a 2.6 s handler (LEASE_TTL 3): $pttl ms");
    cmp_ok($pttl, '>', 1500, 'the lease was renewed while the handler ran');
    ok(wait_until(sub { $c->done_of('long-1') }, timeout => 10), 'the handler returned');
    is($c->stop($p), 0, 'the consumer stops on SIGTERM');
    is($c->runs_of('long-1'), 1, 'and ran the handler once');
}

# ================================================ BaseException from a handler

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis, env => { MAX_ATTEMPTS => 2 });
    my @kinds = qw(KeyboardInterrupt SystemExit SystemExit0 SystemExit1
                   GeneratorExit CancelledError);
    $c->enqueue((map { envelope(id => "base-$_", model => "raise:$_") } @kinds),
             envelope(id => 'base-ok'));
    my $exits = $c->supervise(seconds => 30,
        until => sub { $c->done_at_least(1) && $redis->llen("$Q:dead:high") == @kinds });
    my %f = $c->note_figures('BaseException from a handler', @kinds + 1, $exits);
    is($exits, 0, 'no BaseException stopped the consumer') or diag($c->logs);
    is($f{runs}, 2 * @kinds + 1, 'each raising event ran MAX_ATTEMPTS (2) times, then dead');
    is(join(' ', sort(dead_ids($redis))), join(' ', sort map { "base-$_" } @kinds),
       'all six are dead letters');
    like(failure($redis, 'base-SystemExit0')->{error} // '', qr/^SystemExit: 0/,
         'the failure names the exception');
    is($c->done_of('base-ok'), 1, 'the other event was done');
}

# ================================================ redrive while a consumer fails them again

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis, env => { MAX_ATTEMPTS => 1 });
    my @dead = map { envelope(id => "dead-$_", model => 'fail') } 1 .. 300;
    $redis->cli('LPUSH', "$Q:dead:high", @dead[$_ * 100 .. $_ * 100 + 99]) for 0 .. 2;
    my $p = $c->start('run');
    ok(wait_until(sub { $redis->cli('EXISTS', "$Q:consumer:c1") }, timeout => 30),
       'a consumer whose handler fails runs');
    my ($rc, $out) = $c->run('redrive');
    my ($line) = grep { /^\{/ } split /\n/, $out;
    my $moved = (json_decode($line) || {})->{high} // -1;
    ok(wait_until(sub { $redis->llen("$Q:queue:high") == 0
                        && $redis->llen("$Q:processing:c1") == 0 }, timeout => 60),
       'the consumer took every redriven event');
    $c->stop($p);
    my %f = $c->note_figures("redrive of 300 dead letters (printed $moved)", 300, 0);
    is($rc, 0, 'redrive exits 0');
    is($moved, 300, 'redrive moved the 300 that were dead when it started');
    is($f{runs}, 300, 'the handler ran 300 times');
    is($redis->llen("$Q:dead:high"), 300, 'the 300 are dead again');
}

# ================================================ envelopes Python's json cannot read

{
    my $redis = start_redis();
    my $c = WebhookConsumer->new(redis => $redis);
    my $deep = sub { envelope(id => $_[0], raw_payload => '{"a":' . ('[' x 1000)
                              . (']' x 1000) . '}') };
    my %raw = (
        'deep-0' => $deep->('deep-0'),
        'deep-1' => $deep->('deep-1'),
        'utf8-1' => envelope(id => 'utf8-1', raw_payload => "{\"name\":\"caf\xc3(\"}"),
        'big-1'  => envelope(id => 'big-1', model => 'digits',
                             raw_payload => '{"n":' . ('7' x 5000) . '}'),
    );
    # one in the processing list, as if the consumer had died on it
    $redis->cli('LPUSH', "$Q:processing:c1", $raw{'deep-0'});
    $c->enqueue(@raw{qw(deep-1 utf8-1 big-1)}, envelope(id => 'last'));
    my $exits = $c->supervise(seconds => 20,
        until => sub { $c->done_of('last') && $redis->llen("$Q:dead:high") == 3 });
    my %f = $c->note_figures('undecodable envelopes', 5, $exits);
    is($exits, 0, 'the consumer never exited') or diag($c->logs);
    # (JSON::PP reads neither of them: the id from the envelope's start)
    my %dead = map { /^\{"id":"([^"]+)"/ ? ($1 => $_) : () } $redis->lrange("$Q:dead:high");
    for my $id (qw(deep-0 deep-1 utf8-1)) {
        is($dead{$id}, $raw{$id}, "$id is a dead letter, byte for byte");
        like(failure($redis, $id)->{error} // '', qr/^invalid envelope: /,
             "its failure is filed under its envelope id");
    }
    like(failure($redis, 'deep-1')->{error} // '', qr/RecursionError|nest/,
         'the deep one says why');
    my ($digits) = grep { $_->{phase} eq 'digits' } $c->notes;
    is($digits->{id} // '', 'big-1', 'the 5,000-digit number was handled');
    is(($digits->{type} // '') . ' ' . ($digits->{digits} // ''), 'Decimal 5000',
       'as a Decimal with its 5,000 digits');
    my ($rc, $out) = $c->run('dead');
    is($rc, 0, 'dead lists them') or diag($out);
    like($out, qr/"id": "deep-1"/, 'under their ids');
}

# ================================================ through nginx: a number of 5,000 digits

SKIP: {
    skip 'the module is not built', 3 unless -f module_path();
    my $TOKEN = 'tok-handler-faults-1b7e';
    my $redis = start_redis();
    my $ng = start_nginx(
        files => { 'webhook.tokens' => "$TOKEN\n" },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
            . receive_location() . "    }\n");
    my $body = '{"event_id":9001,"model":"digits","record_id":7,"event":"write",'
        . '"priority":"high","n":' . ('9' x 5000) . '}';
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        { Authorization => "Bearer $TOKEN", 'Content-Type' => 'application/json' }, $body);
    is($res->{status}, 200, 'the module queues an event with a 5,000-digit number')
        or diag(dump_res($res));
    my $c = WebhookConsumer->new(redis => $redis);
    my ($rc, $log) = $c->run('run', '--drain');
    is($rc, 0, 'the consumer drains it') or diag($log);
    my ($digits) = grep { $_->{phase} eq 'digits' } $c->notes;
    is(($digits->{type} // '') . ' ' . ($digits->{digits} // ''), 'Decimal 5000',
       'and its handler reads the number');
}

done_testing();
