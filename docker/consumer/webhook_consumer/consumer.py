"""The consumer: takes envelopes by priority with the reliable pattern
(each one moved atomically to a processing list of this consumer, handed
to a handler, removed only when the handler has returned), retries
failures with exponential backoff, dead-letters them after N attempts,
and holds its name with a lease.  Redis >= 6.2."""

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import redis

from .scripts import (FAIL_LUA, LEASE_LUA, RELEASE_LUA, REQUEUE_LUA,
                      TAKE_LUA)
from .shared import (PRIORITIES, Defer, Keys, LeaseError, Reject,
                     env_value, envelope_id, envelope_priority,
                     parse_envelope)

log = logging.getLogger(__name__)


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
        )

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
        self._lease_renewed = 0.0
        self._take = self.redis.register_script(TAKE_LUA)
        self._fail = self.redis.register_script(FAIL_LUA)
        self._requeue = self.redis.register_script(REQUEUE_LUA)
        self._lease = self.redis.register_script(LEASE_LUA)
        self._release = self.redis.register_script(RELEASE_LUA)

    # ---- leases

    def acquire_lease(self, name, wait=0.0):
        """Hold the lease of `name`, waiting up to `wait` s; True if held."""
        key = self.keys.lease(name)
        ttl_ms = int(self.config.lease_ttl * 1000)
        deadline = time.monotonic() + wait
        while True:
            if self._lease(keys=[key], args=[self.token, ttl_ms]) == 1:
                return True
            if time.monotonic() >= deadline or self.stopping:
                return False
            time.sleep(0.5)

    def release_lease(self, name):
        self._release(keys=[self.keys.lease(name)], args=[self.token])

    def renew_lease(self):
        """Renew our lease every third of its TTL; LeaseError if lost."""
        now = time.monotonic()
        if now - self._lease_renewed < self.config.lease_ttl / 3:
            return
        if not self.acquire_lease(self.config.name):
            raise LeaseError("consumer name %r was taken over by %s"
                             % (self.config.name, self.redis.get(
                                 self.keys.lease(self.config.name))))
        self._lease_renewed = now

    # ---- state transitions

    def fail(self, priority, raw, eid, error, reject=False, name=None):
        """Count a failed attempt; returns (outcome, attempts, delay)."""
        c = self.config
        outcome, attempts, delay = self._fail(
            keys=[self.keys.processing(name or c.name), self.keys.attempts,
                  self.keys.retry(priority), self.keys.dead(priority),
                  self.keys.failures],
            args=[raw, eid, c.max_attempts, repr(c.backoff_base),
                  repr(c.backoff_max), "1" if reject else "0", error[:2000],
                  name or c.name, priority, "%.3f" % time.time()])
        return outcome.decode(), attempts, float(delay)

    def ack(self, raw, eid):
        """Remove a handled envelope; False if it was no longer ours."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(self.processing, 1, raw)
        pipe.hdel(self.keys.attempts, eid)
        removed, _ = pipe.execute()
        return removed == 1

    def recover(self, name):
        """Recover the processing list of consumer `name`, whose lease the
        caller holds: each envelope left there counts as a failed attempt
        ("consumer died while handling it") and is retried or dead-lettered.
        Returns how many envelopes were recovered."""
        count = 0
        key = self.keys.processing(name)
        # oldest (right end) first
        for raw in reversed(self.redis.lrange(key, 0, -1)):
            priority = envelope_priority(raw)
            eid = envelope_id(raw)
            outcome, attempts, delay = self.fail(
                priority, raw, eid, "consumer %s died while handling it"
                % name, name=name)
            if outcome == "gone":
                continue
            count += 1
            log.warning("recovered event %s (%s) from %s: attempt %d, %s",
                        eid, priority, key, attempts,
                        "dead-lettered" if outcome == "dead"
                        else "retry in %.3gs" % delay)
        return count

    def recover_all(self):
        """Recover the processing lists of every consumer without a lease
        (dead ones); returns {consumer name: envelopes recovered}."""
        done = {}
        prefix = self.keys.processing("").encode()
        for key in self.redis.scan_iter(match=self.keys.processing_pattern(),
                                        count=100):
            name = key[len(prefix):].decode("utf-8", "replace")
            if not self.acquire_lease(name):
                log.info("consumer %s is alive, its list is left alone", name)
                continue
            try:
                done[name] = self.recover(name)
            finally:
                self.release_lease(name)
        return done

    def _resync(self):
        """After a lost connection: an envelope may have been moved to our
        processing list without our seeing the reply.  No handler saw it,
        so put it back at the front of its queue."""
        for raw in self.redis.lrange(self.processing, 0, -1):
            priority = envelope_priority(raw)
            if self._requeue(keys=[self.processing, self.keys.queue(priority)],
                             args=[raw]):
                log.warning("requeued event %s (%s) after a lost connection",
                            envelope_id(raw), priority)
        self.resync = False

    # ---- the loop

    def take(self):
        """Next (priority, envelope) or None, blocking up to the block
        timeout (shorter when a retry falls due sooner)."""
        k = self.keys
        idx, value = self._take(
            keys=[k.queue(p) for p in PRIORITIES]
            + [k.retry(p) for p in PRIORITIES] + [self.processing],
            args=[100])
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
        return ("high", raw) if raw is not None else None

    def handle(self, priority, raw):
        """Run the handler on one envelope, then ack, retry or dead-letter."""
        try:
            env = parse_envelope(raw)
        except ValueError as e:
            eid = envelope_id(raw, {})
            self._settle_failure(priority, raw, eid,
                                 "invalid envelope: %s" % e, True)
            return
        eid = envelope_id(raw, env)
        log.debug("handling event %s (%s)", eid, priority)
        try:
            self.handler(env)
        except Reject as e:
            self._settle_failure(priority, raw, eid,
                                 "rejected: %s" % (e or type(e).__name__),
                                 True)
        except Defer as e:
            self._defer(priority, raw, eid, e)
        except Exception as e:
            self._settle_failure(priority, raw, eid,
                                 "%s: %s" % (type(e).__name__, e), False)
        else:
            if not self._retry_redis(lambda: self.ack(raw, eid)):
                log.warning("event %s was taken from %s by a recovery while "
                            "being handled; it may be handled again",
                            eid, self.processing)

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
        if self._retry_redis(lambda: self._requeue(
                keys=[self.processing, self.keys.queue(priority)],
                args=[raw])):
            log.info("event %s (%s) deferred, taking nothing for %.3gs: %s",
                     eid, priority, delay, e or "deferred by the handler")
        else:
            log.warning("event %s was taken from %s by a recovery while "
                        "being handled", eid, self.processing)
        self.paused_until = time.monotonic() + delay

    def _retry_redis(self, call):
        """Run `call` until Redis answers (the settle steps must not be
        lost on a connection blip); gives up only when stopping."""
        delay = 0.1
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as e:
                if self.stopping:
                    raise
                log.warning("redis: %s; retrying in %.1fs", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def run(self):
        """Take and handle events until stop() (SIGTERM) or, with drain,
        until the queues and retries are empty.  Returns an exit code."""
        c = self.config
        log.info("consumer %s on %s, queue %s, handler %s, max attempts %d",
                 c.name, redact_url(c.redis_url), c.queue,
                 getattr(self.handler, "__qualname__", self.handler),
                 c.max_attempts)
        if not self._retry_redis(
                lambda: self.acquire_lease(c.name, wait=c.lease_ttl + 1)):
            if self.stopping:
                return 0
            log.error("consumer name %r is in use by %s; give every "
                      "consumer its own CONSUMER_NAME", c.name,
                      self.redis.get(self.keys.lease(c.name)))
            return 3
        self._lease_renewed = time.monotonic()
        try:
            n = self._retry_redis(lambda: self.recover(c.name))
            if n:
                log.warning("recovered %d event(s) left by a previous run", n)
            delay = 0.1
            while not self.stopping:
                try:
                    self.renew_lease()
                    if self.resync:
                        self._resync()
                    pause = self.paused_until - time.monotonic()
                    if pause > 0:
                        # a handler deferred: wait, renewing the lease
                        time.sleep(min(pause, c.block_timeout))
                        continue
                    item = self.take()
                    delay = 0.1
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    log.warning("redis: %s; retrying in %.1fs", e, delay)
                    self.resync = True
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if item is not None:
                    self.handle(*item)
        except LeaseError as e:
            log.error("%s; stopping", e)
            return 3
        except redis.RedisError as e:
            log.error("redis: %s; stopping", e)
            return 1
        finally:
            try:
                self.release_lease(c.name)
            except redis.RedisError:
                pass
        log.info("consumer %s stopped", c.name)
        return 0

    def stop(self):
        self.stopping = True

    # ---- dead letters

    def redrive(self, priorities=PRIORITIES, count=None):
        """Move up to `count` (None: all) dead letters of each priority,
        oldest first, to the back of their queue.  Returns {priority: n}."""
        moved = {}
        for p in priorities:
            n = 0
            while count is None or n < count:
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
