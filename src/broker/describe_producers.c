/*
 * describe_producers.c - DescribeProducers (key 61), v0: the producers a
 * partition knows (txn/producer_state.h), as Kafka's
 * ReplicaManager.activeProducerState lists them: id, epoch, last sequence
 * (-1 when no batch of the current epoch is kept), last timestamp,
 * coordinator epoch and the first offset of the open transaction (-1).
 * A topic the metadata does not know is UNKNOWN_TOPIC_OR_PARTITION with
 * the error's default text, a partition this broker does not have the
 * same code without text (Kafka 4.3: the first is KafkaApis' answer, the
 * second ReplicaManager's).  Producers come in no particular order (a
 * hash map's, as Kafka's).
 *
 * Synchronous, on the worker thread.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "cluster/partition.h"
#include "proto/gen/describe_producers_request.h"
#include "proto/gen/describe_producers_response.h"
#include "proto/gen/errors.h"
#include "txn/producer_state.h"

typedef sp_describe_producers_response_producer_state_t out_state_t;

/* The producers of one partition, gathered under its lock (malloc'd). */
typedef struct gather {
    out_state_t *v;
    int32_t n, cap;
    bool oom;
} gather_t;

static void gather_one(const sp_pentry_t *e, void *ctx)
{
    gather_t *g = ctx;
    if (g->n == g->cap) {
        int32_t cap = g->cap ? g->cap * 2 : 8;
        out_state_t *nv = realloc(g->v, sizeof(*nv) * (size_t)cap);
        if (!nv) {
            g->oom = true;
            return;
        }
        g->v = nv;
        g->cap = cap;
    }
    out_state_t *o = &g->v[g->n++];
    memset(o, 0, sizeof(*o));
    o->producer_id = e->producer_id;
    o->producer_epoch = e->epoch;
    o->last_sequence = e->nbatches ? e->batches[e->nbatches - 1].last_seq : -1;
    o->last_timestamp = e->last_timestamp;
    o->coordinator_epoch = e->coordinator_epoch;
    o->current_txn_start_offset = e->txn_first_offset;
}

/* Fills one partition's answer.  0, or -1 when out of memory. */
static int describe_partition(sp_req_t *req, const sp_image_t *img, sp_str_t topic, int32_t index,
                              sp_describe_producers_response_partition_response_t *out)
{
    out->partition_index = index;
    out->active_producers.n = 0;
    bool known = topic.len > 0 && sp_image_topic(img, topic.ptr, topic.len) != NULL;
    sp_partition_t *p = known ? sp_partitions_get(req->broker->partitions, topic.ptr, topic.len, index) : NULL;
    if (!p) {
        out->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        if (!known)
            out->error_message = sp_str_c("This server does not host this topic-partition.");
        return 0;
    }
    gather_t g = { 0 };
    sp_partition_producers(p, gather_one, &g);
    sp_partition_unref(p);
    int rc = 0;
    if (g.oom) {
        rc = -1;
    } else if (g.n > 0) {
        out->active_producers.v = sp_describe_producers_response_producer_state_alloc(&req->arena, g.n);
        if (out->active_producers.v) {
            memcpy(out->active_producers.v, g.v, sizeof(*g.v) * (size_t)g.n);
            out->active_producers.n = g.n;
        } else {
            rc = -1;
        }
    }
    free(g.v);
    return rc;
}

void sp_handle_describe_producers(sp_req_t *req)
{
    const sp_describe_producers_request_t *body = req->r.body;
    sp_describe_producers_response_t resp;
    sp_describe_producers_response_init(&resp);
    int32_t nt = body->topics.n > 0 ? body->topics.n : 0;
    resp.topics.v = sp_describe_producers_response_topic_response_alloc(&req->arena, nt);
    if (nt > 0 && !resp.topics.v)
        goto oom;
    resp.topics.n = nt;
    sp_image_t *img = sp_image_acquire(req->broker->images);
    for (int32_t t = 0; t < nt; t++) {
        const sp_describe_producers_request_topic_request_t *in = &body->topics.v[t];
        sp_describe_producers_response_topic_response_t *out = &resp.topics.v[t];
        int32_t np = in->partition_indexes.n > 0 ? in->partition_indexes.n : 0;
        out->name = in->name;
        out->partitions.v = sp_describe_producers_response_partition_response_alloc(&req->arena, np);
        if (np > 0 && !out->partitions.v)
            goto oom_img;
        out->partitions.n = np;
        for (int32_t i = 0; i < np; i++)
            if (describe_partition(req, img, in->name, in->partition_indexes.v[i], &out->partitions.v[i]) != 0)
                goto oom_img;
    }
    sp_image_release(img);
    sp_req_respond(req, &resp);
    return;
oom_img:
    sp_image_release(img);
oom:
    sp_req_close(req, "out of memory for DescribeProducers");
}
