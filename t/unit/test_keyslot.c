
/*
 * Unit tests of Redis Cluster's keyslot (src/ngx_http_webhook_keyslot.c),
 * printing TAP.  The values are Redis's (CLUSTER KEYSLOT) and the CRC16
 * XMODEM check value of "123456789" (0x31C3).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include "core/ngx_http_webhook_keyslot.h"


#include "tap.h"


static ngx_uint_t
slot(const char *key)
{
    return ngx_http_webhook_keyslot((u_char *) key, strlen(key));
}


static int
tag_is(const char *key, const char *expect)
{
    u_char  *tag;
    size_t   len;

    tag = ngx_http_webhook_hash_tag((u_char *) key, strlen(key), &len);

    if (expect == NULL) {
        return tag == NULL;
    }

    return tag && len == strlen(expect) && memcmp(tag, expect, len) == 0;
}


static void
test_slots(void)
{
    ok(slot("123456789") == (0x31C3 & 16383), "CRC16 check value");
    ok(slot("foo") == 12182, "foo");
    ok(slot("bar") == 5061, "bar");
    ok(slot("hello") == 866, "hello");
    ok(slot("") == 0, "the empty key");
    ok(slot("{user1000}.following") == 3443, "a hash tag: user1000's slot");
    ok(slot("{user1000}.followers") == slot("user1000"),
       "keys of one hash tag share its slot");
    ok(slot("{webhook}:queue:high") == slot("{webhook}:seen:x"),
       "a queue's keys share one slot");
    ok(slot("{webhook}:queue:high") == 12785, "{webhook}");
    ok(slot("foo{}{bar}") == 8363, "an empty tag: the whole key");
    ok(slot("foo{{bar}}zap") == slot("{bar"), "the first { and the next }");
    ok(slot("foo{bar}{zap}") == slot("bar"), "the first tag only");
}


static void
test_tags(void)
{
    ok(tag_is("{a}", "a"), "{a}");
    ok(tag_is("x{tenant1}:orders", "tenant1"), "a tag inside");
    ok(tag_is("tenant1", NULL), "no brace: no tag");
    ok(tag_is("x{}y", NULL), "{}: no tag");
    ok(tag_is("x{y", NULL), "no closing brace: no tag");
    ok(tag_is("x}y{", NULL), "a } before the {: no tag");
    ok(tag_is("{{a}}", "{a"), "{{a}}: the tag is {a");
}


int
main(void)
{
    test_slots();
    test_tags();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
