"""The consumer's Lua scripts: each state transition of an envelope is one
script, atomic in Redis.  Every key a script touches is in KEYS, so they
run on a Cluster too when the prefix is a hash tag.

The sorted set <q>:consumers registers the consumer names: the score is 0
while the consumer holds no event, else the Redis time at which it took
the oldest event of its processing list.  The status location reads it
(events in flight, the oldest one's age) and live consumers reclaim the
lists of the names whose lease has expired.

On Redis 7 every script is sent with the flag allow-oom (FLAGS): at
maxmemory with noeviction a consumer must still take, settle and so free
what Redis holds (a move does not grow memory, an ack frees it; the
attempt counters and failure notes are a few bytes).  Redis 6.2 knows no
flags and gets the text alone."""

import redis

FLAGS = "#!lua flags=allow-oom\n"

# The consumer ARGV[n] took the event its processing list KEYS[p] now
# holds: its score in the registry KEYS[c] becomes the Redis time `now`,
# unless it already holds an older one.
_STAMP = """
local function stamp(p, c, name, now)
    if redis.call('LLEN', p) > 0 then
        local s = redis.call('ZSCORE', c, name)
        if not s or tonumber(s) == 0 then
            redis.call('ZADD', c, string.format('%.3f', now), name)
        end
    end
end
"""

# Take the envelope `raw` out of the processing list `p` of consumer
# `name`; false when it was not there (recovered elsewhere).  An empty list
# makes its consumer idle (score 0) in the registry `c`.
_TAKE_OUT = """
local function take_out(p, c, raw, name)
    if redis.call('LREM', p, 1, raw) == 0 then
        return false
    end
    if redis.call('LLEN', p) == 0 then
        redis.call('ZADD', c, 'XX', 0, name)
    end
    return true
end
"""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Take the next envelope: first move due retries back to the front (right
# end) of their queues, earliest due first; then LMOVE from the first
# non-empty queue by priority to the processing list.  Returns
# {priority index, envelope}, or {0, seconds until the next retry is due}
# ("-1" when no retry is waiting).  Time is Redis's clock.
# KEYS: queue high, medium, low, retry high, medium, low, processing,
#       consumers
# ARGV: most retries to move per priority, consumer name
TAKE_LUA = _STAMP + _NOW + """
for i = 1, 3 do
    local due = redis.call('ZRANGEBYSCORE', KEYS[i + 3], '-inf',
                           string.format('%.6f', now), 'LIMIT', 0, ARGV[1])
    for j = #due, 1, -1 do
        redis.call('ZREM', KEYS[i + 3], due[j])
        redis.call('RPUSH', KEYS[i], due[j])
    end
end
for i = 1, 3 do
    local raw = redis.call('LMOVE', KEYS[i], KEYS[7], 'RIGHT', 'LEFT')
    if raw then
        stamp(KEYS[7], KEYS[8], ARGV[2], now)
        return {i, raw}
    end
end
local next_due = -1
for i = 4, 6 do
    local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if first[2] then
        local wait = math.max(0, tonumber(first[2]) - now)
        if next_due < 0 or wait < next_due then
            next_due = wait
        end
    end
end
return {0, string.format('%.6f', next_due)}
"""

# After a BLMOVE brought an envelope: register when it was taken.
# KEYS: processing, consumers.  ARGV: consumer name.
STAMP_LUA = _STAMP + _NOW + """
stamp(KEYS[1], KEYS[2], ARGV[1], now)
return 1
"""

# An envelope leaves the processing list: handled ("ack": its attempts
# are forgotten), or seen by no handler ("requeue": back at the front of
# its queue).  Returns 1, or 0 when it was no longer there (recovered
# elsewhere).
# KEYS: processing, consumers, then attempts (ack) or the queue (requeue)
# ARGV: envelope, consumer, "ack" and the id, or "requeue"
SETTLE_LUA = _TAKE_OUT + """
if not take_out(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then
    return 0
end
if ARGV[3] == 'ack' then
    redis.call('HDEL', KEYS[3], ARGV[4])
else
    redis.call('RPUSH', KEYS[3], ARGV[1])
end
return 1
"""

# A failed attempt: take the envelope out of the processing list; count the
# attempt; dead-letter it (the original text, failure info in the failures
# hash) when it was the last attempt or is rejected, else schedule a retry.
# A reclaim (a live consumer takes back the list of one whose lease
# expired) is also counted in the reclaimed counter.  Nothing happens when
# the envelope is no longer in the processing list.
# Returns {"retry"|"dead"|"gone", attempts, delay}.
# KEYS: processing, attempts, retry, dead, failures, consumers, reclaimed
# ARGV: envelope, id, max attempts, backoff base, backoff max, reject (0|1),
#       error, consumer, priority, unix time, reclaim (0|1)
FAIL_LUA = _TAKE_OUT + """
if not take_out(KEYS[1], KEYS[6], ARGV[1], ARGV[8]) then
    return {'gone', 0, '0'}
end
if ARGV[11] == '1' then
    redis.call('INCR', KEYS[7])
end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if ARGV[6] == '1' or n >= tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[2], ARGV[2])
    redis.call('LPUSH', KEYS[4], ARGV[1])
    redis.call('HSET', KEYS[5], ARGV[2], cjson.encode({
        attempts = n, error = ARGV[7], consumer = ARGV[8],
        priority = ARGV[9], failed_at = tonumber(ARGV[10])}))
    return {'dead', n, '0'}
end
local delay = math.min(tonumber(ARGV[5]),
                       tonumber(ARGV[4]) * 2 ^ math.min(n - 1, 64))
local t = redis.call('TIME')
local due = tonumber(t[1]) + tonumber(t[2]) / 1000000 + delay
redis.call('ZADD', KEYS[3], string.format('%.6f', due), ARGV[1])
return {'retry', n, string.format('%.6f', delay)}
"""

# Lease of a consumer name; with ARGV[4] = 1 (the consumer's own) its name
# is registered too.  KEYS: lease, consumers.  ARGV: token, TTL in ms,
# name, register (0|1).
# Returns 1 when held by this token (renewed or taken), 0 when held by another.
LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif holder then
    return 0
else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[2], 'NX', 0, ARGV[3])
end
return 1
"""

# Give a lease up; the name leaves the registry when its processing list is
# empty.  KEYS: lease, processing, consumers.  ARGV: token, name.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('DEL', KEYS[1])
if redis.call('LLEN', KEYS[2]) == 0 then
    redis.call('ZREM', KEYS[3], ARGV[2])
end
return 1
"""

SCRIPTS = {
    "take": TAKE_LUA, "stamp": STAMP_LUA, "settle": SETTLE_LUA,
    "fail": FAIL_LUA, "lease": LEASE_LUA, "release": RELEASE_LUA,
}


class Scripts:
    """The scripts on one redis-py client: scripts.take(keys=..., args=...)
    and so on.  Sent with FLAGS until a Redis refuses the shebang (6.2),
    then without."""

    def __init__(self, client, log):
        self._log = log
        self._flagged = {name: client.register_script(FLAGS + text)
                         for name, text in SCRIPTS.items()}
        self._plain = {name: client.register_script(text)
                       for name, text in SCRIPTS.items()}
        self._flags = True

    def __getattr__(self, name):
        if name not in SCRIPTS:
            raise AttributeError(name)

        def call(keys, args):
            if self._flags:
                try:
                    return self._flagged[name](keys=keys, args=args)
                except redis.ResponseError as e:
                    if "Error compiling script" not in str(e) \
                            or "'#'" not in str(e):
                        raise
                    self._flags = False
                    self._log.info("redis: no script flags (Redis before "
                                   "7): scripts without allow-oom")
            return self._plain[name](keys=keys, args=args)
        return call
