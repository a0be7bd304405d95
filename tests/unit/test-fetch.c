/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap_fetch() and nap_fetch_remote_head() against real repositories made
 * with the git program: local paths, file:// URLs, bare repositories,
 * default branches named "main" and "master" (each beside another branch
 * with different content, so checking out the wrong one fails the test). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "clients/fetch.h"
#include "base/fileio.h"

static char *root;           /* temp dir holding all fixtures */
static char *env_home, *env_path;

/* git with a fixed identity and no system or user config. */
static void spawn_git(char *const argv[], int out_fd, int *ret_status) {
        char *envp[] = {
                env_home, env_path, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C",
                "GIT_AUTHOR_NAME=nap test", "GIT_AUTHOR_EMAIL=test@nap.invalid",
                "GIT_COMMITTER_NAME=nap test", "GIT_COMMITTER_EMAIL=test@nap.invalid",
                NULL,
        };
        posix_spawn_file_actions_t fa;
        pid_t pid;

        assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
        if (out_fd >= 0)
                assert_int_equal(posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO), 0);
        assert_int_equal(posix_spawnp(&pid, "git", &fa, NULL, argv, envp), 0);
        posix_spawn_file_actions_destroy(&fa);
        assert_int_equal(waitpid(pid, ret_status, 0), pid);
}

#define GIT(...)                                                               \
        do {                                                                   \
                char *_argv[] = { "git", "-c", "init.defaultBranch=main", __VA_ARGS__, NULL }; \
                int _st;                                                       \
                spawn_git(_argv, -1, &_st);                                    \
                assert_true(WIFEXITED(_st));                                   \
                assert_int_equal(WEXITSTATUS(_st), 0);                         \
        } while (0)

/* `git -C repo rev-parse rev` */
static void rev_parse(const char *repo, const char *rev, char ret[static NAP_COMMIT_HEX_LEN + 1]) {
        char *argv[] = { "git", "-C", (char *) repo, "rev-parse", (char *) rev, NULL };
        int p[2], st;
        char buf[128] = {};

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        spawn_git(argv, p[1], &st);
        close(p[1]);
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_int_equal(n, NAP_COMMIT_HEX_LEN + 1); /* 40 hex and a newline */
        memcpy(ret, buf, NAP_COMMIT_HEX_LEN);
        ret[NAP_COMMIT_HEX_LEN] = 0;
}

static char *fixture(const char *name) {
        char *p = path_join(root, name, NULL);
        assert_non_null(p);
        return p;
}

static void put(const char *dir, const char *name, const char *text, mode_t mode) {
        _cleanup_free_ char *p = path_join(dir, name, NULL);
        assert_non_null(p);
        assert_int_equal(write_file_atomic(p, text, strlen(text), mode), 0);
}

static void commit_all(const char *repo, const char *msg) {
        GIT("-C", (char *) repo, "add", "-A");
        GIT("-C", (char *) repo, "commit", "-q", "-m", (char *) msg);
}

/* A repository whose default branch is `head`, beside a branch `other`
 * whose profile differs. */
static void make_repo(const char *name, const char *head, const char *other) {
        _cleanup_free_ char *r = fixture(name), *sub = path_join(r, "sub/dir", NULL);
        GIT("init", "-q", "-b", (char *) head, r);
        assert_int_equal(mkdir_p(sub, 0755), 0);
        put(r, "profile", "python3 app.py {port}\n", 0644);
        put(r, "run.sh", "#!/bin/sh\nexec true\n", 0755);
        put(sub, "file.txt", "deep\n", 0644);
        commit_all(r, "first");
        GIT("-C", r, "checkout", "-q", "-b", (char *) other);
        put(r, "profile", "wrong branch\n", 0644);
        commit_all(r, "other");
        GIT("-C", r, "checkout", "-q", (char *) head);
}

static int setup(void **state) {
        root = strdup("/tmp/nap-test-fetch-XXXXXX");
        if (!root || !mkdtemp(root))
                return -1;
        env_home = strdup_printf("HOME=%s", root);
        env_path = strdup_printf("PATH=%s", getenv("PATH") ?: "/usr/bin:/bin");

        make_repo("main-repo", "main", "master");
        make_repo("master-repo", "master", "other");
        _cleanup_free_ char *src = fixture("main-repo"), *bare = fixture("bare.git"), *empty = fixture("empty");
        GIT("clone", "-q", "--bare", src, bare);
        GIT("init", "-q", empty);
        return 0;
}

static int teardown(void **state) {
        int r = rm_rf(root);
        free(root);
        free(env_home);
        free(env_path);
        return r;
}

static char *out_dir(const char *name) {
        _cleanup_free_ char *o = fixture("out");
        char *d = path_join(o, name, NULL);
        assert_non_null(d);
        assert_int_equal(mkdir_p(o, 0755), 0);
        return d;
}

static bool exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}

static void assert_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *p = path_join(dir, name, NULL), *buf = NULL;
        assert_int_equal(read_full_file(p, 4096, &buf, NULL), 0);
        assert_string_equal(buf, text);
}

/* The checked-out tree: the default branch's files, modes kept, no .git. */
static void assert_checkout(const char *dir) {
        struct stat st;
        _cleanup_free_ char *sh = path_join(dir, "run.sh", NULL);

        assert_file(dir, "profile", "python3 app.py {port}\n");
        assert_file(dir, "sub/dir/file.txt", "deep\n");
        assert_int_equal(stat(sh, &st), 0);
        assert_true(st.st_mode & S_IXUSR);
        _cleanup_free_ char *git = path_join(dir, ".git", NULL);
        assert_false(exists(git));
}

static void check_fetch(const char *url, const char *repo, const char *out) {
        _cleanup_free_ char *d = out_dir(out);
        char commit[NAP_COMMIT_HEX_LEN + 1], expected[NAP_COMMIT_HEX_LEN + 1], head[NAP_COMMIT_HEX_LEN + 1];
        NapError e = NAP_ERROR_NULL;

        rev_parse(repo, "HEAD", expected);
        assert_int_equal(nap_fetch(url, d, commit, &e), 0);
        assert_false(nap_error_is_set(&e));
        assert_string_equal(commit, expected);
        assert_checkout(d);

        assert_int_equal(nap_fetch_remote_head(url, head, &e), 0);
        assert_string_equal(head, expected);
}

static void test_fetch_local_path_main(void **state) {
        _cleanup_free_ char *repo = fixture("main-repo");
        check_fetch(repo, repo, "local-main");
}

static void test_fetch_local_path_master(void **state) {
        _cleanup_free_ char *repo = fixture("master-repo");
        check_fetch(repo, repo, "local-master");
}

static void test_fetch_file_url(void **state) {
        _cleanup_free_ char *repo = fixture("master-repo"), *url = strdup_printf("file://%s", repo);
        check_fetch(url, repo, "file-url");
}

static void test_fetch_bare_repo(void **state) {
        _cleanup_free_ char *repo = fixture("bare.git"), *url = strdup_printf("file://%s", repo);
        check_fetch(repo, repo, "bare-path");
        check_fetch(url, repo, "bare-url");
}

static void assert_fetch_fails(const char *url, NapErrorKind kind, const char *needle, const char *out) {
        _cleanup_free_ char *d = out_dir(out);
        char commit[NAP_COMMIT_HEX_LEN + 1] = "unchanged";
        NapError e = NAP_ERROR_NULL;

        assert_true(nap_fetch(url, d, commit, &e) < 0);
        assert_string_equal(nap_error_kind_to_string(e.kind), nap_error_kind_to_string(kind));
        assert_non_null(strstr(e.message, needle));
        assert_string_equal(commit, "unchanged");
        assert_false(exists(d)); /* nothing left behind */

        e = NAP_ERROR_NULL;
        assert_true(nap_fetch_remote_head(url, commit, &e) < 0);
        assert_string_equal(nap_error_kind_to_string(e.kind), nap_error_kind_to_string(kind));
        assert_string_equal(commit, "unchanged");
}

static void test_fetch_missing_repo(void **state) {
        _cleanup_free_ char *missing = fixture("no-such-repo"), *url = strdup_printf("file://%s", missing);
        _cleanup_free_ char *msg = strdup_printf("Failed to fetch '%s': ", missing);
        assert_fetch_fails(missing, NAP_ERROR_FETCH_FAILED, msg, "missing-path");
        assert_fetch_fails(url, NAP_ERROR_FETCH_FAILED, "Failed to fetch 'file://", "missing-url");
}

static void test_fetch_empty_repo(void **state) {
        _cleanup_free_ char *empty = fixture("empty");
        assert_fetch_fails(empty, NAP_ERROR_FETCH_FAILED, "no commits", "empty");
}

static void test_fetch_refuses_urls(void **state) {
        assert_fetch_fails("", NAP_ERROR_INVALID_PARAMETER, "No URL", "r0");
        assert_fetch_fails("/tmp/x\nInjected: 1", NAP_ERROR_INVALID_PARAMETER, "control characters", "r1");
        assert_fetch_fails("file:///tmp/\x1b[31m", NAP_ERROR_INVALID_PARAMETER, "control characters", "r2");
        assert_fetch_fails("ssh://git@example.com/a.git", NAP_ERROR_FETCH_FAILED, "ssh URLs are not supported", "r3");
        assert_fetch_fails("git@example.com:a.git", NAP_ERROR_FETCH_FAILED, "ssh URLs are not supported", "r4");
        assert_fetch_fails("example.com:a.git", NAP_ERROR_FETCH_FAILED, "ssh URLs are not supported", "r5");
        assert_fetch_fails("git://example.com/a.git", NAP_ERROR_FETCH_FAILED, "unsupported URL scheme", "r6");
}

/* An http failure (nothing listens on port 1) names the URL, not its password. */
static void test_fetch_http_error_hides_password(void **state) {
        _cleanup_free_ char *d = out_dir("http");
        char commit[NAP_COMMIT_HEX_LEN + 1];
        NapError e = NAP_ERROR_NULL;

        assert_true(nap_fetch("http://user:s3cret@127.0.0.1:1/a.git", d, commit, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_FETCH_FAILED);
        assert_non_null(strstr(e.message, "Failed to fetch 'http://***@127.0.0.1:1/a.git': "));
        assert_null(strstr(e.message, "s3cret"));
        assert_false(exists(d));
}

static void test_fetch_refuses_existing_dir(void **state) {
        _cleanup_free_ char *repo = fixture("main-repo"), *d = out_dir("exists");
        char commit[NAP_COMMIT_HEX_LEN + 1];
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(mkdir_p(d, 0755), 0);
        put(d, "keep", "mine\n", 0644);
        assert_int_equal(nap_fetch(repo, d, commit, &e), -EEXIST);
        assert_true(nap_error_is_set(&e));
        assert_file(d, "keep", "mine\n"); /* not removed on failure */
}

/* A new commit on the default branch: the remote head and the next fetch see it. */
static void test_fetch_follows_new_commit(void **state) {
        _cleanup_free_ char *repo = fixture("moving"), *d1 = out_dir("moving1"), *d2 = out_dir("moving2");
        char c1[NAP_COMMIT_HEX_LEN + 1], c2[NAP_COMMIT_HEX_LEN + 1], head[NAP_COMMIT_HEX_LEN + 1];
        NapError e = NAP_ERROR_NULL;

        make_repo("moving", "main", "old");
        assert_int_equal(nap_fetch(repo, d1, c1, &e), 0);
        put(repo, "profile", "python3 app2.py {port}\n", 0644);
        commit_all(repo, "second");

        assert_int_equal(nap_fetch_remote_head(repo, head, &e), 0);
        assert_string_not_equal(head, c1);
        assert_int_equal(nap_fetch(repo, d2, c2, &e), 0);
        assert_string_equal(c2, head);
        assert_file(d2, "profile", "python3 app2.py {port}\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fetch_local_path_main),
                cmocka_unit_test(test_fetch_local_path_master),
                cmocka_unit_test(test_fetch_file_url),
                cmocka_unit_test(test_fetch_bare_repo),
                cmocka_unit_test(test_fetch_missing_repo),
                cmocka_unit_test(test_fetch_empty_repo),
                cmocka_unit_test(test_fetch_refuses_urls),
                cmocka_unit_test(test_fetch_http_error_hides_password),
                cmocka_unit_test(test_fetch_refuses_existing_dir),
                cmocka_unit_test(test_fetch_follows_new_commit),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
