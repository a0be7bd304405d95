/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Crash recovery. Every multi-step operation on an app records its intent
 * (lib/model/intent.h) under the app's lock before its first change and
 * removes it when done. Whoever takes the lock next and finds an intent
 * knows its writer died half-way (SIGKILL, power cut) and, before doing
 * anything else, brings the app to a state one of the two sides of the
 * operation would have left:
 *   start-common     the manifest was written: the instance is started (and
 *                    the request recorded); else its tree and reservation go
 *   remove-instance  finished: stopped, released, forgotten, tree removed
 *   deploy           the deployed tree is whole either way; staging goes
 *   rollout          back to the version deployed before, or on to the new
 *                    one once an old instance was removed (ops-push.c)
 *   destroy-app      finished: whatever is left of the app goes
 *   start-mpi        undone: the job's units, manifests and tree go, its
 *                    record says "stopped" (ops-mpi.c)
 * and in every case what only a live operation uses (SERVICE_DIR.deploy-*,
 * instance trees' .tmp and .next) is removed. nap_recover() does this for
 * every app with an intent: nap-managerd at start, nap-recover.service at
 * boot and from its timer. */

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "model/intent.h"
#include "model/state.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"
#include "clients/systemd1.h"

#define REQUEST_RECORD_MAX_AGE_USEC (24ULL * 3600ULL * USEC_PER_SEC)

int ops_intent_begin(NapContext *c, NapIntent *i, NapError *e) {
        i->time_usec = realtime_usec();
        return nap_intent_save(c->config, i, e);
}

void ops_intent_end(NapContext *c, const NapService *s) {
        nap_intent_remove(c->config, s);
}

/* ---- leftovers ---------------------------------------------------------- */

/* Entries of dir named PREFIX…SUFFIX-ish: what matches(name) says. */
static unsigned remove_matching(const char *dir, bool (*matches)(const char *name, const char *prefix),
                                const char *prefix) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        unsigned n = 0;
        for (struct dirent *de; d && (de = readdir(d));) {
                if (!matches(de->d_name, prefix))
                        continue;
                _cleanup_free_ char *path = path_join(dir, de->d_name, NULL);
                if (path && rm_rf(path) >= 0)
                        n++;
        }
        return n;
}

/* "USER_APP.deploy-XXXXXX" */
static bool is_staging(const char *name, const char *service) {
        const char *rest = startswith(name, service);
        return rest && startswith(rest, ".deploy-");
}

/* "USER_APP_N.tmp", or "USER_APP_N.next" (left by versions that rebuilt
 * instance trees in place) */
static bool is_instance_scratch(const char *name, const char *service) {
        const char *rest = startswith(name, service);
        rest = rest ? startswith(rest, "_") : NULL;
        if (!rest)
                return false;
        size_t digits = strspn(rest, "0123456789");
        return digits > 0 && (streq(rest + digits, ".tmp") || streq(rest + digits, ".next"));
}

unsigned ops_sweep_leftovers(NapContext *c, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX];
        _cleanup_free_ char *services = nap_state_user_services_dir(c->config, s->user);
        _cleanup_free_ char *apps = nap_state_user_apps_dir(c->config, s->user);
        nap_service_name(s, name);
        return (services ? remove_matching(services, is_staging, name) : 0) +
               (apps ? remove_matching(apps, is_instance_scratch, name) : 0);
}

/* ---- the operations ----------------------------------------------------- */

static NapInstance intent_instance(const NapIntent *in) {
        return (NapInstance) { .service = in->service, .kind = NAP_KIND_COMMON, .number = in->number };
}

/* The manifest was written last: with it the instance is whole, and the
 * start it was created for happens now, its units installed again (the
 * crash may have come before they were) and loaded without a reload. */
static int finish_start(NapContext *c, NapManifest *m, const NapIntent *in, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX], name[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = ops_units_install(c, m, e);
        if (r >= 0)
                r = ops_units_load(c, &m->instance, e);
        nap_instance_unit_name(&m->instance, unit);
        if (r >= 0 && m->enabled) {
                (void) nap_systemd_reset_failed_unit(bus, unit);
                r = nap_systemd_start_unit(bus, unit, e);
        }
        if (r >= 0 && in->request[0])
                r = nap_request_record(c->config, in->service.user, in->request, nap_instance_name(&m->instance, name), e);
        if (r >= 0)
                (void) ops_publish_instance(c, m);
        return r;
}

/* No manifest: the instance never existed for anyone; what was made of it
 * goes (its number is not handed out again). */
static int undo_start(NapContext *c, const NapIntent *in, NapError *e) {
        NapManifest m = { .instance = intent_instance(in), .reservation = in->node[0] ? (char *) in->node : NULL };
        _cleanup_free_ char *dir = nap_state_instance_dir(c->config, &m.instance);
        int r = ops_release_instance(c, &m, e);
        if (r < 0)
                return r;
        r = dir ? rm_rf(dir) : -ENOMEM;
        return r < 0 ? nap_error_errno(e, r, "Failed to remove %s", strempty(dir)) : 0;
}

static int recover_start(NapContext *c, const NapIntent *in, NapError *e) {
        NapInstance i = intent_instance(in);
        _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, &i);
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to recover");
        if (access(path, F_OK) < 0)
                return undo_start(c, in, e);
        int r = nap_manifest_load(path, &m, e);
        return r < 0 ? r : finish_start(c, m, in, e);
}

static int recover_remove(NapContext *c, const NapIntent *in, NapError *e) {
        NapInstance i = intent_instance(in);
        return ops_remove_instance_locked(c, &i, e);
}

/* A rollout makes instances through the start-common path with its own
 * record: the one it was making when it died, if it has no manifest, is
 * undone as a start-common would be; the rest is ops_rollout_recover()'s. */
static int recover_rollout(NapContext *c, const NapIntent *in, NapError *e) {
        NapInstance i = intent_instance(in);
        _cleanup_free_ char *path = in->number > 0 ? nap_manifest_path(c->config->instances_dir, &i) : NULL;
        if (in->number > 0 && !path)
                return nap_error_errno(e, -ENOMEM, "Failed to recover");
        int r = path && access(path, F_OK) < 0 ? undo_start(c, in, e) : 0;
        return r < 0 ? r : ops_rollout_recover(c, in, e);
}

static int recover_intent(NapContext *c, const NapIntent *in, NapError *e) {
        switch (in->operation) {
        case NAP_INTENT_START_COMMON:
                return recover_start(c, in, e);
        case NAP_INTENT_REMOVE_INSTANCE:
                return recover_remove(c, in, e);
        case NAP_INTENT_ROLLOUT:
                return recover_rollout(c, in, e);
        case NAP_INTENT_DESTROY_APP:
                return ops_destroy_app_locked(c, &in->service, e);
        case NAP_INTENT_START_MPI:
                return ops_mpi_recover(c, in, e);
        default:
                return 0; /* deploy: the sweep is all */
        }
}

/* Under the app's lock. 0: nothing was pending; 1: an intent was
 * recovered; < 0: it could not be (the intent goes anyway: the next
 * operation must not trip over it forever; e says why). */
static int recover_locked(NapContext *c, const NapService *s, NapError *e) {
        NapIntent in;
        NapError why = NAP_ERROR_NULL;
        int r = nap_intent_load(c->config, s, &in, &why);
        if (r == -ENOENT)
                return 0;
        ops_sweep_leftovers(c, s);
        if (r >= 0)
                r = recover_intent(c, &in, &why);
        nap_intent_done(&in);
        ops_intent_end(c, s);
        if (r < 0) {
                char name[NAP_SERVICE_NAME_MAX];
                return nap_error_set(e, why.kind, r, "Recovering %s: %s", nap_service_name(s, name), why.message);
        }
        return 1;
}

int ops_lock_service(NapContext *c, const NapService *s, int *ret_fd, NapError *e) {
        _cleanup_close_ int fd = -1;
        int r = nap_state_lock_service(c->config, s, &fd, e);
        if (r < 0)
                return r;
        /* What could not be recovered is not this operation's failure. */
        (void) recover_locked(c, s, NULL);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- every app ---------------------------------------------------------- */

typedef struct RecoverAll {
        NapContext *c;
        NapRecoverResult *result;
} RecoverAll;

static int recover_service(const NapService *s, void *userdata) {
        RecoverAll *all = userdata;
        _cleanup_close_ int fd = -1;
        NapError e = NAP_ERROR_NULL;
        int r = nap_state_lock_service(all->c->config, s, &fd, &e);
        if (r >= 0)
                r = recover_locked(all->c, s, &e);
        if (r > 0)
                all->result->recovered++;
        if (r < 0) {
                all->result->failed++;
                snprintf(all->result->last_error, sizeof all->result->last_error, "%s", e.message);
        }
        return 0;
}

int nap_recover(NapContext *c, NapRecoverResult *ret, NapError *e) {
        RecoverAll all = { .c = c, .result = ret };
        *ret = (NapRecoverResult) {};
        int r = nap_intent_foreach_service(c->config, recover_service, &all);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to look for interrupted operations");
        ret->requests_expired = nap_request_expire(c->config, REQUEST_RECORD_MAX_AGE_USEC);
        return 0;
}

static int stop_at_first(const NapService *s, void *userdata) {
        return -EEXIST;
}

bool nap_recover_pending(const NapConfig *c) {
        return nap_intent_foreach_service(c, stop_at_first, NULL) == -EEXIST;
}
