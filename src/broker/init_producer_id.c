/*
 * init_producer_id.c - InitProducerId (v0-5): a producer id for an
 * idempotent producer, from the broker's producer-id manager
 * (txn/pid_manager.h).  Kafka's KafkaApis.handleInitProducerIdRequest and
 * TransactionCoordinator.handleInitProducerId, in their order:
 *
 *   1. ProducerId and ProducerEpoch (v3+) come as a pair: one -1 without
 *      the other is INVALID_REQUEST;
 *   2. no transactional id (null): a fresh producer id, epoch 0, always,
 *      even when the request names a producer id and epoch (KIP-360: the
 *      producer's old id is simply left behind);
 *   3. an empty transactional id: INVALID_REQUEST;
 *   4. any other transactional id belongs to the transaction coordinator
 *      (txn/txn_coordinator.h: transaction.max.timeout.ms, then the id's
 *      state in __transaction_state: a new id, an epoch bump, fencing and
 *      aborting an open transaction).
 *
 * A failed request answers ProducerId -1 and ProducerEpoch -1, as Kafka.
 * Versions: 6 (2PC, KIP-939) is unstable in Kafka 4.3 and not served.
 *
 * Threads: the request's worker; when no id is at hand the manager
 * answers later from the metadata thread, and the answer is posted back
 * to the worker.
 */
#include "broker/api.h"
#include "proto/gen/init_producer_id_request.h"
#include "proto/gen/init_producer_id_response.h"
#include "txn/pid_manager.h"
#include "txn/txn_coordinator.h"

/* A request waiting for its producer id (in the request's arena). */
typedef struct pending {
    sp_req_t *req;
    int64_t pid;
    int16_t err;
} pending_t;

static void answer_epoch(sp_req_t *req, int16_t err, int64_t pid, int16_t epoch)
{
    sp_init_producer_id_response_t resp;
    sp_init_producer_id_response_init(&resp);
    resp.error_code = err;
    resp.producer_id = err ? -1 : pid;
    resp.producer_epoch = err ? -1 : epoch;
    sp_req_respond(req, &resp);
}

static void answer(sp_req_t *req, int16_t err, int64_t pid)
{
    answer_epoch(req, err, pid, 0);
}

/* ---- transactional ids: the transaction coordinator ---- */

typedef struct txn_wait {
    sp_txn_call_t call;         /* first */
    sp_req_t *req;
} txn_wait_t;

static void txn_on_worker(sp_req_t *req, void *arg)
{
    txn_wait_t *w = arg;
    int16_t err = w->call.error;
    /* KafkaApis: PRODUCER_FENCED is INVALID_PRODUCER_EPOCH below v4 (KIP-588) */
    if (err == SP_ERR_PRODUCER_FENCED && req->r.hdr.request_api_version < 4)
        err = SP_ERR_INVALID_PRODUCER_EPOCH;
    answer_epoch(req, err, w->call.out_producer_id, w->call.out_producer_epoch);
    sp_req_unref(req);
}

static void txn_done(sp_txn_call_t *call)
{
    txn_wait_t *w = (txn_wait_t *)call;
    sp_req_post(w->req, txn_on_worker, w);
}

static void init_transactional(sp_req_t *req, const sp_init_producer_id_request_t *b)
{
    txn_wait_t *w = sp_arena_zalloc(&req->arena, sizeof(*w));
    if (!w) {
        sp_req_close(req, "out of memory for InitProducerId");
        return;
    }
    w->req = req;
    w->call.kind = SP_TXN_INIT;
    w->call.txn_id = b->transactional_id;
    w->call.timeout_ms = b->transaction_timeout_ms;
    w->call.producer_id = b->producer_id;
    w->call.producer_epoch = b->producer_epoch;
    w->call.done = txn_done;
    sp_req_ref(req);
    if (!req->broker->txn || sp_txn_coordinator_submit(req->broker->txn, &w->call) != 0) {
        sp_req_unref(req);
        answer(req, SP_ERR_COORDINATOR_NOT_AVAILABLE, -1);
    }
}

/* On the request's worker. */
static void on_worker(sp_req_t *req, void *arg)
{
    pending_t *p = arg;
    answer(req, p->err, p->pid);
    sp_req_unref(req); /* the manager's */
}

/* The manager's answer: any thread. */
static void pid_ready(void *ctx, int64_t pid, int16_t err)
{
    pending_t *p = ctx;
    p->pid = pid;
    p->err = err;
    sp_req_post(p->req, on_worker, p);
}

void sp_handle_init_producer_id(sp_req_t *req)
{
    const sp_init_producer_id_request_t *b = req->r.body;
    if ((b->producer_id == -1) != (b->producer_epoch == -1)) {
        answer(req, SP_ERR_INVALID_REQUEST, -1);
        return;
    }
    if (b->transactional_id.len == 0) {
        answer(req, SP_ERR_INVALID_REQUEST, -1);
        return;
    }
    if (b->transactional_id.len > 0) {
        init_transactional(req, b);
        return;
    }
    pending_t *p = sp_arena_zalloc(&req->arena, sizeof(*p));
    if (!p) {
        sp_req_close(req, "out of memory for InitProducerId");
        return;
    }
    p->req = req;
    sp_req_ref(req); /* the manager's, dropped on the worker */
    sp_pid_next(req->broker->pids, pid_ready, p);
}
