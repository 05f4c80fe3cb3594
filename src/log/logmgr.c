/* logmgr.c - partition logs, flush and housekeeping threads, checkpoints
 * (see logmgr.h). */
#include "log/logmgr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/tpmap.h"

#define CLEAN_MARKER ".kafka_cleanshutdown"
#define FLUSH_CHECK_MS 1000          /* flush.ms / page-cache mode check */
#define HOUSEKEEPING_TICK_MS 1000
#define CHECKPOINT_MAX_BYTES (256 << 20)
#define MAX_TOPIC_NAME 249

typedef struct ckpt {
    char *topic;
    int32_t partition;
    int64_t recovery, log_start;
} ckpt_t;

typedef struct entry {
    char *topic;
    int32_t partition;
    int dir;                  /* index in dirs */
    sp_plog_t *log;
    int64_t ckpt_recovery;    /* the checkpoints read at start, kept for a */
    int64_t ckpt_log_start;   /* log that failed to open (written back as is) */
} entry_t;

static struct {
    char **dirs;
    int ndirs;
    bool *clean;              /* per dir: the last stop was clean */
    _Atomic bool *offline;    /* per dir: a storage failure took it offline */
    int *nlogs;               /* per dir: registered logs (rw) */
    ckpt_t *ckpts;            /* sorted by (topic, partition) */
    int nckpts;
    sp_fdcache_t *files;
    pthread_rwlock_t rw;      /* guards map */
    sp_tpmap_t map;           /* topic-partition -> entry_t * (owned) */
    bool running;
    /* flush thread */
    pthread_t flusher;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    sp_plog_t *qhead;         /* kicked logs, linked by flush_next (qmu) */
    sp_plog_t **batch;        /* the pass in progress (flush thread only) */
    int batch_cap;
    bool stop;
    /* housekeeping thread (all under hmu) */
    pthread_t keeper;
    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    bool hstop;
    bool ckpt_dirty;          /* some offset moved since the last checkpoint */
    bool ckpt_soon;           /* a log start moved: write at the start-offset interval */
    bool deleted_pending;     /* -delete directories to remove */
    int64_t retention_check_ms, checkpoint_ms, start_checkpoint_ms;
} M = { .rw = PTHREAD_RWLOCK_INITIALIZER, .qmu = PTHREAD_MUTEX_INITIALIZER,
        .hmu = PTHREAD_MUTEX_INITIALIZER }; /* the condvars: init_cond at start */

/* rw held: entry i of the registry. */
static inline entry_t *ent(int i)
{
    return M.map.v[i].val;
}

/* ---- checkpoints ------------------------------------------------------- */

static int ckpt_cmp(const char *topic, int32_t p, const ckpt_t *c)
{
    int r = strcmp(topic, c->topic);
    return r ? r : (p < c->partition ? -1 : p > c->partition);
}

static int ckpt_sort_cmp(const void *a, const void *b)
{
    const ckpt_t *x = a, *y = b;
    return ckpt_cmp(x->topic, x->partition, y);
}

/* The checkpoints of topic-partition (O(log n)), or NULL. */
static ckpt_t *ckpt_find(const char *topic, int32_t p)

{
    int lo = 0, hi = M.nckpts - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = ckpt_cmp(topic, p, &M.ckpts[mid]);
        if (c == 0)
            return &M.ckpts[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_TOPIC_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Parses a decimal integer in [min, max] spanning exactly s[0..n). */
static bool parse_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/*
 * Reads one checkpoint file strictly, as Kafka's CheckpointFile does:
 * version 0, a count, then exactly that many "topic partition offset"
 * lines with a valid topic name, partition and offset, and nothing else.
 * A malformed file is ignored whole, with a message: recovery then scans
 * from offset 0 (which) or keeps every segment (log start), both safe.
 * which: 0 recovery points, 1 log starts.  Start-up only.
 */
static void read_checkpoint(const char *dir, const char *name, int which)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    char *text = malloc(CHECKPOINT_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, CHECKPOINT_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!text)
        return;
    const char *why = NULL;
    int line = 0;
    ckpt_t *got = NULL;
    int64_t count = 0, n = 0;
    if (len > CHECKPOINT_MAX_BYTES) {
        why = "too large";
        goto bad;
    }
    text[len] = 0;
    char *p = text, *end = text + len;
    for (line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            why = "the last line has no newline";
            goto bad;
        }
        size_t ll = (size_t)(nl - p);
        int64_t v;
        if (line == 1) {
            if (!parse_int(p, ll, 0, 0, &v)) {
                why = "unknown version";
                goto bad;
            }
        } else if (line == 2) {
            if (!parse_int(p, ll, 0, 10000000, &count)) {
                why = "bad entry count";
                goto bad;
            }
            got = count ? calloc((size_t)count, sizeof(*got)) : NULL;
            if (count && !got) {
                why = "out of memory";
                goto bad;
            }
        } else {
            char *s1 = memchr(p, ' ', ll), *s2 = s1 ? memchr(s1 + 1, ' ', (size_t)(nl - s1 - 1)) : NULL;
            int64_t part, off;
            if (n >= count) {
                why = "more entries than its count";
                goto bad;
            }
            if (!s1 || !s2 || !name_ok(p, (size_t)(s1 - p)) ||
                !parse_int(s1 + 1, (size_t)(s2 - s1 - 1), 0, INT32_MAX, &part) ||
                !parse_int(s2 + 1, (size_t)(nl - s2 - 1), 0, INT64_MAX, &off)) {
                why = "a malformed entry";
                goto bad;
            }
            got[n].topic = strndup(p, (size_t)(s1 - p));
            got[n].partition = (int32_t)part;
            got[n].recovery = which == 0 ? off : -1;
            got[n].log_start = which == 1 ? off : -1;
            if (!got[n].topic) {
                why = "out of memory";
                goto bad;
            }
            n++;
        }
        p = nl + 1;
    }
    if (line <= 2 || n != count) {
        why = "fewer entries than its count";
        goto bad;
    }
    /* kept unsorted until both files are read (merge_checkpoints) */
    ckpt_t *nc = n ? realloc(M.ckpts, sizeof(*nc) * (size_t)(M.nckpts + n)) : M.ckpts;
    if (n && !nc) {
        why = "out of memory";
        goto bad;
    }
    M.ckpts = nc;
    if (n)
        memcpy(M.ckpts + M.nckpts, got, sizeof(*got) * (size_t)n);
    M.nckpts += (int)n;
    free(got);
    free(text);
    return;
bad:
    sp_error("log", "%s: malformed checkpoint file (%s, line %d): ignored whole; %s", path, why, line,
             which == 0 ? "partitions of this directory are recovered from offset 0"
                        : "log start offsets come from the first segments");
    for (int64_t i = 0; i < n; i++)
        free(got[i].topic);
    free(got);
    free(text);
}

/* Sorts what read_checkpoint gathered and merges the entries of one
 * partition (a recovery point from one file, a log start from the other;
 * -1 = not given, read as 0).  O(n log n) at start. */
static void merge_checkpoints(void)
{
    if (M.nckpts == 0)
        return;
    qsort(M.ckpts, (size_t)M.nckpts, sizeof(*M.ckpts), ckpt_sort_cmp);
    int out = 0;
    for (int i = 0; i < M.nckpts; i++) {
        ckpt_t *c = &M.ckpts[i];
        if (out > 0 && ckpt_cmp(c->topic, c->partition, &M.ckpts[out - 1]) == 0) {
            ckpt_t *k = &M.ckpts[out - 1];
            if (c->recovery >= 0)
                k->recovery = c->recovery;
            if (c->log_start >= 0)
                k->log_start = c->log_start;
            free(c->topic);
            continue;
        }
        M.ckpts[out++] = *c;
    }
    M.nckpts = out;
    for (int i = 0; i < M.nckpts; i++) {
        if (M.ckpts[i].recovery < 0)
            M.ckpts[i].recovery = 0;
        if (M.ckpts[i].log_start < 0)
            M.ckpts[i].log_start = 0;
    }
}

/* Writes the three checkpoint files of every directory that is online.
 * The values are taken under the registry lock; the files are written
 * after it is released.  Housekeeping thread or shutdown.  Returns the
 * number of directories whose files could not be written. */
static int write_checkpoints(bool *dir_ok)
{
    static const char *names[] = { "recovery-point-offset-checkpoint", "log-start-offset-checkpoint",
                                   "replication-offset-checkpoint" };
    int failed = 0;
    for (int d = 0; d < M.ndirs; d++) {
        if (atomic_load(&M.offline[d])) {
            if (dir_ok)
                dir_ok[d] = false;
            continue;
        }
        char *text[3] = { NULL, NULL, NULL };
        size_t len[3] = { 0, 0, 0 }, cap[3] = { 0, 0, 0 };
        bool oom = false;
        pthread_rwlock_rdlock(&M.rw);
        int count = 0;
        for (int i = 0; i < M.map.n; i++)
            count += ent(i)->dir == d;
        for (int w = 0; w < 3; w++) {
            cap[w] = 32 + (size_t)count * 300;
            text[w] = malloc(cap[w]);
            if (!text[w])
                oom = true;
            else
                len[w] = (size_t)snprintf(text[w], cap[w], "0\n%d\n", count);
        }
        for (int i = 0; i < M.map.n && !oom; i++) {
            entry_t *e = ent(i);
            if (e->dir != d)
                continue;
            sp_log_offsets_t o;
            sp_plog_offsets(e->log, &o);
            int64_t v[3] = { o.flushed, o.log_start, o.hw };
            if (o.failed) { /* keep what the files said: nothing newer is known durable */
                v[0] = e->ckpt_recovery;
                v[1] = e->ckpt_log_start;
                v[2] = e->ckpt_recovery;
            }
            for (int w = 0; w < 3; w++)
                len[w] += (size_t)snprintf(text[w] + len[w], cap[w] - len[w], "%s %d %" PRId64 "\n",
                                           e->topic, e->partition, v[w]);
        }
        pthread_rwlock_unlock(&M.rw);
        bool ok = !oom;
        for (int w = 0; w < 3 && ok; w++) {
            if (sp_write_file_atomic(M.dirs[d], names[w], text[w], len[w]) != 0) {
                sp_error("log", "cannot write %s/%s: %s", M.dirs[d], names[w], strerror(errno));
                ok = false;
            }
        }
        for (int w = 0; w < 3; w++)
            free(text[w]);
        if (!ok) {
            failed++;
            if (dir_ok)
                dir_ok[d] = false;
        }
    }
    return failed;
}

/* ---- background removal ------------------------------------------------ */

static void remove_deleted_dirs(void)
{
    for (int d = 0; d < M.ndirs; d++) {
        DIR *dir = opendir(M.dirs[d]);
        struct dirent *e;
        bool any = false;
        if (!dir)
            continue;
        while ((e = readdir(dir))) {
            size_t n = strlen(e->d_name);
            if (n > 7 && strcmp(e->d_name + n - 7, "-delete") == 0) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", M.dirs[d], e->d_name);
                sp_rm_tree(p);
                any = true;
            }
        }
        closedir(dir);
        if (any)
            sp_fsync_dir(M.dirs[d]);
    }
}

/* ---- directory failure --------------------------------------------------- */

static int dir_of(const sp_plog_t *l)
{
    for (int d = 0; d < M.ndirs; d++) {
        size_t n = strlen(M.dirs[d]);
        if (strncmp(l->dir, M.dirs[d], n) == 0 && l->dir[n] == '/' && !strchr(l->dir + n + 1, '/'))
            return d;
    }
    return -1;
}

/* Takes directory d offline: every log in it goes FAILED. */
static void fail_dir(int d, const char *why)
{
    bool was = false;
    if (d < 0 || d >= M.ndirs || !atomic_compare_exchange_strong(&M.offline[d], &was, true))
        return;
    sp_error("log", "log directory %s is offline: %s; its partitions answer KAFKA_STORAGE_ERROR "
             "and it gets no clean-shutdown marker", M.dirs[d], why);
    pthread_rwlock_rdlock(&M.rw);
    for (int i = 0; i < M.map.n; i++)
        if (ent(i)->dir == d)
            sp_plog_fail(ent(i)->log, "its log directory went offline", 0);
    pthread_rwlock_unlock(&M.rw);
}

/* plog hook: l failed on an I/O error. */
static void on_log_failed(void *ctx, sp_plog_t *l, int err)
{
    (void)ctx;
    (void)err;
    fail_dir(dir_of(l), "a write or fsync failed");
}

static void on_log_kick(void *ctx, sp_plog_t *l)
{
    (void)ctx;
    sp_flusher_kick(l);
}

/* ---- flush thread ------------------------------------------------------ */

void sp_flusher_kick(sp_plog_t *l)
{
    pthread_mutex_lock(&M.qmu);
    if (!l->flush_queued && M.running) {
        l->flush_queued = true;
        sp_plog_ref(l);
        l->flush_next = M.qhead;
        M.qhead = l;
        pthread_cond_signal(&M.qcv);
    }
    pthread_mutex_unlock(&M.qmu);
    pthread_mutex_lock(&M.hmu);
    M.ckpt_dirty = true;
    pthread_mutex_unlock(&M.hmu);
}

/* Waits on cv (made by init_cond) for at most ms milliseconds. */
static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &until);
}

static void *flusher_main(void *arg)
{
    int64_t last_check = sp_mono_ms();
    (void)arg;
    pthread_setname_np(pthread_self(), "spool-flush");
    for (;;) {
        pthread_mutex_lock(&M.qmu);
        if (!M.qhead && !M.stop)
            timed_wait(&M.qcv, &M.qmu, FLUSH_CHECK_MS / 5);
        /* Take the whole queue into a private array before letting go of
         * the lock.  Once flush_queued is cleared, a kick may queue the same
         * log again and rewrite its flush_next link: walking the old list
         * after the unlock would follow the new queue (a log unref'ed twice,
         * another never), so no link is read outside qmu. */
        int n = 0;
        for (sp_plog_t *l = M.qhead; l; l = l->flush_next)
            n++;
        if (n > M.batch_cap) {
            sp_plog_t **nb = realloc(M.batch, sizeof(*nb) * (size_t)n);
            if (nb) {
                M.batch = nb;
                M.batch_cap = n;
            }
        }
        int taken = 0;
        while (M.qhead && taken < M.batch_cap) {
            sp_plog_t *l = M.qhead;
            M.qhead = l->flush_next;
            l->flush_next = NULL;
            l->flush_queued = false; /* kicks from now on queue it again */
            M.batch[taken++] = l;
        }
        bool stop = M.stop && !M.qhead;
        pthread_mutex_unlock(&M.qmu);

        /* one pass: every kicked log synced, waiters of all completed */
        for (int i = 0; i < taken; i++) {
            sp_plog_flush(M.batch[i]);
            sp_plog_unref(M.batch[i]);
        }
        int64_t now = sp_mono_ms();
        if (now - last_check >= FLUSH_CHECK_MS) { /* flush.ms and page-cache mode */
            last_check = now;
            pthread_rwlock_rdlock(&M.rw);
            for (int i = 0; i < M.map.n; i++)
                if (sp_plog_flush_due(ent(i)->log, now))
                    sp_flusher_kick(ent(i)->log);
            pthread_rwlock_unlock(&M.rw);
        }
        if (stop)
            break;
    }
    return NULL;
}

/* ---- housekeeping thread -------------------------------------------------- */

static void *keeper_main(void *arg)
{
    int64_t last_ckpt = sp_mono_ms(), last_retention = sp_mono_ms(), last_start = sp_mono_ms();
    (void)arg;
    pthread_setname_np(pthread_self(), "spool-keeper");
    pthread_mutex_lock(&M.hmu);
    while (!M.hstop) {
        timed_wait(&M.hcv, &M.hmu, HOUSEKEEPING_TICK_MS);
        if (M.hstop)
            break;
        bool deleted = M.deleted_pending;
        M.deleted_pending = false;
        pthread_mutex_unlock(&M.hmu);

        if (deleted)
            remove_deleted_dirs();
        int64_t now = sp_mono_ms();
        int dropped = 0;
        if (now - last_retention >= M.retention_check_ms) {
            last_retention = now;
            int64_t wall = sp_wall_ms();
            pthread_rwlock_rdlock(&M.rw);
            int n = M.map.n;
            sp_plog_t **logs = malloc(sizeof(*logs) * (size_t)(n ? n : 1));
            for (int i = 0; logs && i < n; i++) {
                logs[i] = ent(i)->log;
                sp_plog_ref(logs[i]);
            }
            pthread_rwlock_unlock(&M.rw);
            for (int i = 0; logs && i < n; i++) {
                dropped += sp_plog_retention(logs[i], wall);
                sp_plog_unref(logs[i]);
            }
            free(logs);
        }

        pthread_mutex_lock(&M.hmu);
        if (dropped)
            M.ckpt_soon = true; /* the new log starts */
        bool due = M.ckpt_dirty && now - last_ckpt >= M.checkpoint_ms;
        due |= M.ckpt_soon && now - last_start >= M.start_checkpoint_ms;
        due |= dropped > 0; /* retention moved log starts: written at once */
        if (due) {
            M.ckpt_dirty = M.ckpt_soon = false;
            pthread_mutex_unlock(&M.hmu);
            write_checkpoints(NULL);
            last_ckpt = last_start = now;
            pthread_mutex_lock(&M.hmu);
        }
    }
    pthread_mutex_unlock(&M.hmu);
    return NULL;
}

/* Housekeeping wanted: log starts moved (write checkpoints at the
 * start-offset interval) and/or -delete directories to remove. */
static void keeper_poke(bool starts, bool deleted)
{
    pthread_mutex_lock(&M.hmu);
    M.ckpt_soon |= starts;
    M.ckpt_dirty = true;
    M.deleted_pending |= deleted;
    pthread_cond_signal(&M.hcv);
    pthread_mutex_unlock(&M.hmu);
}

/* ---- start ------------------------------------------------------------- */

/* A condition variable whose timed waits use CLOCK_MONOTONIC (timed_wait
 * computes its deadline on that clock; the default, CLOCK_REALTIME, would
 * make every wait return at once). */
static void init_cond(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

int sp_logmgr_start(const sp_logmgr_opts_t *o)
{
    init_cond(&M.qcv);
    init_cond(&M.hcv);
    M.retention_check_ms = o->retention_check_ms > 0 ? o->retention_check_ms : 300000;
    M.checkpoint_ms = o->checkpoint_ms > 0 ? o->checkpoint_ms : 60000;
    M.start_checkpoint_ms = o->start_checkpoint_ms > 0 ? o->start_checkpoint_ms : 60000;
    M.dirs = calloc((size_t)o->ndirs, sizeof(char *));
    M.clean = calloc((size_t)o->ndirs, sizeof(bool));
    M.offline = calloc((size_t)o->ndirs, sizeof(*M.offline));
    M.nlogs = calloc((size_t)o->ndirs, sizeof(int));
    M.files = sp_fdcache_new(o->max_open_files);
    if (!M.dirs || !M.clean || !M.offline || !M.nlogs || !M.files)
        return -1;
    M.ndirs = o->ndirs;
    for (int d = 0; d < o->ndirs; d++) {
        char path[4096];
        M.dirs[d] = strdup(o->dirs[d]);
        read_checkpoint(o->dirs[d], "recovery-point-offset-checkpoint", 0);
        read_checkpoint(o->dirs[d], "log-start-offset-checkpoint", 1);
        merge_checkpoints();
        snprintf(path, sizeof(path), "%s/%s", o->dirs[d], CLEAN_MARKER);
        M.clean[d] = access(path, F_OK) == 0;
        if (M.clean[d]) {
            /* from now on a crash must be noticed: the marker goes first */
            if (unlink(path) != 0 || sp_fsync_dir(o->dirs[d]) != 0) {
                sp_error("log", "cannot remove %s: %s", path, strerror(errno));
                return -1;
            }
        } else {
            sp_info("log", "%s: no clean-shutdown marker: partitions will be recovered from their recovery points",
                    o->dirs[d]);
        }
    }
    M.stop = M.hstop = false; /* a new life (unit tests start it again) */
    M.ckpt_dirty = M.ckpt_soon = false;
    M.running = true;
    M.deleted_pending = true; /* leftovers of a previous run */
    if (pthread_create(&M.flusher, NULL, flusher_main, NULL) != 0) {
        M.running = false;
        return -1;
    }
    if (pthread_create(&M.keeper, NULL, keeper_main, NULL) != 0) {
        pthread_mutex_lock(&M.qmu);
        M.stop = true;
        pthread_cond_signal(&M.qcv);
        pthread_mutex_unlock(&M.qmu);
        pthread_join(M.flusher, NULL);
        M.running = false;
        return -1;
    }
    return 0;
}

/* ---- registry ---------------------------------------------------------- */

sp_plog_t *sp_logmgr_get(const char *topic, int32_t topic_len, int32_t partition)
{
    sp_plog_t *l = NULL;
    pthread_rwlock_rdlock(&M.rw);
    int i = sp_tpmap_find(&M.map, topic, topic_len, partition);
    if (i >= 0) {
        l = ent(i)->log;
        sp_plog_ref(l);
    }
    pthread_rwlock_unlock(&M.rw);
    return l;
}

/* A unique name beside path with the given suffix ("delete", "stray"). */
static int aside_name(char *out, size_t cap, const char *path, const char *suffix)
{
    static _Atomic unsigned long long seq; /* any thread: atomic */
    unsigned long long n = atomic_fetch_add(&seq, 1) + 1;
    int w = snprintf(out, cap, "%s.%llx%llx-%s", path, (unsigned long long)sp_wall_ms(), n, suffix);
    return w > 0 && (size_t)w < cap ? 0 : -1;
}

/* Renames a partition directory aside as -stray (data kept).  0 or -1. */
static int set_aside(int d, const char *from, const char *why)
{
    char to[4096];
    if (aside_name(to, sizeof(to), from, "stray") != 0 || rename(from, to) != 0) {
        sp_error("log", "cannot set %s aside: %s", from, strerror(errno));
        return -1;
    }
    sp_warn("log", "%s %s: set aside as %s (its data is kept; move it back to use it)", from, why, to);
    sp_fsync_dir(M.dirs[d]);
    return 0;
}

int sp_logmgr_open_partition(const char *topic, sp_uuid_t topic_id, int32_t partition,
                             const sp_log_config_t *cfg, bool fresh)
{
    char path[4096];
    int dir = -1;
    struct stat st;
    pthread_rwlock_rdlock(&M.rw);
    int i = sp_tpmap_find(&M.map, topic, (int32_t)strlen(topic), partition);
    pthread_rwlock_unlock(&M.rw);
    if (i >= 0)
        return 0;
    for (int d = 0; d < M.ndirs && dir < 0; d++) {
        snprintf(path, sizeof(path), "%s/%s-%d", M.dirs[d], topic, partition);
        if (stat(path, &st) == 0) {
            if (fresh && set_aside(d, path, "is in the way of a new topic") != 0)
                return -1;
            if (!fresh)
                dir = d;
        }
    }
    bool create = dir < 0;
    if (create) { /* the online directory holding the fewest partitions */
        int best = -1, bestn = -1;
        pthread_rwlock_rdlock(&M.rw);
        for (int d = 0; d < M.ndirs; d++) {
            int n = M.nlogs[d];
            if (atomic_load(&M.offline[d]))
                continue;
            if (bestn < 0 || n < bestn) {
                best = d;
                bestn = n;
            }
        }
        pthread_rwlock_unlock(&M.rw);
        if (best < 0) {
            sp_error("log", "no log directory is online for %s-%d", topic, partition);
            return -1;
        }
        dir = best;
        snprintf(path, sizeof(path), "%s/%s-%d", M.dirs[dir], topic, partition);
    }
    ckpt_t *c = fresh ? NULL : ckpt_find(topic, partition);
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = path;
    o.topic = topic;
    o.partition = partition;
    o.topic_id = topic_id;
    o.cfg = cfg;
    o.create = create;
    o.clean = M.clean[dir];
    o.recovery_point = c ? c->recovery : 0;
    o.log_start = c ? c->log_start : 0;
    o.files = M.files;
    o.hooks.kick = on_log_kick;
    o.hooks.failed = on_log_failed;
    sp_plog_t *l = sp_plog_open(&o);
    if (!l)
        return -1;
    if (atomic_load(&M.offline[dir]))
        sp_plog_fail(l, "its log directory is offline", 0);
    pthread_rwlock_wrlock(&M.rw);
    i = sp_tpmap_find(&M.map, topic, (int32_t)strlen(topic), partition);
    if (i >= 0) { /* raced with another open: keep the first */
        pthread_rwlock_unlock(&M.rw);
        sp_plog_unref(l);
        return 0;
    }
    i = -i - 1;
    entry_t *e = calloc(1, sizeof(*e));
    char *name = strdup(topic);
    if (!e || !name || sp_tpmap_insert(&M.map, i, topic, partition, e) != 0) {
        pthread_rwlock_unlock(&M.rw);
        free(e);
        free(name);
        sp_plog_unref(l);
        return -1;
    }
    e->topic = name;
    e->partition = partition;
    e->dir = dir;
    e->log = l;
    e->ckpt_recovery = o.recovery_point;
    e->ckpt_log_start = o.log_start;
    M.nlogs[dir]++;
    pthread_rwlock_unlock(&M.rw);
    if (create)
        sp_flusher_kick(l); /* the new segment files become durable */
    return 0;
}

/* Takes entry i out of the registry, renames its directory for
 * background removal and drops the entry's reference.  rw held for
 * writing. */
static void retire(int i)
{
    char to[4096];
    entry_t *e = sp_tpmap_remove(&M.map, i);
    M.nlogs[e->dir]--;
    sp_plog_mark_deleted(e->log);
    if (aside_name(to, sizeof(to), e->log->dir, "delete") != 0 || rename(e->log->dir, to) != 0)
        sp_error("log", "cannot rename %s for deletion: %s", e->log->dir, strerror(errno));
    else
        sp_fsync_dir(M.dirs[e->dir]);
    sp_plog_unref(e->log);
    free(e->topic);
    free(e);
}

void sp_logmgr_abandon_partition(const char *topic, int32_t partition)
{
    pthread_rwlock_wrlock(&M.rw);
    int i = sp_tpmap_find(&M.map, topic, (int32_t)strlen(topic), partition);
    if (i >= 0)
        retire(i);
    pthread_rwlock_unlock(&M.rw);
    keeper_poke(false, true);
}

void sp_logmgr_delete_topic(const char *topic)
{
    pthread_rwlock_wrlock(&M.rw);
    int i = sp_tpmap_find(&M.map, topic, (int32_t)strlen(topic), 0);
    if (i < 0)
        i = -i - 1;
    while (i < M.map.n && strcmp(M.map.v[i].topic, topic) == 0)
        retire(i);
    pthread_rwlock_unlock(&M.rw);
    keeper_poke(false, true);
}

void sp_logmgr_sweep(bool (*keep)(const char *topic, int32_t partition, void *ctx), void *ctx)
{
    int aside = 0;
    for (int d = 0; d < M.ndirs; d++) {
        DIR *dir = opendir(M.dirs[d]);
        struct dirent *e;
        if (!dir)
            continue;
        while ((e = readdir(dir))) {
            char *dash = strrchr(e->d_name, '-');
            char *end;
            if (!dash || e->d_name[0] == '.' || e->d_type != DT_DIR)
                continue;
            long p = strtol(dash + 1, &end, 10);
            if (*end || end == dash + 1 || p < 0)
                continue;
            char topic[512];
            snprintf(topic, sizeof(topic), "%.*s", (int)(dash - e->d_name), e->d_name);
            if (strcmp(topic, "__cluster_metadata") == 0 || keep(topic, (int32_t)p, ctx))
                continue;
            char from[4096];
            snprintf(from, sizeof(from), "%s/%s", M.dirs[d], e->d_name);
            if (set_aside(d, from, "belongs to no topic in the metadata") == 0)
                aside++;
        }
        closedir(dir);
    }
    if (aside)
        sp_warn("log", "%d partition director%s matched no topic of the metadata and were set aside "
                "as -stray, not deleted: if the metadata was lost or restored from an older copy, "
                "stop the broker, restore it, and rename them back", aside, aside == 1 ? "y" : "ies");
}

bool sp_logmgr_was_clean(int i)
{
    return i >= 0 && i < M.ndirs && M.clean[i];
}

bool sp_logmgr_dir_offline(int i)
{
    return i >= 0 && i < M.ndirs && atomic_load(&M.offline[i]);
}

sp_fdcache_t *sp_logmgr_files(void)
{
    return M.files;
}

int sp_logmgr_dirs(const char *const **dirs)
{
    *dirs = (const char *const *)M.dirs;
    return M.ndirs;
}

int64_t sp_plog_size(sp_plog_t *l)
{
    int64_t total = 0;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->nsegs; i++)
        total += atomic_load(&l->segs[i]->size);
    pthread_mutex_unlock(&l->mu);
    return total;
}

/* Writes and syncs the clean-shutdown marker of directory d. */
static void write_marker(int d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", M.dirs[d], CLEAN_MARKER);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || sp_fsync(fd) != 0)
        sp_error("log", "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (sp_fsync_dir(M.dirs[d]) != 0)
        sp_error("log", "cannot sync %s: %s", M.dirs[d], strerror(errno));
}

void sp_logmgr_shutdown(bool clean)
{
    if (!M.running)
        return;
    pthread_mutex_lock(&M.qmu);
    M.stop = true;
    pthread_cond_signal(&M.qcv);
    pthread_mutex_unlock(&M.qmu);
    pthread_join(M.flusher, NULL);
    pthread_mutex_lock(&M.hmu);
    M.hstop = true;
    pthread_cond_signal(&M.hcv);
    pthread_mutex_unlock(&M.hmu);
    pthread_join(M.keeper, NULL);
    M.running = false;
    /* final flush of everything and the index files, then checkpoints,
     * then the marker of each directory where all of it succeeded; the
     * logs are taken out of the registry first, so that a failure (which
     * takes a directory offline through the registry) never deadlocks */
    bool *dir_ok = calloc((size_t)(M.ndirs ? M.ndirs : 1), sizeof(bool));
    for (int d = 0; dir_ok && d < M.ndirs; d++)
        dir_ok[d] = clean && !atomic_load(&M.offline[d]);
    pthread_rwlock_rdlock(&M.rw);
    int n = M.map.n;
    entry_t **snap = malloc(sizeof(*snap) * (size_t)(n ? n : 1));
    for (int i = 0; snap && i < n; i++)
        snap[i] = ent(i);
    pthread_rwlock_unlock(&M.rw);
    for (int i = 0; snap && i < n; i++) {
        bool ok = sp_plog_flush(snap[i]->log) == 0 && sp_plog_close(snap[i]->log) == 0;
        if (!ok && dir_ok)
            dir_ok[snap[i]->dir] = false;
    }
    write_checkpoints(dir_ok);
    for (int d = 0; d < M.ndirs; d++) {
        if (dir_ok && dir_ok[d] && snap && !atomic_load(&M.offline[d]))
            write_marker(d);
        else if (clean)
            sp_warn("log", "%s: no clean-shutdown marker (a storage failure or a failed final flush): "
                    "the next start recovers its partitions", M.dirs[d]);
    }
    free(snap);
    free(dir_ok);
    pthread_rwlock_wrlock(&M.rw);
    for (int i = 0; i < M.map.n; i++) {
        sp_plog_unref(ent(i)->log);
        free(ent(i)->topic);
        free(ent(i));
    }
    sp_tpmap_free(&M.map);
    pthread_rwlock_unlock(&M.rw);
    for (int i = 0; i < M.nckpts; i++)
        free(M.ckpts[i].topic);
    free(M.ckpts);
    M.ckpts = NULL;
    M.nckpts = 0;
    for (int d = 0; d < M.ndirs; d++)
        free(M.dirs[d]);
    free(M.dirs);
    free(M.clean);
    free(M.offline);
    free(M.nlogs);
    M.nlogs = NULL;
    M.dirs = NULL;
    free(M.batch);
    M.batch = NULL;
    M.batch_cap = 0;
    sp_fdcache_free(M.files);
    M.files = NULL;
}

void sp_logmgr_fail_dir(int d, const char *why)
{
    fail_dir(d, why);
}
