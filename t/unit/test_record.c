
/*
 * Unit tests of the spool's records and file names
 * (src/ngx_http_webhook_record.c), printing TAP.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>
#include <zlib.h>

#include "spool/ngx_http_webhook_record.h"


#include "tap.h"


static int
str_is(ngx_str_t *s, const char *expect)
{
    return s->len == strlen(expect) && memcmp(s->data, expect, s->len) == 0;
}


static void
sample(ngx_http_webhook_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->seq = 0x0102030405060708ULL;
    rec->spooled_at = 1764633600123ULL;
    rec->item.ttl = 3600;
    rec->item.max_depth = 7;
    ngx_str_set(&rec->item.list, "{webhook}:queue:high");
    ngx_str_set(&rec->item.seen, "{webhook}:seen:id::e1");
    ngx_str_set(&rec->item.id, "0123456789abcdef0123456789abcdef");
    ngx_str_set(&rec->item.envelope, "{\"id\":\"x\",\"payload\":{}}");
}


static void
test_round_trip(void)
{
    u_char                     buf[1024], *last;
    size_t                     used, len, cut;
    ngx_int_t                  rc;
    ngx_uint_t                 partial, bad;
    ngx_http_webhook_record_t  rec, got;

    sample(&rec);
    len = ngx_http_webhook_record_len(&rec);
    last = ngx_http_webhook_record_write(buf, &rec);

    ok((size_t) (last - buf) == len, "a record is as long as computed");
    ok(ngx_http_webhook_record_seq(buf) == rec.seq, "its sequence number");

    rc = ngx_http_webhook_record_read(buf, len, &got, &used);
    ok(rc == NGX_HTTP_WEBHOOK_REC_OK && used == len, "read back whole");
    ok(got.seq == rec.seq && got.spooled_at == rec.spooled_at
       && got.item.ttl == 3600 && got.item.max_depth == 7, "its numbers");
    ok(str_is(&got.item.list, "{webhook}:queue:high")
       && str_is(&got.item.seen, "{webhook}:seen:id::e1")
       && str_is(&got.item.id, "0123456789abcdef0123456789abcdef")
       && str_is(&got.item.envelope, "{\"id\":\"x\",\"payload\":{}}"),
       "its strings");
    ok(ngx_http_webhook_crc32((u_char *) "123456789", 9) == 0xcbf43926,
       "CRC-32 of \"123456789\" is the standard check value");
    ok(ngx_http_webhook_crc32(buf + 8, len - 8)
       == (uint32_t) crc32(0, buf + 8, len - 8), "the CRC is zlib's");

    /* cut anywhere: more bytes needed, never a record, never bad */

    partial = 0;

    for (cut = 1; cut < len; cut++) {
        if (ngx_http_webhook_record_read(buf, cut, &got, &used)
            == NGX_HTTP_WEBHOOK_REC_PARTIAL)
        {
            partial++;
        }
    }

    ok(partial == len - 1, "every cut record is PARTIAL");

    /* any one byte changed past the magic: bad, or partial (a length) */

    bad = 0;

    for (cut = 4; cut < len; cut++) {
        buf[cut] ^= 0x40;
        rc = ngx_http_webhook_record_read(buf, len, &got, &used);
        bad += (rc != NGX_HTTP_WEBHOOK_REC_OK);
        buf[cut] ^= 0x40;
    }

    ok(bad == len - 4, "every flipped byte is caught");

    buf[0] = 'X';
    ok(ngx_http_webhook_record_read(buf, len, &got, &used)
       == NGX_HTTP_WEBHOOK_REC_BAD, "no magic: BAD");
}


static void
test_names(void)
{
    u_char      buf[512], qbuf[512], *p;
    uint64_t    seq;
    ngx_str_t   q, got;

    ngx_str_set(&q, "{webhook}");
    p = ngx_http_webhook_spool_escape(buf, &q);
    p += sprintf((char *) p, ".%016llx.%d.seg", 0x6619a415c40e5ULL, 1994);

    got.data = qbuf;
    ok(ngx_http_webhook_spool_parse_name(buf, p - buf, &got, &seq) == NGX_OK
       && str_is(&got, "{webhook}") && seq == 0x6619a415c40e5ULL,
       "a segment name: queue and sequence");

    ngx_str_set(&q, "tenant a/b.c%");
    p = ngx_http_webhook_spool_escape(buf, &q);
    *p = '\0';
    ok(strcmp((char *) buf, "tenant%20a%2Fb%2Ec%25") == 0,
       "other bytes are %XX, so never a dot or a slash");
    p += sprintf((char *) p, ".%016llx.requeue7.seg", 5ULL);
    ok(ngx_http_webhook_spool_parse_name(buf, p - buf, &got, &seq) == NGX_OK
       && str_is(&got, "tenant a/b.c%") && seq == 5, "... and come back");

#define bad_name(s)                                                          \
    ngx_http_webhook_spool_parse_name((u_char *) s, sizeof(s) - 1, &got,     \
                                      &seq) == NGX_ERROR

    ok(bad_name("drain.lock"), "drain.lock is no segment");
    ok(bad_name("{webhook}.quarantine"), "a quarantine file is no segment");
    ok(bad_name("q.000000000000000g.1.seg"), "a sequence not in hex");
    ok(bad_name("q.0000000000000001.1.seg.seg"), "two names run together");
    ok(bad_name(".0000000000000001.1.seg"), "no queue");
    ok(bad_name("q%2.0000000000000001.1.seg"), "a cut escape");
    ok(bad_name("q.0000000000000001..seg"), "no writer");
    ok(bad_name("%41.0000000000000001.1.seg"), "an escape of a plain byte");
    ok(bad_name("%2f.0000000000000001.1.seg"), "an escape in lower case");
}


int
main(void)
{
    test_round_trip();
    test_names();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
