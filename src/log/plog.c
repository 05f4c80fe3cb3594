/* plog.c - a partition log (see plog.h for layout and invariants). */
#include "log/plog.h"
#include "log/plog_internal.h"

#include "log/cleaner.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/batch.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

static sp_segment_t *active(const sp_plog_t *l) { return l->segs[l->nsegs - 1]; }

static void kick(sp_plog_t *l)
{
    if (l->hooks.kick)
        l->hooks.kick(l->hooks.ctx, l);
}

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

/* ---- failure ------------------------------------------------------------- */

/* mu held: the offsets and state the listener is told of. */
static void snapshot_locked(const sp_plog_t *l, sp_log_offsets_t *o)
{
    o->log_start = l->log_start;
    o->hw = atomic_load(&l->hw);
    o->leo = l->leo;
    o->flushed = l->flushed;
    o->durable = sp_log_durable(&l->cfg);
    o->failed = l->state == SP_PLOG_FAILED;
    o->deleted = l->deleted;
}

/* mu not held: tells the listener (invariant 5). */
static void notify(sp_plog_t *l, const sp_log_offsets_t *o)
{
    pthread_rwlock_rdlock(&l->lis_rw);
    if (l->listener)
        l->listener(l->listener_ctx, l, o);
    pthread_rwlock_unlock(&l->lis_rw);
}

void sp_plog_set_listener(sp_plog_t *l, sp_plog_listener_fn fn, void *ctx)
{
    pthread_rwlock_wrlock(&l->lis_rw);
    l->listener = fn;
    l->listener_ctx = ctx;
    pthread_rwlock_unlock(&l->lis_rw);
}

void sp_plog_set_hw(sp_plog_t *l, int64_t hw)
{
    atomic_store(&l->hw, hw);
}

/* mu held.  Returns true if this call made the log FAILED.  A deleted
 * log never fails: its directory was renamed away, so I/O by path racing
 * the deletion (a flush, a reopen in the fd cache) is expected to fail. */
static bool fail_locked(sp_plog_t *l, const char *why)
{
    if (l->state == SP_PLOG_FAILED || l->deleted)
        return false;
    l->state = SP_PLOG_FAILED;
    l->fail_reason = why;
    return true;
}

void sp_plog_fail(sp_plog_t *l, const char *why, int err)
{
    pthread_mutex_lock(&l->mu);
    bool now = fail_locked(l, why);
    int64_t flushed = l->flushed;
    sp_log_offsets_t o;
    snapshot_locked(l, &o);
    pthread_mutex_unlock(&l->mu);
    if (!now)
        return;
    notify(l, &o);
    sp_error("log", "%s: %s%s%s; the log is offline (KAFKA_STORAGE_ERROR) until the broker restarts; "
             "offsets below %" PRId64 " are on disk", l->dir, why, err ? ": " : "",
             err ? strerror(err) : "", flushed);
    if (err && l->hooks.failed)
        l->hooks.failed(l->hooks.ctx, l, err);
}

/* Whether an errno means the disk or file failed (the log goes offline)
 * rather than a resource the broker ran short of for a moment. */
static bool is_io_failure(int err)
{
    return err != ENOSPC && err != EDQUOT && err != EMFILE && err != ENFILE && err != ENOMEM &&
           err != EINTR && err != EAGAIN;
}

/* ---- open and recovery ------------------------------------------------- */

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
                                          (size_t)l->cfg.segment_index_bytes, l->files);
        if (s && !last && i > 0 && atomic_load(&s->size) == 0) {
            /* an empty segment before the active one holds nothing, and
             * its base would claim offsets its predecessor holds (the
             * first may be empty: the cleaner keeps it, its base is where
             * the log starts) */
            sp_warn("log", "%s: removing the empty segment %s", l->dir, s->path);
            sp_segment_unlink(s);
            sp_segment_unref(s);
            l->dir_dirty = true;
            continue;
        }
        if (!s || push_seg(l, s) != 0) {
            sp_segment_unref(s);
            free(bases);
            return -1;
        }
    }
    free(bases);
    return 0;
}

/* Drops segments from index i on (after a torn tail in segment i-1, as
 * Kafka's recovery does: nothing after a tear was acknowledged durable). */
static void drop_segments_from(sp_plog_t *l, int i)
{
    for (int k = l->nsegs - 1; k >= i; k--) {
        sp_warn("log", "%s: deleting segment %s after a torn one", l->dir, l->segs[k]->path);
        sp_segment_unlink(l->segs[k]);
        sp_segment_unref(l->segs[k]);
    }
    l->nsegs = i;
    l->dir_dirty = true;
}

/* A sealed segment recovery does not scan: its indexes are checked, and
 * rebuilt from the log when in doubt (Kafka's sanityCheck, and more). */
static void check_sealed(sp_plog_t *l, sp_segment_t *s, int64_t next_base)
{
    const char *why = NULL;
    if (sp_segment_check_indexes(s, next_base, &why) == 0)
        return;
    sp_warn("log", "%s: rebuilding the indexes of %s from the log: %s", l->dir, s->path, why);
    int64_t end = sp_segment_reindex(s, l->cfg.index_interval_bytes);
    int64_t size = atomic_load(&s->size);
    if (end < size) {
        atomic_store(&s->damaged_at, end);
        sp_error("log", "%s: %s is damaged at position %" PRId64 " of %" PRId64
                 " (a batch header that cannot be right); reads there answer CORRUPT_MESSAGE",
                 l->dir, s->path, end, size);
    }
}

/* Recovery (see sp_plog_open).  0, or -1: the open fails (I/O error, or
 * strict damage). */
static int recover(sp_plog_t *l, bool clean, int64_t recovery_point, bool strict)
{
    int64_t total_batches = 0, truncated = 0;
    int scanned = 0;
    for (int i = 0; i < l->nsegs; i++) {
        sp_segment_t *s = l->segs[i];
        bool is_last = i == l->nsegs - 1;
        int64_t next_base = is_last ? INT64_MAX : l->segs[i + 1]->base_offset;
        if (!is_last && (clean || next_base <= recovery_point)) {
            check_sealed(l, s, next_base);
            /* (compaction leaves such gaps: its last records removed) */
            if (s->next_offset < next_base && atomic_load(&s->damaged_at) < 0 && !l->cfg.compact)
                sp_warn("log", "%s: offsets %" PRId64 "..%" PRId64 " are in no segment (a segment "
                        "file is missing?); fetches there continue at %" PRId64, l->dir,
                        s->next_offset, next_base - 1, next_base);
            continue;
        }
        sp_recover_result_t rr;
        if (sp_segment_recover(s, clean && is_last, l->cfg.index_interval_bytes, &rr) != 0) {
            sp_error("log", "%s: cannot recover %s: %s", l->dir, s->path, strerror(errno));
            return -1;
        }
        scanned++;
        total_batches += rr.batches;
        if (rr.index_past_end) {
            if (strict) {
                sp_error("log", "%s: %s is shorter than its index says (it was cut or replaced since "
                         "the clean shutdown); refusing to start rather than lose metadata: restore "
                         "the file", l->dir, s->path);
                return -1;
            }
            sp_error("log", "%s: %s is shorter than its index says: data was removed outside the "
                     "broker since its clean shutdown", l->dir, s->path);
        }
        if (rr.end == rr.file_size)
            continue;
        int64_t cut = rr.file_size - rr.end;
        if (strict && (clean || rr.valid_after)) {
            sp_error("log", "%s: %s is damaged at position %" PRId64 " of %" PRId64 " (%s); "
                     "refusing to start rather than lose metadata: restore the file, or move the "
                     "directory aside to start with no topics (their data is kept as -stray)",
                     l->dir, s->path, rr.end, rr.file_size,
                     rr.valid_after ? "valid batches follow it" : "the log was shut down cleanly");
            return -1;
        }
        if (rr.valid_after) {
            atomic_store(&s->damaged_at, rr.end);
            atomic_store(&s->size, rr.end); /* reads stop before the damage */
            sp_error("log", "%s: %s is damaged at position %" PRId64 " of %" PRId64
                     " and valid batches follow: this is not a torn tail, so nothing is truncated",
                     l->dir, s->path, rr.end, rr.file_size);
            l->state = SP_PLOG_FAILED;
            l->fail_reason = "a segment is damaged in the middle";
            return 0;
        }
        if (sp_segment_truncate_at(s, rr.end) != 0) {
            sp_error("log", "%s: cannot truncate %s: %s", l->dir, s->path, strerror(errno));
            return -1;
        }
        truncated += cut;
        sp_warn("log", "%s: truncated %" PRId64 " bytes of torn or corrupt data at the end of %s "
                "(last valid offset %" PRId64 ")", l->dir, cut, s->path, s->next_offset - 1);
        if (!is_last) {
            drop_segments_from(l, i + 1);
            break;
        }
    }
    if (!clean)
        sp_info("log", "%s: recovered %d segment%s after an unclean shutdown: %" PRId64
                " batches checked, %" PRId64 " bytes truncated", l->dir, scanned,
                scanned == 1 ? "" : "s", total_batches, truncated);
    return 0;
}

/*
 * The segments' aborted-transaction indexes after recovery: entries whose
 * markers are past the data the segment kept are dropped (a torn tail cut
 * them away, or the file got ahead of the data), a damaged file is cut to
 * its valid prefix, and txn_rebuild_from says from where the owner must
 * re-add entries (txnindex.h: a damaged segment's base; after a crash the
 * recovery point, past which entries may not have reached the disk).
 */
static void check_txnindexes(sp_plog_t *l, bool clean, int64_t recovery_point)
{
    l->txn_rebuild_from = clean ? INT64_MAX : (recovery_point > 0 ? recovery_point : 0);
    for (int i = 0; i < l->nsegs; i++) {
        sp_segment_t *s = l->segs[i];
        int64_t end = s->next_offset > s->base_offset ? s->next_offset : s->base_offset;
        int n = sp_txnindex_count(s->txn);
        int rc = sp_txnindex_truncate(s->txn, end);
        if (rc == 0 && sp_txnindex_count(s->txn) < n)
            sp_warn("log", "%s: dropped %d aborted-transaction entr%s of segment %" PRId64
                    " whose markers are past its end (%" PRId64 ")", l->dir, n - sp_txnindex_count(s->txn),
                    n - sp_txnindex_count(s->txn) == 1 ? "y" : "ies", s->base_offset, end);
        if (s->txn_damaged) {
            sp_warn("log", "%s: the .txnindex of segment %" PRId64 " is damaged (%s): keeping its %d valid "
                    "entries and rebuilding the rest from the log", l->dir, s->base_offset, s->txn_damaged,
                    sp_txnindex_count(s->txn));
            rc = rc ? rc : sp_txnindex_rewrite(s->txn);
            if (s->base_offset < l->txn_rebuild_from)
                l->txn_rebuild_from = s->base_offset;
            s->txn_damaged = NULL;
        }
        if (rc != 0)
            sp_warn("log", "%s: cannot rewrite the .txnindex of segment %" PRId64 ": %s", l->dir,
                    s->base_offset, strerror(-rc));
    }
}

sp_plog_t *sp_plog_open(const sp_plog_open_opts_t *o)
{
    sp_plog_t *l = calloc(1, sizeof(*l));
    bool made = false; /* the directory is ours: removed again on failure */
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->append_mu, NULL);
    pthread_rwlock_init(&l->lis_rw, NULL);
    atomic_init(&l->refs, 1);
    atomic_init(&l->clean_horizon, INT64_MAX);
    l->dir = strdup(o->dir);
    l->topic = strdup(o->topic);
    l->partition = o->partition;
    l->topic_id = o->topic_id;
    l->cfg = *o->cfg;
    l->files = o->files;
    l->hooks = o->hooks;
    l->last_flush_ms = sp_mono_ms();
    if (!l->dir || !l->topic)
        goto fail;
    struct stat st;
    bool exists = stat(o->dir, &st) == 0;
    made = !exists;
    if (!exists) {
        if (!o->create || sp_mkdirs(o->dir) != 0) {
            sp_error("log", "cannot create %s: %s", o->dir, strerror(errno));
            goto fail;
        }
        write_partition_metadata(o->dir, o->topic_id);
        /* Kafka's leader epoch cache: version 0, one entry, epoch 0 from
         * offset 0 (a single node never changes leader) */
        if (sp_write_file_atomic(o->dir, "leader-epoch-checkpoint", "0\n1\n0 0\n", 8) != 0)
            sp_warn("log", "cannot write %s/leader-epoch-checkpoint: %s", o->dir, strerror(errno));
        if (sp_fsync_parent(o->dir) != 0) {
            sp_error("log", "cannot sync the directory holding %s: %s", o->dir, strerror(errno));
            goto fail;
        }
    }
    if (exists && sp_clean_recover_dir(o->dir) != 0)
        goto fail;
    if (load_segments(l) != 0)
        goto fail;
    if (l->nsegs == 0) {
        int64_t base = o->log_start > 0 ? o->log_start : 0;
        sp_segment_t *s = sp_segment_open(o->dir, base, true, true, (size_t)o->cfg->segment_index_bytes,
                                          l->files);
        if (!s || push_seg(l, s) != 0) {
            sp_segment_unref(s);
            goto fail;
        }
        s->next_offset = base;
        l->dir_dirty = true;
    } else if (recover(l, o->clean && exists, o->recovery_point, o->strict) != 0) {
        goto fail;
    }
    sp_segment_t *a = active(l);
    l->leo = a->next_offset > a->base_offset ? a->next_offset : a->base_offset;
    l->log_start = o->log_start > l->segs[0]->base_offset ? o->log_start : l->segs[0]->base_offset;
    if (l->log_start > l->leo) {
        sp_warn("log", "%s: the log start offset %" PRId64 " of the checkpoint is past the end of the "
                "log (%" PRId64 "); using the end", o->dir, l->log_start, l->leo);
        l->log_start = l->leo;
    }
    check_txnindexes(l, o->clean && exists, o->recovery_point);
    /* what recovery read is on disk now (or in the page cache of a living
     * kernel, which fsync makes certain), and so are rebuilt indexes */
    if (l->state == SP_PLOG_OK) {
        for (int i = 0; i < l->nsegs; i++) {
            sp_segment_t *s = l->segs[i];
            int rc = 0;
            if (s->next_offset > o->recovery_point || !o->clean)
                rc = sp_segment_sync(s);
            if (rc == 0 && s->sealed)
                rc = sp_segment_persist_indexes(s);
            if (rc != 0) {
                sp_error("log", "%s: cannot sync %s: %s", o->dir, s->path, strerror(-rc));
                goto fail;
            }
        }
    }
    l->flushed = l->leo;
    l->settled = l->leo;
    atomic_store(&l->hw, l->leo);
    l->opened_clean = o->clean && exists;
    return l;
fail:
    sp_plog_unref(l);
    if (made) /* a half-made new log leaves nothing behind */
        sp_rm_tree(o->dir);
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
    pthread_rwlock_destroy(&l->lis_rw);
    free(l);
}

const char *sp_plog_dir(const sp_plog_t *l) { return l->dir; }
bool sp_plog_opened_clean(const sp_plog_t *l) { return l->opened_clean; }

int64_t sp_plog_size(sp_plog_t *l)
{
    int64_t total = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->nsegs; i++)
        total += atomic_load(&l->segs[i]->size);
    pthread_mutex_unlock(&l->mu);
    return total;
}

const char *sp_log_err_name(sp_log_err_t e)
{
    static const char *names[] = { "OK",     "EINVALID", "ETOO_LARGE", "ECORRUPT",
                                   "EIO",    "EFAILED",  "EDELETED",   "ERANGE",
                                   "EREFUSED" };
    return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

void sp_plog_offsets(sp_plog_t *l, sp_log_offsets_t *out)
{
    pthread_mutex_lock(&l->mu);
    snapshot_locked(l, out);
    pthread_mutex_unlock(&l->mu);
}

void sp_plog_config(sp_plog_t *l, sp_log_config_t *out)
{
    pthread_mutex_lock(&l->mu);
    *out = l->cfg;
    pthread_mutex_unlock(&l->mu);
}

void sp_plog_set_config(sp_plog_t *l, const sp_log_config_t *cfg)
{
    pthread_mutex_lock(&l->mu);
    l->cfg = *cfg;
    pthread_mutex_unlock(&l->mu);
}

/* mu held: the error a new reader or writer gets at once, or 0. */
static sp_log_err_t gone_error(const sp_plog_t *l)
{
    if (l->deleted)
        return SP_LOG_EDELETED;
    if (l->state == SP_PLOG_FAILED)
        return SP_LOG_EFAILED;
    return SP_LOG_OK;
}

/* ---- append ------------------------------------------------------------ */

/* mu held: a new active segment at leo.  Creating its .log is the only
 * file I/O under mu; the old segment is sealed in memory and its index
 * files are written by the flush thread (segment.h). */
static int roll(sp_plog_t *l, const sp_log_config_t *cfg)
{
    sp_segment_t *old = active(l);
    sp_segment_t *s = sp_segment_open(l->dir, l->leo, true, true, (size_t)cfg->segment_index_bytes,
                                      l->files);
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

/* The plan of an append: one entry per batch, from the one parse. */
typedef struct plan {
    int n;
    int32_t *size;
    int32_t *lod;                 /* last offset delta */
    int64_t *ts;                  /* batch max timestamp (header) */
    int64_t *last;                /* last offset, once assigned */
    int32_t size_[8], lod_[8];
    int64_t ts_[8], last_[8];
} plan_t;

static int plan_alloc(plan_t *p, int n)
{
    p->n = n;
    if (n <= 8) {
        p->size = p->size_;
        p->lod = p->lod_;
        p->ts = p->ts_;
        p->last = p->last_;
        return 0;
    }
    p->size = malloc(sizeof(int32_t) * (size_t)n);
    p->lod = malloc(sizeof(int32_t) * (size_t)n);
    p->ts = malloc(sizeof(int64_t) * (size_t)n);
    p->last = malloc(sizeof(int64_t) * (size_t)n);
    return p->size && p->lod && p->ts && p->last ? 0 : -1;
}

static void plan_free(plan_t *p)
{
    if (p->size != p->size_) {
        free(p->size);
        free(p->lod);
        free(p->ts);
        free(p->last);
    }
}

/* Calls hooks->check for each batch (append_mu held): 0, or non-zero when
 * the owner stopped the append. */
static int run_checks(sp_plog_t *l, const uint8_t *records, const plan_t *plan, const sp_append_hooks_t *hooks)
{
    size_t off = 0;
    int64_t next = l->leo; /* written only under append_mu, which we hold */
    for (int i = 0; i < plan->n; i++) {
        sp_batch_hdr_t h;
        sp_batch_hdr_parse(records + off, (size_t)plan->size[i], &h);
        if (hooks->check(hooks->ctx, records + off, (size_t)plan->size[i], &h, next) != 0)
            return -1;
        next += (int64_t)plan->lod[i] + 1;
        off += (size_t)plan->size[i];
    }
    return 0;
}

/* Calls hooks->appended for each batch of a published append (append_mu held). */
static void run_appended(const uint8_t *records, const plan_t *plan, const sp_append_hooks_t *hooks,
                         int64_t rolled_at)
{
    size_t off = 0;
    for (int i = 0; i < plan->n; i++) {
        sp_batch_hdr_t h;
        sp_batch_hdr_parse(records + off, (size_t)plan->size[i], &h);
        hooks->appended(hooks->ctx, records + off, (size_t)plan->size[i], &h, i == 0 ? rolled_at : -1);
        off += (size_t)plan->size[i];
    }
}

void sp_plog_append_from(sp_plog_t *l, uint8_t *records, size_t len, int64_t now,
                         const sp_batch_validate_opts_t *origin, const sp_append_hooks_t *hooks,
                         sp_append_result_t *res)
{
    sp_batch_validate_opts_t opts;
    sp_log_config_t cfg;
    plan_t plan;
    size_t off = 0;
    int64_t nrecords = 0;
    int nbatches = 0;

    memset(res, 0, sizeof(*res));
    res->base_offset = -1;
    res->log_append_time = -1;
    res->last_offset = -1;
    plan.size = NULL;
    sp_plog_config(l, &cfg); /* one consistent snapshot for this append */
    if (origin) {
        opts = *origin;
    } else {
        memset(&opts, 0, sizeof(opts));
        opts.require_keys = cfg.compact;
    }
    if (len == 0) {
        res->err = SP_LOG_ECORRUPT;
        res->message = "no record batch";
        return;
    }
    /* 1. frame and validate every batch, outside the lock: the plan */
    while (off < len) {
        size_t bs;
        if (sp_batch_next(records + off, len - off, &bs) != 1) {
            res->err = SP_LOG_ECORRUPT;
            res->message = "truncated or malformed record batch";
            return;
        }
        off += bs;
        nbatches++;
    }
    if (plan_alloc(&plan, nbatches) != 0) {
        plan_free(&plan);
        res->err = SP_LOG_EIO;
        res->message = "out of memory";
        return;
    }
    int64_t max_ts = -1;
    off = 0;
    for (int i = 0; i < nbatches; i++) {
        size_t bs;
        sp_batch_info_t info;
        sp_batch_next(records + off, len - off, &bs);
        if ((int64_t)bs > cfg.max_message_bytes) {
            res->err = SP_LOG_ETOO_LARGE;
            res->message = "record batch larger than max.message.bytes";
            goto out;
        }
        int err = sp_batch_validate(records + off, bs, &opts, &info);
        if (err) {
            res->err = SP_LOG_EINVALID;
            res->invalid = (int16_t)err;
            res->message = info.reason ? info.reason : "invalid record batch";
            goto out;
        }
        plan.size[i] = (int32_t)bs;
        plan.lod[i] = info.hdr.last_offset_delta;
        plan.ts[i] = cfg.log_append_time ? now : info.hdr.max_timestamp;
        nrecords += info.hdr.record_count;
        if (plan.ts[i] > max_ts)
            max_ts = plan.ts[i];
        off += bs;
    }

    /* 2. assign offsets under both locks; write holding only the append
     * lock, so that the flush thread and readers never wait for a write */
    pthread_mutex_lock(&l->append_mu);
    if (hooks && hooks->check && run_checks(l, records, &plan, hooks) != 0) {
        pthread_mutex_unlock(&l->append_mu);
        res->err = SP_LOG_EREFUSED;
        goto out;
    }
    pthread_mutex_lock(&l->mu);
    sp_log_err_t gone = gone_error(l);
    if (gone) {
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_unlock(&l->append_mu);
        res->err = gone;
        if (gone == SP_LOG_EFAILED)
            res->message = "the log is offline after a storage error";
        goto out;
    }
    sp_segment_t *a = active(l);
    int64_t asize = atomic_load(&a->size);
    int64_t rolled_at = -1;
    if (asize > 0 && (asize + (int64_t)len > cfg.segment_bytes ||
                      sp_wall_ms() - a->created_ms >= cfg.segment_ms ||
                      l->leo - a->base_offset + nrecords > (int64_t)UINT32_MAX ||
                      sp_segment_index_full(a))) {
        if (roll(l, &cfg) != 0) {
            pthread_mutex_unlock(&l->mu);
            pthread_mutex_unlock(&l->append_mu);
            res->err = SP_LOG_EIO;
            res->message = "cannot roll a new segment";
            goto out;
        }
        a = active(l);
        rolled_at = l->leo;
    }
    int64_t next = l->leo, offset_of_max = l->leo;
    bool found_max = false;
    off = 0;
    for (int i = 0; i < nbatches; i++) {
        sp_batch_set_base_offset(records + off, next);
        sp_batch_set_leader_epoch(records + off, l->leader_epoch);
        if (cfg.log_append_time)
            sp_batch_set_log_append_time(records + off, (size_t)plan.size[i], now);
        plan.last[i] = next + plan.lod[i];
        if (!found_max && plan.ts[i] == max_ts) {
            offset_of_max = plan.last[i];
            found_max = true;
        }
        next = plan.last[i] + 1;
        off += (size_t)plan.size[i];
    }
    int64_t pos = atomic_load(&a->size);
    sp_segment_ref(a);
    pthread_mutex_unlock(&l->mu);

    int rc = sp_segment_write(a, records, len, pos);

    pthread_mutex_lock(&l->mu);
    gone = gone_error(l); /* deleted or failed during the write: nothing to publish */
    if (rc != 0 || gone) {
        bool fail = rc != 0 && !gone && is_io_failure(-rc);
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_unlock(&l->append_mu);
        sp_segment_unref(a);
        if (gone) {
            res->err = gone;
            goto out;
        }
        if (fail)
            sp_plog_fail(l, "a write to the log failed", -rc);
        else
            sp_error("log", "%s: append failed: %s", l->dir, strerror(-rc));
        res->err = fail ? SP_LOG_EFAILED : SP_LOG_EIO;
        res->message = "write to the log failed";
        goto out;
    }
    sp_segment_commit(a, pos, len, nbatches, plan.size, plan.last, plan.ts, max_ts, offset_of_max,
                      cfg.index_interval_bytes);
    sp_segment_unref(a);
    res->base_offset = l->leo;
    res->last_offset = next - 1;
    res->log_append_time = cfg.log_append_time ? now : -1;
    l->leo = next;
    bool hooked = hooks && hooks->appended;
    if (!hooked)
        l->settled = next;
    l->unflushed += nrecords;
    res->log_start = l->log_start;
    bool want_flush = sp_log_durable(&cfg) || l->unflushed >= cfg.flush_messages;
    sp_log_offsets_t o;
    snapshot_locked(l, &o);
    pthread_mutex_unlock(&l->mu);
    if (hooked) {
        run_appended(records, &plan, hooks, rolled_at);
        pthread_mutex_lock(&l->mu);
        l->settled = next; /* a flush may pass it now (see plog_internal.h) */
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(&l->append_mu);
    notify(l, &o);
    if (want_flush)
        kick(l);
out:
    plan_free(&plan);
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

/* A damaged batch found by a read: logged once per segment. */
static void note_damage(sp_plog_t *l, sp_segment_t *s, int64_t pos)
{
    int64_t none = -1;
    if (atomic_compare_exchange_strong(&s->damaged_at, &none, pos))
        sp_error("log", "%s: %s is damaged at position %" PRId64 " (a batch header that cannot be "
                 "right); fetches there answer CORRUPT_MESSAGE", l->dir, s->path, pos);
}

/* A read that could not read the file: the log goes offline unless the
 * broker only ran short of fds or memory for a moment. */
static sp_log_err_t read_failed(sp_plog_t *l, sp_segment_t *s, int err)
{
    if (is_io_failure(err)) {
        sp_plog_fail(l, "a read of a segment failed", err);
        return SP_LOG_EFAILED;
    }
    sp_warn("log", "%s: cannot read %s: %s", l->dir, s->path, strerror(err));
    return SP_LOG_EIO;
}

void sp_read_result_release(sp_read_result_t *res)
{
    if (res->seg) {
        sp_segment_unpin(res->seg);
        sp_segment_unref(res->seg);
    }
    res->seg = NULL;
    res->fd = -1;
}

void sp_segment_hold(sp_segment_t *s)
{
    sp_segment_ref(s);
    sp_segment_pin(s); /* pinned already by the read: cannot fail */
}

void sp_segment_release(void *seg)
{
    sp_segment_unpin(seg);
    sp_segment_unref(seg);
}

void sp_plog_read(sp_plog_t *l, int64_t offset, int64_t max_offset, int32_t max_bytes, bool min_one,
                  sp_read_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->fd = -1;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        int64_t hw = max_offset < l->leo ? max_offset : l->leo;
        res->log_start = l->log_start;
        res->leo = l->leo;
        sp_log_err_t gone = gone_error(l);
        if (gone) {
            pthread_mutex_unlock(&l->mu);
            res->err = gone;
            return;
        }
        if (offset < l->log_start || offset > l->leo) {
            pthread_mutex_unlock(&l->mu);
            res->err = SP_LOG_ERANGE;
            return;
        }
        if (offset >= hw || max_bytes <= 0) {
            pthread_mutex_unlock(&l->mu);
            return;
        }
        int i = seg_for(l, offset);
        sp_segment_t *s = l->segs[i];
        int64_t limit = atomic_load(&s->size);
        int64_t next_base = i + 1 < l->nsegs ? l->segs[i + 1]->base_offset : -1;
        sp_segment_ref(s);
        pthread_mutex_unlock(&l->mu);

        int64_t bad = -1;
        int64_t pos = sp_segment_find(s, offset, limit, &bad);
        if (pos == SP_SEG_CORRUPT) {
            note_damage(l, s, bad);
            sp_segment_unref(s);
            res->err = SP_LOG_ECORRUPT;
            return;
        }
        if (pos < 0) {
            res->err = read_failed(l, s, errno ? errno : EIO);
            sp_segment_unref(s);
            return;
        }
        if (pos == limit) {
            sp_segment_unref(s);
            int64_t damaged = atomic_load(&s->damaged_at);
            if (damaged >= 0 && damaged <= limit) {
                res->err = SP_LOG_ECORRUPT; /* the rest of this segment is unreadable */
                return;
            }
            if (next_base >= 0 && next_base <= hw && next_base > offset) {
                offset = next_base; /* a gap (a missing segment): go on, as Kafka */
                continue;
            }
            return;
        }
        sp_seg_reader_t *r = malloc(sizeof(*r));
        if (!r || sp_seg_reader_init(r, s, pos, limit) != 0) {
            int err = r ? -r->fd : ENOMEM;
            free(r);
            res->err = read_failed(l, s, err);
            sp_segment_unref(s);
            return;
        }
        int64_t end = pos;
        sp_seg_batch_t b;
        int rc;
        while ((rc = sp_seg_reader_next(r, &b)) == SP_SEG_BATCH) {
            if (b.last >= hw)
                break; /* batches must end below hw */
            if (b.pos + b.size - pos > max_bytes && !(min_one && b.pos == pos))
                break;
            end = b.pos + b.size;
            if (end - pos >= max_bytes)
                break;
        }
        if (rc == SP_SEG_CORRUPT)
            note_damage(l, s, r->pos);
        int fd = r->fd;
        r->fd = -1; /* the pin moves to the result */
        free(r);
        if (end == pos) {
            sp_segment_unpin(s);
            sp_segment_unref(s);
            if (rc == SP_SEG_CORRUPT)
                res->err = SP_LOG_ECORRUPT;
            else if (rc == SP_SEG_IO)
                res->err = read_failed(l, s, errno ? errno : EIO);
            return;
        }
        res->seg = s;
        res->fd = fd;
        res->pos = pos;
        res->len = (int32_t)(end - pos);
        return;
    }
}

/* ---- timestamps -------------------------------------------------------- */

sp_log_err_t sp_plog_offset_for_time(sp_plog_t *l, int64_t ts, int64_t *offset, int64_t *found_ts)
{
    *offset = -1;
    *found_ts = -1;
    pthread_mutex_lock(&l->mu);
    sp_log_err_t gone = gone_error(l);
    if (gone) {
        pthread_mutex_unlock(&l->mu);
        return gone;
    }
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
        return SP_LOG_EIO;
    }
    for (int i = 0; i < n; i++) {
        segs[i] = l->segs[i];
        sp_segment_ref(segs[i]);
        limits[i] = atomic_load(&segs[i]->size);
        maxts[i] = segs[i]->max_timestamp;
    }
    int64_t log_start = l->log_start;
    pthread_mutex_unlock(&l->mu);

    sp_log_err_t rc = SP_LOG_OK;
    for (int i = 0; i < n && *offset < 0 && rc == SP_LOG_OK; i++) {
        sp_segment_t *s = segs[i];
        if (maxts[i] < ts)
            continue;
        /* The time index names the last offset of a batch whose records
         * may start earlier: it only positions the walk (at that batch);
         * every record from the log start on is a candidate, as in
         * Kafka's searchForTimestamp (a record of that batch can carry
         * exactly ts). */
        int64_t from = sp_segment_time_lookup(s, ts);
        if (from < log_start)
            from = log_start;
        int64_t bad = -1;
        int64_t pos = sp_segment_find(s, from, limits[i], &bad);
        sp_seg_reader_t r;
        sp_seg_batch_t b;
        if (pos < 0 || sp_seg_reader_init(&r, s, pos, limits[i]) != 0) {
            if (pos == SP_SEG_CORRUPT)
                note_damage(l, s, bad);
            rc = pos == SP_SEG_CORRUPT ? SP_LOG_ECORRUPT : SP_LOG_EIO;
            break;
        }
        int step = SP_SEG_END;
        while (*offset < 0 && (step = sp_seg_reader_next(&r, &b)) == SP_SEG_BATCH) {
            if (b.base >= hw)
                break;
            if (b.max_ts < ts)
                continue;
            if (b.attributes & SP_BATCH_ATTR_LOG_APPEND_TIME) {
                /* every record of the batch has its max timestamp */
                *offset = b.base > log_start ? b.base : log_start;
                *found_ts = b.max_ts;
                break;
            }
            /* the reader checked the size against the segment: bounded */
            uint8_t *buf = malloc((size_t)b.size);
            sp_record_iter_t it;
            sp_record_t rec;
            if (!buf || sp_pread_full(r.fd, buf, (size_t)b.size, b.pos) != 0 ||
                sp_record_iter_init(&it, buf, (size_t)b.size, 0) != 0) {
                free(buf);
                rc = SP_LOG_ECORRUPT;
                break;
            }
            while (sp_record_iter_next(&it, &rec) == 1) {
                if (rec.timestamp >= ts && rec.offset >= log_start) {
                    *offset = rec.offset;
                    *found_ts = rec.timestamp;
                    break;
                }
            }
            sp_record_iter_free(&it);
            free(buf);
        }
        if (rc == 0 && *offset < 0 && step == SP_SEG_CORRUPT) {
            note_damage(l, s, r.pos);
            rc = SP_LOG_ECORRUPT;
        }
        sp_seg_reader_done(&r);
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
    int64_t hw = atomic_load(&l->hw);
    for (int i = 0; i < l->nsegs; i++) {
        const sp_segment_t *s = l->segs[i];
        /* Kafka answers from what consumers may read: below hw */
        if (s->max_timestamp > *ts && s->offset_of_max_ts >= l->log_start && s->offset_of_max_ts < hw) {
            *ts = s->max_timestamp;
            *offset = s->offset_of_max_ts;
        }
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- segment stats ------------------------------------------------------ */

int sp_plog_segment_stats(sp_plog_t *l, sp_seg_stat_t *out, int max)
{
    pthread_mutex_lock(&l->mu);
    if (gone_error(l)) {
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    int n = l->nsegs, k = n < max ? n : max;
    sp_segment_t *local[64];
    sp_segment_t **segs = k <= 64 ? local : malloc(sizeof(*segs) * (size_t)k);
    if (!segs) {
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    for (int i = 0; i < k; i++) {
        segs[i] = l->segs[i];
        sp_segment_ref(segs[i]);
        out[i].base_offset = segs[i]->base_offset;
        out[i].size = atomic_load(&segs[i]->size);
    }
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < k; i++) {
        struct stat st;
        out[i].mtime_ms = stat(segs[i]->path, &st) == 0
                              ? (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000
                              : sp_wall_ms();
        sp_segment_unref(segs[i]);
    }
    if (segs != local)
        free(segs);
    return n;
}

/* ---- scan ---------------------------------------------------------------- */

int sp_plog_scan(sp_plog_t *l, int64_t from, int (*fn)(const sp_record_t *rec, void *ctx), void *ctx)
{
    int64_t offset = from;
    for (;;) {
        sp_read_result_t rr;
        sp_plog_read(l, offset, atomic_load(&l->hw), 1 << 20, true, &rr);
        if (rr.err == SP_LOG_ERANGE && offset < rr.log_start) {
            offset = rr.log_start;
            continue;
        }
        if (rr.err || !rr.seg)
            return rr.err ? -1 : 0;
        uint8_t *buf = malloc((size_t)rr.len);
        int ok = buf && sp_pread_full(rr.fd, buf, (size_t)rr.len, rr.pos) == 0;
        sp_read_result_release(&rr);
        int64_t next = offset;
        if (!ok || sp_batches_each_record(buf, (size_t)rr.len, fn, ctx, &next) != 0 || next <= offset) {
            free(buf);
            return -1;
        }
        free(buf);
        offset = next;
    }
}

int sp_plog_scan_batches(sp_plog_t *l, int64_t from,
                         int (*fn)(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h),
                         void *ctx)
{
    int64_t offset = from;
    for (;;) {
        sp_read_result_t rr;
        sp_plog_read(l, offset, INT64_MAX, 1 << 20, true, &rr);
        if (rr.err == SP_LOG_ERANGE && offset < rr.log_start) {
            offset = rr.log_start;
            continue;
        }
        if (rr.err || !rr.seg)
            return rr.err ? -1 : 0;
        uint8_t *buf = malloc((size_t)rr.len);
        int ok = buf && sp_pread_full(rr.fd, buf, (size_t)rr.len, rr.pos) == 0;
        sp_read_result_release(&rr);
        int64_t next = offset;
        size_t off = 0, bs;
        while (ok && off < (size_t)rr.len) {
            sp_batch_hdr_t h;
            if (sp_batch_next(buf + off, (size_t)rr.len - off, &bs) != 1 ||
                sp_batch_hdr_parse(buf + off, bs, &h) != 0) {
                ok = 0;
                break;
            }
            if (sp_batch_last_offset(&h) >= offset && fn(ctx, buf + off, bs, &h) != 0)
                ok = 0;
            next = sp_batch_next_offset(&h);
            off += bs;
        }
        free(buf);
        if (!ok || next <= offset)
            return -1;
        offset = next;
    }
}

/* ---- retention ------------------------------------------------------------ */

/* Unlinks and drops segments taken out of the log (outside mu). */
/* Segments taken out of the log (retention, DeleteRecords): renamed
 * .deleted at once, unlinked when their last reader (a fetch, the
 * cleaner) lets go, so that a reader that still holds one can reopen it. */
static void drop_taken(sp_segment_t **taken, int n)
{
    for (int i = 0; i < n; i++) {
        if (sp_segment_rename(taken[i], ".deleted", true) != 0)
            sp_segment_unlink(taken[i]);
        sp_segment_delete_later(taken[i]);
        sp_segment_unref(taken[i]);
    }
}

/* mu held: takes segs[0..drop) out of the log into a new array. */
static sp_segment_t **take_front(sp_plog_t *l, int drop)
{
    sp_segment_t **taken = malloc(sizeof(*taken) * (size_t)drop);
    if (!taken)
        return NULL;
    memcpy(taken, l->segs, sizeof(*taken) * (size_t)drop);
    memmove(l->segs, l->segs + drop, sizeof(*l->segs) * (size_t)(l->nsegs - drop));
    l->nsegs -= drop;
    l->dir_dirty = true;
    return taken;
}

int sp_plog_retention(sp_plog_t *l, int64_t now)
{
    pthread_mutex_lock(&l->mu);
    if (gone_error(l) || !l->cfg.retention_delete || l->nsegs < 2) {
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
    sp_segment_t **taken = drop ? take_front(l, drop) : NULL;
    if (!taken) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    if (l->segs[0]->base_offset > l->log_start)
        l->log_start = l->segs[0]->base_offset;
    int64_t start = l->log_start;
    pthread_mutex_unlock(&l->mu);
    drop_taken(taken, drop);
    free(taken);
    sp_info("log", "%s: retention deleted %d segment%s; log start offset now %" PRId64, l->dir, drop,
            drop == 1 ? "" : "s", start);
    kick(l); /* the directory change becomes durable */
    return drop;
}

/* ---- DeleteRecords ----------------------------------------------------- */

sp_log_err_t sp_plog_delete_records(sp_plog_t *l, int64_t offset, int64_t *new_start)
{
    pthread_mutex_lock(&l->mu);
    int64_t hw = atomic_load(&l->hw);
    sp_log_err_t gone = gone_error(l);
    if (gone) {
        pthread_mutex_unlock(&l->mu);
        return gone;
    }
    if (offset == -1)
        offset = hw;
    if (offset < 0 || offset > hw) {
        pthread_mutex_unlock(&l->mu);
        return SP_LOG_ERANGE;
    }
    if (offset > l->log_start)
        l->log_start = offset;
    /* whole segments below the new start go; the active one stays */
    int drop = 0;
    while (drop < l->nsegs - 1 && l->segs[drop + 1]->base_offset <= l->log_start)
        drop++;
    sp_segment_t **taken = drop ? take_front(l, drop) : NULL;
    if (!taken)
        drop = 0;
    *new_start = l->log_start;
    pthread_mutex_unlock(&l->mu);
    drop_taken(taken, drop);
    free(taken);
    kick(l); /* persists the log start checkpoint soon */
    return 0;
}

/* ---- flush ------------------------------------------------------------- */

bool sp_plog_flush_due(sp_plog_t *l, int64_t now)
{
    pthread_mutex_lock(&l->mu);
    bool due = !gone_error(l) && (l->flushed < l->leo || l->dir_dirty) &&
               (sp_log_durable(&l->cfg) || l->unflushed >= l->cfg.flush_messages ||
                now - l->last_flush_ms >= l->cfg.flush_ms);
    pthread_mutex_unlock(&l->mu);
    return due;
}

int sp_plog_flush(sp_plog_t *l)
{
    pthread_mutex_lock(&l->mu);
    if (gone_error(l)) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int64_t target = l->settled;
    /* the segments holding unflushed data, and sealed ones whose index
     * files are not written yet (right before the active one) */
    int first = seg_for(l, l->flushed);
    while (first > 0 && l->segs[first - 1]->idx_dirty)
        first--;
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
    l->last_flush_ms = sp_mono_ms();
    pthread_mutex_unlock(&l->mu);

    /* data first, then the index files of sealed segments, then the
     * directory (new files, unlinks): only then is target durable */
    int err = 0;
    for (int i = 0; i < n && !err; i++) {
        int rc = sp_segment_sync(segs[i]);
        if (rc == 0)
            rc = sp_txnindex_sync(segs[i]->txn); /* entries of markers below target */
        if (rc == 0 && segs[i]->sealed) {
            rc = sp_segment_persist_indexes(segs[i]);
            /* index files are not data: a full disk leaves them dirty, to
             * be written at the next flush (recovery checks them and
             * rebuilds any it doubts, invariant 2), and the log serves on */
            if (rc == -ENOSPC)
                rc = 0;
        }
        if (rc != 0)
            err = -rc;
    }
    if (!err && dirty && sp_fsync_dir(l->dir) != 0)
        err = errno;
    for (int i = 0; i < n; i++)
        sp_segment_unref(segs[i]);
    if (segs != local)
        free(segs);

    if (err) {
        pthread_mutex_lock(&l->mu);
        bool gone = l->deleted; /* deleted meanwhile: its files moved, nothing to fail */
        pthread_mutex_unlock(&l->mu);
        if (gone)
            return 0;
        /* never retried: the kernel may have dropped the pages already */
        sp_plog_fail(l, "fdatasync failed", err);
        return -err;
    }
    pthread_mutex_lock(&l->mu);
    bool moved = l->state == SP_PLOG_OK && target > l->flushed;
    if (moved)
        l->flushed = target;
    sp_log_offsets_t o;
    snapshot_locked(l, &o);
    pthread_mutex_unlock(&l->mu);
    if (moved)
        notify(l, &o);
    return 0;
}

void sp_plog_mark_unclean(sp_plog_t *l)
{
    atomic_store(&l->owner_unclean, true);
}

int sp_plog_close(sp_plog_t *l)
{
    pthread_mutex_lock(&l->mu);
    bool ok = l->state == SP_PLOG_OK && !l->deleted && !atomic_load(&l->owner_unclean);
    int n = l->nsegs;
    sp_segment_t **segs = ok ? malloc(sizeof(*segs) * (size_t)(n ? n : 1)) : NULL;
    for (int i = 0; segs && i < n; i++) {
        segs[i] = l->segs[i];
        sp_segment_ref(segs[i]);
    }
    if (ok && n)
        sp_segment_prepare_close(l->segs[n - 1]); /* the active one's files too */
    pthread_mutex_unlock(&l->mu);
    if (!ok)
        return -1;
    if (!segs)
        return -1;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && sp_segment_persist_indexes(segs[i]) != 0)
            rc = -1;
        if (rc == 0 && sp_txnindex_sync(segs[i]->txn) != 0)
            rc = -1;
        sp_segment_unref(segs[i]);
    }
    free(segs);
    if (rc == 0 && sp_fsync_dir(l->dir) != 0)
        rc = -1;
    return rc;
}

void sp_plog_mark_deleted(sp_plog_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->deleted = true;
    for (int i = 0; i < l->nsegs; i++)
        l->segs[i]->deleted = true;
    sp_log_offsets_t o;
    snapshot_locked(l, &o);
    pthread_mutex_unlock(&l->mu);
    notify(l, &o);
}

/* ---- aborted transactions (log/txnindex.h) -------------------------------- */

int64_t sp_plog_txn_rebuild_from(const sp_plog_t *l) { return l->txn_rebuild_from; }

int sp_plog_txn_append(sp_plog_t *l, const sp_aborted_txn_t *e, bool unless_present)
{
    pthread_mutex_lock(&l->mu);
    sp_log_err_t gone = gone_error(l);
    sp_segment_t *s = gone ? NULL : l->segs[seg_for(l, e->last_offset)];
    if (s)
        sp_segment_ref(s);
    pthread_mutex_unlock(&l->mu);
    if (!s)
        return 0; /* failed or deleted: nothing is served from it any more */
    int rc = 0;
    if (!unless_present || !sp_txnindex_has(s->txn, e))
        rc = sp_txnindex_append(s->txn, e);
    if (rc != 0)
        sp_error("log", "%s: cannot add the aborted transaction of producer %" PRId64 " (offsets %" PRId64
                 "..%" PRId64 ") to %s's .txnindex: %s", l->dir, e->producer_id, e->first_offset,
                 e->last_offset, s->path, strerror(-rc));
    sp_segment_unref(s);
    return rc;
}

/*
 * Kafka's LocalLog.addAbortedTransactions: the read's range ends at the
 * first offset-index entry at or past the end of the bytes read (its
 * offset), or else at the next segment's base, or else the log end; the
 * transactions aborted in it are collected from the read's segment on
 * (collectAbortedTransactions).  A read with no bytes (max_bytes 0)
 * starts from the position of 'offset' in its segment.
 */
sp_log_err_t sp_plog_aborted_txns(sp_plog_t *l, int64_t offset, const sp_read_result_t *rr,
                                  sp_aborted_list_t *out)
{
    pthread_mutex_lock(&l->mu);
    sp_log_err_t gone = gone_error(l);
    if (gone) {
        pthread_mutex_unlock(&l->mu);
        return gone;
    }
    int first = rr->seg ? seg_for(l, rr->seg->base_offset) : seg_for(l, offset);
    int n = l->nsegs - first;
    sp_segment_t *local[16];
    sp_segment_t **segs = n <= 16 ? local : malloc(sizeof(*segs) * (size_t)n);
    if (!segs) {
        pthread_mutex_unlock(&l->mu);
        return SP_LOG_EIO;
    }
    for (int i = 0; i < n; i++) {
        segs[i] = l->segs[first + i];
        sp_segment_ref(segs[i]);
    }
    int64_t limit = atomic_load(&segs[0]->size);
    int64_t leo = l->leo;
    pthread_mutex_unlock(&l->mu);

    sp_log_err_t err = SP_LOG_OK;
    int64_t end_pos;
    if (rr->seg) {
        end_pos = rr->pos + rr->len;
    } else {
        int64_t bad = -1;
        end_pos = sp_segment_find(segs[0], offset, limit, &bad);
        if (end_pos < 0)
            err = end_pos == SP_SEG_CORRUPT ? SP_LOG_ECORRUPT : SP_LOG_EIO;
    }
    int64_t upper = err ? -1 : sp_segment_index_upper(segs[0], end_pos);
    if (upper < 0)
        upper = n > 1 ? segs[1]->base_offset : leo;
    for (int i = 0; i < n && err == SP_LOG_OK; i++) {
        int rc = sp_txnindex_collect(segs[i]->txn, offset, upper, out);
        if (rc < 0)
            err = SP_LOG_EIO;
        if (rc != 0)
            break;
    }
    for (int i = 0; i < n; i++)
        sp_segment_unref(segs[i]);
    if (segs != local)
        free(segs);
    return err;
}
