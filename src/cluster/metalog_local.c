/*
 * metalog_local.c - the metadata log of a single node (metalog.h): a
 * partition log, __cluster_metadata-0, fsynced at every append, and
 * snapshot files <offset>-0000000000.checkpoint beside its segments.
 */
#include "cluster/metalog.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/logmgr.h"
#include "log/plog.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

typedef struct local {
    sp_metalog_t base;
    sp_plog_t *log;
    sp_logmgr_t *logs;
    char *dir;
    atomic_bool failed;
    void (*on_failed)(void *ctx, int err);
    void *ctx;
} local_t;

static int local_append(sp_metalog_t *m, uint8_t *batch, size_t len, int64_t *last_offset)
{
    local_t *l = (local_t *)m;
    sp_append_result_t ar;
    sp_plog_append(l->log, batch, len, sp_wall_ms(), &ar);
    if (ar.err) {
        sp_error("meta", "cannot append to the metadata log: %s", sp_log_err_name(ar.err));
        return -1;
    }
    if (sp_plog_flush(l->log) != 0)
        return -1; /* the log is FAILED now (plog.h invariant 6), logged */
    /* no partition above it: its high watermark is what is on disk
     * (plog.h invariant 3) */
    sp_plog_set_hw(l->log, ar.last_offset + 1);
    *last_offset = ar.last_offset;
    return 0;
}

static int local_replay(sp_metalog_t *m, int64_t from, sp_metalog_record_fn *fn, void *ctx)
{
    return sp_plog_scan(((local_t *)m)->log, from, fn, ctx);
}

static int64_t local_end(sp_metalog_t *m)
{
    sp_log_offsets_t o;
    sp_plog_offsets(((local_t *)m)->log, &o);
    return o.leo;
}

/* Whether name is a snapshot file; its offset in *upto. */
static bool snapshot_name(const char *name, int64_t *upto)
{
    size_t n = strlen(name);
    if (n != 20 + 1 + 10 + 11 || strcmp(name + n - 11, ".checkpoint") != 0)
        return false;
    *upto = strtoll(name, NULL, 10);
    return true;
}

static int local_snapshot_load(sp_metalog_t *m, int64_t *upto, uint8_t **bytes, size_t *len)
{
    local_t *l = (local_t *)m;
    *upto = 0;
    *bytes = NULL;
    *len = 0;
    DIR *d = opendir(l->dir);
    struct dirent *e;
    int64_t best = -1, off;
    char bestname[256] = "";
    while (d && (e = readdir(d))) {
        if (snapshot_name(e->d_name, &off) && off > best) {
            best = off;
            snprintf(bestname, sizeof(bestname), "%s", e->d_name);
        }
    }
    if (d)
        closedir(d);
    if (best < 0)
        return 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", l->dir, bestname);
    FILE *f = fopen(path, "rb");
    if (!f) {
        sp_error("meta", "cannot open metadata snapshot %s: %s", path, strerror(errno));
        return -1;
    }
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        sz = ftell(f);
    uint8_t *buf = sz >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)(sz > 0 ? sz : 1)) : NULL;
    bool ok = buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz;
    fclose(f);
    if (!ok) {
        sp_error("meta", "cannot read metadata snapshot %s", path);
        free(buf);
        return -1;
    }
    *upto = best;
    *bytes = buf;
    *len = (size_t)sz;
    return 1;
}

static int local_snapshot_save(sp_metalog_t *m, int64_t upto, const uint8_t *bytes, size_t len)
{
    local_t *l = (local_t *)m;
    char name[64];
    snprintf(name, sizeof(name), "%020" PRId64 "-%010d.checkpoint", upto, 0);
    if (sp_write_file_atomic(l->dir, name, bytes ? bytes : (const uint8_t *)"", len) != 0) {
        sp_error("meta", "cannot write snapshot %s/%s: %s", l->dir, name, strerror(errno));
        return -1;
    }
    /* older snapshots go; the log keeps whole segments from upto on */
    DIR *d = opendir(l->dir);
    struct dirent *e;
    int64_t off;
    while (d && (e = readdir(d))) {
        if (snapshot_name(e->d_name, &off) && off != upto) {
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", l->dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    int64_t start;
    if (sp_plog_delete_records(l->log, upto, &start) != SP_LOG_OK)
        sp_warn("meta", "older metadata log segments were kept (error deleting below %" PRId64 ")", upto);
    return 0;
}

static bool local_failed(sp_metalog_t *m)
{
    local_t *l = (local_t *)m;
    sp_log_offsets_t o;
    sp_plog_offsets(l->log, &o);
    return o.failed || atomic_load(&l->failed);
}

static int local_close(sp_metalog_t *m)
{
    local_t *l = (local_t *)m;
    int rc = 0;
    if (l->log) {
        if (sp_plog_flush(l->log) != 0 || sp_plog_close(l->log) != 0)
            rc = -1;
        sp_plog_unref(l->log);
    }
    free(l->dir);
    free(l);
    return rc;
}

static const sp_metalog_ops_t local_ops = {
    local_append, local_replay, local_end, local_snapshot_load, local_snapshot_save, local_failed, local_close,
};

/* plog hook: the metadata log failed on an I/O error. */
static void on_log_failed(void *ctx, sp_plog_t *log, int err)
{
    local_t *l = ctx;
    (void)log;
    if (!atomic_exchange(&l->failed, true) && l->on_failed)
        l->on_failed(l->ctx, err);
}

sp_metalog_t *sp_metalog_open_local(sp_logmgr_t *logs, const char *log_dir,
                                    void (*on_failed)(void *ctx, int err), void *ctx)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/__cluster_metadata-0", log_dir);
    local_t *l = calloc(1, sizeof(*l));
    if (!l || !(l->dir = strdup(dir))) {
        free(l);
        return NULL;
    }
    l->base.ops = &local_ops;
    l->logs = logs;
    l->on_failed = on_failed;
    l->ctx = ctx;
    atomic_init(&l->failed, false);
    sp_log_config_t lc;
    memset(&lc, 0, sizeof(lc));
    lc.segment_bytes = 64 << 20;
    lc.segment_ms = INT64_MAX / 2;
    lc.segment_index_bytes = 1 << 20;
    lc.index_interval_bytes = 4096;
    lc.flush_messages = 1;
    lc.flush_ms = INT64_MAX;
    lc.max_message_bytes = INT32_MAX;
    lc.retention_ms = -1;
    lc.retention_bytes = -1;
    sp_uuid_t meta_id;
    memset(&meta_id, 0, sizeof(meta_id));
    meta_id.b[15] = 1; /* Kafka's fixed id of the metadata topic */
    /* recovery point 0: after a crash the metadata log is checked whole;
     * strict: damage is refused, never truncated away (plog.h) */
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.topic = "__cluster_metadata";
    o.partition = 0;
    o.topic_id = meta_id;
    o.cfg = &lc;
    o.create = true;
    o.clean = sp_logmgr_was_clean(logs, 0);
    o.strict = true;
    o.files = sp_logmgr_files(logs);
    o.hooks.failed = on_log_failed;
    o.hooks.ctx = l;
    l->log = sp_plog_open(&o);
    if (!l->log) {
        sp_error("meta", "cannot open the metadata log in %s", dir);
        local_close(&l->base);
        return NULL;
    }
    sp_log_offsets_t lo;
    sp_plog_offsets(l->log, &lo);
    if (lo.failed) {
        sp_error("meta", "the metadata log in %s is damaged", dir);
        sp_plog_unref(l->log);
        l->log = NULL;
        local_close(&l->base);
        return NULL;
    }
    return &l->base; /* its hw is its end at open: what replays read */
}
