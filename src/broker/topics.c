/*
 * topics.c - CreateTopics (key 19, v2-v7) and DeleteTopics (key 20, v1-v6).
 *
 * Both become one metadata operation (cluster/controller.h): validated,
 * written to the metadata log and fsynced, applied, and answered per topic
 * with Kafka's error codes and messages.  A topic named twice in one
 * request is refused with INVALID_REQUEST and answered once, at its first
 * appearance, as Kafka does (its answers are keyed by name; found in O(n)
 * with the keyed hash set, util/hashset.h).  Deleted topics'
 * files are renamed at once and removed in the background, so the name can
 * be created again immediately.
 *
 * Internal topics (cluster/names.h) are the broker's own: a client may
 * neither create nor delete them (INVALID_REQUEST, "Creation of internal
 * topic X is prohibited." -- Kafka's answer for __cluster_metadata, which
 * Spool extends to __consumer_offsets and the others; Kafka itself lets a
 * client create and delete __consumer_offsets).  The group coordinator
 * creates __consumer_offsets itself, with its own settings.
 */
#include <stdio.h>

#include "broker/api.h"
#include "broker/ctl.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "cluster/topic_config.h"
#include "proto/gen/create_topics_request.h"
#include "proto/gen/create_topics_response.h"
#include "proto/gen/delete_topics_request.h"
#include "proto/gen/delete_topics_response.h"
#include "util/hashset.h"

static sp_str_t msg(const char *m)
{
    return m ? sp_str_c(m) : SP_STR_NULL;
}

/* "<what> of internal topic <name> is prohibited.", in req's arena. */
static const char *prohibited(sp_req_t *req, const char *what, sp_str_t name)
{
    size_t n = strlen(what) + (size_t)(name.len > 0 ? name.len : 0) + 40;
    char *m = sp_arena_alloc(&req->arena, n);
    if (!m)
        return "Operations on internal topics are prohibited.";
    snprintf(m, n, "%s of internal topic %.*s is prohibited.", what, (int)name.len, name.ptr);
    return m;
}

/* ---- topics named twice ------------------------------------------------ */

enum { ONCE = 0, DUP_FIRST = 1, DUP_LATER = 2 };

/* A topic as a request names it: by name, or (DeleteTopics v6) by id. */
typedef struct tkey {
    sp_str_t name; /* len < 0: by id */
    sp_uuid_t id;
} tkey_t;

static bool tkey_eq(const void *ctx, uint32_t a, uint32_t b)
{
    const tkey_t *k = ctx;
    if ((k[a].name.len < 0) != (k[b].name.len < 0))
        return false;
    return k[a].name.len >= 0 ? sp_str_eq(k[a].name, k[b].name) : memcmp(k[a].id.b, k[b].id.b, 16) == 0;
}

/*
 * For each of the n topics in keys, in request order: ONCE, the first
 * appearance of one named again (DUP_FIRST) or a later one (DUP_LATER),
 * in O(n).  From the request's arena; NULL when it is exhausted (n > 0).
 */
static uint8_t *mark_twice(sp_req_t *req, const tkey_t *keys, int n)
{
    uint8_t *st = sp_arena_zalloc(&req->arena, (size_t)(n ? n : 1));
    void *mem = n ? sp_arena_alloc(&req->arena, sp_hashset_mem_size((uint32_t)n)) : NULL;
    if (!st || (n && !mem))
        return NULL;
    sp_hashset_t hs;
    if (n)
        sp_hashset_init(&hs, mem, (uint32_t)n, tkey_eq, keys);
    for (int i = 0; i < n; i++) {
        uint64_t h = keys[i].name.len >= 0 ? sp_hash_bytes(keys[i].name.ptr, (size_t)keys[i].name.len)
                                           : sp_hash_mix(sp_hash_bytes(keys[i].id.b, 16), 1);
        int64_t seen = sp_hashset_add(&hs, (uint32_t)i, h);
        if (seen >= 0) {
            st[seen] = DUP_FIRST;
            st[i] = DUP_LATER;
        }
    }
    return st;
}

/* ---- CreateTopics ------------------------------------------------------ */

static void fill_configs(sp_req_t *req, sp_create_topics_response_creatable_topic_result_t *out,
                         const sp_image_t *img, const sp_topic_info_t *ti)
{
    int nk;
    const sp_topic_key_t *keys = sp_topic_keys(&nk);
    out->configs.v = sp_create_topics_response_creatable_topic_configs_alloc(&req->arena, nk);
    out->configs.n = out->configs.v ? nk : 0;
    for (int i = 0; i < out->configs.n; i++) {
        int src;
        const char *v = sp_topic_config_value(&keys[i], ti ? ti->nconfigs : 0, ti ? ti->ckeys : NULL,
                                              ti ? ti->cvalues : NULL, img, req->broker->config, &src);
        const char *copy = v ? sp_arena_strdup(&req->arena, v, strlen(v)) : NULL;
        out->configs.v[i].name = sp_str_c(keys[i].name);
        out->configs.v[i].value = copy ? sp_str_c(copy) : SP_STR_NULL;
        out->configs.v[i].config_source = (int8_t)src;
    }
}

static void create_done(sp_req_t *req, sp_ctl_op_t *op)
{
    int16_t v = req->r.hdr.request_api_version;
    sp_create_topics_response_t resp;
    sp_create_topics_response_init(&resp);
    resp.topics.v = sp_create_topics_response_creatable_topic_result_alloc(&req->arena, op->n);
    resp.topics.n = resp.topics.v ? op->n : 0;
    sp_image_t *img = sp_image_acquire(req->broker->images);
    for (int i = 0; i < resp.topics.n; i++) {
        sp_ctl_topic_t *t = &op->topics[i];
        sp_create_topics_response_creatable_topic_result_t *o = &resp.topics.v[i];
        o->name = t->name;
        o->error_code = t->error;
        o->error_message = msg(t->message);
        if (t->error == 0) {
            o->topic_id = t->out_id;
            o->num_partitions = t->out_partitions;
            o->replication_factor = t->out_rf;
            if (v >= 5) {
                /* the topic as created (or as it would be: validate_only) */
                const sp_topic_info_t *ti = op->validate_only ? NULL : sp_image_topic_by_id(img, t->out_id);
                fill_configs(req, o, img, ti);
                if (op->validate_only) /* show the requested overrides */
                    for (int k = 0; k < t->nconfigs; k++)
                        for (int c = 0; c < o->configs.n; c++)
                            if (sp_str_eq(o->configs.v[c].name, t->ckeys[k]) && t->cvalues[k].len >= 0) {
                                o->configs.v[c].value = t->cvalues[k];
                                o->configs.v[c].config_source = SP_CS_DYNAMIC_TOPIC;
                            }
            }
        } else {
            o->num_partitions = -1;
            o->replication_factor = -1;
            o->configs.n = v >= 5 ? 0 : -1;
        }
    }
    sp_req_respond(req, &resp);
    sp_image_release(img);
}

void sp_handle_create_topics(sp_req_t *req)
{
    const sp_create_topics_request_t *body = req->r.body;
    int nreq = body->topics.n > 0 ? body->topics.n : 0;
    sp_ctl_op_t *op = sp_arena_zalloc(&req->arena, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(&req->arena, sizeof(*t) * (size_t)(nreq ? nreq : 1));
    tkey_t *keys = sp_arena_alloc(&req->arena, sizeof(tkey_t) * (size_t)(nreq ? nreq : 1));
    if (!op || !t || !keys) {
        sp_req_close(req, "out of memory for CreateTopics");
        return;
    }
    for (int j = 0; j < nreq; j++)
        keys[j] = (tkey_t){ body->topics.v[j].name, { { 0 } } };
    uint8_t *twice = mark_twice(req, keys, nreq);
    if (!twice) {
        sp_req_close(req, "out of memory for CreateTopics");
        return;
    }
    int n = 0;
    for (int j = 0; j < nreq; j++) {
        if (twice[j] == DUP_LATER)
            continue; /* answered once, at its first appearance */
        int i = n++;
        const sp_create_topics_request_creatable_topic_t *ct = &body->topics.v[j];
        t[i].name = ct->name;
        t[i].num_partitions = ct->num_partitions;
        t[i].replication_factor = ct->replication_factor;
        if (twice[j] == DUP_FIRST) {
            t[i].error = SP_ERR_INVALID_REQUEST;
            t[i].message = "Duplicate topic name.";
        }
        if (!t[i].error && sp_topic_is_internal(ct->name.ptr, ct->name.len)) {
            t[i].error = SP_ERR_INVALID_REQUEST;
            t[i].message = prohibited(req, "Creation", ct->name);
        }
        int32_t na = ct->assignments.n > 0 ? ct->assignments.n : 0;
        if (na) {
            t[i].nassign = na;
            t[i].assign_index = sp_arena_alloc(&req->arena, sizeof(int32_t) * (size_t)na);
            t[i].assign_nbrokers = sp_arena_alloc(&req->arena, sizeof(int32_t) * (size_t)na);
            t[i].assign_brokers = sp_arena_alloc(&req->arena, sizeof(int32_t *) * (size_t)na);
            if (!t[i].assign_index || !t[i].assign_nbrokers || !t[i].assign_brokers) {
                sp_req_close(req, "out of memory for CreateTopics");
                return;
            }
            for (int32_t k = 0; k < na; k++) {
                t[i].assign_index[k] = ct->assignments.v[k].partition_index;
                t[i].assign_nbrokers[k] = ct->assignments.v[k].broker_ids.n > 0 ? ct->assignments.v[k].broker_ids.n : 0;
                t[i].assign_brokers[k] = ct->assignments.v[k].broker_ids.v;
            }
        }
        int nc = ct->configs.n > 0 ? ct->configs.n : 0;
        if (nc) {
            t[i].nconfigs = nc;
            t[i].ckeys = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)nc);
            t[i].cvalues = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)nc);
            if (!t[i].ckeys || !t[i].cvalues) {
                sp_req_close(req, "out of memory for CreateTopics");
                return;
            }
            for (int k = 0; k < nc; k++) {
                t[i].ckeys[k] = ct->configs.v[k].name;
                t[i].cvalues[k] = ct->configs.v[k].value;
                if (!t[i].error && t[i].cvalues[k].len < 0) {
                    /* Kafka (ControllerApis/ReplicationControlManager) */
                    const sp_str_t key = t[i].ckeys[k];
                    size_t sz = 64 + (size_t)(key.len > 0 ? key.len : 0);
                    char *m = sp_arena_alloc(&req->arena, sz);
                    if (m)
                        snprintf(m, sz, "Null value not supported for topic configs: %.*s", (int)key.len, key.ptr);
                    t[i].error = SP_ERR_INVALID_CONFIG;
                    t[i].message = m ? m : "Null value not supported for topic configs";
                }
            }
        }
    }
    op->kind = SP_CTL_CREATE_TOPICS;
    op->validate_only = body->validate_only;
    op->n = n;
    op->topics = t;
    sp_ctl_submit(req, op, create_done);
}

/* ---- DeleteTopics ------------------------------------------------------ */

static void delete_done(sp_req_t *req, sp_ctl_op_t *op)
{
    sp_delete_topics_response_t resp;
    sp_delete_topics_response_init(&resp);
    resp.responses.v = sp_delete_topics_response_deletable_topic_result_alloc(&req->arena, op->n);
    resp.responses.n = resp.responses.v ? op->n : 0;
    for (int i = 0; i < resp.responses.n; i++) {
        sp_ctl_topic_t *t = &op->topics[i];
        sp_delete_topics_response_deletable_topic_result_t *o = &resp.responses.v[i];
        o->name = t->name;
        o->topic_id = t->error ? t->id : t->out_id;
        o->error_code = t->error;
        /* Kafka's default texts of these two (Errors.java) */
        if (!t->message && t->error == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION)
            t->message = "This server does not host this topic-partition.";
        else if (!t->message && t->error == SP_ERR_UNKNOWN_TOPIC_ID)
            t->message = "This server does not host this topic ID.";
        o->error_message = msg(t->message);
    }
    sp_req_respond(req, &resp);
}

void sp_handle_delete_topics(sp_req_t *req)
{
    const sp_delete_topics_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    int n = v >= 6 ? (body->topics.n > 0 ? body->topics.n : 0) : (body->topic_names.n > 0 ? body->topic_names.n : 0);
    sp_ctl_op_t *op = sp_arena_zalloc(&req->arena, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(&req->arena, sizeof(*t) * (size_t)(n ? n : 1));
    if (!op || !t) {
        sp_req_close(req, "out of memory for DeleteTopics");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (v >= 6) {
            t[i].name = body->topics.v[i].name;
            t[i].id = body->topics.v[i].topic_id;
            if (t[i].name.len >= 0 && !sp_uuid_is_zero(t[i].id)) {
                t[i].error = SP_ERR_INVALID_REQUEST;
                t[i].message = "Name and topic id cannot both be given.";
            } else if (t[i].name.len < 0 && sp_uuid_is_zero(t[i].id)) {
                t[i].error = SP_ERR_INVALID_REQUEST;
                t[i].message = "Neither a name nor a topic id was given.";
            }
        } else {
            t[i].name = body->topic_names.v[i];
        }
    }
    tkey_t *keys = sp_arena_alloc(&req->arena, sizeof(tkey_t) * (size_t)(n ? n : 1));
    uint8_t *twice = NULL;
    if (keys) {
        for (int i = 0; i < n; i++)
            keys[i] = (tkey_t){ t[i].name, t[i].id };
        twice = mark_twice(req, keys, n);
    }
    if (!twice) {
        sp_req_close(req, "out of memory for DeleteTopics");
        return;
    }
    int kept = 0; /* each topic answered once, at its first appearance */
    for (int i = 0; i < n; i++) {
        if (twice[i] == DUP_LATER)
            continue;
        if (kept != i)
            t[kept] = t[i];
        if (twice[i] == DUP_FIRST && !t[kept].error) {
            t[kept].error = SP_ERR_INVALID_REQUEST;
            t[kept].message = "Duplicate topic name.";
        }
        kept++;
    }
    n = kept;
    /* internal topics, by name or by id */
    sp_image_t *img = sp_image_acquire(req->broker->images);
    for (int i = 0; i < n; i++) {
        if (t[i].error)
            continue;
        sp_str_t name = t[i].name;
        if (name.len < 0) {
            const sp_topic_info_t *ti = sp_image_topic_by_id(img, t[i].id);
            name = ti ? sp_str_c(ti->name) : SP_STR_NULL;
        }
        if (name.len > 0 && sp_topic_is_internal(name.ptr, name.len)) {
            t[i].error = SP_ERR_INVALID_REQUEST;
            t[i].message = prohibited(req, "Deletion", name);
            if (t[i].name.len < 0) /* the response names it; the image goes away */
                t[i].name = sp_str_c(sp_arena_strdup(&req->arena, name.ptr, (size_t)name.len));
        }
    }
    sp_image_release(img);
    op->kind = SP_CTL_DELETE_TOPICS;
    op->n = n;
    op->topics = t;
    sp_ctl_submit(req, op, delete_done);
}
