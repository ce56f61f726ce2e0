
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status location: queue depths, dead letters and the age of the
 * oldest event, read live from Redis in one round trip (a script), and
 * the shared-memory counters; in JSON or in Prometheus text.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "receive/ngx_http_webhook_receive.h"
#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"
#include "stats/ngx_http_webhook_stats.h"
#include "ngx_http_webhook_status.h"


/* per queue and priority: LLEN queue, received_at of the oldest, LLEN dead */
#define NGX_HTTP_WEBHOOK_STATUS_FIELDS  3




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
    ngx_http_webhook_status_call_t *calls;
    ngx_uint_t                      ncalls;
    ngx_uint_t                      pending;
    ngx_uint_t                      failed;   /* calls not answered */
    ngx_http_webhook_depth_t       *depths;
    ngx_http_webhook_inflight_t    *inflight; /* per queue */
    ngx_uint_t                     *known;    /* per queue */
    ngx_http_webhook_reconcilers_t *reconcile;  /* per queue */
    ngx_event_t                     timer;
    ngx_uint_t                      prometheus;
};


static ngx_int_t ngx_http_webhook_status_query(ngx_http_request_t *r,
    ngx_http_webhook_status_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_status_call(ngx_http_request_t *r,
    ngx_http_webhook_status_call_t *call);
static void ngx_http_webhook_status_reply(void *data,
    redisReply *reply, ngx_uint_t failure);
static void ngx_http_webhook_status_read(ngx_http_webhook_status_call_t *call,
    redisReply *reply);
static void ngx_http_webhook_status_cancel(
    ngx_http_webhook_status_ctx_t *ctx);
static void ngx_http_webhook_status_timeout(ngx_event_t *ev);
static void ngx_http_webhook_status_cleanup(void *data);
static void ngx_http_webhook_status_done(ngx_http_webhook_status_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_status_send(ngx_http_request_t *r,
    ngx_http_webhook_status_ctx_t *ctx, ngx_uint_t up);
static ngx_uint_t ngx_http_webhook_status_wants_text(ngx_http_request_t *r);
static u_char *ngx_http_webhook_status_json(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_uint_t up,
    ngx_http_webhook_depth_t *depths, ngx_http_webhook_inflight_t *inflight,
    ngx_uint_t *known, ngx_http_webhook_reconcilers_t *reconcile);


ngx_int_t
ngx_http_webhook_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_http_cleanup_t             *cln;
    ngx_http_webhook_status_ctx_t  *ctx;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_webhook_status_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->prometheus = ngx_http_webhook_status_wants_text(r);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_webhook_status_cleanup;
    cln->data = ctx;

    if (ngx_http_webhook_status_query(r, ctx) != NGX_OK) {
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

    ctx->calls = ngx_pcalloc(r->pool, ctx->ncalls
                                  * sizeof(ngx_http_webhook_status_call_t));
    ctx->depths = ngx_palloc(r->pool, (nq * (NGX_HTTP_WEBHOOK_NPRIO + 1) + 1)
                                      * sizeof(ngx_http_webhook_depth_t));
    ctx->known = ngx_pcalloc(r->pool, (nq + 1) * sizeof(ngx_uint_t));
    ctx->inflight = ngx_pcalloc(r->pool,
                                (nq + 1) * sizeof(ngx_http_webhook_inflight_t));
    ctx->reconcile = ngx_pcalloc(r->pool, (nq + 1)
                                 * sizeof(ngx_http_webhook_reconcilers_t));

    if (ctx->calls == NULL || ctx->depths == NULL || ctx->known == NULL
        || ctx->inflight == NULL || ctx->reconcile == NULL)
    {
        return NGX_ERROR;
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

    if (ctx->pending == 0) {
        return NGX_DECLINED;
    }

    ctx->timer.handler = ngx_http_webhook_status_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, wmcf->redis.timeout);

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_status_call(ngx_http_request_t *r,
    ngx_http_webhook_status_call_t *call)
{
    u_char                        *p;
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

    /*
     * EVALSHA <sha> <numkeys> then queue and dead list of each priority,
     * then each queue's rejected list, twice (the script reads pairs),
     * then each queue's reconcilers; ARGV: the number of those, then the
     * queues (their consumers' events in flight)
     */

    nkeys = call->n * (NGX_HTTP_WEBHOOK_NPRIO + 1) * 2 + call->n;

    argv = ngx_palloc(r->pool, (4 + nkeys + call->n) * sizeof(char *));
    argvlen = ngx_palloc(r->pool, (4 + nkeys + call->n) * sizeof(size_t));
    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (argv == NULL || argvlen == NULL || p == NULL) {
        return NGX_ERROR;
    }

    argv[2] = (char *) p;
    argvlen[2] = ngx_sprintf(p, "%ui", nkeys) - p;

    queue = (ngx_str_t *) wmcf->queues.names.elts + call->first;
    k = 3;

    for (i = 0; i < call->n; i++) {
        for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {

            p = ngx_pnalloc(r->pool, 2 * (queue[i].len
                                          + sizeof(":queue:medium")));
            if (p == NULL) {
                return NGX_ERROR;
            }

            argv[k] = (char *) p;
            p = ngx_sprintf(p, "%V:queue:%V", &queue[i],
                            &ngx_http_webhook_priorities[prio]);
            argvlen[k] = p - (u_char *) argv[k];
            k++;

            argv[k] = (char *) p;
            p = ngx_sprintf(p, "%V:dead:%V", &queue[i],
                            &ngx_http_webhook_priorities[prio]);
            argvlen[k] = p - (u_char *) argv[k];
            k++;
        }
    }

    for (i = 0; i < call->n; i++) {
        p = ngx_pnalloc(r->pool, queue[i].len + sizeof(":rejected"));
        if (p == NULL) {
            return NGX_ERROR;
        }

        argv[k] = (char *) p;
        argvlen[k] = ngx_sprintf(p, "%V:rejected", &queue[i]) - p;
        argv[k + 1] = argv[k];
        argvlen[k + 1] = argvlen[k];
        k += 2;
    }

    k = ngx_http_webhook_status_reconcile_args(r, call->n, queue, argv,
                                               argvlen, k);
    if (k == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < call->n; i++, k++) {
        argv[k] = (char *) queue[i].data;
        argvlen[k] = queue[i].len;
    }

    call->cmd = ngx_http_webhook_redis_eval(&wmcf->redis.status, slot, k, argv,
                                            argvlen,
                                            ngx_http_webhook_status_reply,
                                            call);

    return call->cmd ? NGX_OK : NGX_DECLINED;
}


static void
ngx_http_webhook_status_reply(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_status_call_t *call = data;

    ngx_http_webhook_status_ctx_t  *ctx;

    (void) failure;             /* a read: no reply is no depth */

    ctx = call->ctx;
    call->cmd = NULL;

    ngx_http_webhook_status_read(call, reply);

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


/*
 * A call's answer: the depths by queue and priority, then each queue's
 * rejected list, into the places of its queues
 */

static void
ngx_http_webhook_status_read(ngx_http_webhook_status_call_t *call,
    redisReply *reply)
{
    u_char                          buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    int64_t                         oldest, now;
    ngx_str_t                       text;
    ngx_uint_t                      i, n, q, nq;
    redisReply                    **e;
    ngx_time_t                     *tp;
    ngx_http_webhook_depth_t       *d;
    ngx_http_webhook_status_ctx_t  *ctx;

    ctx = call->ctx;
    nq = ((ngx_http_webhook_main_conf_t *)
             ngx_http_get_module_main_conf(ctx->request,
                                           ngx_http_webhook_module))
         ->queues.names.nelts;

    n = call->n * (NGX_HTTP_WEBHOOK_NPRIO + 1);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "webhook: redis refused the status query: %V",
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements
           != n * NGX_HTTP_WEBHOOK_STATUS_FIELDS
              + call->n * (NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS + 1))
    {
        return;
    }

    ctx->failed--;

    e = reply->element;
    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    for (i = 0; i < n; i++, e += NGX_HTTP_WEBHOOK_STATUS_FIELDS) {

        if (i < call->n * NGX_HTTP_WEBHOOK_NPRIO) {
            d = &ctx->depths[call->first * NGX_HTTP_WEBHOOK_NPRIO + i];

        } else {
            q = i - call->n * NGX_HTTP_WEBHOOK_NPRIO;
            d = &ctx->depths[nq * NGX_HTTP_WEBHOOK_NPRIO + call->first + q];
        }

        d->depth = e[0]->integer;
        d->dead = e[2]->integer;
        d->age_ms = 0;

        if (e[1]->type == REDIS_REPLY_STRING) {
            oldest = ngx_http_webhook_time_parse((u_char *) e[1]->str,
                                                 e[1]->len);
            if (oldest >= 0 && now > oldest) {
                d->age_ms = now - oldest;
            }
        }
    }

    ngx_http_webhook_status_inflight_read(&ctx->inflight[call->first], e,
                                          call->n);

    e += call->n * NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS;

    for (i = 0; i < call->n; i++) {
        ctx->known[call->first + i] = 1;

        if (ngx_http_webhook_status_reconcile_read(ctx->request->pool,
                &ctx->reconcile[call->first + i], *e++)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          "webhook: the reconcilers of a queue could not "
                          "be read from the status query");
        }
    }
}


static void
ngx_http_webhook_status_done(ngx_http_webhook_status_ctx_t *ctx)
{
    ngx_uint_t           up;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    /* up: every queue's node answered */

    up = (ctx->failed == 0);

    ngx_http_finalize_request(r, ngx_http_webhook_status_send(r, ctx, up));
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
    size_t                         len;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_str_t                     *queue;
    ngx_uint_t                     i;
    ngx_chain_t                    out;
    ngx_http_webhook_depth_t      *depths;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    /* the depths when a queue's are known */

    depths = NULL;

    for (i = 0; ctx->known && i < wmcf->queues.names.nelts; i++) {
        if (ctx->known[i]) {
            depths = ctx->depths;
        }
    }

    /* every call answered, or none to make (Cluster, no queue) and up */

    if ((ctx->ncalls && ctx->failed == 0) || (ctx->ncalls == 0 && up)) {
        depths = ctx->depths;
    }

    /* a bound that depends on the number of queues, not on the traffic */

    /* the addresses are escaped: up to 6 bytes each (\u00XX) */
    len = 8192 + (wmcf->redis.addr_text.len + NGX_SOCKADDR_STRLEN * 2) * 6
          + NGX_HTTP_WEBHOOK_STATUS_SPOOL_ALL
          + NGX_HTTP_WEBHOOK_STATUS_CLUSTER_ALL
          + ngx_http_webhook_status_reconcile_len(wmcf, ctx->reconcile);
    queue = wmcf->queues.names.elts;

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        len += 6400 + 42 * 2 * queue[i].len
               + NGX_HTTP_WEBHOOK_STATUS_SPOOL(queue[i].len)
               + NGX_HTTP_WEBHOOK_STATUS_CLUSTER
               + NGX_HTTP_WEBHOOK_STATUS_INFLIGHT(queue[i].len);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->prometheus) {
        b->last = ngx_http_webhook_status_text(b->last, wmcf, up, depths,
                                               ctx->inflight, ctx->known,
                                               ctx->reconcile);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        b->last = ngx_http_webhook_status_json(b->last, wmcf, up, depths,
                                               ctx->inflight, ctx->known,
                                               ctx->reconcile);
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


static u_char *
ngx_http_webhook_status_json(u_char *p, ngx_http_webhook_main_conf_t *wmcf,
    ngx_uint_t up, ngx_http_webhook_depth_t *depths,
    ngx_http_webhook_inflight_t *inflight, ngx_uint_t *known,
    ngx_http_webhook_reconcilers_t *reconcile)
{
    ngx_str_t                    *queue, primary, sentinel;
    ngx_uint_t                    i, k, prio;
    ngx_atomic_uint_t             requests[NGX_HTTP_WEBHOOK_NRESULTS];
    ngx_atomic_uint_t             events[NGX_HTTP_WEBHOOK_NPRIO];
    ngx_http_webhook_stats_t     *stats;
    ngx_http_webhook_depth_t     *d;
    ngx_http_webhook_counters_t  *cnt;

    stats = wmcf->queues.stats;
    queue = wmcf->queues.names.elts;

    ngx_memzero(requests, sizeof(requests));
    ngx_memzero(events, sizeof(events));

    p = ngx_sprintf(p, "{\"version\":\"" NGX_HTTP_WEBHOOK_VERSION "\","
                    "\"redis\":{\"up\":%s,\"address\":\"",
                    up ? "true" : "false");
    primary = wmcf->redis.addr_text;
    ngx_http_webhook_redis_addresses(&primary, &sentinel);

    p = ngx_http_webhook_json_escape(p, primary.data, primary.len);

    if (sentinel.len) {
        p = ngx_sprintf(p, "\",\"sentinel\":\"");
        p = ngx_http_webhook_json_escape(p, sentinel.data, sentinel.len);
    }

    p = ngx_sprintf(p, "\",\"reconnects\":%uA", stats->reconnects);
    p = ngx_http_webhook_status_cluster_json(p);
    p = ngx_sprintf(p, "},\"queues\":{");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        cnt = wmcf->queues.counters[i];

        p = ngx_sprintf(p, "%s\"", i ? "," : "");
        p = ngx_http_webhook_json_escape(p, queue[i].data, queue[i].len);
        p = ngx_sprintf(p, "\":{");
        p = ngx_http_webhook_status_cluster_queue(p, wmcf->queues.slots[i]);

        for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
            p = ngx_sprintf(p, "%s\"%V\":{", prio ? "," : "",
                            &ngx_http_webhook_priorities[prio]);

            if (depths && known[i]) {
                d = &depths[i * NGX_HTTP_WEBHOOK_NPRIO + prio];
                p = ngx_sprintf(p, "\"depth\":%i,\"dead\":%i,"
                                "\"oldest_age_seconds\":",
                                d->depth, d->dead);
                p = ngx_http_webhook_seconds(p, (uint64_t) d->age_ms * 1000);

            } else {
                p = ngx_sprintf(p, "\"depth\":null,\"dead\":null,"
                                "\"oldest_age_seconds\":null");
            }

            /* no counters: the zone had no room for them (stats.c) */

            if (cnt == NULL) {
                p = ngx_sprintf(p, ",\"events\":null}");
                continue;
            }

            p = ngx_sprintf(p, ",\"events\":%uA}", cnt->events[prio]);
            events[prio] += cnt->events[prio];
        }

        if (depths && known[i]) {
            d = &depths[wmcf->queues.names.nelts * NGX_HTTP_WEBHOOK_NPRIO + i];
            p = ngx_sprintf(p, ",\"rejected\":%i", d->depth);

        } else {
            p = ngx_sprintf(p, ",\"rejected\":null");
        }

        p = ngx_http_webhook_status_inflight_json(p, depths && known[i]
                                                     ? &inflight[i] : NULL);

        p = ngx_http_webhook_status_spool_queue(p, wmcf, i);
        p = ngx_http_webhook_status_reconcile_json(p, wmcf, reconcile, i);

        if (cnt == NULL) {
            p = ngx_sprintf(p, ",\"requests\":null}");
            continue;
        }

        p = ngx_sprintf(p, ",\"warnings\":%uA,\"requests\":{",
                        cnt->warnings);

        for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
            p = ngx_sprintf(p, "%s\"%V\":%uA", k ? "," : "",
                            &ngx_http_webhook_results[k], cnt->requests[k]);
            requests[k] += cnt->requests[k];
        }

        p = ngx_sprintf(p, "}}");
    }

    p = ngx_sprintf(p, "},");
    p = ngx_http_webhook_status_spool_json(p, wmcf);
    p = ngx_sprintf(p, "\"requests\":{");

    for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
        p = ngx_sprintf(p, "%s\"%V\":%uA", k ? "," : "",
                        &ngx_http_webhook_results[k], requests[k]);
    }

    p = ngx_sprintf(p, "},\"events\":{");

    for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
        p = ngx_sprintf(p, "%s\"%V\":%uA", prio ? "," : "",
                        &ngx_http_webhook_priorities[prio], events[prio]);
    }

    return ngx_sprintf(p, "}}\n");
}


/* a label value, quoted, with \, " and newline escaped */

u_char *
ngx_http_webhook_label(u_char *p, ngx_str_t *value)
{
    size_t   i;
    u_char   c;

    *p++ = '"';

    for (i = 0; i < value->len; i++) {
        c = value->data[i];

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == LF) {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = c;
        }
    }

    *p++ = '"';

    return p;
}


/* microseconds as seconds, no trailing zeros: "3.2", "0.0005", "1" */

u_char *
ngx_http_webhook_seconds(u_char *p, uint64_t usec)
{
    uint64_t  frac;

    p = ngx_sprintf(p, "%uL", usec / 1000000);

    frac = usec % 1000000;

    if (frac == 0) {
        return p;
    }

    p = ngx_sprintf(p, ".%06uL", frac);

    while (p[-1] == '0') {
        p--;
    }

    return p;
}
