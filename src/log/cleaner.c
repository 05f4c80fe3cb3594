/* cleaner.c - compaction of one partition log (see cleaner.h). */
#include "log/cleaner.h"
#include "log/plog_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/batch.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

void sp_plog_set_clean_info(sp_plog_t *l, sp_plog_clean_info_fn fn, void *ctx)
{
    pthread_rwlock_wrlock(&l->lis_rw);
    l->clean_info = (void *)fn;
    l->clean_ctx = ctx;
    pthread_rwlock_unlock(&l->lis_rw);
}

/* The owner's answer; no owner: no transaction, no producer to keep. */
static int ask_owner(sp_plog_t *l, int64_t *first_unstable, sp_producer_last_t **v, int *n)
{
    *first_unstable = INT64_MAX;
    if (v) {
        *v = NULL;
        *n = 0;
    }
    int rc = 0;
    pthread_rwlock_rdlock(&l->lis_rw);
    sp_plog_clean_info_fn fn = (sp_plog_clean_info_fn)l->clean_info;
    if (fn)
        rc = fn(l->clean_ctx, first_unstable, v, n);
    pthread_rwlock_unlock(&l->lis_rw);
    return rc;
}

/* ---- choosing --------------------------------------------------------------- */

/* The max timestamp of the first batch of s (Kafka's getFirstBatchTimestamp),
 * or INT64_MAX. */
static int64_t first_batch_ts(sp_segment_t *s)
{
    sp_seg_reader_t r;
    sp_seg_batch_t b;
    int64_t ts = INT64_MAX;
    if (sp_seg_reader_init(&r, s, 0, atomic_load(&s->size)) != 0)
        return ts;
    if (sp_seg_reader_next(&r, &b) == SP_SEG_BATCH)
        ts = b.max_ts;
    sp_seg_reader_done(&r);
    return ts;
}

int sp_plog_clean_check(sp_plog_t *l, int64_t checkpoint, int64_t now, sp_clean_candidate_t *c)
{
    memset(c, 0, sizeof(*c));
    int64_t first_unstable;
    if (ask_owner(l, &first_unstable, NULL, NULL) != 0)
        return 0;
    pthread_mutex_lock(&l->mu);
    if (l->deleted || l->state != SP_PLOG_OK || !l->cfg.compact || l->nsegs < 2) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    sp_log_config_t cfg = l->cfg;
    int64_t fd = checkpoint;
    if (fd < l->log_start || fd > l->leo)
        fd = l->log_start;
    int64_t u = l->segs[l->nsegs - 1]->base_offset;
    int64_t hw = atomic_load(&l->hw);
    if (hw < u)
        u = hw;
    if (l->flushed < u)
        u = l->flushed;
    if (first_unstable < u)
        u = first_unstable;
    /* whole segments only: the base of the segment holding u */
    int ns = l->nsegs - 1, first = -1, end = 0;
    while (end < ns && l->segs[end + 1]->base_offset <= u)
        end++;
    /* segs[0..end) lie wholly below u */
    for (int i = 0; i < end; i++) {
        sp_segment_t *s = l->segs[i];
        int64_t next = l->segs[i + 1]->base_offset;
        if (cfg.min_compaction_lag_ms > 0 && next > fd && s->max_timestamp > now - cfg.min_compaction_lag_ms) {
            end = i; /* too young, and so is everything after it */
            break;
        }
        /* Kafka's LogToClean: segments starting below the first dirty
         * offset are clean, segments reaching past it dirty (the one
         * holding it is both) */
        if (s->base_offset < fd)
            c->clean_bytes += atomic_load(&s->size);
        if (next > fd) {
            if (first < 0)
                first = i;
            c->dirty_bytes += atomic_load(&s->size);
        }
    }
    c->first_dirty = fd;
    c->uncleanable = l->segs[end]->base_offset;
    sp_segment_t *oldest = first >= 0 ? l->segs[first] : NULL;
    if (oldest)
        sp_segment_ref(oldest);
    pthread_mutex_unlock(&l->mu);

    int64_t total = c->clean_bytes + c->dirty_bytes;
    c->ratio = total > 0 ? (double)c->dirty_bytes / (double)total : 0;
    if (oldest && cfg.max_compaction_lag_ms < INT64_MAX && cfg.max_compaction_lag_ms >= 0) {
        int64_t ts = first_batch_ts(oldest);
        c->due = ts != INT64_MAX && ts < now - cfg.max_compaction_lag_ms;
    }
    sp_segment_unref(oldest);
    bool dirty = c->dirty_bytes > 0 && (c->ratio > cfg.min_cleanable_ratio || c->due);
    bool horizon = atomic_load(&l->clean_horizon) <= now && c->clean_bytes > 0;
    c->due |= horizon;
    return dirty || horizon;
}

/* ---- reading sealed segments ------------------------------------------------ */

typedef struct cleaning {
    sp_plog_t *l;
    const sp_clean_opts_t *o;
    sp_log_config_t cfg;
    sp_clean_stats_t *st;
    sp_offset_map_t *map;
    int64_t started_mono;         /* for the throttle */
    int64_t io_bytes;             /* read + written, throttled */
    bool mapping;                 /* reads count as the map's */
    uint8_t *buf;                 /* read window */
    size_t cap;
    sp_producer_last_t *prod;     /* sorted by producer id */
    int nprod;
    sp_aborted_list_t aborted;    /* every aborted transaction, by first offset */
    sp_record_t *recs;            /* the records of the batch at hand (gather) */
    sp_okey_t *keys;              /* and their keys' hashes */
    bool *keep;                   /* and whether each stays */
    int32_t recs_cap;
} cleaning_t;

/* Decodes every record of the batch into k->recs (pointing into the batch
 * or its decompression buffer: valid until sp_record_iter_free), hashes
 * the key of each record with an offset in [min_offset, max_offset] and
 * prefetches its slot, so that the lookups that follow overlap their cache
 * misses.  The number of records, or -1 (a record that does not decode). */
static int32_t gather(cleaning_t *k, sp_record_iter_t *it, const uint8_t *b, size_t len, int32_t count,
                      int64_t min_offset, int64_t max_offset)
{
    memset(it, 0, sizeof(*it)); /* freeable whatever happens */
    if (count > k->recs_cap) {
        int32_t cap = count > 2 * k->recs_cap ? count : 2 * k->recs_cap;
        sp_record_t *r = realloc(k->recs, sizeof(*r) * (size_t)cap);
        if (r)
            k->recs = r;
        sp_okey_t *h = r ? realloc(k->keys, sizeof(*h) * (size_t)cap) : NULL;
        if (h)
            k->keys = h;
        bool *kp = h ? realloc(k->keep, sizeof(*kp) * (size_t)cap) : NULL;
        if (kp)
            k->keep = kp;
        if (!r || !h || !kp)
            return -1;
        k->recs_cap = cap;
    }
    int32_t n = 0;
    int ir = sp_record_iter_init(it, b, len, 0);
    while (ir == 0 && n < count && (ir = sp_record_iter_next(it, &k->recs[n])) == 1) {
        ir = 0;
        sp_record_t *r = &k->recs[n];
        if (r->key.len >= 0 && r->offset >= min_offset && r->offset <= max_offset) {
            sp_offset_map_hash(r->key.ptr, (size_t)r->key.len, &k->keys[n]);
            sp_offset_map_prefetch(k->map, &k->keys[n]);
        }
        n++;
    }
    return ir < 0 ? -1 : n;
}

static bool stopping(const cleaning_t *k)
{
    return k->o->stop && atomic_load(k->o->stop);
}

/* log.cleaner.io.max.bytes.per.second: sleeps while ahead of the rate. */
static void throttle(cleaning_t *k, int64_t bytes)
{
    k->io_bytes += bytes;
    if (k->o->io_bytes_per_sec <= 0)
        return;
    double want_ms = (double)k->io_bytes * 1000.0 / k->o->io_bytes_per_sec;
    for (;;) {
        int64_t ahead = (int64_t)want_ms - (sp_mono_ms() - k->started_mono);
        if (ahead <= 0 || stopping(k))
            return;
        int64_t ms = ahead < 100 ? ahead : 100;
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Batches of one sealed segment, whole and CRC-checked, through k->buf. */
typedef struct rd {
    cleaning_t *k;
    sp_segment_t *s;
    int fd;
    int64_t end;                  /* the segment's size */
    int64_t pos;                  /* file position of the next batch */
    int64_t win;                  /* file position of buf[0] */
    size_t have;                  /* bytes in buf */
} rd_t;

static int rd_open(rd_t *r, cleaning_t *k, sp_segment_t *s)
{
    memset(r, 0, sizeof(*r));
    r->k = k;
    r->s = s;
    r->end = atomic_load(&s->size);
    r->fd = sp_segment_pin(s);
    return r->fd < 0 ? -1 : 0;
}

static void rd_close(rd_t *r)
{
    if (r->fd >= 0)
        sp_segment_unpin(r->s);
    r->fd = -1;
}

/* 1 with the next batch in *p, *len and *h; 0 at the end; -1 (logged). */
static int rd_next(rd_t *r, const uint8_t **p, size_t *len, sp_batch_hdr_t *h)
{
    cleaning_t *k = r->k;
    if (r->pos >= r->end)
        return 0;
    const char *why = NULL;
    for (int pass = 0; pass < 4; pass++) {
        size_t at = (size_t)(r->pos - r->win);
        bool in = r->pos >= r->win && r->pos < r->win + (int64_t)r->have;
        size_t avail = in ? r->have - at : 0;
        size_t bsize = 0;
        if (avail >= SP_BATCH_LOG_OVERHEAD) {
            int32_t blen = (int32_t)sp_be32(k->buf + at + 8);
            if (blen < SP_BATCH_MIN_LENGTH || (int64_t)blen + SP_BATCH_LOG_OVERHEAD > r->end - r->pos) {
                why = "a batch length out of range";
                break;
            }
            bsize = (size_t)blen + SP_BATCH_LOG_OVERHEAD;
            if (avail >= bsize) {
                const uint8_t *b = k->buf + at;
                if (sp_batch_hdr_parse(b, bsize, h) != 0 || h->magic != SP_BATCH_MAGIC) {
                    why = "a bad batch header";
                    break;
                }
                if (sp_crc32c(0, b + SP_BATCH_CRC_START, bsize - SP_BATCH_CRC_START) != h->crc) {
                    why = "a CRC mismatch";
                    break;
                }
                *p = b;
                *len = bsize;
                r->pos += (int64_t)bsize;
                return 1;
            }
        }
        /* refill from r->pos, growing the buffer to hold the batch */
        size_t want = bsize > k->cap ? bsize : k->cap;
        if (want > k->cap) {
            uint8_t *nb = realloc(k->buf, want);
            if (!nb) {
                why = "out of memory";
                break;
            }
            k->buf = nb;
            k->cap = want;
        }
        size_t n = r->end - r->pos < (int64_t)k->cap ? (size_t)(r->end - r->pos) : k->cap;
        size_t got = 0;
        while (got < n) {
            ssize_t rr = pread(r->fd, k->buf + got, n - got, (off_t)(r->pos + (int64_t)got));
            if (rr < 0 && errno == EINTR)
                continue;
            if (rr <= 0)
                break;
            got += (size_t)rr;
        }
        if (got < n) {
            why = got == 0 && errno ? strerror(errno) : "a short read";
            break;
        }
        r->win = r->pos;
        r->have = got;
        if (k->mapping)
            k->st->map_bytes += (int64_t)got;
        else
            k->st->bytes_read += (int64_t)got;
        throttle(k, (int64_t)got);
    }
    sp_error("log", "%s: the cleaner stops at %s position %" PRId64 ": %s", k->l->dir, r->s->path, r->pos,
             why ? why : "a batch larger than it can read");
    return -1;
}

/* ---- transactions (Kafka's CleanedTransactionMetadata) ---------------------- */

typedef struct ongoing {
    int64_t producer_id;
    sp_aborted_txn_t txn;         /* aborted ones */
    bool observed;                /* a batch of it was read in this cleaning */
} ongoing_t;

typedef struct txnmeta {
    const sp_aborted_list_t *aborted; /* by first offset */
    int next;
    ongoing_t *ab;                /* ongoing aborted transactions */
    int nab, capab;
    int64_t *com;                 /* producers with an ongoing committed transaction */
    int ncom, capcom;
    sp_txnindex_t *cleaned;       /* the output segment's index, or NULL (mapping) */
    bool followup;                /* an ABORT marker kept for data this cleaning removes */
} txnmeta_t;

static void txn_free(txnmeta_t *t)
{
    free(t->ab);
    free(t->com);
}

static int find_ab(const txnmeta_t *t, int64_t pid)
{
    for (int i = 0; i < t->nab; i++)
        if (t->ab[i].producer_id == pid)
            return i;
    return -1;
}

static int find_com(const txnmeta_t *t, int64_t pid)
{
    for (int i = 0; i < t->ncom; i++)
        if (t->com[i] == pid)
            return i;
    return -1;
}

static void consume_upto(txnmeta_t *t, int64_t offset)
{
    while (t->next < t->aborted->n && t->aborted->v[t->next].first_offset <= offset) {
        const sp_aborted_txn_t *a = &t->aborted->v[t->next++];
        int i = find_ab(t, a->producer_id);
        if (i < 0) {
            if (t->nab == t->capab) {
                int cap = t->capab ? t->capab * 2 : 8;
                ongoing_t *n = realloc(t->ab, sizeof(*n) * (size_t)cap);
                if (!n)
                    continue; /* its batches then count as committed: kept */
                t->ab = n;
                t->capab = cap;
            }
            i = t->nab++;
        }
        t->ab[i].producer_id = a->producer_id;
        t->ab[i].txn = *a;
        t->ab[i].observed = false;
    }
}

/* A data batch: whether it belongs to an aborted transaction. */
static bool txn_on_batch(txnmeta_t *t, const sp_batch_hdr_t *h)
{
    consume_upto(t, sp_batch_last_offset(h));
    if (!sp_batch_is_transactional(h))
        return false;
    int i = find_ab(t, h->producer_id);
    if (i >= 0) {
        t->ab[i].observed = true;
        return true;
    }
    if (find_com(t, h->producer_id) < 0) {
        if (t->ncom == t->capcom) {
            int cap = t->capcom ? t->capcom * 2 : 8;
            int64_t *n = realloc(t->com, sizeof(*n) * (size_t)cap);
            if (!n)
                return false;
            t->com = n;
            t->capcom = cap;
        }
        t->com[t->ncom++] = h->producer_id;
    }
    return false;
}

/* A control batch: whether the marker may go (once its horizon passed). */
static bool txn_on_control(txnmeta_t *t, const sp_batch_hdr_t *h, const uint8_t *b, size_t len)
{
    consume_upto(t, sp_batch_last_offset(h));
    int type = sp_batch_marker_type(b, len, NULL); /* 2 (emptied), -1: neither */
    if (type == 0) {
        int i = find_ab(t, h->producer_id);
        if (i >= 0) {
            ongoing_t o = t->ab[i];
            t->ab[i] = t->ab[--t->nab];
            if (o.observed) { /* its data is still in the log: the marker and entry stay */
                if (t->cleaned)
                    sp_txnindex_append(t->cleaned, &o.txn);
                t->followup = true; /* the next cleaning may let it go */
                return false;
            }
        }
        return true;
    }
    if (type == 1) {
        int i = find_com(t, h->producer_id);
        if (i >= 0) {
            t->com[i] = t->com[--t->ncom];
            return false;
        }
        return true;
    }
    return false;
}

static int cmp_aborted(const void *a, const void *b)
{
    const sp_aborted_txn_t *x = a, *y = b;
    return x->first_offset < y->first_offset ? -1 : x->first_offset > y->first_offset;
}

/* Every aborted transaction of the segments, by first offset. */
static int collect_aborted(sp_segment_t **segs, int n, sp_aborted_list_t *out)
{
    for (int i = 0; i < n; i++) {
        int cnt = sp_txnindex_count(segs[i]->txn);
        for (int j = 0; j < cnt; j++) {
            sp_aborted_txn_t e;
            if (sp_txnindex_get(segs[i]->txn, j, &e) && sp_aborted_list_push(out, &e) != 0)
                return -1;
        }
    }
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof(*out->v), cmp_aborted);
    return 0;
}

/* ---- 1. the offset map ------------------------------------------------------ */

/* Maps the keys of segs[from..n) at offsets >= start; stops when the map
 * is full.  0, or -1 (read error). */
static int build_map(cleaning_t *k, sp_segment_t **segs, int n, int64_t start, int64_t upto)
{
    /* only transactions whose marker is at or past the start (Kafka's
     * collectAbortedTransactions(start, ...)): one aborted before it must
     * not make a later transaction of the same producer look aborted */
    sp_aborted_list_t from = { 0 };
    for (int i = 0; i < k->aborted.n; i++) {
        if (k->aborted.v[i].last_offset >= start && sp_aborted_list_push(&from, &k->aborted.v[i]) != 0) {
            sp_aborted_list_free(&from);
            return -1;
        }
    }
    txnmeta_t t = { .aborted = &from };
    sp_offset_map_t *m = k->map;
    int rc = 0;
    for (int i = 0; i < n && rc == 0 && !m->full_stop; i++) {
        sp_segment_t *s = segs[i];
        int64_t next = i + 1 < n ? segs[i + 1]->base_offset : upto;
        if (next <= start)
            continue;
        rd_t r;
        if (rd_open(&r, k, s) != 0) {
            rc = -1;
            break;
        }
        if (s->base_offset < start) { /* from the first dirty batch, by the index */
            int64_t bad, pos = sp_segment_find(s, start, r.end, &bad);
            r.pos = pos >= 0 ? pos : 0;
        }
        const uint8_t *b;
        size_t len;
        sp_batch_hdr_t h;
        int got = 0;
        while (!m->full_stop && (got = rd_next(&r, &b, &len, &h)) == 1) {
            if (sp_batch_is_control(&h)) {
                txn_on_control(&t, &h, b, len);
            } else if (!txn_on_batch(&t, &h) && sp_batch_last_offset(&h) >= start) {
                sp_record_iter_t it;
                int32_t nr = gather(k, &it, b, len, h.record_count, start, INT64_MAX);
                for (int32_t i = 0; i < nr; i++) {
                    const sp_record_t *rec = &k->recs[i];
                    k->st->map_records++;
                    if (rec->key.len < 0 || rec->offset < start)
                        continue;
                    if (sp_offset_map_full(m)) {
                        m->full_stop = true;
                        break;
                    }
                    sp_offset_map_put_hash(m, &k->keys[i], rec->offset);
                }
                sp_record_iter_free(&it);
                if (nr < 0) {
                    sp_error("log", "%s: the cleaner cannot read the records of the batch at offset %" PRId64
                             " in %s", k->l->dir, h.base_offset, s->path);
                    got = -1;
                    break;
                }
            }
            if (!m->full_stop && sp_batch_last_offset(&h) >= start)
                sp_offset_map_note(m, sp_batch_last_offset(&h));
            if (stopping(k))
                break;
        }
        rd_close(&r);
        if (got < 0)
            rc = -1;
        else if (!m->full_stop && !stopping(k))
            sp_offset_map_note(m, next - 1); /* the whole segment is mapped */
        if (stopping(k))
            rc = 1;
    }
    txn_free(&t);
    sp_aborted_list_free(&from);
    return rc;
}

/* ---- 2. copying a group ----------------------------------------------------- */

static int cmp_prod(const void *a, const void *b)
{
    const sp_producer_last_t *x = a, *y = b;
    return x->producer_id < y->producer_id ? -1 : x->producer_id > y->producer_id;
}

/* Kafka's isBatchLastRecordOfProducer. */
static bool last_of_producer(const cleaning_t *k, const sp_batch_hdr_t *h)
{
    if (h->producer_id < 0)
        return false;
    sp_producer_last_t key = { .producer_id = h->producer_id };
    const sp_producer_last_t *p = bsearch(&key, k->prod, (size_t)k->nprod, sizeof(*p), cmp_prod);
    if (!p)
        return false;
    if (p->last_data_offset >= 0)
        return sp_batch_last_offset(h) == p->last_data_offset;
    return sp_batch_is_control(h) && h->producer_epoch == p->epoch;
}

/* Kafka's shouldRetainRecord (key: r's key hashed, when it has one). */
static bool retain_record(const cleaning_t *k, const sp_batch_hdr_t *h, const sp_record_t *r, const sp_okey_t *key)
{
    if (r->offset > k->map->latest)
        return true;
    if (r->key.len < 0)
        return false;
    int64_t found = sp_offset_map_get_hash(k->map, key);
    if (r->offset < found)
        return false;
    if (r->value.len >= 0)
        return true;
    return !sp_batch_has_delete_horizon(h) || k->o->now_ms < h->base_timestamp;
}

/* Output of one group: batches gathered and written in runs. */
typedef struct out {
    sp_segment_t *seg;
    uint8_t *buf;
    size_t len, cap;
    int nb, capb;
    int32_t *bs;
    int64_t *last, *ts;
    int64_t max_ts, off_max_ts;
    int64_t pos;                  /* file size so far */
} out_t;

static int out_flush(cleaning_t *k, out_t *o)
{
    if (o->nb == 0)
        return 0;
    int rc = sp_segment_write(o->seg, o->buf, o->len, o->pos);
    if (rc != 0) {
        sp_error("log", "%s: the cleaner cannot write %s: %s", k->l->dir, o->seg->path, strerror(-rc));
        return -1;
    }
    sp_segment_commit(o->seg, o->pos, o->len, o->nb, o->bs, o->last, o->ts, o->max_ts, o->off_max_ts,
                      k->cfg.index_interval_bytes);
    o->pos += (int64_t)o->len;
    k->st->bytes_written += (int64_t)o->len;
    throttle(k, (int64_t)o->len);
    o->len = 0;
    o->nb = 0;
    o->max_ts = -1;
    return 0;
}

static int out_add(cleaning_t *k, out_t *o, const uint8_t *b, size_t len)
{
    sp_batch_hdr_t h;
    sp_batch_hdr_parse(b, len, &h);
    if (o->len + len > o->cap || o->nb == o->capb) {
        if (out_flush(k, o) != 0)
            return -1;
        if (len > o->cap) {
            uint8_t *nb = realloc(o->buf, len);
            if (!nb)
                return -1;
            o->buf = nb;
            o->cap = len;
        }
    }
    memcpy(o->buf + o->len, b, len);
    o->len += len;
    o->bs[o->nb] = (int32_t)len;
    o->last[o->nb] = sp_batch_last_offset(&h);
    o->ts[o->nb] = h.max_timestamp;
    if (o->max_ts < 0 || h.max_timestamp > o->max_ts) {
        o->max_ts = h.max_timestamp;
        o->off_max_ts = sp_batch_last_offset(&h);
    }
    o->nb++;
    if (sp_batch_has_delete_horizon(&h) && h.base_timestamp < k->st->min_horizon)
        k->st->min_horizon = h.base_timestamp;
    return 0;
}

/* One batch through Kafka's filter (LogCleaner.cleanInto). */
static int clean_batch(cleaning_t *k, txnmeta_t *t, out_t *o, const uint8_t *b, size_t len,
                       const sp_batch_hdr_t *h)
{
    bool control = sp_batch_is_control(h);
    bool can_discard = control ? txn_on_control(t, h, b, len) : txn_on_batch(t, h);
    bool discard_records = control ? can_discard && sp_batch_has_delete_horizon(h) &&
                                         h->base_timestamp <= k->o->now_ms
                                   : can_discard;
    bool retain_empty = last_of_producer(k, h);
    if (discard_records && !retain_empty)
        return 0;
    int32_t n = h->record_count;
    int32_t kept = 0, i = 0;
    bool tombstones = false, all = true;
    sp_record_iter_t it;
    /* keys looked up: those of data records the map may hold a newer one of */
    bool lookup = !discard_records && !control;
    int32_t nr = gather(k, &it, b, len, n, lookup ? INT64_MIN : INT64_MAX, lookup ? k->map->latest : INT64_MIN);
    bool *keep = k->keep;
    for (i = 0; i < nr; i++) {
        const sp_record_t *r = &k->recs[i];
        k->st->records_read++;
        bool kp = !discard_records && (control || retain_record(k, h, r, &k->keys[i]));
        keep[i] = kp;
        kept += kp;
        all &= kp;
        tombstones |= kp && r->value.len < 0;
    }
    sp_record_iter_free(&it);
    if (nr < 0) {
        sp_error("log", "%s: the cleaner cannot read the records of the batch at offset %" PRId64, k->l->dir,
                 h->base_offset);
        return -1;
    }
    all &= i == n;
    k->st->records_kept += kept;
    bool need_horizon = (tombstones || (can_discard && control)) && !sp_batch_has_delete_horizon(h);
    int rc = 0;
    if (all && !need_horizon) {
        rc = out_add(k, o, b, len);
    } else if (kept > 0 || retain_empty) {
        int64_t horizon = need_horizon                    ? k->o->now_ms + k->cfg.delete_retention_ms
                          : sp_batch_has_delete_horizon(h) ? h->base_timestamp
                                                           : -1;
        uint8_t *nb;
        size_t nlen;
        rc = sp_batch_filter(b, len, keep, n, kept > 0 ? horizon : -1, 0, &nb, &nlen);
        if (rc == 0) {
            sp_batch_set_leader_epoch(nb, h->partition_leader_epoch);
            rc = out_add(k, o, nb, nlen);
            free(nb);
        } else {
            sp_error("log", "%s: the cleaner cannot rebuild the batch at offset %" PRId64 " (%d)", k->l->dir,
                     h->base_offset, rc);
            rc = -1;
        }
    }
    return rc;
}

/* ---- 3. swapping ------------------------------------------------------------ */

/* Takes group[0..n) out of the log and puts seg (or nothing) in its
 * place, if the log still holds exactly that run.  true if done. */
static bool swap_in(sp_plog_t *l, sp_segment_t **group, int n, sp_segment_t *seg)
{
    bool done = false;
    pthread_mutex_lock(&l->mu);
    int at = -1;
    for (int i = 0; i < l->nsegs; i++)
        if (l->segs[i] == group[0]) {
            at = i;
            break;
        }
    bool same = at >= 0 && at + n < l->nsegs && !l->deleted && l->state == SP_PLOG_OK;
    for (int i = 0; same && i < n; i++)
        same = l->segs[at + i] == group[i];
    if (same) {
        int put = seg ? 1 : 0;
        memmove(l->segs + at + put, l->segs + at + n, sizeof(*l->segs) * (size_t)(l->nsegs - at - n));
        if (seg)
            l->segs[at] = seg;
        l->nsegs -= n - put;
        l->dir_dirty = true;
        done = true;
    }
    pthread_mutex_unlock(&l->mu);
    return done;
}

static void sync_dir(const char *dir)
{
    if (sp_fsync_dir(dir) != 0)
        sp_warn("log", "cannot sync %s: %s", dir, strerror(errno));
}

/* Cleans group[0..n) into one segment and swaps it in.  0, 1 (the log
 * changed: nothing swapped), -1. */
static int clean_group(cleaning_t *k, sp_segment_t **group, int n, bool first_of_log, txnmeta_t *t, int gi)
{
    sp_plog_t *l = k->l;
    out_t o = { .max_ts = -1 };
    int rc = 0;
    o.cap = k->cap > 65536 ? k->cap : 65536;
    o.capb = 4096;
    o.buf = malloc(o.cap);
    o.bs = malloc(sizeof(*o.bs) * (size_t)o.capb);
    o.last = malloc(sizeof(*o.last) * (size_t)o.capb);
    o.ts = malloc(sizeof(*o.ts) * (size_t)o.capb);
    o.seg = sp_segment_create_as(l->dir, group[0]->base_offset, ".cleaned", (size_t)k->cfg.segment_index_bytes,
                                 l->files);
    if (!o.buf || !o.bs || !o.last || !o.ts || !o.seg)
        rc = -1;
    t->cleaned = o.seg ? o.seg->txn : NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        rd_t r;
        if (rd_open(&r, k, group[i]) != 0) {
            rc = -1;
            break;
        }
        const uint8_t *b;
        size_t len;
        sp_batch_hdr_t h;
        int got = 0;
        while (rc == 0 && (got = rd_next(&r, &b, &len, &h)) == 1) {
            rc = clean_batch(k, t, &o, b, len, &h);
            if (rc == 0 && stopping(k))
                rc = 1;
        }
        rd_close(&r);
        if (rc == 0 && got < 0)
            rc = -1;
    }
    if (rc == 0)
        rc = out_flush(k, &o);
    free(o.buf);
    free(o.bs);
    free(o.last);
    free(o.ts);
    t->cleaned = NULL;
    bool empty = rc == 0 && o.pos == 0 && !first_of_log;
    int crash = gi == 0 ? k->o->crash_after : 0;
    if (empty) { /* nothing left of the group: no new segment */
        sp_segment_unlink(o.seg);
        sp_segment_unref(o.seg);
        o.seg = NULL;
    }
    if (rc == 0 && !empty) {
        sp_segment_seal(o.seg);
        /* every file exists under .cleaned, so that the recovery of a
         * swap tells a renamed file from a missing one */
        char xp[4096];
        snprintf(xp, sizeof(xp), "%s/%020" PRId64 ".txnindex.cleaned", l->dir, o.seg->base_offset);
        int xfd = open(xp, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (xfd >= 0)
            close(xfd);
        int e = sp_segment_sync(o.seg);
        if (e == 0)
            e = sp_segment_persist_indexes(o.seg);
        if (e == 0)
            e = sp_txnindex_sync(o.seg->txn);
        if (e != 0) {
            sp_error("log", "%s: the cleaner cannot sync %s: %s", l->dir, o.seg->path, strerror(-e));
            rc = -1;
        }
        sync_dir(l->dir);
        if (rc == 0 && crash == SP_CLEAN_STEP_CLEANED)
            rc = 2;
        if (rc == 0 && sp_segment_rename(o.seg, ".swap", false) != 0)
            rc = -1;
        if (rc == 0) {
            sync_dir(l->dir);
            if (crash == SP_CLEAN_STEP_SWAP)
                rc = 2;
        }
    }
    if (rc == 0 && !swap_in(l, group, n, empty ? NULL : o.seg))
        rc = 1;
    if (rc != 0) {
        if (o.seg && rc != 2) {
            sp_segment_unlink(o.seg); /* .cleaned or .swap files: nothing points at them */
            sp_segment_unref(o.seg);
        } else if (o.seg) {
            sp_segment_unref(o.seg); /* a test's crash: the files stay */
        }
        return rc == 2 ? 1 : rc;
    }
    /* the log no longer holds the group: its files go once nobody reads them */
    bool renamed = true;
    for (int i = 0; i < n; i++) {
        if (renamed && !(crash == SP_CLEAN_STEP_HALF_DELETED && i > 0))
            renamed = sp_segment_rename(group[i], ".deleted", true) == 0;
        else
            renamed = false;
        if (renamed || !crash) /* a test's crash leaves the files as they are */
            sp_segment_delete_later(group[i]);
        sp_segment_unref(group[i]); /* the log's reference (the cleaner keeps its own) */
    }
    sync_dir(l->dir);
    if (crash == SP_CLEAN_STEP_DELETED || crash == SP_CLEAN_STEP_HALF_DELETED || !renamed) {
        if (!renamed && crash == 0)
            sp_error("log", "%s: the cleaner could not rename the segments it replaced; the next start "
                     "completes the swap", l->dir);
        return crash ? 1 : 0; /* o.seg's reference went to the log */
    }
    if (!empty) {
        if (sp_segment_rename(o.seg, "", false) != 0)
            sp_error("log", "%s: the cleaner could not rename %s; the next start completes the swap", l->dir,
                     o.seg->path);
        sync_dir(l->dir);
    }
    k->st->segments_in += n;
    k->st->segments_out += !empty;
    return 0;
}

/* Kafka's groupSegmentsBySize over segs[0..n). */
static int next_group(const cleaning_t *k, sp_segment_t **segs, int n, int from, int64_t upto)
{
    int64_t size = atomic_load(&segs[from]->size);
    int64_t idx = (int64_t)atomic_load(&segs[from]->nidx) * SP_INDEX_ENTRY;
    int64_t tidx = (int64_t)atomic_load(&segs[from]->ntidx) * SP_TIMEINDEX_ENTRY;
    int end = from + 1;
    while (end < n) {
        sp_segment_t *s = segs[end];
        int64_t next = end + 1 < n ? segs[end + 1]->base_offset : upto;
        if (size + atomic_load(&s->size) > k->cfg.segment_bytes ||
            idx + (int64_t)atomic_load(&s->nidx) * SP_INDEX_ENTRY > k->cfg.segment_index_bytes ||
            tidx + (int64_t)atomic_load(&s->ntidx) * SP_TIMEINDEX_ENTRY > k->cfg.segment_index_bytes ||
            (atomic_load(&s->size) > 0 && next - 1 - segs[from]->base_offset > INT32_MAX))
            break;
        size += atomic_load(&s->size);
        idx += (int64_t)atomic_load(&s->nidx) * SP_INDEX_ENTRY;
        tidx += (int64_t)atomic_load(&s->ntidx) * SP_TIMEINDEX_ENTRY;
        end++;
    }
    return end;
}

int sp_plog_clean(sp_plog_t *l, const sp_clean_candidate_t *c, sp_offset_map_t *map, const sp_clean_opts_t *o,
                  sp_clean_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->min_horizon = INT64_MAX;
    st->end_offset = c->first_dirty;
    cleaning_t k = { .l = l, .o = o, .st = st, .map = map, .started_mono = sp_mono_ms() };
    int64_t first_unstable;
    if (ask_owner(l, &first_unstable, &k.prod, &k.nprod) != 0)
        return 1;
    if (k.nprod > 1)
        qsort(k.prod, (size_t)k.nprod, sizeof(*k.prod), cmp_prod);
    /* the sealed segments below the first uncleanable offset, referenced */
    pthread_mutex_lock(&l->mu);
    k.cfg = l->cfg;
    int n = 0;
    while (n < l->nsegs - 1 && l->segs[n + 1]->base_offset <= c->uncleanable)
        n++;
    bool ok = !l->deleted && l->state == SP_PLOG_OK && l->cfg.compact && n > 0 && first_unstable >= c->uncleanable;
    sp_segment_t **segs = ok ? malloc(sizeof(*segs) * (size_t)n) : NULL;
    for (int i = 0; segs && i < n; i++) {
        segs[i] = l->segs[i];
        sp_segment_ref(segs[i]);
    }
    bool first_is_log_start = segs && l->segs[0] == segs[0];
    pthread_mutex_unlock(&l->mu);
    if (!segs) {
        free(k.prod);
        return ok ? -1 : 1;
    }
    k.cap = o->io_buffer_size > 4096 ? o->io_buffer_size : 4096;
    k.buf = malloc(k.cap);
    int rc = k.buf && collect_aborted(segs, n, &k.aborted) == 0 ? 0 : -1;

    /* 1. map the dirty section */
    sp_offset_map_clear(map);
    map->full_stop = false;
    if (rc == 0) {
        int first = 0;
        while (first + 1 < n && segs[first + 1]->base_offset <= c->first_dirty)
            first++;
        k.mapping = true;
        rc = build_map(&k, segs + first, n - first, c->first_dirty, c->uncleanable);
        k.mapping = false;
    }
    int64_t end = map->latest + 1;
    if (end < c->first_dirty)
        end = c->first_dirty;
    /* below the end every record was seen by some cleaning: a key not in
     * the map is not newer elsewhere (its tombstone may go) */
    sp_offset_map_note(map, end - 1);
    st->map_entries = (int64_t)map->entries;
    st->map_full = map->full_stop;
    st->end_offset = end;

    /* 2, 3. every segment below the end, group by group */
    int nclean = 0;
    while (nclean < n && segs[nclean]->base_offset < end)
        nclean++;
    txnmeta_t t = { .aborted = &k.aborted };
    for (int from = 0, gi = 0; rc == 0 && from < nclean; gi++) {
        int to = next_group(&k, segs, nclean, from, end);
        rc = clean_group(&k, segs + from, to - from, first_is_log_start && from == 0, &t, gi);
        if (rc == 0 && o->crash_after && gi == 0)
            rc = 1; /* a test's crash after the first group */
        from = to;
    }
    txn_free(&t);
    if (rc == 0) {
        /* a passed horizon makes the log cleanable without new writes; so
         * does an ABORT marker whose records this cleaning removed (Kafka
         * waits for new dirty data in both cases) */
        if (t.followup && o->now_ms < st->min_horizon)
            st->min_horizon = o->now_ms;
        atomic_store(&l->clean_horizon, st->min_horizon);
        if (l->hooks.kick) /* the directory changes become durable */
            l->hooks.kick(l->hooks.ctx, l);
    }
    for (int i = 0; i < n; i++)
        sp_segment_unref(segs[i]);
    free(segs);
    free(k.buf);
    free(k.recs);
    free(k.keys);
    free(k.keep);
    free(k.prod);
    sp_aborted_list_free(&k.aborted);
    return rc;
}

/* ---- recovery at open ---------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The base offset of a name "<20 digits><rest>", or -1. */
static int64_t name_base(const char *name, const char *rest)
{
    if (strlen(name) != SP_SEGMENT_NAME_DIGITS + strlen(rest) || strcmp(name + SP_SEGMENT_NAME_DIGITS, rest) != 0)
        return -1;
    int64_t v = 0;
    for (int i = 0; i < SP_SEGMENT_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

/* The offset after the last whole batch of the .log file at path (its
 * base if none). */
static int64_t next_offset_of(const char *path, int64_t base)
{
    FILE *f = fopen(path, "rb");
    int64_t next = base, pos = 0;
    uint8_t h[27];
    if (!f)
        return base;
    while (fseeko(f, pos, SEEK_SET) == 0 && fread(h, 1, sizeof(h), f) == sizeof(h)) {
        int64_t b = (int64_t)(((uint64_t)sp_be32(h) << 32) | sp_be32(h + 4));
        int32_t blen = (int32_t)sp_be32(h + 8);
        int32_t lod = (int32_t)sp_be32(h + 23);
        if (blen < SP_BATCH_MIN_LENGTH || lod < 0 || b < next)
            break;
        pos += SP_BATCH_LOG_OVERHEAD + blen;
        next = b + lod + 1;
    }
    fclose(f);
    return next;
}

static const char *const EXTS[] = { ".log", ".index", ".timeindex", ".txnindex" };

static void remove_file(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    if (unlink(p) != 0 && errno != ENOENT)
        sp_warn("log", "cannot remove %s: %s", p, strerror(errno));
}

int sp_clean_recover_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    char **names = NULL;
    int n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, sizeof(*nn) * (size_t)cap);
            if (!nn)
                break;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    int swaps = 0, dropped = 0;
    /* .cleaned and .deleted files go */
    for (int i = 0; i < n; i++) {
        if (ends_with(names[i], ".cleaned") || ends_with(names[i], ".deleted")) {
            remove_file(dir, names[i]);
            dropped++;
            names[i][0] = 0;
        }
    }
    /* each .log.swap replaces the segments it covers */
    for (int i = 0; i < n; i++) {
        int64_t base = name_base(names[i], ".log.swap");
        if (base < 0)
            continue;
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        int64_t next = next_offset_of(p, base);
        for (int j = 0; j < n; j++) {
            int64_t b = name_base(names[j], ".log");
            if (b < 0 || b == base || b < base || b >= next)
                continue;
            for (int x = 0; x < 4; x++) {
                char f[64];
                snprintf(f, sizeof(f), "%020" PRId64 "%s", b, EXTS[x]);
                remove_file(dir, f);
            }
            names[j][0] = 0;
        }
        /* the plain names of the base itself are replaced by rename */
        for (int x = 3; x >= 0; x--) {
            char from[4096], to[4096];
            snprintf(from, sizeof(from), "%s/%020" PRId64 "%s.swap", dir, base, EXTS[x]);
            snprintf(to, sizeof(to), "%s/%020" PRId64 "%s", dir, base, EXTS[x]);
            /* a missing .swap file was renamed before the crash: the
             * plain one is the new one (every file has a .swap name) */
            if (rename(from, to) != 0 && errno != ENOENT) {
                sp_error("log", "cannot rename %s: %s", from, strerror(errno));
                goto fail;
            }
        }
        swaps++;
    }
    /* stray index files (no .log beside them), and stray .swap index files */
    for (int i = 0; i < n; i++) {
        if (!names[i][0])
            continue;
        if (ends_with(names[i], ".swap")) {
            remove_file(dir, names[i]);
            continue;
        }
        for (int x = 1; x < 4; x++) {
            int64_t b = name_base(names[i], EXTS[x]);
            if (b < 0)
                continue;
            char p[4096];
            struct stat st;
            snprintf(p, sizeof(p), "%s/%020" PRId64 ".log", dir, b);
            if (stat(p, &st) != 0 && errno == ENOENT)
                remove_file(dir, names[i]);
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (swaps || dropped) {
        sp_warn("log", "%s: completed %d interrupted cleaner swap%s, removed %d leftover file%s", dir, swaps,
                swaps == 1 ? "" : "s", dropped, dropped == 1 ? "" : "s");
        sync_dir(dir);
    }
    return 0;
fail:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return -1;
}
