#!/usr/bin/perl
# A day of events, smaller: 5,000 webhook.event rows as the addon leaves
# them, 1 % not acknowledged (in turn 503 "Connection error", 401, 408,
# failed, dead, pending for an hour), over XML-RPC and JSON-2.  One pass
# replays each of the 50 once and nothing else, reading Odoo in pages of
# --page records (the memory bound: no call reads more); a second pass
# reads nothing new.  scripts/reconcile-day runs the same with 100,000 rows
# by hand, and says the time and the peak RSS (too long for CI).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;
use WebhookOdoo;

my $why = reconcile_skip_reason();
cannot_run($why) if $why;
require_module();

for my $api (qw(xmlrpc json2)) {
    subtest "5,000 events, 1 % not acknowledged ($api)" => sub {
        my $t = WebhookOdoo::setup(version => $api eq 'json2' ? 19 : 17);
        my $d = WebhookOdoo::day($t, count => 5000, unack_every => 100, api => $api, page => 20);
        is($d->{rc}, 0, 'one pass: --once exits 0') or diag $d->{out};
        is(scalar @{ $d->{unacknowledged} }, 50, '50 events not acknowledged');
        is($d->{summary}{replayed}, 50, 'all replayed');
        my $r = in_redis($t->{redis});
        is_deeply([grep { ($r->{$_} // 0) != 1 } @{ $d->{unacknowledged} }], [], 'each in Redis exactly once');
        is(scalar(keys %$r), 50, 'and nothing else');
        my @calls = grep { $_->[1] eq 'webhook.event' && $_->[2] eq 'search_read' } @{ $d->{calls}{calls} };
        my @paged = grep { defined $_->[3] } @calls;
        is_deeply([grep { $_->[3] > 20 } @paged], [], 'every paged read of at most --page (20) records');
        cmp_ok(scalar(@paged), '>=', 3, scalar(@paged) . ' paged reads');
        is($d->{calls}{writes}, 0, 'no write to Odoo');
        cmp_ok($d->{summary}{new_mark}, '>=', 4900, "the mark moves to $d->{summary}{new_mark}");
        note(sprintf 'figures (%s): 5000 rows, %d replayed, %.2f s, peak RSS %d kB', $api,
            $d->{summary}{replayed}, $d->{seconds}, $d->{rss_kb});

        my ($rc, $out) = run_reconcile(reconcile_args($t, '--odoo-api', $api, '--page', 20, '--once'));
        is($rc, 0, 'a second pass exits 0');
        is(summary($out)->{found}, 0, 'it finds nothing above the mark');
    };
}

done_testing();
