
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The status location (webhook_status): queue depths, dead letters and
 * the oldest events' ages read live from Redis, the consumers' events in
 * flight, the reconcilers, the shared-memory counters and the spool's, in
 * JSON or in Prometheus text.
 *
 *   ngx_http_webhook_status.c           the handler: the status script per
 *                                       queue (Cluster) or once, under a
 *                                       timer; the answer sent
 *   ngx_http_webhook_status_snapshot.c  the snapshot: every value the
 *                                       answer shows, read once
 *   ngx_http_webhook_status_out.c       a writer run twice: measured, then
 *                                       written into exactly that size
 *   ngx_http_webhook_status_json.c      the JSON writer
 *   ngx_http_webhook_status_text.c      the Prometheus writer
 */


#ifndef _NGX_HTTP_WEBHOOK_STATUS_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_http_webhook_status_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_WEBHOOK_STATUS_H_INCLUDED_ */
