/*
 * delete_records.c - DeleteRecords (key 21), v0-v2.
 *
 * Moves the log start offset of each partition asked for
 * (log/plog.h: sp_plog_delete_records) and answers the new low watermark.
 * Offset -1 means "up to the high watermark"; an offset above the high
 * watermark (or below -1) is OFFSET_OUT_OF_RANGE.  Whole segments below
 * the new start are deleted at once; the start itself is checkpointed by
 * the flush thread.
 *
 * A topic whose cleanup.policy lacks "delete" answers POLICY_VIOLATION, as
 * Kafka does.  Only partitions of topics in the metadata image are served, so internal
 * logs that are not topics (the metadata log) can never be trimmed here.
 * Synchronous, on the worker thread: no metadata change is involved.
 */
#include <string.h>

#include "broker/api.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/partition.h"
#include "cluster/topic_config.h"
#include "proto/gen/delete_records_request.h"
#include "proto/gen/delete_records_response.h"

/* The new log start of one partition, or -1 with *err set. */
static int64_t delete_one(const sp_broker_t *b, const sp_image_t *img, sp_str_t topic, int32_t partition,
                          int64_t offset, int16_t *err)
{
    const sp_topic_info_t *ti = sp_image_topic(img, topic.ptr, topic.len);
    *err = 0;
    if (!ti || partition < 0 || partition >= ti->npartitions) {
        *err = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return -1;
    }
    int src;
    const char *policy = sp_topic_config_value(sp_topic_key("cleanup.policy", 14), ti->nconfigs, ti->ckeys,
                                               ti->cvalues, img, b->config, &src);
    if (policy && !strstr(policy, "delete")) {
        *err = SP_ERR_POLICY_VIOLATION; /* as Kafka: compact-only topics keep their records */
        return -1;
    }
    sp_partition_t *p = sp_partitions_get(b->partitions, topic.ptr, topic.len, partition);
    if (!p) {
        *err = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return -1;
    }
    int64_t start = -1;
    int16_t rc = sp_partition_delete_records(p, offset, &start);
    sp_partition_unref(p);
    if (rc != 0) {
        *err = rc;
        return -1;
    }
    return start;
}

void sp_handle_delete_records(sp_req_t *req)
{
    const sp_delete_records_request_t *body = req->r.body;
    sp_delete_records_response_t resp;
    sp_delete_records_response_init(&resp);
    int32_t nt = body->topics.n > 0 ? body->topics.n : 0;
    resp.topics.v = sp_delete_records_response_delete_records_topic_result_alloc(&req->arena, nt);
    resp.topics.n = resp.topics.v ? nt : 0;
    if (nt > 0 && !resp.topics.v) {
        sp_req_close(req, "out of memory for DeleteRecords");
        return;
    }
    sp_image_t *img = sp_image_acquire(req->broker->images);
    for (int32_t i = 0; i < resp.topics.n; i++) {
        const sp_delete_records_request_delete_records_topic_t *rt = &body->topics.v[i];
        sp_delete_records_response_delete_records_topic_result_t *ot = &resp.topics.v[i];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        ot->name = rt->name;
        ot->partitions.v = sp_delete_records_response_delete_records_partition_result_alloc(&req->arena, np);
        ot->partitions.n = ot->partitions.v ? np : 0;
        if (np > 0 && !ot->partitions.v) {
            sp_image_release(img);
            sp_req_close(req, "out of memory for DeleteRecords");
            return;
        }
        for (int32_t p = 0; p < np; p++) {
            const sp_delete_records_request_delete_records_partition_t *rp = &rt->partitions.v[p];
            sp_delete_records_response_delete_records_partition_result_t *op = &ot->partitions.v[p];
            op->partition_index = rp->partition_index;
            op->low_watermark = delete_one(req->broker, img, rt->name, rp->partition_index, rp->offset, &op->error_code);
        }
    }
    sp_image_release(img);
    sp_req_respond(req, &resp);
}
