/*
 * logmgr.h - the partition logs of this broker, their directories, the
 * flush thread (group commit), the housekeeping thread (retention,
 * checkpoints, removal of deleted topics) and the per-directory
 * checkpoint files.
 *
 * Per log directory (Kafka's files):
 *   .kafka_cleanshutdown            present only between a clean stop and
 *                                   the next start: no recovery scan needed
 *   recovery-point-offset-checkpoint  per partition: offsets below are on disk
 *   log-start-offset-checkpoint     per partition: DeleteRecords' start
 *   replication-offset-checkpoint   per partition: high watermark
 *   cleaner-offset-checkpoint       per compacted partition: its first dirty
 *                                   offset (log/cleaner.h), after each cleaning
 *   <topic>-<p>/                    one partition log (plog.h)
 *   <topic>-<p>.<id>-delete/        a deleted partition, removed in the
 *                                   background by the housekeeping thread
 *   <topic>-<p>.<id>-stray/         a directory that matched no topic at
 *                                   start: set aside, never deleted
 * Checkpoint files: "0\n<count>\n<topic> <partition> <offset>\n...",
 * replaced atomically (fsutil.h).  A malformed one is ignored whole (and
 * logged): recovery then scans from offset 0, which is always safe.
 *
 * A directory goes offline (Kafka's log dir failure) when a write or
 * fsync of any log in it fails: every log in it goes FAILED (plog.h
 * invariant 6), its checkpoints are no longer written, and it gets no
 * clean-shutdown marker.  DescribeLogDirs reports it with
 * KAFKA_STORAGE_ERROR.
 *
 * Threads: lookups from any thread (read lock); creation and deletion from
 * the metadata thread; flushes on the flush thread only, so acks=all never
 * waits behind an unlink; retention, checkpoints and directory removal on
 * the housekeeping thread; compaction on the cleaner threads
 * (log.cleaner.threads, each with its own key map: log/cleaner.h), which
 * pick the dirtiest compacted log every log.cleaner.backoff.ms or at once
 * after a cleaning, one cleaner per log at a time.  Group commit: appends kick the flush thread,
 * which syncs every kicked log in one pass, so one pass covers many
 * requests and partitions.
 */
#ifndef SP_LOG_LOGMGR_H
#define SP_LOG_LOGMGR_H

#include <stdbool.h>

#include "log/fdcache.h"
#include "log/plog.h"

/* The log manager of one broker: an object, so that a test can run
 * several brokers (each with its own directories and threads) in one
 * process. */
typedef struct sp_logmgr sp_logmgr_t;

typedef struct sp_logmgr_opts {
    char *const *dirs;
    int ndirs;
    int64_t retention_check_ms;   /* log.retention.check.interval.ms */
    int64_t checkpoint_ms;        /* log.flush.offset.checkpoint.interval.ms */
    int64_t start_checkpoint_ms;  /* log.flush.start.offset.checkpoint.interval.ms */
    int max_open_files;           /* segment fds kept open (fdcache.h) */
    int cleaner_threads;          /* log.cleaner.threads (0: log.cleaner.enable=false) */
    int64_t cleaner_dedupe_bytes; /* log.cleaner.dedupe.buffer.size, shared by the threads */
    double cleaner_load_factor;   /* log.cleaner.io.buffer.load.factor */
    int64_t cleaner_io_buffer;    /* log.cleaner.io.buffer.size */
    double cleaner_io_bytes_per_sec; /* log.cleaner.io.max.bytes.per.second, all threads */
    int64_t cleaner_backoff_ms;   /* log.cleaner.backoff.ms */
} sp_logmgr_opts_t;

/* Opens the log directories: reads checkpoints, notes whether the last
 * stop was clean, removes the clean-shutdown marker, starts the flush and
 * housekeeping threads.  The manager, or NULL (logged). */
sp_logmgr_t *sp_logmgr_start(const sp_logmgr_opts_t *o);

/* Opens (recovering as needed) or creates the log of topic-partition and
 * registers it.  fresh (a topic being created): a directory already
 * there is set aside as -stray and a new log created.  Metadata thread or
 * start-up.  0 or -errno-like -1 (logged). */
int sp_logmgr_open_partition(sp_logmgr_t *m, const char *topic, sp_uuid_t topic_id, int32_t partition,
                             const sp_log_config_t *cfg, bool fresh);
/* Unregisters a partition opened by a creation that did not complete and
 * removes its (new, empty) directory.  Metadata thread. */
void sp_logmgr_abandon_partition(sp_logmgr_t *m, const char *topic, int32_t partition);
/* The registered log, with a reference (sp_plog_unref when done), or NULL. */
sp_plog_t *sp_logmgr_get(sp_logmgr_t *m, const char *topic, int32_t topic_len, int32_t partition);
/* Unregisters every partition of topic, fails their waiters, and renames
 * their directories for background removal.  Metadata thread. */
void sp_logmgr_delete_topic(sp_logmgr_t *m, const char *topic);
/* Sets aside (renames to <dir>.<id>-stray) partition directories that are
 * not in the keep list, once the metadata is loaded: data is never
 * deleted because metadata does not name it.  keep(topic, p) says. */
void sp_logmgr_sweep(sp_logmgr_t *m, bool (*keep)(const char *topic, int32_t partition, void *ctx), void *ctx);

/* Whether log directory i was stopped cleanly last time. */
bool sp_logmgr_was_clean(const sp_logmgr_t *m, int i);
/* Whether log directory i is offline after a storage failure. */
bool sp_logmgr_dir_offline(const sp_logmgr_t *m, int i);
/* Takes directory i offline (every log in it FAILED); the metadata log's
 * owner calls it when that log fails.  Any thread. */
void sp_logmgr_fail_dir(sp_logmgr_t *m, int i, const char *why);
/* The open-file cache every log of this broker uses. */
sp_fdcache_t *sp_logmgr_files(const sp_logmgr_t *m);

/* Asks the flush thread to flush l soon.  Any thread. */
void sp_logmgr_kick(sp_logmgr_t *m, sp_plog_t *l);

int sp_logmgr_dirs(const sp_logmgr_t *m, const char *const **dirs);

/* Stop: final flush of every log, index files, checkpoints and, per
 * directory where all of that succeeded, the clean-shutdown marker, in
 * that order.  clean = false (a start that failed half-way): no marker
 * anywhere, the next start recovers.  Frees m: no log of it may be used
 * afterwards (the partitions above them are dropped first). */
void sp_logmgr_shutdown(sp_logmgr_t *m, bool clean);

#endif
