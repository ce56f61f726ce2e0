
/*
 * Unit tests of the event parser and envelope builder
 * (src/ngx_http_webhook_event.c), printing TAP.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include "ngx_http_webhook_event.h"


static int  tests, failed;


#define ok(cond, name)                                                       \
    do {                                                                     \
        tests++;                                                             \
        if (cond) {                                                          \
            printf("ok %d - %s\n", tests, name);                             \
        } else {                                                             \
            failed++;                                                        \
            printf("not ok %d - %s (line %d)\n", tests, name, __LINE__);     \
        }                                                                    \
    } while (0)


static int
str_is(ngx_str_t *s, const char *expect)
{
    return s->len == strlen(expect)
           && memcmp(s->data, expect, s->len) == 0;
}


static ngx_int_t
read_event(const char *json, ngx_uint_t any, ngx_http_webhook_event_t *ev,
    const char **err, cJSON **root)
{
    *root = cJSON_Parse(json);
    if (*root == NULL) {
        *err = "parse";
        return NGX_ERROR;
    }

    return ngx_http_webhook_event_read(*root, any, ev, err);
}


static void
test_flatten(void)
{
    u_char  a[] = "{\"a\":\r\n\t1,\n\"b\":\"x\\\"y\"}";
    u_char  b[] = "{\"a\":\"line\nbreak\"}";
    u_char  c[] = "{\"a\":\"unterminated}";
    u_char  d[] = "{\"a\":\"esc\\\\\",\"b\":2}";

    ok(ngx_http_webhook_json_flatten(a, sizeof(a) - 1) == NGX_OK
       && strcmp((char *) a, "{\"a\":   1, \"b\":\"x\\\"y\"}") == 0,
       "flatten turns CR, LF and TAB outside strings into spaces");

    ok(ngx_http_webhook_json_flatten(b, sizeof(b) - 1) == NGX_ERROR,
       "flatten refuses a raw newline inside a string");

    ok(ngx_http_webhook_json_flatten(c, sizeof(c) - 1) == NGX_ERROR,
       "flatten refuses an unterminated string");

    ok(ngx_http_webhook_json_flatten(d, sizeof(d) - 1) == NGX_OK,
       "flatten keeps an escaped backslash before a closing quote");
}


static void
test_parse(void)
{
    cJSON   *root;
    size_t   error;
    u_char   a[] = "{\"a\": 1}\r\n  ";
    u_char   b[] = "{\"a\": 1} {\"b\": 2}";
    u_char   c[] = "{\"a\":\x14 1}";
    u_char   d[] = "{\"a\": 1}\0";
    u_char   e[] = "{\"a\": tru}";

    root = ngx_http_webhook_json_parse(a, sizeof(a) - 1, &error);
    ok(root != NULL, "parse takes trailing white space");
    ngx_http_webhook_json_free(root);

    ok(ngx_http_webhook_json_parse(b, sizeof(b) - 1, &error) == NULL
       && error == 9, "parse refuses a second value after the first");

    ok(ngx_http_webhook_json_parse(c, sizeof(c) - 1, &error) == NULL,
       "parse refuses a control character as white space");

    ok(ngx_http_webhook_json_parse(d, sizeof(d) - 1, &error) == NULL,
       "parse refuses a NUL after the value");

    ok(ngx_http_webhook_json_parse(e, sizeof(e) - 1, &error) == NULL
       && error > 0, "parse refuses malformed JSON with an offset");
}


/* a tree larger than the arena spills to malloc() and is freed whole */

static void
test_parse_spill(void)
{
    u_char      *big, *p;
    cJSON       *root;
    size_t       error, n;
    ngx_uint_t   i, count;

    n = NGX_HTTP_WEBHOOK_ARENA_SIZE / 8;
    big = malloc(2 * n + 16);
    if (big == NULL) {
        abort();
    }

    p = big;
    *p++ = '[';

    for (i = 0; i < n; i++) {
        *p++ = i ? ',' : ' ';
        *p++ = '7';
    }

    *p++ = ']';

    root = ngx_http_webhook_json_parse(big, p - big, &error);

    count = 0;
    if (root) {
        count = cJSON_GetArraySize(root);
    }

    ok(count == n, "an array bigger than the arena parses whole");

    ngx_http_webhook_json_free(root);

    /* a broken text past the arena: the partial tree is freed too */

    p[-1] = ',';
    ok(ngx_http_webhook_json_parse(big, p - big, &error) == NULL,
       "a broken text past the arena is refused");

    root = ngx_http_webhook_json_parse((u_char *) "{\"a\": [1]}", 10,
                                       &error);
    ok(cJSON_IsArray(cJSON_GetObjectItem(root, "a")),
       "the arena serves the next parse");
    ngx_http_webhook_json_free(root);

    free(big);
}


static void
test_elements(void)
{
    ngx_str_t   body, elts[5];
    ngx_int_t   n;

    static char batch[] =
        "{\"batch\": true, \"x\": {\"events\": [9]}, \"events\": "
        "[ {\"a\": \"]\", \"b\": [1, {\"c\": \"}\"}]} , 2,\"s\\\"]\", "
        "[[]], null ], \"after\": 1}";
    static char empty[] = "{\"events\": []}";
    static char none[] = "{\"event\": [1]}";
    static char notarr[] = "{\"events\": {\"a\": 1}}";

    body.data = (u_char *) batch;
    body.len = sizeof(batch) - 1;

    n = ngx_http_webhook_json_elements(&body, "events", elts, 5);

    ok(n == 5, "elements finds the five elements of the top-level array");

    if (n == 5) {
        ok(str_is(&elts[0], "{\"a\": \"]\", \"b\": [1, {\"c\": \"}\"}]}"),
           "an element holding brackets inside strings is exact");
        ok(str_is(&elts[1], "2"), "a number element is exact");
        ok(str_is(&elts[2], "\"s\\\"]\""), "a string element is exact");
        ok(str_is(&elts[3], "[[]]"), "a nested array element is exact");
    }

    ok(ngx_http_webhook_json_elements(&body, "events", elts, 4) == NGX_ERROR,
       "elements refuses more elements than allowed");

    body.data = (u_char *) empty;
    body.len = sizeof(empty) - 1;
    ok(ngx_http_webhook_json_elements(&body, "events", elts, 4) == 0,
       "an empty array has no elements");

    body.data = (u_char *) none;
    body.len = sizeof(none) - 1;
    ok(ngx_http_webhook_json_elements(&body, "events", elts, 4) == NGX_ERROR,
       "a missing member is an error");

    body.data = (u_char *) notarr;
    body.len = sizeof(notarr) - 1;
    ok(ngx_http_webhook_json_elements(&body, "events", elts, 4) == NGX_ERROR,
       "a member that is not an array is an error");
}


static void
test_event_shape(void)
{
    cJSON                     *root;
    const char                *err;
    ngx_http_webhook_event_t   ev;

    ok(read_event("{\"event_id\": 48213, \"model\": \"sale.order\", "
                  "\"record_id\": 1842, \"event\": \"write\", "
                  "\"priority\": \"high\"}", 0, &ev, &err, &root) == NGX_OK
       && str_is(&ev.model, "sale.order") && str_is(&ev.event, "write")
       && str_is(&ev.record_id, "1842") && str_is(&ev.event_id, "48213")
       && str_is(&ev.id_key, "48213") && ev.priority == 0,
       "the event shape is read from the top level");
    cJSON_Delete(root);

    ok(read_event("{\"id\": 77, \"priority\": \"1\", \"model\": \"x\", "
                  "\"event_id\": \"not-this\", "
                  "\"_webhook_metadata\": {\"event_id\": 48214, "
                  "\"event_type\": \"create\", \"model\": \"res.partner\", "
                  "\"record_id\": 77}}", 0, &ev, &err, &root) == NGX_OK
       && str_is(&ev.model, "res.partner") && str_is(&ev.event, "create")
       && str_is(&ev.id_key, "48214") && ev.priority == -1,
       "the instant shape reads _webhook_metadata alone");
    cJSON_Delete(root);

    ok(read_event("{\"_webhook_metadata\": {\"event_type\": \"create\", "
                  "\"model\": \"res.partner\", \"record_id\": 77, "
                  "\"priority\": \"low\"}}", 0, &ev, &err, &root) == NGX_OK
       && ev.priority == 2 && ev.id_key.len == 0,
       "the instant shape takes its priority from _webhook_metadata");
    cJSON_Delete(root);

    ok(read_event("{\"model\": \"a\", \"record_id\": 1.5, \"event\": \"w\"}",
                  0, &ev, &err, &root) == NGX_ERROR
       && strstr(err, "record_id"),
       "a fractional record_id is refused, naming the field");
    cJSON_Delete(root);

    ok(read_event("{\"model\": \"a\", \"record_id\": \"7\", \"event\": \"w\"}",
                  0, &ev, &err, &root) == NGX_ERROR,
       "a string record_id is refused");
    cJSON_Delete(root);

    ok(read_event("{\"record_id\": 7, \"event\": \"w\"}",
                  0, &ev, &err, &root) == NGX_ERROR
       && strstr(err, "model"),
       "a missing model is refused, naming the field");
    cJSON_Delete(root);

    ok(read_event("{\"model\": \"\", \"record_id\": 7, \"event\": \"w\"}",
                  0, &ev, &err, &root) == NGX_ERROR,
       "an empty model is refused");
    cJSON_Delete(root);

    ok(read_event("{\"model\": \"a\", \"record_id\": 7, \"event\": \"w\", "
                  "\"priority\": \"urgent\"}", 0, &ev, &err, &root)
       == NGX_DECLINED && strstr(err, "priority"),
       "an unknown priority is refused");
    cJSON_Delete(root);

    ok(read_event("{\"model\": \"a\", \"record_id\": -7, \"event\": \"w\", "
                  "\"event_id\": \"abc-1\"}", 0, &ev, &err, &root) == NGX_OK
       && str_is(&ev.record_id, "-7") && str_is(&ev.id_key, "abc-1")
       && ev.event_id.data == NULL,
       "a string event_id and a negative record_id are accepted");
    cJSON_Delete(root);

    ok(read_event("{\"model\": \"a\", \"record_id\": 9007199254740993, "
                  "\"event\": \"w\"}", 0, &ev, &err, &root) == NGX_ERROR,
       "a record_id past 2^53 is refused");
    cJSON_Delete(root);

    ok(read_event("{\"anything\": [1, 2]}", 1, &ev, &err, &root) == NGX_OK
       && ev.model.len == 0 && ev.record_id.len == 0,
       "schema any accepts any object");
    cJSON_Delete(root);

    ok(read_event("[1]", 1, &ev, &err, &root) == NGX_ERROR,
       "schema any still wants an object");
    cJSON_Delete(root);
}


static void
test_kind(void)
{
    cJSON  *root;

    root = cJSON_Parse("{\"batch\": true, \"events\": []}");
    ok(ngx_http_webhook_payload_kind(root) == NGX_HTTP_WEBHOOK_BATCH,
       "a batch is recognized");
    cJSON_Delete(root);

    root = cJSON_Parse("{\"test\": true, \"message\": \"hi\"}");
    ok(ngx_http_webhook_payload_kind(root) == NGX_HTTP_WEBHOOK_TEST,
       "a connection test is recognized");
    cJSON_Delete(root);

    root = cJSON_Parse("{\"test\": true, \"model\": \"x.y\"}");
    ok(ngx_http_webhook_payload_kind(root) == NGX_HTTP_WEBHOOK_SINGLE,
       "a record with a field named test is an event");
    cJSON_Delete(root);
}


static void
test_envelope(void)
{
    u_char                    *buf, *last;
    size_t                     len;
    cJSON                     *root, *env, *item;
    ngx_str_t                  id, at, prio;
    const char                *err;
    ngx_http_webhook_event_t   ev;

    static char body[] = "{\"model\": \"we\\\"ird\\n\", \"record_id\": 3, "
                         "\"event\": \"write\", \"event_id\": \"k\\\\1\"}";

    read_event(body, 0, &ev, &err, &root);

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
    cJSON_Delete(root);
    free(buf);

    read_event("{\"x\": 1}", 1, &ev, &err, &root);
    ev.payload.data = (u_char *) "{\"x\": 1}";
    ev.payload.len = 8;

    len = ngx_http_webhook_envelope_len(&ev, &id, &at, &prio);
    buf = malloc(len);
    last = ngx_http_webhook_envelope_write(buf, &ev, &id, &at, &prio);

    ok((size_t) (last - buf) == len
       && strncmp((char *) buf, "{\"id\":\"abc\",\"received_at\":"
                  "\"2026-11-27T09:14:03.412Z\",\"priority\":\"low\","
                  "\"event_id\":null,\"model\":null,\"record_id\":null,"
                  "\"event\":null,\"payload\":{\"x\": 1}}", len) == 0,
       "an event without fields gets nulls");

    cJSON_Delete(root);
    free(buf);
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
    test_flatten();
    test_parse();
    test_parse_spill();
    test_elements();
    test_event_shape();
    test_kind();
    test_envelope();
    test_time();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
