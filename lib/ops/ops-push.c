/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Push deploys and rollback: deploy_commit, rollback, refresh_instances.
 * A rollout is one transaction under the app's lock. Everything new is
 * built beside what runs (SERVICE_DIR.deploy-XXXXXX/tree, and
 * apps/USER/USER_APP_N.next per instance), checked, then exchanged with
 * the live trees by renameat2(RENAME_EXCHANGE); the trees swapped out stay
 * until the new version answers, so a failure swaps them back, restores the
 * manifests, reloads once more and restarts what it had restarted. */

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "base/clock.h"
#include "clients/fetch-commit.h"
#include "base/debug-point.h"
#include "base/fileio.h"
#include "model/manifest.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"
#include "model/state.h"
#include "base/strv.h"
#include "clients/systemd1.h"

typedef struct Step {
        NapManifest *old;  /* as it is: what a failure puts back */
        NapManifest *new;  /* rebuilt for the new tree; NULL when not rebuilt */
        char *next;        /* DIR.next: the new tree; after the swap, the old one */
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        bool running;      /* was running: restarted, and again after a failure */
        bool swapped, exchanged, restarted;
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
        bool recovering;       /* undoing a rollout cut short: its intent stays the record */
        char removed_unit[NAP_UNIT_NAME_MAX]; /* ... removed again by undo() */
        sd_bus *bus;           /* the context's; set once needed */
} Rollout;

_printf_(2, 3)
static void progress(const Rollout *ro, const char *fmt, ...) {
        char msg[NAP_ERROR_MESSAGE_MAX];
        va_list ap;
        if (!ro->o.progress)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        ro->o.progress(ro->o.userdata, msg);
}

/* Adds context to an error already set ("alice_web_common@1: …"). */
_printf_(2, 3)
static void error_prefix(NapError *e, const char *fmt, ...) {
        char prefix[128], msg[sizeof prefix + NAP_ERROR_MESSAGE_MAX];
        va_list ap;
        if (!nap_error_is_set(e))
                return;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        snprintf(msg, sizeof msg, "%s%s", prefix, e->message);
        /* Cut to fit, as nap_error_set() does. */
        memcpy(e->message, msg, sizeof e->message - 1);
        e->message[sizeof e->message - 1] = 0;
}

static void error_append(NapError *e, const char *s) {
        size_t l = strlen(e->message);
        if (nap_error_is_set(e))
                snprintf(e->message + l, sizeof e->message - l, "%s", s);
}

static void rollout_done(Rollout *ro) {
        /* Whatever did not end up live: old trees after a success, new ones
         * after a failure. */
        for (size_t i = 0; i < ro->n_steps; i++) {
                if (ro->steps[i].next)
                        (void) rm_rf(ro->steps[i].next);
                free(ro->steps[i].next);
                nap_manifest_free(ro->steps[i].old);
                nap_manifest_free(ro->steps[i].new);
        }
        free(ro->steps);
        if (ro->staging)
                (void) rm_rf(ro->staging);
        free(ro->staging);
        free(ro->service_dir);
        free(ro->previous_url);
        nap_manifest_free(ro->created);
        *ro = (Rollout) {};
}

static int add_step(Rollout *ro, NapManifest *m) {
        Step *l = reallocarray(ro->steps, ro->n_steps + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        ro->steps = l;
        l += ro->n_steps++;
        *l = (Step) { .old = m };
        nap_instance_name(&m->instance, l->name);
        nap_instance_unit_name(&m->instance, l->unit);
        return 0;
}

/* The app's common instances, from their manifests, by number. */
static int load_steps(Rollout *ro, NapError *e) {
        NapManifest **l = NULL;
        size_t n = 0;
        int r = nap_state_load_service_manifests(ro->c->config, &ro->s, &l, &n, e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (l[i]->instance.kind != NAP_KIND_COMMON)
                        continue;
                r = add_step(ro, l[i]);
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

/* The instance as the new tree makes it: same number, port, parameters
 * and enablement; argv from the new profile; its tree at DIR.next. */
static int plan_step(Step *st, const char *tree, const NapProfile *old, const NapProfile *p, const char *commit,
                     NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = calloc(1, sizeof *m);
        _cleanup_(nap_params_freep) NapParams *params = NULL;
        if (!m || carry_params(old, p, st->old->params, &params) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to plan the rollout");
        *m = (NapManifest) { .instance = st->old->instance, .port = st->old->port, .enabled = st->old->enabled };
        int r = ops_check_params(p, params, e);
        if (r >= 0)
                r = nap_manifest_apply_profile(m, p, params, e);
        if (r < 0) {
                error_prefix(e, "The new profile does not accept the parameters of %s: ", st->name);
                return r;
        }
        m->directory = strdup(st->old->directory);
        m->commit = commit ? strdup(commit) : NULL;
        st->next = nap_state_instance_next_dir(st->old->directory);
        if (!m->directory || (commit && !m->commit) || !st->next)
                return nap_error_errno(e, -ENOMEM, "Failed to plan the rollout");
        if (ops_tree_is_dockerfile_app(tree)) {
                r = nap_manifest_set_image(m, m->directory, e); /* the new commit's image tag */
                if (r < 0)
                        return r;
        }
        r = ops_instance_tree_build(tree, &m->instance, m->argv, st->next);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to build %s", st->next);
        st->new = TAKE_PTR(m);
        return 0;
}

static int read_running(Rollout *ro, NapError *e) {
        for (size_t i = 0; i < ro->n_steps; i++) {
                NapUnitStatus u = {};
                int r = nap_systemd_get_unit_status(ro->bus, ro->steps[i].unit, &u, e);
                if (r < 0)
                        return r;
                ro->steps[i].running = nap_unit_state_is_running(u.active_state);
                nap_unit_status_clear(&u);
        }
        return 0;
}

/* ---- waiting for an instance ---------------------------------------- */

static uint64_t answer_timeout(const Rollout *ro) {
        return ro->o.answer_timeout_usec > 0 ? ro->o.answer_timeout_usec : NAP_ANSWER_TIMEOUT_USEC_DEFAULT;
}

static int wait_step(Rollout *ro, const char *name, const char *unit, unsigned port, NapError *e) {
        int r = ops_wait_instance_answering(ro->c, unit, port, answer_timeout(ro), e);
        if (r < 0) {
                /* A line of its own: the error must keep room for what
                 * the rollout says after it (rolled back, or not). */
                _cleanup_free_ char *journal = ops_journal_summary(ro->c, unit);
                if (journal)
                        progress(ro, "%s: %s", name, journal);
                error_prefix(e, "%s: ", name);
                return r;
        }
        progress(ro, "%s: answers on port %u", name, port);
        return 0;
}

static int restart_unit(sd_bus *bus, const char *unit, NapError *e) {
        int r = nap_systemd_stop_unit(bus, unit, e);
        if (r < 0)
                return r;
        nap_debug_point("rollout:stopped");
        (void) nap_systemd_reset_failed_unit(bus, unit);
        return nap_systemd_start_unit(bus, unit, e);
}

/* ---- the transaction -------------------------------------------------- */

static int swap_step(Rollout *ro, Step *st, NapError *e) {
        const char *dir = st->old->directory;
        if (renameat2(AT_FDCWD, st->next, AT_FDCWD, dir, RENAME_EXCHANGE) >= 0)
                st->exchanged = true;
        else if (errno != ENOENT || rename(st->next, dir) < 0) /* its tree was gone: it is back */
                return nap_error_errno(e, negative_errno(), "Failed to replace %s", dir);
        st->swapped = true;
        int r = fsync_directory_of(dir);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to sync %s", dir);
        return nap_manifest_save(ro->c->config->instances_dir, st->new, e);
}

static void unswap_step(Rollout *ro, Step *st) {
        const char *dir = st->old->directory;
        if (st->exchanged)
                (void) renameat2(AT_FDCWD, st->next, AT_FDCWD, dir, RENAME_EXCHANGE);
        else
                (void) rename(dir, st->next);
        (void) fsync_directory_of(dir);
        (void) nap_manifest_save(ro->c->config->instances_dir, st->old, NULL);
        st->swapped = false;
}

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
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        ro->created = calloc(1, sizeof *ro->created);
        if (!ro->created)
                return nap_error_errno(e, -ENOMEM, "Failed to start an instance");
        int r = ops_create_instance(ro->c, &ro->s, p, NULL, NULL, ro->created, e);
        if (r < 0) {
                ro->created = nap_manifest_free(ro->created);
                return r;
        }
        nap_instance_name(&ro->created->instance, name);
        nap_instance_unit_name(&ro->created->instance, unit);
        progress(ro, "%s: starting on port %u", name, ro->created->port);
        r = nap_systemd_reload(ro->bus, e);
        if (r >= 0)
                r = nap_systemd_start_unit(ro->bus, unit, e);
        if (r >= 0)
                r = wait_step(ro, name, unit, ro->created->port, e);
        if (r >= 0)
                ro->ret->started = true;
        return r;
}

/* Stops, forgets and removes the instance start_first() made. */
static bool remove_created(Rollout *ro) {
        char unit[NAP_UNIT_NAME_MAX];
        if (!ro->created)
                return false;
        nap_instance_unit_name(&ro->created->instance, unit);
        (void) nap_systemd_stop_unit(ro->bus, unit, NULL);
        memcpy(ro->removed_unit, unit, sizeof unit);
        _cleanup_free_ char *path = nap_manifest_path(ro->c->config->instances_dir, &ro->created->instance);
        if (path && unlink(path) >= 0)
                (void) fsync_directory_of(path);
        (void) rm_rf(ro->created->directory);
        ro->created = nap_manifest_free(ro->created);
        return true;
}

/* Puts back what was there: trees, manifests, one reload, and the old
 * version of every instance that was restarted. Best effort throughout. */
static void undo(Rollout *ro) {
        bool reload = remove_created(ro);
        for (size_t i = ro->n_steps; i > 0; i--)
                if (ro->steps[i - 1].swapped) {
                        unswap_step(ro, ro->steps + i - 1);
                        reload = true;
                }
        if (ro->tree_swapped)
                unswap_tree(ro);
        if (reload && ro->bus)
                (void) nap_systemd_reload(ro->bus, NULL);
        /* A failed unit without a unit file lingers in the manager; it must
         * not show up as an instance. */
        if (ro->removed_unit[0])
                (void) nap_systemd_reset_failed_unit(ro->bus, ro->removed_unit);
        for (size_t i = 0; i < ro->n_steps; i++) {
                Step *st = ro->steps + i;
                if (!st->restarted)
                        continue;
                progress(ro, "%s: restarting the previous version", st->name);
                if (restart_unit(ro->bus, st->unit, NULL) >= 0)
                        (void) wait_step(ro, st->name, st->unit, st->old->port, NULL);
        }
}

/* Swap everything in, one reload, restart the running instances one by
 * one, each answering before the next goes down. */
static int apply(Rollout *ro, const NapProfile *p, bool rebuild, bool first, NapError *e) {
        int r = ro->staging ? swap_tree(ro, e) : 0;
        for (size_t i = 0; r >= 0 && rebuild && i < ro->n_steps; i++)
                r = swap_step(ro, ro->steps + i, e);
        if (r >= 0 && rebuild && ro->n_steps > 0)
                r = nap_systemd_reload(ro->bus, e);
        if (r >= 0)
                nap_debug_point("rollout:swapped");
        for (size_t i = 0; r >= 0 && rebuild && i < ro->n_steps; i++) {
                Step *st = ro->steps + i;
                if (!st->running)
                        continue;
                progress(ro, "%s: restarting", st->name);
                st->restarted = true;
                r = restart_unit(ro->bus, st->unit, e);
                if (r >= 0)
                        r = wait_step(ro, st->name, st->unit, st->new->port, e);
        }
        if (r >= 0 && first)
                r = start_first(ro, p, e);
        return r;
}

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

/* ---- the intent ------------------------------------------------------- */

static int numbers_of_steps(const Rollout *ro, bool running_only, unsigned **ret, size_t *ret_n) {
        unsigned *l = ro->n_steps > 0 ? calloc(ro->n_steps, sizeof *l) : NULL;
        size_t n = 0;
        if (ro->n_steps > 0 && !l)
                return -ENOMEM;
        for (size_t i = 0; i < ro->n_steps; i++)
                if (!running_only || ro->steps[i].running)
                        l[n++] = ro->steps[i].old->instance.number;
        *ret = l;
        *ret_n = n;
        return 0;
}

/* What recovery needs to put the app back as it was: the commit deployed
 * before and where it came from, the instances, those running. Written
 * before staging, again once it is known what runs. */
static int record_intent(Rollout *ro, const char *commit, NapError *e) {
        NapIntent in = { .operation = NAP_INTENT_ROLLOUT, .service = ro->s };
        if (ro->recovering)
                return 0;
        snprintf(in.commit, sizeof in.commit, "%s", strempty(commit));
        if (ro->ret->previous[0] && ro->previous_url) {
                snprintf(in.previous_commit, sizeof in.previous_commit, "%s", ro->ret->previous);
                in.previous_url = strdup(ro->previous_url);
        }
        int r = (ro->ret->previous[0] && ro->previous_url && !in.previous_url) ? -ENOMEM : 0;
        if (r >= 0)
                r = numbers_of_steps(ro, false, &in.instances, &in.n_instances);
        if (r >= 0)
                r = numbers_of_steps(ro, true, &in.running, &in.n_running);
        r = r < 0 ? nap_error_errno(e, r, "Failed to record the rollout") : ops_intent_begin(ro->c, &in, e);
        nap_intent_done(&in);
        return r;
}

static int plan(Rollout *ro, const char *tree, const NapProfile *p, const char *commit, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *old = NULL;
        /* The profile deployed now, for its defaults (none: values kept). */
        (void) ops_load_profile_in(ro->service_dir, &old, NULL);
        for (size_t i = 0; i < ro->n_steps; i++) {
                int r = plan_step(ro->steps + i, tree, old, p, commit, e);
                if (r >= 0) /* the app's configuration as it is now (napctl config) */
                        r = ops_app_environment(ro->c, &ro->s, &ro->steps[i].new->environment, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* commit NULL: refresh the instances from the deployed tree. */
static int rollout_locked(Rollout *ro, const char *url, const char *commit, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        _cleanup_free_ char *staged = NULL;
        read_previous(ro);
        bool unchanged = commit && streq(ro->ret->previous, commit);
        bool rebuild = !unchanged;
        memcpy(ro->ret->deploy.commit, commit ?: ro->ret->previous, sizeof ro->ret->deploy.commit);
        ro->ret->deploy.changed = commit && !unchanged;
        const char *recorded = isempty(ro->ret->deploy.commit) ? NULL : ro->ret->deploy.commit;

        int r = load_steps(ro, e);
        if (r >= 0 && rebuild)
                r = record_intent(ro, commit, e);
        if (r >= 0 && ro->ret->deploy.changed) {
                r = stage(ro, url, commit, &p, e);
                if (r >= 0)
                        nap_debug_point("rollout:staged");
                staged = r >= 0 ? nap_state_staging_tree(ro->staging) : NULL;
                if (r >= 0 && !staged)
                        r = nap_error_errno(e, -ENOMEM, "Failed to deploy");
        } else if (r >= 0)
                r = ops_load_service_profile(ro->c, &ro->s, &p, e);
        if (r >= 0 && rebuild)
                r = plan(ro, staged ?: ro->service_dir, p, recorded, e);
        if (r < 0)
                return r;

        bool first = ro->n_steps == 0;
        if (first && ops_check_params(p, NULL, NULL) < 0) {
                ro->ret->needs_parameters = true;
                first = false;
        }
        if ((rebuild && ro->n_steps > 0) || first) {
                r = ops_context_bus(ro->c, &ro->bus, e); /* no bus: nothing changes */
                if (r >= 0)
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
        if (ro->created)
                (void) ops_publish_instance(ro->c, ro->created);
}

static void after_failure(Rollout *ro, NapError *e) {
        char b[160];
        if (ro->ret->previous[0])
                snprintf(b, sizeof b, "; the previous version (%.12s) keeps running", ro->ret->previous);
        else
                snprintf(b, sizeof b, ro->had_tree ? "; the previous version keeps running" : "; nothing was deployed");
        error_append(e, b);
}

/* Lock held by the caller. url NULL: a refresh. */
static int rollout_full(NapContext *c, const NapService *s, const char *url, const char *commit,
                        const NapRolloutOptions *o, bool recovering, NapRolloutResult *ret, NapError *e) {
        Rollout ro = { .c = c, .s = *s, .o = o ? *o : (NapRolloutOptions) {}, .ret = ret, .recovering = recovering };
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
        /* Finished or undone: the intent has served (a recovery's own
         * caller removes the intent it is working from). */
        if (!recovering)
                ops_intent_end(c, s);
        return r;
}

static int rollout(NapContext *c, const NapService *s, const char *url, const char *commit,
                   const NapRolloutOptions *o, NapRolloutResult *ret, NapError *e) {
        return rollout_full(c, s, url, commit, o, false, ret, e);
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
        return r < 0 ? r : rollout(c, &s, repo, commit, o, ret, e);
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
        return r;
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

static bool number_in(const unsigned *l, size_t n, unsigned k) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == k)
                        return true;
        return false;
}

/* The instance a rollout of an app without any started: not there before. */
static int remove_instances_added(NapContext *c, const NapIntent *in, NapError *e) {
        NapManifest **l = NULL;
        size_t n = 0;
        int r = nap_state_load_service_manifests(c->config, &in->service, &l, &n, e);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (!number_in(in->instances, in->n_instances, l[i]->instance.number))
                        r = ops_remove_instance_locked(c, &l[i]->instance, e);
        nap_state_manifests_free(l, n);
        return r;
}

/* Those that ran before the rollout run again (one cut between its stop
 * and its start would not). */
static int start_was_running(NapContext *c, const NapIntent *in, NapError *e) {
        sd_bus *bus;
        int r = in->n_running > 0 ? ops_context_bus(c, &bus, e) : 0;
        for (size_t i = 0; r >= 0 && i < in->n_running; i++) {
                NapInstance inst = { .service = in->service, .kind = NAP_KIND_COMMON, .number = in->running[i] };
                char unit[NAP_UNIT_NAME_MAX];
                NapUnitStatus u = {};
                nap_instance_unit_name(&inst, unit);
                r = nap_systemd_get_unit_status(bus, unit, &u, e);
                bool running = r >= 0 && nap_unit_state_is_running(u.active_state);
                nap_unit_status_clear(&u);
                if (r >= 0 && !running) {
                        (void) nap_systemd_reset_failed_unit(bus, unit);
                        r = nap_systemd_start_unit(bus, unit, e);
                }
        }
        return r;
}

/* What the rollout was going back from: the tree deployed now is the new
 * commit's (the swap happened) or the old one's (it did not: nothing of the
 * instances changed either, they are swapped after the tree). */
static int roll_back(NapContext *c, const NapIntent *in, NapError *e) {
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, &in->service);
        _cleanup_(ops_deploy_meta_clear) DeployMeta now = {};
        NapRolloutResult res = {};
        if (!dir)
                return nap_error_errno(e, -ENOMEM, "Failed to recover");
        ops_deploy_meta_read(dir, &now);
        bool refresh = !in->commit[0]; /* the same tree: instances rebuilt again */
        if (!refresh && !streq_ptr(now.commit, in->commit))
                return 0;
        if (!refresh && !in->previous_commit[0]) { /* nothing was deployed: nothing is */
                int r = rm_rf(dir);
                return r < 0 ? nap_error_errno(e, r, "Failed to remove %s", dir) : 0;
        }
        int r = rollout_full(c, &in->service, refresh ? NULL : in->previous_url, refresh ? NULL : in->previous_commit,
                             NULL, true, &res, e);
        nap_rollout_result_done(&res);
        return r;
}

int ops_rollout_recover(NapContext *c, const NapIntent *in, NapError *e) {
        int r = remove_instances_added(c, in, e);
        if (r >= 0)
                r = roll_back(c, in, e);
        if (r >= 0)
                r = start_was_running(c, in, e);
        return r;
}
