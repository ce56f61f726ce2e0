
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Redis Cluster's keyslot of a key (ngx_http_webhook_keyslot.c): pure,
 * built into the unit tests as well.
 */


#ifndef _NGX_HTTP_WEBHOOK_KEYSLOT_H_INCLUDED_
#define _NGX_HTTP_WEBHOOK_KEYSLOT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_WEBHOOK_SLOTS_ALL       16384


/* CRC16 of the key's hash tag (of the whole key without one), mod 16384 */
ngx_uint_t ngx_http_webhook_keyslot(u_char *key, size_t len);
/* the hash tag of a key, NULL without one */
u_char *ngx_http_webhook_hash_tag(u_char *key, size_t len, size_t *taglen);


#endif /* _NGX_HTTP_WEBHOOK_KEYSLOT_H_INCLUDED_ */
