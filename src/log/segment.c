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
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "proto/wire.h"
#include "util/fsutil.h"
#include "util/log.h"

#define IDX_ENTRY 8
#define TIDX_ENTRY 12

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *path_with(const char *logpath, const char *ext)
{
    size_t n = strlen(logpath) - 4; /* strip ".log" */
    char *p = malloc(n + strlen(ext) + 1);
    if (p) {
        memcpy(p, logpath, n);
        strcpy(p + n, ext);
    }
    return p;
}

static uint64_t rd64(const uint8_t *p) { return ((uint64_t)sp_be32(p) << 32) | sp_be32(p + 4); }

static void wr64(uint8_t *p, uint64_t v)
{
    sp_put_be32(p, (uint32_t)(v >> 32));
    sp_put_be32(p + 4, (uint32_t)v);
}

/*
 * Index memory.  An active segment (or one being recovered) keeps its
 * entries in anonymous memory sized for segment.index.bytes, reserved
 * up front so that it never moves while readers look at it; the file is
 * written from it when the segment is sealed or closed (and rebuilt after
 * a crash, so appends never write index files).  Writing entries through
 * a shared mapping of a sparse file would turn a full disk into SIGBUS.
 * A sealed segment opened at start maps its trimmed file read-only.
 */
static int map_index(int fd, size_t want, bool writable, uint8_t **map, size_t *cap,
                     uint32_t *entries, size_t entry)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    size_t have = (size_t)st.st_size;
    have -= have % entry;
    *entries = (uint32_t)(have / entry);
    *map = NULL;
    *cap = 0;
    if (!writable) {
        if (have == 0)
            return 0;
        void *m = mmap(NULL, have, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            return -1;
        *map = m;
        *cap = have;
        return 0;
    }
    size_t len = want > have ? want : have;
    len -= len % entry;
    if (len == 0)
        len = 4096 / entry * entry;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    size_t got = 0;
    while (got < have) {
        ssize_t r = pread(fd, (uint8_t *)m + got, have - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    *entries = (uint32_t)(got / entry);
    *map = m;
    *cap = len;
    return 0;
}

sp_segment_t *sp_segment_open(const char *dir, int64_t base_offset, bool create, bool active,
                              size_t index_bytes)
{
    sp_segment_t *s = calloc(1, sizeof(*s));
    char path[4096];
    uint32_t n;
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->base_offset = base_offset;
    s->fd = s->idx_fd = s->tidx_fd = -1;
    s->max_timestamp = -1;
    s->offset_of_max_ts = -1;
    s->next_offset = base_offset;
    s->created_ms = now_ms();
    s->sealed = !active;
    snprintf(path, sizeof(path), "%s/%020" PRId64 ".log", dir, base_offset);
    s->path = strdup(path);
    char *ip = path_with(path, ".index"), *tp = path_with(path, ".timeindex");
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
    if (!s->path || !ip || !tp)
        goto fail;
    s->fd = open(path, flags, 0644);
    s->idx_fd = open(ip, O_RDWR | O_CLOEXEC | O_CREAT, 0644);
    s->tidx_fd = open(tp, O_RDWR | O_CLOEXEC | O_CREAT, 0644);
    if (s->fd < 0 || s->idx_fd < 0 || s->tidx_fd < 0)
        goto fail;
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        goto fail;
    atomic_store(&s->size, (int64_t)st.st_size);
    s->index_bytes = index_bytes;
    s->idx_writable = active;
    if (map_index(s->idx_fd, index_bytes, active, &s->idx, &s->idx_cap, &n, IDX_ENTRY) != 0)
        goto fail;
    atomic_store(&s->nidx, n);
    if (map_index(s->tidx_fd, index_bytes / IDX_ENTRY * TIDX_ENTRY, active, &s->tidx,
                  &s->tidx_cap, &n, TIDX_ENTRY) != 0)
        goto fail;
    atomic_store(&s->ntidx, n);
    if (n > 0) {
        const uint8_t *last = s->tidx + (size_t)(n - 1) * TIDX_ENTRY;
        s->max_timestamp = (int64_t)rd64(last);
        s->offset_of_max_ts = base_offset + sp_be32(last + 8);
    }
    if (create && st.st_size == 0)
        s->created_ms = now_ms();
    else
        s->created_ms = (int64_t)st.st_mtim.tv_sec * 1000;
    free(ip);
    free(tp);
    return s;
fail:
    sp_error("log", "cannot open segment %s: %s", path, strerror(errno));
    free(ip);
    free(tp);
    s->deleted = true;
    sp_segment_unref(s);
    return NULL;
}

void sp_segment_ref(sp_segment_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void write_index(int fd, const uint8_t *map, size_t len, const char *what, const char *path)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(fd, map + off, len - off, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* derived data: a short index only makes lookups scan longer */
            sp_warn("log", "cannot write %s of %s: %s", what, path, strerror(errno));
            len = off;
            break;
        }
        off += (size_t)w;
    }
    if (ftruncate(fd, (off_t)len) != 0)
        sp_warn("log", "cannot trim %s of %s: %s", what, path, strerror(errno));
}

/* Brings the index files in line with the entries (seal, close, after
 * recovery). */
static void trim_indexes(sp_segment_t *s)
{
    size_t ni = (size_t)atomic_load(&s->nidx) * IDX_ENTRY;
    size_t nt = (size_t)atomic_load(&s->ntidx) * TIDX_ENTRY;
    if (s->idx_writable) {
        if (s->idx_fd >= 0)
            write_index(s->idx_fd, s->idx, ni, "index", s->path);
        if (s->tidx_fd >= 0)
            write_index(s->tidx_fd, s->tidx, nt, "time index", s->path);
        return;
    }
    if (s->idx_fd >= 0 && ftruncate(s->idx_fd, (off_t)ni) != 0)
        sp_warn("log", "cannot trim index of %s: %s", s->path, strerror(errno));
    if (s->tidx_fd >= 0 && ftruncate(s->tidx_fd, (off_t)nt) != 0)
        sp_warn("log", "cannot trim time index of %s: %s", s->path, strerror(errno));
}

/* A sealed segment about to be re-indexed (recovery) gets writable memory. */
static int make_writable(sp_segment_t *s)
{
    uint32_t n, tn;
    uint8_t *idx, *tidx;
    size_t cap, tcap;
    if (s->idx_writable)
        return 0;
    if (map_index(s->idx_fd, s->index_bytes, true, &idx, &cap, &n, IDX_ENTRY) != 0)
        return -1;
    if (map_index(s->tidx_fd, s->index_bytes / IDX_ENTRY * TIDX_ENTRY, true, &tidx, &tcap, &tn,
                  TIDX_ENTRY) != 0) {
        munmap(idx, cap);
        return -1;
    }
    if (s->idx)
        munmap(s->idx, s->idx_cap);
    if (s->tidx)
        munmap(s->tidx, s->tidx_cap);
    s->idx = idx;
    s->idx_cap = cap;
    s->tidx = tidx;
    s->tidx_cap = tcap;
    s->idx_writable = true;
    return 0;
}

void sp_segment_unref(sp_segment_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (!s->deleted)
        trim_indexes(s);
    if (s->idx)
        munmap(s->idx, s->idx_cap);
    if (s->tidx)
        munmap(s->tidx, s->tidx_cap);
    if (s->fd >= 0)
        close(s->fd);
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    if (s->tidx_fd >= 0)
        close(s->tidx_fd);
    free(s->path);
    free(s);
}

static void add_index_entry(sp_segment_t *s, int64_t last_offset, int64_t position)
{
    uint32_t n = atomic_load(&s->nidx);
    if (!s->idx_writable || (size_t)(n + 1) * IDX_ENTRY > s->idx_cap)
        return; /* full: an index is only a hint, a missing entry costs a longer scan */
    uint8_t *e = s->idx + (size_t)n * IDX_ENTRY;
    sp_put_be32(e, (uint32_t)(last_offset - s->base_offset));
    sp_put_be32(e + 4, (uint32_t)position);
    atomic_store_explicit(&s->nidx, n + 1, memory_order_release);
    uint32_t tn = atomic_load(&s->ntidx);
    if (s->max_timestamp >= 0 &&
        (tn == 0 || (int64_t)rd64(s->tidx + (size_t)(tn - 1) * TIDX_ENTRY) < s->max_timestamp)) {
        if ((size_t)(tn + 1) * TIDX_ENTRY > s->tidx_cap)
            return;
        uint8_t *t = s->tidx + (size_t)tn * TIDX_ENTRY;
        wr64(t, (uint64_t)s->max_timestamp);
        sp_put_be32(t + 8, (uint32_t)(s->offset_of_max_ts - s->base_offset));
        atomic_store_explicit(&s->ntidx, tn + 1, memory_order_release);
    }
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

int sp_segment_write(sp_segment_t *s, const uint8_t *data, size_t len, int64_t pos)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = pwrite(s->fd, data + off, len - off, (off_t)(pos + (int64_t)off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            /* leave no partial batch behind (a full disk loses nothing) */
            if (ftruncate(s->fd, (off_t)pos) != 0)
                sp_error("log", "cannot undo a partial write to %s: %s", s->path, strerror(errno));
            return -err;
        }
        off += (size_t)w;
    }
    return 0;
}

void sp_segment_commit(sp_segment_t *s, const uint8_t *data, size_t len, int64_t pos, int64_t last,
                       int64_t max_ts, int64_t offset_of_max_ts, int64_t index_interval)
{
    /* index every batch boundary of the run (batches are already validated) */
    size_t at = 0;
    while (at < len) {
        size_t bs;
        sp_batch_hdr_t h;
        if (sp_batch_next(data + at, len - at, &bs) != 1 ||
            sp_batch_hdr_parse(data + at, len - at, &h) != 0)
            break;
        int64_t blast = h.base_offset + h.last_offset_delta;
        int64_t bts = h.max_timestamp;
        index_batch(s, pos + (int64_t)at, (int64_t)bs, blast, bts,
                    bts == max_ts ? offset_of_max_ts : blast, index_interval);
        at += bs;
    }
    s->next_offset = last + 1;
    atomic_store_explicit(&s->size, pos + (int64_t)len, memory_order_release);
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
        uint32_t o = sp_be32(s->idx + (size_t)mid * IDX_ENTRY);
        if ((int64_t)o <= rel) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best < 0 ? 0 : (int64_t)sp_be32(s->idx + (size_t)best * IDX_ENTRY + 4);
}

int64_t sp_segment_time_lookup(const sp_segment_t *s, int64_t ts)
{
    uint32_t n = atomic_load_explicit(&s->ntidx, memory_order_acquire);
    int64_t lo = 0, hi = (int64_t)n - 1, best = -1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        int64_t t = (int64_t)rd64(s->tidx + (size_t)mid * TIDX_ENTRY);
        if (t <= ts) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best < 0 ? s->base_offset
                    : s->base_offset + sp_be32(s->tidx + (size_t)best * TIDX_ENTRY + 8);
}

int64_t sp_segment_find(const sp_segment_t *s, int64_t target, int64_t limit)
{
    /* The index names a batch whose last offset <= target: the batch that
     * holds target starts there or after. */
    int64_t pos = sp_segment_index_lookup(s, target);
    uint8_t h[27]; /* through lastOffsetDelta */
    while (pos + (int64_t)sizeof(h) <= limit) {
        if (sp_pread_full(s->fd, h, sizeof(h), pos) != 0)
            return -1;
        int64_t base = (int64_t)rd64(h);
        int32_t blen = (int32_t)sp_be32(h + 8);
        int32_t lod = (int32_t)sp_be32(h + 23);
        if (blen < SP_BATCH_HEADER_SIZE - SP_BATCH_LOG_OVERHEAD)
            return -1;
        if (base + lod >= target)
            return pos;
        pos += SP_BATCH_LOG_OVERHEAD + blen;
    }
    return limit;
}

/* Drops index entries at and after entry 'keep' and the time entries for
 * offsets past the last kept entry's batch. */
static void cut_indexes(sp_segment_t *s, uint32_t keep)
{
    int64_t last_rel = keep ? (int64_t)sp_be32(s->idx + (size_t)(keep - 1) * IDX_ENTRY) : -1;
    uint32_t tn = atomic_load(&s->ntidx);
    while (tn > 0 && (int64_t)sp_be32(s->tidx + (size_t)(tn - 1) * TIDX_ENTRY + 8) > last_rel)
        tn--;
    atomic_store(&s->nidx, keep);
    atomic_store(&s->ntidx, tn);
    s->max_timestamp = tn ? (int64_t)rd64(s->tidx + (size_t)(tn - 1) * TIDX_ENTRY) : -1;
    s->offset_of_max_ts = tn ? s->base_offset + sp_be32(s->tidx + (size_t)(tn - 1) * TIDX_ENTRY + 8) : -1;
}

/* Validates batches from pos to the end of the file, indexing them.
 * Returns the position after the last valid batch; *count = batches. */
static int64_t scan(sp_segment_t *s, int64_t pos, int64_t fsize, int64_t index_interval,
                    int64_t *count)
{
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    int64_t expect = -1; /* offsets only grow */
    *count = 0;
    if (!buf)
        return pos;
    while (fsize - pos >= SP_BATCH_LOG_OVERHEAD) {
        size_t bsize;
        sp_batch_hdr_t h;
        if (sp_pread_full(s->fd, buf, SP_BATCH_LOG_OVERHEAD, pos) != 0 ||
            sp_batch_next(buf, SP_BATCH_LOG_OVERHEAD, &bsize) < 0 ||
            (int64_t)bsize > fsize - pos)
            break; /* unreadable, absurd length, or torn past the end */
        if (bsize > cap) {
            uint8_t *nb = realloc(buf, bsize);
            if (!nb)
                break;
            buf = nb;
            cap = bsize;
        }
        if (sp_pread_full(s->fd, buf, bsize, pos) != 0 || sp_batch_hdr_parse(buf, bsize, &h) != 0 ||
            h.magic != 2 || sp_crc32c(0, buf + 21, bsize - 21) != h.crc)
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

int64_t sp_segment_recover(sp_segment_t *s, bool from_index, int64_t index_interval,
                           int64_t *batches)
{
    int64_t fsize = atomic_load(&s->size);
    int64_t pos = 0, end, count = 0;
    uint32_t n = atomic_load(&s->nidx);

    s->bytes_since_index = index_interval + 1;
    s->next_offset = s->base_offset;
    if (make_writable(s) != 0)
        return -1;
    if (from_index && n > 0) {
        /* after a clean shutdown: re-check only from the last index entry */
        pos = sp_be32(s->idx + (size_t)(n - 1) * IDX_ENTRY + 4);
        cut_indexes(s, n - 1);
        end = scan(s, pos, fsize, index_interval, &count);
        if (count > 0 || end == fsize) {
            if (count == 0) /* empty tail: the next offset is past the kept entry */
                s->next_offset = s->base_offset + (n >= 2 ? sp_be32(s->idx + (size_t)(n - 2) * IDX_ENTRY) + 1 : 0);
            goto done;
        }
        /* the indexed batch itself is damaged: check everything */
    }
    cut_indexes(s, 0);
    end = scan(s, 0, fsize, index_interval, &count);
done:
    *batches = count;
    if (s->sealed)
        trim_indexes(s); /* a sealed segment's files match its entries now */
    if (end < fsize) {
        if (ftruncate(s->fd, (off_t)end) != 0)
            return -1;
        atomic_store(&s->size, end);
        return fsize - end;
    }
    return 0;
}

int sp_segment_seal(sp_segment_t *s)
{
    s->sealed = true;
    trim_indexes(s);
    return 0;
}

int sp_segment_truncate_to(sp_segment_t *s, int64_t offset)
{
    int64_t pos = sp_segment_find(s, offset, atomic_load(&s->size));
    if (pos < 0)
        return -1;
    if (ftruncate(s->fd, (off_t)pos) != 0)
        return -1;
    atomic_store(&s->size, pos);
    uint32_t n = atomic_load(&s->nidx);
    while (n > 0 && sp_be32(s->idx + (size_t)(n - 1) * IDX_ENTRY + 4) >= (uint64_t)pos)
        n--;
    atomic_store(&s->nidx, n);
    uint32_t tn = atomic_load(&s->ntidx);
    while (tn > 0 && s->base_offset + sp_be32(s->tidx + (size_t)(tn - 1) * TIDX_ENTRY + 8) >= offset)
        tn--;
    atomic_store(&s->ntidx, tn);
    s->next_offset = offset;
    return 0;
}

int sp_segment_sync(sp_segment_t *s)
{
    return fdatasync(s->fd);
}

void sp_segment_unlink(sp_segment_t *s)
{
    char *ip = path_with(s->path, ".index"), *tp = path_with(s->path, ".timeindex");
    unlink(s->path);
    if (ip)
        unlink(ip);
    if (tp)
        unlink(tp);
    free(ip);
    free(tp);
    s->deleted = true;
}
