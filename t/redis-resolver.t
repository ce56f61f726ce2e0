#!/usr/bin/perl
# nginx's resolver for webhook_redis's host name: with `resolver` in the
# http block, the name is resolved again at each (re)connect, so a Redis
# whose address moves behind its name (managed Redis failing over) is
# followed without a reload.  "localhost" resolves to 127.0.0.1 when nginx
# reads the configuration (/etc/hosts); the DNS server of this test (a
# small responder on a loopback UDP port, its answers read from a file)
# says 127.0.0.2, then 127.0.0.1.  Without a resolver, the address of the
# configuration stays.  A primary demoted to a replica that keeps its
# clients answers READONLY: the worker connects again, to where the name
# points now.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use WebhookTest;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-resolver-3a9f';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $n = 0;
sub body { json_encode({ event_id => 'dns-' . ++$n, model => 'res.partner', record_id => 1, event => 'write' }) }

cannot_run('127.0.0.2 is not a loopback address here')
    unless IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => 0, Proto => 'udp');

# ------------------------------------------------------------ DNS
my $dns_dir = WebhookTest::make_dir('dns');
my $answer = "$dns_dir/localhost.a";
WebhookTest::write_file($answer, "127.0.0.2\n");
my $dns = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'udp')
    or die "dns socket: $!";
my $dns_port = $dns->sockport;
my $queries = "$dns_dir/queries";

# answers A queries for localhost with the address in $answer (TTL 1 s),
# every other query with no record
my $dns_pid = fork;
die "fork: $!" unless defined $dns_pid;
if (!$dns_pid) {
    while (1) {
        my $peer = $dns->recv(my $q, 512) or next;
        next if length $q < 17;
        my ($id) = unpack 'n', $q;
        my $p = 12;
        my @labels;
        while ((my $l = ord substr $q, $p, 1) > 0) { push @labels, substr $q, $p + 1, $l; $p += $l + 1 }
        my ($qtype) = unpack 'n', substr $q, $p + 1, 2;
        my $question = substr $q, 12, $p + 5 - 12;
        my $name = lc join '.', @labels;
        WebhookTest::append_file($queries, "$name $qtype\n");
        my $ip = WebhookTest::read_file($answer) // '';
        $ip =~ s/\s+//g;
        my $a = $name eq 'localhost' && $qtype == 1 && $ip ne '';
        my $r = pack('nnnnnn', $id, 0x8180, 1, $a ? 1 : 0, 0, 0) . $question;
        $r .= pack('nnnNn', 0xc00c, 1, 1, 1, 4) . pack('C4', split /\./, $ip) if $a;
        $dns->send($r, 0, $peer);
    }
}
END { if ($dns_pid) { local $?; kill 'KILL', $dns_pid; waitpid($dns_pid, 0) } }

# ------------------------------------------------------------ Redis
my $port = WebhookTest::free_port();
my $one = start_redis(port => $port);                     # 127.0.0.1
my $two = start_redis(port => $port, bind => '127.0.0.2');

sub webhook_nginx {
    my ($resolver) = @_;
    return start_nginx(workers => 1, files => { 'webhook.tokens' => "$TOKEN\n" },
        http => "webhook_redis localhost:$port;\n$resolver\n"
            . "webhook_redis_connect_timeout 500ms;\n"
            . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
            . receive_location(default_priority => 'low') . "    }\n");
}

subtest 'without a resolver: the address of the configuration' => sub {
    my $ng = webhook_nginx('');
    is_queued($ng->request('POST', $R, \%H, body()), 'low', 'queued');
    is($one->llen('{webhook}:queue:low'), 1, 'in the Redis on 127.0.0.1');
    is($two->llen('{webhook}:queue:low'), 0, 'not in the one on 127.0.0.2');
    ok($ng->stop, 'nginx stops gracefully');
    $one->flushall;
};

subtest 'with a resolver: the address now, again at each reconnect' => sub {
    my $ng = webhook_nginx("resolver 127.0.0.1:$dns_port ipv6=off valid=1s;\nresolver_timeout 2s;");
    my $res;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, body()); $res->{status} == 200 }, timeout => 10),
        'queued') or diag dump_res($res), $ng->error_log;
    is($two->llen('{webhook}:queue:low'), 1, 'in the Redis on 127.0.0.2, as the DNS says');
    is($one->llen('{webhook}:queue:low'), 0, 'not in the one of the configuration');
    like(WebhookTest::read_file($queries) // '', qr/^localhost 1$/m, 'nginx asked the DNS server');
    like($ng->error_log, qr/webhook: redis: "localhost" resolved to 127\.0\.0\.2/, 'the address is logged');

    # the address moves behind the name; the old node goes away
    WebhookTest::write_file($answer, "127.0.0.1\n");
    sleep 1.1;    # the TTL
    $two->stop;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, body()); $res->{status} == 200 }, timeout => 10),
        'queued again, without reload') or diag dump_res($res), $ng->error_log;
    is($one->llen('{webhook}:queue:low'), 1, 'in the Redis the name now points to');
    ok($ng->stop, 'nginx stops gracefully');
    unlike($ng->error_log, qr/\[alert\]|\[emerg\]|exited on signal|open socket/, 'no alert nor crash');
};

subtest 'a name the DNS server does not know' => sub {
    WebhookTest::write_file($answer, "\n");
    my $ng = webhook_nginx("resolver 127.0.0.1:$dns_port ipv6=off valid=1s;\nresolver_timeout 1s;");
    is_json_error($ng->request('POST', $R, \%H, body()), 503, 'unavailable', 'an event: 503');
    ok(wait_until(sub { $ng->error_log =~ /webhook: redis: "localhost" could not be resolved/ }, timeout => 10),
        'the error log says so') or diag $ng->error_log;
    ok($ng->stop, 'nginx stops gracefully');
};

subtest 'a demoted primary that keeps the connection' => sub {
    # managed Redis's failover: the name moves to the promoted replica, the
    # old primary becomes its replica and keeps its clients; every write it
    # gets is answered READONLY, and the worker must go where the name
    # points now
    $two->start unless $two->running;
    $_->flushall for $one, $two;
    $one->cli('REPLICAOF', '127.0.0.2', $port);
    WebhookTest::write_file($answer, "127.0.0.2\n");
    sleep 1.1;    # the TTL of the previous answer
    my $ng = webhook_nginx("resolver 127.0.0.1:$dns_port ipv6=off valid=1s;\nresolver_timeout 2s;");
    my $res;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, body()); $res->{status} == 200 }, timeout => 10),
        'queued on the primary at 127.0.0.2') or diag dump_res($res), $ng->error_log;
    is($two->llen('{webhook}:queue:low'), 1, 'in it');
    ok(wait_until(sub { $one->llen('{webhook}:queue:low') == 1 }, timeout => 10), 'and in its replica');

    $one->cli('REPLICAOF', 'NO', 'ONE');
    $two->cli('REPLICAOF', '127.0.0.1', $port);
    WebhookTest::write_file($answer, "127.0.0.1\n");
    sleep 1.1;
    like($two->cli('ROLE') // '', qr/^slave/, 'the old primary is a replica now, its clients kept');

    my @answers;
    ok(wait_until(sub { $res = $ng->request('POST', $R, \%H, body()); push @answers, $res->{status};
            $res->{status} == 200 }, timeout => 10),
        'queued again, without reload') or diag dump_res($res), $ng->error_log;
    is($one->llen('{webhook}:queue:low'), 2, 'on the promoted replica (the first event replicated, the last)');
    is(scalar(grep { $_ != 200 && $_ != 503 } @answers), 0,
        'meanwhile 503, never another answer (' . scalar(grep { $_ == 503 } @answers) . ' x 503)');
    like($ng->error_log, qr/webhook: redis at localhost:$port is read-only \(no longer the primary\), reconnecting/,
        'the READONLY is logged');
    like($ng->error_log, qr/webhook: redis: "localhost" resolved to 127\.0\.0\.1/, 'the name resolved again');
    ok($ng->stop, 'nginx stops gracefully');
    $one->cli('REPLICAOF', 'NO', 'ONE');
    $two->cli('REPLICAOF', 'NO', 'ONE');
};

done_testing;
