
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The variables of a receive location: $webhook_result,
 * $webhook_priority, $webhook_event_id, $webhook_sender, $webhook_model.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"


#define NGX_HTTP_WEBHOOK_VAR_RESULT    0
#define NGX_HTTP_WEBHOOK_VAR_PRIORITY  1
#define NGX_HTTP_WEBHOOK_VAR_EVENT_ID  2
#define NGX_HTTP_WEBHOOK_VAR_SENDER    3
#define NGX_HTTP_WEBHOOK_VAR_MODEL     4


static ngx_int_t ngx_http_webhook_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_webhook_vars[] = {

    { ngx_string("webhook_result"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_RESULT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("webhook_priority"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_PRIORITY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("webhook_event_id"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_EVENT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("webhook_sender"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_SENDER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("webhook_model"), NULL, ngx_http_webhook_variable,
      NGX_HTTP_WEBHOOK_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};



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


/*
 * $webhook_result, $webhook_priority, $webhook_event_id, $webhook_sender
 * and $webhook_model (of a single event, once its body is read)
 */

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
        if (ctx->result < NGX_HTTP_WEBHOOK_NRESULTS) {
            value = &ngx_http_webhook_results[ctx->result];
        }

    } else if (data == NGX_HTTP_WEBHOOK_VAR_PRIORITY) {
        if (ctx->priority >= 0) {
            value = &ngx_http_webhook_priorities[ctx->priority];
        }

    } else {
        value = data == NGX_HTTP_WEBHOOK_VAR_EVENT_ID ? &ctx->event_id
                : data == NGX_HTTP_WEBHOOK_VAR_SENDER ? &ctx->sender
                : &ctx->model;

        if (value->len == 0) {
            value = NULL;
        }
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
