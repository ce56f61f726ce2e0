"""What keeps a consumer going: RedisRetry paces and logs a streak of Redis
errors (every one is transient for a long-running consumer), and
LeaseKeeper renews the consumer's lease from a thread of its own while a
handler runs, and ends the process when a handler ignores its
interruption at HANDLER_TIMEOUT."""

import threading
import time


class RedisRetry:
    """One streak of Redis errors: failed() returns the wait before the
    next try (0.1 s, doubling, at most 2 s) and logs the error at error
    level: the first one, a change of reason, else once every 30 s; ok()
    ends the streak with a line saying how long it lasted."""

    def __init__(self, log, what="redis"):
        self.log = log
        self.what = what
        self._reset()

    def _reset(self):
        self.since = None
        self.tries = 0
        self.delay = 0.1
        self.reason = None
        self.logged = 0.0

    def failed(self, error):
        now = time.monotonic()
        reason = "%s: %s" % (type(error).__name__, error)
        if self.since is None:
            self.since = now
        self.tries += 1
        if reason != self.reason or now - self.logged >= 30:
            self.log.error("%s: %s; retrying (%d failed tries in %.1fs)",
                           self.what, reason, self.tries, now - self.since)
            self.reason, self.logged = reason, now
        delay = self.delay
        self.delay = min(self.delay * 2, 2.0)
        return delay

    def ok(self):
        if self.since is not None:
            self.log.warning("%s answers again after %.1fs (%d failed "
                             "tries)", self.what,
                             time.monotonic() - self.since, self.tries)
            self._reset()


class Job:
    """A handler run: its event and when the consumer gives up on it."""

    def __init__(self, priority, raw, eid, deadline, grace):
        self.priority = priority
        self.raw = raw
        self.eid = eid
        self.deadline = deadline            # time.monotonic()
        self.hard_deadline = deadline + grace
        self.abandoned = False


class LeaseKeeper(threading.Thread):
    """Renews the lease of `consumer` every third of its TTL, whatever the
    consumer's thread does; `lost` names the holder once another process
    took the name.  When the handler of consumer.job is still running at
    its hard deadline, calls consumer.abandon(job) (which exits)."""

    def __init__(self, consumer, log):
        super().__init__(name="lease-keeper", daemon=True)
        self.consumer = consumer
        self.log = log
        self.lost = None
        self._stopped = threading.Event()
        self._retry = RedisRetry(log, "redis (lease renewal)")

    def stop(self):
        self._stopped.set()
        if self.is_alive():
            self.join(5)

    def run(self):
        c = self.consumer
        interval = c.config.lease_ttl / 3
        next_renewal = time.monotonic() + interval
        while not self._stopped.wait(min(0.25, interval / 4)):
            now = time.monotonic()
            job = c.job
            if job is not None and now >= job.hard_deadline:
                c.abandon(job)
            if now < next_renewal or self.lost is not None:
                continue
            try:
                holder = c.renew_lease()
            except Exception as e:      # a Redis error, or its reply
                next_renewal = now + min(self._retry.failed(e), interval)
                continue
            self._retry.ok()
            next_renewal = now + interval
            if holder is not None:
                self.lost = holder
                self.log.error("consumer name %r was taken over by %s",
                               c.config.name, holder)
