package WebhookConsumer;

# The reference consumer (docker/consumer/) in the fault tests: runs it in
# the background or to completion against a real redis-server, like a
# supervisor would (restarting it when it exits), with the handler of
# t/lib/consumer_test_handler.py, and counts what happened: handler runs,
# events done, events done twice, exits.
#
#   my $c = WebhookConsumer->new(redis => $redis, name => 'c1',
#                                env => { LEASE_TTL => 3 });
#   $c->enqueue(envelope(id => 'e1', model => 'sleep:1'));
#   my $p = $c->start('run');          # background
#   ...
#   $c->stop($p);                      # SIGTERM, exit code
#   my %f = $c->figures;               # runs, done, twice, ...
#
# Needs /usr/bin/python3 with redis-py (CONSUMER_PYTHON selects another).

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use FindBin;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use WebhookTest;

our @EXPORT = qw(envelope consumer_python);

our $LIB = "$FindBin::Bin/lib";
my $SCRIPT = "$FindBin::Bin/../docker/consumer/webhook_consumer.py";

sub consumer_python { $ENV{CONSUMER_PYTHON} || '/usr/bin/python3' }

# envelope(id => ..., priority => ..., model => ..., payload => {...}): the
# text of an envelope as the module writes it
my $N = 0;
sub envelope {
    my (%o) = @_;
    my $id = $o{id} // sprintf('%032x', ++$N);
    my %payload = %{ $o{payload} || { event_id => ++$N } };
    return '{"id":"' . $id . '","received_at":"2026-11-27T09:14:03.412Z",'
        . '"priority":"' . ($o{priority} // 'high') . '","event_id":' . $N
        . ',"model":' . json_encode([$o{model} // 'ok']) =~ s/^\[|\]$//gr
        . ',"record_id":1,"event":"write","sender":null,"payload":'
        . ($o{raw_payload} // json_encode(\%payload)) . '}';
}

sub new {
    my ($class, %o) = @_;
    my $dir = tempdir('consumer-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
    my $self = bless {
        redis => $o{redis}, name => $o{name} // 'c1', dir => $dir,
        queue => $o{queue} // '{webhook}', out => "$dir/handler.jsonl",
        env => {
            REDIS_URL => 'redis://127.0.0.1:' . $o{redis}->port . '/0',
            WEBHOOK_QUEUE => $o{queue} // '{webhook}',
            CONSUMER_NAME => $o{name} // 'c1',
            WEBHOOK_HANDLER => 'consumer_test_handler:handle',
            MAX_ATTEMPTS => 3, BACKOFF_BASE => 0.05, BACKOFF_MAX => 1,
            BLOCK_TIMEOUT => 0.2, LEASE_TTL => 3, LOG_LEVEL => 'DEBUG',
            PYTHONPATH => $LIB, PYTHONDONTWRITEBYTECODE => 1,
            %{ $o{env} || {} },
        },
        procs => [], exits => [], logs => [],
    }, $class;
    $self->{env}{CONSUMER_TEST_OUT} = $self->{out};
    return $self;
}

sub key { "$_[0]{queue}:$_[1]" }

# enqueue(@raw, priority => 'high'): LPUSH each envelope text on its queue
sub enqueue {
    my ($self, @raw) = @_;
    my %o = @raw > 1 && $raw[-2] eq 'priority' ? splice(@raw, -2) : ();
    for my $raw (@raw) {
        my ($p) = $raw =~ /"priority":"(high|medium|low)"/;
        $self->{redis}->cli('LPUSH', $self->key('queue:' . ($o{priority} // $p // 'high')), $raw);
    }
}

sub _exec {
    my ($self, $log, @args) = @_;
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', $log;
    open STDERR, '>&', \*STDOUT;
    @ENV{ keys %{ $self->{env} } } = values %{ $self->{env} };
    exec(consumer_python(), $SCRIPT, @args) or POSIX::_exit(127);
}

# start(@args): the consumer in the background; returns { pid, log }
sub start {
    my ($self, @args) = @_;
    my $log = "$self->{dir}/consumer-" . (@{ $self->{logs} } + 1) . '.log';
    push @{ $self->{logs} }, $log;
    my $pid = fork // die "fork: $!";
    $self->_exec($log, @args) unless $pid;
    my $p = { pid => $pid, log => $log };
    push @{ $self->{procs} }, $p;
    return $p;
}

# run(@args): to completion (60 s at most); returns (exit code, output)
sub run {
    my ($self, @args) = @_;
    my $p = $self->start(@args);
    my $rc = $self->wait_exit($p, 60);
    if (!defined $rc) {
        kill 'KILL', $p->{pid};
        $rc = $self->wait_exit($p, 10);
    }
    return ($rc, WebhookTest::read_file($p->{log}) // '');
}

# wait_exit($p, $seconds): its exit code (128 + signal), or undef if it
# still runs
sub wait_exit {
    my ($self, $p, $timeout) = @_;
    return $p->{rc} if exists $p->{rc};
    my $deadline = time + $timeout;
    while (1) {
        if (waitpid($p->{pid}, WNOHANG) == $p->{pid}) {
            $p->{rc} = ($? & 127) ? 128 + ($? & 127) : $? >> 8;
            push @{ $self->{exits} }, $p->{rc};
            return $p->{rc};
        }
        return undef if time >= $deadline;
        sleep 0.05;
    }
}

# stop($p, $timeout): SIGTERM, then SIGKILL after $timeout s (default 10);
# returns the exit code
sub stop {
    my ($self, $p, $timeout) = @_;
    return $p->{rc} if exists $p->{rc};
    kill 'TERM', $p->{pid};
    my $rc = $self->wait_exit($p, $timeout // 10);
    return $rc if defined $rc;
    kill 'KILL', $p->{pid};
    return $self->wait_exit($p, 10);
}

# supervise(until => sub {...}, seconds => 30, args => [...]): runs the
# consumer, starting it again 0.3 s after each exit (as systemd or Docker
# would), until `until` is true or the time is up; then stops it.  Returns
# the number of exits before the end (each one a failure of the consumer).
sub supervise {
    my ($self, %o) = @_;
    my $deadline = time + ($o{seconds} // 30);
    my ($p, $exits) = (undef, 0);
    while (time < $deadline) {
        if (!$p || defined $self->wait_exit($p, 0)) {
            if ($p) {
                $exits++;
                sleep 0.3;
            }
            $p = $self->start(@{ $o{args} || ['run'] });
        }
        last if $o{until}->();
        $o{during}->($p) if $o{during};
        sleep 0.05;
    }
    $self->stop($p) if $p;
    return $exits;
}

# the handler's notes, in order: { id, pid, phase, ... }
sub notes {
    my ($self) = @_;
    my $text = WebhookTest::read_file($self->{out}) // '';
    return map { json_decode($_) } grep { length } split /\n/, $text;
}

# figures: runs (handler calls), done (events that returned), twice (events
# done more than once), started (ids whose handler started)
sub figures {
    my ($self) = @_;
    my (%start, %done);
    for my $n ($self->notes) {
        $start{ $n->{id} }++ if $n->{phase} eq 'start';
        $done{ $n->{id} }++ if $n->{phase} eq 'done';
    }
    my $runs = 0;
    $runs += $_ for values %start;
    return (runs => $runs, done => scalar(keys %done),
            twice => scalar(grep { $_ > 1 } values %done),
            started => scalar(keys %start));
}

# note_figures($name, $events, $exits): the figures as a TAP note, one line
# for the closing note; returns them
sub note_figures {
    my ($self, $name, $events, $exits) = @_;
    my %f = $self->figures;
    Test::More::note("figures: $name: events $events, handler runs $f{runs}, "
                     . "done $f{done}, done twice $f{twice}, exits $exits");
    return %f;
}

# done_at_least($n): the handler returned for $n events or more
sub done_at_least {
    my ($self, $n) = @_;
    my %f = $self->figures;
    return $f{done} >= $n;
}

# lapsed: its processing list holds an event while its lease is gone (both
# read at once, in a script)
sub lapsed {
    my ($self) = @_;
    my $out = $self->{redis}->cli('EVAL', "return redis.call('EXISTS', KEYS[1]) == 0 "
        . "and redis.call('LLEN', KEYS[2]) > 0 and 1 or 0", 2,
        $self->key("consumer:$self->{name}"), $self->key("processing:$self->{name}"));
    return ($out // '') eq '1';
}

sub runs_of {
    my ($self, $id) = @_;
    return scalar grep { $_->{id} eq $id && $_->{phase} eq 'start' } $self->notes;
}

sub done_of {
    my ($self, $id) = @_;
    return scalar grep { $_->{id} eq $id && $_->{phase} eq 'done' } $self->notes;
}

sub started { my ($self, $id) = @_; $self->runs_of($id) > 0 }

# every log the consumer wrote so far
sub logs {
    my ($self) = @_;
    return join '', map { WebhookTest::read_file($_) // '' } @{ $self->{logs} };
}

sub DESTROY {
    my ($self) = @_;
    local $?;
    for my $p (@{ $self->{procs} }) {
        next if exists $p->{rc};
        kill 'KILL', $p->{pid};
        waitpid($p->{pid}, 0);
    }
}


# ---------------------------------------------------------------- BridgeCore

# The stand-in BridgeCore (t/lib/bridgecore_standin.py, FastAPI):
#   my $bc = WebhookConsumer::Standin->new(token => 'secret');
#   $bc->control(fail => [...]);   # after a reset
#   $bc->log;                      # { requests => [...], received => [...] }
package WebhookConsumer::Standin;

use strict;
use warnings;
use File::Temp qw(tempdir);
use WebhookTest;

sub new {
    my ($class, %o) = @_;
    my $dir = tempdir('standin-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{WEBHOOK_KEEP});
    my $self = bless { port => free_port(), dir => $dir, owner => $$ }, $class;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/standin.log";
        open STDERR, '>&', \*STDOUT;
        exec(WebhookConsumer::consumer_python(), "$WebhookConsumer::LIB/bridgecore_standin.py",
             '--port', $self->{port}, defined $o{token} ? ('--token', $o{token}) : ())
            or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    wait_until(sub { WebhookTest::port_open($self->{port}) }, timeout => 30)
        or die 'the stand-in BridgeCore did not start: '
            . (read_file("$dir/standin.log") // '');
    return $self;
}

sub url { "http://127.0.0.1:$_[0]{port}/api/v1/webhooks/receive" }

sub _call {
    my ($self, $method, $path, $body) = @_;
    my $res = http_request(port => $self->{port}, method => $method, path => $path,
        headers => { 'Content-Type' => 'application/json' },
        body => defined $body ? json_encode($body) : undef, timeout => 10);
    die 'stand-in: ' . dump_res($res) unless $res->{status} == 200;
    return $res->{json};
}

sub control { my ($self, @o) = @_; $self->_call('POST', '/_control', { reset => JSON::PP::true, @o }) }
sub log { $_[0]->_call('GET', '/_log') }

sub DESTROY {
    my ($self) = @_;
    local $?;
    return unless $self->{owner} == $$ && $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid($self->{pid}, 0);
}

1;
