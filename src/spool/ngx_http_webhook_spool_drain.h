
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

#include "ngx_http_webhook_spool.h"


/* ~13 us of Redis's time an event: a batch stays near 7 ms */
#define NGX_HTTP_WEBHOOK_DRAIN_BATCH     512
#define NGX_HTTP_WEBHOOK_DRAIN_BYTES     (4 * 1024 * 1024)
/* a segment's read window: at most this much of it in memory, more only
 * for a record larger than that */
#define NGX_HTTP_WEBHOOK_DRAIN_BUF       (256 * 1024)
/* the oldest segments of a queue merged at once: more than the writers
 * (workers, and the old ones of a reload) that write to a queue at once */
#define NGX_HTTP_WEBHOOK_DRAIN_ACTIVE    64
/* bytes that are no record looked through in one read, at most */
#define NGX_HTTP_WEBHOOK_DRAIN_SCAN      (256 * 1024 * 1024)
#define NGX_HTTP_WEBHOOK_DRAIN_KEEP      3000     /* ms after the last ack */
#define NGX_HTTP_WEBHOOK_DRAIN_POLL      1000
#define NGX_HTTP_WEBHOOK_DRAIN_BUSY      50
#define NGX_HTTP_WEBHOOK_DRAIN_TRIES     3


typedef enum {
    NGX_HTTP_WEBHOOK_DRAIN_IDLE = 0,     /* timer: the next look */
    NGX_HTTP_WEBHOOK_DRAIN_READING,      /* the thread task */
    NGX_HTTP_WEBHOOK_DRAIN_SENDING       /* timer: webhook_redis_timeout */
} ngx_http_webhook_drain_state_e;


/*
 * A segment known to the drainer, from the listing of the directory until
 * it is removed.  No file stays open: each read opens, reads and closes
 * it.  Only the segments being merged (a queue's oldest) have a buffer.
 */

typedef struct {
    u_char                        *name;       /* path, null-terminated */
    ngx_str_t                      queue;      /* unescaped */
    uint64_t                       seq;        /* the first, from the name */

    u_char                        *buf;
    size_t                         size;
    size_t                         len;
    off_t                          buf_off;    /* of buf[0] in the file */
    size_t                         pos;        /* before it: acknowledged */
    size_t                         next;       /* after the batch */
    off_t                          end;        /* the file's size, last read */

    off_t                          bad_at;     /* a run of bytes that are */
    off_t                          bad_len;    /* no record: where, how */
    off_t                          bad_kept;   /* long, how much kept */
    size_t                         from;       /* the run's search, after
                                                  the cursor */

    ngx_msec_t                     done_at;    /* 0: not done */
    unsigned                       sealed:1;   /* its writer let go of it */
    unsigned                       eof:1;      /* read to its end */
    unsigned                       listed:1;   /* in the last listing */
    unsigned                       bad:1;      /* in a run of bad bytes */
    unsigned                       ignored:1;  /* not a file */
} ngx_http_webhook_segment_t;


typedef struct {
    ngx_http_webhook_drain_state_e  state;
    ngx_http_webhook_spool_conf_t   *scf;
    ngx_log_t                      *log;
    ngx_event_t                     timer;
    ngx_thread_task_t              *task;
    ngx_fd_t                        lock;
    u_char                          lock_name[NGX_MAX_PATH];

    /* every segment of the directory, by queue, then sequence number */
    ngx_http_webhook_segment_t    **segs;
    ngx_uint_t                      nsegs;
    ngx_uint_t                      nalloc;
    ngx_uint_t                      unread;     /* segments not read to
                                                   their end */
    ngx_uint_t                      unordered;  /* logged: more overlap */
    u_char                          last[NGX_MAX_PATH];   /* queue drained */
    size_t                          last_len;

    /* the batch: records point into the segments' buffers */
    ngx_http_webhook_record_t       recs[NGX_HTTP_WEBHOOK_DRAIN_BATCH];
    ngx_http_webhook_segment_t     *from[NGX_HTTP_WEBHOOK_DRAIN_BATCH];
    ngx_uint_t                      n;
    ngx_str_t                       queue;
    ngx_http_webhook_cmd_t         *cmd;
    int                             argc;
    const char                    **argv;
    size_t                         *argvlen;
    ngx_http_webhook_item_t         items[NGX_HTTP_WEBHOOK_DRAIN_BATCH];
    u_char                          nums[NGX_HTTP_WEBHOOK_ENQUEUE_NUMS(
                                             NGX_HTTP_WEBHOOK_DRAIN_BATCH)];

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
void ngx_http_webhook_drain_free(ngx_http_webhook_drain_t *d);


#endif /* _NGX_HTTP_WEBHOOK_SPOOL_DRAIN_H_INCLUDED_ */
