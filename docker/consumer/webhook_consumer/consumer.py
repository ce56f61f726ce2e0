"""The consumer: takes envelopes by priority with the reliable pattern
(each one moved atomically to a processing list of this consumer, handed
to a handler, removed only when the handler has returned), retries
failures with exponential backoff, dead-letters them after N attempts,
holds its name with a lease, and takes back the events of consumers whose
lease has expired.  Redis >= 6.2.

What it survives: every Redis error (connection lost, READONLY, OOM, BUSY,
a wrong password ...) is waited out with backoff, never an exit, and the
ack of a handled event is retried until Redis takes it; a handler past
HANDLER_TIMEOUT is interrupted and its event counts as a failed attempt
(one that ignores the interruption makes the process exit with code 4);
any exception from a handler, BaseException included, is a failed
attempt; an envelope no decoder reads is dead-lettered under its id."""

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import redis

from .keeper import Job, LeaseKeeper, RedisRetry
from .scripts import Scripts
from .shared import (PRIORITIES, Defer, HandlerTimeout, Keys, LeaseError,
                     Reject, env_value, envelope_id, envelope_priority,
                     parse_envelope)

log = logging.getLogger(__name__)

# exit code of a consumer whose handler ignored its interruption
EXIT_HANDLER_STUCK = 4


@dataclass
class Config:
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "{webhook}"
    name: str = ""
    handler: str = "webhook_consumer:log_event"
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    block_timeout: float = 1.0
    lease_ttl: float = 30.0
    handler_timeout: float = 0.0    # 0: two thirds of lease_ttl
    drain: bool = False

    def __post_init__(self):
        if not self.name:
            self.name = socket.gethostname()

    @classmethod
    def from_env(cls):
        return cls(
            redis_url=env_value("REDIS_URL", cls.redis_url),
            queue=env_value("WEBHOOK_QUEUE", cls.queue),
            name=env_value("CONSUMER_NAME", ""),
            handler=env_value("WEBHOOK_HANDLER", cls.handler),
            max_attempts=env_value("MAX_ATTEMPTS", cls.max_attempts, int),
            backoff_base=env_value("BACKOFF_BASE", cls.backoff_base, float),
            backoff_max=env_value("BACKOFF_MAX", cls.backoff_max, float),
            block_timeout=env_value("BLOCK_TIMEOUT", cls.block_timeout,
                                    float),
            lease_ttl=env_value("LEASE_TTL", cls.lease_ttl, float),
            handler_timeout=env_value("HANDLER_TIMEOUT",
                                      cls.handler_timeout, float),
        )

    @property
    def handler_deadline(self):
        """Seconds a handler may run: HANDLER_TIMEOUT, by default two
        thirds of the lease TTL."""
        return self.handler_timeout or self.lease_ttl * 2 / 3

    @property
    def handler_grace(self):
        """Seconds an interrupted handler has to return before the
        consumer exits: as long as HANDLER_TIMEOUT, at most 5."""
        return min(5.0, self.handler_deadline)

    def check(self):
        """Return a list of what is wrong with the settings."""
        errors = []
        if self.max_attempts < 1:
            errors.append("max attempts must be 1 or more")
        if self.backoff_base <= 0 or self.backoff_max < self.backoff_base:
            errors.append("backoff: need 0 < base <= max")
        if self.block_timeout < 0.01:
            errors.append("block timeout must be at least 0.01 s")
        if self.lease_ttl < 1:
            errors.append("lease TTL must be at least 1 s")
        elif self.block_timeout > self.lease_ttl / 3:
            errors.append("block timeout must be at most a third of the "
                          "lease TTL")
        if self.handler_timeout < 0:
            errors.append("handler timeout must not be negative")
        elif self.handler_deadline >= self.lease_ttl:
            errors.append("handler timeout must be shorter than the lease "
                          "TTL")
        if not self.queue or not self.name:
            errors.append("queue prefix and consumer name must not be empty")
        return errors


def log_event(envelope):
    """The default handler: log one line per event."""
    log.info("event id=%s priority=%s model=%s record_id=%s event=%s "
             "event_id=%s", envelope.get("id"), envelope.get("priority"),
             envelope.get("model"), envelope.get("record_id"),
             envelope.get("event"), envelope.get("event_id"))


# ------------------------------------------------------------------ consumer

class Consumer:
    """One consumer: a name, a Redis connection, a handler."""

    def __init__(self, config, handler=None, client=None):
        self.config = config
        self.keys = Keys(config.queue)
        self.handler = handler or log_event
        self.redis = client or redis.Redis.from_url(
            config.redis_url, socket_connect_timeout=5,
            socket_timeout=config.block_timeout + 10,
            health_check_interval=30)
        self.token = "%s:%d:%s" % (socket.gethostname(), os.getpid(),
                                   uuid.uuid4().hex[:8])
        self.processing = self.keys.processing(config.name)
        self.stopping = False
        self.resync = False
        self.paused_until = 0.0     # time.monotonic() after a Defer
        self.job = None             # the handler run, a keeper.Job
        self.keeper = None
        self._job_lock = threading.Lock()
        self._in_handler = False
        self._timed_out = False
        self._next_reclaim = 0.0
        self._trouble = RedisRetry(log)
        self._scripts = Scripts(self.redis, log)

    # ---- leases

    def _lease_call(self, name, register):
        return self._scripts.lease(
            keys=[self.keys.lease(name), self.keys.consumers],
            args=[self.token, int(self.config.lease_ttl * 1000), name,
                  "1" if register else "0"])

    def acquire_lease(self, name, wait=0.0):
        """Hold the lease of `name`, waiting up to `wait` s; True if held.
        The consumer's own name is registered in <q>:consumers too."""
        register = name == self.config.name
        deadline = time.monotonic() + wait
        while True:
            if self._lease_call(name, register) == 1:
                return True
            if time.monotonic() >= deadline or self.stopping:
                return False
            time.sleep(0.5)

    def release_lease(self, name):
        self._scripts.release(
            keys=[self.keys.lease(name), self.keys.processing(name),
                  self.keys.consumers],
            args=[self.token, name])

    def renew_lease(self):
        """Renew our lease (the keeper's thread calls it); returns None, or
        the holder (bytes) that took our name over."""
        if self._lease_call(self.config.name, True) == 1:
            return None
        return self.redis.get(self.keys.lease(self.config.name)) or b"?"

    # ---- state transitions

    def fail(self, priority, raw, eid, error, reject=False, name=None,
             reclaim=False):
        """Count a failed attempt; returns (outcome, attempts, delay)."""
        c = self.config
        k = self.keys
        outcome, attempts, delay = self._scripts.fail(
            keys=[k.processing(name or c.name), k.attempts, k.retry(priority),
                  k.dead(priority), k.failures, k.consumers, k.reclaimed],
            args=[raw, eid, c.max_attempts, repr(c.backoff_base),
                  repr(c.backoff_max), "1" if reject else "0", error[:2000],
                  name or c.name, priority, "%.3f" % time.time(),
                  "1" if reclaim else "0"])
        return outcome.decode(), attempts, float(delay)

    def ack(self, raw, eid):
        """Remove a handled envelope; False if it was no longer ours."""
        return self._scripts.settle(
            keys=[self.processing, self.keys.consumers, self.keys.attempts],
            args=[raw, self.config.name, "ack", eid]) == 1

    def _requeue(self, raw, priority):
        """Back to the front of its queue (no handler saw it, or a Defer);
        False if it was no longer ours."""
        return self._scripts.settle(
            keys=[self.processing, self.keys.consumers,
                  self.keys.queue(priority)],
            args=[raw, self.config.name, "requeue"]) == 1

    def recover(self, name, reclaim=False):
        """Recover the processing list of consumer `name`, whose lease the
        caller holds: each envelope left there counts as a failed attempt
        ("consumer died while handling it") and is retried or dead-lettered,
        oldest first.  Returns how many envelopes were recovered."""
        count = 0
        key = self.keys.processing(name)
        # oldest (right end) first
        for raw in reversed(self.redis.lrange(key, 0, -1)):
            priority = envelope_priority(raw)
            eid = envelope_id(raw)
            outcome, attempts, delay = self.fail(
                priority, raw, eid, "consumer %s died while handling it"
                % name, name=name, reclaim=reclaim)
            if outcome == "gone":
                continue
            count += 1
            log.warning("recovered event %s (%s) from %s: attempt %d, %s",
                        eid, priority, key, attempts,
                        "dead-lettered" if outcome == "dead"
                        else "retry in %.3gs" % delay)
        return count

    def _recover_other(self, name, reclaim=False):
        """recover() the list of another consumer, if its lease can be
        taken (it expired); None when that consumer is alive."""
        if not self.acquire_lease(name):
            return None
        try:
            return self.recover(name, reclaim)
        finally:
            self.release_lease(name)

    def recover_all(self):
        """Recover the processing lists of every consumer without a lease
        (dead ones), found by SCAN; returns {consumer name: envelopes
        recovered}."""
        done = {}
        prefix = self.keys.processing("").encode()
        for key in self.redis.scan_iter(match=self.keys.processing_pattern(),
                                        count=100):
            name = key[len(prefix):].decode("utf-8", "replace")
            n = self._recover_other(name)
            if n is None:
                log.info("consumer %s is alive, its list is left alone", name)
                continue
            done[name] = n
        return done

    def reclaim(self):
        """Take back the events of every registered consumer whose lease
        has expired (it died and was not started again under its name), as
        recover_all() does; counted in <q>:reclaimed.  Returns how many."""
        names = [m.decode("utf-8", "replace") for m in
                 self.redis.zrange(self.keys.consumers, 0, -1)]
        names = [n for n in names if n != self.config.name]
        if not names:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.exists(self.keys.lease(name))
        total = 0
        for name, alive in zip(names, pipe.execute()):
            n = None if alive else self._recover_other(name, reclaim=True)
            if n:
                log.warning("reclaimed %d event(s) of consumer %s, whose "
                            "lease expired", n, name)
                total += n
        return total

    def _resync(self):
        """After a lost connection: an envelope may have been moved to our
        processing list without our seeing the reply.  No handler saw it,
        so put it back at the front of its queue."""
        for raw in self.redis.lrange(self.processing, 0, -1):
            priority = envelope_priority(raw)
            if self._requeue(raw, priority):
                log.warning("requeued event %s (%s) after a lost connection",
                            envelope_id(raw), priority)
        self.resync = False

    # ---- the loop

    def take(self):
        """Next (priority, envelope) or None, blocking up to the block
        timeout (shorter when a retry falls due sooner)."""
        k = self.keys
        idx, value = self._scripts.take(
            keys=[k.queue(p) for p in PRIORITIES]
            + [k.retry(p) for p in PRIORITIES]
            + [self.processing, k.consumers],
            args=[100, self.config.name])
        if idx:
            return PRIORITIES[idx - 1], value
        next_due = float(value)
        if self.config.drain and next_due < 0:
            self.stopping = True    # queues and retries empty
            return None
        wait = self.config.block_timeout
        if 0 <= next_due < wait:
            wait = max(0.01, next_due)
        # BLMOVE watches one list only: block on high; medium and low are
        # seen by the next take, within `wait` seconds
        raw = self.redis.blmove(k.queue("high"), self.processing, wait,
                                src="RIGHT", dest="LEFT")
        if raw is None:
            return None
        try:
            self._scripts.stamp(keys=[self.processing, k.consumers],
                                args=[self.config.name])
        except redis.RedisError:
            self.resync = True      # no handler saw it: back to the queue
            raise
        return "high", raw

    def handle(self, priority, raw):
        """Run the handler on one envelope, then ack, retry or dead-letter."""
        try:
            env = parse_envelope(raw)
        except ValueError as e:
            self._settle_failure(priority, raw, envelope_id(raw),
                                 "invalid envelope: %s" % e, True)
            return
        eid = envelope_id(raw, env)
        log.debug("handling event %s (%s)", eid, priority)
        outcome, error = self._run_handler(priority, raw, eid, env)
        if outcome == "done":
            if not self._retry_redis(lambda: self.ack(raw, eid)):
                log.warning("event %s was taken from %s by a recovery while "
                            "being handled; it may be handled again",
                            eid, self.processing)
        elif outcome == "defer":
            self._defer(priority, raw, eid, error)
        else:
            self._settle_failure(priority, raw, eid, error,
                                 outcome == "reject")

    def _run_handler(self, priority, raw, eid, env):
        """Call the handler within its deadline; returns ("done", None),
        ("defer", the Defer), or ("reject"|"failed", the error text)."""
        c = self.config
        job = Job(priority, raw, eid, time.monotonic() + c.handler_deadline,
                  c.handler_grace)
        self._timed_out = False
        with self._job_lock:
            self.job = job
        try:
            try:
                self._in_handler = True
                self._alarm(c.handler_deadline)
                self.handler(env)
            finally:
                self._in_handler = False
                self._alarm(0)
        except HandlerTimeout as e:
            result = ("failed", "HandlerTimeout: %s" % e)
        except Reject as e:
            result = ("reject", "rejected: %s" % (e or type(e).__name__))
        except Defer as e:
            result = ("defer", e)
        except BaseException as e:
            result = ("failed", "%s: %s" % (type(e).__name__, e))
        else:
            result = ("done", None)
        with self._job_lock:
            self.job = None
            abandoned = job.abandoned
        if abandoned:
            # the keeper counts the attempt and ends the process
            while True:
                time.sleep(1)
        if self._timed_out and result[0] != "failed":
            # it caught the interruption and returned: not done in time
            result = ("failed", "HandlerTimeout: %s" % self._timeout_text())
        if self._timed_out:
            log.error("event %s (%s): the handler did not return within "
                      "%gs (HANDLER_TIMEOUT); interrupted", eid, priority,
                      c.handler_deadline)
        return result

    def _timeout_text(self):
        return "the handler did not return within %gs (HANDLER_TIMEOUT)" \
            % self.config.handler_deadline

    def _alarm(self, seconds):
        """SIGALRM in `seconds` (0: none), when this is the main thread."""
        if self._alarm_set:
            signal.setitimer(signal.ITIMER_REAL, seconds)

    def _on_alarm(self, signum, frame):
        if self._in_handler:
            self._timed_out = True
            raise HandlerTimeout(self._timeout_text())

    def abandon(self, job):
        """The keeper's thread: the handler of `job` ignored its
        interruption.  Count the failed attempt, give the name up and exit
        with EXIT_HANDLER_STUCK, for the supervisor to start the consumer
        again: the handler's thread cannot be stopped otherwise."""
        with self._job_lock:
            if self.job is not job:
                return
            job.abandoned = True
        log.critical("event %s (%s): the handler ignored the interruption "
                     "at HANDLER_TIMEOUT (%gs) and still runs; counting a "
                     "failed attempt and exiting with code %d for the "
                     "supervisor to start the consumer again", job.eid,
                     job.priority, self.config.handler_deadline,
                     EXIT_HANDLER_STUCK)
        try:
            outcome, attempts, _ = self.fail(
                job.priority, job.raw, job.eid,
                "HandlerTimeout: %s, and it ignored the interruption"
                % self._timeout_text())
            log.error("event %s (%s): %s after %d attempt(s)", job.eid,
                      job.priority, outcome, attempts)
            self.release_lease(self.config.name)
        except redis.RedisError as e:
            log.error("redis: %s; the event is recovered at the next start",
                      e)
        logging.shutdown()
        os._exit(EXIT_HANDLER_STUCK)

    def _settle_failure(self, priority, raw, eid, error, reject):
        outcome, attempts, delay = self._retry_redis(
            lambda: self.fail(priority, raw, eid, error, reject))
        if outcome == "dead":
            log.error("event %s (%s) dead-lettered to %s after %d "
                      "attempt(s): %s", eid, priority,
                      self.keys.dead(priority), attempts, error)
        elif outcome == "retry":
            log.warning("event %s (%s) failed (attempt %d of %d), retry in "
                        "%.3gs: %s", eid, priority, attempts,
                        self.config.max_attempts, delay, error)
        else:
            log.warning("event %s was taken from %s by a recovery while "
                        "being handled", eid, self.processing)

    def _defer(self, priority, raw, eid, e):
        """Back to the front of its queue, no attempt counted; pause."""
        delay = min(max(e.delay, 0.0), self.config.backoff_max)
        if self._retry_redis(lambda: self._requeue(raw, priority)):
            log.info("event %s (%s) deferred, taking nothing for %.3gs: %s",
                     eid, priority, delay, e or "deferred by the handler")
        else:
            log.warning("event %s was taken from %s by a recovery while "
                        "being handled", eid, self.processing)
        self.paused_until = time.monotonic() + delay

    def _retry_redis(self, call):
        """Run `call` until Redis takes it, whatever it answers meanwhile
        (a handled event must never be handled again because its ack was
        refused), also while stopping: a second signal ends the wait."""
        while True:
            try:
                result = call()
            except redis.RedisError as e:
                time.sleep(self._trouble.failed(e))
                continue
            self._trouble.ok()
            return result

    def _signals(self, install):
        """SIGTERM and SIGINT stop after the current event, SIGALRM ends a
        handler at its deadline: in the main thread only."""
        if install:
            self._alarm_set = \
                threading.current_thread() is threading.main_thread()
            if not self._alarm_set:
                return
            self._saved_signals = {
                s: signal.signal(s, h) for s, h in (
                    (signal.SIGTERM, self._on_stop),
                    (signal.SIGINT, self._on_stop),
                    (signal.SIGALRM, self._on_alarm))}
        elif self._alarm_set:
            for s, h in self._saved_signals.items():
                signal.signal(s, h)
            self._alarm_set = False

    _alarm_set = False

    def _on_stop(self, signum, frame):
        log.info("%s: finishing the current event, then stopping "
                 "(again to stop at once)", signal.Signals(signum).name)
        self.stop()
        signal.signal(signum, signal.SIG_DFL)

    def run(self):
        """Take and handle events until stop() (SIGTERM) or, with drain,
        until the queues and retries are empty.  Returns an exit code: 0,
        or 3 when the name is (or was taken) in use by another process."""
        c = self.config
        log.info("consumer %s on %s, queue %s, handler %s, max attempts %d, "
                 "handler timeout %gs", c.name, redact_url(c.redis_url),
                 c.queue, getattr(self.handler, "__qualname__", self.handler),
                 c.max_attempts, c.handler_deadline)
        self._signals(True)
        try:
            return self._run()
        finally:
            self._signals(False)

    def _run(self):
        c = self.config
        if not self._retry_redis(
                lambda: self.acquire_lease(c.name, wait=c.lease_ttl + 1)):
            if self.stopping:
                return 0
            log.error("consumer name %r is in use by %s; give every "
                      "consumer its own CONSUMER_NAME", c.name,
                      self._retry_redis(
                          lambda: self.redis.get(self.keys.lease(c.name))))
            return 3
        self.keeper = LeaseKeeper(self, log)
        self.keeper.start()
        try:
            n = self._retry_redis(lambda: self.recover(c.name))
            if n:
                log.warning("recovered %d event(s) left by a previous run", n)
            while not self.stopping:
                if self.keeper.lost is not None:
                    raise LeaseError("consumer name %r was taken over by %s"
                                     % (c.name, self.keeper.lost))
                try:
                    item = self._step()
                except redis.RedisError as e:
                    self.resync = True
                    time.sleep(self._trouble.failed(e))
                    continue
                self._trouble.ok()
                if item is not None:
                    self.handle(*item)
        except LeaseError as e:
            log.error("%s; stopping", e)
            return 3
        finally:
            self.keeper.stop()
            try:
                self.release_lease(c.name)
            except redis.RedisError:
                pass
        log.info("consumer %s stopped", c.name)
        return 0

    def _step(self):
        """One turn of the loop: reclaim when due, resync, pause or take."""
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.config.lease_ttl / 3
            self.reclaim()
        if self.resync:
            self._resync()
        pause = self.paused_until - time.monotonic()
        if pause > 0:
            # a handler deferred: wait (the keeper renews the lease)
            time.sleep(min(pause, self.config.block_timeout))
            return None
        return self.take()

    def stop(self):
        self.stopping = True

    # ---- dead letters

    def redrive(self, priorities=PRIORITIES, count=None):
        """Move up to `count` (None: all) dead letters of each priority,
        oldest first, to the back of their queue: at most what was dead
        when it started, so that events a consumer fails again meanwhile
        are not moved twice.  Returns {priority: n}."""
        moved = {}
        for p in priorities:
            n = 0
            most = self.redis.llen(self.keys.dead(p))
            if count is not None:
                most = min(most, count)
            while n < most:
                raw = self.redis.lmove(self.keys.dead(p), self.keys.queue(p),
                                       src="RIGHT", dest="LEFT")
                if raw is None:
                    break
                self.redis.hdel(self.keys.failures, envelope_id(raw))
                n += 1
            moved[p] = n
            if n:
                log.info("redrove %d event(s) from %s to %s", n,
                         self.keys.dead(p), self.keys.queue(p))
        return moved

    def dead_letters(self, priorities=PRIORITIES, count=None):
        """Yield dicts: priority, id, failure (info or None), envelope text;
        oldest first, at most `count` (None: all) per priority."""
        for p in priorities:
            start = 0 if count is None else -count
            for raw in reversed(self.redis.lrange(self.keys.dead(p), start,
                                                  -1)):
                eid = envelope_id(raw)
                info = self.redis.hget(self.keys.failures, eid)
                yield {"priority": p, "id": eid,
                       "failure": json.loads(info) if info else None,
                       "envelope": raw.decode("utf-8", "replace")}


def redact_url(url):
    """The Redis URL without its password, for the log."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
