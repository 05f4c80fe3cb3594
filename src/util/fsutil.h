/*
 * fsutil.h - small file-system helpers with the fsync discipline spelled out.
 * Blocking: call the directory and atomic-write helpers from the main thread
 * at start or from the flush and metadata threads, never from an event-loop
 * thread. sp_pread_full is a plain positional read; the fetch path calls it
 * on I/O workers for bytes that are normally in the page cache.
 */
#ifndef SP_UTIL_FSUTIL_H
#define SP_UTIL_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * The only callers of fdatasync(2) and fsync(2) in the broker: every sync
 * of a log, an index, a checkpoint or a directory goes through these, so
 * that a test can fail the Nth one (sp_fault_hook) and see the storage
 * failure model at work (docs/ARCHITECTURE.md, "When storage fails").
 * 0, or -1 with errno.  A failed sync is never retried by its caller: the
 * kernel may have dropped the dirty pages already ("fsyncgate").
 */
int sp_fdatasync(int fd);
int sp_fsync(int fd);

/* Fault injection for unit tests: when set, called before each sync with
 * the operation ("fdatasync", "fsync") and the fd; a non-zero return is
 * the errno the sync fails with.  NULL in the broker. */
extern int (*sp_fault_hook)(const char *op, int fd);

/* mkdir -p; 0 or -1 (errno). */
int sp_mkdirs(const char *path);
/* fsync a directory so that a create, rename or unlink in it is durable. */
int sp_fsync_dir(const char *dir);
/* fsync the directory that holds path (its real parent, not "path/.."). */
int sp_fsync_parent(const char *path);
/*
 * Replaces dir/name with data atomically and durably:
 *   write dir/name.tmp, fsync it, rename over dir/name, fsync dir.
 * A crash leaves either the old or the new file, never a torn one.
 */
int sp_write_file_atomic(const char *dir, const char *name, const void *data, size_t len);
/* Removes path and everything under it (best effort; no sync). */
void sp_rm_tree(const char *path);
/* Reads exactly n bytes at pos (retrying short reads and EINTR): 0, or -1
 * on an error or end of file first. */
int sp_pread_full(int fd, void *buf, size_t n, int64_t pos);

#endif
