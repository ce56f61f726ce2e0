
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The directives that say how to reach Redis: its address, password file,
 * sentinels, Cluster's seeds, replica acknowledgement; and the checks at
 * the end of the http block (Cluster excludes the others, a queue's hash
 * tag).  The command table gives the redis part's offset in the main
 * configuration (cmd->offset).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <sys/un.h>

#include "ngx_http_webhook_redis.h"


#define NGX_HTTP_WEBHOOK_REDIS_PORT     6379
#define NGX_HTTP_WEBHOOK_SENTINEL_PORT  26379

/* a unix socket path, null-terminated in sun_path */
#define NGX_HTTP_WEBHOOK_UNIX_PATH_MAX                                       \
    (sizeof(((struct sockaddr_un *) 0)->sun_path) - 1)

#define ngx_http_webhook_redis_part(conf, cmd)                               \
    ((ngx_http_webhook_redis_conf_t *) ((u_char *) (conf) + (cmd)->offset))


static char *ngx_http_webhook_addresses(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_uint_t first, in_port_t port, ngx_array_t **addrs);


/* webhook_redis 127.0.0.1:6379 | [::1]:6379 | host:port | unix:/path */

char *
ngx_http_webhook_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_redis_conf_t  *rcf = ngx_http_webhook_redis_part(conf,
                                                                     cmd);

    size_t               len;
    ngx_url_t            u;
    ngx_str_t           *value;
    struct sockaddr_un  *sun;

    if (rcf->addr_text.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    rcf->addr_text = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        rcf->unix_path.len = value[1].len - 5;

        if (rcf->unix_path.len > NGX_HTTP_WEBHOOK_UNIX_PATH_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": the unix socket path in \"%V\" is "
                               "longer than %uz characters",
                               &cmd->name, &value[1],
                               NGX_HTTP_WEBHOOK_UNIX_PATH_MAX);
            return NGX_CONF_ERROR;
        }

        rcf->unix_path.data = ngx_pnalloc(cf->pool, rcf->unix_path.len + 1);
        if (rcf->unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rcf->unix_path.data, value[1].data + 5,
                    rcf->unix_path.len + 1);
        rcf->port = 0;

        sun = ngx_pcalloc(cf->pool, sizeof(struct sockaddr_un));
        if (sun == NULL) {
            return NGX_CONF_ERROR;
        }

        sun->sun_family = AF_UNIX;
        ngx_memcpy(sun->sun_path, rcf->unix_path.data, rcf->unix_path.len);

        rcf->sockaddr = (struct sockaddr *) sun;
        rcf->socklen = sizeof(struct sockaddr_un);

        return NGX_CONF_OK;
    }

    /* resolved now: a worker must not block on getaddrinfo() */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = NGX_HTTP_WEBHOOK_REDIS_PORT;
    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s in \"%V\"",
                           &cmd->name, u.err ? u.err : "not an address",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": no address for \"%V\"",
                           &cmd->name, &u.url);
        return NGX_CONF_ERROR;
    }

    rcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rcf->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                        rcf->host.data, NGX_SOCKADDR_STRLEN, 0);
    rcf->host.data[len] = '\0';
    rcf->host.len = len;
    rcf->port = u.port;
    rcf->sockaddr = u.addrs[0].sockaddr;
    rcf->socklen = u.addrs[0].socklen;
    rcf->host_name = u.host;

    return NGX_CONF_OK;
}


char *
ngx_http_webhook_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_redis_conf_t  *rcf = ngx_http_webhook_redis_part(conf,
                                                                     cmd);

    ngx_str_t  *value;

    if (rcf->password.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_webhook_read_secret(cf, &cmd->name, &value[1],
                                        &rcf->user, &rcf->password);
}


/* webhook_redis_sentinel <master-name> host:port [host:port ...] */

char *
ngx_http_webhook_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_redis_conf_t  *rcf = ngx_http_webhook_redis_part(conf,
                                                                     cmd);

    ngx_str_t  *value;

    if (rcf->sentinels) {
        return "is duplicate";
    }

    value = cf->args->elts;
    rcf->sentinel_name = value[1];

    return ngx_http_webhook_addresses(cf, cmd, 2,
                                      NGX_HTTP_WEBHOOK_SENTINEL_PORT,
                                      &rcf->sentinels);
}


/* webhook_redis_cluster host:port [host:port ...]: the seed nodes */

char *
ngx_http_webhook_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_redis_conf_t  *rcf = ngx_http_webhook_redis_part(conf,
                                                                     cmd);

    if (rcf->cluster) {
        return "is duplicate";
    }

    return ngx_http_webhook_addresses(cf, cmd, 1, NGX_HTTP_WEBHOOK_REDIS_PORT,
                                      &rcf->cluster);
}


/* the arguments from first on, each host:port, as ngx_addr_t named so */

static char *
ngx_http_webhook_addresses(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_uint_t first, in_port_t port, ngx_array_t **addrs)
{
    ngx_url_t    u;
    ngx_str_t   *value;
    ngx_addr_t  *addr;
    ngx_uint_t   i;

    value = cf->args->elts;

    *addrs = ngx_array_create(cf->pool, cf->args->nelts - first,
                              sizeof(ngx_addr_t));
    if (*addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = first; i < cf->args->nelts; i++) {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[i];
        u.default_port = port;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.uri.len
            || u.naddrs == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s in \"%V\"",
                               &cmd->name, u.err ? u.err : "no address",
                               &u.url);
            return NGX_CONF_ERROR;
        }

        addr = ngx_array_push(*addrs);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        *addr = u.addrs[0];
        addr->name = value[i];
    }

    return NGX_CONF_OK;
}


/*
 * At the end of the http block: Cluster excludes the other ways of naming
 * Redis, and databases other than 0 (Cluster has only that one)
 */

char *
ngx_http_webhook_cluster_conf(ngx_conf_t *cf,
    ngx_http_webhook_redis_conf_t *rcf)
{
    ngx_addr_t  *seed;

    if (rcf->cluster == NULL) {
        return NGX_CONF_OK;
    }

    if (rcf->sentinels || rcf->addr_text.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_cluster\" and \"%s\" are "
                           "exclusive: with Cluster, the seed nodes name "
                           "the primaries",
                           rcf->sentinels ? "webhook_redis_sentinel"
                                           : "webhook_redis");
        return NGX_CONF_ERROR;
    }

    if (rcf->db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_db %i\": Redis Cluster has "
                           "only database 0", rcf->db);
        return NGX_CONF_ERROR;
    }

    /* for the checks that Redis is configured, and the status */

    seed = rcf->cluster->elts;
    rcf->addr_text = seed[0].name;

    return NGX_CONF_OK;
}


/*
 * The keyslot of a queue's keys: with Cluster, a queue must have a hash
 * tag, or its keys would land in different slots and the script fail
 * with CROSSSLOT
 */

ngx_int_t
ngx_http_webhook_queue_slot(ngx_conf_t *cf,
    ngx_http_webhook_redis_conf_t *rcf, ngx_str_t *queue, ngx_uint_t *slot)
{
    size_t   len;

    *slot = 0;

    if (rcf->cluster == NULL) {
        return NGX_OK;
    }

    if (ngx_http_webhook_hash_tag(queue->data, queue->len, &len) == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_queue %V\" has no hash tag (a name "
                           "between { and }, such as \"{%V}\"): with "
                           "webhook_redis_cluster, its keys would land in "
                           "different slots and Redis would refuse the "
                           "script (CROSSSLOT)", queue, queue);
        return NGX_ERROR;
    }

    *slot = ngx_http_webhook_keyslot(queue->data, queue->len);

    return NGX_OK;
}


char *
ngx_http_webhook_redis_sentinel_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_redis_conf_t  *rcf = ngx_http_webhook_redis_part(conf,
                                                                     cmd);

    ngx_str_t  *value;

    if (rcf->sentinel_password.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_webhook_read_secret(cf, &cmd->name, &value[1],
                                        &rcf->sentinel_user,
                                        &rcf->sentinel_password);
}


/* webhook_redis_wait <numreplicas> [timeout] */

char *
ngx_http_webhook_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_redis_conf_t  *rcf = ngx_http_webhook_redis_part(conf,
                                                                     cmd);

    ngx_int_t   n;
    ngx_msec_t  ms;
    ngx_str_t  *value;

    if (rcf->wait_replicas != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" is not a number of replicas "
                           "(1 or more)", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    rcf->wait_replicas = n;

    if (cf->args->nelts == 3) {
        ms = ngx_parse_time(&value[2], 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"%V\" is not a timeout (0 would "
                               "make Redis wait for ever)", &cmd->name,
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        rcf->wait_timeout = ms;
    }

    return NGX_CONF_OK;
}
