
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool's records and file names: writing them, and reading them
 * back from bytes that may be torn, truncated or not a record at all.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_record.h"


static u_char *ngx_http_webhook_put32(u_char *p, uint32_t v);
static u_char *ngx_http_webhook_put64(u_char *p, uint64_t v);
static uint32_t ngx_http_webhook_get32(u_char *p);
static uint64_t ngx_http_webhook_get64(u_char *p);
static u_char *ngx_http_webhook_put_str(u_char *p, ngx_str_t *s);
static ngx_int_t ngx_http_webhook_get_str(u_char **p, u_char *last,
    ngx_str_t *s);
static ngx_uint_t ngx_http_webhook_spool_plain(u_char c);
static ngx_int_t ngx_http_webhook_hex(u_char c);


size_t
ngx_http_webhook_record_len(ngx_http_webhook_record_t *rec)
{
    return NGX_HTTP_WEBHOOK_REC_HEADER + 16 + rec->item.list.len
           + rec->item.seen.len + rec->item.id.len + rec->item.envelope.len;
}


u_char *
ngx_http_webhook_record_write(u_char *p, ngx_http_webhook_record_t *rec)
{
    u_char  *start, *last;

    start = p;

    p = ngx_cpymem(p, NGX_HTTP_WEBHOOK_REC_MAGIC, 4);
    p += 4;                                             /* the crc, below */
    p = ngx_http_webhook_put32(p, ngx_http_webhook_record_len(rec));
    p = ngx_http_webhook_put32(p, rec->flags);
    p = ngx_http_webhook_put64(p, rec->seq);
    p = ngx_http_webhook_put64(p, rec->spooled_at);
    p = ngx_http_webhook_put32(p, rec->item.ttl);
    p = ngx_http_webhook_put32(p, rec->item.max_depth);

    p = ngx_http_webhook_put_str(p, &rec->item.list);
    p = ngx_http_webhook_put_str(p, &rec->item.seen);
    p = ngx_http_webhook_put_str(p, &rec->item.id);
    last = ngx_http_webhook_put_str(p, &rec->item.envelope);

    (void) ngx_http_webhook_put32(start + 4,
                                  ngx_http_webhook_crc32(start + 8,
                                                         last - start - 8));
    return last;
}


/* the sequence number of a record written at p */

uint64_t
ngx_http_webhook_record_seq(u_char *p)
{
    return ngx_http_webhook_get64(p + 16);
}


/*
 * The length of the record that begins at p (len bytes are there), when
 * its header says one it may have; else 0.
 */

size_t
ngx_http_webhook_record_need(u_char *p, size_t len)
{
    uint32_t  n;

    if (len < 12 || ngx_memcmp(p, NGX_HTTP_WEBHOOK_REC_MAGIC, 4) != 0) {
        return 0;
    }

    n = ngx_http_webhook_get32(p + 8);

    if (n < NGX_HTTP_WEBHOOK_REC_MIN || n > NGX_HTTP_WEBHOOK_REC_MAX) {
        return 0;
    }

    return n;
}


/*
 * A record at p: OK (and its fields point into p, *used is its length),
 * PARTIAL when the bytes end inside a record that may still be complete,
 * BAD when they are not a record.
 */

ngx_int_t
ngx_http_webhook_record_read(u_char *p, size_t len,
    ngx_http_webhook_record_t *rec, size_t *used)
{
    u_char    *q, *last;
    uint32_t   n;

    if (len < 12) {
        return (ngx_memcmp(p, NGX_HTTP_WEBHOOK_REC_MAGIC, ngx_min(len, 4))
                == 0) ? NGX_HTTP_WEBHOOK_REC_PARTIAL : NGX_HTTP_WEBHOOK_REC_BAD;
    }

    if (ngx_memcmp(p, NGX_HTTP_WEBHOOK_REC_MAGIC, 4) != 0) {
        return NGX_HTTP_WEBHOOK_REC_BAD;
    }

    n = ngx_http_webhook_get32(p + 8);

    if (n < NGX_HTTP_WEBHOOK_REC_MIN || n > NGX_HTTP_WEBHOOK_REC_MAX) {
        return NGX_HTTP_WEBHOOK_REC_BAD;
    }

    if (len < n) {
        return NGX_HTTP_WEBHOOK_REC_PARTIAL;
    }

    if (ngx_http_webhook_crc32(p + 8, n - 8) != ngx_http_webhook_get32(p + 4))
    {
        return NGX_HTTP_WEBHOOK_REC_BAD;
    }

    rec->flags = ngx_http_webhook_get32(p + 12);
    rec->seq = ngx_http_webhook_get64(p + 16);
    rec->spooled_at = ngx_http_webhook_get64(p + 24);
    rec->item.ttl = ngx_http_webhook_get32(p + 32);
    rec->item.max_depth = ngx_http_webhook_get32(p + 36);

    q = p + NGX_HTTP_WEBHOOK_REC_HEADER;
    last = p + n;

    if (ngx_http_webhook_get_str(&q, last, &rec->item.list) != NGX_OK
        || ngx_http_webhook_get_str(&q, last, &rec->item.seen) != NGX_OK
        || ngx_http_webhook_get_str(&q, last, &rec->item.id) != NGX_OK
        || ngx_http_webhook_get_str(&q, last, &rec->item.envelope) != NGX_OK
        || q != last
        || rec->item.list.len == 0 || rec->item.envelope.len == 0)
    {
        return NGX_HTTP_WEBHOOK_REC_BAD;
    }

    *used = n;

    return NGX_HTTP_WEBHOOK_REC_OK;
}


static u_char *
ngx_http_webhook_put32(u_char *p, uint32_t v)
{
    *p++ = (u_char) v;
    *p++ = (u_char) (v >> 8);
    *p++ = (u_char) (v >> 16);
    *p++ = (u_char) (v >> 24);

    return p;
}


static u_char *
ngx_http_webhook_put64(u_char *p, uint64_t v)
{
    p = ngx_http_webhook_put32(p, (uint32_t) v);
    return ngx_http_webhook_put32(p, (uint32_t) (v >> 32));
}


static uint32_t
ngx_http_webhook_get32(u_char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}


static uint64_t
ngx_http_webhook_get64(u_char *p)
{
    return (uint64_t) ngx_http_webhook_get32(p)
           | (uint64_t) ngx_http_webhook_get32(p + 4) << 32;
}


static u_char *
ngx_http_webhook_put_str(u_char *p, ngx_str_t *s)
{
    p = ngx_http_webhook_put32(p, s->len);
    return ngx_cpymem(p, s->data, s->len);
}


static ngx_int_t
ngx_http_webhook_get_str(u_char **p, u_char *last, ngx_str_t *s)
{
    uint32_t  n;

    if (last - *p < 4) {
        return NGX_ERROR;
    }

    n = ngx_http_webhook_get32(*p);
    *p += 4;

    if ((size_t) (last - *p) < n) {
        return NGX_ERROR;
    }

    s->data = *p;
    s->len = n;
    *p += n;

    return NGX_OK;
}


/* CRC-32 (the polynomial of zlib and ethernet), bit by bit per byte */

uint32_t
ngx_http_webhook_crc32(u_char *p, size_t len)
{
    uint32_t    crc;
    ngx_uint_t  k, b;

    static uint32_t    table[256];
    static ngx_uint_t  ready;

    if (!ready) {
        for (k = 0; k < 256; k++) {
            crc = k;
            for (b = 0; b < 8; b++) {
                crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320 : crc >> 1;
            }
            table[k] = crc;
        }
        ready = 1;
    }

    crc = 0xffffffff;

    while (len--) {
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }

    return crc ^ 0xffffffff;
}


/*
 * A queue's name in file names: letters, digits and _-{}: as they are,
 * any other byte as %XX (so never '.', '/' or '%' itself).
 */

static ngx_uint_t
ngx_http_webhook_spool_plain(u_char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '{'
           || c == '}' || c == ':';
}


u_char *
ngx_http_webhook_spool_escape(u_char *dst, ngx_str_t *queue)
{
    size_t  i;

    static u_char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < queue->len; i++) {
        if (ngx_http_webhook_spool_plain(queue->data[i])) {
            *dst++ = queue->data[i];
            continue;
        }

        *dst++ = '%';
        *dst++ = hex[queue->data[i] >> 4];
        *dst++ = hex[queue->data[i] & 0xf];
    }

    return dst;
}


/* dst->data has room for len bytes */

ngx_int_t
ngx_http_webhook_spool_unescape(ngx_str_t *dst, u_char *src, size_t len)
{
    u_char     *p, *last;
    ngx_int_t   hi, lo;

    p = dst->data;
    last = src + len;

    while (src < last) {
        if (*src != '%') {
            if (!ngx_http_webhook_spool_plain(*src)) {
                return NGX_ERROR;
            }

            *p++ = *src++;
            continue;
        }

        if (last - src < 3) {
            return NGX_ERROR;
        }

        /* as written: upper case, and only for what is not plain */

        hi = ngx_http_webhook_hex(src[1]);
        lo = ngx_http_webhook_hex(src[2]);

        if (hi < 0 || lo < 0 || src[1] >= 'a' || src[2] >= 'a'
            || ngx_http_webhook_spool_plain((u_char) (hi << 4 | lo)))
        {
            return NGX_ERROR;
        }

        *p++ = (u_char) (hi << 4 | lo);
        src += 3;
    }

    dst->len = p - dst->data;

    return dst->len ? NGX_OK : NGX_ERROR;
}


/*
 * <escaped queue>.<16 hex digits>.<anything without a dot>.seg: the queue
 * (into queue->data, room for len bytes) and the first sequence number.
 */

ngx_int_t
ngx_http_webhook_spool_parse_name(u_char *name, size_t len, ngx_str_t *queue,
    uint64_t *seq)
{
    u_char      *dot, *p, *last;
    ngx_int_t    d;
    ngx_uint_t   i;

    last = name + len;

    if (len < sizeof(".0000000000000000..seg") || ngx_strncmp(last - 4,
                                                              ".seg", 4))
    {
        return NGX_ERROR;
    }

    dot = ngx_strlchr(name, last, '.');
    if (dot == NULL || last - dot < 22 || dot[17] != '.') {
        return NGX_ERROR;
    }

    if (ngx_http_webhook_spool_unescape(queue, name, dot - name) != NGX_OK) {
        return NGX_ERROR;
    }

    *seq = 0;
    p = dot + 1;

    for (i = 0; i < 16; i++) {
        d = ngx_http_webhook_hex(p[i]);
        if (d < 0) {
            return NGX_ERROR;
        }

        *seq = (*seq << 4) | (uint64_t) d;
    }

    /* the writer's part, then ".seg" */

    if (ngx_strlchr(dot + 18, last - 4, '.') != NULL || dot + 18 == last - 4) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
