/*
 * offsets.h - a group's committed offsets, and its commits not yet durable.
 *
 * Owns, per group, one committed offset per topic-partition (what
 * OffsetFetch shows) and the pending commits: written to
 * __consumer_offsets but not yet durable.  A pending commit becomes the
 * offset only once its write is (sp_offsets_settle), as Kafka's
 * pendingOffsetCommits; a lost write drops it.  A tombstone drops the
 * offset and the pending commits of its partition (they precede it in
 * the log).  The operations on offsets (OffsetCommit, OffsetFetch,
 * OffsetDelete, TxnOffsetCommit) and their expiry
 * (offsets.retention.minutes) are in offsets.c too, on top of this table.
 *
 * Transactional offsets (TxnOffsetCommit, Kafka's
 * pendingTransactionalOffsets): a transactional commit is staged like any
 * other, tagged with its producer id; once durable it becomes a PENDING
 * TRANSACTIONAL OFFSET (txn[]: one per producer id and partition, a later
 * commit of the same producer replacing it), never seen by OffsetFetch.
 * The producer's COMMIT or ABORT marker in __consumer_offsets ends it
 * (sp_offsets_txn_end): a commit makes it the offset unless a record
 * later in the log set the offset meanwhile (invariant 2: a plain commit
 * after the transactional one wins), an abort drops it.  A marker that
 * comes while the producer's commit is still being written is noted on
 * the staged commit (txn_end) and applied when the write settles.
 *
 *   TxnOffsetCommit --stage--> staged --durable--> txn[] --COMMIT--> offset
 *                                 |                  |                (if later
 *                                 +--lost--> dropped +--ABORT--> dropped  in the log)
 *                                                    +--tombstone--> dropped
 *
 * Threads: the groups' (group.h); no locks.
 *
 * Invariants:
 *  (1) at most one offset per topic-partition (sp_groups_check rule -6);
 *  (2) an offset's log_offset is the __consumer_offsets offset of the
 *      record that set it: a settled commit never replaces an offset set
 *      by a later record.
 */
#ifndef SP_GROUP_OFFSETS_H
#define SP_GROUP_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sp_offset {
    char *topic;                /* owned */
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;             /* bytes (may hold NULs), owned, never NULL once stored */
    int32_t metadata_len;
    int64_t commit_ts;
    int64_t log_offset;         /* of the record in __consumer_offsets that set it */
} sp_offset_t;

/* What became of a staged transactional commit's transaction while its
 * write was under way. */
enum { SP_TXN_OPEN, SP_TXN_COMMITTED, SP_TXN_ABORTED };

typedef struct sp_pending_commit {
    uint64_t seq;               /* the write it belongs to */
    int64_t producer_id;        /* a TxnOffsetCommit's, or -1 */
    int txn_end;                /* SP_TXN_*: its marker came during the write */
    sp_offset_t o;              /* topic and metadata owned */
} sp_pending_commit_t;

/* A pending transactional offset: durable, awaiting its marker. */
typedef struct sp_txn_offset {
    int64_t producer_id;
    sp_offset_t o;              /* log_offset: of its record */
} sp_txn_offset_t;

typedef struct sp_offsets {
    sp_offset_t *v;
    int n, cap;
    sp_pending_commit_t *pending; /* in the order they were written */
    int npending, cappending;
    sp_txn_offset_t *txn;       /* at most one per producer id and partition */
    int ntxn, captxn;
} sp_offsets_t;

/* The offset of topic (tlen bytes) / p, or NULL.  Borrowed: invalid after
 * the next put or drop. */
sp_offset_t *sp_offsets_find(const sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p);
/* Sets the offset of topic/p (copies topic and meta; null or empty meta
 * is stored as ""), written at log_offset of __consumer_offsets.
 * Nothing happens when out of memory. */
void sp_offsets_put(sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p, int64_t off,
                    int32_t epoch, const char *meta, int32_t mlen, int64_t ts, int64_t log_offset);
/* A tombstone of topic/p: drops its offset, its pending commits and its
 * pending transactional offsets (every producer's, as Kafka's replay of
 * a tombstone). */
void sp_offsets_drop(sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p);
/* Stages o (topic and metadata copied) as a commit of write seq, of
 * producer_id's transaction (TxnOffsetCommit) or -1.  0 or -1 (out of
 * memory). */
int sp_offsets_stage(sp_offsets_t *t, uint64_t seq, int64_t producer_id, const sp_offset_t *o);
/* Unstages the commit staged last (its record could not be built). */
void sp_offsets_unstage_last(sp_offsets_t *t);
/* Write seq ended: if durable (its last record at log_offset), its
 * commits become the offsets, in the order written (invariant 2), its
 * transactional ones pending transactional offsets (or what their
 * marker, come meanwhile, says); either way they are no longer pending. */
void sp_offsets_settle(sp_offsets_t *t, uint64_t seq, bool durable, int64_t log_offset);
/* Sets producer_id's pending transactional offset of topic/p (copies;
 * replaces the producer's earlier one), written at log_offset. */
void sp_offsets_put_txn(sp_offsets_t *t, int64_t producer_id, const char *topic, int32_t tlen, int32_t p,
                        int64_t off, int32_t epoch, const char *meta, int32_t mlen, int64_t ts, int64_t log_offset);
/* Whether topic/p has a transactional offset not yet ended: pending, or
 * being written (Kafka's openTransactions; require_stable). */
bool sp_offsets_txn_open(const sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p);
/* producer_id's marker: its pending transactional offsets become the
 * offsets (commit; each unless its partition's offset was set by a later
 * record) or are dropped (abort); its commits still being written are
 * marked so.  Returns how many offsets were ended. */
int sp_offsets_txn_end(sp_offsets_t *t, int64_t producer_id, bool commit);
/* Frees what t holds (t itself is the caller's). */
void sp_offsets_free(sp_offsets_t *t);

#endif
