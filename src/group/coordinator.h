/*
 * coordinator.h - the group coordinator (classic consumer group protocol).
 *
 * Owns every consumer group of this broker: members, generations, the
 * rebalance state machine, committed offsets.  State lives in Kafka's
 * internal topic __consumer_offsets (offsets.topic.num.partitions
 * partitions, compacted), written with Kafka's group-coordinator record
 * schemas (kafka-protocol/group-coordinator):
 *
 *   key   int16 version 1 | OffsetCommitKey   (group, topic, partition)
 *   value int16 version 3 | OffsetCommitValue (offset, leaderEpoch, metadata, commitTimestamp)
 *   key   int16 version 2 | GroupMetadataKey  (group)
 *   value int16 version 3 | GroupMetadataValue (protocol type, generation,
 *                                               protocol, leader, members...)
 *   a null value deletes (tombstone).
 *
 * A group's records go to partition abs(javaHashCode(group)) % N, whose
 * leader is the group's coordinator (FindCoordinator).  On start the whole
 * topic is replayed into memory.
 *
 * Threads: one coordinator thread with its own libuv loop (session,
 * rebalance and retention timers) runs every group operation in arrival
 * order, so group state needs no locks.  Handlers on I/O workers submit
 * the request; the coordinator builds the response in the request's arena
 * and hands it back with sp_req_post.  A commit is answered once its
 * records are fsynced (flush waiter), like any acks=all write, and only
 * then applied to memory; a failed write changes nothing and answers
 * Kafka's error (NOT_COORDINATOR for a storage error).
 */
#ifndef SP_GROUP_COORDINATOR_H
#define SP_GROUP_COORDINATOR_H

#include "broker/api.h"
#include "util/config.h"

/* The group coordinator of one broker (sp_broker_t.coordinator): its
 * thread, loop and groups. */
typedef struct sp_coordinator sp_coordinator_t;

/* Replays __consumer_offsets (if it exists) and starts the thread.  The
 * coordinator, or NULL. */
sp_coordinator_t *sp_coordinator_start(const sp_broker_t *b, const sp_config_t *cfg);
/* Answers parked requests with COORDINATOR_NOT_AVAILABLE, stops, frees c. */
void sp_coordinator_stop(sp_coordinator_t *c);

/* Replay without a thread or loop (fuzz targets, tests): a coordinator
 * whose groups are rebuilt from __consumer_offsets records as at start;
 * sp_coordinator_check says whether its state holds together (one group
 * per id, members counted, one offset per partition, a known state): 0, or
 * a negative number naming the broken rule (see the function).  Not for
 * serving. */
sp_coordinator_t *sp_coordinator_new_detached(const sp_config_t *cfg);
void sp_coordinator_replay(sp_coordinator_t *c, sp_bytes_t key, sp_bytes_t value, int64_t log_offset);
int sp_coordinator_check(const sp_coordinator_t *c);
void sp_coordinator_free_detached(sp_coordinator_t *c);

/* Kafka's partition of __consumer_offsets for a group id. */
int32_t sp_coordinator_partition_for(const char *group, int32_t len, int32_t npartitions);

/* Fills t (zeroed by the caller) with how __consumer_offsets is created:
 * offsets.topic.num.partitions partitions, compacted, 100 MiB segments,
 * compression.type=producer (Kafka's offsetsTopicConfigs).  The strings
 * are static.  Used by FindCoordinator and by auto-creation (Metadata,
 * Produce), so the topic has that shape whoever asks first.  Any thread
 * once started. */
struct sp_ctl_topic;
void sp_coordinator_offsets_topic(const sp_config_t *cfg, struct sp_ctl_topic *t);

void sp_handle_find_coordinator(sp_req_t *req);
void sp_handle_join_group(sp_req_t *req);
void sp_handle_sync_group(sp_req_t *req);
void sp_handle_heartbeat(sp_req_t *req);
void sp_handle_leave_group(sp_req_t *req);
void sp_handle_offset_commit(sp_req_t *req);
void sp_handle_offset_fetch(sp_req_t *req);
void sp_handle_describe_groups(sp_req_t *req);
void sp_handle_list_groups(sp_req_t *req);
void sp_handle_delete_groups(sp_req_t *req);
void sp_handle_offset_delete(sp_req_t *req);

#endif
