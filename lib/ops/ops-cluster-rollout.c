/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Rolling deploys across hosts (docs/ARCHITECTURE.md "Cluster apps",
 * "Rollouts across hosts"): the cluster's instances of an app moved to
 * the commit just deployed, batch by batch, start new then withdraw, as a
 * host's own rollout does, with assignments for instances:
 *
 *   1. for each old assignment of the batch, a new one on the same node at
 *      the new commit (its params and resources; a new number from the
 *      app's counter), whose node fetches the tree, starts the instance
 *      and reports it active once it answers;
 *   2. once every new one of the batch is active, the old ones are
 *      deleted: their nodes stop and remove them.
 *
 * A new instance that fails on any node rolls every node back: the
 * batch's new assignments are deleted (its old ones still run), and the
 * old instances withdrawn in earlier batches are replaced back at their
 * own commit, as the host's rollout does. Each new assignment's request id
 * names the old instance and the commit ("roll:N:COMMIT"), so a rollout
 * run again after a crash finds the replacements it made instead of
 * making more. */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/spawn.h"
#include "base/strv.h"
#include "cluster/assignment.h"
#include "cluster/inventory.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"

/* The node waits up to the answer timeout for the app (after fetching its
 * tree); its report takes a moment more to come. */
#define NODE_MARGIN_USEC (15ULL * 1000ULL * 1000ULL)

typedef struct ClusterRollout {
        NapContext *c;
        EtcdClient *etcd;
        const char *prefix;
        NapService s;
        NapRolloutOptions o;
        NapAssignment *old; /* the app's assignments at another commit */
        size_t n_old;
        NapAssignment *new; /* new[k] replaces old[k] once made (number > 0) */
        NapAssignment *back; /* back[k] replaces new[k] when rolled back */
} ClusterRollout;

static void cluster_rollout_done(ClusterRollout *cr) {
        nap_assignment_array_free(cr->old, cr->n_old);
        nap_assignment_array_free(cr->new, cr->n_old);
        nap_assignment_array_free(cr->back, cr->n_old);
}

static void progress(const ClusterRollout *cr, const char *fmt, ...) _printf_(2, 3);
static void progress(const ClusterRollout *cr, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        if (!cr->o.progress)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        cr->o.progress(cr->o.userdata, msg);
}

/* The app's assignments whose commit is another than commit (one range
 * read of every node's), in key order. */
static int read_old(ClusterRollout *cr, const char *commit, NapError *e) {
        NapAssignment *l = NULL;
        size_t n = 0;
        int r = nap_assignments_list_all(cr->etcd, cr->prefix, &l, &n, NULL, NULL, e);
        if (r < 0)
                return r;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                bool ours = memcmp(&l[i].instance.service, &cr->s, sizeof cr->s) == 0 && !streq(l[i].commit, commit);
                if (ours)
                        l[k++] = l[i];
                else
                        nap_assignment_done(l + i);
        }
        cr->old = l;
        cr->n_old = k;
        cr->new = k > 0 ? calloc(k, sizeof *cr->new) : NULL;
        cr->back = k > 0 ? calloc(k, sizeof *cr->back) : NULL;
        return k == 0 || (cr->new && cr->back) ? 0 : nap_error_errno(e, -ENOMEM, "Failed to roll out");
}

/* A replacement of a on its node at commit: same params, resources and
 * port, a new number. Made once per (a, commit): a retry finds it. */
static int replacement(ClusterRollout *cr, const NapAssignment *a, const char *commit, NapAssignment *ret,
                       NapError *e) {
        *ret = (NapAssignment) { .instance = { .service = a->instance.service, .kind = NAP_KIND_COMMON },
                                 .port = a->port, .resources = a->resources, .enabled = a->enabled };
        memcpy(ret->node, a->node, sizeof ret->node);
        memcpy(ret->commit, commit, sizeof ret->commit);
        snprintf(ret->request, sizeof ret->request, "roll:%u:%s", a->instance.number, commit);
        if (ops_copy_params(a->params, &ret->params) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to roll out");
        int r = nap_assignment_create(cr->etcd, cr->prefix, ret, e);
        if (r == 0)
                ret->generation = 1; /* made by an earlier run: its first realization */
        return r < 0 ? r : 0;
}

/* Until a's node reports it active; UnitFailed with the node's reason. */
static int wait_active(ClusterRollout *cr, const NapAssignment *a, NapError *e) {
        uint64_t timeout = (cr->o.answer_timeout_usec ?: NAP_ANSWER_TIMEOUT_USEC_DEFAULT) + NODE_MARGIN_USEC;
        _cleanup_(nap_observed_done) NapObserved o = {};
        char name[NAP_UNIT_NAME_MAX];
        int r = nap_observed_wait(cr->etcd, cr->prefix, a->node, &a->instance, a->generation, timeout, &o, e);
        if (r >= 0 && o.state == NAP_OBSERVED_FAILED)
                r = nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO, "Node %s could not run %s at %.12s: %s", a->node,
                                  nap_instance_name(&a->instance, name), a->commit, strempty(o.reason));
        return r;
}

/* to[k] made for each from[k] of [begin, end) at commit (from's own when
 * commit is NULL), then each waited for. */
static int start_batch(ClusterRollout *cr, const NapAssignment *from, NapAssignment *to, size_t begin, size_t end,
                       const char *commit, NapError *e) {
        int r = 0;
        for (size_t k = begin; r >= 0 && k < end; k++)
                r = replacement(cr, from + k, commit ?: from[k].commit, to + k, e);
        for (size_t k = begin; r >= 0 && k < end; k++)
                r = wait_active(cr, to + k, e);
        return r;
}

/* Deleted (if made): its node stops and removes it. Gone already is
 * fine. */
static void withdraw(ClusterRollout *cr, const NapAssignment *a) {
        char name[NAP_UNIT_NAME_MAX];
        NapError e = NAP_ERROR_NULL;
        if (a->instance.number == 0)
                return;
        if (nap_assignment_delete(cr->etcd, cr->prefix, a->node, &a->instance, &e) < 0 &&
            e.kind != NAP_ERROR_NO_SUCH_INSTANCE)
                progress(cr, "withdrawing %s on %s failed: %s", nap_instance_name(&a->instance, name), a->node,
                         e.message);
}

/* A new instance failed in the batch [begin, end): its new assignments
 * go (the old ones run still), and the old ones withdrawn before it are
 * replaced back at their own commit, then their replacements go. Why
 * replacing back failed is appended to e (the new version's instances of
 * the earlier batches then keep running). */
static void roll_back(ClusterRollout *cr, size_t begin, size_t end, NapError *e) {
        NapError why = NAP_ERROR_NULL;
        char b[NAP_ERROR_MESSAGE_MAX];
        for (size_t k = begin; k < end; k++)
                withdraw(cr, cr->new + k);
        if (begin == 0)
                return;
        progress(cr, "replacing back the %zu instance(s) already rolled", begin);
        if (start_batch(cr, cr->old, cr->back, 0, begin, NULL, &why) < 0) {
                snprintf(b, sizeof b, "; replacing back the instances already rolled failed: %.400s", why.message);
                return ops_error_append(e, b);
        }
        for (size_t k = 0; k < begin; k++)
                withdraw(cr, cr->new + k);
}

static int roll(ClusterRollout *cr, const char *commit, NapError *e) {
        NapRolloutBatch b = cr->o.batch.value > 0 ? cr->o.batch : cr->c->config->rollout_batch;
        size_t size = MAX(nap_rollout_batch_size(b, (unsigned) cr->n_old), 1U);
        for (size_t begin = 0; begin < cr->n_old; begin += size) {
                size_t end = MIN(begin + size, cr->n_old);
                progress(cr, "rolling instances %zu-%zu of %zu on the cluster's nodes to %.12s", begin + 1, end,
                         cr->n_old, commit);
                int r = start_batch(cr, cr->old, cr->new, begin, end, commit, e);
                if (r < 0) {
                        roll_back(cr, begin, end, e);
                        return r;
                }
                for (size_t k = begin; k < end; k++)
                        withdraw(cr, cr->old + k);
        }
        return 0;
}

int ops_cluster_rollout(NapContext *c, const NapService *s, const char *commit, const NapRolloutOptions *o,
                        NapError *e) {
        _cleanup_(cluster_rollout_done) ClusterRollout cr = { .c = c, .prefix = c->config->cluster_prefix, .s = *s,
                                                              .o = o ? *o : (NapRolloutOptions) {} };
        _cleanup_free_ char *node = NULL;
        int r = ops_cluster_node(c, &cr.etcd, &node, e);
        if (r <= 0)
                return r;
        r = read_old(&cr, commit, e);
        if (r < 0 || cr.n_old == 0)
                return r;
        r = roll(&cr, commit, e);
        return r < 0 ? r : (int) cr.n_old;
}

/* ---- pushed repositories reach every node --------------------------------- */

#define REPLICATE_TIMEOUT_USEC (120ULL * 1000ULL * 1000ULL)
#define REPLICATE_OUTPUT_MAX (16U * 1024U)

/* git's environment: ours (but where a hook's git would send it:
 * GIT_DIR, GIT_SSH*), and ssh with the replica key, trusting only the
 * known host keys, never asking. */
static char **replica_environment(const NapConfig *config) {
        extern char **environ;
        char **env = NULL;
        for (char **v = environ; v && *v; v++)
                if (!startswith(*v, "GIT_DIR=") && !startswith(*v, "GIT_SSH") && strv_extend(&env, *v) < 0)
                        return strv_free(env);
        char *ssh = strdup_printf("GIT_SSH_COMMAND=ssh -i '%s' -o BatchMode=yes -o IdentitiesOnly=yes "
                                  "-o StrictHostKeyChecking=yes -o UserKnownHostsFile='%s' -o ConnectTimeout=5",
                                  config->replica_key, config->replica_known_hosts);
        if (!ssh || strv_consume(&env, ssh) < 0)
                return strv_free(env);
        return env;
}

/* The first line git (or ssh) said, the one that says why. */
static const char *first_line(char *out) {
        if (!out || !*out)
                return "no message";
        out[strcspn(out, "\n")] = 0;
        return out;
}

/* Every branch of repo pushed to node's repository of the app
 * (nap-git-shell --replica there). */
static int replicate_to(NapContext *c, const NapService *s, const char *repo, const NapNode *node, char **env,
                        NapError *e) {
        char name[NAP_SERVICE_NAME_MAX];
        bool v6 = strchr(node->address, ':');
        _cleanup_free_ char *out = NULL;
        _cleanup_free_ char *url = strdup_printf("ssh://%s@%s%s%s/%s.git", c->config->replica_user, v6 ? "[" : "",
                                                 node->address, v6 ? "]" : "", nap_service_name(s, name));
        if (!url)
                return nap_error_errno(e, -ENOMEM, "Failed to replicate");
        char *argv[] = { (char *) "git", (char *) "-C", (char *) repo, (char *) "push", (char *) "--force",
                         (char *) "--quiet", url, (char *) "+refs/heads/*:refs/heads/*", NULL };
        int r = nap_spawn_capture(NULL, argv, env, STDERR_FILENO, REPLICATE_OUTPUT_MAX, REPLICATE_TIMEOUT_USEC, &out);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_INTERNAL, r, "Pushing %s's repository to %s failed: %.300s", name,
                                     node->name, r == -EIO ? first_line(out) : strerror(-r));
        return 0;
}

static int replica_config_check(const NapConfig *config, NapError *e) {
        if (!config->replica_key)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOKEY,
                                     "No ReplicaKey= in nap.conf: pushed repositories are not copied to other nodes");
        if (strchr(config->replica_key, '\'') || strchr(config->replica_known_hosts, '\''))
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL,
                                     "ReplicaKey= and ReplicaKnownHosts= must not contain a quote");
        return 0;
}

int ops_replicate_push(NapContext *c, const NapService *s, const char *repo, const NapRolloutOptions *o,
                       NapError *e) {
        NapRolloutOptions opts = o ? *o : (NapRolloutOptions) {};
        ClusterRollout progress_to = { .o = opts };
        char name[NAP_SERVICE_NAME_MAX];
        _cleanup_free_ char *self = NULL;
        _cleanup_strv_free_ char **env = NULL;
        NapNodeInfo *l = NULL;
        size_t n = 0;
        unsigned done = 0;
        EtcdClient *etcd;
        int r = ops_cluster_node(c, &etcd, &self, e);
        if (r <= 0)
                return r;
        r = replica_config_check(c->config, e);
        if (r >= 0)
                r = nap_nodes_list(etcd, c->config->cluster_prefix, &l, &n, e);
        if (r >= 0 && !(env = replica_environment(c->config)))
                r = nap_error_errno(e, -ENOMEM, "Failed to replicate");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                NapError why = NAP_ERROR_NULL;
                if (!l[i].ready || streq(l[i].node.name, self))
                        continue;
                if (replicate_to(c, s, repo, &l[i].node, env, &why) < 0)
                        progress(&progress_to, "%s", why.message);
                else
                        done++;
        }
        nap_node_info_array_free(l, n);
        if (done > 0)
                progress(&progress_to, "copied %s's repository to %u other node(s)", nap_service_name(s, name), done);
        return r < 0 ? r : (int) done;
}
