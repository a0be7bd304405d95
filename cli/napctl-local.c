/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* --no-helper: io.nap.Manager's methods in this process, from the same
 * registry as nap-managerd (lib/ops/methods.h), so the replies, the errors
 * and the authorization by uid are the helper's, without the socket in
 * between. What a call can do is what this process may do: the files of
 * STATE, the service manager's bus, the journal. */

#include <unistd.h>

#include "napctl-call.h"
#include "ops/journal-stream.h"
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

/* nap-managerd's follow (lib/ops/journal-stream.h) in a loop of our own,
 * until interrupted (follow_event_new()) or the stream ends. */
typedef struct LocalFollow {
        sd_event *event;
        caller_reply_fn fn;
        void *userdata;
        NapError *error;
        int result;
} LocalFollow;

static int local_follow_reply(json_t *reply, void *userdata) {
        LocalFollow *f = userdata;
        return f->fn(reply, f->userdata, f->error);
}

static void local_follow_end(int r, void *userdata) {
        LocalFollow *f = userdata;
        f->result = nap_error_errno(f->error, r, "Failed to follow the journal"); /* keeps fn's own error */
        (void) sd_event_exit(f->event, 0);
}

int local_follow(Caller *c, const char *name, json_t *params, caller_reply_fn fn, void *userdata, NapError *e) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(nap_journal_stream_freep) NapJournalStream *stream = NULL;
        LocalFollow f = { .fn = fn, .userdata = userdata, .error = e };
        const NapMethod *m = NULL;
        NapContext *ctx;
        size_t lines;

        int r = local_method(c, name, params, &m, &ctx, e);
        if (r >= 0 && !m->streams)
                r = nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "%s cannot be followed", name);
        if (r >= 0)
                r = nap_method_journal_lines(params, &lines, e);
        if (r < 0)
                return r;
        r = follow_event_new(&event);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to set up following %s", name);
        f.event = event;
        r = nap_journal_stream_new(ctx, json_string_value(json_object_get(params, "instance")), lines, event,
                                   local_follow_reply, local_follow_end, &f, &stream, e);
        if (r < 0)
                return r;
        r = sd_event_loop(event);
        return r < 0 ? nap_error_errno(e, r, "Failed to follow the journal") : f.result;
}
