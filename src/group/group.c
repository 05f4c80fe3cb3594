/*
 * group.c - consumer groups: membership and the rebalance state machine
 * (see group.h).
 *
 * Group states (Kafka's classic protocol):
 *
 *                 +-------------------------------------------+
 *                 |                                           v
 *   +-------+  join   +--------------------+  all joined  +---------------------+
 *   | Empty | ------> | PreparingRebalance | -----------> | CompletingRebalance |
 *   +-------+         +--------------------+  or timeout  +---------------------+
 *       ^                 ^        ^                           |  leader's SyncGroup
 *       | last member     |        | join, leave, expiry       v  (durable)
 *       | leaves/expires  |        +---------------------- +--------+
 *       +-----------------+--------------------------------| Stable |
 *                                                          +--------+
 *   Dead: deleted (DeleteGroups) or emptied and expired; forgotten at once.
 *
 * | transition                            | function                          |
 * |---------------------------------------|-----------------------------------|
 * | Empty/Stable/Completing -> Preparing  | prepare_rebalance                 |
 * | Preparing -> Completing               | complete_join (maybe_complete_join, join_timeout) |
 * | Preparing -> Empty (nobody left)      | complete_join                     |
 * | Completing -> Stable                  | sync_settled, once the leader's assignment (group_sync) is durable |
 * | Completing -> Preparing (write lost)  | sync_settled -> prepare_rebalance |
 * | Stable/Completing -> Preparing        | remove_member (leave, session expiry) |
 * | Empty -> Dead                         | group_delete, sp_groups_expire    |
 *
 * Timeouts are deadlines, run by sp_groups_tick:
 *
 * | deadline                  | set by                         | when due                  |
 * |---------------------------|--------------------------------|---------------------------|
 * | member.session_deadline   | sp_group_touch (join, sync,    | remove_member, unless the |
 * |                           | heartbeat, commit, rebalance)  | member is parked in a join|
 * |                           |                                | or sync (pushed on)       |
 * | group.join_deadline       | prepare_rebalance: the initial | join_timeout: late members|
 * |                           | delay or the rebalance timeout | removed, the join completed|
 * | gs.retention_deadline     | sp_groups_start, each check    | sp_groups_expire          |
 *
 * Writes to __consumer_offsets: nothing a write stands for is seen (in
 * memory or by a client) before it is durable, as in Kafka, whose
 * coordinator applies a write only once the append completed:
 *
 *   an operation: stage the change, build the records, sp_group_persist
 *      |
 *      |-- the append fails ---------------> the caller undoes and answers
 *      v                                      (Kafka's error)
 *   the owner's write (coordinator.c: an acks=all waiter on the partition)
 *      |
 *      v
 *   sp_groups_settle: apply the change (durable) or undo it (lost), then
 *   answer the parked calls, with the error patched in
 *
 * | kind                | staged                           | applied on success            |
 * |---------------------|----------------------------------|-------------------------------|
 * | SP_GW_COMMIT        | the group's pending commits      | the offsets, commit answered  |
 * | SP_GW_TXN_COMMIT    | pending commits of a producer    | pending transactional offsets |
 * |                     | (one transactional batch)        | (offsets at its COMMIT marker)|
 * | SP_GW_SYNC          | assignments, g->sync_seq         | Stable, syncs answered        |
 * | SP_GW_STATIC_JOIN   | the static member's new id       | the JoinGroup answered        |
 * | SP_GW_OFFSET_DELETE | offsets dropped (as Kafka 3.x)   | OffsetDelete answered         |
 * | SP_GW_DELETE_GROUP  | group forgotten (as Kafka 3.x)   | DeleteGroups answered         |
 * | SP_GW_NOTE          | (empty generation, expiry)       | nothing; a failure is logged  |
 *
 * Threads: the groups' owner's, one at a time.
 */
#include "group/group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "group/internal.h"
#include "proto/gen/delete_groups_request.h"
#include "proto/gen/delete_groups_response.h"
#include "proto/gen/describe_groups_request.h"
#include "proto/gen/describe_groups_response.h"
#include "proto/gen/errors.h"
#include "proto/gen/heartbeat_request.h"
#include "proto/gen/heartbeat_response.h"
#include "proto/gen/join_group_request.h"
#include "proto/gen/join_group_response.h"
#include "proto/gen/leave_group_request.h"
#include "proto/gen/leave_group_response.h"
#include "proto/gen/list_groups_request.h"
#include "proto/gen/list_groups_response.h"
#include "proto/gen/messages.h"
#include "proto/gen/sync_group_request.h"
#include "proto/gen/sync_group_response.h"
#include "util/config.h"
#include "util/log.h"

const char *const sp_group_state_names[] = { "Empty", "PreparingRebalance", "CompletingRebalance",
                                             "Stable", "Dead" };

void sp_group_settings_from(const sp_config_t *cfg, sp_group_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->min_session_timeout_ms = (int32_t)sp_config_long(cfg, "group.min.session.timeout.ms");
    s->max_session_timeout_ms = (int32_t)sp_config_long(cfg, "group.max.session.timeout.ms");
    s->max_size = (int32_t)sp_config_long(cfg, "group.max.size");
    s->initial_rebalance_delay_ms = (int32_t)sp_config_long(cfg, "group.initial.rebalance.delay.ms");
    s->offset_metadata_max_bytes = (int32_t)sp_config_long(cfg, "offset.metadata.max.bytes");
    s->retention_ms = sp_config_long(cfg, "offsets.retention.minutes") * 60000;
    s->retention_check_ms = sp_config_long(cfg, "offsets.retention.check.interval.ms");
}

void sp_group_answer(sp_group_call_t *call, void *resp)
{
    call->done(call, resp);
}

/* No deadline is earlier than gs->next (sp_groups_deadline). */
static void note_deadline(sp_groups_t *gs, int64_t d)
{
    if (d > 0 && d < gs->next)
        gs->next = d;
}

/* ---- writes ------------------------------------------------------------- */

/* The deletions of one DeleteGroups: answered once every write settled. */
struct sp_delete_batch {
    sp_group_call_t *call;
    void *resp;                 /* sp_delete_groups_response_t */
    int pending;                /* writes not settled */
    bool built;                 /* every write is under way */
};

sp_group_write_t *sp_group_write_new(sp_groups_t *gs, int kind)
{
    sp_group_write_t *w = calloc(1, sizeof(*w));
    if (w) {
        w->kind = kind;
        w->seq = ++gs->seq;
    }
    return w;
}

void sp_group_write_free(sp_group_write_t *w)
{
    if (!w)
        return;
    free(w->group);
    free(w->old_id);
    free(w->new_id);
    free(w);
}

int16_t sp_group_persist(sp_groups_t *gs, const char *group, sp_group_records_t *r, sp_group_write_t *w)
{
    size_t len = 0;
    uint8_t *batch = sp_group_records_finish(r, &len);
    if (!w->group && !(w->group = strdup(group))) {
        free(batch);
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    }
    if (r->count && !batch)
        return SP_ERR_UNKNOWN_SERVER_ERROR;
    int16_t err = gs->has_env ? gs->env.persist(gs->env.ctx, group, batch, len, w)
                              : SP_ERR_COORDINATOR_NOT_AVAILABLE;
    free(batch);
    return err;
}

void sp_group_persist_note(sp_groups_t *gs, const char *group, sp_group_records_t *r)
{
    if (!r->count) {
        sp_group_records_free(r);
        return;
    }
    sp_group_write_t *w = sp_group_write_new(gs, SP_GW_NOTE);
    int16_t err = w ? sp_group_persist(gs, group, r, w) : (sp_group_records_free(r), SP_ERR_UNKNOWN_SERVER_ERROR);
    if (err) {
        sp_warn("group", "group %s: metadata not written: %s", group, sp_kafka_error_name(err));
        sp_group_write_free(w);
    }
}

/* ---- groups and members ------------------------------------------------- */

sp_group_t *sp_group_find(const sp_groups_t *gs, sp_str_t id)
{
    for (sp_group_t *g = gs->groups; g; g = g->next)
        if (sp_group_str_is(g->id, id))
            return g;
    return NULL;
}

sp_group_t *sp_group_get(sp_groups_t *gs, sp_str_t id)
{
    sp_group_t *g = sp_group_find(gs, id);
    if (g)
        return g;
    /* ids are kept as C strings: one with a NUL would be stored cut short
     * and never found again, a new group made at every request
     * (fuzz_offsets found it) */
    if (sp_group_id_unkeepable(id))
        return NULL;
    g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->gs = gs;
    g->id = sp_group_dups(id);
    g->state = SP_GROUP_EMPTY;
    g->state_ts = gs->now;
    g->next = gs->groups;
    gs->groups = g;
    return g;
}

void sp_group_set_state(sp_group_t *g, int s)
{
    g->state = s;
    g->state_ts = g->gs->now;
}

sp_member_t *sp_group_member(const sp_group_t *g, sp_str_t id)
{
    for (sp_member_t *m = g->members; m; m = m->next)
        if (sp_group_str_is(m->id, id))
            return m;
    return NULL;
}

static sp_member_t *find_static(const sp_group_t *g, sp_str_t instance)
{
    if (instance.len < 0)
        return NULL;
    for (sp_member_t *m = g->members; m; m = m->next)
        if (sp_group_str_is(m->instance_id, instance))
            return m;
    return NULL;
}

bool sp_group_fenced(const sp_group_t *g, sp_str_t member_id, sp_str_t instance)
{
    sp_member_t *st = g ? find_static(g, instance) : NULL;
    return st && !sp_group_str_is(st->id, member_id);
}

void sp_group_touch(sp_member_t *m)
{
    sp_groups_t *gs = m->g->gs;
    m->session_deadline = gs->now + (m->session_timeout > 0 ? m->session_timeout : 10000);
    note_deadline(gs, m->session_deadline);
}

static void free_protocols(sp_member_t *m)
{
    for (int i = 0; i < m->nprotocols; i++) {
        free(m->pnames[i]);
        free(m->pmeta[i]);
    }
    free(m->pnames);
    free(m->pmeta);
    free(m->pmeta_len);
    m->pnames = NULL;
    m->pmeta = NULL;
    m->pmeta_len = NULL;
    m->nprotocols = 0;
}

void sp_member_free(sp_member_t *m)
{
    free_protocols(m);
    free(m->assignment);
    free(m->id);
    free(m->instance_id);
    free(m->client_id);
    free(m->client_host);
    free(m);
}

void sp_group_drop_members(sp_group_t *g)
{
    while (g->members) {
        sp_member_t *m = g->members;
        g->members = m->next;
        sp_member_free(m);
    }
    g->nmembers = 0;
}

static void free_group(sp_group_t *g)
{
    sp_group_drop_members(g);
    sp_offsets_free(&g->offsets);
    for (int i = 0; i < g->npending; i++)
        free(g->pending[i].id);
    free(g->pending);
    free(g->id);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    free(g);
}

void sp_group_forget(sp_groups_t *gs, sp_group_t *g)
{
    sp_group_t **pp = &gs->groups;
    while (*pp && *pp != g)
        pp = &(*pp)->next;
    if (*pp)
        *pp = g->next;
    free_group(g);
}

/* ---- protocols ------------------------------------------------------------ */

static int set_protocols(sp_member_t *m, const sp_join_group_request_t *b)
{
    free_protocols(m);
    int n = b->protocols.n > 0 ? b->protocols.n : 0;
    m->pnames = calloc((size_t)(n ? n : 1), sizeof(char *));
    m->pmeta = calloc((size_t)(n ? n : 1), sizeof(uint8_t *));
    m->pmeta_len = calloc((size_t)(n ? n : 1), sizeof(int32_t));
    if (!m->pnames || !m->pmeta || !m->pmeta_len)
        return -1;
    for (int i = 0; i < n; i++) {
        const sp_join_group_request_protocol_t *p = &b->protocols.v[i];
        int32_t ml = p->metadata.len > 0 ? p->metadata.len : 0;
        m->pnames[i] = sp_group_dups(p->name);
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
static bool same_protocols(const sp_member_t *m, const sp_join_group_request_t *b)
{
    if (m->nprotocols != (b->protocols.n > 0 ? b->protocols.n : 0))
        return false;
    for (int i = 0; i < m->nprotocols; i++) {
        const sp_join_group_request_protocol_t *p = &b->protocols.v[i];
        int32_t ml = p->metadata.len > 0 ? p->metadata.len : 0;
        if (!sp_group_str_is(m->pnames[i], p->name) || ml != m->pmeta_len[i] ||
            (ml && memcmp(m->pmeta[i], p->metadata.ptr, (size_t)ml) != 0))
            return false;
    }
    return true;
}

static bool member_supports(const sp_member_t *m, const char *proto)
{
    for (int i = 0; i < m->nprotocols; i++)
        if (strcmp(m->pnames[i], proto) == 0)
            return true;
    return false;
}

/* Whether a join with these protocols fits the group's members. */
static bool compatible(const sp_group_t *g, const sp_join_group_request_t *b)
{
    if (g->nmembers == 0)
        return b->protocols.n > 0 && b->protocol_type.len > 0;
    if (!sp_group_str_is(g->protocol_type, b->protocol_type))
        return false;
    /* some protocol must be supported by all existing members */
    for (int32_t i = 0; i < b->protocols.n; i++) {
        char *name = sp_group_dups(b->protocols.v[i].name);
        bool all = name != NULL;
        for (const sp_member_t *m = g->members; m && all; m = m->next)
            all = member_supports(m, name);
        free(name);
        if (all)
            return true;
    }
    return false;
}

static bool all_support(const sp_group_t *g, const char *proto)
{
    for (const sp_member_t *m = g->members; m; m = m->next)
        if (!member_supports(m, proto))
            return false;
    return true;
}

/* Picks the protocol all members support with the most votes, each member
 * voting for its most preferred protocol among those (Kafka's rule). */
static char *select_protocol(const sp_group_t *g)
{
    const sp_member_t *first = g->members;
    const char *best = NULL;
    int best_votes = -1;
    if (!first)
        return NULL;
    for (int i = 0; i < first->nprotocols; i++) {
        const char *cand = first->pnames[i];
        if (!all_support(g, cand))
            continue;
        int votes = 0;
        for (const sp_member_t *m = g->members; m; m = m->next)
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

/* Kafka's member id: prefix (client.id or group.instance.id) + "-" + a
 * random UUID. */
static void new_member_id(const char *prefix, char *out, size_t cap)
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != sizeof(b))
        memset(b, 0x5a, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, cap, "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             prefix, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
}

/* ---- answers to JoinGroup and SyncGroup ----------------------------------- */

static sp_join_group_response_t *join_resp(sp_group_call_t *call, int16_t err)
{
    sp_join_group_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
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
static void answer_join_error(sp_group_call_t *call, int16_t err, const char *member_id)
{
    sp_join_group_response_t *r = join_resp(call, err);
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    if (call->version >= 7)
        r->protocol_name = SP_STR_NULL;
    if (member_id)
        r->member_id = sp_str_c(sp_arena_strdup(call->arena, member_id, strlen(member_id)));
    else if (err == SP_ERR_UNKNOWN_MEMBER_ID)
        r->member_id = ((const sp_join_group_request_t *)call->body)->member_id; /* outlives r */
    sp_group_answer(call, r);
}

/* The JoinGroup answer for member m of the current generation, built in
 * call's arena (the member list only for the leader). */
static sp_join_group_response_t *build_join(const sp_group_t *g, const sp_member_t *m, sp_group_call_t *call)
{
    sp_join_group_response_t *r = join_resp(call, 0);
    if (!r)
        return NULL;
    sp_arena_t *a = call->arena;
    r->generation_id = g->generation;
    r->protocol_type = sp_group_arena_str(a, g->protocol_type);
    r->protocol_name = sp_group_arena_str(a, g->protocol);
    r->leader = sp_str_c(sp_arena_strdup(a, g->leader ? g->leader : "", g->leader ? strlen(g->leader) : 0));
    r->member_id = sp_str_c(sp_arena_strdup(a, m->id, strlen(m->id)));
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        r->members.v = sp_join_group_response_member_alloc(a, g->nmembers);
        r->members.n = r->members.v ? g->nmembers : 0;
        int i = 0;
        for (const sp_member_t *x = g->members; x && i < r->members.n; x = x->next, i++) {
            int p = 0;
            for (int k = 0; k < x->nprotocols; k++)
                if (g->protocol && strcmp(x->pnames[k], g->protocol) == 0)
                    p = k;
            r->members.v[i].member_id = sp_str_c(sp_arena_strdup(a, x->id, strlen(x->id)));
            r->members.v[i].group_instance_id = sp_group_arena_str(a, x->instance_id);
            uint8_t *md = sp_arena_alloc(a, (size_t)(x->nprotocols ? x->pmeta_len[p] : 0) + 1);
            if (md && x->nprotocols)
                memcpy(md, x->pmeta[p], (size_t)x->pmeta_len[p]);
            r->members.v[i].metadata = (sp_bytes_t){ md, x->nprotocols ? x->pmeta_len[p] : 0 };
        }
    }
    return r;
}

/* Answers a member's parked JoinGroup for the completed rebalance. */
static void answer_join(const sp_group_t *g, sp_member_t *m)
{
    sp_group_call_t *call = m->join_call;
    m->join_call = NULL;
    if (call)
        sp_group_answer(call, build_join(g, m, call));
}

static sp_sync_group_response_t *sync_resp(sp_group_call_t *call, int16_t err)
{
    sp_sync_group_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
    if (r) {
        sp_sync_group_response_init(r);
        r->error_code = err;
        r->assignment = (sp_bytes_t){ (const uint8_t *)"", 0 };
    }
    return r;
}

/* Answers m's parked SyncGroup (if any) with err. */
static void fail_sync(sp_member_t *m, int16_t err)
{
    if (m->sync_call) {
        sp_group_answer(m->sync_call, sync_resp(m->sync_call, err));
        m->sync_call = NULL;
    }
}

static void fill_sync(sp_group_call_t *call, sp_sync_group_response_t *r, const sp_group_t *g, const sp_member_t *m)
{
    uint8_t *a = sp_arena_alloc(call->arena, (size_t)m->assignment_len + 1);
    if (a && m->assignment_len)
        memcpy(a, m->assignment, (size_t)m->assignment_len);
    r->assignment = (sp_bytes_t){ a ? a : (const uint8_t *)"", a ? m->assignment_len : 0 };
    r->protocol_type = sp_group_arena_str(call->arena, g->protocol_type);
    r->protocol_name = sp_group_arena_str(call->arena, g->protocol);
}

static void clear_assignment(sp_member_t *m)
{
    free(m->assignment);
    m->assignment = NULL;
    m->assignment_len = 0;
}

/* ---- rebalances ------------------------------------------------------------ */

static void remove_member(sp_group_t *g, sp_member_t *m, const char *why);

static int32_t max_rebalance_timeout(const sp_group_t *g)
{
    int32_t t = 0;
    for (const sp_member_t *m = g->members; m; m = m->next)
        if (m->rebalance_timeout > t)
            t = m->rebalance_timeout;
    return t > 0 ? t : 60000;
}

static void prepare_rebalance(sp_group_t *g, const char *why)
{
    sp_groups_t *gs = g->gs;
    g->sync_seq = 0; /* an assignment still being written is void */
    /* parked syncs of the old generation learn about the rebalance */
    for (sp_member_t *m = g->members; m; m = m->next) {
        fail_sync(m, SP_ERR_REBALANCE_IN_PROGRESS);
        m->joined = m->join_call != NULL;
        clear_assignment(m);
    }
    int64_t delay = gs->set.initial_rebalance_delay_ms;
    g->initial_delay = g->state == SP_GROUP_EMPTY && delay > 0;
    g->join_deadline = gs->now + (g->initial_delay ? delay : max_rebalance_timeout(g));
    note_deadline(gs, g->join_deadline);
    sp_info("group", "group %s: preparing rebalance (generation %d): %s", g->id, g->generation, why);
    sp_group_set_state(g, SP_GROUP_PREPARING);
}

static void complete_join(sp_group_t *g)
{
    sp_groups_t *gs = g->gs;
    g->join_deadline = 0;
    g->initial_delay = false;
    g->generation++;
    free(g->protocol);
    g->protocol = g->nmembers ? select_protocol(g) : NULL;
    if (!g->nmembers) {
        free(g->leader);
        g->leader = NULL;
        sp_group_set_state(g, SP_GROUP_EMPTY);
        /* an empty generation is recorded, as Kafka does */
        sp_group_records_t r;
        sp_group_records_init(&r, gs->now);
        sp_group_records_group(&r, g, false);
        sp_group_persist_note(gs, g->id, &r);
        return;
    }
    bool leader_in = false;
    for (const sp_member_t *m = g->members; m; m = m->next)
        leader_in |= g->leader && strcmp(g->leader, m->id) == 0;
    if (!leader_in) {
        free(g->leader);
        g->leader = strdup(g->members->id);
    }
    sp_group_set_state(g, SP_GROUP_COMPLETING);
    sp_info("group", "group %s: generation %d with %d member%s, protocol %s, leader %s", g->id,
            g->generation, g->nmembers, g->nmembers == 1 ? "" : "s", g->protocol ? g->protocol : "-",
            g->leader);
    for (sp_member_t *m = g->members; m; m = m->next) {
        m->joined = false;
        answer_join(g, m);
        sp_group_touch(m);
    }
}

static void maybe_complete_join(sp_group_t *g)
{
    if (g->state != SP_GROUP_PREPARING || g->initial_delay)
        return;
    for (const sp_member_t *m = g->members; m; m = m->next)
        if (!m->joined)
            return;
    if (g->npending > 0) {
        /* members told to come back with their id: wait for them too */
        bool live = false;
        for (int i = 0; i < g->npending; i++)
            live |= g->pending[i].deadline > g->gs->now;
        if (live)
            return;
    }
    complete_join(g);
}

/* The join deadline passed: the initial delay is over, or members that
 * did not rejoin within the rebalance timeout leave the group. */
static void join_timeout(sp_group_t *g)
{
    g->join_deadline = 0;
    if (g->state != SP_GROUP_PREPARING)
        return;
    if (g->initial_delay) {
        g->initial_delay = false;
        /* the initial delay is over: complete if everyone is in */
    } else {
        /* members that did not rejoin in time leave the group; they are
         * picked first, since the last removal completes the join and
         * resets every member's 'joined' */
        int n = 0;
        for (const sp_member_t *m = g->members; m; m = m->next)
            n += !m->joined;
        sp_member_t **late = calloc((size_t)(n ? n : 1), sizeof(*late));
        int k = 0;
        for (sp_member_t *m = g->members; m && late; m = m->next)
            if (!m->joined)
                late[k++] = m;
        for (int i = 0; i < k; i++)
            remove_member(g, late[i], "did not rejoin within the rebalance timeout");
        free(late);
    }
    maybe_complete_join(g);
}

static void remove_member(sp_group_t *g, sp_member_t *m, const char *why)
{
    sp_member_t **pp = &g->members;
    while (*pp && *pp != m)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = m->next;
    g->nmembers--;
    sp_info("group", "group %s: member %s removed: %s", g->id, m->id, why);
    if (m->join_call) {
        answer_join_error(m->join_call, SP_ERR_UNKNOWN_MEMBER_ID, NULL);
        m->join_call = NULL;
    }
    fail_sync(m, SP_ERR_UNKNOWN_MEMBER_ID);
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        free(g->leader);
        g->leader = g->members ? strdup(g->members->id) : NULL;
    }
    sp_member_free(m);
    if (g->state == SP_GROUP_STABLE || g->state == SP_GROUP_COMPLETING)
        prepare_rebalance(g, "a member left");
    if (g->state == SP_GROUP_PREPARING)
        maybe_complete_join(g);
}

/* ---- JoinGroup ------------------------------------------------------------- */

static sp_member_t *add_member(sp_group_t *g, const char *id, const sp_group_call_t *call,
                               const sp_join_group_request_t *b)
{
    sp_member_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->g = g;
    m->id = strdup(id);
    m->instance_id = b->group_instance_id.len >= 0 ? sp_group_dups(b->group_instance_id) : NULL;
    m->client_id = call->client_id.len >= 0 ? sp_group_dups(call->client_id) : strdup("");
    m->client_host = strdup(call->client_host ? call->client_host : "");
    m->session_timeout = b->session_timeout_ms;
    m->rebalance_timeout = call->version >= 1 ? b->rebalance_timeout_ms : b->session_timeout_ms;
    if (!m->id || !m->client_id || !m->client_host || set_protocols(m, b) != 0) {
        sp_member_free(m);
        return NULL;
    }
    /* appended: the first member stays first (leader preference) */
    sp_member_t **pp = &g->members;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    g->nmembers++;
    if (!g->protocol_type)
        g->protocol_type = sp_group_dups(b->protocol_type);
    return m;
}

static void drop_pending(sp_group_t *g, sp_str_t id)
{
    for (int i = 0; i < g->npending; i++) {
        if (sp_group_str_is(g->pending[i].id, id)) {
            free(g->pending[i].id);
            g->pending[i] = g->pending[--g->npending];
            return;
        }
    }
}

static bool is_pending(const sp_group_t *g, sp_str_t id)
{
    for (int i = 0; i < g->npending; i++)
        if (sp_group_str_is(g->pending[i].id, id))
            return true;
    return false;
}

/*
 * The write of a static member's new id (a rejoin of a Stable group
 * without a rebalance) ended.  Durable: its JoinGroup is answered.  Not:
 * the member gets its old id and timeouts back, and the JoinGroup fails
 * with the write's error and no member id, as Kafka does
 * (GroupMetadataManager: "Reverting to old member id").  g may be NULL
 * (the group is gone).
 */
static void static_join_settled(sp_group_t *g, sp_group_write_t *w, int16_t err)
{
    sp_join_group_response_t *r = w->resp;
    if (!err) {
        sp_group_answer(w->call, r);
        return;
    }
    sp_member_t *m = g && w->new_id ? sp_group_member(g, sp_str_c(w->new_id)) : NULL;
    if (m && w->old_id) {
        sp_warn("group", "group %s: static member %s not written (%s): back to member id %s", g->id,
                w->new_id, sp_kafka_error_name(err), w->old_id);
        free(m->id);
        m->id = w->old_id;
        w->old_id = NULL;
        if (g->leader && strcmp(g->leader, w->new_id) == 0) {
            free(g->leader);
            g->leader = strdup(m->id);
        }
        m->session_timeout = w->old_session;
        m->rebalance_timeout = w->old_rebalance;
        sp_group_touch(m);
    }
    if (r) {
        const char *leader = g && g->leader ? g->leader : "";
        r->error_code = err;
        r->member_id = sp_str_lit("");
        r->members.n = 0;
        r->skip_assignment = false;
        r->leader = sp_str_c(sp_arena_strdup(w->call->arena, leader, strlen(leader)));
    }
    sp_group_answer(w->call, r);
}

/* A static member (st) restarted: it takes its old place under the new
 * id; no rebalance if the group is Stable and nothing changed (KIP-345),
 * its new id then written first. */
static void join_static(sp_group_t *g, sp_member_t *st, const char *id, sp_group_call_t *call,
                        const sp_join_group_request_t *b)
{
    sp_groups_t *gs = g->gs;
    int16_t v = call->version;
    if (st->join_call) {
        answer_join_error(st->join_call, SP_ERR_FENCED_INSTANCE_ID, NULL);
        st->join_call = NULL;
    }
    fail_sync(st, SP_ERR_FENCED_INSTANCE_ID);
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
    sp_group_touch(st);
    bool same = same_protocols(st, b);
    if (g->state == SP_GROUP_STABLE && same) {
        sp_info("group", "group %s: static member %.*s rejoined as %s without a rebalance", g->id,
                (int)b->group_instance_id.len, b->group_instance_id.ptr, id);
        /* Kafka: the rejoined leader must not compute an assignment a
         * Stable group would ignore.  Below v9 the answer names the old
         * leader id (so it is not this member) and lists no members; from
         * v9 it says skip_assignment instead. */
        sp_join_group_response_t *jr = build_join(g, st, call);
        if (jr && was_leader) {
            if (v >= 9) {
                jr->skip_assignment = true;
            } else {
                jr->members.n = 0;
                jr->leader = sp_str_c(sp_arena_strdup(call->arena, old_leader, strlen(old_leader)));
            }
        }
        free(old_leader);
        /* answered once the new id is durable; undone if it is not
         * (Kafka: "Reverting to old member id") */
        sp_group_write_t *w = sp_group_write_new(gs, SP_GW_STATIC_JOIN);
        if (!w) {
            free(old_id);
            sp_group_answer(call, jr);
            return;
        }
        w->call = call;
        w->resp = jr;
        w->old_id = old_id;
        w->new_id = strdup(id);
        w->old_session = old_session;
        w->old_rebalance = old_rebalance;
        w->was_leader = was_leader;
        sp_group_records_t r;
        sp_group_records_init(&r, gs->now);
        sp_group_records_group(&r, g, false);
        int16_t err = sp_group_persist(gs, g->id, &r, w);
        if (err) {
            static_join_settled(g, w, err);
            sp_group_write_free(w);
        }
        return;
    }
    free(old_leader);
    free(old_id);
    if (!same)
        set_protocols(st, b);
    st->join_call = call;
    st->joined = true;
    if (g->state != SP_GROUP_PREPARING)
        prepare_rebalance(g, "a static member rejoined with new metadata");
    maybe_complete_join(g);
}

/* A new member m (its JoinGroup call) is in: the group rebalances. */
static void join_new(sp_group_t *g, sp_member_t *m, sp_group_call_t *call)
{
    m->join_call = call;
    m->joined = true;
    sp_group_touch(m);
    if (g->state != SP_GROUP_PREPARING)
        prepare_rebalance(g, "a new member joined");
    maybe_complete_join(g);
}

/* A JoinGroup without a member id. */
static void join_unknown(sp_group_t *g, sp_group_call_t *call, const sp_join_group_request_t *b)
{
    sp_groups_t *gs = g->gs;
    char id[512], prefix[300];
    /* Kafka: client.id (or group.instance.id) + "-" + a UUID */
    if (b->group_instance_id.len >= 0)
        snprintf(prefix, sizeof(prefix), "%.*s", (int)b->group_instance_id.len, b->group_instance_id.ptr);
    else
        snprintf(prefix, sizeof(prefix), "%.*s", call->client_id.len > 0 ? (int)call->client_id.len : 0,
                 call->client_id.len > 0 ? call->client_id.ptr : "");
    new_member_id(prefix, id, sizeof(id));
    sp_member_t *st = find_static(g, b->group_instance_id);
    if (st) {
        join_static(g, st, id, call, b);
        return;
    }
    if (g->nmembers >= gs->set.max_size) {
        answer_join_error(call, SP_ERR_GROUP_MAX_SIZE_REACHED, NULL);
        return;
    }
    if (call->version >= 4 && b->group_instance_id.len < 0) {
        /* KIP-394: the client must come back with this id */
        sp_pending_id_t *n = realloc(g->pending, sizeof(*n) * (size_t)(g->npending + 1));
        if (n) {
            g->pending = n;
            g->pending[g->npending].id = strdup(id);
            g->pending[g->npending].deadline = gs->now + b->session_timeout_ms;
            note_deadline(gs, g->pending[g->npending].deadline);
            g->npending++;
        }
        answer_join_error(call, SP_ERR_MEMBER_ID_REQUIRED, id);
        return;
    }
    sp_member_t *m = add_member(g, id, call, b);
    if (!m) {
        answer_join_error(call, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
        return;
    }
    join_new(g, m, call);
}

/* A JoinGroup naming a member id: a member, or one we asked to come back. */
static void join_known(sp_group_t *g, sp_group_call_t *call, const sp_join_group_request_t *b)
{
    if (sp_group_fenced(g, b->member_id, b->group_instance_id)) {
        answer_join_error(call, SP_ERR_FENCED_INSTANCE_ID, NULL);
        return;
    }
    sp_member_t *m = sp_group_member(g, b->member_id);
    if (!m) {
        if (!is_pending(g, b->member_id)) {
            answer_join_error(call, SP_ERR_UNKNOWN_MEMBER_ID, NULL);
            return;
        }
        drop_pending(g, b->member_id);
        if (g->nmembers >= g->gs->set.max_size) {
            answer_join_error(call, SP_ERR_GROUP_MAX_SIZE_REACHED, NULL);
            return;
        }
        char *id = sp_group_dups(b->member_id);
        m = id ? add_member(g, id, call, b) : NULL;
        free(id);
        if (!m) {
            answer_join_error(call, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
            return;
        }
        join_new(g, m, call);
        return;
    }
    if (m->instance_id && b->group_instance_id.len >= 0 && !sp_group_str_is(m->instance_id, b->group_instance_id)) {
        answer_join_error(call, SP_ERR_FENCED_INSTANCE_ID, NULL);
        return;
    }
    if (m->join_call) /* a retry replaces the earlier parked join */
        answer_join_error(m->join_call, SP_ERR_UNKNOWN_MEMBER_ID, NULL);
    sp_group_touch(m);
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
    if (same && (g->state == SP_GROUP_COMPLETING || (g->state == SP_GROUP_STABLE && !is_leader))) {
        m->join_call = call;
        answer_join(g, m);
        return;
    }
    if (!same)
        set_protocols(m, b);
    m->join_call = call;
    m->joined = true;
    if (g->state != SP_GROUP_PREPARING)
        prepare_rebalance(g, is_leader ? "the leader rejoined" : "a member changed its subscription");
    maybe_complete_join(g);
}

static void group_join(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_join_group_request_t *b = call->body;
    if (b->group_id.len <= 0) {
        answer_join_error(call, SP_ERR_INVALID_GROUP_ID, NULL);
        return;
    }
    if (b->session_timeout_ms < gs->set.min_session_timeout_ms ||
        b->session_timeout_ms > gs->set.max_session_timeout_ms) {
        answer_join_error(call, SP_ERR_INVALID_SESSION_TIMEOUT, NULL);
        return;
    }
    if (sp_group_id_unkeepable(b->group_id)) {
        answer_join_error(call, SP_ERR_INVALID_GROUP_ID, NULL);
        return;
    }
    sp_group_t *g = sp_group_get(gs, b->group_id);
    if (!g || g->state == SP_GROUP_DEAD) {
        answer_join_error(call, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
        return;
    }
    if (!compatible(g, b)) {
        answer_join_error(call, SP_ERR_INCONSISTENT_GROUP_PROTOCOL, NULL);
        return;
    }
    if (b->member_id.len <= 0)
        join_unknown(g, call, b);
    else
        join_known(g, call, b);
}

/* ---- SyncGroup ------------------------------------------------------------- */

/*
 * The leader's assignment (the group's metadata record) is durable (err 0)
 * or lost.  Durable: the group is Stable and every parked SyncGroup gets
 * its assignment.  Lost: as Kafka (resetAndPropagateAssignmentWithError,
 * then a rebalance), every parked SyncGroup gets the error, assignments
 * are cleared and the group prepares a rebalance.
 */
static void sync_settled(sp_group_t *g, int16_t err)
{
    g->sync_seq = 0;
    if (!err)
        sp_group_set_state(g, SP_GROUP_STABLE);
    for (sp_member_t *m = g->members; m; m = m->next) {
        if (err)
            clear_assignment(m);
        if (!m->sync_call)
            continue;
        sp_sync_group_response_t *r = sync_resp(m->sync_call, err);
        if (r && !err)
            fill_sync(m->sync_call, r, g, m);
        sp_group_answer(m->sync_call, r);
        m->sync_call = NULL;
    }
    if (err) {
        sp_warn("group", "group %s: assignment of generation %d not written: %s", g->id, g->generation,
                sp_kafka_error_name(err));
        prepare_rebalance(g, "the group metadata could not be written");
    }
}

int16_t sp_group_check_member(const sp_group_t *g, const sp_member_t *m, sp_str_t member_id, sp_str_t instance)
{
    if (sp_group_fenced(g, member_id, instance))
        return SP_ERR_FENCED_INSTANCE_ID;
    if (!g || !m)
        return SP_ERR_UNKNOWN_MEMBER_ID;
    if (m->instance_id && instance.len >= 0 && !sp_group_str_is(m->instance_id, instance))
        return SP_ERR_FENCED_INSTANCE_ID;
    return 0;
}

static void group_sync(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_sync_group_request_t *b = call->body;
    sp_group_t *g = sp_group_find(gs, b->group_id);
    sp_member_t *m = g ? sp_group_member(g, b->member_id) : NULL;
    int16_t err = sp_group_id_ok(b->group_id, false) ? sp_group_check_member(g, m, b->member_id, b->group_instance_id)
                                                     : SP_ERR_INVALID_GROUP_ID;
    if (!err && b->generation_id != g->generation)
        err = SP_ERR_ILLEGAL_GENERATION;
    if (!err && ((b->protocol_type.len >= 0 && !sp_group_str_is(g->protocol_type, b->protocol_type)) ||
                 (b->protocol_name.len >= 0 && !sp_group_str_is(g->protocol, b->protocol_name))))
        err = SP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (err) {
        sp_group_answer(call, sync_resp(call, err));
        return;
    }
    sp_group_touch(m);
    switch (g->state) {
    case SP_GROUP_PREPARING:
        sp_group_answer(call, sync_resp(call, SP_ERR_REBALANCE_IN_PROGRESS));
        return;
    case SP_GROUP_STABLE: {
        sp_sync_group_response_t *r = sync_resp(call, 0);
        if (r)
            fill_sync(call, r, g, m);
        sp_group_answer(call, r);
        return;
    }
    case SP_GROUP_COMPLETING:
        break;
    default:
        sp_group_answer(call, sync_resp(call, SP_ERR_UNKNOWN_MEMBER_ID));
        return;
    }
    fail_sync(m, SP_ERR_REBALANCE_IN_PROGRESS);
    m->sync_call = call;
    if (!g->leader || strcmp(g->leader, m->id) != 0 || g->sync_seq)
        return; /* followers wait for the leader's assignment, all for its write */
    for (int32_t i = 0; i < b->assignments.n; i++) {
        sp_member_t *x = sp_group_member(g, b->assignments.v[i].member_id);
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
    sp_group_write_t *w = sp_group_write_new(gs, SP_GW_SYNC);
    sp_group_records_t r;
    sp_group_records_init(&r, gs->now);
    sp_group_records_group(&r, g, false);
    int16_t werr = w ? (w->generation = g->generation, g->sync_seq = w->seq, sp_group_persist(gs, g->id, &r, w))
                     : (sp_group_records_free(&r), SP_ERR_UNKNOWN_SERVER_ERROR);
    if (werr) {
        sp_group_write_free(w);
        sync_settled(g, werr);
    }
}

/* ---- Heartbeat, LeaveGroup -------------------------------------------------- */

static void group_heartbeat(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_heartbeat_request_t *b = call->body;
    sp_heartbeat_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
    if (r)
        sp_heartbeat_response_init(r);
    sp_group_t *g = sp_group_find(gs, b->group_id);
    sp_member_t *m = g ? sp_group_member(g, b->member_id) : NULL;
    int16_t err = sp_group_id_ok(b->group_id, false) ? sp_group_check_member(g, m, b->member_id, b->group_instance_id)
                                                     : SP_ERR_INVALID_GROUP_ID;
    if (!err && b->generation_id != g->generation)
        err = g->state == SP_GROUP_PREPARING ? SP_ERR_REBALANCE_IN_PROGRESS : SP_ERR_ILLEGAL_GENERATION;
    else if (!err && g->state == SP_GROUP_PREPARING)
        err = SP_ERR_REBALANCE_IN_PROGRESS;
    if (m && err != SP_ERR_FENCED_INSTANCE_ID && err != SP_ERR_UNKNOWN_MEMBER_ID)
        sp_group_touch(m);
    if (r)
        r->error_code = err;
    sp_group_answer(call, r);
}

static void group_leave(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_leave_group_request_t *b = call->body;
    sp_leave_group_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_leave_group_response_init(r);
    if (!sp_group_id_ok(b->group_id, false)) {
        r->error_code = SP_ERR_INVALID_GROUP_ID;
        sp_group_answer(call, r);
        return;
    }
    sp_group_t *g = sp_group_find(gs, b->group_id);
    if (call->version < 3) {
        sp_member_t *m = g ? sp_group_member(g, b->member_id) : NULL;
        if (!m)
            r->error_code = SP_ERR_UNKNOWN_MEMBER_ID;
        else
            remove_member(g, m, "left the group");
        sp_group_answer(call, r);
        return;
    }
    int32_t n = b->members.n > 0 ? b->members.n : 0;
    r->members.v = sp_leave_group_response_member_response_alloc(call->arena, n);
    r->members.n = r->members.v ? n : 0;
    for (int32_t i = 0; i < r->members.n; i++) {
        const sp_leave_group_request_member_identity_t *mi = &b->members.v[i];
        sp_leave_group_response_member_response_t *o = &r->members.v[i];
        o->member_id = mi->member_id;
        o->group_instance_id = mi->group_instance_id;
        sp_member_t *m = NULL;
        if (g)
            m = mi->member_id.len > 0 ? sp_group_member(g, mi->member_id) : find_static(g, mi->group_instance_id);
        if (!m)
            o->error_code = SP_ERR_UNKNOWN_MEMBER_ID;
        else if (m->instance_id && mi->group_instance_id.len >= 0 && !sp_group_str_is(m->instance_id, mi->group_instance_id))
            o->error_code = SP_ERR_FENCED_INSTANCE_ID;
        else
            remove_member(g, m, "left the group");
    }
    if (!g)
        r->error_code = 0;
    sp_group_answer(call, r);
}

/* ---- DescribeGroups, ListGroups, DeleteGroups -------------------------------- */

/* A described group that does not exist: v6+ (KIP-1043) GROUP_ID_NOT_FOUND,
 * as Kafka (the admin client then fails describeConsumerGroups with
 * GroupIdNotFoundException); below v6 a Dead group, no error. */
static void describe_missing(sp_group_call_t *call, sp_describe_groups_response_described_group_t *o, sp_str_t id)
{
    sp_arena_t *a = call->arena;
    o->group_state = sp_str_lit("Dead");
    o->protocol_type = sp_str_lit("");
    o->protocol_data = sp_str_lit("");
    o->members.n = 0;
    if (call->version < 6)
        return;
    o->error_code = SP_ERR_GROUP_ID_NOT_FOUND;
    size_t gl = (size_t)(id.len > 0 ? id.len : 0);
    char *msg = sp_arena_alloc(a, gl + 24);
    if (msg) {
        int ml = snprintf(msg, gl + 24, "Group %.*s not found.", (int)gl, id.ptr ? id.ptr : "");
        o->error_message = (sp_str_t){ msg, ml };
    }
}

static void describe_member(sp_arena_t *a, const sp_group_t *g, const sp_member_t *m,
                            sp_describe_groups_response_described_group_member_t *mo)
{
    mo->member_id = sp_str_c(sp_arena_strdup(a, m->id, strlen(m->id)));
    mo->group_instance_id = sp_group_arena_str(a, m->instance_id);
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
    if (g->state == SP_GROUP_STABLE && m->assignment_len && (as = sp_arena_alloc(a, (size_t)m->assignment_len)))
        memcpy(as, m->assignment, (size_t)m->assignment_len);
    mo->member_assignment = (sp_bytes_t){ as ? as : (const uint8_t *)"", as ? m->assignment_len : 0 };
}

static void group_describe(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_describe_groups_request_t *b = call->body;
    sp_arena_t *a = call->arena;
    sp_describe_groups_response_t *r = sp_arena_zalloc(a, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_describe_groups_response_init(r);
    int32_t n = b->groups.n > 0 ? b->groups.n : 0;
    r->groups.v = sp_describe_groups_response_described_group_alloc(a, n);
    r->groups.n = r->groups.v ? n : 0;
    for (int32_t i = 0; i < r->groups.n; i++) {
        sp_describe_groups_response_described_group_t *o = &r->groups.v[i];
        const sp_group_t *g = sp_group_find(gs, b->groups.v[i]);
        o->group_id = b->groups.v[i];
        if (!g) {
            describe_missing(call, o, b->groups.v[i]);
            continue;
        }
        o->group_state = sp_str_c(sp_group_state_names[g->state]);
        o->protocol_type = sp_str_c(sp_arena_strdup(a, g->protocol_type ? g->protocol_type : "", g->protocol_type ? strlen(g->protocol_type) : 0));
        o->protocol_data = sp_str_c(sp_arena_strdup(a, g->protocol ? g->protocol : "", g->protocol ? strlen(g->protocol) : 0));
        if (b->include_authorized_operations)
            o->authorized_operations = (1 << 3) | (1 << 6) | (1 << 8);
        o->members.v = sp_describe_groups_response_described_group_member_alloc(a, g->nmembers);
        o->members.n = o->members.v ? g->nmembers : 0;
        int k = 0;
        for (const sp_member_t *m = g->members; m && k < o->members.n; m = m->next, k++)
            describe_member(a, g, m, &o->members.v[k]);
    }
    sp_group_answer(call, r);
}

/* Whether ListGroups' filters (states, types: only "classic" here) keep g. */
static bool listed(const sp_group_t *g, const sp_list_groups_request_t *b)
{
    const char *state = sp_group_state_names[g->state];
    bool ok = b->states_filter.n <= 0;
    for (int32_t i = 0; i < b->states_filter.n && !ok; i++)
        ok = b->states_filter.v[i].len == (int32_t)strlen(state) &&
             strncasecmp(b->states_filter.v[i].ptr, state, (size_t)b->states_filter.v[i].len) == 0;
    bool type_ok = b->types_filter.n <= 0;
    for (int32_t i = 0; i < b->types_filter.n && !type_ok; i++)
        type_ok = b->types_filter.v[i].len == 7 && strncasecmp(b->types_filter.v[i].ptr, "classic", 7) == 0;
    return ok && type_ok && g->state != SP_GROUP_DEAD;
}

static void group_list(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_list_groups_request_t *b = call->body;
    sp_arena_t *a = call->arena;
    sp_list_groups_response_t *r = sp_arena_zalloc(a, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_list_groups_response_init(r);
    int n = 0;
    for (const sp_group_t *g = gs->groups; g; g = g->next)
        n++;
    r->groups.v = sp_list_groups_response_listed_group_alloc(a, n);
    int k = 0;
    for (const sp_group_t *g = gs->groups; g && r->groups.v; g = g->next) {
        if (!listed(g, b))
            continue;
        sp_list_groups_response_listed_group_t *o = &r->groups.v[k++];
        o->group_id = sp_str_c(sp_arena_strdup(a, g->id, strlen(g->id)));
        o->protocol_type = sp_str_c(sp_arena_strdup(a, g->protocol_type ? g->protocol_type : "", g->protocol_type ? strlen(g->protocol_type) : 0));
        o->group_state = sp_str_c(sp_group_state_names[g->state]);
        o->group_type = sp_str_lit("classic");
    }
    r->groups.n = r->groups.v ? k : 0;
    sp_group_answer(call, r);
}

/* One group's tombstones of a DeleteGroups ended; the request is answered
 * once all have (with the write's error for a group whose did not). */
static void delete_group_settled(sp_group_write_t *w, int16_t err)
{
    sp_delete_batch_t *db = w->batch;
    sp_delete_groups_response_t *r = db->resp;
    if (err)
        r->results.v[w->index].error_code = err;
    if (--db->pending == 0 && db->built) {
        sp_group_answer(db->call, db->resp);
        free(db);
    }
}

static void group_delete(sp_groups_t *gs, sp_group_call_t *call)
{
    const sp_delete_groups_request_t *b = call->body;
    sp_delete_groups_response_t *r = sp_arena_zalloc(call->arena, sizeof(*r));
    if (!r) {
        sp_group_answer(call, NULL);
        return;
    }
    sp_delete_groups_response_init(r);
    int32_t n = b->groups_names.n > 0 ? b->groups_names.n : 0;
    r->results.v = sp_delete_groups_response_deletable_group_result_alloc(call->arena, n);
    r->results.n = r->results.v ? n : 0;
    /* answered once every deletion is durable (as Kafka's new coordinator);
     * the groups are forgotten at once, as Kafka 3.x did */
    sp_delete_batch_t *db = calloc(1, sizeof(*db));
    if (!db) {
        sp_group_answer(call, NULL);
        return;
    }
    db->call = call;
    db->resp = r;
    for (int32_t i = 0; i < r->results.n; i++) {
        sp_group_t *g = sp_group_find(gs, b->groups_names.v[i]);
        r->results.v[i].group_id = b->groups_names.v[i];
        if (!g || g->state == SP_GROUP_DEAD) {
            r->results.v[i].error_code = SP_ERR_GROUP_ID_NOT_FOUND;
            continue;
        }
        if (g->nmembers > 0) {
            r->results.v[i].error_code = SP_ERR_NON_EMPTY_GROUP;
            continue;
        }
        sp_group_write_t *w = sp_group_write_new(gs, SP_GW_DELETE_GROUP);
        if (!w) {
            r->results.v[i].error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        w->batch = db;
        w->index = i;
        sp_group_records_t rec;
        sp_group_records_init(&rec, gs->now);
        sp_group_tombstones(g, &rec);
        int16_t err = sp_group_persist(gs, g->id, &rec, w);
        if (err) {
            sp_group_write_free(w);
            r->results.v[i].error_code = err;
            continue;
        }
        db->pending++;
        sp_info("group", "group %s deleted", g->id);
        sp_group_set_state(g, SP_GROUP_DEAD);
        sp_group_forget(gs, g);
    }
    db->built = true;
    if (db->pending == 0) {
        sp_group_answer(call, r);
        free(db);
    }
}

/* ---- settling writes ---------------------------------------------------------- */

/* The group is looked up again by id: it may be gone (then the write's
 * effect on memory is moot) or be a new group of the same id (commits are
 * matched by their write's sequence number, syncs by sync_seq). */
void sp_groups_settle(sp_groups_t *gs, sp_group_write_t *w, int16_t err, int64_t last_offset, int64_t now)
{
    gs->now = now;
    sp_group_t *g = sp_group_find(gs, sp_str_c(w->group));
    if (err)
        sp_warn("group", "group %s: write to __consumer_offsets failed: %s", w->group, sp_kafka_error_name(err));
    switch (w->kind) {
    case SP_GW_COMMIT:
        sp_group_commit_settled(g, w, err, last_offset);
        break;
    case SP_GW_TXN_COMMIT:
        sp_group_txn_commit_settled(g, w, err, last_offset);
        break;
    case SP_GW_SYNC:
        /* a rebalance since (sync_seq reset) makes it moot, as in Kafka */
        if (g && g->sync_seq == w->seq && g->state == SP_GROUP_COMPLETING && g->generation == w->generation)
            sync_settled(g, err);
        break;
    case SP_GW_STATIC_JOIN:
        static_join_settled(g, w, err);
        break;
    case SP_GW_OFFSET_DELETE:
        sp_group_offset_delete_settled(w, err);
        break;
    case SP_GW_DELETE_GROUP:
        delete_group_settled(w, err);
        break;
    default:
        break;
    }
    sp_group_write_free(w);
}

void sp_group_write_abandon(sp_group_write_t *w, int16_t err)
{
    switch (w->kind) {
    case SP_GW_COMMIT:
        sp_group_commit_settled(NULL, w, err, 0);
        break;
    case SP_GW_TXN_COMMIT:
        sp_group_txn_commit_settled(NULL, w, err, 0);
        break;
    case SP_GW_STATIC_JOIN:
        if (err && w->resp)
            ((sp_join_group_response_t *)w->resp)->error_code = err;
        sp_group_answer(w->call, w->resp);
        break;
    case SP_GW_OFFSET_DELETE:
        sp_group_offset_delete_settled(w, err);
        break;
    case SP_GW_DELETE_GROUP:
        delete_group_settled(w, err);
        break;
    default:
        break;
    }
    sp_group_write_free(w);
}

/* ---- the instance: calls, deadlines, life ----------------------------------- */

sp_groups_t *sp_groups_new(const sp_group_settings_t *s, const sp_group_env_t *env)
{
    if (sp_group_records_schemas() != 0) {
        sp_error("group", "the group-coordinator record schemas are missing from the codec");
        return NULL;
    }
    sp_groups_t *gs = calloc(1, sizeof(*gs));
    if (!gs)
        return NULL;
    gs->set = *s;
    if (env) {
        gs->env = *env;
        gs->has_env = true;
    }
    gs->next = INT64_MAX;
    return gs;
}

void sp_groups_free(sp_groups_t *gs)
{
    if (!gs)
        return;
    while (gs->groups)
        sp_group_forget(gs, gs->groups);
    free(gs);
}

int sp_groups_start(sp_groups_t *gs, int64_t now)
{
    int n = 0;
    gs->now = now;
    for (sp_group_t *g = gs->groups; g; g = g->next, n++)
        for (sp_member_t *m = g->members; m; m = m->next)
            sp_group_touch(m); /* sessions count from the restart */
    gs->retention_deadline = now + gs->set.retention_check_ms;
    note_deadline(gs, gs->retention_deadline);
    return n;
}

void sp_groups_call(sp_groups_t *gs, sp_group_call_t *call, int64_t now)
{
    gs->now = now;
    switch (call->api) {
    case SP_API_JOIN_GROUP:
        group_join(gs, call);
        break;
    case SP_API_SYNC_GROUP:
        group_sync(gs, call);
        break;
    case SP_API_HEARTBEAT:
        group_heartbeat(gs, call);
        break;
    case SP_API_LEAVE_GROUP:
        group_leave(gs, call);
        break;
    case SP_API_OFFSET_COMMIT:
        sp_group_commit(gs, call);
        break;
    case SP_API_OFFSET_FETCH:
        sp_group_offset_fetch(gs, call);
        break;
    case SP_API_DESCRIBE_GROUPS:
        group_describe(gs, call);
        break;
    case SP_API_LIST_GROUPS:
        group_list(gs, call);
        break;
    case SP_API_DELETE_GROUPS:
        group_delete(gs, call);
        break;
    case SP_API_OFFSET_DELETE:
        sp_group_offset_delete(gs, call);
        break;
    case SP_API_TXN_OFFSET_COMMIT:
        sp_group_txn_commit(gs, call);
        break;
    default:
        sp_group_answer(call, NULL);
        break;
    }
}

/* The earliest deadline due at now (*gp and *mp say whose: a member's
 * session, a group's join, or neither: the retention check), or
 * INT64_MAX. */
static int64_t earliest_due(const sp_groups_t *gs, int64_t now, sp_group_t **gp, sp_member_t **mp)
{
    int64_t best = INT64_MAX;
    *gp = NULL;
    *mp = NULL;
    if (gs->retention_deadline && gs->retention_deadline <= now)
        best = gs->retention_deadline;
    for (sp_group_t *g = gs->groups; g; g = g->next) {
        if (g->join_deadline && g->join_deadline <= now && g->join_deadline < best) {
            best = g->join_deadline;
            *gp = g;
            *mp = NULL;
        }
        for (sp_member_t *m = g->members; m; m = m->next)
            if (m->session_deadline && m->session_deadline <= now && m->session_deadline < best) {
                best = m->session_deadline;
                *gp = g;
                *mp = m;
            }
    }
    return best;
}

/* Member ids handed out (MEMBER_ID_REQUIRED) whose holder did not come
 * back within its session timeout are forgotten, as Kafka removes a
 * pending member whose heartbeat expires; a rebalance that waited for
 * them may then complete. */
static void expire_pending(sp_groups_t *gs, int64_t now)
{
    for (sp_group_t *g = gs->groups; g; g = g->next) {
        bool dropped = false;
        for (int i = 0; i < g->npending;) {
            if (g->pending[i].deadline <= now) {
                free(g->pending[i].id);
                g->pending[i] = g->pending[--g->npending];
                dropped = true;
            } else {
                i++;
            }
        }
        if (dropped)
            maybe_complete_join(g);
    }
}

static int64_t next_deadline(const sp_groups_t *gs)
{
    int64_t d = gs->retention_deadline ? gs->retention_deadline : INT64_MAX;
    for (const sp_group_t *g = gs->groups; g; g = g->next) {
        if (g->join_deadline && g->join_deadline < d)
            d = g->join_deadline;
        for (int i = 0; i < g->npending; i++)
            if (g->pending[i].deadline < d)
                d = g->pending[i].deadline;
        for (const sp_member_t *m = g->members; m; m = m->next)
            if (m->session_deadline && m->session_deadline < d)
                d = m->session_deadline;
    }
    return d;
}

/* Runs what is due, earliest first (what one runs may move or remove
 * the others; a deadline it sets is always later than now). */
int64_t sp_groups_tick(sp_groups_t *gs, int64_t now)
{
    gs->now = now;
    expire_pending(gs, now);
    for (;;) {
        sp_group_t *g;
        sp_member_t *m;
        if (earliest_due(gs, now, &g, &m) == INT64_MAX)
            break;
        if (m && (m->join_call || m->sync_call)) {
            /* parked in JoinGroup or SyncGroup: a member cannot heartbeat
             * while it waits, so it stays (Kafka's hasSatisfiedHeartbeat);
             * the rebalance's own deadline deals with it */
            m->session_deadline = now + (m->session_timeout > 0 ? m->session_timeout : 10000);
        } else if (m) {
            m->session_deadline = 0;
            remove_member(g, m, "session timeout expired");
        } else if (g) {
            join_timeout(g);
        } else {
            gs->retention_deadline = now + gs->set.retention_check_ms;
            sp_groups_expire(gs);
        }
    }
    gs->next = next_deadline(gs);
    return gs->next;
}

int sp_groups_txn_end(sp_groups_t *gs, int64_t producer_id, bool commit,
                      bool (*mine)(void *ctx, const char *group), void *ctx, int64_t now)
{
    int n = 0;
    gs->now = now;
    for (sp_group_t *g = gs->groups; g; g = g->next)
        if (!mine || mine(ctx, g->id))
            n += sp_offsets_txn_end(&g->offsets, producer_id, commit);
    return n;
}

int64_t sp_groups_deadline(const sp_groups_t *gs)
{
    return gs->next;
}

void sp_groups_shutdown(sp_groups_t *gs)
{
    for (sp_group_t *g = gs->groups; g; g = g->next)
        for (sp_member_t *m = g->members; m; m = m->next) {
            if (m->join_call)
                answer_join_error(m->join_call, SP_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
            m->join_call = NULL;
            fail_sync(m, SP_ERR_COORDINATOR_NOT_AVAILABLE);
        }
}

int sp_groups_check(const sp_groups_t *gs)
{
    for (const sp_group_t *g = gs->groups; g; g = g->next) {
        int n = 0;
        for (const sp_member_t *m = g->members; m; m = m->next, n++)
            if (m->g != g || !m->id || m->assignment_len < 0 || (m->nprotocols && !m->pnames[0]))
                return -1; /* a member not of its group or half built */
        if (n != g->nmembers)
            return -2; /* members miscounted */
        if (g->offsets.n < 0 || g->offsets.n > g->offsets.cap || !g->id)
            return -3;
        if (g->state != SP_GROUP_EMPTY && g->state != SP_GROUP_STABLE && g->state != SP_GROUP_DEAD &&
            g->state != SP_GROUP_PREPARING && g->state != SP_GROUP_COMPLETING)
            return -4; /* an unknown state */
        for (const sp_group_t *h = gs->groups; h != g; h = h->next)
            if (strcmp(h->id, g->id) == 0)
                return -5; /* two groups of one id */
        for (int i = 0; i < g->offsets.n; i++)
            for (int k = 0; k < i; k++)
                if (g->offsets.v[i].partition == g->offsets.v[k].partition &&
                    strcmp(g->offsets.v[i].topic, g->offsets.v[k].topic) == 0)
                    return -6; /* two offsets of one partition */
        for (int i = 0; i < g->offsets.ntxn; i++)
            for (int k = 0; k < i; k++)
                if (g->offsets.txn[i].producer_id == g->offsets.txn[k].producer_id &&
                    g->offsets.txn[i].o.partition == g->offsets.txn[k].o.partition &&
                    strcmp(g->offsets.txn[i].o.topic, g->offsets.txn[k].o.topic) == 0)
                    return -7; /* two pending transactional offsets of one producer and partition */
    }
    return 0;
}

const char *sp_groups_state(const sp_groups_t *gs, const char *id)
{
    const sp_group_t *g = sp_group_find(gs, sp_str_c(id));
    return g ? sp_group_state_names[g->state] : NULL;
}
