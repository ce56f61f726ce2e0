
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
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "ngx_http_webhook_record.h"
#include "receive/ngx_http_webhook_receive.h"


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
char *ngx_http_webhook_spool_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_webhook_spool_check(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf);
void ngx_http_webhook_spool_check_body(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_loc_conf_t *wlcf);
ngx_int_t ngx_http_webhook_spool_recover(ngx_http_webhook_main_conf_t *wmcf,
    ngx_log_t *log);
ngx_http_webhook_counters_t *ngx_http_webhook_spool_counters(
    ngx_http_webhook_main_conf_t *wmcf, ngx_str_t *queue);

#if (NGX_THREADS)

/* ngx_http_webhook_spool.c */
ngx_uint_t ngx_http_webhook_spool_on(ngx_http_request_t *r);
ngx_uint_t ngx_http_webhook_spool_holds(ngx_http_request_t *r);
ngx_int_t ngx_http_webhook_spool(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, char *why);
void ngx_http_webhook_spool_cancel(ngx_http_webhook_ctx_t *ctx);
ngx_int_t ngx_http_webhook_spool_init_process(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf);
void ngx_http_webhook_spool_exit_process(void);

/* ngx_http_webhook_spool_drain.c */
ngx_int_t ngx_http_webhook_drain_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf);
void ngx_http_webhook_drain_exit(void);

#else

/* without threads nginx -t refuses webhook_spool: never on */
#define ngx_http_webhook_spool_on(r)               0
#define ngx_http_webhook_spool_holds(r)            0
#define ngx_http_webhook_spool(r, ctx, why)                                  \
    NGX_HTTP_INTERNAL_SERVER_ERROR
#define ngx_http_webhook_spool_cancel(ctx)
#define ngx_http_webhook_spool_init_process(c, m)  NGX_OK
#define ngx_http_webhook_spool_exit_process()

#endif


#endif /* _NGX_HTTP_WEBHOOK_SPOOL_H_INCLUDED_ */
