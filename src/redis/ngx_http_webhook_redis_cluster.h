
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Cluster's state in a worker, shared by the topology
 * (ngx_http_webhook_redis_cluster.c) and the redirections
 * (ngx_http_webhook_redis_redirect.c).
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_topology.h"


/*
 * The nodes known at once: the seeds, the primaries of the map, the
 * targets of redirections; a node that owns no slot and has nothing in
 * flight is forgotten after each read of the map, so this bounds only
 * what one answer of CLUSTER SLOTS may name
 */
#define NGX_HTTP_WEBHOOK_CLUSTER_NODES    1024

#define NGX_HTTP_WEBHOOK_REFRESH_MIN      300
#define NGX_HTTP_WEBHOOK_REFRESH_MAX      1000


typedef struct ngx_http_webhook_cluster_s  ngx_http_webhook_cluster_t;


typedef struct {
    ngx_str_t                      addr_text;   /* host:port */
    ngx_sockaddr_t                 sockaddr;
    socklen_t                      socklen;     /* 0: no address */
    ngx_http_webhook_redis_t      *rd;          /* NULL: never connected */
    ngx_http_webhook_cluster_t    *cluster;
    ngx_uint_t                     index;       /* in cluster->nodes */
    ngx_uint_t                     slots;       /* owned, as last known */
    unsigned                       seed:1;      /* never forgotten */
    u_char                         text[NGX_SOCKADDR_STRLEN];
} ngx_http_webhook_node_t;


/*
 * The refresh of the map, with one timer (cl->refresh):
 *
 *   IDLE      none: the map is read again when a connection is lost, after
 *             a MOVED, READONLY or CLUSTERDOWN
 *   WAITING   the backoff before the next CLUSTER SLOTS
 *   ASKING    CLUSTER SLOTS in flight on cl->asked: webhook_redis_timeout
 */

typedef enum {
    NGX_HTTP_WEBHOOK_CLUSTER_IDLE = 0,
    NGX_HTTP_WEBHOOK_CLUSTER_WAITING,
    NGX_HTTP_WEBHOOK_CLUSTER_ASKING
} ngx_http_webhook_cluster_state_e;


struct ngx_http_webhook_cluster_s {
    ngx_http_webhook_cluster_state_e   state;
    ngx_http_webhook_redis_conf_t      *rcf;
    ngx_cycle_t                       *cycle;
    ngx_log_t                         *log;
    ngx_http_webhook_redis_setup_t     setup;       /* of every node */
    ngx_http_webhook_node_t           *nodes[NGX_HTTP_WEBHOOK_CLUSTER_NODES];
    ngx_uint_t                         nnodes;      /* the high mark; a
                                                       forgotten node leaves
                                                       a NULL */
    ngx_uint_t                         next;        /* the node asked next */
    ngx_http_webhook_node_t           *asked;       /* CLUSTER SLOTS */
    ngx_event_t                        refresh;
    ngx_event_t                        sweep;       /* forgets nodes, from
                                                       the event loop */
    ngx_msec_t                         backoff;
    const char                        *argv[2];
    size_t                             argvlen[2];
    uint16_t                           owner[NGX_HTTP_WEBHOOK_SLOTS_ALL];
                                                    /* node index + 1,
                                                       0: none */
    unsigned                           wanted:1;    /* a refresh to do */
    unsigned                           exiting:1;   /* the worker */
};


ngx_http_webhook_node_t *ngx_http_webhook_cluster_add(
    ngx_http_webhook_cluster_t *cl, u_char *text, size_t len);
ngx_int_t ngx_http_webhook_cluster_connect(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_node_t *node);
void ngx_http_webhook_cluster_want(ngx_http_webhook_cluster_t *cl,
    ngx_msec_t delay);
ngx_http_webhook_node_t *ngx_http_webhook_cluster_owner(
    ngx_http_webhook_cluster_t *cl, ngx_uint_t slot);
void ngx_http_webhook_cluster_own(ngx_http_webhook_cluster_t *cl,
    ngx_uint_t slot, ngx_http_webhook_node_t *node);
ngx_int_t ngx_http_webhook_cluster_redirect(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);


#endif /* _NGX_HTTP_WEBHOOK_REDIS_CLUSTER_H_INCLUDED_ */
