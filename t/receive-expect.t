#!/usr/bin/perl
# Expect: 100-continue.  A request the module refuses before reading its
# body (method, token, content type) gets the refusal as its first answer,
# not "100 Continue" first: the client must not send a body that is not
# wanted.  Nor does a HEAD probe.  A request it accepts gets 100 Continue, then its answer.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IO::Select;
use IO::Socket::INET;
use WebhookTest;

require_module();

my $TOKEN = 'tok-expect-3b8e';
my $R = '/api/v1/webhooks/receive';
my $body = sample_text('odoo-event.json');

my $redis = start_redis();
my $ng = start_nginx(
    files => { 'webhook.tokens' => "$TOKEN\n" },
    http => 'webhook_redis ' . $redis->addr . ";\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n"
        . receive_location()
        . "}\n",
);

# sends the head only; returns the connection and the first answer's head
sub first_answer {
    my ($method, %h) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port,
        Proto => 'tcp', Timeout => 5) or die "connect: $!";
    my $head = "$method $R HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Expect: 100-continue\r\nContent-Length: " . length($body) . "\r\n";
    $head .= "$_: $h{$_}\r\n" for sort keys %h;
    syswrite($sock, "$head\r\n") or die "write: $!";
    my ($buf, $sel, $deadline) = ('', IO::Select->new($sock), time + 10);
    while (index($buf, "\r\n\r\n") < 0) {
        last unless $sel->can_read($deadline - time);
        last unless sysread($sock, $buf, 65536, length $buf);
    }
    return ($sock, $buf);
}

my @cases = (
    ['a wrong token', 'POST', 401,
        { 'Content-Type' => 'application/json', Authorization => 'Bearer wrong' }],
    ['no token', 'POST', 401, { 'Content-Type' => 'application/json' }],
    ['a wrong content type', 'POST', 415,
        { 'Content-Type' => 'text/plain', Authorization => "Bearer $TOKEN" }],
    ['another method', 'PUT', 405,
        { 'Content-Type' => 'application/json', Authorization => "Bearer $TOKEN" }],
    ['a HEAD probe', 'HEAD', 200, {}],
);

for my $c (@cases) {
    my ($name, $method, $status, $h) = @$c;
    my ($sock, $buf) = first_answer($method, %$h);
    my ($line) = $buf =~ /\A([^\r\n]*)/;
    is($line, "HTTP/1.1 $status " . { 401 => 'Unauthorized', 415 => 'Unsupported Media Type',
        405 => 'Not Allowed', 200 => 'OK' }->{$status}, "$name: the first answer is the $status, no 100 Continue");
    close $sock;
}

# accepted: 100 Continue, then the body, then 200
my ($sock, $buf) = first_answer('POST', 'Content-Type' => 'application/json',
    Authorization => "Bearer $TOKEN");
like($buf, qr{\AHTTP/1\.1 100 Continue\r\n\r\n\z}, 'a good request gets 100 Continue');
syswrite($sock, $body) or die "write: $!";
$buf = '';
my $res = WebhookTest::_read_response($sock, 'POST', time + 10, \$buf);
is_queued($res, 'high', 'then its answer once the body is sent');
close $sock;

done_testing();
