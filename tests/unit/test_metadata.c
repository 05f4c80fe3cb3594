/* test_metadata.c - the metadata path without the controller
 * (cluster/metalog.h, cluster/meta_publisher.h): a broker follows a
 * metadata log it did not write (here an in-memory implementation of the
 * metalog interface, as a broker following another controller will see
 * one) and publishes images; the publisher brings the local partitions in
 * line by comparing each image with the one it replaces.  Producer ids
 * (ProducerIdsRecord): replayed into the image, and granted by a real
 * controller whose snapshot, followed alone, gives the same next id. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cluster/controller.h"
#include "cluster/meta_publisher.h"
#include "cluster/partition.h"
#include "log/logmgr.h"
#include "proto/batch.h"
#include "proto/gen/config_record.h"
#include "proto/gen/errors.h"
#include "proto/gen/partition_record.h"
#include "proto/gen/producer_ids_record.h"
#include "proto/gen/remove_topic_record.h"
#include "proto/gen/topic_record.h"

/* ---- an in-memory metadata log ------------------------------------------ */

typedef struct mem {
    sp_metalog_t base;
    uint8_t *bytes;              /* record batches, offsets assigned */
    size_t len;
    int64_t end;
    uint8_t *snap;               /* snapshot (NULL: none) */
    size_t snap_len;
    int64_t snap_upto;
    bool snap_damaged;
} mem_t;

static int mem_append(sp_metalog_t *m, uint8_t *batch, size_t len, int64_t *last)
{
    mem_t *x = (mem_t *)m;
    sp_batch_hdr_t h;
    if (sp_batch_hdr_parse(batch, len, &h) != 0)
        return -1;
    sp_batch_set_base_offset(batch, x->end);
    uint8_t *n = realloc(x->bytes, x->len + len);
    if (!n)
        return -1;
    memcpy(n + x->len, batch, len);
    x->bytes = n;
    x->len += len;
    x->end += h.last_offset_delta + 1;
    *last = x->end - 1;
    return 0;
}

typedef struct from_ctx {
    int64_t from;
    sp_metalog_record_fn *fn;
    void *ctx;
} from_ctx_t;

static int skip_before(const sp_record_t *rec, void *ctx)
{
    from_ctx_t *f = ctx;
    return rec->offset < f->from ? 0 : f->fn(rec, f->ctx);
}

static int mem_replay(sp_metalog_t *m, int64_t from, sp_metalog_record_fn *fn, void *ctx)
{
    mem_t *x = (mem_t *)m;
    int64_t next = 0;
    from_ctx_t f = { from, fn, ctx };
    return x->len ? sp_batches_each_record(x->bytes, x->len, skip_before, &f, &next) : 0;
}

static int64_t mem_end(sp_metalog_t *m) { return ((mem_t *)m)->end; }

static int mem_snapshot_load(sp_metalog_t *m, int64_t *upto, uint8_t **bytes, size_t *len)
{
    mem_t *x = (mem_t *)m;
    *upto = 0;
    *bytes = NULL;
    *len = 0;
    if (!x->snap)
        return 0;
    if (x->snap_damaged)
        return -1;
    *bytes = malloc(x->snap_len);
    memcpy(*bytes, x->snap, x->snap_len);
    *len = x->snap_len;
    *upto = x->snap_upto;
    return 1;
}

static int mem_snapshot_save(sp_metalog_t *m, int64_t upto, const uint8_t *bytes, size_t len)
{
    mem_t *x = (mem_t *)m;
    free(x->snap);
    x->snap = malloc(len ? len : 1);
    memcpy(x->snap, bytes, len);
    x->snap_len = len;
    x->snap_upto = upto;
    return 0;
}

static bool mem_failed(sp_metalog_t *m)
{
    (void)m;
    return false;
}

static int mem_close(sp_metalog_t *m)
{
    mem_t *x = (mem_t *)m;
    free(x->bytes);
    free(x->snap);
    free(x);
    return 0;
}

static const sp_metalog_ops_t mem_ops = { mem_append, mem_replay, mem_end, mem_snapshot_load,
                                          mem_snapshot_save, mem_failed, mem_close };

static mem_t *mem_new(void)
{
    mem_t *x = calloc(1, sizeof(*x));
    x->base.ops = &mem_ops;
    return x;
}

/* ---- records ------------------------------------------------------------- */

static sp_meta_loader_t loader;

/* Frames rec (type, version 0) as Kafka's metadata records are framed. */
static void add(sp_batch_builder_t *b, int16_t type, const void *rec)
{
    const sp_msg_desc_t *d = sp_meta_loader_desc(&loader, type);
    size_t body = d->size(rec, 0);
    size_t n = 3 + body;
    uint8_t *buf = malloc(n);
    sp_writer_t w = sp_writer(buf, n);
    sp_write_uvarint(&w, 1);
    sp_write_uvarint(&w, (uint32_t)type);
    sp_write_uvarint(&w, 0);
    d->encode(&w, rec, 0);
    CHECK(!w.err);
    CHECK(sp_batch_builder_add(b, NULL, -1, buf, (int32_t)n, 1000) == 0);
    free(buf);
}

static sp_uuid_t uuid(uint8_t v)
{
    sp_uuid_t u;
    memset(&u, 0, sizeof(u));
    u.b[0] = v;
    return u;
}

static void topic(sp_batch_builder_t *b, const char *name, sp_uuid_t id, int32_t npart)
{
    static int32_t one[1] = { 1 };
    sp_topic_record_t tr;
    sp_topic_record_init(&tr);
    tr.name = sp_str_c(name);
    tr.topic_id = id;
    add(b, SP_META_TOPIC, &tr);
    for (int32_t p = 0; p < npart; p++) {
        sp_partition_record_t pr;
        sp_partition_record_init(&pr);
        pr.partition_id = p;
        pr.topic_id = id;
        pr.replicas.v = one;
        pr.replicas.n = 1;
        pr.isr.v = one;
        pr.isr.n = 1;
        pr.leader = 1;
        add(b, SP_META_PARTITION, &pr);
    }
}

static void topic_config(sp_batch_builder_t *b, const char *name, const char *key, const char *value)
{
    sp_config_record_t cr;
    sp_config_record_init(&cr);
    cr.resource_type = 2;
    cr.resource_name = sp_str_c(name);
    cr.name = sp_str_c(key);
    cr.value = sp_str_c(value);
    add(b, SP_META_CONFIG, &cr);
}

static void producer_ids(sp_batch_builder_t *b, int32_t broker, int64_t next)
{
    sp_producer_ids_record_t pr;
    sp_producer_ids_record_init(&pr);
    pr.broker_id = broker;
    pr.next_producer_id = next;
    add(b, SP_META_PRODUCER_IDS, &pr);
}

static uint8_t *finish(sp_batch_builder_t *b, size_t *len)
{
    uint8_t *p = sp_batch_builder_finish(b, len);
    sp_batch_builder_free(b);
    return p;
}

/* ---- the broker's side ------------------------------------------------- */

typedef struct node {
    char dir[512];
    sp_logmgr_t *logs;
    sp_partitions_t *parts;
    sp_image_holder_t *images;
    sp_config_t *cfg;
    sp_meta_publisher_t pub;
} node_t;

static void node_start(node_t *n, const char *root)
{
    snprintf(n->dir, sizeof(n->dir), "%s/node", root);
    CHECK(mkdir(n->dir, 0755) == 0 || errno == EEXIST);
    char *dirs[] = { n->dir };
    sp_logmgr_opts_t lo;
    memset(&lo, 0, sizeof(lo));
    lo.dirs = dirs;
    lo.ndirs = 1;
    lo.max_open_files = 64;
    n->logs = sp_logmgr_start(&lo);
    n->parts = sp_partitions_new(n->logs);
    n->images = sp_image_holder_new();
    n->cfg = sp_config_new();
    CHECK(n->logs && n->parts && n->images && n->cfg);
    CHECK(sp_meta_publisher_init(&n->pub, n->parts, n->logs, n->images, n->cfg, 1) == 0);
}

static void node_stop(node_t *n)
{
    sp_partitions_free(n->parts);
    sp_logmgr_shutdown(n->logs, true);
    sp_image_holder_free(n->images);
    sp_config_free(n->cfg);
}

static bool has(node_t *n, const char *t, int32_t p)
{
    sp_partition_t *x = sp_partitions_get(n->parts, t, (int32_t)strlen(t), p);
    if (x)
        sp_partition_unref(x);
    return x != NULL;
}

static sp_log_config_t config_of(node_t *n, const char *t, int32_t p)
{
    sp_log_config_t c;
    memset(&c, 0, sizeof(c));
    sp_partition_t *x = sp_partitions_get(n->parts, t, (int32_t)strlen(t), p);
    CHECK(x != NULL);
    if (x) {
        sp_partition_config(x, &c);
        sp_partition_unref(x);
    }
    return c;
}

static bool dir_exists(const char *root, const char *name)
{
    char p[700];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", root, name);
    return stat(p, &st) == 0;
}

/* A snapshot, the log after it, the first publish, and changes after it. */
static void test_follow_and_publish(const char *root)
{
    node_t n;
    node_start(&n, root);
    mem_t *log = mem_new();
    sp_batch_builder_t b;
    size_t len;
    int64_t last;

    /* offsets 0..2: topic a, also in the snapshot; replaying them again
     * would fail (a second TopicRecord for the same name) */
    sp_batch_builder_init(&b, 0, 1000);
    topic(&b, "a", uuid(1), 2);
    uint8_t *p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0 && last == 2);
    CHECK(sp_metalog_snapshot_save(&log->base, 3, p, len) == 0);
    free(p);
    /* after the snapshot: topic b, a config of a */
    sp_batch_builder_init(&b, 0, 1000);
    topic(&b, "b", uuid(2), 1);
    topic_config(&b, "a", "retention.ms", "1234");
    p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0 && last == 5);
    free(p);

    /* a directory the metadata does not name: set aside at the first publish */
    char stray[700];
    snprintf(stray, sizeof(stray), "%s/zz-0", n.dir);
    CHECK(mkdir(stray, 0755) == 0);

    sp_image_t *img = sp_image_new("c", 1);
    int64_t bytes = -1;
    CHECK(sp_meta_follow(&n.pub, &log->base, img, &bytes) == 0);
    CHECK(img->offset == 5 && bytes > 0);
    CHECK(img->ntopics == 2);
    const sp_topic_info_t *ta = sp_image_topic(img, "a", 1);
    CHECK(ta && ta->npartitions == 2 && ta->nconfigs == 1);
    CHECK(sp_meta_publish_first(&n.pub, img) == 0);
    CHECK(has(&n, "a", 0) && has(&n, "a", 1) && has(&n, "b", 0) && !has(&n, "a", 2));
    CHECK(config_of(&n, "a", 0).retention_ms == 1234);
    CHECK(!dir_exists(n.dir, "zz-0"));

    /* a change: b removed, a's config changed, c created */
    sp_image_t *cur = sp_image_acquire(n.images);
    sp_image_t *next = sp_image_clone(cur);
    sp_image_release(cur);
    CHECK(sp_image_remove_topic(next, uuid(2)) == 0);
    CHECK(sp_image_set_topic_config(next, "a", 1, "retention.ms", 12, "999", 3) == 0);
    CHECK(sp_image_add_topic(next, "c", 1, uuid(3)) == 0);
    sp_partition_info_t pi = { .index = 0, .leader = 1 };
    CHECK(sp_image_set_partition(next, uuid(3), &pi) == 0);
    sp_meta_publish(&n.pub, next);
    CHECK(!has(&n, "b", 0));
    CHECK(!dir_exists(n.dir, "b-0"));                 /* renamed for deletion */
    CHECK(has(&n, "c", 0) && dir_exists(n.dir, "c-0"));
    CHECK(config_of(&n, "a", 1).retention_ms == 999);
    int64_t seg_c = config_of(&n, "c", 0).segment_bytes;

    /* a dynamic broker default: every topic without its own override follows */
    cur = sp_image_acquire(n.images);
    next = sp_image_clone(cur);
    sp_image_release(cur);
    CHECK(sp_image_set_broker_config(next, true, "log.segment.bytes", 17, "2000000", 7) == 0);
    CHECK(sp_image_set_broker_config(next, true, "log.retention.ms", 16, "5", 1) == 0);
    sp_meta_publish(&n.pub, next);
    CHECK(seg_c != 2000000 && config_of(&n, "c", 0).segment_bytes == 2000000);
    CHECK(config_of(&n, "c", 0).retention_ms == 5);
    CHECK(config_of(&n, "a", 0).retention_ms == 999); /* its override wins */

    /* the same name again with another id: the old partitions go, the new open */
    cur = sp_image_acquire(n.images);
    next = sp_image_clone(cur);
    sp_image_release(cur);
    CHECK(sp_image_remove_topic(next, uuid(3)) == 0);
    CHECK(sp_image_add_topic(next, "c", 1, uuid(4)) == 0);
    sp_partition_info_t p0 = { .index = 0, .leader = 1 }, p1 = { .index = 1, .leader = 1 };
    CHECK(sp_image_set_partition(next, uuid(4), &p0) == 0 && sp_image_set_partition(next, uuid(4), &p1) == 0);
    sp_meta_publish(&n.pub, next);
    CHECK(has(&n, "c", 0) && has(&n, "c", 1));

    sp_metalog_close(&log->base);
    node_stop(&n);
}

/* What must stop a start: a damaged snapshot, a record that does not
 * decode, a log that ends before its snapshot. */
static void test_follow_refuses(const char *root)
{
    node_t n;
    node_start(&n, root);
    sp_batch_builder_t b;
    size_t len;
    int64_t last, bytes;

    mem_t *log = mem_new();
    sp_batch_builder_init(&b, 0, 1000);
    topic(&b, "a", uuid(1), 1);
    uint8_t *p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0);
    CHECK(sp_metalog_snapshot_save(&log->base, 2, p, len) == 0);
    free(p);
    log->snap_damaged = true;
    sp_image_t *img = sp_image_new("c", 1);
    CHECK(sp_meta_follow(&n.pub, &log->base, img, &bytes) == -1);
    sp_image_release(img);
    /* the same snapshot readable but the log shorter than it */
    log->snap_damaged = false;
    log->snap_upto = 10;
    img = sp_image_new("c", 1);
    CHECK(sp_meta_follow(&n.pub, &log->base, img, &bytes) == -1);
    sp_image_release(img);
    sp_metalog_close(&log->base);

    /* a record of a known type whose body does not decode */
    log = mem_new();
    sp_batch_builder_init(&b, 0, 1000);
    uint8_t bad[] = { 1, SP_META_TOPIC, 0, 0x7f, 0x7f };
    CHECK(sp_batch_builder_add(&b, NULL, -1, bad, (int32_t)sizeof(bad), 1000) == 0);
    p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0);
    free(p);
    img = sp_image_new("c", 1);
    CHECK(sp_meta_follow(&n.pub, &log->base, img, &bytes) == -1);
    sp_image_release(img);
    sp_metalog_close(&log->base);
    node_stop(&n);
}

/* ProducerIdsRecords replayed: the image's next_producer_id is the last
 * one's NextProducerId (snapshot, then log); a record that does not
 * increase it stops the replay (image.h invariant 5, Kafka's replay). */
static void test_producer_ids_replay(const char *root)
{
    node_t n;
    node_start(&n, root);
    sp_batch_builder_t b;
    size_t len;
    int64_t last, bytes;

    mem_t *log = mem_new();
    sp_batch_builder_init(&b, 0, 1000);
    producer_ids(&b, 1, 1000);
    topic(&b, "a", uuid(1), 1);
    uint8_t *p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0 && last == 2);
    CHECK(sp_metalog_snapshot_save(&log->base, 3, p, len) == 0);
    free(p);
    sp_batch_builder_init(&b, 0, 1000);
    producer_ids(&b, 2, 2000);
    producer_ids(&b, 1, 3000);
    p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0 && last == 4);
    free(p);
    sp_image_t *img = sp_image_new("c", 1);
    CHECK(img->next_producer_id == 0);
    CHECK(sp_meta_follow(&n.pub, &log->base, img, &bytes) == 0);
    CHECK(img->next_producer_id == 3000 && img->ntopics == 1);
    sp_image_t *copy = sp_image_clone(img);
    CHECK(copy && copy->next_producer_id == 3000);
    sp_image_release(copy);
    sp_image_release(img);
    /* the snapshot alone */
    mem_t *snap = mem_new();
    CHECK(sp_metalog_snapshot_save(&snap->base, 3, log->snap, log->snap_len) == 0);
    snap->end = 3;
    img = sp_image_new("c", 1);
    CHECK(sp_meta_follow(&n.pub, &snap->base, img, &bytes) == 0);
    CHECK(img->next_producer_id == 1000);
    sp_image_release(img);
    sp_metalog_close(&snap->base);
    /* a grant that goes back (or repeats) is refused */
    sp_batch_builder_init(&b, 0, 1000);
    producer_ids(&b, 1, 3000);
    p = finish(&b, &len);
    CHECK(sp_metalog_append(&log->base, p, len, &last) == 0);
    free(p);
    img = sp_image_new("c", 1);
    CHECK(sp_meta_follow(&n.pub, &log->base, img, &bytes) == -1);
    sp_image_release(img);
    sp_metalog_close(&log->base);
    node_stop(&n);
}

/* ---- the controller's grants ---------------------------------------- */

typedef struct waited {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waited_t;

static void op_done(sp_ctl_op_t *op)
{
    waited_t *w = op->owner;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Runs one SP_CTL_ALLOC_PRODUCER_IDS on c: the block's first id, or -1
 * with *err (when err is given) its error. */
static int64_t alloc_block_err(sp_controller_t *c, int16_t *err)
{
    waited_t w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
    sp_ctl_op_t op;
    memset(&op, 0, sizeof(op));
    op.kind = SP_CTL_ALLOC_PRODUCER_IDS;
    op.complete = op_done;
    op.owner = &w;
    sp_controller_submit(c, &op);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (err)
        *err = op.pids.error;
    return op.pids.error ? -1 : op.pids.first;
}

static int64_t alloc_block(sp_controller_t *c) { return alloc_block_err(c, NULL); }

static int64_t published_next_id(node_t *n)
{
    sp_image_t *img = sp_image_acquire(n->images);
    int64_t v = img->next_producer_id;
    sp_image_release(img);
    return v;
}

static sp_controller_t *controller_start(node_t *n, sp_broker_t *b)
{
    static char *dirs[1];
    memset(b, 0, sizeof(*b));
    dirs[0] = n->dir;
    b->node_id = 1;
    snprintf(b->cluster_id, sizeof(b->cluster_id), "c");
    b->log_dirs = dirs;
    b->nlog_dirs = 1;
    b->adv_host = "127.0.0.1";
    b->adv_port = 9092;
    b->partitions = n->parts;
    b->logs = n->logs;
    b->images = n->images;
    b->config = n->cfg;
    return sp_controller_start(b, n->cfg);
}

/* Blocks granted by the controller, in order, durable across restarts;
 * with a snapshot after every write the snapshot alone carries the next
 * id; a block whose end would pass INT64_MAX is refused. */
static void test_producer_ids_controller(const char *root)
{
    node_t n;
    sp_broker_t b;
    node_start(&n, root);
    CHECK(sp_config_set_kv(n.cfg, "metadata.log.max.record.bytes.between.snapshots=1", "test") == 0);
    sp_controller_t *c = controller_start(&n, &b);
    CHECK(c != NULL);
    CHECK(published_next_id(&n) == 0);
    CHECK(alloc_block(c) == 0);
    CHECK(alloc_block(c) == 1000);
    CHECK(published_next_id(&n) == 2000);
    sp_controller_stop(c);

    /* the snapshot the controller wrote, followed alone */
    sp_metalog_t *ml = sp_metalog_open_local(n.logs, n.dir, NULL, NULL);
    CHECK(ml != NULL);
    int64_t upto = 0, bytes;
    uint8_t *snapbytes = NULL;
    size_t snaplen = 0;
    CHECK(sp_metalog_snapshot_load(ml, &upto, &snapbytes, &snaplen) == 1 && upto == 2);
    mem_t *snap = mem_new();
    CHECK(sp_metalog_snapshot_save(&snap->base, upto, snapbytes, snaplen) == 0);
    snap->end = upto;
    free(snapbytes);
    sp_image_t *img = sp_image_new("c", 1);
    CHECK(sp_meta_follow(&n.pub, &snap->base, img, &bytes) == 0);
    CHECK(img->next_producer_id == 2000);
    sp_image_release(img);
    sp_metalog_close(&snap->base);

    /* a grant near the end of the ids, written as another controller would */
    sp_batch_builder_t bb;
    size_t len;
    int64_t last;
    sp_batch_builder_init(&bb, 0, 1000);
    producer_ids(&bb, 2, INT64_MAX - SP_PID_BLOCK_SIZE + 1);
    uint8_t *p = finish(&bb, &len);
    CHECK(sp_metalog_append(ml, p, len, &last) == 0 && last == 2);
    free(p);
    CHECK(sp_metalog_close(ml) == 0);

    /* a restart: the image has it; the next block would overflow */
    c = controller_start(&n, &b);
    CHECK(c != NULL);
    CHECK(published_next_id(&n) == INT64_MAX - SP_PID_BLOCK_SIZE + 1);
    int16_t err = 0;
    CHECK(alloc_block_err(c, &err) == -1 && err == SP_ERR_UNKNOWN_SERVER_ERROR);
    CHECK(published_next_id(&n) == INT64_MAX - SP_PID_BLOCK_SIZE + 1);
    sp_controller_stop(c);
    node_stop(&n);
}

int main(void)
{
    char root[] = "/tmp/spool-test-metadata-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    CHECK(sp_meta_loader_init(&loader, 1) == 0);
    char a[600], b[600], c[600], d[600];
    snprintf(a, sizeof(a), "%s/a", root);
    snprintf(b, sizeof(b), "%s/b", root);
    snprintf(c, sizeof(c), "%s/c", root);
    snprintf(d, sizeof(d), "%s/d", root);
    CHECK(mkdir(a, 0755) == 0 && mkdir(b, 0755) == 0 && mkdir(c, 0755) == 0 && mkdir(d, 0755) == 0);
    test_follow_and_publish(a);
    test_follow_refuses(b);
    test_producer_ids_replay(c);
    test_producer_ids_controller(d);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return check_summary("test_metadata");
}
