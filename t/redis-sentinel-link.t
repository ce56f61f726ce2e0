#!/usr/bin/perl
# The link to the sentinels is a Redis connection like the others (the
# same transport: RESP formatter, bounds of the replies, timers, TLS):
# a sentinel password longer than 1 KiB is sent whole (the old link built
# its commands into 1 KiB and cut it), a hostile sentinel's reply is
# bounded like Redis's, and with webhook_redis_ssl the sentinels are
# reached over TLS with the same settings as the primary.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;
use WebhookPeer;
use WebhookSentinel;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-sentinel-link-1f4e';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $NAME = 'webhooks';
my $n = 0;
sub body { json_encode({ event_id => 'sl-' . ++$n, model => 'res.partner', record_id => 1, event => 'write' }) }

sub sentinel_nginx {
    my ($sentinels, $extra, %files) = @_;
    return start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n", %files },
        http => "webhook_redis_sentinel $NAME $sentinels;\nwebhook_redis_timeout 2s;\n"
            . "webhook_redis_connect_timeout 1s;\n$extra\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low')
            . "    }\n");
}

sub queued_on {
    my ($ng, $redis, $name) = @_;
    my $res;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, body()); $res->{status} == 200 }, timeout => 10),
        "$name: an event is queued")
        or diag dump_res($res), join "\n", grep { /webhook|SSL/ } split /\n/, $ng->error_log;
    is($redis->llen('{webhook}:queue:low'), 1, "$name: on the primary the sentinel names");
    $redis->flushall;
}

subtest 'a sentinel password of 2 KiB' => sub {
    my $password = join '', map { chr(ord('a') + $_ % 26) } 1 .. 2048;
    my $redis = start_redis();
    my $s = start_sentinel(primary => $redis->port, name => $NAME, quorum => 1, password => $password);
    my $ng = sentinel_nginx("127.0.0.1:$s->{port}",
        "webhook_redis_sentinel_password_file %%PREFIX%%/sentinel.pass;", 'sentinel.pass' => "$password\n");
    queued_on($ng, $redis, 'the whole password');
    unlike($ng->error_log, qr/webhook: redis sentinel .*(WRONGPASS|NOAUTH|protocol)/, 'no AUTH refused');
    unlike($ng->error_log, qr/\Q$password\E|\Q${\ substr($password, 0, 64)}\E/, 'the password is not logged');
    ok($ng->stop, 'nginx stops gracefully');
};

subtest "a hostile sentinel's reply is bounded like Redis's" => sub {
    my $peer = WebhookPeer->new(answer => sub {
        my ($args) = @_;
        return uc $args->[0] eq 'SENTINEL' ? "*100000000\r\n" : "+OK\r\n";
    });
    my $ng = sentinel_nginx($peer->addr, '');
    ok(wait_until(sub { $ng->error_log =~ /webhook: redis sentinel at \S+ sent a reply past the bounds \(an array of 100000000 elements/ },
        timeout => 10), 'refused at its header, the log says why')
        or diag join "\n", grep { /webhook/ } split /\n/, $ng->error_log;
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', 'an event: 503');
    ok($ng->stop, 'nginx stops gracefully');
};

SKIP: {
    skip_or_fail('openssl is not installed', 1)
        unless (WebhookTest::run_cmd(['openssl', 'version'], timeout => 10))[0] == 0;

    subtest 'with webhook_redis_ssl, the sentinels over TLS too' => sub {
        my $pki = WebhookTest::make_dir('pki');
        my $ossl = sub {
            my ($rc, $out) = WebhookTest::run_cmd(['openssl', @_], timeout => 60);
            die "openssl @_: $out" if $rc != 0;
        };
        $ossl->('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', 2, '-subj', '/CN=ca',
            '-keyout', "$pki/ca.key", '-out', "$pki/ca.pem");
        $ossl->('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=server',
            '-keyout', "$pki/server.key", '-out', "$pki/server.csr");
        WebhookTest::write_file("$pki/server.ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
        $ossl->('x509', '-req', '-in', "$pki/server.csr", '-CA', "$pki/ca.pem", '-CAkey', "$pki/ca.key",
            '-CAcreateserial', '-days', 2, '-extfile', "$pki/server.ext", '-out', "$pki/server.pem");
        chmod 0644, "$pki/server.key";
        my %tls = (cert => "$pki/server.pem", key => "$pki/server.key", ca => "$pki/ca.pem");

        my $redis = start_redis(tls => \%tls);
        my $s = start_sentinel(primary => $redis->port, name => $NAME, quorum => 1, tls => \%tls);
        my $ng = sentinel_nginx("127.0.0.1:$s->{port}",
            "webhook_redis_ssl on;\nwebhook_redis_ssl_trusted_certificate $pki/ca.pem;");
        queued_on($ng, $redis, 'TLS to the sentinel and the primary');
        ok($ng->stop, 'nginx stops gracefully');

        # a sentinel whose certificate the trusted CAs do not sign
        $ossl->('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', 2, '-subj', '/CN=other',
            '-keyout', "$pki/other.key", '-out', "$pki/other.pem");
        $ng = sentinel_nginx("127.0.0.1:$s->{port}",
            "webhook_redis_ssl on;\nwebhook_redis_ssl_trusted_certificate $pki/other.pem;");
        ok(wait_until(sub { $ng->error_log =~ /webhook: redis sentinel TLS certificate of 127\.0\.0\.1:$s->{port} does not verify/ },
            timeout => 10), 'a sentinel whose certificate does not verify: refused, logged')
            or diag join "\n", grep { /webhook|SSL/ } split /\n/, $ng->error_log;
        ok($ng->stop, 'nginx stops gracefully');
    };
}

done_testing;
