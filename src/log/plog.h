/*
 * plog.h - a partition log: the ordered segments of one topic-partition,
 * its offsets, and the requests waiting on it.
 *
 *   <log.dir>/<topic>-<partition>/
 *       00000000000000000000.log  .index  .timeindex  (.txnindex)
 *       00000000000000052431.log  ...                (rolled segments)
 *       partition.metadata                           (topic id)
 *       leader-epoch-checkpoint                      (epoch 0 from offset 0)
 *
 * Offsets (all guarded by mu):
 *
 *   log_start <= flushed <= leo          hw <= leo
 *   |-- deleted --|-- on disk --|-- in page cache only --|
 *
 *  (1) log_start <= hw <= leo; offsets below log_start are not served;
 *  (2) every offset below 'flushed' has been fdatasync'ed, and so have the
 *      index files of every sealed segment below it (the recovery point:
 *      a crash never loses them, and recovery trusts those segments),
 *      except index files a full disk kept from being written: they stay
 *      dirty and are written at a later flush, and recovery, which checks
 *      the index files of the segments it trusts, rebuilds them if need be;
 *  (3) the log does not decide its high watermark: its owner (the
 *      partition, cluster/partition.h; the controller for the metadata
 *      log) publishes it with sp_plog_set_hw, from the offsets the log
 *      reports to its listener.  The log keeps that value only as a bound
 *      for retention, DeleteRecords, timestamp lookups and replay (as
 *      Kafka's UnifiedLog keeps the high watermark its Partition sets);
 *      reads take their bound from the caller;
 *  (4) segs[] is sorted by base offset; segs[nsegs-1] is the active one;
 *  (5) the listener (sp_plog_set_listener) hears of every change of leo,
 *      flushed or state, after mu is released, in no promised order
 *      (offsets only grow, so a listener keeps the largest it saw);
 *  (6) once state == SP_PLOG_FAILED nothing is appended, flushed or
 *      deleted, flushed never moves again, and every append and read
 *      gets SP_LOG_EFAILED.  A failed write or fsync is never
 *      retried into "durable": the kernel may have dropped the pages.
 *
 * States:
 *
 *     +----+  fdatasync/write error (sp_plog_fail)   +--------+
 *     | OK | --------------------------------------> | FAILED |
 *     +----+  damage found at open with valid data   +--------+
 *        |    after it (never truncated)                  |
 *        +----------- sp_plog_mark_deleted ---------> DELETED (flag)
 *
 * | transition     | function                                   |
 * |----------------|--------------------------------------------|
 * | OK -> FAILED   | sp_plog_fail (flush, append, read, open)   |
 * | any -> DELETED | sp_plog_mark_deleted                       |
 *
 * Threads: appends from I/O workers, flushes from the flush thread, reads
 * from I/O workers, retention and DeleteRecords from the housekeeping
 * thread and workers; all state changes under mu.  File reads happen
 * outside mu on referenced segments (segment.h invariant 2).  Appends are
 * ordered by append_mu (taken before mu): offsets are assigned under
 * both, the write into the active segment holds append_mu only (past the
 * published size, where no reader looks), and index, size and leo are
 * published under mu again.  Under mu there is no file I/O but the
 * creation of a rolled segment's .log (one open(2)); fsync, index writes
 * and unlinks happen outside it.  cfg is written under mu and read under
 * mu (an append snapshots it once, sp_plog_config for others).
 */
#ifndef SP_LOG_PLOG_H
#define SP_LOG_PLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "log/fdcache.h"
#include "log/segment.h"
#include "log/txnindex.h"
#include "proto/wire.h"

typedef struct sp_log_config {
    int64_t segment_bytes;        /* segment.bytes */
    int64_t segment_ms;           /* segment.ms */
    int64_t segment_index_bytes;  /* segment.index.bytes */
    int64_t index_interval_bytes; /* index.interval.bytes */
    int64_t flush_messages;       /* flush.messages (1 = durable) */
    int64_t flush_ms;             /* flush.ms */
    int64_t max_message_bytes;    /* max.message.bytes */
    bool log_append_time;         /* message.timestamp.type=LogAppendTime */
    bool compact;                 /* cleanup.policy contains compact */
    bool retention_delete;        /* cleanup.policy contains delete */
    int64_t retention_ms;         /* retention.ms */
    int64_t retention_bytes;      /* retention.bytes */
    double min_cleanable_ratio;   /* min.cleanable.dirty.ratio */
    int64_t min_compaction_lag_ms; /* min.compaction.lag.ms */
    int64_t max_compaction_lag_ms; /* max.compaction.lag.ms */
    int64_t delete_retention_ms;  /* delete.retention.ms */
    int64_t min_insync_replicas;  /* min.insync.replicas */
    int64_t timestamp_before_max_ms; /* message.timestamp.before.max.ms (a client's CreateTime) */
    int64_t timestamp_after_max_ms;  /* message.timestamp.after.max.ms */
    /* compression.type: 'producer' keeps a client's batch as sent (false);
     * otherwise batches are stored with 'codec' (SP_COMPRESSION_* of
     * proto/batch.h, 'uncompressed' = NONE), recompressed by the produce
     * handler before the append when the producer's codec differs. */
    bool recompress;
    int codec;
    int gzip_level;               /* compression.gzip.level (-1: zlib's default) */
    int lz4_level;                /* compression.lz4.level */
    int zstd_level;               /* compression.zstd.level */
} sp_log_config_t;

struct sp_plog;

/* What the owner of a log (the log manager, the metadata log) is told.
 * Both may be NULL.  Called without mu held, from any thread. */
typedef struct sp_plog_hooks {
    void (*kick)(void *ctx, struct sp_plog *l);        /* flush l soon */
    void (*failed)(void *ctx, struct sp_plog *l, int err); /* l went FAILED on an I/O error */
    void *ctx;
} sp_plog_hooks_t;

typedef enum sp_plog_state { SP_PLOG_OK, SP_PLOG_FAILED } sp_plog_state_t;

/* The log's offsets and state at one instant (taken under mu). */
typedef struct sp_log_offsets {
    int64_t log_start, hw, leo, flushed;
    bool durable;                 /* flush.messages = 1: acknowledged means flushed */
    bool failed, deleted;
} sp_log_offsets_t;

/* Told of every change of leo, flushed or state (invariant 5); runs
 * without mu, on the thread that made the change, and must not block. */
typedef void (*sp_plog_listener_fn)(void *ctx, struct sp_plog *l, const sp_log_offsets_t *o);

/* Opaque: only log/ sees the fields (log/plog_internal.h). */
typedef struct sp_plog sp_plog_t;

/* Its directory (fixed at open: no lock). */
const char *sp_plog_dir(const sp_plog_t *l);     /* <log.dir>/<topic>-<partition> */
/* Whether the log was opened after a clean stop (fixed at open). */
bool sp_plog_opened_clean(const sp_plog_t *l);
/* Bytes on disk over all segments (takes mu). */
int64_t sp_plog_size(sp_plog_t *l);

typedef struct sp_plog_open_opts {
    const char *dir, *topic;
    int32_t partition;
    sp_uuid_t topic_id;
    const sp_log_config_t *cfg;
    bool create;                  /* create the directory if missing */
    bool clean;                   /* the last stop was clean: check only the active tail */
    int64_t recovery_point;       /* after a crash: segments past it are checked */
    int64_t log_start;            /* from the checkpoint */
    bool strict;                  /* the metadata log: damage is fatal, see sp_plog_open */
    sp_fdcache_t *files;
    sp_plog_hooks_t hooks;
} sp_plog_open_opts_t;

/*
 * Creates the directory (fresh) or opens and recovers it.  Sealed
 * segments the recovery does not scan have their indexes checked and,
 * if in doubt, rebuilt from the log (never truncated).  A scanned segment
 * whose data ends early is
 *   - a torn tail when nothing valid follows: truncated there (and later
 *     segments dropped, as Kafka), after a crash or for trailing garbage;
 *   - damage when a valid batch still follows: never truncated; the log
 *     opens FAILED (reads and writes answer SP_LOG_EFAILED) and the
 *     file and position are logged.
 * strict (the metadata log): any damage of a cleanly stopped log, and
 * damage followed by valid data, make the open fail: the broker refuses
 * to start rather than lose metadata.  Returns the log with refs = 1, or
 * NULL (logged).
 */
sp_plog_t *sp_plog_open(const sp_plog_open_opts_t *o);
void sp_plog_ref(sp_plog_t *l);
void sp_plog_unref(sp_plog_t *l);

/*
 * What went wrong, in the log's own words.  The log knows nothing of
 * Kafka's error codes: the partition maps these once (sp_partition_*,
 * cluster/partition.c sp_log_err_kafka) for the handlers; the metadata
 * log and tests read them directly.
 */
typedef enum sp_log_err {
    SP_LOG_OK = 0,
    SP_LOG_EINVALID,              /* the validator refused a batch (its CRC, a record
                                   * rule): 'invalid' holds its verdict (proto/batch.h
                                   * speaks Kafka's codes: it is the wire format) */
    SP_LOG_ETOO_LARGE,            /* a batch above max.message.bytes */
    SP_LOG_ECORRUPT,              /* bytes that cannot be framed as batches: sent so,
                                   * or a damaged batch where a read stood */
    SP_LOG_EIO,                   /* this operation could not read or write (fds or
                                   * memory short); the log itself is still OK */
    SP_LOG_EFAILED,               /* the log is FAILED (invariant 6): offline */
    SP_LOG_EDELETED,              /* the log was deleted */
    SP_LOG_ERANGE,                /* an offset outside what the log holds */
    SP_LOG_EREFUSED,              /* the owner's check hook stopped an append */
} sp_log_err_t;

/* "EINVALID", ... for logs and tests. */
const char *sp_log_err_name(sp_log_err_t e);

typedef struct sp_append_result {
    sp_log_err_t err;
    int16_t invalid;              /* err == SP_LOG_EINVALID: proto/batch.h's verdict */
    int64_t base_offset;
    int64_t log_append_time;      /* -1 unless LogAppendTime */
    int64_t log_start;
    int64_t last_offset;
    const char *message;          /* for error_message, static text */
} sp_append_result_t;

/*
 * Validates and appends the record batches in records[0..len) (a produce
 * request's partition data, patched in place: base offsets, leader epoch,
 * LogAppendTime).  All batches are appended or none.  Each batch is parsed
 * once: validation yields a plan (sizes, offsets, timestamps) that offset
 * assignment and indexing reuse.  I/O worker thread (or an internal
 * writer's thread).
 * 'origin' is how the batches are judged (borrowed for the call): NULL for
 * the broker's own writers (the group coordinator, the metadata log, a
 * transaction coordinator's markers: control batches allowed, keys required
 * on compacted topics); a client's Produce passes its options whole
 * (from_client, keys, timestamp bounds, where record errors go; see
 * proto/batch.h).
 */
struct sp_batch_validate_opts;
struct sp_batch_hdr;

/*
 * What the owner of a log does inside an append, in the append's order
 * (the partition keeps its producer state this way, txn/producer_state.h):
 *   check     after the batches were validated, before offsets are
 *             assigned, for each batch: 'offset' is where it would go.
 *             Non-zero stops the append: nothing is written and the
 *             result is SP_LOG_EREFUSED (the owner keeps its own verdict
 *             in ctx).
 *   appended  after the append was published, for each batch, with its
 *             offsets patched in; rolled_at is the base offset of the
 *             segment this append rolled to (first batch only), or -1.
 * Both run under the log's append lock and without mu, so appends reach
 * the owner one at a time and in offset order; they may do file I/O (a
 * snapshot at a roll) but must not call into this log's appends.
 */
typedef struct sp_append_hooks {
    int (*check)(void *ctx, const uint8_t *batch, size_t len, const struct sp_batch_hdr *h, int64_t offset);
    void (*appended)(void *ctx, const uint8_t *batch, size_t len, const struct sp_batch_hdr *h,
                     int64_t rolled_at);
    void *ctx;
} sp_append_hooks_t;

void sp_plog_append_from(sp_plog_t *l, uint8_t *records, size_t len, int64_t now_ms,
                         const struct sp_batch_validate_opts *origin, const sp_append_hooks_t *hooks,
                         sp_append_result_t *res);

/* An append by one of the broker's own writers. */
static inline void sp_plog_append(sp_plog_t *l, uint8_t *records, size_t len, int64_t now_ms,
                                  sp_append_result_t *res)
{
    sp_plog_append_from(l, records, len, now_ms, NULL, NULL, res);
}

typedef struct sp_read_result {
    sp_log_err_t err;
    int64_t log_start, leo;
    sp_segment_t *seg;            /* referenced and its file pinned; NULL if no data */
    int fd;                       /* seg's .log, valid until sp_read_result_release */
    int64_t pos;
    int32_t len;
} sp_read_result_t;

/*
 * Finds the bytes to serve from offset: whole batches below max_offset
 * (the caller's bound: the high watermark for consumers), at most
 * max_bytes unless min_one (then at least the first batch, whatever its
 * size, as Kafka's rule for the first partition with data).  One segment
 * per call; an offset in a gap between segments (a segment missing) is
 * served from the next one, as Kafka does.  A damaged batch header at the
 * read position answers SP_LOG_ECORRUPT, an unreadable file SP_LOG_EIO
 * or, on an I/O error, SP_LOG_EFAILED (logged once per segment).  The caller reads
 * res->fd at [pos, pos+len) and calls sp_read_result_release.
 */
void sp_plog_read(sp_plog_t *l, int64_t offset, int64_t max_offset, int32_t max_bytes, bool min_one,
                  sp_read_result_t *res);
void sp_read_result_release(sp_read_result_t *res);
/* A segment of a read, kept (ref + pin) beyond the read, e.g. while a
 * response is sent; sp_segment_release drops both. */
void sp_segment_hold(sp_segment_t *s);
void sp_segment_release(void *seg);

/* The log's offsets and state at one instant (takes mu). */
void sp_plog_offsets(sp_plog_t *l, sp_log_offsets_t *out);
/* A copy of the log's settings (takes mu). */
void sp_plog_config(sp_plog_t *l, sp_log_config_t *out);
/* Applies new settings (takes mu). */
void sp_plog_set_config(sp_plog_t *l, const sp_log_config_t *cfg);

/* Offsets for ListOffsets: first record with timestamp >= ts (offset -1
 * if none), and the record with the largest timestamp below hw. */
sp_log_err_t sp_plog_offset_for_time(sp_plog_t *l, int64_t ts, int64_t *offset, int64_t *found_ts);
void sp_plog_max_timestamp(sp_plog_t *l, int64_t *offset, int64_t *ts);

/* One segment as ListOffsets v0 sees it (Kafka's legacyFetchOffsetsBefore). */
typedef struct sp_seg_stat {
    int64_t base_offset;
    int64_t size;
    int64_t mtime_ms;             /* the .log file's last modification */
} sp_seg_stat_t;

/* The segments, oldest first, at most max of them; returns how many the
 * log has (-1 if gone).  The files are stat'ed outside mu. */
int sp_plog_segment_stats(sp_plog_t *l, sp_seg_stat_t *out, int max);

/*
 * Calls fn(record, ctx) for every record from offset 'from' (or the log
 * start, if later) up to the high watermark, in order: how internal logs
 * (metadata, __consumer_offsets) are replayed.  Returns 0 at the end, or
 * -1 if a read or a batch fails (what was read before stays applied).
 */
struct sp_record;
int sp_plog_scan(sp_plog_t *l, int64_t from, int (*fn)(const struct sp_record *rec, void *ctx),
                 void *ctx);

/*
 * Calls fn(ctx, batch, len, hdr) for every batch whose last offset is at
 * or past 'from' (from the log start, if later) up to the log end, in
 * order, control batches included: how the partition rebuilds its
 * producer state after the newest snapshot.  Reads at most 1 MiB at a
 * time.  Returns 0 at the end, or -1 when a read fails, a batch cannot be
 * framed, or fn returns non-zero.
 */
int sp_plog_scan_batches(sp_plog_t *l, int64_t from,
                         int (*fn)(void *ctx, const uint8_t *batch, size_t len, const struct sp_batch_hdr *h),
                         void *ctx);

/* Retention (cleanup.policy=delete): deletes the oldest sealed segments
 * whose newest record is older than retention.ms, or while the log is
 * above retention.bytes; only segments wholly below the high watermark.
 * Files are renamed .deleted outside mu and unlinked when the last reader
 * of the segment lets go.  The log start moves to the first segment
 * kept.  Housekeeping thread.  Returns the number of segments deleted. */
int sp_plog_retention(sp_plog_t *l, int64_t now_ms);

/* DeleteRecords: moves log_start to offset (<= hw; -1 = hw), deletes
 * whole segments below it.  SP_LOG_OK with *new_start, or why not. */
sp_log_err_t sp_plog_delete_records(sp_plog_t *l, int64_t offset, int64_t *new_start);

/* The owner's high watermark (invariant 3); any thread, no lock. */
void sp_plog_set_hw(sp_plog_t *l, int64_t hw);
/* Sets (fn) or clears (NULL) the listener (invariant 5).  Clearing waits
 * for a call in progress, so the old ctx may be freed afterwards; never
 * call it from a listener or while holding a lock a listener takes. */
void sp_plog_set_listener(sp_plog_t *l, sp_plog_listener_fn fn, void *ctx);

/* Flush thread: syncs what is unflushed and the indexes of sealed
 * segments, advances flushed and tells the listener.  On any error the log goes FAILED (invariant 6).  Returns 0 or
 * -errno. */
int sp_plog_flush(sp_plog_t *l);
/* Whether a flush is due (flush.messages / flush.ms); mu not held. */
bool sp_plog_flush_due(sp_plog_t *l, int64_t now_mono_ms);
/* Clean close: writes and syncs the index files of every segment (the
 * active one included, with a final time entry), after a flush.  0, or
 * -1 if the log is FAILED or a write failed: no clean marker then. */
int sp_plog_close(sp_plog_t *l);
/* The owner could not save what it keeps beside the log (the partition's
 * producer snapshot at a stop): sp_plog_close then fails, so that the
 * next start is treated as after a crash.  Any thread. */
void sp_plog_mark_unclean(sp_plog_t *l);
/* Marks deleted (appends and reads answer UNKNOWN_TOPIC_OR_PARTITION),
 * tells the listener, unlinks nothing. */
void sp_plog_mark_deleted(sp_plog_t *l);
/* Puts the log in the FAILED state (invariant 6) and tells the owner
 * (hooks.failed) when err != 0 (an I/O error rather than damage).  Idempotent. */
void sp_plog_fail(sp_plog_t *l, const char *why, int err);

/* ---- aborted transactions (log/txnindex.h) ----
 *
 * The partition tells the log of every transaction aborted by a marker
 * (inside the append, from its appended hook); the log keeps them in the
 * .txnindex of the segment holding the marker, syncs them with that
 * segment's data (a flush never passes a batch whose appended hooks have
 * not run: plog_internal.h 'settled'), deletes them with it and, at open,
 * drops entries past the data recovery kept. */

/* Adds e to the .txnindex of the segment holding e->last_offset
 * (unless_present: not if an entry for the same producer and offsets is
 * there, for a replay).  Under the append lock (the owner's hook) or at
 * open.  0 or -errno (logged). */
int sp_plog_txn_append(sp_plog_t *l, const sp_aborted_txn_t *e, bool unless_present);

/* From which offset the owner must re-add the aborted transactions of
 * markers at open (replaying the log, sp_plog_txn_append with
 * unless_present): after a crash the recovery point (entries past it may
 * not have reached the disk), the base of a segment whose .txnindex was
 * damaged; INT64_MAX when nothing is missing.  Fixed at open. */
int64_t sp_plog_txn_rebuild_from(const sp_plog_t *l);

/* The aborted transactions a read_committed read of rr (done from
 * 'offset', rr possibly without bytes) must name, Kafka's
 * collectAbortedTransactions over [offset, upper bound), added to *out
 * (the caller frees it).  Any thread. */
sp_log_err_t sp_plog_aborted_txns(sp_plog_t *l, int64_t offset, const sp_read_result_t *rr,
                                  sp_aborted_list_t *out);

static inline bool sp_log_durable(const sp_log_config_t *c) { return c->flush_messages <= 1; }

#endif
