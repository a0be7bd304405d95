/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The operations that need no service manager, against real git
 * repositories made with the git program: deploy, list, parameters, and
 * the rule that bad input changes nothing. Starting and stopping units is
 * covered by tests/integration with a real systemd. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>

#include "base/fileio.h"
#include "test-util.h"
#include "ops/ops.h"
#include "base/strv.h"

typedef struct Fixture {
        char *dir, *repo, *url;
        NapContext *c;
} Fixture;

static void git_commit_file(Fixture *f, const char *name, const char *text) {
        _cleanup_free_ char *p = path_join(f->repo, name, NULL);
        assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
        run((char *const[]) { "git", "-C", f->repo, "add", "-A", NULL });
        run((char *const[]) { "git", "-C", f->repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c", NULL });
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        f->dir = strdup("/tmp/nap-test-ops-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        f->repo = path_join(f->dir, "repo", NULL);
        f->url = strdup_printf("file://%s", f->repo);
        run((char *const[]) { "git", "init", "-q", "-b", "main", f->repo, NULL });
        git_commit_file(f, "profile", "# the test app\npython3 server.py --port {port} --greeting {greeting=hello} {name}\n");

        assert_int_equal(nap_context_new_with_config(&f->c, test_config_in(f->dir), NAP_SCOPE_USER), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        rm_rf(f->dir);
        free(f->dir);
        free(f->repo);
        free(f->url);
        nap_context_free(f->c);
        free(f);
        return 0;
}

static bool exists(Fixture *f, const char *rel) {
        _cleanup_free_ char *p = path_join(f->dir, rel, NULL);
        return access(p, F_OK) >= 0;
}

static void test_deploy_is_idempotent(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        assert_true(res.changed);
        assert_int_equal(strlen(res.commit), 40);
        assert_true(exists(f, "root/services/alice/alice_web/profile"));
        assert_true(exists(f, "root/services/alice/alice_web/.nap/deploy.json"));
        assert_false(exists(f, "root/services/alice/alice_web/.git"));

        char first[41];
        strcpy(first, res.commit);
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        assert_false(res.changed);
        assert_string_equal(res.commit, first);

        git_commit_file(f, "server.py", "print('v2')\n");
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        assert_true(res.changed);
        assert_string_not_equal(res.commit, first);
        assert_true(exists(f, "root/services/alice/alice_web/server.py"));
}

static void test_get_service_url_by_service_name(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL, bad_name = NAP_ERROR_NULL;
        _cleanup_free_ char *url = NULL;
        NapSource source;
        assert_int_equal(nap_get_service_url(f->c, "alice", &url, &source, &bad_name), -EINVAL);
        assert_int_equal(bad_name.kind, NAP_ERROR_INVALID_NAME);
        assert_int_equal(nap_get_service_url(f->c, "alice_web", &url, &source, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_SERVICE);

        e = NAP_ERROR_NULL;
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        assert_int_equal(nap_get_service_url(f->c, "alice_web", &url, &source, &e), 0);
        assert_string_equal(url, f->url);
        assert_int_equal(source, NAP_SOURCE_LOCAL); /* no Etcd= */
}

static void test_list_services_and_parameters(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        assert_int_equal(nap_deploy_app(f->c, "alice_api", f->repo, &res, &e), 0); /* a plain path works too */

        NapServiceInfo *l;
        size_t n;
        assert_int_equal(nap_list_services(f->c, "alice", &l, &n, &e), 0);
        assert_int_equal(n, 2);
        assert_string_equal(l[0].name, "alice_api");
        assert_string_equal(l[1].name, "alice_web");
        assert_string_equal(l[1].url, f->url);
        assert_string_equal(l[1].commit, res.commit);
        nap_service_info_array_free(l, n);

        assert_int_equal(nap_list_services(f->c, "bob", &l, &n, &e), 0);
        assert_int_equal(n, 0);
        nap_service_info_array_free(l, n);

        _cleanup_strv_free_ char **params = NULL;
        assert_int_equal(nap_get_parameters(f->c, "alice_web", &params, &e), 0);
        assert_int_equal(strv_length(params), 2);
        assert_string_equal(params[0], "greeting");
        assert_string_equal(params[1], "name");
}

static void test_invalid_names_change_nothing(void **state) {
        Fixture *f = *state;
        static const char *const bad[] = { "alice", "al_ice_web", "alice_../x", "Alice_web", "alice_", "_web", "",
                                           "alice_web/x", "alice_.." };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapDeployResult res;
                NapError e = NAP_ERROR_NULL;
                assert_int_equal(nap_deploy_app(f->c, bad[i], f->url, &res, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        }
        char long_name[201];
        memset(long_name, 'a', 200);
        long_name[200] = 0;
        long_name[5] = '_';
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_deploy_app(f->c, long_name, f->url, &res, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        assert_false(exists(f, "root"));
}

static void test_missing_url_changes_nothing(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *nowhere = path_join(f->dir, "no-such-repo", NULL);
        assert_true(nap_deploy_app(f->c, "alice_web", nowhere, &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_FETCH_FAILED);
        assert_false(exists(f, "root")); /* not even a lock or a user directory */

        e = NAP_ERROR_NULL;
        assert_true(nap_deploy_app(f->c, "alice_web", "file:///x\n", &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
}

static void test_app_without_profile_keeps_old_version(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        char first[41];
        strcpy(first, res.commit);

        run((char *const[]) { "git", "-C", f->repo, "rm", "-q", "profile", NULL });
        git_commit_file(f, "README", "no profile here\n");
        assert_true(nap_deploy_app(f->c, "alice_web", f->url, &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);

        NapServiceInfo *l;
        size_t n;
        assert_int_equal(nap_list_services(f->c, "alice", &l, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].commit, first);
        nap_service_info_array_free(l, n);
        assert_true(exists(f, "root/services/alice/alice_web/profile"));
        assert_false(exists(f, "root/services/alice/alice_web/README"));
}

static void test_bad_profile_is_refused(void **state) {
        Fixture *f = *state;
        git_commit_file(f, "profile", "python3 server.py --greeting {greeting\n");
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        assert_true(nap_deploy_app(f->c, "alice_web", f->url, &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        assert_false(exists(f, "root/services/alice/alice_web"));
}

static void test_start_common_bad_params_change_nothing(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, NULL), 0);

        static const char *const bad[] = {
                "name=a\nb",     /* control character */
                "nosuch=1",      /* unknown */
                "greeting=x",    /* name is missing, no default */
                "name=a,name=b", /* twice */
                "port=80,name=a" /* nap assigns the port */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(nap_params_freep) NapParams *p = NULL;
                NapInstanceInfo info = {};
                NapError e = NAP_ERROR_NULL;
                int r = nap_params_parse(bad[i], strlen(bad[i]), &p, &e);
                if (r >= 0)
                        r = nap_start_common(f->c, "alice_web", p, NULL, &info, &e);
                assert_true(r < 0);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        }
        assert_false(exists(f, "root/apps"));
        assert_false(exists(f, "instances"));
        assert_false(exists(f, "root/services/alice/.alice_web.last"));
}

static void test_start_common_command_systemd_cannot_run(void **state) {
        Fixture *f = *state;
        git_commit_file(f, "profile", "{cmd} --port {port}\n");
        NapDeployResult res;
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, NULL), 0);

        /* ExecStart= would read these as prefixes, or there is no command. */
        static const char *const bad[] = { "cmd=-x", "cmd=@x", "cmd=+x", "cmd=!x", "cmd=:x", "cmd=" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(nap_params_freep) NapParams *p = NULL;
                NapInstanceInfo info = {};
                NapError e = NAP_ERROR_NULL;
                assert_int_equal(nap_params_parse(bad[i], strlen(bad[i]), &p, &e), 0);
                assert_true(nap_start_common(f->c, "alice_web", p, NULL, &info, &e) < 0);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        }
        assert_false(exists(f, "root/apps"));
        assert_false(exists(f, "instances"));
}

static void test_unknown_service_and_instance(void **state) {
        Fixture *f = *state;
        NapError e = NAP_ERROR_NULL;
        char **params = NULL;
        assert_int_equal(nap_get_parameters(f->c, "alice_nothing", &params, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_SERVICE);

        char *text = NULL;
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_cat_app(f->c, "alice_web_common@3", &text, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_INSTANCE);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_cat_app(f->c, "alice_web_common@0", &text, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_remove_instance(f->c, "alice_web_common@3", &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_NO_SUCH_INSTANCE);
}

/* A Dockerfile app (no profile, no Procfile) deploys; it has no
 * parameters, so any given to start_common is refused before anything is
 * created. */
static void test_dockerfile_app_deploys(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        run((char *const[]) { "git", "-C", f->repo, "rm", "-q", "profile", NULL });
        git_commit_file(f, "Dockerfile", "FROM docker.io/library/python:3\nCOPY . /app\nCMD python3 /app/server.py\n");
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        assert_true(res.changed);
        assert_true(exists(f, "root/services/alice/alice_web/Dockerfile"));
        assert_false(exists(f, "root/services/alice/alice_web/profile"));

        _cleanup_strv_free_ char **params = NULL;
        assert_int_equal(nap_get_parameters(f->c, "alice_web", &params, &e), 0);
        assert_int_equal(strv_length(params), 0);

        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapInstanceInfo info = {};
        assert_int_equal(nap_params_parse("greeting=hi", strlen("greeting=hi"), &p, &e), 0);
        assert_true(nap_start_common(f->c, "alice_web", p, NULL, &info, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_false(exists(f, "root/apps"));
        assert_false(exists(f, "instances"));
}

/* With both, the profile is the app: its parameters, not the Dockerfile. */
static void test_profile_wins_over_dockerfile(void **state) {
        Fixture *f = *state;
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        git_commit_file(f, "Dockerfile", "FROM scratch\n");
        assert_int_equal(nap_deploy_app(f->c, "alice_web", f->url, &res, &e), 0);
        _cleanup_strv_free_ char **params = NULL;
        assert_int_equal(nap_get_parameters(f->c, "alice_web", &params, &e), 0);
        assert_int_equal(strv_length(params), 2);
        assert_string_equal(params[0], "greeting");
}

static void assert_deploy_refused(Fixture *f, const char *what) {
        NapDeployResult res;
        NapError e = NAP_ERROR_NULL;
        assert_true(nap_deploy_app(f->c, "alice_web", f->url, &res, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        if (!strstr(e.message, what))
                print_error("message '%s', expected '%s'\n", e.message, what);
        assert_non_null(strstr(e.message, what));
        assert_false(exists(f, "root/services/alice/alice_web"));
}

/* A tree with none of the three is refused, and so is a Dockerfile that
 * is a symbolic link (the build would read whatever it points to) or
 * empty. Nothing is deployed. */
static void test_tree_without_app_is_refused(void **state) {
        Fixture *f = *state;
        run((char *const[]) { "git", "-C", f->repo, "rm", "-q", "profile", NULL });
        git_commit_file(f, "README", "nothing to run\n");
        assert_deploy_refused(f, "neither a profile, a Procfile nor a Dockerfile");

        _cleanup_free_ char *link = path_join(f->repo, "Dockerfile", NULL);
        assert_int_equal(symlink("/etc/passwd", link), 0);
        git_commit_file(f, "README", "a link\n");
        assert_deploy_refused(f, "Dockerfile is not a regular file");

        assert_int_equal(unlink(link), 0);
        git_commit_file(f, "Dockerfile", "");
        assert_deploy_refused(f, "Dockerfile is empty");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_deploy_is_idempotent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_service_url_by_service_name, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_services_and_parameters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_names_change_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_url_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_app_without_profile_keeps_old_version, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_profile_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_start_common_bad_params_change_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_start_common_command_systemd_cannot_run, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_service_and_instance, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dockerfile_app_deploys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_profile_wins_over_dockerfile, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tree_without_app_is_refused, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
