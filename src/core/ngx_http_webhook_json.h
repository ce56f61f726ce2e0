
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_JSON_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_JSON_H_INCLUDED_


/*
 * A strict JSON scanner (RFC 8259) that builds no tree: one pass checks a
 * whole text, then the members an event needs are found in place, as
 * spans of the text.  No allocation, no I/O.
 */


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Levels of nesting: by default, as deep as the shallowest default of
 * mainstream JSON readers (.NET's, 64) minus the envelope's own level;
 * at most as deep as cJSON goes
 */
#define NGX_HTTP_WEBHOOK_JSON_DEPTH      63
#define NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH  1000


/* why a text is refused */
#define NGX_HTTP_WEBHOOK_JSON_SYNTAX  0     /* not JSON */
#define NGX_HTTP_WEBHOOK_JSON_UTF8    1     /* a string is not UTF-8 */
#define NGX_HTTP_WEBHOOK_JSON_DEEP    2     /* nested too deep */


typedef struct {
    size_t                       offset;      /* where it is refused */
    ngx_uint_t                   reason;      /* NGX_HTTP_WEBHOOK_JSON_* */
} ngx_http_webhook_json_error_t;


ngx_int_t ngx_http_webhook_json_check(u_char *p, size_t len,
    ngx_uint_t depth, ngx_str_t *value, ngx_http_webhook_json_error_t *error);

ngx_uint_t ngx_http_webhook_json_members(ngx_str_t *object,
    ngx_str_t *names, ngx_str_t *values, ngx_uint_t n);
ngx_int_t ngx_http_webhook_json_elements(ngx_str_t *array, ngx_str_t *elts,
    ngx_uint_t n);

ngx_int_t ngx_http_webhook_json_unescape(u_char *dst, ngx_str_t *string);
size_t ngx_http_webhook_json_utf8(u_char *p, u_char *end);
ngx_int_t ngx_http_webhook_json_number(ngx_str_t *number, double *d);


#define ngx_http_webhook_json_is(v, c)                                       \
    ((v)->len && (v)->data[0] == (c))
#define ngx_http_webhook_json_is_object(v)  ngx_http_webhook_json_is(v, '{')
#define ngx_http_webhook_json_is_array(v)   ngx_http_webhook_json_is(v, '[')
#define ngx_http_webhook_json_is_string(v)  ngx_http_webhook_json_is(v, '"')
#define ngx_http_webhook_json_is_true(v)    ngx_http_webhook_json_is(v, 't')
#define ngx_http_webhook_json_is_null(v)    ngx_http_webhook_json_is(v, 'n')
#define ngx_http_webhook_json_is_number(v)                                   \
    ((v)->len && ((v)->data[0] == '-'                                        \
                  || ((v)->data[0] >= '0' && (v)->data[0] <= '9')))


#endif /* _NGX_HTTP_WEBHOOK_JSON_H_INCLUDED_ */
