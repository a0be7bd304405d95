/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/protocol/bus-json both ways, on the types of io.nap.Manager: the
 * first byte picks a method and whether its input or output struct, the
 * rest is JSON. What the interface accepts must go onto a D-Bus message
 * (or be refused as an int out of its D-Bus range), come back as JSON the
 * interface still accepts, and that goes round again unchanged: nothing
 * is lost or invented on the way, whatever the value. */

#include <stdint.h>
#include <sys/socket.h>

#include "ops/methods.h"

static sd_bus *bus_for_messages(void) {
        static sd_bus *bus = NULL;
        int fds[2];
        if (bus)
                return bus;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 || sd_bus_new(&bus) < 0 ||
            sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0)
                abort();
        return bus; /* fds[1] stays open: the bus must not see a hang-up */
}

/* The value as a struct on a sealed message, read back; NULL if refused. */
static json_t *through_bus(const VarlinkIdlType *t, json_t *v, sd_bus_message **ret_message) {
        sd_bus_message *m = NULL;
        json_t *back = NULL;
        if (sd_bus_message_new_method_call(bus_for_messages(), &m, "a.b", "/a", "a.b", "M") < 0)
                abort();
        int r = bus_json_append(m, nap_bus_ints, t, "value", v);
        if (r == -ERANGE) {
                sd_bus_message_unref(m);
                return NULL;
        }
        if (r < 0 || sd_bus_message_seal(m, 1, 0) < 0 || sd_bus_message_rewind(m, true) < 0 ||
            bus_json_read(m, nap_bus_ints, t, "value", &back) < 0 || sd_bus_message_at_end(m, true) <= 0)
                abort();
        *ret_message = m;
        return back;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const VarlinkIdl *idl = nap_manager_idl();
        if (!idl)
                abort();
        if (size < 1)
                return 0;
        const NapMethod *method = nap_method_at((data[0] >> 1) % nap_methods_size());
        bool input = data[0] & 1;
        const VarlinkIdlType *t = input ? varlink_idl_method_input(idl, method->name)
                                        : varlink_idl_method_output(idl, method->name);
        json_t *v = json_loadb((const char *) data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
        int valid = input ? varlink_idl_validate_method_input(idl, method->name, v, NULL)
                          : varlink_idl_validate_method_output(idl, method->name, v, NULL);
        sd_bus_message *m1 = NULL, *m2 = NULL;
        json_t *back = valid >= 0 && json_is_object(v) ? through_bus(t, v, &m1) : NULL;
        if (back) {
                /* D-Bus has no null: what comes back is the interface's
                 * value with "", 0, false or empty for null, still valid */
                if ((input ? varlink_idl_validate_method_input(idl, method->name, back, NULL)
                           : varlink_idl_validate_method_output(idl, method->name, back, NULL)) < 0)
                        abort();
                json_t *again = through_bus(t, back, &m2);
                if (!again || !json_equal(again, back))
                        abort();
                json_decref(again);
        }
        sd_bus_message_unref(m1);
        sd_bus_message_unref(m2);
        json_decref(back);
        json_decref(v);
        return 0;
}
