/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "base/fileio.h"

int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size) {
        size_t size = 0, allocated = 0;
        _cleanup_free_ char *buf = NULL;

        assert(ret);

        for (;;) {
                if (allocated - size < 2) {
                        size_t n = allocated ? allocated * 2 : 4096;
                        if (n > max_size + 2)
                                n = max_size + 2; /* one byte to see "too big", one for NUL */
                        if (n <= allocated)
                                return -EFBIG;
                        char *b = realloc(buf, n);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        allocated = n;
                }
                ssize_t k = read(fd, buf + size, allocated - size - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                size += k;
                if (size > max_size)
                        return -EFBIG;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size) {
        assert(path);
        assert(ret);

        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return read_full_fd(fd, max_size, ret, ret_size);
}

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;
        while (size > 0) {
                ssize_t k = write(fd, p, size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                size -= k;
        }
        return 0;
}

int fsync_directory_of(const char *path) {
        assert(path);

        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        _cleanup_close_ int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int write_file_atomic_owned(const char *path, const void *data, size_t size, mode_t mode, uid_t uid, gid_t gid) {
        assert(path);
        assert(data || size == 0);

        _cleanup_free_ char *tmp = strdup_printf("%s.tmpXXXXXX", path);
        if (!tmp)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        int r = write_all(fd, data, size);
        if (r >= 0 && (uid != (uid_t) -1 || gid != (gid_t) -1) && fchown(fd, uid, gid) < 0)
                r = negative_errno();
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return fsync_directory_of(path);
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        return write_file_atomic_owned(path, data, size, mode, (uid_t) -1, (gid_t) -1);
}

int lock_file(const char *path, int *ret_fd) {
        assert(path);
        assert(ret_fd);

        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int mkdir_p(const char *path, mode_t mode) {
        assert(path);

        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != 0)
                        continue;
                char c = *s;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = c;
                if (c == 0)
                        break;
        }
        struct stat st;
        if (stat(path, &st) < 0)
                return negative_errno();
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Removes everything below the directory dfd (which it closes). */
static int rm_rf_children(int dfd) {
        DIR *d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return negative_errno();
        }
        _cleanup_closedir_ DIR *dir = d;
        int r = 0;
        for (struct dirent *de; (errno = 0, de = readdir(dir));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = r ?: negative_errno();
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(dir), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        int q = sub < 0 ? negative_errno() : rm_rf_children(sub);
                        r = r ?: q;
                }
                if (unlinkat(dirfd(dir), de->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                        r = r ?: negative_errno();
        }
        return errno > 0 ? negative_errno() : r;
}

int rm_rf(const char *path) {
        struct stat st;

        assert(path);

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (S_ISDIR(st.st_mode)) {
                int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                int r = rm_rf_children(fd);
                if (r < 0)
                        return r;
                return rmdir(path) < 0 ? negative_errno() : 0;
        }
        return unlink(path) < 0 ? negative_errno() : 0;
}

static int copy_file_at(int from_dfd, int to_dfd, const char *name, mode_t mode) {
        _cleanup_close_ int in = openat(from_dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
                return negative_errno();
        _cleanup_close_ int out = openat(to_dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
        if (out < 0)
                return negative_errno();
        char buf[65536];
        for (;;) {
                ssize_t k = read(in, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                int r = write_all(out, buf, k);
                if (r < 0)
                        return r;
        }
        /* fchmod again: O_CREAT's mode went through the umask. */
        return fchmod(out, mode & 07777) < 0 ? negative_errno() : 0;
}

static int copy_symlink_at(int from_dfd, int to_dfd, const char *name) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(from_dfd, name, target, sizeof target - 1);
        if (n < 0)
                return negative_errno();
        target[n] = 0;
        return symlinkat(target, to_dfd, name) < 0 ? negative_errno() : 0;
}

static int copy_dir_at(int from_dfd, int to_dfd, const char *const *skip);

static int copy_entry_at(int from_dfd, int to_dfd, const char *name) {
        struct stat st;
        if (fstatat(from_dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return negative_errno();
        if (S_ISREG(st.st_mode))
                return copy_file_at(from_dfd, to_dfd, name, st.st_mode);
        if (S_ISLNK(st.st_mode))
                return copy_symlink_at(from_dfd, to_dfd, name);
        if (!S_ISDIR(st.st_mode))
                return -EBADF;
        if (mkdirat(to_dfd, name, st.st_mode & 07777) < 0)
                return negative_errno();
        _cleanup_close_ int from = openat(from_dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int to = openat(to_dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (from < 0 || to < 0)
                return negative_errno();
        int r = copy_dir_at(from, to, NULL);
        if (r >= 0 && fchmod(to, st.st_mode & 07777) < 0)
                r = negative_errno();
        return r;
}

static bool name_in(const char *name, const char *const *l) {
        for (; l && *l; l++)
                if (streq(*l, name))
                        return true;
        return false;
}

static int copy_dir_at(int from_dfd, int to_dfd, const char *const *skip) {
        int fd = dup(from_dfd);
        if (fd < 0)
                return negative_errno();
        _cleanup_closedir_ DIR *d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, "..") || name_in(de->d_name, skip))
                        continue;
                int r = copy_entry_at(from_dfd, to_dfd, de->d_name);
                if (r < 0)
                        return r;
        }
        return errno > 0 ? negative_errno() : 0;
}

int copy_tree(const char *from, const char *to, const char *const *skip) {
        assert(from);
        assert(to);

        _cleanup_close_ int from_fd = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (from_fd < 0)
                return negative_errno();
        return copy_tree_fd(from_fd, to, skip);
}

int copy_tree_fd(int from_fd, const char *to, const char *const *skip) {
        assert(from_fd >= 0);
        assert(to);

        struct stat st;
        if (fstat(from_fd, &st) < 0)
                return negative_errno();
        if (mkdir(to, st.st_mode & 07777) < 0)
                return negative_errno();
        _cleanup_close_ int to_fd = open(to, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (to_fd < 0)
                return negative_errno();
        return copy_dir_at(from_fd, to_fd, skip);
}

bool path_is_safe(const char *s) {
        assert(s);

        if (s[0] != '/' || strlen(s) >= PATH_MAX)
                return false;
        for (const char *c = s; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        return false;
        for (const char *c = s; *c;) {
                c += strspn(c, "/");
                size_t n = strcspn(c, "/");
                if ((n == 1 && c[0] == '.') || (n == 2 && strneq(c, "..", 2)))
                        return false;
                c += n;
        }
        return true;
}

bool path_is_normalized(const char *s) {
        return path_is_safe(s) && !strstr(s, "//") && !endswith(s, "/");
}

char *path_join(const char *first, ...) {
        va_list ap;

        assert(first);

        size_t n = strlen(first) + 1;
        va_start(ap, first);
        for (const char *s; (s = va_arg(ap, const char *));)
                n += strlen(s) + 1;
        va_end(ap);

        char *r = malloc(n), *p = r;
        if (!r)
                return NULL;
        p = stpcpy(p, first);
        va_start(ap, first);
        for (const char *s; (s = va_arg(ap, const char *));) {
                if (p == r || p[-1] != '/')
                        *p++ = '/';
                p = stpcpy(p, s[0] == '/' ? s + 1 : s);
        }
        va_end(ap);
        return r;
}

char *strdup_printf(const char *fmt, ...) {
        va_list ap;
        char *r;

        assert(fmt);

        va_start(ap, fmt);
        int n = vasprintf(&r, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : r;
}
