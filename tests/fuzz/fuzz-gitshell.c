/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* $SSH_ORIGINAL_COMMAND parser (nap-git-shell): never crashes or reads past
 * size; what it accepts is one of the two commands and a valid app name,
 * and the canonical form of that command parses back to the same; what it
 * refuses comes with a named error and a one-line message free of control
 * characters (it goes to the client's terminal). */

#include <stdint.h>
#include <stdio.h>

#include "clients/gitshell.h"

static void check_message(const NapError *e) {
        if (!e->message[0])
                abort();
        for (const char *p = e->message; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapGitCommand c = {}, again = {};
        NapError e = NAP_ERROR_NULL;

        int r = nap_git_command_parse((const char *) data, size, &c, &e);
        if (r < 0) {
                if ((r == -EPERM) != (e.kind == NAP_ERROR_PERMISSION_DENIED) ||
                    (r == -EINVAL) != (e.kind == NAP_ERROR_INVALID_NAME) || (r != -EPERM && r != -EINVAL))
                        abort();
                check_message(&e);
                return 0;
        }
        if (nap_error_is_set(&e) || !nap_app_is_valid(c.app) || !nap_git_verb_to_string(c.verb))
                abort();
        if (size < strlen(c.app) + strlen("git-upload-pack "))
                abort();

        char canonical[NAP_GIT_COMMAND_MAX + 1];
        int n = snprintf(canonical, sizeof canonical, "%s '%s'", nap_git_verb_to_string(c.verb), c.app);
        if (n < 0 || (size_t) n >= sizeof canonical)
                abort();
        if (nap_git_command_parse(canonical, n, &again, NULL) < 0 || again.verb != c.verb ||
            !streq(again.app, c.app))
                abort();
        return 0;
}
