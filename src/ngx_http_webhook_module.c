
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Module glue: the directives, their configurations and checks, and the
 * worker's start and exit (the parsers of the directives' arguments are
 * in ngx_http_webhook_directives.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "receive/ngx_http_webhook_receive.h"
#include "status/ngx_http_webhook_status.h"
#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"
#include "spool/ngx_http_webhook_spool.h"
#include "stats/ngx_http_webhook_stats.h"


static ngx_int_t ngx_http_webhook_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_webhook_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_webhook_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_webhook_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_webhook_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_webhook_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_webhook_redis_resolver(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf);
static ngx_int_t ngx_http_webhook_add_queue(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_loc_conf_t *wlcf);

/* Redis's time of the enqueue script for one event, measured */
#define NGX_HTTP_WEBHOOK_EVENT_USEC  13

/* Redis checks the timeouts of blocked clients about every 100 ms */
#define NGX_HTTP_WEBHOOK_WAIT_SLACK  100


static char *ngx_http_webhook_set_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_webhook_spool(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_webhook_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_webhook_init_process(ngx_cycle_t *cycle);
static void ngx_http_webhook_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_webhook_priority_names[] = {
    { ngx_string("high"), NGX_HTTP_WEBHOOK_HIGH },
    { ngx_string("medium"), NGX_HTTP_WEBHOOK_MEDIUM },
    { ngx_string("low"), NGX_HTTP_WEBHOOK_LOW },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_webhook_schema_names[] = {
    { ngx_string("event"), 0 },
    { ngx_string("any"), 1 },
    { ngx_null_string, 0 }
};


/* levels of objects and arrays in a body: the check recurses */

static ngx_conf_num_bounds_t  ngx_http_webhook_json_depth_bounds = {
    ngx_http_webhook_num_bounds, 1, NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH
};


static ngx_command_t  ngx_http_webhook_commands[] = {

    { ngx_string("webhook_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_redis_db"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.db),
      NULL },

    { ngx_string("webhook_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_set_timeout,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.connect_timeout),
      NULL },

    { ngx_string("webhook_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_set_timeout,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.timeout),
      NULL },

    { ngx_string("webhook_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_webhook_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_redis_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_webhook_redis_cluster,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_redis_sentinel_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_redis_sentinel_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_redis_wait"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_webhook_redis_wait,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

#if (NGX_SSL)

    { ngx_string("webhook_redis_ssl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl),
      NULL },

    { ngx_string("webhook_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl_verify),
      NULL },

    { ngx_string("webhook_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl_trusted_certificate),
      NULL },

    { ngx_string("webhook_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl_name),
      NULL },

    { ngx_string("webhook_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl_certificate),
      NULL },

    { ngx_string("webhook_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl_certificate_key),
      NULL },

    { ngx_string("webhook_redis_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_webhook_main_conf_t, redis.ssl_protocols),
      &ngx_http_webhook_redis_ssl_protocols },

#endif

    { ngx_string("webhook_receive"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_webhook_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, receive),
      NULL },

    { ngx_string("webhook_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_webhook_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, status),
      NULL },

    { ngx_string("webhook_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, queue),
      NULL },

    { ngx_string("webhook_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_token_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_sender"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, sender),
      NULL },

    { ngx_string("webhook_api_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, api_key_header),
      NULL },

    { ngx_string("webhook_default_priority"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, default_priority),
      &ngx_http_webhook_priority_names },

    { ngx_string("webhook_instant_priority"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, instant_priority),
      NULL },

    { ngx_string("webhook_schema"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, schema_any),
      &ngx_http_webhook_schema_names },

    { ngx_string("webhook_json_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, json_depth),
      &ngx_http_webhook_json_depth_bounds },

    { ngx_string("webhook_batch_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, batch_max),
      NULL },

    { ngx_string("webhook_dedupe"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_set_sec_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, dedupe),
      NULL },

    { ngx_string("webhook_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_webhook_set_num_or_off,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, max_depth),
      NULL },

    { ngx_string("webhook_spool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_webhook_spool,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_rejected"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_webhook_rejected,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("webhook_retry_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_webhook_loc_conf_t, retry_after),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_webhook_module_ctx = {
    ngx_http_webhook_preconfiguration,     /* preconfiguration */
    ngx_http_webhook_postconfiguration,    /* postconfiguration */

    ngx_http_webhook_create_main_conf,     /* create main configuration */
    ngx_http_webhook_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_webhook_create_loc_conf,      /* create location configuration */
    ngx_http_webhook_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_webhook_module = {
    NGX_MODULE_V1,
    &ngx_http_webhook_module_ctx,          /* module context */
    ngx_http_webhook_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_webhook_init_module,          /* init module */
    ngx_http_webhook_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_webhook_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_webhook_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_webhook_receive_variables(cf);
}


static ngx_int_t
ngx_http_webhook_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_webhook_main_conf_t  *wmcf;

    static ngx_str_t  request_id = ngx_string("request_id");

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_webhook_module);

    if (!wmcf->used) {
        return NGX_OK;
    }

    wmcf->request_id_index = ngx_http_get_variable_index(cf, &request_id);
    if (wmcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_webhook_scripts(&wmcf->redis);

    if (ngx_http_webhook_stats_zone(cf, &wmcf->queues) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_webhook_spool_check(cf, &wmcf->spool) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_webhook_receive_filter_init();

    return NGX_OK;
}


static void *
ngx_http_webhook_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_webhook_main_conf_t));
    if (wmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wmcf->redis.addr_text = { 0, NULL };
     *     wmcf->redis.host = { 0, NULL };
     *     wmcf->redis.port = 0;
     *     wmcf->redis.unix_path = { 0, NULL };
     *     wmcf->redis.user = { 0, NULL };
     *     wmcf->redis.password = { 0, NULL };
     *     wmcf->used = 0;
     *     wmcf->queues.stats = NULL;
     */

    wmcf->redis.db = NGX_CONF_UNSET;
    wmcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;
    wmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    wmcf->redis.wait_replicas = NGX_CONF_UNSET;
    wmcf->redis.wait_timeout = NGX_CONF_UNSET_MSEC;

#if (NGX_SSL)
    wmcf->redis.ssl = NGX_CONF_UNSET;
    wmcf->redis.ssl_verify = NGX_CONF_UNSET;
    wmcf->redis.ssl_protocols = 0;
#endif

    if (ngx_array_init(&wmcf->queues.names, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&wmcf->token_files, cf->pool, 2,
                       sizeof(ngx_http_webhook_tokens_t))
        != NGX_OK)
    {
        return NULL;
    }

    /* each part's view of the others it needs */

    wmcf->redis.queues = &wmcf->queues;
    wmcf->spool.queues = &wmcf->queues;
    wmcf->spool.redis = &wmcf->redis;

    /* a new zone: nginx started, the spool recovers what it left */

    wmcf->queues.zone_made = ngx_http_webhook_spool_recover;
    wmcf->queues.zone_made_data = &wmcf->spool;

    return wmcf;
}


static char *
ngx_http_webhook_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_webhook_main_conf_t  *wmcf = conf;

    ngx_conf_init_value(wmcf->redis.db, 0);
    ngx_conf_init_msec_value(wmcf->redis.connect_timeout, 1000);
    ngx_conf_init_msec_value(wmcf->redis.timeout, 2000);

    if (wmcf->redis.db < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_db\" must not be negative");
        return NGX_CONF_ERROR;
    }

    if (wmcf->redis.sentinels && wmcf->redis.addr_text.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis\" and \"webhook_redis_sentinel\" "
                           "are exclusive: with Sentinel, the sentinels name "
                           "the primary");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_webhook_cluster_conf(cf, &wmcf->redis) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (wmcf->redis.sentinels) {
        /* until a sentinel names the primary */
        wmcf->redis.addr_text = wmcf->redis.sentinel_name;
    }

    if (ngx_http_webhook_redis_resolver(cf, wmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(wmcf->redis.wait_replicas, 0);
    ngx_conf_init_msec_value(wmcf->redis.wait_timeout,
                             ngx_min(500, wmcf->redis.timeout / 4));

    /*
     * a write sent while a WAIT blocks the connection waits for it, then
     * for its own WAIT: both must answer before the request times out
     */

    if (wmcf->redis.wait_replicas
        && 2 * (wmcf->redis.wait_timeout + NGX_HTTP_WEBHOOK_WAIT_SLACK)
           >= wmcf->redis.timeout)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_wait\": the timeout (%M ms) "
                           "must be below half of webhook_redis_timeout "
                           "(%M ms) minus %d ms (Redis's own timer "
                           "granularity): a write may wait for the WAIT "
                           "before its own", wmcf->redis.wait_timeout,
                           wmcf->redis.timeout, NGX_HTTP_WEBHOOK_WAIT_SLACK);
        return NGX_CONF_ERROR;
    }

#if (NGX_SSL)
    if (ngx_http_webhook_redis_ssl_conf(cf, &wmcf->redis) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }
#endif

    return NGX_CONF_OK;
}


static void *
ngx_http_webhook_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_webhook_loc_conf_t));
    if (wlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wlcf->queue = { 0, NULL };
     *     wlcf->queue_index = 0;
     *     wlcf->token_file = { 0, NULL };
     *     wlcf->api_key_header = { 0, NULL };
     */

    wlcf->receive = NGX_CONF_UNSET;
    wlcf->status = NGX_CONF_UNSET;
    wlcf->tokens = NGX_CONF_UNSET_PTR;

    wlcf->default_priority = NGX_CONF_UNSET_UINT;
    wlcf->instant_priority = NGX_CONF_UNSET_PTR;
    wlcf->sender = NGX_CONF_UNSET_PTR;
    wlcf->tokens_off = NGX_CONF_UNSET;
    wlcf->rejected_max = NGX_CONF_UNSET_UINT;
    wlcf->rejected_size = NGX_CONF_UNSET_SIZE;
    wlcf->rejected_entry = NGX_CONF_UNSET_SIZE;
    wlcf->schema_any = NGX_CONF_UNSET_UINT;
    wlcf->json_depth = NGX_CONF_UNSET;
    wlcf->batch_max = NGX_CONF_UNSET_UINT;
    wlcf->dedupe = NGX_CONF_UNSET;
    wlcf->max_depth = NGX_CONF_UNSET;
    wlcf->retry_after = NGX_CONF_UNSET;
    wlcf->spool = NGX_CONF_UNSET;

    return wlcf;
}


static char *
ngx_http_webhook_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_webhook_loc_conf_t  *prev = parent;
    ngx_http_webhook_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    /*
     * an "if" or "limit_except" block inside a location runs the
     * location's handler with its own configuration: it is the location's
     * (the counters, the JSON answers and the handler read it); a nested
     * location has a handler of its own, and is not a webhook one unless
     * it says so
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->noname) {
        ngx_conf_merge_value(conf->receive, prev->receive, 0);
        ngx_conf_merge_value(conf->status, prev->status, 0);

        /*
         * the methods limit_except allows run with its block's own
         * configuration and content handler: the location's, as
         * proxy_pass does it
         */

        if (clcf->lmt_excpt && clcf->handler == NULL) {
            if (conf->receive) {
                clcf->handler = ngx_http_webhook_receive_handler;

            } else if (conf->status) {
                clcf->handler = ngx_http_webhook_status_handler;
            }
        }

    } else {
        ngx_conf_init_value(conf->receive, 0);
        ngx_conf_init_value(conf->status, 0);
    }

    ngx_conf_merge_str_value(conf->queue, prev->queue, "{webhook}");
    ngx_conf_merge_str_value(conf->token_file, prev->token_file, "");
    ngx_conf_merge_ptr_value(conf->tokens, prev->tokens, NULL);
    ngx_conf_merge_value(conf->tokens_off, prev->tokens_off, 0);
    ngx_conf_merge_ptr_value(conf->sender, prev->sender, NULL);
    ngx_conf_merge_str_value(conf->api_key_header, prev->api_key_header, "");
    ngx_conf_merge_uint_value(conf->default_priority, prev->default_priority,
                              NGX_HTTP_WEBHOOK_MEDIUM);
    ngx_conf_merge_ptr_value(conf->instant_priority, prev->instant_priority,
                             NULL);
    ngx_conf_merge_uint_value(conf->schema_any, prev->schema_any, 1);
    ngx_conf_merge_value(conf->json_depth, prev->json_depth,
                         NGX_HTTP_WEBHOOK_JSON_DEPTH);
    ngx_conf_merge_uint_value(conf->batch_max, prev->batch_max, 10000);
    ngx_conf_merge_sec_value(conf->dedupe, prev->dedupe, 3600);
    ngx_conf_merge_value(conf->max_depth, prev->max_depth, 0);
    ngx_conf_merge_sec_value(conf->retry_after, prev->retry_after, 5);
    ngx_conf_merge_value(conf->spool, prev->spool, 1);
    ngx_conf_merge_uint_value(conf->rejected_max, prev->rejected_max, 1000);
    ngx_conf_merge_size_value(conf->rejected_size, prev->rejected_size,
                              4 * 1024 * 1024);
    ngx_conf_merge_size_value(conf->rejected_entry, prev->rejected_entry,
                              16 * 1024);

    if (!conf->receive && !conf->status) {
        return NGX_CONF_OK;
    }

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_webhook_module);

    if (wmcf->redis.addr_text.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" requires \"webhook_redis\" (or "
                           "\"webhook_redis_sentinel\") in the http block",
                           conf->receive ? "webhook_receive"
                                         : "webhook_status");
        return NGX_CONF_ERROR;
    }

    wmcf->used = 1;

    if (!conf->receive) {
        return NGX_CONF_OK;
    }

    if (conf->tokens == NULL && !conf->tokens_off) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_receive\" requires "
                           "\"webhook_token_file\" (a file of tokens, or "
                           "off to leave access to nginx's own modules)");
        return NGX_CONF_ERROR;
    }

    if (conf->instant_priority && conf->instant_priority->lengths == NULL
        && ngx_http_webhook_priority(conf->instant_priority->value.data,
                                     conf->instant_priority->value.len)
           == NGX_ERROR)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_instant_priority\" must be high, "
                           "medium, low or a variable");
        return NGX_CONF_ERROR;
    }

    if (conf->queue.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_queue\" must not be empty");
        return NGX_CONF_ERROR;
    }

    if (conf->batch_max == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_batch_max\" must be at least 1");
        return NGX_CONF_ERROR;
    }

    /*
     * the enqueue script takes about 13 us of Redis's time an event (with
     * dedupe, measured on Redis 7.0): the largest batch must stay well
     * inside webhook_redis_timeout, whose expiry closes the connection
     * that every waiting request shares
     */

    if (conf->batch_max * NGX_HTTP_WEBHOOK_EVENT_USEC / 1000
        > wmcf->redis.timeout / 4)
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"webhook_batch_max %ui\": such a batch may take "
                           "Redis about %ui ms, more than a quarter of "
                           "webhook_redis_timeout (%M ms)", conf->batch_max,
                           conf->batch_max * NGX_HTTP_WEBHOOK_EVENT_USEC
                           / 1000, wmcf->redis.timeout);
    }

    /* the largest reply of the enqueue script: one element an event */
    wmcf->redis.batch_max = ngx_max(wmcf->redis.batch_max, conf->batch_max);

    if (ngx_http_webhook_add_queue(cf, wmcf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->spool) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        ngx_http_webhook_spool_check_body(cf, &wmcf->spool,
                                          clcf->client_max_body_size);
    }

    return NGX_CONF_OK;
}


/*
 * With nginx's resolver in the http block, a host name in webhook_redis
 * is resolved again at each connect (managed Redis fails over by moving
 * the address behind the name); it is resolved once at configuration
 * time all the same, so that nginx -t checks it
 */

static ngx_int_t
ngx_http_webhook_redis_resolver(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_str_t                 *host;
    ngx_http_core_loc_conf_t  *clcf;
#if (NGX_HAVE_INET6)
    u_char                     buf[16];
#endif

    host = &wmcf->redis.host_name;

    if (host->len == 0 || host->data[0] == '['
        || ngx_inet_addr(host->data, host->len) != INADDR_NONE
#if (NGX_HAVE_INET6)
        || ngx_inet6_addr(host->data, host->len, buf) == NGX_OK
#endif
        )
    {
        return NGX_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->resolver == NGX_CONF_UNSET_PTR || clcf->resolver == NULL
        || clcf->resolver->connections.nelts == 0)
    {
        return NGX_OK;
    }

    wmcf->redis.resolver = clcf->resolver;
    wmcf->redis.resolver_timeout = clcf->resolver_timeout == NGX_CONF_UNSET_MSEC
                             ? 30000 : clcf->resolver_timeout;

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_add_queue(ngx_conf_t *cf, ngx_http_webhook_main_conf_t *wmcf,
    ngx_http_webhook_loc_conf_t *wlcf)
{
    ngx_str_t   *queue;
    ngx_uint_t   i;

    if (ngx_http_webhook_queue_slot(cf, &wmcf->redis, &wlcf->queue,
                                    &wlcf->slot)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    queue = wmcf->queues.names.elts;

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if (queue[i].len == wlcf->queue.len
            && ngx_strncmp(queue[i].data, wlcf->queue.data, queue[i].len)
               == 0)
        {
            wlcf->queue_index = i;
            return NGX_OK;
        }
    }

    /* the counters of each queue have a slot in the stats zone */

    if (wmcf->queues.names.nelts == NGX_HTTP_WEBHOOK_MAX_QUEUES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_queue\": more than %d queues in one "
                           "configuration, \"%V\" is one too many",
                           NGX_HTTP_WEBHOOK_MAX_QUEUES, &wlcf->queue);
        return NGX_ERROR;
    }

    if (wlcf->queue.len > NGX_HTTP_WEBHOOK_MAX_NAME) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_queue\": \"%V\" is longer than %d "
                           "characters", &wlcf->queue,
                           NGX_HTTP_WEBHOOK_MAX_NAME);
        return NGX_ERROR;
    }

    queue = ngx_array_push(&wmcf->queues.names);
    if (queue == NULL) {
        return NGX_ERROR;
    }

    *queue = wlcf->queue;
    wlcf->queue_index = wmcf->queues.names.nelts - 1;
    wmcf->queues.slots[wlcf->queue_index] = wlcf->slot;

    return NGX_OK;
}


/* the configuration loaded is the running one: its counters' generation */

static ngx_int_t
ngx_http_webhook_init_module(ngx_cycle_t *cycle)
{
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_webhook_module);

    if (wmcf) {
        ngx_http_webhook_stats_commit(&wmcf->queues);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_init_process(ngx_cycle_t *cycle)
{
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_webhook_module);

    if (wmcf == NULL || !wmcf->used) {
        return NGX_OK;
    }

    /* the cache manager and loader (NGX_PROCESS_HELPER) serve no request */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_http_webhook_redis_init(cycle, &wmcf->redis) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_webhook_spool_init_process(cycle, &wmcf->spool);
}


static void
ngx_http_webhook_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_webhook_spool_exit_process();
    ngx_http_webhook_redis_exit(cycle);
}


/* webhook_receive; and webhook_status;: the content handler */

static char *
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


/* webhook_spool: a path at the http level, "off" at any level */

static char *
ngx_http_webhook_spool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_webhook_loc_conf_t *wlcf = conf;

    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_webhook_module);

    return ngx_http_webhook_spool_parse(cf, cmd, &wmcf->spool, &wlcf->spool);
}
