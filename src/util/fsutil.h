/*
 * fsutil.h - small file-system helpers with the fsync discipline spelled out.
 * Blocking: call from the main thread at start or from I/O pool threads,
 * never from an event-loop thread.
 */
#ifndef SP_UTIL_FSUTIL_H
#define SP_UTIL_FSUTIL_H

#include <stddef.h>

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

#endif
