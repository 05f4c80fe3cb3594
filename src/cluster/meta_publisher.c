/* meta_publisher.c - following the metadata log and publishing images
 * (see meta_publisher.h). */
#include "cluster/meta_publisher.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/partition.h"
#include "cluster/topic_config.h"
#include "log/logmgr.h"
#include "proto/batch.h"
#include "util/log.h"

int sp_meta_publisher_init(sp_meta_publisher_t *p, sp_partitions_t *parts, sp_logmgr_t *logs,
                           sp_image_holder_t *images, const sp_config_t *cfg, int32_t node_id)
{
    memset(p, 0, sizeof(*p));
    p->parts = parts;
    p->logs = logs;
    p->images = images;
    p->cfg = cfg;
    if (sp_meta_loader_init(&p->loader, node_id) != 0) {
        sp_error("meta", "the metadata record schemas are missing from the codec");
        return -1;
    }
    return 0;
}

/* ---- follow ---------------------------------------------------------------- */

typedef struct replay {
    const sp_meta_publisher_t *p;
    sp_image_t *img;
    int64_t bytes;
} replay_t;

static int replay_record(const sp_record_t *rec, void *ctx)
{
    replay_t *r = ctx;
    if (rec->value.len >= 0 && sp_meta_loader_apply(&r->p->loader, r->img, rec->value.ptr, rec->value.len) != 0) {
        sp_error("meta", "metadata record at offset %" PRId64 " could not be decoded or applied",
                 rec->offset);
        return -1;
    }
    r->bytes += rec->value.len > 0 ? rec->value.len : 0;
    return 0;
}

int sp_meta_follow(sp_meta_publisher_t *p, sp_metalog_t *log, sp_image_t *img, int64_t *bytes_after)
{
    int64_t upto = 0, next = -1;
    uint8_t *snap = NULL;
    size_t len = 0;
    replay_t r = { p, img, 0 };
    int found = sp_metalog_snapshot_load(log, &upto, &snap, &len);
    if (found > 0 && sp_batches_each_record(snap, len, replay_record, &r, &next) != 0)
        found = -1;
    free(snap);
    if (found < 0) {
        sp_error("meta", "the metadata snapshot is damaged or unreadable; refusing to start rather "
                 "than lose the topics it holds: restore it");
        return -1;
    }
    if (found > 0)
        sp_info("meta", "loaded metadata snapshot (records below offset %" PRId64 ")", upto);
    int64_t end = sp_metalog_end(log);
    if (end < upto) {
        sp_error("meta", "the metadata log ends at offset %" PRId64 " before its snapshot (%" PRId64 ")",
                 end, upto);
        return -1;
    }
    r.bytes = 0; /* counts the log after the snapshot only */
    if (sp_metalog_replay(log, upto, replay_record, &r) != 0) {
        sp_error("meta", "cannot replay the metadata log (nothing was changed on disk)");
        return -1;
    }
    img->offset = sp_metalog_end(log) - 1;
    *bytes_after = r.bytes;
    return 0;
}

/* ---- publish --------------------------------------------------------------- */

static void log_config_of(const sp_meta_publisher_t *p, const sp_image_t *img, const sp_topic_info_t *t,
                          sp_log_config_t *out)
{
    sp_topic_log_config(t->nconfigs, t->ckeys, t->cvalues, img, p->cfg, out);
}

/* Opens the partitions of t this broker lacks, with settings lc; 0 or -1
 * (logged). */
static int open_topic(sp_meta_publisher_t *p, const sp_topic_info_t *t, const sp_log_config_t *lc, bool fresh)
{
    int rc = 0;
    for (int32_t i = 0; i < t->npartitions; i++)
        if (sp_partitions_open(p->parts, t->name, t->id, i, lc, fresh) != 0) {
            sp_error("meta", "cannot open partition %d of %s", i, t->name);
            rc = -1;
        }
    return rc;
}

static bool keep_partition(const char *topic, int32_t p, void *ctx)
{
    const sp_image_t *img = ctx;
    const sp_topic_info_t *t = sp_image_topic(img, topic, (int32_t)strlen(topic));
    return t && p < t->npartitions;
}

int sp_meta_publish_first(sp_meta_publisher_t *p, sp_image_t *img)
{
    for (int32_t i = 0; i < img->ntopics; i++) {
        sp_log_config_t lc;
        log_config_of(p, img, img->topics[i], &lc);
        if (open_topic(p, img->topics[i], &lc, false) != 0)
            return -1;
    }
    sp_logmgr_sweep(p->logs, keep_partition, img);
    sp_image_publish(p->images, img);
    return 0;
}

static bool same_dyn(const sp_image_t *a, const sp_image_t *b)
{
    if (a->ndyn != b->ndyn)
        return false;
    for (int32_t i = 0; i < a->ndyn; i++)
        if (a->dyn[i].is_default != b->dyn[i].is_default || strcmp(a->dyn[i].key, b->dyn[i].key) != 0 ||
            strcmp(a->dyn[i].value, b->dyn[i].value) != 0)
            return false;
    return true;
}

static void retire_topic(sp_meta_publisher_t *p, const sp_topic_info_t *t)
{
    sp_partitions_delete_topic(p->parts, t->name);
    sp_info("meta", "deleted topic %s", t->name);
}

/* t is new or changed in next: opens what is missing, applies its settings. */
static void refresh_topic(sp_meta_publisher_t *p, const sp_image_t *next, const sp_topic_info_t *t, bool fresh)
{
    sp_log_config_t lc;
    log_config_of(p, next, t, &lc);
    open_topic(p, t, &lc, fresh);
    sp_partitions_set_config(p->parts, t->name, &lc);
}

void sp_meta_publish(sp_meta_publisher_t *p, sp_image_t *next)
{
    sp_image_t *prev = sp_image_acquire(p->images);
    sp_image_publish(p->images, next); /* next stays alive: prev's holder... */
    sp_image_t *now = sp_image_acquire(p->images); /* ...and this reference keep it */
    bool all = !same_dyn(prev, now);
    /* both topic arrays are sorted by name: one merge walk */
    int32_t i = 0, j = 0;
    while (i < prev->ntopics || j < now->ntopics) {
        const sp_topic_info_t *a = i < prev->ntopics ? prev->topics[i] : NULL;
        const sp_topic_info_t *b = j < now->ntopics ? now->topics[j] : NULL;
        int cmp = !a ? 1 : !b ? -1 : strcmp(a->name, b->name);
        if (cmp < 0) {
            retire_topic(p, a);
            i++;
        } else if (cmp > 0) {
            refresh_topic(p, now, b, true);
            j++;
        } else {
            if (memcmp(a->id.b, b->id.b, sizeof(a->id.b)) != 0) { /* deleted and created again */
                retire_topic(p, a);
                refresh_topic(p, now, b, true);
            } else if (a != b || all) {
                refresh_topic(p, now, b, true);
            }
            i++;
            j++;
        }
    }
    if (all)
        sp_info("meta", "dynamic broker configuration changed; log settings of %" PRId32 " topic%s updated",
                now->ntopics, now->ntopics == 1 ? "" : "s");
    sp_image_release(now);
    sp_image_release(prev);
}
