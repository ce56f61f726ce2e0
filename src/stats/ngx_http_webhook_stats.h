
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The counters in shared memory: one zone for the machine, a slot of
 * counters per queue (found by the queue's name, so that they outlive
 * reloads), and the configuration's queues that use them.
 */


#ifndef _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "core/ngx_http_webhook_core.h"


typedef struct ngx_http_webhook_stats_s     ngx_http_webhook_stats_t;
typedef struct ngx_http_webhook_counters_s  ngx_http_webhook_counters_t;


#define NGX_HTTP_WEBHOOK_NBUCKETS    12
#define NGX_HTTP_WEBHOOK_MAX_NAME    128
#define NGX_HTTP_WEBHOOK_STATS_SIZE  (256 * 1024)

/*
 * Slots for the queues of two configurations: the one being loaded and the
 * one whose workers still run, at most NGX_HTTP_WEBHOOK_MAX_QUEUES each.
 */
#define NGX_HTTP_WEBHOOK_SLOTS       (2 * NGX_HTTP_WEBHOOK_MAX_QUEUES)

/* the zone's header: data of another layout is not reused */
#define NGX_HTTP_WEBHOOK_STATS_MAGIC   0x6b687777   /* "wwhk" */
#define NGX_HTTP_WEBHOOK_STATS_LAYOUT  4


struct ngx_http_webhook_counters_s {
    u_char                        name[NGX_HTTP_WEBHOOK_MAX_NAME];
    size_t                        len;         /* 0: never used */
    ngx_uint_t                    generation;  /* of the last config using it */
    ngx_atomic_t                  requests[NGX_HTTP_WEBHOOK_NRESULTS];
    ngx_atomic_t                  events[NGX_HTTP_WEBHOOK_NPRIO];
    ngx_atomic_t                  warnings;    /* events queued with some */

    /* requests marked as a reconciler's replay, by result */
    ngx_atomic_t                  replays[NGX_HTTP_WEBHOOK_NRESULTS];

    /* the spool */
    ngx_atomic_t                  spool_pending;  /* spooled, not drained */
    ngx_atomic_t                  spool_bytes;
    ngx_atomic_t                  spool_oldest;   /* unix msec, 0: none */
    ngx_atomic_t                  spooled;
    ngx_atomic_t                  drained;
    ngx_atomic_t                  quarantined;
    ngx_atomic_t                  corrupt_bytes;  /* no record, passed over */
};


struct ngx_http_webhook_stats_s {
    uint32_t                      magic;
    uint32_t                      layout;
    size_t                        size;
    ngx_uint_t                    generation;  /* of the running config */

    ngx_atomic_t                  reconnects;
    ngx_atomic_t                  duration[NGX_HTTP_WEBHOOK_NBUCKETS + 1];
    ngx_atomic_t                  duration_usec;

    ngx_atomic_t                  spool_seq;      /* the next record's */
    ngx_atomic_t                  spool_bytes;
    ngx_atomic_t                  spool_queued;   /* appended, not written */
    ngx_atomic_t                  spool_recovering;  /* found at start */
    ngx_http_webhook_counters_t   slots[NGX_HTTP_WEBHOOK_SLOTS];
};


typedef ngx_int_t (*ngx_http_webhook_zone_made_pt)(void *data,
    ngx_log_t *log);


/*
 * The queues of a configuration (webhook_queue of each receive location),
 * each with its Cluster slot and its counters.  zone_made is called when
 * the zone is made anew (nginx started, not reloaded): the spool finds
 * what it left on disk then.
 */

typedef struct {
    ngx_array_t                    names;        /* of ngx_str_t */
    ngx_uint_t                     slots[NGX_HTTP_WEBHOOK_MAX_QUEUES];
    ngx_http_webhook_stats_t      *stats;        /* NULL: no zone yet */
    ngx_uint_t                     generation;   /* of this configuration */
    ngx_http_webhook_counters_t   *counters[NGX_HTTP_WEBHOOK_MAX_QUEUES];
    ngx_http_webhook_zone_made_pt  zone_made;
    void                          *zone_made_data;
} ngx_http_webhook_queues_t;


extern uint64_t  ngx_http_webhook_buckets[NGX_HTTP_WEBHOOK_NBUCKETS];


ngx_int_t ngx_http_webhook_stats_zone(ngx_conf_t *cf,
    ngx_http_webhook_queues_t *qs);
void ngx_http_webhook_stats_commit(ngx_http_webhook_queues_t *qs);

/* the counters of queue i, of a queue by name; NULL: none (no room) */
ngx_http_webhook_counters_t *ngx_http_webhook_counters(
    ngx_http_webhook_queues_t *qs, ngx_uint_t i);
ngx_http_webhook_counters_t *ngx_http_webhook_counters_of(
    ngx_http_webhook_queues_t *qs, ngx_str_t *queue);

void ngx_http_webhook_queues_duration(ngx_http_webhook_queues_t *qs,
    uint64_t usec);
void ngx_http_webhook_count_reconnect(ngx_http_webhook_queues_t *qs);


#endif /* _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_ */
