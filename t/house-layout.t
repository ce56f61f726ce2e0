#!/usr/bin/perl
# The shape of src/ (scripts/check-layout): a folder per subsystem, one
# header as its face, includes that point only down, config listing every
# file.  And the check catches what it should: a copy of src/ where one
# file includes a higher folder's face, another a lower folder's inner
# header, and a file sits outside any folder.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use WebhookTest;

my $repo = "$FindBin::Bin/..";
my $check = "$repo/scripts/check-layout";

my ($rc, $out) = WebhookTest::run_cmd([$check], timeout => 60);
is($rc, 0, 'src/: every include points down to a face') or diag $out;

# the check fails when it should
my $tmp = tempdir('webhook-layout-XXXXXX', TMPDIR => 1, CLEANUP => 1);
system('cp', '-r', "$repo/src", "$repo/config", $tmp) == 0 or die "cp: $?";
my $spool = "$tmp/src/spool/ngx_http_webhook_spool.c";
my $text = read_file($spool);
$text =~ s{(#include "ngx_http_webhook_spool.h"\n)}{$1#include "receive/ngx_http_webhook_receive.h"\n#include "redis/ngx_http_webhook_redis_conn.h"\n};
write_file($spool, $text);
write_file("$tmp/src/ngx_http_webhook_stray.c", "/* stray */\n");
($rc, $out) = WebhookTest::run_cmd([$check, "$tmp/src"], timeout => 60);
isnt($rc, 0, 'a broken copy of src/ fails the check');
like($out, qr{spool/ngx_http_webhook_spool\.c:\d+: includes "receive/ngx_http_webhook_receive\.h": receive/ is not below spool/},
    '... an include up a folder, named with its line');
like($out, qr{includes "redis/ngx_http_webhook_redis_conn\.h", which is not the face of redis/},
    '... a lower folder\'s inner header');
like($out, qr{ngx_http_webhook_stray\.c: not in a subsystem folder}, '... a file outside any folder');
like($out, qr{config: ngx_http_webhook_stray\.c is not listed}, '... and not in config');

done_testing;
