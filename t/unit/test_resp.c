
/*
 * Unit tests of the bounds of Redis's replies
 * (src/ngx_http_webhook_redis_resp.c), printing TAP: replies the module
 * asks for pass whole and cut at every byte, what a header announces
 * past a limit is refused at the header, the stream's state carries
 * across reads.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include "redis/ngx_http_webhook_redis_resp.h"


#include "tap.h"


static ngx_http_webhook_resp_limits_t  limits;


/* the scan of text, cut into reads of step bytes: NGX_OK or the error */

static ngx_int_t
scan(const char *text, size_t len, size_t step, size_t *value)
{
    size_t                        i, n;
    ngx_http_webhook_resp_scan_t  s;

    ngx_http_webhook_resp_scan_init(&s, &limits);

    for (i = 0; i < len; i += n) {
        n = ngx_min(step, len - i);

        if (ngx_http_webhook_resp_scan(&s, (u_char *) text + i, n)
            != NGX_OK)
        {
            if (value) {
                *value = s.value;
            }

            return s.error;
        }
    }

    /* a whole reply leaves no array open and nothing counted */

    if (s.depth || s.elements || s.bytes) {
        return -1;
    }

    return NGX_OK;
}


static int
passes(const char *text)
{
    size_t  step, len;

    len = strlen(text);

    for (step = 1; step <= len; step++) {
        if (scan(text, len, step, NULL) != NGX_OK) {
            return 0;
        }
    }

    return 1;
}


static void
test_replies(void)
{
    ok(passes("+OK\r\n"), "a status");
    ok(passes("-ERR wrong number of arguments\r\n"), "an error");
    ok(passes("-ERR a\nforged line\r\n"), "an error with a newline");
    ok(passes(":42\r\n:-1\r\n"), "integers");
    ok(passes("$40\r\n0123456789012345678901234567890123456789\r\n"),
       "a SHA-1 of SCRIPT LOAD");
    ok(passes("$3\r\na\r\n\r\n"), "a bulk string holding CR LF");
    ok(passes("$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"), "empty and nil");
    ok(passes("+a\rb\r\r\n"), "a CR in a line");
    ok(passes("*3\r\n:1\r\n$36\r\n0f8fad5b-d9cb-469f-a165-70867728950e\r\n"
              ":1\r\n"), "the enqueue script's answer");
    ok(passes("*2\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n"
              ":7000\r\n$4\r\nabcd\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n"
              ":7003\r\n$4\r\nefgh\r\n*0\r\n"
              "*3\r\n:5461\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n"
              ":7001\r\n$4\r\nijkl\r\n"), "CLUSTER SLOTS");
    ok(passes("*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
              "$38\r\nwebhooks 127.0.0.1 6380 127.0.0.1 6381\r\n"),
       "a +switch-master message");
}


static void
test_bounds(void)
{
    size_t       value;
    const char  *p;

    value = 0;
    p = "*100000000\r\n";
    ok(scan(p, strlen(p), 1, &value) == NGX_HTTP_WEBHOOK_RESP_BIG_ARRAY
       && value == 100000000, "an array of 10^8 elements");

    p = "*99999999999999999999999\r\n";
    ok(scan(p, strlen(p), 3, NULL) == NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH,
       "a length of 23 digits");

    p = "*16384\r\n";
    ok(scan(p, strlen(p), 1, NULL) == -1,
       "an array of 16384 elements is taken (the reply is incomplete)");

    p = "$100000000\r\n";
    ok(scan(p, strlen(p), 5, &value) == NGX_HTTP_WEBHOOK_RESP_BIG_BULK
       && value == 100000000, "a bulk string of 10^8 bytes");

    p = "$1048576\r\n";
    ok(scan(p, strlen(p), 5, NULL) == -1,
       "a bulk string of 1 MiB is taken (the reply is incomplete)");

    p = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
    ok(scan(p, strlen(p), 2, NULL) == NGX_HTTP_WEBHOOK_RESP_TOO_DEEP,
       "arrays nested 8 deep");

    p = "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
    ok(scan(p, strlen(p), 2, NULL) == NGX_OK, "arrays nested 7 deep");

    p = "%2\r\n";
    ok(scan(p, strlen(p), 1, &value) == NGX_HTTP_WEBHOOK_RESP_BAD_TYPE
       && value == '%', "a RESP3 map");

    p = "$-2\r\n";
    ok(scan(p, strlen(p), 1, NULL) == NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH,
       "a length of -2");

    p = "$1-\r\n";
    ok(scan(p, strlen(p), 1, NULL) == NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH,
       "a minus after a digit");

    p = "$\r\n";
    ok(scan(p, strlen(p), 1, NULL) == NGX_HTTP_WEBHOOK_RESP_BAD_LENGTH,
       "no digit");
}


static void
test_line(void)
{
    char    *line;
    size_t   len;

    len = NGX_HTTP_WEBHOOK_RESP_LINE + 16;
    line = malloc(len);
    if (line == NULL) {
        return;
    }

    memset(line, 'x', len);
    line[0] = '-';
    ok(scan(line, len, 4096, NULL) == NGX_HTTP_WEBHOOK_RESP_BIG_LINE,
       "a line past 64 KiB");

    line[NGX_HTTP_WEBHOOK_RESP_LINE - 1] = '\r';
    line[NGX_HTTP_WEBHOOK_RESP_LINE] = '\n';
    ok(scan(line, NGX_HTTP_WEBHOOK_RESP_LINE + 1, 4096, NULL) == NGX_OK,
       "a line of 64 KiB");

    free(line);
}


static void
test_elements(void)
{
    char        *text, *p;
    size_t       i, value;
    ngx_uint_t   n;

    /* 4096 arrays of 64: 266240 elements in one reply */

    n = 4096;
    text = malloc(16 + n * (5 + 64 * 4));
    if (text == NULL) {
        return;
    }

    p = text + sprintf(text, "*%u\r\n", (unsigned) n);

    for (i = 0; i < n; i++) {
        p += sprintf(p, "*64\r\n");

        for (value = 0; value < 64; value++) {
            memcpy(p, ":1\r\n", 4);
            p += 4;
        }
    }

    value = 0;
    ok(scan(text, p - text, 65536, &value) == NGX_HTTP_WEBHOOK_RESP_BIG_REPLY
       && value == NGX_HTTP_WEBHOOK_RESP_ELEMENTS,
       "more elements in one reply than allowed");

    /* 4000 of them: 260000 */

    ngx_memcpy(text, "*4000\r\n", 7);
    p = text + 7 + 4000 * (5 + 64 * 4);
    ok(scan(text, p - text, 65536, NULL) == NGX_OK, "260000 elements");

    free(text);
}


/*
 * A reply's bytes are counted as they come: where the reads cut the
 * stream changes nothing (found by t/fuzz/fuzz_resp.c: the bound was
 * checked once a read's bytes were taken, after the item they ended had
 * ended the reply and set the count to 0)
 */

/* the scan of text, cut into reads of every size, ends in error, value */

static int
refused(const char *text, ngx_int_t error, size_t value)
{
    size_t  step, len, v;

    len = strlen(text);

    for (step = 1; step <= len; step++) {
        v = value;

        if (scan(text, len, step, &v) != error || v != value) {
            return 0;
        }
    }

    return 1;
}


static void
test_reply_bytes(void)
{
    ngx_http_webhook_resp_limits_t  saved;

    saved = limits;
    limits.reply = 16;

    /* "$10\r\n" (5), 10 bytes, CR LF: 17 bytes, one too many */

    ok(refused("$10\r\n0123456789\r\n", NGX_HTTP_WEBHOOK_RESP_BIG_BYTES, 16),
       "a reply one byte past the bound, in reads of any size");

    ok(passes("$9\r\n012345678\r\n"),
       "a reply of exactly the bound, in reads of any size");

    /* a line past it: the same error however the reads cut it */

    ok(refused("-ERR 0123456789abcdef\r\n", NGX_HTTP_WEBHOOK_RESP_BIG_BYTES,
               16),
       "a line past the bound, in reads of any size");

    limits = saved;
}


static void
test_limits(void)
{
    ngx_http_webhook_resp_limits_t  big;

    ngx_http_webhook_resp_limits(&big, 100000);

    ok(limits.array == 16384 && big.array == 100000,
       "an array: webhook_batch_max, at least 16384");
    ok(big.elements == NGX_HTTP_WEBHOOK_RESP_ELEMENTS
       && big.reply == NGX_HTTP_WEBHOOK_RESP_REPLY,
       "the reply bounds cover a batch of 100000");
}


int
main(void)
{
    ngx_http_webhook_resp_limits(&limits, 10000);

    test_replies();
    test_bounds();
    test_line();
    test_elements();
    test_reply_bytes();
    test_limits();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
