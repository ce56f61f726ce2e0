#!/usr/bin/perl
# The JSON that replaces nginx's own error pages in a receive location
# must still leave when the socket is full: the body filter has to pass
# the writer's later flushes on.  A client pipelines 400 requests that
# nginx refuses itself (deny: 403, limit_req: 429) on a listen socket with
# sndbuf=4k, into a 4k receive buffer, and reads only after a pause: every
# answer must arrive, none cut off by send_timeout.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Socket qw(SOL_SOCKET SO_RCVBUF);
use IO::Socket::INET;
use WebhookTest;

require_module();

my $N = 400;
my $SEND_TIMEOUT = 3;

my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "tok-backpressure-51c0\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "limit_req_zone \$binary_remote_addr zone=senders:1m rate=1r/m;\n"
        . "server {\n    listen 127.0.0.1:%%PORT%% sndbuf=4k;\n"
        . "    send_timeout ${SEND_TIMEOUT}s;\n"
        . "    keepalive_requests 10000;\n"
        . receive_location(path => '/denied', extra => 'deny all;')
        . receive_location(path => '/limited',
                           extra => 'limit_req zone=senders; limit_req_status 429;')
        . "}\n",
);

# the answers to $N pipelined GETs of $path, read after a pause
sub pipelined {
    my ($path) = @_;
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!";
    $sock->connect(Socket::pack_sockaddr_in($ng->port, Socket::inet_aton('127.0.0.1')))
        or die "connect: $!";
    my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $all = $req x ($N - 1)
        . "GET $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $err = WebhookTest::_write_all($sock, $all, time + 10);
    die "writing the requests: $err" if $err;

    sleep 1;    # nginx fills both buffers and gets EAGAIN meanwhile

    my $deadline = time + $SEND_TIMEOUT + 10;
    my ($buf, @res) = ('');
    while (@res < $N) {
        my $res = WebhookTest::_read_response($sock, 'GET', $deadline, \$buf);
        last unless $res->{status};
        push @res, $res;
    }
    close $sock;
    return @res;
}

for my $case (['/denied', 403], ['/limited', 429]) {
    my ($path, $status) = @$case;
    my @res = pipelined($path);
    # limit_req lets the first request of the minute through (our 405)
    my @json = grep { $_->{status} == $status && ref $_->{json} eq 'HASH' } @res;
    is(scalar(@res), $N, "$path: all $N pipelined answers arrive");
    cmp_ok(scalar(@json), '>=', $N - 1, "$path: $status with JSON bodies");
}

unlike($ng->error_log, qr/\[alert\]|client timed out/,
       'no alert, no client timed out in the error log');

done_testing();
