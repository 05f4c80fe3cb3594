/*
 * list_offsets.c - ListOffsets (key 2), v1-v10.
 *
 * timestamp -1 latest (the high watermark; the last stable offset for
 * read_committed, the same here without transactions), -2 earliest (log
 * start), -3 the first record with the largest timestamp (v7+), -4 earliest
 * local (v8+, = log start without tiered storage), -5 latest tiered (v9+:
 * none, so -1); a timestamp >= 0 finds the first record at or after it
 * through the time index (offset -1 if there is none).
 */
#include "broker/api.h"
#include "log/logmgr.h"
#include "proto/gen/list_offsets_request.h"
#include "proto/gen/list_offsets_response.h"

void sp_handle_list_offsets(sp_req_t *req)
{
    const sp_list_offsets_request_t *body = req->r.body;
    sp_list_offsets_response_t resp;
    int32_t nt = body->topics.n > 0 ? body->topics.n : 0;

    sp_list_offsets_response_init(&resp);
    resp.topics.v = sp_list_offsets_response_list_offsets_topic_response_alloc(&req->arena, nt);
    resp.topics.n = resp.topics.v ? nt : 0;
    for (int32_t t = 0; t < resp.topics.n; t++) {
        const sp_list_offsets_request_list_offsets_topic_t *rt = &body->topics.v[t];
        sp_list_offsets_response_list_offsets_topic_response_t *to = &resp.topics.v[t];
        int32_t np = rt->partitions.n > 0 ? rt->partitions.n : 0;
        to->name = rt->name;
        to->partitions.v = sp_list_offsets_response_list_offsets_partition_response_alloc(&req->arena, np);
        to->partitions.n = to->partitions.v ? np : 0;
        for (int32_t p = 0; p < to->partitions.n; p++) {
            const sp_list_offsets_request_list_offsets_partition_t *rp = &rt->partitions.v[p];
            sp_list_offsets_response_list_offsets_partition_response_t *po = &to->partitions.v[p];
            po->partition_index = rp->partition_index;
            po->timestamp = -1;
            po->offset = -1;
            po->leader_epoch = -1;
            if (rp->current_leader_epoch > 0) { /* ours is 0 on a single node */
                po->error_code = SP_ERR_UNKNOWN_LEADER_EPOCH;
                continue;
            }
            sp_plog_t *log = sp_logmgr_get(rt->name.ptr, rt->name.len, rp->partition_index);
            if (!log) {
                po->error_code = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            po->leader_epoch = 0;
            sp_log_offsets_t lo;
            sp_plog_offsets(log, &lo);
            int64_t hw = lo.hw, start = lo.log_start;
            if (lo.failed) {
                po->error_code = SP_ERR_KAFKA_STORAGE_ERROR;
                sp_plog_unref(log);
                continue;
            }
            switch (rp->timestamp) {
            case -1:
                po->offset = hw;
                break;
            case -2:
            case -4:
                po->offset = start;
                break;
            case -3: {
                /* The segments know the batch holding the largest
                 * timestamp (its last offset, as Kafka's time index);
                 * Kafka answers the first record of that batch with that
                 * timestamp (RecordBatch.offsetOfMaxTimestamp), which is
                 * the first record of the log at or after it. */
                int64_t off, ts, first = -1, first_ts = -1;
                sp_plog_max_timestamp(log, &off, &ts);
                if (off >= 0) {
                    po->error_code = (int16_t)sp_plog_offset_for_time(log, ts, &first, &first_ts);
                    if (po->error_code == 0 && first >= 0 && first <= off)
                        off = first;
                }
                po->offset = po->error_code ? -1 : off;
                po->timestamp = po->error_code ? -1 : ts;
                break;
            }
            case -5:
                break;
            default:
                if (rp->timestamp < 0) {
                    po->error_code = SP_ERR_INVALID_REQUEST;
                } else {
                    int64_t off, ts;
                    po->error_code = (int16_t)sp_plog_offset_for_time(log, rp->timestamp, &off, &ts);
                    po->offset = off;
                    po->timestamp = ts;
                }
            }
            sp_plog_unref(log);
        }
    }
    sp_req_respond(req, &resp);
}
