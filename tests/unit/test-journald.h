/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A real systemd-journald of the test's own, for the tests that read the
 * journal (test-journal.c, test-journal-stream.c). As root, the test
 * enters a private mount namespace, puts tmpfs over /run (and over
 * /var/log/journal, if present) and starts its own journald there, so it
 * neither needs nor touches the machine's journal. It then logs with
 * sd_journal_send(), as a unit's manager would, and reads back.
 * Include after <cmocka.h>. */

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "clients/journal.h"

static pid_t journald_pid;
static const char *journald_skip_reason; /* why the tests needing journald cannot run */

static inline void journald_sleep_20ms(void) {
        nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
}

static inline int journald_mount_tmpfs(const char *where) {
        return mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

static inline void journald_exec(void) {
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

static inline const char *journald_wait_for_socket(void) {
        for (int i = 0; i < 500; i++) {
                struct stat st;
                if (stat("/run/systemd/journal/socket", &st) == 0)
                        return NULL;
                if (waitpid(journald_pid, NULL, WNOHANG) == journald_pid) {
                        journald_pid = 0;
                        return "systemd-journald exited at start";
                }
                journald_sleep_20ms();
        }
        return "systemd-journald did not create its socket within 10 s";
}

static inline const char *journald_start(void) {
        struct stat st;

        if (geteuid() != 0)
                return "not root";
        if (unshare(CLONE_NEWNS) < 0)
                return "cannot create a mount namespace";
        if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 || journald_mount_tmpfs("/run") < 0)
                return "cannot mount tmpfs on /run";
        if (stat("/var/log/journal", &st) == 0 && journald_mount_tmpfs("/var/log/journal") < 0)
                return "cannot mount tmpfs on /var/log/journal";
        if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0 ||
            mkdir("/run/log", 0755) < 0)
                return "cannot create directories in /run";

        journald_pid = fork();
        if (journald_pid < 0)
                return "fork failed";
        if (journald_pid == 0)
                journald_exec();
        return journald_wait_for_socket();
}

/* For cmocka_run_group_tests(): without root or journald, the tests that
 * need it skip (journald_require()), the others run. */
static inline int journald_group_setup(void **state) {
        journald_skip_reason = journald_start();
        if (journald_skip_reason)
                fprintf(stderr, "# journald tests will be skipped: %s\n", journald_skip_reason);
        return 0;
}

static inline int journald_group_teardown(void **state) {
        if (journald_pid > 0) {
                kill(journald_pid, SIGTERM);
                waitpid(journald_pid, NULL, 0);
        }
        return 0;
}

static inline void journald_require(void) {
        if (journald_skip_reason)
                skip();
}

/* What a user manager logs about one of its units. */
static inline void journald_send_user(const char *unit, const char *message) {
        assert_int_equal(sd_journal_send("MESSAGE=%s", message, "USER_UNIT=%s", unit, "PRIORITY=6",
                                         "SYSLOG_IDENTIFIER=nap-test", NULL), 0);
}

/* journald stores asynchronously: poll until unit has at least want
 * entries; *ret (the last n) is the caller's then. */
static inline void journald_wait_entries(NapScope scope, const char *unit, size_t n, size_t want,
                                         NapJournalEntry **ret, size_t *ret_k) {
        NapError e = NAP_ERROR_NULL;

        for (int i = 0; i < 500; i++) {
                assert_int_equal(nap_journal_tail(scope, unit, n, ret, ret_k, &e), 0);
                if (*ret_k >= want)
                        return;
                nap_journal_entry_array_free(*ret, *ret_k);
                journald_sleep_20ms();
        }
        fail_msg("journal entries of %s did not appear", unit);
}
