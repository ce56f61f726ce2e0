
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * What the parts of the status location's answer share.
 */


#ifndef _NGX_HTTP_WEBHOOK_STATUS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <hiredis/hiredis.h>

#include "receive/ngx_http_webhook_receive.h"


#define ngx_http_webhook_family(p, name, type, help)                         \
    ngx_cpymem(p, "# HELP " name " " help "\n# TYPE " name " " type "\n",     \
               sizeof("# HELP " name " " help "\n# TYPE " name " " type "\n") \
               - 1)


/* a queue's list and dead-letter list of one priority, as read */

typedef struct {
    ngx_int_t                     depth;
    ngx_int_t                     dead;
    int64_t                       age_ms;
} ngx_http_webhook_depth_t;


/* a queue's events in flight in the consumers, as read */

typedef struct {
    ngx_int_t                     events;
    ngx_int_t                     reclaimed;
    int64_t                       age_ms;
} ngx_http_webhook_inflight_t;


struct redisReply;


/* a reconciler's heartbeat, as the status script read it */

typedef struct {
    ngx_str_t                     name;
    int64_t                       success_age_ms;
    int64_t                       pass_age_ms;
    int64_t                       replayed;
    int64_t                       waiting;
    ngx_uint_t                    failing;
    ngx_str_t                     error;         /* empty: none */
    int64_t                       error_age_ms;  /* -1: none */
} ngx_http_webhook_reconciler_t;


/* the reconcilers of a queue */

typedef struct {
    ngx_http_webhook_reconciler_t *elts;
    ngx_uint_t                    nelts;
    ngx_uint_t                    known;         /* read from Redis */
} ngx_http_webhook_reconcilers_t;


/* ngx_http_webhook_status.c */
ngx_int_t ngx_http_webhook_status_handler(ngx_http_request_t *r);
u_char *ngx_http_webhook_label(u_char *p, ngx_str_t *value);
u_char *ngx_http_webhook_seconds(u_char *p, uint64_t usec);

/* ngx_http_webhook_status_text.c: Prometheus */
u_char *ngx_http_webhook_status_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_uint_t up,
    ngx_http_webhook_depth_t *depths, ngx_http_webhook_inflight_t *inflight,
    ngx_uint_t *known, ngx_http_webhook_reconcilers_t *reconcile);

/* ngx_http_webhook_status_spool.c: bytes per queue, and in all */
#define NGX_HTTP_WEBHOOK_STATUS_SPOOL(qlen)  (1280 + 16 * 2 * (qlen))
#define NGX_HTTP_WEBHOOK_STATUS_SPOOL_ALL    (2048 + NGX_MAX_PATH * 2)

u_char *ngx_http_webhook_status_spool_json(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf);
u_char *ngx_http_webhook_status_spool_queue(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_uint_t i);
u_char *ngx_http_webhook_status_spool_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf);

/* ngx_http_webhook_status_cluster.c: bytes in all, and per queue */
#define NGX_HTTP_WEBHOOK_STATUS_CLUSTER_ALL  (64 * (NGX_SOCKADDR_STRLEN * 12 \
                                                    + 256))
#define NGX_HTTP_WEBHOOK_STATUS_CLUSTER      (NGX_SOCKADDR_STRLEN * 6 + 16)

u_char *ngx_http_webhook_status_cluster_json(u_char *p);
u_char *ngx_http_webhook_status_cluster_queue(u_char *p, ngx_uint_t slot);
u_char *ngx_http_webhook_status_cluster_text(u_char *p);

/* ngx_http_webhook_status_reconcile.c: the replays and the reconcilers */
ngx_uint_t ngx_http_webhook_status_reconcile_args(ngx_http_request_t *r,
    ngx_uint_t n, ngx_str_t *queue, const char **argv, size_t *argvlen,
    ngx_uint_t k);
ngx_int_t ngx_http_webhook_status_reconcile_read(ngx_pool_t *pool,
    ngx_http_webhook_reconcilers_t *recs, redisReply *reply);
size_t ngx_http_webhook_status_reconcile_len(
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs);
u_char *ngx_http_webhook_status_reconcile_json(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs,
    ngx_uint_t i);
u_char *ngx_http_webhook_status_reconcile_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs);


/* ngx_http_webhook_status_inflight.c: integers per queue, bytes per queue */
#define NGX_HTTP_WEBHOOK_INFLIGHT_FIELDS        3
#define NGX_HTTP_WEBHOOK_STATUS_INFLIGHT(qlen)  (640 + 3 * 2 * (qlen))

void ngx_http_webhook_status_inflight_read(
    ngx_http_webhook_inflight_t *inflight, struct redisReply **e,
    ngx_uint_t n);
u_char *ngx_http_webhook_status_inflight_json(u_char *p,
    ngx_http_webhook_inflight_t *in);
u_char *ngx_http_webhook_status_inflight_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_inflight_t *inflight,
    ngx_uint_t *known);


#endif /* _NGX_HTTP_WEBHOOK_STATUS_H_INCLUDED_ */
