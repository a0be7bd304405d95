/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A real etcd (Debian's /usr/bin/etcd) for unit tests: started on free
 * loopback ports with a data directory of its own, removed at the end.
 * Tests include this header once; it needs libcurl (to ask /health
 * outside the library under test). Tests that need etcd call
 * REQUIRE_ETCD() and are skipped only when /usr/bin/etcd is missing. */

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/etcd.h"

#ifndef ETCD_BINARY
#define ETCD_BINARY "/usr/bin/etcd"
#endif

/* ---- a real etcd ------------------------------------------------------ */

typedef struct TestEtcd {
        pid_t pid;
        char dir[64];
        char url[64];
} TestEtcd;

static TestEtcd shared_etcd = { .pid = -1 };
static bool have_etcd;

#define REQUIRE_ETCD() do { if (!have_etcd) skip(); } while (0)

/* A port nobody listens on right now: bind port 0, read it, close. */
static int free_port(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        close(fd);
        return ntohs(sa.sin_port);
}

static size_t discard(char *p, size_t s, size_t n, void *u) {
        strncat(u, p, MIN(s * n, 63 - strlen(u)));
        return s * n;
}

/* POST (body) or GET (NULL) outside the library under test; the answer's
 * first 63 bytes land in out. */
static int raw_http(const char *url, const char *body, char out[static 64]) {
        CURL *h = curl_easy_init();
        CURLcode code;

        out[0] = 0;
        assert_non_null(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        if (body)
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        code = curl_easy_perform(h);
        curl_easy_cleanup(h);
        return code == CURLE_OK ? 0 : -EIO;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static pid_t spawn_etcd(TestEtcd *x, int client_port, int peer_port) {
        char data[96], client[64], peer[64], cluster[96], log[96];
        char *argv[] = {
                ETCD_BINARY, "--name", "default", "--data-dir", data,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, NULL,
        };
        posix_spawn_file_actions_t fa;
        pid_t pid;

        snprintf(data, sizeof data, "%s/data", x->dir);
        snprintf(log, sizeof log, "%s/etcd.log", x->dir);
        snprintf(client, sizeof client, "http://127.0.0.1:%d", client_port);
        snprintf(peer, sizeof peer, "http://127.0.0.1:%d", peer_port);
        snprintf(cluster, sizeof cluster, "default=%s", peer);
        assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
        assert_int_equal(posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_APPEND, 0644), 0);
        assert_int_equal(posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO), 0);
        assert_int_equal(posix_spawn(&pid, ETCD_BINARY, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        snprintf(x->url, sizeof x->url, "%s", client);
        return pid;
}

/* Up to 15 s for /health to say true; false if etcd died (port taken). */
static bool wait_healthy(TestEtcd *x) {
        char url[96], out[64];

        snprintf(url, sizeof url, "%s/health", x->url);
        for (int i = 0; i < 300; i++) {
                if (raw_http(url, NULL, out) == 0 && strstr(out, "\"true\""))
                        return true;
                if (waitpid(x->pid, NULL, WNOHANG) == x->pid) {
                        x->pid = -1;
                        return false;
                }
                usleep(50 * 1000);
        }
        return false;
}

static void test_etcd_start(TestEtcd *x) {
        snprintf(x->dir, sizeof x->dir, "/tmp/nap-test-etcd-XXXXXX");
        assert_non_null(mkdtemp(x->dir));
        for (int attempt = 0; attempt < 3; attempt++) {
                x->pid = spawn_etcd(x, free_port(), free_port());
                if (wait_healthy(x))
                        return;
                if (x->pid > 0) {
                        kill(x->pid, SIGKILL);
                        waitpid(x->pid, NULL, 0);
                }
        }
        fail_msg("etcd did not become healthy; see %s/etcd.log", x->dir);
}

static void test_etcd_kill(TestEtcd *x) {
        if (x->pid > 0) {
                kill(x->pid, SIGTERM);
                waitpid(x->pid, NULL, 0);
                x->pid = -1;
        }
}

static void test_etcd_destroy(TestEtcd *x) {
        test_etcd_kill(x);
        if (x->dir[0])
                nftw(x->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        x->dir[0] = 0;
}

static EtcdClient *client_for(const char *url) {
        char *endpoints[] = { (char *) url, NULL };
        EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(etcd_client_new(endpoints, &c, &e), 0);
        return c;
}

/* ---- a cmocka group sharing one etcd ------------------------------------ */

/* A client of shared_etcd, made by the group's set-up (NULL without etcd). */
static EtcdClient *etcd;

static int shared_etcd_group_setup(void **state) {
        have_etcd = access(ETCD_BINARY, X_OK) == 0;
        if (have_etcd) {
                test_etcd_start(&shared_etcd);
                etcd = client_for(shared_etcd.url);
        }
        return 0;
}

static int shared_etcd_group_teardown(void **state) {
        etcd = etcd_client_free(etcd);
        test_etcd_destroy(&shared_etcd);
        return 0;
}
