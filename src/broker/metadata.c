/*
 * metadata.c - Metadata (key 3), v0-v12.
 *
 * Answers from one metadata image, acquired for the whole request, so that
 * brokers, topics and partitions in a response are mutually consistent.
 *   v0: an empty topic list means all topics; v1+: null means all.
 *   v10+: topic ids; v12: topics may be requested by id (name null).
 *   v8+: authorized operations when asked (no authorizer: everything).
 * Named topics that do not exist are created first when
 * auto.create.topics.enable is on and the request allows it (v4+ flag).
 */
#include "broker/api.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "proto/gen/metadata_request.h"
#include "proto/gen/metadata_response.h"

/* Kafka AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7,
 * DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
 * IDEMPOTENT_WRITE 12. */
#define TOPIC_OPS ((1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11))
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

void sp_handle_metadata(sp_req_t *req)
{
    const sp_metadata_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    bool allow_auto = v < 4 || body->allow_auto_topic_creation;

    if (allow_auto && body->topics.n > 0 && !(v == 0 && body->topics.n == 0)) {
        sp_str_t *names = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)body->topics.n);
        for (int32_t i = 0; names && i < body->topics.n; i++)
            names[i] = body->topics.v[i].name;
        if (names && sp_autocreate(req, names, body->topics.n, sp_handle_metadata))
            return; /* answered once the topics exist */
    }
    sp_image_t *img = sp_image_acquire();
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

    int all = body->topics.n < 0 || (v == 0 && body->topics.n == 0);
    if (all) {
        resp.topics.v = sp_metadata_response_topic_alloc(&req->arena, img->ntopics);
        resp.topics.n = resp.topics.v ? img->ntopics : 0;
        for (int32_t i = 0; i < resp.topics.n; i++)
            fill_topic(req, &resp.topics.v[i], &img->topics[i]);
    } else {
        resp.topics.v = sp_metadata_response_topic_alloc(&req->arena, body->topics.n);
        resp.topics.n = resp.topics.v ? body->topics.n : 0;
        for (int32_t i = 0; i < resp.topics.n; i++) {
            const sp_metadata_request_topic_t *rt = &body->topics.v[i];
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
                resp.topics.v[i].topic_authorized_operations = TOPIC_OPS;
    if (v >= 8 && v <= 10 && body->include_cluster_authorized_operations)
        resp.cluster_authorized_operations = CLUSTER_OPS;

    sp_req_respond(req, &resp); /* encodes now: the image may go after */
    sp_image_release(img);
}
