
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Counters in shared memory: they add up across workers and survive a
 * reload (the new zone takes the old one's data).  Updated with atomic
 * adds and read without locks.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_stats.h"


static ngx_int_t ngx_http_webhook_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/* upper bounds in microseconds of the enqueue duration histogram */

uint64_t  ngx_http_webhook_buckets[NGX_HTTP_WEBHOOK_NBUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000
};


ngx_int_t
ngx_http_webhook_stats_zone(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf)
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
    shm_zone->data = wmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_webhook_stats_t  *ostats = data;

    ngx_str_t                     *queue;
    ngx_uint_t                     i, k;
    ngx_slab_pool_t               *shpool;
    ngx_http_webhook_stats_t      *stats;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ostats) {
        stats = ostats;

    } else if (shm_zone->shm.exists) {
        stats = shpool->data;

    } else {
        stats = ngx_slab_calloc(shpool, sizeof(ngx_http_webhook_stats_t));
        if (stats == NULL) {
            return NGX_ERROR;
        }

        shpool->data = stats;
    }

    shm_zone->data = stats;

    /* a slot per queue, kept by name across reloads */

    queue = wmcf->queues.elts;

    for (i = 0; i < wmcf->queues.nelts; i++) {

        for (k = 0; k < stats->nqueues; k++) {
            if (stats->queues[k].len == queue[i].len
                && ngx_strncmp(stats->queues[k].name, queue[i].data,
                               queue[i].len) == 0)
            {
                break;
            }
        }

        if (k == stats->nqueues) {
            if (k == NGX_HTTP_WEBHOOK_MAX_QUEUES
                || queue[i].len > NGX_HTTP_WEBHOOK_MAX_NAME)
            {
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "webhook: no room for the counters of "
                              "queue \"%V\"", &queue[i]);
                return NGX_ERROR;
            }

            ngx_memcpy(stats->queues[k].name, queue[i].data, queue[i].len);
            stats->queues[k].len = queue[i].len;
            ngx_memory_barrier();
            stats->nqueues++;
        }

        wmcf->counters[i] = &stats->queues[k];
    }

    wmcf->stats = stats;

    return NGX_OK;
}


void
ngx_http_webhook_count_result(ngx_http_request_t *r, ngx_uint_t result)
{
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    if (wmcf->stats == NULL || !wlcf->receive
        || result >= ngx_http_webhook_nresults)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(
                       &wmcf->counters[wlcf->queue_index]->requests[result], 1);
}


void
ngx_http_webhook_count_events(ngx_http_request_t *r, ngx_uint_t priority,
    ngx_uint_t n)
{
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    if (wmcf->stats == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(
                       &wmcf->counters[wlcf->queue_index]->events[priority], n);
}


void
ngx_http_webhook_count_duration(ngx_http_request_t *r, uint64_t usec)
{
    ngx_uint_t                     i;
    ngx_http_webhook_stats_t      *stats;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    stats = wmcf->stats;
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
ngx_http_webhook_count_reconnect(ngx_http_webhook_main_conf_t *wmcf)
{
    if (wmcf->stats) {
        (void) ngx_atomic_fetch_add(&wmcf->stats->reconnects, 1);
    }
}


uint64_t
ngx_http_webhook_now_usec(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}
