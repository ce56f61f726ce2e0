#!/usr/bin/perl
# The Debian package (make deb, debian/): apt-get installs it next to
# Debian's nginx, its maintainer scripts (dh_nginx's) enable the module in
# /etc/nginx/modules-enabled, `nginx -t` passes with the system's
# configuration, nginx loads it through the package's load line and queues
# an event; apt-get remove keeps the link as .removed (Debian's design),
# apt-get purge leaves nothing of the package behind.
# Changes the system: runs as root with apt only, in the plain suite only
# (against /usr/sbin/nginx, not under ASan, valgrind or the matrix).
# Runs `make uninstall` first: make install writes the same paths, owned
# by no package.  Uses the .deb in the project root when it is newer than
# the sources, or builds it (make deb).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use WebhookTest;

my $repo = abs_path("$FindBin::Bin/..");
my $pkg = 'libnginx-mod-http-webhook';
my $system_nginx = '/usr/sbin/nginx';

plan skip_all => 'not root: installing a package needs root' if $> != 0;
for my $tool (qw(apt-get dpkg dpkg-buildpackage dpkg-parsechangelog)) {
    plan skip_all => "no $tool: not a Debian system with apt"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}
plan skip_all => "NGINX_BIN=$ENV{NGINX_BIN}: the package is for Debian's "
    . "nginx, this test runs in the plain suite only"
    if $ENV{NGINX_BIN} && abs_path($ENV{NGINX_BIN}) ne $system_nginx;
plan skip_all => "no $system_nginx (Debian's nginx)" unless -x $system_nginx;

sub run { WebhookTest::run_cmd([@_], timeout => 600) }

sub installed {
    my ($rc, $out) = run('dpkg-query', '-W', '-f', '${Status}', $pkg);
    return $rc == 0 && $out =~ /install ok installed/;
}

local $ENV{DEBIAN_FRONTEND} = 'noninteractive';

# ---------------------------------------------------------------- the .deb
my ($rc, $version) = run('dpkg-parsechangelog', '-l', "$repo/debian/changelog",
                         '-S', 'Version');
chomp $version;
my (undef, $arch) = run('dpkg', '--print-architecture');
chomp $arch;
my $deb = "$repo/${pkg}_${version}_$arch.deb";
my @sources = (glob("$repo/src/*"), glob("$repo/src/*/*"), "$repo/config",
               map { "$repo/debian/$_" } qw(control rules changelog copyright
                                          docs examples source/format));
my $newest = 0;
for (@sources) { my $m = (stat $_)[9] // 0; $newest = $m if $m > $newest }
if (-f $deb && (stat $deb)[9] >= $newest) {
    pass("$deb is newer than the sources");
} else {
    my $out;
    ($rc, $out) = run('make', '-C', $repo, '--no-print-directory', 'deb');
    is($rc, 0, 'make deb') or diag $out;
}
ok(-f $deb, "make deb made ${pkg}_${version}_$arch.deb in the project root")
    or BAIL_OUT('no package to test');

my (undef, $depends) = run('dpkg-deb', '-f', $deb, 'Depends');
(undef, my $abi) = run('sh', '-c', "dpkg-query -W -f '\${Provides}' nginx");
my ($nginx_abi) = $abi =~ /(nginx-abi-[\w.~+-]+)/;
like($depends, qr/(^|, )\Q$nginx_abi\E(,|$)/m,
     "it depends on the ABI of the installed nginx ($nginx_abi)")
    or diag "Depends: $depends; nginx Provides: $abi";
like($depends, qr/libhiredis/, 'and on the hiredis library');

# ---------------------------------------------------------------- install
# a package left installed by an earlier run, then what make install wrote
if (installed()) {
    my $out;
    ($rc, $out) = run('apt-get', 'purge', '-y', '-q', $pkg);
    is($rc, 0, 'an earlier install purged') or diag $out;
}
($rc, my $out) = run('make', '-C', $repo, '--no-print-directory', 'uninstall');
is($rc, 0, 'make uninstall first') or diag $out;

my $so = '/usr/lib/nginx/modules/ngx_http_webhook_module.so';
my $avail = '/usr/share/nginx/modules-available/mod-http-webhook.conf';
my $link = '/etc/nginx/modules-enabled/50-mod-http-webhook.conf';
ok(!-e $so && !-e $avail && !-l $link, 'nothing of the module is installed');

($rc, $out) = run('apt-get', 'install', '-y', '-q', '--no-install-recommends',
                  $deb);
is($rc, 0, "apt-get install $deb") or diag $out;
ok(installed(), "$pkg is installed");

my (undef, $list) = run('dpkg', '-L', $pkg);
my @files = grep { -f $_ || -l $_ } split /\n/, $list;
ok((grep { $_ eq $so } @files), 'the package has the .so in /usr/lib/nginx/modules');
is(read_file($avail), "load_module modules/ngx_http_webhook_module.so;\n",
   'and the load line in modules-available (dh_nginx\'s)');
is(readlink($link), $avail, 'its postinst enabled it in modules-enabled');

($rc, $out) = run($system_nginx, '-t');
is($rc, 0, 'nginx -t with the system configuration, module loaded') or diag $out;

# nginx with Debian's prefix layout loads it through the package's load line
SKIP: {
    my $dir = tempdir('webhook-deb-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
    chmod 0755, $dir;
    symlink('/usr/lib/nginx/modules', "$dir/modules") or die "symlink: $!";
    my $redis = start_redis();
    my $ng = eval {
        start_nginx(module => undef, dir => $dir, main => "include $link;",
            http => "webhook_redis " . $redis->addr . ";\nserver {\n"
                  . "    listen 127.0.0.1:%%PORT%%;\n" . receive_location() . "}\n",
            files => { 'webhook.tokens' => "deb-token\n" });
    };
    ok($ng, 'nginx starts with the packaged module') or diag $@;
    skip 'nginx did not start', 2 unless $ng;
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        { 'Content-Type' => 'application/json', Authorization => 'Bearer deb-token' },
        sample_text('odoo-event.json'));
    is_queued($res, 'high', 'the packaged module queues an Odoo event');
    is($redis->llen('{webhook}:queue:high'), 1, 'into Redis');
    $ng->stop;
}

# ---------------------------------------------------------------- remove
($rc, $out) = run('apt-get', 'remove', '-y', '-q', $pkg);
is($rc, 0, "apt-get remove $pkg") or diag $out;
ok(!-e $so && !-l $link, 'removes the .so and the link');
is(readlink("$link.removed"), $avail,
   'and keeps the link as .removed, so that a reinstall enables it again');

($rc, $out) = run('apt-get', 'purge', '-y', '-q', $pkg);
is($rc, 0, "apt-get purge $pkg") or diag $out;
ok(!installed(), 'the package is gone');
my @left = grep { -e $_ || -l $_ } @files, $link, "$link.removed";
is_deeply(\@left, [], 'and nothing of it is left') or diag "left: @left";
($rc, $out) = run($system_nginx, '-t');
is($rc, 0, 'nginx -t passes again without it') or diag $out;

done_testing();
