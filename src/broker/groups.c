/*
 * groups.c - the consumer group APIs (JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
 * DeleteGroups, OffsetDelete): each request becomes a call
 * (group/group.h) for its broker's group coordinator, whose answer comes
 * back to the request's worker.  The coordinator sees calls, never
 * requests.
 *
 * Threads: submitted on the request's worker; done() runs on the
 * coordinator thread (or, for a write that ends after the coordinator
 * stopped, on the thread it ends on) and posts the answer to the worker.
 */
#include "broker/api.h"
#include "group/coordinator.h"

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

/* The coordinator's answer: any thread. */
static void done(sp_group_call_t *call, void *resp)
{
    sp_req_post(call->token, respond_on_worker, resp);
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
