/*
 * plog_internal.h - the fields of a partition log, for log/ alone.
 *
 * plog.c owns them (plog.h documents the invariants); the log manager
 * links logs into its flush queue through flush_next/flush_queued (under
 * its own lock) and reads dir.  Everyone else uses plog.h's functions;
 * white-box unit tests of the log may include this file.
 */
#ifndef SP_LOG_PLOG_INTERNAL_H
#define SP_LOG_PLOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "log/plog.h"

struct sp_plog {
    pthread_mutex_t mu;
    pthread_mutex_t append_mu; /* serialises appends; taken before mu, held across the write */
    atomic_int refs;
    char *dir;
    char *topic;
    int32_t partition;
    sp_uuid_t topic_id;
    sp_log_config_t cfg;          /* mu */
    sp_fdcache_t *files;
    sp_plog_hooks_t hooks;
    sp_segment_t **segs;
    int nsegs, capsegs;
    int64_t leo;
    int64_t settled;              /* offset after the last batch whose appended hooks
                                   * have run (<= leo): a flush goes no further, so
                                   * what the owner writes in them (the .txnindex) is
                                   * durable before the data it belongs to */
    int64_t txn_rebuild_from;     /* fixed at open: see sp_plog_txn_rebuild_from */
    _Atomic int64_t hw;           /* as the owner published it (invariant 3) */
    int64_t log_start;
    int64_t flushed;
    int64_t unflushed;            /* records appended since the last flush */
    int64_t last_flush_ms;        /* monotonic */
    bool dir_dirty;               /* a file was created or removed since the last flush */
    bool deleted;
    sp_plog_state_t state;
    const char *fail_reason;      /* static text, once FAILED */
    struct sp_plog *flush_next;   /* flush queue link (flush thread's lock) */
    bool flush_queued;            /* on the flush thread's queue (the same lock; kept
                                   * apart from the fields under mu, so that no wider
                                   * load of those touches it) */
    pthread_rwlock_t lis_rw;      /* held (read) while the listener runs */
    sp_plog_listener_fn listener; /* lis_rw */
    void *listener_ctx;
    void *clean_info;             /* lis_rw: cleaner.h sp_plog_clean_info_fn */
    void *clean_ctx;
    _Atomic int64_t clean_horizon; /* earliest delete horizon the cleaner left, INT64_MAX */
    int leader_epoch;
    bool opened_clean;            /* the last stop was clean (fixed at open) */
    _Atomic bool owner_unclean;   /* the owner could not save its state: no clean close */
};

#endif
