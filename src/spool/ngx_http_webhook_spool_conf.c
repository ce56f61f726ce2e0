
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool's configuration (the webhook_spool directive) and the state
 * found on its disk when nginx starts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "ngx_http_webhook_spool.h"
#include "stats/ngx_http_webhook_stats.h"


#if (NGX_THREADS)
static char *ngx_http_webhook_spool_path(ngx_conf_t *cf,
    ngx_http_webhook_spool_conf_t *scf, ngx_str_t *value, ngx_uint_t n);
#endif
static void ngx_http_webhook_spool_scan(ngx_http_webhook_spool_conf_t *scf,
    ngx_dir_t *dir, ngx_log_t *log);


/*
 * webhook_spool <path> [max_size=<size>] [thread_pool=<name>];  (http)
 * webhook_spool off;                                 (any level: opt out)
 */

char *
ngx_http_webhook_spool_parse(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_webhook_spool_conf_t *scf, ngx_flag_t *on)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        if (*on != NGX_CONF_UNSET) {
            return "is duplicate";
        }

        *on = 0;
        return NGX_CONF_OK;
    }

    if (cf->cmd_type != NGX_HTTP_MAIN_CONF) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes a path at the http level only, and "
                           "\"off\" elsewhere", &cmd->name);
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)

    return ngx_http_webhook_spool_path(cf, scf, value, cf->args->nelts);

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" needs nginx and the module built with thread "
                       "support (--with-threads): the spool's writes and "
                       "syncs run in a thread pool", &cmd->name);
    return NGX_CONF_ERROR;

#endif
}


#if (NGX_THREADS)

/* the path, its max_size and the thread pool of its writes and syncs */

static char *
ngx_http_webhook_spool_path(ngx_conf_t *cf, ngx_http_webhook_spool_conf_t *scf,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_str_t   name;
    ngx_uint_t  i;

    if (scf->path) {
        return "is duplicate";
    }

    scf->path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (scf->path == NULL) {
        return NGX_CONF_ERROR;
    }

    scf->path->name = value[1];

    while (scf->path->name.len > 1
           && scf->path->name.data[scf->path->name.len - 1]
              == '/')
    {
        scf->path->name.len--;
    }

    if (scf->path->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"webhook_spool\" needs a directory, or off");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &scf->path->name, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* <path>/<a file name of at most 255 bytes> */

    if (scf->path->name.len + 1 + 255 >= NGX_MAX_PATH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the spool's path is too long (%uz bytes, at most "
                           "%d)", scf->path->name.len,
                           NGX_MAX_PATH - 1 - 255 - 1);
        return NGX_CONF_ERROR;
    }

    scf->path->conf_file = cf->conf_file->file.name.data;
    scf->path->line = cf->conf_file->line;

    scf->max_size = 1024 * 1024 * 1024;
    ngx_str_set(&name, "default");

    for (i = 2; i < n; i++) {

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            value[i].data += 9;
            value[i].len -= 9;

            scf->max_size = ngx_parse_offset(&value[i]);
            if (scf->max_size <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "thread_pool=", 12) == 0) {
            name.data = value[i].data + 12;
            name.len = value[i].len - 12;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (ngx_add_path(cf, &scf->path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* "default" is made by nginx when no thread_pool directive names it */

    scf->pool = ngx_thread_pool_add(cf, &name);
    if (scf->pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

}

#endif


/* a queue's name must make file names: at most 255 bytes */

ngx_int_t
ngx_http_webhook_spool_check(ngx_conf_t *cf,
    ngx_http_webhook_spool_conf_t *scf)
{
    u_char      name[NGX_HTTP_WEBHOOK_SPOOL_NAME];
    ngx_str_t  *queue;
    ngx_uint_t  i;

    if (scf->path == NULL) {
        return NGX_OK;
    }

    queue = scf->queues->names.elts;

    for (i = 0; i < scf->queues->names.nelts; i++) {
        if (ngx_http_webhook_spool_escape(name, &queue[i]) - name
            > 255 - (ngx_int_t) sizeof(".0123456789abcdef.4294967295.seg"))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the name of queue \"%V\" is too long for "
                               "the spool's file names", &queue[i]);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A receive location whose bodies may be larger than a spool record: the
 * spool refuses (413) such an event when Redis cannot take it, so nginx -t
 * says so.  The margin is what an envelope adds to a body.
 */

void
ngx_http_webhook_spool_check_body(ngx_conf_t *cf,
    ngx_http_webhook_spool_conf_t *scf, off_t body)
{
    off_t  max;

    max = NGX_HTTP_WEBHOOK_SPOOL_EVENT_MAX;

    if (scf->path && (body == 0 || body > max)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "client_max_body_size %O%s of a receive location "
                           "is more than the spool can keep: the spool keeps "
                           "events up to %Om, a larger one is refused with "
                           "413 while Redis cannot take it",
                           (body % (1024 * 1024)) ? body
                                                  : body / (1024 * 1024),
                           (body % (1024 * 1024)) ? "" : "m",
                           max / (1024 * 1024));
    }
}


/*
 * When the counters' zone is new (nginx started, not reloaded): the
 * sequence numbers go on from the segments on disk (and from the clock,
 * so they grow through restarts), their bytes are counted, and the queues
 * hold new events behind them until they are drained.
 */

ngx_int_t
ngx_http_webhook_spool_recover(void *data, ngx_log_t *log)
{
    ngx_http_webhook_spool_conf_t *scf = data;

    ngx_dir_t  dir;

    scf->queues->stats->spool_seq = ngx_http_webhook_now_usec();

    if (scf->path == NULL) {
        return NGX_OK;
    }

    if (ngx_open_dir(&scf->path->name, &dir) == NGX_ERROR) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "webhook: " ngx_open_dir_n " \"%V\" failed",
                          &scf->path->name);
        }

        return NGX_OK;
    }

    ngx_http_webhook_spool_scan(scf, &dir, log);

    (void) ngx_close_dir(&dir);

    return NGX_OK;
}


static void
ngx_http_webhook_spool_scan(ngx_http_webhook_spool_conf_t *scf,
    ngx_dir_t *dir, ngx_log_t *log)
{
    u_char                        path[NGX_MAX_PATH], qname[NGX_MAX_PATH];
    uint64_t                       seq;
    ngx_str_t                      queue;
    ngx_uint_t                     segments;
    ngx_file_info_t                fi;
    ngx_http_webhook_stats_t      *stats;
    ngx_http_webhook_counters_t   *cnt;

    stats = scf->queues->stats;
    segments = 0;

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(dir) == NGX_ERROR) {
            break;
        }

        queue.data = qname;

        if (ngx_http_webhook_spool_parse_name(ngx_de_name(dir),
                                              ngx_de_namelen(dir),
                                              &queue, &seq)
            != NGX_OK)
        {
            continue;
        }

        ngx_snprintf(path, sizeof(path), "%V/%s%Z",
                     &scf->path->name, ngx_de_name(dir));

        if (ngx_file_info(path, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
            continue;
        }

        segments++;

        /* the clock makes the numbers; a clock set back does not */

        if (seq + (1 << 24) > stats->spool_seq) {
            stats->spool_seq = seq + (1 << 24);
        }

        stats->spool_bytes += ngx_file_size(&fi);

        cnt = ngx_http_webhook_counters_of(scf->queues, &queue);
        if (cnt) {
            cnt->spool_bytes += ngx_file_size(&fi);
        }
    }

    if (segments) {
        stats->spool_recovering = 1;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "webhook: the spool \"%V\" holds %ui segments "
                      "(%O bytes): they are drained first",
                      &scf->path->name, segments,
                      (off_t) stats->spool_bytes);
    }
}
