
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_DIRECTIVES_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_DIRECTIVES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


char *ngx_http_webhook_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_webhook_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_webhook_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_cluster_conf(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf);
ngx_int_t ngx_http_webhook_queue_slot(ngx_conf_t *cf,
    ngx_http_webhook_main_conf_t *wmcf, ngx_str_t *queue, ngx_uint_t *slot);
char *ngx_http_webhook_redis_sentinel_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_webhook_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_set_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_rejected(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_set_sec_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_set_num_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_webhook_num_bounds(ngx_conf_t *cf, void *post, void *data);
char *ngx_http_webhook_set_timeout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_WEBHOOK_DIRECTIVES_H_INCLUDED_ */
