/*
 * test_partition.c - the partition above a log (cluster/partition.h): the
 * high watermark's rules (one replica: flushed on a durable topic, the log
 * end otherwise; never down), reads bounded by the isolation, acks=all
 * and fetch waiters, min.insync.replicas, a client's batch judged by the
 * topic's settings, and the registry (open, look up, delete, abandon,
 * settings).  The concurrent side (many appenders, waiters and deletions
 * against the flush thread) is test_logmgr.
 */
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

/* n records with keys (or none), timestamps ts. */
static uint8_t *batch(int n, bool keys, int64_t ts, size_t *len)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, ts);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof(v), "value-%d", i);
        sp_batch_builder_add(&b, keys ? "k" : NULL, keys ? 1 : -1, v, vl, ts);
    }
    uint8_t *p = sp_batch_builder_finish(&b, len);
    sp_batch_builder_free(&b);
    return p;
}

static const sp_append_origin_t coordinator = { .kind = SP_ORIGIN_COORDINATOR };
static const sp_append_origin_t client = { .kind = SP_ORIGIN_CLIENT };

/* Appends n records; returns the append's "final" answer, *ar filled. */
static bool append(sp_partition_t *p, const sp_append_origin_t *o, int n, int16_t acks, sp_append_outcome_t *ar)
{
    size_t len;
    uint8_t *b = batch(n, true, 1000, &len);
    bool final = sp_partition_append(p, b, len, o, acks, 1000, ar);
    free(b);
    return final;
}

/* wake() may run on the flush thread: atomics */
typedef struct w {
    sp_waiter_t w;
    atomic_int woken, err;
} w_t;

static void on_wake(sp_waiter_t *w, int err)
{
    w_t *x = (w_t *)w;
    atomic_store(&x->err, err);
    atomic_fetch_add(&x->woken, 1);
}

static sp_partition_t *open_part(const char *root, const char *name, const sp_log_config_t *c, sp_plog_t **log)
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
    o.files = files;
    *log = sp_plog_open(&o);
    if (!*log)
        return NULL;
    sp_plog_ref(*log);
    return sp_partition_new(*log, name, 0);
}

/* Durable topic: nothing is served or acknowledged before the flush. */
static void test_durable_hw(const char *root)
{
    sp_log_config_t c = cfg(1);
    sp_plog_t *l;
    sp_partition_t *p = open_part(root, "durable", &c, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK(sp_partition_hw(p) == 0);
    w_t fw = { .w.wake = on_wake };
    sp_partition_wait_fetch(p, &fw.w);
    CHECK(fw.woken == 0 && fw.w.linked);

    sp_append_outcome_t ar;
    bool final = append(p, &client, 5, -1, &ar);
    CHECK(ar.error == 0 && ar.base_offset == 0 && ar.last_offset == 4);
    CHECK(!final);                      /* acks=all waits for the flush */
    CHECK(sp_partition_hw(p) == 0);     /* appended, not flushed */
    CHECK(fw.woken == 0);               /* no hw move: no wake */
    w_t aw = { .w.wake = on_wake, .w.offset = ar.last_offset };
    sp_partition_wait_ack(p, &aw.w);
    CHECK(aw.woken == 0);

    /* consumers see nothing yet; a follower's read (log end) would */
    sp_partition_read_t rd;
    sp_partition_read(p, 0, 1 << 20, true, SP_ISOLATION_HIGH_WATERMARK, &rd);
    CHECK(rd.error == 0 && rd.data.seg == NULL && rd.hw == 0 && rd.lso == 0);
    sp_partition_read_release(&rd);
    sp_partition_read(p, 0, 1 << 20, true, SP_ISOLATION_LOG_END, &rd);
    CHECK(rd.error == 0 && rd.data.seg != NULL && rd.data.len > 0);
    sp_partition_read_release(&rd);

    /* acks=1 is answered at once */
    CHECK(append(p, &client, 3, 1, &ar) && ar.error == 0 && ar.last_offset == 7);

    CHECK(sp_plog_flush(l) == 0);
    sp_log_offsets_t lo;
    sp_plog_offsets(l, &lo);
    CHECK(sp_partition_hw(p) == 8 && lo.hw == 8); /* published to the log */
    CHECK(aw.woken == 1 && aw.err == 0 && !aw.w.linked);
    CHECK(fw.woken == 1 && fw.err == 0 && fw.w.linked); /* fetchers stay until they answer */
    sp_partition_read(p, 0, 1 << 20, true, SP_ISOLATION_HIGH_WATERMARK, &rd);
    CHECK(rd.error == 0 && rd.data.seg != NULL && rd.hw == 8);
    sp_partition_read_release(&rd);
    sp_partition_read(p, 8, 1 << 20, true, SP_ISOLATION_TXN_COMMITTED, &rd);
    CHECK(rd.error == 0 && rd.data.seg == NULL && rd.lso == 8);
    sp_partition_read_release(&rd);

    /* an ack waiter for what is already below hw completes at once */
    w_t done = { .w.wake = on_wake, .w.offset = 7 };
    sp_partition_wait_ack(p, &done.w);
    CHECK(done.woken == 1 && done.err == 0 && !done.w.linked);
    sp_partition_unwait(p, &fw.w);
    CHECK(!fw.w.linked);

    /* DeleteRecords is bounded by the partition's hw */
    int64_t start = -1;
    CHECK(append(p, &client, 2, 1, &ar) && ar.last_offset == 9);
    CHECK(sp_partition_delete_records(p, 9, &start) == SP_ERR_OFFSET_OUT_OF_RANGE);
    CHECK(sp_partition_delete_records(p, -1, &start) == 0 && start == 8);
    sp_log_offsets_t o;
    sp_partition_offsets(p, &o);
    CHECK(o.hw == 8 && o.leo == 10 && o.log_start == 8 && o.flushed == 8);

    /* the topic made page-cache: hw follows the log end at the next change */
    sp_log_config_t pc = cfg(1000);
    sp_plog_set_config(l, &pc);
    CHECK(append(p, &client, 1, 1, &ar) && ar.last_offset == 10);
    CHECK(sp_partition_hw(p) == 11);
    /* and durable again: hw stays where it was (it never goes down) */
    sp_plog_set_config(l, &c);
    CHECK(append(p, &client, 1, 1, &ar) && ar.last_offset == 11);
    CHECK(sp_partition_hw(p) == 11);
    CHECK(sp_plog_flush(l) == 0 && sp_partition_hw(p) == 12);
    sp_partition_unref(p);
    sp_plog_unref(l);
}

/* Page-cache topic: hw is the log end at once; acks=all needs no flush. */
static void test_page_cache_hw(const char *root)
{
    sp_log_config_t c = cfg(1000);
    sp_plog_t *l;
    sp_partition_t *p = open_part(root, "pagecache", &c, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    w_t fw = { .w.wake = on_wake };
    sp_partition_wait_fetch(p, &fw.w);
    sp_append_outcome_t ar;
    CHECK(append(p, &client, 4, -1, &ar) && ar.error == 0); /* final at once */
    CHECK(sp_partition_hw(p) == 4 && fw.woken == 1);
    CHECK(append(p, &coordinator, 2, 0, &ar) && ar.last_offset == 5);
    CHECK(sp_partition_hw(p) == 6 && fw.woken == 2);
    sp_log_offsets_t o;
    sp_partition_offsets(p, &o);
    CHECK(o.flushed == 0 && o.hw == 6); /* served from the page cache, as Kafka */
    sp_partition_unwait(p, &fw.w);
    sp_partition_unref(p);
    sp_plog_unref(l);
}

/* min.insync.replicas above the one replica refuses acks=all, before the
 * append (NOT_ENOUGH_REPLICAS), and only acks=all. */
static void test_min_insync(const char *root)
{
    sp_log_config_t c = cfg(1);
    c.min_insync_replicas = 2;
    sp_plog_t *l;
    sp_partition_t *p = open_part(root, "minisr", &c, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    sp_append_outcome_t ar;
    CHECK(append(p, &client, 1, -1, &ar) && ar.error == SP_ERR_NOT_ENOUGH_REPLICAS);
    sp_log_offsets_t o;
    sp_partition_offsets(p, &o);
    CHECK(o.leo == 0);
    CHECK(append(p, &client, 1, 1, &ar) && ar.error == 0 && ar.last_offset == 0);
    sp_partition_unref(p);
    sp_plog_unref(l);
}

/* A client's batch is judged by the topic: keys on a compacted topic;
 * the coordinator's is not a client's (it may write what clients may not). */
static void test_origin(const char *root)
{
    sp_log_config_t c = cfg(1000);
    c.compact = true;
    sp_plog_t *l;
    sp_partition_t *p = open_part(root, "origin", &c, &l);
    CHECK(p != NULL);
    if (!p)
        return;
    size_t len;
    uint8_t *b = batch(2, false, 1000, &len);
    sp_append_outcome_t ar;
    CHECK(sp_partition_append(p, b, len, &client, 1, 1000, &ar) && ar.error == SP_ERR_INVALID_RECORD);
    free(b);
    /* a timestamp too far in the future for the topic's bound */
    sp_plog_config(l, &c);
    c.timestamp_after_max_ms = 1000;
    sp_plog_set_config(l, &c);
    b = batch(1, true, 1000 + 60000, &len);
    CHECK(sp_partition_append(p, b, len, &client, 1, 1000, &ar) && ar.error == SP_ERR_INVALID_TIMESTAMP);
    free(b);
    CHECK(append(p, &coordinator, 1, -1, &ar) && ar.error == 0);
    sp_partition_unref(p);
    sp_plog_unref(l);
}

/* The registry over the log manager: open, look up, delete (waiters get
 * UNKNOWN_TOPIC_OR_PARTITION), abandon, settings. */
static void test_registry(const char *root)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/reg", root);
    CHECK(mkdir(dir, 0755) == 0);
    char *dirs[] = { dir };
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.dirs = dirs;
    lo.ndirs = 1;
    lo.max_open_files = 64;
    sp_logmgr_t *m = sp_logmgr_start(&lo);
    CHECK(m != NULL);
    sp_partitions_t *r = sp_partitions_new(m);
    CHECK(r != NULL);
    sp_log_config_t c = cfg(1);
    for (int i = 0; i < 3; i++)
        CHECK(sp_partitions_open(r, "t", tid, i, &c, true) == 0);
    CHECK(sp_partitions_open(r, "t", tid, 1, &c, false) == 0); /* already open: the same */
    CHECK(sp_partitions_open(r, "u", tid, 0, &c, true) == 0);
    CHECK(sp_partitions_get(r, "t", 1, 3) == NULL);
    CHECK(sp_partitions_get(r, "tt", 2, 0) == NULL);
    sp_partition_t *p = sp_partitions_get(r, "t", 1, 2);
    CHECK(p != NULL && sp_partition_index(p) == 2 && strcmp(sp_partition_topic(p), "t") == 0);
    if (!p)
        return;
    sp_append_outcome_t ar;
    bool final = append(p, &client, 3, -1, &ar);
    w_t aw = { .w.wake = on_wake, .w.offset = ar.last_offset };
    if (!final) /* the flush thread completes it */
        sp_partition_wait_ack(p, &aw.w);
    else
        atomic_store(&aw.woken, 1);
    for (int i = 0; i < 200 && !atomic_load(&aw.woken); i++)
        usleep(5000);
    CHECK(aw.woken == 1 && aw.err == 0 && sp_partition_hw(p) == 3);

    /* settings reach every partition of the topic */
    sp_log_config_t c2 = cfg(1);
    c2.max_message_bytes = 12345;
    sp_partitions_set_config(r, "t", &c2);
    sp_log_config_t got;
    sp_partition_config(p, &got);
    CHECK(got.max_message_bytes == 12345);

    /* deletion: a parked fetch is woken with the error, new waits too,
     * appends refused, and the topic is gone from the registry */
    w_t fw = { .w.wake = on_wake };
    sp_partition_wait_fetch(p, &fw.w);
    sp_partitions_delete_topic(r, "t");
    CHECK(fw.woken >= 1 && fw.err == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    w_t late = { .w.wake = on_wake, .w.offset = 100 };
    sp_partition_wait_ack(p, &late.w);
    CHECK(late.woken == 1 && late.err == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION && !late.w.linked);
    CHECK(append(p, &client, 1, 1, &ar) && ar.error == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    sp_partition_unwait(p, &fw.w);
    sp_partition_unref(p);
    for (int i = 0; i < 3; i++)
        CHECK(sp_partitions_get(r, "t", 1, i) == NULL);
    sp_partition_t *u = sp_partitions_get(r, "u", 1, 0);
    CHECK(u != NULL);
    sp_partition_unref(u);
    sp_partitions_abandon(r, "u", 0);
    CHECK(sp_partitions_get(r, "u", 1, 0) == NULL);
    /* a new topic of the same name starts empty */
    CHECK(sp_partitions_open(r, "t", tid, 0, &c, true) == 0);
    p = sp_partitions_get(r, "t", 1, 0);
    CHECK(p != NULL && sp_partition_hw(p) == 0);
    sp_partition_unref(p);
    sp_partitions_free(r);
    sp_logmgr_shutdown(m, true);
}

/* Waits (up to 1 s) for an acks=all append to be acknowledged. */
static bool acked(sp_partition_t *p, bool final, int64_t last)
{
    if (final)
        return true;
    w_t w = { .w.wake = on_wake, .w.offset = last };
    sp_partition_wait_ack(p, &w.w);
    for (int i = 0; i < 200 && !atomic_load(&w.woken); i++)
        usleep(5000);
    sp_partition_unwait(p, &w.w);
    return atomic_load(&w.woken) == 1 && atomic_load(&w.err) == 0;
}

/* Reads the offset recorded for "t 0" in a checkpoint file, or -1. */
static int64_t ckpt_offset(const char *dir, const char *name)
{
    char path[600], line[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int64_t v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "t 0 %" SCNd64, &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* Two log managers in one process (instances, not singletons): each has
 * its own directories, flush and housekeeping threads, checkpoints and
 * clean-shutdown marker; stopping one leaves the other serving. */
static void test_two_managers(const char *root)
{
    char da[512], db[512], marker[600];
    snprintf(da, sizeof(da), "%s/two-a", root);
    snprintf(db, sizeof(db), "%s/two-b", root);
    CHECK(mkdir(da, 0755) == 0 && mkdir(db, 0755) == 0);
    char *dirs_a[] = { da }, *dirs_b[] = { db };
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.ndirs = 1;
    lo.max_open_files = 16;
    lo.dirs = dirs_a;
    sp_logmgr_t *ma = sp_logmgr_start(&lo);
    lo.dirs = dirs_b;
    sp_logmgr_t *mb = sp_logmgr_start(&lo);
    CHECK(ma != NULL && mb != NULL && ma != mb);
    if (!ma || !mb)
        return;
    sp_partitions_t *ra = sp_partitions_new(ma), *rb = sp_partitions_new(mb);
    sp_log_config_t c = cfg(1);
    CHECK(sp_partitions_open(ra, "t", tid, 0, &c, true) == 0);
    CHECK(sp_partitions_open(rb, "t", tid, 0, &c, true) == 0);
    sp_partition_t *pa = sp_partitions_get(ra, "t", 1, 0), *pb = sp_partitions_get(rb, "t", 1, 0);
    CHECK(pa && pb && pa != pb);
    if (!pa || !pb)
        return;
    CHECK(strncmp(sp_partition_dir(pa), da, strlen(da)) == 0);
    CHECK(strncmp(sp_partition_dir(pb), db, strlen(db)) == 0);
    sp_append_outcome_t ar;
    /* (the append before reading ar: argument order is unspecified) */
    bool fin = append(pa, &client, 3, -1, &ar);
    CHECK(acked(pa, fin, ar.last_offset) && ar.last_offset == 2);
    fin = append(pb, &client, 5, -1, &ar);
    CHECK(acked(pb, fin, ar.last_offset) && ar.last_offset == 4);
    CHECK(sp_partition_hw(pa) == 3 && sp_partition_hw(pb) == 5);
    /* a stops; b goes on */
    sp_partition_unref(pa);
    sp_partitions_free(ra);
    sp_logmgr_shutdown(ma, true);
    snprintf(marker, sizeof(marker), "%s/.kafka_cleanshutdown", da);
    CHECK(access(marker, F_OK) == 0);
    CHECK(ckpt_offset(da, "recovery-point-offset-checkpoint") == 3);
    fin = append(pb, &client, 2, -1, &ar);
    CHECK(acked(pb, fin, ar.last_offset) && ar.last_offset == 6);
    snprintf(marker, sizeof(marker), "%s/.kafka_cleanshutdown", db);
    CHECK(access(marker, F_OK) != 0);
    sp_partition_unref(pb);
    sp_partitions_free(rb);
    sp_logmgr_shutdown(mb, true);
    CHECK(access(marker, F_OK) == 0);
    CHECK(ckpt_offset(db, "recovery-point-offset-checkpoint") == 7);
    CHECK(ckpt_offset(da, "recovery-point-offset-checkpoint") == 3);
}

int main(void)
{
    char root[] = "/tmp/spool-test-partition-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    sp_log_set_level(SP_LOG_WARN);
    tid.b[0] = 7;
    files = sp_fdcache_new(64);
    test_durable_hw(root);
    test_page_cache_hw(root);
    test_min_insync(root);
    test_origin(root);
    test_registry(root);
    test_two_managers(root);
    sp_fdcache_free(files);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_partition");
}
