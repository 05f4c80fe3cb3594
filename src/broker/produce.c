/*
 * produce.c - Produce (key 0).
 *
 * Kafka 4.0's range is v3-v11; v0-v2 are advertised too (KAFKA-18659:
 * librdkafka looks for them before it will compress) and answered with
 * UNSUPPORTED_VERSION for every partition.
 *
 * Per partition: the batches are validated whole (plog.c), offsets
 * assigned, and the bytes written as received.  acks=0 gets no response;
 * acks=1 is answered once written; acks=-1 on a durable topic
 * (flush.messages=1) is answered once every partition's data is fsynced by
 * the flush thread (group commit).  Topics that do not exist are created
 * first when auto.create.topics.enable is on.  Internal topics
 * (cluster/names.h) are refused with INVALID_TOPIC_EXCEPTION: only the
 * group coordinator appends to __consumer_offsets.  (Kafka lets a client
 * whose client.id is "__admin_client" through; Spool does not.)
 */
#include "broker/api.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "log/logmgr.h"
#include "proto/gen/produce_request.h"
#include "proto/gen/produce_response.h"
#include "util/log.h"

#include <time.h>

typedef struct flush_wait {
    sp_log_waiter_t w;          /* must stay first */
    struct produce_ctx *ctx;
    sp_plog_t *log;
    sp_produce_response_partition_produce_response_t *out;
} flush_wait_t;

typedef struct produce_ctx {
    sp_req_t *req;
    sp_produce_response_t resp;
    flush_wait_t *waits;
    int nwaits;
    atomic_int pending;         /* flush waits not yet completed */
    bool done;
} produce_ctx_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void finish(sp_req_t *req, produce_ctx_t *ctx)
{
    if (ctx->done)
        return;
    ctx->done = true;
    req->cancel = NULL;
    for (int i = 0; i < ctx->nwaits; i++) {
        sp_plog_unwait(ctx->waits[i].log, &ctx->waits[i].w);
        sp_plog_unref(ctx->waits[i].log);
    }
    sp_req_respond(req, &ctx->resp);
}

static void flushed_on_worker(sp_req_t *req, void *arg)
{
    finish(req, arg);
}

/* A partition's data is durable (or failed): runs on the flush thread
 * under that log's lock. */
static void on_flushed(sp_log_waiter_t *w, int err)
{
    flush_wait_t *fw = (flush_wait_t *)w;
    if (err)
        fw->out->error_code = (int16_t)err;
    if (atomic_fetch_sub(&fw->ctx->pending, 1) == 1)
        sp_req_post(fw->ctx->req, flushed_on_worker, fw->ctx);
}

static void cancel(sp_req_t *req)
{
    finish(req, req->ctx);
}

static sp_produce_response_t *skeleton(sp_req_t *req, const sp_produce_request_t *body,
                                       sp_produce_response_t *resp)
{
    sp_produce_response_init(resp);
    int32_t nt = body->topic_data.n > 0 ? body->topic_data.n : 0;
    resp->responses.v = sp_produce_response_topic_produce_response_alloc(&req->arena, nt);
    resp->responses.n = resp->responses.v ? nt : 0;
    for (int32_t t = 0; t < resp->responses.n; t++) {
        const sp_produce_request_topic_produce_data_t *td = &body->topic_data.v[t];
        sp_produce_response_topic_produce_response_t *to = &resp->responses.v[t];
        int32_t np = td->partition_data.n > 0 ? td->partition_data.n : 0;
        to->name = td->name;
        to->partition_responses.v = sp_produce_response_partition_produce_response_alloc(&req->arena, np);
        to->partition_responses.n = to->partition_responses.v ? np : 0;
        for (int32_t p = 0; p < to->partition_responses.n; p++) {
            sp_produce_response_partition_produce_response_t *po = &to->partition_responses.v[p];
            po->index = td->partition_data.v[p].index;
            po->base_offset = -1;
            po->log_append_time_ms = -1;
            po->log_start_offset = -1;
        }
    }
    return resp;
}

void sp_handle_produce(sp_req_t *req)
{
    const sp_produce_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    produce_ctx_t *ctx = sp_arena_zalloc(&req->arena, sizeof(*ctx));
    if (!ctx) {
        sp_req_close(req, "out of memory for Produce");
        return;
    }
    ctx->req = req;
    int32_t nt = body->topic_data.n > 0 ? body->topic_data.n : 0;

    /* topics that do not exist yet: create them, then come back */
    if (v >= 3 && (body->acks == -1 || body->acks == 0 || body->acks == 1)) {
        sp_str_t *names = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)(nt ? nt : 1));
        for (int32_t t = 0; names && t < nt; t++)
            names[t] = body->topic_data.v[t].name;
        if (names && sp_autocreate(req, names, nt, sp_handle_produce))
            return;
    }

    skeleton(req, body, &ctx->resp);
    int16_t all_error = 0;
    if (v < 3)
        all_error = SP_ERR_UNSUPPORTED_VERSION;
    else if (body->acks != -1 && body->acks != 0 && body->acks != 1)
        all_error = SP_ERR_INVALID_REQUIRED_ACKS;
    else if (body->transactional_id.len >= 0)
        all_error = SP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;

    int nparts = 0;
    for (int32_t t = 0; t < nt; t++)
        nparts += body->topic_data.v[t].partition_data.n > 0 ? body->topic_data.v[t].partition_data.n : 0;
    ctx->waits = sp_arena_zalloc(&req->arena, sizeof(flush_wait_t) * (size_t)(nparts ? nparts : 1));
    if (!ctx->waits) {
        sp_req_close(req, "out of memory for Produce");
        return;
    }
    int64_t now = now_ms();
    for (int32_t t = 0; t < ctx->resp.responses.n; t++) {
        const sp_produce_request_topic_produce_data_t *td = &body->topic_data.v[t];
        sp_produce_response_topic_produce_response_t *to = &ctx->resp.responses.v[t];
        for (int32_t p = 0; p < to->partition_responses.n; p++) {
            const sp_produce_request_partition_produce_data_t *pd = &td->partition_data.v[p];
            sp_produce_response_partition_produce_response_t *po = &to->partition_responses.v[p];
            if (all_error) {
                po->error_code = all_error;
                continue;
            }
            if (sp_topic_is_internal(td->name.ptr, td->name.len)) {
                /* only the coordinators write there; Kafka answers
                 * INVALID_TOPIC_EXCEPTION, with no message, whether or not
                 * the topic exists (ReplicaManager.appendToLocalLog) */
                po->error_code = SP_ERR_INVALID_TOPIC_EXCEPTION;
                continue;
            }
            sp_plog_t *log = sp_logmgr_get(td->name.ptr, td->name.len, pd->index);
            if (!log) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (pd->records.len <= 0) {
                po->error_code = SP_ERR_CORRUPT_MESSAGE;
                po->error_message = sp_str_lit("no record batch");
                sp_plog_unref(log);
                continue;
            }
            sp_log_config_t lc;
            sp_plog_config(log, &lc); /* one consistent copy (AlterConfigs may run) */
            if (body->acks == -1 && lc.min_insync_replicas > 1) {
                /* one replica in sync here: acks=all cannot be satisfied */
                po->error_code = SP_ERR_NOT_ENOUGH_REPLICAS;
                sp_plog_unref(log);
                continue;
            }
            sp_append_result_t ar;
            /* the frame is ours: batches are patched in place */
            sp_plog_append(log, (uint8_t *)pd->records.ptr, (size_t)pd->records.len, now, &ar);
            po->error_code = ar.error;
            if (ar.message && ar.error)
                po->error_message = sp_str_c(ar.message);
            if (!ar.error) {
                po->base_offset = ar.base_offset;
                po->log_append_time_ms = ar.log_append_time;
                po->log_start_offset = ar.log_start;
            }
            if (!ar.error && body->acks == -1 && sp_log_durable(&lc)) {
                flush_wait_t *fw = &ctx->waits[ctx->nwaits++];
                fw->ctx = ctx;
                fw->log = log; /* keeps the reference */
                fw->out = po;
                fw->w.offset = ar.last_offset;
                fw->w.wake = on_flushed;
                continue;
            }
            sp_plog_unref(log);
        }
    }
    if (body->acks == 0) {
        for (int i = 0; i < ctx->nwaits; i++)
            sp_plog_unref(ctx->waits[i].log);
        sp_req_no_response(req);
        return;
    }
    if (ctx->nwaits == 0) {
        sp_req_respond(req, &ctx->resp);
        return;
    }
    /* park until every partition is durable */
    atomic_store(&ctx->pending, ctx->nwaits + 1);
    req->ctx = ctx;
    req->cancel = cancel;
    for (int i = 0; i < ctx->nwaits; i++)
        sp_plog_wait_flush(ctx->waits[i].log, &ctx->waits[i].w);
    if (atomic_fetch_sub(&ctx->pending, 1) == 1)
        finish(req, ctx);
}
