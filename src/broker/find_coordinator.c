/*
 * find_coordinator.c - FindCoordinator: this broker coordinates every
 * group (it leads every partition of __consumer_offsets).  The first
 * group of a cluster creates __consumer_offsets (through the controller,
 * shaped by sp_coordinator_offsets_topic); until it exists the answer is
 * COORDINATOR_NOT_AVAILABLE.  Transactional ids have no coordinator yet.
 *
 * Threads: the request's worker (the creation comes back to it).
 */
#include <string.h>

#include "broker/api.h"
#include "broker/ctl.h"
#include "cluster/image.h"
#include "group/coordinator.h"
#include "proto/gen/find_coordinator_request.h"
#include "proto/gen/find_coordinator_response.h"
#include "util/log.h"

static bool offsets_topic_exists(sp_image_t *img)
{
    return sp_image_topic(img, SP_OFFSETS_TOPIC, (int32_t)strlen(SP_OFFSETS_TOPIC)) != NULL;
}

static void find_answer(sp_req_t *req)
{
    const sp_find_coordinator_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    sp_find_coordinator_response_t resp;
    sp_find_coordinator_response_init(&resp);
    sp_image_t *img = sp_image_acquire(req->broker->images);
    const sp_broker_info_t *self = sp_image_broker(img, req->broker->node_id);
    bool ready = offsets_topic_exists(img);
    int32_t nkeys = v >= 4 ? (b->coordinator_keys.n > 0 ? b->coordinator_keys.n : 0) : 1;
    if (v >= 4) {
        resp.coordinators.v = sp_find_coordinator_response_coordinator_alloc(&req->arena, nkeys);
        resp.coordinators.n = resp.coordinators.v ? nkeys : 0;
    }
    for (int32_t i = 0; i < nkeys; i++) {
        int16_t err = 0;
        const char *msg = NULL;
        sp_str_t key = v >= 4 ? b->coordinator_keys.v[i] : b->key;
        /* As Kafka answers: a group (0) or transactional (1) id of any
         * text, "" included, has a coordinator; any other key type
         * (share groups, 2, are not built) is INVALID_REQUEST */
        if (b->key_type != 0 && b->key_type != 1) {
            err = SP_ERR_INVALID_REQUEST;
            msg = "Unsupported key type";
        } else if (b->key_type == 1) {
            err = SP_ERR_COORDINATOR_NOT_AVAILABLE;
            msg = "transaction coordinators are not available yet";
        } else if (!ready || !self) {
            err = SP_ERR_COORDINATOR_NOT_AVAILABLE;
        }
        int32_t node = err ? -1 : self->node_id, port = err ? -1 : self->port;
        sp_str_t host = err ? sp_str_lit("") : sp_str_c(sp_arena_strdup(&req->arena, self->host, strlen(self->host)));
        if (v >= 4) {
            sp_find_coordinator_response_coordinator_t *c = &resp.coordinators.v[i];
            c->key = key;
            c->node_id = node;
            c->host = host;
            c->port = port;
            c->error_code = err;
            c->error_message = sp_str_c(msg ? msg : ""); /* Kafka: an empty text */
        } else {
            resp.node_id = node;
            resp.host = host;
            resp.port = port;
            resp.error_code = err;
            /* Kafka's default text of the error (Errors.message()), NONE too */
            if (!msg)
                msg = err == 0 ? "NONE" : err == SP_ERR_COORDINATOR_NOT_AVAILABLE ? "The coordinator is not available." : NULL;
            resp.error_message = msg ? sp_str_c(msg) : SP_STR_NULL;
        }
    }
    sp_image_release(img);
    sp_req_respond(req, &resp);
}

static void offsets_topic_created(sp_req_t *req, sp_ctl_op_t *op)
{
    if (op->topics[0].error && op->topics[0].error != SP_ERR_TOPIC_ALREADY_EXISTS)
        sp_warn("group", "cannot create %s: %s", SP_OFFSETS_TOPIC, sp_kafka_error_name(op->topics[0].error));
    else if (!op->topics[0].error)
        sp_info("group", "created %s with %d partitions", SP_OFFSETS_TOPIC, op->topics[0].out_partitions);
    find_answer(req);
}

void sp_handle_find_coordinator(sp_req_t *req)
{
    sp_image_t *img = sp_image_acquire(req->broker->images);
    bool ready = offsets_topic_exists(img);
    sp_image_release(img);
    const sp_find_coordinator_request_t *b = req->r.body;
    if (ready || b->key_type != 0 || req->autocreated) {
        find_answer(req);
        return;
    }
    /* the first group of this cluster: create __consumer_offsets */
    sp_ctl_op_t *op = sp_arena_zalloc(&req->arena, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(&req->arena, sizeof(*t));
    if (!op || !t) {
        find_answer(req);
        return;
    }
    req->autocreated = true;
    sp_coordinator_offsets_topic(req->broker->config, t);
    op->kind = SP_CTL_CREATE_TOPICS;
    op->n = 1;
    op->topics = t;
    sp_ctl_submit(req, op, offsets_topic_created);
}
