/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <git2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "base/fileio.h"
#include "clients/gitshell.h"

static void accepts(const char *cmd, NapGitVerb verb, const char *app) {
        NapGitCommand c = {};
        NapError e = NAP_ERROR_NULL;
        int r = nap_git_command_parse(cmd, strlen(cmd), &c, &e);
        if (r < 0)
                print_error("refused '%s': %s\n", cmd, e.message);
        assert_int_equal(r, 0);
        assert_int_equal(c.verb, verb);
        assert_string_equal(c.app, app);
        assert_false(nap_error_is_set(&e));
}

static void refuses_n(const char *cmd, size_t size, NapErrorKind kind, const char *message) {
        NapGitCommand c = {};
        NapError e = NAP_ERROR_NULL;
        int r = nap_git_command_parse(cmd, size, &c, &e);
        if (r >= 0)
                print_error("accepted '%s' as app '%s'\n", cmd, c.app);
        assert_int_equal(r, kind == NAP_ERROR_PERMISSION_DENIED ? -EPERM : -EINVAL);
        assert_int_equal(e.kind, kind);
        if (message)
                assert_string_equal(e.message, message);
        for (const char *p = e.message; *p; p++)
                assert_true((unsigned char) *p >= 0x20 && *p != 0x7f);
}

static void refuses(const char *cmd, NapErrorKind kind, const char *message) {
        refuses_n(cmd, strlen(cmd), kind, message);
}

static void test_verb_strings(void **state) {
        assert_string_equal(nap_git_verb_to_string(NAP_GIT_RECEIVE_PACK), "git-receive-pack");
        assert_string_equal(nap_git_verb_to_string(NAP_GIT_UPLOAD_PACK), "git-upload-pack");
        assert_null(nap_git_verb_to_string(_NAP_GIT_VERB_MAX));
        assert_null(nap_git_verb_to_string(-1));
}

/* What git sends for nap@host:APP, nap@host:APP.git, ssh://nap@host/APP,
 * ssh://nap@host/~/APP…, and what people type. */
static void test_forms_git_sends(void **state) {
        static const char *const args[] = {
                "'myapp'", "'myapp.git'", "'/myapp'", "'/myapp.git'", "'~/myapp'", "'~/myapp.git'",
                "myapp", "myapp.git", "/myapp", "~/myapp.git",
        };
        for (size_t i = 0; i < ELEMENTSOF(args); i++) {
                char b[64];
                snprintf(b, sizeof b, "git-receive-pack %s", args[i]);
                accepts(b, NAP_GIT_RECEIVE_PACK, "myapp");
                snprintf(b, sizeof b, "git-upload-pack %s", args[i]);
                accepts(b, NAP_GIT_UPLOAD_PACK, "myapp");
                snprintf(b, sizeof b, "git receive-pack %s", args[i]);
                accepts(b, NAP_GIT_RECEIVE_PACK, "myapp");
                snprintf(b, sizeof b, "git upload-pack %s", args[i]);
                accepts(b, NAP_GIT_UPLOAD_PACK, "myapp");
        }
        accepts("git-receive-pack 'a'", NAP_GIT_RECEIVE_PACK, "a");
        accepts("git-receive-pack 'web-2'", NAP_GIT_RECEIVE_PACK, "web-2");
        /* The longest app name, with and without .git. */
        accepts("git-receive-pack 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv'", NAP_GIT_RECEIVE_PACK,
                "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv");
        accepts("git-receive-pack 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv.git'", NAP_GIT_RECEIVE_PACK,
                "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv");
}

static void test_refused_commands(void **state) {
        refuses_n(NULL, 0, NAP_ERROR_PERMISSION_DENIED,
                  "interactive login is not allowed: this account only serves git push and git clone of an app");
        refuses("", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("ls", NAP_ERROR_PERMISSION_DENIED,
                "'ls' is not allowed: this account only serves git push and git clone of an app "
                "(git-receive-pack 'APP', git-upload-pack 'APP')");
        refuses("ls -la /", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("sh -c 'git-receive-pack app'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-upload-archive 'app'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-receive-pack", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-receive-pack", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-receive-pack\t'app'", NAP_ERROR_PERMISSION_DENIED,
                "command refused: it contains control characters");
        refuses(" git-receive-pack 'app'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git  receive-pack 'app'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("GIT-RECEIVE-PACK 'app'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("/usr/bin/git-receive-pack 'app'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-receive-pack 'app'\n", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-receive-pack 'app'\nls", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses("git-receive-pack '\x1b[2Japp'", NAP_ERROR_PERMISSION_DENIED, NULL);
        refuses_n("git-receive-pack 'app'\0ls", 26, NAP_ERROR_PERMISSION_DENIED, NULL);

        char big[NAP_GIT_COMMAND_MAX + 2];
        memset(big, 'a', sizeof big);
        refuses_n(big, sizeof big, NAP_ERROR_PERMISSION_DENIED, "command refused: longer than 256 bytes");
        /* A long command word is cut in the message. */
        big[sizeof big - 1] = 0;
        refuses(big + 2, NAP_ERROR_PERMISSION_DENIED,
                "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not allowed: this account "
                "only serves git push and git clone of an app (git-receive-pack 'APP', git-upload-pack 'APP')");
}

static void test_refused_arguments(void **state) {
        refuses("git-upload-pack '../x'", NAP_ERROR_INVALID_NAME, "'../x' is not an app: an app is one name, not a path");
        refuses("git-receive-pack 'bob/app'", NAP_ERROR_INVALID_NAME,
                "'bob/app' is not an app: an app is one name, not a path");
        refuses("git-receive-pack bob/app", NAP_ERROR_INVALID_NAME,
                "'bob/app' is not an app: an app is one name, not a path");
        refuses("git-receive-pack 'app' 'x'", NAP_ERROR_INVALID_NAME,
                "'app' 'x' is not an app: only one argument is allowed");
        refuses("git-receive-pack 'App'", NAP_ERROR_INVALID_NAME,
                "'App' is not an app: app names are [a-z][a-z0-9-]{0,47}, optionally with .git");

        static const char *const bad[] = {
                "''", "'", "'app", "app'", "'a'pp'", "\"app\"", "'app '", "' app'", "'/'", "'~/'", "'~'",
                "'.git'", "'app.git.git'", "'app.git/'", "'app/'", "'//app'", "'~//app'", "'~bob/app'",
                "'~/bob/app'", "'/bob/app'", "'/git/bob/app.git'", "'..'", "'.'", "'-app'", "'--help'",
                "--upload-pack=touch", "'app_x'", "'alice_app'", "'9app'", "'app;id'", "'$(id)'", "'`id`'",
                "'app\\''", "'\\!'", "'a'\\''b'", "'\xc3\xa9'", "'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvw'",
                "'app.GIT'", "'app.tar'", "'~/.ssh/authorized_keys'", "'/etc/passwd'", "'app' ''", "'app'' ",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char b[128];
                snprintf(b, sizeof b, "git-receive-pack %s", bad[i]);
                refuses(b, NAP_ERROR_INVALID_NAME, NULL);
                snprintf(b, sizeof b, "git-upload-pack %s", bad[i]);
                refuses(b, NAP_ERROR_INVALID_NAME, NULL);
        }
}

static void test_replica_commands(void **state) {
        static const char *const ok[] = { "git-receive-pack 'alice_hello'", "git-receive-pack '/alice_hello.git'",
                                          "git receive-pack alice_hello.git" };
        static const struct {
                const char *cmd;
                NapErrorKind kind;
        } bad[] = {
                { "git-upload-pack 'alice_hello'", NAP_ERROR_PERMISSION_DENIED }, /* replicas only receive */
                { "", NAP_ERROR_PERMISSION_DENIED },
                { "sh -c id", NAP_ERROR_PERMISSION_DENIED },
                { "git-receive-pack 'hello'", NAP_ERROR_INVALID_NAME },          /* no user */
                { "git-receive-pack '../bob_x'", NAP_ERROR_INVALID_NAME },
                { "git-receive-pack '/alice_hello.git' x", NAP_ERROR_INVALID_NAME },
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                NapService s = {};
                assert_int_equal(nap_git_replica_command_parse(ok[i], strlen(ok[i]), &s, NULL), 0);
                assert_string_equal(s.user, "alice");
                assert_string_equal(s.app, "hello");
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NapService s = {};
                NapError e = NAP_ERROR_NULL;
                print_message("%s\n", bad[i].cmd);
                assert_true(nap_git_replica_command_parse(bad[i].cmd, strlen(bad[i].cmd), &s, &e) < 0);
                assert_int_equal(e.kind, bad[i].kind);
        }
}

static void test_hook_text(void **state) {
        NapService s = { .user = "alice", .app = "web" };
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *t = NULL, *q = NULL;

        assert_int_equal(nap_git_hook_text("/usr/libexec/nap/nap-receive", &s, &t, &e), 0);
        assert_string_equal(t, "#!/bin/sh\nexec /usr/libexec/nap/nap-receive alice web\n");
        assert_int_equal(nap_git_hook_text("/opt/my nap/nap-receive", &s, &q, &e), 0);
        assert_string_equal(q, "#!/bin/sh\nexec '/opt/my nap/nap-receive' alice web\n");

        static const char *const bad[] = { "nap-receive", "", "/a'b", "/a\\b", "/a\nb", "/a\tb" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *x = NULL;
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_git_hook_text(bad[i], &s, &x, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
                assert_null(x);
        }
        assert_int_equal(nap_git_hook_text(NULL, &s, &t, NULL), -EINVAL);
}

/* ---- repositories, in a temporary Root= ---- */

typedef struct Fixture {
        char root[64];
        NapConfig config;
        NapService alice;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        strcpy(f->root, "/tmp/test-gitshell-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        f->config.root = f->root;
        f->alice = (NapService) { .user = "alice", .app = "web" };
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        assert_int_equal(rm_rf(f->root), 0);
        free(f);
        return 0;
}

static char *read_text(const char *path) {
        char *t = NULL;
        assert_int_equal(read_full_file(path, 4096, &t, NULL), 0);
        return t;
}

/* Names in dir, sorted, space-separated. */
static char *listing(const char *dir) {
        struct dirent **l;
        int n = scandir(dir, &l, NULL, alphasort);
        assert_true(n >= 0);
        char *s = calloc(1, 1024);
        for (int i = 0; i < n; i++) {
                if (l[i]->d_name[0] != '.' || (strcmp(l[i]->d_name, ".") && strcmp(l[i]->d_name, "..")))
                        snprintf(s + strlen(s), 1024 - strlen(s), "%s%s", *s ? " " : "", l[i]->d_name);
                free(l[i]);
        }
        free(l);
        return s;
}

static void test_repo_path(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *p = nap_git_repo_path(&f->config, &f->alice);
        _cleanup_free_ char *want = strdup_printf("%s/git/alice/web.git", f->root);
        assert_string_equal(p, want);
}

static void test_repo_created(void **state) {
        Fixture *f = *state;
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *repo = nap_git_repo_path(&f->config, &f->alice);
        _cleanup_free_ char *hook = path_join(repo, "hooks", "post-receive", NULL);
        _cleanup_free_ char *head = path_join(repo, "HEAD", NULL);
        _cleanup_free_ char *parent = path_join(f->root, "git", "alice", NULL);

        assert_int_equal(nap_git_repo_exists(&f->config, &f->alice, &e), 0);
        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/x/nap-receive", &e), 1);
        assert_int_equal(nap_git_repo_exists(&f->config, &f->alice, &e), 1);

        _cleanup_free_ char *h = read_text(hook), *hd = read_text(head), *ls = listing(parent);
        assert_string_equal(h, "#!/bin/sh\nexec /x/nap-receive alice web\n");
        assert_string_equal(hd, "ref: refs/heads/main\n");
        assert_string_equal(ls, "web.git"); /* no temporary directory left */
        struct stat st;
        assert_int_equal(stat(hook, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(stat(repo, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);

        git_repository *r = NULL;
        assert_int_equal(git_libgit2_init() > 0, 1);
        assert_int_equal(git_repository_open(&r, repo), 0);
        assert_true(git_repository_is_bare(r));
        assert_int_equal(git_repository_head_unborn(r), 1);
        git_repository_free(r);
        git_libgit2_shutdown();
}

static void test_repo_existing_keeps_and_fixes_hook(void **state) {
        Fixture *f = *state;
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *repo = nap_git_repo_path(&f->config, &f->alice);
        _cleanup_free_ char *hook = path_join(repo, "hooks", "post-receive", NULL);
        _cleanup_free_ char *marker = path_join(repo, "refs", "heads", "main", NULL);
        struct stat st;

        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/x/nap-receive", &e), 1);
        /* A file inside shows the repository is kept, not made again. */
        assert_int_equal(write_file_atomic(marker, "x\n", 2, 0644), 0);
        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/x/nap-receive", &e), 0);
        assert_int_equal(access(marker, F_OK), 0);

        /* Another nap-receive: the hook follows. */
        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/y/nap-receive", &e), 0);
        _cleanup_free_ char *h = read_text(hook);
        assert_string_equal(h, "#!/bin/sh\nexec /y/nap-receive alice web\n");

        /* A hook someone made unexecutable or removed is put back. */
        assert_int_equal(chmod(hook, 0644), 0);
        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/y/nap-receive", &e), 0);
        assert_int_equal(stat(hook, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(unlink(hook), 0);
        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/y/nap-receive", &e), 0);
        assert_int_equal(stat(hook, &st), 0);
        assert_int_equal(access(marker, F_OK), 0);
}

static void test_repo_bad_hook_creates_nothing(void **state) {
        Fixture *f = *state;
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *git = path_join(f->root, "git", NULL);

        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "relative/nap-receive", &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_int_equal(access(git, F_OK), -1);
}

static void test_repo_not_a_directory(void **state) {
        Fixture *f = *state;
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *parent = path_join(f->root, "git", "alice", NULL);
        _cleanup_free_ char *repo = nap_git_repo_path(&f->config, &f->alice);

        assert_int_equal(mkdir_p(parent, 0755), 0);
        assert_int_equal(write_file_atomic(repo, "", 0, 0644), 0);
        assert_int_equal(nap_git_repo_exists(&f->config, &f->alice, &e), -ENOTDIR);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_git_repo_ensure(&f->config, &f->alice, "/x/nap-receive", &e), -ENOTDIR);
}

/* First pushes at once: every one succeeds, one repository, no leftovers. */
static void test_repo_concurrent_creation(void **state) {
        Fixture *f = *state;
        enum { N = 8 };
        pid_t pids[N];
        int created = 0;

        for (int i = 0; i < N; i++) {
                pids[i] = fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0) {
                        NapError e = NAP_ERROR_NULL;
                        int r = nap_git_repo_ensure(&f->config, &f->alice, "/x/nap-receive", &e);
                        _exit(r < 0 ? 100 : r);
                }
        }
        for (int i = 0; i < N; i++) {
                int status;
                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                assert_true(WIFEXITED(status));
                assert_true(WEXITSTATUS(status) <= 1);
                created += WEXITSTATUS(status);
        }
        assert_true(created >= 1);
        _cleanup_free_ char *parent = path_join(f->root, "git", "alice", NULL);
        _cleanup_free_ char *ls = listing(parent);
        assert_string_equal(ls, "web.git");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verb_strings),
                cmocka_unit_test(test_forms_git_sends),
                cmocka_unit_test(test_refused_commands),
                cmocka_unit_test(test_refused_arguments),
                cmocka_unit_test(test_replica_commands),
                cmocka_unit_test(test_hook_text),
                cmocka_unit_test_setup_teardown(test_repo_path, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repo_created, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repo_existing_keeps_and_fixes_hook, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repo_bad_hook_creates_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repo_not_a_directory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repo_concurrent_creation, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
