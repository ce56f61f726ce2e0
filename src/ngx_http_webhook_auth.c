
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Who may push: the token file (read at configuration time, so again on
 * every reload), the Redis password file, and the per-request check of
 * "Authorization: Bearer" or of the API key header, in constant time.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ngx_sha1.h>

#include "ngx_http_webhook_auth.h"


#define NGX_HTTP_WEBHOOK_MAX_FILE  65536
#define NGX_HTTP_WEBHOOK_DIGEST    20


static char *ngx_http_webhook_read_file(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *text);
static u_char *ngx_http_webhook_next_line(u_char *p, u_char *end,
    ngx_str_t *line);
static ngx_uint_t ngx_http_webhook_token_match(ngx_array_t *tokens,
    u_char *value, size_t len);


char *
ngx_http_webhook_read_tokens(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_array_t **tokens)
{
    u_char     *p, *end;
    char       *rv;
    u_char     *digest;
    ngx_str_t   text, line;
    ngx_sha1_t  sha1;

    rv = ngx_http_webhook_read_file(cf, directive, file, &text);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* only digests are kept: see ngx_http_webhook_token_match() */

    *tokens = ngx_array_create(cf->pool, 4, NGX_HTTP_WEBHOOK_DIGEST);
    if (*tokens == NULL) {
        return NGX_CONF_ERROR;
    }

    p = text.data;
    end = p + text.len;

    while (p < end) {
        p = ngx_http_webhook_next_line(p, end, &line);

        if (line.len == 0 || line.data[0] == '#') {
            continue;
        }

        if (ngx_strlchr(line.data, line.data + line.len, ' ')
            || ngx_strlchr(line.data, line.data + line.len, '\t'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%V \"%V\": a line holds white space "
                               "inside a token", directive, file);
            return NGX_CONF_ERROR;
        }

        digest = ngx_array_push(*tokens);
        if (digest == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, line.data, line.len);
        ngx_sha1_final(digest, &sha1);
    }

    ngx_explicit_memzero(text.data, text.len);

    if ((*tokens)->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" holds no token", directive, file);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* "password" or "user password" (Redis 6 ACL) on the first line */

char *
ngx_http_webhook_read_secret(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *user, ngx_str_t *password)
{
    u_char     *p, *end, *space;
    char       *rv;
    ngx_str_t   text, line;

    rv = ngx_http_webhook_read_file(cf, directive, file, &text);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    p = text.data;
    end = p + text.len;
    line.len = 0;

    while (p < end && line.len == 0) {
        p = ngx_http_webhook_next_line(p, end, &line);
    }

    if (line.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\" is empty",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    space = ngx_strlchr(line.data, line.data + line.len, ' ');

    if (space == NULL) {
        user->len = 0;
        *password = line;

    } else {
        user->data = line.data;
        user->len = space - line.data;

        while (space < line.data + line.len && *space == ' ') {
            space++;
        }

        password->data = space;
        password->len = line.data + line.len - space;
    }

    if (password->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" holds no password",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    /* hiredis takes C strings for the handshake: terminate them */

    user->data = (u_char *) ngx_pstrdup(cf->pool, user);
    password->data = (u_char *) ngx_pstrdup(cf->pool, password);
    if (user->data == NULL || password->data == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_webhook_read_file(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *text)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_open_file_n " \"%V\" failed",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_fd_info_n " \"%V\" failed",
                           directive, file);
        goto failed;
    }

    if (ngx_file_access(&fi) & S_IROTH) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"%V\": \"%V\" is readable by every user: "
                           "it holds secrets, make it readable by root "
                           "only (chmod 600)", directive, file);
    }

    if (ngx_file_size(&fi) > NGX_HTTP_WEBHOOK_MAX_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" is larger than %d bytes",
                           directive, file, NGX_HTTP_WEBHOOK_MAX_FILE);
        goto failed;
    }

    text->len = (size_t) ngx_file_size(&fi);
    text->data = ngx_pnalloc(cf->pool, text->len + 1);
    if (text->data == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, text->data, text->len);

    if (n == -1 || (size_t) n != text->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_read_fd_n " \"%V\" failed",
                           directive, file);
        goto failed;
    }

    ngx_close_file(fd);

    return NGX_CONF_OK;

failed:

    ngx_close_file(fd);

    return NGX_CONF_ERROR;
}


/* the next line, trimmed of surrounding white space */

static u_char *
ngx_http_webhook_next_line(u_char *p, u_char *end, ngx_str_t *line)
{
    u_char  *last;

    last = ngx_strlchr(p, end, LF);
    if (last == NULL) {
        last = end;
    }

    line->data = p;
    line->len = last - p;

    while (line->len && (line->data[0] == ' ' || line->data[0] == '\t')) {
        line->data++;
        line->len--;
    }

    while (line->len && (line->data[line->len - 1] == ' '
                         || line->data[line->len - 1] == '\t'
                         || line->data[line->len - 1] == CR))
    {
        line->len--;
    }

    return last < end ? last + 1 : end;
}


ngx_int_t
ngx_http_webhook_authorized(ngx_http_request_t *r,
    ngx_http_webhook_loc_conf_t *wlcf)
{
    u_char           *p, *end;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h && h->value.len > sizeof("Bearer ") - 1
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) == 0)
    {
        p = h->value.data + sizeof("Bearer ") - 1;
        end = h->value.data + h->value.len;

        while (p < end && *p == ' ') {
            p++;
        }

        if (ngx_http_webhook_token_match(wlcf->tokens, p, end - p)) {
            return NGX_OK;
        }
    }

    if (wlcf->api_key_header.len) {
        h = ngx_http_webhook_find_header(r, &wlcf->api_key_header);

        if (h && ngx_http_webhook_token_match(wlcf->tokens, h->value.data,
                                              h->value.len))
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * The presented value is hashed once and its digest compared with the
 * digest of every token, each over all of its bytes: the time taken
 * tells neither which token matched, nor how many bytes did, nor the
 * length of any token.
 */

static ngx_uint_t
ngx_http_webhook_token_match(ngx_array_t *tokens, u_char *value, size_t len)
{
    u_char      *token, diff;
    u_char       digest[NGX_HTTP_WEBHOOK_DIGEST];
    ngx_uint_t   i, n, match;
    ngx_sha1_t   sha1;

    if (len == 0) {
        return 0;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, value, len);
    ngx_sha1_final(digest, &sha1);

    token = tokens->elts;
    match = 0;

    for (n = 0; n < tokens->nelts; n++) {
        diff = 0;

        for (i = 0; i < NGX_HTTP_WEBHOOK_DIGEST; i++) {
            diff |= digest[i] ^ token[n * NGX_HTTP_WEBHOOK_DIGEST + i];
        }

        match |= (diff == 0);
    }

    return match;
}


ngx_table_elt_t *
ngx_http_webhook_find_header(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}
