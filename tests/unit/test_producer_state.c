/*
 * test_producer_state.c - a partition's producers (txn/producer_state.h)
 * and the partition's use of them (cluster/partition.h): Kafka's
 * idempotence rules (retries of the last five batches answered with their
 * first offsets, sequence gaps, stale epochs, new epochs, sequence wrap,
 * producers with no state), transactions opened and closed by markers and
 * the first unstable offset, expiry, snapshot files (round trip, damaged,
 * past the log end, pruning), and across restarts of a partition: a roll
 * snapshots, a clean stop snapshots at the end, a crash replays the log
 * after the newest snapshot.
 */
#include <dirent.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cluster/partition.h"
#include "log/logmgr.h"
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "txn/producer_state.h"
#include "util/clock.h"
#include "util/log.h"

static sp_fdcache_t *files;
static sp_uuid_t tid;

/* A batch of n records from producer (pid, epoch) starting at seq. */
static uint8_t *pbatch(int64_t pid, int16_t epoch, int32_t seq, int n, int16_t flags, int64_t ts, size_t *len)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, ts);
    sp_batch_builder_set_producer(&b, pid, epoch, seq);
    if (flags)
        sp_batch_builder_set_flags(&b, flags);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof(v), "v%d", i);
        sp_batch_builder_add(&b, "k", 1, v, vl, ts);
    }
    uint8_t *p = sp_batch_builder_finish(&b, len);
    sp_batch_builder_free(&b);
    return p;
}

/* A COMMIT (commit) or ABORT marker of (pid, epoch) with coordinator epoch ce. */
static uint8_t *marker(int64_t pid, int16_t epoch, bool commit, int32_t ce, size_t *len)
{
    uint8_t key[4] = { 0, 0, 0, commit ? 1 : 0 };
    uint8_t val[6] = { 0, 0, (uint8_t)(ce >> 24), (uint8_t)(ce >> 16), (uint8_t)(ce >> 8), (uint8_t)ce };
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 5000);
    sp_batch_builder_set_producer(&b, pid, epoch, -1);
    sp_batch_builder_set_flags(&b, SP_BATCH_ATTR_TRANSACTIONAL | SP_BATCH_ATTR_CONTROL);
    sp_batch_builder_add(&b, key, 4, val, 6, 5000);
    uint8_t *p = sp_batch_builder_finish(&b, len);
    sp_batch_builder_free(&b);
    return p;
}

/* Checks the batch as a client's, then (if it passes) records it at
 * *next as the log would; returns the verdict. */
static sp_pverdict_t put(sp_pstate_t *s, uint8_t *b, size_t len, sp_pstate_origin_t origin, int64_t *next,
                         sp_completed_txn_t *done, int *urc)
{
    sp_batch_hdr_t h;
    sp_pverdict_t v;
    sp_batch_set_base_offset(b, *next);
    sp_batch_hdr_parse(b, len, &h);
    sp_pstate_check(s, &h, b, len, origin, *next, &v);
    if (!v.error && !v.duplicate) {
        int rc = sp_pstate_update(s, &h, b, len, done);
        if (urc)
            *urc = rc;
        *next = sp_batch_next_offset(&h);
    }
    free(b);
    return v;
}

#define PUT(s, pid, ep, seq, n, next) ({ size_t l_; uint8_t *b_ = pbatch(pid, ep, seq, n, 0, 1000, &l_); \
                                         put(s, b_, l_, SP_PSTATE_CLIENT, next, NULL, NULL); })

/* (built first: argument evaluation order is unspecified) */
static sp_pverdict_t putb(sp_pstate_t *s, int64_t pid, int16_t ep, int32_t seq, int n, int16_t flags, int64_t ts,
                          sp_pstate_origin_t origin, int64_t *next, sp_completed_txn_t *done, int *rc)
{
    size_t l;
    uint8_t *b = pbatch(pid, ep, seq, n, flags, ts, &l);
    return put(s, b, l, origin, next, done, rc);
}

static sp_pverdict_t putm(sp_pstate_t *s, int64_t pid, int16_t ep, bool commit, int32_t ce, int64_t *next,
                          sp_completed_txn_t *done, int *rc)
{
    size_t l;
    uint8_t *b = marker(pid, ep, commit, ce, &l);
    return put(s, b, l, SP_PSTATE_COORDINATOR, next, done, rc);
}

static void test_idempotence(void)
{
    sp_pstate_t *s = sp_pstate_new("t-0");
    int64_t next = 0;
    sp_pverdict_t v;
    /* an unknown producer may start anywhere (KIP-360) */
    v = PUT(s, 7, 0, 10, 3, &next);
    CHECK(!v.error && !v.duplicate && next == 3);
    /* then in order; 6 batches: the first falls out of the five kept */
    for (int i = 0; i < 6; i++) {
        v = PUT(s, 7, 0, 13 + 2 * i, 2, &next);
        CHECK(!v.error && !v.duplicate);
    }
    CHECK(next == 15);
    CHECK(sp_pstate_get(s, 7)->nbatches == SP_PSTATE_BATCHES);
    /* a retry of any of the last five: its original offsets */
    v = PUT(s, 7, 0, 15, 2, &next); /* seqs 15..16: the 2nd batch of the loop, offsets 5..6 */
    CHECK(v.duplicate && v.dup_first == 5 && v.dup_last == 6 && v.dup_timestamp == 1000);
    v = PUT(s, 7, 0, 23, 2, &next); /* the last one, offsets 13..14 */
    CHECK(v.duplicate && v.dup_first == 13 && v.dup_last == 14);
    /* the 6th-last (seqs 13..14) is no longer known: out of order */
    v = PUT(s, 7, 0, 13, 2, &next);
    CHECK(!v.duplicate && v.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* the very first batch (10..12): also out of order */
    v = PUT(s, 7, 0, 10, 3, &next);
    CHECK(v.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* a range overlapping but not equal to a kept batch */
    v = PUT(s, 7, 0, 23, 1, &next);
    CHECK(!v.duplicate && v.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* a gap */
    v = PUT(s, 7, 0, 26, 1, &next);
    CHECK(v.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER && strstr(v.message, "26 (incoming seq. number), 24"));
    CHECK(next == 15);                  /* nothing recorded by the refusals */
    /* next in order */
    v = PUT(s, 7, 0, 25, 1, &next);
    CHECK(!v.error && !v.duplicate && next == 16);
    /* a new epoch must start at 0 */
    v = PUT(s, 7, 1, 26, 1, &next);
    CHECK(v.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    v = PUT(s, 7, 1, 0, 4, &next);
    CHECK(!v.error && next == 20);
    /* the old epoch is fenced now, retries included */
    v = PUT(s, 7, 0, 25, 1, &next);
    CHECK(v.error == SP_ERR_INVALID_PRODUCER_EPOCH);
    /* a duplicate of the new epoch's batch */
    v = PUT(s, 7, 1, 0, 4, &next);
    CHECK(v.duplicate && v.dup_first == 16 && v.dup_last == 19);
    /* sequence wrap: INT32_MAX is followed by 0 */
    v = PUT(s, 8, 0, INT32_MAX - 1, 2, &next);
    CHECK(!v.error);
    CHECK(sp_pstate_get(s, 8)->batches[0].last_seq == INT32_MAX);
    v = PUT(s, 8, 0, 0, 1, &next);
    CHECK(!v.error);
    v = PUT(s, 8, 0, INT32_MAX - 1, 2, &next);
    CHECK(v.duplicate);
    /* a batch that wraps within itself: last seq 1 */
    v = PUT(s, 9, 0, INT32_MAX, 3, &next);
    CHECK(!v.error && sp_pstate_get(s, 9)->batches[0].last_seq == 1);
    v = PUT(s, 9, 0, INT32_MAX, 3, &next);
    CHECK(v.duplicate);
    v = PUT(s, 9, 0, 2, 1, &next);
    CHECK(!v.error);
    /* batches without a producer id pass untouched */
    {
        size_t l;
        uint8_t *b = pbatch(-1, -1, -1, 2, 0, 1000, &l);
        int64_t before = next;
        v = put(s, b, l, SP_PSTATE_CLIENT, &next, NULL, NULL);
        CHECK(!v.error && next == before + 2 && sp_pstate_end(s) == next);
    }
    /* the coordinator's writes: epoch checked, sequence not */
    {
        size_t l;
        uint8_t *b = pbatch(7, 1, 77, 1, 0, 1000, &l);
        v = put(s, b, l, SP_PSTATE_COORDINATOR, &next, NULL, NULL);
        CHECK(!v.error && !v.duplicate);
        b = pbatch(7, 0, 0, 1, 0, 1000, &l);
        v = put(s, b, l, SP_PSTATE_COORDINATOR, &next, NULL, NULL);
        CHECK(v.error == SP_ERR_INVALID_PRODUCER_EPOCH);
    }
    CHECK(sp_pstate_count(s) == 3);
    CHECK(sp_pstate_check_invariants(s));
    sp_pstate_free(s);
}

static void test_transactions(void)
{
    sp_pstate_t *s = sp_pstate_new("t-0");
    int64_t next = 0;
    sp_completed_txn_t done;
    int rc = -5;
    sp_pverdict_t v;
    /* producer 1 opens at 0, producer 2 at 2 */
    v = putb(s, 1, 0, 0, 2, SP_BATCH_ATTR_TRANSACTIONAL, 1000, SP_PSTATE_CLIENT, &next, &done, &rc);
    CHECK(!v.error && rc == 0 && sp_pstate_first_unstable(s) == 0);
    v = putb(s, 2, 0, 0, 3, SP_BATCH_ATTR_TRANSACTIONAL, 1000, SP_PSTATE_CLIENT, &next, &done, &rc);
    CHECK(!v.error && sp_pstate_first_unstable(s) == 0 && next == 5);
    /* a plain batch inside an open transaction */
    v = putb(s, 1, 0, 2, 1, 0, 1000, SP_PSTATE_CLIENT, &next, &done, &rc);
    CHECK(v.error == SP_ERR_INVALID_TXN_STATE);
    /* producer 1 aborts (marker at 5): completed, LSO once stable = 2 (producer 2's) */
    v = putm(s, 1, 0, false, 3, &next, &done, &rc);
    CHECK(!v.error && rc == 1 && done.producer_id == 1 && done.first_offset == 0 && done.last_offset == 5 &&
          done.aborted && done.last_stable_offset == 2);
    CHECK(sp_pstate_get(s, 1)->txn_first_offset == -1 && sp_pstate_get(s, 1)->coordinator_epoch == 3);
    /* unstable until hw passes the marker */
    CHECK(sp_pstate_first_unstable(s) == 0);
    sp_pstate_on_hw(s, 5);
    CHECK(sp_pstate_first_unstable(s) == 0);
    sp_pstate_on_hw(s, 6);
    CHECK(sp_pstate_first_unstable(s) == 2);
    /* a marker from a fenced coordinator */
    v = putm(s, 2, 0, true, 2, &next, &done, &rc);
    CHECK(v.error == 0); /* no coordinator epoch known for producer 2 yet */
    CHECK(rc == 1 && !done.aborted && done.first_offset == 2 && done.last_offset == 6 &&
          done.last_stable_offset == 7);
    v = putm(s, 1, 0, true, 2, &next, &done, &rc);
    CHECK(v.error == SP_ERR_TRANSACTION_COORDINATOR_FENCED);
    /* a marker of an older epoch */
    v = putm(s, 1, -1, true, 9, &next, &done, &rc);
    CHECK(v.error == SP_ERR_INVALID_PRODUCER_EPOCH);
    /* a marker with no transaction open: recorded, nothing completed */
    v = putm(s, 1, 0, true, 3, &next, &done, &rc);
    CHECK(!v.error && rc == 0);
    sp_pstate_on_hw(s, next);
    CHECK(sp_pstate_first_unstable(s) == -1);
    CHECK(sp_pstate_check_invariants(s));
    sp_pstate_free(s);
}

/* KIP-890's guard: an opening transactional batch needs the guard of its
 * verification, which a marker of the producer (an abort meanwhile)
 * takes away. */
static void test_verification_guard(void)
{
    sp_pstate_t *s = sp_pstate_new("t-0");
    size_t l;
    sp_pverdict_t v;
    sp_batch_hdr_t h;
    uint8_t *b = pbatch(3, 0, 0, 2, SP_BATCH_ATTR_TRANSACTIONAL, 1000, &l);
    sp_batch_set_base_offset(b, 0);
    sp_batch_hdr_parse(b, l, &h);
    sp_pstate_check_guarded(s, &h, b, l, SP_PSTATE_CLIENT, 0, 0, &v);
    CHECK(v.error == SP_ERR_INVALID_TXN_STATE);             /* never verified */
    uint64_t g = sp_pstate_verify_begin(s, 3, 0, 1000);
    CHECK(g != 0 && sp_pstate_verify_begin(s, 3, 0, 1000) == g);
    sp_pstate_check_guarded(s, &h, b, l, SP_PSTATE_CLIENT, 0, g + 1, &v);
    CHECK(v.error == SP_ERR_INVALID_TXN_STATE);             /* another guard */
    sp_pstate_check_guarded(s, &h, b, l, SP_PSTATE_CLIENT, 0, g, &v);
    CHECK(!v.error);
    /* an abort marker lands between the verification and the append */
    int64_t next = 0;
    putm(s, 3, 0, false, 0, &next, NULL, NULL);
    sp_batch_set_base_offset(b, next);
    sp_batch_hdr_parse(b, l, &h);
    sp_pstate_check_guarded(s, &h, b, l, SP_PSTATE_CLIENT, next, g, &v);
    CHECK(v.error == SP_ERR_INVALID_TXN_STATE);
    /* verified again: appended, and the guard is used up; the open
     * transaction's next batches need none */
    g = sp_pstate_verify_begin(s, 3, 0, 1000);
    sp_pstate_check_guarded(s, &h, b, l, SP_PSTATE_CLIENT, next, g, &v);
    CHECK(!v.error);
    sp_completed_txn_t done;
    CHECK(sp_pstate_update(s, &h, b, l, &done) == 0);
    free(b);
    b = pbatch(3, 0, 2, 1, SP_BATCH_ATTR_TRANSACTIONAL, 1000, &l);
    sp_batch_set_base_offset(b, next + 2);
    sp_batch_hdr_parse(b, l, &h);
    sp_pstate_check_guarded(s, &h, b, l, SP_PSTATE_CLIENT, next + 2, 0, &v);
    CHECK(!v.error);
    free(b);
    sp_pstate_free(s);
}

static void test_expiry(void)
{
    sp_pstate_t *s = sp_pstate_new("t-0");
    int64_t next = 0;
    /* 200 producers, timestamps 1000 (even) and 5000 (odd); one old one in a transaction */
    for (int i = 0; i < 200; i++)
        putb(s, 100 + i, 0, 0, 1, 0, i % 2 ? 5000 : 1000, SP_PSTATE_CLIENT, &next, NULL, NULL);
    putb(s, 1, 0, 0, 1, SP_BATCH_ATTR_TRANSACTIONAL, 10, SP_PSTATE_CLIENT, &next, NULL, NULL);
    CHECK(sp_pstate_count(s) == 201);
    CHECK(sp_pstate_expire(s, 3000, 2000) == 100);
    CHECK(sp_pstate_count(s) == 101);
    CHECK(sp_pstate_check_invariants(s));
    for (int i = 0; i < 200; i++)
        CHECK((sp_pstate_get(s, 100 + i) != NULL) == (i % 2 == 1));
    CHECK(sp_pstate_get(s, 1) != NULL); /* open transaction: kept */
    /* an expired producer may start again anywhere */
    sp_pverdict_t v = PUT(s, 100, 0, 50, 1, &next);
    CHECK(!v.error && !v.duplicate);
    sp_pstate_free(s);
}

static int count_snapshots(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".snapshot") && !strstr(e->d_name, ".tmp"))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_snapshots(const char *root)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/snaps", root);
    CHECK(mkdir(dir, 0755) == 0);
    sp_pstate_t *s = sp_pstate_new("t-0");
    int64_t next = 0;
    sp_pverdict_t v;
    for (int i = 0; i < 3; i++)
        PUT(s, 1, 2, 5 * i, 5, &next);
    putb(s, 2, 0, 0, 2, SP_BATCH_ATTR_TRANSACTIONAL, 1000, SP_PSTATE_CLIENT, &next, NULL, NULL);
    CHECK(next == 17);
    CHECK(sp_pstate_snapshot_write(s, dir, true) == 0);
    snprintf(path, sizeof(path), "%s/00000000000000000017.snapshot", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 10 + 2 * 46);
    PUT(s, 1, 2, 15, 5, &next);
    sp_pstate_snapshot_write(s, dir, false); /* at 22 */

    /* the newest at or below the end: 17 when the log ends at 20 (22 removed) */
    sp_pstate_t *r = sp_pstate_new("t-0");
    CHECK(sp_pstate_snapshot_load(r, dir, 20, 2000, 86400000) == 17);
    CHECK(count_snapshots(dir) == 1);
    CHECK(sp_pstate_end(r) == 17 && sp_pstate_count(r) == 2);
    const sp_pentry_t *e = sp_pstate_get(r, 1);
    CHECK(e && e->epoch == 2 && e->nbatches == 1 && e->batches[0].last_seq == 14 &&
          e->batches[0].last_offset == 14 && e->batches[0].offset_delta == 4);
    CHECK(sp_pstate_get(r, 2)->txn_first_offset == 15 && sp_pstate_first_unstable(r) == 15);
    CHECK(sp_pstate_check_invariants(r));
    /* only the last batch survives a snapshot (as in Kafka): its retry is
     * known, the one before is out of order, the next in order passes */
    int64_t rn = 17;
    v = PUT(r, 1, 2, 10, 5, &rn);
    CHECK(v.duplicate && v.dup_first == 10 && v.dup_last == 14);
    v = PUT(r, 1, 2, 5, 5, &rn);
    CHECK(v.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    v = PUT(r, 1, 2, 15, 1, &rn);
    CHECK(!v.error);
    /* loading drops producers expired by then (but not one in a transaction) */
    CHECK(sp_pstate_snapshot_load(r, dir, 100, 1000 + 86400000, 86400000) == 17);
    CHECK(sp_pstate_count(r) == 1 && sp_pstate_get(r, 2) != NULL);

    /* damage: the newest is dropped, the older one loads */
    sp_pstate_t *o = sp_pstate_new("t-0");
    sp_pstate_set_end(o, 5);
    CHECK(sp_pstate_snapshot_write(o, dir, false) == 0); /* an empty one at 5 */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 20, SEEK_SET);
        fputc('x', f);
        fclose(f);
    }
    CHECK(sp_pstate_snapshot_load(r, dir, 100, 2000, 86400000) == 5);
    CHECK(sp_pstate_count(r) == 0 && access(path, F_OK) != 0);
    /* truncated to nothing: dropped too; none left: -1 */
    snprintf(path, sizeof(path), "%s/00000000000000000005.snapshot", dir);
    CHECK(truncate(path, 3) == 0);
    CHECK(sp_pstate_snapshot_load(r, dir, 100, 2000, 86400000) == -2 && count_snapshots(dir) == 0);
    CHECK(sp_pstate_snapshot_load(r, dir, 100, 2000, 86400000) == -1);

    /* pruning keeps the newest */
    for (int64_t at = 10; at <= 40; at += 10) {
        sp_pstate_set_end(o, at);
        sp_pstate_snapshot_write(o, dir, false);
    }
    CHECK(sp_pstate_snapshot_prune(dir, 25) == 2 && count_snapshots(dir) == 2);
    CHECK(sp_pstate_snapshot_prune(dir, 100) == 1 && count_snapshots(dir) == 1);
    snprintf(path, sizeof(path), "%s/00000000000000000040.snapshot", dir);
    CHECK(access(path, F_OK) == 0);
    sp_pstate_free(o);
    sp_pstate_free(r);
    sp_pstate_free(s);
}

/* ---- through the partition -------------------------------------------------- */

static sp_log_config_t cfg(void)
{
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    c.segment_bytes = 1024;             /* small: rolls every few batches */
    c.segment_ms = INT64_MAX / 2;
    c.segment_index_bytes = 1 << 16;
    c.index_interval_bytes = 256;
    c.flush_messages = INT64_MAX;       /* page cache: hw = end */
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

static const sp_append_origin_t client = { .kind = SP_ORIGIN_CLIENT };

static sp_append_outcome_t send(sp_partition_t *p, int64_t pid, int16_t epoch, int32_t seq, int n)
{
    size_t len;
    uint8_t *b = pbatch(pid, epoch, seq, n, 0, sp_wall_ms(), &len);
    sp_append_outcome_t ar;
    sp_partition_append(p, b, len, &client, 1, sp_wall_ms(), &ar);
    free(b);
    return ar;
}

static sp_partition_t *open_part(const char *dir, bool clean, sp_plog_t **log)
{
    sp_log_config_t c = cfg();
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = "t";
    o.topic_id = tid;
    o.cfg = &c;
    o.create = true;
    o.clean = clean;
    o.files = files;
    *log = sp_plog_open(&o);
    if (!*log)
        return NULL;
    sp_plog_ref(*log);
    return sp_partition_new(*log, "t", 0);
}

typedef struct seen {
    int n;
    int64_t pid[8];
    int16_t epoch[8];
    int32_t last_seq[8];
} seen_t;

static void collect(const sp_pentry_t *e, void *ctx)
{
    seen_t *s = ctx;
    if (s->n < 8) {
        s->pid[s->n] = e->producer_id;
        s->epoch[s->n] = e->epoch;
        s->last_seq[s->n] = e->nbatches ? e->batches[e->nbatches - 1].last_seq : -1;
        s->n++;
    }
}

static void close_part(sp_partition_t *p, sp_plog_t *l)
{
    sp_partition_unref(p);
    sp_plog_unref(l);
}

static void test_partition_restarts(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/t-0", root);
    sp_plog_t *l;
    sp_partition_t *p = open_part(dir, false, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    /* 40 batches of 10 from producer 5: several rolls, each a snapshot */
    int64_t last_base = -1;
    for (int i = 0; i < 40; i++) {
        sp_append_outcome_t ar = send(p, 5, 0, 10 * i, 10);
        CHECK(ar.error == 0 && ar.base_offset == 10 * i);
        last_base = ar.base_offset;
    }
    sp_log_offsets_t o;
    sp_partition_offsets(p, &o);
    CHECK(o.leo == 400);
    int snaps = count_snapshots(dir);
    CHECK(snaps >= 2);
    /* a retry: its first offset, nothing written */
    sp_append_outcome_t ar = send(p, 5, 0, 390, 10);
    CHECK(ar.error == 0 && ar.base_offset == last_base && ar.last_offset == 399 && ar.log_append_time > 0);
    sp_partition_offsets(p, &o);
    CHECK(o.leo == 400);
    ar = send(p, 5, 0, 410, 1);
    CHECK(ar.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER && ar.base_offset == -1 && !ar.message);
    ar = send(p, 6, 3, 0, 2); /* a second producer */
    CHECK(ar.error == 0 && ar.base_offset == 400);

    /* a crash (no snapshot at the end): the newest roll snapshot + the log after it */
    close_part(p, l);
    p = open_part(dir, false, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    seen_t s = { 0 };
    sp_partition_producers(p, collect, &s);
    CHECK(s.n == 2);
    ar = send(p, 5, 0, 390, 10);
    CHECK(ar.error == 0 && ar.base_offset == 390);           /* still a known retry */
    ar = send(p, 5, 0, 380, 10);
    CHECK(ar.error == 0 && ar.base_offset == 380);           /* replayed batches: all five kept */
    ar = send(p, 6, 3, 0, 2);
    CHECK(ar.error == 0 && ar.base_offset == 400);
    ar = send(p, 6, 2, 2, 1);
    CHECK(ar.error == SP_ERR_INVALID_PRODUCER_EPOCH);
    ar = send(p, 5, 0, 400, 5);
    CHECK(ar.error == 0 && ar.base_offset == 402);
    close_part(p, l);

    /* every snapshot removed, an unclean stop: the whole log is replayed */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".snapshot")) {
            char path[800];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    p = open_part(dir, false, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    ar = send(p, 5, 0, 400, 5);
    CHECK(ar.error == 0 && ar.base_offset == 402);
    ar = send(p, 5, 0, 406, 1);
    CHECK(ar.error == SP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    close_part(p, l);

    /* a clean stop with no snapshot at all (a log from before snapshots):
     * empty state at the end, no reading; producers start anywhere */
    d = opendir(dir);
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".snapshot")) {
            char path[800];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    p = open_part(dir, true, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    s.n = 0;
    sp_partition_producers(p, collect, &s);
    CHECK(s.n == 0);
    ar = send(p, 5, 0, 406, 1);
    CHECK(ar.error == 0 && ar.base_offset == 407);
    close_part(p, l);
}

/* A clean stop through the registry writes a snapshot at the end, synced;
 * the next start reads it and no log. */
static void test_clean_stop(const char *root)
{
    char d[512], path[700];
    snprintf(d, sizeof(d), "%s/clean", root);
    CHECK(mkdir(d, 0755) == 0);
    char *dirs[] = { d };
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.ndirs = 1;
    lo.max_open_files = 16;
    lo.dirs = dirs;
    sp_log_config_t c = cfg();
    c.segment_bytes = 1 << 20;
    for (int round = 0; round < 2; round++) {
        sp_logmgr_t *m = sp_logmgr_start(&lo);
        sp_partitions_t *r = m ? sp_partitions_new(m) : NULL;
        CHECK(r && sp_partitions_open(r, "t", tid, 0, &c, round == 0) == 0);
        sp_partition_t *p = r ? sp_partitions_get(r, "t", 1, 0) : NULL;
        CHECK(p != NULL);
        if (!p)
            return;
        sp_append_outcome_t ar = send(p, 11, 0, round * 3, 3);
        CHECK(ar.error == 0 && ar.base_offset == round * 3);
        if (round == 1) {
            ar = send(p, 11, 0, 0, 3); /* a retry of round 0's batch, known from the snapshot */
            CHECK(ar.error == 0 && ar.base_offset == 0);
        }
        sp_partition_unref(p);
        sp_partitions_free(r);
        sp_logmgr_shutdown(m, true);
        snprintf(path, sizeof(path), "%s/t-0/%020d.snapshot", d, 3 * (round + 1));
        CHECK(access(path, F_OK) == 0);
    }
}

/* ---- concurrency (run under TSan by make tsan) ------------------------------- */

#define CC_THREADS 4
#define CC_PARTS 3
#define CC_BATCHES 240

typedef struct cc {
    sp_partition_t *parts[CC_PARTS];
    atomic_int errors, dups_ok, stop;
} cc_t;

typedef struct cc_arg {
    cc_t *cc;
    int64_t pid;
} cc_arg_t;

/* One producer: batches round robin over the partitions, each retried
 * (sent again) now and then; a retry must come back with its offsets. */
static void *cc_producer(void *arg)
{
    cc_arg_t *a = arg;
    int32_t seq[CC_PARTS] = { 0 };
    unsigned rnd = (unsigned)a->pid * 2654435761u;
    for (int i = 0; i < CC_BATCHES; i++) {
        int k = i % CC_PARTS;
        int n = 1 + (int)(rnd % 4);
        rnd = rnd * 1103515245u + 12345u;
        sp_append_outcome_t ar = send(a->cc->parts[k], a->pid, 0, seq[k], n);
        if (ar.error) {
            atomic_fetch_add(&a->cc->errors, 1);
            continue;
        }
        if (rnd % 3 == 0) {
            sp_append_outcome_t again = send(a->cc->parts[k], a->pid, 0, seq[k], n);
            if (again.error || again.base_offset != ar.base_offset || again.last_offset != ar.last_offset)
                atomic_fetch_add(&a->cc->errors, 1);
            else
                atomic_fetch_add(&a->cc->dups_ok, 1);
        }
        seq[k] += n;
    }
    return NULL;
}

static void count_producers(const sp_pentry_t *e, void *ctx)
{
    (*(int *)ctx) += e->nbatches > 0;
}

/* DescribeProducers meanwhile. */
static void *cc_describer(void *arg)
{
    cc_t *cc = arg;
    while (!atomic_load(&cc->stop))
        for (int k = 0; k < CC_PARTS; k++) {
            int n = 0;
            sp_partition_producers(cc->parts[k], count_producers, &n);
            if (n > CC_THREADS)
                atomic_fetch_add(&cc->errors, 1);
        }
    return NULL;
}

typedef struct cc_check {
    int32_t next_seq[CC_THREADS + 1];
    int records[CC_THREADS + 1];
    bool bad;
} cc_check_t;

static int cc_batch(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h)
{
    cc_check_t *c = ctx;
    (void)batch;
    (void)len;
    if (h->producer_id < 1 || h->producer_id > CC_THREADS || h->base_sequence != c->next_seq[h->producer_id]) {
        c->bad = true;
        return 0;
    }
    c->next_seq[h->producer_id] += h->record_count;
    c->records[h->producer_id] += h->record_count;
    return 0;
}

/* Several idempotent producers on several partitions at once, with
 * retries, while the flush thread moves the high watermarks and a reader
 * describes the producers: every batch is in each log exactly once, in
 * sequence order. */
static void test_concurrent(const char *root)
{
    char d[512];
    snprintf(d, sizeof(d), "%s/cc", root);
    CHECK(mkdir(d, 0755) == 0);
    char *dirs[] = { d };
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.ndirs = 1;
    lo.max_open_files = 32;
    lo.dirs = dirs;
    sp_log_config_t c = cfg();
    c.flush_messages = 1; /* durable: the flush thread moves hw */
    sp_logmgr_t *m = sp_logmgr_start(&lo);
    sp_partitions_t *r = m ? sp_partitions_new(m) : NULL;
    cc_t cc;
    memset(&cc, 0, sizeof(cc));
    for (int k = 0; k < CC_PARTS; k++) {
        CHECK(r && sp_partitions_open(r, "cc", tid, k, &c, true) == 0);
        cc.parts[k] = r ? sp_partitions_get(r, "cc", 2, k) : NULL;
        if (!cc.parts[k])
            return;
    }
    pthread_t th[CC_THREADS], desc;
    cc_arg_t args[CC_THREADS];
    pthread_create(&desc, NULL, cc_describer, &cc);
    for (int t = 0; t < CC_THREADS; t++) {
        args[t] = (cc_arg_t){ &cc, t + 1 };
        pthread_create(&th[t], NULL, cc_producer, &args[t]);
    }
    for (int t = 0; t < CC_THREADS; t++)
        pthread_join(th[t], NULL);
    atomic_store(&cc.stop, 1);
    pthread_join(desc, NULL);
    CHECK(atomic_load(&cc.errors) == 0);
    CHECK(atomic_load(&cc.dups_ok) > 50);
    int total[CC_THREADS + 1] = { 0 };
    for (int k = 0; k < CC_PARTS; k++) {
        cc_check_t chk;
        memset(&chk, 0, sizeof(chk));
        sp_plog_t *lg = sp_logmgr_get(m, "cc", 2, k);
        CHECK(lg && sp_plog_scan_batches(lg, 0, cc_batch, &chk) == 0);
        sp_plog_unref(lg);
        CHECK(!chk.bad);
        for (int t = 1; t <= CC_THREADS; t++)
            total[t] += chk.records[t];
    }
    for (int t = 1; t <= CC_THREADS; t++)
        CHECK(total[t] >= CC_BATCHES && total[t] <= 4 * CC_BATCHES);
    for (int k = 0; k < CC_PARTS; k++)
        sp_partition_unref(cc.parts[k]);
    sp_partitions_free(r);
    sp_logmgr_shutdown(m, true);
}

int main(void)
{
    char root[] = "/tmp/spool-test-pstate-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    sp_log_set_level(SP_LOG_ERROR);
    tid.b[0] = 9;
    files = sp_fdcache_new(64);
    test_idempotence();
    test_transactions();
    test_verification_guard();
    test_expiry();
    test_snapshots(root);
    test_partition_restarts(root);
    test_clean_stop(root);
    test_concurrent(root);
    sp_fdcache_free(files);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_producer_state");
}
