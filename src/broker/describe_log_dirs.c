/*
 * describe_log_dirs.c - DescribeLogDirs (key 35), v1-v4.
 *
 * One result per log directory (log/logmgr.h), each listing the
 * partitions whose log lives there: their size on disk (sum of segment
 * sizes), offset_lag 0 (no future replicas: no AlterReplicaLogDirs).
 * topics null means every topic of the metadata image; otherwise the
 * partitions asked for, and topics or partitions this broker does not
 * have are simply absent, as in Kafka.  v4 adds the file system's total
 * and usable bytes (statvfs).  A directory offline after a storage
 * failure (logmgr.h) is reported with KAFKA_STORAGE_ERROR and no
 * partitions, as Kafka reports offline log dirs.
 *
 * A partition's directory is <log dir>/<topic>-<p> (logmgr.h): it belongs
 * to log dir D when its path is D, one '/', then a name without '/'.
 *
 * Synchronous, on the worker thread, from one image.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "cluster/partition.h"
#include "log/logmgr.h"
#include "proto/gen/describe_log_dirs_request.h"
#include "proto/gen/describe_log_dirs_response.h"

typedef sp_describe_log_dirs_request_describable_log_dir_topic_t req_topic_t;
typedef sp_describe_log_dirs_response_describe_log_dirs_result_t result_t;
typedef sp_describe_log_dirs_response_describe_log_dirs_topic_t out_topic_t;
typedef sp_describe_log_dirs_response_describe_log_dirs_partition_t out_part_t;

/* Whether partition directory path is directly inside log dir d. */
static bool in_dir(const char *path, const char *d)
{
    size_t n = strlen(d);
    if (strncmp(path, d, n) != 0 || path[n] != '/')
        return false;
    return path[n + 1] && !strchr(path + n + 1, '/');
}

/* A topic to report and which of its partitions (mask NULL: all). */
typedef struct want {
    const sp_topic_info_t *ti;
    uint8_t *mask;
} want_t;

static int name_cmp(const void *pa, const void *pb)
{
    const req_topic_t *a = *(const req_topic_t *const *)pa, *b = *(const req_topic_t *const *)pb;
    int32_t la = a->topic.len > 0 ? a->topic.len : 0, lb = b->topic.len > 0 ? b->topic.len : 0;
    int32_t m = la < lb ? la : lb;
    int r = m ? memcmp(a->topic.ptr, b->topic.ptr, (size_t)m) : 0;
    return r ? r : (la > lb) - (la < lb);
}

/* The topics the request asks for, each once (a topic named several
 * times asks for the union of its partition lists), in name order;
 * unknown topics and partitions left out.  Returns the count, or -1 on
 * OOM.  Sorting keeps this O(n log n) in the request's size. */
static int32_t wanted_topics(sp_req_t *req, const sp_describe_log_dirs_request_t *body,
                             const sp_image_t *img, want_t **out)
{
    int32_t n = body->topics.n;
    const req_topic_t **order = sp_arena_alloc(&req->arena, sizeof(*order) * (size_t)(n ? n : 1));
    want_t *w = sp_arena_alloc(&req->arena, sizeof(*w) * (size_t)(n ? n : 1));
    if (!order || !w)
        return -1;
    for (int32_t i = 0; i < n; i++)
        order[i] = &body->topics.v[i];
    qsort(order, (size_t)n, sizeof(*order), name_cmp);
    int32_t nw = 0;
    for (int32_t i = 0; i < n;) {
        int32_t j = i + 1;
        while (j < n && name_cmp(&order[i], &order[j]) == 0)
            j++;
        const sp_topic_info_t *ti = sp_image_topic(img, order[i]->topic.ptr, order[i]->topic.len);
        if (ti && ti->npartitions > 0) {
            uint8_t *mask = sp_arena_zalloc(&req->arena, (size_t)ti->npartitions);
            if (!mask)
                return -1;
            for (int32_t k = i; k < j && mask; k++) {
                if (order[k]->partitions.n < 0) {
                    mask = NULL; /* all */
                    break;
                }
                for (int32_t p = 0; p < order[k]->partitions.n; p++) {
                    int32_t idx = order[k]->partitions.v[p];
                    if (idx >= 0 && idx < ti->npartitions)
                        mask[idx] = 1;
                }
            }
            w[nw++] = (want_t){ ti, mask };
        }
        i = j;
    }
    *out = w;
    return nw;
}

/* Adds to out the partitions of w.ti living in dir d that are wanted.
 * Returns 0, or -1 on OOM. */
static int add_topic(sp_req_t *req, want_t w, const char *d, result_t *out, int32_t cap)
{
    const sp_topic_info_t *ti = w.ti;
    out_part_t *parts = NULL;
    int32_t np = 0;
    for (int32_t p = 0; p < ti->npartitions; p++) {
        if (w.mask && !w.mask[p])
            continue;
        sp_partition_t *l = sp_partitions_get(req->broker->partitions, ti->name, (int32_t)strlen(ti->name), p);
        if (!l)
            continue;
        if (in_dir(sp_partition_dir(l), d)) {
            if (!parts) {
                parts = sp_describe_log_dirs_response_describe_log_dirs_partition_alloc(&req->arena,
                                                                                       ti->npartitions);
                if (!parts) {
                    sp_partition_unref(l);
                    return -1;
                }
            }
            parts[np].partition_index = p;
            parts[np].partition_size = sp_partition_size(l);
            parts[np].offset_lag = 0;
            parts[np].is_future_key = false;
            np++;
        }
        sp_partition_unref(l);
    }
    if (np == 0)
        return 0;
    if (out->topics.n >= cap)
        return -1; /* cannot happen: one entry per wanted topic */
    out_topic_t *ot = &out->topics.v[out->topics.n++];
    ot->name = sp_str_c(ti->name);
    ot->partitions.v = parts;
    ot->partitions.n = np;
    return 0;
}

void sp_handle_describe_log_dirs(sp_req_t *req)
{
    const sp_describe_log_dirs_request_t *body = req->r.body;
    int16_t v = req->r.hdr.request_api_version;
    bool all = body->topics.n < 0;
    const char *const *dirs;
    int ndirs = sp_logmgr_dirs(req->broker->logs, &dirs);
    sp_describe_log_dirs_response_t resp;
    sp_describe_log_dirs_response_init(&resp);
    resp.results.v = sp_describe_log_dirs_response_describe_log_dirs_result_alloc(&req->arena, ndirs);
    resp.results.n = resp.results.v ? ndirs : 0;
    if (ndirs > 0 && !resp.results.v)
        goto oom;

    sp_image_t *img = sp_image_acquire(req->broker->images);
    want_t *wants = NULL;
    int32_t nw;
    if (all) {
        nw = img->ntopics;
        wants = sp_arena_alloc(&req->arena, sizeof(*wants) * (size_t)(nw ? nw : 1));
        if (!wants)
            goto oom_img;
        for (int32_t i = 0; i < nw; i++)
            wants[i] = (want_t){ img->topics[i], NULL };
    } else {
        nw = wanted_topics(req, body, img, &wants);
        if (nw < 0)
            goto oom_img;
    }
    for (int d = 0; d < resp.results.n; d++) {
        result_t *out = &resp.results.v[d];
        out->error_code = 0;
        out->log_dir = sp_str_c(dirs[d]);
        out->topics.n = 0;
        if (sp_logmgr_dir_offline(req->broker->logs, d)) {
            /* as Kafka reports an offline log dir: the error, no partitions */
            out->error_code = SP_ERR_KAFKA_STORAGE_ERROR;
            continue;
        }
        if (nw > 0) {
            out->topics.v = sp_describe_log_dirs_response_describe_log_dirs_topic_alloc(&req->arena, nw);
            if (!out->topics.v)
                goto oom_img;
        }
        for (int32_t i = 0; i < nw; i++)
            if (add_topic(req, wants[i], dirs[d], out, nw) != 0)
                goto oom_img;
        if (v >= 4) {
            struct statvfs st;
            if (statvfs(dirs[d], &st) == 0) {
                out->total_bytes = (int64_t)st.f_blocks * (int64_t)st.f_frsize;
                out->usable_bytes = (int64_t)st.f_bavail * (int64_t)st.f_frsize;
            }
        }
    }
    sp_req_respond(req, &resp); /* encodes now: the image may go after */
    sp_image_release(img);
    return;
oom_img:
    sp_image_release(img);
oom:
    sp_req_close(req, "out of memory for DescribeLogDirs");
}
