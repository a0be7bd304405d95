/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap_journal_stream against a real systemd-journald of the test's own
 * (test-journald.h): an instance's manifest in a temporary STATE, lines
 * logged as its user manager would, the replies taken from an sd-event
 * loop run here. Without root or journald those tests are skipped; the
 * checks before the journal is opened run either way. Following through
 * nap-managerd and napctl is covered by the integration tests. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/manifest.h"
#include "ops/journal-stream.h"
#include "test-journald.h"
#include "test-util.h"

#define LOOP_TIMEOUT_USEC (10 * 1000 * 1000ULL)

typedef struct Fixture {
        char *dir;
        NapContext *c;
        sd_event *event;
        NapJournalStream *stream;
        json_t *replies;    /* the "entries" of every reply, in order */
        int ended;          /* end()'s r; 1 while not called */
        bool free_in_reply, free_in_end;
        int reply_result;   /* what reply() returns */
        char instance[64], unit[72]; /* of the test's instance (begin()) */
} Fixture;

static int on_reply(json_t *reply, void *userdata) {
        Fixture *f = userdata;
        json_t *entries = json_object_get(reply, "entries");

        assert_true(json_is_array(entries));
        assert_int_equal(json_array_append(f->replies, entries), 0);
        if (f->free_in_reply)
                f->stream = nap_journal_stream_free(f->stream);
        return f->reply_result;
}

static void on_end(int r, void *userdata) {
        Fixture *f = userdata;

        assert_int_equal(f->ended, 1); /* once */
        f->ended = r;
        if (f->free_in_end)
                f->stream = nap_journal_stream_free(f->stream);
}

/* A manifest for alice_web_common@number: the stream needs the instance. */
static void add_instance(Fixture *f, unsigned number) {
        _cleanup_free_ char *text = strdup_printf(
                "{\"version\":1, \"user\":\"alice\", \"app\":\"web\", \"kind\":\"common\", \"number\":%u, "
                "\"argv\":[\"true\"], \"directory\":\"%s/apps/%u\", \"port\":%u, \"enabled\":true}",
                number, f->dir, number, 20000 + number);
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_non_null(text);
        assert_int_equal(nap_manifest_parse(text, strlen(text), &m, &e), 0);
        assert_int_equal(nap_manifest_save(f->c->config->instances_dir, m, &e), 0);
}

/* A test against journald, with alice_web_common@number of its own. */
static void begin(Fixture *f, unsigned number) {
        journald_require();
        add_instance(f, number);
        snprintf(f->instance, sizeof f->instance, "alice_web_common@%u", number);
        snprintf(f->unit, sizeof f->unit, "%s.service", f->instance);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->dir = strdup("/tmp/nap-test-journal-stream-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(nap_context_new_with_config(&f->c, test_config_in(f->dir), NAP_SCOPE_USER), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_non_null(f->replies = json_array());
        f->ended = 1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        nap_journal_stream_free(f->stream);
        sd_event_unref(f->event);
        json_decref(f->replies);
        nap_context_free(f->c);
        rm_rf(f->dir);
        free(f->dir);
        free(f);
        return 0;
}

static void assert_n_replies(Fixture *f, size_t n) {
        assert_int_equal(json_array_size(f->replies), n);
}

static void start(Fixture *f, size_t lines) {
        size_t n = json_array_size(f->replies);
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(nap_journal_stream_new(f->c, f->instance, lines, f->event, on_reply, on_end, f, &f->stream, &e), 0);
        assert_n_replies(f, n); /* nothing before the loop runs */
}

/* Runs the loop until there are n replies (or the stream ended). */
static void run_until_replies(Fixture *f, size_t n) {
        uint64_t start = 0, now = 0;

        assert_true(sd_event_now(f->event, CLOCK_MONOTONIC, &start) >= 0); /* 1: not cached, as yet */
        while (json_array_size(f->replies) < n && f->ended == 1) {
                assert_true(sd_event_run(f->event, 100 * 1000) >= 0);
                assert_true(sd_event_now(f->event, CLOCK_MONOTONIC, &now) >= 0);
                if (now - start > LOOP_TIMEOUT_USEC)
                        fail_msg("%zu replies after 10 s, waiting for %zu", json_array_size(f->replies), n);
        }
}

/* Runs the loop for a while: for what must not come. */
static void run_idle(Fixture *f) {
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(f->event, 100 * 1000) >= 0);
}

/* Reply i holds n entries, "line first" onwards, as the log has them. */
static void assert_reply(Fixture *f, size_t i, int first, size_t n) {
        json_t *entries = json_array_get(f->replies, i);
        char text[32];

        assert_non_null(entries);
        assert_int_equal(json_array_size(entries), n);
        for (size_t k = 0; k < n; k++) {
                json_t *j = json_array_get(entries, k);
                snprintf(text, sizeof text, "line %d", first + (int) k);
                assert_string_equal(json_string_value(json_object_get(j, "message")), text);
                assert_int_equal(json_integer_value(json_object_get(j, "priority")), 6);
                assert_string_equal(json_string_value(json_object_get(j, "identifier")), "nap-test");
                assert_int_equal(json_integer_value(json_object_get(j, "pid")), getpid());
                assert_true(json_integer_value(json_object_get(j, "time")) > 0);
        }
}

/* Logs "line first" to "line last" and waits until journald stored them. */
static void log_lines(const char *unit, int first, int last) {
        NapJournalEntry *a;
        size_t k;
        char text[32];

        for (int i = first; i <= last; i++) {
                snprintf(text, sizeof text, "line %d", i);
                journald_send_user(unit, text);
        }
        for (int i = 0; i < 500; i++) {
                journald_wait_entries(NAP_SCOPE_USER, unit, 1, 1, &a, &k);
                bool stored = streq(a[0].message, text);
                nap_journal_entry_array_free(a, k);
                if (stored)
                        return;
                journald_sleep_20ms();
        }
        fail_msg("'%s' of %s did not appear", text, unit);
}

/* ---- checks before the journal: no journald needed ---- */

static void assert_refused(Fixture *f, const char *instance, size_t lines, NapErrorKind kind) {
        NapJournalStream *sentinel = (NapJournalStream *) 1, *s = sentinel;
        NapError e = NAP_ERROR_NULL;

        assert_true(nap_journal_stream_new(f->c, instance, lines, f->event, on_reply, on_end, f, &s, &e) < 0);
        assert_int_equal(e.kind, kind);
        assert_ptr_equal(s, sentinel);
}

static void test_refuses_what_every_operation_refuses(void **state) {
        Fixture *f = *state;

        add_instance(f, 1);
        assert_refused(f, NULL, 10, NAP_ERROR_INVALID_NAME);
        assert_refused(f, "alice", 10, NAP_ERROR_INVALID_NAME);
        assert_refused(f, "alice_web_common@2", 10, NAP_ERROR_NO_SUCH_INSTANCE);
        assert_refused(f, "bob_web_common@1", 10, NAP_ERROR_NO_SUCH_INSTANCE);
        assert_refused(f, "alice_web_common@1", 10001, NAP_ERROR_INVALID_PARAMETER);
}

/* ---- against journald ---- */

static void test_last_lines_then_one_reply_per_line(void **state) {
        Fixture *f = *state;

        begin(f, 1);
        log_lines(f->unit, 1, 5);
        start(f, 3);
        run_until_replies(f, 1);
        assert_reply(f, 0, 3, 3);

        log_lines(f->unit, 6, 6);
        run_until_replies(f, 2);
        assert_reply(f, 1, 6, 1);
        log_lines(f->unit, 7, 8); /* both there before the stream reads */
        run_until_replies(f, 4);
        assert_reply(f, 2, 7, 1);
        assert_reply(f, 3, 8, 1);
        run_idle(f);
        assert_n_replies(f, 4);
        assert_int_equal(f->ended, 1);
}

/* The first reply says the stream runs: it comes even with nothing in it. */
static void test_first_reply_may_be_empty(void **state) {
        Fixture *f = *state;

        begin(f, 2);
        start(f, 10); /* a unit that never logged */
        run_until_replies(f, 1);
        assert_reply(f, 0, 0, 0);
        f->stream = nap_journal_stream_free(f->stream);

        log_lines(f->unit, 1, 2);
        start(f, 0);
        run_until_replies(f, 2);
        assert_reply(f, 1, 0, 0);
        log_lines(f->unit, 3, 3);
        run_until_replies(f, 3);
        assert_reply(f, 2, 3, 1);
}

/* 600 lines to catch up: three batches, the loop's own between them, and
 * still one first reply. */
static void test_catching_up_is_cut_into_batches(void **state) {
        Fixture *f = *state;
        unsigned runs = 0;

        begin(f, 3);
        log_lines(f->unit, 1, 600);
        start(f, 600);
        while (json_array_size(f->replies) == 0 && runs < 100) {
                assert_true(sd_event_run(f->event, 100 * 1000) >= 0);
                runs++;
        }
        assert_true(runs >= (600 + NAP_JOURNAL_STREAM_BATCH - 1) / NAP_JOURNAL_STREAM_BATCH);
        assert_n_replies(f, 1);
        assert_reply(f, 0, 1, 600);
}

/* The owner drops the stream from within a reply (a client hanging up):
 * what the same batch read is not sent; and when that reply fails too,
 * nothing is ended, since there is nothing left to end. */
static void test_free_from_within_reply(void **state) {
        Fixture *f = *state;

        begin(f, 4);
        start(f, 10);
        run_until_replies(f, 1);
        f->free_in_reply = true;
        log_lines(f->unit, 1, 3); /* stored before the stream reads: one batch */
        run_until_replies(f, 2);
        assert_null(f->stream);
        run_idle(f);
        assert_n_replies(f, 2);
        assert_reply(f, 1, 1, 1);

        f->reply_result = -ENOTCONN;
        start(f, 2);
        run_until_replies(f, 3);
        assert_null(f->stream);
        log_lines(f->unit, 4, 4);
        run_idle(f);
        assert_n_replies(f, 3);
        assert_reply(f, 2, 2, 2);
        assert_int_equal(f->ended, 1);
}

/* A reply that fails ends the stream, once, and end() may free it. */
static void test_failed_reply_ends_stream(void **state) {
        Fixture *f = *state;

        begin(f, 5);
        log_lines(f->unit, 1, 3);
        f->reply_result = -ENOBUFS;
        f->free_in_end = true;
        start(f, 2);
        run_until_replies(f, 1);
        assert_int_equal(f->ended, -ENOBUFS);
        assert_null(f->stream);
        log_lines(f->unit, 4, 4);
        run_idle(f);
        assert_n_replies(f, 1);
        assert_reply(f, 0, 2, 2);
}

static void test_entry_json(void **state) {
        NapJournalEntry j = { .realtime_usec = 1700000000000000ULL, .message = (char *) "hi", .priority = -1, .pid = 0 };
        json_auto_t *o = nap_journal_entry_json(&j);

        assert_non_null(o);
        assert_int_equal(json_object_size(o), 5);
        assert_int_equal(json_integer_value(json_object_get(o, "time")), 1700000000000000LL);
        assert_string_equal(json_string_value(json_object_get(o, "message")), "hi");
        assert_int_equal(json_integer_value(json_object_get(o, "priority")), -1);
        assert_true(json_is_null(json_object_get(o, "identifier")));
        assert_int_equal(json_integer_value(json_object_get(o, "pid")), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_refuses_what_every_operation_refuses, setup, teardown),
                cmocka_unit_test_setup_teardown(test_last_lines_then_one_reply_per_line, setup, teardown),
                cmocka_unit_test_setup_teardown(test_first_reply_may_be_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_catching_up_is_cut_into_batches, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_from_within_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_reply_ends_stream, setup, teardown),
                cmocka_unit_test(test_entry_json),
        };
        return cmocka_run_group_tests(tests, journald_group_setup, journald_group_teardown);
}
