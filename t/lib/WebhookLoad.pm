package WebhookLoad;

# Load and fault helpers for the fault tests (t/*-fault-*.t), on top of
# WebhookTest.  Perl core modules only.
#
#   load_scale()          1, or less under valgrind (WEBHOOK_LOAD_SCALE wins)
#   slow_nginx()          true when nginx runs under valgrind
#   run_clients(...)      forked clients, their result records collected
#   WebhookLoad::Client   a keep-alive HTTP client (optionally retrying a
#                         request the server closed before any byte)
#   envelopes($redis, $queue)   every envelope of the three lists, decoded
#   redis_hangs($redis)   true when Redis does not answer a PING in 0.3 s
#   fault_nginx(...)      nginx with a receive location and chaos.log
#   take_log($ng)         the chaos.log lines since the last call
#   serves_again(...)     one test: 200s again, on every worker
#
# A result record is a hash: id (event_id), status, elapsed, retry_after,
# answer (envelope id of the answer), answer_status ("queued",
# "duplicate"), error, retried; to_line/from_line carry it from a child
# to the parent.

use strict;
use warnings;

use Exporter 'import';
use POSIX ();
use Test::More ();
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use WebhookTest;

our @EXPORT = qw(load_scale slow_nginx run_clients envelopes
    to_line from_line summarize fault_nginx take_log serves_again redis_hangs);

my @FIELDS = qw(id status elapsed retry_after answer answer_status retried error);

# nginx under valgrind (scripts/valgrind-tests sets NGINX_BIN to a wrapper
# script that execs valgrind) runs 20 to 50 times slower: the load tests
# then send a tenth of their events and allow more time.
sub slow_nginx {
    my $bin = $ENV{NGINX_BIN} // '';
    return 0 unless length $bin && -f $bin && -s $bin < 65536;
    my $text = WebhookTest::read_file($bin) // '';
    return $text =~ /\bvalgrind\b/ ? 1 : 0;
}

sub load_scale {
    return $ENV{WEBHOOK_LOAD_SCALE} + 0 if defined $ENV{WEBHOOK_LOAD_SCALE};
    return slow_nginx() ? 0.1 : 1;
}

sub to_line {
    my ($r) = @_;
    return join "\t", map { my $v = $r->{$_} // ''; $v =~ s/[\t\n]/ /g; $v } @FIELDS;
}

sub from_line {
    my ($line) = @_;
    my @v = split /\t/, $line, -1;
    my %r;
    @r{@FIELDS} = @v;
    $r{$_} = undef for grep { !defined $r{$_} || $r{$_} eq '' } @FIELDS;
    $r{status} //= 0;
    return \%r;
}

# run_clients(n => N, dir => DIR, work => sub { my ($c) = @_; return records },
#             while_running => sub { ... }, timeout => seconds)
# Forks N clients; each returns a list of result records.  Returns
# (\@records, \@hung_or_dead_clients).
sub run_clients {
    my (%o) = @_;
    my $dir = $o{dir} or die "run_clients: dir\n";
    mkdir $dir;
    unlink glob "$dir/*.res";
    my %pids;
    for my $c (1 .. $o{n}) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            my @recs = eval { $o{work}->($c) };
            my $err = $@;
            my $text = join '', map { to_line($_) . "\n" } @recs;
            $text .= "DIED\t$err\n" if $err;
            WebhookTest::write_file("$dir/$c.res", $text);
            POSIX::_exit(0);
        }
        $pids{$pid} = $c;
    }
    $o{while_running}->() if $o{while_running};
    my $deadline = time + ($o{timeout} // 120);
    my @bad;
    for my $pid (sort keys %pids) {
        my $left = $deadline - time;
        unless (WebhookTest::wait_pid($pid, $left > 0 ? $left : 0.1)) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            push @bad, "client $pids{$pid} hung";
        }
    }
    my @recs;
    for my $c (1 .. $o{n}) {
        my $text = WebhookTest::read_file("$dir/$c.res");
        if (!defined $text) {
            push @bad, "client $c wrote no results";
            next;
        }
        for my $l (split /\n/, $text) {
            if ($l =~ /^DIED\t(.*)/) {
                push @bad, "client $c died: $1";
                next;
            }
            push @recs, from_line($l);
        }
    }
    return (\@recs, \@bad);
}

# summarize(\@records): counts by outcome and the largest wait
sub summarize {
    my ($recs) = @_;
    my %s = (sent => scalar @$recs, ok => 0, unavailable => 0, conn_error => 0,
        other => 0, no_retry_after => 0, max => 0, retried => 0);
    for my $r (@$recs) {
        $s{max} = $r->{elapsed} if ($r->{elapsed} // 0) > $s{max};
        $s{retried}++ if $r->{retried};
        if ($r->{status} == 200) {
            $s{ok}++;
        } elsif ($r->{status} == 503) {
            $s{unavailable}++;
            $s{no_retry_after}++ unless ($r->{retry_after} // '') =~ /^\d+\z/;
        } elsif ($r->{status} == 0) {
            $s{conn_error}++;
        } else {
            $s{other}++;
        }
    }
    return \%s;
}

# envelopes($redis, $queue): the decoded envelopes of the three lists
sub envelopes {
    my ($redis, $queue) = @_;
    $queue //= '{webhook}';
    my @e;
    for my $p (qw(high medium low)) {
        push @e, map { WebhookTest::json_decode($_) // { raw => $_ } }
            $redis->lrange("$queue:queue:$p");
    }
    return @e;
}

# redis_hangs($redis): true when Redis takes the connection but does not
# answer a PING within 0.3 s (DEBUG SLEEP, CLIENT PAUSE, SIGSTOP)
sub redis_hangs {
    my ($redis) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port,
        Proto => 'tcp', Timeout => 1) or return 0;
    syswrite($s, "PING\r\n");
    my $answered = IO::Select->new($s)->can_read(0.3);
    close $s;
    return $answered ? 0 : 1;
}

# fault_nginx(redis => $redis, token => T, timeout => '2s', priority =>
#             'medium', http => TEXT, server => TEXT, files => {...},
#             workers => 2): nginx with the receive location, what `server`
#             adds to the server block, and an access log chaos.log of
#             "$webhook_event_id $status" lines
sub fault_nginx {
    my (%o) = @_;
    my $http = 'webhook_redis ' . $o{redis}->addr . ";\n"
        . 'webhook_redis_timeout ' . ($o{timeout} // '2s') . ";\n"
        . ($o{http} // '')
        . "    log_format chaos '\$webhook_event_id \$status';\n"
        . "    access_log %%PREFIX%%/chaos.log chaos;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . "        server_name localhost;\n"
        . WebhookTest::receive_location(default_priority => $o{priority} // 'medium')
        . ($o{server} // '')
        . "    }\n";
    return WebhookTest::start_nginx(workers => $o{workers} // 2, http => $http,
        ($o{error_level} ? (error_level => $o{error_level}) : ()),
        files => { 'webhook.tokens' => "$o{token}\n", %{ $o{files} || {} } });
}

# take_log($ng): the chaos.log lines written since the last call, as
# [event_id, status] pairs.  The file is read on from where the last call
# stopped, whole lines only; it is never emptied, as a line nginx wrote
# between the read and the truncation would be lost.  nginx writes a line
# after its answer has left: a caller that needs the line of an answer it
# has received waits for it (calls again).
sub take_log {
    my ($ng) = @_;
    my $text = $ng->access_log('chaos.log');
    my $from = $ng->{chaos_log_read} // 0;
    $from = 0 if $from > length $text;
    my $end = rindex($text, "\n") + 1;
    return () if $end <= $from;
    $ng->{chaos_log_read} = $end;
    return map { [split / /] } split /\n/, substr($text, $from, $end - $from);
}

# serves_again($post, $name): calls $post->() (a new event each time) until
# 6 answers in a row are 200, so that every worker serves; up to 20 s
sub serves_again {
    my ($post, $name) = @_;
    my ($row, $t0) = (0, time);
    while ($row < 6 && time - $t0 < 20) {
        if ($post->()->{status} == 200) { $row++ } else { $row = 0; sleep 0.2 }
    }
    return Test::More::ok($row >= 6,
        sprintf('%s: 200 again (6 in a row) after %.2fs, without a reload', $name, time - $t0));
}

# ---------------------------------------------------------------- client

package WebhookLoad::Client;

use strict;
use warnings;
use Time::HiRes qw(time);

# WebhookLoad::Client->new(port => P, keepalive => 1, retry_closed => 1,
#                          timeout => 15)
#
# With retry_closed, a request on a reused keep-alive connection that the
# server closed before sending any byte of an answer is sent once more on a
# new connection, as HTTP clients do: a server closes an idle keep-alive
# connection at any time (on reload, on shutdown, at keepalive_timeout),
# and a request that crossed that close was never read by it.
sub new {
    my ($class, %o) = @_;
    return bless { keepalive => 1, timeout => 15, %o, sock => undef, uses => 0,
        buf => '' }, $class;
}

sub disconnect {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
    $self->{buf} = '';
}

sub _once {
    my ($self, $path, $headers, $body) = @_;
    my $reused = 0;
    if ($self->{sock} && $self->{keepalive}) {
        $reused = 1;
    } else {
        $self->disconnect;
        $self->{sock} = WebhookTest::_connect($self->{port}, $self->{timeout});
        return ({ status => 0, error => "connect: $!", elapsed => 0 }, 0)
            unless $self->{sock};
        $self->{buf} = '';
    }
    my $res = WebhookTest::http_request(port => $self->{port}, method => 'POST',
        path => $path, headers => $headers, body => $body,
        timeout => $self->{timeout}, sock => $self->{sock},
        keepalive => $self->{keepalive}, bufref => \$self->{buf});
    my $conn = lc($res->{headers} ? $res->{headers}{connection} // '' : '');
    if (!$self->{keepalive} || $res->{status} == 0 || $conn eq 'close') {
        $self->disconnect;
    }
    return ($res, $reused);
}

# post($path, \%headers, $body): the result of WebhookTest::http_request,
# plus retried => 1 when it was sent a second time
sub post {
    my ($self, $path, $headers, $body) = @_;
    my $t0 = time;
    my ($res, $reused) = $self->_once($path, $headers, $body);
    if ($self->{retry_closed} && $reused && $res->{status} == 0
        && !length($res->{partial} // '') && !defined $res->{head})
    {
        ($res) = $self->_once($path, $headers, $body);
        $res->{retried} = 1;
    }
    $res->{elapsed} = time - $t0;
    return $res;
}

# record($event_id, $res): the result record of an answer
sub record {
    my ($class, $id, $res) = @_;
    my $j = ref $res->{json} eq 'HASH' ? $res->{json} : {};
    return {
        id => $id,
        status => $res->{status},
        elapsed => sprintf('%.4f', $res->{elapsed} // 0),
        retry_after => $res->{headers} ? $res->{headers}{'retry-after'} : undef,
        answer => $j->{id},
        answer_status => $j->{status},
        retried => $res->{retried} ? 1 : 0,
        error => $res->{status} == 0 ? ($res->{error} // $res->{write_error} // 'error') : undef,
    };
}

1;
