/* txn_state.c - the transaction coordinator's state machine (see txn_state.h). */
#include "txn/txn_state.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/names.h"
#include "proto/gen/errors.h"
#include "proto/gen/transaction_log_key.h"
#include "proto/gen/transaction_log_value.h"
#include "util/hashset.h"
#include "util/log.h"

#define NO_EPOCH (-1)
#define MARKER_RETRY_MS 100

static const char *const NAMES[] = { "Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
                                     "CompleteAbort", "Dead", "PrepareEpochFence" };

const char *sp_txn_status_name(int s)
{
    return s >= 0 && s < (int)(sizeof(NAMES) / sizeof(NAMES[0])) ? NAMES[s] : NULL;
}

int sp_txn_status_of(sp_str_t name)
{
    for (int i = 0; i < (int)(sizeof(NAMES) / sizeof(NAMES[0])); i++)
        if (name.len == (int32_t)strlen(NAMES[i]) && memcmp(name.ptr, NAMES[i], (size_t)name.len) == 0)
            return i;
    return -1;
}

/* ---- partition sets ------------------------------------------------------- */

typedef struct tpset {
    char **topics;              /* owned */
    int32_t *parts;
    int32_t n, cap;
} tpset_t;

static int tp_cmp(const char *ta, int32_t pa, const char *tb, size_t tbl, int32_t pb)
{
    size_t al = strlen(ta);
    size_t m = al < tbl ? al : tbl;
    int c = memcmp(ta, tb, m);
    if (c)
        return c;
    if (al != tbl)
        return al < tbl ? -1 : 1;
    return (pa > pb) - (pa < pb);
}

/* Index of (topic, p), or -(insertion point) - 1. */
static int32_t tp_find(const tpset_t *s, const char *topic, size_t tl, int32_t p)
{
    int32_t lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int32_t mid = (lo + hi) / 2;
        int c = tp_cmp(s->topics[mid], s->parts[mid], topic, tl, p);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

static int tp_add(tpset_t *s, const char *topic, size_t tl, int32_t p)
{
    int32_t at = tp_find(s, topic, tl, p);
    if (at >= 0)
        return 0;
    at = -at - 1;
    if (s->n == s->cap) {
        int32_t cap = s->cap ? s->cap * 2 : 4;
        char **nt = realloc(s->topics, sizeof(*nt) * (size_t)cap);
        if (!nt)
            return -1;
        s->topics = nt;
        int32_t *np = realloc(s->parts, sizeof(*np) * (size_t)cap);
        if (!np)
            return -1;
        s->parts = np;
        s->cap = cap;
    }
    char *copy = malloc(tl + 1);
    if (!copy)
        return -1;
    memcpy(copy, topic, tl);
    copy[tl] = 0;
    memmove(&s->topics[at + 1], &s->topics[at], sizeof(*s->topics) * (size_t)(s->n - at));
    memmove(&s->parts[at + 1], &s->parts[at], sizeof(*s->parts) * (size_t)(s->n - at));
    s->topics[at] = copy;
    s->parts[at] = p;
    s->n++;
    return 0;
}

static void tp_clear(tpset_t *s)
{
    for (int32_t i = 0; i < s->n; i++)
        free(s->topics[i]);
    s->n = 0;
}

static void tp_free(tpset_t *s)
{
    tp_clear(s);
    free(s->topics);
    free(s->parts);
    memset(s, 0, sizeof(*s));
}

static int tp_copy(tpset_t *dst, const tpset_t *src)
{
    tp_clear(dst);
    for (int32_t i = 0; i < src->n; i++)
        if (tp_add(dst, src->topics[i], strlen(src->topics[i]), src->parts[i]) != 0)
            return -1;
    return 0;
}

/* ---- transactions ---------------------------------------------------------- */

/* What is written for an id (Kafka's TransactionMetadata / TxnTransitMetadata). */
typedef struct meta {
    int64_t pid, last_pid;
    int16_t epoch, last_epoch;
    int32_t timeout_ms;
    int status;
    tpset_t parts;
    int64_t start_ts, update_ts;
} meta_t;

/* What to do once a pending write is durable. */
typedef enum after {
    AFTER_ANSWER,               /* answer the call (init: pid/epoch; add: NONE) */
    AFTER_MARKERS,              /* Prepare*: answer the call (if any), then send markers */
    AFTER_COMPLETE,             /* Complete*: nothing more */
    AFTER_REMOVE,               /* a tombstone: forget the id */
} after_t;

struct sp_txn_write {
    struct txn *txn;
};

typedef struct txn {
    struct txn *next;           /* hash chain */
    char *id;
    int32_t id_len;
    int32_t partition;          /* of __transaction_state */
    meta_t m;
    bool written;               /* m is durable (false: created, first write pending) */
    bool failed_fence;          /* Kafka's hasFailedEpochFence */
    bool fencing;               /* the pending Prepare* write bumps the epoch (init, timeout) */
    /* a pending transition (invariant 1) */
    bool pending;
    bool writing;               /* the write of 'transit' is under way */
    meta_t transit;
    after_t after;
    sp_txn_call_t *call;        /* answered after the write, or NULL */
    int16_t fence_answer;       /* a fencing init answers this after its write */
    sp_txn_write_t w;
    /* markers of a Prepare* state */
    bool markers_out;           /* under way */
    int64_t retry_at;           /* markers or the Complete write to retry; INT64_MAX */
} txn_t;

struct sp_txns {
    sp_txn_settings_t s;
    sp_txn_env_t env;
    bool has_env;
    txn_t **buckets;
    uint32_t nbuckets;
    int32_t count;
    int writes;                 /* under way */
    int64_t next_abort_check, next_expire_check;
    int64_t earliest_retry;     /* the lowest retry_at set since the last tick */
};

/* x wants another try (markers, a write) at 'at'. */
static void set_retry(sp_txns_t *t, struct txn *x, int64_t at);

static uint32_t bucket_of(const sp_txns_t *t, const char *id, int32_t len)
{
    return (uint32_t)sp_hash_bytes(id, (size_t)len) & (t->nbuckets - 1);
}

static txn_t *lookup(const sp_txns_t *t, sp_str_t id)
{
    if (id.len < 0)
        return NULL;
    for (txn_t *x = t->buckets[bucket_of(t, id.ptr, id.len)]; x; x = x->next)
        if (x->id_len == id.len && memcmp(x->id, id.ptr, (size_t)id.len) == 0)
            return x;
    return NULL;
}

static int grow(sp_txns_t *t)
{
    uint32_t nb = t->nbuckets * 2;
    txn_t **v = calloc(nb, sizeof(*v));
    if (!v)
        return -1;
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        txn_t *x = t->buckets[i];
        while (x) {
            txn_t *next = x->next;
            uint32_t b = (uint32_t)sp_hash_bytes(x->id, (size_t)x->id_len) & (nb - 1);
            x->next = v[b];
            v[b] = x;
            x = next;
        }
    }
    free(t->buckets);
    t->buckets = v;
    t->nbuckets = nb;
    return 0;
}

static txn_t *create(sp_txns_t *t, sp_str_t id, int32_t partition)
{
    if ((uint32_t)t->count + 1 > t->nbuckets && grow(t) != 0)
        return NULL;
    txn_t *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->id = malloc((size_t)id.len + 1);
    if (!x->id) {
        free(x);
        return NULL;
    }
    memcpy(x->id, id.ptr, (size_t)id.len);
    x->id[id.len] = 0;
    x->id_len = id.len;
    x->partition = partition;
    x->m.pid = x->m.last_pid = -1;
    x->m.epoch = x->m.last_epoch = NO_EPOCH;
    x->m.start_ts = -1;
    x->retry_at = INT64_MAX;
    x->w.txn = x;
    uint32_t b = bucket_of(t, x->id, x->id_len);
    x->next = t->buckets[b];
    t->buckets[b] = x;
    t->count++;
    return x;
}

static void destroy(sp_txns_t *t, txn_t *x)
{
    uint32_t b = bucket_of(t, x->id, x->id_len);
    for (txn_t **pp = &t->buckets[b]; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    t->count--;
    tp_free(&x->m.parts);
    tp_free(&x->transit.parts);
    free(x->id);
    free(x);
}

sp_txns_t *sp_txns_new(const sp_txn_settings_t *s, const sp_txn_env_t *env)
{
    sp_txns_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->s = *s;
    if (env) {
        t->env = *env;
        t->has_env = true;
    }
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->next_abort_check = t->next_expire_check = 0;
    t->earliest_retry = INT64_MAX;
    return t;
}

void sp_txns_free(sp_txns_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->nbuckets; i++)
        while (t->buckets[i])
            destroy(t, t->buckets[i]);
    free(t->buckets);
    free(t);
}

int32_t sp_txn_partition_for(sp_str_t id, int32_t n)
{
    return sp_key_partition(id.ptr, id.len > 0 ? id.len : 0, n);
}

/* ---- records ---------------------------------------------------------------- */

/* key: int16 0 | TransactionLogKey v0 (malloc'd). */
static uint8_t *encode_key(const txn_t *x, size_t *len)
{
    sp_transaction_log_key_t k;
    sp_transaction_log_key_init(&k);
    k.transactional_id = (sp_str_t){ x->id, x->id_len };
    size_t n = 2 + sp_transaction_log_key_size(&k, 0);
    uint8_t *buf = malloc(n);
    if (!buf)
        return NULL;
    sp_writer_t w = sp_writer(buf, n);
    sp_write_i16(&w, 0);
    sp_transaction_log_key_encode(&w, &k, 0);
    *len = n;
    return w.err ? (free(buf), NULL) : buf;
}

/* value: int16 0 | TransactionLogValue v0 of m (malloc'd).  Empty writes
 * null partitions, as Kafka's TransactionLog.valueToBytes. */
static uint8_t *encode_value(const meta_t *m, size_t *len)
{
    sp_transaction_log_value_t v;
    sp_transaction_log_value_init(&v);
    v.producer_id = m->pid;
    v.producer_epoch = m->epoch;
    v.transaction_timeout_ms = m->timeout_ms;
    v.transaction_status = (int8_t)m->status;
    v.transaction_last_update_timestamp_ms = m->update_ts;
    v.transaction_start_timestamp_ms = m->start_ts;
    /* partitions grouped by topic (the set is sorted by topic) */
    int32_t ntopics = 0;
    for (int32_t i = 0; i < m->parts.n; i++)
        if (i == 0 || strcmp(m->parts.topics[i], m->parts.topics[i - 1]) != 0)
            ntopics++;
    sp_transaction_log_value_partitions_schema_t *ps = ntopics ? calloc((size_t)ntopics, sizeof(*ps)) : NULL;
    if (ntopics && !ps)
        return NULL;
    int32_t k = -1;
    for (int32_t i = 0; i < m->parts.n; i++) {
        if (i == 0 || strcmp(m->parts.topics[i], m->parts.topics[i - 1]) != 0) {
            k++;
            ps[k].topic = sp_str_c(m->parts.topics[i]);
            ps[k].partition_ids.v = (int32_t *)&m->parts.parts[i];
            ps[k].partition_ids.n = 0;
        }
        ps[k].partition_ids.n++;
    }
    v.transaction_partitions.v = ps;
    v.transaction_partitions.n = m->status == SP_TXN_EMPTY ? -1 : ntopics;
    size_t n = 2 + sp_transaction_log_value_size(&v, 0);
    uint8_t *buf = malloc(n);
    if (buf) {
        sp_writer_t w = sp_writer(buf, n);
        sp_write_i16(&w, 0);
        sp_transaction_log_value_encode(&w, &v, 0);
        if (w.err) {
            free(buf);
            buf = NULL;
        }
    }
    free(ps);
    *len = n;
    return buf;
}

void sp_txns_replay(sp_txns_t *t, int32_t partition, sp_bytes_t key, sp_bytes_t value)
{
    if (key.len < 2)
        return;
    sp_reader_t r = sp_reader(key.ptr, (size_t)key.len);
    int16_t kv;
    sp_read_i16(&r, &kv);
    sp_arena_t a;
    sp_arena_init(&a, 1 << 20);
    sp_transaction_log_key_t k;
    if (kv != 0 || sp_transaction_log_key_decode(&r, &a, &k, 0) != 0 || k.transactional_id.len <= 0) {
        sp_arena_free(&a);
        return; /* not a transaction record Spool knows */
    }
    txn_t *x = lookup(t, k.transactional_id);
    if (value.len < 0) {
        if (x && !x->pending)
            destroy(t, x);
        sp_arena_free(&a);
        return;
    }
    sp_reader_t vr = sp_reader(value.ptr, (size_t)value.len);
    int16_t vv;
    sp_read_i16(&vr, &vv);
    sp_transaction_log_value_t v;
    if (vv < 0 || vv > 1 || sp_transaction_log_value_decode(&vr, &a, &v, vv) != 0 ||
        !sp_txn_status_name(v.transaction_status) || v.transaction_status == SP_TXN_DEAD ||
        v.transaction_status == SP_TXN_PREPARE_EPOCH_FENCE) {
        sp_warn("txn", "__transaction_state-%d: a record of %.*s does not decode; skipped", partition,
                k.transactional_id.len, k.transactional_id.ptr);
        sp_arena_free(&a);
        return;
    }
    if (!x)
        x = create(t, k.transactional_id, partition);
    if (!x) {
        sp_arena_free(&a);
        return;
    }
    x->partition = partition;
    x->written = true;
    x->m.pid = v.producer_id;
    x->m.epoch = v.producer_epoch;
    x->m.last_pid = vv >= 1 ? v.previous_producer_id : -1;
    x->m.last_epoch = NO_EPOCH;
    x->m.timeout_ms = v.transaction_timeout_ms;
    x->m.status = v.transaction_status;
    x->m.update_ts = v.transaction_last_update_timestamp_ms;
    x->m.start_ts = v.transaction_start_timestamp_ms;
    tp_clear(&x->m.parts);
    /* Empty and Complete* hold no partitions (invariant 2; Kafka writes
     * none there): a record that names some is not trusted for them */
    bool holds = v.transaction_status == SP_TXN_ONGOING || v.transaction_status == SP_TXN_PREPARE_COMMIT ||
                 v.transaction_status == SP_TXN_PREPARE_ABORT;
    for (int32_t i = 0; holds && i < v.transaction_partitions.n; i++) {
        const sp_transaction_log_value_partitions_schema_t *p = &v.transaction_partitions.v[i];
        for (int32_t j = 0; j < p->partition_ids.n && p->topic.len > 0; j++)
            tp_add(&x->m.parts, p->topic.ptr, (size_t)p->topic.len, p->partition_ids.v[j]);
    }
    sp_arena_free(&a);
}

/* ---- writes ------------------------------------------------------------------ */

static void answer(sp_txn_call_t *call, int16_t err)
{
    if (!call)
        return;
    call->error = err;
    if (err && call->kind == SP_TXN_INIT) {
        call->out_producer_id = -1;
        call->out_producer_epoch = -1;
    }
    call->done(call);
}

/* Kafka's TransactionStateManager.appendTransactionToLog error mapping. */
static int16_t write_error(int16_t err)
{
    switch (err) {
    case SP_ERR_UNKNOWN_TOPIC_OR_PARTITION:
    case SP_ERR_NOT_ENOUGH_REPLICAS:
    case SP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case SP_ERR_REQUEST_TIMED_OUT:
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    case SP_ERR_NOT_LEADER_OR_FOLLOWER:
    case SP_ERR_KAFKA_STORAGE_ERROR:
        return SP_ERR_NOT_COORDINATOR;
    case SP_ERR_MESSAGE_TOO_LARGE:
    case SP_ERR_RECORD_LIST_TOO_LARGE:
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    default:
        return err;
    }
}

/* The write of x->transit failed (err: the partition's Kafka error) or
 * was refused: the transition is dropped and its call answered (a new
 * id whose first write failed is forgotten), except a Complete write,
 * retried a moment later while the id stays in Prepare*. */
static void write_failed(sp_txns_t *t, txn_t *x, int16_t err, int64_t now)
{
    sp_txn_call_t *call = x->call;
    x->call = NULL;
    if (x->after == AFTER_COMPLETE) {
        set_retry(t, x, now + MARKER_RETRY_MS); /* still Prepare*: write Complete again */
        return;
    }
    if (x->after == AFTER_MARKERS && x->fencing) {
        /* Kafka's endTransaction bumps the epoch in memory before the
         * write; when the write fails the bump stays (the producer is
         * fenced) and hasFailedEpochFence keeps the next fence from
         * bumping again */
        x->m.epoch = x->transit.epoch;
        x->m.last_epoch = NO_EPOCH;
        x->failed_fence = true;
    }
    x->fence_answer = 0;
    x->fencing = false;
    x->pending = false;
    answer(call, write_error(err));
    if (!x->written)
        destroy(t, x);
}

/* Starts writing x->transit (x->pending set by the caller); a refused
 * write is a failed one (write_failed). */
static void start_write(sp_txns_t *t, txn_t *x, int64_t now)
{
    size_t kl = 0, vl = 0;
    uint8_t *key = encode_key(x, &kl);
    uint8_t *val = x->after == AFTER_REMOVE ? NULL : encode_value(&x->transit, &vl);
    int16_t err = !key || (x->after != AFTER_REMOVE && !val) ? SP_ERR_UNKNOWN_SERVER_ERROR
                  : t->has_env ? t->env.persist(t->env.ctx, x->partition, key, kl, val, vl, &x->w)
                               : SP_ERR_COORDINATOR_NOT_AVAILABLE;
    free(key);
    free(val);
    if (!err) {
        x->writing = true;
        t->writes++;
        return;
    }
    write_failed(t, x, err, now);
}

/* Prepares a transition of x to 'm' (copied), then 'after'. */
static int transit(sp_txns_t *t, txn_t *x, const meta_t *m, after_t after, sp_txn_call_t *call)
{
    (void)t;
    x->transit.pid = m->pid;
    x->transit.last_pid = x->m.pid; /* Kafka's prevProducerId: the id before every transition */
    x->transit.epoch = m->epoch;
    x->transit.last_epoch = m->last_epoch;
    x->transit.timeout_ms = m->timeout_ms;
    x->transit.status = m->status;
    x->transit.start_ts = m->start_ts;
    x->transit.update_ts = m->update_ts;
    if (tp_copy(&x->transit.parts, &m->parts) != 0)
        return -1;
    x->pending = true;
    x->after = after;
    x->call = call;
    return 0;
}

static void send_markers(sp_txns_t *t, txn_t *x, int64_t now);

/* The pending write of x is durable: apply it, then what follows. */
static void apply(sp_txns_t *t, txn_t *x, int64_t now)
{
    x->m.pid = x->transit.pid;
    x->m.last_pid = x->transit.last_pid;
    x->m.epoch = x->transit.epoch;
    x->m.last_epoch = x->transit.last_epoch;
    x->m.timeout_ms = x->transit.timeout_ms;
    x->m.status = x->transit.status;
    x->m.start_ts = x->transit.start_ts;
    x->m.update_ts = x->transit.update_ts;
    tp_copy(&x->m.parts, &x->transit.parts);
    x->written = true;
    sp_txn_call_t *call = x->call;
    x->call = NULL;
    switch (x->after) {
    case AFTER_ANSWER:
        x->pending = false;
        if (call && call->kind == SP_TXN_INIT) {
            call->out_producer_id = x->m.pid;
            call->out_producer_epoch = x->m.epoch;
        }
        answer(call, 0);
        break;
    case AFTER_MARKERS:
        /* the client's EndTxn is answered now; the markers go on */
        x->failed_fence = false;
        x->fencing = false;
        answer(call, x->fence_answer);
        x->fence_answer = 0;
        send_markers(t, x, now);
        break;
    case AFTER_COMPLETE:
        x->pending = false;
        answer(call, 0);
        break;
    case AFTER_REMOVE:
        x->pending = false;
        answer(call, 0);
        destroy(t, x);
        break;
    }
}

void sp_txns_settle(sp_txns_t *t, sp_txn_write_t *w, int16_t err, int64_t now)
{
    txn_t *x = w->txn;
    assert(x->writing);
    x->writing = false;
    t->writes--;
    if (!err) {
        apply(t, x, now);
        return;
    }
    sp_warn("txn", "cannot write the state of %s to __transaction_state-%d: %s", x->id, x->partition,
            sp_kafka_error_name(err));
    write_failed(t, x, err, now);
}

/* ---- markers ----------------------------------------------------------------- */

static void send_markers(sp_txns_t *t, txn_t *x, int64_t now)
{
    x->pending = true;
    x->retry_at = INT64_MAX;
    sp_txn_markers_t m = {
        .producer_id = x->m.pid,
        .producer_epoch = x->m.epoch,
        .commit = x->m.status == SP_TXN_PREPARE_COMMIT,
        .coordinator_epoch = t->has_env ? t->env.coordinator_epoch(t->env.ctx, x->partition) : 0,
        .n = x->m.parts.n,
        .topics = (const char *const *)x->m.parts.topics,
        .partitions = x->m.parts.parts,
    };
    if (t->has_env && t->env.markers(t->env.ctx, &m, x) == 0) {
        x->markers_out = true;
        return;
    }
    set_retry(t, x, now + MARKER_RETRY_MS);
}

/* Writes Complete* for x (its markers are all written). */
static void complete(sp_txns_t *t, txn_t *x, int64_t now)
{
    meta_t m = x->m;
    memset(&m.parts, 0, sizeof(m.parts));
    m.status = x->m.status == SP_TXN_PREPARE_COMMIT ? SP_TXN_COMPLETE_COMMIT : SP_TXN_COMPLETE_ABORT;
    m.update_ts = now;
    if (transit(t, x, &m, AFTER_COMPLETE, NULL) != 0) {
        set_retry(t, x, now + MARKER_RETRY_MS);
        return;
    }
    start_write(t, x, now);
}

void sp_txns_markers_done(sp_txns_t *t, void *token, const int16_t *errors, int64_t now)
{
    txn_t *x = token;
    x->markers_out = false;
    /* Kafka's TransactionMarkerRequestCompletionHandler: a partition that
     * is gone or whose marker was refused for a stale epoch or a fenced
     * coordinator is done with; others (storage, leadership) retry */
    tpset_t left = { 0 };
    for (int32_t i = 0; i < x->m.parts.n; i++) {
        int16_t e = errors[i];
        if (e == 0 || e == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION || e == SP_ERR_INVALID_PRODUCER_EPOCH ||
            e == SP_ERR_TRANSACTION_COORDINATOR_FENCED || e == SP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT ||
            e == SP_ERR_UNSUPPORTED_VERSION) {
            if (e && e != SP_ERR_UNKNOWN_TOPIC_OR_PARTITION)
                sp_warn("txn", "the marker of %s for %s-%d was refused: %s", x->id, x->m.parts.topics[i],
                        x->m.parts.parts[i], sp_kafka_error_name(e));
            continue;
        }
        tp_add(&left, x->m.parts.topics[i], strlen(x->m.parts.topics[i]), x->m.parts.parts[i]);
    }
    if (left.n == 0) {
        tp_free(&left);
        complete(t, x, now);
        return;
    }
    /* only the partitions still to do, a moment later */
    tp_copy(&x->m.parts, &left);
    tp_free(&left);
    set_retry(t, x, now + MARKER_RETRY_MS);
}

/* ---- calls --------------------------------------------------------------------- */

static bool epoch_exhausted(int16_t e) { return e >= INT16_MAX - 1; }

/* Kafka's prepareInitProducerIdTransit for Empty/Complete*: the next epoch
 * (or a new producer id when exhausted).  0, or a Kafka error. */
static int16_t init_transit(sp_txns_t *t, txn_t *x, const sp_txn_call_t *c, int64_t now, meta_t *m)
{
    bool expected = c->producer_id >= 0;
    *m = x->m;
    memset(&m->parts, 0, sizeof(m->parts));
    m->timeout_ms = c->timeout_ms;
    m->status = SP_TXN_EMPTY;
    m->start_ts = -1;
    m->update_ts = now;
    if (epoch_exhausted(x->m.epoch) && (!expected || c->producer_epoch == x->m.epoch)) {
        int64_t pid = t->has_env ? t->env.next_pid(t->env.ctx) : -1;
        if (pid < 0)
            return SP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
        m->pid = pid;
        m->epoch = 0;
        m->last_epoch = expected ? x->m.epoch : NO_EPOCH;
        return 0;
    }
    int16_t bumped = (int16_t)(x->m.epoch + 1);
    if (!expected) {
        m->epoch = bumped;
        m->last_epoch = NO_EPOCH;
    } else if (x->m.epoch == NO_EPOCH || c->producer_epoch == x->m.epoch) {
        m->epoch = bumped;
        m->last_epoch = x->m.epoch;
    } else if (c->producer_epoch == x->m.last_epoch) {
        m->epoch = x->m.epoch; /* a retry of the bump it never heard of */
        m->last_epoch = x->m.last_epoch;
    } else {
        return SP_ERR_PRODUCER_FENCED;
    }
    return 0;
}

/* Ongoing -> Prepare*: the end of x's transaction (Kafka's endTransaction,
 * TV1).  A fence (from init or the timeout) bumps the epoch first and
 * aborts. */
static int16_t begin_end(sp_txns_t *t, txn_t *x, bool commit, sp_txn_call_t *call, int16_t fence_answer,
                         int64_t now)
{
    meta_t m = x->m;
    memset(&m.parts, 0, sizeof(m.parts));
    bool fence = fence_answer || call == NULL;
    if (fence) {
        /* Kafka's prepareFenceProducerEpoch: not bumped again after a
         * failed fence, nor past Short.MaxValue (an exhausted epoch,
         * Short.MaxValue - 1, is still bumped: the producer must be
         * fenced, and its retry then gets a new producer id) */
        if (!x->failed_fence && x->m.epoch != INT16_MAX)
            m.epoch = (int16_t)(x->m.epoch + 1);
        m.last_epoch = NO_EPOCH;
    }
    m.status = commit ? SP_TXN_PREPARE_COMMIT : SP_TXN_PREPARE_ABORT;
    m.update_ts = now;
    if (tp_copy(&m.parts, &x->m.parts) != 0 || transit(t, x, &m, AFTER_MARKERS, call) != 0) {
        tp_free(&m.parts);
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    }
    tp_free(&m.parts);
    x->fence_answer = fence_answer;
    x->fencing = fence;
    start_write(t, x, now);
    return 0;
}

/* Whether x has a transition pending as Kafka's pendingState counts it:
 * a write under way or to retry.  A Prepare* state whose markers are
 * being written has none (Kafka clears pendingState once Prepare* is
 * durable), so calls then get the answer of Kafka's state table. */
static bool busy(const txn_t *x)
{
    return x->pending && (x->writing || x->after != AFTER_MARKERS);
}

static void call_init(sp_txns_t *t, sp_txn_call_t *c, int64_t now)
{
    if (c->txn_id.len == 0) {
        answer(c, SP_ERR_INVALID_REQUEST);
        return;
    }
    if (c->timeout_ms <= 0 || c->timeout_ms > t->s.max_timeout_ms) {
        answer(c, SP_ERR_INVALID_TRANSACTION_TIMEOUT);
        return;
    }
    int32_t np = t->has_env ? t->env.partitions(t->env.ctx) : -1;
    if (np <= 0) {
        /* no __transaction_state yet: Kafka's getTransactionState finds no
         * partition it owns (FindCoordinator creates the topic) */
        answer(c, SP_ERR_NOT_COORDINATOR);
        return;
    }
    txn_t *x = lookup(t, c->txn_id);
    if (!x) {
        int64_t pid = t->env.next_pid(t->env.ctx);
        if (pid < 0) {
            answer(c, SP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
            return;
        }
        x = create(t, c->txn_id, sp_txn_partition_for(c->txn_id, np));
        if (!x) {
            answer(c, SP_ERR_UNKNOWN_SERVER_ERROR);
            return;
        }
        x->m.pid = pid;
        x->m.timeout_ms = c->timeout_ms;
        x->m.status = SP_TXN_EMPTY;
        x->m.update_ts = now;
    }
    if (busy(x)) {
        answer(c, SP_ERR_CONCURRENT_TRANSACTIONS);
        return;
    }
    /* isValidProducerId (KIP-360) */
    if (c->producer_id >= 0 && !(x->m.epoch == NO_EPOCH || c->producer_id == x->m.pid ||
                                 (c->producer_id == x->m.last_pid && epoch_exhausted(c->producer_epoch)))) {
        answer(c, SP_ERR_PRODUCER_FENCED);
        return;
    }
    switch (x->m.status) {
    case SP_TXN_PREPARE_ABORT:
    case SP_TXN_PREPARE_COMMIT:
        answer(c, SP_ERR_CONCURRENT_TRANSACTIONS);
        return;
    case SP_TXN_ONGOING: {
        /* fence the producer and abort its transaction; the client retries */
        int16_t err = begin_end(t, x, false, c, SP_ERR_CONCURRENT_TRANSACTIONS, now);
        if (err)
            answer(c, err);
        return;
    }
    default: {
        meta_t m;
        int16_t err = init_transit(t, x, c, now, &m);
        if (!err && transit(t, x, &m, AFTER_ANSWER, c) != 0)
            err = SP_ERR_UNKNOWN_SERVER_ERROR;
        if (err) {
            answer(c, err);
            if (!x->written)
                destroy(t, x);
            return;
        }
        start_write(t, x, now);
    }
    }
}

/* The checks every call of a producer on its transaction starts with. */
static int16_t check_producer(const txn_t *x, const sp_txn_call_t *c)
{
    if (!x || !x->written)
        return SP_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (x->m.pid != c->producer_id)
        return SP_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (x->m.epoch != c->producer_epoch)
        return SP_ERR_PRODUCER_FENCED;
    return 0;
}

static void call_add(sp_txns_t *t, sp_txn_call_t *c, int64_t now)
{
    if (c->txn_id.len <= 0) {
        answer(c, SP_ERR_INVALID_REQUEST);
        return;
    }
    txn_t *x = lookup(t, c->txn_id);
    int16_t err = check_producer(x, c);
    if (!err && busy(x))
        err = SP_ERR_CONCURRENT_TRANSACTIONS;
    else if (!err && (x->m.status == SP_TXN_PREPARE_COMMIT || x->m.status == SP_TXN_PREPARE_ABORT))
        err = SP_ERR_CONCURRENT_TRANSACTIONS;
    if (err) {
        answer(c, err);
        return;
    }
    bool all_in = x->m.status == SP_TXN_ONGOING;
    for (int32_t i = 0; i < c->n && all_in; i++)
        all_in = tp_find(&x->m.parts, c->parts[i].topic.ptr, (size_t)c->parts[i].topic.len,
                         c->parts[i].partition) >= 0;
    if (all_in) {
        answer(c, 0);
        return;
    }
    /* Kafka's prepareAddPartitions: a new transaction starts now */
    meta_t m = x->m;
    memset(&m.parts, 0, sizeof(m.parts));
    if (x->m.status != SP_TXN_ONGOING)
        m.start_ts = now;
    m.status = SP_TXN_ONGOING;
    m.update_ts = now;
    int rc = x->m.status == SP_TXN_ONGOING ? tp_copy(&m.parts, &x->m.parts) : 0;
    for (int32_t i = 0; i < c->n && rc == 0; i++)
        rc = tp_add(&m.parts, c->parts[i].topic.ptr, (size_t)c->parts[i].topic.len, c->parts[i].partition);
    if (rc == 0)
        rc = transit(t, x, &m, AFTER_ANSWER, c);
    tp_free(&m.parts);
    if (rc != 0) {
        x->pending = false;
        answer(c, SP_ERR_UNKNOWN_SERVER_ERROR);
        return;
    }
    start_write(t, x, now);
}

static void call_verify(sp_txns_t *t, sp_txn_call_t *c)
{
    int16_t err = c->txn_id.len <= 0 ? SP_ERR_INVALID_REQUEST : 0;
    txn_t *x = err ? NULL : lookup(t, c->txn_id);
    if (!err)
        err = check_producer(x, c);
    if (!err && (x->m.status == SP_TXN_PREPARE_COMMIT || x->m.status == SP_TXN_PREPARE_ABORT))
        err = SP_ERR_CONCURRENT_TRANSACTIONS;
    for (int32_t i = 0; i < c->n; i++)
        c->part_errors[i] = err ? err
                            : tp_find(&x->m.parts, c->parts[i].topic.ptr, (size_t)c->parts[i].topic.len,
                                      c->parts[i].partition) >= 0
                                ? 0
                                : SP_ERR_TRANSACTION_ABORTABLE;
    answer(c, 0);
}

static void call_end(sp_txns_t *t, sp_txn_call_t *c, int64_t now)
{
    if (c->txn_id.len <= 0) {
        answer(c, SP_ERR_INVALID_REQUEST);
        return;
    }
    txn_t *x = lookup(t, c->txn_id);
    int16_t err = check_producer(x, c);
    if (!err && busy(x))
        err = SP_ERR_CONCURRENT_TRANSACTIONS;
    if (err) {
        answer(c, err);
        return;
    }
    switch (x->m.status) {
    case SP_TXN_ONGOING:
        err = begin_end(t, x, c->commit, c, 0, now);
        if (err)
            answer(c, err);
        return;
    case SP_TXN_COMPLETE_COMMIT:
        answer(c, c->commit ? 0 : SP_ERR_INVALID_TXN_STATE);
        return;
    case SP_TXN_COMPLETE_ABORT:
        answer(c, c->commit ? SP_ERR_INVALID_TXN_STATE : 0);
        return;
    case SP_TXN_PREPARE_COMMIT:
        answer(c, c->commit ? SP_ERR_CONCURRENT_TRANSACTIONS : SP_ERR_INVALID_TXN_STATE);
        return;
    case SP_TXN_PREPARE_ABORT:
        answer(c, c->commit ? SP_ERR_INVALID_TXN_STATE : SP_ERR_CONCURRENT_TRANSACTIONS);
        return;
    default:
        answer(c, SP_ERR_INVALID_TXN_STATE);
        return;
    }
}

void sp_txns_call(sp_txns_t *t, sp_txn_call_t *c, int64_t now)
{
    c->error = 0;
    switch (c->kind) {
    case SP_TXN_INIT: call_init(t, c, now); break;
    case SP_TXN_ADD: call_add(t, c, now); break;
    case SP_TXN_VERIFY: call_verify(t, c); break;
    case SP_TXN_END: call_end(t, c, now); break;
    }
}

/* ---- time --------------------------------------------------------------------- */

static void set_retry(sp_txns_t *t, txn_t *x, int64_t at)
{
    x->retry_at = at;
    if (at < t->earliest_retry)
        t->earliest_retry = at;
}

int64_t sp_txns_deadline(const sp_txns_t *t)
{
    int64_t d = t->next_abort_check < t->next_expire_check ? t->next_abort_check : t->next_expire_check;
    return t->earliest_retry < d ? t->earliest_retry : d;
}

int64_t sp_txns_tick(sp_txns_t *t, int64_t now)
{
    bool aborts = now >= t->next_abort_check, expiry = now >= t->next_expire_check;
    if (aborts)
        t->next_abort_check = now + t->s.abort_interval_ms;
    if (expiry)
        t->next_expire_check = now + t->s.expire_interval_ms;
    int64_t next = t->next_abort_check < t->next_expire_check ? t->next_abort_check : t->next_expire_check;
    t->earliest_retry = INT64_MAX;
    for (uint32_t b = 0; b < t->nbuckets; b++) {
        txn_t *x = t->buckets[b];
        while (x) {
            txn_t *following = x->next; /* x may go (a refused tombstone) */
            if (x->pending && !x->writing && !x->markers_out && x->retry_at <= now) {
                if (x->m.status == SP_TXN_PREPARE_COMMIT || x->m.status == SP_TXN_PREPARE_ABORT) {
                    if (x->after == AFTER_COMPLETE && x->transit.status >= SP_TXN_COMPLETE_COMMIT)
                        complete(t, x, now); /* the Complete write failed: again */
                    else
                        send_markers(t, x, now);
                }
            } else if (!x->pending && aborts && x->m.status == SP_TXN_ONGOING &&
                       x->m.start_ts < now - x->m.timeout_ms) { /* replayed times are untrusted: no overflow */
                sp_info("txn", "aborting the transaction of %s (producer %" PRId64 " epoch %d): it passed its "
                        "timeout of %d ms", x->id, x->m.pid, x->m.epoch, x->m.timeout_ms);
                begin_end(t, x, false, NULL, 0, now);
            } else if (!x->pending && expiry &&
                       (x->m.status == SP_TXN_EMPTY || x->m.status == SP_TXN_COMPLETE_COMMIT ||
                        x->m.status == SP_TXN_COMPLETE_ABORT) &&
                       x->m.update_ts <= now - t->s.id_expiration_ms) {
                meta_t m = x->m;
                memset(&m.parts, 0, sizeof(m.parts));
                m.status = SP_TXN_DEAD;
                if (transit(t, x, &m, AFTER_REMOVE, NULL) == 0)
                    start_write(t, x, now);
            }
            if (x && x->pending && !x->writing && !x->markers_out && x->retry_at < t->earliest_retry)
                t->earliest_retry = x->retry_at;
            x = following;
        }
    }
    return t->earliest_retry < next ? t->earliest_retry : next;
}

void sp_txns_loaded(sp_txns_t *t, int64_t now)
{
    for (uint32_t b = 0; b < t->nbuckets; b++)
        for (txn_t *x = t->buckets[b]; x; x = x->next)
            if (x->m.status == SP_TXN_PREPARE_COMMIT || x->m.status == SP_TXN_PREPARE_ABORT) {
                x->pending = true;
                x->after = AFTER_MARKERS;
                set_retry(t, x, now); /* sent at the first tick */
            }
}

void sp_txns_shutdown(sp_txns_t *t, int16_t err)
{
    for (uint32_t b = 0; b < t->nbuckets; b++)
        for (txn_t *x = t->buckets[b]; x; x = x->next) {
            sp_txn_call_t *call = x->call;
            x->call = NULL;
            answer(call, err);
        }
}

int sp_txns_writes(const sp_txns_t *t) { return t->writes; }

/* ---- reading --------------------------------------------------------------------- */

static void view_of(const txn_t *x, sp_txn_view_t *v)
{
    v->txn_id = (sp_str_t){ x->id, x->id_len };
    v->producer_id = x->m.pid;
    v->producer_epoch = x->m.epoch;
    v->status = x->m.status;
    v->timeout_ms = x->m.timeout_ms;
    v->start_ms = x->m.start_ts;
    v->nparts = x->m.parts.n;
    v->topics = (const char *const *)x->m.parts.topics;
    v->partitions = x->m.parts.parts;
}

bool sp_txns_describe(const sp_txns_t *t, sp_str_t id, sp_txn_view_t *out)
{
    const txn_t *x = lookup(t, id);
    if (!x || !x->written || x->m.status == SP_TXN_DEAD)
        return false;
    view_of(x, out);
    return true;
}

void sp_txns_each(const sp_txns_t *t, void (*fn)(const sp_txn_view_t *v, void *ctx), void *ctx)
{
    for (uint32_t b = 0; b < t->nbuckets; b++)
        for (const txn_t *x = t->buckets[b]; x; x = x->next)
            if (x->written && x->m.status != SP_TXN_DEAD) {
                sp_txn_view_t v;
                view_of(x, &v);
                fn(&v, ctx);
            }
}

bool sp_txns_check(const sp_txns_t *t)
{
    int32_t n = 0;
    int writes = 0;
    for (uint32_t b = 0; b < t->nbuckets; b++)
        for (const txn_t *x = t->buckets[b]; x; x = x->next) {
            n++;
            writes += x->writing;
            if ((x->writing || x->markers_out) && !x->pending)
                return false;
            if (x->writing && x->markers_out)
                return false;
            bool holds = x->m.status == SP_TXN_ONGOING || x->m.status == SP_TXN_PREPARE_COMMIT ||
                         x->m.status == SP_TXN_PREPARE_ABORT;
            if (x->written && !holds && x->m.parts.n != 0)
                return false;
        }
    return n == t->count && writes == t->writes;
}
