/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A socket connected to itself, made for real: bound to a loopback port
 * and connected to that same address (the TCP simultaneous open that an
 * ephemeral source port equal to the destination port gives by chance). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/socket-util.h"

static int loopback_socket(struct sockaddr_in *a) {
        socklen_t l = sizeof *a;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        *a = (struct sockaddr_in) { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(bind(fd, (struct sockaddr *) a, sizeof *a), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) a, &l), 0);
        return fd;
}

static void test_self_connected(void **state) {
        struct sockaddr_in a;
        int fd = loopback_socket(&a);
        assert_int_equal(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
        /* It reads back what it sends: what a probe would take for an answer. */
        char buf[4] = "";
        assert_int_equal(send(fd, "HEAD", 4, MSG_NOSIGNAL), 4);
        assert_int_equal(recv(fd, buf, sizeof buf, 0), 4);
        assert_true(socket_is_connected_to_itself(fd));
        close(fd);
}

static void test_connected_to_a_listener(void **state) {
        struct sockaddr_in a;
        int listener = loopback_socket(&a);
        assert_int_equal(listen(listener, 1), 0);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_false(socket_is_connected_to_itself(fd));
        close(fd);
        close(listener);
}

static void test_not_connected(void **state) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_false(socket_is_connected_to_itself(fd));
        close(fd);
        assert_false(socket_is_connected_to_itself(-1));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_self_connected),
                cmocka_unit_test(test_connected_to_a_listener),
                cmocka_unit_test(test_not_connected),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
