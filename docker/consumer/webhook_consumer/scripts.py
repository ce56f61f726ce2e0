"""The consumer's Lua scripts: each state transition of an envelope is one
script, atomic in Redis.  Every key a script touches is in KEYS, so they
run on a Cluster too when the prefix is a hash tag."""

# Take the next envelope: first move due retries back to the front (right
# end) of their queues, earliest due first; then LMOVE from the first
# non-empty queue by priority to the processing list.  Returns
# {priority index, envelope}, or {0, seconds until the next retry is due}
# ("-1" when no retry is waiting).  Time is Redis's clock.
# KEYS: queue high, medium, low, retry high, medium, low, processing
# ARGV: most retries to move per priority
TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
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

# A failed attempt: take the envelope out of the processing list; count the
# attempt; dead-letter it (the original text, failure info in the failures
# hash) when it was the last attempt or is rejected, else schedule a retry.
# Nothing happens when the envelope is no longer in the processing list.
# Returns {"retry"|"dead"|"gone", attempts, delay}.
# KEYS: processing, attempts, retry, dead, failures
# ARGV: envelope, id, max attempts, backoff base, backoff max, reject (0|1),
#       error, consumer, priority, unix time
FAIL_LUA = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return {'gone', 0, '0'}
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
local delay = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - 1))
local t = redis.call('TIME')
local due = tonumber(t[1]) + tonumber(t[2]) / 1000000 + delay
redis.call('ZADD', KEYS[3], string.format('%.6f', due), ARGV[1])
return {'retry', n, string.format('%.6f', delay)}
"""

# Put an envelope that no handler saw back at the front of its queue.
# KEYS: processing, queue.  ARGV: envelope.
REQUEUE_LUA = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# Lease of a consumer name.  ARGV: token, TTL in ms.
# Returns 1 when held by this token (renewed or taken), 0 when held by another.
LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if holder then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
