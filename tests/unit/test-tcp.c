/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/base/tcp: the protocol's lines, connections and port probes made
 * here, and the same through the built nap-connect ($NAP_CONNECT_BINARY),
 * socket-activated by this test as systemd would (LISTEN_FDS), on real
 * loopback sockets. */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/socket-util.h"
#include "base/tcp.h"
#include "clients/http.h"

#define SECOND (1000ULL * 1000ULL)

static void test_request_parse(void **state) {
        TcpBrokerRequest q;
        assert_int_equal(tcp_broker_request_parse("connect 10.0.0.1 2379 5000", &q), 0);
        assert_int_equal(q.op, TCP_BROKER_CONNECT);
        assert_string_equal(q.host, "10.0.0.1");
        assert_int_equal(q.port, 2379);
        assert_int_equal(q.timeout_ms, 5000);
        assert_int_equal(tcp_broker_request_parse("connect fe80::1%eth0 80 1", &q), 0);
        assert_string_equal(q.host, "fe80::1%eth0");
        assert_int_equal(tcp_broker_request_parse("connect etcd-1.example.org 2379 600000", &q), 0);
        assert_int_equal(tcp_broker_request_parse("port-free 22000", &q), 0);
        assert_int_equal(q.op, TCP_BROKER_PORT_FREE);
        assert_int_equal(q.port, 22000);

        const char *bad[] = {
                "", "connect", "connect  80 1", "connect h 0 1", "connect h 65536 1", "connect h 80 0",
                "connect h 80 600001", "connect h 80", "connect h 80 1 x", "connect -h 80 1", "connect h;ls 80 1",
                "connect h 80 1 ", "connect h +80 1", "connect h 80 99999999999", "port-free", "port-free 0",
                "port-free 80x", "Connect h 80 1", "listen 80", "port-free 080", "connect h 80 0001",
                "connect h 080 1",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                assert_int_equal(tcp_broker_request_parse(bad[i], &q), -EINVAL);
}

static void test_reply_parse(void **state) {
        assert_int_equal(tcp_broker_reply_parse("ok"), 1);
        assert_int_equal(tcp_broker_reply_parse("free"), 1);
        assert_int_equal(tcp_broker_reply_parse("taken"), 0);
        assert_int_equal(tcp_broker_reply_parse("error 111"), -111);
        assert_int_equal(tcp_broker_reply_parse("error 0"), -EBADMSG);
        assert_int_equal(tcp_broker_reply_parse("error 4096"), -EBADMSG);
        assert_int_equal(tcp_broker_reply_parse("error -1"), -EBADMSG);
        assert_int_equal(tcp_broker_reply_parse("ok "), -EBADMSG);
        assert_int_equal(tcp_broker_reply_parse(""), -EBADMSG);
}

/* A listener on a loopback port the kernel chose, with SO_REUSEADDR as
 * servers have it (their connections in TIME_WAIT leave the port free). */
static int listener(unsigned *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;
        int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(fd, 8), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &l), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* fd is connected to the listener: what it sends arrives there. */
static void assert_connected_to(int fd, int listen_fd) {
        char buf[4] = "";
        assert_true(fd >= 0);
        int peer = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(peer >= 0);
        assert_int_equal(send(fd, "nap", 3, MSG_NOSIGNAL), 3);
        assert_int_equal(recv(peer, buf, 3, 0), 3);
        assert_memory_equal(buf, "nap", 3);
        close(peer);
        close(fd);
}

/* Connects, refuses, resolves and probes ports: here, or through
 * nap-connect when the test set $NAP_CONNECT_SOCKET. */
static void check_connections(void) {
        unsigned port;
        int l = listener(&port);
        assert_connected_to(tcp_connect("127.0.0.1", port, 5 * SECOND), l);
        assert_connected_to(tcp_connect("localhost", port, 5 * SECOND), l);
        assert_int_equal(tcp_port_free(port), 0);
        close(l);
        /* nothing listens there now (its connections are gone with it) */
        assert_int_equal(tcp_port_free(port), 1);
        assert_int_equal(tcp_connect("127.0.0.1", port, 5 * SECOND), -ECONNREFUSED);
        assert_int_equal(tcp_connect("nap-test.invalid", 80, 5 * SECOND), -ENXIO);
        assert_int_equal(tcp_connect("h;rm", 80, SECOND), -EINVAL);
        assert_int_equal(tcp_port_free(0), -EINVAL);
}

static void test_here(void **state) {
        unsetenv("NAP_CONNECT_SOCKET");
        assert_null(tcp_broker_socket());
        check_connections();
}

/* nap-connect on path, as nap-connect.socket starts it. */
static pid_t start_broker(const char *path) {
        const char *binary = getenv("NAP_CONNECT_BINARY");
        int fd = socket_listen_unix(path, 0600, 0);
        assert_non_null(binary);
        assert_true(fd >= 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char pidtext[32];
                snprintf(pidtext, sizeof pidtext, "%d", (int) getpid());
                if (fd == 3 ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, 3) < 0)
                        _exit(127);
                setenv("LISTEN_FDS", "1", 1);
                setenv("LISTEN_PID", pidtext, 1);
                execl(binary, "nap-connect", "--idle-timeout=10", (char *) NULL); /* gone if the test fails */
                _exit(127);
        }
        close(fd);
        return pid;
}

/* request (size bytes) to nap-connect at path: "error 22", no socket. */
static void assert_refused(const char *path, const char *request, size_t size) {
        char reply[64];
        int passed, fd = socket_connect_unix(path, 5 * SECOND);
        assert_true(fd >= 0);
        assert_int_equal(socket_send_all(fd, request, size), 0);
        assert_true(socket_receive_line(fd, reply, sizeof reply, UINT64_MAX, &passed) > 0);
        assert_string_equal(reply, "error 22");
        assert_int_equal(passed, -1);
        close(fd);
}

/* One HTTP answer to the first connection on l, from a child. */
static pid_t serve_http_once(int l) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                static const char answer[] = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                char buf[1024];
                int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0 || recv(c, buf, sizeof buf, 0) <= 0 || socket_send_all(c, answer, sizeof answer - 1) < 0)
                        _exit(1);
                _exit(0);
        }
        return pid;
}

/* libcurl through nap-connect (lib/clients/curl-connect.c): a name that
 * curl never resolves itself, an answer, and a refusal that names the
 * real host, not the numeric address curl was pointed at. */
static void check_curl_through(const char *path) {
        char url[64];
        unsigned port;
        int l = listener(&port), status;
        NapHttpAnswer a = {};
        NapError e = NAP_ERROR_NULL;
        pid_t pid = serve_http_once(l);
        snprintf(url, sizeof url, "http://localhost:%u/", port);
        assert_int_equal(nap_http_request(&(NapHttpRequest) { .url = url }, &a, &e), 0);
        assert_int_equal(a.status, 200);
        assert_string_equal(a.body, "hello");
        nap_http_answer_done(&a);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        close(l);
        snprintf(url, sizeof url, "http://localhost:%u/", port);
        assert_true(nap_http_request(&(NapHttpRequest) { .url = url }, &a, &e) < 0);
        assert_non_null(strstr(e.message, "connecting to localhost port"));
        assert_non_null(strstr(e.message, "Connection refused"));
}

static void test_through_nap_connect(void **state) {
        char dir[] = "/tmp/nap-test-tcp-XXXXXX", path[64];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/connect", dir);
        pid_t pid = start_broker(path);
        setenv("NAP_CONNECT_SOCKET", path, 1);
        assert_string_equal(tcp_broker_socket(), path);
        check_connections();
        /* lines that are no request (a NUL in one once crashed the child):
         * refused, named */
        assert_refused(path, "listen 80\n", 10);
        assert_refused(path, "port-free 8\0\n", 13);
        check_curl_through(path);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        /* gone: named as nap-connect missing, not as the port refusing */
        unsigned port;
        int l = listener(&port);
        assert_int_equal(tcp_connect("127.0.0.1", port, SECOND), -ENOTCONN);
        assert_int_equal(tcp_port_free(port), -ENOTCONN);
        close(l);
        unsetenv("NAP_CONNECT_SOCKET");
        unlink(path);
        rmdir(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_parse),
                cmocka_unit_test(test_reply_parse),
                cmocka_unit_test(test_here),
                cmocka_unit_test(test_through_nap_connect),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
