/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus adapter of nap-managerd: io.nap.Manager1 (object
 * /io/nap/Manager1, interface io.nap.Manager1) on the system bus, or the
 * user bus when serving a user manager's apps. The same methods as
 * varlink (the registry, lib/ops/methods.h) through the same dispatcher;
 * the vtable is derived from the varlink interface, and
 * dbus/io.nap.Manager1.xml must match what it introspects as
 * (tests/integration/test-dbus.sh compares them).
 *
 * The name and idle exit: the name is taken before READY=1, whether
 * systemd started us for the varlink socket or for the bus name (varlink
 * calls are served while the bus daemon answers). When
 * idle, the daemon tells systemd STOPPING=1 (so that a start asked for
 * from now on, e.g. a bus activation, is queued until we are gone instead
 * of being taken as done), releases the name, and exits only once the bus
 * daemon confirmed it and the calls routed to us before that are answered
 * (systemd's own bus_event_loop_with_idle() does the same). A call after
 * the release waits in the bus daemon until systemd started us again. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "dispatch.h"

#define MANAGER_BUS_NAME "io.nap.Manager1"
#define MANAGER_BUS_PATH "/io/nap/Manager1"
#define MANAGER_BUS_INTERFACE "io.nap.Manager1"
#define MANAGER_BUS_ERROR_PREFIX "io.nap.Manager1.Error."

typedef struct BusFront BusFront;

typedef struct BusFrontEvents {
        /* Calls came or went, or the name was released. */
        void (*changed)(void *userdata);
        /* The bus daemon answered the request for the name: it is ours, or
         * given up on (then D-Bus is not served, bus_front_connected() is
         * false). */
        void (*ready)(void *userdata);
        /* The name was required and cannot be had: r says why. */
        void (*failed)(int r, void *userdata);
        void *userdata;
} BusFrontEvents;

/* Connects to the bus of scope, exports the object, asks for the name.
 * Failures are logged, as errors if required, else as warnings; < 0 when
 * it could not even ask. */
int bus_front_new(sd_event *event, Dispatcher *dispatcher, NapScope scope, bool required,
                  const BusFrontEvents *events, BusFront **ret);
/* Flushes pending replies and closes the connection. */
BusFront *bus_front_free(BusFront *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusFront *, bus_front_free);

unsigned bus_front_calls(const BusFront *m);
bool bus_front_connected(const BusFront *m);
bool bus_front_name_owned(const BusFront *m);
bool bus_front_releasing(const BusFront *m);
/* Idle: starts releasing the name. 1 if started (changed() comes once the
 * bus daemon confirmed), 0 if there is no name to release (exit now). */
int bus_front_release(BusFront *m);
