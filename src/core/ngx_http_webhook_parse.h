
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The parsers every subsystem's directives share
 * (ngx_http_webhook_parse.c).
 */


#ifndef _NGX_HTTP_WEBHOOK_PARSE_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


char *ngx_http_webhook_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_set_sec_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_set_num_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_num_bounds(ngx_conf_t *cf, void *post, void *data);
char *ngx_http_webhook_set_timeout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the largest file of secrets read */
#define NGX_HTTP_WEBHOOK_MAX_FILE  65536

/* a file of secrets, whole (its buffer is zeroed by the caller), then a
 * line at a time; "user password" or "password" */
char *ngx_http_webhook_read_file(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *text);
u_char *ngx_http_webhook_next_line(u_char *p, u_char *end, ngx_str_t *line);
char *ngx_http_webhook_read_secret(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *user, ngx_str_t *password);


#endif /* _NGX_HTTP_WEBHOOK_PARSE_H_INCLUDED_ */
