
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The rejected list: a body that an authenticated sender posted and that
 * is answered 400 is kept, with the answer and the sender's name, in a
 * bounded list <queue>:rejected, so that an operator can see and redrive
 * what a sender got wrong (Odoo never sends it again).  The 400 leaves
 * once Redis has the entry, or at once when Redis cannot take it: the
 * answer never depends on the list.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_module.h"
#include "ngx_http_webhook_receive.h"


/*
 * EVALSHA sha 2 <queue>:rejected <queue>:rejected:bytes
 *         entry max-entries max-bytes
 */
#define NGX_HTTP_WEBHOOK_REJECT_ARGS  8


static u_char *ngx_http_webhook_rejected_entry(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *answer, size_t *len);


/*
 * NGX_DONE while Redis takes the entry (the answer is sent then, by
 * ngx_http_webhook_answer() or the timer), NGX_DECLINED when nothing is
 * to be kept.
 */

ngx_int_t
ngx_http_webhook_keep_rejected(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_uint_t result, ngx_str_t *answer)
{
    u_char                       *p, *entry;
    size_t                        len;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    if (ctx->body.data == NULL || ctx->rejected || wlcf->rejected_max == 0
        || !ngx_http_webhook_redis_up(wlcf->slot))
    {
        return NGX_DECLINED;
    }

    entry = ngx_http_webhook_rejected_entry(r, ctx, answer, &len);

    ctx->argc = NGX_HTTP_WEBHOOK_REJECT_ARGS;
    ctx->argv = ngx_palloc(r->pool, ctx->argc * sizeof(char *));
    ctx->argvlen = ngx_palloc(r->pool, ctx->argc * sizeof(size_t));
    p = ngx_pnalloc(r->pool, 2 * wlcf->queue.len
                             + sizeof(":rejected:rejected:bytes")
                             + 2 * NGX_OFF_T_LEN);

    if (entry == NULL || ctx->argv == NULL || ctx->argvlen == NULL
        || p == NULL)
    {
        return NGX_DECLINED;
    }

    ctx->argv[2] = "2";
    ctx->argvlen[2] = 1;

    ctx->argv[3] = (char *) p;
    p = ngx_sprintf(p, "%V:rejected", &wlcf->queue);
    ctx->argvlen[3] = p - (u_char *) ctx->argv[3];

    ctx->argv[4] = (char *) p;
    p = ngx_sprintf(p, "%V:rejected:bytes", &wlcf->queue);
    ctx->argvlen[4] = p - (u_char *) ctx->argv[4];

    ctx->argv[5] = (char *) entry;
    ctx->argvlen[5] = len;

    ctx->argv[6] = (char *) p;
    p = ngx_sprintf(p, "%ui", wlcf->rejected_max);
    ctx->argvlen[6] = p - (u_char *) ctx->argv[6];

    ctx->argv[7] = (char *) p;
    p = ngx_sprintf(p, "%uz", wlcf->rejected_size);
    ctx->argvlen[7] = p - (u_char *) ctx->argv[7];

    ctx->rejected = 1;
    ctx->reject_result = result;
    ctx->error_body = *answer;

    if (ngx_http_webhook_enqueue(r, ctx) != NGX_DONE) {
        /* Redis cannot take it: the answer goes at once */
        ctx->rejected = 0;
        return NGX_DECLINED;
    }

    return NGX_DONE;
}


/*
 * {"received_at":"...","request_id":"...","sender":"odoo-prod",
 *  "answer":{"status":"error",...},"size":1234,"truncated":false,
 *  "body":"<the body, as a JSON string, cut at webhook_rejected's entry>"}
 * (a byte of the body that is no UTF-8 is written \ufffd: the entry stays
 * JSON that strict readers take)
 */

static u_char *
ngx_http_webhook_rejected_entry(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *answer, size_t *len)
{
    u_char                        *p, *last;
    size_t                         body;
    ngx_time_t                    *tp;
    ngx_http_variable_value_t     *vv;
    ngx_http_webhook_loc_conf_t   *wlcf;
    ngx_http_webhook_main_conf_t  *wmcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);
    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);

    vv = ngx_http_get_indexed_variable(r, wmcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NULL;
    }

    /* cut at "entry" bytes, but not inside a character */

    body = ngx_http_webhook_utf8_cut(ctx->body.data, ctx->body.len,
                                     wlcf->rejected_entry);

    p = ngx_pnalloc(r->pool,
                    sizeof("{\"received_at\":\"\",\"request_id\":\"\","
                           "\"sender\":\"\",\"answer\":,\"size\":,"
                           "\"truncated\":false,\"body\":\"\"}")
                    + NGX_HTTP_WEBHOOK_TIME_LEN + vv->len + NGX_SIZE_T_LEN
                    + ngx_max(ctx->sender.len, sizeof("null")) + answer->len
                    + ngx_http_webhook_json_escape_len(ctx->body.data, body));
    if (p == NULL) {
        return NULL;
    }

    tp = ngx_timeofday();

    last = ngx_cpymem(p, "{\"received_at\":\"",
                      sizeof("{\"received_at\":\"") - 1);
    last = ngx_http_webhook_time(last, tp->sec, tp->msec);
    last = ngx_sprintf(last, "\",\"request_id\":\"%v\",\"sender\":", vv);

    /* a sender's name holds no byte that JSON escapes */

    last = ctx->sender.len ? ngx_sprintf(last, "\"%V\"", &ctx->sender)
                           : ngx_cpymem(last, "null", 4);

    last = ngx_sprintf(last, ",\"answer\":%V,\"size\":%uz,\"truncated\":%s,"
                       "\"body\":\"", answer, ctx->body.len,
                       body < ctx->body.len ? "true" : "false");
    last = ngx_http_webhook_json_escape(last, ctx->body.data, body);
    last = ngx_cpymem(last, "\"}", 2);

    *len = last - p;

    return p;
}
