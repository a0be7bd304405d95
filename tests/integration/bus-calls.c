/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* bus-calls N DEST PATH IFACE METHOD ARG: N calls of METHOD(s ARG) on ONE
 * connection to the user bus, as a long-lived D-Bus client makes them
 * (busctl opens a connection per call). Prints a line per call: "ok" or
 * the error name of the reply; exits 1 if a call got no reply at all.
 * For tests/integration/test-dbus.sh: nap-managerd looks a caller's uid
 * up once per connection. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

int main(int argc, char *argv[]) {
        sd_bus *bus = NULL;
        int n, r, answered = 0;

        if (argc != 7 || (n = atoi(argv[1])) <= 0) {
                fprintf(stderr, "usage: bus-calls N DEST PATH IFACE METHOD ARG\n");
                return 2;
        }
        r = sd_bus_open_user(&bus);
        if (r < 0) {
                fprintf(stderr, "cannot connect to the user bus: %s\n", strerror(-r));
                return 1;
        }
        for (int i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                r = sd_bus_call_method(bus, argv[2], argv[3], argv[4], argv[5], &error, &reply, "s", argv[6]);
                if (r >= 0 || sd_bus_error_is_set(&error))
                        answered++;
                printf("%s\n", r >= 0 ? "ok" : error.name ?: "no-reply");
                sd_bus_error_free(&error);
                sd_bus_message_unref(reply);
        }
        sd_bus_flush_close_unref(bus);
        return answered == n ? 0 : 1;
}
