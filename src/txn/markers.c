/*
 * markers.c - writing transaction markers (see markers.h).
 *
 *   caller                      partition's waiter (flush thread, an appender,
 *   ------                      or the caller itself when already durable)
 *   sp_txn_write_markers        ---------------------------------------------
 *     per partition: build the  on_durable: __consumer_offsets? -> group
 *     control batch, append it  coordinator (sp_coordinator_txn_complete);
 *     (coordinator origin,      part_done
 *     acks=-1), park on the
 *     partition (wait_ack)      part_done: the last partition calls done
 *     or part_done at once      (errors[]) and frees the write
 *
 * One write (mwrite_t) per call: a counter of partitions still out, their
 * errors, one waiter per partition.  Whoever brings the counter to zero
 * calls done; the caller's own reference keeps done from running before
 * every partition was started.
 *
 * The marker batch (Kafka's MemoryRecords.withEndTransactionMarker):
 *
 *   attributes  TRANSACTIONAL | CONTROL      producer id, epoch; base seq -1
 *   one record  key   = int16 version 0 | int16 type (0 ABORT, 1 COMMIT)
 *               value = int16 version 0 | int32 coordinator epoch
 *               timestamp now (CreateTime)
 *
 * Threads: see markers.h.  on_durable runs under the partition's lock:
 * it only queues (the group coordinator) and counts; done is called there
 * too, so done must not block nor call into partitions.
 */
#include "txn/markers.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "cluster/partition.h"
#include "group/coordinator.h"
#include "proto/batch.h"
#include "proto/gen/errors.h"
#include "util/clock.h"
#include "util/log.h"

struct mwrite;

/* One partition of a write: its waiter first (the partition's wake gets it). */
typedef struct mpart {
    sp_waiter_t w;
    struct mwrite *m;
    sp_partition_t *part;         /* referenced while out, or NULL */
    int32_t partition;
    bool offsets_topic;           /* __consumer_offsets: the group coordinator hears of it */
} mpart_t;

typedef struct mwrite {
    atomic_int left;              /* partitions out, + 1 for the caller until all started */
    const sp_broker_t *b;
    int64_t producer_id;
    int16_t producer_epoch;
    bool commit;
    void (*done)(void *ctx, const int16_t *errors);
    void *ctx;
    int n;
    int16_t *errors;              /* n */
    mpart_t *parts;               /* n */
} mwrite_t;

/* Builds the marker batch (malloc'd, *len), or NULL when out of memory. */
static uint8_t *build_marker(const sp_txn_marker_t *m, int64_t now, size_t *len)
{
    uint8_t key[4] = { 0, 0, 0, (uint8_t)(m->commit ? 1 : 0) };
    uint8_t val[6] = { 0, 0 };
    uint32_t ce = (uint32_t)m->coordinator_epoch;
    val[2] = (uint8_t)(ce >> 24);
    val[3] = (uint8_t)(ce >> 16);
    val[4] = (uint8_t)(ce >> 8);
    val[5] = (uint8_t)ce;
    sp_batch_builder_t bb;
    sp_batch_builder_init(&bb, 0, now);
    sp_batch_builder_set_producer(&bb, m->producer_id, m->producer_epoch, -1);
    sp_batch_builder_set_flags(&bb, SP_BATCH_ATTR_TRANSACTIONAL | SP_BATCH_ATTR_CONTROL);
    uint8_t *batch = NULL;
    if (sp_batch_builder_add(&bb, key, sizeof(key), val, sizeof(val), now) == 0)
        batch = sp_batch_builder_finish(&bb, len);
    sp_batch_builder_free(&bb);
    return batch;
}

static void mwrite_free(mwrite_t *m)
{
    for (int i = 0; i < m->n; i++)
        if (m->parts[i].part)
            sp_partition_unref(m->parts[i].part); /* never the last: the registry holds one */
    free(m->errors);
    free(m->parts);
    free(m);
}

/* One partition (or the caller's own share) is over. */
static void release(mwrite_t *m)
{
    if (atomic_fetch_sub(&m->left, 1) != 1)
        return;
    m->done(m->ctx, m->errors);
    mwrite_free(m);
}

static void part_done(mpart_t *mp, int16_t err)
{
    mp->m->errors[mp - mp->m->parts] = err;
    release(mp->m);
}

/* The partition's ack waiter: the marker is below the high watermark
 * (durable), or the partition failed or went away (err).  Under the
 * partition's lock. */
static void on_durable(sp_waiter_t *w, int err)
{
    mpart_t *mp = (mpart_t *)w;
    mwrite_t *m = mp->m;
    if (!err && mp->offsets_topic && m->b->coordinator)
        sp_coordinator_txn_complete(m->b->coordinator, mp->partition, m->producer_id, m->producer_epoch,
                                    m->commit);
    part_done(mp, (int16_t)err);
}

/* Appends the marker to one partition and parks until it is durable. */
static void write_one(mwrite_t *m, mpart_t *mp, const sp_txn_marker_t *mk, const sp_txn_marker_part_t *tp,
                      int64_t now)
{
    mp->m = m;
    mp->partition = tp->partition;
    mp->offsets_topic = tp->topic_len == (int32_t)strlen(SP_OFFSETS_TOPIC) &&
                        memcmp(tp->topic, SP_OFFSETS_TOPIC, (size_t)tp->topic_len) == 0;
    mp->part = sp_partitions_get(m->b->partitions, tp->topic, tp->topic_len, tp->partition);
    if (!mp->part) {
        part_done(mp, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        return;
    }
    size_t len = 0;
    uint8_t *batch = build_marker(mk, now, &len);
    if (!batch) {
        part_done(mp, SP_ERR_UNKNOWN_SERVER_ERROR);
        return;
    }
    static const sp_append_origin_t origin = { .kind = SP_ORIGIN_COORDINATOR };
    sp_append_outcome_t res;
    bool final = sp_partition_append(mp->part, batch, len, &origin, -1, now, &res);
    free(batch);
    if (res.error) {
        sp_debug("txn", "marker of producer %" PRId64 " to %.*s-%d: %s", mk->producer_id, (int)tp->topic_len,
                 tp->topic, tp->partition, sp_kafka_error_name(res.error));
        part_done(mp, res.error);
        return;
    }
    mp->w.offset = res.last_offset;
    mp->w.wake = on_durable;
    if (final)
        on_durable(&mp->w, 0);
    else
        sp_partition_wait_ack(mp->part, &mp->w);
}

int sp_txn_write_markers(const struct sp_broker *b, const sp_txn_marker_t *mk,
                         void (*done)(void *ctx, const int16_t *errors), void *ctx)
{
    int n = mk->n > 0 ? mk->n : 0;
    mwrite_t *m = calloc(1, sizeof(*m));
    if (m) {
        m->errors = calloc((size_t)(n ? n : 1), sizeof(int16_t));
        m->parts = calloc((size_t)(n ? n : 1), sizeof(mpart_t));
    }
    if (!m || !m->errors || !m->parts) {
        if (m) {
            free(m->errors);
            free(m->parts);
        }
        free(m);
        return -1;
    }
    m->b = b;
    m->producer_id = mk->producer_id;
    m->producer_epoch = mk->producer_epoch;
    m->commit = mk->commit;
    m->done = done;
    m->ctx = ctx;
    m->n = n;
    atomic_init(&m->left, n + 1);
    int64_t now = sp_wall_ms();
    for (int i = 0; i < n; i++)
        write_one(m, &m->parts[i], mk, &mk->parts[i], now);
    release(m); /* the caller's share: done may run here */
    return 0;
}
