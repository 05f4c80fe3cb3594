/*
 * create_partitions.c - CreatePartitions (key 37), v0-v3.
 *
 * Raises topics' partition counts through one metadata operation
 * (cluster/controller.h): the new partitions' records are written to the
 * metadata log and fsynced, their logs are created, then the new image is
 * published.  The controller answers Kafka's errors: UNKNOWN_TOPIC_OR_PARTITION,
 * INVALID_PARTITIONS (the count is not higher than the current one),
 * INVALID_REPLICA_ASSIGNMENT (assignment count or unknown broker).
 *
 * Checked here first, as Kafka does, without the controller:
 *   - a topic named twice in the request: INVALID_REQUEST, answered once
 *     at its first appearance (Kafka's answers are keyed by name);
 *   - an assignment that is empty, names a broker twice, or does not have
 *     the topic's replication factor: INVALID_REPLICA_ASSIGNMENT;
 *   - an internal topic (cluster/names.h): INVALID_REQUEST.  A group's
 *     records live in partition hash(group) % N of __consumer_offsets, so a
 *     new N would strand every group.  (Kafka refuses it only in its
 *     kafka-topics tool; its broker accepts.)
 * Each assignment is the broker list of one new partition, in order.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "broker/ctl.h"
#include "cluster/controller.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "proto/gen/create_partitions_request.h"
#include "proto/gen/create_partitions_response.h"

typedef sp_create_partitions_request_create_partitions_topic_t topic_t;

static sp_str_t opt(const char *s)
{
    return s ? sp_str_c(s) : SP_STR_NULL;
}

static const char *fmt_msg(sp_arena_t *a, const char *fallback, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *fmt_msg(sp_arena_t *a, const char *fallback, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return fallback;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    char *m = sp_arena_strdup(a, buf, (size_t)n);
    return m ? m : fallback;
}

/* Name with request index, for duplicate detection by sorting. */
typedef struct named {
    sp_str_t name;
    int32_t idx;
} named_t;

static int name_cmp_name(const named_t *a, const named_t *b)
{
    int32_t la = a->name.len > 0 ? a->name.len : 0, lb = b->name.len > 0 ? b->name.len : 0;
    int32_t m = la < lb ? la : lb;
    int r = m ? memcmp(a->name.ptr, b->name.ptr, (size_t)m) : 0;
    if (r)
        return r;
    return (la > lb) - (la < lb);
}

/* By name, then by place in the request (qsort is not stable). */
static int name_cmp(const void *pa, const void *pb)
{
    const named_t *a = pa, *b = pb;
    int r = name_cmp_name(a, b);
    return r ? r : (a->idx > b->idx) - (a->idx < b->idx);
}

static int int_cmp(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

static void create_partitions_done(sp_req_t *req, sp_ctl_op_t *op)
{
    sp_create_partitions_response_t resp;
    sp_create_partitions_response_init(&resp);
    resp.results.v = sp_create_partitions_response_create_partitions_topic_result_alloc(&req->arena, op->n);
    resp.results.n = resp.results.v ? op->n : 0;
    for (int i = 0; i < resp.results.n; i++) {
        const sp_ctl_topic_t *t = &op->topics[i];
        resp.results.v[i].name = t->name;
        resp.results.v[i].error_code = t->error;
        resp.results.v[i].error_message = opt(t->message);
    }
    sp_req_respond(req, &resp);
}

/* Checks the manual assignments of request topic ct against its current
 * replication factor rf (-1: topic unknown, leave it to the controller).
 * Sets t->error/message on a bad one.  'scratch' holds at least the
 * largest broker list.  */
static void check_assignments(sp_arena_t *a, const topic_t *ct, int32_t rf, sp_ctl_topic_t *t,
                              int32_t *scratch)
{
    for (int32_t k = 0; k < ct->assignments.n; k++) {
        int32_t nb = ct->assignments.v[k].broker_ids.n;
        const int32_t *b = ct->assignments.v[k].broker_ids.v;
        if (nb <= 0) {
            t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
            t->message = "Replica assignment of a new partition is empty.";
            return;
        }
        memcpy(scratch, b, sizeof(int32_t) * (size_t)nb);
        qsort(scratch, (size_t)nb, sizeof(int32_t), int_cmp);
        for (int32_t r = 1; r < nb; r++)
            if (scratch[r] == scratch[r - 1]) {
                t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
                t->message = fmt_msg(a, "Duplicate brokers not allowed in replica assignment",
                                     "Duplicate brokers not allowed in replica assignment: broker %d is "
                                     "listed twice for new partition %d.",
                                     (int)scratch[r], (int)k);
                return;
            }
        if (rf > 0 && nb != rf) {
            t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
            t->message = fmt_msg(a, "Inconsistent replication factor",
                                 "Inconsistent replication factor: the topic has %d replicas per "
                                 "partition, but new partition %d is assigned %d.",
                                 (int)rf, (int)k, (int)nb);
            return;
        }
    }
}

void sp_handle_create_partitions(sp_req_t *req)
{
    const sp_create_partitions_request_t *body = req->r.body;
    sp_arena_t *a = &req->arena;
    int n = body->topics.n > 0 ? (int)body->topics.n : 0;
    size_t cnt = (size_t)(n ? n : 1);
    sp_ctl_op_t *op = sp_arena_zalloc(a, sizeof(*op));
    sp_ctl_topic_t *t = sp_arena_zalloc(a, sizeof(*t) * cnt);
    named_t *names = sp_arena_alloc(a, sizeof(*names) * cnt);
    if (!op || !t || !names) {
        sp_req_close(req, "out of memory for CreatePartitions");
        return;
    }
    /* duplicates, by sorting (a request may name very many topics): a
     * topic named twice is answered once, at its first appearance (Kafka's
     * answers are keyed by name) */
    int *keep = sp_arena_alloc(a, sizeof(int) * cnt);
    uint8_t *dup = sp_arena_zalloc(a, cnt); /* 1: named again, 2: a later appearance */
    if (!keep || !dup) {
        sp_req_close(req, "out of memory for CreatePartitions");
        return;
    }
    for (int i = 0; i < n; i++)
        names[i] = (named_t){ body->topics.v[i].name, i };
    qsort(names, (size_t)n, sizeof(*names), name_cmp); /* by name, then index */
    for (int i = 1; i < n; i++)
        if (name_cmp_name(&names[i - 1], &names[i]) == 0) {
            if (!dup[names[i - 1].idx])
                dup[names[i - 1].idx] = 1;
            dup[names[i].idx] = 2;
        }
    int nreq = n;
    n = 0;
    for (int j = 0; j < nreq; j++)
        if (dup[j] != 2)
            keep[n++] = j;

    int32_t maxb = 0;
    for (int i = 0; i < n; i++)
        for (int32_t k = 0; k < body->topics.v[i].assignments.n; k++)
            if (body->topics.v[i].assignments.v[k].broker_ids.n > maxb)
                maxb = body->topics.v[i].assignments.v[k].broker_ids.n;
    int32_t *scratch = sp_arena_alloc(a, sizeof(int32_t) * (size_t)(maxb ? maxb : 1));
    if (!scratch) {
        sp_req_close(req, "out of memory for CreatePartitions");
        return;
    }

    sp_image_t *img = sp_image_acquire(req->broker->images);
    for (int i = 0; i < n; i++) {
        const topic_t *ct = &body->topics.v[keep[i]];
        t[i].name = ct->name;
        t[i].num_partitions = ct->count;
        t[i].replication_factor = -1;
        if (dup[keep[i]]) {
            t[i].error = SP_ERR_INVALID_REQUEST;
            t[i].message = "Duplicate topic name.";
            continue;
        }
        if (sp_topic_is_internal(ct->name.ptr, ct->name.len)) {
            t[i].error = SP_ERR_INVALID_REQUEST;
            t[i].message = fmt_msg(a, "Changing the partitions of an internal topic is prohibited.",
                                   "Changing the number of partitions of internal topic %.*s is prohibited.",
                                   (int)ct->name.len, ct->name.ptr);
            continue;
        }
        int32_t na = ct->assignments.n > 0 ? ct->assignments.n : 0;
        if (na == 0)
            continue;
        const sp_topic_info_t *ti = sp_image_topic(img, ct->name.ptr, ct->name.len);
        int32_t rf = ti && ti->npartitions > 0 ? ti->partitions[0].nreplicas : -1;
        check_assignments(a, ct, rf, &t[i], scratch);
        if (t[i].error)
            continue;
        t[i].nassign = na;
        t[i].assign_index = sp_arena_alloc(a, sizeof(int32_t) * (size_t)na);
        t[i].assign_nbrokers = sp_arena_alloc(a, sizeof(int32_t) * (size_t)na);
        t[i].assign_brokers = sp_arena_alloc(a, sizeof(int32_t *) * (size_t)na);
        if (!t[i].assign_index || !t[i].assign_nbrokers || !t[i].assign_brokers) {
            sp_image_release(img);
            sp_req_close(req, "out of memory for CreatePartitions");
            return;
        }
        for (int32_t k = 0; k < na; k++) {
            t[i].assign_index[k] = k;
            t[i].assign_nbrokers[k] = ct->assignments.v[k].broker_ids.n;
            t[i].assign_brokers[k] = ct->assignments.v[k].broker_ids.v;
        }
    }
    sp_image_release(img);

    op->kind = SP_CTL_CREATE_PARTITIONS;
    op->validate_only = body->validate_only;
    op->n = n;
    op->topics = t;
    if (n == 0)
        create_partitions_done(req, op);
    else
        sp_ctl_submit(req, op, create_partitions_done);
}
