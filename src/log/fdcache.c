/* fdcache.c - bounded open segment files (see fdcache.h). */
#include "log/fdcache.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct sp_fdcache {
    pthread_mutex_t mu;
    int max_open;
    int nopen;                  /* invariant 3 */
    sp_file_t *head, *tail;     /* LRU of idle open files: head = most recent */
};

sp_fdcache_t *sp_fdcache_new(int max_open)
{
    sp_fdcache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_open = max_open > 1 ? max_open : 1;
    return c;
}

void sp_fdcache_free(sp_fdcache_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int sp_fdcache_max(const sp_fdcache_t *c)
{
    return c->max_open;
}

int sp_fdcache_open_count(sp_fdcache_t *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->nopen;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* mu held. */
static void lru_unlink(sp_fdcache_t *c, sp_file_t *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else if (c->head == f)
        c->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else if (c->tail == f)
        c->tail = f->prev;
    f->prev = f->next = NULL;
}

/* mu held. */
static void lru_push(sp_fdcache_t *c, sp_file_t *f)
{
    f->prev = NULL;
    f->next = c->head;
    if (c->head)
        c->head->prev = f;
    c->head = f;
    if (!c->tail)
        c->tail = f;
}

/* mu held: closes the least recently used idle file; false if none. */
static bool evict_one(sp_fdcache_t *c)
{
    sp_file_t *f = c->tail;
    if (!f)
        return false;
    lru_unlink(c, f);
    close(f->fd);
    f->fd = -1;
    c->nopen--;
    return true;
}

void sp_file_init(sp_file_t *f, sp_fdcache_t *c, char *path, int fd)
{
    f->cache = c;
    f->path = path;
    f->fd = -1;
    f->pins = 0;
    f->prev = f->next = NULL;
    if (fd < 0)
        return;
    pthread_mutex_lock(&c->mu);
    while (c->nopen >= c->max_open && evict_one(c))
        ;
    f->fd = fd;
    c->nopen++;
    lru_push(c, f);
    pthread_mutex_unlock(&c->mu);
}

int sp_file_pin(sp_file_t *f)
{
    sp_fdcache_t *c = f->cache;
    pthread_mutex_lock(&c->mu);
    if (f->fd >= 0) {
        if (f->pins++ == 0)
            lru_unlink(c, f);
        int fd = f->fd;
        pthread_mutex_unlock(&c->mu);
        return fd;
    }
    while (c->nopen >= c->max_open && evict_one(c))
        ;
    int fd;
    for (int attempt = 0;; attempt++) {
        fd = open(f->path, O_RDWR | O_CLOEXEC);
        if (fd >= 0 || (errno != EMFILE && errno != ENFILE) || attempt > 0 || !evict_one(c))
            break;
    }
    if (fd < 0) {
        int err = errno;
        pthread_mutex_unlock(&c->mu);
        return -err;
    }
    f->fd = fd;
    f->pins = 1;
    c->nopen++;
    pthread_mutex_unlock(&c->mu);
    return fd;
}

void sp_file_unpin(sp_file_t *f)
{
    sp_fdcache_t *c = f->cache;
    pthread_mutex_lock(&c->mu);
    if (f->pins > 0 && --f->pins == 0 && f->fd >= 0) {
        lru_push(c, f);
        while (c->nopen > c->max_open && evict_one(c))
            ;
    }
    pthread_mutex_unlock(&c->mu);
}

void sp_file_close(sp_file_t *f)
{
    sp_fdcache_t *c = f->cache;
    if (c) {
        pthread_mutex_lock(&c->mu);
        if (f->fd >= 0) {
            if (f->pins == 0)
                lru_unlink(c, f);
            close(f->fd);
            f->fd = -1;
            c->nopen--;
        }
        pthread_mutex_unlock(&c->mu);
    }
    free(f->path);
    f->path = NULL;
}

int sp_file_rename(sp_file_t *f, char *path)
{
    sp_fdcache_t *c = f->cache;
    pthread_mutex_lock(&c->mu);
    int rc = rename(f->path, path) == 0 ? 0 : -errno;
    if (rc == 0) {
        free(f->path);
        f->path = path;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
        free(path);
    return rc;
}
