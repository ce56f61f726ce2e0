#!/usr/bin/perl
# The spool (webhook_spool): what nginx -t says about it; events taken
# while Redis is down, answered 200 "spooled" once on disk, delivered once
# and in order when Redis is back, the sequential sender's events behind
# the spooled ones; a batch; $webhook_result; `webhook_spool off`; the
# status location (JSON and Prometheus); max_size: 503 with Retry-After,
# logged once; Odoo's test button still checks Redis.

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
my $TOKEN = 'tok-spool-50-a1b2c3';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $TOKENS = { 'webhook.tokens' => "$TOKEN\n" };

# ------------------------------------------------------------- nginx -t

sub conf_t {
    my ($http) = @_;
    return nginx_t("webhook_redis 127.0.0.1:1;\n$http\n"
        . "server { listen 127.0.0.1:%%PORT%%;\n" . receive_location() . "}\n",
        files => $TOKENS);
}

{
    my ($rc, $out) = conf_t('webhook_spool %%PREFIX%%/spool max_size=64m;');
    is($rc, 0, 'nginx -t: webhook_spool with max_size') or diag $out;
    ($rc, $out) = conf_t('webhook_spool %%PREFIX%%/spool thread_pool=nope;');
    isnt($rc, 0, 'nginx -t: an unknown thread pool is refused');
    like($out, qr/unknown thread pool "nope"/, '... with nginx\'s own message');
    ($rc, $out) = conf_t('webhook_spool %%PREFIX%%/spool max_size=lots;');
    isnt($rc, 0, 'nginx -t: a bad max_size is refused');
    like($out, qr/invalid max_size "lots"/, '... saying which');
    ($rc, $out) = conf_t('webhook_spool %%PREFIX%%/spool level=2;');
    like($out, qr/invalid parameter "level=2"/, 'nginx -t: an unknown parameter is named');
    ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:1;\n"
        . "server { listen 127.0.0.1:%%PORT%%;\n"
        . receive_location(extra => 'webhook_spool %%PREFIX%%/x;') . "}\n", files => $TOKENS);
    isnt($rc, 0, 'nginx -t: a path in a location is refused');
    like($out, qr/takes a path at the http level only/, '... saying where it goes');
    ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:1;\nwebhook_spool %%PREFIX%%/s;\n"
        . "server { listen 127.0.0.1:%%PORT%%;\n"
        . receive_location(extra => 'webhook_spool off;') . "}\n", files => $TOKENS);
    is($rc, 0, 'nginx -t: webhook_spool off in a location') or diag $out;
}

# ------------------------------------------------------------ the outage

my $redis = start_redis();

sub http_conf {
    my (%o) = @_;
    return 'webhook_redis ' . $redis->addr . ";\n"
        . "webhook_redis_connect_timeout 1s;\nwebhook_redis_timeout 1s;\n"
        . "webhook_spool %%PREFIX%%/spool" . ($o{max} ? " max_size=$o{max}" : '') . ";\n"
        . "log_format res '\$webhook_result \$status';\n"
        . "access_log %%PREFIX%%/res.log res;\n"
        . "server {\n listen 127.0.0.1:%%PORT%%;\n"
        . receive_location()
        . receive_location(path => '/nospool', extra => 'webhook_spool off;')
        . " location = /status { webhook_status; }\n"
        . "}\n";
}

my $ng = start_nginx(workers => 2, files => $TOKENS, http => http_conf());
my $spool = $ng->path('spool');

my $n = 0;
sub event { my ($id) = @_; json_encode({ event_id => $id, model => 'sale.order', record_id => 1, event => 'write' }) }
sub post { my ($body, $path) = @_; $ng->request('POST', $path // $R, \%H, $body, timeout => 20) }

ok(-d $spool, 'nginx made the spool directory');
my @st = stat $spool;
isnt($st[4], 0, 'the directory belongs to the worker user, not root') if $> == 0;

my @order;                          # the sequential sender's event_ids
my $res = post(event('seq-1'));
is_queued($res, 'medium', 'Redis up: queued as before');
push @order, 'seq-1';

$redis->stop;

my (@spooled, $slow);
for my $i (2 .. 6) {
    $res = post(event("seq-$i"));
    push @order, "seq-$i";
    push @spooled, $res;
    $slow = $res->{elapsed} if !$slow || $res->{elapsed} > $slow;
}
is_deeply([map { $_->{status} } @spooled], [(200) x 5], 'Redis down: 5 events answered 200');
is_deeply([map { $_->{json}{status} // '' } @spooled], [('spooled') x 5], '... "status":"spooled"');
like($spooled[0]{json}{id} // '', qr/^[0-9a-f]{32}\z/, '... with the envelope id');
is($spooled[0]{json}{priority}, 'medium', '... and the priority');
cmp_ok($slow, '<', 1, sprintf('... at once (slowest %.3fs): no wait for Redis once it is known down', $slow));

my @segs = glob "$spool/*.seg";
ok(@segs >= 1, 'a segment file: ' . join(' ', map { s{.*/}{}r } @segs));
like($segs[0] // '', qr{/\{webhook\}\.[0-9a-f]{16}\.\d+\.seg\z}, 'named <queue>.<sequence>.<pid>.seg');
is((stat $segs[0])[2] & 0777, 0600, 'readable by the worker user only') if @segs;

# a batch: all its events spooled, or none
$res = post(json_encode({ batch => JSON::PP::true(), events => [
    map { { event_id => "b-$_", model => 'res.partner', record_id => $_, event => 'create' } } 1 .. 3 ] }));
is($res->{status}, 200, 'a batch of 3, Redis down: 200');
is($res->{json}{status}, 'spooled', '... spooled');
is($res->{json}{spooled}, 3, '... all 3');
is(scalar @{ $res->{json}{ids} || [] }, 3, '... with their 3 ids');

# webhook_spool off: a 503 as before
$res = post(event('off-1'), '/nospool');
is_json_error($res, 503, 'unavailable', 'webhook_spool off: 503 as without a spool');

# Odoo's test button checks that Redis takes a write: still 503
$res = post('{"test": true}');
is_json_error($res, 503, 'unavailable', 'test connection: 503, the spool does not answer for Redis');

# the status, Redis down: the spool is local
my $st = $ng->request('GET', '/status', {}, undef, timeout => 10);
is($st->{status}, 200, 'status with Redis down: 200');
my $q = $st->{json}{queues}{'{webhook}'} || {};
is($q->{spool}{events}, 8, 'status: 8 events in the spool');
cmp_ok($q->{spool}{bytes}, '>', 0, 'status: their bytes');
is($q->{spool}{spooled}, 8, 'status: 8 spooled');
cmp_ok($q->{spool}{oldest_age_seconds}, '>=', 0, 'status: the age of the oldest');
is($st->{json}{spool}{recovering}, JSON::PP::false(), 'status: not recovering');
is($q->{requests}{spooled}, 6, 'status: 6 requests answered "spooled"');
my $prom = $ng->request('GET', '/status?format=prometheus', {}, undef, timeout => 10)->{body} // '';
like($prom, qr/^nginx_webhook_spool_events\{queue="\{webhook\}"\} 8$/m, 'Prometheus: nginx_webhook_spool_events');
like($prom, qr/^nginx_webhook_spooled_events_total\{queue="\{webhook\}"\} 8$/m,
    'Prometheus: nginx_webhook_spooled_events_total');
like($prom, qr/^nginx_webhook_spool_max_size_bytes 1073741824$/m, 'Prometheus: max_size, 1g by default');

# while the spool holds events, a new one goes behind them
$redis->start;
$res = post(event('seq-7'));
push @order, 'seq-7';
is($res->{status}, 200, 'Redis back: 200');

ok(wait_until(sub { ($ng->request('GET', '/status', {}, undef, timeout => 5)->{json}
    {queues}{'{webhook}'}{spool}{events} // -1) == 0 }, timeout => 15),
    'the spool drains');
my @env = reverse envelopes($redis);      # oldest first, per list
my @ids = map { $_->{event_id} } grep { ($_->{event_id} // '') =~ /^seq-/ } @env;
# seq-1 was in the Redis that stopped (no persistence in this test)
is_deeply(\@ids, [@order[1 .. $#order]], 'the sequential sender\'s events in order, once each')
    or diag "@ids";
my %count;
$count{ $_->{event_id} // '' }++ for @env;
is(scalar(grep { $count{$_} > 1 } keys %count), 0, 'no event twice');
is(scalar(grep { /^b-/ } keys %count), 3, 'the batch\'s 3 events');
is(scalar(grep { /^off-/ } keys %count), 0, 'the refused event is not there');
ok(wait_until(sub { !(() = glob "$spool/*.seg") }, timeout => 15), 'the drained segments are removed')
    or diag join ' ', glob "$spool/*";
like($ng->error_log, qr/queue "\{webhook\}" starts spooling: redis is not connected/,
    'the error log says when the queue starts spooling, and why');
like($ng->error_log, qr/the spool of queue "\{webhook\}" is empty, \d+ events drained/,
    '... and when it is empty again');
like($ng->access_log('res.log'), qr/^spooled 200$/m, '$webhook_result is "spooled"');

# an event larger than the drainer's 256 KB read buffer, between small ones
$redis->stop;
$res = post(event('big-0'));
my $big = json_encode({ event_id => 'big-1', model => 'ir.attachment', record_id => 1,
    event => 'create', values => { datas => 'A' x (600 * 1024) } });
is(post($big)->{json}{status}, 'spooled', 'a 600 KB event spooled');
post(event('big-2'));
$redis->start;
ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') >= 3 }, timeout => 15),
    '... and delivered, with the events around it');
my @bigs = map { $_->{event_id} } grep { ($_->{event_id} // '') =~ /^big-/ } reverse envelopes($redis);
is_deeply(\@bigs, [qw(big-0 big-1 big-2)], '... in order');

# ----------------------------------------------------------- max_size

$ng->stop;
$ng = start_nginx(workers => 1, files => $TOKENS, http => http_conf(max => '2k'));
$redis->stop;
my (%st, $ra);
for my $i (1 .. 12) {
    $res = post(event("full-$i"));
    $st{ $res->{status} }++;
    $ra //= $res->{headers}{'retry-after'} if $res->{status} == 503;
}
ok($st{200} && $st{503}, "max_size=2k: 200s until full, then 503s ($st{200} and $st{503})");
like($ra // '', qr/^\d+\z/, '... with Retry-After');
my @full = $ng->error_log =~ /the spool "[^"]*" is full/g;
is(scalar @full, 1, '... logged once for the episode');
$redis->start;
ok(wait_until(sub { $redis->llen('{webhook}:queue:medium') == $st{200} }, timeout => 15),
    "every event answered 200 ($st{200}) is delivered");

done_testing;
