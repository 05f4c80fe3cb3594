/*
 * test_logmgr.c - the log manager's flush thread (group commit) and the
 * partitions above its logs against concurrent appends, extra kicks,
 * acks=all waiters, DeleteRecords, and topics created and deleted
 * meanwhile (logmgr.h; plog.h invariants 1, 2, 3 and 5; partition.h:
 * the high watermark only moves up, to what is flushed, and every acks=all
 * waiter completes, with an error if its partition was deleted).
 *
 * Regression test for 48dff05: the flush thread cleared flush_queued on
 * the logs of its pass, dropped the queue lock and then followed their
 * flush_next links, which a concurrent sp_logmgr_kick had re-linked into
 * the new queue: some logs were unref'ed twice (a heap-use-after-free, or a
 * SIGSEGV), others kept a reference for ever and missed the pass.  Under
 * ASan that is a report within the first second; without it, the
 * reference count check below (every log back to exactly its registry
 * reference, plus ours, once everything is quiet) or a crash catches it.
 *
 * Threads, for RUN_MS:
 *   4 appenders   small batches to all 32 partitions in turn, every other
 *                 one acks=all: its waiter must complete without error;
 *   1 alternator  acks=1 appends alternating between two logs, no waits;
 *   1 kicker      sp_logmgr_kick on every log, DeleteRecords to the hw;
 *   1 churner     the metadata thread's part: creates a 4-partition topic,
 *                 appends with flush waiters, deletes the topic (half the
 *                 time while the waiters still wait: they complete with
 *                 UNKNOWN_TOPIC_OR_PARTITION), over and over.
 * SPOOL_TEST_RUN_MS overrides RUN_MS (default 1500).
 *
 * The kicker also changes the topics' settings (sp_partitions_set_config)
 * meanwhile (SPOOL_TEST_SET_CONFIG=0 turns it off): appends snapshot the
 * config under the log's lock, so TSan sees no race (the l->cfg race of
 * the code review of 2026-12-01 §2, fixed).
 *
 * A churn partition renamed for deletion while a flush pass syncs it must
 * not fail the log (and its directory): sp_plog_flush and sp_plog_fail
 * look at 'deleted' after the I/O.  The fd cache is smaller than the
 * number of logs, so files are evicted and reopened all along.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cluster/partition.h"
#include "log/logmgr.h"
#include "log/plog_internal.h" /* white-box: offsets and references */
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "util/log.h"

#define NTOPICS 4
#define NPARTS 8
#define NLOGS (NTOPICS * NPARTS)
#define NAPPENDERS 4
#define CHURN_PARTS 4
#define WAIT_MS 10000
#define DEFAULT_RUN_MS 1500

static sp_uuid_t tid;
static sp_logmgr_t *M;
static sp_partitions_t *R;
static atomic_bool stop;
static atomic_long counts[NLOGS];     /* records appended per stable log */
static atomic_long bad_append, bad_wait, bad_get, waits, appends, churn_rounds, churn_bad;

static const char *topic_of(int idx)
{
    static const char *names[NTOPICS] = { "alpha", "beta", "gamma", "delta" };
    return names[idx / NPARTS];
}

static sp_log_config_t cfg(void)
{
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    c.segment_bytes = 64 * 1024; /* rolls: new segments, directory syncs */
    c.segment_ms = INT64_MAX / 2;
    c.segment_index_bytes = 1 << 16;
    c.index_interval_bytes = 512;
    c.flush_messages = 1; /* durable: every append kicks the flush thread */
    c.flush_ms = INT64_MAX;
    c.max_message_bytes = 1 << 20;
    c.retention_delete = true;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    return c;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

/* An acks=all produce waiting for the high watermark.  wake() runs on the
 * flush thread (or the deleting one) under the partition's mu. */
typedef struct waiter {
    sp_waiter_t w; /* first: wake() casts back */
    atomic_int done;
    atomic_int err;
} waiter_t;

static void waiter_wake(sp_waiter_t *w, int err)
{
    waiter_t *x = (waiter_t *)w;
    atomic_store(&x->err, err);
    atomic_store(&x->done, 1);
}

static void waiter_init(waiter_t *x, int64_t offset)
{
    memset(x, 0, sizeof(*x));
    x->w.offset = offset;
    x->w.wake = waiter_wake;
}

/* Waits up to WAIT_MS for x; unlinks it on time-out.  Returns its error
 * code (0 done), or -1 if it never completed. */
static int waiter_wait(waiter_t *x, sp_partition_t *l)
{
    int64_t until = now_ms() + WAIT_MS;
    while (!atomic_load(&x->done) && now_ms() < until)
        sleep_us(100);
    if (!atomic_load(&x->done)) {
        sp_partition_unwait(l, &x->w);
        if (!atomic_load(&x->done))
            return -1;
    }
    return atomic_load(&x->err);
}

/* Appends n small records to l.  Returns the last offset, or -error. */
static int64_t append(sp_partition_t *l, int n)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, 1000);
    for (int i = 0; i < n; i++) {
        char v[48];
        int vl = snprintf(v, sizeof(v), "record-%d-of-%d", i, n);
        sp_batch_builder_add(&b, "k", 1, v, vl, 1000 + i);
    }
    size_t len;
    uint8_t *p = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    if (!p)
        return -SP_ERR_UNKNOWN_SERVER_ERROR;
    sp_append_outcome_t ar;
    static const sp_append_origin_t origin = { .kind = SP_ORIGIN_COORDINATOR };
    sp_partition_append(l, p, len, &origin, 1, 0, &ar);
    free(p);
    atomic_fetch_add(&appends, 1);
    return ar.error ? -ar.error : ar.last_offset;
}

static sp_partition_t *get(int idx)
{
    const char *t = topic_of(idx);
    return sp_partitions_get(R, t, (int32_t)strlen(t), idx % NPARTS);
}

static sp_plog_t *get_log(int idx)
{
    const char *t = topic_of(idx);
    return sp_logmgr_get(M, t, (int32_t)strlen(t), idx % NPARTS);
}

/* ---- threads ----------------------------------------------------------- */

static void *appender(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 0; !atomic_load(&stop); i++) {
        int idx = (k * 11 + i * (k + 1)) % NLOGS;
        sp_partition_t *l = get(idx);
        if (!l) {
            atomic_fetch_add(&bad_get, 1);
            continue;
        }
        int n = 1 + i % 3;
        int64_t last = append(l, n);
        if (last < 0) {
            atomic_fetch_add(&bad_append, 1);
        } else {
            atomic_fetch_add(&counts[idx], n);
            if (i % 2 == 0) { /* acks=all */
                waiter_t w;
                waiter_init(&w, last);
                sp_partition_wait_ack(l, &w.w);
                if (waiter_wait(&w, l) != 0)
                    atomic_fetch_add(&bad_wait, 1);
                atomic_fetch_add(&waits, 1);
            }
        }
        sp_partition_unref(l);
    }
    return NULL;
}

/* One acks=1 connection alternating between two partitions. */
static void *alternator(void *arg)
{
    (void)arg;
    sp_partition_t *l[2] = { get(0), get(NPARTS + 1) };
    int idx[2] = { 0, NPARTS + 1 };
    if (!l[0] || !l[1]) {
        atomic_fetch_add(&bad_get, 1);
    } else {
        for (int i = 0; !atomic_load(&stop); i++) {
            if (append(l[i % 2], 1) < 0)
                atomic_fetch_add(&bad_append, 1);
            else
                atomic_fetch_add(&counts[idx[i % 2]], 1);
            if (i % 8 == 7)
                sleep_us(20);
        }
    }
    for (int i = 0; i < 2; i++)
        if (l[i])
            sp_partition_unref(l[i]);
    return NULL;
}

static void *kicker(void *arg)
{
    const char *env = getenv("SPOOL_TEST_SET_CONFIG");
    bool set_config = !env || atoi(env) != 0;
    (void)arg;
    for (int i = 0; !atomic_load(&stop); i++) {
        sp_plog_t *l = get_log(i % NLOGS);
        sp_partition_t *part = get(i % NLOGS);
        if (!l || !part) {
            atomic_fetch_add(&bad_get, 1);
            sp_plog_unref(l);
            sp_partition_unref(part);
            continue;
        }
        sp_logmgr_kick(M, l);
        if (set_config && i % 53 == 0) { /* settings that change nothing the checks see */
            sp_log_config_t c = cfg();
            c.index_interval_bytes = i % 2 ? 256 : 512;
            c.max_message_bytes = i % 2 ? 1 << 20 : 1 << 21;
            sp_partitions_set_config(R, topic_of(i % NLOGS), &c);
        }
        int64_t start;
        if (i % 97 == 0 && sp_partition_delete_records(part, -1, &start) != 0) /* up to the hw */
            atomic_fetch_add(&bad_append, 1);
        sp_plog_unref(l);
        sp_partition_unref(part);
        if (i % 8 == 7)
            sleep_us(50);
    }
    return NULL;
}

/* The metadata thread's part: create, write, delete. */
static void *churner(void *arg)
{
    (void)arg;
    sp_log_config_t c = cfg();
    for (int round = 0; !atomic_load(&stop); round++) {
        char name[32];
        snprintf(name, sizeof(name), "churn-%d", round);
        sp_partition_t *l[CHURN_PARTS] = { 0 };
        waiter_t w[CHURN_PARTS];
        bool waiting[CHURN_PARTS] = { 0 };
        for (int p = 0; p < CHURN_PARTS; p++) {
            if (sp_partitions_open(R, name, tid, p, &c, true) != 0 ||
                !(l[p] = sp_partitions_get(R, name, (int32_t)strlen(name), p))) {
                atomic_fetch_add(&churn_bad, 1);
                continue;
            }
            int64_t last = append(l[p], 2);
            if (last < 0) {
                atomic_fetch_add(&churn_bad, 1);
                continue;
            }
            waiter_init(&w[p], last);
            sp_partition_wait_ack(l[p], &w[p].w);
            waiting[p] = true;
        }
        bool early = round % 2 == 0; /* delete while the waiters wait */
        if (early)
            sp_partitions_delete_topic(R, name);
        for (int p = 0; p < CHURN_PARTS; p++) {
            if (!waiting[p])
                continue;
            int err = waiter_wait(&w[p], l[p]);
            if (err != 0 && !(early && err == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION))
                atomic_fetch_add(&churn_bad, 1);
        }
        if (!early)
            sp_partitions_delete_topic(R, name);
        for (int p = 0; p < CHURN_PARTS; p++) {
            if (l[p]) {
                /* a deleted log refuses appends and waiters */
                if (append(l[p], 1) != -SP_ERR_UNKNOWN_TOPIC_OR_PARTITION)
                    atomic_fetch_add(&churn_bad, 1);
                waiter_t late;
                waiter_init(&late, 0);
                sp_partition_wait_fetch(l[p], &late.w);
                if (!atomic_load(&late.done) || atomic_load(&late.err) != SP_ERR_UNKNOWN_TOPIC_OR_PARTITION)
                    atomic_fetch_add(&churn_bad, 1);
                sp_partition_unref(l[p]);
            }
            if (sp_partitions_get(R, name, (int32_t)strlen(name), p) != NULL ||
                sp_logmgr_get(M, name, (int32_t)strlen(name), p) != NULL)
                atomic_fetch_add(&churn_bad, 1);
        }
        atomic_fetch_add(&churn_rounds, 1);
    }
    return NULL;
}

/* ---- checks ------------------------------------------------------------ */

/* Every batch from the log start to hw: valid, consecutive offsets.
 * Returns the offset after the last record, or -1. */
static int64_t scan(sp_partition_t *l, int64_t from)
{
    int64_t next = from;
    for (;;) {
        sp_partition_read_t pr;
        sp_partition_read(l, next, 64 * 1024, true, SP_ISOLATION_HIGH_WATERMARK, &pr);
        sp_read_result_t rr = pr.data;
        if (pr.error)
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
                 sp_batch_validate(buf + off, bs, &o, &info) == 0 &&
                 info.hdr.base_offset <= next &&
                 info.hdr.base_offset + info.hdr.last_offset_delta >= next;
            next = info.hdr.base_offset + info.hdr.last_offset_delta + 1;
        }
        free(buf);
        sp_read_result_release(&rr);
        if (!ok)
            return -1;
    }
}

static void check_logs(void)
{
    sp_plog_t *l[NLOGS];
    sp_partition_t *part[NLOGS];
    for (int i = 0; i < NLOGS; i++) {
        l[i] = get_log(i);
        part[i] = get(i);
        CHECK(l[i] != NULL && part[i] != NULL);
        if (!l[i] || !part[i])
            return;
    }
    /* a last acks=all wait on each: everything appended becomes durable */
    for (int i = 0; i < NLOGS; i++) {
        pthread_mutex_lock(&l[i]->mu);
        int64_t leo = l[i]->leo;
        pthread_mutex_unlock(&l[i]->mu);
        CHECK(leo == atomic_load(&counts[i]));
        if (leo == 0)
            continue;
        waiter_t w;
        waiter_init(&w, leo - 1);
        sp_partition_wait_ack(part[i], &w.w);
        CHECK(waiter_wait(&w, part[i]) == 0);
        pthread_mutex_lock(&l[i]->mu);
        int64_t log_start = l[i]->log_start, flushed = l[i]->flushed;
        pthread_mutex_unlock(&l[i]->mu);
        CHECK(flushed == leo && atomic_load(&l[i]->hw) == leo); /* (2), (3) */
        CHECK(sp_partition_hw(part[i]) == leo);
        CHECK(log_start <= leo);
        int64_t end = scan(part[i], log_start);
        if (end != leo)
            fprintf(stderr, "%s-%d: read up to %lld of %lld\n", topic_of(i), i % NPARTS,
                    (long long)end, (long long)leo);
        CHECK(end == leo);
    }
    /* Once quiet, each log holds its registry's reference, its
     * partition's and ours, no more (a pass that skipped it leaks one) and
     * no less (a pass that unref'ed it twice): wait for the flush
     * thread's last pass. */
    int wrong = -1;
    for (int64_t until = now_ms() + 3000; now_ms() < until; sleep_us(20000)) {
        wrong = -1;
        for (int i = 0; i < NLOGS && wrong < 0; i++)
            if (atomic_load(&l[i]->refs) != 3)
                wrong = i;
        if (wrong < 0)
            break;
    }
    if (wrong >= 0)
        fprintf(stderr, "%s-%d: %d references once quiet, want 3\n", topic_of(wrong),
                wrong % NPARTS, atomic_load(&l[wrong]->refs));
    CHECK(wrong < 0);
    for (int i = 0; i < NLOGS; i++) {
        sp_plog_unref(l[i]);
        sp_partition_unref(part[i]);
    }
}

int main(void)
{
    char root[] = "/tmp/spool-test-logmgr-XXXXXX";
    const char *env = getenv("SPOOL_TEST_RUN_MS");
    int run_ms = env ? atoi(env) : DEFAULT_RUN_MS;
    if (!mkdtemp(root))
        return 1;
    sp_log_set_level(SP_LOG_WARN);
    tid.b[0] = 9;
    char *dirs[] = { root };
    /* retention every 50 ms: the flush thread also walks the registry */
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.dirs = dirs;
    lo.ndirs = 1;
    lo.retention_check_ms = 50;
    lo.max_open_files = 24; /* fewer than the logs: the fd cache evicts and reopens */
    M = sp_logmgr_start(&lo);
    CHECK(M != NULL);
    R = sp_partitions_new(M);
    CHECK(R != NULL);
    sp_log_config_t c = cfg();
    for (int i = 0; i < NLOGS; i++)
        CHECK(sp_partitions_open(R, topic_of(i), tid, i % NPARTS, &c, false) == 0);

    pthread_t th[NAPPENDERS + 3];
    int n = 0;
    for (int k = 0; k < NAPPENDERS; k++)
        pthread_create(&th[n++], NULL, appender, (void *)(intptr_t)k);
    pthread_create(&th[n++], NULL, alternator, NULL);
    pthread_create(&th[n++], NULL, kicker, NULL);
    pthread_create(&th[n++], NULL, churner, NULL);
    sleep_us((long)run_ms * 1000);
    atomic_store(&stop, true);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    printf("test_logmgr: %ld appends, %ld acks=all waits, %ld topic rounds in %d ms\n",
           atomic_load(&appends), atomic_load(&waits), atomic_load(&churn_rounds), run_ms);
    CHECK(atomic_load(&bad_get) == 0);
    CHECK(atomic_load(&bad_append) == 0);
    CHECK(atomic_load(&bad_wait) == 0);
    CHECK(atomic_load(&churn_bad) == 0);
    CHECK(atomic_load(&churn_rounds) > 0 && atomic_load(&waits) > 0);
    check_logs();
    sp_partitions_free(R);
    sp_logmgr_shutdown(M, true);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_logmgr");
}
