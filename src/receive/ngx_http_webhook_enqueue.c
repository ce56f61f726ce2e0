
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The enqueue of a request's events: the call that
 * ngx_http_webhook_enqueue_args.c built (the script, a plain LPUSH, or the
 * test's SET) sent to Redis under the wait's timer, or to the spool, and
 * its reply turned into the answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "core/ngx_http_webhook_core.h"
#include "ngx_http_webhook_auth.h"
#include "ngx_http_webhook_receive.h"
#include "stats/ngx_http_webhook_stats.h"
#include "spool/ngx_http_webhook_spool.h"


static ngx_uint_t ngx_http_webhook_spooled_events(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_enqueued(void *data, redisReply *reply);
static ngx_int_t ngx_http_webhook_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply);
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
static void ngx_http_webhook_timeout(ngx_event_t *ev);
static void ngx_http_webhook_cleanup(void *data);


/* the slot of the location's queue, for Redis Cluster */
#define ngx_http_webhook_slot(r)                                             \
    ((ngx_http_webhook_loc_conf_t *)                                         \
         ngx_http_get_module_loc_conf(r, ngx_http_webhook_module))->slot


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
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
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
    u_char     *p, *last;
    u_char      buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t   text;

    if (ctx->rejected) {
        return ngx_http_webhook_rejected_answer(r, ctx, reply);
    }

    if (ngx_http_webhook_spooled_events(r, ctx)
        && (reply == NULL || reply->type == REDIS_REPLY_ERROR
            || reply->type == REDIS_REPLY_INTEGER))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "webhook: redis refused the events (%V): they "
                          "are spooled",
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                    reply->str, reply->len));
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
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
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
                      "webhook: redis refused the %s: %V",
                      ctx->probe ? "test's write" : "events",
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));

        if (ctx->probe) {
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

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                       "unavailable",
                                       "the queue refused the event, "
                                       "retry later");
    }

    if (ctx->probe) {
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

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                       "unavailable",
                                       "the queue gave an unexpected answer, "
                                       "retry later");
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
                                      queued ? NGX_HTTP_WEBHOOK_RESULT_QUEUED
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
                                      queued ? NGX_HTTP_WEBHOOK_RESULT_QUEUED
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

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                       "unavailable",
                                       "the queue gave an unexpected answer");
    }

    p = (u_char *) "{\"status\":\"ok\",\"test\":true}";

    return ngx_http_webhook_send_json(r, NGX_HTTP_OK, NGX_HTTP_WEBHOOK_RESULT_TEST,
                                      p, ngx_strlen(p));
}


/* the 400 of a kept body, whatever became of the entry */

static ngx_int_t
ngx_http_webhook_rejected_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply)
{
    u_char     buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t  text;

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
                                  NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE, "unavailable",
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

