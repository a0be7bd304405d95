/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* $SSH_ORIGINAL_COMMAND of another node's replica push (nap-git-shell
 * --replica): never crashes or reads past size; what it accepts is one
 * app's repository, whose canonical command parses back to the same; what
 * it refuses comes with a named error and a one-line message free of
 * control characters. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "clients/gitshell.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapService s = {}, again = {};
        NapError e = NAP_ERROR_NULL;
        char name[NAP_SERVICE_NAME_MAX], canonical[NAP_SERVICE_NAME_MAX + 32];

        int r = nap_git_replica_command_parse((const char *) data, size, &s, &e);
        if (r < 0) {
                if ((r == -EPERM) != (e.kind == NAP_ERROR_PERMISSION_DENIED) ||
                    (r == -EINVAL) != (e.kind == NAP_ERROR_INVALID_NAME) || (r != -EPERM && r != -EINVAL) ||
                    !e.message[0])
                        abort();
                for (const char *p = e.message; *p; p++)
                        if ((unsigned char) *p < 0x20 || *p == 0x7f)
                                abort();
                return 0;
        }
        snprintf(canonical, sizeof canonical, "git-receive-pack '%s.git'", nap_service_name(&s, name));
        if (nap_git_replica_command_parse(canonical, strlen(canonical), &again, NULL) < 0 ||
            memcmp(&s, &again, sizeof s) != 0)
                abort();
        return 0;
}
