
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_MODULE_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"


typedef struct ngx_http_webhook_stats_s     ngx_http_webhook_stats_t;
typedef struct ngx_http_webhook_counters_s  ngx_http_webhook_counters_t;


typedef struct {
    ngx_str_t                    text;
    u_char                       sha[40];     /* hex SHA1, for EVALSHA */
} ngx_http_webhook_script_t;


typedef struct {
    ngx_str_t                    addr_text;   /* as configured */
    ngx_str_t                    host;        /* numeric, null-terminated */
    ngx_str_t                    host_name;   /* as written, for TLS */
    ngx_int_t                    port;        /* 0 for a unix socket */
    ngx_str_t                    unix_path;   /* null-terminated */
    struct sockaddr             *sockaddr;    /* to connect to */
    socklen_t                    socklen;
    ngx_resolver_t              *resolver;    /* NULL: resolved once */
    ngx_msec_t                   resolver_timeout;
    ngx_int_t                    db;
    ngx_str_t                    user;
    ngx_str_t                    password;
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   timeout;
    ngx_str_t                    sentinel_name;   /* of the master */
    ngx_array_t                 *sentinels;       /* of ngx_addr_t */
    ngx_str_t                    sentinel_user;
    ngx_str_t                    sentinel_password;
    ngx_array_t                 *cluster;         /* seeds, ngx_addr_t */
    ngx_int_t                    wait_replicas;   /* 0: no WAIT */
    ngx_msec_t                   wait_timeout;

#if (NGX_SSL)
    ngx_flag_t                   ssl;
    ngx_flag_t                   ssl_verify;
    ngx_str_t                    ssl_trusted_certificate;
    ngx_str_t                    ssl_name;        /* null-terminated */
    ngx_str_t                    ssl_certificate;
    ngx_str_t                    ssl_certificate_key;
    ngx_uint_t                   ssl_protocols;
    ngx_ssl_t                   *ssl_ctx;         /* NULL: no TLS */
#endif

    ngx_array_t                  queues;      /* of ngx_str_t */
    ngx_array_t                  token_files; /* ngx_http_webhook_tokens_t */
    ngx_uint_t                   queue_slot[NGX_HTTP_WEBHOOK_MAX_QUEUES];
    ngx_uint_t                   used;        /* any webhook location */
    ngx_uint_t                   batch_max;   /* the largest location's */

    ngx_http_webhook_script_t    enqueue;     /* run inside Redis */
    ngx_http_webhook_script_t    status;
    ngx_http_webhook_script_t    reject;

    ngx_http_webhook_stats_t    *stats;
    ngx_uint_t                   generation;  /* of this configuration */
    ngx_http_webhook_counters_t *counters[NGX_HTTP_WEBHOOK_MAX_QUEUES];
    ngx_int_t                    request_id_index;

    ngx_path_t                  *spool_path;  /* webhook_spool, NULL: off */
    off_t                        spool_max_size;
    void                        *spool_pool;  /* ngx_thread_pool_t */
} ngx_http_webhook_main_conf_t;


typedef struct {
    ngx_flag_t                   receive;
    ngx_flag_t                   status;
    ngx_str_t                    queue;
    ngx_uint_t                   queue_index; /* in the main conf's queues */
    ngx_uint_t                   slot;        /* the queue's, for Cluster */
    ngx_str_t                    token_file;
    ngx_array_t                 *tokens;      /* of ngx_http_webhook_token_t */
    ngx_flag_t                   tokens_off;  /* webhook_token_file off */
    ngx_http_complex_value_t    *sender;      /* webhook_sender */
    ngx_str_t                    api_key_header;
    ngx_uint_t                   default_priority;
    ngx_http_complex_value_t    *instant_priority;  /* NULL: high */
    ngx_uint_t                   schema_any;
    ngx_int_t                    json_depth;  /* levels of a body */
    ngx_uint_t                   batch_max;
    time_t                       dedupe;      /* seconds, 0: off */
    ngx_int_t                    max_depth;   /* 0: off */
    time_t                       retry_after;
    ngx_uint_t                   rejected_max;    /* entries, 0: off */
    size_t                       rejected_size;   /* bytes of the list */
    size_t                       rejected_entry;  /* bytes of a body */
    ngx_flag_t                   spool;       /* webhook_spool off: 0 */
} ngx_http_webhook_loc_conf_t;


/* ngx_http_webhook_receive.c */
ngx_int_t ngx_http_webhook_receive_handler(ngx_http_request_t *r);

/* ngx_http_webhook_respond.c */
void ngx_http_webhook_receive_filter_init(void);

/* ngx_http_webhook_variables.c */
ngx_int_t ngx_http_webhook_receive_variables(ngx_conf_t *cf);

/* ngx_http_webhook_status.c */
ngx_int_t ngx_http_webhook_status_handler(ngx_http_request_t *r);

/* ngx_http_webhook_script.c */
void ngx_http_webhook_scripts(ngx_http_webhook_main_conf_t *wmcf);


#endif /* _NGX_HTTP_WEBHOOK_MODULE_H_INCLUDED_ */
