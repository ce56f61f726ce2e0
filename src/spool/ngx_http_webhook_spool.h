
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool: what takes the events that Redis cannot take now (written
 * and synced in a thread pool, answered 200 once on disk), and the
 * drainer that gives them to Redis later, in order.
 */


#ifndef _NGX_HTTP_WEBHOOK_SPOOL_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_SPOOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "core/ngx_http_webhook_core.h"
#include "stats/ngx_http_webhook_stats.h"
#include "redis/ngx_http_webhook_redis.h"
#include "ngx_http_webhook_record.h"


/*
 * webhook_spool (ngx_http_webhook_spool_conf.c), and what the spool needs
 * besides: the queues (their counters, its sequence numbers in their
 * zone) and Redis (the drainer's script and timeout).
 */

typedef struct {
    ngx_path_t                     *path;      /* NULL: no spool */
    off_t                           max_size;
    void                           *pool;      /* ngx_thread_pool_t */
    ngx_http_webhook_queues_t      *queues;
    ngx_http_webhook_redis_conf_t  *redis;
} ngx_http_webhook_spool_conf_t;


/* a segment is closed at this size, and a new one started */
#define NGX_HTTP_WEBHOOK_SPOOL_SEGMENT   (16 * 1024 * 1024)

/* a writer's buffer larger than this is given back once written */
#define NGX_HTTP_WEBHOOK_SPOOL_BUF       (1024 * 1024)

/* a request waits that long for its write and sync, then gets a 503 */
#define NGX_HTTP_WEBHOOK_SPOOL_TIMEOUT   10000

/* a writer closes its segment that long after it began it, or once idle
 * that long with the queue's spool drained */
#define NGX_HTTP_WEBHOOK_SPOOL_AGE       30000
#define NGX_HTTP_WEBHOOK_SPOOL_IDLE      1000

/* the largest event the spool keeps: what an envelope adds to a body
 * (metadata, keys and ids, at most a few kilobytes) fits in the margin */
#define NGX_HTTP_WEBHOOK_SPOOL_EVENT_MAX                                     \
    (NGX_HTTP_WEBHOOK_REC_MAX - 1024 * 1024)


/* ngx_http_webhook_spool_conf.c */
char *ngx_http_webhook_spool_parse(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_webhook_spool_conf_t *scf, ngx_flag_t *on);
ngx_int_t ngx_http_webhook_spool_check(ngx_conf_t *cf,
    ngx_http_webhook_spool_conf_t *scf);
void ngx_http_webhook_spool_check_body(ngx_conf_t *cf,
    ngx_http_webhook_spool_conf_t *scf, off_t body);
/* the queues' zone was made (nginx started): data is the spool's conf */
ngx_int_t ngx_http_webhook_spool_recover(void *data, ngx_log_t *log);

/* ngx_http_webhook_spool_write() and its caller's handler */
#define NGX_HTTP_WEBHOOK_SPOOL_TOO_LARGE  (-10)

typedef struct ngx_http_webhook_spool_wait_s  ngx_http_webhook_spool_wait_t;

typedef void (*ngx_http_webhook_spool_done_pt)(
    ngx_http_webhook_spool_wait_t *wait, ngx_int_t rc);


/* a caller waiting for its items' write and sync: its own memory */

struct ngx_http_webhook_spool_wait_s {
    ngx_http_webhook_spool_done_pt  handler;
    void                           *data;

    ngx_queue_t                     link;      /* in its buffer's waiting */
    void                           *buf;       /* the writer's buffer */
    size_t                          off;       /* its records in it */
    size_t                          len;
    ngx_uint_t                      nevents;
    ngx_uint_t                      queue;
    unsigned                        waiting:1;
};


#if (NGX_THREADS)

/* ngx_http_webhook_spool.c */
ngx_uint_t ngx_http_webhook_spool_ready(void);
ngx_uint_t ngx_http_webhook_spool_holds(ngx_uint_t queue);
ngx_int_t ngx_http_webhook_spool_write(ngx_uint_t queue,
    ngx_http_webhook_item_t *items, ngx_uint_t n, const char *why,
    ngx_http_webhook_spool_wait_t *wait, ngx_log_t *log);
ngx_uint_t ngx_http_webhook_spool_cancel(ngx_http_webhook_spool_wait_t *wait);
ngx_int_t ngx_http_webhook_spool_init_process(ngx_cycle_t *cycle,
    ngx_http_webhook_spool_conf_t *scf);
void ngx_http_webhook_spool_exit_process(void);

/* ngx_http_webhook_spool_drain.c */
ngx_int_t ngx_http_webhook_drain_init(ngx_cycle_t *cycle,
    ngx_http_webhook_spool_conf_t *scf);
void ngx_http_webhook_drain_exit(void);

#else

/* without threads nginx -t refuses webhook_spool: never ready */
#define ngx_http_webhook_spool_ready()             0
#define ngx_http_webhook_spool_holds(queue)        0
#define ngx_http_webhook_spool_write(q, items, n, why, wait, log)            \
    NGX_ERROR
#define ngx_http_webhook_spool_cancel(wait)        0
#define ngx_http_webhook_spool_init_process(c, m)  NGX_OK
#define ngx_http_webhook_spool_exit_process()

#endif


#endif /* _NGX_HTTP_WEBHOOK_SPOOL_H_INCLUDED_ */
