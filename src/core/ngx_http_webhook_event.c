
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


static ngx_int_t ngx_http_webhook_event_string(ngx_str_t *value,
    ngx_str_t *s, u_char **scratch);
static ngx_int_t ngx_http_webhook_event_integer(ngx_str_t *value,
    u_char *buf, ngx_str_t *s);
static ngx_int_t ngx_http_webhook_event_id(ngx_str_t *value,
    ngx_http_webhook_event_t *ev, u_char **scratch);


ngx_int_t
ngx_http_webhook_payload_kind(ngx_str_t *root)
{
    ngx_str_t  v[4];

    static ngx_str_t  names[] = {
        ngx_string("batch"),
        ngx_string("test"),
        ngx_string("_webhook_metadata"),
        ngx_string("model")
    };

    ngx_http_webhook_json_members(root, names, v, 4);

    /* with "_webhook_metadata", the top level is the record's own fields */

    if (ngx_http_webhook_json_is_true(&v[0]) && v[2].len == 0) {
        return NGX_HTTP_WEBHOOK_BATCH;
    }

    if (ngx_http_webhook_json_is_true(&v[1]) && v[2].len == 0
        && v[3].len == 0)
    {
        return NGX_HTTP_WEBHOOK_TEST;
    }

    return NGX_HTTP_WEBHOOK_SINGLE;
}


/*
 * Reads an event: the "event" shape (fields at the top level) or the
 * "instant" shape, whose top level holds the record's own fields and
 * whose event is described by "_webhook_metadata" alone.  Strings
 * written with escapes are unescaped to *scratch, which moves on; room
 * for the length of the text is always enough.
 *
 * With schema "any", a field of the wrong type (or an unknown priority,
 * or a _webhook_metadata that is no object) is taken as absent and its
 * bit set in ev->warnings; a missing or null field is absent.  With
 * schema "event", either is an error: NGX_DECLINED for a bad priority,
 * NGX_ERROR for any other.
 */

#define NGX_HTTP_WEBHOOK_F_META      0
#define NGX_HTTP_WEBHOOK_F_EVENT_ID  1
#define NGX_HTTP_WEBHOOK_F_PRIORITY  2
#define NGX_HTTP_WEBHOOK_F_MODEL     3
#define NGX_HTTP_WEBHOOK_F_RECORD    4
#define NGX_HTTP_WEBHOOK_F_EVENT     5
#define NGX_HTTP_WEBHOOK_F_DATA      6
#define NGX_HTTP_WEBHOOK_F_N         7

ngx_int_t
ngx_http_webhook_event_read(ngx_str_t *obj, ngx_uint_t schema_any,
    ngx_http_webhook_event_t *ev, u_char **scratch, const char **err)
{
    ngx_str_t   *names, meta, prio, *item, data;
    ngx_str_t    f[NGX_HTTP_WEBHOOK_F_N];

    static ngx_str_t  event_names[] = {
        ngx_string("_webhook_metadata"),
        ngx_string("event_id"),
        ngx_string("priority"),
        ngx_string("model"),
        ngx_string("record_id"),
        ngx_string("event"),
        ngx_string("data")
    };

    static ngx_str_t  meta_names[] = {
        ngx_string("_webhook_metadata"),
        ngx_string("event_id"),
        ngx_string("priority"),
        ngx_string("model"),
        ngx_string("record_id"),
        ngx_string("event_type")
    };

    static ngx_str_t  test_event = ngx_string("_test_event");

    ngx_memzero(ev, offsetof(ngx_http_webhook_event_t, event_id_buf));
    ev->priority = -1;

    if (!ngx_http_webhook_json_is_object(obj)) {
        *err = "the event is not a JSON object";
        return NGX_ERROR;
    }

    names = event_names;
    ngx_http_webhook_json_members(obj, names, f, NGX_HTTP_WEBHOOK_F_N);

    /* the "Test webhook" button: an ordinary event with data._test_event */

    if (ngx_http_webhook_json_is_object(&f[NGX_HTTP_WEBHOOK_F_DATA])) {
        ngx_http_webhook_json_members(&f[NGX_HTTP_WEBHOOK_F_DATA],
                                      &test_event, &data, 1);
        ev->test = ngx_http_webhook_json_is_true(&data);
    }

    meta = f[NGX_HTTP_WEBHOOK_F_META];

    if (meta.len && schema_any && !ngx_http_webhook_json_is_object(&meta)) {
        if (!ngx_http_webhook_json_is_null(&meta)) {
            ev->warnings |= NGX_HTTP_WEBHOOK_W_META;
        }

        meta.len = 0;
    }

    ev->instant = (meta.len != 0);

    if (ev->instant) {
        if (!ngx_http_webhook_json_is_object(&meta)) {
            *err = "field \"_webhook_metadata\" must be an object";
            return NGX_ERROR;
        }

        names = meta_names;
        ngx_http_webhook_json_members(&meta, names, f,
                                      NGX_HTTP_WEBHOOK_F_DATA);
    }

    item = &f[NGX_HTTP_WEBHOOK_F_EVENT_ID];
    if (item->len && !ngx_http_webhook_json_is_null(item)
        && ngx_http_webhook_event_id(item, ev, scratch) != NGX_OK)
    {
        ev->event_id.len = 0;
        ev->id_key.len = 0;
        ev->warnings |= NGX_HTTP_WEBHOOK_W_EVENT_ID;
        *err = "field \"event_id\" must be an integer or a non-empty string";

        if (!schema_any) {
            return NGX_ERROR;
        }
    }

    item = &f[NGX_HTTP_WEBHOOK_F_PRIORITY];
    if (item->len && !ngx_http_webhook_json_is_null(item)) {
        if (!ngx_http_webhook_json_is_string(item)
            || ngx_http_webhook_event_string(item, &prio, scratch) != NGX_OK
            || (ev->priority = ngx_http_webhook_priority(prio.data, prio.len))
               == NGX_ERROR)
        {
            ev->priority = -1;

            if (!schema_any) {
                *err = "field \"priority\" must be \"high\", \"medium\" "
                       "or \"low\"";
                return NGX_DECLINED;
            }

            ev->warnings |= NGX_HTTP_WEBHOOK_W_PRIORITY;
        }
    }

    item = &f[NGX_HTTP_WEBHOOK_F_MODEL];
    if (item->len && !(schema_any && ngx_http_webhook_json_is_null(item))
        && ngx_http_webhook_event_string(item, &ev->model, scratch) != NGX_OK)
    {
        ev->model.len = 0;
        ev->warnings |= NGX_HTTP_WEBHOOK_W_MODEL;
        *err = "field \"model\" must be a non-empty string";

        if (!schema_any) {
            return NGX_ERROR;
        }
    }

    item = &f[NGX_HTTP_WEBHOOK_F_RECORD];
    if (item->len && !(schema_any && ngx_http_webhook_json_is_null(item))
        && ngx_http_webhook_event_integer(item, ev->record_id_buf,
                                          &ev->record_id)
           != NGX_OK)
    {
        ev->record_id.len = 0;
        ev->warnings |= NGX_HTTP_WEBHOOK_W_RECORD_ID;
        *err = "field \"record_id\" must be an integer";

        if (!schema_any) {
            return NGX_ERROR;
        }

    } else if (ev->record_id.len == 2
               && ngx_strncmp(ev->record_id.data, "-1", 2) == 0)
    {
        /* Odoo's test events */
        ev->test = 1;
    }

    item = &f[NGX_HTTP_WEBHOOK_F_EVENT];
    if (item->len && !(schema_any && ngx_http_webhook_json_is_null(item))
        && ngx_http_webhook_event_string(item, &ev->event, scratch) != NGX_OK)
    {
        ev->event.len = 0;
        ev->warnings |= NGX_HTTP_WEBHOOK_W_EVENT;
        *err = ev->instant ? "field \"_webhook_metadata.event_type\" must be "
                             "a non-empty string"
                           : "field \"event\" must be a non-empty string";

        if (!schema_any) {
            return NGX_ERROR;
        }
    }

    if (schema_any) {
        return NGX_OK;
    }

    if (ev->model.len == 0) {
        *err = ev->instant ? "field \"_webhook_metadata.model\" is missing"
                           : "field \"model\" is missing";
        return NGX_ERROR;
    }

    if (ev->record_id.len == 0) {
        *err = ev->instant ? "field \"_webhook_metadata.record_id\" is missing"
                           : "field \"record_id\" is missing";
        return NGX_ERROR;
    }

    if (ev->event.len == 0) {
        *err = ev->instant ? "field \"_webhook_metadata.event_type\" is "
                             "missing"
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


/*
 * A non-empty string, unescaped.  A \u0000 would cut it short: the
 * envelope and the dedupe key would hold less than the payload.
 */

static ngx_int_t
ngx_http_webhook_event_string(ngx_str_t *value, ngx_str_t *s,
    u_char **scratch)
{
    ngx_int_t  n;

    if (!ngx_http_webhook_json_is_string(value)) {
        return NGX_ERROR;
    }

    if (ngx_strlchr(value->data, value->data + value->len, '\\') == NULL) {
        s->data = value->data + 1;
        s->len = value->len - 2;

    } else {
        n = ngx_http_webhook_json_unescape(*scratch, value);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        s->data = *scratch;
        s->len = n;
        *scratch += n;
    }

    return s->len ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_webhook_event_integer(ngx_str_t *value, u_char *buf, ngx_str_t *s)
{
    u_char     *p, *last;
    double      d;
    uint64_t    n;
    ngx_uint_t  negative;

    if (!ngx_http_webhook_json_is_number(value)
        || ngx_http_webhook_json_number(value, &d) != NGX_OK)
    {
        return NGX_ERROR;
    }

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
ngx_http_webhook_event_id(ngx_str_t *value, ngx_http_webhook_event_t *ev,
    u_char **scratch)
{
    if (ngx_http_webhook_json_is_number(value)) {
        if (ngx_http_webhook_event_integer(value, ev->event_id_buf,
                                           &ev->event_id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ev->id_key = ev->event_id;
        return NGX_OK;
    }

    if (ngx_http_webhook_event_string(value, &ev->id_key, scratch)
        != NGX_OK)
    {
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
static const char  ngx_http_webhook_env_sender[] = ",\"sender\":";
static const char  ngx_http_webhook_env_warnings[] = ",\"warnings\":[";
static const char  ngx_http_webhook_env_payload[] = ",\"payload\":";

/* the envelope's names of the fields in ev->warnings, bit by bit */
static ngx_str_t  ngx_http_webhook_warning_names[] = {
    ngx_string("\"event_id\""),
    ngx_string("\"priority\""),
    ngx_string("\"model\""),
    ngx_string("\"record_id\""),
    ngx_string("\"event\""),
    ngx_string("\"_webhook_metadata\"")
};

#define NGX_HTTP_WEBHOOK_NWARNINGS                                            \
    (sizeof(ngx_http_webhook_warning_names) / sizeof(ngx_str_t))

#define ngx_http_webhook_lit(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)


size_t
ngx_http_webhook_envelope_len(ngx_http_webhook_event_t *ev, ngx_str_t *id,
    ngx_str_t *received_at, ngx_str_t *priority)
{
    size_t      len;
    ngx_uint_t  i;

    len = sizeof(ngx_http_webhook_env_id) - 1
          + ngx_http_webhook_json_escape_len(id->data, id->len)
          + sizeof(ngx_http_webhook_env_at) - 1 + received_at->len
          + sizeof(ngx_http_webhook_env_prio) - 1 + priority->len
          + sizeof(ngx_http_webhook_env_eid) - 1
          + sizeof(ngx_http_webhook_env_model) - 1
          + sizeof(ngx_http_webhook_env_rid) - 1
          + sizeof(ngx_http_webhook_env_event) - 1
          + sizeof(ngx_http_webhook_env_sender) - 1
          + sizeof(ngx_http_webhook_env_payload) - 1
          + ev->payload.len + 1;

    len += ev->sender.len
           ? 2 + ngx_http_webhook_json_escape_len(ev->sender.data,
                                                  ev->sender.len)
           : sizeof("null") - 1;

    if (ev->warnings) {
        len += sizeof(ngx_http_webhook_env_warnings) - 1;

        for (i = 0; i < NGX_HTTP_WEBHOOK_NWARNINGS; i++) {
            if (ev->warnings & (1 << i)) {
                len += ngx_http_webhook_warning_names[i].len + 1;
            }
        }
    }

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
 *  "model":"sale.order","record_id":1842,"event":"write",
 *  "sender":"odoo-prod","warnings":["record_id"],"payload":{...}}
 * ("warnings" only when a field was taken as absent)
 */

u_char *
ngx_http_webhook_envelope_write(u_char *p, ngx_http_webhook_event_t *ev,
    ngx_str_t *id, ngx_str_t *received_at, ngx_str_t *priority)
{
    ngx_uint_t  i;

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

    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_sender);

    if (ev->sender.len) {
        *p++ = '"';
        p = ngx_http_webhook_json_escape(p, ev->sender.data, ev->sender.len);
        *p++ = '"';

    } else {
        p = ngx_http_webhook_lit(p, "null");
    }

    if (ev->warnings) {
        p = ngx_http_webhook_lit(p, ngx_http_webhook_env_warnings);

        for (i = 0; i < NGX_HTTP_WEBHOOK_NWARNINGS; i++) {
            if (ev->warnings & (1 << i)) {
                p = ngx_cpymem(p, ngx_http_webhook_warning_names[i].data,
                               ngx_http_webhook_warning_names[i].len);
                *p++ = ',';
            }
        }

        p[-1] = ']';
    }

    p = ngx_http_webhook_lit(p, ngx_http_webhook_env_payload);
    p = ngx_cpymem(p, ev->payload.data, ev->payload.len);
    *p++ = '}';

    return p;
}
