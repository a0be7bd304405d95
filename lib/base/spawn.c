/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/macro.h"
#include "base/socket-util.h"
#include "base/spawn.h"

/* Reads fd to its end into a NUL-terminated buffer of at most max bytes,
 * until the deadline. */
static int read_output(int fd, size_t max, uint64_t deadline, char **ret) {
        _cleanup_free_ char *buf = malloc(max + 1);
        size_t n = 0;
        if (!buf)
                return -ENOMEM;
        for (;;) {
                int k = fd_wait_until(fd, POLLIN, deadline);
                if (k <= 0)
                        return k < 0 ? k : -ETIMEDOUT;
                ssize_t got = read(fd, buf + n, max - n);
                if (got < 0 && errno != EINTR)
                        return -errno;
                if (got == 0)
                        break;
                n += got > 0 ? (size_t) got : 0;
                if (n == max)
                        return -EFBIG;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int spawn(const char *path, char *const *argv, char *const *envp, int which, int fd, pid_t *ret) {
        extern char **environ;
        posix_spawn_file_actions_t fa;
        int other = which == STDOUT_FILENO ? STDERR_FILENO : STDOUT_FILENO;
        int r = -posix_spawn_file_actions_init(&fa);
        if (r >= 0)
                r = -posix_spawn_file_actions_adddup2(&fa, fd, which);
        if (r >= 0)
                r = -posix_spawn_file_actions_addopen(&fa, other, "/dev/null", O_WRONLY, 0);
        if (r >= 0)
                r = -posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r >= 0)
                r = path ? -posix_spawn(ret, path, &fa, NULL, argv, envp ?: environ)
                         : -posix_spawnp(ret, argv[0], &fa, NULL, argv, envp ?: environ);
        (void) posix_spawn_file_actions_destroy(&fa);
        return r;
}

int nap_spawn_capture(const char *path, char *const *argv, char *const *envp, int which, size_t max, uint64_t timeout_usec,
                      char **ret) {
        _cleanup_free_ char *out = NULL;
        int pipefd[2], status;
        pid_t pid;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        int r = spawn(path, argv, envp, which, pipefd[1], &pid);
        safe_close(pipefd[1]);
        if (r < 0) {
                safe_close(pipefd[0]);
                return r;
        }
        r = read_output(pipefd[0], max, monotonic_usec() + timeout_usec, &out);
        safe_close(pipefd[0]);
        if (r < 0)
                (void) kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r >= 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                r = -EIO;
        if (ret)
                *ret = TAKE_PTR(out);
        return r;
}
