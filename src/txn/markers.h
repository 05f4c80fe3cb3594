/*
 * markers.h - writing transaction markers: the one path by which a
 * transaction's COMMIT or ABORT reaches the partitions it touched (Kafka's
 * WriteTxnMarkers).  The transaction coordinator of this broker calls it
 * directly; a coordinator on another broker (the cluster issues) sends the
 * WriteTxnMarkers request, whose handler (broker/write_txn_markers.c)
 * calls the same function, so only the transport differs.
 *
 * For each partition: a control batch (attributes TRANSACTIONAL|CONTROL,
 * the producer's id and epoch, base sequence -1, one record whose key is
 * version 0 + type (0 ABORT, 1 COMMIT) and whose value is version 0 +
 * coordinator epoch, Kafka's EndTransactionMarker) is appended as the
 * broker's own writer and waited for like acks=all (durable before the
 * answer).  The partition's producer state closes the producer's
 * transaction there (txn/producer_state.h: an ABORT goes to the
 * aborted-transaction index) and the LSO moves on.  For a partition of
 * __consumer_offsets, once the marker is durable the group coordinator
 * makes the transaction's pending offsets visible (COMMIT) or drops them
 * (ABORT).
 *
 * Threads: any caller; done runs once, on whichever thread completed the
 * last partition (a worker, the flush thread or the caller itself), maybe
 * under that partition's lock: it must not block nor call into partitions
 * (post to your own thread, as the WriteTxnMarkers handler does).
 *
 * TransactionVersion: carried for Kafka 4's TV2 markers, whose epoch rule
 * is stricter (ProducerAppendInfo.checkProducerEpoch); Spool's coordinator
 * writes TV1 markers and the partition applies TV1's rule (an epoch below
 * the producer's is INVALID_PRODUCER_EPOCH) to every marker.
 */
#ifndef SP_TXN_MARKERS_H
#define SP_TXN_MARKERS_H

#include <stdbool.h>
#include <stdint.h>

struct sp_broker;

/* One partition a marker goes to (borrowed by the call). */
typedef struct sp_txn_marker_part {
    const char *topic;
    int32_t topic_len;
    int32_t partition;
} sp_txn_marker_part_t;

/* One marker (one entry of WriteTxnMarkers).  Borrowed for the call only:
 * the implementation copies what it keeps. */
typedef struct sp_txn_marker {
    int64_t producer_id;
    int16_t producer_epoch;
    bool commit;                  /* COMMIT, else ABORT */
    int32_t coordinator_epoch;
    int16_t transaction_version;  /* the request's (v2+), 0 or 1 before; Spool's coordinator writes 1 */
    int32_t n;
    const sp_txn_marker_part_t *parts;
} sp_txn_marker_t;

/*
 * Writes m to each of its partitions.  done(ctx, errors) runs once when
 * every partition has answered; errors[i] (valid during the call) is
 * partition i's Kafka error: 0; UNKNOWN_TOPIC_OR_PARTITION for one this
 * broker does not have (Kafka's ReplicaManager answer); the marker's own
 * refusals (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED, from
 * the producer state); KAFKA_STORAGE_ERROR; NOT_ENOUGH_REPLICAS.  Returns
 * 0, or -1 when out of memory (done is then not called).
 */
int sp_txn_write_markers(const struct sp_broker *b, const sp_txn_marker_t *m,
                         void (*done)(void *ctx, const int16_t *errors), void *ctx);

#endif
