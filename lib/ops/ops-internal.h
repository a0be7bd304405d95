/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What lib/ops*.c share; not part of libnap's API. */

#include "model/intent.h"
#include "model/manifest.h"
#include "model/node.h"
#include "ops/ops.h"

/* The service manager's bus, opened on first use. */
int ops_context_bus(NapContext *c, sd_bus **ret, NapError *e);
/* One progress line to o's callback (none: nothing). */
void ops_progress(const NapRolloutOptions *o, const char *fmt, ...) _printf_(2, 3);
/* ops-wait.c: until the instance's unit answers HTTP on port (its first
 * byte) asked for its health path (nap_manifest_health_path()), or is no
 * longer running (UnitFailed), or timeout (UnitFailed). */
int ops_wait_instance_answering(NapContext *c, const char *unit, unsigned port, uint64_t timeout_usec, NapError *e);
/* "its last log lines: a | b | c": the app's own, NULL if none. */
char *ops_journal_summary(NapContext *c, const char *unit);
/* Appends that (or "it logged nothing") to e's message, as far as it fits. */
void ops_error_add_journal(NapContext *c, const char *unit, NapError *e);

/* ops-recover.c: takes the app's lock; an operation that died half-way
 * (its intent record is there) is finished or undone first. */
int ops_lock_service(NapContext *c, const NapService *s, int *ret_fd, NapError *e);
/* Records i (time set now) before an operation's first change; removed
 * by ops_intent_end() once the operation is finished or undone. */
int ops_intent_begin(NapContext *c, NapIntent *i, NapError *e);
void ops_intent_end(NapContext *c, const NapService *s);
/* Removes SERVICE_DIR.deploy-* and the app's instance .tmp/.next trees,
 * which only a live operation uses; under the lock. The number removed. */
unsigned ops_sweep_leftovers(NapContext *c, const NapService *s);
/* ops-push.c: a rollout cut short goes back to the version before it. */
int ops_rollout_recover(NapContext *c, const NapIntent *in, NapError *e);
/* ops-instance.c: stop, release, forget, uninstall, remove the tree; what is
 * already gone is skipped. */
int ops_remove_instance_locked(NapContext *c, const NapInstance *i, NapError *e);

/* ops-mpi.c: a start-mpi cut short is undone (its job stopped, units,
 * manifests and tree removed, the record kept as "stopped"). */
int ops_mpi_recover(NapContext *c, const NapIntent *in, NapError *e);

/* ops-lifecycle.c: what destroy-app removes, each step skipping what is
 * gone (so recovery runs it again). */
int ops_destroy_app_locked(NapContext *c, const NapService *s, NapError *e);

/* The app's lock for a deploy (the app need not exist yet). */
int ops_lock_service_to_deploy(NapContext *c, const NapService *s, int *ret_fd, NapError *e);
/* ROOT/services/USER/USER_APP, or NoSuchService when it is not deployed. */
int ops_service_dir_checked(NapContext *c, const NapService *s, char **ret, NapError *e);
/* DIR/profile, else DIR/Procfile; InvalidProfile when neither exists. */
int ops_load_profile_in(const char *dir, NapProfile **ret, NapError *e);
/* A tree that runs from its Dockerfile (no profile, no Procfile). */
bool ops_tree_is_dockerfile_app(const char *dir);
int ops_load_service_profile(NapContext *c, const NapService *s, NapProfile **ret, NapError *e);
/* The manifest of an instance name; NoSuchInstance if there is none. */
int ops_load_instance(NapContext *c, const char *instance, NapManifest **ret, NapError *e);

/* SERVICE_DIR/.nap/deploy.json: where and what was deployed. */
typedef struct DeployMeta {
        char *url;
        char *commit;
        uint64_t time_usec;
} DeployMeta;

void ops_deploy_meta_clear(DeployMeta *m);
/* Missing or damaged: all fields NULL/0. */
void ops_deploy_meta_read(const char *service_dir, DeployMeta *ret);

/* ---- shared by ops-deploy.c, ops-instance.c and ops-push.c ------------ */

/* SERVICE_DIR/.nap/history.json, newest first; missing or damaged: empty. */
void ops_history_read(const char *tree, NapDeployRecord **ret, size_t *ret_n);
/* A new, empty SERVICE_DIR.deploy-XXXXXX (STAGING); the caller removes it. */
int ops_create_staging(NapContext *c, const NapService *s, char **ret, NapError *e);
/* STAGING/tree := commit of url, profile checked (returned), .nap/
 * metadata written, history continuing old_tree's (may not exist). */
int ops_stage_commit(NapContext *c, const char *staging, const char *old_tree, const char *url, const char *commit,
                     NapProfile **ret_profile, NapError *e);
/* Puts STAGING/tree at dir: exchanged atomically with an existing tree
 * (which then is STAGING/tree), or renamed into place. */
int ops_swap_in_tree(const char *staging, const char *dir, NapError *e);

/* Params that substitute cleanly and make a command systemd can run. */
int ops_check_params(const NapProfile *p, const NapParams *params, NapError *e);
/* Under the app's lock: number, port, tree, manifest of a new instance. */
/* intent (may be NULL): recorded once the number is known. */
int ops_create_instance(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                        NapIntent *intent, NapManifest *m, NapError *e);
/* The same with a given number (0: the next free one), which must be free
 * on this host. */
int ops_create_instance_numbered(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                                 unsigned number, NapIntent *intent, NapManifest *m, NapError *e);
/* Writes to (which must not be live) the instance tree: a copy of from
 * without .nap/ and .git/, with the instance's profile for argv. */
int ops_instance_tree_build(const char *from, const NapInstance *i, char *const *argv, const char *to);
/* "http://HOST:PORT" ([HOST] for an IPv6 literal); NULL: out of memory. */
char *ops_http_url(const char *host, unsigned port);
int ops_instance_info_from_manifest(const NapConfig *c, const NapManifest *m, NapInstanceInfo *ret);
/* ops-resources.c: the instance's compute request reserved on this node
 * (Etcd= set and resources given; m->reservation = the node), and
 * released again (nothing reserved, or released already: 0). */
int ops_reserve_instance(NapContext *c, NapManifest *m, NapError *e);
int ops_release_instance(NapContext *c, const NapManifest *m, NapError *e);
/* The node a reservation of request would be held on, into buf (what an
 * intent records before reserving); "" when nothing would be reserved. */
int ops_reservation_node(NapContext *c, const NapCompute *request, char *buf, size_t size, NapError *e);

/* ops-cluster.c: start-common on o->node through an assignment
 * (lib/cluster/assignment.h), waiting (unless o->no_block) until that
 * node reports the instance running. */
int ops_start_common_on_node(NapContext *c, const NapService *s, const NapParams *params, const NapStartOptions *o,
                             NapInstanceInfo *ret, NapError *e);
/* An instance nap-node made from this node's assignment (its mark is
 * there): the assignment goes, so that it is not made again; 0 for any
 * other instance. Before the instance is removed: a failure changes
 * nothing. */
int ops_unassign_if_realized(NapContext *c, const NapInstance *i, NapError *e);
/* With Etcd=: the local instances of s (*l, *n; this host's own get its
 * node name) merged with the cluster's (assignments, their nodes'
 * reports; a node not Ready: unknown/lost), the same from every host.
 * etcd away: the local list alone. */
int ops_cluster_instances(NapContext *c, const NapService *s, NapInstanceInfo **l, size_t *n, NapError *e);
/* An instance assigned to another node, no copy here: its assignment
 * deleted (the node removes it), 1. 0: the local path does it. */
int ops_cluster_remove(NapContext *c, const NapInstance *i, NapError *e);
/* A cluster instance's assignment enabled or not (its node starts or
 * stops it); 1 when that node is another (nothing to do here; with wait,
 * once it reports the instance active or inactive, unless it is not
 * Ready), 0 when the local path acts (this host's, or not the
 * cluster's). */
int ops_cluster_set_enabled(NapContext *c, const NapInstance *i, bool enabled, bool wait, NapError *e);
/* A cluster instance of another node restarted there (its assignment's
 * restart, lib/cluster/assignment.h; unless no_block, once that node
 * reports it active again, when it is Ready): 1; 0 when the local path
 * acts. */
int ops_cluster_restart(NapContext *c, const NapInstance *i, bool no_block, NapError *e);
/* The port i's node reports for it: 1 and *ret; 0 when there is none (no
 * Etcd=, etcd away, not assigned, not reported yet). */
int ops_cluster_port(NapContext *c, const NapInstance *i, unsigned *ret);
/* nap-node made it from an assignment (its mark is there). */
bool ops_instance_is_realized(NapContext *c, const NapInstance *i);
/* s appended to e's message when e is set (ops-push.c). */
void ops_error_append(NapError *e, const char *s);
/* A copy of from (out of memory: < 0). */
int ops_copy_params(const NapParams *from, NapParams **ret);
/* 1, the context's etcd client and this host's node name when this host
 * is a node of the cluster (Etcd= and its node's record in etcd); 0 when
 * it is not; NotAvailable (-ENOTCONN) when etcd cannot be reached to tell. */
int ops_cluster_node(NapContext *c, EtcdClient **ret_etcd, char **ret_node, NapError *e);
/* PREFIX/apps/USER_APP := url at commit, when this host is a node of the
 * cluster (Etcd= and its node record): 1 written, 0 not a node (nothing
 * to do), < 0 etcd failed. A URL that is this host's push repository of
 * the app is recorded as pushed. */
int ops_record_app_source(NapContext *c, const NapService *s, const char *url, const char *commit, NapError *e);
/* The same after a deploy of d->commit: a failure makes d's publish
 * pending, with why (the next deploy writes it again). */
void ops_publish_app_source(NapContext *c, const NapService *s, const char *url, NapDeployResult *d);
/* ops-cluster-rollout.c: the cluster's instances of the app (every node's
 * assignments at another commit) replaced by instances at commit, batch by
 * batch, start new then withdraw; rolled back on every node when one fails
 * (UnitFailed naming the node and why). The number rolled; 0 when this host
 * is not a node or nothing is at another commit. Its intent is
 * PREFIX/rollouts/USER_APP (cluster/rollout.h); previous (NULL: none) is
 * the commit deployed before, what the app's record goes back to. */
int ops_cluster_rollout(NapContext *c, const NapService *s, const char *previous, const char *commit,
                        const NapRolloutOptions *o, NapError *e);
/* The apps of user the cluster records (PREFIX/apps/) that *list (n
 * entries, this host's) lacks, appended: the cluster's list is the same
 * from every host. Nothing when this host is not a node, or etcd does not
 * answer (this host's list stands). < 0 only when out of memory. */
int ops_cluster_services(NapContext *c, const char *user, NapServiceInfo **list, size_t *n);
/* After a deploy of d->commit here: ops_cluster_rollout(). When etcd
 * cannot be reached nothing began: the deploy here stands and d's publish
 * is pending, with why (as the URL's is), instead of failing it. */
int ops_cluster_follow(NapContext *c, const NapService *s, const char *previous, const NapRolloutOptions *o,
                       NapDeployResult *d, NapError *e);
/* A push's repository copied to every other Ready node (git push over ssh
 * with ReplicaKey= to nap-git-shell --replica): the number of nodes it
 * reached (one that cannot be reached is said through o->progress); 0 when
 * this host is not a node; NotAvailable without ReplicaKey=. */
int ops_replicate_push(NapContext *c, const NapService *s, const char *repo, const NapRolloutOptions *o,
                       NapError *e);

/* ops-lifecycle.c: the app's configuration (napctl config), for a new or
 * rebuilt instance's manifest: NULL when none is set. */
int ops_app_environment(NapContext *c, const NapService *s, NapParams **ret, NapError *e);

/* The app's URL and the instance's port to etcd (best effort). */
NapPublish ops_publish_instance(NapContext *c, const NapManifest *m);

/* ---- an instance's units for the service manager (ops-internal.c) -------
 * Without a daemon-reload (docs/ARCHITECTURE.md, "Starting without a
 * reload"): the manager reads a unit name it never loaded from its unit
 * dirs on first reference, and its runtime unit dir is one of them, while
 * the generator's output is read only at a reload. So whoever writes,
 * rewrites or removes an instance's manifest also calls one of these; the
 * generator still writes everything at boot and at every reload. */

/* "This manifest was written: install its units for the manager." m's
 * unit files (drop-in, or a container's two units, and its app's
 * templates) into the manager's runtime unit dir, each replaced
 * atomically when missing or different. Call it after every
 * nap_manifest_save(): a stale runtime drop-in would win over the
 * generator's new one after the next reload. A caller that may not write
 * the runtime dir (not root in system scope) gets 0 when none of the
 * instance's files is there (the generator's serve, after a reload), and
 * the error when one is. */
int ops_units_install(NapContext *c, const NapManifest *m, NapError *e);
/* "This instance's manifest is gone: uninstall." Its runtime files go,
 * and its app's templates too when no manifest of that template is left
 * (a caller that may not remove them leaves them: harmless, no manifest).
 * What the generator wrote stays until the next reload: harmless, as the
 * unit is stopped and has no manifest. */
int ops_units_uninstall(NapContext *c, const NapInstance *i, NapError *e);
/* After ops_units_install() of a new instance: LoadUnit, and one full
 * daemon-reload only when that did not give the manager the current files
 * (the name was loaded before, as not-found or from an older drop-in). */
int ops_units_load(NapContext *c, const NapInstance *i, NapError *e);

/* ---- Dockerfile apps (ops-container.c; nap-generator(8), CONTAINERS) --- */

/* podman and an OCI runtime (runc or crun) are installed, in system
 * scope /etc/subuid and /etc/subgid have the "containers" ranges that
 * --userns=auto takes ids from, in user scope the manager is root's (no
 * rootless podman): NotAvailable "podman is not installed" or
 * "the container runtime cannot run here: …" otherwise. Before a
 * Dockerfile app is deployed or gets an instance. */
int ops_container_check(NapScope scope, NapError *e);
/* Before a container instance's run unit starts: its build unit
 * (USER_APP_build@N.service, podman build into m's tag) started and
 * waited for, the build's steps as progress lines (o may be NULL); when it
 * fails, UnitFailed "the image build failed (UNIT): its last log lines",
 * and its last lines as progress. Nothing (0) for other instances. */
int ops_container_build(NapContext *c, const NapManifest *m, const NapRolloutOptions *o, NapError *e);
/* After a container instance's start failed with e: when its log shows
 * podman's OCI runtime refusing to create the container, e becomes
 * NotAvailable "the container runtime cannot run here: LINE". */
void ops_container_explain(NapContext *c, const NapManifest *m, NapError *e);
/* Removes the app's images but those of commits keep and keep_too (the
 * deployed one and the previous one, for a rollback; either may be NULL
 * or ""). Best effort: the number removed, or an error said in a
 * progress line too (in system scope nap-managerd runs podman without
 * the capabilities it needs: nap-generator(8)). */
int ops_container_prune(NapContext *c, const NapService *s, const char *keep, const char *keep_too,
                        const NapRolloutOptions *o);

/* ---- starts that wait in the resource queue (ops-queued.c) ------------- */

typedef struct NapJob NapJob; /* cluster/queue.h */

/* A start that waits in nap's own queue when it does not fit now
 * (start-common --queue, start-mpi --queue): one job of type nap-start
 * per request id, its callback internal (nap:KIND/JOB), pinned to this
 * host's node, admitted there with exactly reservation. */
typedef struct OpsQueuedRequest {
        const char *kind;   /* "start-common" or "start-mpi": the callback's, and the crash tests' points */
        const char *method; /* what nap-queued calls once a detached start is admitted: "StartCommon", "StartMpi" */
        const NapService *service;
        const NapParams *params; /* ... with these */
        const char *request;     /* the caller's request id */
        NapCompute reservation;  /* all the start reserves, as one reservation */
        const NapCompute *rank;  /* start-mpi: a rank's request (... and this); else NULL */
        bool detached;           /* --no-block: nap-queued starts it once admitted */
} OpsQueuedRequest;

/* The start itself, each under the app's lock. start_now: as without the
 * queue; when it fails with InsufficientResources it must leave nothing
 * behind (no intent), and the request is queued. start_admitted: the
 * job j was admitted: start on its reservation (ops_queued_take() first). */
typedef struct OpsQueuedStarter {
        int (*start_now)(NapContext *c, void *userdata, NapError *e);
        int (*start_admitted)(NapContext *c, const NapJob *j, void *userdata, NapError *e);
        void *userdata;
} OpsQueuedStarter;

/* A queued start needs something to wait for, a request id (its job's
 * name: the call once admitted finds the job by it), and a queue
 * (QueueNotConfigured without Etcd=). */
int ops_queued_check(NapContext *c, const NapCompute *request, const char *request_id, NapError *e);
/* Under the app's lock, the request id not seen before: a job queued
 * before answers where it stands (1, *ret) or, admitted, is started
 * (s->start_admitted()); InvalidParameter when it was queued by another
 * kind of start, NoSuchJob when it was cancelled or done. Without a job:
 * behind the jobs already waiting for this node, or when s->start_now()
 * does not fit, the request is queued (1, *ret; RequestTooLarge when it
 * is larger than the node); else 0, started. */
int ops_queued_start(NapContext *c, const OpsQueuedRequest *q, const OpsQueuedStarter *s, NapQueuedStart *ret,
                     NapError *e);
/* Admitted job j taken by owner (the instance the start makes, its
 * number picked under the lock): the intent in (operation and service
 * set) begun with owner's number and the job's node, then, in one etcd
 * txn, the job's reservation renamed to owner's and the job done
 * (nap_queue_hand_over()). *ret: the reservation owner now holds. */
int ops_queued_take(NapContext *c, const NapJob *j, NapIntent *in, const NapInstance *owner,
                    NapReservation *ret, NapError *e);

/* A start's request id seen before (under the app's lock, after recovery
 * finished any start it was cut short in; ops-instance.c): 1 and the
 * instance it made (of kind: a common instance, an MPI job's master), 0
 * if new; InvalidParameter when it made something else. */
int ops_request_replayed(NapContext *c, const NapService *s, const char *request_id, NapKind kind, NapInstance *ret,
                         NapError *e);
