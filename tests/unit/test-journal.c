/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap_journal_tail() against a real systemd-journald of the test's own
 * (test-journald.h). Without root or journald, those tests are skipped;
 * argument checking is tested either way. A unit's real stdout
 * (_SYSTEMD_UNIT=, written by journald from the cgroup) is covered by the
 * integration tests, which run a real systemd. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/uio.h>

#include "clients/journal.h"
#include "test-journald.h"

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

/* ---- tests against journald ---- */

static int group_setup(void **state) {
        snprintf(unit_prefix, sizeof unit_prefix, "nap-test-%d-%ld", (int) getpid(), (long) time(NULL));
        return journald_group_setup(state);
}

static void unit_name(char *buf, size_t size, const char *what) {
        snprintf(buf, size, "%s-%s.service", unit_prefix, what);
}

static void test_tail_user_unit_last_n_oldest_first(void **state) {
        char u[128], other[128], text[32];
        NapJournalEntry *a;
        size_t k;

        journald_require();
        unit_name(u, sizeof u, "tail");
        unit_name(other, sizeof other, "tail-other");
        for (int i = 1; i <= 5; i++) {
                snprintf(text, sizeof text, "line %d", i);
                journald_send_user(u, text);
                journald_send_user(other, "not mine");
        }

        journald_wait_entries(NAP_SCOPE_USER, u, 100, 5, &a, &k);
        assert_int_equal(k, 5); /* the other unit's lines are not there */
        nap_journal_entry_array_free(a, k);

        journald_wait_entries(NAP_SCOPE_USER, u, 3, 3, &a, &k);
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

        journald_require();
        unit_name(u, sizeof u, "sanitize");
        send_raw_message(u, raw, sizeof raw - 1);

        journald_wait_entries(NAP_SCOPE_USER, u, 10, 1, &a, &k);
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

        journald_require();
        assert_non_null(big);
        unit_name(u, sizeof u, "cap");
        memset(big, 'a', size);
        send_raw_message(u, big, size);
        /* Now with "é" across the 64 KiB mark: it is dropped, not halved. */
        memcpy(big + 64 * 1024 - 1, "\xc3\xa9", 2);
        send_raw_message(u, big, size);

        journald_wait_entries(NAP_SCOPE_USER, u, 10, 2, &a, &k);
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

        journald_require();
        unit_name(u, sizeof u, "scope");
        unit_name(obj, sizeof obj, "object");
        assert_int_equal(sd_journal_send("MESSAGE=not from PID 1", "UNIT=%s", u, "USER_UNIT=%s", u, NULL), 0);
        /* What a privileged daemon (uid 0, as we are) says about a system unit. */
        assert_int_equal(sd_journal_send("MESSAGE=about it", "OBJECT_SYSTEMD_UNIT=%s", obj, NULL), 0);

        journald_wait_entries(NAP_SCOPE_SYSTEM, obj, 10, 1, &a, &k);
        assert_int_equal(k, 1);
        assert_string_equal(a[0].message, "about it");
        nap_journal_entry_array_free(a, k);

        /* The first message is stored (the user scope sees it)… */
        journald_wait_entries(NAP_SCOPE_USER, u, 10, 1, &a, &k);
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
        return cmocka_run_group_tests(tests, group_setup, journald_group_teardown);
}
