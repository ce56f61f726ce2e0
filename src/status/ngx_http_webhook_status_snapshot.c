
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status snapshot filled: from each status script call's reply, the
 * depths, dead letters and oldest ages by queue and priority, the
 * rejected lists, the consumers' events in flight and the reconcilers'
 * heartbeats; then, once all the calls are done, the counters copied from
 * shared memory (they move while the answer is written: each is read
 * once), the spool's, Redis's addresses and the Cluster's primaries.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"
#include "stats/ngx_http_webhook_stats.h"
#include "redis/ngx_http_webhook_redis.h"
#include "ngx_http_webhook_status_snapshot.h"


/*
 * The status script's reply to a call for n queues (script.c): per queue
 * and priority, then per queue for its rejected list, 3 values (LLEN, the
 * received_at of the oldest, LLEN of the dead list: of the rejected list
 * again); per queue, 3 of its events in flight; per queue, the array of
 * its reconcilers, 8 values each.
 */
#define NGX_HTTP_WEBHOOK_DEPTH_FIELDS       3
#define NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS    3
#define NGX_HTTP_WEBHOOK_RECONCILER_FIELDS  8

#define NGX_HTTP_WEBHOOK_STATUS_ELEMENTS(n)                                  \
    ((n) * ((NGX_HTTP_WEBHOOK_NPRIO + 1) * NGX_HTTP_WEBHOOK_DEPTH_FIELDS     \
            + NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS + 1))


static void ngx_http_webhook_snapshot_depth(ngx_http_webhook_depth_t *d,
    redisReply **e, int64_t now);
static ngx_int_t ngx_http_webhook_snapshot_reconcilers(ngx_pool_t *pool,
    ngx_http_webhook_snapshot_queue_t *q, redisReply *reply);
static ngx_int_t ngx_http_webhook_snapshot_reconciler(ngx_pool_t *pool,
    ngx_http_webhook_reconciler_t *rc, redisReply **e);
static void ngx_http_webhook_snapshot_counters(
    ngx_http_webhook_snapshot_queue_t *q, ngx_http_webhook_counters_t *cnt);
static ngx_int_t ngx_http_webhook_snapshot_nodes(
    ngx_http_webhook_snapshot_t *snap, ngx_pool_t *pool,
    ngx_http_webhook_main_conf_t *wmcf);
static ngx_int_t ngx_http_webhook_snapshot_copy(ngx_pool_t *pool,
    ngx_str_t *dst, u_char *data, size_t len);


/* the snapshot of the configuration's queues, nothing known yet */

ngx_http_webhook_snapshot_t *
ngx_http_webhook_snapshot_create(ngx_pool_t *pool,
    ngx_http_webhook_main_conf_t *wmcf)
{
    size_t                        size;
    ngx_str_t                    *name;
    ngx_uint_t                    i;
    ngx_http_webhook_snapshot_t  *snap;

    snap = ngx_pcalloc(pool, sizeof(ngx_http_webhook_snapshot_t));
    if (snap == NULL) {
        return NULL;
    }

    snap->nqueues = wmcf->queues.names.nelts;

    if (snap->nqueues == 0) {
        return snap;
    }

    size = snap->nqueues * sizeof(ngx_http_webhook_snapshot_queue_t);

    snap->queues = ngx_pcalloc(pool, size);
    if (snap->queues == NULL) {
        return NULL;
    }

    name = wmcf->queues.names.elts;

    for (i = 0; i < snap->nqueues; i++) {
        snap->queues[i].name = name[i];
    }

    return snap;
}


/*
 * A call's reply into its queues, first to first + n - 1.  NGX_DECLINED:
 * not the status script's answer (the queues stay unknown).
 */

ngx_int_t
ngx_http_webhook_snapshot_read(ngx_http_webhook_snapshot_t *snap,
    ngx_pool_t *pool, ngx_uint_t first, ngx_uint_t n, redisReply *reply,
    ngx_log_t *log)
{
    int64_t                             now;
    ngx_uint_t                          i, prio;
    redisReply                        **e;
    ngx_time_t                         *tp;
    ngx_http_webhook_snapshot_queue_t  *q;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != NGX_HTTP_WEBHOOK_STATUS_ELEMENTS(n))
    {
        return NGX_DECLINED;
    }

    if (n == 0) {
        return NGX_OK;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    q = &snap->queues[first];
    e = reply->element;

    for (i = 0; i < n; i++) {
        for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
            ngx_http_webhook_snapshot_depth(&q[i].depths[prio], e, now);
            e += NGX_HTTP_WEBHOOK_DEPTH_FIELDS;
        }
    }

    for (i = 0; i < n; i++) {
        q[i].rejected = e[0]->integer;
        e += NGX_HTTP_WEBHOOK_DEPTH_FIELDS;
    }

    for (i = 0; i < n; i++) {
        q[i].in_flight.events = e[0]->integer;
        q[i].in_flight.age_ms = e[1]->integer;
        q[i].in_flight.reclaimed = e[2]->integer;
        e += NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS;
    }

    for (i = 0; i < n; i++) {
        q[i].read = 1;

        if (ngx_http_webhook_snapshot_reconcilers(pool, &q[i], *e++)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "webhook: the reconcilers of a queue could not "
                          "be read from the status query");
        }
    }

    return NGX_OK;
}


/* LLEN of a list, the received_at of its oldest event, LLEN of dead */

static void
ngx_http_webhook_snapshot_depth(ngx_http_webhook_depth_t *d, redisReply **e,
    int64_t now)
{
    int64_t  oldest;

    d->depth = e[0]->integer;
    d->dead = e[2]->integer;
    d->age_ms = 0;

    if (e[1]->type == REDIS_REPLY_STRING) {
        oldest = ngx_http_webhook_time_parse((u_char *) e[1]->str, e[1]->len);
        if (oldest >= 0 && now > oldest) {
            d->age_ms = now - oldest;
        }
    }
}


/*
 * The reconcilers of a queue: for each (by name), its name, then the ages
 * (ms) of its last successful pass and of its last pass, events replayed,
 * events waiting, whether its last pass failed, the last error ("" when
 * none) and its age (ms, -1: none)
 */

static ngx_int_t
ngx_http_webhook_snapshot_reconcilers(ngx_pool_t *pool,
    ngx_http_webhook_snapshot_queue_t *q, redisReply *reply)
{
    ngx_uint_t                      i, n;
    ngx_http_webhook_reconciler_t  *rc;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements % NGX_HTTP_WEBHOOK_RECONCILER_FIELDS)
    {
        return NGX_ERROR;
    }

    n = reply->elements / NGX_HTTP_WEBHOOK_RECONCILER_FIELDS;

    rc = ngx_pcalloc(pool, (n + 1) * sizeof(ngx_http_webhook_reconciler_t));
    if (rc == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_webhook_snapshot_reconciler(pool, &rc[i], reply->element
                                      + i * NGX_HTTP_WEBHOOK_RECONCILER_FIELDS)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    q->reconcilers = rc;
    q->nreconcilers = n;
    q->reconcilers_read = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_snapshot_reconciler(ngx_pool_t *pool,
    ngx_http_webhook_reconciler_t *rc, redisReply **e)
{
    ngx_uint_t  i;

    for (i = 1; i < NGX_HTTP_WEBHOOK_RECONCILER_FIELDS; i++) {
        if (i != 6 && e[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    /* copies: the reply is freed when its handler returns */

    if (e[0]->type != REDIS_REPLY_STRING || e[6]->type != REDIS_REPLY_STRING
        || ngx_http_webhook_snapshot_copy(pool, &rc->name,
                                          (u_char *) e[0]->str, e[0]->len)
           != NGX_OK
        || ngx_http_webhook_snapshot_copy(pool, &rc->error,
                                          (u_char *) e[6]->str, e[6]->len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc->success_age_ms = e[1]->integer;
    rc->pass_age_ms = e[2]->integer;
    rc->replayed = e[3]->integer;
    rc->waiting = e[4]->integer;
    rc->failing = (e[5]->integer != 0);
    rc->error_age_ms = e[7]->integer;

    return NGX_OK;
}


/* what the worker knows: counters, the spool, Redis's addresses */

ngx_int_t
ngx_http_webhook_snapshot_fill(ngx_http_webhook_snapshot_t *snap,
    ngx_pool_t *pool, ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_str_t                  primary, sentinel;
    ngx_uint_t                 i;
    ngx_http_webhook_stats_t  *stats;

    stats = wmcf->queues.stats;

    primary = wmcf->redis.addr_text;
    ngx_http_webhook_redis_addresses(&primary, &sentinel);

    if (ngx_http_webhook_snapshot_copy(pool, &snap->address, primary.data,
                                       primary.len)
        != NGX_OK
        || ngx_http_webhook_snapshot_copy(pool, &snap->sentinel,
                                          sentinel.data, sentinel.len)
           != NGX_OK
        || ngx_http_webhook_snapshot_nodes(snap, pool, wmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    snap->reconnects = stats->reconnects;

    for (i = 0; i < NGX_HTTP_WEBHOOK_NBUCKETS + 1; i++) {
        snap->duration[i] = stats->duration[i];
    }

    snap->duration_usec = stats->duration_usec;

    if (wmcf->spool.path) {
        snap->spool = 1;
        snap->spool_path = wmcf->spool.path->name;
        snap->spool_bytes = (ngx_atomic_int_t) stats->spool_bytes;
        snap->spool_max_size = wmcf->spool.max_size;
        snap->spool_recovering = (stats->spool_recovering != 0);
    }

    for (i = 0; i < snap->nqueues; i++) {
        if (wmcf->queues.counters[i]) {
            ngx_http_webhook_snapshot_counters(&snap->queues[i],
                                               wmcf->queues.counters[i]);
        }
    }

    return NGX_OK;
}


static void
ngx_http_webhook_snapshot_counters(ngx_http_webhook_snapshot_queue_t *q,
    ngx_http_webhook_counters_t *cnt)
{
    uint64_t     now;
    ngx_uint_t   k;
    ngx_time_t  *tp;

    q->counted = 1;
    q->warnings = cnt->warnings;

    for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
        q->requests[k] = cnt->requests[k];
        q->replays[k] = cnt->replays[k];
    }

    for (k = 0; k < NGX_HTTP_WEBHOOK_NPRIO; k++) {
        q->events[k] = cnt->events[k];
    }

    q->spool.events = (ngx_atomic_int_t) cnt->spool_pending;
    q->spool.bytes = (ngx_atomic_int_t) cnt->spool_bytes;
    q->spool.spooled = cnt->spooled;
    q->spool.drained = cnt->drained;
    q->spool.quarantined = cnt->quarantined;
    q->spool.corrupt_bytes = cnt->corrupt_bytes;

    /* the age of the oldest event in the spool, 0 when it holds none */

    if (cnt->spool_oldest && q->spool.events) {
        tp = ngx_timeofday();
        now = (uint64_t) tp->sec * 1000 + tp->msec;

        if (now > cnt->spool_oldest) {
            q->spool.oldest_usec = (now - cnt->spool_oldest) * 1000;
        }
    }
}


/* Cluster: the primaries known, and the primary of each queue's slot */

static ngx_int_t
ngx_http_webhook_snapshot_nodes(ngx_http_webhook_snapshot_t *snap,
    ngx_pool_t *pool, ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_str_t                          addr;
    ngx_uint_t                         i, up, slots;
    ngx_http_webhook_snapshot_node_t  *node;

    if (!ngx_http_webhook_cluster_on()) {
        return NGX_OK;
    }

    snap->cluster = 1;

    if (ngx_array_init(&snap->nodes, pool, 4,
                       sizeof(ngx_http_webhook_snapshot_node_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0;
         ngx_http_webhook_cluster_node(i, &addr, &up, &slots) == NGX_OK;
         i++)
    {
        node = ngx_array_push(&snap->nodes);
        if (node == NULL
            || ngx_http_webhook_snapshot_copy(pool, &node->address,
                                              addr.data, addr.len)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        node->up = up;
        node->slots = slots;
    }

    for (i = 0; i < snap->nqueues; i++) {
        if (ngx_http_webhook_cluster_slot_node(wmcf->queues.slots[i], &addr,
                                               &up)
            == NGX_OK
            && ngx_http_webhook_snapshot_copy(pool, &snap->queues[i].node,
                                              addr.data, addr.len)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a copy in the request's pool; data is never NULL, even when empty */

static ngx_int_t
ngx_http_webhook_snapshot_copy(ngx_pool_t *pool, ngx_str_t *dst,
    u_char *data, size_t len)
{
    dst->len = len;

    if (len == 0) {
        dst->data = (u_char *) "";
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, data, len);

    return NGX_OK;
}
