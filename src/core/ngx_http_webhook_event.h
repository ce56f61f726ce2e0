
/*
 * Copyright (C) The ngx_http_webhook_module authors
 */


#ifndef _NGX_HTTP_WEBHOOK_EVENT_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_EVENT_H_INCLUDED_


/*
 * The event parser and envelope builder: pure functions over a request
 * body, no I/O, no pool, so that they can be unit-tested and fuzzed
 * outside of nginx.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_json.h"
#include "ngx_http_webhook_text.h"


#define NGX_HTTP_WEBHOOK_SINGLE   0
#define NGX_HTTP_WEBHOOK_BATCH    1
#define NGX_HTTP_WEBHOOK_TEST     2

/* room for "-9007199254740992" */
#define NGX_HTTP_WEBHOOK_INT_LEN  24


/* ev->warnings: fields of the wrong type, taken as absent (schema any) */
#define NGX_HTTP_WEBHOOK_W_EVENT_ID   0x01
#define NGX_HTTP_WEBHOOK_W_PRIORITY   0x02
#define NGX_HTTP_WEBHOOK_W_MODEL      0x04
#define NGX_HTTP_WEBHOOK_W_RECORD_ID  0x08
#define NGX_HTTP_WEBHOOK_W_EVENT      0x10
#define NGX_HTTP_WEBHOOK_W_META       0x20


typedef struct {
    ngx_str_t    payload;      /* the event object as received */
    ngx_str_t    model;        /* not escaped; len 0: none */
    ngx_str_t    event;        /* not escaped; len 0: none */
    ngx_str_t    event_id;     /* JSON text: a number or a string */
    ngx_str_t    id_key;       /* the idempotency key: the id, unquoted */
    ngx_str_t    record_id;    /* JSON text of an integer; len 0: none */
    ngx_int_t    priority;     /* -1: not given */
    ngx_str_t    sender;       /* set by the caller; len 0: null */
    ngx_uint_t   warnings;     /* NGX_HTTP_WEBHOOK_W_* */
    unsigned     instant:1;    /* with _webhook_metadata */
    unsigned     test:1;       /* data._test_event, or record_id -1 */

    u_char       event_id_buf[NGX_HTTP_WEBHOOK_INT_LEN];
    u_char       record_id_buf[NGX_HTTP_WEBHOOK_INT_LEN];
} ngx_http_webhook_event_t;


ngx_int_t ngx_http_webhook_payload_kind(ngx_str_t *root);
ngx_int_t ngx_http_webhook_event_read(ngx_str_t *obj, ngx_uint_t schema_any,
    ngx_http_webhook_event_t *ev, u_char **scratch, const char **err);
ngx_int_t ngx_http_webhook_priority(u_char *p, size_t len);

size_t ngx_http_webhook_envelope_len(ngx_http_webhook_event_t *ev,
    ngx_str_t *id, ngx_str_t *received_at, ngx_str_t *priority);
u_char *ngx_http_webhook_envelope_write(u_char *p,
    ngx_http_webhook_event_t *ev, ngx_str_t *id, ngx_str_t *received_at,
    ngx_str_t *priority);


#endif /* _NGX_HTTP_WEBHOOK_EVENT_H_INCLUDED_ */
