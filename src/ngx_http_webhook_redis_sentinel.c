
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Sentinel: the primary asked of the sentinels in turn (SENTINEL
 * get-master-addr-by-name), then followed on the same connection,
 * subscribed to +switch-master and pinged so that a dead sentinel is
 * noticed; on its loss, or whenever the primary is lost or answers
 * READONLY, the next sentinel is asked again.
 *
 * The states of the sentinel link, each with at most one timer:
 *
 *   idle        none (the primary's backoff asks again)
 *   asking      the connect timeout (connect, AUTH, the question)
 *   subscribed  the ping interval; a ping unanswered at the next one is
 *               a lost sentinel
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"
#include "ngx_http_webhook_escape.h"


#define NGX_HTTP_WEBHOOK_SENTINEL_PING  1000
#define NGX_HTTP_WEBHOOK_SENTINEL_OUT   1024


typedef enum {
    ngx_http_webhook_sentinel_idle = 0,
    ngx_http_webhook_sentinel_asking,
    ngx_http_webhook_sentinel_subscribed
} ngx_http_webhook_sentinel_state_e;


struct ngx_http_webhook_sentinel_s {
    ngx_http_webhook_sentinel_state_e  state;
    ngx_peer_connection_t              peer;
    ngx_connection_t                  *connection;
    redisReader                       *reader;
    ngx_event_t                        timer;
    ngx_http_webhook_redis_t          *rd;
    ngx_addr_t                        *addrs;
    ngx_uint_t                         naddrs;
    ngx_uint_t                         current;    /* asked, or next */
    ngx_uint_t                         failed;     /* in a row */
    ngx_uint_t                         steps;      /* replies before the
                                                      address */
    ngx_uint_t                         pings;      /* unanswered */
    ngx_str_t                          answered;   /* who named it */
    u_char                             out[NGX_HTTP_WEBHOOK_SENTINEL_OUT];
    size_t                             out_pos;
    size_t                             out_len;
};


static ngx_int_t ngx_http_webhook_sentinel_open(
    ngx_http_webhook_sentinel_t *sn);
static void ngx_http_webhook_sentinel_command(
    ngx_http_webhook_sentinel_t *sn, int argc, const char **argv,
    size_t *argvlen);
static void ngx_http_webhook_sentinel_write_handler(ngx_event_t *ev);
static void ngx_http_webhook_sentinel_read_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_webhook_sentinel_reply(
    ngx_http_webhook_sentinel_t *sn, redisReply *reply);
static ngx_int_t ngx_http_webhook_sentinel_address(
    ngx_http_webhook_sentinel_t *sn, redisReply *reply);
static ngx_int_t ngx_http_webhook_sentinel_message(
    ngx_http_webhook_sentinel_t *sn, redisReply *reply);
static ngx_int_t ngx_http_webhook_sentinel_primary(
    ngx_http_webhook_sentinel_t *sn, u_char *ip, size_t iplen, u_char *port,
    size_t portlen);
static void ngx_http_webhook_sentinel_timer(ngx_event_t *ev);
static void ngx_http_webhook_sentinel_failed(ngx_http_webhook_sentinel_t *sn,
    const char *why);


ngx_int_t
ngx_http_webhook_sentinel_init(ngx_http_webhook_redis_t *rd,
    ngx_cycle_t *cycle)
{
    ngx_http_webhook_sentinel_t  *sn;

    sn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_sentinel_t));
    if (sn == NULL) {
        return NGX_ERROR;
    }

    sn->rd = rd;
    sn->addrs = rd->wmcf->sentinels->elts;
    sn->naddrs = rd->wmcf->sentinels->nelts;

    sn->timer.handler = ngx_http_webhook_sentinel_timer;
    sn->timer.data = sn;
    sn->timer.log = cycle->log;
    sn->timer.cancelable = 1;

    rd->sentinel = sn;

    return NGX_OK;
}


ngx_str_t *
ngx_http_webhook_sentinel_name(ngx_http_webhook_redis_t *rd)
{
    return rd->sentinel ? &rd->sentinel->answered : NULL;
}


/*
 * Asks the current sentinel for the primary: AUTH, the question and the
 * subscription go out together; the subscription stays.
 */

void
ngx_http_webhook_sentinel_discover(ngx_http_webhook_redis_t *rd)
{
    size_t                         argvlen[3];
    const char                    *argv[3];
    ngx_http_webhook_sentinel_t   *sn;
    ngx_http_webhook_main_conf_t  *wmcf;

    sn = rd->sentinel;
    wmcf = rd->wmcf;

    ngx_http_webhook_sentinel_close(rd);

    if (rd->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (ngx_http_webhook_sentinel_open(sn) != NGX_OK) {
        ngx_http_webhook_sentinel_failed(sn, "connect failed");
        return;
    }

    sn->state = ngx_http_webhook_sentinel_asking;
    sn->steps = 0;
    sn->pings = 0;

    ngx_add_timer(&sn->timer, wmcf->connect_timeout);

    if (wmcf->sentinel_password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (char *) wmcf->sentinel_user.data;
        argvlen[1] = wmcf->sentinel_user.len;
        argv[2] = (char *) wmcf->sentinel_password.data;
        argvlen[2] = wmcf->sentinel_password.len;

        if (wmcf->sentinel_user.len) {
            ngx_http_webhook_sentinel_command(sn, 3, argv, argvlen);

        } else {
            argv[1] = argv[2];
            argvlen[1] = argvlen[2];
            ngx_http_webhook_sentinel_command(sn, 2, argv, argvlen);
        }

        sn->steps++;
    }

    argv[0] = "SENTINEL";
    argvlen[0] = sizeof("SENTINEL") - 1;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = sizeof("get-master-addr-by-name") - 1;
    argv[2] = (char *) wmcf->sentinel_name.data;
    argvlen[2] = wmcf->sentinel_name.len;

    ngx_http_webhook_sentinel_command(sn, 3, argv, argvlen);

    argv[0] = "SUBSCRIBE";
    argvlen[0] = sizeof("SUBSCRIBE") - 1;
    argv[1] = "+switch-master";
    argvlen[1] = sizeof("+switch-master") - 1;

    ngx_http_webhook_sentinel_command(sn, 2, argv, argvlen);
}


static ngx_int_t
ngx_http_webhook_sentinel_open(ngx_http_webhook_sentinel_t *sn)
{
    ngx_int_t               rc;
    ngx_addr_t             *addr;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    addr = &sn->addrs[sn->current];
    pc = &sn->peer;

    ngx_memzero(pc, sizeof(ngx_peer_connection_t));

    pc->sockaddr = addr->sockaddr;
    pc->socklen = addr->socklen;
    pc->name = &addr->name;
    pc->get = ngx_event_get_peer;
    pc->log = sn->rd->log;
    pc->log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        return NGX_ERROR;
    }

    c = pc->connection;
    c->data = sn;
    c->read->handler = ngx_http_webhook_sentinel_read_handler;
    c->write->handler = ngx_http_webhook_sentinel_write_handler;

    sn->connection = c;
    sn->out_pos = 0;
    sn->out_len = 0;

    sn->reader = redisReaderCreate();
    if (sn->reader == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the commands are small: a fixed buffer, written when connected */

static void
ngx_http_webhook_sentinel_command(ngx_http_webhook_sentinel_t *sn, int argc,
    const char **argv, size_t *argvlen)
{
    int      i;
    u_char  *p, *last;

    p = sn->out + sn->out_len;
    last = sn->out + NGX_HTTP_WEBHOOK_SENTINEL_OUT;

    p = ngx_slprintf(p, last, "*%d\r\n", argc);

    for (i = 0; i < argc; i++) {
        p = ngx_slprintf(p, last, "$%uz\r\n%*s\r\n", argvlen[i],
                         argvlen[i], argv[i]);
    }

    sn->out_len = p - sn->out;

    if (sn->connection->write->ready) {
        ngx_http_webhook_sentinel_write_handler(sn->connection->write);
    }
}


static void
ngx_http_webhook_sentinel_write_handler(ngx_event_t *ev)
{
    ssize_t                       n;
    ngx_connection_t             *c = ev->data;
    ngx_http_webhook_sentinel_t  *sn = c->data;

    while (sn->out_pos < sn->out_len) {
        n = c->send(c, sn->out + sn->out_pos, sn->out_len - sn->out_pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_webhook_sentinel_failed(sn, "event failed");
            }

            return;
        }

        if (n <= 0) {
            ngx_http_webhook_sentinel_failed(sn, "connection failed");
            return;
        }

        sn->out_pos += n;
    }

    sn->out_pos = 0;
    sn->out_len = 0;
}


static void
ngx_http_webhook_sentinel_read_handler(ngx_event_t *ev)
{
    u_char                        buf[4096];
    ssize_t                       n;
    redisReply                   *reply;
    ngx_connection_t             *c = ev->data;
    ngx_http_webhook_sentinel_t  *sn = c->data;

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_webhook_sentinel_failed(sn, "event failed");
            }

            return;
        }

        if (n <= 0) {
            ngx_http_webhook_sentinel_failed(sn, n == 0 ? "connection closed"
                                                        : "connection failed");
            return;
        }

        if (redisReaderFeed(sn->reader, (char *) buf, n) != REDIS_OK) {
            ngx_http_webhook_sentinel_failed(sn, "reply buffer");
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(sn->reader, (void **) &reply)
                != REDIS_OK)
            {
                ngx_http_webhook_sentinel_failed(sn, "protocol error");
                return;
            }

            if (reply == NULL) {
                break;
            }

            if (ngx_http_webhook_sentinel_reply(sn, reply) != NGX_OK) {
                freeReplyObject(reply);
                ngx_http_webhook_sentinel_failed(sn, "unexpected reply");
                return;
            }

            freeReplyObject(reply);

            if (sn->connection != c) {
                return;
            }
        }
    }
}


static ngx_int_t
ngx_http_webhook_sentinel_reply(ngx_http_webhook_sentinel_t *sn,
    redisReply *reply)
{
    u_char       buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t    text;
    redisReply  *kind;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sn->rd->log, 0,
                      "webhook: redis sentinel %V: %V",
                      &sn->addrs[sn->current].name,
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));
        return NGX_ERROR;
    }

    if (sn->state == ngx_http_webhook_sentinel_asking) {
        if (sn->steps) {
            sn->steps--;
            return NGX_OK;
        }

        if (sn->answered.data == NULL
            || sn->answered.data != sn->addrs[sn->current].name.data)
        {
            sn->answered = sn->addrs[sn->current].name;
        }

        sn->state = ngx_http_webhook_sentinel_subscribed;

        if (sn->timer.timer_set) {
            ngx_del_timer(&sn->timer);
        }

        ngx_add_timer(&sn->timer, NGX_HTTP_WEBHOOK_SENTINEL_PING);

        return ngx_http_webhook_sentinel_address(sn, reply);
    }

    /* subscribed: ["subscribe", ch, n], ["pong", ""], ["message", ch, m] */

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    kind = reply->element[0];

    if (kind->len == 4 && ngx_strncasecmp((u_char *) kind->str,
                                          (u_char *) "pong", 4) == 0)
    {
        sn->pings = 0;
        return NGX_OK;
    }

    if (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0) {
        return ngx_http_webhook_sentinel_message(sn, reply);
    }

    return NGX_OK;
}


/* the answer of SENTINEL get-master-addr-by-name: [ip, port] or nil */

static ngx_int_t
ngx_http_webhook_sentinel_address(ngx_http_webhook_sentinel_t *sn,
    redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, sn->rd->log, 0,
                      "webhook: redis sentinel %V knows no master \"%V\"",
                      &sn->addrs[sn->current].name,
                      &sn->rd->wmcf->sentinel_name);
        return NGX_ERROR;
    }

    sn->failed = 0;

    return ngx_http_webhook_sentinel_primary(sn,
                                     (u_char *) reply->element[0]->str,
                                     reply->element[0]->len,
                                     (u_char *) reply->element[1]->str,
                                     reply->element[1]->len);
}


/* "+switch-master" "<name> <old-ip> <old-port> <new-ip> <new-port>" */

static ngx_int_t
ngx_http_webhook_sentinel_message(ngx_http_webhook_sentinel_t *sn,
    redisReply *reply)
{
    u_char      *p, *last, *field[5];
    u_char       buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t   *name, text;
    ngx_uint_t   i;
    redisReply  *m;

    if (reply->elements != 3 || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    m = reply->element[2];
    p = (u_char *) m->str;
    last = p + m->len;

    for (i = 0; i < 5; i++) {
        field[i] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if (i < 4) {
            if (p == last) {
                return NGX_ERROR;
            }

            p++;
        }
    }

    name = &sn->rd->wmcf->sentinel_name;

    if ((size_t) (field[1] - field[0] - 1) != name->len
        || ngx_strncmp(field[0], name->data, name->len) != 0)
    {
        /* another master of these sentinels */
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_NOTICE, sn->rd->log, 0,
                  "webhook: redis sentinel %V: +switch-master %V",
                  &sn->addrs[sn->current].name,
                  ngx_http_webhook_log_text(&text, buf, sizeof(buf), m->str,
                                            m->len));

    return ngx_http_webhook_sentinel_primary(sn, field[3],
                                             field[4] - field[3] - 1,
                                             field[4], last - field[4]);
}


/* the primary is at ip:port: the connection goes there */

static ngx_int_t
ngx_http_webhook_sentinel_primary(ngx_http_webhook_sentinel_t *sn,
    u_char *ip, size_t iplen, u_char *port, size_t portlen)
{
    u_char                    *p;
    u_char                     buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_int_t                  n;
    ngx_str_t                  text;
    ngx_addr_t                 addr;
    ngx_pool_t                *pool;
    ngx_http_webhook_redis_t  *rd;

    rd = sn->rd;

    n = ngx_atoi(port, portlen);
    if (n < 1 || n > 65535 || iplen >= NGX_SOCKADDR_STRLEN - 8) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(1024, rd->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_parse_addr(pool, &addr, ip, iplen) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis sentinel %V names the primary "
                      "\"%V\", not an address", &sn->addrs[sn->current].name,
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf), ip,
                                                iplen));
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_inet_set_port(addr.sockaddr, (in_port_t) n);

    if (rd->state != ngx_http_webhook_redis_disconnected
        && rd->socklen == addr.socklen
        && ngx_cmp_sockaddr(rd->sockaddr, rd->socklen, addr.sockaddr,
                            addr.socklen, 1)
           == NGX_OK)
    {
        /* connected or connecting there already */
        ngx_destroy_pool(pool);
        return NGX_OK;
    }

    ngx_memcpy(&rd->sockaddr_buf, addr.sockaddr, addr.socklen);
    rd->sockaddr = &rd->sockaddr_buf.sockaddr;
    rd->socklen = addr.socklen;

    ngx_destroy_pool(pool);

    p = ngx_cpymem(rd->addr_buf, ip, iplen);
    rd->host.data = rd->addr_buf;
    rd->host.len = iplen;
    *p++ = '\0';

    rd->addr_text.data = p;
    rd->addr_text.len = ngx_sprintf(p, "%*s:%i", iplen, ip, n) - p;

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "webhook: redis sentinel %V: the primary of \"%V\" is %V",
                  &sn->addrs[sn->current].name, &rd->wmcf->sentinel_name,
                  &rd->addr_text);

    /* what was in flight on the old primary has an unknown outcome */

    if (rd->state != ngx_http_webhook_redis_disconnected) {
        ngx_http_webhook_redis_close(rd, 1);
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_http_webhook_redis_connect(rd);

    return NGX_OK;
}


static void
ngx_http_webhook_sentinel_timer(ngx_event_t *ev)
{
    size_t                        argvlen[1];
    const char                   *argv[1];
    ngx_http_webhook_sentinel_t  *sn = ev->data;

    switch (sn->state) {

    case ngx_http_webhook_sentinel_asking:
        ngx_http_webhook_sentinel_failed(sn, "timed out");
        return;

    case ngx_http_webhook_sentinel_subscribed:
        if (sn->pings) {
            ngx_http_webhook_sentinel_failed(sn, "PING not answered");
            return;
        }

        argv[0] = "PING";
        argvlen[0] = 4;

        sn->pings++;
        ngx_http_webhook_sentinel_command(sn, 1, argv, argvlen);

        if (sn->state == ngx_http_webhook_sentinel_subscribed) {
            ngx_add_timer(&sn->timer, NGX_HTTP_WEBHOOK_SENTINEL_PING);
        }

        return;

    default: /* idle: ask again */
        ngx_http_webhook_sentinel_discover(sn->rd);
    }
}


/*
 * The sentinel link failed: the next sentinel is asked at once, a round
 * of failures waits for the primary's backoff (or a second when there
 * is no primary to wait for)
 */

static void
ngx_http_webhook_sentinel_failed(ngx_http_webhook_sentinel_t *sn,
    const char *why)
{
    ngx_http_webhook_redis_t  *rd;

    rd = sn->rd;

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "webhook: redis sentinel %V: %s, asking the next one",
                  &sn->addrs[sn->current].name, why);

    ngx_http_webhook_sentinel_close(rd);

    sn->current = (sn->current + 1) % sn->naddrs;
    sn->failed++;

    if (rd->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (sn->failed % sn->naddrs) {
        ngx_http_webhook_sentinel_discover(rd);
        return;
    }

    /* every sentinel failed in a row: a little later */

    ngx_add_timer(&sn->timer, NGX_HTTP_WEBHOOK_SENTINEL_PING);
}


void
ngx_http_webhook_sentinel_close(ngx_http_webhook_redis_t *rd)
{
    ngx_http_webhook_sentinel_t  *sn;

    sn = rd->sentinel;

    if (sn == NULL) {
        return;
    }

    if (sn->connection) {
        ngx_close_connection(sn->connection);
        sn->connection = NULL;
    }

    if (sn->reader) {
        redisReaderFree(sn->reader);
        sn->reader = NULL;
    }

    if (sn->timer.timer_set) {
        ngx_del_timer(&sn->timer);
    }

    sn->state = ngx_http_webhook_sentinel_idle;
}
