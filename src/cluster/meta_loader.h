/*
 * meta_loader.h - what every broker does with the metadata log (Kafka's
 * MetadataLoader): decode Kafka's metadata records (TopicRecord,
 * PartitionRecord, ConfigRecord, RemoveTopicRecord, ProducerIdsRecord; the
 * others are skipped
 * until something uses them) and apply them, in order, to an image being
 * built (cluster/image.h).  No thread and no global state: the controller
 * replays its log and snapshot through one at start, a fuzz target feeds
 * it arbitrary bytes, and a broker that follows a controller's log will
 * apply what it reads through one.
 *
 * A record value is framed as Kafka frames it: frame version (uvarint, 1),
 * record type (uvarint), record version (uvarint), then the record.
 */
#ifndef SP_CLUSTER_META_LOADER_H
#define SP_CLUSTER_META_LOADER_H

#include <stdint.h>

#include "cluster/image.h"
#include "proto/gen/messages.h"

/* Kafka's metadata record types (MetadataRecordType) Spool reads and writes. */
#define SP_META_TOPIC 2
#define SP_META_PARTITION 3
#define SP_META_CONFIG 4
#define SP_META_REMOVE_TOPIC 9
#define SP_META_PRODUCER_IDS 15

/* A PartitionRecord's partition id is below this (the controller allows
 * 100,000 partitions per topic); a larger one is refused, not allocated. */
#define SP_META_MAX_PARTITION (1 << 20)

typedef struct sp_meta_loader {
    int32_t node_id;              /* this broker: its own broker-scope configs are kept */
    const sp_msg_desc_t *topic, *partition, *config, *remove_topic, *producer_ids;
} sp_meta_loader_t;

/* 0, or -1 when the codec lacks one of the record schemas. */
int sp_meta_loader_init(sp_meta_loader_t *ld, int32_t node_id);
/* The schema of record type 'type' (SP_META_*), or NULL. */
const sp_msg_desc_t *sp_meta_loader_desc(const sp_meta_loader_t *ld, int type);
/*
 * Decodes one framed record value v[0..len) and applies it to img (not
 * published).  0 when applied, or skipped (a type not used yet, another
 * broker's config, a resource type not kept); -1 when it does not decode
 * (bad frame, unknown version, bytes left over) or cannot apply (a
 * duplicate topic, a partition of an unknown topic, a ProducerIdsRecord
 * whose NextProducerId does not increase, out of memory): a
 * replay stops there rather than build an image that lacks topics.
 */
int sp_meta_loader_apply(const sp_meta_loader_t *ld, sp_image_t *img, const uint8_t *v, int32_t len);
/* The same for a record already decoded (or about to be written): rec is
 * the generated struct of record type 'type' (sp_topic_record_t, ...). */
int sp_meta_loader_apply_record(const sp_meta_loader_t *ld, sp_image_t *img, int type, const void *rec);

#endif
