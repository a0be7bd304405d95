/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The node's assignments made real on this host: realize.h says what and
 * why in a thread. Only this file's thread touches its context and etcd
 * client; the lease is the one value shared with nap-node's loop. */

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../common/log.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "clients/gitshell.h"
#include "clients/systemd1.h"
#include "cluster/assignment.h"
#include "model/manifest.h"
#include "model/state.h"
#include "ops/ops.h"
#include "node-etcd.h"
#include "realize.h"

#define RETRY_USEC (2ULL * 1000000ULL)
#define ETCD_TIMEOUT_USEC (5ULL * 1000000ULL)

struct Realizer {
        const NapConfig *config;
        char node[NAP_NODE_NAME_MAX + 1];
        pthread_t thread;
        volatile sig_atomic_t stop;
        /* stop, or a new lease: the watch (or pause) ends, a pass begins */
        volatile sig_atomic_t interrupt;
        int64_t lease; /* __atomic: written by the loop, read by the thread */
        /* __atomic, fencing: the loop registers only once fenced; a lost
         * lease has every cluster instance stopped first (stop_all) */
        int fenced;
        int stop_all;
        /* __atomic, CLOCK_MONOTONIC: NodeTTL= after the last renewal that
         * worked was sent; past it, the fence thread stops the cluster
         * instances (0: not registered) */
        uint64_t deadline;
        int fence_stopped; /* __atomic: the fence thread stopped them */
        pthread_t fence_thread;
        sd_bus *fence_bus; /* the fence thread's own */
        /* the thread's own */
        NapContext *context;
        EtcdClient *etcd;
        char *marks;   /* ROOT/cluster/realized */
        NapObserved *observed; /* the reports as the pass began */
        size_t n_observed;
        int64_t pass_lease;    /* the lease of the last pass */
};

static int64_t lease_of(Realizer *r) {
        return __atomic_load_n(&r->lease, __ATOMIC_ACQUIRE);
}

/* Reports on a new lease are all made again (the old one's vanish with
 * it), at once. */
void realizer_set_lease(Realizer *r, int64_t lease) {
        if (!r)
                return;
        if (lease == 0 && lease_of(r) != 0) {
                __atomic_store_n(&r->stop_all, 1, __ATOMIC_RELEASE);
                __atomic_store_n(&r->fenced, 0, __ATOMIC_RELEASE);
        }
        if (__atomic_exchange_n(&r->lease, lease, __ATOMIC_ACQ_REL) == lease)
                return;
        r->interrupt = 1;
}

void realizer_renewed(Realizer *r, uint64_t deadline) {
        if (!r)
                return;
        __atomic_store_n(&r->deadline, deadline, __ATOMIC_RELEASE);
        /* stopped for a renewal that came late: started again now */
        if (deadline != 0 && __atomic_exchange_n(&r->fence_stopped, 0, __ATOMIC_ACQ_REL))
                r->interrupt = 1;
}

bool realizer_fenced(Realizer *r) {
        return r && __atomic_load_n(&r->fenced, __ATOMIC_ACQUIRE);
}

/* Sleeps up to usec, less when interrupted. */
static void pause_usec(Realizer *r, uint64_t usec) {
        for (uint64_t t = 0; t < usec && !r->interrupt; t += 100000)
                (void) usleep(100000);
}

/* ---- reports ---------------------------------------------------------- */

static bool assigned(const NapAssignment *l, size_t n, const NapInstance *i) {
        for (size_t k = 0; k < n; k++)
                if (l[k].instance.number == i->number &&
                    memcmp(&l[k].instance.service, &i->service, sizeof i->service) == 0)
                        return true;
        return false;
}

static const NapObserved *last_report(const Realizer *r, const NapInstance *i) {
        for (size_t k = 0; k < r->n_observed; k++)
                if (r->observed[k].instance.number == i->number &&
                    memcmp(&r->observed[k].instance.service, &i->service, sizeof i->service) == 0)
                        return r->observed + k;
        return NULL;
}

static bool same_report(const NapObserved *a, const NapObserved *b) {
        return a && a->state == b->state && a->port == b->port && a->generation == b->generation &&
               streq(a->commit, b->commit) && streq(strempty(a->reason), strempty(b->reason));
}

/* What the host sees of an assignment, to etcd on the membership lease
 * (not when it says what the last report said already). */
static void report(Realizer *r, const NapAssignment *a, NapObservedState state, unsigned port, const char *commit,
                   const char *reason) {
        char name[NAP_UNIT_NAME_MAX];
        NapError e = NAP_ERROR_NULL;
        NapObserved o = { .instance = a->instance, .state = state, .port = port, .generation = a->generation,
                          .time_usec = realtime_usec(), .reason = (char *) reason };
        snprintf(o.node, sizeof o.node, "%s", r->node);
        if (commit && nap_commit_is_valid(commit))
                snprintf(o.commit, sizeof o.commit, "%s", commit);
        int64_t lease = lease_of(r);
        if (lease == 0 || same_report(last_report(r, &a->instance), &o))
                return;
        if (nap_observed_put(r->etcd, r->config->cluster_prefix, &o, lease, &e) < 0)
                log_warning("Reporting %s as %s failed: %s", nap_instance_name(&a->instance, name),
                            nap_observed_state_to_string(state), e.message);
}

/* ---- marks ------------------------------------------------------------ */

static char *mark_path(const Realizer *r, const NapInstance *i) {
        return nap_state_cluster_realized_mark(r->config, i);
}

static bool is_marked(const Realizer *r, const NapInstance *i) {
        _cleanup_free_ char *p = mark_path(r, i);
        return p && access(p, F_OK) >= 0;
}

/* The mark holds the assignment's last restart this host carried out
 * (empty: none), so that each restart is done once, not on every pass. */
static int mark(const Realizer *r, const NapInstance *i, uint64_t restart) {
        _cleanup_free_ char *p = mark_path(r, i);
        char text[24] = "";
        int k = p ? mkdir_p(r->marks, 0755) : -ENOMEM;
        if (restart > 0)
                snprintf(text, sizeof text, "%" PRIu64, restart);
        return k < 0 ? k : write_file_atomic(p, text, strlen(text), 0644);
}

/* The restart the mark says was done; 0 (none) when it is empty or not a
 * number: a damaged mark costs at most one restart more. */
static uint64_t restart_done(const Realizer *r, const NapInstance *i) {
        _cleanup_free_ char *p = mark_path(r, i), *text = NULL;
        char *end = NULL;
        if (!p || read_full_file(p, 32, &text, NULL) < 0 || !text || text[0] < '0' || text[0] > '9')
                return 0;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        return errno == 0 && *end == '\0' ? (uint64_t) v : 0;
}

static void unmark(const Realizer *r, const NapInstance *i) {
        _cleanup_free_ char *p = mark_path(r, i);
        if (p)
                (void) unlink(p);
}

/* ---- one assignment --------------------------------------------------- */

static bool has_manifest(const Realizer *r, const NapInstance *i) {
        _cleanup_free_ char *p = nap_manifest_path(r->config->instances_dir, i);
        return p && access(p, F_OK) >= 0;
}

/* The local instance as nap lists it (manifest and unit state); 0 if
 * none (the app not deployed here included). */
static int local_instance(Realizer *r, const NapInstance *i, NapInstanceInfo *ret, NapError *e) {
        char service[NAP_SERVICE_NAME_MAX];
        NapInstanceInfo *l = NULL;
        size_t n = 0;
        int k = nap_list_instances(r->context, nap_service_name(&i->service, service), &l, &n, e);
        if (k < 0)
                return e->kind == NAP_ERROR_NO_SUCH_SERVICE ? 0 : k;
        k = 0;
        for (size_t j = 0; j < n && k == 0; j++)
                if (l[j].number == i->number) {
                        *ret = l[j];
                        l[j] = (NapInstanceInfo) {};
                        k = 1;
                }
        nap_instance_info_array_free(l, n);
        return k;
}

/* ---- the tree at the assignment's commit ------------------------------ */

/* The commit of the app's tree deployed here into buf: "" when there is
 * none; "?" when its commit is unknown. */
static void deployed_commit(Realizer *r, const NapService *s, char buf[static NAP_COMMIT_HEX_LEN + 1]) {
        char service[NAP_SERVICE_NAME_MAX];
        NapServiceInfo *l = NULL;
        size_t n = 0;
        buf[0] = 0;
        nap_service_name(s, service);
        if (nap_list_services(r->context, s->user, &l, &n, NULL) < 0)
                return;
        for (size_t j = 0; j < n; j++)
                if (streq(l[j].name, service))
                        snprintf(buf, NAP_COMMIT_HEX_LEN + 1, "%s", l[j].commit ?: "?");
        nap_service_info_array_free(l, n);
}

static char *what_is_here(const char *service, const char *have) {
        if (!have[0])
                return strdup_printf("%s is not deployed here", service);
        return strdup_printf("%s is deployed here at %s", service, streq(have, "?") ? "an unknown commit" : have);
}

/* The assignment's commit fetched from where the cluster's last deploy
 * recorded the app comes from, and deployed here (the app's tree only:
 * instances have trees of their own): NULL when done, else why not. A
 * failed fetch leaves nothing (the deploy's staging and intent). */
static char *fetch_commit(Realizer *r, const NapAssignment *a, const char *have) {
        char service[NAP_SERVICE_NAME_MAX];
        _cleanup_(nap_app_source_done) NapAppSource src = {};
        _cleanup_free_ char *here = what_is_here(nap_service_name(&a->instance.service, service), have);
        NapDeployResult res = {};
        NapError e = NAP_ERROR_NULL;
        int k = nap_app_source_get(r->etcd, r->config->cluster_prefix, &a->instance.service, &src, &e);
        if (k < 0)
                return strdup_printf("%s, assigned at %s; reading where it comes from failed: %.500s", here ?: service,
                                     a->commit, e.message);
        if (k == 0)
                return strdup_printf("%s, assigned at %s; no deploy of it is recorded in the cluster", here ?: service,
                                     a->commit);
        /* a pushed app: this host's copy of the repository (nap-git-shell --replica) */
        _cleanup_free_ char *replica = src.pushed ? nap_git_repo_path(r->config, &a->instance.service) : NULL;
        const char *url = replica ?: src.url;
        if (src.pushed && (!replica || access(replica, F_OK) < 0))
                return strdup_printf("%s, assigned at %s; it was pushed to %s, and its repository was not copied "
                                     "here (ReplicaKey= on %s, nap-git-shell --replica here)", here ?: service,
                                     a->commit, src.node, src.node);
        log_info("Fetching %s at %s from %s", service, a->commit, url);
        if (nap_deploy_app_at(r->context, service, url, a->commit, &res, &e) < 0)
                return strdup_printf("Cannot get %s at %s from %.200s: %.500s", service, a->commit, url, e.message);
        log_info("Deployed %s at %s for its assignments", service, a->commit);
        return NULL;
}

/* The assignment's commit deployed here, fetched when it is not: NULL
 * when it is there (or the assignment names none), else why not. */
static char *tree_at_commit(Realizer *r, const NapAssignment *a) {
        char have[NAP_COMMIT_HEX_LEN + 1];
        if (isempty(a->commit))
                return NULL;
        deployed_commit(r, &a->instance.service, have);
        return streq(have, a->commit) ? NULL : fetch_commit(r, a, have);
}

/* ---- one new instance ------------------------------------------------- */

/* A new instance: marked first (so a crash leaves it ours), then the
 * start-common path with the assignment's number, waiting until it
 * answers. */
static void realize_new(Realizer *r, const NapAssignment *a) {
        char name[NAP_UNIT_NAME_MAX], service[NAP_SERVICE_NAME_MAX];
        _cleanup_free_ char *missing = tree_at_commit(r, a);
        NapStartOptions o = { .number = a->instance.number, .resources = a->resources };
        NapInstanceInfo info = {};
        NapError e = NAP_ERROR_NULL;
        nap_instance_name(&a->instance, name);
        if (missing) {
                log_warning("Cannot realize %s: %s", name, missing);
                return report(r, a, NAP_OBSERVED_FAILED, 0, NULL, missing);
        }
        int k = mark(r, &a->instance, a->restart); /* new: restarted already */
        if (k < 0)
                return (void) log_error_errno(k, "Failed to mark %s as the cluster's: %m", name);
        report(r, a, NAP_OBSERVED_ACTIVATING, 0, NULL, NULL);
        k = nap_start_common(r->context, nap_service_name(&a->instance.service, service), a->params, &o, &info, &e);
        if (k < 0) {
                log_warning("Realizing %s failed: %s", name, e.message);
                report(r, a, NAP_OBSERVED_FAILED, 0, NULL, e.message);
        } else {
                log_info("Realized %s on port %u", name, info.port);
                report(r, a, NAP_OBSERVED_ACTIVE, info.port, info.commit, NULL);
        }
        nap_instance_info_clear(&info);
}

/* ---- enabled=false: stopped, kept ------------------------------------ */

/* A disabled assignment's instance: stopped (and not started at boot),
 * kept, reported inactive; a failed stop is reported failed. info is
 * consumed. */
static void realize_disabled(Realizer *r, const NapAssignment *a, NapInstanceInfo *info) {
        char name[NAP_UNIT_NAME_MAX];
        NapError e = NAP_ERROR_NULL;
        int k = 0;
        nap_instance_name(&a->instance, name);
        if (!streq(info->active_state, "inactive") && !streq(info->active_state, "failed")) {
                k = nap_stop_app(r->context, name, &e);
                if (k >= 0)
                        log_info("Stopped %s: its assignment is disabled", name);
        }
        if (k < 0)
                report(r, a, NAP_OBSERVED_FAILED, info->port, info->commit, e.message);
        else
                report(r, a, NAP_OBSERVED_INACTIVE, info->port, info->commit, NULL);
        nap_instance_info_clear(info);
}

/* An enabled instance restarted as its assignment asks (restart-app from
 * another host), or started again when inactive (a start cut short). The
 * restart is marked done after it: a crash between the two repeats it. */
static int start_or_restart(Realizer *r, const NapAssignment *a, NapInstanceInfo *info, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        bool restart = a->restart > restart_done(r, &a->instance);
        nap_instance_name(&a->instance, name);
        if (!restart && !streq(info->active_state, "inactive"))
                return 1;
        int k = restart ? nap_restart_app(r->context, name, false, e) : nap_start_app(r->context, name, false, e);
        if (k >= 0)
                log_info("%s %s", restart ? "Restarted" : "Started again", name);
        /* tried: not again on the next pass, whatever came of it (a failed
         * one is reported failed, as a failed restart-app here says) */
        int m = restart ? mark(r, &a->instance, a->restart) : 0;
        if (k >= 0 && m < 0)
                k = nap_error_errno(e, m, "Failed to mark the restart of %s", name);
        nap_instance_info_clear(info);
        return k < 0 ? k : local_instance(r, &a->instance, info, e);
}

/* An instance made before: reported as systemd sees it; restarted or
 * started again when enabled (start_or_restart()). */
static void realize_existing(Realizer *r, const NapAssignment *a) {
        NapInstanceInfo info = {};
        NapError e = NAP_ERROR_NULL;
        int k = local_instance(r, &a->instance, &info, &e);
        if (k > 0 && a->enabled)
                k = start_or_restart(r, a, &info, &e);
        if (k > 0 && !a->enabled)
                return realize_disabled(r, a, &info);
        if (k < 0)
                report(r, a, NAP_OBSERVED_FAILED, 0, NULL, e.message);
        else if (k > 0 && streq(info.active_state, "active"))
                report(r, a, NAP_OBSERVED_ACTIVE, info.port, info.commit, NULL);
        else if (k > 0 && streq(info.active_state, "activating"))
                report(r, a, NAP_OBSERVED_ACTIVATING, info.port, info.commit, NULL);
        else
                report(r, a, NAP_OBSERVED_FAILED, info.port, info.commit, "its unit is not running");
        nap_instance_info_clear(&info);
}

static void realize(Realizer *r, const NapAssignment *a) {
        if (!has_manifest(r, &a->instance) && !a->enabled)
                return report(r, a, NAP_OBSERVED_INACTIVE, 0, NULL, NULL); /* made when enabled */
        if (!has_manifest(r, &a->instance))
                return realize_new(r, a);
        if (!is_marked(r, &a->instance))
                return report(r, a, NAP_OBSERVED_FAILED, 0, NULL,
                              "an instance of that number exists on this host and was not made from an assignment");
        realize_existing(r, a);
}

/* A marked instance no longer assigned here: stopped and removed, its
 * report withdrawn, then its mark. */
static void unrealize(Realizer *r, const NapInstance *i) {
        char name[NAP_UNIT_NAME_MAX];
        NapError e = NAP_ERROR_NULL;
        int k = nap_remove_instance(r->context, nap_instance_name(i, name), &e);
        if (k < 0 && e.kind != NAP_ERROR_NO_SUCH_INSTANCE && e.kind != NAP_ERROR_NO_SUCH_SERVICE)
                return (void) log_warning("Removing %s, no longer assigned here, failed: %s", name, e.message);
        if (k >= 0)
                log_info("Removed %s: no longer assigned to this node", name);
        if (nap_observed_delete(r->etcd, r->config->cluster_prefix, r->node, i, &e) < 0)
                return (void) log_warning("Withdrawing the report of %s failed: %s", name, e.message);
        unmark(r, i);
}

/* ---- a pass ----------------------------------------------------------- */

/* Reports of instances neither assigned nor marked here (one that could
 * not even start) go. */
static void withdraw_unassigned_reports(Realizer *r, const NapAssignment *l, size_t n) {
        NapError e = NAP_ERROR_NULL;
        for (size_t k = 0; k < r->n_observed; k++)
                if (!assigned(l, n, &r->observed[k].instance) && !is_marked(r, &r->observed[k].instance) &&
                    nap_observed_delete(r->etcd, r->config->cluster_prefix, r->node, &r->observed[k].instance, &e) < 0)
                        log_warning("Withdrawing a report failed: %s", e.message);
}

static void unrealize_unassigned(Realizer *r, const NapAssignment *l, size_t n) {
        _cleanup_closedir_ DIR *d = opendir(r->marks);
        struct dirent *de;
        NapInstance i;
        while (d && (de = readdir(d)))
                if (nap_instance_parse(de->d_name, &i, NULL) >= 0 && !assigned(l, n, &i))
                        unrealize(r, &i);
}

static void observed_reset(Realizer *r) {
        nap_observed_array_free(r->observed, r->n_observed);
        r->observed = NULL;
        r->n_observed = 0;
}

/* One pass, on lease (reports of an earlier lease are not trusted: they
 * may be gone); the revision the assignments were read at. */
static int pass(Realizer *r, int64_t lease, int64_t *ret_revision) {
        NapAssignment *l = NULL;
        size_t n = 0;
        unsigned damaged = 0;
        NapError e = NAP_ERROR_NULL;
        int k = nap_assignments_list(r->etcd, r->config->cluster_prefix, r->node, &l, &n, ret_revision, &damaged, &e);
        if (k < 0)
                return log_warning_errno(k, "Reading this node's assignments failed: %s", e.message);
        if (damaged > 0)
                log_warning("%u damaged assignment(s) of this node left alone", damaged);
        observed_reset(r);
        (void) nap_observed_list(r->etcd, r->config->cluster_prefix, r->node, &r->observed, &r->n_observed, NULL);
        unrealize_unassigned(r, l, n);
        withdraw_unassigned_reports(r, l, n);
        if (lease != r->pass_lease)
                observed_reset(r);
        r->pass_lease = lease;
        for (size_t j = 0; j < n && !r->stop && lease_of(r) == lease; j++)
                realize(r, l + j);
        nap_assignment_array_free(l, n);
        return 0;
}

static int on_change(const EtcdEvent *event, void *userdata) {
        return 1; /* any change: the next pass reads them all */
}

static void wait_for_change(Realizer *r, int64_t revision) {
        NapError e = NAP_ERROR_NULL;
        _cleanup_free_ char *dir = nap_key_assignments(r->config->cluster_prefix, r->node);
        EtcdWatchOptions o = { .prefix = true, .start_revision = revision + 1, .duration_usec = REALIZE_RESYNC_USEC,
                               .cancel = &r->interrupt, .on_event = on_change };
        int k = dir ? etcd_watch(r->etcd, dir, &o, NULL, &e) : -ENOMEM;
        if (k < 0) {
                log_debug("Watching this node's assignments failed: %s", e.message);
                pause_usec(r, RETRY_USEC);
        }
}

/* ---- fencing --------------------------------------------------------- */

/* The lease was lost: the node may have been declared dead and its
 * instances moved, so every cluster instance here stops now, without
 * asking etcd (which may be out of reach). Still assigned ones are started
 * again by the first pass after registering again. */
static void stop_marked(Realizer *r) {
        _cleanup_closedir_ DIR *d = opendir(r->marks);
        struct dirent *de;
        NapInstance i;
        while (d && (de = readdir(d))) {
                NapError e = NAP_ERROR_NULL;
                if (nap_instance_parse(de->d_name, &i, NULL) < 0)
                        continue;
                if (nap_stop_app(r->context, de->d_name, &e) < 0)
                        log_warning("Stopping %s (this node's membership is lost) failed: %s", de->d_name,
                                    e.message);
                else
                        log_info("Stopped %s: this node's membership is lost, it may run elsewhere now",
                                 de->d_name);
        }
}

/* Before the node registers (at start, and after a lost lease): every
 * marked instance no longer assigned here is stopped and removed, before
 * anything is realized or reported. 0: fenced. */
static int fence(Realizer *r) {
        NapAssignment *l = NULL;
        size_t n = 0;
        NapError e = NAP_ERROR_NULL;
        if (__atomic_exchange_n(&r->stop_all, 0, __ATOMIC_ACQ_REL))
                stop_marked(r);
        int k = nap_assignments_list(r->etcd, r->config->cluster_prefix, r->node, &l, &n, NULL, NULL, &e);
        if (k < 0)
                return log_debug_errno(k, "Fencing: reading this node's assignments failed: %s", e.message);
        unrealize_unassigned(r, l, n);
        nap_assignment_array_free(l, n);
        __atomic_store_n(&r->fenced, 1, __ATOMIC_RELEASE);
        log_debug("Fenced: every cluster instance here is assigned here");
        return 0;
}

/* Every marked instance's processes sent SIGTERM (it must stop serving
 * now, not after its sidecar, which stops first and may wait seconds on
 * etcd to withdraw its key; SIGTERM is a clean exit, so Restart=on-failure
 * does not start it again), then its unit stopped (its sidecar with it),
 * straight through systemd: no app lock, no manifest written, nothing
 * that another thread may hold for seconds. */
static void stop_marked_units(Realizer *r) {
        _cleanup_closedir_ DIR *d = opendir(r->marks);
        char units[64][NAP_UNIT_NAME_MAX], *l[64];
        struct dirent *de;
        NapError e = NAP_ERROR_NULL;
        NapInstance i;
        size_t n = 0;
        if (!r->fence_bus && nap_systemd_open(r->config->scope, &r->fence_bus, &e) < 0) {
                log_error("Cannot stop the cluster instances: %s", e.message);
                return;
        }
        while (d && (de = readdir(d))) {
                if (nap_instance_parse(de->d_name, &i, NULL) < 0)
                        continue;
                l[n] = (char *) nap_instance_unit_name(&i, units[n]);
                int k = nap_systemd_kill_unit(r->fence_bus, l[n], SIGTERM);
                if (k < 0)
                        log_warning_errno(k, "Killing %s failed: %m", l[n]);
                if (++n < ELEMENTSOF(units))
                        continue;
                if (nap_systemd_stop_units(r->fence_bus, l, n, &e) < 0)
                        log_warning("Stopping cluster instances failed: %s", e.message);
                n = 0;
        }
        if (n > 0 && nap_systemd_stop_units(r->fence_bus, l, n, &e) < 0)
                log_warning("Stopping cluster instances failed: %s", e.message);
}

/* The deadline kept on its own: the loop's keep-alive and this file's
 * passes may block on an unreachable etcd for seconds, but the instances
 * must stop once the membership may have expired, before the reconciler
 * may move them (ReconcileGraceSec= after the last renewal). A renewal
 * after that (etcd was slow, not gone) has the next pass start them
 * again at once. */
static void *fence_main(void *userdata) {
        Realizer *r = userdata;
        uint64_t stopped_at = 0; /* the deadline acted on */
        while (!r->stop) {
                uint64_t deadline = __atomic_load_n(&r->deadline, __ATOMIC_ACQUIRE);
                if (deadline != 0 && deadline != stopped_at && monotonic_usec() >= deadline) {
                        log_warning("This node's membership was not renewed within NodeTTL=%u s: stopping its "
                                    "cluster instances", r->config->node_ttl);
                        stop_marked_units(r);
                        stopped_at = deadline;
                        __atomic_store_n(&r->fence_stopped, 1, __ATOMIC_RELEASE);
                        /* renewed while stopping them: started again now */
                        if (__atomic_load_n(&r->deadline, __ATOMIC_ACQUIRE) != deadline)
                                r->interrupt = 1;
                }
                (void) usleep(50000);
        }
        return NULL;
}

/* Passes run while registered: the node's reports need its lease, and a
 * host that comes back must not act on assignments before it is a member
 * again. */
static void *realizer_main(void *userdata) {
        Realizer *r = userdata;
        while (!r->stop) {
                int64_t revision = 0, lease = lease_of(r);
                r->interrupt = r->stop;
                if (lease == 0) {
                        if (!realizer_fenced(r) && fence(r) >= 0)
                                continue;
                        pause_usec(r, realizer_fenced(r) ? REALIZE_RESYNC_USEC : RETRY_USEC);
                        continue;
                }
                if (pass(r, lease, &revision) < 0) {
                        pause_usec(r, RETRY_USEC);
                        continue;
                }
                wait_for_change(r, revision);
        }
        return NULL;
}

/* ---- life ------------------------------------------------------------- */

static void realizer_free(Realizer *r) {
        if (!r)
                return;
        observed_reset(r);
        nap_context_free(r->context);
        sd_bus_flush_close_unref(r->fence_bus);
        etcd_client_free(r->etcd);
        free(r->marks);
        free(r);
}

static void warn_config(void *userdata, const char *message) {
        log_debug("%s", message);
}

int realizer_start(const NapConfig *config, const char *node, Realizer **ret) {
        Realizer *r = calloc(1, sizeof *r);
        NapError e = NAP_ERROR_NULL;
        if (!r)
                return log_error_errno(-ENOMEM, "Out of memory");
        r->config = config;
        snprintf(r->node, sizeof r->node, "%s", node);
        /* its own context (nap.conf read again) and etcd client: a thread's */
        int k = nap_context_new(&r->context, -1, warn_config, NULL, &e);
        if (k >= 0)
                r->context->node_agent = true; /* acts on this host's instances, not on assignments */
        /* the fence's connection is made now, so that fencing does not wait
         * on a connect; without a manager yet, when it must fence */
        if (k >= 0 && nap_systemd_open(config->scope, &r->fence_bus, &e) < 0) {
                log_warning("No connection to systemd yet (tried again when fencing): %s", e.message);
                e = NAP_ERROR_NULL;
        }
        if (k >= 0)
                k = node_etcd_client(config, ETCD_TIMEOUT_USEC, &r->etcd, &e);
        if (k >= 0 && !(r->marks = nap_state_cluster_realized_dir(config)))
                k = nap_error_errno(&e, -ENOMEM, "Out of memory");
        if (k < 0) {
                realizer_free(r);
                return log_error_errno(k, "Cannot realize assignments: %s", e.message);
        }
        k = -pthread_create(&r->fence_thread, NULL, fence_main, r);
        if (k < 0) {
                realizer_free(r);
                return log_error_errno(k, "Failed to start the fencing thread: %m");
        }
        k = -pthread_create(&r->thread, NULL, realizer_main, r);
        if (k < 0) {
                r->stop = 1;
                (void) pthread_join(r->fence_thread, NULL);
                realizer_free(r);
                return log_error_errno(k, "Failed to start the realizing thread: %m");
        }
        *ret = r;
        return 0;
}

Realizer *realizer_stop(Realizer *r) {
        if (!r)
                return NULL;
        r->stop = r->interrupt = 1;
        (void) pthread_join(r->thread, NULL);
        (void) pthread_join(r->fence_thread, NULL);
        realizer_free(r);
        return NULL;
}
