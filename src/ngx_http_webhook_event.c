
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The event parser and the envelope builder.  Pure functions: what the
 * body holds, which fields an Odoo event has, what the envelope pushed
 * to Redis looks like.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_event.h"


/* beyond 2^53 a double no longer tells neighbouring integers apart */
#define NGX_HTTP_WEBHOOK_MAX_EXACT  9007199254740992.0


static u_char *ngx_http_webhook_json_skip_space(u_char *p, u_char *end);
static u_char *ngx_http_webhook_json_skip_string(u_char *p, u_char *end);
static u_char *ngx_http_webhook_json_skip_value(u_char *p, u_char *end);
static ngx_int_t ngx_http_webhook_event_string(cJSON *item, ngx_str_t *s);
static ngx_int_t ngx_http_webhook_event_integer(cJSON *item, u_char *buf,
    ngx_str_t *s);
static ngx_int_t ngx_http_webhook_event_id(cJSON *item,
    ngx_http_webhook_event_t *ev);
static u_char *ngx_http_webhook_digits(u_char *p, ngx_uint_t n,
    ngx_uint_t width);


/*
 * Makes a valid JSON text one line, in place: CR, LF and TAB outside of
 * strings are white space and become spaces.  Any other raw control
 * character, in a string or not, is not JSON: NGX_ERROR.
 */

ngx_int_t
ngx_http_webhook_json_flatten(u_char *p, size_t len)
{
    u_char  *end;

    /* 1: a byte that ends the plain run of a string */

    static u_char  special[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    /* " */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0     /* \ */
    };

    end = p + len;

    while (p < end) {

        if (*p == '"') {

            for ( ;; ) {
                p++;

                while (p < end && !special[*p]) {
                    p++;
                }

                if (p == end || *p < 0x20) {
                    return NGX_ERROR;
                }

                if (*p == '"') {
                    break;
                }

                /* a backslash: the escaped byte is no control either */

                if (++p == end || *p < 0x20) {
                    return NGX_ERROR;
                }
            }

        } else if (*p < 0x20) {

            /* cJSON would take any control character for white space */

            if (*p != CR && *p != LF && *p != '\t') {
                return NGX_ERROR;
            }

            *p = ' ';
        }

        p++;
    }

    return NGX_OK;
}


/*
 * cJSON allocates each node and string with its own malloc().  A parse
 * takes them from this arena instead, reset on each parse, so that a
 * tree costs no malloc() and no free() in the common case; what does not
 * fit falls back to malloc() and is freed by ngx_http_webhook_json_free().
 * A worker is single-threaded and keeps one tree alive at a time.
 */

static u_char      ngx_http_webhook_arena[NGX_HTTP_WEBHOOK_ARENA_SIZE];
static u_char     *ngx_http_webhook_arena_pos;
static ngx_uint_t  ngx_http_webhook_arena_spilled;


static void *
ngx_http_webhook_arena_alloc(size_t size)
{
    u_char  *p;

    size = ngx_align(size, 16);

    p = ngx_http_webhook_arena_pos;

    if (p == NULL
        || size > (size_t) (ngx_http_webhook_arena
                            + NGX_HTTP_WEBHOOK_ARENA_SIZE - p))
    {
        ngx_http_webhook_arena_spilled = 1;
        return malloc(size);
    }

    ngx_http_webhook_arena_pos = p + size;

    return p;
}


static void
ngx_http_webhook_arena_free(void *p)
{
    if ((u_char *) p >= ngx_http_webhook_arena
        && (u_char *) p < ngx_http_webhook_arena + NGX_HTTP_WEBHOOK_ARENA_SIZE)
    {
        return;
    }

    free(p);
}


/*
 * Parses a request body: one JSON value, one line once flattened, with
 * nothing but white space after it (cJSON alone stops at the end of the
 * value and ignores what follows).  NULL on error, with the offset of
 * the error.  The tree is given back with ngx_http_webhook_json_free().
 */

cJSON *
ngx_http_webhook_json_parse(u_char *p, size_t len, size_t *error)
{
    cJSON       *root;
    const char  *end;

    static cJSON_Hooks  hooks = {
        ngx_http_webhook_arena_alloc, ngx_http_webhook_arena_free
    };

    *error = 0;

    if (ngx_http_webhook_json_flatten(p, len) != NGX_OK) {
        return NULL;
    }

    cJSON_InitHooks(&hooks);

    ngx_http_webhook_arena_pos = ngx_http_webhook_arena;
    ngx_http_webhook_arena_spilled = 0;

    root = cJSON_ParseWithLengthOpts((char *) p, len, &end, 0);

    if (root == NULL) {
        end = cJSON_GetErrorPtr();
        *error = end ? (size_t) ((u_char *) end - p) : 0;
        ngx_http_webhook_json_free(NULL);
        return NULL;
    }

    while ((u_char *) end < p + len && *end == ' ') {
        end++;
    }

    if ((u_char *) end != p + len) {
        *error = (u_char *) end - p;
        ngx_http_webhook_json_free(root);
        return NULL;
    }

    return root;
}


void
ngx_http_webhook_json_free(cJSON *root)
{
    /* only what spilled out of the arena is freed one by one */

    if (root && ngx_http_webhook_arena_spilled) {
        cJSON_Delete(root);
    }

    ngx_http_webhook_arena_pos = NULL;
}


/*
 * Finds the top-level member "name" of the object in a valid JSON text
 * and sets elts[] to the exact text of each element of its array value.
 * Returns the number of elements, or NGX_ERROR when there is no such
 * array or it has more than n elements.
 */

ngx_int_t
ngx_http_webhook_json_elements(ngx_str_t *body, const char *name,
    ngx_str_t *elts, ngx_uint_t n)
{
    u_char      *p, *end, *key, *value;
    size_t       name_len;
    ngx_uint_t   i, found;

    p = body->data;
    end = p + body->len;
    name_len = ngx_strlen(name);

    p = ngx_http_webhook_json_skip_space(p, end);
    if (p == end || *p++ != '{') {
        return NGX_ERROR;
    }

    for ( ;; ) {
        p = ngx_http_webhook_json_skip_space(p, end);
        if (p == end || *p != '"') {
            return NGX_ERROR;
        }

        key = p;
        p = ngx_http_webhook_json_skip_string(p, end);
        if (p == NULL) {
            return NGX_ERROR;
        }

        found = ((size_t) (p - key) == name_len + 2
                 && ngx_strncmp(key + 1, name, name_len) == 0);

        p = ngx_http_webhook_json_skip_space(p, end);
        if (p == end || *p++ != ':') {
            return NGX_ERROR;
        }

        value = ngx_http_webhook_json_skip_space(p, end);
        p = ngx_http_webhook_json_skip_value(value, end);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (found) {
            break;
        }

        p = ngx_http_webhook_json_skip_space(p, end);
        if (p == end || *p++ != ',') {
            return NGX_ERROR;
        }
    }

    if (*value != '[') {
        return NGX_ERROR;
    }

    p = ngx_http_webhook_json_skip_space(value + 1, end);
    if (p < end && *p == ']') {
        return 0;
    }

    for (i = 0; /* void */; i++) {
        if (i == n) {
            return NGX_ERROR;
        }

        elts[i].data = ngx_http_webhook_json_skip_space(p, end);
        p = ngx_http_webhook_json_skip_value(elts[i].data, end);
        if (p == NULL) {
            return NGX_ERROR;
        }

        elts[i].len = p - elts[i].data;

        p = ngx_http_webhook_json_skip_space(p, end);
        if (p == end) {
            return NGX_ERROR;
        }

        if (*p == ']') {
            return i + 1;
        }

        if (*p++ != ',') {
            return NGX_ERROR;
        }
    }
}


static u_char *
ngx_http_webhook_json_skip_space(u_char *p, u_char *end)
{
    while (p < end && (*p == ' ' || *p == CR || *p == LF || *p == '\t')) {
        p++;
    }

    return p;
}


/* p points to the opening quote; returns the end of the string or NULL */

static u_char *
ngx_http_webhook_json_skip_string(u_char *p, u_char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }

        if (*p == '"') {
            return p + 1;
        }
    }

    return NULL;
}


static u_char *
ngx_http_webhook_json_skip_value(u_char *p, u_char *end)
{
    ngx_uint_t  depth;

    if (p == end) {
        return NULL;
    }

    if (*p == '"') {
        return ngx_http_webhook_json_skip_string(p, end);
    }

    if (*p != '{' && *p != '[') {
        /* a number, true, false or null */

        while (p < end && *p != ',' && *p != '}' && *p != ']'
               && *p != ' ' && *p != CR && *p != LF && *p != '\t')
        {
            p++;
        }

        return p;
    }

    depth = 0;

    while (p < end) {
        switch (*p) {

        case '"':
            p = ngx_http_webhook_json_skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }
            continue;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (--depth == 0) {
                return p + 1;
            }
            break;
        }

        p++;
    }

    return NULL;
}


ngx_int_t
ngx_http_webhook_payload_kind(cJSON *root)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(root, "batch");
    if (cJSON_IsTrue(item)) {
        return NGX_HTTP_WEBHOOK_BATCH;
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "test");
    if (cJSON_IsTrue(item)
        && cJSON_GetObjectItemCaseSensitive(root, "_webhook_metadata") == NULL
        && cJSON_GetObjectItemCaseSensitive(root, "model") == NULL)
    {
        return NGX_HTTP_WEBHOOK_TEST;
    }

    return NGX_HTTP_WEBHOOK_SINGLE;
}


/*
 * Reads an event: the "event" shape (fields at the top level) or the
 * "instant" shape, whose top level holds the record's own fields and
 * whose event is described by "_webhook_metadata" alone.  NGX_DECLINED
 * for a bad priority, NGX_ERROR for any other invalid field.
 */

ngx_int_t
ngx_http_webhook_event_read(cJSON *obj, ngx_uint_t schema_any,
    ngx_http_webhook_event_t *ev, const char **err)
{
    cJSON       *meta, *item;
    const char  *event_name;

    ev->model.len = 0;
    ev->event.len = 0;
    ev->event_id.len = 0;
    ev->id_key.len = 0;
    ev->record_id.len = 0;
    ev->priority = -1;

    if (!cJSON_IsObject(obj)) {
        *err = "the event is not a JSON object";
        return NGX_ERROR;
    }

    meta = cJSON_GetObjectItemCaseSensitive(obj, "_webhook_metadata");

    if (meta) {
        if (!cJSON_IsObject(meta)) {
            *err = "field \"_webhook_metadata\" must be an object";
            return NGX_ERROR;
        }

        obj = meta;
        event_name = "event_type";

    } else {
        event_name = "event";
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "event_id");
    if (item && !cJSON_IsNull(item)
        && ngx_http_webhook_event_id(item, ev) != NGX_OK)
    {
        *err = "field \"event_id\" must be an integer or a non-empty string";
        return NGX_ERROR;
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "priority");
    if (item && !cJSON_IsNull(item)) {
        if (!cJSON_IsString(item)) {
            *err = "field \"priority\" must be \"high\", \"medium\" or \"low\"";
            return NGX_DECLINED;
        }

        ev->priority = ngx_http_webhook_priority((u_char *) item->valuestring,
                                             ngx_strlen(item->valuestring));
        if (ev->priority == NGX_ERROR) {
            *err = "field \"priority\" must be \"high\", \"medium\" or \"low\"";
            return NGX_DECLINED;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "model");
    if (item && ngx_http_webhook_event_string(item, &ev->model) != NGX_OK) {
        if (!schema_any) {
            *err = "field \"model\" must be a non-empty string";
            return NGX_ERROR;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, "record_id");
    if (item && ngx_http_webhook_event_integer(item, ev->record_id_buf,
                                               &ev->record_id)
                != NGX_OK)
    {
        if (!schema_any) {
            *err = "field \"record_id\" must be an integer";
            return NGX_ERROR;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(obj, event_name);
    if (item && ngx_http_webhook_event_string(item, &ev->event) != NGX_OK) {
        if (!schema_any) {
            *err = meta ? "field \"_webhook_metadata.event_type\" must be "
                          "a non-empty string"
                        : "field \"event\" must be a non-empty string";
            return NGX_ERROR;
        }
    }

    if (schema_any) {
        return NGX_OK;
    }

    if (ev->model.len == 0) {
        *err = meta ? "field \"_webhook_metadata.model\" is missing"
                    : "field \"model\" is missing";
        return NGX_ERROR;
    }

    if (ev->record_id.len == 0) {
        *err = meta ? "field \"_webhook_metadata.record_id\" is missing"
                    : "field \"record_id\" is missing";
        return NGX_ERROR;
    }

    if (ev->event.len == 0) {
        *err = meta ? "field \"_webhook_metadata.event_type\" is missing"
                    : "field \"event\" is missing";
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_webhook_priority(u_char *p, size_t len)
{
    if (len == 4 && ngx_strncmp(p, "high", 4) == 0) {
        return 0;
    }

    if (len == 6 && ngx_strncmp(p, "medium", 6) == 0) {
        return 1;
    }

    if (len == 3 && ngx_strncmp(p, "low", 3) == 0) {
        return 2;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_webhook_event_string(cJSON *item, ngx_str_t *s)
{
    if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
        return NGX_ERROR;
    }

    s->data = (u_char *) item->valuestring;
    s->len = ngx_strlen(item->valuestring);

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_event_integer(cJSON *item, u_char *buf, ngx_str_t *s)
{
    u_char     *p, *last;
    double      d;
    uint64_t    n;
    ngx_uint_t  negative;

    if (!cJSON_IsNumber(item)) {
        return NGX_ERROR;
    }

    d = item->valuedouble;

    if (d >= NGX_HTTP_WEBHOOK_MAX_EXACT || d <= -NGX_HTTP_WEBHOOK_MAX_EXACT
        || d != (double) (int64_t) d)
    {
        return NGX_ERROR;
    }

    negative = (d < 0);
    n = negative ? (uint64_t) -d : (uint64_t) d;

    /* digits backwards from the end of the buffer */

    last = buf + NGX_HTTP_WEBHOOK_INT_LEN;
    p = last;

    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    if (negative) {
        *--p = '-';
    }

    s->data = p;
    s->len = last - p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_event_id(cJSON *item, ngx_http_webhook_event_t *ev)
{
    if (cJSON_IsNumber(item)) {
        if (ngx_http_webhook_event_integer(item, ev->event_id_buf,
                                           &ev->event_id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ev->id_key = ev->event_id;
        return NGX_OK;
    }

    if (ngx_http_webhook_event_string(item, &ev->id_key) != NGX_OK) {
        return NGX_ERROR;
    }

    /* written quoted and escaped by the envelope */
    ev->event_id.data = NULL;
    ev->event_id.len = ev->id_key.len;

    return NGX_OK;
}


static const char  ngx_http_webhook_env_id[] = "{\"id\":\"";
static const char  ngx_http_webhook_env_at[] = "\",\"received_at\":\"";
static const char  ngx_http_webhook_env_prio[] = "\",\"priority\":\"";
static const char  ngx_http_webhook_env_eid[] = "\",\"event_id\":";
static const char  ngx_http_webhook_env_model[] = ",\"model\":";
static const char  ngx_http_webhook_env_rid[] = ",\"record_id\":";
static const char  ngx_http_webhook_env_event[] = ",\"event\":";
static const char  ngx_http_webhook_env_payload[] = ",\"payload\":";

#define ngx_http_webhook_lit(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)


size_t
ngx_http_webhook_envelope_len(ngx_http_webhook_event_t *ev, ngx_str_t *id,
    ngx_str_t *received_at, ngx_str_t *priority)
{
    size_t  len;

    len = sizeof(ngx_http_webhook_env_id) - 1
          + ngx_http_webhook_json_escape_len(id->data, id->len)
          + sizeof(ngx_http_webhook_env_at) - 1 + received_at->len
          + sizeof(ngx_http_webhook_env_prio) - 1 + priority->len
          + sizeof(ngx_http_webhook_env_eid) - 1
          + sizeof(ngx_http_webhook_env_model) - 1
          + sizeof(ngx_http_webhook_env_rid) - 1
          + sizeof(ngx_http_webhook_env_event) - 1
          + sizeof(ngx_http_webhook_env_payload) - 1
          + ev->payload.len + 1;

    if (ev->id_key.len == 0) {
        len += sizeof("null") - 1;

    } else if (ev->event_id.data) {
        len += ev->event_id.len;

    } else {
        len += 2 + ngx_http_webhook_json_escape_len(ev->id_key.data,
                                                    ev->id_key.len);
    }

    len += ev->model.len
           ? 2 + ngx_http_webhook_json_escape_len(ev->model.data,
                                                  ev->model.len)
           : sizeof("null") - 1;

    len += ev->record_id.len ? ev->record_id.len : sizeof("null") - 1;

    len += ev->event.len
           ? 2 + ngx_http_webhook_json_escape_len(ev->event.data,
                                                  ev->event.len)
           : sizeof("null") - 1;

    return len;
}


/*
 * {"id":"...","received_at":"...","priority":"high","event_id":48213,
 *  "model":"sale.order","record_id":1842,"event":"write","payload":{...}}
 */

u_char *
ngx_http_webhook_envelope_write(u_char *p, ngx_http_webhook_event_t *ev,
    ngx_str_t *id, ngx_str_t *received_at, ngx_str_t *priority)
{
    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_id);
    p = ngx_http_webhook_json_escape(p, id->data, id->len);
    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_at);
    p = ngx_cpymem(p, received_at->data, received_at->len);
    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_prio);
    p = ngx_cpymem(p, priority->data, priority->len);
    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_eid);

    if (ev->id_key.len == 0) {
        p = ngx_http_webhook_lit(p, "null");

    } else if (ev->event_id.data) {
        p = ngx_cpymem(p, ev->event_id.data, ev->event_id.len);

    } else {
        *p++ = '"';
        p = ngx_http_webhook_json_escape(p, ev->id_key.data, ev->id_key.len);
        *p++ = '"';
    }

    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_model);

    if (ev->model.len) {
        *p++ = '"';
        p = ngx_http_webhook_json_escape(p, ev->model.data, ev->model.len);
        *p++ = '"';

    } else {
        p = ngx_http_webhook_lit(p, "null");
    }

    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_rid);

    if (ev->record_id.len) {
        p = ngx_cpymem(p, ev->record_id.data, ev->record_id.len);

    } else {
        p = ngx_http_webhook_lit(p, "null");
    }

    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_event);

    if (ev->event.len) {
        *p++ = '"';
        p = ngx_http_webhook_json_escape(p, ev->event.data, ev->event.len);
        *p++ = '"';

    } else {
        p = ngx_http_webhook_lit(p, "null");
    }

    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_payload);
    p = ngx_cpymem(p, ev->payload.data, ev->payload.len);
    *p++ = '}';

    return p;
}


/* RFC 3339, UTC, with milliseconds: 2026-11-27T09:14:03.412Z */

u_char *
ngx_http_webhook_time(u_char *p, time_t sec, ngx_uint_t msec)
{
    int64_t     days, era, doe, yoe, doy, mp, y, m, d, rem;

    /* days to civil date, proleptic Gregorian (H. Hinnant's algorithm) */

    days = sec / 86400;
    rem = sec % 86400;

    if (rem < 0) {
        rem += 86400;
        days--;
    }

    days += 719468;
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    p = ngx_http_webhook_digits(p, (ngx_uint_t) y, 4);
    *p++ = '-';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) m, 2);
    *p++ = '-';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) d, 2);
    *p++ = 'T';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) (rem / 3600), 2);
    *p++ = ':';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) (rem / 60 % 60), 2);
    *p++ = ':';
    p = ngx_http_webhook_digits(p, (ngx_uint_t) (rem % 60), 2);
    *p++ = '.';
    p = ngx_http_webhook_digits(p, msec % 1000, 3);
    *p++ = 'Z';

    return p;
}


/* the inverse: "2026-11-27T09:14:03.412Z" to milliseconds, -1 if not */

int64_t
ngx_http_webhook_time_parse(u_char *p, size_t len)
{
    int64_t     y, m, d, era, yoe, doy, doe, days, v[7];
    size_t      i, k;
    ngx_uint_t  width[7] = { 4, 2, 2, 2, 2, 2, 3 };
    u_char      sep[7] = { '-', '-', 'T', ':', ':', '.', 'Z' };

    if (len != NGX_HTTP_WEBHOOK_TIME_LEN) {
        return -1;
    }

    for (k = 0; k < 7; k++) {
        v[k] = 0;

        for (i = 0; i < width[k]; i++, p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }

            v[k] = v[k] * 10 + (*p - '0');
        }

        if (*p++ != sep[k]) {
            return -1;
        }
    }

    y = v[0];
    m = v[1];
    d = v[2];

    if (m < 1 || m > 12 || d < 1 || d > 31) {
        return -1;
    }

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    days = era * 146097 + doe - 719468;

    return ((days * 86400 + v[3] * 3600 + v[4] * 60 + v[5]) * 1000) + v[6];
}


static u_char *
ngx_http_webhook_digits(u_char *p, ngx_uint_t n, ngx_uint_t width)
{
    ngx_uint_t  i;

    for (i = width; i; i--) {
        p[i - 1] = (u_char) ('0' + n % 10);
        n /= 10;
    }

    return p + width;
}


size_t
ngx_http_webhook_json_escape_len(u_char *src, size_t size)
{
    size_t  len;

    for (len = size; size; size--, src++) {
        if (*src == '"' || *src == '\\') {
            len++;

        } else if (*src < 0x20) {
            len += sizeof("\\u001f") - 2;
        }
    }

    return len;
}


u_char *
ngx_http_webhook_json_escape(u_char *dst, u_char *src, size_t size)
{
    static u_char  hex[] = "0123456789abcdef";

    for ( /* void */ ; size; size--, src++) {

        if (*src == '"' || *src == '\\') {
            *dst++ = '\\';
            *dst++ = *src;

        } else if (*src < 0x20) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 0xf];

        } else {
            *dst++ = *src;
        }
    }

    return dst;
}
