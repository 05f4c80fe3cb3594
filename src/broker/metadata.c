/*
 * metadata.c - Metadata (key 3), v0-v12.
 *
 * Answers from one metadata image, acquired for the whole request, so that
 * brokers, topics and partitions in a response are mutually consistent.
 *   v0: an empty topic list means all topics; v1+: null means all.
 *   v10+: topic ids; v12: topics may be requested by id (name null);
 *   v10-11 refuse an id as Kafka does (refuse_ids_before_v12).
 *   v8+: authorized operations when asked (no authorizer: everything).
 * A topic named more than once is answered once, at its first place
 * (Kafka takes the requested names, or ids, as a set).
 * Named topics that do not exist are created first when
 * auto.create.topics.enable is on and the request allows it (v4+ flag).
 */
#include "broker/api.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "proto/gen/metadata_request.h"
#include "proto/gen/metadata_response.h"
#include "util/hashset.h"
#include "util/log.h"

/* Kafka AclOperation codes: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION
 * 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12 (a topic's:
 * SP_TOPIC_AUTHORIZED_OPS). */
#define CLUSTER_OPS ((1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12))

static void fill_topic(sp_req_t *req, sp_metadata_response_topic_t *out, const sp_topic_info_t *t)
{
    out->name = sp_str_c(t->name);
    out->topic_id = t->id;
    out->is_internal = t->internal;
    out->partitions.v = sp_metadata_response_partition_alloc(&req->arena, t->npartitions);
    out->partitions.n = out->partitions.v ? t->npartitions : 0;
    for (int32_t p = 0; p < out->partitions.n; p++) {
        const sp_partition_info_t *pi = &t->partitions[p];
        sp_metadata_response_partition_t *po = &out->partitions.v[p];
        po->partition_index = pi->index;
        po->leader_id = pi->leader;
        po->leader_epoch = pi->leader_epoch;
        po->replica_nodes.v = pi->replicas;
        po->replica_nodes.n = pi->nreplicas;
        po->isr_nodes.v = pi->isr;
        po->isr_nodes.n = pi->nisr;
        if (pi->leader < 0)
            po->error_code = SP_ERR_LEADER_NOT_AVAILABLE;
    }
}

/* A requested topic's key: its name, or (name null, v12) its id. */
static bool topic_eq(const void *ctx, uint32_t a, uint32_t b)
{
    const sp_metadata_request_topic_t *t = ctx;
    if ((t[a].name.len < 0) != (t[b].name.len < 0))
        return false;
    return t[a].name.len < 0 ? memcmp(t[a].topic_id.b, t[b].topic_id.b, 16) == 0
                             : sp_str_eq(t[a].name, t[b].name);
}

/*
 * The indices of the distinct topics of the request, in order of first
 * appearance, into *out (arena); their count, or -1 when out of memory.
 * Kafka answers each requested topic once (it takes the names, or the
 * ids, as a set); a hash set keeps this O(n) for any request.
 */
static int32_t distinct_topics(sp_req_t *req, const sp_metadata_request_t *body, int32_t **out)
{
    int32_t n = body->topics.n;
    size_t setmem = sp_hashset_mem_size((uint32_t)n);
    int32_t *idx = sp_arena_alloc(&req->arena, sizeof(int32_t) * (size_t)n);
    void *mem = setmem ? sp_arena_alloc(&req->arena, setmem) : NULL;
    if (!idx || !mem)
        return -1;
    sp_hashset_t hs;
    sp_hashset_init(&hs, mem, (uint32_t)n, topic_eq, body->topics.v);
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        const sp_metadata_request_topic_t *t = &body->topics.v[i];
        uint64_t h = t->name.len < 0 ? sp_hash_mix(sp_hash_bytes(t->topic_id.b, 16), 1)
                                     : sp_hash_mix(sp_hash_bytes(t->name.ptr, (size_t)t->name.len), 0);
        if (sp_hashset_add(&hs, (uint32_t)i, h) < 0)
            idx[k++] = i;
    }
    *out = idx;
    return k;
}

/*
 * v10 and v11 carry topic ids but may not use them: a topic named by id
 * (name null, or a non-zero id) makes Kafka refuse the request
 * (InvalidRequestException) with its error answer: no brokers, no cluster
 * id, controller -1, and each requested topic INVALID_REQUEST, its name
 * (or "", the field is not nullable there) and id echoed.  Returns
 * whether it answered.
 */
static bool refuse_ids_before_v12(sp_req_t *req, const sp_metadata_request_t *body, int16_t v)
{
    if (v < 10 || v > 11 || body->topics.n <= 0)
        return false;
    bool by_id = false;
    for (int32_t i = 0; i < body->topics.n; i++)
        by_id |= body->topics.v[i].name.len < 0 || !sp_uuid_is_zero(body->topics.v[i].topic_id);
    if (!by_id)
        return false;
    sp_metadata_response_t resp;
    sp_metadata_response_init(&resp);
    resp.cluster_id = SP_STR_NULL;
    resp.controller_id = -1;
    resp.brokers.n = 0;
    resp.topics.v = sp_metadata_response_topic_alloc(&req->arena, body->topics.n);
    if (!resp.topics.v) {
        sp_req_close(req, "out of memory for Metadata");
        return true;
    }
    resp.topics.n = body->topics.n;
    for (int32_t i = 0; i < body->topics.n; i++) {
        const sp_metadata_request_topic_t *rt = &body->topics.v[i];
        sp_metadata_response_topic_t *out = &resp.topics.v[i];
        out->error_code = SP_ERR_INVALID_REQUEST;
        out->name = rt->name.len >= 0 ? rt->name : sp_str_lit("");
        out->topic_id = rt->topic_id;
        out->partitions.n = 0;
    }
    sp_req_respond(req, &resp);
    return true;
}

void sp_handle_metadata(sp_req_t *req)
{
    const sp_metadata_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    bool allow_auto = v < 4 || body->allow_auto_topic_creation;
    int all = body->topics.n < 0 || (v == 0 && body->topics.n == 0);
    int32_t *want = NULL; /* distinct requested topics (indices) */
    int32_t nwant = 0;

    if (refuse_ids_before_v12(req, body, v))
        return;

    if (!all && body->topics.n > 0) {
        nwant = distinct_topics(req, body, &want);
        if (nwant < 0) {
            sp_req_close(req, "out of memory for Metadata");
            return;
        }
        if (nwant < body->topics.n)
            sp_debug("api", "Metadata (correlation %d): %d topics named, %d distinct",
                     req->r.hdr.correlation_id, body->topics.n, nwant);
    }
    if (allow_auto && nwant > 0) {
        sp_str_t *names = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)nwant);
        for (int32_t i = 0; names && i < nwant; i++)
            names[i] = body->topics.v[want[i]].name;
        if (names && sp_autocreate(req, names, nwant, sp_handle_metadata))
            return; /* answered once the topics exist */
    }
    sp_image_t *img = sp_image_acquire(req->broker->images);
    sp_metadata_response_t resp;
    sp_metadata_response_init(&resp);

    resp.cluster_id = sp_str_c(img->cluster_id);
    resp.controller_id = img->controller_id;
    resp.brokers.v = sp_metadata_response_broker_alloc(&req->arena, img->nbrokers);
    resp.brokers.n = resp.brokers.v ? img->nbrokers : 0;
    for (int32_t i = 0; i < resp.brokers.n; i++) {
        resp.brokers.v[i].node_id = img->brokers[i].node_id;
        resp.brokers.v[i].host = sp_str_c(img->brokers[i].host);
        resp.brokers.v[i].port = img->brokers[i].port;
        resp.brokers.v[i].rack = img->brokers[i].rack ? sp_str_c(img->brokers[i].rack) : SP_STR_NULL;
    }

    if (all) {
        resp.topics.v = sp_metadata_response_topic_alloc(&req->arena, img->ntopics);
        resp.topics.n = resp.topics.v ? img->ntopics : 0;
        for (int32_t i = 0; i < resp.topics.n; i++)
            fill_topic(req, &resp.topics.v[i], img->topics[i]);
    } else {
        resp.topics.v = sp_metadata_response_topic_alloc(&req->arena, nwant);
        resp.topics.n = resp.topics.v ? nwant : 0;
        for (int32_t i = 0; i < resp.topics.n; i++) {
            const sp_metadata_request_topic_t *rt = &body->topics.v[want[i]];
            sp_metadata_response_topic_t *out = &resp.topics.v[i];
            const sp_topic_info_t *t;
            if (rt->name.len < 0) {
                /* by id (v12) */
                t = sp_image_topic_by_id(img, rt->topic_id);
                if (t) {
                    fill_topic(req, out, t);
                } else {
                    out->name = SP_STR_NULL;
                    out->topic_id = rt->topic_id;
                    out->error_code = SP_ERR_UNKNOWN_TOPIC_ID;
                }
                continue;
            }
            t = sp_image_topic(img, rt->name.ptr, rt->name.len);
            if (t) {
                fill_topic(req, out, t);
            } else {
                out->name = rt->name;
                out->error_code = sp_topic_name_valid(rt->name.ptr, rt->name.len)
                                      ? SP_ERR_UNKNOWN_TOPIC_OR_PARTITION
                                      : SP_ERR_INVALID_TOPIC_EXCEPTION;
            }
        }
    }
    if (v >= 8 && body->include_topic_authorized_operations)
        for (int32_t i = 0; i < resp.topics.n; i++)
            if (resp.topics.v[i].error_code == 0)
                resp.topics.v[i].topic_authorized_operations = SP_TOPIC_AUTHORIZED_OPS;
    if (v >= 8 && v <= 10 && body->include_cluster_authorized_operations)
        resp.cluster_authorized_operations = CLUSTER_OPS;

    sp_req_respond(req, &resp); /* encodes now: the image may go after */
    sp_image_release(img);
}
