
/*
 * Unit tests of the error log's escaping (src/ngx_http_webhook_escape.c),
 * printing TAP.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include "core/ngx_http_webhook_text.h"


#include "tap.h"


static int
is(const char *src, size_t len, size_t size, const char *expect)
{
    u_char     buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t  text;

    if (size > sizeof(buf)) {
        return 0;
    }

    if (ngx_http_webhook_log_text(&text, buf, size, src, len) != &text) {
        return 0;
    }

    if (text.len != strlen(expect) || text.len > size
        || memcmp(text.data, expect, text.len) != 0)
    {
        printf("# got \"%.*s\", expected \"%s\"\n", (int) text.len,
               text.data, expect);
        return 0;
    }

    return 1;
}


#define IS(src, size, expect, name)                                          \
    ok(is(src, sizeof(src) - 1, size, expect), name)


int
main(void)
{
    IS("OOM command not allowed", 512, "OOM command not allowed",
       "printable ASCII as it is");
    IS("ERR x\n2026/01/01 00:00:00 [emerg] forged", 512,
       "ERR x\\x0A2026/01/01 00:00:00 [emerg] forged",
       "a newline: no line of its own");
    IS("a\r\tb\x1b[2Jc", 512, "a\\x0D\\x09b\\x1B[2Jc",
       "CR, TAB and a terminal's escape");
    IS("\"q\" \\", 512, "\\x22q\\x22 \\x5C", "quotes and backslashes");
    IS("caf\xc3\xa9 \x7f\xff", 512, "caf\\xC3\\xA9 \\x7F\\xFF",
       "non-ASCII and DEL");
    IS("", 512, "", "empty");
    IS("abcdefghij", 10, "abcdefghij", "a value that fits exactly");
    IS("abcdefghijk", 10, "abcdefg...", "a value cut, with ...");
    IS("abcd\nefgh", 10, "abcd...", "an escape is never cut in two");
    IS("\n", 4, "\\x0A", "one escape that fits exactly");
    IS("\n\n", 4, "...", "one escape too many for the room");
    IS("abcd", 2, "..", "room for less than ...");

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
