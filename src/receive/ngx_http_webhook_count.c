
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * A receive location's requests counted in its queue's counters: the
 * result of each (and apart, a reconciler's replays), the events queued
 * by priority, those queued with warnings, the time to Redis's
 * acknowledgement.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"


static ngx_http_webhook_counters_t *ngx_http_webhook_request_counters(
    ngx_http_request_t *r);
static ngx_uint_t ngx_http_webhook_replay(ngx_http_request_t *r);


void
ngx_http_webhook_count_result(ngx_http_request_t *r, ngx_uint_t result)
{
    ngx_http_webhook_counters_t  *cnt;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    cnt = ngx_http_webhook_request_counters(r);

    if (cnt && wlcf->receive && result < NGX_HTTP_WEBHOOK_NRESULTS) {
        (void) ngx_atomic_fetch_add(&cnt->requests[result], 1);

        if (ngx_http_webhook_replay(r)) {
            (void) ngx_atomic_fetch_add(&cnt->replays[result], 1);
        }
    }
}


/*
 * A reconciler's replay of an event Odoo recorded as not acknowledged
 * carries "X-Webhook-Replay" (any value but empty or "0"): counted apart,
 * whatever the answer, so that the status shows what the replays got
 */

static ngx_uint_t
ngx_http_webhook_replay(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("X-Webhook-Replay");

    h = ngx_http_webhook_find_header(r, &name);

    return h && h->value.len
           && !(h->value.len == 1 && h->value.data[0] == '0');
}


void
ngx_http_webhook_count_events(ngx_http_request_t *r, ngx_uint_t priority,
    ngx_uint_t n)
{
    ngx_http_webhook_counters_t  *cnt;

    cnt = ngx_http_webhook_request_counters(r);

    if (cnt) {
        (void) ngx_atomic_fetch_add(&cnt->events[priority], n);
    }
}


/* events queued with fields taken as absent ("warnings" in the envelope) */

void
ngx_http_webhook_count_warnings(ngx_http_request_t *r, ngx_uint_t n)
{
    ngx_http_webhook_counters_t  *cnt;

    cnt = ngx_http_webhook_request_counters(r);

    if (cnt) {
        (void) ngx_atomic_fetch_add(&cnt->warnings, n);
    }
}


void
ngx_http_webhook_count_duration(ngx_http_request_t *r, uint64_t usec)
{
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    ngx_http_webhook_queues_duration(&wmcf->queues, usec);
}


/* the counters of the request's queue; NULL: none (no zone, or no room) */

static ngx_http_webhook_counters_t *
ngx_http_webhook_request_counters(ngx_http_request_t *r)
{
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    return ngx_http_webhook_counters(&wmcf->queues, wlcf->queue_index);
}
