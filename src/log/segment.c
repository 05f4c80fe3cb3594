/* segment.c - one log segment (see segment.h for layout and invariants). */
#include "log/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/batch.h"
#include "proto/wire.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#define IDX_ENTRY SP_INDEX_ENTRY
#define TIDX_ENTRY SP_TIMEINDEX_ENTRY

/* Header fields the walks read (batch.h has the layout). */
#define HDR_LAST_OFFSET_DELTA 23
#define HDR_MAX_TIMESTAMP 35

/* <dir>/<base> + ext + suffix (".log", ".index", ...; "" or ".cleaned",
 * ".swap", ".deleted"), malloc'd. */
static char *file_of(const char *stem, const char *ext, const char *suffix)
{
    size_t n = strlen(stem), e = strlen(ext), x = strlen(suffix);
    char *p = malloc(n + e + x + 1);
    if (p) {
        memcpy(p, stem, n);
        memcpy(p + n, ext, e);
        memcpy(p + n + e, suffix, x + 1);
    }
    return p;
}

static char *path_with(const sp_segment_t *s, const char *ext)
{
    return file_of(s->stem, ext, s->suffix);
}

static uint64_t rd64(const uint8_t *p) { return ((uint64_t)sp_be32(p) << 32) | sp_be32(p + 4); }

static void wr64(uint8_t *p, uint64_t v)
{
    sp_put_be32(p, (uint32_t)(v >> 32));
    sp_put_be32(p + 4, (uint32_t)v);
}

static uint32_t idx_rel(const sp_segment_t *s, uint32_t i) { return sp_be32(s->idx + (size_t)i * IDX_ENTRY); }
static uint32_t idx_pos(const sp_segment_t *s, uint32_t i) { return sp_be32(s->idx + (size_t)i * IDX_ENTRY + 4); }
static int64_t tidx_ts(const sp_segment_t *s, uint32_t i) { return (int64_t)rd64(s->tidx + (size_t)i * TIDX_ENTRY); }
static uint32_t tidx_rel(const sp_segment_t *s, uint32_t i) { return sp_be32(s->tidx + (size_t)i * TIDX_ENTRY + 8); }

/*
 * Index memory.  Writable entries (an active segment, or one being
 * re-indexed) live in anonymous memory sized for segment.index.bytes,
 * reserved up front so that it never moves while readers look at it.
 * Writing entries through a shared mapping of a sparse file would turn a
 * full disk into SIGBUS.  A sealed segment opened at start maps its file
 * read-only and closes the fd (a mapping holds no fd).  A missing file is
 * an empty index.  *bad_size: the file was not whole entries.
 */
static int load_index(const char *path, size_t want, bool writable, uint8_t **map, size_t *cap,
                      uint32_t *entries, size_t entry, bool *bad_size)
{
    struct stat st;
    size_t have = 0;
    *map = NULL;
    *cap = 0;
    *entries = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
        return -1;
    if (fd >= 0) {
        if (fstat(fd, &st) != 0) {
            close(fd);
            return -1;
        }
        have = (size_t)st.st_size;
        if (have % entry)
            *bad_size = true;
        have -= have % entry;
    }
    if (!writable) {
        if (have > 0) {
            void *m = mmap(NULL, have, PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED) {
                close(fd);
                return -1;
            }
            *map = m;
            *cap = have;
            *entries = (uint32_t)(have / entry);
        }
        if (fd >= 0)
            close(fd);
        return 0;
    }
    size_t len = want > have ? want : have;
    len -= len % entry;
    if (len == 0)
        len = 4096 / entry * entry;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t got = 0;
    if (fd >= 0) {
        while (got < have) {
            ssize_t r = pread(fd, (uint8_t *)m + got, have - got, (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        close(fd);
    }
    *entries = (uint32_t)(got / entry);
    *map = m;
    *cap = len;
    return 0;
}

/* Opens the aborted-transaction index beside the .log at path; a new
 * segment first removes a stale one (Kafka deletes leftover files of a
 * newly rolled segment).  Damage is noted for the log (txn_damaged), which
 * has the owner rebuild the entries.  0 or -1 (errno). */
static int open_txnindex(sp_segment_t *s, bool fresh)
{
    char *xp = path_with(s, ".txnindex");
    if (!xp) {
        errno = ENOMEM;
        return -1;
    }
    if (fresh)
        unlink(xp);
    bool damaged;
    const char *why;
    s->txn = sp_txnindex_open(xp, s->base_offset, &damaged, &why);
    free(xp);
    if (!s->txn)
        return -1;
    s->txn_damaged = damaged ? why : NULL;
    return 0;
}

static sp_segment_t *seg_open(const char *dir, int64_t base_offset, const char *suffix, bool create,
                              bool active, size_t index_bytes, sp_fdcache_t *fc)
{
    sp_segment_t *s = calloc(1, sizeof(*s));
    char path[4096];
    char *ip = NULL, *tp = NULL;
    uint32_t n;
    int fd = -1;
    struct stat st;
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    atomic_init(&s->damaged_at, -1);
    s->base_offset = base_offset;
    s->max_timestamp = -1;
    s->offset_of_max_ts = -1;
    s->next_offset = base_offset;
    s->sealed = !active;
    s->index_bytes = index_bytes;
    s->idx_writable = active;
    s->suffix = suffix;
    snprintf(path, sizeof(path), "%s/%020" PRId64, dir, base_offset);
    s->stem = strdup(path);
    snprintf(path, sizeof(path), "%s/%020" PRId64 ".log%s", dir, base_offset, suffix);
    s->path = strdup(path);
    char *fpath = strdup(path);
    ip = s->stem ? path_with(s, ".index") : NULL;
    tp = s->stem ? path_with(s, ".timeindex") : NULL;
    if (!s->path || !fpath || !ip || !tp) {
        free(fpath);
        errno = ENOMEM;
        goto fail;
    }
    if (create) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || fstat(fd, &st) != 0) {
            free(fpath);
            goto fail;
        }
    } else if (stat(path, &st) != 0) {
        free(fpath);
        goto fail;
    }
    sp_file_init(&s->log, fc, fpath, fd); /* takes fpath and fd */
    fd = -1;
    if (create) {
        /* Kafka's layout has the three files from the start; the active
         * segment's index files stay empty until it is sealed or closed */
        for (int k = 0; k < 2; k++) {
            int xfd = open(k ? tp : ip, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (xfd < 0)
                goto fail;
            close(xfd);
        }
    }
    atomic_store(&s->size, (int64_t)st.st_size);
    if (open_txnindex(s, create && st.st_size == 0) != 0)
        goto fail;
    s->created_ms = create && st.st_size == 0 ? sp_wall_ms() : (int64_t)st.st_mtim.tv_sec * 1000;
    if (load_index(ip, index_bytes, active, &s->idx, &s->idx_cap, &n, IDX_ENTRY, &s->idx_bad_size) != 0)
        goto fail;
    atomic_store(&s->nidx, n);
    if (load_index(tp, index_bytes / IDX_ENTRY * TIDX_ENTRY, active, &s->tidx, &s->tidx_cap, &n,
                   TIDX_ENTRY, &s->idx_bad_size) != 0)
        goto fail;
    atomic_store(&s->ntidx, n);
    if (n > 0) {
        s->max_timestamp = tidx_ts(s, n - 1);
        s->offset_of_max_ts = base_offset + tidx_rel(s, n - 1);
    }
    free(ip);
    free(tp);
    return s;
fail:
    sp_error("log", "cannot open segment %s: %s", path, strerror(errno));
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (create && atomic_load(&s->size) == 0 && ip && tp) {
        /* a new segment that could not be made whole leaves no empty file
         * behind (at the next start it would sit amid its neighbours) */
        unlink(path);
        unlink(ip);
        unlink(tp);
    }
    free(ip);
    free(tp);
    s->deleted = true;
    sp_segment_unref(s);
    errno = err;
    return NULL;
}

sp_segment_t *sp_segment_open(const char *dir, int64_t base_offset, bool create, bool active,
                              size_t index_bytes, sp_fdcache_t *fc)
{
    return seg_open(dir, base_offset, "", create, active, index_bytes, fc);
}

sp_segment_t *sp_segment_create_as(const char *dir, int64_t base_offset, const char *suffix,
                                   size_t index_bytes, sp_fdcache_t *fc)
{
    char path[4096];
    static const char *const exts[] = { ".log", ".index", ".timeindex", ".txnindex" };
    for (int i = 0; i < 4; i++) { /* leftovers of an earlier attempt */
        snprintf(path, sizeof(path), "%s/%020" PRId64 "%s%s", dir, base_offset, exts[i], suffix);
        unlink(path);
    }
    return seg_open(dir, base_offset, suffix, true, true, index_bytes, fc);
}

void sp_segment_ref(sp_segment_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void sp_segment_unref(sp_segment_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->unlink_on_free && !s->deleted)
        sp_segment_unlink(s);
    if (s->idx)
        munmap(s->idx, s->idx_cap);
    if (s->tidx)
        munmap(s->tidx, s->tidx_cap);
    if (s->log.cache)
        sp_file_close(&s->log);
    sp_txnindex_free(s->txn);
    free(s->path);
    free(s->stem);
    free(s);
}

int sp_segment_pin(sp_segment_t *s)
{
    return sp_file_pin(&s->log);
}

void sp_segment_unpin(sp_segment_t *s)
{
    sp_file_unpin(&s->log);
}

/* ---- index entries ------------------------------------------------------ */

bool sp_segment_index_full(const sp_segment_t *s)
{
    return (size_t)(atomic_load(&s->nidx) + 1) * IDX_ENTRY > s->idx_cap ||
           (size_t)(atomic_load(&s->ntidx) + 2) * TIDX_ENTRY > s->tidx_cap;
}

/* A time entry for the largest timestamp so far, if it grew. */
static void add_time_entry(sp_segment_t *s)
{
    uint32_t tn = atomic_load(&s->ntidx);
    if (s->max_timestamp < 0 || (tn > 0 && tidx_ts(s, tn - 1) >= s->max_timestamp))
        return;
    if ((size_t)(tn + 1) * TIDX_ENTRY > s->tidx_cap)
        return;
    uint8_t *t = s->tidx + (size_t)tn * TIDX_ENTRY;
    wr64(t, (uint64_t)s->max_timestamp);
    sp_put_be32(t + 8, (uint32_t)(s->offset_of_max_ts - s->base_offset));
    atomic_store_explicit(&s->ntidx, tn + 1, memory_order_release);
}

static void add_index_entry(sp_segment_t *s, int64_t last_offset, int64_t position)
{
    uint32_t n = atomic_load(&s->nidx);
    if (!s->idx_writable || (size_t)(n + 1) * IDX_ENTRY > s->idx_cap)
        return; /* full: the log rolls before this happens (sp_segment_index_full) */
    uint8_t *e = s->idx + (size_t)n * IDX_ENTRY;
    sp_put_be32(e, (uint32_t)(last_offset - s->base_offset));
    sp_put_be32(e + 4, (uint32_t)position);
    atomic_store_explicit(&s->nidx, n + 1, memory_order_release);
    add_time_entry(s);
}

/* Notes one batch for the indexes: entry when the interval is exceeded. */
static void index_batch(sp_segment_t *s, int64_t position, int64_t size, int64_t last,
                        int64_t max_ts, int64_t offset_of_max_ts, int64_t interval)
{
    if (max_ts > s->max_timestamp) {
        s->max_timestamp = max_ts;
        s->offset_of_max_ts = offset_of_max_ts;
    }
    if (s->bytes_since_index > interval || atomic_load(&s->nidx) == 0) {
        add_index_entry(s, last, position);
        s->bytes_since_index = 0;
    }
    s->bytes_since_index += size;
}

/* Forgets every entry (before re-indexing from the log). */
static void clear_indexes(sp_segment_t *s)
{
    atomic_store(&s->nidx, 0);
    atomic_store(&s->ntidx, 0);
    s->max_timestamp = -1;
    s->offset_of_max_ts = -1;
}

/* Drops index entries at and after entry 'keep' and the time entries for
 * offsets past the last kept entry's batch. */
static void cut_indexes(sp_segment_t *s, uint32_t keep)
{
    int64_t last_rel = keep ? (int64_t)idx_rel(s, keep - 1) : -1;
    uint32_t tn = atomic_load(&s->ntidx);
    while (tn > 0 && (int64_t)tidx_rel(s, tn - 1) > last_rel)
        tn--;
    atomic_store(&s->nidx, keep);
    atomic_store(&s->ntidx, tn);
    s->max_timestamp = tn ? tidx_ts(s, tn - 1) : -1;
    s->offset_of_max_ts = tn ? s->base_offset + tidx_rel(s, tn - 1) : -1;
}

/* A sealed segment about to be re-indexed gets writable memory. */
static int make_writable(sp_segment_t *s)
{
    if (s->idx_writable)
        return 0;
    size_t icap = s->index_bytes > s->idx_cap ? s->index_bytes : s->idx_cap;
    size_t tcap = s->index_bytes / IDX_ENTRY * TIDX_ENTRY;
    if (tcap < s->tidx_cap)
        tcap = s->tidx_cap;
    icap -= icap % IDX_ENTRY;
    tcap -= tcap % TIDX_ENTRY;
    if (icap == 0)
        icap = 4096 / IDX_ENTRY * IDX_ENTRY;
    if (tcap == 0)
        tcap = 4096 / TIDX_ENTRY * TIDX_ENTRY;
    uint8_t *idx = mmap(NULL, icap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (idx == MAP_FAILED)
        return -1;
    uint8_t *tidx = mmap(NULL, tcap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tidx == MAP_FAILED) {
        munmap(idx, icap);
        return -1;
    }
    uint32_t n = atomic_load(&s->nidx), tn = atomic_load(&s->ntidx);
    if (n)
        memcpy(idx, s->idx, (size_t)n * IDX_ENTRY);
    if (tn)
        memcpy(tidx, s->tidx, (size_t)tn * TIDX_ENTRY);
    if (s->idx)
        munmap(s->idx, s->idx_cap);
    if (s->tidx)
        munmap(s->tidx, s->tidx_cap);
    s->idx = idx;
    s->idx_cap = icap;
    s->tidx = tidx;
    s->tidx_cap = tcap;
    s->idx_writable = true;
    return 0;
}

int64_t sp_segment_index_upper(const sp_segment_t *s, int64_t position)
{
    uint32_t n = atomic_load_explicit(&s->nidx, memory_order_acquire);
    int64_t lo = 0, hi = (int64_t)n - 1, best = -1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if ((int64_t)idx_pos(s, (uint32_t)mid) >= position) {
            best = mid;
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    /* our entry for a segment's first batch (position 0) is not one of
     * Kafka's, whose entries all follow index.interval.bytes of data */
    if (best == 0 && idx_pos(s, 0) == 0)
        best = n > 1 ? 1 : -1;
    return best < 0 ? -1 : s->base_offset + idx_rel(s, (uint32_t)best);
}

int64_t sp_segment_index_lookup(const sp_segment_t *s, int64_t target)
{
    uint32_t n = atomic_load_explicit(&s->nidx, memory_order_acquire);
    int64_t rel = target - s->base_offset;
    int64_t lo = 0, hi = (int64_t)n - 1, best = -1;
    if (rel < 0)
        return 0;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if ((int64_t)idx_rel(s, (uint32_t)mid) <= rel) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best < 0 ? 0 : (int64_t)idx_pos(s, (uint32_t)best);
}

int64_t sp_segment_time_lookup(const sp_segment_t *s, int64_t ts)
{
    uint32_t n = atomic_load_explicit(&s->ntidx, memory_order_acquire);
    int64_t lo = 0, hi = (int64_t)n - 1, best = -1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (tidx_ts(s, (uint32_t)mid) <= ts) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best < 0 ? s->base_offset : s->base_offset + tidx_rel(s, (uint32_t)best);
}

/* ---- append -------------------------------------------------------------- */

int sp_segment_write(sp_segment_t *s, const uint8_t *data, size_t len, int64_t pos)
{
    int fd = sp_segment_pin(s);
    if (fd < 0)
        return fd;
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = pwrite(fd, data + off, len - off, (off_t)(pos + (int64_t)off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            /* leave no partial batch behind (a full disk loses nothing) */
            if (ftruncate(fd, (off_t)pos) != 0)
                sp_error("log", "cannot undo a partial write to %s: %s", s->path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    sp_segment_unpin(s);
    return rc;
}

void sp_segment_commit(sp_segment_t *s, int64_t pos, size_t len, int nb, const int32_t *bs,
                       const int64_t *last, const int64_t *ts, int64_t max_ts,
                       int64_t offset_of_max_ts, int64_t index_interval)
{
    int64_t at = pos;
    for (int i = 0; i < nb; i++) {
        index_batch(s, at, bs[i], last[i], ts[i], ts[i] == max_ts ? offset_of_max_ts : last[i],
                    index_interval);
        at += bs[i];
    }
    if (nb > 0)
        s->next_offset = last[nb - 1] + 1;
    atomic_store_explicit(&s->size, pos + (int64_t)len, memory_order_release);
}

/* ---- the header reader --------------------------------------------------- */

int sp_seg_reader_init(sp_seg_reader_t *r, sp_segment_t *s, int64_t pos, int64_t limit)
{
    r->s = s;
    r->limit = limit;
    r->pos = pos;
    r->prev_next = s->base_offset;
    r->wpos = 0;
    r->wlen = 0;
    r->fd = sp_segment_pin(s);
    return r->fd < 0 ? r->fd : 0;
}

void sp_seg_reader_done(sp_seg_reader_t *r)
{
    if (r->fd >= 0)
        sp_segment_unpin(r->s);
    r->fd = -1;
}

int sp_seg_reader_next(sp_seg_reader_t *r, sp_seg_batch_t *b)
{
    const size_t need = SP_BATCH_HEADER_SIZE;
    int64_t pos = r->pos;
    if (pos >= r->limit)
        return SP_SEG_END;
    if (r->limit - pos < (int64_t)need)
        return SP_SEG_CORRUPT; /* the published end is always a batch end */
    if (pos < r->wpos || pos + (int64_t)need > r->wpos + (int64_t)r->wlen) {
        size_t want = sizeof(r->buf);
        if (r->limit - pos < (int64_t)want)
            want = (size_t)(r->limit - pos);
        r->wpos = pos;
        r->wlen = 0;
        if (sp_pread_full(r->fd, r->buf, want, pos) != 0)
            return SP_SEG_IO;
        r->wlen = want;
    }
    const uint8_t *h = r->buf + (pos - r->wpos);
    int64_t base = (int64_t)rd64(h);
    int64_t blen = (int32_t)sp_be32(h + SP_BATCH_LENGTH_OFFSET);
    int32_t lod = (int32_t)sp_be32(h + HDR_LAST_OFFSET_DELTA);
    int64_t size = SP_BATCH_LOG_OVERHEAD + blen;
    if (blen < SP_BATCH_MIN_LENGTH || size > r->limit - pos || h[SP_BATCH_MAGIC_OFFSET] != SP_BATCH_MAGIC || lod < 0 ||
        base < r->prev_next || base - r->s->base_offset > (int64_t)UINT32_MAX - lod)
        return SP_SEG_CORRUPT;
    b->pos = pos;
    b->size = size;
    b->base = base;
    b->last = base + lod;
    b->max_ts = (int64_t)rd64(h + HDR_MAX_TIMESTAMP);
    b->attributes = (int16_t)sp_be16(h + 21);
    r->prev_next = b->last + 1;
    r->pos = pos + size;
    return SP_SEG_BATCH;
}

int64_t sp_segment_find(sp_segment_t *s, int64_t target, int64_t limit, int64_t *bad_pos)
{
    /* The index names a batch whose last offset <= target: the batch that
     * holds target starts there or after. */
    sp_seg_reader_t r;
    sp_seg_batch_t b;
    int64_t found = limit;
    if (sp_seg_reader_init(&r, s, sp_segment_index_lookup(s, target), limit) != 0)
        return SP_SEG_IO;
    for (;;) {
        int rc = sp_seg_reader_next(&r, &b);
        if (rc == SP_SEG_END)
            break;
        if (rc < 0) {
            *bad_pos = r.pos;
            found = rc;
            break;
        }
        if (b.last >= target) {
            found = b.pos;
            break;
        }
    }
    sp_seg_reader_done(&r);
    return found;
}

/* ---- checks and rebuilds ------------------------------------------------ */

int sp_segment_check_indexes(sp_segment_t *s, int64_t next_base, const char **why)
{
    uint32_t n = atomic_load(&s->nidx), tn = atomic_load(&s->ntidx);
    int64_t size = atomic_load(&s->size);
    int64_t span = next_base == INT64_MAX ? (int64_t)UINT32_MAX + 1 : next_base - s->base_offset;
    if (s->idx_bad_size) {
        *why = "an index file is not a whole number of entries";
        return -1;
    }
    if (size == 0) {
        s->next_offset = s->base_offset;
        if (n || tn) {
            *why = "index entries for an empty log";
            return -1;
        }
        return 0;
    }
    if (n == 0) {
        *why = "no index entries for a non-empty log";
        return -1;
    }
    if (tn == 0) {
        *why = "no time index entries for a non-empty log";
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if ((int64_t)idx_rel(s, i) >= span || (int64_t)idx_pos(s, i) >= size ||
            (i > 0 && (idx_rel(s, i) <= idx_rel(s, i - 1) || idx_pos(s, i) <= idx_pos(s, i - 1)))) {
            *why = "offset index entries out of order or outside the segment";
            return -1;
        }
    }
    for (uint32_t i = 0; i < tn; i++) {
        if ((int64_t)tidx_rel(s, i) >= span ||
            (i > 0 && (tidx_ts(s, i) <= tidx_ts(s, i - 1) || tidx_rel(s, i) < tidx_rel(s, i - 1)))) {
            *why = "time index entries out of order or outside the segment";
            return -1;
        }
    }
    /* the last entry names the batch that starts there; walk from it to
     * the end for the next offset and the tail's timestamps */
    sp_seg_reader_t r;
    sp_seg_batch_t b;
    int64_t tail_max = -1, tail_off = -1, next = -1;
    if (sp_seg_reader_init(&r, s, idx_pos(s, n - 1), size) != 0) {
        *why = "the log cannot be read";
        return -1;
    }
    r.prev_next = s->base_offset;
    int rc;
    bool first = true;
    while ((rc = sp_seg_reader_next(&r, &b)) == SP_SEG_BATCH) {
        if (first && b.last != s->base_offset + idx_rel(s, n - 1))
            break;
        first = false;
        if (b.max_ts > tail_max) {
            tail_max = b.max_ts;
            tail_off = b.last;
        }
        next = b.last + 1;
    }
    sp_seg_reader_done(&r);
    if (rc != SP_SEG_END || first || next > s->base_offset + span) {
        *why = "the last index entry does not name a batch of the log, or the log's tail is damaged";
        return -1;
    }
    s->next_offset = next;
    if (tail_max > s->max_timestamp) {
        /* written before the final time entry existed: note it */
        s->max_timestamp = tail_max;
        s->offset_of_max_ts = tail_off;
    }
    if (s->offset_of_max_ts >= next) {
        *why = "the time index names an offset past the end of the log";
        return -1;
    }
    return 0;
}

int64_t sp_segment_reindex(sp_segment_t *s, int64_t index_interval)
{
    int64_t size = atomic_load(&s->size);
    sp_seg_reader_t r;
    sp_seg_batch_t b;
    if (make_writable(s) != 0)
        return 0;
    clear_indexes(s);
    s->bytes_since_index = index_interval + 1;
    s->next_offset = s->base_offset;
    s->idx_dirty = true;
    if (sp_seg_reader_init(&r, s, 0, size) != 0)
        return 0;
    int rc;
    while ((rc = sp_seg_reader_next(&r, &b)) == SP_SEG_BATCH) {
        index_batch(s, b.pos, b.size, b.last, b.max_ts, b.last, index_interval);
        s->next_offset = b.last + 1;
    }
    int64_t end = rc == SP_SEG_END ? size : r.pos;
    sp_seg_reader_done(&r);
    if (s->sealed)
        add_time_entry(s);
    return end;
}

/* ---- recovery ------------------------------------------------------------- */

/* Validates batches from pos to the end of the file, indexing them.
 * Returns the position after the last valid batch (-1: I/O error);
 * *count = batches. */
static int64_t scan(sp_segment_t *s, int fd, int64_t pos, int64_t fsize, int64_t index_interval,
                    int64_t *count)
{
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    int64_t expect = -1; /* offsets only grow */
    *count = 0;
    if (!buf)
        return -1;
    while (fsize - pos >= SP_BATCH_LOG_OVERHEAD) {
        size_t bsize;
        sp_batch_hdr_t h;
        if (sp_pread_full(fd, buf, SP_BATCH_LOG_OVERHEAD, pos) != 0 ||
            sp_batch_next(buf, SP_BATCH_LOG_OVERHEAD, &bsize) < 0 || (int64_t)bsize > fsize - pos)
            break; /* unreadable, absurd length, or torn past the end */
        if (bsize > cap) {
            uint8_t *nb = realloc(buf, bsize);
            if (!nb)
                break;
            buf = nb;
            cap = bsize;
        }
        if (sp_pread_full(fd, buf, bsize, pos) != 0 || sp_batch_hdr_parse(buf, bsize, &h) != 0 ||
            h.magic != SP_BATCH_MAGIC ||
            sp_crc32c(0, buf + SP_BATCH_CRC_START, bsize - SP_BATCH_CRC_START) != h.crc)
            break;
        int64_t last = h.base_offset + h.last_offset_delta;
        if (h.base_offset < s->base_offset || (expect >= 0 && h.base_offset < expect) ||
            h.last_offset_delta < 0 || last - s->base_offset > (int64_t)UINT32_MAX)
            break;
        index_batch(s, pos, (int64_t)bsize, last, h.max_timestamp, last, index_interval);
        expect = last + 1;
        s->next_offset = last + 1;
        pos += (int64_t)bsize;
        (*count)++;
    }
    free(buf);
    return pos;
}

/* Whether a whole, CRC-valid batch starts anywhere in (from, fsize): the
 * damage at 'from' is then in the middle of the data, not a torn tail. */
static bool valid_batch_after(int fd, int64_t from, int64_t fsize, int64_t base_offset)
{
    size_t wcap = 1 << 16;
    uint8_t *w = malloc(wcap + SP_BATCH_HEADER_SIZE);
    bool found = false;
    if (!w)
        return false;
    for (int64_t at = from + 1; at + SP_BATCH_HEADER_SIZE <= fsize && !found;) {
        size_t want = (size_t)(fsize - at) < wcap + SP_BATCH_HEADER_SIZE ? (size_t)(fsize - at)
                                                                           : wcap + SP_BATCH_HEADER_SIZE;
        if (sp_pread_full(fd, w, want, at) != 0)
            break;
        for (size_t i = 0; i + SP_BATCH_HEADER_SIZE <= want && !found; i++) {
            const uint8_t *h = w + i;
            int64_t base = (int64_t)rd64(h);
            int64_t blen = (int32_t)sp_be32(h + SP_BATCH_LENGTH_OFFSET);
            if (h[SP_BATCH_MAGIC_OFFSET] != SP_BATCH_MAGIC || blen < SP_BATCH_MIN_LENGTH || base < base_offset ||
                at + (int64_t)i + SP_BATCH_LOG_OVERHEAD + blen > fsize)
                continue;
            size_t bsize = (size_t)(SP_BATCH_LOG_OVERHEAD + blen);
            uint8_t *b = malloc(bsize);
            if (b && sp_pread_full(fd, b, bsize, at + (int64_t)i) == 0 &&
                sp_crc32c(0, b + SP_BATCH_CRC_START, bsize - SP_BATCH_CRC_START) == sp_be32(b + SP_BATCH_CRC_OFFSET))
                found = true;
            free(b);
        }
        if (want <= SP_BATCH_HEADER_SIZE)
            break;
        at += (int64_t)(want - SP_BATCH_HEADER_SIZE + 1);
    }
    free(w);
    return found;
}

int sp_segment_recover(sp_segment_t *s, bool from_index, int64_t index_interval,
                       sp_recover_result_t *res)
{
    int64_t fsize = atomic_load(&s->size);
    int64_t end = -1, count = 0;
    uint32_t n = atomic_load(&s->nidx);
    memset(res, 0, sizeof(*res));
    res->file_size = fsize;
    if (make_writable(s) != 0)
        return -1;
    int fd = sp_segment_pin(s);
    if (fd < 0) {
        errno = -fd;
        return -1;
    }
    s->idx_dirty = s->sealed;
    if (from_index && n > 0 && (s->idx_bad_size || idx_pos(s, n - 1) >= (uint64_t)fsize))
        res->index_past_end = true;
    if (from_index && n > 0 && !s->idx_bad_size && idx_pos(s, n - 1) < (uint64_t)fsize) {
        /* after a clean shutdown: re-check only from the last index entry,
         * which must name the first batch read there */
        int64_t pos = idx_pos(s, n - 1);
        int64_t want_last = s->base_offset + idx_rel(s, n - 1);
        cut_indexes(s, n - 1);
        s->bytes_since_index = index_interval + 1;
        s->next_offset = s->base_offset;
        end = scan(s, fd, pos, fsize, index_interval, &count);
        if (end > pos && atomic_load(&s->nidx) == n &&
            s->base_offset + idx_rel(s, n - 1) == want_last)
            goto done;
        /* the indexed batch itself is damaged or the index is stale:
         * check everything */
    }
    clear_indexes(s);
    s->bytes_since_index = index_interval + 1;
    s->next_offset = s->base_offset;
    end = scan(s, fd, 0, fsize, index_interval, &count);
done:
    if (end < 0) {
        sp_segment_unpin(s);
        return -1;
    }
    res->batches = count;
    res->end = end;
    res->valid_after = end < fsize && valid_batch_after(fd, end, fsize, s->base_offset);
    sp_segment_unpin(s);
    if (s->sealed)
        add_time_entry(s);
    return 0;
}

int sp_segment_truncate_at(sp_segment_t *s, int64_t pos)
{
    int fd = sp_segment_pin(s);
    if (fd < 0) {
        errno = -fd;
        return -1;
    }
    int rc = ftruncate(fd, (off_t)pos);
    int err = errno;
    sp_segment_unpin(s);
    if (rc != 0) {
        errno = err;
        return -1;
    }
    atomic_store(&s->size, pos);
    return 0;
}

/* ---- seal, persist, sync ------------------------------------------------- */

void sp_segment_seal(sp_segment_t *s)
{
    if (s->sealed)
        return;
    s->sealed = true;
    add_time_entry(s); /* the segment's largest timestamp, as Kafka does */
    s->idx_dirty = true;
}

void sp_segment_prepare_close(sp_segment_t *s)
{
    if (s->deleted || !s->idx_writable)
        return;
    add_time_entry(s);
    s->idx_dirty = true;
}

/* Writes n bytes of map to path (created or replaced) and fdatasyncs it. */
static int write_index_file(const char *path, const uint8_t *map, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = write(fd, map + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && sp_fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int sp_segment_persist_indexes(sp_segment_t *s)
{
    if (!s->idx_dirty || s->deleted)
        return 0;
    char *ip = path_with(s, ".index"), *tp = path_with(s, ".timeindex");
    int rc = -ENOMEM;
    if (ip && tp) {
        rc = write_index_file(ip, s->idx, (size_t)atomic_load(&s->nidx) * IDX_ENTRY);
        if (rc == 0)
            rc = write_index_file(tp, s->tidx, (size_t)atomic_load(&s->ntidx) * TIDX_ENTRY);
    }
    if (rc != 0)
        sp_error("log", "cannot write the indexes of %s: %s", s->path, strerror(-rc));
    else
        s->idx_dirty = false;
    free(ip);
    free(tp);
    return rc;
}

int sp_segment_sync(sp_segment_t *s)
{
    int fd = sp_segment_pin(s);
    if (fd < 0)
        return fd;
    int rc = sp_fdatasync(fd) == 0 ? 0 : -errno;
    sp_segment_unpin(s);
    return rc;
}

void sp_segment_unlink(sp_segment_t *s)
{
    char *ip = path_with(s, ".index"), *tp = path_with(s, ".timeindex");
    unlink(s->path);
    if (ip)
        unlink(ip);
    if (tp)
        unlink(tp);
    if (s->txn)
        sp_txnindex_unlink(s->txn);
    free(ip);
    free(tp);
    s->deleted = true;
}

/* Renames one file of s from its suffix to 'to' (missing: fine). */
static int rename_one(sp_segment_t *s, const char *ext, const char *to)
{
    char *from = path_with(s, ext), *dst = file_of(s->stem, ext, to);
    int rc = 0;
    if (!from || !dst)
        rc = -ENOMEM;
    else if (rename(from, dst) != 0 && errno != ENOENT)
        rc = -errno;
    free(from);
    free(dst);
    return rc;
}

int sp_segment_rename(sp_segment_t *s, const char *suffix, bool log_first)
{
    char *lp = file_of(s->stem, ".log", suffix), *xp = file_of(s->stem, ".txnindex", suffix);
    char *lp2 = lp ? strdup(lp) : NULL;
    int rc = lp && xp && lp2 ? 0 : -ENOMEM;
    if (rc == 0 && log_first)
        rc = sp_file_rename(&s->log, lp2); /* takes lp2 */
    else if (rc != 0)
        free(lp2);
    if (rc == 0)
        rc = rename_one(s, ".index", suffix);
    if (rc == 0)
        rc = rename_one(s, ".timeindex", suffix);
    if (rc == 0)
        rc = sp_txnindex_rename(s->txn, xp); /* takes xp */
    else
        free(xp);
    if (rc == 0 && !log_first)
        rc = sp_file_rename(&s->log, lp2);
    if (rc == 0) {
        free(s->path);
        s->path = lp;
        s->suffix = suffix;
    } else {
        sp_error("log", "cannot rename the files of %s to %s: %s", s->path, suffix, strerror(-rc));
        free(lp);
    }
    return rc;
}

void sp_segment_delete_later(sp_segment_t *s)
{
    s->unlink_on_free = true;
}
