/*
 * txn_coordinator.h - the transaction coordinator of one broker: the
 * thread that runs the transactional ids' state machine (txn/txn_state.h)
 * and its writes to __transaction_state.
 *
 * Owns the coordinator thread (spool-txn), a queue of operations submitted
 * from any thread, the state machine's clock (a timed wait until its next
 * deadline: transaction timeouts every
 * transaction.abort.timed.out.transaction.cleanup.interval.ms, id
 * expiry every transaction.remove.expired.transaction.cleanup.interval.ms,
 * marker retries), and the writes and markers under way.  State lives in
 * Kafka's internal topic __transaction_state
 * (transaction.state.log.num.partitions partitions, compacted; Kafka's
 * TransactionLogKey/Value records): an id's records go to partition
 * abs(javaHashCode(id)) % N, whose leader is the id's coordinator
 * (FindCoordinator key type 1).  On start the whole topic is replayed
 * into memory, and transactions caught between their Prepare* record and
 * their markers finish.
 *
 * Producer ids come from the broker's producer-id manager
 * (txn/pid_manager.h): a few are kept at hand so the state machine never
 * waits for one (none at hand: COORDINATOR_LOAD_IN_PROGRESS, retriable,
 * as Kafka answers when it has no block).  Markers go through
 * txn/markers.h, the same path a WriteTxnMarkers request takes.
 *
 * Threads: everything on the coordinator thread; writes end on the flush
 * thread (or the appender) and markers wherever they end, and their
 * outcome is queued back.  Invariant: after sp_txn_coordinator_stop
 * returns nothing more runs on the state machine; the coordinator's
 * memory lasts until the last write or markers under way have ended.
 */
#ifndef SP_TXN_TXN_COORDINATOR_H
#define SP_TXN_TXN_COORDINATOR_H

#include "txn/txn_state.h"

#define SP_TXN_STATE_TOPIC "__transaction_state"

struct sp_broker;
struct sp_config;
struct sp_ctl_topic;

typedef struct sp_txn_coordinator sp_txn_coordinator_t;

/* Replays __transaction_state (if it exists) and starts the thread.  NULL
 * when out of memory or the thread cannot start.  Main thread; b must
 * outlive it. */
sp_txn_coordinator_t *sp_txn_coordinator_start(const struct sp_broker *b, const struct sp_config *cfg);
/* Answers waiting calls with COORDINATOR_NOT_AVAILABLE and stops the
 * thread.  Main thread. */
void sp_txn_coordinator_stop(sp_txn_coordinator_t *c);

/* Queues call (borrowed until call->done runs, on the coordinator
 * thread).  0, or -1 when stopped or out of memory (call untouched). */
int sp_txn_coordinator_submit(sp_txn_coordinator_t *c, sp_txn_call_t *call);
/* Runs fn(txns, arg) on the coordinator thread (reads: ListTransactions,
 * DescribeTransactions); fn(NULL, arg) when the coordinator stops first.
 * 0, or -1 (fn not run). */
int sp_txn_coordinator_run(sp_txn_coordinator_t *c, void (*fn)(const sp_txns_t *txns, void *arg), void *arg);

/* Gets producer ids at hand (a producer is about to ask: FindCoordinator
 * for a transactional id).  Any thread; c may be NULL. */
void sp_txn_coordinator_warm(sp_txn_coordinator_t *c);

/* Fills t (zeroed by the caller) with how __transaction_state is created
 * (Kafka's TransactionLog topic configs: compacted, uncompressed,
 * transaction.state.log.segment.bytes segments); strings static or in
 * arena.  0, or -1 when out of memory.  Any thread. */
int sp_txn_coordinator_topic(const struct sp_config *cfg, struct sp_ctl_topic *t, sp_arena_t *arena);

#endif
