
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Cluster's redirections: MOVED (the slot's owner changed: the map
 * is updated, the command sent again there, the topology read again) and
 * ASK (a slot being migrated: ASKING and the command on the importing
 * node, the map unchanged), at most 5 a command.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_cluster.h"
#include "core/ngx_http_webhook_core.h"


#define NGX_HTTP_WEBHOOK_REDIRECTS_MAX    5


static ngx_http_webhook_node_t *ngx_http_webhook_redirect_node(
    ngx_http_webhook_cluster_t *cl, u_char *addr, u_char *last);


/*
 * "MOVED <slot> <host:port>" (the map is updated, a refresh follows) and
 * "ASK <slot> <host:port>" (ASKING first, the map unchanged): the command
 * is sent again to the node named.  NGX_DECLINED: not a redirection, or
 * one too many, or to a node not connected: the reply is the caller's.
 */

ngx_int_t
ngx_http_webhook_cluster_redirect(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply)
{
    u_char                      *p, *last, *addr;
    u_char                       buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                    text;
    ngx_int_t                    slot;
    ngx_uint_t                   ask;
    ngx_http_webhook_node_t     *node, *from;
    ngx_http_webhook_redis_t    *to;
    ngx_http_webhook_cluster_t  *cl;

    static const char  *asking[] = { "ASKING" };
    static size_t       asking_len[] = { sizeof("ASKING") - 1 };

    from = rd->data;
    cl = from->cluster;

    if (reply->type != REDIS_REPLY_ERROR) {
        return NGX_DECLINED;
    }

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        ask = 0;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    addr = ngx_strlchr(p, last, ' ');
    if (addr == NULL) {
        return NGX_DECLINED;
    }

    slot = ngx_atoi(p, addr - p);
    addr++;

    if (slot == NGX_ERROR || slot >= NGX_HTTP_WEBHOOK_SLOTS_ALL) {
        return NGX_DECLINED;
    }

    if (cmd->redirects >= NGX_HTTP_WEBHOOK_REDIRECTS_MAX) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis cluster: slot %i redirected %d times "
                      "(last by %V: %V), the command fails", slot,
                      NGX_HTTP_WEBHOOK_REDIRECTS_MAX, &rd->addr_text,
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                reply->str, reply->len));
        return NGX_DECLINED;
    }

    node = ngx_http_webhook_redirect_node(cl, addr, last);
    if (node == NULL) {
        return NGX_DECLINED;
    }

    if (!ask) {
        ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                      "webhook: redis cluster: slot %i moved from %V to %V",
                      slot, &rd->addr_text, &node->addr_text);

        ngx_http_webhook_cluster_own(cl, slot, node);
        ngx_http_webhook_cluster_want(cl, 1);
    }

    if (ngx_http_webhook_cluster_connect(cl, node) == NGX_ERROR) {
        return NGX_DECLINED;
    }

    to = node->rd;

    if (to == NULL) {
        return NGX_DECLINED;
    }

    if (to->state <= NGX_HTTP_WEBHOOK_REDIS_BACKOFF) {
        /* in its backoff: tried now */

        ngx_http_webhook_redis_connect(to);

        if (to->state <= NGX_HTTP_WEBHOOK_REDIS_BACKOFF) {
            return NGX_DECLINED;
        }
    }

    if (ask && ngx_http_webhook_redis_step(to, NGX_HTTP_WEBHOOK_CMD_ASKING,
                                           "ASKING", 1, asking, asking_len)
               == NULL)
    {
        return NGX_ERROR;
    }

    cmd->redirects++;

    if (ngx_http_webhook_redis_append(to, cmd) != NGX_OK) {
        return NGX_ERROR;
    }

    freeReplyObject(reply);

    return NGX_OK;
}


/* the node named by a redirection: an IPv6 address comes unbracketed */

static ngx_http_webhook_node_t *
ngx_http_webhook_redirect_node(ngx_http_webhook_cluster_t *cl, u_char *addr,
    u_char *last)
{
    u_char  *colon, *p;
    u_char   text[NGX_SOCKADDR_STRLEN];

    colon = last;
    while (colon > addr && colon[-1] != ':') {
        colon--;
    }

    if (colon > addr && addr[0] != '['
        && ngx_strlchr(addr, colon - 1, ':') != NULL
        && (size_t) (last - addr) + 2 < NGX_SOCKADDR_STRLEN)
    {
        p = ngx_sprintf(text, "[%*s]:%*s", colon - 1 - addr, addr,
                        last - colon, colon);

        return ngx_http_webhook_cluster_add(cl, text, p - text);
    }

    return ngx_http_webhook_cluster_add(cl, addr, last - addr);
}
