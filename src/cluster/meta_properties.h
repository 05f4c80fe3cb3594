/*
 * meta_properties.h - Kafka's meta.properties in each log directory.
 *
 * The file names the cluster this directory belongs to and the node that
 * owns it, as in Kafka (KRaft, version=1):
 *
 *   cluster.id=<22 chars: base64url of 16 random bytes>
 *   directory.id=<22 chars>
 *   node.id=<int>
 *   version=1
 *
 * The cluster id is generated once, when the first directory is formatted,
 * and read back on every start.  Main thread, at start only.
 */
#ifndef SP_CLUSTER_META_PROPERTIES_H
#define SP_CLUSTER_META_PROPERTIES_H

#include <stddef.h>
#include <stdint.h>

/*
 * Creates each of dirs[0..ndirs) if missing, reads its meta.properties, or
 * writes one.  All directories must agree on cluster.id and node.id (else
 * -1 with a logged reason, as Kafka refuses to start).  On success copies
 * the cluster id into cluster_id (cap >= 23) and returns 0.
 */
int sp_meta_properties_init(char *const *dirs, int ndirs, int32_t node_id, char *cluster_id,
                            size_t cap);

/* 16 random bytes as unpadded base64url (22 chars + NUL). */
void sp_random_kafka_uuid(char out[23]);

#endif
