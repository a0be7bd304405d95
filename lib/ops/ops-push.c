/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Push deploys and rollback: deploy_commit, rollback, refresh_instances.
 * A rollout is one transaction under the app's lock that replaces
 * instances instead of restarting them: the new tree is staged beside the
 * deployed one and swapped in (SERVICE_DIR.deploy-XXXXXX/tree, exchanged
 * by renameat2(RENAME_EXCHANGE)); then, batch by batch, new instances are
 * made from it through the start-common path (new numbers, new ports, the
 * old ones' parameters and resources), started, and waited for until they
 * answer and (with Etcd=) their endpoints are published; only then are the
 * old ones of the batch retired: endpoint withdrawn (their discovery
 * sidecar stopped), a drain, removed (the remove-instance path). So the
 * app answers throughout, even with one instance. A new version that does
 * not answer has its instances removed and the old ones were never
 * touched; instances already replaced in earlier batches are replaced
 * back from the previous tree. The intent record (lib/model/intent.h)
 * says which old instance each new one replaces, for recovery. */

#include <fcntl.h>
#include <stdio.h>
#include <time.h>

#include "base/clock.h"
#include "clients/fetch-commit.h"
#include "base/debug-point.h"
#include "base/fileio.h"
#include "model/manifest.h"
#include "model/unit.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"
#include "model/state.h"
#include "base/strv.h"
#include "clients/systemd1.h"

#define PUBLISHED_POLL_USEC (100ULL * 1000ULL)

typedef struct Step {
        unsigned number;   /* the old instance's */
        NapManifest *old;  /* NULL once removed (or gone before a recovery) */
        NapManifest *new;  /* its replacement, once made */
        NapParams *params; /* what the replacement gets */
        bool running;      /* the old one ran: the new one is started */
        bool withdrawn;    /* the old one's endpoint is withdrawn */
        bool fresh;        /* the new one was made by this run: never started */
} Step;

typedef struct Rollout {
        NapContext *c;
        NapService s;
        NapRolloutOptions o;
        NapRolloutResult *ret;
        char *service_dir;
        char *staging;         /* holds the new tree; after the swap, the old one */
        bool had_tree, tree_swapped;
        Step *steps;
        size_t n_steps;
        NapManifest *created;  /* the first instance of an app that had none */
        char *previous_url;    /* where the deployed commit came from */
        bool recovering;       /* recovery runs it: its intent is the record */
        NapIntent intent;      /* the record, rewritten as instances are made */
        bool recorded;
        uint64_t drain_until;  /* withdrawn old instances go from then on */
        sd_bus *bus;           /* the context's; set once needed */
} Rollout;

void ops_error_append(NapError *e, const char *s) {
        size_t l = strlen(e->message);
        if (nap_error_is_set(e))
                snprintf(e->message + l, sizeof e->message - l, "%s", s);
}

static const char *name_of(const NapManifest *m, char buf[static NAP_UNIT_NAME_MAX]) {
        return nap_instance_name(&m->instance, buf);
}

static void steps_free(Step *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                nap_manifest_free(l[i].old);
                nap_manifest_free(l[i].new);
                nap_params_free(l[i].params);
        }
        free(l);
}

static void rollout_done(Rollout *ro) {
        steps_free(ro->steps, ro->n_steps);
        if (ro->staging)
                (void) rm_rf(ro->staging); /* the old tree after a success, the new one after a failure */
        free(ro->staging);
        free(ro->service_dir);
        free(ro->previous_url);
        nap_manifest_free(ro->created);
        nap_intent_done(&ro->intent);
        *ro = (Rollout) {};
}

static int add_step(Rollout *ro, unsigned number, NapManifest *m) {
        Step *l = reallocarray(ro->steps, ro->n_steps + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        ro->steps = l;
        l[ro->n_steps++] = (Step) { .number = number, .old = m };
        return 0;
}

/* The app's common instances, from their manifests, by number; not
 * those nap-node made from an assignment (the cluster's rollout replaces
 * them through their assignments). */
static int load_steps(Rollout *ro, NapError *e) {
        NapManifest **l = NULL;
        size_t n = 0;
        int r = nap_state_load_service_manifests(ro->c->config, &ro->s, &l, &n, e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (l[i]->instance.kind != NAP_KIND_COMMON || ops_instance_is_realized(ro->c, &l[i]->instance))
                        continue;
                r = add_step(ro, l[i]->instance.number, l[i]);
                if (r < 0)
                        r = nap_error_errno(e, r, "Failed to list instances");
                else
                        l[i] = NULL; /* the step has it */
        }
        nap_state_manifests_free(l, n);
        return r;
}

/* The parameters an instance keeps. A manifest records every value used,
 * defaults too; a value equal to the old profile's default was (as far as
 * anyone can tell) the default, so the new profile's default replaces it,
 * and it goes if the new profile dropped the parameter. Other values were
 * chosen: they are kept, and a new profile that refuses them fails. */
static int carry_params(const NapProfile *old, const NapProfile *new, const NapParams *values, NapParams **ret) {
        _cleanup_(nap_params_freep) NapParams *l = NULL;
        int r = nap_params_new(&l);
        for (size_t i = 0; r >= 0 && values && i < nap_params_size(values); i++) {
                const char *k = nap_params_key(values, i), *v = nap_params_value(values, i);
                const char *was = old ? nap_profile_default(old, k) : NULL;
                bool defaulted = was && streq(was, v);
                bool required = strv_contains(nap_profile_parameters(new), k) && !nap_profile_default(new, k);
                if (!defaulted || required)
                        r = nap_params_set(l, k, v, NULL);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

/* The replacement's parameters, checked against the new profile before
 * anything changes. */
static int plan_step(Step *st, const NapProfile *old, const NapProfile *p, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        if (carry_params(old, p, st->old->params, &st->params) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to plan the rollout");
        int r = ops_check_params(p, st->params, e);
        if (r < 0)
                nap_error_prefix(e, "The new profile does not accept the parameters of %s: ", name_of(st->old, name));
        return r;
}

static int plan(Rollout *ro, const NapProfile *p, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *old = NULL;
        /* The profile deployed now, for its defaults (none: values kept). */
        (void) ops_load_profile_in(ro->service_dir, &old, NULL);
        for (size_t i = 0; i < ro->n_steps; i++)
                if (ro->steps[i].old && !ro->steps[i].new) {
                        int r = plan_step(ro->steps + i, old, p, e);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static bool unit_runs(sd_bus *bus, const char *unit, NapError *e, int *r) {
        NapUnitStatus u = {};
        *r = nap_systemd_get_unit_status(bus, unit, &u, e);
        bool running = *r >= 0 && nap_unit_state_is_running(u.active_state);
        nap_unit_status_clear(&u);
        return running;
}

static int read_running(Rollout *ro, NapError *e) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < ro->n_steps; i++) {
                char unit[NAP_UNIT_NAME_MAX];
                nap_instance_unit_name(&ro->steps[i].old->instance, unit);
                ro->steps[i].running = unit_runs(ro->bus, unit, e, &r);
        }
        return r;
}

/* ---- the intent ------------------------------------------------------- */

static int numbers_of_steps(const Rollout *ro, bool running_only, unsigned **ret, size_t *ret_n) {
        unsigned *l = ro->n_steps > 0 ? calloc(ro->n_steps, sizeof *l) : NULL;
        size_t n = 0;
        if (ro->n_steps > 0 && !l)
                return -ENOMEM;
        for (size_t i = 0; i < ro->n_steps; i++)
                if (!running_only || ro->steps[i].running)
                        l[n++] = ro->steps[i].number;
        free(*ret);
        *ret = l;
        *ret_n = n;
        return 0;
}

/* What recovery needs: the commit deployed before and where it came from,
 * the old instances in the order they are replaced, those running, and
 * (as they are made, rollout_save()) their replacements. Written before
 * staging, again once it is known what runs. */
static int record_intent(Rollout *ro, const char *commit, NapError *e) {
        NapIntent *in = &ro->intent;
        if (ro->recovering)
                return 0;
        in->operation = NAP_INTENT_ROLLOUT;
        in->service = ro->s;
        snprintf(in->commit, sizeof in->commit, "%s", strempty(commit));
        if (ro->ret->previous[0] && ro->previous_url && !in->previous_url) {
                snprintf(in->previous_commit, sizeof in->previous_commit, "%s", ro->ret->previous);
                in->previous_url = strdup(ro->previous_url);
        }
        int r = (ro->ret->previous[0] && ro->previous_url && !in->previous_url) ? -ENOMEM : 0;
        if (r >= 0)
                r = numbers_of_steps(ro, false, &in->instances, &in->n_instances);
        if (r >= 0)
                r = numbers_of_steps(ro, true, &in->running, &in->n_running);
        r = r < 0 ? nap_error_errno(e, r, "Failed to record the rollout") : ops_intent_begin(ro->c, in, e);
        ro->recorded = r >= 0;
        return r;
}

/* The record to give ops_create_instance(), which writes it with the new
 * number before it makes anything; NULL when recovery runs the rollout
 * (its own record stays what it was, the one recovery works from). */
static NapIntent *creation_record(Rollout *ro) {
        if (!ro->recorded)
                return NULL;
        ro->intent.number = 0;
        ro->intent.node[0] = 0;
        return &ro->intent;
}

static int note_added(Rollout *ro, unsigned number) {
        NapIntent *in = &ro->intent;
        if (!ro->recorded)
                return 0;
        unsigned *l = reallocarray(in->added, in->n_added + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        in->added = l;
        l[in->n_added++] = number;
        return 0;
}

/* ---- waiting ---------------------------------------------------------- */

static uint64_t answer_timeout(const Rollout *ro) {
        return ro->o.answer_timeout_usec > 0 ? ro->o.answer_timeout_usec : NAP_ANSWER_TIMEOUT_USEC_DEFAULT;
}

static uint64_t drain_usec(const Rollout *ro) {
        if (ro->o.drain_usec == NAP_ROLLOUT_NO_DRAIN)
                return 0;
        return ro->o.drain_usec > 0 ? ro->o.drain_usec : ro->c->config->rollout_drain_sec * USEC_PER_SEC;
}

static NapRolloutBatch batch(const Rollout *ro) {
        return ro->o.batch.value > 0 ? ro->o.batch : ro->c->config->rollout_batch;
}

static void sleep_until(uint64_t t) {
        for (uint64_t now = monotonic_usec(); now < t; now = monotonic_usec()) {
                struct timespec ts = { .tv_sec = (time_t) ((t - now) / USEC_PER_SEC),
                                       .tv_nsec = (long) ((t - now) % USEC_PER_SEC * 1000) };
                (void) nanosleep(&ts, NULL);
        }
}

static int wait_instance(Rollout *ro, const NapManifest *m, NapError *e) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        name_of(m, name);
        int r = ops_wait_instance_answering(ro->c, nap_instance_unit_name(&m->instance, unit), m->port,
                                            answer_timeout(ro), e);
        if (r < 0) {
                /* A line of its own: the error must keep room for what
                 * the rollout says after it (rolled back, or not). */
                _cleanup_free_ char *journal = ops_journal_summary(ro->c, unit);
                if (journal)
                        ops_progress(&ro->o, "%s: %s", name, journal);
                nap_error_prefix(e, "%s: ", name);
                return r;
        }
        ops_progress(&ro->o, "%s: answers on port %u", name, m->port);
        (void) ops_publish_instance(ro->c, m);
        return 0;
}

static bool has_discovery(const Rollout *ro) {
        return nap_unit_has_discovery(NAP_KIND_COMMON, ro->c->config);
}

static bool all_published(const NapEndpointList *l, const Step *from, const Step *to) {
        for (const Step *st = from; st < to; st++) {
                char name[NAP_UNIT_NAME_MAX];
                bool found = !st->running;
                for (size_t k = 0; !found && k < l->n; k++)
                        found = streq_ptr(l->items[k].instance, name_of(st->new, name));
                if (!found)
                        return false;
        }
        return true;
}

/* Until etcd lists the endpoints of the batch's new instances that run
 * (their sidecars publish once they answer), so that clients can find
 * them before the old ones go. etcd not answering: not waited for. */
static int wait_published(Rollout *ro, Step *from, Step *to, NapError *e) {
        char service[NAP_SERVICE_NAME_MAX];
        uint64_t deadline = monotonic_usec() + answer_timeout(ro);
        if (!has_discovery(ro))
                return 0;
        nap_service_name(&ro->s, service);
        for (;;) {
                NapEndpointList l = {};
                NapError why = NAP_ERROR_NULL;
                if (nap_list_endpoints(ro->c, service, &l, &why) < 0) {
                        ops_progress(&ro->o, "etcd: %s; not waiting for the new endpoints", why.message);
                        return 0;
                }
                bool done = all_published(&l, from, to);
                nap_endpoint_list_done(&l);
                if (done)
                        return 0;
                if (monotonic_usec() >= deadline)
                        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT,
                                             "the new instances' endpoints were not published within %.1f s",
                                             (double) answer_timeout(ro) / 1e6);
                sleep_until(monotonic_usec() + PUBLISHED_POLL_USEC);
        }
}

/* ---- one instance ------------------------------------------------------ */

static void discovery_unit(const NapManifest *m, char buf[static NAP_UNIT_NAME_MAX]) {
        char service[NAP_SERVICE_NAME_MAX];
        snprintf(buf, NAP_UNIT_NAME_MAX, "%s_discovery@%u.service", nap_service_name(&m->instance.service, service),
                 m->instance.number);
}

/* The replacement of st's old instance: the start-common path (number,
 * port, tree from the deployed tree, manifest), with the old one's
 * parameters, resources and enablement; not started yet. */
static int create_replacement(Rollout *ro, const NapProfile *p, Step *st, NapError *e) {
        char name[NAP_UNIT_NAME_MAX], old[NAP_UNIT_NAME_MAX];
        _cleanup_(nap_manifest_freep) NapManifest *m = calloc(1, sizeof *m);
        if (!m)
                return nap_error_errno(e, -ENOMEM, "Failed to replace %s", name_of(st->old, old));
        m->resources = st->old->resources;
        int r = ops_create_instance(ro->c, &ro->s, p, st->params, creation_record(ro), m, e);
        if (r >= 0 && m->enabled != st->old->enabled) {
                m->enabled = st->old->enabled; /* stopped with stop-app: stays stopped at boot */
                r = nap_manifest_save(ro->c->config->instances_dir, m, e);
                if (r >= 0)
                        r = ops_units_install(ro->c, m, e);
        }
        if (r >= 0 && note_added(ro, m->instance.number) < 0)
                r = nap_error_errno(e, -ENOMEM, "Failed to record the rollout");
        if (r < 0) {
                nap_error_prefix(e, "Replacing %s: ", name_of(st->old, old));
                return r;
        }
        ops_progress(&ro->o, "%s: made on port %u, to replace %s%s", name_of(m, name), m->port, name_of(st->old, old),
                 st->running ? "" : " (stopped: stays stopped)");
        st->new = TAKE_PTR(m);
        st->fresh = true;
        return 0;
}

static int start_instance(Rollout *ro, const NapManifest *m, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        nap_instance_unit_name(&m->instance, unit);
        (void) nap_systemd_reset_failed_unit(ro->bus, unit);
        int r = ops_container_build(ro->c, m, &ro->o, e); /* a container's image first */
        if (r >= 0 && (r = nap_systemd_start_unit(ro->bus, unit, e)) < 0)
                ops_container_explain(ro->c, m, e);
        return r;
}

/* Clients stop finding the batch's old instances: their sidecars revoke
 * their leases as they stop, all at once. Without Etcd= there is nothing
 * published to withdraw, and so nothing to drain: 1 when there is. */
static int withdraw(Rollout *ro, Step *from, Step *to, NapError *e) {
        _cleanup_strv_free_ char **units = NULL;
        int r = 0;
        for (Step *st = from; st < to; st++)
                if (st->old) {
                        st->withdrawn = true;
                        if (st->running && has_discovery(ro) && r >= 0) {
                                char unit[NAP_UNIT_NAME_MAX];
                                discovery_unit(st->old, unit);
                                r = strv_extend(&units, unit);
                        }
                }
        if (r < 0)
                return nap_error_errno(e, r, "Failed to withdraw the old instances");
        if (!units)
                return 0;
        r = nap_systemd_stop_units(ro->bus, units, strv_length(units), e);
        for (Step *st = from; r >= 0 && st < to; st++)
                if (st->old && st->running) {
                        char name[NAP_UNIT_NAME_MAX];
                        ops_progress(&ro->o, "%s: endpoint withdrawn", name_of(st->old, name));
                }
        return r < 0 ? r : 1;
}

static bool is_withdrawn(const Step *st) {
        return st->withdrawn && st->old;
}

static bool starts_new(const Step *st) {
        return st->running && st->new;
}

/* The units of the old (new_ones: new) instances of the steps in [from,
 * to) that pick takes. */
static int units_of(Step *from, Step *to, bool new_ones, bool (*pick)(const Step *st), char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        int r = 0;
        for (Step *st = from; r >= 0 && st < to; st++) {
                char unit[NAP_UNIT_NAME_MAX];
                if (pick(st))
                        r = strv_extend(&l, nap_instance_unit_name(&(new_ones ? st->new : st->old)->instance, unit));
        }
        *ret = TAKE_PTR(l);
        return r;
}

/* Jobs for many units at once, run by the manager side by side. */
static int batch_jobs(Rollout *ro, Step *from, Step *to, bool new_ones, bool (*pick)(const Step *st),
                      int (*jobs)(sd_bus *bus, char *const *units, size_t n, NapError *e), NapError *e) {
        _cleanup_strv_free_ char **units = NULL;
        int r = units_of(from, to, new_ones, pick, &units);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to list the batch's units");
        return units ? jobs(ro->bus, units, strv_length(units), e) : 0;
}

/* The withdrawn old instances, once their drain is over: stopped all at
 * once, then removed one by one. */
static int retire_withdrawn(Rollout *ro, NapError *e) {
        sleep_until(ro->drain_until);
        int r = batch_jobs(ro, ro->steps, ro->steps + ro->n_steps, false, is_withdrawn, nap_systemd_stop_units, e);
        for (size_t i = 0; r >= 0 && i < ro->n_steps; i++) {
                Step *st = ro->steps + i;
                char name[NAP_UNIT_NAME_MAX];
                if (!is_withdrawn(st))
                        continue;
                r = ops_remove_instance_locked(ro->c, &st->old->instance, e);
                if (r < 0)
                        break;
                ops_progress(&ro->o, "%s: removed", name_of(st->old, name));
                st->old = nap_manifest_free(st->old);
                nap_debug_point("rollout:retired");
        }
        return r;
}

/* ---- batches ------------------------------------------------------------ */

/* What the manager must know of a new manifest before it can start: its
 * units installed (again: a replacement made just before a crash may not
 * have them yet) and loaded, without a reload (ops_units_load()). */
static int make_unit_known(Rollout *ro, const NapManifest *m, NapError *e) {
        int r = ops_units_install(ro->c, m, e);
        return r < 0 ? r : ops_units_load(ro->c, &m->instance, e);
}

static int make_units_known(Rollout *ro, Step *from, Step *to, NapError *e) {
        int r = 0;
        for (Step *st = from; r >= 0 && st < to; st++)
                if (st->new)
                        r = make_unit_known(ro, st->new, e);
        return r;
}

static Step *first_started(Step *from, Step *to) {
        for (Step *st = from; st < to; st++)
                if (starts_new(st))
                        return st;
        return NULL;
}

/* New instances for the batch [from, to), started (those whose old one
 * ran), answering and published. A step that has its new instance already
 * (a recovery going on) gets it started and waited for again. */
static int start_batch(Rollout *ro, const NapProfile *p, Step *from, Step *to, NapError *e) {
        int r = 0;
        bool made = false;
        for (Step *st = from; r >= 0 && st < to; st++)
                if (!st->new) {
                        r = create_replacement(ro, p, st, e);
                        made = true;
                }
        if (r >= 0 && made)
                r = make_units_known(ro, from, to, e);
        for (Step *st = from; r >= 0 && st < to; st++)
                if (starts_new(st) && !st->fresh) { /* it may have failed before a crash */
                        char unit[NAP_UNIT_NAME_MAX];
                        (void) nap_systemd_reset_failed_unit(ro->bus, nap_instance_unit_name(&st->new->instance, unit));
                }
        Step *first = first_started(from, to);
        if (r >= 0 && first) /* a container's image, built before the batch's units start */
                r = ops_container_build(ro->c, first->new, &ro->o, e);
        if (r >= 0 && (r = batch_jobs(ro, from, to, true, starts_new, nap_systemd_start_units, e)) < 0 && first)
                ops_container_explain(ro->c, first->new, e);
        for (Step *st = from; r >= 0 && st < to; st++)
                if (st->running)
                        r = wait_instance(ro, st->new, e);
        return r < 0 ? r : wait_published(ro, from, to, e);
}

/* The previous batch's old instances go, drained meanwhile, and this
 * batch's are withdrawn: their drain passes while the next batch starts. */
static int switch_batch(Rollout *ro, Step *from, Step *to, NapError *e) {
        int r = retire_withdrawn(ro, e);
        int drain = r < 0 ? r : withdraw(ro, from, to, e);
        if (drain < 0)
                return drain;
        nap_debug_point("rollout:withdrawn");
        ro->drain_until = drain > 0 ? monotonic_usec() + drain_usec(ro) : 0;
        return 0;
}

static int replace_batch(Rollout *ro, const NapProfile *p, Step *from, Step *to, NapError *e) {
        int r = start_batch(ro, p, from, to, e);
        if (r < 0)
                return r;
        nap_debug_point("rollout:started");
        return switch_batch(ro, from, to, e);
}

/* Every step whose old instance is still there, in batches. */
static int replace_all(Rollout *ro, const NapProfile *p, NapError *e) {
        size_t left = 0;
        for (size_t i = 0; i < ro->n_steps; i++)
                left += !!ro->steps[i].old;
        unsigned size = nap_rollout_batch_size(batch(ro), left);
        if (left > 0)
                ops_progress(&ro->o, "replacing %zu instance%s, %u at a time", left, left == 1 ? "" : "s", size);
        Step *st = ro->steps, *end = ro->steps + ro->n_steps;
        int r = 0;
        while (r >= 0 && st < end) {
                while (st < end && !st->old)
                        st++;
                Step *to = st;
                for (unsigned k = 0; to < end && k < size; to++)
                        k += !!to->old;
                if (st < end)
                        r = replace_batch(ro, p, st, to, e);
                st = to;
        }
        return r < 0 ? r : retire_withdrawn(ro, e);
}

/* ---- the tree ------------------------------------------------------------- */

static int swap_tree(Rollout *ro, NapError *e) {
        int r = ops_swap_in_tree(ro->staging, ro->service_dir, e);
        ro->tree_swapped = r >= 0;
        return r;
}

static void unswap_tree(Rollout *ro) {
        _cleanup_free_ char *tree = nap_state_staging_tree(ro->staging);
        if (!tree)
                return;
        if (ro->had_tree)
                (void) renameat2(AT_FDCWD, tree, AT_FDCWD, ro->service_dir, RENAME_EXCHANGE);
        else
                (void) rename(ro->service_dir, tree); /* nothing was deployed: nothing is */
        (void) fsync_directory_of(ro->service_dir);
        ro->tree_swapped = false;
}

/* An app without instances gets one, with the profile's defaults. */
static int start_first(Rollout *ro, const NapProfile *p, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        ro->created = calloc(1, sizeof *ro->created);
        if (!ro->created)
                return nap_error_errno(e, -ENOMEM, "Failed to start an instance");
        int r = ops_create_instance(ro->c, &ro->s, p, NULL, creation_record(ro), ro->created, e);
        if (r < 0) {
                ro->created = nap_manifest_free(ro->created);
                return r;
        }
        if (note_added(ro, ro->created->instance.number) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to record the rollout");
        ops_progress(&ro->o, "%s: starting on port %u", name_of(ro->created, name), ro->created->port);
        r = make_unit_known(ro, ro->created, e);
        if (r >= 0)
                r = start_instance(ro, ro->created, e);
        if (r >= 0)
                r = wait_instance(ro, ro->created, e);
        if (r >= 0)
                ro->ret->started = true;
        return r;
}

/* ---- undoing ------------------------------------------------------------- */

/* Removes a new instance (stopped, forgotten, its tree gone). */
static void remove_new(Rollout *ro, NapManifest **m) {
        char name[NAP_UNIT_NAME_MAX];
        if (!*m)
                return;
        if (ops_remove_instance_locked(ro->c, &(*m)->instance, NULL) >= 0)
                ops_progress(&ro->o, "%s: removed", name_of(*m, name));
        *m = nap_manifest_free(*m);
}

/* An old instance as it was: running again if it ran (a recovery may find
 * it stopped half-way through its removal), its endpoint published again. */
static void restore_old(Rollout *ro, Step *st) {
        char unit[NAP_UNIT_NAME_MAX];
        int r;
        if (!st->running || !st->old || !ro->bus)
                return;
        nap_instance_unit_name(&st->old->instance, unit);
        if (!unit_runs(ro->bus, unit, NULL, &r))
                (void) start_instance(ro, st->old, NULL);
        if (st->withdrawn || ro->recovering) {
                discovery_unit(st->old, unit);
                if (has_discovery(ro))
                        (void) nap_systemd_start_unit(ro->bus, unit, NULL);
        }
        st->withdrawn = false;
}

static int replace_back(Rollout *ro, NapError *e);

/* Puts back what was there: the new instances of steps whose old one is
 * still there go and the old ones run and are published as before; the
 * tree goes back; instances already replaced are replaced back from it.
 * Best effort throughout. */
static void undo(Rollout *ro) {
        bool replaced = false;
        if (ro->bus)
                remove_new(ro, &ro->created);
        for (size_t i = 0; ro->bus && i < ro->n_steps; i++) {
                Step *st = ro->steps + i;
                if (!st->old) {
                        replaced = replaced || st->new;
                        continue;
                }
                remove_new(ro, &st->new);
                restore_old(ro, st);
        }
        if (ro->tree_swapped)
                unswap_tree(ro);
        if (replaced)
                (void) replace_back(ro, NULL);
}

/* The instances replaced before the failure, replaced again from the tree
 * deployed now (the previous one): a refresh of just those, with a record
 * of its own (recovery finishes or undoes it as any refresh). */
static int replace_back(Rollout *ro, NapError *e) {
        Rollout back = { .c = ro->c, .s = ro->s, .o = ro->o, .ret = ro->ret, .bus = ro->bus,
                         .recovering = ro->recovering };
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < ro->n_steps; i++) {
                Step *st = ro->steps + i;
                if (st->old || !st->new)
                        continue;
                unsigned number = st->new->instance.number; /* before TAKE_PTR() empties it */
                r = add_step(&back, number, TAKE_PTR(st->new));
                if (r >= 0)
                        back.steps[back.n_steps - 1].running = st->running;
        }
        ops_progress(&ro->o, "replacing the %zu instance%s of the new version with the previous version", back.n_steps,
                 back.n_steps == 1 ? "" : "s");
        back.service_dir = strdup(ro->service_dir);
        if (r < 0 || !back.service_dir)
                r = nap_error_errno(e, -ENOMEM, "Failed to roll back");
        if (r >= 0)
                r = ops_load_service_profile(ro->c, &ro->s, &p, e);
        if (r >= 0)
                r = plan(&back, p, e);
        if (r >= 0)
                r = record_intent(&back, NULL, e);
        if (r >= 0)
                r = replace_all(&back, p, e);
        if (r < 0)
                undo(&back);
        rollout_done(&back);
        return r;
}

/* ---- the transaction -------------------------------------------------- */

/* SERVICE_DIR.deploy-XXXXXX/tree: the commit, checked. */
static int stage(Rollout *ro, const char *url, const char *commit, NapProfile **ret, NapError *e) {
        int r = ops_create_staging(ro->c, &ro->s, &ro->staging, e);
        return r < 0 ? r : ops_stage_commit(ro->c, ro->staging, ro->service_dir, url, commit, ret, e);
}

/* What is deployed before: the tree (if any) and its commit. */
static void read_previous(Rollout *ro) {
        _cleanup_(ops_deploy_meta_clear) DeployMeta m = {};
        ro->had_tree = access(ro->service_dir, F_OK) >= 0;
        ops_deploy_meta_read(ro->service_dir, &m);
        if (m.commit && nap_commit_is_valid(m.commit))
                memcpy(ro->ret->previous, m.commit, sizeof ro->ret->previous);
        ro->previous_url = TAKE_PTR(m.url);
}

/* The tree swapped in, then every instance replaced; an app without
 * instances gets its first. */
static int apply(Rollout *ro, const NapProfile *p, bool rebuild, bool first, NapError *e) {
        int r = ro->staging ? swap_tree(ro, e) : 0;
        if (r >= 0)
                nap_debug_point("rollout:swapped");
        if (r >= 0 && rebuild)
                r = replace_all(ro, p, e);
        if (r >= 0 && first)
                r = start_first(ro, p, e);
        return r;
}

/* commit NULL: refresh the instances from the deployed tree. */
static int rollout_locked(Rollout *ro, const char *url, const char *commit, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        read_previous(ro);
        bool unchanged = commit && streq(ro->ret->previous, commit);
        bool rebuild = !unchanged;
        memcpy(ro->ret->deploy.commit, commit ?: ro->ret->previous, sizeof ro->ret->deploy.commit);
        ro->ret->deploy.changed = commit && !unchanged;

        int r = load_steps(ro, e);
        if (r >= 0 && rebuild)
                r = record_intent(ro, commit, e);
        if (r >= 0 && ro->ret->deploy.changed) {
                r = stage(ro, url, commit, &p, e);
                if (r >= 0)
                        nap_debug_point("rollout:staged");
        } else if (r >= 0)
                r = ops_load_service_profile(ro->c, &ro->s, &p, e);
        if (r >= 0 && rebuild)
                r = plan(ro, p, e);
        if (r < 0)
                return r;

        bool first = ro->n_steps == 0;
        if (first && ops_check_params(p, NULL, NULL) < 0) {
                ro->ret->needs_parameters = true;
                first = false;
        }
        if ((rebuild && ro->n_steps > 0) || first) {
                r = ops_context_bus(ro->c, &ro->bus, e); /* no bus: nothing changes */
                if (r >= 0 && rebuild)
                        r = read_running(ro, e);
                if (r >= 0)
                        r = record_intent(ro, commit, e);
                if (r < 0)
                        return r;
        }
        r = apply(ro, p, rebuild, first, e);
        if (r < 0)
                undo(ro);
        return r;
}

/* ---- results ---------------------------------------------------------- */

void nap_rollout_result_done(NapRolloutResult *r) {
        if (!r)
                return;
        nap_instance_info_array_free(r->instances, r->n_instances);
        r->instances = NULL;
        r->n_instances = 0;
}

static int instance_info_state(sd_bus *bus, NapInstanceInfo *i) {
        NapUnitStatus u = {};
        if (!bus || nap_systemd_get_unit_status(bus, i->unit, &u, NULL) < 0)
                return 0; /* unknown: left NULL */
        i->active_state = TAKE_PTR(u.active_state);
        i->sub_state = TAKE_PTR(u.sub_state);
        nap_unit_status_clear(&u);
        return 0;
}

/* The app's instances as they are now, with systemd's view when the bus
 * is at hand (it is not needed for a deploy that changed no instance). */
static int fill_instances(Rollout *ro, NapError *e) {
        Rollout now = { .c = ro->c, .s = ro->s };
        sd_bus *bus = ro->bus;
        int r = load_steps(&now, e);
        NapInstanceInfo *l = r >= 0 && now.n_steps > 0 ? calloc(now.n_steps, sizeof *l) : NULL;
        if (r >= 0 && now.n_steps > 0 && !l)
                r = nap_error_errno(e, -ENOMEM, "Failed to list instances");
        if (r >= 0 && !bus && now.n_steps > 0)
                (void) ops_context_bus(ro->c, &bus, NULL);
        size_t k = 0;
        for (; r >= 0 && k < now.n_steps; k++) {
                r = ops_instance_info_from_manifest(ro->c->config, now.steps[k].old, l + k);
                if (r >= 0)
                        r = instance_info_state(bus, l + k);
                if (r < 0)
                        r = nap_error_errno(e, r, "Failed to list instances");
        }
        rollout_done(&now);
        if (r < 0) {
                nap_instance_info_array_free(l, k);
                return r;
        }
        ro->ret->instances = l;
        ro->ret->n_instances = k;
        return 0;
}

static void after_success(Rollout *ro, const char *url) {
        if (ro->ret->deploy.changed)
                ro->ret->deploy.publish = nap_publish_url(ro->c, &ro->s, url, &ro->ret->deploy.publish_error);
        if (url) /* unchanged too: catches up a record that was pending */
                ops_publish_app_source(ro->c, &ro->s, url, &ro->ret->deploy);
        if (ro->ret->deploy.changed && ops_tree_is_dockerfile_app(ro->service_dir))
                (void) ops_container_prune(ro->c, &ro->s, ro->ret->deploy.commit, ro->ret->previous, &ro->o);
}

static void after_failure(Rollout *ro, NapError *e) {
        char b[160];
        if (ro->ret->previous[0])
                snprintf(b, sizeof b, "; the new instances were removed, the previous version (%.12s) keeps running",
                         ro->ret->previous);
        else
                snprintf(b, sizeof b, ro->had_tree ? "; the new instances were removed, the previous version keeps running"
                                                   : "; nothing was deployed");
        ops_error_append(e, b);
}

/* Lock held by the caller. url NULL: a refresh. */
static int rollout(NapContext *c, const NapService *s, const char *url, const char *commit,
                   const NapRolloutOptions *o, NapRolloutResult *ret, NapError *e) {
        Rollout ro = { .c = c, .s = *s, .o = o ? *o : (NapRolloutOptions) {}, .ret = ret };
        ro.service_dir = nap_state_service_dir(c->config, s);
        if (!ro.service_dir)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        int r = rollout_locked(&ro, url, commit, e);
        if (r >= 0) {
                after_success(&ro, url);
                r = fill_instances(&ro, e);
        } else
                after_failure(&ro, e);
        rollout_done(&ro);
        /* Finished or undone: the intent has served. */
        ops_intent_end(c, s);
        return r;
}

/* ---- the cluster follows ----------------------------------------------- */

/* Where commit was deployed from, by the app's history; NULL if unknown. */
static char *url_of(NapContext *c, const NapService *s, const char *commit) {
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, s);
        NapDeployRecord *l = NULL;
        size_t n = 0;
        char *url = NULL;
        if (dir)
                ops_history_read(dir, &l, &n);
        for (size_t i = 0; i < n && !url; i++)
                if (streq(l[i].commit, commit))
                        url = strdup(l[i].url);
        nap_deploy_record_array_free(l, n);
        return url;
}

/* This host back at previous (its instances rolled, the source recorded
 * again), under the app's lock. */
static void roll_back_here(NapContext *c, const NapService *s, const NapRolloutOptions *o, const char *previous,
                           NapError *e) {
        _cleanup_free_ char *url = url_of(c, s, previous);
        _cleanup_close_ int lock = -1;
        NapRolloutResult res = {};
        NapError ignored = NAP_ERROR_NULL;
        char b[96];
        if (!url || ops_lock_service(c, s, &lock, &ignored) < 0 || rollout(c, s, url, previous, o, &res, &ignored) < 0)
                return;
        snprintf(b, sizeof b, "; %.12s is deployed again, here and on every node", previous);
        ops_error_append(e, b);
        nap_rollout_result_done(&res);
}

/* After a deploy here, with the app's lock released (every node's
 * nap-node, this one's too, takes it to make an instance): the cluster's
 * instances follow; when they cannot, this host goes back to the commit
 * before. */
static int roll_cluster(NapContext *c, const NapService *s, const NapRolloutOptions *o, NapRolloutResult *ret,
                        NapError *e) {
        char previous[NAP_COMMIT_HEX_LEN + 1];
        int r = ops_cluster_follow(c, s, o, &ret->deploy, e);
        if (r >= 0)
                return 0;
        memcpy(previous, ret->previous, sizeof previous);
        bool back = ret->deploy.changed && previous[0];
        nap_rollout_result_done(ret);
        if (back)
                roll_back_here(c, s, o, previous, e);
        return r;
}

/* The pushed repository to the other nodes, before their instances roll
 * (they fetch the commit from their copy); what fails is said, and the
 * rollout then fails on the nodes it did not reach. */
static void replicate(NapContext *c, const NapService *s, const char *repo, const NapRolloutOptions *o) {
        NapError e = NAP_ERROR_NULL;
        if (ops_replicate_push(c, s, repo, o, &e) < 0 && o && o->progress)
                o->progress(o->userdata, e.message);
}

int nap_deploy_commit(NapContext *c, const char *service, const char *repo, const char *rev,
                      const NapRolloutOptions *o, NapRolloutResult *ret, NapError *e) {
        char commit[NAP_COMMIT_HEX_LEN + 1];
        NapService s;
        _cleanup_close_ int lock = -1;
        *ret = (NapRolloutResult) {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0 && (isempty(repo) || repo[0] != '/'))
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The repository must be an absolute path");
        if (r >= 0)
                r = nap_repo_resolve(repo, rev, commit, e); /* before anything is created */
        if (r >= 0)
                r = ops_lock_service_to_deploy(c, &s, &lock, e);
        /* Again under the lock: of two pushes at once, the later ends with
         * the branch's tip whichever hook runs last. */
        if (r >= 0)
                r = nap_repo_resolve(repo, rev, commit, e);
        if (r >= 0)
                r = rollout(c, &s, repo, commit, o, ret, e);
        lock = safe_close(lock);
        if (r >= 0)
                replicate(c, &s, repo, o);
        return r < 0 ? r : roll_cluster(c, &s, o, ret, e);
}

/* The history entry a rollback goes to. */
static int pick_record(const NapDeployRecord *l, size_t n, const char *current, const char *want,
                       const NapDeployRecord **ret, NapError *e) {
        size_t wl = want ? strlen(want) : 0;
        const NapDeployRecord *found = NULL;
        if (want && (wl < 4 || wl > NAP_COMMIT_HEX_LEN || strspn(want, "0123456789abcdef") != wl))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "'%.64s' is not a commit: 4 to 40 lowercase hex digits", want);
        for (size_t i = 0; i < n; i++) {
                bool match = want ? strneq(l[i].commit, want, wl) : !streq(l[i].commit, strempty(current));
                if (!match || (found && streq(found->commit, l[i].commit)))
                        continue;
                if (!want) {
                        *ret = l + i;
                        return 0;
                }
                if (found)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "'%s' names more than one deployed commit", want);
                found = l + i;
        }
        if (!found && want)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT,
                                     "No commit %s in the app's deploy history", want);
        if (!found)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT,
                                     "The app has no earlier deploy to roll back to");
        *ret = found;
        return 0;
}

int nap_rollback(NapContext *c, const char *service, const char *commit, const NapRolloutOptions *o,
                 NapRolloutResult *ret, NapError *e) {
        NapService s;
        NapDeployRecord *l = NULL;
        size_t n = 0;
        const NapDeployRecord *to = NULL;
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int lock = -1;
        _cleanup_(ops_deploy_meta_clear) DeployMeta m = {};
        *ret = (NapRolloutResult) {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &dir, e);
        if (r >= 0)
                r = ops_lock_service(c, &s, &lock, e);
        if (r >= 0) {
                ops_history_read(dir, &l, &n);
                ops_deploy_meta_read(dir, &m);
                r = pick_record(l, n, m.commit, commit, &to, e);
        }
        if (r >= 0)
                r = rollout(c, &s, to->url, to->commit, o, ret, e);
        nap_deploy_record_array_free(l, n);
        lock = safe_close(lock);
        return r < 0 ? r : roll_cluster(c, &s, o, ret, e);
}

int nap_refresh_instances(NapContext *c, const char *service, const NapRolloutOptions *o, NapRolloutResult *ret,
                          NapError *e) {
        NapService s;
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int lock = -1;
        *ret = (NapRolloutResult) {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &dir, e);
        if (r >= 0)
                r = ops_lock_service(c, &s, &lock, e);
        return r < 0 ? r : rollout(c, &s, NULL, NULL, o, ret, e);
}


/* ---- recovery ----------------------------------------------------------- */

/* The manifest of the app's instance number, or NULL when it has none. */
static int load_number(NapContext *c, const NapService *s, unsigned number, NapManifest **ret, NapError *e) {
        NapInstance i = { .service = *s, .kind = NAP_KIND_COMMON, .number = number };
        _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, &i);
        *ret = NULL;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to recover");
        return number == 0 || access(path, F_OK) < 0 ? 0 : nap_manifest_load(path, ret, e);
}

static bool number_in(const unsigned *l, size_t n, unsigned k) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == k)
                        return true;
        return false;
}

/* added[k] replaces instances[k]; the number being made when the record
 * was written comes after the last one added. */
static unsigned replacement_of(const NapIntent *in, size_t k) {
        if (k < in->n_added)
                return in->added[k];
        bool in_flight = in->number > 0 && !number_in(in->added, in->n_added, in->number);
        return k == in->n_added && in_flight ? in->number : 0;
}

/* The rollout as the record left it. */
static int resume_steps(Rollout *ro, const NapIntent *in, NapError *e) {
        int r = 0;
        for (size_t k = 0; r >= 0 && k < in->n_instances; k++) {
                NapManifest *old = NULL;
                r = load_number(ro->c, &in->service, in->instances[k], &old, e);
                if (r >= 0 && add_step(ro, in->instances[k], old) < 0)
                        r = nap_error_errno(e, -ENOMEM, "Failed to recover");
                if (r < 0)
                        return nap_manifest_free(old), r;
                Step *st = ro->steps + ro->n_steps - 1;
                st->running = number_in(in->running, in->n_running, st->number);
                r = load_number(ro->c, &in->service, replacement_of(in, k), &st->new, e);
        }
        if (r >= 0 && in->n_instances == 0) /* an app without instances: its first one */
                r = load_number(ro->c, &in->service, replacement_of(in, 0), &ro->created, e);
        return r;
}

/* Back to the deployed tree before it (none: none), if it was swapped. */
static int put_back_tree(Rollout *ro, const NapIntent *in, NapError *e) {
        _cleanup_(ops_deploy_meta_clear) DeployMeta now = {};
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        ops_deploy_meta_read(ro->service_dir, &now);
        if (!in->commit[0] || !streq_ptr(now.commit, in->commit))
                return 0; /* a refresh, or cut short before the swap */
        if (!in->previous_commit[0]) {
                int r = rm_rf(ro->service_dir);
                return r < 0 ? nap_error_errno(e, r, "Failed to remove %s", ro->service_dir) : 0;
        }
        int r = ops_create_staging(ro->c, &ro->s, &ro->staging, e);
        if (r >= 0)
                r = ops_stage_commit(ro->c, ro->staging, ro->service_dir, in->previous_url, in->previous_commit, &p, e);
        return r < 0 ? r : ops_swap_in_tree(ro->staging, ro->service_dir, e);
}

/* An old instance was removed after its replacement answered: the
 * rollout goes on from where it stopped (with the deployed tree). */
static int recover_forward(Rollout *ro, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < ro->n_steps; i++) {
                Step *st = ro->steps + i;
                char unit[NAP_UNIT_NAME_MAX];
                if (!st->old && st->new && st->running &&
                    !unit_runs(ro->bus, nap_instance_unit_name(&st->new->instance, unit), e, &r) && r >= 0)
                        r = start_instance(ro, st->new, e);
        }
        if (r >= 0)
                r = ops_load_service_profile(ro->c, &ro->s, &p, e);
        if (r >= 0)
                r = plan(ro, p, e);
        if (r >= 0)
                r = replace_all(ro, p, e);
        if (r < 0)
                undo(ro);
        return r;
}

int ops_rollout_recover(NapContext *c, const NapIntent *in, NapError *e) {
        NapRolloutResult res = {};
        Rollout ro = { .c = c, .s = in->service, .ret = &res, .recovering = true };
        bool forward = false;
        ro.service_dir = nap_state_service_dir(c->config, &in->service);
        int r = ro.service_dir ? 0 : nap_error_errno(e, -ENOMEM, "Failed to recover");
        if (r >= 0)
                r = resume_steps(&ro, in, e);
        if (r >= 0)
                r = ops_context_bus(c, &ro.bus, e);
        /* Replacements made just before the cut may not be known yet. */
        if (r >= 0)
                r = make_units_known(&ro, ro.steps, ro.steps + ro.n_steps, e);
        for (size_t i = 0; r >= 0 && i < ro.n_steps; i++)
                forward = forward || (!ro.steps[i].old && ro.steps[i].new);
        if (r >= 0 && forward)
                r = recover_forward(&ro, e);
        else if (r >= 0) {
                undo(&ro);
                r = put_back_tree(&ro, in, e);
        }
        rollout_done(&ro);
        nap_rollout_result_done(&res);
        return r;
}
