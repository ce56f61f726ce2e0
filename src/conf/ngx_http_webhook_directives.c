
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The parsers of the directives' arguments: the Redis address and
 * password file, the handlers, the token file, the rejected list's
 * bounds, and values with "off" or bounds.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "receive/ngx_http_webhook_auth.h"
#include "ngx_http_webhook_directives.h"
#include "redis/ngx_http_webhook_redis.h"


#define NGX_HTTP_WEBHOOK_REDIS_PORT     6379
#define NGX_HTTP_WEBHOOK_SENTINEL_PORT  26379

/* a unix socket path, null-terminated in sun_path */
#define NGX_HTTP_WEBHOOK_UNIX_PATH_MAX                                       \
    (sizeof(((struct sockaddr_un *) 0)->sun_path) - 1)


/* webhook_redis 127.0.0.1:6379 | [::1]:6379 | host:port | unix:/path */

char *
ngx_http_webhook_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    size_t               len;
    ngx_url_t            u;
    ngx_str_t           *value;
    struct sockaddr_un  *sun;

    if (wmcf->addr_text.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    wmcf->addr_text = value[1];

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        wmcf->unix_path.len = value[1].len - 5;

        if (wmcf->unix_path.len > NGX_HTTP_WEBHOOK_UNIX_PATH_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": the unix socket path in \"%V\" is "
                               "longer than %uz characters",
                               &cmd->name, &value[1],
                               NGX_HTTP_WEBHOOK_UNIX_PATH_MAX);
            return NGX_CONF_ERROR;
        }

        wmcf->unix_path.data = ngx_pnalloc(cf->pool, wmcf->unix_path.len + 1);
        if (wmcf->unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(wmcf->unix_path.data, value[1].data + 5,
                    wmcf->unix_path.len + 1);
        wmcf->port = 0;

        sun = ngx_pcalloc(cf->pool, sizeof(struct sockaddr_un));
        if (sun == NULL) {
            return NGX_CONF_ERROR;
        }

        sun->sun_family = AF_UNIX;
        ngx_memcpy(sun->sun_path, wmcf->unix_path.data, wmcf->unix_path.len);

        wmcf->sockaddr = (struct sockaddr *) sun;
        wmcf->socklen = sizeof(struct sockaddr_un);

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

    wmcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (wmcf->host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                        wmcf->host.data, NGX_SOCKADDR_STRLEN, 0);
    wmcf->host.data[len] = '\0';
    wmcf->host.len = len;
    wmcf->port = u.port;
    wmcf->sockaddr = u.addrs[0].sockaddr;
    wmcf->socklen = u.addrs[0].socklen;
    wmcf->host_name = u.host;

    return NGX_CONF_OK;
}


char *
ngx_http_webhook_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    ngx_str_t  *value;

    if (wmcf->password.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_webhook_read_secret(cf, &cmd->name, &value[1],
                                        &wmcf->user, &wmcf->password);
}


static char *ngx_http_webhook_addresses(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_uint_t first, in_port_t port, ngx_array_t **addrs);


/* webhook_redis_sentinel <master-name> host:port [host:port ...] */

char *
ngx_http_webhook_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    ngx_str_t  *value;

    if (wmcf->sentinels) {
        return "is duplicate";
    }

    value = cf->args->elts;
    wmcf->sentinel_name = value[1];

    return ngx_http_webhook_addresses(cf, cmd, 2,
                                      NGX_HTTP_WEBHOOK_SENTINEL_PORT,
                                      &wmcf->sentinels);
}


/* webhook_redis_cluster host:port [host:port ...]: the seed nodes */

char *
ngx_http_webhook_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    if (wmcf->cluster) {
        return "is duplicate";
    }

    return ngx_http_webhook_addresses(cf, cmd, 1, NGX_HTTP_WEBHOOK_REDIS_PORT,
                                      &wmcf->cluster);
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
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_addr_t  *seed;

    if (wmcf->cluster == NULL) {
        return NGX_CONF_OK;
    }

    if (wmcf->sentinels || wmcf->addr_text.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_cluster\" and \"%s\" are "
                           "exclusive: with Cluster, the seed nodes name "
                           "the primaries",
                           wmcf->sentinels ? "webhook_redis_sentinel"
                                           : "webhook_redis");
        return NGX_CONF_ERROR;
    }

    if (wmcf->db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_db %i\": Redis Cluster has "
                           "only database 0", wmcf->db);
        return NGX_CONF_ERROR;
    }

    /* for the checks that Redis is configured, and the status */

    seed = wmcf->cluster->elts;
    wmcf->addr_text = seed[0].name;

    return NGX_CONF_OK;
}


/*
 * The keyslot of a queue's keys: with Cluster, a queue must have a hash
 * tag, or its keys would land in different slots and the script fail
 * with CROSSSLOT
 */

ngx_int_t
ngx_http_webhook_queue_slot(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf, ngx_str_t *queue, ngx_uint_t *slot)
{
    size_t   len;

    *slot = 0;

    if (wmcf->cluster == NULL) {
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
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    ngx_str_t  *value;

    if (wmcf->sentinel_password.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_webhook_read_secret(cf, &cmd->name, &value[1],
                                        &wmcf->sentinel_user,
                                        &wmcf->sentinel_password);
}


/* webhook_redis_wait <numreplicas> [timeout] */

char *
ngx_http_webhook_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    ngx_int_t   n;
    ngx_msec_t  ms;
    ngx_str_t  *value;

    if (wmcf->wait_replicas != NGX_CONF_UNSET) {
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

    wmcf->wait_replicas = n;

    if (cf->args->nelts == 3) {
        ms = ngx_parse_time(&value[2], 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"%V\" is not a timeout (0 would "
                               "make Redis wait for ever)", &cmd->name,
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        wmcf->wait_timeout = ms;
    }

    return NGX_CONF_OK;
}


/* webhook_receive; and webhook_status;: the content handler */

char *
ngx_http_webhook_set_handler(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_loc_conf_t  *wlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (wlcf->receive != NGX_CONF_UNSET || wlcf->status != NGX_CONF_UNSET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": the location already has a webhook "
                           "handler", &cmd->name);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (cmd->offset == offsetof(ngx_http_webhook_loc_conf_t, receive)) {
        clcf->handler = ngx_http_webhook_receive_handler;
        wlcf->receive = 1;
        wlcf->status = 0;

    } else {
        clcf->handler = ngx_http_webhook_status_handler;
        wlcf->status = 1;
        wlcf->receive = 0;
    }

    return NGX_CONF_OK;
}


/*
 * webhook_rejected off | <entries> [max_size=<size>] [entry=<size>]:
 * the bounds of <queue>:rejected, and how much of a body one entry keeps
 */

char *
ngx_http_webhook_rejected(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_loc_conf_t  *wlcf = conf;

    size_t      *size;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (wlcf->rejected_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return "takes no parameters after \"off\"";
        }

        wlcf->rejected_max = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes \"off\" or a number of entries, "
                           "not \"%V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    wlcf->rejected_max = n;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            size = &wlcf->rejected_size;
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

        } else if (ngx_strncmp(value[i].data, "entry=", 6) == 0) {
            size = &wlcf->rejected_entry;
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": unknown parameter \"%V\" (max_size= "
                               "or entry=)", &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        *size = ngx_parse_size(&s);
        if (*size == (size_t) NGX_ERROR || *size == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": invalid size \"%V\"",
                               &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * webhook_token_file: read where it stands, once, so that every location
 * of its http or server block shares the digests and a bad file is
 * reported at its own line
 */

char *
ngx_http_webhook_token_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_loc_conf_t  *wlcf = conf;

    ngx_str_t  *value;

    if (wlcf->tokens != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    wlcf->token_file = value[1];

    /* off: no token is checked, nginx's own modules decide who may push */

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        wlcf->tokens = NULL;
        wlcf->tokens_off = 1;
        return NGX_CONF_OK;
    }

    wlcf->tokens_off = 0;

    return ngx_http_webhook_read_tokens(cf, &cmd->name, &wlcf->token_file,
                                        &wlcf->tokens);
}


/* like ngx_conf_set_enum_slot(), with a message that names the choices */

char *
ngx_http_webhook_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *last;
    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;
    u_char            names[128];

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len != 0; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    last = names;

    for (i = 0; e[i].name.len != 0; i++) {
        last = ngx_slprintf(last, names + sizeof(names), "%s\"%V\"",
                            i ? ", " : "", &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, "
                       "it must be one of %*s",
                       &value[1], &cmd->name, last - names, names);

    return NGX_CONF_ERROR;
}


char *
ngx_http_webhook_set_sec_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    time_t     *sp;
    ngx_str_t  *value;

    sp = (time_t *) (p + cmd->offset);

    if (*sp != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *sp = 0;
        return NGX_CONF_OK;
    }

    *sp = ngx_parse_time(&value[1], 1);

    if (*sp == (time_t) NGX_ERROR || *sp == 0) {
        return "must be a time of at least 1s, or \"off\"";
    }

    return NGX_CONF_OK;
}


char *
ngx_http_webhook_set_num_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_int_t  *np;
    ngx_str_t  *value;

    np = (ngx_int_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *np = 0;
        return NGX_CONF_OK;
    }

    *np = ngx_atoi(value[1].data, value[1].len);

    if (*np == NGX_ERROR || *np == 0) {
        return "must be a positive number, or \"off\"";
    }

    return NGX_CONF_OK;
}


/* ngx_conf_check_num_bounds(), with the directive's name in its message */

char *
ngx_http_webhook_num_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    ngx_str_t  *value;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" must be from %i to %i, not \"%V\"",
                       &value[0], bounds->low, bounds->high, &value[1]);

    return NGX_CONF_ERROR;
}


/* like ngx_conf_set_msec_slot(); 0 would fail every request or connect */

char *
ngx_http_webhook_set_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char        *rv;
    ngx_msec_t  *msp;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    msp = (ngx_msec_t *) (p + cmd->offset);

    if (*msp == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be at least 1ms: with 0, every "
                           "wait on Redis would time out at once",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
