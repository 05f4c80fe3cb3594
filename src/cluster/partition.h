/*
 * partition.h - a topic-partition on this broker: its local log and the
 * replica state above it (Kafka's Partition, Redpanda's
 * cluster::partition), and the registry of them (Kafka's ReplicaManager's
 * partition map).
 *
 * Handlers and the coordinators append, read, wait and look up offsets
 * here; they never call the log (log/plog.h) and never take its locks.
 * The partition owns what is about replicas rather than files:
 *
 *   high watermark  what consumers may read and what acks=all waits for.
 *                   One replica: hw = the log's flushed offset on a
 *                   durable topic (flush.messages = 1: nothing is served
 *                   or acknowledged before it is on disk), its end offset
 *                   otherwise.  With followers it becomes the lowest end
 *                   offset in the ISR.  It only grows; the log hears of it
 *                   (sp_plog_set_hw) for retention and DeleteRecords.
 *   waiters         parked fetches (woken whenever hw moves) and acks=all
 *                   produces (completed once hw passes their last offset).
 *   errors          once the log failed or the partition was deleted every
 *                   waiter is woken with KAFKA_STORAGE_ERROR or
 *                   UNKNOWN_TOPIC_OR_PARTITION, and new ones at once.
 *   producers       txn/producer_state.h: checked and recorded inside each
 *                   append (the log's append hooks, under its append
 *                   lock, so in offset order): retries of recent batches
 *                   answered with their first offsets, sequence and epoch
 *                   errors; snapshotted at every roll and at a clean stop,
 *                   rebuilt at open from the newest snapshot and the log
 *                   after it.  Their open transactions bound the LSO;
 *                   transactions aborted by markers go to the log's
 *                   .txnindex (plog.h), re-added by that replay where
 *                   entries may be missing.
 *   (later)         leader epoch cache, ISR and follower offsets.
 *
 * How the high watermark moves: the log tells its listener (this
 * partition) of every change of its end or flushed offset, after its own
 * lock is released; the listener takes mu, raises hw, publishes it to the
 * log and wakes the waiters it satisfies.  Lock order: log locks are never
 * held when mu is taken, and nothing here calls into the log while holding
 * mu (except sp_plog_set_hw, an atomic store).  Waiters' wake functions run
 * under mu and must not block (they post to their worker).
 *
 * Threads: appends and reads from I/O workers and the coordinator threads;
 * hw moves on the thread that appended (page-cache topics) or on the flush
 * thread (durable topics).  The registry is changed by the metadata thread
 * and read by every thread (a read lock).
 */
#ifndef SP_CLUSTER_PARTITION_H
#define SP_CLUSTER_PARTITION_H

#include <stdbool.h>
#include <stdint.h>

#include "log/plog.h"
#include "proto/batch.h"

typedef struct sp_partition sp_partition_t;

/* Something waiting on a partition: a parked Fetch (woken every time hw
 * moves) or an acks=all Produce (once hw > offset).  wake(w, err) runs
 * once per event, under the partition's lock; err is a Kafka error code
 * when the partition went away or failed. */
typedef struct sp_waiter {
    struct sp_waiter *prev, *next;
    int64_t offset;               /* ack waiters: done once hw > offset */
    void (*wake)(struct sp_waiter *w, int err);
    bool linked;
} sp_waiter_t;

/* Who appends (Kafka's AppendOrigin). */
typedef enum sp_origin_kind {
    SP_ORIGIN_CLIENT,             /* a Produce: validated as a client's batch */
    SP_ORIGIN_COORDINATOR,        /* the broker's own writers: control batches allowed */
} sp_origin_kind_t;

typedef struct sp_append_origin {
    sp_origin_kind_t kind;
    /* client: where per-record errors go (Produce's record_errors); may be NULL */
    sp_record_error_fn *record_error;
    void *record_error_ctx;
    /* client: a transactional batch that opens its producer's transaction
     * here needs the guard of its verification (KIP-890,
     * sp_partition_verify_begin); txn_verify false: not required */
    bool txn_verify;
    uint64_t txn_guard;
} sp_append_origin_t;

/* How far a read may go (Kafka's FetchIsolation). */
typedef enum sp_isolation {
    SP_ISOLATION_HIGH_WATERMARK,  /* consumers, read_uncommitted */
    SP_ISOLATION_TXN_COMMITTED,   /* consumers, read_committed: the LSO (= hw until transactions) */
    SP_ISOLATION_LOG_END,         /* followers (later) */
} sp_isolation_t;

typedef struct sp_partition_read {
    int16_t error;                /* Kafka error code (data.err mapped) */
    int64_t hw, lso, log_start;
    sp_read_result_t data;        /* the bytes; sp_partition_read_release */
    /* SP_ISOLATION_TXN_COMMITTED without error: the transactions aborted in
     * the range read (Kafka's FetchDataInfo.abortedTransactions), in marker
     * order; empty when offset >= lso.  Freed by sp_partition_read_release. */
    bool has_aborted;
    sp_aborted_list_t aborted;
} sp_partition_read_t;

/* An append's outcome in Kafka's terms (the log's result mapped). */
typedef struct sp_append_outcome {
    int16_t error;                /* Kafka error code */
    const char *message;          /* for error_message, static text, or NULL */
    int64_t base_offset, last_offset;
    int64_t log_append_time;      /* -1 unless LogAppendTime */
    int64_t log_start;
} sp_append_outcome_t;

/* The one mapping of the log's errors to Kafka's codes (a batch the
 * validator refused keeps the validator's code, 'invalid'). */
int16_t sp_log_err_kafka(sp_log_err_t err, int16_t invalid);

/*
 * Validates and appends records[0..len) as origin sends them (patched in
 * place: offsets, leader epoch, LogAppendTime).  A client's batch is
 * judged by the topic's settings (timestamps, keys on compacted topics)
 * and rebuilt with the topic's compression.type when that names another
 * codec.  acks = -1 is refused with NOT_ENOUGH_REPLICAS when
 * min.insync.replicas cannot be met.  Returns true when *res is final;
 * false when acks = -1 must wait until hw passes res->last_offset:
 * the caller parks with sp_partition_wait_ack.
 */
bool sp_partition_append(sp_partition_t *p, uint8_t *records, size_t len, const sp_append_origin_t *origin,
                         int16_t acks, int64_t now_ms, sp_append_outcome_t *res);

/* Reads whole batches from offset within the isolation's bound (plog.h
 * sp_plog_read), with the partition's offsets at that instant, and for
 * read_committed the aborted transactions of the range (res->aborted).
 * The caller releases res (sp_partition_read_release, also after an
 * error). */
void sp_partition_read(sp_partition_t *p, int64_t offset, int32_t max_bytes, bool min_one,
                       sp_isolation_t iso, sp_partition_read_t *res);
void sp_partition_read_release(sp_partition_read_t *res);

/* Parks w (w->offset set) until hw > w->offset, or wakes it at once. */
void sp_partition_wait_ack(sp_partition_t *p, sp_waiter_t *w);
/* Parks w until hw moves (or the partition fails or goes away). */
void sp_partition_wait_fetch(sp_partition_t *p, sp_waiter_t *w);
/* Unlinks w if it is still parked (either kind). */
void sp_partition_unwait(sp_partition_t *p, sp_waiter_t *w);

/* ---- producers (txn/producer_state.h) ---- */

/* Kafka's defaults of producer.id.expiration.ms and
 * producer.id.expiration.check.interval.ms. */
#define SP_PRODUCER_ID_EXPIRATION_MS_DEFAULT 86400000
#define SP_PRODUCER_ID_CHECK_INTERVAL_MS_DEFAULT 600000

struct sp_pentry;
/* How long an idle producer is remembered, and how often that is checked
 * (on the next append after the interval). */
void sp_partition_set_producer_expiry(sp_partition_t *p, int64_t expiration_ms, int64_t check_interval_ms);
/* Visits every known producer (DescribeProducers); fn runs under the
 * partition's producer lock and must not call back into the partition. */
void sp_partition_producers(sp_partition_t *p, void (*fn)(const struct sp_pentry *e, void *ctx), void *ctx);

/* Starts KIP-890's verification of producer (id, epoch) here: the guard
 * its append then carries (txn/producer_state.h sp_pstate_verify_begin);
 * 0 when out of memory. */
uint64_t sp_partition_verify_begin(sp_partition_t *p, int64_t producer_id, int16_t epoch);
/* Whether producer (id, epoch) has a transaction open on this partition
 * (its transactional batches need no check with the coordinator). */
bool sp_partition_txn_open(sp_partition_t *p, int64_t producer_id, int16_t epoch);

/* Offsets at one instant: the log's, with the partition's hw. */
void sp_partition_offsets(sp_partition_t *p, sp_log_offsets_t *out);
int64_t sp_partition_hw(sp_partition_t *p);
/* The last stable offset: min(first unstable offset, hw) (read_committed's bound). */
int64_t sp_partition_lso(sp_partition_t *p);
/* A copy of the topic's settings for this partition. */
void sp_partition_config(sp_partition_t *p, sp_log_config_t *out);
/* ListOffsets: see sp_plog_offset_for_time / sp_plog_max_timestamp; 0 or a Kafka error. */
int16_t sp_partition_offset_for_time(sp_partition_t *p, int64_t ts, int64_t *offset, int64_t *found_ts);
void sp_partition_max_timestamp(sp_partition_t *p, int64_t *offset, int64_t *ts);
/*
 * ListOffsets v0 (Kafka's legacyFetchOffsetsBefore, for a consumer): up to
 * max offsets, newest first, from the segment base offsets (the log start
 * for the first) and the log end, each dated by its file's last
 * modification (the end: now): -1 from the newest, -2 the earliest only,
 * ts >= 0 from the newest dated at or before ts; offsets above the high
 * watermark become the high watermark.  *out is malloc'd (NULL when
 * empty).  The count, or -1 with *err a Kafka error.
 */
int sp_partition_legacy_offsets(sp_partition_t *p, int64_t ts, int32_t max, int64_t now_ms, int64_t **out,
                                int16_t *err);
/* DeleteRecords: offset <= hw (-1 = hw).  0 with *new_start, or a Kafka error. */
int16_t sp_partition_delete_records(sp_partition_t *p, int64_t offset, int64_t *new_start);
/* Replays every record below hw from 'from' (plog.h sp_plog_scan). */
int sp_partition_scan(sp_partition_t *p, int64_t from, int (*fn)(const struct sp_record *rec, void *ctx),
                      void *ctx);
/* Replays every batch below hw from 'from', control batches included
 * (plog.h sp_plog_scan_batches): how __consumer_offsets' transactional
 * batches and their markers are replayed.  fn gets the batch (CRC not
 * checked) and its header. */
int sp_partition_scan_batches(sp_partition_t *p, int64_t from,
                              int (*fn)(void *ctx, const uint8_t *batch, size_t len, const struct sp_batch_hdr *h),
                              void *ctx);
/* Bytes on disk. */
int64_t sp_partition_size(sp_partition_t *p);
const char *sp_partition_topic(const sp_partition_t *p);
int32_t sp_partition_index(const sp_partition_t *p);
/* The log directory holding it (its path), for DescribeLogDirs. */
const char *sp_partition_dir(const sp_partition_t *p);

/* A partition above log (its reference taken over), becoming the log's
 * listener; refs = 1.  The registry makes them; tests may too.  NULL when
 * out of memory (the log's reference is then the caller's again). */
sp_partition_t *sp_partition_new(sp_plog_t *log, const char *topic, int32_t index);
void sp_partition_ref(sp_partition_t *p);
void sp_partition_unref(sp_partition_t *p);

/* ---- the registry ---------------------------------------------------------- */

typedef struct sp_partitions sp_partitions_t;
struct sp_logmgr;

/* The registry of the partitions whose logs logs (not owned) holds. */
sp_partitions_t *sp_partitions_new(struct sp_logmgr *logs);
/* Drops every partition (after the log manager stopped: no listener runs). */
void sp_partitions_free(sp_partitions_t *r);

/* Opens (recovering as needed) or creates the log of topic-partition
 * (log/logmgr.h sp_logmgr_open_partition) and registers its partition.
 * Metadata thread or start-up.  0 or -1 (logged). */
int sp_partitions_open(sp_partitions_t *r, const char *topic, sp_uuid_t topic_id, int32_t partition,
                       const sp_log_config_t *cfg, bool fresh);
/* Unregisters a partition whose creation did not complete and removes
 * its new log.  Metadata thread. */
void sp_partitions_abandon(sp_partitions_t *r, const char *topic, int32_t partition);
/* Unregisters every partition of topic (their waiters get
 * UNKNOWN_TOPIC_OR_PARTITION) and deletes their logs.  Metadata thread. */
void sp_partitions_delete_topic(sp_partitions_t *r, const char *topic);
/* producer.id.expiration.ms and its check interval for partitions opened from now on. */
void sp_partitions_set_producer_expiry(sp_partitions_t *r, int64_t expiration_ms, int64_t check_interval_ms);
/* Applies new settings to every partition of topic. */
void sp_partitions_set_config(sp_partitions_t *r, const char *topic, const sp_log_config_t *cfg);
/* The partition, referenced (sp_partition_unref), or NULL.  Any thread. */
sp_partition_t *sp_partitions_get(sp_partitions_t *r, const char *topic, int32_t topic_len, int32_t partition);

#endif
