
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Text (ngx_http_webhook_text.c): bytes from outside (Redis's error
 * strings and addresses, a sentinel's messages, header values) made safe
 * for the error log; strings escaped for JSON; RFC 3339 time.  Pure,
 * built into the unit tests as well.
 */


#ifndef _NGX_HTTP_WEBHOOK_TEXT_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_TEXT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* a buffer for one value of a log line (nginx's line: NGX_MAX_ERROR_STR) */
#define NGX_HTTP_WEBHOOK_LOG_TEXT  512


/*
 * src, len as text for the error log, in buf of size bytes: a byte outside
 * printable ASCII, '"' and '\' written \xXX (as nginx's access log
 * escapes a variable), cut after a whole byte with "..." when it does not
 * fit.  Returns text, set to it, for use as a %V argument.
 */
ngx_str_t *ngx_http_webhook_log_text(ngx_str_t *text, u_char *buf,
    size_t size, const void *src, size_t len);


u_char *ngx_http_webhook_time(u_char *p, time_t sec, ngx_uint_t msec);
int64_t ngx_http_webhook_time_parse(u_char *p, size_t len);
uint64_t ngx_http_webhook_now_usec(void);

#define NGX_HTTP_WEBHOOK_TIME_LEN  (sizeof("1970-01-01T00:00:00.000Z") - 1)

size_t ngx_http_webhook_json_escape_len(u_char *src, size_t size);
u_char *ngx_http_webhook_json_escape(u_char *dst, u_char *src, size_t size);
size_t ngx_http_webhook_utf8_cut(u_char *src, size_t size, size_t max);


#endif /* _NGX_HTTP_WEBHOOK_TEXT_H_INCLUDED_ */
