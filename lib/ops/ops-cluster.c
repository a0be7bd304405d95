/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Cluster apps (docs/ARCHITECTURE.md "Cluster apps"): start-common on a
 * node of the cluster, any node, this one included: an assignment made in
 * etcd (lib/cluster/assignment.h) that the node's nap-node realizes, and
 * its report waited for. */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
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

static int assignment_for(const NapService *s, const NapParams *params, const NapStartOptions *o,
                          NapAssignment *ret, NapError *e) {
        *ret = (NapAssignment) { .instance = { .service = *s, .kind = NAP_KIND_COMMON }, .resources = o->resources,
                                 .enabled = true };
        snprintf(ret->node, sizeof ret->node, "%s", o->node);
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

/* The answer: the instance as its node reported it (argv stays the
 * node's: not known here). */
static int info_from_report(const NapAssignment *a, const NapObserved *o, const char *address, NapInstanceInfo *ret) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        bool active = o->state == NAP_OBSERVED_ACTIVE;
        *ret = (NapInstanceInfo) {
                .name = strdup(nap_instance_name(&a->instance, name)),
                .unit = strdup(nap_instance_unit_name(&a->instance, unit)),
                .number = a->instance.number,
                .port = o->port,
                .url = o->port > 0 ? ops_http_url(address, o->port) : NULL,
                .enabled = a->enabled,
                .active_state = strdup(active ? "active" : "activating"),
                .sub_state = strdup(active ? "running" : "start"),
                .commit = isempty(o->commit) ? NULL : strdup(o->commit),
                .publish = NAP_PUBLISH_DONE, /* the node's sidecar publishes it */
        };
        if (!ret->name || !ret->unit || (o->port > 0 && !ret->url) || !ret->active_state || !ret->sub_state ||
            ops_copy_params(a->params, &ret->params) < 0) {
                nap_instance_info_clear(ret);
                return -ENOMEM;
        }
        return 0;
}

/* Until the node reports it (not with no_block): UnitFailed with the
 * node's reason when it failed. */
static int wait_reported(EtcdClient *etcd, const char *prefix, const NapAssignment *a, const NapStartOptions *o,
                         NapObserved *ret, NapError *e) {
        uint64_t timeout = (o->answer_timeout_usec ?: NAP_START_ANSWER_TIMEOUT_USEC_DEFAULT) + NODE_REPORT_MARGIN_USEC;
        char name[NAP_UNIT_NAME_MAX];
        if (o->no_block) {
                *ret = (NapObserved) { .state = NAP_OBSERVED_ACTIVATING };
                return 0;
        }
        int r = nap_observed_wait(etcd, prefix, a->node, &a->instance, a->generation, timeout, ret, e);
        if (r >= 0 && ret->state == NAP_OBSERVED_FAILED) {
                r = nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO, "Node %s could not start %s: %s", a->node,
                                  nap_instance_name(&a->instance, name), strempty(ret->reason));
                nap_observed_done(ret);
        }
        return r;
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
                r = nap_node_get(etcd, prefix, o->node, &node, e); /* a node's address, and NoSuchNode */
        if (r >= 0)
                r = assignment_for(s, params, o, &a, e);
        if (r >= 0)
                r = assignment_commit(etcd, prefix, &a, e);
        if (r >= 0)
                r = nap_assignment_create(etcd, prefix, &a, e);
        if (r >= 0)
                r = wait_reported(etcd, prefix, &a, o, &report, e);
        if (r >= 0 && info_from_report(&a, &report, node.node.address, ret) < 0)
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
