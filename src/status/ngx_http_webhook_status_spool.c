
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool in the status location's answer: per queue the events and
 * bytes it holds, the age of its oldest event, the events spooled,
 * drained and quarantined; in all, its size and bound.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_status.h"
#include "stats/ngx_http_webhook_stats.h"
#include "core/ngx_http_webhook_core.h"


static uint64_t ngx_http_webhook_spool_age(ngx_http_webhook_counters_t *cnt);
static u_char *ngx_http_webhook_spool_series(u_char *p, char *name,
    ngx_str_t *queue);


/* "spool":{"path":...,"bytes":...,"max_size":...,"recovering":...}, */

u_char *
ngx_http_webhook_status_spool_json(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_http_webhook_stats_t  *stats;

    stats = wmcf->queues.stats;

    if (wmcf->spool.path == NULL) {
        return ngx_sprintf(p, "\"spool\":null,");
    }

    p = ngx_sprintf(p, "\"spool\":{\"path\":\"");
    p = ngx_http_webhook_json_escape(p, wmcf->spool.path->name.data,
                                     wmcf->spool.path->name.len);

    return ngx_sprintf(p, "\",\"bytes\":%A,\"max_size\":%O,"
                       "\"recovering\":%s},",
                       (ngx_atomic_int_t) stats->spool_bytes,
                       wmcf->spool.max_size,
                       stats->spool_recovering ? "true" : "false");
}


/* ,"spool":{...} of queue i */

u_char *
ngx_http_webhook_status_spool_queue(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_uint_t i)
{
    ngx_http_webhook_counters_t  *cnt;

    cnt = wmcf->queues.counters[i];

    if (wmcf->spool.path == NULL || cnt == NULL) {
        return ngx_sprintf(p, ",\"spool\":null");
    }

    p = ngx_sprintf(p, ",\"spool\":{\"events\":%A,\"bytes\":%A,"
                    "\"oldest_age_seconds\":",
                    (ngx_atomic_int_t) cnt->spool_pending,
                    (ngx_atomic_int_t) cnt->spool_bytes);
    p = ngx_http_webhook_seconds(p, ngx_http_webhook_spool_age(cnt));

    return ngx_sprintf(p, ",\"spooled\":%uA,\"drained\":%uA,"
                       "\"quarantined\":%uA,\"corrupt_bytes\":%uA}",
                       cnt->spooled, cnt->drained, cnt->quarantined,
                       cnt->corrupt_bytes);
}


u_char *
ngx_http_webhook_status_spool_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_str_t                    *queue;
    ngx_uint_t                    i;
    ngx_http_webhook_counters_t  *cnt;

    if (wmcf->spool.path == NULL) {
        return p;
    }

    queue = wmcf->queues.names.elts;

    p = ngx_http_webhook_family(p, "nginx_webhook_spool_size_bytes", "gauge",
                                "Bytes in the spool's segments.");
    p = ngx_sprintf(p, "nginx_webhook_spool_size_bytes %A\n",
                    (ngx_atomic_int_t) wmcf->queues.stats->spool_bytes);

    p = ngx_http_webhook_family(p, "nginx_webhook_spool_max_size_bytes",
                                "gauge", "The spool's max_size.");
    p = ngx_sprintf(p, "nginx_webhook_spool_max_size_bytes %O\n",
                    wmcf->spool.max_size);

    p = ngx_http_webhook_family(p, "nginx_webhook_spool_events", "gauge",
                                "Events in the spool, not yet in Redis.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p, "nginx_webhook_spool_events",
                                              &queue[i]);
            p = ngx_sprintf(p, "%A\n", (ngx_atomic_int_t) cnt->spool_pending);
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_spool_bytes", "gauge",
                                "Bytes of a queue's spool segments.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p, "nginx_webhook_spool_bytes",
                                              &queue[i]);
            p = ngx_sprintf(p, "%A\n", (ngx_atomic_int_t) cnt->spool_bytes);
        }
    }

    p = ngx_http_webhook_family(p,
                                "nginx_webhook_spool_oldest_event_age_seconds",
                                "gauge",
                                "Age of the oldest event in the spool, "
                                "0 when it is empty.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p,
                              "nginx_webhook_spool_oldest_event_age_seconds",
                              &queue[i]);
            p = ngx_http_webhook_seconds(p, ngx_http_webhook_spool_age(cnt));
            *p++ = LF;
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_spooled_events_total",
                                "counter", "Events written to the spool.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p,
                                          "nginx_webhook_spooled_events_total",
                                          &queue[i]);
            p = ngx_sprintf(p, "%uA\n", cnt->spooled);
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_drained_events_total",
                                "counter",
                                "Events moved from the spool into Redis.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p,
                                          "nginx_webhook_drained_events_total",
                                          &queue[i]);
            p = ngx_sprintf(p, "%uA\n", cnt->drained);
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_quarantined_events_total",
                                "counter",
                                "Spooled events Redis refused for good, set "
                                "aside in <queue>.quarantine.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p,
                                      "nginx_webhook_quarantined_events_total",
                                      &queue[i]);
            p = ngx_sprintf(p, "%uA\n", cnt->quarantined);
        }
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_spool_corrupt_bytes_total",
                                "counter",
                                "Bytes of the spool's segments that are no "
                                "record, passed over and set aside in "
                                "<queue>.corrupt.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if ((cnt = wmcf->queues.counters[i])) {
            p = ngx_http_webhook_spool_series(p,
                                    "nginx_webhook_spool_corrupt_bytes_total",
                                    &queue[i]);
            p = ngx_sprintf(p, "%uA\n", cnt->corrupt_bytes);
        }
    }

    return p;
}


static uint64_t
ngx_http_webhook_spool_age(ngx_http_webhook_counters_t *cnt)
{
    uint64_t     now, oldest;
    ngx_time_t  *tp;

    oldest = cnt->spool_oldest;

    if (oldest == 0 || cnt->spool_pending == 0) {
        return 0;
    }

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    return now > oldest ? (now - oldest) * 1000 : 0;
}


static u_char *
ngx_http_webhook_spool_series(u_char *p, char *name, ngx_str_t *queue)
{
    p = ngx_sprintf(p, "%s{queue=", name);
    p = ngx_http_webhook_label(p, queue);

    return ngx_cpymem(p, "} ", 2);
}
