
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status location's answer in Prometheus text: the depths read from
 * Redis (left out for the queues whose node did not answer) and the
 * shared-memory counters.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "receive/ngx_http_webhook_receive.h"
#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"
#include "stats/ngx_http_webhook_stats.h"
#include "ngx_http_webhook_status.h"


/* what a series by queue and priority tells */
#define NGX_HTTP_WEBHOOK_DEPTH  0
#define NGX_HTTP_WEBHOOK_DEAD   1
#define NGX_HTTP_WEBHOOK_AGE    2


static u_char *ngx_http_webhook_prio_series(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_depth_t *depths,
    ngx_uint_t *known, char *name, ngx_uint_t field);
static u_char *ngx_http_webhook_series(u_char *p, char *name,
    ngx_str_t *queue, char *label, ngx_str_t *value);


u_char *
ngx_http_webhook_status_text(u_char *p, ngx_http_webhook_main_conf_t *wmcf,
    ngx_uint_t up, ngx_http_webhook_depth_t *depths,
    ngx_http_webhook_inflight_t *inflight, ngx_uint_t *known,
    ngx_http_webhook_reconcilers_t *reconcile)
{
    ngx_str_t                 *queue;
    ngx_uint_t                 i, k, prio;
    ngx_atomic_uint_t          sum;
    ngx_http_webhook_stats_t  *stats;
    ngx_http_webhook_depth_t  *d;

    stats = wmcf->queues.stats;
    queue = wmcf->queues.names.elts;

    p = ngx_http_webhook_family(p, "nginx_webhook_info", "gauge",
                                "Version of the nginx webhook module.");
    p = ngx_sprintf(p, "nginx_webhook_info{version=\""
                    NGX_HTTP_WEBHOOK_VERSION "\"} 1\n");

    p = ngx_http_webhook_family(p, "nginx_webhook_redis_up", "gauge",
                                "Whether Redis answered the last query.");
    p = ngx_sprintf(p, "nginx_webhook_redis_up %ui\n", up);

    p = ngx_http_webhook_family(p, "nginx_webhook_redis_reconnects_total",
                                "counter",
                                "Connections to Redis made again after "
                                "one was lost.");
    p = ngx_sprintf(p, "nginx_webhook_redis_reconnects_total %uA\n",
                    stats->reconnects);

    p = ngx_http_webhook_status_cluster_text(p);

    if (depths) {
        p = ngx_http_webhook_family(p, "nginx_webhook_queue_depth", "gauge",
                                    "Events waiting in a queue.");

        p = ngx_http_webhook_prio_series(p, wmcf, depths, known,
                                         "nginx_webhook_queue_depth",
                                         NGX_HTTP_WEBHOOK_DEPTH);

        p = ngx_http_webhook_family(p, "nginx_webhook_dead_letter_depth",
                                    "gauge",
                                    "Events in a dead-letter list.");

        p = ngx_http_webhook_prio_series(p, wmcf, depths, known,
                                         "nginx_webhook_dead_letter_depth",
                                         NGX_HTTP_WEBHOOK_DEAD);

        p = ngx_http_webhook_family(p, "nginx_webhook_rejected_depth",
                                    "gauge",
                                    "Bodies answered 400 kept in the "
                                    "rejected list.");

        for (i = 0; i < wmcf->queues.names.nelts; i++) {
            if (!known[i]) {
                continue;
            }

            d = &depths[wmcf->queues.names.nelts * NGX_HTTP_WEBHOOK_NPRIO + i];
            p = ngx_sprintf(p, "nginx_webhook_rejected_depth{queue=");
            p = ngx_http_webhook_label(p, &queue[i]);
            p = ngx_sprintf(p, "} %i\n", d->depth);
        }

        p = ngx_http_webhook_family(p,
                                    "nginx_webhook_oldest_event_age_seconds",
                                    "gauge",
                                    "Age of the oldest waiting event, "
                                    "0 when none waits.");

        p = ngx_http_webhook_prio_series(p, wmcf, depths, known,
                                     "nginx_webhook_oldest_event_age_seconds",
                                     NGX_HTTP_WEBHOOK_AGE);

        p = ngx_http_webhook_status_inflight_text(p, wmcf, inflight, known);
    }

    p = ngx_http_webhook_status_spool_text(p, wmcf);
    p = ngx_http_webhook_status_reconcile_text(p, wmcf, reconcile);

    p = ngx_http_webhook_family(p, "nginx_webhook_warnings_total", "counter",
                                "Events queued with fields of the wrong "
                                "type, taken as absent.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if (wmcf->queues.counters[i] == NULL) {
            continue;
        }

        p = ngx_sprintf(p, "nginx_webhook_warnings_total{queue=");
        p = ngx_http_webhook_label(p, &queue[i]);
        p = ngx_sprintf(p, "} %uA\n", wmcf->queues.counters[i]->warnings);
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_requests_total", "counter",
                                "Answers of the receive locations, "
                                "by result.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if (wmcf->queues.counters[i] == NULL) {
            continue;
        }

        for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
            p = ngx_http_webhook_series(p, "nginx_webhook_requests_total",
                                        &queue[i], "result",
                                        &ngx_http_webhook_results[k]);
            p = ngx_sprintf(p, "%uA\n", wmcf->queues.counters[i]->requests[k]);
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_events_total", "counter",
                                "Events enqueued, by priority.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if (wmcf->queues.counters[i] == NULL) {
            continue;
        }

        for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
            p = ngx_http_webhook_series(p, "nginx_webhook_events_total",
                                        &queue[i], "priority",
                                        &ngx_http_webhook_priorities[prio]);
            p = ngx_sprintf(p, "%uA\n", wmcf->queues.counters[i]->events[prio]);
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_enqueue_duration_seconds",
                                "histogram",
                                "Time from the complete body to Redis's "
                                "acknowledgement.");

    sum = 0;

    for (i = 0; i < NGX_HTTP_WEBHOOK_NBUCKETS; i++) {
        sum += stats->duration[i];
        p = ngx_sprintf(p, "nginx_webhook_enqueue_duration_seconds_bucket"
                        "{le=\"");
        p = ngx_http_webhook_seconds(p, ngx_http_webhook_buckets[i]);
        p = ngx_sprintf(p, "\"} %uA\n", sum);
    }

    sum += stats->duration[NGX_HTTP_WEBHOOK_NBUCKETS];

    p = ngx_sprintf(p, "nginx_webhook_enqueue_duration_seconds_bucket"
                    "{le=\"+Inf\"} %uA\n"
                    "nginx_webhook_enqueue_duration_seconds_sum ", sum);
    p = ngx_http_webhook_seconds(p, stats->duration_usec);
    p = ngx_sprintf(p, "\nnginx_webhook_enqueue_duration_seconds_count %uA\n",
                    sum);

    return p;
}


/* a family's series, each queue read and priority: a depth or an age */

static u_char *
ngx_http_webhook_prio_series(u_char *p, ngx_http_webhook_main_conf_t *wmcf,
    ngx_http_webhook_depth_t *depths, ngx_uint_t *known, char *name,
    ngx_uint_t field)
{
    ngx_str_t                 *queue;
    ngx_uint_t                 i, prio;
    ngx_http_webhook_depth_t  *d;

    queue = wmcf->queues.names.elts;

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if (!known[i]) {
            continue;
        }

        for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
            d = &depths[i * NGX_HTTP_WEBHOOK_NPRIO + prio];
            p = ngx_http_webhook_series(p, name, &queue[i], "priority",
                                        &ngx_http_webhook_priorities[prio]);

            if (field == NGX_HTTP_WEBHOOK_AGE) {
                p = ngx_http_webhook_seconds(p, (uint64_t) d->age_ms * 1000);
                *p++ = LF;
                continue;
            }

            p = ngx_sprintf(p, "%i\n", field == NGX_HTTP_WEBHOOK_DEAD
                                       ? d->dead : d->depth);
        }
    }

    return p;
}


/* name{queue="...",label="value"} and the space before the value */

static u_char *
ngx_http_webhook_series(u_char *p, char *name, ngx_str_t *queue,
    char *label, ngx_str_t *value)
{
    p = ngx_sprintf(p, "%s{queue=", name);
    p = ngx_http_webhook_label(p, queue);

    return ngx_sprintf(p, ",%s=\"%V\"} ", label, value);
}
