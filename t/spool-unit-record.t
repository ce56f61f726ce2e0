#!/usr/bin/perl
# The C unit tests of the spool's records and file names print TAP:
# run them as a part of the suite (make builds them first).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use WebhookTest qw(cannot_run);

my $bin = $ENV{WEBHOOK_UNIT_RECORD} || "$FindBin::Bin/../build/test_record";

cannot_run("$bin is not built (run make test)") unless -x $bin;

exec $bin or die "cannot run $bin: $!";
