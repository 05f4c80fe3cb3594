/*
 * write_txn_markers.c - WriteTxnMarkers (key 27), v1-2 (the versions Kafka
 * 4.3 serves): a transaction coordinator asks this broker to write the
 * COMMIT or ABORT markers of transactions to partitions it leads.  Each
 * entry goes to txn/markers.h, the one marker path (this broker's own
 * coordinator calls it directly), and the request is answered once every
 * entry's partitions have answered, as Kafka's KafkaApis
 * handleWriteTxnMarkersRequest (one append per entry, acks=-1, the
 * response when the last one returns).
 *
 * Per partition: 0 once the marker is durable; UNKNOWN_TOPIC_OR_PARTITION
 * for a partition this broker does not have; the producer state's
 * refusals (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED); a
 * storage error.  Markers for __consumer_offsets are written like any
 * other and then complete the group coordinator's pending transactional
 * offsets.  Kafka requires CLUSTER_ACTION on the cluster; Spool has no
 * authorizer and serves it (as Kafka without one).
 *
 * The response has one result per entry, in request order, each with the
 * entry's topics and partitions in request order.  (Kafka builds it from
 * maps keyed by producer id and topic-partition: two entries of one
 * producer share a result there, and its order is a hash map's.)
 *
 * Threads: the request's worker; the markers' completions come from the
 * flush thread or an appender (txn/markers.h) and are posted back.
 */
#include <stdatomic.h>
#include <string.h>

#include "broker/api.h"
#include "proto/gen/write_txn_markers_request.h"
#include "proto/gen/write_txn_markers_response.h"
#include "txn/markers.h"

/* The request in progress (in its arena). */
typedef struct wtm {
    sp_req_t *req;
    sp_write_txn_markers_response_t resp;
    atomic_int left;              /* entries still out, + 1 while starting them */
} wtm_t;

/* One entry's completion context: where its errors go. */
typedef struct wtm_entry {
    wtm_t *w;
    sp_write_txn_markers_response_writable_txn_marker_result_t *out;
} wtm_entry_t;

static void respond_on_worker(sp_req_t *req, void *arg)
{
    wtm_t *w = arg;
    sp_req_respond(req, &w->resp);
    sp_req_unref(req); /* the markers' */
}

static void entry_over(wtm_t *w)
{
    if (atomic_fetch_sub(&w->left, 1) == 1)
        sp_req_post(w->req, respond_on_worker, w);
}

/* errors[] in the order of the entry's partitions (topics, then indexes). */
static void set_errors(sp_write_txn_markers_response_writable_txn_marker_result_t *out, const int16_t *errors,
                       int16_t all)
{
    int k = 0;
    for (int32_t t = 0; t < out->topics.n; t++)
        for (int32_t p = 0; p < out->topics.v[t].partitions.n; p++)
            out->topics.v[t].partitions.v[p].error_code = errors ? errors[k++] : all;
}

/* txn/markers.h's done: any thread (maybe under a partition's lock). */
static void entry_done(void *ctx, const int16_t *errors)
{
    wtm_entry_t *e = ctx;
    set_errors(e->out, errors, 0);
    entry_over(e->w);
}

/* Fills one entry's result skeleton and its partitions for markers.h;
 * returns how many partitions, or -1 when out of memory. */
static int32_t prepare(sp_req_t *req, const sp_write_txn_markers_request_writable_txn_marker_t *in,
                       sp_write_txn_markers_response_writable_txn_marker_result_t *out,
                       sp_txn_marker_part_t **parts)
{
    int32_t nt = in->topics.n > 0 ? in->topics.n : 0, total = 0;
    out->producer_id = in->producer_id;
    out->topics.n = nt;
    out->topics.v = sp_write_txn_markers_response_writable_txn_marker_topic_result_alloc(&req->arena, nt);
    if (nt && !out->topics.v)
        return -1;
    for (int32_t t = 0; t < nt; t++) {
        const sp_write_txn_markers_request_writable_txn_marker_topic_t *it = &in->topics.v[t];
        int32_t np = it->partition_indexes.n > 0 ? it->partition_indexes.n : 0;
        out->topics.v[t].name = it->name;
        out->topics.v[t].partitions.n = np;
        out->topics.v[t].partitions.v =
            sp_write_txn_markers_response_writable_txn_marker_partition_result_alloc(&req->arena, np);
        if (np && !out->topics.v[t].partitions.v)
            return -1;
        total += np;
    }
    *parts = sp_arena_alloc(&req->arena, sizeof(**parts) * (size_t)(total ? total : 1));
    if (!*parts)
        return -1;
    int32_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const sp_write_txn_markers_request_writable_txn_marker_topic_t *it = &in->topics.v[t];
        for (int32_t p = 0; p < out->topics.v[t].partitions.n; p++, k++) {
            out->topics.v[t].partitions.v[p].partition_index = it->partition_indexes.v[p];
            (*parts)[k].topic = it->name.ptr;
            (*parts)[k].topic_len = it->name.len > 0 ? it->name.len : 0;
            (*parts)[k].partition = it->partition_indexes.v[p];
        }
    }
    return total;
}

void sp_handle_write_txn_markers(sp_req_t *req)
{
    const sp_write_txn_markers_request_t *b = req->r.body;
    int32_t n = b->markers.n > 0 ? b->markers.n : 0;
    wtm_t *w = sp_arena_zalloc(&req->arena, sizeof(*w));
    wtm_entry_t *entries = sp_arena_alloc(&req->arena, sizeof(*entries) * (size_t)(n ? n : 1));
    if (!w || !entries) {
        sp_req_close(req, "out of memory for WriteTxnMarkers");
        return;
    }
    w->req = req;
    sp_write_txn_markers_response_init(&w->resp);
    w->resp.markers.n = n;
    w->resp.markers.v = sp_write_txn_markers_response_writable_txn_marker_result_alloc(&req->arena, n);
    if (n && !w->resp.markers.v) {
        sp_req_close(req, "out of memory for WriteTxnMarkers");
        return;
    }
    atomic_init(&w->left, n + 1);
    sp_req_ref(req); /* dropped by respond_on_worker */
    for (int32_t i = 0; i < n; i++) {
        const sp_write_txn_markers_request_writable_txn_marker_t *in = &b->markers.v[i];
        sp_txn_marker_part_t *parts = NULL;
        int32_t np = prepare(req, in, &w->resp.markers.v[i], &parts);
        entries[i] = (wtm_entry_t){ w, &w->resp.markers.v[i] };
        sp_txn_marker_t m = { .producer_id = in->producer_id,
                              .producer_epoch = in->producer_epoch,
                              .commit = in->transaction_result,
                              .coordinator_epoch = in->coordinator_epoch,
                              .transaction_version = in->transaction_version,
                              .n = np > 0 ? np : 0,
                              .parts = parts };
        if (np < 0 || sp_txn_write_markers(req->broker, &m, entry_done, &entries[i]) != 0) {
            if (np >= 0)
                set_errors(&w->resp.markers.v[i], NULL, SP_ERR_UNKNOWN_SERVER_ERROR);
            else
                w->resp.markers.v[i].topics.n = 0;
            entry_over(w);
        }
    }
    entry_over(w); /* ours: the answer may be posted now */
}
