
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The receive location: methods, auth, content type, and the body read
 * (in memory, as nginx reads it), checked and turned into events.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"
#include "ngx_http_webhook_auth.h"
#include "stats/ngx_http_webhook_stats.h"


static ngx_int_t ngx_http_webhook_head(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static ngx_uint_t ngx_http_webhook_json_type(ngx_http_request_t *r);
static void ngx_http_webhook_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_webhook_gather(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static void ngx_http_webhook_body_handler(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx);
static ngx_int_t ngx_http_webhook_process(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_webhook_idempotency(ngx_http_request_t *r,
    ngx_str_t *key, ngx_table_elt_t **header);


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
                                  NGX_HTTP_WEBHOOK_RESULT_METHOD_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "only POST (and HEAD) are allowed");
    }

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    rc = ngx_http_webhook_authorized(r, wlcf, &ctx->sender);

    if (rc == NGX_HTTP_FORBIDDEN) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_FORBIDDEN,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAUTHORIZED,
                                       "forbidden",
                                       "the sender name of webhook_sender "
                                       "is a named token's: only that "
                                       "token may use it");
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                       NGX_HTTP_WEBHOOK_RESULT_UNAUTHORIZED,
                                       "unauthorized",
                                       "a valid Bearer token is required");
    }

    if (!ngx_http_webhook_json_type(r)) {
        return ngx_http_webhook_refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                              NGX_HTTP_WEBHOOK_RESULT_UNSUPPORTED_MEDIA_TYPE,
                                       "unsupported_media_type",
                                       "Content-Type must be "
                                       "application/json");
    }

    /*
     * unbuffered: nginx hands the body over as it reads it, and never
     * writes it to a temporary file (a blocking write, then a blocking
     * read back, in the worker); it is gathered in memory
     */

    r->request_body_no_buffering = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_webhook_body_read);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* nginx's own error: the header filter gives it a JSON body */
        return rc;
    }

    return NGX_DONE;
}


ngx_http_webhook_ctx_t *
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
    ctx->result = NGX_HTTP_WEBHOOK_NRESULTS;
    ctx->priority = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_webhook_module);

    return ctx;
}


/* Odoo's "test connection" probes the URL with a bare HEAD first */

static ngx_int_t
ngx_http_webhook_head(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    ngx_int_t  rc;

    /* no "100 Continue": a HEAD's body is not wanted */
    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->result = NGX_HTTP_WEBHOOK_RESULT_PROBE;
    ctx->responded = 1;
    ngx_http_webhook_count_result(r, ctx->result);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_webhook_content_type;
    r->headers_out.content_type_len = ngx_http_webhook_content_type.len;
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
    len = ngx_http_webhook_content_type.len;

    if (type->len < len
        || ngx_strncasecmp(p, ngx_http_webhook_content_type.data, len) != 0)
    {
        return 0;
    }

    return type->len == len || p[len] == ';' || p[len] == ' '
           || p[len] == '\t';
}


/*
 * The body's post handler, then its read handler while more is to come:
 * what nginx has read is moved to the module's buffer, until the whole
 * body is there.  Every wait has nginx's client_body_timeout.
 */

static void
ngx_http_webhook_body_read(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_webhook_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_webhook_module);

    for ( ;; ) {
        if (ngx_http_webhook_gather(r, ctx) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (!r->reading_body) {
            break;
        }

        rc = ngx_http_read_unbuffered_request_body(r);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            /* nginx's own error: the header filter gives it a JSON body */
            ngx_http_finalize_request(r, rc);
            return;
        }

        if (rc == NGX_AGAIN && r->request_body->bufs == NULL) {
            /* nothing more yet: the read event, or its timer, comes back */
            r->read_event_handler = ngx_http_webhook_body_read;
            return;
        }
    }

    r->read_event_handler = ngx_http_block_reading;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "webhook: the body is read, %uz bytes, in memory",
                   ctx->received.len);

    ngx_http_webhook_body_handler(r, ctx);
}


/*
 * The pieces nginx has read, moved to one buffer that grows as they come
 * (twice its size, at most the announced length): never more than twice
 * what was received, and at most client_max_body_size, which nginx
 * checks.  A byte more holds a null after the body.
 */

static ngx_int_t
ngx_http_webhook_gather(ngx_http_request_t *r, ngx_http_webhook_ctx_t *ctx)
{
    u_char       *p;
    size_t        size, need, room;
    off_t         length;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL) {
        /* discarded before: no body */
        return NGX_OK;
    }

    length = r->headers_in.content_length_n;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "webhook: the body is in a temporary file: "
                          "another module of the location (mirror?) "
                          "read it first, and the module reads bodies in "
                          "memory only");
            return NGX_ERROR;
        }

        size = b->last - b->pos;

        if (size == 0) {
            continue;
        }

        need = ctx->received.len + size + 1;

        if (need > ctx->room) {
            room = ngx_max(need, 2 * ctx->room);

            if (length >= 0 && room > (size_t) length + 1) {
                room = ngx_max(need, (size_t) length + 1);
            }

            p = ngx_pnalloc(r->pool, room);
            if (p == NULL) {
                return NGX_ERROR;
            }

            if (ctx->received.len) {
                ngx_memcpy(p, ctx->received.data, ctx->received.len);
                ngx_pfree(r->pool, ctx->received.data);
            }

            ctx->received.data = p;
            ctx->room = room;
        }

        ngx_memcpy(ctx->received.data + ctx->received.len, b->pos, size);
        ctx->received.len += size;
        b->pos = b->last;
    }

    r->request_body->bufs = NULL;

    return NGX_OK;
}


static void
ngx_http_webhook_body_handler(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->start = ngx_http_webhook_now_usec();

    if (ctx->received.data == NULL) {
        ngx_str_set(&ctx->received, "");

    } else {
        ctx->received.data[ctx->received.len] = '\0';
    }

    ctx->body = ctx->received;

    rc = ngx_http_webhook_process(r, ctx, &ctx->body);

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
    u_char                         *p, *scratch;
    ngx_int_t                       rc, kind, n, i, k;
    ngx_str_t                       root, events, *spans, idempotency;
    const char                     *err;
    ngx_table_elt_t                *h;
    ngx_http_webhook_event_t       *ev;
    ngx_http_webhook_loc_conf_t    *wlcf;
    ngx_http_webhook_json_error_t   error;
    u_char                          msg[256];

    static ngx_str_t  events_name = ngx_string("events");

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (ngx_http_webhook_json_check(body->data, body->len, wlcf->json_depth,
                                    &root, &error)
        != NGX_OK)
    {
        switch (error.reason) {

        case NGX_HTTP_WEBHOOK_JSON_UTF8:
            p = ngx_snprintf(msg, sizeof(msg), "a string of the body is not "
                             "valid UTF-8 (at byte %uz)", error.offset);
            break;

        case NGX_HTTP_WEBHOOK_JSON_DEEP:
            p = ngx_snprintf(msg, sizeof(msg), "the body nests deeper than "
                             "%i levels (at byte %uz)", wlcf->json_depth,
                             error.offset);
            break;

        default:
            p = ngx_snprintf(msg, sizeof(msg), "the body is not valid JSON "
                             "(at byte %uz)", error.offset);
        }

        return ngx_http_webhook_invalid(r, ctx, NGX_HTTP_BAD_REQUEST,
                                        "invalid_json", msg, p - msg);
    }

    if (!ngx_http_webhook_json_is_object(&root)) {
        return ngx_http_webhook_invalid_text(r, ctx, "invalid_payload",
                                             "the body must be a JSON "
                                             "object");
    }

    kind = ngx_http_webhook_payload_kind(&root);

    if (kind == NGX_HTTP_WEBHOOK_TEST) {
        return ngx_http_webhook_probe(r, ctx);
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
            return ngx_http_webhook_invalid_text(r, ctx,
                                                 rc == NGX_DECLINED
                                                 ? "invalid_priority"
                                                 : "invalid_payload", err);
        }

        if (ev->test) {
            return ngx_http_webhook_probe(r, ctx);
        }

        ev->payload = root;

        idempotency.len = 0;

        if (ev->id_key.len == 0
            && ngx_http_webhook_idempotency(r, &idempotency, &h) != NGX_OK)
        {
            p = ngx_snprintf(msg, sizeof(msg), "header \"%V\" must be "
                             "printable ASCII", &h->key);

            return ngx_http_webhook_invalid(r, ctx, NGX_HTTP_BAD_REQUEST,
                                            "invalid_idempotency_key",
                                            msg, p - msg);
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
        return ngx_http_webhook_invalid(r, ctx,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "too_large", msg, p - msg);
    }

    if (n == 0) {
        return ngx_http_webhook_invalid_text(r, ctx, "invalid_payload",
                                             "field \"events\" of a batch "
                                             "must be a non-empty array");
    }

    ev = ngx_palloc(r->pool, n * sizeof(ngx_http_webhook_event_t));
    if (ev == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* test events of a batch are left out of it */

    k = 0;

    for (i = 0; i < n; i++) {
        rc = ngx_http_webhook_event_read(&spans[i], wlcf->schema_any, &ev[k],
                                         &scratch, &err);
        if (rc != NGX_OK) {
            p = ngx_snprintf(msg, sizeof(msg), "events[%i]: %s", i, err);
            return ngx_http_webhook_invalid(r, ctx, NGX_HTTP_BAD_REQUEST,
                                            rc == NGX_DECLINED
                                            ? "invalid_priority"
                                            : "invalid_payload",
                                            msg, p - msg);
        }

        if (!ev[k].test) {
            ev[k++].payload = spans[i];
        }
    }

    if (k == 0) {
        return ngx_http_webhook_probe(r, ctx);
    }

    ctx->batch = 1;
    idempotency.len = 0;

    return ngx_http_webhook_prepare(r, ctx, ev, k, &idempotency);
}


/*
 * The idempotency key of a single event without an id: the
 * Idempotency-Key header, else Standard Webhooks' webhook-id; none when
 * neither is there or it is empty.  NGX_DECLINED when it holds a byte
 * other than printable ASCII, the only bytes of the IETF draft's string
 * (the key is echoed in the answer and kept in a Redis key).
 */

static ngx_int_t
ngx_http_webhook_idempotency(ngx_http_request_t *r, ngx_str_t *key,
    ngx_table_elt_t **header)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    static ngx_str_t  idempotency_key = ngx_string("Idempotency-Key");
    static ngx_str_t  webhook_id = ngx_string("webhook-id");

    h = ngx_http_webhook_find_header(r, &idempotency_key);
    if (h == NULL) {
        h = ngx_http_webhook_find_header(r, &webhook_id);
    }

    *header = h;
    key->len = 0;

    if (h == NULL) {
        return NGX_OK;
    }

    last = h->value.data + h->value.len;

    for (p = h->value.data; p < last; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            return NGX_DECLINED;
        }
    }

    *key = h->value;

    return NGX_OK;
}


/* $request_id, the envelopes' ids and the rejected entries' */

ngx_http_variable_value_t *
ngx_http_webhook_request_id(ngx_http_request_t *r)
{
    ngx_http_variable_value_t     *vv;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    vv = ngx_http_get_indexed_variable(r, wmcf->request_id_index);

    return (vv == NULL || vv->not_found) ? NULL : vv;
}
