/*
 * offsets.c - committed offsets (see offsets.h), and the APIs on them:
 * OffsetCommit, OffsetFetch, OffsetDelete, and offsets retention.
 *
 * A commit is staged (sp_offsets_stage), its records written; the
 * OffsetCommit is answered, and the commit becomes the offset, only once
 * the write settles (sp_group_commit_settled):
 *
 *   OffsetCommit --stage, persist--> pending --durable--> offset, answered
 *                                       |
 *                                       +---lost-------> dropped, answered
 *                                                        with the error
 *
 * OffsetDelete and expiry drop offsets at once (as Kafka 3.x) and write
 * their tombstones; OffsetDelete is answered once they are durable.
 *
 * Threads: the groups' (group.h).
 */
#include "group/offsets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group/internal.h"
#include "proto/gen/consumer_protocol_subscription.h"
#include "proto/gen/errors.h"
#include "proto/gen/offset_commit_request.h"
#include "proto/gen/offset_commit_response.h"
#include "proto/gen/offset_delete_request.h"
#include "proto/gen/offset_delete_response.h"
#include "proto/gen/offset_fetch_request.h"
#include "proto/gen/offset_fetch_response.h"
#include "proto/gen/txn_offset_commit_request.h"
#include "proto/gen/txn_offset_commit_response.h"
#include "util/log.h"

/* ---- the table ---------------------------------------------------------- */

static bool same_partition(const sp_offset_t *o, const char *topic, int32_t tlen, int32_t p)
{
    return o->partition == p && (int32_t)strlen(o->topic) == tlen && memcmp(o->topic, topic, (size_t)tlen) == 0;
}

sp_offset_t *sp_offsets_find(const sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p)
{
    for (int i = 0; i < t->n; i++)
        if (same_partition(&t->v[i], topic, tlen, p))
            return &t->v[i];
    return NULL;
}

void sp_offsets_put(sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p, int64_t off,
                    int32_t epoch, const char *meta, int32_t mlen, int64_t ts, int64_t log_offset)
{
    sp_offset_t *o = sp_offsets_find(t, topic, tlen, p);
    if (!o) {
        if (t->n == t->cap) {
            int cap = t->cap ? t->cap * 2 : 16;
            sp_offset_t *n = realloc(t->v, sizeof(*n) * (size_t)cap);
            if (!n)
                return;
            t->v = n;
            t->cap = cap;
        }
        o = &t->v[t->n];
        o->topic = sp_group_dupn(topic, tlen);
        if (!o->topic)
            return;
        t->n++;
        o->partition = p;
        o->metadata = NULL;
    }
    free(o->metadata);
    o->offset = off;
    o->leader_epoch = epoch;
    /* null metadata is stored as "" (Kafka's OffsetAndMetadata.NO_METADATA);
     * otherwise every byte, NULs included */
    int32_t ml = mlen > 0 ? mlen : 0;
    o->metadata = sp_group_dupn(ml ? meta : "", ml);
    o->metadata_len = o->metadata ? ml : 0;
    o->commit_ts = ts;
    o->log_offset = log_offset;
}

static void free_offset(sp_offset_t *o)
{
    free(o->topic);
    free(o->metadata);
}

/* Removes pending commits: those of write seq (seq != 0), or those of
 * topic/p (topic != NULL), keeping the order of the others. */
static void drop_pending(sp_offsets_t *t, uint64_t seq, const char *topic, int32_t tlen, int32_t p)
{
    int k = 0;
    for (int i = 0; i < t->npending; i++) {
        sp_pending_commit_t *pc = &t->pending[i];
        bool hit = seq ? pc->seq == seq : same_partition(&pc->o, topic, tlen, p);
        if (hit)
            free_offset(&pc->o);
        else
            t->pending[k++] = *pc;
    }
    t->npending = k;
}

/* A tombstone for topic/p is written (OffsetDelete, expiry, DeleteGroups)
 * or replayed: the offset goes, and so do commits of it still waiting for
 * their write (they precede the tombstone in the log), as Kafka's
 * removeOffsets. */
void sp_offsets_drop(sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p)
{
    drop_pending(t, 0, topic, tlen, p);
    int k = 0;
    for (int i = 0; i < t->ntxn; i++) {
        if (same_partition(&t->txn[i].o, topic, tlen, p))
            free_offset(&t->txn[i].o);
        else
            t->txn[k++] = t->txn[i];
    }
    t->ntxn = k;
    sp_offset_t *o = sp_offsets_find(t, topic, tlen, p);
    if (!o)
        return;
    free_offset(o);
    *o = t->v[--t->n];
}

int sp_offsets_stage(sp_offsets_t *t, uint64_t seq, int64_t producer_id, const sp_offset_t *o)
{
    if (t->npending == t->cappending) {
        int cap = t->cappending ? t->cappending * 2 : 8;
        sp_pending_commit_t *n = realloc(t->pending, sizeof(*n) * (size_t)cap);
        if (!n)
            return -1;
        t->pending = n;
        t->cappending = cap;
    }
    sp_pending_commit_t *pc = &t->pending[t->npending];
    pc->seq = seq;
    pc->producer_id = producer_id;
    pc->txn_end = SP_TXN_OPEN;
    pc->o = *o;
    pc->o.topic = strdup(o->topic);
    pc->o.metadata = sp_group_dupn(o->metadata_len > 0 ? o->metadata : "", o->metadata_len > 0 ? o->metadata_len : 0);
    if (!pc->o.topic || !pc->o.metadata) {
        free_offset(&pc->o);
        return -1;
    }
    t->npending++;
    return 0;
}

void sp_offsets_unstage_last(sp_offsets_t *t)
{
    if (t->npending > 0)
        free_offset(&t->pending[--t->npending].o);
}

/* Makes o (written at log_offset) the offset of its partition unless a
 * later record set that (invariant 2). */
static void put_if_later(sp_offsets_t *t, const sp_offset_t *o, int64_t log_offset)
{
    int32_t tl = (int32_t)strlen(o->topic);
    const sp_offset_t *cur = sp_offsets_find(t, o->topic, tl, o->partition);
    if (!cur || cur->log_offset <= log_offset)
        sp_offsets_put(t, o->topic, tl, o->partition, o->offset, o->leader_epoch, o->metadata,
                       o->metadata_len, o->commit_ts, log_offset);
}

void sp_offsets_settle(sp_offsets_t *t, uint64_t seq, bool durable, int64_t log_offset)
{
    for (int i = 0; durable && i < t->npending; i++) {
        const sp_pending_commit_t *pc = &t->pending[i];
        const sp_offset_t *c = &pc->o;
        if (pc->seq != seq)
            continue;
        if (pc->producer_id < 0 || pc->txn_end == SP_TXN_COMMITTED)
            put_if_later(t, c, log_offset);
        else if (pc->txn_end == SP_TXN_OPEN)
            sp_offsets_put_txn(t, pc->producer_id, c->topic, (int32_t)strlen(c->topic), c->partition, c->offset,
                               c->leader_epoch, c->metadata, c->metadata_len, c->commit_ts, log_offset);
    }
    drop_pending(t, seq, NULL, 0, 0);
}

void sp_offsets_put_txn(sp_offsets_t *t, int64_t producer_id, const char *topic, int32_t tlen, int32_t p,
                        int64_t off, int32_t epoch, const char *meta, int32_t mlen, int64_t ts, int64_t log_offset)
{
    sp_txn_offset_t *x = NULL;
    for (int i = 0; i < t->ntxn && !x; i++)
        if (t->txn[i].producer_id == producer_id && same_partition(&t->txn[i].o, topic, tlen, p))
            x = &t->txn[i];
    if (!x) {
        if (t->ntxn == t->captxn) {
            int cap = t->captxn ? t->captxn * 2 : 8;
            sp_txn_offset_t *n = realloc(t->txn, sizeof(*n) * (size_t)cap);
            if (!n)
                return;
            t->txn = n;
            t->captxn = cap;
        }
        x = &t->txn[t->ntxn];
        memset(x, 0, sizeof(*x));
        x->o.topic = sp_group_dupn(topic, tlen);
        if (!x->o.topic)
            return;
        x->producer_id = producer_id;
        x->o.partition = p;
        t->ntxn++;
    }
    int32_t ml = mlen > 0 ? mlen : 0;
    char *m = sp_group_dupn(ml ? meta : "", ml);
    if (!m)
        return; /* the earlier offset stays */
    free(x->o.metadata);
    x->o.metadata = m;
    x->o.metadata_len = ml;
    x->o.offset = off;
    x->o.leader_epoch = epoch;
    x->o.commit_ts = ts;
    x->o.log_offset = log_offset;
}

bool sp_offsets_txn_open(const sp_offsets_t *t, const char *topic, int32_t tlen, int32_t p)
{
    for (int i = 0; i < t->ntxn; i++)
        if (same_partition(&t->txn[i].o, topic, tlen, p))
            return true;
    for (int i = 0; i < t->npending; i++) {
        const sp_pending_commit_t *pc = &t->pending[i];
        if (pc->producer_id >= 0 && pc->txn_end == SP_TXN_OPEN && same_partition(&pc->o, topic, tlen, p))
            return true;
    }
    return false;
}

int sp_offsets_txn_end(sp_offsets_t *t, int64_t producer_id, bool commit)
{
    int ended = 0, k = 0;
    for (int i = 0; i < t->ntxn; i++) {
        sp_txn_offset_t *x = &t->txn[i];
        if (x->producer_id != producer_id) {
            t->txn[k++] = *x;
            continue;
        }
        /* Kafka keeps the most recent of a transactional and a plain
         * commit by their records' offsets (replayEndTransactionMarker) */
        if (commit)
            put_if_later(t, &x->o, x->o.log_offset);
        free_offset(&x->o);
        ended++;
    }
    t->ntxn = k;
    for (int i = 0; i < t->npending; i++) {
        sp_pending_commit_t *pc = &t->pending[i];
        if (pc->producer_id == producer_id && pc->txn_end == SP_TXN_OPEN) {
            pc->txn_end = commit ? SP_TXN_COMMITTED : SP_TXN_ABORTED;
            ended++;
        }
    }
    return ended;
}

void sp_offsets_free(sp_offsets_t *t)
{
    for (int i = 0; i < t->n; i++)
        free_offset(&t->v[i]);
    free(t->v);
    for (int i = 0; i < t->npending; i++)
        free_offset(&t->pending[i].o);
    free(t->pending);
    for (int i = 0; i < t->ntxn; i++)
        free_offset(&t->txn[i].o);
    free(t->txn);
    memset(t, 0, sizeof(*t));
}

/* ---- OffsetCommit ------------------------------------------------------- */

/* The partition count of topic, or -1 (no such topic). */
static int32_t topic_partitions(sp_groups_t *gs, sp_str_t topic)
{
    return gs->has_env ? gs->env.partitions(gs->env.ctx, topic) : -1;
}

/* Sets err on every partition of an OffsetCommit response that has no
 * error of its own (OffsetCommitRequest.getErrorResponse, for a write). */
static void commit_error(sp_offset_commit_response_t *r, int16_t err)
{
    for (int32_t t = 0; t < r->topics.n; t++)
        for (int32_t p = 0; p < r->topics.v[t].partitions.n; p++)
            if (!r->topics.v[t].partitions.v[p].error_code)
                r->topics.v[t].partitions.v[p].error_code = err;
}

void sp_group_commit_settled(sp_group_t *g, sp_group_write_t *w, int16_t err, int64_t last_offset)
{
    if (g)
        sp_offsets_settle(&g->offsets, w->seq, err == 0, last_offset);
    if (err)
        commit_error(w->resp, err);
    sp_group_answer(w->call, w->resp);
}

/* The group an OffsetCommit names, and Kafka's error for the whole
 * request (0: commit to *g). */
static int16_t commit_group(sp_groups_t *gs, const sp_offset_commit_request_t *b, int16_t v, sp_group_t **out)
{
    *out = NULL;
    if (sp_group_id_unkeepable(b->group_id)) /* "" is a group id here, as in Kafka (empty_id_ok) */
        return SP_ERR_INVALID_GROUP_ID;
    sp_group_t *g = sp_group_find(gs, b->group_id);
    int16_t err = 0;
    bool simple = v == 0 || (b->generation_id_or_member_epoch < 0 && b->member_id.len <= 0);
    if (simple) {
        if (g && g->nmembers > 0 && g->state != SP_GROUP_EMPTY)
            err = SP_ERR_UNKNOWN_MEMBER_ID; /* a live group needs a member's commit */
        else if (!g)
            g = sp_group_get(gs, b->group_id);
    } else {
        sp_member_t *m = g ? sp_group_member(g, b->member_id) : NULL;
        err = sp_group_check_member(g, m, b->member_id, b->group_instance_id);
        if (!err && b->generation_id_or_member_epoch != g->generation)
            err = SP_ERR_ILLEGAL_GENERATION;
        else if (!err && g->state == SP_GROUP_COMPLETING)
            err = SP_ERR_REBALANCE_IN_PROGRESS;
        if (m && !err)
            sp_group_touch(m);
    }
    if (!err && !g)
        err = SP_ERR_COORDINATOR_NOT_AVAILABLE;
    *out = err ? NULL : g;
    return err;
}

void sp_group_commit(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_offset_commit_request_t *b = call->body;
    int16_t v = call->version;
    sp_offset_commit_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_offset_commit_response_init(r);
    int32_t nt = b->topics.n > 0 ? b->topics.n : 0;
    r->topics.v = sp_offset_commit_response_topic_alloc(call->arena, nt);
    r->topics.n = r->topics.v ? nt : 0;
    sp_group_t *g;
    int16_t group_err = commit_group(gs, b, v, &g);
    int32_t max_meta = gs->set.offset_metadata_max_bytes;
    sp_group_records_t rec;
    sp_group_records_init(&rec, gs->now);
    /* the commits are staged, not applied: OffsetFetch shows them only
     * once their write is durable (sp_offsets_settle), as Kafka does */
    sp_group_write_t *w = g ? sp_group_write_new(gs, SP_GW_COMMIT) : NULL;
    if (g && !w)
        group_err = SP_ERR_UNKNOWN_SERVER_ERROR;
    for (int32_t t = 0; t < r->topics.n; t++) {
        const sp_offset_commit_request_topic_t *rt = &b->topics.v[t];
        sp_offset_commit_response_topic_t *to = &r->topics.v[t];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        to->name = rt->name;
        to->partitions.v = sp_offset_commit_response_partition_alloc(call->arena, np);
        to->partitions.n = to->partitions.v ? np : 0;
        int32_t tparts = group_err ? -1 : topic_partitions(gs, rt->name);
        for (int32_t p = 0; p < to->partitions.n; p++) {
            const sp_offset_commit_request_partition_t *rp = &rt->partitions.v[p];
            sp_offset_commit_response_partition_t *po = &to->partitions.v[p];
            po->partition_index = rp->partition_index;
            if (group_err) {
                po->error_code = group_err;
                continue;
            }
            if (tparts < 0 || rp->partition_index < 0 || rp->partition_index >= tparts) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (rp->committed_metadata.len > max_meta) {
                po->error_code = SP_ERR_OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            char topic[256];
            snprintf(topic, sizeof(topic), "%.*s", (int)rt->name.len, rt->name.ptr);
            sp_offset_t o;
            o.topic = topic;
            o.partition = rp->partition_index;
            o.offset = rp->committed_offset;
            o.leader_epoch = v >= 6 ? rp->committed_leader_epoch : -1;
            o.metadata = rp->committed_metadata.len > 0 ? (char *)rp->committed_metadata.ptr : NULL;
            o.metadata_len = rp->committed_metadata.len > 0 ? rp->committed_metadata.len : 0;
            o.commit_ts = v == 1 && rp->commit_timestamp >= 0 ? rp->commit_timestamp : gs->now;
            o.log_offset = -1;
            if (sp_offsets_stage(&g->offsets, w->seq, -1, &o) != 0) {
                po->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
            } else if (sp_group_records_offset(&rec, g->id, topic, o.partition, &o) != 0) {
                sp_offsets_unstage_last(&g->offsets);
                po->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
            }
        }
    }
    if (!w) {
        sp_group_records_free(&rec);
        sp_group_answer(call, r);
        return;
    }
    w->call = call;
    w->resp = r;
    int16_t err = sp_group_persist(gs, g->id, &rec, w);
    if (err) {
        sp_group_commit_settled(g, w, err, 0);
        sp_group_write_free(w);
    }
}

/* ---- TxnOffsetCommit ---------------------------------------------------- */

/*
 * A TxnOffsetCommit in Kafka's order (KafkaApis.handleTxnOffsetCommit-
 * Request, GroupCoordinatorService.commitTransactionalOffsets,
 * OffsetMetadataManager.commitTransactionalOffset):
 *
 *   1. each partition of a topic or partition that does not exist:
 *      UNKNOWN_TOPIC_OR_PARTITION (nothing else happens if none is left)
 *   2. group id null or "": INVALID_GROUP_ID on the partitions left
 *   3. KIP-890 verification (env.verify_txn; may answer later)
 *   4. the group (txn_group): ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
 *      FENCED_INSTANCE_ID, COORDINATOR_NOT_AVAILABLE
 *   5. per partition: OFFSET_METADATA_TOO_LARGE
 *   6. the others are staged and written as ONE transactional batch
 *      (the producer's id and epoch, base sequence 0, as Kafka's
 *      CoordinatorRuntime builds it); answered once durable, the write's
 *      error on every partition that had none if it is lost.
 *
 * The answer lists the partitions of step 1 first, then the others
 * (Kafka's TxnOffsetCommitResponse.Builder merges the coordinator's
 * answer after them), grouped by topic name in order of appearance.
 */

typedef struct txn_part {
    sp_str_t topic;
    const sp_txn_offset_commit_request_partition_t *rp;
    int16_t error_code;
} txn_part_t;

/* A TxnOffsetCommit under way (call->state, then the write's resp). */
typedef struct txn_commit {
    sp_group_call_t *call;
    txn_part_t *parts;          /* unknown ones first, then the others */
    int32_t n;
    int32_t first_known;        /* parts[first_known..n) went on to the group */
} txn_commit_t;

/* Sets err on parts[from..n) that have no error of their own. */
static void txn_error(txn_commit_t *tc, int32_t from, int16_t err)
{
    for (int32_t i = from; i < tc->n; i++)
        if (!tc->parts[i].error_code)
            tc->parts[i].error_code = err;
}

/* Builds the answer from tc->parts (topics by name, in order of
 * appearance) and answers. */
static void txn_answer(txn_commit_t *tc)
{
    sp_group_call_t *call = tc->call;
    sp_arena_t *a = call->arena;
    sp_txn_offset_commit_response_t *r = sp_arena_zalloc(a, sizeof(*r));
    int32_t *topic_of = sp_arena_alloc(a, sizeof(int32_t) * (size_t)(tc->n ? tc->n : 1));
    if (!r || !topic_of) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_txn_offset_commit_response_init(r);
    int32_t nt = 0;
    for (int32_t i = 0; i < tc->n; i++) {
        topic_of[i] = -1;
        for (int32_t k = 0; k < i && topic_of[i] < 0; k++)
            if (sp_str_eq(tc->parts[k].topic, tc->parts[i].topic))
                topic_of[i] = topic_of[k];
        if (topic_of[i] < 0)
            topic_of[i] = nt++;
    }
    r->topics.v = sp_txn_offset_commit_response_topic_alloc(a, nt);
    if (!r->topics.v) {
        sp_group_answer(call, NULL);
        return;
    }
    r->topics.n = nt;
    for (int32_t t = 0; t < nt; t++) {
        int32_t np = 0, first = -1;
        for (int32_t i = 0; i < tc->n; i++)
            if (topic_of[i] == t) {
                np++;
                if (first < 0)
                    first = i;
            }
        sp_txn_offset_commit_response_topic_t *to = &r->topics.v[t];
        to->name = tc->parts[first].topic;
        to->partitions.v = sp_txn_offset_commit_response_partition_alloc(a, np);
        if (!to->partitions.v) {
            sp_group_answer(call, NULL);
            return;
        }
        for (int32_t i = 0; i < tc->n; i++)
            if (topic_of[i] == t) {
                sp_txn_offset_commit_response_partition_t *po = &to->partitions.v[to->partitions.n++];
                po->partition_index = tc->parts[i].rp->partition_index;
                po->error_code = tc->parts[i].error_code;
            }
    }
    sp_group_answer(call, r);
}

/* Kafka's ClassicGroup.validateMember: a static member's instance id
 * must be known (UNKNOWN_MEMBER_ID) and hold member_id
 * (FENCED_INSTANCE_ID); member_id must be a member (UNKNOWN_MEMBER_ID). */
static int16_t txn_check_member(const sp_group_t *g, sp_str_t member_id, sp_str_t instance)
{
    if (instance.len >= 0) {
        const sp_member_t *st = NULL;
        for (const sp_member_t *m = g->members; m && !st; m = m->next)
            if (sp_group_str_is(m->instance_id, instance))
                st = m;
        if (!st)
            return SP_ERR_UNKNOWN_MEMBER_ID;
        if (!sp_group_str_is(st->id, member_id))
            return SP_ERR_FENCED_INSTANCE_ID;
    }
    return sp_group_member(g, member_id) ? 0 : SP_ERR_UNKNOWN_MEMBER_ID;
}

/*
 * The group a TxnOffsetCommit names (*out), or Kafka's error for the
 * whole request (OffsetMetadataManager.validateTransactionalOffsetCommit
 * and ClassicGroup.validateOffsetCommit with isTransactional): a group
 * that does not exist is made (a "simple" group) for a generation < 0,
 * else ILLEGAL_GENERATION; an Empty group takes a generation < 0; a
 * request naming a generation, a member or an instance must be of a
 * member of that generation; one naming none (v0-v2) is taken whatever
 * the state (unlike OffsetCommit), and a rebalance in progress is no
 * error.
 */
static int16_t txn_group(sp_groups_t *gs, const sp_txn_offset_commit_request_t *b, sp_group_t **out)
{
    *out = NULL;
    sp_group_t *g = sp_group_find(gs, b->group_id);
    if (!g) {
        if (b->generation_id >= 0)
            return SP_ERR_ILLEGAL_GENERATION;
        g = sp_group_get(gs, b->group_id);
        if (!g)
            return SP_ERR_UNKNOWN_SERVER_ERROR;
        *out = g;
        return 0;
    }
    if (g->state == SP_GROUP_DEAD)
        return SP_ERR_COORDINATOR_NOT_AVAILABLE;
    if (!(b->generation_id < 0 && g->state == SP_GROUP_EMPTY) &&
        (b->generation_id >= 0 || b->member_id.len > 0 || b->group_instance_id.len >= 0)) {
        int16_t err = txn_check_member(g, b->member_id, b->group_instance_id);
        if (err)
            return err;
        if (b->generation_id != g->generation)
            return SP_ERR_ILLEGAL_GENERATION;
    }
    *out = g;
    return 0;
}

/* Steps 4-6 of a TxnOffsetCommit whose verification answered verr. */
static void txn_commit_go(sp_groups_t *gs, txn_commit_t *tc, int16_t verr)
{
    sp_group_call_t *call = tc->call;
    const sp_txn_offset_commit_request_t *b = call->body;
    call->state = NULL;
    sp_group_t *g = NULL;
    int16_t err = verr ? verr : txn_group(gs, b, &g);
    sp_group_write_t *w = err ? NULL : sp_group_write_new(gs, SP_GW_TXN_COMMIT);
    if (!err && !w)
        err = SP_ERR_UNKNOWN_SERVER_ERROR;
    if (err) {
        txn_error(tc, tc->first_known, err);
        txn_answer(tc);
        return;
    }
    sp_group_records_t rec;
    sp_group_records_init(&rec, gs->now);
    sp_group_records_txn(&rec, b->producer_id, b->producer_epoch);
    for (int32_t i = tc->first_known; i < tc->n; i++) {
        txn_part_t *tp = &tc->parts[i];
        const sp_txn_offset_commit_request_partition_t *rp = tp->rp;
        if (rp->committed_metadata.len > gs->set.offset_metadata_max_bytes) {
            tp->error_code = SP_ERR_OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        char topic[256];
        snprintf(topic, sizeof(topic), "%.*s", (int)tp->topic.len, tp->topic.ptr);
        sp_offset_t o;
        o.topic = topic;
        o.partition = rp->partition_index;
        o.offset = rp->committed_offset;
        o.leader_epoch = call->version >= 2 ? rp->committed_leader_epoch : -1;
        o.metadata = rp->committed_metadata.len > 0 ? (char *)rp->committed_metadata.ptr : NULL;
        o.metadata_len = rp->committed_metadata.len > 0 ? rp->committed_metadata.len : 0;
        o.commit_ts = gs->now;
        o.log_offset = -1;
        if (sp_offsets_stage(&g->offsets, w->seq, b->producer_id, &o) != 0) {
            tp->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
        } else if (sp_group_records_offset(&rec, g->id, topic, o.partition, &o) != 0) {
            sp_offsets_unstage_last(&g->offsets);
            tp->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
        }
    }
    w->call = call;
    w->resp = tc;
    err = sp_group_persist(gs, g->id, &rec, w);
    if (err) {
        sp_group_txn_commit_settled(g, w, err, 0);
        sp_group_write_free(w);
    }
}

void sp_group_txn_commit_settled(sp_group_t *g, sp_group_write_t *w, int16_t err, int64_t last_offset)
{
    txn_commit_t *tc = w->resp;
    if (g)
        sp_offsets_settle(&g->offsets, w->seq, err == 0, last_offset);
    if (err)
        txn_error(tc, tc->first_known, err);
    txn_answer(tc);
}

void sp_group_txn_commit(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_txn_offset_commit_request_t *b = call->body;
    txn_commit_t *tc = sp_arena_zalloc(call->arena, sizeof(*tc));
    int32_t total = 0;
    for (int32_t t = 0; t < b->topics.n; t++)
        total += b->topics.v[t].partitions.n > 0 ? b->topics.v[t].partitions.n : 0;
    txn_part_t *parts = tc ? sp_arena_zalloc(call->arena, sizeof(*parts) * (size_t)(total ? total : 1)) : NULL;
    if (!parts) {
        sp_group_answer(call, NULL);
        return;
    }
    tc->call = call;
    tc->parts = parts;
    /* 1: partitions that do not exist first, as Kafka's handler answers
     * them before it asks the coordinator */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            tc->first_known = tc->n;
        for (int32_t t = 0; t < b->topics.n; t++) {
            const sp_txn_offset_commit_request_topic_t *rt = &b->topics.v[t];
            int32_t tparts = topic_partitions(gs, rt->name);
            for (int32_t p = 0; p < rt->partitions.n; p++) {
                int32_t idx = rt->partitions.v[p].partition_index;
                bool unknown = tparts < 0 || idx < 0 || idx >= tparts;
                if (unknown != (pass == 0))
                    continue;
                parts[tc->n].topic = rt->name;
                parts[tc->n].rp = &rt->partitions.v[p];
                parts[tc->n].error_code = unknown ? SP_ERR_UNKNOWN_TOPIC_OR_PARTITION : 0;
                tc->n++;
            }
        }
    }
    if (tc->first_known == tc->n) {
        txn_answer(tc);
        return;
    }
    /* 2: GroupCoordinatorService.isGroupIdNotEmpty (and an id Spool
     * cannot keep) */
    if (b->group_id.len <= 0 || sp_group_id_unkeepable(b->group_id)) {
        txn_error(tc, tc->first_known, SP_ERR_INVALID_GROUP_ID);
        txn_answer(tc);
        return;
    }
    /* 3: KIP-890 verification, by the owner (sp_group_env_t.verify_txn) */
    int16_t verr = 0;
    if (gs->has_env && gs->env.verify_txn) {
        char *group = sp_group_dups(b->group_id);
        sp_txn_verify_t v = { b->transactional_id, b->producer_id, b->producer_epoch, group, call->version };
        call->state = tc;
        verr = group ? gs->env.verify_txn(gs->env.ctx, &v, call) : SP_ERR_UNKNOWN_SERVER_ERROR;
        free(group);
        if (verr == SP_GROUP_VERIFY_LATER)
            return; /* sp_groups_txn_verified goes on */
    }
    txn_commit_go(gs, tc, verr);
}

void sp_groups_txn_verified(sp_groups_t *gs, sp_group_call_t *call, int16_t err, int64_t now)
{
    gs->now = now;
    txn_commit_go(gs, call->state, err);
}

/* ---- OffsetFetch -------------------------------------------------------- */

/* The committed metadata of o (every byte), or "" without o, in arena a;
 * null if that fails. */
static sp_str_t metadata_copy(sp_arena_t *a, const sp_offset_t *o)
{
    if (!o || o->metadata_len <= 0)
        return sp_str_lit("");
    char *m = sp_arena_strdup(a, o->metadata, (size_t)o->metadata_len);
    return m ? (sp_str_t){ m, o->metadata_len } : SP_STR_NULL;
}

/*
 * Fills an OffsetFetch partition list for topic: the requested partitions,
 * or (all) every partition the group has an offset for; -1 and "" where it
 * has none.  With require_stable (stable; v7+, KIP-447) a partition
 * with a transactional offset not yet ended answers UNSTABLE_OFFSET_COMMIT
 * with -1 and "" (Kafka's fetchOffsets and fetchAllOffsets; the latter
 * lists only partitions with an offset).  v0-v7 and v8+ use two
 * generated types of the same layout, hence the macro.
 */
#define FILL_FETCH_PARTITIONS(T, ALLOC)                                                       \
    static T *ALLOC##_filled(sp_arena_t *a, const sp_group_t *g, sp_str_t topic,             \
                             const int32_t *parts, int32_t np, bool all, bool stable,        \
                             int32_t *out_n)                                                 \
    {                                                                                        \
        const sp_offsets_t *os = g ? &g->offsets : NULL;                                     \
        int32_t n = np;                                                                      \
        if (all) {                                                                           \
            n = 0;                                                                           \
            for (int i = 0; os && i < os->n; i++)                                            \
                n += sp_group_str_is(os->v[i].topic, topic);                                 \
        }                                                                                    \
        T *v = ALLOC(a, n);                                                                  \
        *out_n = v ? n : 0;                                                                  \
        int k = 0;                                                                           \
        for (int i = 0; v && k < n && (all ? (os && i < os->n) : i < np); i++) {             \
            const sp_offset_t *o;                                                            \
            int32_t p;                                                                       \
            if (all) {                                                                       \
                if (!sp_group_str_is(os->v[i].topic, topic))                                 \
                    continue;                                                                \
                o = &os->v[i];                                                               \
                p = o->partition;                                                            \
            } else {                                                                         \
                p = parts[i];                                                                \
                o = os ? sp_offsets_find(os, topic.ptr, topic.len, p) : NULL;                \
            }                                                                                \
            if (stable && os && sp_offsets_txn_open(os, topic.ptr, topic.len, p)) {          \
                v[k].error_code = SP_ERR_UNSTABLE_OFFSET_COMMIT;                             \
                o = NULL;                                                                    \
            }                                                                                \
            v[k].partition_index = p;                                                        \
            v[k].committed_offset = o ? o->offset : -1;                                      \
            v[k].committed_leader_epoch = o ? o->leader_epoch : -1;                          \
            v[k].metadata = metadata_copy(a, o);                                             \
            k++;                                                                             \
        }                                                                                    \
        return v;                                                                            \
    }

FILL_FETCH_PARTITIONS(sp_offset_fetch_response_partition_t, sp_offset_fetch_response_partition_alloc)
FILL_FETCH_PARTITIONS(sp_offset_fetch_response_partitions_t, sp_offset_fetch_response_partitions_alloc)

/* Distinct topics of a group's offsets, as arena strings. */
static int group_topics(sp_arena_t *a, const sp_group_t *g, sp_str_t **out)
{
    const sp_offsets_t *os = g ? &g->offsets : NULL;
    int n = 0;
    sp_str_t *v = sp_arena_alloc(a, sizeof(sp_str_t) * (size_t)(os && os->n ? os->n : 1));
    for (int i = 0; v && os && i < os->n; i++) {
        bool seen = false;
        for (int k = 0; k < n && !seen; k++)
            seen = sp_group_str_is(os->v[i].topic, v[k]);
        if (!seen)
            v[n++] = sp_str_c(sp_arena_strdup(a, os->v[i].topic, strlen(os->v[i].topic)));
    }
    *out = v;
    return v ? n : 0;
}

void sp_group_offset_fetch(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_offset_fetch_request_t *b = call->body;
    sp_arena_t *a = call->arena;
    sp_offset_fetch_response_t *r = sp_arena_zalloc(a, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_offset_fetch_response_init(r);
    if (call->version < 8) {
        const sp_group_t *g = sp_group_find(gs, b->group_id);
        bool all = b->topics.n < 0;
        sp_str_t *names = NULL;
        int32_t nt = all ? group_topics(a, g, &names) : b->topics.n;
        r->topics.v = sp_offset_fetch_response_topic_alloc(a, nt);
        r->topics.n = r->topics.v ? nt : 0;
        for (int32_t t = 0; t < r->topics.n; t++) {
            sp_str_t name = all ? names[t] : b->topics.v[t].name;
            r->topics.v[t].name = name;
            r->topics.v[t].partitions.v = sp_offset_fetch_response_partition_alloc_filled(
                a, g, name, all ? NULL : b->topics.v[t].partition_indexes.v,
                all ? 0 : (b->topics.v[t].partition_indexes.n > 0 ? b->topics.v[t].partition_indexes.n : 0),
                all, b->require_stable, &r->topics.v[t].partitions.n);
        }
        sp_group_answer(call, r);
        return;
    }
    int32_t ng = b->groups.n > 0 ? b->groups.n : 0;
    r->groups.v = sp_offset_fetch_response_group_alloc(a, ng);
    r->groups.n = r->groups.v ? ng : 0;
    for (int32_t i = 0; i < r->groups.n; i++) {
        const sp_offset_fetch_request_group_t *rg = &b->groups.v[i];
        sp_offset_fetch_response_group_t *og = &r->groups.v[i];
        const sp_group_t *g = sp_group_find(gs, rg->group_id);
        og->group_id = rg->group_id;
        bool all = rg->topics.n < 0;
        sp_str_t *names = NULL;
        int32_t nt = all ? group_topics(a, g, &names) : rg->topics.n;
        og->topics.v = sp_offset_fetch_response_topics_alloc(a, nt);
        og->topics.n = og->topics.v ? nt : 0;
        for (int32_t t = 0; t < og->topics.n; t++) {
            sp_str_t name = all ? names[t] : rg->topics.v[t].name;
            og->topics.v[t].name = name;
            og->topics.v[t].partitions.v = sp_offset_fetch_response_partitions_alloc_filled(
                a, g, name, all ? NULL : rg->topics.v[t].partition_indexes.v,
                all ? 0 : (rg->topics.v[t].partition_indexes.n > 0 ? rg->topics.v[t].partition_indexes.n : 0),
                all, b->require_stable, &og->topics.v[t].partitions.n);
        }
    }
    sp_group_answer(call, r);
}

/* ---- OffsetDelete ------------------------------------------------------- */

/* Whether a group's members subscribe to topic (consumer protocol). */
static bool subscribed(const sp_group_t *g, sp_str_t topic)
{
    if (!g->protocol_type || strcmp(g->protocol_type, "consumer") != 0 || !g->protocol)
        return false;
    for (const sp_member_t *m = g->members; m; m = m->next) {
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

void sp_group_offset_delete(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_offset_delete_request_t *b = call->body;
    sp_offset_delete_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_offset_delete_response_init(r);
    if (!sp_group_id_ok(b->group_id, false)) {
        r->error_code = SP_ERR_INVALID_GROUP_ID;
        sp_group_answer(call, r);
        return;
    }
    sp_group_t *g = sp_group_find(gs, b->group_id);
    if (!g || g->state == SP_GROUP_DEAD) {
        r->error_code = SP_ERR_GROUP_ID_NOT_FOUND;
        r->topics.n = 0;
        sp_group_answer(call, r);
        return;
    }
    int32_t nt = b->topics.n > 0 ? b->topics.n : 0;
    r->topics.v = sp_offset_delete_response_topic_alloc(call->arena, nt);
    r->topics.n = r->topics.v ? nt : 0;
    sp_group_records_t rec;
    sp_group_records_init(&rec, gs->now);
    for (int32_t t = 0; t < r->topics.n; t++) {
        const sp_offset_delete_request_topic_t *rt = &b->topics.v[t];
        sp_offset_delete_response_topic_t *to = &r->topics.v[t];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        to->name = rt->name;
        to->partitions.v = sp_offset_delete_response_partition_alloc(call->arena, np);
        to->partitions.n = to->partitions.v ? np : 0;
        bool sub = subscribed(g, rt->name);
        /* Kafka answers a partition that does not exist before it asks the
         * coordinator (KafkaApis.handleOffsetDeleteRequest) */
        int32_t tparts = topic_partitions(gs, rt->name);
        for (int32_t p = 0; p < to->partitions.n; p++) {
            int32_t idx = rt->partitions.v[p].partition_index;
            to->partitions.v[p].partition_index = idx;
            if (tparts < 0 || idx < 0 || idx >= tparts) {
                to->partitions.v[p].error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (sub) {
                to->partitions.v[p].error_code = SP_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
                continue;
            }
            /* a tombstone also for pending transactional offsets (Kafka's
             * deleteOffsets: hasPendingTransactionalOffsets) */
            if (sp_offsets_find(&g->offsets, rt->name.ptr, rt->name.len, idx) ||
                sp_offsets_txn_open(&g->offsets, rt->name.ptr, rt->name.len, idx)) {
                char topic[256];
                snprintf(topic, sizeof(topic), "%.*s", (int)rt->name.len, rt->name.ptr);
                sp_group_records_offset(&rec, g->id, topic, idx, NULL);
                sp_offsets_drop(&g->offsets, rt->name.ptr, rt->name.len, idx);
            }
        }
    }
    /* the offsets are dropped at once (as Kafka 3.x); the answer waits
     * for the tombstones to be durable and carries their write's error */
    sp_group_write_t *w = sp_group_write_new(gs, SP_GW_OFFSET_DELETE);
    int16_t err = w ? (w->call = call, w->resp = r, sp_group_persist(gs, g->id, &rec, w))
                    : (sp_group_records_free(&rec), SP_ERR_UNKNOWN_SERVER_ERROR);
    if (err) {
        sp_group_write_free(w);
        r->error_code = err;
        sp_group_answer(call, r);
    }
}

void sp_group_offset_delete_settled(sp_group_write_t *w, int16_t err)
{
    if (err)
        ((sp_offset_delete_response_t *)w->resp)->error_code = err;
    sp_group_answer(w->call, w->resp);
}

/* ---- retention and deletion --------------------------------------------- */

void sp_group_tombstones(const sp_group_t *g, sp_group_records_t *rec)
{
    const sp_offsets_t *os = &g->offsets;
    for (int i = 0; i < os->n; i++)
        sp_group_records_offset(rec, g->id, os->v[i].topic, os->v[i].partition, NULL);
    for (int i = 0; i < os->npending; i++) {
        const sp_offset_t *c = &os->pending[i].o;
        if (!sp_offsets_find(os, c->topic, (int32_t)strlen(c->topic), c->partition))
            sp_group_records_offset(rec, g->id, c->topic, c->partition, NULL);
    }
    /* pending transactional offsets too, once per partition without an
     * offset or a pending commit (Kafka's deleteAllOffsets) */
    for (int i = 0; i < os->ntxn; i++) {
        const sp_offset_t *c = &os->txn[i].o;
        int32_t tl = (int32_t)strlen(c->topic);
        bool done = sp_offsets_find(os, c->topic, tl, c->partition) != NULL;
        for (int k = 0; k < os->npending && !done; k++)
            done = same_partition(&os->pending[k].o, c->topic, tl, c->partition);
        for (int k = 0; k < i && !done; k++)
            done = same_partition(&os->txn[k].o, c->topic, tl, c->partition);
        if (!done)
            sp_group_records_offset(rec, g->id, c->topic, c->partition, NULL);
    }
    sp_group_records_group(rec, g, true);
}

void sp_groups_expire(sp_groups_t *gs)
{
    int64_t retention = gs->set.retention_ms;
    int64_t now = gs->now;
    sp_group_t *g = gs->groups;
    while (g) {
        sp_group_t *next = g->next;
        sp_offsets_t *os = &g->offsets;
        if (g->state == SP_GROUP_EMPTY && os->n > 0) {
            sp_group_records_t rec;
            sp_group_records_init(&rec, now);
            /* an empty group's offsets expire retention after it emptied
             * (or after the commit, for groups that never had members) */
            int i = 0;
            while (i < os->n) {
                sp_offset_t *o = &os->v[i];
                int64_t base = g->protocol_type ? g->state_ts : o->commit_ts;
                /* not while a transaction may still set it (Kafka's
                 * cleanupExpiredOffsets) */
                if (base + retention <= now &&
                    !sp_offsets_txn_open(os, o->topic, (int32_t)strlen(o->topic), o->partition)) {
                    sp_group_records_offset(&rec, g->id, o->topic, o->partition, NULL);
                    sp_offsets_drop(os, o->topic, (int32_t)strlen(o->topic), o->partition);
                } else {
                    i++;
                }
            }
            int n = rec.count;
            sp_group_persist_note(gs, g->id, &rec);
            if (n)
                sp_info("group", "group %s: %d committed offset%s expired", g->id, n, n == 1 ? "" : "s");
        }
        if (g->state == SP_GROUP_EMPTY && os->n == 0 && g->nmembers == 0 && g->npending == 0 &&
            os->npending == 0 && os->ntxn == 0) {
            sp_group_records_t rec;
            sp_group_records_init(&rec, now);
            sp_group_records_group(&rec, g, true);
            sp_group_persist_note(gs, g->id, &rec);
            sp_group_set_state(g, SP_GROUP_DEAD);
            sp_group_forget(gs, g);
        }
        g = next;
    }
}
