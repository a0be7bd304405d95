/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* An app as a whole: scale, its configuration (the environment of every
 * instance), a rolling restart of all its instances, destroy, status. Each
 * is built from the operations on one instance (ops-instance.c) and the
 * rollout (ops-push.c), which are crash-safe on their own; destroy records
 * an intent of its own (recovered by ops-recover.c). */

#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/debug-point.h"
#include "base/fileio.h"
#include "base/strv.h"
#include "clients/systemd1.h"
#include "model/environment.h"
#include "model/state.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"

/* ---- the configuration -------------------------------------------------- */

/* The stored configuration; none stored: empty. */
static int config_read(NapContext *c, const NapService *s, NapParams **ret, NapError *e) {
        _cleanup_free_ char *path = nap_state_service_env_file(c->config, s), *text = NULL;
        size_t size;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read the configuration");
        int r = read_full_file(path, NAP_ENVIRONMENT_MAX_SIZE, &text, &size);
        if (r == -ENOENT)
                return nap_params_new(ret) < 0 ? nap_error_errno(e, -ENOMEM, "Failed to read the configuration") : 0;
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read %s", path);
        NapError inner = NAP_ERROR_NULL;
        r = nap_environment_parse(text, size, ret, &inner);
        return r < 0 ? nap_error_set(e, NAP_ERROR_INTERNAL, r, "%s is damaged: %s", path, inner.message) : 0;
}

/* Atomically, synced; an empty configuration is no file. */
static int config_write(NapContext *c, const NapService *s, const NapParams *p, NapError *e) {
        _cleanup_free_ char *path = nap_state_service_env_file(c->config, s);
        _cleanup_free_ char *text = nap_params_size(p) > 0 ? nap_environment_format(p) : NULL;
        int r = 0;
        if (!path || (nap_params_size(p) > 0 && !text))
                return nap_error_errno(e, -ENOMEM, "Failed to write the configuration");
        if (text)
                r = write_file_atomic(path, text, strlen(text), 0644);
        else if (unlink(path) < 0 && errno != ENOENT)
                r = negative_errno();
        else
                r = fsync_directory_of(path);
        return r < 0 ? nap_error_errno(e, r, "Failed to write %s", path) : 0;
}

int ops_app_environment(NapContext *c, const NapService *s, NapParams **ret, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        int r = config_read(c, s, &p, e);
        if (r < 0)
                return r;
        nap_params_free(*ret);
        *ret = nap_params_size(p) > 0 ? TAKE_PTR(p) : NULL;
        return 0;
}

int nap_app_config_get(NapContext *c, const char *service, NapParams **ret, NapError *e) {
        _cleanup_free_ char *dir = NULL;
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &dir, e);
        return r < 0 ? r : config_read(c, &s, ret, e);
}

/* old with set applied and unset removed; every name checked. */
static int config_apply(const NapParams *old, const NapParams *set, char *const *unset, NapParams **ret,
                        NapError *e) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        int r = nap_params_new(&p);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to change the configuration");
        STRV_FOREACH(k, unset) {
                r = nap_env_name_check(*k, e);
                if (r >= 0 && nap_params_get(set, *k))
                        r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                          "Configuration key '%s' is both set and unset", *k);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; r >= 0 && i < nap_params_size(old); i++) {
                const char *k = nap_params_key(old, i);
                if (!nap_params_get(set, k) && !strv_contains(unset, k))
                        r = nap_params_set(p, k, nap_params_value(old, i), e);
        }
        for (size_t i = 0; r >= 0 && i < nap_params_size(set); i++)
                r = nap_environment_set(p, nap_params_key(set, i), nap_params_value(set, i), e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* How many instances the app has, and whether every one's manifest
 * carries env already. */
static int instances_carry(NapContext *c, const NapService *s, const NapParams *env, size_t *ret_n, bool *ret_all,
                           NapError *e) {
        NapManifest **l = NULL;
        size_t n = 0;
        int r = nap_state_load_service_manifests(c->config, s, &l, &n, e);
        if (r < 0)
                return r;
        *ret_all = true;
        for (size_t i = 0; i < n; i++)
                *ret_all = *ret_all && nap_environment_equal(l[i]->environment, env);
        nap_state_manifests_free(l, n);
        *ret_n = n;
        return 0;
}

/* Under the lock: new stored, and whether a rolling restart must apply it. */
static int config_store(NapContext *c, const NapService *s, const NapParams *set, char *const *unset,
                        NapParams **ret_old, bool *ret_changed, bool *ret_restart, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *old = NULL, *new = NULL;
        _cleanup_close_ int lock = -1;
        size_t n;
        bool all;
        int r = ops_lock_service(c, s, &lock, e);
        if (r >= 0)
                r = config_read(c, s, &old, e);
        if (r >= 0)
                r = config_apply(old, set, unset, &new, e);
        if (r < 0)
                return r;
        *ret_changed = !nap_environment_equal(old, new);
        if (*ret_changed && (r = config_write(c, s, new, e)) < 0)
                return r;
        r = instances_carry(c, s, new, &n, &all, e);
        if (r < 0)
                return r;
        *ret_restart = n > 0 && !all;
        *ret_old = TAKE_PTR(old);
        return 0;
}

/* A restart that failed put the instances back as they were: so goes the
 * stored configuration, unless it changed again meanwhile. */
static void config_put_back(NapContext *c, const NapService *s, const NapParams *old, const NapParams *set,
                            char *const *unset) {
        _cleanup_(nap_params_freep) NapParams *now = NULL, *wanted = NULL;
        _cleanup_close_ int lock = -1;
        if (ops_lock_service(c, s, &lock, NULL) < 0 || config_read(c, s, &now, NULL) < 0 ||
            config_apply(old, set, unset, &wanted, NULL) < 0)
                return;
        if (nap_environment_equal(now, wanted))
                (void) config_write(c, s, old, NULL);
}

void nap_config_result_done(NapConfigResult *r) {
        if (r)
                nap_rollout_result_done(&r->rollout);
}

/* The configuration is stored first (atomically, under the app's lock),
 * then applied by a rollout, which is crash-safe itself. A crash between
 * the two leaves the new configuration stored and the instances running
 * with the old one: new instances get the new one, and the next rolling
 * restart (napctl restart USER_APP, a push, or config set again: it
 * restarts while any instance's manifest differs) applies it. */
int nap_app_config_update(NapContext *c, const char *service, const NapParams *set, char *const *unset,
                          const NapRolloutOptions *o, NapConfigResult *ret, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *old = NULL;
        _cleanup_free_ char *dir = NULL;
        bool restart = false;
        NapService s;
        *ret = (NapConfigResult) {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &dir, e);
        if (r >= 0)
                r = config_store(c, &s, set, unset, &old, &ret->changed, &restart, e);
        if (r < 0 || !restart)
                return r;
        nap_debug_point("config:stored");
        r = nap_refresh_instances(c, service, o, &ret->rollout, e);
        if (r < 0) {
                config_put_back(c, &s, old, set, unset);
                return r;
        }
        ret->restarted = true;
        return 0;
}

/* ---- restart ------------------------------------------------------------ */

static int count_instances(NapContext *c, const NapService *s, size_t *ret, NapError *e) {
        NapManifest **l = NULL;
        int r = nap_state_load_service_manifests(c->config, s, &l, ret, e);
        if (r >= 0)
                nap_state_manifests_free(l, *ret);
        return r;
}

int nap_restart_service(NapContext *c, const char *service, const NapRolloutOptions *o, NapRolloutResult *ret,
                        NapError *e) {
        _cleanup_free_ char *dir = NULL;
        NapService s;
        size_t n = 0;
        *ret = (NapRolloutResult) {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &dir, e);
        if (r >= 0)
                r = count_instances(c, &s, &n, e);
        /* A refresh of an app without instances would start one: a restart
         * starts nothing that did not run. */
        if (r < 0 || n == 0)
                return r;
        return nap_refresh_instances(c, service, o, ret, e);
}

/* ---- scale -------------------------------------------------------------- */

void nap_scale_result_done(NapScaleResult *r) {
        if (!r)
                return;
        r->started = strv_free(r->started);
        r->removed = strv_free(r->removed);
}

/* "After starting 2 of 3 instance(s): …", so the caller knows where it stopped. */
static void error_prefix(NapError *e, const char *verb, size_t done, size_t wanted) {
        if (done > 0) /* else nothing was: the error as it is */
                nap_error_prefix(e, "After %s %zu of %zu instance(s): ", verb, done, wanted);
}

static int scale_up(NapContext *c, const char *service, size_t count, const NapParams *params,
                    const NapRolloutOptions *o, NapScaleResult *ret, NapError *e) {
        for (size_t k = 0; k < count; k++) {
                NapInstanceInfo i = {};
                NapStartOptions so = {};
                int r = nap_start_common(c, service, params, &so, &i, e);
                if (r >= 0 && strv_extend(&ret->started, i.name) < 0)
                        r = nap_error_errno(e, -ENOMEM, "Failed to scale");
                if (r >= 0)
                        ops_progress(o, "%s: started on port %u, answering", i.name, i.port);
                nap_instance_info_clear(&i);
                if (r < 0)
                        return error_prefix(e, "starting", k, count), r;
        }
        return 0;
}

/* Stopped ones first (they serve nobody), then the highest-numbered. */
static int removal_order(const void *a, const void *b) {
        const NapInstanceInfo *x = a, *y = b;
        bool xr = nap_unit_state_is_running(x->active_state), yr = nap_unit_state_is_running(y->active_state);
        if (xr != yr)
                return xr ? 1 : -1;
        return x->number < y->number ? 1 : x->number > y->number ? -1 : 0;
}

static int scale_down(NapContext *c, NapInstanceInfo *l, size_t n, size_t count, const NapRolloutOptions *o,
                      NapScaleResult *ret, NapError *e) {
        qsort(l, n, sizeof *l, removal_order);
        for (size_t k = 0; k < count && k < n; k++) {
                int r = nap_remove_instance(c, l[k].name, e);
                if (r >= 0 && strv_extend(&ret->removed, l[k].name) < 0)
                        r = nap_error_errno(e, -ENOMEM, "Failed to scale");
                if (r < 0)
                        return error_prefix(e, "removing", k, count), r;
                ops_progress(o, "%s: removed", l[k].name);
        }
        return 0;
}

/* The instances with a manifest (a unit systemd knows without one is not
 * nap's to count or remove), compacted to the front of l. */
static size_t keep_managed(NapInstanceInfo *l, size_t n) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (l[i].url)
                        l[k++] = l[i];
                else
                        nap_instance_info_clear(l + i);
        }
        return k;
}

static int scale_check(const char *service, unsigned n, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0 && n > NAP_SCALE_MAX)
                r = nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                         "An app may be scaled to at most %u instances, not %u",
                                                         NAP_SCALE_MAX, n), "instances");
        return r;
}

/* Before the first start: bad parameters start nothing. (Scaling down
 * takes none: an app whose profile needs some can go to 0.) */
static int scale_check_params(NapContext *c, const char *service, const NapParams *params, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_load_service_profile(c, &s, &p, e);
        return r < 0 ? r : ops_check_params(p, params, e);
}

/* Not one operation under one lock: each instance is started or removed
 * by its own (crash-safe) operation, so an app being scaled serves all
 * along, and a scale cut short is finished by scaling again. */
int nap_scale(NapContext *c, const char *service, unsigned n, unsigned limit, const NapParams *params,
              const NapRolloutOptions *o, NapScaleResult *ret, NapError *e) {
        NapInstanceInfo *l = NULL;
        size_t k = 0;
        *ret = (NapScaleResult) {};
        int r = scale_check(service, n, e);
        if (r >= 0)
                r = nap_list_instances(c, service, &l, &k, e);
        if (r < 0)
                return r;
        k = keep_managed(l, k);
        ret->before = ret->after = k;
        size_t count = n > k ? n - k : k - n;
        if (limit > 0 && count > limit)
                count = limit;
        if (n > k) {
                r = scale_check_params(c, service, params, e);
                if (r >= 0)
                        r = scale_up(c, service, count, params, o, ret, e);
        } else if (n < k)
                r = scale_down(c, l, k, count, o, ret, e);
        nap_instance_info_array_free(l, k);
        ret->after = ret->before + strv_length(ret->started) - strv_length(ret->removed);
        return r;
}

/* ---- destroy ------------------------------------------------------------ */

static bool path_exists(char *path) {
        _cleanup_free_ char *p = path;
        return p && access(p, F_OK) >= 0;
}

/* Anything of the app on this host: its tree, its repository, an
 * instance, or a destroy cut short (its intent). */
static bool app_exists(NapContext *c, const NapService *s) {
        size_t n = 0;
        return path_exists(nap_state_service_dir(c->config, s)) ||
               path_exists(nap_state_git_repo_dir(c->config, s)) || path_exists(nap_intent_path(c->config, s)) ||
               (count_instances(c, s, &n, NULL) >= 0 && n > 0);
}

static int remove_path(char *path, NapError *e) {
        _cleanup_free_ char *p = path;
        int r = p ? rm_rf(p) : -ENOMEM;
        if (r >= 0 && p)
                r = fsync_directory_of(p);
        return r < 0 && r != -ENOENT ? nap_error_errno(e, r, "Failed to remove %s", strempty(p)) : 0;
}

static int remove_instances(NapContext *c, const NapService *s, NapError *e) {
        NapManifest **l = NULL;
        size_t n = 0;
        int r = nap_state_load_service_manifests(c->config, s, &l, &n, e);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = ops_remove_instance_locked(c, &l[i]->instance, e);
        nap_state_manifests_free(l, n);
        return r;
}

/* Every step skips what is gone, so recovery runs it again from the top.
 * The etcd keys go first: with etcd away nothing else is touched, and the
 * app is whole (nap-recover puts its keys back from STATE). The lock file
 * stays: removing it under a waiting holder would let two hold "the" lock. */
int ops_destroy_app_locked(NapContext *c, const NapService *s, NapError *e) {
        int r = nap_unpublish_service(c, s, e);
        if (r < 0)
                nap_error_prefix(e, "Nothing else was removed: the app's keys in etcd could not be: ");
        if (r >= 0)
                r = remove_instances(c, s, e);
        if (r >= 0)
                nap_debug_point("destroy-app:instances");
        if (r >= 0)
                r = remove_path(nap_state_git_repo_dir(c->config, s), e);
        if (r >= 0)
                r = remove_path(nap_state_service_dir(c->config, s), e);
        if (r >= 0)
                nap_debug_point("destroy-app:tree");
        if (r >= 0) {
                (void) ops_sweep_leftovers(c, s);
                (void) nap_request_forget_service(c->config, s); /* a retried StartCommon finds nothing */
        }
        if (r >= 0)
                r = remove_path(nap_state_service_env_file(c->config, s), e);
        if (r >= 0)
                r = remove_path(nap_state_service_counter_file(c->config, s), e);
        return r;
}

static int no_such_app(const NapService *s, NapError *e) {
        char name[NAP_SERVICE_NAME_MAX];
        return nap_error_set(e, NAP_ERROR_NO_SUCH_SERVICE, -ENOENT, "No app %s on this host",
                             nap_service_name(s, name));
}

int nap_destroy_app(NapContext *c, const char *service, NapError *e) {
        NapIntent in = { .operation = NAP_INTENT_DESTROY_APP };
        _cleanup_close_ int lock = -1;
        int r = nap_service_parse(service, &in.service, e);
        if (r < 0)
                return r;
        if (!app_exists(c, &in.service)) /* before the lock, which would make a file */
                return no_such_app(&in.service, e);
        r = ops_lock_service(c, &in.service, &lock, e);
        if (r < 0)
                return r;
        /* Gone now: a destroy cut short, finished by the recovery that
         * taking the lock ran, or a concurrent one. Done as asked. */
        if (!app_exists(c, &in.service))
                return 0;
        r = ops_intent_begin(c, &in, e);
        if (r < 0)
                return r;
        r = ops_destroy_app_locked(c, &in.service, e);
        /* A failure (etcd away, systemd refusing a stop) leaves what is
         * left for the next destroy-app, which goes on from there. */
        ops_intent_end(c, &in.service);
        return r;
}

/* ---- status ------------------------------------------------------------- */

void nap_app_status_array_free(NapAppStatus *a, size_t n) {
        for (size_t i = 0; a && i < n; i++) {
                free(a[i].name);
                free(a[i].app);
                free(a[i].commit);
                free(a[i].ports);
        }
        free(a);
}

static bool instance_answers(const NapInstanceInfo *i) {
        NapError ignored = NAP_ERROR_NULL;
        return i->port > 0 && nap_unit_state_is_running(i->active_state) &&
               nap_wait_answering(i->port, NAP_STATUS_ANSWER_USEC, NULL, NULL, &ignored) >= 0;
}

static int status_fill(NapContext *c, const NapServiceInfo *si, NapAppStatus *ret, NapError *e) {
        NapInstanceInfo *l = NULL;
        size_t n = 0;
        *ret = (NapAppStatus) { .name = strdup(si->name), .app = strdup(si->app),
                                .commit = si->commit ? strdup(si->commit) : NULL };
        int r = nap_list_instances(c, si->name, &l, &n, e);
        if (r < 0)
                return r;
        n = keep_managed(l, n);
        if (!ret->name || !ret->app || (si->commit && !ret->commit) || (n > 0 && !(ret->ports = calloc(n, sizeof(unsigned)))))
                r = nap_error_errno(e, -ENOMEM, "Failed to describe %s", si->name);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                ret->instances++;
                ret->running += nap_unit_state_is_running(l[i].active_state);
                ret->answering += instance_answers(l + i);
                ret->ports[ret->n_ports++] = l[i].port;
        }
        nap_instance_info_array_free(l, n);
        return r;
}

int nap_app_status(NapContext *c, const char *user, NapAppStatus **ret, size_t *ret_n, NapError *e) {
        NapServiceInfo *l = NULL;
        size_t n = 0, k = 0;
        int r = nap_list_services(c, user, &l, &n, e);
        if (r < 0)
                return r;
        NapAppStatus *a = n > 0 ? calloc(n, sizeof *a) : NULL;
        if (n > 0 && !a)
                r = nap_error_errno(e, -ENOMEM, "Failed to describe the apps");
        for (; r >= 0 && k < n; k++)
                r = status_fill(c, l + k, a + k, e);
        nap_service_info_array_free(l, n);
        if (r < 0) {
                nap_app_status_array_free(a, k);
                return r;
        }
        *ret = a;
        *ret_n = n;
        return 0;
}
