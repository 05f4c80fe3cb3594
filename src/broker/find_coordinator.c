/*
 * find_coordinator.c - FindCoordinator: this broker coordinates every
 * group (it leads every partition of __consumer_offsets) and every
 * transactional id (every partition of __transaction_state).  The first
 * group of a cluster creates __consumer_offsets (through the controller,
 * shaped by sp_coordinator_offsets_topic), the first transactional id
 * __transaction_state (sp_txn_coordinator_topic); until the key type's
 * topic exists the answer is COORDINATOR_NOT_AVAILABLE.
 *
 * Threads: the request's worker (the creation comes back to it).
 */
#include <string.h>

#include "broker/api.h"
#include "broker/ctl.h"
#include "cluster/image.h"
#include "group/coordinator.h"
#include "txn/txn_coordinator.h"
#include "proto/gen/find_coordinator_request.h"
#include "proto/gen/find_coordinator_response.h"
#include "util/log.h"

/* The internal topic whose leaders coordinate keys of key_type (0 groups,
 * 1 transactional ids). */
static const char *topic_of(int8_t key_type)
{
    return key_type == 1 ? SP_TXN_STATE_TOPIC : SP_OFFSETS_TOPIC;
}

static bool topic_exists(sp_image_t *img, int8_t key_type)
{
    const char *t = topic_of(key_type);
    return sp_image_topic(img, t, (int32_t)strlen(t)) != NULL;
}

static void find_answer(sp_req_t *req)
{
    const sp_find_coordinator_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    sp_find_coordinator_response_t resp;
    sp_find_coordinator_response_init(&resp);
    sp_image_t *img = sp_image_acquire(req->broker->images);
    const sp_broker_info_t *self = sp_image_broker(img, req->broker->node_id);
    bool ready = topic_exists(img, b->key_type);
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

static void topic_created(sp_req_t *req, sp_ctl_op_t *op)
{
    const sp_find_coordinator_request_t *b = req->r.body;
    const char *t = topic_of(b->key_type);
    if (op->topics[0].error && op->topics[0].error != SP_ERR_TOPIC_ALREADY_EXISTS)
        sp_warn("group", "cannot create %s: %s", t, sp_kafka_error_name(op->topics[0].error));
    else if (!op->topics[0].error)
        sp_info("group", "created %s with %d partitions", t, op->topics[0].out_partitions);
    find_answer(req);
}

void sp_handle_find_coordinator(sp_req_t *req)
{
    const sp_find_coordinator_request_t *b = req->r.body;
    if (b->key_type == 1)
        sp_txn_coordinator_warm(req->broker->txn); /* its InitProducerId follows */
    sp_image_t *img = sp_image_acquire(req->broker->images);
    bool ready = topic_exists(img, b->key_type);
    sp_image_release(img);
    if (ready || (b->key_type != 0 && b->key_type != 1) || req->autocreated) {
        find_answer(req);
        return;
    }
    /* the first group (transactional id) of this cluster: create
     * __consumer_offsets (__transaction_state) */
    sp_ctl_op_t *op = sp_arena_zalloc(&req->arena, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(&req->arena, sizeof(*t));
    if (!op || !t) {
        find_answer(req);
        return;
    }
    req->autocreated = true;
    if (b->key_type == 1) {
        if (sp_txn_coordinator_topic(req->broker->config, t, &req->arena) != 0) {
            find_answer(req);
            return;
        }
    } else if (sp_coordinator_offsets_topic(req->broker->config, t, &req->arena) != 0) {
        find_answer(req);
        return;
    }
    op->kind = SP_CTL_CREATE_TOPICS;
    op->n = 1;
    op->topics = t;
    sp_ctl_submit(req, op, topic_created);
}
