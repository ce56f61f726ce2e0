
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The one owner of the answer about a request's events.  Its items
 * (ngx_http_webhook_prepare.c) go to Redis, by the enqueue script or one
 * LPUSH, under webhook_redis_timeout; to the spool when Redis cannot take
 * them now, under the spool's wait; Odoo's test writes a probe key; a body
 * answered 400 is kept in the rejected list first.  Whatever comes back (a
 * reply, the disk's answer, a timer), the answer is written here, and the
 * request finalized here, once.
 *
 *   READING -> REDIS -(reply)-> DONE
 *                 `-(timer, refused, lost)-> SPOOL -(written)-> DONE
 *   READING -(the spool holds the queue)---^     `-(timer)---> DONE
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"


static ngx_int_t ngx_http_webhook_call(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_script_t *script);
static ngx_uint_t ngx_http_webhook_spool_on(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_to_spool(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, const char *why);
static void ngx_http_webhook_spooled(ngx_http_webhook_spool_wait_t *wait,
    ngx_int_t rc);
static ngx_int_t ngx_http_webhook_spooled_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_reply(void *data, redisReply *reply,
    ngx_uint_t failure);
static ngx_int_t ngx_http_webhook_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply, ngx_uint_t failure);
static ngx_int_t ngx_http_webhook_queued_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_webhook_event_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply, ngx_uint_t queued);
static ngx_int_t ngx_http_webhook_batch_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply, ngx_uint_t queued);
static ngx_int_t ngx_http_webhook_checked(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_webhook_rejected_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply);
static ngx_uint_t ngx_http_webhook_pushed(ngx_http_webhook_ctx_t *ctx,
    redisReply *reply, ngx_uint_t i);
static ngx_int_t ngx_http_webhook_unavailable(ngx_http_request_t *r,
    char *message);
static void ngx_http_webhook_redis_timeout(ngx_event_t *ev);
static void ngx_http_webhook_spool_timeout(ngx_event_t *ev);
static void ngx_http_webhook_wait(ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_step_e step, ngx_event_handler_pt handler,
    ngx_msec_t ms);
static void ngx_http_webhook_finish(ngx_http_webhook_ctx_t *ctx,
    ngx_int_t rc);
static void ngx_http_webhook_cleanup(void *data);


/* the slot of the location's queue, for Redis Cluster */
#define ngx_http_webhook_slot(r)                                             \
    ((ngx_http_webhook_loc_conf_t *)                                         \
         ngx_http_get_module_loc_conf(r, ngx_http_webhook_module))->slot


#if (NGX_DEBUG)
/* the steps by name, for the debug log */
static char  *ngx_http_webhook_steps[] = {
    "reading", "redis", "spool", "done"
};
#endif


/* the request's items (ngx_http_webhook_prepare()) to Redis, or the spool */

ngx_int_t
ngx_http_webhook_enqueue(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    u_char                        *nums;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    ctx->call = NGX_HTTP_WEBHOOK_CALL_EVENTS;

    if (ngx_http_webhook_spool_on(r, ctx)
        && ngx_http_webhook_spool_holds(wlcf->queue_index))
    {
        return ngx_http_webhook_to_spool(r, ctx, "behind the spooled events");
    }

    ctx->argv = ngx_palloc(r->pool, NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(ctx->nevents)
                                    * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool,
                              NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(ctx->nevents)
                              * sizeof(size_t));
    nums = ngx_pnalloc(r->pool, NGX_HTTP_WEBHOOK_ENQUEUE_NUMS(ctx->nevents));

    if (ctx->argv == NULL || ctx->argvlen == NULL || nums == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_webhook_lpush_args(ctx->items, ctx->nevents, ctx->argv,
                                    ctx->argvlen, &ctx->argc)
        == NGX_OK)
    {
        ctx->lpush = 1;
        return ngx_http_webhook_call(r, ctx, NULL);
    }

    ctx->argc = ngx_http_webhook_enqueue_args(ctx->items, ctx->nevents,
                                              ctx->argv, ctx->argvlen, nums);

    return ngx_http_webhook_call(r, ctx, &wmcf->redis.enqueue);
}


/*
 * Odoo's test buttons: answered 200 only when a real event would be taken
 * now.  A write that Redis refuses when it would refuse the events (OOM,
 * READONLY, LOADING, MASTERDOWN, NOPERM), under the wait's own timer:
 * SET <queue>:probe <request id> PX 60000.
 */

ngx_int_t
ngx_http_webhook_probe(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    u_char                       *p;
    ngx_http_variable_value_t    *vv;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    vv = ngx_http_webhook_request_id(r);
    if (vv == NULL) {
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

    ctx->call = NGX_HTTP_WEBHOOK_CALL_PROBE;
    ctx->lpush = 1;

    return ngx_http_webhook_call(r, ctx, NULL);
}


/*
 * A body refused for what it holds (400): kept in the rejected list, when
 * the location keeps them and Redis is up, then answered; else answered
 * now.  Another status (413 of a batch too long) is answered now.
 */

ngx_int_t
ngx_http_webhook_invalid(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_uint_t status, char *code, u_char *message, size_t len)
{
    ngx_uint_t                     result;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    result = (status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
             ? NGX_HTTP_WEBHOOK_RESULT_TOO_LARGE
             : NGX_HTTP_WEBHOOK_RESULT_INVALID;

    if (status != NGX_HTTP_BAD_REQUEST || ctx->body.data == NULL
        || wlcf->rejected_max == 0 || !ngx_http_webhook_redis_up(wlcf->slot))
    {
        return ngx_http_webhook_send_error(r, status, result, code, message,
                                           len);
    }

    if (ngx_http_webhook_error_json(r->pool, &ctx->error_body, code, message,
                                    len)
        != NGX_OK
        || ngx_http_webhook_rejected_call(r, ctx, &ctx->error_body) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->reject_result = result;
    ctx->call = NGX_HTTP_WEBHOOK_CALL_REJECTED;

    if (ngx_http_webhook_call(r, ctx, &wmcf->redis.reject) == NGX_DONE) {
        return NGX_DONE;
    }

    /* not kept: answered all the same */

    return ngx_http_webhook_send_json(r, NGX_HTTP_BAD_REQUEST, result,
                                      ctx->error_body.data,
                                      ctx->error_body.len);
}


/* the call of ctx->argv to Redis (a script, or a command of its own) */

static ngx_int_t
ngx_http_webhook_call(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_script_t *script)
{
    ngx_http_cleanup_t            *cln;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    ctx->cmd = ngx_http_webhook_redis_eval(script, ngx_http_webhook_slot(r),
                                           ctx->argc, ctx->argv,
                                           ctx->argvlen,
                                           ngx_http_webhook_reply, ctx);
    if (ctx->cmd == NULL) {

        if (ctx->call == NGX_HTTP_WEBHOOK_CALL_REJECTED) {
            return NGX_DECLINED;
        }

        if (ngx_http_webhook_spool_on(r, ctx)) {
            return ngx_http_webhook_to_spool(r, ctx,
                                             "redis is not connected");
        }

        return ngx_http_webhook_unavailable(r, "the queue is unavailable, "
                                               "retry later");
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_webhook_cleanup;
    cln->data = ctx;

    ngx_http_webhook_wait(ctx, NGX_HTTP_WEBHOOK_STEP_REDIS,
                          ngx_http_webhook_redis_timeout,
                          wmcf->redis.timeout);

    return NGX_DONE;
}


/* the request's events go to the spool when Redis cannot take them */

static ngx_uint_t
ngx_http_webhook_spool_on(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    return ctx->call == NGX_HTTP_WEBHOOK_CALL_EVENTS && !ctx->lpush
           && wlcf->spool && ngx_http_webhook_spool_ready();
}


/*
 * The items to the spool: NGX_DONE while they are written (the spool's
 * handler answers), or the answer now when the spool cannot take them.
 */

static ngx_int_t
ngx_http_webhook_to_spool(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    const char *why)
{
    ngx_int_t                     rc;
    ngx_http_cleanup_t           *cln;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    ctx->spool.handler = ngx_http_webhook_spooled;
    ctx->spool.data = ctx;

    rc = ngx_http_webhook_spool_write(wlcf->queue_index, ctx->items,
                                      ctx->nevents, why, &ctx->spool,
                                      r->connection->log);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return ngx_http_webhook_unavailable(r, "the queue is unavailable and "
                                               "the spool is full, retry "
                                               "later");

    case NGX_HTTP_WEBHOOK_SPOOL_TOO_LARGE:
        return ngx_http_webhook_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       NGX_HTTP_WEBHOOK_RESULT_TOO_LARGE,
                                       "too_large",
                                       "the queue is unavailable and the "
                                       "event is larger than the spool "
                                       "keeps, retry later");

    case NGX_BUSY:
        return ngx_http_webhook_unavailable(r, "the queue is unavailable and "
                                               "the spool is busy, retry "
                                               "later");

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->step == NGX_HTTP_WEBHOOK_STEP_READING) {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            (void) ngx_http_webhook_spool_cancel(&ctx->spool);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_webhook_cleanup;
        cln->data = ctx;
    }

    ngx_http_webhook_wait(ctx, NGX_HTTP_WEBHOOK_STEP_SPOOL,
                          ngx_http_webhook_spool_timeout,
                          NGX_HTTP_WEBHOOK_SPOOL_TIMEOUT);

    return NGX_DONE;
}


/* the spool's answer: the items are on disk, or could not be kept */

static void
ngx_http_webhook_spooled(ngx_http_webhook_spool_wait_t *wait, ngx_int_t rc)
{
    ngx_http_webhook_ctx_t  *ctx = wait->data;

    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_http_webhook_finish(ctx,
        (rc == NGX_OK) ? ngx_http_webhook_spooled_answer(r, ctx)
                       : ngx_http_webhook_unavailable(r,
                                 "the queue is unavailable and the spool "
                                 "could not keep the event, retry later"));
}


/* {"status":"spooled","id":...,"priority":...}, or a batch's ids */

static ngx_int_t
ngx_http_webhook_spooled_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   i;

    len = sizeof("{\"status\":\"spooled\",\"spooled\":,\"ids\":[]}")
          + NGX_INT_T_LEN + sizeof(",\"priority\":\"medium\"");

    for (i = 0; i < ctx->nevents; i++) {
        len += ctx->ids[i].len + 3;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!ctx->batch) {
        last = ngx_sprintf(p, "{\"status\":\"spooled\",\"id\":\"%V\","
                           "\"priority\":\"%V\"}", &ctx->ids[0],
                           &ngx_http_webhook_priorities[ctx->priorities[0]]);

    } else {
        last = ngx_sprintf(p, "{\"status\":\"spooled\",\"spooled\":%ui,"
                           "\"ids\":[", ctx->nevents);

        for (i = 0; i < ctx->nevents; i++) {
            last = ngx_sprintf(last, "%s\"%V\"", i ? "," : "", &ctx->ids[i]);
        }

        last = ngx_cpymem(last, "]}", 2);
    }

    return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                      NGX_HTTP_WEBHOOK_RESULT_SPOOLED,
                                      p, last - p);
}


/* Redis's reply, or NULL with why (NGX_HTTP_WEBHOOK_REDIS_LOST, ...) */

static void
ngx_http_webhook_reply(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_ctx_t  *ctx = data;

    ngx_int_t  rc;

    ctx->cmd = NULL;

    rc = ngx_http_webhook_answer(ctx->request, ctx, reply, failure);

    if (rc == NGX_DONE) {
        return;                 /* spooling */
    }

    ngx_http_webhook_finish(ctx, rc);
}


static ngx_int_t
ngx_http_webhook_answer(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    redisReply *reply, ngx_uint_t failure)
{
    u_char     *p, *last;
    ngx_str_t   text;
    u_char      buf[NGX_HTTP_WEBHOOK_LOG_TEXT];

    if (ctx->call == NGX_HTTP_WEBHOOK_CALL_REJECTED) {
        return ngx_http_webhook_rejected_answer(r, ctx, reply);
    }

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        (void) ngx_http_webhook_log_text(&text, buf, sizeof(buf), reply->str,
                                         reply->len);
    }

    if (ngx_http_webhook_spool_on(r, ctx)
        && (reply == NULL || reply->type == REDIS_REPLY_ERROR
            || reply->type == REDIS_REPLY_INTEGER))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "webhook: redis refused the events (%V): they "
                          "are spooled", &text);
        }

        return ngx_http_webhook_to_spool(r, ctx,
                                         reply == NULL
                                         ? "redis connection lost"
                                         : reply->type == REDIS_REPLY_ERROR
                                         ? "redis refused"
                                         : "the queue is at its depth limit");
    }

    if (reply == NULL) {
        /* REPLICAS: in Redis, but not on enough replicas (WAIT) */
        return ngx_http_webhook_unavailable(r,
                   failure == NGX_HTTP_WEBHOOK_REDIS_REPLICAS
                   ? "the queue's replicas did not acknowledge the event, "
                     "retry later"
                   : "the queue is unavailable, retry later");
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: redis refused the %s: %V",
                      ctx->call == NGX_HTTP_WEBHOOK_CALL_PROBE
                      ? "test's write" : "events", &text);

        if (ctx->call == NGX_HTTP_WEBHOOK_CALL_PROBE) {
            p = ngx_pnalloc(r->pool, reply->len + sizeof("redis: "));
            if (p == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            last = ngx_sprintf(p, "redis: %*s", (size_t) reply->len,
                               reply->str);

            return ngx_http_webhook_send_error(r,
                                       NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                       "unavailable", p, last - p);
        }

        return ngx_http_webhook_unavailable(r, "the queue refused the event, "
                                               "retry later");
    }

    if (ctx->call == NGX_HTTP_WEBHOOK_CALL_PROBE) {
        return ngx_http_webhook_checked(r, reply);
    }

    if (!ctx->lpush && reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_OVERLOADED,
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

        return ngx_http_webhook_unavailable(r, "the queue gave an unexpected "
                                               "answer, retry later");
    }

    return ngx_http_webhook_queued_answer(r, ctx, reply);
}


/* the events are in Redis (or were already): counted, then answered */

static ngx_int_t
ngx_http_webhook_queued_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply)
{
    ngx_uint_t  i, queued, warned;

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

    return ctx->batch ? ngx_http_webhook_batch_answer(r, ctx, reply, queued)
                      : ngx_http_webhook_event_answer(r, ctx, reply, queued);
}


/* one event: queued or duplicate, its envelope id and priority */

static ngx_int_t
ngx_http_webhook_event_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply, ngx_uint_t queued)
{
    u_char     *p, *last;
    size_t      len;
    ngx_str_t   id;

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
                                      queued
                                      ? NGX_HTTP_WEBHOOK_RESULT_QUEUED
                                      : NGX_HTTP_WEBHOOK_RESULT_DUPLICATE,
                                      p, last - p);
}


/* a batch: how many queued, how many duplicates, the ids queued */

static ngx_int_t
ngx_http_webhook_batch_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply, ngx_uint_t queued)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   i;

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
                                      queued
                                      ? NGX_HTTP_WEBHOOK_RESULT_QUEUED
                                      : NGX_HTTP_WEBHOOK_RESULT_DUPLICATE,
                                      p, last - p);
}


/* Odoo's test: the SET went through */

static ngx_int_t
ngx_http_webhook_checked(ngx_http_request_t *r, redisReply *reply)
{
    u_char  *p;

    if (reply->type != REDIS_REPLY_STATUS) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: unexpected reply of the test's SET");

        return ngx_http_webhook_unavailable(r, "the queue gave an unexpected "
                                               "answer");
    }

    p = (u_char *) "{\"status\":\"ok\",\"test\":true}";

    return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                      NGX_HTTP_WEBHOOK_RESULT_TEST,
                                      p, ngx_strlen(p));
}


/* the 400 of a kept body, whatever became of the entry */

static ngx_int_t
ngx_http_webhook_rejected_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply)
{
    ngx_str_t  text;
    u_char     buf[NGX_HTTP_WEBHOOK_LOG_TEXT];

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: redis refused the rejected body: %V",
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));
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


static ngx_int_t
ngx_http_webhook_unavailable(ngx_http_request_t *r, char *message)
{
    return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                   "unavailable", message);
}


/* the state REDIS ends without a reply: the spool, else 503 (or the 400) */

static void
ngx_http_webhook_redis_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_ctx_t  *ctx = ev->data;

    ngx_int_t            rc;
    ngx_uint_t           slot;
    ngx_http_request_t  *r;

    r = ctx->request;

    /* the request may be freed by its answer: its slot is read first */
    slot = ngx_http_webhook_slot(r);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                  "webhook: redis did not acknowledge the event in time");

    if (ctx->cmd) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    if (ngx_http_webhook_spool_on(r, ctx)) {
        rc = ngx_http_webhook_to_spool(r, ctx, "redis timed out");

    } else if (ctx->call == NGX_HTTP_WEBHOOK_CALL_REJECTED) {
        rc = ngx_http_webhook_rejected_answer(r, ctx, NULL);

    } else {
        rc = ngx_http_webhook_unavailable(r, "the queue did not answer in "
                                             "time, retry later");
    }

    /* a stuck connection fails the other waiting requests at once */

    ngx_http_webhook_redis_timed_out(slot);

    if (rc != NGX_DONE) {
        ngx_http_webhook_finish(ctx, rc);
    }
}


/*
 * The state SPOOL ends without the disk's answer (a stalled disk): a 503.
 * Records not written yet are taken back; a write already in flight goes
 * on, and its events may still be delivered (the docs say so: at least
 * once).
 */

static void
ngx_http_webhook_spool_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_ctx_t  *ctx = ev->data;

    ngx_uint_t           taken;
    ngx_http_request_t  *r;

    r = ctx->request;

    taken = ngx_http_webhook_spool_cancel(&ctx->spool);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                  "webhook: the spool did not sync the event in time%s",
                  taken ? "" : " (its write goes on: it may still be "
                               "delivered)");

    ngx_http_webhook_finish(ctx,
        ngx_http_webhook_unavailable(r, "the queue is unavailable and the "
                                        "spool did not answer in time, "
                                        "retry later"));
}


/* a state with its timer: not cancelable, a graceful shutdown waits */

static void
ngx_http_webhook_wait(ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_step_e step, ngx_event_handler_pt handler,
    ngx_msec_t ms)
{
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "webhook enqueue: %s -> %s, %M ms",
                   ngx_http_webhook_steps[ctx->step],
                   ngx_http_webhook_steps[step], ms);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ctx->step = step;
    ctx->timer.handler = handler;
    ctx->timer.data = ctx;
    ctx->timer.log = ctx->request->connection->log;

    ngx_add_timer(&ctx->timer, ms);
}


/* the one place a waiting request is answered and finalized */

static void
ngx_http_webhook_finish(ngx_http_webhook_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "webhook enqueue: %s -> done, %i",
                   ngx_http_webhook_steps[ctx->step], rc);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ctx->step = NGX_HTTP_WEBHOOK_STEP_DONE;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the request goes away first (a client gone, a worker exiting) */

static void
ngx_http_webhook_cleanup(void *data)
{
    ngx_http_webhook_ctx_t  *ctx = data;

    if (ctx->cmd) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    (void) ngx_http_webhook_spool_cancel(&ctx->spool);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}
