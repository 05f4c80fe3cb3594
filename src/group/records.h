/*
 * records.h - the records of __consumer_offsets: building them, and
 * replaying them into groups.
 *
 * Kafka's group-coordinator record schemas (kafka-protocol/
 * group-coordinator), each key and value prefixed by its int16 version:
 *
 *   +---------+-------------------------------+---------------------------------------+
 *   | key ver | key                           | value (ver | fields); null: tombstone  |
 *   +---------+-------------------------------+---------------------------------------+
 *   | 0, 1    | OffsetCommitKey               | 3 | OffsetCommitValue: offset,         |
 *   |         |  group, topic, partition      |     leaderEpoch, metadata,            |
 *   |         |                               |     commitTimestamp                   |
 *   | 2       | GroupMetadataKey: group       | 3 | GroupMetadataValue: protocol type,|
 *   |         |                               |     generation, protocol, leader,     |
 *   |         |                               |     state timestamp, members          |
 *   +---------+-------------------------------+---------------------------------------+
 *
 * Written: key version 1 and 2, value version 3.  Replayed: every
 * version the codec knows; what does not decode is skipped.  Records
 * come from disk and are untrusted.
 *
 * A TxnOffsetCommit's records are one transactional batch of the
 * producer (sp_group_records_txn); its COMMIT or ABORT marker (a control
 * batch written by txn/markers.c) follows it in the same partition.
 *
 * Threads: the groups' (group.h).  The schema lookup is process-wide and
 * constant once done (sp_group_records_schemas).
 */
#ifndef SP_GROUP_RECORDS_H
#define SP_GROUP_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "group/group.h"
#include "group/offsets.h"
#include "proto/batch.h"

struct sp_group;

/* Looks the four record schemas up in the codec (once; any thread after
 * that).  0, or -1 if the codec lacks one. */
int sp_group_records_schemas(void);

/* A batch of records being built. */
typedef struct sp_group_records {
    sp_batch_builder_t b;
    int count;                  /* records added (or tried) */
    int64_t now;                /* their timestamp */
} sp_group_records_t;

void sp_group_records_init(sp_group_records_t *r, int64_t now);
/* The commit o of group's topic/partition, or its tombstone (o NULL).
 * 0 or -1. */
int sp_group_records_offset(sp_group_records_t *r, const char *group, const char *topic,
                            int32_t partition, const sp_offset_t *o);
/* g's metadata (generation, protocol, leader, members with their chosen
 * protocol's subscription and their assignment), or its tombstone.  0 or
 * -1. */
int sp_group_records_group(sp_group_records_t *r, const struct sp_group *g, bool tombstone);
/* The batch becomes producer_id's transactional batch (attributes
 * TRANSACTIONAL, its id and epoch, base sequence 0: what Kafka's
 * coordinator writes for a TxnOffsetCommit). */
void sp_group_records_txn(sp_group_records_t *r, int64_t producer_id, int16_t producer_epoch);
/* The batch (malloc'd, *len set; NULL with no records or out of
 * memory); r is freed either way. */
uint8_t *sp_group_records_finish(sp_group_records_t *r, size_t *len);
void sp_group_records_free(sp_group_records_t *r);

/*
 * Applies one record of __consumer_offsets (key, value: null for a
 * tombstone; at log_offset) to gs, as at start: offsets put or dropped,
 * a group rebuilt as its last metadata record says (members with their
 * assignment, Stable, or Empty without members; sessions start at
 * sp_groups_start), a group tombstone forgets a group without offsets.
 * Untrusted bytes: what does not decode is skipped.
 */
void sp_groups_replay(sp_groups_t *gs, sp_bytes_t key, sp_bytes_t value, int64_t log_offset, int64_t now);
/* As sp_groups_replay, for a record of a batch of producer_id (-1: none,
 * the same as sp_groups_replay): an offset commit becomes the producer's
 * pending transactional offset (Kafka's OffsetMetadataManager.replay),
 * until its marker (sp_groups_txn_end). */
void sp_groups_replay_txn(sp_groups_t *gs, int64_t producer_id, sp_bytes_t key, sp_bytes_t value,
                          int64_t log_offset, int64_t now);
/* The control record of a marker (key: int16 version, int16 type: 0
 * ABORT, 1 COMMIT): 0 with *commit set, or -1 if it is not one. */
int sp_group_marker_type(sp_bytes_t key, bool *commit);

#endif
