
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>

#include "core/ngx_http_webhook_core.h"
#include "stats/ngx_http_webhook_stats.h"


typedef struct {
    ngx_str_t                    text;
    u_char                       sha[40];     /* hex SHA1, for EVALSHA */
} ngx_http_webhook_script_t;


/*
 * How to reach Redis (webhook_redis*, parsed in ngx_http_webhook_redis_conf.c)
 * and what the Redis layer needs besides: the scripts it loads on each
 * connection, the largest batch (the bounds of the replies it reads), and
 * the queues (a reconnect is counted in their zone).
 */

typedef struct {
    ngx_str_t                    addr_text;   /* as configured */
    ngx_str_t                    host;        /* numeric, null-terminated */
    ngx_str_t                    host_name;   /* as written, for TLS */
    ngx_int_t                    port;        /* 0 for a unix socket */
    ngx_str_t                    unix_path;   /* null-terminated */
    struct sockaddr             *sockaddr;    /* to connect to */
    socklen_t                    socklen;
    ngx_resolver_t              *resolver;    /* NULL: resolved once */
    ngx_msec_t                   resolver_timeout;
    ngx_int_t                    db;
    ngx_str_t                    user;
    ngx_str_t                    password;
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   timeout;
    ngx_str_t                    sentinel_name;   /* of the master */
    ngx_array_t                 *sentinels;       /* of ngx_addr_t */
    ngx_str_t                    sentinel_user;
    ngx_str_t                    sentinel_password;
    ngx_array_t                 *cluster;         /* seeds, ngx_addr_t */
    ngx_int_t                    wait_replicas;   /* 0: no WAIT */
    ngx_msec_t                   wait_timeout;

#if (NGX_SSL)
    ngx_flag_t                   ssl;
    ngx_flag_t                   ssl_verify;
    ngx_str_t                    ssl_trusted_certificate;
    ngx_str_t                    ssl_name;        /* null-terminated */
    ngx_str_t                    ssl_certificate;
    ngx_str_t                    ssl_certificate_key;
    ngx_uint_t                   ssl_protocols;
    ngx_ssl_t                   *ssl_ctx;         /* NULL: no TLS */
#endif
    ngx_http_webhook_script_t      enqueue;     /* run inside Redis */
    ngx_http_webhook_script_t      status;
    ngx_http_webhook_script_t      reject;

    ngx_uint_t                     batch_max;   /* the largest location's */
    ngx_http_webhook_queues_t     *queues;
} ngx_http_webhook_redis_conf_t;


/*
 * One Redis connection per worker (with webhook_redis_cluster, one per
 * primary), shared (pipelined) by every request of the worker.  A
 * caller sends a command with a handler; the handler is called once,
 * with the reply (built by hiredis's reader, freed by this layer after
 * the handler returns), or with NULL when the command failed, and then
 * why (0 with a reply):
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

typedef void (*ngx_http_webhook_reply_pt)(void *data, redisReply *reply,
    ngx_uint_t failure);

typedef struct ngx_http_webhook_cmd_s  ngx_http_webhook_cmd_t;


/* ngx_http_webhook_redis_conf.c: the directives (their cmd->offset is the
 * redis part's in the main configuration), the checks of the http block */
char *ngx_http_webhook_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_webhook_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_webhook_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_redis_sentinel_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_webhook_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_cluster_conf(ngx_conf_t *cf,
    ngx_http_webhook_redis_conf_t *rcf);
ngx_int_t ngx_http_webhook_queue_slot(ngx_conf_t *cf,
    ngx_http_webhook_redis_conf_t *rcf, ngx_str_t *queue, ngx_uint_t *slot);
void ngx_http_webhook_scripts(ngx_http_webhook_redis_conf_t *rcf);

/* ngx_http_webhook_script.c: the enqueue script's arguments for n items
 * (EVALSHA, the sha, numkeys, n lists, at most n seen keys, 2, 4 each) */
#define NGX_HTTP_WEBHOOK_ENQUEUE_ARGC(n)  (3 + 2 * (n) + 2 + 4 * (n))
#define NGX_HTTP_WEBHOOK_ENQUEUE_NUMS(n)  ((3 + 2 * (n)) * NGX_INT_T_LEN)

int ngx_http_webhook_enqueue_args(ngx_http_webhook_item_t *items,
    ngx_uint_t n, const char **argv, size_t *argvlen, u_char *nums);
ngx_int_t ngx_http_webhook_lpush_args(ngx_http_webhook_item_t *items,
    ngx_uint_t n, const char **argv, size_t *argvlen, int *argc);

ngx_int_t ngx_http_webhook_redis_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf);
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
    ngx_http_webhook_redis_conf_t *rcf);
#endif


#endif /* _NGX_HTTP_WEBHOOK_REDIS_H_INCLUDED_ */
