package WebhookTest;

# Test harness for the ngx_http_webhook_module integration tests.
#
# Perl core modules only.  Starts private redis-server and nginx processes on
# free loopback ports, each in its own temporary directory, and kills them
# again when the test ends (normally or by dying).
#
# Environment:
#   WEBHOOK_MODULE   path of ngx_http_webhook_module.so
#                    (default <repo>/build/nginx/objs/ngx_http_webhook_module.so)
#   WEBHOOK_SAMPLES  folder of the Odoo sample bodies, used when
#                    <repo>/t/data does not exist
#   NGINX_BIN        nginx binary (default /usr/sbin/nginx)
#   REDIS_SERVER     redis-server binary (default redis-server)
#   REDIS_CLI        redis-cli binary (default redis-cli)
#   WEBHOOK_KEEP     keep the temporary directories (for debugging)
#   WEBHOOK_TEST_CLUSTER  start_redis() without options starts a Redis
#                    Cluster of 3 primaries and 3 replicas instead
#                    (WebhookCluster::AsRedis), and nginx.conf's
#                    "webhook_redis <its port>;" becomes webhook_redis_cluster
#                    with every node; skips when the module lacks Cluster

use strict;
use warnings;

use Exporter 'import';
use Cwd qw(abs_path);
use Errno qw(EINTR EAGAIN EWOULDBLOCK);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(WNOHANG);
use Socket qw(SOL_SOCKET SO_REUSEADDR);
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
    module_path require_module free_port
    start_redis start_nginx nginx_t
    write_file read_file append_file
    http_request chunked_request raw_request
    samples_dir sample_text sample_json json_encode json_decode
    receive_location wait_until cannot_run skip_or_fail under_ci
    nginx_built_with hiredis_refuses_newlines have_promtool promtool_ok
    cannot_run_subtest
    clear_throwaway_root
    is_json_error is_queued is_batch_answer json_scalar dump_res
);

$SIG{PIPE} = 'IGNORE';
# on Ctrl-C / kill, exit normally so that END cleans up the servers
for my $sig (qw(INT TERM)) {
    $SIG{$sig} = sub { print STDERR "# caught SIG$sig, cleaning up\n"; exit 128 + ($sig eq 'INT' ? 2 : 15) }
        unless ref $SIG{$sig};
}

my $REPO = abs_path(File::Spec->catdir(dirname(abs_path(__FILE__)), '..', '..'));
my $NGINX = $ENV{NGINX_BIN} || '/usr/sbin/nginx';
my $REDIS_SERVER = $ENV{REDIS_SERVER} || 'redis-server';
my $REDIS_CLI = $ENV{REDIS_CLI} || 'redis-cli';

my $JSON = JSON::PP->new->utf8->canonical;

our @LIVE;    # every started process object, for END cleanup
my $OWNER = $$;

sub json_encode { $JSON->encode($_[0]) }

sub json_decode {
    my ($text) = @_;
    return undef unless defined $text;
    my $v = eval { JSON::PP->new->utf8->allow_nonref->decode($text) };
    return $v;
}

# ---------------------------------------------------------------- files

sub module_path {
    return $ENV{WEBHOOK_MODULE}
        || "$REPO/build/nginx/objs/ngx_http_webhook_module.so";
}

# Call at the top of each .t file: a missing module is a failure, not a skip.
sub require_module {
    my $m = module_path();
    return abs_path($m) if -f $m;
    Test::More::BAIL_OUT("webhook module not found at $m "
        . "(build it first, or set WEBHOOK_MODULE)");
}

# ---------------------------------------------------------------- skips
# Two kinds of skip.  A test that does not apply to the nginx under test
# (the package test under an ASan wrapper, a --with-debug check against a
# build without it) skips with plan skip_all, in CI too.  A test that
# could apply but lacks something this machine should have (root, a tool,
# a package, the shared folder) calls these: outside CI it skips, saying
# why; with CI=true it fails, saying why, so that CI never passes by
# skipping what it was meant to prove.

sub under_ci { ($ENV{CI} // '') eq 'true' }

# cannot_run(WHY): instead of plan skip_all => WHY, at the top of a test
sub cannot_run {
    my ($why) = @_;
    Test::More::plan(skip_all => $why) unless under_ci();
    Test::More::plan(tests => 1);
    Test::More::fail("CI=true, and this test cannot run: $why");
    exit 1;
}

# cannot_run_subtest(WHY): instead of plan skip_all => WHY at the top of
# a subtest: outside CI it skips the subtest; with CI=true it fails one
# check and returns true, for the caller to return:
#   return if $why && cannot_run_subtest($why);
sub cannot_run_subtest {
    my ($why) = @_;
    Test::More::plan(skip_all => $why) unless under_ci();
    Test::More::fail("CI=true, and this part cannot run: $why");
    return 1;
}

# skip_or_fail(WHY, COUNT): instead of skip WHY, COUNT in a SKIP block
sub skip_or_fail {
    my ($why, $count) = @_;
    Test::More::fail("CI=true, and this part cannot run: $why") if under_ci();
    no warnings 'exiting';
    Test::More::skip($why, $count);
}

# nginx_built_with(OPTION): whether the nginx under test was configured
# with OPTION (e.g. '--with-http_v2_module', '--with-debug'), from nginx -V.
sub nginx_built_with {
    my ($option) = @_;
    my (undef, $v) = run_cmd([$NGINX, '-V']);
    return ($v // '') =~ /(?:^|\s)\Q$option\E(?:\s|=|$)/m;
}

# hiredis_refuses_newlines(): whether the hiredis the module is linked
# against refuses a status or error reply with a CR or LF in it as a
# protocol error (hiredis 1.x does, "Bad simple string value"; 0.14 passes
# the line on).  Found in the library ldd resolves for the module.
sub hiredis_refuses_newlines {
    my (undef, $ldd) = run_cmd(['ldd', module_path()]);
    my ($lib) = ($ldd // '') =~ /libhiredis\S*\s+=>\s+(\S+)/;
    die "hiredis_refuses_newlines: no libhiredis in ldd of " . module_path() . "\n"
        unless $lib;
    open my $fh, '<:raw', $lib or die "$lib: $!\n";
    local $/;
    my $bytes = <$fh>;
    return index($bytes, 'Bad simple string value') >= 0;
}

# have_promtool(): whether Prometheus's promtool is on PATH
sub have_promtool {
    return scalar grep { -x "$_/promtool" } split /:/, $ENV{PATH} // '';
}

# promtool_ok(TEXT, NAME): one check that `promtool check metrics` takes
# the exposition TEXT, exiting 0 and printing nothing; without promtool
# it skips, or fails under CI=true.
sub promtool_ok {
    my ($body, $name) = @_;
    SKIP: {
        skip_or_fail('promtool is not installed', 1) unless have_promtool();
        my $tmp = File::Temp->new(TMPDIR => 1, SUFFIX => '.prom');
        binmode $tmp;
        print {$tmp} $body;
        close $tmp;
        my ($rc, $out) = run_cmd(['sh', '-c', 'exec promtool check metrics < "$1"',
                                  'sh', $tmp->filename]);
        Test::More::ok($rc == 0 && $out eq '',
            "$name: promtool check metrics exits 0 and prints nothing")
            or Test::More::diag("promtool: $out\nthe text:\n$body");
    }
}

# ---------------------------------------------------------------- throwaway
# clear_throwaway_root(): in a throwaway root only (t/lib/throwaway-root
# sets WEBHOOK_THROWAWAY_ROOT), takes away what the project may have put
# on the machine it is a copy of, so that a test there starts from
# Debian's nginx as installed: the package (purged), what make install
# wrote (make uninstall), what scripts/run-example wrote (its token file,
# spool, Redis data) and any configuration file that uses webhook_*
# directives (set aside).  One Test::More check; notes what it took away.
sub clear_throwaway_root {
    die "clear_throwaway_root outside a throwaway root\n"
        unless $ENV{WEBHOOK_THROWAWAY_ROOT};
    my $pkg = 'libnginx-mod-http-webhook';
    my @bad;
    my ($rc, $out) = run_cmd(['dpkg-query', '-W', '-f', '${Status}', $pkg]);
    if ($rc == 0 && $out =~ /install ok installed/) {
        local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
        ($rc, $out) = run_cmd(['apt-get', 'purge', '-y', '-q', $pkg], timeout => 300);
        push @bad, "apt-get purge: $out" if $rc;
        Test::More::note("the throwaway root: $pkg purged");
    }
    ($rc, $out) = run_cmd(['make', '-C', $REPO, '--no-print-directory', 'uninstall']);
    push @bad, "make uninstall: $out" if $rc;
    (undef, $out) = run_cmd(['grep', '-rlsE', '^[[:space:]]*webhook_', '/etc/nginx']);
    for my $conf (grep { length } split /\n/, $out) {
        rename($conf, "$conf.set-aside") or push @bad, "rename $conf: $!";
        Test::More::note("the throwaway root: $conf uses the module, set aside");
    }
    for my $f ('/etc/nginx/webhook.tokens', glob('/var/lib/redis/*')) {
        next unless -e $f;
        File::Path::remove_tree($f);
        Test::More::note("the throwaway root: $f removed");
    }
    File::Path::remove_tree('/var/lib/nginx/webhook-spool');
    Test::More::ok(!@bad, 'the throwaway root: nothing of the project left')
        or Test::More::diag(join "\n", @bad);
}

sub samples_dir {
    my $test_dir = dirname(abs_path($0));
    for my $d (
        File::Spec->catdir($REPO, 't', 'data'),
        File::Spec->catdir($test_dir, '..', '..', 'shared', 'samples'),
        File::Spec->catdir($REPO, '..', 'shared', 'samples'),
        $ENV{WEBHOOK_SAMPLES} ? ($ENV{WEBHOOK_SAMPLES}) : (),
    ) {
        return abs_path($d) if -f File::Spec->catfile($d, 'odoo-event.json');
    }
    die "Odoo samples not found: expected ../../shared/samples next to $test_dir "
        . "or WEBHOOK_SAMPLES\n";
}

sub sample_text {
    my ($name) = @_;
    my $t = read_file(File::Spec->catfile(samples_dir(), $name));
    $t =~ s/\s+\z//;
    return $t;
}

sub sample_json { json_decode(sample_text($_[0])) }

sub write_file {
    my ($path, $content, $mode) = @_;
    open my $fh, '>', $path or die "write $path: $!";
    binmode $fh;
    print {$fh} $content;
    close $fh or die "close $path: $!";
    chmod($mode // 0644, $path);
    return $path;
}

sub append_file {
    my ($path, $content) = @_;
    open my $fh, '>>', $path or die "append $path: $!";
    binmode $fh;
    print {$fh} $content;
    close $fh;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    my $c = <$fh>;
    close $fh;
    return $c // '';
}

sub make_dir {
    my ($tag) = @_;
    my $dir = tempdir("webhook-$tag-XXXXXX", TMPDIR => 1,
        CLEANUP => ($ENV{WEBHOOK_KEEP} ? 0 : 1));
    chmod 0755, $dir;    # nginx workers run as nobody when started as root
    return abs_path($dir);
}

# ---------------------------------------------------------------- misc

sub free_port {
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1,
        ReuseAddr => 1,
    ) or die "cannot bind a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub port_open {
    my ($port, $host) = @_;
    my $s = IO::Socket::INET->new(
        PeerAddr => $host // '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# wait_until(sub { ... }, timeout => 10, interval => 0.1): returns the
# first true value of the sub, or undef after the timeout.
sub wait_until {
    my ($cb, %o) = @_;
    my $deadline = time + ($o{timeout} // 10);
    my $interval = $o{interval} // 0.1;
    while (1) {
        my $v = $cb->();
        return $v if $v;
        return undef if time > $deadline;
        sleep $interval;
    }
}

# Run a command, capturing stdout+stderr; returns (exit_code, output).
sub run_cmd {
    my ($cmd, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my $out = File::Temp->new(TMPDIR => 1);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out->filename;
        open STDERR, '>&', \*STDOUT;
        exec @$cmd or POSIX::_exit(127);
    }
    my $deadline = time + $timeout;
    my $rc;
    while (1) {
        my $w = waitpid($pid, WNOHANG);
        if ($w == $pid) { $rc = $?; last }
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            return (-1, (read_file($out->filename) // '') . "\n[timed out after ${timeout}s]");
        }
        sleep 0.02;
    }
    my $code = ($rc & 127) ? 128 + ($rc & 127) : ($rc >> 8);
    return ($code, read_file($out->filename) // '');
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $stat = read_file("/proc/$p/stat") or next;
        # pid (comm) state ppid ...   comm may contain spaces/parens
        next unless $stat =~ /\)\s+\S+\s+(\d+)/;
        push @kids, $p + 0 if $1 == $ppid;
    }
    closedir $dh;
    @kids = sort { $a <=> $b } @kids;
    return @kids;
}

sub wait_pid {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $w = waitpid($pid, WNOHANG);
        return 1 if $w == $pid || $w == -1;
        sleep 0.05;
    }
    return 0;
}

END {
    local $?;    # waitpid in cleanup must not change the test's exit code
    if ($$ == $OWNER) {
        for my $obj (reverse @LIVE) {
            eval { $obj->_cleanup } if $obj;
        }
        @LIVE = ();
    }
}

# ---------------------------------------------------------------- redis

our %CLUSTER_REDIS;    # port of a cluster's first node => "webhook_redis_cluster <all nodes>"

sub start_redis {
    if ($ENV{WEBHOOK_TEST_CLUSTER} && !@_) {
        require WebhookCluster;
        return WebhookCluster::AsRedis->new;
    }
    return WebhookTest::Redis->new(@_);
}

package WebhookTest::Redis;

use strict;
use warnings;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        port     => $o{port} // WebhookTest::free_port(),
        dir      => WebhookTest::make_dir('redis'),
        password => $o{password},
        unixsocket => $o{unixsocket},
        tls      => $o{tls},
        bind     => $o{bind} // '127.0.0.1',
        extra    => $o{extra} || [],
        owner    => $$,
    }, $class;
    push @WebhookTest::LIVE, $self;
    $self->start unless $o{no_start};
    return $self;
}

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} }
sub addr { "$_[0]{bind}:$_[0]{port}" }
sub running { defined $_[0]{pid} }

sub start {
    my ($self) = @_;
    die "redis already running\n" if $self->{pid};
    # tls => { cert, key, ca, auth_clients, client_cert, client_key }: the
    # TLS port only (--port 0); cli() talks TLS with the CA (and the client
    # certificate when Redis asks for one)
    my $t = $self->{tls};
    my @port = $t
        ? ('--port', 0, '--tls-port', $self->{port},
           '--tls-cert-file', $t->{cert}, '--tls-key-file', $t->{key},
           '--tls-ca-cert-file', $t->{ca},
           '--tls-auth-clients', $t->{auth_clients} // 'no')
        : ('--port', $self->{port});
    my @cmd = ($REDIS_SERVER,
        @port, '--bind', $self->{bind},
        '--save', '', '--appendonly', 'no',
        '--dir', $self->{dir}, '--daemonize', 'no',
        '--logfile', "$self->{dir}/redis.log",
        '--enable-debug-command', 'local',
    );
    push @cmd, '--requirepass', $self->{password} if defined $self->{password};
    push @cmd, '--unixsocket', $self->{unixsocket}, '--unixsocketperm', '777'
        if $self->{unixsocket};
    push @cmd, @{ $self->{extra} };
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/redis.stdout";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    my $ok = WebhookTest::wait_until(sub {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "redis-server exited at start:\n"
                . (WebhookTest::read_file("$self->{dir}/redis.log") // '')
                . (WebhookTest::read_file("$self->{dir}/redis.stdout") // '');
        }
        my $pong = $self->cli('PING');
        return defined $pong && $pong eq 'PONG';
    }, timeout => 15, interval => 0.05);
    die "redis-server on port $self->{port} did not answer PING\n" unless $ok;
    return $self;
}

# stop(signal => 'KILL'): TERM by default; KILL is a crash (start() again
# in the same directory loads its AOF, on the same port)
sub stop {
    my ($self, %o) = @_;
    my $pid = delete $self->{pid} or return;
    kill $o{signal} // 'TERM', $pid;
    unless (WebhookTest::wait_pid($pid, 10)) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    # make sure nothing answers any more
    WebhookTest::wait_until(sub { !WebhookTest::port_open($self->{port}, $self->{bind}) }, timeout => 5);
}

sub restart { my $s = shift; $s->stop; $s->start }

# cli(@args): runs redis-cli against this server, returns trimmed output.
# cli({db => 3}, @args) selects a database.
sub cli {
    my ($self, @args) = @_;
    my %o = ref $args[0] eq 'HASH' ? %{ shift @args } : ();
    my @cmd = ($REDIS_CLI, '-h', $self->{bind}, '-p', $self->{port});
    if (my $t = $self->{tls}) {
        push @cmd, '--tls', '--cacert', $t->{ca};
        push @cmd, '--cert', $t->{client_cert}, '--key', $t->{client_key}
            if $t->{client_cert};
    }
    push @cmd, '-n', $o{db} if defined $o{db};
    push @cmd, '-a', $self->{password}, '--no-auth-warning' if defined $self->{password};
    my ($rc, $out) = WebhookTest::run_cmd([@cmd, @args], timeout => $o{timeout} // 20);
    return undef if $rc != 0;
    $out =~ s/^\s+|\s+\z//g;
    return $out;
}

# call({db => 3}, @args): one command over RESP on a plain TCP connection,
# binary-safe (an element may hold a line break, which redis-cli's output
# cannot tell apart from the next element); returns the reply as a string,
# a number, an array ref or undef (nil), dies on an error reply.  Not for
# a TLS-only Redis (use cli()).
sub call {
    my ($self, @args) = @_;
    my %o = ref $args[0] eq 'HASH' ? %{ shift @args } : ();
    die "call: Redis with TLS only, use cli()\n" if $self->{tls};
    my $s = IO::Socket::INET->new(PeerAddr => $self->{bind}, PeerPort => $self->{port},
        Proto => 'tcp', Timeout => 10) or die "call: connect: $!\n";
    my @cmds;
    push @cmds, ['AUTH', $self->{password}] if defined $self->{password};
    push @cmds, ['SELECT', $o{db}] if defined $o{db};
    push @cmds, \@args;
    my $buf = '';
    my $line = sub {
        my $e;
        until (($e = index($buf, "\r\n")) >= 0) {
            sysread($s, $buf, 65536, length $buf) or die "call: connection closed\n";
        }
        my $l = substr($buf, 0, $e);
        substr($buf, 0, $e + 2, '');
        return $l;
    };
    my $reply;
    $reply = sub {
        my $l = $line->();
        my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
        die "call: $v\n" if $t eq '-';
        return $v if $t eq '+';
        return $v + 0 if $t eq ':';
        return undef if $v < 0;
        return [map { $reply->() } 1 .. $v] if $t eq '*';
        while (length $buf < $v + 2) {
            sysread($s, $buf, 65536, length $buf) or die "call: connection closed\n";
        }
        my $bulk = substr($buf, 0, $v);
        substr($buf, 0, $v + 2, '');
        return $bulk;
    };
    my $r;
    for my $c (@cmds) {
        print $s '*' . @$c . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @$c);
        $r = $reply->();
    }
    close $s;
    return $r;
}

# The elements of a list, exactly (over RESP; with TLS, through redis-cli:
# one element a line); none when Redis does not answer.
sub lrange {
    my ($self, $key, %o) = @_;
    if (!$self->{tls}) {
        my $r = eval { $self->call({ db => $o{db} }, 'LRANGE', $key, 0, -1) };
        return ref $r eq 'ARRAY' ? @$r : ();
    }
    my $out = $self->cli({ db => $o{db} }, 'LRANGE', $key, 0, -1);
    return () unless defined $out && length $out;
    return split /\n/, $out;
}

sub llen {
    my ($self, $key, %o) = @_;
    my $n = $self->cli({ db => $o{db} }, 'LLEN', $key);
    return defined $n ? $n + 0 : -1;
}

sub keys {
    my ($self, %o) = @_;
    my $out = $self->cli({ db => $o{db} }, 'KEYS', '*');
    return () unless defined $out && length $out;
    return sort split /\n/, $out;
}

sub flushall { $_[0]->cli('FLUSHALL') }

# sleep_in_background($secs, $settle): DEBUG SLEEP from a child redis-cli,
# so Redis hangs while the test goes on; waits $settle s (default 0.3) for
# Redis to block, returns the child's pid (waitpid it).
sub sleep_in_background {
    my ($self, $secs, $settle) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec($REDIS_CLI, '-h', '127.0.0.1', '-p', $self->{port}, 'DEBUG', 'SLEEP', $secs)
            or POSIX::_exit(127);
    }
    Time::HiRes::sleep($settle // 0.3);
    return $pid;
}

# Fetch and delete all envelopes of a list, oldest first, JSON-decoded.
# Each element is { raw => string, env => decoded-or-undef }.
sub take {
    my ($self, $key, %o) = @_;
    my @raw = reverse $self->lrange($key, %o);
    $self->cli({ db => $o{db} }, 'DEL', $key);
    return map { { raw => $_, env => WebhookTest::json_decode($_) } } @raw;
}

sub log { WebhookTest::read_file("$_[0]{dir}/redis.log") // '' }

sub _cleanup {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    if (my $pid = delete $self->{pid}) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

sub DESTROY { local $?; $_[0]->_cleanup }

# ---------------------------------------------------------------- nginx

package WebhookTest::Nginx;

use strict;
use warnings;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

# Writes <dir>/nginx.conf.  %%PORT%% and %%PREFIX%% in the http text are
# replaced by the listen port and the prefix directory.
sub write_conf {
    my ($self) = @_;
    my $dir = $self->{dir};
    File::Path::make_path(map { "$dir/$_" } qw(logs tmp/client_body tmp/proxy tmp/fastcgi tmp/uwsgi tmp/scgi));
    chmod 0755, map { "$dir/$_" } qw(logs tmp);
    for my $name (sort keys %{ $self->{files} || {} }) {
        # secrets (token and password files): readable by root only
        WebhookTest::write_file("$dir/$name", $self->{files}{$name}, 0600);
    }
    my $http = $self->{http} // '';
    $http =~ s/%%PORT%%/$self->{port}/g;
    $http =~ s/%%PREFIX%%/$dir/g;
    # WEBHOOK_TEST_CLUSTER: the cluster's first node stands for the cluster
    $http =~ s{\bwebhook_redis\s+127\.0\.0\.1:(\d+)\s*;}
        {$WebhookTest::CLUSTER_REDIS{$1} ? "$WebhookTest::CLUSTER_REDIS{$1};" : $&}ge;
    my $main = $self->{main} // '';
    $main =~ s/%%PREFIX%%/$dir/g;
    my $module = $self->{module} ? "load_module $self->{module};\n" : '';
    my $conf = <<"CONF";
${module}worker_processes $self->{workers};
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/error.log $self->{error_level};
$main
events {
    worker_connections 1024;
}

http {
    access_log $dir/access.log;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

$http
}
CONF
    WebhookTest::write_file("$dir/nginx.conf", $conf);
    return "$dir/nginx.conf";
}

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        http        => $o{http},
        main        => $o{main},
        files       => $o{files},
        workers     => $o{workers} // 1,
        error_level => $o{error_level} // 'info',
        port        => $o{port} // WebhookTest::free_port(),
        module      => exists $o{module} ? $o{module} : WebhookTest::require_module(),
        dir         => $o{dir} // WebhookTest::make_dir('nginx'),
        owner       => $$,
    }, $class;
    push @WebhookTest::LIVE, $self;
    return $self;
}

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} }
sub url  { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '/') }
sub path { "$_[0]{dir}/$_[1]" }

sub start {
    my ($self) = @_;
    die "nginx already running\n" if $self->{pid};
    $self->write_conf;
    my $dir = $self->{dir};
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec $NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf", '-g', 'daemon off;'
            or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    my $ok = WebhookTest::wait_until(sub {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "nginx exited at start (status $?):\n"
                . (WebhookTest::read_file("$dir/stderr.log") // '')
                . (WebhookTest::read_file("$dir/error.log") // '');
        }
        my @w = $self->workers;
        return 0 unless @w >= $self->{workers};
        return WebhookTest::port_open($self->{port});
    }, timeout => 20, interval => 0.05);
    die "nginx did not start listening on $self->{port}:\n" . $self->error_log unless $ok;
    sleep 0.2;    # let the workers finish their init
    return $self;
}

sub workers { WebhookTest::children_of($_[0]{pid}) }

# Change config text before a reload (http => ..., files => {...}).
sub set {
    my ($self, %o) = @_;
    $self->{$_} = $o{$_} for keys %o;
    $self->write_conf;
}

# reload(wait_old => 1): HUP the master, wait until new workers run; with
# wait_old, also wait until all old workers have exited (returns false if
# they did not within `timeout`).
sub reload {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // 20;
    my %old = map { $_ => 1 } $self->workers;
    kill 'HUP', $self->{pid} or die "HUP: $!";
    my $new = WebhookTest::wait_until(sub {
        my @new = grep { !$old{$_} } $self->workers;
        return @new >= $self->{workers};
    }, timeout => $timeout, interval => 0.05);
    return 0 unless $new;
    sleep 0.3;    # new workers: init_process, redis connect
    if ($o{wait_old}) {
        return WebhookTest::wait_until(sub {
            my @left = grep { $old{$_} } $self->workers;
            return !@left;
        }, timeout => $timeout, interval => 0.05) ? 1 : 0;
    }
    return 1;
}

# stop(): QUIT (graceful), waits up to `timeout` s; returns 1 if nginx exited
# gracefully, 0 if it had to be killed.
sub stop {
    my ($self, %o) = @_;
    my $pid = $self->{pid} or return 1;
    my $timeout = $o{timeout} // 15;
    my @workers = $self->workers;
    kill($o{signal} // 'QUIT', $pid);
    my $graceful = WebhookTest::wait_pid($pid, $timeout);
    unless ($graceful) {
        kill 'KILL', $self->workers, @workers;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    delete $self->{pid};
    return $graceful ? 1 : 0;
}

sub error_log  { WebhookTest::read_file("$_[0]{dir}/error.log") // '' }
sub access_log { WebhookTest::read_file("$_[0]{dir}/" . ($_[1] // 'access.log')) // '' }
sub stderr_log { WebhookTest::read_file("$_[0]{dir}/stderr.log") // '' }

sub request {
    my ($self, $method, $path, $headers, $body, %o) = @_;
    return WebhookTest::http_request(port => $self->{port}, method => $method,
        path => $path, headers => $headers, body => $body, %o);
}

sub chunked { my $s = shift; WebhookTest::chunked_request(port => $s->{port}, @_) }
sub raw     { my $s = shift; WebhookTest::raw_request(port => $s->{port}, @_) }

sub _cleanup {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    if (my $pid = delete $self->{pid}) {
        my @w = WebhookTest::children_of($pid);
        kill 'QUIT', $pid;
        unless (WebhookTest::wait_pid($pid, 5)) {
            kill 'KILL', WebhookTest::children_of($pid), @w, $pid;
            waitpid($pid, 0);
        }
    }
}

sub DESTROY { local $?; $_[0]->_cleanup }

package WebhookTest;

# start_nginx(http => TEXT, workers => N, files => {name => content},
#             main => TEXT, error_level => 'info', port => P)
sub start_nginx {
    my $n = WebhookTest::Nginx->new(@_);
    $n->start;
    return $n;
}

# nginx_t(HTTP_TEXT, files => {...}, main => TEXT): runs `nginx -t` on a
# config built like start_nginx's; returns (exit_code, output).
sub nginx_t {
    my ($http, %o) = @_;
    my $n = WebhookTest::Nginx->new(%o, http => $http);
    $n->write_conf;
    my ($rc, $out) = run_cmd([$NGINX, '-t', '-p', $n->dir . '/', '-c', $n->dir . '/nginx.conf',
        '-g', 'daemon off;'], timeout => 30);
    my $elog = $n->error_log;
    $out .= "\n--- error.log:\n$elog" if length $elog;
    return wantarray ? ($rc, $out, $n) : $rc;
}

# A standard receive location; %%PREFIX%% is the nginx prefix directory.
#   receive_location(path => '/x', tokens => 'webhook.tokens', extra => '...')
sub receive_location {
    my (%o) = @_;
    my $path = $o{path} // '/api/v1/webhooks/receive';
    my $tokens = $o{tokens} // 'webhook.tokens';
    my $extra = $o{extra} // '';
    my $lines = '';
    # braces must be quoted in nginx.conf ({ starts a block)
    $lines .= "            webhook_queue \"$o{queue}\";\n" if defined $o{queue};
    $lines .= "            webhook_api_key_header $o{api_key_header};\n" if defined $o{api_key_header};
    $lines .= "            webhook_default_priority $o{default_priority};\n" if defined $o{default_priority};
    $lines .= "            webhook_schema $o{schema};\n" if defined $o{schema};
    $lines .= "            client_max_body_size " . ($o{max_body} // '1m') . ";\n";
    return <<"LOC";
        location = $path {
            webhook_receive;
            webhook_token_file %%PREFIX%%/$tokens;
$lines            $extra
        }
LOC
}

# ---------------------------------------------------------------- HTTP client

sub _write_all {
    my ($sock, $data, $deadline) = @_;
    my $off = 0;
    my $sel = IO::Select->new($sock);
    while ($off < length $data) {
        my $left = $deadline - time;
        return "write timeout" if $left <= 0;
        next unless $sel->can_write($left);
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            return "write: $!";
        }
        $off += $n;
    }
    return undef;
}

# Reads one response from $sock; $bufref holds bytes already read (and keeps
# the bytes after the response for keep-alive).  Returns a result hash.
sub _read_response {
    my ($sock, $method, $deadline, $bufref) = @_;
    my $buf = $bufref ? $$bufref : '';
    my $sel = IO::Select->new($sock);
    my $eof = 0;
    my $read_more = sub {
        my $left = $deadline - time;
        return "read timeout" if $left <= 0;
        return undef unless $sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        if (!defined $n) {
            return undef if $! == EINTR || $! == EAGAIN;
            return "read: $!";
        }
        $eof = 1 if $n == 0;
        return undef;
    };
    my (%res, $rerr);
    while (1) {
        # headers
        my $hend;
        while (($hend = index($buf, "\r\n\r\n")) < 0) {
            return { status => 0, error => ($eof ? 'connection closed before response' : $rerr), partial => $buf }
                if $eof || defined($rerr = $read_more->());
        }
        my $head = substr($buf, 0, $hend);
        $buf = substr($buf, $hend + 4);
        my ($status_line, @lines) = split /\r\n/, $head;
        my ($proto, $status, $reason) = $status_line =~ m{^(HTTP/\d\.\d)\s+(\d{3})\s*(.*)$}
            or return { status => 0, error => "bad status line: $status_line", partial => $head };
        my (%h, @hl);
        for my $l (@lines) {
            my ($k, $v) = $l =~ /^([^:]+):\s*(.*?)\s*$/ or next;
            push @hl, [$k, $v];
            my $lk = lc $k;
            $h{$lk} = exists $h{$lk} ? "$h{$lk}, $v" : $v;
        }
        %res = (status => $status + 0, reason => $reason, proto => $proto,
            headers => \%h, header_list => \@hl, head => $head);
        last unless $status >= 100 && $status < 200;    # skip 100 Continue
    }
    my $h = $res{headers};
    my $body = '';
    if ($method eq 'HEAD' || $res{status} == 204 || $res{status} == 304) {
        # no body
    } elsif (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my $e;
            while (($e = index($buf, "\r\n")) < 0) {
                return { %res, status => 0, error => 'truncated chunked body', body => $body }
                    if $eof || defined($rerr = $read_more->());
            }
            my ($size) = substr($buf, 0, $e) =~ /^([0-9a-fA-F]+)/;
            $size = hex($size // 0);
            if ($size == 0) {
                # trailers up to empty line
                while (index($buf, "\r\n\r\n", $e - 2 < 0 ? 0 : $e - 2) < 0 && !$eof) {
                    last if defined $read_more->();
                }
                my $t = index($buf, "\r\n\r\n");
                $buf = $t >= 0 ? substr($buf, $t + 4) : '';
                last;
            }
            while (length($buf) < $e + 2 + $size + 2) {
                return { %res, status => 0, error => 'truncated chunked body', body => $body }
                    if $eof || defined($rerr = $read_more->());
            }
            $body .= substr($buf, $e + 2, $size);
            $buf = substr($buf, $e + 2 + $size + 2);
        }
    } elsif (defined $h->{'content-length'}) {
        my $len = $h->{'content-length'} + 0;
        while (length($buf) < $len) {
            if ($eof || defined($rerr = $read_more->())) {
                return { %res, status => 0, error => 'truncated body (' . ($rerr // 'eof') . ')', body => $buf };
            }
        }
        $body = substr($buf, 0, $len);
        $buf = substr($buf, $len);
    } else {
        until ($eof) {
            my $err = $read_more->();
            return { %res, status => 0, error => $err, body => $buf } if defined $err;
        }
        $body = $buf;
        $buf = '';
    }
    $$bufref = $buf if $bufref;
    $res{body} = $body;
    $res{json} = json_decode($body);
    return \%res;
}

sub _connect {
    my ($port, $timeout) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => $timeout);
}

sub _head_lines {
    my ($headers) = @_;
    my @h = ref $headers eq 'HASH' ? map { [$_, $headers->{$_}] } sort keys %$headers
          : ref $headers eq 'ARRAY' ? do { my @a = @$headers; my @p; push @p, [splice(@a, 0, 2)] while @a; @p }
          : ();
    return grep { defined $_->[1] } @h;
}

# http_request(port =>, method =>, path =>, headers => {..} or [k, v, ...],
#              body =>, timeout => 30, sock => $existing, keepalive => 0)
# Adds Host, Connection: close (unless keepalive) and Content-Length (when a
# body is given and no Content-Length / Transfer-Encoding header is).
# Returns { status, reason, headers (lower-case keys), body, json, elapsed, error }.
# status 0 means a connection error/timeout (see error).
sub http_request {
    my (%a) = @_;
    my $timeout = $a{timeout} // 30;
    my $t0 = time;
    my $deadline = $t0 + $timeout;
    my $method = $a{method} // 'GET';
    my $sock = $a{sock} || _connect($a{port}, $timeout)
        or return { status => 0, error => "connect: $!", elapsed => time - $t0 };
    my @h = _head_lines($a{headers});
    my %have = map { lc($_->[0]) => 1 } @h;
    my $req = "$method " . ($a{path} // '/') . " HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $a{keepalive} || $have{connection};
    if (defined $a{body} && !$have{'content-length'} && !$have{'transfer-encoding'}) {
        $req .= "Content-Length: " . length($a{body}) . "\r\n";
    }
    $req .= "$_->[0]: $_->[1]\r\n" for @h;
    $req .= "\r\n";
    $req .= $a{body} if defined $a{body};
    my $err = _write_all($sock, $req, $deadline);
    # a server may answer (e.g. 413) and stop reading: still try to read
    my $buf = $a{bufref} ? ${ $a{bufref} } : '';
    my $res = _read_response($sock, $method, $deadline, \$buf);
    ${ $a{bufref} } = $buf if $a{bufref};
    $res->{write_error} = $err if $err;
    $res->{elapsed} = time - $t0;
    close $sock unless $a{keepalive} || $a{sock};
    return $res;
}

# raw_request(port =>, pieces => [bytes, ...], delay => seconds between
# pieces, method => 'POST', timeout =>): sends raw bytes, reads one response.
sub raw_request {
    my (%a) = @_;
    my $timeout = $a{timeout} // 30;
    my $t0 = time;
    my $deadline = $t0 + $timeout;
    my $sock = _connect($a{port}, $timeout)
        or return { status => 0, error => "connect: $!", elapsed => 0 };
    my $werr;
    my @pieces = @{ $a{pieces} };
    for my $i (0 .. $#pieces) {
        $werr = _write_all($sock, $pieces[$i], $deadline);
        last if $werr;
        sleep($a{delay}) if $a{delay} && $i < $#pieces;
    }
    my $buf = '';
    my $method = $a{method} // 'POST';
    my $res = _read_response($sock, $method, $deadline, \$buf);
    if ($method eq 'HEAD' || $a{drain}) {
        # whatever the server sends after the response, until it closes
        my $sel = IO::Select->new($sock);
        my $until = time + ($a{drain} || 3);
        while (time < $until && $sel->can_read($until - time)) {
            my $n = sysread($sock, $buf, 65536, length $buf);
            last unless $n;
        }
    }
    $res->{after} = $buf;
    $res->{write_error} = $werr if $werr;
    $res->{elapsed} = time - $t0;
    close $sock;
    return $res;
}

# chunked_request(port =>, path =>, headers =>, chunks => [..], delay =>):
# POST with Transfer-Encoding: chunked, one write per chunk.
sub chunked_request {
    my (%a) = @_;
    my $req = "POST " . ($a{path} // '/') . " HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nTransfer-Encoding: chunked\r\n";
    $req .= "$_->[0]: $_->[1]\r\n" for _head_lines($a{headers});
    $req .= "\r\n";
    my @pieces = ($req);
    push @pieces, sprintf("%x\r\n%s\r\n", length $_, $_) for grep { length } @{ $a{chunks} };
    push @pieces, "0\r\n\r\n";
    return raw_request(port => $a{port}, pieces => \@pieces, delay => $a{delay} // 0.02,
        timeout => $a{timeout});
}

# ---------------------------------------------------------------- assertions

sub dump_res {
    my ($res) = @_;
    return 'no response' unless $res;
    my $s = "status=$res->{status}";
    $s .= " error=$res->{error}" if $res->{error};
    $s .= " write_error=$res->{write_error}" if $res->{write_error};
    $s .= sprintf(" elapsed=%.3fs", $res->{elapsed}) if defined $res->{elapsed};
    $s .= "\n--- head:\n$res->{head}" if defined $res->{head};
    if (defined $res->{body}) {
        my $b = $res->{body};
        $b = substr($b, 0, 2000) . '...[' . length($b) . ' bytes]' if length $b > 2000;
        $s .= "\n--- body:\n$b";
    }
    return $s;
}

# _json_answer($res, $status): what is wrong with the status line and the
# JSON object body (a list of reasons), and the decoded object
sub _json_answer {
    my ($res, $status) = @_;
    my @why;
    push @why, "status $res->{status}, want $status" unless $res->{status} == $status;
    my $ct = $res->{headers} ? $res->{headers}{'content-type'} // '' : '';
    push @why, "content-type '$ct' is not application/json" unless $ct =~ m{^application/json\b}i;
    my $j = $res->{json};
    push @why, 'body is not a JSON object' unless ref $j eq 'HASH';
    return (\@why, ref $j eq 'HASH' ? $j : undef);
}

# _verdict($res, $why, $name): one test, with the reasons and the answer
# as diagnostics when it fails
sub _verdict {
    my ($res, $why, $name) = @_;
    my $tb = Test::More->builder;
    my $ok = $tb->ok(!@$why, $name);
    $tb->diag(join("\n", @$why) . "\n" . dump_res($res)) unless $ok;
    return $ok;
}

# is_json_error($res, $status, $code_or_arrayref_of_codes, $name)
sub is_json_error {
    my ($res, $status, $code, $name) = @_;
    my @codes = ref $code ? @$code : ($code);
    my ($why, $j) = _json_answer($res, $status);
    if ($j) {
        push @$why, "status field is not 'error'" unless ($j->{status} // '') eq 'error';
        push @$why, "error field '" . ($j->{error} // 'undef') . "' not in (@codes)"
            unless defined $j->{error} && grep { $_ eq $j->{error} } @codes;
        push @$why, 'message missing or empty'
            unless defined $j->{message} && !ref $j->{message} && length $j->{message};
    }
    return _verdict($res, $why, $name);
}

sub json_scalar { JSON::PP->new->allow_nonref->canonical->encode($_[0]) }

# is_batch_answer($res, {status =>, queued =>, duplicates =>, nids =>}, $name):
# 200, JSON with exactly status, queued, duplicates, ids.  Returns the ids.
sub is_batch_answer {
    my ($res, $want, $name) = @_;
    my ($why, $j) = _json_answer($res, 200);
    if ($j) {
        my @keys = sort keys %$j;
        push @$why, "fields (@keys), want (duplicates ids queued status)"
            unless "@keys" eq 'duplicates ids queued status';
        for my $f (qw(status queued duplicates)) {
            push @$why, "$f is " . json_scalar($j->{$f}) . ", want " . json_scalar($want->{$f})
                unless json_scalar($j->{$f}) eq json_scalar($want->{$f});
        }
        if (ref $j->{ids} ne 'ARRAY') {
            push @$why, 'ids is not an array';
        } elsif (defined $want->{nids} && @{ $j->{ids} } != $want->{nids}) {
            push @$why, scalar(@{ $j->{ids} }) . " ids, want $want->{nids}";
        }
    }
    _verdict($res, $why, $name);
    return $j && ref $j->{ids} eq 'ARRAY' ? @{ $j->{ids} } : ();
}

# is_queued($res, $priority, $name): 200, JSON {"status":"queued","id":..,"priority":..}
sub is_queued {
    my ($res, $priority, $name) = @_;
    my ($why, $j) = _json_answer($res, 200);
    if ($j) {
        push @$why, "status field is not 'queued'" unless ($j->{status} // '') eq 'queued';
        push @$why, "id is not 32 hex digits" unless ($j->{id} // '') =~ /^[0-9a-f]{32}\z/;
        push @$why, "priority '" . ($j->{priority} // 'undef') . "', want '$priority'"
            if defined $priority && ($j->{priority} // '') ne $priority;
        my @extra = grep { !/^(status|id|priority)\z/ } keys %$j;
        push @$why, "unexpected fields: @extra" if @extra;
    }
    return _verdict($res, $why, $name);
}

1;
