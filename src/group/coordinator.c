/*
 * coordinator.c - the group coordinator (see coordinator.h).
 *
 * Group states (Kafka's classic protocol):
 *
 *                 +-------------------------------------------+
 *                 |                                           v
 *   +-------+  join   +--------------------+  all joined  +---------------------+
 *   | Empty | ------> | PreparingRebalance | -----------> | CompletingRebalance |
 *   +-------+         +--------------------+  or timeout  +---------------------+
 *       ^                 ^        ^                           |  leader's SyncGroup
 *       | last member     |        | join, leave, expiry       v
 *       | leaves/expires  |        +---------------------- +--------+
 *       +-----------------+--------------------------------| Stable |
 *                                                          +--------+
 *   Dead: deleted (DeleteGroups) or emptied and expired.
 *
 * | transition                          | function            |
 * |-------------------------------------|---------------------|
 * | Empty/Stable/Completing -> Preparing | prepare_rebalance   |
 * | Preparing -> Completing              | complete_join       |
 * | Completing -> Stable                 | sync_settled, once the leader's assignment (op_sync) is durable |
 * | Completing -> Preparing (write lost) | sync_settled -> prepare_rebalance |
 * | any -> Empty (no members)            | remove_member       |
 * | Empty -> Dead                        | op_delete_groups    |
 *
 * Memory follows __consumer_offsets, never leads it: commits, the Stable
 * state and a static member's new id take effect only once their records
 * are durable (see "writes to __consumer_offsets" below).
 *
 * Everything here runs on the coordinator thread (its own libuv loop):
 * request ops arrive through a queue + wakeup (util/wakeup.h); timers are on that loop.
 */
#include "group/coordinator.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "broker/ctl.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/partition.h"
#include "proto/batch.h"
#include "proto/gen/consumer_protocol_subscription.h"
#include "proto/gen/delete_groups_request.h"
#include "proto/gen/delete_groups_response.h"
#include "proto/gen/describe_groups_request.h"
#include "proto/gen/describe_groups_response.h"
#include "proto/gen/find_coordinator_request.h"
#include "proto/gen/find_coordinator_response.h"
#include "proto/gen/group_metadata_key.h"
#include "proto/gen/group_metadata_value.h"
#include "proto/gen/heartbeat_request.h"
#include "proto/gen/heartbeat_response.h"
#include "proto/gen/join_group_request.h"
#include "proto/gen/join_group_response.h"
#include "proto/gen/leave_group_request.h"
#include "proto/gen/leave_group_response.h"
#include "proto/gen/list_groups_request.h"
#include "proto/gen/list_groups_response.h"
#include "proto/gen/offset_commit_key.h"
#include "proto/gen/offset_commit_request.h"
#include "proto/gen/offset_commit_response.h"
#include "proto/gen/offset_commit_value.h"
#include "proto/gen/offset_delete_request.h"
#include "proto/gen/offset_delete_response.h"
#include "proto/gen/offset_fetch_request.h"
#include "proto/gen/offset_fetch_response.h"
#include "proto/gen/sync_group_request.h"
#include "proto/gen/sync_group_response.h"
#include "proto/request.h"
#include "util/log.h"
#include "util/wakeup.h"

#define OFFSETS_TOPIC "__consumer_offsets"

enum { EMPTY, PREPARING, COMPLETING, STABLE, DEAD };
static const char *state_names[] = { "Empty", "PreparingRebalance", "CompletingRebalance",
                                     "Stable", "Dead" };

typedef struct member member_t;
typedef struct group group_t;

struct member {
    member_t *next;
    group_t *g;
    char *id;
    char *instance_id;          /* static membership, or NULL */
    char *client_id;
    char *client_host;
    int32_t session_timeout;
    int32_t rebalance_timeout;
    int nprotocols;
    char **pnames;
    uint8_t **pmeta;
    int32_t *pmeta_len;
    uint8_t *assignment;
    int32_t assignment_len;
    sp_req_t *join_req;         /* parked JoinGroup */
    sp_req_t *sync_req;         /* parked SyncGroup */
    uv_timer_t timer;           /* session expiry */
    bool timer_ready;           /* timer initialised (not during replay) */
    bool joined;                /* joined the current rebalance */
};

typedef struct offset {
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata;             /* bytes (may hold NULs), never NULL once stored */
    int32_t metadata_len;
    int64_t commit_ts;
    int64_t log_offset;         /* of the record in __consumer_offsets that set it */
} offset_t;

/* A commit written to __consumer_offsets but not yet durable: it becomes
 * the offset (put_offset) only once its write succeeded (settle_commits),
 * as Kafka's pendingOffsetCommits. */
typedef struct pending_commit {
    uint64_t seq;               /* the write it belongs to */
    offset_t o;                 /* topic and metadata owned */
} pending_commit_t;

typedef struct pending_id {
    char *id;
    int64_t deadline;
} pending_id_t;

struct group {
    group_t *next;
    sp_coordinator_t *c;        /* its coordinator (for timer callbacks) */
    char *id;
    int state;
    int32_t generation;
    char *protocol_type;
    char *protocol;
    char *leader;
    member_t *members;
    int nmembers;
    pending_id_t *pending;      /* member ids handed out, awaiting a rejoin */
    int npending;
    uv_timer_t join_timer;      /* rebalance deadline / initial delay */
    bool join_timer_init;
    bool initial_delay;         /* the join timer is the initial delay */
    int64_t delay_deadline;
    offset_t *offsets;
    int noffsets, capoffsets;
    pending_commit_t *pcommits; /* in the order they were written */
    int npcommits, cappcommits;
    uint64_t sync_seq;          /* the leader's assignment is being written
                                 * (Completing until it is durable), or 0 */
    int64_t state_ts;           /* when it entered its state */
};

typedef struct op {
    struct op *next;
    sp_req_t *req;              /* NULL for internal closures */
    void (*fn)(struct sp_coordinator *c, sp_req_t *req, void *arg);
    void *arg;
    bool embedded;              /* part of arg (a write_t): not freed by on_wake */
} op_t;

struct sp_coordinator {
    const sp_broker_t *broker;
    const sp_config_t *cfg;
    pthread_t thread;
    uv_loop_t loop;
    sp_wakeup_t wake;
    uv_timer_t retention;
    pthread_mutex_t mu;
    op_t *head, *tail;
    bool stop, running;
    bool loop_ready, wake_ready;
    bool closed;                /* the thread is done: nothing more is queued (mu) */
    group_t *groups;
    int32_t nparts;             /* partitions of __consumer_offsets at start */
    uint64_t seq;               /* last write sequence number */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dupn(const char *s, int32_t n)
{
    if (n < 0)
        return NULL;
    char *d = malloc((size_t)n + 1);
    if (d) {
        memcpy(d, s, (size_t)n);
        d[n] = 0;
    }
    return d;
}

static char *dups(sp_str_t s) { return dupn(s.ptr, s.len); }

static bool str_is(const char *c, sp_str_t s)
{
    return c && s.len >= 0 && (int32_t)strlen(c) == s.len && memcmp(c, s.ptr, (size_t)s.len) == 0;
}

static sp_str_t as_str(const char *c) { return c ? sp_str_c(c) : SP_STR_NULL; }

/* A group id Spool cannot keep: null, or with a NUL byte (ids are C
 * strings here).  Kafka would take the latter; Spool answers
 * INVALID_GROUP_ID (docs/DIFFERENCES.md). */
static bool unkeepable_id(sp_str_t id)
{
    return id.len < 0 || (id.len > 0 && memchr(id.ptr, 0, (size_t)id.len) != NULL);
}

/* ---- the answer path ---------------------------------------------------- */

/* The response is built; the worker sends it and drops our reference.
 * A response that could not be built (out of memory: NULL) closes the
 * connection instead, as any broken request does. */
static void respond_on_worker(sp_req_t *req, void *resp)
{
    if (resp)
        sp_req_respond(req, resp);
    else
        sp_req_close(req, "out of memory building a group response");
    sp_req_unref(req);
}

static void answer(sp_req_t *req, void *resp)
{
    sp_req_post(req, respond_on_worker, resp);
}

/* ---- partitions and records -------------------------------------------- */

int32_t sp_coordinator_partition_for(const char *group, int32_t len, int32_t n)
{
    int32_t h = 0;
    for (int32_t i = 0; i < len; i++)
        h = (int32_t)((uint32_t)h * 31u + (uint32_t)(unsigned char)group[i]);
    /* Kafka's Utils.abs: Integer.MIN_VALUE maps to 0 */
    int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    return n > 0 ? a % n : 0;
}

/*
 * The partition count of __consumer_offsets as the topic has it (the
 * topic decides: a data dir may hold it with a count other than today's
 * offsets.topic.num.partitions, e.g. created by a client before clients
 * were refused), or the configured count while it does not exist yet.
 * Kafka reads it once at start-up; reading it per write also covers a
 * topic that appeared after the start.  Coordinator thread.
 */
static int32_t offsets_partitions(sp_coordinator_t *c)
{
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, OFFSETS_TOPIC, (int32_t)strlen(OFFSETS_TOPIC));
    int32_t n = t && t->npartitions > 0 ? t->npartitions : c->nparts;
    sp_image_release(img);
    return n;
}

/* Encodes "int16 version | struct" into a malloc'd buffer. */
static uint8_t *versioned(int16_t version, const sp_msg_desc_t *d, const void *x, int16_t v,
                          int32_t *len)
{
    size_t n = 2 + d->size(x, v);
    uint8_t *buf = malloc(n);
    if (!buf)
        return NULL;
    sp_writer_t w = sp_writer(buf, n);
    sp_write_i16(&w, version);
    d->encode(&w, x, v);
    if (w.err) {
        free(buf);
        return NULL;
    }
    *len = (int32_t)n;
    return buf;
}

/* The record schemas, looked up once by sp_coordinator_start (a scan of
 * every schema per record before). */
static struct {
    const sp_msg_desc_t *offset_key, *offset_value, *group_key, *group_value;
} D;

static int load_descs(void)
{
    D.offset_key = sp_msg_desc_named("OffsetCommitKey");
    D.offset_value = sp_msg_desc_named("OffsetCommitValue");
    D.group_key = sp_msg_desc_named("GroupMetadataKey");
    D.group_value = sp_msg_desc_named("GroupMetadataValue");
    return D.offset_key && D.offset_value && D.group_key && D.group_value ? 0 : -1;
}

typedef struct records {
    sp_batch_builder_t b;
    int count;
} records_t;

static int add_offset_record(records_t *r, const char *group, const char *topic, int32_t partition,
                             const offset_t *o)
{
    sp_offset_commit_key_t k;
    int32_t klen = 0, vlen = -1;
    sp_offset_commit_key_init(&k);
    k.group = sp_str_c(group);
    k.topic = sp_str_c(topic);
    k.partition = partition;
    uint8_t *kb = versioned(1, D.offset_key, &k, 1, &klen), *vb = NULL;
    if (o) {
        sp_offset_commit_value_t v;
        sp_offset_commit_value_init(&v);
        v.offset = o->offset;
        v.leader_epoch = o->leader_epoch;
        v.metadata = (sp_str_t){ o->metadata ? o->metadata : "", o->metadata ? o->metadata_len : 0 };
        v.commit_timestamp = o->commit_ts;
        vb = versioned(3, D.offset_value, &v, 3, &vlen);
    }
    int rc = (!kb || (o && !vb)) ? -1 : sp_batch_builder_add(&r->b, kb, klen, vb, vlen, now_ms());
    free(kb);
    free(vb);
    r->count++;
    return rc;
}

static int add_group_record(records_t *r, group_t *g, bool tombstone)
{
    sp_group_metadata_key_t k;
    int32_t klen = 0, vlen = -1;
    sp_group_metadata_key_init(&k);
    k.group = sp_str_c(g->id);
    uint8_t *kb = versioned(2, D.group_key, &k, 2, &klen), *vb = NULL;
    if (!tombstone) {
        sp_arena_t a;
        sp_arena_init(&a, 0);
        sp_group_metadata_value_t v;
        sp_group_metadata_value_init(&v);
        v.protocol_type = sp_str_c(g->protocol_type ? g->protocol_type : "");
        v.generation = g->generation;
        v.protocol = as_str(g->protocol);
        v.leader = as_str(g->leader);
        v.current_state_timestamp = g->state_ts;
        v.members.v = sp_group_metadata_value_member_metadata_alloc(&a, g->nmembers);
        v.members.n = v.members.v ? g->nmembers : 0;
        int i = 0;
        for (member_t *m = g->members; m && i < v.members.n; m = m->next, i++) {
            sp_group_metadata_value_member_metadata_t *mm = &v.members.v[i];
            mm->member_id = sp_str_c(m->id);
            mm->group_instance_id = as_str(m->instance_id);
            mm->client_id = sp_str_c(m->client_id);
            mm->client_host = sp_str_c(m->client_host);
            mm->rebalance_timeout = m->rebalance_timeout;
            mm->session_timeout = m->session_timeout;
            int p = 0;
            for (int k2 = 0; k2 < m->nprotocols; k2++)
                if (g->protocol && strcmp(m->pnames[k2], g->protocol) == 0)
                    p = k2;
            mm->subscription = (sp_bytes_t){ m->nprotocols ? m->pmeta[p] : (const uint8_t *)"",
                                             m->nprotocols ? m->pmeta_len[p] : 0 };
            mm->assignment = (sp_bytes_t){ m->assignment ? m->assignment : (const uint8_t *)"",
                                           m->assignment_len };
        }
        vb = versioned(3, D.group_value, &v, 3, &vlen);
        sp_arena_free(&a);
    }
    int rc = (!kb || (!tombstone && !vb)) ? -1 : sp_batch_builder_add(&r->b, kb, klen, vb, vlen, now_ms());
    free(kb);
    free(vb);
    r->count++;
    return rc;
}

/* ---- writes to __consumer_offsets -------------------------------------------
 *
 * Nothing a write stands for is seen (in memory or by a client) before it
 * is durable, as in Kafka, whose coordinator applies a write only once the
 * append completed:
 *
 *   op_*: stage the change, build the records, persist(c)
 *      |
 *      |-- the append fails ---------------> the caller undoes and answers
 *      v                                      (Kafka's error, write_error)
 *   acks=all waiter on the partition (its high watermark passes the batch:
 *      |   the flush thread on a durable topic; at once otherwise)
 *      v  on_durable: post write_done to the coordinator queue
 *   write_done (coordinator thread): apply the change (durable) or undo it
 *   (failed), then answer the parked requests, with the error patched in
 *
 * | kind            | staged                           | applied on success            |
 * |-----------------|----------------------------------|-------------------------------|
 * | W_COMMIT        | g->pcommits (seq)                | put_offset, commit answered   |
 * | W_SYNC          | assignments, g->sync_seq         | Stable, syncs answered        |
 * | W_STATIC_JOIN   | the static member's new id       | the JoinGroup answered        |
 * | W_OFFSET_DELETE | offsets dropped (as Kafka 3.x)   | OffsetDelete answered         |
 * | W_DELETE_GROUP  | group forgotten (as Kafka 3.x)   | DeleteGroups answered         |
 * | W_NOTE          | (empty generation, expiry)       | nothing; a failure is logged  |
 *
 * If the coordinator thread has stopped when the outcome arrives, the
 * requests are only answered (write_abandon), from the flush thread.
 */
enum { W_NOTE, W_COMMIT, W_SYNC, W_STATIC_JOIN, W_OFFSET_DELETE, W_DELETE_GROUP };

typedef struct delete_batch {
    sp_req_t *req;
    void *resp;                 /* sp_delete_groups_response_t */
    int pending;                /* writes not settled */
    bool built;                 /* every write is under way */
} delete_batch_t;

typedef struct write {
    sp_waiter_t w;              /* first: the partition's ack waiter */
    sp_coordinator_t *c;        /* whose write (on_durable runs on another thread) */
    op_t op;                    /* write_done, queued to the coordinator */
    int kind;
    uint64_t seq;
    char *group;
    sp_partition_t *part;       /* referenced while waiting */
    int64_t last_offset;        /* of the batch in the log */
    int16_t err;                /* Kafka error for the answer; 0: durable */
    sp_req_t *req;              /* answered by write_done / write_abandon */
    void *resp;
    int32_t generation;         /* W_SYNC */
    char *old_id, *new_id;      /* W_STATIC_JOIN: the member's ids */
    int32_t old_session, old_rebalance;
    bool was_leader;
    delete_batch_t *batch;      /* W_DELETE_GROUP */
    int index;
} write_t;

static void write_done(sp_coordinator_t *c, sp_req_t *unused, void *arg);
static void write_abandon(write_t *x);

/*
 * Kafka's answer for a failed write to __consumer_offsets
 * (CoordinatorOperationExceptionHelper.handleOperationException and
 * GroupMetadataManager.appendGroupMetadataErrorToResponseError): a storage
 * error (full disk, failed fsync) is NOT_COORDINATOR, so clients look the
 * coordinator up again and retry.
 */
static int16_t write_error(int16_t append_err)
{
    switch (append_err) {
    case SP_ERR_UNKNOWN_TOPIC_OR_PARTITION:
    case SP_ERR_NOT_ENOUGH_REPLICAS:
    case SP_ERR_REQUEST_TIMED_OUT:
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    case SP_ERR_NOT_LEADER_OR_FOLLOWER:
    case SP_ERR_KAFKA_STORAGE_ERROR:
        return SP_ERR_NOT_COORDINATOR;
    case SP_ERR_MESSAGE_TOO_LARGE:
    case SP_ERR_RECORD_LIST_TOO_LARGE:
    case SP_ERR_INVALID_FETCH_SIZE:
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    default:
        return append_err;
    }
}

static write_t *write_new(sp_coordinator_t *c, int kind)
{
    write_t *x = calloc(1, sizeof(*x));
    if (x) {
        x->c = c;
        x->kind = kind;
        x->seq = ++c->seq;
    }
    return x;
}

/* Frees x and what it owns (not its request: answered by then). */
static void write_free(write_t *x)
{
    if (!x)
        return;
    if (x->part)
        sp_partition_unref(x->part);
    free(x->group);
    free(x->old_id);
    free(x->new_id);
    free(x);
}

/* Queues op for the coordinator thread; false once it has stopped.  The
 * wakeup is sent under mu: once 'closed' is set (under mu) nobody touches
 * it again, so sp_coordinator_stop may free it.  Any thread. */
static bool enqueue(sp_coordinator_t *c, op_t *op)
{
    op->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->closed) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    if (c->tail)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    sp_wakeup_send(&c->wake);
    pthread_mutex_unlock(&c->mu);
    return true;
}

/* The outcome of x is known: settle it on the coordinator thread. */
static void post_done(sp_coordinator_t *c, write_t *x)
{
    x->op.req = NULL;
    x->op.fn = write_done;
    x->op.arg = x;
    x->op.embedded = true;
    if (!enqueue(c, &x->op))
        write_abandon(x);
}

/* The partition's ack waiter: the batch is below the high watermark
 * (durable, err 0) or lost.  Runs under the partition's lock on the
 * thread that moved it, or inline from persist(c). */
static void on_durable(sp_waiter_t *w, int err)
{
    write_t *x = (write_t *)w;
    x->err = err ? write_error((int16_t)err) : 0;
    post_done(x->c, x);
}

/*
 * Appends the records r (consumed) to group's partition of
 * __consumer_offsets as one batch; x (filled in by the caller with its
 * kind and what write_done needs) is settled by write_done once the batch
 * is durable or lost, or at once (err 0) if there is nothing to write.
 * Returns 0, or Kafka's error if the append failed: then x is untouched
 * and still the caller's, who undoes, answers and frees it.
 * Coordinator thread.
 */
static int16_t persist(sp_coordinator_t *c, const char *group, records_t *r, write_t *x)
{
    size_t len = 0;
    uint8_t *batch = r->count ? sp_batch_builder_finish(&r->b, &len) : NULL;
    sp_batch_builder_free(&r->b);
    if (!x->group && !(x->group = strdup(group))) {
        free(batch);
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    }
    if (!r->count) {
        post_done(c, x);
        return 0;
    }
    if (!batch)
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    int32_t p = sp_coordinator_partition_for(group, (int32_t)strlen(group), offsets_partitions(c));
    sp_partition_t *part = sp_partitions_get(c->broker->partitions, OFFSETS_TOPIC, (int32_t)strlen(OFFSETS_TOPIC), p);
    if (!part) {
        free(batch);
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    sp_append_outcome_t ar;
    static const sp_append_origin_t origin = { SP_ORIGIN_COORDINATOR, NULL, NULL };
    /* acks=all, as Kafka's coordinator writes */
    bool final = sp_partition_append(part, batch, len, &origin, -1, now_ms(), &ar);
    free(batch);
    if (ar.error) {
        sp_partition_unref(part);
        sp_warn("group", "group %s: cannot append to %s-%d: %s", group, OFFSETS_TOPIC, p,
                sp_kafka_error_name(ar.error));
        return write_error(ar.error);
    }
    x->part = part;
    x->last_offset = ar.last_offset;
    x->w.offset = ar.last_offset;
    x->w.wake = on_durable;
    if (final)
        on_durable(&x->w, 0);
    else
        sp_partition_wait_ack(part, &x->w);
    return 0;
}

/* A write nobody waits for (an empty generation, expired offsets): a
 * failure is only logged, as Kafka does. */
static void persist_note(sp_coordinator_t *c, const char *group, records_t *r)
{
    if (!r->count) {
        sp_batch_builder_free(&r->b);
        return;
    }
    write_t *x = write_new(c, W_NOTE);
    int16_t err = x ? persist(c, group, r, x) : (sp_batch_builder_free(&r->b), SP_ERR_UNKNOWN_SERVER_ERROR);
    if (err) {
        sp_warn("group", "group %s: metadata not written: %s", group, sp_kafka_error_name(err));
        write_free(x);
    }
}

static void records_init(records_t *r)
{
    memset(r, 0, sizeof(*r));
    sp_batch_builder_init(&r->b, 0, now_ms());
}

/* ---- groups and members ------------------------------------------------- */

static group_t *find_group(sp_coordinator_t *c, sp_str_t id)
{
    for (group_t *g = c->groups; g; g = g->next)
        if (str_is(g->id, id))
            return g;
    return NULL;
}

static group_t *get_group(sp_coordinator_t *c, sp_str_t id)
{
    group_t *g = find_group(c, id);
    if (g)
        return g;
    /* ids are kept as C strings: one with a NUL would be stored cut short
     * and never found again, a new group made at every request
     * (fuzz_offsets found it) */
    if (unkeepable_id(id))
        return NULL;
    g = calloc(1, sizeof(*g));
    if (g)
        g->c = c;
    if (!g)
        return NULL;
    g->id = dups(id);
    g->state = EMPTY;
    g->state_ts = now_ms();
    g->next = c->groups;
    c->groups = g;
    return g;
}

static void set_state(group_t *g, int s)
{
    g->state = s;
    g->state_ts = now_ms();
}

static member_t *find_member(group_t *g, sp_str_t id)
{
    for (member_t *m = g->members; m; m = m->next)
        if (str_is(m->id, id))
            return m;
    return NULL;
}

static member_t *find_static(group_t *g, sp_str_t instance)
{
    if (instance.len < 0)
        return NULL;
    for (member_t *m = g->members; m; m = m->next)
        if (str_is(m->instance_id, instance))
            return m;
    return NULL;
}

/* KIP-345: a request naming a group.instance.id that now belongs to
 * another member id comes from a fenced (replaced) instance. */
static bool fenced(group_t *g, sp_str_t member_id, sp_str_t instance)
{
    member_t *st = g ? find_static(g, instance) : NULL;
    return st && !str_is(st->id, member_id);
}

static offset_t *find_offset(group_t *g, const char *topic, int32_t tlen, int32_t p)
{
    for (int i = 0; i < g->noffsets; i++)
        if (g->offsets[i].partition == p && (int32_t)strlen(g->offsets[i].topic) == tlen &&
            memcmp(g->offsets[i].topic, topic, (size_t)tlen) == 0)
            return &g->offsets[i];
    return NULL;
}

/* Sets the committed offset of topic/p, written at log_offset of
 * __consumer_offsets.  Coordinator thread (or start-up replay). */
static void put_offset(group_t *g, const char *topic, int32_t tlen, int32_t p, int64_t off,
                       int32_t epoch, const char *meta, int32_t mlen, int64_t ts, int64_t log_offset)
{
    offset_t *o = find_offset(g, topic, tlen, p);
    if (!o) {
        if (g->noffsets == g->capoffsets) {
            int cap = g->capoffsets ? g->capoffsets * 2 : 16;
            offset_t *n = realloc(g->offsets, sizeof(*n) * (size_t)cap);
            if (!n)
                return;
            g->offsets = n;
            g->capoffsets = cap;
        }
        o = &g->offsets[g->noffsets];
        o->topic = dupn(topic, tlen);
        if (!o->topic)
            return;
        g->noffsets++;
        o->partition = p;
        o->metadata = NULL;
    }
    free(o->metadata);
    o->offset = off;
    o->leader_epoch = epoch;
    /* null metadata is stored as "" (Kafka's OffsetAndMetadata.NO_METADATA);
     * otherwise every byte, NULs included */
    int32_t ml = mlen > 0 ? mlen : 0;
    o->metadata = dupn(ml ? meta : "", ml);
    o->metadata_len = o->metadata ? ml : 0;
    o->commit_ts = ts;
    o->log_offset = log_offset;
}

/* Removes pending commits: those of write seq (seq != 0), or those of
 * topic/p (topic != NULL), keeping the order of the others. */
static void drop_pending_commits(group_t *g, uint64_t seq, const char *topic, int32_t tlen, int32_t p)
{
    int k = 0;
    for (int i = 0; i < g->npcommits; i++) {
        pending_commit_t *pc = &g->pcommits[i];
        bool hit = seq ? pc->seq == seq
                       : (pc->o.partition == p && (int32_t)strlen(pc->o.topic) == tlen &&
                          memcmp(pc->o.topic, topic, (size_t)tlen) == 0);
        if (hit) {
            free(pc->o.topic);
            free(pc->o.metadata);
        } else {
            g->pcommits[k++] = *pc;
        }
    }
    g->npcommits = k;
}

/* A tombstone for topic/p is written (OffsetDelete, expiry, DeleteGroups):
 * the offset goes, and so do commits of it still waiting for their write
 * (they precede the tombstone in the log), as Kafka's removeOffsets. */
static void drop_offset(group_t *g, const char *topic, int32_t tlen, int32_t p)
{
    drop_pending_commits(g, 0, topic, tlen, p);
    offset_t *o = find_offset(g, topic, tlen, p);
    if (!o)
        return;
    free(o->topic);
    free(o->metadata);
    *o = g->offsets[--g->noffsets];
}

/* Stages a commit of write seq (copies topic and metadata).  0 or -1. */
static int stage_commit(group_t *g, uint64_t seq, const offset_t *o)
{
    if (g->npcommits == g->cappcommits) {
        int cap = g->cappcommits ? g->cappcommits * 2 : 8;
        pending_commit_t *n = realloc(g->pcommits, sizeof(*n) * (size_t)cap);
        if (!n)
            return -1;
        g->pcommits = n;
        g->cappcommits = cap;
    }
    pending_commit_t *pc = &g->pcommits[g->npcommits];
    pc->seq = seq;
    pc->o = *o;
    pc->o.topic = strdup(o->topic);
    pc->o.metadata = dupn(o->metadata_len > 0 ? o->metadata : "", o->metadata_len > 0 ? o->metadata_len : 0);
    if (!pc->o.topic || !pc->o.metadata) {
        free(pc->o.topic);
        free(pc->o.metadata);
        return -1;
    }
    g->npcommits++;
    return 0;
}

/* The write seq of commits ended: if durable, its commits become the
 * offsets (in the order written; an offset set by a later record of the
 * log stays); either way they are no longer pending. */
static void settle_commits(group_t *g, uint64_t seq, bool durable, int64_t log_offset)
{
    for (int i = 0; durable && i < g->npcommits; i++) {
        const offset_t *c = &g->pcommits[i].o;
        if (g->pcommits[i].seq != seq)
            continue;
        const offset_t *cur = find_offset(g, c->topic, (int32_t)strlen(c->topic), c->partition);
        if (!cur || cur->log_offset <= log_offset)
            put_offset(g, c->topic, (int32_t)strlen(c->topic), c->partition, c->offset, c->leader_epoch,
                       c->metadata, c->metadata_len, c->commit_ts, log_offset);
    }
    drop_pending_commits(g, seq, NULL, 0, 0);
}

static void free_member(member_t *m)
{
    for (int i = 0; i < m->nprotocols; i++) {
        free(m->pnames[i]);
        free(m->pmeta[i]);
    }
    free(m->pnames);
    free(m->pmeta);
    free(m->pmeta_len);
    free(m->assignment);
    free(m->id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    free(m);
}

static void member_timer_closed(uv_handle_t *h)
{
    free_member(h->data);
}

/* Frees a member, closing its timer first if it has one. */
static void drop_member(member_t *m)
{
    if (m->timer_ready) {
        uv_timer_stop(&m->timer);
        uv_close((uv_handle_t *)&m->timer, member_timer_closed);
    } else {
        free_member(m);
    }
}

static void free_group(group_t *g)
{
    for (int i = 0; i < g->noffsets; i++) {
        free(g->offsets[i].topic);
        free(g->offsets[i].metadata);
    }
    free(g->offsets);
    for (int i = 0; i < g->npcommits; i++) {
        free(g->pcommits[i].o.topic);
        free(g->pcommits[i].o.metadata);
    }
    free(g->pcommits);
    for (int i = 0; i < g->npending; i++)
        free(g->pending[i].id);
    free(g->pending);
    free(g->id);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    free(g);
}

static void group_timer_closed(uv_handle_t *h)
{
    free_group(h->data);
}

/* Unlinks a group with no members and no offsets. */
static void forget_group(sp_coordinator_t *c, group_t *g)
{
    group_t **pp = &c->groups;
    while (*pp && *pp != g)
        pp = &(*pp)->next;
    if (*pp)
        *pp = g->next;
    while (g->members) {
        member_t *m = g->members;
        g->members = m->next;
        drop_member(m);
    }
    g->nmembers = 0;
    if (g->join_timer_init)
        uv_close((uv_handle_t *)&g->join_timer, group_timer_closed);
    else
        free_group(g);
}

static void session_expired(uv_timer_t *t);
static void maybe_complete_join(sp_coordinator_t *c, group_t *g);
static void prepare_rebalance(sp_coordinator_t *c, group_t *g, const char *why);

static void touch(member_t *m)
{
    uv_timer_start(&m->timer, session_expired, (uint64_t)(m->session_timeout > 0 ? m->session_timeout : 10000), 0);
}

static int set_protocols(member_t *m, const sp_join_group_request_t *b)
{
    for (int i = 0; i < m->nprotocols; i++) {
        free(m->pnames[i]);
        free(m->pmeta[i]);
    }
    free(m->pnames);
    free(m->pmeta);
    free(m->pmeta_len);
    int n = b->protocols.n > 0 ? b->protocols.n : 0;
    m->nprotocols = 0;
    m->pnames = calloc((size_t)(n ? n : 1), sizeof(char *));
    m->pmeta = calloc((size_t)(n ? n : 1), sizeof(uint8_t *));
    m->pmeta_len = calloc((size_t)(n ? n : 1), sizeof(int32_t));
    if (!m->pnames || !m->pmeta || !m->pmeta_len)
        return -1;
    for (int i = 0; i < n; i++) {
        const sp_join_group_request_protocol_t *p = &b->protocols.v[i];
        int32_t ml = p->metadata.len > 0 ? p->metadata.len : 0;
        m->pnames[i] = dups(p->name);
        m->pmeta[i] = malloc((size_t)(ml ? ml : 1));
        if (!m->pnames[i] || !m->pmeta[i])
            return -1;
        if (ml)
            memcpy(m->pmeta[i], p->metadata.ptr, (size_t)ml);
        m->pmeta_len[i] = ml;
        m->nprotocols = i + 1;
    }
    return 0;
}

/* Whether m's protocols equal the request's (names and metadata). */
static bool same_protocols(const member_t *m, const sp_join_group_request_t *b)
{
    if (m->nprotocols != (b->protocols.n > 0 ? b->protocols.n : 0))
        return false;
    for (int i = 0; i < m->nprotocols; i++) {
        const sp_join_group_request_protocol_t *p = &b->protocols.v[i];
        int32_t ml = p->metadata.len > 0 ? p->metadata.len : 0;
        if (!str_is(m->pnames[i], p->name) || ml != m->pmeta_len[i] ||
            (ml && memcmp(m->pmeta[i], p->metadata.ptr, (size_t)ml) != 0))
            return false;
    }
    return true;
}

static bool member_supports(const member_t *m, const char *proto)
{
    for (int i = 0; i < m->nprotocols; i++)
        if (strcmp(m->pnames[i], proto) == 0)
            return true;
    return false;
}

/* Whether a join with these protocols fits the group's members. */
static bool compatible(const group_t *g, const sp_join_group_request_t *b)
{
    if (g->nmembers == 0)
        return b->protocols.n > 0 && b->protocol_type.len > 0;
    if (!str_is(g->protocol_type, b->protocol_type))
        return false;
    /* some protocol must be supported by all existing members */
    for (int32_t i = 0; i < b->protocols.n; i++) {
        char *name = dups(b->protocols.v[i].name);
        bool all = name != NULL;
        for (const member_t *m = g->members; m && all; m = m->next)
            all = member_supports(m, name);
        free(name);
        if (all)
            return true;
    }
    return false;
}

static bool all_support(const group_t *g, const char *proto)
{
    for (const member_t *m = g->members; m; m = m->next)
        if (!member_supports(m, proto))
            return false;
    return true;
}

/* Picks the protocol all members support with the most votes, each member
 * voting for its most preferred protocol among those (Kafka's rule). */
static char *select_protocol(group_t *g)
{
    member_t *first = g->members;
    const char *best = NULL;
    int best_votes = -1;
    if (!first)
        return NULL;
    for (int i = 0; i < first->nprotocols; i++) {
        const char *cand = first->pnames[i];
        if (!all_support(g, cand))
            continue;
        int votes = 0;
        for (member_t *m = g->members; m; m = m->next)
            for (int k = 0; k < m->nprotocols; k++)
                if (all_support(g, m->pnames[k])) {
                    votes += strcmp(m->pnames[k], cand) == 0;
                    break;
                }
        if (votes > best_votes) {
            best_votes = votes;
            best = cand;
        }
    }
    return best ? strdup(best) : NULL;
}

static void new_member_id(const char *client_id, char *out, size_t cap)
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != sizeof(b))
        memset(b, 0x5a, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, cap, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             client_id, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
}

/* ---- join ----------------------------------------------------------------- */

static sp_join_group_response_t *join_resp(sp_req_t *req, int16_t err)
{
    sp_join_group_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r)
        return NULL;
    sp_join_group_response_init(r);
    r->error_code = err;
    r->members.n = 0;
    return r;
}

/* A JoinGroup error answer, as Kafka builds them: protocol name null from
 * v7 (where it may be), the member id given (MEMBER_ID_REQUIRED's new
 * one), or for UNKNOWN_MEMBER_ID the one the request named, else "". */
static void answer_join_error(sp_req_t *req, int16_t err, const char *member_id)
{
    sp_join_group_response_t *r = join_resp(req, err);
    if (!r) {
        sp_req_post(req, respond_on_worker, NULL);
        return;
    }
    if (req->r.hdr.request_api_version >= 7)
        r->protocol_name = SP_STR_NULL;
    if (member_id)
        r->member_id = sp_str_c(sp_arena_strdup(&req->arena, member_id, strlen(member_id)));
    else if (err == SP_ERR_UNKNOWN_MEMBER_ID)
        r->member_id = ((const sp_join_group_request_t *)req->r.body)->member_id; /* the frame outlives r */
    answer(req, r);
}

/* The JoinGroup answer for member m of the current generation, built in
 * req's arena (the member list only for the leader). */
static sp_join_group_response_t *build_join(group_t *g, member_t *m, sp_req_t *req)
{
    sp_join_group_response_t *r = join_resp(req, 0);
    if (!r)
        return NULL;
    sp_arena_t *a = &req->arena;
    r->generation_id = g->generation;
    r->protocol_type = as_str(g->protocol_type ? sp_arena_strdup(a, g->protocol_type, strlen(g->protocol_type)) : NULL);
    r->protocol_name = as_str(g->protocol ? sp_arena_strdup(a, g->protocol, strlen(g->protocol)) : NULL);
    r->leader = sp_str_c(sp_arena_strdup(a, g->leader ? g->leader : "", g->leader ? strlen(g->leader) : 0));
    r->member_id = sp_str_c(sp_arena_strdup(a, m->id, strlen(m->id)));
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        r->members.v = sp_join_group_response_member_alloc(a, g->nmembers);
        r->members.n = r->members.v ? g->nmembers : 0;
        int i = 0;
        for (member_t *x = g->members; x && i < r->members.n; x = x->next, i++) {
            int p = 0;
            for (int k = 0; k < x->nprotocols; k++)
                if (g->protocol && strcmp(x->pnames[k], g->protocol) == 0)
                    p = k;
            r->members.v[i].member_id = sp_str_c(sp_arena_strdup(a, x->id, strlen(x->id)));
            r->members.v[i].group_instance_id =
                x->instance_id ? sp_str_c(sp_arena_strdup(a, x->instance_id, strlen(x->instance_id))) : SP_STR_NULL;
            uint8_t *md = sp_arena_alloc(a, (size_t)(x->nprotocols ? x->pmeta_len[p] : 0) + 1);
            if (md && x->nprotocols)
                memcpy(md, x->pmeta[p], (size_t)x->pmeta_len[p]);
            r->members.v[i].metadata = (sp_bytes_t){ md, x->nprotocols ? x->pmeta_len[p] : 0 };
        }
    }
    return r;
}

/* Answers a member's parked JoinGroup for the completed rebalance. */
static void answer_join(group_t *g, member_t *m)
{
    sp_req_t *req = m->join_req;
    m->join_req = NULL;
    if (req)
        answer(req, build_join(g, m, req));
}

static void remove_member(sp_coordinator_t *c, group_t *g, member_t *m, const char *why);

static void join_timeout(uv_timer_t *t)
{
    group_t *g = t->data;
    sp_coordinator_t *c = g->c;
    if (g->state != PREPARING)
        return;
    if (g->initial_delay) {
        g->initial_delay = false;
        /* the initial delay is over: complete if everyone is in */
    } else {
        /* members that did not rejoin in time leave the group; they are
         * picked first, since the last removal completes the join and
         * resets every member's 'joined' */
        int n = 0;
        for (member_t *m = g->members; m; m = m->next)
            n += !m->joined;
        member_t **late = calloc((size_t)(n ? n : 1), sizeof(*late));
        int k = 0;
        for (member_t *m = g->members; m && late; m = m->next)
            if (!m->joined)
                late[k++] = m;
        for (int i = 0; i < k; i++)
            remove_member(c, g, late[i], "did not rejoin within the rebalance timeout");
        free(late);
    }
    maybe_complete_join(c, g);
}

static int32_t max_rebalance_timeout(group_t *g)
{
    int32_t t = 0;
    for (member_t *m = g->members; m; m = m->next)
        if (m->rebalance_timeout > t)
            t = m->rebalance_timeout;
    return t > 0 ? t : 60000;
}

static void ensure_join_timer(sp_coordinator_t *c, group_t *g)
{
    if (!g->join_timer_init) {
        uv_timer_init(&c->loop, &g->join_timer);
        g->join_timer.data = g;
        g->join_timer_init = true;
    }
}

static void prepare_rebalance(sp_coordinator_t *c, group_t *g, const char *why)
{
    g->sync_seq = 0; /* an assignment still being written is void */
    /* parked syncs of the old generation learn about the rebalance */
    for (member_t *m = g->members; m; m = m->next) {
        if (m->sync_req) {
            sp_sync_group_response_t *r = sp_arena_zalloc(&m->sync_req->arena, sizeof(*r));
            if (r) {
                sp_sync_group_response_init(r);
                r->error_code = SP_ERR_REBALANCE_IN_PROGRESS;
                r->assignment = (sp_bytes_t){ (const uint8_t *)"", 0 };
            }
            answer(m->sync_req, r);
            m->sync_req = NULL;
        }
        m->joined = m->join_req != NULL;
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
    }
    ensure_join_timer(c, g);
    int64_t delay = sp_config_long(c->cfg, "group.initial.rebalance.delay.ms");
    if (g->state == EMPTY && delay > 0) {
        g->initial_delay = true;
        g->delay_deadline = now_ms() + max_rebalance_timeout(g);
        uv_timer_start(&g->join_timer, join_timeout, (uint64_t)delay, 0);
    } else {
        g->initial_delay = false;
        uv_timer_start(&g->join_timer, join_timeout, (uint64_t)max_rebalance_timeout(g), 0);
    }
    sp_info("group", "group %s: preparing rebalance (generation %d): %s", g->id, g->generation, why);
    set_state(g, PREPARING);
}

static void complete_join(sp_coordinator_t *c, group_t *g)
{
    uv_timer_stop(&g->join_timer);
    g->initial_delay = false;
    g->generation++;
    free(g->protocol);
    g->protocol = g->nmembers ? select_protocol(g) : NULL;
    if (!g->nmembers) {
        free(g->leader);
        g->leader = NULL;
        set_state(g, EMPTY);
        /* an empty generation is recorded, as Kafka does */
        records_t r;
        records_init(&r);
        add_group_record(&r, g, false);
        persist_note(c, g->id, &r);
        return;
    }
    bool leader_in = false;
    for (member_t *m = g->members; m; m = m->next)
        leader_in |= g->leader && strcmp(g->leader, m->id) == 0;
    if (!leader_in) {
        free(g->leader);
        g->leader = strdup(g->members->id);
    }
    set_state(g, COMPLETING);
    sp_info("group", "group %s: generation %d with %d member%s, protocol %s, leader %s", g->id,
            g->generation, g->nmembers, g->nmembers == 1 ? "" : "s", g->protocol ? g->protocol : "-",
            g->leader);
    for (member_t *m = g->members; m; m = m->next) {
        m->joined = false;
        answer_join(g, m);
        touch(m);
    }
}

static void maybe_complete_join(sp_coordinator_t *c, group_t *g)
{
    if (g->state != PREPARING || g->initial_delay)
        return;
    for (member_t *m = g->members; m; m = m->next)
        if (!m->joined)
            return;
    if (g->npending > 0) {
        /* members told to come back with their id: wait for them too */
        int64_t now = now_ms();
        bool live = false;
        for (int i = 0; i < g->npending; i++)
            live |= g->pending[i].deadline > now;
        if (live)
            return;
    }
    complete_join(c, g);
}

static void remove_member(sp_coordinator_t *c, group_t *g, member_t *m, const char *why)
{
    member_t **pp = &g->members;
    while (*pp && *pp != m)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = m->next;
    g->nmembers--;
    sp_info("group", "group %s: member %s removed: %s", g->id, m->id, why);
    if (m->join_req) {
        answer_join_error(m->join_req, SP_ERR_UNKNOWN_MEMBER_ID, NULL);
        m->join_req = NULL;
    }
    if (m->sync_req) {
        sp_sync_group_response_t *r = sp_arena_zalloc(&m->sync_req->arena, sizeof(*r));
        if (r) {
            sp_sync_group_response_init(r);
            r->error_code = SP_ERR_UNKNOWN_MEMBER_ID;
            r->assignment = (sp_bytes_t){ (const uint8_t *)"", 0 };
        }
        answer(m->sync_req, r);
        m->sync_req = NULL;
    }
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        free(g->leader);
        g->leader = g->members ? strdup(g->members->id) : NULL;
    }
    drop_member(m);
    switch (g->state) {
    case STABLE:
    case COMPLETING:
        prepare_rebalance(c, g, "a member left");
        break;
    case PREPARING:
        break;
    default:
        break;
    }
    if (g->state == PREPARING)
        maybe_complete_join(c, g);
}

static void session_expired(uv_timer_t *t)
{
    member_t *m = t->data;
    remove_member(m->g->c, m->g, m, "session timeout expired");
}

static member_t *add_member(sp_coordinator_t *c, group_t *g, const char *id, sp_req_t *req,
                            const sp_join_group_request_t *b)
{
    member_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->g = g;
    m->id = strdup(id);
    m->instance_id = b->group_instance_id.len >= 0 ? dups(b->group_instance_id) : NULL;
    m->client_id = req->r.hdr.client_id.len >= 0 ? dups(req->r.hdr.client_id) : strdup("");
    m->client_host = strdup(sp_req_client_host(req));
    m->session_timeout = b->session_timeout_ms;
    m->rebalance_timeout = req->r.hdr.request_api_version >= 1 ? b->rebalance_timeout_ms : b->session_timeout_ms;
    if (!m->id || !m->client_id || !m->client_host || set_protocols(m, b) != 0) {
        free(m->id);
        free(m);
        return NULL;
    }
    uv_timer_init(&c->loop, &m->timer);
    m->timer.data = m;
    m->timer_ready = true;
    /* appended: the first member stays first (leader preference) */
    member_t **pp = &g->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    g->nmembers++;
    if (!g->protocol_type)
        g->protocol_type = dups(b->protocol_type);
    return m;
}

static void drop_pending(group_t *g, sp_str_t id)
{
    for (int i = 0; i < g->npending; i++) {
        if (str_is(g->pending[i].id, id)) {
            free(g->pending[i].id);
            g->pending[i] = g->pending[--g->npending];
            return;
        }
    }
}

static bool is_pending(group_t *g, sp_str_t id)
{
    for (int i = 0; i < g->npending; i++)
        if (str_is(g->pending[i].id, id))
            return true;
    return false;
}

/*
 * The write of a static member's new id (a rejoin of a Stable group
 * without a rebalance) ended.  Durable: its JoinGroup is answered.  Not:
 * the member gets its old id and timeouts back, and the JoinGroup fails
 * with the write's error and no member id, as Kafka does
 * (GroupMetadataManager: "Reverting to old member id").  g may be NULL
 * (the group is gone).  Coordinator thread.
 */
static void static_join_settled(group_t *g, write_t *x)
{
    sp_join_group_response_t *r = x->resp;
    if (!x->err) {
        answer(x->req, r);
        return;
    }
    member_t *m = g && x->new_id ? find_member(g, sp_str_c(x->new_id)) : NULL;
    if (m && x->old_id) {
        sp_warn("group", "group %s: static member %s not written (%s): back to member id %s", g->id,
                x->new_id, sp_kafka_error_name(x->err), x->old_id);
        free(m->id);
        m->id = x->old_id;
        x->old_id = NULL;
        if (g->leader && strcmp(g->leader, x->new_id) == 0) {
            free(g->leader);
            g->leader = strdup(m->id);
        }
        m->session_timeout = x->old_session;
        m->rebalance_timeout = x->old_rebalance;
        touch(m);
    }
    if (r) {
        const char *leader = g && g->leader ? g->leader : "";
        r->error_code = x->err;
        r->member_id = sp_str_lit("");
        r->members.n = 0;
        r->skip_assignment = false;
        r->leader = sp_str_c(sp_arena_strdup(&x->req->arena, leader, strlen(leader)));
    }
    answer(x->req, r);
}

static void op_join(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_join_group_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    int32_t min_s = (int32_t)sp_config_long(c->cfg, "group.min.session.timeout.ms");
    int32_t max_s = (int32_t)sp_config_long(c->cfg, "group.max.session.timeout.ms");
    (void)arg;
    if (b->group_id.len <= 0) {
        answer_join_error(req, SP_ERR_INVALID_GROUP_ID, NULL);
        return;
    }
    if (b->session_timeout_ms < min_s || b->session_timeout_ms > max_s) {
        answer_join_error(req, SP_ERR_INVALID_SESSION_TIMEOUT, NULL);
        return;
    }
    if (unkeepable_id(b->group_id)) {
        answer_join_error(req, SP_ERR_INVALID_GROUP_ID, NULL);
        return;
    }
    group_t *g = get_group(c, b->group_id);
    if (!g) {
        answer_join_error(req, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
        return;
    }
    if (g->state == DEAD) {
        answer_join_error(req, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
        return;
    }
    if (!compatible(g, b)) {
        answer_join_error(req, SP_ERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
        return;
    }
    member_t *m;
    if (b->member_id.len <= 0) {
        /* an unknown member */
        member_t *st = find_static(g, b->group_instance_id);
        char id[512], prefix[300];
        /* Kafka: client.id (or group.instance.id) + "-" + a UUID */
        if (b->group_instance_id.len >= 0)
            snprintf(prefix, sizeof(prefix), "%.*s", (int)b->group_instance_id.len, b->group_instance_id.ptr);
        else
            snprintf(prefix, sizeof(prefix), "%.*s", req->r.hdr.client_id.len > 0 ? (int)req->r.hdr.client_id.len : 0,
                     req->r.hdr.client_id.len > 0 ? req->r.hdr.client_id.ptr : "");
        new_member_id(prefix, id, sizeof(id));
        if (st) {
            /* a static member restarted: it takes its old place, under a
             * new id; no rebalance if nothing changed (KIP-345) */
            if (st->join_req)
                answer_join_error(st->join_req, SP_ERR_FENCED_INSTANCE_ID, NULL), st->join_req = NULL;
            if (st->sync_req) {
                sp_sync_group_response_t *r = sp_arena_zalloc(&st->sync_req->arena, sizeof(*r));
                if (r) {
                    sp_sync_group_response_init(r);
                    r->error_code = SP_ERR_FENCED_INSTANCE_ID;
                    r->assignment = (sp_bytes_t){ (const uint8_t *)"", 0 };
                }
                answer(st->sync_req, r);
                st->sync_req = NULL;
            }
            bool was_leader = g->leader && strcmp(g->leader, st->id) == 0;
            char *old_leader = g->leader ? strdup(g->leader) : NULL;
            char *old_id = st->id;
            int32_t old_session = st->session_timeout, old_rebalance = st->rebalance_timeout;
            st->id = strdup(id);
            if (was_leader) {
                free(g->leader);
                g->leader = strdup(id);
            }
            st->session_timeout = b->session_timeout_ms;
            st->rebalance_timeout = v >= 1 ? b->rebalance_timeout_ms : b->session_timeout_ms;
            touch(st);
            bool same = same_protocols(st, b);
            if (g->state == STABLE && same) {
                sp_info("group", "group %s: static member %.*s rejoined as %s without a rebalance",
                        g->id, (int)b->group_instance_id.len, b->group_instance_id.ptr, id);
                /* Kafka: the rejoined leader must not compute an assignment
                 * a Stable group would ignore.  Below v9 the answer names
                 * the old leader id (so it is not this member) and lists no
                 * members; from v9 it says skip_assignment instead. */
                sp_join_group_response_t *jr = build_join(g, st, req);
                if (jr && was_leader) {
                    if (v >= 9) {
                        jr->skip_assignment = true;
                    } else {
                        jr->members.n = 0;
                        jr->leader = sp_str_c(sp_arena_strdup(&req->arena, old_leader, strlen(old_leader)));
                    }
                }
                free(old_leader);
                /* answered once the new id is durable; undone if it is
                 * not (Kafka: "Reverting to old member id") */
                write_t *x = write_new(c, W_STATIC_JOIN);
                if (!x) {
                    free(old_id);
                    answer(req, jr);
                    return;
                }
                x->req = req;
                x->resp = jr;
                x->old_id = old_id;
                x->new_id = strdup(id);
                x->old_session = old_session;
                x->old_rebalance = old_rebalance;
                x->was_leader = was_leader;
                records_t r;
                records_init(&r);
                add_group_record(&r, g, false);
                int16_t err = persist(c, g->id, &r, x);
                if (err) {
                    x->err = err;
                    static_join_settled(g, x);
                    write_free(x);
                }
                return;
            }
            free(old_leader);
            free(old_id);
            if (!same)
                set_protocols(st, b);
            st->join_req = req;
            st->joined = true;
            if (g->state != PREPARING)
                prepare_rebalance(c, g, "a static member rejoined with new metadata");
            maybe_complete_join(c, g);
            return;
        }
        int64_t max_size = sp_config_long(c->cfg, "group.max.size");
        if (g->nmembers >= max_size) {
            answer_join_error(req, SP_ERR_GROUP_MAX_SIZE_REACHED, NULL);
            return;
        }
        if (v >= 4 && b->group_instance_id.len < 0) {
            /* KIP-394: the client must come back with this id */
            pending_id_t *n = realloc(g->pending, sizeof(*n) * (size_t)(g->npending + 1));
            if (n) {
                g->pending = n;
                g->pending[g->npending].id = strdup(id);
                g->pending[g->npending].deadline = now_ms() + b->session_timeout_ms;
                g->npending++;
            }
            answer_join_error(req, SP_ERR_MEMBER_ID_REQUIRED, id);
            return;
        }
        m = add_member(c, g, id, req, b);
        if (!m) {
            answer_join_error(req, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
            return;
        }
        m->join_req = req;
        m->joined = true;
        touch(m);
        if (g->state != PREPARING)
            prepare_rebalance(c, g, "a new member joined");
        maybe_complete_join(c, g);
        return;
    }
    /* a known member id (or one we asked to come back) */
    if (fenced(g, b->member_id, b->group_instance_id)) {
        answer_join_error(req, SP_ERR_FENCED_INSTANCE_ID, NULL);
        return;
    }
    m = find_member(g, b->member_id);
    if (!m) {
        if (!is_pending(g, b->member_id)) {
            answer_join_error(req, SP_ERR_UNKNOWN_MEMBER_ID, NULL);
            return;
        }
        drop_pending(g, b->member_id);
        int64_t max_size = sp_config_long(c->cfg, "group.max.size");
        if (g->nmembers >= max_size) {
            answer_join_error(req, SP_ERR_GROUP_MAX_SIZE_REACHED, NULL);
            return;
        }
        char *id = dups(b->member_id);
        m = id ? add_member(c, g, id, req, b) : NULL;
        free(id);
        if (!m) {
            answer_join_error(req, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
            return;
        }
        m->join_req = req;
        m->joined = true;
        touch(m);
        if (g->state != PREPARING)
            prepare_rebalance(c, g, "a new member joined");
        maybe_complete_join(c, g);
        return;
    }
    if (m->instance_id && b->group_instance_id.len >= 0 && !str_is(m->instance_id, b->group_instance_id)) {
        answer_join_error(req, SP_ERR_FENCED_INSTANCE_ID, NULL);
        return;
    }
    if (m->join_req) /* a retry replaces the earlier parked join */
        answer_join_error(m->join_req, SP_ERR_UNKNOWN_MEMBER_ID, NULL);
    touch(m);
    bool same = same_protocols(m, b);
    bool is_leader = g->leader && strcmp(g->leader, m->id) == 0;
    /* Kafka's doCurrentMemberJoinGroup: while the group awaits its
     * SyncGroup, anyone rejoining with the same protocols (it may have
     * missed its JoinGroup answer) gets the current generation again, the
     * leader with the member list; once stable, a follower with nothing
     * new likewise, but the leader's rejoin is its way to ask for a
     * rebalance.  (A leader rejoin rebalancing while awaiting sync made
     * kafka-python 3 livelock under load: it gives up on a slow SyncGroup
     * and joins again.) */
    if (same && (g->state == COMPLETING || (g->state == STABLE && !is_leader))) {
        m->join_req = req;
        answer_join(g, m);
        return;
    }
    if (!same)
        set_protocols(m, b);
    m->join_req = req;
    m->joined = true;
    if (g->state != PREPARING)
        prepare_rebalance(c, g, is_leader ? "the leader rejoined" : "a member changed its subscription");
    maybe_complete_join(c, g);
}

/* ---- sync ------------------------------------------------------------------ */

static sp_sync_group_response_t *sync_resp(sp_req_t *req, int16_t err)
{
    sp_sync_group_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (r) {
        sp_sync_group_response_init(r);
        r->error_code = err;
        r->assignment = (sp_bytes_t){ (const uint8_t *)"", 0 };
    }
    return r;
}

static void fill_sync(sp_req_t *req, sp_sync_group_response_t *r, group_t *g, member_t *m)
{
    uint8_t *a = sp_arena_alloc(&req->arena, (size_t)m->assignment_len + 1);
    if (a && m->assignment_len)
        memcpy(a, m->assignment, (size_t)m->assignment_len);
    r->assignment = (sp_bytes_t){ a ? a : (const uint8_t *)"", a ? m->assignment_len : 0 };
    r->protocol_type = g->protocol_type ? sp_str_c(sp_arena_strdup(&req->arena, g->protocol_type, strlen(g->protocol_type))) : SP_STR_NULL;
    r->protocol_name = g->protocol ? sp_str_c(sp_arena_strdup(&req->arena, g->protocol, strlen(g->protocol))) : SP_STR_NULL;
}

/*
 * The leader's assignment (the group's metadata record) is durable (err 0)
 * or lost.  Durable: the group is Stable and every parked SyncGroup gets
 * its assignment.  Lost: as Kafka (resetAndPropagateAssignmentWithError,
 * then a rebalance), every parked SyncGroup gets the error, assignments
 * are cleared and the group prepares a rebalance.  Coordinator thread.
 */
static void sync_settled(sp_coordinator_t *c, group_t *g, int16_t err)
{
    g->sync_seq = 0;
    if (!err)
        set_state(g, STABLE);
    for (member_t *m = g->members; m; m = m->next) {
        if (err) {
            free(m->assignment);
            m->assignment = NULL;
            m->assignment_len = 0;
        }
        if (!m->sync_req)
            continue;
        sp_sync_group_response_t *r = sync_resp(m->sync_req, err);
        if (r && !err)
            fill_sync(m->sync_req, r, g, m);
        answer(m->sync_req, r);
        m->sync_req = NULL;
    }
    if (err) {
        sp_warn("group", "group %s: assignment of generation %d not written: %s", g->id, g->generation,
                sp_kafka_error_name(err));
        prepare_rebalance(c, g, "the group metadata could not be written");
    }
}

/* Whether group id is valid for an API, as Kafka's isValidGroupId: ""
 * is a group of its own for the offset APIs, DescribeGroups and
 * DeleteGroups (empty_ok), INVALID_GROUP_ID for the membership APIs
 * (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and OffsetDelete. */
static bool empty_id_ok(sp_str_t id, bool empty_ok)
{
    return id.len > 0 || (empty_ok && id.len == 0);
}

static void op_sync(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_sync_group_request_t *b = req->r.body;
    (void)arg;
    group_t *g = find_group(c, b->group_id);
    member_t *m = g ? find_member(g, b->member_id) : NULL;
    if (!empty_id_ok(b->group_id, false)) {
        answer(req, sync_resp(req, SP_ERR_INVALID_GROUP_ID));
        return;
    }
    if (fenced(g, b->member_id, b->group_instance_id)) {
        answer(req, sync_resp(req, SP_ERR_FENCED_INSTANCE_ID));
        return;
    }
    if (!g || !m) {
        answer(req, sync_resp(req, SP_ERR_UNKNOWN_MEMBER_ID));
        return;
    }
    if (m->instance_id && b->group_instance_id.len >= 0 && !str_is(m->instance_id, b->group_instance_id)) {
        answer(req, sync_resp(req, SP_ERR_FENCED_INSTANCE_ID));
        return;
    }
    if (b->generation_id != g->generation) {
        answer(req, sync_resp(req, SP_ERR_ILLEGAL_GENERATION));
        return;
    }
    if ((b->protocol_type.len >= 0 && !str_is(g->protocol_type, b->protocol_type)) ||
        (b->protocol_name.len >= 0 && !str_is(g->protocol, b->protocol_name))) {
        answer(req, sync_resp(req, SP_ERR_INCONSISTENT_GROUP_PROTOCOL));
        return;
    }
    touch(m);
    switch (g->state) {
    case PREPARING:
        answer(req, sync_resp(req, SP_ERR_REBALANCE_IN_PROGRESS));
        return;
    case STABLE: {
        sp_sync_group_response_t *r = sync_resp(req, 0);
        if (r)
            fill_sync(req, r, g, m);
        answer(req, r);
        return;
    }
    case COMPLETING:
        break;
    default:
        answer(req, sync_resp(req, SP_ERR_UNKNOWN_MEMBER_ID));
        return;
    }
    if (m->sync_req)
        answer(m->sync_req, sync_resp(m->sync_req, SP_ERR_REBALANCE_IN_PROGRESS));
    m->sync_req = req;
    if (!g->leader || strcmp(g->leader, m->id) != 0 || g->sync_seq)
        return; /* followers wait for the leader's assignment, all for its write */
    for (int32_t i = 0; i < b->assignments.n; i++) {
        member_t *x = find_member(g, b->assignments.v[i].member_id);
        if (!x)
            continue;
        int32_t n = b->assignments.v[i].assignment.len > 0 ? b->assignments.v[i].assignment.len : 0;
        free(x->assignment);
        x->assignment = malloc((size_t)(n ? n : 1));
        if (x->assignment && n)
            memcpy(x->assignment, b->assignments.v[i].assignment.ptr, (size_t)n);
        x->assignment_len = x->assignment ? n : 0;
    }
    /* the group stays CompletingRebalance until its metadata is durable;
     * only then is it Stable and is anyone told (Kafka: storeGroup) */
    write_t *x = write_new(c, W_SYNC);
    records_t r;
    records_init(&r);
    add_group_record(&r, g, false);
    int16_t err = x ? (x->generation = g->generation, g->sync_seq = x->seq, persist(c, g->id, &r, x))
                    : (sp_batch_builder_free(&r.b), SP_ERR_UNKNOWN_SERVER_ERROR);
    if (err) {
        write_free(x);
        sync_settled(c, g, err);
    }
}

/* ---- heartbeat, leave ---------------------------------------------------- */

static void op_heartbeat(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_heartbeat_request_t *b = req->r.body;
    sp_heartbeat_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    (void)arg;
    if (r)
        sp_heartbeat_response_init(r);
    group_t *g = find_group(c, b->group_id);
    member_t *m = g ? find_member(g, b->member_id) : NULL;
    int16_t err = 0;
    if (!empty_id_ok(b->group_id, false))
        err = SP_ERR_INVALID_GROUP_ID;
    else if (fenced(g, b->member_id, b->group_instance_id))
        err = SP_ERR_FENCED_INSTANCE_ID;
    else if (!g || !m)
        err = SP_ERR_UNKNOWN_MEMBER_ID;
    else if (m->instance_id && b->group_instance_id.len >= 0 && !str_is(m->instance_id, b->group_instance_id))
        err = SP_ERR_FENCED_INSTANCE_ID;
    else if (b->generation_id != g->generation)
        err = g->state == PREPARING ? SP_ERR_REBALANCE_IN_PROGRESS : SP_ERR_ILLEGAL_GENERATION;
    else if (g->state == PREPARING)
        err = SP_ERR_REBALANCE_IN_PROGRESS;
    if (m && err != SP_ERR_FENCED_INSTANCE_ID && err != SP_ERR_UNKNOWN_MEMBER_ID)
        touch(m);
    if (r)
        r->error_code = err;
    answer(req, r);
}

static void op_leave(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_leave_group_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    sp_leave_group_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    (void)arg;
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_leave_group_response_init(r);
    if (!empty_id_ok(b->group_id, false)) {
        r->error_code = SP_ERR_INVALID_GROUP_ID;
        answer(req, r);
        return;
    }
    group_t *g = find_group(c, b->group_id);
    if (v < 3) {
        member_t *m = g ? find_member(g, b->member_id) : NULL;
        if (!m) {
            r->error_code = SP_ERR_UNKNOWN_MEMBER_ID;
        } else {
            remove_member(c, g, m, "left the group");
        }
        answer(req, r);
        return;
    }
    int32_t n = b->members.n > 0 ? b->members.n : 0;
    r->members.v = sp_leave_group_response_member_response_alloc(&req->arena, n);
    r->members.n = r->members.v ? n : 0;
    for (int32_t i = 0; i < r->members.n; i++) {
        const sp_leave_group_request_member_identity_t *mi = &b->members.v[i];
        sp_leave_group_response_member_response_t *o = &r->members.v[i];
        o->member_id = mi->member_id;
        o->group_instance_id = mi->group_instance_id;
        member_t *m = NULL;
        if (g) {
            if (mi->member_id.len > 0)
                m = find_member(g, mi->member_id);
            else
                m = find_static(g, mi->group_instance_id);
        }
        if (!m) {
            o->error_code = SP_ERR_UNKNOWN_MEMBER_ID;
        } else if (m->instance_id && mi->group_instance_id.len >= 0 && !str_is(m->instance_id, mi->group_instance_id)) {
            o->error_code = SP_ERR_FENCED_INSTANCE_ID;
        } else {
            remove_member(c, g, m, mi->reason.len > 0 ? "left the group" : "left the group");
        }
    }
    if (!g)
        r->error_code = 0;
    answer(req, r);
}

/* ---- offsets ---------------------------------------------------------------- */

/* Sets err on every partition of an OffsetCommit response that has no
 * error of its own (OffsetCommitRequest.getErrorResponse, for a write). */
static void commit_error(sp_offset_commit_response_t *r, int16_t err)
{
    for (int32_t t = 0; t < r->topics.n; t++)
        for (int32_t p = 0; p < r->topics.v[t].partitions.n; p++)
            if (!r->topics.v[t].partitions.v[p].error_code)
                r->topics.v[t].partitions.v[p].error_code = err;
}

/* The write of commits x ended: they become the group's offsets if it is
 * durable, and the OffsetCommit is answered, with the write's error in
 * every partition if not.  g may be NULL (the group is gone: nothing to
 * apply).  Coordinator thread. */
static void commit_settled(group_t *g, write_t *x)
{
    if (g)
        settle_commits(g, x->seq, x->err == 0, x->last_offset);
    if (x->err)
        commit_error(x->resp, x->err);
    answer(x->req, x->resp);
}

static void op_commit(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_offset_commit_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    (void)arg;
    sp_offset_commit_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_offset_commit_response_init(r);
    int32_t nt = b->topics.n > 0 ? b->topics.n : 0;
    r->topics.v = sp_offset_commit_response_topic_alloc(&req->arena, nt);
    r->topics.n = r->topics.v ? nt : 0;
    int16_t group_err = 0;
    group_t *g = NULL;
    if (unkeepable_id(b->group_id)) { /* "" is a group id here, as in Kafka (empty_id_ok) */
        group_err = SP_ERR_INVALID_GROUP_ID;
    } else {
        g = find_group(c, b->group_id);
        bool simple = v == 0 || (b->generation_id_or_member_epoch < 0 && b->member_id.len <= 0);
        if (simple) {
            if (g && g->nmembers > 0 && g->state != EMPTY)
                group_err = SP_ERR_UNKNOWN_MEMBER_ID; /* a live group needs a member's commit */
            else if (!g)
                g = get_group(c, b->group_id);
        } else {
            member_t *m = g ? find_member(g, b->member_id) : NULL;
            if (fenced(g, b->member_id, b->group_instance_id))
                group_err = SP_ERR_FENCED_INSTANCE_ID;
            else if (!g || !m)
                group_err = SP_ERR_UNKNOWN_MEMBER_ID;
            else if (m->instance_id && b->group_instance_id.len >= 0 && !str_is(m->instance_id, b->group_instance_id))
                group_err = SP_ERR_FENCED_INSTANCE_ID;
            else if (b->generation_id_or_member_epoch != g->generation)
                group_err = SP_ERR_ILLEGAL_GENERATION;
            else if (g->state == COMPLETING)
                group_err = SP_ERR_REBALANCE_IN_PROGRESS;
            if (m && !group_err)
                touch(m);
        }
        if (!group_err && !g)
            group_err = SP_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    int64_t max_meta = sp_config_long(c->cfg, "offset.metadata.max.bytes");
    int64_t now = now_ms();
    records_t rec;
    records_init(&rec);
    /* the commits are staged, not applied: OffsetFetch shows them only
     * once their write is durable (settle_commits), as Kafka does */
    write_t *x = g && !group_err ? write_new(c, W_COMMIT) : NULL;
    if (g && !group_err && !x)
        group_err = SP_ERR_UNKNOWN_SERVER_ERROR;
    sp_image_t *img = sp_image_acquire(c->broker->images);
    for (int32_t t = 0; t < r->topics.n; t++) {
        const sp_offset_commit_request_topic_t *rt = &b->topics.v[t];
        sp_offset_commit_response_topic_t *to = &r->topics.v[t];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        to->name = rt->name;
        to->partitions.v = sp_offset_commit_response_partition_alloc(&req->arena, np);
        to->partitions.n = to->partitions.v ? np : 0;
        const sp_topic_info_t *ti = sp_image_topic(img, rt->name.ptr, rt->name.len);
        for (int32_t p = 0; p < to->partitions.n; p++) {
            const sp_offset_commit_request_partition_t *rp = &rt->partitions.v[p];
            sp_offset_commit_response_partition_t *po = &to->partitions.v[p];
            po->partition_index = rp->partition_index;
            if (group_err) {
                po->error_code = group_err;
                continue;
            }
            if (!ti || rp->partition_index < 0 || rp->partition_index >= ti->npartitions) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (rp->committed_metadata.len > max_meta) {
                po->error_code = SP_ERR_OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            char topic[256];
            snprintf(topic, sizeof(topic), "%.*s", (int)rt->name.len, rt->name.ptr);
            offset_t o;
            o.topic = topic;
            o.partition = rp->partition_index;
            o.offset = rp->committed_offset;
            o.leader_epoch = v >= 6 ? rp->committed_leader_epoch : -1;
            o.metadata = rp->committed_metadata.len > 0 ? (char *)rp->committed_metadata.ptr : NULL;
            o.metadata_len = rp->committed_metadata.len > 0 ? rp->committed_metadata.len : 0;
            o.commit_ts = v == 1 && rp->commit_timestamp >= 0 ? rp->commit_timestamp : now;
            o.log_offset = -1;
            if (stage_commit(g, x->seq, &o) != 0) {
                po->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
            } else if (add_offset_record(&rec, g->id, topic, o.partition, &o) != 0) {
                g->npcommits--; /* the one just staged */
                free(g->pcommits[g->npcommits].o.topic);
                free(g->pcommits[g->npcommits].o.metadata);
                po->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
            }
        }
    }
    sp_image_release(img);
    if (!x) {
        sp_batch_builder_free(&rec.b);
        answer(req, r);
        return;
    }
    x->req = req;
    x->resp = r;
    int16_t err = persist(c, g->id, &rec, x);
    if (err) {
        x->err = err;
        commit_settled(g, x);
        write_free(x);
    }
}

/* The committed metadata of o (every byte), or "" without o, in req's
 * arena; null if that fails. */
static sp_str_t metadata_copy(sp_req_t *req, const offset_t *o)
{
    if (!o || o->metadata_len <= 0)
        return sp_str_lit("");
    char *m = sp_arena_strdup(&req->arena, o->metadata, (size_t)o->metadata_len);
    return m ? (sp_str_t){ m, o->metadata_len } : SP_STR_NULL;
}

/*
 * Fills an OffsetFetch partition list for topic: the requested partitions,
 * or (all) every partition the group has an offset for; -1 and "" where it
 * has none.  v0-v7 and v8+ use two generated types of the same layout,
 * hence the macro.
 */
#define FILL_FETCH_PARTITIONS(T, ALLOC)                                                       \
    static T *ALLOC##_filled(sp_req_t *req, group_t *g, sp_str_t topic, const int32_t *parts, \
                             int32_t np, bool all, int32_t *out_n)                           \
    {                                                                                        \
        int32_t n = np;                                                                      \
        if (all) {                                                                           \
            n = 0;                                                                           \
            for (int i = 0; g && i < g->noffsets; i++)                                       \
                n += str_is(g->offsets[i].topic, topic);                                     \
        }                                                                                    \
        T *v = ALLOC(&req->arena, n);                                                        \
        *out_n = v ? n : 0;                                                                  \
        int k = 0;                                                                           \
        for (int i = 0; v && k < n && (all ? (g && i < g->noffsets) : i < np); i++) {        \
            const offset_t *o;                                                               \
            int32_t p;                                                                       \
            if (all) {                                                                       \
                if (!str_is(g->offsets[i].topic, topic))                                     \
                    continue;                                                                \
                o = &g->offsets[i];                                                          \
                p = o->partition;                                                            \
            } else {                                                                         \
                p = parts[i];                                                                \
                o = g ? find_offset(g, topic.ptr, topic.len, p) : NULL;                      \
            }                                                                                \
            v[k].partition_index = p;                                                        \
            v[k].committed_offset = o ? o->offset : -1;                                      \
            v[k].committed_leader_epoch = o ? o->leader_epoch : -1;                          \
            v[k].metadata = metadata_copy(req, o);                                           \
            k++;                                                                             \
        }                                                                                    \
        return v;                                                                            \
    }

FILL_FETCH_PARTITIONS(sp_offset_fetch_response_partition_t, sp_offset_fetch_response_partition_alloc)
FILL_FETCH_PARTITIONS(sp_offset_fetch_response_partitions_t, sp_offset_fetch_response_partitions_alloc)

/* Distinct topics of a group's offsets, as arena strings. */
static int group_topics(sp_req_t *req, group_t *g, sp_str_t **out)
{
    int n = 0;
    sp_str_t *v = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)(g && g->noffsets ? g->noffsets : 1));
    for (int i = 0; v && g && i < g->noffsets; i++) {
        bool seen = false;
        for (int k = 0; k < n && !seen; k++)
            seen = str_is(g->offsets[i].topic, v[k]);
        if (!seen)
            v[n++] = sp_str_c(sp_arena_strdup(&req->arena, g->offsets[i].topic, strlen(g->offsets[i].topic)));
    }
    *out = v;
    return v ? n : 0;
}

static void op_offset_fetch(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_offset_fetch_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    (void)arg;
    sp_offset_fetch_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_offset_fetch_response_init(r);
    if (v < 8) {
        group_t *g = find_group(c, b->group_id);
        bool all = b->topics.n < 0;
        sp_str_t *names = NULL;
        int32_t nt = all ? group_topics(req, g, &names) : b->topics.n;
        r->topics.v = sp_offset_fetch_response_topic_alloc(&req->arena, nt);
        r->topics.n = r->topics.v ? nt : 0;
        for (int32_t t = 0; t < r->topics.n; t++) {
            sp_str_t name = all ? names[t] : b->topics.v[t].name;
            r->topics.v[t].name = name;
            r->topics.v[t].partitions.v = sp_offset_fetch_response_partition_alloc_filled(
                req, g, name, all ? NULL : b->topics.v[t].partition_indexes.v,
                all ? 0 : (b->topics.v[t].partition_indexes.n > 0 ? b->topics.v[t].partition_indexes.n : 0),
                all, &r->topics.v[t].partitions.n);
        }
        answer(req, r);
        return;
    }
    int32_t ng = b->groups.n > 0 ? b->groups.n : 0;
    r->groups.v = sp_offset_fetch_response_group_alloc(&req->arena, ng);
    r->groups.n = r->groups.v ? ng : 0;
    for (int32_t i = 0; i < r->groups.n; i++) {
        const sp_offset_fetch_request_group_t *rg = &b->groups.v[i];
        sp_offset_fetch_response_group_t *og = &r->groups.v[i];
        group_t *g = find_group(c, rg->group_id);
        og->group_id = rg->group_id;
        bool all = rg->topics.n < 0;
        sp_str_t *names = NULL;
        int32_t nt = all ? group_topics(req, g, &names) : rg->topics.n;
        og->topics.v = sp_offset_fetch_response_topics_alloc(&req->arena, nt);
        og->topics.n = og->topics.v ? nt : 0;
        for (int32_t t = 0; t < og->topics.n; t++) {
            sp_str_t name = all ? names[t] : rg->topics.v[t].name;
            og->topics.v[t].name = name;
            og->topics.v[t].partitions.v = sp_offset_fetch_response_partitions_alloc_filled(
                req, g, name, all ? NULL : rg->topics.v[t].partition_indexes.v,
                all ? 0 : (rg->topics.v[t].partition_indexes.n > 0 ? rg->topics.v[t].partition_indexes.n : 0),
                all, &og->topics.v[t].partitions.n);
        }
    }
    answer(req, r);
}

/* ---- describe, list, delete --------------------------------------------- */

static void op_describe(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_describe_groups_request_t *b = req->r.body;
    sp_arena_t *a = &req->arena;
    (void)arg;
    sp_describe_groups_response_t *r = sp_arena_zalloc(a, sizeof(*r));
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_describe_groups_response_init(r);
    int32_t n = b->groups.n > 0 ? b->groups.n : 0;
    r->groups.v = sp_describe_groups_response_described_group_alloc(a, n);
    r->groups.n = r->groups.v ? n : 0;
    for (int32_t i = 0; i < r->groups.n; i++) {
        sp_describe_groups_response_described_group_t *o = &r->groups.v[i];
        group_t *g = find_group(c, b->groups.v[i]);
        o->group_id = b->groups.v[i];
        if (!g) {
            /* v6+ (KIP-1043): GROUP_ID_NOT_FOUND, as Kafka; the admin
             * client then fails describeConsumerGroups with
             * GroupIdNotFoundException. Below v6: a Dead group, no error. */
            o->group_state = sp_str_lit("Dead");
            o->protocol_type = sp_str_lit("");
            o->protocol_data = sp_str_lit("");
            o->members.n = 0;
            if (req->r.hdr.request_api_version >= 6) {
                o->error_code = SP_ERR_GROUP_ID_NOT_FOUND;
                size_t gl = (size_t)(b->groups.v[i].len > 0 ? b->groups.v[i].len : 0);
                char *msg = sp_arena_alloc(a, gl + 24);
                if (msg) {
                    int ml = snprintf(msg, gl + 24, "Group %.*s not found.", (int)gl,
                                      b->groups.v[i].ptr ? b->groups.v[i].ptr : "");
                    o->error_message = (sp_str_t){ msg, ml };
                }
            }
            continue;
        }
        o->group_state = sp_str_c(state_names[g->state]);
        o->protocol_type = sp_str_c(sp_arena_strdup(a, g->protocol_type ? g->protocol_type : "", g->protocol_type ? strlen(g->protocol_type) : 0));
        o->protocol_data = sp_str_c(sp_arena_strdup(a, g->protocol ? g->protocol : "", g->protocol ? strlen(g->protocol) : 0));
        if (b->include_authorized_operations)
            o->authorized_operations = (1 << 3) | (1 << 6) | (1 << 8);
        o->members.v = sp_describe_groups_response_described_group_member_alloc(a, g->nmembers);
        o->members.n = o->members.v ? g->nmembers : 0;
        int k = 0;
        for (member_t *m = g->members; m && k < o->members.n; m = m->next, k++) {
            sp_describe_groups_response_described_group_member_t *mo = &o->members.v[k];
            mo->member_id = sp_str_c(sp_arena_strdup(a, m->id, strlen(m->id)));
            mo->group_instance_id = m->instance_id ? sp_str_c(sp_arena_strdup(a, m->instance_id, strlen(m->instance_id))) : SP_STR_NULL;
            mo->client_id = sp_str_c(sp_arena_strdup(a, m->client_id, strlen(m->client_id)));
            mo->client_host = sp_str_c(sp_arena_strdup(a, m->client_host, strlen(m->client_host)));
            int p = -1;
            for (int q = 0; q < m->nprotocols; q++)
                if (g->protocol && strcmp(m->pnames[q], g->protocol) == 0)
                    p = q;
            uint8_t *md = NULL;
            if (p >= 0 && (md = sp_arena_alloc(a, (size_t)m->pmeta_len[p] + 1)))
                memcpy(md, m->pmeta[p], (size_t)m->pmeta_len[p]);
            mo->member_metadata = (sp_bytes_t){ md ? md : (const uint8_t *)"", md ? m->pmeta_len[p] : 0 };
            uint8_t *as = NULL;
            if (g->state == STABLE && m->assignment_len && (as = sp_arena_alloc(a, (size_t)m->assignment_len)))
                memcpy(as, m->assignment, (size_t)m->assignment_len);
            mo->member_assignment = (sp_bytes_t){ as ? as : (const uint8_t *)"", as ? m->assignment_len : 0 };
        }
    }
    answer(req, r);
}

static void op_list(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_list_groups_request_t *b = req->r.body;
    sp_arena_t *a = &req->arena;
    (void)arg;
    sp_list_groups_response_t *r = sp_arena_zalloc(a, sizeof(*r));
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_list_groups_response_init(r);
    int n = 0;
    for (group_t *g = c->groups; g; g = g->next)
        n++;
    r->groups.v = sp_list_groups_response_listed_group_alloc(a, n);
    int k = 0;
    for (group_t *g = c->groups; g && r->groups.v; g = g->next) {
        bool ok = b->states_filter.n <= 0;
        for (int32_t i = 0; i < b->states_filter.n && !ok; i++)
            ok = b->states_filter.v[i].len == (int32_t)strlen(state_names[g->state]) &&
                 strncasecmp(b->states_filter.v[i].ptr, state_names[g->state], (size_t)b->states_filter.v[i].len) == 0;
        bool type_ok = b->types_filter.n <= 0;
        for (int32_t i = 0; i < b->types_filter.n && !type_ok; i++)
            type_ok = b->types_filter.v[i].len == 7 && strncasecmp(b->types_filter.v[i].ptr, "classic", 7) == 0;
        if (!ok || !type_ok || g->state == DEAD)
            continue;
        sp_list_groups_response_listed_group_t *o = &r->groups.v[k++];
        o->group_id = sp_str_c(sp_arena_strdup(a, g->id, strlen(g->id)));
        o->protocol_type = sp_str_c(sp_arena_strdup(a, g->protocol_type ? g->protocol_type : "", g->protocol_type ? strlen(g->protocol_type) : 0));
        o->group_state = sp_str_c(state_names[g->state]);
        o->group_type = sp_str_lit("classic");
    }
    r->groups.n = r->groups.v ? k : 0;
    answer(req, r);
}

/* Tombstones for everything of g: its offsets, the commits still being
 * written (their records precede these), its metadata. */
static void delete_group_state(group_t *g, records_t *rec)
{
    for (int i = 0; i < g->noffsets; i++)
        add_offset_record(rec, g->id, g->offsets[i].topic, g->offsets[i].partition, NULL);
    for (int i = 0; i < g->npcommits; i++) {
        const offset_t *c = &g->pcommits[i].o;
        if (!find_offset(g, c->topic, (int32_t)strlen(c->topic), c->partition))
            add_offset_record(rec, g->id, c->topic, c->partition, NULL);
    }
    add_group_record(rec, g, true);
}

/* One group's tombstones of a DeleteGroups ended; the request is answered
 * once all have (with the write's error for a group whose did not). */
static void delete_group_settled(write_t *x)
{
    delete_batch_t *db = x->batch;
    sp_delete_groups_response_t *r = db->resp;
    if (x->err)
        r->results.v[x->index].error_code = x->err;
    if (--db->pending == 0 && db->built) {
        answer(db->req, db->resp);
        free(db);
    }
}

static void op_delete_groups(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_delete_groups_request_t *b = req->r.body;
    (void)arg;
    sp_delete_groups_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_delete_groups_response_init(r);
    int32_t n = b->groups_names.n > 0 ? b->groups_names.n : 0;
    r->results.v = sp_delete_groups_response_deletable_group_result_alloc(&req->arena, n);
    r->results.n = r->results.v ? n : 0;
    /* answered once every deletion is durable (as Kafka's new coordinator);
     * the groups are forgotten at once, as Kafka 3.x did */
    delete_batch_t *db = calloc(1, sizeof(*db));
    if (!db) {
        answer(req, NULL);
        return;
    }
    db->req = req;
    db->resp = r;
    for (int32_t i = 0; i < r->results.n; i++) {
        group_t *g = find_group(c, b->groups_names.v[i]);
        r->results.v[i].group_id = b->groups_names.v[i];
        if (!g || g->state == DEAD) {
            r->results.v[i].error_code = SP_ERR_GROUP_ID_NOT_FOUND;
            continue;
        }
        if (g->nmembers > 0) {
            r->results.v[i].error_code = SP_ERR_NON_EMPTY_GROUP;
            continue;
        }
        write_t *x = write_new(c, W_DELETE_GROUP);
        if (!x) {
            r->results.v[i].error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        x->batch = db;
        x->index = i;
        records_t rec;
        records_init(&rec);
        delete_group_state(g, &rec);
        int16_t err = persist(c, g->id, &rec, x);
        if (err) {
            write_free(x);
            r->results.v[i].error_code = err;
            continue;
        }
        db->pending++;
        sp_info("group", "group %s deleted", g->id);
        set_state(g, DEAD);
        forget_group(c, g);
    }
    db->built = true;
    if (db->pending == 0) {
        answer(req, r);
        free(db);
    }
}

/* Topics a group's members subscribe to (consumer protocol), or false. */
static bool subscribed(group_t *g, sp_str_t topic)
{
    if (!g->protocol_type || strcmp(g->protocol_type, "consumer") != 0 || !g->protocol)
        return false;
    for (member_t *m = g->members; m; m = m->next) {
        for (int p = 0; p < m->nprotocols; p++) {
            if (strcmp(m->pnames[p], g->protocol) != 0 || m->pmeta_len[p] < 2)
                continue;
            sp_reader_t r = sp_reader(m->pmeta[p], (size_t)m->pmeta_len[p]);
            int16_t ver;
            sp_read_i16(&r, &ver);
            sp_arena_t a;
            sp_arena_init(&a, 1 << 20);
            sp_consumer_protocol_subscription_t s;
            sp_consumer_protocol_subscription_init(&s);
            if (ver > SP_CONSUMER_PROTOCOL_SUBSCRIPTION_MAX_VERSION)
                ver = SP_CONSUMER_PROTOCOL_SUBSCRIPTION_MAX_VERSION;
            bool hit = false;
            if (sp_consumer_protocol_subscription_decode(&r, &a, &s, ver) == 0)
                for (int32_t i = 0; i < s.topics.n && !hit; i++)
                    hit = sp_str_eq(s.topics.v[i], topic);
            sp_arena_free(&a);
            if (hit)
                return true;
        }
    }
    return false;
}

static void op_offset_delete(sp_coordinator_t *c, sp_req_t *req, void *arg)
{
    const sp_offset_delete_request_t *b = req->r.body;
    (void)arg;
    sp_offset_delete_response_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r) {
        answer(req, NULL);
        return;
    }
    sp_offset_delete_response_init(r);
    if (!empty_id_ok(b->group_id, false)) {
        r->error_code = SP_ERR_INVALID_GROUP_ID;
        answer(req, r);
        return;
    }
    group_t *g = find_group(c, b->group_id);
    if (!g || g->state == DEAD) {
        r->error_code = SP_ERR_GROUP_ID_NOT_FOUND;
        r->topics.n = 0;
        answer(req, r);
        return;
    }
    int32_t nt = b->topics.n > 0 ? b->topics.n : 0;
    r->topics.v = sp_offset_delete_response_topic_alloc(&req->arena, nt);
    r->topics.n = r->topics.v ? nt : 0;
    records_t rec;
    records_init(&rec);
    sp_image_t *img = sp_image_acquire(c->broker->images);
    for (int32_t t = 0; t < r->topics.n; t++) {
        const sp_offset_delete_request_topic_t *rt = &b->topics.v[t];
        sp_offset_delete_response_topic_t *to = &r->topics.v[t];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        to->name = rt->name;
        to->partitions.v = sp_offset_delete_response_partition_alloc(&req->arena, np);
        to->partitions.n = to->partitions.v ? np : 0;
        bool sub = subscribed(g, rt->name);
        /* Kafka answers a partition that does not exist before it asks the
         * coordinator (KafkaApis.handleOffsetDeleteRequest) */
        const sp_topic_info_t *ti = sp_image_topic(img, rt->name.ptr, rt->name.len);
        for (int32_t p = 0; p < to->partitions.n; p++) {
            int32_t idx = rt->partitions.v[p].partition_index;
            to->partitions.v[p].partition_index = idx;
            if (!ti || idx < 0 || idx >= ti->npartitions) {
                to->partitions.v[p].error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (sub) {
                to->partitions.v[p].error_code = SP_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
                continue;
            }
            if (find_offset(g, rt->name.ptr, rt->name.len, idx)) {
                char topic[256];
                snprintf(topic, sizeof(topic), "%.*s", (int)rt->name.len, rt->name.ptr);
                add_offset_record(&rec, g->id, topic, idx, NULL);
                drop_offset(g, rt->name.ptr, rt->name.len, idx);
            }
        }
    }
    sp_image_release(img);
    /* the offsets are dropped at once (as Kafka 3.x); the answer waits
     * for the tombstones to be durable and carries their write's error */
    write_t *x = write_new(c, W_OFFSET_DELETE);
    int16_t err = x ? (x->req = req, x->resp = r, persist(c, g->id, &rec, x))
                    : (sp_batch_builder_free(&rec.b), SP_ERR_UNKNOWN_SERVER_ERROR);
    if (err) {
        write_free(x);
        r->error_code = err;
        answer(req, r);
    }
}

/* ---- retention ------------------------------------------------------------ */

static void expire_offsets(uv_timer_t *t)
{
    sp_coordinator_t *c = t->data;
    int64_t retention = sp_config_long(c->cfg, "offsets.retention.minutes") * 60000;
    int64_t now = now_ms();
    group_t *g = c->groups;
    while (g) {
        group_t *next = g->next;
        if (g->state == EMPTY && g->noffsets > 0) {
            records_t rec;
            records_init(&rec);
            /* an empty group's offsets expire retention after it emptied
             * (or after the commit, for groups that never had members) */
            int i = 0;
            while (i < g->noffsets) {
                offset_t *o = &g->offsets[i];
                int64_t base = g->protocol_type ? g->state_ts : o->commit_ts;
                if (base + retention <= now) {
                    add_offset_record(&rec, g->id, o->topic, o->partition, NULL);
                    drop_offset(g, o->topic, (int32_t)strlen(o->topic), o->partition);
                } else {
                    i++;
                }
            }
            int n = rec.count;
            persist_note(c, g->id, &rec);
            if (n)
                sp_info("group", "group %s: %d committed offset%s expired", g->id, n, n == 1 ? "" : "s");
        }
        if (g->state == EMPTY && g->noffsets == 0 && g->nmembers == 0 && g->npending == 0 &&
            g->npcommits == 0) {
            records_t rec;
            records_init(&rec);
            add_group_record(&rec, g, true);
            persist_note(c, g->id, &rec);
            set_state(g, DEAD);
            forget_group(c, g);
        }
        g = next;
    }
}

/* ---- replay ----------------------------------------------------------------- */

/* Applies one record of __consumer_offsets (at log_offset) to memory. */
static void apply_record(sp_coordinator_t *c, sp_bytes_t key, sp_bytes_t value, int64_t log_offset)
{
    if (key.len < 2)
        return;
    sp_reader_t r = sp_reader(key.ptr, (size_t)key.len);
    int16_t kv;
    sp_read_i16(&r, &kv);
    sp_arena_t a;
    sp_arena_init(&a, 16 << 20);
    if (kv == 0 || kv == 1) {
        sp_offset_commit_key_t k;
        sp_offset_commit_key_init(&k);
        if (sp_offset_commit_key_decode(&r, &a, &k, kv) != 0)
            goto out;
        if (k.topic.len < 0 || memchr(k.topic.ptr, 0, (size_t)k.topic.len))
            goto out; /* not a topic name Spool writes (topics are C strings here) */
        group_t *g = get_group(c, k.group);
        if (!g)
            goto out;
        if (value.len < 0) {
            drop_offset(g, k.topic.ptr, k.topic.len, k.partition);
            goto out;
        }
        sp_reader_t vr = sp_reader(value.ptr, (size_t)value.len);
        int16_t vv;
        sp_read_i16(&vr, &vv);
        sp_offset_commit_value_t v;
        sp_offset_commit_value_init(&v);
        if (vv < 0 || vv > SP_OFFSET_COMMIT_VALUE_MAX_VERSION || sp_offset_commit_value_decode(&vr, &a, &v, vv) != 0)
            goto out;
        put_offset(g, k.topic.ptr, k.topic.len, k.partition, v.offset, v.leader_epoch, v.metadata.ptr,
                   v.metadata.len, v.commit_timestamp, log_offset);
    } else if (kv == 2) {
        sp_group_metadata_key_t k;
        sp_group_metadata_key_init(&k);
        if (sp_group_metadata_key_decode(&r, &a, &k, 2) != 0)
            goto out;
        group_t *g = find_group(c, k.group);
        if (value.len < 0) {
            if (g && g->noffsets == 0) {
                g->state = DEAD;
                forget_group(c, g);
            }
            goto out;
        }
        g = get_group(c, k.group);
        if (!g)
            goto out;
        sp_reader_t vr = sp_reader(value.ptr, (size_t)value.len);
        int16_t vv;
        sp_read_i16(&vr, &vv);
        sp_group_metadata_value_t v;
        sp_group_metadata_value_init(&v);
        if (vv < 0 || vv > SP_GROUP_METADATA_VALUE_MAX_VERSION || sp_group_metadata_value_decode(&vr, &a, &v, vv) != 0)
            goto out;
        /* the group as it was: members are back with their assignment
         * and must heartbeat within their session timeout (started once
         * the replay is over), as in Kafka */
        while (g->members) {
            member_t *m = g->members;
            g->members = m->next;
            drop_member(m);
        }
        g->nmembers = 0;
        g->generation = v.generation;
        free(g->protocol_type);
        g->protocol_type = dups(v.protocol_type);
        free(g->protocol);
        g->protocol = v.protocol.len >= 0 ? dups(v.protocol) : NULL;
        free(g->leader);
        g->leader = v.leader.len >= 0 ? dups(v.leader) : NULL;
        member_t **tail = &g->members;
        for (int32_t i = 0; i < v.members.n; i++) {
            const sp_group_metadata_value_member_metadata_t *mm = &v.members.v[i];
            member_t *m = calloc(1, sizeof(*m));
            if (!m)
                break;
            m->g = g;
            m->id = dups(mm->member_id);
            m->instance_id = mm->group_instance_id.len >= 0 ? dups(mm->group_instance_id) : NULL;
            m->client_id = dups(mm->client_id);
            m->client_host = dups(mm->client_host);
            m->session_timeout = mm->session_timeout;
            m->rebalance_timeout = mm->rebalance_timeout > 0 ? mm->rebalance_timeout : mm->session_timeout;
            int32_t sl = mm->subscription.len > 0 ? mm->subscription.len : 0;
            int32_t al = mm->assignment.len > 0 ? mm->assignment.len : 0;
            m->nprotocols = g->protocol ? 1 : 0;
            m->pnames = calloc(1, sizeof(char *));
            m->pmeta = calloc(1, sizeof(uint8_t *));
            m->pmeta_len = calloc(1, sizeof(int32_t));
            m->assignment = malloc((size_t)(al ? al : 1));
            if (!m->id || !m->client_id || !m->client_host || !m->pnames || !m->pmeta ||
                !m->pmeta_len || !m->assignment) {
                free_member(m);
                break;
            }
            if (m->nprotocols) {
                m->pnames[0] = strdup(g->protocol);
                m->pmeta[0] = malloc((size_t)(sl ? sl : 1));
                if (sl && m->pmeta[0])
                    memcpy(m->pmeta[0], mm->subscription.ptr, (size_t)sl);
                m->pmeta_len[0] = sl;
            }
            if (al)
                memcpy(m->assignment, mm->assignment.ptr, (size_t)al);
            m->assignment_len = al;
            *tail = m;
            tail = &m->next;
            g->nmembers++;
        }
        g->state = g->nmembers ? STABLE : EMPTY;
        g->state_ts = v.current_state_timestamp > 0 ? v.current_state_timestamp : now_ms();
    }
out:
    sp_arena_free(&a);
}

static int replay_record(const sp_record_t *rec, void *ctx)
{
    sp_coordinator_t *c = ctx;
    apply_record(c, rec->key, rec->value, rec->offset);
    return 0;
}

/* ---- replay without a thread (fuzz targets, tests) -------------------------- */

sp_coordinator_t *sp_coordinator_new_detached(const sp_config_t *cfg)
{
    sp_coordinator_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->cfg = cfg;
    if (load_descs() != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

void sp_coordinator_replay(sp_coordinator_t *c, sp_bytes_t key, sp_bytes_t value, int64_t log_offset)
{
    apply_record(c, key, value, log_offset);
}

int sp_coordinator_check(const sp_coordinator_t *c)
{
    for (const group_t *g = c->groups; g; g = g->next) {
        int n = 0;
        for (const member_t *m = g->members; m; m = m->next, n++)
            if (m->g != g || !m->id || m->assignment_len < 0 || (m->nprotocols && !m->pnames[0]))
                return -1; /* a member not of its group or half built */
        if (n != g->nmembers)
            return -2; /* members miscounted */
        if (g->noffsets < 0 || g->noffsets > g->capoffsets || !g->id)
            return -3;
        if (g->state != EMPTY && g->state != STABLE && g->state != DEAD && g->state != PREPARING &&
            g->state != COMPLETING)
            return -4; /* an unknown state */
        for (const group_t *h = c->groups; h != g; h = h->next)
            if (strcmp(h->id, g->id) == 0)
                return -5; /* two groups of one id */
        for (int i = 0; i < g->noffsets; i++)
            for (int k = 0; k < i; k++)
                if (g->offsets[i].partition == g->offsets[k].partition &&
                    strcmp(g->offsets[i].topic, g->offsets[k].topic) == 0)
                    return -6; /* two offsets of one partition */
    }
    return 0;
}

void sp_coordinator_free_detached(sp_coordinator_t *c)
{
    if (!c)
        return;
    while (c->groups)
        forget_group(c, c->groups);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void replay_partition(sp_coordinator_t *c, sp_partition_t *part)
{
    if (sp_partition_scan(part, 0, replay_record, c) != 0)
        sp_warn("group", "%s-%d: replay stopped at an unreadable batch", sp_partition_topic(part),
                sp_partition_index(part));
}

/* ---- settling writes ------------------------------------------------------ */

/* write_done: the outcome of write x is known; coordinator thread.  The
 * group is looked up again by id: it may be gone (then the write's effect
 * on memory is moot) or be a new group of the same id (commits are
 * matched by their write's sequence number, syncs by sync_seq). */
static void write_done(sp_coordinator_t *c, sp_req_t *unused, void *arg)
{
    write_t *x = arg;
    (void)unused;
    group_t *g = find_group(c, sp_str_c(x->group));
    if (x->err)
        sp_warn("group", "group %s: write to %s failed: %s", x->group, OFFSETS_TOPIC,
                sp_kafka_error_name(x->err));
    switch (x->kind) {
    case W_COMMIT:
        commit_settled(g, x);
        break;
    case W_SYNC:
        /* a rebalance since (sync_seq reset) makes it moot, as in Kafka */
        if (g && g->sync_seq == x->seq && g->state == COMPLETING && g->generation == x->generation)
            sync_settled(c, g, x->err);
        break;
    case W_STATIC_JOIN:
        static_join_settled(g, x);
        break;
    case W_OFFSET_DELETE:
        if (x->err)
            ((sp_offset_delete_response_t *)x->resp)->error_code = x->err;
        answer(x->req, x->resp);
        break;
    case W_DELETE_GROUP:
        delete_group_settled(x);
        break;
    default:
        break;
    }
    write_free(x);
}

/* The coordinator has stopped: x's requests are answered (with its error,
 * if any) and nothing else is touched.  Any thread but the coordinator's. */
static void write_abandon(write_t *x)
{
    switch (x->kind) {
    case W_COMMIT:
        if (x->err)
            commit_error(x->resp, x->err);
        answer(x->req, x->resp);
        break;
    case W_STATIC_JOIN:
        if (x->err && x->resp)
            ((sp_join_group_response_t *)x->resp)->error_code = x->err;
        answer(x->req, x->resp);
        break;
    case W_OFFSET_DELETE:
        if (x->err)
            ((sp_offset_delete_response_t *)x->resp)->error_code = x->err;
        answer(x->req, x->resp);
        break;
    case W_DELETE_GROUP:
        delete_group_settled(x);
        break;
    default:
        break;
    }
    write_free(x);
}

/* ---- thread and queue ------------------------------------------------------ */

static void on_wake(sp_wakeup_t *a)
{
    sp_coordinator_t *c = a->data;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        op_t *op = c->head;
        c->head = c->tail = NULL;
        bool stop = c->stop;
        if (!op && stop)
            c->closed = true; /* from now on writes settle in write_abandon */
        pthread_mutex_unlock(&c->mu);
        if (!op) {
            if (stop) {
                /* parked requests are answered so that they are freed */
                for (group_t *g = c->groups; g; g = g->next)
                    for (member_t *m = g->members; m; m = m->next) {
                        if (m->join_req)
                            answer_join_error(m->join_req, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
                        m->join_req = NULL;
                        if (m->sync_req)
                            answer(m->sync_req, sync_resp(m->sync_req, SP_ERR_COORDINATOR_NOT_AVAILABLE));
                        m->sync_req = NULL;
                    }
                uv_stop(&c->loop);
            }
            return;
        }
        while (op) {
            op_t *next = op->next;
            bool embedded = op->embedded; /* freed with its write */
            op->fn(c, op->req, op->arg);
            if (!embedded)
                free(op);
            op = next;
        }
    }
}

static void *coordinator_main(void *arg)
{
    sp_coordinator_t *c = arg;
    pthread_setname_np(pthread_self(), "spool-group");
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Queues a request for the coordinator of its broker. */
static void submit(sp_req_t *req, void (*fn)(sp_coordinator_t *c, sp_req_t *req, void *arg))
{
    sp_coordinator_t *c = req->broker->coordinator;
    op_t *op = malloc(sizeof(*op));
    if (!op) {
        sp_req_close(req, "out of memory for a group request");
        return;
    }
    sp_req_ref(req); /* the coordinator's, dropped when answered */
    op->req = req;
    op->fn = fn;
    op->arg = NULL;
    op->embedded = false;
    if (!enqueue(c, op)) {
        free(op);
        sp_req_unref(req);
        sp_req_close(req, "the group coordinator has stopped");
    }
}

void sp_handle_join_group(sp_req_t *req) { submit(req, op_join); }
void sp_handle_sync_group(sp_req_t *req) { submit(req, op_sync); }
void sp_handle_heartbeat(sp_req_t *req) { submit(req, op_heartbeat); }
void sp_handle_leave_group(sp_req_t *req) { submit(req, op_leave); }
void sp_handle_offset_commit(sp_req_t *req) { submit(req, op_commit); }
void sp_handle_offset_fetch(sp_req_t *req) { submit(req, op_offset_fetch); }
void sp_handle_describe_groups(sp_req_t *req) { submit(req, op_describe); }
void sp_handle_list_groups(sp_req_t *req) { submit(req, op_list); }
void sp_handle_delete_groups(sp_req_t *req) { submit(req, op_delete_groups); }
void sp_handle_offset_delete(sp_req_t *req) { submit(req, op_offset_delete); }

/* ---- FindCoordinator (on the worker) ----------------------------------- */

static void find_answer(sp_req_t *req)
{
    const sp_find_coordinator_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    sp_find_coordinator_response_t resp;
    sp_find_coordinator_response_init(&resp);
    sp_image_t *img = sp_image_acquire(req->broker->images);
    const sp_broker_info_t *self = sp_image_broker(img, req->broker->node_id);
    bool ready = sp_image_topic(img, OFFSETS_TOPIC, (int32_t)strlen(OFFSETS_TOPIC)) != NULL;
    int32_t nkeys = v >= 4 ? (b->coordinator_keys.n > 0 ? b->coordinator_keys.n : 0) : 1;
    int16_t errs[1];
    (void)errs;
    if (v >= 4) {
        resp.coordinators.v = sp_find_coordinator_response_coordinator_alloc(&req->arena, nkeys);
        resp.coordinators.n = resp.coordinators.v ? nkeys : 0;
    }
    for (int32_t i = 0; i < nkeys; i++) {
        int16_t err = 0;
        const char *msg = NULL;
        sp_str_t key = v >= 4 ? b->coordinator_keys.v[i] : b->key;
        /* As Kafka answers: a group (0) or transactional (1) id of any
         * text, "" included, has a coordinator; any other key type
         * (share groups, 2, are not built) is INVALID_REQUEST */
        if (b->key_type != 0 && b->key_type != 1) {
            err = SP_ERR_INVALID_REQUEST;
            msg = "Unsupported key type";
        } else if (b->key_type == 1) {
            err = SP_ERR_COORDINATOR_NOT_AVAILABLE;
            msg = "transaction coordinators are not available yet";
        } else if (!ready || !self) {
            err = SP_ERR_COORDINATOR_NOT_AVAILABLE;
        }
        int32_t node = err ? -1 : self->node_id, port = err ? -1 : self->port;
        sp_str_t host = err ? sp_str_lit("") : sp_str_c(sp_arena_strdup(&req->arena, self->host, strlen(self->host)));
        if (v >= 4) {
            sp_find_coordinator_response_coordinator_t *c = &resp.coordinators.v[i];
            c->key = key;
            c->node_id = node;
            c->host = host;
            c->port = port;
            c->error_code = err;
            c->error_message = msg ? sp_str_c(msg) : SP_STR_NULL;
        } else {
            resp.node_id = node;
            resp.host = host;
            resp.port = port;
            resp.error_code = err;
            resp.error_message = msg ? sp_str_c(msg) : SP_STR_NULL;
        }
    }
    sp_image_release(img);
    sp_req_respond(req, &resp);
}

static void offsets_topic_created(sp_req_t *req, sp_ctl_op_t *op)
{
    if (op->topics[0].error && op->topics[0].error != SP_ERR_TOPIC_ALREADY_EXISTS)
        sp_warn("group", "cannot create %s: %s", OFFSETS_TOPIC, sp_kafka_error_name(op->topics[0].error));
    else if (!op->topics[0].error)
        sp_info("group", "created %s with %d partitions", OFFSETS_TOPIC, op->topics[0].out_partitions);
    find_answer(req);
}

void sp_coordinator_offsets_topic(const sp_config_t *cfg, sp_ctl_topic_t *t)
{
    static sp_str_t keys[] = { { "cleanup.policy", 14 }, { "segment.bytes", 13 },
                               { "compression.type", 16 } };
    static sp_str_t vals[] = { { "compact", 7 }, { "104857600", 9 }, { "producer", 8 } };
    t->name = sp_str_lit(OFFSETS_TOPIC);
    t->num_partitions = (int32_t)sp_config_long(cfg, "offsets.topic.num.partitions");
    t->replication_factor = -1;
    t->nconfigs = 3;
    t->ckeys = keys;
    t->cvalues = vals;
}

void sp_handle_find_coordinator(sp_req_t *req)
{
    sp_image_t *img = sp_image_acquire(req->broker->images);
    bool ready = sp_image_topic(img, OFFSETS_TOPIC, (int32_t)strlen(OFFSETS_TOPIC)) != NULL;
    sp_image_release(img);
    const sp_find_coordinator_request_t *b = req->r.body;
    if (ready || b->key_type != 0 || req->autocreated) {
        find_answer(req);
        return;
    }
    /* the first group of this cluster: create __consumer_offsets */
    sp_ctl_op_t *op = sp_arena_zalloc(&req->arena, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(&req->arena, sizeof(*t));
    if (!op || !t) {
        find_answer(req);
        return;
    }
    req->autocreated = true;
    sp_coordinator_offsets_topic(req->broker->config, t);
    op->kind = SP_CTL_CREATE_TOPICS;
    op->n = 1;
    op->topics = t;
    sp_ctl_submit(req, op, offsets_topic_created);
}

/* ---- start / stop ------------------------------------------------------------ */

static void coordinator_free(sp_coordinator_t *c);

static int coordinator_start(sp_coordinator_t *c, const sp_broker_t *b, const sp_config_t *cfg)
{
    c->broker = b;
    c->cfg = cfg;
    c->nparts = (int32_t)sp_config_long(cfg, "offsets.topic.num.partitions");
    if (load_descs() != 0) {
        sp_error("group", "the group-coordinator record schemas are missing from the codec");
        return -1;
    }
    if (uv_loop_init(&c->loop) != 0)
        return -1;
    c->loop_ready = true;
    if (sp_wakeup_init(&c->loop, &c->wake, on_wake) != 0)
        return -1;
    c->wake_ready = true;
    c->wake.data = c;
    sp_image_t *img = sp_image_acquire(c->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, OFFSETS_TOPIC, (int32_t)strlen(OFFSETS_TOPIC));
    int groups = 0;
    if (t) {
        if (t->npartitions != c->nparts)
            sp_warn("group", "%s has %d partitions, offsets.topic.num.partitions is %d: the topic's count is used",
                    OFFSETS_TOPIC, t->npartitions, c->nparts);
        c->nparts = t->npartitions; /* the topic decides, as in Kafka */
        for (int32_t p = 0; p < t->npartitions; p++) {
            sp_partition_t *part = sp_partitions_get(b->partitions, OFFSETS_TOPIC, (int32_t)strlen(OFFSETS_TOPIC), p);
            if (part) {
                replay_partition(c, part);
                sp_partition_unref(part);
            }
        }
        for (group_t *g = c->groups; g; g = g->next) {
            groups++;
            for (member_t *m = g->members; m; m = m->next) {
                uv_timer_init(&c->loop, &m->timer);
                m->timer.data = m;
                m->timer_ready = true;
                touch(m); /* sessions count from the restart */
            }
        }
        sp_info("group", "loaded %d group%s from %s", groups, groups == 1 ? "" : "s", OFFSETS_TOPIC);
    }
    sp_image_release(img);
    uv_timer_init(&c->loop, &c->retention);
    c->retention.data = c;
    int64_t every = sp_config_long(cfg, "offsets.retention.check.interval.ms");
    uv_timer_start(&c->retention, expire_offsets, (uint64_t)every, (uint64_t)every);
    c->running = true;
    if (pthread_create(&c->thread, NULL, coordinator_main, c) != 0) {
        c->running = false;
        return -1;
    }
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

sp_coordinator_t *sp_coordinator_start(const sp_broker_t *b, const sp_config_t *cfg)
{
    sp_coordinator_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    if (coordinator_start(c, b, cfg) != 0) {
        coordinator_free(c);
        return NULL;
    }
    return c;
}

void sp_coordinator_stop(sp_coordinator_t *c)
{
    if (!c)
        return;
    if (!c->running) {
        coordinator_free(c);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_mutex_unlock(&c->mu);
    sp_wakeup_send(&c->wake);
    pthread_join(c->thread, NULL);
    c->running = false;
    /* free groups and members; close every handle */
    group_t *g = c->groups;
    while (g) {
        group_t *next = g->next;
        member_t *m = g->members;
        while (m) {
            member_t *mn = m->next;
            drop_member(m);
            m = mn;
        }
        g->members = NULL;
        if (g->join_timer_init)
            uv_close((uv_handle_t *)&g->join_timer, group_timer_closed);
        else
            free_group(g);
        g = next;
    }
    c->groups = NULL;
    coordinator_free(c);
}

/* Closes the loop's handles and frees c (its thread stopped or never
 * started; groups already freed). */
static void coordinator_free(sp_coordinator_t *c)
{
    if (c->loop_ready) {
        uv_walk(&c->loop, close_walk, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
    }
    if (c->wake_ready)
        sp_wakeup_free(&c->wake);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
