
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The records of the spool (a journal on the nginx host's disk that takes
 * the events Redis cannot take now) and the names of its files.
 */


#ifndef _NGX_HTTP_WEBHOOK_RECORD_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_RECORD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "core/ngx_http_webhook_core.h"


/*
 * A record, all integers little-endian:
 *
 *   magic "WHS1" (4), crc32 of what follows it up to the record's end (4),
 *   length of the whole record (4), flags (4), sequence number (8),
 *   spooled at, unix milliseconds (8), dedupe TTL in seconds (4),
 *   depth limit of the list, 0: none (4),
 *   then four length-prefixed (4) strings: the list key, the seen key,
 *   the envelope id, the envelope.
 */

#define NGX_HTTP_WEBHOOK_REC_MAGIC    "WHS1"
#define NGX_HTTP_WEBHOOK_REC_HEADER   40
#define NGX_HTTP_WEBHOOK_REC_MIN      (NGX_HTTP_WEBHOOK_REC_HEADER + 16)
#define NGX_HTTP_WEBHOOK_REC_MAX      (64 * 1024 * 1024)

/* the seen key of an event without an idempotency key: <queue>:seen:env:<id>
 * is kept that long after a direct push, so that a push that Redis applied
 * after the wait's timeout (the event was spooled then) is not doubled */
#define NGX_HTTP_WEBHOOK_SPOOL_SEEN_TTL   600

/* a drained seen key outlives the spool's oldest event by this much */
#define NGX_HTTP_WEBHOOK_SPOOL_DRAIN_TTL  3600

/* file names: <escaped queue>.<016x first sequence>.<pid>.seg */
#define NGX_HTTP_WEBHOOK_SPOOL_NAME   (3 * 128 + 48)


typedef struct {
    uint32_t                      flags;
    uint64_t                      seq;
    uint64_t                      spooled_at;  /* unix msec */
    ngx_http_webhook_item_t       item;
} ngx_http_webhook_record_t;


/* results of the record reader */
#define NGX_HTTP_WEBHOOK_REC_OK        0
#define NGX_HTTP_WEBHOOK_REC_PARTIAL   1   /* more bytes needed */
#define NGX_HTTP_WEBHOOK_REC_BAD       2   /* not a record */


/* ngx_http_webhook_record.c: no nginx runtime needed (unit, fuzz) */
size_t ngx_http_webhook_record_len(ngx_http_webhook_record_t *rec);
u_char *ngx_http_webhook_record_write(u_char *p,
    ngx_http_webhook_record_t *rec);
uint64_t ngx_http_webhook_record_seq(u_char *p);
size_t ngx_http_webhook_record_need(u_char *p, size_t len);
ngx_int_t ngx_http_webhook_record_read(u_char *p, size_t len,
    ngx_http_webhook_record_t *rec, size_t *used);
uint32_t ngx_http_webhook_crc32(u_char *p, size_t len);
u_char *ngx_http_webhook_spool_escape(u_char *dst, ngx_str_t *queue);
ngx_int_t ngx_http_webhook_spool_unescape(ngx_str_t *dst, u_char *src,
    size_t len);
ngx_int_t ngx_http_webhook_spool_parse_name(u_char *name, size_t len,
    ngx_str_t *queue, uint64_t *seq);


#endif /* _NGX_HTTP_WEBHOOK_RECORD_H_INCLUDED_ */
