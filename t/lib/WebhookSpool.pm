package WebhookSpool;

# Spool files written by the tests themselves, byte for byte as the module
# writes them (src/spool/ngx_http_webhook_record.h): segments as a crash, an old
# nginx or a damaged disk leaves them, for the drainer to find at start.
#
#   record(seq => N, id => ID, envelope => TEXT, queue => Q, priority => P)
#       one record (list key <Q>:queue:<P>, seen key <Q>:seen:env:<ID>)
#   segment_name($dir, $queue, $first_seq, $writer)
#       <dir>/<escaped queue>.<016x seq>.<writer>.seg
#   envelope($event_id)   a small envelope, as consumers read it
#   first_seq()           a sequence number above the module's clock-made
#                         ones, so that events spooled later come after

use strict;
use warnings;

use Exporter 'import';
use Compress::Zlib ();
use Time::HiRes ();

our @EXPORT = qw(spool_record spool_segment_name spool_envelope spool_first_seq);

sub spool_record {
    my (%o) = @_;
    my $queue = $o{queue} // '{webhook}';
    my $prio = $o{priority} // 'medium';
    my @str = ("$queue:queue:$prio", "$queue:seen:env:$o{id}", $o{id}, $o{envelope});
    my $strings = join '', map { pack('V', length $_) . $_ } @str;
    # length, flags, seq, spooled at, dedupe ttl, depth limit
    my $body = pack('VVQ<Q<VV', 40 + length $strings, 0, $o{seq},
        int(Time::HiRes::time() * 1000), 600, 0) . $strings;
    return 'WHS1' . pack('V', Compress::Zlib::crc32($body)) . $body;
}

sub spool_segment_name {
    my ($dir, $queue, $seq, $writer) = @_;
    my $q = join '', map { /[A-Za-z0-9_\-{}:]/ ? $_ : sprintf('%%%02X', ord) } split //, $queue;
    return sprintf('%s/%s.%016x.%s.seg', $dir, $q, $seq, $writer // 'test');
}

sub spool_envelope {
    my ($event_id, $pad) = @_;
    return WebhookTest::json_encode({ id => "env-$event_id", event_id => $event_id,
        model => 'res.partner', event => 'write',
        ($pad ? (data => { note => 'x' x $pad }) : ()) });
}

# the module numbers from the clock in microseconds (and from the segments
# on disk): an hour back leaves room for every later event
sub spool_first_seq { int(Time::HiRes::time() * 1e6) - 3600 * 1e6 }

1;
