/*
 * meta_publisher.h - what every broker does with metadata, apart from what
 * only the controller does (controller.h: validate operations, write
 * records).  Kafka's MetadataLoader and BrokerMetadataPublisher.
 *
 *   follow   build an image from the metadata log (metalog.h): the newest
 *            snapshot, then every record after it, decoded and applied by
 *            the loader (meta_loader.h);
 *   publish  make an image the broker's current one (sp_image_publish)
 *            and bring the local partitions in line with it: partitions
 *            of new topics and added partitions are opened, those of
 *            removed topics retired (their logs deleted), and topics whose
 *            settings may have changed (their topic changed, or a dynamic
 *            broker config did) get their log settings again.  What
 *            changed is found by comparing the image with the one it
 *            replaces: images share unchanged topics (image.h, copy on
 *            write), so an unchanged topic is one pointer comparison.
 *
 * The controller of a single node publishes the image it just wrote; a
 * broker following another controller (issue "A cluster of brokers") will
 * publish what it replays.  Threads: the metadata thread (the main thread
 * at start).
 */
#ifndef SP_CLUSTER_META_PUBLISHER_H
#define SP_CLUSTER_META_PUBLISHER_H

#include "cluster/image.h"
#include "cluster/meta_loader.h"
#include "cluster/metalog.h"
#include "util/config.h"

struct sp_partitions;
struct sp_logmgr;

typedef struct sp_meta_publisher {
    struct sp_partitions *parts;  /* the broker's partitions */
    struct sp_logmgr *logs;       /* and log manager (strays at start) */
    sp_image_holder_t *images;    /* where images are published */
    const sp_config_t *cfg;       /* broker defaults of log settings */
    sp_meta_loader_t loader;
} sp_meta_publisher_t;

/* 0, or -1 if the codec lacks the metadata record schemas. */
int sp_meta_publisher_init(sp_meta_publisher_t *p, struct sp_partitions *parts, struct sp_logmgr *logs,
                           sp_image_holder_t *images, const sp_config_t *cfg, int32_t node_id);

/*
 * Follows log from its start into img (an unpublished image): loads the
 * newest snapshot, then replays the records after it.  A record that does
 * not decode or apply stops it: better not to start than to build an
 * image that lacks topics, whose data would then look stray.  0 with
 * *bytes_after (record bytes after the snapshot) and img->offset set, or
 * -1 (logged).
 */
int sp_meta_follow(sp_meta_publisher_t *p, sp_metalog_t *log, sp_image_t *img, int64_t *bytes_after);

/* Publishes the first image: opens the log of every partition it names
 * (failing if one cannot be opened), sets aside directories it does not
 * name (logmgr.h sweep), then publishes.  0 or -1 (logged; nothing
 * published). */
int sp_meta_publish_first(sp_meta_publisher_t *p, sp_image_t *img);

/* Publishes next (its reference passes to the holder) and brings the
 * local partitions in line with it, as described above.  A partition that
 * cannot be opened is logged and stays unavailable. */
void sp_meta_publish(sp_meta_publisher_t *p, sp_image_t *next);

#endif
