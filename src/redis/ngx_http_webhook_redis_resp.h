
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The bounds of Redis's replies (ngx_http_webhook_redis_resp.c): the bytes
 * read from a Redis connection are scanned before hiredis's reader sees
 * them, so that what a header announces (an array of 10^8 elements, a
 * bulk string of a gigabyte, a line that never ends) is refused before
 * anything is allocated for it, with hiredis 0.14 as with 1.x.  Pure: no
 * nginx runtime, built into the unit tests as well.
 */


#ifndef _NGX_HTTP_WEBHOOK_REDIS_RESP_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_REDIS_RESP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* hiredis 0.14's own limit; the module's deepest reply (CLUSTER SLOTS) has 4 */
#define NGX_HTTP_WEBHOOK_RESP_DEPTH      7

/* Redis's own bound of an inline command (PROTO_INLINE_MAX_SIZE) */
#define NGX_HTTP_WEBHOOK_RESP_LINE       65536

/*
 * no reply the module asks for holds a string of more than a few hundred
 * bytes (envelope ids, addresses, node ids, SHA-1 digests, times)
 */
#define NGX_HTTP_WEBHOOK_RESP_BULK       (1024 * 1024)

/* CLUSTER SLOTS: at most one range a slot */
#define NGX_HTTP_WEBHOOK_RESP_ARRAY      16384

/*
 * every element is a reply object of its own (about 60 bytes): the most of
 * them in one reply; CLUSTER SLOTS with a replica a primary takes 13 a
 * range, so even 16384 ranges (one a slot) fit
 */
#define NGX_HTTP_WEBHOOK_RESP_ELEMENTS   262144

#define NGX_HTTP_WEBHOOK_RESP_REPLY      (64 * 1024 * 1024)


typedef enum {
    NGX_HTTP_WEBHOOK_RESP_OK = 0,
    NGX_HTTP_WEBHOOK_RESP_BAD_TYPE,      /* value: the byte */
    NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH,
    NGX_HTTP_WEBHOOK_RESP_TOO_DEEP,      /* value: the depth allowed */
    NGX_HTTP_WEBHOOK_RESP_BIG_ARRAY,     /* value: its elements */
    NGX_HTTP_WEBHOOK_RESP_BIG_REPLY,     /* value: the elements allowed */
    NGX_HTTP_WEBHOOK_RESP_BIG_BULK,      /* value: its bytes */
    NGX_HTTP_WEBHOOK_RESP_BIG_LINE,      /* value: the bytes allowed */
    NGX_HTTP_WEBHOOK_RESP_BIG_BYTES      /* value: the bytes allowed */
} ngx_http_webhook_resp_error_e;


typedef struct {
    size_t                         array;     /* elements of one array */
    size_t                         elements;  /* of one reply, in all */
    size_t                         bulk;      /* bytes of a bulk string */
    size_t                         line;      /* of a +, - or : line */
    size_t                         reply;     /* bytes of one reply */
} ngx_http_webhook_resp_limits_t;


typedef struct {
    ngx_http_webhook_resp_limits_t  *limits;
    ngx_uint_t                      state;
    u_char                          type;     /* of the item being read */
    size_t                          len;      /* of its line so far */
    size_t                          num;      /* its length, as read */
    size_t                          skip;     /* of a bulk string, CRLF
                                                 included, left */
    size_t                          elements; /* of the reply so far */
    size_t                          bytes;
    ngx_uint_t                      depth;    /* arrays open */
    size_t                          left[NGX_HTTP_WEBHOOK_RESP_DEPTH];
    ngx_http_webhook_resp_error_e   error;
    size_t                          value;    /* what broke the bound */
    size_t                          limit;    /* the bound */
    unsigned                        cr:1;
    unsigned                        neg:1;
    unsigned                        digits:1;
} ngx_http_webhook_resp_scan_t;


/* the limits for replies to enqueue batches of batch_max events */
void ngx_http_webhook_resp_limits(ngx_http_webhook_resp_limits_t *limits,
    size_t batch_max);
void ngx_http_webhook_resp_scan_init(ngx_http_webhook_resp_scan_t *s,
    ngx_http_webhook_resp_limits_t *limits);
/* NGX_OK, or NGX_ERROR with s->error and s->value: the stream is broken */
ngx_int_t ngx_http_webhook_resp_scan(ngx_http_webhook_resp_scan_t *s,
    u_char *p, size_t n);


#endif /* _NGX_HTTP_WEBHOOK_REDIS_RESP_H_INCLUDED_ */
