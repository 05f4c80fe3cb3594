/*
 * test_log.c - segments and partition logs: append, read, indexes, roll,
 * flush and high watermark, timestamps, DeleteRecords, recovery of torn
 * and corrupt tails (plog.h invariants 1-4, segment.h 1-3).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cluster/partition.h"
#include "log/plog.h"
#include "log/plog_internal.h" /* white-box: segments, offsets, state */
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "util/fsutil.h"
#include <errno.h>

static sp_log_config_t cfg(int64_t segment_bytes, int64_t flush_messages)
{
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    c.segment_bytes = segment_bytes;
    c.segment_ms = INT64_MAX / 2;
    c.segment_index_bytes = 1 << 16;
    c.index_interval_bytes = 256;
    c.flush_messages = flush_messages;
    c.flush_ms = INT64_MAX;
    c.max_message_bytes = 1 << 20;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    return c;
}

/* A batch of n records "k<i>"/"v<i>" with timestamps ts0 + i. */
static uint8_t *batch(int first, int n, int64_t ts0, size_t *len)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, ts0);
    for (int i = 0; i < n; i++) {
        char k[32], v[64];
        int kl = snprintf(k, sizeof(k), "k%d", first + i);
        int vl = snprintf(v, sizeof(v), "value-%d-padding-padding", first + i);
        sp_batch_builder_add(&b, k, kl, v, vl, ts0 + i);
    }
    uint8_t *p = sp_batch_builder_finish(&b, len);
    sp_batch_builder_free(&b);
    return p;
}

static sp_uuid_t tid;
static sp_fdcache_t *files;

/* The log does not decide its high watermark (plog.h invariant 3): here
 * the test owns it, with one replica's rule (cluster/partition.h), so the
 * log is tested alone.  It only grows. */
static void own_hw(void *ctx, sp_plog_t *l, const sp_log_offsets_t *o)
{
    int64_t want = o->durable ? o->flushed : o->leo;
    int64_t cur = atomic_load(&l->hw);
    (void)ctx;
    while (cur < want && !atomic_compare_exchange_weak(&l->hw, &cur, want))
        ;
}

static sp_plog_t *owned(sp_plog_t *l)
{
    if (l)
        sp_plog_set_listener(l, own_hw, NULL);
    return l;
}

/* A consumer's read: up to the high watermark. */
static void read_hw(sp_plog_t *l, int64_t offset, int32_t max_bytes, bool min_one, sp_read_result_t *rr)
{
    sp_plog_read(l, offset, atomic_load(&l->hw), max_bytes, min_one, rr);
}

/* sp_plog_open with the options the old positional form had. */
static sp_plog_t *open_log(const char *dir, const char *topic, const sp_log_config_t *c, bool create,
                           bool clean, int64_t recovery_point, int64_t log_start)
{
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = topic;
    o.topic_id = tid;
    o.cfg = c;
    o.create = create;
    o.clean = clean;
    o.recovery_point = recovery_point;
    o.log_start = log_start;
    o.files = files;
    return owned(sp_plog_open(&o));
}

/* DeleteRecords: the new start, or -error. */
static int64_t delete_records(sp_plog_t *l, int64_t offset)
{
    int64_t start = -1;
    int rc = sp_plog_delete_records(l, offset, &start);
    return rc ? -rc : start;
}

/* Reads everything from offset and checks record values are consecutive. */
static int64_t read_check(sp_plog_t *l, int64_t from, int64_t *first_seen)
{
    int64_t next = from;
    *first_seen = -1;
    for (;;) {
        sp_read_result_t rr;
        read_hw(l, next, 4096, true, &rr);
        if (rr.err || !rr.seg)
            break;
        uint8_t *buf = malloc((size_t)rr.len);
        if (pread(rr.fd, buf, (size_t)rr.len, rr.pos) != rr.len) {
            free(buf);
            sp_read_result_release(&rr);
            return -1;
        }
        size_t off = 0;
        while (off < (size_t)rr.len) {
            size_t bs;
            if (sp_batch_next(buf + off, (size_t)rr.len - off, &bs) != 1)
                break;
            sp_record_iter_t it;
            sp_record_t r;
            sp_record_iter_init(&it, buf + off, bs, 0);
            while (sp_record_iter_next(&it, &r) == 1) {
                char want[64];
                int wl = snprintf(want, sizeof(want), "value-%lld-padding-padding", (long long)r.offset);
                if (r.offset < next)
                    continue; /* a batch that starts before 'from' */
                if (*first_seen < 0)
                    *first_seen = r.offset;
                if (r.offset != next || r.value.len != wl || memcmp(r.value.ptr, want, (size_t)wl) != 0) {
                    sp_record_iter_free(&it);
                    free(buf);
                    sp_read_result_release(&rr);
                    return -1;
                }
                next++;
            }
            sp_record_iter_free(&it);
            off += bs;
        }
        free(buf);
        sp_read_result_release(&rr);
    }
    return next;
}

static void test_append_read_roll(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/t-0", root);
    sp_log_config_t c = cfg(4000, 1);
    sp_plog_t *l = open_log(dir, "t", &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int64_t expect = 0;
    for (int b = 0; b < 100; b++) {
        size_t len;
        uint8_t *p = batch((int)expect, 5, 1000 + expect, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        CHECK(ar.err == 0 && ar.base_offset == expect && ar.last_offset == expect + 4);
        expect += 5;
        free(p);
    }
    CHECK(l->leo == 500);
    CHECK(l->nsegs > 5);                  /* rolled at segment.bytes */
    CHECK(atomic_load(&l->hw) == 0);      /* durable: nothing visible before a flush */
    CHECK(sp_plog_flush(l) == 0);
    CHECK(atomic_load(&l->hw) == 500 && l->flushed == 500);
    int64_t first;
    CHECK(read_check(l, 0, &first) == 500 && first == 0);
    CHECK(read_check(l, 237, &first) == 500 && first == 237); /* via index, mid-batch */
    /* timestamps: record i has timestamp 1000 + i */
    int64_t off, ts;
    CHECK(sp_plog_offset_for_time(l, 1300, &off, &ts) == 0 && off == 300 && ts == 1300);
    CHECK(sp_plog_offset_for_time(l, 5000, &off, &ts) == 0 && off == -1);
    sp_plog_max_timestamp(l, &off, &ts);
    CHECK(ts == 1499 && off == 499);
    /* out of range */
    sp_read_result_t rr;
    read_hw(l, 501, 100, true, &rr);
    CHECK(rr.err == SP_LOG_ERANGE);
    /* DeleteRecords: start moves, whole segments below it go */
    int nsegs = l->nsegs;
    CHECK(delete_records(l, 250) == 250);
    CHECK(l->log_start == 250 && l->nsegs < nsegs);
    read_hw(l, 100, 100, true, &rr);
    CHECK(rr.err == SP_LOG_ERANGE);
    CHECK(read_check(l, 250, &first) == 500);
    CHECK(delete_records(l, 600) == -SP_LOG_ERANGE);
    sp_plog_close(l);
    sp_plog_unref(l);

    /* clean reopen: same end, appends continue */
    l = open_log(dir, "t", &c, false, true, 500, 250);
    CHECK(l && l->leo == 500 && l->log_start == 250);
    if (!l)
        return;
    size_t len;
    uint8_t *p = batch(500, 3, 2000, &len);
    sp_append_result_t ar;
    sp_plog_append(l, p, len, 0, &ar);
    free(p);
    CHECK(ar.base_offset == 500);
    sp_plog_flush(l);
    CHECK(read_check(l, 250, &first) == 503);
    sp_plog_close(l);
    sp_plog_unref(l);
}

static char *active_log(const char *dir)
{
    static char path[1024];
    char best[64] = "";
    FILE *ls;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls %s | grep '\\.log$' | sort | tail -1", dir);
    ls = popen(cmd, "r");
    if (ls && fgets(best, sizeof(best), ls))
        best[strcspn(best, "\n")] = 0;
    if (ls)
        pclose(ls);
    snprintf(path, sizeof(path), "%s/%s", dir, best);
    return path;
}

static int count_record(const sp_record_t *rec, void *ctx)
{
    (void)rec;
    (*(int *)ctx)++;
    return 0;
}

static void test_recovery(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/r-0", root);
    sp_log_config_t c = cfg(1 << 20, 1);
    sp_plog_t *l = open_log(dir, "r", &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    for (int b = 0; b < 20; b++) {
        size_t len;
        uint8_t *p = batch(b * 10, 10, 0, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
    }
    sp_plog_flush(l);
    sp_plog_close(l);
    sp_plog_unref(l);
    const char *path = active_log(dir);
    struct stat st;
    stat(path, &st);
    off_t full = st.st_size;

    /* garbage after the last batch, crash (no clean flag): truncated */
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(write(fd, "garbage-garbage-garbage-garbage-garb", 37) == 37);
    close(fd);
    l = open_log(dir, "r", &c, false, false, 0, 0);
    CHECK(l && l->leo == 200);
    stat(path, &st);
    CHECK(st.st_size == full);
    if (l) {
        sp_plog_close(l);
        sp_plog_unref(l);
    }

    /* garbage after a clean stop: the tail check still finds it */
    fd = open(path, O_WRONLY | O_APPEND);
    CHECK(write(fd, "\0\0\0\0\0\0\0\xc8\0\0\0\x40zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 80) == 80);
    close(fd);
    l = open_log(dir, "r", &c, false, true, 200, 0);
    CHECK(l && l->leo == 200);
    stat(path, &st);
    CHECK(st.st_size == full);
    if (l) {
        sp_plog_close(l);
        sp_plog_unref(l);
    }

    /* torn last batch: back to the batch before it */
    CHECK(truncate(path, full - 10) == 0);
    l = open_log(dir, "r", &c, false, false, 0, 0);
    CHECK(l && l->leo == 190);
    if (l) {
        int64_t first;
        sp_plog_flush(l);
        CHECK(read_check(l, 0, &first) == 190);
        size_t len;
        uint8_t *p = batch(190, 10, 0, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
        CHECK(ar.base_offset == 190);
        sp_plog_flush(l);
        CHECK(read_check(l, 0, &first) == 200);
        sp_plog_close(l);
        sp_plog_unref(l);
    }

    /* a flipped byte in the middle, valid batches after it: damage, not a
     * torn tail.  Nothing is truncated; the log opens FAILED and answers
     * KAFKA_STORAGE_ERROR (plog.h invariant 6); the metadata log (strict)
     * refuses to open at all */
    stat(path, &st);
    off_t before = st.st_size;
    fd = open(path, O_RDWR);
    char x;
    CHECK(pread(fd, &x, 1, st.st_size / 2) == 1);
    x ^= 0x5a;
    CHECK(pwrite(fd, &x, 1, st.st_size / 2) == 1);
    close(fd);
    l = open_log(dir, "r", &c, false, false, 0, 0);
    CHECK(l && l->state == SP_PLOG_FAILED);
    stat(path, &st);
    CHECK(st.st_size == before);
    if (l) {
        sp_read_result_t rr;
        read_hw(l, 0, 4096, true, &rr);
        CHECK(rr.err == SP_LOG_EFAILED && !rr.seg);
        size_t len;
        uint8_t *p = batch(500, 1, 0, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
        CHECK(ar.err == SP_LOG_EFAILED);
        CHECK(sp_plog_close(l) != 0); /* no clean marker for a failed log */
        sp_plog_unref(l);
    }
    stat(path, &st);
    CHECK(st.st_size == before);
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = "r";
    o.cfg = &c;
    o.files = files;
    o.strict = true;
    l = owned(sp_plog_open(&o));
    CHECK(l == NULL);
    sp_plog_unref(l);
    /* after a clean stop only the tail is checked at open: the replay,
     * which checks every batch's CRC, is what refuses the damage */
    o.clean = true;
    l = owned(sp_plog_open(&o));
    CHECK(l != NULL);
    if (l) {
        int n = 0;
        CHECK(sp_plog_scan(l, 0, count_record, &n) != 0);
        CHECK(n > 0 && n < 200);
        sp_plog_unref(l);
    }
    stat(path, &st);
    CHECK(st.st_size == before);
}

static void test_validation(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/v-0", root);
    sp_log_config_t c = cfg(1 << 20, 5);
    c.max_message_bytes = 300;
    sp_plog_t *l = open_log(dir, "v", &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    size_t len;
    uint8_t *p = batch(0, 20, 0, &len);
    sp_append_result_t ar;
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.err == SP_LOG_ETOO_LARGE && l->leo == 0);
    free(p);
    p = batch(0, 2, 0, &len);
    p[len - 1] ^= 1; /* CRC no longer matches: the validator's verdict */
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.err == SP_LOG_EINVALID && ar.invalid == SP_ERR_CORRUPT_MESSAGE && l->leo == 0);
    p[len - 1] ^= 1;
    sp_plog_append(l, p, len - 3, 0, &ar);
    CHECK(ar.err == SP_LOG_ECORRUPT && l->leo == 0);
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.err == 0 && l->leo == 2);
    /* page-cache mode (flush.messages 5): visible at once */
    CHECK(atomic_load(&l->hw) == 2);
    free(p);
    /* LogAppendTime stamps the batch and keeps it valid */
    l->cfg.log_append_time = true;
    p = batch(2, 2, 5, &len);
    sp_plog_append(l, p, len, 777777, &ar);
    CHECK(ar.err == 0 && ar.log_append_time == 777777);
    sp_batch_hdr_t h;
    sp_batch_hdr_parse(p, len, &h);
    CHECK(h.max_timestamp == 777777 && (h.attributes & 0x08) && h.base_offset == 2);
    CHECK(sp_batch_validate(p, len, NULL, NULL) == 0);
    free(p);
    /* compacted: a record without a key is refused */
    l->cfg.compact = true;
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 0);
    sp_batch_builder_add(&b, NULL, -1, "v", 1, 0);
    p = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.err == SP_LOG_EINVALID && ar.invalid == SP_ERR_INVALID_RECORD);
    free(p);
    sp_plog_close(l);
    sp_plog_unref(l);
}

/* ---- appends (written outside the state lock) against flushes and reads ---- */

typedef struct race {
    sp_plog_t *l;
    atomic_bool appending;
    atomic_int appenders;
    atomic_long bad;
} race_t;

static void *race_append(void *arg)
{
    race_t *r = arg;
    for (int b = 0; b < 400; b++) {
        size_t len;
        uint8_t *p = batch(0, 1 + b % 7, 1000, &len);
        sp_append_result_t ar;
        sp_plog_append(r->l, p, len, 0, &ar);
        if (ar.err || ar.last_offset - ar.base_offset != b % 7)
            atomic_fetch_add(&r->bad, 1);
        free(p);
    }
    if (atomic_fetch_sub(&r->appenders, 1) == 1)
        atomic_store(&r->appending, false);
    return NULL;
}

static void *race_flush(void *arg)
{
    race_t *r = arg;
    while (atomic_load(&r->appending))
        if (sp_plog_flush(r->l) != 0)
            atomic_fetch_add(&r->bad, 1);
    return NULL;
}

/* Everything below hw: whole, valid batches with consecutive offsets. */
static int64_t scan_below_hw(sp_plog_t *l, int32_t max_bytes)
{
    int64_t next = 0;
    for (;;) {
        sp_read_result_t rr;
        read_hw(l, next, max_bytes, true, &rr);
        if (rr.err)
            return -1;
        if (!rr.seg)
            return next;
        uint8_t *buf = malloc((size_t)rr.len);
        int ok = buf && pread(rr.fd, buf, (size_t)rr.len, rr.pos) == rr.len;
        for (size_t off = 0, bs; ok && off < (size_t)rr.len; off += bs) {
            sp_batch_info_t info;
            sp_batch_validate_opts_t o;
            memset(&o, 0, sizeof(o));
            ok = sp_batch_next(buf + off, (size_t)rr.len - off, &bs) == 1 &&
                 sp_batch_validate(buf + off, bs, &o, &info) == 0 && info.hdr.base_offset == next;
            next += info.hdr.last_offset_delta + 1;
        }
        free(buf);
        sp_read_result_release(&rr);
        if (!ok)
            return -1;
    }
}

/* Reads from the log start (which moves under it): every batch read is
 * whole and valid, offsets consecutive from where the read started. */
static void *race_read_from_start(void *arg)
{
    race_t *r = arg;
    while (atomic_load(&r->appending)) {
        sp_log_offsets_t o;
        sp_plog_offsets(r->l, &o);
        int64_t next = o.log_start;
        for (;;) {
            sp_read_result_t rr;
            read_hw(r->l, next, 8192, true, &rr);
            if (rr.err == SP_LOG_ERANGE)
                break; /* the start moved past us: fine */
            if (rr.err) {
                atomic_fetch_add(&r->bad, 1);
                break;
            }
            if (!rr.seg)
                break;
            uint8_t *buf = malloc((size_t)rr.len);
            int ok = buf && pread(rr.fd, buf, (size_t)rr.len, rr.pos) == rr.len;
            for (size_t off = 0, bs; ok && off < (size_t)rr.len; off += bs) {
                sp_batch_info_t info;
                sp_batch_validate_opts_t vo;
                memset(&vo, 0, sizeof(vo));
                ok = sp_batch_next(buf + off, (size_t)rr.len - off, &bs) == 1 &&
                     sp_batch_validate(buf + off, bs, &vo, &info) == 0 &&
                     info.hdr.base_offset + info.hdr.last_offset_delta >= next;
                next = info.hdr.base_offset + info.hdr.last_offset_delta + 1;
            }
            free(buf);
            sp_read_result_release(&rr);
            if (!ok) {
                atomic_fetch_add(&r->bad, 1);
                break;
            }
        }
    }
    return NULL;
}

static void *race_read(void *arg)
{
    race_t *r = arg;
    int64_t last = 0;
    while (atomic_load(&r->appending)) {
        int64_t n = scan_below_hw(r->l, 8192);
        if (n < last)
            atomic_fetch_add(&r->bad, 1);
        else
            last = n;
    }
    return NULL;
}

/* AlterConfigs racing appends: each append sees one whole config (it
 * snapshots it under the lock); TSan checks there is no torn read. */
static void *race_config(void *arg)
{
    race_t *r = arg;
    sp_log_config_t a = cfg(8192, 1), b = cfg(6000, 1);
    b.index_interval_bytes = 100;
    b.max_message_bytes = 1 << 19;
    for (int i = 0; atomic_load(&r->appending); i++)
        sp_plog_set_config(r->l, i % 2 ? &a : &b);
    return NULL;
}

/* Retention and DeleteRecords racing readers: a read never sees a
 * segment freed under it (references), and never data below the start. */
static void *race_delete(void *arg)
{
    race_t *r = arg;
    while (atomic_load(&r->appending)) {
        sp_log_offsets_t o;
        sp_plog_offsets(r->l, &o);
        int64_t start;
        if (o.hw > 200 && sp_plog_delete_records(r->l, o.hw - 200, &start) != 0)
            atomic_fetch_add(&r->bad, 1);
        sp_plog_retention(r->l, 0);
    }
    return NULL;
}

static void test_append_races(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/race-0", root);
    sp_log_config_t c = cfg(8192, 1); /* durable: hw follows the flushes; rolls often */
    race_t r;
    memset(&r, 0, sizeof(r));
    r.l = open_log(dir, "race", &c, true, false, 0, 0);
    CHECK(r.l != NULL);
    if (!r.l)
        return;
    atomic_store(&r.appending, true);
    atomic_store(&r.appenders, 2);
    pthread_t th[6];
    pthread_create(&th[0], NULL, race_append, &r);
    pthread_create(&th[1], NULL, race_append, &r);
    pthread_create(&th[2], NULL, race_flush, &r);
    pthread_create(&th[3], NULL, race_read, &r);
    pthread_create(&th[4], NULL, race_read, &r);
    pthread_create(&th[5], NULL, race_config, &r);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&r.bad) == 0);
    int64_t want = 2 * (400 / 7 * 28 + (400 % 7) * (400 % 7 + 1) / 2);
    CHECK(r.l->leo == want);
    CHECK(sp_plog_flush(r.l) == 0 && atomic_load(&r.l->hw) == want);
    CHECK(scan_below_hw(r.l, 8192) == want);
    /* reads that span many windows of batch headers (plog.c hdr_window_t),
     * and reads of one batch at a time */
    CHECK(scan_below_hw(r.l, 1 << 20) == want);
    CHECK(scan_below_hw(r.l, 1) == want);
    CHECK(r.l->nsegs > 10);
    sp_plog_close(r.l);
    sp_plog_unref(r.l);

    /* again, with DeleteRecords and retention racing the readers */
    snprintf(dir, sizeof(dir), "%s/race-1", root);
    c = cfg(4096, 1);
    c.retention_delete = true;
    c.retention_bytes = 40000;
    memset(&r, 0, sizeof(r));
    r.l = open_log(dir, "race", &c, true, false, 0, 0);
    CHECK(r.l != NULL);
    if (!r.l)
        return;
    atomic_store(&r.appending, true);
    atomic_store(&r.appenders, 2);
    pthread_create(&th[0], NULL, race_append, &r);
    pthread_create(&th[1], NULL, race_append, &r);
    pthread_create(&th[2], NULL, race_flush, &r);
    pthread_create(&th[3], NULL, race_read_from_start, &r);
    pthread_create(&th[4], NULL, race_read_from_start, &r);
    pthread_create(&th[5], NULL, race_delete, &r);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&r.bad) == 0);
    CHECK(r.l->leo == want);
    int64_t start;
    CHECK(sp_plog_flush(r.l) == 0 && sp_plog_delete_records(r.l, want - 10, &start) == 0 &&
          start == want - 10);
    sp_read_result_t rr;
    read_hw(r.l, 0, 8192, true, &rr);
    CHECK(rr.err == SP_LOG_ERANGE && rr.log_start == want - 10);
    sp_plog_close(r.l);
    sp_plog_unref(r.l);
}

/* A read of many small batches walks their headers through several
 * 8 KiB windows (plog.c hdr_window_t) and still ends on a batch boundary. */
static void test_read_many_small_batches(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/small-0", root);
    sp_log_config_t c = cfg(1 << 20, 1);
    sp_plog_t *l = open_log(dir, "small", &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int64_t bytes = 0;
    for (int b = 0; b < 3000; b++) {
        size_t len;
        uint8_t *p = batch(b, 1, 1000 + b, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        bytes += (int64_t)len;
        free(p);
    }
    CHECK(sp_plog_flush(l) == 0 && atomic_load(&l->hw) == 3000);
    sp_read_result_t rr;
    read_hw(l, 0, 1 << 20, true, &rr);
    CHECK(rr.err == 0 && rr.seg && rr.pos == 0 && rr.len == bytes); /* all of it, in one read */
    if (rr.seg)
        sp_read_result_release(&rr);
    read_hw(l, 1234, 20000, true, &rr); /* ends on the last whole batch under 20000 bytes */
    CHECK(rr.err == 0 && rr.seg && rr.len <= 20000 && rr.len > 20000 - 200);
    if (rr.seg)
        sp_read_result_release(&rr);
    int64_t first;
    CHECK(read_check(l, 0, &first) == 3000 && first == 0);
    CHECK(scan_below_hw(l, 1 << 20) == 3000 && scan_below_hw(l, 50000) == 3000);
    sp_plog_close(l);
    sp_plog_unref(l);
}

/* ---- the storage failure model (docs/ARCHITECTURE.md) ------------------- */

static atomic_int fault_countdown; /* fail the sync when it reaches 1 */
static atomic_int fault_errno;
static atomic_int syncs_seen;

static int fault_hook(const char *op, int fd)
{
    (void)op;
    (void)fd;
    atomic_fetch_add(&syncs_seen, 1);
    int n = atomic_load(&fault_countdown);
    if (n <= 0)
        return 0;
    if (atomic_fetch_sub(&fault_countdown, 1) == 1)
        return atomic_load(&fault_errno);
    return 0;
}

static atomic_int failed_calls;
static void on_failed(void *ctx, sp_plog_t *l, int err)
{
    (void)ctx;
    (void)l;
    if (err == EIO)
        atomic_fetch_add(&failed_calls, 1);
}

typedef struct fw {
    sp_waiter_t w;
    int woken, err;
} fw_t;

static void fw_wake(sp_waiter_t *w, int err)
{
    fw_t *f = (fw_t *)w;
    f->woken++;
    f->err = err;
}

/* B3: a failed fdatasync is never retried into "durable": the log goes
 * FAILED, the waiters of its partition get KAFKA_STORAGE_ERROR, flushed
 * and the high watermark never move again. */
static void test_fsync_failure(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/fsync-0", root);
    sp_log_config_t c = cfg(1 << 20, 1);
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = "fsync";
    o.cfg = &c;
    o.create = true;
    o.files = files;
    o.hooks.failed = on_failed;
    sp_plog_t *l = sp_plog_open(&o);
    CHECK(l != NULL);
    if (!l)
        return;
    sp_plog_ref(l);
    sp_partition_t *part = sp_partition_new(l, "fsync", 0); /* owns the high watermark */
    CHECK(part != NULL);
    size_t len;
    uint8_t *p = batch(0, 10, 0, &len);
    sp_append_result_t ar;
    sp_plog_append(l, p, len, 0, &ar);
    free(p);
    CHECK(ar.err == 0);
    CHECK(sp_plog_flush(l) == 0 && l->flushed == 10 && atomic_load(&l->hw) == 10);

    p = batch(10, 10, 0, &len);
    sp_plog_append(l, p, len, 0, &ar);
    free(p);
    CHECK(ar.err == 0 && ar.last_offset == 19);
    fw_t w;
    memset(&w, 0, sizeof(w));
    w.w.offset = 19;
    w.w.wake = fw_wake;
    sp_partition_wait_ack(part, &w.w);
    CHECK(w.woken == 0);
    atomic_store(&fault_errno, EIO);
    atomic_store(&fault_countdown, 1);
    sp_fault_hook = fault_hook;
    CHECK(sp_plog_flush(l) == -EIO);
    CHECK(w.woken == 1 && w.err == SP_ERR_KAFKA_STORAGE_ERROR);
    CHECK(l->state == SP_PLOG_FAILED && l->flushed == 10 && atomic_load(&l->hw) == 10);
    CHECK(sp_partition_hw(part) == 10);
    CHECK(atomic_load(&failed_calls) == 1);
    /* the next flush would succeed: it must not be tried */
    int before = atomic_load(&syncs_seen);
    CHECK(sp_plog_flush(l) == 0 && l->flushed == 10 && atomic_load(&l->hw) == 10);
    CHECK(atomic_load(&syncs_seen) == before);
    CHECK(!sp_plog_flush_due(l, INT64_MAX / 2));
    /* appends, reads, waits and DeleteRecords answer KAFKA_STORAGE_ERROR */
    p = batch(20, 1, 0, &len);
    sp_plog_append(l, p, len, 0, &ar);
    free(p);
    CHECK(ar.err == SP_LOG_EFAILED);
    sp_read_result_t rr;
    read_hw(l, 0, 1000, true, &rr);
    CHECK(rr.err == SP_LOG_EFAILED && !rr.seg);
    memset(&w, 0, sizeof(w));
    w.w.offset = 5;
    w.w.wake = fw_wake;
    sp_partition_wait_ack(part, &w.w);
    CHECK(w.woken == 1 && w.err == SP_ERR_KAFKA_STORAGE_ERROR);
    memset(&w, 0, sizeof(w));
    w.w.wake = fw_wake;
    sp_partition_wait_fetch(part, &w.w);
    CHECK(w.woken == 1 && w.err == SP_ERR_KAFKA_STORAGE_ERROR && !w.w.linked);
    int64_t start;
    CHECK(sp_plog_delete_records(l, 5, &start) == SP_LOG_EFAILED);
    CHECK(sp_plog_close(l) != 0);
    CHECK(atomic_load(&failed_calls) == 1);
    sp_partition_unref(part);
    sp_plog_unref(l);
    sp_fault_hook = NULL;

    /* a failed sync of the indexes of a sealed segment fails the log too */
    snprintf(dir, sizeof(dir), "%s/fsync-1", root);
    c = cfg(600, 1);
    o.dir = dir;
    l = owned(sp_plog_open(&o));
    CHECK(l != NULL);
    if (!l)
        return;
    for (int b = 0; b < 4; b++) {
        p = batch(b * 5, 5, 0, &len);
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
    }
    CHECK(l->nsegs >= 2);
    atomic_store(&fault_countdown, 2); /* the .log sync passes, the .index one fails */
    sp_fault_hook = fault_hook;
    CHECK(sp_plog_flush(l) != 0 && l->state == SP_PLOG_FAILED && l->flushed == 0);
    sp_fault_hook = NULL;
    sp_plog_unref(l);

    /* but a full disk under the index files of a sealed segment is not a
     * failed log: the data is flushed, the indexes wait for a later flush */
    snprintf(dir, sizeof(dir), "%s/fsync-2", root);
    o.dir = dir;
    l = owned(sp_plog_open(&o));
    CHECK(l != NULL);
    if (!l)
        return;
    for (int b = 0; b < 4; b++) {
        p = batch(b * 5, 5, 0, &len);
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
    }
    CHECK(l->nsegs >= 2 && l->leo == 20);
    atomic_store(&fault_errno, ENOSPC);
    atomic_store(&fault_countdown, 2); /* the .log sync passes, the .index one: no space */
    sp_fault_hook = fault_hook;
    CHECK(sp_plog_flush(l) == 0 && l->state == SP_PLOG_OK && l->flushed == 20);
    CHECK(l->segs[0]->idx_dirty);                  /* still to be written */
    sp_fault_hook = NULL;
    CHECK(sp_plog_flush(l) == 0 && !l->segs[0]->idx_dirty);
    sp_read_result_t rr2;
    read_hw(l, 0, 1 << 20, true, &rr2);
    CHECK(rr2.err == SP_LOG_OK && rr2.seg != NULL);
    sp_read_result_release(&rr2);
    CHECK(sp_plog_close(l) == 0);
    sp_plog_unref(l);
    atomic_store(&fault_errno, EIO);
}

/* The path of segment file <base><ext> in dir. */
static const char *seg_path(const char *dir, int64_t base, const char *ext)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%020lld%s", dir, (long long)base, ext);
    return path;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A log of 100 batches of 5 records over several segments; record i has
 * timestamp 1000 + i.  Flushed and closed cleanly; returns the bases. */
static int build_segments(const char *dir, const sp_log_config_t *c, int64_t *bases, int max)
{
    sp_plog_t *l = open_log(dir, "ix", c, true, false, 0, 0);
    if (!l)
        return 0;
    for (int b = 0; b < 100; b++) {
        size_t len;
        uint8_t *p = batch(b * 5, 5, 1000 + b * 5, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
    }
    sp_plog_flush(l);
    int n = l->nsegs < max ? l->nsegs : max;
    for (int i = 0; i < n; i++)
        bases[i] = l->segs[i]->base_offset;
    sp_plog_close(l);
    sp_plog_unref(l);
    return n;
}

/* Checks a reopened log of build_segments: every read, lookup by time and
 * the segments' largest timestamps (what time retention goes by). */
static void check_segments(sp_plog_t *l)
{
    int64_t first, off, ts;
    CHECK(l->leo == 500 && l->state == SP_PLOG_OK);
    CHECK(read_check(l, 0, &first) == 500 && first == 0);
    CHECK(read_check(l, 123, &first) == 500 && first == 123);
    CHECK(sp_plog_offset_for_time(l, 1000, &off, &ts) == 0 && off == 0 && ts == 1000);
    CHECK(sp_plog_offset_for_time(l, 1301, &off, &ts) == 0 && off == 301 && ts == 1301);
    CHECK(sp_plog_offset_for_time(l, 1499, &off, &ts) == 0 && off == 499);
    sp_plog_max_timestamp(l, &off, &ts);
    CHECK(ts == 1499 && off == 499);
    for (int i = 0; i + 1 < l->nsegs; i++) {
        sp_segment_t *s = l->segs[i];
        int64_t next = l->segs[i + 1]->base_offset;
        CHECK(s->max_timestamp == 1000 + next - 1);
    }
}

/* B2: index files of sealed segments are written and synced with them,
 * with a final time entry; damaged ones below the recovery point are
 * found and rebuilt from the log. */
static void test_index_damage(const char *root)
{
    sp_log_config_t c = cfg(2500, 1);
    int64_t bases[64];
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ix-0", root);
    int n = build_segments(dir, &c, bases, 64);
    CHECK(n >= 4);
    if (n < 4)
        return;
    /* the sealed segments' index files are whole, and the last time entry
     * is the segment's largest timestamp */
    for (int i = 0; i + 1 < n; i++) {
        off_t ti = file_size(seg_path(dir, bases[i], ".timeindex"));
        CHECK(file_size(seg_path(dir, bases[i], ".index")) % 8 == 0 && ti % 12 == 0 && ti >= 12);
        FILE *f = fopen(seg_path(dir, bases[i], ".timeindex"), "rb");
        uint8_t e[12];
        CHECK(f && fseek(f, ti - 12, SEEK_SET) == 0 && fread(e, 1, 12, f) == 12);
        if (f)
            fclose(f);
        int64_t t = (int64_t)(((uint64_t)sp_be32(e) << 32) | sp_be32(e + 4));
        CHECK(t == 1000 + bases[i + 1] - 1);
    }

    /* each kind of damage, on a sealed segment below the recovery point
     * (crash restart with recovery point 500: not scanned) */
    static const char *what[] = { "timeindex truncated", "timeindex zeroed", "index garbage",
                                  "index partial entry", "index missing", "timeindex past the end",
                                  "index truncated to one entry" };
    for (int k = 0; k < 7; k++) {
        int64_t b = bases[1 + k % (n - 2)];
        const char *ip = seg_path(dir, b, k == 0 || k == 1 || k == 5 ? ".timeindex" : ".index");
        char path[1024];
        snprintf(path, sizeof(path), "%s", ip);
        off_t sz = file_size(path);
        int fd = open(path, O_RDWR);
        CHECK(fd >= 0 || k == 4);
        if (k == 0) {
            CHECK(ftruncate(fd, 0) == 0);
        } else if (k == 1) {
            uint8_t *z = calloc(1, (size_t)sz);
            CHECK(pwrite(fd, z, (size_t)sz, 0) == sz);
            free(z);
        } else if (k == 2) {
            CHECK(pwrite(fd, "\xff\xff\xff\xf0\x7f\xff\xff\xff", 8, 0) == 8);
        } else if (k == 3) {
            CHECK(ftruncate(fd, sz - 3) == 0);
        } else if (k == 4) {
            CHECK(unlink(path) == 0);
        } else if (k == 5) { /* a time entry naming an offset past the segment */
            CHECK(pwrite(fd, "\0\0\0\0\0\0\x10\0\0\0\x7f\xff", 12, sz - 12) == 12);
        } else {
            CHECK(ftruncate(fd, 8) == 0);
        }
        if (fd >= 0)
            close(fd);
        sp_plog_t *l = open_log(dir, "ix", &c, false, false, 500, 0);
        CHECK(l != NULL);
        if (!l)
            continue;
        check_segments(l);
        /* time retention by the true timestamps: nothing is old yet at
         * 1000 + 500 + 1 hour, everything but the active one is after */
        l->cfg.retention_delete = true;
        l->cfg.retention_ms = 3600000;
        CHECK(sp_plog_retention(l, 1500 + 3600000 - 1000) == 0);
        if (l->nsegs != n)
            fprintf(stderr, "damage %d (%s): %d segments of %d left\n", k, what[k], l->nsegs, n);
        CHECK(l->nsegs == n);
        CHECK(sp_plog_flush(l) == 0); /* rebuilt index files written */
        sp_plog_close(l);
        sp_plog_unref(l);
        CHECK(file_size(seg_path(dir, b, ".timeindex")) % 12 == 0 &&
              file_size(seg_path(dir, b, ".timeindex")) >= 12);
        CHECK(file_size(seg_path(dir, b, ".index")) % 8 == 0 && file_size(seg_path(dir, b, ".index")) >= 8);
    }
    sp_plog_t *l = open_log(dir, "ix", &c, false, true, 500, 0);
    CHECK(l != NULL);
    if (l) {
        check_segments(l);
        l->cfg.retention_delete = true;
        l->cfg.retention_ms = 10;
        CHECK(sp_plog_retention(l, 1000 + 500 + 3600000) == n - 1);
        sp_plog_unref(l);
    }
}

/* B8 and friends: after a clean stop, a .log cut at (or before) its last
 * index entry is found; the next offset comes from what is really there. */
static void test_clean_tail_cut(const char *root)
{
    sp_log_config_t c = cfg(1 << 20, 1);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/cut-0", root);
    int64_t bases[4];
    CHECK(build_segments(dir, &c, bases, 4) == 1);
    const char *lp = seg_path(dir, 0, ".log");
    char path[1024];
    snprintf(path, sizeof(path), "%s", lp);
    /* the position of the last index entry */
    FILE *f = fopen(seg_path(dir, 0, ".index"), "rb");
    uint8_t e[8];
    off_t isz = file_size(seg_path(dir, 0, ".index"));
    CHECK(f && isz >= 16 && fseek(f, isz - 8, SEEK_SET) == 0 && fread(e, 1, 8, f) == 8);
    if (f)
        fclose(f);
    uint32_t pos = sp_be32(e + 4), rel = sp_be32(e);
    CHECK(truncate(path, pos) == 0);
    sp_plog_t *l = open_log(dir, "ix", &c, false, true, 500, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int64_t first;
    /* the batch the last entry named is gone: the end is where its batch
     * started, i.e. before the offset that entry named */
    CHECK(l->leo <= (int64_t)rel && l->leo > 0 && l->leo % 5 == 0);
    CHECK(read_check(l, 0, &first) == l->leo);
    sp_plog_unref(l);
}

/* B6: the active segment rolls when its index is full. */
static void test_roll_on_full_index(const char *root)
{
    sp_log_config_t c = cfg(1 << 30, 1);
    c.segment_index_bytes = 64;   /* 8 offset entries */
    c.index_interval_bytes = 0;   /* one entry per batch */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/full-0", root);
    sp_plog_t *l = open_log(dir, "full", &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    for (int b = 0; b < 40; b++) {
        size_t len;
        uint8_t *p = batch(b, 1, 1000 + b, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        free(p);
        CHECK(ar.err == 0);
    }
    CHECK(l->nsegs >= 5);
    for (int i = 0; i < l->nsegs; i++)
        CHECK(atomic_load(&l->segs[i]->nidx) <= 8);
    sp_plog_flush(l);
    int64_t first, off, ts;
    CHECK(read_check(l, 0, &first) == 40);
    CHECK(read_check(l, 33, &first) == 40 && first == 33);
    CHECK(sp_plog_offset_for_time(l, 1037, &off, &ts) == 0 && off == 37);
    sp_plog_close(l);
    sp_plog_unref(l);
}

/* The position of the third batch of the segment file fd. */
static off_t third_batch(int fd)
{
    off_t pos = 0;
    for (int i = 0; i < 2; i++) {
        uint8_t h[12];
        if (pread(fd, h, 12, pos) != 12)
            return -1;
        pos += 12 + sp_be32(h + 8);
    }
    return pos;
}

/* Damaged sealed segments and a missing one: fetches get an error or go
 * on to the next segment; they never stall on an empty answer. */
static void test_damaged_sealed(const char *root)
{
    sp_log_config_t c = cfg(2500, 1);
    int64_t bases[64];
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/dmg-0", root);
    int n = build_segments(dir, &c, bases, 64);
    CHECK(n >= 4);
    if (n < 4)
        return;
    /* a missing middle segment: offsets bases[1]..bases[2]-1 are gone */
    CHECK(unlink(seg_path(dir, bases[1], ".log")) == 0);
    sp_plog_t *l = open_log(dir, "ix", &c, false, true, 500, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    sp_read_result_t rr;
    read_hw(l, bases[1] + 1, 4096, true, &rr);
    CHECK(rr.err == 0 && rr.seg && rr.seg->base_offset == bases[2]);
    sp_read_result_release(&rr);
    read_hw(l, bases[1] - 1, 1 << 20, true, &rr);   /* ends the first segment */
    CHECK(rr.err == 0 && rr.seg && rr.seg->base_offset == bases[0]);
    sp_read_result_release(&rr);
    sp_plog_unref(l);

    /* a batch length of 0x7ffffff0 and a base offset of 1e12 in sealed
     * segments: CORRUPT_MESSAGE at the damaged batch, data before it read */
    snprintf(dir, sizeof(dir), "%s/dmg-1", root);
    n = build_segments(dir, &c, bases, 64);
    CHECK(n >= 4);
    char path[1024];
    snprintf(path, sizeof(path), "%s", seg_path(dir, bases[1], ".log"));
    int fd = open(path, O_RDWR);
    off_t at1 = third_batch(fd);
    CHECK(pwrite(fd, "\x7f\xff\xff\xf0", 4, at1 + 8) == 4);
    close(fd);
    snprintf(path, sizeof(path), "%s", seg_path(dir, bases[2], ".log"));
    fd = open(path, O_RDWR);
    off_t at2 = third_batch(fd);
    CHECK(pwrite(fd, "\0\0\0\xe8\xd4\xa5\x10\0", 8, at2) == 8); /* 1e12 */
    close(fd);
    l = open_log(dir, "ix", &c, false, true, 500, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int64_t first;
    CHECK(read_check(l, 0, &first) == bases[1] + 10); /* up to the damage */
    read_hw(l, bases[1] + 10, 4096, true, &rr);
    CHECK(rr.err == SP_LOG_ECORRUPT && !rr.seg);
    read_hw(l, bases[1] + 12, 4096, true, &rr);
    CHECK(rr.err == SP_LOG_ECORRUPT && !rr.seg);
    CHECK(atomic_load(&l->segs[1]->damaged_at) == at1);
    CHECK(read_check(l, bases[2], &first) == bases[2] + 10);
    read_hw(l, bases[2] + 10, 4096, true, &rr);
    CHECK(rr.err == SP_LOG_ECORRUPT && !rr.seg);
    CHECK(read_check(l, bases[3], &first) == 500); /* later segments are fine */
    sp_plog_unref(l);
}

/* Many logs through a small fd cache: fds stay bounded, data intact. */
static void test_fd_cache(const char *root)
{
    sp_fdcache_t *small = sp_fdcache_new(6);
    sp_log_config_t c = cfg(600, 1);
    sp_plog_t *logs[40];
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.cfg = &c;
    o.create = true;
    o.files = small;
    char dirs[40][512];
    for (int i = 0; i < 40; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "%s/fdc-%d", root, i);
        o.dir = dirs[i];
        o.topic = "fdc";
        o.partition = i;
        logs[i] = owned(sp_plog_open(&o));
        CHECK(logs[i] != NULL);
    }
    CHECK(sp_fdcache_open_count(small) <= 6);
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 40; i++) {
            if (!logs[i])
                continue;
            size_t len;
            uint8_t *p = batch(round * 5, 5, 0, &len);
            sp_append_result_t ar;
            sp_plog_append(logs[i], p, len, 0, &ar);
            free(p);
            CHECK(ar.err == 0);
            CHECK(sp_plog_flush(logs[i]) == 0);
            CHECK(sp_fdcache_open_count(small) <= 6);
        }
    for (int i = 0; i < 40; i++) {
        if (!logs[i])
            continue;
        int64_t first;
        CHECK(logs[i]->nsegs > 1);
        CHECK(read_check(logs[i], 0, &first) == 25);
        CHECK(sp_fdcache_open_count(small) <= 6);
        sp_plog_close(logs[i]);
        sp_plog_unref(logs[i]);
    }
    CHECK(sp_fdcache_open_count(small) == 0);
    sp_fdcache_free(small);
}

/* A roll that fails half-way (the new segment's files cannot all be made)
 * answers KAFKA_STORAGE_ERROR and leaves no empty segment behind: one left
 * amid its neighbours would claim offsets its predecessor holds. */
static void test_failed_roll(const char *root)
{
    char dir[512], p[1100];
    snprintf(dir, sizeof(dir), "%s/roll-0", root);
    sp_log_config_t c = cfg(600, 1);
    sp_plog_t *l = open_log(dir, "roll", &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int64_t next = 0;
    size_t len;
    sp_append_result_t ar;
    uint8_t *b;
    /* the next segment's .timeindex cannot be created: a directory sits
     * at that name, whatever offset the roll comes at */
    for (int64_t o = 0; o < 200; o++) {
        snprintf(p, sizeof(p), "%s", seg_path(dir, o, ".timeindex"));
        if (o > 0)
            CHECK(mkdir(p, 0755) == 0);
    }
    int failed = 0;
    for (int i = 0; i < 30 && !failed; i++) {
        b = batch((int)next, 5, 1000 + next, &len);
        sp_plog_append(l, b, len, 0, &ar);
        free(b);
        if (ar.err) {
            CHECK(ar.err == SP_LOG_EIO);
            failed = 1;
        } else {
            next += 5;
        }
    }
    CHECK(failed && l->nsegs == 1 && l->state == SP_PLOG_OK);
    CHECK(file_size(seg_path(dir, next, ".log")) < 0);      /* nothing left behind */
    for (int64_t o = 1; o < 200; o++) {
        snprintf(p, sizeof(p), "%s", seg_path(dir, o, ".timeindex"));
        rmdir(p);
    }
    for (int i = 0; i < 20; i++) {                            /* rolls work again */
        b = batch((int)next, 5, 1000 + next, &len);
        sp_plog_append(l, b, len, 0, &ar);
        free(b);
        CHECK(ar.err == 0 && ar.base_offset == next);
        next += 5;
    }
    CHECK(l->nsegs > 2);
    sp_plog_flush(l);
    sp_plog_close(l);
    sp_plog_unref(l);
    l = open_log(dir, "roll", &c, false, false, 0, 0);
    CHECK(l && l->leo == next);
    if (l) {
        int64_t first;
        CHECK(read_check(l, 0, &first) == next && first == 0);
        sp_plog_unref(l);
    }
    /* and a stray empty segment from an older failure is removed at open */
    snprintf(p, sizeof(p), "%s", seg_path(dir, 7, ".log"));
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
    l = open_log(dir, "roll", &c, false, true, next, 0);
    CHECK(l && l->leo == next && file_size(p) < 0);
    if (l) {
        int64_t first;
        CHECK(read_check(l, 0, &first) == next && first == 0);
        sp_plog_unref(l);
    }
}

int main(void)
{
    char root[] = "/tmp/spool-test-log-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    tid.b[0] = 7;
    files = sp_fdcache_new(64);
    test_append_read_roll(root);
    test_recovery(root);
    test_validation(root);
    test_append_races(root);
    test_read_many_small_batches(root);
    test_fsync_failure(root);
    test_index_damage(root);
    test_clean_tail_cut(root);
    test_roll_on_full_index(root);
    test_damaged_sealed(root);
    test_fd_cache(root);
    test_failed_roll(root);
    sp_fdcache_free(files);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_log");
}
