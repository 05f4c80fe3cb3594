/*
 * test_txn_state.c - the transaction coordinator's state machine
 * (txn/txn_state.h) driven without a thread: a fake clock and a fake
 * environment whose __transaction_state writes and markers the test
 * settles when it chooses (durable or failed; per-partition marker
 * errors), producer ids from a counter (or none at hand), a fixed
 * partition count and coordinator epoch.
 *
 * Each rule is Kafka's (TransactionCoordinator, TransactionMetadata,
 * TransactionStateManager, TransactionMarkerRequestCompletionHandler;
 * TV1): InitProducerId of a new id, re-init, KIP-360 (expected id and
 * epoch: bump, retry of a bump, PRODUCER_FENCED), epoch exhaustion
 * rotating the producer id, init while Ongoing (fence, PrepareAbort,
 * CONCURRENT_TRANSACTIONS, then epoch + 2), a failed fence, AddPartitions
 * (start time, known partitions answered at once), verification
 * (KIP-890), EndTxn in every state, CONCURRENT_TRANSACTIONS while a write
 * is pending, failed writes, markers with per-partition errors, the
 * Complete write failing, the timeout abort, expiry of idle ids, replay,
 * the records' bytes (TransactionLogKey/Value v0, decoded with the
 * generated codec), ListTransactions/DescribeTransactions views.  The
 * invariants (sp_txns_check) hold after every step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/gen/errors.h"
#include "proto/gen/transaction_log_key.h"
#include "proto/gen/transaction_log_value.h"
#include "txn/txn_state.h"
#include "util/log.h"

#define NPART 50
#define COORD_EPOCH 7
#define MAX_TIMEOUT 900000
#define EXPIRATION (7LL * 24 * 3600 * 1000)
#define ABORT_EVERY 10000
#define EXPIRE_EVERY 3600000
#define TIMEOUT 60000

static int64_t T = 1700000000000LL; /* the fake clock */

/* ---- the fake environment ------------------------------------------------ */

typedef struct fwrite {
    int32_t partition;
    uint8_t *key, *value;        /* value NULL: a tombstone */
    size_t klen, vlen;
    sp_txn_write_t *w;
} fwrite_t;

static fwrite_t writes[64];      /* under way, oldest first */
static int nwrites;
static int total_writes;         /* ever handed to persist */
static int16_t persist_error;    /* persist refuses with it, when set */
static fwrite_t last_write;      /* a copy of the newest (kept after settling) */

typedef struct fmarkers {
    int64_t pid;
    int16_t epoch;
    bool commit;
    int32_t coordinator_epoch;
    int32_t n;
    char topics[16][32];
    int32_t partitions[16];
    void *token;
} fmarkers_t;

static fmarkers_t markers[16];   /* under way, oldest first */
static int nmarkers;
static int total_markers;
static bool markers_refuse;      /* markers() answers -1 */
static int64_t pid_next = 1000;
static bool pid_none;            /* next_pid answers -1 */
static int32_t nparts = NPART;

static int16_t fake_persist(void *ctx, int32_t partition, const uint8_t *key, size_t klen, const uint8_t *value,
                            size_t vlen, sp_txn_write_t *w)
{
    (void)ctx;
    if (persist_error)
        return persist_error;
    fwrite_t *f = &writes[nwrites++];
    f->partition = partition;
    f->key = malloc(klen);
    memcpy(f->key, key, klen);
    f->klen = klen;
    f->value = value ? malloc(vlen) : NULL;
    if (value)
        memcpy(f->value, value, vlen);
    f->vlen = vlen;
    f->w = w;
    total_writes++;
    free(last_write.key);
    free(last_write.value);
    last_write = *f;
    last_write.key = malloc(klen);
    memcpy(last_write.key, key, klen);
    last_write.value = value ? malloc(vlen) : NULL;
    if (value)
        memcpy(last_write.value, value, vlen);
    return 0;
}

static int fake_markers(void *ctx, const sp_txn_markers_t *m, void *token)
{
    (void)ctx;
    if (markers_refuse)
        return -1;
    fmarkers_t *f = &markers[nmarkers++];
    memset(f, 0, sizeof(*f));
    f->pid = m->producer_id;
    f->epoch = m->producer_epoch;
    f->commit = m->commit;
    f->coordinator_epoch = m->coordinator_epoch;
    f->n = m->n;
    for (int32_t i = 0; i < m->n && i < 16; i++) {
        snprintf(f->topics[i], sizeof(f->topics[i]), "%s", m->topics[i]);
        f->partitions[i] = m->partitions[i];
    }
    f->token = token;
    total_markers++;
    return 0;
}

static int64_t fake_next_pid(void *ctx)
{
    (void)ctx;
    return pid_none ? -1 : pid_next++;
}

static int32_t fake_partitions(void *ctx)
{
    (void)ctx;
    return nparts;
}

static int32_t fake_coordinator_epoch(void *ctx, int32_t partition)
{
    (void)ctx;
    (void)partition;
    return COORD_EPOCH;
}

static const sp_txn_env_t ENV = {
    .ctx = NULL,
    .persist = fake_persist,
    .markers = fake_markers,
    .next_pid = fake_next_pid,
    .partitions = fake_partitions,
    .coordinator_epoch = fake_coordinator_epoch,
};

static const sp_txn_settings_t SETTINGS = {
    .max_timeout_ms = MAX_TIMEOUT,
    .id_expiration_ms = EXPIRATION,
    .abort_interval_ms = ABORT_EVERY,
    .expire_interval_ms = EXPIRE_EVERY,
};

static sp_txns_t *txns_new(void)
{
    sp_txns_t *t = sp_txns_new(&SETTINGS, &ENV);
    CHECK(t != NULL);
    /* the first tick starts the periodic checks */
    sp_txns_tick(t, T);
    return t;
}

/* Settles the oldest write under way: durable (0) or failed. */
static void settle(sp_txns_t *t, int16_t err)
{
    CHECK(nwrites > 0);
    if (nwrites == 0)
        return;
    fwrite_t f = writes[0];
    memmove(writes, writes + 1, sizeof(writes[0]) * (size_t)--nwrites);
    sp_txns_settle(t, f.w, err, T);
    free(f.key);
    free(f.value);
    CHECK(sp_txns_check(t));
}

/* Answers the oldest markers under way: errs[i] per partition (NULL: all
 * written). */
static void markers_answer(sp_txns_t *t, const int16_t *errs)
{
    CHECK(nmarkers > 0);
    if (nmarkers == 0)
        return;
    fmarkers_t f = markers[0];
    memmove(markers, markers + 1, sizeof(markers[0]) * (size_t)--nmarkers);
    int16_t zero[16] = { 0 };
    sp_txns_markers_done(t, f.token, errs ? errs : zero, T);
    CHECK(sp_txns_check(t));
}

static void tick(sp_txns_t *t)
{
    sp_txns_tick(t, T);
    CHECK(sp_txns_check(t));
}

/* ---- calls ------------------------------------------------------------------ */

typedef struct tcall {
    sp_txn_call_t c;
    int answered;
    sp_txn_part_in_t parts[8];
    int16_t part_errors[8];
} tcall_t;

static void on_done(sp_txn_call_t *c)
{
    ((tcall_t *)c)->answered++;
}

static tcall_t calls[256];
static int ncalls;

static tcall_t *new_call(sp_txn_call_kind_t kind, const char *id, int64_t pid, int16_t epoch)
{
    tcall_t *c = &calls[ncalls++ % 256];
    memset(c, 0, sizeof(*c));
    c->c.kind = kind;
    c->c.txn_id = id ? sp_str_c(id) : SP_STR_NULL;
    c->c.producer_id = pid;
    c->c.producer_epoch = epoch;
    c->c.done = on_done;
    c->c.part_errors = c->part_errors;
    c->c.parts = c->parts;
    c->c.error = -999;
    return c;
}

static tcall_t *run(sp_txns_t *t, tcall_t *c)
{
    sp_txns_call(t, &c->c, T);
    CHECK(sp_txns_check(t));
    return c;
}

static tcall_t *init_call(sp_txns_t *t, const char *id, int32_t timeout, int64_t pid, int16_t epoch)
{
    tcall_t *c = new_call(SP_TXN_INIT, id, pid, epoch);
    c->c.timeout_ms = timeout;
    return run(t, c);
}

/* parts: "topic:p" strings, NULL-ended */
static tcall_t *parts_call(sp_txns_t *t, sp_txn_call_kind_t kind, const char *id, int64_t pid, int16_t epoch,
                           const char *const *parts)
{
    tcall_t *c = new_call(kind, id, pid, epoch);
    static char names[256][32];
    static int nn;
    for (int i = 0; parts && parts[i]; i++) {
        char *n = names[nn++ % 256];
        snprintf(n, 32, "%s", parts[i]);
        char *colon = strchr(n, ':');
        *colon = 0;
        c->parts[i] = (sp_txn_part_in_t){ sp_str_c(n), atoi(colon + 1) };
        c->c.n = i + 1;
    }
    return run(t, c);
}

static tcall_t *end_call(sp_txns_t *t, const char *id, int64_t pid, int16_t epoch, bool commit)
{
    tcall_t *c = new_call(SP_TXN_END, id, pid, epoch);
    c->c.commit = commit;
    return run(t, c);
}

/* An id made Empty (init + write durable): its producer id and epoch. */
static void ready(sp_txns_t *t, const char *id, int64_t *pid, int16_t *epoch)
{
    tcall_t *c = init_call(t, id, TIMEOUT, -1, -1);
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == 0);
    *pid = c->c.out_producer_id;
    *epoch = c->c.out_producer_epoch;
}

/* ---- records ------------------------------------------------------------------ */

typedef struct rec {
    bool ok;
    bool tombstone;
    char id[64];
    sp_transaction_log_value_t v;
    int nparts;
    char topics[16][32];
    int32_t parts[16];
} rec_t;

/* Decodes w (its key and value: int16 version | TransactionLogKey/Value). */
static rec_t decode(const fwrite_t *w)
{
    rec_t r;
    memset(&r, 0, sizeof(r));
    sp_arena_t a;
    sp_arena_init(&a, 0);
    sp_reader_t kr = sp_reader(w->key, w->klen);
    int16_t kv = -1;
    sp_read_i16(&kr, &kv);
    sp_transaction_log_key_t k;
    if (kv != 0 || sp_transaction_log_key_decode(&kr, &a, &k, 0) != 0 || sp_reader_left(&kr) != 0) {
        sp_arena_free(&a);
        return r;
    }
    snprintf(r.id, sizeof(r.id), "%.*s", k.transactional_id.len, k.transactional_id.ptr);
    if (!w->value) {
        r.ok = r.tombstone = true;
        sp_arena_free(&a);
        return r;
    }
    sp_reader_t vr = sp_reader(w->value, w->vlen);
    int16_t vv = -1;
    sp_read_i16(&vr, &vv);
    if (vv != 0 || sp_transaction_log_value_decode(&vr, &a, &r.v, 0) != 0 || sp_reader_left(&vr) != 0) {
        sp_arena_free(&a);
        return r;
    }
    for (int32_t i = 0; i < r.v.transaction_partitions.n; i++)
        for (int32_t j = 0; j < r.v.transaction_partitions.v[i].partition_ids.n && r.nparts < 16; j++) {
            snprintf(r.topics[r.nparts], 32, "%.*s", r.v.transaction_partitions.v[i].topic.len,
                     r.v.transaction_partitions.v[i].topic.ptr);
            r.parts[r.nparts++] = r.v.transaction_partitions.v[i].partition_ids.v[j];
        }
    r.ok = true;
    sp_arena_free(&a);
    return r;
}

static rec_t last_rec(void) { return decode(&last_write); }

/* Builds a record as Kafka writes it and replays it. */
static void replay(sp_txns_t *t, const char *id, int64_t pid, int16_t epoch, int status, int32_t timeout,
                   int64_t start, int64_t update, const char *topic, int32_t np)
{
    sp_transaction_log_key_t k;
    sp_transaction_log_key_init(&k);
    k.transactional_id = sp_str_c(id);
    uint8_t kb[256], vb[512];
    sp_writer_t kw = sp_writer(kb, sizeof(kb));
    sp_write_i16(&kw, 0);
    sp_transaction_log_key_encode(&kw, &k, 0);
    sp_transaction_log_value_t v;
    sp_transaction_log_value_init(&v);
    v.producer_id = pid;
    v.producer_epoch = epoch;
    v.transaction_timeout_ms = timeout;
    v.transaction_status = (int8_t)status;
    v.transaction_start_timestamp_ms = start;
    v.transaction_last_update_timestamp_ms = update;
    int32_t ids[8];
    for (int32_t i = 0; i < np; i++)
        ids[i] = i;
    sp_transaction_log_value_partitions_schema_t ps;
    ps.topic = topic ? sp_str_c(topic) : SP_STR_NULL;
    ps.partition_ids.v = ids;
    ps.partition_ids.n = np;
    v.transaction_partitions.v = &ps;
    v.transaction_partitions.n = topic ? 1 : (status == SP_TXN_EMPTY ? -1 : 0);
    sp_writer_t vw = sp_writer(vb, sizeof(vb));
    sp_write_i16(&vw, 0);
    sp_transaction_log_value_encode(&vw, &v, 0);
    CHECK(!kw.err && !vw.err);
    sp_txns_replay(t, sp_txn_partition_for(sp_str_c(id), NPART), (sp_bytes_t){ kb, (int32_t)(kw.pos - kw.buf) },
                   (sp_bytes_t){ vb, (int32_t)(vw.pos - vw.buf) });
    CHECK(sp_txns_check(t));
}

static bool described(sp_txns_t *t, const char *id, sp_txn_view_t *v)
{
    return sp_txns_describe(t, sp_str_c(id), v);
}

static int status_of(sp_txns_t *t, const char *id)
{
    sp_txn_view_t v;
    return described(t, id, &v) ? v.status : -1;
}

static void reset_env(void)
{
    for (int i = 0; i < nwrites; i++) {
        free(writes[i].key);
        free(writes[i].value);
    }
    nwrites = 0;
    nmarkers = 0;
    persist_error = 0;
    markers_refuse = false;
    pid_none = false;
    nparts = NPART;
}

/* ---- tests --------------------------------------------------------------------- */

/* Kafka's partitionFor: Utils.abs(id.hashCode) % n. */
static void test_partition_for(void)
{
    CHECK(sp_txn_partition_for(sp_str_c("abc"), 50) == 96354 % 50);
    /* "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0 */
    CHECK(sp_txn_partition_for(sp_str_c("polygenelubricants"), 50) == 0);
    /* a negative hash: "zzzzzzzz".hashCode() = -1910022912 */
    CHECK(sp_txn_partition_for(sp_str_c("zzzzzzzz"), 50) == 1910022912 % 50);
}

static void test_init_new(void)
{
    sp_txns_t *t = txns_new();
    int w0 = total_writes;
    tcall_t *c = init_call(t, "a", TIMEOUT, -1, -1);
    CHECK(c->answered == 0);
    CHECK(total_writes == w0 + 1 && nwrites == 1);
    CHECK(writes[0].partition == sp_txn_partition_for(sp_str_c("a"), NPART));
    rec_t r = last_rec();
    CHECK(r.ok && strcmp(r.id, "a") == 0);
    CHECK(r.v.producer_id == 1000 && r.v.producer_epoch == 0);
    CHECK(r.v.transaction_status == SP_TXN_EMPTY);
    CHECK(r.v.transaction_partitions.n == -1); /* Empty: null partitions */
    CHECK(r.v.transaction_timeout_ms == TIMEOUT);
    CHECK(r.v.transaction_start_timestamp_ms == -1 && r.v.transaction_last_update_timestamp_ms == T);
    /* not visible before it is durable; a second init meanwhile waits */
    sp_txn_view_t v;
    CHECK(!described(t, "a", &v));
    tcall_t *c2 = init_call(t, "a", TIMEOUT, -1, -1);
    CHECK(c2->answered == 1 && c2->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    CHECK(c2->c.out_producer_id == -1 && c2->c.out_producer_epoch == -1);
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == 0 && c->c.out_producer_id == 1000 && c->c.out_producer_epoch == 0);
    CHECK(described(t, "a", &v) && v.status == SP_TXN_EMPTY && v.producer_id == 1000 && v.producer_epoch == 0 &&
          v.nparts == 0 && v.start_ms == -1 && v.timeout_ms == TIMEOUT);

    /* re-init: same producer id, epoch + 1, the new timeout */
    T += 5;
    c = init_call(t, "a", TIMEOUT * 2, -1, -1);
    r = last_rec();
    CHECK(r.v.producer_id == 1000 && r.v.producer_epoch == 1 && r.v.transaction_timeout_ms == TIMEOUT * 2 &&
          r.v.transaction_last_update_timestamp_ms == T);
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == 0 && c->c.out_producer_id == 1000 && c->c.out_producer_epoch == 1);
    CHECK(described(t, "a", &v) && v.timeout_ms == TIMEOUT * 2);

    /* bad input */
    c = init_call(t, "", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_REQUEST && c->c.out_producer_id == -1);
    c = init_call(t, "a", MAX_TIMEOUT + 1, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TRANSACTION_TIMEOUT);
    c = init_call(t, "a", 0, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TRANSACTION_TIMEOUT);
    c = init_call(t, "b", MAX_TIMEOUT, -1, -1); /* the maximum itself is fine */
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == 0 && c->c.out_producer_id == 1001);
    /* no producer id at hand: retriable, nothing remembered */
    pid_none = true;
    c = init_call(t, "c", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_COORDINATOR_LOAD_IN_PROGRESS && nwrites == 0);
    pid_none = false;
    CHECK(!described(t, "c", &v));
    /* no __transaction_state */
    nparts = -1;
    c = init_call(t, "c", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_NOT_COORDINATOR && nwrites == 0);
    nparts = NPART;
    sp_txns_free(t);
    reset_env();
}

/* KIP-360: InitProducerId with the producer's id and epoch. */
static void test_init_kip360(void)
{
    sp_txns_t *t = txns_new();
    int64_t pid;
    int16_t e;
    ready(t, "k", &pid, &e);
    CHECK(e == 0);
    /* the current epoch: bumped */
    tcall_t *c = init_call(t, "k", TIMEOUT, pid, 0);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == pid && c->c.out_producer_epoch == 1);
    /* the same again: a retry of the bump it never heard of, epoch kept
     * (and written, as Kafka does) */
    int w0 = total_writes;
    c = init_call(t, "k", TIMEOUT, pid, 0);
    CHECK(total_writes == w0 + 1);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == pid && c->c.out_producer_epoch == 1);
    /* an older epoch, or another producer id: fenced, nothing written */
    w0 = total_writes;
    c = init_call(t, "k", TIMEOUT, pid, 5);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED && c->c.out_producer_epoch == -1);
    c = init_call(t, "k", TIMEOUT, pid + 77, 1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);
    CHECK(total_writes == w0);
    /* a plain init (a new producer instance) bumps and forgets the last
     * epoch: the old producer's retry is fenced */
    c = init_call(t, "k", TIMEOUT, -1, -1);
    settle(t, 0);
    CHECK(c->c.out_producer_epoch == 2);
    c = init_call(t, "k", TIMEOUT, pid, 0);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);
    /* a new id with an expected producer id (recovering from
     * UNKNOWN_PRODUCER_ID after the id expired): epoch 0 */
    c = init_call(t, "k2", TIMEOUT, 4242, 9);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == pid_next - 1 && c->c.out_producer_epoch == 0);
    sp_txns_free(t);
    reset_env();
}

/* Epoch exhaustion (Short.MaxValue - 1): a new producer id. */
static void test_epoch_exhaustion(void)
{
    sp_txns_t *t = txns_new();
    /* without an expected epoch */
    replay(t, "x1", 500, 32766, SP_TXN_COMPLETE_COMMIT, TIMEOUT, T - 10, T - 5, NULL, 0);
    int64_t p0 = pid_next;
    tcall_t *c = init_call(t, "x1", TIMEOUT, -1, -1);
    rec_t r = last_rec();
    CHECK(r.v.producer_id == p0 && r.v.producer_epoch == 0 && r.v.transaction_status == SP_TXN_EMPTY);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == p0 && c->c.out_producer_epoch == 0);
    /* the old producer comes back: its last epoch was not recorded */
    c = init_call(t, "x1", TIMEOUT, 500, 32766);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);

    /* with the expected (exhausted) epoch: rotated, and a retry of that
     * (the producer never heard) gets the same answer */
    replay(t, "x2", 600, 32766, SP_TXN_EMPTY, TIMEOUT, -1, T - 5, NULL, 0);
    int64_t p1 = pid_next;
    c = init_call(t, "x2", TIMEOUT, 600, 32766);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == p1 && c->c.out_producer_epoch == 0);
    c = init_call(t, "x2", TIMEOUT, 600, 32766);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == p1 && c->c.out_producer_epoch == 0);
    CHECK(pid_next == p1 + 1);
    /* once the new producer id has moved on (a transaction), the old id's
     * retry no longer matches Kafka's previous producer id: fenced */
    const char *p[] = { "t:0", NULL };
    c = parts_call(t, SP_TXN_ADD, "x2", p1, 0, p);
    settle(t, 0);
    c = end_call(t, "x2", p1, 0, true);
    settle(t, 0);
    markers_answer(t, NULL);
    settle(t, 0);
    CHECK(status_of(t, "x2") == SP_TXN_COMPLETE_COMMIT);
    c = init_call(t, "x2", TIMEOUT, 600, 32766);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);
    /* exhausted, but the expected epoch is older: fenced */
    replay(t, "x3", 700, 32766, SP_TXN_EMPTY, TIMEOUT, -1, T - 5, NULL, 0);
    c = init_call(t, "x3", TIMEOUT, 700, 100);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);
    sp_txns_free(t);
    reset_env();
}

/* AddPartitions, EndTxn(commit), the markers, Complete. */
static void test_transaction(void)
{
    sp_txns_t *t = txns_new();
    int64_t pid;
    int16_t e;
    ready(t, "tx", &pid, &e);
    T += 100;
    int64_t start = T;
    const char *p1[] = { "b:1", "a:2", "a:0", NULL };
    tcall_t *c = parts_call(t, SP_TXN_ADD, "tx", pid, e, p1);
    CHECK(c->answered == 0);
    rec_t r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_ONGOING && r.v.transaction_start_timestamp_ms == start &&
          r.v.transaction_last_update_timestamp_ms == start && r.v.producer_epoch == e);
    /* grouped by topic */
    CHECK(r.v.transaction_partitions.n == 2 && r.nparts == 3);
    CHECK(strcmp(r.topics[0], "a") == 0 && r.parts[0] == 0 && strcmp(r.topics[1], "a") == 0 && r.parts[1] == 2 &&
          strcmp(r.topics[2], "b") == 0 && r.parts[2] == 1);
    /* pending: the other calls wait */
    tcall_t *c2 = parts_call(t, SP_TXN_ADD, "tx", pid, e, p1);
    CHECK(c2->answered == 1 && c2->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    c2 = end_call(t, "tx", pid, e, true);
    CHECK(c2->answered == 1 && c2->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    c2 = init_call(t, "tx", TIMEOUT, -1, -1);
    CHECK(c2->answered == 1 && c2->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    sp_txn_view_t v;
    CHECK(described(t, "tx", &v) && v.status == SP_TXN_EMPTY && v.nparts == 0);
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == 0);
    CHECK(described(t, "tx", &v) && v.status == SP_TXN_ONGOING && v.nparts == 3 && v.start_ms == start);

    /* known partitions: answered at once, nothing written */
    int w0 = total_writes;
    const char *p2[] = { "a:2", "b:1", NULL };
    c = parts_call(t, SP_TXN_ADD, "tx", pid, e, p2);
    CHECK(c->answered == 1 && c->c.error == 0 && total_writes == w0);
    /* a new one: written with the union, the start time kept */
    T += 100;
    const char *p3[] = { "a:0", "c:0", NULL };
    c = parts_call(t, SP_TXN_ADD, "tx", pid, e, p3);
    r = last_rec();
    CHECK(total_writes == w0 + 1 && r.nparts == 4 && r.v.transaction_start_timestamp_ms == start &&
          r.v.transaction_last_update_timestamp_ms == T);
    settle(t, 0);
    CHECK(c->c.error == 0);

    /* verification (KIP-890) */
    const char *pv[] = { "a:0", "z:9", "c:0", NULL };
    c = parts_call(t, SP_TXN_VERIFY, "tx", pid, e, pv);
    CHECK(c->answered == 1 && c->c.error == 0);
    CHECK(c->part_errors[0] == 0 && c->part_errors[1] == SP_ERR_TRANSACTION_ABORTABLE && c->part_errors[2] == 0);
    c = parts_call(t, SP_TXN_VERIFY, "nope", pid, e, pv);
    CHECK(c->c.error == 0 && c->part_errors[0] == SP_ERR_INVALID_PRODUCER_ID_MAPPING &&
          c->part_errors[2] == SP_ERR_INVALID_PRODUCER_ID_MAPPING);
    c = parts_call(t, SP_TXN_VERIFY, "tx", pid + 1, e, pv);
    CHECK(c->part_errors[0] == SP_ERR_INVALID_PRODUCER_ID_MAPPING);
    c = parts_call(t, SP_TXN_VERIFY, "tx", pid, (int16_t)(e + 1), pv);
    CHECK(c->part_errors[0] == SP_ERR_PRODUCER_FENCED && c->part_errors[1] == SP_ERR_PRODUCER_FENCED);
    c = parts_call(t, SP_TXN_VERIFY, "", pid, e, pv);
    CHECK(c->part_errors[0] == SP_ERR_INVALID_REQUEST);
    /* AddPartitions checks */
    c = parts_call(t, SP_TXN_ADD, "nope", pid, e, p2);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_PRODUCER_ID_MAPPING);
    c = parts_call(t, SP_TXN_ADD, "tx", pid + 1, e, p2);
    CHECK(c->c.error == SP_ERR_INVALID_PRODUCER_ID_MAPPING);
    c = parts_call(t, SP_TXN_ADD, "tx", pid, (int16_t)(e - 1), p2);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    c = parts_call(t, SP_TXN_ADD, "", pid, e, p2);
    CHECK(c->c.error == SP_ERR_INVALID_REQUEST);

    /* commit */
    T += 100;
    c = end_call(t, "tx", pid, e, true);
    CHECK(c->answered == 0);
    r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_PREPARE_COMMIT && r.nparts == 4 && r.v.producer_epoch == e &&
          r.v.transaction_start_timestamp_ms == start && r.v.transaction_last_update_timestamp_ms == T);
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == 0);
    CHECK(status_of(t, "tx") == SP_TXN_PREPARE_COMMIT);
    CHECK(nmarkers == 1 && markers[0].pid == pid && markers[0].epoch == e && markers[0].commit &&
          markers[0].coordinator_epoch == COORD_EPOCH && markers[0].n == 4);
    /* while the markers are written: Kafka's table for PrepareCommit */
    c = end_call(t, "tx", pid, e, true);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    c = end_call(t, "tx", pid, e, false);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TXN_STATE);
    c = parts_call(t, SP_TXN_ADD, "tx", pid, e, p2);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    c = parts_call(t, SP_TXN_VERIFY, "tx", pid, e, pv);
    CHECK(c->answered == 1 && c->part_errors[0] == SP_ERR_CONCURRENT_TRANSACTIONS);
    c = init_call(t, "tx", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    c = init_call(t, "tx", TIMEOUT, pid + 5, 0); /* KIP-360 check before the state */
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);
    /* markers written: Complete, no partitions */
    T += 100;
    w0 = total_writes;
    markers_answer(t, NULL);
    CHECK(total_writes == w0 + 1);
    r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_COMPLETE_COMMIT && r.nparts == 0 && r.v.transaction_partitions.n == 0 &&
          r.v.transaction_start_timestamp_ms == start && r.v.transaction_last_update_timestamp_ms == T);
    c = end_call(t, "tx", pid, e, true); /* the Complete write pending */
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    settle(t, 0);
    CHECK(described(t, "tx", &v) && v.status == SP_TXN_COMPLETE_COMMIT && v.nparts == 0);
    /* EndTxn in CompleteCommit */
    c = end_call(t, "tx", pid, e, true);
    CHECK(c->answered == 1 && c->c.error == 0);
    c = end_call(t, "tx", pid, e, false);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TXN_STATE);
    /* the next transaction starts afresh (a new start time) */
    T += 100;
    c = parts_call(t, SP_TXN_ADD, "tx", pid, e, p2);
    r = last_rec();
    CHECK(r.nparts == 2 && r.v.transaction_start_timestamp_ms == T);
    settle(t, 0);
    /* abort this one */
    c = end_call(t, "tx", pid, e, false);
    settle(t, 0);
    CHECK(c->c.error == 0 && nmarkers == 1 && !markers[0].commit && markers[0].epoch == e);
    c = end_call(t, "tx", pid, e, false);
    CHECK(c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    c = end_call(t, "tx", pid, e, true);
    CHECK(c->c.error == SP_ERR_INVALID_TXN_STATE);
    markers_answer(t, NULL);
    settle(t, 0);
    CHECK(status_of(t, "tx") == SP_TXN_COMPLETE_ABORT);
    c = end_call(t, "tx", pid, e, false);
    CHECK(c->answered == 1 && c->c.error == 0);
    c = end_call(t, "tx", pid, e, true);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TXN_STATE);
    /* Empty: INVALID_TXN_STATE either way */
    c = init_call(t, "tx", TIMEOUT, -1, -1);
    settle(t, 0);
    e = c->c.out_producer_epoch;
    c = end_call(t, "tx", pid, e, true);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TXN_STATE);
    c = end_call(t, "tx", pid, e, false);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_INVALID_TXN_STATE);
    /* EndTxn's own checks */
    c = end_call(t, "nope", pid, e, true);
    CHECK(c->c.error == SP_ERR_INVALID_PRODUCER_ID_MAPPING);
    c = end_call(t, "tx", pid + 1, e, true);
    CHECK(c->c.error == SP_ERR_INVALID_PRODUCER_ID_MAPPING);
    c = end_call(t, "tx", pid, (int16_t)(e - 1), true);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    c = end_call(t, "tx", pid, (int16_t)(e + 1), true);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    c = end_call(t, "", pid, e, true);
    CHECK(c->c.error == SP_ERR_INVALID_REQUEST);
    sp_txns_free(t);
    reset_env();
}

/* InitProducerId while Ongoing: fence, abort, CONCURRENT_TRANSACTIONS. */
static void test_init_fences_ongoing(void)
{
    sp_txns_t *t = txns_new();
    int64_t pid;
    int16_t e;
    ready(t, "f", &pid, &e);
    const char *p[] = { "t:0", "t:1", NULL };
    tcall_t *c = parts_call(t, SP_TXN_ADD, "f", pid, e, p);
    settle(t, 0);
    T += 10;
    c = init_call(t, "f", TIMEOUT, -1, -1);
    CHECK(c->answered == 0);
    rec_t r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_PREPARE_ABORT && r.v.producer_epoch == e + 1 && r.nparts == 2 &&
          r.v.producer_id == pid);
    settle(t, 0);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS && c->c.out_producer_id == -1);
    CHECK(nmarkers == 1 && !markers[0].commit && markers[0].epoch == e + 1 && markers[0].n == 2);
    /* the old producer is fenced */
    c = end_call(t, "f", pid, e, true);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    /* the retry waits for the markers */
    c = init_call(t, "f", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    markers_answer(t, NULL);
    settle(t, 0);
    CHECK(status_of(t, "f") == SP_TXN_COMPLETE_ABORT);
    c = init_call(t, "f", TIMEOUT, -1, -1);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == pid && c->c.out_producer_epoch == e + 2);

    /* a fence whose write fails: the error answered, the producer fenced
     * all the same (Kafka bumps the epoch in memory), and the next fence
     * does not bump again */
    c = parts_call(t, SP_TXN_ADD, "f", pid, (int16_t)(e + 2), p);
    settle(t, 0);
    c = init_call(t, "f", TIMEOUT, -1, -1);
    CHECK(last_rec().v.producer_epoch == e + 3);
    settle(t, SP_ERR_NOT_LEADER_OR_FOLLOWER);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_NOT_COORDINATOR);
    sp_txn_view_t v;
    CHECK(described(t, "f", &v) && v.status == SP_TXN_ONGOING && v.producer_epoch == e + 3);
    c = end_call(t, "f", pid, (int16_t)(e + 2), true);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_PRODUCER_FENCED);
    c = init_call(t, "f", TIMEOUT, -1, -1);
    r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_PREPARE_ABORT && r.v.producer_epoch == e + 3);
    settle(t, 0);
    CHECK(c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    markers_answer(t, NULL);
    settle(t, 0);
    c = init_call(t, "f", TIMEOUT, -1, -1);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_epoch == e + 4);

    /* a fence refused by persist at once: the same */
    c = parts_call(t, SP_TXN_ADD, "f", pid, (int16_t)(e + 4), p);
    settle(t, 0);
    persist_error = SP_ERR_KAFKA_STORAGE_ERROR;
    c = init_call(t, "f", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_NOT_COORDINATOR);
    persist_error = 0;
    c = init_call(t, "f", TIMEOUT, -1, -1);
    CHECK(last_rec().v.producer_epoch == e + 5);
    settle(t, 0);
    markers_answer(t, NULL);
    settle(t, 0);

    /* an Ongoing transaction at the exhausted epoch: the fence still
     * bumps (to Short.MaxValue), and the retry gets a new producer id */
    replay(t, "fx", 900, 32766, SP_TXN_ONGOING, TIMEOUT, T, T, "t", 1);
    c = init_call(t, "fx", TIMEOUT, -1, -1);
    r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_PREPARE_ABORT && r.v.producer_epoch == 32767);
    settle(t, 0);
    CHECK(c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS && nmarkers == 1 && markers[0].epoch == 32767);
    markers_answer(t, NULL);
    settle(t, 0);
    int64_t np = pid_next;
    c = init_call(t, "fx", TIMEOUT, -1, -1);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == np && c->c.out_producer_epoch == 0);
    sp_txns_free(t);
    reset_env();
}

/* Failed writes change nothing. */
static void test_failed_writes(void)
{
    sp_txns_t *t = txns_new();
    /* a new id whose first write fails is forgotten */
    tcall_t *c = init_call(t, "n", TIMEOUT, -1, -1);
    settle(t, SP_ERR_NOT_ENOUGH_REPLICAS);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_COORDINATOR_NOT_AVAILABLE && c->c.out_producer_id == -1);
    sp_txn_view_t v;
    CHECK(!described(t, "n", &v));
    persist_error = SP_ERR_NOT_LEADER_OR_FOLLOWER;
    c = init_call(t, "n", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_NOT_COORDINATOR);
    persist_error = 0;
    CHECK(!described(t, "n", &v));
    /* Kafka passes other append errors through */
    c = init_call(t, "n", TIMEOUT, -1, -1);
    settle(t, SP_ERR_MESSAGE_TOO_LARGE);
    CHECK(c->c.error == SP_ERR_UNKNOWN_SERVER_ERROR);
    c = init_call(t, "n", TIMEOUT, -1, -1);
    settle(t, SP_ERR_REQUEST_TIMED_OUT);
    CHECK(c->c.error == SP_ERR_COORDINATOR_NOT_AVAILABLE);
    int64_t pid;
    int16_t e;
    ready(t, "n", &pid, &e);
    /* a failed re-init: the epoch stays */
    c = init_call(t, "n", TIMEOUT, -1, -1);
    settle(t, SP_ERR_KAFKA_STORAGE_ERROR);
    CHECK(c->c.error == SP_ERR_NOT_COORDINATOR);
    CHECK(described(t, "n", &v) && v.producer_epoch == e && v.status == SP_TXN_EMPTY);
    /* a failed add: still Empty, no partitions */
    const char *p[] = { "t:0", NULL };
    c = parts_call(t, SP_TXN_ADD, "n", pid, e, p);
    settle(t, SP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    CHECK(c->c.error == SP_ERR_COORDINATOR_NOT_AVAILABLE);
    CHECK(described(t, "n", &v) && v.status == SP_TXN_EMPTY && v.nparts == 0 && v.start_ms == -1);
    c = parts_call(t, SP_TXN_ADD, "n", pid, e, p);
    settle(t, 0);
    /* a failed EndTxn: still Ongoing, no markers */
    c = end_call(t, "n", pid, e, true);
    settle(t, SP_ERR_NOT_LEADER_OR_FOLLOWER);
    CHECK(c->c.error == SP_ERR_NOT_COORDINATOR && nmarkers == 0 && status_of(t, "n") == SP_TXN_ONGOING);
    c = end_call(t, "n", pid, e, true);
    settle(t, 0);
    CHECK(c->c.error == 0 && nmarkers == 1);
    /* the Complete write fails: still PrepareCommit, retried by tick */
    markers_answer(t, NULL);
    settle(t, SP_ERR_NOT_ENOUGH_REPLICAS);
    CHECK(status_of(t, "n") == SP_TXN_PREPARE_COMMIT && nwrites == 0);
    c = init_call(t, "n", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    CHECK(sp_txns_deadline(t) <= T + 1000);
    tick(t); /* too early */
    CHECK(nwrites == 0);
    T += 1000;
    tick(t);
    CHECK(nwrites == 1 && last_rec().v.transaction_status == SP_TXN_COMPLETE_COMMIT);
    settle(t, 0);
    CHECK(status_of(t, "n") == SP_TXN_COMPLETE_COMMIT);
    /* a Complete write refused by persist: retried later, not at once */
    c = parts_call(t, SP_TXN_ADD, "n", pid, e, p);
    settle(t, 0);
    c = end_call(t, "n", pid, e, false);
    settle(t, 0);
    persist_error = SP_ERR_KAFKA_STORAGE_ERROR;
    markers_answer(t, NULL);
    CHECK(status_of(t, "n") == SP_TXN_PREPARE_ABORT);
    CHECK(sp_txns_deadline(t) > T); /* no busy loop */
    persist_error = 0;
    T += 1000;
    tick(t);
    settle(t, 0);
    CHECK(status_of(t, "n") == SP_TXN_COMPLETE_ABORT);
    sp_txns_free(t);
    reset_env();
}

/* Markers with per-partition errors (Kafka's completion handler). */
static void test_marker_errors(void)
{
    sp_txns_t *t = txns_new();
    int64_t pid;
    int16_t e;
    ready(t, "m", &pid, &e);
    const char *p[] = { "a:0", "a:1", "b:0", "c:0", NULL };
    tcall_t *c = parts_call(t, SP_TXN_ADD, "m", pid, e, p);
    settle(t, 0);
    c = end_call(t, "m", pid, e, true);
    settle(t, 0);
    CHECK(c->c.error == 0 && nmarkers == 1 && markers[0].n == 4);
    /* a:0 written, a:1 retriable, b:0 gone, c:0 refused for its epoch */
    int16_t errs[4] = { 0, SP_ERR_NOT_LEADER_OR_FOLLOWER, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                        SP_ERR_INVALID_PRODUCER_EPOCH };
    int w0 = total_writes;
    markers_answer(t, errs);
    CHECK(nmarkers == 0 && total_writes == w0);
    sp_txn_view_t v;
    CHECK(described(t, "m", &v) && v.status == SP_TXN_PREPARE_COMMIT && v.nparts == 1 &&
          strcmp(v.topics[0], "a") == 0 && v.partitions[0] == 1);
    tick(t); /* not yet */
    CHECK(nmarkers == 0);
    T += 100;
    tick(t);
    CHECK(nmarkers == 1 && markers[0].n == 1 && strcmp(markers[0].topics[0], "a") == 0 &&
          markers[0].partitions[0] == 1 && markers[0].commit && markers[0].epoch == e);
    int16_t e2[1] = { SP_ERR_KAFKA_STORAGE_ERROR };
    markers_answer(t, e2);
    T += 100;
    tick(t);
    CHECK(nmarkers == 1);
    int16_t e3[1] = { SP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT };
    markers_answer(t, e3);
    CHECK(total_writes == w0 + 1 && last_rec().v.transaction_status == SP_TXN_COMPLETE_COMMIT);
    settle(t, 0);
    CHECK(status_of(t, "m") == SP_TXN_COMPLETE_COMMIT);

    /* markers that cannot be sent: retried by tick */
    c = parts_call(t, SP_TXN_ADD, "m", pid, e, p);
    settle(t, 0);
    markers_refuse = true;
    c = end_call(t, "m", pid, e, false);
    settle(t, 0);
    CHECK(c->c.error == 0 && nmarkers == 0);
    T += 100;
    tick(t);
    CHECK(nmarkers == 0);
    markers_refuse = false;
    T += 100;
    tick(t);
    CHECK(nmarkers == 1 && markers[0].n == 4 && !markers[0].commit);
    markers_answer(t, NULL);
    settle(t, 0);
    CHECK(status_of(t, "m") == SP_TXN_COMPLETE_ABORT);
    sp_txns_free(t);
    reset_env();
}

/* The timeout abort and the expiry of idle ids, through tick. */
static void test_timeout_and_expiry(void)
{
    sp_txns_t *t = txns_new();
    int64_t pid;
    int16_t e;
    ready(t, "o", &pid, &e);
    const char *p[] = { "t:0", NULL };
    int64_t start = T;
    tcall_t *c = parts_call(t, SP_TXN_ADD, "o", pid, e, p);
    settle(t, 0);
    /* not before start + timeout (Kafka: start + timeout < now) */
    T = start + TIMEOUT;
    tick(t);
    T += ABORT_EVERY;
    int w0 = total_writes;
    sp_txns_tick(t, start + TIMEOUT); /* an early call: nothing */
    CHECK(total_writes == w0);
    tick(t);
    CHECK(total_writes == w0 + 1);
    rec_t r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_PREPARE_ABORT && r.v.producer_epoch == e + 1);
    settle(t, 0);
    CHECK(nmarkers == 1 && !markers[0].commit && markers[0].epoch == e + 1);
    /* the producer is fenced */
    c = end_call(t, "o", pid, e, true);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    c = parts_call(t, SP_TXN_ADD, "o", pid, e, p);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    markers_answer(t, NULL);
    settle(t, 0);
    CHECK(status_of(t, "o") == SP_TXN_COMPLETE_ABORT);

    /* a timeout abort whose write fails: fenced in memory, the next one
     * does not bump again */
    ready(t, "o2", &pid, &e);
    start = T;
    c = parts_call(t, SP_TXN_ADD, "o2", pid, e, p);
    settle(t, 0);
    T = start + TIMEOUT + 2 * ABORT_EVERY;
    tick(t);
    CHECK(last_rec().v.producer_epoch == e + 1 && strcmp(last_rec().id, "o2") == 0);
    settle(t, SP_ERR_NOT_ENOUGH_REPLICAS);
    c = end_call(t, "o2", pid, e, true);
    CHECK(c->c.error == SP_ERR_PRODUCER_FENCED);
    T += ABORT_EVERY;
    tick(t);
    r = last_rec();
    CHECK(r.v.transaction_status == SP_TXN_PREPARE_ABORT && r.v.producer_epoch == e + 1);
    settle(t, 0);
    markers_answer(t, NULL);
    settle(t, 0);

    /* expiry: Empty/Complete* ids idle for transactional.id.expiration.ms */
    sp_txn_view_t v;
    ready(t, "idle", &pid, &e);
    int64_t idle_since = T;
    c = parts_call(t, SP_TXN_ADD, "busy", 1, 0, p); /* unknown: nothing */
    int64_t bp;
    int16_t be;
    ready(t, "busy", &bp, &be);
    c = parts_call(t, SP_TXN_ADD, "busy", bp, be, p);
    settle(t, 0);
    /* "busy" times out and is aborted (not expired: Ongoing) */
    T = idle_since + TIMEOUT + 2 * ABORT_EVERY;
    tick(t);
    CHECK(nwrites == 1 && strcmp(last_rec().id, "busy") == 0);
    settle(t, 0);
    markers_answer(t, NULL);
    settle(t, 0);
    /* then kept fresh by an init */
    T = idle_since + EXPIRATION + EXPIRE_EVERY;
    c = init_call(t, "busy", TIMEOUT, -1, -1);
    settle(t, 0);
    w0 = total_writes;
    tick(t);
    /* "idle", "o", "o2" expire ("busy" was updated lately) */
    int tombstones = 0;
    for (int i = 0; i < nwrites; i++) {
        rec_t rr = decode(&writes[i]);
        CHECK(rr.ok && rr.tombstone);
        tombstones += rr.ok && rr.tombstone;
    }
    CHECK(tombstones == 3 && total_writes == w0 + 3);
    CHECK(described(t, "idle", &v)); /* until the tombstone is durable */
    c = init_call(t, "idle", TIMEOUT, -1, -1);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    /* one fails: the id stays */
    settle(t, 0);
    settle(t, SP_ERR_NOT_ENOUGH_REPLICAS);
    settle(t, 0);
    int known = described(t, "idle", &v) + described(t, "o", &v) + described(t, "o2", &v);
    CHECK(known == 1);
    CHECK(described(t, "busy", &v));
    /* an expired id starts again with a new producer id, epoch 0 */
    const char *gone = !described(t, "idle", &v) ? "idle" : "o";
    int64_t np = pid_next;
    c = init_call(t, gone, TIMEOUT, -1, -1);
    settle(t, 0);
    CHECK(c->c.error == 0 && c->c.out_producer_id == np && c->c.out_producer_epoch == 0);
    sp_txns_free(t);
    reset_env();
}

typedef struct listed {
    int n;
    int by_status[8];
} listed_t;

static void on_view(const sp_txn_view_t *v, void *ctx)
{
    listed_t *l = ctx;
    l->n++;
    if (v->status >= 0 && v->status < 8)
        l->by_status[v->status]++;
}

/* Replay of records of every state, tombstones and junk. */
static void test_replay(void)
{
    sp_txns_t *t = txns_new();
    replay(t, "e", 10, 3, SP_TXN_EMPTY, TIMEOUT, -1, T, NULL, 0);
    replay(t, "o", 11, 0, SP_TXN_ONGOING, TIMEOUT, T, T, "t", 2);
    replay(t, "pc", 12, 1, SP_TXN_PREPARE_COMMIT, TIMEOUT, T, T, "t", 3);
    replay(t, "pa", 13, 1, SP_TXN_PREPARE_ABORT, TIMEOUT, T, T, "u", 1);
    replay(t, "cc", 14, 2, SP_TXN_COMPLETE_COMMIT, TIMEOUT, T, T, NULL, 0);
    replay(t, "ca", 15, 2, SP_TXN_COMPLETE_ABORT, TIMEOUT, T, T, NULL, 0);
    /* later records win; a tombstone forgets */
    replay(t, "gone", 16, 0, SP_TXN_EMPTY, TIMEOUT, -1, T, NULL, 0);
    replay(t, "e", 10, 4, SP_TXN_EMPTY, TIMEOUT, -1, T, NULL, 0);
    uint8_t kb[64];
    sp_writer_t kw = sp_writer(kb, sizeof(kb));
    sp_transaction_log_key_t k;
    sp_transaction_log_key_init(&k);
    k.transactional_id = sp_str_lit("gone");
    sp_write_i16(&kw, 0);
    sp_transaction_log_key_encode(&kw, &k, 0);
    sp_txns_replay(t, 0, (sp_bytes_t){ kb, (int32_t)(kw.pos - kw.buf) }, (sp_bytes_t){ NULL, -1 });
    CHECK(sp_txns_check(t));
    /* junk: skipped */
    uint8_t junk[] = { 0, 1, 2, 3, 4, 5 };
    sp_txns_replay(t, 0, (sp_bytes_t){ kb, (int32_t)(kw.pos - kw.buf) }, (sp_bytes_t){ junk, sizeof(junk) });
    sp_txns_replay(t, 0, (sp_bytes_t){ junk, 1 }, (sp_bytes_t){ junk, sizeof(junk) });
    sp_txns_replay(t, 0, (sp_bytes_t){ junk, 0 }, (sp_bytes_t){ NULL, -1 });
    uint8_t badkey[] = { 0, 5, 0, 1, 'x' }; /* an unknown key version */
    sp_txns_replay(t, 0, (sp_bytes_t){ badkey, sizeof(badkey) }, (sp_bytes_t){ junk, sizeof(junk) });
    CHECK(sp_txns_check(t));
    replay(t, "dead", 17, 0, SP_TXN_DEAD, TIMEOUT, -1, T, NULL, 0);
    replay(t, "fence", 18, 0, SP_TXN_PREPARE_EPOCH_FENCE, TIMEOUT, -1, T, NULL, 0);
    replay(t, "bogus", 19, 0, 99, TIMEOUT, -1, T, NULL, 0);

    sp_txn_view_t v;
    CHECK(!described(t, "gone", &v) && !described(t, "dead", &v) && !described(t, "fence", &v) &&
          !described(t, "bogus", &v));
    CHECK(described(t, "e", &v) && v.status == SP_TXN_EMPTY && v.producer_id == 10 && v.producer_epoch == 4);
    CHECK(described(t, "o", &v) && v.status == SP_TXN_ONGOING && v.nparts == 2 && v.start_ms == T);
    CHECK(described(t, "pc", &v) && v.status == SP_TXN_PREPARE_COMMIT && v.nparts == 3);
    CHECK(described(t, "cc", &v) && v.status == SP_TXN_COMPLETE_COMMIT && v.producer_epoch == 2);
    listed_t l = { 0 };
    sp_txns_each(t, on_view, &l);
    CHECK(l.n == 6 && l.by_status[SP_TXN_PREPARE_ABORT] == 1 && l.by_status[SP_TXN_ONGOING] == 1);

    /* after loading, Prepare* sends its markers again (at the first tick) */
    sp_txns_loaded(t, T);
    CHECK(sp_txns_check(t));
    CHECK(sp_txns_deadline(t) <= T);
    tick(t);
    CHECK(nmarkers == 2);
    for (int i = 0; i < nmarkers; i++) {
        if (markers[i].pid == 12)
            CHECK(markers[i].commit && markers[i].n == 3 && markers[i].epoch == 1);
        else
            CHECK(markers[i].pid == 13 && !markers[i].commit && markers[i].n == 1);
    }
    /* meanwhile: Kafka's state table */
    tcall_t *c = end_call(t, "pc", 12, 1, false);
    CHECK(c->c.error == SP_ERR_INVALID_TXN_STATE);
    c = end_call(t, "pc", 12, 1, true);
    CHECK(c->c.error == SP_ERR_CONCURRENT_TRANSACTIONS);
    markers_answer(t, NULL);
    markers_answer(t, NULL);
    settle(t, 0);
    settle(t, 0);
    CHECK(status_of(t, "pc") == SP_TXN_COMPLETE_COMMIT && status_of(t, "pa") == SP_TXN_COMPLETE_ABORT);
    /* a replayed Ongoing continues */
    c = end_call(t, "o", 11, 0, true);
    settle(t, 0);
    CHECK(c->c.error == 0);
    markers_answer(t, NULL);
    settle(t, 0);
    CHECK(status_of(t, "o") == SP_TXN_COMPLETE_COMMIT);

    /* what this coordinator writes replays to the same state */
    sp_txns_t *t2 = sp_txns_new(&SETTINGS, NULL);
    int64_t pid;
    int16_t e;
    ready(t, "rw", &pid, &e);
    sp_txns_replay(t2, last_write.partition, (sp_bytes_t){ last_write.key, (int32_t)last_write.klen },
                   (sp_bytes_t){ last_write.value, (int32_t)last_write.vlen });
    const char *p[] = { "x:3", "w:1", NULL };
    c = parts_call(t, SP_TXN_ADD, "rw", pid, e, p);
    settle(t, 0);
    sp_txns_replay(t2, last_write.partition, (sp_bytes_t){ last_write.key, (int32_t)last_write.klen },
                   (sp_bytes_t){ last_write.value, (int32_t)last_write.vlen });
    CHECK(sp_txns_check(t2));
    sp_txn_view_t a, b;
    CHECK(described(t, "rw", &a) && sp_txns_describe(t2, sp_str_lit("rw"), &b));
    CHECK(a.producer_id == b.producer_id && a.producer_epoch == b.producer_epoch && a.status == b.status &&
          a.nparts == b.nparts && a.start_ms == b.start_ms && a.timeout_ms == b.timeout_ms);
    for (int32_t i = 0; i < a.nparts && i < b.nparts; i++)
        CHECK(strcmp(a.topics[i], b.topics[i]) == 0 && a.partitions[i] == b.partitions[i]);
    sp_txns_free(t2);
    sp_txns_free(t);
    reset_env();
}

/* Shutdown answers the calls still waiting. */
static void test_shutdown(void)
{
    sp_txns_t *t = txns_new();
    tcall_t *c = init_call(t, "s", TIMEOUT, -1, -1);
    CHECK(c->answered == 0 && sp_txns_writes(t) == 1);
    sp_txns_shutdown(t, SP_ERR_COORDINATOR_NOT_AVAILABLE);
    CHECK(c->answered == 1 && c->c.error == SP_ERR_COORDINATOR_NOT_AVAILABLE && c->c.out_producer_id == -1);
    settle(t, 0); /* the write ends later: nobody to answer */
    CHECK(c->answered == 1);
    sp_txns_free(t);
    reset_env();
}

int main(void)
{
    sp_log_set_level(SP_LOG_ERROR);
    test_partition_for();
    test_init_new();
    test_init_kip360();
    test_epoch_exhaustion();
    test_transaction();
    test_init_fences_ongoing();
    test_failed_writes();
    test_marker_errors();
    test_timeout_and_expiry();
    test_replay();
    test_shutdown();
    free(last_write.key);
    free(last_write.value);
    return check_summary("test_txn_state");
}
