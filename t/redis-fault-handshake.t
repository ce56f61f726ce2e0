#!/usr/bin/perl
# A Redis address that accepts the TCP connection but never answers: a TCP
# proxy or load balancer whose backend is down, a hung Redis whose kernel
# still accepts.  Here a listener that never calls read: the kernel
# completes the connects, AUTH/SELECT/SCRIPT LOAD sit unread in its buffer.
# webhook_redis_connect_timeout covers the handshake too: each attempt is
# logged as timed out and dropped, the worker tries again, requests get 503
# within the connect timeout, and once a real Redis answers on the address
# the worker connects and events get 200.  The listener never closes a
# connection it took (a proxy holding a dead backend's connections does
# not either): only the module's timeout gets the worker out.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use WebhookTest;
use WebhookLoad;

require_module();

my $R = '/api/v1/webhooks/receive';
my $TOKEN = 'tok-handshake-3e5f7a';
my %H = ('Content-Type' => 'application/json', Authorization => "Bearer $TOKEN");
my $MARGIN = slow_nginx() ? 8 : 1;

sub body {
    json_encode({ event_id => $_[0], model => 'res.partner', record_id => $_[0], event => 'write' });
}

my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 128,
    Proto => 'tcp', ReuseAddr => 1) or die "listen: $!";
$silent->blocking(0);
my $port = $silent->sockport;

# the connections the silent listener took, held open, never read
my @held;
sub take_connections {
    while (my $c = $silent->accept) { push @held, $c }
    return scalar @held;
}

my $redis = start_redis(no_start => 1, port => $port);
my $ng = fault_nginx(redis => $redis, token => $TOKEN, timeout => '30s', workers => 1,
    http => "webhook_redis_connect_timeout 500ms;\n",
    server => "        location = /status { webhook_status; }\n");

ok(wait_until(sub { $ng->error_log =~ /\[error\].*webhook: redis handshake with 127\.0\.0\.1:$port timed out/ },
    timeout => 10), 'a handshake that gets no answer is logged as timed out')
    or diag $ng->error_log;
ok(wait_until(sub { take_connections() >= 2 }, timeout => 10),
    'the worker drops it and connects again (' . scalar(@held) . ' connections)');

my $res = $ng->request('POST', $R, \%H, body(1), timeout => 0.5 + $MARGIN + 2);
is_json_error($res, 503, 'unavailable', 'a POST meanwhile: 503');
cmp_ok($res->{elapsed}, '<', 0.5 + $MARGIN,
    sprintf('within the connect timeout, not webhook_redis_timeout (%.3fs)', $res->{elapsed}));
$res = $ng->request('GET', '/status', {}, undef, timeout => 20);
is($res->{json} && $res->{json}{redis}{up} ? 1 : 0, 0, 'the status says down');

# the backend comes back: a Redis on the address; the connections the
# listener took stay open on its side
take_connections();
close $silent;
$redis->start;

ok(wait_until(sub { $ng->error_log =~ /webhook: connected to redis/ }, timeout => 10),
    'the worker connects to the Redis that answers') or diag $ng->error_log;
$res = $ng->request('POST', $R, \%H, body(2), timeout => 20);
is_queued($res, 'medium', 'the first event after that: 200');
my @queued = $redis->lrange('{webhook}:queue:medium');
is(scalar @queued, 1, 'and it is in Redis');
$res = $ng->request('GET', '/status', {}, undef, timeout => 20);
is($res->{json} && $res->{json}{redis}{up} ? 1 : 0, 1, 'the status says up');

unlike($ng->error_log, qr/exited on signal|\[alert\]|\[emerg\]/, 'no crash nor alert');
ok($ng->stop(timeout => 20), 'nginx stops gracefully');
close $_ for @held;

# nginx's cached time, when a worker starts, is the master's from before it
# read the configuration: the timer of the first handshake must not count
# the time the configuration took.  Here reading it takes 2 s: it includes
# a FIFO, whose open waits for a writer.
subtest 'a configuration slow to read' => sub {
    my $dir = WebhookTest::make_dir('fifo');
    POSIX::mkfifo("$dir/slow.conf", 0644) or die "mkfifo: $!";
    my $writer = fork;
    die "fork: $!" unless defined $writer;
    if (!$writer) {
        sleep 2;
        open my $fh, '>', "$dir/slow.conf" or POSIX::_exit(1);
        close $fh;
        POSIX::_exit(0);
    }
    $redis->flushall;
    my $ng2 = fault_nginx(redis => $redis, token => $TOKEN, timeout => '5s', workers => 1,
        http => "webhook_redis_connect_timeout 1s;\ninclude $dir/slow.conf;\n");
    waitpid($writer, 0);
    ok(wait_until(sub { $ng2->error_log =~ /webhook: connected to redis/ }, timeout => 10),
        'the worker connects');
    unlike($ng2->error_log, qr/webhook: redis \S+ \S+ \S+ timed out/, 'no connect or handshake timeout');
    is_queued($ng2->request('POST', $R, \%H, body(3), timeout => 20), 'medium', 'an event: 200');
    ok($ng2->stop(timeout => 20), 'nginx stops gracefully');
};

done_testing;
