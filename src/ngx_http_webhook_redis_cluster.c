
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Cluster: the topology (CLUSTER SLOTS) read from any node that is
 * connected, the seeds first; a map of the 16384 slots to the nodes; one
 * pipelined connection (the state machine of ngx_http_webhook_redis_conn.c,
 * its handshake, TLS and WAIT) per primary; MOVED and ASK followed.
 *
 * The topology is read again when a node's connection is lost (a command
 * timed out, a failover), after a MOVED, and, with a short backoff, as
 * long as a slot of a configured queue has no primary connected: the
 * cluster takes its node timeout and an election to promote a replica.
 * The refresh has one timer: the backoff, or while CLUSTER SLOTS is
 * asked, its timeout (webhook_redis_timeout), whose expiry closes the
 * connection asked.  MOVED and ASK: ngx_http_webhook_redis_redirect.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_cluster.h"
#include "ngx_http_webhook_escape.h"


static void ngx_http_webhook_cluster_retire(ngx_http_webhook_node_t *node);
static void ngx_http_webhook_cluster_refresh(ngx_http_webhook_cluster_t *cl);
static ngx_http_webhook_redis_t *ngx_http_webhook_cluster_any(
    ngx_http_webhook_cluster_t *cl);
static void ngx_http_webhook_cluster_timer(ngx_event_t *ev);
static void ngx_http_webhook_cluster_slots(void *data, redisReply *reply);
static ngx_int_t ngx_http_webhook_cluster_map(ngx_http_webhook_cluster_t *cl,
    redisReply *reply);
static ngx_http_webhook_node_t *ngx_http_webhook_cluster_endpoint(
    ngx_http_webhook_cluster_t *cl, redisReply *r);
static void ngx_http_webhook_cluster_apply(ngx_http_webhook_cluster_t *cl);
static ngx_uint_t ngx_http_webhook_cluster_needed_down(
    ngx_http_webhook_cluster_t *cl);


/* the bytes of "host:port", "[v6]:port", "[fe80::1%eth0]:port" */
#define ngx_http_webhook_cluster_addr_char(ch)                               \
    (((ch) >= '0' && (ch) <= '9') || ((ch) >= 'a' && (ch) <= 'z')            \
     || ((ch) >= 'A' && (ch) <= 'Z') || (ch) == '.' || (ch) == ':'           \
     || (ch) == '-' || (ch) == '_' || (ch) == '[' || (ch) == ']'             \
     || (ch) == '%')


ngx_http_webhook_cluster_t  *ngx_http_webhook_cluster;


ngx_int_t
ngx_http_webhook_cluster_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_uint_t                   i;
    ngx_addr_t                  *seed;
    ngx_http_webhook_node_t     *node;
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->wmcf = wmcf;
    cl->cycle = cycle;
    cl->log = cycle->log;
    cl->backoff = NGX_HTTP_WEBHOOK_REFRESH_MIN;

    cl->argv[0] = "CLUSTER";
    cl->argvlen[0] = sizeof("CLUSTER") - 1;
    cl->argv[1] = "SLOTS";
    cl->argvlen[1] = sizeof("SLOTS") - 1;

    cl->refresh.handler = ngx_http_webhook_cluster_timer;
    cl->refresh.data = cl;
    cl->refresh.log = cycle->log;
    cl->refresh.cancelable = 1;

    ngx_http_webhook_cluster = cl;

    /* the seeds are connected to, the first to connect is asked */

    seed = wmcf->cluster->elts;

    for (i = 0; i < wmcf->cluster->nelts; i++) {
        node = ngx_http_webhook_cluster_add(cl, seed[i].name.data,
                                            seed[i].name.len);
        if (node == NULL) {
            return NGX_ERROR;
        }

        if (node->socklen == 0) {
            /* a seed named by a host name, resolved at configuration */
            ngx_memcpy(&node->sockaddr, seed[i].sockaddr, seed[i].socklen);
            node->socklen = seed[i].socklen;
        }

        if (ngx_http_webhook_cluster_connect(cl, node) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    cl->wanted = 1;

    return NGX_OK;
}


void
ngx_http_webhook_cluster_exit(void)
{
    ngx_uint_t                   i;
    ngx_http_webhook_redis_t    *rd;
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_http_webhook_cluster;
    if (cl == NULL) {
        return;
    }

    cl->exiting = 1;

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    for (i = 0; i < cl->nnodes; i++) {
        rd = cl->nodes[i]->rd;

        if (rd == NULL) {
            continue;
        }

        rd->exiting = 1;
        ngx_http_webhook_redis_close(rd, 0);

        ngx_free(rd->out);
        rd->out = NULL;
    }

    ngx_http_webhook_cluster = NULL;
}


ngx_uint_t
ngx_http_webhook_cluster_on(void)
{
    return ngx_http_webhook_cluster != NULL;
}


/* the node of an address, added when new */

ngx_http_webhook_node_t *
ngx_http_webhook_cluster_add(ngx_http_webhook_cluster_t *cl, u_char *text,
    size_t len)
{
    u_char                   *colon, buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                 escaped;
    ngx_uint_t                i;
    ngx_addr_t                addr;
    ngx_http_webhook_node_t  *node;

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node->addr_text.len == len
            && ngx_strncmp(node->addr_text.data, text, len) == 0)
        {
            return node;
        }
    }

    /* the text comes from a reply: it is logged and shown in the status */

    for (i = 0; i < len; i++) {
        if (!ngx_http_webhook_cluster_addr_char(text[i])) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "webhook: redis cluster: node \"%V\" left out "
                          "(not an address)",
                          ngx_http_webhook_log_text(&escaped, buf,
                                                    sizeof(buf), text, len));
            return NULL;
        }
    }

    if (cl->nnodes == NGX_HTTP_WEBHOOK_CLUSTER_NODES
        || len >= NGX_SOCKADDR_STRLEN)
    {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "webhook: redis cluster: node \"%*s\" left out (at "
                      "most %d nodes)", len, text,
                      NGX_HTTP_WEBHOOK_CLUSTER_NODES);
        return NULL;
    }

    node = ngx_pcalloc(cl->cycle->pool, sizeof(ngx_http_webhook_node_t));
    if (node == NULL) {
        return NULL;
    }

    node->addr_text.data = node->text;
    node->addr_text.len = ngx_cpymem(node->text, text, len) - node->text;

    /* the host, as verified by TLS without webhook_redis_ssl_name */

    colon = text + len;
    while (colon > text && colon[-1] != ':') {
        colon--;
    }

    node->host.data = node->host_buf;
    node->host.len = colon > text ? (size_t) (colon - 1 - text) : len;

    if (node->host.len >= 2 && text[0] == '[') {
        ngx_memcpy(node->host_buf, text + 1, node->host.len - 2);
        node->host.len -= 2;

    } else {
        ngx_memcpy(node->host_buf, text, node->host.len);
    }

    node->host_buf[node->host.len] = '\0';

    if (ngx_parse_addr_port(cl->cycle->pool, &addr, text, len) == NGX_OK
        && addr.socklen <= sizeof(ngx_sockaddr_t))
    {
        ngx_memcpy(&node->sockaddr, addr.sockaddr, addr.socklen);
        node->socklen = addr.socklen;
    }

    node->index = cl->nnodes;
    cl->nodes[cl->nnodes++] = node;

    return node;
}


/* the node's connection, made (or made again, when retired) */

ngx_int_t
ngx_http_webhook_cluster_connect(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_node_t *node)
{
    ngx_http_webhook_redis_t  *rd;

    if (node->socklen == 0) {
        return NGX_DECLINED;
    }

    rd = node->rd;

    if (rd == NULL) {
        rd = ngx_http_webhook_redis_create(cl->cycle, cl->wmcf);
        if (rd == NULL) {
            return NGX_ERROR;
        }

        rd->node = node;
        rd->addr_text = node->addr_text;
        rd->sockaddr = &node->sockaddr.sockaddr;
        rd->socklen = node->socklen;
        rd->host = node->host;

        node->rd = rd;

    } else if (!rd->exiting) {
        return NGX_OK;
    }

    rd->exiting = 0;
    ngx_http_webhook_redis_connect(rd);

    return NGX_OK;
}


/* a node that is no primary: no connection kept, no reconnection */

static void
ngx_http_webhook_cluster_retire(ngx_http_webhook_node_t *node)
{
    ngx_http_webhook_redis_t  *rd;

    rd = node->rd;

    if (rd == NULL || rd->exiting) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "webhook: redis cluster: %V owns no slot, its connection "
                  "is closed", &node->addr_text);

    rd->exiting = 1;
    ngx_http_webhook_redis_close(rd, 0);
}


/* where a slot's commands go: NULL when no node is known to own it */

ngx_http_webhook_redis_t *
ngx_http_webhook_cluster_route(ngx_uint_t slot)
{
    ngx_http_webhook_node_t     *node;
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_http_webhook_cluster;

    node = ngx_http_webhook_cluster_owner(slot);

    if (node == NULL) {
        cl->wanted = 1;
        ngx_http_webhook_cluster_refresh(cl);

        /*
         * no map yet (a worker just started) or a slot no primary
         * serves: any node connected or connecting takes the command,
         * behind its handshake, and answers MOVED to the owner or the
         * cluster's own error (CLUSTERDOWN)
         */

        return ngx_http_webhook_cluster_any(cl);
    }

    if (node->rd == NULL || node->rd->exiting) {
        if (ngx_http_webhook_cluster_connect(cl, node) != NGX_OK) {
            return NULL;
        }
    }

    return node->rd;
}


static ngx_http_webhook_redis_t *
ngx_http_webhook_cluster_any(ngx_http_webhook_cluster_t *cl)
{
    ngx_uint_t                 i;
    ngx_http_webhook_redis_t  *rd, *found;

    found = NULL;

    for (i = 0; i < cl->nnodes; i++) {
        rd = cl->nodes[i]->rd;

        if (rd == NULL || rd->exiting
            || rd->state == ngx_http_webhook_redis_disconnected)
        {
            continue;
        }

        if (rd->state == ngx_http_webhook_redis_ready) {
            return rd;
        }

        if (found == NULL) {
            found = rd;
        }
    }

    return found;
}


/* the connection of a slot's primary, if any: nothing is started */

ngx_http_webhook_redis_t *
ngx_http_webhook_cluster_conn(ngx_uint_t slot)
{
    ngx_http_webhook_node_t  *node;

    node = ngx_http_webhook_cluster_owner(slot);

    return node ? node->rd : NULL;
}


ngx_http_webhook_node_t *
ngx_http_webhook_cluster_owner(ngx_uint_t slot)
{
    ngx_uint_t                   i;
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_http_webhook_cluster;

    if (cl == NULL || slot >= NGX_HTTP_WEBHOOK_SLOTS_ALL) {
        return NULL;
    }

    i = cl->owner[slot];

    return i ? cl->nodes[i - 1] : NULL;
}


ngx_uint_t
ngx_http_webhook_cluster_up(ngx_uint_t slot)
{
    ngx_uint_t                   i;
    ngx_http_webhook_node_t     *node;
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_http_webhook_cluster;

    if (slot == NGX_HTTP_WEBHOOK_ANY_SLOT) {
        for (i = 0; i < cl->nnodes; i++) {
            node = cl->nodes[i];

            if (node->slots && node->rd
                && node->rd->state == ngx_http_webhook_redis_ready)
            {
                return 1;
            }
        }

        return 0;
    }

    node = ngx_http_webhook_cluster_owner(slot);

    return node && node->rd
           && node->rd->state == ngx_http_webhook_redis_ready;
}


/* a node's connection is ready: the refresh waited for one */

void
ngx_http_webhook_cluster_ready(void)
{
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_http_webhook_cluster;

    if (cl && cl->wanted && cl->asked == NULL) {
        ngx_http_webhook_cluster_refresh(cl);
    }
}


/* a node's connection is lost: the cluster may have failed over */

void
ngx_http_webhook_cluster_lost(void)
{
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_http_webhook_cluster;

    if (cl == NULL || cl->exiting) {
        return;
    }

    cl->wanted = 1;

    if (cl->asked == NULL) {
        ngx_http_webhook_cluster_later(cl, NGX_HTTP_WEBHOOK_REFRESH_MIN);
    }
}


/*
 * CLUSTER SLOTS, asked of the next connected node (the known nodes in
 * turn); with none connected, every known node is connected to and the
 * first ready one is asked
 */

static void
ngx_http_webhook_cluster_refresh(ngx_http_webhook_cluster_t *cl)
{
    ngx_uint_t                 i, n;
    ngx_http_webhook_node_t   *node;
    ngx_http_webhook_redis_t  *rd;

    if (cl->asked || cl->exiting || ngx_exiting || ngx_terminate
        || ngx_quit)
    {
        return;
    }

    for (n = 0; n < cl->nnodes; n++) {
        i = (cl->next + n) % cl->nnodes;
        node = cl->nodes[i];
        rd = node->rd;

        if (rd == NULL || rd->state != ngx_http_webhook_redis_ready) {
            continue;
        }

        cl->next = i + 1;

        if (ngx_http_webhook_redis_command(rd, NULL, 0, 2, cl->argv,
                                           cl->argvlen,
                                           ngx_http_webhook_cluster_slots,
                                           cl)
            == NULL)
        {
            continue;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cl->log, 0,
                       "webhook: redis cluster: CLUSTER SLOTS asked of %V",
                       &node->addr_text);

        cl->asked = node;
        cl->wanted = 0;

        /* the question's timer, in place of the backoff */

        if (cl->refresh.timer_set) {
            ngx_del_timer(&cl->refresh);
        }

        ngx_add_timer(&cl->refresh, cl->wmcf->timeout);

        return;
    }

    /* none is ready: the retired ones are connected to again */

    for (i = 0; i < cl->nnodes; i++) {
        (void) ngx_http_webhook_cluster_connect(cl, cl->nodes[i]);
    }

    cl->wanted = 1;
    ngx_http_webhook_cluster_later(cl, cl->backoff);
}


void
ngx_http_webhook_cluster_later(ngx_http_webhook_cluster_t *cl,
    ngx_msec_t delay)
{
    if (cl->exiting || cl->refresh.timer_set || ngx_exiting
        || ngx_terminate || ngx_quit)
    {
        return;
    }

    ngx_add_timer(&cl->refresh, delay);

    cl->backoff = ngx_min(cl->backoff * 2, NGX_HTTP_WEBHOOK_REFRESH_MAX);
}


static void
ngx_http_webhook_cluster_timer(ngx_event_t *ev)
{
    ngx_http_webhook_cluster_t  *cl = ev->data;

    ngx_http_webhook_node_t  *asked;

    asked = cl->asked;

    if (asked) {
        /* CLUSTER SLOTS unanswered: its connection is closed, which
         * fails it, and the next node is asked */

        ngx_log_error(NGX_LOG_ERR, cl->log, NGX_ETIMEDOUT,
                      "webhook: redis cluster: CLUSTER SLOTS on %V timed "
                      "out, closing the connection", &asked->addr_text);

        ngx_http_webhook_redis_close(asked->rd, 1);
        return;
    }

    cl->wanted = 1;

    ngx_http_webhook_cluster_refresh(cl);
}


/* the answer of CLUSTER SLOTS, NULL when its connection was lost */

static void
ngx_http_webhook_cluster_slots(void *data, redisReply *reply)
{
    ngx_http_webhook_cluster_t  *cl = data;

    u_char                    buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_int_t                 rc;
    ngx_str_t                 text;
    ngx_http_webhook_node_t  *asked;

    if (cl->refresh.timer_set) {
        /* the question's */
        ngx_del_timer(&cl->refresh);
    }

    if (cl->exiting) {
        cl->asked = NULL;
        return;
    }

    /* the node asked stays known while its answer is read */

    asked = cl->asked;
    rc = reply ? ngx_http_webhook_cluster_map(cl, reply) : NGX_ERROR;
    cl->asked = NULL;

    if (rc != NGX_OK) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "webhook: redis cluster: CLUSTER SLOTS failed on "
                          "%V: %V", &asked->addr_text,
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                    reply->str, reply->len));
        }

        /* the next node, at once */
        cl->wanted = 1;
        ngx_http_webhook_cluster_later(cl, NGX_HTTP_WEBHOOK_REFRESH_MIN);
        return;
    }

    ngx_http_webhook_cluster_apply(cl);

    if (ngx_http_webhook_cluster_needed_down(cl)) {
        /* a failover under way: asked again until a primary answers */
        ngx_http_webhook_cluster_later(cl, cl->backoff);
        return;
    }

    cl->backoff = NGX_HTTP_WEBHOOK_REFRESH_MIN;

    if (cl->wanted) {
        /* a MOVED or a lost connection meanwhile */
        ngx_http_webhook_cluster_later(cl, NGX_HTTP_WEBHOOK_REFRESH_MIN);
    }
}


/*
 * [[start, end, [ip, port, id, ...], replicas...], ...]: the new owner of
 * every slot; none is changed when the answer is not one
 */

static ngx_int_t
ngx_http_webhook_cluster_map(ngx_http_webhook_cluster_t *cl,
    redisReply *reply)
{
    long long                 start, end;
    ngx_uint_t                i, s;
    redisReply               *range;
    ngx_http_webhook_node_t  *node;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        if (reply->type == REDIS_REPLY_ARRAY) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "webhook: redis cluster: no slot assigned yet");
        }

        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY
            || range->element[0]->integer < 0
            || range->element[1]->integer >= NGX_HTTP_WEBHOOK_SLOTS_ALL
            || range->element[0]->integer > range->element[1]->integer)
        {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "webhook: redis cluster: unexpected answer of "
                          "CLUSTER SLOTS");
            return NGX_ERROR;
        }
    }

    ngx_memzero(cl->owner, sizeof(cl->owner));

    for (i = 0; i < cl->nnodes; i++) {
        cl->nodes[i]->slots = 0;
    }

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        node = ngx_http_webhook_cluster_endpoint(cl, range->element[2]);
        if (node == NULL) {
            continue;
        }

        start = range->element[0]->integer;
        end = range->element[1]->integer;

        for (s = (ngx_uint_t) start; s <= (ngx_uint_t) end; s++) {
            cl->owner[s] = (u_char) (node->index + 1);
        }

        node->slots += (ngx_uint_t) (end - start + 1);
    }

    return NGX_OK;
}


/* [ip, port, ...] of a range's primary: its node */

static ngx_http_webhook_node_t *
ngx_http_webhook_cluster_endpoint(ngx_http_webhook_cluster_t *cl,
    redisReply *r)
{
    u_char      *p;
    ngx_str_t    ip;
    u_char       text[NGX_SOCKADDR_STRLEN];

    if (r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[1]->type != REDIS_REPLY_INTEGER)
    {
        return NULL;
    }

    ip.data = (u_char *) r->element[0]->str;
    ip.len = r->element[0]->len;

    if (ip.len == 0 || (ip.len == 1 && ip.data[0] == '?')) {
        /* "unknown endpoint": the node asked */
        if (cl->asked == NULL) {
            return NULL;
        }

        ip = cl->asked->host;
    }

    if (ip.len + NGX_INT_T_LEN + 4 > NGX_SOCKADDR_STRLEN) {
        return NULL;
    }

    p = ngx_strlchr(ip.data, ip.data + ip.len, ':')
        ? ngx_sprintf(text, "[%V]:%i", &ip, (ngx_int_t) r->element[1]->integer)
        : ngx_sprintf(text, "%V:%i", &ip, (ngx_int_t) r->element[1]->integer);

    return ngx_http_webhook_cluster_add(cl, text, p - text);
}


/* the primaries are connected to, the others' connections closed */

static void
ngx_http_webhook_cluster_apply(ngx_http_webhook_cluster_t *cl)
{
    ngx_uint_t                i;
    ngx_http_webhook_node_t  *node;

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node->slots) {
            if (ngx_http_webhook_cluster_connect(cl, node) != NGX_OK) {
                ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                              "webhook: redis cluster: no connection to "
                              "%V (a node must announce an IP address)",
                              &node->addr_text);
            }

            continue;
        }

        ngx_http_webhook_cluster_retire(node);
    }
}


/* a configured queue's slot without a primary connected */

static ngx_uint_t
ngx_http_webhook_cluster_needed_down(ngx_http_webhook_cluster_t *cl)
{
    ngx_uint_t                i;
    ngx_http_webhook_node_t  *node;

    for (i = 0; i < cl->wmcf->queues.nelts; i++) {
        node = ngx_http_webhook_cluster_owner(cl->wmcf->queue_slot[i]);

        if (node == NULL || node->rd == NULL
            || node->rd->state == ngx_http_webhook_redis_disconnected)
        {
            return 1;
        }
    }

    return 0;
}
