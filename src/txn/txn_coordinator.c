/*
 * txn_coordinator.c - the transaction coordinator's thread, queue, clock,
 * writes and markers (see txn_coordinator.h).
 *
 *   any thread                     coordinator thread
 *   ----------                     ------------------
 *   submit / run ------> queue --> sp_txns_call / fn
 *   flush thread: on_durable -+--> sp_txns_settle
 *   markers' done: on_markers +--> sp_txns_markers_done
 *   pid manager: on_pid ------+--> (an id at hand)
 *                                  timed wait until sp_txns_tick's deadline
 *
 * Once the coordinator has stopped ('closed'), an outcome that arrives is
 * dropped where it arrives (the state machine is gone; a write that ended
 * is in the log and replay finds it), and the last outcome to end frees
 * the coordinator's memory (refs).
 */
#include "txn/txn_coordinator.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/partition.h"
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "txn/markers.h"
#include "txn/pid_manager.h"
#include "util/clock.h"
#include "util/config.h"
#include "util/log.h"

#define PIDS_AT_HAND 16

typedef struct op {
    struct op *next;
    void (*fn)(struct sp_txn_coordinator *c, struct op *op);
    void *arg;
    void (*run)(const sp_txns_t *txns, void *arg); /* run() ops */
} op_t;

/* A write under way. */
typedef struct write {
    sp_waiter_t w;              /* first: the partition's ack waiter */
    op_t op;
    struct sp_txn_coordinator *c;
    sp_txn_write_t *tw;
    sp_partition_t *part;
    int16_t err;
} write_t;

/* Markers under way. */
typedef struct markers {
    op_t op;
    struct sp_txn_coordinator *c;
    void *token;
    int32_t n;
    int16_t *errors;            /* n */
    sp_txn_marker_part_t *parts;
} markers_t;

struct sp_txn_coordinator {
    const sp_broker_t *broker;
    sp_txns_t *txns;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    op_t *head, *tail;          /* mu */
    bool stop, closed;          /* mu */
    int64_t pids[PIDS_AT_HAND]; /* mu: ids at hand */
    int npids;
    int asking;                 /* mu: ids asked for, not yet here */
    int32_t nparts_cfg;         /* transaction.state.log.num.partitions */
    atomic_int refs;            /* the owner's, one per write/markers/pid ask under way */
};

static void unref(sp_txn_coordinator_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
    }
}

/* Queues op; false once stopped.  Any thread. */
static bool enqueue(sp_txn_coordinator_t *c, op_t *op)
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
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return true;
}

/* ---- producer ids -------------------------------------------------------- */

static void ask_pids(sp_txn_coordinator_t *c);

/* The pid manager's answer: any thread. */
static void on_pid(void *ctx, int64_t pid, int16_t err)
{
    sp_txn_coordinator_t *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->asking--;
    if (!err && !c->closed && c->npids < PIDS_AT_HAND)
        c->pids[c->npids++] = pid;
    pthread_mutex_unlock(&c->mu);
    unref(c);
}

/* Keeps PIDS_AT_HAND ids at hand (asked one by one: each answer may run
 * at once, on this thread). */
static void ask_pids(sp_txn_coordinator_t *c)
{
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool more = !c->closed && c->npids + c->asking < PIDS_AT_HAND && c->broker->pids;
        if (more)
            c->asking++;
        pthread_mutex_unlock(&c->mu);
        if (!more)
            return;
        atomic_fetch_add(&c->refs, 1);
        sp_pid_next(c->broker->pids, on_pid, c);
    }
}

static int64_t env_next_pid(void *ctx)
{
    sp_txn_coordinator_t *c = ctx;
    pthread_mutex_lock(&c->mu);
    int64_t pid = -1;
    if (c->npids > 0) {
        pid = c->pids[0];
        memmove(&c->pids[0], &c->pids[1], sizeof(c->pids[0]) * (size_t)(c->npids - 1));
        c->npids--;
    }
    pthread_mutex_unlock(&c->mu);
    ask_pids(c);
    return pid;
}

void sp_txn_coordinator_warm(sp_txn_coordinator_t *c)
{
    if (c)
        ask_pids(c);
}

/* ---- the topic ------------------------------------------------------------- */

static int32_t env_partitions(void *ctx)
{
    sp_txn_coordinator_t *c = ctx;
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, SP_TXN_STATE_TOPIC, (int32_t)strlen(SP_TXN_STATE_TOPIC));
    int32_t n = t && t->npartitions > 0 ? t->npartitions : -1;
    sp_image_release(img);
    return n;
}

static int32_t env_coordinator_epoch(void *ctx, int32_t partition)
{
    sp_txn_coordinator_t *c = ctx;
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, SP_TXN_STATE_TOPIC, (int32_t)strlen(SP_TXN_STATE_TOPIC));
    int32_t e = t && partition >= 0 && partition < t->npartitions ? t->partitions[partition].leader_epoch : 0;
    sp_image_release(img);
    return e;
}

int sp_txn_coordinator_topic(const sp_config_t *cfg, sp_ctl_topic_t *t, sp_arena_t *arena)
{
    static sp_str_t keys[] = { { "cleanup.policy", 14 }, { "segment.bytes", 13 }, { "compression.type", 16 } };
    sp_str_t *vals = sp_arena_alloc(arena, sizeof(*vals) * 3);
    char *seg = sp_arena_alloc(arena, 24);
    if (!vals || !seg)
        return -1;
    snprintf(seg, 24, "%lld", (long long)sp_config_long(cfg, "transaction.state.log.segment.bytes"));
    vals[0] = sp_str_lit("compact");
    vals[1] = sp_str_c(seg);
    vals[2] = sp_str_lit("uncompressed");
    t->name = sp_str_lit(SP_TXN_STATE_TOPIC);
    t->num_partitions = (int32_t)sp_config_long(cfg, "transaction.state.log.num.partitions");
    t->replication_factor = -1;
    t->nconfigs = 3;
    t->ckeys = keys;
    t->cvalues = vals;
    return 0;
}

/* ---- writes -------------------------------------------------------------------- */

static void write_done(sp_txn_coordinator_t *c, op_t *op)
{
    write_t *x = op->arg;
    sp_txns_settle(c->txns, x->tw, x->err, sp_wall_ms());
    if (x->part)
        sp_partition_unref(x->part);
    free(x);
    unref(c);
}

/* The record is durable (err 0) or lost: any thread, under the
 * partition's lock or inline from persist's caller. */
static void on_durable(sp_waiter_t *w, int err)
{
    write_t *x = (write_t *)w;
    sp_txn_coordinator_t *c = x->c;
    x->err = err ? (int16_t)err : 0;
    x->op.fn = write_done;
    x->op.arg = x;
    if (enqueue(c, &x->op))
        return;
    /* stopped: the write is the log's; nothing else to tell */
    if (x->part)
        sp_partition_unref(x->part);
    free(x);
    unref(c);
}

static int16_t env_persist(void *ctx, int32_t partition, const uint8_t *key, size_t klen, const uint8_t *value,
                           size_t vlen, sp_txn_write_t *tw)
{
    sp_txn_coordinator_t *c = ctx;
    sp_partition_t *part = sp_partitions_get(c->broker->partitions, SP_TXN_STATE_TOPIC,
                                             (int32_t)strlen(SP_TXN_STATE_TOPIC), partition);
    if (!part)
        return SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    int64_t now = sp_wall_ms();
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, now);
    size_t len = 0;
    uint8_t *batch = NULL;
    if (sp_batch_builder_add(&b, key, (int32_t)klen, value, value ? (int32_t)vlen : -1, now) == 0)
        batch = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    write_t *x = batch ? calloc(1, sizeof(*x)) : NULL;
    if (!x) {
        free(batch);
        sp_partition_unref(part);
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    }
    static const sp_append_origin_t origin = { .kind = SP_ORIGIN_COORDINATOR };
    sp_append_outcome_t ar;
    bool final = sp_partition_append(part, batch, len, &origin, -1, now, &ar);
    free(batch);
    if (ar.error) {
        sp_partition_unref(part);
        free(x);
        return ar.error;
    }
    x->c = c;
    x->tw = tw;
    x->part = part;
    x->w.offset = ar.last_offset;
    x->w.wake = on_durable;
    atomic_fetch_add(&c->refs, 1);
    if (final)
        on_durable(&x->w, 0); /* queued: settled after persist returns */
    else
        sp_partition_wait_ack(part, &x->w);
    return 0;
}

/* ---- markers -------------------------------------------------------------------- */

static void markers_free(markers_t *m)
{
    free(m->errors);
    free(m->parts);
    free(m);
}

static void markers_done(sp_txn_coordinator_t *c, op_t *op)
{
    markers_t *m = op->arg;
    sp_txns_markers_done(c->txns, m->token, m->errors, sp_wall_ms());
    markers_free(m);
    unref(c);
}

/* txn/markers.h's answer: any thread. */
static void on_markers(void *ctx, const int16_t *errors)
{
    markers_t *m = ctx;
    sp_txn_coordinator_t *c = m->c;
    memcpy(m->errors, errors, sizeof(*errors) * (size_t)m->n);
    m->op.fn = markers_done;
    m->op.arg = m;
    if (enqueue(c, &m->op))
        return;
    markers_free(m);
    unref(c);
}

static int env_markers(void *ctx, const sp_txn_markers_t *mk, void *token)
{
    sp_txn_coordinator_t *c = ctx;
    markers_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -1;
    m->c = c;
    m->token = token;
    m->n = mk->n;
    m->errors = calloc((size_t)(mk->n ? mk->n : 1), sizeof(*m->errors));
    m->parts = calloc((size_t)(mk->n ? mk->n : 1), sizeof(*m->parts));
    if (!m->errors || !m->parts) {
        markers_free(m);
        return -1;
    }
    for (int32_t i = 0; i < mk->n; i++)
        m->parts[i] = (sp_txn_marker_part_t){ mk->topics[i], (int32_t)strlen(mk->topics[i]), mk->partitions[i] };
    sp_txn_marker_t tm = {
        .producer_id = mk->producer_id,
        .producer_epoch = mk->producer_epoch,
        .commit = mk->commit,
        .coordinator_epoch = mk->coordinator_epoch,
        .transaction_version = 1,
        .n = mk->n,
        .parts = m->parts,
    };
    atomic_fetch_add(&c->refs, 1);
    if (sp_txn_write_markers(c->broker, &tm, on_markers, m) != 0) {
        markers_free(m);
        atomic_fetch_sub(&c->refs, 1);
        return -1;
    }
    return 0;
}

/* ---- calls ------------------------------------------------------------------------ */

static void call_op(sp_txn_coordinator_t *c, op_t *op)
{
    sp_txns_call(c->txns, op->arg, sp_wall_ms());
    free(op);
}

int sp_txn_coordinator_submit(sp_txn_coordinator_t *c, sp_txn_call_t *call)
{
    op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = call_op;
    op->arg = call;
    if (!enqueue(c, op)) {
        free(op);
        return -1;
    }
    return 0;
}

static void run_op(sp_txn_coordinator_t *c, op_t *op)
{
    op->run(c->txns, op->arg);
    free(op);
}

int sp_txn_coordinator_run(sp_txn_coordinator_t *c, void (*fn)(const sp_txns_t *txns, void *arg), void *arg)
{
    op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = run_op;
    op->run = fn;
    op->arg = arg;
    if (!enqueue(c, op)) {
        free(op);
        return -1;
    }
    return 0;
}

/* ---- the thread --------------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    sp_txn_coordinator_t *c = arg;
    int64_t deadline = 0;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->head && !c->stop) {
            int64_t now = sp_wall_ms();
            if (now >= deadline)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = deadline - now;
            if (wait > 1000)
                wait = 1000; /* the wall clock may step: look again at least each second */
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        op_t *ops = c->head;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        while (ops) {
            op_t *next = ops->next;
            ops->fn(c, ops);
            ops = next;
        }
        int64_t now = sp_wall_ms();
        deadline = sp_txns_deadline(c->txns);
        if (now >= deadline)
            deadline = sp_txns_tick(c->txns, now);
    }
    return NULL;
}

/* ---- start / stop ----------------------------------------------------------------------- */

typedef struct replay_ctx {
    sp_txns_t *txns;
    int32_t partition;
} replay_ctx_t;

static int replay_record(const sp_record_t *rec, void *ctx)
{
    replay_ctx_t *r = ctx;
    sp_txns_replay(r->txns, r->partition, rec->key, rec->value);
    return 0;
}

static void replay(sp_txn_coordinator_t *c)
{
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, SP_TXN_STATE_TOPIC, (int32_t)strlen(SP_TXN_STATE_TOPIC));
    int n = 0;
    for (int32_t p = 0; t && p < t->npartitions; p++) {
        sp_partition_t *part = sp_partitions_get(c->broker->partitions, SP_TXN_STATE_TOPIC,
                                                 (int32_t)strlen(SP_TXN_STATE_TOPIC), p);
        if (!part)
            continue;
        replay_ctx_t r = { c->txns, p };
        if (sp_partition_scan(part, 0, replay_record, &r) != 0)
            sp_warn("txn", "%s-%d: replay stopped at an unreadable batch", SP_TXN_STATE_TOPIC, p);
        sp_partition_unref(part);
        n++;
    }
    if (t) {
        sp_info("txn", "loaded the transactional ids of %d partition%s of %s", n, n == 1 ? "" : "s",
                SP_TXN_STATE_TOPIC);
    }
    sp_image_release(img);
    sp_txns_loaded(c->txns, sp_wall_ms());
}

sp_txn_coordinator_t *sp_txn_coordinator_start(const sp_broker_t *b, const sp_config_t *cfg)
{
    sp_txn_coordinator_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->broker = b;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->nparts_cfg = (int32_t)sp_config_long(cfg, "transaction.state.log.num.partitions");
    sp_txn_settings_t s = {
        .max_timeout_ms = (int32_t)sp_config_long(cfg, "transaction.max.timeout.ms"),
        .id_expiration_ms = sp_config_long(cfg, "transactional.id.expiration.ms"),
        .abort_interval_ms = sp_config_long(cfg, "transaction.abort.timed.out.transaction.cleanup.interval.ms"),
        .expire_interval_ms = sp_config_long(cfg, "transaction.remove.expired.transaction.cleanup.interval.ms"),
    };
    sp_txn_env_t env = {
        .ctx = c,
        .persist = env_persist,
        .markers = env_markers,
        .next_pid = env_next_pid,
        .partitions = env_partitions,
        .coordinator_epoch = env_coordinator_epoch,
    };
    c->txns = sp_txns_new(&s, &env);
    if (!c->txns) {
        unref(c);
        return NULL;
    }
    replay(c);
    if (pthread_create(&c->thread, NULL, thread_main, c) != 0) {
        sp_txns_free(c->txns);
        unref(c);
        return NULL;
    }
    pthread_setname_np(c->thread, "spool-txn");
    c->running = true;
    if (env_partitions(c) > 0)
        ask_pids(c); /* transactions are in use here: ids at hand before the first producer */
    return c;
}

void sp_txn_coordinator_stop(sp_txn_coordinator_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->running)
        pthread_join(c->thread, NULL);
    /* nothing runs on the state machine any more: close the queue, then
     * drop what is in it (calls answered, outcomes let go) */
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    op_t *ops = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&c->mu);
    sp_txns_shutdown(c->txns, SP_ERR_COORDINATOR_NOT_AVAILABLE);
    while (ops) {
        op_t *next = ops->next;
        if (ops->fn == call_op) {
            sp_txn_call_t *call = ops->arg;
            call->error = SP_ERR_COORDINATOR_NOT_AVAILABLE;
            call->out_producer_id = -1;
            call->out_producer_epoch = -1;
            call->done(call);
            free(ops);
        } else if (ops->fn == run_op) {
            ops->run(NULL, ops->arg); /* NULL: stopped */
            free(ops);
        } else if (ops->fn == write_done) {
            write_t *x = ops->arg;
            if (x->part)
                sp_partition_unref(x->part);
            free(x);
            unref(c);
        } else if (ops->fn == markers_done) {
            markers_free(ops->arg);
            unref(c);
        }
        ops = next;
    }
    sp_txns_free(c->txns);
    c->txns = NULL;
    unref(c);
}
