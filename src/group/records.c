/*
 * records.c - the records of __consumer_offsets (see records.h).
 */
#include "group/records.h"

#include <stdlib.h>
#include <string.h>

#include "group/internal.h"
#include "proto/gen/group_metadata_key.h"
#include "proto/gen/group_metadata_value.h"
#include "proto/gen/messages.h"
#include "proto/gen/offset_commit_key.h"
#include "proto/gen/offset_commit_value.h"
#include "proto/request.h"

/* The record schemas, looked up once (a scan of every schema per record
 * before).  Written once, the same values by whoever looks first. */
static struct {
    const sp_msg_desc_t *offset_key, *offset_value, *group_key, *group_value;
} D;

int sp_group_records_schemas(void)
{
    D.offset_key = sp_msg_desc_named("OffsetCommitKey");
    D.offset_value = sp_msg_desc_named("OffsetCommitValue");
    D.group_key = sp_msg_desc_named("GroupMetadataKey");
    D.group_value = sp_msg_desc_named("GroupMetadataValue");
    return D.offset_key && D.offset_value && D.group_key && D.group_value ? 0 : -1;
}

/* ---- building ----------------------------------------------------------- */

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

void sp_group_records_init(sp_group_records_t *r, int64_t now)
{
    memset(r, 0, sizeof(*r));
    r->now = now;
    sp_batch_builder_init(&r->b, 0, now);
}

/* Adds key kb and value vb (NULL: tombstone), both consumed; ok false
 * when one could not be built. */
static int add(sp_group_records_t *r, uint8_t *kb, int32_t klen, uint8_t *vb, int32_t vlen, bool ok)
{
    int rc = ok ? sp_batch_builder_add(&r->b, kb, klen, vb, vlen, r->now) : -1;
    free(kb);
    free(vb);
    r->count++;
    return rc;
}

int sp_group_records_offset(sp_group_records_t *r, const char *group, const char *topic,
                            int32_t partition, const sp_offset_t *o)
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
    return add(r, kb, klen, vb, vlen, kb && (!o || vb));
}

int sp_group_records_group(sp_group_records_t *r, const sp_group_t *g, bool tombstone)
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
        v.protocol = sp_group_str(g->protocol);
        v.leader = sp_group_str(g->leader);
        v.current_state_timestamp = g->state_ts;
        v.members.v = sp_group_metadata_value_member_metadata_alloc(&a, g->nmembers);
        v.members.n = v.members.v ? g->nmembers : 0;
        int i = 0;
        for (const sp_member_t *m = g->members; m && i < v.members.n; m = m->next, i++) {
            sp_group_metadata_value_member_metadata_t *mm = &v.members.v[i];
            mm->member_id = sp_str_c(m->id);
            mm->group_instance_id = sp_group_str(m->instance_id);
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
    return add(r, kb, klen, vb, vlen, kb && (tombstone || vb));
}

void sp_group_records_txn(sp_group_records_t *r, int64_t producer_id, int16_t producer_epoch)
{
    /* base sequence 0, as Kafka's CoordinatorRuntime builds the batch */
    sp_batch_builder_set_producer(&r->b, producer_id, producer_epoch, 0);
    sp_batch_builder_set_flags(&r->b, SP_BATCH_ATTR_TRANSACTIONAL);
}

uint8_t *sp_group_records_finish(sp_group_records_t *r, size_t *len)
{
    *len = 0;
    uint8_t *batch = r->count ? sp_batch_builder_finish(&r->b, len) : NULL;
    sp_batch_builder_free(&r->b);
    return batch;
}

void sp_group_records_free(sp_group_records_t *r)
{
    sp_batch_builder_free(&r->b);
}

/* ---- replay ------------------------------------------------------------- */

/* Decodes value, "int16 version | struct" of schema d (any version it
 * knows), into x (initialised first; strings and arrays in a).  0 or
 * -1. */
static int decode_versioned(sp_bytes_t value, const sp_msg_desc_t *d, void *x, sp_arena_t *a)
{
    sp_reader_t r = sp_reader(value.ptr, (size_t)value.len);
    int16_t v = -1;
    sp_read_i16(&r, &v);
    d->init(x);
    if (!sp_reader_ok(&r) || v < d->min_version || v > d->max_version)
        return -1;
    return d->decode(&r, a, x, v);
}

/* An OffsetCommit record (key version kv, its reader after the version). */
static void replay_offset(sp_groups_t *gs, sp_reader_t *r, int16_t kv, sp_bytes_t value,
                          int64_t log_offset, int64_t producer_id, sp_arena_t *a)
{
    sp_offset_commit_key_t k;
    sp_offset_commit_key_init(&k);
    if (sp_offset_commit_key_decode(r, a, &k, kv) != 0)
        return;
    if (k.topic.len < 0 || memchr(k.topic.ptr, 0, (size_t)k.topic.len))
        return; /* not a topic name Spool writes (topics are C strings here) */
    sp_group_t *g = sp_group_get(gs, k.group);
    if (!g)
        return;
    if (value.len < 0) {
        sp_offsets_drop(&g->offsets, k.topic.ptr, k.topic.len, k.partition);
        return;
    }
    sp_offset_commit_value_t v;
    if (decode_versioned(value, D.offset_value, &v, a) != 0)
        return;
    if (producer_id >= 0) {
        sp_offsets_put_txn(&g->offsets, producer_id, k.topic.ptr, k.topic.len, k.partition, v.offset,
                           v.leader_epoch, v.metadata.ptr, v.metadata.len, v.commit_timestamp, log_offset);
        return;
    }
    sp_offsets_put(&g->offsets, k.topic.ptr, k.topic.len, k.partition, v.offset, v.leader_epoch,
                   v.metadata.ptr, v.metadata.len, v.commit_timestamp, log_offset);
}

/* A member of a GroupMetadata record, or NULL (out of memory). */
static sp_member_t *replay_member(sp_group_t *g, const sp_group_metadata_value_member_metadata_t *mm)
{
    sp_member_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->g = g;
    m->id = sp_group_dups(mm->member_id);
    m->instance_id = mm->group_instance_id.len >= 0 ? sp_group_dups(mm->group_instance_id) : NULL;
    m->client_id = sp_group_dups(mm->client_id);
    m->client_host = sp_group_dups(mm->client_host);
    m->session_timeout = mm->session_timeout;
    m->rebalance_timeout = mm->rebalance_timeout > 0 ? mm->rebalance_timeout : mm->session_timeout;
    int32_t sl = mm->subscription.len > 0 ? mm->subscription.len : 0;
    int32_t al = mm->assignment.len > 0 ? mm->assignment.len : 0;
    m->pnames = calloc(1, sizeof(char *));
    m->pmeta = calloc(1, sizeof(uint8_t *));
    m->pmeta_len = calloc(1, sizeof(int32_t));
    m->assignment = malloc((size_t)(al ? al : 1));
    if (!m->id || !m->client_id || !m->client_host || !m->pnames || !m->pmeta || !m->pmeta_len ||
        !m->assignment) {
        sp_member_free(m);
        return NULL;
    }
    m->nprotocols = g->protocol ? 1 : 0;
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
    return m;
}

/* A GroupMetadata record (key version 2, its reader after the version). */
static void replay_group(sp_groups_t *gs, sp_reader_t *r, sp_bytes_t value, int64_t now, sp_arena_t *a)
{
    sp_group_metadata_key_t k;
    sp_group_metadata_key_init(&k);
    if (sp_group_metadata_key_decode(r, a, &k, 2) != 0)
        return;
    sp_group_t *g = sp_group_find(gs, k.group);
    if (value.len < 0) {
        if (g && g->offsets.n == 0 && g->offsets.ntxn == 0) {
            g->state = SP_GROUP_DEAD;
            sp_group_forget(gs, g);
        }
        return;
    }
    g = sp_group_get(gs, k.group);
    if (!g)
        return;
    sp_group_metadata_value_t v;
    if (decode_versioned(value, D.group_value, &v, a) != 0)
        return;
    /* the group as it was: members are back with their assignment and
     * must heartbeat within their session timeout (counted from
     * sp_groups_start, once the replay is over), as in Kafka */
    sp_group_drop_members(g);
    g->generation = v.generation;
    free(g->protocol_type);
    g->protocol_type = sp_group_dups(v.protocol_type);
    free(g->protocol);
    g->protocol = v.protocol.len >= 0 ? sp_group_dups(v.protocol) : NULL;
    free(g->leader);
    g->leader = v.leader.len >= 0 ? sp_group_dups(v.leader) : NULL;
    sp_member_t **tail = &g->members;
    for (int32_t i = 0; i < v.members.n; i++) {
        sp_member_t *m = replay_member(g, &v.members.v[i]);
        if (!m)
            break;
        *tail = m;
        tail = &m->next;
        g->nmembers++;
    }
    g->state = g->nmembers ? SP_GROUP_STABLE : SP_GROUP_EMPTY;
    g->state_ts = v.current_state_timestamp > 0 ? v.current_state_timestamp : now;
}

void sp_groups_replay(sp_groups_t *gs, sp_bytes_t key, sp_bytes_t value, int64_t log_offset, int64_t now)
{
    sp_groups_replay_txn(gs, -1, key, value, log_offset, now);
}

int sp_group_marker_type(sp_bytes_t key, bool *commit)
{
    sp_reader_t r = sp_reader(key.ptr, key.len > 0 ? (size_t)key.len : 0);
    int16_t version = -1, type = -1;
    sp_read_i16(&r, &version);
    sp_read_i16(&r, &type);
    if (!sp_reader_ok(&r) || version < 0 || (type != 0 && type != 1))
        return -1;
    *commit = type == 1;
    return 0;
}

void sp_groups_replay_txn(sp_groups_t *gs, int64_t producer_id, sp_bytes_t key, sp_bytes_t value,
                          int64_t log_offset, int64_t now)
{
    if (key.len < 2)
        return;
    gs->now = now;
    sp_reader_t r = sp_reader(key.ptr, (size_t)key.len);
    int16_t kv;
    sp_read_i16(&r, &kv);
    sp_arena_t a;
    sp_arena_init(&a, 16 << 20);
    if (kv == 0 || kv == 1)
        replay_offset(gs, &r, kv, value, log_offset, producer_id, &a);
    else if (kv == 2)
        replay_group(gs, &r, value, now, &a);
    sp_arena_free(&a);
}
