
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool's drainer, its event loop half: the worker that holds the
 * directory's drain.lock (flock: neither another worker nor another nginx
 * can hold it too) reads the segments in the thread pool (see
 * ngx_http_webhook_spool_read.c), and gives the events of a queue, merged
 * by sequence number, to Redis through the enqueue script, a batch at a
 * time, deduplicated by their seen keys.  A segment is removed once
 * it is complete (its writer let go of it), acknowledged and a few seconds
 * old in Redis (appendfsync everysec).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>
#include <sys/file.h>

#include "ngx_http_webhook_spool.h"
#include "core/ngx_http_webhook_core.h"
#include "stats/ngx_http_webhook_stats.h"
#include "ngx_http_webhook_spool_drain.h"


#if (NGX_THREADS)


static void ngx_http_webhook_drain_look(ngx_event_t *ev);
static void ngx_http_webhook_drain_read_done(ngx_event_t *ev);
static void ngx_http_webhook_drain_send(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_reply(void *data,
    redisReply *reply, ngx_uint_t failure);
static void ngx_http_webhook_drain_acked(ngx_http_webhook_drain_t *d,
    redisReply *reply);
static void ngx_http_webhook_drain_refused(ngx_http_webhook_drain_t *d,
    redisReply *reply);
static void ngx_http_webhook_drain_timeout(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_wait(ngx_http_webhook_drain_t *d,
    ngx_msec_t ms);
static void ngx_http_webhook_drain_state(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_drain_state_e state);


static ngx_http_webhook_drain_t  *ngx_http_webhook_drain;

#if (NGX_DEBUG)
/* the states by name, for the debug log */
static char  *ngx_http_webhook_drain_states[] = {
    "IDLE", "READING", "SENDING"
};
#endif


ngx_int_t
ngx_http_webhook_drain_init(ngx_cycle_t *cycle,
    ngx_http_webhook_spool_conf_t *scf)
{
    ngx_http_webhook_drain_t  *d;

    d = ngx_calloc(sizeof(ngx_http_webhook_drain_t), cycle->log);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->scf = scf;
    d->log = cycle->log;
    d->lock = NGX_INVALID_FILE;

    (void) ngx_snprintf(d->lock_name, sizeof(d->lock_name), "%V/drain.lock%Z",
                        &scf->path->name);

    d->argv = ngx_alloc(NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(
                            NGX_HTTP_WEBHOOK_DRAIN_BATCH)
                        * (sizeof(char *) + sizeof(size_t)), cycle->log);
    if (d->argv == NULL) {
        ngx_free(d);
        return NGX_ERROR;
    }

    d->argvlen = (size_t *) (d->argv + NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(
                                           NGX_HTTP_WEBHOOK_DRAIN_BATCH));

    d->task = ngx_thread_task_alloc(cycle->pool, 0);
    if (d->task == NULL) {
        return NGX_ERROR;
    }

    d->task->ctx = d;
    d->task->handler = ngx_http_webhook_drain_read;
    d->task->event.handler = ngx_http_webhook_drain_read_done;
    d->task->event.data = d;
    d->task->event.log = cycle->log;

    d->timer.handler = ngx_http_webhook_drain_look;
    d->timer.data = d;
    d->timer.log = cycle->log;
    d->timer.cancelable = 1;

    ngx_http_webhook_drain = d;

    ngx_add_timer(&d->timer, NGX_HTTP_WEBHOOK_DRAIN_BUSY);

    return NGX_OK;
}


void
ngx_http_webhook_drain_exit(void)
{
    ngx_http_webhook_drain_t  *d;

    d = ngx_http_webhook_drain;
    if (d == NULL) {
        return;
    }

    d->stopped = 1;

    if (d->timer.timer_set) {
        ngx_del_timer(&d->timer);
    }

    if (d->cmd) {
        ngx_http_webhook_redis_cancel(d->cmd);
        d->cmd = NULL;
    }

    /*
     * the thread pools (a core module's) have ended before the modules'
     * exit_process: a task posted is done, its completion will not run
     */

    ngx_http_webhook_drain_free(d);

    if (d->lock != NGX_INVALID_FILE) {
        (void) close(d->lock);
    }

    ngx_free(d->argv);
    ngx_free(d);

    ngx_http_webhook_drain = NULL;
}


/* the timer of the idle state: read the spool when Redis can take events */

static void
ngx_http_webhook_drain_look(ngx_event_t *ev)
{
    ngx_http_webhook_drain_t *d = ev->data;

    if (d->state == NGX_HTTP_WEBHOOK_DRAIN_SENDING) {
        ngx_http_webhook_drain_timeout(d);
        return;
    }

    if (ngx_exiting || ngx_terminate || d->stopped) {
        return;
    }

    if (!ngx_http_webhook_redis_up(NGX_HTTP_WEBHOOK_ANY_SLOT)) {
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
        return;
    }

    ngx_http_webhook_drain_state(d, NGX_HTTP_WEBHOOK_DRAIN_READING);
    d->task->event.complete = 0;

    if (ngx_thread_task_post(d->scf->pool, d->task) != NGX_OK) {
        ngx_http_webhook_drain_state(d, NGX_HTTP_WEBHOOK_DRAIN_IDLE);
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
    }
}


static void
ngx_http_webhook_drain_wait(ngx_http_webhook_drain_t *d, ngx_msec_t ms)
{
    ngx_http_webhook_drain_state(d, NGX_HTTP_WEBHOOK_DRAIN_IDLE);

    if (d->timer.timer_set) {
        ngx_del_timer(&d->timer);
    }

    d->timer.cancelable = 1;
    ngx_add_timer(&d->timer, ms);
}


static void
ngx_http_webhook_drain_read_done(ngx_event_t *ev)
{
    ngx_http_webhook_drain_t *d = ev->data;

    ngx_uint_t                     i;
    ngx_http_webhook_counters_t   *cnt;

    if (d->stopped) {
        return;
    }

    ngx_http_webhook_drain_state(d, NGX_HTTP_WEBHOOK_DRAIN_IDLE);

    if (!d->held) {
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
        return;
    }

    if (d->n) {
        cnt = ngx_http_webhook_counters_of(d->scf->queues, &d->queue);
        if (cnt) {
            cnt->spool_oldest = d->recs[0].spooled_at;
        }

        ngx_http_webhook_drain_send(d);
        return;
    }

    if (d->unread) {
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_BUSY);
        return;
    }

    /* every segment read to its end, every record acknowledged */

    if (d->scf->queues->stats->spool_recovering) {
        d->scf->queues->stats->spool_recovering = 0;

        ngx_log_error(NGX_LOG_NOTICE, d->log, 0,
                      "webhook: the spool found at start is drained");
    }

    for (i = 0; i < d->scf->queues->names.nelts; i++) {
        cnt = d->scf->queues->counters[i];

        if (cnt && cnt->spool_oldest) {
            cnt->spool_oldest = 0;

            ngx_log_error(NGX_LOG_NOTICE, d->log, 0,
                          "webhook: the spool of queue \"%V\" is empty, "
                          "%uA events drained in all",
                          &((ngx_str_t *) d->scf->queues->names.elts)[i],
                          cnt->drained);
        }
    }

    ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
}


/*
 * The batch's items through the enqueue script (its one encoder), every
 * seen key kept as long as the spool's oldest event in the batch is old,
 * and an hour more.
 */

static void
ngx_http_webhook_drain_send(ngx_http_webhook_drain_t *d)
{
    uint64_t                    now, oldest, ttl;
    ngx_uint_t                  i, n, slot;
    ngx_http_webhook_record_t  *rec;

    n = d->n;
    now = (uint64_t) ngx_time() * 1000;
    oldest = now;
    ttl = 0;

    for (i = 0; i < n; i++) {
        rec = &d->recs[i];
        oldest = ngx_min(oldest, rec->spooled_at);
        ttl = ngx_max(ttl, rec->item.ttl);
    }

    ttl = ngx_max(ttl,
                  (now - oldest) / 1000 + NGX_HTTP_WEBHOOK_SPOOL_DRAIN_TTL);

    for (i = 0; i < n; i++) {
        d->items[i] = d->recs[i].item;
        d->items[i].ttl = (uint32_t) ttl;
    }

    d->argc = ngx_http_webhook_enqueue_args(d->items, n, d->argv, d->argvlen,
                                            d->nums);

    /* the records carry their list key: the slot is that key's */

    slot = ngx_http_webhook_keyslot(d->items[0].list.data,
                                    d->items[0].list.len);

    d->cmd = ngx_http_webhook_redis_eval(&d->scf->redis->enqueue, slot, d->argc,
                                         d->argv, d->argvlen,
                                         ngx_http_webhook_drain_reply, d);
    if (d->cmd == NULL) {
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
        return;
    }

    ngx_http_webhook_drain_state(d, NGX_HTTP_WEBHOOK_DRAIN_SENDING);

    if (d->timer.timer_set) {
        ngx_del_timer(&d->timer);
    }

    ngx_add_timer(&d->timer, d->scf->redis->timeout);
}


static void
ngx_http_webhook_drain_reply(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_drain_t *d = data;

    d->cmd = NULL;

    if (d->timer.timer_set) {
        ngx_del_timer(&d->timer);
    }

    ngx_http_webhook_drain_state(d, NGX_HTTP_WEBHOOK_DRAIN_IDLE);

    if (d->stopped) {
        return;
    }

    if (reply == NULL) {

        /* applied, maybe: the batch goes again (dedupe drops a repeat) */

        if (failure == NGX_HTTP_WEBHOOK_REDIS_REPLICAS) {
            ngx_log_error(NGX_LOG_WARN, d->log, 0,
                          "webhook: the replicas did not acknowledge the "
                          "spool's drain of %ui events of queue \"%V\" in "
                          "time: it goes again", d->n, &d->queue);
        }

        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == d->n) {
        ngx_http_webhook_drain_acked(d, reply);
        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_WARN, d->log, 0,
                      "webhook: a list of queue \"%V\" is at its depth "
                      "limit, its spool waits", &d->queue);

        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_webhook_drain_refused(d, reply);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, d->log, 0,
                  "webhook: unexpected reply to the spool's drain");

    ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
}


static void
ngx_http_webhook_drain_acked(ngx_http_webhook_drain_t *d, redisReply *reply)
{
    ngx_uint_t  i, pushed;

    pushed = 0;

    for (i = 0; i < d->n; i++) {
        d->from[i]->pos = d->from[i]->next;

        if (reply->element[i]->type == REDIS_REPLY_INTEGER
            && reply->element[i]->integer == 1)
        {
            pushed++;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, d->log, 0,
                   "webhook drain: \"%V\" %ui events, %ui pushed",
                   &d->queue, d->n, pushed);

    ngx_memcpy(d->last, d->queue.data, d->queue.len);
    d->last_len = d->queue.len;

    ngx_http_webhook_drain_done(d, &d->queue, d->n, 0);

    d->single = 0;
    d->tries = 0;
    d->n = 0;

    /* the next batch at once */

    ngx_http_webhook_drain_look(&d->timer);
}


/*
 * An error of Redis.  One that goes away (OOM, LOADING, READONLY, ...) is
 * waited out; another is looked for one record at a time, and the record
 * that gets it NGX_HTTP_WEBHOOK_DRAIN_TRIES times is quarantined.
 */

static void
ngx_http_webhook_drain_refused(ngx_http_webhook_drain_t *d,
    redisReply *reply)
{
    u_char       buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t    err, text;
    ngx_uint_t   i;

    static char  *passing[] = { "OOM", "LOADING", "READONLY", "MASTERDOWN",
                                "BUSY", "NOSCRIPT", "TRYAGAIN", "CLUSTERDOWN",
                                "MISCONF", "NOREPLICAS", NULL };

    err.data = (u_char *) reply->str;
    err.len = reply->len;

    for (i = 0; passing[i]; i++) {
        if (ngx_strncmp(err.data, passing[i], ngx_strlen(passing[i])) == 0) {
            ngx_log_error(NGX_LOG_WARN, d->log, 0,
                          "webhook: redis refused the spool's drain: %V",
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                    err.data, err.len));
            ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
            return;
        }
    }

    if (d->n > 1) {
        d->single = 1;
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_BUSY);
        return;
    }

    if (d->tried_seq != d->recs[0].seq) {
        d->tried_seq = d->recs[0].seq;
        d->tries = 0;
    }

    if (++d->tries < NGX_HTTP_WEBHOOK_DRAIN_TRIES) {
        ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, d->log, 0,
                  "webhook: redis refused the spooled event \"%V\" of queue "
                  "\"%V\" %ui times (%V): it is quarantined",
                  &d->recs[0].item.id, &d->queue, d->tries,
                  ngx_http_webhook_log_text(&text, buf, sizeof(buf), err.data,
                                            err.len));

    d->poison.data = d->reason;
    d->poison.len = ngx_min(err.len, sizeof(d->reason));
    ngx_memcpy(d->reason, err.data, d->poison.len);

    ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_BUSY);
}


/* the outcome is unknown: the batch goes again (dedupe drops a repeat) */

static void
ngx_http_webhook_drain_timeout(ngx_http_webhook_drain_t *d)
{
    ngx_log_error(NGX_LOG_ERR, d->log, NGX_ETIMEDOUT,
                  "webhook: redis did not acknowledge the spool's drain of "
                  "%ui events in time", d->n);

    if (d->cmd) {
        ngx_http_webhook_redis_cancel(d->cmd);
        d->cmd = NULL;
    }

    ngx_http_webhook_drain_wait(d, NGX_HTTP_WEBHOOK_DRAIN_POLL);
}


/* a change of state, in the debug log */

static void
ngx_http_webhook_drain_state(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_drain_state_e state)
{
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, d->log, 0,
                   "webhook drain: %s -> %s, %ui records",
                   ngx_http_webhook_drain_states[d->state],
                   ngx_http_webhook_drain_states[state], d->n);

    d->state = state;
}

#endif /* NGX_THREADS */
