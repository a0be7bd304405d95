/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Every operation of nap, written once (DESIGN.md). napctl, the varlink
 * and D-Bus helpers and the REST API are adapters over these functions.
 * Each validates its arguments first (nothing changes on bad input),
 * returns 0 or a negative errno, and fills e with a named error. */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "model/config.h"
#include "base/error.h"
#include "clients/journal.h"
#include "model/names.h"
#include "model/profile.h"
#include "model/resources.h"
#include "model/unit-files.h"
#include "clients/systemd1.h"
#include "model/endpoint.h"

typedef struct EtcdClient EtcdClient;

typedef struct NapContext {
        NapConfig *config;
        NapScope scope;
        sd_bus *bus;       /* opened on first use */
        EtcdClient *etcd;  /* made on first use, when Etcd= is set */
        char *fetch_socket; /* nap-fetch.socket's path: fetches go there; NULL: in this process */
        /* nap-node's realizer: stop, start and remove act on this host's
         * instances only, never on their assignments (it carries them
         * out; fencing stops them without etcd) */
        bool node_agent;
} NapContext;

/* Whether a write to etcd happened (lib/ops/publish.h). */
typedef enum NapPublish {
        NAP_PUBLISH_NONE,    /* no Etcd= configured: nothing to publish */
        NAP_PUBLISH_DONE,
        NAP_PUBLISH_PENDING, /* etcd unreachable: written again by the next deploy/start */
        _NAP_PUBLISH_MAX,
        _NAP_PUBLISH_INVALID = -EINVAL,
} NapPublish;

/* Loads the configuration; scope < 0 takes Scope= from it. */
int nap_context_new(NapContext **ret, int scope, nap_warn_fn warn, void *userdata, NapError *e);
/* Takes ownership of config. */
int nap_context_new_with_config(NapContext **ret, NapConfig *config, int scope);
NapContext *nap_context_free(NapContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapContext *, nap_context_free);
/* Fetches go to nap-fetch(8) from now on, on the scope's socket
 * (RUNTIME/nap/fetch, nap-fetch.socket): 0, or -ENOENT (and the like) when
 * it is not there, and fetches stay in this process. */
int nap_context_use_fetch_worker(NapContext *c);

typedef struct NapDeployResult {
        char commit[41];
        bool changed;       /* false: this commit from this URL was deployed already */
        NapPublish publish; /* the URL in etcd */
        NapError publish_error; /* why, when pending */
} NapDeployResult;

typedef struct NapServiceInfo {
        char *name;   /* USER_APP */
        char *app;
        char *url;    /* may be NULL */
        char *commit; /* may be NULL */
        uint64_t deployed_usec;
} NapServiceInfo;

typedef struct NapInstanceInfo {
        char *name;          /* USER_APP_common@N */
        char *unit;          /* USER_APP_common@N.service */
        unsigned number;
        unsigned port;
        char *url;           /* http://HOST:PORT, HOST from Host= */
        bool enabled;
        char *active_state;  /* from systemd; "inactive" when not loaded */
        char *sub_state;
        char **argv;
        NapParams *params;
        NapPublish publish;  /* start-common: the port in etcd */
        char *commit;        /* the commit its tree was built from; NULL if unknown */
        char *node;          /* the cluster node it runs on; NULL: no Etcd= (this host) */
} NapInstanceInfo;

/* Where a looked-up value came from. */
typedef enum NapSource {
        NAP_SOURCE_ETCD,
        NAP_SOURCE_LOCAL, /* this host's STATE: no Etcd=, etcd down, or not (yet) published */
        _NAP_SOURCE_MAX,
        _NAP_SOURCE_INVALID = -EINVAL,
} NapSource;

const char *nap_source_to_string(NapSource s) _pure_;

typedef struct NapEndpointList {
        NapEndpoint *items;
        size_t n;
} NapEndpointList;

void nap_endpoint_list_done(NapEndpointList *l);
void nap_service_info_array_free(NapServiceInfo *a, size_t n);
void nap_instance_info_clear(NapInstanceInfo *i);
void nap_instance_info_array_free(NapInstanceInfo *a, size_t n);

int nap_deploy_app(NapContext *c, const char *service, const char *url, NapDeployResult *ret, NapError *e);
/* url's commit (not its branch's tip) deployed as nap_deploy_app() does,
 * without publishing or recording it: how a node of the cluster gets the
 * tree an assignment names (docs/ARCHITECTURE.md "Trees reach hosts"). */
int nap_deploy_app_at(NapContext *c, const char *service, const char *url, const char *commit,
                      NapDeployResult *ret, NapError *e);
int nap_list_services(NapContext *c, const char *user, NapServiceInfo **ret, size_t *ret_n, NapError *e);
/* The same, and on a node of a cluster the apps of user its other hosts
 * deployed (their records in etcd: url, commit, time), by name: the same
 * list from every host (ListServices). */
int nap_list_services_in_cluster(NapContext *c, const char *user, NapServiceInfo **ret, size_t *ret_n,
                                 NapError *e);
/* Placeholders of the deployed app's profile, first-appearance order. */
int nap_get_parameters(NapContext *c, const char *service, char ***ret, NapError *e);
/* How start-common starts the instance. */
typedef struct NapStartOptions {
        /* the instance's CPU and memory (all 0: none), reserved on this
         * node when Etcd= is set, and applied by systemd */
        NapCompute resources;
        /* a client's id for this request (NULL: none): a second call with
         * the same id (a retry after a lost answer) returns the instance
         * the first one made instead of making another */
        const char *request_id;
        /* return once systemd started the unit, without waiting for the
         * app to answer */
        bool no_block;
        uint64_t answer_timeout_usec; /* 0: NAP_START_ANSWER_TIMEOUT_USEC_DEFAULT */
        /* 0: the app's next free number; else this one (a cluster app's
         * number from its assignment, lib/cluster/assignment.h), which
         * must not exist on this host: InvalidParameter if it does */
        unsigned number;
        /* NULL: on this host; else on that node of the cluster (Etcd=): an
         * assignment its nap-node realizes, waited for until the node
         * reports it (docs/ARCHITECTURE.md "Cluster apps"); NoSuchNode when
         * there is no such node */
        const char *node;
        /* placed in the cluster (Etcd=): on the Ready node with room that
         * holds the fewest instances (nap_schedule_pick_counted()), then as
         * with node; not with node. nap.conf's ClusterApps=yes makes it the
         * default of StartCommon (methods.c) without node or queue. */
        bool cluster;
        /* with resources and Etcd=: when they do not fit now, wait in the
         * resource queue (a job, lib/cluster/queue.h, nap's own jobs)
         * instead of failing: nap_start_common() returns 1 and fills
         * *queued; called again with the same request id once the job is
         * admitted, it starts the instance on the job's reservation */
        bool queue;
        struct NapQueuedStart *queued;
} NapStartOptions;

/* A start waiting in the queue: its job (type nap-start) and where it
 * stands (1: next for its node; 0: admitted, not yet started). */
typedef struct NapQueuedStart {
        char job[65];
        int64_t id;
        unsigned position;
} NapQueuedStart;

/* Waits (an etcd watch of the job, not a poll) until the queued start
 * request of user leaves the queue: 0 when admitted (call StartCommon
 * again), NoSuchJob when it was cancelled; *cancel set (SIGINT): the job
 * is cancelled and -ECANCELED returned. */
int nap_queued_start_wait(NapContext *c, const char *user, const char *request_id,
                          const volatile sig_atomic_t *cancel, NapError *e);
/* Cancels the queued start (its job leaves the queue; an admitted one's
 * reservation is freed). */
int nap_queued_start_cancel(NapContext *c, const char *user, const char *request_id, NapError *e);

/* Below D-Bus's default call timeout (25 s): a D-Bus client hears why. */
#define NAP_START_ANSWER_TIMEOUT_USEC_DEFAULT (20ULL * 1000ULL * 1000ULL)

/* New instance: copy, substitute, port, manifest, units (no reload but
 * in ops_units_load()'s one case), start, and (no
 * no_block) wait until it answers HTTP on its port: UnitFailed, with its
 * last log lines, when it exits instead or does not answer in time (the
 * instance stays, as a failed `systemctl start` leaves its unit). */
int nap_start_common(NapContext *c, const char *service, const NapParams *params, const NapStartOptions *o,
                     NapInstanceInfo *ret, NapError *e);
/* Instances with a manifest, merged with systemd's view (ListUnitsByPatterns). */
int nap_list_instances(NapContext *c, const char *service, NapInstanceInfo **ret, size_t *ret_n, NapError *e);
/* With Etcd=: this host's instances and the cluster's of every node, the
 * same from every host (node set on each); without: nap_list_instances(). */
int nap_list_instances_everywhere(NapContext *c, const char *service, NapInstanceInfo **ret, size_t *ret_n,
                                  NapError *e);
int nap_get_instances_num(NapContext *c, const char *service, unsigned *ret, NapError *e);
/* nap_list_instances() in two steps, for a caller that asks systemd itself
 * (nap-managerd, without blocking its loop): the unit pattern to give
 * ListUnitsByPatterns, then the manifests merged with what it listed. */
int nap_list_instances_pattern(const char *service, char **ret, NapError *e);
int nap_list_instances_merge(NapContext *c, const char *service, const NapUnitStatus *units, size_t n_units,
                             NapInstanceInfo **ret, size_t *ret_n, NapError *e);
/* Start/stop also record whether the instance comes back at boot; start
 * and restart wait for the instance to answer as start-common does, unless
 * no_block. */
int nap_start_app(NapContext *c, const char *instance, bool no_block, NapError *e);
int nap_stop_app(NapContext *c, const char *instance, NapError *e);
/* Stops the instance if it runs and starts it again; one stopped with
 * nap_stop_app() is started, and at boot again, as by nap_start_app(). */
int nap_restart_app(NapContext *c, const char *instance, bool no_block, NapError *e);
int nap_cat_app(NapContext *c, const char *instance, char **ret, NapError *e);
int nap_get_journal(NapContext *c, const char *instance, size_t lines, NapJournalEntry **ret, size_t *ret_n, NapError *e);
/* Stops, drops the manifest and its runtime units (no reload), removes
 * the instance's tree. */
int nap_remove_instance(NapContext *c, const char *instance, NapError *e);

/* Crash recovery (lib/ops/ops-recover.c): every app whose last operation
 * was cut short (its intent record is still there) is brought to what the
 * operation would have left, finished or undone; request records older
 * than a day go. Also done by every operation on such an app first. */
typedef struct NapRecoverResult {
        unsigned recovered;          /* apps brought back to a consistent state */
        unsigned failed;             /* ... that could not be: */
        char last_error[NAP_ERROR_MESSAGE_MAX]; /* why, for the last one */
        unsigned requests_expired;
} NapRecoverResult;
int nap_recover(NapContext *c, NapRecoverResult *ret, NapError *e);
/* Whether any app has an intent record: a cheap look, for a daemon's start. */
bool nap_recover_pending(const NapConfig *c);

/* The seed's get_service_url(user, app), for service USER_APP: etcd's
 * PREFIX/url/USER/APP, else the URL this host deployed from. */
int nap_get_service_url(NapContext *c, const char *service, char **ret, NapSource *ret_source, NapError *e);
/* The seed's get_port(instance): etcd's PREFIX/port/USER/APP/N, else the
 * instance's manifest on this host. */
int nap_get_port(NapContext *c, const char *instance, unsigned *ret, NapSource *ret_source, NapError *e);
/* The live endpoints of an app, from etcd (needs Etcd=). Values that do not
 * parse are left out. */
int nap_list_endpoints(NapContext *c, const char *service, NapEndpointList *ret, NapError *e);

/* ---- fleet export (lib/ops/ops-export.c) --------------------------------- */

/* One file of an exported instance (model/unit-files.h,
 * nap_unit_files_export()): USER_APP_common@N.service, or its sidecar. */
typedef struct NapExportedUnit {
        char instance[NAP_UNIT_NAME_MAX]; /* USER_APP_common@N */
        NapUnitFile file;
} NapExportedUnit;

/* The self-contained units of every common instance of the app (none:
 * an empty list), by number, each instance's unit before its sidecar.
 * NoSuchService when the app is not deployed; NotAvailable for a
 * container instance. Writes nothing. */
int nap_export_units(NapContext *c, const char *service, NapExportedUnit **ret, size_t *ret_n, NapError *e);
void nap_exported_units_free(NapExportedUnit *l, size_t n);

/* ---- push deploys and rollback (lib/ops/ops-push.c) ------------------------ */

/* What a rollout says while it works ("alice_web_common@1: restarting"),
 * for a program to show; lib/ does not print. */
typedef void (*nap_progress_fn)(void *userdata, const char *message);

typedef struct NapRolloutOptions {
        uint64_t answer_timeout_usec; /* per instance; 0: NAP_ANSWER_TIMEOUT_USEC_DEFAULT */
        nap_progress_fn progress;     /* may be NULL */
        void *userdata;
        NapRolloutBatch batch;        /* instances replaced at once; value 0: RolloutBatch= */
        uint64_t drain_usec;          /* 0: RolloutDrainSec=; NAP_ROLLOUT_NO_DRAIN: none */
} NapRolloutOptions;

#define NAP_ROLLOUT_NO_DRAIN UINT64_MAX

#define NAP_ANSWER_TIMEOUT_USEC_DEFAULT (30ULL * 1000ULL * 1000ULL)
#define NAP_HISTORY_MAX 20

typedef struct NapRolloutResult {
        NapDeployResult deploy;   /* commit now deployed; changed: false when it was already */
        char previous[41];        /* commit deployed before ("" when none) */
        bool started;             /* the app had no instance: one was started with the defaults */
        bool needs_parameters;    /* ... could not be: the profile has parameters without a default */
        NapInstanceInfo *instances; /* the app's instances afterwards (state from systemd) */
        size_t n_instances;
} NapRolloutResult;

void nap_rollout_result_done(NapRolloutResult *r);

/* A push: deploys rev (a 40-digit commit or a full ref name, resolved
 * under the app's lock, so concurrent pushes end with the branch's tip) of
 * the local repository at repo, then rolls it out: the new tree is swapped
 * in and every instance is replaced, in batches (batch, RolloutBatch=), by
 * a new one made from it with the old one's parameters and resources (new
 * number, new port). A batch's new instances are started (stopped ones
 * are replaced by stopped ones) and waited for until they answer and, with
 * Etcd=, are published; then the old ones' endpoints are withdrawn, and
 * after a drain (RolloutDrainSec=) they are removed. An app without
 * instances gets one with the profile's defaults. Any failure (no or bad
 * profile, parameters the new profile refuses, a new instance that does
 * not answer in time) removes the new instances, puts the previous tree
 * back and replaces back what was replaced already, and says why: the
 * previous version keeps running. Already deployed: changes nothing and
 * lists the instances. */
int nap_deploy_commit(NapContext *c, const char *service, const char *repo, const char *rev,
                      const NapRolloutOptions *o, NapRolloutResult *ret, NapError *e);

/* The app's deploy history (SERVICE_DIR/.nap/history.json), newest first;
 * the first entry is what is deployed. At most NAP_HISTORY_MAX entries. */
typedef struct NapDeployRecord {
        char commit[41];
        char *url;
        uint64_t time_usec;
} NapDeployRecord;

void nap_deploy_record_array_free(NapDeployRecord *a, size_t n);
int nap_deploy_history(NapContext *c, const char *service, NapDeployRecord **ret, size_t *ret_n, NapError *e);

/* Redeploys and rolls out (as nap_deploy_commit) an earlier commit of the
 * history, fetched from where it came: commit NULL is the newest entry
 * whose commit differs from the deployed one; else a unique prefix (at
 * least 4 hex digits) of an entry's commit. */
int nap_rollback(NapContext *c, const char *service, const char *commit, const NapRolloutOptions *o,
                 NapRolloutResult *ret, NapError *e);

/* Replaces every instance of the app, as a push does, by one made from
 * the deployed tree with the same parameters (and a fresh environment):
 * a rolling restart without downtime. For after `napctl deploy-app`. */
int nap_refresh_instances(NapContext *c, const char *service, const NapRolloutOptions *o, NapRolloutResult *ret,
                          NapError *e);

/* Waits until something on this host's loopback (127.0.0.1, then [::1])
 * at port answers an HTTP request ("HEAD / HTTP/1.0") with at least one
 * byte: connecting is not enough, the kernel accepts for a hung app too.
 * check (may be NULL) is called between attempts and stops the wait when
 * it returns < 0 (with e filled). UnitFailed after timeout_usec. */
typedef int (*nap_wait_check_fn)(void *userdata, NapError *e);
int nap_wait_answering(unsigned port, uint64_t timeout_usec, nap_wait_check_fn check, void *userdata, NapError *e);

/* ---- an app's lifecycle (lib/ops/ops-lifecycle.c) ------------------------ */

/* At most this many instances per app by scale. */
#define NAP_SCALE_MAX 1000U

typedef struct NapScaleResult {
        unsigned before, after; /* instances with a manifest */
        char **started;         /* names, in order */
        char **removed;
} NapScaleResult;

void nap_scale_result_done(NapScaleResult *r);

/* Starts instances (as nap_start_common, with params or the profile's
 * defaults, each waited for until it answers) or removes them (stopped ones
 * first, then the highest-numbered) until the app has n, or limit of them
 * were (0: no limit; a caller showing progress calls again until nothing
 * changes). n equal to what it has changes nothing. Each instance started
 * or removed is whole (its own operation is crash-safe); a failure stops
 * there, and says how far it got: scaling again goes on from there.
 * o->progress hears of each. */
int nap_scale(NapContext *c, const char *service, unsigned n, unsigned limit, const NapParams *params,
              const NapRolloutOptions *o, NapScaleResult *ret, NapError *e);

/* The app's configuration: the environment of every instance. Empty (not
 * NULL) when none was set. NoSuchService when the app is not deployed. */
int nap_app_config_get(NapContext *c, const char *service, NapParams **ret, NapError *e);

typedef struct NapConfigResult {
        bool changed;             /* the stored configuration changed */
        bool restarted;           /* a rolling restart applied it */
        NapRolloutResult rollout; /* when restarted */
} NapConfigResult;

void nap_config_result_done(NapConfigResult *r);

/* Sets the variables of set and removes those named in unset (either may be
 * NULL; a name in both is refused), stores the result atomically, then
 * applies it to every instance with a rolling restart
 * (nap_refresh_instances()). Names: nap_env_name_check(); values as
 * parameter values. Nothing to change, with every instance already
 * carrying the configuration: no restart (changed false). */
int nap_app_config_update(NapContext *c, const char *service, const NapParams *set, char *const *unset,
                          const NapRolloutOptions *o, NapConfigResult *ret, NapError *e);

/* A rolling restart of every instance of the app (nap_refresh_instances());
 * an app without instances: nothing, ret->n_instances 0. */
int nap_restart_service(NapContext *c, const char *service, const NapRolloutOptions *o, NapRolloutResult *ret,
                        NapError *e);

/* Stops and removes every instance of the app, then its deployed tree
 * (with its deploy history), its configuration, its git repository
 * (ROOT/git/USER/APP.git) and its keys in etcd. Crash-safe: an intent
 * (destroy-app) is recorded first and recovery finishes the job.
 * NoSuchService when there is nothing of that name. */
int nap_destroy_app(NapContext *c, const char *service, NapError *e);

/* One app on one screen (napctl status). */
typedef struct NapAppStatus {
        char *name;        /* USER_APP */
        char *app;
        char *commit;      /* deployed; NULL if unknown */
        unsigned instances, running, answering;
        unsigned *ports;   /* of every instance, by number */
        size_t n_ports;
} NapAppStatus;

void nap_app_status_array_free(NapAppStatus *a, size_t n);
/* Every app of user, by name: instances running/total, how many of the
 * running ones answer HTTP now (each given NAP_STATUS_ANSWER_USEC). */
#define NAP_STATUS_ANSWER_USEC (300ULL * 1000ULL)
int nap_app_status(NapContext *c, const char *user, NapAppStatus **ret, size_t *ret_n, NapError *e);
