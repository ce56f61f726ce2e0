#!/usr/bin/perl
# The README and docs/ tell the truth about the code: scripts/check-docs
# passes on the tree, and each of its four checks fails, naming the file
# and line, on a copy of the tree with one thing made false (a directive's
# default, context or existence; a log line; a link; a file of src/).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use File::Find qw(find);
use WebhookTest;

my $repo = "$FindBin::Bin/..";
my $check = "$repo/scripts/check-docs";

sub check_docs {
    my ($root) = @_;
    my ($rc, $out) = WebhookTest::run_cmd([$check, $root ? ('--root', $root) : ()]);
    return ($rc, $out);
}

my ($rc, $out) = check_docs();
is($rc, 0, 'scripts/check-docs passes on the tree') or diag $out;
like($out, qr/check-docs: (\d+) directives, (\d+) log lines quoted, (\d+) relative links, (\d+) files of src\/: ok/,
     'it says what it checked');
my ($ndir, $nlog, $nlink, $nsrc) = $out =~ /(\d+) directives, (\d+) log lines quoted, (\d+) relative links, (\d+) files of src/;
cmp_ok($ndir // 0, '>=', 30, 'the command table is read (every directive)');
cmp_ok($nlog // 0, '>=', 40, 'the quoted log lines are found');
cmp_ok($nlink // 0, '>=', 100, 'the relative links are found');
my @src;
find(sub { push @src, $File::Find::name if -f $_ }, "$repo/src");
is($nsrc, scalar(@src), 'every file of src/ is counted (in its folders too)');

# A copy of the tree: README.md, docs/ and src/ copied (they are changed
# below), every other top-level entry linked (the docs link into them).
sub copy_tree {
    my $dir = tempdir('webhook-docs-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
    opendir(my $dh, $repo) or die "$repo: $!";
    for my $name (grep { !/^\.\.?$/ && $_ ne '.git' && $_ ne 'build' } readdir $dh) {
        if ($name =~ /^(README\.md|docs|src)$/) {
            system('cp', '-r', "$repo/$name", "$dir/$name") == 0 or die "cp $name";
        } else {
            symlink("$repo/$name", "$dir/$name") or die "symlink $name: $!";
        }
    }
    closedir $dh;
    return $dir;
}

# a file of the copy's src/ by its name, in whichever folder it is
sub src_file {
    my ($dir, $name) = @_;
    my $found;
    find(sub { $found //= $File::Find::name if $_ eq $name }, "$dir/src");
    return $found // die "$name: not in $dir/src";
}

sub edit {
    my ($file, $from, $to) = @_;
    my $text = WebhookTest::read_file($file) // die "$file: not read";
    my $n = ($text =~ s/$from/ref $to ? $to->() : $to/e);
    die "$file: no $from" unless $n;
    WebhookTest::write_file($file, $text);
}

# Each case: what is made false, and the failure the check must print
# (file and line first).
my @cases = (
    ['a documented default that is not the code\'s (check 1)', sub {
        edit("$_[0]/docs/directives.md",
             qr/`webhook_redis_timeout 2s;`/, '`webhook_redis_timeout 3s;`');
     }, qr{^docs/directives\.md:\d+: webhook_redis_timeout: the documented default is 3000, the code's is 2000$}m],
    ['a default changed in the code (check 1)', sub {
        edit(src_file($_[0], 'ngx_http_webhook_module.c'),
             qr/ngx_conf_merge_uint_value\(conf->batch_max, prev->batch_max, 10000\)/,
             'ngx_conf_merge_uint_value(conf->batch_max, prev->batch_max, 5000)');
     }, qr{^docs/directives\.md:\d+: webhook_batch_max: the documented default is 10000, the code's is 5000$}m],
    ['a default of a directive the module parses itself (check 1)', sub {
        edit(src_file($_[0], 'ngx_http_webhook_module.c'),
             qr/prev->rejected_entry,\s*16 \* 1024\)/, 'prev->rejected_entry, 8 * 1024)');
     }, qr{^docs/directives\.md:\d+: webhook_rejected: the documented default is 1000 4194304 16384, the code's is 1000 4194304 8192$}m],
    ['a context that is not the code\'s (check 1)', sub {
        edit("$_[0]/docs/directives.md",
             qr/(### webhook_retry_after\n(?:.*\n)*?\*\*Context:\*\* )`http`, `server`, `location`/,
             sub { "$1`http`" });
     }, qr{^docs/directives\.md:\d+: webhook_retry_after: the context is "http", the code says "http, server, location"}m],
    ['a directive the docs lack (check 1)', sub {
        edit(src_file($_[0], 'ngx_http_webhook_module.c'),
             qr/(\{ ngx_string\("webhook_retry_after"\),)/,
             sub { "{ ngx_string(\"webhook_brand_new\"),\n      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,\n"
                   . "      ngx_conf_set_sec_slot,\n      NGX_HTTP_LOC_CONF_OFFSET,\n"
                   . "      offsetof(ngx_http_webhook_loc_conf_t, retry_after),\n      NULL },\n\n    $1" });
     }, qr{^src/(?:\w+/)?ngx_http_webhook_module\.c:\d+: webhook_brand_new is not documented in docs/directives\.md}m],
    ['a directive documented that the code lacks (check 1)', sub {
        edit("$_[0]/docs/directives.md", qr/(## Status location\n)/,
             sub { "$1\n### webhook_gone\n\n**Syntax:** `webhook_gone;`  \n**Default:** —  \n**Context:** `http`\n\n" });
     }, qr{^docs/directives\.md:\d+: webhook_gone is documented but is in no command table of src/$}m],
    ['a log line that src/ does not write (check 2)', sub {
        edit("$_[0]/docs/operations.md", qr/(## Troubleshooting\n)/,
             sub { "$1\nThe line `webhook: redis at ADDR melted down` means nothing.\n" });
     }, qr{^docs/operations\.md:\d+: the log line "webhook: redis at ADDR melted down" is in no format string of src/$}m],
    ['a log line changed in src/ (check 2)', sub {
        edit(src_file($_[0], 'ngx_http_webhook_redis_conn.c'),
             qr/"webhook: %s closed the idle connection to %V "/,
             '"webhook: %s dropped the idle connection to %V "');
     }, qr{^docs/operations\.md:\d+: the log line "webhook: redis closed the idle connection to ADDR \(\.\.\.\), reconnecting" is in no format string of src/$}m],
    ['a link to an anchor that does not exist (check 3)', sub {
        edit("$_[0]/docs/delivery.md", qr/\(redis\.md#persistence-and-memory\)/,
             '(redis.md#persistence)');
     }, qr{^docs/delivery\.md:\d+: the link "redis\.md#persistence": no heading or anchor "#persistence" in docs/redis\.md$}m],
    ['a link to a file that does not exist (check 3)', sub {
        edit("$_[0]/README.md", qr/\(docs\/odoo\.md#the-reconciler\)/,
             '(docs/odoo-reconciler.md#the-reconciler)');
     }, qr{^README\.md:\d+: the link "docs/odoo-reconciler\.md#the-reconciler": no file docs/odoo-reconciler\.md$}m],
    ['a file of src/ missing from the source layout (check 4)', sub {
        WebhookTest::write_file("$_[0]/src/ngx_http_webhook_new.c", "/* new */\n");
     }, qr{^docs/development\.md:\d+: src/ngx_http_webhook_new\.c is not in the source layout table$}m],
    ['a file in the source layout that src/ lacks (check 4)', sub {
        unlink(src_file($_[0], 'ngx_http_webhook_status_text.c')) or die "unlink: $!";
     }, qr{^docs/development\.md:\d+: the source layout names (?:\w+/)?ngx_http_webhook_status_text\.c, which is not in src/$}m],
);

for my $case (@cases) {
    my ($name, $break, $want) = @$case;
    my $dir = copy_tree();
    $break->($dir);
    my ($rc, $out) = check_docs($dir);
    isnt($rc, 0, "$name: the check fails");
    like($out, $want, "$name: it names the file and line") or diag $out;
}

done_testing();
