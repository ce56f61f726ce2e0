
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The Redis transport: one connection to one address, on nginx's own peer
 * connection and events, with its command queue (RESP formatted into one
 * output buffer, pipelined, replies matched in order), the bounds of the
 * replies, TLS, the handshake and WAIT.  It knows nothing of the
 * topologies above it (ngx_http_webhook_redis_topology.h): its owner
 * gives it what the handshake sends (ngx_http_webhook_redis_setup_t) and
 * callbacks (ngx_http_webhook_redis_handler_t), and decides where it
 * connects.
 *
 *   ngx_http_webhook_redis_conn.c   the state machine, the socket, timers
 *   ngx_http_webhook_redis_cmd.c    the command queue and the replies
 *   ngx_http_webhook_redis_wait.c   WAIT's answer
 *   ngx_http_webhook_redis_ssl.c    TLS
 *   ngx_http_webhook_redis_resp.c   the bounds of the replies
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
 * The states of a connection, each with at most one timer (rd->timer):
 *
 *   IDLE        none: not connected, no attempt planned (not started yet,
 *               stopped by its owner, the worker exiting)
 *   BACKOFF     the delay before the next attempt (100 ms doubling to 2 s),
 *               at whose end the owner's retry() is called
 *   RESOLVING   the resolver's own (resolver_timeout), for a host name
 *               resolved by nginx's resolver at each attempt
 *   CONNECTING  the connect timeout (TCP or unix socket connect)
 *   TLS         the connect timeout goes on (the TLS handshake)
 *   HANDSHAKE   the connect timeout goes on (AUTH, SELECT, ROLE, SCRIPT LOAD)
 *   READY       none: each caller has its own timer
 *
 * Closing is a step, not a state: close notify, close, fail what waits,
 * then BACKOFF (rd->reconnect) or IDLE, then the owner's lost().
 */

typedef enum {
    NGX_HTTP_WEBHOOK_REDIS_IDLE = 0,
    NGX_HTTP_WEBHOOK_REDIS_BACKOFF,
    NGX_HTTP_WEBHOOK_REDIS_RESOLVING,
    NGX_HTTP_WEBHOOK_REDIS_CONNECTING,
    NGX_HTTP_WEBHOOK_REDIS_TLS,
    NGX_HTTP_WEBHOOK_REDIS_HANDSHAKE,
    NGX_HTTP_WEBHOOK_REDIS_READY
} ngx_http_webhook_redis_state_e;


/* what a command is for: its reply is handled accordingly */
typedef enum {
    NGX_HTTP_WEBHOOK_CMD_REQUEST = 0,     /* a caller's command */
    NGX_HTTP_WEBHOOK_CMD_SETUP,           /* a step of the handshake */
    NGX_HTTP_WEBHOOK_CMD_READY,           /* its last step */
    NGX_HTTP_WEBHOOK_CMD_ROLE_CHECK,      /* ROLE: the primary? */
    NGX_HTTP_WEBHOOK_CMD_WAIT,            /* WAIT after a write pass */
    NGX_HTTP_WEBHOOK_CMD_ROLE,            /* ROLE after a short WAIT */
    NGX_HTTP_WEBHOOK_CMD_ASKING           /* ASKING before an ASK's resend */
} ngx_http_webhook_cmd_kind_e;


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
    ngx_http_webhook_cmd_kind_e    kind;
    unsigned                       retried:1;
    unsigned                       write:1;   /* WAIT covers it */
    unsigned                       redirects:3;   /* MOVED, ASK */
};


typedef struct ngx_http_webhook_redis_s  ngx_http_webhook_redis_t;


/* the output buffer is kept at this size when it empties */
#define NGX_HTTP_WEBHOOK_OUT_SIZE  65536


/*
 * The owner's callbacks; a NULL member does nothing (retry: connects
 * again to the same address).
 *
 *   ready    the handshake is done: commands are answered
 *   lost     the connection closed (its commands failed already)
 *   retry    the backoff after a loss is over: connect, or go elsewhere
 *   error    an error reply to a caller's command, before the caller sees
 *            it: NGX_DECLINED (the caller's), NGX_OK (the owner took the
 *            command and freed the reply: sent again elsewhere),
 *            NGX_DONE (the caller's, then the connection is closed: the
 *            address may now be another server's), NGX_ERROR (the
 *            command fails as if the connection were lost)
 *   message  a message of a subscription (["message", channel, text])
 */

typedef struct {
    void                         (*ready)(ngx_http_webhook_redis_t *rd);
    void                         (*lost)(ngx_http_webhook_redis_t *rd);
    void                         (*retry)(ngx_http_webhook_redis_t *rd);
    ngx_int_t                    (*error)(ngx_http_webhook_redis_t *rd,
                                     ngx_http_webhook_cmd_t *cmd,
                                     redisReply *reply);
    void                         (*message)(ngx_http_webhook_redis_t *rd,
                                     redisReply *reply);
} ngx_http_webhook_redis_handler_t;


/* what the handshake sends, as the owner asks */
typedef struct {
    const char                    *role;      /* "redis", "redis sentinel":
                                                 for the log */
    ngx_str_t                      user;      /* AUTH [user] password */
    ngx_str_t                      password;  /* empty: no AUTH */
    ngx_int_t                      db;        /* SELECT, 0: none */
    unsigned                       check_role:1;  /* ROLE must be master */
    unsigned                       scripts:1;     /* SCRIPT LOAD */
    unsigned                       wait:1;        /* webhook_redis_wait */
} ngx_http_webhook_redis_setup_t;


struct ngx_http_webhook_redis_s {
    ngx_http_webhook_redis_state_e     state;
    ngx_str_t                          addr_text;   /* for the log */
    ngx_str_t                          host;        /* for TLS, null-
                                                       terminated */
    struct sockaddr                   *sockaddr;
    socklen_t                          socklen;
    ngx_resolver_t                    *resolver;    /* NULL: sockaddr */
    ngx_str_t                          resolve;     /* the name, then */
    in_port_t                          port;
    ngx_resolver_ctx_t                *resolving;
    ngx_uint_t                         next_addr;   /* of those resolved */
    ngx_sockaddr_t                     sockaddr_buf;
    u_char                             text_buf[NGX_SOCKADDR_STRLEN];
    u_char                             host_buf[NGX_SOCKADDR_STRLEN];

    ngx_http_webhook_redis_setup_t    *setup;
    ngx_http_webhook_redis_handler_t  *handler;
    void                              *data;        /* the owner's */

    ngx_peer_connection_t              peer;
    ngx_connection_t                  *connection;
    redisReader                       *reader;
    ngx_http_webhook_resp_scan_t       scan;        /* the bounds, before
                                                       the reader */
    ngx_http_webhook_redis_conf_t      *rcf;
    ngx_log_t                         *log;
    ngx_event_t                        timer;       /* the state's */
    ngx_msec_t                         backoff;

    ngx_queue_t                        sent;        /* replies awaited */
    ngx_queue_t                        held;        /* answered, awaiting
                                                       WAIT */
    ngx_uint_t                         unwaited;    /* writes since the
                                                       WAIT */
    ngx_uint_t                         generation;  /* of the connection */

    u_char                            *out;         /* formatted, not yet
                                                       sent */
    size_t                             out_pos;
    size_t                             out_len;
    size_t                             out_size;

    ngx_int_t                          replicas;    /* last known by ROLE */

    unsigned                           reconnect:1; /* after a loss */
    unsigned                           subscribed:1;
    unsigned                           waiting:1;   /* a WAIT sent */
    unsigned                           was_up:1;
    unsigned                           idle_closed:1;   /* by Redis */
    unsigned                           quiet:1;     /* the reconnect */
};


extern ngx_http_webhook_resp_limits_t  ngx_http_webhook_redis_limits;


/* ngx_http_webhook_redis_conn.c */
ngx_http_webhook_redis_t *ngx_http_webhook_redis_create(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf, ngx_http_webhook_redis_setup_t *setup,
    ngx_http_webhook_redis_handler_t *handler, void *data);
void ngx_http_webhook_redis_destroy(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_address(ngx_http_webhook_redis_t *rd,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *host,
    ngx_str_t *text);
void ngx_http_webhook_redis_connect(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_close(ngx_http_webhook_redis_t *rd,
    ngx_uint_t lost);
void ngx_http_webhook_redis_stop(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_flush(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_set_ready(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_start(ngx_http_webhook_redis_t *rd);

#define ngx_http_webhook_redis_ready(rd)                                     \
    ((rd) != NULL && (rd)->state == NGX_HTTP_WEBHOOK_REDIS_READY)
#define ngx_http_webhook_redis_busy(rd)                                      \
    (!ngx_queue_empty(&(rd)->sent) || !ngx_queue_empty(&(rd)->held))

/* ngx_http_webhook_redis_cmd.c */
ngx_http_webhook_cmd_t *ngx_http_webhook_redis_command(
    ngx_http_webhook_redis_t *rd, ngx_http_webhook_script_t *script,
    ngx_uint_t write, int argc, const char **argv, size_t *argvlen,
    ngx_http_webhook_reply_pt handler, void *data);
ngx_int_t ngx_http_webhook_redis_append(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd);
ngx_http_webhook_cmd_t *ngx_http_webhook_redis_step(
    ngx_http_webhook_redis_t *rd, ngx_http_webhook_cmd_kind_e kind,
    const char *name, int argc, const char **argv, size_t *argvlen);
ngx_int_t ngx_http_webhook_redis_setup_steps(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_shrink(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_dispatch(ngx_http_webhook_redis_t *rd,
    redisReply *reply);
void ngx_http_webhook_redis_fail_all(ngx_http_webhook_redis_t *rd);
void ngx_http_webhook_redis_call(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply, ngx_uint_t failure);
ngx_uint_t ngx_http_webhook_redis_error_is(redisReply *reply, char *prefix,
    size_t len);

#define ngx_http_webhook_redis_readonly(reply)                               \
    ngx_http_webhook_redis_error_is(reply, "READONLY", sizeof("READONLY") - 1)

/* ngx_http_webhook_redis_wait.c */
void ngx_http_webhook_redis_waited(ngx_http_webhook_redis_t *rd,
    redisReply *reply);
void ngx_http_webhook_redis_role(ngx_http_webhook_redis_t *rd,
    redisReply *reply);

#if (NGX_SSL)
/* ngx_http_webhook_redis_ssl.c */
ngx_int_t ngx_http_webhook_redis_ssl_init(ngx_http_webhook_redis_t *rd);
#endif


#endif /* _NGX_HTTP_WEBHOOK_REDIS_CONN_H_INCLUDED_ */
