
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The state machine of a Redis connection, on nginx's own peer connection
 * and events: connect (TCP or unix socket, after nginx's resolver when the
 * owner gives a host name), TLS, the handshake its owner asks for, ready,
 * and after a loss a capped backoff, then the owner's retry().  Replies
 * are scanned for their bounds, then parsed by hiredis's reader.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"
#include "stats/ngx_http_webhook_stats.h"


#define NGX_HTTP_WEBHOOK_BACKOFF_MIN  100
#define NGX_HTTP_WEBHOOK_BACKOFF_MAX  2000

#define NGX_HTTP_WEBHOOK_READ_SIZE    16384


static void ngx_http_webhook_redis_state(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_redis_state_e state);
static void ngx_http_webhook_redis_connect_to(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_resolve(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_resolved(ngx_resolver_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_redis_open(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_connected(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_read_handler(ngx_event_t *ev);
static void ngx_http_webhook_redis_write_handler(ngx_event_t *ev);
static void ngx_http_webhook_redis_test_connect(
    ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_send(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_closed(ngx_http_webhook_redis_t *rd,
    ngx_err_t err);
static void ngx_http_webhook_redis_shut(ngx_http_webhook_redis_t *rd,
    ngx_uint_t lost);
static void ngx_http_webhook_redis_timer(ngx_event_t *ev);
static void ngx_http_webhook_redis_log_failed(ngx_http_webhook_redis_t *rd,
    ngx_err_t err);
static void ngx_http_webhook_redis_log_bounds(ngx_http_webhook_redis_t *rd);


ngx_http_webhook_resp_limits_t  ngx_http_webhook_redis_limits;

static u_char  ngx_http_webhook_redis_buf[NGX_HTTP_WEBHOOK_READ_SIZE];

#if (NGX_DEBUG)
/* the states by name, for the debug log */
static char   *ngx_http_webhook_redis_states[] = {
    "IDLE", "BACKOFF", "RESOLVING", "CONNECTING", "TLS", "HANDSHAKE", "READY"
};
#endif


/*
 * A connection, IDLE: its owner gives it an address, then connects it.
 * Allocated on the heap: a Cluster node's is freed when the node is
 * forgotten.
 */

ngx_http_webhook_redis_t *
ngx_http_webhook_redis_create(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf, ngx_http_webhook_redis_setup_t *setup,
    ngx_http_webhook_redis_handler_t *handler, void *data)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_calloc(sizeof(ngx_http_webhook_redis_t), cycle->log);
    if (rd == NULL) {
        return NULL;
    }

    rd->out = ngx_alloc(NGX_HTTP_WEBHOOK_OUT_SIZE, cycle->log);
    if (rd->out == NULL) {
        ngx_free(rd);
        return NULL;
    }

    rd->out_size = NGX_HTTP_WEBHOOK_OUT_SIZE;
    rd->rcf = rcf;
    rd->log = cycle->log;
    rd->setup = setup;
    rd->handler = handler;
    rd->data = data;
    rd->replicas = -1;

    ngx_queue_init(&rd->sent);
    ngx_queue_init(&rd->held);

    rd->timer.handler = ngx_http_webhook_redis_timer;
    rd->timer.data = rd;
    rd->timer.log = cycle->log;
    rd->timer.cancelable = 1;

    return rd;
}


/* not from inside one of its own handlers or callbacks */

void
ngx_http_webhook_redis_destroy(ngx_http_webhook_redis_t *rd)
{
    ngx_http_webhook_redis_stop(rd);

    ngx_free(rd->out);
    ngx_free(rd);
}


/*
 * Where the next attempt goes: sockaddr, the host for TLS (NULL: the host
 * part of text) and the address as logged, "host:port"
 */

void
ngx_http_webhook_redis_address(ngx_http_webhook_redis_t *rd,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *host,
    ngx_str_t *text)
{
    u_char     *colon;
    ngx_str_t   h;

    ngx_memcpy(&rd->sockaddr_buf, sockaddr,
               ngx_min(socklen, sizeof(ngx_sockaddr_t)));
    rd->sockaddr = &rd->sockaddr_buf.sockaddr;
    rd->socklen = socklen;

    rd->addr_text.len = ngx_min(text->len, NGX_SOCKADDR_STRLEN);
    rd->addr_text.data = ngx_cpymem(rd->text_buf, text->data,
                                    rd->addr_text.len)
                         - rd->addr_text.len;

    if (host) {
        h = *host;

    } else {
        /* "host:port", "[v6]:port", "unix:/path" */

        h = rd->addr_text;

        colon = h.data + h.len;
        while (colon > h.data && colon[-1] != ':') {
            colon--;
        }

        if (colon > h.data && ngx_strncmp(h.data, "unix:", 5) != 0) {
            h.len = colon - 1 - h.data;
        }

        if (h.len >= 2 && h.data[0] == '[' && h.data[h.len - 1] == ']') {
            h.data++;
            h.len -= 2;
        }
    }

    rd->host.len = ngx_min(h.len, NGX_SOCKADDR_STRLEN - 1);
    rd->host.data = rd->host_buf;
    ngx_memcpy(rd->host_buf, h.data, rd->host.len);
    rd->host_buf[rd->host.len] = '\0';
}


static void
ngx_http_webhook_redis_state(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_redis_state_e state)
{
    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "webhook: %s at %V: %s -> %s", rd->setup->role,
                   &rd->addr_text, ngx_http_webhook_redis_states[rd->state],
                   ngx_http_webhook_redis_states[state]);

    rd->state = state;
}


/* from IDLE or BACKOFF: an attempt now */

void
ngx_http_webhook_redis_connect(ngx_http_webhook_redis_t *rd)
{
    if (rd->state > NGX_HTTP_WEBHOOK_REDIS_BACKOFF) {
        return;
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    /* only the attempt right after an idle close is quiet */

    rd->quiet = rd->idle_closed;
    rd->idle_closed = 0;

    ngx_http_webhook_redis_state(rd, rd->resolver
                                     ? NGX_HTTP_WEBHOOK_REDIS_RESOLVING
                                     : NGX_HTTP_WEBHOOK_REDIS_CONNECTING);

    /* queued first, written once connected */

    if (ngx_http_webhook_redis_setup_steps(rd) != NGX_OK) {
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    if (rd->state == NGX_HTTP_WEBHOOK_REDIS_RESOLVING) {
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

    if (rd->state != NGX_HTTP_WEBHOOK_REDIS_CONNECTING) {
        /* resolved */
        ngx_http_webhook_redis_state(rd, NGX_HTTP_WEBHOOK_REDIS_CONNECTING);
    }

    /* the connect timeout covers the TLS and Redis handshakes too */

    ngx_add_timer(&rd->timer, rd->rcf->connect_timeout);

    if (rc == NGX_OK) {
        ngx_http_webhook_redis_connected(rd);
    }
}


/* nginx's resolver, for the address behind the name now */

static void
ngx_http_webhook_redis_resolve(ngx_http_webhook_redis_t *rd)
{
    ngx_resolver_ctx_t  *ctx;

    ctx = ngx_resolve_start(rd->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis: resolving \"%V\" failed",
                      &rd->resolve);
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    ctx->name = rd->resolve;
    ctx->handler = ngx_http_webhook_redis_resolved;
    ctx->data = rd;
    ctx->timeout = rd->rcf->resolver_timeout;

    rd->resolving = ctx;

    /* the handler may run before this returns */

    if (ngx_resolve_name(ctx) != NGX_OK) {
        rd->resolving = NULL;
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis: resolving \"%V\" failed",
                      &rd->resolve);
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

    ngx_memcpy(&rd->sockaddr_buf, addr->sockaddr,
               ngx_min(addr->socklen, sizeof(ngx_sockaddr_t)));
    rd->sockaddr = &rd->sockaddr_buf.sockaddr;
    rd->socklen = addr->socklen;
    ngx_inet_set_port(rd->sockaddr, rd->port);

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
                  "webhook: %s connect to %V failed: %*s",
                  rd->setup->role, &rd->addr_text, p - msg, msg);
}


static void
ngx_http_webhook_redis_connected(ngx_http_webhook_redis_t *rd)
{
#if (NGX_SSL)
    if (rd->rcf->ssl_ctx) {
        ngx_http_webhook_redis_state(rd, NGX_HTTP_WEBHOOK_REDIS_TLS);

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

    ngx_http_webhook_redis_state(rd, NGX_HTTP_WEBHOOK_REDIS_HANDSHAKE);

    ngx_http_webhook_redis_send(rd);

    if (rd->connection == c && c->read->ready) {
        ngx_http_webhook_redis_read_handler(c->read);
    }
}


void
ngx_http_webhook_redis_set_ready(ngx_http_webhook_redis_t *rd)
{
    ngx_uint_t  level;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_http_webhook_redis_state(rd, NGX_HTTP_WEBHOOK_REDIS_READY);

    rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MIN;

    /* the status counts the connections that carry events */

    if (rd->was_up && rd->setup->scripts) {
        ngx_http_webhook_count_reconnect(rd->rcf->queues);
    }

    rd->was_up = 1;

    level = rd->quiet ? NGX_LOG_INFO : NGX_LOG_NOTICE;

    ngx_log_error(level, rd->log, 0, "webhook: connected to %s at %V",
                  rd->setup->role, &rd->addr_text);

    rd->quiet = 0;

    if (rd->handler->ready) {
        rd->handler->ready(rd);
    }
}


/* new commands are written when the event loop comes round */

void
ngx_http_webhook_redis_flush(ngx_http_webhook_redis_t *rd)
{
    ngx_connection_t  *c;

    c = rd->connection;

    if (c == NULL || rd->state < NGX_HTTP_WEBHOOK_REDIS_HANDSHAKE
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

    if (rd->state == NGX_HTTP_WEBHOOK_REDIS_CONNECTING) {
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
    ngx_http_webhook_redis_conf_t  *rcf;

    c = rd->connection;
    rcf = rd->rcf;

    /*
     * one WAIT at a time: Redis blocks the connection while it waits, a
     * second WAIT behind it would add its own timeout to every command
     * sent meanwhile; those are covered by the next WAIT, sent once this
     * one has answered
     */

    if (rd->setup->wait && rd->unwaited && !rd->waiting) {
        rd->unwaited = 0;
        rd->waiting = 1;

        argv[0] = "WAIT";
        argvlen[0] = 4;
        p = ngx_sprintf(nbuf, "%i", rcf->wait_replicas);
        argv[1] = (char *) nbuf;
        argvlen[1] = p - nbuf;
        p = ngx_sprintf(tbuf, "%M", rcf->wait_timeout);
        argv[2] = (char *) tbuf;
        argvlen[2] = p - tbuf;

        if (ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_WAIT,
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

    if (rd->state == NGX_HTTP_WEBHOOK_REDIS_CONNECTING) {
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
                          "webhook: %s reply buffer: %s", rd->setup->role,
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
                              "webhook: %s protocol error: %s",
                              rd->setup->role, rd->reader->errstr);
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
                  "webhook: %s at %V sent a reply past the bounds (%*s), "
                  "closing the connection", rd->setup->role, &rd->addr_text,
                  p - why, why);
}


/* Redis closed the connection, or the socket failed */

static void
ngx_http_webhook_redis_closed(ngx_http_webhook_redis_t *rd, ngx_err_t err)
{
    u_char  msg[NGX_MAX_ERROR_STR], *p;

    p = err ? ngx_strerror(err, msg, sizeof(msg))
            : ngx_cpymem(msg, "closed by the peer",
                         sizeof("closed by the peer") - 1);

    if (ngx_http_webhook_redis_busy(rd)) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: %s connection to %V lost: %*s",
                      rd->setup->role, &rd->addr_text, p - msg, msg);

    } else {
        /* nothing was waiting: "timeout" in redis.conf, a normal event */
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "webhook: %s closed the idle connection to %V "
                      "(%*s), reconnecting", rd->setup->role, &rd->addr_text,
                      p - msg, msg);

        rd->idle_closed = 1;
    }

    ngx_http_webhook_redis_close(rd, 1);
}


/*
 * Closes the connection if any and fails every command awaiting a reply;
 * then the next attempt after a backoff (when the owner wants one), and
 * the owner is told
 */

void
ngx_http_webhook_redis_close(ngx_http_webhook_redis_t *rd, ngx_uint_t lost)
{
    ngx_http_webhook_redis_shut(rd, lost);

    ngx_http_webhook_redis_fail_all(rd);

    /* unless a caller's handler connected it again meanwhile */

    if (rd->state == NGX_HTTP_WEBHOOK_REDIS_IDLE && rd->reconnect
        && !ngx_exiting && !ngx_terminate && !ngx_quit)
    {
        ngx_http_webhook_redis_state(rd, NGX_HTTP_WEBHOOK_REDIS_BACKOFF);

        if (rd->backoff == 0) {
            rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MIN;
        }

        ngx_add_timer(&rd->timer, rd->backoff);

        rd->backoff = ngx_min(rd->backoff * 2, NGX_HTTP_WEBHOOK_BACKOFF_MAX);
    }

    if (rd->handler->lost) {
        rd->handler->lost(rd);
    }
}


/* IDLE, its commands failed, no attempt planned, the owner not told */

void
ngx_http_webhook_redis_stop(ngx_http_webhook_redis_t *rd)
{
    ngx_http_webhook_redis_shut(rd, 0);
    ngx_http_webhook_redis_fail_all(rd);
}


static void
ngx_http_webhook_redis_shut(ngx_http_webhook_redis_t *rd, ngx_uint_t lost)
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

    if (rd->state != NGX_HTTP_WEBHOOK_REDIS_IDLE) {
        ngx_http_webhook_redis_state(rd, NGX_HTTP_WEBHOOK_REDIS_IDLE);
    }

    rd->generation++;
    rd->unwaited = 0;
    rd->waiting = 0;
    rd->subscribed = 0;
    rd->out_pos = 0;
    rd->out_len = 0;
}


/* the timer of the state */

static void
ngx_http_webhook_redis_timer(ngx_event_t *ev)
{
    ngx_http_webhook_redis_t  *rd = ev->data;

    switch (rd->state) {

    case NGX_HTTP_WEBHOOK_REDIS_BACKOFF:
        if (rd->handler->retry) {
            /* the owner may go elsewhere (a sentinel asked again) */
            rd->handler->retry(rd);
            return;
        }

        ngx_http_webhook_redis_connect(rd);
        return;

    case NGX_HTTP_WEBHOOK_REDIS_CONNECTING:
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: %s connect to %V timed out",
                      rd->setup->role, &rd->addr_text);
        break;

    case NGX_HTTP_WEBHOOK_REDIS_TLS:
        /* a peer that accepts and never answers: a proxy, a hung Redis */
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: %s TLS handshake with %V timed out",
                      rd->setup->role, &rd->addr_text);
        break;

    case NGX_HTTP_WEBHOOK_REDIS_HANDSHAKE:
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: %s handshake with %V timed out",
                      rd->setup->role, &rd->addr_text);
        break;

    default: /* IDLE, RESOLVING (the resolver's own timer), READY: none */
        return;
    }

    ngx_http_webhook_redis_close(rd, 1);
}
