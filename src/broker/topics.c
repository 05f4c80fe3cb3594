/*
 * topics.c - CreateTopics (key 19, v2-v7) and DeleteTopics (key 20, v1-v6).
 *
 * Both become one metadata operation (cluster/controller.h): validated,
 * written to the metadata log and fsynced, applied, and answered per topic
 * with Kafka's error codes and messages.  A name given twice in one
 * request is refused with INVALID_REQUEST, as Kafka does.  Deleted topics'
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
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "cluster/topic_config.h"
#include "proto/gen/create_topics_request.h"
#include "proto/gen/create_topics_response.h"
#include "proto/gen/delete_topics_request.h"
#include "proto/gen/delete_topics_response.h"

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
                                              ti ? ti->cvalues : NULL, img, sp_controller_config(), &src);
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
    sp_image_t *img = sp_image_acquire();
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
    int n = body->topics.n > 0 ? body->topics.n : 0;
    sp_ctl_op_t *op = sp_arena_zalloc(&req->arena, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(&req->arena, sizeof(*t) * (size_t)(n ? n : 1));
    if (!op || !t) {
        sp_req_close(req, "out of memory for CreateTopics");
        return;
    }
    for (int i = 0; i < n; i++) {
        const sp_create_topics_request_creatable_topic_t *ct = &body->topics.v[i];
        t[i].name = ct->name;
        t[i].num_partitions = ct->num_partitions;
        t[i].replication_factor = ct->replication_factor;
        for (int j = 0; j < n; j++)
            if (j != i && sp_str_eq(body->topics.v[j].name, ct->name)) {
                t[i].error = SP_ERR_INVALID_REQUEST;
                t[i].message = "Duplicate topic name in the request.";
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
    op->req = req;
    op->done = create_done;
    sp_controller_submit(op);
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
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && !t[i].error &&
                ((t[i].name.len >= 0 && sp_str_eq(t[i].name, t[j].name)) ||
                 (t[i].name.len < 0 && t[j].name.len < 0 && memcmp(t[i].id.b, t[j].id.b, 16) == 0))) {
                t[i].error = SP_ERR_INVALID_REQUEST;
                t[i].message = "Duplicate topic in the request.";
            }
    /* internal topics, by name or by id */
    sp_image_t *img = sp_image_acquire();
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
    op->req = req;
    op->done = delete_done;
    sp_controller_submit(op);
}
