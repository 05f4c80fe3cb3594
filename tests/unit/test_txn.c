/*
 * test_txn.c - the marker path and the read side of transactions:
 *   - log/txnindex.h: append, reopen, collect (Kafka's overlap rule and its
 *     early stop), truncate, damaged files;
 *   - the partition: transactional batches and markers, the LSO at each
 *     step, the aborted transactions a read_committed read names (with
 *     Kafka's upper bound from the offset index), ListOffsets' LSO;
 *   - restarts: clean, unclean with the .txnindex deleted, truncated to a
 *     partial entry, or holding an entry whose marker a torn tail cut away;
 *   - txn/markers.h through a registry and a log manager (acks=-1 waits
 *     for the flush thread), refusals, an unknown partition;
 *   - threads (also under TSan): markers written while producers append and
 *     readers collect aborted lists, against the flush thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "check.h"
#include "cluster/partition.h"
#include "log/logmgr.h"
#include "log/txnindex.h"
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "txn/markers.h"
#include "util/log.h"

static sp_fdcache_t *files;
static sp_uuid_t tid;

static sp_log_config_t cfg(int64_t flush_messages)
{
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    c.segment_bytes = 1 << 20;
    c.segment_ms = INT64_MAX / 2;
    c.segment_index_bytes = 1 << 16;
    c.index_interval_bytes = 256;
    c.flush_messages = flush_messages;
    c.flush_ms = INT64_MAX;
    c.max_message_bytes = 1 << 20;
    c.retention_delete = true;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    c.min_insync_replicas = 1;
    c.timestamp_before_max_ms = INT64_MAX;
    c.timestamp_after_max_ms = INT64_MAX;
    return c;
}

static const sp_append_origin_t coordinator = { .kind = SP_ORIGIN_COORDINATOR };

/* n records of vsize bytes each, from producer pid (or none: pid < 0). */
static uint8_t *data_batch(int64_t pid, int16_t epoch, int32_t seq, bool txn, int n, int vsize, size_t *len)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 1000);
    if (pid >= 0)
        sp_batch_builder_set_producer(&b, pid, epoch, seq);
    if (txn)
        sp_batch_builder_set_flags(&b, SP_BATCH_ATTR_TRANSACTIONAL);
    char *v = malloc((size_t)vsize + 1);
    memset(v, 'v', (size_t)vsize);
    for (int i = 0; i < n; i++)
        sp_batch_builder_add(&b, "k", 1, v, vsize, 1000 + i);
    free(v);
    uint8_t *p = sp_batch_builder_finish(&b, len);
    sp_batch_builder_free(&b);
    return p;
}

/* A marker batch as txn/markers.c builds it. */
static uint8_t *marker_batch(int64_t pid, int16_t epoch, bool commit, int32_t cepoch, size_t *len)
{
    uint8_t key[4] = { 0, 0, 0, (uint8_t)commit };
    uint8_t val[6] = { 0, 0, (uint8_t)(cepoch >> 24), (uint8_t)(cepoch >> 16), (uint8_t)(cepoch >> 8),
                       (uint8_t)cepoch };
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 2000);
    sp_batch_builder_set_producer(&b, pid, epoch, -1);
    sp_batch_builder_set_flags(&b, SP_BATCH_ATTR_TRANSACTIONAL | SP_BATCH_ATTR_CONTROL);
    sp_batch_builder_add(&b, key, 4, val, 6, 2000);
    uint8_t *p = sp_batch_builder_finish(&b, len);
    sp_batch_builder_free(&b);
    return p;
}

/* Appends (coordinator origin: the validator of a client's batch is not
 * under test here); returns the first offset or -1, *err the error. */
static int64_t put(sp_partition_t *p, uint8_t *b, size_t len, int16_t *err)
{
    sp_append_outcome_t ar;
    sp_partition_append(p, b, len, &coordinator, 1, 1000, &ar);
    free(b);
    if (err)
        *err = ar.error;
    return ar.error ? -1 : ar.base_offset;
}

static int64_t put_data(sp_partition_t *p, int64_t pid, int32_t seq, bool txn, int n, int vsize)
{
    size_t len;
    uint8_t *b = data_batch(pid, 0, seq, txn, n, vsize, &len);
    return put(p, b, len, NULL);
}

static int64_t put_marker(sp_partition_t *p, int64_t pid, int16_t epoch, bool commit, int32_t cepoch, int16_t *err)
{
    size_t len;
    uint8_t *b = marker_batch(pid, epoch, commit, cepoch, &len);
    return put(p, b, len, err);
}

static sp_partition_t *open_part(const char *root, const char *name, const sp_log_config_t *c, bool clean,
                                 int64_t recovery_point, sp_plog_t **log)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s-0", root, name);
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = name;
    o.topic_id = tid;
    o.cfg = c;
    o.create = true;
    o.clean = clean;
    o.recovery_point = recovery_point;
    o.files = files;
    *log = sp_plog_open(&o);
    if (!*log)
        return NULL;
    sp_plog_ref(*log);
    return sp_partition_new(*log, name, 0);
}

static void close_part(sp_partition_t *p, sp_plog_t *l)
{
    sp_plog_close(l);
    sp_partition_unref(p);
    sp_plog_unref(l);
}

/* read_committed from offset: the aborted list (producer ids and first
 * offsets as "pid:first,..."), and *bytes read. */
static const char *aborted_at(sp_partition_t *p, int64_t offset, int32_t max_bytes, char *out, size_t cap,
                              int32_t *bytes)
{
    sp_partition_read_t rd;
    sp_partition_read(p, offset, max_bytes, max_bytes > 0, SP_ISOLATION_TXN_COMMITTED, &rd);
    size_t o = 0;
    out[0] = 0;
    if (rd.error || !rd.has_aborted)
        snprintf(out, cap, "error %d", rd.error);
    for (int i = 0; !rd.error && i < rd.aborted.n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%" PRId64 ":%" PRId64, i ? "," : "", rd.aborted.v[i].producer_id,
                              rd.aborted.v[i].first_offset);
    if (bytes)
        *bytes = rd.data.seg ? rd.data.len : 0;
    sp_partition_read_release(&rd);
    return out;
}

static void seg_path(const char *root, const char *name, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s-0/%020d%s", root, name, 0, ext);
}

/* ---- log/txnindex.h ---------------------------------------------------------- */

static void test_txnindex(const char *root)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/00000000000000000100.txnindex", root);
    bool damaged;
    const char *why;
    sp_txnindex_t *t = sp_txnindex_open(path, 100, &damaged, &why);
    CHECK(t && !damaged && sp_txnindex_count(t) == 0);
    CHECK(access(path, F_OK) != 0); /* created with the first entry */
    sp_aborted_txn_t a = { 7, 100, 105, 106 }, b = { 8, 103, 110, 104 }, c = { 9, 120, 130, 131 };
    CHECK(sp_txnindex_append(t, &a) == 0 && sp_txnindex_append(t, &b) == 0 && sp_txnindex_append(t, &c) == 0);
    sp_aborted_txn_t bad = { 1, 10, 130, 131 };
    CHECK(sp_txnindex_append(t, &bad) == -EINVAL); /* not after the last marker */
    bad = (sp_aborted_txn_t){ 1, 50, 99, 131 };
    CHECK(sp_txnindex_append(t, &bad) == -EINVAL);
    CHECK(sp_txnindex_has(t, &b) && !sp_txnindex_has(t, &bad));
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 3 * SP_TXNINDEX_ENTRY);
    /* Kafka's layout, byte for byte */
    uint8_t want[SP_TXNINDEX_ENTRY] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 100,
                                        0, 0, 0, 0, 0, 0, 0, 105, 0, 0, 0, 0, 0, 0, 0, 106 };
    uint8_t got[SP_TXNINDEX_ENTRY];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && read(fd, got, sizeof(got)) == (ssize_t)sizeof(got));
    close(fd);
    CHECK_MEM(got, sizeof(got), want, sizeof(want));
    /* overlap: last >= fetch offset and first < upper bound; stop once an
     * entry's LSO reaches the upper bound */
    sp_aborted_list_t l = { 0 };
    CHECK(sp_txnindex_collect(t, 0, 1000, &l) == 0 && l.n == 3);
    sp_aborted_list_free(&l);
    CHECK(sp_txnindex_collect(t, 106, 1000, &l) == 0 && l.n == 2 && l.v[0].producer_id == 8);
    sp_aborted_list_free(&l);
    CHECK(sp_txnindex_collect(t, 100, 103, &l) == 1 && l.n == 1 && l.v[0].producer_id == 7);
    sp_aborted_list_free(&l);
    CHECK(sp_txnindex_collect(t, 111, 120, &l) == 1 && l.n == 0); /* c starts at the bound */
    sp_aborted_list_free(&l);
    CHECK(sp_txnindex_sync(t) == 0);
    sp_txnindex_free(t);
    /* reopen: the same */
    t = sp_txnindex_open(path, 100, &damaged, &why);
    CHECK(t && !damaged && sp_txnindex_count(t) == 3);
    sp_aborted_txn_t x;
    CHECK(sp_txnindex_get(t, 2, &x) && x.producer_id == 9 && x.first_offset == 120 && x.last_offset == 130 &&
          x.last_stable_offset == 131);
    /* truncate at 110: b (marker 110) and c go */
    CHECK(sp_txnindex_truncate(t, 110) == 0 && sp_txnindex_count(t) == 1);
    CHECK(stat(path, &st) == 0 && st.st_size == SP_TXNINDEX_ENTRY);
    CHECK(sp_txnindex_append(t, &b) == 0);
    sp_txnindex_free(t);
    /* a partial entry: damaged, the whole entries kept */
    fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "\0\0\0\0\0", 5) == 5);
    close(fd);
    t = sp_txnindex_open(path, 100, &damaged, &why);
    CHECK(t && damaged && why && sp_txnindex_count(t) == 2);
    CHECK(sp_txnindex_rewrite(t) == 0 && stat(path, &st) == 0 && st.st_size == 2 * SP_TXNINDEX_ENTRY);
    sp_txnindex_free(t);
    /* entries out of order, or of another version: the prefix before them */
    fd = open(path, O_WRONLY | O_APPEND);
    sp_aborted_txn_t back = { 5, 101, 104, 105 };
    uint8_t e[SP_TXNINDEX_ENTRY];
    sp_txnindex_encode(&back, e);
    CHECK(fd >= 0 && write(fd, e, sizeof(e)) == (ssize_t)sizeof(e));
    close(fd);
    t = sp_txnindex_open(path, 100, &damaged, &why);
    CHECK(t && damaged && sp_txnindex_count(t) == 2);
    sp_txnindex_free(t);
    fd = open(path, O_WRONLY | O_TRUNC);
    sp_txnindex_encode(&a, e);
    e[1] = 1;
    CHECK(fd >= 0 && write(fd, e, sizeof(e)) == (ssize_t)sizeof(e));
    close(fd);
    t = sp_txnindex_open(path, 100, &damaged, &why);
    CHECK(t && damaged && sp_txnindex_count(t) == 0);
    sp_txnindex_unlink(t);
    CHECK(access(path, F_OK) != 0);
    CHECK(sp_txnindex_append(t, &a) != 0); /* deleted: nothing written */
    sp_txnindex_free(t);
}

/* ---- the partition ------------------------------------------------------------ */

static int64_t lso(sp_partition_t *p) { return sp_partition_lso(p); }

static void test_partition_txns(const char *root)
{
    sp_log_config_t c = cfg(1 << 30); /* page cache: hw = log end */
    sp_plog_t *l;
    sp_partition_t *p = open_part(root, "txn", &c, false, 0, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    char s[256];
    int16_t err;
    CHECK(put_data(p, -1, -1, false, 1, 10) == 0);             /* 0: plain */
    CHECK(lso(p) == 1);
    CHECK(put_data(p, 1000, 0, true, 3, 10) == 1);             /* 1-3: A opens */
    CHECK(lso(p) == 1 && sp_partition_hw(p) == 4);
    CHECK(strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), NULL), "") == 0);
    CHECK(strcmp(aborted_at(p, 1, 1 << 20, s, sizeof(s), NULL), "") == 0); /* at the LSO: empty */
    CHECK(put_data(p, 2000, 0, true, 2, 10) == 4);             /* 4-5: B opens */
    CHECK(put_data(p, -1, -1, false, 1, 10) == 6);             /* 6 */
    CHECK(lso(p) == 1);
    CHECK(put_marker(p, 1000, 0, false, 5, &err) == 7);        /* 7: A aborts */
    CHECK(lso(p) == 4);                                        /* B still open */
    CHECK(put_marker(p, 2000, 0, true, 5, &err) == 8);         /* 8: B commits */
    CHECK(lso(p) == 9 && sp_partition_hw(p) == 9);
    /* the refusals of a marker come back as the append's error */
    CHECK(put_marker(p, 1000, -1, false, 5, &err) == -1 && err == SP_ERR_INVALID_PRODUCER_EPOCH);
    CHECK(put_marker(p, 1000, 0, false, 4, &err) == -1 && err == SP_ERR_TRANSACTION_COORDINATOR_FENCED);
    /* a marker with nothing open is written, with no entry (Kafka) */
    CHECK(put_marker(p, 3000, 0, false, 0, &err) == 9);
    CHECK(put_data(p, -1, -1, false, 1, 10) == 10);
    CHECK(strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), NULL), "1000:1") == 0);
    CHECK(strcmp(aborted_at(p, 7, 1 << 20, s, sizeof(s), NULL), "1000:1") == 0);
    CHECK(strcmp(aborted_at(p, 8, 1 << 20, s, sizeof(s), NULL), "") == 0);
    CHECK(strcmp(aborted_at(p, 11, 1 << 20, s, sizeof(s), NULL), "") == 0);
    CHECK(strcmp(aborted_at(p, 12, 1 << 20, s, sizeof(s), NULL), "error 1") == 0); /* out of range: null */
    sp_partition_read_t rd;
    sp_partition_read(p, 0, 1 << 20, true, SP_ISOLATION_HIGH_WATERMARK, &rd);
    CHECK(rd.error == 0 && !rd.has_aborted);
    sp_partition_read_release(&rd);
    /* the entry on disk: Kafka's, its LSO the next open transaction (B at 4) */
    char path[512];
    seg_path(root, "txn", ".txnindex", path, sizeof(path));
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == SP_TXNINDEX_ENTRY);
    bool damaged;
    const char *why;
    sp_txnindex_t *t = sp_txnindex_open(path, 0, &damaged, &why);
    sp_aborted_txn_t e;
    CHECK(t && sp_txnindex_get(t, 0, &e) && e.producer_id == 1000 && e.first_offset == 1 && e.last_offset == 7 &&
          e.last_stable_offset == 4);
    sp_txnindex_free(t);

    /* Kafka's upper bound: the first index entry past the bytes read.
     * C (11-...) aborts after enough data for index entries */
    CHECK(put_data(p, 4000, 0, true, 1, 300) == 11);           /* 11: C opens */
    for (int i = 0; i < 4; i++)
        CHECK(put_data(p, -1, -1, false, 1, 300) == 12 + i);   /* 12-15, ~350 bytes each */
    CHECK(put_marker(p, 4000, 0, false, 0, &err) == 16);
    CHECK(put_data(p, -1, -1, false, 1, 10) == 17);
    int32_t got = 0;
    /* everything: A and C */
    CHECK(strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), &got), "1000:1,4000:11") == 0);
    /* the first batch only: the bound is the index entry after it, before C */
    CHECK(strcmp(aborted_at(p, 0, 1, s, sizeof(s), &got), "1000:1") == 0 && got > 0);
    /* from 12, a batch or two: C overlaps (its marker is later) */
    CHECK(strcmp(aborted_at(p, 12, 1, s, sizeof(s), &got), "4000:11") == 0);
    /* max_bytes 0: no bytes, the bound from the position of the offset */
    CHECK(strcmp(aborted_at(p, 12, 0, s, sizeof(s), &got), "4000:11") == 0 && got == 0);
    close_part(p, l);

    /* clean restart: the same answers */
    p = open_part(root, "txn", &c, true, 18, &l);
    CHECK(p && lso(p) == 18);
    CHECK(p && strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), NULL), "1000:1,4000:11") == 0);
    close_part(p, l);
    /* unclean restart with the .txnindex deleted: rebuilt by the replay */
    CHECK(unlink(path) == 0);
    p = open_part(root, "txn", &c, false, 0, &l);
    CHECK(p && lso(p) == 18); /* the replay's closed transactions are stable at open */
    CHECK(p && strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), NULL), "1000:1,4000:11") == 0);
    CHECK(stat(path, &st) == 0 && st.st_size == 2 * SP_TXNINDEX_ENTRY);
    close_part(p, l);
    /* unclean, file intact: no entry twice */
    p = open_part(root, "txn", &c, false, 0, &l);
    CHECK(p && stat(path, &st) == 0 && st.st_size == 2 * SP_TXNINDEX_ENTRY);
    close_part(p, l);
    /* clean, cut to a partial entry: damaged, rebuilt from the segment */
    CHECK(truncate(path, SP_TXNINDEX_ENTRY + 10) == 0);
    p = open_part(root, "txn", &c, true, 18, &l);
    CHECK(p && strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), NULL), "1000:1,4000:11") == 0);
    CHECK(stat(path, &st) == 0 && st.st_size == 2 * SP_TXNINDEX_ENTRY);
    close_part(p, l);
    /* a torn tail that takes C's marker away: its entry goes too, and C
     * is open again (the LSO at its first offset) */
    char logp[512];
    seg_path(root, "txn", ".log", logp, sizeof(logp));
    sp_plog_t *l2;
    p = open_part(root, "txn", &c, true, 18, &l2);
    sp_partition_read(p, 16, 1 << 20, true, SP_ISOLATION_HIGH_WATERMARK, &rd);
    int64_t marker_pos = rd.data.pos;
    sp_partition_read_release(&rd);
    close_part(p, l2);
    CHECK(truncate(logp, marker_pos + 20) == 0);
    p = open_part(root, "txn", &c, false, 0, &l);
    CHECK(p && sp_partition_hw(p) == 16 && lso(p) == 11);
    CHECK(p && strcmp(aborted_at(p, 0, 1 << 20, s, sizeof(s), NULL), "1000:1") == 0);
    CHECK(stat(path, &st) == 0 && st.st_size == SP_TXNINDEX_ENTRY);
    /* ListOffsets' view: the LSO */
    CHECK(lso(p) == 11 && sp_partition_hw(p) == 16);
    close_part(p, l);
}

/* ---- txn/markers.h through a registry --------------------------------------- */

typedef struct done_box {
    atomic_int calls;
    int16_t errors[8];
    int n;
} done_box_t;

static void on_done(void *ctx, const int16_t *errors)
{
    done_box_t *d = ctx;
    for (int i = 0; i < d->n; i++)
        d->errors[i] = errors[i];
    atomic_fetch_add(&d->calls, 1);
}

static void wait_done(done_box_t *d)
{
    for (int i = 0; i < 5000 && atomic_load(&d->calls) == 0; i++)
        usleep(1000);
}

typedef struct stress {
    sp_broker_t *b;
    sp_partition_t *p;
    int64_t pid;
    atomic_bool stop;
    atomic_int markers, reads, bad;
} stress_t;

/* A producer: transactions of a few batches, aborted or committed through
 * sp_txn_write_markers (acks=-1: waits for the flush thread). */
static void *producer(void *arg)
{
    stress_t *s = arg;
    sp_txn_marker_part_t tp = { "stress", 6, 0 };
    for (int i = 0; i < 60; i++) {
        for (int k = 0; k < 3; k++)
            put_data(s->p, s->pid, i * 3 + k, true, 2, 20);
        done_box_t d = { .n = 1 };
        sp_txn_marker_t m = { s->pid, 0, i % 2 == 0, 1, 1, 1, &tp };
        if (sp_txn_write_markers(s->b, &m, on_done, &d) != 0) {
            atomic_fetch_add(&s->bad, 1);
            continue;
        }
        wait_done(&d);
        if (atomic_load(&d.calls) != 1 || d.errors[0] != 0)
            atomic_fetch_add(&s->bad, 1);
        atomic_fetch_add(&s->markers, 1);
    }
    return NULL;
}

/* A reader: read_committed reads from everywhere; every aborted entry it
 * is told of must be well formed and overlap the range. */
static void *reader(void *arg)
{
    stress_t *s = arg;
    while (!atomic_load(&s->stop)) {
        int64_t hw = sp_partition_hw(s->p);
        int64_t off = hw > 0 ? rand() % hw : 0;
        sp_partition_read_t rd;
        sp_partition_read(s->p, off, 512, true, SP_ISOLATION_TXN_COMMITTED, &rd);
        if (rd.error || !rd.has_aborted || rd.lso > rd.hw)
            atomic_fetch_add(&s->bad, 1);
        for (int i = 0; !rd.error && i < rd.aborted.n; i++)
            if (rd.aborted.v[i].last_offset < off || rd.aborted.v[i].first_offset > rd.aborted.v[i].last_offset)
                atomic_fetch_add(&s->bad, 1);
        sp_partition_read_release(&rd);
        atomic_fetch_add(&s->reads, 1);
    }
    return NULL;
}

static void test_markers(const char *root)
{
    char d[512];
    snprintf(d, sizeof(d), "%s/mgr", root);
    CHECK(mkdir(d, 0755) == 0);
    char *dirs[] = { d };
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.ndirs = 1;
    lo.max_open_files = 32;
    lo.dirs = dirs;
    sp_logmgr_t *mgr = sp_logmgr_start(&lo);
    CHECK(mgr != NULL);
    if (!mgr)
        return;
    sp_partitions_t *reg = sp_partitions_new(mgr);
    sp_log_config_t c = cfg(1); /* durable: acks=-1 waits for the flush thread */
    CHECK(sp_partitions_open(reg, "m", tid, 0, &c, true) == 0);
    CHECK(sp_partitions_open(reg, "m", tid, 1, &c, true) == 0);
    CHECK(sp_partitions_open(reg, "stress", tid, 0, &c, true) == 0);
    sp_broker_t b;
    memset(&b, 0, sizeof(b));
    b.partitions = reg;
    sp_partition_t *p0 = sp_partitions_get(reg, "m", 1, 0);
    CHECK(put_data(p0, 77, 0, true, 2, 10) == 0);
    /* one marker, three partitions: the ABORT lands in both, the unknown
     * one is UNKNOWN_TOPIC_OR_PARTITION */
    sp_txn_marker_part_t tps[] = { { "m", 1, 0 }, { "m", 1, 1 }, { "nope", 4, 0 } };
    done_box_t db = { .n = 3 };
    sp_txn_marker_t m = { 77, 0, false, 3, 1, 3, tps };
    CHECK(sp_txn_write_markers(&b, &m, on_done, &db) == 0);
    wait_done(&db);
    CHECK(atomic_load(&db.calls) == 1 && db.errors[0] == 0 && db.errors[1] == 0 &&
          db.errors[2] == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK(sp_partition_hw(p0) == 3 && sp_partition_lso(p0) == 3); /* durable, and stable */
    char s[128];
    CHECK(strcmp(aborted_at(p0, 0, 1 << 20, s, sizeof(s), NULL), "77:0") == 0);
    /* a stale coordinator epoch is fenced; no partitions: done at once */
    done_box_t d2 = { .n = 1 };
    sp_txn_marker_t m2 = { 77, 0, true, 2, 1, 1, tps };
    CHECK(sp_txn_write_markers(&b, &m2, on_done, &d2) == 0);
    wait_done(&d2);
    CHECK(atomic_load(&d2.calls) == 1 && d2.errors[0] == SP_ERR_TRANSACTION_COORDINATOR_FENCED);
    done_box_t d3 = { .n = 0 };
    sp_txn_marker_t m3 = { 77, 0, true, 3, 1, 0, NULL };
    CHECK(sp_txn_write_markers(&b, &m3, on_done, &d3) == 0 && atomic_load(&d3.calls) == 1);
    sp_partition_unref(p0);

    /* threads: two producers' transactions and markers, two readers */
    stress_t st[2];
    pthread_t th[4];
    sp_partition_t *sp = sp_partitions_get(reg, "stress", 6, 0);
    for (int i = 0; i < 2; i++) {
        memset(&st[i], 0, sizeof(st[i]));
        st[i].b = &b;
        st[i].p = sp;
        st[i].pid = 500 + i;
    }
    pthread_create(&th[0], NULL, producer, &st[0]);
    pthread_create(&th[1], NULL, producer, &st[1]);
    pthread_create(&th[2], NULL, reader, &st[0]);
    pthread_create(&th[3], NULL, reader, &st[1]);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    atomic_store(&st[0].stop, true);
    atomic_store(&st[1].stop, true);
    pthread_join(th[2], NULL);
    pthread_join(th[3], NULL);
    CHECK(atomic_load(&st[0].markers) == 60 && atomic_load(&st[1].markers) == 60);
    CHECK(atomic_load(&st[0].bad) == 0 && atomic_load(&st[1].bad) == 0);
    CHECK(atomic_load(&st[0].reads) > 0);
    /* every transaction ended: the LSO is the hw, 60 aborts listed */
    CHECK(sp_partition_lso(sp) == sp_partition_hw(sp));
    sp_partition_read_t rd;
    sp_partition_read(sp, 0, 1 << 30, true, SP_ISOLATION_TXN_COMMITTED, &rd);
    CHECK(rd.error == 0 && rd.aborted.n == 60);
    sp_partition_read_release(&rd);
    sp_partition_unref(sp);
    sp_partitions_free(reg);
    sp_logmgr_shutdown(mgr, true);
}

int main(void)
{
    char root[] = "/tmp/spool-test-txn-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    sp_log_set_level(SP_LOG_ERROR);
    tid.b[0] = 9;
    files = sp_fdcache_new(64);
    test_txnindex(root);
    test_partition_txns(root);
    test_markers(root);
    sp_fdcache_free(files);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_txn");
}
