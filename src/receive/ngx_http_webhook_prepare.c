
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * A request's events as items (ngx_http_webhook_item_t): each one's
 * priority (its own, the header's, the location's; instant events'),
 * envelope and envelope id, list key, and seen key: <queue>:seen:id:
 * <sender>:<event_id> or seen:key:<sender>:<Idempotency-Key> under
 * webhook_dedupe, else with the spool seen:env:<envelope id>, which lives
 * shorter.  Then ngx_http_webhook_enqueue() takes them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"


typedef struct {
    ngx_int_t                    header_priority;   /* -1: none */
    ngx_int_t                    instant_priority;  /* -1: none */
    ngx_http_variable_value_t   *request_id;
    ngx_str_t                    at;                /* received_at */
    ngx_uint_t                   dedupe;   /* seen keys of ids and keys */
    ngx_uint_t                   spool;    /* seen keys of envelope ids */
    u_char                       time[NGX_HTTP_WEBHOOK_TIME_LEN];
} ngx_http_webhook_prepare_t;


static ngx_int_t ngx_http_webhook_prepare_init(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t n,
    ngx_http_webhook_prepare_t *a);
static ngx_int_t ngx_http_webhook_item(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t i,
    ngx_http_webhook_prepare_t *a);
static ngx_int_t ngx_http_webhook_item_seen(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t i,
    ngx_str_t *idempotency, ngx_http_webhook_prepare_t *a);
static ngx_int_t ngx_http_webhook_single_event(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev,
    ngx_str_t *idempotency);
static ngx_int_t ngx_http_webhook_header_priority(ngx_http_request_t *r,
    ngx_int_t *priority);
static ngx_int_t ngx_http_webhook_instant_priority(ngx_http_request_t *r,
    ngx_int_t *priority);


ngx_int_t
ngx_http_webhook_prepare(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t n, ngx_str_t *idempotency)
{
    ngx_uint_t                  i;
    ngx_http_webhook_prepare_t  a;

    static u_char  bad_priority[] = "header X-Webhook-Priority must be "
                                    "high, medium or low";

    if (ngx_http_webhook_header_priority(r, &a.header_priority) != NGX_OK) {
        return ngx_http_webhook_invalid(r, ctx, NGX_HTTP_BAD_REQUEST,
                                        "invalid_priority", bad_priority,
                                        sizeof(bad_priority) - 1);
    }

    if (ngx_http_webhook_prepare_init(r, ctx, ev, n, &a) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_webhook_item(r, ctx, &ev[i], i, &a) != NGX_OK
            || ngx_http_webhook_item_seen(r, ctx, &ev[i], i, idempotency, &a)
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

    return ngx_http_webhook_enqueue(r, ctx);
}


/* what every event's item needs, and the arrays they go into */

static ngx_int_t
ngx_http_webhook_prepare_init(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev, ngx_uint_t n,
    ngx_http_webhook_prepare_t *a)
{
    ngx_uint_t                    i;
    ngx_time_t                   *tp;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

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

    a->request_id = ngx_http_webhook_request_id(r);
    if (a->request_id == NULL) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    a->at.data = a->time;
    a->at.len = ngx_http_webhook_time(a->time, tp->sec, tp->msec) - a->time;

    /*
     * an event with an id (or the request's Idempotency-Key) has a seen key
     * under webhook_dedupe; with the spool, every other event has its
     * envelope id's, so that a push Redis applied after the wait's timeout
     * is not doubled by the drain
     */

    a->dedupe = (wlcf->dedupe != 0);
    a->spool = wlcf->spool && ngx_http_webhook_spool_ready();

    ctx->nevents = n;
    ctx->ids = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    ctx->priorities = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));
    ctx->warned = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));
    ctx->items = ngx_pcalloc(r->pool, n * sizeof(ngx_http_webhook_item_t));

    if (ctx->ids == NULL || ctx->priorities == NULL || ctx->warned == NULL
        || ctx->items == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an event's priority, envelope id, envelope and list key */

static ngx_int_t
ngx_http_webhook_item(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t i, ngx_http_webhook_prepare_t *a)
{
    u_char                       *p;
    size_t                        len;
    ngx_int_t                     priority;
    ngx_str_t                    *id, *prio;
    ngx_http_webhook_item_t      *item;
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

    item = &ctx->items[i];
    item->id = *id;
    item->max_depth = (uint32_t) wlcf->max_depth;

    len = ngx_http_webhook_envelope_len(ev, id, &a->at, prio);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    item->envelope.data = p;
    item->envelope.len = ngx_http_webhook_envelope_write(p, ev, id, &a->at,
                                                         prio)
                         - p;

    /* the list key: <queue>:queue:<priority> */

    p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":queue:medium"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    item->list.data = p;
    item->list.len = ngx_sprintf(p, "%V:queue:%V", &wlcf->queue, prio) - p;

    return NGX_OK;
}


/*
 * An event's seen key, if any: <queue>:seen:id:<sender>:<event_id>,
 * seen:key:<sender>:<header> for an Idempotency-Key, both for
 * webhook_dedupe; seen:env:<envelope id> for the spool's own dedupe, for
 * NGX_HTTP_WEBHOOK_SPOOL_SEEN_TTL.
 */

static ngx_int_t
ngx_http_webhook_item_seen(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t i, ngx_str_t *idempotency,
    ngx_http_webhook_prepare_t *a)
{
    u_char                       *p;
    ngx_str_t                    *key;
    ngx_http_webhook_item_t      *item;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    item = &ctx->items[i];

    if (a->dedupe && (ev->id_key.len || idempotency->len)) {
        key = ev->id_key.len ? &ev->id_key : idempotency;

        p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":seen:key::")
                                 + ctx->sender.len + key->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        item->seen.data = p;
        item->seen.len = ngx_sprintf(p, "%V:seen:%s:%V:%V", &wlcf->queue,
                                     ev->id_key.len ? "id" : "key",
                                     &ctx->sender, key)
                         - p;
        item->ttl = (uint32_t) wlcf->dedupe;

        return NGX_OK;
    }

    if (a->spool) {
        p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":seen:env:")
                                 + item->id.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        item->seen.data = p;
        item->seen.len = ngx_sprintf(p, "%V:seen:env:%V", &wlcf->queue,
                                     &item->id)
                         - p;
        item->ttl = NGX_HTTP_WEBHOOK_SPOOL_SEEN_TTL;
    }

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
