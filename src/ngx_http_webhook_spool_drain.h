
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * What the two halves of the spool's drainer share: the segments as they
 * are read (in the thread pool) and the batch given to Redis (in the event
 * loop).  The thread task and the event loop never touch them at once.
 */


#ifndef _NGX_HTTP_WEBHOOK_SPOOL_DRAIN_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_SPOOL_DRAIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_spool.h"


/* ~13 us of Redis's time an event: a batch stays near 7 ms */
#define NGX_HTTP_WEBHOOK_DRAIN_BATCH     512
#define NGX_HTTP_WEBHOOK_DRAIN_BYTES     (4 * 1024 * 1024)
#define NGX_HTTP_WEBHOOK_DRAIN_BUF       (256 * 1024)
#define NGX_HTTP_WEBHOOK_DRAIN_SEGMENTS  1024
#define NGX_HTTP_WEBHOOK_DRAIN_KEEP      3000     /* ms after the last ack */
#define NGX_HTTP_WEBHOOK_DRAIN_POLL      1000
#define NGX_HTTP_WEBHOOK_DRAIN_BUSY      50
#define NGX_HTTP_WEBHOOK_DRAIN_TRIES     3


typedef enum {
    ngx_http_webhook_drain_idle = 0,     /* timer: the next look */
    ngx_http_webhook_drain_reading,      /* the thread task */
    ngx_http_webhook_drain_sending       /* timer: webhook_redis_timeout */
} ngx_http_webhook_drain_state_e;


typedef struct {
    u_char                         name[NGX_MAX_PATH];
    u_char                         qname[NGX_MAX_PATH];
    ngx_str_t                      queue;
    ngx_fd_t                       fd;
    u_char                        *buf;
    size_t                         size;
    size_t                         len;
    off_t                          buf_off;    /* of buf[0] in the file */
    size_t                         pos;        /* before it: acknowledged */
    size_t                         next;       /* after the batch */
    off_t                          skipped;    /* torn bytes, to log */
    ngx_msec_t                     done_at;    /* 0: not done */
    unsigned                       sealed:1;
    unsigned                       eof:1;
} ngx_http_webhook_segment_t;


typedef struct {
    ngx_http_webhook_drain_state_e  state;
    ngx_http_webhook_main_conf_t   *wmcf;
    ngx_log_t                      *log;
    ngx_event_t                     timer;
    ngx_thread_task_t              *task;
    ngx_fd_t                        lock;
    u_char                          lock_name[NGX_MAX_PATH];

    ngx_http_webhook_segment_t     *segs[NGX_HTTP_WEBHOOK_DRAIN_SEGMENTS];
    ngx_uint_t                      nsegs;
    u_char                          last[NGX_MAX_PATH];   /* queue drained */
    size_t                          last_len;

    /* the batch: records point into the segments' buffers */
    ngx_http_webhook_record_t       recs[NGX_HTTP_WEBHOOK_DRAIN_BATCH];
    ngx_http_webhook_segment_t     *from[NGX_HTTP_WEBHOOK_DRAIN_BATCH];
    ngx_uint_t                      n;
    ngx_str_t                       queue;
    ngx_uint_t                      left;       /* records not in a batch */
    ngx_http_webhook_cmd_t         *cmd;
    int                             argc;
    const char                    **argv;
    size_t                         *argvlen;
    u_char                          nums[5 * NGX_INT_T_LEN
                                         + NGX_HTTP_WEBHOOK_DRAIN_BATCH
                                           * NGX_INT_T_LEN];

    ngx_uint_t                      single;     /* one record a batch */
    uint64_t                        tried_seq;
    ngx_uint_t                      tries;
    ngx_str_t                       poison;     /* reason, to quarantine */
    u_char                          reason[256];

    ngx_uint_t                      held;       /* the lock */
    ngx_uint_t                      stopped;    /* worker exiting */
} ngx_http_webhook_drain_t;


/* ngx_http_webhook_spool_read.c */
void ngx_http_webhook_drain_read(void *data, ngx_log_t *log);
void ngx_http_webhook_drain_done(ngx_http_webhook_drain_t *d,
    ngx_str_t *queue, ngx_uint_t n, ngx_uint_t quarantined);


#endif /* _NGX_HTTP_WEBHOOK_SPOOL_DRAIN_H_INCLUDED_ */
