
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

#include "ngx_http_webhook_redis_conn.h"


#define NGX_HTTP_WEBHOOK_CLUSTER_NODES    64
#define NGX_HTTP_WEBHOOK_REFRESH_MIN      300
#define NGX_HTTP_WEBHOOK_REFRESH_MAX      1000


struct ngx_http_webhook_node_s {
    ngx_str_t                      addr_text;   /* host:port */
    ngx_str_t                      host;        /* null-terminated */
    ngx_sockaddr_t                 sockaddr;
    socklen_t                      socklen;
    ngx_http_webhook_redis_t      *rd;          /* NULL: never connected */
    ngx_uint_t                     index;
    ngx_uint_t                     slots;       /* owned, as last read */
    u_char                         text[NGX_SOCKADDR_STRLEN];
    u_char                         host_buf[NGX_SOCKADDR_STRLEN];
};


typedef struct {
    ngx_http_webhook_main_conf_t  *wmcf;
    ngx_cycle_t                   *cycle;
    ngx_log_t                     *log;
    ngx_http_webhook_node_t       *nodes[NGX_HTTP_WEBHOOK_CLUSTER_NODES];
    ngx_uint_t                     nnodes;
    ngx_uint_t                     next;        /* the node asked next */
    ngx_http_webhook_node_t       *asked;       /* CLUSTER SLOTS in flight */
    ngx_event_t                    refresh;     /* the backoff */
    ngx_msec_t                     backoff;
    const char                    *argv[2];
    size_t                         argvlen[2];
    u_char                         owner[NGX_HTTP_WEBHOOK_SLOTS_ALL];
                                                /* node index + 1, 0: none */
    unsigned                       wanted:1;    /* a refresh to do */
    unsigned                       exiting:1;
} ngx_http_webhook_cluster_t;


extern ngx_http_webhook_cluster_t  *ngx_http_webhook_cluster;


ngx_http_webhook_node_t *ngx_http_webhook_cluster_add(
    ngx_http_webhook_cluster_t *cl, u_char *text, size_t len);
ngx_int_t ngx_http_webhook_cluster_connect(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_node_t *node);
void ngx_http_webhook_cluster_later(ngx_http_webhook_cluster_t *cl,
    ngx_msec_t delay);
ngx_http_webhook_node_t *ngx_http_webhook_cluster_owner(ngx_uint_t slot);


#endif /* _NGX_HTTP_WEBHOOK_REDIS_CLUSTER_H_INCLUDED_ */
