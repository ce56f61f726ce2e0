
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

#include "ngx_http_webhook_receive.h"


/*
 * EVALSHA sha 2 <queue>:rejected <queue>:rejected:bytes
 *         entry max-entries max-bytes
 */
#define NGX_HTTP_WEBHOOK_REJECT_ARGS  8


static u_char *ngx_http_webhook_rejected_entry(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *answer, size_t *len);


/*
 * The call that keeps a 400's body in the rejected list, in ctx->argv:
 * ngx_http_webhook_invalid() sends it, and answers when Redis has.
 */

ngx_int_t
ngx_http_webhook_rejected_call(ngx_http_request_t *r,
    ngx_http_webhook_ctx_t *ctx, ngx_str_t *answer)
{
    u_char                       *p, *entry;
    size_t                        len;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

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
        return NGX_ERROR;
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

    return NGX_OK;
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
    u_char                       *p, *last;
    size_t                        body;
    ngx_time_t                   *tp;
    ngx_http_variable_value_t    *vv;
    ngx_http_webhook_loc_conf_t  *wlcf;

    wlcf = ngx_http_get_module_loc_conf(r, ngx_http_webhook_module);

    vv = ngx_http_webhook_request_id(r);
    if (vv == NULL) {
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


/*
 * webhook_rejected off | <entries> [max_size=<size>] [entry=<size>]:
 * the bounds of <queue>:rejected, and how much of a body one entry keeps
 */

char *
ngx_http_webhook_rejected(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_loc_conf_t  *wlcf = conf;

    size_t      *size;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (wlcf->rejected_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return "takes no parameters after \"off\"";
        }

        wlcf->rejected_max = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes \"off\" or a number of entries, "
                           "not \"%V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    wlcf->rejected_max = n;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            size = &wlcf->rejected_size;
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

        } else if (ngx_strncmp(value[i].data, "entry=", 6) == 0) {
            size = &wlcf->rejected_entry;
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": unknown parameter \"%V\" (max_size= "
                               "or entry=)", &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }

        *size = ngx_parse_size(&s);
        if (*size == (size_t) NGX_ERROR || *size == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": invalid size \"%V\"",
                               &cmd->name, &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}
