/*
 * test_group.c - the consumer group state machine (group/group.h) driven
 * without a thread: a fake clock, calls built by hand, and a fake
 * environment whose __consumer_offsets is a list of batches that the test
 * settles (durable or lost) when it chooses.
 *
 * Covered: two members joining through MEMBER_ID_REQUIRED and the initial
 * delay, the leader's member list, SyncGroup answered only once the
 * leader's assignment is durable (and a lost one rebalancing); a new
 * member rebalancing a Stable group; session expiry and the rebalance
 * timeout through sp_groups_tick; static membership (a restart takes the
 * old place under a new id, the old id fenced, a lost write reverting
 * it); a rejoin while CompletingRebalance with the same protocols
 * answered with the current generation (the leader's too), a Stable
 * leader's rejoin rebalancing; commits answered and visible only once
 * durable, a lost or refused write changing nothing; LeaveGroup,
 * DescribeGroups, ListGroups, DeleteGroups; offsets retention; a
 * replay of every durable record rebuilding the same groups; and
 * transactional offsets (TxnOffsetCommit): Kafka's checks and their
 * order, one transactional batch, pending until the producer's marker
 * (invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT with require_stable),
 * COMMIT and ABORT, a plain commit meanwhile, a marker during the write,
 * deletion, and replay with and without the marker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "group/group.h"
#include "group/records.h"
#include "proto/batch.h"
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
#include "proto/gen/offset_commit_request.h"
#include "proto/gen/offset_commit_response.h"
#include "proto/gen/offset_delete_request.h"
#include "proto/gen/offset_delete_response.h"
#include "proto/gen/offset_fetch_request.h"
#include "proto/gen/offset_fetch_response.h"
#include "proto/gen/sync_group_request.h"
#include "proto/gen/sync_group_response.h"
#include "proto/gen/txn_offset_commit_request.h"
#include "proto/gen/txn_offset_commit_response.h"
#include "util/log.h"

#define SESSION 10000
#define REBALANCE 20000
#define DELAY 3000
#define RETENTION (7LL * 24 * 3600 * 1000)
#define CHECK_EVERY 600000

static int64_t T = 1700000000000LL; /* the fake clock */
static int32_t session_ms = SESSION; /* of the members that join */

/* ---- calls -------------------------------------------------------------- */

typedef struct tcall {
    sp_group_call_t call;
    sp_arena_t arena;
    void *resp;
    int answered;
    struct tcall *next;
} tcall_t;

static tcall_t *all_calls;

static void on_done(sp_group_call_t *call, void *resp)
{
    tcall_t *t = call->token;
    t->resp = resp;
    t->answered++;
}

static tcall_t *new_call(int16_t api, int16_t version, size_t body_size)
{
    tcall_t *t = calloc(1, sizeof(*t));
    sp_arena_init(&t->arena, 0);
    t->call.api = api;
    t->call.version = version;
    t->call.arena = &t->arena;
    t->call.client_id = sp_str_lit("test-client");
    t->call.client_host = "/127.0.0.1";
    t->call.done = on_done;
    t->call.token = t;
    t->call.body = sp_arena_zalloc(&t->arena, body_size);
    t->next = all_calls;
    all_calls = t;
    return t;
}

static void free_calls(void)
{
    while (all_calls) {
        tcall_t *t = all_calls;
        all_calls = t->next;
        sp_arena_free(&t->arena);
        free(t);
    }
}

/* A copy of C string s in t's arena. */
static sp_str_t str(tcall_t *t, const char *s)
{
    return s ? sp_str_c(sp_arena_strdup(&t->arena, s, strlen(s))) : SP_STR_NULL;
}

static bool str_is(sp_str_t s, const char *c)
{
    return s.len >= 0 && (size_t)s.len == strlen(c) && memcmp(s.ptr, c, (size_t)s.len) == 0;
}

static bool bytes_are(sp_bytes_t b, const char *c)
{
    return b.len >= 0 && (size_t)b.len == strlen(c) && memcmp(b.ptr, c, (size_t)b.len) == 0;
}

/* ---- the fake environment ------------------------------------------------ */

typedef struct fwrite {
    sp_group_write_t *w;
    uint8_t *batch;
    size_t len;
} fwrite_t;

static fwrite_t writes[64];      /* under way, oldest first */
static int nwrites;
static int16_t append_error;     /* persist refuses with it, when set */

typedef struct logged {
    uint8_t *batch;
    size_t len;
    int64_t base;
} logged_t;

static logged_t log_v[256];      /* the durable batches of __consumer_offsets */
static int nlog;
static int64_t log_end;

static int16_t fake_persist(void *ctx, const char *group, uint8_t *batch, size_t len, sp_group_write_t *w)
{
    (void)ctx;
    (void)group;
    if (append_error)
        return append_error;
    fwrite_t *f = &writes[nwrites++];
    f->w = w;
    f->len = len;
    f->batch = len ? malloc(len) : NULL;
    if (len)
        memcpy(f->batch, batch, len);
    return 0;
}

static int32_t fake_partitions(void *ctx, sp_str_t topic)
{
    (void)ctx;
    return str_is(topic, "t") ? 4 : -1;
}

static int count_record(const sp_record_t *rec, void *ctx)
{
    (void)rec;
    (*(int *)ctx)++;
    return 0;
}

/* Settles the oldest write under way: durable (err 0: into the log) or
 * lost. */
static void settle_one(sp_groups_t *gs, int16_t err)
{
    fwrite_t f = writes[0];
    memmove(writes, writes + 1, sizeof(writes[0]) * (size_t)--nwrites);
    int64_t last = log_end - 1;
    if (!err && f.len) {
        int n = 0;
        int64_t next = 0;
        CHECK(sp_batches_each_record(f.batch, f.len, count_record, &n, &next) == 0 && n > 0);
        log_v[nlog++] = (logged_t){ f.batch, f.len, log_end };
        log_end += n;
        last = log_end - 1;
    } else {
        free(f.batch);
    }
    sp_groups_settle(gs, f.w, err, last, T);
    CHECK(sp_groups_check(gs) == 0);
}

static void settle_all(sp_groups_t *gs)
{
    while (nwrites)
        settle_one(gs, 0);
}

/* The records of write i under way. */
static int fwrite_count(int i)
{
    int n = 0;
    int64_t next = 0;
    if (i < nwrites && writes[i].len)
        sp_batches_each_record(writes[i].batch, writes[i].len, count_record, &n, &next);
    return n;
}

static void reset_log(void)
{
    for (int i = 0; i < nlog; i++)
        free(log_v[i].batch);
    nlog = 0;
    log_end = 0;
    append_error = 0;
}

static sp_group_settings_t settings(void)
{
    sp_group_settings_t s;
    memset(&s, 0, sizeof(s));
    s.min_session_timeout_ms = 6000;
    s.max_session_timeout_ms = 1800000;
    s.max_size = 1000;
    s.initial_rebalance_delay_ms = DELAY;
    s.offset_metadata_max_bytes = 4096;
    s.retention_ms = RETENTION;
    s.retention_check_ms = CHECK_EVERY;
    return s;
}

static sp_groups_t *new_groups(void)
{
    sp_group_settings_t s = settings();
    sp_group_env_t env = { .ctx = NULL, .persist = fake_persist, .partitions = fake_partitions };
    sp_groups_t *gs = sp_groups_new(&s, &env);
    sp_groups_start(gs, T);
    return gs;
}

static void done_groups(sp_groups_t *gs)
{
    settle_all(gs);
    sp_groups_shutdown(gs);
    sp_groups_free(gs);
    free_calls();
    reset_log();
}

static void run(sp_groups_t *gs, tcall_t *t)
{
    sp_groups_call(gs, &t->call, T);
    CHECK(sp_groups_check(gs) == 0);
}

static void tick(sp_groups_t *gs)
{
    int64_t next = sp_groups_tick(gs, T);
    CHECK(next > T);
    CHECK(sp_groups_deadline(gs) == next);
    CHECK(sp_groups_check(gs) == 0);
}

static bool state_is(sp_groups_t *gs, const char *group, const char *state)
{
    const char *s = sp_groups_state(gs, group);
    return state ? s && strcmp(s, state) == 0 : s == NULL;
}

/* ---- requests ------------------------------------------------------------- */

/* JoinGroup v(version) of group by member (NULL: ""), static as instance
 * (or not), with one protocol "range" of metadata meta. */
static tcall_t *join(sp_groups_t *gs, const char *group, const char *member, const char *instance,
                     int16_t version, const char *meta)
{
    tcall_t *t = new_call(SP_API_JOIN_GROUP, version, sizeof(sp_join_group_request_t));
    sp_join_group_request_t *b = (sp_join_group_request_t *)t->call.body;
    sp_join_group_request_init(b);
    b->group_id = str(t, group);
    b->session_timeout_ms = session_ms;
    b->rebalance_timeout_ms = REBALANCE;
    b->member_id = str(t, member ? member : "");
    b->group_instance_id = str(t, instance);
    b->protocol_type = sp_str_lit("consumer");
    b->protocols.v = sp_join_group_request_protocol_alloc(&t->arena, 1);
    b->protocols.n = 1;
    b->protocols.v[0].name = sp_str_lit("range");
    b->protocols.v[0].metadata = (sp_bytes_t){ (const uint8_t *)meta, (int32_t)strlen(meta) };
    run(gs, t);
    return t;
}

static sp_join_group_response_t *join_resp(tcall_t *t)
{
    return t->answered == 1 ? t->resp : NULL;
}

static tcall_t *sync_group(sp_groups_t *gs, const char *group, const char *member, const char *instance,
                           int32_t gen, int n, const char *const *ids, const char *const *assignments)
{
    tcall_t *t = new_call(SP_API_SYNC_GROUP, 5, sizeof(sp_sync_group_request_t));
    sp_sync_group_request_t *b = (sp_sync_group_request_t *)t->call.body;
    sp_sync_group_request_init(b);
    b->group_id = str(t, group);
    b->generation_id = gen;
    b->member_id = str(t, member);
    b->group_instance_id = str(t, instance);
    b->protocol_type = sp_str_lit("consumer");
    b->protocol_name = sp_str_lit("range");
    b->assignments.v = sp_sync_group_request_assignment_alloc(&t->arena, n);
    b->assignments.n = n;
    for (int i = 0; i < n; i++) {
        b->assignments.v[i].member_id = str(t, ids[i]);
        b->assignments.v[i].assignment = (sp_bytes_t){ (const uint8_t *)assignments[i], (int32_t)strlen(assignments[i]) };
    }
    run(gs, t);
    return t;
}

static sp_sync_group_response_t *sync_resp(tcall_t *t)
{
    return t->answered == 1 ? t->resp : NULL;
}

/* Heartbeat's error code (or -999 if not answered at once). */
static int16_t heartbeat(sp_groups_t *gs, const char *group, const char *member, const char *instance, int32_t gen)
{
    tcall_t *t = new_call(SP_API_HEARTBEAT, 4, sizeof(sp_heartbeat_request_t));
    sp_heartbeat_request_t *b = (sp_heartbeat_request_t *)t->call.body;
    sp_heartbeat_request_init(b);
    b->group_id = str(t, group);
    b->generation_id = gen;
    b->member_id = str(t, member);
    b->group_instance_id = str(t, instance);
    run(gs, t);
    return t->answered == 1 && t->resp ? ((sp_heartbeat_response_t *)t->resp)->error_code : -999;
}

/* OffsetCommit v7 of t/partition = offset by member at gen (member NULL:
 * a simple commit, gen -1). */
static tcall_t *commit(sp_groups_t *gs, const char *group, const char *member, int32_t gen, const char *topic,
                       int32_t partition, int64_t offset)
{
    tcall_t *t = new_call(SP_API_OFFSET_COMMIT, 7, sizeof(sp_offset_commit_request_t));
    sp_offset_commit_request_t *b = (sp_offset_commit_request_t *)t->call.body;
    sp_offset_commit_request_init(b);
    b->group_id = str(t, group);
    b->generation_id_or_member_epoch = member ? gen : -1;
    b->member_id = str(t, member ? member : "");
    b->group_instance_id = SP_STR_NULL;
    b->topics.v = sp_offset_commit_request_topic_alloc(&t->arena, 1);
    b->topics.n = 1;
    b->topics.v[0].name = str(t, topic);
    b->topics.v[0].partitions.v = sp_offset_commit_request_partition_alloc(&t->arena, 1);
    b->topics.v[0].partitions.n = 1;
    b->topics.v[0].partitions.v[0].partition_index = partition;
    b->topics.v[0].partitions.v[0].committed_offset = offset;
    b->topics.v[0].partitions.v[0].committed_leader_epoch = 3;
    b->topics.v[0].partitions.v[0].committed_metadata = sp_str_lit("meta");
    run(gs, t);
    return t;
}

/* The error of the answered OffsetCommit t's only partition, or -999. */
static int16_t commit_error(tcall_t *t)
{
    sp_offset_commit_response_t *r = t->answered == 1 ? t->resp : NULL;
    if (!r || r->topics.n != 1 || r->topics.v[0].partitions.n != 1)
        return -999;
    return r->topics.v[0].partitions.v[0].error_code;
}

/* OffsetFetch v7 of topic/partition: the committed offset (-1: none). */
static int64_t fetch(sp_groups_t *gs, const char *group, const char *topic, int32_t partition)
{
    tcall_t *t = new_call(SP_API_OFFSET_FETCH, 7, sizeof(sp_offset_fetch_request_t));
    sp_offset_fetch_request_t *b = (sp_offset_fetch_request_t *)t->call.body;
    sp_offset_fetch_request_init(b);
    b->group_id = str(t, group);
    b->topics.v = sp_offset_fetch_request_topic_alloc(&t->arena, 1);
    b->topics.n = 1;
    b->topics.v[0].name = str(t, topic);
    b->topics.v[0].partition_indexes.v = sp_arena_alloc(&t->arena, sizeof(int32_t));
    b->topics.v[0].partition_indexes.v[0] = partition;
    b->topics.v[0].partition_indexes.n = 1;
    run(gs, t);
    sp_offset_fetch_response_t *r = t->answered == 1 ? t->resp : NULL;
    CHECK(r && r->topics.n == 1 && r->topics.v[0].partitions.n == 1);
    if (!r || r->topics.n != 1 || r->topics.v[0].partitions.n != 1)
        return -999;
    const sp_offset_fetch_response_partition_t *p = &r->topics.v[0].partitions.v[0];
    if (p->committed_offset >= 0)
        CHECK(str_is(p->metadata, "meta") && p->committed_leader_epoch == 3);
    return p->committed_offset;
}

static sp_describe_groups_response_described_group_t *describe(sp_groups_t *gs, const char *group)
{
    tcall_t *t = new_call(SP_API_DESCRIBE_GROUPS, 6, sizeof(sp_describe_groups_request_t));
    sp_describe_groups_request_t *b = (sp_describe_groups_request_t *)t->call.body;
    sp_describe_groups_request_init(b);
    b->groups.v = sp_arena_alloc(&t->arena, sizeof(sp_str_t));
    b->groups.v[0] = str(t, group);
    b->groups.n = 1;
    run(gs, t);
    sp_describe_groups_response_t *r = t->answered == 1 ? t->resp : NULL;
    CHECK(r && r->groups.n == 1);
    return r && r->groups.n == 1 ? &r->groups.v[0] : NULL;
}

/* The member of a described group whose id is id, or NULL. */
static sp_describe_groups_response_described_group_member_t *
described_member(sp_describe_groups_response_described_group_t *d, const char *id)
{
    for (int32_t i = 0; d && i < d->members.n; i++)
        if (str_is(d->members.v[i].member_id, id))
            return &d->members.v[i];
    return NULL;
}

/* ---- a group formed ------------------------------------------------------ */

typedef struct member {
    char id[256];
    const char *instance;
} member_t;

static void copy_id(member_t *m, sp_str_t id)
{
    snprintf(m->id, sizeof(m->id), "%.*s", (int)id.len, id.ptr);
}

/*
 * n members join an Empty group (dynamic ones through MEMBER_ID_REQUIRED),
 * wait out the initial delay and get generation gen of the group,
 * CompletingRebalance, members[0] the leader.
 */
static int32_t form(sp_groups_t *gs, const char *group, member_t *members, int n)
{
    tcall_t *joins[8];
    for (int i = 0; i < n; i++) {
        if (!members[i].instance) {
            tcall_t *first = join(gs, group, NULL, NULL, 5, "sub");
            sp_join_group_response_t *r = join_resp(first);
            CHECK(r && r->error_code == SP_ERR_MEMBER_ID_REQUIRED && r->member_id.len > 0);
            if (!r)
                return -1;
            /* Kafka's id: client.id, "-", a UUID */
            CHECK(r->member_id.len == 12 + 36 && memcmp(r->member_id.ptr, "test-client-", 12) == 0);
            copy_id(&members[i], r->member_id);
            joins[i] = join(gs, group, members[i].id, NULL, 5, "sub");
        } else {
            joins[i] = join(gs, group, NULL, members[i].instance, 5, "sub");
        }
        CHECK(joins[i]->answered == 0); /* parked: the initial delay */
        CHECK(state_is(gs, group, "PreparingRebalance"));
    }
    T += DELAY - 1;
    tick(gs);
    for (int i = 0; i < n; i++)
        CHECK(joins[i]->answered == 0);
    T += 1;
    tick(gs);
    CHECK(state_is(gs, group, "CompletingRebalance"));
    int32_t gen = -1;
    for (int i = 0; i < n; i++) {
        sp_join_group_response_t *r = join_resp(joins[i]);
        CHECK(r && r->error_code == 0);
        if (!r)
            return -1;
        if (members[i].instance)
            copy_id(&members[i], r->member_id);
        CHECK(str_is(r->member_id, members[i].id));
        CHECK(str_is(r->leader, members[0].id));
        CHECK(str_is(r->protocol_name, "range"));
        /* the member list (with the subscriptions) for the leader only */
        CHECK(r->members.n == (i == 0 ? n : 0));
        if (i == 0)
            for (int k = 0; k < r->members.n; k++)
                CHECK(bytes_are(r->members.v[k].metadata, "sub"));
        if (i == 0)
            gen = r->generation_id;
        CHECK(r->generation_id == gen);
    }
    return gen;
}

/* Everyone syncs (followers first), the leader assigning "A<i>" to member
 * i; the write is settled durable.  The group is Stable after. */
static void stabilise(sp_groups_t *gs, const char *group, member_t *members, int n, int32_t gen)
{
    const char *ids[8], *as[8];
    char abuf[8][16];
    tcall_t *syncs[8];
    for (int i = 0; i < n; i++) {
        ids[i] = members[i].id;
        snprintf(abuf[i], sizeof(abuf[i]), "A%d", i);
        as[i] = abuf[i];
    }
    for (int i = n - 1; i >= 0; i--)
        syncs[i] = sync_group(gs, group, members[i].id, members[i].instance, gen, i == 0 ? n : 0, ids, as);
    for (int i = 0; i < n; i++)
        CHECK(syncs[i]->answered == 0); /* until the assignment is durable */
    CHECK(state_is(gs, group, "CompletingRebalance"));
    CHECK(nwrites == 1);
    settle_one(gs, 0);
    CHECK(state_is(gs, group, "Stable"));
    for (int i = 0; i < n; i++) {
        sp_sync_group_response_t *r = sync_resp(syncs[i]);
        CHECK(r && r->error_code == 0 && bytes_are(r->assignment, as[i]));
    }
}

/* ---- the tests ------------------------------------------------------------- */

static void test_join_sync(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    CHECK(gen == 1);
    CHECK(heartbeat(gs, "g", m[1].id, NULL, gen) == 0);
    CHECK(heartbeat(gs, "g", m[1].id, NULL, gen + 1) == SP_ERR_ILLEGAL_GENERATION);
    CHECK(heartbeat(gs, "g", "nobody", NULL, gen) == SP_ERR_UNKNOWN_MEMBER_ID);

    /* a lost assignment: the syncs fail and the group rebalances */
    const char *ids[] = { m[0].id, m[1].id }, *as[] = { "x", "y" };
    tcall_t *s1 = sync_group(gs, "g", m[1].id, NULL, gen, 0, ids, as);
    tcall_t *s0 = sync_group(gs, "g", m[0].id, NULL, gen, 2, ids, as);
    CHECK(s0->answered == 0 && s1->answered == 0 && nwrites == 1);
    settle_one(gs, SP_ERR_NOT_COORDINATOR);
    CHECK(sync_resp(s0) && sync_resp(s0)->error_code == SP_ERR_NOT_COORDINATOR);
    CHECK(sync_resp(s1) && sync_resp(s1)->error_code == SP_ERR_NOT_COORDINATOR);
    CHECK(state_is(gs, "g", "PreparingRebalance"));
    CHECK(heartbeat(gs, "g", m[0].id, NULL, gen) == SP_ERR_REBALANCE_IN_PROGRESS);

    /* both rejoin: the next generation, no initial delay this time */
    tcall_t *j0 = join(gs, "g", m[0].id, NULL, 5, "sub");
    CHECK(j0->answered == 0);
    tcall_t *j1 = join(gs, "g", m[1].id, NULL, 5, "sub");
    CHECK(join_resp(j0) && join_resp(j0)->generation_id == gen + 1 && join_resp(j0)->members.n == 2);
    CHECK(join_resp(j1) && join_resp(j1)->generation_id == gen + 1 && join_resp(j1)->members.n == 0);
    stabilise(gs, "g", m, 2, gen + 1);
    CHECK(heartbeat(gs, "g", m[0].id, NULL, gen + 1) == 0);

    /* the Stable group, described and listed */
    sp_describe_groups_response_described_group_t *d = describe(gs, "g");
    CHECK(d && d->error_code == 0 && str_is(d->group_state, "Stable") && str_is(d->protocol_type, "consumer") &&
          str_is(d->protocol_data, "range") && d->members.n == 2);
    sp_describe_groups_response_described_group_member_t *dm = described_member(d, m[1].id);
    CHECK(dm && bytes_are(dm->member_assignment, "A1") && bytes_are(dm->member_metadata, "sub") &&
          str_is(dm->client_id, "test-client") && str_is(dm->client_host, "/127.0.0.1"));
    d = describe(gs, "none");
    CHECK(d && d->error_code == SP_ERR_GROUP_ID_NOT_FOUND && str_is(d->group_state, "Dead"));

    tcall_t *l = new_call(SP_API_LIST_GROUPS, 5, sizeof(sp_list_groups_request_t));
    sp_list_groups_request_init((sp_list_groups_request_t *)l->call.body);
    run(gs, l);
    sp_list_groups_response_t *lr = l->resp;
    CHECK(lr && lr->groups.n == 1 && str_is(lr->groups.v[0].group_id, "g") &&
          str_is(lr->groups.v[0].group_state, "Stable") && str_is(lr->groups.v[0].group_type, "classic"));
    tcall_t *l2 = new_call(SP_API_LIST_GROUPS, 5, sizeof(sp_list_groups_request_t));
    sp_list_groups_request_t *lb = (sp_list_groups_request_t *)l2->call.body;
    sp_list_groups_request_init(lb);
    lb->states_filter.v = sp_arena_alloc(&l2->arena, sizeof(sp_str_t));
    lb->states_filter.v[0] = sp_str_lit("empty");
    lb->states_filter.n = 1;
    run(gs, l2);
    CHECK(l2->resp && ((sp_list_groups_response_t *)l2->resp)->groups.n == 0);
    done_groups(gs);
}

static void test_new_member_rebalances(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[3] = { { .instance = NULL }, { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);

    tcall_t *first = join(gs, "g", NULL, NULL, 5, "sub");
    CHECK(join_resp(first) && join_resp(first)->error_code == SP_ERR_MEMBER_ID_REQUIRED);
    CHECK(state_is(gs, "g", "Stable")); /* not a member yet */
    copy_id(&m[2], join_resp(first)->member_id);
    tcall_t *jc = join(gs, "g", m[2].id, NULL, 5, "sub");
    CHECK(jc->answered == 0 && state_is(gs, "g", "PreparingRebalance"));
    CHECK(heartbeat(gs, "g", m[0].id, NULL, gen) == SP_ERR_REBALANCE_IN_PROGRESS);
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub");
    CHECK(ja->answered == 0);
    tcall_t *jb = join(gs, "g", m[1].id, NULL, 5, "sub");
    /* everyone is in: no waiting for the timeout */
    CHECK(state_is(gs, "g", "CompletingRebalance"));
    CHECK(join_resp(ja) && join_resp(ja)->generation_id == gen + 1 && join_resp(ja)->members.n == 3 &&
          str_is(join_resp(ja)->leader, m[0].id));
    CHECK(join_resp(jb) && join_resp(jb)->generation_id == gen + 1);
    CHECK(join_resp(jc) && join_resp(jc)->generation_id == gen + 1 && str_is(join_resp(jc)->member_id, m[2].id));
    stabilise(gs, "g", m, 3, gen + 1);
    done_groups(gs);
}

/* A member id handed out (MEMBER_ID_REQUIRED) whose client never comes
 * back holds a rebalance only until its session timeout, as Kafka's
 * pending members: then it is forgotten and the join completes, before
 * the rebalance timeout. */
static void test_pending_id_expires(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    int64_t t0 = T;
    tcall_t *first = join(gs, "g", NULL, NULL, 5, "sub");  /* never comes back */
    CHECK(join_resp(first) && join_resp(first)->error_code == SP_ERR_MEMBER_ID_REQUIRED);
    CHECK(sp_groups_deadline(gs) <= t0 + SESSION);
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub");
    tcall_t *jb = join(gs, "g", m[1].id, NULL, 5, "sub");
    CHECK(ja->answered == 0 && jb->answered == 0);          /* waiting for the pending id */
    T = t0 + SESSION - 1;
    tick(gs);
    CHECK(ja->answered == 0 && state_is(gs, "g", "PreparingRebalance"));
    T = t0 + SESSION;                                        /* before the rebalance timeout */
    tick(gs);
    CHECK(state_is(gs, "g", "CompletingRebalance"));
    CHECK(join_resp(ja) && join_resp(ja)->generation_id == gen + 1 && join_resp(ja)->members.n == 2);
    CHECK(join_resp(jb) && join_resp(jb)->generation_id == gen + 1);
    done_groups(gs);
}

static void test_session_expiry(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    int64_t t0 = T;
    T += 5000;
    CHECK(heartbeat(gs, "g", m[0].id, NULL, gen) == 0);
    /* the timer is due no later than m[1]'s session */
    CHECK(sp_groups_deadline(gs) <= t0 + SESSION);
    T = t0 + SESSION - 1;
    tick(gs);
    CHECK(state_is(gs, "g", "Stable"));
    T = t0 + SESSION;
    tick(gs);
    CHECK(state_is(gs, "g", "PreparingRebalance"));
    CHECK(heartbeat(gs, "g", m[1].id, NULL, gen) == SP_ERR_UNKNOWN_MEMBER_ID);
    CHECK(heartbeat(gs, "g", m[0].id, NULL, gen) == SP_ERR_REBALANCE_IN_PROGRESS);
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub");
    CHECK(join_resp(ja) && join_resp(ja)->generation_id == gen + 1 && join_resp(ja)->members.n == 1);
    stabilise(gs, "g", m, 1, gen + 1);

    /* the last member expires: the group is Empty, a new generation */
    T += SESSION;
    tick(gs);
    CHECK(state_is(gs, "g", "Empty"));
    settle_all(gs);
    sp_describe_groups_response_described_group_t *d = describe(gs, "g");
    CHECK(d && d->members.n == 0 && str_is(d->group_state, "Empty"));
    done_groups(gs);
}

static void test_rebalance_timeout(void)
{
    /* sessions longer than the rebalance timeout: parked joins do not
     * heartbeat */
    session_ms = 30000;
    sp_groups_t *gs = new_groups();
    member_t m[3] = { { .instance = NULL }, { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    tcall_t *first = join(gs, "g", NULL, NULL, 5, "sub");
    CHECK(join_resp(first) != NULL);
    if (!join_resp(first))
        return;
    copy_id(&m[2], join_resp(first)->member_id);
    int64_t t0 = T;
    tcall_t *jc = join(gs, "g", m[2].id, NULL, 5, "sub");
    T += 1000;
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub");
    /* m[1] keeps heartbeating but never rejoins */
    for (int i = 0; i < 3; i++) {
        T += 5000;
        CHECK(heartbeat(gs, "g", m[1].id, NULL, gen) == SP_ERR_REBALANCE_IN_PROGRESS);
        tick(gs);
    }
    CHECK(ja->answered == 0 && jc->answered == 0);
    CHECK(sp_groups_deadline(gs) <= t0 + REBALANCE);
    T = t0 + REBALANCE;
    tick(gs);
    CHECK(state_is(gs, "g", "CompletingRebalance"));
    CHECK(join_resp(ja) && join_resp(ja)->generation_id == gen + 1 && join_resp(ja)->members.n == 2);
    CHECK(join_resp(jc) && join_resp(jc)->generation_id == gen + 1);
    CHECK(heartbeat(gs, "g", m[1].id, NULL, gen) == SP_ERR_UNKNOWN_MEMBER_ID);
    done_groups(gs);
    session_ms = SESSION;
}

/* A member parked in JoinGroup cannot heartbeat: it stays past its session
 * timeout while the rebalance waits (Kafka's hasSatisfiedHeartbeat), and
 * only the rebalance timeout removes the member that never rejoined. */
static void test_parked_join_outlives_session(void)
{
    sp_groups_t *gs = new_groups(); /* sessions (10 s) shorter than the rebalance (20 s) */
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    int64_t t0 = T;
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub"); /* a rebalance: m[0] parks */
    for (int i = 0; i < 3; i++) {                         /* 15 s: past m[0]'s session */
        T += 5000;
        CHECK(heartbeat(gs, "g", m[1].id, NULL, gen) == SP_ERR_REBALANCE_IN_PROGRESS);
        tick(gs);
    }
    CHECK(ja->answered == 0 && state_is(gs, "g", "PreparingRebalance"));
    sp_describe_groups_response_described_group_t *d = describe(gs, "g");
    CHECK(d && d->members.n == 2);
    T = t0 + REBALANCE;                                   /* m[1] never rejoined */
    tick(gs);
    CHECK(join_resp(ja) && join_resp(ja)->generation_id == gen + 1 && join_resp(ja)->members.n == 1);
    CHECK(heartbeat(gs, "g", m[1].id, NULL, gen) == SP_ERR_UNKNOWN_MEMBER_ID);
    done_groups(gs);
}

static void test_static_members(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = "ia" }, { .instance = "ib" } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    char old_a[256];
    snprintf(old_a, sizeof(old_a), "%s", m[0].id);

    /* the leader's instance restarts: its old place under a new id, once
     * the new id is durable; no rebalance */
    tcall_t *j = join(gs, "g", NULL, "ia", 5, "sub");
    CHECK(j->answered == 0 && nwrites == 1);
    settle_one(gs, 0);
    sp_join_group_response_t *r = join_resp(j);
    CHECK(r && r->error_code == 0 && r->generation_id == gen && r->member_id.len > 0 &&
          !str_is(r->member_id, old_a) && memcmp(r->member_id.ptr, "ia-", 3) == 0);
    /* below v9 a rejoined leader is told the old leader id and no members */
    CHECK(r && str_is(r->leader, old_a) && r->members.n == 0);
    CHECK(state_is(gs, "g", "Stable"));
    copy_id(&m[0], r->member_id);
    CHECK(heartbeat(gs, "g", old_a, "ia", gen) == SP_ERR_FENCED_INSTANCE_ID);
    CHECK(heartbeat(gs, "g", m[0].id, "ia", gen) == 0);
    CHECK(heartbeat(gs, "g", m[0].id, "ib", gen) == SP_ERR_FENCED_INSTANCE_ID);
    sp_describe_groups_response_described_group_member_t *dm = described_member(describe(gs, "g"), m[0].id);
    CHECK(dm && str_is(dm->group_instance_id, "ia") && bytes_are(dm->member_assignment, "A0"));

    /* another restart whose write is lost: the member id is reverted */
    tcall_t *j2 = join(gs, "g", NULL, "ia", 5, "sub");
    CHECK(j2->answered == 0);
    settle_one(gs, SP_ERR_NOT_COORDINATOR);
    CHECK(join_resp(j2) && join_resp(j2)->error_code == SP_ERR_NOT_COORDINATOR && join_resp(j2)->member_id.len == 0);
    CHECK(heartbeat(gs, "g", m[0].id, "ia", gen) == 0);
    CHECK(state_is(gs, "g", "Stable"));

    /* a restart with new metadata rebalances */
    tcall_t *j3 = join(gs, "g", NULL, "ib", 5, "other");
    CHECK(j3->answered == 0 && state_is(gs, "g", "PreparingRebalance"));
    CHECK(heartbeat(gs, "g", m[1].id, "ib", gen) == SP_ERR_FENCED_INSTANCE_ID);
    done_groups(gs);
}

static void test_rejoin_completing(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    /* CompletingRebalance: a rejoin with the same protocols (a lost
     * JoinGroup answer) gets the current generation, the leader too */
    tcall_t *jb = join(gs, "g", m[1].id, NULL, 5, "sub");
    CHECK(join_resp(jb) && join_resp(jb)->error_code == 0 && join_resp(jb)->generation_id == gen &&
          join_resp(jb)->members.n == 0);
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub");
    CHECK(join_resp(ja) && join_resp(ja)->error_code == 0 && join_resp(ja)->generation_id == gen &&
          join_resp(ja)->members.n == 2 && str_is(join_resp(ja)->leader, m[0].id));
    CHECK(state_is(gs, "g", "CompletingRebalance"));
    stabilise(gs, "g", m, 2, gen);

    /* Stable: a follower's rejoin likewise, the leader's rebalances */
    tcall_t *jb2 = join(gs, "g", m[1].id, NULL, 5, "sub");
    CHECK(join_resp(jb2) && join_resp(jb2)->generation_id == gen);
    CHECK(state_is(gs, "g", "Stable"));
    tcall_t *ja2 = join(gs, "g", m[0].id, NULL, 5, "sub");
    CHECK(ja2->answered == 0 && state_is(gs, "g", "PreparingRebalance"));
    /* a rejoin with other metadata: a rebalance in which it takes part */
    tcall_t *jb3 = join(gs, "g", m[1].id, NULL, 5, "changed");
    CHECK(join_resp(ja2) && join_resp(ja2)->generation_id == gen + 1);
    CHECK(join_resp(jb3) && join_resp(jb3)->generation_id == gen + 1);
    done_groups(gs);
}

static void test_commits(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    /* no commits while the group awaits its assignment */
    tcall_t *c0 = commit(gs, "g", m[0].id, gen, "t", 0, 1);
    CHECK(commit_error(c0) == SP_ERR_REBALANCE_IN_PROGRESS && nwrites == 0);
    stabilise(gs, "g", m, 2, gen);

    tcall_t *c1 = commit(gs, "g", m[0].id, gen, "t", 0, 42);
    CHECK(c1->answered == 0 && nwrites == 1);
    CHECK(fetch(gs, "g", "t", 0) == -1); /* not before it is durable */
    settle_one(gs, 0);
    CHECK(commit_error(c1) == 0);
    CHECK(fetch(gs, "g", "t", 0) == 42);

    /* a lost write: the error in the answer, the offset unchanged */
    tcall_t *c2 = commit(gs, "g", m[1].id, gen, "t", 0, 50);
    settle_one(gs, SP_ERR_NOT_COORDINATOR);
    CHECK(commit_error(c2) == SP_ERR_NOT_COORDINATOR);
    CHECK(fetch(gs, "g", "t", 0) == 42);

    /* an append refused at once: answered at once, nothing changes */
    append_error = SP_ERR_COORDINATOR_NOT_AVAILABLE;
    tcall_t *c3 = commit(gs, "g", m[1].id, gen, "t", 0, 60);
    CHECK(commit_error(c3) == SP_ERR_COORDINATOR_NOT_AVAILABLE && nwrites == 0);
    append_error = 0;
    CHECK(fetch(gs, "g", "t", 0) == 42);

    /* fenced, stale and misaddressed commits */
    CHECK(commit_error(commit(gs, "g", m[0].id, gen - 1, "t", 0, 7)) == SP_ERR_ILLEGAL_GENERATION);
    CHECK(commit_error(commit(gs, "g", "nobody", gen, "t", 0, 7)) == SP_ERR_UNKNOWN_MEMBER_ID);
    CHECK(commit_error(commit(gs, "g", NULL, -1, "t", 0, 7)) == SP_ERR_UNKNOWN_MEMBER_ID);
    /* a member's commit of nothing valid still goes through a (empty)
     * write, so it is answered in order */
    tcall_t *c6 = commit(gs, "g", m[0].id, gen, "nope", 0, 7);
    tcall_t *c7 = commit(gs, "g", m[0].id, gen, "t", 4, 7);
    CHECK(c6->answered == 0 && c7->answered == 0);
    settle_all(gs);
    CHECK(commit_error(c6) == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK(commit_error(c7) == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    CHECK(fetch(gs, "g", "t", 0) == 42);

    /* two commits under way: applied in the order written */
    tcall_t *c4 = commit(gs, "g", m[0].id, gen, "t", 1, 100);
    tcall_t *c5 = commit(gs, "g", m[1].id, gen, "t", 1, 101);
    CHECK(nwrites == 2);
    settle_one(gs, 0);
    CHECK(commit_error(c4) == 0 && c5->answered == 0 && fetch(gs, "g", "t", 1) == 100);
    settle_one(gs, 0);
    CHECK(commit_error(c5) == 0 && fetch(gs, "g", "t", 1) == 101);

    /* a simple commit (no generation) to a group without members */
    tcall_t *s = commit(gs, "solo", NULL, -1, "t", 2, 9);
    settle_one(gs, 0);
    CHECK(commit_error(s) == 0 && fetch(gs, "solo", "t", 2) == 9);
    CHECK(state_is(gs, "solo", "Empty"));
    done_groups(gs);
}

static tcall_t *leave(sp_groups_t *gs, const char *group, const char *member)
{
    tcall_t *t = new_call(SP_API_LEAVE_GROUP, 4, sizeof(sp_leave_group_request_t));
    sp_leave_group_request_t *b = (sp_leave_group_request_t *)t->call.body;
    sp_leave_group_request_init(b);
    b->group_id = str(t, group);
    b->members.v = sp_leave_group_request_member_identity_alloc(&t->arena, 1);
    b->members.n = 1;
    b->members.v[0].member_id = str(t, member);
    b->members.v[0].group_instance_id = SP_STR_NULL;
    run(gs, t);
    return t;
}

/* The error of the only member of an answered LeaveGroup, or -999. */
static int16_t leave_error(tcall_t *t)
{
    sp_leave_group_response_t *r = t->answered == 1 ? t->resp : NULL;
    return r && r->error_code == 0 && r->members.n == 1 ? r->members.v[0].error_code : -999;
}

static tcall_t *delete_group(sp_groups_t *gs, const char *group)
{
    tcall_t *t = new_call(SP_API_DELETE_GROUPS, 2, sizeof(sp_delete_groups_request_t));
    sp_delete_groups_request_t *b = (sp_delete_groups_request_t *)t->call.body;
    sp_delete_groups_request_init(b);
    b->groups_names.v = sp_arena_alloc(&t->arena, sizeof(sp_str_t));
    b->groups_names.v[0] = str(t, group);
    b->groups_names.n = 1;
    run(gs, t);
    return t;
}

static int16_t delete_error(tcall_t *t)
{
    sp_delete_groups_response_t *r = t->answered == 1 ? t->resp : NULL;
    return r && r->results.n == 1 ? r->results.v[0].error_code : -999;
}

static void test_leave_delete(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = NULL }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    tcall_t *c = commit(gs, "g", m[0].id, gen, "t", 0, 5);
    settle_one(gs, 0);
    CHECK(commit_error(c) == 0);

    CHECK(leave_error(leave(gs, "g", "nobody")) == SP_ERR_UNKNOWN_MEMBER_ID);
    CHECK(state_is(gs, "g", "Stable"));
    CHECK(delete_error(delete_group(gs, "g")) == SP_ERR_NON_EMPTY_GROUP);
    CHECK(leave_error(leave(gs, "g", m[1].id)) == 0);
    CHECK(state_is(gs, "g", "PreparingRebalance"));
    tcall_t *ja = join(gs, "g", m[0].id, NULL, 5, "sub");
    CHECK(join_resp(ja) && join_resp(ja)->generation_id == gen + 1 && join_resp(ja)->members.n == 1);
    CHECK(leave_error(leave(gs, "g", m[0].id)) == 0);
    /* nobody left: an Empty generation, recorded */
    CHECK(state_is(gs, "g", "Empty"));
    CHECK(nwrites == 1);
    settle_all(gs);
    CHECK(fetch(gs, "g", "t", 0) == 5); /* offsets outlive the members */

    tcall_t *d = delete_group(gs, "g");
    CHECK(d->answered == 0 && nwrites == 1);
    CHECK(state_is(gs, "g", NULL)); /* forgotten at once */
    settle_one(gs, 0);
    CHECK(delete_error(d) == 0);
    CHECK(fetch(gs, "g", "t", 0) == -1);
    CHECK(delete_error(delete_group(gs, "g")) == SP_ERR_GROUP_ID_NOT_FOUND);
    done_groups(gs);
}

static tcall_t *offset_delete(sp_groups_t *gs, const char *group, const char *topic, int32_t partition)
{
    tcall_t *t = new_call(SP_API_OFFSET_DELETE, 0, sizeof(sp_offset_delete_request_t));
    sp_offset_delete_request_t *b = (sp_offset_delete_request_t *)t->call.body;
    sp_offset_delete_request_init(b);
    b->group_id = str(t, group);
    b->topics.v = sp_offset_delete_request_topic_alloc(&t->arena, 1);
    b->topics.n = 1;
    b->topics.v[0].name = str(t, topic);
    b->topics.v[0].partitions.v = sp_offset_delete_request_partition_alloc(&t->arena, 1);
    b->topics.v[0].partitions.n = 1;
    b->topics.v[0].partitions.v[0].partition_index = partition;
    run(gs, t);
    return t;
}

/* An OffsetDelete's error and its only partition's (or -999s). */
static void offset_delete_errors(tcall_t *t, int16_t *err, int16_t *perr)
{
    sp_offset_delete_response_t *r = t->answered == 1 ? t->resp : NULL;
    *err = r ? r->error_code : -999;
    *perr = r && r->topics.n == 1 && r->topics.v[0].partitions.n == 1 ? r->topics.v[0].partitions.v[0].error_code : -999;
}

static void test_offset_delete(void)
{
    sp_groups_t *gs = new_groups();
    int16_t err, perr;
    tcall_t *c = commit(gs, "solo", NULL, -1, "t", 0, 5);
    settle_one(gs, 0);
    CHECK(commit_error(c) == 0);
    /* a commit still being written when the tombstone is: the tombstone
     * follows it in the log, so it must not come back when it settles */
    tcall_t *c2 = commit(gs, "solo", NULL, -1, "t", 0, 6);
    tcall_t *d = offset_delete(gs, "solo", "t", 0);
    CHECK(c2->answered == 0 && d->answered == 0 && nwrites == 2);
    CHECK(fetch(gs, "solo", "t", 0) == -1); /* dropped at once */
    settle_one(gs, 0);
    CHECK(commit_error(c2) == 0);
    settle_one(gs, 0);
    offset_delete_errors(d, &err, &perr);
    CHECK(err == 0 && perr == 0);
    CHECK(fetch(gs, "solo", "t", 0) == -1);

    offset_delete_errors(offset_delete(gs, "none", "t", 0), &err, &perr);
    CHECK(err == SP_ERR_GROUP_ID_NOT_FOUND);
    tcall_t *d2 = offset_delete(gs, "solo", "nope", 0);
    settle_all(gs);
    offset_delete_errors(d2, &err, &perr);
    CHECK(err == 0 && perr == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    done_groups(gs);
}

static void test_retention(void)
{
    sp_groups_t *gs = new_groups();
    tcall_t *s = commit(gs, "old", NULL, -1, "t", 0, 3);
    settle_one(gs, 0);
    CHECK(commit_error(s) == 0);
    int64_t committed = T;
    /* checks before the retention keep it */
    while (T + CHECK_EVERY < committed + RETENTION) {
        T = sp_groups_deadline(gs);
        tick(gs);
    }
    CHECK(fetch(gs, "old", "t", 0) == 3);
    CHECK(nwrites == 0);
    T = committed + RETENTION + CHECK_EVERY;
    tick(gs);
    /* expired: a tombstone for the offset, then one for the group */
    CHECK(state_is(gs, "old", NULL));
    CHECK(nwrites == 2);
    settle_all(gs);
    CHECK(fetch(gs, "old", "t", 0) == -1);
    done_groups(gs);
}

typedef struct replay_ctx {
    sp_groups_t *gs;
    int64_t base;
} replay_ctx_t;

static int replay_record(const sp_record_t *rec, void *ctx)
{
    replay_ctx_t *r = ctx;
    sp_groups_replay(r->gs, rec->key, rec->value, r->base + rec->offset, T);
    CHECK(sp_groups_check(r->gs) == 0);
    return 0;
}

typedef struct replay_txn_ctx {
    sp_groups_t *gs;
    int64_t base;
    sp_batch_hdr_t h;
} replay_txn_ctx_t;

/* A record of a transactional batch or of a marker, as coordinator.c
 * replays them. */
static int replay_txn_record(const sp_record_t *rec, void *ctx)
{
    replay_txn_ctx_t *r = ctx;
    bool commit;
    if (!sp_batch_is_control(&r->h))
        sp_groups_replay_txn(r->gs, r->h.producer_id, rec->key, rec->value, r->base + rec->offset, T);
    else if (sp_group_marker_type(rec->key, &commit) == 0)
        sp_groups_txn_end(r->gs, r->h.producer_id, commit, NULL, NULL, T);
    CHECK(sp_groups_check(r->gs) == 0);
    return 0;
}

/* A new instance rebuilt from every durable batch so far. */
static sp_groups_t *replayed(void)
{
    sp_group_settings_t s = settings();
    sp_groups_t *gs = sp_groups_new(&s, NULL);
    for (int i = 0; i < nlog; i++) {
        int64_t next = 0;
        sp_batch_hdr_t h;
        CHECK(sp_batch_hdr_parse(log_v[i].batch, log_v[i].len, &h) == 0);
        if (h.producer_id < 0) {
            replay_ctx_t ctx = { gs, log_v[i].base };
            CHECK(sp_batches_each_record(log_v[i].batch, log_v[i].len, replay_record, &ctx, &next) == 0);
        } else {
            replay_txn_ctx_t ctx = { gs, log_v[i].base, h };
            CHECK(sp_batches_each_record(log_v[i].batch, log_v[i].len, replay_txn_record, &ctx, &next) == 0);
        }
    }
    sp_groups_start(gs, T);
    return gs;
}

static void test_replay(void)
{
    sp_groups_t *gs = new_groups();
    member_t m[2] = { { .instance = "ia" }, { .instance = NULL } };
    int32_t gen = form(gs, "g", m, 2);
    stabilise(gs, "g", m, 2, gen);
    tcall_t *c0 = commit(gs, "g", m[0].id, gen, "t", 0, 42);
    settle_one(gs, 0);
    CHECK(commit_error(c0) == 0);
    commit(gs, "g", m[1].id, gen, "t", 1, 43);
    commit(gs, "g", m[1].id, gen, "t", 2, 44);
    settle_one(gs, 0);
    settle_one(gs, SP_ERR_NOT_COORDINATOR); /* lost: never in the log */
    commit(gs, "gone", NULL, -1, "t", 0, 1);
    settle_one(gs, 0);
    tcall_t *d = delete_group(gs, "gone");
    settle_one(gs, 0);
    CHECK(delete_error(d) == 0);

    sp_groups_t *r = replayed();
    CHECK(sp_groups_check(r) == 0);
    CHECK(state_is(r, "g", "Stable"));
    CHECK(state_is(r, "gone", NULL));
    CHECK(fetch(r, "g", "t", 0) == 42);
    CHECK(fetch(r, "g", "t", 1) == 43);
    CHECK(fetch(r, "g", "t", 2) == -1);
    sp_describe_groups_response_described_group_t *dd = describe(r, "g");
    CHECK(dd && dd->members.n == 2 && str_is(dd->protocol_data, "range"));
    sp_describe_groups_response_described_group_member_t *da = described_member(dd, m[0].id);
    sp_describe_groups_response_described_group_member_t *db = described_member(dd, m[1].id);
    CHECK(da && str_is(da->group_instance_id, "ia") && bytes_are(da->member_assignment, "A0") &&
          bytes_are(da->member_metadata, "sub"));
    CHECK(db && db->group_instance_id.len < 0 && bytes_are(db->member_assignment, "A1"));
    /* the members are back and must heartbeat within their session,
     * counted from the start */
    int64_t start = T;
    T += 1000;
    CHECK(heartbeat(r, "g", m[1].id, NULL, gen) == 0);
    CHECK(sp_groups_deadline(r) <= start + SESSION);
    T = start + SESSION;
    CHECK(sp_groups_tick(r, T) > T);
    CHECK(state_is(r, "g", "PreparingRebalance")); /* m[0] did not */
    sp_groups_shutdown(r);
    sp_groups_free(r);
    done_groups(gs);
}


/* ---- transactional offsets ------------------------------------------------ */

#define PID 4000
#define PEPOCH 3

/* TxnOffsetCommit v(version) of group: topic/partition = offset by
 * producer pid, as member at gen (member NULL: "", gen -1) with instance
 * (or NULL); a second partition (topic2/partition2) if topic2. */
static tcall_t *txn_commit_call(const char *group, const char *member, int32_t gen, const char *instance,
                                int64_t pid, const char *topic, int32_t partition, int64_t offset,
                                const char *topic2, int32_t partition2, int16_t version)
{
    tcall_t *t = new_call(SP_API_TXN_OFFSET_COMMIT, version, sizeof(sp_txn_offset_commit_request_t));
    sp_txn_offset_commit_request_t *b = (sp_txn_offset_commit_request_t *)t->call.body;
    sp_txn_offset_commit_request_init(b);
    b->transactional_id = str(t, "tx");
    b->group_id = str(t, group);
    b->producer_id = pid;
    b->producer_epoch = PEPOCH;
    b->generation_id = member ? gen : -1;
    b->member_id = str(t, member ? member : "");
    b->group_instance_id = str(t, instance);
    int nt = topic2 && strcmp(topic2, topic) ? 2 : 1;
    b->topics.v = sp_txn_offset_commit_request_topic_alloc(&t->arena, nt);
    b->topics.n = nt;
    for (int i = 0; i < nt; i++) {
        int np = !topic2 || nt == 2 ? 1 : 2;
        sp_txn_offset_commit_request_topic_t *rt = &b->topics.v[i];
        rt->name = str(t, i ? topic2 : topic);
        rt->partitions.v = sp_txn_offset_commit_request_partition_alloc(&t->arena, np);
        rt->partitions.n = np;
        for (int k = 0; k < np; k++) {
            sp_txn_offset_commit_request_partition_t *rp = &rt->partitions.v[k];
            rp->partition_index = i || k ? partition2 : partition;
            rp->committed_offset = offset;
            rp->committed_leader_epoch = 3;
            rp->committed_metadata = sp_str_lit("meta");
        }
    }
    return t;
}

static tcall_t *txn_commit(sp_groups_t *gs, const char *group, const char *member, int32_t gen,
                           const char *instance, int64_t pid, const char *topic, int32_t partition, int64_t offset)
{
    tcall_t *t = txn_commit_call(group, member, gen, instance, pid, topic, partition, offset, NULL, 0, 3);
    run(gs, t);
    return t;
}

/* The error of the answered TxnOffsetCommit t's only partition, or -999. */
static int16_t txn_error(tcall_t *t)
{
    sp_txn_offset_commit_response_t *r = t->answered == 1 ? t->resp : NULL;
    if (!r || r->topics.n != 1 || r->topics.v[0].partitions.n != 1)
        return -999;
    return r->topics.v[0].partitions.v[0].error_code;
}

/* OffsetFetch of topic/partition at version (7 or 8) with require_stable:
 * its error, and *offset. */
static int16_t fetch_stable(sp_groups_t *gs, const char *group, const char *topic, int32_t partition,
                            int16_t version, int64_t *offset)
{
    tcall_t *t = new_call(SP_API_OFFSET_FETCH, version, sizeof(sp_offset_fetch_request_t));
    sp_offset_fetch_request_t *b = (sp_offset_fetch_request_t *)t->call.body;
    sp_offset_fetch_request_init(b);
    b->require_stable = true;
    *offset = -999;
    if (version < 8) {
        b->group_id = str(t, group);
        b->topics.v = sp_offset_fetch_request_topic_alloc(&t->arena, 1);
        b->topics.n = 1;
        b->topics.v[0].name = str(t, topic);
        b->topics.v[0].partition_indexes.v = sp_arena_alloc(&t->arena, sizeof(int32_t));
        b->topics.v[0].partition_indexes.v[0] = partition;
        b->topics.v[0].partition_indexes.n = 1;
        run(gs, t);
        sp_offset_fetch_response_t *r = t->answered == 1 ? t->resp : NULL;
        if (!r || r->topics.n != 1 || r->topics.v[0].partitions.n != 1 || r->error_code)
            return -999;
        *offset = r->topics.v[0].partitions.v[0].committed_offset;
        return r->topics.v[0].partitions.v[0].error_code;
    }
    b->groups.v = sp_offset_fetch_request_group_alloc(&t->arena, 1);
    b->groups.n = 1;
    b->groups.v[0].group_id = str(t, group);
    b->groups.v[0].topics.v = sp_offset_fetch_request_topics_alloc(&t->arena, 1);
    b->groups.v[0].topics.n = 1;
    b->groups.v[0].topics.v[0].name = str(t, topic);
    b->groups.v[0].topics.v[0].partition_indexes.v = sp_arena_alloc(&t->arena, sizeof(int32_t));
    b->groups.v[0].topics.v[0].partition_indexes.v[0] = partition;
    b->groups.v[0].topics.v[0].partition_indexes.n = 1;
    run(gs, t);
    sp_offset_fetch_response_t *r = t->answered == 1 ? t->resp : NULL;
    if (!r || r->groups.n != 1 || r->groups.v[0].error_code || r->groups.v[0].topics.n != 1 ||
        r->groups.v[0].topics.v[0].partitions.n != 1)
        return -999;
    const sp_offset_fetch_response_partitions_t *p = &r->groups.v[0].topics.v[0].partitions.v[0];
    *offset = p->committed_offset;
    CHECK(p->error_code != SP_ERR_UNSTABLE_OFFSET_COMMIT || (p->committed_offset == -1 &&
                                                             p->committed_leader_epoch == -1 &&
                                                             str_is(p->metadata, "")));
    return p->error_code;
}

/* The producer's marker, durable in the log (as txn/markers.c writes
 * it), then given to the groups (sp_coordinator_txn_complete). */
static void marker(sp_groups_t *gs, int64_t pid, bool commit)
{
    sp_batch_builder_t b;
    sp_batch_builder_init(&b, 0, T);
    sp_batch_builder_set_producer(&b, pid, PEPOCH, -1);
    sp_batch_builder_set_flags(&b, SP_BATCH_ATTR_TRANSACTIONAL | SP_BATCH_ATTR_CONTROL);
    uint8_t key[4] = { 0, 0, 0, commit ? 1 : 0 }, value[6] = { 0, 0, 0, 0, 0, 7 };
    CHECK(sp_batch_builder_add(&b, key, 4, value, 6, T) == 0);
    size_t len = 0;
    uint8_t *batch = sp_batch_builder_finish(&b, &len);
    sp_batch_builder_free(&b);
    CHECK(batch != NULL);
    log_v[nlog++] = (logged_t){ batch, len, log_end++ };
    sp_groups_txn_end(gs, pid, commit, NULL, NULL, T);
    CHECK(sp_groups_check(gs) == 0);
}

static int64_t stable_offset(sp_groups_t *gs, const char *group, const char *topic, int32_t p, int16_t *err)
{
    int64_t off;
    *err = fetch_stable(gs, group, topic, p, 8, &off);
    return off;
}

static void test_txn_commit(void)
{
    sp_groups_t *gs = new_groups();
    int16_t err;
    int64_t off;
    /* a simple group (no members): pending once durable, invisible */
    tcall_t *c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 0, 10);
    CHECK(c->answered == 0 && nwrites == 1);
    CHECK(fetch_stable(gs, "tg", "t", 0, 7, &off) == SP_ERR_UNSTABLE_OFFSET_COMMIT && off == -1);
    settle_one(gs, 0);
    CHECK(txn_error(c) == 0);
    /* ONE transactional batch of the producer, base sequence 0 */
    sp_batch_hdr_t h;
    CHECK(sp_batch_hdr_parse(log_v[nlog - 1].batch, log_v[nlog - 1].len, &h) == 0);
    CHECK(h.producer_id == PID && h.producer_epoch == PEPOCH && h.base_sequence == 0);
    CHECK(sp_batch_is_transactional(&h) && !sp_batch_is_control(&h) && h.record_count == 1);
    CHECK(fetch(gs, "tg", "t", 0) == -1);
    CHECK(fetch_stable(gs, "tg", "t", 0, 7, &off) == SP_ERR_UNSTABLE_OFFSET_COMMIT && off == -1);
    CHECK(stable_offset(gs, "tg", "t", 0, &err) == -1 && err == SP_ERR_UNSTABLE_OFFSET_COMMIT);
    CHECK(stable_offset(gs, "tg", "t", 1, &err) == -1 && err == 0); /* other partitions are stable */
    /* another producer's marker changes nothing */
    marker(gs, PID + 1, true);
    CHECK(fetch(gs, "tg", "t", 0) == -1);
    /* COMMIT: visible */
    marker(gs, PID, true);
    CHECK(fetch(gs, "tg", "t", 0) == 10);
    CHECK(stable_offset(gs, "tg", "t", 0, &err) == 10 && err == 0);

    /* ABORT: dropped, the earlier offset stays */
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 0, 11);
    settle_one(gs, 0);
    CHECK(txn_error(c) == 0);
    CHECK(fetch(gs, "tg", "t", 0) == 10);
    marker(gs, PID, false);
    CHECK(fetch(gs, "tg", "t", 0) == 10);
    CHECK(stable_offset(gs, "tg", "t", 0, &err) == 10 && err == 0);

    /* a plain commit after the transactional one wins at COMMIT (it is
     * later in the log); one before it loses */
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 1, 20);
    settle_one(gs, 0);
    tcall_t *p = commit(gs, "tg", NULL, -1, "t", 1, 21);
    settle_one(gs, 0);
    CHECK(commit_error(p) == 0 && fetch(gs, "tg", "t", 1) == 21);
    CHECK(stable_offset(gs, "tg", "t", 1, &err) == -1 && err == SP_ERR_UNSTABLE_OFFSET_COMMIT);
    p = commit(gs, "tg", NULL, -1, "t", 2, 30);
    settle_one(gs, 0);
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 2, 31);
    settle_one(gs, 0);
    marker(gs, PID, true);
    CHECK(fetch(gs, "tg", "t", 1) == 21);
    CHECK(fetch(gs, "tg", "t", 2) == 31);

    /* a later commit of the same producer replaces its pending one */
    txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 3, 40);
    txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 3, 41);
    settle_all(gs);
    marker(gs, PID, true);
    CHECK(fetch(gs, "tg", "t", 3) == 41);

    /* a marker while the commit is being written (an abort on timeout):
     * it never becomes pending; nor does a lost write */
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 3, 50);
    marker(gs, PID, false);
    settle_one(gs, 0);
    CHECK(txn_error(c) == 0);
    CHECK(stable_offset(gs, "tg", "t", 3, &err) == 41 && err == 0);
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 3, 51);
    settle_one(gs, SP_ERR_NOT_COORDINATOR);
    CHECK(txn_error(c) == SP_ERR_NOT_COORDINATOR);
    CHECK(stable_offset(gs, "tg", "t", 3, &err) == 41 && err == 0);
    marker(gs, PID, true);
    CHECK(fetch(gs, "tg", "t", 3) == 41);
    done_groups(gs);
}

static int16_t verify_answer;
static int verify_calls;
static sp_group_call_t *verify_parked;

static int16_t fake_verify(void *ctx, const sp_txn_verify_t *v, sp_group_call_t *call)
{
    (void)ctx;
    verify_calls++;
    CHECK(v->producer_id >= PID && v->producer_epoch == PEPOCH && str_is(v->transactional_id, "tx") &&
          v->group && v->version == call->version);
    if (verify_answer == SP_GROUP_VERIFY_LATER)
        verify_parked = call;
    return verify_answer;
}

static void test_txn_checks(void)
{
    sp_group_settings_t s = settings();
    sp_group_env_t env = { .ctx = NULL, .persist = fake_persist, .partitions = fake_partitions,
                           .verify_txn = fake_verify };
    sp_groups_t *gs = sp_groups_new(&s, &env);
    sp_groups_start(gs, T);
    int64_t off;

    /* unknown topics and partitions first, then the others (Kafka's
     * response builder): t [0, 9] and nope [0] answer t [9, 0], nope [0] */
    verify_calls = 0;
    tcall_t *c = txn_commit_call("tg", NULL, -1, NULL, PID, "t", 0, 5, "nope", 0, 3);
    sp_txn_offset_commit_request_t *b = (sp_txn_offset_commit_request_t *)c->call.body;
    sp_txn_offset_commit_request_partition_t two[2] = { b->topics.v[0].partitions.v[0], b->topics.v[0].partitions.v[0] };
    two[1].partition_index = 9;
    b->topics.v[0].partitions.v = two;
    b->topics.v[0].partitions.n = 2;
    run(gs, c);
    settle_all(gs);
    sp_txn_offset_commit_response_t *r = c->answered == 1 ? c->resp : NULL;
    CHECK(r && r->topics.n == 2);
    if (r && r->topics.n == 2) {
        CHECK(str_is(r->topics.v[0].name, "t") && r->topics.v[0].partitions.n == 2);
        CHECK(r->topics.v[0].partitions.v[0].partition_index == 9 &&
              r->topics.v[0].partitions.v[0].error_code == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        CHECK(r->topics.v[0].partitions.v[1].partition_index == 0 && r->topics.v[0].partitions.v[1].error_code == 0);
        CHECK(str_is(r->topics.v[1].name, "nope") && r->topics.v[1].partitions.n == 1 &&
              r->topics.v[1].partitions.v[0].error_code == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    }
    CHECK(verify_calls == 1);
    /* nothing known: answered without the group or the verification */
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "nope", 0, 5);
    CHECK(txn_error(c) == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION && verify_calls == 1);
    /* the group id before the verification */
    c = txn_commit(gs, "", NULL, -1, NULL, PID, "t", 0, 5);
    CHECK(txn_error(c) == SP_ERR_INVALID_GROUP_ID && verify_calls == 1);
    /* the verification's refusal before the group's */
    verify_answer = SP_ERR_INVALID_TXN_STATE;
    c = txn_commit(gs, "tg", "nobody", 5, NULL, PID, "t", 0, 5);
    CHECK(txn_error(c) == SP_ERR_INVALID_TXN_STATE && nwrites == 0);
    /* an answer that comes later */
    verify_answer = SP_GROUP_VERIFY_LATER;
    c = txn_commit(gs, "tg", NULL, -1, NULL, PID, "t", 1, 6);
    CHECK(c->answered == 0 && verify_parked == &c->call && nwrites == 0);
    sp_groups_txn_verified(gs, verify_parked, 0, T);
    CHECK(nwrites == 1 && c->answered == 0);
    settle_one(gs, 0);
    CHECK(txn_error(c) == 0);
    CHECK(fetch_stable(gs, "tg", "t", 1, 7, &off) == SP_ERR_UNSTABLE_OFFSET_COMMIT);
    verify_answer = 0;

    /* the group (ClassicGroup.validateOffsetCommit, transactional) */
    c = txn_commit(gs, "nogroup", "m", 1, NULL, PID, "t", 0, 5);
    CHECK(txn_error(c) == SP_ERR_ILLEGAL_GENERATION && sp_groups_state(gs, "nogroup") == NULL);
    member_t m[2] = { { .instance = "ia" }, { .instance = NULL } };
    int32_t gen = form(gs, "tg2", m, 2);
    /* CompletingRebalance is no error for a transactional commit */
    c = txn_commit(gs, "tg2", m[1].id, gen, NULL, PID, "t", 0, 5);
    CHECK(c->answered == 0 && nwrites == 1);
    settle_one(gs, 0);
    CHECK(txn_error(c) == 0);
    stabilise(gs, "tg2", m, 2, gen);
    CHECK(txn_error(txn_commit(gs, "tg2", m[1].id, gen + 1, NULL, PID, "t", 0, 5)) == SP_ERR_ILLEGAL_GENERATION);
    CHECK(txn_error(txn_commit(gs, "tg2", "nobody", gen, NULL, PID, "t", 0, 5)) == SP_ERR_UNKNOWN_MEMBER_ID);
    /* Kafka's validateMember: an unknown instance id is UNKNOWN_MEMBER_ID,
     * another member's is FENCED_INSTANCE_ID */
    CHECK(txn_error(txn_commit(gs, "tg2", m[1].id, gen, "ib", PID, "t", 0, 5)) == SP_ERR_UNKNOWN_MEMBER_ID);
    CHECK(txn_error(txn_commit(gs, "tg2", m[1].id, gen, "ia", PID, "t", 0, 5)) == SP_ERR_FENCED_INSTANCE_ID);
    c = txn_commit(gs, "tg2", m[0].id, gen, "ia", PID, "t", 0, 5);
    settle_all(gs);
    CHECK(txn_error(c) == 0);
    /* v0-v2 name no member: taken even though the group has members */
    c = txn_commit_call("tg2", NULL, -1, NULL, PID, "t", 2, 7, NULL, 0, 0);
    run(gs, c);
    settle_all(gs);
    CHECK(txn_error(c) == 0);
    CHECK(nwrites == 0);
    /* metadata over offset.metadata.max.bytes, per partition */
    c = txn_commit_call("tg2", NULL, -1, NULL, PID, "t", 0, 8, "t", 3, 3);
    b = (sp_txn_offset_commit_request_t *)c->call.body;
    char big[4097];
    memset(big, 'x', sizeof(big));
    b->topics.v[0].partitions.v[1].committed_metadata = (sp_str_t){ big, 4097 };
    run(gs, c);
    settle_all(gs);
    r = c->answered == 1 ? c->resp : NULL;
    CHECK(r && r->topics.n == 1 && r->topics.v[0].partitions.n == 2 && r->topics.v[0].partitions.v[0].error_code == 0 &&
          r->topics.v[0].partitions.v[1].error_code == SP_ERR_OFFSET_METADATA_TOO_LARGE);
    CHECK(fetch_stable(gs, "tg2", "t", 3, 7, &off) == 0 && off == -1);
    /* a refused append: the error on every partition, nothing pending */
    append_error = SP_ERR_NOT_COORDINATOR;
    c = txn_commit(gs, "tg2", NULL, -1, NULL, PID + 9, "t", 3, 9);
    CHECK(txn_error(c) == SP_ERR_NOT_COORDINATOR);
    append_error = 0;
    CHECK(fetch_stable(gs, "tg2", "t", 3, 7, &off) == 0 && off == -1);
    done_groups(gs);
}

static void test_txn_delete(void)
{
    sp_groups_t *gs = new_groups();
    int16_t err;
    /* DeleteGroups of a group with only pending transactional offsets:
     * deleted, with a tombstone for them; the COMMIT after brings
     * nothing back */
    txn_commit(gs, "dg", NULL, -1, NULL, PID, "t", 0, 5);
    settle_all(gs);
    tcall_t *d = delete_group(gs, "dg");
    CHECK(nwrites == 1 && fwrite_count(0) == 2); /* the offset's tombstone, the group's */
    settle_all(gs);
    CHECK(delete_error(d) == 0 && state_is(gs, "dg", NULL));
    marker(gs, PID, true);
    CHECK(fetch(gs, "dg", "t", 0) == -1);
    /* OffsetDelete of a partition with a pending transactional offset:
     * a tombstone, the pending offset gone */
    txn_commit(gs, "od", NULL, -1, NULL, PID, "t", 1, 6);
    settle_all(gs);
    tcall_t *o = offset_delete(gs, "od", "t", 1);
    CHECK(nwrites == 1 && fwrite_count(0) == 1);
    settle_all(gs);
    int16_t oerr, perr;
    offset_delete_errors(o, &oerr, &perr);
    CHECK(oerr == 0 && perr == 0);
    CHECK(stable_offset(gs, "od", "t", 1, &err) == -1 && err == 0);
    marker(gs, PID, true);
    CHECK(fetch(gs, "od", "t", 1) == -1);
    /* retention keeps an offset (and its group) while a transaction is
     * open on it */
    commit(gs, "rg", NULL, -1, "t", 2, 7);
    settle_all(gs);
    txn_commit(gs, "rg", NULL, -1, NULL, PID, "t", 2, 8);
    settle_all(gs);
    T += RETENTION + CHECK_EVERY;
    tick(gs);
    settle_all(gs);
    CHECK(state_is(gs, "rg", "Empty"));
    CHECK(stable_offset(gs, "rg", "t", 2, &err) == -1 && err == SP_ERR_UNSTABLE_OFFSET_COMMIT);
    marker(gs, PID, true);
    CHECK(fetch(gs, "rg", "t", 2) == 8);
    done_groups(gs);
}

static void test_txn_replay(void)
{
    sp_groups_t *gs = new_groups();
    int16_t err;
    txn_commit(gs, "rp", NULL, -1, NULL, PID, "t", 0, 10); /* committed */
    txn_commit(gs, "rp", NULL, -1, NULL, PID + 1, "t", 1, 20); /* aborted */
    txn_commit(gs, "rp", NULL, -1, NULL, PID + 2, "t", 2, 30); /* no marker yet */
    commit(gs, "rp", NULL, -1, "t", 3, 39);
    txn_commit(gs, "rp", NULL, -1, NULL, PID + 3, "t", 3, 40); /* committed, then a plain commit */
    settle_all(gs);
    marker(gs, PID, true);
    marker(gs, PID + 1, false);
    tcall_t *p = commit(gs, "rp", NULL, -1, "t", 3, 41);
    settle_all(gs);
    CHECK(commit_error(p) == 0);
    marker(gs, PID + 3, true);

    sp_groups_t *r = replayed();
    CHECK(sp_groups_check(r) == 0);
    CHECK(fetch(r, "rp", "t", 0) == 10);
    CHECK(fetch(r, "rp", "t", 1) == -1);
    CHECK(stable_offset(r, "rp", "t", 1, &err) == -1 && err == 0);
    CHECK(fetch(r, "rp", "t", 2) == -1);
    CHECK(stable_offset(r, "rp", "t", 2, &err) == -1 && err == SP_ERR_UNSTABLE_OFFSET_COMMIT);
    CHECK(fetch(r, "rp", "t", 3) == 41);
    /* the marker of the open one comes after the restart */
    sp_groups_txn_end(r, PID + 2, true, NULL, NULL, T);
    CHECK(fetch(r, "rp", "t", 2) == 30);
    CHECK(stable_offset(r, "rp", "t", 2, &err) == 30 && err == 0);
    sp_groups_shutdown(r);
    sp_groups_free(r);
    done_groups(gs);
}

/* Replayed records that do not decode are skipped, whatever they hold. */
static void test_replay_garbage(void)
{
    sp_group_settings_t s = settings();
    sp_groups_t *gs = sp_groups_new(&s, NULL);
    uint8_t junk[] = { 0, 1, 0, 1, 'x', 0, 2, 0x80, 0xff, 0xff, 0, 3 };
    for (int kv = 0; kv < 4; kv++) {
        junk[1] = (uint8_t)kv;
        for (size_t k = 0; k <= sizeof(junk); k++)
            for (size_t v = 0; v <= sizeof(junk); v += 3) {
                sp_groups_replay(gs, (sp_bytes_t){ junk, (int32_t)k }, (sp_bytes_t){ junk, (int32_t)v }, 0, T);
                sp_groups_replay(gs, (sp_bytes_t){ junk, (int32_t)k }, (sp_bytes_t){ NULL, -1 }, 0, T);
            }
    }
    CHECK(sp_groups_check(gs) == 0);
    sp_groups_free(gs);
}

int main(void)
{
    sp_log_set_level(SP_LOG_ERROR); /* lost writes are warned about */
    test_join_sync();
    test_new_member_rebalances();
    test_session_expiry();
    test_rebalance_timeout();
    test_parked_join_outlives_session();
    test_pending_id_expires();
    test_static_members();
    test_rejoin_completing();
    test_commits();
    test_leave_delete();
    test_offset_delete();
    test_retention();
    test_replay();
    test_replay_garbage();
    test_txn_commit();
    test_txn_checks();
    test_txn_delete();
    test_txn_replay();
    return check_summary("test_group");
}
