
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool's drainer, its reading half, in a thread of the pool: the lock
 * of the directory, the segments listed and read, the next batch merged
 * by sequence number, the removal of drained segments and the quarantine
 * of records Redis refuses for good.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/file.h>

#include "ngx_http_webhook_spool_drain.h"
#include "ngx_http_webhook_stats.h"


#if (NGX_THREADS)


static ngx_int_t ngx_http_webhook_drain_lock(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_list(ngx_http_webhook_drain_t *d,
    ngx_log_t *log);
static void ngx_http_webhook_drain_fill(ngx_http_webhook_segment_t *s);
static void ngx_http_webhook_drain_remove(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_quarantine(ngx_http_webhook_drain_t *d);
static uint64_t ngx_http_webhook_drain_bound(ngx_http_webhook_segment_t *s);
static void ngx_http_webhook_drain_batch(ngx_http_webhook_drain_t *d,
    uint64_t limit);
static ngx_int_t ngx_http_webhook_drain_head(ngx_http_webhook_segment_t *s,
    uint64_t limit, ngx_http_webhook_record_t *rec, size_t *used);


/* in a thread of the pool */

void
ngx_http_webhook_drain_read(void *data, ngx_log_t *log)
{
    ngx_http_webhook_drain_t *d = data;

    ngx_uint_t  i;
    uint64_t    limit;

    d->n = 0;
    d->left = 0;

    if (ngx_http_webhook_drain_lock(d) != NGX_OK) {
        return;
    }

    if (d->poison.len) {
        ngx_http_webhook_drain_quarantine(d);
    }

    ngx_http_webhook_drain_remove(d);

    /* records numbered before this may be taken: any event answered 200
     * before a later one began is on disk by now, and merges before it */

    limit = d->wmcf->stats->spool_seq;

    ngx_http_webhook_drain_list(d, log);

    for (i = 0; i < d->nsegs; i++) {
        ngx_http_webhook_drain_fill(d->segs[i]);
    }

    ngx_http_webhook_drain_batch(d, limit);
}


static ngx_int_t
ngx_http_webhook_drain_lock(ngx_http_webhook_drain_t *d)
{
    if (d->held) {
        return NGX_OK;
    }

    if (d->lock == NGX_INVALID_FILE) {
        d->lock = open((char *) d->lock_name, O_RDWR|O_CREAT|O_CLOEXEC, 0600);
        if (d->lock == NGX_INVALID_FILE) {
            return NGX_ERROR;
        }
    }

    if (flock(d->lock, LOCK_EX|LOCK_NB) == -1) {
        return NGX_ERROR;
    }

    d->held = 1;

    return NGX_OK;
}


/* segments not known yet are opened, in no order: the merge orders */

static void
ngx_http_webhook_drain_list(ngx_http_webhook_drain_t *d, ngx_log_t *log)
{
    u_char                      *name, qname[NGX_MAX_PATH];
    size_t                       len;
    uint64_t                     seq;
    ngx_str_t                    queue;
    ngx_uint_t                   i;
    ngx_dir_t                    dir;
    ngx_http_webhook_segment_t  *s;

    if (ngx_open_dir(&d->wmcf->spool_path->name, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "webhook: " ngx_open_dir_n " \"%V\" failed",
                      &d->wmcf->spool_path->name);
        return;
    }

    while (d->nsegs < NGX_HTTP_WEBHOOK_DRAIN_SEGMENTS) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            break;
        }

        name = ngx_de_name(&dir);
        len = ngx_de_namelen(&dir);
        queue.data = qname;

        if (len + d->wmcf->spool_path->name.len + 2 > NGX_MAX_PATH
            || ngx_http_webhook_spool_parse_name(name, len, &queue, &seq)
               != NGX_OK)
        {
            continue;
        }

        for (i = 0; i < d->nsegs; i++) {
            if (ngx_strcmp(d->segs[i]->name
                           + d->wmcf->spool_path->name.len + 1, name) == 0)
            {
                break;
            }
        }

        if (i < d->nsegs) {
            continue;
        }

        s = ngx_calloc(sizeof(ngx_http_webhook_segment_t), d->log);
        if (s == NULL) {
            break;
        }

        (void) ngx_snprintf(s->name, sizeof(s->name), "%V/%s%Z",
                            &d->wmcf->spool_path->name, name);
        ngx_memcpy(s->qname, queue.data, queue.len);
        s->queue.data = s->qname;
        s->queue.len = queue.len;

        s->fd = open((char *) s->name, O_RDONLY|O_CLOEXEC);
        s->buf = ngx_alloc(NGX_HTTP_WEBHOOK_DRAIN_BUF, d->log);

        if (s->fd == -1 || s->buf == NULL) {
            if (s->fd != -1) {
                (void) close(s->fd);
            }
            ngx_free(s->buf);
            ngx_free(s);
            continue;
        }

        s->size = NGX_HTTP_WEBHOOK_DRAIN_BUF;
        d->segs[d->nsegs++] = s;
    }

    (void) ngx_close_dir(&dir);
}


/*
 * More of a segment into its buffer.  Whether its writer is done is
 * asked first (its lock is free), so that what is read after is all.
 */

static void
ngx_http_webhook_drain_fill(ngx_http_webhook_segment_t *s)
{
    ssize_t  n;

    if (!s->sealed && flock(s->fd, LOCK_EX|LOCK_NB) == 0) {
        s->sealed = 1;
    }

    if (s->pos == s->len && s->pos) {
        s->buf_off += s->len;
        s->len = 0;
        s->pos = 0;

    } else if (s->pos > s->size / 2 || (s->pos && s->len == s->size)) {

        /* room for the rest of a record cut at the buffer's end too */

        ngx_memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->buf_off += s->pos;
        s->len -= s->pos;
        s->pos = 0;
    }

    s->next = s->pos;
    s->eof = 0;

    while (s->len < s->size) {
        n = pread(s->fd, s->buf + s->len, s->size - s->len,
                  s->buf_off + s->len);

        if (n <= 0) {
            s->eof = 1;
            break;
        }

        s->len += n;
    }
}


/*
 * Segments done (complete, every record acknowledged) a few seconds ago
 * are removed, then the directory synced: Redis's own persistence
 * (appendfsync everysec) has the events by then.
 */

static void
ngx_http_webhook_drain_remove(ngx_http_webhook_drain_t *d)
{
    ngx_fd_t                      dir;
    ngx_uint_t                    i, removed;
    ngx_msec_t                    now;
    ngx_atomic_int_t              size;
    ngx_http_webhook_segment_t   *s;
    ngx_http_webhook_counters_t  *cnt;

    now = ngx_current_msec;
    removed = 0;

    for (i = 0; i < d->nsegs; /* void */) {
        s = d->segs[i];

        if (s->done_at == 0 || now - s->done_at < NGX_HTTP_WEBHOOK_DRAIN_KEEP)
        {
            i++;
            continue;
        }

        if (unlink((char *) s->name) == -1 && ngx_errno != NGX_ENOENT) {
            i++;
            continue;
        }

        removed++;

        size = s->buf_off + s->len;
        (void) ngx_atomic_fetch_add(&d->wmcf->stats->spool_bytes, -size);

        cnt = ngx_http_webhook_spool_counters(d->wmcf, &s->queue);
        if (cnt) {
            (void) ngx_atomic_fetch_add(&cnt->spool_bytes, -size);
        }

        (void) close(s->fd);
        ngx_free(s->buf);
        ngx_free(s);

        d->segs[i] = d->segs[--d->nsegs];
    }

    if (removed == 0) {
        return;
    }

    dir = open((char *) d->wmcf->spool_path->name.data,
               O_RDONLY|O_DIRECTORY|O_CLOEXEC);
    if (dir != -1) {
        (void) fsync(dir);
        (void) close(dir);
    }
}


/*
 * A record Redis refused for good (WRONGTYPE, NOPERM, ...): appended to
 * <queue>.quarantine with the reason, synced, then passed over.
 */

static void
ngx_http_webhook_drain_quarantine(ngx_http_webhook_drain_t *d)
{
    u_char                      *p, *last, name[NGX_MAX_PATH], line[512];
    size_t                       len;
    ngx_fd_t                     fd;
    ngx_http_webhook_segment_t  *s;
    ngx_http_webhook_record_t    rec;

    s = d->from[0];
    s->next = s->pos;

    if (ngx_http_webhook_drain_head(s, (uint64_t) -1, &rec, &len)
        != NGX_HTTP_WEBHOOK_REC_OK)
    {
        d->poison.len = 0;
        return;
    }

    p = ngx_snprintf(name, sizeof(name) - 16, "%V/",
                     &d->wmcf->spool_path->name);
    p = ngx_http_webhook_spool_escape(p, &s->queue);
    last = ngx_sprintf(p, ".quarantine%Z");

    /* the record as it was (a segment again once renamed *.seg) ... */

    fd = open((char *) name, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0600);
    if (fd == -1) {
        return;                 /* tried again next time */
    }

    if (write(fd, s->buf + s->pos, len) != (ssize_t) len
        || fdatasync(fd) == -1)
    {
        (void) close(fd);
        return;
    }

    (void) close(fd);

    /* ... and why, beside it */

    (void) ngx_sprintf(last - 1, ".txt%Z");

    fd = open((char *) name, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0600);
    if (fd != -1) {
        p = ngx_snprintf(line, sizeof(line), "%uL %V %V\n", rec.seq,
                         &rec.id, &d->poison);
        (void) write(fd, line, p - line);
        (void) close(fd);
    }

    s->pos += len;
    s->next = s->pos;
    d->poison.len = 0;
    d->tries = 0;
    d->single = 0;

    ngx_http_webhook_drain_done(d, &s->queue, 1, 1);
}


/*
 * The next batch: the queue after the last one drained (round robin, so
 * that a queue Redis does not take holds no other back), its segments
 * merged by sequence number, up to the batch's bounds.
 */

static void
ngx_http_webhook_drain_batch(ngx_http_webhook_drain_t *d, uint64_t limit)
{
    size_t                       used, best_used, bytes;
    uint64_t                     seq, bound;
    ngx_int_t                    cmp, best_cmp;
    ngx_uint_t                   i, max;
    ngx_str_t                   *q, *pick;
    ngx_http_webhook_segment_t  *s, *best;
    ngx_http_webhook_record_t    rec;

    pick = NULL;
    best_cmp = 0;

    for (i = 0; i < d->nsegs; i++) {
        s = d->segs[i];

        if (s->pos < s->len || !s->eof) {
            d->left++;
        }

        if (ngx_http_webhook_drain_head(s, limit, &rec, &used)
            != NGX_HTTP_WEBHOOK_REC_OK)
        {
            continue;
        }

        q = &s->queue;

        cmp = ngx_memn2cmp(q->data, d->last, q->len, d->last_len) > 0;

        if (pick == NULL
            || (cmp && !best_cmp)
            || (cmp == best_cmp
                && ngx_memn2cmp(q->data, pick->data, q->len, pick->len) < 0))
        {
            pick = q;
            best_cmp = cmp;
        }
    }

    if (pick == NULL) {
        goto done;
    }

    d->queue = *pick;
    max = d->single ? 1 : NGX_HTTP_WEBHOOK_DRAIN_BATCH;
    bytes = 0;

    while (d->n < max && bytes < NGX_HTTP_WEBHOOK_DRAIN_BYTES) {
        best = NULL;
        seq = 0;
        best_used = 0;
        bound = (uint64_t) -1;

        for (i = 0; i < d->nsegs; i++) {
            s = d->segs[i];

            if (s->queue.len != pick->len
                || ngx_strncmp(s->queue.data, pick->data, pick->len) != 0)
            {
                continue;
            }

            if (ngx_http_webhook_drain_head(s, limit, &rec, &used)
                != NGX_HTTP_WEBHOOK_REC_OK)
            {
                bound = ngx_min(bound, ngx_http_webhook_drain_bound(s));
                continue;
            }

            if (best == NULL || rec.seq < seq) {
                best = s;
                seq = rec.seq;
                d->recs[d->n] = rec;        /* read once: no second CRC */
                best_used = used;
            }
        }

        /* nothing may pass a record not read whole yet */

        if (best == NULL || seq >= bound) {
            break;
        }

        d->from[d->n++] = best;
        best->next += best_used;
        bytes += best_used;
    }

done:

    for (i = 0; i < d->nsegs; i++) {
        s = d->segs[i];

        if (s->sealed && s->eof && s->pos == s->len && s->next == s->pos
            && s->done_at == 0)
        {
            s->done_at = ngx_current_msec;
        }
    }
}


/*
 * A segment whose next record is not in its buffer whole while the file
 * holds more (a record cut at the buffer's end, or larger than it) holds
 * back the queue's records numbered after it: its sequence number when its
 * header is read, else 0 (all of them, until the next read).  A record
 * still being written at the end of a file holds nothing back: it has not
 * been answered yet.
 */

static uint64_t
ngx_http_webhook_drain_bound(ngx_http_webhook_segment_t *s)
{
    if (s->eof) {
        return (uint64_t) -1;
    }

    if (s->len - s->next < NGX_HTTP_WEBHOOK_REC_HEADER
        || ngx_memcmp(s->buf + s->next, NGX_HTTP_WEBHOOK_REC_MAGIC, 4) != 0)
    {
        return 0;
    }

    return ngx_http_webhook_record_seq(s->buf + s->next);
}


/*
 * The record at the segment's cursor, if it may go now: complete, numbered
 * before the limit.  What cannot be a record in a segment whose writer is
 * done (a write torn by a crash) is passed over to the end.
 */

static ngx_int_t
ngx_http_webhook_drain_head(ngx_http_webhook_segment_t *s, uint64_t limit,
    ngx_http_webhook_record_t *rec, size_t *used)
{
    u_char     *p;
    size_t      len, need;
    ngx_int_t   rc;

    p = s->buf + s->next;
    len = s->len - s->next;

    if (len == 0) {
        return NGX_HTTP_WEBHOOK_REC_PARTIAL;
    }

    rc = ngx_http_webhook_record_read(p, len, rec, used);

    if (rc == NGX_HTTP_WEBHOOK_REC_OK) {
        return rec->seq < limit ? NGX_HTTP_WEBHOOK_REC_OK
                                : NGX_HTTP_WEBHOOK_REC_PARTIAL;
    }

    if (rc == NGX_HTTP_WEBHOOK_REC_PARTIAL && len >= 12) {
        need = (size_t) p[8] | (size_t) p[9] << 8 | (size_t) p[10] << 16
               | (size_t) p[11] << 24;

        if (need > s->size - s->next) {

            if (s->next == 0) {
                /* a record larger than the buffer: room for it */

                p = ngx_alloc(need, ngx_cycle->log);
                if (p) {
                    ngx_memcpy(p, s->buf, s->len);
                    ngx_free(s->buf);
                    s->buf = p;
                    s->size = need;
                    s->eof = 0;
                }

                return rc;
            }

            if (!s->eof) {
                return rc;      /* the next fill moves it to the start */
            }

            /* the file ends inside the record */
        }
    }

    if (!s->sealed || !s->eof || s->next != s->pos) {
        return NGX_HTTP_WEBHOOK_REC_PARTIAL;
    }

    /* torn or corrupt: the rest of a finished segment is skipped */

    s->skipped += len;
    s->pos = s->len;
    s->next = s->len;

    return NGX_HTTP_WEBHOOK_REC_PARTIAL;
}


/* events out of the spool: drained or quarantined */

void
ngx_http_webhook_drain_done(ngx_http_webhook_drain_t *d, ngx_str_t *queue,
    ngx_uint_t n, ngx_uint_t quarantined)
{
    ngx_atomic_int_t              v;
    ngx_http_webhook_counters_t  *cnt;

    cnt = ngx_http_webhook_spool_counters(d->wmcf, queue);
    if (cnt == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(quarantined ? &cnt->quarantined
                                            : &cnt->drained, n);

    /* never below 0: the spool found at start was not counted */

    for ( ;; ) {
        v = cnt->spool_pending;

        if (ngx_atomic_cmp_set(&cnt->spool_pending, v,
                               v > (ngx_atomic_int_t) n ? v - n : 0))
        {
            break;
        }
    }
}

#endif /* NGX_THREADS */
