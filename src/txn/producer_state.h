/*
 * producer_state.h - what one partition knows of the producers writing to
 * it (Kafka's ProducerStateManager and ProducerAppendInfo): the epoch and
 * the last five batches of every producer id, the transaction each has
 * open on this partition, and from these the first unstable offset.
 *
 * Idempotence (KIP-98, Kafka's rules exactly):
 *   - a client's batch whose (epoch, first seq, last seq) equals one of
 *     the producer's last SP_PSTATE_BATCHES batches is a retry: it is
 *     answered with the ORIGINAL offsets and not written again;
 *   - a batch with an older epoch than the producer's is
 *     INVALID_PRODUCER_EPOCH;
 *   - a new epoch must start at sequence 0, and within an epoch the first
 *     sequence must follow the last one (INT32_MAX wraps to 0), else
 *     OUT_OF_ORDER_SEQUENCE_NUMBER; a producer with no state (never seen,
 *     expired, or its batches removed) may start anywhere (KIP-360);
 *   - the broker's own writers (coordinators' transactional offsets,
 *     markers) are checked for the epoch only; replay is not checked.
 *
 * Transactions: a producer's first transactional batch opens its
 * transaction on this partition (first offset); its COMMIT or ABORT
 * marker (a control batch) closes it, yielding a completed transaction
 * (for the aborted-transaction index when aborted).  A closed transaction
 * stays "unstable" until the high watermark passes its marker.  The first
 * unstable offset (the lowest first offset of an open or unstable
 * transaction) bounds the last stable offset: LSO = min(it, hw).
 *
 * Snapshots: <dir>/<offset, 20 digits>.snapshot, Kafka's layout (version 1),
 * the state of every producer after all batches below <offset>:
 *
 *   +---------+-----------+--------------------------------------------+
 *   | version | crc32c    | entries: int32 count, then per producer:   |
 *   | int16=1 | uint32    |  producer_id int64, epoch int16,           |
 *   |         | (over the |  last_sequence int32, last_offset int64,   |
 *   |         |  entries) |  offset_delta int32, timestamp int64,      |
 *   |         |           |  coordinator_epoch int32,                  |
 *   |         |           |  current_txn_first_offset int64 (-1: none) |
 *   +---------+-----------+--------------------------------------------+
 *
 * Like Kafka's, a snapshot keeps only each producer's last batch, so after
 * a restart the retries recognised are those of the last batch and of the
 * batches replayed after the snapshot.
 *
 * Not thread-safe: the owner (cluster/partition.c) serialises every call
 * (its appends run one at a time under the log's append lock).
 *
 * Invariants:
 *  (1) a producer's batches[] are in append order, at most
 *      SP_PSTATE_BATCHES, all of its current epoch;
 *  (2) a producer has an open transaction on this partition iff its
 *      txn_first_offset >= 0, and then exactly one entry of ongoing[] names
 *      it; ongoing[] and unstable[] are sorted by first offset.
 */
#ifndef SP_TXN_PRODUCER_STATE_H
#define SP_TXN_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/batch.h"

#define SP_PSTATE_BATCHES 5

/* One of a producer's last batches (Kafka's BatchMetadata). */
typedef struct sp_pbatch {
    int32_t last_seq;
    int32_t offset_delta;         /* last offset - first offset (= last seq - first seq) */
    int64_t last_offset;
    int64_t timestamp;            /* the batch's max timestamp */
} sp_pbatch_t;

/* What is known of one producer id (Kafka's ProducerStateEntry). */
typedef struct sp_pentry {
    int64_t producer_id;
    int16_t epoch;                /* -1: none yet */
    int32_t coordinator_epoch;    /* of the last marker, -1 */
    int64_t last_timestamp;       /* of the last batch or marker, -1 */
    int64_t txn_first_offset;     /* open transaction here, -1 if none */
    int nbatches;
    sp_pbatch_t batches[SP_PSTATE_BATCHES]; /* oldest first (invariant 1) */
} sp_pentry_t;

/* Whose batch it is (Kafka's AppendOrigin). */
typedef enum sp_pstate_origin {
    SP_PSTATE_CLIENT,             /* a Produce: epoch, sequence and duplicates */
    SP_PSTATE_COORDINATOR,        /* the broker's own writers: the epoch only */
    SP_PSTATE_REPLAY,             /* recovery (later: replication): no checks */
} sp_pstate_origin_t;

/* The verdict on a batch before it is appended. */
typedef struct sp_pverdict {
    int16_t error;                /* Kafka error code, 0 */
    bool duplicate;               /* a retry of an appended batch: */
    int64_t dup_first, dup_last;  /*   its offsets */
    int64_t dup_timestamp;        /*   and max timestamp */
    char message[200];            /* Kafka's text for error_message */
} sp_pverdict_t;

/* A transaction closed by a marker (Kafka's CompletedTxn). */
typedef struct sp_completed_txn {
    int64_t producer_id;
    int64_t first_offset;         /* its first batch here */
    int64_t last_offset;          /* the marker */
    bool aborted;
    int64_t last_stable_offset;   /* the LSO once it is stable (for the txn index) */
} sp_completed_txn_t;

typedef struct sp_pstate sp_pstate_t;

/* An empty state; NULL when out of memory.  'label' ("topic-N") is for
 * messages and copied. */
sp_pstate_t *sp_pstate_new(const char *label);
void sp_pstate_free(sp_pstate_t *s);

/*
 * Judges the batch whose header is h (already validated as a batch) and
 * whose bytes are batch[0..len), as origin sends it, before its append at
 * 'offset' (for messages).  Fills *v: duplicate, an error, or neither
 * (append it, then sp_pstate_update).  Batches without a producer id
 * always pass.
 */
void sp_pstate_check(const sp_pstate_t *s, const sp_batch_hdr_t *h, const uint8_t *batch, size_t len,
                     sp_pstate_origin_t origin, int64_t offset, sp_pverdict_t *v);

/*
 * KIP-890's verification guard (Kafka's VerificationStateEntry /
 * VerificationGuard): before a producer's transactional batch that would
 * open its transaction on this partition is checked with the transaction
 * coordinator, sp_pstate_verify_begin hands out a guard (never 0) for
 * (producer_id, epoch); a marker of that producer clears it, and so does
 * the append that opens the transaction.  sp_pstate_check_guarded is
 * sp_pstate_check that also refuses (INVALID_TXN_STATE) such an opening
 * batch unless 'guard' is still the producer's: a transaction aborted
 * between the coordinator's answer and the append cannot be reopened by
 * a late batch (a hanging transaction).  Guards are forgotten with
 * their producer's expiry.
 */
uint64_t sp_pstate_verify_begin(sp_pstate_t *s, int64_t producer_id, int16_t epoch, int64_t now_ms);
void sp_pstate_check_guarded(const sp_pstate_t *s, const sp_batch_hdr_t *h, const uint8_t *batch, size_t len,
                             sp_pstate_origin_t origin, int64_t offset, uint64_t guard, sp_pverdict_t *v);

/*
 * Records an appended batch (h->base_offset already its offset).  A
 * marker that closes a transaction fills *done and returns 1; otherwise 0;
 * -1 when out of memory (the state is then unchanged) or a marker cannot
 * be read.  A batch without a producer id changes nothing but the end.
 */
int sp_pstate_update(sp_pstate_t *s, const sp_batch_hdr_t *h, const uint8_t *batch, size_t len,
                     sp_completed_txn_t *done);

/* The offset after the last batch recorded (or loaded from a snapshot). */
int64_t sp_pstate_end(const sp_pstate_t *s);
/* Sets it (a log that starts past every batch: a fresh or emptied log). */
void sp_pstate_set_end(sp_pstate_t *s, int64_t end);

/* The high watermark moved: transactions whose markers are below it
 * become stable. */
void sp_pstate_on_hw(sp_pstate_t *s, int64_t hw);
/* The lowest first offset of an open or not yet stable transaction, or -1. */
int64_t sp_pstate_first_unstable(const sp_pstate_t *s);

/* Forgets producers idle for expiration_ms (by their last batch's
 * timestamp, as Kafka) that have no open transaction.  Returns how many. */
int sp_pstate_expire(sp_pstate_t *s, int64_t now_ms, int64_t expiration_ms);

/* Producers known, and a visit of each (DescribeProducers, tests). */
int sp_pstate_count(const sp_pstate_t *s);
void sp_pstate_each(const sp_pstate_t *s, void (*fn)(const sp_pentry_t *e, void *ctx), void *ctx);
/* The entry of producer_id, or NULL (borrowed until the next change). */
const sp_pentry_t *sp_pstate_get(const sp_pstate_t *s, int64_t producer_id);

/* ---- snapshot files ------------------------------------------------------ */

/*
 * Writes <dir>/<sp_pstate_end>.snapshot (tmp file, then rename; fsync'ed
 * when sync).  0, or -errno (nothing left behind but the old files).
 */
int sp_pstate_snapshot_write(const sp_pstate_t *s, const char *dir, bool sync);

/* The snapshot file's bytes (malloc'd; NULL when out of memory), and
 * writing them as <dir>/<offset>.snapshot: so that an owner may encode
 * under its lock and write outside it. */
uint8_t *sp_pstate_snapshot_encode(const sp_pstate_t *s, size_t *len);
int sp_pstate_snapshot_write_bytes(const char *dir, int64_t offset, const uint8_t *buf, size_t len, bool sync);

/*
 * Loads the newest readable snapshot of dir whose offset is <= max_offset
 * (the log's end after recovery), dropping producers expired at now_ms.
 * Snapshots above max_offset (a log cut by recovery) are deleted, and so
 * are damaged ones (logged).  Returns the offset loaded; -1 when dir had
 * no snapshot at all, -2 when it had some but none was usable (the state
 * is then empty; replay starts at the log start).
 */
int64_t sp_pstate_snapshot_load(sp_pstate_t *s, const char *dir, int64_t max_offset, int64_t now_ms,
                                int64_t expiration_ms);

/* The same, loading the newest readable snapshot at or below upto
 * (<= max_offset) and keeping the later ones: replay from an earlier
 * point (the partition re-adds aborted transactions past it). */
int64_t sp_pstate_snapshot_load_upto(sp_pstate_t *s, const char *dir, int64_t max_offset, int64_t upto,
                                     int64_t now_ms, int64_t expiration_ms);

/* Deletes snapshots below 'below', except the newest of all.  Returns how many. */
int sp_pstate_snapshot_prune(const char *dir, int64_t below);

/* Invariants (1)-(2); for asserts and tests. */
bool sp_pstate_check_invariants(const sp_pstate_t *s);

#endif
