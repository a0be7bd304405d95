/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A unit's log through sd-journal. */

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-journal.h>

#include "model/config.h"
#include "base/error.h"

typedef struct NapJournalEntry {
        uint64_t realtime_usec;
        char *message;      /* control characters other than \t, and bytes that are not valid
                             * UTF-8, replaced by '?'; at most 64 KiB, never a split character */
        int priority;       /* -1 when unknown */
        char *identifier;   /* SYSLOG_IDENTIFIER or _COMM, may be NULL */
        unsigned pid;       /* 0 when unknown */
} NapJournalEntry;

#define NAP_JOURNAL_MESSAGE_MAX (64 * 1024)

void nap_journal_entry_clear(NapJournalEntry *e);
void nap_journal_entry_array_free(NapJournalEntry *a, size_t n);

/* The pieces nap_journal_tail() and journal-follow.h share, so both show a
 * unit the same way: the characters systemd allows in unit names; the
 * matches of journalctl -u (system) or --user-unit (user); one entry with
 * its fields sanitized. */
bool nap_journal_unit_name_is_plausible(const char *unit) _pure_;
int nap_journal_add_unit_matches(sd_journal *j, NapScope scope, const char *unit);
int nap_journal_read_entry(sd_journal *j, NapJournalEntry *ret);

/* The last n entries of unit (its own output and the manager's messages
 * about it), oldest first. */
int nap_journal_tail(NapScope scope, const char *unit, size_t n, NapJournalEntry **ret, size_t *ret_n, NapError *e);
