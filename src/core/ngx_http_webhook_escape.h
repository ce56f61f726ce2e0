
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Bytes from outside (Redis's error strings and addresses, a sentinel's
 * messages, header values) made safe for the error log
 * (ngx_http_webhook_escape.c): pure, built into the unit tests as well.
 */


#ifndef _NGX_HTTP_WEBHOOK_ESCAPE_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_ESCAPE_H_INCLUDED_


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


#endif /* _NGX_HTTP_WEBHOOK_ESCAPE_H_INCLUDED_ */
