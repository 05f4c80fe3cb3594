/*
 * internal.h - the structures of groups and members, shared by group.c
 * (membership, the state machine, writes), offsets.c (offsets and their
 * APIs) and records.c (records and replay) only.  See group.h.
 */
#ifndef SP_GROUP_INTERNAL_H
#define SP_GROUP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "group/group.h"
#include "group/offsets.h"
#include "group/records.h"

/* Group states: the diagram is in group.c. */
enum { SP_GROUP_EMPTY, SP_GROUP_PREPARING, SP_GROUP_COMPLETING, SP_GROUP_STABLE, SP_GROUP_DEAD };
extern const char *const sp_group_state_names[];

typedef struct sp_group sp_group_t;
typedef struct sp_member sp_member_t;

struct sp_member {
    sp_member_t *next;
    sp_group_t *g;
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
    sp_group_call_t *join_call; /* parked JoinGroup */
    sp_group_call_t *sync_call; /* parked SyncGroup */
    int64_t session_deadline;   /* expires then; 0: not counting (replayed, not started) */
    bool joined;                /* joined the current rebalance */
};

typedef struct sp_pending_id {
    char *id;
    int64_t deadline;
} sp_pending_id_t;

struct sp_group {
    sp_group_t *next;
    sp_groups_t *gs;
    char *id;
    int state;
    int32_t generation;
    char *protocol_type;
    char *protocol;
    char *leader;
    sp_member_t *members;       /* in join order: the first is the preferred leader */
    int nmembers;
    sp_pending_id_t *pending;   /* member ids handed out, awaiting a rejoin */
    int npending;
    int64_t join_deadline;      /* PreparingRebalance: the rebalance timeout or
                                 * the initial delay ends then; 0: none */
    bool initial_delay;         /* join_deadline is the initial delay */
    sp_offsets_t offsets;
    uint64_t sync_seq;          /* the leader's assignment is being written
                                 * (Completing until it is durable), or 0 */
    int64_t state_ts;           /* when it entered its state */
};

struct sp_groups {
    sp_group_settings_t set;
    sp_group_env_t env;
    bool has_env;
    sp_group_t *groups;
    uint64_t seq;               /* last write sequence number */
    int64_t now;                /* of the entry point running */
    int64_t next;               /* no deadline before this (may be early) */
    int64_t retention_deadline; /* the next retention check; 0: not started */
};

/* ---- writes (group.c) ----------------------------------------------------- */

enum { SP_GW_NOTE, SP_GW_COMMIT, SP_GW_SYNC, SP_GW_STATIC_JOIN, SP_GW_OFFSET_DELETE, SP_GW_DELETE_GROUP,
       SP_GW_TXN_COMMIT };

typedef struct sp_delete_batch sp_delete_batch_t;

struct sp_group_write {
    int kind;
    uint64_t seq;
    char *group;
    sp_group_call_t *call;      /* answered when it settles */
    void *resp;
    int32_t generation;         /* SP_GW_SYNC */
    char *old_id, *new_id;      /* SP_GW_STATIC_JOIN: the member's ids */
    int32_t old_session, old_rebalance;
    bool was_leader;
    sp_delete_batch_t *batch;   /* SP_GW_DELETE_GROUP */
    int index;
};

/* A new write of kind (a new sequence number), or NULL. */
sp_group_write_t *sp_group_write_new(sp_groups_t *gs, int kind);
/* Frees w and what it owns (not its call). */
void sp_group_write_free(sp_group_write_t *w);
/* Hands records r (consumed) to the env as write w of group (see
 * sp_group_env_t.persist).  0: w is settled later by sp_groups_settle.
 * Or Kafka's error: w is still the caller's, who undoes, answers and
 * frees it. */
int16_t sp_group_persist(sp_groups_t *gs, const char *group, sp_group_records_t *r, sp_group_write_t *w);
/* A write nobody waits for (an empty generation, expired offsets): a
 * failure is only logged, as Kafka does. */
void sp_group_persist_note(sp_groups_t *gs, const char *group, sp_group_records_t *r);

/* ---- groups and members (group.c) ----------------------------------------- */

sp_group_t *sp_group_find(const sp_groups_t *gs, sp_str_t id);
/* The group, made Empty if there is none; NULL for an id Spool cannot
 * keep (sp_group_id_unkeepable) or out of memory. */
sp_group_t *sp_group_get(sp_groups_t *gs, sp_str_t id);
/* Unlinks and frees g (members included). */
void sp_group_forget(sp_groups_t *gs, sp_group_t *g);
void sp_group_set_state(sp_group_t *g, int s);
sp_member_t *sp_group_member(const sp_group_t *g, sp_str_t id);
/* KIP-345: whether a request naming member_id and instance comes from a
 * fenced (replaced) static member.  g may be NULL. */
bool sp_group_fenced(const sp_group_t *g, sp_str_t member_id, sp_str_t instance);
/* Kafka's checks of the member a SyncGroup, Heartbeat or member's
 * OffsetCommit names (m: the member of that id in g, if any): fenced
 * (FENCED_INSTANCE_ID), unknown (UNKNOWN_MEMBER_ID), or 0. */
int16_t sp_group_check_member(const sp_group_t *g, const sp_member_t *m, sp_str_t member_id, sp_str_t instance);
/* The member's session counts again from now. */
void sp_group_touch(sp_member_t *m);
/* Frees a member that is in no group's list. */
void sp_member_free(sp_member_t *m);
/* Drops every member of g (replay). */
void sp_group_drop_members(sp_group_t *g);
/* Answers call with resp (NULL: could not be built). */
void sp_group_answer(sp_group_call_t *call, void *resp);

/* ---- offsets (offsets.c) -------------------------------------------------- */

void sp_group_commit(sp_groups_t *gs, sp_group_call_t *call);
void sp_group_offset_fetch(sp_groups_t *gs, sp_group_call_t *call);
void sp_group_offset_delete(sp_groups_t *gs, sp_group_call_t *call);
/* A commit's write w ended (err 0: durable at last_offset): the commits
 * become g's offsets (g NULL: the group is gone, nothing to apply) and
 * the OffsetCommit is answered, with err in every partition if lost. */
void sp_group_commit_settled(sp_group_t *g, sp_group_write_t *w, int16_t err, int64_t last_offset);
void sp_group_txn_commit(sp_groups_t *gs, sp_group_call_t *call);
/* A TxnOffsetCommit's write w ended (err 0: durable at last_offset): its
 * commits become g's pending transactional offsets (g NULL: gone) and it
 * is answered, with err in every partition without an error if lost. */
void sp_group_txn_commit_settled(sp_group_t *g, sp_group_write_t *w, int16_t err, int64_t last_offset);
/* An OffsetDelete's tombstones ended: answered, with err if lost. */
void sp_group_offset_delete_settled(sp_group_write_t *w, int16_t err);
/* Tombstones for everything of g: offsets, commits still being written,
 * its metadata. */
void sp_group_tombstones(const sp_group_t *g, sp_group_records_t *rec);
/* The offsets retention check (expired offsets of Empty groups; groups
 * left with nothing are forgotten). */
void sp_groups_expire(sp_groups_t *gs);

/* ---- ids and strings -------------------------------------------------------- */

/* A group id Spool cannot keep: null, or with a NUL byte (ids are C
 * strings here).  Kafka would take the latter; Spool answers
 * INVALID_GROUP_ID (docs/DIFFERENCES.md). */
static inline bool sp_group_id_unkeepable(sp_str_t id)
{
    return id.len < 0 || (id.len > 0 && memchr(id.ptr, 0, (size_t)id.len) != NULL);
}

/* Whether group id is valid for an API, as Kafka's isValidGroupId: ""
 * is a group of its own for the offset APIs, DescribeGroups and
 * DeleteGroups (empty_ok), INVALID_GROUP_ID for the membership APIs
 * (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and OffsetDelete. */
static inline bool sp_group_id_ok(sp_str_t id, bool empty_ok)
{
    return id.len > 0 || (empty_ok && id.len == 0);
}

/* A malloc'd C string of n bytes of s (NULL if n < 0 or out of memory). */
static inline char *sp_group_dupn(const char *s, int32_t n)
{
    if (n < 0)
        return NULL;
    char *d = malloc((size_t)n + 1);
    if (d) {
        if (n)
            memcpy(d, s, (size_t)n);
        d[n] = 0;
    }
    return d;
}

static inline char *sp_group_dups(sp_str_t s)
{
    return sp_group_dupn(s.ptr, s.len);
}

/* Whether C string c (may be NULL) equals s. */
static inline bool sp_group_str_is(const char *c, sp_str_t s)
{
    return c && s.len >= 0 && (int32_t)strlen(c) == s.len && memcmp(c, s.ptr, (size_t)s.len) == 0;
}

static inline sp_str_t sp_group_str(const char *c)
{
    return c ? sp_str_c(c) : SP_STR_NULL;
}

/* A copy of C string c in arena a, as a string (null for c NULL). */
static inline sp_str_t sp_group_arena_str(sp_arena_t *a, const char *c)
{
    return c ? sp_str_c(sp_arena_strdup(a, c, strlen(c))) : SP_STR_NULL;
}

#endif
