/* logmgr.c - partition logs, flush thread, checkpoints (see logmgr.h). */
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
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"

#define CLEAN_MARKER ".kafka_cleanshutdown"
#define CHECKPOINT_INTERVAL_MS 60000

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
} entry_t;

static struct {
    char **dirs;
    int ndirs;
    bool *clean;              /* per dir: the last stop was clean */
    ckpt_t *ckpts;
    int nckpts;
    pthread_rwlock_t rw;      /* guards entries */
    entry_t *entries;         /* sorted by (topic, partition) */
    int nentries, capentries;
    /* flush thread */
    pthread_t thread;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    sp_plog_t *qhead;          /* kicked logs, linked by flush_next (qmu) */
    sp_plog_t **batch;         /* the pass in progress (flush thread only) */
    int batch_cap;
    bool stop, running;
    bool ckpt_dirty;
    int64_t retention_check_ms;
} M = { .rw = PTHREAD_RWLOCK_INITIALIZER, .qmu = PTHREAD_MUTEX_INITIALIZER,
        .qcv = PTHREAD_COND_INITIALIZER };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- checkpoints ------------------------------------------------------- */

static ckpt_t *ckpt_find(const char *topic, int32_t p)
{
    for (int i = 0; i < M.nckpts; i++)
        if (M.ckpts[i].partition == p && strcmp(M.ckpts[i].topic, topic) == 0)
            return &M.ckpts[i];
    return NULL;
}

static void read_checkpoint(const char *dir, const char *name, int which)
{
    char path[4096], topic[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int version, count;
    if (!f)
        return;
    if (fscanf(f, "%d %d", &version, &count) != 2 || version != 0) {
        sp_warn("log", "%s: unreadable checkpoint, ignored", path);
        fclose(f);
        return;
    }
    int32_t p;
    long long off;
    while (fscanf(f, "%511s %d %lld", topic, &p, &off) == 3) {
        ckpt_t *c = ckpt_find(topic, p);
        if (!c) {
            ckpt_t *n = realloc(M.ckpts, sizeof(*n) * (size_t)(M.nckpts + 1));
            if (!n)
                break;
            M.ckpts = n;
            c = &M.ckpts[M.nckpts++];
            c->topic = strdup(topic);
            c->partition = p;
            c->recovery = 0;
            c->log_start = 0;
        }
        if (which == 0)
            c->recovery = off;
        else
            c->log_start = off;
    }
    fclose(f);
}

/* Writes the three checkpoint files of every directory.  Flush thread or
 * shutdown. */
static void write_checkpoints(void)
{
    pthread_rwlock_rdlock(&M.rw);
    for (int d = 0; d < M.ndirs; d++) {
        static const char *names[] = { "recovery-point-offset-checkpoint",
                                       "log-start-offset-checkpoint",
                                       "replication-offset-checkpoint" };
        for (int which = 0; which < 3; which++) {
            size_t cap = 64, len = 0;
            char *text = malloc(cap);
            int count = 0;
            for (int i = 0; i < M.nentries; i++)
                if (M.entries[i].dir == d)
                    count++;
            if (!text)
                continue;
            len = (size_t)snprintf(text, cap, "0\n%d\n", count);
            for (int i = 0; i < M.nentries; i++) {
                entry_t *e = &M.entries[i];
                if (e->dir != d)
                    continue;
                pthread_mutex_lock(&e->log->mu);
                int64_t v = which == 0 ? e->log->flushed : which == 1 ? e->log->log_start
                                                                      : atomic_load(&e->log->hw);
                pthread_mutex_unlock(&e->log->mu);
                size_t need = len + strlen(e->topic) + 48;
                if (need > cap) {
                    cap = need * 2;
                    char *n = realloc(text, cap);
                    if (!n)
                        break;
                    text = n;
                }
                len += (size_t)snprintf(text + len, cap - len, "%s %d %" PRId64 "\n", e->topic,
                                        e->partition, v);
            }
            if (sp_write_file_atomic(M.dirs[d], names[which], text, len) != 0)
                sp_error("log", "cannot write %s/%s: %s", M.dirs[d], names[which], strerror(errno));
            free(text);
        }
    }
    pthread_rwlock_unlock(&M.rw);
}

/* ---- background removal ------------------------------------------------ */

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        char p[4096];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (unlink(p) != 0 && errno == EISDIR)
            rm_tree(p);
    }
    closedir(d);
    rmdir(path);
}

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
                rm_tree(p);
                any = true;
            }
        }
        closedir(dir);
        if (any)
            sp_fsync_dir(M.dirs[d]);
    }
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
    M.ckpt_dirty = true;
    pthread_mutex_unlock(&M.qmu);
}

static void *flusher_main(void *arg)
{
    int64_t last_check = now_ms(), last_ckpt = now_ms(), last_retention = now_ms();
    bool deleted_dirs = true;
    (void)arg;
    pthread_setname_np(pthread_self(), "spool-flush");
    for (;;) {
        pthread_mutex_lock(&M.qmu);
        while (!M.qhead && !M.stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&M.qcv, &M.qmu, &until) == ETIMEDOUT)
                break;
        }
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
        bool ckpt_dirty = M.ckpt_dirty;
        pthread_mutex_unlock(&M.qmu);

        /* one pass: every kicked log synced, waiters of all completed */
        for (int i = 0; i < taken; i++) {
            sp_plog_flush(M.batch[i]);
            sp_plog_unref(M.batch[i]);
        }
        int64_t now = now_ms();
        if (now - last_check >= 1000) { /* flush.ms and page-cache mode */
            last_check = now;
            pthread_rwlock_rdlock(&M.rw);
            for (int i = 0; i < M.nentries; i++)
                if (sp_plog_flush_due(M.entries[i].log, now))
                    sp_flusher_kick(M.entries[i].log);
            pthread_rwlock_unlock(&M.rw);
            if (deleted_dirs) {
                remove_deleted_dirs();
                deleted_dirs = false;
            }
        }
        if (now - last_retention >= M.retention_check_ms) {
            int deleted = 0;
            last_retention = now;
            pthread_rwlock_rdlock(&M.rw);
            for (int i = 0; i < M.nentries; i++)
                deleted += sp_plog_retention(M.entries[i].log, now);
            pthread_rwlock_unlock(&M.rw);
            if (deleted) {
                pthread_mutex_lock(&M.qmu);
                M.ckpt_dirty = true;
                pthread_mutex_unlock(&M.qmu);
                ckpt_dirty = true;
                last_ckpt = 0; /* the new log starts are written now */
            }
        }
        if (ckpt_dirty && now - last_ckpt >= CHECKPOINT_INTERVAL_MS) {
            last_ckpt = now;
            pthread_mutex_lock(&M.qmu);
            M.ckpt_dirty = false;
            deleted_dirs = true;
            pthread_mutex_unlock(&M.qmu);
            write_checkpoints();
        }
        if (stop)
            break;
    }
    return NULL;
}

/* ---- start ------------------------------------------------------------- */

int sp_logmgr_start(char *const *dirs, int ndirs, int64_t retention_check_ms)
{
    M.retention_check_ms = retention_check_ms > 0 ? retention_check_ms : 300000;
    M.dirs = calloc((size_t)ndirs, sizeof(char *));
    M.clean = calloc((size_t)ndirs, sizeof(bool));
    if (!M.dirs || !M.clean)
        return -1;
    M.ndirs = ndirs;
    for (int d = 0; d < ndirs; d++) {
        char path[4096];
        M.dirs[d] = strdup(dirs[d]);
        read_checkpoint(dirs[d], "recovery-point-offset-checkpoint", 0);
        read_checkpoint(dirs[d], "log-start-offset-checkpoint", 1);
        snprintf(path, sizeof(path), "%s/%s", dirs[d], CLEAN_MARKER);
        M.clean[d] = access(path, F_OK) == 0;
        if (M.clean[d]) {
            /* from now on a crash must be noticed: the marker goes first */
            if (unlink(path) != 0 || sp_fsync_dir(dirs[d]) != 0) {
                sp_error("log", "cannot remove %s: %s", path, strerror(errno));
                return -1;
            }
        } else {
            sp_info("log", "%s: no clean-shutdown marker: partitions will be recovered from their recovery points",
                    dirs[d]);
        }
    }
    M.running = true;
    if (pthread_create(&M.thread, NULL, flusher_main, NULL) != 0) {
        M.running = false;
        return -1;
    }
    return 0;
}

/* ---- registry ---------------------------------------------------------- */

static int entry_cmp(const char *topic, int32_t tlen, int32_t p, const entry_t *e)
{
    size_t el = strlen(e->topic);
    size_t n = (size_t)tlen < el ? (size_t)tlen : el;
    int c = memcmp(topic, e->topic, n);
    if (c == 0)
        c = (size_t)tlen < el ? -1 : (size_t)tlen > el ? 1 : 0;
    if (c == 0)
        c = p < e->partition ? -1 : p > e->partition;
    return c;
}

/* rw held: index of (topic, p) or -(insertion point) - 1. */
static int entry_search(const char *topic, int32_t tlen, int32_t p)
{
    int lo = 0, hi = M.nentries - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = entry_cmp(topic, tlen, p, &M.entries[mid]);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -lo - 1;
}

sp_plog_t *sp_logmgr_get(const char *topic, int32_t topic_len, int32_t partition)
{
    sp_plog_t *l = NULL;
    pthread_rwlock_rdlock(&M.rw);
    int i = entry_search(topic, topic_len, partition);
    if (i >= 0) {
        l = M.entries[i].log;
        sp_plog_ref(l);
    }
    pthread_rwlock_unlock(&M.rw);
    return l;
}

int sp_logmgr_open_partition(const char *topic, sp_uuid_t topic_id, int32_t partition,
                             const sp_log_config_t *cfg)
{
    char path[4096];
    int dir = -1;
    struct stat st;
    pthread_rwlock_rdlock(&M.rw);
    int i = entry_search(topic, (int32_t)strlen(topic), partition);
    pthread_rwlock_unlock(&M.rw);
    if (i >= 0)
        return 0;
    for (int d = 0; d < M.ndirs && dir < 0; d++) {
        snprintf(path, sizeof(path), "%s/%s-%d", M.dirs[d], topic, partition);
        if (stat(path, &st) == 0)
            dir = d;
    }
    bool create = dir < 0;
    if (create) { /* the directory holding the fewest partitions */
        int best = 0, bestn = -1;
        pthread_rwlock_rdlock(&M.rw);
        for (int d = 0; d < M.ndirs; d++) {
            int n = 0;
            for (int k = 0; k < M.nentries; k++)
                n += M.entries[k].dir == d;
            if (bestn < 0 || n < bestn) {
                best = d;
                bestn = n;
            }
        }
        pthread_rwlock_unlock(&M.rw);
        dir = best;
        snprintf(path, sizeof(path), "%s/%s-%d", M.dirs[dir], topic, partition);
    }
    ckpt_t *c = ckpt_find(topic, partition);
    sp_plog_t *l = sp_plog_open(path, topic, partition, topic_id, cfg, create, M.clean[dir],
                                c ? c->recovery : 0, c ? c->log_start : 0);
    if (!l)
        return -1;
    pthread_rwlock_wrlock(&M.rw);
    i = entry_search(topic, (int32_t)strlen(topic), partition);
    if (i >= 0) { /* raced with another open: keep the first */
        pthread_rwlock_unlock(&M.rw);
        sp_plog_unref(l);
        return 0;
    }
    i = -i - 1;
    if (M.nentries == M.capentries) {
        int cap = M.capentries ? M.capentries * 2 : 16;
        entry_t *n = realloc(M.entries, sizeof(*n) * (size_t)cap);
        if (!n) {
            pthread_rwlock_unlock(&M.rw);
            sp_plog_unref(l);
            return -1;
        }
        M.entries = n;
        M.capentries = cap;
    }
    memmove(&M.entries[i + 1], &M.entries[i], sizeof(entry_t) * (size_t)(M.nentries - i));
    M.entries[i].topic = strdup(topic);
    M.entries[i].partition = partition;
    M.entries[i].dir = dir;
    M.entries[i].log = l;
    M.nentries++;
    pthread_rwlock_unlock(&M.rw);
    if (create)
        sp_flusher_kick(l); /* the new segment files become durable */
    return 0;
}

static void retire(entry_t *e)
{
    char to[4096];
    static unsigned long long seq;
    sp_plog_mark_deleted(e->log);
    if (snprintf(to, sizeof(to), "%s.%llx%llx-delete", e->log->dir, (unsigned long long)now_ms(), ++seq) >= (int)sizeof(to))
        to[0] = 0;
    if (!to[0] || rename(e->log->dir, to) != 0)
        sp_error("log", "cannot rename %s for deletion: %s", e->log->dir, strerror(errno));
    else
        sp_fsync_dir(M.dirs[e->dir]);
    sp_plog_unref(e->log);
    free(e->topic);
}

void sp_logmgr_delete_topic(const char *topic)
{
    int32_t tl = (int32_t)strlen(topic);
    pthread_rwlock_wrlock(&M.rw);
    int out = 0;
    for (int i = 0; i < M.nentries; i++) {
        entry_t *e = &M.entries[i];
        if ((int32_t)strlen(e->topic) == tl && memcmp(e->topic, topic, (size_t)tl) == 0)
            retire(e);
        else
            M.entries[out++] = *e;
    }
    M.nentries = out;
    pthread_rwlock_unlock(&M.rw);
    pthread_mutex_lock(&M.qmu);
    M.ckpt_dirty = true;
    pthread_cond_signal(&M.qcv);
    pthread_mutex_unlock(&M.qmu);
}

void sp_logmgr_set_config(const char *topic, const sp_log_config_t *cfg)
{
    pthread_rwlock_rdlock(&M.rw);
    for (int i = 0; i < M.nentries; i++) {
        if (strcmp(M.entries[i].topic, topic) != 0)
            continue;
        sp_plog_t *l = M.entries[i].log;
        pthread_mutex_lock(&l->mu);
        l->cfg = *cfg;
        pthread_mutex_unlock(&l->mu);
    }
    pthread_rwlock_unlock(&M.rw);
}

void sp_logmgr_sweep(bool (*keep)(const char *topic, int32_t partition, void *ctx), void *ctx)
{
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
            char from[4096], to[4096];
            snprintf(from, sizeof(from), "%s/%s", M.dirs[d], e->d_name);
            if (snprintf(to, sizeof(to), "%s.%llx-delete", from, (unsigned long long)now_ms()) >= (int)sizeof(to))
                continue;
            sp_info("log", "%s belongs to no topic in the metadata: removing it", from);
            if (rename(from, to) == 0)
                sp_fsync_dir(M.dirs[d]);
        }
        closedir(dir);
    }
}

bool sp_logmgr_was_clean(int i)
{
    return i >= 0 && i < M.ndirs && M.clean[i];
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

void sp_logmgr_shutdown(void)
{
    if (!M.running)
        return;
    pthread_mutex_lock(&M.qmu);
    M.stop = true;
    pthread_cond_signal(&M.qcv);
    pthread_mutex_unlock(&M.qmu);
    pthread_join(M.thread, NULL);
    M.running = false;
    /* final flush of everything, then checkpoints, then the marker */
    pthread_rwlock_wrlock(&M.rw);
    for (int i = 0; i < M.nentries; i++) {
        sp_plog_flush(M.entries[i].log);
        sp_plog_close(M.entries[i].log);
    }
    pthread_rwlock_unlock(&M.rw);
    write_checkpoints();
    for (int d = 0; d < M.ndirs; d++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", M.dirs[d], CLEAN_MARKER);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || fsync(fd) != 0)
            sp_error("log", "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        sp_fsync_dir(M.dirs[d]);
    }
    pthread_rwlock_wrlock(&M.rw);
    for (int i = 0; i < M.nentries; i++) {
        sp_plog_unref(M.entries[i].log);
        free(M.entries[i].topic);
    }
    free(M.entries);
    M.entries = NULL;
    M.nentries = M.capentries = 0;
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
    M.dirs = NULL;
    free(M.batch);
    M.batch = NULL;
    M.batch_cap = 0;
}
