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
#include "log/plog.h"
#include "proto/batch.h"
#include "proto/gen/errors.h"

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

/* Reads everything from offset and checks record values are consecutive. */
static int64_t read_check(sp_plog_t *l, int64_t from, int64_t *first_seen)
{
    int64_t next = from;
    *first_seen = -1;
    for (;;) {
        sp_read_result_t rr;
        sp_plog_read(l, next, 4096, true, &rr);
        if (rr.error || !rr.seg)
            break;
        uint8_t *buf = malloc((size_t)rr.len);
        if (pread(rr.seg->fd, buf, (size_t)rr.len, rr.pos) != rr.len) {
            free(buf);
            sp_segment_unref(rr.seg);
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
                    sp_segment_unref(rr.seg);
                    return -1;
                }
                next++;
            }
            sp_record_iter_free(&it);
            off += bs;
        }
        free(buf);
        sp_segment_unref(rr.seg);
    }
    return next;
}

static void test_append_read_roll(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/t-0", root);
    sp_log_config_t c = cfg(4000, 1);
    sp_plog_t *l = sp_plog_open(dir, "t", 0, tid, &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    int64_t expect = 0;
    for (int b = 0; b < 100; b++) {
        size_t len;
        uint8_t *p = batch((int)expect, 5, 1000 + expect, &len);
        sp_append_result_t ar;
        sp_plog_append(l, p, len, 0, &ar);
        CHECK(ar.error == 0 && ar.base_offset == expect && ar.last_offset == expect + 4);
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
    sp_plog_read(l, 501, 100, true, &rr);
    CHECK(rr.error == SP_ERR_OFFSET_OUT_OF_RANGE);
    /* DeleteRecords: start moves, whole segments below it go */
    int nsegs = l->nsegs;
    CHECK(sp_plog_delete_records(l, 250) == 250);
    CHECK(l->log_start == 250 && l->nsegs < nsegs);
    sp_plog_read(l, 100, 100, true, &rr);
    CHECK(rr.error == SP_ERR_OFFSET_OUT_OF_RANGE);
    CHECK(read_check(l, 250, &first) == 500);
    CHECK(sp_plog_delete_records(l, 600) == -SP_ERR_OFFSET_OUT_OF_RANGE);
    sp_plog_close(l);
    sp_plog_unref(l);

    /* clean reopen: same end, appends continue */
    l = sp_plog_open(dir, "t", 0, tid, &c, false, true, 500, 250);
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

static void test_recovery(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/r-0", root);
    sp_log_config_t c = cfg(1 << 20, 1);
    sp_plog_t *l = sp_plog_open(dir, "r", 0, tid, &c, true, false, 0, 0);
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
    l = sp_plog_open(dir, "r", 0, tid, &c, false, false, 0, 0);
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
    l = sp_plog_open(dir, "r", 0, tid, &c, false, true, 200, 0);
    CHECK(l && l->leo == 200);
    stat(path, &st);
    CHECK(st.st_size == full);
    if (l) {
        sp_plog_close(l);
        sp_plog_unref(l);
    }

    /* torn last batch: back to the batch before it */
    CHECK(truncate(path, full - 10) == 0);
    l = sp_plog_open(dir, "r", 0, tid, &c, false, false, 0, 0);
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

    /* a flipped byte in the middle: truncated at the damaged batch */
    stat(path, &st);
    fd = open(path, O_RDWR);
    char x;
    CHECK(pread(fd, &x, 1, st.st_size / 2) == 1);
    x ^= 0x5a;
    CHECK(pwrite(fd, &x, 1, st.st_size / 2) == 1);
    close(fd);
    l = sp_plog_open(dir, "r", 0, tid, &c, false, false, 0, 0);
    CHECK(l && l->leo > 0 && l->leo < 200 && l->leo % 10 == 0);
    if (l) {
        int64_t first;
        sp_plog_flush(l);
        CHECK(read_check(l, 0, &first) == l->leo);
        sp_plog_close(l);
        sp_plog_unref(l);
    }
}

static void test_validation(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/v-0", root);
    sp_log_config_t c = cfg(1 << 20, 5);
    c.max_message_bytes = 300;
    sp_plog_t *l = sp_plog_open(dir, "v", 0, tid, &c, true, false, 0, 0);
    CHECK(l != NULL);
    if (!l)
        return;
    size_t len;
    uint8_t *p = batch(0, 20, 0, &len);
    sp_append_result_t ar;
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.error == SP_ERR_MESSAGE_TOO_LARGE && l->leo == 0);
    free(p);
    p = batch(0, 2, 0, &len);
    p[len - 1] ^= 1; /* CRC no longer matches */
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.error == SP_ERR_CORRUPT_MESSAGE && l->leo == 0);
    p[len - 1] ^= 1;
    sp_plog_append(l, p, len - 3, 0, &ar);
    CHECK(ar.error == SP_ERR_CORRUPT_MESSAGE && l->leo == 0);
    sp_plog_append(l, p, len, 0, &ar);
    CHECK(ar.error == 0 && l->leo == 2);
    /* page-cache mode (flush.messages 5): visible at once */
    CHECK(atomic_load(&l->hw) == 2);
    free(p);
    /* LogAppendTime stamps the batch and keeps it valid */
    l->cfg.log_append_time = true;
    p = batch(2, 2, 5, &len);
    sp_plog_append(l, p, len, 777777, &ar);
    CHECK(ar.error == 0 && ar.log_append_time == 777777);
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
    CHECK(ar.error == SP_ERR_INVALID_RECORD);
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
        if (ar.error || ar.last_offset - ar.base_offset != b % 7)
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
        sp_plog_read(l, next, max_bytes, true, &rr);
        if (rr.error)
            return -1;
        if (!rr.seg)
            return next;
        uint8_t *buf = malloc((size_t)rr.len);
        int ok = buf && pread(rr.seg->fd, buf, (size_t)rr.len, rr.pos) == rr.len;
        for (size_t off = 0, bs; ok && off < (size_t)rr.len; off += bs) {
            sp_batch_info_t info;
            sp_batch_validate_opts_t o;
            memset(&o, 0, sizeof(o));
            ok = sp_batch_next(buf + off, (size_t)rr.len - off, &bs) == 1 &&
                 sp_batch_validate(buf + off, bs, &o, &info) == 0 && info.hdr.base_offset == next;
            next += info.hdr.last_offset_delta + 1;
        }
        free(buf);
        sp_segment_unref(rr.seg);
        if (!ok)
            return -1;
    }
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

static void test_append_races(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/race-0", root);
    sp_log_config_t c = cfg(8192, 1); /* durable: hw follows the flushes; rolls often */
    race_t r;
    memset(&r, 0, sizeof(r));
    r.l = sp_plog_open(dir, "race", 0, tid, &c, true, false, 0, 0);
    CHECK(r.l != NULL);
    if (!r.l)
        return;
    atomic_store(&r.appending, true);
    atomic_store(&r.appenders, 2);
    pthread_t th[5];
    pthread_create(&th[0], NULL, race_append, &r);
    pthread_create(&th[1], NULL, race_append, &r);
    pthread_create(&th[2], NULL, race_flush, &r);
    pthread_create(&th[3], NULL, race_read, &r);
    pthread_create(&th[4], NULL, race_read, &r);
    for (int i = 0; i < 5; i++)
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
}

/* A read of many small batches walks their headers through several
 * 8 KiB windows (plog.c hdr_window_t) and still ends on a batch boundary. */
static void test_read_many_small_batches(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/small-0", root);
    sp_log_config_t c = cfg(1 << 20, 1);
    sp_plog_t *l = sp_plog_open(dir, "small", 0, tid, &c, true, false, 0, 0);
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
    sp_plog_read(l, 0, 1 << 20, true, &rr);
    CHECK(rr.error == 0 && rr.seg && rr.pos == 0 && rr.len == bytes); /* all of it, in one read */
    if (rr.seg)
        sp_segment_unref(rr.seg);
    sp_plog_read(l, 1234, 20000, true, &rr); /* ends on the last whole batch under 20000 bytes */
    CHECK(rr.error == 0 && rr.seg && rr.len <= 20000 && rr.len > 20000 - 200);
    if (rr.seg)
        sp_segment_unref(rr.seg);
    int64_t first;
    CHECK(read_check(l, 0, &first) == 3000 && first == 0);
    CHECK(scan_below_hw(l, 1 << 20) == 3000 && scan_below_hw(l, 50000) == 3000);
    sp_plog_close(l);
    sp_plog_unref(l);
}

int main(void)
{
    char root[] = "/tmp/spool-test-log-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    tid.b[0] = 7;
    test_append_read_roll(root);
    test_recovery(root);
    test_validation(root);
    test_append_races(root);
    test_read_many_small_batches(root);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_log");
}
