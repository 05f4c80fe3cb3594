/* plog.c - a partition log (see plog.h for layout and invariants). */
#include "log/plog.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/logmgr.h"
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "util/fsutil.h"
#include "util/log.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sp_segment_t *active(const sp_plog_t *l) { return l->segs[l->nsegs - 1]; }

static int push_seg(sp_plog_t *l, sp_segment_t *s)
{
    if (l->nsegs == l->capsegs) {
        int cap = l->capsegs ? l->capsegs * 2 : 4;
        sp_segment_t **n = realloc(l->segs, sizeof(*n) * (size_t)cap);
        if (!n)
            return -1;
        l->segs = n;
        l->capsegs = cap;
    }
    l->segs[l->nsegs++] = s;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void write_partition_metadata(const char *dir, sp_uuid_t id)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char text[128], s[23];
    int o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)id.b[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)id.b[i + 1] << 8;
        if (i + 2 < 16)
            v |= id.b[i + 2];
        s[o++] = b64[(v >> 18) & 63];
        s[o++] = b64[(v >> 12) & 63];
        if (i + 1 < 16)
            s[o++] = b64[(v >> 6) & 63];
        if (i + 2 < 16)
            s[o++] = b64[v & 63];
    }
    s[o] = 0;
    int n = snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", s);
    if (sp_write_file_atomic(dir, "partition.metadata", text, (size_t)n) != 0)
        sp_warn("log", "cannot write %s/partition.metadata: %s", dir, strerror(errno));
}

/* Loads the segments of an existing directory, oldest first. */
static int load_segments(sp_plog_t *l)
{
    DIR *d = opendir(l->dir);
    int64_t *bases = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len != SP_SEGMENT_NAME_DIGITS + 4 || strcmp(e->d_name + SP_SEGMENT_NAME_DIGITS, ".log") != 0)
            continue;
        char *end;
        long long b = strtoll(e->d_name, &end, 10);
        if (end != e->d_name + SP_SEGMENT_NAME_DIGITS || b < 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *nb = realloc(bases, sizeof(*nb) * (size_t)cap);
            if (!nb) {
                free(bases);
                closedir(d);
                return -1;
            }
            bases = nb;
        }
        bases[n++] = b;
    }
    closedir(d);
    if (n > 1)
        qsort(bases, (size_t)n, sizeof(*bases), cmp_i64);
    for (int i = 0; i < n; i++) {
        bool last = i == n - 1;
        sp_segment_t *s = sp_segment_open(l->dir, bases[i], false, last,
                                          (size_t)l->cfg.segment_index_bytes);
        if (!s || push_seg(l, s) != 0) {
            sp_segment_unref(s);
            free(bases);
            return -1;
        }
    }
    free(bases);
    return 0;
}

/* Drops segments from index i on (after a truncation in segment i-1). */
static void drop_segments_from(sp_plog_t *l, int i)
{
    for (int k = l->nsegs - 1; k >= i; k--) {
        sp_warn("log", "%s: deleting segment %s after a truncated one", l->dir, l->segs[k]->path);
        sp_segment_unlink(l->segs[k]);
        sp_segment_unref(l->segs[k]);
    }
    l->nsegs = i;
}

static int recover(sp_plog_t *l, bool clean, int64_t recovery_point)
{
    int64_t total_batches = 0, truncated = 0;
    int scanned = 0;
    for (int i = 0; i < l->nsegs; i++) {
        sp_segment_t *s = l->segs[i];
        bool is_last = i == l->nsegs - 1;
        int64_t next_base = is_last ? INT64_MAX : l->segs[i + 1]->base_offset;
        if (clean && !is_last) {
            s->next_offset = next_base;
            continue;
        }
        if (!clean && next_base <= recovery_point) {
            s->next_offset = next_base; /* wholly below the recovery point */
            continue;
        }
        int64_t nb = 0;
        int64_t cut = sp_segment_recover(s, clean, l->cfg.index_interval_bytes, &nb);
        scanned++;
        total_batches += nb;
        if (cut < 0) {
            sp_error("log", "%s: cannot recover %s: %s", l->dir, s->path, strerror(errno));
            return -1;
        }
        if (cut > 0) {
            truncated += cut;
            sp_warn("log", "%s: truncated %" PRId64 " bytes of torn or corrupt data at the end of %s "
                    "(last valid offset %" PRId64 ")", l->dir, cut, s->path, s->next_offset - 1);
            if (!is_last) {
                drop_segments_from(l, i + 1);
                break;
            }
        }
    }
    if (!clean)
        sp_info("log", "%s: recovered %d segment%s after an unclean shutdown: %" PRId64
                " batches checked, %" PRId64 " bytes truncated", l->dir, scanned,
                scanned == 1 ? "" : "s", total_batches, truncated);
    return 0;
}

sp_plog_t *sp_plog_open(const char *dir, const char *topic, int32_t partition,
                        sp_uuid_t topic_id, const sp_log_config_t *cfg, bool create, bool clean,
                        int64_t recovery_point, int64_t log_start)
{
    sp_plog_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->append_mu, NULL);
    atomic_init(&l->refs, 1);
    l->dir = strdup(dir);
    l->topic = strdup(topic);
    l->partition = partition;
    l->topic_id = topic_id;
    l->cfg = *cfg;
    l->last_flush_ms = now_ms();
    if (!l->dir || !l->topic)
        goto fail;
    struct stat st;
    bool exists = stat(dir, &st) == 0;
    if (!exists) {
        if (!create || sp_mkdirs(dir) != 0) {
            sp_error("log", "cannot create %s: %s", dir, strerror(errno));
            goto fail;
        }
        write_partition_metadata(dir, topic_id);
        /* Kafka's leader epoch cache: version 0, one entry, epoch 0 from
         * offset 0 (a single node never changes leader) */
        if (sp_write_file_atomic(dir, "leader-epoch-checkpoint", "0\n1\n0 0\n", 8) != 0)
            sp_warn("log", "cannot write %s/leader-epoch-checkpoint: %s", dir, strerror(errno));
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s/..", dir);
        sp_fsync_dir(parent);
    }
    if (load_segments(l) != 0)
        goto fail;
    if (l->nsegs == 0) {
        int64_t base = log_start > 0 ? log_start : 0;
        sp_segment_t *s = sp_segment_open(dir, base, true, true, (size_t)cfg->segment_index_bytes);
        if (!s || push_seg(l, s) != 0) {
            sp_segment_unref(s);
            goto fail;
        }
        s->next_offset = base;
        l->dir_dirty = true;
    } else if (recover(l, clean && exists, recovery_point) != 0) {
        goto fail;
    }
    sp_segment_t *a = active(l);
    l->leo = a->next_offset > a->base_offset ? a->next_offset : a->base_offset;
    l->log_start = log_start > l->segs[0]->base_offset ? log_start : l->segs[0]->base_offset;
    if (l->log_start > l->leo)
        l->log_start = l->leo;
    /* what recovery read is on disk now (or in the page cache of a living
     * kernel, which fsync makes certain) */
    for (int i = 0; i < l->nsegs; i++)
        if (l->segs[i]->next_offset > recovery_point || !clean)
            sp_segment_sync(l->segs[i]);
    l->flushed = l->leo;
    atomic_store(&l->hw, l->leo);
    return l;
fail:
    sp_plog_unref(l);
    return NULL;
}

void sp_plog_ref(sp_plog_t *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

void sp_plog_unref(sp_plog_t *l)
{
    if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < l->nsegs; i++)
        sp_segment_unref(l->segs[i]);
    free(l->segs);
    free(l->dir);
    free(l->topic);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->append_mu);
    free(l);
}

/* ---- waiters ----------------------------------------------------------- */

static void link_waiter(sp_log_waiter_t **head, sp_log_waiter_t *w)
{
    w->prev = NULL;
    w->next = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
    w->linked = true;
}

static void unlink_waiter(sp_log_waiter_t **head, sp_log_waiter_t *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

void sp_plog_wait_fetch(sp_plog_t *l, sp_log_waiter_t *w)
{
    pthread_mutex_lock(&l->mu);
    if (l->deleted) {
        pthread_mutex_unlock(&l->mu);
        w->wake(w, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        return;
    }
    link_waiter(&l->fetch_waiters, w);
    pthread_mutex_unlock(&l->mu);
}

void sp_plog_unwait(sp_plog_t *l, sp_log_waiter_t *w)
{
    pthread_mutex_lock(&l->mu);
    if (w->linked) {
        /* a waiter is on exactly one of the two lists */
        sp_log_waiter_t **head = &l->fetch_waiters;
        for (sp_log_waiter_t *x = l->flush_waiters; x; x = x->next)
            if (x == w)
                head = &l->flush_waiters;
        unlink_waiter(head, w);
    }
    pthread_mutex_unlock(&l->mu);
}

/* mu held: hw moved. */
static void wake_fetchers(sp_plog_t *l)
{
    for (sp_log_waiter_t *w = l->fetch_waiters; w; w = w->next)
        w->wake(w, 0);
}

/* mu held: complete flush waiters whose offset is now durable. */
static void complete_flush_waiters(sp_plog_t *l, int err)
{
    sp_log_waiter_t *w = l->flush_waiters;
    while (w) {
        sp_log_waiter_t *next = w->next;
        if (err || w->offset < l->flushed) {
            unlink_waiter(&l->flush_waiters, w);
            w->wake(w, err);
        }
        w = next;
    }
}

void sp_plog_wait_flush(sp_plog_t *l, sp_log_waiter_t *w)
{
    pthread_mutex_lock(&l->mu);
    if (l->deleted) {
        pthread_mutex_unlock(&l->mu);
        w->wake(w, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        return;
    }
    if (w->offset < l->flushed) {
        pthread_mutex_unlock(&l->mu);
        w->wake(w, 0);
        return;
    }
    link_waiter(&l->flush_waiters, w);
    pthread_mutex_unlock(&l->mu);
    sp_flusher_kick(l);
}

/* ---- append ------------------------------------------------------------ */

/* mu held: a new active segment at leo. */
static int roll(sp_plog_t *l)
{
    sp_segment_t *old = active(l);
    sp_segment_t *s = sp_segment_open(l->dir, l->leo, true, true, (size_t)l->cfg.segment_index_bytes);
    if (!s)
        return -1;
    s->next_offset = l->leo;
    if (push_seg(l, s) != 0) {
        sp_segment_unlink(s);
        sp_segment_unref(s);
        return -1;
    }
    sp_segment_seal(old);
    l->dir_dirty = true;
    sp_debug("log", "%s: rolled segment at offset %" PRId64, l->dir, l->leo);
    return 0;
}

void sp_plog_append_from(sp_plog_t *l, uint8_t *records, size_t len, int64_t now,
                         const sp_batch_validate_opts_t *origin, sp_append_result_t *res)
{
    sp_batch_validate_opts_t opts;
    size_t off = 0;
    int64_t nrecords = 0, max_ts = -1;
    int nbatches = 0;

    memset(res, 0, sizeof(*res));
    res->base_offset = -1;
    res->log_append_time = -1;
    res->last_offset = -1;
    if (origin) {
        opts = *origin;
    } else {
        memset(&opts, 0, sizeof(opts));
        opts.require_keys = l->cfg.compact;
    }
    if (len == 0) {
        res->error = SP_ERR_CORRUPT_MESSAGE;
        res->message = "no record batch";
        return;
    }
    /* 1. validate every batch, outside the lock */
    while (off < len) {
        size_t bs;
        sp_batch_info_t info;
        if (sp_batch_next(records + off, len - off, &bs) != 1) {
            res->error = SP_ERR_CORRUPT_MESSAGE;
            res->message = "truncated or malformed record batch";
            return;
        }
        if ((int64_t)bs > l->cfg.max_message_bytes) {
            res->error = SP_ERR_MESSAGE_TOO_LARGE;
            res->message = "record batch larger than max.message.bytes";
            return;
        }
        int err = sp_batch_validate(records + off, bs, &opts, &info);
        if (err) {
            res->error = (int16_t)err;
            res->message = info.reason ? info.reason : "invalid record batch";
            return;
        }
        nrecords += info.hdr.record_count;
        if (info.max_timestamp > max_ts)
            max_ts = info.max_timestamp;
        nbatches++;
        off += bs;
    }

    /* 2. assign offsets under both locks; write holding only the append
     * lock, so that the flush thread and readers never wait for a write */
    pthread_mutex_lock(&l->append_mu);
    pthread_mutex_lock(&l->mu);
    if (l->deleted) {
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_unlock(&l->append_mu);
        res->error = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    sp_segment_t *a = active(l);
    int64_t asize = atomic_load(&a->size);
    if (asize > 0 && (asize + (int64_t)len > l->cfg.segment_bytes ||
                      now - a->created_ms >= l->cfg.segment_ms ||
                      l->leo - a->base_offset + nrecords > (int64_t)UINT32_MAX)) {
        if (roll(l) != 0) {
            pthread_mutex_unlock(&l->mu);
            pthread_mutex_unlock(&l->append_mu);
            res->error = SP_ERR_KAFKA_STORAGE_ERROR;
            res->message = "cannot roll a new segment";
            return;
        }
        a = active(l);
    }
    int64_t next = l->leo, offset_of_max = l->leo;
    off = 0;
    while (off < len) {
        size_t bs;
        sp_batch_hdr_t h;
        sp_batch_next(records + off, len - off, &bs);
        sp_batch_hdr_parse(records + off, bs, &h);
        sp_batch_set_base_offset(records + off, next);
        sp_batch_set_leader_epoch(records + off, l->leader_epoch);
        if (l->cfg.log_append_time)
            sp_batch_set_log_append_time(records + off, bs, now);
        if (h.max_timestamp == max_ts)
            offset_of_max = next + h.last_offset_delta;
        next += (int64_t)h.last_offset_delta + 1;
        off += bs;
    }
    if (l->cfg.log_append_time) {
        max_ts = now;
        offset_of_max = next - 1;
    }
    int64_t pos = atomic_load(&a->size);
    sp_segment_ref(a);
    pthread_mutex_unlock(&l->mu);

    int rc = sp_segment_write(a, records, len, pos);

    pthread_mutex_lock(&l->mu);
    bool gone = l->deleted; /* deleted during the write: nothing to publish */
    if (rc != 0 || gone) {
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_unlock(&l->append_mu);
        sp_segment_unref(a);
        if (gone) {
            res->error = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            return;
        }
        sp_error("log", "%s: append failed: %s", l->dir, strerror(-rc));
        res->error = SP_ERR_KAFKA_STORAGE_ERROR;
        res->message = "write to the log failed";
        return;
    }
    sp_segment_commit(a, records, len, pos, next - 1, max_ts, offset_of_max, l->cfg.index_interval_bytes);
    sp_segment_unref(a);
    res->base_offset = l->leo;
    res->last_offset = next - 1;
    res->log_append_time = l->cfg.log_append_time ? now : -1;
    l->leo = next;
    l->unflushed += nrecords;
    if (!sp_log_durable(&l->cfg)) {
        atomic_store(&l->hw, l->leo);
        wake_fetchers(l);
    }
    res->log_start = l->log_start;
    bool kick = sp_log_durable(&l->cfg) || l->unflushed >= l->cfg.flush_messages;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->append_mu);
    if (kick)
        sp_flusher_kick(l);
}

/* ---- read -------------------------------------------------------------- */

/* mu held: index of the segment holding offset (last with base <= offset). */
static int seg_for(const sp_plog_t *l, int64_t offset)
{
    int lo = 0, hi = l->nsegs - 1, best = 0;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (l->segs[mid]->base_offset <= offset) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return best;
}

/*
 * Batch headers read through a window of the file: one pread serves every
 * header inside it, where a pread per header cost a syscall per batch
 * (a fetch of small batches walks thousands). Never reads past 'limit',
 * the published size.
 */
typedef struct hdr_window {
    int fd;
    int64_t limit;
    int64_t pos; /* file position of buf[0] */
    size_t len;
    uint8_t buf[8192];
} hdr_window_t;

static int read_hdr(hdr_window_t *w, int64_t pos, int64_t *base, int32_t *len, int32_t *lod)
{
    const size_t need = 27; /* base offset .. last offset delta */
    if (pos < w->pos || pos + (int64_t)need > w->pos + (int64_t)w->len) {
        size_t want = sizeof(w->buf);
        if (w->limit - pos < (int64_t)want)
            want = w->limit - pos > 0 ? (size_t)(w->limit - pos) : 0;
        w->pos = pos;
        w->len = 0;
        if (want < need || sp_pread_full(w->fd, w->buf, want, pos) != 0)
            return -1;
        w->len = want;
    }
    const uint8_t *h = w->buf + (pos - w->pos);
    *base = (int64_t)(((uint64_t)sp_be32(h) << 32) | sp_be32(h + 4));
    *len = (int32_t)sp_be32(h + 8);
    *lod = (int32_t)sp_be32(h + 23);
    return *len >= SP_BATCH_HEADER_SIZE - SP_BATCH_LOG_OVERHEAD ? 0 : -1;
}

void sp_plog_read(sp_plog_t *l, int64_t offset, int32_t max_bytes, bool min_one,
                  sp_read_result_t *res)
{
    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&l->mu);
    int64_t hw = atomic_load(&l->hw);
    res->hw = res->lso = hw;
    res->log_start = l->log_start;
    res->leo = l->leo;
    if (l->deleted) {
        pthread_mutex_unlock(&l->mu);
        res->error = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    if (offset < l->log_start || offset > l->leo) {
        pthread_mutex_unlock(&l->mu);
        res->error = SP_ERR_OFFSET_OUT_OF_RANGE;
        return;
    }
    if (offset >= hw || max_bytes <= 0) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    int i = seg_for(l, offset);
    /* the byte limit: hw inside the segment that holds it */
    sp_segment_t *s = l->segs[i];
    int64_t limit = atomic_load(&s->size);
    int64_t stop_offset = hw; /* batches must end below hw */
    sp_segment_ref(s);
    pthread_mutex_unlock(&l->mu);

    int64_t pos = sp_segment_find(s, offset, limit);
    if (pos < 0) {
        sp_segment_unref(s);
        res->error = SP_ERR_KAFKA_STORAGE_ERROR;
        return;
    }
    int64_t end = pos;
    hdr_window_t *w = malloc(sizeof(*w));
    if (!w) {
        sp_segment_unref(s);
        res->error = SP_ERR_KAFKA_STORAGE_ERROR;
        return;
    }
    w->fd = s->fd;
    w->limit = limit;
    w->pos = 0;
    w->len = 0;
    while (end < limit) {
        int64_t base;
        int32_t blen, lod;
        if (read_hdr(w, end, &base, &blen, &lod) != 0)
            break;
        int64_t bsize = SP_BATCH_LOG_OVERHEAD + (int64_t)blen;
        if (base + lod >= stop_offset || end + bsize > limit)
            break;
        if (end + bsize - pos > max_bytes && !(min_one && end == pos))
            break;
        end += bsize;
        if (end - pos >= max_bytes)
            break;
    }
    free(w);
    if (end == pos) {
        sp_segment_unref(s);
        return;
    }
    res->seg = s;
    res->pos = pos;
    res->len = (int32_t)(end - pos);
}

/* ---- timestamps -------------------------------------------------------- */

int sp_plog_offset_for_time(sp_plog_t *l, int64_t ts, int64_t *offset, int64_t *found_ts)
{
    *offset = -1;
    *found_ts = -1;
    pthread_mutex_lock(&l->mu);
    int64_t hw = atomic_load(&l->hw);
    int n = l->nsegs;
    sp_segment_t **segs = malloc(sizeof(*segs) * (size_t)n);
    int64_t *limits = malloc(sizeof(int64_t) * (size_t)n);
    int64_t *maxts = malloc(sizeof(int64_t) * (size_t)n);
    if (!segs || !limits || !maxts) {
        pthread_mutex_unlock(&l->mu);
        free(segs);
        free(limits);
        free(maxts);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        segs[i] = l->segs[i];
        sp_segment_ref(segs[i]);
        limits[i] = atomic_load(&segs[i]->size);
        maxts[i] = segs[i]->max_timestamp;
    }
    int64_t log_start = l->log_start;
    pthread_mutex_unlock(&l->mu);

    int rc = 0;
    for (int i = 0; i < n && *offset < 0; i++) {
        sp_segment_t *s = segs[i];
        if (maxts[i] < ts)
            continue;
        int64_t from = sp_segment_time_lookup(s, ts);
        if (from < log_start)
            from = log_start;
        int64_t pos = sp_segment_find(s, from, limits[i]);
        while (pos >= 0 && pos < limits[i] && *offset < 0) {
            uint8_t hb[SP_BATCH_HEADER_SIZE];
            sp_batch_hdr_t h;
            if (sp_pread_full(s->fd, hb, sizeof(hb), pos) != 0 || sp_batch_hdr_parse(hb, sizeof(hb), &h) != 0) {
                rc = -1;
                break;
            }
            size_t bsize = SP_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
            if (h.base_offset >= hw)
                break;
            if (h.max_timestamp >= ts) {
                if (h.attributes & 0x08) { /* LogAppendTime: every record has max_timestamp */
                    *offset = h.base_offset > from ? h.base_offset : from;
                    *found_ts = h.max_timestamp;
                    break;
                }
                uint8_t *buf = malloc(bsize);
                sp_record_iter_t it;
                sp_record_t r;
                if (!buf || sp_pread_full(s->fd, buf, bsize, pos) != 0 ||
                    sp_record_iter_init(&it, buf, bsize, 0) != 0) {
                    free(buf);
                    rc = -1;
                    break;
                }
                while (sp_record_iter_next(&it, &r) == 1) {
                    if (r.timestamp >= ts && r.offset >= from) {
                        *offset = r.offset;
                        *found_ts = r.timestamp;
                        break;
                    }
                }
                sp_record_iter_free(&it);
                free(buf);
            }
            pos += (int64_t)bsize;
        }
    }
    for (int i = 0; i < n; i++)
        sp_segment_unref(segs[i]);
    free(segs);
    free(limits);
    free(maxts);
    return rc;
}

void sp_plog_max_timestamp(sp_plog_t *l, int64_t *offset, int64_t *ts)
{
    *offset = -1;
    *ts = -1;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->nsegs; i++) {
        if (l->segs[i]->max_timestamp > *ts && l->segs[i]->offset_of_max_ts >= l->log_start) {
            *ts = l->segs[i]->max_timestamp;
            *offset = l->segs[i]->offset_of_max_ts;
        }
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- scan ---------------------------------------------------------------- */

int sp_plog_scan(sp_plog_t *l, int64_t from, int (*fn)(const sp_record_t *rec, void *ctx), void *ctx)
{
    int64_t offset = from;
    for (;;) {
        sp_read_result_t rr;
        sp_plog_read(l, offset, 1 << 20, true, &rr);
        if (rr.error == SP_ERR_OFFSET_OUT_OF_RANGE && offset < rr.log_start) {
            offset = rr.log_start;
            continue;
        }
        if (rr.error || !rr.seg)
            return rr.error ? -1 : 0;
        uint8_t *buf = malloc((size_t)rr.len);
        int ok = buf && sp_pread_full(rr.seg->fd, buf, (size_t)rr.len, rr.pos) == 0;
        sp_segment_unref(rr.seg);
        int64_t next = offset;
        if (!ok || sp_batches_each_record(buf, (size_t)rr.len, fn, ctx, &next) != 0 || next <= offset) {
            free(buf);
            return -1;
        }
        free(buf);
        offset = next;
    }
}

/* ---- retention ------------------------------------------------------------ */

int sp_plog_retention(sp_plog_t *l, int64_t now)
{
    pthread_mutex_lock(&l->mu);
    if (l->deleted || !l->cfg.retention_delete || l->nsegs < 2) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int64_t hw = atomic_load(&l->hw);
    int64_t total = 0;
    for (int i = 0; i < l->nsegs; i++)
        total += atomic_load(&l->segs[i]->size);
    int drop = 0;
    /* never the active segment; never beyond what consumers may read */
    while (drop < l->nsegs - 1 && l->segs[drop + 1]->base_offset <= hw) {
        sp_segment_t *s = l->segs[drop];
        int64_t size = atomic_load(&s->size);
        bool by_time = l->cfg.retention_ms >= 0 && s->max_timestamp >= 0 &&
                       s->max_timestamp < now - l->cfg.retention_ms;
        bool by_size = l->cfg.retention_bytes >= 0 && total - size >= l->cfg.retention_bytes;
        if (!by_time && !by_size)
            break;
        total -= size;
        drop++;
    }
    if (drop == 0) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    for (int i = 0; i < drop; i++) {
        sp_segment_unlink(l->segs[i]);
        sp_segment_unref(l->segs[i]);
    }
    memmove(l->segs, l->segs + drop, sizeof(*l->segs) * (size_t)(l->nsegs - drop));
    l->nsegs -= drop;
    if (l->segs[0]->base_offset > l->log_start)
        l->log_start = l->segs[0]->base_offset;
    l->dir_dirty = true;
    int64_t start = l->log_start;
    pthread_mutex_unlock(&l->mu);
    sp_info("log", "%s: retention deleted %d segment%s; log start offset now %lld", l->dir, drop,
            drop == 1 ? "" : "s", (long long)start);
    return drop;
}

/* ---- DeleteRecords ----------------------------------------------------- */

int64_t sp_plog_delete_records(sp_plog_t *l, int64_t offset)
{
    pthread_mutex_lock(&l->mu);
    int64_t hw = atomic_load(&l->hw);
    if (l->deleted) {
        pthread_mutex_unlock(&l->mu);
        return -SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    if (offset == -1)
        offset = hw;
    if (offset < 0 || offset > hw) {
        pthread_mutex_unlock(&l->mu);
        return -SP_ERR_OFFSET_OUT_OF_RANGE;
    }
    if (offset > l->log_start)
        l->log_start = offset;
    /* whole segments below the new start go; the active one stays */
    int drop = 0;
    while (drop < l->nsegs - 1 && l->segs[drop + 1]->base_offset <= l->log_start)
        drop++;
    for (int i = 0; i < drop; i++) {
        sp_segment_unlink(l->segs[i]);
        sp_segment_unref(l->segs[i]);
    }
    if (drop) {
        memmove(l->segs, l->segs + drop, sizeof(*l->segs) * (size_t)(l->nsegs - drop));
        l->nsegs -= drop;
        l->dir_dirty = true;
    }
    int64_t ls = l->log_start;
    pthread_mutex_unlock(&l->mu);
    sp_flusher_kick(l); /* persists the log start checkpoint soon */
    return ls;
}

/* ---- flush ------------------------------------------------------------- */

bool sp_plog_flush_due(sp_plog_t *l, int64_t now)
{
    pthread_mutex_lock(&l->mu);
    bool due = !l->deleted && (l->flushed < l->leo || l->dir_dirty) &&
               (sp_log_durable(&l->cfg) || l->unflushed >= l->cfg.flush_messages ||
                now - l->last_flush_ms >= l->cfg.flush_ms || l->flush_waiters);
    pthread_mutex_unlock(&l->mu);
    return due;
}

int sp_plog_flush(sp_plog_t *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->deleted) {
        complete_flush_waiters(l, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int64_t target = l->leo;
    int first = seg_for(l, l->flushed);
    int n = l->nsegs - first;
    sp_segment_t *local[64];
    sp_segment_t **segs = n <= 64 ? local : malloc(sizeof(*segs) * (size_t)n);
    if (!segs) {
        pthread_mutex_unlock(&l->mu);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        segs[i] = l->segs[first + i];
        sp_segment_ref(segs[i]);
    }
    bool dirty = l->dir_dirty;
    l->dir_dirty = false;
    l->unflushed = 0;
    l->last_flush_ms = now_ms();
    pthread_mutex_unlock(&l->mu);

    int err = 0;
    for (int i = 0; i < n; i++)
        if (sp_segment_sync(segs[i]) != 0 && !err)
            err = errno;
    if (dirty && sp_fsync_dir(l->dir) != 0 && !err)
        err = errno;
    for (int i = 0; i < n; i++)
        sp_segment_unref(segs[i]);
    if (segs != local)
        free(segs);

    pthread_mutex_lock(&l->mu);
    if (err) {
        sp_error("log", "%s: fsync failed: %s", l->dir, strerror(err));
        l->dir_dirty |= dirty;
        complete_flush_waiters(l, SP_ERR_KAFKA_STORAGE_ERROR);
    } else {
        if (target > l->flushed)
            l->flushed = target;
        if (sp_log_durable(&l->cfg) && atomic_load(&l->hw) < l->flushed) {
            atomic_store(&l->hw, l->flushed);
            wake_fetchers(l);
        }
        complete_flush_waiters(l, 0);
    }
    pthread_mutex_unlock(&l->mu);
    return err ? -err : 0;
}

void sp_plog_close(sp_plog_t *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->nsegs)
        sp_segment_seal(active(l)); /* trims the index files to their entries */
    pthread_mutex_unlock(&l->mu);
}

void sp_plog_mark_deleted(sp_plog_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->deleted = true;
    sp_log_waiter_t *w = l->fetch_waiters;
    while (w) {
        sp_log_waiter_t *next = w->next;
        unlink_waiter(&l->fetch_waiters, w);
        w->wake(w, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        w = next;
    }
    complete_flush_waiters(l, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    for (int i = 0; i < l->nsegs; i++)
        l->segs[i]->deleted = true;
    pthread_mutex_unlock(&l->mu);
}
