
/*
 * libFuzzer harness of the request-body path, in the order
 * ngx_http_webhook_process() (src/ngx_http_webhook_receive.c) takes it:
 * the JSON check, the payload kind, then for a single event the event
 * reader, for a batch the "events" member, its elements and the event
 * reader of each (all or nothing), and the envelope of every event.
 * Both schemas (event and any) are tried on every input.
 *
 * cJSON is the reference: what the module's own scanner finds (the kind,
 * the members, the elements, the fields, the verdict and its message)
 * must be what a cJSON tree of the same text gives.  cJSON is laxer
 * (it takes "01" or "1."), so the scanner may refuse what cJSON takes,
 * never the other way round.  cJSON does not check UTF-8: where the
 * scanner takes a text, every string and key of cJSON's tree must be
 * UTF-8 by a decoder of the harness's own; where it refuses one for
 * UTF-8, that decoder must find no character at the offset it names.
 * The scanner is checked as deep as cJSON goes (1000 levels), and at the
 * default depth against the levels of cJSON's tree.
 * A number of more than 63 characters is
 * no number field for the module, so texts with one are checked without
 * the reference's fields; and a \u0000 cuts a cJSON string short, so
 * texts with one are checked without the reference.
 *
 * Checked on every input, abort() when broken:
 *  - the check gives an offset inside the text, and the value's span;
 *  - its UTF-8 verdict is the harness's decoder's;
 *  - an envelope is exactly as long as computed, valid JSON, with no raw
 *    control character but the CR, LF and TAB between the tokens of its
 *    payload (kept as received);
 *  - its "payload" is the exact text of the event (the body's value or
 *    the batch element's span), and that text is the element validated;
 *  - its event_id, model, record_id, event are the reference's (values
 *    are compared member by member, in order: duplicate keys count);
 *  - unescaped strings stay inside the scratch room the handler gives;
 *  - the JSON string escaper round-trips any bytes (a byte that starts
 *    no UTF-8 character as U+FFFD), its cut splits no character, and
 *    received_at reads back any time.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60 (see the Makefile).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/ngx_http_webhook_event.h"

#include "fuzz.h"


#define FUZZ_BATCH_MAX  64           /* webhook_batch_max of the harness */


typedef struct {
    const char  *model;        /* NULL: none */
    const char  *event;
    cJSON       *record_id;
    cJSON       *event_id;
    ngx_int_t    priority;
    ngx_uint_t   warnings;     /* schema any: fields taken as absent */
    ngx_uint_t   test;
} fuzz_ref_t;


/* the whole text, read by cJSON; NULL when cJSON refuses it */

static cJSON *
fuzz_ref_parse(u_char *p, size_t len)
{
    cJSON       *root;
    const char  *end;

    root = cJSON_ParseWithLengthOpts((char *) p, len, &end, 0);
    if (root == NULL) {
        return NULL;
    }

    while ((u_char *) end < p + len
           && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
    {
        end++;
    }

    if ((u_char *) end != p + len) {
        cJSON_Delete(root);
        return NULL;
    }

    return root;
}


/*
 * Whether two cJSON values are the same, members in order: unlike
 * cJSON_Compare, which looks members up by name, it tells apart objects
 * with duplicate keys.
 */

static ngx_uint_t
fuzz_same(cJSON *a, cJSON *b)
{
    if ((a->type & 0xff) != (b->type & 0xff)) {
        return 0;
    }

    if (cJSON_IsNumber(a)) {
        return a->valuedouble == b->valuedouble;
    }

    if (cJSON_IsString(a)) {
        return strcmp(a->valuestring, b->valuestring) == 0;
    }

    if (!cJSON_IsObject(a) && !cJSON_IsArray(a)) {
        return 1;
    }

    for (a = a->child, b = b->child; a && b; a = a->next, b = b->next) {
        if ((a->string == NULL) != (b->string == NULL)
            || (a->string && strcmp(a->string, b->string) != 0)
            || !fuzz_same(a, b))
        {
            return 0;
        }
    }

    return a == NULL && b == NULL;
}


/* a number of more than 63 characters: cJSON cannot read it */

static ngx_uint_t
fuzz_long_number(u_char *p, size_t len)
{
    size_t  run;

    for (run = 0; len; len--, p++) {
        if ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.'
            || *p == 'e' || *p == 'E')
        {
            if (++run > 63) {
                return 1;
            }

        } else {
            run = 0;
        }
    }

    return 0;
}


/*
 * The length of the UTF-8 character at p, or 0 when it is none: the
 * code point decoded, then RFC 3629's rules applied to it (the shortest
 * form, no UTF-16 surrogate, nothing past U+10FFFF).
 */

static size_t
fuzz_utf8_char(u_char *p, size_t len)
{
    size_t    n, i;
    uint32_t  cp;

    static const uint32_t  min[] = { 0, 0, 0x80, 0x800, 0x10000 };

    n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2
        : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;

    if (n == 0 || n > len) {
        return 0;
    }

    cp = n == 1 ? p[0] : p[0] & (0x7f >> n);

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


static ngx_uint_t
fuzz_utf8(const char *s)
{
    size_t  len, n;

    for (len = strlen(s); len; len -= n, s += n) {
        n = fuzz_utf8_char((u_char *) s, len);
        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


/* every string and key of a cJSON tree is UTF-8 */

static ngx_uint_t
fuzz_utf8_tree(cJSON *item)
{
    if (item->string && !fuzz_utf8(item->string)) {
        return 0;
    }

    if (cJSON_IsString(item)) {
        return fuzz_utf8(item->valuestring);
    }

    for (item = item->child; item; item = item->next) {
        if (!fuzz_utf8_tree(item)) {
            return 0;
        }
    }

    return 1;
}


/* the levels of objects and arrays of a cJSON tree */

static ngx_uint_t
fuzz_depth(cJSON *item)
{
    ngx_uint_t  d, max;

    if (!cJSON_IsObject(item) && !cJSON_IsArray(item)) {
        return 0;
    }

    for (max = 0, item = item->child; item; item = item->next) {
        d = fuzz_depth(item);
        max = d > max ? d : max;
    }

    return max + 1;
}


/*
 * A text taken at cJSON's depth is taken at the default one exactly when
 * cJSON's tree is no deeper, else refused for its depth.
 */

static void
fuzz_depth_check(u_char *text, size_t size, cJSON *ref_root)
{
    u_char                         *copy;
    ngx_int_t                       rc;
    ngx_str_t                       root;
    ngx_http_webhook_json_error_t   error;

    if (ref_root == NULL) {
        return;
    }

    copy = malloc(size + 1);
    fuzz_check(copy != NULL, "malloc");
    memcpy(copy, text, size + 1);

    rc = ngx_http_webhook_json_check(copy, size, NGX_HTTP_WEBHOOK_JSON_DEPTH,
                                     &root, &error);

    fuzz_check(fuzz_depth(ref_root) <= NGX_HTTP_WEBHOOK_JSON_DEPTH
               ? rc == NGX_OK
               : rc == NGX_ERROR
                 && error.reason == NGX_HTTP_WEBHOOK_JSON_DEEP,
               "the default depth is not cJSON's count");

    free(copy);
}


static ngx_int_t
fuzz_ref_kind(cJSON *root)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "batch"))
        && cJSON_GetObjectItemCaseSensitive(root, "_webhook_metadata") == NULL)
    {
        return NGX_HTTP_WEBHOOK_BATCH;
    }

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "test"))
        && cJSON_GetObjectItemCaseSensitive(root, "_webhook_metadata") == NULL
        && cJSON_GetObjectItemCaseSensitive(root, "model") == NULL)
    {
        return NGX_HTTP_WEBHOOK_TEST;
    }

    return NGX_HTTP_WEBHOOK_SINGLE;
}


static ngx_uint_t
fuzz_ref_integer(cJSON *item)
{
    double  d;

    if (!cJSON_IsNumber(item)) {
        return 0;
    }

    d = item->valuedouble;

    return d < 9007199254740992.0 && d > -9007199254740992.0
           && d == (double) (int64_t) d;
}


static ngx_uint_t
fuzz_ref_string(cJSON *item)
{
    return cJSON_IsString(item) && item->valuestring[0] != '\0';
}


/* the event as the README describes it, read from the cJSON tree */

static ngx_int_t
fuzz_ref_event(cJSON *obj, ngx_uint_t any, fuzz_ref_t *ref, const char **err)
{
    cJSON       *meta, *item;
    ngx_uint_t   is_meta;

    ngx_memzero(ref, sizeof(fuzz_ref_t));
    ref->priority = -1;

    if (!cJSON_IsObject(obj)) {
        *err = "the event is not a JSON object";
        return NGX_ERROR;
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "data");
    ref->test = cJSON_IsObject(item)
                && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item,
                                                            "_test_event"));

    meta = cJSON_GetObjectItemCaseSensitive(obj, "_webhook_metadata");
    is_meta = (meta != NULL);

    if (is_meta && any && !cJSON_IsObject(meta)) {
        if (!cJSON_IsNull(meta)) {
            ref->warnings |= NGX_HTTP_WEBHOOK_W_META;
        }

        is_meta = 0;
    }

    if (is_meta) {
        if (!cJSON_IsObject(meta)) {
            *err = "field \"_webhook_metadata\" must be an object";
            return NGX_ERROR;
        }

        obj = meta;
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "event_id");
    if (item && !cJSON_IsNull(item)) {
        if (cJSON_IsNumber(item) ? !fuzz_ref_integer(item)
                                 : !fuzz_ref_string(item))
        {
            *err = "field \"event_id\" must be an integer or a non-empty "
                   "string";
            if (!any) {
                return NGX_ERROR;
            }

            ref->warnings |= NGX_HTTP_WEBHOOK_W_EVENT_ID;

        } else {
            ref->event_id = item;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "priority");
    if (item && !cJSON_IsNull(item)) {
        ref->priority = cJSON_IsString(item)
                        ? ngx_http_webhook_priority(
                              (u_char *) item->valuestring,
                              strlen(item->valuestring))
                        : NGX_ERROR;

        if (ref->priority == NGX_ERROR) {
            ref->priority = -1;

            if (!any) {
                *err = "field \"priority\" must be \"high\", \"medium\" "
                       "or \"low\"";
                return NGX_DECLINED;
            }

            ref->warnings |= NGX_HTTP_WEBHOOK_W_PRIORITY;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "model");
    if (fuzz_ref_string(item)) {
        ref->model = item->valuestring;

    } else if (item && !any) {
        *err = "field \"model\" must be a non-empty string";
        return NGX_ERROR;

    } else if (item && !cJSON_IsNull(item)) {
        ref->warnings |= NGX_HTTP_WEBHOOK_W_MODEL;
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "record_id");
    if (fuzz_ref_integer(item)) {
        ref->record_id = item;
        ref->test |= (item->valuedouble == -1);

    } else if (item && !any) {
        *err = "field \"record_id\" must be an integer";
        return NGX_ERROR;

    } else if (item && !cJSON_IsNull(item)) {
        ref->warnings |= NGX_HTTP_WEBHOOK_W_RECORD_ID;
    }

    item = cJSON_GetObjectItemCaseSensitive(obj,
                                       is_meta ? "event_type" : "event");
    if (fuzz_ref_string(item)) {
        ref->event = item->valuestring;

    } else if (item && !any) {
        *err = is_meta ? "field \"_webhook_metadata.event_type\" must be "
                         "a non-empty string"
                       : "field \"event\" must be a non-empty string";
        return NGX_ERROR;

    } else if (item && !cJSON_IsNull(item)) {
        ref->warnings |= NGX_HTTP_WEBHOOK_W_EVENT;
    }

    if (any) {
        return NGX_OK;
    }

    if (ref->model == NULL) {
        *err = is_meta ? "field \"_webhook_metadata.model\" is missing"
                       : "field \"model\" is missing";
        return NGX_ERROR;
    }

    if (ref->record_id == NULL) {
        *err = is_meta ? "field \"_webhook_metadata.record_id\" is missing"
                       : "field \"record_id\" is missing";
        return NGX_ERROR;
    }

    if (ref->event == NULL) {
        *err = is_meta ? "field \"_webhook_metadata.event_type\" is missing"
                       : "field \"event\" is missing";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_uint_t
fuzz_str_is(ngx_str_t *s, const char *c)
{
    return c == NULL ? s->len == 0
                     : s->len == strlen(c) && memcmp(s->data, c, s->len) == 0;
}


/* the event read by the module is the reference's */

static void
fuzz_compare_event(ngx_http_webhook_event_t *ev, fuzz_ref_t *ref)
{
    ngx_str_t  text;
    char       num[NGX_HTTP_WEBHOOK_INT_LEN + 1];

    fuzz_check(ev->priority == ref->priority, "priority differs");
    fuzz_check(ev->warnings == ref->warnings, "warnings differ");
    fuzz_check(ev->test == ref->test, "test differs");
    fuzz_check(fuzz_str_is(&ev->model, ref->model), "model differs");
    fuzz_check(fuzz_str_is(&ev->event, ref->event), "event differs");

    if (ref->record_id == NULL) {
        fuzz_check(ev->record_id.len == 0, "record_id where none is");

    } else {
        fuzz_check(ev->record_id.len && ev->record_id.len < sizeof(num),
                   "record_id text");
        memcpy(num, ev->record_id.data, ev->record_id.len);
        num[ev->record_id.len] = '\0';
        fuzz_check(strtod(num, NULL) == ref->record_id->valuedouble,
                   "record_id differs");
    }

    if (ref->event_id == NULL) {
        fuzz_check(ev->id_key.len == 0, "event_id where none is");

    } else if (cJSON_IsNumber(ref->event_id)) {
        fuzz_check(ev->event_id.data != NULL
                   && ev->event_id.len == ev->id_key.len,
                   "numeric event_id without its text");

    } else {
        text.data = (u_char *) ref->event_id->valuestring;
        text.len = strlen(ref->event_id->valuestring);
        fuzz_check(ev->event_id.data == NULL
                   && ev->id_key.len == text.len
                   && memcmp(ev->id_key.data, text.data, text.len) == 0,
                   "string event_id differs");
    }
}


/* the field of the envelope is the reference's string or number, or null */

static void
fuzz_env_field(cJSON *env, const char *name, const char *str, cJSON *num)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(env, name);
    fuzz_check(item != NULL, "envelope field missing");

    if (str) {
        fuzz_check(cJSON_IsString(item) && strcmp(item->valuestring, str) == 0,
                   "envelope string field differs");

    } else if (num) {
        fuzz_check(cJSON_IsNumber(item)
                   && item->valuedouble == num->valuedouble,
                   "envelope number field differs");

    } else {
        fuzz_check(cJSON_IsNull(item), "absent field is not null");
    }
}


/*
 * Builds the envelope of an event and checks it; with a reference (the
 * cJSON element and its fields), also its fields and its payload.
 */

static void
fuzz_envelope(ngx_http_webhook_event_t *ev, cJSON *elt, fuzz_ref_t *ref)
{
    u_char     *buf, *last, *p;
    size_t                          len, tail;
    cJSON                          *env, *item;
    ngx_str_t                       id, at, prio, value;
    ngx_http_webhook_json_error_t   error;

    static const char  payload[] = ",\"payload\":";

    id.data = (u_char *) "0123456789abcdef0123456789abcdef-7";
    id.len = 34;
    at.data = (u_char *) "2026-11-27T09:14:03.412Z";
    at.len = NGX_HTTP_WEBHOOK_TIME_LEN;
    prio.data = (u_char *) "medium";
    prio.len = 6;

    len = ngx_http_webhook_envelope_len(ev, &id, &at, &prio);

    buf = malloc(len);
    fuzz_check(buf != NULL, "malloc");

    last = ngx_http_webhook_envelope_write(buf, ev, &id, &at, &prio);

    fuzz_check((size_t) (last - buf) == len, "envelope length");

    /* the payload is the event's text, byte for byte, at the end */

    tail = sizeof(payload) - 1 + ev->payload.len + 1;

    for (p = buf; p < last; p++) {
        fuzz_check(*p >= 0x20
                   || ((*p == '\t' || *p == '\r' || *p == '\n')
                       && p >= last - 1 - ev->payload.len),
                   "raw control character in the envelope");
    }

    fuzz_check(len > tail
               && memcmp(last - tail, payload, sizeof(payload) - 1) == 0
               && memcmp(last - 1 - ev->payload.len, ev->payload.data,
                         ev->payload.len) == 0
               && last[-1] == '}',
               "payload is not the event's text");

    /* valid JSON by the module's own check, which leaves it as it is */

    p = malloc(len);
    fuzz_check(p != NULL, "malloc");
    memcpy(p, buf, len);
    fuzz_check(ngx_http_webhook_json_check(p, len,
                                           NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH,
                                           &value, &error) == NGX_OK
               && value.len == len && ngx_http_webhook_json_is_object(&value)
               && memcmp(p, buf, len) == 0,
               "envelope is not one JSON object");
    free(p);

    if (ref == NULL) {
        free(buf);
        return;
    }

    env = fuzz_ref_parse(buf, len);
    fuzz_check(cJSON_IsObject(env), "cJSON cannot read the envelope");

    item = cJSON_GetObjectItemCaseSensitive(env, "payload");
    fuzz_check(item != NULL && fuzz_same(item, elt),
               "envelope payload is not the validated event");

    item = cJSON_GetObjectItemCaseSensitive(env, "id");
    fuzz_check(cJSON_IsString(item)
               && strcmp(item->valuestring, (char *) id.data) == 0,
               "envelope id");

    item = cJSON_GetObjectItemCaseSensitive(env, "received_at");
    fuzz_check(cJSON_IsString(item)
               && strcmp(item->valuestring, (char *) at.data) == 0,
               "envelope received_at");

    fuzz_env_field(env, "model", ref->model, NULL);
    fuzz_env_field(env, "event", ref->event, NULL);
    fuzz_env_field(env, "record_id", NULL, ref->record_id);

    if (ref->event_id && cJSON_IsString(ref->event_id)) {
        fuzz_env_field(env, "event_id", ref->event_id->valuestring, NULL);

    } else {
        fuzz_env_field(env, "event_id", NULL, ref->event_id);
    }

    cJSON_Delete(env);
    free(buf);
}


/* reads one event as the handler does, and against the reference */

static ngx_int_t
fuzz_read(ngx_str_t *obj, cJSON *elt, ngx_uint_t any,
    ngx_http_webhook_event_t *ev, u_char **scratch, u_char *room_end,
    fuzz_ref_t *ref)
{
    ngx_int_t    rc, ref_rc;
    const char  *err, *ref_err;

    err = NULL;
    rc = ngx_http_webhook_event_read(obj, any, ev, scratch, &err);

    fuzz_check(*scratch <= room_end, "unescaped strings past the scratch");
    fuzz_check(rc == NGX_OK || ((rc == NGX_ERROR || rc == NGX_DECLINED)
                                && err != NULL && err[0] != '\0'),
               "refused without a reason");

    if (elt == NULL) {
        return rc;
    }

    ref_err = NULL;
    ref_rc = fuzz_ref_event(elt, any, ref, &ref_err);

    fuzz_check(rc == ref_rc, "verdict differs from the reference");

    if (rc != NGX_OK) {
        fuzz_check(strcmp(err, ref_err) == 0,
                   "message differs from the reference");
        return rc;
    }

    fuzz_compare_event(ev, ref);

    return rc;
}


static void
fuzz_single(ngx_str_t *root, cJSON *ref_root, ngx_uint_t fields,
    ngx_uint_t any, u_char *room, size_t size)
{
    u_char                    *scratch;
    fuzz_ref_t                 ref;
    ngx_http_webhook_event_t   ev;

    scratch = room;

    if (fuzz_read(root, fields ? ref_root : NULL, any, &ev, &scratch,
                  room + size, &ref)
        != NGX_OK)
    {
        return;                                     /* 400 */
    }

    ev.payload = *root;

    fuzz_envelope(&ev, ref_root, ref_root && fields ? &ref : NULL);
}


static void
fuzz_batch(ngx_str_t *root, cJSON *ref_root, ngx_uint_t fields,
    ngx_uint_t any, u_char *room, size_t size)
{
    u_char                    *scratch;
    cJSON                     *ref_events, *elt, *check;
    ngx_int_t                  n, i;
    ngx_str_t                  events, spans[FUZZ_BATCH_MAX], name;
    fuzz_ref_t                 ref[FUZZ_BATCH_MAX];
    ngx_http_webhook_event_t   ev[FUZZ_BATCH_MAX];

    ngx_str_set(&name, "events");

    ngx_http_webhook_json_members(root, &name, &events, 1);

    n = ngx_http_webhook_json_is_array(&events)
        ? ngx_http_webhook_json_elements(&events, NULL, 0) : NGX_ERROR;

    ref_events = NULL;

    if (ref_root) {
        ref_events = cJSON_GetObjectItemCaseSensitive(ref_root, "events");

        fuzz_check(cJSON_IsArray(ref_events)
                   ? n == cJSON_GetArraySize(ref_events) : n == NGX_ERROR,
                   "\"events\" differs from the reference");
    }

    if (n <= 0 || n > FUZZ_BATCH_MAX) {
        return;                                     /* 400 or 413 */
    }

    fuzz_check(ngx_http_webhook_json_elements(&events, spans, n) == n,
               "elements counted and listed differ");
    fuzz_check(ngx_http_webhook_json_elements(&events, spans, n - 1)
               == NGX_ERROR, "elements past n are not refused");

    /* all or nothing: every element is read before any envelope */

    scratch = room;
    elt = ref_events ? ref_events->child : NULL;

    for (i = 0; i < n; i++) {
        if (elt) {
            /* the span read is the reference's element */

            check = fuzz_ref_parse(spans[i].data, spans[i].len);
            fuzz_check(check != NULL && fuzz_same(check, elt),
                       "element span is not the reference's element");
            cJSON_Delete(check);
        }

        if (fuzz_read(&spans[i], fields ? elt : NULL, any, &ev[i], &scratch,
                      room + size, &ref[i])
            != NGX_OK)
        {
            return;                                 /* 400, nothing queued */
        }

        ev[i].payload = spans[i];
        elt = elt ? elt->next : NULL;
    }

    elt = ref_events ? ref_events->child : NULL;

    for (i = 0; i < n; i++) {
        fuzz_envelope(&ev[i], elt, elt && fields ? &ref[i] : NULL);
        elt = elt ? elt->next : NULL;
    }
}


static void
fuzz_escape(const uint8_t *data, size_t size)
{
    u_char  *buf, *last, *want, *w;
    size_t   len, i, n, cut;
    cJSON   *str;

    len = ngx_http_webhook_json_escape_len((u_char *) data, size);

    buf = malloc(len + 2);
    fuzz_check(buf != NULL, "malloc");

    buf[0] = '"';
    last = ngx_http_webhook_json_escape(buf + 1, (u_char *) data, size);
    fuzz_check((size_t) (last - buf - 1) == len, "escape length");
    *last++ = '"';

    str = cJSON_ParseWithLength((char *) buf, last - buf);
    fuzz_check(cJSON_IsString(str), "escaped bytes are not a JSON string");
    fuzz_check(fuzz_utf8(str->valuestring),
               "escaped bytes do not read as UTF-8");

    /* read back: the bytes, each that starts no character as U+FFFD */

    if (memchr(data, '\0', size) == NULL) {
        want = malloc(3 * size + 1);
        fuzz_check(want != NULL, "malloc");

        for (i = 0, w = want; i < size; i += n) {
            n = fuzz_utf8_char((u_char *) data + i, size - i);

            if (n == 0) {
                w = ngx_cpymem(w, "\xef\xbf\xbd", 3);
                n = 1;

            } else {
                w = ngx_cpymem(w, data + i, n);
            }
        }

        fuzz_check(strlen(str->valuestring) == (size_t) (w - want)
                   && memcmp(str->valuestring, want, w - want) == 0,
                   "escaped bytes do not read back");
        free(want);
    }

    cJSON_Delete(str);
    free(buf);

    /* a cut: at most 3 bytes early, never inside a character */

    if (size) {
        cut = ngx_http_webhook_utf8_cut((u_char *) data, size, data[0] % size);
        n = data[0] % size;

        fuzz_check(cut <= n && cut + 3 >= n, "cut too far from the byte");

        for (i = 0; i < cut; i += len) {
            len = fuzz_utf8_char((u_char *) data + i, size - i);
            len = len ? len : 1;
        }

        fuzz_check(i == cut || fuzz_utf8_char((u_char *) data + i - len,
                                              size - i + len) == 0,
                   "cut inside a character");
    }
}


/* received_at: any time of years 1970 to 9999 reads back */

static void
fuzz_time(const uint8_t *data, size_t size)
{
    u_char      buf[NGX_HTTP_WEBHOOK_TIME_LEN];
    uint64_t    v;
    time_t      sec;
    ngx_uint_t  msec;

    if (size < 8) {
        return;
    }

    memcpy(&v, data, 8);

    sec = (time_t) (v % 253402300800ULL);
    msec = (ngx_uint_t) (v >> 48) % 1000;

    fuzz_check(ngx_http_webhook_time(buf, sec, msec) - buf
               == NGX_HTTP_WEBHOOK_TIME_LEN, "time length");
    fuzz_check(ngx_http_webhook_time_parse(buf, NGX_HTTP_WEBHOOK_TIME_LEN)
               == (int64_t) sec * 1000 + (int64_t) msec,
               "time does not read back");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                         *copy, *room;
    cJSON                          *ref_root;
    ngx_int_t                       kind;
    ngx_str_t                       root;
    ngx_uint_t                      any, fields;
    ngx_http_webhook_json_error_t   error;

    fuzz_escape(data, size);
    fuzz_time(data, size);

    copy = malloc(size + 1);
    fuzz_check(copy != NULL, "malloc");

    memcpy(copy, data, size);
    copy[size] = '\0';           /* as ngx_http_webhook_body_handler */

    (void) ngx_http_webhook_time_parse(copy, size);

    /* as deep as cJSON goes: the reference's limit */

    if (ngx_http_webhook_json_check(copy, size,
                                    NGX_HTTP_WEBHOOK_JSON_MAX_DEPTH, &root,
                                    &error)
        != NGX_OK)
    {
        fuzz_check(error.offset <= size, "error offset past the body");
        fuzz_check(error.reason != NGX_HTTP_WEBHOOK_JSON_UTF8
                   || (copy[error.offset] >= 0x80
                       && fuzz_utf8_char(copy + error.offset,
                                         size - error.offset) == 0),
                   "refused for UTF-8 where a character is");
        free(copy);
        return 0;                                   /* 400 invalid_json */
    }

    fuzz_check(root.data >= copy && root.data + root.len <= copy + size,
               "value span outside the body");

    /* what the scanner takes, cJSON takes, and reads as the same value */

    ref_root = fuzz_ref_parse(copy, size);

    /*
     * The module reads a number field of more than 63 characters as no
     * number ("1.000...0" is no record_id), cJSON reads its value: such
     * texts are compared without the fields.
     */

    fields = !fuzz_long_number(copy, size);

    fuzz_check(ref_root != NULL || !fields,
               "the scanner takes a text cJSON refuses");

    fuzz_check(ref_root == NULL || fuzz_utf8_tree(ref_root),
               "the scanner takes a string that is not UTF-8");

    /* at the default depth: taken as deep as cJSON counts it */

    fuzz_depth_check(copy, size, ref_root);

    /*
     * A key or a field with a \u0000 is no name and no value for the
     * module, cJSON cuts it there: no reference for such texts.
     */

    if (memmem(copy, size, "\\u0000", 6) != NULL) {
        cJSON_Delete(ref_root);
        ref_root = NULL;
    }

    if (!ngx_http_webhook_json_is_object(&root)) {
        fuzz_check(ref_root == NULL || !cJSON_IsObject(ref_root),
                   "object or not differs from the reference");
        cJSON_Delete(ref_root);
        free(copy);
        return 0;                                   /* 400 */
    }

    fuzz_check(ref_root == NULL || cJSON_IsObject(ref_root),
               "object or not differs from the reference");

    kind = ngx_http_webhook_payload_kind(&root);

    fuzz_check(ref_root == NULL || kind == fuzz_ref_kind(ref_root),
               "payload kind differs from the reference");

    /* unescaped strings: the handler gives room for the body's length */

    room = malloc(size);
    fuzz_check(room != NULL, "malloc");

    for (any = 0; any < 2; any++) {
        if (kind == NGX_HTTP_WEBHOOK_SINGLE) {
            fuzz_single(&root, ref_root, fields, any, room, size);

        } else if (kind == NGX_HTTP_WEBHOOK_BATCH) {
            fuzz_batch(&root, ref_root, fields, any, room, size);
        }
    }

    free(room);
    cJSON_Delete(ref_root);
    free(copy);

    return 0;
}
