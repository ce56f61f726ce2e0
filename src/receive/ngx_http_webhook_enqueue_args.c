
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The arguments of a request's enqueue: the script call with the events'
 * envelopes, list keys and seen (idempotency) keys, a plain LPUSH in its
 * place when nothing needs checking, and the SET of Odoo's test button.
 * ngx_http_webhook_enqueue.c sends them and answers.
 *
 *   EVALSHA sha numkeys
 *           <list key> x n, <seen key> x nseen          KEYS
 *           ttl max-depth n seen-ttl first-env-seen     ARGV[1..5]
 *           (seen key index, envelope id, envelope) x n
 *
 * The seen keys of the events with an id or an Idempotency-Key come
 * first; with the spool, every other event has one of its envelope id
 * (seen:env:<id>), which lives shorter.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "core/ngx_http_webhook_core.h"
#include "ngx_http_webhook_auth.h"
#include "ngx_http_webhook_receive.h"
#include "spool/ngx_http_webhook_spool.h"


typedef struct {
    ngx_int_t                    header_priority;   /* -1: none */
    ngx_int_t                    instant_priority;  /* -1: none */
    ngx_http_variable_value_t   *request_id;
    ngx_str_t                    at;                /* received_at */
    ngx_uint_t                   nuser;    /* seen keys of ids and keys */
    ngx_uint_t                   nseen;    /* seen keys in all */
    ngx_uint_t                   user;     /* the last of each kind used */
    ngx_uint_t                   env;
    ngx_uint_t                   spool;
    u_char                       time[NGX_HTTP_WEBHOOK_TIME_LEN];
} ngx_http_webhook_args_t;


static ngx_int_t ngx_http_webhook_args_init(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t n,
    ngx_str_t *idempotency, ngx_http_webhook_args_t *a);
static ngx_int_t ngx_http_webhook_event_args(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t i,
    ngx_http_webhook_args_t *a);
static ngx_int_t ngx_http_webhook_event_seen(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t i,
    ngx_str_t *idempotency, ngx_http_webhook_args_t *a);
static ngx_int_t ngx_http_webhook_seen_key(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *key, char *kind, ngx_uint_t at,
    ngx_uint_t index, ngx_uint_t s);
static ngx_int_t ngx_http_webhook_single_event(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev,
    ngx_str_t *idempotency);
static ngx_uint_t ngx_http_webhook_plain_push(ngx_http_webhook_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_script_args(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_uint_t nseen);
static ngx_int_t ngx_http_webhook_header_priority(ngx_http_request_t *r,
    ngx_int_t *priority);
static ngx_int_t ngx_http_webhook_instant_priority(ngx_http_request_t *r,
    ngx_int_t *priority);


ngx_int_t
ngx_http_webhook_prepare(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t n, ngx_str_t *idempotency)
{
    ngx_uint_t                    i;
    ngx_http_webhook_args_t       a;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (ngx_http_webhook_header_priority(r, &a.header_priority) != NGX_OK) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       NGX_HTTP_WEBHOOK_RESULT_INVALID,
                                       "invalid_priority",
                                       "header X-Webhook-Priority must be "
                                       "high, medium or low");
    }

    if (ngx_http_webhook_args_init(r, ctx, ev, n, idempotency, &a)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_webhook_event_args(r, ctx, &ev[i], i, &a) != NGX_OK
            || ngx_http_webhook_event_seen(r, ctx, &ev[i], i, idempotency,
                                           &a)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (n == 1
        && ngx_http_webhook_single_event(r, ctx, ev, idempotency) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (a.nseen == 0 && wlcf->max_depth == 0
        && ngx_http_webhook_plain_push(ctx))
    {
        return ngx_http_webhook_enqueue(r, ctx);
    }

    if (ngx_http_webhook_script_args(r, ctx, a.nseen) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_webhook_enqueue(r, ctx);
}


/* what every event's arguments need, and the arrays they go into */

static ngx_int_t
ngx_http_webhook_args_init(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t n, ngx_str_t *idempotency,
    ngx_http_webhook_args_t *a)
{
    ngx_uint_t                     i, argv0;
    ngx_time_t                    *tp;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    if (n == 1) {
        ctx->model = ev[0].model;
    }

    /* evaluated once, and only for instant events: a map may log */

    a->instant_priority = -1;

    for (i = 0; i < n; i++) {
        if (ev[i].instant) {
            if (ngx_http_webhook_instant_priority(r, &a->instant_priority)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;
        }
    }

    a->request_id = ngx_http_get_indexed_variable(r, wmcf->request_id_index);
    if (a->request_id == NULL || a->request_id->not_found) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    a->at.data = a->time;
    a->at.len = ngx_http_webhook_time(a->time, tp->sec, tp->msec) - a->time;

    /* the events with an idempotency key: their seen keys are KEYS too */

    a->nuser = 0;

    for (i = 0; wlcf->dedupe && i < n; i++) {
        if (ev[i].id_key.len || idempotency->len) {
            a->nuser++;
        }
    }

    /* with the spool, every event has one: its envelope id's, if no other */

    a->spool = ngx_http_webhook_spool_on(r);
    a->nseen = a->spool ? n : a->nuser;
    a->user = 0;
    a->env = a->nuser;

    argv0 = NGX_HTTP_WEBHOOK_CMD_ARGS + n + a->nseen;      /* ARGV[1] */

    ctx->nevents = n;
    ctx->argv0 = argv0;
    ctx->seen_env = a->nuser + 1;
    ctx->argc = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
                + NGX_HTTP_WEBHOOK_EVENT_ARGS * n;

    ctx->ids = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    ctx->priorities = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));
    ctx->warned = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));
    ctx->argv = ngx_palloc(r->pool, ctx->argc * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, ctx->argc * sizeof(size_t));

    if (ctx->ids == NULL || ctx->priorities == NULL || ctx->warned == NULL
        || ctx->argv == NULL || ctx->argvlen == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an event's priority, envelope id, envelope and list key */

static ngx_int_t
ngx_http_webhook_event_args(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t i, ngx_http_webhook_args_t *a)
{
    u_char                       *p;
    size_t                        len;
    ngx_int_t                     priority;
    ngx_uint_t                    k;
    ngx_str_t                    *id, *prio;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    /* the event's own, the header's, then the location's */

    priority = ev->priority;

    if (priority == -1) {
        priority = a->header_priority;
    }

    if (priority == -1) {
        priority = ev->instant ? a->instant_priority
                               : (ngx_int_t) wlcf->default_priority;
    }

    ctx->priorities[i] = priority;
    ctx->warned[i] = (ev->warnings != 0);
    prio = &ngx_http_webhook_priorities[priority];
    ev->sender = ctx->sender;

    /* the envelope id: $request_id, with "-<index>" in a batch */

    id = &ctx->ids[i];
    id->data = ngx_pnalloc(r->pool, a->request_id->len + 1 + NGX_INT_T_LEN);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    id->len = (ctx->batch ? ngx_sprintf(id->data, "%v-%ui", a->request_id, i)
                          : ngx_sprintf(id->data, "%v", a->request_id))
              - id->data;

    len = ngx_http_webhook_envelope_len(ev, id, &a->at, prio);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    k = ctx->argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
        + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

    ctx->argv[k + 1] = (char *) id->data;
    ctx->argvlen[k + 1] = id->len;
    ctx->argv[k + 2] = (char *) p;
    ctx->argvlen[k + 2] = ngx_http_webhook_envelope_write(p, ev, id, &a->at,
                                                          prio)
                          - p;

    /* the list key: <queue>:queue:<priority> */

    k = NGX_HTTP_WEBHOOK_CMD_ARGS + i;

    p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":queue:medium"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->argv[k] = (char *) p;
    ctx->argvlen[k] = ngx_sprintf(p, "%V:queue:%V", &wlcf->queue, prio) - p;

    return NGX_OK;
}


/* an event's seen key, if any, with its index after the list keys */

static ngx_int_t
ngx_http_webhook_event_seen(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t i, ngx_str_t *idempotency,
    ngx_http_webhook_args_t *a)
{
    char        *kind;
    ngx_uint_t   k, s;
    ngx_str_t   *key;

    k = ctx->argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
        + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

    if (a->nuser && (ev->id_key.len || idempotency->len)) {
        key = ev->id_key.len ? &ev->id_key : idempotency;
        kind = ev->id_key.len ? "id" : "key";
        s = ++a->user;

    } else if (a->spool) {
        key = &ctx->ids[i];
        kind = "env";
        s = ++a->env;

    } else {
        ctx->argv[k] = "0";
        ctx->argvlen[k] = 1;
        return NGX_OK;
    }

    return ngx_http_webhook_seen_key(r, ctx, key, kind,
                                     NGX_HTTP_WEBHOOK_CMD_ARGS
                                     + ctx->nevents + s - 1,
                                     k, s);
}


/*
 * <queue>:seen:id:<sender>:<event_id>, seen:key:<sender>:<header> for an
 * Idempotency-Key, seen:env:<envelope id> for the spool's own dedupe.
 */

static ngx_int_t
ngx_http_webhook_seen_key(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_str_t *key, char *kind, ngx_uint_t at, ngx_uint_t index,
    ngx_uint_t s)
{
    u_char                       *p;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":seen:key::")
                             + ctx->sender.len + key->len + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->argv[at] = (char *) p;

    if (kind[0] == 'e') {
        p = ngx_sprintf(p, "%V:seen:env:%V", &wlcf->queue, key);

    } else {
        p = ngx_sprintf(p, "%V:seen:%s:%V:%V", &wlcf->queue, kind,
                        &ctx->sender, key);
    }

    ctx->argvlen[at] = p - (u_char *) ctx->argv[at];

    ctx->argv[index] = (char *) p;
    ctx->argvlen[index] = ngx_sprintf(p, "%ui", s) - p;

    return NGX_OK;
}


/* for $webhook_priority and $webhook_event_id */

static ngx_int_t
ngx_http_webhook_single_event(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev,
    ngx_str_t *idempotency)
{
    ngx_str_t  *key;

    ctx->priority = ctx->priorities[0];

    key = ev->id_key.len ? &ev->id_key : idempotency;

    if (key->len) {
        ctx->event_id.len = key->len;
        ctx->event_id.data = ngx_pstrdup(r->pool, key);
        if (ctx->event_id.data == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Nothing to check before the push (no idempotency key, no depth limit)
 * and every event on one list: one LPUSH of all the envelopes does what
 * the script would, as atomically, for a fraction of Redis's time.  The
 * script's arguments become LPUSH's in place (each moves down).
 */

static ngx_uint_t
ngx_http_webhook_plain_push(ngx_http_webhook_ctx_t *ctx)
{
    ngx_uint_t  i, k;

    for (i = 1; i < ctx->nevents; i++) {
        if (ctx->priorities[i] != ctx->priorities[0]) {
            return 0;
        }
    }

    ctx->argv[0] = "LPUSH";
    ctx->argvlen[0] = sizeof("LPUSH") - 1;
    ctx->argv[1] = ctx->argv[NGX_HTTP_WEBHOOK_CMD_ARGS];
    ctx->argvlen[1] = ctx->argvlen[NGX_HTTP_WEBHOOK_CMD_ARGS];

    for (i = 0; i < ctx->nevents; i++) {
        k = NGX_HTTP_WEBHOOK_CMD_ARGS + ctx->nevents
            + NGX_HTTP_WEBHOOK_SCRIPT_ARGS + NGX_HTTP_WEBHOOK_EVENT_ARGS * i
            + 2;

        ctx->argv[i + 2] = ctx->argv[k];
        ctx->argvlen[i + 2] = ctx->argvlen[k];
    }

    ctx->argc = ctx->nevents + 2;
    ctx->lpush = 1;

    return 1;
}


/* numkeys, then ARGV[1..5]: ttl, max depth, n, seen-ttl, first env seen */

static ngx_int_t
ngx_http_webhook_script_args(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_uint_t nseen)
{
    u_char                       *p;
    ngx_uint_t                    argv0;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    argv0 = ctx->argv0;

    p = ngx_pnalloc(r->pool, 6 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->argv[2] = (char *) p;
    p = ngx_sprintf(p, "%ui", ctx->nevents + nseen);
    ctx->argvlen[2] = p - (u_char *) ctx->argv[2];

    ctx->argv[argv0] = (char *) p;
    p = ngx_sprintf(p, "%T", wlcf->dedupe);
    ctx->argvlen[argv0] = p - (u_char *) ctx->argv[argv0];

    ctx->argv[argv0 + 1] = (char *) p;
    p = ngx_sprintf(p, "%i", wlcf->max_depth);
    ctx->argvlen[argv0 + 1] = p - (u_char *) ctx->argv[argv0 + 1];

    ctx->argv[argv0 + 2] = (char *) p;
    p = ngx_sprintf(p, "%ui", ctx->nevents);
    ctx->argvlen[argv0 + 2] = p - (u_char *) ctx->argv[argv0 + 2];

    /* the seen keys of envelope ids, from their index on, live shorter */

    ctx->argv[argv0 + 3] = (char *) p;
    p = ngx_sprintf(p, "%d", NGX_HTTP_WEBHOOK_SPOOL_SEEN_TTL);
    ctx->argvlen[argv0 + 3] = p - (u_char *) ctx->argv[argv0 + 3];

    ctx->argv[argv0 + 4] = (char *) p;
    p = ngx_sprintf(p, "%ui", ctx->seen_env);
    ctx->argvlen[argv0 + 4] = p - (u_char *) ctx->argv[argv0 + 4];

    return NGX_OK;
}


/*
 * Odoo's test buttons: answered 200 only when a real event would be taken
 * now.  A write that Redis refuses when it would refuse the events (OOM,
 * READONLY, LOADING, MASTERDOWN, NOPERM), under the wait's own timer:
 * SET <queue>:probe <request id> PX 60000.
 */

ngx_int_t
ngx_http_webhook_check_queue(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    u_char                        *p;
    ngx_http_variable_value_t     *vv;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    vv = ngx_http_get_indexed_variable(r, wmcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->argc = 5;
    ctx->argv = ngx_palloc(r->pool, 5 * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, 5 * sizeof(size_t));
    p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":probe") - 1);

    if (ctx->argv == NULL || ctx->argvlen == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->argv[0] = "SET";
    ctx->argvlen[0] = sizeof("SET") - 1;
    ctx->argv[1] = (char *) p;
    ctx->argvlen[1] = ngx_sprintf(p, "%V:probe", &wlcf->queue) - p;
    ctx->argv[2] = (char *) vv->data;
    ctx->argvlen[2] = vv->len;
    ctx->argv[3] = "PX";
    ctx->argvlen[3] = sizeof("PX") - 1;
    ctx->argv[4] = "60000";
    ctx->argvlen[4] = sizeof("60000") - 1;

    ctx->lpush = 1;
    ctx->probe = 1;

    return ngx_http_webhook_enqueue(r, ctx);
}


static ngx_int_t
ngx_http_webhook_header_priority(ngx_http_request_t *r, ngx_int_t *priority)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  name = ngx_string("X-Webhook-Priority");

    *priority = -1;

    h = ngx_http_webhook_find_header(r, &name);
    if (h == NULL) {
        return NGX_OK;
    }

    *priority = ngx_http_webhook_priority(h->value.data, h->value.len);

    return *priority == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * The priority of instant events, which carry none: webhook_instant_priority,
 * evaluated once the body is read, so that a map of $webhook_model works.
 */

static ngx_int_t
ngx_http_webhook_instant_priority(ngx_http_request_t *r, ngx_int_t *priority)
{
    u_char                        buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                     value, text;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (wlcf->instant_priority == NULL) {
        *priority = NGX_HTTP_WEBHOOK_HIGH;
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, wlcf->instant_priority, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    *priority = ngx_http_webhook_priority(value.data, value.len);

    if (*priority == NGX_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "webhook: webhook_instant_priority is \"%V\", not "
                      "high, medium or low: the default priority is used",
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                value.data, value.len));
        *priority = wlcf->default_priority;
    }

    return NGX_OK;
}
