/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* GetJournal with "more": the last lines in a first reply, then every new
 * line in a reply of its own, until the client hangs up.
 *
 * This runs in the event loop, not in a worker, because it never ends by
 * itself and only waits: the journal's inotify fd is one more io source.
 * Reading is cut into batches of FOLLOW_BATCH entries on an idle-priority
 * defer source, so a follow with thousands of lines to catch up yields to
 * every other client between batches. Replies are queued on the link;
 * a client that stops reading fills its queue (VARLINK_OUTPUT_MAX) and is
 * dropped, never waited for. */

#include "../common/log.h"
#include "clients/journal-follow.h"
#include "follow.h"

#define FOLLOWS_MAX 64U   /* each holds an open journal: one fd per journal file */
#define FOLLOW_BATCH 256U

typedef struct Follow Follow;

struct Follows {
        sd_event *event;
        NapContext *context;
        Follow *list;
        unsigned n;
};

struct Follow {
        Follows *owner;
        Follow *next, *prev;
        Varlink *link;
        NapJournalFollow *reader;
        sd_event_source *io_source, *time_source, *defer_source;
        json_t *initial; /* the entries of the first reply, until it is sent */
        size_t initial_left;
};

static void follow_free(Follow *f) {
        Follows *o = f->owner;
        if (f->prev)
                f->prev->next = f->next;
        else
                o->list = f->next;
        if (f->next)
                f->next->prev = f->prev;
        o->n--;
        sd_event_source_disable_unref(f->io_source);
        sd_event_source_disable_unref(f->time_source);
        sd_event_source_disable_unref(f->defer_source);
        nap_journal_follow_free(f->reader);
        json_decref(f->initial);
        varlink_unref(f->link);
        free(f);
}

/* Ends a follow that cannot go on. Always 0: an event source returning an
 * error would be disabled by sd-event, and this one is gone anyway. */
static int follow_end(Follow *f, int r) {
        _cleanup_(varlink_unrefp) Varlink *link = varlink_ref(f->link);

        follow_free(f);
        if (r == -ENOTCONN)
                return 0; /* the client hung up */
        if (r == -ENOBUFS) {
                log_warning("A client following a log does not read its replies; dropping it");
                (void) varlink_close(link);
                return 0;
        }
        log_error_errno(r, "Failed to follow the journal: %m");
        (void) varlink_errorf(link, NAP_MANAGER_INTERFACE ".Internal", "{s:s}", "message",
                              "Failed to follow the journal");
        return 0;
}

static int follow_send_initial(Follow *f) {
        json_auto_t *p = json_pack("{s:o}", "entries", f->initial);
        f->initial = NULL; /* taken by p, even when packing failed */
        return p ? varlink_notify(f->link, p) : -ENOMEM;
}

static int follow_add(Follow *f, const NapJournalEntry *entry) {
        json_auto_t *j = nap_journal_entry_json(entry);
        int r;

        if (!j)
                return -ENOMEM;
        if (f->initial && f->initial_left == 0 && (r = follow_send_initial(f)) < 0)
                return r;
        if (f->initial) {
                f->initial_left--;
                return json_array_append(f->initial, j) < 0 ? -ENOMEM : 0;
        }
        json_auto_t *p = json_pack("{s:[O]}", "entries", j);
        return p ? varlink_notify(f->link, p) : -ENOMEM;
}

/* What the journal asks for besides its fd: a time to look anyway. */
static int follow_arm_timeout(Follow *f) {
        uint64_t t = UINT64_MAX;
        int r = nap_journal_follow_get_timeout(f->reader, &t);
        if (r < 0)
                return r;
        if (t == UINT64_MAX)
                return sd_event_source_set_enabled(f->time_source, SD_EVENT_OFF);
        r = sd_event_source_set_time(f->time_source, t);
        return r < 0 ? r : sd_event_source_set_enabled(f->time_source, SD_EVENT_ONESHOT);
}

static int follow_pump(sd_event_source *s, void *userdata) {
        Follow *f = userdata;
        unsigned i;
        int r;

        for (i = 0; i < FOLLOW_BATCH; i++) {
                NapJournalEntry entry = { .priority = -1 };
                r = nap_journal_follow_next(f->reader, &entry);
                if (r < 0)
                        return follow_end(f, r);
                if (r == 0)
                        break;
                r = follow_add(f, &entry);
                nap_journal_entry_clear(&entry);
                if (r < 0)
                        return follow_end(f, r);
        }
        if (i == FOLLOW_BATCH)
                return 0; /* maybe more to read: again on a later iteration */
        /* Caught up: the first reply goes now even if short or empty, so
         * the client knows the follow is running. */
        if (f->initial && (r = follow_send_initial(f)) < 0)
                return follow_end(f, r);
        r = sd_event_source_set_enabled(f->defer_source, SD_EVENT_OFF);
        if (r >= 0)
                r = follow_arm_timeout(f);
        return r < 0 ? follow_end(f, r) : 0;
}

static int follow_wake(Follow *f) {
        int r = nap_journal_follow_process(f->reader);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->defer_source, SD_EVENT_ON);
        return r < 0 ? follow_end(f, r) : 0;
}

static int follow_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return follow_wake(userdata);
}

static int follow_time(sd_event_source *s, uint64_t usec, void *userdata) {
        return follow_wake(userdata);
}

static int follow_sources(Follows *o, Follow *f) {
        int fd = nap_journal_follow_get_fd(f->reader);
        int events = nap_journal_follow_get_events(f->reader);
        int r = fd < 0 ? fd : events < 0 ? events : 0;

        if (r >= 0)
                r = sd_event_add_io(o->event, &f->io_source, fd, (uint32_t) events, follow_io, f);
        if (r >= 0)
                r = sd_event_add_time(o->event, &f->time_source, CLOCK_MONOTONIC, UINT64_MAX, 0, follow_time, f);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->time_source, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_defer(o->event, &f->defer_source, follow_pump, f);
        if (r >= 0)
                r = sd_event_source_set_priority(f->defer_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->defer_source, SD_EVENT_ON);
        return r;
}

/* The reader for the instance of args: checks the instance exists the way
 * every other method does (ops), then opens the journal at its unit. */
static int follow_open(Follows *o, json_t *args, size_t *ret_lines, NapJournalFollow **ret, NapError *e) {
        const char *instance = json_string_value(json_object_get(args, "instance"));
        char unit[NAP_UNIT_NAME_MAX];
        NapJournalEntry *none = NULL;
        size_t n = 0;
        NapInstance i;

        int r = nap_method_journal_lines(args, ret_lines, e);
        if (r >= 0)
                r = nap_get_journal(o->context, instance, 0, &none, &n, e); /* 0 lines: only the checks */
        nap_journal_entry_array_free(none, n);
        if (r >= 0)
                r = nap_instance_parse(instance, &i, e);
        if (r < 0)
                return r;
        return nap_journal_follow_new(o->context->scope, nap_instance_unit_name(&i, unit), *ret_lines, ret, e);
}

int follows_start(Follows *o, Varlink *link, json_t *args, NapError *e) {
        size_t lines;

        assert(o);
        if (o->n >= FOLLOWS_MAX)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                                     "Too many logs are being followed; try again later");
        _cleanup_(nap_journal_follow_freep) NapJournalFollow *reader = NULL;
        int r = follow_open(o, args, &lines, &reader, e);
        if (r < 0)
                return r;

        Follow *f = calloc(1, sizeof *f);
        json_t *initial = json_array();
        if (!f || !initial) {
                free(f);
                json_decref(initial);
                return nap_error_errno(e, -ENOMEM, "Failed to follow the journal");
        }
        *f = (Follow) { .owner = o, .link = varlink_ref(link), .reader = TAKE_PTR(reader), .initial = initial,
                        .initial_left = lines, .next = o->list };
        if (f->next)
                f->next->prev = f;
        o->list = f;
        o->n++;
        r = follow_sources(o, f);
        if (r < 0) {
                follow_free(f);
                return nap_error_errno(e, r, "Failed to watch the journal");
        }
        return 0; /* replies come from follow_pump() */
}

void follows_drop(Follows *o, Varlink *link) {
        for (Follow *f = o ? o->list : NULL, *next; f; f = next) {
                next = f->next;
                if (f->link == link)
                        follow_free(f);
        }
}

int follows_new(sd_event *event, NapContext *context, Follows **ret) {
        assert(ret);
        Follows *o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        *o = (Follows) { .event = event, .context = context };
        *ret = o;
        return 0;
}

Follows *follows_free(Follows *o) {
        if (!o)
                return NULL;
        while (o->list)
                follow_free(o->list);
        free(o);
        return NULL;
}
