
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * A spool writer, shared by its event-loop half (ngx_http_webhook_spool.c)
 * and its thread half (ngx_http_webhook_spool_segment.c).
 */


#ifndef _NGX_HTTP_WEBHOOK_SPOOL_WRITER_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_SPOOL_WRITER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_spool.h"


#if (NGX_THREADS)

#include <ngx_thread_pool.h>


typedef struct {
    u_char                        *data;
    size_t                         len;
    size_t                         size;
    ngx_uint_t                     events;
    ngx_queue_t                    waiting;     /* of ..._spool_wait_t */
} ngx_http_webhook_spool_buf_t;


typedef struct {
    ngx_str_t                      queue;
    ngx_http_webhook_counters_t   *counters;
    ngx_fd_t                       fd;
    off_t                          size;        /* of the segment */
    u_char                         name[NGX_MAX_PATH];

    ngx_http_webhook_spool_buf_t   bufs[2];
    ngx_http_webhook_spool_buf_t  *pending;     /* appended to */
    ngx_http_webhook_spool_buf_t  *flight;      /* being written */

    ngx_thread_task_t             *task;
    ngx_err_t                      err;         /* of the task */
    char                          *failed;      /* what failed */
    ngx_uint_t                     create;      /* a new segment */
    ngx_msec_t                     created;     /* when it was begun */
    ngx_event_t                    seal;        /* its age's timer */
    ngx_log_t                     *log;
} ngx_http_webhook_writer_t;


void ngx_http_webhook_segment_write(void *data, ngx_log_t *log);

#endif /* NGX_THREADS */


#endif /* _NGX_HTTP_WEBHOOK_SPOOL_WRITER_H_INCLUDED_ */
