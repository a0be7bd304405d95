/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* GetJournal with "more": the last lines in a first reply, then every new
 * line in a reply of its own, until the client hangs up.
 *
 * The stream (lib/ops/journal-stream.h) runs in the event loop, not in a
 * worker, because it never ends by itself and only waits; it yields to
 * every other client between batches. What is nap-managerd's is here: the
 * follows of each link, and their replies, queued on the link: a client
 * that stops reading fills its queue (VARLINK_OUTPUT_MAX) and is dropped,
 * never waited for. */

#include "../common/log.h"
#include "follow.h"
#include "link-list.h"
#include "ops/journal-stream.h"

#define FOLLOWS_MAX 64U /* each holds an open journal: one fd per journal file */

typedef struct Follow Follow;

struct Follows {
        sd_event *event;
        NapContext *context;
        LinkList list;
};

struct Follow {
        LinkEntry entry; /* first: see link-list.h */
        Follows *owner;
        NapJournalStream *stream;
};

/* Safe from within the stream's callbacks (journal-stream.h). */
static void follow_free(Follow *f) {
        nap_journal_stream_free(f->stream);
        link_list_remove(&f->owner->list, &f->entry);
        free(f);
}

static void follow_done(LinkEntry *entry) {
        follow_free((Follow *) entry);
}

static int follow_reply(json_t *reply, void *userdata) {
        Follow *f = userdata;
        return varlink_notify(f->entry.link, reply);
}

/* A follow that cannot go on. */
static void follow_end(int r, void *userdata) {
        Follow *f = userdata;
        _cleanup_(varlink_unrefp) Varlink *link = varlink_ref(f->entry.link);

        follow_free(f);
        if (r == -ENOTCONN)
                return; /* the client hung up */
        if (r == -ENOBUFS) {
                log_warning("A client following a log does not read its replies; dropping it");
                (void) varlink_close(link);
                return;
        }
        log_error_errno(r, "Failed to follow the journal: %m");
        (void) varlink_errorf(link, NAP_MANAGER_INTERFACE ".Internal", "{s:s}", "message",
                              "Failed to follow the journal");
}

int follows_start(Follows *o, Varlink *link, json_t *args, NapError *e) {
        const char *instance = json_string_value(json_object_get(args, "instance"));
        size_t lines;

        assert(o);
        if (o->list.n >= FOLLOWS_MAX)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                                     "Too many logs are being followed; try again later");
        Follow *f = calloc(1, sizeof *f);
        if (!f)
                return nap_error_errno(e, -ENOMEM, "Failed to follow the journal");
        int r = nap_method_journal_lines(args, &lines, e);
        if (r >= 0)
                r = nap_journal_stream_new(o->context, instance, lines, o->event, follow_reply, follow_end, f,
                                           &f->stream, e);
        if (r < 0)
                return free(f), r;
        f->owner = o;
        link_list_add(&o->list, &f->entry, link);
        return 0; /* replies come from the stream, on later iterations of the loop */
}

void follows_drop(Follows *o, Varlink *link) {
        if (o)
                link_list_drop(&o->list, link, follow_done);
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
        link_list_drop(&o->list, NULL, follow_done);
        free(o);
        return NULL;
}
