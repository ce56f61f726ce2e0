package WebhookPeer;

# A hostile (or impersonated) Redis for the tests: a forked process on a
# loopback port that reads the module's commands (RESP arrays) and answers
# each with the bytes a callback returns, so that a test can send what no
# real Redis sends (a huge array header, a bulk string that never ends, a
# newline inside an error).  It is a peer that breaks the protocol's
# promises, not a stand-in for Redis: commands it has no answer for get
# "+OK".  Perl core modules only.
#
#   my $peer = WebhookPeer->new(answer => sub {
#       my ($args, $n) = @_;        # the command's arguments; the n-th
#       return "+OK\r\n";           # command of this connection (from 1)
#   });
#   $peer->port; $peer->addr; $peer->commands (every command seen, one a
#   line, the arguments joined by spaces); $peer->stop
#
# answer may return undef (no answer), a string (written at once), or a
# code reference, called with the socket until it returns false (to
# stream bytes until the module closes the connection).

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use POSIX ();
use WebhookTest;

sub new {
    my ($class, %o) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $o{port} // 0, Listen => 16, Proto => 'tcp',
        ReuseAddr => 1) or die "peer listen: $!";
    my $self = bless {
        port  => $listen->sockport,
        dir   => WebhookTest::make_dir('peer'),
        owner => $$,
    }, $class;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        $SIG{PIPE} = 'IGNORE';
        _serve($self, $listen, $o{answer});
        POSIX::_exit(0);
    }
    close $listen;
    $self->{pid} = $pid;
    push @WebhookTest::LIVE, $self;
    return $self;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }
sub commands { WebhookTest::read_file("$_[0]{dir}/commands") // '' }

sub _serve {
    my ($self, $listen, $answer) = @_;
    my $sel = IO::Select->new($listen);
    my %conn;
    while (1) {
        for my $s ($sel->can_read(1)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                $sel->add($c);
                $conn{fileno $c} = { buf => '', n => 0 };
                next;
            }
            my $st = $conn{fileno $s};
            my $got = sysread($s, my $data, 65536);
            if (!$got) {
                $sel->remove($s);
                delete $conn{fileno $s};
                close $s;
                next;
            }
            $st->{buf} .= $data;
            while (defined(my $args = _command(\$st->{buf}))) {
                $st->{n}++;
                WebhookTest::append_file("$self->{dir}/commands",
                    join(' ', map { length > 80 ? substr($_, 0, 80) . '...' : $_ } @$args) . "\n");
                my $out = $answer->($args, $st->{n});
                if (ref $out eq 'CODE') {
                    1 while $out->($s);
                } elsif (defined $out) {
                    _write($s, $out);
                }
            }
        }
    }
}

sub _write {
    my ($s, $out) = @_;
    my $off = 0;
    while ($off < length $out) {
        my $n = syswrite($s, $out, length($out) - $off, $off);
        return 0 unless $n;
        $off += $n;
    }
    return 1;
}

# one command (*N, then N bulk strings) taken from the buffer, or undef
sub _command {
    my ($buf) = @_;
    return undef unless $$buf =~ /\A\*(\d+)\r\n/;
    my ($n, $p) = ($1, length $&);
    my @args;
    for (1 .. $n) {
        return undef unless substr($$buf, $p) =~ /\A\$(\d+)\r\n/;
        my ($len, $h) = ($1, length $&);
        return undef if length($$buf) < $p + $h + $len + 2;
        push @args, substr($$buf, $p + $h, $len);
        $p += $h + $len + 2;
    }
    substr($$buf, 0, $p) = '';
    return \@args;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub _cleanup { my ($self) = @_; $self->stop if $self->{owner} == $$ }

sub DESTROY { local $?; $_[0]->_cleanup }

1;
