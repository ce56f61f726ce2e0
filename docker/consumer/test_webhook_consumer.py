#!/usr/bin/env python3
"""Unit tests of webhook_consumer.py (standard library unittest).

The pure functions are tested alone (with bridgecore.py's mapping, rate
limit and HTTP answers, against a small http.server); the Redis scenarios
start a private
redis-server (REDIS_SERVER, default redis-server) on a free loopback port and
are skipped when there is none.  t/consumer-basic.t runs this file; by hand:

    /usr/bin/python3 docker/consumer/test_webhook_consumer.py -v
"""

import email.utils
import http.server
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import unittest.mock

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import redis  # noqa: E402

import webhook_consumer as wc  # noqa: E402
from webhook_consumer import bridgecore as bc  # noqa: E402

# the consumer's log lines only with CONSUMER_TEST_LOG=1
if not os.environ.get("CONSUMER_TEST_LOG"):
    wc.log.addHandler(logging.NullHandler())
    wc.log.propagate = False


def envelope(eid, priority="medium", model="sale.order"):
    return json.dumps({"id": eid, "priority": priority, "model": model,
                       "record_id": 1, "event": "write", "event_id": eid,
                       "payload": {}}, separators=(",", ":")).encode()


class PureTest(unittest.TestCase):

    def test_keys(self):
        k = wc.Keys("{webhook}")
        self.assertEqual(k.queue("high"), "{webhook}:queue:high")
        self.assertEqual(k.dead("low"), "{webhook}:dead:low")
        self.assertEqual(k.retry("medium"), "{webhook}:retry:medium")
        self.assertEqual(k.processing("w1"), "{webhook}:processing:w1")
        self.assertEqual(k.lease("w1"), "{webhook}:consumer:w1")
        self.assertEqual(k.processing_pattern(), "{webhook}:processing:*")
        self.assertEqual(wc.Keys("a*b[c]?\\").processing_pattern(),
                         "a\\*b\\[c\\]\\?\\\\:processing:*")

    def test_backoff(self):
        self.assertEqual([wc.backoff_delay(n, 1.0, 5.0) for n in (1, 2, 3, 4)],
                         [1.0, 2.0, 4.0, 5.0])
        self.assertAlmostEqual(wc.backoff_delay(2, 0.05, 10), 0.1)

    def test_envelope(self):
        raw = envelope("abc", "high")
        self.assertEqual(wc.envelope_id(raw), "abc")
        self.assertEqual(wc.envelope_priority(raw), "high")
        for bad in (b"garbage", b"[1]", b"\xff\xfe", b'{"id":7}', b"{}"):
            self.assertTrue(wc.envelope_id(bad).startswith("sha1:"), bad)
            self.assertEqual(wc.envelope_priority(bad, "low"), "low")
        self.assertEqual(wc.envelope_priority(b'{"priority":"urgent"}'),
                         "medium")
        with self.assertRaises(ValueError):
            wc.parse_envelope(b"[1]")
        with self.assertRaises(ValueError):
            wc.parse_envelope(b"{")

    def test_envelope_no_decoder_reads(self):
        # what Python's json refuses: the id and priority all the same
        head = b'{"id":"e1","received_at":"2026-11-27T09:14:03.412Z",' \
            b'"priority":"low","payload":'
        deep = head + b"[" * 1000 + b"]" * 1000 + b"}"
        utf8 = head + b'{"name":"caf\xc3("}}'
        for raw, why in ((deep, "RecursionError"),
                         (utf8, "UnicodeDecodeError")):
            with self.assertRaisesRegex(ValueError, "^not JSON: " + why):
                wc.parse_envelope(raw)
            self.assertEqual(wc.envelope_head(raw), ("e1", "low"))
            self.assertEqual(wc.envelope_id(raw), "e1")
            self.assertEqual(wc.envelope_priority(raw), "low")

    def test_envelope_numbers_of_any_length(self):
        digits = "7" * 5000
        env = wc.parse_envelope(('{"n":%s,"m":-12,"f":1.5}'
                                 % digits).encode())
        self.assertEqual(str(env["n"]), digits)
        self.assertEqual((env["m"], env["f"]), (-12, 1.5))
        self.assertIs(type(env["m"]), int)

    def test_backoff_bounded(self):
        self.assertEqual(wc.backoff_delay(100000, 0.5, 10.0), 10.0)
        self.assertEqual(wc.backoff_delay(1025, 1e-9, 1e300), 1e-9 * 2.0 ** 64)

    def test_load_handler(self):
        self.assertIs(wc.load_handler("webhook_consumer:log_event"),
                      wc.log_event)
        self.assertIs(wc.load_handler("json:JSONDecoder.decode"),
                      json.JSONDecoder.decode)
        for bad in ("webhook_consumer", ":x", "webhook_consumer:",
                    "webhook_consumer:__version__"):
            with self.assertRaises(ValueError, msg=bad):
                wc.load_handler(bad)
        with self.assertRaises(ImportError):
            wc.load_handler("no_such_module_xyz:f")
        with self.assertRaises(AttributeError):
            wc.load_handler("webhook_consumer:no_such_function")

    def test_config(self):
        self.assertEqual(wc.Config(name="a").check(), [])
        self.assertTrue(wc.Config(name="a", max_attempts=0).check())
        self.assertTrue(wc.Config(name="a", backoff_base=0).check())
        self.assertTrue(wc.Config(name="a", backoff_base=2,
                                  backoff_max=1).check())
        self.assertTrue(wc.Config(name="a", block_timeout=20,
                                  lease_ttl=30).check())
        self.assertTrue(wc.Config(name="a", queue="").check())
        self.assertEqual(wc.Config().name, socket.gethostname())

    def test_config_from_env(self):
        old = dict(os.environ)
        try:
            os.environ.update({"REDIS_URL": "redis://r:1/2",
                               "WEBHOOK_QUEUE": "{t}", "CONSUMER_NAME": "c9",
                               "MAX_ATTEMPTS": "7", "BACKOFF_BASE": "0.5"})
            c = wc.Config.from_env()
            self.assertEqual((c.redis_url, c.queue, c.name, c.max_attempts,
                              c.backoff_base),
                             ("redis://r:1/2", "{t}", "c9", 7, 0.5))
            os.environ["MAX_ATTEMPTS"] = "many"
            with self.assertRaises(SystemExit):
                wc.Config.from_env()
        finally:
            os.environ.clear()
            os.environ.update(old)

    def test_redact(self):
        self.assertEqual(wc.redact_url("redis://u:secret@h:6379/0"),
                         "redis://***@h:6379/0")
        self.assertEqual(wc.redact_url("redis://h:6379/0"), "redis://h:6379/0")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisTest(unittest.TestCase):
    """Scenarios against a real redis-server."""

    @classmethod
    def setUpClass(cls):
        binary = shutil.which(os.environ.get("REDIS_SERVER", "redis-server"))
        if not binary:
            raise unittest.SkipTest("no redis-server")
        cls.dir = tempfile.mkdtemp(prefix="consumer-unit-")
        cls.port = free_port()
        cls.proc = subprocess.Popen(
            [binary, "--port", str(cls.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", cls.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.url = "redis://127.0.0.1:%d/0" % cls.port
        cls.r = redis.Redis.from_url(cls.url)
        deadline = time.time() + 10
        while True:
            try:
                cls.r.ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.r.flushall()
        self.k = wc.Keys("{webhook}")
        self.seen = []

    def consumer(self, handler=None, **kw):
        cfg = dict(redis_url=self.url, name="unit", max_attempts=3,
                   backoff_base=0.05, backoff_max=1.0, block_timeout=0.2,
                   lease_ttl=3, drain=True)
        cfg.update(kw)
        return wc.Consumer(wc.Config(**cfg), handler or self.record)

    def record(self, env):
        self.seen.append(env["id"])

    def test_priority_and_fifo(self):
        for i in range(3):
            for p in ("low", "medium", "high"):
                self.r.lpush(self.k.queue(p), envelope("%s%d" % (p, i), p))
        self.assertEqual(self.consumer().run(), 0)
        self.assertEqual(self.seen, ["high0", "high1", "high2", "medium0",
                                     "medium1", "medium2", "low0", "low1",
                                     "low2"])
        self.assertEqual(self.r.keys("*"), [])

    def test_retry_then_success(self):
        failures = {"x": 2}

        def flaky(env):
            self.seen.append((env["id"], time.monotonic()))
            if failures.get(env["id"], 0) > 0:
                failures[env["id"]] -= 1
                raise RuntimeError("downstream down")

        self.r.lpush(self.k.queue("low"), envelope("x", "low"))
        self.assertEqual(self.consumer(flaky).run(), 0)
        self.assertEqual([s[0] for s in self.seen], ["x", "x", "x"])
        gaps = [b[1] - a[1] for a, b in zip(self.seen, self.seen[1:])]
        self.assertGreaterEqual(gaps[0], 0.05 * 0.9)
        self.assertGreaterEqual(gaps[1], 0.10 * 0.9)
        # success forgets the attempts; nothing is left behind
        self.assertEqual(self.r.keys("*"), [])

    def test_retry_goes_to_the_front_earliest_due_first(self):
        raws = [envelope("a"), envelope("b")]
        c = self.consumer()
        for raw in raws:
            self.r.lpush(self.k.queue("medium"), raw)
            self.assertEqual(c.take(), ("medium", raw))
            c.fail("medium", raw, wc.envelope_id(raw), "err")
        self.r.lpush(self.k.queue("medium"), envelope("newer"))
        time.sleep(0.1)
        c.config.drain = False
        order = [wc.envelope_id(c.take()[1]) for _ in range(3)]
        self.assertEqual(order, ["a", "b", "newer"])

    def test_dead_after_max_attempts_and_redrive(self):
        def always_fails(env):
            self.seen.append(env["id"])
            raise ValueError("no such partner")

        raw = envelope("d1", "high")
        self.r.lpush(self.k.queue("high"), raw)
        self.assertEqual(self.consumer(always_fails).run(), 0)
        self.assertEqual(self.seen, ["d1"] * 3)
        self.assertEqual(self.r.lrange(self.k.dead("high"), 0, -1), [raw])
        info = json.loads(self.r.hget(self.k.failures, "d1"))
        self.assertEqual((info["attempts"], info["error"], info["consumer"],
                          info["priority"]),
                         (3, "ValueError: no such partner", "unit", "high"))
        self.assertFalse(self.r.exists(self.k.attempts))
        letters = list(self.consumer().dead_letters())
        self.assertEqual([(d["id"], d["priority"]) for d in letters],
                         [("d1", "high")])
        self.assertEqual(letters[0]["envelope"], raw.decode())

        moved = self.consumer().redrive()
        self.assertEqual(moved, {"high": 1, "medium": 0, "low": 0})
        self.assertEqual(self.r.lrange(self.k.queue("high"), 0, -1), [raw])
        self.assertFalse(self.r.exists(self.k.failures))
        # a redriven event gets all its attempts again
        self.seen = []
        self.assertEqual(self.consumer(always_fails).run(), 0)
        self.assertEqual(self.seen, ["d1"] * 3)

    def test_redrive_count_and_priority(self):
        for i in range(5):
            self.r.lpush(self.k.dead("low"), envelope("l%d" % i, "low"))
            self.r.lpush(self.k.dead("medium"), envelope("m%d" % i))
        c = self.consumer()
        self.assertEqual(c.redrive(["low"], 2), {"low": 2})
        # oldest first, to the back (left end) of the queue
        self.assertEqual([wc.envelope_id(x) for x in
                          self.r.lrange(self.k.queue("low"), 0, -1)],
                         ["l1", "l0"])
        self.assertEqual(self.r.llen(self.k.dead("low")), 3)
        self.assertEqual(self.r.llen(self.k.dead("medium")), 5)
        self.assertEqual([d["id"] for d in c.dead_letters(["medium"], 2)],
                         ["m0", "m1"])

    def test_reject_and_invalid_go_dead_at_once(self):
        def rejects(env):
            self.seen.append(env["id"])
            raise wc.Reject("unknown model")

        self.r.lpush(self.k.queue("medium"), envelope("r1"))
        self.r.lpush(self.k.queue("low"), b"not json")
        self.assertEqual(self.consumer(rejects).run(), 0)
        self.assertEqual(self.seen, ["r1"])
        self.assertEqual(self.r.lrange(self.k.dead("medium"), 0, -1),
                         [envelope("r1")])
        self.assertEqual(self.r.lrange(self.k.dead("low"), 0, -1),
                         [b"not json"])
        info = json.loads(self.r.hget(self.k.failures, "r1"))
        self.assertEqual((info["attempts"], info["error"]),
                         (1, "rejected: unknown model"))

    def test_defer_requeues_to_the_front_uncounted_and_pauses(self):
        calls = []

        def defers_once(env):
            calls.append((env["id"], time.monotonic()))
            if len(calls) == 1:
                raise wc.Defer(0.3, "slow down")

        self.r.lpush(self.k.queue("medium"), envelope("first"))
        self.r.lpush(self.k.queue("medium"), envelope("second"))
        self.assertEqual(self.consumer(defers_once).run(), 0)
        # the deferred event is taken again first, after the pause
        self.assertEqual([c[0] for c in calls], ["first", "first", "second"])
        self.assertGreaterEqual(calls[1][1] - calls[0][1], 0.3 * 0.9)
        # no attempt counted, nothing dead, nothing left
        self.assertEqual(self.r.keys("*"), [])

    def test_defer_is_capped_by_backoff_max(self):
        calls = []

        def defers_long(env):
            calls.append(time.monotonic())
            if len(calls) == 1:
                raise wc.Defer(3600)

        self.r.lpush(self.k.queue("high"), envelope("h", "high"))
        t0 = time.monotonic()
        self.assertEqual(self.consumer(defers_long, backoff_max=0.2).run(), 0)
        self.assertEqual(len(calls), 2)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(self.r.keys("*"), [])

    def test_recover_own_list_counts_an_attempt(self):
        raw = envelope("c1", "low")
        self.r.lpush(self.k.processing("unit"), raw)
        self.r.hset(self.k.attempts, "c1", 1)
        self.assertEqual(self.consumer().run(), 0)
        self.assertEqual(self.seen, ["c1"])
        self.assertEqual(self.r.keys("*"), [])

    def test_recover_crash_loop_ends_dead(self):
        raw = envelope("poison", "high")
        self.r.lpush(self.k.processing("unit"), raw)
        self.r.hset(self.k.attempts, "poison", 2)
        self.assertEqual(self.consumer().run(), 0)
        self.assertEqual(self.seen, [])
        self.assertEqual(self.r.lrange(self.k.dead("high"), 0, -1), [raw])
        self.assertIn("died while handling",
                      json.loads(self.r.hget(self.k.failures,
                                             "poison"))["error"])

    def test_recover_all_skips_live_consumers(self):
        self.r.lpush(self.k.processing("ghost"), envelope("g1", "low"))
        self.r.lpush(self.k.processing("alive"), envelope("a1", "low"))
        self.r.set(self.k.lease("alive"), "someone", ex=60)
        c = self.consumer()
        self.assertEqual(c.recover_all(), {"ghost": 1})
        self.assertFalse(self.r.exists(self.k.processing("ghost")))
        self.assertFalse(self.r.exists(self.k.lease("ghost")))
        self.assertEqual(self.r.zcard(self.k.retry("low")), 1)
        self.assertEqual(self.r.llen(self.k.processing("alive")), 1)

    def test_name_in_use(self):
        self.r.set(self.k.lease("unit"), "another-process", ex=60)
        self.r.lpush(self.k.queue("high"), envelope("h"))
        t0 = time.monotonic()
        self.assertEqual(self.consumer(lease_ttl=1, block_timeout=0.1).run(),
                         3)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(self.seen, [])
        self.assertEqual(self.r.llen(self.k.queue("high")), 1)

    def test_lease_taken_over_stops(self):
        c = self.consumer(drain=False, lease_ttl=1, block_timeout=0.1)

        def steal(env):
            self.seen.append(env["id"])
            self.r.set(self.k.lease("unit"), "thief", ex=60)
            time.sleep(0.5)

        c.handler = steal
        self.r.lpush(self.k.queue("high"), envelope("h1", "high"))
        self.assertEqual(c.run(), 3)
        self.assertEqual(self.seen, ["h1"])
        self.assertEqual(self.r.get(self.k.lease("unit")), b"thief")

    def test_lease_released_on_stop(self):
        c = self.consumer()
        self.assertEqual(c.run(), 0)
        self.assertFalse(self.r.exists(self.k.lease("unit")))

    def test_ack_after_recovery_elsewhere(self):
        c = self.consumer()
        raw = envelope("z")
        self.r.lpush(self.k.queue("medium"), raw)
        self.assertEqual(c.take(), ("medium", raw))
        self.r.delete(self.k.processing("unit"))
        self.assertFalse(c.ack(raw, "z"))
        self.assertEqual(c.fail("medium", raw, "z", "e"), ("gone", 0, 0.0))

    def test_resync_requeues_to_the_front(self):
        c = self.consumer()
        self.r.lpush(self.k.queue("medium"), envelope("later"))
        self.r.lpush(self.k.processing("unit"), envelope("lost"))
        c._resync()
        self.assertEqual([wc.envelope_id(x) for x in
                          self.r.lrange(self.k.queue("medium"), 0, -1)],
                         ["later", "lost"])
        self.assertFalse(self.r.exists(self.k.processing("unit")))
        self.assertFalse(self.r.exists(self.k.attempts))

    def test_take_blocks_on_high(self):
        c = self.consumer(drain=False, block_timeout=2)
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)
            redis.Redis.from_url(self.url).lpush(self.k.queue("high"),
                                                 envelope("late", "high"))
            os._exit(0)
        got = c.take()
        os.waitpid(pid, 0)
        self.assertEqual(got, ("high", envelope("late", "high")))
        self.assertLess(time.monotonic() - t0, 1.9)

    def test_cli(self):
        self.r.lpush(self.k.dead("low"), envelope("cli1", "low"))
        env = dict(os.environ, REDIS_URL=self.url, PYTHONDONTWRITEBYTECODE="1")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "webhook_consumer.py")
        out = subprocess.run([sys.executable, script, "dead"], env=env,
                             capture_output=True, check=True).stdout
        self.assertEqual(json.loads(out)["id"], "cli1")
        out = subprocess.run([sys.executable, script, "redrive", "--priority",
                              "low"], env=env, capture_output=True,
                             check=True).stdout
        self.assertEqual(json.loads(out), {"low": 1})
        bad = subprocess.run([sys.executable, script, "run", "--handler",
                              "nope"], env=env, capture_output=True)
        self.assertEqual(bad.returncode, 1)
        self.assertIn(b"cannot load handler", bad.stderr)


# ------------------------------------------------------------------ BridgeCore

def module_envelope(payload, **fields):
    """An envelope as the module writes it for `payload` (an Odoo object)."""
    src = payload.get("_webhook_metadata", payload)
    env = {"id": "0123456789abcdef0123456789abcdef",
           "received_at": "2026-11-27T09:14:03.412Z",
           "priority": src.get("priority", "medium"),
           "event_id": src.get("event_id"), "model": src.get("model"),
           "record_id": src.get("record_id"),
           "event": src.get("event_type" if "_webhook_metadata" in payload
                            else "event"),
           "payload": payload}
    env.update(fields)
    return env


ODOO_EVENT = {
    "event_id": 48213, "model": "sale.order", "record_id": 1842,
    "event": "write", "timestamp": "2026-11-27T09:14:03.412000",
    "priority": "high", "category": "business",
    "data": {"id": 1842, "name": "S01842", "state": "sale",
             "user_id": [2, "Mitchell Admin"], "amount_total": 1483.5},
    "changed_fields": ["state", "amount_total"],
    "user_id": 2, "user_name": "Mitchell Admin"}

ODOO_INSTANT = {
    "id": 77, "name": "Azure Interior", "is_company": True,
    # the record's own fields, named like the event's
    "priority": "urgent", "model": "x", "user_id": [5, "Marc Demo"],
    "_metadata": {"source": "odoo"},
    "_webhook_metadata": {"event_id": 48214, "event_type": "create",
                          "model": "res.partner", "record_id": 77,
                          "timestamp": "2026-11-27T09:15:10.001000"}}


class BridgeCoreMappingTest(unittest.TestCase):

    def test_event_shape(self):
        body, left_out = bc.to_bridgecore(module_envelope(ODOO_EVENT))
        self.assertEqual(body, {
            "event_id": 48213, "model": "sale.order", "record_id": 1842,
            "event": "write", "timestamp": "2026-11-27T09:14:03.412000",
            "priority": "high", "category": "business",
            "payload": ODOO_EVENT["data"],
            "changed_fields": ["state", "amount_total"],
            "user_id": 2, "user_name": "Mitchell Admin"})
        self.assertEqual(left_out, [])

    def test_instant_shape(self):
        env = module_envelope(ODOO_INSTANT, priority="low")
        body, left_out = bc.to_bridgecore(env)
        self.assertEqual(body, {
            "event_id": 48214, "model": "res.partner", "record_id": 77,
            "event": "create", "timestamp": "2026-11-27T09:15:10.001000",
            "priority": "low",
            "payload": {"id": 77, "name": "Azure Interior",
                        "is_company": True, "priority": "urgent",
                        "model": "x", "user_id": [5, "Marc Demo"]}})
        self.assertEqual(left_out, [])

    def test_the_envelope_fields_win(self):
        # the module read them (first duplicate key, header priority)
        env = module_envelope(ODOO_EVENT, priority="low", model="a.b")
        body, _ = bc.to_bridgecore(env)
        self.assertEqual((body["priority"], body["model"]), ("low", "a.b"))

    def test_unfit_fields_are_left_out(self):
        odoo = dict(ODOO_EVENT, category=7, changed_fields=["a", 1],
                    user_id="2", user_name="", timestamp="yesterday",
                    data=[1, 2])
        for eid in ("odoo-48213", True, 1.5):
            body, left_out = bc.to_bridgecore(
                module_envelope(odoo, event_id=eid))
            self.assertNotIn(None, body.values())
            self.assertEqual(sorted(body), ["event", "model", "payload",
                                            "priority", "record_id",
                                            "timestamp"])
            self.assertEqual(body["payload"], {})
            self.assertEqual(body["timestamp"], "2026-11-27T09:14:03.412Z")
            self.assertEqual(len(left_out), 7, left_out)
            self.assertIn("event_id is not an integer: %s" % json.dumps(eid),
                          left_out)

    def test_absent_fields(self):
        odoo = {"event_id": 48217, "model": "account.move",
                "record_id": 902, "event": "unlink"}
        body, left_out = bc.to_bridgecore(module_envelope(odoo))
        self.assertEqual(body, {
            "event_id": 48217, "model": "account.move", "record_id": 902,
            "event": "unlink", "timestamp": "2026-11-27T09:14:03.412Z",
            "priority": "medium", "payload": {}})
        self.assertEqual(left_out, [])
        body, _ = bc.to_bridgecore(module_envelope(odoo, received_at=None))
        self.assertRegex(body["timestamp"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_unknown_envelope_fields_are_ignored(self):
        env = module_envelope(ODOO_EVENT, sender="odoo-prod",
                              warnings=["duplicate key"], future={"x": 1})
        self.assertEqual(bc.to_bridgecore(env),
                         bc.to_bridgecore(module_envelope(ODOO_EVENT)))

    def test_no_valid_request_is_a_reject(self):
        cases = [
            ({"event": "archive"}, "event is not create, write or unlink: "
                                   '"archive"'),
            ({"record_id": None}, "record_id is missing"),
            ({"record_id": "1842"}, 'record_id is not an integer: "1842"'),
            ({"model": None, "event": "delete"},
             "model is missing; event is not create"),
        ]
        for fields, why in cases:
            env = module_envelope(dict(ODOO_EVENT, **fields), **fields)
            with self.assertRaises(wc.Reject, msg=fields) as cm:
                bc.to_bridgecore(env)
            self.assertIn("cannot forward to BridgeCore: " + why,
                          str(cm.exception))
        # webhook_schema any: not an Odoo event at all
        with self.assertRaises(wc.Reject):
            bc.to_bridgecore({"id": "x", "model": None, "record_id": None,
                              "event": None, "payload": {"hello": 1}})


class BridgeCoreRateTest(unittest.TestCase):

    def test_parse_rate(self):
        for spec, want in (("200/min", (200, 60)), ("200/minute", (200, 60)),
                           ("3/s", (3, 1)), ("3/sec", (3, 1)),
                           ("0.5/second", (0.5, 1)), ("5000/h", (5000, 3600)),
                           ("10/hours", (10, 3600)), (" 7 / Min ", (7, 60))):
            self.assertEqual(bc.parse_rate(spec), want, spec)
        self.assertIsNone(bc.parse_rate("off"))
        for bad in ("200", "fast", "200/day", "-1/s", "x/min", "0/min"):
            with self.assertRaises(ValueError, msg=bad):
                bc.parse_rate(bad)

    def test_token_bucket(self):
        now = [100.0]
        b = bc.TokenBucket(2, 1, burst=1, clock=lambda: now[0])
        self.assertEqual(b.reserve(), 0)
        self.assertAlmostEqual(b.reserve(), 0.5)
        now[0] += 0.2
        self.assertAlmostEqual(b.reserve(), 0.3)
        now[0] += 0.3
        self.assertEqual(b.reserve(), 0)
        now[0] += 10        # idle: at most `burst` saved up
        self.assertEqual(b.reserve(), 0)
        self.assertGreater(b.reserve(), 0)
        b = bc.TokenBucket(120, 60, burst=3, clock=lambda: now[0])
        self.assertEqual([b.reserve() for _ in range(3)], [0, 0, 0])
        self.assertAlmostEqual(b.reserve(), 0.5)
        now[0] += 5
        b.hold(2)
        self.assertAlmostEqual(b.reserve(), 2)
        now[0] += 2
        self.assertEqual(b.reserve(), 0)

    def test_retry_after(self):
        self.assertEqual(bc.retry_after("3"), 3)
        self.assertEqual(bc.retry_after(" 0 "), 0)
        self.assertIsNone(bc.retry_after(None))
        self.assertIsNone(bc.retry_after("soon"))
        self.assertIsNone(bc.retry_after("-5"))
        date = email.utils.formatdate(1000030, usegmt=True)
        self.assertAlmostEqual(bc.retry_after(date, now=1000000), 30)
        self.assertEqual(bc.retry_after(date, now=2000000), 0)


class StubBridgeCore:
    """http.server on a loopback port: answers the queued replies
    (status, headers, body, delay) in turn, then 200; records requests."""

    def __init__(self):
        stub = self
        self.replies = []
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                stub.requests.append({"path": self.path,
                                      "headers": dict(self.headers),
                                      "body": json.loads(self.rfile.read(n))})
                status, headers, body, delay = stub.replies.pop(0) \
                    if stub.replies else (200, {}, None, 0)
                time.sleep(delay)
                if body is None:
                    body = {"success": True, "message": "ok",
                            "event_id": 1, "processed_at": "now"}
                data = (body if isinstance(body, str)
                        else json.dumps(body)).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass    # the client timed out

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/api/v1/webhooks/receive" \
            % self.server.server_port
        threading.Thread(target=self.server.serve_forever, args=(0.05,),
                         daemon=True).start()

    def reply(self, status, headers=None, body=None, delay=0):
        self.replies.append((status, headers or {}, body, delay))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class BridgeCoreForwarderTest(unittest.TestCase):

    def setUp(self):
        self.stub = StubBridgeCore()
        self.addCleanup(self.stub.close)
        self.sleeps = []

    def forwarder(self, **kw):
        kw.setdefault("rate", "off")
        kw.setdefault("backoff_base", 0.5)
        kw.setdefault("backoff_max", 10)
        kw.setdefault("sleep", self.sleeps.append)
        return bc.Forwarder(kw.pop("url", self.stub.url), **kw)

    def test_post(self):
        f = self.forwarder(token="s3cret")
        self.assertIsNone(f(module_envelope(ODOO_EVENT)))
        (req,) = self.stub.requests
        self.assertEqual(req["path"], "/api/v1/webhooks/receive")
        self.assertEqual(req["body"],
                         bc.to_bridgecore(module_envelope(ODOO_EVENT))[0])
        self.assertEqual(req["headers"]["Authorization"], "Bearer s3cret")
        self.assertEqual(req["headers"]["Content-Type"], "application/json")
        self.assertEqual(req["headers"]["Idempotency-Key"],
                         "0123456789abcdef0123456789abcdef")
        self.assertNotIn("s3cret", repr(f))
        self.forwarder()(module_envelope(ODOO_EVENT))
        self.assertNotIn("Authorization", self.stub.requests[1]["headers"])

    def test_429_defers_with_retry_after_and_holds_the_rate(self):
        now = [0.0]
        f = self.forwarder(rate="100/s", clock=lambda: now[0])
        self.stub.reply(429, {"Retry-After": "3"}, {"error": "slow down"})
        with self.assertRaises(wc.Defer) as cm:
            f(module_envelope(ODOO_EVENT))
        self.assertEqual(cm.exception.delay, 3)
        self.assertAlmostEqual(f.bucket.reserve(), 3)

    def test_429_without_retry_after_doubles(self):
        f = self.forwarder()
        delays = []
        for _ in range(3):
            self.stub.reply(429)
            with self.assertRaises(wc.Defer) as cm:
                f(module_envelope(ODOO_EVENT))
            delays.append(cm.exception.delay)
        self.assertEqual(delays, [0.5, 1.0, 2.0])
        f(module_envelope(ODOO_EVENT))      # a success resets it
        self.stub.reply(429, {"Retry-After": "600"})
        with self.assertRaises(wc.Defer) as cm:
            f(module_envelope(ODOO_EVENT))
        self.assertEqual(cm.exception.delay, 10)    # backoff max

    def test_4xx_is_permanent(self):
        detail = {"detail": [{"loc": ["body", "event_id"],
                              "msg": "field required"}]}
        for status in (422, 400, 401, 404):
            self.stub.reply(status, body=detail)
            with self.assertRaises(wc.Reject) as cm:
                self.forwarder()(module_envelope(ODOO_EVENT))
            self.assertIn("BridgeCore answered %d: " % status,
                          str(cm.exception))
            self.assertIn("field required", str(cm.exception))

    def test_5xx_3xx_and_success_false_are_retried(self):
        f = self.forwarder()
        self.stub.reply(500, body="Internal Server Error")
        self.stub.reply(503, {"Retry-After": "1"}, {"detail": "down"})
        self.stub.reply(301, {"Location": "/elsewhere"}, "moved")
        self.stub.reply(200, body={"success": False, "message": "db locked"})
        for want in ("BridgeCore answered 500: Internal Server Error",
                     'BridgeCore answered 503: {"detail": "down"}',
                     "BridgeCore answered 301 (redirects are not followed)",
                     "BridgeCore answered 200 with success false: "):
            with self.assertRaises(bc.ForwardError) as cm:
                f(module_envelope(ODOO_EVENT))
            self.assertIn(want, str(cm.exception))
        self.assertEqual(len(self.stub.requests), 4)
        # a 2xx is done only with BridgeCore's JSON answer
        self.stub.reply(201, body="not json")
        self.stub.reply(200, body={"detail": "a proxy"})
        for want in ("BridgeCore answered 201 with application/json, not "
                     "BridgeCore's JSON answer (a proxy, a wrong URL?): "
                     "not json",
                     "not BridgeCore's JSON answer (a proxy, a wrong URL?): "
                     '{"detail": "a proxy"}'):
            with self.assertRaises(bc.ForwardError) as cm:
                f(module_envelope(ODOO_EVENT))
            self.assertIn(want, str(cm.exception))
        f(module_envelope(ODOO_EVENT))

    def test_no_answer(self):
        url = "http://127.0.0.1:%d/api/v1/webhooks/receive" % free_port()
        with self.assertRaises(bc.ForwardError) as cm:
            self.forwarder(url=url)(module_envelope(ODOO_EVENT))
        self.assertIn("cannot reach BridgeCore at %s: " % url,
                      str(cm.exception))
        self.stub.reply(200, delay=1)
        with self.assertRaises(bc.ForwardError) as cm:
            self.forwarder(timeout=0.2)(module_envelope(ODOO_EVENT))
        self.assertIn("timed out", str(cm.exception))

    def test_a_number_bridgecore_cannot_read_is_a_reject(self):
        env = module_envelope(ODOO_EVENT)
        env["payload"] = dict(ODOO_EVENT, data={
            "n": wc.parse_envelope(b'{"n":%s}' % (b"9" * 5000))["n"]})
        with self.assertRaisesRegex(wc.Reject, "a number of 5000 digits"):
            self.forwarder()(env)
        self.assertEqual(self.stub.requests, [])

    def test_unfit_event_is_not_sent(self):
        with self.assertRaises(wc.Reject):
            self.forwarder()(module_envelope(ODOO_EVENT, event="archive"))
        self.assertEqual(self.stub.requests, [])

    def test_rate(self):
        now = [0.0]

        def sleep(s):
            self.sleeps.append(s)
            now[0] += s

        f = self.forwarder(rate="120/min", clock=lambda: now[0], sleep=sleep)
        for _ in range(3):
            f(module_envelope(ODOO_EVENT))
        self.assertEqual(len(self.stub.requests), 3)
        self.assertEqual([round(s, 6) for s in self.sleeps], [0.5, 0.5])
        # a wait longer than max_inline_wait is the consumer's pause
        f = self.forwarder(rate="1/min", clock=lambda: now[0], sleep=sleep)
        f(module_envelope(ODOO_EVENT))
        with self.assertRaises(wc.Defer) as cm:
            f(module_envelope(ODOO_EVENT))
        self.assertAlmostEqual(cm.exception.delay, 60)
        self.assertEqual(len(self.stub.requests), 4)

    def test_settings(self):
        for kw in ({"url": "ftp://x/"}, {"url": "http:///x"},
                   {"rate": "lots"}, {"rate": "5/s", "burst": 0},
                   {"timeout": 0}):
            with self.assertRaises(ValueError, msg=kw):
                self.forwarder(**kw)

    def test_cli_settings(self):
        # the defaults, whatever t/consumer-basic.t's environment says
        ours = ("REDIS_URL", "WEBHOOK_QUEUE", "CONSUMER_NAME",
                "WEBHOOK_HANDLER", "MAX_ATTEMPTS", "BACKOFF_BASE",
                "BACKOFF_MAX", "BLOCK_TIMEOUT", "LEASE_TTL", "LOG_LEVEL")
        env = {k: v for k, v in os.environ.items()
               if k not in ours and not k.startswith("FORWARD_")}
        with unittest.mock.patch.dict(os.environ, env, clear=True):
            self._cli_settings()

    def _cli_settings(self):
        for args, why in (
                (["--forward-url", "ftp://x"], "forward URL must be http"),
                (["--forward-url", self.stub.url, "--handler", "json:dumps"],
                 "--handler and --forward-url exclude each other"),
                (["--forward-url", self.stub.url, "--forward-rate", "fast"],
                 "rate must be like 200/min"),
                (["--forward-url", self.stub.url, "--forward-timeout", "60"],
                 "must be shorter than the handler timeout (20s)"),
                (["--forward-url", self.stub.url, "--forward-token-file",
                  "/nonexistent/token"], "cannot read the forward token")):
            with self.assertLogs(wc.log, "ERROR") as logs:
                self.assertEqual(wc.main(["run"] + args), 1, args)
            self.assertIn(why, "\n".join(logs.output))


if __name__ == "__main__":
    unittest.main()
