/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A post-receive hook's stdin: ref names come from the pusher. Whatever is
 * accepted names only clean refs and a 40-hex commit for the deployed one. */

#include <stdint.h>
#include <stdlib.h>

#include "clients/push.h"
#include "base/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ref(const char *ref) {
        for (const char *c = ref; *c; c++)
                if ((unsigned char) *c <= 0x20 || *c == 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapPush p;
        if (nap_push_parse((const char *) data, size, "refs/heads/main", &p, NULL) < 0)
                return 0;
        if (p.ref[0] && (strlen(p.commit) != 40 || !(streq(p.ref, "refs/heads/main") || streq(p.ref, "refs/heads/master"))))
                abort();
        STRV_FOREACH(r, p.ignored)
                check_ref(*r);
        nap_push_done(&p);
        return 0;
}
