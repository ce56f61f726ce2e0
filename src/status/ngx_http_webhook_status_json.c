
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status answer in JSON, written from the snapshot (a value not read,
 * as a queue's depths while its node does not answer, is null):
 *
 *   {"version", "redis": {up, address, sentinel, reconnects, cluster},
 *    "queues": {<name>: {node, <priority>: {depth, dead, oldest age,
 *               events}, rejected, in_flight, spool, replays,
 *               reconcilers, warnings, requests}},
 *    "spool": {path, bytes, max_size, recovering},
 *    "requests": {<result>: n}, "events": {<priority>: n}}
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"
#include "ngx_http_webhook_status_snapshot.h"


static void ngx_http_webhook_json_redis(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);
static void ngx_http_webhook_json_queue(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap, ngx_http_webhook_snapshot_queue_t *q);
static void ngx_http_webhook_json_priority(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_queue_t *q, ngx_uint_t prio);
static void ngx_http_webhook_json_in_flight(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_queue_t *q);
static void ngx_http_webhook_json_queue_spool(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap, ngx_http_webhook_snapshot_queue_t *q);
static void ngx_http_webhook_json_reconcilers(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_queue_t *q);
static void ngx_http_webhook_json_reconciler(ngx_http_webhook_out_t *o,
    ngx_http_webhook_reconciler_t *rc);
static void ngx_http_webhook_json_age(ngx_http_webhook_out_t *o, int64_t ms);
static void ngx_http_webhook_json_spool(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);
static void ngx_http_webhook_json_counts(ngx_http_webhook_out_t *o,
    ngx_str_t *names, ngx_atomic_uint_t *values, ngx_uint_t n);


void
ngx_http_webhook_status_json(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap)
{
    ngx_uint_t                          i, k;
    ngx_atomic_uint_t                   requests[NGX_HTTP_WEBHOOK_NRESULTS];
    ngx_atomic_uint_t                   events[NGX_HTTP_WEBHOOK_NPRIO];
    ngx_http_webhook_snapshot_queue_t  *q;

    ngx_memzero(requests, sizeof(requests));
    ngx_memzero(events, sizeof(events));

    ngx_http_webhook_out_text(o, "{\"version\":\"" NGX_HTTP_WEBHOOK_VERSION
                                 "\",");
    ngx_http_webhook_json_redis(o, snap);
    ngx_http_webhook_out_text(o, ",\"queues\":{");

    for (i = 0; i < snap->nqueues; i++) {
        q = &snap->queues[i];

        if (i) {
            ngx_http_webhook_out_text(o, ",");
        }

        ngx_http_webhook_json_queue(o, snap, q);

        if (!q->counted) {
            continue;
        }

        for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
            requests[k] += q->requests[k];
        }

        for (k = 0; k < NGX_HTTP_WEBHOOK_NPRIO; k++) {
            events[k] += q->events[k];
        }
    }

    ngx_http_webhook_out_text(o, "},");
    ngx_http_webhook_json_spool(o, snap);

    ngx_http_webhook_out_text(o, "\"requests\":");
    ngx_http_webhook_json_counts(o, ngx_http_webhook_results, requests,
                                 NGX_HTTP_WEBHOOK_NRESULTS);
    ngx_http_webhook_out_text(o, ",\"events\":");
    ngx_http_webhook_json_counts(o, ngx_http_webhook_priorities, events,
                                 NGX_HTTP_WEBHOOK_NPRIO);
    ngx_http_webhook_out_text(o, "}\n");
}


/* "redis":{"up":...,"address":...,"sentinel":...,"reconnects":...,
 * "cluster":{"nodes":[{"address":...,"up":...,"slots":...},...]}} */

static void
ngx_http_webhook_json_redis(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap)
{
    ngx_uint_t                         i;
    ngx_http_webhook_snapshot_node_t  *node;

    ngx_http_webhook_out_text(o, "\"redis\":{\"up\":");
    ngx_http_webhook_out_bool(o, snap->up);
    ngx_http_webhook_out_text(o, ",\"address\":\"");
    ngx_http_webhook_out_json(o, &snap->address);

    if (snap->sentinel.len) {
        ngx_http_webhook_out_text(o, "\",\"sentinel\":\"");
        ngx_http_webhook_out_json(o, &snap->sentinel);
    }

    ngx_http_webhook_out_text(o, "\",\"reconnects\":");
    ngx_http_webhook_out_uint(o, snap->reconnects);

    if (snap->cluster) {
        ngx_http_webhook_out_text(o, ",\"cluster\":{\"nodes\":[");

        node = snap->nodes.elts;

        for (i = 0; i < snap->nodes.nelts; i++) {
            if (i) {
                ngx_http_webhook_out_text(o, ",");
            }

            ngx_http_webhook_out_text(o, "{\"address\":\"");
            ngx_http_webhook_out_json(o, &node[i].address);
            ngx_http_webhook_out_text(o, "\",\"up\":");
            ngx_http_webhook_out_bool(o, node[i].up);
            ngx_http_webhook_out_text(o, ",\"slots\":");
            ngx_http_webhook_out_uint(o, node[i].slots);
            ngx_http_webhook_out_text(o, "}");
        }

        ngx_http_webhook_out_text(o, "]}");
    }

    ngx_http_webhook_out_text(o, "}");
}


static void
ngx_http_webhook_json_queue(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap, ngx_http_webhook_snapshot_queue_t *q)
{
    ngx_uint_t  prio;

    ngx_http_webhook_out_text(o, "\"");
    ngx_http_webhook_out_json(o, &q->name);
    ngx_http_webhook_out_text(o, "\":{");

    if (snap->cluster) {
        if (q->node.data == NULL) {
            ngx_http_webhook_out_text(o, "\"node\":null,");

        } else {
            ngx_http_webhook_out_text(o, "\"node\":\"");
            ngx_http_webhook_out_json(o, &q->node);
            ngx_http_webhook_out_text(o, "\",");
        }
    }

    for (prio = 0; prio < NGX_HTTP_WEBHOOK_NPRIO; prio++) {
        ngx_http_webhook_json_priority(o, q, prio);
    }

    if (q->read) {
        ngx_http_webhook_out_text(o, ",\"rejected\":");
        ngx_http_webhook_out_int(o, q->rejected);

    } else {
        ngx_http_webhook_out_text(o, ",\"rejected\":null");
    }

    ngx_http_webhook_json_in_flight(o, q);
    ngx_http_webhook_json_queue_spool(o, snap, q);

    if (q->counted) {
        ngx_http_webhook_out_text(o, ",\"replays\":");
        ngx_http_webhook_json_counts(o, ngx_http_webhook_results, q->replays,
                                     NGX_HTTP_WEBHOOK_NRESULTS);

    } else {
        ngx_http_webhook_out_text(o, ",\"replays\":null");
    }

    ngx_http_webhook_json_reconcilers(o, q);

    /* no counters: the zone had no room for them (stats.c) */

    if (!q->counted) {
        ngx_http_webhook_out_text(o, ",\"requests\":null}");
        return;
    }

    ngx_http_webhook_out_text(o, ",\"warnings\":");
    ngx_http_webhook_out_uint(o, q->warnings);
    ngx_http_webhook_out_text(o, ",\"requests\":");
    ngx_http_webhook_json_counts(o, ngx_http_webhook_results, q->requests,
                                 NGX_HTTP_WEBHOOK_NRESULTS);
    ngx_http_webhook_out_text(o, "}");
}


/* "high":{"depth":...,"dead":...,"oldest_age_seconds":...,"events":...} */

static void
ngx_http_webhook_json_priority(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_queue_t *q, ngx_uint_t prio)
{
    ngx_http_webhook_depth_t  *d;

    if (prio) {
        ngx_http_webhook_out_text(o, ",");
    }

    ngx_http_webhook_out_text(o, "\"");
    ngx_http_webhook_out_str(o, &ngx_http_webhook_priorities[prio]);
    ngx_http_webhook_out_text(o, "\":{");

    if (q->read) {
        d = &q->depths[prio];
        ngx_http_webhook_out_text(o, "\"depth\":");
        ngx_http_webhook_out_int(o, d->depth);
        ngx_http_webhook_out_text(o, ",\"dead\":");
        ngx_http_webhook_out_int(o, d->dead);
        ngx_http_webhook_out_text(o, ",\"oldest_age_seconds\":");
        ngx_http_webhook_out_seconds(o, (uint64_t) d->age_ms * 1000);

    } else {
        ngx_http_webhook_out_text(o, "\"depth\":null,\"dead\":null,"
                                     "\"oldest_age_seconds\":null");
    }

    if (q->counted) {
        ngx_http_webhook_out_text(o, ",\"events\":");
        ngx_http_webhook_out_uint(o, q->events[prio]);
        ngx_http_webhook_out_text(o, "}");

    } else {
        ngx_http_webhook_out_text(o, ",\"events\":null}");
    }
}


/* ,"in_flight":{"events":...,"oldest_age_seconds":...,"reclaimed":...} */

static void
ngx_http_webhook_json_in_flight(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_queue_t *q)
{
    if (!q->read) {
        ngx_http_webhook_out_text(o, ",\"in_flight\":null");
        return;
    }

    ngx_http_webhook_out_text(o, ",\"in_flight\":{\"events\":");
    ngx_http_webhook_out_int(o, q->in_flight.events);
    ngx_http_webhook_out_text(o, ",\"oldest_age_seconds\":");
    ngx_http_webhook_out_seconds(o, (uint64_t) q->in_flight.age_ms * 1000);
    ngx_http_webhook_out_text(o, ",\"reclaimed\":");
    ngx_http_webhook_out_int(o, q->in_flight.reclaimed);
    ngx_http_webhook_out_text(o, "}");
}


/* ,"spool":{"events":...,"bytes":...,"oldest_age_seconds":...,
 * "spooled":...,"drained":...,"quarantined":...,"corrupt_bytes":...} */

static void
ngx_http_webhook_json_queue_spool(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap, ngx_http_webhook_snapshot_queue_t *q)
{
    ngx_http_webhook_snapshot_spool_t  *s;

    if (!snap->spool || !q->counted) {
        ngx_http_webhook_out_text(o, ",\"spool\":null");
        return;
    }

    s = &q->spool;

    ngx_http_webhook_out_text(o, ",\"spool\":{\"events\":");
    ngx_http_webhook_out_int(o, s->events);
    ngx_http_webhook_out_text(o, ",\"bytes\":");
    ngx_http_webhook_out_int(o, s->bytes);
    ngx_http_webhook_out_text(o, ",\"oldest_age_seconds\":");
    ngx_http_webhook_out_seconds(o, s->oldest_usec);
    ngx_http_webhook_out_text(o, ",\"spooled\":");
    ngx_http_webhook_out_uint(o, s->spooled);
    ngx_http_webhook_out_text(o, ",\"drained\":");
    ngx_http_webhook_out_uint(o, s->drained);
    ngx_http_webhook_out_text(o, ",\"quarantined\":");
    ngx_http_webhook_out_uint(o, s->quarantined);
    ngx_http_webhook_out_text(o, ",\"corrupt_bytes\":");
    ngx_http_webhook_out_uint(o, s->corrupt_bytes);
    ngx_http_webhook_out_text(o, "}");
}


/* ,"reconcilers":{<name>:{...},...} */

static void
ngx_http_webhook_json_reconcilers(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_queue_t *q)
{
    ngx_uint_t  k;

    if (!q->reconcilers_read) {
        ngx_http_webhook_out_text(o, ",\"reconcilers\":null");
        return;
    }

    ngx_http_webhook_out_text(o, ",\"reconcilers\":{");

    for (k = 0; k < q->nreconcilers; k++) {
        if (k) {
            ngx_http_webhook_out_text(o, ",");
        }

        ngx_http_webhook_json_reconciler(o, &q->reconcilers[k]);
    }

    ngx_http_webhook_out_text(o, "}");
}


static void
ngx_http_webhook_json_reconciler(ngx_http_webhook_out_t *o,
    ngx_http_webhook_reconciler_t *rc)
{
    ngx_http_webhook_out_text(o, "\"");
    ngx_http_webhook_out_json(o, &rc->name);
    ngx_http_webhook_out_text(o, "\":{\"last_success_age_seconds\":");
    ngx_http_webhook_json_age(o, rc->success_age_ms);
    ngx_http_webhook_out_text(o, ",\"last_pass_age_seconds\":");
    ngx_http_webhook_json_age(o, rc->pass_age_ms);
    ngx_http_webhook_out_text(o, ",\"replayed\":");
    ngx_http_webhook_out_int(o, rc->replayed);
    ngx_http_webhook_out_text(o, ",\"waiting\":");
    ngx_http_webhook_out_int(o, rc->waiting);
    ngx_http_webhook_out_text(o, ",\"failing\":");
    ngx_http_webhook_out_bool(o, rc->failing);
    ngx_http_webhook_out_text(o, ",\"error\":");

    if (rc->error.len) {
        ngx_http_webhook_out_text(o, "\"");
        ngx_http_webhook_out_json(o, &rc->error);
        ngx_http_webhook_out_text(o, "\"");

    } else {
        ngx_http_webhook_out_text(o, "null");
    }

    ngx_http_webhook_out_text(o, ",\"error_age_seconds\":");
    ngx_http_webhook_json_age(o, rc->error_age_ms);
    ngx_http_webhook_out_text(o, "}");
}


/* an age in milliseconds as seconds; a negative one (none) as null */

static void
ngx_http_webhook_json_age(ngx_http_webhook_out_t *o, int64_t ms)
{
    if (ms < 0) {
        ngx_http_webhook_out_text(o, "null");

    } else {
        ngx_http_webhook_out_seconds(o, (uint64_t) ms * 1000);
    }
}


/* "spool":{"path":...,"bytes":...,"max_size":...,"recovering":...}, */

static void
ngx_http_webhook_json_spool(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap)
{
    if (!snap->spool) {
        ngx_http_webhook_out_text(o, "\"spool\":null,");
        return;
    }

    ngx_http_webhook_out_text(o, "\"spool\":{\"path\":\"");
    ngx_http_webhook_out_json(o, &snap->spool_path);
    ngx_http_webhook_out_text(o, "\",\"bytes\":");
    ngx_http_webhook_out_int(o, snap->spool_bytes);
    ngx_http_webhook_out_text(o, ",\"max_size\":");
    ngx_http_webhook_out_int(o, snap->spool_max_size);
    ngx_http_webhook_out_text(o, ",\"recovering\":");
    ngx_http_webhook_out_bool(o, snap->spool_recovering);
    ngx_http_webhook_out_text(o, "},");
}


/* {"name":n,...} of the names of results or of priorities */

static void
ngx_http_webhook_json_counts(ngx_http_webhook_out_t *o, ngx_str_t *names,
    ngx_atomic_uint_t *values, ngx_uint_t n)
{
    ngx_uint_t  k;

    ngx_http_webhook_out_text(o, "{");

    for (k = 0; k < n; k++) {
        if (k) {
            ngx_http_webhook_out_text(o, ",");
        }

        ngx_http_webhook_out_text(o, "\"");
        ngx_http_webhook_out_str(o, &names[k]);
        ngx_http_webhook_out_text(o, "\":");
        ngx_http_webhook_out_uint(o, values[k]);
    }

    ngx_http_webhook_out_text(o, "}");
}
