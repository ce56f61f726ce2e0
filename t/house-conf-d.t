#!/usr/bin/perl
# The conf.d/ snippets work as shipped: each nginx snippet passes `nginx -t`
# (with this test's paths and ports and a throwaway certificate), the TLS
# server takes a real push over https, limit_req answers 429 with a JSON
# body and Retry-After, nginx's own errors get JSON, the status location
# answers on loopback only, and the Redis fragment turns on the append-only
# file and noeviction.  (The Prometheus files are checked in 12-examples.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use WebhookTest;

my $module = require_module();
my $repo = "$FindBin::Bin/..";

cannot_run('curl and openssl are needed')
    unless system('command -v curl >/dev/null && command -v openssl >/dev/null') == 0;

# every snippet is known here, so a new one cannot go untested
my @known = qw(mod-http-webhook.conf redis-webhook.conf webhook.conf webhook-cluster.conf webhook-sentinel.conf webhook-tls.conf);
my @have = sort map { s{.*/}{}r } glob("$repo/conf.d/*.conf");
is_deeply(\@have, [sort @known], 'every conf.d/*.conf snippet is checked here');

my $tmp = tempdir('webhook-confd-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
chmod 0755, $tmp;

# ---------------------------------------------------------------- redis
my $redis = start_redis(extra => ['--include', "$repo/conf.d/redis-webhook.conf"]);
is($redis->cli('CONFIG', 'GET', 'appendonly'), "appendonly\nyes",
   'the Redis fragment turns on the append-only file');
is($redis->cli('CONFIG', 'GET', 'maxmemory-policy'), "maxmemory-policy\nnoeviction",
   'and noeviction');
is($redis->cli('CONFIG', 'GET', 'appendfsync'), "appendfsync\neverysec",
   'and fsyncs every second');

# ---------------------------------------------------------------- load line
{
    my $dir = tempdir('webhook-confd-load-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
    chmod 0755, $dir;
    mkdir "$dir/modules";
    symlink($module, "$dir/modules/ngx_http_webhook_module.so") or die "symlink: $!";
    my $load = read_file("$repo/conf.d/mod-http-webhook.conf");
    like($load, qr/^load_module modules\/ngx_http_webhook_module\.so;$/m,
         'the load line is relative to the prefix, like Debian\'s modules-available files');
    my ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:6379;\n",
        module => undef, main => $load, dir => $dir);
    is($rc, 0, 'mod-http-webhook.conf loads the module from <prefix>/modules') or diag $out;
}

# ---------------------------------------------------------------- nginx snippets
# a throwaway certificate
my ($crt, $key) = ("$tmp/cert.pem", "$tmp/key.pem");
my ($orc, $oout) = WebhookTest::run_cmd(['openssl', 'req', '-x509', '-newkey', 'ec',
    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-keyout', $key, '-out', $crt]);
is($orc, 0, 'a self-signed certificate for the TLS server') or diag $oout;

my $status_port = free_port();

# the shipped text with this test's paths, ports and Redis; dies when a
# replacement finds nothing, so an edited snippet cannot slip through
sub localize {
    my ($text, %o) = @_;
    my @subst = (
        [qr{listen 127\.0\.0\.1:8080;}, $o{tls} ? "listen 127.0.0.1:$status_port;"
                                                : 'listen 127.0.0.1:%%PORT%%;'],
        [qr{webhook_redis 127\.0\.0\.1:6379;}, 'webhook_redis ' . $redis->addr . ';'],
        [qr{/etc/nginx/webhook\.tokens}, '%%PREFIX%%/webhook.tokens'],
        [qr{/var/log/nginx/}, '%%PREFIX%%/'],
        [qr{/var/lib/nginx/webhook-spool}, '%%PREFIX%%/spool'],
    );
    push @subst, (
        [qr{listen 443 ssl;}, 'listen 127.0.0.1:%%PORT%% ssl;'],
        [qr{listen \[::\]:443 ssl;[^\n]*\n}, ''],
        [qr{/etc/ssl/certs/webhooks\.example\.com\.pem}, $crt],
        [qr{/etc/ssl/private/webhooks\.example\.com\.key}, $key],
        [qr{rate=50r/s}, 'rate=1r/m'],
        [qr{burst=200 delay=20}, 'burst=4 delay=4'],
    ) if $o{tls};
    for my $s (@subst) {
        $text =~ s/$s->[0]/$s->[1]/g or die "localize: $s->[0] not found\n";
    }
    return $text;
}

my %files = ('webhook.tokens' => "confd-token\n");
for my $name (qw(webhook.conf webhook-tls.conf)) {
    my $http = localize(read_file("$repo/conf.d/$name"), tls => ($name =~ /tls/ ? 1 : 0));
    my ($rc, $out) = nginx_t($http, files => \%files);
    is($rc, 0, "nginx -t accepts conf.d/$name") or diag $out;
}

# the Sentinel and the Cluster lines, instead of webhook.conf's
# webhook_redis* lines
for my $name (qw(webhook-sentinel.conf webhook-cluster.conf)) {
    my $http = localize(read_file("$repo/conf.d/webhook.conf"));
    $http =~ s/^webhook_redis[^\n]*\n//mg;
    my ($rc, $out) = nginx_t(read_file("$repo/conf.d/$name") . $http, files => \%files);
    is($rc, 0, "nginx -t accepts conf.d/$name instead of the webhook_redis lines of webhook.conf")
        or diag $out;
}

# ---------------------------------------------------------------- TLS, for real
my $ng = start_nginx(http => localize(read_file("$repo/conf.d/webhook-tls.conf"), tls => 1),
                     files => \%files);
my $base = 'https://127.0.0.1:' . $ng->port;
my $event = "$tmp/event.json";
write_file($event, sample_text('odoo-event.json'));

# curl_req(METHOD, URL, [header, ...], body-file): the answer as the
# harness's requests give it
sub curl_req {
    my ($method, $url, $headers, $body) = @_;
    my @cmd = ('curl', '-sS', '-k', '--max-time', '30', '-X', $method,
               '-o', "$tmp/body", '-D', "$tmp/head", '-w', '%{http_code}');
    push @cmd, '-H', $_ for @{ $headers || [] };
    push @cmd, '--data-binary', "\@$body" if defined $body;
    my ($rc, $out) = WebhookTest::run_cmd([@cmd, $url], timeout => 40);
    my ($code) = $out =~ /(\d{3})\s*\z/;
    my %h;
    for (split /\r?\n/, read_file("$tmp/head") // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*?)\s*$/;
    }
    my $b = read_file("$tmp/body") // '';
    unlink "$tmp/body", "$tmp/head";
    return { status => $rc == 0 && $code ? $code + 0 : 0, error => $rc ? $out : undef,
             headers => \%h, body => $b, json => json_decode($b), head => '' };
}

my @auth = ('Authorization: Bearer confd-token', 'Content-Type: application/json');
my $res = curl_req('POST', "$base/api/v1/webhooks/receive", \@auth, $event);
is_queued($res, 'high', 'the TLS server queues an Odoo event sent over https');
is($redis->llen('{webhook}:queue:high'), 1, 'the envelope is in Redis');
# nginx writes the access-log line after the answer has left: wait for it
my $audit_re = qr/"POST \/api\/v1\/webhooks\/receive HTTP\/1\.1" 200 result=queued priority=high event_id=48213 id=[0-9a-f]{32}/;
wait_until(sub { $ng->access_log('webhook-audit.log') =~ $audit_re }, timeout => 10);
like($ng->access_log('webhook-audit.log'), $audit_re,
     'the audit log names the result, priority, event id and envelope id');

$res = curl_req('GET', "$base/nowhere");
is_json_error($res, 404, 'not_found', 'an unknown path gets a JSON 404');

# inside the receive location the module keeps answering its own errors
my $big = "$tmp/big.json";
write_file($big, '{"event_id": 1, "model": "x", "record_id": 1, "event": "write", "data": "'
    . ('x' x (16 * 1024 * 1024 + 10)) . '"}');
$res = curl_req('POST', "$base/api/v1/webhooks/receive", \@auth, $big);
is_json_error($res, 413, 'too_large', 'a body over client_max_body_size: the module\'s JSON 413');

# Redis down: the spool takes the event (answered 200 "spooled", not the
# error page); the append-only file keeps the queued envelope over the
# restart, and the spooled one follows it
$redis->stop;
$res = curl_req('POST', "$base/api/v1/webhooks/receive", \@auth, $event);
is($res->{status}, 200, 'Redis down: 200, the spool of webhook-tls.conf takes the event');
is(($res->{json} || {})->{status}, 'spooled', '... "spooled"');
$redis->start;
is($redis->llen('{webhook}:queue:high'), 1, 'the queued envelope survived the restart (AOF)');
ok(wait_until(sub {
    my $s = http_request(port => $status_port, path => '/webhook/status');
    ref $s->{json} eq 'HASH' && ($s->{json}{queues}{'{webhook}'}{spool}{drained} // 0) == 1;
}, timeout => 15), 'the spooled event is drained');
is($redis->llen('{webhook}:queue:high'), 1,
   '... and dropped there as a duplicate (the same event_id was queued before)');
ok(wait_until(sub {
    my $s = http_request(port => $status_port, path => '/webhook/status');
    ref $s->{json} eq 'HASH' && $s->{json}{redis}{up};
}, timeout => 15), 'the module is connected again');

# rate 1r/m, burst 4 here: at most 5 pushes pass, counting the three above
my @codes;
for (1 .. 8) {
    $res = curl_req('POST', "$base/api/v1/webhooks/receive", \@auth, $event);
    push @codes, $res->{status};
    last if $res->{status} == 429;
}
is($codes[-1], 429, "limit_req refuses a sender over its rate with 429 (answers: @codes)");
is_json_error($res, 429, 'rate_limited', 'the 429 has a JSON body');
is($res->{headers}{'retry-after'}, '5', "and the module's Retry-After (webhook_retry_after): the module answered it, not \@webhook_error");
is(scalar(grep { $_ == 200 } @codes), scalar(@codes) - 1, 'the pushes before it passed (duplicates)');
like($ng->error_log, qr/limiting requests, excess: .* zone "webhook_senders"/,
     'nginx logs the refusal');

# the status location: loopback only, on its own server
my $st = http_request(port => $status_port, path => '/webhook/status');
is($st->{status}, 200, 'the status location answers on loopback');
is(ref $st->{json} eq 'HASH' && $st->{json}{queues}{'{webhook}'}{high}{depth}, 1,
   'and reports the queue depth');
$st = http_request(port => $status_port, path => '/webhook/status?format=prometheus');
like($st->{body} // '', qr/^nginx_webhook_queue_depth\{queue="\{webhook\}",priority="high"\} 1$/m,
     'and Prometheus text');
$st = http_request(port => $status_port, path => '/other');
is_json_error($st, 404, 'not_found', 'another path of the status server: JSON 404');

# deny: the same snippet with loopback no longer allowed
my $denied = localize(read_file("$repo/conf.d/webhook-tls.conf"), tls => 1);
$denied =~ s/allow 127\.0\.0\.1;/allow 192.0.2.1;/ or die 'no allow 127.0.0.1';
$ng->set(http => $denied);
ok($ng->reload(wait_old => 1), 'reloaded with 127.0.0.1 no longer allowed');
$st = http_request(port => $status_port, path => '/webhook/status');
is_json_error($st, 403, 'forbidden', 'deny answers 403 with a JSON body');

done_testing();
