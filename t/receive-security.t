#!/usr/bin/perl
# Security promises: secrets stay out of every log, answer body and
# `nginx -T`; a secret file readable by every user is warned about at
# `nginx -t`; a request that fails auth never reaches Redis and is
# answered without waiting for its body; any token of the file is
# accepted, whatever its length (Bearer, Basic as typed or as the password
# of Basic user:password), and a prefix or extension of one is not.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);
use MIME::Base64 qw(encode_base64);
use Digest::SHA ();
use WebhookTest;
use WebhookLoad ();

require_module();

my $TOKEN = 'tok-Secret-8c1f2e';
my $SHORT = 'k9';
my $LONG = 'L' x 200;
my $RPASS = 'pw-Redis-77a';
my @BEARER = ('Content-Type' => 'application/json');

my $redis = start_redis(password => $RPASS);
my $body = sample_text('odoo-event.json');

sub http_conf {
    my ($tokens, $level) = @_;
    return 'webhook_redis ' . $redis->addr . ";\n"
        . "webhook_redis_password_file %%PREFIX%%/redis.pass;\n"
        . "log_format audit '\$status \$webhook_result \$webhook_event_id "
        . "\$webhook_priority';\n"
        . "server {\n    listen 127.0.0.1:%%PORT%%;\n"
        . "    access_log %%PREFIX%%/audit.log audit;\n"
        . receive_location(tokens => $tokens, api_key_header => 'X-API-Key')
        . "}\n";
}

my %files = (
    'webhook.tokens' => "# senders\n$TOKEN\n$SHORT\n\n$LONG\n",
    'redis.pass'     => "$RPASS\n",
);

subtest 'secret files readable by every user are warned about' => sub {
    my $dir = tempdir(CLEANUP => 1);
    chmod 0755, $dir;
    write_file("$dir/open.tokens", "$TOKEN\n", 0644);
    my ($rc, $out) = nginx_t(http_conf("../$dir/open.tokens") =~ s{%%PREFIX%%/\.\./}{}r,
        files => { 'redis.pass' => "$RPASS\n" });
    is($rc, 0, 'nginx -t still passes');
    like($out, qr/\[warn\].*open\.tokens" is readable by every user/,
         'with a warning that names the token file');

    write_file("$dir/open.pass", "$RPASS\n", 0604);
    ($rc, $out) = nginx_t((http_conf('webhook.tokens') =~ s{%%PREFIX%%/redis\.pass}{$dir/open.pass}r),
        files => { 'webhook.tokens' => "$TOKEN\n" });
    like($out, qr/\[warn\].*open\.pass" is readable by every user/,
         'and about the password file');

    ($rc, $out) = nginx_t(http_conf('webhook.tokens'), files => \%files);
    is($rc, 0, 'files readable by root only pass');
    unlike($out, qr/readable by every user/, 'without the warning');
};

subtest 'nginx -T shows file names, never the secrets' => sub {
    my $n = WebhookTest::Nginx->new(http => http_conf('webhook.tokens'), files => \%files);
    $n->write_conf;
    my ($rc, $out) = WebhookTest::run_cmd([$ENV{NGINX_BIN} || '/usr/sbin/nginx', '-T', '-p', $n->dir . '/',
        '-c', $n->dir . '/nginx.conf']);
    is($rc, 0, 'nginx -T passes');
    like($out, qr/webhook_redis_password_file \S+redis\.pass;/, 'it names the password file');
    like($out, qr/webhook_token_file \S+webhook\.tokens;/, 'and the token file');
    unlike($out, qr/\Q$RPASS\E/, 'not the Redis password');
    unlike($out, qr/\Q$TOKEN\E/, 'nor a token');
};

my $ng = start_nginx(http => http_conf('webhook.tokens'), files => \%files,
                     error_level => 'info');

subtest 'every token of the file is accepted, nothing close to one is' => sub {
    for my $t ($TOKEN, $SHORT, $LONG) {
        my $res = $ng->request('POST', '/api/v1/webhooks/receive',
            [@BEARER, Authorization => "Bearer $t"], $body);
        is($res->{status}, 200, 'a token of ' . length($t) . ' bytes');
    }
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, 'X-API-Key' => $SHORT], $body);
    is($res->{status}, 200, 'in the API key header too');

    for my $t (substr($TOKEN, 0, -1), "${TOKEN}x", "x$TOKEN", uc $TOKEN,
               substr($LONG, 0, 199), "${SHORT}${SHORT}", 'k')
    {
        my $shown = length $t > 20 ? substr($t, 0, 20) . '...' : $t;
        $res = $ng->request('POST', '/api/v1/webhooks/receive',
            [@BEARER, Authorization => "Bearer $t"], $body);
        is($res->{status}, 401, "refused: \"$shown\"");
    }
    $res = $ng->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => "Basic $TOKEN"], $body);
    is($res->{status}, 200, 'Basic with the token as typed');
    $res = $ng->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => 'Basic ' . encode_base64("odoo:$LONG", '')], $body);
    is($res->{status}, 200, 'Basic user:token, a token of ' . length($LONG) . ' bytes');
    for my $c (["Basic ${TOKEN}x", 'Basic, token plus suffix'],
               ['Basic ' . substr($TOKEN, 0, -1), 'Basic, prefix of a token'],
               ['Basic ' . encode_base64("odoo:${TOKEN}x", ''), 'Basic user:password, token plus suffix'],
               ['Basic ' . encode_base64("$TOKEN:", ''), 'Basic, the token as the user'],
               ['Basic ' . encode_base64("odoo:" . substr($TOKEN, 0, -1), ''), 'Basic user:password, prefix'])
    {
        $res = $ng->request('POST', '/api/v1/webhooks/receive',
            [@BEARER, Authorization => $c->[0]], $body);
        is($res->{status}, 401, "refused: $c->[1]");
    }
    $res = $ng->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => "Token $TOKEN"], $body);
    is($res->{status}, 401, 'a token in another scheme is refused');
    unlike($res->{body}, qr/\Q$TOKEN\E/, 'and the answer does not echo it');
};

subtest 'a refused request never reaches Redis and is not read' => sub {
    $redis->cli('CONFIG', 'RESETSTAT');
    my $before = $redis->llen('{webhook}:queue:high');

    # headers announce a body (under client_max_body_size: above it,
    # nginx answers 413 itself before the module runs) that never comes:
    # the 401 must not wait for it
    my $t0 = time;
    my $res = $ng->raw(pieces => ["POST /api/v1/webhooks/receive HTTP/1.1\r\n"
        . "Host: x\r\nContent-Type: application/json\r\n"
        . "Authorization: Bearer wrong-$TOKEN\r\nContent-Length: 1000000\r\n\r\n"],
        timeout => 10);
    my $took = time - $t0;
    is($res->{status}, 401, '401 for a wrong token with a 1 MB body announced');
    cmp_ok($took, '<', 3, sprintf('answered without waiting for the body (%.3f s)', $took));

    for (1 .. 20) {
        $ng->request('POST', '/api/v1/webhooks/receive',
            [@BEARER, Authorization => "Bearer nope-$_"], $body);
    }
    my $stats = $redis->cli('INFO', 'commandstats') // '';
    unlike($stats, qr/cmdstat_(evalsha|eval|lpush|set):/,
           'Redis ran no command for the refused requests');
    is($redis->llen('{webhook}:queue:high'), $before, 'and holds nothing new');
};

subtest 'no secret in any log or answer' => sub {
    # one more of each kind of answer, with the secrets in play
    $ng->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => "Bearer $TOKEN"], '{"broken');
    $ng->request('GET', '/api/v1/webhooks/receive', [Authorization => "Bearer $TOKEN"]);
    $redis->stop;
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => "Bearer $TOKEN"], $body);
    is($res->{status}, 503, 'Redis down: 503');
    unlike($res->{body}, qr/\Q$TOKEN\E|\Q$RPASS\E/, 'the 503 body holds no secret');
    $redis->start;
    wait_until(sub {
        $ng->request('POST', '/api/v1/webhooks/receive',
            [@BEARER, Authorization => "Bearer $TOKEN"], $body)->{status} == 200
    }, timeout => 10);

    my $elog = $ng->error_log;
    like($elog, qr/redis/i, 'the error log does talk about the outage');
    my $audit = $ng->access_log('audit.log');
    like($audit, qr/^200 queued /m, 'the audit log has the queued line');
    for my $secret ($TOKEN, $LONG, $RPASS) {
        unlike($elog, qr/\Q$secret\E/, 'no secret in the error log');
        unlike($audit, qr/\Q$secret\E/, 'nor in the audit log');
    }
};

subtest 'at debug level, only nginx\'s own header dump shows the token' => sub {
    my (undef, $v) = WebhookTest::run_cmd([$ENV{NGINX_BIN} || '/usr/sbin/nginx', '-V']);
    plan skip_all => 'this nginx has no --with-debug' unless $v =~ /--with-debug/;
    my $dbg = start_nginx(http => http_conf('webhook.tokens'), files => \%files,
                          error_level => 'debug');
    my $res = $dbg->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => "Bearer $TOKEN"], $body);
    is($res->{status}, 200, 'queued');
    $res = $dbg->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => "Bearer ${TOKEN}x"], $body);
    is($res->{status}, 401, 'refused');
    # user:token in base64: the decoded token is in no line at all
    $res = $dbg->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => 'Basic ' . encode_base64("odoo:$TOKEN", '')], $body);
    is($res->{status}, 200, 'Basic user:token: accepted');
    $res = $dbg->request('POST', '/api/v1/webhooks/receive',
        [@BEARER, Authorization => 'Basic ' . encode_base64("odoo:${TOKEN}x", '')], $body);
    is($res->{status}, 401, 'Basic user:token plus suffix: refused');
    my @lines = grep { /\Q$TOKEN\E|\Q$RPASS\E/ } split /\n/, $dbg->error_log;
    my @other = grep { !/http header: "Authorization: Bearer / } @lines;
    ok(@lines > 0, 'nginx core logs request headers at debug level ('
       . scalar(@lines) . ' lines)');
    is(scalar @other, 0, 'no other debug line holds a secret')
        or diag join "\n", @other[0 .. ($#other < 5 ? $#other : 5)];
};

# how often each needle is in the readable memory of a process (root only:
# /proc/PID/mem of a process of another user), read 4 MB at a time; undef
# when nginx runs under a sanitizer or valgrind, whose reservations of
# terabytes hold the heap
sub in_memory {
    my ($pid, @needles) = @_;
    no warnings 'portable';    # 64-bit addresses
    my %n = map { $_ => 0 } @needles;
    open my $maps, '<', "/proc/$pid/maps" or return;
    my @maps = <$maps>;
    return if grep { /libasan|libtsan|vgpreload/ } @maps;
    open my $mem, '<:raw', "/proc/$pid/mem" or return;
    my $chunk = 4 << 20;
    for my $line (@maps) {
        my ($from, $to, $perm) = $line =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+)/ or next;
        next unless $perm =~ /^r/;
        my $tail = '';
        for (my $at = hex $from; $at < hex $to; $at += $chunk) {
            my $buf = '';
            sysseek($mem, $at, 0) && sysread($mem, $buf, $chunk) or last;
            $buf = $tail . $buf;
            for my $s (@needles) {
                # a needle across two chunks is counted in the second
                for (my $i = index($buf, $s); $i >= 0; $i = index($buf, $s, $i + 1)) {
                    $n{$s}++ if $i + length($s) > length $tail;
                }
            }
            $tail = substr($buf, -64);
        }
    }
    return \%n;
}

subtest 'token files: only names and digests in memory, once per file' => sub {
    return if $> != 0 && cannot_run_subtest('reading another user\'s memory needs root');
    # under valgrind the pid is a wrapper's (valgrind-tests), not nginx's
    plan skip_all => 'nginx runs under valgrind: its memory is valgrind\'s'
        if WebhookLoad::slow_nginx();
    my ($named, $named2, $unnamed) = ('tok-Named-Prod-3b9f1c7e', 'tok-Named-Stage-a0d4e6f2',
        'tok-Unnamed-9c2e5b71');
    my $tokens = "odoo-prod $named\nodoo-stage\t$named2\n$unnamed\n";
    # three locations read the same file
    my $locs = join '', map { receive_location(path => "/r$_") } 1 .. 3;
    my $n = start_nginx(files => { 'webhook.tokens' => $tokens, 'redis.pass' => "$RPASS\n" },
        http => 'webhook_redis ' . $redis->addr . ";\n"
            . "webhook_redis_password_file %%PREFIX%%/redis.pass;\n"
            . "server {\n    listen 127.0.0.1:%%PORT%%;\n$locs}\n");
    my %digest = map { $_ => Digest::SHA::sha1($_) } $named, $named2, $unnamed;
    my $master = in_memory($n->pid, $RPASS);
    is($master ? $master->{$RPASS} : 1, 1,
        'the master: the Redis password once, the file it was read from zeroed');
    for my $p (['the master', $n->pid], ['a worker', ($n->workers)[0]]) {
        my $found = in_memory($p->[1], $named, $named2, $unnamed, values %digest);
        if (!$found) {
            pass("$p->[0]: not scanned, nginx runs under a sanitizer or valgrind");
            next;
        }
        is($found->{$named} + $found->{$named2}, 0, "$p->[0]: no named token in memory")
            or diag "found $found->{$named} and $found->{$named2} times";
        is($found->{$unnamed}, 0, "$p->[0]: no unnamed token");
        is_deeply([map { $found->{ $digest{$_} } } $named, $named2, $unnamed], [1, 1, 1],
            "$p->[0]: each token's digest once, for three locations");
    }
    # the names still name the senders, in every location
    for my $i (1 .. 3) {
        my $res = $n->request('POST', "/r$i", [@BEARER, Authorization => "Bearer $named2"],
            '{"event_id":"mem-' . $i . '","model":"m"}');
        is($res->{status}, 200, "/r$i: a named token is taken");
    }
    my @env = map { json_decode($_) } $redis->lrange('{webhook}:queue:medium');
    is_deeply([map { $_->{sender} } @env], [('odoo-stage') x 3], 'its name is the sender');
    $redis->flushall;
    $n->stop;
};

done_testing();
