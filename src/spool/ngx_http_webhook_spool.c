
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool's writers: for each queue of a worker, one segment file that
 * the worker alone appends to.  Requests that come while a write is in flight
 * wait for the next one, which takes them all (group commit): one write
 * and one fdatasync in flight per segment, in the thread pool
 * (ngx_http_webhook_spool_segment.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include "ngx_http_webhook_spool.h"
#include "ngx_http_webhook_spool_writer.h"
#include "stats/ngx_http_webhook_stats.h"


#if (NGX_THREADS)


typedef struct {
    ngx_http_webhook_main_conf_t  *wmcf;
    ngx_http_webhook_writer_t     *writers;     /* one per queue */
    ngx_log_t                     *log;
    ngx_uint_t                     full;        /* logged, until room */
} ngx_http_webhook_spool_t;


static ngx_int_t ngx_http_webhook_spool_append(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_writer_t *w);
static ngx_int_t ngx_http_webhook_spool_room(ngx_http_request_t *r,
    size_t len);
static ngx_int_t ngx_http_webhook_spool_grow(ngx_http_webhook_spool_buf_t *b,
    size_t len, ngx_log_t *log);
static ngx_int_t ngx_http_webhook_spool_post(ngx_http_webhook_writer_t *w);
static void ngx_http_webhook_spool_cut(ngx_http_webhook_writer_t *w,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_spool_fail(ngx_http_webhook_writer_t *w,
    ngx_http_webhook_spool_buf_t *b);
static void ngx_http_webhook_spool_shrink(ngx_http_webhook_spool_buf_t *b);
static void ngx_http_webhook_spool_written(ngx_event_t *ev);
static void ngx_http_webhook_spool_answer(ngx_http_webhook_ctx_t *ctx,
    ngx_uint_t ok);
static ngx_int_t ngx_http_webhook_spool_body(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_spool_timeout(ngx_event_t *ev);
static void ngx_http_webhook_spool_seal_later(ngx_http_webhook_writer_t *w);
static void ngx_http_webhook_spool_seal(ngx_event_t *ev);


static ngx_http_webhook_spool_t  *ngx_http_webhook_spool_worker;


ngx_uint_t
ngx_http_webhook_spool_on(ngx_http_request_t *r)
{
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    return wmcf->spool_path && wlcf->spool && wmcf->stats
           && ngx_http_webhook_spool_worker;
}


/*
 * While events of the queue wait in the spool (or the spool found at start
 * is not drained yet), new ones go behind them, not to Redis ahead of them.
 */

ngx_uint_t
ngx_http_webhook_spool_holds(ngx_http_request_t *r)
{
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;
    ngx_http_webhook_counters_t   *cnt;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    cnt = wmcf->counters[wlcf->queue_index];

    return wmcf->stats->spool_recovering
           || (cnt && (ngx_atomic_int_t) cnt->spool_pending > 0);
}


/*
 * The request's events go to the spool: NGX_DONE while they are written,
 * or the answer when they cannot be (the spool is full).
 */

ngx_int_t
ngx_http_webhook_spool(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    char *why)
{
    ngx_int_t                      rc;
    ngx_http_webhook_writer_t     *w;
    ngx_http_webhook_loc_conf_t   *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    w = &ngx_http_webhook_spool_worker->writers[wlcf->queue_index];

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "webhook spool: %s", why);

    ctx->spool_why = why;

    if (ctx->spool_answer.len == 0
        && ngx_http_webhook_spool_body(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_webhook_spool_append(r, ctx, w);

    if (rc == NGX_DECLINED) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                       "unavailable",
                                       "the queue is unavailable and the "
                                       "spool is full, retry later");
    }

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       NGX_HTTP_WEBHOOK_RESULT_TOO_LARGE,
                                       "too_large",
                                       "the queue is unavailable and the "
                                       "event is larger than the spool "
                                       "keeps, retry later");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->spooling = 1;
    ctx->spool_buf = w->pending;
    ngx_queue_insert_tail(&w->pending->waiting, &ctx->spool_link);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    /* not cancelable: a graceful shutdown waits for the answer */

    ctx->timer.handler = ngx_http_webhook_spool_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, NGX_HTTP_WEBHOOK_SPOOL_TIMEOUT);

    if (w->task->event.active) {
        return NGX_DONE;        /* the next write takes it */
    }

    /* no write in flight: the pending records are this request's only */

    if (ngx_http_webhook_spool_post(w) != NGX_OK) {
        ngx_del_timer(&ctx->timer);
        ngx_http_webhook_spool_cut(w, ctx);

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                       "unavailable",
                                       "the queue is unavailable and the "
                                       "spool is busy, retry later");
    }

    return NGX_DONE;
}


/*
 * The records of the request's events, from the script's arguments
 * (see ngx_http_webhook_prepare()), each with the next sequence number.
 */

static ngx_int_t
ngx_http_webhook_spool_append(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_writer_t *w)
{
    u_char                        *p;
    size_t                         len;
    ngx_uint_t                     i, n, k, s;
    ngx_time_t                    *tp;
    ngx_http_webhook_record_t     *rec;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    n = ctx->nevents;

    rec = ngx_pcalloc(r->pool, n * sizeof(ngx_http_webhook_record_t));
    if (rec == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tp = ngx_timeofday();
    len = 0;

    for (i = 0; i < n; i++) {
        k = ctx->argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
            + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

        s = ngx_atoi((u_char *) ctx->argv[k], ctx->argvlen[k]);

        rec[i].spooled_at = (uint64_t) tp->sec * 1000 + tp->msec;
        rec[i].ttl = (s >= ctx->seen_env) ? NGX_HTTP_WEBHOOK_SPOOL_SEEN_TTL
                                          : (uint32_t) wlcf->dedupe;
        rec[i].max_depth = wlcf->max_depth;
        rec[i].list.data = (u_char *) ctx->argv[NGX_HTTP_WEBHOOK_CMD_ARGS + i];
        rec[i].list.len = ctx->argvlen[NGX_HTTP_WEBHOOK_CMD_ARGS + i];
        rec[i].seen.data = (u_char *)
                           ctx->argv[NGX_HTTP_WEBHOOK_CMD_ARGS + n + s - 1];
        rec[i].seen.len = ctx->argvlen[NGX_HTTP_WEBHOOK_CMD_ARGS + n + s - 1];
        rec[i].id.data = (u_char *) ctx->argv[k + 1];
        rec[i].id.len = ctx->argvlen[k + 1];
        rec[i].envelope.data = (u_char *) ctx->argv[k + 2];
        rec[i].envelope.len = ctx->argvlen[k + 2];

        if (ngx_http_webhook_record_len(&rec[i])
            > NGX_HTTP_WEBHOOK_REC_MAX)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "webhook: an event of %uz bytes is more than the "
                          "spool keeps (%d bytes a record): refused",
                          ngx_http_webhook_record_len(&rec[i]),
                          NGX_HTTP_WEBHOOK_REC_MAX);
            return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        }

        len += ngx_http_webhook_record_len(&rec[i]);
    }

    if (ngx_http_webhook_spool_room(r, len) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_http_webhook_spool_grow(w->pending, len, r->connection->log)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the numbers are taken in the order of the file: the drain merges */

    p = w->pending->data + w->pending->len;

    for (i = 0; i < n; i++) {
        rec[i].seq = ngx_atomic_fetch_add(&wmcf->stats->spool_seq, 1);
        p = ngx_http_webhook_record_write(p, &rec[i]);
    }

    ctx->spool_off = w->pending->len;
    ctx->spool_len = len;

    w->pending->len += len;
    w->pending->events += n;

    (void) ngx_atomic_fetch_add(&wmcf->stats->spool_queued, len);

    if (w->counters
        && ngx_atomic_fetch_add(&w->counters->spool_pending, n) == 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "webhook: queue \"%V\" starts spooling: %s",
                      &w->queue, ctx->spool_why);
    }

    return NGX_OK;
}


/*
 * max_size: NGX_DECLINED, the last resort (a 503 with Retry-After).  What
 * is on disk and what every writer of every worker holds to write count.
 */

static ngx_int_t
ngx_http_webhook_spool_room(ngx_http_request_t *r, size_t len)
{
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    if ((off_t) (wmcf->stats->spool_bytes + wmcf->stats->spool_queued + len)
        <= wmcf->spool_max_size)
    {
        ngx_http_webhook_spool_worker->full = 0;
        return NGX_OK;
    }

    if (!ngx_http_webhook_spool_worker->full) {
        ngx_http_webhook_spool_worker->full = 1;

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: the spool \"%V\" is full (%O of max_size "
                      "%O bytes): events are refused with 503 until it "
                      "drains", &wmcf->spool_path->name,
                      (off_t) wmcf->stats->spool_bytes, wmcf->spool_max_size);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_webhook_spool_grow(ngx_http_webhook_spool_buf_t *b, size_t len,
    ngx_log_t *log)
{
    u_char  *p;
    size_t   size;

    if (b->len + len <= b->size) {
        return NGX_OK;
    }

    size = ngx_max(b->size * 2, b->len + len);
    size = ngx_max(size, 65536);

    p = ngx_alloc(size, log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (b->len) {
        ngx_memcpy(p, b->data, b->len);
    }

    if (b->data) {
        ngx_free(b->data);
    }

    b->data = p;
    b->size = size;

    return NGX_OK;
}


/* the pending records become the write in flight */

static ngx_int_t
ngx_http_webhook_spool_post(ngx_http_webhook_writer_t *w)
{
    u_char                        *p;
    ngx_http_webhook_spool_buf_t  *b;

    b = w->pending;
    w->pending = w->flight;
    w->flight = b;

    w->create = (w->fd == NGX_INVALID_FILE
                 || w->size + (off_t) b->len > NGX_HTTP_WEBHOOK_SPOOL_SEGMENT
                 || ngx_current_msec - w->created
                    >= NGX_HTTP_WEBHOOK_SPOOL_AGE);

    if (w->create) {
        w->created = ngx_current_msec;

        /* the queue's name fits: ngx_http_webhook_spool_check() */

        p = ngx_sprintf(w->name, "%V/", &ngx_http_webhook_spool_worker->wmcf
                                          ->spool_path->name);
        p = ngx_http_webhook_spool_escape(p, &w->queue);
        (void) ngx_sprintf(p, ".%016xL.%P.seg%Z",
                           ngx_http_webhook_record_seq(b->data), ngx_pid);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "webhook spool: \"%V\" writes %uz bytes%s", &w->queue,
                   b->len, w->create ? " to a new segment" : "");

    w->task->event.complete = 0;

    if (ngx_thread_task_post(ngx_http_webhook_spool_worker->wmcf->spool_pool,
                             w->task)
        != NGX_OK)
    {
        w->pending = w->flight;
        w->flight = b == w->bufs ? &w->bufs[1] : &w->bufs[0];
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* back in the event loop: the waiting requests get their answers */

static void
ngx_http_webhook_spool_written(ngx_event_t *ev)
{
    ngx_http_webhook_writer_t *w = ev->data;

    ngx_queue_t                   *q;
    ngx_http_webhook_ctx_t        *ctx;
    ngx_http_webhook_spool_buf_t  *b;
    ngx_http_webhook_stats_t      *stats;

    b = w->flight;
    stats = ngx_http_webhook_spool_worker->wmcf->stats;

    (void) ngx_atomic_fetch_add(&stats->spool_queued,
                                - (ngx_atomic_int_t) b->len);

    if (w->failed) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "webhook: the spool could not keep %ui events, they "
                      "are refused", b->events);

        if (w->counters) {
            (void) ngx_atomic_fetch_add(&w->counters->spool_pending,
                                        - (ngx_atomic_int_t) b->events);
        }

    } else {
        (void) ngx_atomic_fetch_add(&stats->spool_bytes, b->len);

        if (w->counters) {
            (void) ngx_atomic_fetch_add(&w->counters->spool_bytes, b->len);
            (void) ngx_atomic_fetch_add(&w->counters->spooled, b->events);
        }
    }

    while (!ngx_queue_empty(&b->waiting)) {
        q = ngx_queue_head(&b->waiting);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_webhook_ctx_t, spool_link);
        ctx->spooling = 0;

        ngx_http_webhook_spool_answer(ctx, w->failed == NULL);
    }

    ngx_http_webhook_spool_shrink(b);

    if (w->pending->len == 0) {
        ngx_http_webhook_spool_seal_later(w);
        return;
    }

    if (ngx_http_webhook_spool_post(w) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                      "webhook: the spool's write could not be posted");

        ngx_http_webhook_spool_fail(w, w->pending);
    }
}


/*
 * A buffer written: emptied, and given back when a large batch made it
 * larger than a writer keeps between writes.
 */

static void
ngx_http_webhook_spool_shrink(ngx_http_webhook_spool_buf_t *b)
{
    b->len = 0;
    b->events = 0;

    if (b->size > NGX_HTTP_WEBHOOK_SPOOL_BUF) {
        ngx_free(b->data);
        b->data = NULL;
        b->size = 0;
    }
}


/*
 * A request's records leave the pending buffer before they are written
 * (its wait timed out, or the write could not be posted): they will not be
 * on disk, as its answer says.
 */

static void
ngx_http_webhook_spool_cut(ngx_http_webhook_writer_t *w,
    ngx_http_webhook_ctx_t *ctx)
{
    size_t                         end;
    ngx_queue_t                   *q;
    ngx_http_webhook_ctx_t        *next;
    ngx_http_webhook_spool_buf_t  *b;

    b = ctx->spool_buf;
    end = ctx->spool_off + ctx->spool_len;

    ngx_memmove(b->data + ctx->spool_off, b->data + end, b->len - end);

    b->len -= ctx->spool_len;
    b->events -= ctx->nevents;

    for (q = ngx_queue_next(&ctx->spool_link);
         q != ngx_queue_sentinel(&b->waiting);
         q = ngx_queue_next(q))
    {
        next = ngx_queue_data(q, ngx_http_webhook_ctx_t, spool_link);
        next->spool_off -= ctx->spool_len;
    }

    ngx_queue_remove(&ctx->spool_link);
    ctx->spooling = 0;

    (void) ngx_atomic_fetch_add(
                      &ngx_http_webhook_spool_worker->wmcf->stats->spool_queued,
                      - (ngx_atomic_int_t) ctx->spool_len);

    if (w->counters) {
        (void) ngx_atomic_fetch_add(&w->counters->spool_pending,
                                    - (ngx_atomic_int_t) ctx->nevents);
    }
}


/* the pending records cannot be written: every waiting request is refused */

static void
ngx_http_webhook_spool_fail(ngx_http_webhook_writer_t *w,
    ngx_http_webhook_spool_buf_t *b)
{
    ngx_http_webhook_ctx_t  *ctx;

    while (!ngx_queue_empty(&b->waiting)) {
        ctx = ngx_queue_data(ngx_queue_head(&b->waiting),
                             ngx_http_webhook_ctx_t, spool_link);

        ngx_http_webhook_spool_cut(w, ctx);
        ngx_http_webhook_spool_answer(ctx, 0);
    }

    ngx_http_webhook_spool_shrink(b);
}


static void
ngx_http_webhook_spool_answer(ngx_http_webhook_ctx_t *ctx, ngx_uint_t ok)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ok) {
        rc = ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                        NGX_HTTP_WEBHOOK_RESULT_SPOOLED,
                                        ctx->spool_answer.data,
                                        ctx->spool_answer.len);
    } else {
        rc = ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
                                     "unavailable",
                                     "the queue is unavailable and the "
                                     "spool could not keep the event, "
                                     "retry later");
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* {"status":"spooled","id":...,"priority":...}, or a batch's ids */

static ngx_int_t
ngx_http_webhook_spool_body(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
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
        return NGX_ERROR;
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

    ctx->spool_answer.data = p;
    ctx->spool_answer.len = last - p;

    return NGX_OK;
}


/*
 * The write did not end in time (a stalled disk): a 503.  Records not
 * written yet are taken back; a write already in flight goes on, and its
 * events may still be delivered (the docs say so: at least once).
 */

static void
ngx_http_webhook_spool_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_ctx_t  *ctx = ev->data;

    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_webhook_writer_t    *w;
    ngx_http_webhook_loc_conf_t  *wlcf;

    r = ctx->request;
    c = r->connection;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    w = &ngx_http_webhook_spool_worker->writers[wlcf->queue_index];

    ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                  "webhook: the spool did not sync the event in time%s",
                  ctx->spool_buf == w->flight
                  ? " (its write goes on: it may still be delivered)" : "");

    if (ctx->spooling && ctx->spool_buf == w->pending) {
        ngx_http_webhook_spool_cut(w, ctx);

    } else {
        ngx_http_webhook_spool_cancel(ctx);
    }

    ngx_http_finalize_request(r,
        ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE, "unavailable",
                                "the queue is unavailable and the spool did "
                                "not answer in time, retry later"));

    ngx_http_run_posted_requests(c);
}


void
ngx_http_webhook_spool_cancel(ngx_http_webhook_ctx_t *ctx)
{
    if (ctx->spooling) {
        ngx_queue_remove(&ctx->spool_link);
        ctx->spooling = 0;
    }
}


/*
 * A segment is closed (sealed: its lock freed, the drainer may end it once
 * drained) when it is idle and the queue's spool is drained, or
 * NGX_HTTP_WEBHOOK_SPOOL_AGE after it was begun; a write past its size
 * begins a new one (ngx_http_webhook_spool_post()).  So a trickle of events
 * while Redis is away fills one segment, not a file each.
 */

static void
ngx_http_webhook_spool_seal_later(ngx_http_webhook_writer_t *w)
{
    if (w->fd != NGX_INVALID_FILE && !w->seal.timer_set) {
        ngx_add_timer(&w->seal, NGX_HTTP_WEBHOOK_SPOOL_IDLE);
    }
}


static void
ngx_http_webhook_spool_seal(ngx_event_t *ev)
{
    ngx_http_webhook_writer_t *w = ev->data;

    if (w->task->event.active || w->fd == NGX_INVALID_FILE) {
        return;                 /* the write's end looks again */
    }

    if (ngx_current_msec - w->created < NGX_HTTP_WEBHOOK_SPOOL_AGE
        && w->counters && (ngx_atomic_int_t) w->counters->spool_pending > 0)
    {
        ngx_add_timer(&w->seal, NGX_HTTP_WEBHOOK_SPOOL_IDLE);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "webhook spool: \"%V\" seals \"%s\"", &w->queue, w->name);

    if (close(w->fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, w->log, ngx_errno,
                      "webhook: close() of \"%s\" failed", w->name);
    }

    w->fd = NGX_INVALID_FILE;
}


ngx_int_t
ngx_http_webhook_spool_init_process(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_str_t                  *queue;
    ngx_uint_t                  i;
    ngx_http_webhook_spool_t   *sp;
    ngx_http_webhook_writer_t  *w;

    if (wmcf->spool_path == NULL || wmcf->stats == NULL) {
        return NGX_OK;
    }

    sp = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_spool_t));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->wmcf = wmcf;
    sp->log = cycle->log;
    sp->writers = ngx_pcalloc(cycle->pool, (wmcf->queues.nelts + 1)
                                           * sizeof(ngx_http_webhook_writer_t));
    if (sp->writers == NULL) {
        return NGX_ERROR;
    }

    queue = wmcf->queues.elts;

    for (i = 0; i < wmcf->queues.nelts; i++) {
        w = &sp->writers[i];

        w->queue = queue[i];
        w->counters = wmcf->counters[i];
        w->fd = NGX_INVALID_FILE;
        w->log = cycle->log;
        w->pending = &w->bufs[0];
        w->flight = &w->bufs[1];
        ngx_queue_init(&w->bufs[0].waiting);
        ngx_queue_init(&w->bufs[1].waiting);

        w->task = ngx_thread_task_alloc(cycle->pool, 0);
        if (w->task == NULL) {
            return NGX_ERROR;
        }

        w->task->ctx = w;
        w->task->handler = ngx_http_webhook_spool_write;
        w->task->event.handler = ngx_http_webhook_spool_written;
        w->task->event.data = w;
        w->task->event.log = cycle->log;

        w->seal.handler = ngx_http_webhook_spool_seal;
        w->seal.data = w;
        w->seal.log = cycle->log;
        w->seal.cancelable = 1;
    }

    ngx_http_webhook_spool_worker = sp;

    return ngx_http_webhook_drain_init(cycle, wmcf);
}


void
ngx_http_webhook_spool_exit_process(void)
{
    ngx_uint_t                  i;
    ngx_http_webhook_spool_t   *sp;
    ngx_http_webhook_writer_t  *w;

    sp = ngx_http_webhook_spool_worker;
    if (sp == NULL) {
        return;
    }

    ngx_http_webhook_drain_exit();

    for (i = 0; i < sp->wmcf->queues.nelts; i++) {
        w = &sp->writers[i];

        if (w->seal.timer_set) {
            ngx_del_timer(&w->seal);
        }

        /* the thread pools have ended: no write is in flight */

        if (w->fd != NGX_INVALID_FILE) {
            (void) close(w->fd);
        }

        if (w->bufs[0].data) {
            ngx_free(w->bufs[0].data);
        }

        if (w->bufs[1].data) {
            ngx_free(w->bufs[1].data);
        }
    }

    ngx_http_webhook_spool_worker = NULL;
}

#endif /* NGX_THREADS */
