/*
 * cleaner.h - log compaction of one partition log (Kafka's LogCleaner,
 * Cleaner and LogCleanerManager rules), for the cleaner threads of the
 * log manager (logmgr.c).
 *
 * A compacted log is split at its first dirty offset (the cleaner's
 * checkpoint: everything below was cleaned at least once):
 *
 *   | clean (cleaned before) | dirty: cleanable     | uncleanable ... active |
 *   log start          first dirty            first uncleanable        leo
 *
 * The first uncleanable offset is the lowest of: the active segment's
 * base, the high watermark, the flushed offset (the cleaner only rewrites
 * data on disk), the owner's first unstable offset (an open transaction),
 * and the base of the first segment younger than min.compaction.lag.ms;
 * rounded down to a segment base: whole segments only.  A log is cleaned
 * when dirty bytes / (clean + dirty bytes) > min.cleanable.dirty.ratio,
 * or its oldest dirty segment is older than max.compaction.lag.ms, or a
 * delete horizon it wrote has passed; the dirtiest goes first.
 *
 * One cleaning (sp_plog_clean):
 *  1. map: the latest offset of every key in the dirty section, into a
 *     bounded map (offset_map.h); when it fills up, the cleaning covers
 *     only what was mapped (the next one goes on from there);
 *  2. group: every segment below the end of the map, from the first,
 *     into runs of at most segment.bytes (and segment.index.bytes of
 *     index); each group is copied into one new segment
 *     <base>.log.cleaned, leaving out what Kafka leaves out: records with
 *     a newer value for their key, tombstones and transaction markers
 *     past their delete horizon, records of aborted transactions; batches
 *     keep their offsets, producer fields and codec (proto/batch.h
 *     sp_batch_filter), the last batch of every active producer stays
 *     (emptied if need be) so that idempotence survives;
 *  3. swap, Kafka's protocol: the new files are synced and renamed
 *     .cleaned -> .swap (the .log last), the segments they replace are
 *     renamed to .deleted (the .log first) and taken out of the log under
 *     its lock, the .swap files get their plain names; the replaced files
 *     are unlinked when their last reader lets go (segment.h
 *     sp_segment_delete_later).  A crash at any step is repaired at open
 *     by sp_clean_recover_dir: .cleaned files are dropped; a .log.swap
 *     replaces every .log whose base lies in [its base, its end) and gets
 *     its plain name; .deleted files are removed.  Either way the log
 *     holds, for each group, its old segments or the cleaned one.
 *
 * Threads: a cleaner thread; appends, reads, flushes and retention go on
 * meanwhile (the cleaner reads only sealed segments, which never change,
 * and swaps under the log's lock after checking that the group is still
 * there).  Nothing here is global.
 */
#ifndef SP_LOG_CLEANER_H
#define SP_LOG_CLEANER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log/offset_map.h"
#include "log/plog.h"

/* What the owner of a log (the partition) knows of a producer, for the
 * cleaner (Kafka's lastRecordsOfActiveProducers). */
typedef struct sp_producer_last {
    int64_t producer_id;
    int64_t last_data_offset;     /* its last batch's last offset; -1: only markers */
    int16_t epoch;
} sp_producer_last_t;

/* Asked once per cleaning: the first offset of a transaction still open
 * (INT64_MAX if none) and the active producers (*v malloc'd, the cleaner
 * frees it).  0, or -1 (the log is not cleaned now). */
typedef int (*sp_plog_clean_info_fn)(void *ctx, int64_t *first_unstable, sp_producer_last_t **v, int *n);

/* Sets (fn) or clears (NULL) what the cleaner asks; clearing waits for a
 * call in progress (as sp_plog_set_listener). */
void sp_plog_set_clean_info(sp_plog_t *l, sp_plog_clean_info_fn fn, void *ctx);

typedef struct sp_clean_candidate {
    int64_t first_dirty;          /* where mapping starts */
    int64_t uncleanable;          /* first uncleanable offset (a segment base) */
    int64_t clean_bytes, dirty_bytes;
    double ratio;                 /* dirty / (clean + dirty) */
    bool due;                     /* max.compaction.lag.ms or a delete horizon passed */
} sp_clean_candidate_t;

/* Whether l (compacted, OK) should be cleaned now: 1 with *c filled, 0
 * if not.  checkpoint: the first dirty offset the cleaner recorded (-1:
 * none).  Takes mu briefly; reads one batch header per dirty segment when
 * max.compaction.lag.ms is set.  Any thread. */
int sp_plog_clean_check(sp_plog_t *l, int64_t checkpoint, int64_t now_ms, sp_clean_candidate_t *c);

/* Steps of a cleaning where a test may stop it, leaving the files as a
 * kill -9 there would (sp_clean_opts.crash_after). */
enum {
    SP_CLEAN_STEP_CLEANED = 1,    /* .cleaned files written and synced */
    SP_CLEAN_STEP_SWAP,           /* renamed to .swap */
    SP_CLEAN_STEP_DELETED,        /* the old segments renamed to .deleted */
    SP_CLEAN_STEP_HALF_DELETED,   /* only the first old segment renamed */
    SP_CLEAN_STEP_DONE,           /* the .swap renamed: complete */
};

typedef struct sp_clean_opts {
    double io_bytes_per_sec;      /* log.cleaner.io.max.bytes.per.second; <= 0: no limit */
    size_t io_buffer_size;        /* log.cleaner.io.buffer.size (grows for a bigger batch) */
    int64_t now_ms;               /* wall clock: delete horizons */
    int crash_after;              /* tests: SP_CLEAN_STEP_* of the first group, 0: off */
    const atomic_bool *stop;      /* set: give up (shutdown) */
} sp_clean_opts_t;

typedef struct sp_clean_stats {
    int64_t end_offset;           /* the next first dirty offset (the checkpoint) */
    int64_t map_entries;          /* keys mapped */
    int64_t bytes_read, bytes_written;
    int64_t records_read, records_kept;
    int segments_in, segments_out;
    int64_t min_horizon;          /* earliest delete horizon left in the log, INT64_MAX */
    bool map_full;                /* the dirty section did not fit: more passes follow */
} sp_clean_stats_t;

/*
 * Cleans l as c says, with the map (cleared first).  Returns 0 with
 * *st filled; 1 when the log changed under the cleaner (deleted, failed,
 * a group's segments removed by retention) or o->stop was set: nothing
 * swapped for the groups not done (they stay as they were); -1 on an
 * error (I/O, a damaged batch: logged; the log is left as it was, its
 * cleaning should be paused).
 */
int sp_plog_clean(sp_plog_t *l, const sp_clean_candidate_t *c, sp_offset_map_t *map,
                  const sp_clean_opts_t *o, sp_clean_stats_t *st);

/*
 * At open, before the segments are loaded: finishes or undoes what a
 * cleaning interrupted by a crash left in dir (see the top).  Also removes
 * index files that have no .log (Kafka's LogLoader does).  0, or -1 on an
 * I/O error (logged).
 */
int sp_clean_recover_dir(const char *dir);

#endif
