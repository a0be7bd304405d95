/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Cluster apps (docs/ARCHITECTURE.md "Cluster apps"), operations from any
 * host: start-common on a node of the cluster, named or placed, any node,
 * this one included (an assignment made in etcd, lib/cluster/assignment.h,
 * that the node's nap-node realizes, and its report waited for); the
 * cluster's instances of an app for list-instances; remove-instance,
 * stop-app, start-app and restart-app of another node's instance (its
 * assignment deleted or changed, and the node's report waited for). */

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/debug-point.h"
#include "base/strv.h"
#include "clients/gitshell.h"
#include "cluster/assignment.h"
#include "cluster/inventory.h"
#include "model/state.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"

/* The node waits up to the answer timeout for the app; its report takes a
 * moment more to come. */
#define NODE_REPORT_MARGIN_USEC (4ULL * 1000ULL * 1000ULL)

int ops_copy_params(const NapParams *from, NapParams **ret) {
        int r = nap_params_new(ret);
        for (size_t i = 0; r >= 0 && i < nap_params_size(from); i++)
                r = nap_params_set(*ret, nap_params_key(from, i), nap_params_value(from, i), NULL);
        return r;
}

static int assignment_for(const NapService *s, const NapParams *params, const NapStartOptions *o, const char *node,
                          NapAssignment *ret, NapError *e) {
        *ret = (NapAssignment) { .instance = { .service = *s, .kind = NAP_KIND_COMMON }, .resources = o->resources,
                                 .enabled = true };
        snprintf(ret->node, sizeof ret->node, "%s", node);
        if (o->request_id)
                snprintf(ret->request, sizeof ret->request, "%s", o->request_id);
        return ops_copy_params(params, &ret->params) < 0 ? nap_error_errno(e, -ENOMEM, "Failed to start") : 0;
}

/* An assignment without a commit gets the one the cluster's last deploy
 * recorded (none recorded: "", whatever the host deployed). */
static int assignment_commit(EtcdClient *etcd, const char *prefix, NapAssignment *a, NapError *e) {
        _cleanup_(nap_app_source_done) NapAppSource src = {};
        if (a->commit[0])
                return 0;
        int r = nap_app_source_get(etcd, prefix, &a->instance.service, &src, e);
        if (r > 0)
                memcpy(a->commit, src.commit, sizeof a->commit);
        return r < 0 ? r : 0;
}

/* systemd's words for a cluster instance: from its node's report, or
 * unknown/lost when the node is not Ready (its reports went with it). */
static void cluster_state(const NapAssignment *a, const NapObserved *o, bool node_ready, const char **active,
                          const char **sub) {
        static const char *const states[_NAP_OBSERVED_STATE_MAX][2] = {
                [NAP_OBSERVED_ACTIVATING] = { "activating", "start" },
                [NAP_OBSERVED_ACTIVE] = { "active", "running" },
                [NAP_OBSERVED_FAILED] = { "failed", "failed" },
                [NAP_OBSERVED_INACTIVE] = { "inactive", "dead" },
        };
        NapObservedState s = o ? o->state : a->enabled ? NAP_OBSERVED_ACTIVATING : NAP_OBSERVED_INACTIVE;
        bool known = node_ready && s >= 0 && s < _NAP_OBSERVED_STATE_MAX;
        *active = known ? states[s][0] : "unknown";
        *sub = known ? states[s][1] : "lost";
}

/* The instance as its assignment and its node's report (NULL: none yet)
 * say; address NULL: the node is not Ready. argv stays the node's: not
 * known here. */
static int info_from_cluster(const NapAssignment *a, const NapObserved *o, const char *address, NapInstanceInfo *ret) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        const char *active, *sub;
        unsigned port = address && o ? o->port : 0;
        cluster_state(a, o, address, &active, &sub);
        *ret = (NapInstanceInfo) {
                .name = strdup(nap_instance_name(&a->instance, name)),
                .unit = strdup(nap_instance_unit_name(&a->instance, unit)),
                .number = a->instance.number,
                .port = port,
                .url = port > 0 ? ops_http_url(address, port) : NULL,
                .enabled = a->enabled,
                .active_state = strdup(active),
                .sub_state = strdup(sub),
                .commit = o && !isempty(o->commit) ? strdup(o->commit) : NULL,
                .node = strdup(a->node),
                .publish = NAP_PUBLISH_DONE, /* the node's sidecar publishes it */
        };
        if (!ret->name || !ret->unit || (port > 0 && !ret->url) || !ret->active_state || !ret->sub_state ||
            (o && !isempty(o->commit) && !ret->commit) || !ret->node || ops_copy_params(a->params, &ret->params) < 0) {
                nap_instance_info_clear(ret);
                return -ENOMEM;
        }
        return 0;
}

/* Until a's node reports want (-1: any final state) at a's generation:
 * UnitFailed with the node's reason when it reports failed. */
static int wait_for_state(EtcdClient *etcd, const char *prefix, const NapAssignment *a, NapObservedState want,
                          uint64_t timeout_usec, NapObserved *ret, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        int r = nap_observed_wait_state(etcd, prefix, a->node, &a->instance, a->generation, want, timeout_usec, ret, e);
        if (r >= 0 && ret->state == NAP_OBSERVED_FAILED) {
                r = nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO, "Node %s could not %s %s: %s", a->node,
                                  want == NAP_OBSERVED_INACTIVE ? "stop" : "start",
                                  nap_instance_name(&a->instance, name), strempty(ret->reason));
                nap_observed_done(ret);
        }
        return r;
}

static uint64_t report_timeout(const NapStartOptions *o) {
        return (o && o->answer_timeout_usec ? o->answer_timeout_usec : NAP_START_ANSWER_TIMEOUT_USEC_DEFAULT) +
               NODE_REPORT_MARGIN_USEC;
}

/* Until the node reports it (not with no_block). */
static int wait_reported(EtcdClient *etcd, const char *prefix, const NapAssignment *a, const NapStartOptions *o,
                         NapObserved *ret, NapError *e) {
        if (o->no_block) {
                *ret = (NapObserved) { .state = NAP_OBSERVED_ACTIVATING };
                return 0;
        }
        return wait_for_state(etcd, prefix, a, _NAP_OBSERVED_STATE_INVALID, report_timeout(o), ret, e);
}

/* The instances each node holds (counts[i] of nodes[i]), every app's. */
static int count_assignments(EtcdClient *etcd, const char *prefix, const NapNodeInfo *nodes, size_t n,
                             unsigned *counts, NapError *e) {
        NapAssignment *l = NULL;
        size_t k = 0;
        int r = nap_assignments_list_all(etcd, prefix, &l, &k, NULL, NULL, e);
        for (size_t j = 0; r >= 0 && j < k; j++)
                for (size_t i = 0; i < n; i++)
                        counts[i] += streq(nodes[i].node.name, l[j].node);
        nap_assignment_array_free(l, k);
        return r;
}

/* Placement picks, realization reserves: the Ready node where the
 * request fits that is least loaded by it, of those the one holding the
 * fewest instances; nothing is reserved here (the node's start-common
 * does, and reports failed when it cannot). */
static int place(EtcdClient *etcd, const char *prefix, const NapCompute *resources, NapNodeInfo *ret, NapError *e) {
        NapReservation want = { .kind = NAP_RESERVATION_COMPUTE, .compute = *resources };
        _cleanup_free_ unsigned *counts = NULL;
        NapNodeInfo *nodes = NULL;
        size_t n = 0;
        int r = nap_nodes_list(etcd, prefix, &nodes, &n, e);
        if (r >= 0 && !(counts = calloc(n ?: 1, sizeof *counts)))
                r = nap_error_errno(e, -ENOMEM, "Failed to place the instance");
        if (r >= 0)
                r = count_assignments(etcd, prefix, nodes, n, counts, e);
        ssize_t k = r >= 0 ? nap_schedule_pick_counted(nodes, n, &want, NAP_POLICY_SPREAD, NULL, counts) : -1;
        if (r >= 0 && k < 0)
                r = nap_error_set(e, NAP_ERROR_INSUFFICIENT_RESOURCES, -ENOSPC,
                                  "No Ready node has room for the instance (cpu_milli=%" PRIu64 ", memory=%" PRIu64
                                  ")", resources->request_cpu_milli, resources->request_memory);
        if (r >= 0) {
                *ret = nodes[k];
                nodes[k] = (NapNodeInfo) {};
        }
        nap_node_info_array_free(nodes, n);
        return r;
}

/* The node named, or (none) the one placement picks. */
static int target_node(EtcdClient *etcd, const char *prefix, const NapStartOptions *o, NapNodeInfo *ret, NapError *e) {
        if (o->node)
                return nap_node_get(etcd, prefix, o->node, ret, e); /* a node's address, and NoSuchNode */
        return place(etcd, prefix, &o->resources, ret, e);
}

/* What can be checked before anything is written: an app deployed here
 * has its parameters checked against its profile; one that is not must
 * have been deployed in the cluster (its source recorded: the node
 * fetches its tree), else NoSuchService. */
static int check_startable(NapContext *c, EtcdClient *etcd, const NapService *s, const NapParams *params,
                           NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        _cleanup_(nap_app_source_done) NapAppSource src = {};
        NapError here = NAP_ERROR_NULL;
        int r = ops_load_service_profile(c, s, &p, &here);
        if (r >= 0)
                return ops_check_params(p, params, e);
        if (here.kind == NAP_ERROR_NO_SUCH_SERVICE)
                r = nap_app_source_get(etcd, c->config->cluster_prefix, s, &src, e);
        if (r > 0)
                return 0;
        if (r < 0 && nap_error_is_set(e))
                return r; /* etcd failed */
        return nap_error_set(e, here.kind, -(here.errnum ?: ENOENT), "%s", here.message);
}

static bool same_instance(const NapInstance *a, const NapInstance *b) {
        return a->number == b->number && streq(a->service.user, b->service.user) && streq(a->service.app, b->service.app);
}

/* A retried request (its id made an instance already): that instance's
 * assignment and node, wherever placement put it the first time. */
static int replayed(EtcdClient *etcd, const char *prefix, NapAssignment *a, NapNodeInfo *node, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        NapAssignment found = {};
        int r = nap_assignment_find(etcd, prefix, &a->instance, &found, e);
        if (r == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT, "%s, which request %s made, is gone",
                                     nap_instance_name(&a->instance, name), a->request);
        if (r < 0)
                return r;
        nap_assignment_done(a);
        *a = found;
        if (streq(node->node.name, a->node))
                return 0;
        nap_node_info_done(node);
        return nap_node_get(etcd, prefix, a->node, node, e);
}

int ops_start_common_on_node(NapContext *c, const NapService *s, const NapParams *params, const NapStartOptions *o,
                             NapInstanceInfo *ret, NapError *e) {
        const char *prefix = c->config->cluster_prefix;
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        _cleanup_(nap_node_info_done) NapNodeInfo node = {};
        _cleanup_(nap_observed_done) NapObserved report = {};
        EtcdClient *etcd;
        int r = nap_context_etcd(c, &etcd, e);
        if (r >= 0)
                r = check_startable(c, etcd, s, params, e);
        if (r >= 0)
                r = target_node(etcd, prefix, o, &node, e);
        if (r >= 0)
                r = assignment_for(s, params, o, node.node.name, &a, e);
        if (r >= 0)
                r = assignment_commit(etcd, prefix, &a, e);
        if (r >= 0)
                nap_debug_point("cluster-start:placed");
        if (r >= 0)
                r = nap_assignment_create(etcd, prefix, &a, e);
        if (r == 0) /* a retry */
                r = replayed(etcd, prefix, &a, &node, e);
        if (r >= 0)
                nap_debug_point("cluster-start:assigned");
        if (r >= 0)
                r = wait_reported(etcd, prefix, &a, o, &report, e);
        if (r >= 0 && info_from_cluster(&a, &report, node.node.address, ret) < 0)
                r = nap_error_errno(e, -ENOMEM, "Failed to describe the new instance");
        return r < 0 ? r : 0;
}

bool ops_instance_is_realized(NapContext *c, const NapInstance *i) {
        _cleanup_free_ char *mark = nap_state_cluster_realized_mark(c->config, i);
        return mark && access(mark, F_OK) >= 0;
}

int ops_unassign_if_realized(NapContext *c, const NapInstance *i, NapError *e) {
        _cleanup_free_ char *node = NULL;
        EtcdClient *etcd;
        NapError gone = NAP_ERROR_NULL;
        if (!ops_instance_is_realized(c, i))
                return 0; /* this host's own */
        int r = nap_config_node(c->config, &node, e);
        if (r >= 0)
                r = nap_context_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        r = nap_assignment_delete(etcd, c->config->cluster_prefix, node, i, &gone);
        if (r < 0 && gone.kind != NAP_ERROR_NO_SUCH_INSTANCE) /* not assigned (any more): nothing to undo */
                return nap_error_set(e, gone.kind, r, "%s", gone.message);
        return 0;
}

/* ---- the cluster's view of an app ------------------------------------- */

/* What etcd holds of the cluster: every assignment, report and node. */
typedef struct ClusterView {
        NapAssignment *assignments;
        size_t n_assignments;
        NapObserved *observed;
        size_t n_observed;
        NapNodeInfo *nodes;
        size_t n_nodes;
} ClusterView;

static void cluster_view_done(ClusterView *v) {
        nap_assignment_array_free(v->assignments, v->n_assignments);
        nap_observed_array_free(v->observed, v->n_observed);
        nap_node_info_array_free(v->nodes, v->n_nodes);
        *v = (ClusterView) {};
}

static int cluster_view_read(EtcdClient *etcd, const char *prefix, ClusterView *ret, NapError *e) {
        int r = nap_assignments_list_all(etcd, prefix, &ret->assignments, &ret->n_assignments, NULL, NULL, e);
        if (r >= 0)
                r = nap_observed_list_all(etcd, prefix, &ret->observed, &ret->n_observed, e);
        if (r >= 0)
                r = nap_nodes_list(etcd, prefix, &ret->nodes, &ret->n_nodes, e);
        if (r < 0)
                cluster_view_done(ret);
        return r;
}

/* The node's report of a's instance, of a's generation or later. */
static const NapObserved *view_report(const ClusterView *v, const NapAssignment *a) {
        for (size_t i = 0; i < v->n_observed; i++)
                if (streq(v->observed[i].node, a->node) && same_instance(&v->observed[i].instance, &a->instance) &&
                    v->observed[i].generation >= a->generation)
                        return v->observed + i;
        return NULL;
}

/* The address of a Ready node; NULL when it is not Ready (or unknown). */
static const char *view_address(const ClusterView *v, const char *node) {
        for (size_t i = 0; i < v->n_nodes; i++)
                if (streq(v->nodes[i].node.name, node))
                        return v->nodes[i].ready ? v->nodes[i].node.address : NULL;
        return NULL;
}

static const NapAssignment *view_assignment(const ClusterView *v, const NapInstance *i) {
        for (size_t k = 0; k < v->n_assignments; k++)
                if (same_instance(&v->assignments[k].instance, i))
                        return v->assignments + k;
        return NULL;
}

/* The local instances the cluster does not know of (this host's own) get
 * this host's node; those it assigns are dropped (the cluster's view
 * replaces them, the same from every host). */
static int keep_own_instances(const ClusterView *v, const char *node, NapInstanceInfo *l, size_t *n) {
        size_t kept = 0;
        int r = 0;
        for (size_t i = 0; i < *n; i++) {
                NapInstance inst;
                bool assigned = nap_instance_parse(l[i].name, &inst, NULL) >= 0 && view_assignment(v, &inst);
                if (assigned) {
                        nap_instance_info_clear(l + i);
                        continue;
                }
                if (!l[i].node && !(l[i].node = strdup(node)))
                        r = -ENOMEM;
                l[kept++] = l[i];
        }
        *n = kept;
        return r;
}

/* The cluster's instances of s appended to *l. */
static int add_cluster_instances(const ClusterView *v, const NapService *s, NapInstanceInfo **l, size_t *n) {
        NapInstanceInfo *grown = reallocarray(*l, *n + v->n_assignments + 1, sizeof **l);
        if (!grown)
                return -ENOMEM;
        *l = grown;
        for (size_t k = 0; k < v->n_assignments; k++) {
                const NapAssignment *a = v->assignments + k;
                if (!streq(a->instance.service.user, s->user) || !streq(a->instance.service.app, s->app))
                        continue;
                int r = info_from_cluster(a, view_report(v, a), view_address(v, a->node), *l + *n);
                if (r < 0)
                        return r;
                ++*n;
        }
        return 0;
}

/* Without etcd (away, or not set): the local list, its node this one. */
static int name_own_instances(NapContext *c, NapInstanceInfo *l, size_t n) {
        _cleanup_free_ char *node = NULL;
        if (nap_config_node(c->config, &node, NULL) < 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!l[i].node && !(l[i].node = strdup(node)))
                        return -ENOMEM;
        return 0;
}

int ops_cluster_instances(NapContext *c, const NapService *s, NapInstanceInfo **l, size_t *n, NapError *e) {
        _cleanup_free_ char *node = NULL;
        ClusterView v = {};
        EtcdClient *etcd;
        NapError away = NAP_ERROR_NULL;
        if (!c->config->etcd)
                return 0;
        if (nap_config_node(c->config, &node, &away) < 0 || nap_context_etcd(c, &etcd, &away) < 0 ||
            cluster_view_read(etcd, c->config->cluster_prefix, &v, &away) < 0)
                return name_own_instances(c, *l, *n) < 0 ? nap_error_errno(e, -ENOMEM, "Failed to list instances") : 0;
        int r = keep_own_instances(&v, node, *l, n);
        if (r >= 0)
                r = add_cluster_instances(&v, s, l, n);
        cluster_view_done(&v);
        return r < 0 ? nap_error_errno(e, r, "Failed to list instances") : 0;
}

/* ---- acting on an instance of another host ---------------------------- */

static bool has_manifest(NapContext *c, const NapInstance *i) {
        _cleanup_free_ char *manifest = nap_manifest_path(c->config->instances_dir, i);
        return manifest && access(manifest, F_OK) >= 0;
}

/* Whether i is this host's own (a manifest, no mark): then etcd has
 * nothing to say about it, and is not asked. */
static bool own_instance(NapContext *c, const NapInstance *i) {
        _cleanup_free_ char *mark = nap_state_cluster_realized_mark(c->config, i);
        return mark && has_manifest(c, i) && access(mark, F_OK) < 0;
}

/* i's assignment, whatever its node: 1 and *ret, 0 none (or no Etcd=, or
 * i this host's own). */
static int find_assignment(NapContext *c, const NapInstance *i, EtcdClient **ret_etcd, NapAssignment *ret,
                           NapError *e) {
        if (!c->config->etcd || c->node_agent || own_instance(c, i))
                return 0;
        int r = nap_context_etcd(c, ret_etcd, e);
        return r < 0 ? r : nap_assignment_find(*ret_etcd, c->config->cluster_prefix, i, ret, e);
}

/* 1 when a's node is another host (this one acts on nothing itself). */
static int elsewhere(NapContext *c, const NapAssignment *a, NapError *e) {
        _cleanup_free_ char *node = NULL;
        int r = nap_config_node(c->config, &node, e);
        return r < 0 ? r : !streq(node, a->node);
}

int ops_cluster_remove(NapContext *c, const NapInstance *i, NapError *e) {
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        EtcdClient *etcd;
        /* a copy here goes by the local path, which takes only this
         * node's assignment with it: one moved away meanwhile stays */
        if (has_manifest(c, i))
                return 0;
        int r = find_assignment(c, i, &etcd, &a, e);
        if (r <= 0)
                return r;
        r = nap_assignment_delete(etcd, c->config->cluster_prefix, a.node, i, e);
        /* the node withdraws its report once it removed the instance (a
         * dead node's went with its lease) */
        if (r >= 0)
                r = nap_observed_wait_gone(etcd, c->config->cluster_prefix, a.node, i, report_timeout(NULL), e);
        return r < 0 ? r : 1;
}

/* Once a's node (when Ready: a dead one's instance waits for the
 * reconciler) reports it stopped (inactive) or started (active). */
static int wait_enabled_acted_on(EtcdClient *etcd, const char *prefix, const NapAssignment *a, NapError *e) {
        _cleanup_(nap_node_info_done) NapNodeInfo node = {};
        _cleanup_(nap_observed_done) NapObserved report = {};
        int r = nap_node_get(etcd, prefix, a->node, &node, e);
        if (r < 0 || !node.ready)
                return r;
        return wait_for_state(etcd, prefix, a, a->enabled ? NAP_OBSERVED_ACTIVE : NAP_OBSERVED_INACTIVE,
                              report_timeout(NULL), &report, e);
}

int ops_cluster_set_enabled(NapContext *c, const NapInstance *i, bool enabled, bool wait, NapError *e) {
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        EtcdClient *etcd;
        int r = find_assignment(c, i, &etcd, &a, e);
        if (r > 0)
                r = nap_assignment_set_enabled(etcd, c->config->cluster_prefix, &a, enabled, e);
        if (r < 0 || !a.node[0])
                return r < 0 ? r : 0;
        r = elsewhere(c, &a, e);
        if (r <= 0)
                return r; /* this node's: the local path acts */
        if (wait)
                r = wait_enabled_acted_on(etcd, c->config->cluster_prefix, &a, e);
        return r < 0 ? r : 1;
}

int ops_cluster_restart(NapContext *c, const NapInstance *i, bool no_block, NapError *e) {
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        EtcdClient *etcd;
        int r = find_assignment(c, i, &etcd, &a, e);
        if (r > 0)
                r = elsewhere(c, &a, e);
        if (r <= 0)
                return r; /* this host's: the local path restarts it */
        r = nap_assignment_restart(etcd, c->config->cluster_prefix, &a, e);
        if (r >= 0 && !no_block)
                r = wait_enabled_acted_on(etcd, c->config->cluster_prefix, &a, e);
        return r < 0 ? r : 1;
}

int ops_cluster_port(NapContext *c, const NapInstance *i, unsigned *ret) {
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        NapObserved *l = NULL;
        EtcdClient *etcd;
        size_t n = 0;
        unsigned port = 0;
        if (find_assignment(c, i, &etcd, &a, NULL) <= 0 ||
            nap_observed_list(etcd, c->config->cluster_prefix, a.node, &l, &n, NULL) < 0)
                return 0;
        for (size_t k = 0; k < n; k++)
                if (same_instance(&l[k].instance, i) && l[k].generation >= a.generation)
                        port = l[k].port;
        nap_observed_array_free(l, n);
        *ret = port;
        return port > 0;
}

/* ---- app sources: trees reach hosts ----------------------------------- */

/* The app's repository that git pushes go to on this host? */
static bool is_push_repository(NapContext *c, const NapService *s, const char *url) {
        _cleanup_free_ char *repo = nap_git_repo_path(c->config, s);
        char a[PATH_MAX], b[PATH_MAX];
        return repo && realpath(repo, a) && realpath(url, b) && streq(a, b);
}

int ops_cluster_node(NapContext *c, EtcdClient **ret_etcd, char **ret_node, NapError *e) {
        _cleanup_(nap_node_info_done) NapNodeInfo info = {};
        _cleanup_free_ char *node = NULL;
        NapError none = NAP_ERROR_NULL;
        if (!c->config->etcd || nap_config_node(c->config, &node, NULL) < 0)
                return 0;
        int r = nap_context_etcd(c, ret_etcd, e);
        if (r >= 0)
                r = nap_node_get(*ret_etcd, c->config->cluster_prefix, node, &info, &none);
        if (r < 0 && none.kind == NAP_ERROR_NO_SUCH_NODE)
                return 0;
        if (r < 0 && none.kind == NAP_ERROR_NOT_AVAILABLE)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOTCONN,
                                     "Whether this host is a node of a cluster is not known: %s", none.message);
        if (r < 0)
                return nap_error_is_set(e) ? r : nap_error_set(e, none.kind, r, "%s", none.message);
        *ret_node = TAKE_PTR(node);
        return 1;
}

int ops_record_app_source(NapContext *c, const NapService *s, const char *url, const char *commit, NapError *e) {
        _cleanup_(nap_app_source_done) NapAppSource src = { .service = *s, .time_usec = realtime_usec() };
        _cleanup_free_ char *node = NULL;
        EtcdClient *etcd;
        int r = ops_cluster_node(c, &etcd, &node, e);
        if (r <= 0)
                return r;
        src.url = strdup(url);
        if (!src.url)
                return nap_error_errno(e, -ENOMEM, "Failed to record the app's source");
        snprintf(src.commit, sizeof src.commit, "%s", commit);
        snprintf(src.node, sizeof src.node, "%s", node);
        src.pushed = url[0] == '/' && is_push_repository(c, s, url);
        r = nap_app_source_put(etcd, c->config->cluster_prefix, &src, e);
        return r < 0 ? r : 1;
}

static bool has_service(const NapServiceInfo *l, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i].name, name))
                        return true;
        return false;
}

static int service_info_from_source(const NapAppSource *src, NapServiceInfo *ret) {
        char name[NAP_SERVICE_NAME_MAX];
        *ret = (NapServiceInfo) { .name = strdup(nap_service_name(&src->service, name)),
                                  .app = strdup(src->service.app), .url = strdup(src->url),
                                  .commit = strdup(src->commit), .deployed_usec = src->time_usec };
        return ret->name && ret->app && ret->url && ret->commit ? 0 : -ENOMEM;
}

int ops_cluster_services(NapContext *c, const char *user, NapServiceInfo **list, size_t *n) {
        _cleanup_free_ char *node = NULL;
        NapAppSource *src = NULL;
        size_t n_src = 0;
        EtcdClient *etcd;
        int r = 0;
        if (ops_cluster_node(c, &etcd, &node, NULL) <= 0 ||
            nap_app_sources_list(etcd, c->config->cluster_prefix, user, &src, &n_src, NULL) < 0)
                return 0;
        for (size_t i = 0; r >= 0 && i < n_src; i++) {
                char name[NAP_SERVICE_NAME_MAX];
                if (has_service(*list, *n, nap_service_name(&src[i].service, name)))
                        continue;
                NapServiceInfo *l = reallocarray(*list, *n + 1, sizeof **list);
                if (!l)
                        r = -ENOMEM;
                else
                        r = service_info_from_source(src + i, (*list = l) + (*n)++); /* freed with the list */
        }
        nap_app_source_array_free(src, n_src);
        return r;
}

int ops_cluster_follow(NapContext *c, const NapService *s, const char *previous, const NapRolloutOptions *o,
                       NapDeployResult *d, NapError *e) {
        NapError unknown = NAP_ERROR_NULL;
        int r = ops_cluster_rollout(c, s, previous, d->commit, o, &unknown);
        if (r != -ENOTCONN)
                return r < 0 ? nap_error_set(e, unknown.kind, r, "%s", unknown.message) : r;
        if (d->publish != NAP_PUBLISH_PENDING) {
                d->publish = NAP_PUBLISH_PENDING;
                nap_error_set(&d->publish_error, unknown.kind, -ENOTCONN,
                              "The cluster's instances were not rolled (deploy again once etcd answers): %s",
                              unknown.message);
        }
        return 0;
}

void ops_publish_app_source(NapContext *c, const NapService *s, const char *url, NapDeployResult *d) {
        NapError e = NAP_ERROR_NULL;
        if (ops_record_app_source(c, s, url, d->commit, &e) >= 0 || d->publish == NAP_PUBLISH_PENDING)
                return;
        d->publish = NAP_PUBLISH_PENDING;
        nap_error_set(&d->publish_error, e.kind, -e.errnum, "The app's source for the cluster: %s", e.message);
}
