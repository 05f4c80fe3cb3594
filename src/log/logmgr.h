/*
 * logmgr.h - the partition logs of this broker, their directories, the
 * flush thread (group commit) and the per-directory checkpoint files.
 *
 * Per log directory (Kafka's files):
 *   .kafka_cleanshutdown            present only between a clean stop and
 *                                   the next start: no recovery scan needed
 *   recovery-point-offset-checkpoint  per partition: offsets below are on disk
 *   log-start-offset-checkpoint     per partition: DeleteRecords' start
 *   replication-offset-checkpoint   per partition: high watermark
 *   <topic>-<p>/                    one partition log (plog.h)
 *   <topic>-<p>.<id>-delete/        a deleted partition, removed in the
 *                                   background by the flush thread
 * Checkpoint files: "0\n<count>\n<topic> <partition> <offset>\n...",
 * replaced atomically (fsutil.h).
 *
 * Threads: lookups from any thread (read lock); creation and deletion from
 * the metadata thread; flushes, checkpoints and directory removal on the
 * flush thread.  Group commit: appends kick the flush thread, which syncs
 * every kicked log in one pass, so one pass covers many requests and
 * partitions.
 */
#ifndef SP_LOG_LOGMGR_H
#define SP_LOG_LOGMGR_H

#include <stdbool.h>

#include "log/plog.h"

/* Opens the log directories: reads checkpoints, notes whether the last
 * stop was clean, removes the clean-shutdown marker, starts the flush
 * thread (which also applies retention every retention_check_ms,
 * log.retention.check.interval.ms).  0 or -1 (logged). */
int sp_logmgr_start(char *const *dirs, int ndirs, int64_t retention_check_ms);

/* Opens (recovering as needed) or creates the log of topic-partition and
 * registers it.  Metadata thread or start-up.  0 or -1. */
int sp_logmgr_open_partition(const char *topic, sp_uuid_t topic_id, int32_t partition,
                             const sp_log_config_t *cfg);
/* The registered log, with a reference (sp_plog_unref when done), or NULL. */
sp_plog_t *sp_logmgr_get(const char *topic, int32_t topic_len, int32_t partition);
/* Unregisters every partition of topic, fails their waiters, and renames
 * their directories for background removal.  Metadata thread. */
void sp_logmgr_delete_topic(const char *topic);
/* Applies new settings to every open partition of topic. */
void sp_logmgr_set_config(const char *topic, const sp_log_config_t *cfg);
/* Removes partition directories not in the keep list (deleted while the
 * broker was down), once the metadata is loaded.  keep(topic, p) says. */
void sp_logmgr_sweep(bool (*keep)(const char *topic, int32_t partition, void *ctx), void *ctx);

/* Whether log directory i was stopped cleanly last time. */
bool sp_logmgr_was_clean(int i);

/* Asks the flush thread to flush l soon.  Any thread. */
void sp_flusher_kick(sp_plog_t *l);

/* Partition count and total bytes per directory, for DescribeLogDirs. */
typedef struct sp_logdir_usage {
    const char *dir;
    int64_t total_bytes, usable_bytes;
} sp_logdir_usage_t;
int sp_logmgr_dirs(const char *const **dirs);
/* Bytes on disk of a partition log (sum of its segment sizes). */
int64_t sp_plog_size(sp_plog_t *l);

/* Clean stop: final flush of every log, checkpoints, index trimming and
 * the clean-shutdown marker, in that order. */
void sp_logmgr_shutdown(void);

#endif
