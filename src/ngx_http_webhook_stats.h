
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"


#define NGX_HTTP_WEBHOOK_NBUCKETS    12
#define NGX_HTTP_WEBHOOK_MAX_NAME    128
#define NGX_HTTP_WEBHOOK_STATS_SIZE  (256 * 1024)


struct ngx_http_webhook_counters_s {
    u_char                        name[NGX_HTTP_WEBHOOK_MAX_NAME];
    size_t                        len;
    ngx_atomic_t                  requests[ngx_http_webhook_nresults];
    ngx_atomic_t                  events[NGX_HTTP_WEBHOOK_NPRIO];
};


struct ngx_http_webhook_stats_s {
    ngx_atomic_t                  reconnects;
    ngx_atomic_t                  duration[NGX_HTTP_WEBHOOK_NBUCKETS + 1];
    ngx_atomic_t                  duration_usec;
    ngx_uint_t                    nqueues;
    ngx_http_webhook_counters_t   queues[NGX_HTTP_WEBHOOK_MAX_QUEUES];
};


extern uint64_t  ngx_http_webhook_buckets[NGX_HTTP_WEBHOOK_NBUCKETS];


ngx_int_t ngx_http_webhook_stats_zone(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf);

void ngx_http_webhook_count_result(ngx_http_request_t *r, ngx_uint_t result);
void ngx_http_webhook_count_events(ngx_http_request_t *r,
    ngx_uint_t priority, ngx_uint_t n);
void ngx_http_webhook_count_duration(ngx_http_request_t *r, uint64_t usec);
void ngx_http_webhook_count_reconnect(ngx_http_webhook_main_conf_t *wmcf);
uint64_t ngx_http_webhook_now_usec(void);


#endif /* _NGX_HTTP_WEBHOOK_STATS_H_INCLUDED_ */
