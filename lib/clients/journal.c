/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-journal.h>

#include "clients/journal.h"

#define JOURNAL_TAIL_MAX 10000
#define JOURNAL_MESSAGE_MAX NAP_JOURNAL_MESSAGE_MAX
#define JOURNAL_IDENTIFIER_MAX 256
#define UNIT_NAME_MAX 255
#define COREDUMP_MESSAGE_ID "fc2e22bc6ee647b6b90729ab34a250b1"

void nap_journal_entry_clear(NapJournalEntry *e) {
        assert(e);

        free(e->message);
        free(e->identifier);
        *e = (NapJournalEntry) { .priority = -1 };
}

void nap_journal_entry_array_free(NapJournalEntry *a, size_t n) {
        for (size_t i = 0; a && i < n; i++) {
                free(a[i].message);
                free(a[i].identifier);
        }
        free(a);
}

/* Only the characters systemd allows in unit names; the name goes into a
 * match and into our error messages. */
bool nap_journal_unit_name_is_plausible(const char *s) {
        size_t n = 0;

        if (isempty(s) || !strchr(s, '.'))
                return false;
        for (const char *p = s; *p; p++, n++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr(":-_.\\@", *p)))
                        return false;
        return n <= UNIT_NAME_MAX;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if there is none. */
static size_t utf8_sequence_length(const uint8_t *p, size_t n) {
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                len = 3;
                lo = p[0] == 0xe0 ? 0xa0 : 0x80; /* overlong */
                hi = p[0] == 0xed ? 0x9f : 0xbf; /* surrogates */
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                len = 4;
                lo = p[0] == 0xf0 ? 0x90 : 0x80; /* overlong */
                hi = p[0] == 0xf4 ? 0x8f : 0xbf; /* > U+10FFFF */
        } else
                return 0;

        if (len > n || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return len;
}

/* A copy of at most max bytes of data, made safe to show and to put into
 * JSON: C0/C1 control characters and DEL (tab excepted) and bytes that are
 * not valid UTF-8 become '?'. Never cuts a character in half. */
static char *sanitize(const void *data, size_t size, size_t max) {
        const uint8_t *p = data;
        size_t n = MIN(size, max), i = 0, o = 0;
        char *s = malloc(n + 1);

        if (!s)
                return NULL;
        while (i < n) {
                size_t len = utf8_sequence_length(p + i, n - i);
                bool control = len == 1 ? (p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f
                                        : len == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0;
                if (len == 0 && utf8_sequence_length(p + i, size - i) > n - i)
                        break; /* a character cut by the cap: drop it */
                if (len == 0 || control) {
                        s[o++] = '?';
                        i += len == 0 ? 1 : len;
                        continue;
                }
                memcpy(s + o, p + i, len);
                o += len;
                i += len;
        }
        s[o] = 0;
        return s;
}

/* The value of field in the current entry; -ENOENT if it has none. */
static int get_field(sd_journal *j, const char *field, const char **ret, size_t *ret_size) {
        size_t k = strlen(field), l;
        const void *d;
        int r;

        r = sd_journal_get_data(j, field, &d, &l);
        if (r < 0)
                return r;
        if (l < k + 1 || memcmp(d, field, k) != 0 || ((const char *) d)[k] != '=')
                return -EBADMSG;
        *ret = (const char *) d + k + 1;
        *ret_size = l - k - 1;
        return 0;
}

static unsigned parse_pid(const char *s, size_t n) {
        uint64_t v = 0;

        if (n == 0 || n > 10)
                return 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return 0;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        return v <= INT32_MAX ? (unsigned) v : 0;
}

int nap_journal_read_entry(sd_journal *j, NapJournalEntry *ret) {
        NapJournalEntry x = { .priority = -1 };
        const char *v;
        size_t n;
        int r;

        assert(j);
        assert(ret);

        r = sd_journal_get_realtime_usec(j, &x.realtime_usec);
        if (r < 0)
                return r;

        x.message = get_field(j, "MESSAGE", &v, &n) >= 0 ? sanitize(v, n, JOURNAL_MESSAGE_MAX) : strdup("");
        if (!x.message)
                return -ENOMEM;

        if (get_field(j, "PRIORITY", &v, &n) >= 0 && n == 1 && v[0] >= '0' && v[0] <= '7')
                x.priority = v[0] - '0';
        if (get_field(j, "_PID", &v, &n) >= 0)
                x.pid = parse_pid(v, n);
        if (get_field(j, "SYSLOG_IDENTIFIER", &v, &n) >= 0 || get_field(j, "_COMM", &v, &n) >= 0) {
                x.identifier = sanitize(v, n, JOURNAL_IDENTIFIER_MAX);
                if (!x.identifier) {
                        free(x.message);
                        return -ENOMEM;
                }
        }
        *ret = x;
        return 0;
}

/* What journalctl -u / --user-unit match (systemd's logs-show.c): each row
 * is one alternative whose terms must all hold; the same field twice in a
 * row means either value. A term ending in '=' takes the unit name, except
 * "_UID=", which takes our own uid. */
#define MATCH_TERMS_MAX 3
static const char *const system_unit_matches[][MATCH_TERMS_MAX] = {
        { "_SYSTEMD_UNIT=" },                                         /* its own output */
        { "_PID=1", "UNIT=" },                                        /* the manager about it */
        { "MESSAGE_ID=" COREDUMP_MESSAGE_ID, "_UID=0", "COREDUMP_UNIT=" },
        { "_UID=0", "OBJECT_SYSTEMD_UNIT=" },                         /* privileged daemons about it */
};
static const char *const user_unit_matches[][MATCH_TERMS_MAX] = {
        { "_SYSTEMD_USER_UNIT=", "_UID=" },
        { "USER_UNIT=", "_UID=" },
        { "COREDUMP_USER_UNIT=", "_UID=", "_UID=0" },
        { "OBJECT_SYSTEMD_USER_UNIT=", "_UID=", "_UID=0" },
};

static int add_term(sd_journal *j, const char *term, const char *unit) {
        char buf[64 + UNIT_NAME_MAX];
        size_t k = strlen(term);

        if (k == 0 || term[k - 1] != '=')
                return sd_journal_add_match(j, term, 0);
        if (streq(term, "_UID="))
                snprintf(buf, sizeof buf, "_UID=%u", (unsigned) getuid());
        else
                snprintf(buf, sizeof buf, "%s%s", term, unit);
        return sd_journal_add_match(j, buf, 0);
}

int nap_journal_add_unit_matches(sd_journal *j, NapScope scope, const char *unit) {
        const char *const (*rows)[MATCH_TERMS_MAX] = scope == NAP_SCOPE_USER ? user_unit_matches : system_unit_matches;
        size_t n_rows = scope == NAP_SCOPE_USER ? ELEMENTSOF(user_unit_matches) : ELEMENTSOF(system_unit_matches);
        int r;

        assert(j);
        assert(unit);

        for (size_t i = 0; i < n_rows; i++) {
                if (i > 0 && (r = sd_journal_add_disjunction(j)) < 0)
                        return r;
                for (size_t t = 0; t < MATCH_TERMS_MAX && rows[i][t]; t++)
                        if ((r = add_term(j, rows[i][t], unit)) < 0)
                                return r;
        }
        return 0;
}

/* Reads up to n matching entries backwards from the tail into a, newest
 * first; returns how many. */
static int read_backwards(sd_journal *j, NapJournalEntry *a, size_t n, size_t *ret_k) {
        size_t k = 0;
        int r;

        r = sd_journal_seek_tail(j);
        while (r >= 0 && k < n) {
                r = sd_journal_previous(j);
                if (r <= 0)
                        break;
                r = nap_journal_read_entry(j, &a[k]);
                if (r >= 0)
                        k++;
        }
        *ret_k = k;
        return r < 0 ? r : 0;
}

int nap_journal_tail(NapScope scope, const char *unit, size_t n, NapJournalEntry **ret, size_t *ret_n, NapError *e) {
        _cleanup_(sd_journal_closep) sd_journal *j = NULL;
        NapJournalEntry *a = NULL;
        size_t k = 0;
        int r;

        assert(ret);
        assert(ret_n);

        if (scope != NAP_SCOPE_SYSTEM && scope != NAP_SCOPE_USER)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid scope %d", (int) scope);
        if (!nap_journal_unit_name_is_plausible(unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid unit name for the journal");
        if (n > JOURNAL_TAIL_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                     "Too many journal lines requested: %zu (at most %d)", n, JOURNAL_TAIL_MAX);
        if (n == 0) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }

        /* Not SD_JOURNAL_SYSTEM: with SplitMode=uid, the output of a system
         * unit running as User= lands in that user's journal files. */
        r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r, "Failed to open the journal: %s", strerror(-r));
        /* A hint only (see sd_journal_set_data_threshold(3)); sanitize() caps for real. */
        (void) sd_journal_set_data_threshold(j, JOURNAL_MESSAGE_MAX + sizeof "MESSAGE=");

        r = nap_journal_add_unit_matches(j, scope, unit);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to add journal matches for unit '%s'", unit);

        a = calloc(n, sizeof *a);
        if (!a)
                return nap_error_errno(e, -ENOMEM, "Failed to read the journal of unit '%s'", unit);
        r = read_backwards(j, a, n, &k);
        if (r < 0) {
                nap_journal_entry_array_free(a, k);
                return nap_error_errno(e, r, "Failed to read the journal of unit '%s'", unit);
        }

        for (size_t i = 0; i < k / 2; i++) { /* oldest first */
                NapJournalEntry t = a[i];
                a[i] = a[k - 1 - i];
                a[k - 1 - i] = t;
        }
        *ret = a;
        *ret_n = k;
        return 0;
}
