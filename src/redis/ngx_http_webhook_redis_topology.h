
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The topologies of Redis behind one interface, as nginx's peer
 * connections (get) and nchan's node sets: which connection a command on a
 * slot goes to, whether it is up, what the status shows.  Each topology
 * owns its connections (ngx_http_webhook_redis_conn.h) and reacts to them
 * through their callbacks (ready, lost, retry, error replies); the Redis
 * layer's calls (ngx_http_webhook_redis.c) only go through this table.
 *
 *   single    webhook_redis: one address, or a name resolved again at each
 *             attempt by nginx's resolver (ngx_http_webhook_redis_single.c)
 *   sentinel  webhook_redis_sentinel: the primary the sentinels name
 *             (ngx_http_webhook_redis_sentinel.c)
 *   cluster   webhook_redis_cluster: a connection per primary, by slot
 *             (ngx_http_webhook_redis_cluster.c, ..._redirect.c)
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_TOPOLOGY_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_TOPOLOGY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_redis_conn.h"


typedef struct {
    const char                *name;

    /* at a worker's start: the topology's data, its connections started */
    void                      *(*init)(ngx_cycle_t *cycle,
                                   ngx_http_webhook_redis_conf_t *rcf);
    void                       (*exit)(void *data);

    /*
     * the connection for a command on the slot (it may start one), NULL;
     * NULL members: a topology of one primary, whose data starts with an
     * ngx_http_webhook_primary_t, for every slot
     */
    ngx_http_webhook_redis_t  *(*get)(void *data, ngx_uint_t slot);
    /* the slot's connection as known: nothing is started */
    ngx_http_webhook_redis_t  *(*peek)(void *data, ngx_uint_t slot);
    ngx_uint_t                 (*up)(void *data, ngx_uint_t slot);

    /* the status: the primary and the sentinel that named it (NULL: the
     * address as configured) */
    void                       (*addresses)(void *data, ngx_str_t *primary,
                                   ngx_str_t *sentinel);
    /* the status, with Cluster (NULL otherwise): the i-th primary, a slot's */
    ngx_int_t                  (*node)(void *data, ngx_uint_t i,
                                   ngx_str_t *addr, ngx_uint_t *up,
                                   ngx_uint_t *slots);
    ngx_int_t                  (*slot_node)(void *data, ngx_uint_t slot,
                                   ngx_str_t *addr, ngx_uint_t *up);
} ngx_http_webhook_topology_t;


/*
 * The topologies of one primary (single, Sentinel): their data starts
 * with this; follow names what a READONLY leads to (for the log), NULL
 * when the address cannot change (READONLY is then the caller's only)
 */

typedef struct {
    ngx_http_webhook_redis_t         *rd;
    ngx_http_webhook_redis_setup_t    setup;
    const char                       *follow;
} ngx_http_webhook_primary_t;


/* ngx_http_webhook_redis_single.c */
ngx_int_t ngx_http_webhook_primary_init(ngx_http_webhook_primary_t *p,
    ngx_cycle_t *cycle, ngx_http_webhook_redis_conf_t *rcf,
    ngx_http_webhook_redis_handler_t *handler);
ngx_int_t ngx_http_webhook_primary_error(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);


extern ngx_http_webhook_topology_t  ngx_http_webhook_topology_single;
extern ngx_http_webhook_topology_t  ngx_http_webhook_topology_sentinel;
extern ngx_http_webhook_topology_t  ngx_http_webhook_topology_cluster;


#endif /* _NGX_HTTP_WEBHOOK_REDIS_TOPOLOGY_H_INCLUDED_ */
