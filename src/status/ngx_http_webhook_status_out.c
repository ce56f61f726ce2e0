
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status answer's output: a writer (JSON or Prometheus) is run over
 * the snapshot twice through the calls below, once to measure its answer
 * (each string measured as it will be written: escaped ones by the
 * escaper's own length function, numbers formatted), once to write it
 * into a buffer of exactly that size; a call writes only what fits, and
 * an answer of another length than measured is refused.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/ngx_http_webhook_core.h"
#include "ngx_http_webhook_status_snapshot.h"


static size_t ngx_http_webhook_label_len(ngx_str_t *s);
static u_char *ngx_http_webhook_label(u_char *p, ngx_str_t *s);
static ngx_uint_t ngx_http_webhook_out_room(ngx_http_webhook_out_t *o,
    size_t n);


/* the writer's answer in a buffer of its own size; NULL: an error */

ngx_buf_t *
ngx_http_webhook_out_answer(ngx_http_request_t *r,
    ngx_http_webhook_writer_pt writer, ngx_http_webhook_snapshot_t *snap)
{
    ngx_buf_t               *b;
    ngx_http_webhook_out_t   o;

    ngx_memzero(&o, sizeof(ngx_http_webhook_out_t));

    writer(&o, snap);

    b = ngx_create_temp_buf(r->pool, o.len);
    if (b == NULL) {
        return NULL;
    }

    o.pos = b->pos;
    o.end = b->end;
    o.len = 0;

    writer(&o, snap);

    if (o.overflow || o.pos != b->end) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "webhook: the status answer was measured at %uz "
                      "bytes, and its writing took %uz",
                      (size_t) (b->end - b->pos), o.len);
        return NULL;
    }

    b->last = o.pos;

    return b;
}


void
ngx_http_webhook_out(ngx_http_webhook_out_t *o, u_char *s, size_t n)
{
    if (ngx_http_webhook_out_room(o, n)) {
        o->pos = ngx_cpymem(o->pos, s, n);
    }
}


void
ngx_http_webhook_out_uint(ngx_http_webhook_out_t *o, uint64_t n)
{
    u_char  buf[NGX_INT64_LEN];

    ngx_http_webhook_out(o, buf, ngx_sprintf(buf, "%uL", n) - buf);
}


void
ngx_http_webhook_out_int(ngx_http_webhook_out_t *o, int64_t n)
{
    u_char  buf[NGX_INT64_LEN];

    ngx_http_webhook_out(o, buf, ngx_sprintf(buf, "%L", n) - buf);
}


/* microseconds as seconds, no trailing zeros: "3.2", "0.0005", "1" */

void
ngx_http_webhook_out_seconds(ngx_http_webhook_out_t *o, uint64_t usec)
{
    u_char    *p;
    u_char     buf[NGX_INT64_LEN + sizeof(".000000")];
    uint64_t   frac;

    p = ngx_sprintf(buf, "%uL", usec / 1000000);

    frac = usec % 1000000;

    if (frac) {
        p = ngx_sprintf(p, ".%06uL", frac);

        while (p[-1] == '0') {
            p--;
        }
    }

    ngx_http_webhook_out(o, buf, p - buf);
}


/* a JSON string's text, escaped (without its quotes) */

void
ngx_http_webhook_out_json(ngx_http_webhook_out_t *o, ngx_str_t *s)
{
    if (ngx_http_webhook_out_room(o,
            ngx_http_webhook_json_escape_len(s->data, s->len)))
    {
        o->pos = ngx_http_webhook_json_escape(o->pos, s->data, s->len);
    }
}


/* a Prometheus label value, quoted, with \, " and newline escaped */

void
ngx_http_webhook_out_label(ngx_http_webhook_out_t *o, ngx_str_t *s)
{
    if (ngx_http_webhook_out_room(o, ngx_http_webhook_label_len(s))) {
        o->pos = ngx_http_webhook_label(o->pos, s);
    }
}


static size_t
ngx_http_webhook_label_len(ngx_str_t *s)
{
    size_t  i, len;

    len = sizeof("\"\"") - 1 + s->len;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '\\' || s->data[i] == '"' || s->data[i] == LF) {
            len++;
        }
    }

    return len;
}


static u_char *
ngx_http_webhook_label(u_char *p, ngx_str_t *s)
{
    size_t  i;
    u_char  c;

    *p++ = '"';

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == LF) {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = c;
        }
    }

    *p++ = '"';

    return p;
}


/*
 * n more bytes counted; whether to write them: not in the measuring pass,
 * nor when they would pass the buffer's end
 */

static ngx_uint_t
ngx_http_webhook_out_room(ngx_http_webhook_out_t *o, size_t n)
{
    o->len += n;

    if (o->pos == NULL) {
        return 0;
    }

    if ((size_t) (o->end - o->pos) < n) {
        o->overflow = 1;
        o->pos = o->end;
        return 0;
    }

    return 1;
}
