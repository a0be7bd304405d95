/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* unit-jobs start|stop UNIT...: nap_systemd_start_units() or
 * nap_systemd_stop_units() (lib/clients/systemd1.h) on the user bus, all
 * the units in one call. Prints "ok", or the error's kind and message;
 * exits 0 or 1. For tests/integration/test-unit-jobs.sh. */

#include <stdio.h>
#include <string.h>

#include "clients/systemd1.h"

int main(int argc, char *argv[]) {
        NapError e = NAP_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        if (argc < 3 || (strcmp(argv[1], "start") != 0 && strcmp(argv[1], "stop") != 0)) {
                fprintf(stderr, "usage: unit-jobs start|stop UNIT...\n");
                return 2;
        }
        r = nap_systemd_open(NAP_SCOPE_USER, &bus, &e);
        if (r >= 0)
                r = (strcmp(argv[1], "start") == 0 ? nap_systemd_start_units : nap_systemd_stop_units)(
                        bus, argv + 2, (size_t) (argc - 2), &e);
        if (r < 0)
                printf("%s: %s\n", nap_error_kind_to_string(e.kind), e.message);
        else
                printf("ok\n");
        sd_bus_flush_close_unref(bus);
        return r < 0;
}
