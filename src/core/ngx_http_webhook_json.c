
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The JSON scanner of request bodies.  A body is checked once, strictly
 * (RFC 8259, its strings UTF-8 as RFC 3629 has it, at most as many
 * levels deep as webhook_json_max_depth says); after
 * that, the members an event needs are found in the checked text and
 * handed out as spans of it: no tree, no allocation, no copy.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_json.h"


#define NGX_HTTP_WEBHOOK_JSON_NUMBER  63


static u_char *ngx_http_webhook_json_value(u_char *p, u_char *end,
    ngx_uint_t levels);
static u_char *ngx_http_webhook_json_container(u_char *p, u_char *end,
    ngx_uint_t levels);
static u_char *ngx_http_webhook_json_string(u_char *p, u_char *end);
static u_char *ngx_http_webhook_json_digits(u_char *p, u_char *end);
static u_char *ngx_http_webhook_json_num(u_char *p, u_char *end);
static u_char *ngx_http_webhook_json_literal(u_char *p, u_char *end,
    char *literal, size_t len);
static ngx_inline size_t ngx_http_webhook_json_sequence(u_char *p,
    u_char *end);
static ngx_int_t ngx_http_webhook_json_hex4(u_char *p);
static u_char *ngx_http_webhook_json_fail(u_char *p);
static u_char *ngx_http_webhook_json_refuse(u_char *p, ngx_uint_t reason);
static u_char *ngx_http_webhook_json_space(u_char *p, u_char *end);
static u_char *ngx_http_webhook_json_skip(u_char *p);
static ngx_uint_t ngx_http_webhook_json_key_is(ngx_str_t *key,
    ngx_str_t *name);
static ngx_int_t ngx_http_webhook_json_decode(u_char *dst,
    ngx_str_t *string, size_t max);


/* 1: '"', '[', ']', '{', '}' */

static u_char  ngx_http_webhook_json_structural[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0
};


/*
 * 1: a byte that ends the plain run of a string: '"', '\\', a control, a
 * byte of a multi-byte UTF-8 sequence (checked on its own)
 */

static u_char  ngx_http_webhook_json_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
};


/* where and why the last check failed (a worker is single-threaded) */
static u_char      *ngx_http_webhook_json_failed;
static ngx_uint_t   ngx_http_webhook_json_reason;


/*
 * Checks that a text is one JSON value, with nothing but white space
 * around it, its strings UTF-8, at most "depth" levels of objects and
 * arrays deep (the outermost one is the first; at most
 * NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH: the check recurses); the text is not
 * changed.  Sets "value" to the value's span; on error, "error" says
 * where the text stops being taken, and why.
 */

ngx_int_t
ngx_http_webhook_json_check(u_char *p, size_t len, ngx_uint_t depth,
    ngx_str_t *value, ngx_http_webhook_json_error_t *error)
{
    u_char  *start, *end, *last;

    end = p + len;
    start = ngx_http_webhook_json_space(p, end);

    if (depth > NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH) {
        depth = NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH;
    }

    last = ngx_http_webhook_json_value(start, end, depth);

    if (last == NULL) {
        error->offset = ngx_http_webhook_json_failed - p;
        error->reason = ngx_http_webhook_json_reason;
        return NGX_ERROR;
    }

    value->data = start;
    value->len = last - start;

    last = ngx_http_webhook_json_space(last, end);

    if (last != end) {
        error->offset = last - p;
        error->reason = NGX_HTTP_WEBHOOK_JSON_SYNTAX;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Each returns the end of what it checked, or NULL when it is not JSON;
 * "levels" is how many more levels a value may open.
 */

static u_char *
ngx_http_webhook_json_value(u_char *p, u_char *end, ngx_uint_t levels)
{
    if (p == end) {
        return ngx_http_webhook_json_fail(p);
    }

    switch (*p) {

    case '"':
        return ngx_http_webhook_json_string(p, end);

    case '{':
    case '[':
        if (levels == 0) {
            return ngx_http_webhook_json_refuse(p,
                                               NGX_HTTP_WEBHOOK_JSON_DEEP);
        }

        return ngx_http_webhook_json_container(p, end, levels - 1);

    case 't':
        return ngx_http_webhook_json_literal(p, end, "true", 4);

    case 'f':
        return ngx_http_webhook_json_literal(p, end, "false", 5);

    case 'n':
        return ngx_http_webhook_json_literal(p, end, "null", 4);

    default:
        return ngx_http_webhook_json_num(p, end);
    }
}


static u_char *
ngx_http_webhook_json_container(u_char *p, u_char *end, ngx_uint_t levels)
{
    u_char      close;
    ngx_uint_t  object;

    object = (*p == '{');
    close = object ? '}' : ']';

    p = ngx_http_webhook_json_space(p + 1, end);

    if (p < end && *p == close) {
        return p + 1;
    }

    for ( ;; ) {

        if (object) {
            if (p == end || *p != '"') {
                return ngx_http_webhook_json_fail(p);
            }

            p = ngx_http_webhook_json_string(p, end);
            if (p == NULL) {
                return NULL;
            }

            p = ngx_http_webhook_json_space(p, end);

            if (p == end || *p != ':') {
                return ngx_http_webhook_json_fail(p);
            }

            p = ngx_http_webhook_json_space(p + 1, end);
        }

        p = ngx_http_webhook_json_value(p, end, levels);
        if (p == NULL) {
            return NULL;
        }

        p = ngx_http_webhook_json_space(p, end);

        if (p == end) {
            return ngx_http_webhook_json_fail(p);
        }

        if (*p == close) {
            return p + 1;
        }

        if (*p != ',') {
            return ngx_http_webhook_json_fail(p);
        }

        p = ngx_http_webhook_json_space(p + 1, end);
    }
}


static u_char *
ngx_http_webhook_json_string(u_char *p, u_char *end)
{
    size_t     n;
    ngx_int_t  u;

    for (p++; /* void */; /* void */) {

        while (p < end && !ngx_http_webhook_json_special[*p]) {
            p++;
        }

        if (p == end) {
            return ngx_http_webhook_json_fail(p);
        }

        if (*p == '"') {
            return p + 1;
        }

        if (*p >= 0x80) {
            n = ngx_http_webhook_json_sequence(p, end);
            if (n == 0) {
                return ngx_http_webhook_json_refuse(p,
                                                   NGX_HTTP_WEBHOOK_JSON_UTF8);
            }

            p += n;
            continue;
        }

        if (*p != '\\') {
            /* a control character */
            return ngx_http_webhook_json_fail(p);
        }

        /* an escape */

        if (end - p < 2) {
            return ngx_http_webhook_json_fail(p);
        }

        switch (p[1]) {

        case '"': case '\\': case '/':
        case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;

        case 'u':
            if (end - p < 6) {
                return ngx_http_webhook_json_fail(p);
            }

            u = ngx_http_webhook_json_hex4(p + 2);

            if (u == NGX_ERROR || (u >= 0xdc00 && u <= 0xdfff)) {
                return ngx_http_webhook_json_fail(p);
            }

            if (u >= 0xd800 && u <= 0xdbff) {

                /* a high surrogate: its low one must follow */

                if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
                    return ngx_http_webhook_json_fail(p);
                }

                u = ngx_http_webhook_json_hex4(p + 8);

                if (u < 0xdc00 || u > 0xdfff) {
                    return ngx_http_webhook_json_fail(p);
                }

                p += 12;
                break;
            }

            p += 6;
            break;

        default:
            return ngx_http_webhook_json_fail(p);
        }
    }
}


/*
 * The length of the well-formed UTF-8 sequence of two bytes or more at p
 * (Unicode's table 3-7: the shortest form, no UTF-16 surrogate, nothing
 * past U+10FFFF), or 0.
 */

size_t
ngx_http_webhook_json_utf8(u_char *p, u_char *end)
{
    return ngx_http_webhook_json_sequence(p, end);
}


/* the same, inlined in the string loop */

static ngx_inline size_t
ngx_http_webhook_json_sequence(u_char *p, u_char *end)
{
    u_char  c, lo, hi;
    size_t  n, i;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;                                  /* overlong */

        } else if (c == 0xed) {
            hi = 0x9f;                                  /* surrogates */
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;                                  /* overlong */

        } else if (c == 0xf4) {
            hi = 0x8f;                                  /* past U+10FFFF */
        }

    } else {
        /* a continuation byte, an overlong lead (c0, c1), f5 to ff */
        return 0;
    }

    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static u_char *
ngx_http_webhook_json_num(u_char *p, u_char *end)
{
    if (p < end && *p == '-') {
        p++;
    }

    if (p == end) {
        return ngx_http_webhook_json_fail(p);
    }

    if (*p == '0') {
        p++;

    } else {
        p = ngx_http_webhook_json_digits(p, end);
        if (p == NULL) {
            return NULL;
        }
    }

    if (p < end && *p == '.') {
        p = ngx_http_webhook_json_digits(p + 1, end);
        if (p == NULL) {
            return NULL;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        p = ngx_http_webhook_json_digits(p, end);
    }

    return p;
}


/* one or more digits */

static u_char *
ngx_http_webhook_json_digits(u_char *p, u_char *end)
{
    u_char  *start;

    start = p;

    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }

    return p == start ? ngx_http_webhook_json_fail(p) : p;
}


static u_char *
ngx_http_webhook_json_literal(u_char *p, u_char *end, char *literal,
    size_t len)
{
    if ((size_t) (end - p) < len || ngx_strncmp(p, literal, len) != 0) {
        return ngx_http_webhook_json_fail(p);
    }

    return p + len;
}


static ngx_int_t
ngx_http_webhook_json_hex4(u_char *p)
{
    u_char      c;
    ngx_int_t   u;
    ngx_uint_t  i;

    u = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            u = u * 16 + (c - '0');

        } else {
            c |= 0x20;

            if (c < 'a' || c > 'f') {
                return NGX_ERROR;
            }

            u = u * 16 + (c - 'a' + 10);
        }
    }

    return u;
}


static u_char *
ngx_http_webhook_json_fail(u_char *p)
{
    return ngx_http_webhook_json_refuse(p, NGX_HTTP_WEBHOOK_JSON_SYNTAX);
}


static u_char *
ngx_http_webhook_json_refuse(u_char *p, ngx_uint_t reason)
{
    ngx_http_webhook_json_failed = p;
    ngx_http_webhook_json_reason = reason;

    return NULL;
}


/* white space, kept as it is: the payload is the text as received */

static u_char *
ngx_http_webhook_json_space(u_char *p, u_char *end)
{
    while (p < end && (*p == ' ' || *p == LF || *p == CR || *p == '\t')) {
        p++;
    }

    return p;
}


/* the end of a value of checked text, or of a string from its quote */

static u_char *
ngx_http_webhook_json_skip(u_char *p)
{
    ngx_uint_t  depth;

    if (*p == '"') {
        for (p++; /* void */; /* void */) {
            while (!ngx_http_webhook_json_special[*p]) {
                p++;
            }

            if (*p == '"') {
                return p + 1;
            }

            /* an escape, or a byte of a (checked) UTF-8 sequence */
            p += (*p == '\\') ? 2 : 1;
        }
    }

    if (*p != '{' && *p != '[') {
        /* a number or a literal: white space or a delimiter follows it */

        while (*p > ' ' && *p != ',' && *p != '}' && *p != ']') {
            p++;
        }

        return p;
    }

    depth = 0;

    for ( ;; ) {
        while (!ngx_http_webhook_json_structural[*p]) {
            p++;
        }

        switch (*p) {

        case '"':
            p = ngx_http_webhook_json_skip(p);
            continue;

        case '{':
        case '[':
            depth++;
            break;

        default:                                        /* '}' or ']' */
            if (--depth == 0) {
                return p + 1;
            }
        }

        p++;
    }
}


/*
 * Finds in a checked object the first member named names[i], for each i:
 * values[i] is its value, or empty.  Returns how many were found.
 */

ngx_uint_t
ngx_http_webhook_json_members(ngx_str_t *object, ngx_str_t *names,
    ngx_str_t *values, ngx_uint_t n)
{
    u_char      *p, *end;
    ngx_str_t    key;
    ngx_uint_t   i, found;

    for (i = 0; i < n; i++) {
        values[i].len = 0;
    }

    p = object->data + 1;
    end = object->data + object->len - 1;
    found = 0;

    for ( ;; ) {
        p = ngx_http_webhook_json_space(p, end);

        if (p == end) {
            return found;
        }

        key.data = p;
        p = ngx_http_webhook_json_skip(p);
        key.len = p - key.data;

        p = ngx_http_webhook_json_space(p, end) + 1;     /* ':' */
        p = ngx_http_webhook_json_space(p, end);

        for (i = 0; i < n; i++) {
            if (values[i].len == 0
                && ngx_http_webhook_json_key_is(&key, &names[i]))
            {
                break;
            }
        }

        if (i < n) {
            values[i].data = p;
            p = ngx_http_webhook_json_skip(p);
            values[i].len = p - values[i].data;

            if (++found == n) {
                return found;
            }

        } else {
            p = ngx_http_webhook_json_skip(p);
        }

        p = ngx_http_webhook_json_space(p, end);

        if (p < end) {
            p++;                                        /* ',' */
        }
    }
}


/*
 * The elements of a checked array, as spans: their number, or NGX_ERROR
 * when there are more than n.  With no elts, just their number.
 */

ngx_int_t
ngx_http_webhook_json_elements(ngx_str_t *array, ngx_str_t *elts,
    ngx_uint_t n)
{
    u_char      *p, *end;
    ngx_uint_t   i;

    p = array->data + 1;
    end = array->data + array->len - 1;

    for (i = 0; /* void */; i++) {
        p = ngx_http_webhook_json_space(p, end);

        if (p == end) {
            return i;
        }

        if (elts == NULL) {
            p = ngx_http_webhook_json_skip(p);

        } else {
            if (i == n) {
                return NGX_ERROR;
            }

            elts[i].data = p;
            p = ngx_http_webhook_json_skip(p);
            elts[i].len = p - elts[i].data;
        }

        p = ngx_http_webhook_json_space(p, end);

        if (p < end) {
            p++;                                        /* ',' */
        }
    }
}


/*
 * A key, escaped or not, compared unescaped.  A key holding a \u0000 is
 * no name the module reads: cut there, it would be read as another key
 * than the one a consumer sees.
 */

static ngx_uint_t
ngx_http_webhook_json_key_is(ngx_str_t *key, ngx_str_t *name)
{
    u_char     buf[64 + 4];
    ngx_int_t  len;

    if (key->len < name->len + 2) {
        return 0;
    }

    if (ngx_strlchr(key->data + 1, key->data + key->len - 1, '\\') == NULL) {
        return key->len == name->len + 2
               && ngx_memcmp(key->data + 1, name->data, name->len) == 0;
    }

    if (name->len >= 64) {
        return 0;
    }

    len = ngx_http_webhook_json_decode(buf, key, name->len + 1);

    return len == (ngx_int_t) name->len
           && ngx_memcmp(buf, name->data, len) == 0;
}


/*
 * The text of a checked string, unescaped into dst (room for the
 * string's length): its length, or NGX_ERROR when it holds a \u0000,
 * which no field the module reads may hold (cut there, it would name
 * less than the payload says).
 */

ngx_int_t
ngx_http_webhook_json_unescape(u_char *dst, ngx_str_t *string)
{
    return ngx_http_webhook_json_decode(dst, string, string->len);
}


/*
 * At most max bytes, plus a UTF-8 sequence that starts before max; a
 * \u0000 among them is NGX_ERROR.
 */

static ngx_int_t
ngx_http_webhook_json_decode(u_char *dst, ngx_str_t *string, size_t max)
{
    u_char    *p, *end, *d, *last;
    uint32_t   u;

    p = string->data + 1;
    end = string->data + string->len - 1;
    d = dst;
    last = dst + max;

    while (p < end && d < last) {

        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }

        p++;

        switch (*p++) {
        case 'b': *d++ = '\b'; continue;
        case 'f': *d++ = '\f'; continue;
        case 'n': *d++ = '\n'; continue;
        case 'r': *d++ = '\r'; continue;
        case 't': *d++ = '\t'; continue;
        case 'u': break;
        default: *d++ = p[-1]; continue;
        }

        u = (uint32_t) ngx_http_webhook_json_hex4(p);
        p += 4;

        if (u >= 0xd800 && u <= 0xdbff) {
            u = 0x10000 + ((u - 0xd800) << 10)
                + ((uint32_t) ngx_http_webhook_json_hex4(p + 2) - 0xdc00);
            p += 6;
        }

        if (u == 0) {
            return NGX_ERROR;
        }

        if (u < 0x80) {
            *d++ = (u_char) u;

        } else if (u < 0x800) {
            *d++ = (u_char) (0xc0 | (u >> 6));
            *d++ = (u_char) (0x80 | (u & 0x3f));

        } else if (u < 0x10000) {
            *d++ = (u_char) (0xe0 | (u >> 12));
            *d++ = (u_char) (0x80 | ((u >> 6) & 0x3f));
            *d++ = (u_char) (0x80 | (u & 0x3f));

        } else {
            *d++ = (u_char) (0xf0 | (u >> 18));
            *d++ = (u_char) (0x80 | ((u >> 12) & 0x3f));
            *d++ = (u_char) (0x80 | ((u >> 6) & 0x3f));
            *d++ = (u_char) (0x80 | (u & 0x3f));
        }
    }

    return d - dst;
}


/* the value of a checked number, as cJSON reads it (strtod) */

ngx_int_t
ngx_http_webhook_json_number(ngx_str_t *number, double *d)
{
    u_char  buf[NGX_HTTP_WEBHOOK_JSON_NUMBER + 1];

    if (number->len > NGX_HTTP_WEBHOOK_JSON_NUMBER) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, number->data, number->len);
    buf[number->len] = '\0';

    *d = strtod((char *) buf, NULL);

    return NGX_OK;
}
