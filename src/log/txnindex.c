/* txnindex.c - a segment's aborted-transaction index (see txnindex.h). */
#include "log/txnindex.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/wire.h"
#include "util/fsutil.h"
#include "util/log.h"

struct sp_txnindex {
    pthread_mutex_t mu;
    char *path;
    int64_t base_offset;
    sp_aborted_list_t e;          /* every entry, in file order (mu) */
    int synced;                   /* entries known durable (invariant 2) */
    bool deleted;
};

void sp_aborted_list_free(sp_aborted_list_t *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int sp_aborted_list_push(sp_aborted_list_t *l, const sp_aborted_txn_t *e)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        sp_aborted_txn_t *v = realloc(l->v, sizeof(*v) * (size_t)cap);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return 0;
}

static uint64_t rd64(const uint8_t *p) { return ((uint64_t)sp_be32(p) << 32) | sp_be32(p + 4); }

static void wr64(uint8_t *p, uint64_t v)
{
    sp_put_be32(p, (uint32_t)(v >> 32));
    sp_put_be32(p + 4, (uint32_t)v);
}

void sp_txnindex_encode(const sp_aborted_txn_t *e, uint8_t out[SP_TXNINDEX_ENTRY])
{
    out[0] = 0; /* version 0 */
    out[1] = 0;
    wr64(out + 2, (uint64_t)e->producer_id);
    wr64(out + 10, (uint64_t)e->first_offset);
    wr64(out + 18, (uint64_t)e->last_offset);
    wr64(out + 26, (uint64_t)e->last_stable_offset);
}

/* Invariant (1) for e after the entries of t (mu held). */
static bool fits(const sp_txnindex_t *t, const sp_aborted_txn_t *e)
{
    if (e->last_offset < t->base_offset || e->first_offset > e->last_offset || e->first_offset < 0)
        return false;
    return t->e.n == 0 || t->e.v[t->e.n - 1].last_offset < e->last_offset;
}

/* Reads path's entries into t; 0, or -1 (errno).  Damage: see the header. */
static int load(sp_txnindex_t *t, bool *damaged, const char **why)
{
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = size ? malloc(size) : NULL;
    if (size && (!buf || sp_pread_full(fd, buf, size, 0) != 0)) {
        int err = buf ? errno : ENOMEM;
        free(buf);
        close(fd);
        errno = err;
        return -1;
    }
    close(fd);
    if (size % SP_TXNINDEX_ENTRY) {
        *damaged = true;
        *why = "a partial entry";
    }
    for (size_t off = 0; off + SP_TXNINDEX_ENTRY <= size; off += SP_TXNINDEX_ENTRY) {
        const uint8_t *p = buf + off;
        sp_aborted_txn_t e = { (int64_t)rd64(p + 2), (int64_t)rd64(p + 10), (int64_t)rd64(p + 18),
                               (int64_t)rd64(p + 26) };
        if (p[0] != 0 || p[1] != 0) {
            *damaged = true;
            *why = "an entry of an unknown version";
            break;
        }
        if (!fits(t, &e)) {
            *damaged = true;
            *why = "entries out of order or outside the segment";
            break;
        }
        if (sp_aborted_list_push(&t->e, &e) != 0) {
            free(buf);
            errno = ENOMEM;
            return -1;
        }
    }
    free(buf);
    t->synced = t->e.n; /* as far as we can tell: it was there at open */
    return 0;
}

sp_txnindex_t *sp_txnindex_open(const char *path, int64_t base_offset, bool *damaged, const char **why)
{
    *damaged = false;
    *why = NULL;
    sp_txnindex_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(path))) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->base_offset = base_offset;
    if (load(t, damaged, why) != 0) {
        int err = errno;
        sp_txnindex_free(t);
        errno = err;
        return NULL;
    }
    return t;
}

void sp_txnindex_free(sp_txnindex_t *t)
{
    if (!t)
        return;
    sp_aborted_list_free(&t->e);
    pthread_mutex_destroy(&t->mu);
    free(t->path);
    free(t);
}

/* Writes len bytes at pos of path (created if missing); a partial write
 * is cut away again.  0 or -errno. */
static int write_at(const char *path, const uint8_t *p, size_t len, off_t pos)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = pwrite(fd, p + off, len - off, pos + (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)w;
    }
    if (rc != 0 && ftruncate(fd, pos) != 0)
        sp_warn("log", "%s: cannot cut a partial entry: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int sp_txnindex_append(sp_txnindex_t *t, const sp_aborted_txn_t *e)
{
    uint8_t buf[SP_TXNINDEX_ENTRY];
    sp_txnindex_encode(e, buf);
    pthread_mutex_lock(&t->mu);
    int rc = fits(t, e) ? 0 : -EINVAL;
    if (rc == 0 && t->deleted)
        rc = -ENOENT;
    if (rc == 0)
        rc = write_at(t->path, buf, sizeof(buf), (off_t)t->e.n * SP_TXNINDEX_ENTRY);
    if (rc == 0 && sp_aborted_list_push(&t->e, e) != 0)
        rc = -ENOMEM; /* the file has one entry more than memory: harmless, cut at the next open */
    pthread_mutex_unlock(&t->mu);
    return rc;
}

bool sp_txnindex_has(sp_txnindex_t *t, const sp_aborted_txn_t *e)
{
    bool found = false;
    pthread_mutex_lock(&t->mu);
    for (int i = t->e.n - 1; i >= 0 && !found && t->e.v[i].last_offset >= e->last_offset; i--) {
        const sp_aborted_txn_t *x = &t->e.v[i];
        found = x->last_offset == e->last_offset && x->first_offset == e->first_offset &&
                x->producer_id == e->producer_id;
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

int sp_txnindex_count(sp_txnindex_t *t)
{
    pthread_mutex_lock(&t->mu);
    int n = t->e.n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

bool sp_txnindex_get(sp_txnindex_t *t, int i, sp_aborted_txn_t *out)
{
    pthread_mutex_lock(&t->mu);
    bool ok = i >= 0 && i < t->e.n;
    if (ok)
        *out = t->e.v[i];
    pthread_mutex_unlock(&t->mu);
    return ok;
}

int sp_txnindex_collect(sp_txnindex_t *t, int64_t fetch_offset, int64_t upper_bound, sp_aborted_list_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->e.n && rc == 0; i++) {
        const sp_aborted_txn_t *x = &t->e.v[i];
        if (x->last_offset >= fetch_offset && x->first_offset < upper_bound && sp_aborted_list_push(out, x) != 0)
            rc = -1;
        else if (x->last_stable_offset >= upper_bound)
            rc = 1;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int sp_txnindex_truncate(sp_txnindex_t *t, int64_t offset)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    int keep = t->e.n;
    while (keep > 0 && t->e.v[keep - 1].last_offset >= offset)
        keep--;
    if (keep < t->e.n && !t->deleted) {
        if (truncate(t->path, (off_t)keep * SP_TXNINDEX_ENTRY) != 0 && errno != ENOENT)
            rc = -errno;
    }
    if (rc == 0) {
        t->e.n = keep;
        if (t->synced > keep)
            t->synced = keep;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int sp_txnindex_rewrite(sp_txnindex_t *t)
{
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    size_t len = (size_t)t->e.n * SP_TXNINDEX_ENTRY;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        rc = -ENOMEM;
    for (int i = 0; buf && i < t->e.n; i++)
        sp_txnindex_encode(&t->e.v[i], buf + (size_t)i * SP_TXNINDEX_ENTRY);
    if (rc == 0 && !t->deleted) {
        int fd = open(t->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = -errno;
        else {
            size_t off = 0;
            while (rc == 0 && off < len) {
                ssize_t w = write(fd, buf + off, len - off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    rc = w < 0 ? -errno : -EIO;
                else
                    off += (size_t)w;
            }
            if (rc == 0 && sp_fdatasync(fd) != 0)
                rc = -errno;
            close(fd);
        }
    }
    if (rc == 0)
        t->synced = t->e.n;
    free(buf);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int sp_txnindex_sync(sp_txnindex_t *t)
{
    pthread_mutex_lock(&t->mu);
    int n = t->e.n;
    bool dirty = t->synced < n && !t->deleted;
    pthread_mutex_unlock(&t->mu);
    if (!dirty)
        return 0;
    /* outside mu: an append meanwhile is either in this sync or the next */
    int fd = open(t->path, O_WRONLY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0)
        rc = -errno;
    else {
        if (sp_fdatasync(fd) != 0)
            rc = -errno;
        close(fd);
    }
    if (rc == 0) {
        pthread_mutex_lock(&t->mu);
        if (t->synced < n)
            t->synced = n;
        pthread_mutex_unlock(&t->mu);
    } else if (rc == -ENOENT) {
        pthread_mutex_lock(&t->mu);
        rc = t->deleted ? 0 : rc; /* unlinked meanwhile: nothing to keep */
        pthread_mutex_unlock(&t->mu);
    }
    return rc;
}

void sp_txnindex_unlink(sp_txnindex_t *t)
{
    pthread_mutex_lock(&t->mu);
    if (!t->deleted && unlink(t->path) != 0 && errno != ENOENT)
        sp_warn("log", "cannot remove %s: %s", t->path, strerror(errno));
    t->deleted = true;
    pthread_mutex_unlock(&t->mu);
}

int sp_txnindex_rename(sp_txnindex_t *t, char *path)
{
    pthread_mutex_lock(&t->mu);
    int rc = rename(t->path, path) == 0 || errno == ENOENT ? 0 : -errno;
    if (rc == 0) {
        free(t->path);
        t->path = path;
    }
    pthread_mutex_unlock(&t->mu);
    if (rc != 0)
        free(path);
    return rc;
}
