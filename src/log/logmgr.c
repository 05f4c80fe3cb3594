/* logmgr.c - partition logs, flush and housekeeping threads, checkpoints
 * (see logmgr.h). */
#include "log/logmgr.h"

#include "log/cleaner.h"
#include "log/plog_internal.h"

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
    int64_t cleaner;          /* first dirty offset, -1 = none */
} ckpt_t;

typedef struct entry {
    char *topic;
    int32_t partition;
    int dir;                  /* index in dirs */
    sp_plog_t *log;
    int64_t ckpt_recovery;    /* the checkpoints read at start, kept for a */
    int64_t ckpt_log_start;   /* log that failed to open (written back as is) */
    int64_t clean_ckpt;       /* the cleaner's first dirty offset, -1 (cmu) */
    bool cleaning;            /* a cleaner works on it (cmu) */
    bool clean_paused;        /* a cleaning failed: not again until restart (cmu) */
} entry_t;

struct sp_logmgr {
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
    /* cleaner threads (log/cleaner.h) */
    pthread_t *cleaners;
    int ncleaners;
    pthread_mutex_t cmu;      /* entries' cleaning fields */
    pthread_mutex_t ckmu;     /* the cleaner checkpoint files (taken before rw and cmu) */
    pthread_cond_t ccv;
    atomic_bool cstop;
    sp_logmgr_opts_t copts;   /* the cleaner settings */
};

/* rw held: entry i of the registry. */
static inline entry_t *ent(const sp_logmgr_t *m, int i)
{
    return m->map.v[i].val;
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
static ckpt_t *ckpt_find(sp_logmgr_t *m, const char *topic, int32_t p)

{
    int lo = 0, hi = m->nckpts - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = ckpt_cmp(topic, p, &m->ckpts[mid]);
        if (c == 0)
            return &m->ckpts[mid];
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
static void read_checkpoint(sp_logmgr_t *m, const char *dir, const char *name, int which)
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
            got[n].cleaner = which == 2 ? off : -1;
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
    ckpt_t *nc = n ? realloc(m->ckpts, sizeof(*nc) * (size_t)(m->nckpts + n)) : m->ckpts;
    if (n && !nc) {
        why = "out of memory";
        goto bad;
    }
    m->ckpts = nc;
    if (n)
        memcpy(m->ckpts + m->nckpts, got, sizeof(*got) * (size_t)n);
    m->nckpts += (int)n;
    free(got);
    free(text);
    return;
bad:
    sp_error("log", "%s: malformed checkpoint file (%s, line %d): ignored whole; %s", path, why, line,
             which == 0   ? "partitions of this directory are recovered from offset 0"
             : which == 1 ? "log start offsets come from the first segments"
                          : "compacted partitions are cleaned from their start");
    for (int64_t i = 0; i < n; i++)
        free(got[i].topic);
    free(got);
    free(text);
}

/* Sorts what read_checkpoint gathered and merges the entries of one
 * partition (a recovery point from one file, a log start from the other;
 * -1 = not given, read as 0).  O(n log n) at start. */
static void merge_checkpoints(sp_logmgr_t *m)
{
    if (m->nckpts == 0)
        return;
    qsort(m->ckpts, (size_t)m->nckpts, sizeof(*m->ckpts), ckpt_sort_cmp);
    int out = 0;
    for (int i = 0; i < m->nckpts; i++) {
        ckpt_t *c = &m->ckpts[i];
        if (out > 0 && ckpt_cmp(c->topic, c->partition, &m->ckpts[out - 1]) == 0) {
            ckpt_t *k = &m->ckpts[out - 1];
            if (c->recovery >= 0)
                k->recovery = c->recovery;
            if (c->log_start >= 0)
                k->log_start = c->log_start;
            if (c->cleaner >= 0)
                k->cleaner = c->cleaner;
            free(c->topic);
            continue;
        }
        m->ckpts[out++] = *c;
    }
    m->nckpts = out;
    for (int i = 0; i < m->nckpts; i++) {
        if (m->ckpts[i].recovery < 0)
            m->ckpts[i].recovery = 0;
        if (m->ckpts[i].log_start < 0)
            m->ckpts[i].log_start = 0;
    }
}

/* Writes the three checkpoint files of every directory that is online.
 * The values are taken under the registry lock; the files are written
 * after it is released.  Housekeeping thread or shutdown.  Returns the
 * number of directories whose files could not be written. */
static int write_checkpoints(sp_logmgr_t *m, bool *dir_ok)
{
    static const char *names[] = { "recovery-point-offset-checkpoint", "log-start-offset-checkpoint",
                                   "replication-offset-checkpoint" };
    int failed = 0;
    for (int d = 0; d < m->ndirs; d++) {
        if (atomic_load(&m->offline[d])) {
            if (dir_ok)
                dir_ok[d] = false;
            continue;
        }
        char *text[3] = { NULL, NULL, NULL };
        size_t len[3] = { 0, 0, 0 }, cap[3] = { 0, 0, 0 };
        bool oom = false;
        pthread_rwlock_rdlock(&m->rw);
        int count = 0;
        for (int i = 0; i < m->map.n; i++)
            count += ent(m, i)->dir == d;
        for (int w = 0; w < 3; w++) {
            cap[w] = 32 + (size_t)count * 300;
            text[w] = malloc(cap[w]);
            if (!text[w])
                oom = true;
            else
                len[w] = (size_t)snprintf(text[w], cap[w], "0\n%d\n", count);
        }
        for (int i = 0; i < m->map.n && !oom; i++) {
            entry_t *e = ent(m, i);
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
        pthread_rwlock_unlock(&m->rw);
        bool ok = !oom;
        for (int w = 0; w < 3 && ok; w++) {
            if (sp_write_file_atomic(m->dirs[d], names[w], text[w], len[w]) != 0) {
                sp_error("log", "cannot write %s/%s: %s", m->dirs[d], names[w], strerror(errno));
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

static void remove_deleted_dirs(sp_logmgr_t *m)
{
    for (int d = 0; d < m->ndirs; d++) {
        DIR *dir = opendir(m->dirs[d]);
        struct dirent *e;
        bool any = false;
        if (!dir)
            continue;
        while ((e = readdir(dir))) {
            size_t n = strlen(e->d_name);
            if (n > 7 && strcmp(e->d_name + n - 7, "-delete") == 0) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", m->dirs[d], e->d_name);
                sp_rm_tree(p);
                any = true;
            }
        }
        closedir(dir);
        if (any)
            sp_fsync_dir(m->dirs[d]);
    }
}

/* ---- directory failure --------------------------------------------------- */

static int dir_of(const sp_logmgr_t *m, const sp_plog_t *l)
{
    const char *path = sp_plog_dir(l);
    for (int d = 0; d < m->ndirs; d++) {
        size_t n = strlen(m->dirs[d]);
        if (strncmp(path, m->dirs[d], n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/'))
            return d;
    }
    return -1;
}

/* Takes directory d offline: every log in it goes FAILED. */
static void fail_dir(sp_logmgr_t *m, int d, const char *why)
{
    bool was = false;
    if (d < 0 || d >= m->ndirs || !atomic_compare_exchange_strong(&m->offline[d], &was, true))
        return;
    sp_error("log", "log directory %s is offline: %s; its partitions answer KAFKA_STORAGE_ERROR "
             "and it gets no clean-shutdown marker", m->dirs[d], why);
    pthread_rwlock_rdlock(&m->rw);
    for (int i = 0; i < m->map.n; i++)
        if (ent(m, i)->dir == d)
            sp_plog_fail(ent(m, i)->log, "its log directory went offline", 0);
    pthread_rwlock_unlock(&m->rw);
}

/* plog hook: l failed on an I/O error. */
static void on_log_failed(void *ctx, sp_plog_t *l, int err)
{
    sp_logmgr_t *m = ctx;
    (void)err;
    fail_dir(m, dir_of(m, l), "a write or fsync failed");
}

static void on_log_kick(void *ctx, sp_plog_t *l)
{
    sp_logmgr_kick(ctx, l);
}

/* ---- flush thread ------------------------------------------------------ */

void sp_logmgr_kick(sp_logmgr_t *m, sp_plog_t *l)
{
    pthread_mutex_lock(&m->qmu);
    if (!l->flush_queued && m->running) {
        l->flush_queued = true;
        sp_plog_ref(l);
        l->flush_next = m->qhead;
        m->qhead = l;
        pthread_cond_signal(&m->qcv);
    }
    pthread_mutex_unlock(&m->qmu);
    pthread_mutex_lock(&m->hmu);
    m->ckpt_dirty = true;
    pthread_mutex_unlock(&m->hmu);
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
    sp_logmgr_t *m = arg;
    int64_t last_check = sp_mono_ms();
    pthread_setname_np(pthread_self(), "spool-flush");
    for (;;) {
        pthread_mutex_lock(&m->qmu);
        if (!m->qhead && !m->stop)
            timed_wait(&m->qcv, &m->qmu, FLUSH_CHECK_MS / 5);
        /* Take the whole queue into a private array before letting go of
         * the lock.  Once flush_queued is cleared, a kick may queue the same
         * log again and rewrite its flush_next link: walking the old list
         * after the unlock would follow the new queue (a log unref'ed twice,
         * another never), so no link is read outside qmu. */
        int n = 0;
        for (sp_plog_t *l = m->qhead; l; l = l->flush_next)
            n++;
        if (n > m->batch_cap) {
            sp_plog_t **nb = realloc(m->batch, sizeof(*nb) * (size_t)n);
            if (nb) {
                m->batch = nb;
                m->batch_cap = n;
            }
        }
        int taken = 0;
        while (m->qhead && taken < m->batch_cap) {
            sp_plog_t *l = m->qhead;
            m->qhead = l->flush_next;
            l->flush_next = NULL;
            l->flush_queued = false; /* kicks from now on queue it again */
            m->batch[taken++] = l;
        }
        bool stop = m->stop && !m->qhead;
        pthread_mutex_unlock(&m->qmu);

        /* one pass: every kicked log synced, waiters of all completed */
        for (int i = 0; i < taken; i++) {
            sp_plog_flush(m->batch[i]);
            sp_plog_unref(m->batch[i]);
        }
        int64_t now = sp_mono_ms();
        if (now - last_check >= FLUSH_CHECK_MS) { /* flush.ms and page-cache mode */
            last_check = now;
            pthread_rwlock_rdlock(&m->rw);
            for (int i = 0; i < m->map.n; i++)
                if (sp_plog_flush_due(ent(m, i)->log, now))
                    sp_logmgr_kick(m, ent(m, i)->log);
            pthread_rwlock_unlock(&m->rw);
        }
        if (stop)
            break;
    }
    return NULL;
}

/* ---- housekeeping thread -------------------------------------------------- */

static void *keeper_main(void *arg)
{
    sp_logmgr_t *m = arg;
    int64_t last_ckpt = sp_mono_ms(), last_retention = sp_mono_ms(), last_start = sp_mono_ms();
    pthread_setname_np(pthread_self(), "spool-keeper");
    pthread_mutex_lock(&m->hmu);
    while (!m->hstop) {
        timed_wait(&m->hcv, &m->hmu, HOUSEKEEPING_TICK_MS);
        if (m->hstop)
            break;
        bool deleted = m->deleted_pending;
        m->deleted_pending = false;
        pthread_mutex_unlock(&m->hmu);

        if (deleted)
            remove_deleted_dirs(m);
        int64_t now = sp_mono_ms();
        int dropped = 0;
        if (now - last_retention >= m->retention_check_ms) {
            last_retention = now;
            int64_t wall = sp_wall_ms();
            pthread_rwlock_rdlock(&m->rw);
            int n = m->map.n;
            sp_plog_t **logs = malloc(sizeof(*logs) * (size_t)(n ? n : 1));
            for (int i = 0; logs && i < n; i++) {
                logs[i] = ent(m, i)->log;
                sp_plog_ref(logs[i]);
            }
            pthread_rwlock_unlock(&m->rw);
            for (int i = 0; logs && i < n; i++) {
                dropped += sp_plog_retention(logs[i], wall);
                sp_plog_unref(logs[i]);
            }
            free(logs);
        }

        pthread_mutex_lock(&m->hmu);
        if (dropped)
            m->ckpt_soon = true; /* the new log starts */
        bool due = m->ckpt_dirty && now - last_ckpt >= m->checkpoint_ms;
        due |= m->ckpt_soon && now - last_start >= m->start_checkpoint_ms;
        due |= dropped > 0; /* retention moved log starts: written at once */
        if (due) {
            m->ckpt_dirty = m->ckpt_soon = false;
            pthread_mutex_unlock(&m->hmu);
            write_checkpoints(m, NULL);
            last_ckpt = last_start = now;
            pthread_mutex_lock(&m->hmu);
        }
    }
    pthread_mutex_unlock(&m->hmu);
    return NULL;
}

/* Housekeeping wanted: log starts moved (write checkpoints at the
 * start-offset interval) and/or -delete directories to remove. */
static void keeper_poke(sp_logmgr_t *m, bool starts, bool deleted)
{
    pthread_mutex_lock(&m->hmu);
    m->ckpt_soon |= starts;
    m->ckpt_dirty = true;
    m->deleted_pending |= deleted;
    pthread_cond_signal(&m->hcv);
    pthread_mutex_unlock(&m->hmu);
}

/* ---- cleaner threads ----------------------------------------------------- */

/* Writes dir d's cleaner-offset-checkpoint (Kafka's: the compacted logs
 * cleaned at least once).  Locks: ckmu (one writer of the files), then
 * rw, then cmu (the order pick_dirtiest takes rw and cmu in). */
static void write_cleaner_checkpoint(sp_logmgr_t *m, int d)
{
    if (atomic_load(&m->offline[d]))
        return;
    pthread_mutex_lock(&m->ckmu);
    pthread_rwlock_rdlock(&m->rw);
    pthread_mutex_lock(&m->cmu);
    int count = 0;
    for (int i = 0; i < m->map.n; i++)
        count += ent(m, i)->dir == d && ent(m, i)->clean_ckpt >= 0;
    size_t cap = 32 + (size_t)count * 300, len = 0;
    char *text = malloc(cap);
    if (text) {
        len = (size_t)snprintf(text, cap, "0\n%d\n", count);
        for (int i = 0; i < m->map.n; i++) {
            entry_t *e = ent(m, i);
            if (e->dir == d && e->clean_ckpt >= 0)
                len += (size_t)snprintf(text + len, cap - len, "%s %d %" PRId64 "\n", e->topic, e->partition,
                                        e->clean_ckpt);
        }
    }
    pthread_mutex_unlock(&m->cmu);
    pthread_rwlock_unlock(&m->rw);
    if (text && sp_write_file_atomic(m->dirs[d], "cleaner-offset-checkpoint", text, len) != 0)
        sp_error("log", "cannot write %s/cleaner-offset-checkpoint: %s", m->dirs[d], strerror(errno));
    pthread_mutex_unlock(&m->ckmu);
    free(text);
}

/* The dirtiest log to clean now, marked as being cleaned and referenced;
 * NULL if none. */
static sp_plog_t *pick_dirtiest(sp_logmgr_t *m, int64_t now, sp_clean_candidate_t *best, char **topic,
                                int32_t *partition, int *dir)
{
    sp_plog_t *l = NULL;
    entry_t *pick = NULL;
    sp_clean_candidate_t c;
    pthread_rwlock_rdlock(&m->rw);
    for (int i = 0; i < m->map.n; i++) {
        entry_t *e = ent(m, i);
        pthread_mutex_lock(&m->cmu);
        bool skip = e->cleaning || e->clean_paused || atomic_load(&m->offline[e->dir]);
        int64_t ckpt = e->clean_ckpt;
        pthread_mutex_unlock(&m->cmu);
        if (skip || sp_plog_clean_check(e->log, ckpt, now, &c) != 1)
            continue;
        if (!pick || (c.due && !best->due) || (c.due == best->due && c.ratio > best->ratio)) {
            pick = e;
            *best = c;
        }
    }
    if (pick) {
        pthread_mutex_lock(&m->cmu);
        if (!pick->cleaning) {
            pick->cleaning = true;
            l = pick->log;
            sp_plog_ref(l);
            *topic = strdup(pick->topic);
            *partition = pick->partition;
            *dir = pick->dir;
        }
        pthread_mutex_unlock(&m->cmu);
    }
    pthread_rwlock_unlock(&m->rw);
    if (l && !*topic) {
        sp_plog_unref(l);
        l = NULL;
    }
    return l;
}

/* After a cleaning: the entry's checkpoint (if it is still the same log). */
static void cleaning_done(sp_logmgr_t *m, sp_plog_t *l, const char *topic, int32_t partition, int dir, int rc,
                          int64_t end)
{
    pthread_rwlock_rdlock(&m->rw);
    int i = sp_tpmap_find(&m->map, topic, (int32_t)strlen(topic), partition);
    entry_t *e = i >= 0 && ent(m, i)->log == l ? ent(m, i) : NULL;
    pthread_mutex_lock(&m->cmu);
    if (e) {
        e->cleaning = false;
        if (rc == 0)
            e->clean_ckpt = end;
        if (rc < 0)
            e->clean_paused = true;
    }
    pthread_mutex_unlock(&m->cmu);
    pthread_rwlock_unlock(&m->rw);
    if (e && rc == 0)
        write_cleaner_checkpoint(m, dir);
    if (rc < 0 && e) /* (a log deleted under the cleaner just goes) */
        sp_error("log", "%s-%d: cleaning failed; the partition is not cleaned again until the broker "
                 "restarts (its data is as it was)", topic, partition);
}

static void *cleaner_main(void *arg)
{
    sp_logmgr_t *m = arg;
    sp_offset_map_t map;
    bool have_map = false;
    pthread_setname_np(pthread_self(), "spool-cleaner");
    int64_t per = m->copts.cleaner_dedupe_bytes / (m->ncleaners > 0 ? m->ncleaners : 1);
    while (!atomic_load(&m->cstop)) {
        sp_clean_candidate_t c;
        char *topic = NULL;
        int32_t partition = 0;
        int dir = 0;
        sp_plog_t *l = pick_dirtiest(m, sp_wall_ms(), &c, &topic, &partition, &dir);
        if (!l) {
            pthread_mutex_lock(&m->cmu);
            if (!atomic_load(&m->cstop))
                timed_wait(&m->ccv, &m->cmu, m->copts.cleaner_backoff_ms);
            pthread_mutex_unlock(&m->cmu);
            continue;
        }
        if (!have_map) {
            if (sp_offset_map_init(&map, (size_t)per, m->copts.cleaner_load_factor) != 0) {
                sp_error("log", "the log cleaner cannot have its %" PRId64 "-byte key map: no cleaning", per);
                cleaning_done(m, l, topic, partition, dir, 1, 0);
                sp_plog_unref(l);
                free(topic);
                break;
            }
            have_map = true;
        }
        sp_clean_opts_t o = {
            .io_bytes_per_sec = m->copts.cleaner_io_bytes_per_sec > 0 && m->ncleaners > 0
                                    ? m->copts.cleaner_io_bytes_per_sec / m->ncleaners
                                    : 0,
            .io_buffer_size = (size_t)m->copts.cleaner_io_buffer,
            .now_ms = sp_wall_ms(),
            .stop = &m->cstop,
        };
        if (o.io_bytes_per_sec > 1e15)
            o.io_bytes_per_sec = 0;
        sp_clean_stats_t st;
        int64_t t0 = sp_mono_ms();
        int rc = sp_plog_clean(l, &c, &map, &o, &st);
        int64_t ms = sp_mono_ms() - t0;
        /* the map's pages go back to the kernel between cleanings */
        sp_offset_map_clear(&map);
        if (rc == 0)
            sp_info("log", "%s-%d: cleaned %d segment%s into %d (offsets up to %" PRId64 "): %.1f MB of log "
                    "processed, %.1f MB written, %" PRId64 " of %" PRId64 " records kept; %" PRId64 " keys "
                    "mapped from %.1f MB%s; %" PRId64 " ms, %.1f MB/s; dirty ratio was %.2f",
                    topic, partition, st.segments_in, st.segments_in == 1 ? "" : "s", st.segments_out,
                    st.end_offset, (double)st.bytes_read / 1e6, (double)st.bytes_written / 1e6, st.records_kept,
                    st.records_read, st.map_entries, (double)st.map_bytes / 1e6,
                    st.map_full ? " (map full: more passes follow)" : "", ms,
                    ms > 0 ? (double)st.bytes_read / 1e3 / (double)ms : 0.0, c.ratio);
        cleaning_done(m, l, topic, partition, dir, rc, st.end_offset);
        sp_plog_unref(l);
        free(topic);
    }
    if (have_map)
        sp_offset_map_free(&map);
    return NULL;
}

static void start_cleaners(sp_logmgr_t *m)
{
    int n = m->copts.cleaner_threads;
    if (n <= 0)
        return;
    m->cleaners = calloc((size_t)n, sizeof(*m->cleaners));
    if (!m->cleaners)
        return;
    m->ncleaners = n;
    for (int i = 0; i < n; i++)
        if (pthread_create(&m->cleaners[i], NULL, cleaner_main, m) != 0) {
            sp_error("log", "cannot start log cleaner thread %d", i);
            m->ncleaners = i;
            break;
        }
}

static void stop_cleaners(sp_logmgr_t *m)
{
    pthread_mutex_lock(&m->cmu);
    atomic_store(&m->cstop, true);
    pthread_cond_broadcast(&m->ccv);
    pthread_mutex_unlock(&m->cmu);
    for (int i = 0; i < m->ncleaners; i++)
        pthread_join(m->cleaners[i], NULL);
    m->ncleaners = 0;
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

/* Frees what m holds (its threads stopped or never started). */
static void logmgr_free(sp_logmgr_t *m)
{
    for (int i = 0; i < m->map.n; i++) {
        sp_plog_unref(ent(m, i)->log);
        free(ent(m, i)->topic);
        free(ent(m, i));
    }
    sp_tpmap_free(&m->map);
    for (int i = 0; i < m->nckpts; i++)
        free(m->ckpts[i].topic);
    free(m->ckpts);
    for (int d = 0; m->dirs && d < m->ndirs; d++)
        free(m->dirs[d]);
    free(m->dirs);
    free(m->clean);
    free(m->offline);
    free(m->nlogs);
    free(m->batch);
    sp_fdcache_free(m->files);
    pthread_rwlock_destroy(&m->rw);
    pthread_mutex_destroy(&m->qmu);
    pthread_mutex_destroy(&m->hmu);
    pthread_cond_destroy(&m->qcv);
    pthread_cond_destroy(&m->hcv);
    pthread_mutex_destroy(&m->cmu);
    pthread_mutex_destroy(&m->ckmu);
    pthread_cond_destroy(&m->ccv);
    free(m->cleaners);
    free(m);
}

sp_logmgr_t *sp_logmgr_start(const sp_logmgr_opts_t *o)
{
    sp_logmgr_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_rwlock_init(&m->rw, NULL);
    pthread_mutex_init(&m->qmu, NULL);
    pthread_mutex_init(&m->hmu, NULL);
    pthread_mutex_init(&m->cmu, NULL);
    pthread_mutex_init(&m->ckmu, NULL);
    init_cond(&m->qcv);
    init_cond(&m->hcv);
    init_cond(&m->ccv);
    atomic_init(&m->cstop, false);
    m->copts = *o;
    if (o->cleaner_threads > 0 && o->cleaner_dedupe_bytes / o->cleaner_threads <= 1024 * 1024) {
        /* Kafka refuses this too (its map must exceed 1 MiB per thread) */
        sp_error("log", "log.cleaner.dedupe.buffer.size (%" PRId64 ") must be more than 1 MiB per cleaner "
                 "thread (log.cleaner.threads=%d)", o->cleaner_dedupe_bytes, o->cleaner_threads);
        logmgr_free(m);
        return NULL;
    }
    m->retention_check_ms = o->retention_check_ms > 0 ? o->retention_check_ms : 300000;
    m->checkpoint_ms = o->checkpoint_ms > 0 ? o->checkpoint_ms : 60000;
    m->start_checkpoint_ms = o->start_checkpoint_ms > 0 ? o->start_checkpoint_ms : 60000;
    m->dirs = calloc((size_t)o->ndirs, sizeof(char *));
    m->clean = calloc((size_t)o->ndirs, sizeof(bool));
    m->offline = calloc((size_t)o->ndirs, sizeof(*m->offline));
    m->nlogs = calloc((size_t)o->ndirs, sizeof(int));
    m->files = sp_fdcache_new(o->max_open_files);
    if (!m->dirs || !m->clean || !m->offline || !m->nlogs || !m->files) {
        logmgr_free(m);
        return NULL;
    }
    m->ndirs = o->ndirs;
    for (int d = 0; d < o->ndirs; d++) {
        char path[4096];
        m->dirs[d] = strdup(o->dirs[d]);
        read_checkpoint(m, o->dirs[d], "recovery-point-offset-checkpoint", 0);
        read_checkpoint(m, o->dirs[d], "log-start-offset-checkpoint", 1);
        read_checkpoint(m, o->dirs[d], "cleaner-offset-checkpoint", 2);
        merge_checkpoints(m);
        snprintf(path, sizeof(path), "%s/%s", o->dirs[d], CLEAN_MARKER);
        m->clean[d] = access(path, F_OK) == 0;
        if (m->clean[d]) {
            /* from now on a crash must be noticed: the marker goes first */
            if (unlink(path) != 0 || sp_fsync_dir(o->dirs[d]) != 0) {
                sp_error("log", "cannot remove %s: %s", path, strerror(errno));
                logmgr_free(m);
                return NULL;
            }
        } else {
            sp_info("log", "%s: no clean-shutdown marker: partitions will be recovered from their recovery points",
                    o->dirs[d]);
        }
    }
    m->running = true;
    m->deleted_pending = true; /* leftovers of a previous run */
    if (pthread_create(&m->flusher, NULL, flusher_main, m) != 0) {
        logmgr_free(m);
        return NULL;
    }
    if (pthread_create(&m->keeper, NULL, keeper_main, m) != 0) {
        pthread_mutex_lock(&m->qmu);
        m->stop = true;
        pthread_cond_signal(&m->qcv);
        pthread_mutex_unlock(&m->qmu);
        pthread_join(m->flusher, NULL);
        logmgr_free(m);
        return NULL;
    }
    start_cleaners(m);
    return m;
}

/* ---- registry ---------------------------------------------------------- */

sp_plog_t *sp_logmgr_get(sp_logmgr_t *m, const char *topic, int32_t topic_len, int32_t partition)
{
    sp_plog_t *l = NULL;
    pthread_rwlock_rdlock(&m->rw);
    int i = sp_tpmap_find(&m->map, topic, topic_len, partition);
    if (i >= 0) {
        l = ent(m, i)->log;
        sp_plog_ref(l);
    }
    pthread_rwlock_unlock(&m->rw);
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
static int set_aside(sp_logmgr_t *m, int d, const char *from, const char *why)
{
    char to[4096];
    if (aside_name(to, sizeof(to), from, "stray") != 0 || rename(from, to) != 0) {
        sp_error("log", "cannot set %s aside: %s", from, strerror(errno));
        return -1;
    }
    sp_warn("log", "%s %s: set aside as %s (its data is kept; move it back to use it)", from, why, to);
    sp_fsync_dir(m->dirs[d]);
    return 0;
}

int sp_logmgr_open_partition(sp_logmgr_t *m, const char *topic, sp_uuid_t topic_id, int32_t partition,
                             const sp_log_config_t *cfg, bool fresh)
{
    char path[4096];
    int dir = -1;
    struct stat st;
    pthread_rwlock_rdlock(&m->rw);
    int i = sp_tpmap_find(&m->map, topic, (int32_t)strlen(topic), partition);
    pthread_rwlock_unlock(&m->rw);
    if (i >= 0)
        return 0;
    for (int d = 0; d < m->ndirs && dir < 0; d++) {
        snprintf(path, sizeof(path), "%s/%s-%d", m->dirs[d], topic, partition);
        if (stat(path, &st) == 0) {
            if (fresh && set_aside(m, d, path, "is in the way of a new topic") != 0)
                return -1;
            if (!fresh)
                dir = d;
        }
    }
    bool create = dir < 0;
    if (create) { /* the online directory holding the fewest partitions */
        int best = -1, bestn = -1;
        pthread_rwlock_rdlock(&m->rw);
        for (int d = 0; d < m->ndirs; d++) {
            int n = m->nlogs[d];
            if (atomic_load(&m->offline[d]))
                continue;
            if (bestn < 0 || n < bestn) {
                best = d;
                bestn = n;
            }
        }
        pthread_rwlock_unlock(&m->rw);
        if (best < 0) {
            sp_error("log", "no log directory is online for %s-%d", topic, partition);
            return -1;
        }
        dir = best;
        snprintf(path, sizeof(path), "%s/%s-%d", m->dirs[dir], topic, partition);
    }
    ckpt_t *c = fresh ? NULL : ckpt_find(m, topic, partition);
    sp_plog_open_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = path;
    o.topic = topic;
    o.partition = partition;
    o.topic_id = topic_id;
    o.cfg = cfg;
    o.create = create;
    o.clean = m->clean[dir];
    o.recovery_point = c ? c->recovery : 0;
    o.log_start = c ? c->log_start : 0;
    o.files = m->files;
    o.hooks.kick = on_log_kick;
    o.hooks.failed = on_log_failed;
    o.hooks.ctx = m;
    sp_plog_t *l = sp_plog_open(&o);
    if (!l)
        return -1;
    if (atomic_load(&m->offline[dir]))
        sp_plog_fail(l, "its log directory is offline", 0);
    pthread_rwlock_wrlock(&m->rw);
    i = sp_tpmap_find(&m->map, topic, (int32_t)strlen(topic), partition);
    if (i >= 0) { /* raced with another open: keep the first */
        pthread_rwlock_unlock(&m->rw);
        sp_plog_unref(l);
        return 0;
    }
    i = -i - 1;
    entry_t *e = calloc(1, sizeof(*e));
    char *name = strdup(topic);
    if (!e || !name || sp_tpmap_insert(&m->map, i, topic, partition, e) != 0) {
        pthread_rwlock_unlock(&m->rw);
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
    e->clean_ckpt = c ? c->cleaner : -1;
    m->nlogs[dir]++;
    pthread_rwlock_unlock(&m->rw);
    if (create)
        sp_logmgr_kick(m, l); /* the new segment files become durable */
    return 0;
}

/* Takes entry i out of the registry, renames its directory for
 * background removal and drops the entry's reference.  rw held for
 * writing. */
static void retire(sp_logmgr_t *m, int i)
{
    char to[4096];
    entry_t *e = sp_tpmap_remove(&m->map, i);
    m->nlogs[e->dir]--;
    sp_plog_mark_deleted(e->log);
    const char *path = sp_plog_dir(e->log);
    if (aside_name(to, sizeof(to), path, "delete") != 0 || rename(path, to) != 0)
        sp_error("log", "cannot rename %s for deletion: %s", path, strerror(errno));
    else
        sp_fsync_dir(m->dirs[e->dir]);
    sp_plog_unref(e->log);
    free(e->topic);
    free(e);
}

void sp_logmgr_abandon_partition(sp_logmgr_t *m, const char *topic, int32_t partition)
{
    pthread_rwlock_wrlock(&m->rw);
    int i = sp_tpmap_find(&m->map, topic, (int32_t)strlen(topic), partition);
    if (i >= 0)
        retire(m, i);
    pthread_rwlock_unlock(&m->rw);
    keeper_poke(m, false, true);
}

void sp_logmgr_delete_topic(sp_logmgr_t *m, const char *topic)
{
    pthread_rwlock_wrlock(&m->rw);
    int i = sp_tpmap_find(&m->map, topic, (int32_t)strlen(topic), 0);
    if (i < 0)
        i = -i - 1;
    while (i < m->map.n && strcmp(m->map.v[i].topic, topic) == 0)
        retire(m, i);
    pthread_rwlock_unlock(&m->rw);
    keeper_poke(m, false, true);
}

void sp_logmgr_sweep(sp_logmgr_t *m, bool (*keep)(const char *topic, int32_t partition, void *ctx), void *ctx)
{
    int aside = 0;
    for (int d = 0; d < m->ndirs; d++) {
        DIR *dir = opendir(m->dirs[d]);
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
            snprintf(from, sizeof(from), "%s/%s", m->dirs[d], e->d_name);
            if (set_aside(m, d, from, "belongs to no topic in the metadata") == 0)
                aside++;
        }
        closedir(dir);
    }
    if (aside)
        sp_warn("log", "%d partition director%s matched no topic of the metadata and were set aside "
                "as -stray, not deleted: if the metadata was lost or restored from an older copy, "
                "stop the broker, restore it, and rename them back", aside, aside == 1 ? "y" : "ies");
}

bool sp_logmgr_was_clean(const sp_logmgr_t *m, int i)
{
    return i >= 0 && i < m->ndirs && m->clean[i];
}

bool sp_logmgr_dir_offline(const sp_logmgr_t *m, int i)
{
    return i >= 0 && i < m->ndirs && atomic_load(&m->offline[i]);
}

sp_fdcache_t *sp_logmgr_files(const sp_logmgr_t *m)
{
    return m->files;
}

int sp_logmgr_dirs(const sp_logmgr_t *m, const char *const **dirs)
{
    *dirs = (const char *const *)m->dirs;
    return m->ndirs;
}

/* Writes and syncs the clean-shutdown marker of directory d. */
static void write_marker(sp_logmgr_t *m, int d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", m->dirs[d], CLEAN_MARKER);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || sp_fsync(fd) != 0)
        sp_error("log", "cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (sp_fsync_dir(m->dirs[d]) != 0)
        sp_error("log", "cannot sync %s: %s", m->dirs[d], strerror(errno));
}

void sp_logmgr_shutdown(sp_logmgr_t *m, bool clean)
{
    if (!m)
        return;
    stop_cleaners(m); /* before the flusher: a swap kicks it */
    pthread_mutex_lock(&m->qmu);
    m->stop = true;
    pthread_cond_signal(&m->qcv);
    pthread_mutex_unlock(&m->qmu);
    pthread_join(m->flusher, NULL);
    pthread_mutex_lock(&m->hmu);
    m->hstop = true;
    pthread_cond_signal(&m->hcv);
    pthread_mutex_unlock(&m->hmu);
    pthread_join(m->keeper, NULL);
    m->running = false;
    /* final flush of everything and the index files, then checkpoints,
     * then the marker of each directory where all of it succeeded; the
     * logs are taken out of the registry first, so that a failure (which
     * takes a directory offline through the registry) never deadlocks */
    bool *dir_ok = calloc((size_t)(m->ndirs ? m->ndirs : 1), sizeof(bool));
    for (int d = 0; dir_ok && d < m->ndirs; d++)
        dir_ok[d] = clean && !atomic_load(&m->offline[d]);
    pthread_rwlock_rdlock(&m->rw);
    int n = m->map.n;
    entry_t **snap = malloc(sizeof(*snap) * (size_t)(n ? n : 1));
    for (int i = 0; snap && i < n; i++)
        snap[i] = ent(m, i);
    pthread_rwlock_unlock(&m->rw);
    for (int i = 0; snap && i < n; i++) {
        bool ok = sp_plog_flush(snap[i]->log) == 0 && sp_plog_close(snap[i]->log) == 0;
        if (!ok && dir_ok)
            dir_ok[snap[i]->dir] = false;
    }
    write_checkpoints(m, dir_ok);
    for (int d = 0; d < m->ndirs; d++) {
        if (dir_ok && dir_ok[d] && snap && !atomic_load(&m->offline[d]))
            write_marker(m, d);
        else if (clean)
            sp_warn("log", "%s: no clean-shutdown marker (a storage failure or a failed final flush): "
                    "the next start recovers its partitions", m->dirs[d]);
    }
    free(snap);
    free(dir_ok);
    logmgr_free(m);
}

void sp_logmgr_fail_dir(sp_logmgr_t *m, int d, const char *why)
{
    fail_dir(m, d, why);
}
