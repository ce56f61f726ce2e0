
/*
 * libFuzzer harness of the bounds of Redis's replies
 * (src/redis/ngx_http_webhook_redis_resp.c), with hiredis's reader as the
 * reference: a hostile or impersonated Redis puts any bytes on the
 * connection.
 *
 * The input's first two bytes choose the limits: the module's (for a
 * webhook_batch_max the second byte scales), or small ones that every
 * input can reach.  The rest is the stream, scanned whole and in reads of
 * 1 to 8 bytes that the stream's own bytes choose.  Checked on every
 * input, abort() when broken:
 *  - the scan does not depend on how the stream is cut into reads: the
 *    same answer, the same error and values, the same state after it;
 *  - a stream the scan lets through, read by hiredis, gives only replies
 *    within the limits: no array longer than allowed, no more elements in
 *    one reply, no bulk string or line longer, no deeper nesting; that is
 *    what keeps hiredis from reserving memory for a header's promise.
 *
 * Build and run: make fuzz (see the Makefile).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>
#include <hiredis/hiredis.h>

#include "redis/ngx_http_webhook_redis_resp.h"

#include "fuzz.h"


static void
fuzz_limits(ngx_http_webhook_resp_limits_t *l, u_char how, u_char n)
{
    if (how & 1) {
        /* small: every bound within reach of a short input */
        l->array = 1 + n % 8;
        l->elements = 1 + n % 24;
        l->bulk = n % 48;
        l->line = 1 + n % 40;
        l->reply = 8 + 4 * (size_t) n;
        return;
    }

    ngx_http_webhook_resp_limits(l, 1 + 100 * (size_t) n);
}


/* the reply and what it holds within the limits; its elements counted */

static void
fuzz_reply(redisReply *r, ngx_http_webhook_resp_limits_t *l,
    ngx_uint_t depth, size_t *elements)
{
    size_t  i;

    switch (r->type) {

    case REDIS_REPLY_ARRAY:
        fuzz_check(depth < NGX_HTTP_WEBHOOK_RESP_DEPTH || r->elements == 0,
                   "hiredis read an array nested deeper than allowed");
        fuzz_check(r->elements <= l->array,
                   "hiredis read an array longer than allowed");

        *elements += r->elements;
        fuzz_check(*elements <= l->elements,
                   "hiredis read a reply of more elements than allowed");

        for (i = 0; i < r->elements; i++) {
            fuzz_reply(r->element[i], l, depth + 1, elements);
        }

        break;

    case REDIS_REPLY_STRING:
        fuzz_check(r->len <= l->bulk,
                   "hiredis read a bulk string longer than allowed");
        break;

    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        fuzz_check(r->len < l->line,
                   "hiredis read a line longer than allowed");
        break;

    default:
        break;
    }
}


static void
fuzz_hiredis(u_char *p, size_t n, ngx_http_webhook_resp_limits_t *l)
{
    size_t        elements;
    void         *reply;
    redisReader  *reader;

    reader = redisReaderCreate();
    fuzz_check(reader != NULL, "redisReaderCreate");

    if (n && redisReaderFeed(reader, (const char *) p, n) != REDIS_OK) {
        redisReaderFree(reader);
        return;
    }

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
            break;      /* a protocol error: the module closes then */
        }

        if (reply == NULL) {
            break;      /* the rest is not a whole reply */
        }

        elements = 0;
        fuzz_reply(reply, l, 0, &elements);
        freeReplyObject(reply);
    }

    redisReaderFree(reader);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                          *p;
    size_t                           n, i, k;
    ngx_int_t                        rc1, rc2;
    ngx_http_webhook_resp_scan_t     s1, s2;
    ngx_http_webhook_resp_limits_t   l;

    if (size < 2) {
        return 0;
    }

    fuzz_limits(&l, data[0], data[1]);

    /* no trailing bytes to read past: the exact size */

    n = size - 2;
    p = malloc(n ? n : 1);
    if (p == NULL) {
        return 0;
    }

    memcpy(p, data + 2, n);

    ngx_http_webhook_resp_scan_init(&s1, &l);
    rc1 = ngx_http_webhook_resp_scan(&s1, p, n);

    ngx_http_webhook_resp_scan_init(&s2, &l);
    rc2 = NGX_OK;

    for (i = 0; i < n && rc2 == NGX_OK; i += k) {
        k = ngx_min((size_t) 1 + p[i] % 8, n - i);
        rc2 = ngx_http_webhook_resp_scan(&s2, p + i, k);
    }

    fuzz_check(rc1 == rc2, "the answer depends on the reads");
    fuzz_check(s1.error == s2.error && s1.value == s2.value
               && s1.limit == s2.limit, "the error depends on the reads");

    if (rc1 == NGX_OK) {
        fuzz_check(s1.state == s2.state && s1.depth == s2.depth
                   && s1.elements == s2.elements && s1.bytes == s2.bytes
                   && s1.skip == s2.skip,
                   "the state depends on the reads");

        fuzz_hiredis(p, n, &l);
    }

    free(p);

    return 0;
}
