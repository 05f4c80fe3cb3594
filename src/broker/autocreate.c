/*
 * autocreate.c - auto.create.topics.enable: topics named by a Metadata or
 * Produce request that do not exist are created with num.partitions and
 * default.replication.factor, and the request is handled again once they
 * exist (see sp_autocreate in api.h).
 *
 * Internal topics are not ordinary topics: __consumer_offsets is created
 * the way the group coordinator creates it (offsets.topic.num.partitions,
 * compacted; Kafka's AutoTopicCreationManager does the same), so a client
 * asking for it first cannot give it the wrong shape.  The other internal
 * names (and __cluster_metadata) have no owner here and are not created.
 */
#include "broker/api.h"
#include "broker/ctl.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "group/coordinator.h"
#include "util/hashset.h"
#include "util/log.h"

/* Whether name may be auto-created (and does not exist in img). */
static bool creatable(const sp_image_t *img, sp_str_t name)
{
    if (name.len <= 0 || !sp_topic_name_valid(name.ptr, name.len) || sp_image_topic(img, name.ptr, name.len))
        return false;
    if (sp_str_eq_lit(name, "__cluster_metadata"))
        return false;
    return !sp_topic_is_internal(name.ptr, name.len) || sp_str_eq_lit(name, "__consumer_offsets");
}

typedef struct again {
    sp_ctl_op_t op;
    void (*again)(sp_req_t *req);
} again_t;

static void created(sp_req_t *req, sp_ctl_op_t *op)
{
    again_t *a = (again_t *)op;
    for (int i = 0; i < op->n; i++)
        if (op->topics[i].error && op->topics[i].error != SP_ERR_TOPIC_ALREADY_EXISTS)
            sp_warn("api", "auto-creating topic %.*s failed: %s", (int)op->topics[i].name.len,
                    op->topics[i].name.ptr, sp_kafka_error_name(op->topics[i].error));
    if (!req->answered)
        a->again(req);
}

static bool name_eq(const void *ctx, uint32_t a, uint32_t b)
{
    const sp_str_t *names = ctx;
    return sp_str_eq(names[a], names[b]);
}

bool sp_autocreate(sp_req_t *req, const sp_str_t *names, int n, void (*again)(sp_req_t *req))
{
    const sp_config_t *cfg = req->broker->config;
    if (req->autocreated || !sp_config_bool(cfg, "auto.create.topics.enable"))
        return false;
    sp_image_t *img = sp_image_acquire(req->broker->images);
    int missing = 0;
    for (int i = 0; i < n; i++)
        missing += creatable(img, names[i]);
    if (!missing) {
        sp_image_release(img);
        return false;
    }
    again_t *a = sp_arena_zalloc(&req->arena, sizeof(*a));
    sp_ctl_topic_t *t = a ? sp_arena_zalloc(&req->arena, sizeof(*t) * (size_t)missing) : NULL;
    void *mem = t ? sp_arena_alloc(&req->arena, sp_hashset_mem_size((uint32_t)n)) : NULL;
    if (!mem) {
        sp_image_release(img);
        return false;
    }
    sp_hashset_t seen; /* each name once, in O(n) whatever the request repeats */
    sp_hashset_init(&seen, mem, (uint32_t)n, name_eq, names);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!creatable(img, names[i]))
            continue;
        if (sp_hashset_add(&seen, (uint32_t)i, sp_hash_bytes(names[i].ptr, (size_t)names[i].len)) >= 0)
            continue;
        if (sp_str_eq_lit(names[i], "__consumer_offsets")) {
            if (sp_coordinator_offsets_topic(req->broker->config, &t[k], &req->arena) != 0)
                continue;
        } else {
            t[k].name = names[i];
            t[k].num_partitions = -1;
            t[k].replication_factor = -1;
        }
        k++;
    }
    sp_image_release(img);
    req->autocreated = true;
    a->again = again;
    a->op.kind = SP_CTL_CREATE_TOPICS;
    a->op.n = k;
    a->op.topics = t;
    sp_ctl_submit(req, &a->op, created);
    return true;
}
