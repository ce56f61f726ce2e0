#!/usr/bin/perl
# `make install` / `make uninstall` lay out the module like Debian's
# libnginx-mod-* packages (DESTDIR and PREFIX honoured), nginx loads it
# through that layout, and the build refuses an nginx of another version,
# one without --with-compat, or one with another module signature.
# Runs make against the module under test without rebuilding it (make -o).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use WebhookTest;

my $module = require_module();
my $repo = abs_path("$FindBin::Bin/..");

# the build directory the module comes from: <BUILD>/nginx/objs/<name>.so
my ($build) = $module =~ m{^(.*)/nginx/objs/ngx_http_webhook_module\.so\z};
plan skip_all => "$module is not in a build directory of the Makefile"
    unless $build && -f "$build/nginx/src/core/nginx.h";

# the real nginx binary (NGINX_BIN may be a valgrind or ASan wrapper)
my $nginx = '/usr/sbin/nginx';

# make(@args): runs make in the repository without remaking the module
sub make {
    my @cmd = ('make', '-C', $repo, '--no-print-directory', "BUILD=$build",
               '-o', $module, @_);
    return WebhookTest::run_cmd(\@cmd, timeout => 120);
}

my $tmp = tempdir('webhook-install-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
chmod 0755, $tmp;

# ---------------------------------------------------------------- install
my $root = "$tmp/root";
my ($rc, $out) = make('install', "DESTDIR=$root", "NGINX_BIN=$nginx");
is($rc, 0, 'make install DESTDIR=...') or diag $out;
like($out, qr/fits \Q$nginx\E \(nginx [\d.]+, --with-compat, signature /,
     'after checking the module against the nginx binary');

my $so = "$root/usr/lib/nginx/modules/ngx_http_webhook_module.so";
my $avail = "$root/usr/share/nginx/modules-available/mod-http-webhook.conf";
my $link = "$root/etc/nginx/modules-enabled/50-mod-http-webhook.conf";
ok(-f $so && read_file($so) eq read_file($module), 'the .so is in /usr/lib/nginx/modules');
is((stat $so)[2] & 07777, 0644, 'mode 0644');
is(read_file($avail), "load_module modules/ngx_http_webhook_module.so;\n",
   'the load line is in /usr/share/nginx/modules-available, relative to the prefix');
is(readlink($link), '/usr/share/nginx/modules-available/mod-http-webhook.conf',
   'modules-enabled/50-mod-http-webhook.conf links to it, like a libnginx-mod-* package');

# nginx with Debian's prefix layout (<prefix>/modules -> ../../lib/nginx/modules)
symlink('../../lib/nginx/modules', "$root/usr/share/nginx/modules") or die "symlink: $!";
($rc, $out) = nginx_t("webhook_redis 127.0.0.1:6379;\n", module => undef,
    main => "include $avail;", dir => "$root/usr/share/nginx");
is($rc, 0, 'nginx -t loads the installed module through the installed load line') or diag $out;

# again: an installed layout is replaced in place
($rc, $out) = make('install', "DESTDIR=$root", "NGINX_BIN=$nginx");
is($rc, 0, 'make install over an installed copy') or diag $out;

# ---------------------------------------------------------------- uninstall
($rc, $out) = make('uninstall', "DESTDIR=$root");
is($rc, 0, 'make uninstall DESTDIR=...') or diag $out;
ok(!-e $so && !-e $avail && !-l $link, 'removes the .so, the load line and the link');
ok(-d "$root/usr/lib/nginx/modules" && -d "$root/etc/nginx/modules-enabled",
   'and leaves the directories, which nginx owns');

# ---------------------------------------------------------------- PREFIX
my $root2 = "$tmp/root2";
($rc, $out) = make('install', "DESTDIR=$root2", 'PREFIX=/usr/local', "NGINX_BIN=$nginx");
is($rc, 0, 'make install PREFIX=/usr/local') or diag $out;
ok(-f "$root2/usr/local/lib/nginx/modules/ngx_http_webhook_module.so",
   'the .so goes to PREFIX/lib/nginx/modules');
is(read_file("$root2/usr/local/share/nginx/modules-available/mod-http-webhook.conf"),
   "load_module /usr/local/lib/nginx/modules/ngx_http_webhook_module.so;\n",
   'the load line names it by its absolute path');
is(readlink("$root2/etc/nginx/modules-enabled/50-mod-http-webhook.conf"),
   '/usr/local/share/nginx/modules-available/mod-http-webhook.conf',
   'and the link stays in /etc/nginx/modules-enabled');

# ---------------------------------------------------------------- the check
# fake nginx binaries: each prints nginx -V like the real one, but wrong
my $real_v = `$nginx -V 2>&1`;
my ($version) = $real_v =~ m{nginx version: nginx/([\d.]+)} or BAIL_OUT("$nginx -V: $real_v");
my ($signature) = read_file($module) =~ /(\d+,\d+,\d+,[01]{20,})/
    or BAIL_OUT("no module signature in $module");
(my $other_sig = $signature) =~ s/([01])$/$1 ? '0' : '1'/e;

sub fake {
    my ($name, $v, $args, $sig) = @_;
    my $path = "$tmp/$name";
    write_file($path, "#!/bin/sh\n# $sig\n"
        . "echo 'nginx version: nginx/$v' >&2\n"
        . "echo 'configure arguments: $args' >&2\n", 0755);
    return $path;
}

my @cases = (
    [fake('nginx-other-version', '1.25.3', '--with-compat', $signature),
     qr/built against nginx \Q$version\E, but .* is\s+nginx 1\.25\.3/, 'another version'],
    [fake('nginx-no-compat', $version, '--prefix=/usr', $signature),
     qr/was not configured --with-compat/, 'an nginx without --with-compat'],
    [fake('nginx-other-signature', $version, '--with-compat', $other_sig),
     qr/signature differs.*NGX_COMPAT\): module 1, nginx 0/s, 'another signature'],
);
for my $c (@cases) {
    my ($bin, $want, $what) = @$c;
    ($rc, $out) = make('all', "NGINX_BIN=$bin");
    isnt($rc, 0, "make refuses $what");
    like($out, $want, 'and says why') or diag $out;
}

my $root3 = "$tmp/root3";
($rc, $out) = make('install', "DESTDIR=$root3", "NGINX_BIN=$cases[0][0]");
isnt($rc, 0, 'make install refuses it too');
ok(!-e "$root3/usr/lib/nginx/modules/ngx_http_webhook_module.so", 'and installs nothing');

($rc, $out) = make('all', "NGINX_BIN=$nginx");
is($rc, 0, 'make accepts the real nginx') or diag $out;
($rc, $out) = make('all', 'NGINX_BIN=');
is($rc, 0, 'NGINX_BIN= skips the check') or diag $out;
like($out, qr/NGINX_BIN is empty: not checked/, 'and says so');

done_testing();
