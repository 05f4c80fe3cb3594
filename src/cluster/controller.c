/* controller.c - the metadata thread (see controller.h). */
#include "cluster/controller.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster/image.h"
#include "cluster/meta_loader.h"
#include "cluster/meta_publisher.h"
#include "cluster/metalog.h"
#include "cluster/names.h"
#include "cluster/partition.h"
#include "cluster/topic_config.h"
#include "log/logmgr.h"
#include "proto/batch.h"
#include "proto/gen/config_record.h"
#include "proto/gen/errors.h"
#include "proto/gen/partition_record.h"
#include "proto/gen/producer_ids_record.h"
#include "proto/gen/remove_topic_record.h"
#include "proto/gen/topic_record.h"
#include "util/clock.h"
#include "util/log.h"

#define REC_TOPIC SP_META_TOPIC
#define REC_PARTITION SP_META_PARTITION
#define REC_CONFIG SP_META_CONFIG
#define REC_REMOVE_TOPIC SP_META_REMOVE_TOPIC
#define REC_PRODUCER_IDS SP_META_PRODUCER_IDS
#define RES_TOPIC 2 /* ConfigResource type TOPIC */
#define RES_BROKER 4 /* ConfigResource type BROKER */
#define SP_MAX_PARTITIONS 100000 /* per topic: each is a directory and open files */

struct sp_controller {
    const sp_broker_t *broker;
    const sp_config_t *cfg;
    sp_partitions_t *parts;     /* the broker's partitions (broker->partitions) */
    sp_logmgr_t *logs;          /* and its log manager (broker->logs) */
    sp_image_holder_t *images;  /* where images are published (broker->images) */
    sp_metalog_t *log;          /* the metadata log (metalog.h) */
    int64_t bytes_since_snapshot;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sp_ctl_op_t *head, *tail;
    bool stop, running;
    _Atomic bool failed;        /* the metadata log failed: no more changes */
    sp_meta_publisher_t pub;    /* what every broker does: follow, publish */
};


static int64_t now_ms(void) { return sp_wall_ms(); }

/* ---- records: encode, apply ------------------------------------------- */

typedef struct recbuf {
    sp_batch_builder_t b;
    int count;
    int64_t bytes;
} recbuf_t;

/* Frames record rec of type key (SP_META_*) and adds it to rb. */
static int add_record(const sp_controller_t *c, recbuf_t *rb, int16_t key, int16_t version, const void *rec)
{
    const sp_msg_desc_t *d = sp_meta_loader_desc(&c->pub.loader, key);
    if (!d)
        return -1;
    size_t body = d->size(rec, version);
    size_t n = sp_uvarint_size(1) + sp_uvarint_size((uint32_t)key) + sp_uvarint_size((uint32_t)version) + body;
    uint8_t *buf = malloc(n);
    if (!buf)
        return -1;
    sp_writer_t w = sp_writer(buf, n);
    sp_write_uvarint(&w, 1);
    sp_write_uvarint(&w, (uint32_t)key);
    sp_write_uvarint(&w, (uint32_t)version);
    d->encode(&w, rec, version);
    int rc = w.err ? -1 : sp_batch_builder_add(&rb->b, NULL, -1, buf, (int32_t)n, now_ms());
    free(buf);
    rb->count++;
    rb->bytes += (int64_t)n;
    return rc;
}

/* Applies a record we write to the next image, as a replay would. */
static int apply(sp_controller_t *c, sp_image_t *img, int type, const void *rec)
{
    return sp_meta_loader_apply_record(&c->pub.loader, img, type, rec);
}

/* ---- snapshots --------------------------------------------------------- */

static int snapshot_records(sp_controller_t *c, recbuf_t *rb, const sp_image_t *img)
{
    for (int32_t i = 0; i < img->ntopics; i++) {
        const sp_topic_info_t *t = img->topics[i];
        sp_topic_record_t tr;
        sp_topic_record_init(&tr);
        tr.name = sp_str_c(t->name);
        tr.topic_id = t->id;
        if (add_record(c, rb, REC_TOPIC, 0, &tr) != 0)
            return -1;
        for (int32_t p = 0; p < t->npartitions; p++) {
            const sp_partition_info_t *pi = &t->partitions[p];
            sp_partition_record_t pr;
            sp_partition_record_init(&pr);
            pr.partition_id = pi->index;
            pr.topic_id = t->id;
            pr.replicas.v = pi->replicas;
            pr.replicas.n = pi->nreplicas;
            pr.isr.v = pi->isr;
            pr.isr.n = pi->nisr;
            pr.leader = pi->leader;
            pr.leader_epoch = pi->leader_epoch;
            pr.partition_epoch = pi->partition_epoch;
            if (add_record(c, rb, REC_PARTITION, 0, &pr) != 0)
                return -1;
        }
        for (int k = 0; k < t->nconfigs; k++) {
            sp_config_record_t cr;
            sp_config_record_init(&cr);
            cr.resource_type = RES_TOPIC;
            cr.resource_name = sp_str_c(t->name);
            cr.name = sp_str_c(t->ckeys[k]);
            cr.value = sp_str_c(t->cvalues[k]);
            if (add_record(c, rb, REC_CONFIG, 0, &cr) != 0)
                return -1;
        }
    }
    /* dynamic broker configs: "" = cluster default, else this node */
    char self[16];
    snprintf(self, sizeof(self), "%" PRId32, c->broker->node_id);
    for (int32_t i = 0; i < img->ndyn; i++) {
        sp_config_record_t cr;
        sp_config_record_init(&cr);
        cr.resource_type = RES_BROKER;
        cr.resource_name = sp_str_c(img->dyn[i].is_default ? "" : self);
        cr.name = sp_str_c(img->dyn[i].key);
        cr.value = sp_str_c(img->dyn[i].value);
        if (add_record(c, rb, REC_CONFIG, 0, &cr) != 0)
            return -1;
    }
    /* the producer ids granted so far; BrokerId 0 and BrokerEpoch 0, as
     * Kafka writes this record into its snapshots (it is no grant) */
    if (img->next_producer_id > 0) {
        sp_producer_ids_record_t pr;
        sp_producer_ids_record_init(&pr);
        pr.broker_id = 0;
        pr.broker_epoch = 0;
        pr.next_producer_id = img->next_producer_id;
        if (add_record(c, rb, REC_PRODUCER_IDS, 0, &pr) != 0)
            return -1;
    }
    return 0;
}

/* Stores a snapshot of img (which covers offsets below 'upto'); the
 * metadata log then drops what is older (metalog.h). */
static void write_snapshot(sp_controller_t *c, const sp_image_t *img, int64_t upto)
{
    recbuf_t rb;
    memset(&rb, 0, sizeof(rb));
    sp_batch_builder_init(&rb.b, 0, now_ms());
    if (snapshot_records(c, &rb, img) != 0) {
        sp_batch_builder_free(&rb.b);
        return;
    }
    size_t len = 0;
    uint8_t *batch = rb.count ? sp_batch_builder_finish(&rb.b, &len) : NULL;
    sp_batch_builder_free(&rb.b);
    if (sp_metalog_snapshot_save(c->log, upto, batch, len) == 0) {
        c->bytes_since_snapshot = 0;
        sp_info("meta", "metadata snapshot at offset %" PRId64 " (%d records)", upto, rb.count);
    }
    free(batch);
}

/* ---- operations -------------------------------------------------------- */

static sp_uuid_t new_topic_id(const sp_image_t *img)
{
    sp_uuid_t u;
    do {
        if (getrandom(u.b, 16, 0) != 16) {
            uint64_t t = (uint64_t)now_ms() ^ (uint64_t)getpid();
            memcpy(u.b, &t, 8);
            memcpy(u.b + 8, &t, 8);
        }
    } while (sp_uuid_is_zero(u) || sp_image_topic_by_id(img, u));
    return u;
}

static bool is_list_op(int8_t op)
{
    return op == SP_CFG_OP_APPEND || op == SP_CFG_OP_SUBTRACT;
}

/* Checks config i of t (key k, named 'label' in messages) for its
 * operation (SET when t->cops is NULL): NULL, or a message for
 * INVALID_CONFIG. */
static const char *check_config_value(const sp_ctl_topic_t *t, int i, const sp_topic_key_t *k,
                                      const char *label, sp_arena_t *a)
{
    int8_t op = t->cops ? t->cops[i] : SP_CFG_OP_SET;
    if (t->cvalues[i].len < 0)
        return t->cops && op != SP_CFG_OP_DELETE ? "Null value not supported for this operation" : NULL;
    if (op == SP_CFG_OP_DELETE)
        return NULL;
    if (is_list_op(op) && k->type != SP_CT_LIST)
        return "APPEND and SUBTRACT apply to list configs only";
    char *v = sp_arena_strdup(a, t->cvalues[i].ptr, (size_t)t->cvalues[i].len);
    /* a NUL byte would cut the value short here and be refused by the
     * metadata loader at the next start: refused now */
    const char *why = !v ? "out of memory"
                      : memchr(t->cvalues[i].ptr, 0, (size_t)t->cvalues[i].len) ? "a value cannot hold a NUL byte"
                                                                               : sp_topic_config_check(k, v);
    if (!why)
        return NULL;
    char *m = sp_arena_alloc(a, 160 + (size_t)t->cvalues[i].len);
    if (m)
        sprintf(m, "Invalid value %s for configuration %s: %s", v, label, why);
    return m ? m : why;
}

/* Checks the configs of a create or an alter; NULL or a message. */
static const char *check_configs(sp_ctl_topic_t *t, sp_arena_t *a, int16_t *err)
{
    for (int i = 0; i < t->nconfigs; i++) {
        const sp_topic_key_t *k = sp_topic_key(t->ckeys[i].ptr, t->ckeys[i].len);
        *err = SP_ERR_INVALID_CONFIG;
        if (!k) {
            char *m = sp_arena_alloc(a, 80 + (size_t)t->ckeys[i].len);
            if (m)
                sprintf(m, "Unknown topic config name: %.*s", (int)t->ckeys[i].len, t->ckeys[i].ptr);
            return m ? m : "Unknown topic config name";
        }
        const char *why = check_config_value(t, i, k, k->name, a);
        if (why)
            return why;
    }
    *err = 0;
    return NULL;
}

static const sp_topic_info_t *find_topic_const(const sp_image_t *img, const sp_ctl_topic_t *t)
{
    if (t->name.len >= 0)
        return sp_image_topic(img, t->name.ptr, t->name.len);
    return sp_image_topic_by_id(img, t->id);
}

/* Emits PartitionRecords for partitions [from, to) of topic id. */
static int add_partitions(sp_controller_t *c, recbuf_t *rb, sp_image_t *next, sp_uuid_t id, int32_t from, int32_t to)
{
    int32_t self = c->broker->node_id;
    for (int32_t p = from; p < to; p++) {
        sp_partition_record_t pr;
        sp_partition_record_init(&pr);
        pr.partition_id = p;
        pr.topic_id = id;
        pr.replicas.v = &self;
        pr.replicas.n = 1;
        pr.isr.v = &self;
        pr.isr.n = 1;
        pr.leader = self;
        pr.leader_epoch = 0;
        pr.partition_epoch = 0;
        if (add_record(c, rb, REC_PARTITION, 0, &pr) != 0 || apply(c, next, REC_PARTITION, &pr) != 0)
            return -1;
    }
    return 0;
}

/* The log settings a topic being created will have: its requested
 * configs over img's dynamic broker configs and server.properties. */
static int new_topic_log_config(sp_controller_t *c, sp_arena_t *a, const sp_ctl_topic_t *t, const sp_image_t *img,
                                sp_log_config_t *out)
{
    int n = 0;
    char **keys = sp_arena_alloc(a, sizeof(char *) * (size_t)(t->nconfigs + 1));
    char **values = sp_arena_alloc(a, sizeof(char *) * (size_t)(t->nconfigs + 1));
    if (!keys || !values)
        return -1;
    for (int i = 0; i < t->nconfigs; i++) {
        if (t->cvalues[i].len < 0)
            continue;
        keys[n] = sp_arena_strdup(a, t->ckeys[i].ptr, (size_t)t->ckeys[i].len);
        values[n] = sp_arena_strdup(a, t->cvalues[i].ptr, (size_t)t->cvalues[i].len);
        if (!keys[n] || !values[n])
            return -1;
        n++;
    }
    sp_topic_log_config(n, keys, values, img, c->cfg, out);
    return 0;
}

/*
 * Creates the logs of partitions [from, to) of t (a topic being created,
 * or one gaining partitions) before any record names them.  All or
 * nothing: on a failure (no fds, no space, an offline directory) the logs
 * created so far are abandoned, t gets KAFKA_STORAGE_ERROR and -1 is
 * returned.  Their names go into op->opened so that a metadata write that
 * fails afterwards can abandon them too.  Metadata thread.
 */
static int open_new_logs(sp_controller_t *c, sp_ctl_op_t *op, sp_ctl_topic_t *t, const sp_image_t *next, int32_t from,
                         int32_t to)
{
    sp_arena_t *a = op->arena;
    sp_log_config_t lc;
    const sp_topic_info_t *ti = find_topic_const(next, t);
    char *name = sp_arena_strdup(a, t->name.ptr, (size_t)t->name.len);
    int rc = name ? 0 : -1;
    if (rc == 0) {
        if (ti) {
            sp_topic_log_config(ti->nconfigs, ti->ckeys, ti->cvalues, next, c->cfg, &lc);
        } else {
            rc = new_topic_log_config(c, a, t, next, &lc);
        }
    }
    int32_t p = from;
    for (; rc == 0 && p < to; p++)
        if (sp_partitions_open(c->parts, name, t->out_id, p, &lc, true) != 0)
            rc = -1;
    if (rc == 0) {
        t->opened_from = from;
        t->opened_to = to;
        return 0;
    }
    for (int32_t k = from; name && k < p; k++)
        sp_partitions_abandon(c->parts, name, k);
    sp_error("meta", "cannot create the log of partition %d of %.*s: the topic change is not made",
             p - 1, (int)t->name.len, t->name.ptr);
    t->error = SP_ERR_KAFKA_STORAGE_ERROR;
    t->message = "The partition logs could not be created (out of file descriptors, disk space, or "
                 "an offline log directory); nothing was changed.";
    return -1;
}

/* Abandons the logs created for t (its records were not written). */
static void abandon_topic_logs(sp_controller_t *c, sp_ctl_topic_t *t)
{
    if (t->opened_to <= t->opened_from)
        return;
    char *name = strndup(t->name.ptr, (size_t)t->name.len);
    for (int32_t p = t->opened_from; name && p < t->opened_to; p++)
        sp_partitions_abandon(c->parts, name, p);
    free(name);
    t->opened_from = t->opened_to = 0;
}

/* Abandons the logs op created (after its metadata could not be written). */
static void abandon_new_logs(sp_controller_t *c, sp_ctl_op_t *op)
{
    for (int i = 0; i < op->n; i++)
        abandon_topic_logs(c, &op->topics[i]);
}

static void create_topic(sp_controller_t *c, sp_ctl_op_t *op, sp_ctl_topic_t *t, sp_image_t *next, recbuf_t *rb)
{
    sp_arena_t *a = op->arena;
    int32_t np = t->num_partitions;
    int16_t rf = t->replication_factor;
    if (!sp_topic_name_valid(t->name.ptr, t->name.len)) {
        t->error = SP_ERR_INVALID_TOPIC_EXCEPTION;
        t->message = "Topic name is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-], not '.' or '..'";
        return;
    }
    if (sp_str_eq_lit(t->name, "__cluster_metadata")) {
        t->error = SP_ERR_INVALID_REQUEST;
        t->message = "Creation of internal topic __cluster_metadata is prohibited.";
        return;
    }
    if (sp_image_topic(next, t->name.ptr, t->name.len)) {
        char *m = sp_arena_alloc(a, 64 + (size_t)t->name.len);
        t->error = SP_ERR_TOPIC_ALREADY_EXISTS;
        if (m)
            sprintf(m, "Topic '%.*s' already exists.", (int)t->name.len, t->name.ptr);
        t->message = m;
        return;
    }
    /* '.' and '_' collide in metric names: Kafka refuses such pairs */
    for (int32_t i = 0; i < next->ntopics; i++) {
        const char *n = next->topics[i]->name;
        if ((int32_t)strlen(n) != t->name.len)
            continue;
        bool same = true;
        for (int32_t k = 0; k < t->name.len && same; k++) {
            char x = n[k] == '.' ? '_' : n[k], y = t->name.ptr[k] == '.' ? '_' : t->name.ptr[k];
            same = x == y;
        }
        if (same) {
            t->error = SP_ERR_INVALID_TOPIC_EXCEPTION;
            t->message = "Topic name collides with an existing topic ('.' and '_' are the same in metric names)";
            return;
        }
    }
    if (t->nassign > 0) {
        if (np != -1 || rf != -1) {
            t->error = SP_ERR_INVALID_REQUEST;
            t->message = "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.";
            return;
        }
        np = t->nassign;
        for (int32_t i = 0; i < t->nassign; i++) {
            bool seen = false;
            for (int32_t k = 0; k < t->nassign; k++)
                seen |= t->assign_index[k] == i;
            if (!seen) {
                t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
                t->message = "Partitions in the replica assignment must be 0..n-1, each once";
                return;
            }
            if (i == 0)
                rf = (int16_t)t->assign_nbrokers[i];
            if (t->assign_nbrokers[i] != rf || rf <= 0) {
                t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
                t->message = "All partitions must have the same, non-zero number of replicas";
                return;
            }
            for (int32_t r = 0; r < t->assign_nbrokers[i]; r++) {
                if (!sp_image_broker(next, t->assign_brokers[i][r])) {
                    t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
                    t->message = "The replica assignment names a broker that is not registered";
                    return;
                }
            }
        }
    }
    if (np == -1)
        np = (int32_t)sp_config_long(c->cfg, "num.partitions");
    if (rf == -1)
        rf = (int16_t)sp_config_long(c->cfg, "default.replication.factor");
    if (np <= 0) {
        t->error = SP_ERR_INVALID_PARTITIONS;
        t->message = "Number of partitions was set to an invalid non-positive value.";
        return;
    }
    if (np > SP_MAX_PARTITIONS) {
        t->error = SP_ERR_INVALID_PARTITIONS;
        t->message = "Number of partitions is above the limit of this broker (100000).";
        return;
    }
    if (rf <= 0) {
        t->error = SP_ERR_INVALID_REPLICATION_FACTOR;
        t->message = "Replication factor must be larger than 0, or -1 to use the default value.";
        return;
    }
    if (rf > next->nbrokers) {
        char *m = sp_arena_alloc(a, 200);
        t->error = SP_ERR_INVALID_REPLICATION_FACTOR;
        if (m)
            sprintf(m, "Unable to replicate the partition %d time(s): The target replication factor of %d "
                       "cannot be reached because only %d broker(s) are registered.", rf, rf, next->nbrokers);
        t->message = m;
        return;
    }
    int16_t err;
    const char *why = check_configs(t, a, &err);
    if (why) {
        t->error = err;
        t->message = why;
        return;
    }
    t->out_partitions = np;
    t->out_rf = rf;
    t->out_id = new_topic_id(next);
    if (op->validate_only)
        return;
    /* the logs first: a topic whose logs cannot all be created is not
     * written at all (no partition in the metadata without its log) */
    if (open_new_logs(c, op, t, next, 0, np) != 0)
        return;
    sp_topic_record_t tr;
    sp_topic_record_init(&tr);
    tr.name = t->name;
    tr.topic_id = t->out_id;
    if (add_record(c, rb, REC_TOPIC, 0, &tr) != 0 ||
        apply(c, next, REC_TOPIC, &tr) != 0 || add_partitions(c, rb, next, t->out_id, 0, np) != 0)
        goto oom;
    for (int i = 0; i < t->nconfigs; i++) {
        if (t->cvalues[i].len < 0)
            continue;
        sp_config_record_t cr;
        sp_config_record_init(&cr);
        cr.resource_type = RES_TOPIC;
        cr.resource_name = t->name;
        cr.name = t->ckeys[i];
        cr.value = t->cvalues[i];
        if (add_record(c, rb, REC_CONFIG, 0, &cr) != 0 ||
            apply(c, next, REC_CONFIG, &cr) != 0)
            goto oom;
    }
    return;
oom:
    t->error = SP_ERR_UNKNOWN_SERVER_ERROR;
    t->message = "out of memory";
    abandon_topic_logs(c, t);
}

static const sp_topic_info_t *find_topic(const sp_image_t *img, sp_ctl_topic_t *t)
{
    return find_topic_const(img, t);
}

static void delete_topic(sp_controller_t *c, sp_ctl_op_t *op, sp_ctl_topic_t *t, sp_image_t *next, recbuf_t *rb)
{
    const sp_topic_info_t *ti = find_topic(next, t);
    (void)op;
    if (!ti) {
        t->error = t->name.len >= 0 ? SP_ERR_UNKNOWN_TOPIC_OR_PARTITION : SP_ERR_UNKNOWN_TOPIC_ID;
        return;
    }
    t->out_id = ti->id;
    if (t->name.len < 0)
        t->name = sp_str_c(sp_arena_strdup(op->arena, ti->name, strlen(ti->name)));
    sp_remove_topic_record_t rr;
    sp_remove_topic_record_init(&rr);
    rr.topic_id = ti->id;
    if (add_record(c, rb, REC_REMOVE_TOPIC, 0, &rr) != 0 ||
        apply(c, next, REC_REMOVE_TOPIC, &rr) != 0) {
        t->error = SP_ERR_UNKNOWN_SERVER_ERROR;
        t->message = "out of memory";
    }
}

static void create_partitions(sp_controller_t *c, sp_ctl_op_t *op, sp_ctl_topic_t *t, sp_image_t *next, recbuf_t *rb)
{
    sp_arena_t *a = op->arena;
    const sp_topic_info_t *ti = find_topic(next, t);
    if (!ti) {
        t->error = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    int32_t cur = ti->npartitions;
    sp_uuid_t id = ti->id;
    if (t->num_partitions > SP_MAX_PARTITIONS) {
        t->error = SP_ERR_INVALID_PARTITIONS;
        t->message = "Number of partitions is above the limit of this broker (100000).";
        return;
    }
    if (t->num_partitions <= cur) {
        char *m = sp_arena_alloc(a, 160);
        t->error = SP_ERR_INVALID_PARTITIONS;
        if (m)
            sprintf(m, t->num_partitions == cur ? "Topic already has %d partitions."
                                               : "Topic currently has %d partitions, which is higher than the requested %d.",
                    cur, t->num_partitions);
        t->message = m;
        return;
    }
    if (t->nassign > 0) {
        if (t->nassign != t->num_partitions - cur) {
            t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
            t->message = "The number of assignments does not match the number of new partitions";
            return;
        }
        for (int32_t i = 0; i < t->nassign; i++)
            for (int32_t r = 0; r < t->assign_nbrokers[i]; r++)
                if (!sp_image_broker(next, t->assign_brokers[i][r])) {
                    t->error = SP_ERR_INVALID_REPLICA_ASSIGNMENT;
                    t->message = "The replica assignment names a broker that is not registered";
                    return;
                }
    }
    t->out_id = id;
    t->out_partitions = t->num_partitions;
    if (op->validate_only)
        return;
    if (t->name.len < 0)
        t->name = sp_str_c(sp_arena_strdup(a, ti->name, strlen(ti->name)));
    if (open_new_logs(c, op, t, next, cur, t->num_partitions) != 0)
        return;
    if (add_partitions(c, rb, next, id, cur, t->num_partitions) != 0) {
        t->error = SP_ERR_UNKNOWN_SERVER_ERROR;
        t->message = "out of memory";
        abandon_topic_logs(c, t);
    }
}

/* Value of key in the topic's overrides, or NULL. */
static const char *override_of(const sp_topic_info_t *ti, const char *key, int32_t klen)
{
    for (int i = 0; i < ti->nconfigs; i++)
        if ((int32_t)strlen(ti->ckeys[i]) == klen && memcmp(ti->ckeys[i], key, (size_t)klen) == 0)
            return ti->cvalues[i];
    return NULL;
}

/* Writes one ConfigRecord (resource type RES_TOPIC or RES_BROKER, name
 * the topic or "" / this node's id; value null removes) to rb and applies
 * it to next.  0 or -1 (OOM). */
static int emit_config(sp_controller_t *c, recbuf_t *rb, sp_image_t *next, int8_t type, sp_str_t resource, sp_str_t key,
                       sp_str_t value)
{
    sp_config_record_t cr;
    sp_config_record_init(&cr);
    cr.resource_type = type;
    cr.resource_name = resource;
    cr.name = key;
    cr.value = value;
    if (add_record(c, rb, REC_CONFIG, 0, &cr) != 0)
        return -1;
    return apply(c, next, REC_CONFIG, &cr);
}

/* List APPEND/SUBTRACT on the current effective value. */
static char *list_edit(sp_arena_t *a, const char *cur, sp_str_t v, bool append)
{
    size_t cap = strlen(cur) + (size_t)v.len + 4;
    char *out = sp_arena_alloc(a, cap);
    if (!out)
        return NULL;
    out[0] = 0;
    char *copy = sp_arena_strdup(a, cur, strlen(cur)), *save = NULL;
    bool present = false;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        bool match = (int32_t)strlen(tok) == v.len && memcmp(tok, v.ptr, (size_t)v.len) == 0;
        present |= match;
        if (!append && match)
            continue;
        if (out[0])
            strcat(out, ",");
        strcat(out, tok);
    }
    if (append && !present) {
        if (out[0])
            strcat(out, ",");
        strncat(out, v.ptr, (size_t)v.len);
    }
    return out;
}

/* The value IncrementalAlterConfigs op k of t writes: SET's value, null
 * for DELETE, or cur (the key's current value) edited for APPEND and
 * SUBTRACT. 0, or -1 with t->error and t->message set. */
static int incremental_value(sp_arena_t *a, sp_ctl_topic_t *t, int k, const char *cur, sp_str_t *out)
{
    switch (t->cops[k]) {
    case SP_CFG_OP_SET:
        *out = t->cvalues[k];
        return 0;
    case SP_CFG_OP_DELETE:
        *out = SP_STR_NULL;
        return 0;
    case SP_CFG_OP_APPEND:
    case SP_CFG_OP_SUBTRACT:
        *out = sp_str_c(list_edit(a, cur, t->cvalues[k], t->cops[k] == SP_CFG_OP_APPEND));
        if (out->len >= 0)
            return 0;
        t->error = SP_ERR_UNKNOWN_SERVER_ERROR;
        t->message = "out of memory";
        return -1;
    default:
        t->error = SP_ERR_INVALID_REQUEST;
        t->message = "Unknown config operation";
        return -1;
    }
}

static void alter_configs(sp_controller_t *c, sp_ctl_op_t *op, sp_ctl_topic_t *t, sp_image_t *next, recbuf_t *rb)
{
    sp_arena_t *a = op->arena;
    const sp_topic_info_t *ti = find_topic(next, t);
    if (!ti) {
        /* Kafka's text (Sarama 1.22 reads a failed alter from the text alone) */
        t->error = SP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        char *m = sp_arena_alloc(a, 40 + (size_t)(t->name.len > 0 ? t->name.len : 0));
        if (m)
            sprintf(m, "The topic '%.*s' does not exist.", (int)(t->name.len > 0 ? t->name.len : 0), t->name.ptr);
        t->message = m;
        return;
    }
    int16_t err;
    const char *why = check_configs(t, a, &err);
    if (why) {
        t->error = err;
        t->message = why;
        return;
    }
    if (op->validate_only)
        return;
    sp_str_t topic = sp_str_c(sp_arena_strdup(a, ti->name, strlen(ti->name)));
    if (op->kind == SP_CTL_ALTER_CONFIGS) {
        /* the request's set replaces every override */
        for (int i = ti->nconfigs - 1; i >= 0; i--) {
            bool kept = false;
            for (int k = 0; k < t->nconfigs; k++)
                kept |= sp_str_eq_lit(t->ckeys[k], ti->ckeys[i]) && t->cvalues[k].len >= 0;
            if (!kept && emit_config(c, rb, next, RES_TOPIC, topic, sp_str_c(sp_arena_strdup(a, ti->ckeys[i], strlen(ti->ckeys[i]))),
                                     SP_STR_NULL) != 0)
                goto oom;
            ti = find_topic(next, t);
        }
        for (int k = 0; k < t->nconfigs; k++)
            if (t->cvalues[k].len >= 0 && emit_config(c, rb, next, RES_TOPIC, topic, t->ckeys[k], t->cvalues[k]) != 0)
                goto oom;
        return;
    }
    for (int k = 0; k < t->nconfigs; k++) {
        const char *cur = NULL;
        if (is_list_op(t->cops[k])) {
            int src;
            ti = find_topic(next, t);
            cur = override_of(ti, t->ckeys[k].ptr, t->ckeys[k].len);
            if (!cur)
                cur = sp_topic_config_value(sp_topic_key(t->ckeys[k].ptr, t->ckeys[k].len), 0, NULL,
                                            NULL, next, c->cfg, &src);
        }
        sp_str_t value;
        if (incremental_value(a, t, k, cur, &value) != 0)
            return;
        if (emit_config(c, rb, next, RES_TOPIC, topic, t->ckeys[k], value) != 0)
            goto oom;
    }
    return;
oom:
    t->error = SP_ERR_UNKNOWN_SERVER_ERROR;
    t->message = "out of memory";
}

/* Checks the keys and values of an alter on a BROKER resource; NULL or a
 * message (arena or static) with *err.  Only broker keys that are some
 * topic key's synonym may change (INVALID_REQUEST for the others, all of
 * them named as Kafka does); values pass that topic key's validator. */
static const char *check_broker_configs(sp_ctl_topic_t *t, sp_arena_t *a, int16_t *err)
{
    size_t need = 64;
    int bad = 0;
    for (int i = 0; i < t->nconfigs; i++)
        if (!sp_topic_key_by_broker_key(t->ckeys[i].ptr, t->ckeys[i].len)) {
            need += (size_t)(t->ckeys[i].len > 0 ? t->ckeys[i].len : 0) + 2;
            bad++;
        }
    if (bad) {
        char *m = sp_arena_alloc(a, need);
        *err = SP_ERR_INVALID_REQUEST;
        if (!m)
            return "Cannot update these configs dynamically";
        strcpy(m, "Cannot update these configs dynamically: [");
        for (int i = 0, n = 0; i < t->nconfigs; i++) {
            if (sp_topic_key_by_broker_key(t->ckeys[i].ptr, t->ckeys[i].len))
                continue;
            if (n++)
                strcat(m, ", ");
            strncat(m, t->ckeys[i].ptr, (size_t)(t->ckeys[i].len > 0 ? t->ckeys[i].len : 0));
        }
        strcat(m, "]");
        return m;
    }
    *err = SP_ERR_INVALID_CONFIG;
    for (int i = 0; i < t->nconfigs; i++) {
        const sp_topic_key_t *k = sp_topic_key_by_broker_key(t->ckeys[i].ptr, t->ckeys[i].len);
        const char *why = check_config_value(t, i, k, k->broker_key, a);
        if (why)
            return why;
    }
    *err = 0;
    return NULL;
}

/* AlterConfigs / IncrementalAlterConfigs on a BROKER resource: t->name is
 * "" (the cluster default) or this node's id (the handler refused other
 * names).  AlterConfigs replaces every dynamic config of that resource
 * with the request's set, as Kafka does; the incremental form applies
 * SET, DELETE, APPEND and SUBTRACT per key.  Metadata thread. */
static void alter_broker_configs(sp_controller_t *c, sp_ctl_op_t *op, sp_ctl_topic_t *t, sp_image_t *next, recbuf_t *rb)
{
    sp_arena_t *a = op->arena;
    bool def = t->name.len <= 0;
    int16_t err;
    const char *why = check_broker_configs(t, a, &err);
    if (why) {
        t->error = err;
        t->message = why;
        return;
    }
    if (op->validate_only)
        return;
    char self[16];
    snprintf(self, sizeof(self), "%" PRId32, c->broker->node_id);
    sp_str_t res = sp_str_c(def ? "" : sp_arena_strdup(a, self, strlen(self)));
    if (res.len < 0)
        goto oom;
    if (op->kind == SP_CTL_ALTER_CONFIGS) {
        /* downwards: a removal moves the last entry into its place */
        for (int32_t i = next->ndyn - 1; i >= 0; i--) {
            const sp_dyn_config_t *d = &next->dyn[i];
            bool kept = false;
            if (d->is_default != def)
                continue;
            for (int k = 0; k < t->nconfigs; k++)
                kept |= sp_str_eq_lit(t->ckeys[k], d->key) && t->cvalues[k].len >= 0;
            if (kept)
                continue;
            sp_str_t key = sp_str_c(sp_arena_strdup(a, d->key, strlen(d->key)));
            if (key.len < 0 || emit_config(c, rb, next, RES_BROKER, res, key, SP_STR_NULL) != 0)
                goto oom;
        }
        for (int k = 0; k < t->nconfigs; k++)
            if (t->cvalues[k].len >= 0 && emit_config(c, rb, next, RES_BROKER, res, t->ckeys[k], t->cvalues[k]) != 0)
                goto oom;
        return;
    }
    for (int k = 0; k < t->nconfigs; k++) {
        /* APPEND / SUBTRACT edit the resource's current value: its own
         * dynamic one, else what it inherits */
        int src;
        const char *cur = is_list_op(t->cops[k])
            ? sp_topic_broker_value(sp_topic_key_by_broker_key(t->ckeys[k].ptr, t->ckeys[k].len), next,
                                    !def, c->cfg, &src)
            : NULL;
        sp_str_t value;
        if (incremental_value(a, t, k, cur, &value) != 0)
            return;
        if (emit_config(c, rb, next, RES_BROKER, res, t->ckeys[k], value) != 0)
            goto oom;
    }
    return;
oom:
    t->error = SP_ERR_UNKNOWN_SERVER_ERROR;
    t->message = "out of memory";
}

/*
 * The next block of producer ids for this broker (Kafka's
 * ProducerIdControlManager.generateNextProducerId): [cur, cur + 1000) with
 * cur the image's next_producer_id, written as a ProducerIdsRecord whose
 * NextProducerId is cur + 1000 and applied to next.  Refused with
 * UNKNOWN_SERVER_ERROR, nothing written, when the block's end would pass
 * INT64_MAX, as Kafka does.  The broker epoch is -1 (the schema's
 * default): Spool's brokers have no registration epoch yet.  Metadata
 * thread.
 */
static void alloc_producer_ids(sp_controller_t *c, sp_ctl_op_t *op, sp_image_t *next, recbuf_t *rb)
{
    int64_t cur = next->next_producer_id;
    if (cur > INT64_MAX - SP_PID_BLOCK_SIZE) {
        op->pids.error = SP_ERR_UNKNOWN_SERVER_ERROR;
        op->pids.message = "Exhausted all producerIds as the next block's end producerId "
                           "has exceeded long type limit";
        return;
    }
    sp_producer_ids_record_t pr;
    sp_producer_ids_record_init(&pr);
    pr.broker_id = c->broker->node_id;
    pr.broker_epoch = -1;
    pr.next_producer_id = cur + SP_PID_BLOCK_SIZE;
    if (add_record(c, rb, REC_PRODUCER_IDS, 0, &pr) != 0 || apply(c, next, REC_PRODUCER_IDS, &pr) != 0) {
        op->pids.error = SP_ERR_UNKNOWN_SERVER_ERROR;
        op->pids.message = "out of memory";
        return;
    }
    op->pids.first = cur;
}

/* Sets err and message on every part of op that has no error yet. */
static void fail_all(sp_ctl_op_t *op, int16_t err, const char *message)
{
    for (int i = 0; i < op->n; i++)
        if (!op->topics[i].error) {
            op->topics[i].error = err;
            op->topics[i].message = message;
        }
    if (op->kind == SP_CTL_ALLOC_PRODUCER_IDS && !op->pids.error) {
        op->pids.error = err;
        op->pids.message = message;
    }
}

static void run_op(sp_controller_t *c, sp_ctl_op_t *op)
{
    if (atomic_load(&c->failed)) {
        fail_all(op, SP_ERR_KAFKA_STORAGE_ERROR,
                 "The metadata log is offline after a storage error; restart the broker.");
        return;
    }
    sp_image_t *cur = sp_image_acquire(c->images);
    sp_image_t *next = sp_image_clone(cur);
    recbuf_t rb;
    memset(&rb, 0, sizeof(rb));
    sp_image_release(cur);
    if (!next) {
        fail_all(op, SP_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
        return;
    }
    sp_batch_builder_init(&rb.b, 0, now_ms());
    if (op->kind == SP_CTL_ALLOC_PRODUCER_IDS)
        alloc_producer_ids(c, op, next, &rb);
    for (int i = 0; i < op->n; i++) {
        sp_ctl_topic_t *t = &op->topics[i];
        if (t->error)
            continue; /* refused by the handler already */
        switch (op->kind) {
        case SP_CTL_CREATE_TOPICS: create_topic(c, op, t, next, &rb); break;
        case SP_CTL_DELETE_TOPICS: delete_topic(c, op, t, next, &rb); break;
        case SP_CTL_CREATE_PARTITIONS: create_partitions(c, op, t, next, &rb); break;
        case SP_CTL_ALTER_CONFIGS:
        case SP_CTL_INCR_ALTER_CONFIGS:
            if (t->resource_type == RES_BROKER)
                alter_broker_configs(c, op, t, next, &rb);
            else
                alter_configs(c, op, t, next, &rb);
            break;
        case SP_CTL_ALLOC_PRODUCER_IDS: break; /* no topics */
        }
    }
    if (rb.count == 0 || op->validate_only) {
        sp_batch_builder_free(&rb.b);
        sp_image_release(next);
        abandon_new_logs(c, op);
        return;
    }
    /* durable first: the batch is on disk before anyone sees its effect
     * (the logs of new partitions exist already, see open_new_logs) */
    size_t len = 0;
    uint8_t *batch = sp_batch_builder_finish(&rb.b, &len);
    sp_batch_builder_free(&rb.b);
    int64_t last = -1;
    int rc = batch ? sp_metalog_append(c->log, batch, len, &last) : -1;
    free(batch);
    if (rc != 0) {
        sp_error("meta", "cannot write the metadata log (%s)", !batch ? "out of memory" : "see above");
        fail_all(op, SP_ERR_KAFKA_STORAGE_ERROR, sp_metalog_failed(c->log)
                 ? "The metadata log failed; the change may or may not be applied after a restart."
                 : "The metadata log could not be written; nothing was changed.");
        sp_image_release(next);
        abandon_new_logs(c, op);
        return;
    }
    next->offset = last;
    c->bytes_since_snapshot += rb.bytes;
    /* every broker's part: publish, and bring local partitions in line
     * (deleted topics' logs go, changed settings apply) */
    sp_meta_publish(&c->pub, next);
    for (int i = 0; i < op->n; i++) {
        sp_ctl_topic_t *t = &op->topics[i];
        if (!t->error && op->kind == SP_CTL_CREATE_TOPICS)
            sp_info("meta", "created topic %.*s with %d partition%s", (int)t->name.len, t->name.ptr,
                    t->out_partitions, t->out_partitions == 1 ? "" : "s");
    }
    if (op->kind == SP_CTL_ALLOC_PRODUCER_IDS)
        sp_info("meta", "producer ids %" PRId64 " to %" PRId64 " granted to broker %" PRId32, op->pids.first,
                op->pids.first + SP_PID_BLOCK_SIZE - 1, c->broker->node_id);
    int64_t every = sp_config_long(c->cfg, "metadata.log.max.record.bytes.between.snapshots");
    if (c->bytes_since_snapshot >= every) {
        sp_image_t *now = sp_image_acquire(c->images);
        write_snapshot(c, now, now->offset + 1);
        sp_image_release(now);
    }
}

static void *controller_main(void *arg)
{
    sp_controller_t *c = arg;
    pthread_setname_np(pthread_self(), "spool-metadata");
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->head && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        sp_ctl_op_t *op = c->head;
        if (op) {
            c->head = op->next;
            if (!c->head)
                c->tail = NULL;
        }
        pthread_mutex_unlock(&c->mu);
        if (!op)
            break;
        run_op(c, op);
        op->complete(op);
    }
    return NULL;
}

void sp_controller_submit(sp_controller_t *c, sp_ctl_op_t *op)
{
    op->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = op;
    else
        c->head = op;
    c->tail = op;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- start / stop ------------------------------------------------------ */

/* The metadata log failed on an I/O error.  No further metadata change is
 * made (they answer KAFKA_STORAGE_ERROR), and the log directory holding
 * it goes offline, as Kafka does when its metadata log directory fails. */
static void on_meta_failed(void *ctx, int err)
{
    sp_controller_t *c = ctx;
    atomic_store(&c->failed, true);
    sp_error("meta", "the metadata log failed (%s): topics and configs can no longer change; "
             "restart the broker once the disk is fixed", strerror(err));
    sp_logmgr_fail_dir(c->logs, 0, "the metadata log in it failed");
}

static int controller_start(sp_controller_t *c, const sp_broker_t *b, const sp_config_t *cfg)
{
    c->broker = b;
    c->cfg = cfg;
    c->parts = b->partitions;
    c->logs = b->logs;
    c->images = b->images;
    atomic_store(&c->failed, false);
    if (sp_meta_publisher_init(&c->pub, b->partitions, b->logs, b->images, cfg, b->node_id) != 0)
        return -1;
    c->log = sp_metalog_open_local(b->logs, b->log_dirs[0], on_meta_failed, c);
    if (!c->log) {
        sp_error("meta", "no metadata log: not starting");
        return -1;
    }
    sp_image_t *img = sp_image_new(b->cluster_id, b->node_id);
    if (!img || sp_image_add_broker(img, b->node_id, b->adv_host, b->adv_port, b->rack) != 0 ||
        sp_meta_follow(&c->pub, c->log, img, &c->bytes_since_snapshot) != 0) {
        sp_error("meta", "cannot load the metadata in %s: not starting", b->log_dirs[0]);
        if (img)
            sp_image_release(img);
        return -1;
    }
    sp_info("meta", "metadata loaded: %d topic%s (metadata log end offset %" PRId64 ")", img->ntopics,
            img->ntopics == 1 ? "" : "s", img->offset + 1);
    if (sp_meta_publish_first(&c->pub, img) != 0) {
        sp_error("meta", "cannot open the partitions: not starting");
        sp_image_release(img);
        return -1;
    }
    c->running = true;
    if (pthread_create(&c->thread, NULL, controller_main, c) != 0) {
        c->running = false;
        return -1;
    }
    return 0;
}

sp_controller_t *sp_controller_start(const sp_broker_t *b, const sp_config_t *cfg)
{
    sp_controller_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (controller_start(c, b, cfg) != 0) {
        sp_controller_stop(c);
        return NULL;
    }
    return c;
}

void sp_controller_stop(sp_controller_t *c)
{
    if (!c)
        return;
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        c->running = false;
    }
    /* a metadata log that cannot be flushed and closed cleanly keeps
     * its directory from a clean-shutdown marker */
    if (c->log && sp_metalog_close(c->log) != 0)
        sp_logmgr_fail_dir(c->logs, 0, "the metadata log could not be closed cleanly");
    c->log = NULL;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
