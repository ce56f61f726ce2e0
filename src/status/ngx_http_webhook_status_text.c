
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status answer in Prometheus text, written from the snapshot: the
 * module and Redis, the Cluster's primaries, then the families by queue
 * (the depths' only for the queues read, and none of them while no
 * queue's node answers; the counters' for the queues counted), the spool's
 * with webhook_spool, the duration histogram last.  A family by queue is
 * a line of a table: its header, its name, and what a series shows.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"
#include "stats/ngx_http_webhook_stats.h"
#include "ngx_http_webhook_status_snapshot.h"


/* what a series of a family by queue shows */

typedef enum {
    NGX_HTTP_WEBHOOK_TEXT_DEPTH = 0,
    NGX_HTTP_WEBHOOK_TEXT_DEAD,
    NGX_HTTP_WEBHOOK_TEXT_AGE,
    NGX_HTTP_WEBHOOK_TEXT_REJECTED,
    NGX_HTTP_WEBHOOK_TEXT_IN_FLIGHT,
    NGX_HTTP_WEBHOOK_TEXT_IN_FLIGHT_AGE,
    NGX_HTTP_WEBHOOK_TEXT_RECLAIMED,
    NGX_HTTP_WEBHOOK_TEXT_SPOOL_EVENTS,
    NGX_HTTP_WEBHOOK_TEXT_SPOOL_BYTES,
    NGX_HTTP_WEBHOOK_TEXT_SPOOL_AGE,
    NGX_HTTP_WEBHOOK_TEXT_SPOOLED,
    NGX_HTTP_WEBHOOK_TEXT_DRAINED,
    NGX_HTTP_WEBHOOK_TEXT_QUARANTINED,
    NGX_HTTP_WEBHOOK_TEXT_CORRUPT,
    NGX_HTTP_WEBHOOK_TEXT_REPLAYS,
    NGX_HTTP_WEBHOOK_TEXT_REC_SUCCESS,
    NGX_HTTP_WEBHOOK_TEXT_REC_REPLAYED,
    NGX_HTTP_WEBHOOK_TEXT_REC_WAITING,
    NGX_HTTP_WEBHOOK_TEXT_REC_FAILING,
    NGX_HTTP_WEBHOOK_TEXT_WARNINGS,
    NGX_HTTP_WEBHOOK_TEXT_REQUESTS,
    NGX_HTTP_WEBHOOK_TEXT_EVENTS
} ngx_http_webhook_text_value_e;


/* which queues have series: those read from Redis, or those counted */

typedef enum {
    NGX_HTTP_WEBHOOK_TEXT_READ = 0,
    NGX_HTTP_WEBHOOK_TEXT_COUNTED,
    NGX_HTTP_WEBHOOK_TEXT_ALL
} ngx_http_webhook_text_of_e;


/* a queue's series: one, or one by priority, result or reconciler */

typedef enum {
    NGX_HTTP_WEBHOOK_TEXT_QUEUE = 0,
    NGX_HTTP_WEBHOOK_TEXT_PRIORITY,
    NGX_HTTP_WEBHOOK_TEXT_RESULT,
    NGX_HTTP_WEBHOOK_TEXT_RECONCILER
} ngx_http_webhook_text_by_e;


typedef struct {
    ngx_str_t                      head;     /* # HELP and # TYPE lines */
    ngx_str_t                      name;
    ngx_http_webhook_text_of_e     of;
    ngx_http_webhook_text_by_e     by;
    ngx_http_webhook_text_value_e  value;
} ngx_http_webhook_text_family_t;


#define ngx_http_webhook_head(name, type, help)                              \
    "# HELP " name " " help "\n# TYPE " name " " type "\n"

#define ngx_http_webhook_family(name, type, help, of, by, value)             \
    { ngx_string(ngx_http_webhook_head(name, type, help)),                   \
      ngx_string(name), NGX_HTTP_WEBHOOK_TEXT_##of,                          \
      NGX_HTTP_WEBHOOK_TEXT_##by, NGX_HTTP_WEBHOOK_TEXT_##value }


/* what Redis holds: when at least a queue's node answers */

static ngx_http_webhook_text_family_t  ngx_http_webhook_text_depths[] = {

    ngx_http_webhook_family("nginx_webhook_queue_depth", "gauge",
        "Events waiting in a queue.",
        READ, PRIORITY, DEPTH),

    ngx_http_webhook_family("nginx_webhook_dead_letter_depth", "gauge",
        "Events in a dead-letter list.",
        READ, PRIORITY, DEAD),

    ngx_http_webhook_family("nginx_webhook_rejected_depth", "gauge",
        "Bodies answered 400 kept in the rejected list.",
        READ, QUEUE, REJECTED),

    ngx_http_webhook_family("nginx_webhook_oldest_event_age_seconds", "gauge",
        "Age of the oldest waiting event, 0 when none waits.",
        READ, PRIORITY, AGE),

    ngx_http_webhook_family("nginx_webhook_in_flight_events", "gauge",
        "Events taken by a consumer and not done yet (its processing "
        "list).",
        READ, QUEUE, IN_FLIGHT),

    ngx_http_webhook_family("nginx_webhook_in_flight_oldest_age_seconds",
        "gauge",
        "Time since a consumer took the oldest event in flight, 0 when "
        "none is.",
        READ, QUEUE, IN_FLIGHT_AGE),

    ngx_http_webhook_family("nginx_webhook_reclaimed_events_total", "counter",
        "Events taken back from consumers whose lease expired.",
        READ, QUEUE, RECLAIMED)
};


/* the spool's, by queue: with webhook_spool */

static ngx_http_webhook_text_family_t  ngx_http_webhook_text_spool[] = {

    ngx_http_webhook_family("nginx_webhook_spool_events", "gauge",
        "Events in the spool, not yet in Redis.",
        COUNTED, QUEUE, SPOOL_EVENTS),

    ngx_http_webhook_family("nginx_webhook_spool_bytes", "gauge",
        "Bytes of a queue's spool segments.",
        COUNTED, QUEUE, SPOOL_BYTES),

    ngx_http_webhook_family("nginx_webhook_spool_oldest_event_age_seconds",
        "gauge",
        "Age of the oldest event in the spool, 0 when it is empty.",
        COUNTED, QUEUE, SPOOL_AGE),

    ngx_http_webhook_family("nginx_webhook_spooled_events_total", "counter",
        "Events written to the spool.",
        COUNTED, QUEUE, SPOOLED),

    ngx_http_webhook_family("nginx_webhook_drained_events_total", "counter",
        "Events moved from the spool into Redis.",
        COUNTED, QUEUE, DRAINED),

    ngx_http_webhook_family("nginx_webhook_quarantined_events_total",
        "counter",
        "Spooled events Redis refused for good, set aside in "
        "<queue>.quarantine.",
        COUNTED, QUEUE, QUARANTINED),

    ngx_http_webhook_family("nginx_webhook_spool_corrupt_bytes_total",
        "counter",
        "Bytes of the spool's segments that are no record, passed over and "
        "set aside in <queue>.corrupt.",
        COUNTED, QUEUE, CORRUPT)
};


/* the counters, and the reconcilers' heartbeats */

static ngx_http_webhook_text_family_t  ngx_http_webhook_text_counters[] = {

    ngx_http_webhook_family("nginx_webhook_replays_total", "counter",
        "Requests marked X-Webhook-Replay (a reconciler's), by result.",
        COUNTED, RESULT, REPLAYS),

    ngx_http_webhook_family("nginx_webhook_reconciler_success_age_seconds",
        "gauge",
        "Seconds since the reconciler's last successful pass (since its "
        "first report before one).",
        ALL, RECONCILER, REC_SUCCESS),

    ngx_http_webhook_family("nginx_webhook_reconciler_replayed_total",
        "counter",
        "Events the reconciler replayed and the module answered 200.",
        ALL, RECONCILER, REC_REPLAYED),

    ngx_http_webhook_family("nginx_webhook_reconciler_waiting", "gauge",
        "Events Odoo holds as not acknowledged that the reconciler's last "
        "pass could not replay.",
        ALL, RECONCILER, REC_WAITING),

    ngx_http_webhook_family("nginx_webhook_reconciler_failing", "gauge",
        "Whether the reconciler's last pass failed.",
        ALL, RECONCILER, REC_FAILING),

    ngx_http_webhook_family("nginx_webhook_warnings_total", "counter",
        "Events queued with fields of the wrong type, taken as absent.",
        COUNTED, QUEUE, WARNINGS),

    ngx_http_webhook_family("nginx_webhook_requests_total", "counter",
        "Answers of the receive locations, by result.",
        COUNTED, RESULT, REQUESTS),

    ngx_http_webhook_family("nginx_webhook_events_total", "counter",
        "Events enqueued, by priority.",
        COUNTED, PRIORITY, EVENTS)
};


static void ngx_http_webhook_text_redis(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);
static void ngx_http_webhook_text_families(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap, ngx_http_webhook_text_family_t *f,
    ngx_uint_t n);
static void ngx_http_webhook_text_series(ngx_http_webhook_out_t *o,
    ngx_http_webhook_text_family_t *f, ngx_http_webhook_snapshot_queue_t *q,
    ngx_uint_t k);
static void ngx_http_webhook_text_value(ngx_http_webhook_out_t *o,
    ngx_http_webhook_text_value_e value, ngx_http_webhook_snapshot_queue_t *q,
    ngx_uint_t k);
static void ngx_http_webhook_text_reconciler(ngx_http_webhook_out_t *o,
    ngx_http_webhook_text_value_e value, ngx_http_webhook_reconciler_t *rc);
static void ngx_http_webhook_text_duration(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);


#define ngx_http_webhook_nelts(a)  (sizeof(a) / sizeof(a[0]))


void
ngx_http_webhook_status_text(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap)
{
    ngx_http_webhook_text_redis(o, snap);

    if (snap->depths) {
        ngx_http_webhook_text_families(o, snap, ngx_http_webhook_text_depths,
                                 ngx_http_webhook_nelts(
                                     ngx_http_webhook_text_depths));
    }

    if (snap->spool) {
        ngx_http_webhook_out_text(o, ngx_http_webhook_head(
            "nginx_webhook_spool_size_bytes", "gauge",
            "Bytes in the spool's segments.")
            "nginx_webhook_spool_size_bytes ");
        ngx_http_webhook_out_int(o, snap->spool_bytes);

        ngx_http_webhook_out_text(o, "\n" ngx_http_webhook_head(
            "nginx_webhook_spool_max_size_bytes", "gauge",
            "The spool's max_size.")
            "nginx_webhook_spool_max_size_bytes ");
        ngx_http_webhook_out_int(o, snap->spool_max_size);
        ngx_http_webhook_out_text(o, "\n");

        ngx_http_webhook_text_families(o, snap, ngx_http_webhook_text_spool,
                                 ngx_http_webhook_nelts(
                                     ngx_http_webhook_text_spool));
    }

    ngx_http_webhook_text_families(o, snap, ngx_http_webhook_text_counters,
                                   ngx_http_webhook_nelts(
                                       ngx_http_webhook_text_counters));

    ngx_http_webhook_text_duration(o, snap);
}


/* the module's version, Redis up, reconnects, the Cluster's primaries */

static void
ngx_http_webhook_text_redis(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap)
{
    ngx_uint_t                         i;
    ngx_http_webhook_snapshot_node_t  *node;

    ngx_http_webhook_out_text(o,
        ngx_http_webhook_head("nginx_webhook_info", "gauge",
                              "Version of the nginx webhook module.")
        "nginx_webhook_info{version=\"" NGX_HTTP_WEBHOOK_VERSION "\"} 1\n"
        ngx_http_webhook_head("nginx_webhook_redis_up", "gauge",
                              "Whether Redis answered the last query.")
        "nginx_webhook_redis_up ");
    ngx_http_webhook_out_uint(o, snap->up);

    ngx_http_webhook_out_text(o, "\n"
        ngx_http_webhook_head("nginx_webhook_redis_reconnects_total",
                              "counter",
                              "Connections to Redis made again after one "
                              "was lost.")
        "nginx_webhook_redis_reconnects_total ");
    ngx_http_webhook_out_uint(o, snap->reconnects);
    ngx_http_webhook_out_text(o, "\n");

    if (!snap->cluster) {
        return;
    }

    ngx_http_webhook_out_text(o,
        ngx_http_webhook_head("nginx_webhook_redis_node_up", "gauge",
                              "Whether the connection to a primary of the "
                              "Redis Cluster is up."));

    node = snap->nodes.elts;

    for (i = 0; i < snap->nodes.nelts; i++) {
        ngx_http_webhook_out_text(o, "nginx_webhook_redis_node_up{node=");
        ngx_http_webhook_out_label(o, &node[i].address);
        ngx_http_webhook_out_text(o, "} ");
        ngx_http_webhook_out_uint(o, node[i].up);
        ngx_http_webhook_out_text(o, "\n");
    }
}


/* families by queue: each one's header, then its series */

static void
ngx_http_webhook_text_families(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap, ngx_http_webhook_text_family_t *f,
    ngx_uint_t n)
{
    ngx_uint_t                          i, j, k, nseries;
    ngx_http_webhook_snapshot_queue_t  *q;

    for (j = 0; j < n; j++) {
        ngx_http_webhook_out_str(o, &f[j].head);

        for (i = 0; i < snap->nqueues; i++) {
            q = &snap->queues[i];

            if ((f[j].of == NGX_HTTP_WEBHOOK_TEXT_READ && !q->read)
                || (f[j].of == NGX_HTTP_WEBHOOK_TEXT_COUNTED && !q->counted))
            {
                continue;
            }

            switch (f[j].by) {

            case NGX_HTTP_WEBHOOK_TEXT_PRIORITY:
                nseries = NGX_HTTP_WEBHOOK_NPRIO;
                break;

            case NGX_HTTP_WEBHOOK_TEXT_RESULT:
                nseries = NGX_HTTP_WEBHOOK_NRESULTS;
                break;

            case NGX_HTTP_WEBHOOK_TEXT_RECONCILER:
                nseries = q->nreconcilers;
                break;

            default: /* NGX_HTTP_WEBHOOK_TEXT_QUEUE */
                nseries = 1;
            }

            for (k = 0; k < nseries; k++) {
                ngx_http_webhook_text_series(o, &f[j], q, k);
            }
        }
    }
}


/* name{queue="...",<label>="..."} value */

static void
ngx_http_webhook_text_series(ngx_http_webhook_out_t *o,
    ngx_http_webhook_text_family_t *f, ngx_http_webhook_snapshot_queue_t *q,
    ngx_uint_t k)
{
    ngx_http_webhook_out_str(o, &f->name);
    ngx_http_webhook_out_text(o, "{queue=");
    ngx_http_webhook_out_label(o, &q->name);

    switch (f->by) {

    case NGX_HTTP_WEBHOOK_TEXT_PRIORITY:
        ngx_http_webhook_out_text(o, ",priority=");
        ngx_http_webhook_out_label(o, &ngx_http_webhook_priorities[k]);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_RESULT:
        ngx_http_webhook_out_text(o, ",result=");
        ngx_http_webhook_out_label(o, &ngx_http_webhook_results[k]);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_RECONCILER:
        ngx_http_webhook_out_text(o, ",reconciler=");
        ngx_http_webhook_out_label(o, &q->reconcilers[k].name);
        break;

    default: /* NGX_HTTP_WEBHOOK_TEXT_QUEUE */
        break;
    }

    ngx_http_webhook_out_text(o, "} ");
    ngx_http_webhook_text_value(o, f->value, q, k);
    ngx_http_webhook_out_text(o, "\n");
}


/* the value of a queue's series k (a priority, a result, a reconciler) */

static void
ngx_http_webhook_text_value(ngx_http_webhook_out_t *o,
    ngx_http_webhook_text_value_e value, ngx_http_webhook_snapshot_queue_t *q,
    ngx_uint_t k)
{
    switch (value) {

    case NGX_HTTP_WEBHOOK_TEXT_DEPTH:
        ngx_http_webhook_out_int(o, q->depths[k].depth);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_DEAD:
        ngx_http_webhook_out_int(o, q->depths[k].dead);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_AGE:
        ngx_http_webhook_out_seconds(o, (uint64_t) q->depths[k].age_ms * 1000);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_REJECTED:
        ngx_http_webhook_out_int(o, q->rejected);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_IN_FLIGHT:
        ngx_http_webhook_out_int(o, q->in_flight.events);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_IN_FLIGHT_AGE:
        ngx_http_webhook_out_seconds(o,
                                     (uint64_t) q->in_flight.age_ms * 1000);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_RECLAIMED:
        ngx_http_webhook_out_int(o, q->in_flight.reclaimed);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_SPOOL_EVENTS:
        ngx_http_webhook_out_int(o, q->spool.events);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_SPOOL_BYTES:
        ngx_http_webhook_out_int(o, q->spool.bytes);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_SPOOL_AGE:
        ngx_http_webhook_out_seconds(o, q->spool.oldest_usec);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_SPOOLED:
        ngx_http_webhook_out_uint(o, q->spool.spooled);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_DRAINED:
        ngx_http_webhook_out_uint(o, q->spool.drained);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_QUARANTINED:
        ngx_http_webhook_out_uint(o, q->spool.quarantined);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_CORRUPT:
        ngx_http_webhook_out_uint(o, q->spool.corrupt_bytes);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_REPLAYS:
        ngx_http_webhook_out_uint(o, q->replays[k]);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_WARNINGS:
        ngx_http_webhook_out_uint(o, q->warnings);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_REQUESTS:
        ngx_http_webhook_out_uint(o, q->requests[k]);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_EVENTS:
        ngx_http_webhook_out_uint(o, q->events[k]);
        break;

    default: /* a reconciler's */
        ngx_http_webhook_text_reconciler(o, value, &q->reconcilers[k]);
    }
}


static void
ngx_http_webhook_text_reconciler(ngx_http_webhook_out_t *o,
    ngx_http_webhook_text_value_e value, ngx_http_webhook_reconciler_t *rc)
{
    switch (value) {

    case NGX_HTTP_WEBHOOK_TEXT_REC_SUCCESS:
        ngx_http_webhook_out_seconds(o, rc->success_age_ms < 0 ? 0
                                     : (uint64_t) rc->success_age_ms * 1000);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_REC_REPLAYED:
        ngx_http_webhook_out_int(o, rc->replayed);
        break;

    case NGX_HTTP_WEBHOOK_TEXT_REC_WAITING:
        ngx_http_webhook_out_int(o, rc->waiting);
        break;

    default: /* NGX_HTTP_WEBHOOK_TEXT_REC_FAILING */
        ngx_http_webhook_out_uint(o, rc->failing);
    }
}


/* the histogram of the time from a complete body to Redis's answer */

static void
ngx_http_webhook_text_duration(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  sum;

    ngx_http_webhook_out_text(o,
        ngx_http_webhook_head("nginx_webhook_enqueue_duration_seconds",
                              "histogram",
                              "Time from the complete body to Redis's "
                              "acknowledgement."));

    sum = 0;

    for (i = 0; i < NGX_HTTP_WEBHOOK_NBUCKETS; i++) {
        sum += snap->duration[i];

        ngx_http_webhook_out_text(o,
            "nginx_webhook_enqueue_duration_seconds_bucket{le=\"");
        ngx_http_webhook_out_seconds(o, ngx_http_webhook_buckets[i]);
        ngx_http_webhook_out_text(o, "\"} ");
        ngx_http_webhook_out_uint(o, sum);
        ngx_http_webhook_out_text(o, "\n");
    }

    sum += snap->duration[NGX_HTTP_WEBHOOK_NBUCKETS];

    ngx_http_webhook_out_text(o,
        "nginx_webhook_enqueue_duration_seconds_bucket{le=\"+Inf\"} ");
    ngx_http_webhook_out_uint(o, sum);
    ngx_http_webhook_out_text(o,
        "\nnginx_webhook_enqueue_duration_seconds_sum ");
    ngx_http_webhook_out_seconds(o, snap->duration_usec);
    ngx_http_webhook_out_text(o,
        "\nnginx_webhook_enqueue_duration_seconds_count ");
    ngx_http_webhook_out_uint(o, sum);
    ngx_http_webhook_out_text(o, "\n");
}
