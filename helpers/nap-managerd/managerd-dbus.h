/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus adapter of nap-managerd: io.nap.Manager1 (object
 * /io/nap/Manager1, interface io.nap.Manager1) on the system bus, or the
 * user bus when serving a user manager's apps. The same methods as
 * varlink (managerd-methods.c), the same authorization and workers; the
 * introspection is dbus/io.nap.Manager1.xml and must match the vtable in
 * managerd-dbus.c (tests/integration/test-dbus.sh compares them).
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

#include "managerd.h"

#define MANAGER_BUS_NAME "io.nap.Manager1"
#define MANAGER_BUS_PATH "/io/nap/Manager1"
#define MANAGER_BUS_INTERFACE "io.nap.Manager1"
#define MANAGER_BUS_ERROR_PREFIX "io.nap.Manager1.Error."

/* Connects to the bus of the context's scope, exports the object, asks
 * for the name; manager_ready() (READY=1) once the bus daemon answered.
 * Failures are logged, as errors if required (then the loop ends), else as
 * warnings (then varlink only); < 0 when it could not even ask. */
int manager_bus_setup(Manager *m, bool required);
/* Idle: starts releasing the name. 1 if started (manager_update() exits
 * once the bus daemon confirmed and nothing is left to answer), 0 if
 * there is no name to release (exit now). */
int manager_bus_release(Manager *m);
/* Flushes pending replies and closes the connection. */
void manager_bus_done(Manager *m);
