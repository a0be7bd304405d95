/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>

#include "base/fileio.h"
#include "test-util.h"
#include "model/manifest.h"
#include "model/state.h"
#include "base/strv.h"

typedef TestState Fixture;

/* Takes path. */
static void assert_path(char *path, const char *want) {
        assert_non_null(path);
        assert_string_equal(path, want);
        free(path);
}

/* Takes path and checks it is ROOT/want. */
static void assert_under_root(const Fixture *f, char *path, const char *want) {
        _cleanup_free_ char *expected = path_join(f->config->root, want, NULL);
        assert_path(path, expected);
}

static void test_service_paths(void **state) {
        Fixture *f = *state;
        assert_under_root(f, nap_state_user_services_dir(f->config, "alice"), "services/alice");
        assert_under_root(f, nap_state_service_dir(f->config, &f->service), "services/alice/alice_web");
        assert_under_root(f, nap_state_staging_template(f->config, &f->service),
                          "services/alice/alice_web.deploy-XXXXXX");
        assert_under_root(f, nap_state_git_repo_dir(f->config, &f->service), "git/alice/web.git");
}

static void test_tree_paths(void **state) {
        assert_path(nap_state_staging_tree("/s/alice_web.deploy-abc123"), "/s/alice_web.deploy-abc123/tree");
        assert_path(nap_state_meta_dir("/s/alice_web"), "/s/alice_web/.nap");
        assert_path(nap_state_deploy_meta_file("/s/alice_web"), "/s/alice_web/.nap/deploy.json");
        assert_path(nap_state_history_file("/s/alice_web"), "/s/alice_web/.nap/history.json");
}

static void test_instance_paths(void **state) {
        Fixture *f = *state;
        NapInstance i = { .service = f->service, .kind = NAP_KIND_COMMON, .number = 7 };
        assert_under_root(f, nap_state_user_apps_dir(f->config, "alice"), "apps/alice");
        assert_under_root(f, nap_state_instance_dir(f->config, &i), "apps/alice/alice_web_7");
        /* Beside the instance's directory, whatever its manifest says it is. */
        assert_path(nap_state_instance_build_dir("/a/alice_web_7"), "/a/alice_web_7.tmp");
        assert_path(nap_state_instance_next_dir("/a/alice_web_7"), "/a/alice_web_7.next");
}

static void test_instance_numbers_are_never_reused(void **state) {
        Fixture *f = *state;
        unsigned n;
        assert_int_equal(nap_state_next_instance_number(f->config, &f->service, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_int_equal(nap_state_next_instance_number(f->config, &f->service, &n, NULL), 0);
        assert_int_equal(n, 2);
        /* Nothing of 1 and 2 is left on disk; the counter still remembers. */
        assert_int_equal(nap_state_next_instance_number(f->config, &f->service, &n, NULL), 0);
        assert_int_equal(n, 3);
        /* Another app counts on its own. */
        NapService other;
        assert_int_equal(nap_service_parse("alice_api", &other, NULL), 0);
        assert_int_equal(nap_state_next_instance_number(f->config, &other, &n, NULL), 0);
        assert_int_equal(n, 1);
}

static void test_instance_number_is_above_existing_trees(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *d = path_join(f->config->root, "apps/alice/alice_web_41", NULL);
        _cleanup_free_ char *lookalike = path_join(f->config->root, "apps/alice/alice_web_x99", NULL);
        assert_int_equal(mkdir_p(d, 0755), 0);
        assert_int_equal(mkdir_p(lookalike, 0755), 0);
        unsigned n;
        assert_int_equal(nap_state_next_instance_number(f->config, &f->service, &n, NULL), 0);
        assert_int_equal(n, 42);
}

static void test_instance_number_is_above_existing_manifests(void **state) {
        Fixture *f = *state;
        assert_int_equal(mkdir_p(f->config->instances_dir, 0755), 0);
        _cleanup_free_ char *p = path_join(f->config->instances_dir, "alice_web_common@7.json", NULL);
        assert_int_equal(write_file_atomic(p, "{}", 2, 0644), 0);
        unsigned n;
        assert_int_equal(nap_state_next_instance_number(f->config, &f->service, &n, NULL), 0);
        assert_int_equal(n, 8);
}

static void test_damaged_counter_is_an_error(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *p = path_join(f->config->root, "services/alice/.alice_web.last", NULL);
        _cleanup_free_ char *dir = path_join(f->config->root, "services/alice", NULL);
        assert_int_equal(mkdir_p(dir, 0755), 0);
        assert_int_equal(write_file_atomic(p, "garbage\n", 8, 0644), 0);
        NapError e = NAP_ERROR_NULL;
        unsigned n = 0;
        assert_true(nap_state_next_instance_number(f->config, &f->service, &n, &e) < 0);
        assert_int_equal(n, 0);
        assert_non_null(strstr(e.message, ".alice_web.last"));
}

static void test_service_lock_excludes(void **state) {
        Fixture *f = *state;
        int fd = -1;
        assert_int_equal(nap_state_lock_service(f->config, &f->service, &fd, NULL), 0);
        _cleanup_free_ char *p = path_join(f->config->root, "services/alice/.alice_web.lock", NULL);
        _cleanup_close_ int other = open(p, O_RDWR | O_CLOEXEC);
        assert_true(other >= 0);
        assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
        assert_int_equal(errno, EWOULDBLOCK);
        close(fd);
        assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
}

static void save_manifest_of(Fixture *f, const NapService *s, unsigned number, unsigned port) {
        char *argv[] = { (char *) "true", NULL };
        NapManifest m = {
                .instance = { .service = *s, .kind = NAP_KIND_COMMON, .number = number },
                .argv = argv,
                .directory = (char *) "/srv/x",
                .port = port,
                .enabled = true,
        };
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_manifest_save(f->config->instances_dir, &m, &e), 0);
}

static void save_manifest_with_port(Fixture *f, unsigned number, unsigned port) {
        save_manifest_of(f, &f->service, number, port);
}

static void write_instances_file(Fixture *f, const char *name, const char *text) {
        _cleanup_free_ char *p = path_join(f->config->instances_dir, name, NULL);
        assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
}

static void test_service_manifests_by_number(void **state) {
        Fixture *f = *state;
        NapService other;
        assert_int_equal(nap_service_parse("alice_web-x", &other, NULL), 0);
        save_manifest_with_port(f, 3, 20003);
        save_manifest_with_port(f, 1, 20001);
        /* Another app's (its name begins the same), a damaged one and a
         * file that is not a manifest: all left out. */
        save_manifest_of(f, &other, 2, 20002);
        write_instances_file(f, "alice_web_common@9.json", "{}");
        write_instances_file(f, "alice_web_notes.txt", "hello");

        NapManifest **l = NULL;
        size_t n = 0;
        assert_int_equal(nap_state_load_service_manifests(f->config, &f->service, &l, &n, NULL), 0);
        assert_int_equal(n, 2);
        assert_int_equal(l[0]->instance.number, 1);
        assert_int_equal(l[0]->port, 20001);
        assert_int_equal(l[1]->instance.number, 3);
        assert_string_equal(l[1]->instance.service.app, "web");
        nap_state_manifests_free(l, n);
}

static void test_service_manifests_none(void **state) {
        Fixture *f = *state;
        NapManifest **l = NULL;
        size_t n = 1;
        /* No Instances= directory yet: no instances, not an error. */
        assert_int_equal(nap_state_load_service_manifests(f->config, &f->service, &l, &n, NULL), 0);
        assert_int_equal(n, 0);
        assert_null(l);
}

static void test_has_manifest_of_kind(void **state) {
        Fixture *f = *state;
        NapService other;
        assert_int_equal(nap_service_parse("alice_web-x", &other, NULL), 0);
        /* No Instances= directory yet: none. */
        assert_int_equal(nap_state_has_manifest_of(f->config, &f->service, NAP_KIND_COMMON), 0);
        /* Another app's whose name begins the same, and a file that is
         * not a manifest, do not count. */
        save_manifest_of(f, &other, 2, 20002);
        write_instances_file(f, "alice_web_common@notes.txt", "hello");
        assert_int_equal(nap_state_has_manifest_of(f->config, &f->service, NAP_KIND_COMMON), 0);
        save_manifest_with_port(f, 3, 20003);
        assert_int_equal(nap_state_has_manifest_of(f->config, &f->service, NAP_KIND_COMMON), 1);
        assert_int_equal(nap_state_has_manifest_of(f->config, &f->service, NAP_KIND_MPI_MASTER), 0);
}

/* A port this process listens on, so the allocator must skip it. */
static int listen_on_free_port(unsigned *ret) {
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = in6addr_any };
        socklen_t l = sizeof sa;
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(fd, 1), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        *ret = ntohs(sa.sin6_port);
        return fd;
}

/* The instance ports are allocated for in these tests (its manifest is
 * never written: its claim is stale once the lock is closed). */
static const NapInstance new_instance = { .service = { .user = "alice", .app = "web" }, .kind = NAP_KIND_COMMON,
                                          .number = 99 };

static void test_port_allocation_skips_used_ports(void **state) {
        Fixture *f = *state;
        unsigned busy, port;
        _cleanup_close_ int fd = listen_on_free_port(&busy);
        if (busy + 2 > 65535)
                skip();
        f->config->port_min = busy;
        f->config->port_max = busy + 2;
        save_manifest_with_port(f, 1, busy + 1);

        int lock = -1;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_state_allocate_port(f->config, &new_instance, &port, &lock, &e), 0);
        close(lock);
        /* busy is bound, busy+1 belongs to a manifest: busy+2 unless taken by someone else. */
        assert_int_equal(port, busy + 2);
}

/* A claim holds while its manifest exists, and only then. */
static void test_port_claims(void **state) {
        Fixture *f = *state;
        unsigned a, b, c;
        int lock = -1;
        NapError e = NAP_ERROR_NULL;
        f->config->port_min = 41000;
        f->config->port_max = 41999;
        assert_int_equal(nap_state_allocate_port(f->config, &new_instance, &a, &lock, &e), 0);
        close(lock);
        assert_int_equal(nap_state_allocate_port(f->config, &new_instance, &b, &lock, &e), 0);
        close(lock);
        assert_int_equal(b, a); /* no manifest was written for the first: free again */
        save_manifest_with_port(f, 99, b); /* now it is */
        assert_int_equal(nap_state_allocate_port(f->config, &new_instance, &c, &lock, &e), 0);
        close(lock);
        assert_true(c != b);
        _cleanup_free_ char *claim = strdup_printf("%s/ports/%u", f->config->root, b);
        char target[PATH_MAX] = "";
        assert_true(readlink(claim, target, sizeof target - 1) > 0);
        assert_non_null(strstr(target, "alice_web_common@99.json"));
}

/* A port whose last connection lingers in TIME_WAIT (an instance that just
 * went, and the clients it served) is free: apps bind with SO_REUSEADDR,
 * and their connections keep it in TIME_WAIT. */
static void test_port_in_time_wait_is_free(void **state) {
        Fixture *f = *state;
        unsigned port, got = 0;
        int one = 1, listener = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 bound = { .sin6_family = AF_INET6, .sin6_addr = in6addr_any };
        socklen_t bl = sizeof bound;
        assert_true(listener >= 0);
        assert_int_equal(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
        assert_int_equal(bind(listener, (struct sockaddr *) &bound, sizeof bound), 0);
        assert_int_equal(listen(listener, 1), 0);
        assert_int_equal(getsockname(listener, (struct sockaddr *) &bound, &bl), 0);
        port = ntohs(bound.sin6_port);
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_loopback };
        int client = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(client >= 0);
        assert_int_equal(connect(client, (struct sockaddr *) &sa, sizeof sa), 0);
        int served = accept(listener, NULL, NULL);
        assert_true(served >= 0);
        close(listener);
        close(served); /* the server closes first: its side goes to TIME_WAIT */
        char c;
        assert_int_equal(read(client, &c, 1), 0);
        close(client);

        int plain = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 any = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
        assert_true(plain >= 0);
        /* The lingering connection is there: a bind without SO_REUSEADDR fails. */
        assert_int_equal(bind(plain, (struct sockaddr *) &any, sizeof any), -1);
        assert_int_equal(errno, EADDRINUSE);
        close(plain);

        f->config->port_min = f->config->port_max = port;
        int lock = -1;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_state_allocate_port(f->config, &new_instance, &got, &lock, &e), 0);
        close(lock);
        assert_int_equal(got, port);
}

static void test_port_allocation_exhausted(void **state) {
        Fixture *f = *state;
        unsigned busy, port = 0;
        _cleanup_close_ int fd = listen_on_free_port(&busy);
        f->config->port_min = f->config->port_max = busy;
        int lock = -1;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_state_allocate_port(f->config, &new_instance, &port, &lock, &e), -EADDRINUSE);
        assert_int_equal(e.kind, NAP_ERROR_NO_FREE_PORT);
        assert_int_equal(port, 0);
        assert_int_equal(lock, -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_service_paths, test_state_setup, test_state_teardown),
                cmocka_unit_test(test_tree_paths),
                cmocka_unit_test_setup_teardown(test_instance_paths, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_service_manifests_by_number, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_service_manifests_none, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_has_manifest_of_kind, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_instance_numbers_are_never_reused, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_instance_number_is_above_existing_trees, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_instance_number_is_above_existing_manifests, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_damaged_counter_is_an_error, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_service_lock_excludes, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_port_allocation_skips_used_ports, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_port_in_time_wait_is_free, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_port_allocation_exhausted, test_state_setup, test_state_teardown),
                cmocka_unit_test_setup_teardown(test_port_claims, test_state_setup, test_state_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
