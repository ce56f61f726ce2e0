#!/usr/bin/perl
# Request bodies: always read in memory, never through a temporary file
# (client_body_temp_path is made a plain file, where nginx can create
# none: a body that went there would get a 500), whatever
# client_body_buffer_size and client_body_in_file_only say; chunked, sent
# slowly, keep-alive, HTTP/2; 413 by Content-Length and by chunked growth.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';    # client_body_buffer_size 1k: bodies read in pieces
my $TOKEN = 'tok-body-5f1e2d3c4b5a';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");

my $H2 = free_port();    # HTTP/2 without TLS (prior knowledge)
# an nginx configured without it (scripts/build-matrix builds with it)
my $HAS_H2 = nginx_built_with('--with-http_v2_module');

my $redis = start_redis();
my $ng = start_nginx(
    workers => 2,
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis 127.0.0.1:' . $redis->port . ";\n" . <<'HTTP'
    server {
        listen 127.0.0.1:%%PORT%%;
        %%H2%%
        server_name localhost;
HTTP
        =~ s/%%H2%%/$HAS_H2 ? "listen 127.0.0.1:$H2 http2;" : ''/er
        . receive_location(default_priority => 'medium', max_body => '1m',
            extra => 'client_body_buffer_size 1k;')
        . receive_location(path => '/mem', default_priority => 'medium', max_body => '1m',
            extra => 'client_body_buffer_size 1m;')
        . receive_location(path => '/fileonly', default_priority => 'medium', max_body => '1m',
            extra => 'client_body_in_file_only clean;')
        . receive_location(path => '/small', default_priority => 'medium', max_body => '4k')
        . "    }\n",
);

my $EVENT = sample_text('odoo-event.json');
my $EVENT_OBJ = sample_json('odoo-event.json');

sub big_event {
    my ($size, %o) = @_;
    my $e = { event_id => $o{event_id} // 9001, model => 'mail.message', record_id => 4242, event => 'create',
        priority => 'low', data => { body => '' } };
    my $base = length json_encode($e);
    my $unit = $o{unit} // 'abcdefghij';
    $e->{data}{body} = substr($unit x (int(($size - $base) / length($unit)) + 1), 0, $size - $base);
    return $e;
}

# the keys of events: not the list of rejected bodies nor a test's write
sub redis_empty {
    my ($name) = @_;
    my @k = grep { !/\A\{[^}]*\}:(?:rejected(?::.*)?|probe)\z/s } $redis->keys;
    is_deeply(\@k, [], "nothing in Redis: $name") or diag "keys: @k";
}

# expect_queued($res, $key, $payload, $name)
sub expect_queued {
    my ($res, $key, $payload, $name) = @_;
    my $prio = ($key =~ /:(\w+)\z/)[0];
    is_queued($res, $prio, "$name: 200 queued") or do { $redis->flushall; return };
    my @e = $redis->take($key);
    $redis->flushall;    # also drops any dedupe marker: samples are sent more than once
    is(scalar @e, 1, "$name: one envelope in $key");
    return unless @e;
    is($e[0]{env}{id}, $res->{json}{id}, "$name: envelope id");
    is_deeply($e[0]{env}{payload}, $payload, "$name: payload intact")
        or diag sprintf('sent %d bytes, envelope %d bytes', length json_encode($payload), length $e[0]{raw});
}

# nginx made client_body_temp_path at start: a plain file in its place now,
# where no temporary file can be created
my $TEMP = $ng->path('tmp/client_body');
rmdir $TEMP or die "rmdir $TEMP: $!";
write_file($TEMP, "no temporary body files here\n");

sub no_temp_file {
    my ($name) = @_;
    ok(-f $TEMP, "client_body_temp_path still a plain file: no temporary file tried ($name)");
}

# each subtest starts from an empty Redis
sub subtest_fresh {
    my ($name, $code) = @_;
    $redis->flushall;
    subtest $name, $code;
}

subtest_fresh 'body in memory' => sub {
    expect_queued($ng->request('POST', '/mem', \%H, $EVENT), '{webhook}:queue:high', $EVENT_OBJ,
        'memory, sample event');
    my $big = big_event(50_000);
    expect_queued($ng->request('POST', '/mem', \%H, json_encode($big)), '{webhook}:queue:low', $big,
        'memory, 50 KB event');
};

subtest_fresh 'bodies larger than client_body_buffer_size: in memory too' => sub {
    my $big = big_event(50_000);
    my $res = $ng->request('POST', $R, \%H, json_encode($big));
    expect_queued($res, '{webhook}:queue:low', $big, 'buffer 1k, 50 KB event');

    my $mid = big_event(1_600, event_id => 9002);
    expect_queued($ng->request('POST', $R, \%H, json_encode($mid)), '{webhook}:queue:low', $mid,
        'buffer 1k, 1.6 KB event (just over the buffer)');

    my $utf = big_event(20_000, event_id => 9003, unit => "M\x{fc}ller \x{2014} \x{6771}\x{4eac} ");
    expect_queued($ng->request('POST', $R, \%H, json_encode($utf)), '{webhook}:queue:low', $utf,
        'buffer 1k, 20 KB of UTF-8 text');

    expect_queued($ng->request('POST', '/fileonly', \%H, $EVENT), '{webhook}:queue:high', $EVENT_OBJ,
        'client_body_in_file_only, sample event (in memory all the same)');
    no_temp_file('bodies larger than the buffer');
};

subtest_fresh 'body sent slowly, in pieces' => sub {
    my $body = json_encode(big_event(8_000, event_id => 9004));
    my $head = "POST $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nAuthorization: Bearer $TOKEN\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n";
    my @pieces = ($head, substr($body, 0, 10), substr($body, 10, 3000), substr($body, 3010));
    my $res = $ng->raw(pieces => \@pieces, delay => 0.3);
    expect_queued($res, '{webhook}:queue:low', json_decode($body), 'slow client, buffer 1k');

    $res = $ng->raw(pieces => [map { s{POST \Q$R\E }{POST /mem }r } @pieces], delay => 0.3);
    expect_queued($res, '{webhook}:queue:low', json_decode($body), 'slow client, memory');
};

subtest_fresh 'chunked bodies' => sub {
    my @chunks = map { substr($EVENT, $_ * 100, 100) } 0 .. int(length($EVENT) / 100);
    cmp_ok(scalar @chunks, '>=', 5, 'sample split in several chunks');
    my $res = $ng->chunked(path => '/mem', headers => \%H, chunks => \@chunks, delay => 0.05);
    expect_queued($res, '{webhook}:queue:high', $EVENT_OBJ, 'chunked, memory');

    $res = $ng->chunked(path => $R, headers => \%H, chunks => \@chunks, delay => 0.05);
    expect_queued($res, '{webhook}:queue:high', $EVENT_OBJ, 'chunked, buffer 1k');

    my $big = big_event(50_000, event_id => 9005);
    my $text = json_encode($big);
    my @big_chunks = map { substr($text, $_ * 4096, 4096) } 0 .. int(length($text) / 4096);
    $res = $ng->chunked(path => $R, headers => \%H, chunks => \@big_chunks, delay => 0.01);
    expect_queued($res, '{webhook}:queue:low', $big, 'chunked, 50 KB in 4 KB chunks, buffer 1k');

    $res = $ng->chunked(path => '/mem', headers => \%H, chunks => \@big_chunks, delay => 0.01);
    expect_queued($res, '{webhook}:queue:low', $big, 'chunked, 50 KB in 4 KB chunks, memory');
    no_temp_file('chunked');
};

subtest_fresh 'keep-alive: two requests on one connection' => sub {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp',
        Timeout => 10) or return fail("connect: $!");
    my $buf = '';
    my $big = big_event(10_000, event_id => 9006);
    my $r1 = WebhookTest::http_request(sock => $sock, keepalive => 1, bufref => \$buf, method => 'POST',
        path => $R, headers => \%H, body => json_encode($big));
    expect_queued($r1, '{webhook}:queue:low', $big, 'keep-alive, first (buffer 1k)');
    my $r2 = WebhookTest::http_request(sock => $sock, keepalive => 1, bufref => \$buf, method => 'POST',
        path => '/mem', headers => \%H, body => $EVENT);
    expect_queued($r2, '{webhook}:queue:high', $EVENT_OBJ, 'keep-alive, second (memory)');
    my $r3 = WebhookTest::http_request(sock => $sock, keepalive => 1, bufref => \$buf, method => 'POST',
        path => $R, headers => { %H, Authorization => 'Bearer wrong' }, body => $EVENT);
    is_json_error($r3, 401, 'unauthorized', 'keep-alive, third (401 with an unread body)');
    my $r4 = WebhookTest::http_request(sock => $sock, keepalive => 1, bufref => \$buf, method => 'POST',
        path => $R, headers => \%H, body => $EVENT);
    expect_queued($r4, '{webhook}:queue:high', $EVENT_OBJ, 'keep-alive, fourth (after a 401)');
    close $sock;
    redis_empty('after keep-alive');
};

subtest_fresh 'HTTP/2' => sub {
    plan skip_all => 'this nginx has no --with-http_v2_module' unless $HAS_H2;
    my (undef, $v) = WebhookTest::run_cmd(['curl', '--version']);
    return if ($v // '') !~ /\bHTTP2\b/ && cannot_run_subtest('no curl with HTTP/2');
    my $big = big_event(50_000, event_id => 9007);
    my $file = $ng->path('h2-body.json');
    write_file($file, json_encode($big));
    for my $path ($R, '/mem') {
        my ($rc, $out) = WebhookTest::run_cmd(['curl', '-sS', '--http2-prior-knowledge',
            '-H', 'Content-Type: application/json', '-H', "Authorization: Bearer $TOKEN",
            '--data-binary', "\@$file", "http://127.0.0.1:$H2$path"]);
        my $json = json_decode($out);
        is($json && $json->{status}, 'queued', "HTTP/2, 50 KB event ($path): queued") or diag $out;
        my @e = $redis->take('{webhook}:queue:low');
        $redis->flushall;
        is_deeply(@e && $e[0]{env}{payload}, $big, "HTTP/2 ($path): payload intact");
    }
    no_temp_file('HTTP/2');
};

subtest_fresh '413 too large' => sub {
    # Content-Length over client_max_body_size: nginx answers before the body
    my $res = $ng->raw(timeout => 15, pieces => [
        "POST $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nAuthorization: Bearer $TOKEN\r\n"
        . "Content-Length: 2000000\r\n\r\n"]);
    is_json_error($res, 413, 'too_large', 'Content-Length 2 MB over 1m: 413');

    my $body = json_encode(big_event(6_000));
    $res = $ng->request('POST', '/small', \%H, $body);
    is_json_error($res, 413, 'too_large', 'Content-Length 6 KB over 4k, body sent: 413');

    $res = $ng->request('POST', '/mem', \%H, json_encode(big_event(1_100_000)));
    is_json_error($res, 413, 'too_large', '1.1 MB body over 1m (memory location): 413');

    # chunked: no Content-Length, the body grows past the limit
    my @chunks = map { substr($body, $_ * 1000, 1000) } 0 .. int(length($body) / 1000);
    $res = $ng->chunked(path => '/small', headers => \%H, chunks => \@chunks, delay => 0.02, timeout => 20);
    is_json_error($res, 413, 'too_large', 'chunked, 6 KB in 1 KB chunks over 4k: 413');

    my $huge = json_encode(big_event(1_300_000));
    my @huge_chunks = map { substr($huge, $_ * 65536, 65536) } 0 .. int(length($huge) / 65536);
    $res = $ng->chunked(path => $R, headers => \%H, chunks => \@huge_chunks, delay => 0.005, timeout => 20);
    is_json_error($res, 413, 'too_large', 'chunked, 1.3 MB in 64 KB chunks over 1m: 413');

    redis_empty('after 413s');
    no_temp_file('413');
};

ok($ng->stop, 'nginx stops gracefully');
unlike($ng->error_log, qr/\[(alert|emerg)\]|open socket/, 'no alert/emerg/open socket in error log')
    or diag join "\n", grep { /\[(alert|emerg)\]|open socket/ } split /\n/, $ng->error_log;

done_testing;
