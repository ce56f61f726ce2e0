
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>

#include "ngx_http_webhook_module.h"
#include "core/ngx_http_webhook_core.h"


/*
 * One Redis connection per worker (with webhook_redis_cluster, one per
 * primary), shared (pipelined) by every request of the worker.  A
 * caller sends a command with a handler; the handler is called once,
 * with the reply (built by hiredis's reader, freed by this layer after
 * the handler returns), or with NULL when the command failed.  During
 * a call with NULL, ngx_http_webhook_redis_failure() tells why:
 *
 *   NGX_HTTP_WEBHOOK_REDIS_LOST      the connection was lost or closed
 *                                    (a timeout, a failover) with the
 *                                    command in flight: its outcome is
 *                                    unknown, it may have been applied
 *   NGX_HTTP_WEBHOOK_REDIS_REPLICAS  webhook_redis_wait: Redis applied
 *                                    the command, but fewer replicas than
 *                                    asked acknowledged it in time; the
 *                                    connection stays
 *
 * A reply is never held back for WAIT when it is an error (nothing was
 * written) or when the command is the status script (a read).  A caller
 * that goes away first cancels its command: the handler is then never
 * called.
 */

#define NGX_HTTP_WEBHOOK_REDIS_LOST      1
#define NGX_HTTP_WEBHOOK_REDIS_REPLICAS  2

/*
 * With webhook_redis_cluster, a command goes to the primary of its slot
 * (the keyslot of its keys' hash tag); without, the slot is ignored.
 * NGX_HTTP_WEBHOOK_ANY_SLOT: any node (ngx_http_webhook_redis_up()).
 */

#define NGX_HTTP_WEBHOOK_ANY_SLOT        NGX_HTTP_WEBHOOK_SLOTS_ALL

typedef void (*ngx_http_webhook_reply_pt)(void *data, redisReply *reply);

typedef struct ngx_http_webhook_cmd_s  ngx_http_webhook_cmd_t;


ngx_int_t ngx_http_webhook_redis_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf);
void ngx_http_webhook_redis_exit(ngx_cycle_t *cycle);

/* EVALSHA of the script, argv[0] and argv[1] left for it; with no script,
 * argv is a command of its own */
ngx_http_webhook_cmd_t *ngx_http_webhook_redis_eval(
    ngx_http_webhook_script_t *script, ngx_uint_t slot, int argc,
    const char **argv, size_t *argvlen, ngx_http_webhook_reply_pt handler,
    void *data);
void ngx_http_webhook_redis_cancel(ngx_http_webhook_cmd_t *cmd);
void ngx_http_webhook_redis_timed_out(ngx_uint_t slot);
ngx_uint_t ngx_http_webhook_redis_up(ngx_uint_t slot);
ngx_uint_t ngx_http_webhook_redis_failure(void);

/* for the status, with Cluster: the primaries known, and a slot's */
ngx_uint_t ngx_http_webhook_cluster_on(void);
ngx_int_t ngx_http_webhook_cluster_node(ngx_uint_t i, ngx_str_t *addr,
    ngx_uint_t *up, ngx_uint_t *slots);
ngx_int_t ngx_http_webhook_cluster_slot_node(ngx_uint_t slot,
    ngx_str_t *addr, ngx_uint_t *up);
/* the primary connected to (or the configured address), and the sentinel
 * that named it (empty without Sentinel) */
void ngx_http_webhook_redis_addresses(ngx_str_t *primary,
    ngx_str_t *sentinel);

#if (NGX_SSL)
extern ngx_conf_bitmask_t  ngx_http_webhook_redis_ssl_protocols[];

char *ngx_http_webhook_redis_ssl_conf(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf);
#endif


#endif /* _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_ */
