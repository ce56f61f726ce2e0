
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * A spool writer's thread half, run in the thread pool: the segment file
 * appended to and fdatasync'ed, or a new one made, locked and named.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/file.h>

#include "ngx_http_webhook_spool.h"
#include "ngx_http_webhook_spool_writer.h"


#if (NGX_THREADS)


static ngx_int_t ngx_http_webhook_spool_create(ngx_http_webhook_writer_t *w);
static ngx_fd_t ngx_http_webhook_spool_open_locked(
    ngx_http_webhook_writer_t *w);


/* in a thread of the pool: the only place the segment is written */

void
ngx_http_webhook_segment_write(void *data, ngx_log_t *log)
{
    ngx_http_webhook_writer_t *w = data;

    u_char   *p;
    size_t    left;
    ssize_t   n;

    w->err = 0;
    w->failed = NULL;

    if (w->create && ngx_http_webhook_spool_create(w) != NGX_OK) {
        goto failed;
    }

    p = w->flight->data;
    left = w->flight->len;

    while (left) {
        n = write(w->fd, p, left);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            w->err = ngx_errno;
            w->failed = "write()";

            /* no torn record before the next ones */
            (void) ftruncate(w->fd, w->size);
            goto failed;
        }

        p += n;
        left -= n;
    }

    if (fdatasync(w->fd) == -1) {
        w->err = ngx_errno;
        w->failed = "fdatasync()";
        (void) ftruncate(w->fd, w->size);
        goto failed;
    }

    w->size += w->flight->len;

    return;

failed:

    ngx_log_error(NGX_LOG_ALERT, log, w->err,
                  "webhook: the spool's %s of \"%s\" failed", w->failed,
                  w->name);
}


/*
 * The new segment's file, locked.  Its lock, held while it may grow,
 * tells the drainer when it is done, so it is made as *.new, locked, and
 * only then linked to its *.seg name: a drainer that locks it first takes
 * it for done (the writer's flock() then fails).
 */

static ngx_fd_t
ngx_http_webhook_spool_open_locked(ngx_http_webhook_writer_t *w)
{
    u_char    tmp[NGX_MAX_PATH];
    size_t    len;
    ngx_fd_t  fd;

    len = ngx_strlen(w->name) - (sizeof(".seg") - 1);
    ngx_memcpy(tmp, w->name, len);
    ngx_memcpy(tmp + len, ".new", sizeof(".new"));

    /* a crash may have left one: never a segment's only name */

    (void) unlink((char *) tmp);

    fd = open((char *) tmp, O_WRONLY|O_CREAT|O_EXCL|O_APPEND|O_CLOEXEC,
              0600);
    if (fd == -1) {
        w->err = ngx_errno;
        w->failed = "open()";
        return NGX_INVALID_FILE;
    }

    if (flock(fd, LOCK_EX|LOCK_NB) == -1) {
        w->failed = "flock()";
        goto failed;
    }

    /* link(), not rename(): an existing segment is never replaced */

    if (link((char *) tmp, (char *) w->name) == -1) {
        w->failed = "link()";
        goto failed;
    }

    (void) unlink((char *) tmp);

    return fd;

failed:

    w->err = ngx_errno;
    (void) close(fd);
    (void) unlink((char *) tmp);

    return NGX_INVALID_FILE;
}


/* a new segment (the old one is closed), locked, its directory synced */

static ngx_int_t
ngx_http_webhook_spool_create(ngx_http_webhook_writer_t *w)
{
    u_char    *slash;
    ngx_fd_t   fd, dir;

    if (w->fd != NGX_INVALID_FILE) {
        (void) close(w->fd);
        w->fd = NGX_INVALID_FILE;
    }

    fd = ngx_http_webhook_spool_open_locked(w);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    slash = (u_char *) strrchr((char *) w->name, '/');
    *slash = '\0';

    dir = open((char *) w->name, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
    *slash = '/';

    if (dir == -1 || fsync(dir) == -1) {
        w->err = ngx_errno;
        w->failed = "fsync() of the directory";
        if (dir != -1) {
            (void) close(dir);
        }
        (void) close(fd);
        (void) unlink((char *) w->name);
        return NGX_ERROR;
    }

    (void) close(dir);

    w->fd = fd;
    w->size = 0;

    return NGX_OK;
}


#endif /* NGX_THREADS */
