/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Calls about an instance on another host (lib/ops/forward.h): GetJournal
 * (with "more" too), CatApp and GetPort. Each runs nap_forward_serve() in
 * a forked process, which relays it over TLS to the instance's host; here
 * a varlink client on a socket pair to that process hands every reply to
 * the caller's link as it came. Authorized already, as every call. */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "ops/methods.h"
#include "protocol/varlink.h"

typedef struct Forwards Forwards;

int forwards_new(sd_event *event, NapContext *context, Forwards **ret);
Forwards *forwards_free(Forwards *o);

/* A method that forwards, forwarding set up in nap.conf, and the instance
 * not on this host. */
bool forwards_wanted(Forwards *o, const NapMethod *m, json_t *args);
/* The replies go to link; on failure e says why and nothing was sent. */
int forwards_start(Forwards *o, Varlink *link, const NapMethod *m, json_t *args, bool more, uid_t uid,
                   NapError *e);
/* The client went away: its forwarded calls end. */
void forwards_drop(Forwards *o, Varlink *link);
