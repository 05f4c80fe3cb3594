/*
 * list_offsets.c - ListOffsets (key 2), v0-v11.
 *
 * v0 (removed in Kafka 4.0, still asked by Burrow and old Sarama) answers
 * a list of offsets per partition, as Kafka 3 did (partition.h
 * sp_partition_legacy_offsets): -1 gives the high watermark first, -2 the
 * log start, a timestamp the segments last written at or before it.
 *
 * timestamp -1 latest (the high watermark; the last stable offset for
 * read_committed, isolation_level 1, v2+), -2 earliest (log
 * start), -3 the first record with the largest timestamp (v7+), -4 earliest
 * local (v8+, = log start without tiered storage), -5 latest tiered (v9+:
 * none, so -1); a timestamp >= 0 finds the first record at or after it
 * through the time index (offset -1 if there is none).  What a lookup by
 * time (-3 too) finds at or past the last fetchable offset (the high
 * watermark, or the LSO for read_committed) is not answered: offset -1,
 * as Kafka's ReplicaManager.fetchOffset with Partition's
 * lastFetchableOffset.
 *
 * As Kafka answers: a special timestamp the request's version does not
 * have (-3 below v7, -4 below v8, -5 below v9, any other negative value)
 * is UNSUPPORTED_VERSION, and an answer without an offset (an error, no
 * record at or after the timestamp, an empty log's -3, -5) has leader
 * epoch -1.  A partition the request names more than once is answered
 * once, INVALID_REQUEST (Kafka keys the request by topic-partition and
 * refuses the duplicates), at the place of its first appearance.
 */
#include "broker/api.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/partition.h"
#include "proto/gen/list_offsets_request.h"
#include "proto/gen/list_offsets_response.h"
#include "util/clock.h"
#include "util/hashset.h"

/* The lowest ListOffsets version that has special timestamp ts (< 0), or
 * INT16_MAX for one no version Spool serves has (-6, earliest pending
 * upload, is v11). */
static int16_t special_since(int64_t ts)
{
    switch (ts) {
    case -1:
    case -2:
        return 0;
    case -3:
        return 7;
    case -4:
        return 8;
    case -5:
        return 9;
    case -6:
        return 11;
    default:
        return INT16_MAX;
    }
}

enum { ONCE = 0, DUP_FIRST = 1, DUP_LATER = 2 };

typedef struct occ {
    sp_str_t name;
    int32_t partition;
} occ_t;

static bool occ_eq(const void *ctx, uint32_t a, uint32_t b)
{
    const occ_t *o = ctx;
    return o[a].partition == o[b].partition && sp_str_eq(o[a].name, o[b].name);
}

/*
 * For each partition the request names, in request order: ONCE, the first
 * appearance of one named again (DUP_FIRST), or a later one (DUP_LATER).
 * O(n) with a keyed hash set whatever the client repeats.  From the
 * request's arena; *state is NULL (and 0 returned) when nothing is named.
 * Returns 0, or -1 when the arena is exhausted.
 */
static int mark_duplicates(sp_req_t *req, const sp_list_offsets_request_t *body, uint8_t **state)
{
    size_t total = 0;
    for (int32_t t = 0; t < body->topics.n; t++)
        total += body->topics.v[t].partitions.n > 0 ? (size_t)body->topics.v[t].partitions.n : 0;
    *state = NULL;
    if (total == 0)
        return 0;
    size_t setmem = total <= UINT32_MAX / 4 ? sp_hashset_mem_size((uint32_t)total) : 0;
    occ_t *occ = sp_arena_alloc(&req->arena, sizeof(occ_t) * total);
    uint8_t *st = sp_arena_zalloc(&req->arena, total);
    void *mem = setmem ? sp_arena_alloc(&req->arena, setmem) : NULL;
    if (!occ || !st || !mem)
        return -1;
    sp_hashset_t hs;
    sp_hashset_init(&hs, mem, (uint32_t)total, occ_eq, occ);
    uint32_t k = 0;
    for (int32_t t = 0; t < body->topics.n; t++) {
        const sp_list_offsets_request_list_offsets_topic_t *rt = &body->topics.v[t];
        uint64_t th = sp_hash_bytes(rt->name.ptr, rt->name.len > 0 ? (size_t)rt->name.len : 0);
        for (int32_t p = 0; p < rt->partitions.n; p++, k++) {
            occ[k].name = rt->name;
            occ[k].partition = rt->partitions.v[p].partition_index;
            int64_t seen = sp_hashset_add(&hs, k, sp_hash_mix(th, occ[k].partition));
            if (seen >= 0) {
                st[seen] = DUP_FIRST;
                st[k] = DUP_LATER;
            }
        }
    }
    *state = st;
    return 0;
}

/* v0: the old style list of offsets (partition.h sp_partition_legacy_offsets). */
static void legacy_offsets(sp_req_t *req, sp_partition_t *part,
                           const sp_list_offsets_request_list_offsets_partition_t *rp,
                           sp_list_offsets_response_list_offsets_partition_response_t *po)
{
    int64_t *offs = NULL;
    int16_t err = 0;
    int n = sp_partition_legacy_offsets(part, rp->timestamp, rp->max_num_offsets, sp_wall_ms(), &offs, &err);
    po->old_style_offsets.n = 0;
    if (n < 0) {
        po->error_code = err;
        return;
    }
    po->old_style_offsets.v = n ? sp_arena_alloc(&req->arena, sizeof(int64_t) * (size_t)n) : NULL;
    if (n && po->old_style_offsets.v) {
        memcpy(po->old_style_offsets.v, offs, sizeof(int64_t) * (size_t)n);
        po->old_style_offsets.n = n;
    } else if (n) {
        po->error_code = SP_ERR_UNKNOWN_SERVER_ERROR;
    }
    free(offs);
}

void sp_handle_list_offsets(sp_req_t *req)
{
    const sp_list_offsets_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    sp_list_offsets_response_t resp;
    int32_t nt = body->topics.n > 0 ? body->topics.n : 0;

    uint8_t *state;
    if (mark_duplicates(req, body, &state) != 0) {
        sp_req_close(req, "out of memory for ListOffsets");
        return;
    }
    sp_list_offsets_response_init(&resp);
    resp.topics.v = sp_list_offsets_response_list_offsets_topic_response_alloc(&req->arena, nt);
    resp.topics.n = resp.topics.v ? nt : 0;
    size_t k = 0; /* occurrence index, as mark_duplicates counts them */
    for (int32_t t = 0; t < resp.topics.n; t++) {
        const sp_list_offsets_request_list_offsets_topic_t *rt = &body->topics.v[t];
        sp_list_offsets_response_list_offsets_topic_response_t *to = &resp.topics.v[t];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        to->name = rt->name;
        to->partitions.v = sp_list_offsets_response_list_offsets_partition_response_alloc(&req->arena, np);
        to->partitions.n = 0;
        if (np > 0 && !to->partitions.v) {
            sp_req_close(req, "out of memory for ListOffsets");
            return;
        }
        for (int32_t p = 0; p < np; p++) {
            const sp_list_offsets_request_list_offsets_partition_t *rp = &rt->partitions.v[p];
            uint8_t dup = state ? state[k++] : ONCE;
            if (dup == DUP_LATER)
                continue;
            sp_list_offsets_response_list_offsets_partition_response_t *po = &to->partitions.v[to->partitions.n++];
            po->partition_index = rp->partition_index;
            po->timestamp = -1;
            po->offset = -1;
            po->leader_epoch = -1;
            if (dup == DUP_FIRST) {
                po->error_code = SP_ERR_INVALID_REQUEST;
                continue;
            }
            if (rp->timestamp < 0 && special_since(rp->timestamp) > v) {
                po->error_code = SP_ERR_UNSUPPORTED_VERSION;
                continue;
            }
            if (rp->current_leader_epoch > 0) { /* ours is 0 on a single node */
                po->error_code = SP_ERR_UNKNOWN_LEADER_EPOCH;
                continue;
            }
            sp_partition_t *part = sp_partitions_get(req->broker->partitions, rt->name.ptr, rt->name.len,
                                                     rp->partition_index);
            if (!part) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (v == 0) {
                legacy_offsets(req, part, rp, po);
                sp_partition_unref(part);
                continue;
            }
            po->leader_epoch = 0;
            sp_log_offsets_t lo;
            sp_partition_offsets(part, &lo);
            int64_t start = lo.log_start;
            /* Kafka's Partition.fetchOffsetForTimestamp: lastFetchableOffset */
            int64_t hw = v >= 2 && body->isolation_level == 1 ? sp_partition_lso(part) : lo.hw;
            if (lo.failed) {
                po->error_code = SP_ERR_KAFKA_STORAGE_ERROR;
                sp_partition_unref(part);
                continue;
            }
            switch (rp->timestamp) {
            case -1:
                po->offset = hw;
                break;
            case -2:
            case -4:
                po->offset = start;
                break;
            case -3: {
                /* The segments know the batch holding the largest
                 * timestamp (its last offset, as Kafka's time index);
                 * Kafka answers the first record of that batch with that
                 * timestamp (RecordBatch.offsetOfMaxTimestamp), which is
                 * the first record of the log at or after it. */
                int64_t off, ts, first = -1, first_ts = -1;
                sp_partition_max_timestamp(part, &off, &ts);
                if (off >= 0) {
                    po->error_code = sp_partition_offset_for_time(part, ts, &first, &first_ts);
                    if (po->error_code == 0 && first >= 0 && first <= off)
                        off = first;
                }
                po->offset = po->error_code ? -1 : off;
                po->timestamp = po->error_code ? -1 : ts;
                break;
            }
            case -5: /* latest tiered: none without tiered storage */
            case -6: /* earliest pending upload: none either */
                break;
            default: {
                int64_t off, ts;
                po->error_code = sp_partition_offset_for_time(part, rp->timestamp, &off, &ts);
                po->offset = off;
                po->timestamp = ts;
            }
            }
            if (rp->timestamp != -1 && rp->timestamp != -2 && rp->timestamp != -4 && po->offset >= hw) {
                po->offset = -1; /* found, but not fetchable at this isolation */
                po->timestamp = -1;
            }
            if (po->offset < 0 || po->error_code)
                po->leader_epoch = -1;
            sp_partition_unref(part);
        }
    }
    sp_req_respond(req, &resp);
}
