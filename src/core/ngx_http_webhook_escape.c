
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Text for the error log from bytes the module does not control: a
 * newline in a Redis error must not start a line of its own (a forged
 * log line), nor a terminal's escape sequence reach whoever reads the
 * log.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_escape.h"


#define ngx_http_webhook_log_escaped(ch)                                     \
    ((ch) < 0x20 || (ch) >= 0x7f || (ch) == '"' || (ch) == '\\')


ngx_str_t *
ngx_http_webhook_log_text(ngx_str_t *text, u_char *buf, size_t size,
    const void *src, size_t len)
{
    u_char        *p, *last, ch;
    size_t         i, need, n;
    const u_char  *s;

    static u_char  hex[] = "0123456789ABCDEF";

    s = src;
    need = 0;

    for (i = 0; i < len; i++) {
        need += ngx_http_webhook_log_escaped(s[i]) ? 4 : 1;
    }

    /* what is cut ends with "...", so it needs 3 bytes */

    p = buf;
    last = (need <= size) ? buf + size : buf + size - ngx_min(size, 3);

    for (i = 0; i < len; i++) {
        ch = s[i];
        n = ngx_http_webhook_log_escaped(ch) ? 4 : 1;

        if ((size_t) (last - p) < n) {
            break;
        }

        if (n == 1) {
            *p++ = ch;
            continue;
        }

        *p++ = '\\';
        *p++ = 'x';
        *p++ = hex[ch >> 4];
        *p++ = hex[ch & 0xf];
    }

    if (i < len) {
        n = ngx_min(size - (p - buf), 3);
        p = ngx_cpymem(p, "...", n);
    }

    text->data = buf;
    text->len = p - buf;

    return text;
}
