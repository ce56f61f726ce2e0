
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * TLS to Redis, as proxy_ssl does it: the context made at configuration
 * time (protocols, trusted certificates, a client certificate for mutual
 * TLS), and per connection the handshake with SNI, then the checks of
 * the server's certificate and name.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"


#if (NGX_SSL)

/* the server's certificate, intermediates and root */
#define NGX_HTTP_WEBHOOK_SSL_DEPTH  9


static void ngx_http_webhook_redis_ssl_handshaked(ngx_connection_t *c);
static ngx_int_t ngx_http_webhook_redis_ssl_verify(
    ngx_http_webhook_redis_t *rd, ngx_connection_t *c);
static ngx_int_t ngx_http_webhook_redis_ssl_check_name(ngx_connection_t *c,
    ngx_str_t *name);
static ngx_uint_t ngx_http_webhook_redis_ssl_is_addr(ngx_str_t *name);


ngx_conf_bitmask_t  ngx_http_webhook_redis_ssl_protocols[] = {
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};


/* at the end of the http block: the settings checked, the context made */

char *
ngx_http_webhook_redis_ssl_conf(ngx_conf_t *cf,
    ngx_http_webhook_redis_conf_t *rcf)
{
    u_char              *p;
    ngx_ssl_t           *ssl;
    ngx_pool_cleanup_t  *cln;

    ngx_conf_init_value(rcf->ssl, 0);
    ngx_conf_init_value(rcf->ssl_verify, 1);
    if (rcf->ssl_protocols == 0) {
        rcf->ssl_protocols = NGX_CONF_BITMASK_SET
                              |NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3;
    }

    if (!rcf->ssl) {
        return NGX_CONF_OK;
    }

    if (rcf->ssl_verify && rcf->ssl_trusted_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_ssl_verify\" is on and needs "
                           "\"webhook_redis_ssl_trusted_certificate\" (the "
                           "CA certificates to check Redis's certificate "
                           "with)");
        return NGX_CONF_ERROR;
    }

    if (rcf->ssl_certificate.len && rcf->ssl_certificate_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"webhook_redis_ssl_certificate_key\" for "
                           "\"webhook_redis_ssl_certificate\" \"%V\"",
                           &rcf->ssl_certificate);
        return NGX_CONF_ERROR;
    }

    if (rcf->ssl_certificate_key.len && rcf->ssl_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_redis_ssl_certificate_key\" needs "
                           "\"webhook_redis_ssl_certificate\"");
        return NGX_CONF_ERROR;
    }

    /* the name for SNI and the certificate: as written in webhook_redis */

    if (rcf->ssl_name.len == 0) {
        rcf->ssl_name = rcf->host_name;
    }

    if (rcf->ssl_name.len && rcf->ssl_name.data[0] == '[') {
        /* [::1]: the address in the certificate has no brackets */
        rcf->ssl_name.data++;
        rcf->ssl_name.len -= 2;
    }

    p = ngx_pnalloc(cf->pool, rcf->ssl_name.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, rcf->ssl_name.data, rcf->ssl_name.len);
    p[rcf->ssl_name.len] = '\0';
    rcf->ssl_name.data = p;

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, rcf->ssl_protocols, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if ((rcf->ssl_certificate.len
         && ngx_ssl_certificate(cf, ssl, &rcf->ssl_certificate,
                                &rcf->ssl_certificate_key, NULL)
            != NGX_OK)
        || (rcf->ssl_trusted_certificate.len
            && ngx_ssl_trusted_certificate(cf, ssl,
                                           &rcf->ssl_trusted_certificate,
                                           NGX_HTTP_WEBHOOK_SSL_DEPTH)
               != NGX_OK))
    {
        ngx_ssl_cleanup_ctx(ssl);
        cln->handler = NULL;
        return NGX_CONF_ERROR;
    }

    if (ngx_test_config) {
        /* checked; nginx -t exits without destroying its pools */
        ngx_ssl_cleanup_ctx(ssl);
        cln->handler = NULL;
        return NGX_CONF_OK;
    }

    rcf->ssl_ctx = ssl;

    return NGX_CONF_OK;
}


/* connected: the TLS handshake starts */

ngx_int_t
ngx_http_webhook_redis_ssl_init(ngx_http_webhook_redis_t *rd)
{
    ngx_int_t                      rc;
    ngx_str_t                     *name;
    ngx_connection_t              *c;
    ngx_http_webhook_redis_conf_t  *rcf;

    c = rd->connection;
    rcf = rd->rcf;

    if (ngx_ssl_create_connection(rcf->ssl_ctx, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * without webhook_redis_ssl_name: the host of the connection's address
     * (a sentinel's, the primary it named, a Cluster node's)
     */
    name = rcf->ssl_name.len ? &rcf->ssl_name : &rd->host;

    /* no SNI for an address (RFC 6066) */

    if (name->len
        && !ngx_http_webhook_redis_ssl_is_addr(name)
        && SSL_set_tlsext_host_name(c->ssl->connection, (char *) name->data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis TLS: SSL_set_tlsext_host_name(\"%V\") "
                      "failed", name);
        return NGX_ERROR;
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_webhook_redis_ssl_handshaked;
        return NGX_OK;
    }

    ngx_http_webhook_redis_ssl_handshaked(c);

    return NGX_OK;
}


static void
ngx_http_webhook_redis_ssl_handshaked(ngx_connection_t *c)
{
    ngx_http_webhook_redis_t  *rd = c->data;

    if (rd->state != NGX_HTTP_WEBHOOK_REDIS_TLS) {
        return;
    }

    if (!c->ssl->handshaked) {
        /* OpenSSL's reason is in the line nginx logged before */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: %s TLS handshake with %V failed",
                      rd->setup->role, &rd->addr_text);
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    if (rd->rcf->ssl_verify
        && ngx_http_webhook_redis_ssl_verify(rd, c) != NGX_OK)
    {
        ngx_http_webhook_redis_close(rd, 0);
        return;
    }

    ngx_http_webhook_redis_start(rd);
}


static ngx_int_t
ngx_http_webhook_redis_ssl_verify(ngx_http_webhook_redis_t *rd,
    ngx_connection_t *c)
{
    long        rc;
    ngx_str_t  *name;

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: %s TLS certificate of %V does not "
                      "verify: (%l:%s)", rd->setup->role, &rd->addr_text, rc,
                      X509_verify_cert_error_string(rc));
        return NGX_ERROR;
    }

    name = rd->rcf->ssl_name.len ? &rd->rcf->ssl_name : &rd->host;

    if (ngx_http_webhook_redis_ssl_check_name(c, name) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: %s TLS certificate of %V does not match "
                      "the name \"%V\"", rd->setup->role, &rd->addr_text,
                      name);
        return NGX_ERROR;
    }

    return NGX_OK;
}



/*
 * A host name is checked by nginx (the DNS names of the certificate); an
 * address, as "webhook_redis 10.0.0.5:6380" has it, against the IP
 * addresses of the certificate
 */

static ngx_int_t
ngx_http_webhook_redis_ssl_check_name(ngx_connection_t *c, ngx_str_t *name)
{
    int    rc;
    X509  *cert;

    if (!ngx_http_webhook_redis_ssl_is_addr(name)) {
        return ngx_ssl_check_host(c, name);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    /* null-terminated at configuration time */
    rc = X509_check_ip_asc(cert, (char *) name->data, 0);

    X509_free(cert);

    return rc == 1 ? NGX_OK : NGX_ERROR;
}

static ngx_uint_t
ngx_http_webhook_redis_ssl_is_addr(ngx_str_t *name)
{
#if (NGX_HAVE_INET6)
    u_char  buf[16];

    if (ngx_inet6_addr(name->data, name->len, buf) == NGX_OK) {
        return 1;
    }
#endif

    return ngx_inet_addr(name->data, name->len) != INADDR_NONE;
}

#endif
