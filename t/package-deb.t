#!/usr/bin/perl
# The Debian package (make deb, debian/): apt-get installs it next to
# Debian's nginx, its maintainer scripts (dh_nginx's) enable the module in
# /etc/nginx/modules-enabled, `nginx -t` passes with the system's
# configuration, nginx loads it through the package's load line and queues
# an event; the README it ships finds the docs/ pages it links to; apt-get remove keeps the link as .removed (Debian's design),
# apt-get purge leaves nothing of the package behind.
#
# Never on the machine itself: the .deb is built here (make deb, in the
# project root, when older than the sources), then the test runs again in
# a throwaway root (t/lib/throwaway-root: this machine's / under an overlay
# whose writes vanish, in mount and PID namespaces of its own).  This
# machine is bookworm with the nginx the package is built for (its
# nginx-abi), so its own root is the right one, and it costs no mirror;
# the container test's trixie image has another nginx, whose ABI the
# package refuses.  There, the root is first cleared of what the project
# may have put on the machine (an installed package, what `make install`
# and scripts/run-example wrote), so the test passes whether or not they
# are there, and the machine's nginx, packages and files stay as they are.
# Root and apt only, in the plain suite only (against /usr/sbin/nginx, not
# under ASan, valgrind or the matrix).

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
my $throwaway = "$FindBin::Bin/lib/throwaway-root";
# inside the throwaway root: the number of tests run before it
my $inside = $ENV{WEBHOOK_DEB_INSIDE};

plan skip_all => "NGINX_BIN=$ENV{NGINX_BIN}: the package is for Debian's "
    . "nginx, this test runs in the plain suite only"
    if $ENV{NGINX_BIN} && abs_path($ENV{NGINX_BIN}) ne $system_nginx;
cannot_run('not root: installing a package needs root') if $> != 0;
for my $tool (qw(apt-get dpkg dpkg-buildpackage dpkg-parsechangelog unshare)) {
    cannot_run("no $tool: not a Debian system with apt and util-linux")
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}
cannot_run("no $system_nginx (Debian's nginx)") unless -x $system_nginx;

sub run { WebhookTest::run_cmd([@_], timeout => 600) }

sub installed {
    my ($rc, $out) = run('dpkg-query', '-W', '-f', '${Status}', $pkg);
    return $rc == 0 && $out =~ /install ok installed/;
}

local $ENV{DEBIAN_FRONTEND} = 'noninteractive';

my ($rc, $version) = run('dpkg-parsechangelog', '-l', "$repo/debian/changelog",
                         '-S', 'Version');
chomp $version;
my (undef, $arch) = run('dpkg', '--print-architecture');
chomp $arch;
my $deb = "$repo/${pkg}_${version}_$arch.deb";

# ---------------------------------------------------------------- the .deb
if (!$inside) {
    my ($ok, $why) = run($throwaway, '--check');
    cannot_run("no throwaway root here: $why") if $ok != 0;

    my @sources = (glob("$repo/src/*"), glob("$repo/src/*/*"),
                   "$repo/config", "$repo/README.md", glob("$repo/docs/*"),
                   glob("$repo/conf.d/*"),
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

    # the rest in the throwaway root, numbered on (this process's TAP ends
    # here: exec runs no END block, so no plan is printed twice)
    $ENV{WEBHOOK_DEB_INSIDE} = Test::More->builder->current_test;
    exec($throwaway, '--bind', $repo, '--', $^X, "$FindBin::Bin/package-deb.t")
        or BAIL_OUT("exec $throwaway: $!");
}

Test::More->builder->current_test($inside);

# ---------------------------------------------------------------- clear
# the machine as Debian installed it: no earlier package, nothing of make
# install or of the example, all of it in the throwaway root only
clear_throwaway_root();
my $out;

my $so = '/usr/lib/nginx/modules/ngx_http_webhook_module.so';
my $avail = '/usr/share/nginx/modules-available/mod-http-webhook.conf';
my $link = '/etc/nginx/modules-enabled/50-mod-http-webhook.conf';
ok(!-e $so && !-e $avail && !-l $link, 'nothing of the module is installed');
($rc, $out) = run($system_nginx, '-t');
is($rc, 0, 'nginx -t passes without it') or diag $out;

# ---------------------------------------------------------------- install
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

# the README it ships links to docs/: every page it names is there
my $doc = "/usr/share/doc/$pkg";
my @links = read_file("$doc/README.md") =~ /\]\((docs\/[^)#]+)/g;
ok(@links, "$doc/README.md links to docs/");
my @missing = grep { !-f "$doc/$_" } @links;
ok(!@missing, "every docs/ page the README links to is in $doc, as it is")
    or diag "missing: @missing";

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
