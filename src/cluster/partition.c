/* partition.c - a partition above its local log, and the registry of them
 * (see partition.h). */
#include "cluster/partition.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/logmgr.h"
#include "proto/gen/errors.h"
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
};

/* ---- waiter lists (mu held) -------------------------------------------- */

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
    atomic_init(&p->refs, 1);
    p->log = log;
    p->index = index;
    pthread_mutex_init(&p->mu, NULL);
    sp_log_offsets_t o;
    sp_plog_offsets(log, &o);
    atomic_init(&p->hw, o.hw < hw_of(&o) ? o.hw : hw_of(&o));
    sp_plog_set_hw(log, atomic_load(&p->hw));
    sp_plog_set_listener(log, on_log, p);
    p->listening = true;
    /* anything that moved before the listener was set */
    sp_plog_offsets(log, &o);
    on_log(p, log, &o);
    return p;
}

/* Stops listening to the log (waits for a listener call in progress). */
static void stop_listening(sp_partition_t *p)
{
    if (p->listening) {
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

/* The log's append, its result told in Kafka's terms. */
static void log_append(sp_partition_t *p, uint8_t *records, size_t len, int64_t now,
                       const sp_batch_validate_opts_t *vo, sp_append_outcome_t *res)
{
    sp_append_result_t ar;
    sp_plog_append_from(p->log, records, len, now, vo, &ar);
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
                                int64_t now, const sp_batch_validate_opts_t *vo, sp_append_outcome_t *res)
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
    log_append(p, nb, nlen, now, vo, res);
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
        log_append(p, records, len, now_ms, NULL, res);
    } else {
        sp_batch_validate_opts_t vo;
        client_opts(p, &cfg, origin, now_ms, &vo);
        int codec = len > 22 ? records[22] & SP_BATCH_ATTR_COMPRESSION_MASK : 0;
        if (cfg.recompress && codec != cfg.codec)
            append_recompressed(p, &cfg, records, len, now_ms, &vo, res);
        else
            log_append(p, records, len, now_ms, &vo, res);
    }
    if (res->error || acks != -1)
        return true;
    return res->last_offset < atomic_load(&p->hw);
}

/* ---- read and wait ---------------------------------------------------------- */

void sp_partition_read(sp_partition_t *p, int64_t offset, int32_t max_bytes, bool min_one,
                       sp_isolation_t iso, sp_partition_read_t *res)
{
    int64_t hw = atomic_load(&p->hw);
    int64_t bound = iso == SP_ISOLATION_LOG_END ? INT64_MAX : hw;
    sp_plog_read(p->log, offset, bound, max_bytes, min_one, &res->data);
    res->error = sp_log_err_kafka(res->data.err, 0);
    res->hw = res->lso = hw;
    res->log_start = res->data.log_start;
}

void sp_partition_read_release(sp_partition_read_t *res)
{
    sp_read_result_release(&res->data);
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
    pthread_rwlock_t rw;          /* guards map */
    sp_tpmap_t map;               /* topic-partition -> sp_partition_t * (one reference) */
};

sp_partitions_t *sp_partitions_new(sp_logmgr_t *logs)
{
    sp_partitions_t *r = calloc(1, sizeof(*r));
    if (r) {
        r->logs = logs;
        pthread_rwlock_init(&r->rw, NULL);
    }
    return r;
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
    for (int i = 0; i < r->map.n; i++)
        retire(r->map.v[i].val, SP_ERR_NOT_LEADER_OR_FOLLOWER);
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
