
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Counters in shared memory: they add up across workers and survive a
 * reload (the new zone takes the old one's data).  Updated with atomic
 * adds and read without locks.  A queue's counters live in a slot named
 * after it; slots that no configuration in use has any more are reused.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_stats.h"


static ngx_int_t ngx_http_webhook_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_webhook_stats_valid(
    ngx_http_webhook_stats_t *stats);
static void ngx_http_webhook_stats_assign(ngx_http_webhook_queues_t *qs,
    ngx_log_t *log);
static ngx_http_webhook_counters_t *ngx_http_webhook_stats_find(
    ngx_http_webhook_stats_t *stats, ngx_str_t *name);
static ngx_http_webhook_counters_t *ngx_http_webhook_stats_free_slot(
    ngx_http_webhook_stats_t *stats);
static void ngx_http_webhook_stats_take(ngx_http_webhook_counters_t *slot,
    ngx_str_t *name, ngx_uint_t generation);


/* upper bounds in microseconds of the enqueue duration histogram */

uint64_t  ngx_http_webhook_buckets[NGX_HTTP_WEBHOOK_NBUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000
};


ngx_int_t
ngx_http_webhook_stats_zone(ngx_conf_t *cf, ngx_http_webhook_queues_t *qs)
{
    ngx_shm_zone_t  *shm_zone;

    static ngx_str_t  name = ngx_string("ngx_http_webhook_stats");

    shm_zone = ngx_shared_memory_add(cf, &name,
                                     NGX_HTTP_WEBHOOK_STATS_SIZE,
                                     &ngx_http_webhook_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_webhook_stats_init_zone;
    shm_zone->data = qs;

    return NGX_OK;
}


/*
 * Every configuration loaded gets the next generation number.  A queue's
 * slot is found by its name and stamped with the generation of the last
 * configuration that has the queue.  The slots of the running
 * configuration (the last one committed, whose workers may still count)
 * and of the one being loaded are kept; the others may be given to a new
 * queue, the oldest first, and are zeroed then.
 */

static ngx_int_t
ngx_http_webhook_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_uint_t                  fresh;
    ngx_slab_pool_t            *shpool;
    ngx_http_webhook_stats_t   *stats;
    ngx_http_webhook_queues_t  *qs;

    qs = shm_zone->data;
    fresh = 0;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    stats = NULL;

    if (data || shm_zone->shm.exists) {

        /* the zone's own pointer, whichever module version set it */

        stats = shpool->data;

        if (stats && !ngx_http_webhook_stats_valid(stats)) {
            ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                          "webhook: the counters in shared memory have "
                          "another layout, counting starts again at 0");

            /* left alone: workers of that version may still count there */
            stats = NULL;
        }
    }

    if (stats == NULL) {
        stats = ngx_slab_calloc(shpool, sizeof(ngx_http_webhook_stats_t));
        if (stats == NULL) {
            return NGX_ERROR;
        }

        fresh = 1;
        stats->magic = NGX_HTTP_WEBHOOK_STATS_MAGIC;
        stats->layout = NGX_HTTP_WEBHOOK_STATS_LAYOUT;
        stats->size = sizeof(ngx_http_webhook_stats_t);

        shpool->data = stats;
    }

    shm_zone->data = stats;

    qs->stats = stats;
    qs->generation = stats->generation + 1;

    ngx_http_webhook_stats_assign(qs, shm_zone->shm.log);

    if (fresh && qs->zone_made) {
        return qs->zone_made(qs->zone_made_data, shm_zone->shm.log);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_webhook_stats_valid(ngx_http_webhook_stats_t *stats)
{
    return stats->magic == NGX_HTTP_WEBHOOK_STATS_MAGIC
           && stats->layout == NGX_HTTP_WEBHOOK_STATS_LAYOUT
           && stats->size == sizeof(ngx_http_webhook_stats_t);
}


static void
ngx_http_webhook_stats_assign(ngx_http_webhook_queues_t *qs,
    ngx_log_t *log)
{
    ngx_str_t                    *queue;
    ngx_uint_t                    i;
    ngx_http_webhook_counters_t  *slot;

    queue = qs->names.elts;

    /* first the queues that have a slot: they keep their counters */

    for (i = 0; i < qs->names.nelts; i++) {
        slot = ngx_http_webhook_stats_find(qs->stats, &queue[i]);

        if (slot) {
            slot->generation = qs->generation;
        }

        qs->counters[i] = slot;
    }

    /* then the new ones, starting at 0 */

    for (i = 0; i < qs->names.nelts; i++) {

        if (qs->counters[i]) {
            continue;
        }

        slot = ngx_http_webhook_stats_free_slot(qs->stats);

        if (slot == NULL) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "webhook: no room for the counters of queue "
                          "\"%V\", the status reports none for it",
                          &queue[i]);
            continue;
        }

        ngx_http_webhook_stats_take(slot, &queue[i], qs->generation);

        qs->counters[i] = slot;
    }
}


static ngx_http_webhook_counters_t *
ngx_http_webhook_stats_find(ngx_http_webhook_stats_t *stats, ngx_str_t *name)
{
    ngx_uint_t                    k;
    ngx_http_webhook_counters_t  *slot;

    for (k = 0; k < NGX_HTTP_WEBHOOK_SLOTS; k++) {
        slot = &stats->slots[k];

        if (slot->len == name->len
            && ngx_strncmp(slot->name, name->data, name->len) == 0)
        {
            return slot;
        }
    }

    return NULL;
}


/*
 * The oldest slot that neither the running configuration nor the one being
 * loaded uses; never used slots have generation 0.  Stamps newer than the
 * running configuration's are those of a configuration being loaded: this
 * one, or one whose load failed (and had the same number).
 */

static ngx_http_webhook_counters_t *
ngx_http_webhook_stats_free_slot(ngx_http_webhook_stats_t *stats)
{
    ngx_uint_t                    k;
    ngx_http_webhook_counters_t  *slot, *oldest;

    oldest = NULL;

    for (k = 0; k < NGX_HTTP_WEBHOOK_SLOTS; k++) {
        slot = &stats->slots[k];

        if (slot->len && slot->generation >= stats->generation) {
            continue;
        }

        if (oldest == NULL || slot->generation < oldest->generation) {
            oldest = slot;
        }
    }

    return oldest;
}


/* a slot for a new queue: its counters start at 0 */

static void
ngx_http_webhook_stats_take(ngx_http_webhook_counters_t *slot,
    ngx_str_t *name, ngx_uint_t generation)
{
    ngx_memzero(slot, sizeof(ngx_http_webhook_counters_t));

    ngx_memcpy(slot->name, name->data, name->len);
    slot->len = name->len;
    slot->generation = generation;
}


/*
 * init_module: the configuration is committed (nothing after it fails), its
 * workers start next.  From now on its slots are those of the running one.
 */

/* the configuration is the running one now (init_module) */

void
ngx_http_webhook_stats_commit(ngx_http_webhook_queues_t *qs)
{
    if (qs->stats) {
        qs->stats->generation = qs->generation;
    }
}


ngx_http_webhook_counters_t *
ngx_http_webhook_counters(ngx_http_webhook_queues_t *qs, ngx_uint_t i)
{
    return qs->stats ? qs->counters[i] : NULL;
}


ngx_http_webhook_counters_t *
ngx_http_webhook_counters_of(ngx_http_webhook_queues_t *qs, ngx_str_t *queue)
{
    ngx_str_t   *q;
    ngx_uint_t   i;

    q = qs->names.elts;

    for (i = 0; i < qs->names.nelts; i++) {
        if (q[i].len == queue->len
            && ngx_strncmp(q[i].data, queue->data, queue->len) == 0)
        {
            return ngx_http_webhook_counters(qs, i);
        }
    }

    return NULL;
}


void
ngx_http_webhook_queues_duration(ngx_http_webhook_queues_t *qs, uint64_t usec)
{
    ngx_uint_t                 i;
    ngx_http_webhook_stats_t  *stats;

    stats = qs->stats;
    if (stats == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_WEBHOOK_NBUCKETS; i++) {
        if (usec <= ngx_http_webhook_buckets[i]) {
            break;
        }
    }

    /* per bucket (the last one is +Inf); the exposition sums them up */
    (void) ngx_atomic_fetch_add(&stats->duration[i], 1);
    (void) ngx_atomic_fetch_add(&stats->duration_usec, usec);
}


void
ngx_http_webhook_count_reconnect(ngx_http_webhook_queues_t *qs)
{
    if (qs->stats) {
        (void) ngx_atomic_fetch_add(&qs->stats->reconnects, 1);
    }
}
