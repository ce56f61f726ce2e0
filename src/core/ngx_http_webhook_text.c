
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Text: bytes the module does not control made safe for the error log (a
 * newline in a Redis error must not start a line of its own, a forged log
 * line, nor a terminal's escape sequence reach whoever reads the log) and
 * for JSON strings (escaped, cut at a UTF-8 character's boundary), and
 * RFC 3339 time, written and read.  Pure: built into the unit tests too.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_text.h"
#include "ngx_http_webhook_json.h"


static u_char *ngx_http_webhook_digits(u_char *p, ngx_uint_t n,
    ngx_uint_t width);


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


/* RFC 3339, UTC, with milliseconds: 2026-11-27T09:14:03.412Z */

u_char *
ngx_http_webhook_time(u_char *p, time_t sec, ngx_uint_t msec)
{
    int64_t     days, era, doe, yoe, doy, mp, y, m, d, rem;

    /* days to civil date, proleptic Gregorian (H. Hinnant's algorithm) */

    days = sec / 86400;
    rem = sec % 86400;

    if (rem < 0) {
        rem += 86400;
        days--;
    }

    days += 719468;
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    p = ngx_http_webhook_digits(p, (ngx_uint_t) y, 4);
    *p++ = '-';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) m, 2);
    *p++ = '-';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) d, 2);
    *p++ = 'T';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) (rem / 3600), 2);
    *p++ = ':';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) (rem / 60 % 60), 2);
    *p++ = ':';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) (rem % 60), 2);
    *p++ = '.';
    p = ngx_http_webhook_digits(p, msec % 1000, 3);
    *p++ = 'Z';

    return p;
}


/* the inverse: "2026-11-27T09:14:03.412Z" to milliseconds, -1 if not */

int64_t
ngx_http_webhook_time_parse(u_char *p, size_t len)
{
    int64_t     y, m, d, era, yoe, doy, doe, days, v[7];
    size_t      i, k;
    ngx_uint_t  width[7] = { 4, 2, 2, 2, 2, 2, 3 };
    u_char      sep[7] = { '-', '-', 'T', ':', ':', '.', 'Z' };

    if (len != NGX_HTTP_WEBHOOK_TIME_LEN) {
        return -1;
    }

    for (k = 0; k < 7; k++) {
        v[k] = 0;

        for (i = 0; i < width[k]; i++, p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }

            v[k] = v[k] * 10 + (*p - '0');
        }

        if (*p++ != sep[k]) {
            return -1;
        }
    }

    y = v[0];
    m = v[1];
    d = v[2];

    if (m < 1 || m > 12 || d < 1 || d > 31) {
        return -1;
    }

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    return ((days * 86400 + v[3] * 3600 + v[4] * 60 + v[5]) * 1000) + v[6];
}


static u_char *
ngx_http_webhook_digits(u_char *p, ngx_uint_t n, ngx_uint_t width)
{
    ngx_uint_t  i;

    for (i = width; i; i--) {
        p[i - 1] = (u_char) ('0' + n % 10);
        n /= 10;
    }

    return p + width;
}


/*
 * A JSON string's text for any bytes: '"', '\\' and controls escaped, a
 * byte that starts no well-formed UTF-8 character (of a refused body, of
 * Redis's reason) written \ufffd, so that strict readers take the text.
 */

size_t
ngx_http_webhook_json_escape_len(u_char *src, size_t size)
{
    u_char  *end;
    size_t   len, n;

    end = src + size;

    for (len = size; src < end; src += n) {
        n = 1;

        if (*src == '"' || *src == '\\') {
            len++;

        } else if (*src < 0x20) {
            len += sizeof("\\u001f") - 2;

        } else if (*src >= 0x80) {
            n = ngx_http_webhook_json_utf8(src, end);

            if (n == 0) {
                n = 1;
                len += sizeof("\\ufffd") - 2;
            }
        }
    }

    return len;
}


u_char *
ngx_http_webhook_json_escape(u_char *dst, u_char *src, size_t size)
{
    u_char  *end;
    size_t   n;

    static u_char  hex[] = "0123456789abcdef";

    end = src + size;

    while (src < end) {

        if (*src == '"' || *src == '\\') {
            *dst++ = '\\';
            *dst++ = *src++;

        } else if (*src < 0x20) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src++ & 0xf];

        } else if (*src < 0x80) {
            *dst++ = *src++;

        } else {
            n = ngx_http_webhook_json_utf8(src, end);

            if (n == 0) {
                dst = ngx_cpymem(dst, "\\ufffd", sizeof("\\ufffd") - 1);
                src++;
                continue;
            }

            dst = ngx_cpymem(dst, src, n);
            src += n;
        }
    }

    return dst;
}


/*
 * Where to cut bytes at "max" or a little before, not inside a UTF-8
 * character: a well-formed one that starts before max and ends past it
 * is left out whole.
 */

size_t
ngx_http_webhook_utf8_cut(u_char *src, size_t size, size_t max)
{
    size_t  start;

    if (size <= max) {
        return size;
    }

    /* the start of the character that holds the first byte cut off */

    for (start = max;
         start > 0 && max - start < 3 && (src[start] & 0xc0) == 0x80;
         start--)
    {
        /* void */
    }

    if (start < max
        && ngx_http_webhook_json_utf8(src + start, src + size) > max - start)
    {
        return start;
    }

    return max;
}


/* the time now, in microseconds (for durations and sequence numbers) */

uint64_t
ngx_http_webhook_now_usec(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}
