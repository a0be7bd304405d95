/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl keys add|list|remove: a thin adapter over lib/model/authkeys.h. */

#include <jansson.h>

#include "model/authkeys.h"
#include "base/fileio.h"
#include "nap-config.h"
#include "napctl-output.h"
#include "verb-keys.h"

#define USAGE "usage: napctl keys add USER <KEY.pub | keys list [USER] | keys remove USER FINGERPRINT"

/* The forced command: $NAP_GIT_SHELL_BINARY for tests, else the installed one. */
static const char *git_shell(void) {
        const char *s = secure_getenv("NAP_GIT_SHELL_BINARY");
        return isempty(s) ? NAP_LIBEXECDIR "/nap-git-shell" : s;
}

static int keys_add(NapContext *c, const char *user, bool json, NapError *e) {
        _cleanup_free_ char *text = NULL;
        NapPubKey key = {};
        size_t size;
        bool added;

        if (isatty(STDIN_FILENO))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "napctl keys add reads the public key from stdin: napctl keys add %s "
                                     "<~/.ssh/id_ed25519.pub", user);
        int r = read_full_fd(STDIN_FILENO, NAP_AUTHKEY_LINE_MAX, &text, &size);
        if (r == -EFBIG)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r,
                                     "public key refused: longer than %d bytes", NAP_AUTHKEY_LINE_MAX);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read the public key from stdin");
        r = nap_authkeys_add(c->config->authorized_keys, git_shell(), user, text, size, &key, &added, e);
        if (r < 0)
                return r;
        if (json)
                r = output_json(json_pack("{s:s, s:s, s:s, s:s?, s:b}", "user", user, "type", key.type,
                                              "fingerprint", key.fingerprint, "comment", key.comment, "added", added));
        else if (added)
                printf("Added %s (%s) for %s\n", key.fingerprint, key.type, user);
        else
                printf("%s already has %s (%s), unchanged\n", user, key.fingerprint, key.type);
        nap_pubkey_done(&key);
        return r;
}

static int keys_list(NapContext *c, const char *user, bool json, NapError *e) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = NULL;

        if (user && !nap_user_is_valid(user))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "invalid user name: expected [a-z][a-z0-9-]{0,31}");
        int r = nap_authkeys_load(c->config->authorized_keys, &k, e);
        if (r < 0)
                return r;
        json_t *a = json ? json_array() : NULL;
        if (json && !a)
                return -ENOMEM;
        for (size_t i = 0; i < k->n; i++) {
                const NapAuthKeyLine *l = k->lines + i;
                if (!l->user || (user && !streq(user, l->user)))
                        continue;
                if (a)
                        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s?}", "user", l->user, "type",
                                                           l->key.type, "fingerprint", l->key.fingerprint, "comment",
                                                           l->key.comment));
                else
                        printf("%s\t%s\t%s\t%s\n", l->user, l->key.fingerprint, l->key.type, strempty(l->key.comment));
        }
        return a ? output_json(a) : 0;
}

static int keys_remove(NapContext *c, const char *user, const char *fingerprint, bool json, NapError *e) {
        int r = nap_authkeys_remove(c->config->authorized_keys, user, fingerprint, e);
        if (r < 0)
                return r;
        if (json)
                return output_json(json_pack("{s:s, s:s, s:b}", "user", user, "fingerprint", fingerprint,
                                                  "removed", true));
        printf("Removed %s for %s\n", fingerprint, user);
        return 0;
}

int verb_keys(NapContext *c, char **args, bool json, NapError *e) {
        size_t n = 0;
        while (args && args[n])
                n++;
        if (n == 2 && streq(args[0], "add"))
                return keys_add(c, args[1], json, e);
        if ((n == 1 || n == 2) && streq(args[0], "list"))
                return keys_list(c, args[1], json, e);
        if (n == 3 && streq(args[0], "remove"))
                return keys_remove(c, args[1], args[2], json, e);
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, USAGE);
}
