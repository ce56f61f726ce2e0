
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * webhook_redis: one connection per worker to one address, found when
 * nginx read the configuration, or, with nginx's resolver in the http
 * block, resolved again at each attempt (managed Redis fails over by
 * moving the address behind the name).  There, a primary demoted to a
 * replica that keeps its clients answers writes READONLY: the connection
 * is closed, and the next attempt goes where the name points now.
 *
 * The primary's part (ngx_http_webhook_primary_t) serves Sentinel too,
 * whose sentinels give the address instead.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_topology.h"


static void *ngx_http_webhook_single_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf);
static void ngx_http_webhook_single_exit(void *data);
static void ngx_http_webhook_single_addresses(void *data,
    ngx_str_t *primary, ngx_str_t *sentinel);


ngx_http_webhook_topology_t  ngx_http_webhook_topology_single = {
    "single",
    ngx_http_webhook_single_init,
    ngx_http_webhook_single_exit,
    NULL,
    NULL,
    NULL,
    ngx_http_webhook_single_addresses,
    NULL,
    NULL
};


static ngx_http_webhook_redis_handler_t  ngx_http_webhook_single_handler = {
    NULL,
    NULL,
    NULL,
    ngx_http_webhook_primary_error,
    NULL
};


static void *
ngx_http_webhook_single_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf)
{
    ngx_http_webhook_primary_t  *p;

    p = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_primary_t));
    if (p == NULL) {
        return NULL;
    }

    if (ngx_http_webhook_primary_init(p, cycle, rcf,
                                      &ngx_http_webhook_single_handler)
        != NGX_OK)
    {
        return NULL;
    }

    ngx_http_webhook_redis_address(p->rd, rcf->sockaddr, rcf->socklen,
                                   &rcf->host, &rcf->addr_text);

    if (rcf->resolver) {
        p->rd->resolver = rcf->resolver;
        p->rd->resolve = rcf->host_name;
        p->rd->port = (in_port_t) rcf->port;
        p->follow = "reconnecting";
    }

    ngx_http_webhook_redis_connect(p->rd);

    return p;
}


static void
ngx_http_webhook_single_exit(void *data)
{
    ngx_http_webhook_primary_t  *p = data;

    ngx_http_webhook_redis_destroy(p->rd);
    p->rd = NULL;
}


static void
ngx_http_webhook_single_addresses(void *data, ngx_str_t *primary,
    ngx_str_t *sentinel)
{
    ngx_http_webhook_primary_t  *p = data;

    *primary = p->rd->addr_text;
    ngx_str_null(sentinel);
}


/* the connection to the primary, with handler's callbacks, not started */

ngx_int_t
ngx_http_webhook_primary_init(ngx_http_webhook_primary_t *p,
    ngx_cycle_t *cycle, ngx_http_webhook_redis_conf_t *rcf,
    ngx_http_webhook_redis_handler_t *handler)
{
    p->setup.role = "redis";
    p->setup.user = rcf->user;
    p->setup.password = rcf->password;
    p->setup.db = rcf->db;
    p->setup.scripts = 1;
    p->setup.wait = rcf->wait_replicas ? 1 : 0;

    p->rd = ngx_http_webhook_redis_create(cycle, rcf, &p->setup, handler, p);
    if (p->rd == NULL) {
        return NGX_ERROR;
    }

    p->rd->reconnect = 1;

    return NGX_OK;
}


/*
 * A write answered READONLY: a demoted primary, closed when the address
 * can change
 */

ngx_int_t
ngx_http_webhook_primary_error(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply)
{
    ngx_http_webhook_primary_t  *p = rd->data;

    if (p->follow == NULL || !cmd->write
        || !ngx_http_webhook_redis_readonly(reply))
    {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                  "webhook: redis at %V is read-only (no longer the "
                  "primary), %s", &rd->addr_text, p->follow);

    return NGX_DONE;
}
