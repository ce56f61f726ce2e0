#!/usr/bin/perl
# The Docker image's build step, docker/build-module, on this host: it
# builds the module from an nginx source tarball (here Debian's nginx
# source, packed like nginx.org's nginx-VERSION.tar.gz), checks it
# against the host's nginx, and the .so it makes queues a real push.  It
# refuses a tarball with another checksum or of another version.
# Builds its own module, so it runs once: skipped under the ASan and
# valgrind runs (NGINX_BIN is then a wrapper script).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use WebhookTest;

my $repo = abs_path("$FindBin::Bin/..");
my $nginx = $ENV{NGINX_BIN} || '/usr/sbin/nginx';
my $nginx_src = $ENV{NGINX_SRC} || '/usr/share/nginx/src';

plan skip_all => "NGINX_BIN=$nginx is a wrapper: this test runs in the plain suite only"
    unless (read_file($nginx) // '') =~ /\A\x7fELF/;
cannot_run("no nginx source at $nginx_src") unless -f "$nginx_src/src/core/nginx.h";

# ---------------------------------------------------------------- the files
# what the Dockerfile copies exists, and the lines it rewrites in the
# quick-start configuration are there to rewrite
my $dockerfile = read_file("$repo/docker/Dockerfile");
(my $joined = $dockerfile) =~ s/\\\n/ /g;
my @copies = map { [split ' '] } $joined =~ /^COPY\s+(?!--from)(.*)$/mg;
ok(@copies >= 4, scalar(@copies) . ' COPY lines from the repository');
for my $c (@copies) {
    ok(-e "$repo/$_", "the Dockerfile's COPY source $_ exists") for @$c[0 .. $#$c - 1];
}
# and the consumer's: the package it installs
my $consumer_df = read_file("$repo/docker/consumer/Dockerfile");
($joined = $consumer_df) =~ s/\\\n/ /g;
@copies = map { [split ' '] } $joined =~ /^COPY\s+(.*)$/mg;
ok(@copies >= 2, scalar(@copies) . ' COPY lines in the consumer\'s Dockerfile');
for my $c (@copies) {
    ok(-e "$repo/docker/consumer/$_", "its COPY source $_ exists") for @$c[0 .. $#$c - 1];
}
like($consumer_df, qr{pip install --no-index --no-build-isolation\b.*/src}s,
     'it installs the package with pip, nothing downloaded');
my $quick = read_file("$repo/conf.d/webhook.conf");
for my $line ('listen 127.0.0.1:8080;', 'webhook_redis 127.0.0.1:6379;', '/var/log/nginx/webhook.log') {
    (my $sed = $line) =~ s/\./\\./g;
    ok(index($quick, $line) >= 0
       && (index($dockerfile, $sed) >= 0 || index($dockerfile, $line) >= 0),
       "the Dockerfile rewrites '$line' of conf.d/webhook.conf");
}
like($dockerfile, qr/^ARG NGINX_SHA256=([0-9a-f]{64})?$/m,
     'the build stage takes the source tarball\'s SHA-256 (NGINX_SHA256)');
my ($pinned) = $dockerfile =~ /^ARG NGINX_VERSION=(\S+)$/m;
# nginx.org's tarball of the default version is checked, not trusted
like($dockerfile,
     qr{^\# SHA-256 of https://nginx\.org/download/nginx-\Q$pinned\E\.tar\.gz\nARG NGINX_SHA256=[0-9a-f]{64}$}m,
     "the default nginx-$pinned.tar.gz has its SHA-256 pinned");
my ($base) = $dockerfile =~ /^ARG BASE=(\S+)$/m;
(my $line = $pinned // '') =~ s/\.\d+\z//;
is($base, "nginx:$line",
   "the base is the official image of the pinned nginx's line ($pinned)");
like($dockerfile, qr/^FROM \$\{BASE\} AS build$/m,
     'the build stage is that image, whose nginx the module is checked against');
like($dockerfile, qr/^FROM \$\{BASE\}$/m, 'and so is the runtime stage');
like($dockerfile, qr/install .*libhiredis1\.1\.0/,
     'with hiredis 1.2 (libhiredis1.1.0), the library of the image\'s Debian');

SKIP: {
    my $json = `/usr/bin/python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' $repo/docker/compose.yaml 2>&1`;
    skip_or_fail("no YAML parser (python3-yaml): $json", 8) if $json =~ /ModuleNotFoundError/;
    my $c = json_decode($json);
    ok(ref $c eq 'HASH', 'docker/compose.yaml is YAML') or diag $json;
    my $s = $c->{services} || {};
    is_deeply([sort keys %$s], [qw(consumer nginx reconcile redis)],
        'with nginx, Redis, the consumer and the reconciler');
    my ($frag) = grep { m{^\.\./conf\.d/redis-webhook\.conf:} } @{ $s->{redis}{volumes} || [] };
    ok($frag && grep({ $_ eq '/usr/local/etc/redis/redis-webhook.conf' } @{ $s->{redis}{command} || [] }),
       'Redis runs with conf.d/redis-webhook.conf (append-only file)');
    ok(-f "$repo/docker/$s->{nginx}{build}{context}/$s->{nginx}{build}{dockerfile}",
       'nginx is built from docker/Dockerfile');
    ok(-f "$repo/docker/$s->{consumer}{build}/Dockerfile",
       "the consumer is built from docker/$s->{consumer}{build}/Dockerfile");
    is(join(' ', @{ $s->{consumer}{command} || [] }), 'webhook-consumer run',
       'and runs webhook-consumer run (the installed package\'s command)');
    is_deeply([$s->{reconcile}{build}, @{ $s->{reconcile}{command} || [] }],
        [$s->{consumer}{build}, 'webhook-reconcile'], 'the reconciler runs webhook-reconcile of the same image');
    is_deeply($s->{reconcile}{profiles}, ['reconcile'], 'only with --profile reconcile (it needs an Odoo)');
}

# ---------------------------------------------------------------- the build
my ($version) = read_file("$nginx_src/src/core/nginx.h") =~ /NGINX_VERSION\s+"([\d.]+)"/
    or BAIL_OUT("no NGINX_VERSION in $nginx_src");

my $tmp = tempdir('webhook-recipe-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
chmod 0755, $tmp;

# nginx-VERSION.tar.gz with one top directory nginx-VERSION/, as nginx.org's
(my $parent = $nginx_src) =~ s{/([^/]+)/?\z}{};
my $top = $1;
my $tarball = "$tmp/nginx-$version.tar.gz";
my ($rc, $out) = WebhookTest::run_cmd(['tar', '-C', $parent,
    "--transform=s,^$top,nginx-$version,", '-czf', $tarball, $top], timeout => 120);
is($rc, 0, "nginx ${version}'s source packed as nginx-$version.tar.gz") or diag $out;
my ($sha) = `sha256sum $tarball` =~ /^([0-9a-f]{64})/;

# build(%env, @args): runs docker/build-module; returns (exit code, output)
sub build {
    my ($env, @args) = @_;
    local @ENV{ keys %$env } = values %$env;
    return WebhookTest::run_cmd(["$repo/docker/build-module", @args], timeout => 600);
}

($rc, $out) = build({ NGINX_SHA256 => '0' x 64, NGINX_BIN => '' },
                    $tarball, $version, "$tmp/bad-sum");
isnt($rc, 0, 'a tarball with another SHA-256 is refused');
like($out, qr/does not have SHA-256 0{64}/, 'and says so') or diag $out;

($rc, $out) = build({ NGINX_SHA256 => '', NGINX_BIN => '' }, $tarball, '1.99.0', "$tmp/bad-ver");
isnt($rc, 0, 'a tarball of another version is refused');
like($out, qr/is nginx \Q$version\E, not 1\.99\.0/, 'and says so') or diag $out;

my $t0 = time;
($rc, $out) = build({ NGINX_SHA256 => $sha, NGINX_BIN => $nginx }, $tarball, $version, "$tmp/out");
is($rc, 0, "docker/build-module builds against nginx $version and checks it (" . (time - $t0) . ' s)')
    or diag $out;
my $so = "$tmp/out/ngx_http_webhook_module.so";
ok(-f $so, 'the module is OUTDIR/ngx_http_webhook_module.so');
like($out, qr/fits \Q$nginx\E \(nginx \Q$version\E, --with-compat/,
     'the version, --with-compat and signature check passed');
like($out, qr/build-module: \Q$nginx\E loads /, 'and nginx -t loaded it');

# the recipe's .so, for real
SKIP: {
    skip 'no module was built', 2 unless -f $so;
    my $redis = start_redis();
    my $ng = start_nginx(module => $so,
        http => "webhook_redis " . $redis->addr . ";\nserver {\n"
              . "    listen 127.0.0.1:%%PORT%%;\n" . receive_location() . "}\n",
        files => { 'webhook.tokens' => "recipe-token\n" });
    my $res = $ng->request('POST', '/api/v1/webhooks/receive',
        { 'Content-Type' => 'application/json', Authorization => 'Bearer recipe-token' },
        sample_text('odoo-event.json'));
    is_queued($res, 'high', 'the module built by the recipe queues an Odoo event');
    is($redis->llen('{webhook}:queue:high'), 1, 'into Redis');
}

done_testing();
