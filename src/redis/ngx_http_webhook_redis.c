
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The Redis layer's calls (ngx_http_webhook_redis.h), over the worker's
 * topology (ngx_http_webhook_redis_topology.h): the one that the
 * configuration names is started with the worker and asked, by slot, for
 * the connection of each command.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_topology.h"


static ngx_http_webhook_redis_t *ngx_http_webhook_redis_get(
    ngx_uint_t slot, ngx_uint_t start);


static ngx_http_webhook_topology_t  *ngx_http_webhook_topology;
static void                         *ngx_http_webhook_topology_data;


ngx_int_t
ngx_http_webhook_redis_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf)
{
    ngx_http_webhook_topology_t  *t;

    /*
     * the cached time is the master's from before it read the
     * configuration: a connect timer armed from it could expire before
     * the handshake had a chance to be answered
     */

    ngx_time_update();

    ngx_http_webhook_resp_limits(&ngx_http_webhook_redis_limits,
                                 rcf->batch_max);

    t = rcf->cluster ? &ngx_http_webhook_topology_cluster
        : rcf->sentinels ? &ngx_http_webhook_topology_sentinel
        : &ngx_http_webhook_topology_single;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "webhook: redis topology: %s", t->name);

    ngx_http_webhook_topology_data = t->init(cycle, rcf);
    if (ngx_http_webhook_topology_data == NULL) {
        return NGX_ERROR;
    }

    ngx_http_webhook_topology = t;

    return NGX_OK;
}


void
ngx_http_webhook_redis_exit(ngx_cycle_t *cycle)
{
    ngx_http_webhook_topology_t  *t;

    t = ngx_http_webhook_topology;
    if (t == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "webhook: closing the redis connections (%s)", t->name);

    ngx_http_webhook_topology = NULL;

    t->exit(ngx_http_webhook_topology_data);

    ngx_http_webhook_topology_data = NULL;
}


/*
 * The connection of a command on the slot: the topology's (start: it may
 * start one), or its one primary's
 */

static ngx_http_webhook_redis_t *
ngx_http_webhook_redis_get(ngx_uint_t slot, ngx_uint_t start)
{
    void                         *data;
    ngx_http_webhook_topology_t  *t;

    t = ngx_http_webhook_topology;
    data = ngx_http_webhook_topology_data;

    if (t == NULL) {
        return NULL;
    }

    if (t->get == NULL) {
        return ((ngx_http_webhook_primary_t *) data)->rd;
    }

    return start ? t->get(data, slot) : t->peek(data, slot);
}


ngx_uint_t
ngx_http_webhook_redis_up(ngx_uint_t slot)
{
    ngx_http_webhook_topology_t  *t;

    t = ngx_http_webhook_topology;

    if (t && t->up) {
        return t->up(ngx_http_webhook_topology_data, slot);
    }

    return ngx_http_webhook_redis_ready(ngx_http_webhook_redis_get(slot, 0));
}


ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_eval(ngx_http_webhook_script_t *script,
    ngx_uint_t slot, int argc, const char **argv, size_t *argvlen,
    ngx_http_webhook_reply_pt handler, void *data)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_http_webhook_redis_get(slot, 1);
    if (rd == NULL) {
        return NULL;
    }

    /* every command of a caller writes but the status script's */

    return ngx_http_webhook_redis_command(rd, script,
                                          script != &rd->rcf->status,
                                          argc, argv, argvlen, handler,
                                          data);
}


void
ngx_http_webhook_redis_timed_out(ngx_uint_t slot)
{
    ngx_http_webhook_redis_t  *rd;

    /*
     * the connection of the slot's primary as known: a timeout neither
     * reads the map again nor connects, nor closes another node's
     */

    rd = ngx_http_webhook_redis_get(slot, 0);

    if (rd == NULL || rd->connection == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "webhook: redis at %V timed out, closing the connection",
                  &rd->addr_text);

    ngx_http_webhook_redis_close(rd, 1);
}


/* for the status: primary is left as it is when there is none to tell */

void
ngx_http_webhook_redis_addresses(ngx_str_t *primary, ngx_str_t *sentinel)
{
    ngx_http_webhook_topology_t  *t;

    ngx_str_null(sentinel);

    t = ngx_http_webhook_topology;

    if (t && t->addresses) {
        t->addresses(ngx_http_webhook_topology_data, primary, sentinel);
    }
}


ngx_uint_t
ngx_http_webhook_cluster_on(void)
{
    return ngx_http_webhook_topology == &ngx_http_webhook_topology_cluster;
}


ngx_int_t
ngx_http_webhook_cluster_node(ngx_uint_t i, ngx_str_t *addr, ngx_uint_t *up,
    ngx_uint_t *slots)
{
    ngx_http_webhook_topology_t  *t;

    t = ngx_http_webhook_topology;

    if (t == NULL || t->node == NULL) {
        return NGX_DECLINED;
    }

    return t->node(ngx_http_webhook_topology_data, i, addr, up, slots);
}


ngx_int_t
ngx_http_webhook_cluster_slot_node(ngx_uint_t slot, ngx_str_t *addr,
    ngx_uint_t *up)
{
    ngx_http_webhook_topology_t  *t;

    t = ngx_http_webhook_topology;

    if (t == NULL || t->slot_node == NULL) {
        return NGX_DECLINED;
    }

    return t->slot_node(ngx_http_webhook_topology_data, slot, addr, up);
}
