/*
 * groups.c - the consumer group APIs (JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
 * DeleteGroups, OffsetDelete, TxnOffsetCommit): each request becomes a call
 * (group/group.h) for its broker's group coordinator, whose answer comes
 * back to the request's worker.  The coordinator sees calls, never
 * requests.
 *
 * Threads: submitted on the request's worker; done() runs on the
 * coordinator thread (or, for a write that ends after the coordinator
 * stopped, on the thread it ends on) and posts the answer to the worker.
 */
#include <string.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "group/coordinator.h"
#include "proto/gen/offset_commit_request.h"
#include "proto/gen/offset_commit_response.h"
#include "proto/gen/offset_fetch_request.h"
#include "proto/gen/offset_fetch_response.h"

/* On the request's worker: the answer is built; send it and drop the
 * coordinator's reference.  A response that could not be built (out of
 * memory: NULL) closes the connection instead, as any broken request
 * does. */
static void respond_on_worker(sp_req_t *req, void *resp)
{
    if (resp)
        sp_req_respond(req, resp);
    else
        sp_req_close(req, "out of memory building a group response");
    sp_req_unref(req);
}

/* ---- topics by id (OffsetCommit and OffsetFetch v10, KIP-848) -------------
 * The groups keep offsets by topic name, as __consumer_offsets does.  A
 * v10 request names topics by id: each is resolved through the image
 * before the call (an id the image does not know gets an empty name,
 * which no topic has), and the answer gets the ids back, with
 * UNKNOWN_TOPIC_ID for the partitions of an unknown one, as Kafka 4.3. */

static sp_str_t name_of_id(sp_req_t *req, const sp_image_t *img, sp_uuid_t id)
{
    sp_str_t n = sp_req_topic_name(req, img, id);
    return n.len >= 0 ? n : sp_str_lit("");
}

static void resolve_ids(sp_req_t *req)
{
    int16_t api = req->r.hdr.request_api_key;
    if (req->r.hdr.request_api_version < 10)
        return;
    sp_image_t *img = sp_image_acquire(req->broker->images);
    if (api == SP_API_OFFSET_COMMIT) {
        sp_offset_commit_request_t *b = (sp_offset_commit_request_t *)req->r.body; /* the request's own */
        for (int32_t t = 0; t < b->topics.n; t++)
            b->topics.v[t].name = name_of_id(req, img, b->topics.v[t].topic_id);
    } else if (api == SP_API_OFFSET_FETCH) {
        sp_offset_fetch_request_t *b = (sp_offset_fetch_request_t *)req->r.body;
        for (int32_t g = 0; g < b->groups.n; g++)
            for (int32_t t = 0; t < b->groups.v[g].topics.n; t++)
                b->groups.v[g].topics.v[t].name = name_of_id(req, img, b->groups.v[g].topics.v[t].topic_id);
    }
    sp_image_release(img);
}

/* The answer of a v10 request: topic ids, UNKNOWN_TOPIC_ID for the
 * partitions of ids the image does not know. */
static void answer_ids(sp_req_t *req, void *resp)
{
    int16_t api = req->r.hdr.request_api_key;
    sp_image_t *img = sp_image_acquire(req->broker->images);
    if (api == SP_API_OFFSET_COMMIT) {
        const sp_offset_commit_request_t *b = req->r.body;
        sp_offset_commit_response_t *r = resp;
        for (int32_t t = 0; t < r->topics.n && t < b->topics.n; t++) {
            sp_offset_commit_response_topic_t *to = &r->topics.v[t];
            to->topic_id = b->topics.v[t].topic_id;
            if (b->topics.v[t].name.len > 0)
                continue;
            for (int32_t p = 0; p < to->partitions.n; p++)
                if (to->partitions.v[p].error_code == SP_ERR_UNKNOWN_TOPIC_OR_PARTITION)
                    to->partitions.v[p].error_code = SP_ERR_UNKNOWN_TOPIC_ID;
        }
    } else if (api == SP_API_OFFSET_FETCH) {
        const sp_offset_fetch_request_t *b = req->r.body;
        sp_offset_fetch_response_t *r = resp;
        for (int32_t g = 0; g < r->groups.n; g++) {
            sp_offset_fetch_response_group_t *og = &r->groups.v[g];
            for (int32_t t = 0; t < og->topics.n; t++) {
                sp_offset_fetch_response_topics_t *to = &og->topics.v[t];
                const sp_topic_info_t *ti = to->name.len > 0 ? sp_image_topic(img, to->name.ptr, to->name.len) : NULL;
                if (ti) {
                    to->topic_id = ti->id;
                    continue;
                }
                /* a named id the image does not know, or a topic deleted since */
                const sp_offset_fetch_request_group_t *rg = g < b->groups.n ? &b->groups.v[g] : NULL;
                if (rg && t < rg->topics.n)
                    to->topic_id = rg->topics.v[t].topic_id;
                for (int32_t p = 0; p < to->partitions.n; p++)
                    if (!to->partitions.v[p].error_code)
                        to->partitions.v[p].error_code = SP_ERR_UNKNOWN_TOPIC_ID;
            }
        }
    }
    sp_image_release(img);
}

/* The coordinator's answer: any thread. */
static void done(sp_group_call_t *call, void *resp)
{
    sp_req_t *req = call->token;
    if (resp && req->r.hdr.request_api_version >= 10 &&
        (req->r.hdr.request_api_key == SP_API_OFFSET_COMMIT || req->r.hdr.request_api_key == SP_API_OFFSET_FETCH))
        answer_ids(req, resp);
    sp_req_post(req, respond_on_worker, resp);
}

/* Hands req to its broker's coordinator, holding a reference until it is
 * answered. */
static void submit(sp_req_t *req)
{
    sp_group_call_t *call = sp_arena_zalloc(&req->arena, sizeof(*call));
    if (!call) {
        sp_req_close(req, "out of memory for a group request");
        return;
    }
    resolve_ids(req);
    call->api = req->r.hdr.request_api_key;
    call->version = req->r.hdr.request_api_version;
    call->body = req->r.body;
    call->arena = &req->arena;
    call->client_id = req->r.hdr.client_id;
    call->client_host = sp_req_client_host(req);
    call->done = done;
    call->token = req;
    sp_req_ref(req); /* the coordinator's, dropped when answered */
    int rc = sp_coordinator_submit(req->broker->coordinator, call);
    if (rc != 0) {
        sp_req_unref(req);
        sp_req_close(req, rc == -2 ? "out of memory for a group request" : "the group coordinator has stopped");
    }
}

void sp_handle_join_group(sp_req_t *req) { submit(req); }
void sp_handle_sync_group(sp_req_t *req) { submit(req); }
void sp_handle_heartbeat(sp_req_t *req) { submit(req); }
void sp_handle_leave_group(sp_req_t *req) { submit(req); }
void sp_handle_offset_commit(sp_req_t *req) { submit(req); }
void sp_handle_offset_fetch(sp_req_t *req) { submit(req); }
void sp_handle_describe_groups(sp_req_t *req) { submit(req); }
void sp_handle_list_groups(sp_req_t *req) { submit(req); }
void sp_handle_delete_groups(sp_req_t *req) { submit(req); }
void sp_handle_offset_delete(sp_req_t *req) { submit(req); }
void sp_handle_txn_offset_commit(sp_req_t *req) { submit(req); }
