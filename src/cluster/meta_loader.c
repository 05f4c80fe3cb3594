/* meta_loader.c - metadata records into an image (see meta_loader.h). */
#include "cluster/meta_loader.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster/names.h"
#include "proto/gen/config_record.h"
#include "proto/gen/partition_record.h"
#include "proto/gen/producer_ids_record.h"
#include "proto/gen/remove_topic_record.h"
#include "proto/gen/topic_record.h"
#include "proto/request.h"
#include "proto/wire.h"

#define RES_TOPIC 2  /* ConfigResource type TOPIC */
#define RES_BROKER 4 /* ConfigResource type BROKER */

int sp_meta_loader_init(sp_meta_loader_t *ld, int32_t node_id)
{
    ld->node_id = node_id;
    ld->topic = sp_msg_desc_named("TopicRecord");
    ld->partition = sp_msg_desc_named("PartitionRecord");
    ld->config = sp_msg_desc_named("ConfigRecord");
    ld->remove_topic = sp_msg_desc_named("RemoveTopicRecord");
    ld->producer_ids = sp_msg_desc_named("ProducerIdsRecord");
    return ld->topic && ld->partition && ld->config && ld->remove_topic && ld->producer_ids ? 0 : -1;
}

const sp_msg_desc_t *sp_meta_loader_desc(const sp_meta_loader_t *ld, int type)
{
    switch (type) {
    case SP_META_TOPIC: return ld->topic;
    case SP_META_PARTITION: return ld->partition;
    case SP_META_CONFIG: return ld->config;
    case SP_META_REMOVE_TOPIC: return ld->remove_topic;
    case SP_META_PRODUCER_IDS: return ld->producer_ids;
    default: return NULL;
    }
}

/* The scope of a broker ConfigRecord's resource name: true with
 * *is_default for "" (cluster default) or this node's id in decimal, false
 * for another broker's. */
static bool broker_scope(const sp_meta_loader_t *ld, sp_str_t name, bool *is_default)
{
    char self[16];
    if (name.len <= 0) {
        *is_default = true;
        return true;
    }
    snprintf(self, sizeof(self), "%" PRId32, ld->node_id);
    *is_default = false;
    return sp_str_eq_lit(name, self);
}

int sp_meta_loader_apply_record(const sp_meta_loader_t *ld, sp_image_t *img, int type, const void *rec)
{
    switch (type) {
    case SP_META_TOPIC: {
        const sp_topic_record_t *t = rec;
        /* the controller writes only legal names; the image's order (and
         * every lookup) relies on it: a name with a NUL sorted apart
         * (fuzz_metadata found it) */
        if (!sp_topic_name_valid(t->name.ptr, t->name.len))
            return -1;
        return sp_image_add_topic(img, t->name.ptr, t->name.len, t->topic_id);
    }
    case SP_META_PARTITION: {
        const sp_partition_record_t *p = rec;
        if (p->partition_id < 0 || p->partition_id >= SP_META_MAX_PARTITION)
            return -1; /* the controller never writes one: not ours to size an array by */
        sp_partition_info_t pi;
        memset(&pi, 0, sizeof(pi));
        pi.index = p->partition_id;
        pi.leader = p->leader;
        pi.leader_epoch = p->leader_epoch;
        pi.partition_epoch = p->partition_epoch;
        pi.replicas = p->replicas.v;
        pi.nreplicas = p->replicas.n > 0 ? p->replicas.n : 0;
        pi.isr = p->isr.v;
        pi.nisr = p->isr.n > 0 ? p->isr.n : 0;
        return sp_image_set_partition(img, p->topic_id, &pi);
    }
    case SP_META_CONFIG: {
        const sp_config_record_t *c = rec;
        bool def;
        /* keys and values are kept as C strings: one with a NUL would
         * collide with its prefix (fuzz_metadata found two keys "clea\0..."
         * kept apart as bytes and equal as strings); the controller writes
         * only known keys */
        if (c->name.len <= 0 || memchr(c->name.ptr, 0, (size_t)c->name.len) ||
            (c->value.len > 0 && memchr(c->value.ptr, 0, (size_t)c->value.len)))
            return -1;
        if (c->resource_type == RES_BROKER) {
            if (!broker_scope(ld, c->resource_name, &def))
                return 0; /* another broker's config */
            return sp_image_set_broker_config(img, def, c->name.ptr, c->name.len,
                                              c->value.len >= 0 ? c->value.ptr : NULL, c->value.len);
        }
        if (c->resource_type != RES_TOPIC)
            return 0; /* other resource types are not kept */
        return sp_image_set_topic_config(img, c->resource_name.ptr, c->resource_name.len,
                                         c->name.ptr, c->name.len,
                                         c->value.len >= 0 ? c->value.ptr : NULL, c->value.len);
    }
    case SP_META_REMOVE_TOPIC: {
        const sp_remove_topic_record_t *r = rec;
        return sp_image_remove_topic(img, r->topic_id);
    }
    case SP_META_PRODUCER_IDS: {
        /* a block granted to some broker: the ids below NextProducerId
         * are taken, whoever took them (BrokerId and BrokerEpoch are the
         * grantee's, not needed to rebuild the image) */
        const sp_producer_ids_record_t *p = rec;
        return sp_image_set_next_producer_id(img, p->next_producer_id);
    }
    default:
        return 0; /* records this broker does not use yet are skipped */
    }
}

int sp_meta_loader_apply(const sp_meta_loader_t *ld, sp_image_t *img, const uint8_t *v, int32_t len)
{
    if (len < 0)
        return -1;
    sp_reader_t r = sp_reader(v, (size_t)len);
    uint32_t frame = sp_read_uvarint(&r);
    uint32_t type = sp_read_uvarint(&r);
    uint32_t version = sp_read_uvarint(&r);
    if (!sp_reader_ok(&r) || frame != 1)
        return -1;
    const sp_msg_desc_t *d = sp_meta_loader_desc(ld, (int)type);
    if (!d)
        return 0;
    if ((int)version < d->min_version || (int)version > d->max_version)
        return -1;
    sp_arena_t a;
    sp_arena_init(&a, 0);
    void *rec = sp_arena_alloc(&a, d->struct_size);
    int rc = -1;
    if (rec) {
        d->init(rec);
        if (d->decode(&r, &a, rec, (int16_t)version) == 0 && sp_reader_left(&r) == 0)
            rc = sp_meta_loader_apply_record(ld, img, (int)type, rec);
    }
    sp_arena_free(&a);
    return rc;
}
