
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_AUTH_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_webhook_receive.h"


#define NGX_HTTP_WEBHOOK_DIGEST  20


/* a token of the token file: its SHA-1, and the sender's name if any */
typedef struct {
    u_char                       digest[NGX_HTTP_WEBHOOK_DIGEST];
    ngx_str_t                    name;
} ngx_http_webhook_token_t;


/* a token file read, and its tokens */
typedef struct {
    ngx_str_t                    file;        /* full name */
    ngx_array_t                 *tokens;      /* of ngx_http_webhook_token_t */
} ngx_http_webhook_tokens_t;


char *ngx_http_webhook_read_tokens(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_array_t **tokens);
char *ngx_http_webhook_read_secret(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *user, ngx_str_t *password);
ngx_int_t ngx_http_webhook_authorized(ngx_http_request_t *r,
    ngx_http_webhook_loc_conf_t *wlcf, ngx_str_t *sender);
ngx_table_elt_t *ngx_http_webhook_find_header(ngx_http_request_t *r,
    ngx_str_t *name);


#endif /* _NGX_HTTP_WEBHOOK_AUTH_H_INCLUDED_ */
