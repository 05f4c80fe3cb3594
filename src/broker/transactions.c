/*
 * transactions.c - the transaction APIs a producer and an admin client
 * send to the transaction coordinator: AddPartitionsToTxn (v0-5),
 * AddOffsetsToTxn (v0-4), EndTxn (v0-5), ListTransactions (v0-2),
 * DescribeTransactions (v0).  InitProducerId (init_producer_id.c) and the
 * produce path's check (produce.c) use the same coordinator.  Each request
 * becomes a call (txn/txn_state.h) for the broker's transaction
 * coordinator, whose answer comes back to the request's worker; the
 * request checks Kafka's KafkaApis does first (unknown partitions) happen
 * here.
 *
 * Transaction version: Spool's coordinator is Kafka's TV1 (the producer
 * adds partitions with AddPartitionsToTxn, the epoch is bumped only by
 * InitProducerId and fencing; ApiVersions finalizes no transaction.version
 * feature, so clients use TV1).  EndTxn v5 answers producer id and epoch
 * -1, as Kafka's TV1 path.
 *
 * Threads: the request's worker; done() on the coordinator thread posts
 * back to it.
 */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "group/coordinator.h"
#include "proto/gen/add_offsets_to_txn_request.h"
#include "proto/gen/add_offsets_to_txn_response.h"
#include "proto/gen/add_partitions_to_txn_request.h"
#include "proto/gen/add_partitions_to_txn_response.h"
#include "proto/gen/describe_transactions_request.h"
#include "proto/gen/describe_transactions_response.h"
#include "proto/gen/end_txn_request.h"
#include "proto/gen/end_txn_response.h"
#include "proto/gen/list_transactions_request.h"
#include "proto/gen/list_transactions_response.h"
#include "txn/txn_coordinator.h"
#include "util/clock.h"
#include "util/config.h"

typedef sp_add_partitions_to_txn_request_add_partitions_to_txn_topic_t apt_topic_t;
typedef sp_add_partitions_to_txn_response_add_partitions_to_txn_topic_result_t apt_topic_result_t;
typedef sp_add_partitions_to_txn_response_add_partitions_to_txn_partition_result_t apt_part_result_t;

/* A request waiting on the coordinator (in its arena). */
typedef struct waiting {
    sp_txn_call_t call;
    sp_req_t *req;
    void (*answer)(struct waiting *w);  /* on the worker */
    /* AddPartitionsToTxn v4+: which transaction of the request */
    int32_t index;
    int32_t *pending;           /* calls of the request not yet answered */
    void *resp;
} waiting_t;

static void on_worker(sp_req_t *req, void *arg)
{
    waiting_t *w = arg;
    w->answer(w);
    sp_req_unref(req);
}

/* The coordinator's answer (its thread). */
static void call_done(sp_txn_call_t *call)
{
    waiting_t *w = (waiting_t *)call;
    sp_req_post(w->req, on_worker, w);
}

/* Submits w->call; false (and nothing submitted) when the coordinator is
 * gone: the caller answers COORDINATOR_NOT_AVAILABLE. */
static bool submit(sp_req_t *req, waiting_t *w)
{
    w->req = req;
    w->call.done = call_done;
    sp_req_ref(req);
    if (req->broker->txn && sp_txn_coordinator_submit(req->broker->txn, &w->call) == 0)
        return true;
    sp_req_unref(req);
    return false;
}

/* Whether topic-partition exists in the image (Kafka's metadataCache.contains). */
static bool known(const sp_image_t *img, sp_str_t topic, int32_t p)
{
    const sp_topic_info_t *t = topic.len > 0 ? sp_image_topic(img, topic.ptr, topic.len) : NULL;
    return t && p >= 0 && p < t->npartitions;
}

/* ---- AddPartitionsToTxn ------------------------------------------------------- */

/* Results for topics (as the request lists them), each partition err. */
static apt_topic_result_t *topic_results(sp_req_t *req, const apt_topic_t *topics, int32_t n, int16_t err,
                                         const int16_t *per)
{
    apt_topic_result_t *r = sp_add_partitions_to_txn_response_add_partitions_to_txn_topic_result_alloc(&req->arena, n);
    int32_t k = 0;
    for (int32_t t = 0; r && t < n; t++) {
        int32_t np = topics[t].partitions.n > 0 ? topics[t].partitions.n : 0;
        r[t].name = topics[t].name;
        r[t].results_by_partition.v =
            sp_add_partitions_to_txn_response_add_partitions_to_txn_partition_result_alloc(&req->arena, np);
        r[t].results_by_partition.n = r[t].results_by_partition.v ? np : 0;
        for (int32_t p = 0; p < r[t].results_by_partition.n; p++, k++) {
            r[t].results_by_partition.v[p].partition_index = topics[t].partitions.v[p];
            r[t].results_by_partition.v[p].partition_error_code = per ? per[k] : err;
        }
    }
    return r;
}

/* The partitions of topics flattened into the call's form (arena), with
 * Kafka's checks: unknown ones UNKNOWN_TOPIC_OR_PARTITION and then every
 * other OPERATION_NOT_ATTEMPTED (errs filled, returns -1), else 0. */
static int flatten(sp_req_t *req, const apt_topic_t *topics, int32_t nt, sp_txn_part_in_t **out, int32_t *nout,
                   int16_t **errs)
{
    int32_t n = 0;
    for (int32_t t = 0; t < nt; t++)
        n += topics[t].partitions.n > 0 ? topics[t].partitions.n : 0;
    sp_txn_part_in_t *v = sp_arena_alloc(&req->arena, sizeof(*v) * (size_t)(n ? n : 1));
    int16_t *e = sp_arena_zalloc(&req->arena, sizeof(*e) * (size_t)(n ? n : 1));
    if (!v || !e)
        return -2;
    sp_image_t *img = sp_image_acquire(req->broker->images);
    bool bad = false;
    int32_t k = 0;
    for (int32_t t = 0; t < nt; t++)
        for (int32_t p = 0; p < topics[t].partitions.n; p++, k++) {
            v[k] = (sp_txn_part_in_t){ topics[t].name, topics[t].partitions.v[p] };
            if (!known(img, topics[t].name, topics[t].partitions.v[p])) {
                e[k] = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                bad = true;
            }
        }
    sp_image_release(img);
    if (bad)
        for (int32_t i = 0; i < n; i++)
            if (!e[i])
                e[i] = SP_ERR_OPERATION_NOT_ATTEMPTED;
    *out = v;
    *nout = n;
    *errs = e;
    return bad ? -1 : 0;
}

/* KafkaApis: clients before KIP-588 (AddPartitionsToTxn, AddOffsetsToTxn
 * and EndTxn below v2, InitProducerId below v4) know PRODUCER_FENCED as
 * INVALID_PRODUCER_EPOCH. */
static int16_t fenced_for(int16_t err, int16_t version, int16_t first)
{
    return err == SP_ERR_PRODUCER_FENCED && version < first ? SP_ERR_INVALID_PRODUCER_EPOCH : err;
}

static void answer_apt_v3(waiting_t *w)
{
    const sp_add_partitions_to_txn_request_t *b = w->req->r.body;
    w->call.error = fenced_for(w->call.error, w->req->r.hdr.request_api_version, 2);
    sp_add_partitions_to_txn_response_t resp;
    sp_add_partitions_to_txn_response_init(&resp);
    int32_t nt = b->v3_and_below_topics.n > 0 ? b->v3_and_below_topics.n : 0;
    resp.results_by_topic_v3_and_below.v = topic_results(w->req, b->v3_and_below_topics.v, nt, w->call.error, NULL);
    resp.results_by_topic_v3_and_below.n = resp.results_by_topic_v3_and_below.v ? nt : 0;
    sp_req_respond(w->req, &resp);
}

/* v4+: one transaction's result is in; the last answers the request. */
static void answer_apt_v4(waiting_t *w)
{
    const sp_add_partitions_to_txn_request_t *b = w->req->r.body;
    sp_add_partitions_to_txn_response_t *resp = w->resp;
    const sp_add_partitions_to_txn_request_add_partitions_to_txn_transaction_t *tx = &b->transactions.v[w->index];
    int32_t nt = tx->topics.n > 0 ? tx->topics.n : 0;
    sp_add_partitions_to_txn_response_add_partitions_to_txn_result_t *r = &resp->results_by_transaction.v[w->index];
    r->transactional_id = tx->transactional_id;
    bool per = w->call.kind == SP_TXN_VERIFY && !w->call.error;
    r->topic_results.v = topic_results(w->req, tx->topics.v, nt, w->call.error, per ? w->call.part_errors : NULL);
    r->topic_results.n = r->topic_results.v ? nt : 0;
    if (--*w->pending == 0)
        sp_req_respond(w->req, resp);
}

void sp_handle_add_partitions_to_txn(sp_req_t *req)
{
    const sp_add_partitions_to_txn_request_t *b = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    if (v <= 3) {
        waiting_t *w = sp_arena_zalloc(&req->arena, sizeof(*w));
        if (!w)
            goto oom;
        w->answer = answer_apt_v3;
        w->req = req;
        sp_txn_part_in_t *parts;
        int32_t n;
        int16_t *errs;
        int rc = flatten(req, b->v3_and_below_topics.v, b->v3_and_below_topics.n > 0 ? b->v3_and_below_topics.n : 0,
                         &parts, &n, &errs);
        if (rc == -2)
            goto oom;
        if (rc == -1) {
            sp_add_partitions_to_txn_response_t resp;
            sp_add_partitions_to_txn_response_init(&resp);
            int32_t nt = b->v3_and_below_topics.n > 0 ? b->v3_and_below_topics.n : 0;
            resp.results_by_topic_v3_and_below.v = topic_results(req, b->v3_and_below_topics.v, nt, 0, errs);
            resp.results_by_topic_v3_and_below.n = resp.results_by_topic_v3_and_below.v ? nt : 0;
            sp_req_respond(req, &resp);
            return;
        }
        w->call.kind = SP_TXN_ADD;
        w->call.txn_id = b->v3_and_below_transactional_id;
        w->call.producer_id = b->v3_and_below_producer_id;
        w->call.producer_epoch = b->v3_and_below_producer_epoch;
        w->call.parts = parts;
        w->call.n = n;
        if (!submit(req, w)) {
            w->call.error = SP_ERR_COORDINATOR_NOT_AVAILABLE;
            answer_apt_v3(w);
        }
        return;
    }
    /* v4+: several transactions, each added or verified */
    int32_t ntx = b->transactions.n > 0 ? b->transactions.n : 0;
    sp_add_partitions_to_txn_response_t *resp = sp_arena_zalloc(&req->arena, sizeof(*resp));
    int32_t *pending = sp_arena_zalloc(&req->arena, sizeof(*pending));
    waiting_t *ws = sp_arena_zalloc(&req->arena, sizeof(*ws) * (size_t)(ntx ? ntx : 1));
    if (!resp || !pending || !ws)
        goto oom;
    sp_add_partitions_to_txn_response_init(resp);
    resp->results_by_transaction.v = sp_add_partitions_to_txn_response_add_partitions_to_txn_result_alloc(&req->arena, ntx);
    if (ntx && !resp->results_by_transaction.v)
        goto oom;
    resp->results_by_transaction.n = ntx;
    if (ntx == 0) {
        sp_req_respond(req, resp);
        return;
    }
    *pending = ntx + 1; /* +1: the loop's own, so no answer goes before all are submitted */
    for (int32_t i = 0; i < ntx; i++) {
        const sp_add_partitions_to_txn_request_add_partitions_to_txn_transaction_t *tx = &b->transactions.v[i];
        waiting_t *w = &ws[i];
        w->answer = answer_apt_v4;
        w->req = req;
        w->index = i;
        w->pending = pending;
        w->resp = resp;
        int32_t n;
        int16_t *errs;
        sp_txn_part_in_t *parts;
        int rc = flatten(req, tx->topics.v, tx->topics.n > 0 ? tx->topics.n : 0, &parts, &n, &errs);
        if (rc == -2)
            goto oom;
        w->call.kind = tx->verify_only ? SP_TXN_VERIFY : SP_TXN_ADD;
        w->call.txn_id = tx->transactional_id;
        w->call.producer_id = tx->producer_id;
        w->call.producer_epoch = tx->producer_epoch;
        w->call.parts = parts;
        w->call.n = n;
        w->call.part_errors = errs;
        if (rc == -1) {
            w->call.kind = SP_TXN_VERIFY; /* per-partition errors as computed */
            answer_apt_v4(w);
            continue;
        }
        if (!submit(req, w)) {
            w->call.error = SP_ERR_COORDINATOR_NOT_AVAILABLE;
            answer_apt_v4(w);
        }
    }
    if (--*pending == 0)
        sp_req_respond(req, resp);
    return;
oom:
    sp_req_close(req, "out of memory for AddPartitionsToTxn");
}

/* ---- AddOffsetsToTxn ----------------------------------------------------------- */

static void answer_error_only(waiting_t *w)
{
    int16_t api = w->req->r.hdr.request_api_key;
    w->call.error = fenced_for(w->call.error, w->req->r.hdr.request_api_version, 2);
    if (api == SP_API_ADD_OFFSETS_TO_TXN) {
        sp_add_offsets_to_txn_response_t resp;
        sp_add_offsets_to_txn_response_init(&resp);
        resp.error_code = w->call.error;
        sp_req_respond(w->req, &resp);
    } else {
        sp_end_txn_response_t resp;
        sp_end_txn_response_init(&resp);
        resp.error_code = w->call.error;
        /* v5 (KIP-890): the id and epoch of a TV2 bump; Kafka's TV1 path
         * answers NO_PRODUCER_ID / NO_PRODUCER_EPOCH, success or not */
        resp.producer_id = -1;
        resp.producer_epoch = -1;
        sp_req_respond(w->req, &resp);
    }
}

void sp_handle_add_offsets_to_txn(sp_req_t *req)
{
    const sp_add_offsets_to_txn_request_t *b = req->r.body;
    waiting_t *w = sp_arena_zalloc(&req->arena, sizeof(*w));
    sp_txn_part_in_t *part = sp_arena_zalloc(&req->arena, sizeof(*part));
    if (!w || !part) {
        sp_req_close(req, "out of memory for AddOffsetsToTxn");
        return;
    }
    w->answer = answer_error_only;
    w->req = req;
    /* the group's partition of __consumer_offsets, as FindCoordinator
     * would name it (the topic's count, or offsets.topic.num.partitions) */
    sp_image_t *img = sp_image_acquire(req->broker->images);
    const sp_topic_info_t *t = sp_image_topic(img, SP_OFFSETS_TOPIC, (int32_t)strlen(SP_OFFSETS_TOPIC));
    int32_t np = t ? t->npartitions : (int32_t)sp_config_long(req->broker->config, "offsets.topic.num.partitions");
    sp_image_release(img);
    part->topic = sp_str_lit(SP_OFFSETS_TOPIC);
    part->partition = sp_coordinator_partition_for(b->group_id.ptr, b->group_id.len > 0 ? b->group_id.len : 0, np);
    w->call.kind = SP_TXN_ADD;
    w->call.txn_id = b->transactional_id;
    w->call.producer_id = b->producer_id;
    w->call.producer_epoch = b->producer_epoch;
    w->call.parts = part;
    w->call.n = 1;
    if (!submit(req, w)) {
        w->call.error = SP_ERR_COORDINATOR_NOT_AVAILABLE;
        answer_error_only(w);
    }
}

/* ---- EndTxn ----------------------------------------------------------------------- */

void sp_handle_end_txn(sp_req_t *req)
{
    const sp_end_txn_request_t *b = req->r.body;
    waiting_t *w = sp_arena_zalloc(&req->arena, sizeof(*w));
    if (!w) {
        sp_req_close(req, "out of memory for EndTxn");
        return;
    }
    w->answer = answer_error_only;
    w->req = req;
    w->call.kind = SP_TXN_END;
    w->call.txn_id = b->transactional_id;
    w->call.producer_id = b->producer_id;
    w->call.producer_epoch = b->producer_epoch;
    w->call.commit = b->committed;
    if (!submit(req, w)) {
        w->call.error = SP_ERR_COORDINATOR_NOT_AVAILABLE;
        answer_error_only(w);
    }
}

/* ---- ListTransactions, DescribeTransactions ----------------------------------------- */

typedef struct reading {
    sp_req_t *req;
    void *resp;
    int16_t error;
    regex_t re;
    bool has_re;
} reading_t;

static void respond_read(sp_req_t *req, void *arg)
{
    reading_t *r = arg;
    if (r->resp)
        sp_req_respond(req, r->resp);
    else
        sp_req_close(req, "out of memory for a transactions listing");
    if (r->has_re)
        regfree(&r->re);
    sp_req_unref(req);
}

typedef struct list_ctx {
    reading_t *r;
    const sp_list_transactions_request_t *b;
    sp_list_transactions_response_t *resp;
    int32_t cap;
    int64_t now;
    bool oom;
} list_ctx_t;

static void list_one(const sp_txn_view_t *v, void *arg)
{
    list_ctx_t *c = arg;
    const sp_list_transactions_request_t *b = c->b;
    if (b->producer_id_filters.n > 0) {
        bool in = false;
        for (int32_t i = 0; i < b->producer_id_filters.n && !in; i++)
            in = b->producer_id_filters.v[i] == v->producer_id;
        if (!in)
            return;
    }
    if (b->state_filters.n > 0) {
        bool in = false;
        for (int32_t i = 0; i < b->state_filters.n && !in; i++)
            in = sp_txn_status_of(b->state_filters.v[i]) == v->status;
        if (!in)
            return;
    }
    if (b->duration_filter >= 0 && v->start_ms >= c->now - b->duration_filter) /* start_ms untrusted: no overflow */
        return;
    if (c->r->has_re) {
        char *id = sp_arena_strdup(&c->r->req->arena, v->txn_id.ptr, (size_t)v->txn_id.len);
        if (!id || regexec(&c->r->re, id, 0, NULL, 0) != 0)
            return;
    }
    if (c->resp->transaction_states.n == c->cap) {
        int32_t cap = c->cap ? c->cap * 2 : 16;
        sp_list_transactions_response_transaction_state_t *nv =
            sp_list_transactions_response_transaction_state_alloc(&c->r->req->arena, cap);
        if (!nv) {
            c->oom = true;
            return;
        }
        if (c->resp->transaction_states.n)
            memcpy(nv, c->resp->transaction_states.v, sizeof(*nv) * (size_t)c->resp->transaction_states.n);
        c->resp->transaction_states.v = nv;
        c->cap = cap;
    }
    sp_list_transactions_response_transaction_state_t *o = &c->resp->transaction_states.v[c->resp->transaction_states.n++];
    o->transactional_id = sp_str_c(sp_arena_strdup(&c->r->req->arena, v->txn_id.ptr, (size_t)v->txn_id.len));
    o->producer_id = v->producer_id;
    o->transaction_state = sp_str_c(sp_txn_status_name(v->status));
}

/* On the coordinator thread (txns NULL: it stopped). */
static void list_run(const sp_txns_t *txns, void *arg)
{
    reading_t *r = arg;
    const sp_list_transactions_request_t *b = r->req->r.body;
    sp_list_transactions_response_t *resp = sp_arena_zalloc(&r->req->arena, sizeof(*resp));
    if (resp) {
        sp_list_transactions_response_init(resp);
        resp->error_code = r->error;
        /* unknown state names are listed back, as Kafka */
        int32_t nu = 0;
        for (int32_t i = 0; i < b->state_filters.n; i++)
            nu += sp_txn_status_of(b->state_filters.v[i]) < 0;
        resp->unknown_state_filters.v = nu ? sp_arena_alloc(&r->req->arena, sizeof(sp_str_t) * (size_t)nu) : NULL;
        for (int32_t i = 0; resp->unknown_state_filters.v && i < b->state_filters.n; i++)
            if (sp_txn_status_of(b->state_filters.v[i]) < 0)
                resp->unknown_state_filters.v[resp->unknown_state_filters.n++] = b->state_filters.v[i];
        if (!txns) {
            resp->error_code = SP_ERR_COORDINATOR_NOT_AVAILABLE;
        } else if (!r->error) {
            list_ctx_t c = { r, b, resp, 0, sp_wall_ms(), false };
            sp_txns_each(txns, list_one, &c);
            if (c.oom)
                resp = NULL;
        }
    }
    r->resp = resp;
    sp_req_post(r->req, respond_read, r);
}

void sp_handle_list_transactions(sp_req_t *req)
{
    const sp_list_transactions_request_t *b = req->r.body;
    reading_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r) {
        sp_req_close(req, "out of memory for ListTransactions");
        return;
    }
    r->req = req;
    if (req->r.hdr.request_api_version >= 2 && b->transactional_id_pattern.len > 0) {
        /* Kafka matches the whole id (RE2J's matches()): anchored here */
        size_t n = (size_t)b->transactional_id_pattern.len;
        char *pat = sp_arena_alloc(&req->arena, n + 5);
        if (!pat) {
            sp_req_close(req, "out of memory for ListTransactions");
            return;
        }
        pat[0] = '^';
        pat[1] = '(';
        memcpy(pat + 2, b->transactional_id_pattern.ptr, n);
        memcpy(pat + 2 + n, ")$", 3);
        if (regcomp(&r->re, pat, REG_EXTENDED | REG_NOSUB) == 0)
            r->has_re = true;
        else
            r->error = SP_ERR_INVALID_REQUEST;
    }
    sp_req_ref(req);
    if (!req->broker->txn || sp_txn_coordinator_run(req->broker->txn, list_run, r) != 0)
        list_run(NULL, r);
}

static void describe_run(const sp_txns_t *txns, void *arg)
{
    reading_t *r = arg;
    sp_req_t *req = r->req;
    const sp_describe_transactions_request_t *b = req->r.body;
    int32_t n = b->transactional_ids.n > 0 ? b->transactional_ids.n : 0;
    sp_describe_transactions_response_t *resp = sp_arena_zalloc(&req->arena, sizeof(*resp));
    if (resp) {
        sp_describe_transactions_response_init(resp);
        resp->transaction_states.v = sp_describe_transactions_response_transaction_state_alloc(&req->arena, n);
        resp->transaction_states.n = resp->transaction_states.v ? n : 0;
        if (n && !resp->transaction_states.v)
            resp = NULL;
    }
    for (int32_t i = 0; resp && i < n; i++) {
        sp_describe_transactions_response_transaction_state_t *o = &resp->transaction_states.v[i];
        sp_str_t id = b->transactional_ids.v[i];
        sp_txn_view_t v;
        o->transactional_id = id;
        if (!txns)
            o->error_code = SP_ERR_COORDINATOR_NOT_AVAILABLE;
        else if (id.len <= 0)
            o->error_code = SP_ERR_INVALID_REQUEST;
        else if (!sp_txns_describe(txns, id, &v))
            o->error_code = SP_ERR_TRANSACTIONAL_ID_NOT_FOUND;
        else {
            o->transaction_state = sp_str_c(sp_txn_status_name(v.status));
            o->transaction_timeout_ms = v.timeout_ms;
            o->transaction_start_time_ms = v.start_ms;
            o->producer_id = v.producer_id;
            o->producer_epoch = v.producer_epoch;
            int32_t nt = 0;
            for (int32_t k = 0; k < v.nparts; k++)
                nt += k == 0 || strcmp(v.topics[k], v.topics[k - 1]) != 0;
            o->topics.v = sp_describe_transactions_response_topic_data_alloc(&req->arena, nt);
            o->topics.n = 0;
            for (int32_t k = 0; o->topics.v && k < v.nparts; k++) {
                if (k == 0 || strcmp(v.topics[k], v.topics[k - 1]) != 0) {
                    sp_describe_transactions_response_topic_data_t *td = &o->topics.v[o->topics.n++];
                    td->topic = sp_str_c(sp_arena_strdup(&req->arena, v.topics[k], strlen(v.topics[k])));
                    int32_t cnt = 0;
                    while (k + cnt < v.nparts && strcmp(v.topics[k + cnt], v.topics[k]) == 0)
                        cnt++;
                    td->partitions.v = sp_arena_alloc(&req->arena, sizeof(int32_t) * (size_t)cnt);
                    td->partitions.n = 0;
                    for (int32_t j = 0; td->partitions.v && j < cnt; j++)
                        td->partitions.v[td->partitions.n++] = v.partitions[k + j];
                }
            }
        }
    }
    r->resp = resp;
    sp_req_post(req, respond_read, r);
}

void sp_handle_describe_transactions(sp_req_t *req)
{
    reading_t *r = sp_arena_zalloc(&req->arena, sizeof(*r));
    if (!r) {
        sp_req_close(req, "out of memory for DescribeTransactions");
        return;
    }
    r->req = req;
    sp_req_ref(req);
    if (!req->broker->txn || sp_txn_coordinator_run(req->broker->txn, describe_run, r) != 0)
        describe_run(NULL, r);
}
