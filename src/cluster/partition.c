/* partition.c - a partition above its local log, and the registry of them
 * (see partition.h). */
#include "cluster/partition.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/cleaner.h"
#include "log/logmgr.h"
#include "proto/gen/errors.h"
#include "txn/producer_state.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/tpmap.h"

struct sp_partition {
    atomic_int refs;
    sp_plog_t *log;               /* referenced */
    char *topic;
    int32_t index;
    char *label;                  /* "topic-N", for messages */
    pthread_mutex_t mu;
    _Atomic int64_t hw;           /* moves under mu; read without it */
    int err;                      /* mu: sticky, once failed or deleted */
    sp_waiter_t *fetch_waiters;   /* mu */
    sp_waiter_t *ack_waiters;     /* mu */
    bool listening;               /* the log's listener is set (registry's thread) */
    /* producers (txn/producer_state.h): changed inside appends (the log's
     * append lock orders them) and read by DescribeProducers, under ps_mu,
     * the innermost lock (taken under mu and under the append lock; nothing
     * is called with it held) */
    pthread_mutex_t ps_mu;
    sp_pstate_t *ps;
    _Atomic int64_t first_unstable; /* ps's, -1 if none: bounds the LSO */
    int64_t pid_expiration_ms;    /* producer.id.expiration.ms (ps_mu) */
    int64_t pid_check_interval_ms; /* producer.id.expiration.check.interval.ms */
    int64_t next_expiry_check;    /* monotonic ms (ps_mu) */
    int64_t txn_replay_from;      /* at open: aborted transactions of markers from here
                                   * on are re-added to the .txnindex (plog.h) */
};

/* ---- waiter lists (mu held) -------------------------------------------- */

static int clean_info(void *ctx, int64_t *first_unstable, sp_producer_last_t **v, int *n);

static void link_waiter(sp_waiter_t **head, sp_waiter_t *w)
{
    w->prev = NULL;
    w->next = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
    w->linked = true;
}

static void unlink_waiter(sp_waiter_t **head, sp_waiter_t *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

/* mu held: wakes every fetch waiter (they stay parked: a fetch re-reads
 * and unlinks itself when it answers). */
static void wake_fetchers(sp_partition_t *p, int err)
{
    for (sp_waiter_t *w = p->fetch_waiters; w; w = w->next)
        w->wake(w, err);
}

/* mu held: completes the ack waiters hw has passed, or all with err. */
static void complete_acks(sp_partition_t *p, int err)
{
    int64_t hw = atomic_load(&p->hw);
    sp_waiter_t *w = p->ack_waiters;
    while (w) {
        sp_waiter_t *next = w->next;
        if (err || w->offset < hw) {
            unlink_waiter(&p->ack_waiters, w);
            w->wake(w, err);
        }
        w = next;
    }
}

/* mu held: the partition is gone or failed for good. */
static void set_error(sp_partition_t *p, int err)
{
    if (p->err)
        return;
    p->err = err;
    wake_fetchers(p, err);
    complete_acks(p, err);
}

/* mu held: raises hw to at least hw (it never goes down here). */
static void advance(sp_partition_t *p, int64_t hw)
{
    if (p->err || hw <= atomic_load(&p->hw))
        return;
    atomic_store(&p->hw, hw);
    sp_plog_set_hw(p->log, hw);
    pthread_mutex_lock(&p->ps_mu);
    sp_pstate_on_hw(p->ps, hw);
    atomic_store(&p->first_unstable, sp_pstate_first_unstable(p->ps));
    pthread_mutex_unlock(&p->ps_mu);
    wake_fetchers(p, 0);
    complete_acks(p, 0);
}

/* What hw the log's offsets allow with one replica (partition.h). */
static int64_t hw_of(const sp_log_offsets_t *o)
{
    return o->durable ? o->flushed : o->leo;
}

/* The log's listener: its end, flushed offset or state changed. */
static void on_log(void *ctx, sp_plog_t *l, const sp_log_offsets_t *o)
{
    sp_partition_t *p = ctx;
    (void)l;
    pthread_mutex_lock(&p->mu);
    if (o->deleted)
        set_error(p, SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    else if (o->failed)
        set_error(p, SP_ERR_KAFKA_STORAGE_ERROR);
    else
        advance(p, hw_of(o));
    pthread_mutex_unlock(&p->mu);
}

/* ---- producers ------------------------------------------------------------ */

/* The aborted-transaction index entry of a completed transaction. */
static sp_aborted_txn_t aborted_entry(const sp_completed_txn_t *done)
{
    return (sp_aborted_txn_t){ done->producer_id, done->first_offset, done->last_offset,
                               done->last_stable_offset };
}

/* One batch of the log replayed at open: the producers, and the aborted
 * transactions whose entries may be missing (plog.h sp_plog_txn_rebuild_from:
 * re-added unless the .txnindex has them, as Kafka's recovery rebuilds them). */
static int replay_batch(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h)
{
    sp_partition_t *p = ctx;
    sp_completed_txn_t done;
    int rc = sp_pstate_update(p->ps, h, batch, len, &done);
    if (rc < 0) {
        sp_error("log", "%s: cannot replay the producer state at offset %" PRId64, p->label, h->base_offset);
        return -1;
    }
    if (rc == 1 && done.aborted && done.last_offset >= p->txn_replay_from) {
        sp_aborted_txn_t e = aborted_entry(&done);
        sp_plog_txn_append(p->log, &e, true);
    }
    return 0;
}

/*
 * Rebuilds the producers at open (Kafka's LogLoader): the newest snapshot
 * at or below the log end, then the batches after it.  A log stopped
 * cleanly without any snapshot file (written before snapshots existed)
 * starts empty at its end rather than reading everything, as Kafka does
 * (a producer it forgot may start at any sequence, KIP-360); one whose
 * snapshots were all damaged or past its end is read from its start.
 * Start-up, no lock needed (the partition is not shared yet).
 */
static void load_producers(sp_partition_t *p)
{
    sp_log_offsets_t o;
    sp_plog_offsets(p->log, &o);
    if (o.failed)
        return;
    const char *dir = sp_plog_dir(p->log);
    /* entries of aborted transactions may be missing from here on: the
     * replay starts at a snapshot no later than that */
    p->txn_replay_from = sp_plog_txn_rebuild_from(p->log);
    int64_t upto = p->txn_replay_from < o.leo ? p->txn_replay_from : o.leo;
    int64_t at = sp_pstate_snapshot_load_upto(p->ps, dir, o.leo, upto, sp_wall_ms(), p->pid_expiration_ms);
    if (at == -1 && sp_plog_opened_clean(p->log) && p->txn_replay_from == INT64_MAX) {
        sp_pstate_set_end(p->ps, o.leo);
    } else if (at < o.leo) {
        int64_t t0 = sp_mono_ms();
        int64_t from = at >= 0 ? at : o.log_start;
        if (sp_plog_scan_batches(p->log, from, replay_batch, p) != 0)
            sp_warn("log", "%s: the producer state could not be rebuilt past offset %" PRId64
                    "; producers unknown from there may start at any sequence", p->label,
                    sp_pstate_end(p->ps));
        else if (sp_mono_ms() - t0 > 1000)
            sp_info("log", "%s: rebuilt the producer state from offset %" PRId64 " in %" PRId64 " ms",
                    p->label, from, sp_mono_ms() - t0);
    }
    sp_pstate_set_end(p->ps, o.leo);
    atomic_store(&p->first_unstable, sp_pstate_first_unstable(p->ps));
}

/* ---- life ---------------------------------------------------------------- */

sp_partition_t *sp_partition_new(sp_plog_t *log, const char *topic, int32_t index)
{
    sp_partition_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    size_t ll = strlen(topic) + 16;
    p->topic = strdup(topic);
    p->label = malloc(ll);
    if (!p->topic || !p->label) {
        free(p->topic);
        free(p->label);
        free(p);
        return NULL;
    }
    snprintf(p->label, ll, "%s-%d", topic, index);
    p->ps = sp_pstate_new(p->label);
    if (!p->ps) {
        free(p->topic);
        free(p->label);
        free(p);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    p->log = log;
    p->index = index;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->ps_mu, NULL);
    p->pid_expiration_ms = SP_PRODUCER_ID_EXPIRATION_MS_DEFAULT;
    p->pid_check_interval_ms = SP_PRODUCER_ID_CHECK_INTERVAL_MS_DEFAULT;
    p->next_expiry_check = sp_mono_ms() + p->pid_check_interval_ms;
    atomic_init(&p->first_unstable, -1);
    load_producers(p);
    sp_log_offsets_t o;
    sp_plog_offsets(log, &o);
    atomic_init(&p->hw, o.hw < hw_of(&o) ? o.hw : hw_of(&o));
    sp_plog_set_hw(log, atomic_load(&p->hw));
    /* transactions the replay closed below this hw are stable already
     * (advance does this for every later move) */
    sp_pstate_on_hw(p->ps, atomic_load(&p->hw));
    atomic_store(&p->first_unstable, sp_pstate_first_unstable(p->ps));
    sp_plog_set_listener(log, on_log, p);
    sp_plog_set_clean_info(log, clean_info, p);
    p->listening = true;
    /* anything that moved before the listener was set */
    sp_plog_offsets(log, &o);
    on_log(p, log, &o);
    return p;
}

typedef struct last_acc {
    sp_producer_last_t *v;
    int n, cap;
} last_acc_t;

static void add_last(const sp_pentry_t *e, void *ctx)
{
    last_acc_t *a = ctx;
    if (a->n < a->cap)
        a->v[a->n++] = (sp_producer_last_t){
            .producer_id = e->producer_id,
            .last_data_offset = e->nbatches > 0 ? e->batches[e->nbatches - 1].last_offset : -1,
            .epoch = e->epoch,
        };
}

/* For the log cleaner (log/cleaner.h): the first unstable offset and the
 * last batch of every producer, whose batch cleaning keeps. */
static int clean_info(void *ctx, int64_t *first_unstable, sp_producer_last_t **v, int *n)
{
    sp_partition_t *p = ctx;
    int64_t f = atomic_load(&p->first_unstable);
    *first_unstable = f < 0 ? INT64_MAX : f;
    if (!v)
        return 0;
    pthread_mutex_lock(&p->ps_mu);
    last_acc_t a = { NULL, 0, sp_pstate_count(p->ps) };
    a.v = malloc(sizeof(*a.v) * (size_t)(a.cap ? a.cap : 1));
    if (a.v)
        sp_pstate_each(p->ps, add_last, &a);
    pthread_mutex_unlock(&p->ps_mu);
    *v = a.v;
    *n = a.n;
    return a.v ? 0 : -1;
}

/* Stops listening to the log (waits for a listener call in progress). */
static void stop_listening(sp_partition_t *p)
{
    if (p->listening) {
        sp_plog_set_clean_info(p->log, NULL, NULL);
        sp_plog_set_listener(p->log, NULL, NULL);
        p->listening = false;
    }
}

void sp_partition_ref(sp_partition_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void sp_partition_unref(sp_partition_t *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    stop_listening(p);
    sp_plog_unref(p->log);
    sp_pstate_free(p->ps);
    pthread_mutex_destroy(&p->ps_mu);
    pthread_mutex_destroy(&p->mu);
    free(p->topic);
    free(p->label);
    free(p);
}

/* ---- append -------------------------------------------------------------- */

/* The level of cfg's codec (the codec's own scale; snappy has none). */
static int codec_level(const sp_log_config_t *cfg)
{
    switch (cfg->codec) {
    case SP_COMPRESSION_GZIP: return cfg->gzip_level;
    case SP_COMPRESSION_LZ4: return cfg->lz4_level;
    case SP_COMPRESSION_ZSTD: return cfg->zstd_level;
    default: return 0;
    }
}

/* How a client's batch is judged (proto/batch.h invariants (6)-(8)). */
static void client_opts(const sp_partition_t *p, const sp_log_config_t *cfg, const sp_append_origin_t *origin,
                        int64_t now, sp_batch_validate_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->from_client = true;
    o->require_keys = cfg->compact;
    o->check_timestamps = true;
    o->log_append_time = cfg->log_append_time;
    o->now_ms = now;
    o->ts_before_max_ms = cfg->timestamp_before_max_ms;
    o->ts_after_max_ms = cfg->timestamp_after_max_ms;
    o->partition = p->label;
    o->record_error = origin->record_error;
    o->record_error_ctx = origin->record_error_ctx;
}

int16_t sp_log_err_kafka(sp_log_err_t err, int16_t invalid)
{
    switch (err) {
    case SP_LOG_OK: return SP_ERR_NONE;
    case SP_LOG_EINVALID: return invalid ? invalid : SP_ERR_INVALID_RECORD;
    case SP_LOG_ETOO_LARGE: return SP_ERR_MESSAGE_TOO_LARGE;
    case SP_LOG_ECORRUPT: return SP_ERR_CORRUPT_MESSAGE;
    case SP_LOG_EIO:
    case SP_LOG_EFAILED: return SP_ERR_KAFKA_STORAGE_ERROR;
    case SP_LOG_EDELETED: return SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    case SP_LOG_ERANGE: return SP_ERR_OFFSET_OUT_OF_RANGE;
    case SP_LOG_EREFUSED: return SP_ERR_UNKNOWN_SERVER_ERROR; /* the partition reads its own verdict */
    }
    return SP_ERR_UNKNOWN_SERVER_ERROR;
}

static void fail_result(sp_append_outcome_t *res, int16_t err, const char *why)
{
    memset(res, 0, sizeof(*res));
    res->base_offset = res->log_append_time = res->last_offset = res->log_start = -1;
    res->error = err;
    res->message = why;
}

/* One append's dealings with the producer state (the hooks' ctx). */
typedef struct append_ctx {
    sp_partition_t *p;
    sp_pstate_origin_t origin;
    bool txn_verify;
    uint64_t txn_guard;
    sp_pverdict_t verdict;        /* check's, when it stopped the append */
} append_ctx_t;

/* Before a batch is appended (the log's append lock held). */
static int hook_check(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h, int64_t offset)
{
    append_ctx_t *a = ctx;
    if (h->producer_id < 0)
        return 0;
    pthread_mutex_lock(&a->p->ps_mu);
    if (a->txn_verify)
        sp_pstate_check_guarded(a->p->ps, h, batch, len, a->origin, offset, a->txn_guard, &a->verdict);
    else
        sp_pstate_check(a->p->ps, h, batch, len, a->origin, offset, &a->verdict);
    pthread_mutex_unlock(&a->p->ps_mu);
    if (a->verdict.error)
        sp_debug("produce", "%s: %s", a->p->label, a->verdict.message);
    return a->verdict.duplicate || a->verdict.error;
}

/*
 * After a batch was appended (the log's append lock held): a roll first
 * snapshots the producers as they were before this batch (Kafka takes its
 * snapshot at every roll, named by the new segment's base offset), then
 * the batch is recorded.  The snapshot is encoded under ps_mu and written
 * outside it, unsynced: its CRC tells a torn one at load, which then
 * falls back to an older one (or the log).
 */
static void hook_appended(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h,
                          int64_t rolled_at)
{
    append_ctx_t *a = ctx;
    sp_partition_t *p = a->p;
    uint8_t *snap = NULL;
    size_t snap_len = 0;
    pthread_mutex_lock(&p->ps_mu);
    if (rolled_at >= 0) {
        if (sp_pstate_end(p->ps) < rolled_at)
            sp_pstate_set_end(p->ps, rolled_at);
        snap = sp_pstate_snapshot_encode(p->ps, &snap_len);
    }
    sp_completed_txn_t done;
    int closed = sp_pstate_update(p->ps, h, batch, len, &done);
    if (closed < 0)
        sp_error("produce", "%s: out of memory recording producer %" PRId64 " at offset %" PRId64
                 " (its retries may be written twice)", p->label, h->producer_id, h->base_offset);
    int64_t now = sp_mono_ms();
    if (now >= p->next_expiry_check) {
        p->next_expiry_check = now + p->pid_check_interval_ms;
        sp_pstate_expire(p->ps, sp_wall_ms(), p->pid_expiration_ms);
    }
    atomic_store(&p->first_unstable, sp_pstate_first_unstable(p->ps));
    pthread_mutex_unlock(&p->ps_mu);
    if (closed == 1 && done.aborted) {
        /* to the .txnindex of the marker's segment, before a flush may
         * pass the marker (plog.h) */
        sp_aborted_txn_t e = aborted_entry(&done);
        sp_plog_txn_append(p->log, &e, false);
    }
    if (snap) {
        const char *dir = sp_plog_dir(p->log);
        int rc = sp_pstate_snapshot_write_bytes(dir, rolled_at, snap, snap_len, false);
        if (rc != 0)
            sp_warn("log", "%s: cannot write the producer snapshot at offset %" PRId64 ": %s (a restart "
                    "replays more of the log)", p->label, rolled_at, strerror(-rc));
        sp_log_offsets_t o;
        sp_plog_offsets(p->log, &o);
        sp_pstate_snapshot_prune(dir, o.log_start);
        free(snap);
    }
}

/* The log's append with the producer hooks, its result told in Kafka's
 * terms: a retry of a recent batch is answered with its first offsets. */
static void log_append(sp_partition_t *p, uint8_t *records, size_t len, int64_t now,
                       const sp_batch_validate_opts_t *vo, const sp_append_origin_t *origin, sp_append_outcome_t *res)
{
    append_ctx_t a = { .p = p, .origin = vo ? SP_PSTATE_CLIENT : SP_PSTATE_COORDINATOR,
                       .txn_verify = origin->txn_verify, .txn_guard = origin->txn_guard };
    sp_append_hooks_t hooks = { hook_check, hook_appended, &a };
    sp_append_result_t ar;
    sp_plog_append_from(p->log, records, len, now, vo, &hooks, &ar);
    if (ar.err == SP_LOG_EREFUSED && a.verdict.duplicate) {
        /* Kafka answers a duplicate with the original batch's offsets and
         * its timestamp as log_append_time (UnifiedLog.append) */
        sp_log_offsets_t o;
        sp_plog_offsets(p->log, &o);
        memset(res, 0, sizeof(*res));
        res->base_offset = a.verdict.dup_first;
        res->last_offset = a.verdict.dup_last;
        res->log_append_time = a.verdict.dup_timestamp;
        res->log_start = o.log_start;
        return;
    }
    if (ar.err == SP_LOG_EREFUSED) {
        fail_result(res, a.verdict.error, NULL);
        return;
    }
    res->error = sp_log_err_kafka(ar.err, ar.invalid);
    res->message = ar.message;
    res->base_offset = ar.base_offset;
    res->last_offset = ar.last_offset;
    res->log_append_time = ar.log_append_time;
    res->log_start = ar.log_start;
}

/*
 * A client's batch when the topic's compression.type names a codec other
 * than the batch's: checked as sent (its size, then LogValidator's rules:
 * the record errors are the producer's records'), rebuilt with that codec
 * (Kafka's buildRecordsAndAssignOffsets) and the new batch appended, its
 * size checked again by the log, as Kafka does after a conversion.
 */
static void append_recompressed(sp_partition_t *p, const sp_log_config_t *cfg, uint8_t *batch, size_t size,
                                int64_t now, const sp_batch_validate_opts_t *vo,
                                const sp_append_origin_t *origin, sp_append_outcome_t *res)
{
    if ((int64_t)size > cfg->max_message_bytes) {
        fail_result(res, SP_ERR_MESSAGE_TOO_LARGE, "record batch larger than max.message.bytes");
        return;
    }
    sp_batch_info_t info;
    int err = sp_batch_validate(batch, size, vo, &info);
    if (err) {
        fail_result(res, (int16_t)err, info.reason);
        return;
    }
    uint8_t *nb;
    size_t nlen;
    int rc = sp_batch_recompress(batch, size, cfg->codec, codec_level(cfg), 0, &nb, &nlen);
    if (rc) {
        fail_result(res,
                    rc == SP_BATCH_E_NOMEM    ? SP_ERR_UNKNOWN_SERVER_ERROR
                    : rc == SP_BATCH_E_TOO_BIG ? SP_ERR_MESSAGE_TOO_LARGE
                                               : SP_ERR_CORRUPT_MESSAGE,
                    "cannot recompress the record batch");
        return;
    }
    log_append(p, nb, nlen, now, vo, origin, res);
    free(nb);
}

bool sp_partition_append(sp_partition_t *p, uint8_t *records, size_t len, const sp_append_origin_t *origin,
                         int16_t acks, int64_t now_ms, sp_append_outcome_t *res)
{
    sp_log_config_t cfg;
    sp_plog_config(p->log, &cfg); /* one consistent copy (AlterConfigs may run) */
    if (acks == -1 && cfg.min_insync_replicas > 1) {
        /* one replica in sync here: acks=all cannot be satisfied */
        fail_result(res, SP_ERR_NOT_ENOUGH_REPLICAS, NULL);
        return true;
    }
    if (origin->kind == SP_ORIGIN_COORDINATOR) {
        log_append(p, records, len, now_ms, NULL, origin, res);
    } else {
        sp_batch_validate_opts_t vo;
        client_opts(p, &cfg, origin, now_ms, &vo);
        int codec = len > 22 ? records[22] & SP_BATCH_ATTR_COMPRESSION_MASK : 0;
        if (cfg.recompress && codec != cfg.codec)
            append_recompressed(p, &cfg, records, len, now_ms, &vo, origin, res);
        else
            log_append(p, records, len, now_ms, &vo, origin, res);
    }
    if (res->error || acks != -1)
        return true;
    return res->last_offset < atomic_load(&p->hw);
}

/* ---- read and wait ---------------------------------------------------------- */

/* The last stable offset for a high watermark hw: min(first unstable, hw). */
static int64_t lso_of(sp_partition_t *p, int64_t hw)
{
    int64_t fu = atomic_load(&p->first_unstable);
    return fu >= 0 && fu < hw ? fu : hw;
}

int64_t sp_partition_lso(sp_partition_t *p)
{
    return lso_of(p, atomic_load(&p->hw));
}

void sp_partition_read(sp_partition_t *p, int64_t offset, int32_t max_bytes, bool min_one,
                       sp_isolation_t iso, sp_partition_read_t *res)
{
    int64_t hw = atomic_load(&p->hw);
    int64_t lso = lso_of(p, hw);
    int64_t bound = iso == SP_ISOLATION_LOG_END ? INT64_MAX : iso == SP_ISOLATION_TXN_COMMITTED ? lso : hw;
    memset(&res->aborted, 0, sizeof(res->aborted));
    res->has_aborted = false;
    sp_plog_read(p->log, offset, bound, max_bytes, min_one, &res->data);
    res->error = sp_log_err_kafka(res->data.err, 0);
    res->hw = hw;
    res->lso = lso;
    res->log_start = res->data.log_start;
    if (iso != SP_ISOLATION_TXN_COMMITTED || res->error)
        return;
    /* Kafka (LocalLog.read): nothing from the bound on, so no aborted
     * transaction either; otherwise those of the range read */
    res->has_aborted = true;
    if (offset < bound) {
        sp_log_err_t err = sp_plog_aborted_txns(p->log, offset, &res->data, &res->aborted);
        if (err) {
            sp_partition_read_release(res);
            res->error = sp_log_err_kafka(err, 0);
            res->has_aborted = false;
        }
    }
}

void sp_partition_read_release(sp_partition_read_t *res)
{
    sp_read_result_release(&res->data);
    sp_aborted_list_free(&res->aborted);
}

void sp_partition_wait_ack(sp_partition_t *p, sp_waiter_t *w)
{
    pthread_mutex_lock(&p->mu);
    int err = p->err;
    bool done = err || w->offset < atomic_load(&p->hw);
    if (!done)
        link_waiter(&p->ack_waiters, w);
    pthread_mutex_unlock(&p->mu);
    if (done)
        w->wake(w, err);
}

void sp_partition_wait_fetch(sp_partition_t *p, sp_waiter_t *w)
{
    pthread_mutex_lock(&p->mu);
    int err = p->err;
    if (!err)
        link_waiter(&p->fetch_waiters, w);
    pthread_mutex_unlock(&p->mu);
    if (err)
        w->wake(w, err);
}

void sp_partition_unwait(sp_partition_t *p, sp_waiter_t *w)
{
    pthread_mutex_lock(&p->mu);
    if (w->linked) {
        /* a waiter is on exactly one of the two lists */
        sp_waiter_t **head = &p->fetch_waiters;
        for (sp_waiter_t *x = p->ack_waiters; x; x = x->next)
            if (x == w)
                head = &p->ack_waiters;
        unlink_waiter(head, w);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- producers ---------------------------------------------------------------- */

void sp_partition_set_producer_expiry(sp_partition_t *p, int64_t expiration_ms, int64_t check_interval_ms)
{
    pthread_mutex_lock(&p->ps_mu);
    p->pid_expiration_ms = expiration_ms;
    p->pid_check_interval_ms = check_interval_ms;
    p->next_expiry_check = sp_mono_ms() + check_interval_ms;
    pthread_mutex_unlock(&p->ps_mu);
}

void sp_partition_producers(sp_partition_t *p, void (*fn)(const sp_pentry_t *e, void *ctx), void *ctx)
{
    pthread_mutex_lock(&p->ps_mu);
    sp_pstate_each(p->ps, fn, ctx);
    pthread_mutex_unlock(&p->ps_mu);
}

uint64_t sp_partition_verify_begin(sp_partition_t *p, int64_t producer_id, int16_t epoch)
{
    pthread_mutex_lock(&p->ps_mu);
    uint64_t g = sp_pstate_verify_begin(p->ps, producer_id, epoch, sp_wall_ms());
    pthread_mutex_unlock(&p->ps_mu);
    return g;
}

bool sp_partition_txn_open(sp_partition_t *p, int64_t producer_id, int16_t epoch)
{
    pthread_mutex_lock(&p->ps_mu);
    const sp_pentry_t *e = sp_pstate_get(p->ps, producer_id);
    bool open = e && e->epoch == epoch && e->txn_first_offset >= 0;
    pthread_mutex_unlock(&p->ps_mu);
    return open;
}

/* Clean stop (no append runs any more): the producers at the log end, synced,
 * so that the next start reads no log at all. */
static void snapshot_at_stop(sp_partition_t *p)
{
    sp_log_offsets_t o;
    sp_plog_offsets(p->log, &o);
    if (o.failed || o.deleted)
        return;
    pthread_mutex_lock(&p->ps_mu);
    sp_pstate_set_end(p->ps, o.leo);
    int rc = sp_pstate_snapshot_write(p->ps, sp_plog_dir(p->log), true);
    pthread_mutex_unlock(&p->ps_mu);
    if (rc != 0) {
        /* the next start must not take the log as cleanly stopped with no
         * snapshot (that would start with no producers): it is recovered */
        sp_warn("log", "%s: cannot write the producer snapshot at offset %" PRId64 ": %s; the next start "
                "rebuilds the producers from the log", p->label, o.leo, strerror(-rc));
        sp_plog_mark_unclean(p->log);
    }
}

/* ---- offsets and the rest ------------------------------------------------------ */

void sp_partition_offsets(sp_partition_t *p, sp_log_offsets_t *out)
{
    sp_plog_offsets(p->log, out);
    out->hw = atomic_load(&p->hw);
}

int64_t sp_partition_hw(sp_partition_t *p)
{
    return atomic_load(&p->hw);
}

void sp_partition_config(sp_partition_t *p, sp_log_config_t *out)
{
    sp_plog_config(p->log, out);
}

int16_t sp_partition_offset_for_time(sp_partition_t *p, int64_t ts, int64_t *offset, int64_t *found_ts)
{
    return sp_log_err_kafka(sp_plog_offset_for_time(p->log, ts, offset, found_ts), 0);
}

void sp_partition_max_timestamp(sp_partition_t *p, int64_t *offset, int64_t *ts)
{
    sp_plog_max_timestamp(p->log, offset, ts);
}

int sp_partition_legacy_offsets(sp_partition_t *p, int64_t ts, int32_t max, int64_t now_ms, int64_t **out,
                                int16_t *err)
{
    *out = NULL;
    *err = 0;
    sp_log_offsets_t lo;
    sp_partition_offsets(p, &lo);
    int n = sp_plog_segment_stats(p->log, NULL, 0);
    sp_seg_stat_t *segs = n > 0 ? malloc(sizeof(*segs) * (size_t)(n + 1)) : NULL;
    if (n > 0 && segs)
        n = sp_plog_segment_stats(p->log, segs, n); /* may have grown: keep the first n */
    if (n <= 0 || !segs || lo.failed || lo.deleted) {
        free(segs);
        *err = lo.deleted ? SP_ERR_UNKNOWN_TOPIC_OR_PARTITION : SP_ERR_KAFKA_STORAGE_ERROR;
        return -1;
    }
    /* (offset, time) of each segment, and of the end when the active one holds data */
    int len = n;
    for (int i = 0; i < n; i++)
        segs[i].base_offset = segs[i].base_offset > lo.log_start ? segs[i].base_offset : lo.log_start;
    if (segs[n - 1].size > 0) {
        segs[len].base_offset = lo.leo;
        segs[len].mtime_ms = now_ms;
        len++;
    }
    int start = -1;
    if (ts == -1) {
        start = len - 1;
    } else if (ts == -2) {
        start = 0;
    } else {
        for (start = len - 1; start >= 0 && segs[start].mtime_ms > ts; start--)
            ;
    }
    int k = max < start + 1 ? max : start + 1;
    int64_t *r = k > 0 ? malloc(sizeof(int64_t) * (size_t)(k + 1)) : NULL;
    if (k > 0 && !r) {
        free(segs);
        *err = SP_ERR_UNKNOWN_SERVER_ERROR;
        return -1;
    }
    for (int j = 0; j < k; j++)
        r[j] = segs[start - j].base_offset; /* descending already: bases grow */
    free(segs);
    /* a consumer sees nothing past the high watermark */
    if (k > 0 && r[0] > lo.hw) {
        int drop = 0;
        while (drop < k && r[drop] > lo.hw)
            drop++;
        memmove(r + 1, r + drop, sizeof(int64_t) * (size_t)(k - drop));
        r[0] = lo.hw;
        k = k - drop + 1;
    }
    *out = r;
    return k;
}

int16_t sp_partition_delete_records(sp_partition_t *p, int64_t offset, int64_t *new_start)
{
    return sp_log_err_kafka(sp_plog_delete_records(p->log, offset, new_start), 0);
}

int sp_partition_scan(sp_partition_t *p, int64_t from, int (*fn)(const struct sp_record *rec, void *ctx),
                      void *ctx)
{
    return sp_plog_scan(p->log, from, fn, ctx);
}

typedef struct scan_below {
    int (*fn)(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h);
    void *ctx;
    int64_t hw;
} scan_below_t;

/* Passes on the batches that end below hw (the ones after are skipped). */
static int scan_below_hw(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h)
{
    scan_below_t *s = ctx;
    return sp_batch_last_offset(h) < s->hw ? s->fn(s->ctx, batch, len, h) : 0;
}

int sp_partition_scan_batches(sp_partition_t *p, int64_t from,
                              int (*fn)(void *ctx, const uint8_t *batch, size_t len, const sp_batch_hdr_t *h),
                              void *ctx)
{
    scan_below_t s = { fn, ctx, sp_partition_hw(p) };
    return sp_plog_scan_batches(p->log, from, scan_below_hw, &s);
}

int64_t sp_partition_size(sp_partition_t *p)
{
    return sp_plog_size(p->log);
}

const char *sp_partition_topic(const sp_partition_t *p)
{
    return p->topic;
}

int32_t sp_partition_index(const sp_partition_t *p)
{
    return p->index;
}

const char *sp_partition_dir(const sp_partition_t *p)
{
    return sp_plog_dir(p->log);
}

/* ---- the registry -------------------------------------------------------------- */

struct sp_partitions {
    sp_logmgr_t *logs;            /* where the logs live (not owned) */
    int64_t pid_expiration_ms, pid_check_interval_ms; /* for partitions opened */
    pthread_rwlock_t rw;          /* guards map */
    sp_tpmap_t map;               /* topic-partition -> sp_partition_t * (one reference) */
};

sp_partitions_t *sp_partitions_new(sp_logmgr_t *logs)
{
    sp_partitions_t *r = calloc(1, sizeof(*r));
    if (r) {
        r->logs = logs;
        r->pid_expiration_ms = SP_PRODUCER_ID_EXPIRATION_MS_DEFAULT;
        r->pid_check_interval_ms = SP_PRODUCER_ID_CHECK_INTERVAL_MS_DEFAULT;
        pthread_rwlock_init(&r->rw, NULL);
    }
    return r;
}

void sp_partitions_set_producer_expiry(sp_partitions_t *r, int64_t expiration_ms, int64_t check_interval_ms)
{
    r->pid_expiration_ms = expiration_ms;
    r->pid_check_interval_ms = check_interval_ms;
}

/* Takes p out of service: its waiters get err, the log's listener is
 * cleared, and the registry's reference dropped.  Metadata thread, no
 * lock held. */
static void retire(sp_partition_t *p, int err)
{
    pthread_mutex_lock(&p->mu);
    set_error(p, err);
    pthread_mutex_unlock(&p->mu);
    stop_listening(p);
    sp_partition_unref(p);
}

void sp_partitions_free(sp_partitions_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->map.n; i++) {
        snapshot_at_stop(r->map.v[i].val);
        retire(r->map.v[i].val, SP_ERR_NOT_LEADER_OR_FOLLOWER);
    }
    sp_tpmap_free(&r->map);
    pthread_rwlock_destroy(&r->rw);
    free(r);
}

int sp_partitions_open(sp_partitions_t *r, const char *topic, sp_uuid_t topic_id, int32_t partition,
                       const sp_log_config_t *cfg, bool fresh)
{
    int32_t tl = (int32_t)strlen(topic);
    pthread_rwlock_rdlock(&r->rw);
    bool have = sp_tpmap_find(&r->map, topic, tl, partition) >= 0;
    pthread_rwlock_unlock(&r->rw);
    if (have)
        return 0;
    if (sp_logmgr_open_partition(r->logs, topic, topic_id, partition, cfg, fresh) != 0)
        return -1;
    sp_plog_t *log = sp_logmgr_get(r->logs, topic, tl, partition);
    if (!log)
        return -1;
    sp_partition_t *p = sp_partition_new(log, topic, partition);
    if (!p) {
        sp_plog_unref(log);
        return -1;
    }
    sp_partition_set_producer_expiry(p, r->pid_expiration_ms, r->pid_check_interval_ms);
    pthread_rwlock_wrlock(&r->rw);
    int at = sp_tpmap_find(&r->map, topic, tl, partition);
    int rc = at >= 0 ? 1 : sp_tpmap_insert(&r->map, -at - 1, topic, partition, p);
    pthread_rwlock_unlock(&r->rw);
    if (rc != 0) /* raced with another open (1: keep the first) or out of memory */
        sp_partition_unref(p);
    return rc < 0 ? -1 : 0;
}

/* Takes every partition of topic (all partitions if 'only' >= 0: that
 * one) out of the map; returns them (malloc'd), *n set. */
static sp_partition_t **take(sp_partitions_t *r, const char *topic, int32_t only, int *n)
{
    int32_t tl = (int32_t)strlen(topic);
    *n = 0;
    pthread_rwlock_wrlock(&r->rw);
    int first = sp_tpmap_find(&r->map, topic, tl, only >= 0 ? only : 0);
    if (first < 0)
        first = -first - 1;
    int end = first;
    while (end < r->map.n && strcmp(r->map.v[end].topic, topic) == 0 &&
           (only < 0 || r->map.v[end].partition == only))
        end++;
    sp_partition_t **out = malloc(sizeof(*out) * (size_t)(end > first ? end - first : 1));
    if (out)
        for (int i = end - 1; i >= first; i--)
            out[(*n)++] = sp_tpmap_remove(&r->map, i);
    pthread_rwlock_unlock(&r->rw);
    return out;
}

void sp_partitions_abandon(sp_partitions_t *r, const char *topic, int32_t partition)
{
    int n;
    sp_partition_t **ps = take(r, topic, partition, &n);
    for (int i = 0; ps && i < n; i++)
        retire(ps[i], SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    free(ps);
    sp_logmgr_abandon_partition(r->logs, topic, partition);
}

void sp_partitions_delete_topic(sp_partitions_t *r, const char *topic)
{
    int n;
    sp_partition_t **ps = take(r, topic, -1, &n);
    for (int i = 0; ps && i < n; i++)
        retire(ps[i], SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    free(ps);
    sp_logmgr_delete_topic(r->logs, topic);
}

void sp_partitions_set_config(sp_partitions_t *r, const char *topic, const sp_log_config_t *cfg)
{
    int32_t tl = (int32_t)strlen(topic);
    pthread_rwlock_rdlock(&r->rw);
    int i = sp_tpmap_find(&r->map, topic, tl, 0);
    if (i < 0)
        i = -i - 1;
    for (; i < r->map.n && strcmp(r->map.v[i].topic, topic) == 0; i++) {
        sp_partition_t *p = r->map.v[i].val;
        sp_plog_set_config(p->log, cfg);
        /* a page-cache topic made durable keeps the hw it has (it never
         * goes down); one made page-cache serves up to its end at once */
        sp_log_offsets_t o;
        sp_plog_offsets(p->log, &o);
        on_log(p, p->log, &o);
    }
    pthread_rwlock_unlock(&r->rw);
}

sp_partition_t *sp_partitions_get(sp_partitions_t *r, const char *topic, int32_t topic_len, int32_t partition)
{
    pthread_rwlock_rdlock(&r->rw);
    sp_partition_t *p = sp_tpmap_get(&r->map, topic, topic_len, partition);
    if (p)
        sp_partition_ref(p);
    pthread_rwlock_unlock(&r->rw);
    return p;
}
