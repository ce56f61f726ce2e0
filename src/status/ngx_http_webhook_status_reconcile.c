
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The reconcilers in the status location's answer.  A reconciler
 * (docker/consumer/webhook-reconcile) replays through the receive location
 * the events Odoo recorded as not acknowledged, marked "X-Webhook-Replay";
 * per queue, the module counts those requests by result (shared memory),
 * and each reconciler keeps a heartbeat in the hash <queue>:reconcilers,
 * read by the status script with the depths: per reconciler, the age of
 * its last successful pass, events replayed, events waiting, last error.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_status.h"
#include "stats/ngx_http_webhook_stats.h"
#include "core/ngx_http_webhook_core.h"
#include "redis/ngx_http_webhook_redis.h"


/* what the status script returns for one reconciler */
#define NGX_HTTP_WEBHOOK_RECONCILER_FIELDS  8


static ngx_int_t ngx_http_webhook_reconciler_read(ngx_pool_t *pool,
    ngx_http_webhook_reconciler_t *rc, redisReply **e);
static ngx_int_t ngx_http_webhook_reply_str(ngx_pool_t *pool, ngx_str_t *s,
    redisReply *e);
static u_char *ngx_http_webhook_reconciler_json(u_char *p,
    ngx_http_webhook_reconciler_t *rc);
static u_char *ngx_http_webhook_age_json(u_char *p, int64_t ms);
static u_char *ngx_http_webhook_reconciler_series(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs,
    ngx_uint_t field);


/*
 * The status script's keys of the reconcilers, <queue>:reconcilers of each
 * of the n queues from argv[k] on, then its ARGV: n.  Returns the new
 * argc, 0 on error.
 */

ngx_uint_t
ngx_http_webhook_status_reconcile_args(ngx_http_request_t *r, ngx_uint_t n,
    ngx_str_t *queue, const char **argv, size_t *argvlen, ngx_uint_t k)
{
    u_char      *p, *buf;
    ngx_uint_t   i;

    buf = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (buf == NULL) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        p = ngx_pnalloc(r->pool, queue[i].len + sizeof(":reconcilers"));
        if (p == NULL) {
            return 0;
        }

        argv[k] = (char *) p;
        argvlen[k] = ngx_sprintf(p, "%V:reconcilers", &queue[i]) - p;
        k++;
    }

    argv[k] = (char *) buf;
    argvlen[k] = ngx_sprintf(buf, "%ui", n) - buf;

    return k + 1;
}


/*
 * The status script's answer of one queue: an array, for each reconciler
 * (by name), its name, then the ages (ms) of its last successful pass and
 * of its last pass, events replayed, events waiting, whether its last pass
 * failed, the last error ("" when none) and its age (ms, -1: none)
 */

ngx_int_t
ngx_http_webhook_status_reconcile_read(ngx_pool_t *pool,
    ngx_http_webhook_reconcilers_t *recs, redisReply *reply)
{
    ngx_uint_t                      i, n;
    ngx_http_webhook_reconciler_t  *rc;

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements % NGX_HTTP_WEBHOOK_RECONCILER_FIELDS)
    {
        return NGX_ERROR;
    }

    n = reply->elements / NGX_HTTP_WEBHOOK_RECONCILER_FIELDS;

    rc = ngx_pcalloc(pool, (n + 1) * sizeof(ngx_http_webhook_reconciler_t));
    if (rc == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_webhook_reconciler_read(pool, &rc[i], reply->element
                                  + i * NGX_HTTP_WEBHOOK_RECONCILER_FIELDS)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    recs->elts = rc;
    recs->nelts = n;
    recs->known = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_reconciler_read(ngx_pool_t *pool,
    ngx_http_webhook_reconciler_t *rc, redisReply **e)
{
    ngx_uint_t  i;

    for (i = 1; i < NGX_HTTP_WEBHOOK_RECONCILER_FIELDS; i++) {
        if (i != 6 && e[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_webhook_reply_str(pool, &rc->name, e[0]) != NGX_OK
        || ngx_http_webhook_reply_str(pool, &rc->error, e[6]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc->success_age_ms = e[1]->integer;
    rc->pass_age_ms = e[2]->integer;
    rc->replayed = e[3]->integer;
    rc->waiting = e[4]->integer;
    rc->failing = (e[5]->integer != 0);
    rc->error_age_ms = e[7]->integer;

    return NGX_OK;
}


/* a copy of a string reply: the reply is freed when its handler returns */

static ngx_int_t
ngx_http_webhook_reply_str(ngx_pool_t *pool, ngx_str_t *s, redisReply *e)
{
    if (e->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    s->len = e->len;
    s->data = ngx_pnalloc(pool, e->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, e->str, e->len);

    return NGX_OK;
}


/* bytes the reconcilers add to the answer, JSON or Prometheus */

size_t
ngx_http_webhook_status_reconcile_len(ngx_http_webhook_main_conf_t *wmcf,
    ngx_http_webhook_reconcilers_t *recs)
{
    size_t                          len;
    ngx_str_t                      *queue;
    ngx_uint_t                      i, k;
    ngx_http_webhook_reconciler_t  *rc;

    queue = wmcf->queues.names.elts;
    len = 4096;

    for (i = 0; i < wmcf->queues.names.nelts; i++) {

        /* "replays" and nginx_webhook_replays_total, each result */
        len += NGX_HTTP_WEBHOOK_NRESULTS * (64 + 2 * queue[i].len);

        for (k = 0; recs && k < recs[i].nelts; k++) {
            rc = &recs[i].elts[k];

            /* escaped: 6 bytes a byte in JSON, 2 in a label */
            len += 1024 + 6 * rc->name.len + 6 * rc->error.len
                   + 4 * 2 * (queue[i].len + rc->name.len);
        }
    }

    return len;
}


/* ,"replays":{...},"reconcilers":{...} of queue i */

u_char *
ngx_http_webhook_status_reconcile_json(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs,
    ngx_uint_t i)
{
    ngx_uint_t                    k;
    ngx_http_webhook_counters_t  *cnt;

    cnt = wmcf->queues.counters[i];

    if (cnt == NULL) {
        p = ngx_sprintf(p, ",\"replays\":null");

    } else {
        p = ngx_sprintf(p, ",\"replays\":{");

        for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
            p = ngx_sprintf(p, "%s\"%V\":%uA", k ? "," : "",
                            &ngx_http_webhook_results[k], cnt->replays[k]);
        }

        *p++ = '}';
    }

    if (recs == NULL || !recs[i].known) {
        return ngx_sprintf(p, ",\"reconcilers\":null");
    }

    p = ngx_sprintf(p, ",\"reconcilers\":{");

    for (k = 0; k < recs[i].nelts; k++) {
        p = ngx_sprintf(p, "%s\"", k ? "," : "");
        p = ngx_http_webhook_reconciler_json(p, &recs[i].elts[k]);
    }

    *p++ = '}';

    return p;
}


/* name":{...} */

static u_char *
ngx_http_webhook_reconciler_json(u_char *p, ngx_http_webhook_reconciler_t *rc)
{
    p = ngx_http_webhook_json_escape(p, rc->name.data, rc->name.len);
    p = ngx_sprintf(p, "\":{\"last_success_age_seconds\":");
    p = ngx_http_webhook_age_json(p, rc->success_age_ms);
    p = ngx_sprintf(p, ",\"last_pass_age_seconds\":");
    p = ngx_http_webhook_age_json(p, rc->pass_age_ms);
    p = ngx_sprintf(p, ",\"replayed\":%L,\"waiting\":%L,\"failing\":%s,"
                    "\"error\":",
                    rc->replayed, rc->waiting,
                    rc->failing ? "true" : "false");

    if (rc->error.len) {
        *p++ = '"';
        p = ngx_http_webhook_json_escape(p, rc->error.data, rc->error.len);
        *p++ = '"';

    } else {
        p = ngx_sprintf(p, "null");
    }

    p = ngx_sprintf(p, ",\"error_age_seconds\":");
    p = ngx_http_webhook_age_json(p, rc->error_age_ms);

    *p++ = '}';

    return p;
}


/* an age in milliseconds as seconds; a negative one (none) as null */

static u_char *
ngx_http_webhook_age_json(u_char *p, int64_t ms)
{
    if (ms < 0) {
        return ngx_sprintf(p, "null");
    }

    return ngx_http_webhook_seconds(p, (uint64_t) ms * 1000);
}


/* the families of the reconcilers, in the order of their fields */

#define NGX_HTTP_WEBHOOK_REC_SUCCESS   0
#define NGX_HTTP_WEBHOOK_REC_REPLAYED  1
#define NGX_HTTP_WEBHOOK_REC_WAITING   2
#define NGX_HTTP_WEBHOOK_REC_FAILING   3
#define NGX_HTTP_WEBHOOK_REC_NFIELDS   4

#define ngx_http_webhook_rec_family(name, type, help)                        \
    { ngx_string("# HELP " name " " help "\n# TYPE " name " " type "\n"),   \
      name }


typedef struct {
    ngx_str_t                     header;
    char                         *name;
} ngx_http_webhook_rec_family_t;


static ngx_http_webhook_rec_family_t  ngx_http_webhook_rec_families[] = {
    ngx_http_webhook_rec_family(
        "nginx_webhook_reconciler_success_age_seconds", "gauge",
        "Seconds since the reconciler's last successful pass (since its "
        "first report before one)."),
    ngx_http_webhook_rec_family(
        "nginx_webhook_reconciler_replayed_total", "counter",
        "Events the reconciler replayed and the module answered 200."),
    ngx_http_webhook_rec_family(
        "nginx_webhook_reconciler_waiting", "gauge",
        "Events Odoo holds as not acknowledged that the reconciler's last "
        "pass could not replay."),
    ngx_http_webhook_rec_family(
        "nginx_webhook_reconciler_failing", "gauge",
        "Whether the reconciler's last pass failed.")
};


u_char *
ngx_http_webhook_status_reconcile_text(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs)
{
    ngx_str_t                      *queue;
    ngx_uint_t                      i, k;
    ngx_http_webhook_rec_family_t  *f;

    queue = wmcf->queues.names.elts;

    p = ngx_http_webhook_family(p, "nginx_webhook_replays_total", "counter",
                                "Requests marked X-Webhook-Replay (a "
                                "reconciler's), by result.");

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        if (wmcf->queues.counters[i] == NULL) {
            continue;
        }

        for (k = 0; k < NGX_HTTP_WEBHOOK_NRESULTS; k++) {
            p = ngx_sprintf(p, "nginx_webhook_replays_total{queue=");
            p = ngx_http_webhook_label(p, &queue[i]);
            p = ngx_sprintf(p, ",result=\"%V\"} %uA\n",
                            &ngx_http_webhook_results[k],
                            wmcf->queues.counters[i]->replays[k]);
        }
    }

    for (k = 0; recs && k < NGX_HTTP_WEBHOOK_REC_NFIELDS; k++) {
        f = &ngx_http_webhook_rec_families[k];
        p = ngx_cpymem(p, f->header.data, f->header.len);
        p = ngx_http_webhook_reconciler_series(p, wmcf, recs, k);
    }

    return p;
}


static u_char *
ngx_http_webhook_reconciler_series(u_char *p,
    ngx_http_webhook_main_conf_t *wmcf, ngx_http_webhook_reconcilers_t *recs,
    ngx_uint_t field)
{
    ngx_str_t                      *queue;
    ngx_uint_t                      i, k;
    ngx_http_webhook_reconciler_t  *rc;

    queue = wmcf->queues.names.elts;

    for (i = 0; i < wmcf->queues.names.nelts; i++) {
        for (k = 0; k < recs[i].nelts; k++) {
            rc = &recs[i].elts[k];

            p = ngx_sprintf(p, "%s{queue=",
                            ngx_http_webhook_rec_families[field].name);
            p = ngx_http_webhook_label(p, &queue[i]);
            p = ngx_sprintf(p, ",reconciler=");
            p = ngx_http_webhook_label(p, &rc->name);
            *p++ = '}';
            *p++ = ' ';

            switch (field) {

            case NGX_HTTP_WEBHOOK_REC_SUCCESS:
                p = ngx_http_webhook_seconds(p, rc->success_age_ms < 0 ? 0
                                       : (uint64_t) rc->success_age_ms * 1000);
                break;

            case NGX_HTTP_WEBHOOK_REC_REPLAYED:
                p = ngx_sprintf(p, "%L", rc->replayed);
                break;

            case NGX_HTTP_WEBHOOK_REC_WAITING:
                p = ngx_sprintf(p, "%L", rc->waiting);
                break;

            default: /* NGX_HTTP_WEBHOOK_REC_FAILING */
                p = ngx_sprintf(p, "%ui", rc->failing);
            }

            *p++ = LF;
        }
    }

    return p;
}
