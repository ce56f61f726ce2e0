package WebhookOdoo;

# The Odoo stand-in (t/lib/odoo_standin.py) and the reconciler
# (docker/consumer/webhook-reconcile) for the reconciler's tests.
#
#   my $t = WebhookOdoo::setup(version => 17);     # or 19: {redis, ng, odoo}
#   my $odoo = WebhookOdoo->new(version => 17);     # the stand-in alone
#   $odoo->control(users => [...], subscribers => [...]);
#   my $ids = $odoo->control(events => [{...}])->{ids};
#   $odoo->stop; $odoo->start;                      # Odoo down and back
#   my ($rc, $out) = run_reconcile([--once ...], env => {...});
#   my $r = spawn_reconcile([...]); ... $r->stop;   # a long-running one
#
# Needs /usr/bin/python3 with redis-py (Debian: python3-redis), or
# CONSUMER_PYTHON; the stand-in needs the standard library only.

use strict;
use warnings;
use Exporter 'import';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use POSIX ();
use Time::HiRes qw(time sleep);
use WebhookTest;

our @EXPORT = qw(run_reconcile spawn_reconcile reconcile_python
    reconcile_skip_reason event in_redis reconcile_args summary reconciler_status);

our $PYTHON = $ENV{CONSUMER_PYTHON} || '/usr/bin/python3';
my $REPO = abs_path(dirname(abs_path(__FILE__)) . '/../..');
my $STANDIN = "$REPO/t/lib/odoo_standin.py";
my $RECONCILE = "$REPO/docker/consumer/webhook-reconcile";
our @LIVE;

sub reconcile_python { $PYTHON }

# why the tests cannot run here, or undef
sub reconcile_skip_reason {
    return "$PYTHON cannot import redis (install python3-redis)"
        unless system("$PYTHON -c 'import redis' >/dev/null 2>&1") == 0;
    return undef;
}

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        db      => $o{db} // 'odoo-prod',
        version => $o{version} // 17,
        port    => $o{port} // WebhookTest::free_port(),
        dir     => WebhookTest::make_dir('odoo'),
        owner   => $$,
    }, $class;
    push @LIVE, $self;
    $self->start;
    return $self;
}

sub port { $_[0]{port} }
sub url  { "http://127.0.0.1:$_[0]{port}" }
sub db   { $_[0]{db} }
sub dir  { $_[0]{dir} }

sub start {
    my ($self) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/standin.log";
        open STDERR, '>&', \*STDOUT;
        exec($PYTHON, $STANDIN, '--port', $self->{port}, '--data', "$self->{dir}/odoo.sqlite",
            '--db', $self->{db}, '--version', $self->{version}) or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    WebhookTest::wait_until(sub { WebhookTest::port_open($self->{port}) }, timeout => 20)
        or die "the Odoo stand-in did not listen:\n" . $self->log_text;
    return $self;
}

# stop(): Odoo down (the data stays in its file)
sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

sub log_text { WebhookTest::read_file("$_[0]{dir}/standin.log") // '' }

sub _call {
    my ($self, $method, $path, $body, $timeout) = @_;
    my $res = WebhookTest::http_request(port => $self->{port}, method => $method, path => $path,
        headers => { 'Content-Type' => 'application/json' },
        body => defined $body ? WebhookTest::json_encode($body) : undef,
        timeout => $timeout // 60);
    die "Odoo stand-in $path: " . WebhookTest::dump_res($res) . "\n" . $self->log_text
        unless $res->{status} == 200;
    return $res->{json};
}

# control(users => [...], subscribers => [...], events => [...], update =>
# [...], cron => {limit => n}, instant => [ids], generate => {...})
sub control {
    my ($self, %c) = @_;
    return $self->_call('POST', '/_control', \%c, $c{generate} ? 600 : 120);
}

sub events { $_[0]->_call('GET', '/_events') }
sub calls  { $_[0]->_call('GET', '/_log') }

sub _cleanup {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    $self->stop;
}

sub DESTROY { local $?; $_[0]->_cleanup }

# ---------------------------------------------------------------- the reconciler

# run_reconcile([args], env => {NAME => value}, timeout => 60, via =>
# 'consumer'): (exit code, stdout + stderr).  measure => 1: also its peak RSS in kB
# and its run time in seconds, from a Python wrapper (getrusage of the
# child): (exit code, output, peak RSS, seconds).
my $MEASURE = 'import resource, subprocess, sys, time; t = time.monotonic(); '
    . 'rc = subprocess.call(sys.argv[1:]); t = time.monotonic() - t; '
    . 'print("measured: maxrss_kb=%d seconds=%.2f" % (resource.getrusage('
    . 'resource.RUSAGE_CHILDREN).ru_maxrss, t), file=sys.stderr); sys.exit(rc)';

sub run_reconcile {
    my ($args, %o) = @_;
    local %ENV = (%ENV, PYTHONDONTWRITEBYTECODE => 1, %{ $o{env} || {} });
    delete $ENV{$_} for grep { !defined $ENV{$_} } keys %ENV;
    # via => 'consumer': as a mode of the consumer's command line
    my @cmd = $o{via} ? ($PYTHON, "$REPO/docker/consumer/webhook_consumer.py", 'reconcile', @$args)
        : ($PYTHON, $RECONCILE, @$args);
    @cmd = ($PYTHON, '-c', $MEASURE, @cmd) if $o{measure};
    my ($rc, $out) = WebhookTest::run_cmd(\@cmd, timeout => $o{timeout} // 60);
    return ($rc, $out) unless $o{measure};
    my ($kb, $secs) = $out =~ /^measured: maxrss_kb=(\d+) seconds=([\d.]+)$/m;
    return ($rc, $out, $kb, $secs);
}

# day($t, count => 5000, unack_every => 100, api => 'xmlrpc', page => 500):
# a day of events as the addon leaves them (WebhookOdoo::Addon.generate),
# then one pass, measured, and the spool drained.  Returns
# {unacknowledged => [ids], rc, out, summary, rss_kb, seconds, calls =>
# the stand-in's log of the pass, replays => the status's, by result}.
sub day {
    my ($t, %o) = @_;
    my $odoo = $t->{odoo};
    my $unack = $odoo->control(generate => { count => $o{count} // 5000, subscriber_id => 3,
        unack_every => $o{unack_every} // 100 })->{unacknowledged};
    $odoo->control(reset_log => 1);
    my ($rc, $out, $kb, $secs) = run_reconcile(reconcile_args($t, '--odoo-api', $o{api} // 'xmlrpc',
        '--page', $o{page} // 500, '--once'), measure => 1, timeout => $o{timeout} // 3600);
    # replays the module spooled (Redis slow, or away) reach Redis when
    # drained
    WebhookTest::wait_until(sub { (spool_events($t->{ng}) // 1) == 0 }, timeout => 600)
        or Test::More::diag('the spool did not drain');
    return { unacknowledged => $unack, rc => $rc, out => $out, summary => summary($out),
             rss_kb => $kb, seconds => $secs, calls => $odoo->calls,
             replays => (reconciler_status($t->{ng}))[1] };
}

# events of the queue waiting in nginx's spool
sub spool_events {
    my ($ng) = @_;
    my $j = $ng->request('GET', '/status')->{json} || {};
    return $j->{queues}{$WebhookOdoo::QUEUE}{spool}{events};
}

# spawn_reconcile([args], env => {...}): a reconciler in the background,
# its output in a file: ->log, ->pid, ->kill('KILL'), ->stop (TERM, wait)
sub spawn_reconcile {
    my ($args, %o) = @_;
    my $dir = WebhookTest::make_dir('reconcile');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        %ENV = (%ENV, PYTHONDONTWRITEBYTECODE => 1, %{ $o{env} || {} });
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/out.log";
        open STDERR, '>&', \*STDOUT;
        exec($PYTHON, $RECONCILE, @$args) or POSIX::_exit(127);
    }
    my $r = bless { pid => $pid, dir => $dir, owner => $$ }, 'WebhookOdoo::Reconciler';
    push @LIVE, $r;
    return $r;
}

# ---------------------------------------------------------------- a setup

our $TOKEN = 'tok-odoo-prod-3b9e1c57a2';
our $KEY = 'odoo-api-key-7f3a9c2e5b1d';
our $QUEUE = '{webhook}';
our $RECEIVE = '/api/v1/webhooks/receive';

# nginx's http block: the receive location of queue {webhook} in front of
# Redis, with the spool; limit => 1: limit_req 1 a minute (429); slow =>
# 'N': replays delayed to N a second; max_body => '1k'
sub http_conf {
    my ($redis, %o) = @_;
    my $extra = ($o{limit} ? 'limit_req zone=odoo nodelay; limit_req_status 429;' : '')
        . ($o{slow} ? 'limit_req zone=slow burst=1000;' : '');
    return 'webhook_redis 127.0.0.1:' . $redis->port . ";\n"
        . "webhook_redis_timeout 5s;\n"
        . "webhook_spool %%PREFIX%%/spool;\n"
        . "limit_req_zone \$server_name zone=odoo:1m rate=1r/m;\n"
        . "limit_req_zone \$server_name zone=slow:1m rate=" . ($o{slow} // 1) . "r/s;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n        server_name localhost;\n"
        . WebhookTest::receive_location(queue => $QUEUE, max_body => $o{max_body} // '1m',
            extra => $extra)
        . "        location = /status { webhook_status; }\n"
        . "    }\n";
}

# setup(version => 17): Redis (AOF: a restart keeps the queues), nginx,
# the Odoo stand-in with user "reconciler" (read rights) and subscriber 3
# posting to nginx with the token of sender odoo-prod; the API key and the
# token in files of the stand-in's folder.  Returns {redis, ng, odoo}.
sub setup {
    my (%o) = @_;
    my $redis = WebhookTest::start_redis(extra => ['--appendonly', 'yes', '--appendfsync', 'always']);
    my $ng = WebhookTest::start_nginx(files => { 'webhook.tokens' => "odoo-prod $TOKEN\n" },
        http => http_conf($redis, %o));
    my $odoo = WebhookOdoo->new(version => $o{version});
    my $dir = $odoo->dir;
    WebhookTest::write_file("$dir/key", "$KEY\n", 0600);
    WebhookTest::write_file("$dir/token", "$TOKEN\n", 0600);
    $odoo->control(
        users => [{ uid => 7, login => 'reconciler', key => $KEY,
                    models => ['webhook.event', 'webhook.subscriber'] }]);
    $odoo->subscriber($ng);
    return { redis => $redis, ng => $ng, odoo => $odoo };
}

# subscriber($ng, token => ..., timeout => 30): subscriber 3, as Odoo has it
sub subscriber {
    my ($self, $ng, %o) = @_;
    $self->control(subscribers => [{ id => 3, name => 'nginx', endpoint_url => $ng->url($RECEIVE),
        auth_token => $o{token} // $TOKEN, timeout => $o{timeout} // 30 }]);
}

# reconfigure($t, %http_conf_options): nginx reloaded with another http block
sub reconfigure {
    my ($t, %o) = @_;
    $t->{ng}->set(http => http_conf($t->{redis}, %o));
    $t->{ng}->reload(wait_old => 1) or die 'nginx reload failed';
}

my $EVENT;

# event(field => value): a webhook.event as the addon creates it (pending,
# of subscriber 3, the data of t/data/odoo-event.json)
sub event {
    $EVENT //= WebhookTest::sample_json('odoo-event.json');
    return { model => 'sale.order', record_id => $EVENT->{record_id}, event => 'write',
             priority => 'high', category => 'business', payload => $EVENT->{data},
             changed_fields => $EVENT->{changed_fields}, subscriber_id => 3, @_ };
}

# new_events(event(...), ...): their ids
sub new_events { my ($self, @evs) = @_; @{ $self->control(events => \@evs)->{ids} } }

# in_redis($redis): the envelopes of the queue's lists: {event_id => count}
sub in_redis {
    my ($redis) = @_;
    my %n;
    for my $p (qw(high medium low)) {
        for my $raw ($redis->lrange("$QUEUE:queue:$p")) {
            my $env = WebhookTest::json_decode($raw) or next;
            $n{ $env->{event_id} // 'none' }++;
        }
    }
    return \%n;
}

# reconcile_args($t, more args): the command line against this setup
sub reconcile_args {
    my ($t, @more) = @_;
    my $dir = $t->{odoo}->dir;
    return ['--odoo-url', $t->{odoo}->url, '--odoo-db', 'odoo-prod', '--odoo-user', 'reconciler',
        '--odoo-key-file', "$dir/key", '--subscriber-id', 3,
        '--receive-url', $t->{ng}->url($RECEIVE), '--token-file', "$dir/token",
        '--redis', 'redis://127.0.0.1:' . $t->{redis}->port . '/0', '--queue', $QUEUE,
        '--interval', '1s', '--grace', '5m', '--page', 4, @more];
}

# the summary line that --once prints
sub summary {
    my ($out) = @_;
    my ($line) = $out =~ /^(\{.*\})$/m;
    return WebhookTest::json_decode($line // '{}') || {};
}

# the status of the reconciler odoo-prod/3, and the queue's replays
sub reconciler_status {
    my ($ng) = @_;
    my $qo = $ng->request('GET', '/status')->{json}{queues}{$QUEUE} || {};
    return ($qo->{reconcilers} ? $qo->{reconcilers}{'odoo-prod/3'} : undef, $qo->{replays} || {});
}

package WebhookOdoo::Reconciler;

sub pid { $_[0]{pid} }
sub log_text { WebhookTest::read_file("$_[0]{dir}/out.log") // '' }

sub kill {
    my ($self, $sig) = @_;
    my $pid = delete $self->{pid} or return;
    kill $sig // 'KILL', $pid;
    waitpid($pid, 0);
    return $?;
}

# stop(): TERM, and its exit status
sub stop { $_[0]->kill('TERM') }

sub _cleanup { my $s = shift; $s->kill('KILL') if $s->{owner} == $$ }
sub DESTROY { local $?; $_[0]->_cleanup }

package WebhookOdoo;

END {
    local $?;
    $_->_cleanup for grep { defined } reverse @LIVE;
    @LIVE = ();
}

1;
