/*
 * fdcache.h - a bounded set of open segment files.
 *
 * A segment's .log is an sp_file_t: a path and, while it is open, an fd.
 * Whoever uses the fd pins the file for exactly that long (an append, a
 * sync, a read, a sendfile still in progress); open files nobody pins
 * stay open in least-recently-used order and are closed when the cache
 * needs room.  So the broker holds at most about max_open segment fds,
 * whatever the number of partitions and segments: 1,000 partitions under
 * a 1,024 fd limit cost what is in use, not 3,000 fds.  Pins beyond
 * max_open are granted anyway (they are short), so nobody waits for a
 * slot; an open(2) that fails with EMFILE/ENFILE closes an idle file and
 * tries once more.
 *
 * Index files are not here: sealed segments map them read-only and close
 * the fd at once; active segments keep entries in anonymous memory and
 * write the files when sealed (segment.h).
 *
 * Threads: any.  One mutex guards the list and every file's fd and pins;
 * it is never held across anything but open(2)/close(2).
 *
 * Invariants:
 *  (1) fd >= 0 while pins > 0: a pinned file is never closed;
 *  (2) an open file with pins == 0 is on the LRU list; a pinned or closed
 *      one is not;
 *  (3) nopen == the number of files with fd >= 0.
 */
#ifndef SP_LOG_FDCACHE_H
#define SP_LOG_FDCACHE_H

#include <stdbool.h>

typedef struct sp_fdcache sp_fdcache_t;

typedef struct sp_file {
    sp_fdcache_t *cache;
    char *path;                  /* owned */
    int fd;                      /* -1 while closed (cache lock) */
    int pins;                    /* cache lock */
    struct sp_file *prev, *next; /* LRU links while open and unpinned */
} sp_file_t;

/* A cache keeping at most max_open files open (pins excepted). */
sp_fdcache_t *sp_fdcache_new(int max_open);
/* Every file must have been closed (sp_file_close) first. */
void sp_fdcache_free(sp_fdcache_t *c);
int sp_fdcache_max(const sp_fdcache_t *c);
/* Files open now (for tests and DescribeLogDirs-style reporting). */
int sp_fdcache_open_count(sp_fdcache_t *c);

/* A closed file of c at path (takes ownership of path).  With fd >= 0 the
 * file is already open (just created, say) and joins the cache as idle. */
void sp_file_init(sp_file_t *f, sp_fdcache_t *c, char *path, int fd);
/* The fd, opened (O_RDWR) if needed, pinned until sp_file_unpin; or
 * -errno (the file stays closed).  Any thread. */
int sp_file_pin(sp_file_t *f);
void sp_file_unpin(sp_file_t *f);
/* Renames the file to path (taking ownership of path in every case)
 * under the cache lock, so that a reopen never looks for the old name.
 * 0 or -errno (the old name kept). */
int sp_file_rename(sp_file_t *f, char *path);
/* Closes the fd if open and frees the path.  No pins may remain. */
void sp_file_close(sp_file_t *f);

#endif
