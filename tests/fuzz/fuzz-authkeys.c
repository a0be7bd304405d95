/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* authorized_keys and public key parsers (napctl keys): never crash or read
 * past size. A file parses, formats and parses again to the same lines
 * (nothing of a line nap did not write is lost or changed); nap's lines
 * carry a valid user, forced command and fingerprint. The input's first
 * line is also tried as a public key: if accepted, adding it yields a line
 * that reads back as nap's, and removing it by fingerprint takes it out. */

#include <stdint.h>

#include "model/authkeys.h"
#include "model/names.h"

#define SHELL "/usr/libexec/nap/nap-git-shell"

static void check_fingerprint(const char *fp) {
        if (strlen(fp) != 50 || !startswith(fp, "SHA256:") || strchr(fp, '='))
                abort();
}

static void check_lines(const NapAuthKeys *k) {
        for (size_t i = 0; i < k->n; i++) {
                const NapAuthKeyLine *l = k->lines + i;
                if (strchr(l->text, '\n') || (l->user && (!nap_user_is_valid(l->user) || !l->git_shell || !l->key.type)))
                        abort();
                if (l->key.type)
                        check_fingerprint(l->key.fingerprint);
                for (const char *c = l->user ? strempty(l->key.comment) : ""; *c; c++)
                        if ((unsigned char) *c < 0x20 || *c == 0x7f)
                                abort();
        }
}

/* format → parse → format is stable and keeps every line. */
static char *round_trip(const NapAuthKeys *k) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *again = NULL;
        _cleanup_free_ char *second = NULL;
        char *text = NULL;
        size_t n, m;

        if (nap_authkeys_format(k, &text, &n) < 0)
                abort();
        if (nap_authkeys_parse(text, n, &again, NULL) < 0 || again->n != k->n)
                abort();
        for (size_t i = 0; i < k->n; i++)
                if (!streq(k->lines[i].text, again->lines[i].text) ||
                    !streq(strempty(k->lines[i].user), strempty(again->lines[i].user)) ||
                    !streq(k->lines[i].key.fingerprint, again->lines[i].key.fingerprint))
                        abort();
        if (nap_authkeys_format(again, &second, &m) < 0 || m != n || memcmp(text, second, n) != 0)
                abort();
        return text;
}

static void try_key(NapAuthKeys *k, const char *data, size_t size) {
        const char *nl = memchr(data, '\n', size);
        NapPubKey key = {};
        NapError e = NAP_ERROR_NULL;

        if (nap_pubkey_parse(data, nl ? (size_t) (nl - data + 1) : size, &key, &e) < 0) {
                if (e.kind != NAP_ERROR_INVALID_PARAMETER || !e.message[0])
                        abort();
                return;
        }
        check_fingerprint(key.fingerprint);
        e = NAP_ERROR_NULL;
        int r = nap_authkeys_add_key(k, SHELL, "fuzz", &key, &e);
        if (r == 1) {
                const NapAuthKeyLine *l = k->lines + k->n - 1;
                if (!l->user || !streq(l->user, "fuzz") || !streq(l->key.fingerprint, key.fingerprint))
                        abort();
                free(round_trip(k));
                if (nap_authkeys_remove_key(k, "fuzz", key.fingerprint) < 1)
                        abort();
        } else if (r != 0 && r != -EEXIST && r != -ENOMEM)
                abort();
        nap_pubkey_done(&key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = NULL;
        NapError e = NAP_ERROR_NULL;

        int r = nap_authkeys_parse((const char *) data, size, &k, &e);
        if (r < 0) {
                if ((r != -EINVAL && r != -EFBIG && r != -ENOMEM) || !e.message[0])
                        abort();
                return 0;
        }
        check_lines(k);
        free(round_trip(k));
        try_key(k, (const char *) data, size);
        return 0;
}
