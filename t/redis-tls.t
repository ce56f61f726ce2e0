#!/usr/bin/perl
# TLS to Redis (webhook_redis_ssl*): a CA and certificates made here with
# openssl, Redis on its TLS port only (--port 0).  Events are queued over
# TLS on one connection kept across requests; a certificate of another CA,
# a name that does not match, a client certificate missing where Redis asks
# for one: no connection, a clear error-log line, 503.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-tls-5e1b9c';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { json_encode({ event_id => 'tls-' . ++$n, model => 'res.partner', record_id => $n, event => 'write' }) }

cannot_run('openssl is not installed')
    unless (WebhookTest::run_cmd(['openssl', 'version'], timeout => 10))[0] == 0;

# ------------------------------------------------------------ certificates
my $pki = WebhookTest::make_dir('pki');

sub ossl {
    my ($rc, $out) = WebhookTest::run_cmd(['openssl', @_], timeout => 60);
    die "openssl @_: $out" if $rc != 0;
}

sub make_ca {
    my ($name) = @_;
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', 2,
        '-subj', "/CN=$name", '-keyout', "$pki/$name.key", '-out', "$pki/$name.pem");
}

# make_cert(name, ca, san, ext): a key and a certificate signed by ca
sub make_cert {
    my ($name, $ca, $san, $usage) = @_;
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', "/CN=$name",
        '-keyout', "$pki/$name.key", '-out', "$pki/$name.csr");
    WebhookTest::write_file("$pki/$name.ext",
        ($san ? "subjectAltName=$san\n" : '') . "extendedKeyUsage=$usage\n");
    ossl('x509', '-req', '-in', "$pki/$name.csr", '-CA', "$pki/$ca.pem",
        '-CAkey', "$pki/$ca.key", '-CAcreateserial', '-days', 2,
        '-extfile', "$pki/$name.ext", '-out', "$pki/$name.pem");
    chmod 0644, "$pki/$name.key";
}

make_ca('ca');
make_ca('other-ca');
make_cert('server', 'ca', 'DNS:redis.test,IP:127.0.0.1', 'serverAuth');
make_cert('client', 'ca', undef, 'clientAuth');

my %TLS = (cert => "$pki/server.pem", key => "$pki/server.key", ca => "$pki/ca.pem");

sub tls_nginx {
    my ($redis, $ssl) = @_;
    return start_nginx(
        workers => 1,
        files => { 'webhook.tokens' => "$TOKEN\n" },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
            . "webhook_redis_ssl on;\n$ssl\n"
            . "webhook_redis_timeout 2s;\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low')
            . "    }\n",
    );
}

sub errors_like {
    my ($ng, $re, $name) = @_;
    ok(wait_until(sub { $ng->error_log =~ $re }, timeout => 10), $name)
        or diag join "\n", grep { /webhook|SSL/ } split /\n/, $ng->error_log;
}

# ------------------------------------------------------------ nginx -t
subtest 'nginx -t' => sub {
    my ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:6380;\nwebhook_redis_ssl on;\n"
        . "server { listen 127.0.0.1:1; location / { webhook_receive; webhook_token_file off; } }\n");
    isnt($rc, 0, 'verification on (the default) without a trusted certificate: refused');
    like($out, qr/"webhook_redis_ssl_verify" is on and needs "webhook_redis_ssl_trusted_certificate"/,
        '... saying what is missing');

    ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:6380;\nwebhook_redis_ssl on;\n"
        . "webhook_redis_ssl_verify off;\n"
        . "server { listen 127.0.0.1:1; location / { webhook_receive; webhook_token_file off; } }\n");
    is($rc, 0, 'verification off: accepted') or diag $out;

    ($rc, $out) = nginx_t("webhook_redis 127.0.0.1:6380;\nwebhook_redis_ssl on;\n"
        . "webhook_redis_ssl_trusted_certificate $pki/ca.pem;\n"
        . "webhook_redis_ssl_certificate $pki/client.pem;\n"
        . "server { listen 127.0.0.1:1; location / { webhook_receive; webhook_token_file off; } }\n");
    isnt($rc, 0, 'a client certificate without its key: refused');
    like($out, qr/no "webhook_redis_ssl_certificate_key"/, '... saying so');
};

# ------------------------------------------------------------ TLS only
my $redis = start_redis(tls => \%TLS);
is($redis->cli('PING'), 'PONG', 'Redis answers on its TLS port only');

subtest 'TLS, the address as the verified name' => sub {
    my $ng = tls_nginx($redis, "webhook_redis_ssl_trusted_certificate $pki/ca.pem;");
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'an event: queued over TLS');
    is($redis->llen('{webhook}:queue:low'), 1, '... and in Redis');
    my @ids = map { /\bid=(\d+)\b/ ? $1 : () } grep { !/cmd=client\|list/ }
        split /\n/, $redis->cli('CLIENT', 'LIST') // '';
    is(scalar @ids, 1, "one connection of nginx's");
    is_queued($ng->request('POST', $R, \%H, body()), 'low', "event $_: queued") for 2 .. 20;
    my @after = map { /\bid=(\d+)\b/ ? $1 : () } grep { !/cmd=client\|list/ }
        split /\n/, $redis->cli('CLIENT', 'LIST') // '';
    is_deeply(\@after, \@ids, 'the same connection after 20 requests (no handshake per request)');
    is($redis->llen('{webhook}:queue:low'), 20, '20 events in Redis');
    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal|open socket/, 'no alert nor crash');
    $redis->flushall;
};

subtest 'TLS, a host name (SNI and the certificate\'s DNS name)' => sub {
    my $ng = tls_nginx($redis, "webhook_redis_ssl_trusted_certificate $pki/ca.pem;\n"
        . "webhook_redis_ssl_name redis.test;\nwebhook_redis_ssl_protocols TLSv1.3;");
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'queued');
    ok($ng->stop, 'nginx stops gracefully');
    $redis->flushall;
};

subtest 'a certificate of another CA' => sub {
    my $ng = tls_nginx($redis, "webhook_redis_ssl_trusted_certificate $pki/other-ca.pem;");
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', '503');
    errors_like($ng, qr/\[error\].*webhook: redis TLS certificate of 127\.0\.0\.1:\d+ does not verify: \(\d+:[^)]+\)/,
        'the error log says the certificate does not verify');
    is($redis->llen('{webhook}:queue:low'), 0, 'nothing in Redis');
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'verification off: any certificate' => sub {
    my $ng = tls_nginx($redis, "webhook_redis_ssl_verify off;");
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'queued');
    ok($ng->stop, 'nginx stops gracefully');
    $redis->flushall;
};

subtest 'a name the certificate does not have' => sub {
    my $ng = tls_nginx($redis, "webhook_redis_ssl_trusted_certificate $pki/ca.pem;\n"
        . "webhook_redis_ssl_name other.test;");
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', '503');
    errors_like($ng, qr/\[error\].*webhook: redis TLS certificate of \S+ does not match the name "other\.test"/,
        'the error log names the name');
    is($redis->llen('{webhook}:queue:low'), 0, 'nothing in Redis');
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'plain text to the TLS port' => sub {
    my $ng = start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
        http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\nwebhook_redis_connect_timeout 500ms;\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low') . "    }\n");
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', '503');
    ok($ng->stop, 'nginx stops gracefully');
};
$redis->stop;

# ------------------------------------------------------------ mutual TLS
subtest 'mutual TLS (tls-auth-clients yes)' => sub {
    my $mtls = start_redis(tls => { %TLS, auth_clients => 'yes',
        client_cert => "$pki/client.pem", client_key => "$pki/client.key" });
    my $ng = tls_nginx($mtls, "webhook_redis_ssl_trusted_certificate $pki/ca.pem;\n"
        . "webhook_redis_ssl_certificate $pki/client.pem;\n"
        . "webhook_redis_ssl_certificate_key $pki/client.key;");
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'with the client certificate: queued');
    is($mtls->llen('{webhook}:queue:low'), 1, '... and in Redis');
    ok($ng->stop, 'nginx stops gracefully');

    $ng = tls_nginx($mtls, "webhook_redis_ssl_trusted_certificate $pki/ca.pem;");
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable',
        'without a client certificate: 503');
    is($mtls->llen('{webhook}:queue:low'), 1, 'nothing more in Redis');
    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal/, 'no alert nor crash');
    $mtls->stop;
};

done_testing;
