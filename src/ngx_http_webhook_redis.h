
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_webhook_module.h"


/*
 * One Redis connection per worker, shared (pipelined) by every request
 * of the worker.  A caller sends a command with a handler; the handler
 * is called once, with the reply, or with NULL when the command failed
 * (connection lost or closed).  A caller that goes away first cancels
 * its command: the handler is then never called.
 */

typedef void (*ngx_http_webhook_reply_pt)(void *data, redisReply *reply);

typedef struct ngx_http_webhook_cmd_s  ngx_http_webhook_cmd_t;


ngx_int_t ngx_http_webhook_redis_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf);
void ngx_http_webhook_redis_exit(ngx_cycle_t *cycle);

/* EVALSHA of the script, argv[0] and argv[1] left for it; with no script,
 * argv is a command of its own */
ngx_http_webhook_cmd_t *ngx_http_webhook_redis_eval(
    ngx_http_webhook_script_t *script, int argc, const char **argv,
    size_t *argvlen, ngx_http_webhook_reply_pt handler, void *data);
void ngx_http_webhook_redis_cancel(ngx_http_webhook_cmd_t *cmd);
void ngx_http_webhook_redis_timed_out(void);
ngx_uint_t ngx_http_webhook_redis_up(void);


#endif /* _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_ */
