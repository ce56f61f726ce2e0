
/*
 * libFuzzer harness of the spool's record reader, walked the way the
 * drainer walks a segment (src/ngx_http_webhook_spool_read.c): records
 * one after another until the bytes end or are no record; and of the
 * file name parser.  A journal is input too: a torn write, a disk error
 * or an operator's copy puts any bytes there.
 *
 * Checked on every input, abort() when broken:
 *  - a record read is inside the bytes, as long as its fields say, and
 *    written again it is the same bytes;
 *  - a PARTIAL never turns into a record with fewer bytes, nor a BAD
 *    with more (the drainer waits on PARTIAL and skips on BAD);
 *  - a parsed file name gives a queue that escapes to the same name.
 *
 * Build and run: make fuzz (see the Makefile).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include "spool/ngx_http_webhook_record.h"

#include "fuzz.h"


static void
fuzz_walk(u_char *data, size_t size)
{
    u_char                     *again;
    size_t                      off, used, used2;
    ngx_int_t                   rc, rc2;
    ngx_http_webhook_record_t   rec, rec2;

    off = 0;

    while (off < size) {
        rc = ngx_http_webhook_record_read(data + off, size - off, &rec,
                                          &used);

        if (rc != NGX_HTTP_WEBHOOK_REC_OK) {
            /* fewer bytes never make it a record */
            if (size - off > 1) {
                rc2 = ngx_http_webhook_record_read(data + off,
                                                   (size - off) / 2, &rec2,
                                                   &used2);
                fuzz_check(rc2 != NGX_HTTP_WEBHOOK_REC_OK,
                           "a prefix of a non-record is a record");
                fuzz_check(rc != NGX_HTTP_WEBHOOK_REC_PARTIAL
                           || rc2 == NGX_HTTP_WEBHOOK_REC_PARTIAL,
                           "a prefix of a PARTIAL is BAD");
            }
            return;
        }

        fuzz_check(used >= NGX_HTTP_WEBHOOK_REC_MIN && used <= size - off,
                   "a record outside the bytes");
        fuzz_check(ngx_http_webhook_record_len(&rec) == used,
                   "the fields' lengths are not the record's");
        fuzz_check(ngx_http_webhook_record_seq(data + off) == rec.seq,
                   "the sequence number");

        again = malloc(used);
        fuzz_check(again != NULL, "malloc");
        fuzz_check(ngx_http_webhook_record_write(again, &rec) == again + used,
                   "written again, another length");
        fuzz_check(memcmp(again, data + off, used) == 0,
                   "written again, other bytes");
        free(again);

        off += used;
    }
}


static void
fuzz_name(u_char *data, size_t size)
{
    u_char      *q, *e, *p;
    uint64_t     seq;
    ngx_str_t    queue;

    q = malloc(size + 1);
    e = malloc(3 * size + 64);
    fuzz_check(q != NULL && e != NULL, "malloc");

    queue.data = q;

    if (ngx_http_webhook_spool_parse_name(data, size, &queue, &seq)
        == NGX_OK)
    {
        fuzz_check(queue.len > 0 && queue.len <= size, "a queue's length");

        p = ngx_http_webhook_spool_escape(e, &queue);
        fuzz_check((size_t) (p - e) < size
                   && memcmp(e, data, p - e) == 0 && data[p - e] == '.',
                   "the queue does not escape to the name's");
    }

    free(q);
    free(e);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *copy;

    /* no trailing bytes to read past: the exact size */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    fuzz_walk(copy, size);
    fuzz_name(copy, size < 512 ? size : 512);

    free(copy);

    return 0;
}
