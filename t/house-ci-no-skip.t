#!/usr/bin/perl
# CI never passes by skipping: a stage of scripts/run-tests, or a test of
# t/, that lacks what it needs (the shared folder, a tool, a built
# binary) is skipped outside CI, saying why, and fails with CI=true,
# saying why.  Each case hides one prerequisite (an empty folder in place
# of ../shared, a binary that does not exist) and runs the script or test
# both ways; nothing is built or installed, and every path written is in
# this test's temporary directory.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd qw(abs_path);
use WebhookTest;

my $repo = abs_path("$FindBin::Bin/..");
my $tmp = WebhookTest::make_dir('ci');
mkdir "$tmp/shared";                      # a shared folder with nothing in it
mkdir "$tmp/shared/nginx";

# run(CI, ENV, COMMAND...): (exit code, output) with CI=true or without CI
sub run {
    my ($ci, $env, @cmd) = @_;
    local %ENV = (%ENV, %$env);
    delete $ENV{CI};
    $ENV{CI} = 'true' if $ci;
    return WebhookTest::run_cmd(\@cmd, timeout => 120);
}

# both(WHAT, ENV, COMMAND...): skipped without CI, failed with CI=true
sub both {
    my ($what, $env, @cmd) = @_;
    my ($rc, $out) = run(0, $env, @cmd);
    is($rc, 0, "$what: skipped outside CI") or diag $out;
    like($out, qr/skip/i, 'saying so') or diag $out;
    ($rc, $out) = run(1, $env, @cmd);
    isnt($rc, 0, "$what: fails with CI=true");
    like($out, qr/CI=true, and this (stage|test|part) cannot run: \S/,
         'saying why') or diag $out;
    return $out;
}

# ---------------------------------------------------------------- stages
# (as root with podman, container-test gets as far as the tarball)
my $out = both('scripts/container-test without ../shared',
    { WEBHOOK_SHARED => "$tmp/shared" }, "$repo/scripts/container-test");

both('scripts/build-matrix without nginx sources',
    { NGINX_TARBALLS => "$tmp/shared/nginx", MATRIX_DIR => "$tmp/matrix" },
    "$repo/scripts/build-matrix");

both('scripts/matrix-tests after a matrix skipped for want of sources',
    { MATRIX_DIR => "$tmp/matrix" }, "$repo/scripts/matrix-tests");

# run-tests fails the run on such a stage, and still prints its times
my ($rc, $res) = run(1, { NGINX_TARBALLS => "$tmp/shared/nginx",
                          MATRIX_DIR => "$tmp/matrix2" },
                     "$repo/scripts/run-tests", 'build-matrix');
isnt($rc, 0, 'scripts/run-tests build-matrix with CI=true fails');
like($res, qr/^\s+build-matrix\s+\d+:\d\d\s+FAILED/m,
     'its table of stage times names the failed stage') or diag $res;

($rc, $res) = run(1, { CONTAINER_TEST => 0 }, "$repo/scripts/run-tests", 'host-after');
isnt($rc, 0, 'CONTAINER_TEST=0 with CI=true is refused');
like($res, qr/cannot be left out in CI/, 'saying why') or diag $res;

# ---------------------------------------------------------------- tests
both('a test whose binary is not built (t/core-unit-event.t)',
    { WEBHOOK_UNIT => "$tmp/not-built" }, $^X, "$FindBin::Bin/core-unit-event.t");

both('a test without its interpreter (t/consumer-basic.t)',
    { CONSUMER_PYTHON => "$tmp/no-python" }, $^X, "-I$FindBin::Bin/lib",
    "$FindBin::Bin/consumer-basic.t");

# a part of a test (SKIP blocks)
write_file("$tmp/part.t", <<'T');
use Test::More;
use WebhookTest;
SKIP: { skip_or_fail('no such tool', 1); fail('not reached'); }
pass('after the block');
done_testing();
T
both('a part of a test without its tool', {}, $^X, "-I$FindBin::Bin/lib",
     "$tmp/part.t");

write_file("$tmp/subtest.t", <<'T');
use Test::More;
use WebhookTest;
subtest 'a part' => sub {
    return if cannot_run_subtest('no such tool');
    fail('not reached');
};
pass('after the subtest');
done_testing();
T
both('a subtest without its tool', {}, $^X, "-I$FindBin::Bin/lib",
     "$tmp/subtest.t");

# and every test of t/ uses these for what a machine may lack (a tool, a
# Python module, root), never Test::More's own skips, which pass in CI
my @bare;
for my $t (sort glob "$FindBin::Bin/*.t") {
    next if $t =~ m{/house-ci-no-skip\.t$};
    my $text = read_file($t);
    while ($text =~ /(?:plan\s+skip_all\s*=>|\bskip\s*\(?\s*['"])([^;]*);/g) {
        my $stmt = $1;
        push @bare, ($t =~ s{.*/}{}r) . ": $stmt"
            if $stmt =~ /not installed|cannot import|\(install |needs? (?:root|strace)|\bno (?:curl|promtool|openssl|podman)\b/i;
    }
}
ok(!@bare, 'no test of t/ skips for want of a tool, a module or root but '
   . 'through cannot_run, cannot_run_subtest or skip_or_fail')
    or diag join "\n", @bare;

# what does not apply to the nginx under test is skipped in CI too
write_file("$tmp/wrapper", "#!/bin/sh\nexec /usr/sbin/nginx \"\$@\"\n", 0755);
($rc, $res) = run(1, { NGINX_BIN => "$tmp/wrapper" }, $^X,
                  "-I$FindBin::Bin/lib", "$FindBin::Bin/package-deb.t");
is($rc, 0, 'the package test under a wrapper nginx: skipped with CI=true too')
    or diag $res;
like($res, qr/^1\.\.0 # SKIP .*plain suite only/m, 'as not applying') or diag $res;

done_testing();
