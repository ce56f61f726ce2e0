
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The core: what every subsystem shares and none owns.  Pure (no I/O, no
 * nginx runtime beyond ngx_core.h, but for the files of secrets that
 * parse.c reads at configuration time), unit-tested and fuzzed:
 *
 *   ngx_http_webhook_json.c      the strict JSON scanner of request bodies
 *   ngx_http_webhook_event.c     the event shapes Odoo sends, the envelope
 *   ngx_http_webhook_text.c      text for the log and for JSON, RFC 3339
 *   ngx_http_webhook_keyslot.c   a key's hash tag and Cluster slot
 *   ngx_http_webhook_parse.c     what every directive parses alike
 *   ngx_http_webhook_core.c      the names of priorities and results
 */


#ifndef _NGX_HTTP_WEBHOOK_CORE_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_CORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_WEBHOOK_VERSION  "0.1.0"


#define NGX_HTTP_WEBHOOK_HIGH     0
#define NGX_HTTP_WEBHOOK_MEDIUM   1
#define NGX_HTTP_WEBHOOK_LOW      2
#define NGX_HTTP_WEBHOOK_NPRIO    3


#define NGX_HTTP_WEBHOOK_MAX_QUEUES  64


/* answers of a receive location, the values of $webhook_result */

typedef enum {
    NGX_HTTP_WEBHOOK_RESULT_QUEUED = 0,
    NGX_HTTP_WEBHOOK_RESULT_DUPLICATE,
    NGX_HTTP_WEBHOOK_RESULT_SPOOLED,
    NGX_HTTP_WEBHOOK_RESULT_TEST,
    NGX_HTTP_WEBHOOK_RESULT_UNAUTHORIZED,
    NGX_HTTP_WEBHOOK_RESULT_INVALID,
    NGX_HTTP_WEBHOOK_RESULT_UNSUPPORTED_MEDIA_TYPE,
    NGX_HTTP_WEBHOOK_RESULT_TOO_LARGE,
    NGX_HTTP_WEBHOOK_RESULT_METHOD_NOT_ALLOWED,
    NGX_HTTP_WEBHOOK_RESULT_UNAVAILABLE,
    NGX_HTTP_WEBHOOK_RESULT_OVERLOADED,
    NGX_HTTP_WEBHOOK_RESULT_RATE_LIMITED,
    NGX_HTTP_WEBHOOK_RESULT_PROBE,
    NGX_HTTP_WEBHOOK_RESULT_ERROR,
    NGX_HTTP_WEBHOOK_NRESULTS
} ngx_http_webhook_result_e;


/*
 * An event as the enqueue script takes it and the spool keeps it: the
 * list it goes to, its seen key (deduplication) and that key's TTL, the
 * list's depth limit, its envelope and the envelope's id.  The receive
 * location makes it (ngx_http_webhook_prepare.c), the Redis layer encodes
 * it for the script (ngx_http_webhook_script.c), the spool writes and
 * reads it (ngx_http_webhook_record.c).
 */

typedef struct {
    ngx_str_t                     list;       /* <queue>:queue:<priority> */
    ngx_str_t                     seen;       /* len 0: none */
    uint32_t                      ttl;        /* of the seen key, seconds */
    uint32_t                      max_depth;  /* of the list, 0: none */
    ngx_str_t                     id;         /* the envelope's */
    ngx_str_t                     envelope;
} ngx_http_webhook_item_t;


/* the module itself (ngx_http_webhook_module.c): its configurations and
 * request contexts are found through it */
extern ngx_module_t  ngx_http_webhook_module;

/* ngx_http_webhook_core.c: by NGX_HTTP_WEBHOOK_HIGH..LOW, by result */
extern ngx_str_t     ngx_http_webhook_priorities[];
extern ngx_str_t     ngx_http_webhook_results[];


#include "ngx_http_webhook_json.h"
#include "ngx_http_webhook_text.h"
#include "ngx_http_webhook_event.h"
#include "ngx_http_webhook_keyslot.h"
#include "ngx_http_webhook_parse.h"


#endif /* _NGX_HTTP_WEBHOOK_CORE_H_INCLUDED_ */
