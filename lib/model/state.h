/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* STATE on disk (DESIGN.md):
 *   ROOT/services/USER/USER_APP/        deployed tree; .nap/ holds metadata
 *   ROOT/services/USER/USER_APP/.nap/deploy.json   {"url","commit","time"}
 *   ROOT/services/USER/USER_APP/.nap/history.json  [{"commit","url","time"}…] newest first, ≤ 20
 *   ROOT/git/USER/APP.git                bare repository pushed to (nap-git-shell)
 *   ROOT/services/USER/.USER_APP.lock   flock(2) serialising operations on one app
 *   ROOT/services/USER/.USER_APP.last   last instance number handed out
 *   ROOT/apps/USER/USER_APP_N/          one instance's copy, params substituted
 *   ROOT/.ports.lock                    serialises port allocation
 *   INSTANCES/USER_APP_common@N.json    manifests (manifest.h)
 * Locks and counters live beside the tree, not inside it, so a redeploy
 * that swaps the tree keeps them. */

#include "model/config.h"
#include "base/error.h"
#include "model/names.h"

char *nap_state_service_dir(const NapConfig *c, const NapService *s);
char *nap_state_instance_dir(const NapConfig *c, const NapInstance *i);

/* Takes the app's lock (blocking); *ret_fd is released by close(). */
int nap_state_lock_service(const NapConfig *c, const NapService *s, int *ret_fd, NapError *e);

/* The next instance number: 1 + the largest of the stored counter, the
 * instance directories and the manifests, so a number is never reused.
 * Records it. Call with the app's lock held. */
int nap_state_next_instance_number(const NapConfig *c, const NapService *s, unsigned *ret, NapError *e);

/* A port in PortRange= used by no manifest and free to bind on this host.
 * Returns with *ret_lock_fd held; the caller writes its manifest, then
 * closes it. */
int nap_state_allocate_port(const NapConfig *c, unsigned *ret, int *ret_lock_fd, NapError *e);
