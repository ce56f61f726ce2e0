
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * What the files of the receive location share: the request's context
 * and the answers every step may give.
 */


#ifndef _NGX_HTTP_WEBHOOK_RECEIVE_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_RECEIVE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"


/* EVALSHA sha numkeys, keys, then ARGV: ttl max n ttl2 from2, 3 per event */
#define NGX_HTTP_WEBHOOK_CMD_ARGS     3
#define NGX_HTTP_WEBHOOK_SCRIPT_ARGS  5
#define NGX_HTTP_WEBHOOK_EVENT_ARGS   3   /* seen key index, id, envelope */


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_webhook_cmd_t       *cmd;
    ngx_event_t                   timer;
    uint64_t                      start;       /* body complete, usec */

    ngx_uint_t                    result;
    ngx_int_t                     priority;    /* -1: not yet known */
    ngx_str_t                     event_id;
    ngx_str_t                     sender;      /* len 0: none */
    ngx_str_t                     model;       /* of a single event */
    ngx_uint_t                    batch;
    ngx_uint_t                    nevents;
    ngx_str_t                    *ids;         /* envelope id per event */
    ngx_uint_t                   *priorities;  /* per event */
    ngx_uint_t                   *warned;      /* per event: any warning */

    int                           argc;
    const char                  **argv;
    size_t                       *argvlen;
    ngx_uint_t                    argv0;       /* ARGV[1] in argv */
    ngx_uint_t                    seen_env;    /* first seen key of an
                                                  envelope id */

    ngx_queue_t                   spool_link;  /* waiting for the disk */
    void                         *spool_buf;   /* the writer's buffer */
    size_t                        spool_off;   /* of the records in it */
    size_t                        spool_len;
    ngx_str_t                     spool_answer;
    char                         *spool_why;

    ngx_str_t                     error_body;  /* for nginx's own errors,
                                                  or the 400 of a body
                                                  kept as rejected */
    ngx_str_t                     received;    /* of the body so far */
    size_t                        room;        /* allocated for it */
    ngx_str_t                     body;        /* once read */
    ngx_uint_t                    reject_result;

    unsigned                      lpush:1;     /* a plain LPUSH, no script */
    unsigned                      probe:1;     /* a test: can Redis write? */
    unsigned                      rejected:1;  /* keeping the body */
    unsigned                      responded:1;
    unsigned                      replace_body:1;
    unsigned                      spooling:1;
} ngx_http_webhook_ctx_t;


extern ngx_str_t  ngx_http_webhook_content_type;


/* ngx_http_webhook_receive.c */
ngx_http_webhook_ctx_t *ngx_http_webhook_ctx(ngx_http_request_t *r);

/* ngx_http_webhook_enqueue_args.c */
ngx_int_t ngx_http_webhook_prepare(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev,
    ngx_uint_t n, ngx_str_t *idempotency);
ngx_int_t ngx_http_webhook_check_queue(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);

/* ngx_http_webhook_enqueue.c */
ngx_int_t ngx_http_webhook_enqueue(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);

/* ngx_http_webhook_rejected.c */
ngx_int_t ngx_http_webhook_keep_rejected(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_uint_t result, ngx_str_t *answer);

/* ngx_http_webhook_respond.c */
ngx_int_t ngx_http_webhook_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, u_char *body, size_t len);
ngx_int_t ngx_http_webhook_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, char *code, u_char *message,
    size_t len);
ngx_int_t ngx_http_webhook_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, char *code, char *message);


#endif /* _NGX_HTTP_WEBHOOK_RECEIVE_H_INCLUDED_ */
