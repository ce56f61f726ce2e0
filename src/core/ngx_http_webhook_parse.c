
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * What the directives of every subsystem parse alike: values with "off",
 * bounds or names, timeouts, and files of secrets (read whole, line by
 * line, the buffer zeroed once read).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_core.h"


static ngx_int_t ngx_http_webhook_secret_copy(ngx_pool_t *pool,
    ngx_str_t *s);


/* like ngx_conf_set_enum_slot(), with a message that names the choices */

char *
ngx_http_webhook_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *last;
    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;
    u_char            names[128];

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len != 0; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    last = names;

    for (i = 0; e[i].name.len != 0; i++) {
        last = ngx_slprintf(last, names + sizeof(names), "%s\"%V\"",
                            i ? ", " : "", &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" directive, "
                       "it must be one of %*s",
                       &value[1], &cmd->name, last - names, names);

    return NGX_CONF_ERROR;
}


char *
ngx_http_webhook_set_sec_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    time_t     *sp;
    ngx_str_t  *value;

    sp = (time_t *) (p + cmd->offset);

    if (*sp != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *sp = 0;
        return NGX_CONF_OK;
    }

    *sp = ngx_parse_time(&value[1], 1);

    if (*sp == (time_t) NGX_ERROR || *sp == 0) {
        return "must be a time of at least 1s, or \"off\"";
    }

    return NGX_CONF_OK;
}


char *
ngx_http_webhook_set_num_or_off(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_int_t  *np;
    ngx_str_t  *value;

    np = (ngx_int_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *np = 0;
        return NGX_CONF_OK;
    }

    *np = ngx_atoi(value[1].data, value[1].len);

    if (*np == NGX_ERROR || *np == 0) {
        return "must be a positive number, or \"off\"";
    }

    return NGX_CONF_OK;
}


/* ngx_conf_check_num_bounds(), with the directive's name in its message */

char *
ngx_http_webhook_num_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    ngx_str_t  *value;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" must be from %i to %i, not \"%V\"",
                       &value[0], bounds->low, bounds->high, &value[1]);

    return NGX_CONF_ERROR;
}


/* like ngx_conf_set_msec_slot(); 0 would fail every request or connect */

char *
ngx_http_webhook_set_timeout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char        *rv;
    ngx_msec_t  *msp;

    rv = ngx_conf_set_msec_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    msp = (ngx_msec_t *) (p + cmd->offset);

    if (*msp == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be at least 1ms: with 0, every "
                           "wait on Redis would time out at once",
                           &cmd->name);
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
        ngx_explicit_memzero(text.data, text.len);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": \"%V\" is empty",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    space = ngx_strlchr(line.data, line.data + line.len, ' ');

    user->len = 0;
    password->len = 0;

    if (space == NULL) {
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

    /*
     * the user and the password, null-terminated, are all that is kept:
     * the file's text is zeroed
     */

    rv = NGX_CONF_OK;

    if (password->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" holds no password",
                           directive, file);
        rv = NGX_CONF_ERROR;

    } else if (ngx_http_webhook_secret_copy(cf->pool, user) != NGX_OK
               || ngx_http_webhook_secret_copy(cf->pool, password) != NGX_OK)
    {
        rv = NGX_CONF_ERROR;
    }

    ngx_explicit_memzero(text.data, text.len);

    return rv;
}


static ngx_int_t
ngx_http_webhook_secret_copy(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (s->len) {
        ngx_memcpy(p, s->data, s->len);
    }

    p[s->len] = '\0';
    s->data = p;

    return NGX_OK;
}


char *
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

u_char *
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
