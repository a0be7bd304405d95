/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "clients/journal-follow.h"
#include "model/manifest.h"
#include "ops/journal-stream.h"
#include "ops/ops-internal.h"

struct NapJournalStream {
        /* The owner's reference, and one while the stream calls out: the
         * owner may free it from within reply() or end(), and what is left
         * of the call must still find it. */
        unsigned n_ref;
        bool done; /* freed by the owner or ended: nothing more is sent */
        NapJournalFollow *reader;
        sd_event_source *io_source, *time_source, *defer_source;
        json_t *initial; /* the entries of the first reply, until it is sent */
        size_t initial_left;
        NapJournalStreamReplyFn reply;
        NapJournalStreamEndFn end;
        void *userdata;
};

json_t *nap_journal_entry_json(const NapJournalEntry *j) {
        return json_pack("{s:I, s:s, s:i, s:s?, s:I}", "time", (json_int_t) j->realtime_usec, "message", j->message,
                         "priority", j->priority, "identifier", j->identifier, "pid", (json_int_t) j->pid);
}

/* The event sources go at once, even from within their own callback
 * (sd-event keeps a dispatching source until it returns); the rest stays
 * until the last reference (stream_unref()). */
static void stream_stop(NapJournalStream *s) {
        s->done = true;
        s->io_source = sd_event_source_disable_unref(s->io_source);
        s->time_source = sd_event_source_disable_unref(s->time_source);
        s->defer_source = sd_event_source_disable_unref(s->defer_source);
}

static void stream_unref(NapJournalStream *s) {
        if (--s->n_ref > 0)
                return;
        nap_journal_follow_free(s->reader);
        json_decref(s->initial);
        free(s);
}

NapJournalStream *nap_journal_stream_free(NapJournalStream *s) {
        if (!s)
                return NULL;
        stream_stop(s);
        stream_unref(s);
        return NULL;
}

/* Calls end() last: it may free s. */
static void stream_end(NapJournalStream *s, int r) {
        if (s->done)
                return; /* freed from within a reply that then failed: its owner knows */
        stream_stop(s);
        s->end(r, s->userdata);
}

/* Takes entries. Once done, sends nothing. */
static int stream_send(NapJournalStream *s, json_t *entries) {
        json_auto_t *p = json_pack("{s:o}", "entries", entries); /* taken by p, even when packing failed */
        if (!p)
                return -ENOMEM;
        return s->done ? 0 : s->reply(p, s->userdata);
}

static int stream_send_initial(NapJournalStream *s) {
        return stream_send(s, TAKE_PTR(s->initial));
}

static int stream_add(NapJournalStream *s, const NapJournalEntry *entry) {
        json_t *j = nap_journal_entry_json(entry);
        int r;

        if (!j)
                return -ENOMEM;
        if (s->initial && s->initial_left == 0 && (r = stream_send_initial(s)) < 0) {
                json_decref(j);
                return r;
        }
        if (s->initial) {
                s->initial_left--;
                return json_array_append_new(s->initial, j) < 0 ? -ENOMEM : 0;
        }
        return stream_send(s, json_pack("[o]", j));
}

/* One batch: 1 if it was full (maybe more to read), 0 when caught up. */
static int stream_read(NapJournalStream *s) {
        for (unsigned i = 0; i < NAP_JOURNAL_STREAM_BATCH && !s->done; i++) {
                NapJournalEntry entry = { .priority = -1 };
                int r = nap_journal_follow_next(s->reader, &entry);
                if (r <= 0)
                        return r;
                r = stream_add(s, &entry);
                nap_journal_entry_clear(&entry);
                if (r < 0)
                        return r;
        }
        return 1;
}

/* What the journal asks for besides its fd: a time to look anyway. */
static int stream_arm_timeout(NapJournalStream *s) {
        uint64_t t = UINT64_MAX;
        int r = nap_journal_follow_get_timeout(s->reader, &t);
        if (r < 0)
                return r;
        if (t == UINT64_MAX)
                return sd_event_source_set_enabled(s->time_source, SD_EVENT_OFF);
        r = sd_event_source_set_time(s->time_source, t);
        return r < 0 ? r : sd_event_source_set_enabled(s->time_source, SD_EVENT_ONESHOT);
}

/* The first reply goes now even if short or empty, so the client knows
 * the stream is running; then nothing to do until the journal wakes us. */
static int stream_caught_up(NapJournalStream *s) {
        int r = s->initial ? stream_send_initial(s) : 0;
        if (r < 0 || s->done)
                return r;
        r = sd_event_source_set_enabled(s->defer_source, SD_EVENT_OFF);
        return r < 0 ? r : stream_arm_timeout(s);
}

/* Always 0: sd-event disables a source whose callback fails, and a stream
 * that cannot go on has ended (stream_end()) already. */
static int stream_pump(sd_event_source *source, void *userdata) {
        NapJournalStream *s = userdata;

        s->n_ref++;
        int r = stream_read(s);
        if (r == 0 && !s->done)
                r = stream_caught_up(s);
        if (r < 0)
                stream_end(s, r);
        stream_unref(s);
        return 0;
}

static int stream_wake(NapJournalStream *s) {
        int r = nap_journal_follow_process(s->reader);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->defer_source, SD_EVENT_ON);
        if (r < 0)
                stream_end(s, r);
        return 0;
}

static int stream_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        return stream_wake(userdata);
}

static int stream_time(sd_event_source *source, uint64_t usec, void *userdata) {
        return stream_wake(userdata);
}

/* Reading starts at once, on the defer source; the time source waits
 * until caught up, when the journal says what it wants. */
static int stream_watch(NapJournalStream *s, sd_event *event) {
        int fd = nap_journal_follow_get_fd(s->reader);
        int events = nap_journal_follow_get_events(s->reader);
        int r = fd < 0 ? fd : events < 0 ? events : 0;

        if (r >= 0)
                r = sd_event_add_io(event, &s->io_source, fd, (uint32_t) events, stream_io, s);
        if (r >= 0)
                r = sd_event_add_time(event, &s->time_source, CLOCK_MONOTONIC, UINT64_MAX, 0, stream_time, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->time_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(event, &s->defer_source, stream_pump, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->defer_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->defer_source, SD_EVENT_ON);
        return r;
}

/* The reader of the instance's unit, once the instance is known to exist. */
static int stream_open(NapContext *c, const char *instance, size_t lines, NapJournalFollow **ret, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        char unit[NAP_UNIT_NAME_MAX];

        int r = ops_load_instance(c, instance, &m, e);
        if (r < 0)
                return r;
        return nap_journal_follow_new(c->scope, nap_instance_unit_name(&m->instance, unit), lines, ret, e);
}

int nap_journal_stream_new(NapContext *c, const char *instance, size_t lines, sd_event *event,
                           NapJournalStreamReplyFn reply, NapJournalStreamEndFn end, void *userdata,
                           NapJournalStream **ret, NapError *e) {
        _cleanup_(nap_journal_stream_freep) NapJournalStream *s = NULL;
        int r;

        if (!c || !event || !reply || !end || !ret)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EINVAL, "Invalid arguments to follow a journal");
        s = calloc(1, sizeof *s);
        if (!s)
                return nap_error_errno(e, -ENOMEM, "Failed to follow the journal");
        *s = (NapJournalStream) { .n_ref = 1, .initial = json_array(), .initial_left = lines, .reply = reply,
                                  .end = end, .userdata = userdata };
        if (!s->initial)
                return nap_error_errno(e, -ENOMEM, "Failed to follow the journal");
        r = stream_open(c, instance, lines, &s->reader, e);
        if (r < 0)
                return r;
        r = stream_watch(s, event);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to watch the journal");
        *ret = TAKE_PTR(s);
        return 0;
}
