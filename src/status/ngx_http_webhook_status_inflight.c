
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The consumers' events in flight in the status location's answer: per
 * queue, the events the reference consumers have taken and not yet done
 * (their <queue>:processing:<name> lists, found through the registry
 * <queue>:consumers), the age of the oldest one (since it was taken, by
 * Redis's clock), and the events live consumers took back from consumers
 * whose lease expired (<queue>:reclaimed).  The status script reads them
 * (NGX_HTTP_WEBHOOK_STATUS_INFLIGHT_LUA).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "redis/ngx_http_webhook_redis.h"
#include "ngx_http_webhook_status.h"


/* one family of the Prometheus text, per queue */

typedef struct {
    char       *name;
    char       *type;
    char       *help;
    ngx_uint_t  field;
} ngx_http_webhook_inflight_family_t;


#define NGX_HTTP_WEBHOOK_INFLIGHT_EVENTS     0
#define NGX_HTTP_WEBHOOK_INFLIGHT_AGE        1
#define NGX_HTTP_WEBHOOK_INFLIGHT_RECLAIMED  2


static ngx_http_webhook_inflight_family_t  ngx_http_webhook_inflight_families[]
    = {
    { "nginx_webhook_in_flight_events", "gauge",
      "# HELP nginx_webhook_in_flight_events Events taken by a consumer and "
      "not done yet (its processing list).\n",
      NGX_HTTP_WEBHOOK_INFLIGHT_EVENTS },

    { "nginx_webhook_in_flight_oldest_age_seconds", "gauge",
      "# HELP nginx_webhook_in_flight_oldest_age_seconds Time since a "
      "consumer took the oldest event in flight, 0 when none is.\n",
      NGX_HTTP_WEBHOOK_INFLIGHT_AGE },

    { "nginx_webhook_reclaimed_events_total", "counter",
      "# HELP nginx_webhook_reclaimed_events_total Events taken back from "
      "consumers whose lease expired.\n",
      NGX_HTTP_WEBHOOK_INFLIGHT_RECLAIMED },
};


/* the script's three integers of each queue of a call */

void
ngx_http_webhook_status_inflight_read(ngx_http_webhook_inflight_t *inflight,
    redisReply **e, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++, e += NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS) {
        inflight[i].events = e[0]->integer;
        inflight[i].age_ms = e[1]->integer;
        inflight[i].reclaimed = e[2]->integer;
    }
}


/* ,"in_flight":{...} of a queue, or null when not read */

u_char *
ngx_http_webhook_status_inflight_json(u_char *p,
    ngx_http_webhook_inflight_t *in)
{
    if (in == NULL) {
        return ngx_sprintf(p, ",\"in_flight\":null");
    }

    p = ngx_sprintf(p, ",\"in_flight\":{\"events\":%i,\"oldest_age_seconds\":",
                    in->events);
    p = ngx_http_webhook_seconds(p, (uint64_t) in->age_ms * 1000);

    return ngx_sprintf(p, ",\"reclaimed\":%i}", in->reclaimed);
}


/* the three families, a series for each queue read */

u_char *
ngx_http_webhook_status_inflight_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_inflight_t *inflight,
    ngx_uint_t *known)
{
    ngx_str_t                           *queue;
    ngx_uint_t                           i, k;
    ngx_http_webhook_inflight_t         *in;
    ngx_http_webhook_inflight_family_t  *f;

    queue = wmcf->queues.names.elts;

    for (k = 0; k < sizeof(ngx_http_webhook_inflight_families)
                    / sizeof(ngx_http_webhook_inflight_family_t); k++)
    {
        f = &ngx_http_webhook_inflight_families[k];
        p = ngx_sprintf(p, "%s# TYPE %s %s\n", f->help, f->name, f->type);

        for (i = 0; i < wmcf->queues.names.nelts; i++) {
            if (!known[i]) {
                continue;
            }

            in = &inflight[i];
            p = ngx_sprintf(p, "%s{queue=", f->name);
            p = ngx_http_webhook_label(p, &queue[i]);
            p = ngx_cpymem(p, "} ", 2);

            switch (f->field) {

            case NGX_HTTP_WEBHOOK_INFLIGHT_EVENTS:
                p = ngx_sprintf(p, "%i", in->events);
                break;

            case NGX_HTTP_WEBHOOK_INFLIGHT_AGE:
                p = ngx_http_webhook_seconds(p, (uint64_t) in->age_ms * 1000);
                break;

            default: /* NGX_HTTP_WEBHOOK_INFLIGHT_RECLAIMED */
                p = ngx_sprintf(p, "%i", in->reclaimed);
            }

            *p++ = LF;
        }
    }

    return p;
}
