/*
 * coordinator.c - the group coordinator's thread, queue, timer and writes
 * (see coordinator.h).
 *
 *   any thread                 coordinator thread (its libuv loop)
 *   ----------                 -----------------------------------
 *   sp_coordinator_submit ---> queue --> on_wake: sp_groups_call
 *                                 ^               arm: the one timer at
 *                                 |                    sp_groups_deadline
 *                                 |      on_timer: sp_groups_tick
 *   flush thread (or the          |
 *   appender): on_durable --------+----> write_done: sp_groups_settle
 *
 * A write (persist, called by the groups from the coordinator thread) is
 * one batch appended to the group's partition of __consumer_offsets with
 * acks=all; its waiter wakes once the high watermark passes the batch
 * (durable) or the partition fails or goes away (lost).  Its outcome is
 * queued back, so the groups only ever run on this thread.  Once the
 * coordinator has stopped ('closed'), an outcome is settled where it
 * arrives (sp_group_write_abandon), and the last write to end frees the
 * coordinator's memory (refs).
 */
#include "group/coordinator.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "broker/broker.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "cluster/partition.h"
#include "group/records.h"
#include "proto/gen/errors.h"
#include "util/config.h"
#include "util/log.h"
#include "txn/txn_coordinator.h"
#include "util/wakeup.h"

typedef struct op {
    struct op *next;
    void (*fn)(struct sp_coordinator *c, void *arg);
    void *arg;
    bool embedded;              /* part of arg (a write_t): not freed by on_wake */
} op_t;

/* A write under way: the partition's waiter, and the groups' write. */
typedef struct write {
    sp_waiter_t w;              /* first: the partition's ack waiter */
    sp_coordinator_t *c;        /* whose write (on_durable runs on another thread) */
    op_t op;                    /* write_done, queued to the coordinator */
    sp_group_write_t *gw;
    sp_partition_t *part;       /* referenced while waiting, or NULL */
    int64_t last_offset;        /* of the batch in the log */
    int16_t err;                /* Kafka error; 0: durable */
} write_t;

struct sp_coordinator {
    const sp_broker_t *broker;
    sp_groups_t *groups;
    pthread_t thread;
    uv_loop_t loop;
    sp_wakeup_t wake;
    uv_timer_t timer;           /* at the groups' next deadline */
    int64_t armed;              /* the deadline the timer is set for; INT64_MAX: none */
    pthread_mutex_t mu;
    op_t *head, *tail;          /* the queue (mu) */
    bool stop;                  /* asked to stop (mu) */
    bool closed;                /* the thread is done: nothing more is queued (mu) */
    bool running, loop_ready, wake_ready, timer_ready;
    int32_t nparts;             /* partitions of __consumer_offsets at start */
    atomic_int refs;            /* the owner's, and one per write under way */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drops a reference; the last frees c (its thread and loop long gone). */
static void coordinator_unref(sp_coordinator_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        pthread_mutex_destroy(&c->mu);
        free(c);
    }
}

/* ---- partitions ---------------------------------------------------------- */

int32_t sp_coordinator_partition_for(const char *group, int32_t len, int32_t n)
{
    return sp_key_partition(group, len, n);
}

/*
 * The partition count of __consumer_offsets as the topic has it (the
 * topic decides: a data dir may hold it with a count other than today's
 * offsets.topic.num.partitions, e.g. created by a client before clients
 * were refused), or the configured count while it does not exist yet.
 * Kafka reads it once at start-up; reading it per write also covers a
 * topic that appeared after the start.  Coordinator thread.
 */
static int32_t offsets_partitions(sp_coordinator_t *c)
{
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, SP_OFFSETS_TOPIC, (int32_t)strlen(SP_OFFSETS_TOPIC));
    int32_t n = t && t->npartitions > 0 ? t->npartitions : c->nparts;
    sp_image_release(img);
    return n;
}

/* The groups' env: a topic's partition count in the current image. */
static int32_t topic_partitions(void *ctx, sp_str_t topic)
{
    sp_coordinator_t *c = ctx;
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, topic.ptr, topic.len);
    int32_t n = t ? t->npartitions : -1;
    sp_image_release(img);
    return n;
}

/* A marker's partition of __consumer_offsets, and the coordinator. */
typedef struct txn_end {
    sp_coordinator_t *c;
    int32_t partition;
    int32_t nparts;             /* of __consumer_offsets */
    int64_t producer_id;
    bool commit;
} txn_end_t;

/* sp_groups_txn_end's filter: whether group's records are in the
 * marker's partition (a producer's marker in one partition ends only
 * what it wrote there, as each Kafka coordinator shard keeps its own). */
static bool in_partition(void *ctx, const char *group)
{
    txn_end_t *e = ctx;
    return sp_coordinator_partition_for(group, (int32_t)strlen(group), e->nparts) == e->partition;
}

/* ---- the queue ----------------------------------------------------------- */

/* Queues op for the coordinator thread; false once it has stopped.  The
 * wakeup is sent under mu: once 'closed' is set (under mu) nobody touches
 * it again, so sp_coordinator_stop may free it.  Any thread. */
static bool enqueue(sp_coordinator_t *c, op_t *op)
{
    op->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->closed) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    if (c->tail)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    sp_wakeup_send(&c->wake);
    pthread_mutex_unlock(&c->mu);
    return true;
}

static void run_call(sp_coordinator_t *c, void *arg)
{
    sp_groups_call(c->groups, arg, now_ms());
}

int sp_coordinator_submit(sp_coordinator_t *c, sp_group_call_t *call)
{
    op_t *op = malloc(sizeof(*op));
    if (!op)
        return -2;
    op->fn = run_call;
    op->arg = call;
    op->embedded = false;
    if (!enqueue(c, op)) {
        free(op);
        return -1;
    }
    return 0;
}

/* ---- transactions -------------------------------------------------------- */

/* Coordinator thread: a marker is durable (sp_coordinator_txn_complete). */
static void run_txn_end(sp_coordinator_t *c, void *arg)
{
    txn_end_t *e = arg;
    e->nparts = offsets_partitions(c);
    int n = sp_groups_txn_end(c->groups, e->producer_id, e->commit, in_partition, e, now_ms());
    if (n)
        sp_info("group", "%s-%d: %s %d transactional offset%s of producer %" PRId64, SP_OFFSETS_TOPIC,
                e->partition, e->commit ? "committed" : "aborted", n, n == 1 ? "" : "s", e->producer_id);
    free(e);
}

void sp_coordinator_txn_complete(sp_coordinator_t *c, int32_t partition, int64_t producer_id,
                                 int16_t producer_epoch, bool commit)
{
    (void)producer_epoch; /* Kafka's replayEndTransactionMarker ignores it too */
    txn_end_t *e = malloc(sizeof(*e));
    op_t *op = malloc(sizeof(*op));
    if (!e || !op) {
        sp_error("group", "%s-%d: out of memory for the marker of producer %" PRId64
                 ": its transactional offsets stay pending until a restart", SP_OFFSETS_TOPIC, partition, producer_id);
        free(e);
        free(op);
        return;
    }
    *e = (txn_end_t){ c, partition, 0, producer_id, commit };
    op->fn = run_txn_end;
    op->arg = e;
    op->embedded = false;
    if (!enqueue(c, op)) {
        free(e); /* stopped: the replay at the next start applies the marker */
        free(op);
    }
}

/*
 * KIP-890's defence for offsets: every TxnOffsetCommit asks the
 * transaction coordinator, after its topic and group-id checks and before
 * the group checks and the write (Kafka's
 * CoordinatorRuntime.scheduleTransactionalWriteOperation ->
 * maybeStartTransactionVerification), whether the producer's ongoing
 * transaction has the group's partition of __consumer_offsets
 * (AddOffsetsToTxn).  The answer comes back on the transaction
 * coordinator's thread and is queued here (sp_groups_txn_verified).
 * Kafka's mapping of the verdict (by TxnOffsetCommit version,
 * txnOffsetCommitRequestVersionToTransactionSupportedOperation): a
 * partition not in the transaction is TRANSACTION_ABORTABLE from v4 on,
 * INVALID_TXN_STATE before; a fenced producer INVALID_PRODUCER_EPOCH; the
 * coordinator's retriable errors COORDINATOR_NOT_AVAILABLE.
 */
typedef struct verifying {
    sp_txn_call_t call;         /* first */
    op_t op;
    sp_coordinator_t *c;
    sp_group_call_t *gcall;
    int16_t version;
    sp_txn_part_in_t part;
    int16_t part_err;
    char *txn_id;
} verifying_t;

static int16_t verify_error(int16_t version, int16_t err)
{
    switch (err) {
    case SP_ERR_PRODUCER_FENCED: return SP_ERR_INVALID_PRODUCER_EPOCH;
    case SP_ERR_TRANSACTION_ABORTABLE: return version >= 4 ? err : SP_ERR_INVALID_TXN_STATE;
    case SP_ERR_NOT_COORDINATOR:
    case SP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case SP_ERR_CONCURRENT_TRANSACTIONS: return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    default: return err;
    }
}

/* Coordinator thread: the verdict is in. */
static void run_verified(sp_coordinator_t *c, void *arg)
{
    verifying_t *x = arg;
    int16_t err = x->call.error ? x->call.error : x->part_err;
    sp_groups_txn_verified(c->groups, x->gcall, verify_error(x->version, err), now_ms());
    free(x->txn_id);
    free(x);
}

/* The transaction coordinator's answer (its thread). */
static void txn_verified(sp_txn_call_t *call)
{
    verifying_t *x = (verifying_t *)call;
    x->op.fn = run_verified;
    x->op.arg = x;
    x->op.embedded = true;
    if (enqueue(x->c, &x->op))
        return;
    /* the groups are gone: the call is answered as a broken one */
    x->gcall->done(x->gcall, NULL);
    free(x->txn_id);
    free(x);
}

static int16_t verify_txn(void *ctx, const sp_txn_verify_t *v, sp_group_call_t *call)
{
    sp_coordinator_t *c = ctx;
    verifying_t *x = calloc(1, sizeof(*x));
    char *id = x && v->transactional_id.len > 0 ? malloc((size_t)v->transactional_id.len) : NULL;
    if (!x || (v->transactional_id.len > 0 && !id)) {
        free(x);
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (id)
        memcpy(id, v->transactional_id.ptr, (size_t)v->transactional_id.len);
    x->c = c;
    x->gcall = call;
    x->version = v->version;
    x->txn_id = id;
    x->part.topic = sp_str_lit(SP_OFFSETS_TOPIC);
    x->part.partition = sp_coordinator_partition_for(v->group, (int32_t)strlen(v->group), offsets_partitions(c));
    x->call.kind = SP_TXN_VERIFY;
    x->call.txn_id = (sp_str_t){ id, v->transactional_id.len };
    x->call.producer_id = v->producer_id;
    x->call.producer_epoch = v->producer_epoch;
    x->call.n = 1;
    x->call.parts = &x->part;
    x->call.part_errors = &x->part_err;
    x->call.done = txn_verified;
    if (!c->broker->txn || sp_txn_coordinator_submit(c->broker->txn, &x->call) != 0) {
        free(id);
        free(x);
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    return SP_GROUP_VERIFY_LATER;
}

/* ---- writes to __consumer_offsets ---------------------------------------- */

/*
 * Kafka's answer for a failed write to __consumer_offsets
 * (CoordinatorOperationExceptionHelper.handleOperationException and
 * GroupMetadataManager.appendGroupMetadataErrorToResponseError): a storage
 * error (full disk, failed fsync) is NOT_COORDINATOR, so clients look the
 * coordinator up again and retry.
 */
static int16_t write_error(int16_t append_err)
{
    switch (append_err) {
    case SP_ERR_UNKNOWN_TOPIC_OR_PARTITION:
    case SP_ERR_NOT_ENOUGH_REPLICAS:
    case SP_ERR_REQUEST_TIMED_OUT:
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    case SP_ERR_NOT_LEADER_OR_FOLLOWER:
    case SP_ERR_KAFKA_STORAGE_ERROR:
        return SP_ERR_NOT_COORDINATOR;
    case SP_ERR_MESSAGE_TOO_LARGE:
    case SP_ERR_RECORD_LIST_TOO_LARGE:
    case SP_ERR_INVALID_FETCH_SIZE:
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    default:
        return append_err;
    }
}

static void write_free(write_t *x)
{
    if (x->part)
        sp_partition_unref(x->part);
    free(x);
}

/* Coordinator thread: the outcome of x is known, the groups settle it. */
static void write_done(sp_coordinator_t *c, void *arg)
{
    write_t *x = arg;
    sp_groups_settle(c->groups, x->gw, x->err, x->last_offset, now_ms());
    write_free(x);
    coordinator_unref(c);
}

/* The outcome of x is known: settled on the coordinator thread, or here
 * if it has stopped.  Any thread. */
static void post_done(write_t *x)
{
    sp_coordinator_t *c = x->c;
    x->op.fn = write_done;
    x->op.arg = x;
    x->op.embedded = true;
    if (enqueue(c, &x->op))
        return;
    sp_group_write_abandon(x->gw, x->err);
    write_free(x);
    coordinator_unref(c);
}

/* The partition's ack waiter: the batch is below the high watermark
 * (durable, err 0) or lost.  Runs under the partition's lock on the
 * thread that moved it, or inline from persist. */
static void on_durable(sp_waiter_t *w, int err)
{
    write_t *x = (write_t *)w;
    x->err = err ? write_error((int16_t)err) : 0;
    post_done(x);
}

/*
 * The groups' env: appends batch to group's partition of
 * __consumer_offsets (acks=all); gw is settled once it is durable or
 * lost (at once, queued, when there is nothing to write).  0, or Kafka's
 * error if the append failed (gw still the groups').  Coordinator thread.
 */
static int16_t persist(void *ctx, const char *group, uint8_t *batch, size_t len, sp_group_write_t *gw)
{
    sp_coordinator_t *c = ctx;
    write_t *x = calloc(1, sizeof(*x));
    if (!x)
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    x->c = c;
    x->gw = gw;
    if (len == 0) {
        atomic_fetch_add(&c->refs, 1);
        post_done(x);
        return 0;
    }
    int32_t p = sp_coordinator_partition_for(group, (int32_t)strlen(group), offsets_partitions(c));
    sp_partition_t *part = sp_partitions_get(c->broker->partitions, SP_OFFSETS_TOPIC,
                                             (int32_t)strlen(SP_OFFSETS_TOPIC), p);
    if (!part) {
        free(x);
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    sp_append_outcome_t ar;
    static const sp_append_origin_t origin = { .kind = SP_ORIGIN_COORDINATOR };
    /* acks=all, as Kafka's coordinator writes */
    bool final = sp_partition_append(part, batch, len, &origin, -1, now_ms(), &ar);
    if (ar.error) {
        sp_partition_unref(part);
        free(x);
        sp_warn("group", "group %s: cannot append to %s-%d: %s", group, SP_OFFSETS_TOPIC, p,
                sp_kafka_error_name(ar.error));
        return write_error(ar.error);
    }
    atomic_fetch_add(&c->refs, 1);
    x->part = part;
    x->last_offset = ar.last_offset;
    x->w.offset = ar.last_offset;
    x->w.wake = on_durable;
    if (final)
        on_durable(&x->w, 0);
    else
        sp_partition_wait_ack(part, &x->w);
    return 0;
}

/* ---- the thread ---------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* Sets the timer at the groups' next deadline, if that moved. */
static void arm(sp_coordinator_t *c)
{
    int64_t d = sp_groups_deadline(c->groups);
    if (d == c->armed)
        return;
    c->armed = d;
    if (d == INT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    int64_t wait = d - now_ms();
    uv_update_time(&c->loop);
    uv_timer_start(&c->timer, on_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    sp_coordinator_t *c = t->data;
    c->armed = INT64_MAX;
    sp_groups_tick(c->groups, now_ms());
    arm(c);
}

static void on_wake(sp_wakeup_t *a)
{
    sp_coordinator_t *c = a->data;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        op_t *op = c->head;
        c->head = c->tail = NULL;
        bool stop = c->stop;
        if (!op && stop)
            c->closed = true; /* from now on writes settle in sp_group_write_abandon */
        pthread_mutex_unlock(&c->mu);
        if (!op) {
            if (stop) {
                /* parked calls are answered so that their requests are freed */
                sp_groups_shutdown(c->groups);
                uv_stop(&c->loop);
            } else {
                arm(c);
            }
            return;
        }
        while (op) {
            op_t *next = op->next;
            bool embedded = op->embedded; /* freed with its write */
            op->fn(c, op->arg);
            if (!embedded)
                free(op);
            op = next;
        }
    }
}

static void *coordinator_main(void *arg)
{
    sp_coordinator_t *c = arg;
    pthread_setname_np(pthread_self(), "spool-group");
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- start / stop -------------------------------------------------------- */

/* One batch of a partition of __consumer_offsets being replayed. */
typedef struct replay_batch {
    sp_coordinator_t *c;
    int32_t partition;
    const sp_batch_hdr_t *h;
} replay_batch_t;

/* sp_batches_each_record's callback: one record of a data batch (its
 * producer's, if any: a TxnOffsetCommit's) or of a marker. */
static int replay_record(const sp_record_t *rec, void *ctx)
{
    replay_batch_t *rb = ctx;
    if (!sp_batch_is_control(rb->h)) {
        sp_groups_replay_txn(rb->c->groups, rb->h->producer_id, rec->key, rec->value, rec->offset, now_ms());
        return 0;
    }
    bool commit;
    if (sp_group_marker_type(rec->key, &commit) == 0) {
        txn_end_t e = { rb->c, rb->partition, rb->c->nparts, rb->h->producer_id, commit };
        sp_groups_txn_end(rb->c->groups, rb->h->producer_id, commit, in_partition, &e, now_ms());
    }
    return 0;
}

/* sp_partition_scan_batches' callback: the batch's CRC is checked (the
 * groups are rebuilt from it: a flipped bit must stop the replay), its
 * records replayed.  0, or -1 to stop. */
static int replay_batch(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h)
{
    replay_batch_t *rb = ctx;
    rb->h = h;
    int64_t next;
    return sp_batches_each_record(batch, len, replay_record, rb, &next) == 0 ? 0 : -1;
}

/* Replays every partition of __consumer_offsets, if it exists. */
static void replay(sp_coordinator_t *c)
{
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, SP_OFFSETS_TOPIC, (int32_t)strlen(SP_OFFSETS_TOPIC));
    if (t) {
        if (t->npartitions != c->nparts)
            sp_warn("group", "%s has %d partitions, offsets.topic.num.partitions is %d: the topic's count is used",
                    SP_OFFSETS_TOPIC, t->npartitions, c->nparts);
        c->nparts = t->npartitions; /* the topic decides, as in Kafka */
        for (int32_t p = 0; p < t->npartitions; p++) {
            sp_partition_t *part = sp_partitions_get(c->broker->partitions, SP_OFFSETS_TOPIC,
                                                     (int32_t)strlen(SP_OFFSETS_TOPIC), p);
            if (!part)
                continue;
            replay_batch_t rb = { c, p, NULL };
            if (sp_partition_scan_batches(part, 0, replay_batch, &rb) != 0)
                sp_warn("group", "%s-%d: replay stopped at an unreadable batch", SP_OFFSETS_TOPIC, p);
            sp_partition_unref(part);
        }
    }
    int groups = sp_groups_start(c->groups, now_ms());
    if (t)
        sp_info("group", "loaded %d group%s from %s", groups, groups == 1 ? "" : "s", SP_OFFSETS_TOPIC);
    sp_image_release(img);
}

static int coordinator_start(sp_coordinator_t *c, const sp_broker_t *b, const sp_config_t *cfg)
{
    c->broker = b;
    c->nparts = (int32_t)sp_config_long(cfg, "offsets.topic.num.partitions");
    c->armed = INT64_MAX;
    sp_group_settings_t s;
    sp_group_settings_from(cfg, &s);
    sp_group_env_t env = { .ctx = c, .persist = persist, .partitions = topic_partitions, .verify_txn = verify_txn };
    c->groups = sp_groups_new(&s, &env);
    if (!c->groups)
        return -1;
    if (uv_loop_init(&c->loop) != 0)
        return -1;
    c->loop_ready = true;
    if (sp_wakeup_init(&c->loop, &c->wake, on_wake) != 0)
        return -1;
    c->wake_ready = true;
    c->wake.data = c;
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    c->timer_ready = true;
    replay(c);
    arm(c);
    c->running = true;
    if (pthread_create(&c->thread, NULL, coordinator_main, c) != 0) {
        c->running = false;
        return -1;
    }
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Frees what c holds (its thread stopped or never started) and drops the
 * owner's reference. */
static void coordinator_free(sp_coordinator_t *c)
{
    sp_groups_free(c->groups);
    c->groups = NULL;
    if (c->loop_ready) {
        uv_walk(&c->loop, close_walk, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
    }
    if (c->wake_ready)
        sp_wakeup_free(&c->wake);
    coordinator_unref(c);
}

sp_coordinator_t *sp_coordinator_start(const sp_broker_t *b, const sp_config_t *cfg)
{
    sp_coordinator_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->refs, 1);
    if (coordinator_start(c, b, cfg) != 0) {
        coordinator_free(c); /* nothing was written yet */
        return NULL;
    }
    return c;
}

void sp_coordinator_stop(sp_coordinator_t *c)
{
    if (!c)
        return;
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_mutex_unlock(&c->mu);
        sp_wakeup_send(&c->wake);
        pthread_join(c->thread, NULL);
        c->running = false;
    }
    coordinator_free(c);
}

/* ---- __consumer_offsets' shape ------------------------------------------- */

int sp_coordinator_offsets_topic(const sp_config_t *cfg, sp_ctl_topic_t *t, sp_arena_t *arena)
{
    static sp_str_t keys[] = { { "cleanup.policy", 14 }, { "segment.bytes", 13 },
                               { "compression.type", 16 } };
    sp_str_t *vals = sp_arena_alloc(arena, sizeof(*vals) * 3);
    char *seg = sp_arena_alloc(arena, 24);
    if (!vals || !seg)
        return -1;
    snprintf(seg, 24, "%lld", (long long)sp_config_long(cfg, "offsets.topic.segment.bytes"));
    vals[0] = sp_str_lit("compact");
    vals[1] = sp_str_c(seg);
    vals[2] = sp_str_lit("producer");
    t->name = sp_str_lit(SP_OFFSETS_TOPIC);
    t->num_partitions = (int32_t)sp_config_long(cfg, "offsets.topic.num.partitions");
    t->replication_factor = -1;
    t->nconfigs = 3;
    t->ckeys = keys;
    t->cvalues = vals;
    return 0;
}
