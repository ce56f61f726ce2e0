#!/usr/bin/perl
# The C unit tests of the escaping of the error log print TAP:
# run them as a part of the suite (make builds them first).

use strict;
use warnings;
use FindBin;

my $bin = $ENV{WEBHOOK_UNIT_TEXTAPE} || "$FindBin::Bin/../build/test_text";

if (!-x $bin) {
    print "1..0 # SKIP $bin is not built (run make test)\n";
    exit 0;
}

exec $bin or die "cannot run $bin: $!";
