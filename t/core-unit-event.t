#!/usr/bin/perl
# The C unit tests of the event parser and envelope builder print TAP:
# run them as a part of the suite (make builds them first).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use WebhookTest qw(cannot_run);

my $bin = $ENV{WEBHOOK_UNIT} || "$FindBin::Bin/../build/test_event";

cannot_run("$bin is not built (run make test)") unless -x $bin;

exec $bin or die "cannot run $bin: $!";
