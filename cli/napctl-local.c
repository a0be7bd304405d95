/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* --no-helper: io.nap.Manager's methods in this process, from the same
 * registry as nap-managerd (lib/ops/methods.h), so the replies, the errors
 * and the authorization by uid are the helper's, without the socket in
 * between. What a call can do is what this process may do: the files of
 * STATE, the service manager's bus, the journal. */

#include <unistd.h>

#include "clients/journal-follow.h"
#include "napctl-call.h"
#include "ops/methods.h"

static int local_method(Caller *c, const char *name, json_t *params, const NapMethod **ret_method,
                        NapContext **ret_context, NapError *e) {
        const NapMethod *m = nap_method_find(name);
        int r;

        if (!m)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "%s cannot run in this process", name);
        r = caller_context(c, ret_context, e);
        if (r >= 0)
                r = nap_method_authorize(m, geteuid(), params, e);
        if (r < 0)
                return r;
        *ret_method = m;
        return 0;
}

int local_call(Caller *c, const char *name, json_t *params, json_t **ret, NapError *e) {
        const NapMethod *m = nap_method_find(name);
        NapContext *ctx;

        if (!m)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "%s cannot run in this process", name);
        int r = caller_context(c, &ctx, e);
        if (r < 0)
                return r;
        json_auto_t *envelope = nap_method_call(ctx, m, geteuid(), params);
        *ret = nap_method_unwrap(envelope, e);
        return *ret ? 0 : -EIO;
}

/* ---- GetJournal with "more" ------------------------------------------- */

/* The same replies as nap-managerd's follow (helpers/managerd-journal.c):
 * the last lines in a first reply once caught up, then one reply per new
 * entry. */
typedef struct LocalFollow {
        NapJournalFollow *reader;
        sd_event_source *time_source;
        json_t *initial; /* the first reply's entries, until it is sent */
        size_t initial_left;
        caller_reply_fn fn;
        void *userdata;
        NapError *error;
        int result;
} LocalFollow;

static int local_follow_emit(LocalFollow *f, json_t *entries) {
        json_auto_t *p = json_pack("{s:o}", "entries", entries);
        return p ? f->fn(p, f->userdata, f->error) : nap_error_errno(f->error, -ENOMEM, "Failed to read the journal");
}

static int local_follow_add(LocalFollow *f, json_t *entry) {
        int r;
        if (f->initial && f->initial_left == 0 && (r = local_follow_emit(f, TAKE_PTR(f->initial))) < 0)
                return json_decref(entry), r;
        if (f->initial) {
                f->initial_left--;
                return json_array_append_new(f->initial, entry) < 0 ? -ENOMEM : 0;
        }
        return local_follow_emit(f, json_pack("[o]", entry));
}

static int local_follow_arm(LocalFollow *f) {
        uint64_t t = UINT64_MAX;
        int r = nap_journal_follow_get_timeout(f->reader, &t);
        if (r < 0 || t == UINT64_MAX)
                return r < 0 ? r : sd_event_source_set_enabled(f->time_source, SD_EVENT_OFF);
        r = sd_event_source_set_time(f->time_source, t);
        return r < 0 ? r : sd_event_source_set_enabled(f->time_source, SD_EVENT_ONESHOT);
}

/* Everything there is to read now. */
static int local_follow_pump(LocalFollow *f) {
        int r;
        for (;;) {
                NapJournalEntry entry = { .priority = -1 };
                r = nap_journal_follow_next(f->reader, &entry);
                if (r <= 0)
                        break;
                json_t *j = nap_journal_entry_json(&entry);
                nap_journal_entry_clear(&entry);
                r = j ? local_follow_add(f, j) : -ENOMEM;
                if (r < 0)
                        break;
        }
        if (r >= 0 && f->initial)
                r = local_follow_emit(f, TAKE_PTR(f->initial));
        if (r >= 0)
                r = local_follow_arm(f);
        return r < 0 ? nap_error_errno(f->error, r, "Failed to follow the journal") : 0;
}

static int local_follow_wake(sd_event *event, LocalFollow *f) {
        int r = nap_journal_follow_process(f->reader);
        if (r >= 0)
                r = local_follow_pump(f);
        if (r < 0) {
                f->result = nap_error_errno(f->error, r, "Failed to follow the journal");
                return sd_event_exit(event, 0);
        }
        return 0;
}

static int on_journal_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return local_follow_wake(sd_event_source_get_event(s), userdata);
}

static int on_journal_time(sd_event_source *s, uint64_t usec, void *userdata) {
        return local_follow_wake(sd_event_source_get_event(s), userdata);
}

/* Checks the instance the way every method does, then opens its log. */
static int local_follow_open(NapContext *ctx, json_t *params, LocalFollow *f, NapError *e) {
        const char *instance = json_string_value(json_object_get(params, "instance"));
        char unit[NAP_UNIT_NAME_MAX];
        NapJournalEntry *none = NULL;
        size_t n = 0;
        NapInstance i;

        int r = nap_method_journal_lines(params, &f->initial_left, e);
        if (r >= 0)
                r = nap_get_journal(ctx, instance, 0, &none, &n, e);
        nap_journal_entry_array_free(none, n);
        if (r >= 0)
                r = nap_instance_parse(instance, &i, e);
        if (r >= 0)
                r = nap_journal_follow_new(ctx->scope, nap_instance_unit_name(&i, unit), f->initial_left, &f->reader, e);
        return r;
}

static int local_follow_run(LocalFollow *f, NapError *e) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_event_source_unrefp) sd_event_source *io = NULL;
        int r = follow_event_new(&event);
        if (r >= 0)
                r = sd_event_add_io(event, &io, nap_journal_follow_get_fd(f->reader),
                                    (uint32_t) nap_journal_follow_get_events(f->reader), on_journal_io, f);
        if (r >= 0)
                r = sd_event_add_time(event, &f->time_source, CLOCK_MONOTONIC, UINT64_MAX, 0, on_journal_time, f);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to watch the journal");
        r = local_follow_pump(f);
        if (r >= 0)
                r = sd_event_loop(event);
        f->time_source = sd_event_source_unref(f->time_source);
        return r < 0 ? nap_error_errno(e, r, "Failed to follow the journal") : f->result;
}

int local_follow(Caller *c, const char *name, json_t *params, caller_reply_fn fn, void *userdata, NapError *e) {
        LocalFollow f = { .fn = fn, .userdata = userdata, .error = e };
        const NapMethod *m;
        NapContext *ctx;
        int r;

        if (!streq(name, "GetJournal"))
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "%s cannot be followed", name);
        r = local_method(c, name, params, &m, &ctx, e);
        if (r >= 0)
                r = local_follow_open(ctx, params, &f, e);
        if (r >= 0 && !(f.initial = json_array()))
                r = nap_error_errno(e, -ENOMEM, "Failed to follow the journal");
        if (r >= 0)
                r = local_follow_run(&f, e);
        json_decref(f.initial);
        nap_journal_follow_free(f.reader);
        return r;
}
