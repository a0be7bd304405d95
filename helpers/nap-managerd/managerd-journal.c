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

#include "managerd.h"
#include "ops/journal-stream.h"

#define FOLLOWS_MAX 64U   /* each holds an open journal: one fd per journal file */

struct Follow {
        Manager *manager;
        Follow *next, *prev;
        Varlink *link;
        NapJournalStream *stream;
};

/* Safe from within the stream's callbacks (journal-stream.h). */
static void follow_free(Follow *f) {
        Manager *m = f->manager;
        if (f->prev)
                f->prev->next = f->next;
        else
                m->follows = f->next;
        if (f->next)
                f->next->prev = f->prev;
        m->n_follows--;
        nap_journal_stream_free(f->stream);
        varlink_unref(f->link);
        free(f);
}

static int follow_reply(json_t *reply, void *userdata) {
        Follow *f = userdata;
        return manager_varlink_reply(f->manager, f->link, "GetJournal", reply, true);
}

/* A follow that cannot go on. */
static void follow_end(int r, void *userdata) {
        Follow *f = userdata;
        _cleanup_(varlink_unrefp) Varlink *link = varlink_ref(f->link);
        Manager *m = f->manager;

        follow_free(f);
        if (r == -ENOTCONN)
                return; /* the client hung up */
        if (r == -ENOBUFS) {
                log_warning("A client following a log does not read its replies; dropping it");
                (void) varlink_close(link);
                return;
        }
        log_error_errno(r, "Failed to follow the journal: %m");
        (void) manager_varlink_error(m, link, method_find("GetJournal"), NULL, "Internal",
                                     "Failed to follow the journal");
}

int journal_follow_start(Manager *m, Varlink *link, json_t *args) {
        const char *instance = json_string_value(json_object_get(args, "instance"));
        const Method *method = method_find("GetJournal");
        NapError e = NAP_ERROR_NULL;
        size_t lines;

        if (m->n_follows >= FOLLOWS_MAX)
                return manager_varlink_error(m, link, method, args, "NotAvailable",
                                             "Too many logs are being followed; try again later");
        Follow *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        int r = method_journal_lines(args, &lines, &e);
        if (r >= 0)
                r = nap_journal_stream_new(m->context, instance, lines, m->event, follow_reply, follow_end, f,
                                           &f->stream, &e);
        if (r < 0) {
                free(f);
                return manager_varlink_error(m, link, method, args, nap_error_kind_to_string(e.kind), e.message);
        }
        *f = (Follow) { .manager = m, .link = varlink_ref(link), .stream = f->stream, .next = m->follows };
        if (f->next)
                f->next->prev = f;
        m->follows = f;
        m->n_follows++;
        return 0; /* replies come from the stream, on later iterations of the loop */
}

void journal_follow_drop(Manager *m, Varlink *link) {
        for (Follow *f = m->follows, *next; f; f = next) {
                next = f->next;
                if (f->link == link)
                        follow_free(f);
        }
}

void journal_follow_free_all(Manager *m) {
        while (m->follows)
                follow_free(m->follows);
}
