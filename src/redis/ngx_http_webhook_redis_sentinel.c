
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Sentinel: the primary asked of the sentinels in turn (SENTINEL
 * get-master-addr-by-name), then followed on the same link, subscribed
 * to +switch-master and pinged so that a dead sentinel is noticed; on its
 * loss, or whenever the primary is lost or answers READONLY, the next
 * sentinel is asked again.  The link is a Redis connection like the
 * primary's (ngx_http_webhook_redis_conn.h): the same formatter, bounds,
 * timers, and TLS with webhook_redis_ssl's settings; its handshake sends
 * the sentinels' AUTH only.
 *
 * The states of the sentinels, each with at most one timer (sn->timer;
 * the link has its own while it connects):
 *
 *   IDLE        none (not started, the worker exiting)
 *   WAITING     every sentinel failed in a row: a second, then the next
 *   ASKING      the link connecting (its own timers), then the question
 *               (the connect timeout)
 *   SUBSCRIBED  the ping interval; a ping unanswered at the next one is a
 *               lost sentinel
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_topology.h"
#include "core/ngx_http_webhook_core.h"


#define NGX_HTTP_WEBHOOK_SENTINEL_PING  1000


typedef enum {
    NGX_HTTP_WEBHOOK_SENTINEL_IDLE = 0,
    NGX_HTTP_WEBHOOK_SENTINEL_WAITING,
    NGX_HTTP_WEBHOOK_SENTINEL_ASKING,
    NGX_HTTP_WEBHOOK_SENTINEL_SUBSCRIBED
} ngx_http_webhook_sentinel_state_e;


typedef struct {
    ngx_http_webhook_primary_t          primary;    /* first: the primary's
                                                       callbacks take it */
    ngx_http_webhook_sentinel_state_e   state;
    ngx_http_webhook_redis_t           *link;
    ngx_http_webhook_redis_setup_t      link_setup;
    ngx_http_webhook_redis_conf_t       *rcf;
    ngx_log_t                          *log;
    ngx_event_t                         timer;
    ngx_addr_t                         *addrs;
    ngx_uint_t                          naddrs;
    ngx_uint_t                          current;    /* asked, or next */
    ngx_uint_t                          failed;     /* in a row */
    ngx_uint_t                          pings;      /* unanswered */
    ngx_str_t                           answered;   /* who named it */
} ngx_http_webhook_sentinel_t;


static void *ngx_http_webhook_sentinel_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf);
static void ngx_http_webhook_sentinel_exit(void *data);
static void ngx_http_webhook_sentinel_addresses(void *data,
    ngx_str_t *primary, ngx_str_t *sentinel);

static void ngx_http_webhook_sentinel_state(ngx_http_webhook_sentinel_t *sn,
    ngx_http_webhook_sentinel_state_e state);
static void ngx_http_webhook_sentinel_discover(
    ngx_http_webhook_sentinel_t *sn);
static void ngx_http_webhook_sentinel_ask(ngx_http_webhook_redis_t *link);
static void ngx_http_webhook_sentinel_link_lost(
    ngx_http_webhook_redis_t *link);
static void ngx_http_webhook_sentinel_address(void *data,
    redisReply *reply, ngx_uint_t failure);
static void ngx_http_webhook_sentinel_subscribed(void *data,
    redisReply *reply, ngx_uint_t failure);
static void ngx_http_webhook_sentinel_pong(void *data,
    redisReply *reply, ngx_uint_t failure);
static void ngx_http_webhook_sentinel_message(ngx_http_webhook_redis_t *link,
    redisReply *reply);
static ngx_int_t ngx_http_webhook_sentinel_primary(
    ngx_http_webhook_sentinel_t *sn, u_char *ip, size_t iplen, u_char *port,
    size_t portlen);
static void ngx_http_webhook_sentinel_timer(ngx_event_t *ev);
static void ngx_http_webhook_sentinel_failed(ngx_http_webhook_sentinel_t *sn,
    const char *why);
static void ngx_http_webhook_sentinel_retry(ngx_http_webhook_redis_t *rd);
static ngx_uint_t ngx_http_webhook_sentinel_quit(
    ngx_http_webhook_sentinel_t *sn);


ngx_http_webhook_topology_t  ngx_http_webhook_topology_sentinel = {
    "sentinel",
    ngx_http_webhook_sentinel_init,
    ngx_http_webhook_sentinel_exit,
    NULL,
    NULL,
    NULL,
    ngx_http_webhook_sentinel_addresses,
    NULL,
    NULL
};


/* the primary's connection: a loss or READONLY asks the sentinels again */

static ngx_http_webhook_redis_handler_t  ngx_http_webhook_sentinel_primary_h = {
    NULL,
    NULL,
    ngx_http_webhook_sentinel_retry,
    ngx_http_webhook_primary_error,
    NULL
};


static ngx_http_webhook_redis_handler_t  ngx_http_webhook_sentinel_link_h = {
    ngx_http_webhook_sentinel_ask,
    ngx_http_webhook_sentinel_link_lost,
    NULL,
    NULL,
    ngx_http_webhook_sentinel_message
};


#if (NGX_DEBUG)
/* the states by name, for the debug log */
static char  *ngx_http_webhook_sentinel_states[] = {
    "IDLE", "WAITING", "ASKING", "SUBSCRIBED"
};
#endif


static void *
ngx_http_webhook_sentinel_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf)
{
    ngx_http_webhook_sentinel_t  *sn;

    sn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_sentinel_t));
    if (sn == NULL) {
        return NULL;
    }

    sn->rcf = rcf;
    sn->log = cycle->log;
    sn->addrs = rcf->sentinels->elts;
    sn->naddrs = rcf->sentinels->nelts;

    /* what a sentinel names is checked before anything is written */

    if (ngx_http_webhook_primary_init(&sn->primary, cycle, rcf,
                                      &ngx_http_webhook_sentinel_primary_h)
        != NGX_OK)
    {
        return NULL;
    }

    sn->primary.setup.check_role = 1;
    sn->primary.follow = "asking the sentinels";

    /* until a sentinel names the primary: its name */

    sn->primary.rd->addr_text = rcf->sentinel_name;

    sn->link_setup.role = "redis sentinel";
    sn->link_setup.user = rcf->sentinel_user;
    sn->link_setup.password = rcf->sentinel_password;

    sn->link = ngx_http_webhook_redis_create(cycle, rcf, &sn->link_setup,
                      &ngx_http_webhook_sentinel_link_h, sn);
    if (sn->link == NULL) {
        return NULL;
    }

    sn->timer.handler = ngx_http_webhook_sentinel_timer;
    sn->timer.data = sn;
    sn->timer.log = cycle->log;
    sn->timer.cancelable = 1;

    ngx_http_webhook_sentinel_discover(sn);

    return sn;
}


static void
ngx_http_webhook_sentinel_exit(void *data)
{
    ngx_http_webhook_sentinel_t  *sn = data;

    ngx_http_webhook_sentinel_state(sn, NGX_HTTP_WEBHOOK_SENTINEL_IDLE);

    if (sn->timer.timer_set) {
        ngx_del_timer(&sn->timer);
    }

    ngx_http_webhook_redis_destroy(sn->link);
    ngx_http_webhook_redis_destroy(sn->primary.rd);

    sn->link = NULL;
    sn->primary.rd = NULL;
}


static void
ngx_http_webhook_sentinel_addresses(void *data, ngx_str_t *primary,
    ngx_str_t *sentinel)
{
    ngx_http_webhook_sentinel_t  *sn = data;

    *primary = sn->primary.rd->addr_text;
    *sentinel = sn->answered;
}


static void
ngx_http_webhook_sentinel_state(ngx_http_webhook_sentinel_t *sn,
    ngx_http_webhook_sentinel_state_e state)
{
    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sn->log, 0,
                   "webhook: redis sentinel %V: %s -> %s",
                   &sn->addrs[sn->current].name,
                   ngx_http_webhook_sentinel_states[sn->state],
                   ngx_http_webhook_sentinel_states[state]);

    sn->state = state;
}


/* the current sentinel is connected to, then asked */

static void
ngx_http_webhook_sentinel_discover(ngx_http_webhook_sentinel_t *sn)
{
    ngx_addr_t  *addr;

    ngx_http_webhook_redis_stop(sn->link);

    if (sn->timer.timer_set) {
        ngx_del_timer(&sn->timer);
    }

    if (ngx_http_webhook_sentinel_quit(sn)) {
        ngx_http_webhook_sentinel_state(sn, NGX_HTTP_WEBHOOK_SENTINEL_IDLE);
        return;
    }

    addr = &sn->addrs[sn->current];

    ngx_http_webhook_sentinel_state(sn, NGX_HTTP_WEBHOOK_SENTINEL_ASKING);

    ngx_http_webhook_redis_address(sn->link, addr->sockaddr, addr->socklen,
                                   NULL, &addr->name);
    ngx_http_webhook_redis_connect(sn->link);
}


/*
 * The link is ready (AUTH passed): the question and the subscription go
 * out together; the subscription stays
 */

static void
ngx_http_webhook_sentinel_ask(ngx_http_webhook_redis_t *link)
{
    ngx_http_webhook_sentinel_t  *sn = link->data;

    size_t       argvlen[3];
    const char  *argv[3];

    sn->pings = 0;

    argv[0] = "SENTINEL";
    argvlen[0] = sizeof("SENTINEL") - 1;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = sizeof("get-master-addr-by-name") - 1;
    argv[2] = (char *) sn->rcf->sentinel_name.data;
    argvlen[2] = sn->rcf->sentinel_name.len;

    if (ngx_http_webhook_redis_command(link, NULL, 0, 3, argv, argvlen,
                                       ngx_http_webhook_sentinel_address, sn)
        == NULL)
    {
        ngx_http_webhook_sentinel_failed(sn, "no memory");
        return;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = sizeof("SUBSCRIBE") - 1;
    argv[1] = "+switch-master";
    argvlen[1] = sizeof("+switch-master") - 1;

    if (ngx_http_webhook_redis_command(link, NULL, 0, 2, argv, argvlen,
                                       ngx_http_webhook_sentinel_subscribed,
                                       sn)
        == NULL)
    {
        ngx_http_webhook_sentinel_failed(sn, "no memory");
        return;
    }

    /* its messages are no answer to a command */

    link->subscribed = 1;

    /* the question's timer */

    ngx_add_timer(&sn->timer, sn->rcf->connect_timeout);
}


static void
ngx_http_webhook_sentinel_link_lost(ngx_http_webhook_redis_t *link)
{
    ngx_http_webhook_sentinel_t  *sn = link->data;

    if (sn->state == NGX_HTTP_WEBHOOK_SENTINEL_ASKING
        || sn->state == NGX_HTTP_WEBHOOK_SENTINEL_SUBSCRIBED)
    {
        ngx_http_webhook_sentinel_failed(sn, "connection failed");
    }
}


/* the answer of SENTINEL get-master-addr-by-name: [ip, port] or nil */

static void
ngx_http_webhook_sentinel_address(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_sentinel_t  *sn = data;

    u_char     buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t  text;

    (void) failure;              /* the reply says all */

    if (reply == NULL) {
        /* the link was lost: link_lost() goes on */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sn->log, 0,
                      "webhook: redis sentinel %V: %V",
                      &sn->addrs[sn->current].name,
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));
        ngx_http_webhook_sentinel_failed(sn, "error reply");
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, sn->log, 0,
                      "webhook: redis sentinel %V knows no master \"%V\"",
                      &sn->addrs[sn->current].name, &sn->rcf->sentinel_name);
        ngx_http_webhook_sentinel_failed(sn, "unexpected reply");
        return;
    }

    sn->failed = 0;
    sn->answered = sn->addrs[sn->current].name;

    ngx_http_webhook_sentinel_state(sn, NGX_HTTP_WEBHOOK_SENTINEL_SUBSCRIBED);

    if (sn->timer.timer_set) {
        ngx_del_timer(&sn->timer);
    }

    ngx_add_timer(&sn->timer, NGX_HTTP_WEBHOOK_SENTINEL_PING);

    if (ngx_http_webhook_sentinel_primary(sn,
                                          (u_char *) reply->element[0]->str,
                                          reply->element[0]->len,
                                          (u_char *) reply->element[1]->str,
                                          reply->element[1]->len)
        != NGX_OK)
    {
        ngx_http_webhook_sentinel_failed(sn, "unexpected reply");
    }
}


/* ["subscribe", "+switch-master", 1] */

static void
ngx_http_webhook_sentinel_subscribed(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_sentinel_t  *sn = data;

    (void) failure;              /* the reply says all */

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_webhook_sentinel_failed(sn, "SUBSCRIBE refused");
    }
}


/* ["pong", ""], subscribed */

static void
ngx_http_webhook_sentinel_pong(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_sentinel_t  *sn = data;

    (void) failure;              /* the reply says all */

    if (reply && reply->type != REDIS_REPLY_ERROR) {
        sn->pings = 0;
    }
}


/* "+switch-master" "<name> <old-ip> <old-port> <new-ip> <new-port>" */

static void
ngx_http_webhook_sentinel_message(ngx_http_webhook_redis_t *link,
    redisReply *reply)
{
    ngx_http_webhook_sentinel_t  *sn = link->data;

    u_char      *p, *last, *field[5];
    u_char       buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t   *name, text;
    ngx_uint_t   i;
    redisReply  *m;

    m = reply->element[2];

    if (m->type != REDIS_REPLY_STRING) {
        ngx_http_webhook_sentinel_failed(sn, "unexpected message");
        return;
    }

    p = (u_char *) m->str;
    last = p + m->len;

    for (i = 0; i < 5; i++) {
        field[i] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if (i < 4) {
            if (p == last) {
                ngx_http_webhook_sentinel_failed(sn, "unexpected message");
                return;
            }

            p++;
        }
    }

    name = &sn->rcf->sentinel_name;

    if ((size_t) (field[1] - field[0] - 1) != name->len
        || ngx_strncmp(field[0], name->data, name->len) != 0)
    {
        /* another master of these sentinels */
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, sn->log, 0,
                  "webhook: redis sentinel %V: +switch-master %V",
                  &sn->addrs[sn->current].name,
                  ngx_http_webhook_log_text(&text, buf, sizeof(buf), m->str,
                                            m->len));

    if (ngx_http_webhook_sentinel_primary(sn, field[3],
                                          field[4] - field[3] - 1,
                                          field[4], last - field[4])
        != NGX_OK)
    {
        ngx_http_webhook_sentinel_failed(sn, "unexpected message");
    }
}


/* the primary is at ip:port: its connection goes there */

static ngx_int_t
ngx_http_webhook_sentinel_primary(ngx_http_webhook_sentinel_t *sn,
    u_char *ip, size_t iplen, u_char *port, size_t portlen)
{
    u_char                    *p;
    u_char                     buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    u_char                     text[NGX_SOCKADDR_STRLEN];
    ngx_int_t                  n;
    ngx_str_t                  host, addr_text, escaped;
    ngx_addr_t                 addr;
    ngx_pool_t                *pool;
    ngx_http_webhook_redis_t  *rd;

    rd = sn->primary.rd;

    n = ngx_atoi(port, portlen);
    if (n < 1 || n > 65535 || iplen >= NGX_SOCKADDR_STRLEN - 8) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(1024, sn->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_parse_addr(pool, &addr, ip, iplen) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, sn->log, 0,
                      "webhook: redis sentinel %V names the primary "
                      "\"%V\", not an address", &sn->addrs[sn->current].name,
                      ngx_http_webhook_log_text(&escaped, buf, sizeof(buf),
                                                ip, iplen));
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_inet_set_port(addr.sockaddr, (in_port_t) n);

    if (rd->state > NGX_HTTP_WEBHOOK_REDIS_BACKOFF
        && rd->socklen == addr.socklen
        && ngx_cmp_sockaddr(rd->sockaddr, rd->socklen, addr.sockaddr,
                            addr.socklen, 1)
           == NGX_OK)
    {
        /* connected or connecting there already */
        ngx_destroy_pool(pool);
        return NGX_OK;
    }

    /* an address: its text holds no byte that the log would escape */

    host.data = ip;
    host.len = iplen;

    addr_text.data = text;
    p = (addr.sockaddr->sa_family == AF_INET6)
        ? ngx_sprintf(text, "[%V]:%i", &host, n)
        : ngx_sprintf(text, "%V:%i", &host, n);
    addr_text.len = p - text;

    ngx_http_webhook_redis_address(rd, addr.sockaddr, addr.socklen, &host,
                                   &addr_text);

    ngx_destroy_pool(pool);

    ngx_log_error(NGX_LOG_NOTICE, sn->log, 0,
                  "webhook: redis sentinel %V: the primary of \"%V\" is %V",
                  &sn->addrs[sn->current].name, &sn->rcf->sentinel_name,
                  &rd->addr_text);

    /* what was in flight on the old primary has an unknown outcome */

    if (rd->state > NGX_HTTP_WEBHOOK_REDIS_BACKOFF) {
        ngx_http_webhook_redis_close(rd, 1);
    }

    ngx_http_webhook_redis_connect(rd);

    return NGX_OK;
}


static void
ngx_http_webhook_sentinel_timer(ngx_event_t *ev)
{
    ngx_http_webhook_sentinel_t  *sn = ev->data;

    size_t       argvlen[1];
    const char  *argv[1];

    switch (sn->state) {

    case NGX_HTTP_WEBHOOK_SENTINEL_ASKING:
        ngx_http_webhook_sentinel_failed(sn, "timed out");
        return;

    case NGX_HTTP_WEBHOOK_SENTINEL_SUBSCRIBED:
        if (sn->pings) {
            ngx_http_webhook_sentinel_failed(sn, "PING not answered");
            return;
        }

        argv[0] = "PING";
        argvlen[0] = 4;

        sn->pings++;

        if (ngx_http_webhook_redis_command(sn->link, NULL, 0, 1, argv,
                                           argvlen,
                                           ngx_http_webhook_sentinel_pong, sn)
            == NULL)
        {
            ngx_http_webhook_sentinel_failed(sn, "PING failed");
            return;
        }

        ngx_add_timer(&sn->timer, NGX_HTTP_WEBHOOK_SENTINEL_PING);
        return;

    case NGX_HTTP_WEBHOOK_SENTINEL_WAITING:
        ngx_http_webhook_sentinel_discover(sn);
        return;

    default: /* IDLE: no timer */
        return;
    }
}


/*
 * The sentinel failed: the next sentinel is asked at once, a round of
 * failures waits a second
 */

static void
ngx_http_webhook_sentinel_failed(ngx_http_webhook_sentinel_t *sn,
    const char *why)
{
    ngx_log_error(NGX_LOG_ERR, sn->log, 0,
                  "webhook: redis sentinel %V: %s, asking the next one",
                  &sn->addrs[sn->current].name, why);

    /* the link's callbacks are not called when its owner stops it */

    ngx_http_webhook_redis_stop(sn->link);

    if (sn->timer.timer_set) {
        ngx_del_timer(&sn->timer);
    }

    sn->current = (sn->current + 1) % sn->naddrs;
    sn->failed++;

    if (ngx_http_webhook_sentinel_quit(sn)) {
        ngx_http_webhook_sentinel_state(sn, NGX_HTTP_WEBHOOK_SENTINEL_IDLE);
        return;
    }

    if (sn->failed % sn->naddrs) {
        ngx_http_webhook_sentinel_discover(sn);
        return;
    }

    /* every sentinel failed in a row: a little later */

    ngx_http_webhook_sentinel_state(sn, NGX_HTTP_WEBHOOK_SENTINEL_WAITING);
    ngx_add_timer(&sn->timer, NGX_HTTP_WEBHOOK_SENTINEL_PING);
}


/* the primary's backoff after a loss is over: it may have moved */

static void
ngx_http_webhook_sentinel_retry(ngx_http_webhook_redis_t *rd)
{
    ngx_http_webhook_sentinel_t  *sn = rd->data;

    ngx_http_webhook_sentinel_discover(sn);
}


static ngx_uint_t
ngx_http_webhook_sentinel_quit(ngx_http_webhook_sentinel_t *sn)
{
    return sn->link == NULL || ngx_exiting || ngx_terminate || ngx_quit;
}
