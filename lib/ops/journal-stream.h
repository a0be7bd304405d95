/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* GetJournal with varlink's "more", once for every adapter: the last lines
 * of an instance's log in a first reply, then every new line in a reply of
 * its own, for as long as the owner keeps the stream (journalctl -f -n N).
 *
 * The stream lives in the owner's sd-event loop and never blocks it: the
 * journal's inotify fd is an io source, its deadline a time source, and
 * reading is cut into batches of NAP_JOURNAL_STREAM_BATCH entries on an
 * idle-priority defer source, so a stream with thousands of lines to catch
 * up lets every other source of the loop run between batches. */

#include <jansson.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "clients/journal.h"
#include "ops/ops.h"

#define NAP_JOURNAL_STREAM_BATCH 256U

typedef struct NapJournalStream NapJournalStream;

/* Every reply to send: {"entries": [JournalEntry…]}, borrowed. A negative
 * return ends the stream: end() is then called with it. */
typedef int (*NapJournalStreamReplyFn)(json_t *reply, void *userdata);
/* Called once when the stream cannot go on: r is the reply function's
 * error, or why reading the journal failed. Nothing is sent after it; the
 * owner still frees the stream, and may do so from within end(). */
typedef void (*NapJournalStreamEndFn)(int r, void *userdata);

/* Checks instance as every operation does (it must exist), opens its
 * unit's journal and attaches to event. Nothing is sent from here: the
 * first reply (the last `lines` entries at most, maybe none) goes once the
 * stream has caught up with the journal, then one reply per new entry. */
int nap_journal_stream_new(NapContext *c, const char *instance, size_t lines, sd_event *event,
                           NapJournalStreamReplyFn reply, NapJournalStreamEndFn end, void *userdata,
                           NapJournalStream **ret, NapError *e);
/* Safe from within reply() and end(): nothing is called after it. */
NapJournalStream *nap_journal_stream_free(NapJournalStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapJournalStream *, nap_journal_stream_free);

/* The JournalEntry type of io.nap.Manager: time, message, priority,
 * identifier, pid. NULL on OOM. */
json_t *nap_journal_entry_json(const NapJournalEntry *j);
