/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* GetJournal with "more" over varlink: the last lines in a first reply,
 * then every new line in a reply of its own, until the client hangs up. */

#include <systemd/sd-event.h>

#include "ops/methods.h"
#include "protocol/varlink.h"

typedef struct Follows Follows;

int follows_new(sd_event *event, NapContext *context, Follows **ret);
Follows *follows_free(Follows *o);
/* Authorized already. The replies go to link; on failure e says why and
 * nothing was sent. */
int follows_start(Follows *o, Varlink *link, json_t *args, NapError *e);
/* The client went away: stop following for it. */
void follows_drop(Follows *o, Varlink *link);
