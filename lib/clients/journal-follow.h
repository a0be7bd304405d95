/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Following a unit's log without blocking: the last N entries, then every
 * new one, read a few at a time from an event loop (journalctl -f -n N).
 *
 *   nap_journal_follow_new()        open, position before the last N entries
 *   loop: while (nap_journal_follow_next() > 0) send the entry;
 *         poll nap_journal_follow_get_fd() for get_events(), with
 *         get_timeout() as the deadline; then nap_journal_follow_process()
 *
 * The entries are the ones nap_journal_tail() (journal.h) shows for the
 * unit: the same matches, the same sanitized fields. Nothing logs. */

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "base/error.h"
#include "clients/journal.h"

typedef struct NapJournalFollow NapJournalFollow;

int nap_journal_follow_new(NapScope scope, const char *unit, size_t lines, NapJournalFollow **ret, NapError *e);
NapJournalFollow *nap_journal_follow_free(NapJournalFollow *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapJournalFollow *, nap_journal_follow_free);

/* The next entry, oldest first: 1 with *ret filled (clear it with
 * nap_journal_entry_clear()), 0 if there is none yet, < 0 on failure. */
int nap_journal_follow_next(NapJournalFollow *f, NapJournalEntry *ret);

/* What to wait for before the next nap_journal_follow_next() after it
 * returned 0: the fd (inotify) and its poll events, and a CLOCK_MONOTONIC
 * deadline in µs (UINT64_MAX: none) after which to look anyway. */
int nap_journal_follow_get_fd(NapJournalFollow *f);
int nap_journal_follow_get_events(NapJournalFollow *f);
int nap_journal_follow_get_timeout(NapJournalFollow *f, uint64_t *ret);
/* After the fd woke or the deadline passed: lets the journal pick up new
 * files and entries. */
int nap_journal_follow_process(NapJournalFollow *f);

