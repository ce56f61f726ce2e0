
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The spool's drainer, its reading half, in a thread of the pool: the lock
 * of the directory; the segments listed and ordered by the sequence number
 * in their names; the oldest ones of a queue read and merged by sequence
 * number into the next batch; bytes that are no record passed over to the
 * next record, and kept in <queue>.corrupt; the removal of drained
 * segments and the quarantine of records Redis refuses for good.
 *
 * However many segments the directory holds, no file stays open and only
 * the NGX_HTTP_WEBHOOK_DRAIN_ACTIVE oldest unread segments of the queue
 * being drained have a buffer, each sized to what is left of its file (at
 * most NGX_HTTP_WEBHOOK_DRAIN_BUF, more only for a larger record).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/file.h>

#include "ngx_http_webhook_spool_drain.h"
#include "stats/ngx_http_webhook_stats.h"


#if (NGX_THREADS)


/* what ngx_http_webhook_drain_head() found at a segment's cursor */
#define NGX_HTTP_WEBHOOK_HEAD_RECORD   0      /* a record that may go */
#define NGX_HTTP_WEBHOOK_HEAD_WAIT     1      /* nothing yet, holds nothing */
#define NGX_HTTP_WEBHOOK_HEAD_HOLD     2      /* holds back what is after */


static ngx_int_t ngx_http_webhook_drain_lock(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_list(ngx_http_webhook_drain_t *d,
    ngx_log_t *log);
static ngx_int_t ngx_http_webhook_drain_add(ngx_http_webhook_drain_t *d,
    u_char *name, size_t len, ngx_str_t *queue, uint64_t seq);
static int ngx_libc_cdecl ngx_http_webhook_segment_cmp(const void *one,
    const void *two);
static ngx_http_webhook_segment_t *ngx_http_webhook_drain_find(
    ngx_http_webhook_drain_t *d, ngx_str_t *queue, uint64_t seq,
    u_char *name);
static void ngx_http_webhook_drain_remove(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_quarantine(ngx_http_webhook_drain_t *d);
static void ngx_http_webhook_drain_batch(ngx_http_webhook_drain_t *d,
    uint64_t limit);
static void ngx_http_webhook_drain_merge(ngx_http_webhook_drain_t *d,
    ngx_uint_t first, ngx_uint_t last, uint64_t limit);
static void ngx_http_webhook_drain_fill(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s);
static ngx_int_t ngx_http_webhook_drain_room(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, size_t want);
static ngx_int_t ngx_http_webhook_drain_head(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, uint64_t limit,
    ngx_http_webhook_record_t *rec, size_t *used, uint64_t *bound);
static void ngx_http_webhook_drain_resync(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s);
static void ngx_http_webhook_drain_pass(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, size_t len);
static void ngx_http_webhook_drain_keep(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, u_char *p, size_t len);
static void ngx_http_webhook_drain_bad_end(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, ngx_uint_t tail);
static ngx_uint_t ngx_http_webhook_segment_done(
    ngx_http_webhook_segment_t *s);
static void ngx_http_webhook_segment_finish(ngx_http_webhook_segment_t *s);
static void ngx_http_webhook_segment_free(ngx_http_webhook_segment_t *s);
static ngx_int_t ngx_http_webhook_queue_cmp(ngx_str_t *one, ngx_str_t *two);


/* in a thread of the pool */

void
ngx_http_webhook_drain_read(void *data, ngx_log_t *log)
{
    ngx_http_webhook_drain_t *d = data;

    uint64_t  limit;

    d->n = 0;

    if (ngx_http_webhook_drain_lock(d) != NGX_OK) {
        return;
    }

    if (d->poison.len) {
        ngx_http_webhook_drain_quarantine(d);
    }

    ngx_http_webhook_drain_remove(d);

    /*
     * records numbered before this may be taken: an event answered 200
     * before a later one was numbered is in a segment of this listing
     */

    limit = d->scf->queues->stats->spool_seq;

    ngx_http_webhook_drain_list(d, log);

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


/*
 * The directory's segments: the ones known stay with what was read of
 * them, new ones are added, ones gone (removed by hand) are forgotten;
 * all of them in the order of their queue and first sequence number.
 */

static void
ngx_http_webhook_drain_list(ngx_http_webhook_drain_t *d, ngx_log_t *log)
{
    u_char                      *name, qname[NGX_MAX_PATH];
    size_t                       len;
    uint64_t                     seq;
    ngx_str_t                    queue, *path;
    ngx_dir_t                    dir;
    ngx_uint_t                   i, n, known, added;
    ngx_http_webhook_segment_t  *s;

    path = &d->scf->path->name;

    if (ngx_open_dir(path, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "webhook: " ngx_open_dir_n " \"%V\" failed", path);
        return;
    }

    known = d->nsegs;
    added = 0;

    for (i = 0; i < known; i++) {
        d->segs[i]->listed = 0;
    }

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            break;
        }

        name = ngx_de_name(&dir);
        len = ngx_de_namelen(&dir);
        queue.data = qname;

        if (path->len + 1 + len >= NGX_MAX_PATH
            || ngx_http_webhook_spool_parse_name(name, len, &queue, &seq)
               != NGX_OK)
        {
            continue;
        }

        s = (known == 0) ? NULL
                         : ngx_http_webhook_drain_find(d, &queue, seq, name);

        if (s) {
            s->listed = 1;
            continue;
        }

        if (ngx_http_webhook_drain_add(d, name, len, &queue, seq) == NGX_OK) {
            added++;
        }
    }

    (void) ngx_close_dir(&dir);

    /* forgotten: gone from the directory, or never a file to read */

    for (i = 0, n = 0; i < d->nsegs; i++) {
        s = d->segs[i];

        if (i < known && !s->listed) {
            ngx_http_webhook_segment_free(s);
            continue;
        }

        d->segs[n++] = s;
    }

    d->nsegs = n;

    if (added) {
        ngx_qsort(d->segs, d->nsegs, sizeof(ngx_http_webhook_segment_t *),
                  ngx_http_webhook_segment_cmp);
    }
}


static ngx_int_t
ngx_http_webhook_drain_add(ngx_http_webhook_drain_t *d, u_char *name,
    size_t len, ngx_str_t *queue, uint64_t seq)
{
    u_char                       *p;
    ngx_uint_t                    size;
    ngx_http_webhook_segment_t   *s, **segs;

    if (d->nsegs == d->nalloc) {
        size = d->nalloc ? 2 * d->nalloc : 64;

        segs = ngx_alloc(size * sizeof(ngx_http_webhook_segment_t *), d->log);
        if (segs == NULL) {
            return NGX_ERROR;
        }

        if (d->nsegs) {
            ngx_memcpy(segs, d->segs,
                       d->nsegs * sizeof(ngx_http_webhook_segment_t *));
        }

        ngx_free(d->segs);
        d->segs = segs;
        d->nalloc = size;
    }

    s = ngx_calloc(sizeof(ngx_http_webhook_segment_t)
                   + d->scf->path->name.len + 1 + len + 1
                   + queue->len, d->log);
    if (s == NULL) {
        return NGX_ERROR;
    }

    p = (u_char *) &s[1];

    s->name = p;
    p = ngx_sprintf(p, "%V/%*s%Z", &d->scf->path->name, len, name);

    s->queue.data = p;
    s->queue.len = queue->len;
    ngx_memcpy(p, queue->data, queue->len);

    s->seq = seq;
    s->listed = 1;

    d->segs[d->nsegs++] = s;

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_webhook_segment_cmp(const void *one, const void *two)
{
    ngx_int_t                    rc;
    ngx_http_webhook_segment_t  *a, *b;

    a = *(ngx_http_webhook_segment_t **) one;
    b = *(ngx_http_webhook_segment_t **) two;

    rc = ngx_http_webhook_queue_cmp(&a->queue, &b->queue);

    if (rc) {
        return (int) rc;
    }

    if (a->seq != b->seq) {
        return a->seq < b->seq ? -1 : 1;
    }

    return ngx_strcmp(a->name, b->name);
}


/* a known segment, by binary search */

static ngx_http_webhook_segment_t *
ngx_http_webhook_drain_find(ngx_http_webhook_drain_t *d, ngx_str_t *queue,
    uint64_t seq, u_char *name)
{
    ngx_int_t                    rc;
    ngx_uint_t                   lo, hi, mid;
    ngx_http_webhook_segment_t  *s;

    lo = 0;
    hi = d->nsegs;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        s = d->segs[mid];

        rc = ngx_http_webhook_queue_cmp(&s->queue, queue);

        if (rc == 0) {
            rc = (s->seq == seq) ? ngx_strcmp(s->name
                                              + d->scf->path->name.len
                                              + 1, name)
                                 : (s->seq < seq ? -1 : 1);
        }

        if (rc == 0) {
            return s;
        }

        if (rc < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return NULL;
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
    ngx_uint_t                    i, n, removed;
    ngx_msec_t                    now;
    ngx_http_webhook_segment_t   *s;
    ngx_http_webhook_counters_t  *cnt;

    now = ngx_current_msec;
    removed = 0;

    for (i = 0, n = 0; i < d->nsegs; i++) {
        s = d->segs[i];

        if (s->done_at == 0 || now - s->done_at < NGX_HTTP_WEBHOOK_DRAIN_KEEP
            || (unlink((char *) s->name) == -1 && ngx_errno != NGX_ENOENT))
        {
            d->segs[n++] = s;
            continue;
        }

        removed++;

        (void) ngx_atomic_fetch_add(&d->scf->queues->stats->spool_bytes,
                                    -s->end);

        cnt = ngx_http_webhook_counters_of(d->scf->queues, &s->queue);
        if (cnt) {
            (void) ngx_atomic_fetch_add(&cnt->spool_bytes, -s->end);
        }

        ngx_http_webhook_segment_free(s);
    }

    d->nsegs = n;

    if (removed == 0) {
        return;
    }

    dir = open((char *) d->scf->path->name.data,
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
    uint64_t                     bound;
    ngx_fd_t                     fd;
    ngx_http_webhook_segment_t  *s;
    ngx_http_webhook_record_t    rec;

    s = d->from[0];
    s->next = s->pos;
    bound = (uint64_t) -1;

    if (ngx_http_webhook_drain_head(d, s, (uint64_t) -1, &rec, &len, &bound)
        != NGX_HTTP_WEBHOOK_HEAD_RECORD)
    {
        d->poison.len = 0;
        return;
    }

    p = ngx_snprintf(name, sizeof(name) - 16, "%V/",
                     &d->scf->path->name);
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
                         &rec.item.id, &d->poison);
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
 * that a queue Redis does not take holds no other back) that has a record
 * to give.  On the way, the segments read to their end are counted: the
 * recovery of the spool found at start ends only when none is left.
 */

static void
ngx_http_webhook_drain_batch(ngx_http_webhook_drain_t *d, uint64_t limit)
{
    ngx_str_t    last;
    ngx_uint_t   i, j, k, start;

    d->unread = 0;

    /* the first queue after the last one drained, else the first one */

    last.data = d->last;
    last.len = d->last_len;
    start = 0;

    for (i = 0; i < d->nsegs; i++) {
        if (ngx_http_webhook_queue_cmp(&d->segs[i]->queue, &last) > 0) {
            start = i;
            break;
        }
    }

    /* each queue once, from there on, wrapping around */

    for (k = 0, i = start; k < d->nsegs && d->n == 0; k += j - i, i = j) {

        if (i == d->nsegs) {
            i = 0;
        }

        for (j = i + 1;
             j < d->nsegs
             && ngx_http_webhook_queue_cmp(&d->segs[j]->queue,
                                           &d->segs[i]->queue) == 0;
             j++)
        {
            /* void */
        }

        ngx_http_webhook_drain_merge(d, i, j, limit);
    }
}


/*
 * The records of one queue (its segments are segs[first .. last - 1]),
 * merged by sequence number, up to the batch's bounds.  Only the oldest
 * unfinished segments take part; the first one left out bounds the merge,
 * so that nothing passes a record of it.
 */

static void
ngx_http_webhook_drain_merge(ngx_http_webhook_drain_t *d, ngx_uint_t first,
    ngx_uint_t last, uint64_t limit)
{
    size_t                       used, best_used, bytes;
    uint64_t                     seq, bound, out;
    ngx_uint_t                   i, end, active, max;
    ngx_http_webhook_segment_t  *s, *best;
    ngx_http_webhook_record_t    rec;

    out = (uint64_t) -1;
    active = 0;

    for (end = first; end < last; end++) {
        s = d->segs[end];

        if (s->done_at || s->ignored) {
            continue;
        }

        if (active == NGX_HTTP_WEBHOOK_DRAIN_ACTIVE) {
            out = s->seq;
            break;
        }

        ngx_http_webhook_drain_fill(d, s);

        if (ngx_http_webhook_segment_done(s)) {
            ngx_http_webhook_segment_finish(s);
            continue;
        }

        active++;
    }

    /* the segments after the active ones give back their buffers */

    for (i = end; i < last; i++) {
        s = d->segs[i];

        if (!s->done_at && !s->ignored) {
            d->unread++;
        }

        if (s->buf) {
            s->buf_off += s->pos;
            ngx_free(s->buf);
            s->buf = NULL;
            s->size = 0;
            s->len = 0;
            s->pos = 0;
            s->next = 0;
        }
    }

    d->queue = d->segs[first]->queue;
    max = d->single ? 1 : NGX_HTTP_WEBHOOK_DRAIN_BATCH;
    bytes = 0;

    while (d->n < max && bytes < NGX_HTTP_WEBHOOK_DRAIN_BYTES) {
        best = NULL;
        seq = 0;
        best_used = 0;
        bound = out;

        for (i = first; i < end; i++) {
            s = d->segs[i];

            if (s->done_at || s->ignored
                || ngx_http_webhook_drain_head(d, s, limit, &rec, &used,
                                               &bound)
                   != NGX_HTTP_WEBHOOK_HEAD_RECORD)
            {
                continue;
            }

            if (best == NULL || rec.seq < seq) {
                best = s;
                seq = rec.seq;
                d->recs[d->n] = rec;        /* read once: no second CRC */
                best_used = used;
            }
        }

        if (best == NULL) {
            break;
        }

        if (seq >= bound) {

            /*
             * nothing passes a record not read whole yet; but more
             * segments overlapping than are merged at once must not stop
             * the queue: their order is then the best that can be done
             */

            if (bound != out || d->n) {
                break;
            }

            if (!d->unordered) {
                d->unordered = 1;
                ngx_log_error(NGX_LOG_WARN, d->log, 0,
                              "webhook: more than %d segments of queue "
                              "\"%V\" overlap in the spool: some of its "
                              "events may be drained out of order",
                              NGX_HTTP_WEBHOOK_DRAIN_ACTIVE, &d->queue);
            }
        }

        d->from[d->n++] = best;
        best->next += best_used;
        bytes += best_used;
    }

    /* what is not read to its end, or not acknowledged yet */

    for (i = first; i < end; i++) {
        s = d->segs[i];

        if (s->done_at || s->ignored) {
            continue;
        }

        if (!s->eof || s->pos != s->len || s->next != s->pos || s->bad) {
            d->unread++;
        }
    }
}


/*
 * More of a segment into its buffer, from its acknowledged cursor on.
 * Whether its writer is done is asked first (its lock is free), so that
 * what is read after is all.  A record larger than the window is read
 * whole.
 */

static void
ngx_http_webhook_drain_fill(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s)
{
    size_t           need;
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    fd = open((char *) s->name, O_RDONLY|O_CLOEXEC);
    if (fd == -1) {
        return;                 /* gone: forgotten at the next listing */
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        (void) close(fd);
        return;
    }

    if (!ngx_is_file(&fi)) {
        if (!s->ignored) {
            s->ignored = 1;
            ngx_log_error(NGX_LOG_WARN, d->log, 0,
                          "webhook: \"%s\" in the spool is not a file: "
                          "ignored", s->name);
        }

        (void) close(fd);
        return;
    }

    if (!s->sealed && flock(fd, LOCK_EX|LOCK_NB) == 0) {
        s->sealed = 1;
    }

    s->end = ngx_max(s->end, ngx_file_size(&fi));

    /* what is acknowledged leaves the buffer */

    if (s->pos) {
        ngx_memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->buf_off += s->pos;
        s->len -= s->pos;
        s->pos = 0;
    }

    s->next = 0;
    s->eof = 0;
    need = 0;

    for ( ;; ) {
        if (ngx_http_webhook_drain_room(d, s, need) != NGX_OK) {
            break;
        }

        while (s->len < s->size) {
            n = pread(fd, s->buf + s->len, s->size - s->len,
                      s->buf_off + s->len);

            if (n <= 0) {
                break;
            }

            s->len += n;
        }

        if (s->buf_off + (off_t) s->len >= s->end) {
            s->end = s->buf_off + s->len;
            s->eof = 1;
            break;
        }

        /* the record at the cursor, when larger than the window */

        need = ngx_http_webhook_record_need(s->buf, s->len);

        if (need <= s->size) {
            break;
        }
    }

    (void) close(fd);
}


/*
 * The buffer sized to what is left of the file, at most
 * NGX_HTTP_WEBHOOK_DRAIN_BUF, or to want bytes (a record larger than
 * that); grown or shrunk, what it holds kept.
 */

static ngx_int_t
ngx_http_webhook_drain_room(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, size_t want)
{
    u_char  *p;
    size_t   size;
    off_t    left;

    left = s->end - s->buf_off;

    size = (left > NGX_HTTP_WEBHOOK_DRAIN_BUF) ? NGX_HTTP_WEBHOOK_DRAIN_BUF
                                               : (size_t) left;
    size = ngx_max(size, want);
    size = ngx_max(size, s->len);
    size = ngx_max(size, NGX_HTTP_WEBHOOK_REC_HEADER);

    if (size == s->size) {
        return NGX_OK;
    }

    p = ngx_alloc(size, d->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (s->len) {
        ngx_memcpy(p, s->buf, s->len);
    }

    if (s->buf) {
        ngx_free(s->buf);
    }

    s->buf = p;
    s->size = size;

    return NGX_OK;
}


/*
 * The record at the segment's cursor (its next byte), if it may go now:
 * complete, numbered before the limit.  Otherwise what that means for
 * the merge: bound is lowered to what must not be passed.
 *
 * Bytes that are no record at the acknowledged cursor (a write torn by a
 * crash, a damaged disk) are passed over to the next record, and kept
 * aside (ngx_http_webhook_drain_resync()).
 */

static ngx_int_t
ngx_http_webhook_drain_head(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, uint64_t limit,
    ngx_http_webhook_record_t *rec, size_t *used, uint64_t *bound)
{
    u_char     *p;
    size_t      len;
    uint64_t    seq;
    ngx_int_t   rc;

    for ( ;; ) {

        if (s->bad) {
            if (s->next != s->pos) {
                *bound = 0;             /* after the batch in flight */
                return NGX_HTTP_WEBHOOK_HEAD_HOLD;
            }

            ngx_http_webhook_drain_resync(d, s);

            if (s->bad) {
                if (!s->sealed && s->eof) {
                    return NGX_HTTP_WEBHOOK_HEAD_WAIT;
                }

                *bound = 0;
                return NGX_HTTP_WEBHOOK_HEAD_HOLD;
            }
        }

        p = s->buf + s->next;
        len = s->len - s->next;

        if (len == 0) {
            if (s->eof) {
                return NGX_HTTP_WEBHOOK_HEAD_WAIT;
            }

            *bound = 0;                 /* the next read brings more */
            return NGX_HTTP_WEBHOOK_HEAD_HOLD;
        }

        rc = ngx_http_webhook_record_read(p, len, rec, used);

        if (rc == NGX_HTTP_WEBHOOK_REC_OK) {
            if (rec->seq < limit) {
                return NGX_HTTP_WEBHOOK_HEAD_RECORD;
            }

            *bound = ngx_min(*bound, rec->seq);
            return NGX_HTTP_WEBHOOK_HEAD_HOLD;
        }

        if (rc == NGX_HTTP_WEBHOOK_REC_PARTIAL && !s->eof) {

            /* the rest is in the file: the next read has room for it */

            seq = (len >= NGX_HTTP_WEBHOOK_REC_HEADER)
                  ? ngx_http_webhook_record_seq(p) : 0;
            *bound = ngx_min(*bound, seq);
            return NGX_HTTP_WEBHOOK_HEAD_HOLD;
        }

        if (rc == NGX_HTTP_WEBHOOK_REC_PARTIAL && !s->sealed) {
            return NGX_HTTP_WEBHOOK_HEAD_WAIT;      /* being written */
        }

        /* no record here */

        if (s->next != s->pos) {
            *bound = 0;                 /* after the batch in flight */
            return NGX_HTTP_WEBHOOK_HEAD_HOLD;
        }

        s->bad = 1;
        s->bad_at = s->buf_off + s->pos;
        s->bad_len = 0;
        s->bad_kept = 0;
        s->from = 1;
    }
}


/*
 * A run of bytes that are no record, from the cursor on: the first offset
 * after it where a whole record with a good CRC starts ends it, and so
 * does the end of a segment whose writer is done.  The bytes of the run
 * are passed over and kept in <queue>.corrupt.  In a segment still written
 * to, a run not followed by a record yet waits for its writer (it may
 * still cut it off).  Up to NGX_HTTP_WEBHOOK_DRAIN_SCAN bytes are looked
 * through at once.
 */

static void
ngx_http_webhook_drain_resync(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s)
{
    u_char                     *p, *start, *last;
    size_t                      used;
    off_t                       scanned;
    ngx_int_t                   rc;
    ngx_http_webhook_record_t   rec;

    scanned = 0;

    for ( ;; ) {
        start = s->buf + s->pos;
        last = s->buf + s->len;

        /* the next magic after what is known not to start a record */

        for (p = start + s->from; p + 4 <= last; p++) {
            if (ngx_strncmp(p, NGX_HTTP_WEBHOOK_REC_MAGIC, 4) == 0) {
                break;
            }
        }

        if (p + 4 <= last) {
            rc = ngx_http_webhook_record_read(p, last - p, &rec, &used);

            if (rc == NGX_HTTP_WEBHOOK_REC_OK
                || (rc == NGX_HTTP_WEBHOOK_REC_PARTIAL && !s->sealed
                    && s->eof))
            {
                /* a record, or one still being written */

                ngx_http_webhook_drain_pass(d, s, p - start);
                ngx_http_webhook_drain_bad_end(d, s, 0);
                return;
            }

            if (rc == NGX_HTTP_WEBHOOK_REC_BAD || s->eof) {
                s->from = p + 1 - start;
                continue;
            }

            /* maybe a record: the next read brings it whole */

            ngx_http_webhook_drain_pass(d, s, p - start);
            s->from = 0;

        } else if (s->eof) {

            if (s->sealed) {
                ngx_http_webhook_drain_pass(d, s, last - start);
                ngx_http_webhook_drain_bad_end(d, s, 1);
            }

            /* else its writer may cut it off: wait */

            return;

        } else {
            /* all but the last 3 bytes, that may begin a magic */

            if (last - start > 3) {
                ngx_http_webhook_drain_pass(d, s, last - start - 3);
            }

            s->from = 0;
        }

        scanned += s->len;

        if (scanned >= NGX_HTTP_WEBHOOK_DRAIN_SCAN) {
            return;
        }

        ngx_http_webhook_drain_fill(d, s);
    }
}


/* len bytes at the cursor are no record: kept aside, then passed over */

static void
ngx_http_webhook_drain_pass(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, size_t len)
{
    size_t  keep;

    if (len == 0) {
        return;
    }

    keep = 0;

    if (s->bad_kept < NGX_HTTP_WEBHOOK_REC_MAX) {
        keep = ngx_min(len, (size_t) (NGX_HTTP_WEBHOOK_REC_MAX
                                      - s->bad_kept));
        ngx_http_webhook_drain_keep(d, s, s->buf + s->pos, keep);
    }

    s->bad_len += len;
    s->pos += len;
    s->next = s->pos;
    s->from = 0;
}


/*
 * <queue>.corrupt, appended to: the bytes of each run that is no record
 * (the first NGX_HTTP_WEBHOOK_REC_MAX of a run), for a person to look at.
 */

static void
ngx_http_webhook_drain_keep(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, u_char *p, size_t len)
{
    u_char    *last, name[NGX_MAX_PATH];
    ssize_t    n;
    ngx_fd_t   fd;

    last = ngx_snprintf(name, sizeof(name) - 16, "%V/",
                        &d->scf->path->name);
    last = ngx_http_webhook_spool_escape(last, &s->queue);
    (void) ngx_sprintf(last, ".corrupt%Z");

    fd = open((char *) name, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0600);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, d->log, ngx_errno,
                      "webhook: open() of \"%s\" failed", name);
        return;
    }

    while (len) {
        n = write(fd, p, len);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_ALERT, d->log, ngx_errno,
                          "webhook: write() to \"%s\" failed", name);
            break;
        }

        p += n;
        len -= n;
        s->bad_kept += n;
    }

    if (fdatasync(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, d->log, ngx_errno,
                      "webhook: fdatasync() of \"%s\" failed", name);
    }

    (void) close(fd);
}


/* the end of a run that is no record: said, and counted */

static void
ngx_http_webhook_drain_bad_end(ngx_http_webhook_drain_t *d,
    ngx_http_webhook_segment_t *s, ngx_uint_t tail)
{
    ngx_http_webhook_counters_t  *cnt;

    s->bad = 0;

    cnt = ngx_http_webhook_counters_of(d->scf->queues, &s->queue);
    if (cnt) {
        (void) ngx_atomic_fetch_add(&cnt->corrupt_bytes, s->bad_len);
    }

    if (tail) {
        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "webhook: %O bytes at the end of the spool's segment "
                      "\"%s\" are no record (a write torn by a crash, or "
                      "damage): quarantined (%O bytes kept in the queue's "
                      ".corrupt file)", s->bad_len, s->name, s->bad_kept);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, d->log, 0,
                  "webhook: %O bytes of the spool's segment \"%s\" at offset "
                  "%O are no record: quarantined (%O bytes kept in the "
                  "queue's .corrupt file), the records after them are "
                  "drained", s->bad_len, s->name, s->bad_at, s->bad_kept);
}


/* complete (its writer is done) and every record acknowledged */

static ngx_uint_t
ngx_http_webhook_segment_done(ngx_http_webhook_segment_t *s)
{
    return s->sealed && s->eof && s->pos == s->len && s->next == s->pos
           && !s->bad;
}


/* done: removed a few seconds later, its buffer given back now */

static void
ngx_http_webhook_segment_finish(ngx_http_webhook_segment_t *s)
{
    s->done_at = ngx_current_msec;

    if (s->buf) {
        ngx_free(s->buf);
        s->buf = NULL;
        s->size = 0;
        s->len = 0;
        s->buf_off = s->end;
        s->pos = 0;
        s->next = 0;
    }
}


static void
ngx_http_webhook_segment_free(ngx_http_webhook_segment_t *s)
{
    if (s->buf) {
        ngx_free(s->buf);
    }

    ngx_free(s);
}


static ngx_int_t
ngx_http_webhook_queue_cmp(ngx_str_t *one, ngx_str_t *two)
{
    return ngx_memn2cmp(one->data, two->data, one->len, two->len);
}


/* events out of the spool: drained or quarantined */

void
ngx_http_webhook_drain_done(ngx_http_webhook_drain_t *d, ngx_str_t *queue,
    ngx_uint_t n, ngx_uint_t quarantined)
{
    ngx_atomic_int_t              v;
    ngx_http_webhook_counters_t  *cnt;

    cnt = ngx_http_webhook_counters_of(d->scf->queues, queue);
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


void
ngx_http_webhook_drain_free(ngx_http_webhook_drain_t *d)
{
    ngx_uint_t  i;

    for (i = 0; i < d->nsegs; i++) {
        ngx_http_webhook_segment_free(d->segs[i]);
    }

    if (d->segs) {
        ngx_free(d->segs);
    }

    d->segs = NULL;
    d->nsegs = 0;
    d->nalloc = 0;
}

#endif /* NGX_THREADS */
