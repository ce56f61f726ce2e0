
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The JSON answers of a receive location, and the filter that gives the
 * errors nginx raises itself in the location (a body over
 * client_max_body_size, limit_req, ...) a JSON body too.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"
#include "stats/ngx_http_webhook_stats.h"


/*
 * r->main->limit_req_status and limit_conn_status: REJECTED, as the
 * limit modules define it ($limit_req_status, $limit_conn_status)
 */
#define NGX_HTTP_WEBHOOK_LIMIT_REQ_REJECTED   3
#define NGX_HTTP_WEBHOOK_LIMIT_CONN_REJECTED  2


static ngx_int_t ngx_http_webhook_retry_after(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_webhook_add_header(ngx_http_request_t *r,
    char *key);
static ngx_int_t ngx_http_webhook_header_filter(ngx_http_request_t *r);
static ngx_uint_t ngx_http_webhook_rate_limited_by_nginx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_webhook_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_webhook_flush(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_str_t  ngx_http_webhook_content_type = ngx_string("application/json");


ngx_int_t
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
    r->headers_out.content_type = ngx_http_webhook_content_type;
    r->headers_out.content_type_len = ngx_http_webhook_content_type.len;
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
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


ngx_int_t
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


/* {"status":"error","error":<code>,"message":<message>} */

ngx_int_t
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

ngx_int_t
ngx_http_webhook_refuse(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t result, char *code, char *message)
{
    ngx_int_t  rc;

    if (r->request_body == NULL) {
        /* no "100 Continue" first: the client need not send the body */
        r->expect_tested = 1;

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

    if (ngx_http_webhook_rate_limited_by_nginx(r)) {
        /* with any limit_req_status or limit_conn_status, 503 by default */
        status = NGX_HTTP_TOO_MANY_REQUESTS;
    }

    switch (status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        result = NGX_HTTP_WEBHOOK_RESULT_TOO_LARGE;
        code = "too_large";
        message = "the body is larger than the location allows";
        break;

    case NGX_HTTP_BAD_REQUEST:
        result = NGX_HTTP_WEBHOOK_RESULT_INVALID;
        code = "bad_request";
        message = "the request is malformed";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        result = NGX_HTTP_WEBHOOK_RESULT_METHOD_NOT_ALLOWED;
        code = "method_not_allowed";
        message = "only POST (and HEAD) are allowed";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        result = NGX_HTTP_WEBHOOK_RESULT_ERROR;
        code = "timeout";
        message = "the body was not received in time";
        break;

    case NGX_HTTP_UNAUTHORIZED:
        /* auth_basic, auth_request in the location */
        result = NGX_HTTP_WEBHOOK_RESULT_UNAUTHORIZED;
        code = "unauthorized";
        message = "authentication is required";
        break;

    case NGX_HTTP_FORBIDDEN:
        /* deny, auth_request, ... in the location */
        result = NGX_HTTP_WEBHOOK_RESULT_UNAUTHORIZED;
        code = "forbidden";
        message = "access denied";
        break;

    case NGX_HTTP_TOO_MANY_REQUESTS:
        result = NGX_HTTP_WEBHOOK_RESULT_RATE_LIMITED;
        code = "rate_limited";
        message = "too many requests, retry later";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        result = NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE;
        code = "unavailable";
        message = "temporarily unavailable, retry later";
        break;

    default:
        result = NGX_HTTP_WEBHOOK_RESULT_ERROR;
        code = status >= NGX_HTTP_INTERNAL_SERVER_ERROR ? "internal_error"
                                                        : "error";
        message = "the request could not be processed";
        break;
    }

    if (result == NGX_HTTP_WEBHOOK_RESULT_RATE_LIMITED
        || result == NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE)
    {
        /* the sender retries */
        if (ngx_http_webhook_retry_after(r) != NGX_OK) {
            return NGX_ERROR;
        }
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

    r->headers_out.content_type = ngx_http_webhook_content_type;
    r->headers_out.content_type_len = ngx_http_webhook_content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = ctx->error_body.len + 1;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * limit_req and limit_conn refuse with their *_status, 503 by default;
 * what they decided is kept in r->main
 */

static ngx_uint_t
ngx_http_webhook_rate_limited_by_nginx(ngx_http_request_t *r)
{
    return r->main->limit_req_status == NGX_HTTP_WEBHOOK_LIMIT_REQ_REJECTED
           || r->main->limit_conn_status
              == NGX_HTTP_WEBHOOK_LIMIT_CONN_REJECTED;
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
        return ngx_http_webhook_flush(r, in);
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


/*
 * After the JSON replacement: what the filters below still hold (a write
 * that got EAGAIN) must leave when ngx_http_writer flushes, with nothing
 * of nginx's own body added.
 */

static ngx_int_t
ngx_http_webhook_flush(ngx_http_request_t *r, ngx_chain_t *in)
{
    if (in == NULL || r->buffered || r->connection->buffered) {
        return ngx_http_next_body_filter(r, NULL);
    }

    return NGX_OK;
}
