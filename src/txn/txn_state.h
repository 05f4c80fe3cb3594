/*
 * txn_state.h - the transaction coordinator's state machine (Kafka's
 * TransactionCoordinator, TransactionMetadata and TransactionStateManager
 * as data): every transactional id this broker coordinates, its producer
 * id and epoch, its state and partitions, and how each request and each
 * durable write moves it.  No threads, no timers, no requests: calls
 * answered through done(), writes and markers handed to the owner's env,
 * time given by the owner (sp_txns_tick).  The owner
 * (txn/txn_coordinator.c) runs it on one thread.
 *
 * States (Kafka's TransactionState, with its ids as written to
 * __transaction_state):
 *
 *            InitProducerId                 AddPartitions/AddOffsets
 *   (new) ----------------> Empty --------------------------------> Ongoing
 *                            ^  ^                                    |   |
 *          InitProducerId    |  |       EndTxn(commit)               |   | EndTxn(abort), timeout,
 *       (epoch + 1) +--------+  |  +---- PrepareCommit <-------------+   | InitProducerId (fence:
 *                   |           |  |        | markers written            |   epoch + 1)
 *       CompleteCommit <--------|--+--------+                            v
 *       CompleteAbort  <--------+---------- PrepareAbort <---------------+
 *                   |               markers written
 *                   +--> Dead (transactional.id.expiration.ms idle: a tombstone)
 *
 * | transition                          | where                                  |
 * |-------------------------------------|----------------------------------------|
 * | new/Empty/Complete* -> Empty        | init (epoch + 1, or a new producer id   |
 * |                                     | when the epoch is exhausted)            |
 * | Empty, Complete*, Ongoing -> Ongoing| add_partitions                          |
 * | Ongoing -> PrepareCommit/Abort      | end, tick (timeout), init (fence)       |
 * | Prepare* -> Complete*               | the markers are written (markers_done)  |
 * | Empty/Complete* -> Dead (removed)   | tick (expiration)                       |
 *
 * Every transition is first written (one record, key = transactional id,
 * value = the new metadata; Kafka's TransactionLogKey/Value v0) and only
 * applied once durable; meanwhile the id has a pending transition and
 * other requests on it get CONCURRENT_TRANSACTIONS, as in Kafka (not while
 * the markers of a Prepare* state are written: Kafka has no pending
 * transition then, and answers from its state table).  A failed write
 * leaves the state as it was, except a fence's (init while Ongoing, the
 * timeout abort): as in Kafka the bumped epoch stays in memory, so the
 * producer is fenced, and the next fence does not bump it again.
 *
 * Invariants (sp_txns_check):
 *  (1) an id has at most one pending transition (one write under way, or
 *      markers under way for a Prepare* state);
 *  (2) Empty and Complete* states hold no partitions; Ongoing and
 *      Prepare* hold at least one;
 *  (3) the epoch of an id only grows while its producer id stays.
 */
#ifndef SP_TXN_TXN_STATE_H
#define SP_TXN_TXN_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"

typedef enum sp_txn_status {
    SP_TXN_EMPTY = 0,
    SP_TXN_ONGOING = 1,
    SP_TXN_PREPARE_COMMIT = 2,
    SP_TXN_PREPARE_ABORT = 3,
    SP_TXN_COMPLETE_COMMIT = 4,
    SP_TXN_COMPLETE_ABORT = 5,
    SP_TXN_DEAD = 6,
    SP_TXN_PREPARE_EPOCH_FENCE = 7,
} sp_txn_status_t;

/* Kafka's names ("Empty", "Ongoing", ...), for ListTransactions and
 * DescribeTransactions; NULL for an unknown id. */
const char *sp_txn_status_name(int status);
/* The status of a name, or -1. */
int sp_txn_status_of(sp_str_t name);

typedef enum sp_txn_call_kind {
    SP_TXN_INIT,                /* InitProducerId with a transactional id */
    SP_TXN_ADD,                 /* AddPartitionsToTxn (v0-3), AddOffsetsToTxn */
    SP_TXN_VERIFY,              /* AddPartitionsToTxn v4+ verify-only; produce's check (KIP-890) */
    SP_TXN_END,                 /* EndTxn */
} sp_txn_call_kind_t;

/* A partition named by a call (borrowed from the caller). */
typedef struct sp_txn_part_in {
    sp_str_t topic;
    int32_t partition;
} sp_txn_part_in_t;

typedef struct sp_txn_call sp_txn_call_t;
struct sp_txn_call {
    sp_txn_call_kind_t kind;
    sp_str_t txn_id;            /* borrowed until done */
    int32_t timeout_ms;         /* init */
    int64_t producer_id;        /* init: -1 or the producer's (KIP-360) */
    int16_t producer_epoch;
    bool commit;                /* end */
    int32_t n;                  /* add, verify */
    const sp_txn_part_in_t *parts;
    /* out */
    int16_t error;              /* a Kafka error for the whole call */
    int16_t *part_errors;       /* verify: the caller's array of n (filled unless error) */
    int64_t out_producer_id;    /* init */
    int16_t out_producer_epoch;
    /* Called once, on the state machine's thread (possibly before the
     * call returns). */
    void (*done)(sp_txn_call_t *call);
    void *token;                /* the caller's */
};

typedef struct sp_txns sp_txns_t;
typedef struct sp_txn_write sp_txn_write_t;

/* One marker to write for a transaction (sp_txns -> owner). */
typedef struct sp_txn_markers {
    int64_t producer_id;
    int16_t producer_epoch;
    bool commit;
    int32_t coordinator_epoch;
    int32_t n;
    const char *const *topics;  /* n topic names (borrowed until markers_done) */
    const int32_t *partitions;
} sp_txn_markers_t;

/* What the owner provides. */
typedef struct sp_txn_env {
    void *ctx;
    /* Appends one record (key, value; value NULL: a tombstone; both
     * borrowed for the call) to 'partition' of __transaction_state,
     * acks=all.  0: under way, the owner calls sp_txns_settle(w, err)
     * later, never from within persist.  Or a Kafka error: nothing
     * written. */
    int16_t (*persist)(void *ctx, int32_t partition, const uint8_t *key, size_t klen, const uint8_t *value,
                       size_t vlen, sp_txn_write_t *w);
    /* Writes the markers (txn/markers.h); the owner calls
     * sp_txns_markers_done(txns, token, errors) later, never from within.
     * 0, or -1 when they could not be sent (retried later). */
    int (*markers)(void *ctx, const sp_txn_markers_t *m, void *token);
    /* A fresh producer id, or -1 when none is at hand right now
     * (the answer is then COORDINATOR_LOAD_IN_PROGRESS, retriable). */
    int64_t (*next_pid)(void *ctx);
    /* __transaction_state's partition count, or -1 when it does not exist. */
    int32_t (*partitions)(void *ctx);
    /* The coordinator epoch of a partition of __transaction_state (its
     * leader epoch). */
    int32_t (*coordinator_epoch)(void *ctx, int32_t partition);
} sp_txn_env_t;

typedef struct sp_txn_settings {
    int32_t max_timeout_ms;         /* transaction.max.timeout.ms */
    int64_t id_expiration_ms;       /* transactional.id.expiration.ms */
    int64_t abort_interval_ms;      /* transaction.abort.timed.out.transaction.cleanup.interval.ms */
    int64_t expire_interval_ms;     /* transaction.remove.expired.transaction.cleanup.interval.ms */
} sp_txn_settings_t;

/* New, empty.  env may be NULL for a replay-only instance (tests, fuzz).
 * NULL when out of memory. */
sp_txns_t *sp_txns_new(const sp_txn_settings_t *s, const sp_txn_env_t *env);
/* Frees everything; writes and markers under way must have ended. */
void sp_txns_free(sp_txns_t *t);

/* Runs call (see sp_txn_call_t). */
void sp_txns_call(sp_txns_t *t, sp_txn_call_t *call, int64_t now);
/* A write ended: err 0 (durable) or the partition's Kafka error. */
void sp_txns_settle(sp_txns_t *t, sp_txn_write_t *w, int16_t err, int64_t now);
/* The markers of token's transaction were written: errors[i] per
 * partition (valid for the call). */
void sp_txns_markers_done(sp_txns_t *t, void *token, const int16_t *errors, int64_t now);
/* Time passed: aborts timed-out transactions, expires idle ids, retries
 * markers and writes.  Returns the next time it wants to run (as
 * sp_txns_deadline).  Visits every id: the owner calls it at the deadline,
 * not after every call. */
int64_t sp_txns_tick(sp_txns_t *t, int64_t now);
/* When sp_txns_tick wants to run next (cheap; moves earlier when a call,
 * settle or markers_done sets a retry). */
int64_t sp_txns_deadline(const sp_txns_t *t);
/* Answers every call still waiting (writes under way) with err; at stop. */
void sp_txns_shutdown(sp_txns_t *t, int16_t err);
/* Writes under way (stop waits for none). */
int sp_txns_writes(const sp_txns_t *t);

/* Applies one record of __transaction_state (replay at start; untrusted:
 * what does not decode is skipped). */
void sp_txns_replay(sp_txns_t *t, int32_t partition, sp_bytes_t key, sp_bytes_t value);
/* After replay: transactions found in Prepare* send their markers again. */
void sp_txns_loaded(sp_txns_t *t, int64_t now);

/* Kafka's partition of __transaction_state for a transactional id. */
int32_t sp_txn_partition_for(sp_str_t txn_id, int32_t npartitions);

/* ---- reading (ListTransactions, DescribeTransactions) ---------------------- */

/* One transaction as described; strings borrowed until the next change. */
typedef struct sp_txn_view {
    sp_str_t txn_id;
    int64_t producer_id;
    int16_t producer_epoch;
    int status;
    int32_t timeout_ms;
    int64_t start_ms;           /* -1 when none started */
    int32_t nparts;
    const char *const *topics;
    const int32_t *partitions;
} sp_txn_view_t;

/* The view of txn_id; false when unknown (or Dead). */
bool sp_txns_describe(const sp_txns_t *t, sp_str_t txn_id, sp_txn_view_t *out);
/* Visits every transaction (not Dead). */
void sp_txns_each(const sp_txns_t *t, void (*fn)(const sp_txn_view_t *v, void *ctx), void *ctx);

/* Invariants (1)-(3). */
bool sp_txns_check(const sp_txns_t *t);

#endif
