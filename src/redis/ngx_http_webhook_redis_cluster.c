
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Cluster: the topology (CLUSTER SLOTS) read from any node that is
 * connected, the seeds first; a map of the 16384 slots to the nodes; one
 * pipelined connection (ngx_http_webhook_redis_conn.h: its handshake, TLS
 * and WAIT) per primary; MOVED and ASK followed
 * (ngx_http_webhook_redis_redirect.c).
 *
 * The map is read again when a node's connection is lost (a command timed
 * out, a failover), after a MOVED, READONLY or CLUSTERDOWN, and, with a
 * short backoff, as long as a slot of a configured queue has no primary
 * connected: the cluster takes its node timeout and an election to
 * promote a replica.  After each read, the nodes that own no slot are
 * closed, and forgotten once nothing is in flight on them (the seeds
 * excepted): nodes that come back at other addresses (containers,
 * rescheduled pods) do not fill the table.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_cluster.h"
#include "core/ngx_http_webhook_core.h"


/* the bytes of "host:port", "[v6]:port", "[fe80::1%eth0]:port" */
#define ngx_http_webhook_cluster_addr_char(ch)                               \
    (((ch) >= '0' && (ch) <= '9') || ((ch) >= 'a' && (ch) <= 'z')            \
     || ((ch) >= 'A' && (ch) <= 'Z') || (ch) == '.' || (ch) == ':'           \
     || (ch) == '-' || (ch) == '_' || (ch) == '[' || (ch) == ']'             \
     || (ch) == '%')


static void *ngx_http_webhook_cluster_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf);
static void ngx_http_webhook_cluster_exit(void *data);
static ngx_http_webhook_redis_t *ngx_http_webhook_cluster_route(void *data,
    ngx_uint_t slot);
static ngx_http_webhook_redis_t *ngx_http_webhook_cluster_conn(void *data,
    ngx_uint_t slot);
static ngx_uint_t ngx_http_webhook_cluster_up(void *data, ngx_uint_t slot);
static ngx_int_t ngx_http_webhook_cluster_primary(void *data, ngx_uint_t i,
    ngx_str_t *addr, ngx_uint_t *up, ngx_uint_t *slots);
static ngx_int_t ngx_http_webhook_cluster_slot_primary(void *data,
    ngx_uint_t slot, ngx_str_t *addr, ngx_uint_t *up);

static void ngx_http_webhook_cluster_state(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_cluster_state_e state);
static void ngx_http_webhook_cluster_ready(ngx_http_webhook_redis_t *rd);
static void ngx_http_webhook_cluster_lost(ngx_http_webhook_redis_t *rd);
static ngx_int_t ngx_http_webhook_cluster_error(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);
static void ngx_http_webhook_cluster_retire(ngx_http_webhook_node_t *node);
static void ngx_http_webhook_cluster_refresh(ngx_http_webhook_cluster_t *cl);
static ngx_http_webhook_redis_t *ngx_http_webhook_cluster_any(
    ngx_http_webhook_cluster_t *cl);
static void ngx_http_webhook_cluster_timer(ngx_event_t *ev);
static void ngx_http_webhook_cluster_slots(void *data, redisReply *reply,
    ngx_uint_t failure);
static ngx_int_t ngx_http_webhook_cluster_map(ngx_http_webhook_cluster_t *cl,
    redisReply *reply);
static ngx_http_webhook_node_t *ngx_http_webhook_cluster_endpoint(
    ngx_http_webhook_cluster_t *cl, redisReply *r);
static void ngx_http_webhook_cluster_apply(ngx_http_webhook_cluster_t *cl);
static ngx_uint_t ngx_http_webhook_cluster_needed_down(
    ngx_http_webhook_cluster_t *cl);
static void ngx_http_webhook_cluster_sweep(ngx_event_t *ev);
static void ngx_http_webhook_cluster_forget(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_node_t *node);


ngx_http_webhook_topology_t  ngx_http_webhook_topology_cluster = {
    "cluster",
    ngx_http_webhook_cluster_init,
    ngx_http_webhook_cluster_exit,
    ngx_http_webhook_cluster_route,
    ngx_http_webhook_cluster_conn,
    ngx_http_webhook_cluster_up,
    NULL,
    ngx_http_webhook_cluster_primary,
    ngx_http_webhook_cluster_slot_primary
};


static ngx_http_webhook_redis_handler_t  ngx_http_webhook_cluster_handler = {
    ngx_http_webhook_cluster_ready,
    ngx_http_webhook_cluster_lost,
    NULL,
    ngx_http_webhook_cluster_error,
    NULL
};


#if (NGX_DEBUG)
/* the states by name, for the debug log */
static char  *ngx_http_webhook_cluster_states[] = {
    "IDLE", "WAITING", "ASKING"
};
#endif


static void *
ngx_http_webhook_cluster_init(ngx_cycle_t *cycle,
    ngx_http_webhook_redis_conf_t *rcf)
{
    ngx_uint_t                   i;
    ngx_addr_t                  *seed;
    ngx_http_webhook_node_t     *node;
    ngx_http_webhook_cluster_t  *cl;

    cl = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_cluster_t));
    if (cl == NULL) {
        return NULL;
    }

    cl->rcf = rcf;
    cl->cycle = cycle;
    cl->log = cycle->log;
    cl->backoff = NGX_HTTP_WEBHOOK_REFRESH_MIN;

    cl->setup.role = "redis";
    cl->setup.user = rcf->user;
    cl->setup.password = rcf->password;
    cl->setup.scripts = 1;
    cl->setup.wait = rcf->wait_replicas ? 1 : 0;

    cl->argv[0] = "CLUSTER";
    cl->argvlen[0] = sizeof("CLUSTER") - 1;
    cl->argv[1] = "SLOTS";
    cl->argvlen[1] = sizeof("SLOTS") - 1;

    cl->refresh.handler = ngx_http_webhook_cluster_timer;
    cl->refresh.data = cl;
    cl->refresh.log = cycle->log;
    cl->refresh.cancelable = 1;

    cl->sweep.handler = ngx_http_webhook_cluster_sweep;
    cl->sweep.data = cl;
    cl->sweep.log = cycle->log;

    /* the seeds are connected to, the first to connect is asked */

    seed = rcf->cluster->elts;

    for (i = 0; i < rcf->cluster->nelts; i++) {
        node = ngx_http_webhook_cluster_add(cl, seed[i].name.data,
                                            seed[i].name.len);
        if (node == NULL) {
            return NULL;
        }

        node->seed = 1;

        if (node->socklen == 0) {
            /* a seed named by a host name, resolved at configuration */
            ngx_memcpy(&node->sockaddr, seed[i].sockaddr,
                       ngx_min(seed[i].socklen, sizeof(ngx_sockaddr_t)));
            node->socklen = seed[i].socklen;
        }

        if (ngx_http_webhook_cluster_connect(cl, node) == NGX_ERROR) {
            return NULL;
        }
    }

    cl->wanted = 1;

    return cl;
}


static void
ngx_http_webhook_cluster_exit(void *data)
{
    ngx_http_webhook_cluster_t  *cl = data;

    ngx_uint_t                i;
    ngx_http_webhook_node_t  *node;

    cl->exiting = 1;

    ngx_http_webhook_cluster_state(cl, NGX_HTTP_WEBHOOK_CLUSTER_IDLE);

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    if (cl->sweep.posted) {
        ngx_delete_posted_event(&cl->sweep);
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node == NULL) {
            continue;
        }

        if (node->rd) {
            ngx_http_webhook_redis_destroy(node->rd);
        }

        ngx_free(node);
        cl->nodes[i] = NULL;
    }
}


static void
ngx_http_webhook_cluster_state(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_cluster_state_e state)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cl->log, 0,
                   "webhook: redis cluster: %s -> %s",
                   ngx_http_webhook_cluster_states[cl->state],
                   ngx_http_webhook_cluster_states[state]);

    cl->state = state;
}


/* the node of an address, added when new */

ngx_http_webhook_node_t *
ngx_http_webhook_cluster_add(ngx_http_webhook_cluster_t *cl, u_char *text,
    size_t len)
{
    u_char                    buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                 escaped;
    ngx_uint_t                i, hole;
    ngx_addr_t                addr;
    ngx_pool_t               *pool;
    ngx_http_webhook_node_t  *node;

    hole = cl->nnodes;

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node == NULL) {
            hole = ngx_min(hole, i);
            continue;
        }

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

    if (hole == NGX_HTTP_WEBHOOK_CLUSTER_NODES || len >= NGX_SOCKADDR_STRLEN)
    {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "webhook: redis cluster: node \"%*s\" left out (at "
                      "most %d nodes at once)", len, text,
                      NGX_HTTP_WEBHOOK_CLUSTER_NODES);
        return NULL;
    }

    node = ngx_calloc(sizeof(ngx_http_webhook_node_t), cl->log);
    if (node == NULL) {
        return NULL;
    }

    node->cluster = cl;
    node->addr_text.data = node->text;
    node->addr_text.len = ngx_cpymem(node->text, text, len) - node->text;

    pool = ngx_create_pool(1024, cl->log);
    if (pool == NULL) {
        ngx_free(node);
        return NULL;
    }

    if (ngx_parse_addr_port(pool, &addr, text, len) == NGX_OK
        && addr.socklen <= sizeof(ngx_sockaddr_t))
    {
        ngx_memcpy(&node->sockaddr, addr.sockaddr, addr.socklen);
        node->socklen = addr.socklen;
    }

    ngx_destroy_pool(pool);

    node->index = hole;
    cl->nodes[hole] = node;

    if (hole == cl->nnodes) {
        cl->nnodes++;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cl->log, 0,
                   "webhook: redis cluster: node %V added (%ui)",
                   &node->addr_text, hole);

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
        rd = ngx_http_webhook_redis_create(cl->cycle, cl->rcf, &cl->setup,
                                           &ngx_http_webhook_cluster_handler,
                                           node);
        if (rd == NULL) {
            return NGX_ERROR;
        }

        ngx_http_webhook_redis_address(rd, &node->sockaddr.sockaddr,
                                       node->socklen, NULL, &node->addr_text);

        node->rd = rd;
    }

    rd->reconnect = 1;

    if (rd->state == NGX_HTTP_WEBHOOK_REDIS_IDLE) {
        ngx_http_webhook_redis_connect(rd);
    }

    return NGX_OK;
}


/* a node that is no primary: no connection kept, no reconnection */

static void
ngx_http_webhook_cluster_retire(ngx_http_webhook_node_t *node)
{
    ngx_http_webhook_redis_t  *rd;

    rd = node->rd;

    if (rd == NULL || !rd->reconnect) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "webhook: redis cluster: %V owns no slot, its connection "
                  "is closed", &node->addr_text);

    rd->reconnect = 0;
    ngx_http_webhook_redis_stop(rd);
}


/* the nodes that own no slot and have nothing in flight are forgotten */

static void
ngx_http_webhook_cluster_sweep(ngx_event_t *ev)
{
    ngx_http_webhook_cluster_t  *cl = ev->data;

    ngx_uint_t                i;
    ngx_http_webhook_node_t  *node;

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node == NULL || node->seed || node->slots || node == cl->asked
            || (node->rd && ngx_http_webhook_redis_busy(node->rd)))
        {
            continue;
        }

        ngx_http_webhook_cluster_forget(cl, node);
    }

    while (cl->nnodes && cl->nodes[cl->nnodes - 1] == NULL) {
        cl->nnodes--;
    }
}


static void
ngx_http_webhook_cluster_forget(ngx_http_webhook_cluster_t *cl,
    ngx_http_webhook_node_t *node)
{
    ngx_uint_t  s;

    ngx_log_error(NGX_LOG_INFO, cl->log, 0,
                  "webhook: redis cluster: %V owns no slot and has nothing "
                  "in flight: forgotten", &node->addr_text);

    /* no slot points to it; should one, it has no owner any more */

    for (s = 0; s < NGX_HTTP_WEBHOOK_SLOTS_ALL; s++) {
        if (cl->owner[s] == node->index + 1) {
            cl->owner[s] = 0;
        }
    }

    if (node->rd) {
        ngx_http_webhook_redis_destroy(node->rd);
    }

    cl->nodes[node->index] = NULL;
    ngx_free(node);
}


/* where a slot's commands go: NULL when no node is known to own it */

static ngx_http_webhook_redis_t *
ngx_http_webhook_cluster_route(void *data, ngx_uint_t slot)
{
    ngx_http_webhook_cluster_t  *cl = data;

    ngx_http_webhook_node_t  *node;

    node = ngx_http_webhook_cluster_owner(cl, slot);

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

    if (node->rd == NULL || !node->rd->reconnect) {
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
        if (cl->nodes[i] == NULL) {
            continue;
        }

        rd = cl->nodes[i]->rd;

        if (rd == NULL || !rd->reconnect
            || rd->state <= NGX_HTTP_WEBHOOK_REDIS_BACKOFF)
        {
            continue;
        }

        if (rd->state == NGX_HTTP_WEBHOOK_REDIS_READY) {
            return rd;
        }

        if (found == NULL) {
            found = rd;
        }
    }

    return found;
}


/* the connection of a slot's primary, if any: nothing is started */

static ngx_http_webhook_redis_t *
ngx_http_webhook_cluster_conn(void *data, ngx_uint_t slot)
{
    ngx_http_webhook_node_t  *node;

    node = ngx_http_webhook_cluster_owner(data, slot);

    return node ? node->rd : NULL;
}


ngx_http_webhook_node_t *
ngx_http_webhook_cluster_owner(ngx_http_webhook_cluster_t *cl,
    ngx_uint_t slot)
{
    ngx_uint_t  i;

    if (slot >= NGX_HTTP_WEBHOOK_SLOTS_ALL) {
        return NULL;
    }

    i = cl->owner[slot];

    return i ? cl->nodes[i - 1] : NULL;
}


/* the slot's owner is now node (a MOVED) */

void
ngx_http_webhook_cluster_own(ngx_http_webhook_cluster_t *cl,
    ngx_uint_t slot, ngx_http_webhook_node_t *node)
{
    ngx_http_webhook_node_t  *old;

    old = ngx_http_webhook_cluster_owner(cl, slot);

    if (old) {
        old->slots--;
    }

    cl->owner[slot] = (uint16_t) (node->index + 1);
    node->slots++;
}


static ngx_uint_t
ngx_http_webhook_cluster_up(void *data, ngx_uint_t slot)
{
    ngx_http_webhook_cluster_t  *cl = data;

    ngx_uint_t                i;
    ngx_http_webhook_node_t  *node;

    if (slot == NGX_HTTP_WEBHOOK_ANY_SLOT) {
        for (i = 0; i < cl->nnodes; i++) {
            node = cl->nodes[i];

            if (node && node->slots && ngx_http_webhook_redis_ready(node->rd))
            {
                return 1;
            }
        }

        return 0;
    }

    node = ngx_http_webhook_cluster_owner(cl, slot);

    return node && ngx_http_webhook_redis_ready(node->rd);
}


/* a node's connection is ready: the refresh waited for one */

static void
ngx_http_webhook_cluster_ready(ngx_http_webhook_redis_t *rd)
{
    ngx_http_webhook_node_t     *node = rd->data;
    ngx_http_webhook_cluster_t  *cl = node->cluster;

    if (cl->wanted && cl->state != NGX_HTTP_WEBHOOK_CLUSTER_ASKING) {
        ngx_http_webhook_cluster_refresh(cl);
    }
}


/* a node's connection is lost: the cluster may have failed over */

static void
ngx_http_webhook_cluster_lost(ngx_http_webhook_redis_t *rd)
{
    ngx_http_webhook_node_t  *node = rd->data;

    ngx_http_webhook_cluster_want(node->cluster,
                                  NGX_HTTP_WEBHOOK_REFRESH_MIN);
}


/*
 * An error reply on a node: MOVED and ASK are followed; READONLY (a
 * primary demoted, whose connection stays) closes the connection, and
 * the map is read again, as after CLUSTERDOWN (a failover under way)
 */

static ngx_int_t
ngx_http_webhook_cluster_error(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply)
{
    ngx_int_t                 rc;
    ngx_http_webhook_node_t  *node = rd->data;

    rc = ngx_http_webhook_cluster_redirect(rd, cmd, reply);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_webhook_redis_readonly(reply)) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "webhook: redis at %V is read-only (no longer the "
                      "primary), reading the cluster's map again",
                      &rd->addr_text);

        /* the lost connection asks for the map */
        return NGX_DONE;
    }

    if (ngx_http_webhook_redis_error_is(reply, "CLUSTERDOWN",
                                        sizeof("CLUSTERDOWN") - 1))
    {
        ngx_http_webhook_cluster_want(node->cluster,
                                      NGX_HTTP_WEBHOOK_REFRESH_MIN);
    }

    return NGX_DECLINED;
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

    if (cl->state == NGX_HTTP_WEBHOOK_CLUSTER_ASKING || cl->exiting
        || ngx_exiting || ngx_terminate || ngx_quit)
    {
        return;
    }

    for (n = 0; n < cl->nnodes; n++) {
        i = (cl->next + n) % cl->nnodes;
        node = cl->nodes[i];

        if (node == NULL || !ngx_http_webhook_redis_ready(node->rd)) {
            continue;
        }

        cl->next = i + 1;

        if (ngx_http_webhook_redis_command(node->rd, NULL, 0, 2, cl->argv,
                                           cl->argvlen,
                                           ngx_http_webhook_cluster_slots, cl)
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

        ngx_http_webhook_cluster_state(cl, NGX_HTTP_WEBHOOK_CLUSTER_ASKING);
        ngx_add_timer(&cl->refresh, cl->rcf->timeout);

        return;
    }

    /* none is ready: the retired ones are connected to again */

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i]) {
            (void) ngx_http_webhook_cluster_connect(cl, cl->nodes[i]);
        }
    }

    ngx_http_webhook_cluster_want(cl, cl->backoff);
}


/* the map is to be read again, in delay ms at the latest */

void
ngx_http_webhook_cluster_want(ngx_http_webhook_cluster_t *cl,
    ngx_msec_t delay)
{
    cl->wanted = 1;

    if (cl->state != NGX_HTTP_WEBHOOK_CLUSTER_IDLE || cl->exiting
        || ngx_exiting || ngx_terminate || ngx_quit)
    {
        /* asked already (then again), or waiting already */
        return;
    }

    ngx_http_webhook_cluster_state(cl, NGX_HTTP_WEBHOOK_CLUSTER_WAITING);
    ngx_add_timer(&cl->refresh, delay);

    cl->backoff = ngx_min(cl->backoff * 2, NGX_HTTP_WEBHOOK_REFRESH_MAX);
}


static void
ngx_http_webhook_cluster_timer(ngx_event_t *ev)
{
    ngx_http_webhook_cluster_t  *cl = ev->data;

    switch (cl->state) {

    case NGX_HTTP_WEBHOOK_CLUSTER_ASKING:

        /* CLUSTER SLOTS unanswered: its connection is closed, which
         * fails it, and the next node is asked */

        ngx_log_error(NGX_LOG_ERR, cl->log, NGX_ETIMEDOUT,
                      "webhook: redis cluster: CLUSTER SLOTS on %V timed "
                      "out, closing the connection", &cl->asked->addr_text);

        ngx_http_webhook_redis_close(cl->asked->rd, 1);
        return;

    case NGX_HTTP_WEBHOOK_CLUSTER_WAITING:
        ngx_http_webhook_cluster_state(cl, NGX_HTTP_WEBHOOK_CLUSTER_IDLE);
        cl->wanted = 1;
        ngx_http_webhook_cluster_refresh(cl);
        return;

    default: /* IDLE: no timer */
        return;
    }
}


/* the answer of CLUSTER SLOTS, NULL when its connection was lost */

static void
ngx_http_webhook_cluster_slots(void *data, redisReply *reply,
    ngx_uint_t failure)
{
    ngx_http_webhook_cluster_t  *cl = data;

    u_char                    buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_int_t                 rc;
    ngx_str_t                 text;
    ngx_http_webhook_node_t  *asked;

    (void) failure;              /* the reply says all */

    if (cl->exiting) {
        cl->asked = NULL;
        return;
    }

    if (cl->refresh.timer_set) {
        /* the question's */
        ngx_del_timer(&cl->refresh);
    }

    /* the node asked stays known while its answer is read */

    asked = cl->asked;
    rc = reply ? ngx_http_webhook_cluster_map(cl, reply) : NGX_ERROR;
    cl->asked = NULL;

    ngx_http_webhook_cluster_state(cl, NGX_HTTP_WEBHOOK_CLUSTER_IDLE);

    if (rc != NGX_OK) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "webhook: redis cluster: CLUSTER SLOTS failed on "
                          "%V: %V", &asked->addr_text,
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                    reply->str, reply->len));
        }

        /* the next node, at once */
        ngx_http_webhook_cluster_want(cl, NGX_HTTP_WEBHOOK_REFRESH_MIN);
        return;
    }

    ngx_http_webhook_cluster_apply(cl);

    /* the nodes it closed are forgotten once this handler has returned */

    if (!cl->sweep.posted) {
        ngx_post_event(&cl->sweep, &ngx_posted_events);
    }

    if (ngx_http_webhook_cluster_needed_down(cl)) {
        /* a failover under way: asked again until a primary answers */
        ngx_http_webhook_cluster_want(cl, cl->backoff);
        return;
    }

    cl->backoff = NGX_HTTP_WEBHOOK_REFRESH_MIN;

    if (cl->wanted) {
        /* a MOVED or a lost connection meanwhile */
        ngx_http_webhook_cluster_want(cl, NGX_HTTP_WEBHOOK_REFRESH_MIN);
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
        if (cl->nodes[i]) {
            cl->nodes[i]->slots = 0;
        }
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
            if (cl->owner[s] == 0) {
                cl->owner[s] = (uint16_t) (node->index + 1);
                node->slots++;
            }
        }
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

        ip = cl->asked->rd->host;
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

        if (node == NULL) {
            continue;
        }

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

    for (i = 0; i < cl->rcf->queues->names.nelts; i++) {
        node = ngx_http_webhook_cluster_owner(cl, cl->rcf->queues->slots[i]);

        if (node == NULL || node->rd == NULL
            || node->rd->state <= NGX_HTTP_WEBHOOK_REDIS_BACKOFF)
        {
            return 1;
        }
    }

    return 0;
}


/* the i-th primary known */

static ngx_int_t
ngx_http_webhook_cluster_primary(void *data, ngx_uint_t i, ngx_str_t *addr,
    ngx_uint_t *up, ngx_uint_t *slots)
{
    ngx_http_webhook_cluster_t  *cl = data;

    ngx_uint_t                n;
    ngx_http_webhook_node_t  *node;

    for (n = 0; n < cl->nnodes; n++) {
        node = cl->nodes[n];

        if (node == NULL || node->slots == 0) {
            continue;
        }

        if (i-- == 0) {
            *addr = node->addr_text;
            *slots = node->slots;
            *up = ngx_http_webhook_redis_ready(node->rd);
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_webhook_cluster_slot_primary(void *data, ngx_uint_t slot,
    ngx_str_t *addr, ngx_uint_t *up)
{
    ngx_http_webhook_node_t  *node;

    node = ngx_http_webhook_cluster_owner(data, slot);

    if (node == NULL) {
        return NGX_DECLINED;
    }

    *addr = node->addr_text;
    *up = ngx_http_webhook_redis_ready(node->rd);

    return NGX_OK;
}
