#!/usr/bin/perl
# The reference consumer as a Python package (docker/consumer/): installed
# with pip from a copy of the folder into a venv that sees Debian's
# python3-redis, with --no-index so that any download would fail the
# install; the console scripts webhook-consumer and webhook-reconcile are
# made; the installed package runs outside the checkout (also as
# `python3 -m webhook_consumer`); the checkout's webhook_consumer.py runs
# the same CLI; and the package's modules import each other without a
# cycle.
#
# Needs /usr/bin/python3 with redis-py and venv (Debian: python3-redis
# python3-venv); skipped without them.  CONSUMER_PYTHON selects another
# interpreter.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use WebhookTest;

my $PYTHON = $ENV{CONSUMER_PYTHON} || '/usr/bin/python3';
my $DIR = "$FindBin::Bin/../docker/consumer";

cannot_run("$PYTHON cannot import redis and venv (install python3-redis python3-venv)")
    unless system($PYTHON, '-c', 'import redis, venv, ensurepip') == 0;

my $tmp = tempdir('consumer-pkg-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
# pip builds in the source folder: a copy keeps the checkout clean
my ($rc, $out) = WebhookTest::run_cmd(['cp', '-r', "$DIR/setup.py", "$DIR/setup.cfg",
    "$DIR/webhook_consumer", "$tmp/src"], timeout => 30) if mkdir "$tmp/src";
is($rc, 0, 'the package folder copied') or diag($out);
ok(!-e "$DIR/pyproject.toml",
   'no pyproject.toml: pip 23.0 builds with the installed setuptools (no isolated download)');

local $ENV{PIP_CONFIG_FILE} = '/dev/null';
local $ENV{PIP_DISABLE_PIP_VERSION_CHECK} = '1';
local $ENV{PYTHONDONTWRITEBYTECODE} = '1';
delete local $ENV{PYTHONPATH};

($rc, $out) = WebhookTest::run_cmd([$PYTHON, '-m', 'venv', '--system-site-packages',
    "$tmp/venv"], timeout => 120);
is($rc, 0, 'a venv with the system site packages') or diag($out);
($rc, $out) = WebhookTest::run_cmd(["$tmp/venv/bin/pip", 'install', '--no-index',
    "$tmp/src"], timeout => 120);
is($rc, 0, 'pip install --no-index ./docker/consumer: installed offline') or diag($out);
like($out, qr/Successfully installed webhook-consumer-/, 'as webhook-consumer');

ok(-x "$tmp/venv/bin/webhook-consumer", 'the console script webhook-consumer');
like(read_file("$tmp/venv/bin/webhook-reconcile") // '', qr/webhook_consumer\.reconcile/,
     'and webhook-reconcile, of webhook_consumer.reconcile:main');

my $version = `$PYTHON -c 'import sys; sys.path.insert(0, "$DIR"); from webhook_consumer.shared import __version__; print(__version__)'`;
chomp $version;
like($version, qr/^\d+\.\d+\.\d+$/, "the package's version ($version)");
chdir $tmp or die "chdir $tmp: $!";
($rc, $out) = WebhookTest::run_cmd(["$tmp/venv/bin/webhook-consumer", '--version']);
is("$rc $out", "0 $version\n", 'webhook-consumer --version runs the installed package');
($rc, $out) = WebhookTest::run_cmd(["$tmp/venv/bin/python", '-c',
    'import webhook_consumer; print(webhook_consumer.__file__)']);
like($out, qr{^\Q$tmp\E/venv/lib/python[\d.]+/site-packages/webhook_consumer/__init__\.py$},
     'imported from the venv, not from the checkout') or diag($out);
($rc, $out) = WebhookTest::run_cmd(["$tmp/venv/bin/python", '-m', 'webhook_consumer', 'run',
    '--max-attempts', '0']);
is($rc, 1, 'python3 -m webhook_consumer runs the CLI');
like($out, qr/max attempts must be 1 or more/, 'which checks its settings');

($rc, $out) = WebhookTest::run_cmd([$PYTHON, "$DIR/webhook_consumer.py", '--version']);
is("$rc $out", "0 $version\n", 'the checkout\'s webhook_consumer.py runs the same CLI');

# the imports between the package's modules: a graph without a cycle
my $graph = <<'PY';
import ast, os, sys
pkg = sys.argv[1]
mods = {f[:-3] for f in os.listdir(pkg) if f.endswith(".py")}
edges = {}
for m in mods:
    tree = ast.parse(open(os.path.join(pkg, m + ".py")).read())
    deps = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
            elif node.level == 1:
                deps.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "webhook_consumer":
                deps.add(node.module.split(".")[1] if "." in node.module
                         else "__init__")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "webhook_consumer":
                    deps.add("__init__")
    edges[m] = deps & mods
done, path = set(), []
def visit(m):
    if m in path:
        sys.exit("cycle: " + " -> ".join(path[path.index(m):] + [m]))
    if m in done:
        return
    path.append(m)
    for d in sorted(edges[m]):
        visit(d)
    path.pop()
    done.add(m)
for m in sorted(mods):
    visit(m)
print("no cycle among", len(mods), "modules")
PY
($rc, $out) = WebhookTest::run_cmd([$PYTHON, '-c', $graph, "$DIR/webhook_consumer"]);
is($rc, 0, 'the package\'s modules import each other without a cycle') or diag($out);

done_testing();
