/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap_journal_tail() against a real systemd-journald. As root, the test
 * enters a private mount namespace, puts tmpfs over /run (and over
 * /var/log/journal, if present) and starts its own journald there, so it
 * neither needs nor touches the machine's journal. It then logs with
 * sd_journal_send(), as a unit's manager would, and reads back.
 * Without root or journald, those tests are skipped; argument checking is
 * tested either way. A unit's real stdout (_SYSTEMD_UNIT=, written by
 * journald from the cgroup) is covered by the integration tests, which run
 * a real systemd. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "clients/journal.h"

static pid_t journald_pid;
static const char *skip_reason; /* why the tests needing journald cannot run */
static char unit_prefix[64];    /* unique per run: the machine's journal may be read too */

/* ---- argument checking: no journal needed ---- */

static void assert_refused(NapScope scope, const char *unit, size_t n) {
        NapJournalEntry *sentinel = (NapJournalEntry *) 1, *a = sentinel;
        size_t k = 77;
        NapError e = NAP_ERROR_NULL;

        assert_true(nap_journal_tail(scope, unit, n, &a, &k, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_ptr_equal(a, sentinel); /* outputs untouched on error */
        assert_int_equal(k, 77);
}

static void test_tail_refuses_bad_arguments(void **state) {
        char long_name[300];
        memset(long_name, 'a', sizeof long_name);
        memcpy(long_name + 250, ".service", 9); /* 258 characters */

        assert_refused(NAP_SCOPE_USER, NULL, 10);
        assert_refused(NAP_SCOPE_USER, "", 10);
        assert_refused(NAP_SCOPE_USER, "nodot", 10);
        assert_refused(NAP_SCOPE_USER, "a b.service", 10);
        assert_refused(NAP_SCOPE_USER, "a\n.service", 10);
        assert_refused(NAP_SCOPE_USER, "a.service\nUNIT=b.service", 10);
        assert_refused(NAP_SCOPE_USER, "a=b.service", 10);
        assert_refused(NAP_SCOPE_SYSTEM, long_name, 10);
        assert_refused(NAP_SCOPE_USER, "alice_web_common@1.service", 10001);
        assert_refused((NapScope) 7, "alice_web_common@1.service", 10);
        assert_refused(_NAP_SCOPE_INVALID, "alice_web_common@1.service", 10);
}

static void test_tail_zero_lines_is_empty(void **state) {
        NapJournalEntry *a = (NapJournalEntry *) 1;
        size_t k = 77;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(nap_journal_tail(NAP_SCOPE_USER, "alice_web_common@1.service", 0, &a, &k, &e), 0);
        assert_null(a);
        assert_int_equal(k, 0);
        assert_false(nap_error_is_set(&e));
}

/* ---- a private journald ---- */

static int mount_tmpfs(const char *where) {
        return mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

static void exec_journald(void) {
        static const char *const paths[] = { "/usr/lib/systemd/systemd-journald", "/lib/systemd/systemd-journald" };
        char *argv[] = { "systemd-journald", NULL };
        char *envp[] = { "SYSTEMD_LOG_TARGET=console", NULL };
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        /* journald turns kernel auditing on when it can: not for a test. */
        (void) prctl(PR_CAPBSET_DROP, CAP_AUDIT_CONTROL, 0, 0, 0);
        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
        }
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                execve(paths[i], argv, envp);
        _exit(127);
}

static const char *wait_for_socket(void) {
        for (int i = 0; i < 500; i++) {
                struct stat st;
                if (stat("/run/systemd/journal/socket", &st) == 0)
                        return NULL;
                if (waitpid(journald_pid, NULL, WNOHANG) == journald_pid) {
                        journald_pid = 0;
                        return "systemd-journald exited at start";
                }
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        return "systemd-journald did not create its socket within 10 s";
}

static const char *start_private_journald(void) {
        struct stat st;

        if (geteuid() != 0)
                return "not root";
        if (unshare(CLONE_NEWNS) < 0)
                return "cannot create a mount namespace";
        if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 || mount_tmpfs("/run") < 0)
                return "cannot mount tmpfs on /run";
        if (stat("/var/log/journal", &st) == 0 && mount_tmpfs("/var/log/journal") < 0)
                return "cannot mount tmpfs on /var/log/journal";
        if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0 ||
            mkdir("/run/log", 0755) < 0)
                return "cannot create directories in /run";

        journald_pid = fork();
        if (journald_pid < 0)
                return "fork failed";
        if (journald_pid == 0)
                exec_journald();
        return wait_for_socket();
}

static int group_setup(void **state) {
        snprintf(unit_prefix, sizeof unit_prefix, "nap-test-%d-%ld", (int) getpid(), (long) time(NULL));
        skip_reason = start_private_journald();
        if (skip_reason)
                fprintf(stderr, "# journald tests will be skipped: %s\n", skip_reason);
        return 0;
}

static int group_teardown(void **state) {
        if (journald_pid > 0) {
                kill(journald_pid, SIGTERM);
                waitpid(journald_pid, NULL, 0);
        }
        return 0;
}

/* ---- tests against journald ---- */

static void unit_name(char *buf, size_t size, const char *what) {
        snprintf(buf, size, "%s-%s.service", unit_prefix, what);
}

static void send_user(const char *unit, const char *message) {
        assert_int_equal(sd_journal_send("MESSAGE=%s", message, "USER_UNIT=%s", unit, "PRIORITY=6",
                                         "SYSLOG_IDENTIFIER=nap-test", NULL), 0);
}

/* journald stores asynchronously: poll until unit has at least want entries. */
static void wait_entries(NapScope scope, const char *unit, size_t n, size_t want,
                         NapJournalEntry **ret, size_t *ret_k) {
        NapError e = NAP_ERROR_NULL;

        for (int i = 0; i < 500; i++) {
                assert_int_equal(nap_journal_tail(scope, unit, n, ret, ret_k, &e), 0);
                if (*ret_k >= want)
                        return;
                nap_journal_entry_array_free(*ret, *ret_k);
                nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        fail_msg("journal entries of %s did not appear", unit);
}

static void test_tail_user_unit_last_n_oldest_first(void **state) {
        char u[128], other[128], text[32];
        NapJournalEntry *a;
        size_t k;

        if (skip_reason)
                skip();
        unit_name(u, sizeof u, "tail");
        unit_name(other, sizeof other, "tail-other");
        for (int i = 1; i <= 5; i++) {
                snprintf(text, sizeof text, "line %d", i);
                send_user(u, text);
                send_user(other, "not mine");
        }

        wait_entries(NAP_SCOPE_USER, u, 100, 5, &a, &k);
        assert_int_equal(k, 5); /* the other unit's lines are not there */
        nap_journal_entry_array_free(a, k);

        wait_entries(NAP_SCOPE_USER, u, 3, 3, &a, &k);
        assert_int_equal(k, 3);
        for (size_t i = 0; i < k; i++) {
                snprintf(text, sizeof text, "line %zu", i + 3);
                assert_string_equal(a[i].message, text);
                assert_int_equal(a[i].priority, 6);
                assert_string_equal(a[i].identifier, "nap-test");
                assert_int_equal(a[i].pid, getpid());
                assert_true(a[i].realtime_usec > 0);
                assert_true(i == 0 || a[i].realtime_usec >= a[i - 1].realtime_usec);
        }
        nap_journal_entry_array_free(a, k);
}

static void send_raw_message(const char *unit, const void *msg, size_t size) {
        _cleanup_free_ char *m = malloc(size + 8), *u = NULL;
        assert_non_null(m);
        memcpy(m, "MESSAGE=", 8);
        memcpy(m + 8, msg, size);
        assert_int_equal(asprintf(&u, "USER_UNIT=%s", unit) > 0, 1);
        struct iovec iov[] = { { m, size + 8 }, { u, strlen(u) } };
        assert_int_equal(sd_journal_sendv(iov, ELEMENTSOF(iov)), 0);
}

static void test_tail_sanitizes_messages(void **state) {
        /* ESC, BEL, tab (kept), CR, NUL, LF, invalid UTF-8, C1 NEL, DEL, é (kept) */
        static const char raw[] = "\x1b[31mred\x07\tx\r\0y\nz\xff\xfe\xc2\x85\x7f\xc3\xa9!";
        char u[128];
        NapJournalEntry *a;
        size_t k;

        if (skip_reason)
                skip();
        unit_name(u, sizeof u, "sanitize");
        send_raw_message(u, raw, sizeof raw - 1);

        wait_entries(NAP_SCOPE_USER, u, 10, 1, &a, &k);
        assert_int_equal(k, 1);
        assert_string_equal(a[0].message, "?[31mred?\tx??y?z????\xc3\xa9!");
        assert_int_equal(a[0].priority, -1); /* none sent */
        nap_journal_entry_array_free(a, k);
}

static void test_tail_caps_long_messages(void **state) {
        size_t size = 70 * 1024;
        _cleanup_free_ char *big = malloc(size);
        char u[128];
        NapJournalEntry *a;
        size_t k;

        if (skip_reason)
                skip();
        assert_non_null(big);
        unit_name(u, sizeof u, "cap");
        memset(big, 'a', size);
        send_raw_message(u, big, size);
        /* Now with "é" across the 64 KiB mark: it is dropped, not halved. */
        memcpy(big + 64 * 1024 - 1, "\xc3\xa9", 2);
        send_raw_message(u, big, size);

        wait_entries(NAP_SCOPE_USER, u, 10, 2, &a, &k);
        assert_int_equal(k, 2);
        assert_int_equal(strlen(a[0].message), 64 * 1024);
        assert_int_equal(strlen(a[1].message), 64 * 1024 - 1);
        assert_int_equal(strspn(a[1].message, "a"), 64 * 1024 - 1);
        nap_journal_entry_array_free(a, k);
}

/* System scope: "UNIT=" counts only from PID 1, and user-unit fields never. */
static void test_tail_scopes_match_their_own_fields(void **state) {
        char u[128], obj[128];
        NapJournalEntry *a;
        size_t k;
        NapError e = NAP_ERROR_NULL;

        if (skip_reason)
                skip();
        unit_name(u, sizeof u, "scope");
        unit_name(obj, sizeof obj, "object");
        assert_int_equal(sd_journal_send("MESSAGE=not from PID 1", "UNIT=%s", u, "USER_UNIT=%s", u, NULL), 0);
        /* What a privileged daemon (uid 0, as we are) says about a system unit. */
        assert_int_equal(sd_journal_send("MESSAGE=about it", "OBJECT_SYSTEMD_UNIT=%s", obj, NULL), 0);

        wait_entries(NAP_SCOPE_SYSTEM, obj, 10, 1, &a, &k);
        assert_int_equal(k, 1);
        assert_string_equal(a[0].message, "about it");
        nap_journal_entry_array_free(a, k);

        /* The first message is stored (the user scope sees it)… */
        wait_entries(NAP_SCOPE_USER, u, 10, 1, &a, &k);
        assert_int_equal(k, 1);
        nap_journal_entry_array_free(a, k);
        /* …but is not the system manager's word about a system unit. */
        assert_int_equal(nap_journal_tail(NAP_SCOPE_SYSTEM, u, 10, &a, &k, &e), 0);
        assert_int_equal(k, 0);
        nap_journal_entry_array_free(a, k);
        assert_int_equal(nap_journal_tail(NAP_SCOPE_USER, obj, 10, &a, &k, &e), 0);
        assert_int_equal(k, 0);
        nap_journal_entry_array_free(a, k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tail_refuses_bad_arguments),
                cmocka_unit_test(test_tail_zero_lines_is_empty),
                cmocka_unit_test(test_tail_user_unit_last_n_oldest_first),
                cmocka_unit_test(test_tail_sanitizes_messages),
                cmocka_unit_test(test_tail_caps_long_messages),
                cmocka_unit_test(test_tail_scopes_match_their_own_fields),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
