
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The receive location, and the configuration it and the status location
 * run with: the main configuration composed of each subsystem's part
 * (Redis, the queues and their counters, the spool) and the location's.
 *
 *   ngx_http_webhook_receive.c    the handler: method, auth, content type,
 *                                 the body read and checked into events
 *   ngx_http_webhook_auth.c       token files, Bearer, Basic, API key, the
 *                                 sender's name
 *   ngx_http_webhook_prepare.c    the events as items (envelope, list and
 *                                 seen keys), priorities, ids
 *   ngx_http_webhook_enqueue.c    the one owner of the answer about the
 *                                 events: Redis, the spool, their timers
 *   ngx_http_webhook_rejected.c   the rejected list's entry and call
 *   ngx_http_webhook_respond.c    the answers written (a leaf), JSON for
 *                                 nginx's own errors
 *   ngx_http_webhook_count.c      the requests counted
 *   ngx_http_webhook_variables.c  $webhook_*
 */


#ifndef _NGX_HTTP_WEBHOOK_RECEIVE_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_RECEIVE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"
#include "stats/ngx_http_webhook_stats.h"
#include "redis/ngx_http_webhook_redis.h"
#include "spool/ngx_http_webhook_spool.h"


typedef struct {
    ngx_http_webhook_redis_conf_t  redis;
    ngx_http_webhook_queues_t      queues;
    ngx_http_webhook_spool_conf_t  spool;
    ngx_array_t                    token_files; /* ngx_http_webhook_tokens_t */
    ngx_uint_t                     used;        /* any webhook location */
    ngx_int_t                      request_id_index;
} ngx_http_webhook_main_conf_t;


typedef struct {
    ngx_flag_t                     receive;
    ngx_flag_t                     status;
    ngx_str_t                      queue;
    ngx_uint_t                     queue_index; /* in the main conf's */
    ngx_uint_t                     slot;        /* the queue's, Cluster */
    ngx_str_t                      token_file;
    ngx_array_t                   *tokens;      /* ngx_http_webhook_token_t */
    ngx_flag_t                     tokens_off;  /* webhook_token_file off */
    ngx_http_complex_value_t      *sender;      /* webhook_sender */
    ngx_str_t                      api_key_header;
    ngx_uint_t                     default_priority;
    ngx_http_complex_value_t      *instant_priority;  /* NULL: high */
    ngx_uint_t                     schema_any;
    ngx_int_t                      json_depth;  /* levels of a body */
    ngx_uint_t                     batch_max;
    time_t                         dedupe;      /* seconds, 0: off */
    ngx_int_t                      max_depth;   /* 0: off */
    time_t                         retry_after;
    ngx_uint_t                     rejected_max;    /* entries, 0: off */
    size_t                         rejected_size;   /* bytes of the list */
    size_t                         rejected_entry;  /* bytes of a body */
    ngx_flag_t                     spool;       /* webhook_spool off: 0 */
} ngx_http_webhook_loc_conf_t;


#include "ngx_http_webhook_auth.h"


/* what a request's call to Redis is about */

typedef enum {
    NGX_HTTP_WEBHOOK_CALL_NONE = 0,
    NGX_HTTP_WEBHOOK_CALL_EVENTS,        /* the enqueue script, or LPUSH */
    NGX_HTTP_WEBHOOK_CALL_PROBE,         /* Odoo's test: can Redis write? */
    NGX_HTTP_WEBHOOK_CALL_REJECTED       /* a 400's body kept */
} ngx_http_webhook_call_e;


/* where a request's events are, for the enqueue step and its timer */

typedef enum {
    NGX_HTTP_WEBHOOK_STEP_READING = 0,   /* the body */
    NGX_HTTP_WEBHOOK_STEP_REDIS,         /* timer: webhook_redis_timeout */
    NGX_HTTP_WEBHOOK_STEP_SPOOL,         /* timer: the spool's wait */
    NGX_HTTP_WEBHOOK_STEP_DONE           /* answered */
} ngx_http_webhook_step_e;


typedef struct {
    ngx_http_request_t            *request;
    ngx_http_webhook_step_e        step;
    ngx_event_t                    timer;
    uint64_t                       start;       /* body complete, usec */

    ngx_uint_t                     result;
    ngx_int_t                      priority;    /* -1: not yet known */
    ngx_str_t                      event_id;
    ngx_str_t                      sender;      /* len 0: none */
    ngx_str_t                      model;       /* of a single event */
    ngx_uint_t                     batch;
    ngx_uint_t                     nevents;
    ngx_str_t                     *ids;         /* envelope id per event */
    ngx_uint_t                    *priorities;  /* per event */
    ngx_uint_t                    *warned;      /* per event: any warning */
    ngx_http_webhook_item_t       *items;       /* per event */

    /* the call to Redis */
    ngx_http_webhook_call_e        call;
    ngx_http_webhook_cmd_t        *cmd;
    int                            argc;
    const char                   **argv;
    size_t                        *argvlen;

    ngx_http_webhook_spool_wait_t  spool;       /* waiting for the disk */

    ngx_str_t                      error_body;  /* for nginx's own errors,
                                                   or the 400 of a body
                                                   kept as rejected */
    ngx_str_t                      received;    /* of the body so far */
    size_t                         room;        /* allocated for it */
    ngx_str_t                      body;        /* once read */
    ngx_uint_t                     reject_result;

    unsigned                       lpush:1;     /* a plain LPUSH */
    unsigned                       responded:1;
    unsigned                       replace_body:1;
} ngx_http_webhook_ctx_t;


extern ngx_str_t  ngx_http_webhook_content_type;


/* ngx_http_webhook_receive.c */
ngx_int_t ngx_http_webhook_receive_handler(ngx_http_request_t *r);
ngx_http_webhook_ctx_t *ngx_http_webhook_ctx(ngx_http_request_t *r);
ngx_http_variable_value_t *ngx_http_webhook_request_id(ngx_http_request_t *r);

/* ngx_http_webhook_prepare.c: the events as items, then the enqueue */
ngx_int_t ngx_http_webhook_prepare(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev,
    ngx_uint_t n, ngx_str_t *idempotency);

/*
 * ngx_http_webhook_enqueue.c, the owner of the answer about the events.
 * Each returns the answer's status, or NGX_DONE while it waits (Redis, the
 * disk); it then finalizes the request itself, once.
 */
ngx_int_t ngx_http_webhook_enqueue(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
ngx_int_t ngx_http_webhook_probe(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
ngx_int_t ngx_http_webhook_invalid(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_uint_t status, char *code,
    u_char *message, size_t len);
#define ngx_http_webhook_invalid_text(r, ctx, code, text)                    \
    ngx_http_webhook_invalid(r, ctx, NGX_HTTP_BAD_REQUEST, code,            \
                             (u_char *) (text), ngx_strlen(text))

/* the directives of the receive location with a parser of their own */
char *ngx_http_webhook_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_rejected(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_webhook_count.c */
void ngx_http_webhook_count_result(ngx_http_request_t *r, ngx_uint_t result);
void ngx_http_webhook_count_events(ngx_http_request_t *r,
    ngx_uint_t priority, ngx_uint_t n);
void ngx_http_webhook_count_warnings(ngx_http_request_t *r, ngx_uint_t n);
void ngx_http_webhook_count_duration(ngx_http_request_t *r, uint64_t usec);

/* ngx_http_webhook_rejected.c: the call that keeps a 400's body */
ngx_int_t ngx_http_webhook_rejected_call(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *answer);

/* ngx_http_webhook_respond.c: the answers written, nothing else */
ngx_int_t ngx_http_webhook_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, u_char *body, size_t len);
ngx_int_t ngx_http_webhook_error_json(ngx_pool_t *pool, ngx_str_t *out,
    char *code, u_char *message, size_t len);
ngx_int_t ngx_http_webhook_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, char *code, u_char *message,
    size_t len);
ngx_int_t ngx_http_webhook_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, char *code, char *message);
void ngx_http_webhook_receive_filter_init(void);

/* ngx_http_webhook_variables.c */
ngx_int_t ngx_http_webhook_receive_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_WEBHOOK_RECEIVE_H_INCLUDED_ */
