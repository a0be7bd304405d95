/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by the cmocka tests. Include after <cmocka.h>. */

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/config.h"
#include "model/names.h"
#include "base/fileio.h"

/* l must hold exactly the strings of expected, in order. */
static inline void assert_strv(char *const *l, const char *const *expected) {
        size_t n = 0;
        for (; expected[n]; n++) {
                assert_non_null(l[n]);
                assert_string_equal(l[n], expected[n]);
        }
        assert_null(l[n]);
}
#define ASSERT_STRV(l, ...) assert_strv((l), (const char *const[]) { __VA_ARGS__, NULL })

/* Runs argv (a real program: git, in the tests) with its output thrown
 * away; it must exit 0. */
static inline void run(char *const argv[]) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                execvp(argv[0], argv);
                _exit(127);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The default configuration with Root= and Instances= moved below dir. */
static inline NapConfig *test_config_in(const char *dir) {
        NapConfig *c = NULL;
        assert_int_equal(nap_config_new_default(&c), 0);
        free(c->root);
        free(c->instances_dir);
        c->root = path_join(dir, "root", NULL);
        c->instances_dir = path_join(dir, "instances", NULL);
        assert_non_null(c->root);
        assert_non_null(c->instances_dir);
        return c;
}

/* A fresh directory under /tmp with a configuration below it (as
 * test_config_in()) and the app alice_web: the fixture of the tests that
 * write STATE. */
typedef struct TestState {
        char *dir;
        NapConfig *config;
        NapService service;
} TestState;

static inline int test_state_setup(void **state) {
        TestState *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->dir = strdup("/tmp/nap-test-state-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        f->config = test_config_in(f->dir);
        assert_int_equal(nap_service_parse("alice_web", &f->service, NULL), 0);
        *state = f;
        return 0;
}

static inline int test_state_teardown(void **state) {
        TestState *f = *state;
        rm_rf(f->dir);
        free(f->dir);
        nap_config_free(f->config);
        free(f);
        return 0;
}
