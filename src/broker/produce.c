/*
 * produce.c - Produce (key 0).
 *
 * Kafka 4.3's range is v3-v13.  v0-v2 (magic 0/1 message sets) Kafka 4
 * only advertises (KAFKA-18659) and refuses; Spool converts them into a
 * record batch first (proto/legacy.h), as Kafka 3 did, for the old
 * clients that still send them (kafka-go 0.2, Sarama set to Kafka 0.10),
 * and then judges that batch as any other.  v13 names topics by id
 * (KIP-516): an id the metadata does not know is UNKNOWN_TOPIC_ID for
 * each of its partitions, and is never auto-created (there is no name).
 *
 * Per partition the batch goes to the partition (cluster/partition.h),
 * which validates it whole, assigns offsets and writes the bytes as
 * received.  acks=0 gets no response (a failed partition closes the
 * connection instead, as in Kafka); acks=1 is answered once written;
 * acks=-1 once every partition's high watermark passed its records: on a
 * durable topic (flush.messages=1) that is when the flush thread fsynced
 * them (group commit).  Topics that do not exist are created
 * first when auto.create.topics.enable is on.  Internal topics
 * (cluster/names.h) are refused with INVALID_TOPIC_EXCEPTION: only the
 * group coordinator appends to __consumer_offsets.  (Kafka lets a client
 * whose client.id is "__admin_client" through; Spool does not.)
 *
 * What a client may write, in Kafka's order of checks:
 *  1. the request (KafkaApis.handleProduceRequest): a transactional batch
 *     needs a transactional id (none: every partition fails with
 *     TRANSACTIONAL_ID_AUTHORIZATION_FAILED); a transactional batch that
 *     would open the producer's transaction on a partition waits for the
 *     transaction coordinator to confirm the partition is in the
 *     transaction (KIP-890, verify_transactional below);
 *  2. each partition's records (ProduceRequest.validateRecords): exactly
 *     one whole batch of magic 2 (INVALID_RECORD), not zstd below v7
 *     (UNSUPPORTED_COMPRESSION_TYPE);
 *  3. the batch (the log, as AppendOrigin.CLIENT: proto/batch.h invariants
 *     (1)-(8)): no control batch, keys on compacted topics, a CreateTime
 *     within message.timestamp.before/after.max.ms of now (a LogAppendTime
 *     topic takes no batch claiming LogAppendTime); refused records are
 *     listed in record_errors (v8+) with a summary in error_message, as
 *     Kafka's RecordValidationException.
 * Then the batch is stored as sent, or rebuilt with the topic's
 * compression.type when that names another codec (the partition does).
 */
#include "broker/api.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "cluster/partition.h"
#include "proto/batch.h"
#include "proto/gen/produce_request.h"
#include "proto/legacy.h"
#include "proto/gen/produce_response.h"
#include "txn/txn_coordinator.h"
#include "util/log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct ack_wait {
    sp_waiter_t w;              /* must stay first */
    struct produce_ctx *ctx;
    sp_partition_t *part;
    sp_produce_response_partition_produce_response_t *out;
} ack_wait_t;

typedef struct produce_ctx {
    sp_req_t *req;
    sp_produce_response_t resp;
    ack_wait_t *waits;
    int nwaits;
    atomic_int pending;         /* acks=all waits not yet completed */
    bool done;
    sp_str_t *names;            /* each topic's name (v13: resolved ids) */
    int16_t all_error;
    /* transactional batches (KIP-890): partitions checked with the
     * transaction coordinator first, their verdicts by flat index */
    sp_txn_call_t verify;
    int16_t *verr;
    uint64_t *guards;           /* by flat index: the verification's guard */
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
        sp_partition_unwait(ctx->waits[i].part, &ctx->waits[i].w);
        sp_partition_unref(ctx->waits[i].part);
    }
    sp_req_respond(req, &ctx->resp);
}

static void acked_on_worker(sp_req_t *req, void *arg)
{
    finish(req, arg);
}

/* A partition's high watermark passed our records (or the partition
 * failed): runs under the partition's lock, on the thread that moved it. */
static void on_acked(sp_waiter_t *w, int err)
{
    ack_wait_t *aw = (ack_wait_t *)w;
    if (err)
        aw->out->error_code = (int16_t)err;
    if (atomic_fetch_sub(&aw->ctx->pending, 1) == 1)
        sp_req_post(aw->ctx->req, acked_on_worker, aw->ctx);
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
        to->topic_id = td->topic_id;
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

/* Whether a partition's records start with a whole transactional batch
 * (Kafka's RequestUtils.hasTransactionalRecords looks at first batches). */
static bool has_transactional_batch(const sp_produce_request_t *body)
{
    for (int32_t t = 0; t < body->topic_data.n; t++) {
        const sp_produce_request_topic_produce_data_t *td = &body->topic_data.v[t];
        for (int32_t p = 0; p < td->partition_data.n; p++) {
            const sp_bytes_t *r = &td->partition_data.v[p].records;
            size_t bs;
            sp_batch_hdr_t h;
            if (r->len > 0 && sp_batch_next(r->ptr, (size_t)r->len, &bs) == 1 &&
                sp_batch_hdr_parse(r->ptr, bs, &h) == 0 && h.magic == SP_BATCH_MAGIC &&
                sp_batch_is_transactional(&h))
                return true;
        }
    }
    return false;
}

/*
 * Kafka's ProduceRequest.validateRecords for one partition's records
 * r[0..len) of a v3+ request: 0 with *size = the one batch's size, or the
 * partition's error with *why.  A batch cut short counts as no batch, as
 * Kafka's batch iterator sees it; a bad length field is CORRUPT_MESSAGE,
 * and so are bytes after the batch that are not a whole batch (Kafka
 * drops them silently).  sp_batch_next() framed a whole batch, so r has
 * at least SP_BATCH_HEADER_SIZE bytes when magic and codec are read.
 */
static int16_t check_records(int16_t v, const uint8_t *r, int32_t len, size_t *size, const char **why)
{
    size_t bs, rest;
    int n = len > 0 ? sp_batch_next(r, (size_t)len, &bs) : 0;
    if (n < 0) {
        *why = "truncated or malformed record batch";
        return SP_ERR_CORRUPT_MESSAGE;
    }
    if (n == 0) {
        *why = "Produce requests must have at least one record batch per partition";
        return SP_ERR_INVALID_RECORD;
    }
    if (r[16] != SP_BATCH_MAGIC) {
        *why = "Produce requests are only allowed to contain record batches with magic version 2";
        return SP_ERR_INVALID_RECORD;
    }
    if (v < 7 && (r[22] & SP_BATCH_ATTR_COMPRESSION_MASK) == SP_COMPRESSION_ZSTD) {
        *why = "Produce requests with version below 7 are not allowed to use ZStandard compression";
        return SP_ERR_UNSUPPORTED_COMPRESSION_TYPE;
    }
    if ((size_t)len > bs) {
        if (sp_batch_next(r + bs, (size_t)len - bs, &rest) == 1) {
            *why = "Produce requests are only allowed to contain exactly one record batch per partition";
            return SP_ERR_INVALID_RECORD;
        }
        *why = "bytes after the record batch";
        return SP_ERR_CORRUPT_MESSAGE;
    }
    *size = bs;
    return 0;
}

/* Kafka's RecordError list of one partition, gathered while its batch is
 * validated (proto/batch.h sp_record_error_fn); request arena. */
typedef struct rec_errs {
    sp_arena_t *arena;
    sp_produce_response_batch_index_and_error_message_t *v;
    int32_t n, cap;
    int32_t total;              /* errors seen; more than n if the arena ran out */
} rec_errs_t;

static void on_record_error(void *ctx, int32_t batch_index, int16_t error, const char *message)
{
    rec_errs_t *re = ctx;
    (void)error;
    re->total++;
    if (re->n == re->cap) {
        int32_t ncap = re->cap ? re->cap * 2 : 16;
        void *nv = re->cap < INT32_MAX / 2 ? sp_arena_alloc(re->arena, sizeof(*re->v) * (size_t)ncap) : NULL;
        if (!nv)
            return;
        if (re->n)
            memcpy(nv, re->v, sizeof(*re->v) * (size_t)re->n);
        re->v = nv;
        re->cap = ncap;
    }
    /* the same text as the previous record's (a compacted topic's key
     * error names only the partition) is shared, not copied again */
    size_t ml = strlen(message);
    sp_str_t m = re->n ? re->v[re->n - 1].batch_index_error_message : SP_STR_NULL;
    if (m.len != (int32_t)ml || memcmp(m.ptr, message, ml) != 0) {
        char *c = sp_arena_strdup(re->arena, message, ml);
        if (!c)
            return;
        m = (sp_str_t){ c, (int32_t)ml };
    }
    re->v[re->n].batch_index = batch_index;
    re->v[re->n].batch_index_error_message = m;
    re->n++;
}

/* Kafka's message for a batch refused by its records (LogValidator's
 * processRecordErrors): a summary with at most the first three. */
static sp_str_t record_errors_message(sp_arena_t *a, int16_t err, const rec_errs_t *re)
{
    if (err == SP_ERR_INVALID_TIMESTAMP)
        return sp_str_lit("One or more records have been rejected due to invalid timestamp");
    size_t cap = 200;
    for (int32_t i = 0; i < re->n && i < 3; i++)
        cap += 48 + (size_t)re->v[i].batch_index_error_message.len;
    char *m = sp_arena_alloc(a, cap);
    if (!m)
        return sp_str_lit("One or more records have been rejected");
    int at = snprintf(m, cap, "One or more records have been rejected due to %d record errors in total, "
                              "and only showing the first three errors at most: [", re->total);
    for (int32_t i = 0; i < re->n && i < 3; i++) {
        const sp_str_t *e = &re->v[i].batch_index_error_message;
        at += snprintf(m + at, cap - (size_t)at, "%sRecordError(batchIndex=%d, message='%.*s')", i ? ", " : "",
                       re->v[i].batch_index, (int)e->len, e->ptr);
    }
    snprintf(m + at, cap - (size_t)at, "]");
    return sp_str_c(m);
}

/*
 * Whether a failed append answers the partition's log start offset, as
 * Kafka's ReplicaManager.appendToLocalLog does: its record validation
 * failures (INVALID_RECORD, INVALID_TIMESTAMP) and any other exception
 * (NOT_ENOUGH_REPLICAS, ...) go through processFailedRecord, which reads
 * the log start; an unknown partition, a record or batch too large, a
 * corrupt batch and a storage error answer -1.
 */
static bool carries_log_start(int16_t err)
{
    switch (err) {
    case SP_ERR_UNKNOWN_TOPIC_OR_PARTITION:
    case SP_ERR_NOT_LEADER_OR_FOLLOWER:
    case SP_ERR_MESSAGE_TOO_LARGE:
    case SP_ERR_RECORD_LIST_TOO_LARGE:
    case SP_ERR_CORRUPT_MESSAGE:
    case SP_ERR_KAFKA_STORAGE_ERROR:
        return false;
    default:
        return true;
    }
}

/* The first partition error of a produce answer, or 0. */
static int16_t first_error(const sp_produce_response_t *resp)
{
    for (int32_t t = 0; t < resp->responses.n; t++)
        for (int32_t p = 0; p < resp->responses.v[t].partition_responses.n; p++)
            if (resp->responses.v[t].partition_responses.v[p].error_code)
                return resp->responses.v[t].partition_responses.v[p].error_code;
    return 0;
}

static int64_t log_start_of(sp_partition_t *part)
{
    sp_log_offsets_t lo;
    sp_partition_offsets(part, &lo);
    return lo.log_start;
}

/* The name of each topic of the request: v13 resolves its ids through
 * the current image (len < 0: an id it does not know). */
static sp_str_t *topic_names(sp_req_t *req, const sp_produce_request_t *body, int16_t v, int32_t nt)
{
    sp_str_t *names = sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)(nt ? nt : 1));
    if (!names)
        return NULL;
    sp_image_t *img = v >= 13 ? sp_image_acquire(req->broker->images) : NULL;
    for (int32_t t = 0; t < nt; t++)
        names[t] = img ? sp_req_topic_name(req, img, body->topic_data.v[t].topic_id) : body->topic_data.v[t].name;
    if (img)
        sp_image_release(img);
    return names;
}

static void append_partitions(sp_req_t *req, produce_ctx_t *ctx);

/* The first batch's header of a partition's records, if it has one. */
static bool first_header(const sp_produce_request_partition_produce_data_t *pd, sp_batch_hdr_t *h)
{
    size_t bs;
    return pd->records.len > 0 && sp_batch_next(pd->records.ptr, (size_t)pd->records.len, &bs) == 1 &&
           sp_batch_hdr_parse(pd->records.ptr, bs, h) == 0 && h->magic == SP_BATCH_MAGIC;
}

/*
 * Kafka's answer to a produce for a partition the transaction coordinator
 * did not confirm (AddPartitionsToTxnManager, ReplicaManager): a fenced
 * producer is INVALID_PRODUCER_EPOCH, a partition not in the transaction
 * TRANSACTION_ABORTABLE from v11 on (INVALID_TXN_STATE before), and the
 * coordinator's retriable errors NOT_ENOUGH_REPLICAS (a produce error
 * every client retries).
 */
static int16_t verify_error(int16_t v, int16_t err)
{
    switch (err) {
    case SP_ERR_PRODUCER_FENCED: return SP_ERR_INVALID_PRODUCER_EPOCH;
    case SP_ERR_TRANSACTION_ABORTABLE: return v >= 11 ? err : SP_ERR_INVALID_TXN_STATE;
    case SP_ERR_NOT_COORDINATOR:
    case SP_ERR_COORDINATOR_NOT_AVAILABLE:
    case SP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case SP_ERR_CONCURRENT_TRANSACTIONS: return SP_ERR_NOT_ENOUGH_REPLICAS;
    default: return err;
    }
}

static void verified_on_worker(sp_req_t *req, void *arg)
{
    produce_ctx_t *ctx = arg;
    int16_t v = req->r.hdr.request_api_version;
    for (int32_t i = 0; i < ctx->verify.n; i++) {
        int16_t e = ctx->verify.error ? ctx->verify.error : ctx->verify.part_errors[i];
        /* the flat index of the i-th partition checked is kept in token order */
        int32_t k = ((int32_t *)ctx->verify.token)[i];
        ctx->verr[k] = verify_error(v, e);
    }
    append_partitions(req, ctx);
    sp_req_unref(req);
}

static void verified(sp_txn_call_t *call)
{
    produce_ctx_t *ctx = (produce_ctx_t *)((char *)call - offsetof(produce_ctx_t, verify));
    sp_req_post(ctx->req, verified_on_worker, ctx);
}

/*
 * KIP-890's defence: a transactional batch that would open the producer's
 * transaction on a partition (the partition has none open for this
 * producer id and epoch) is appended only once the transaction
 * coordinator confirms the partition was added to the transaction
 * (Kafka's verify-only AddPartitionsToTxn).  Returns true when a check is
 * under way (the append continues on its answer).
 */
static bool verify_transactional(sp_req_t *req, produce_ctx_t *ctx)
{
    const sp_produce_request_t *body = req->r.body;
    int32_t nt = ctx->resp.responses.n, nparts = 0, n = 0;
    for (int32_t t = 0; t < nt; t++)
        nparts += ctx->resp.responses.v[t].partition_responses.n;
    sp_txn_part_in_t *parts = sp_arena_alloc(&req->arena, sizeof(*parts) * (size_t)(nparts ? nparts : 1));
    int32_t *index = sp_arena_alloc(&req->arena, sizeof(*index) * (size_t)(nparts ? nparts : 1));
    ctx->verr = sp_arena_zalloc(&req->arena, sizeof(*ctx->verr) * (size_t)(nparts ? nparts : 1));
    ctx->guards = sp_arena_zalloc(&req->arena, sizeof(*ctx->guards) * (size_t)(nparts ? nparts : 1));
    int16_t *errs = sp_arena_zalloc(&req->arena, sizeof(*errs) * (size_t)(nparts ? nparts : 1));
    if (!parts || !index || !ctx->verr || !ctx->guards || !errs)
        return false;
    int64_t pid = -1;
    int16_t epoch = -1;
    int32_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sp_produce_request_topic_produce_data_t *td = &body->topic_data.v[t];
        for (int32_t p = 0; p < ctx->resp.responses.v[t].partition_responses.n; p++, k++) {
            sp_batch_hdr_t h;
            sp_str_t name = ctx->names[t];
            if (name.len < 0 || !first_header(&td->partition_data.v[p], &h) || !sp_batch_is_transactional(&h))
                continue;
            sp_partition_t *part = sp_partitions_get(req->broker->partitions, name.ptr, name.len,
                                                     td->partition_data.v[p].index);
            if (!part)
                continue;
            bool open = sp_partition_txn_open(part, h.producer_id, h.producer_epoch);
            if (!open)
                ctx->guards[k] = sp_partition_verify_begin(part, h.producer_id, h.producer_epoch);
            sp_partition_unref(part);
            if (open)
                continue;
            pid = h.producer_id;
            epoch = h.producer_epoch;
            parts[n] = (sp_txn_part_in_t){ name, td->partition_data.v[p].index };
            index[n++] = k;
        }
    }
    if (n == 0)
        return false;
    ctx->verify.kind = SP_TXN_VERIFY;
    ctx->verify.txn_id = body->transactional_id;
    ctx->verify.producer_id = pid;
    ctx->verify.producer_epoch = epoch;
    ctx->verify.parts = parts;
    ctx->verify.n = n;
    ctx->verify.part_errors = errs;
    ctx->verify.token = index;
    ctx->verify.done = verified;
    sp_req_ref(req);
    if (!req->broker->txn || sp_txn_coordinator_submit(req->broker->txn, &ctx->verify) != 0) {
        sp_req_unref(req);
        for (int32_t i = 0; i < n; i++)
            ctx->verr[index[i]] = SP_ERR_NOT_ENOUGH_REPLICAS;
        return false;
    }
    return true;
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

    ctx->names = topic_names(req, body, v, nt);
    if (!ctx->names) {
        sp_req_close(req, "out of memory for Produce");
        return;
    }
    /* topics that do not exist yet: create them, then come back */
    if (v < 13 && (body->acks == -1 || body->acks == 0 || body->acks == 1) &&
        sp_autocreate(req, ctx->names, nt, sp_handle_produce))
        return;

    skeleton(req, body, &ctx->resp);
    bool txn = v >= 3 && has_transactional_batch(body);
    if (body->acks != -1 && body->acks != 0 && body->acks != 1)
        ctx->all_error = SP_ERR_INVALID_REQUIRED_ACKS;
    else if (txn && body->transactional_id.len < 0)
        ctx->all_error = SP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; /* Kafka: needs a transactional id */

    int nparts = 0;
    for (int32_t t = 0; t < nt; t++)
        nparts += body->topic_data.v[t].partition_data.n > 0 ? body->topic_data.v[t].partition_data.n : 0;
    ctx->waits = sp_arena_zalloc(&req->arena, sizeof(ack_wait_t) * (size_t)(nparts ? nparts : 1));
    if (!ctx->waits) {
        sp_req_close(req, "out of memory for Produce");
        return;
    }
    if (txn && !ctx->all_error && verify_transactional(req, ctx))
        return; /* appended on the coordinator's answer */
    append_partitions(req, ctx);
}

/* Appends each partition's batch (ctx->all_error, or a partition's
 * verdict from the transaction coordinator, refuses it first) and answers
 * or parks.  The request's worker. */
static void append_partitions(sp_req_t *req, produce_ctx_t *ctx)
{
    const sp_produce_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    int16_t all_error = ctx->all_error;
    sp_str_t *names = ctx->names;
    int64_t now = now_ms();
    int32_t k = -1;
    for (int32_t t = 0; t < ctx->resp.responses.n; t++) {
        const sp_produce_request_topic_produce_data_t *td = &body->topic_data.v[t];
        sp_produce_response_topic_produce_response_t *to = &ctx->resp.responses.v[t];
        for (int32_t p = 0; p < to->partition_responses.n; p++) {
            const sp_produce_request_partition_produce_data_t *pd = &td->partition_data.v[p];
            sp_produce_response_partition_produce_response_t *po = &to->partition_responses.v[p];
            k++;
            if (all_error) {
                po->error_code = all_error;
                continue;
            }
            if (ctx->verr && ctx->verr[k]) {
                /* Kafka answers the verification's exception with its text */
                po->error_code = ctx->verr[k];
                po->error_message = sp_str_lit("the transaction coordinator did not confirm this partition "
                                               "in the producer's transaction (KIP-890)");
                continue;
            }
            sp_str_t name = names[t];
            if (name.len < 0) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_ID;
                continue;
            }
            if (sp_topic_is_internal(name.ptr, name.len)) {
                /* only the coordinators write there; Kafka answers
                 * INVALID_TOPIC_EXCEPTION, with no message, whether or not
                 * the topic exists (ReplicaManager.appendToLocalLog) */
                po->error_code = SP_ERR_INVALID_TOPIC_EXCEPTION;
                continue;
            }
            sp_partition_t *part = sp_partitions_get(req->broker->partitions, name.ptr, name.len, pd->index);
            if (!part) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            size_t size = 0;
            const char *why = NULL;
            uint8_t *records = (uint8_t *)pd->records.ptr; /* the frame is ours: patched in place */
            uint8_t *converted = NULL;
            size_t rlen = pd->records.len > 0 ? (size_t)pd->records.len : 0;
            int16_t err = v >= 3 ? check_records(v, pd->records.ptr, pd->records.len, &size, &why)
                                 : (int16_t)sp_legacy_to_batch(pd->records.ptr, rlen, 0, &converted, &size, &why);
            if (converted)
                records = converted;
            if (err) {
                /* Kafka answers these with no message (only record errors
                 * carry one); the reason goes to the debug log */
                po->error_code = err;
                sp_debug("produce", "%.*s-%d refused: %s", (int)name.len, name.ptr, pd->index, why ? why : "");
                sp_partition_unref(part);
                continue;
            }
            rec_errs_t re = { &req->arena, NULL, 0, 0, 0 };
            sp_append_origin_t origin = { SP_ORIGIN_CLIENT, on_record_error, &re, true,
                                          ctx->guards ? ctx->guards[k] : 0 };
            sp_append_outcome_t ar;
            bool final = sp_partition_append(part, records, size, &origin, body->acks, now, &ar);
            free(converted);
            po->error_code = ar.error;
            if (re.total && (ar.error == SP_ERR_INVALID_RECORD || ar.error == SP_ERR_INVALID_TIMESTAMP)) {
                po->record_errors.v = re.v;
                po->record_errors.n = re.n;
                po->error_message = record_errors_message(&req->arena, ar.error, &re);
            } else if (ar.message && ar.error) {
                sp_debug("produce", "%.*s-%d refused: %s", (int)name.len, name.ptr, pd->index, ar.message);
            }
            if (!ar.error) {
                po->base_offset = ar.base_offset;
                po->log_append_time_ms = ar.log_append_time;
                po->log_start_offset = ar.log_start;
            } else if (carries_log_start(ar.error)) {
                po->log_start_offset = log_start_of(part);
            }
            if (!final) {
                ack_wait_t *aw = &ctx->waits[ctx->nwaits++];
                aw->ctx = ctx;
                aw->part = part; /* keeps the reference */
                aw->out = po;
                aw->w.offset = ar.last_offset;
                aw->w.wake = on_acked;
                continue;
            }
            sp_partition_unref(part);
        }
    }
    if (body->acks == 0) {
        for (int i = 0; i < ctx->nwaits; i++)
            sp_partition_unref(ctx->waits[i].part);
        /* acks=0 has no answer to carry an error: as Kafka does
         * (KafkaApis.handleProduceRequest), a failed partition closes the
         * connection, so that the producer notices and refreshes its
         * metadata */
        int16_t first = first_error(&ctx->resp);
        if (first) {
            char why[96];
            snprintf(why, sizeof(why), "acks=0 produce failed (error %d): closing the connection", first);
            sp_req_close(req, why);
            return;
        }
        sp_req_no_response(req);
        return;
    }
    if (ctx->nwaits == 0) {
        sp_req_respond(req, &ctx->resp);
        return;
    }
    /* park until every partition's high watermark passed its records */
    atomic_store(&ctx->pending, ctx->nwaits + 1);
    req->ctx = ctx;
    req->cancel = cancel;
    for (int i = 0; i < ctx->nwaits; i++)
        sp_partition_wait_ack(ctx->waits[i].part, &ctx->waits[i].w);
    if (atomic_fetch_sub(&ctx->pending, 1) == 1)
        finish(req, ctx);
}
