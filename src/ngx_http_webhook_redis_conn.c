
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The state machine of a worker's Redis connection, on nginx's own
 * peer connection and events: connect (TCP or unix socket), TLS,
 * the handshake (AUTH, SELECT, SCRIPT LOAD), ready, and the reconnection
 * with a capped backoff.  Replies are parsed by hiredis's reader.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"
#include "ngx_http_webhook_stats.h"


#define NGX_HTTP_WEBHOOK_BACKOFF_MIN  100
#define NGX_HTTP_WEBHOOK_BACKOFF_MAX  2000

#define NGX_HTTP_WEBHOOK_READ_SIZE    16384


static void ngx_http_webhook_redis_connect_to(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_resolve(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_resolved(ngx_resolver_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_redis_open(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_connected(ngx_http_webhook_redis_t *rd);
static ngx_int_t ngx_http_webhook_redis_setup_steps(
    ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_read_handler(ngx_event_t *ev);
static void ngx_http_webhook_redis_write_handler(ngx_event_t *ev);
static void ngx_http_webhook_redis_test_connect(
    ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_send(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_closed(ngx_http_webhook_redis_t *rd,
    ngx_err_t err);
static void ngx_http_webhook_redis_schedule(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_log_failed(ngx_http_webhook_redis_t *rd,
    ngx_err_t err);
static void ngx_http_webhook_redis_log_bounds(ngx_http_webhook_redis_t *rd);


static u_char  ngx_http_webhook_redis_buf[NGX_HTTP_WEBHOOK_READ_SIZE];


void
ngx_http_webhook_redis_connect(ngx_http_webhook_redis_t *rd)
{
    /* only the attempt right after an idle close is quiet */

    rd->quiet = rd->idle_closed;
    rd->idle_closed = 0;

    rd->state = rd->wmcf->resolver ? ngx_http_webhook_redis_resolving
                                   : ngx_http_webhook_redis_connecting;

    /* queued first, written once connected */

    if (ngx_http_webhook_redis_setup_steps(rd) != NGX_OK) {
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    if (rd->state == ngx_http_webhook_redis_resolving) {
        ngx_http_webhook_redis_resolve(rd);
        return;
    }

    ngx_http_webhook_redis_connect_to(rd);
}


static void
ngx_http_webhook_redis_connect_to(ngx_http_webhook_redis_t *rd)
{
    ngx_int_t  rc;

    rc = ngx_http_webhook_redis_open(rd);

    if (rc == NGX_ERROR) {
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    rd->state = ngx_http_webhook_redis_connecting;

    /* the connect timeout covers the TLS and Redis handshakes too */

    ngx_add_timer(&rd->timer, rd->wmcf->connect_timeout);

    if (rc == NGX_OK) {
        ngx_http_webhook_redis_connected(rd);
    }
}


/* nginx's resolver, for the address behind webhook_redis's name now */

static void
ngx_http_webhook_redis_resolve(ngx_http_webhook_redis_t *rd)
{
    ngx_resolver_ctx_t            *ctx;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = rd->wmcf;

    ctx = ngx_resolve_start(wmcf->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis: resolving \"%V\" failed",
                      &wmcf->host_name);
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    ctx->name = wmcf->host_name;
    ctx->handler = ngx_http_webhook_redis_resolved;
    ctx->data = rd;
    ctx->timeout = wmcf->resolver_timeout;

    rd->resolving = ctx;

    /* the handler may run before this returns */

    if (ngx_resolve_name(ctx) != NGX_OK) {
        rd->resolving = NULL;
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis: resolving \"%V\" failed",
                      &wmcf->host_name);
        ngx_http_webhook_redis_close(rd, 0);
    }
}


static void
ngx_http_webhook_redis_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_http_webhook_redis_t  *rd = ctx->data;

    u_char                text[NGX_SOCKADDR_STRLEN];
    ngx_uint_t            i;
    ngx_resolver_addr_t  *addr;

    if (ctx->state) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis: \"%V\" could not be resolved "
                      "(%i: %s)", &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));

        ngx_resolve_name_done(ctx);
        rd->resolving = NULL;

        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    /* the addresses in turn, one a connect */

    i = rd->next_addr++ % ctx->naddrs;
    addr = &ctx->addrs[i];

    ngx_memcpy(&rd->sockaddr_buf, addr->sockaddr, addr->socklen);
    rd->sockaddr = &rd->sockaddr_buf.sockaddr;
    rd->socklen = addr->socklen;
    ngx_inet_set_port(rd->sockaddr, (in_port_t) rd->wmcf->port);

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "webhook: redis: \"%V\" resolved to %*s", &ctx->name,
                  ngx_sock_ntop(rd->sockaddr, rd->socklen, text,
                                NGX_SOCKADDR_STRLEN, 0),
                  text);

    ngx_resolve_name_done(ctx);
    rd->resolving = NULL;

    ngx_http_webhook_redis_connect_to(rd);
}


static ngx_int_t
ngx_http_webhook_redis_open(ngx_http_webhook_redis_t *rd)
{
    ngx_int_t               rc;
    ngx_err_t               err;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    pc = &rd->peer;

    ngx_memzero(pc, sizeof(ngx_peer_connection_t));

    pc->sockaddr = rd->sockaddr;
    pc->socklen = rd->socklen;
    pc->name = &rd->addr_text;
    pc->get = ngx_event_get_peer;
    pc->log = rd->log;
    pc->log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        err = ngx_socket_errno;
        ngx_http_webhook_redis_log_failed(rd, err);
        return NGX_ERROR;
    }

    c = pc->connection;

    c->data = rd;
    c->read->handler = ngx_http_webhook_redis_read_handler;
    c->write->handler = ngx_http_webhook_redis_write_handler;

    rd->connection = c;
    rd->generation++;

    rd->reader = redisReaderCreate();
    if (rd->reader == NULL) {
        return NGX_ERROR;
    }

#ifdef REDIS_READER_MAX_ARRAY_ELEMENTS
    /* hiredis 1.x checks it as well */
    rd->reader->maxelements = ngx_http_webhook_redis_limits.array;
#endif

    ngx_http_webhook_resp_scan_init(&rd->scan,
                                    &ngx_http_webhook_redis_limits);

    /* TLS allocates from it; nothing else does */

    c->pool = ngx_create_pool(1024, rd->log);
    if (c->pool == NULL) {
        return NGX_ERROR;
    }

    return rc;
}


static void
ngx_http_webhook_redis_log_failed(ngx_http_webhook_redis_t *rd,
    ngx_err_t err)
{
    u_char  msg[NGX_MAX_ERROR_STR], *p;

    p = err ? ngx_strerror(err, msg, sizeof(msg))
            : ngx_cpymem(msg, "failed", sizeof("failed") - 1);

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "webhook: redis connect to %V failed: %*s",
                  &rd->addr_text, p - msg, msg);
}


static void
ngx_http_webhook_redis_connected(ngx_http_webhook_redis_t *rd)
{
#if (NGX_SSL)
    if (rd->wmcf->ssl_ctx) {
        rd->state = ngx_http_webhook_redis_tls;

        if (ngx_http_webhook_redis_ssl_init(rd) != NGX_OK) {
            ngx_http_webhook_redis_close(rd, 0);
        }

        return;
    }
#endif

    ngx_http_webhook_redis_start(rd);
}


/* the socket (and TLS) is up: the handshake commands go out */

void
ngx_http_webhook_redis_start(ngx_http_webhook_redis_t *rd)
{
    ngx_connection_t  *c;

    c = rd->connection;

    c->read->handler = ngx_http_webhook_redis_read_handler;
    c->write->handler = ngx_http_webhook_redis_write_handler;

    rd->state = ngx_http_webhook_redis_handshake;

    ngx_http_webhook_redis_send(rd);

    if (rd->connection == c && c->read->ready) {
        ngx_http_webhook_redis_read_handler(c->read);
    }
}


static ngx_int_t
ngx_http_webhook_redis_setup_steps(ngx_http_webhook_redis_t *rd)
{
    int                            argc;
    u_char                        *p;
    size_t                         argvlen[3];
    const char                    *argv[3];
    u_char                         db[NGX_INT_T_LEN];
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = rd->wmcf;

    if (wmcf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (wmcf->user.len) {
            argv[argc] = (char *) wmcf->user.data;
            argvlen[argc++] = wmcf->user.len;
        }

        argv[argc] = (char *) wmcf->password.data;
        argvlen[argc++] = wmcf->password.len;

        if (ngx_http_webhook_redis_step(rd, ngx_http_webhook_redis_setup,
                                        "AUTH", argc, argv, argvlen)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (wmcf->db) {
        p = ngx_sprintf(db, "%i", wmcf->db);

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = p - db;

        if (ngx_http_webhook_redis_step(rd, ngx_http_webhook_redis_setup,
                                        "SELECT", 2, argv, argvlen)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    /* what a sentinel names is checked before anything is written */

    if (rd->sentinel) {
        argv[0] = "ROLE";
        argvlen[0] = 4;

        if (ngx_http_webhook_redis_step(rd, ngx_http_webhook_redis_role_check,
                                        "ROLE", 1, argv, argvlen)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = (char *) wmcf->enqueue.text.data;
    argvlen[2] = wmcf->enqueue.text.len;

    if (ngx_http_webhook_redis_step(rd, ngx_http_webhook_redis_setup,
                                    "SCRIPT LOAD", 3, argv, argvlen)
        == NULL)
    {
        return NGX_ERROR;
    }

    argv[2] = (char *) wmcf->status.text.data;
    argvlen[2] = wmcf->status.text.len;

    if (ngx_http_webhook_redis_step(rd, ngx_http_webhook_redis_ready_step,
                                    "SCRIPT LOAD", 3, argv, argvlen)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_webhook_redis_set_ready(ngx_http_webhook_redis_t *rd)
{
    ngx_uint_t  level;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    rd->state = ngx_http_webhook_redis_ready;
    rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MIN;

    if (rd->was_up) {
        ngx_http_webhook_count_reconnect(rd->wmcf);
    }

    rd->was_up = 1;

    level = rd->quiet ? NGX_LOG_INFO : NGX_LOG_NOTICE;

    ngx_log_error(level, rd->log, 0, "webhook: connected to redis at %V",
                  &rd->addr_text);

    rd->quiet = 0;

    if (rd->node) {
        ngx_http_webhook_cluster_ready();
    }
}


/* new commands are written when the event loop comes round */

void
ngx_http_webhook_redis_flush(ngx_http_webhook_redis_t *rd)
{
    ngx_connection_t  *c;

    c = rd->connection;

    if (c == NULL || rd->state < ngx_http_webhook_redis_handshake
        || c->write->posted)
    {
        return;
    }

    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_webhook_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_webhook_redis_t  *rd = c->data;

    if (rd->state == ngx_http_webhook_redis_connecting) {
        ngx_http_webhook_redis_test_connect(rd);
        return;
    }

    ngx_http_webhook_redis_send(rd);
}


/* the connect in progress has ended (either event): how */

static void
ngx_http_webhook_redis_test_connect(ngx_http_webhook_redis_t *rd)
{
    int         err;
    socklen_t   len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(rd->connection->fd, SOL_SOCKET, SO_ERROR, (void *) &err,
                   &len)
        == -1)
    {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_http_webhook_redis_log_failed(rd, err);
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    ngx_http_webhook_redis_connected(rd);
}


/*
 * One write pass: with webhook_redis_wait, the writes of the pass are
 * followed by one WAIT, whose answer releases their replies.
 */

static void
ngx_http_webhook_redis_send(ngx_http_webhook_redis_t *rd)
{
    u_char                        *p;
    ssize_t                        n;
    size_t                         argvlen[3];
    const char                    *argv[3];
    u_char                         nbuf[NGX_INT_T_LEN], tbuf[NGX_INT_T_LEN];
    ngx_connection_t              *c;
    ngx_http_webhook_main_conf_t  *wmcf;

    c = rd->connection;
    wmcf = rd->wmcf;

    /*
     * one WAIT at a time: Redis blocks the connection while it waits, a
     * second WAIT behind it would add its own timeout to every command
     * sent meanwhile; those are covered by the next WAIT, sent once this
     * one has answered
     */

    if (wmcf->wait_replicas && rd->unwaited && !rd->waiting) {
        rd->unwaited = 0;
        rd->waiting = 1;

        argv[0] = "WAIT";
        argvlen[0] = 4;
        p = ngx_sprintf(nbuf, "%i", wmcf->wait_replicas);
        argv[1] = (char *) nbuf;
        argvlen[1] = p - nbuf;
        p = ngx_sprintf(tbuf, "%M", wmcf->wait_timeout);
        argv[2] = (char *) tbuf;
        argvlen[2] = p - tbuf;

        if (ngx_http_webhook_redis_step(rd, ngx_http_webhook_redis_wait_step,
                                        "WAIT", 3, argv, argvlen)
            == NULL)
        {
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }
    }

    while (rd->out_pos < rd->out_len) {

        n = c->send(c, rd->out + rd->out_pos, rd->out_len - rd->out_pos);

        if (n > 0) {
            rd->out_pos += n;
            continue;
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_webhook_redis_close(rd, 1);
            }

            return;
        }

        /* NGX_ERROR */

        c->error = 1;
        ngx_http_webhook_redis_closed(rd, ngx_socket_errno);
        return;
    }

    ngx_http_webhook_redis_shrink(rd);
}


static void
ngx_http_webhook_redis_read_handler(ngx_event_t *ev)
{
    ssize_t                    n;
    ngx_uint_t                 gen;
    redisReply                *reply;
    ngx_connection_t          *c = ev->data;
    ngx_http_webhook_redis_t  *rd = c->data;

    if (rd->state == ngx_http_webhook_redis_connecting) {
        ngx_http_webhook_redis_test_connect(rd);
        return;
    }

    gen = rd->generation;

    for ( ;; ) {

        n = c->recv(c, ngx_http_webhook_redis_buf,
                    NGX_HTTP_WEBHOOK_READ_SIZE);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_webhook_redis_close(rd, 1);
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            c->error = (n == NGX_ERROR);
            ngx_http_webhook_redis_closed(rd, n ? ngx_socket_errno : 0);
            return;
        }

        /* what a header announces is refused before the reader sees it */

        if (ngx_http_webhook_resp_scan(&rd->scan, ngx_http_webhook_redis_buf,
                                       n)
            != NGX_OK)
        {
            ngx_http_webhook_redis_log_bounds(rd);
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }

        if (redisReaderFeed(rd->reader, (char *) ngx_http_webhook_redis_buf,
                            n)
            != REDIS_OK)
        {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "webhook: redis reply buffer: %s",
                          rd->reader->errstr);
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(rd->reader, (void **) &reply)
                != REDIS_OK)
            {
                ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                              "webhook: redis protocol error: %s",
                              rd->reader->errstr);
                ngx_http_webhook_redis_close(rd, 1);
                return;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_webhook_redis_dispatch(rd, reply);

            if (gen != rd->generation) {
                /* closed meanwhile */
                return;
            }
        }
    }
}


/* what broke the bounds of the replies, by ngx_http_webhook_resp_error_e */

static char  *ngx_http_webhook_redis_bounds[] = {
    "",
    "a byte 0x%02Xz where a reply starts",
    "a malformed length",
    "arrays nested deeper than %uz",
    "an array of %uz elements, at most %uz",
    "more than %uz elements in one reply",
    "a bulk string of %uz bytes, at most %uz",
    "a line longer than %uz bytes",
    "more than %uz bytes in one reply"
};


static void
ngx_http_webhook_redis_log_bounds(ngx_http_webhook_redis_t *rd)
{
    u_char                        *p, why[128];
    ngx_http_webhook_resp_scan_t  *s;

    s = &rd->scan;

    p = ngx_snprintf(why, sizeof(why),
                     ngx_http_webhook_redis_bounds[s->error], s->value,
                     s->limit);

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "webhook: redis at %V sent a reply past the bounds (%*s), "
                  "closing the connection", &rd->addr_text, p - why, why);
}


/* Redis closed the connection, or the socket failed */

static void
ngx_http_webhook_redis_closed(ngx_http_webhook_redis_t *rd, ngx_err_t err)
{
    u_char  msg[NGX_MAX_ERROR_STR], *p;

    p = err ? ngx_strerror(err, msg, sizeof(msg))
            : ngx_cpymem(msg, "closed by the peer",
                         sizeof("closed by the peer") - 1);

    if (!ngx_queue_empty(&rd->sent) || !ngx_queue_empty(&rd->held)) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis connection to %V lost: %*s",
                      &rd->addr_text, p - msg, msg);

    } else {
        /* nothing was waiting: "timeout" in redis.conf, a normal event */
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "webhook: redis closed the idle connection to %V "
                      "(%*s), reconnecting", &rd->addr_text,
                      p - msg, msg);

        rd->idle_closed = 1;
    }

    ngx_http_webhook_redis_close(rd, 1);
}


/*
 * Closes the connection if any, fails every command awaiting a reply
 * and schedules the next attempt
 */

void
ngx_http_webhook_redis_close(ngx_http_webhook_redis_t *rd, ngx_uint_t lost)
{
    ngx_connection_t  *c;

    c = rd->connection;

    if (c) {
#if (NGX_SSL)
        if (c->ssl) {
            if (lost) {
                c->error = 1;
            }

            c->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif

        if (c->pool) {
            ngx_destroy_pool(c->pool);
            c->pool = NULL;
        }

        ngx_close_connection(c);
        rd->connection = NULL;
    }

    if (rd->reader) {
        redisReaderFree(rd->reader);
        rd->reader = NULL;
    }

    if (rd->resolving) {
        ngx_resolve_name_done(rd->resolving);
        rd->resolving = NULL;
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    rd->state = ngx_http_webhook_redis_disconnected;
    rd->generation++;
    rd->unwaited = 0;
    rd->waiting = 0;
    rd->out_pos = 0;
    rd->out_len = 0;

    ngx_http_webhook_redis_fail_all(rd);

    if (rd->node && !rd->exiting) {
        ngx_http_webhook_cluster_lost();
    }

    ngx_http_webhook_redis_schedule(rd);
}


static void
ngx_http_webhook_redis_schedule(ngx_http_webhook_redis_t *rd)
{
    if (rd->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rd->timer.timer_set
        || rd->state != ngx_http_webhook_redis_disconnected)
    {
        return;
    }

    if (rd->backoff == 0) {
        rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MIN;
    }

    ngx_add_timer(&rd->timer, rd->backoff);

    rd->backoff *= 2;
    if (rd->backoff > NGX_HTTP_WEBHOOK_BACKOFF_MAX) {
        rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MAX;
    }
}


/* the timer of the state */

void
ngx_http_webhook_redis_timer(ngx_event_t *ev)
{
    ngx_http_webhook_redis_t  *rd = ev->data;

    switch (rd->state) {

    case ngx_http_webhook_redis_disconnected:
        if (rd->exiting) {
            return;
        }

        if (rd->sentinel) {
            /* the primary may have moved: ask again */
            ngx_http_webhook_sentinel_discover(rd);
            return;
        }

        ngx_http_webhook_redis_connect(rd);
        return;

    case ngx_http_webhook_redis_connecting:
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: redis connect to %V timed out",
                      &rd->addr_text);
        break;

    case ngx_http_webhook_redis_tls:
        /* a peer that accepts and never answers: a proxy, a hung Redis */
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: redis TLS handshake with %V timed out",
                      &rd->addr_text);
        break;

    case ngx_http_webhook_redis_handshake:
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: redis handshake with %V timed out",
                      &rd->addr_text);
        break;

    default: /* ready: no timer */
        return;
    }

    ngx_http_webhook_redis_close(rd, 1);
}
