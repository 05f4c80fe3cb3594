/*
 * txnindex.h - a segment's aborted-transaction index, Kafka's .txnindex
 * (TransactionIndex, AbortedTxn): one entry per transaction aborted by a
 * marker in the segment, in marker order, so that a read_committed Fetch
 * can name the aborted transactions of the range it serves.
 *
 *   <base>.txnindex   34-byte entries, big-endian, no header:
 *
 *   +---------+-------------+--------------+-------------+--------------------+
 *   | version | producer_id | first_offset | last_offset | last_stable_offset |
 *   | int16=0 | int64       | int64        | int64       | int64              |
 *   +---------+-------------+--------------+-------------+--------------------+
 *     first_offset: the transaction's first batch in this partition;
 *     last_offset: its ABORT marker (in this segment);
 *     last_stable_offset: the partition's LSO once the transaction is stable
 *     (what lets a search stop early: sp_txnindex_collect).
 *
 * The file is created with the first entry (as Kafka's, lazily); a segment
 * without one has no aborted transaction.  Entries are appended with
 * write(2), unsynced; sp_txnindex_sync makes them durable (the flush
 * thread, before the log's recovery point passes the segment's data).
 * The whole index is also kept in memory (aborted transactions are rare),
 * so reads never touch the file.
 *
 * States:
 *
 *   CLEAN --append--> DIRTY --sync--> CLEAN          (any) --unlink--> DELETED
 *
 * | transition      | function            |
 * |-----------------|---------------------|
 * | CLEAN -> DIRTY  | sp_txnindex_append  |
 * | DIRTY -> CLEAN  | sp_txnindex_sync    |
 * | any -> DELETED  | sp_txnindex_unlink  |
 *
 * A failed write leaves the file as it was (a partial entry is cut away)
 * and the memory unchanged.
 *
 * Threads: any; one mutex inside.  Appends come one at a time in offset
 * order (the owner's append lock), reads from any thread, sync from the
 * flush thread.
 *
 * Invariants:
 *  (1) entries' last offsets are strictly increasing, inside the segment
 *      (>= base), and first_offset <= last_offset;
 *  (2) the file holds the first 'synced' entries durably and the rest
 *      written or not (after a crash: a prefix, maybe a partial entry).
 */
#ifndef SP_LOG_TXNINDEX_H
#define SP_LOG_TXNINDEX_H

#include <stdbool.h>
#include <stdint.h>

#define SP_TXNINDEX_ENTRY 34

/* One aborted transaction (Kafka's AbortedTxn). */
typedef struct sp_aborted_txn {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset;          /* the ABORT marker */
    int64_t last_stable_offset;
} sp_aborted_txn_t;

/* A growable list of them (collect's output; free with sp_aborted_list_free). */
typedef struct sp_aborted_list {
    sp_aborted_txn_t *v;
    int n, cap;
} sp_aborted_list_t;

void sp_aborted_list_free(sp_aborted_list_t *l);
/* Appends a copy of e.  0, or -1 (out of memory; l unchanged). */
int sp_aborted_list_push(sp_aborted_list_t *l, const sp_aborted_txn_t *e);

typedef struct sp_txnindex sp_txnindex_t;

/*
 * Opens the index of the segment at base_offset whose .txnindex is path
 * (copied), loading its entries if the file exists.  A file that is not
 * whole entries, or whose entries break invariant (1) or have another
 * version, is damaged: its valid prefix is kept and *damaged set, with
 * *why (static text); the caller decides (the owner rebuilds it).  NULL
 * when out of memory or the file cannot be read (errno set).
 */
sp_txnindex_t *sp_txnindex_open(const char *path, int64_t base_offset, bool *damaged, const char **why);
void sp_txnindex_free(sp_txnindex_t *t);

/* Appends e (invariant (1) checked: -EINVAL otherwise), creating the file
 * if needed.  0 or -errno (nothing changed). */
int sp_txnindex_append(sp_txnindex_t *t, const sp_aborted_txn_t *e);
/* Whether an entry for the same producer, first and last offsets is there. */
bool sp_txnindex_has(sp_txnindex_t *t, const sp_aborted_txn_t *e);
/* Entries in memory. */
int sp_txnindex_count(sp_txnindex_t *t);
/* Copy of entry i (0 <= i < count); false if out of range. */
bool sp_txnindex_get(sp_txnindex_t *t, int i, sp_aborted_txn_t *out);

/*
 * Kafka's TransactionIndex.collectAbortedTxns: adds to out every entry
 * with last_offset >= fetch_offset and first_offset < upper_bound, in
 * order, and returns 1 when the search is complete (an entry's
 * last_stable_offset >= upper_bound: no later segment can hold one that
 * overlaps), 0 when the next segment must be searched too, -1 when out of
 * memory.
 */
int sp_txnindex_collect(sp_txnindex_t *t, int64_t fetch_offset, int64_t upper_bound, sp_aborted_list_t *out);

/* Drops the entries whose marker is at or past offset (recovery cut the
 * log there), in memory and in the file.  0 or -errno. */
int sp_txnindex_truncate(sp_txnindex_t *t, int64_t offset);
/* Rewrites the file with the entries in memory (after a damaged one was
 * found: the valid prefix), synced.  0 or -errno. */
int sp_txnindex_rewrite(sp_txnindex_t *t);
/* fdatasync of the file if entries were written since the last sync.
 * 0 or -errno (then it stays dirty; the caller fails the log). */
int sp_txnindex_sync(sp_txnindex_t *t);
/* Unlinks the file (entries stay readable in memory). */
void sp_txnindex_unlink(sp_txnindex_t *t);
/* Renames the file (if it exists) to path, which it takes in every case.
 * 0 or -errno. */
int sp_txnindex_rename(sp_txnindex_t *t, char *path);

/* Encoding of one entry (tests, tools). */
void sp_txnindex_encode(const sp_aborted_txn_t *e, uint8_t out[SP_TXNINDEX_ENTRY]);

#endif
