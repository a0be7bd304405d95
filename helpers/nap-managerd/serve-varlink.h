/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* io.nap.Manager over varlink: every method of the registry, bound to one
 * handler that hands the call to the dispatcher; GetJournal with "more"
 * streams (follow.h). NapError kinds become io.nap.Manager.<Kind> errors
 * here and nowhere else. */

#include <systemd/sd-event.h>

#include "dispatch.h"

typedef struct VarlinkFront VarlinkFront;

/* Connections came or went. */
typedef void (*VarlinkFrontChanged)(void *userdata);

/* Serves the sockets systemd passed, or binds address. */
int varlink_front_new(sd_event *event, Dispatcher *dispatcher, const char *address, VarlinkFrontChanged changed,
                      void *userdata, VarlinkFront **ret);
/* Connections open now (a follow is one). */
unsigned varlink_front_connections(const VarlinkFront *f);
VarlinkFront *varlink_front_free(VarlinkFront *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkFront *, varlink_front_free);
