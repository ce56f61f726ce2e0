
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status location's handler: the status script sent to Redis once for
 * all the queues (with Cluster, once a queue, on its slot's primary),
 * under webhook_redis_timeout; each reply read into the snapshot; once
 * all are in (or the timer fires, or none could be sent), the snapshot
 * completed from shared memory and written in JSON or Prometheus text.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"
#include "ngx_http_webhook_status.h"
#include "ngx_http_webhook_status_snapshot.h"


typedef struct ngx_http_webhook_status_ctx_s  ngx_http_webhook_status_ctx_t;


/* one status script call: all the queues, or with Cluster one queue */

typedef struct {
    ngx_http_webhook_status_ctx_t  *ctx;
    ngx_http_webhook_cmd_t         *cmd;
    ngx_uint_t                      first;    /* of the queues asked */
    ngx_uint_t                      n;
} ngx_http_webhook_status_call_t;


struct ngx_http_webhook_status_ctx_s {
    ngx_http_request_t             *request;
    ngx_http_webhook_snapshot_t    *snapshot;
    ngx_http_webhook_status_call_t *calls;
    ngx_uint_t                      ncalls;
    ngx_uint_t                      pending;
    ngx_uint_t                      failed;   /* calls not answered */
    ngx_event_t                     timer;
    ngx_uint_t                      prometheus;
};


static ngx_int_t ngx_http_webhook_status_query(ngx_http_request_t *r,
    ngx_http_webhook_status_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_status_call(ngx_http_request_t *r,
    ngx_http_webhook_status_call_t *call);
static u_char *ngx_http_webhook_status_key(ngx_pool_t *pool, size_t *len,
    ngx_str_t *queue, char *kind, ngx_str_t *prio);
static void ngx_http_webhook_status_reply(void *data,
    redisReply *reply, ngx_uint_t failure);
static void ngx_http_webhook_status_cancel(
    ngx_http_webhook_status_ctx_t *ctx);
static void ngx_http_webhook_status_timeout(ngx_event_t *ev);
static void ngx_http_webhook_status_cleanup(void *data);
static void ngx_http_webhook_status_done(ngx_http_webhook_status_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_status_send(ngx_http_request_t *r,
    ngx_http_webhook_status_ctx_t *ctx, ngx_uint_t up);
static ngx_uint_t ngx_http_webhook_status_wants_text(ngx_http_request_t *r);


ngx_int_t
ngx_http_webhook_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_http_cleanup_t             *cln;
    ngx_http_webhook_status_ctx_t  *ctx;
    ngx_http_webhook_main_conf_t   *wmcf;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_webhook_status_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->prometheus = ngx_http_webhook_status_wants_text(r);

    ctx->snapshot = ngx_http_webhook_snapshot_create(r->pool, wmcf);
    if (ctx->snapshot == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_webhook_status_cleanup;
    cln->data = ctx;

    rc = ngx_http_webhook_status_query(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        /* Redis is down: an answer all the same, that says so */
        return ngx_http_webhook_status_send(r, ctx, ctx->ncalls == 0
                   && ngx_http_webhook_redis_up(NGX_HTTP_WEBHOOK_ANY_SLOT));
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The status script once for all the queues; with Cluster, once a queue,
 * on its slot's primary.  NGX_DECLINED: none could be sent.
 */

static ngx_int_t
ngx_http_webhook_status_query(ngx_http_request_t *r,
    ngx_http_webhook_status_ctx_t *ctx)
{
    ngx_uint_t                      i, nq, cluster;
    ngx_http_webhook_status_call_t *call;
    ngx_http_webhook_main_conf_t   *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    nq = wmcf->queues.names.nelts;
    cluster = ngx_http_webhook_cluster_on();

    ctx->ncalls = cluster ? nq : 1;
    ctx->failed = ctx->ncalls;

    if (ctx->ncalls) {
        ctx->calls = ngx_pcalloc(r->pool, ctx->ncalls
                                 * sizeof(ngx_http_webhook_status_call_t));
        if (ctx->calls == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < ctx->ncalls; i++) {
        call = &ctx->calls[i];
        call->ctx = ctx;
        call->first = cluster ? i : 0;
        call->n = cluster ? 1 : nq;

        if (ngx_http_webhook_status_call(r, call) == NGX_OK) {
            ctx->pending++;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "webhook status: %ui queues, %ui of %ui calls sent",
                   nq, ctx->pending, ctx->ncalls);

    if (ctx->pending == 0) {
        return NGX_DECLINED;
    }

    ctx->timer.handler = ngx_http_webhook_status_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, wmcf->redis.timeout);

    return NGX_OK;
}


/*
 * EVALSHA <sha> <numkeys>, then the keys: the queue and dead list of each
 * priority of each queue, each queue's rejected list twice (the script
 * reads pairs), each queue's reconcilers; then ARGV: the number of
 * reconcilers' keys, and the queues (their consumers' events in flight)
 */

static ngx_int_t
ngx_http_webhook_status_call(ngx_http_request_t *r,
    ngx_http_webhook_status_call_t *call)
{
    u_char                        *nums;
    size_t                        *argvlen;
    ngx_str_t                     *queue;
    ngx_uint_t                     i, k, prio, nkeys, slot;
    const char                   **argv;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    slot = call->n ? wmcf->queues.slots[call->first]
                   : NGX_HTTP_WEBHOOK_ANY_SLOT;

    if (!ngx_http_webhook_redis_up(slot)) {
        return NGX_DECLINED;
    }

    nkeys = call->n * ((NGX_HTTP_WEBHOOK_NPRIO + 1) * 2 + 1);

    argv = ngx_palloc(r->pool, (4 + nkeys + call->n) * sizeof(char *));
    argvlen = ngx_palloc(r->pool, (4 + nkeys + call->n) * sizeof(size_t));
    nums = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN);
    if (argv == NULL || argvlen == NULL || nums == NULL) {
        return NGX_ERROR;
    }

    argv[2] = (char *) nums;
    argvlen[2] = ngx_sprintf(nums, "%ui", nkeys) - nums;

    queue = (ngx_str_t *) wmcf->queues.names.elts + call->first;
    k = 3;

    for (i = 0; i < call->n; i++) {
        for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
            argv[k] = (char *) ngx_http_webhook_status_key(r->pool,
                                  &argvlen[k], &queue[i], ":queue:",
                                  &ngx_http_webhook_priorities[prio]);
            argv[k + 1] = (char *) ngx_http_webhook_status_key(r->pool,
                                  &argvlen[k + 1], &queue[i], ":dead:",
                                  &ngx_http_webhook_priorities[prio]);
            if (argv[k] == NULL || argv[k + 1] == NULL) {
                return NGX_ERROR;
            }

            k += 2;
        }
    }

    for (i = 0; i < call->n; i++, k += 2) {
        argv[k] = (char *) ngx_http_webhook_status_key(r->pool, &argvlen[k],
                                                       &queue[i],
                                                       ":rejected", NULL);
        if (argv[k] == NULL) {
            return NGX_ERROR;
        }

        argv[k + 1] = argv[k];
        argvlen[k + 1] = argvlen[k];
    }

    for (i = 0; i < call->n; i++, k++) {
        argv[k] = (char *) ngx_http_webhook_status_key(r->pool, &argvlen[k],
                                                       &queue[i],
                                                       ":reconcilers", NULL);
        if (argv[k] == NULL) {
            return NGX_ERROR;
        }
    }

    argv[k] = (char *) nums + NGX_INT_T_LEN;
    argvlen[k] = ngx_sprintf(nums + NGX_INT_T_LEN, "%ui", call->n)
                 - (nums + NGX_INT_T_LEN);
    k++;

    for (i = 0; i < call->n; i++, k++) {
        argv[k] = (char *) queue[i].data;
        argvlen[k] = queue[i].len;
    }

    call->cmd = ngx_http_webhook_redis_eval(&wmcf->redis.status, slot, k, argv,
                                            argvlen,
                                            ngx_http_webhook_status_reply,
                                            call);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "webhook status: the status script for %ui queues from "
                   "#%ui: %s", call->n, call->first,
                   call->cmd ? "sent" : "not sent");

    return call->cmd ? NGX_OK : NGX_DECLINED;
}


/* <queue><kind><prio>, as "orders:queue:high", in the pool */

static u_char *
ngx_http_webhook_status_key(ngx_pool_t *pool, size_t *len, ngx_str_t *queue,
    char *kind, ngx_str_t *prio)
{
    u_char     *p;
    size_t      size;
    ngx_str_t   none = ngx_null_string;

    if (prio == NULL) {
        prio = &none;
    }

    size = queue->len + ngx_strlen(kind) + prio->len;

    p = ngx_pnalloc(pool, size);
    if (p == NULL) {
        return NULL;
    }

    *len = ngx_snprintf(p, size, "%V%s%V", queue, kind, prio) - p;

    return p;
}


static void
ngx_http_webhook_status_reply(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_status_call_t *call = data;

    u_char                          buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                       text;
    ngx_log_t                      *log;
    ngx_http_request_t             *r;
    ngx_http_webhook_status_ctx_t  *ctx;

    (void) failure;             /* a read: no reply is no depth */

    ctx = call->ctx;
    r = ctx->request;
    log = r->connection->log;
    call->cmd = NULL;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "webhook: redis refused the status query: %V",
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));
    }

    if (ngx_http_webhook_snapshot_read(ctx->snapshot, r->pool, call->first,
                                       call->n, reply, log)
        == NGX_OK)
    {
        ctx->failed--;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
                   "webhook status: the reply for %ui queues from #%ui, "
                   "%ui calls unanswered, %ui pending",
                   call->n, call->first, ctx->failed, ctx->pending - 1);

    if (--ctx->pending) {
        return;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_http_webhook_status_done(ctx);
}


static void
ngx_http_webhook_status_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_status_ctx_t  *ctx = ev->data;

    ngx_log_error(NGX_LOG_ERR, ev->log, NGX_ETIMEDOUT,
                  "webhook: redis did not answer the status query in time");

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "webhook status: timed out, %ui of %ui calls unanswered",
                   ctx->pending, ctx->ncalls);

    ngx_http_webhook_status_cancel(ctx);

    ngx_http_webhook_status_done(ctx);
}


static void
ngx_http_webhook_status_cleanup(void *data)
{
    ngx_http_webhook_status_ctx_t  *ctx = data;

    ngx_http_webhook_status_cancel(ctx);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


static void
ngx_http_webhook_status_cancel(ngx_http_webhook_status_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->ncalls; i++) {
        if (ctx->calls[i].cmd) {
            ngx_http_webhook_redis_cancel(ctx->calls[i].cmd);
            ctx->calls[i].cmd = NULL;
        }
    }

    ctx->pending = 0;
}


static void
ngx_http_webhook_status_done(ngx_http_webhook_status_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    /* up: every queue's node answered */

    ngx_http_finalize_request(r, ngx_http_webhook_status_send(r, ctx,
                                                          ctx->failed == 0));
    ngx_http_run_posted_requests(c);
}


static ngx_uint_t
ngx_http_webhook_status_wants_text(ngx_http_request_t *r)
{
    ngx_str_t         format;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        return format.len == 10
               && ngx_strncmp(format.data, "prometheus", 10) == 0;
    }

    h = r->headers_in.accept;

    if (h == NULL) {
        return 0;
    }

    return ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                            (u_char *) "text/plain", 10 - 1) != NULL
           && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                               (u_char *) "json", 4 - 1) == NULL;
}


static ngx_int_t
ngx_http_webhook_status_send(ngx_http_request_t *r,
    ngx_http_webhook_status_ctx_t *ctx, ngx_uint_t up)
{
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_uint_t                     i;
    ngx_chain_t                    out;
    ngx_http_webhook_snapshot_t   *snap;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);
    snap = ctx->snapshot;

    snap->up = up;

    /*
     * The depths' Prometheus families: when a queue's were read, when
     * every call was answered, or when none was to be made (Cluster, no
     * queue) and Redis is up
     */

    snap->depths = (ctx->ncalls && ctx->failed == 0)
                   || (ctx->ncalls == 0 && up);

    for (i = 0; i < snap->nqueues; i++) {
        if (snap->queues[i].read) {
            snap->depths = 1;
        }
    }

    if (ngx_http_webhook_snapshot_fill(snap, r->pool, wmcf) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_http_webhook_out_answer(r, ctx->prometheus
                                       ? ngx_http_webhook_status_text
                                       : ngx_http_webhook_status_json,
                                    snap);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "webhook status: the answer in %s, %uz bytes, redis up: "
                   "%ui", ctx->prometheus ? "Prometheus text" : "JSON",
                   (size_t) (b->last - b->pos), up);

    if (ctx->prometheus) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
