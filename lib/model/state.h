/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* STATE on disk (DESIGN.md):
 *   ROOT/services/USER/USER_APP/        deployed tree; .nap/ holds metadata
 *   ROOT/services/USER/USER_APP/.nap/deploy.json   {"url","commit","time"}
 *   ROOT/services/USER/USER_APP/.nap/history.json  [{"commit","url","time"}…] newest first, ≤ 20
 *   ROOT/services/USER/USER_APP.deploy-XXXXXX/tree  a new tree, staged beside the deployed one
 *   ROOT/git/USER/APP.git                bare repository pushed to (nap-git-shell)
 *   ROOT/services/USER/.USER_APP.lock   flock(2) serialising operations on one app
 *   ROOT/services/USER/.USER_APP.last   last instance number handed out
 *   ROOT/services/USER/.USER_APP.env    the app's configuration (napctl config):
 *                                       {"KEY":"VALUE"…}, written atomically
 *   ROOT/apps/USER/USER_APP_N/          one instance's copy, params substituted
 *   ROOT/apps/USER/USER_APP_N.tmp/      ... being built by start_common
 *   ROOT/apps/USER/USER_APP_N.next/     ... rebuilt by a rollout, then exchanged
 *   ROOT/.ports.lock                    serialises port allocation
 *   ROOT/ports/PORT -> MANIFEST         the manifest a port was given to
 *   INSTANCES/USER_APP_common@N.json    manifests (manifest.h)
 *   ROOT/cluster/realized/USER_APP_common@N   an instance nap-node made from
 *                                       its node's assignment (written before
 *                                       the instance, removed after it)
 *   ROOT/web/tokens/USER                the sha256 of USER's nap-web token (web-auth.h)
 *   ROOT/web/session.key                the key nap-web signs session cookies with
 * Locks and counters live beside the tree, not inside it, so a redeploy
 * that swaps the tree keeps them. Every path of this layout is made here.
 * NULL from a path function means out of memory. */

#include "model/config.h"
#include "base/error.h"
#include "model/manifest.h"
#include "model/names.h"

/* The directory in a tree that is nap's, not the app's: a deploy replaces
 * whatever the repository has there, and instances do not get a copy. */
#define NAP_STATE_META_DIR_NAME ".nap"

/* ROOT/cluster/realized: nap-node's marks of the instances it made from
 * assignments (docs/ARCHITECTURE.md "Cluster apps"). */
char *nap_state_cluster_realized_dir(const NapConfig *c);
/* ROOT/cluster/realized/USER_APP_common@N: i was made from an assignment. */
char *nap_state_cluster_realized_mark(const NapConfig *c, const NapInstance *i);

/* ROOT/services/USER: the user's deployed trees, locks and counters. */
char *nap_state_user_services_dir(const NapConfig *c, const char *user);
char *nap_state_service_dir(const NapConfig *c, const NapService *s);
/* SERVICE_DIR.deploy-XXXXXX, a template for mkdtemp(3): on the same file
 * system as the deployed tree, so the staged one can be exchanged with it. */
char *nap_state_staging_template(const NapConfig *c, const NapService *s);
/* STAGING/tree: the staged tree; after the exchange, the one it replaced. */
char *nap_state_staging_tree(const char *staging);
/* TREE/.nap, TREE/.nap/deploy.json and TREE/.nap/history.json. */
char *nap_state_meta_dir(const char *tree);
char *nap_state_deploy_meta_file(const char *tree);
char *nap_state_history_file(const char *tree);
/* ROOT/services/USER/.USER_APP.env: the app's configuration, beside the
 * tree (a deploy replaces .nap/ with its own metadata) and kept by it. */
char *nap_state_service_env_file(const NapConfig *c, const NapService *s);
/* ROOT/services/USER/.USER_APP.last: the instance number counter. */
char *nap_state_service_counter_file(const NapConfig *c, const NapService *s);
/* The users with a directory in ROOT/services (valid names only), sorted;
 * none: an empty list. */
int nap_state_list_users(const NapConfig *c, char ***ret, NapError *e);
/* ROOT/git/USER/APP.git. */
char *nap_state_git_repo_dir(const NapConfig *c, const NapService *s);

/* ROOT/web/tokens and ROOT/web/tokens/USER: nap-web's sign-in tokens,
 * hashed (lib/model/web-auth.h); ROOT/web/session.key: its cookie key. */
char *nap_state_web_tokens_dir(const NapConfig *c);
char *nap_state_web_token_file(const NapConfig *c, const char *user);
char *nap_state_web_key_file(const NapConfig *c);

/* ROOT/apps/USER: the user's instance trees. */
char *nap_state_user_apps_dir(const NapConfig *c, const char *user);
char *nap_state_instance_dir(const NapConfig *c, const NapInstance *i);
/* INSTANCE_DIR.tmp: a new instance's tree, renamed to INSTANCE_DIR whole. */
char *nap_state_instance_build_dir(const char *instance_dir);
/* INSTANCE_DIR.next: a rollout's rebuilt tree, exchanged with INSTANCE_DIR. */
char *nap_state_instance_next_dir(const char *instance_dir);

/* The manifests of s's instances in INSTANCES= (every kind), by number.
 * A damaged one is left out: the generator leaves it out too. Free the
 * list with nap_state_manifests_free(). */
int nap_state_load_service_manifests(const NapConfig *c, const NapService *s, NapManifest ***ret, size_t *ret_n,
                                     NapError *e);
void nap_state_manifests_free(NapManifest **l, size_t n);
/* 1 when a manifest of s's instances of kind is in INSTANCES= (by its
 * name alone: nothing is parsed), 0 when none, or a negative errno. */
int nap_state_has_manifest_of(const NapConfig *c, const NapService *s, NapKind kind);
/* Every manifest in INSTANCES=, of every app, by number. */
int nap_state_load_all_manifests(const NapConfig *c, NapManifest ***ret, size_t *ret_n, NapError *e);

/* Takes the app's lock (blocking); *ret_fd is released by close(). */
int nap_state_lock_service(const NapConfig *c, const NapService *s, int *ret_fd, NapError *e);

/* The next instance number: 1 + the largest of the stored counter, the
 * instance directories and the manifests, so a number is never reused.
 * Records it. Call with the app's lock held. */
int nap_state_next_instance_number(const NapConfig *c, const NapService *s, unsigned *ret, NapError *e);

/* A port in PortRange= used by no manifest and free to bind on this host,
 * claimed for i's manifest (ROOT/ports/PORT: no manifest is read). Returns
 * with *ret_lock_fd held; the caller writes its manifest, then closes it. */
int nap_state_allocate_port(const NapConfig *c, const NapInstance *i, unsigned *ret, int *ret_lock_fd,
                            NapError *e);
