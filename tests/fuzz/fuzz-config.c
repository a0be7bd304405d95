/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap.conf parser: never crashes, leaks or reads past size; a file it
 * accepts yields a configuration within the documented bounds, and a
 * file it refuses yields an InvalidConfig error with a message. */

#include <stdint.h>

#include "model/config.h"
#include "base/strv.h"

static void count(void *userdata, const char *message) {
        if (!*message)
                abort();
        (*(unsigned *) userdata)++;
}

static void check(const NapConfig *c) {
        if (c->root[0] != '/' || c->instances_dir[0] != '/')
                abort();
        if (!nap_scope_to_string(c->scope))
                abort();
        if (c->host && !*c->host)
                abort();
        if (c->port_min < 1024 || c->port_min > c->port_max || c->port_max > 65535)
                abort();
        if (c->discovery_ttl < 2 || c->discovery_ttl > 3600)
                abort();
        STRV_FOREACH(u, c->etcd)
                if (!startswith(*u, "http://") && !startswith(*u, "https://"))
                        abort();
        if (c->etcd && !c->etcd[0])
                abort(); /* empty list must be NULL */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        unsigned warnings = 0;

        if (nap_config_new_default(&c) < 0)
                return 0;
        int r = nap_config_parse(c, (const char *) data, size, "fuzz.conf", count, &warnings, &e);
        if (r < 0) {
                if (r != -ENOMEM && (e.kind != NAP_ERROR_INVALID_CONFIG || !e.message[0]))
                        abort();
                return 0;
        }
        if (nap_error_is_set(&e))
                abort();
        check(c);
        return 0;
}
