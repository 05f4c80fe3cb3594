/*
 * segment.h - one log segment: <base>.log with its sparse <base>.index and
 * <base>.timeindex, Kafka's on-disk layout.
 *
 *   <base>.log        record batches, exactly as produced (base offset and
 *                     leader epoch patched), back to back
 *   <base>.index      8-byte entries  | u32 offset - base | u32 file position |
 *   <base>.timeindex  12-byte entries | i64 timestamp     | u32 offset - base |
 *   <base>.txnindex   the transactions aborted by markers in this segment
 *                     (log/txnindex.h), created with its first entry
 *
 * Index entries are sparse: one per index.interval.bytes of log, naming the
 * last offset of a batch and the position where that batch starts.  Time
 * index entries are added with them whenever the largest timestamp grew,
 * and once more when the segment is sealed (its largest timestamp, as
 * Kafka's onBecomeInactiveSegment), so a sealed segment's last time entry
 * is its largest timestamp.  Indexes are derived data: checked when a
 * sealed segment is opened (sp_segment_check_indexes, Kafka's sanityCheck
 * and more) and rebuilt from the log on any doubt.
 *
 * Memory and files.  An active segment keeps its entries in anonymous
 * memory reserved for segment.index.bytes (it never moves, so readers need
 * no lock); appends never touch index files, so a full disk makes them fail
 * with an error, never a SIGBUS through a mapping.  Sealing is in memory
 * only (sp_segment_seal); the flush thread then writes both files and
 * fdatasyncs them (sp_segment_persist_indexes) before the log's recovery
 * point may pass the segment, and a clean shutdown does the same before
 * its marker.  A sealed segment opened at start maps its files read-only
 * and closes their fds.  The .log fd comes from the fd cache (fdcache.h):
 * every use pins it.
 *
 * Segment states:
 *
 *   ACTIVE --seal--> SEALED(dirty) --persist_indexes--> SEALED(clean)
 *      \                  \                                /
 *       +------------------+------- unlink ---> DELETED <-+
 *
 * | transition            | function                     |
 * |-----------------------|------------------------------|
 * | ACTIVE -> SEALED      | sp_segment_seal              |
 * | dirty -> clean        | sp_segment_persist_indexes   |
 * | any -> DELETED        | sp_segment_unlink            |
 *
 * Threads: the owning partition log serialises appends and truncation
 * under its lock.  Readers may read the file and the index entries below a
 * count they saw under that lock, without the lock: entries and bytes
 * below the published end never change (invariant 2).
 *
 * Invariants:
 *  (1) size is the file length the log believes; bytes past it are ignored;
 *  (2) entries below nidx/ntidx and file bytes below size are immutable
 *      until truncation, which happens only with no readers of those bytes
 *      (recovery at start);
 *  (3) index offsets and positions are strictly increasing; time index
 *      timestamps strictly increasing, offsets non-decreasing;
 *  (4) the segment stays alive (file, maps valid) while refs > 0;
 *  (5) a sealed segment with idx_dirty has entries its files do not hold
 *      yet; the log's recovery point never passes it (plog.c flush).
 */
#ifndef SP_LOG_SEGMENT_H
#define SP_LOG_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log/fdcache.h"
#include "log/txnindex.h"

#define SP_SEGMENT_NAME_DIGITS 20
#define SP_INDEX_ENTRY 8
#define SP_TIMEINDEX_ENTRY 12

typedef struct sp_segment {
    atomic_int refs;
    int64_t base_offset;
    sp_file_t log;            /* .log, through the fd cache */
    uint8_t *idx;             /* entries: anonymous memory or a read-only map */
    uint8_t *tidx;
    size_t idx_cap, tidx_cap; /* bytes of idx / tidx */
    _Atomic uint32_t nidx;    /* entries in .index */
    _Atomic uint32_t ntidx;
    _Atomic int64_t size;     /* bytes of valid batches in .log */
    int64_t next_offset;      /* offset after the last batch (log lock) */
    int64_t max_timestamp;    /* largest batch max timestamp, -1 if none */
    int64_t offset_of_max_ts;
    int64_t bytes_since_index;
    int64_t created_ms;       /* for segment.ms (wall clock, file mtime) */
    _Atomic bool sealed;      /* no longer the active segment */
    bool idx_writable;        /* entries in anonymous memory */
    _Atomic bool idx_dirty;   /* entries the files do not hold yet (inv. 5) */
    bool idx_bad_size;        /* an index file's size was not whole entries */
    size_t index_bytes;       /* segment.index.bytes at open */
    bool deleted;             /* files unlinked */
    _Atomic int64_t damaged_at; /* first damaged position a read met, -1 */
    char *path;               /* .log path (with suffix); others derived */
    char *stem;               /* <dir>/<base>, without extension */
    const char *suffix;       /* static: "" or ".cleaned", ".swap", ".deleted" */
    bool unlink_on_free;      /* the last unref unlinks the files (delete_later) */
    sp_txnindex_t *txn;       /* .txnindex, always open (its own lock) */
    const char *txn_damaged;  /* why the .txnindex was damaged at open, or NULL */
} sp_segment_t;

/*
 * Opens (or creates, with create) the segment of base_offset in dir, its
 * .log through cache fc.  An active segment's entries go to anonymous
 * memory (index_bytes, segment.index.bytes) loaded from its files if any;
 * a sealed one maps its files read-only (missing files: no entries).
 * Entry counts come from the file sizes: call sp_segment_check_indexes()
 * or sp_segment_recover() before trusting them.  Returns a segment with
 * refs = 1, or NULL (errno set, logged).
 */
sp_segment_t *sp_segment_open(const char *dir, int64_t base_offset, bool create, bool active,
                              size_t index_bytes, sp_fdcache_t *fc);
/* A new writable segment whose files carry 'suffix' (a static string,
 * e.g. ".cleaned": <base>.log.cleaned, <base>.index.cleaned, ...), as the
 * log cleaner writes its output; leftovers of that name are removed
 * first.  Written like an active segment, then sealed and persisted.
 * refs = 1, or NULL (logged). */
sp_segment_t *sp_segment_create_as(const char *dir, int64_t base_offset, const char *suffix,
                                   size_t index_bytes, sp_fdcache_t *fc);
/* Renames the segment's files to 'suffix' (static; "" = the plain
 * names), the .log first (log_first) or last, its fd staying valid
 * (fdcache.h sp_file_rename).  Missing index files are fine.  0 or
 * -errno (logged); a failure may leave some files renamed. */
int sp_segment_rename(sp_segment_t *s, const char *suffix, bool log_first);
/* The last sp_segment_unref unlinks the files (under whatever name they
 * have then): a segment replaced while readers hold it stays readable,
 * by fd or by reopening its path, until they let go. */
void sp_segment_delete_later(sp_segment_t *s);
void sp_segment_ref(sp_segment_t *s);
/* Drops a reference; the last one closes and frees (no file I/O). */
void sp_segment_unref(sp_segment_t *s);

/* The .log fd, pinned until sp_segment_unpin (fdcache.h); or -errno. */
int sp_segment_pin(sp_segment_t *s);
void sp_segment_unpin(sp_segment_t *s);

/*
 * Appending a run of validated batches (data, len) is two steps, so that
 * the write to the page cache runs outside the log's state lock:
 *
 * sp_segment_write: writes the bytes at pos (the segment's size) without
 * publishing them. Appends are serialised by the caller (the log's append
 * lock). Returns 0, or -errno with the file unchanged (a partial write is
 * truncated away).
 *
 * sp_segment_commit: publishes them: index entries per index_interval for
 * each batch (bs[i] = its size, last[i] its last offset, ts[i] its max
 * timestamp; nb batches), the largest timestamp max_ts at offset_of_max_ts,
 * then the new size.  Log state lock held.  Parses nothing.
 */
int sp_segment_write(sp_segment_t *s, const uint8_t *data, size_t len, int64_t pos);
void sp_segment_commit(sp_segment_t *s, int64_t pos, size_t len, int nb, const int32_t *bs,
                       const int64_t *last, const int64_t *ts, int64_t max_ts,
                       int64_t offset_of_max_ts, int64_t index_interval);
/* Whether the active segment's index (or time index) has no room for one
 * more entry: the log rolls then, as Kafka does (offsetIndex.isFull). */
bool sp_segment_index_full(const sp_segment_t *s);

/* Largest index entry with offset <= target: its position, or 0. */
int64_t sp_segment_index_lookup(const sp_segment_t *s, int64_t target);
/* The offset of the first index entry whose position is >= position, or
 * -1 (Kafka's OffsetIndex.fetchUpperBoundOffset: where a read_committed
 * fetch stops looking for aborted transactions).  Only Kafka's entries
 * count: ours for a segment's first batch (position 0) is skipped. */
int64_t sp_segment_index_upper(const sp_segment_t *s, int64_t position);
/* Largest time index entry with timestamp <= ts: its offset, or base. */
int64_t sp_segment_time_lookup(const sp_segment_t *s, int64_t ts);

/*
 * One reader of batch headers for every walk over a segment (fetch,
 * lookups by offset and time, index checks and rebuilds): headers come
 * through an 8 KiB window of the file, one pread per window, never past
 * 'limit'.  Each header is checked: a sane length inside the limit, magic
 * 2, offsets inside the segment and increasing.  Bad ones stop the walk
 * with SP_SEG_CORRUPT (and nothing after them is trusted).
 */
typedef struct sp_seg_batch {
    int64_t pos;              /* file position */
    int64_t size;             /* 12 + batchLength */
    int64_t base, last;       /* first and last offset */
    int64_t max_ts;
    int16_t attributes;
} sp_seg_batch_t;

#define SP_SEG_END 0
#define SP_SEG_BATCH 1
#define SP_SEG_IO (-1)
#define SP_SEG_CORRUPT (-2)

typedef struct sp_seg_reader {
    sp_segment_t *s;
    int fd;                   /* pinned by init, unpinned by done */
    int64_t limit, pos, prev_next;
    int64_t wpos;             /* file position of buf[0] */
    size_t wlen;
    uint8_t buf[8192];
} sp_seg_reader_t;

/* Starts at pos (a batch boundary), reading below limit.  0 or -errno. */
int sp_seg_reader_init(sp_seg_reader_t *r, sp_segment_t *s, int64_t pos, int64_t limit);
/* SP_SEG_BATCH with *b filled, SP_SEG_END at the limit, SP_SEG_IO, or
 * SP_SEG_CORRUPT (r->pos is then the damaged batch's position). */
int sp_seg_reader_next(sp_seg_reader_t *r, sp_seg_batch_t *b);
void sp_seg_reader_done(sp_seg_reader_t *r);

/*
 * The position of the first batch whose last offset >= target, walking
 * headers from the index hint, below limit.  Returns the position (limit
 * if none), SP_SEG_IO or SP_SEG_CORRUPT (*bad_pos set).
 */
int64_t sp_segment_find(sp_segment_t *s, int64_t target, int64_t limit, int64_t *bad_pos);

/*
 * Checks the indexes of a sealed segment opened from disk and walks the
 * log from the last index entry to its end: entry sizes whole, offsets
 * and positions increasing and inside the segment (offsets below
 * next_base, the next segment's base, or INT64_MAX), the last entry naming
 * the batch that really sits there, a time index for a non-empty log.
 * Sets next_offset and the largest timestamp from the walk.  Returns 0 if
 * the indexes can be trusted, else -1 with *why (static text); the caller
 * then rebuilds them (sp_segment_reindex).
 */
int sp_segment_check_indexes(sp_segment_t *s, int64_t next_base, const char **why);

/*
 * Rebuilds the indexes of a segment from a walk of its batch headers
 * (no CRC check, nothing truncated).  Returns the position where the walk
 * stopped: size if it read everything, earlier at a damaged header.
 * Marks the indexes dirty (written by sp_segment_persist_indexes).
 */
int64_t sp_segment_reindex(sp_segment_t *s, int64_t index_interval);

/*
 * Recovery check of a segment: validates every batch (length, CRC-32C,
 * magic, increasing offsets) from the last index entry (from_index, after
 * a clean shutdown) or from the start, rebuilding the index entries of
 * what it read.  Truncates nothing: res says where valid data ends and
 * whether it is a torn tail (nothing valid after it) or damage in the
 * middle (a valid batch still follows), for the caller to decide.
 * Start-up only.  0, or -1 on an I/O error.
 */
typedef struct sp_recover_result {
    int64_t batches;          /* batches checked */
    int64_t end;              /* position after the last valid batch */
    int64_t file_size;
    bool valid_after;         /* a valid batch exists past 'end' */
    bool index_past_end;      /* from_index: the index names data the file no longer has */
} sp_recover_result_t;
int sp_segment_recover(sp_segment_t *s, bool from_index, int64_t index_interval,
                       sp_recover_result_t *res);
/* Truncates the .log at pos (recovery, after sp_segment_recover). */
int sp_segment_truncate_at(sp_segment_t *s, int64_t pos);

/* Seals the active segment, in memory: no more appends, a final time
 * index entry for its largest timestamp, indexes marked dirty. */
void sp_segment_seal(sp_segment_t *s);
/* Before a clean close of the active segment: a final time index entry
 * and the indexes marked dirty, so that persisting writes them. */
void sp_segment_prepare_close(sp_segment_t *s);
/* Writes the index files from memory and fdatasyncs them, if dirty.
 * Flush thread or clean shutdown.  0, or -errno (they stay dirty). */
int sp_segment_persist_indexes(sp_segment_t *s);
/* fdatasync of .log.  0, or -errno. */
int sp_segment_sync(sp_segment_t *s);
/* Unlinks its files (the segment stays usable until its last unref). */
void sp_segment_unlink(sp_segment_t *s);

#endif
