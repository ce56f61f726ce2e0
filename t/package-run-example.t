#!/usr/bin/perl
# scripts/run-example as a newcomer runs it, in a throwaway root with a
# network namespace of its own (its nginx on 127.0.0.1:8080 and Redis on
# 6379 meet nothing of the machine's; t/lib/throwaway-root): it ends with
# a working example, and the curl it prints queues an event; run again it
# still does; after what the package test once did to the machine (the
# module uninstalled under the example's configuration: nginx -t failed)
# it repairs the example; --remove leaves /etc/nginx, nginx's modules
# and the package state as they were before the first run.
# Root only, in the plain suite only (the example loads the module that
# make builds in build/, into /usr/sbin/nginx).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use WebhookTest;

my $repo = abs_path("$FindBin::Bin/..");
my $throwaway = "$FindBin::Bin/lib/throwaway-root";
my $inside = $ENV{WEBHOOK_EXAMPLE_INSIDE};

plan skip_all => "NGINX_BIN=$ENV{NGINX_BIN}: the example runs Debian's "
    . "nginx, this test runs in the plain suite only"
    if $ENV{NGINX_BIN} && abs_path($ENV{NGINX_BIN}) ne '/usr/sbin/nginx';
plan skip_all => "WEBHOOK_MODULE=$ENV{WEBHOOK_MODULE}: the example installs "
    . "the module of build/, this test runs in the plain suite only"
    if $ENV{WEBHOOK_MODULE}
       && abs_path($ENV{WEBHOOK_MODULE}) ne "$repo/build/nginx/objs/ngx_http_webhook_module.so";
cannot_run('not root: the example installs into /etc/nginx') if $> != 0;

sub run { WebhookTest::run_cmd([@_], timeout => 300) }

if (!$inside) {
    my ($rc, $why) = run($throwaway, '--check');
    cannot_run("no throwaway root here: $why") if $rc != 0;
    # the example runs make install: the module must be built (the root
    # is read-only in there)
    ($rc, $why) = run('make', '-C', $repo, '-q', 'build/nginx/objs/ngx_http_webhook_module.so');
    cannot_run('the module in build/ is not up to date: run make first') if $rc != 0;
    $ENV{WEBHOOK_EXAMPLE_INSIDE} = 1;
    exec($throwaway, '--net', '--bind', $repo, '--', $^X, "$FindBin::Bin/package-run-example.t")
        or BAIL_OUT("exec $throwaway: $!");
}

# ---------------------------------------------------------------- helpers
# the machine as Debian installed it, whether or not the example, the
# package or a make install is on the machine this root copies
clear_throwaway_root();
my $snapshot = '/tmp/before.snapshot';
my ($rc, $out) = run("$repo/scripts/host-snapshot", 'save', $snapshot);
is($rc, 0, 'the throwaway root\'s /etc/nginx and modules saved') or diag $out;

# example(): runs scripts/run-example; returns its output
sub example {
    my ($what, @args) = @_;
    my ($rc, $out) = run("$repo/scripts/run-example", @args);
    is($rc, 0, $what) or diag $out;
    return $out;
}

# the curl the example printed, run as printed (by sh)
sub printed_curl {
    my ($out) = @_;
    my ($cmd) = $out =~ /^(  curl -sS -X POST .*?-d '[^']*')$/ms;
    return (1, "no curl in the output:\n$out") unless $cmd;
    $cmd =~ s/\\\n//g;
    return run('sh', '-c', $cmd);
}

sub system_nginx_t { run('/usr/sbin/nginx', '-t') }

# ---------------------------------------------------------------- first run
$out = example('scripts/run-example');
like($out, qr/takes an event|curl -sS -X POST/, 'it prints a curl');
my ($crc, $answer) = printed_curl($out);
like($answer, qr/"status":"queued"/, 'the printed curl queues an event')
    or diag $answer;
($rc, my $len) = run('redis-cli', '-h', '127.0.0.1', 'LLEN', '{webhook}:queue:high');
is($len + 0, 1, 'into Redis') or diag $len;
# (the example's Redis: Debian's service in this root, its data cleared)

# ---------------------------------------------------------------- again
$out = example('run again');
($crc, $answer) = printed_curl($out);
like($answer, qr/"status":"queued"/, 'its curl queues a new event') or diag $answer;
($rc, $out) = system_nginx_t();
is($rc, 0, 'nginx -t passes') or diag $out;

# ---------------------------------------------------------------- repair
# what t/35-deb.t (now t/package-deb.t) once did on the machine: the module gone, its configuration
# left, nginx -t failing
($rc, $out) = run('make', '-C', $repo, '--no-print-directory', 'uninstall');
($rc, $out) = system_nginx_t();
isnt($rc, 0, 'with the module uninstalled under the example, nginx -t fails');
$out = example('run again after that');
($rc, $out) = system_nginx_t();
is($rc, 0, 'nginx -t passes again') or diag $out;
($crc, $answer) = printed_curl($out = example('and once more'));
like($answer, qr/"status":"queued"/, 'and the example queues events') or diag $answer;

# ---------------------------------------------------------------- remove
$out = example('scripts/run-example --remove', '--remove');
($rc, $out) = system_nginx_t();
is($rc, 0, 'nginx -t passes without the example') or diag $out;
run('/usr/sbin/nginx', '-s', 'quit');
wait_until(sub { !-s '/run/nginx.pid' }, timeout => 10);
($rc, $out) = run("$repo/scripts/host-snapshot", 'compare', $snapshot);
is($rc, 0, '/etc/nginx, the modules and the package state are as before')
    or diag $out;

done_testing();
