
/*
 * Unit tests of the event parser and envelope builder
 * (src/ngx_http_webhook_event.c), printing TAP.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/ngx_http_webhook_event.h"


#include "tap.h"


/* what ngx_http_webhook_json_check() says of a text it refuses */
typedef ngx_http_webhook_json_error_t  jerr_t;


/* the check, at the default depth */

static ngx_int_t
json_check(u_char *p, size_t len, ngx_str_t *root, jerr_t *error)
{
    return ngx_http_webhook_json_check(p, len, NGX_HTTP_WEBHOOK_JSON_DEPTH,
                                       root, error);
}


static int
str_is(ngx_str_t *s, const char *expect)
{
    return s->len == strlen(expect)
           && memcmp(s->data, expect, s->len) == 0;
}


/*
 * Checks a text and reads it as an event.  The event's strings point
 * into static buffers: read it before the next call.
 */

static ngx_int_t
read_event(const char *json, ngx_uint_t any, ngx_http_webhook_event_t *ev,
    const char **err)
{
    jerr_t     error;
    u_char    *scratch;
    ngx_str_t  root;

    static u_char  text[4096], unescaped[4096];

    if (strlen(json) >= sizeof(text)) {
        abort();
    }

    ngx_memcpy(text, json, strlen(json));

    if (json_check(text, strlen(json), &root, &error)
        != NGX_OK)
    {
        *err = "parse";
        return NGX_ERROR;
    }

    scratch = unescaped;

    return ngx_http_webhook_event_read(&root, any, ev, &scratch, err);
}


/* whether a text is JSON */

static ngx_int_t
checks(const char *json)
{
    jerr_t     error;
    ngx_str_t  root;
    u_char     text[256];

    ngx_memcpy(text, json, strlen(json));

    return json_check(text, strlen(json), &root, &error);
}


/* the kind of payload of a text */

static ngx_int_t
kind(const char *json)
{
    jerr_t     error;
    ngx_str_t  root;
    u_char     text[256];

    ngx_memcpy(text, json, strlen(json));

    if (json_check(text, strlen(json), &root, &error)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_webhook_payload_kind(&root);
}


static void
test_white_space(void)
{
    jerr_t     error;
    ngx_str_t  root, names[2], values[2], elts[4];
    u_char     a[] = "{\"a\":\r\n\t1,\n\"b\":\"x\\\"y\"}";
    u_char     b[] = "{\"a\":\"line\nbreak\"}";
    u_char     c[] = "{\"a\":\"unterminated}";
    u_char     d[] = "{\"a\":\"esc\\\\\",\"b\":2}";
    u_char     e[] = "[1\t,\ntrue\r\n,\"s\"\t,null\n]";

    ok(json_check(a, sizeof(a) - 1, &root, &error) == NGX_OK
       && strcmp((char *) a, "{\"a\":\r\n\t1,\n\"b\":\"x\\\"y\"}") == 0,
       "check keeps CR, LF and TAB between tokens as they are");

    ngx_str_set(&names[0], "a");
    ngx_str_set(&names[1], "b");

    ok(ngx_http_webhook_json_members(&root, names, values, 2) == 2
       && str_is(&values[0], "1") && str_is(&values[1], "\"x\\\"y\""),
       "members are found across CR, LF and TAB");

    ok(json_check(e, sizeof(e) - 1, &root, &error) == NGX_OK
       && ngx_http_webhook_json_elements(&root, elts, 4) == 4
       && str_is(&elts[0], "1") && str_is(&elts[1], "true")
       && str_is(&elts[2], "\"s\"") && str_is(&elts[3], "null"),
       "a number or a literal ends at a TAB, CR or LF");

    ok(json_check(b, sizeof(b) - 1, &root, &error)
       == NGX_ERROR, "check refuses a raw newline inside a string");

    ok(json_check(c, sizeof(c) - 1, &root, &error)
       == NGX_ERROR, "check refuses an unterminated string");

    ok(json_check(d, sizeof(d) - 1, &root, &error)
       == NGX_OK, "check keeps an escaped backslash before a closing quote");
}


static void
test_parse(void)
{
    jerr_t      error;
    ngx_str_t   root;
    u_char      a[] = "{\"a\": 1}\r\n  ";
    u_char      b[] = "{\"a\": 1} {\"b\": 2}";
    u_char      c[] = "{\"a\":\x14 1}";
    u_char      d[] = "{\"a\": 1}\0";
    u_char      e[] = "{\"a\": tru}";

    ok(json_check(a, sizeof(a) - 1, &root, &error) == NGX_OK
       && str_is(&root, "{\"a\": 1}"),
       "check takes trailing white space and gives the value's span");

    ok(json_check(b, sizeof(b) - 1, &root, &error)
       == NGX_ERROR && error.offset == 9,
       "check refuses a second value after the first");

    ok(json_check(c, sizeof(c) - 1, &root, &error)
       == NGX_ERROR, "check refuses a control character as white space");

    ok(json_check(d, sizeof(d) - 1, &root, &error)
       == NGX_ERROR, "check refuses a NUL after the value");

    ok(json_check(e, sizeof(e) - 1, &root, &error)
       == NGX_ERROR && error.offset == 6,
       "check refuses malformed JSON with the offset of the error");
}


/* strict RFC 8259, and what cJSON refuses too */

static void
test_strict(void)
{
    ngx_uint_t  i;

    static const char  *good[] = {
        "0", "-0", "1.5e+10", "-12.25E-3", "\"\\u00e9\\ud83d\\ude00\"",
        "[true, false, null]", "{\"\": {}}", "\"\\/\\b\\f\\n\\r\\t\"",
        "1e400", "\"\\u0000\"", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        NULL
    };

    static const char  *bad[] = {
        "01", "1.", ".5", "-", "+1", "1e", "1e+", "-.5", "0x10", "NaN",
        "\"\\x\"", "\"\\u12\"", "\"\\uZZZZ\"", "\"\\ud800\"",
        "\"\\udc00\"", "\"\\ud800\\u0041\"", "[1,]", "{\"a\" 1}",
        "{\"a\": 1,}", "{1: 2}", "[", "\"abc", "tru", "nul", "", "  ",
        "\"\xff\xfe raw bytes\"", NULL
    };

    for (i = 0; good[i]; i++) {
        ok(checks(good[i]) == NGX_OK, good[i]);
    }

    for (i = 0; bad[i]; i++) {
        ok(checks(bad[i]) == NGX_ERROR, bad[i]);
    }

}


/* the depth of a cJSON tree, in levels of objects and arrays */

static ngx_uint_t
cjson_depth(cJSON *item)
{
    ngx_uint_t  d, max;

    if (!cJSON_IsObject(item) && !cJSON_IsArray(item)) {
        return 0;
    }

    max = 0;

    for (item = item->child; item; item = item->next) {
        d = cjson_depth(item);
        max = ngx_max(max, d);
    }

    return max + 1;
}


/*
 * k levels, objects and arrays in turn, each with a sibling container
 * on the way: {"x":[0],"a":[1,[],{"x":[0],"a":...1...]}
 */

static size_t
nested(u_char *text, ngx_uint_t k)
{
    u_char      *p;
    ngx_uint_t   i;

    p = text;

    for (i = 0; i < k; i++) {
        p = (i % 2) ? ngx_cpymem(p, "[1,[],", 6)
                    : ngx_cpymem(p, "{\"x\":[0],\"a\":", 13);
    }

    *p++ = '1';

    while (i--) {
        *p++ = (i % 2) ? ']' : '}';
    }

    return p - text;
}


/*
 * Nesting: a text is taken when it is at most "depth" levels deep, the
 * outermost counting one, as cJSON counts them; else refused for its
 * depth at the bracket that opens one level too many.  The limit is at
 * most cJSON's own, 1000.
 */

static void
test_depth(void)
{
    u_char      *text;
    cJSON       *tree;
    jerr_t       error;
    size_t       len, i, at;
    ngx_int_t    rc;
    ngx_str_t    root;
    ngx_uint_t   k, d, level, limit, differ, cjson;

    text = malloc(13 * (NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH + 2));
    if (text == NULL) {
        abort();
    }

    differ = 0;
    cjson = 0;

    for (k = 1; k <= NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH; k++) {
        len = nested(text, k);

        /* its depth, counted bracket by bracket */

        d = 0;
        level = 0;

        for (i = 0; i < len; i++) {
            if (text[i] == '[' || text[i] == '{') {
                level++;
                d = ngx_max(d, level);

            } else if (text[i] == ']' || text[i] == '}') {
                level--;
            }
        }

        if (d <= NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH) {
            tree = cJSON_ParseWithLength((char *) text, len);
            cjson += (tree == NULL || cjson_depth(tree) != d);
            cJSON_Delete(tree);
        }

        for (limit = d - 1; limit <= d + 1; limit++) {

            /* where a level past the limit opens first */

            at = 0;
            level = 0;

            for (i = 0; i < len; i++) {
                if (text[i] == '[' || text[i] == '{') {
                    if (++level > limit) {
                        at = i;
                        break;
                    }

                } else if (text[i] == ']' || text[i] == '}') {
                    level--;
                }
            }

            rc = ngx_http_webhook_json_check(text, len, limit, &root,
                                             &error);

            if (d <= ngx_min(limit, NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH)
                ? rc != NGX_OK
                : rc == NGX_OK || error.reason != NGX_HTTP_WEBHOOK_JSON_DEEP
                  || (limit <= NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH
                      && error.offset != at))
            {
                differ++;
            }
        }
    }

    free(text);

    ok(differ == 0, "1 to 1000 levels, limits around each: taken within "
       "the limit, refused past it at the bracket of one level too many");
    ok(cjson == 0, "the levels are cJSON's");

    ok(checks("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
              "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")
       == NGX_OK, "63 levels are taken by default");
    ok(checks("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
              "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")
       == NGX_ERROR, "64 are not");
}


/*
 * Whether bytes are UTF-8 as RFC 3629 has it, by decoding each character
 * and checking its code point: the shortest form, no UTF-16 surrogate,
 * nothing past U+10FFFF.  Written apart from the scanner's byte ranges,
 * to check them.
 */

static ngx_uint_t
utf8_ref(u_char *p, size_t len)
{
    size_t    n, i;
    uint32_t  cp, min;

    while (len) {
        if (p[0] < 0x80) {
            n = 1;
            cp = p[0];
            min = 0;

        } else if ((p[0] & 0xe0) == 0xc0) {
            n = 2;
            cp = p[0] & 0x1f;
            min = 0x80;

        } else if ((p[0] & 0xf0) == 0xe0) {
            n = 3;
            cp = p[0] & 0x0f;
            min = 0x800;

        } else if ((p[0] & 0xf8) == 0xf0) {
            n = 4;
            cp = p[0] & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (n > len) {
            return 0;
        }

        for (i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }

        p += n;
        len -= n;
    }

    return 1;
}


/* the scanner's verdict on a string of these bytes, and cJSON's reading */

static ngx_uint_t  utf8_differ, utf8_cjson, utf8_taken, utf8_refused;

static void
utf8_one(u_char *bytes, size_t n)
{
    cJSON      *str;
    jerr_t      error;
    ngx_int_t   rc;
    ngx_str_t   root;
    u_char      text[8];

    text[0] = '"';
    ngx_memcpy(text + 1, bytes, n);
    text[n + 1] = '"';

    rc = json_check(text, n + 2, &root, &error);

    if ((rc == NGX_OK) != utf8_ref(bytes, n)
        || (rc != NGX_OK && error.reason != NGX_HTTP_WEBHOOK_JSON_UTF8))
    {
        utf8_differ++;
        return;
    }

    if (rc != NGX_OK) {
        utf8_refused++;
        return;
    }

    utf8_taken++;

    /* cJSON does not check UTF-8, but reads back what is taken as sent */

    str = cJSON_ParseWithLength((char *) text, n + 2);

    if (!cJSON_IsString(str) || strlen(str->valuestring) != n
        || ngx_memcmp(str->valuestring, bytes, n) != 0)
    {
        utf8_cjson++;
    }

    cJSON_Delete(str);
}


static void
test_utf8(void)
{
    jerr_t       error;
    ngx_str_t    root;
    ngx_uint_t   a, b, c, d, i, j;
    u_char       s[4];

    /* the bytes tried after a lead: around and in the continuation range */
    static u_char  tail[] = { 0x20, 0x41, 0x7f, 0x80, 0x81, 0x8f, 0x90,
                              0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xf4, 0xff };

    utf8_differ = 0;
    utf8_cjson = 0;
    utf8_taken = 0;
    utf8_refused = 0;

    /* every byte alone, every lead with every second byte */

    for (a = 0x80; a < 0x100; a++) {
        s[0] = (u_char) a;
        utf8_one(s, 1);

        for (b = 0x20; b < 0x100; b++) {
            if (b == '"' || b == '\\') {
                continue;
            }

            s[1] = (u_char) b;
            utf8_one(s, 2);

            for (i = 0; a >= 0xe0 && i < sizeof(tail); i++) {
                s[2] = tail[i];
                utf8_one(s, 3);

                for (j = 0; a >= 0xf0 && j < sizeof(tail); j++) {
                    s[3] = tail[j];
                    utf8_one(s, 4);
                }
            }
        }
    }

    /* every three-byte form in full: the surrogates' neighbourhood */

    for (b = 0x80; b < 0xc0; b++) {
        for (c = 0x80; c < 0xc0; c++) {
            for (d = 0xe0; d < 0xf0; d++) {
                s[0] = (u_char) d;
                s[1] = (u_char) b;
                s[2] = (u_char) c;
                utf8_one(s, 3);
            }
        }
    }

    ok(utf8_differ == 0, "the scanner takes exactly the UTF-8 of RFC 3629");
    ok(utf8_cjson == 0, "what it takes, cJSON reads back byte for byte");
    ok(utf8_taken > 60000 && utf8_refused > 100000,
       "both verdicts were tried many times");

    ok(checks("{\"\\u00e9\": \"\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf "
              "\xee\x80\x80 \xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf\"}")
       == NGX_OK, "the first and last characters of each length are taken");

    ok(json_check((u_char *) "{\"a\": \"x\xc0\x80\"}", 13,
                  &root, &error) == NGX_ERROR
       && error.reason == NGX_HTTP_WEBHOOK_JSON_UTF8 && error.offset == 8,
       "an overlong NUL is refused as UTF-8, at its first byte");

    ok(json_check((u_char *) "{\"k\xed\xa0\x80\": 1}", 11,
                  &root, &error) == NGX_ERROR
       && error.reason == NGX_HTTP_WEBHOOK_JSON_UTF8 && error.offset == 3,
       "a UTF-16 surrogate in a key is refused");

    ok(json_check((u_char *) "[\"\xf4\x90\x80\x80\"]", 8,
                  &root, &error) == NGX_ERROR
       && error.reason == NGX_HTTP_WEBHOOK_JSON_UTF8 && error.offset == 2,
       "a code point past U+10FFFF is refused");

    ok(json_check((u_char *) "[\"\xe2\x82\"]", 6,
                  &root, &error) == NGX_ERROR
       && error.reason == NGX_HTTP_WEBHOOK_JSON_UTF8,
       "a sequence cut by the closing quote is refused");

    ok(json_check((u_char *) "[\xc3\xa9]", 4,
                  &root, &error) == NGX_ERROR
       && error.reason == NGX_HTTP_WEBHOOK_JSON_SYNTAX,
       "UTF-8 outside a string is no JSON");

    ok(json_check((u_char *) "[tru]", 5,
                  &root, &error) == NGX_ERROR
       && error.reason == NGX_HTTP_WEBHOOK_JSON_SYNTAX && error.offset == 1,
       "a syntax error says so");
}


static void
test_elements(void)
{
    jerr_t       error;
    ngx_str_t    root, events, elts[5], name, names[3], values[3];
    ngx_int_t    n;

    static char batch[] =
        "{\"batch\": true, \"x\": {\"events\": [9]}, \"events\": "
        "[ {\"a\": \"]\", \"b\": [1, {\"c\": \"}\"}]} , 2,\"s\\\"]\", "
        "[[]], null ], \"after\": 1, \"events\": 0}";
    static char empty[] = "[ ]";
    static char keys[] = "{\"mod\\u0065l\": 1, \"model\": 2, "
                         "\"event\\u0000x\": 3, \"id\": 4}";

    ngx_str_set(&name, "events");

    ok(json_check((u_char *) batch, sizeof(batch) - 1,
                  &root, &error) == NGX_OK,
       "a batch text checks");

    ok(ngx_http_webhook_json_members(&root, &name, &events, 1) == 1
       && events.data[0] == '[',
       "members finds the first top-level \"events\", not a nested one");

    n = ngx_http_webhook_json_elements(&events, elts, 5);

    ok(n == 5, "elements finds the five elements of the array");
    ok(ngx_http_webhook_json_elements(&events, NULL, 0) == 5,
       "and counts them");

    if (n == 5) {
        ok(str_is(&elts[0], "{\"a\": \"]\", \"b\": [1, {\"c\": \"}\"}]}"),
           "an element holding brackets inside strings is exact");
        ok(str_is(&elts[1], "2"), "a number element is exact");
        ok(str_is(&elts[2], "\"s\\\"]\""), "a string element is exact");
        ok(str_is(&elts[3], "[[]]"), "a nested array element is exact");
        ok(str_is(&elts[4], "null"), "the last element is exact");
    }

    ok(ngx_http_webhook_json_elements(&events, elts, 4) == NGX_ERROR,
       "elements refuses more elements than allowed");

    root.data = (u_char *) empty;
    root.len = sizeof(empty) - 1;
    ok(ngx_http_webhook_json_elements(&root, elts, 4) == 0,
       "an empty array has no elements");

    ok(json_check((u_char *) keys, sizeof(keys) - 1,
                  &root, &error) == NGX_OK,
       "escaped keys check");

    ngx_str_set(&names[0], "model");
    ngx_str_set(&names[1], "event");
    ngx_str_set(&names[2], "missing");

    ok(ngx_http_webhook_json_members(&root, names, values, 3) == 1
       && str_is(&values[0], "1") && values[1].len == 0
       && values[2].len == 0,
       "keys match unescaped, the first one wins, \"event\\u0000x\" is "
       "not \"event\"");
}


static void
test_event_shape(void)
{
    const char                *err;
    ngx_http_webhook_event_t   ev;

    ok(read_event("{\"event_id\": 48213, \"model\": \"sale.order\", "
                  "\"record_id\": 1842, \"event\": \"write\", "
                  "\"priority\": \"high\"}", 0, &ev, &err) == NGX_OK
       && str_is(&ev.model, "sale.order") && str_is(&ev.event, "write")
       && str_is(&ev.record_id, "1842") && str_is(&ev.event_id, "48213")
       && str_is(&ev.id_key, "48213") && ev.priority == 0,
       "the event shape is read from the top level");

    ok(read_event("{\"id\": 77, \"priority\": \"1\", \"model\": \"x\", "
                  "\"event_id\": \"not-this\", "
                  "\"_webhook_metadata\": {\"event_id\": 48214, "
                  "\"event_type\": \"create\", \"model\": \"res.partner\", "
                  "\"record_id\": 77}}", 0, &ev, &err) == NGX_OK
       && str_is(&ev.model, "res.partner") && str_is(&ev.event, "create")
       && str_is(&ev.id_key, "48214") && ev.priority == -1,
       "the instant shape reads _webhook_metadata alone");

    ok(read_event("{\"_webhook_metadata\": {\"event_type\": \"create\", "
                  "\"model\": \"res.partner\", \"record_id\": 77, "
                  "\"priority\": \"low\"}}", 0, &ev, &err) == NGX_OK
       && ev.priority == 2 && ev.id_key.len == 0,
       "the instant shape takes its priority from _webhook_metadata");

    ok(read_event("{\"model\": \"a\", \"record_id\": 1.5, \"event\": \"w\"}",
                  0, &ev, &err) == NGX_ERROR
       && strstr(err, "record_id"),
       "a fractional record_id is refused, naming the field");

    ok(read_event("{\"model\": \"a\", \"record_id\": \"7\", \"event\": \"w\"}",
                  0, &ev, &err) == NGX_ERROR,
       "a string record_id is refused");

    ok(read_event("{\"record_id\": 7, \"event\": \"w\"}",
                  0, &ev, &err) == NGX_ERROR
       && strstr(err, "model"),
       "a missing model is refused, naming the field");

    ok(read_event("{\"model\": \"\", \"record_id\": 7, \"event\": \"w\"}",
                  0, &ev, &err) == NGX_ERROR,
       "an empty model is refused");

    ok(read_event("{\"model\": \"a\", \"record_id\": 7, \"event\": \"w\", "
                  "\"priority\": \"urgent\"}", 0, &ev, &err)
       == NGX_DECLINED && strstr(err, "priority"),
       "an unknown priority is refused");

    ok(read_event("{\"model\": \"a\", \"record_id\": -7, \"event\": \"w\", "
                  "\"event_id\": \"abc-1\"}", 0, &ev, &err) == NGX_OK
       && str_is(&ev.record_id, "-7") && str_is(&ev.id_key, "abc-1")
       && ev.event_id.data == NULL,
       "a string event_id and a negative record_id are accepted");

    /* a \u0000 would cut the value short: the dedupe key, the envelope */

    ok(read_event("{\"model\": \"a\", \"record_id\": 1, \"event\": \"w\", "
                  "\"event_id\": \"x\\u0000y\"}", 0, &ev, &err) == NGX_ERROR
       && strstr(err, "event_id"),
       "a \\u0000 in a string event_id is refused");

    ok(read_event("{\"model\": \"a\\u0000b\", \"record_id\": 1, "
                  "\"event\": \"w\"}", 0, &ev, &err) == NGX_ERROR
       && strstr(err, "model"),
       "a \\u0000 in the model is refused");

    ok(read_event("{\"model\": \"a\", \"record_id\": 1, \"event\": \"w\", "
                  "\"priority\": \"high\\u0000\"}", 0, &ev, &err)
       == NGX_DECLINED,
       "a \\u0000 in the priority is refused");

    ok(read_event("{\"model\": \"a\\\\u0000\", \"record_id\": 1, "
                  "\"event\": \"w\", \"data\": \"\\u0000\"}", 0, &ev, &err)
       == NGX_OK && str_is(&ev.model, "a\\u0000"),
       "an escaped backslash before u0000 is no NUL, nor one in the payload");

    ok(read_event("{\"model\\u0000\": \"evil\", \"model\": \"a\", "
                  "\"record_id\": 1, \"event\": \"w\"}", 0, &ev, &err)
       == NGX_OK && str_is(&ev.model, "a"),
       "a key \"model\\u0000\" is not \"model\"");

    ok(read_event("{\"model\": \"a\", \"record_id\": 9007199254740993, "
                  "\"event\": \"w\"}", 0, &ev, &err) == NGX_ERROR,
       "a record_id past 2^53 is refused");

    ok(read_event("{\"anything\": [1, 2]}", 1, &ev, &err) == NGX_OK
       && ev.model.len == 0 && ev.record_id.len == 0,
       "schema any accepts any object");

    ok(read_event("[1]", 1, &ev, &err) == NGX_ERROR,
       "schema any still wants an object");
}


static void
test_kind(void)
{
    ok(kind("{\"batch\": true, \"events\": []}") == NGX_HTTP_WEBHOOK_BATCH,
       "a batch is recognized");

    ok(kind("{\"test\": true, \"message\": \"hi\"}") == NGX_HTTP_WEBHOOK_TEST,
       "a connection test is recognized");

    ok(kind("{\"test\": true, \"model\": \"x.y\"}")
       == NGX_HTTP_WEBHOOK_SINGLE,
       "a record with a field named test is an event");

    ok(kind("{\"batch\": true, \"_webhook_metadata\": {\"event_id\": 1}}")
       == NGX_HTTP_WEBHOOK_SINGLE,
       "an instant record with a field named batch is an event");
}


static void
test_envelope(void)
{
    u_char                    *buf, *last;
    size_t                     len;
    cJSON                     *env, *item;
    ngx_str_t                  id, at, prio;
    const char                *err;
    ngx_http_webhook_event_t   ev;

    static char body[] = "{\"model\": \"we\\\"ird\\n\", \"record_id\": 3, "
                         "\"event\": \"write\", \"event_id\": \"k\\\\1\"}";

    read_event(body, 0, &ev, &err);

    ev.payload.data = (u_char *) body;
    ev.payload.len = sizeof(body) - 1;

    id.data = (u_char *) "abc";
    id.len = 3;
    at.data = (u_char *) "2026-11-27T09:14:03.412Z";
    at.len = NGX_HTTP_WEBHOOK_TIME_LEN;
    prio.data = (u_char *) "low";
    prio.len = 3;

    len = ngx_http_webhook_envelope_len(&ev, &id, &at, &prio);
    buf = malloc(len);
    last = ngx_http_webhook_envelope_write(buf, &ev, &id, &at, &prio);

    ok((size_t) (last - buf) == len, "the envelope length is exact");
    ok(memchr(buf, '\n', len) == NULL, "the envelope is one line");

    env = cJSON_ParseWithLength((char *) buf, len);
    ok(env != NULL, "the envelope is valid JSON");

    item = cJSON_GetObjectItem(env, "model");
    ok(item && strcmp(item->valuestring, "we\"ird\n") == 0,
       "the model is escaped and reads back");

    item = cJSON_GetObjectItem(env, "event_id");
    ok(item && cJSON_IsString(item) && strcmp(item->valuestring, "k\\1") == 0,
       "a string event_id reads back");

    item = cJSON_GetObjectItem(env, "record_id");
    ok(item && item->valuedouble == 3, "record_id reads back as a number");

    item = cJSON_GetObjectItem(env, "payload");
    ok(item && cJSON_IsObject(item), "payload is the object as received");

    item = cJSON_GetObjectItem(env, "received_at");
    ok(item && strcmp(item->valuestring, "2026-11-27T09:14:03.412Z") == 0,
       "received_at is kept");

    cJSON_Delete(env);
    free(buf);

    read_event("{\"x\": 1}", 1, &ev, &err);
    ev.payload.data = (u_char *) "{\"x\": 1}";
    ev.payload.len = 8;

    len = ngx_http_webhook_envelope_len(&ev, &id, &at, &prio);
    buf = malloc(len);
    last = ngx_http_webhook_envelope_write(buf, &ev, &id, &at, &prio);

    ok((size_t) (last - buf) == len
       && strncmp((char *) buf, "{\"id\":\"abc\",\"received_at\":"
                  "\"2026-11-27T09:14:03.412Z\",\"priority\":\"low\","
                  "\"event_id\":null,\"model\":null,\"record_id\":null,"
                  "\"event\":null,\"sender\":null,\"payload\":{\"x\": 1}}",
                  len) == 0,
       "an event without fields gets nulls");

    free(buf);

    /* schema any: wrong types are taken as absent and named */

    ok(read_event("{\"event_id\": [1], \"model\": 5, \"record_id\": \"x\", "
                  "\"event\": true, \"priority\": \"urgent\"}", 1, &ev, &err)
       == NGX_OK
       && ev.warnings == (NGX_HTTP_WEBHOOK_W_EVENT_ID
                          | NGX_HTTP_WEBHOOK_W_PRIORITY
                          | NGX_HTTP_WEBHOOK_W_MODEL
                          | NGX_HTTP_WEBHOOK_W_RECORD_ID
                          | NGX_HTTP_WEBHOOK_W_EVENT)
       && ev.priority == -1 && ev.id_key.len == 0 && ev.model.len == 0,
       "schema any: fields of the wrong type are absent, with warnings");

    ok(read_event("{\"priority\": \"urgent\"}", 0, &ev, &err)
       == NGX_DECLINED,
       "schema event: an unknown priority is still refused");

    ev.payload.data = (u_char *) "{}";
    ev.payload.len = 2;
    ev.warnings = NGX_HTTP_WEBHOOK_W_MODEL | NGX_HTTP_WEBHOOK_W_EVENT;
    ev.sender.data = (u_char *) "odoo-prod";
    ev.sender.len = 9;

    len = ngx_http_webhook_envelope_len(&ev, &id, &at, &prio);
    buf = malloc(len);
    last = ngx_http_webhook_envelope_write(buf, &ev, &id, &at, &prio);

    ok((size_t) (last - buf) == len
       && strstr((char *) buf, ",\"sender\":\"odoo-prod\","
                 "\"warnings\":[\"model\",\"event\"],\"payload\":{}}") != NULL,
       "the envelope names the sender and the fields taken as absent");

    free(buf);

    ok(read_event("{\"model\": \"a.b\", \"record_id\": 7, \"event\": \"create\", "
                  "\"data\": {\"_test_event\": true}}", 0, &ev, &err) == NGX_OK
       && ev.test, "data._test_event marks a test event");

    ok(read_event("{\"model\": \"a.b\", \"record_id\": -1, \"event\": \"create\"}",
                  0, &ev, &err) == NGX_OK && ev.test,
       "record_id -1 marks a test event");

    ok(read_event("{\"_webhook_metadata\": {\"model\": \"a.b\", \"record_id\": 3,"
                  " \"event_type\": \"write\"}, \"record_id\": -1}", 0, &ev, &err)
       == NGX_OK && !ev.test && ev.instant,
       "an instant record's own record_id is not the event's");
}


/*
 * The escaper takes any bytes: cJSON reads back the bytes, each byte that
 * starts no UTF-8 character as U+FFFD; the cut leaves no character in
 * halves.
 */

static void
test_escape(void)
{
    u_char      *buf, *last;
    cJSON       *str;
    size_t       len, max, cut, fails;

    static u_char  bytes[] = "a\"\\\x01" "\xc3\xa9" "\xe2\x82\xac"
                             "\xf0\x9f\x98\x80" "\xff" "\xc0\x80"
                             "\xed\xa0\x80" "\xe2\x82" "z";
    static char    read[] = "a\"\\\x01" "\xc3\xa9" "\xe2\x82\xac"
                            "\xf0\x9f\x98\x80"
                            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                            "\xef\xbf\xbd\xef\xbf\xbd" "z";

    /* "ab", then characters of 2, 3 and 4 bytes, a stray byte, "c" */
    static u_char  text[] = "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff" "c";
    static size_t  cuts[] = { 0, 1, 2, 2, 4, 4, 4, 7, 7, 7, 7, 11, 12, 13 };

    len = ngx_http_webhook_json_escape_len(bytes, sizeof(bytes) - 1);
    buf = malloc(len + 2);
    if (buf == NULL) {
        abort();
    }

    buf[0] = '"';
    last = ngx_http_webhook_json_escape(buf + 1, bytes, sizeof(bytes) - 1);
    *last++ = '"';

    ok((size_t) (last - buf) == len + 2, "the escaped length is exact");

    str = cJSON_ParseWithLength((char *) buf, last - buf);
    ok(cJSON_IsString(str) && strcmp(str->valuestring, read) == 0,
       "escaped bytes read back, a byte of no UTF-8 character as U+FFFD");

    cJSON_Delete(str);
    free(buf);

    fails = 0;

    for (max = 0; max <= sizeof(text) - 1; max++) {
        cut = ngx_http_webhook_utf8_cut(text, sizeof(text) - 1, max);
        fails += (cut != cuts[max]);
    }

    ok(fails == 0, "a cut inside a character of 2, 3 or 4 bytes comes "
       "before it, elsewhere at the byte asked");
}


static void
test_time(void)
{
    u_char  buf[NGX_HTTP_WEBHOOK_TIME_LEN + 1];

    buf[NGX_HTTP_WEBHOOK_TIME_LEN] = '\0';

    ngx_http_webhook_time(buf, 0, 0);
    ok(strcmp((char *) buf, "1970-01-01T00:00:00.000Z") == 0, "the epoch");

    ngx_http_webhook_time(buf, 1795770843, 412);
    ok(strcmp((char *) buf, "2026-11-27T09:14:03.412Z") == 0,
       "a day of 2026");

    ngx_http_webhook_time(buf, 1709209799, 999);
    ok(strcmp((char *) buf, "2024-02-29T12:29:59.999Z") == 0,
       "a leap day");

    ok(ngx_http_webhook_time_parse(buf, NGX_HTTP_WEBHOOK_TIME_LEN)
       == 1709209799999LL, "parse reads back what was written");

    ok(ngx_http_webhook_time_parse((u_char *) "2024-02-29T12:29:59.999",
                                   23) == -1,
       "parse refuses a time without Z");

    ok(ngx_http_webhook_time_parse((u_char *) "2024-13-29T12:29:59.999Z",
                                   NGX_HTTP_WEBHOOK_TIME_LEN) == -1,
       "parse refuses month 13");
}


int
main(void)
{
    test_white_space();
    test_parse();
    test_strict();
    test_depth();
    test_utf8();
    test_elements();
    test_event_shape();
    test_kind();
    test_envelope();
    test_escape();
    test_time();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
