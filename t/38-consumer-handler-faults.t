#!/usr/bin/perl
# The reference consumer against its handler and its envelopes (issue 29,
# items 6 and 7; issue 21, item 4): redrive while a consumer fails the
# redriven events again (it moves what was dead when it started), and
# envelopes Python's json cannot read (1,000 levels deep, invalid UTF-8:
# dead-lettered under their envelope id, also when found in the processing
# list at start) or reads only with care (a number of 5,000 digits, also
# pushed through nginx: handled).
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

plan skip_all => consumer_python() . ' cannot import redis (install python3-redis)'
    unless system(consumer_python(), '-c', 'import redis') == 0;

my $Q = '{webhook}';

sub failure {
    my ($redis, $id) = @_;
    return json_decode($redis->cli('HGET', "$Q:failures", $id) // 'null') || {};
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
