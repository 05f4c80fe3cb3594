/*
 * segment.h - one log segment: <base>.log with its sparse <base>.index and
 * <base>.timeindex, Kafka's on-disk layout.
 *
 *   <base>.log        record batches, exactly as produced (base offset and
 *                     leader epoch patched), back to back
 *   <base>.index      8-byte entries  | u32 offset - base | u32 file position |
 *   <base>.timeindex  12-byte entries | i64 timestamp     | u32 offset - base |
 *
 * Index entries are sparse: one per index.interval.bytes of log, naming the
 * last offset of a batch and the position where that batch starts.  Time
 * index entries are added with them whenever the largest timestamp grew.
 * Indexes are derived data, rebuilt from the log when missing or suspect.
 *
 * The active segment keeps its entries in anonymous memory reserved for
 * segment.index.bytes (it never moves, so readers need no lock); the files
 * are written from it on roll and on close, trimmed to their entries, which
 * is how the entry count is known when a sealed segment is opened again
 * (read-only mapping).  Appends never touch index files: a full disk makes
 * them fail with an error, never a SIGBUS through a mapping.
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
 *      (recovery at start, or under the log lock for DeleteRecords/delete);
 *  (3) index offsets and positions are strictly increasing;
 *  (4) the segment stays alive (fds open, maps valid) while refs > 0.
 */
#ifndef SP_LOG_SEGMENT_H
#define SP_LOG_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_SEGMENT_NAME_DIGITS 20

typedef struct sp_segment {
    atomic_int refs;
    int64_t base_offset;
    int fd;                   /* .log, O_RDWR */
    int idx_fd, tidx_fd;
    uint8_t *idx;             /* mmap of .index, idx_cap bytes */
    uint8_t *tidx;
    size_t idx_cap, tidx_cap;
    _Atomic uint32_t nidx;    /* entries in .index */
    _Atomic uint32_t ntidx;
    _Atomic int64_t size;     /* bytes of valid batches in .log */
    int64_t next_offset;      /* offset after the last batch (log lock) */
    int64_t max_timestamp;    /* largest batch max timestamp, -1 if none */
    int64_t offset_of_max_ts;
    int64_t bytes_since_index;
    int64_t created_ms;       /* for segment.ms */
    bool sealed;              /* no longer the active segment */
    bool idx_writable;        /* indexes in anonymous memory (active, recovered) */
    size_t index_bytes;       /* segment.index.bytes at open */
    bool deleted;             /* files unlinked: close without trimming */
    char *path;               /* .log path; others derived */
} sp_segment_t;

/*
 * Opens (or creates, with create) the segment of base_offset in dir.
 * An active segment's index files are extended to index_bytes
 * (segment.index.bytes) so that entries can be appended in place.
 * For an existing sealed segment the entry counts come from the trimmed
 * index sizes; call sp_segment_recover() to rebuild instead.
 * Returns a segment with refs = 1, or NULL (errno, logged).
 */
sp_segment_t *sp_segment_open(const char *dir, int64_t base_offset, bool create, bool active,
                              size_t index_bytes);
void sp_segment_ref(sp_segment_t *s);
/* Drops a reference; the last one trims (unless deleted) and closes. */
void sp_segment_unref(sp_segment_t *s);

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
 * the batches (last offset 'last', largest timestamp max_ts at
 * offset_of_max_ts), then the new size. Log state lock held.
 */
int sp_segment_write(sp_segment_t *s, const uint8_t *data, size_t len, int64_t pos);
void sp_segment_commit(sp_segment_t *s, const uint8_t *data, size_t len, int64_t pos, int64_t last,
                       int64_t max_ts, int64_t offset_of_max_ts, int64_t index_interval);

/* Largest index entry with offset <= target: its position, or 0. */
int64_t sp_segment_index_lookup(const sp_segment_t *s, int64_t target);
/* Largest time index entry with timestamp <= ts: its offset, or base. */
int64_t sp_segment_time_lookup(const sp_segment_t *s, int64_t ts);

/*
 * Finds the file position of the first batch whose last offset >= target,
 * scanning batch headers from the index hint.  Reads below 'limit' bytes.
 * Returns the position (limit if none), or -1 on I/O error.
 */
int64_t sp_segment_find(const sp_segment_t *s, int64_t target, int64_t limit);

/*
 * Scans the whole file (full recovery) or, with from_index, only from the
 * last index entry (after a clean shutdown), validating every batch
 * (length, CRC-32C, magic, increasing offsets).  Truncates a torn or
 * corrupt tail at the last valid batch and rebuilds what it scanned of the
 * indexes.  Start-up only.  Returns bytes truncated (>= 0) or -1 on I/O
 * error; *batches counts the batches checked.
 */
int64_t sp_segment_recover(sp_segment_t *s, bool from_index, int64_t index_interval,
                           int64_t *batches);

/* Seals the active segment: trims index files to their entries. */
int sp_segment_seal(sp_segment_t *s);
/* Truncates everything at and after offset (DeleteRecords never does this;
 * recovery and follower truncation will).  Log lock held. */
int sp_segment_truncate_to(sp_segment_t *s, int64_t offset);
/* fdatasync of .log (indexes are rebuilt after a crash, so not synced). */
int sp_segment_sync(sp_segment_t *s);
/* Unlinks the three files (the segment stays usable until its last unref). */
void sp_segment_unlink(sp_segment_t *s);

#endif
