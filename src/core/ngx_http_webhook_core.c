
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The names the module gives its priorities and its results (the values
 * of $webhook_result, the keys of the status location's "requests").
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_core.h"


ngx_str_t  ngx_http_webhook_priorities[] = {
    ngx_string("high"),
    ngx_string("medium"),
    ngx_string("low")
};


/* in the order of ngx_http_webhook_result_e */

ngx_str_t  ngx_http_webhook_results[] = {
    ngx_string("queued"),
    ngx_string("duplicate"),
    ngx_string("spooled"),
    ngx_string("test"),
    ngx_string("unauthorized"),
    ngx_string("invalid"),
    ngx_string("unsupported_media_type"),
    ngx_string("too_large"),
    ngx_string("method_not_allowed"),
    ngx_string("unavailable"),
    ngx_string("overloaded"),
    ngx_string("rate_limited"),
    ngx_string("probe"),
    ngx_string("error")
};
