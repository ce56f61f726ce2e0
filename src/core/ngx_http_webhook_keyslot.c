
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Cluster's keyslot of a key: the CRC16 (CCITT, XMODEM: polynomial
 * 0x1021, initial value 0, no reflection) of its hash tag, or of the whole
 * key without one, modulo 16384.  The hash tag is what lies between the
 * first "{" and the first "}" after it, when that is not empty.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_keyslot.h"


static uint16_t ngx_http_webhook_crc16(u_char *p, size_t len);


u_char *
ngx_http_webhook_hash_tag(u_char *key, size_t len, size_t *taglen)
{
    u_char  *open, *close;

    open = ngx_strlchr(key, key + len, '{');
    if (open == NULL) {
        return NULL;
    }

    open++;

    close = ngx_strlchr(open, key + len, '}');
    if (close == NULL || close == open) {
        return NULL;
    }

    *taglen = close - open;

    return open;
}


ngx_uint_t
ngx_http_webhook_keyslot(u_char *key, size_t len)
{
    u_char  *tag;
    size_t   taglen;

    tag = ngx_http_webhook_hash_tag(key, len, &taglen);

    if (tag) {
        key = tag;
        len = taglen;
    }

    return ngx_http_webhook_crc16(key, len) & (NGX_HTTP_WEBHOOK_SLOTS_ALL - 1);
}


/* bit by bit: a key's slot is computed at configuration time, and once a
 * batch of the spool's drain */

static uint16_t
ngx_http_webhook_crc16(u_char *p, size_t len)
{
    size_t      i;
    uint32_t    crc;
    ngx_uint_t  bit;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint32_t) p[i] << 8;

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
        }

        crc &= 0xffff;
    }

    return (uint16_t) crc;
}
