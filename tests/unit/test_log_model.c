/*
 * test_log_model.c - an operation-sequence model test of the partition
 * log: random sequences of append, flush, read, DeleteRecords, retention,
 * setting changes and restarts (clean, unclean, and a crash that loses the
 * unflushed tail) against an in-memory model of what the log must hold.
 *
 * The model: every offset's value (each record's value names its offset
 * and a generation, so an offset written again after a crash is told
 * apart), the log start, the log end and what is flushed.  After every
 * operation the log's offsets must be the model's, and reads must return
 * exactly the model's records: whole batches, in order, below the bound.
 *
 * SPOOL_TEST_SEED picks the sequence (default: a fixed few), SPOOL_TEST_OPS
 * its length.  A failure prints the seed and the operation number.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log/logmgr.h"
#include "log/plog.h"
#include "log/plog_internal.h" /* white-box: segments, offsets, state */
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "util/log.h"

typedef struct model {
    char **val;                 /* val[o] for o < leo (NULL below the start once deleted) */
    int64_t cap;
    int64_t start, leo, flushed;
    int gen;                    /* bumped at each crash: offsets written again differ */
} model_t;

static uint64_t rng;
static int op_no;
static unsigned seed_now;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t rnd_in(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return hi <= lo ? lo : lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

#define MCHECK(c)                                                                                   \
    do {                                                                                            \
        if (!(c))                                                                                   \
            fprintf(stderr, "test_log_model: seed %u, operation %d: %s\n", seed_now, op_no, #c);   \
        CHECK(c);                                                                                   \
    } while (0)

static sp_fdcache_t *files;

/* The test owns the high watermark (plog.h invariant 3): one replica's rule. */
static void own_hw(void *ctx, sp_plog_t *l, const sp_log_offsets_t *o)
{
    int64_t want = o->durable ? o->flushed : o->leo;
    int64_t cur = atomic_load(&l->hw);
    (void)ctx;
    while (cur < want && !atomic_compare_exchange_weak(&l->hw, &cur, want))
        ;
}

static sp_plog_t *open_log(const char *dir, const sp_log_config_t *c, bool create, bool clean,
                           int64_t recovery, int64_t start)
{
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = "model";
    o.cfg = c;
    o.create = create;
    o.clean = clean;
    o.recovery_point = recovery;
    o.log_start = start;
    o.files = files;
    sp_plog_t *l = sp_plog_open(&o);
    if (l)
        sp_plog_set_listener(l, own_hw, NULL);
    return l;
}

static void model_put(model_t *m, int64_t off, const char *v)
{
    if (off >= m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 1024;
        while (cap <= off)
            cap *= 2;
        m->val = realloc(m->val, sizeof(char *) * (size_t)cap);
        memset(m->val + m->cap, 0, sizeof(char *) * (size_t)(cap - m->cap));
        m->cap = cap;
    }
    free(m->val[off]);
    m->val[off] = strdup(v);
}

/* Offsets and state against the model. */
static void check_offsets(sp_plog_t *l, const model_t *m)
{
    sp_log_offsets_t o;
    sp_plog_offsets(l, &o);
    MCHECK(!o.failed && !o.deleted);
    MCHECK(o.leo == m->leo);
    MCHECK(o.log_start == m->start);
    MCHECK(o.flushed == m->flushed);
    MCHECK(o.log_start <= o.hw && o.hw <= o.leo);
    MCHECK(o.hw == (o.durable ? o.flushed : o.leo));
}

typedef struct seen {
    const model_t *m;
    int64_t from, bound, next;  /* next: the offset the next record must have */
    int bad;
} seen_t;

static int on_record(const sp_record_t *r, void *ctx)
{
    seen_t *s = ctx;
    if (r->offset < s->from)
        return 0; /* the batch holding 'from' starts earlier: a consumer skips these */
    if (r->offset != s->next || r->offset >= s->bound || r->offset >= s->m->leo ||
        !s->m->val[r->offset] || r->value.len != (int32_t)strlen(s->m->val[r->offset]) ||
        memcmp(r->value.ptr, s->m->val[r->offset], (size_t)r->value.len) != 0) {
        s->bad++;
        return 1;
    }
    s->next++;
    return 0;
}

/* One read at 'from' with max_bytes, checked against the model.  Returns
 * the offset after the last record read, or -1. */
static int64_t check_read(sp_plog_t *l, const model_t *m, int64_t from, int32_t max_bytes)
{
    int64_t bound = atomic_load(&l->hw);
    sp_read_result_t rr;
    sp_plog_read(l, from, bound, max_bytes, true, &rr);
    if (from < m->start || from > m->leo) {
        MCHECK(rr.err == SP_LOG_ERANGE && !rr.seg);
        return -1;
    }
    MCHECK(rr.err == 0);
    if (!rr.seg) {
        MCHECK(from >= bound); /* nothing below the bound from there */
        return from;
    }
    uint8_t *buf = malloc((size_t)rr.len);
    bool ok = buf && pread(rr.fd, buf, (size_t)rr.len, rr.pos) == rr.len;
    MCHECK(ok);
    seen_t s = { m, from, bound, from, 0 };
    int64_t next = -1;
    int rc = ok ? sp_batches_each_record(buf, (size_t)rr.len, on_record, &s, &next) : -1;
    MCHECK(rc == 0 && s.bad == 0);
    MCHECK(s.next > from);                   /* at least the record at 'from' */
    MCHECK(next == s.next && next <= bound); /* whole batches, all below the bound */
    free(buf);
    sp_read_result_release(&rr);
    return s.next;
}

/* Reads everything from the start to hw. */
static void check_all(sp_plog_t *l, const model_t *m)
{
    int64_t bound = atomic_load(&l->hw);
    int64_t at = m->start;
    while (at < bound) {
        int64_t next = check_read(l, m, at, (int32_t)rnd_in(1, 20000));
        if (next <= at) {
            MCHECK(next > at);
            return;
        }
        at = next;
    }
}

static void append_op(sp_plog_t *l, model_t *m)
{
    int n = (int)rnd_in(1, 30);
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 1000);
    char v[64];
    for (int i = 0; i < n; i++) {
        int vl = snprintf(v, sizeof(v), "v%" PRId64 "-g%d-%0*d", m->leo + i, m->gen, (int)rnd_in(0, 40), 0);
        sp_batch_builder_add(&b, "k", 1, v, vl, 1000 + i);
    }
    size_t len;
    uint8_t *p = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    /* the values again, to put in the model once the offsets are known */
    sp_append_result_t ar;
    sp_plog_append(l, p, len, 1000, &ar);
    MCHECK(ar.err == 0 && ar.base_offset == m->leo && ar.last_offset == m->leo + n - 1);
    if (ar.err == 0) {
        sp_record_iter_t it;
        sp_record_t r;
        if (sp_record_iter_init(&it, p, len, 0) == 0) {
            while (sp_record_iter_next(&it, &r) == 1) {
                snprintf(v, sizeof(v), "%.*s", (int)r.value.len, (const char *)r.value.ptr);
                model_put(m, m->leo + r.offset_delta, v);
            }
            sp_record_iter_free(&it);
        }
        m->leo += n;
    }
    free(p);
}

/* A crash that loses what was not flushed: the active segment is cut at
 * the flushed offset (a batch boundary), as if the page cache had never
 * reached the disk.  Only when the flushed offset is in the active
 * segment; returns whether it cut (and dropped l). */
static bool cut_unflushed(sp_plog_t *l, model_t *m)
{
    if (m->flushed == m->leo)
        return false;
    sp_read_result_t rr;
    sp_plog_read(l, m->flushed, INT64_MAX, 1, true, &rr);
    if (rr.err || !rr.seg) {
        sp_read_result_release(&rr);
        return false;
    }
    char path[600];
    snprintf(path, sizeof(path), "%s", rr.seg->path);
    int64_t pos = rr.pos, base = rr.seg->base_offset;
    sp_read_result_release(&rr);
    pthread_mutex_lock(&l->mu);
    bool in_active = l->segs[l->nsegs - 1]->base_offset == base;
    pthread_mutex_unlock(&l->mu);
    if (!in_active)
        return false; /* flushed lies in a sealed segment: not modelled */
    sp_plog_unref(l);
    CHECK(truncate(path, pos) == 0);
    for (int64_t o = m->flushed; o < m->leo; o++) {
        free(m->val[o]);
        m->val[o] = NULL;
    }
    m->leo = m->flushed;
    m->gen++;
    return true;
}

static void run(unsigned seed, int ops, const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/model-%u", root, seed);
    seed_now = seed;
    rng = 0x9E3779B97F4A7C15ull ^ seed;
    rnd();
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    c.segment_bytes = rnd_in(1500, 9000);
    c.segment_ms = INT64_MAX / 2;
    c.segment_index_bytes = rnd_in(0, 1) ? 1 << 16 : 64; /* tiny indexes roll too */
    c.index_interval_bytes = rnd_in(64, 1024);
    c.flush_messages = rnd_in(0, 1) ? 1 : 1000000;
    c.flush_ms = INT64_MAX;
    c.max_message_bytes = 1 << 20;
    c.retention_delete = true;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    model_t m;
    memset(&m, 0, sizeof(m));
    sp_plog_t *l = open_log(dir, &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int restarts = 0, crashes = 0, deletes = 0, retained = 0;
    for (op_no = 0; op_no < ops; op_no++) {
        int what = (int)rnd_in(0, 99);
        if (what < 45) {
            append_op(l, &m);
        } else if (what < 55) {
            CHECK(sp_plog_flush(l) == 0);
            m.flushed = m.leo;
        } else if (what < 75) {
            check_read(l, &m, rnd_in(m.start - 2, m.leo + 2), (int32_t)rnd_in(1, 12000));
        } else if (what < 80) {
            int64_t hw = atomic_load(&l->hw), start = -1;
            int64_t to = rnd_in(m.start - 3, hw + 3);
            int rc = sp_plog_delete_records(l, to, &start);
            if (to == -1) {
                MCHECK(rc == 0);
                to = hw;
            }
            if (to < -1 || to > hw) {
                MCHECK(rc == SP_LOG_ERANGE);
            } else if (to >= 0) {
                MCHECK(rc == 0);
                if (to > m.start)
                    m.start = to;
                MCHECK(start == m.start);
                deletes++;
            }
        } else if (what < 85) {
            /* retention by size: keep about half of what is there */
            sp_log_offsets_t o;
            sp_plog_offsets(l, &o);
            int64_t size = sp_plog_size(l);
            sp_log_config_t rc = c;
            rc.retention_bytes = size / 2;
            sp_plog_set_config(l, &rc);
            int dropped = sp_plog_retention(l, 1 << 30);
            sp_plog_set_config(l, &c);
            sp_log_offsets_t after;
            sp_plog_offsets(l, &after);
            MCHECK(after.log_start >= m.start && after.log_start <= o.hw);
            MCHECK(dropped == 0 ? after.log_start == m.start : sp_plog_size(l) < size);
            for (int64_t x = m.start; x < after.log_start; x++) {
                free(m.val[x]);
                m.val[x] = NULL;
            }
            m.start = after.log_start;
            retained += dropped;
        } else if (what < 88) {
            sp_log_config_t n = c;
            n.index_interval_bytes = rnd_in(64, 2048);
            sp_plog_set_config(l, &n);
            c = n;
        } else {
            /* restart: clean, unclean, or a crash that loses the unflushed tail */
            int how = (int)rnd_in(0, 2);
            bool clean = false;
            if (how == 0) {
                CHECK(sp_plog_flush(l) == 0);
                m.flushed = m.leo;
                clean = sp_plog_close(l) == 0;
                MCHECK(clean);
                sp_plog_unref(l);
            } else if (how == 1) {
                sp_plog_unref(l); /* the page cache keeps everything */
            } else if (cut_unflushed(l, &m)) {
                crashes++;
            } else {
                sp_plog_unref(l); /* nothing to lose: an unclean stop */
            }
            l = open_log(dir, &c, false, clean, m.flushed, m.start);
            MCHECK(l != NULL);
            if (!l)
                return;
            m.flushed = m.leo; /* recovery synced what it found */
            restarts++;
        }
        check_offsets(l, &m);
        if (op_no % 50 == 49)
            check_all(l, &m);
    }
    check_all(l, &m);
    sp_plog_unref(l);
    for (int64_t i = 0; i < m.cap; i++)
        free(m.val[i]);
    free(m.val);
    printf("test_log_model: seed %u: %d operations, %d restarts (%d losing a tail), %d DeleteRecords, "
           "%d segments retained away, %" PRId64 " offsets\n", seed, ops, restarts, crashes, deletes,
           retained, m.leo);
}

int main(void)
{
    char root[] = "/tmp/spool-test-log-model-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    sp_log_set_level(SP_LOG_ERROR);
    files = sp_fdcache_new(32);
    const char *env = getenv("SPOOL_TEST_OPS");
    int ops = env ? atoi(env) : 1500;
    env = getenv("SPOOL_TEST_SEED");
    if (env) {
        run((unsigned)strtoul(env, NULL, 10), ops, root);
    } else {
        for (unsigned s = 1; s <= 6; s++)
            run(s, ops, root);
    }
    sp_fdcache_free(files);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_log_model");
}
