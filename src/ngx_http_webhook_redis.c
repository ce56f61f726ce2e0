
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The Redis connection of a worker: hiredis's async API driven by
 * nginx's event loop (an adapter over an ngx_connection_t), the
 * handshake (AUTH, SELECT, SCRIPT LOAD), the connect timeout over both
 * and the reconnection with a capped backoff.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis.h"
#include "ngx_http_webhook_stats.h"


#define NGX_HTTP_WEBHOOK_BACKOFF_MIN  100
#define NGX_HTTP_WEBHOOK_BACKOFF_MAX  2000

/* commands up to this size are formatted here, not by hiredis */
#define NGX_HTTP_WEBHOOK_CMD_BUF      65536


struct ngx_http_webhook_cmd_s {
    ngx_http_webhook_reply_pt      handler;
    void                          *data;
    ngx_http_webhook_script_t     *script;
    int                            argc;
    const char                   **argv;
    size_t                        *argvlen;
    unsigned                       retried:1;
};


typedef struct {
    redisAsyncContext             *ac;
    ngx_connection_t              *connection;
    ngx_http_webhook_main_conf_t  *wmcf;
    ngx_log_t                     *log;
    ngx_event_t                    connect_timer;
    ngx_event_t                    reconnect_timer;
    ngx_msec_t                     backoff;
    u_char                        *buf;         /* CMD_BUF bytes */
    unsigned                       ready:1;
    unsigned                       exiting:1;
    unsigned                       was_up:1;
    unsigned                       lost_pending:1;  /* got no answer */
    unsigned                       idle_closed:1;   /* by Redis */
    unsigned                       quiet:1;         /* the reconnect */
} ngx_http_webhook_redis_t;


static void ngx_http_webhook_redis_connect(ngx_http_webhook_redis_t *rd);
static ngx_int_t ngx_http_webhook_redis_attach(ngx_http_webhook_redis_t *rd,
    redisAsyncContext *ac);
static void ngx_http_webhook_redis_handshake(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_handshake_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static int ngx_http_webhook_redis_send(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd);
static u_char *ngx_http_webhook_redis_bulk_len(u_char *p, size_t len);
static void ngx_http_webhook_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_uint_t ngx_http_webhook_redis_noscript(redisReply *reply);
static void ngx_http_webhook_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_webhook_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_webhook_redis_close(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_schedule(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_webhook_redis_reconnect(ngx_event_t *ev);

static void ngx_http_webhook_redis_read_handler(ngx_event_t *ev);
static void ngx_http_webhook_redis_write_handler(ngx_event_t *ev);
static void ngx_http_webhook_redis_add_read(void *privdata);
static void ngx_http_webhook_redis_del_read(void *privdata);
static void ngx_http_webhook_redis_add_write(void *privdata);
static void ngx_http_webhook_redis_del_write(void *privdata);
static void ngx_http_webhook_redis_event(ngx_http_webhook_redis_t *rd,
    ngx_event_t *ev, ngx_int_t event, ngx_uint_t add);
static void ngx_http_webhook_redis_cleanup(void *privdata);


static ngx_http_webhook_redis_t  *ngx_http_webhook_redis;


ngx_int_t
ngx_http_webhook_redis_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_redis_t));
    if (rd == NULL) {
        return NGX_ERROR;
    }

    rd->buf = ngx_palloc(cycle->pool, NGX_HTTP_WEBHOOK_CMD_BUF);
    if (rd->buf == NULL) {
        return NGX_ERROR;
    }

    rd->wmcf = wmcf;
    rd->log = cycle->log;
    rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MIN;

    rd->connect_timer.handler = ngx_http_webhook_redis_connect_timeout;
    rd->connect_timer.data = rd;
    rd->connect_timer.log = cycle->log;
    rd->connect_timer.cancelable = 1;

    rd->reconnect_timer.handler = ngx_http_webhook_redis_reconnect;
    rd->reconnect_timer.data = rd;
    rd->reconnect_timer.log = cycle->log;
    rd->reconnect_timer.cancelable = 1;

    ngx_http_webhook_redis = rd;

    /*
     * the cached time is the master's from before it read the
     * configuration: a connect timer armed from it could expire before
     * the handshake had a chance to be answered
     */

    ngx_time_update();

    ngx_http_webhook_redis_connect(rd);

    return NGX_OK;
}


void
ngx_http_webhook_redis_exit(ngx_cycle_t *cycle)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_http_webhook_redis;
    if (rd == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "webhook: closing the redis connection");

    rd->exiting = 1;

    if (rd->reconnect_timer.timer_set) {
        ngx_del_timer(&rd->reconnect_timer);
    }

    ngx_http_webhook_redis_close(rd);

    ngx_http_webhook_redis = NULL;
}


ngx_uint_t
ngx_http_webhook_redis_up(void)
{
    return ngx_http_webhook_redis != NULL && ngx_http_webhook_redis->ready;
}


ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_eval(ngx_http_webhook_script_t *script, int argc,
    const char **argv, size_t *argvlen, ngx_http_webhook_reply_pt handler,
    void *data)
{
    ngx_http_webhook_cmd_t    *cmd;
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_http_webhook_redis;

    if (rd == NULL || rd->ac == NULL) {
        return NULL;
    }

    cmd = ngx_alloc(sizeof(ngx_http_webhook_cmd_t), rd->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->script = script;
    cmd->argc = argc;
    cmd->argv = argv;
    cmd->argvlen = argvlen;
    cmd->retried = 0;

    if (script) {
        argv[0] = "EVALSHA";
        argvlen[0] = sizeof("EVALSHA") - 1;
        argv[1] = (char *) script->sha;
        argvlen[1] = sizeof(script->sha);
    }

    if (ngx_http_webhook_redis_send(rd, cmd) != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis command not sent: %s",
                      rd->ac->errstr[0] ? rd->ac->errstr : "disconnecting");
        ngx_free(cmd);
        return NULL;
    }

    return cmd;
}


/*
 * hiredis formats an argv command with sdscatfmt() and reallocations,
 * then copies it to its output buffer.  A command that fits the worker's
 * buffer is written there in RESP at once and handed over formatted: one
 * copy, no allocation.
 */

static int
ngx_http_webhook_redis_send(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd)
{
    int      i;
    u_char  *p;
    size_t   len;

    len = sizeof("*\r\n") - 1 + NGX_INT_T_LEN;

    for (i = 0; i < cmd->argc; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + cmd->argvlen[i];
    }

    if (len > NGX_HTTP_WEBHOOK_CMD_BUF) {
        return redisAsyncCommandArgv(rd->ac, ngx_http_webhook_redis_reply,
                                     cmd, cmd->argc, cmd->argv,
                                     cmd->argvlen);
    }

    p = rd->buf;
    *p++ = '*';
    p = ngx_http_webhook_redis_bulk_len(p, cmd->argc);

    for (i = 0; i < cmd->argc; i++) {
        *p++ = '$';
        p = ngx_http_webhook_redis_bulk_len(p, cmd->argvlen[i]);
        p = ngx_cpymem(p, cmd->argv[i], cmd->argvlen[i]);
        *p++ = CR;
        *p++ = LF;
    }

    return redisAsyncFormattedCommand(rd->ac, ngx_http_webhook_redis_reply,
                                      cmd, (char *) rd->buf, p - rd->buf);
}


/* "<len>\r\n": ngx_sprintf() costs twice the instructions per command */

static u_char *
ngx_http_webhook_redis_bulk_len(u_char *p, size_t len)
{
    u_char   digits[NGX_SIZE_T_LEN];
    u_char  *d;

    d = digits + NGX_SIZE_T_LEN;

    do {
        *--d = (u_char) ('0' + len % 10);
        len /= 10;
    } while (len);

    p = ngx_cpymem(p, d, digits + NGX_SIZE_T_LEN - d);
    *p++ = CR;
    *p++ = LF;

    return p;
}


void
ngx_http_webhook_redis_cancel(ngx_http_webhook_cmd_t *cmd)
{
    /* the reply callback frees it */
    cmd->handler = NULL;
    cmd->data = NULL;
}


void
ngx_http_webhook_redis_timed_out(void)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_http_webhook_redis;

    if (rd == NULL || rd->ac == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "webhook: redis timed out, closing the connection");

    ngx_http_webhook_redis_close(rd);
}


static void
ngx_http_webhook_redis_connect(ngx_http_webhook_redis_t *rd)
{
    redisAsyncContext             *ac;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = rd->wmcf;

    /* only the attempt right after an idle close is quiet */

    rd->quiet = rd->idle_closed;
    rd->idle_closed = 0;

    if (wmcf->port == 0) {
        ac = redisAsyncConnectUnix((char *) wmcf->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) wmcf->host.data, (int) wmcf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis context allocation failed");
        ngx_http_webhook_redis_schedule(rd);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis connect to %V failed: %s",
                      &wmcf->addr_text, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_webhook_redis_schedule(rd);
        return;
    }

    if (ngx_http_webhook_redis_attach(rd, ac) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_webhook_redis_schedule(rd);
        return;
    }

    /* the hooks are in place: now hiredis may arm the write event */

    redisAsyncSetConnectCallback(ac, ngx_http_webhook_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_webhook_redis_on_disconnect);

    ngx_add_timer(&rd->connect_timer, wmcf->connect_timeout);

    ngx_http_webhook_redis_handshake(rd);
}


static ngx_int_t
ngx_http_webhook_redis_attach(ngx_http_webhook_redis_t *rd,
    redisAsyncContext *ac)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = rd;
    c->log = rd->log;
    c->read->log = rd->log;
    c->write->log = rd->log;
    c->read->handler = ngx_http_webhook_redis_read_handler;
    c->write->handler = ngx_http_webhook_redis_write_handler;

    rd->ac = ac;
    rd->connection = c;
    rd->ready = 0;
    rd->lost_pending = 0;

    ac->data = rd;
    ac->ev.data = rd;
    ac->ev.addRead = ngx_http_webhook_redis_add_read;
    ac->ev.delRead = ngx_http_webhook_redis_del_read;
    ac->ev.addWrite = ngx_http_webhook_redis_add_write;
    ac->ev.delWrite = ngx_http_webhook_redis_del_write;
    ac->ev.cleanup = ngx_http_webhook_redis_cleanup;

    return NGX_OK;
}


static void
ngx_http_webhook_redis_handshake(ngx_http_webhook_redis_t *rd)
{
    int                            argc;
    u_char                        *p;
    size_t                         argvlen[3];
    const char                    *argv[3];
    u_char                         db[NGX_INT_T_LEN];
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = rd->wmcf;

    /*
     * commands sent while connecting are buffered by hiredis and go out
     * first, before any command of a request
     */

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

        redisAsyncCommandArgv(rd->ac, ngx_http_webhook_redis_handshake_reply,
                              "AUTH", argc, argv, argvlen);
    }

    if (wmcf->db) {
        p = ngx_sprintf(db, "%i", wmcf->db);

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = p - db;

        redisAsyncCommandArgv(rd->ac, ngx_http_webhook_redis_handshake_reply,
                              "SELECT", 2, argv, argvlen);
    }

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = (char *) wmcf->enqueue.text.data;
    argvlen[2] = wmcf->enqueue.text.len;

    redisAsyncCommandArgv(rd->ac, ngx_http_webhook_redis_handshake_reply,
                          "SCRIPT LOAD", 3, argv, argvlen);

    argv[2] = (char *) wmcf->status.text.data;
    argvlen[2] = wmcf->status.text.len;

    redisAsyncCommandArgv(rd->ac, ngx_http_webhook_redis_handshake_reply,
                          "SCRIPT LOAD", 3, argv, argvlen);
}


static void
ngx_http_webhook_redis_handshake_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                *rr = reply;
    ngx_uint_t                 level;
    ngx_http_webhook_redis_t  *rd;

    rd = ac->data;

    if (rr == NULL) {
        rd->lost_pending = 1;
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis %s failed: %*s",
                      (char *) privdata, (size_t) rr->len, rr->str);

        /* deferred by hiredis until this callback returns */
        redisAsyncFree(ac);
        return;
    }

    if (ngx_strcmp((char *) privdata, "SCRIPT LOAD") == 0 && !rd->ready) {
        /* every step of the handshake went through */

        if (rd->connect_timer.timer_set) {
            ngx_del_timer(&rd->connect_timer);
        }

        rd->ready = 1;
        rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MIN;

        if (rd->was_up) {
            ngx_http_webhook_count_reconnect(rd->wmcf);
        }

        rd->was_up = 1;

        level = rd->quiet ? NGX_LOG_INFO : NGX_LOG_NOTICE;

        ngx_log_error(level, rd->log, 0, "webhook: connected to redis at %V",
                      &rd->wmcf->addr_text);

        rd->quiet = 0;
    }
}


static void
ngx_http_webhook_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_webhook_cmd_t  *cmd = privdata;

    ngx_http_webhook_redis_t  *rd;

    rd = ac->data;

    if (reply == NULL) {
        rd->lost_pending = 1;
    }

    if (cmd->handler == NULL) {
        /* its request went away (timed out or closed) */
        ngx_free(cmd);
        return;
    }

    if (reply == NULL) {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "webhook: redis command failed: %s",
                      ac->errstr[0] ? ac->errstr : "connection closed");

    } else if (cmd->script && !cmd->retried
               && ngx_http_webhook_redis_noscript(reply))
    {

        /* the script cache was flushed: send the script itself */

        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = sizeof("EVAL") - 1;
        cmd->argv[1] = (char *) cmd->script->text.data;
        cmd->argvlen[1] = cmd->script->text.len;

        if (ngx_http_webhook_redis_send(rd, cmd) == REDIS_OK) {
            return;
        }

        reply = NULL;
    }

    cmd->handler(cmd->data, reply);

    ngx_free(cmd);
}


static ngx_uint_t
ngx_http_webhook_redis_noscript(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR
           && reply->len >= sizeof("NOSCRIPT") - 1
           && ngx_strncmp(reply->str, "NOSCRIPT", sizeof("NOSCRIPT") - 1)
              == 0;
}


static void
ngx_http_webhook_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ac->data;

    /* on success the connect timer goes on: it covers the handshake */

    if (status != REDIS_OK) {
        /* hiredis frees the context itself, the cleanup hook follows */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis connect to %V failed: %s",
                      &rd->wmcf->addr_text, ac->errstr);
    }
}


static void
ngx_http_webhook_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ac->data;

    if (status == REDIS_OK || rd->exiting) {
        /* closed by us */
        return;
    }

    /* hiredis has failed the pending commands already */

    if (rd->lost_pending) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis connection to %V lost: %s",
                      &rd->wmcf->addr_text, ac->errstr);
        return;
    }

    /* nothing was waiting: "timeout" in redis.conf, a normal event */

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "webhook: redis closed the idle connection to %V (%s), "
                  "reconnecting", &rd->wmcf->addr_text, ac->errstr);

    rd->idle_closed = 1;
}


static void
ngx_http_webhook_redis_close(ngx_http_webhook_redis_t *rd)
{
    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    if (rd->ac) {
        /*
         * outside of a hiredis callback this runs at once: pending
         * commands fail (their handlers get NULL), then the cleanup hook
         */
        redisAsyncFree(rd->ac);
    }
}


static void
ngx_http_webhook_redis_schedule(ngx_http_webhook_redis_t *rd)
{
    if (rd->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rd->reconnect_timer.timer_set) {
        return;
    }

    ngx_add_timer(&rd->reconnect_timer, rd->backoff);

    rd->backoff *= 2;
    if (rd->backoff > NGX_HTTP_WEBHOOK_BACKOFF_MAX) {
        rd->backoff = NGX_HTTP_WEBHOOK_BACKOFF_MAX;
    }
}


static void
ngx_http_webhook_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_redis_t  *rd = ev->data;

    if (rd->ac && (rd->ac->c.flags & REDIS_CONNECTED)) {
        /* a peer that accepts and never answers: a proxy, a hung Redis */
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: redis handshake with %V timed out",
                      &rd->wmcf->addr_text);

    } else {
        ngx_log_error(NGX_LOG_ERR, rd->log, NGX_ETIMEDOUT,
                      "webhook: redis connect to %V timed out",
                      &rd->wmcf->addr_text);
    }

    ngx_http_webhook_redis_close(rd);
}


static void
ngx_http_webhook_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_webhook_redis_t  *rd = ev->data;

    if (rd->ac == NULL && !rd->exiting) {
        ngx_http_webhook_redis_connect(rd);
    }
}


/* the event adapter */


static void
ngx_http_webhook_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_webhook_redis_t  *rd = c->data;

    if (rd->ac) {
        redisAsyncHandleRead(rd->ac);
    }
}


static void
ngx_http_webhook_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_webhook_redis_t  *rd = c->data;

    if (rd->ac) {
        redisAsyncHandleWrite(rd->ac);
    }
}


/*
 * level-triggered registration (flags 0): hiredis reads at most 16K
 * a call, leftover bytes must wake us up again
 */

static void
ngx_http_webhook_redis_add_read(void *privdata)
{
    ngx_http_webhook_redis_t  *rd = privdata;

    ngx_http_webhook_redis_event(rd, rd->connection->read, NGX_READ_EVENT, 1);
}


static void
ngx_http_webhook_redis_del_read(void *privdata)
{
    ngx_http_webhook_redis_t  *rd = privdata;

    ngx_http_webhook_redis_event(rd, rd->connection->read, NGX_READ_EVENT, 0);
}


static void
ngx_http_webhook_redis_add_write(void *privdata)
{
    ngx_http_webhook_redis_t  *rd = privdata;

    ngx_http_webhook_redis_event(rd, rd->connection->write, NGX_WRITE_EVENT,
                                 1);
}


static void
ngx_http_webhook_redis_del_write(void *privdata)
{
    ngx_http_webhook_redis_t  *rd = privdata;

    ngx_http_webhook_redis_event(rd, rd->connection->write, NGX_WRITE_EVENT,
                                 0);
}


/* hiredis calls the hooks again and again: they must be idempotent */

static void
ngx_http_webhook_redis_event(ngx_http_webhook_redis_t *rd, ngx_event_t *ev,
    ngx_int_t event, ngx_uint_t add)
{
    if (add && !ev->active) {
        if (ngx_add_event(ev, event, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                          "webhook: adding a redis event failed");
        }

    } else if (!add && ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


static void
ngx_http_webhook_redis_cleanup(void *privdata)
{
    ngx_http_webhook_redis_t  *rd = privdata;

    if (rd->connection == NULL) {
        return;
    }

    ngx_close_connection(rd->connection);

    /* redisFree() must not close the descriptor a second time */
    rd->ac->c.fd = -1;

    rd->connection = NULL;
    rd->ac = NULL;
    rd->ready = 0;

    if (rd->connect_timer.timer_set) {
        ngx_del_timer(&rd->connect_timer);
    }

    ngx_http_webhook_redis_schedule(rd);
}
