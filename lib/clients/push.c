/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>

#include "clients/fetch-commit.h"
#include "clients/push.h"
#include "base/strv.h"

static const char zero_commit[] = "0000000000000000000000000000000000000000";

void nap_push_done(NapPush *p) {
        assert(p);

        strv_free(p->ignored);
        *p = (NapPush) {};
}

static bool ref_is_deployed(const char *ref) {
        return streq(ref, "refs/heads/main") || streq(ref, "refs/heads/master");
}

static bool ref_is_clean(const char *ref) {
        for (const char *c = ref; *c; c++)
                if ((unsigned char) *c <= 0x20 || *c == 0x7f)
                        return false;
        return *ref != 0;
}

/* Splits "OLD NEW REF" (single spaces, as git writes it) into its fields. */
static int split_line(const char *line, size_t n, char old[static 41], char new[static 41],
                      char ref[static NAP_PUSH_REF_MAX + 1]) {
        if (n < 82 || line[40] != ' ' || line[81] != ' ' || n - 82 > NAP_PUSH_REF_MAX)
                return -EBADMSG;
        memcpy(old, line, 40);
        old[40] = 0;
        memcpy(new, line + 41, 40);
        new[40] = 0;
        memcpy(ref, line + 82, n - 82);
        ref[n - 82] = 0;
        return (nap_commit_is_valid(old) || streq(old, zero_commit)) &&
                               (nap_commit_is_valid(new) || streq(new, zero_commit)) && ref_is_clean(ref) ?
                       0 :
                       -EBADMSG;
}

static int take_line(const char *line, size_t n, const char *head, NapPush *p) {
        char old[41], new[41], ref[NAP_PUSH_REF_MAX + 1];
        int r = split_line(line, n, old, new, ref);
        if (r < 0)
                return r;
        if (!ref_is_deployed(ref))
                return strv_extend(&p->ignored, ref);
        if (p->ref[0] && !streq(ref, head))
                return 0;
        snprintf(p->ref, sizeof p->ref, "%s", ref);
        memcpy(p->commit, new, sizeof p->commit);
        p->deleted = streq(new, zero_commit);
        return 0;
}

int nap_push_parse(const char *text, size_t size, const char *head, NapPush *ret, NapError *e) {
        NapPush p = {};

        assert(text || size == 0);
        assert(head);
        assert(ret);

        if (size > NAP_PUSH_INPUT_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EMSGSIZE, "The hook's input is too big");
        for (size_t i = 0; i < size;) {
                const char *nl = memchr(text + i, '\n', size - i);
                size_t n = (nl ? (size_t) (nl - text) : size) - i;
                int r = memchr(text + i, 0, n) ? -EBADMSG : take_line(text + i, n, head, &p);
                if (r < 0) {
                        nap_push_done(&p);
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r,
                                             "Cannot read what was pushed (expected \"OLD NEW REF\" lines)");
                }
                i += n + 1;
        }
        *ret = p;
        return 0;
}
