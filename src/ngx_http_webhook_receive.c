
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The receive location: methods, auth, content type, the body, the
 * enqueue script call and the JSON answer of every outcome, including
 * the errors nginx itself raises in the location (413 and others).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "ngx_http_webhook_auth.h"
#include "ngx_http_webhook_event.h"
#include "ngx_http_webhook_redis.h"
#include "ngx_http_webhook_stats.h"


/* EVALSHA sha numkeys, keys, then ARGV: ttl max n, and 3 per event */
#define NGX_HTTP_WEBHOOK_CMD_ARGS     3
#define NGX_HTTP_WEBHOOK_SCRIPT_ARGS  3
#define NGX_HTTP_WEBHOOK_EVENT_ARGS   3   /* seen key index, id, envelope */

#define NGX_HTTP_WEBHOOK_VAR_RESULT    0
#define NGX_HTTP_WEBHOOK_VAR_PRIORITY  1
#define NGX_HTTP_WEBHOOK_VAR_EVENT_ID  2


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_webhook_cmd_t       *cmd;
    ngx_event_t                   timer;
    uint64_t                      start;       /* body complete, usec */

    ngx_uint_t                    result;
    ngx_int_t                     priority;    /* -1: not yet known */
    ngx_str_t                     event_id;
    ngx_uint_t                    batch;
    ngx_uint_t                    nevents;
    ngx_str_t                    *ids;         /* envelope id per event */
    ngx_uint_t                   *priorities;  /* per event */

    int                           argc;
    const char                  **argv;
    size_t                       *argvlen;

    ngx_str_t                     error_body;  /* for nginx's own errors */

    unsigned                      lpush:1;     /* a plain LPUSH, no script */
    unsigned                      responded:1;
    unsigned                      replace_body:1;
} ngx_http_webhook_ctx_t;


static ngx_http_webhook_ctx_t *ngx_http_webhook_ctx(ngx_http_request_t *r);
static ngx_int_t ngx_http_webhook_head(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static ngx_uint_t ngx_http_webhook_json_type(ngx_http_request_t *r);
static void ngx_http_webhook_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_webhook_process(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_webhook_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_webhook_prepare(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_http_webhook_event_t *ev,
    ngx_uint_t n, ngx_str_t *idempotency);
static ngx_int_t ngx_http_webhook_header_priority(ngx_http_request_t *r,
    ngx_int_t *priority);
static ngx_uint_t ngx_http_webhook_plain_push(ngx_http_webhook_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_enqueue(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_enqueued(void *data, redisReply *reply);
static ngx_int_t ngx_http_webhook_answer(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, redisReply *reply);
static ngx_uint_t ngx_http_webhook_pushed(ngx_http_webhook_ctx_t *ctx,
    redisReply *reply, ngx_uint_t i);
static void ngx_http_webhook_timeout(ngx_event_t *ev);
static void ngx_http_webhook_cleanup(void *data);

static ngx_int_t ngx_http_webhook_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, u_char *body, size_t len);
static ngx_int_t ngx_http_webhook_retry_after(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_webhook_add_header(ngx_http_request_t *r,
    char *key);
static ngx_int_t ngx_http_webhook_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, char *code, u_char *message,
    size_t len);
static ngx_int_t ngx_http_webhook_error_json(ngx_pool_t *pool,
    ngx_str_t *out, char *code, u_char *message, size_t len);
static ngx_int_t ngx_http_webhook_refuse(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t result, char *code, char *message);

static ngx_int_t ngx_http_webhook_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_webhook_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);

static ngx_int_t ngx_http_webhook_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_http_webhook_json = ngx_string("application/json");


static ngx_http_variable_t  ngx_http_webhook_vars[] = {

    { ngx_string("webhook_result"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_RESULT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("webhook_priority"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_PRIORITY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("webhook_event_id"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_EVENT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_webhook_receive_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_webhook_ctx_t       *ctx;
    ngx_http_webhook_loc_conf_t  *wlcf;

    if (r != r->main) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    ctx = ngx_http_webhook_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_HEAD) {
        return ngx_http_webhook_head(r, ctx);
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                       ngx_http_webhook_method_not_allowed,
                                       "method_not_allowed",
                                       "only POST (and HEAD) are allowed");
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (ngx_http_webhook_authorized(r, wlcf) != NGX_OK) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                       ngx_http_webhook_unauthorized,
                                       "unauthorized",
                                       "a valid Bearer token is required");
    }

    if (!ngx_http_webhook_json_type(r)) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       ngx_http_webhook_unsupported_media_type,
                                       "unsupported_media_type",
                                       "Content-Type must be "
                                       "application/json");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_webhook_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* nginx's own error: the header filter gives it a JSON body */
        return rc;
    }

    return NGX_DONE;
}


static ngx_http_webhook_ctx_t *
ngx_http_webhook_ctx(ngx_http_request_t *r)
{
    ngx_http_webhook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_webhook_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_webhook_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->result = ngx_http_webhook_nresults;
    ctx->priority = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_webhook_module);

    return ctx;
}


/* Odoo's "test connection" probes the URL with a bare HEAD first */

static ngx_int_t
ngx_http_webhook_head(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->result = ngx_http_webhook_probe;
    ctx->responded = 1;
    ngx_http_webhook_count_result(r, ctx->result);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_webhook_json;
    r->headers_out.content_type_len = ngx_http_webhook_json.len;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/* "application/json", any case, optionally with parameters */

static ngx_uint_t
ngx_http_webhook_json_type(ngx_http_request_t *r)
{
    u_char     *p;
    size_t      len;
    ngx_str_t  *type;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    type = &r->headers_in.content_type->value;
    p = type->data;
    len = ngx_http_webhook_json.len;

    if (type->len < len
        || ngx_strncasecmp(p, ngx_http_webhook_json.data, len) != 0)
    {
        return 0;
    }

    return type->len == len || p[len] == ';' || p[len] == ' '
           || p[len] == '\t';
}


static void
ngx_http_webhook_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                body;
    ngx_http_webhook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_webhook_module);

    ctx->start = ngx_http_webhook_now_usec();

    if (ngx_http_webhook_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_webhook_process(r, ctx, &body);

    if (rc == NGX_DONE) {
        /* waiting for Redis: finalized by the reply or the timer */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_webhook_process(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_str_t *body)
{
    u_char                       *p, *scratch;
    ngx_int_t                     rc, kind, n, i;
    size_t                        offset;
    ngx_str_t                     root, events, *spans, idempotency;
    const char                   *err;
    ngx_table_elt_t              *h;
    ngx_http_webhook_event_t     *ev;
    ngx_http_webhook_loc_conf_t  *wlcf;
    u_char                        msg[256];

    static ngx_str_t  idempotency_key = ngx_string("Idempotency-Key");
    static ngx_str_t  webhook_id = ngx_string("webhook-id");
    static ngx_str_t  events_name = ngx_string("events");

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (ngx_http_webhook_json_check(body->data, body->len, &root, &offset)
        != NGX_OK)
    {
        p = ngx_snprintf(msg, sizeof(msg),
                         "the body is not valid JSON (at byte %uz)", offset);

        return ngx_http_webhook_send_error(r, NGX_HTTP_BAD_REQUEST,
                                           ngx_http_webhook_invalid,
                                           "invalid_json", msg, p - msg);
    }

    if (!ngx_http_webhook_json_is_object(&root)) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       ngx_http_webhook_invalid,
                                       "invalid_payload",
                                       "the body must be a JSON object");
    }

    kind = ngx_http_webhook_payload_kind(&root);

    if (kind == NGX_HTTP_WEBHOOK_TEST) {
        p = (u_char *) "{\"status\":\"ok\",\"test\":true}";
        return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                          ngx_http_webhook_test,
                                          p, ngx_strlen(p));
    }

    /* room for unescaped strings, never longer than the body, if any */

    scratch = NULL;

    if (memchr(root.data, '\\', root.len)) {
        scratch = ngx_pnalloc(r->pool, root.len);
        if (scratch == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (kind == NGX_HTTP_WEBHOOK_SINGLE) {
        ev = ngx_palloc(r->pool, sizeof(ngx_http_webhook_event_t));
        if (ev == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_webhook_event_read(&root, wlcf->schema_any, ev,
                                         &scratch, &err);

        if (rc != NGX_OK) {
            return ngx_http_webhook_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           ngx_http_webhook_invalid,
                                           rc == NGX_DECLINED
                                           ? "invalid_priority"
                                           : "invalid_payload",
                                           (char *) err);
        }

        ev->payload = root;

        idempotency.len = 0;

        if (ev->id_key.len == 0) {
            h = ngx_http_webhook_find_header(r, &idempotency_key);
            if (h == NULL) {
                h = ngx_http_webhook_find_header(r, &webhook_id);
            }

            if (h && h->value.len) {
                idempotency = h->value;
            }
        }

        return ngx_http_webhook_prepare(r, ctx, ev, 1, &idempotency);
    }

    /* a batch */

    ngx_http_webhook_json_members(&root, &events_name, &events, 1);

    n = 0;
    spans = NULL;

    if (ngx_http_webhook_json_is_array(&events)) {

        /* an element and its comma take two bytes at least */

        n = ngx_min(wlcf->batch_max, (events.len + 1) / 2);

        spans = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
        if (spans == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_webhook_json_elements(&events, spans, n);
    }

    if (n == NGX_ERROR) {
        p = ngx_snprintf(msg, sizeof(msg),
                         "a batch holds at most %ui events, this one %i",
                         wlcf->batch_max,
                         ngx_http_webhook_json_elements(&events, NULL, 0));
        return ngx_http_webhook_send_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           ngx_http_webhook_too_large,
                                           "too_large", msg, p - msg);
    }

    if (n == 0) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       ngx_http_webhook_invalid,
                                       "invalid_payload",
                                       "field \"events\" of a batch must be "
                                       "a non-empty array");
    }

    ev = ngx_palloc(r->pool, n * sizeof(ngx_http_webhook_event_t));
    if (ev == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        rc = ngx_http_webhook_event_read(&spans[i], wlcf->schema_any, &ev[i],
                                         &scratch, &err);
        if (rc != NGX_OK) {
            p = ngx_snprintf(msg, sizeof(msg), "events[%i]: %s", i, err);
            return ngx_http_webhook_send_error(r, NGX_HTTP_BAD_REQUEST,
                                               ngx_http_webhook_invalid,
                                               rc == NGX_DECLINED
                                               ? "invalid_priority"
                                               : "invalid_payload",
                                               msg, p - msg);
        }

        ev[i].payload = spans[i];
    }

    ctx->batch = 1;
    idempotency.len = 0;

    return ngx_http_webhook_prepare(r, ctx, ev, n, &idempotency);
}


/* the whole body, in memory or in a temporary file, in one buffer */

static ngx_int_t
ngx_http_webhook_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = (u_char *) "";

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        len = (size_t) (b->file_last - b->file_pos);

        n = ngx_read_file(b->file, p, len, b->file_pos);

        if (n == NGX_ERROR || (size_t) n != len) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "webhook: reading the body from \"%V\" failed",
                          &b->file->name);
            return NGX_ERROR;
        }

        p += n;
    }

    *p = '\0';

    return NGX_OK;
}


/*
 * Builds the enqueue script call: the envelopes, their list keys and
 * their idempotency keys.
 */

static ngx_int_t
ngx_http_webhook_prepare(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    ngx_http_webhook_event_t *ev, ngx_uint_t n, ngx_str_t *idempotency)
{
    u_char                        *p;
    size_t                         len;
    ngx_int_t                      priority, header_priority;
    ngx_uint_t                     i, k, s, nseen, argv0;
    ngx_str_t                     *id, *prio, at, *key;
    ngx_time_t                    *tp;
    ngx_http_variable_value_t     *vv;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;
    u_char                         time[NGX_HTTP_WEBHOOK_TIME_LEN];

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    if (ngx_http_webhook_header_priority(r, &header_priority) != NGX_OK) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       ngx_http_webhook_invalid,
                                       "invalid_priority",
                                       "header X-Webhook-Priority must be "
                                       "high, medium or low");
    }

    vv = ngx_http_get_indexed_variable(r, wmcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tp = ngx_timeofday();

    at.data = time;
    at.len = ngx_http_webhook_time(time, tp->sec, tp->msec) - time;

    ctx->nevents = n;
    ctx->ids = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    ctx->priorities = ngx_palloc(r->pool, n * sizeof(ngx_uint_t));

    /* the events with an idempotency key: their seen keys are KEYS too */

    nseen = 0;

    for (i = 0; wlcf->dedupe && i < n; i++) {
        if (ev[i].id_key.len || idempotency->len) {
            nseen++;
        }
    }

    argv0 = NGX_HTTP_WEBHOOK_CMD_ARGS + n + nseen;      /* ARGV[1] */
    ctx->argc = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
                + NGX_HTTP_WEBHOOK_EVENT_ARGS * n;
    ctx->argv = ngx_palloc(r->pool, ctx->argc * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, ctx->argc * sizeof(size_t));

    if (ctx->ids == NULL || ctx->priorities == NULL || ctx->argv == NULL
        || ctx->argvlen == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s = 0;

    for (i = 0; i < n; i++) {

        priority = ev[i].priority;

        if (priority == -1) {
            priority = header_priority;
        }

        if (priority == -1) {
            priority = wlcf->default_priority;
        }

        ctx->priorities[i] = priority;
        prio = &ngx_http_webhook_priorities[priority];

        /* the envelope id: $request_id, with "-<index>" in a batch */

        id = &ctx->ids[i];
        id->data = ngx_pnalloc(r->pool, vv->len + 1 + NGX_INT_T_LEN);
        if (id->data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        id->len = (ctx->batch ? ngx_sprintf(id->data, "%v-%ui", vv, i)
                              : ngx_sprintf(id->data, "%v", vv))
                  - id->data;

        len = ngx_http_webhook_envelope_len(&ev[i], id, &at, prio);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        k = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
            + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

        ctx->argv[k + 1] = (char *) id->data;
        ctx->argvlen[k + 1] = id->len;
        ctx->argv[k + 2] = (char *) p;
        ctx->argvlen[k + 2] =
                    ngx_http_webhook_envelope_write(p, &ev[i], id, &at, prio)
                    - p;

        /* the list key: <queue>:queue:<priority> */

        k = NGX_HTTP_WEBHOOK_CMD_ARGS + i;

        p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":queue:medium"));
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->argv[k] = (char *) p;
        ctx->argvlen[k] = ngx_sprintf(p, "%V:queue:%V", &wlcf->queue, prio)
                          - p;

        /* the idempotency key: <queue>:seen:<id> or <queue>:seen:key:<id> */

        k = argv0 + NGX_HTTP_WEBHOOK_SCRIPT_ARGS
            + NGX_HTTP_WEBHOOK_EVENT_ARGS * i;

        if (nseen == 0 || (ev[i].id_key.len == 0 && idempotency->len == 0)) {
            ctx->argv[k] = "0";
            ctx->argvlen[k] = 1;
            continue;
        }

        key = ev[i].id_key.len ? &ev[i].id_key : idempotency;

        p = ngx_pnalloc(r->pool, wlcf->queue.len + sizeof(":seen:key:")
                                 + key->len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->argv[NGX_HTTP_WEBHOOK_CMD_ARGS + n + s] = (char *) p;
        ctx->argvlen[NGX_HTTP_WEBHOOK_CMD_ARGS + n + s] =
            (ev[i].id_key.len ? ngx_sprintf(p, "%V:seen:%V", &wlcf->queue, key)
                              : ngx_sprintf(p, "%V:seen:key:%V",
                                            &wlcf->queue, key))
            - p;

        s++;

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->argv[k] = (char *) p;
        ctx->argvlen[k] = ngx_sprintf(p, "%ui", s) - p;
    }

    if (n == 1) {
        /* for $webhook_priority and $webhook_event_id */

        ctx->priority = ctx->priorities[0];

        key = ev[0].id_key.len ? &ev[0].id_key : idempotency;

        if (key->len) {
            ctx->event_id.len = key->len;
            ctx->event_id.data = ngx_pstrdup(r->pool, key);
            if (ctx->event_id.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    if (nseen == 0 && wlcf->max_depth == 0
        && ngx_http_webhook_plain_push(ctx))
    {
        return ngx_http_webhook_enqueue(r, ctx);
    }

    /* EVALSHA <sha> <numkeys> ... <ttl> <max depth> <n> ... */

    p = ngx_pnalloc(r->pool, 4 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->argv[2] = (char *) p;
    p = ngx_sprintf(p, "%ui", n + nseen);
    ctx->argvlen[2] = p - (u_char *) ctx->argv[2];

    ctx->argv[argv0] = (char *) p;
    p = ngx_sprintf(p, "%T", wlcf->dedupe);
    ctx->argvlen[argv0] = p - (u_char *) ctx->argv[argv0];

    ctx->argv[argv0 + 1] = (char *) p;
    p = ngx_sprintf(p, "%i", wlcf->max_depth);
    ctx->argvlen[argv0 + 1] = p - (u_char *) ctx->argv[argv0 + 1];

    ctx->argv[argv0 + 2] = (char *) p;
    p = ngx_sprintf(p, "%ui", n);
    ctx->argvlen[argv0 + 2] = p - (u_char *) ctx->argv[argv0 + 2];

    return ngx_http_webhook_enqueue(r, ctx);
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


static ngx_int_t
ngx_http_webhook_enqueue(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    ngx_http_cleanup_t            *cln;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->cmd = ngx_http_webhook_redis_eval(ctx->lpush ? NULL : &wmcf->enqueue,
                                           ctx->argc, ctx->argv, ctx->argvlen,
                                           ngx_http_webhook_enqueued, ctx);
    if (ctx->cmd == NULL) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue is unavailable, "
                                       "retry later");
    }

    cln->handler = ngx_http_webhook_cleanup;
    cln->data = ctx;

    /* not cancelable: a graceful shutdown waits for the answer */

    ctx->timer.handler = ngx_http_webhook_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, wmcf->timeout);

    return NGX_DONE;
}


static void
ngx_http_webhook_enqueued(void *data, redisReply *reply)
{
    ngx_http_webhook_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;
    ctx->cmd = NULL;

    rc = ngx_http_webhook_answer(r, ctx, reply);

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_webhook_answer(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx,
    redisReply *reply)
{
    u_char                        *p, *last;
    size_t                         len;
    ngx_str_t                      id;
    ngx_uint_t                     i, queued;

    if (reply == NULL) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue is unavailable, "
                                       "retry later");
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: redis refused the events: %*s",
                      (size_t) reply->len, reply->str);

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue refused the event, "
                                       "retry later");
    }

    if (!ctx->lpush && reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_overloaded,
                                       "overloaded",
                                       "the queue is full, retry later");
    }

    /* LPUSH answers the list's length, the script one element an event */

    if (ctx->lpush ? reply->type != REDIS_REPLY_INTEGER
                   : reply->type != REDIS_REPLY_ARRAY
                     || reply->elements != ctx->nevents)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "webhook: unexpected reply of %s",
                      ctx->lpush ? "LPUSH" : "the enqueue script");

        return ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       ngx_http_webhook_unavailable,
                                       "unavailable",
                                       "the queue gave an unexpected answer, "
                                       "retry later");
    }

    ngx_http_webhook_count_duration(r,
                                    ngx_http_webhook_now_usec() - ctx->start);

    queued = 0;

    for (i = 0; i < ctx->nevents; i++) {
        if (ngx_http_webhook_pushed(ctx, reply, i)) {
            queued++;
            ngx_http_webhook_count_events(r, ctx->priorities[i], 1);
        }
    }

    if (!ctx->batch) {
        id = ctx->ids[0];

        if (!queued && reply->element[0]->type == REDIS_REPLY_STRING) {
            /* the id of the envelope queued the first time */
            id.data = (u_char *) reply->element[0]->str;
            id.len = reply->element[0]->len;
        }

        len = sizeof("{\"status\":\"duplicate\",\"id\":\"\","
                     "\"priority\":\"medium\",\"event_id\":\"\"}")
              + ngx_http_webhook_json_escape_len(id.data, id.len)
              + ngx_http_webhook_json_escape_len(ctx->event_id.data,
                                                 ctx->event_id.len);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        last = ngx_sprintf(p, "{\"status\":\"%s\",\"id\":\"",
                           queued ? "queued" : "duplicate");
        last = ngx_http_webhook_json_escape(last, id.data, id.len);
        last = ngx_sprintf(last, "\",\"priority\":\"%V\"",
                        &ngx_http_webhook_priorities[ctx->priorities[0]]);

        if (!queued && ctx->event_id.len) {
            last = ngx_cpymem(last, ",\"event_id\":\"",
                              sizeof(",\"event_id\":\"") - 1);
            last = ngx_http_webhook_json_escape(last, ctx->event_id.data,
                                                ctx->event_id.len);
            *last++ = '"';
        }

        *last++ = '}';

        return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                          queued ? ngx_http_webhook_queued
                                                 : ngx_http_webhook_duplicate,
                                          p, last - p);
    }

    len = sizeof("{\"status\":\"duplicate\",\"queued\":,\"duplicates\":,"
                 "\"ids\":[]}") + 2 * NGX_INT_T_LEN;

    for (i = 0; i < ctx->nevents; i++) {
        len += ctx->ids[i].len + 3;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_sprintf(p, "{\"status\":\"%s\",\"queued\":%ui,"
                       "\"duplicates\":%ui,\"ids\":[",
                       queued ? "queued" : "duplicate",
                       queued, ctx->nevents - queued);

    for (i = 0; i < ctx->nevents; i++) {
        if (!ngx_http_webhook_pushed(ctx, reply, i)) {
            continue;
        }

        last = ngx_sprintf(last, "%s\"%V\"",
                           last[-1] == '[' ? "" : ",", &ctx->ids[i]);
    }

    last = ngx_cpymem(last, "]}", 2);

    return ngx_http_webhook_send_json(r, NGX_HTTP_OK,
                                      queued ? ngx_http_webhook_queued
                                             : ngx_http_webhook_duplicate,
                                      p, last - p);
}


/*
 * Whether event i was pushed: always with a plain LPUSH; with the script,
 * its answer for the event is 1, else the id of the first envelope.
 */

static ngx_uint_t
ngx_http_webhook_pushed(ngx_http_webhook_ctx_t *ctx, redisReply *reply,
    ngx_uint_t i)
{
    if (ctx->lpush) {
        return 1;
    }

    return reply->element[i]->type == REDIS_REPLY_INTEGER
           && reply->element[i]->integer == 1;
}


static void
ngx_http_webhook_timeout(ngx_event_t *ev)
{
    ngx_http_webhook_ctx_t  *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                  "webhook: redis did not acknowledge the event in time");

    if (ctx->cmd) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    ngx_http_finalize_request(r,
        ngx_http_webhook_refuse(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                ngx_http_webhook_unavailable, "unavailable",
                                "the queue did not answer in time, "
                                "retry later"));

    /* a stuck connection fails the other waiting requests at once */

    ngx_http_webhook_redis_timed_out();

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_webhook_cleanup(void *data)
{
    ngx_http_webhook_ctx_t  *ctx = data;

    if (ctx->cmd) {
        ngx_http_webhook_redis_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


static ngx_int_t
ngx_http_webhook_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t result, u_char *body, size_t len)
{
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_chain_t              out;
    ngx_table_elt_t         *h;
    ngx_http_webhook_ctx_t  *ctx;

    ctx = ngx_http_webhook_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->result = result;
    ctx->responded = 1;

    /* counted before the answer leaves: a scrape right after sees it */
    ngx_http_webhook_count_result(r, result);

    h = NULL;

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        if (ngx_http_webhook_retry_after(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (status == NGX_HTTP_UNAUTHORIZED) {
        h = ngx_http_webhook_add_header(r, "WWW-Authenticate");
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&h->value, "Bearer realm=\"webhook\"");
        r->headers_out.www_authenticate = h;

    } else if (status == NGX_HTTP_NOT_ALLOWED) {
        h = ngx_http_webhook_add_header(r, "Allow");
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&h->value, "POST, HEAD");
    }

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_webhook_json;
    r->headers_out.content_type_len = ngx_http_webhook_json.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len + 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
    *b->last++ = LF;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* "Retry-After: webhook_retry_after" */

static ngx_int_t
ngx_http_webhook_retry_after(ngx_http_request_t *r)
{
    ngx_table_elt_t              *h;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    h = ngx_http_webhook_add_header(r, "Retry-After");
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%T", wlcf->retry_after)
                   - h->value.data;

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_webhook_add_header(ngx_http_request_t *r, char *key)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);

    return h;
}


static ngx_int_t
ngx_http_webhook_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t result, char *code, u_char *message, size_t len)
{
    ngx_str_t  body;

    if (ngx_http_webhook_error_json(r->pool, &body, code, message, len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_webhook_send_json(r, status, result, body.data, body.len);
}


static ngx_int_t
ngx_http_webhook_error_json(ngx_pool_t *pool, ngx_str_t *out, char *code,
    u_char *message, size_t len)
{
    u_char  *p;

    out->data = ngx_pnalloc(pool,
                            sizeof("{\"status\":\"error\",\"error\":\"\","
                                   "\"message\":\"\"}")
                            + ngx_strlen(code)
                            + ngx_http_webhook_json_escape_len(message, len));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(out->data, "{\"status\":\"error\",\"error\":\"%s\","
                    "\"message\":\"", code);
    p = ngx_http_webhook_json_escape(p, message, len);
    p = ngx_cpymem(p, "\"}", 2);

    out->len = p - out->data;

    return NGX_OK;
}


/* an answer before or instead of the enqueue: the body is not wanted */

static ngx_int_t
ngx_http_webhook_refuse(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t result, char *code, char *message)
{
    ngx_int_t  rc;

    if (r->request_body == NULL) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_webhook_send_error(r, status, result, code,
                                       (u_char *) message,
                                       ngx_strlen(message));
}


/*
 * The errors nginx raises itself in a receive location (a body over
 * client_max_body_size, a broken chunked body, ...) get a JSON body too:
 * the sender parses every answer as JSON.
 */

void
ngx_http_webhook_receive_filter_init(void)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_webhook_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_webhook_body_filter;
}


static ngx_int_t
ngx_http_webhook_header_filter(ngx_http_request_t *r)
{
    char                         *code, *message;
    ngx_uint_t                    status, result;
    ngx_http_webhook_ctx_t       *ctx;
    ngx_http_webhook_loc_conf_t  *wlcf;

    status = r->headers_out.status;

    if (r != r->main || status < NGX_HTTP_BAD_REQUEST) {
        return ngx_http_next_header_filter(r);
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_webhook_module);

    if (!wlcf->receive || (ctx && ctx->responded)) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_webhook_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    switch (status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        result = ngx_http_webhook_too_large;
        code = "too_large";
        message = "the body is larger than the location allows";
        break;

    case NGX_HTTP_BAD_REQUEST:
        result = ngx_http_webhook_invalid;
        code = "bad_request";
        message = "the request is malformed";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        result = ngx_http_webhook_method_not_allowed;
        code = "method_not_allowed";
        message = "only POST (and HEAD) are allowed";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        result = ngx_http_webhook_error;
        code = "timeout";
        message = "the body was not received in time";
        break;

    case NGX_HTTP_TOO_MANY_REQUESTS:
        /* limit_req or limit_conn in the location: the sender retries */
        result = ngx_http_webhook_rate_limited;
        code = "rate_limited";
        message = "too many requests, retry later";

        if (ngx_http_webhook_retry_after(r) != NGX_OK) {
            return NGX_ERROR;
        }

        break;

    default:
        result = ngx_http_webhook_error;
        code = status >= NGX_HTTP_INTERNAL_SERVER_ERROR ? "internal_error"
                                                        : "error";
        message = "the request could not be processed";
        break;
    }

    if (ngx_http_webhook_error_json(r->pool, &ctx->error_body, code,
                                    (u_char *) message, ngx_strlen(message))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->result = result;
    ctx->responded = 1;
    ctx->replace_body = 1;

    ngx_http_webhook_count_result(r, result);

    r->headers_out.content_type = ngx_http_webhook_json;
    r->headers_out.content_type_len = ngx_http_webhook_json.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = ctx->error_body.len + 1;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_webhook_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t               *b;
    ngx_chain_t             *cl, out;
    ngx_http_webhook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_webhook_module);

    if (ctx == NULL || !ctx->replace_body) {
        return ngx_http_next_body_filter(r, in);
    }

    /* nginx's own (HTML) body is swallowed */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (ctx->error_body.len == 0) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ngx_pnalloc(r->pool, ctx->error_body.len + 1);
    if (b->pos == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, ctx->error_body.data, ctx->error_body.len);
    *b->last++ = LF;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    ctx->error_body.len = 0;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_webhook_receive_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_webhook_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* $webhook_result, $webhook_priority and $webhook_event_id */

static ngx_int_t
ngx_http_webhook_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t               *value;
    ngx_http_webhook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_webhook_module);

    value = NULL;

    if (ctx == NULL) {
        /* not a webhook request */

    } else if (data == NGX_HTTP_WEBHOOK_VAR_RESULT) {
        if (ctx->result < ngx_http_webhook_nresults) {
            value = &ngx_http_webhook_results[ctx->result];
        }

    } else if (data == NGX_HTTP_WEBHOOK_VAR_PRIORITY) {
        if (ctx->priority >= 0) {
            value = &ngx_http_webhook_priorities[ctx->priority];
        }

    } else if (ctx->event_id.len) {
        value = &ctx->event_id;
    }

    if (value == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = value->data;
    v->len = value->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
