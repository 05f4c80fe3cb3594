/*
 * metalog.h - the metadata log behind one interface.
 *
 * The metadata of a Spool cluster is a log of Kafka's metadata records
 * (controller.h) plus a snapshot of a whole image that lets older records
 * go.  Where that log lives is this interface's business:
 *
 *   local   (metalog_local.c) one node: <log.dirs[0]>/__cluster_metadata-0,
 *           an ordinary partition log (log/plog.h), fsynced per write,
 *           with <offset>-0000000000.checkpoint snapshot files beside it;
 *   etcd    (later, issue "A cluster of brokers"; notes/coordination.md)
 *           a key range ordered by sequence number, appended only by the
 *           elected controller with a compare-and-swap on the tail, and a
 *           snapshot key.
 *
 * Who calls what: every broker reads (snapshot_load, replay: following
 * the log, cluster/meta_publisher.h); only the elected controller writes
 * (append, snapshot_save).  Offsets are the records' positions in the
 * log, as Kafka's metadata offsets: a snapshot "up to N" covers records
 * below N, and replay goes on from N.
 *
 * Failure model: an append either made its records durable (0, with the
 * offset of the last one) or did not (-1); sp_metalog_failed then says
 * whether the log is still usable (a write that could not be made, e.g.
 * out of memory) or failed for good (an I/O error: the outcome of that
 * write is unknown until a restart reads the log back).  Damage found at
 * open or in a snapshot is never repaired by dropping records: the open
 * or load fails and the broker does not start.
 *
 * Threads: one user at a time (the metadata thread, or the main thread at
 * start and stop).
 */
#ifndef SP_CLUSTER_METALOG_H
#define SP_CLUSTER_METALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_record;
struct sp_logmgr;
typedef struct sp_metalog sp_metalog_t;

typedef int sp_metalog_record_fn(const struct sp_record *rec, void *ctx);

typedef struct sp_metalog_ops {
    /* Appends one record batch (patched in place: offsets) and makes it
     * durable before returning.  0 with *last_offset, or -1. */
    int (*append)(sp_metalog_t *m, uint8_t *batch, size_t len, int64_t *last_offset);
    /* Calls fn for every durable record from offset 'from' on, in order.
     * 0 at the end; -1 if a read failed or fn returned non-zero. */
    int (*replay)(sp_metalog_t *m, int64_t from, sp_metalog_record_fn *fn, void *ctx);
    /* The offset the next record gets. */
    int64_t (*end)(sp_metalog_t *m);
    /* The newest snapshot: 1 with *upto and its record batches in *bytes
     * (malloc'd, *len; may be empty), 0 if there is none (*upto = 0), -1
     * if it cannot be read (logged). */
    int (*snapshot_load)(sp_metalog_t *m, int64_t *upto, uint8_t **bytes, size_t *len);
    /* Stores a snapshot covering the records below upto (whole record
     * batches), durably; older snapshots and records below upto may then
     * be dropped.  0 or -1 (logged; the log keeps everything). */
    int (*snapshot_save)(sp_metalog_t *m, int64_t upto, const uint8_t *bytes, size_t len);
    /* Whether the log failed for good (see the failure model). */
    bool (*failed)(sp_metalog_t *m);
    /* Flushes, closes and frees m.  0, or -1 when it could not be closed
     * cleanly (the next start then checks it whole). */
    int (*close)(sp_metalog_t *m);
} sp_metalog_ops_t;

struct sp_metalog {
    const sp_metalog_ops_t *ops;
};

static inline int sp_metalog_append(sp_metalog_t *m, uint8_t *batch, size_t len, int64_t *last)
{
    return m->ops->append(m, batch, len, last);
}
static inline int sp_metalog_replay(sp_metalog_t *m, int64_t from, sp_metalog_record_fn *fn, void *ctx)
{
    return m->ops->replay(m, from, fn, ctx);
}
static inline int64_t sp_metalog_end(sp_metalog_t *m) { return m->ops->end(m); }
static inline int sp_metalog_snapshot_load(sp_metalog_t *m, int64_t *upto, uint8_t **bytes, size_t *len)
{
    return m->ops->snapshot_load(m, upto, bytes, len);
}
static inline int sp_metalog_snapshot_save(sp_metalog_t *m, int64_t upto, const uint8_t *bytes, size_t len)
{
    return m->ops->snapshot_save(m, upto, bytes, len);
}
static inline bool sp_metalog_failed(sp_metalog_t *m) { return m->ops->failed(m); }
static inline int sp_metalog_close(sp_metalog_t *m) { return m->ops->close(m); }

/*
 * The local metadata log of one node in <dir of logs' first log
 * directory>/__cluster_metadata-0, opened strictly (plog.h: damage is
 * refused, never truncated).  on_failed(ctx, err) is told once if an I/O
 * error fails it later (any thread).  NULL (logged) if it cannot be
 * opened or is damaged.
 */
sp_metalog_t *sp_metalog_open_local(struct sp_logmgr *logs, const char *log_dir,
                                    void (*on_failed)(void *ctx, int err), void *ctx);

#endif
