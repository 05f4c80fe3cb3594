/*
 * coordinator.h - the group coordinator of one broker: the thread that
 * runs its consumer groups (group/group.h), and their writes to
 * __consumer_offsets.
 *
 * Owns the coordinator thread (named spool-group) with its own libuv
 * loop, a queue of calls (sp_group_call_t) submitted from any thread, one
 * timer armed at the groups' next deadline, and the writes under way.
 * The state lives in Kafka's internal topic __consumer_offsets
 * (offsets.topic.num.partitions partitions, compacted; records:
 * group/records.h): a group's records go to partition
 * abs(javaHashCode(group)) % N, N being the topic's own partition count,
 * whose leader is the group's coordinator (FindCoordinator).  On start
 * the whole topic is replayed into memory.
 *
 * Threads: every group operation runs on the coordinator thread, in
 * arrival order, so group state needs no locks.  Submitters (request
 * handlers on I/O workers, broker/groups.c) queue a call; its answer is
 * given to call->done on the coordinator thread.  A write is appended
 * there (acks=all, as Kafka's coordinator writes), and settled there once
 * the partition's high watermark passes it (the flush thread queues its
 * outcome); a write that ends after stop is settled where it ends
 * (sp_group_write_abandon: its calls answered, nothing else touched).
 *
 * Invariants:
 *  (1) after sp_coordinator_stop returns nothing more runs on the groups;
 *      the coordinator's memory lasts until the last write under way has
 *      ended (refs).
 */
#ifndef SP_GROUP_COORDINATOR_H
#define SP_GROUP_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

#include "group/group.h"

#define SP_OFFSETS_TOPIC "__consumer_offsets"

struct sp_broker;
struct sp_config;
struct sp_ctl_topic;

/* The group coordinator of one broker (sp_broker_t.coordinator). */
typedef struct sp_coordinator sp_coordinator_t;

/* Replays __consumer_offsets (if it exists) and starts the thread.  The
 * coordinator, or NULL.  Main thread; b must outlive it. */
sp_coordinator_t *sp_coordinator_start(const struct sp_broker *b, const struct sp_config *cfg);
/* Answers parked calls with COORDINATOR_NOT_AVAILABLE, stops the thread,
 * frees the groups; writes under way are abandoned when they end.  Main
 * thread. */
void sp_coordinator_stop(sp_coordinator_t *c);

/* Queues call (borrowed until call->done runs) for the coordinator
 * thread.  0, -1 when the coordinator has stopped, -2 when out of
 * memory: then call is not touched.  Any thread. */
int sp_coordinator_submit(sp_coordinator_t *c, sp_group_call_t *call);

/*
 * A transaction marker is durable in partition 'partition' of
 * __consumer_offsets (txn/markers.h): the transactional offsets that
 * producer_id committed there (TxnOffsetCommit) become visible (commit)
 * or are dropped (abort), as Kafka's GroupCoordinator.onTransactionCompleted.
 * Queued for the coordinator thread.  Any thread.
 */
void sp_coordinator_txn_complete(sp_coordinator_t *c, int32_t partition, int64_t producer_id,
                                 int16_t producer_epoch, bool commit);

/* Kafka's partition of __consumer_offsets for a group id. */
int32_t sp_coordinator_partition_for(const char *group, int32_t len, int32_t npartitions);

/* Fills t (zeroed by the caller) with how __consumer_offsets is created:
 * offsets.topic.num.partitions partitions, compacted, segments of
 * offsets.topic.segment.bytes, compression.type=producer (Kafka's
 * offsetsTopicConfigs).  The strings live in arena.  Used by
 * FindCoordinator and by auto-creation (Metadata, Produce), so the topic
 * has that shape whoever asks first.  Any thread.  0, or -1 (no memory). */
int sp_coordinator_offsets_topic(const struct sp_config *cfg, struct sp_ctl_topic *t, sp_arena_t *arena);

#endif
