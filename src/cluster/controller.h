/*
 * controller.h - the metadata thread: the only writer of cluster metadata,
 * and what only the (elected) controller does.  What every broker does
 * with metadata (follow the log, publish images, open and retire local
 * partitions) is the publisher's (meta_publisher.h); where the log lives
 * is the metadata log's (metalog.h).
 *
 * Every change (create/delete topics, add partitions, topic configs,
 * dynamic broker configs, a block of producer ids) is a list of Kafka
 * metadata records (TopicRecord, PartitionRecord, ConfigRecord,
 * RemoveTopicRecord, ProducerIdsRecord; kafka-protocol/metadata) that the
 * controller
 *   1. validates against the current image (Kafka's error codes),
 *   2. appends as one record batch to the metadata log, durable on return
 *      (sp_metalog_append; partition logs of new partitions are opened
 *      before, and abandoned if the write fails),
 *   3. applies to a copy of the image and publishes it (sp_meta_publish:
 *      deleted topics' logs are retired, changed settings applied, a
 *      change of dynamic broker configs reaching every topic without a
 *      restart),
 *   4. hands the results back through the operation's completion.
 * Log settings are always resolved against the image being built or
 * published (topic_config.h), never a stale one.  Record values use
 * Kafka's metadata framing:
 *   uvarint frame version (1) | uvarint record type (apiKey) |
 *   uvarint record version | record body (flexible encoding).
 * Every metadata.log.max.record.bytes.between.snapshots bytes of records
 * the controller stores a snapshot of the whole image
 * (sp_metalog_snapshot_save), after which older records may go: the
 * snapshot holds every record needed to rebuild the image (topics,
 * partitions, configs, and one ProducerIdsRecord with the next id).
 *
 * Producer ids (Kafka's ProducerIdControlManager): the controller grants
 * blocks of SP_PID_BLOCK_SIZE ids, in order, to the brokers' producer-id
 * managers (txn/pid_manager.h); each grant is a ProducerIdsRecord whose
 * NextProducerId is the first id of the block after it, durable before
 * the block is handed out, so that no id is ever handed out twice, across
 * restarts and snapshots alike.
 *
 * Threads: submit from any thread; everything else on the metadata thread
 * (and the main thread at start/stop).
 */
#ifndef SP_CLUSTER_CONTROLLER_H
#define SP_CLUSTER_CONTROLLER_H

#include <stdbool.h>

#include "broker/broker.h"
#include "proto/wire.h"
#include "util/config.h"

typedef enum sp_ctl_kind {
    SP_CTL_CREATE_TOPICS,
    SP_CTL_DELETE_TOPICS,
    SP_CTL_CREATE_PARTITIONS,
    SP_CTL_ALTER_CONFIGS,       /* replace all overrides of a topic or all
                                 * dynamic configs of a broker resource */
    SP_CTL_INCR_ALTER_CONFIGS,  /* per-key SET/DELETE/APPEND/SUBTRACT */
    SP_CTL_ALLOC_PRODUCER_IDS,  /* the next block of producer ids (op->pids) */
} sp_ctl_kind_t;

/* Producer ids per block (Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE). */
#define SP_PID_BLOCK_SIZE 1000

/* IncrementalAlterConfigs operation codes (Kafka's). */
enum { SP_CFG_OP_SET = 0, SP_CFG_OP_DELETE = 1, SP_CFG_OP_APPEND = 2, SP_CFG_OP_SUBTRACT = 3 };

typedef struct sp_ctl_topic {
    /* in (borrowed from the request; valid while it is unanswered) */
    sp_str_t name;              /* len < 0: by id */
    sp_uuid_t id;
    int32_t num_partitions;     /* create: -1 = num.partitions; partitions: new total */
    int16_t replication_factor; /* -1 = default.replication.factor */
    int32_t nassign;            /* manual assignments given (count) */
    int32_t *assign_index;      /* partition of each assignment */
    int32_t *assign_nbrokers;   /* replicas in each */
    int32_t **assign_brokers;
    int8_t resource_type;       /* alters: 2 TOPIC (also 0), 4 BROKER, whose name
                                 * is "" (cluster default) or this node's id */
    int nconfigs;
    sp_str_t *ckeys, *cvalues;  /* cvalues[i].len < 0: null */
    int8_t *cops;               /* incremental only */
    /* out */
    int16_t error;
    const char *message;        /* static or arena text */
    sp_uuid_t out_id;
    int32_t out_partitions;
    int16_t out_rf;
    /* metadata thread: partitions [opened_from, opened_to) whose logs this
     * operation created, abandoned if its metadata cannot be written */
    int32_t opened_from, opened_to;
} sp_ctl_topic_t;

/* One metadata change.  The controller knows nothing of requests: the
 * submitter gives it an arena (for the strings of the results, alive
 * until complete runs) and a completion, called on the metadata thread
 * once the results are in, that hands the op back to the submitter's own
 * thread (broker/ctl.h does so for a request). */
typedef struct sp_ctl_op {
    sp_ctl_kind_t kind;
    bool validate_only;
    int n;
    sp_ctl_topic_t *topics;
    /* SP_CTL_ALLOC_PRODUCER_IDS (n = 0, no topics, arena unused): out */
    struct {
        int64_t first;          /* the block [first, first + SP_PID_BLOCK_SIZE) */
        int16_t error;          /* 0, UNKNOWN_SERVER_ERROR (ids exhausted),
                                 * KAFKA_STORAGE_ERROR (metadata log) */
        const char *message;    /* static text */
    } pids;
    sp_arena_t *arena;
    void (*complete)(struct sp_ctl_op *op);
    void *owner;                /* the submitter's */
    struct sp_ctl_op *next;
} sp_ctl_op_t;

/* The controller of one broker (sp_broker_t.controller). */
typedef struct sp_controller sp_controller_t;

/* Opens the metadata log, follows it into the first image and publishes
 * that (meta_publisher.h: every partition log opened, directories of
 * topics that no longer exist set aside), then starts the metadata
 * thread.  Main thread.  The controller,
 * or NULL (logged; nothing left running). */
sp_controller_t *sp_controller_start(const sp_broker_t *b, const sp_config_t *cfg);
/* Queues op (op, its strings and op->arena stay alive until
 * op->complete has run). */
void sp_controller_submit(sp_controller_t *c, sp_ctl_op_t *op);
/* Stops the thread after the queued operations, closes the metadata log
 * and frees c. */
void sp_controller_stop(sp_controller_t *c);

#endif
