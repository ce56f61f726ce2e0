
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status location's parts for Redis Cluster: the primaries known
 * (address, connected, slots owned) and the node of each queue, in JSON
 * and in Prometheus text; nothing without Cluster.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "receive/ngx_http_webhook_receive.h"
#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"
#include "ngx_http_webhook_status.h"


/* ,"cluster":{"nodes":[{"address":"...","up":true,"slots":5461},...]} */

u_char *
ngx_http_webhook_status_cluster_json(u_char *p)
{
    ngx_str_t   addr;
    ngx_uint_t  i, up, slots;

    if (!ngx_http_webhook_cluster_on()) {
        return p;
    }

    p = ngx_sprintf(p, ",\"cluster\":{\"nodes\":[");

    for (i = 0;
         ngx_http_webhook_cluster_node(i, &addr, &up, &slots) == NGX_OK;
         i++)
    {
        p = ngx_sprintf(p, "%s{\"address\":\"", i ? "," : "");
        p = ngx_http_webhook_json_escape(p, addr.data, addr.len);
        p = ngx_sprintf(p, "\",\"up\":%s,\"slots\":%ui}",
                        up ? "true" : "false", slots);
    }

    return ngx_sprintf(p, "]}");
}


/* "node":"host:port", (null when no node is known to own the slot) */

u_char *
ngx_http_webhook_status_cluster_queue(u_char *p, ngx_uint_t slot)
{
    ngx_str_t   addr;
    ngx_uint_t  up;

    if (!ngx_http_webhook_cluster_on()) {
        return p;
    }

    if (ngx_http_webhook_cluster_slot_node(slot, &addr, &up) != NGX_OK) {
        return ngx_sprintf(p, "\"node\":null,");
    }

    p = ngx_sprintf(p, "\"node\":\"");
    p = ngx_http_webhook_json_escape(p, addr.data, addr.len);

    return ngx_sprintf(p, "\",");
}


u_char *
ngx_http_webhook_status_cluster_text(u_char *p)
{
    ngx_str_t   addr;
    ngx_uint_t  i, up, slots;

    if (!ngx_http_webhook_cluster_on()) {
        return p;
    }

    p = ngx_http_webhook_family(p, "nginx_webhook_redis_node_up", "gauge",
                                "Whether the connection to a primary of "
                                "the Redis Cluster is up.");

    for (i = 0;
         ngx_http_webhook_cluster_node(i, &addr, &up, &slots) == NGX_OK;
         i++)
    {
        p = ngx_sprintf(p, "nginx_webhook_redis_node_up{node=");
        p = ngx_http_webhook_label(p, &addr);
        p = ngx_sprintf(p, "} %ui\n", up);
    }

    return p;
}
