#!/usr/bin/perl
# webhook-reconcile against the real module, a real Redis and the Odoo
# stand-in (t/lib/odoo_standin.py), over XML-RPC (Odoo 17) and JSON-2
# (Odoo 19).  The stand-in's "cron" and "instant" send as the addon's two
# paths do, and record each outcome as the addon records it.  Events are
# recorded while:
#   - nginx is stopped (503 "Connection error", sent), and on the instant
#     path (failed);
#   - Odoo's token is not nginx's (401), the body is over
#     client_max_body_size (413), limit_req refuses (429);
#   - Redis sleeps past the subscriber's timeout: 408, but the event is in
#     Redis;
#   - and there are dead events, old pending and processing ones, a young
#     pending one, an event with a template;
# mixed with acknowledged ones (queued, spooled while Redis was down,
# duplicate, and the instant path's 200).  After one pass, every event Odoo
# holds for the subscriber (but the young pending one) is in Redis exactly
# once, the acknowledged ones were not replayed, nothing was written to
# Odoo, and --once exits 0; a second pass replays nothing.  The status
# location shows the replays and the reconciler's heartbeat.  Then: the
# API found by auto-detection, the subscriber found by its endpoint_url,
# every option from the environment, a wrong API key (refused, nothing
# replayed, --once exits 1, the error in the status).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use WebhookTest;
use WebhookOdoo;

my $why = reconcile_skip_reason();
cannot_run($why) if $why;
require_module();

my $Q = $WebhookOdoo::QUEUE;
my $R = $WebhookOdoo::RECEIVE;
my $TOKEN = $WebhookOdoo::TOKEN;
my $EVENT = sample_json('odoo-event.json');

sub setup {
    my $t = WebhookOdoo::setup(@_);
    return ($t->{redis}, $t->{ng}, $t->{odoo}, $t);
}

for my $api (qw(xmlrpc json2)) {
    subtest "every event Odoo holds, in Redis exactly once ($api)" => sub {
        my ($redis, $ng, $odoo, $t) = setup(version => $api eq 'json2' ? 19 : 17);
        my (%kind, @acked);
        my $old = do { my @t = gmtime(time - 3600); sprintf '%04d-%02d-%02d %02d:%02d:%02d',
            $t[5] + 1900, $t[4] + 1, @t[3, 2, 1, 0] };

        # acknowledged: queued by the cron
        my @ids = $odoo->new_events(map { event(priority => $_) } qw(high medium low));
        my $sent = $odoo->control(cron => { limit => 100 })->{sent};
        is_deeply([map { $sent->{$_} } @ids], [200, 200, 200], 'three events queued by the cron');
        push @acked, @ids;

        # nginx stopped: 503 "Connection error", sent; and the instant path: failed
        $ng->stop;
        my @down = $odoo->new_events(map { event(record_id => 2000 + $_) } 1 .. 3);
        $sent = $odoo->control(cron => { limit => 100 })->{sent};
        is_deeply([map { $sent->{$_} } @down], [503, 503, 503], 'nginx down: the addon records 503');
        my ($failed) = $odoo->new_events(event(record_id => 2004));
        $sent = $odoo->control(instant => [$failed])->{sent};
        is($sent->{$failed}, 503, 'nginx down on the instant path');
        $kind{$_} = 'nginx down' for @down;
        $kind{$failed} = 'failed';
        $ng->start;

        # a token rotated on Odoo's side only: 401
        $odoo->subscriber($ng, token => 'tok-rotated');
        my ($e401) = $odoo->new_events(event(record_id => 2005));
        is($odoo->control(cron => {})->{sent}{$e401}, 401, 'a token Odoo has and nginx not: 401');
        $kind{$e401} = '401';
        $odoo->subscriber($ng, timeout => 30);

        # a body over client_max_body_size (nginx's limit was raised since)
        WebhookOdoo::reconfigure($t, max_body => '1k');
        my ($e413) = $odoo->new_events(event(record_id => 2006, payload => { %{ $EVENT->{data} },
            note => 'x' x 2000 }));
        is($odoo->control(cron => {})->{sent}{$e413}, 413, 'a body over client_max_body_size: 413');
        $kind{$e413} = '413';

        # limit_req: the first one passes, the next is refused
        WebhookOdoo::reconfigure($t, limit => 1);
        my ($ok429, $e429) = $odoo->new_events(event(record_id => 2007), event(record_id => 2008));
        $sent = $odoo->control(cron => {})->{sent};
        is_deeply([$sent->{$ok429}, $sent->{$e429}], [200, 429], 'limit_req: 200, then 429');
        push @acked, $ok429;
        $kind{$e429} = '429';
        WebhookOdoo::reconfigure($t);

        # Redis asleep past the subscriber's timeout: 408, though the event
        # reaches Redis once it wakes
        $odoo->subscriber($ng, timeout => 1);
        my ($e408) = $odoo->new_events(event(record_id => 2009));
        my $sleeper = $redis->sleep_in_background(3);
        is($odoo->control(cron => {})->{sent}{$e408}, 408, 'Redis asleep past the timeout: 408');
        waitpid($sleeper, 0);
        ok(wait_until(sub { in_redis($redis)->{$e408} }, timeout => 10),
            'the 408 event is in Redis all the same');
        $kind{$e408} = '408, in Redis';
        $odoo->subscriber($ng, timeout => 30);

        # Redis down: spooled (acknowledged), drained once Redis is back
        $redis->stop;
        my ($spooled) = $odoo->new_events(event(record_id => 2010));
        is($odoo->control(cron => {})->{sent}{$spooled}, 200, 'Redis down: spooled, 200');
        $redis->start;
        ok(wait_until(sub { in_redis($redis)->{$spooled} }, timeout => 20), 'the spooled event drained');
        push @acked, $spooled;

        # the instant path's 200 (no body recorded), then the same event
        # sent again by the queue path: duplicate
        my ($dup) = $odoo->new_events(event(record_id => 2011));
        is($odoo->control(instant => [$dup])->{sent}{$dup}, 200, 'the instant path: 200');
        $odoo->control(update => [{ id => $dup, status => 'pending' }]);
        is($odoo->control(cron => {})->{sent}{$dup}, 200, 'again by the queue path: 200 (duplicate)');
        push @acked, $dup;

        # dead, old pending, old processing, young pending, a template
        my ($dead, $pend, $proc, $young, $tpl) = $odoo->new_events(
            event(record_id => 2012, status => 'dead'),
            event(record_id => 2013, create_date => $old, timestamp => $old),
            event(record_id => 2014, status => 'processing', create_date => $old, timestamp => $old),
            event(record_id => 2015),
            event(record_id => 2016, status => 'failed', template_id => 4));
        $kind{$dead} = 'dead';
        $kind{$pend} = 'old pending';
        $kind{$proc} = 'old processing';
        $kind{$tpl} = 'failed, with a template';

        my %odoo_events = map { $_->{id} => $_ } @{ $odoo->events };
        my %before = %{ in_redis($redis) };
        is($before{$_}, 1, "acknowledged event $_ is in Redis once") for @acked;
        is($before{$_}, undef, "event $_ ($kind{$_}) is not in Redis") for grep { $kind{$_} !~ /in Redis/ } sort keys %kind;
        $odoo->control(reset_log => 1);

        my ($rc, $out) = run_reconcile(reconcile_args($t, '--odoo-api', $api, '--once'));
        is($rc, 0, '--once exits 0: every event not acknowledged was answered 200') or diag $out;
        my $summary = summary($out);
        is($summary->{replayed}, scalar(keys %kind), 'it replayed ' . scalar(keys %kind) . ' events');
        is($summary->{young}, 1, 'and left the young pending one');
        like($out, qr/event $tpl has template 4: replayed in the addon's event shape/,
            'the template event is said to be replayed without its template');

        my $after = in_redis($redis);
        my @ids_odoo = sort { $a <=> $b } keys %odoo_events;
        my @wrong = grep { $_ != $young && ($after->{$_} // 0) != 1 } @ids_odoo;
        is_deeply(\@wrong, [], 'every event Odoo holds for the subscriber is in Redis exactly once')
            or diag json_encode({ redis => $after, kinds => \%kind });
        is($after->{$young}, undef, 'the young pending event was not replayed');
        my @held = grep { $_ != $young } @ids_odoo;
        note(sprintf 'figures (%s): events recorded by Odoo %d (and 1 pending within the grace), '
            . 'not acknowledged %d, replayed %d, in Redis %d, lost %d, doubled %d', $api,
            scalar(@held), scalar(keys %kind), $summary->{replayed},
            scalar(grep { $after->{$_} } @held), scalar(grep { !$after->{$_} } @held),
            scalar(grep { ($after->{$_} // 0) > 1 } @held));
        is_deeply([grep { !$odoo_events{$_} } keys %$after], [], 'nothing else in Redis');

        my ($rec, $replays) = reconciler_status($ng);
        is($replays->{queued}, scalar(keys %kind) - 1, 'replays.queued: the events not in Redis');
        is($replays->{duplicate}, 1, 'replays.duplicate: the 408 one, already there');
        is(($replays->{queued} // 0) + ($replays->{duplicate} // 0), scalar(keys %kind),
            'no acknowledged event was replayed');
        ok($rec, 'the status shows reconciler odoo-prod/3');
        is($rec->{replayed}, scalar(keys %kind), 'its replayed count');
        is($rec->{waiting}, 0, 'nothing waiting');
        ok(!$rec->{failing}, 'not failing');

        # the replay is the addon's event shape
        my ($tenv) = grep { ($_->{event_id} // 0) == $tpl }
            map { json_decode($_) } map { $redis->lrange("$Q:queue:$_") } qw(high medium low);
        is_deeply([sort keys %{ $tenv->{payload} }],
            [sort qw(event_id model record_id event timestamp priority category data changed_fields)],
            'a replayed envelope has the fields of _build_payload');
        is($tenv->{payload}{timestamp}, $odoo_events{$tpl}{timestamp} =~ s/ /T/r,
            'its timestamp as the addon writes it (isoformat)');
        is_deeply($tenv->{payload}{data}, $EVENT->{data}, 'its data: the payload');
        is($tenv->{sender}, 'odoo-prod', 'its sender: the token of the Odoo database');

        my $log = $odoo->calls;
        is($log->{writes}, 0, 'nothing was written to Odoo');
        my @big = grep { !defined $_->[3] || $_->[3] > 4 } grep { $_->[2] eq 'search_read' && $_->[1] eq 'webhook.event' } @{ $log->{calls} };
        # the pages are of --page records; the replays' reads take the ids
        # of one page
        is_deeply([grep { !defined $_->[3] } @big], [@big], 'every webhook.event page of at most --page records (4), but the reads by id');
        is(scalar(grep { $_->[0] ne $api } @{ $log->{calls} }), 0, "every call over $api");

        ($rc, $out) = run_reconcile(reconcile_args($t, '--odoo-api', $api, '--once'));
        is($rc, 0, 'a second pass exits 0');
        like($out, qr/"replayed": 0/, 'and replays nothing');
        is_deeply(in_redis($redis), $after, 'Redis unchanged');

        # the young one, sent later by the cron, is there once too
        $odoo->control(cron => {});
        is(in_redis($redis)->{$young}, 1, 'the young pending event, sent later by the addon: once');
    };
}

subtest 'nginx down for a stretch of 150 events among 300' => sub {
    my ($redis, $ng, $odoo, $t) = setup(version => 17);
    my @before = $odoo->new_events(map { event(record_id => 4000 + $_, priority => (qw(high medium low))[$_ % 3]) } 1 .. 100);
    $odoo->control(cron => { limit => 100 });
    $ng->stop;
    my @down = $odoo->new_events(map { event(record_id => 4100 + $_) } 1 .. 150);
    $odoo->control(cron => { limit => 100 }) for 1 .. 2;
    $ng->start;
    my @after = $odoo->new_events(map { event(record_id => 4300 + $_) } 1 .. 50);
    $odoo->control(cron => { limit => 100 });
    my %codes;
    $codes{ $_->{response_code} }++ for @{ $odoo->events };
    is_deeply(\%codes, { 200 => 150, 503 => 150 }, 'Odoo recorded 150 events answered 200, 150 "503 Connection error"');
    my $held = scalar(@before) + scalar(@down) + scalar(@after);
    my $r = in_redis($redis);
    my $lost_before = grep { !$r->{$_} } @before, @down, @after;
    is($lost_before, 150, 'without the reconciler, 150 of them are not in Redis');

    my ($rc, $out) = run_reconcile(reconcile_args($t, '--page', 500, '--once'));
    is($rc, 0, 'one pass: exits 0') or diag $out;
    my $summary = summary($out);
    $r = in_redis($redis);
    my @all = (@before, @down, @after);
    my $lost = grep { !$r->{$_} } @all;
    my $doubled = grep { ($r->{$_} // 0) > 1 } @all;
    is($lost, 0, 'after it, none is missing');
    is($doubled, 0, 'none is doubled');
    is($summary->{replayed}, 150, 'it replayed the 150');
    note(sprintf 'figures (nginx down): events recorded by Odoo %d, not acknowledged %d, replayed %d, '
        . 'in Redis %d (before the pass: %d), lost %d, doubled %d', $held, $summary->{found},
        $summary->{replayed}, scalar(grep { $r->{$_} } @all), $held - $lost_before, $lost, $doubled);
};

subtest 'auto-detection, the subscriber by its endpoint_url, the environment' => sub {
    for my $version (17, 19) {
        my ($redis, $ng, $odoo, $t) = setup(version => $version);
        $ng->stop;
        my @ids = $odoo->new_events(map { event(record_id => 3000 + $_) } 1 .. 2);
        $odoo->control(cron => {});
        $ng->start;
        my $dir = $odoo->dir;
        my ($rc, $out) = run_reconcile([], env => {
            ODOO_URL => $odoo->url, ODOO_DB => 'odoo-prod', ODOO_USER => 'reconciler',
            ODOO_KEY_FILE => "$dir/key", RECEIVE_URL => $ng->url($R),
            RECEIVE_TOKEN_FILE => "$dir/token", REDIS_URL => 'redis://127.0.0.1:' . $redis->port . '/0',
            WEBHOOK_QUEUE => $Q, RECONCILE_ONCE => 1, RECONCILE_GRACE => '5m',
            RECONCILE_INTERVAL => '1s', ODOO_API => undef, ODOO_SUBSCRIBER_ID => undef },
            $version >= 19 ? (via => 'consumer') : ());
        is($rc, 0, "Odoo $version, every setting from the environment"
            . ($version >= 19 ? ', as `webhook_consumer.py reconcile`' : '') . ': exits 0') or diag $out;
        my $api = $version >= 19 ? 'json2' : 'xmlrpc';
        like($out, qr/speaks $api/, "auto: $api");
        like($out, qr/subscriber 3 \(nginx\) has endpoint_url/, 'the subscriber found by its endpoint_url');
        is(in_redis($redis)->{$_}, 1, "event $_ in Redis") for @ids;
    }
};

subtest 'a wrong API key' => sub {
    for my $api (qw(xmlrpc json2)) {
        my ($redis, $ng, $odoo, $t) = setup(version => 19);
        $ng->stop;
        my ($id) = $odoo->new_events(event());
        $odoo->control(cron => {});
        $ng->start;
        write_file($odoo->dir . '/key', "not-the-key\n", 0600);
        my ($rc, $out) = run_reconcile(reconcile_args($t, '--odoo-api', $api, '--once'));
        is($rc, 1, "$api: --once exits 1") or diag $out;
        like($out, qr/Odoo refused the (login|API key)/, "$api: the log says Odoo refused the key");
        unlike($out, qr/not-the-key/, "$api: and does not show it");
        is(in_redis($redis)->{$id}, undef, "$api: nothing replayed");
        my ($rec) = reconciler_status($ng);
        ok($rec && $rec->{failing}, "$api: the status shows the reconciler failing");
        like($rec->{error} // '', qr/Odoo refused/, "$api: with the error");
    }
};

subtest 'the systemd unit and the compose service set only what the reconciler reads' => sub {
    my ($rc, $help) = run_reconcile(['--help']);
    is($rc, 0, 'webhook-reconcile --help');
    my %known = map { $_ => 1 } $help =~ /env\s+([A-Z][A-Z_]+)/g;
    my $unit = read_file("$FindBin::Bin/../conf.d/webhook-reconcile.service");
    my @unit = $unit =~ /^Environment=([A-Z_]+)=/mg;
    ok(@unit >= 8, 'the unit sets ' . scalar(@unit) . ' variables');
    is_deeply([grep { !$known{$_} } @unit], [], 'each one an option\'s variable');
    my ($svc) = read_file("$FindBin::Bin/../docker/compose.yaml") =~ /^  reconcile:\n(.*?)^  \S/ms;
    my @compose = ($svc // '') =~ /^      ([A-Z_]+):/mg;
    ok(@compose >= 8, 'the compose service sets ' . scalar(@compose) . ' variables');
    is_deeply([grep { !$known{$_} } @compose], [], 'each one an option\'s variable');
};

done_testing();
