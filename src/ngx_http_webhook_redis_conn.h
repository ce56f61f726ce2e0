
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The parts of a worker's Redis connection shared by the command queue
 * (ngx_http_webhook_redis.c), the connection's state machine
 * (ngx_http_webhook_redis_conn.c) and its TLS (ngx_http_webhook_redis_ssl.c).
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_webhook_redis.h"
#include "ngx_http_webhook_redis_resp.h"


/*
 * The states, each with at most one timer (rd->timer):
 *
 *   disconnected  the backoff before the next attempt
 *   resolving     the resolver's own (resolver_timeout), when nginx's
 *                 resolver resolves webhook_redis's host name
 *   connecting    the connect timeout (TCP or unix socket connect)
 *   tls           the connect timeout goes on (the TLS handshake)
 *   handshake     the connect timeout goes on (AUTH, SELECT, SCRIPT LOAD)
 *   ready         none: each request has its own timer
 *
 * Closing is a step, not a state: close notify, close, fail what waits.
 */

typedef enum {
    ngx_http_webhook_redis_disconnected = 0,
    ngx_http_webhook_redis_resolving,
    ngx_http_webhook_redis_connecting,
    ngx_http_webhook_redis_tls,
    ngx_http_webhook_redis_handshake,
    ngx_http_webhook_redis_ready
} ngx_http_webhook_redis_state_e;


/* what a command is for: its reply is handled by the queue accordingly */
typedef enum {
    ngx_http_webhook_redis_request = 0,   /* a caller's command */
    ngx_http_webhook_redis_setup,         /* a step of the handshake */
    ngx_http_webhook_redis_ready_step,    /* the last step */
    ngx_http_webhook_redis_wait_step,     /* WAIT after a write pass */
    ngx_http_webhook_redis_role_step,     /* ROLE after a short WAIT */
    ngx_http_webhook_redis_role_check,    /* ROLE: the primary? */
    ngx_http_webhook_redis_asking         /* ASKING before an ASK's resend */
} ngx_http_webhook_redis_kind_e;


struct ngx_http_webhook_cmd_s {
    ngx_queue_t                    queue;     /* in sent or held */
    ngx_http_webhook_reply_pt      handler;   /* NULL: cancelled */
    void                          *data;
    ngx_http_webhook_script_t     *script;
    int                            argc;
    const char                   **argv;
    size_t                        *argvlen;
    redisReply                    *reply;     /* held for WAIT */
    const char                    *name;      /* of a setup step */
    ngx_http_webhook_redis_kind_e  kind;
    unsigned                       retried:1;
    unsigned                       write:1;   /* WAIT covers it */
    unsigned                       redirects:3;   /* MOVED, ASK */
};


typedef struct ngx_http_webhook_sentinel_s  ngx_http_webhook_sentinel_t;
typedef struct ngx_http_webhook_node_s      ngx_http_webhook_node_t;


typedef struct {
    ngx_http_webhook_redis_state_e  state;
    ngx_str_t                       addr_text;  /* of the primary */
    struct sockaddr                *sockaddr;
    socklen_t                       socklen;
    ngx_str_t                       host;       /* its address, for TLS */
    ngx_sockaddr_t                  sockaddr_buf;
    u_char                          addr_buf[NGX_SOCKADDR_STRLEN];
    ngx_http_webhook_sentinel_t    *sentinel;   /* NULL: no Sentinel */
    ngx_http_webhook_node_t        *node;       /* NULL: no Cluster */
    ngx_resolver_ctx_t             *resolving;
    ngx_uint_t                      next_addr;  /* of those resolved */
    ngx_peer_connection_t           peer;
    ngx_connection_t               *connection;
    redisReader                    *reader;
    ngx_http_webhook_resp_scan_t    scan;      /* the bounds, before it */
    ngx_http_webhook_main_conf_t   *wmcf;
    ngx_log_t                      *log;
    ngx_event_t                     timer;     /* the state's */
    ngx_msec_t                      backoff;

    ngx_queue_t                     sent;      /* replies awaited, in order */
    ngx_queue_t                     held;      /* answered, awaiting WAIT */
    ngx_uint_t                      unwaited;  /* writes since the WAIT */
    ngx_uint_t                      generation;    /* of the connection */

    u_char                         *out;       /* formatted, not yet sent */
    size_t                          out_pos;
    size_t                          out_len;
    size_t                          out_size;

    ngx_int_t                       replicas;  /* last known by ROLE */

    unsigned                        waiting:1;      /* a WAIT sent */
    unsigned                        exiting:1;
    unsigned                        was_up:1;
    unsigned                        idle_closed:1;  /* by Redis */
    unsigned                        quiet:1;        /* the reconnect */
} ngx_http_webhook_redis_t;


extern ngx_http_webhook_redis_t        *ngx_http_webhook_redis_conn;
extern ngx_http_webhook_resp_limits_t   ngx_http_webhook_redis_limits;


/* ngx_http_webhook_redis_conn.c */
void ngx_http_webhook_redis_connect(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_close(ngx_http_webhook_redis_t *rd,
    ngx_uint_t lost);
void ngx_http_webhook_redis_flush(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_timer(ngx_event_t *ev);
void ngx_http_webhook_redis_set_ready(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_start(ngx_http_webhook_redis_t *rd);

/* ngx_http_webhook_redis.c */
ngx_http_webhook_redis_t *ngx_http_webhook_redis_create(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf);
ngx_http_webhook_cmd_t *ngx_http_webhook_redis_command(
    ngx_http_webhook_redis_t *rd, ngx_http_webhook_script_t *script,
    ngx_uint_t write, int argc, const char **argv, size_t *argvlen,
    ngx_http_webhook_reply_pt handler, void *data);
ngx_int_t ngx_http_webhook_redis_append(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd);
ngx_http_webhook_cmd_t *ngx_http_webhook_redis_step(
    ngx_http_webhook_redis_t *rd, ngx_http_webhook_redis_kind_e kind,
    const char *name, int argc, const char **argv, size_t *argvlen);
void ngx_http_webhook_redis_shrink(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_dispatch(ngx_http_webhook_redis_t *rd,
    redisReply *reply);
void ngx_http_webhook_redis_fail_all(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_call(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply, ngx_uint_t failure);

/* ngx_http_webhook_redis_wait.c */
void ngx_http_webhook_redis_waited(ngx_http_webhook_redis_t *rd,
    redisReply *reply);
void ngx_http_webhook_redis_role(ngx_http_webhook_redis_t *rd,
    redisReply *reply);

/* ngx_http_webhook_redis_sentinel.c */
ngx_int_t ngx_http_webhook_sentinel_init(ngx_http_webhook_redis_t *rd,
    ngx_cycle_t *cycle);
void ngx_http_webhook_sentinel_discover(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_sentinel_close(ngx_http_webhook_redis_t *rd);
ngx_str_t *ngx_http_webhook_sentinel_name(ngx_http_webhook_redis_t *rd);

/* ngx_http_webhook_redis_cluster.c */
ngx_int_t ngx_http_webhook_cluster_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf);
void ngx_http_webhook_cluster_exit(void);
ngx_http_webhook_redis_t *ngx_http_webhook_cluster_route(ngx_uint_t slot);
ngx_http_webhook_redis_t *ngx_http_webhook_cluster_conn(ngx_uint_t slot);
ngx_uint_t ngx_http_webhook_cluster_up(ngx_uint_t slot);
void ngx_http_webhook_cluster_ready(void);
void ngx_http_webhook_cluster_lost(void);
ngx_int_t ngx_http_webhook_cluster_redirect(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);

#if (NGX_SSL)
/* ngx_http_webhook_redis_ssl.c */
ngx_int_t ngx_http_webhook_redis_ssl_init(ngx_http_webhook_redis_t *rd);
#endif


#endif /* _NGX_HTTP_WEBHOOK_REDIS_CONN_H_INCLUDED_ */
