/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-cluster-gate --forward: the calling host's end (lib/ops/forward.h). */

#include <sys/types.h>

#include "model/config.h"

/* fd is the stream socket the call comes in on and the replies go out on
 * (nap-managerd's end of a socket pair). Finds the instance's node,
 * connects to its gate (at most 5 s), TLS, the header asserting uid, then
 * relays. An error before the other host answered anything is written to
 * fd as the call's varlink error reply (NodeUnreachable,
 * ClusterAuthFailed, NoSuchInstance…). Returns when either side ends. */
int forward_out(const NapConfig *c, uid_t uid, const char *instance, int fd, NapError *e);
