
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * What runs inside Redis: the enqueue script (deduplication, the depth
 * limit and the pushes of a whole request, atomically), the status script
 * (depths and oldest events in one round trip) and the rejected list's.
 * All are loaded once per connection (SCRIPT LOAD) and called with
 * EVALSHA.  The enqueue script's arguments are written in one place,
 * ngx_http_webhook_enqueue_args(), for the receive location and the
 * spool's drainer alike.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_sha1.h>

#include "ngx_http_webhook_redis.h"


/*
 * The enqueue script, and its one encoder, ngx_http_webhook_enqueue_args():
 *
 * KEYS[1..n]     the list of each event: <queue>:queue:<priority>
 * KEYS[n+1..]    the seen keys of the events that have one
 * ARGV[1]        the depth limit of a list (0: off)
 * ARGV[2]        n, the number of events
 * then for each event i, 4 from ARGV[4i - 1]:
 *                the index of its seen key after KEYS[n], 0: none
 *                that key's TTL in seconds
 *                its envelope id
 *                its envelope
 *
 * Returns -1 when a list would grow past the limit (nothing is pushed),
 * else an array: 1 for each event pushed, and for each duplicate the id
 * of the envelope pushed the first time (kept in its seen key).
 */

static char  ngx_http_webhook_enqueue_lua[] =
"local max = tonumber(ARGV[1])\n"
"local n = tonumber(ARGV[2])\n"
"local res, adds, lists, seen, first = {}, {}, {}, {}, {}\n"
/* what the seen keys hold, a thousand keys a call */
"for j = n + 1, #KEYS, 1000 do\n"
"  local got = redis.call('MGET', unpack(KEYS, j, math.min(j + 999, #KEYS)))\n"
"  for x = 1, #got do first[j - n + x - 1] = got[x] end\n"
"end\n"
"for i = 1, n do\n"
"  local b = 4 * i - 1\n"
"  local s = tonumber(ARGV[b])\n"
"  local r = 1\n"
"  if s > 0 then\n"
"    local k = KEYS[n + s]\n"
"    local f = seen[k] or first[s]\n"
"    if f then r = f else seen[k] = ARGV[b + 2] end\n"
"  end\n"
"  res[i] = r\n"
"  if r == 1 then\n"
"    local l = KEYS[i]\n"
"    if not adds[l] then adds[l] = {}; lists[#lists + 1] = l end\n"
"    local a = adds[l]\n"
"    a[#a + 1] = ARGV[b + 3]\n"
"  end\n"
"end\n"
"if max > 0 then\n"
"  for _, l in ipairs(lists) do\n"
"    if redis.call('LLEN', l) + #adds[l] > max then return -1 end\n"
"  end\n"
"end\n"
/* each list's envelopes in the order of the request, by LPUSHes of up
 * to a thousand */
"for _, l in ipairs(lists) do\n"
"  local a = adds[l]\n"
"  for j = 1, #a, 1000 do\n"
"    redis.call('LPUSH', l, unpack(a, j, math.min(j + 999, #a)))\n"
"  end\n"
"end\n"
"for i = 1, n do\n"
"  local b = 4 * i - 1\n"
"  local s, t = tonumber(ARGV[b]), tonumber(ARGV[b + 1])\n"
"  if res[i] == 1 and s > 0 and t > 0 then\n"
"    redis.call('SET', KEYS[n + s], ARGV[b + 2], 'EX', t)\n"
"  end\n"
"end\n"
"return res\n";


/*
 * KEYS: pairs of <queue>:queue:<priority>, <queue>:dead:<priority>,
 *       then ARGV[1] hashes <queue>:reconcilers
 * Returns for each pair: LLEN of the queue, the received_at of its
 * oldest envelope ("" when empty), LLEN of the dead list; then for each
 * queue named in ARGV[2..] (status_snapshot.c): the events in the
 * processing lists of the consumers registered in <queue>:consumers (a
 * name scored with the Redis time it took its oldest event, 0 when idle),
 * the oldest one's age in ms by Redis's clock, and <queue>:reclaimed;
 * then for each of the last ARGV[1] keys, a hash <queue>:reconcilers, an
 * array: its reconcilers' heartbeats (below).  Every key of a queue shares
 * its hash tag (slot).
 */

static char  ngx_http_webhook_status_lua[] =
"local nr = tonumber(ARGV[1]) or 0\n"
"local r = {}\n"
"for i = 1, #KEYS - nr, 2 do\n"
"  r[#r + 1] = redis.call('LLEN', KEYS[i])\n"
"  local e = redis.call('LINDEX', KEYS[i], -1)\n"
"  r[#r + 1] = e and string.match(e, '\"received_at\":\"([^\"]*)\"') or ''\n"
"  r[#r + 1] = redis.call('LLEN', KEYS[i + 1])\n"
"end\n"
"for j = 2, #ARGV do\n"
"  local q = ARGV[j]\n"
"  local c = redis.pcall('ZRANGE', q .. ':consumers', 0, -1, 'WITHSCORES')\n"
"  local n, oldest, age = 0, nil, 0\n"
"  if type(c) ~= 'table' or c.err then c = {} end\n"
"  for k = 1, #c, 2 do\n"
"    local l = redis.pcall('LLEN', q .. ':processing:' .. c[k])\n"
"    local s = tonumber(c[k + 1]) or 0\n"
"    if type(l) ~= 'number' then l = 0 end\n"
"    n = n + l\n"
"    if l > 0 and s > 0 and (oldest == nil or s < oldest) then\n"
"      oldest = s\n"
"    end\n"
"  end\n"
"  if oldest then\n"
"    local t = redis.call('TIME')\n"
"    age = math.max(0, math.floor((tonumber(t[1]) - oldest) * 1000\n"
"                                 + tonumber(t[2]) / 1000))\n"
"  end\n"
"  r[#r + 1] = n\n"
"  r[#r + 1] = age\n"
"  r[#r + 1] = tonumber(redis.pcall('GET', q .. ':reclaimed')) or 0\n"
"end\n"
/*
 * A reconciler's heartbeat is a field of <queue>:reconcilers, its name,
 * holding JSON: "since" (its first report), "pass" (its last pass), "ok"
 * (its last successful pass, 0: none), "error_at" (Redis's unix ms),
 * "replayed", "waiting", "failing" (0/1) and "error".  For each, by name,
 * at most 32: name, age of its last success (of its first report before
 * one), age of its last pass, replayed, waiting, failing, error (at most
 * 256 bytes), age of the error; ages in ms from Redis's clock, -1: none.
 */
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local function num(x)\n"
"  x = tonumber(x)\n"
"  return x and math.floor(x) or 0\n"
"end\n"
"local function age(ms)\n"
"  if ms > 0 then return math.max(0, now - ms) end\n"
"  return -1\n"
"end\n"
"for i = #KEYS - nr + 1, #KEYS do\n"
"  local h = redis.call('HGETALL', KEYS[i])\n"
"  local names, beats, q = {}, {}, {}\n"
"  for j = 1, #h, 2 do\n"
"    local ok, v = pcall(cjson.decode, h[j + 1])\n"
"    if ok and type(v) == 'table' then\n"
"      names[#names + 1] = h[j]\n"
"      beats[h[j]] = v\n"
"    end\n"
"  end\n"
"  table.sort(names)\n"
"  for j = 1, math.min(#names, 32) do\n"
"    local v = beats[names[j]]\n"
"    local ok = num(v.ok)\n"
"    if ok <= 0 then ok = num(v.since) end\n"
"    local err = type(v.error) == 'string' and v.error or ''\n"
"    if #err > 256 then\n"
"      err = string.gsub(string.sub(err, 1, 256),\n"
"                        '[\\192-\\255][\\128-\\191]*$', '')\n"
"    end\n"
"    q[#q + 1] = string.sub(names[j], 1, 128)\n"
"    q[#q + 1] = age(ok)\n"
"    q[#q + 1] = age(num(v.pass))\n"
"    q[#q + 1] = num(v.replayed)\n"
"    q[#q + 1] = num(v.waiting)\n"
"    q[#q + 1] = num(v.failing)\n"
"    q[#q + 1] = err\n"
"    q[#q + 1] = age(num(v.error_at))\n"
"  end\n"
"  r[#r + 1] = q\n"
"end\n"
"return r\n";


/*
 * KEYS[1]   <queue>:rejected, KEYS[2] <queue>:rejected:bytes (its size)
 * ARGV      the entry, the most entries, the most bytes
 * Pushes the entry, then drops the oldest ones past either bound.
 * Returns the number of entries.
 */
static char  ngx_http_webhook_reject_lua[] =
"local l, b = KEYS[1], KEYS[2]\n"
"local max, size = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"local n = redis.call('LPUSH', l, ARGV[1])\n"
"if n == 1 then redis.call('SET', b, 0) end\n"
"local bytes = redis.call('INCRBY', b, #ARGV[1])\n"
"while n > 1 and (n > max or bytes > size) do\n"
"  local e = redis.call('RPOP', l)\n"
"  bytes = redis.call('DECRBY', b, #e)\n"
"  n = n - 1\n"
"end\n"
"return n\n";


static void ngx_http_webhook_script_init(ngx_http_webhook_script_t *script,
    char *text, size_t len);


void
ngx_http_webhook_scripts(ngx_http_webhook_redis_conf_t *rcf)
{
    ngx_http_webhook_script_init(&rcf->enqueue,
                                 ngx_http_webhook_enqueue_lua,
                                 sizeof(ngx_http_webhook_enqueue_lua) - 1);

    ngx_http_webhook_script_init(&rcf->reject,
                                 ngx_http_webhook_reject_lua,
                                 sizeof(ngx_http_webhook_reject_lua) - 1);
    ngx_http_webhook_script_init(&rcf->status,
                                 ngx_http_webhook_status_lua,
                                 sizeof(ngx_http_webhook_status_lua) - 1);
}


static void
ngx_http_webhook_script_init(ngx_http_webhook_script_t *script, char *text,
    size_t len)
{
    u_char      sha[20];
    ngx_sha1_t  ctx;

    script->text.data = (u_char *) text;
    script->text.len = len;

    ngx_sha1_init(&ctx);
    ngx_sha1_update(&ctx, text, len);
    ngx_sha1_final(sha, &ctx);

    ngx_hex_dump(script->sha, sha, 20);
}


/*
 * The enqueue script's arguments for n items, after the two that EVALSHA
 * and its sha take (ngx_http_webhook_redis_eval()): argv and argvlen have
 * room for NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(n), nums for
 * NGX_HTTP_WEBHOOK_ENQUEUE_NUMS(n) bytes.  The list's depth limit is the
 * first item's (a call's items are one queue's).  Returns argc.
 */

int
ngx_http_webhook_enqueue_args(ngx_http_webhook_item_t *items, ngx_uint_t n,
    const char **argv, size_t *argvlen, u_char *nums)
{
    u_char      *p;
    ngx_uint_t   i, k, s, nseen;

    nseen = 0;

    for (i = 0; i < n; i++) {
        nseen += (items[i].seen.len != 0);
    }

    p = nums;

    argv[2] = (char *) p;                                   /* numkeys */
    p = ngx_sprintf(p, "%ui", n + nseen);
    argvlen[2] = p - (u_char *) argv[2];

    k = 3;

    for (i = 0; i < n; i++, k++) {
        argv[k] = (char *) items[i].list.data;
        argvlen[k] = items[i].list.len;
    }

    for (i = 0; i < n; i++) {
        if (items[i].seen.len) {
            argv[k] = (char *) items[i].seen.data;
            argvlen[k] = items[i].seen.len;
            k++;
        }
    }

    argv[k] = (char *) p;                                   /* ARGV[1] */
    p = ngx_sprintf(p, "%uD", n ? items[0].max_depth : 0);
    argvlen[k] = p - (u_char *) argv[k];
    k++;

    argv[k] = (char *) p;                                   /* ARGV[2] */
    p = ngx_sprintf(p, "%ui", n);
    argvlen[k] = p - (u_char *) argv[k];
    k++;

    for (i = 0, s = 0; i < n; i++) {
        argv[k] = (char *) p;
        p = ngx_sprintf(p, "%ui", items[i].seen.len ? ++s : 0);
        argvlen[k] = p - (u_char *) argv[k];

        argv[k + 1] = (char *) p;
        p = ngx_sprintf(p, "%uD", items[i].ttl);
        argvlen[k + 1] = p - (u_char *) argv[k + 1];

        argv[k + 2] = (char *) items[i].id.data;
        argvlen[k + 2] = items[i].id.len;
        argv[k + 3] = (char *) items[i].envelope.data;
        argvlen[k + 3] = items[i].envelope.len;

        k += 4;
    }

    return (int) k;
}


/*
 * Items that need no check (no seen key, no depth limit) and go to one
 * list: one LPUSH of their envelopes does what the script would, as
 * atomically, for a fraction of Redis's time.  NGX_DECLINED: the script
 * is needed.  argv has room for NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(n).
 */

ngx_int_t
ngx_http_webhook_lpush_args(ngx_http_webhook_item_t *items, ngx_uint_t n,
    const char **argv, size_t *argvlen, int *argc)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (items[i].seen.len || items[i].max_depth
            || items[i].list.len != items[0].list.len
            || ngx_strncmp(items[i].list.data, items[0].list.data,
                           items[0].list.len) != 0)
        {
            return NGX_DECLINED;
        }
    }

    argv[0] = "LPUSH";
    argvlen[0] = sizeof("LPUSH") - 1;
    argv[1] = (char *) items[0].list.data;
    argvlen[1] = items[0].list.len;

    for (i = 0; i < n; i++) {
        argv[i + 2] = (char *) items[i].envelope.data;
        argvlen[i + 2] = items[i].envelope.len;
    }

    *argc = (int) n + 2;

    return NGX_OK;
}
