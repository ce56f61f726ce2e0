package WebhookSentinel;

# Redis sentinels for the Sentinel tests (t/redis-sentinel*.t), on top of
# WebhookTest: each a `redis-server --sentinel` on a loopback port, in its
# own directory, killed when the test ends.  Perl core modules only.
#
#   start_sentinel(primary => PORT, name => 'webhooks', quorum => 2,
#                  conf => [more sentinel.conf lines], password => P,
#                  tls => {cert, key, ca})
#       returns once the sentinel answers PING; tls: on its TLS port only
#       (and to Redis over TLS: tls-replication)
#   sentinel_cli($s, @args)   redis-cli against it, the output trimmed

use strict;
use warnings;

use Exporter 'import';
use POSIX ();
use WebhookTest;

our @EXPORT = qw(start_sentinel sentinel_cli);

my @SENTINELS;
my $OWNER = $$;

END {
    local $?;
    if ($$ == $OWNER) {
        for my $s (@SENTINELS) { kill 'KILL', $s->{pid}; waitpid($s->{pid}, 0) }
    }
}

sub start_sentinel {
    my (%o) = @_;
    my $port = $o{port} // WebhookTest::free_port();
    my $dir = WebhookTest::make_dir('sentinel');
    my $name = $o{name} // 'webhooks';
    my $t = $o{tls};
    WebhookTest::write_file("$dir/sentinel.conf", join '', map { "$_\n" }
        ($t ? ('port 0', "tls-port $port", "tls-cert-file $t->{cert}", "tls-key-file $t->{key}",
               "tls-ca-cert-file $t->{ca}", 'tls-auth-clients no', 'tls-replication yes')
            : "port $port"),
        'bind 127.0.0.1', 'daemonize no', "dir $dir", "logfile $dir/sentinel.log",
        "sentinel monitor $name 127.0.0.1 $o{primary} " . ($o{quorum} // 2),
        ($o{password} ? "requirepass $o{password}" : ()),
        @{ $o{conf} || [] });
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stdout";
        open STDERR, '>&', \*STDOUT;
        exec('redis-server', "$dir/sentinel.conf", '--sentinel') or POSIX::_exit(127);
    }
    my $s = { port => $port, pid => $pid, dir => $dir, tls => $t, password => $o{password} };
    push @SENTINELS, $s;
    WebhookTest::wait_until(sub { (sentinel_cli($s, 'PING') // '') eq 'PONG' }, timeout => 10)
        or die "sentinel on $port did not start\n";
    return $s;
}

sub sentinel_cli {
    my ($s, @args) = @_;
    my @cli = ('redis-cli', '-p', $s->{port},
        ($s->{tls} ? ('--tls', '--cacert', $s->{tls}{ca}) : ()),
        ($s->{password} ? ('-a', $s->{password}, '--no-auth-warning') : ()));
    my ($rc, $out) = WebhookTest::run_cmd([@cli, @args], timeout => 10);
    return undef if $rc != 0;
    $out =~ s/^\s+|\s+\z//g;
    return $out;
}

1;
