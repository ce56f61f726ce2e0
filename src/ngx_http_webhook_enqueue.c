
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The enqueue of a request's events: the script call (or a plain LPUSH)
 * with their envelopes, list keys and idempotency keys, its reply turned
 * into the answer, and the timer of the wait.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "ngx_http_webhook_auth.h"
#include "ngx_http_webhook_receive.h"
#include "ngx_http_webhook_stats.h"
#include "ngx_http_webhook_spool.h"


static ngx_int_t ngx_http_webhook_header_priority(ngx_http_request_t *r,
    ngx_int_t *priority);
static ngx_int_t ngx_http_webhook_instant_priority(ngx_http_request_t *r,
    ngx_int_t *priority);
static ngx_int_t ngx_http_webhook_seen_key(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *key, char *kind, ngx_uint_t at,
    ngx_uint_t index, ngx_uint_t s);
static ngx_uint_t ngx_http_webhook_plain_push(ngx_http_webhook_ctx_t *ctx);
static ngx_uint_t ngx_http_webhook_spooled_events(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_enqueued(void *data, redisReply *reply);
static ngx_int_t ngx_http_webhook_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_webhook_checked(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_webhook_rejected_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply);
static ngx_uint_t ngx_http_webhook_pushed(ngx_http_webhook_ctx_t *ctx,
    redisReply *reply, ngx_uint_t i);
static void ngx_http_webhook_timeout(ngx_event_t *ev);
static void ngx_http_webhook_cleanup(void *data);


/* the slot of the location's queue, for Redis Cluster */
#define ngx_http_webhook_slot(r)                                             \
    ((ngx_http_webhook_loc_conf_t *)                                         \
         ngx_http_get_module_loc_conf(r, ngx_http_webhook_module))->slot


/*
 * Builds the enqueue script call: the envelopes, their list keys and
 * their idempotency keys.
 */

ngx_int_t
ngx_http_webhook_prepare(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t n, ngx_str_t *idempotency)
{
    u_char                        *p;
    size_t                         len;
    ngx_int_t                      priority, header_priority;
    ngx_int_t                      instant_priority;
    ngx_uint_t                     i, k, s, su, se, nseen, nuser, argv0;
    ngx_uint_t                     spool;
    ngx_str_t                     *id, *prio, at, *key;
    ngx_time_t                    *tp;
    ngx_http_variable_value_t     *vv;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;
    u_char                         time[NGX_HTTP_WEBHOOK_TIME_LEN];

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    if (ngx_http_webhook_header_priority(r, &header_priority) != NGX_OK) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       ngx_http_webhook_invalid,
                                       "invalid_priority",
                                       "header X-Webhook-Priority must be "
                                       "high, medium or low");
    }

    if (n == 1) {
        ctx->model = ev[0].model;
    }

    /* evaluated once, and only for instant events: a map may log */

    instant_priority = -1;

    for (i = 0; i < n; i++) {
        if (ev[i].instant) {
            if (ngx_http_webhook_instant_priority(r, &instant_priority)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            break;
        }
    }

    vv = ngx_http_get_indexed_variable(r, wmcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tp = ngx_timeofday();

    at.data = time;
    at.len = ngx_http_webhook_time(time, tp->sec, tp->msec) - time;

    ctx->nevents = n;
    ctx->ids = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    ctx->priorities = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));
    ctx->warned = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));

    /* the events with an idempotency key: their seen keys are KEYS too */

    nuser = 0;

    for (i = 0; wlcf->dedupe && i < n; i++) {
        if (ev[i].id_key.len || idempotency->len) {
            nuser++;
        }
    }

    /* with the spool, every event has one: its envelope id's, if no other */

    spool = ngx_http_webhook_spool_on(r);
    nseen = spool ? n : nuser;
    su = 0;
    se = nuser;

    argv0 = NGX_HTTP_WEBHOOK_CMD_ARGS + n + nseen;      /* ARGV[1] */
    ctx->argv0 = argv0;
    ctx->seen_env = nuser + 1;
    ctx->argc = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
                + NGX_HTTP_WEBHOOK_EVENT_ARGS * n;
    ctx->argv = ngx_palloc(r->pool, ctx->argc * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, ctx->argc * sizeof(size_t));

    if (ctx->ids == NULL || ctx->priorities == NULL || ctx->warned == NULL
        || ctx->argv == NULL
        || ctx->argvlen == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s = 0;

    for (i = 0; i < n; i++) {

        priority = ev[i].priority;

        if (priority == -1) {
            priority = header_priority;
        }

        if (priority == -1) {
            priority = ev[i].instant ? instant_priority
                                     : (ngx_int_t) wlcf->default_priority;
        }

        ctx->priorities[i] = priority;
        ctx->warned[i] = (ev[i].warnings != 0);
        prio = &ngx_http_webhook_priorities[priority];
        ev[i].sender = ctx->sender;

        /* the envelope id: $request_id, with "-<index>" in a batch */

        id = &ctx->ids[i];
        id->data = ngx_pnalloc(r->pool, vv->len + 1 + NGX_INT_T_LEN);
        if (id->data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        id->len = (ctx->batch ? ngx_sprintf(id->data, "%v-%ui", vv, i)
                              : ngx_sprintf(id->data, "%v", vv))
                  - id->data;

        len = ngx_http_webhook_envelope_len(&ev[i], id, &at, prio);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        k = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
            + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

        ctx->argv[k + 1] = (char *) id->data;
        ctx->argvlen[k + 1] = id->len;
        ctx->argv[k + 2] = (char *) p;
        ctx->argvlen[k + 2] =
                    ngx_http_webhook_envelope_write(p, &ev[i], id, &at, prio)
                    - p;

        /* the list key: <queue>:queue:<priority> */

        k = NGX_HTTP_WEBHOOK_CMD_ARGS + i;

        p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":queue:medium"));
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->argv[k] = (char *) p;
        ctx->argvlen[k] = ngx_sprintf(p, "%V:queue:%V", &wlcf->queue, prio)
                          - p;

        /* the idempotency key, with its index after the list keys */

        k = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
            + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

        if (nuser && (ev[i].id_key.len || idempotency->len)) {
            key = ev[i].id_key.len ? &ev[i].id_key : idempotency;
            s = ++su;

        } else if (spool) {
            key = id;
            s = ++se;

        } else {
            ctx->argv[k] = "0";
            ctx->argvlen[k] = 1;
            continue;
        }

        if (ngx_http_webhook_seen_key(r, ctx, key, ev[i].id_key.len ? "id"
                                      : key == id ? "env" : "key",
                                      NGX_HTTP_WEBHOOK_CMD_ARGS + n + s - 1,
                                      k, s)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (n == 1) {
        /* for $webhook_priority and $webhook_event_id */

        ctx->priority = ctx->priorities[0];

        key = ev[0].id_key.len ? &ev[0].id_key : idempotency;

        if (key->len) {
            ctx->event_id.len = key->len;
            ctx->event_id.data = ngx_pstrdup(r->pool, key);
            if (ctx->event_id.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    if (nseen == 0 && wlcf->max_depth == 0
        && ngx_http_webhook_plain_push(ctx))
    {
        return ngx_http_webhook_enqueue(r, ctx);
    }

    /* EVALSHA <sha> <numkeys> ... <ttl> <max depth> <n> ... */

    p = ngx_pnalloc(r->pool, 6 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->argv[2] = (char *) p;
    p = ngx_sprintf(p, "%ui", n + nseen);
    ctx->argvlen[2] = p - (u_char *) ctx->argv[2];

    ctx->argv[argv0] = (char *) p;
    p = ngx_sprintf(p, "%T", wlcf->dedupe);
    ctx->argvlen[argv0] = p - (u_char *) ctx->argv[argv0];

    ctx->argv[argv0 + 1] = (char *) p;
    p = ngx_sprintf(p, "%i", wlcf->max_depth);
    ctx->argvlen[argv0 + 1] = p - (u_char *) ctx->argv[argv0 + 1];

    ctx->argv[argv0 + 2] = (char *) p;
    p = ngx_sprintf(p, "%ui", n);
    ctx->argvlen[argv0 + 2] = p - (u_char *) ctx->argv[argv0 + 2];

    /* the seen keys of envelope ids, from their index on, live shorter */

    ctx->argv[argv0 + 3] = (char *) p;
    p = ngx_sprintf(p, "%d", NGX_HTTP_WEBHOOK_SPOOL_SEEN_TTL);
    ctx->argvlen[argv0 + 3] = p - (u_char *) ctx->argv[argv0 + 3];

    ctx->argv[argv0 + 4] = (char *) p;
    p = ngx_sprintf(p, "%ui", ctx->seen_env);
    ctx->argvlen[argv0 + 4] = p - (u_char *) ctx->argv[argv0 + 4];

    return ngx_http_webhook_enqueue(r, ctx);
}


/*
 * <queue>:seen:id:<sender>:<event_id>, seen:key:<sender>:<header> for an
 * Idempotency-Key, seen:env:<envelope id> for the spool's own dedupe.
 */

static ngx_int_t
ngx_http_webhook_seen_key(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_str_t *key, char *kind, ngx_uint_t at, ngx_uint_t index,
    ngx_uint_t s)
{
    u_char                       *p;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":seen:key::")
                             + ctx->sender.len + key->len + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->argv[at] = (char *) p;

    if (kind[0] == 'e') {
        p = ngx_sprintf(p, "%V:seen:env:%V", &wlcf->queue, key);

    } else {
        p = ngx_sprintf(p, "%V:seen:%s:%V:%V", &wlcf->queue, kind,
                        &ctx->sender, key);
    }

    ctx->argvlen[at] = p - (u_char *) ctx->argv[at];

    ctx->argv[index] = (char *) p;
    ctx->argvlen[index] = ngx_sprintf(p, "%ui", s) - p;

    return NGX_OK;
}


/*
 * Nothing to check before the push (no idempotency key, no depth limit)
 * and every event on one list: one LPUSH of all the envelopes does what
 * the script would, as atomically, for a fraction of Redis's time.  The
 * script's arguments become LPUSH's in place (each moves down).
 */

static ngx_uint_t
ngx_http_webhook_plain_push(ngx_http_webhook_ctx_t *ctx)
{
    ngx_uint_t  i, k;

    for (i = 1; i < ctx->nevents; i++) {
        if (ctx->priorities[i] != ctx->priorities[0]) {
            return 0;
        }
    }

    ctx->argv[0] = "LPUSH";
    ctx->argvlen[0] = sizeof("LPUSH") - 1;
    ctx->argv[1] = ctx->argv[NGX_HTTP_WEBHOOK_CMD_ARGS];
    ctx->argvlen[1] = ctx->argvlen[NGX_HTTP_WEBHOOK_CMD_ARGS];

    for (i = 0; i < ctx->nevents; i++) {
        k = NGX_HTTP_WEBHOOK_CMD_ARGS + ctx->nevents
            + NGX_HTTP_WEBHOOK_SCRIPT_ARGS + NGX_HTTP_WEBHOOK_EVENT_ARGS * i
            + 2;

        ctx->argv[i + 2] = ctx->argv[k];
        ctx->argvlen[i + 2] = ctx->argvlen[k];
    }

    ctx->argc = ctx->nevents + 2;
    ctx->lpush = 1;

    return 1;
}


/*
 * The priority of instant events, which carry none: webhook_instant_priority,
 * evaluated once the body is read, so that a map of $webhook_model works.
 */

static ngx_int_t
ngx_http_webhook_instant_priority(ngx_http_request_t *r, ngx_int_t *priority)
{
    ngx_str_t                     value;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (wlcf->instant_priority == NULL) {
        *priority = NGX_HTTP_WEBHOOK_HIGH;
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, wlcf->instant_priority, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    *priority = ngx_http_webhook_priority(value.data, value.len);

    if (*priority == NGX_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "webhook: webhook_instant_priority is \"%V\", not "
                      "high, medium or low: the default priority is used",
                      &value);
        *priority = wlcf->default_priority;
    }

    return NGX_OK;
}


/*
 * Odoo's test buttons: answered 200 only when a real event would be taken
 * now.  A write that Redis refuses when it would refuse the events (OOM,
 * READONLY, LOADING, MASTERDOWN, NOPERM), under the wait's own timer:
 * SET <queue>:probe <request id> PX 60000.
 */

ngx_int_t
ngx_http_webhook_check_queue(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    u_char                       *p;
    ngx_http_variable_value_t    *vv;
    ngx_http_webhook_loc_conf_t  *wlcf;
    ngx_http_webhook_main_conf_t *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    vv = ngx_http_get_indexed_variable(r, wmcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->argc = 5;
    ctx->argv = ngx_palloc(r->pool, 5 * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, 5 * sizeof(size_t));
    p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":probe") - 1);

    if (ctx->argv == NULL || ctx->argvlen == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->argv[0] = "SET";
    ctx->argvlen[0] = sizeof("SET") - 1;
    ctx->argv[1] = (char *) p;
    ctx->argvlen[1] = ngx_sprintf(p, "%V:probe", &wlcf->queue) - p;
    ctx->argv[2] = (char *) vv->data;
    ctx->argvlen[2] = vv->len;
    ctx->argv[3] = "PX";
    ctx->argvlen[3] = sizeof("PX") - 1;
    ctx->argv[4] = "60000";
    ctx->argvlen[4] = sizeof("60000") - 1;

    ctx->lpush = 1;
    ctx->probe = 1;

    return ngx_http_webhook_enqueue(r, ctx);
}


static ngx_int_t
ngx_http_webhook_checked(ngx_http_request_t *r, redisReply *reply)
{
    u_char  *p;

    if (reply->type != REDIS_REPLY_STATUS) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: unexpected reply of the test's SET");

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue gave an unexpected answer");
    }

    p = (u_char *) "{\"status\":\"ok\",\"test\":true}";

    return ngx_http_webhook_send_json(r, NGX_HTTP_OK, ngx_http_webhook_test,
                                      p, ngx_strlen(p));
}


static ngx_int_t
ngx_http_webhook_header_priority(ngx_http_request_t *r, ngx_int_t *priority)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("X-Webhook-Priority");

    *priority = -1;

    h = ngx_http_webhook_find_header(r, &name);
    if (h == NULL) {
        return NGX_OK;
    }

    *priority = ngx_http_webhook_priority(h->value.data, h->value.len);

    return *priority == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


ngx_int_t
ngx_http_webhook_enqueue(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    ngx_http_cleanup_t            *cln;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_webhook_cleanup;
    cln->data = ctx;

    if (ngx_http_webhook_spooled_events(r, ctx)
        && ngx_http_webhook_spool_holds(r))
    {
        return ngx_http_webhook_spool(r, ctx, "behind the spooled events");
    }

    ctx->cmd = ngx_http_webhook_redis_eval(ctx->rejected ? &wmcf->reject
                                           : ctx->lpush ? NULL
                                           : &wmcf->enqueue,
                                           ngx_http_webhook_slot(r),
                                           ctx->argc, ctx->argv, ctx->argvlen,
                                           ngx_http_webhook_enqueued, ctx);
    if (ctx->cmd == NULL) {
        if (ctx->rejected) {
            return NGX_DECLINED;
        }

        if (ngx_http_webhook_spooled_events(r, ctx)) {
            return ngx_http_webhook_spool(r, ctx, "redis is not connected");
        }

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue is unavailable, "
                                       "retry later");
    }

    /* not cancelable: a graceful shutdown waits for the answer */

    ctx->timer.handler = ngx_http_webhook_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, wmcf->timeout);

    return NGX_DONE;
}


/* events that go to the spool when Redis cannot take them */

static ngx_uint_t
ngx_http_webhook_spooled_events(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx)
{
    return !ctx->probe && !ctx->rejected && !ctx->lpush
           && ngx_http_webhook_spool_on(r);
}


static void
ngx_http_webhook_enqueued(void *data, redisReply *reply)
{
    ngx_http_webhook_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;
    ctx->cmd = NULL;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    rc = ngx_http_webhook_answer(r, ctx, reply);

    if (rc == NGX_DONE) {
        return;                 /* spooling */
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_webhook_answer(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    redisReply *reply)
{
    u_char                        *p, *last;
    size_t                         len;
    ngx_str_t                      id;
    ngx_uint_t                     i, queued, warned;

    if (ctx->rejected) {
        return ngx_http_webhook_rejected_answer(r, ctx, reply);
    }

    if (ngx_http_webhook_spooled_events(r, ctx)
        && (reply == NULL || reply->type == REDIS_REPLY_ERROR
            || reply->type == REDIS_REPLY_INTEGER))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "webhook: redis refused the events (%*s): they "
                          "are spooled", (size_t) reply->len, reply->str);
        }

        return ngx_http_webhook_spool(r, ctx,
                                      reply == NULL ? "redis connection lost"
                                      : reply->type == REDIS_REPLY_ERROR
                                      ? "redis refused"
                                      : "the queue is at its depth limit");
    }

    if (reply == NULL) {
        /* REPLICAS: in Redis, but not on enough replicas (WAIT) */
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       ngx_http_webhook_redis_failure()
                                       == NGX_HTTP_WEBHOOK_REDIS_REPLICAS
                                       ? "the queue's replicas did not "
                                         "acknowledge the event, retry later"
                                       : "the queue is unavailable, "
                                         "retry later");
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: redis refused the %s: %*s",
                      ctx->probe ? "test's write" : "events",
                      (size_t) reply->len, reply->str);

        if (ctx->probe) {
            p = ngx_pnalloc(r->pool, reply->len + sizeof("redis: "));
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            last = ngx_sprintf(p, "redis: %*s", (size_t) reply->len,
                               reply->str);

            return ngx_http_webhook_send_error(r,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               ngx_http_webhook_unavailable,
                                               "unavailable", p, last - p);
        }

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue refused the event, "
                                       "retry later");
    }

    if (ctx->probe) {
        return ngx_http_webhook_checked(r, reply);
    }

    if (!ctx->lpush && reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_overloaded,
                                       "overloaded",
                                       "the queue is full, retry later");
    }

    /* LPUSH answers the list's length, the script one element an event */

    if (ctx->lpush ? reply->type != REDIS_REPLY_INTEGER
                   : reply->type != REDIS_REPLY_ARRAY
                     || reply->elements != ctx->nevents)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: unexpected reply of %s",
                      ctx->lpush ? "LPUSH" : "the enqueue script");

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue gave an unexpected answer, "
                                       "retry later");
    }

    ngx_http_webhook_count_duration(r,
                                    ngx_http_webhook_now_usec() - ctx->start);

    queued = 0;
    warned = 0;

    for (i = 0; i < ctx->nevents; i++) {
        if (ngx_http_webhook_pushed(ctx, reply, i)) {
            queued++;
            warned += ctx->warned[i];
            ngx_http_webhook_count_events(r, ctx->priorities[i], 1);
        }
    }

    if (warned) {
        ngx_http_webhook_count_warnings(r, warned);
    }

    if (!ctx->batch) {
        id = ctx->ids[0];

        if (!queued && reply->element[0]->type == REDIS_REPLY_STRING) {
            /* the id of the envelope queued the first time */
            id.data = (u_char *) reply->element[0]->str;
            id.len = reply->element[0]->len;
        }

        len = sizeof("{\"status\":\"duplicate\",\"id\":\"\","
                     "\"priority\":\"medium\",\"event_id\":\"\"}")
              + ngx_http_webhook_json_escape_len(id.data, id.len)
              + ngx_http_webhook_json_escape_len(ctx->event_id.data,
                                                 ctx->event_id.len);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        last = ngx_sprintf(p, "{\"status\":\"%s\",\"id\":\"",
                           queued ? "queued" : "duplicate");
        last = ngx_http_webhook_json_escape(last, id.data, id.len);
        last = ngx_sprintf(last, "\",\"priority\":\"%V\"",
                        &ngx_http_webhook_priorities[ctx->priorities[0]]);

        if (!queued && ctx->event_id.len) {
            last = ngx_cpymem(last, ",\"event_id\":\"",
                              sizeof(",\"event_id\":\"") - 1);
            last = ngx_http_webhook_json_escape(last, ctx->event_id.data,
                                                ctx->event_id.len);
            *last++ = '"';
        }

        *last++ = '}';

        return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                          queued ? ngx_http_webhook_queued
                                                 : ngx_http_webhook_duplicate,
                                          p, last - p);
    }

    len = sizeof("{\"status\":\"duplicate\",\"queued\":,\"duplicates\":,"
                 "\"ids\":[]}") + 2 * NGX_INT_T_LEN;

    for (i = 0; i < ctx->nevents; i++) {
        len += ctx->ids[i].len + 3;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_sprintf(p, "{\"status\":\"%s\",\"queued\":%ui,"
                       "\"duplicates\":%ui,\"ids\":[",
                       queued ? "queued" : "duplicate",
                       queued, ctx->nevents - queued);

    for (i = 0; i < ctx->nevents; i++) {
        if (!ngx_http_webhook_pushed(ctx, reply, i)) {
            continue;
        }

        last = ngx_sprintf(last, "%s\"%V\"",
                           last[-1] == '[' ? "" : ",", &ctx->ids[i]);
    }

    last = ngx_cpymem(last, "]}", 2);

    return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                      queued ? ngx_http_webhook_queued
                                             : ngx_http_webhook_duplicate,
                                      p, last - p);
}


/* the 400 of a kept body, whatever became of the entry */

static ngx_int_t
ngx_http_webhook_rejected_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: redis refused the rejected body: %*s",
                      (size_t) reply->len, reply->str);
    }

    return ngx_http_webhook_send_json(r, NGX_HTTP_BAD_REQUEST,
                                      ctx->reject_result,
                                      ctx->error_body.data,
                                      ctx->error_body.len);
}


/*
 * Whether event i was pushed: always with a plain LPUSH; with the script,
 * its answer for the event is 1, else the id of the first envelope.
 */

static ngx_uint_t
ngx_http_webhook_pushed(ngx_http_webhook_ctx_t *ctx, redisReply *reply,
    ngx_uint_t i)
{
    if (ctx->lpush) {
        return 1;
    }

    return reply->element[i]->type == REDIS_REPLY_INTEGER
           && reply->element[i]->integer == 1;
}


static void
ngx_http_webhook_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_ctx_t  *ctx = ev->data;

    ngx_int_t            rc;
    ngx_uint_t           slot;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    /* the request may be freed by its answer: its slot is read first */
    slot = ngx_http_webhook_slot(r);

    ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                  "webhook: redis did not acknowledge the event in time");

    if (ctx->cmd) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    if (ngx_http_webhook_spooled_events(r, ctx)) {
        rc = ngx_http_webhook_spool(r, ctx, "redis timed out");

        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }

        ngx_http_webhook_redis_timed_out(slot);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_http_finalize_request(r, ctx->rejected
        ? ngx_http_webhook_rejected_answer(r, ctx, NULL)
        : ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  ngx_http_webhook_unavailable, "unavailable",
                                  "the queue did not answer in time, "
                                  "retry later"));

    /* a stuck connection fails the other waiting requests at once */

    ngx_http_webhook_redis_timed_out(slot);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_webhook_cleanup(void *data)
{
    ngx_http_webhook_ctx_t  *ctx = data;

    if (ctx->cmd) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    ngx_http_webhook_spool_cancel(ctx);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}

