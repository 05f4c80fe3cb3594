/*
 * group.h - consumer groups as a state machine (Kafka's classic group
 * protocol), without threads, timers or requests.
 *
 * Owns every group of one coordinator: members, generations, protocol
 * selection, rebalances, static members (KIP-345), member ids handed out
 * and awaiting a rejoin (KIP-394), committed offsets (group/offsets.h) and
 * the __consumer_offsets records that stand for them (group/records.h).
 * Kafka's answers, errors included, are built here.
 *
 * Its owner (group/coordinator.c, or a test) supplies:
 *   - time: every entry point takes `now`, in ms of the wall clock (as
 *     Kafka's Time.milliseconds).  Session, rebalance and retention
 *     timeouts are deadlines kept here: sp_groups_tick(now) runs what is
 *     due and says when it wants to run next; sp_groups_deadline says so
 *     after any other entry point (one timer armed there is enough).
 *   - requests as calls (sp_group_call_t): the decoded request, an arena
 *     to build the answer in, and done(), called exactly once with the
 *     answer.  A JoinGroup or SyncGroup may be parked (kept) until the
 *     rebalance or a write completes.
 *   - an environment (sp_group_env_t): how records are written to
 *     __consumer_offsets, and how many partitions a topic has.
 *
 * Memory follows __consumer_offsets, never leads it: a commit, the Stable
 * state after the leader's SyncGroup and a static member's new id take
 * effect only once the owner says their write is durable
 * (sp_groups_settle); a lost write changes nothing (or undoes the change)
 * and answers Kafka's error.
 *
 * Threads: one thread at a time (the coordinator's); nothing here locks.
 * The exception is sp_group_write_abandon, for writes that outlive their
 * groups (it touches only the write and its calls).
 *
 * Invariants (sp_groups_check):
 *  (1) one group per id, a known state;
 *  (2) every member belongs to its group, is whole, and is counted;
 *  (3) one committed offset per topic-partition of a group;
 *  (4) at most one pending transactional offset per producer id and
 *      topic-partition of a group.
 */
#ifndef SP_GROUP_GROUP_H
#define SP_GROUP_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

struct sp_config;

typedef struct sp_groups sp_groups_t;
/* A write to __consumer_offsets under way: opaque to its owner, who
 * settles it once (sp_groups_settle or sp_group_write_abandon). */
typedef struct sp_group_write sp_group_write_t;

/* What the broker's configuration says (read once). */
typedef struct sp_group_settings {
    int32_t min_session_timeout_ms;     /* group.min.session.timeout.ms */
    int32_t max_session_timeout_ms;     /* group.max.session.timeout.ms */
    int32_t max_size;                   /* group.max.size */
    int32_t initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
    int32_t offset_metadata_max_bytes;  /* offset.metadata.max.bytes */
    int64_t retention_ms;               /* offsets.retention.minutes, in ms */
    int64_t retention_check_ms;         /* offsets.retention.check.interval.ms */
} sp_group_settings_t;

/* Fills s from the broker's configuration. */
void sp_group_settings_from(const struct sp_config *cfg, sp_group_settings_t *s);

/* One request to the coordinator: JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
 * DeleteGroups, OffsetDelete or TxnOffsetCommit.  Filled by the
 * submitter; body, arena, client_id and client_host are borrowed until
 * done() is called. */
typedef struct sp_group_call sp_group_call_t;
struct sp_group_call {
    int16_t api;                 /* SP_API_JOIN_GROUP, ... (proto/gen/messages.h) */
    int16_t version;             /* of the request (and of its answer) */
    const void *body;            /* the decoded request: sp_join_group_request_t, ... */
    sp_arena_t *arena;           /* the answer is built here */
    sp_str_t client_id;          /* the request header's */
    const char *client_host;     /* as Kafka shows it: "/127.0.0.1" */
    /* The answer: resp is the API's response struct, in arena, or NULL
     * when it could not be built (out of memory).  Called once, on the
     * thread that runs the groups, or for a write settled after the
     * groups are gone on whichever thread calls sp_group_write_abandon. */
    void (*done)(sp_group_call_t *call, void *resp);
    void *token;                 /* the submitter's */
    void *state;                 /* the groups' own, while the call waits */
};

/* A TxnOffsetCommit to verify (KIP-890): what the transaction coordinator
 * is asked.  Borrowed for the call of verify_txn only. */
typedef struct sp_txn_verify {
    sp_str_t transactional_id;
    int64_t producer_id;
    int16_t producer_epoch;
    const char *group;          /* its partition of __consumer_offsets is the one */
    int16_t version;            /* of the TxnOffsetCommit (v5: transactions V2) */
} sp_txn_verify_t;

/* What the owner provides. */
typedef struct sp_group_env {
    void *ctx;
    /* Appends batch (len bytes: a record batch of group's records, which
     * may be patched in place; borrowed) to group's partition of
     * __consumer_offsets.  len 0: nothing to write, settle at once.
     * Returns 0: the write is under way, and the owner later calls
     * sp_groups_settle(w) (or, once the groups are freed,
     * sp_group_write_abandon(w)), never from within persist.  Or a Kafka
     * error: nothing was written and w is still the caller's. */
    int16_t (*persist)(void *ctx, const char *group, uint8_t *batch, size_t len, sp_group_write_t *w);
    /* The partition count of topic in the current metadata, or -1 when
     * there is no such topic. */
    int32_t (*partitions)(void *ctx, sp_str_t topic);
    /* KIP-890 verification of a TxnOffsetCommit, before the group checks
     * and the write (Kafka's CoordinatorRuntime.scheduleTransactional-
     * WriteOperation): whether the transaction has the group's partition
     * of __consumer_offsets (AddOffsetsToTxn).  Returns 0 (verified),
     * a Kafka error for every partition, or SP_GROUP_VERIFY_LATER: the
     * answer comes later through sp_groups_txn_verified(call) on the
     * groups' thread (before sp_groups_free: a call waiting here is
     * not answered by sp_groups_shutdown).  NULL: every transaction is
     * taken as verified. */
    int16_t (*verify_txn)(void *ctx, const sp_txn_verify_t *v, sp_group_call_t *call);
} sp_group_env_t;

#define SP_GROUP_VERIFY_LATER ((int16_t)-32768)

/*
 * New, with no group.  s is copied.  env (copied) may be NULL for a
 * replay-only instance (fuzz targets, tests): then nothing is written and
 * calls are not for it.  Loads the record schemas (group/records.h).
 * NULL when out of memory.
 */
sp_groups_t *sp_groups_new(const sp_group_settings_t *s, const sp_group_env_t *env);
/* Frees every group.  Parked calls must have been answered
 * (sp_groups_shutdown); writes under way are then the owner's to
 * abandon. */
void sp_groups_free(sp_groups_t *gs);

/* After the replay: every member's session counts from now (as Kafka
 * after a load) and the first retention check is scheduled.  Returns the
 * number of groups. */
int sp_groups_start(sp_groups_t *gs, int64_t now);

/* Runs call (any of the APIs above): answers it, or parks it. */
void sp_groups_call(sp_groups_t *gs, sp_group_call_t *call, int64_t now);

/* Runs what is due at now: session expiries, rebalance timeouts and
 * initial delays, the offsets retention check.  Returns the next
 * deadline (INT64_MAX: none). */
int64_t sp_groups_tick(sp_groups_t *gs, int64_t now);
/* The time sp_groups_tick wants to run next, or INT64_MAX.  May be
 * early (a deadline since moved later), never late. */
int64_t sp_groups_deadline(const sp_groups_t *gs);

/* Write w ended: err 0 (durable; its last record at last_offset of its
 * partition) or a Kafka error (lost).  Applies or undoes what it stands
 * for, answers its calls, frees w. */
void sp_groups_settle(sp_groups_t *gs, sp_group_write_t *w, int16_t err, int64_t last_offset, int64_t now);
/* Write w ended after its groups were freed: its calls are answered (with
 * err, if any), nothing else is touched; frees w.  Any thread. */
void sp_group_write_abandon(sp_group_write_t *w, int16_t err);

/* The verification of TxnOffsetCommit call (sp_group_env_t.verify_txn)
 * answered err (0: verified): the commit goes on, or is answered err. */
void sp_groups_txn_verified(sp_groups_t *gs, sp_group_call_t *call, int16_t err, int64_t now);

/*
 * A COMMIT (commit) or ABORT marker of producer_id is durable in a
 * partition of __consumer_offsets (at start: replayed from it): the
 * producer's pending transactional offsets of the groups that partition
 * holds (mine(ctx, group); NULL: every group) become their offsets or
 * are dropped (Kafka's replayEndTransactionMarker).  Returns how many
 * offsets were ended.
 */
int sp_groups_txn_end(sp_groups_t *gs, int64_t producer_id, bool commit,
                      bool (*mine)(void *ctx, const char *group), void *ctx, int64_t now);

/* Answers every parked JoinGroup and SyncGroup with
 * COORDINATOR_NOT_AVAILABLE (the coordinator stops). */
void sp_groups_shutdown(sp_groups_t *gs);

/* 0 if the invariants above hold, or a negative number naming the broken
 * rule (see the function). */
int sp_groups_check(const sp_groups_t *gs);
/* The state of group id ("Empty", "PreparingRebalance",
 * "CompletingRebalance", "Stable"), or NULL when there is none (logs,
 * tests). */
const char *sp_groups_state(const sp_groups_t *gs, const char *id);

#endif
