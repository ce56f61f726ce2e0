
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"


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


extern uint64_t  ngx_http_webhook_buckets[NGX_HTTP_WEBHOOK_NBUCKETS];


ngx_int_t ngx_http_webhook_stats_zone(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf);
ngx_int_t ngx_http_webhook_stats_commit(ngx_cycle_t *cycle);

void ngx_http_webhook_count_result(ngx_http_request_t *r, ngx_uint_t result);
void ngx_http_webhook_count_events(ngx_http_request_t *r,
    ngx_uint_t priority, ngx_uint_t n);
void ngx_http_webhook_count_warnings(ngx_http_request_t *r, ngx_uint_t n);
void ngx_http_webhook_count_duration(ngx_http_request_t *r, uint64_t usec);
void ngx_http_webhook_count_reconnect(ngx_http_webhook_main_conf_t *wmcf);
uint64_t ngx_http_webhook_now_usec(void);


#endif /* _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_ */
