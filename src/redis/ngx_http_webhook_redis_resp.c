
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The bounds of Redis's replies, checked on the bytes as they arrive: a
 * scan of the RESP2 stream that reads only the headers (types, lengths,
 * line ends) and skips the contents, keeping what it needs across reads
 * (the open arrays and the elements left in each).  hiredis 0.14 reserves
 * the element pointers of an array as soon as its header is read, and
 * both 0.14 and 1.x buffer a bulk string or a line whole before looking
 * at it: here a header past the limits is refused before they see it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_redis_resp.h"


/* a number past every limit, kept from overflowing */
#define NGX_HTTP_WEBHOOK_RESP_HUGE  ((size_t) 1 << 48)



enum {
    sw_type = 0,
    sw_line,
    sw_length,
    sw_bulk
};


static ngx_int_t ngx_http_webhook_resp_length(ngx_http_webhook_resp_scan_t *s);
static void ngx_http_webhook_resp_item(ngx_http_webhook_resp_scan_t *s);
static ngx_int_t ngx_http_webhook_resp_count(ngx_http_webhook_resp_scan_t *s,
    size_t n);


/*
 * The enqueue script answers one element an event of a batch (a spool
 * drain's batch is smaller); the status script three a queue; CLUSTER
 * SLOTS one array a range of slots, nested 4 deep.  A reply's bytes: an
 * element is at most an envelope id's bulk string.
 */

void
ngx_http_webhook_resp_limits(ngx_http_webhook_resp_limits_t *limits,
    size_t batch_max)
{
    limits->array = ngx_max(batch_max, NGX_HTTP_WEBHOOK_RESP_ARRAY);
    limits->elements = ngx_max(limits->array + 1,
                               NGX_HTTP_WEBHOOK_RESP_ELEMENTS);
    limits->bulk = NGX_HTTP_WEBHOOK_RESP_BULK;
    limits->line = NGX_HTTP_WEBHOOK_RESP_LINE;
    limits->reply = ngx_max(64 * limits->array, NGX_HTTP_WEBHOOK_RESP_REPLY);
}


void
ngx_http_webhook_resp_scan_init(ngx_http_webhook_resp_scan_t *s,
    ngx_http_webhook_resp_limits_t *limits)
{
    ngx_memzero(s, sizeof(ngx_http_webhook_resp_scan_t));

    s->limits = limits;
    s->state = sw_type;
}


ngx_int_t
ngx_http_webhook_resp_scan(ngx_http_webhook_resp_scan_t *s, u_char *p,
    size_t n)
{
    u_char  *last, ch;
    size_t   k;

    if (s->error) {
        return NGX_ERROR;
    }

    last = p + n;

    while (p < last) {

        switch (s->state) {

        case sw_type:
            ch = *p++;

            if (ngx_http_webhook_resp_count(s, 1) != NGX_OK) {
                return NGX_ERROR;
            }

            s->type = ch;
            s->len = 0;
            s->num = 0;
            s->cr = 0;
            s->neg = 0;
            s->digits = 0;

            switch (ch) {

            case '+':
            case '-':
            case ':':
                s->state = sw_line;
                break;

            case '$':
            case '*':
                s->state = sw_length;
                break;

            default:
                /* RESP2 only: the module never asks for RESP3 (HELLO 3) */
                s->error = NGX_HTTP_WEBHOOK_RESP_BAD_TYPE;
                s->value = ch;
                return NGX_ERROR;
            }

            break;

        case sw_line:

            /* a line ends at the first CR LF, as hiredis reads it */

            while (p < last) {
                ch = *p++;

                if (ngx_http_webhook_resp_count(s, 1) != NGX_OK) {
                    return NGX_ERROR;
                }

                if (ch == LF && s->cr) {
                    ngx_http_webhook_resp_item(s);
                    break;
                }

                s->cr = (ch == CR);

                if (++s->len > s->limits->line) {
                    s->error = NGX_HTTP_WEBHOOK_RESP_BIG_LINE;
                    s->value = s->limits->line;
                    return NGX_ERROR;
                }
            }

            break;

        case sw_length:
            ch = *p++;

            if (ngx_http_webhook_resp_count(s, 1) != NGX_OK) {
                return NGX_ERROR;
            }

            if (++s->len > NGX_INT64_LEN + 2) {
                s->error = NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH;
                return NGX_ERROR;
            }

            if (ch >= '0' && ch <= '9' && !s->cr) {
                s->num = s->num * 10 + (ch - '0');
                s->num = ngx_min(s->num, NGX_HTTP_WEBHOOK_RESP_HUGE);
                s->digits = 1;
                break;
            }

            if (ch == '-' && s->len == 1) {
                s->neg = 1;
                break;
            }

            if (ch == CR && s->digits && !s->cr) {
                s->cr = 1;
                break;
            }

            if (ch != LF || !s->cr) {
                s->error = NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH;
                return NGX_ERROR;
            }

            if (ngx_http_webhook_resp_length(s) != NGX_OK) {
                return NGX_ERROR;
            }

            break;

        default: /* sw_bulk */
            k = ngx_min(s->skip, (size_t) (last - p));

            p += k;
            s->skip -= k;

            if (ngx_http_webhook_resp_count(s, k) != NGX_OK) {
                return NGX_ERROR;
            }

            if (s->skip == 0) {
                ngx_http_webhook_resp_item(s);
            }

            break;
        }
    }

    return NGX_OK;
}


/* the length of a bulk string or an array has been read */

static ngx_int_t
ngx_http_webhook_resp_length(ngx_http_webhook_resp_scan_t *s)
{
    if (s->neg) {
        if (s->num != 1) {
            s->error = NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH;
            return NGX_ERROR;
        }

        /* a nil */
        ngx_http_webhook_resp_item(s);
        return NGX_OK;
    }

    if (s->type == '$') {
        if (s->num > s->limits->bulk) {
            s->error = NGX_HTTP_WEBHOOK_RESP_BIG_BULK;
            s->value = s->num;
            s->limit = s->limits->bulk;
            return NGX_ERROR;
        }

        s->skip = s->num + 2;
        s->state = sw_bulk;

        return NGX_OK;
    }

    /* an array */

    if (s->num > s->limits->array) {
        s->error = NGX_HTTP_WEBHOOK_RESP_BIG_ARRAY;
        s->value = s->num;
        s->limit = s->limits->array;
        return NGX_ERROR;
    }

    s->elements += s->num;

    if (s->elements > s->limits->elements) {
        s->error = NGX_HTTP_WEBHOOK_RESP_BIG_REPLY;
        s->value = s->limits->elements;
        return NGX_ERROR;
    }

    if (s->num == 0) {
        ngx_http_webhook_resp_item(s);
        return NGX_OK;
    }

    if (s->depth == NGX_HTTP_WEBHOOK_RESP_DEPTH) {
        s->error = NGX_HTTP_WEBHOOK_RESP_TOO_DEEP;
        s->value = NGX_HTTP_WEBHOOK_RESP_DEPTH;
        return NGX_ERROR;
    }

    s->left[s->depth++] = s->num;
    s->state = sw_type;

    return NGX_OK;
}


/* an item is complete: the arrays it completes are closed */

static void
ngx_http_webhook_resp_item(ngx_http_webhook_resp_scan_t *s)
{
    s->state = sw_type;

    while (s->depth) {
        if (--s->left[s->depth - 1]) {
            return;
        }

        s->depth--;
    }

    /* a reply is complete */

    s->elements = 0;
    s->bytes = 0;
}


/*
 * n more bytes of the reply, checked as they are counted: before an item
 * they end can end the reply, so that where the reads cut the stream
 * changes nothing
 */

static ngx_int_t
ngx_http_webhook_resp_count(ngx_http_webhook_resp_scan_t *s, size_t n)
{
    s->bytes += n;

    if (s->bytes > s->limits->reply) {
        s->error = NGX_HTTP_WEBHOOK_RESP_BIG_BYTES;
        s->value = s->limits->reply;
        return NGX_ERROR;
    }

    return NGX_OK;
}
