/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* File and tree helpers. Every write that others may read is atomic:
 * temp file in the same directory, fsync, rename, fsync of the directory. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/macro.h"

/* Reads a whole file into a NUL-terminated buffer. -EFBIG past max_size. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size);

/* Atomically replaces path with data (mode applied before the rename). */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
/* The same, also giving the file an owner before the rename, so nobody ever
 * sees it with another one (uid/gid (uid_t) -1: unchanged). */
int write_file_atomic_owned(const char *path, const void *data, size_t size, mode_t mode, uid_t uid, gid_t gid);

/* Opens path (created 0600 if missing, never through a symlink) and takes
 * an exclusive flock(2) on it, waiting as long as it takes. The lock is
 * released when *ret_fd is closed. */
int lock_file(const char *path, int *ret_fd);

int mkdir_p(const char *path, mode_t mode);
int fsync_directory_of(const char *path);

/* Removes a tree without following symlinks; -ENOENT is not an error. */
int rm_rf(const char *path);

/* Copies the tree at from into to (which must not exist): directories,
 * regular files (with their mode bits) and symlinks (as symlinks). Top-level
 * entries named in skip (NULL-terminated, may be NULL) are left out.
 * Anything else (devices, fifos, sockets) gives -EBADF. */
int copy_tree(const char *from, const char *to, const char *const *skip);
/* The same from an open directory (a tree another process handed over). */
int copy_tree_fd(int from_fd, const char *to, const char *const *skip);

/* Absolute, shorter than PATH_MAX, no control characters and no "." or ".."
 * components; "//" and a trailing '/' are allowed ("/srv/nap/" is safe). */
bool path_is_safe(const char *s) _pure_;

/* Safe and normalized ("/a/b": no "//" or trailing '/'), so not "/" itself:
 * usable in a unit file as it is. */
bool path_is_normalized(const char *s) _pure_;

/* path_join("a", "b", "c", NULL) = "a/b/c"; NULL on OOM. */
char *path_join(const char *first, ...) _sentinel_;

/* Formats into a malloc'ed string; NULL on OOM. */
char *strdup_printf(const char *fmt, ...) _printf_(1, 2);
