
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
    ngx_http_webhook_spool_conf_t *scf;
    ngx_http_webhook_writer_t     *writers;     /* one per queue */
    ngx_log_t                     *log;
    ngx_uint_t                     full;        /* logged, until room */
} ngx_http_webhook_spool_t;


static ngx_int_t ngx_http_webhook_spool_append(ngx_http_webhook_writer_t *w,
    ngx_http_webhook_item_t *items, ngx_uint_t n,
    ngx_http_webhook_spool_wait_t *wait, ngx_log_t *log);
static ngx_int_t ngx_http_webhook_spool_room(size_t len, ngx_log_t *log);
static ngx_int_t ngx_http_webhook_spool_grow(ngx_http_webhook_spool_buf_t *b,
    size_t len, ngx_log_t *log);
static ngx_int_t ngx_http_webhook_spool_post(ngx_http_webhook_writer_t *w);
static void ngx_http_webhook_spool_cut(ngx_http_webhook_spool_wait_t *wait);
static void ngx_http_webhook_spool_fail(ngx_http_webhook_spool_buf_t *b);
static void ngx_http_webhook_spool_shrink(ngx_http_webhook_spool_buf_t *b);
static void ngx_http_webhook_spool_written(ngx_event_t *ev);
static void ngx_http_webhook_spool_seal_later(ngx_http_webhook_writer_t *w);
static void ngx_http_webhook_spool_seal(ngx_event_t *ev);


static ngx_http_webhook_spool_t  *ngx_http_webhook_spool_worker;


/* the spool runs in this worker (configured, and its zone is there) */

ngx_uint_t
ngx_http_webhook_spool_ready(void)
{
    return ngx_http_webhook_spool_worker != NULL;
}


/*
 * While events of the queue wait in the spool (or the spool found at start
 * is not drained yet), new ones go behind them, not to Redis ahead of them.
 */

ngx_uint_t
ngx_http_webhook_spool_holds(ngx_uint_t queue)
{
    ngx_http_webhook_queues_t    *qs;
    ngx_http_webhook_counters_t  *cnt;

    qs = ngx_http_webhook_spool_worker->scf->queues;
    cnt = ngx_http_webhook_counters(qs, queue);

    return qs->stats->spool_recovering
           || (cnt && (ngx_atomic_int_t) cnt->spool_pending > 0);
}


/*
 * The items of queue i go to the spool, in one write and sync with what
 * comes meanwhile (group commit).  NGX_OK: wait->handler is called once
 * they are on disk (NGX_OK) or could not be kept (NGX_ERROR), unless the
 * caller cancels first.  Else the answer now: NGX_DECLINED (max_size),
 * NGX_HTTP_WEBHOOK_SPOOL_TOO_LARGE (an item is more than a record may
 * hold), NGX_BUSY (the thread pool takes no task), NGX_ERROR.
 */

ngx_int_t
ngx_http_webhook_spool_write(ngx_uint_t queue, ngx_http_webhook_item_t *items,
    ngx_uint_t n, const char *why, ngx_http_webhook_spool_wait_t *wait,
    ngx_log_t *log)
{
    ngx_int_t                   rc;
    ngx_http_webhook_writer_t  *w;

    w = &ngx_http_webhook_spool_worker->writers[queue];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "webhook spool: \"%V\" takes %ui events: %s",
                   &w->queue, n, why);

    rc = ngx_http_webhook_spool_append(w, items, n, wait, log);

    if (rc != NGX_OK) {
        return rc;
    }

    if (w->counters
        && ngx_atomic_fetch_add(&w->counters->spool_pending, n) == 0)
    {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "webhook: queue \"%V\" starts spooling: %s",
                      &w->queue, why);
    }

    wait->queue = queue;
    wait->buf = w->pending;
    wait->waiting = 1;
    ngx_queue_insert_tail(&w->pending->waiting, &wait->link);

    if (w->task->event.active) {
        return NGX_OK;          /* the next write takes them */
    }

    /* no write in flight: the pending records are these only */

    if (ngx_http_webhook_spool_post(w) != NGX_OK) {
        ngx_http_webhook_spool_cut(wait);
        return NGX_BUSY;
    }

    return NGX_OK;
}


/*
 * The caller gives up waiting (its timer, or the request went away): its
 * records are taken back if no write has them yet (1); else the write
 * goes on and they will be on disk (0).  The handler is not called.
 */

ngx_uint_t
ngx_http_webhook_spool_cancel(ngx_http_webhook_spool_wait_t *wait)
{
    ngx_http_webhook_writer_t  *w;

    if (!wait->waiting) {
        return 0;
    }

    w = &ngx_http_webhook_spool_worker->writers[wait->queue];

    if (wait->buf == w->pending) {
        ngx_http_webhook_spool_cut(wait);
        return 1;
    }

    ngx_queue_remove(&wait->link);
    wait->waiting = 0;

    return 0;
}


/* the records of the items, each with the next sequence number */

static ngx_int_t
ngx_http_webhook_spool_append(ngx_http_webhook_writer_t *w,
    ngx_http_webhook_item_t *items, ngx_uint_t n,
    ngx_http_webhook_spool_wait_t *wait, ngx_log_t *log)
{
    u_char                     *p;
    size_t                      len, one;
    ngx_uint_t                  i;
    ngx_time_t                 *tp;
    ngx_http_webhook_stats_t   *stats;
    ngx_http_webhook_record_t   rec;

    stats = ngx_http_webhook_spool_worker->scf->queues->stats;
    len = 0;

    for (i = 0; i < n; i++) {
        rec.item = items[i];
        one = ngx_http_webhook_record_len(&rec);

        if (one > NGX_HTTP_WEBHOOK_REC_MAX) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "webhook: an event of %uz bytes is more than the "
                          "spool keeps (%d bytes a record): refused",
                          one, NGX_HTTP_WEBHOOK_REC_MAX);
            return NGX_HTTP_WEBHOOK_SPOOL_TOO_LARGE;
        }

        len += one;
    }

    if (ngx_http_webhook_spool_room(len, log) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (ngx_http_webhook_spool_grow(w->pending, len, log) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the numbers are taken in the order of the file: the drain merges */

    tp = ngx_timeofday();
    p = w->pending->data + w->pending->len;

    for (i = 0; i < n; i++) {
        rec.flags = 0;
        rec.seq = ngx_atomic_fetch_add(&stats->spool_seq, 1);
        rec.spooled_at = (uint64_t) tp->sec * 1000 + tp->msec;
        rec.item = items[i];

        p = ngx_http_webhook_record_write(p, &rec);
    }

    wait->off = w->pending->len;
    wait->len = len;
    wait->nevents = n;

    w->pending->len += len;
    w->pending->events += n;

    (void) ngx_atomic_fetch_add(&stats->spool_queued, len);

    return NGX_OK;
}


/*
 * max_size: NGX_DECLINED, the last resort (a 503 with Retry-After).  What
 * is on disk and what every writer of every worker holds to write count.
 */

static ngx_int_t
ngx_http_webhook_spool_room(size_t len, ngx_log_t *log)
{
    ngx_http_webhook_stats_t       *stats;
    ngx_http_webhook_spool_conf_t  *scf;

    scf = ngx_http_webhook_spool_worker->scf;
    stats = scf->queues->stats;

    if ((off_t) (stats->spool_bytes + stats->spool_queued + len)
        <= scf->max_size)
    {
        ngx_http_webhook_spool_worker->full = 0;
        return NGX_OK;
    }

    if (!ngx_http_webhook_spool_worker->full) {
        ngx_http_webhook_spool_worker->full = 1;

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "webhook: the spool \"%V\" is full (%O of max_size "
                      "%O bytes): events are refused with 503 until it "
                      "drains", &scf->path->name,
                      (off_t) stats->spool_bytes, scf->max_size);
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

        p = ngx_sprintf(w->name, "%V/",
                        &ngx_http_webhook_spool_worker->scf->path->name);
        p = ngx_http_webhook_spool_escape(p, &w->queue);
        (void) ngx_sprintf(p, ".%016xL.%P.seg%Z",
                           ngx_http_webhook_record_seq(b->data), ngx_pid);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "webhook spool: \"%V\" writes %uz bytes%s", &w->queue,
                   b->len, w->create ? " to a new segment" : "");

    w->task->event.complete = 0;

    if (ngx_thread_task_post(ngx_http_webhook_spool_worker->scf->pool,
                             w->task)
        != NGX_OK)
    {
        w->pending = w->flight;
        w->flight = b == w->bufs ? &w->bufs[1] : &w->bufs[0];
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* back in the event loop: the waiting callers are told */

static void
ngx_http_webhook_spool_written(ngx_event_t *ev)
{
    ngx_http_webhook_writer_t *w = ev->data;

    ngx_queue_t                    *q;
    ngx_http_webhook_stats_t       *stats;
    ngx_http_webhook_spool_buf_t   *b;
    ngx_http_webhook_spool_wait_t  *wait;

    b = w->flight;
    stats = ngx_http_webhook_spool_worker->scf->queues->stats;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "webhook spool: \"%V\" wrote %ui events%s", &w->queue,
                   b->events, w->failed ? ", failed" : "");

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

        wait = ngx_queue_data(q, ngx_http_webhook_spool_wait_t, link);
        wait->waiting = 0;

        wait->handler(wait, w->failed ? NGX_ERROR : NGX_OK);
    }

    ngx_http_webhook_spool_shrink(b);

    if (w->pending->len == 0) {
        ngx_http_webhook_spool_seal_later(w);
        return;
    }

    if (ngx_http_webhook_spool_post(w) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                      "webhook: the spool's write could not be posted");

        ngx_http_webhook_spool_fail(w->pending);
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
 * A caller's records leave the pending buffer before they are written
 * (its wait ended, or the write could not be posted): they will not be on
 * disk, as its answer says.
 */

static void
ngx_http_webhook_spool_cut(ngx_http_webhook_spool_wait_t *wait)
{
    size_t                          end;
    ngx_queue_t                    *q;
    ngx_http_webhook_writer_t      *w;
    ngx_http_webhook_spool_buf_t   *b;
    ngx_http_webhook_spool_wait_t  *next;

    w = &ngx_http_webhook_spool_worker->writers[wait->queue];
    b = wait->buf;
    end = wait->off + wait->len;

    ngx_memmove(b->data + wait->off, b->data + end, b->len - end);

    b->len -= wait->len;
    b->events -= wait->nevents;

    for (q = ngx_queue_next(&wait->link);
         q != ngx_queue_sentinel(&b->waiting);
         q = ngx_queue_next(q))
    {
        next = ngx_queue_data(q, ngx_http_webhook_spool_wait_t, link);
        next->off -= wait->len;
    }

    ngx_queue_remove(&wait->link);
    wait->waiting = 0;

    (void) ngx_atomic_fetch_add(
               &ngx_http_webhook_spool_worker->scf->queues->stats->spool_queued,
               - (ngx_atomic_int_t) wait->len);

    if (w->counters) {
        (void) ngx_atomic_fetch_add(&w->counters->spool_pending,
                                    - (ngx_atomic_int_t) wait->nevents);
    }
}


/* the pending records cannot be written: every waiting caller is told */

static void
ngx_http_webhook_spool_fail(ngx_http_webhook_spool_buf_t *b)
{
    ngx_http_webhook_spool_wait_t  *wait;

    while (!ngx_queue_empty(&b->waiting)) {
        wait = ngx_queue_data(ngx_queue_head(&b->waiting),
                              ngx_http_webhook_spool_wait_t, link);

        ngx_http_webhook_spool_cut(wait);
        wait->handler(wait, NGX_ERROR);
    }

    ngx_http_webhook_spool_shrink(b);
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
    ngx_http_webhook_spool_conf_t *scf)
{
    ngx_str_t                  *queue;
    ngx_uint_t                  i;
    ngx_http_webhook_spool_t   *sp;
    ngx_http_webhook_writer_t  *w;

    if (scf->path == NULL || scf->queues->stats == NULL) {
        return NGX_OK;
    }

    sp = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_spool_t));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->scf = scf;
    sp->log = cycle->log;
    sp->writers = ngx_pcalloc(cycle->pool, (scf->queues->names.nelts + 1)
                                           * sizeof(ngx_http_webhook_writer_t));
    if (sp->writers == NULL) {
        return NGX_ERROR;
    }

    queue = scf->queues->names.elts;

    for (i = 0; i < scf->queues->names.nelts; i++) {
        w = &sp->writers[i];

        w->queue = queue[i];
        w->counters = scf->queues->counters[i];
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
        w->task->handler = ngx_http_webhook_segment_write;
        w->task->event.handler = ngx_http_webhook_spool_written;
        w->task->event.data = w;
        w->task->event.log = cycle->log;

        w->seal.handler = ngx_http_webhook_spool_seal;
        w->seal.data = w;
        w->seal.log = cycle->log;
        w->seal.cancelable = 1;
    }

    ngx_http_webhook_spool_worker = sp;

    return ngx_http_webhook_drain_init(cycle, scf);
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

    for (i = 0; i < sp->scf->queues->names.nelts; i++) {
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
