/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Push deploys without a service manager (lib/ops/ops-push.c, fetch-commit.c):
 * checking out a given commit of a bare repository, the deploy history,
 * rollback's choice of commit, and the rule that a failed deploy changes
 * nothing, against real repositories made with the git program. Apps here
 * either need parameters (so no instance is started and no bus is needed)
 * or find no bus (the test hides it), which must fail cleanly. Replacing
 * instances, batches and answers are covered by
 * tests/integration/test-push.sh and test-zero-downtime.sh. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "clients/fetch-commit.h"
#include "base/fileio.h"
#include "test-util.h"
#include "model/manifest.h"
#include "ops/ops.h"
#include "base/strv.h"

typedef struct Fixture {
        char *dir, *work, *bare;
        NapContext *c;
} Fixture;

static char *path(Fixture *f, const char *rel) {
        return path_join(f->dir, rel, NULL);
}

static bool exists(Fixture *f, const char *rel) {
        _cleanup_free_ char *p = path(f, rel);
        return access(p, F_OK) >= 0;
}

static char *slurp(Fixture *f, const char *rel) {
        _cleanup_free_ char *p = path(f, rel);
        char *text = NULL;
        assert_int_equal(read_full_file(p, 1 << 20, &text, NULL), 0);
        return text;
}

/* Commits name=text in the work tree and pushes it to the bare repository;
 * the new commit's id into ret. */
static void commit_and_push(Fixture *f, const char *name, const char *text, char ret[static 41]) {
        _cleanup_free_ char *p = path_join(f->work, name, NULL), *message = strdup(name);
        NapError e = NAP_ERROR_NULL;
        if (text)
                assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
        else
                assert_int_equal(unlink(p), 0);
        run((char *const[]) { "git", "-C", f->work, "add", "-A", NULL });
        run((char *const[]) { "git", "-C", f->work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, NULL });
        run((char *const[]) { "git", "-C", f->work, "push", "-q", f->bare, "main", NULL });
        assert_int_equal(nap_repo_resolve(f->bare, "refs/heads/main", ret, &e), 0);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        f->dir = strdup("/tmp/nap-test-ops-push-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        f->work = path(f, "work");
        f->bare = path(f, "git/alice/web.git");
        run((char *const[]) { "git", "init", "-q", "-b", "main", f->work, NULL });
        run((char *const[]) { "git", "init", "-q", "--bare", "-b", "main", f->bare, NULL });
        /* No service manager here, whatever the session has: nothing in
         * these tests may reach a real one. */
        setenv("XDG_RUNTIME_DIR", f->dir, 1);
        unsetenv("DBUS_SESSION_BUS_ADDRESS");

        assert_int_equal(nap_context_new_with_config(&f->c, test_config_in(f->dir), NAP_SCOPE_USER), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        rm_rf(f->dir);
        free(f->dir);
        free(f->work);
        free(f->bare);
        nap_context_free(f->c);
        free(f);
        return 0;
}

/* A profile with a parameter without default: deploys start no instance. */
#define NEEDS_NAME "python3 server.py --port {port} --name {name}\n"

static int deploy(Fixture *f, const char *rev, NapRolloutResult *res, NapError *e) {
        *e = NAP_ERROR_NULL;
        int r = nap_deploy_commit(f->c, "alice_web", f->bare, rev, NULL, res, e);
        nap_rollout_result_done(res);
        return r;
}

static void test_fetch_commit_checks_out_that_commit(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41];
        NapError e = NAP_ERROR_NULL;
        commit_and_push(f, "a", "one\n", c1);
        _cleanup_free_ char *work_b = path_join(f->work, "dir", NULL);
        assert_int_equal(mkdir(work_b, 0755), 0);
        commit_and_push(f, "dir/b", "two\n", c2);
        _cleanup_free_ char *script = path_join(f->work, "dir", "b", NULL);
        assert_int_equal(chmod(script, 0755), 0);
        _cleanup_free_ char *link = path_join(f->work, "l", NULL);
        assert_int_equal(symlink("a", link), 0);
        commit_and_push(f, "a", "one, changed\n", c2);

        _cleanup_free_ char *out1 = path(f, "out1"), *out2 = path(f, "out2");
        assert_int_equal(nap_fetch_commit(f->bare, c1, out1, &e), 0);
        _cleanup_free_ char *a1 = slurp(f, "out1/a");
        assert_string_equal(a1, "one\n");
        assert_false(exists(f, "out1/dir"));
        assert_false(exists(f, "out1/.git"));

        _cleanup_free_ char *url = strdup_printf("file://%s", f->bare);
        assert_int_equal(nap_fetch_commit(url, c2, out2, &e), 0);
        _cleanup_free_ char *a2 = slurp(f, "out2/a");
        assert_string_equal(a2, "one, changed\n");
        struct stat st;
        _cleanup_free_ char *b2 = path(f, "out2/dir/b"), *l2 = path(f, "out2/l");
        assert_int_equal(stat(b2, &st), 0);
        assert_true(st.st_mode & S_IXUSR);
        assert_int_equal(lstat(l2, &st), 0);
        assert_true(S_ISLNK(st.st_mode));

        /* dir exists, unknown commit, not a commit id: refused, nothing left. */
        assert_int_equal(nap_fetch_commit(f->bare, c1, out1, &e), -EEXIST);
        _cleanup_free_ char *out3 = path(f, "out3");
        e = NAP_ERROR_NULL;
        assert_true(nap_fetch_commit(f->bare, "0123456789012345678901234567890123456789", out3, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_FETCH_FAILED);
        assert_false(exists(f, "out3"));
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_fetch_commit(f->bare, "HEAD", out3, &e), -EINVAL);
        assert_false(exists(f, "out3"));
}

static void test_repo_resolve_takes_commits_and_full_refs_only(void **state) {
        Fixture *f = *state;
        char c1[41], got[41];
        NapError e = NAP_ERROR_NULL;
        commit_and_push(f, "a", "one\n", c1);
        assert_int_equal(nap_repo_resolve(f->bare, c1, got, &e), 0);
        assert_string_equal(got, c1);
        static const char *const bad[] = { "main", "HEAD", "HEAD~1", "refs/heads/main^", "refs/heads/../x", "" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_repo_resolve(f->bare, bad[i], got, &e), -EINVAL);
        }
        e = NAP_ERROR_NULL;
        assert_true(nap_repo_resolve(f->bare, "refs/heads/nope", got, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_FETCH_FAILED);
        _cleanup_free_ char *nowhere = path(f, "nowhere.git");
        e = NAP_ERROR_NULL;
        assert_true(nap_repo_resolve(nowhere, "refs/heads/main", got, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_FETCH_FAILED);
}

static void test_deploy_commit_records_history(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41];
        NapRolloutResult res;
        NapError e;
        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        assert_true(res.deploy.changed);
        assert_string_equal(res.deploy.commit, c1);
        assert_string_equal(res.previous, "");
        assert_true(res.needs_parameters);
        assert_false(res.started);
        assert_true(exists(f, "root/services/alice/alice_web/profile"));

        commit_and_push(f, "README", "v2\n", c2);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        assert_true(res.deploy.changed);
        assert_string_equal(res.previous, c1);
        assert_true(exists(f, "root/services/alice/alice_web/README"));

        /* The same commit again: nothing to do. */
        assert_int_equal(deploy(f, c2, &res, &e), 0);
        assert_false(res.deploy.changed);
        assert_string_equal(res.deploy.commit, c2);

        NapDeployRecord *h;
        size_t n;
        assert_int_equal(nap_deploy_history(f->c, "alice_web", &h, &n, &e), 0);
        assert_int_equal(n, 2);
        assert_string_equal(h[0].commit, c2);
        assert_string_equal(h[1].commit, c1);
        assert_string_equal(h[0].url, f->bare);
        assert_true(h[0].time_usec >= h[1].time_usec && h[1].time_usec > 0);
        nap_deploy_record_array_free(h, n);
        _cleanup_free_ char *meta = slurp(f, "root/services/alice/alice_web/.nap/deploy.json");
        assert_non_null(strstr(meta, c2));
}

/* Nothing in STATE but the tree of commit, its metadata, and locks. */
static void assert_deployed_only(Fixture *f, const char *commit, const char *file_present) {
        _cleanup_free_ char *meta = slurp(f, "root/services/alice/alice_web/.nap/deploy.json");
        _cleanup_free_ char *p = strdup_printf("root/services/alice/alice_web/%s", file_present);
        assert_non_null(strstr(meta, commit));
        assert_true(exists(f, p));
        _cleanup_free_ char *users = path(f, "root/services/alice");
        _cleanup_closedir_ DIR *d = opendir(users);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                assert_null(strstr(de->d_name, ".deploy-")); /* no staging left */
}

static void test_bad_or_missing_profile_keeps_previous(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41], c3[41];
        NapRolloutResult res;
        NapError e;
        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);

        commit_and_push(f, "profile", "python3 server.py {unbalanced\n", c2);
        assert_true(deploy(f, "refs/heads/main", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        assert_non_null(strstr(e.message, "keeps running"));
        assert_deployed_only(f, c1, "profile");

        commit_and_push(f, "profile", NULL, c3);
        assert_true(deploy(f, "refs/heads/main", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        assert_deployed_only(f, c1, "profile");

        NapDeployRecord *h;
        size_t n;
        assert_int_equal(nap_deploy_history(f->c, "alice_web", &h, &n, &e), 0);
        assert_int_equal(n, 1);
        nap_deploy_record_array_free(h, n);
}

static void test_symlinked_profile_is_refused(void **state) {
        Fixture *f = *state;
        char c1[41];
        NapRolloutResult res;
        NapError e;
        /* Its parse errors would quote the file it points to. */
        _cleanup_free_ char *link = path_join(f->work, "profile", NULL);
        assert_int_equal(symlink("/etc/passwd", link), 0);
        commit_and_push(f, "README", "x\n", c1);
        assert_true(deploy(f, "refs/heads/main", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        assert_non_null(strstr(e.message, "not a regular file"));
        assert_null(strstr(e.message, "root:"));
        assert_false(exists(f, "root/services/alice/alice_web"));
}

static void test_first_deploy_that_fails_leaves_nothing(void **state) {
        Fixture *f = *state;
        char c1[41];
        NapRolloutResult res;
        NapError e;
        /* Starting the first instance needs the service manager, which is
         * not there: the deploy fails and nothing stays deployed. */
        commit_and_push(f, "Procfile", "web: python3 server.py --port $PORT\n", c1);
        assert_true(deploy(f, "refs/heads/main", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_NOT_AVAILABLE);
        assert_non_null(strstr(e.message, "nothing was deployed"));
        assert_false(exists(f, "root/services/alice/alice_web"));
        assert_false(exists(f, "root/apps"));
        assert_false(exists(f, "instances"));
}

/* A manifest as start_common would have written it, and the tree. */
static void fake_instance(Fixture *f, const char *commit, const char *name_value) {
        _cleanup_(nap_manifest_freep) NapManifest *m = calloc(1, sizeof *m);
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_instance_parse("alice_web_common@1", &m->instance, &e), 0);
        m->argv = strv_split("python3 server.py --port 20001 --name x", ' ');
        m->directory = path(f, "root/apps/alice/alice_web_1");
        m->port = 20001;
        m->enabled = true;
        m->commit = strdup(commit);
        assert_int_equal(nap_params_new(&m->params), 0);
        assert_int_equal(nap_params_set(m->params, "name", name_value, &e), 0);
        assert_int_equal(mkdir_p(m->directory, 0755), 0);
        _cleanup_free_ char *marker = path_join(m->directory, "old-version", NULL);
        assert_int_equal(write_file_atomic(marker, "1", 1, 0644), 0);
        assert_int_equal(nap_manifest_save(f->c->config->instances_dir, m, &e), 0);
}

static char *manifest_text(Fixture *f) {
        return slurp(f, "instances/alice_web_common@1.json");
}

/* The instance fake_instance() made is as it was (manifest text before),
 * and no replacement was left behind: neither its tree nor its manifest,
 * nor the rollout's intent. */
static void assert_instance_kept(Fixture *f, const char *before) {
        _cleanup_free_ char *after = manifest_text(f);
        assert_string_equal(before, after);
        assert_true(exists(f, "root/apps/alice/alice_web_1/old-version"));
        assert_false(exists(f, "root/apps/alice/alice_web_2"));
        assert_false(exists(f, "instances/alice_web_common@2.json"));
        assert_false(exists(f, "root/intents/alice_web.intent"));
}

static void test_params_the_new_profile_refuses_keep_previous(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41];
        NapRolloutResult res;
        NapError e;
        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        fake_instance(f, c1, "x");
        _cleanup_free_ char *before = manifest_text(f);

        /* {name} is gone: the instance's name=x no longer fits. */
        commit_and_push(f, "profile", "python3 server.py --port {port}\n", c2);
        assert_true(deploy(f, "refs/heads/main", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_non_null(strstr(e.message, "alice_web_common@1"));
        assert_deployed_only(f, c1, "profile");
        assert_instance_kept(f, before);
}

static void test_no_service_manager_changes_nothing(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41];
        NapRolloutResult res;
        NapError e;
        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        fake_instance(f, c1, "x");
        _cleanup_free_ char *before = manifest_text(f);

        /* A fine new version, but its instance cannot be restarted. */
        commit_and_push(f, "README", "v2\n", c2);
        assert_true(deploy(f, "refs/heads/main", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_NOT_AVAILABLE);
        assert_deployed_only(f, c1, "profile");
        assert_false(exists(f, "root/services/alice/alice_web/README"));
        assert_instance_kept(f, before);
}

static void test_rollback_picks_from_history(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41], c3[41];
        NapRolloutResult res;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_rollback(f->c, "alice_web", NULL, NULL, &res, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_SERVICE);

        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_rollback(f->c, "alice_web", NULL, NULL, &res, &e), -ENOENT);
        assert_non_null(strstr(e.message, "no earlier deploy"));

        commit_and_push(f, "v", "2\n", c2);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        commit_and_push(f, "v", "3\n", c3);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);

        /* No commit: the previous one. */
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_rollback(f->c, "alice_web", NULL, NULL, &res, &e), 0);
        assert_string_equal(res.deploy.commit, c2);
        assert_string_equal(res.previous, c3);
        nap_rollout_result_done(&res);
        _cleanup_free_ char *v = slurp(f, "root/services/alice/alice_web/v");
        assert_string_equal(v, "2\n");

        /* Again: back to c3, the one deployed before. */
        assert_int_equal(nap_rollback(f->c, "alice_web", NULL, NULL, &res, &e), 0);
        assert_string_equal(res.deploy.commit, c3);
        nap_rollout_result_done(&res);

        /* A prefix of c1. */
        char prefix[9];
        memcpy(prefix, c1, 8);
        prefix[8] = 0;
        assert_int_equal(nap_rollback(f->c, "alice_web", prefix, NULL, &res, &e), 0);
        assert_string_equal(res.deploy.commit, c1);
        nap_rollout_result_done(&res);
        assert_false(exists(f, "root/services/alice/alice_web/v"));

        static const char *const bad[] = { "abc", "ABCDEF12", "xyz12345", "../x" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_rollback(f->c, "alice_web", bad[i], NULL, &res, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        }
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_rollback(f->c, "alice_web", "0000", NULL, &res, &e), -ENOENT);

        NapDeployRecord *h;
        size_t n;
        assert_int_equal(nap_deploy_history(f->c, "alice_web", &h, &n, &e), 0);
        assert_int_equal(n, 6);
        assert_string_equal(h[0].commit, c1);
        assert_string_equal(h[1].commit, c3);
        assert_string_equal(h[2].commit, c2);
        nap_deploy_record_array_free(h, n);
}

static void test_history_is_capped(void **state) {
        Fixture *f = *state;
        char c[41];
        NapRolloutResult res;
        NapError e;
        commit_and_push(f, "profile", NEEDS_NAME, c);
        for (int i = 0; i < NAP_HISTORY_MAX + 3; i++) {
                char text[16];
                snprintf(text, sizeof text, "%d\n", i);
                commit_and_push(f, "v", text, c);
                assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        }
        NapDeployRecord *h;
        size_t n;
        assert_int_equal(nap_deploy_history(f->c, "alice_web", &h, &n, &e), 0);
        assert_int_equal(n, NAP_HISTORY_MAX);
        assert_string_equal(h[0].commit, c);
        nap_deploy_record_array_free(h, n);
}

static void test_deploy_app_starts_the_history_too(void **state) {
        Fixture *f = *state;
        char c1[41], c2[41];
        NapDeployResult d;
        NapRolloutResult res;
        NapError e = NAP_ERROR_NULL;
        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->bare, &d, &e), 0);
        commit_and_push(f, "v", "2\n", c2);
        assert_int_equal(deploy(f, "refs/heads/main", &res, &e), 0);
        assert_string_equal(res.previous, c1);
        NapDeployRecord *h;
        size_t n;
        assert_int_equal(nap_deploy_history(f->c, "alice_web", &h, &n, &e), 0);
        assert_int_equal(n, 2);
        assert_string_equal(h[1].commit, c1);
        nap_deploy_record_array_free(h, n);
}

static void test_bad_arguments_change_nothing(void **state) {
        Fixture *f = *state;
        char c1[41];
        NapRolloutResult res;
        NapError e = NAP_ERROR_NULL;
        commit_and_push(f, "profile", NEEDS_NAME, c1);
        assert_int_equal(nap_deploy_commit(f->c, "alice", f->bare, c1, NULL, &res, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_deploy_commit(f->c, "alice_web", "relative/repo", c1, NULL, &res, &e), -EINVAL);
        e = NAP_ERROR_NULL;
        assert_true(nap_deploy_commit(f->c, "alice_web", f->bare, "refs/heads/other", NULL, &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_FETCH_FAILED);
        assert_false(exists(f, "root"));
}

/* ---- nap_wait_answering ------------------------------------------------- */

static int listen_loopback(unsigned *ret_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &l), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* Answers every connection (earlier probes' are still in the backlog)
 * until the listening socket is shut down. */
static void *answer_all(void *userdata) {
        for (;;) {
                int fd = accept4(*(int *) userdata, NULL, NULL, SOCK_CLOEXEC);
                char buf[256];
                if (fd < 0)
                        return NULL;
                (void) !read(fd, buf, sizeof buf);
                (void) !write(fd, "HTTP/1.0 404 Not Found\r\n\r\n", 26);
                close(fd);
        }
}

static void test_wait_answering_needs_an_answer(void **state) {
        unsigned port;
        NapError e = NAP_ERROR_NULL;
        /* Listening, never accepting: the kernel completes the handshake,
         * but that is no answer. */
        int fd = listen_loopback(&port);
        assert_int_equal(nap_wait_answering(port, 300 * 1000, NULL, NULL, &e), -ETIMEDOUT);
        assert_int_equal(e.kind, NAP_ERROR_UNIT_FAILED);

        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, answer_all, &fd), 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_wait_answering(port, 5 * 1000 * 1000, NULL, NULL, &e), 0);
        shutdown(fd, SHUT_RDWR); /* accept() returns */
        pthread_join(t, NULL);
        close(fd);

        /* Nothing there any more. */
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_wait_answering(port, 200 * 1000, NULL, NULL, &e), -ETIMEDOUT);
        assert_int_equal(nap_wait_answering(0, 1000, NULL, NULL, &e), -EINVAL);
}

static int give_up(void *userdata, NapError *e) {
        ++*(unsigned *) userdata;
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ESRCH, "gave up");
}

static void test_wait_answering_check_stops_early(void **state) {
        unsigned port, calls = 0;
        int fd = listen_loopback(&port);
        close(fd); /* refused from now on */
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_wait_answering(port, 10 * 1000 * 1000, give_up, &calls, &e), -ESRCH);
        assert_int_equal(calls, 1);
        assert_string_equal(e.message, "gave up");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_fetch_commit_checks_out_that_commit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repo_resolve_takes_commits_and_full_refs_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deploy_commit_records_history, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_or_missing_profile_keeps_previous, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinked_profile_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_first_deploy_that_fails_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_params_the_new_profile_refuses_keep_previous, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_service_manager_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollback_picks_from_history, setup, teardown),
                cmocka_unit_test_setup_teardown(test_history_is_capped, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deploy_app_starts_the_history_too, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments_change_nothing, setup, teardown),
                cmocka_unit_test(test_wait_answering_needs_an_answer),
                cmocka_unit_test(test_wait_answering_check_stops_early),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
