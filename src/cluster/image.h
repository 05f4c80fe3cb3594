/*
 * image.h - the metadata image: an immutable snapshot of cluster metadata
 * (brokers, topics, partitions, cluster id, controller) that request
 * handlers read.
 *
 * Principle 4 of DESIGN.md: metadata is a log of Kafka's metadata records;
 * applied in order they build an image; a new image is published by
 * swapping a reference-counted pointer.  Readers never see a half-applied
 * change and never block the metadata thread for longer than a pointer swap.
 *
 * Threads: any thread may sp_image_acquire()/sp_image_release(), which take
 * no lock (three atomic increments); only the metadata owner publishes.
 * The current image lives in a holder (one per broker: sp_broker_t.images),
 * so that several brokers can live in one process.
 *
 * Dynamic broker configs (ConfigRecord with resource type BROKER, set by
 * AlterConfigs / IncrementalAlterConfigs on a BROKER resource) are kept
 * as a flat list of (key, value, scope): scope is either the cluster-wide
 * default (resource name "", Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG) or
 * this broker (resource name = its node id, DYNAMIC_BROKER_CONFIG).
 * Records naming other broker ids never reach the image.
 *
 * Copy on write: images share the topics they have in common.  A clone
 * copies the array of topic pointers (one reference each), not the
 * topics; a builder function that changes a topic first makes the next
 * image's own copy of that one topic (when another image still holds it),
 * so a metadata change costs what it changes, not the whole cluster.
 *
 * Invariants:
 *  (1) an image is never modified after sp_image_publish(), and neither is
 *      a topic held by more than one image;
 *  (2) topics[] is sorted by name (binary search), ids are unique;
 *  (3) an image stays alive while any holder has not released it, and a
 *      topic while any image holds it;
 *  (4) dyn[] holds each (is_default, key) pair at most once;
 *  (5) next_producer_id >= 0 and never decreases from an image to the
 *      next (each ProducerIdsRecord grants the block below its value).
 */
#ifndef SP_CLUSTER_IMAGE_H
#define SP_CLUSTER_IMAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"

typedef struct sp_broker_info {
    int32_t node_id;
    char *host;
    int32_t port;
    char *rack;              /* NULL if none */
} sp_broker_info_t;

typedef struct sp_partition_info {
    int32_t index;
    int32_t leader;          /* -1 if none */
    int32_t leader_epoch;
    int32_t partition_epoch;
    int32_t *replicas;
    int32_t nreplicas;
    int32_t *isr;
    int32_t nisr;
} sp_partition_info_t;

typedef struct sp_topic_info {
    atomic_int refs;                  /* images holding it (copy on write) */
    char *name;
    sp_uuid_t id;
    bool internal;
    int32_t npartitions;
    sp_partition_info_t *partitions;  /* indexed by partition id */
    int nconfigs;                     /* topic overrides (ConfigRecord) */
    char **ckeys, **cvalues;
} sp_topic_info_t;

/* One dynamic broker config (ConfigRecord, resource type 4). */
typedef struct sp_dyn_config {
    char *key;               /* a broker key, e.g. "log.retention.ms" */
    char *value;
    bool is_default;         /* true: cluster default (""); false: this broker */
} sp_dyn_config_t;

typedef struct sp_image {
    atomic_int refs;
    int64_t offset;          /* last metadata record applied, -1 if none */
    char cluster_id[32];
    int32_t controller_id;
    int32_t nbrokers;
    sp_broker_info_t *brokers;
    int32_t ntopics;
    sp_topic_info_t **topics; /* sorted by name; shared between images */
    int32_t ndyn;
    sp_dyn_config_t *dyn;    /* dynamic broker configs, invariant (4) */
    int64_t next_producer_id; /* the first producer id of the next block the
                               * controller grants (the last ProducerIdsRecord's
                               * NextProducerId); 0 before any, invariant (5) */
} sp_image_t;

/* An empty image owned by the caller (refs = 1); NULL on OOM. */
sp_image_t *sp_image_new(const char *cluster_id, int32_t controller_id);
/* Adds a broker to an unpublished image.  Copies strings.  0 or -1. */
int sp_image_add_broker(sp_image_t *img, int32_t node_id, const char *host, int32_t port,
                        const char *rack);

/* ---- building the next image (metadata thread, unpublished images) ---- */

/* A copy (refs = 1) sharing every topic, to which records are applied
 * before publishing. */
sp_image_t *sp_image_clone(const sp_image_t *img);
/* TopicRecord.  0, or -1 (OOM or duplicate). */
int sp_image_add_topic(sp_image_t *img, const char *name, int32_t len, sp_uuid_t id);
/* PartitionRecord: adds or replaces partition p of the topic with id. */
int sp_image_set_partition(sp_image_t *img, sp_uuid_t topic_id, const sp_partition_info_t *p);
/* RemoveTopicRecord. */
int sp_image_remove_topic(sp_image_t *img, sp_uuid_t id);
/* ConfigRecord for a topic: value NULL removes the override. */
int sp_image_set_topic_config(sp_image_t *img, const char *topic, int32_t tlen, const char *key,
                              int32_t klen, const char *value, int32_t vlen);
/* ConfigRecord for a broker resource: is_default selects the cluster
 * default ("") or this broker; value NULL removes the entry.  Copies the
 * strings.  0 or -1 (OOM). */
int sp_image_set_broker_config(sp_image_t *img, bool is_default, const char *key, int32_t klen,
                               const char *value, int32_t vlen);
/* ProducerIdsRecord: the ids below next are granted.  0, or -1 when next
 * is not above the image's value (invariant (5); Kafka's replay refuses
 * such a record too). */
int sp_image_set_next_producer_id(sp_image_t *img, int64_t next);
/* Non-const lookup for the builder: the image's own copy of the topic. */
sp_topic_info_t *sp_image_topic_mut(sp_image_t *img, const char *name, int32_t len);

/* Where the current image of one broker is published. */
typedef struct sp_image_holder sp_image_holder_t;
sp_image_holder_t *sp_image_holder_new(void);
/* Drops the published image and the holder (at shutdown). */
void sp_image_holder_free(sp_image_holder_t *h);

/* Makes img the current image of h; takes the caller's reference. */
void sp_image_publish(sp_image_holder_t *h, sp_image_t *img);
/* The current image with one more reference (never NULL after the first
 * publish).  Pair with sp_image_release(). */
sp_image_t *sp_image_acquire(sp_image_holder_t *h);
void sp_image_release(sp_image_t *img);

/* Lookups; borrowed pointers valid while the image is held. */
const sp_topic_info_t *sp_image_topic(const sp_image_t *img, const char *name, int32_t len);
const sp_topic_info_t *sp_image_topic_by_id(const sp_image_t *img, sp_uuid_t id);
const sp_broker_info_t *sp_image_broker(const sp_image_t *img, int32_t node_id);
/* The dynamic value of broker key 'key' in the given scope, or NULL.
 * img may be NULL (no dynamic configs). */
const char *sp_image_broker_config(const sp_image_t *img, bool is_default, const char *key);

#endif
