
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Inside the status location: the snapshot, every value the answer shows,
 * filled once (ngx_http_webhook_status_snapshot.c) from the status
 * script's replies, the shared-memory counters and the topology; the two
 * writers that turn it into the answer, JSON (ngx_http_webhook_status_json.c)
 * and Prometheus text (ngx_http_webhook_status_text.c); the output they
 * write through (ngx_http_webhook_status_out.c), which measures a writer's
 * answer in a first pass and writes it, bounded, in a second.
 */


#ifndef _NGX_HTTP_WEBHOOK_STATUS_SNAPSHOT_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_STATUS_SNAPSHOT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <hiredis/hiredis.h>

#include "receive/ngx_http_webhook_receive.h"


/* a queue's list and dead-letter list of one priority, as read */

typedef struct {
    ngx_int_t                          depth;
    ngx_int_t                          dead;
    int64_t                            age_ms;
} ngx_http_webhook_depth_t;


/* a queue's events in flight in the consumers, as read */

typedef struct {
    ngx_int_t                          events;
    int64_t                            age_ms;
    ngx_int_t                          reclaimed;
} ngx_http_webhook_inflight_t;


/* a reconciler's heartbeat, as the status script read it */

typedef struct {
    ngx_str_t                          name;
    int64_t                            success_age_ms;
    int64_t                            pass_age_ms;
    int64_t                            replayed;
    int64_t                            waiting;
    ngx_uint_t                         failing;
    ngx_str_t                          error;         /* empty: none */
    int64_t                            error_age_ms;  /* -1: none */
} ngx_http_webhook_reconciler_t;


/* the spool's part of a queue, from its counters */

typedef struct {
    ngx_atomic_int_t                   events;
    ngx_atomic_int_t                   bytes;
    uint64_t                           oldest_usec;   /* age; 0: none */
    ngx_atomic_uint_t                  spooled;
    ngx_atomic_uint_t                  drained;
    ngx_atomic_uint_t                  quarantined;
    ngx_atomic_uint_t                  corrupt_bytes;
} ngx_http_webhook_snapshot_spool_t;


typedef struct {
    ngx_str_t                          name;

    /* read from Redis by the status script; unknown when not "read" */
    ngx_uint_t                         read;
    ngx_http_webhook_depth_t           depths[NGX_HTTP_WEBHOOK_NPRIO];
    ngx_int_t                          rejected;
    ngx_http_webhook_inflight_t        in_flight;
    ngx_uint_t                         reconcilers_read;
    ngx_http_webhook_reconciler_t     *reconcilers;
    ngx_uint_t                         nreconcilers;

    /* Cluster: the primary of its slot (data NULL: none known) */
    ngx_str_t                          node;

    /* its counters in shared memory: none when the zone had no room */
    ngx_uint_t                         counted;
    ngx_atomic_uint_t                  requests[NGX_HTTP_WEBHOOK_NRESULTS];
    ngx_atomic_uint_t                  replays[NGX_HTTP_WEBHOOK_NRESULTS];
    ngx_atomic_uint_t                  events[NGX_HTTP_WEBHOOK_NPRIO];
    ngx_atomic_uint_t                  warnings;
    ngx_http_webhook_snapshot_spool_t  spool;
} ngx_http_webhook_snapshot_queue_t;


/* a primary of the Redis Cluster */

typedef struct {
    ngx_str_t                          address;
    ngx_uint_t                         up;
    ngx_uint_t                         slots;
} ngx_http_webhook_snapshot_node_t;


typedef struct {
    ngx_uint_t                         up;        /* every call answered */
    ngx_uint_t                         depths;    /* their families shown */

    ngx_str_t                          address;
    ngx_str_t                          sentinel;  /* empty: no Sentinel */
    ngx_atomic_uint_t                  reconnects;

    ngx_uint_t                         cluster;
    ngx_array_t                        nodes;     /* of ..._node_t */

    ngx_atomic_uint_t                  duration[NGX_HTTP_WEBHOOK_NBUCKETS
                                                + 1];
    ngx_atomic_uint_t                  duration_usec;

    ngx_uint_t                         spool;     /* webhook_spool is on */
    ngx_str_t                          spool_path;
    ngx_atomic_int_t                   spool_bytes;
    off_t                              spool_max_size;
    ngx_uint_t                         spool_recovering;

    ngx_http_webhook_snapshot_queue_t *queues;
    ngx_uint_t                         nqueues;
} ngx_http_webhook_snapshot_t;


/*
 * The output of a writer.  The writer runs twice over the same snapshot:
 * first with no buffer (pos NULL), each call only counting its bytes into
 * len; then into a buffer of exactly len bytes, each call writing only
 * what fits before end (overflow set otherwise).
 */

typedef struct {
    u_char                            *pos;
    u_char                            *end;
    size_t                             len;
    ngx_uint_t                         overflow;
} ngx_http_webhook_out_t;

typedef void (*ngx_http_webhook_writer_pt)(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);


/* ngx_http_webhook_status_snapshot.c */
ngx_http_webhook_snapshot_t *ngx_http_webhook_snapshot_create(
    ngx_pool_t *pool, ngx_http_webhook_main_conf_t *wmcf);
ngx_int_t ngx_http_webhook_snapshot_read(ngx_http_webhook_snapshot_t *snap,
    ngx_pool_t *pool, ngx_uint_t first, ngx_uint_t n, redisReply *reply,
    ngx_log_t *log);
ngx_int_t ngx_http_webhook_snapshot_fill(ngx_http_webhook_snapshot_t *snap,
    ngx_pool_t *pool, ngx_http_webhook_main_conf_t *wmcf);

/* ngx_http_webhook_status_out.c: the writer run twice, its answer */
ngx_buf_t *ngx_http_webhook_out_answer(ngx_http_request_t *r,
    ngx_http_webhook_writer_pt writer, ngx_http_webhook_snapshot_t *snap);

void ngx_http_webhook_out(ngx_http_webhook_out_t *o, u_char *s, size_t n);
void ngx_http_webhook_out_uint(ngx_http_webhook_out_t *o, uint64_t n);
void ngx_http_webhook_out_int(ngx_http_webhook_out_t *o, int64_t n);
void ngx_http_webhook_out_seconds(ngx_http_webhook_out_t *o, uint64_t usec);
void ngx_http_webhook_out_json(ngx_http_webhook_out_t *o, ngx_str_t *s);
void ngx_http_webhook_out_label(ngx_http_webhook_out_t *o, ngx_str_t *s);

/* text: a string literal only ("" text refuses anything else) */
#define ngx_http_webhook_out_text(o, text)                                   \
    ngx_http_webhook_out(o, (u_char *) "" text, sizeof(text) - 1)
#define ngx_http_webhook_out_str(o, s)                                       \
    ngx_http_webhook_out(o, (s)->data, (s)->len)
#define ngx_http_webhook_out_bool(o, b)                                      \
    ((b) ? ngx_http_webhook_out_text(o, "true")                              \
         : ngx_http_webhook_out_text(o, "false"))

/* ngx_http_webhook_status_json.c, ngx_http_webhook_status_text.c */
void ngx_http_webhook_status_json(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);
void ngx_http_webhook_status_text(ngx_http_webhook_out_t *o,
    ngx_http_webhook_snapshot_t *snap);


#endif /* _NGX_HTTP_WEBHOOK_STATUS_SNAPSHOT_H_INCLUDED_ */
