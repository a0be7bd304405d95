/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The baseline of bench/varlink's cold rows (built by that script, not by
 * meson): the least a socket-activated service can do. It takes the
 * listening socket systemd passes (fd 3), accepts, and answers every
 * NUL-terminated message with one fixed varlink reply, until stopped. libc
 * only: started in nap-managerd's unit with its sandboxing, the time of
 * its first answer is what systemd's start-up and the sandboxing cost, and
 * nap-managerd's own start (libraries, set-up) is the rest.
 * With the argument "http" (bench/web, in a copy of nap-web's unit) it
 * answers each connection's request, once its headers are in, with one
 * fixed HTTP response instead, and closes. */

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_FD 3

static void serve(int fd) {
        static const char reply[] = "{\"parameters\":{}}"; /* sent with its NUL */
        char buf[4096];
        ssize_t n;

        while ((n = read(fd, buf, sizeof buf)) > 0)
                if (memchr(buf, '\0', (size_t) n) && write(fd, reply, sizeof reply) != (ssize_t) sizeof reply)
                        return;
}

static void serve_http(int fd) {
        static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        char buf[4096];
        size_t have = 0;
        ssize_t n;

        while (have < sizeof buf - 1 && (n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
                have += (size_t) n;
                buf[have] = '\0';
                if (strstr(buf, "\r\n\r\n")) {
                        (void) !write(fd, reply, sizeof reply - 1);
                        return;
                }
        }
}

int main(int argc, char *argv[]) {
        int http = argc > 1 && strcmp(argv[1], "http") == 0;
        for (;;) {
                int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        return 1;
                if (http)
                        serve_http(fd);
                else
                        serve(fd);
                close(fd);
        }
}
