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

/* mkdir -p; 0 or -1 (errno). */
int sp_mkdirs(const char *path);
/* fsync a directory so that a create, rename or unlink in it is durable. */
int sp_fsync_dir(const char *dir);
/*
 * Replaces dir/name with data atomically and durably:
 *   write dir/name.tmp, fsync it, rename over dir/name, fsync dir.
 * A crash leaves either the old or the new file, never a torn one.
 */
int sp_write_file_atomic(const char *dir, const char *name, const void *data, size_t len);
/* Reads exactly n bytes at pos (retrying short reads and EINTR): 0, or -1
 * on an error or end of file first. */
int sp_pread_full(int fd, void *buf, size_t n, int64_t pos);

#endif
