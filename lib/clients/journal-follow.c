/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdio.h>
#include <systemd/sd-journal.h>

#include "clients/journal-follow.h"

#define FOLLOW_LINES_MAX 10000

struct NapJournalFollow {
        sd_journal *journal;
};

/* ---- following ---- */

/* So that the next sd_journal_next() returns the first of the last n
 * entries: one entry before them, or before the first entry when there
 * are n or fewer. */
static int position(sd_journal *j, size_t n) {
        int r = sd_journal_seek_tail(j);
        if (r < 0)
                return r;
        r = sd_journal_previous_skip(j, (uint64_t) n + 1);
        if (r < 0)
                return r;
        return (size_t) r < n + 1 ? sd_journal_seek_head(j) : 0;
}

int nap_journal_follow_new(NapScope scope, const char *unit, size_t lines, NapJournalFollow **ret, NapError *e) {
        _cleanup_(sd_journal_closep) sd_journal *j = NULL;
        int r;

        assert(ret);

        if (scope != NAP_SCOPE_SYSTEM && scope != NAP_SCOPE_USER)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid scope %d", (int) scope);
        if (!nap_journal_unit_name_is_plausible(unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid unit name for the journal");
        if (lines > FOLLOW_LINES_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                     "Too many journal lines requested: %zu (at most %d)", lines, FOLLOW_LINES_MAX);

        /* Local files of every user, as journal.c: with SplitMode=uid a
         * system unit's output may be in its User='s files. */
        r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r, "Failed to open the journal: %s", strerror(-r));
        /* The inotify watches go in now, before anything is read, so no
         * entry written between reading and waiting is missed
         * (sd_journal_get_fd(3)). */
        r = sd_journal_get_fd(j);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to watch the journal");
        (void) sd_journal_set_data_threshold(j, NAP_JOURNAL_MESSAGE_MAX + sizeof "MESSAGE=");
        r = nap_journal_add_unit_matches(j, scope, unit);
        if (r >= 0)
                r = position(j, lines);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read the journal of unit '%s'", unit);

        NapJournalFollow *f = calloc(1, sizeof *f);
        if (!f)
                return nap_error_errno(e, -ENOMEM, "Failed to follow the journal");
        f->journal = TAKE_PTR(j);
        *ret = f;
        return 0;
}

NapJournalFollow *nap_journal_follow_free(NapJournalFollow *f) {
        if (!f)
                return NULL;
        sd_journal_close(f->journal);
        free(f);
        return NULL;
}

int nap_journal_follow_next(NapJournalFollow *f, NapJournalEntry *ret) {
        int r;

        if (!f || !ret)
                return -EINVAL;
        /* An entry that cannot be read (corrupt, vanished with its file) is
         * skipped, as journalctl does; a failure to move is the caller's. */
        while ((r = sd_journal_next(f->journal)) > 0) {
                r = nap_journal_read_entry(f->journal, ret);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0)
                        return 1;
        }
        return r;
}

int nap_journal_follow_get_fd(NapJournalFollow *f) {
        return f ? sd_journal_get_fd(f->journal) : -EINVAL;
}

int nap_journal_follow_get_events(NapJournalFollow *f) {
        return f ? sd_journal_get_events(f->journal) : -EINVAL;
}

int nap_journal_follow_get_timeout(NapJournalFollow *f, uint64_t *ret) {
        return f && ret ? sd_journal_get_timeout(f->journal, ret) : -EINVAL;
}

int nap_journal_follow_process(NapJournalFollow *f) {
        return f ? sd_journal_process(f->journal) : -EINVAL;
}
