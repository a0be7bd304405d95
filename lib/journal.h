/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A unit's log through sd-journal. */

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

typedef struct NapJournalEntry {
        uint64_t realtime_usec;
        char *message;      /* control characters other than \t, and bytes that are not valid
                             * UTF-8, replaced by '?'; at most 64 KiB, never a split character */
        int priority;       /* -1 when unknown */
        char *identifier;   /* SYSLOG_IDENTIFIER or _COMM, may be NULL */
        unsigned pid;       /* 0 when unknown */
} NapJournalEntry;

void nap_journal_entry_array_free(NapJournalEntry *a, size_t n);

/* The last n entries of unit (its own output and the manager's messages
 * about it), oldest first. */
int nap_journal_tail(NapScope scope, const char *unit, size_t n, NapJournalEntry **ret, size_t *ret_n, NapError *e);
