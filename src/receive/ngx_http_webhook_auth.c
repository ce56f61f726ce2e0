
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * Who may push: the token file (read at configuration time, so again on
 * every reload; a line is "token" or "name token"), the Redis password
 * file, and the per-request check of "Authorization: Bearer", of
 * "Authorization: Basic" (the token as typed, or user:password in base64
 * with the token as the password) or of the API key header, in constant
 * time.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ngx_sha1.h>

#include "ngx_http_webhook_auth.h"


#define NGX_HTTP_WEBHOOK_MAX_SENDER  64

/* a sender's name: letters, digits, ".", "_", "-" */
#define ngx_http_webhook_name_char(c)                                         \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')                \
     || ((c) >= '0' && (c) <= '9') || (c) == '.' || (c) == '_' || (c) == '-')


static char *ngx_http_webhook_token_line(ngx_conf_t *cf,
    ngx_str_t *directive, ngx_str_t *file, ngx_str_t *line,
    ngx_http_webhook_token_t *token);
static ngx_int_t ngx_http_webhook_sender(ngx_http_request_t *r,
    ngx_http_webhook_loc_conf_t *wlcf, ngx_str_t *sender);
static ngx_uint_t ngx_http_webhook_named(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_http_webhook_token_t *ngx_http_webhook_basic(ngx_http_request_t *r,
    ngx_array_t *tokens, u_char *p, u_char *end);
static ngx_http_webhook_token_t *ngx_http_webhook_token_match(
    ngx_array_t *tokens, u_char *value, size_t len);


/*
 * The tokens of a file, as digests and names: the file's text is wiped
 * once read, and a file that several locations name is read once, so
 * that each digest is once in memory.
 */

char *
ngx_http_webhook_read_tokens(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_array_t **tokens)
{
    u_char                        *p, *end;
    char                          *rv;
    ngx_str_t                      text, line;
    ngx_uint_t                     i, n;
    ngx_http_webhook_token_t      *token;
    ngx_http_webhook_tokens_t     *read;
    ngx_http_webhook_main_conf_t  *wmcf;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    wmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_webhook_module);
    read = wmcf->token_files.elts;

    for (i = 0; i < wmcf->token_files.nelts; i++) {
        if (read[i].file.len == file->len
            && ngx_strncmp(read[i].file.data, file->data, file->len) == 0)
        {
            *tokens = read[i].tokens;
            return NGX_CONF_OK;
        }
    }

    rv = ngx_http_webhook_read_file(cf, directive, file, &text);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    p = text.data;
    end = p + text.len;

    for (n = 0; p < end; /* void */) {
        p = ngx_http_webhook_next_line(p, end, &line);

        if (line.len && line.data[0] != '#') {
            n++;
        }
    }

    /* only digests are kept, see ngx_http_webhook_token_match(), once */

    *tokens = ngx_array_create(cf->pool, ngx_max(n, 1),
                               sizeof(ngx_http_webhook_token_t));
    if (*tokens == NULL) {
        rv = NGX_CONF_ERROR;
    }

    p = text.data;

    while (p < end && rv == NGX_CONF_OK) {
        p = ngx_http_webhook_next_line(p, end, &line);

        if (line.len == 0 || line.data[0] == '#') {
            continue;
        }

        token = ngx_array_push(*tokens);
        if (token == NULL) {
            rv = NGX_CONF_ERROR;
            break;
        }

        rv = ngx_http_webhook_token_line(cf, directive, file, &line, token);
    }

    ngx_explicit_memzero(text.data, text.len);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" holds no token", directive, file);
        return NGX_CONF_ERROR;
    }

    read = ngx_array_push(&wmcf->token_files);
    if (read == NULL) {
        return NGX_CONF_ERROR;
    }

    read->file = *file;
    read->tokens = *tokens;

    return NGX_CONF_OK;
}


/* "token", or "name token": the name of the sender that holds it */

static char *
ngx_http_webhook_token_line(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file, ngx_str_t *line, ngx_http_webhook_token_t *token)
{
    u_char      *p, *last, *space;
    ngx_str_t    value;
    ngx_sha1_t   sha1;

    last = line->data + line->len;
    token->name.len = 0;
    token->name.data = NULL;
    value = *line;

    for (space = line->data; space < last; space++) {
        if (*space == ' ' || *space == '\t') {
            break;
        }
    }

    if (space < last) {
        for (p = line->data; p < space; p++) {
            if (!ngx_http_webhook_name_char(*p)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%V \"%V\": a sender name holds "
                                   "letters, digits, \".\", \"_\" and "
                                   "\"-\" only", directive, file);
                return NGX_CONF_ERROR;
            }
        }

        /* the name alone: the rest of the line is the token */

        token->name.len = space - line->data;
        token->name.data = ngx_pnalloc(cf->pool, token->name.len);
        if (token->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(token->name.data, line->data, token->name.len);

        while (space < last && (*space == ' ' || *space == '\t')) {
            space++;
        }

        value.data = space;
        value.len = last - space;

        if (ngx_strlchr(value.data, last, ' ')
            || ngx_strlchr(value.data, last, '\t'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%V \"%V\": a line is \"token\" or "
                               "\"name token\", this one has more fields",
                               directive, file);
            return NGX_CONF_ERROR;
        }
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, value.data, value.len);
    ngx_sha1_final(token->digest, &sha1);

    return NGX_CONF_OK;
}


/*
 * NGX_OK, with the sender's name (len 0: none); NGX_DECLINED when no
 * valid token is presented; NGX_HTTP_FORBIDDEN when webhook_sender's value
 * is a named token's; NGX_ERROR.
 */

ngx_int_t
ngx_http_webhook_authorized(ngx_http_request_t *r,
    ngx_http_webhook_loc_conf_t *wlcf, ngx_str_t *sender)
{
    u_char                    *p, *end;
    ngx_table_elt_t           *h;
    ngx_http_webhook_token_t  *token;

    sender->len = 0;

    if (wlcf->tokens == NULL) {
        /* webhook_token_file off */
        return ngx_http_webhook_sender(r, wlcf, sender);
    }

    token = NULL;
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

        token = ngx_http_webhook_token_match(wlcf->tokens, p, end - p);

    } else if (h && h->value.len > sizeof("Basic ") - 1
               && ngx_strncasecmp(h->value.data, (u_char *) "Basic ",
                                  sizeof("Basic ") - 1) == 0)
    {
        p = h->value.data + sizeof("Basic ") - 1;
        end = h->value.data + h->value.len;

        while (p < end && *p == ' ') {
            p++;
        }

        token = ngx_http_webhook_basic(r, wlcf->tokens, p, end);
    }

    if (token == NULL && wlcf->api_key_header.len) {
        h = ngx_http_webhook_find_header(r, &wlcf->api_key_header);
        if (h) {
            token = ngx_http_webhook_token_match(wlcf->tokens, h->value.data,
                                                 h->value.len);
        }
    }

    if (token == NULL) {
        return NGX_DECLINED;
    }

    *sender = token->name;

    return sender->len ? NGX_OK : ngx_http_webhook_sender(r, wlcf, sender);
}


/*
 * webhook_sender, where no named token tells who pushes: the value, with
 * every byte that a sender's name may not hold (the dedupe keys are
 * <queue>:seen:id:<sender>:<id>) written as %XX, and at most 64 bytes.
 * A value of variables (a header) may not take a named token's name, in
 * any case: NGX_HTTP_FORBIDDEN, or the holder of any token that may push
 * here could take that sender's event_ids first.
 */

static ngx_int_t
ngx_http_webhook_sender(ngx_http_request_t *r,
    ngx_http_webhook_loc_conf_t *wlcf, ngx_str_t *sender)
{
    u_char     *p, *last;
    size_t      i;
    ngx_str_t   value;

    static u_char  hex[] = "0123456789ABCDEF";

    if (wlcf->sender == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, wlcf->sender, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    value.len = ngx_min(value.len, NGX_HTTP_WEBHOOK_MAX_SENDER);

    p = ngx_pnalloc(r->pool, 3 * value.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    sender->data = p;

    for (i = 0, last = p; i < value.len; i++) {
        if (ngx_http_webhook_name_char(value.data[i])) {
            *last++ = value.data[i];
            continue;
        }

        *last++ = '%';
        *last++ = hex[value.data[i] >> 4];
        *last++ = hex[value.data[i] & 0xf];
    }

    sender->len = last - p;

    if (wlcf->sender->lengths && ngx_http_webhook_named(r, sender)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "webhook: the sender name \"%V\" of webhook_sender is "
                      "a named token's: refused", sender);
        sender->len = 0;
        return NGX_HTTP_FORBIDDEN;
    }

    return NGX_OK;
}


/* whether a name is the name of a named token, of any token file */

static ngx_uint_t
ngx_http_webhook_named(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t                     i, k;
    ngx_http_webhook_token_t      *token;
    ngx_http_webhook_tokens_t     *file;
    ngx_http_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_get_module_main_conf(r, ngx_http_webhook_module);
    file = wmcf->token_files.elts;

    for (i = 0; i < wmcf->token_files.nelts; i++) {
        token = file[i].tokens->elts;

        for (k = 0; k < file[i].tokens->nelts; k++) {
            if (token[k].name.len == name->len
                && ngx_strncasecmp(token[k].name.data, name->data, name->len)
                   == 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * Odoo's "basic" authentication sends its token field as typed; standard
 * clients send base64 of user:password.  Both are checked, always, so
 * that the time taken does not tell which form matched.
 */

static ngx_http_webhook_token_t *
ngx_http_webhook_basic(ngx_http_request_t *r, ngx_array_t *tokens, u_char *p,
    u_char *end)
{
    u_char                    *colon;
    ngx_str_t                  encoded, decoded, password;
    ngx_http_webhook_token_t  *as_typed, *as_password;

    as_typed = ngx_http_webhook_token_match(tokens, p, end - p);

    encoded.data = p;
    encoded.len = end - p;

    decoded.len = ngx_base64_decoded_length(encoded.len);
    decoded.data = ngx_pnalloc(r->pool, decoded.len + 1);
    if (decoded.data == NULL) {
        return as_typed;
    }

    password.len = 0;
    password.data = NULL;

    if (ngx_decode_base64(&decoded, &encoded) == NGX_OK) {
        colon = ngx_strlchr(decoded.data, decoded.data + decoded.len, ':');

        if (colon) {
            password.data = colon + 1;
            password.len = decoded.data + decoded.len - password.data;
        }
    }

    as_password = ngx_http_webhook_token_match(tokens, password.data,
                                               password.len);

    ngx_explicit_memzero(decoded.data, decoded.len);

    return as_typed ? as_typed : as_password;
}


/*
 * The presented value is hashed once and its digest compared with the
 * digest of every token, each over all of its bytes: the time taken
 * tells neither which token matched, nor how many bytes did, nor the
 * length of any token.
 */

static ngx_http_webhook_token_t *
ngx_http_webhook_token_match(ngx_array_t *tokens, u_char *value, size_t len)
{
    u_char                     diff;
    u_char                     digest[NGX_HTTP_WEBHOOK_DIGEST];
    ngx_uint_t                 i, n, match, found, mask;
    ngx_sha1_t                 sha1;
    ngx_http_webhook_token_t  *token;

    if (len == 0) {
        return NULL;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, value, len);
    ngx_sha1_final(digest, &sha1);

    token = tokens->elts;
    match = 0;
    found = 0;

    for (n = 0; n < tokens->nelts; n++) {
        diff = 0;

        for (i = 0; i < NGX_HTTP_WEBHOOK_DIGEST; i++) {
            diff |= digest[i] ^ token[n].digest[i];
        }

        /* which one matched is chosen without a branch */

        mask = (ngx_uint_t) 0 - (ngx_uint_t) (diff == 0);
        found = (found & ~mask) | (n & mask);
        match |= (diff == 0);
    }

    return match ? &token[found] : NULL;
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


/*
 * webhook_token_file: read where it stands, once, so that every location
 * of its http or server block shares the digests and a bad file is
 * reported at its own line
 */

char *
ngx_http_webhook_token_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_webhook_loc_conf_t  *wlcf = conf;

    ngx_str_t  *value;

    if (wlcf->tokens != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    wlcf->token_file = value[1];

    /* off: no token is checked, nginx's own modules decide who may push */

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        wlcf->tokens = NULL;
        wlcf->tokens_off = 1;
        return NGX_CONF_OK;
    }

    wlcf->tokens_off = 0;

    return ngx_http_webhook_read_tokens(cf, &cmd->name, &wlcf->token_file,
                                        &wlcf->tokens);
}
