/*
 * describe_topic_partitions.c - DescribeTopicPartitions (key 75), v0
 * (KIP-966).
 *
 * What Kafka 4's admin client (describeTopics) and kafka-topics --describe
 * ask first; without it they fall back to Metadata, which has no ELR
 * fields (the tool then prints "Elr: N/A").  Answered at once from one
 * image, as Kafka's DescribeTopicPartitionsRequestHandler and
 * KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse do:
 *
 *   - the topics: every topic when none is named, else the named ones,
 *     each once; only those at or after the cursor's topic name; in name
 *     order (byte order, as String.compareTo for topic names);
 *   - a cursor must have a partition >= 0 and name one of those topics:
 *     otherwise every named topic (as sent; none when all were asked for)
 *     is answered INVALID_REQUEST with no partitions (Kafka's error
 *     response);
 *   - at most min(response_partition_limit, 2000) partitions, at least 1
 *     (Kafka's max.request.partition.size.limit): the cursor's topic
 *     starts at the cursor's partition, the others at 0; a topic cut short
 *     sets next_cursor to its next partition and ends the answer; a topic
 *     reached with nothing left sets next_cursor to (it, 0);
 *   - a named topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION, or
 *     INVALID_TOPIC_EXCEPTION for an invalid name, zero id, no partitions
 *     (left out when all topics are listed);
 *   - each partition: leader, leader epoch, replicas, ISR; ELR and last
 *     known ELR empty (a single node elects no other leader), no offline
 *     replicas; authorized operations (on every topic answered, found or
 *     not, as Kafka): all of a topic's (no authorizer).
 */
#include <stdlib.h>
#include <string.h>

#include "broker/api.h"
#include "cluster/image.h"
#include "cluster/names.h"
#include "proto/gen/describe_topic_partitions_request.h"
#include "proto/gen/describe_topic_partitions_response.h"

#define MAX_PARTITIONS 2000   /* Kafka's max.request.partition.size.limit */

typedef sp_describe_topic_partitions_response_topic_t topic_t;
typedef sp_describe_topic_partitions_response_partition_t part_t;

static int cmp_name(const sp_str_t *a, const sp_str_t *b)
{
    int32_t n = a->len < b->len ? a->len : b->len;
    int c = n > 0 ? memcmp(a->ptr, b->ptr, (size_t)n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int cmp_name_q(const void *a, const void *b)
{
    return cmp_name(a, b);
}

static void fill_partitions(sp_req_t *req, topic_t *out, const sp_topic_info_t *t, int32_t from, int32_t upto)
{
    static int32_t none[1];
    int32_t n = upto > from ? upto - from : 0;
    out->partitions.v = n ? sp_describe_topic_partitions_response_partition_alloc(&req->arena, n) : NULL;
    out->partitions.n = out->partitions.v ? n : 0;
    for (int32_t i = 0; i < out->partitions.n; i++) {
        const sp_partition_info_t *pi = &t->partitions[from + i];
        part_t *po = &out->partitions.v[i];
        po->partition_index = pi->index;
        po->leader_id = pi->leader;
        po->leader_epoch = pi->leader_epoch;
        po->replica_nodes.v = pi->replicas;
        po->replica_nodes.n = pi->nreplicas;
        po->isr_nodes.v = pi->isr;
        po->isr_nodes.n = pi->nisr;
        po->eligible_leader_replicas.v = none;
        po->eligible_leader_replicas.n = 0;
        po->last_known_elr.v = none;
        po->last_known_elr.n = 0;
        po->offline_replicas.v = none;
        po->offline_replicas.n = 0;
    }
}

/* Every requested topic, as sent, with 'error' and nothing else. */
static void answer_error(sp_req_t *req, const sp_describe_topic_partitions_request_t *body, int16_t error)
{
    sp_describe_topic_partitions_response_t resp;
    sp_describe_topic_partitions_response_init(&resp);
    int32_t n = body->topics.n > 0 ? body->topics.n : 0;
    resp.topics.v = sp_describe_topic_partitions_response_topic_alloc(&req->arena, n);
    resp.topics.n = resp.topics.v ? n : 0;
    for (int32_t i = 0; i < resp.topics.n; i++) {
        resp.topics.v[i].name = body->topics.v[i].name;
        resp.topics.v[i].error_code = error;
        resp.topics.v[i].partitions.n = 0;
    }
    sp_req_respond(req, &resp);
}

void sp_handle_describe_topic_partitions(sp_req_t *req)
{
    const sp_describe_topic_partitions_request_t *body = req->r.body;
    bool all = body->topics.n <= 0;
    bool cursor = !body->cursor_is_null;
    sp_str_t from_name = cursor ? body->cursor.topic_name : sp_str_lit("");
    if (from_name.len < 0)
        from_name = sp_str_lit("");
    if (cursor && body->cursor.partition_index < 0) {
        answer_error(req, body, SP_ERR_INVALID_REQUEST);
        return;
    }
    sp_image_t *img = sp_image_acquire(req->broker->images);

    /* The names to describe, sorted, each once, none before the cursor. */
    int32_t cap = all ? img->ntopics : body->topics.n;
    sp_str_t *names = cap > 0 ? sp_arena_alloc(&req->arena, sizeof(sp_str_t) * (size_t)cap) : NULL;
    int32_t n = 0;
    if (cap > 0 && !names) {
        sp_image_release(img);
        sp_req_close(req, "out of memory for DescribeTopicPartitions");
        return;
    }
    for (int32_t i = 0; i < cap; i++) {
        sp_str_t s = all ? sp_str_c(img->topics[i]->name) : body->topics.v[i].name;
        if (s.len >= 0 && cmp_name(&s, &from_name) >= 0)
            names[n++] = s;
    }
    if (!all && n > 1) {
        qsort(names, (size_t)n, sizeof(sp_str_t), cmp_name_q);
        int32_t k = 1;
        for (int32_t i = 1; i < n; i++)
            if (cmp_name(&names[i], &names[k - 1]) != 0)
                names[k++] = names[i];
        n = k;
    }
    if (cursor) {
        bool found = false;
        for (int32_t i = 0; i < n && !found; i++)
            found = cmp_name(&names[i], &from_name) == 0;
        if (!found) {
            sp_image_release(img);
            answer_error(req, body, SP_ERR_INVALID_REQUEST);
            return;
        }
    }

    sp_describe_topic_partitions_response_t resp;
    sp_describe_topic_partitions_response_init(&resp);
    resp.topics.v = n ? sp_describe_topic_partitions_response_topic_alloc(&req->arena, n) : NULL;
    resp.topics.n = 0;
    if (n && !resp.topics.v) {
        sp_image_release(img);
        sp_req_close(req, "out of memory for DescribeTopicPartitions");
        return;
    }
    int32_t limit = body->response_partition_limit < MAX_PARTITIONS ? body->response_partition_limit
                                                                      : MAX_PARTITIONS;
    int32_t remaining = limit < 1 ? 1 : limit;
    for (int32_t i = 0; i < n; i++) {
        if (remaining == 0) {
            resp.next_cursor_is_null = false;
            resp.next_cursor.topic_name = names[i];
            resp.next_cursor.partition_index = 0;
            break;
        }
        const sp_topic_info_t *t = sp_image_topic(img, names[i].ptr, names[i].len);
        topic_t *out = &resp.topics.v[resp.topics.n];
        if (!t) {
            if (all)
                continue;
            out->name = names[i];
            out->error_code = sp_topic_name_valid(names[i].ptr, names[i].len)
                                  ? SP_ERR_UNKNOWN_TOPIC_OR_PARTITION
                                  : SP_ERR_INVALID_TOPIC_EXCEPTION;
            out->is_internal = sp_topic_is_internal(names[i].ptr, names[i].len);
            out->topic_authorized_operations = SP_TOPIC_AUTHORIZED_OPS; /* as Kafka, on every topic */
            out->partitions.n = 0;
            resp.topics.n++;
            continue;
        }
        int32_t start = cursor && cmp_name(&names[i], &from_name) == 0 ? body->cursor.partition_index : 0;
        int64_t end = (int64_t)start + remaining;
        int32_t upto = end < t->npartitions ? (int32_t)end : t->npartitions;
        out->name = sp_str_c(t->name);
        out->topic_id = t->id;
        out->is_internal = t->internal;
        out->topic_authorized_operations = SP_TOPIC_AUTHORIZED_OPS;
        fill_partitions(req, out, t, start, upto);
        resp.topics.n++;
        if (upto < t->npartitions) {
            resp.next_cursor_is_null = false;
            resp.next_cursor.topic_name = out->name;
            resp.next_cursor.partition_index = upto;
            break;
        }
        remaining -= out->partitions.n;
    }
    sp_req_respond(req, &resp); /* encodes now: the image may go after */
    sp_image_release(img);
}
