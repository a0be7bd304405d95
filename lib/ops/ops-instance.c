/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Instances: start_common, list_instances, get_instances_num, start_app,
 * stop_app, cat_app, get_journal, remove_instance. */

#include <stdio.h>

#include <inttypes.h>
#include <jansson.h>

#include "base/debug-point.h"
#include "base/fileio.h"
#include "cluster/inventory.h"
#include "cluster/queue.h"
#include "model/manifest.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"
#include "model/state.h"
#include "base/strv.h"
#include "clients/systemd1.h"
#include "model/unit.h"

#define NAP_JOURNAL_LINES_MAX 10000

/* The instance's profile as nap ran it: a header and the substituted
 * command, written so that it parses back to exactly argv. */
static int write_instance_profile(const char *dir, const NapInstance *i, char *const *argv) {
        char name[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *command = nap_profile_format_command(argv);
        _cleanup_free_ char *path = path_join(dir, "profile", NULL);
        _cleanup_free_ char *text = command ? strdup_printf(
                "# %s: the profile of this instance, parameters substituted by nap.\n%s\n",
                nap_instance_name(i, name), command) : NULL;
        if (!text || !path)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0644);
}

int ops_instance_tree_build(const char *from, const NapInstance *i, char *const *argv, const char *to) {
        static const char *const skip[] = { NAP_STATE_META_DIR_NAME, ".git", NULL };
        int r = rm_rf(to); /* left over by a crash */
        if (r >= 0)
                r = copy_tree(from, to, skip);
        if (r >= 0)
                r = write_instance_profile(to, i, argv);
        if (r < 0)
                (void) rm_rf(to);
        return r;
}

/* Copies the deployed tree to the instance directory via a temporary
 * one, so the instance directory appears whole or not at all. */
static int create_instance_tree(NapContext *c, const char *service_dir, const NapInstance *i,
                                char *const *argv, char **ret_dir, NapError *e) {
        _cleanup_free_ char *dir = nap_state_instance_dir(c->config, i);
        _cleanup_free_ char *tmp = dir ? nap_state_instance_build_dir(dir) : NULL;
        _cleanup_free_ char *parent = nap_state_user_apps_dir(c->config, i->service.user);
        if (!dir || !tmp || !parent)
                return nap_error_errno(e, -ENOMEM, "Failed to create instance");

        int r = mkdir_p(parent, 0755);
        if (r >= 0)
                r = ops_instance_tree_build(service_dir, i, argv, tmp);
        if (r >= 0 && rename(tmp, dir) < 0)
                r = negative_errno();
        if (r >= 0)
                r = fsync_directory_of(dir);
        if (r < 0) {
                (void) rm_rf(tmp);
                return nap_error_errno(e, r, "Failed to create %s", dir);
        }
        *ret_dir = TAKE_PTR(dir);
        return 0;
}

char *ops_http_url(const char *host, unsigned port) {
        /* An IPv6 literal needs brackets in a URL. */
        return strchr(host, ':') ? strdup_printf("http://[%s]:%u", host, port) : strdup_printf("http://%s:%u", host, port);
}

static char *instance_url(const NapConfig *c, unsigned port) {
        _cleanup_free_ char *host = NULL;
        if (nap_config_host(c, &host) < 0)
                return NULL;
        return ops_http_url(host, port);
}

int ops_instance_info_from_manifest(const NapConfig *c, const NapManifest *m, NapInstanceInfo *ret) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        NapParams *params = NULL;
        int r = nap_params_new(&params);
        for (size_t k = 0; r >= 0 && m->params && k < nap_params_size(m->params); k++)
                r = nap_params_set(params, nap_params_key(m->params, k), nap_params_value(m->params, k), NULL);
        *ret = (NapInstanceInfo) {
                .name = strdup(nap_instance_name(&m->instance, name)),
                .unit = strdup(nap_instance_unit_name(&m->instance, unit)),
                .number = m->instance.number,
                .port = m->port,
                .url = instance_url(c, m->port),
                .enabled = m->enabled,
                .argv = strv_copy(m->argv),
                .params = params,
                .commit = m->commit ? strdup(m->commit) : NULL,
        };
        if (r < 0 || !ret->name || !ret->unit || !ret->url || !ret->argv || (m->commit && !ret->commit)) {
                nap_instance_info_clear(ret);
                return -ENOMEM;
        }
        return 0;
}

static int instance_info_set_state(NapInstanceInfo *i, const char *active, const char *sub) {
        free(i->active_state);
        free(i->sub_state);
        i->active_state = strdup(active);
        i->sub_state = strdup(sub);
        return i->active_state && i->sub_state ? 0 : -ENOMEM;
}

/* Params that substitute cleanly with a stand-in port: checked before
 * anything is allocated or written. */
int ops_check_params(const NapProfile *p, const NapParams *params, NapError *e) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *exec = NULL;
        int r = nap_profile_substitute(p, params, 1, &argv, NULL, e);
        if (r < 0)
                return r;
        /* What the generator will write must be writable: a first word that is
         * empty or starts with one of systemd's ExecStart= prefixes is not. */
        r = unit_format_exec(argv, &exec);
        if (r == -EINVAL)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r,
                                     "The command's first word '%.64s' cannot be run: it is empty or starts with one of -@:+!",
                                     argv[0]);
        return r < 0 ? nap_error_errno(e, r, "Failed to check the command") : 0;
}

/* The start-common intent, once the number is known: what recovery needs
 * to find the instance and the node its reservation goes to. */
static int begin_start_intent(NapContext *c, NapIntent *in, const NapManifest *m, NapError *e) {
        in->number = m->instance.number;
        if (!nap_compute_is_empty(&m->resources) && c->config->etcd) {
                _cleanup_free_ char *node = NULL;
                int r = nap_config_node(c->config, &node, e);
                if (r < 0)
                        return r;
                snprintf(in->node, sizeof in->node, "%s", node);
        }
        return ops_intent_begin(c, in, e);
}

/* A number given by the caller: one this host has no instance (manifest
 * or tree) of. */
static int take_number(NapContext *c, NapInstance *i, unsigned number, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        i->number = number;
        _cleanup_free_ char *manifest = nap_manifest_path(c->config->instances_dir, i);
        _cleanup_free_ char *dir = nap_state_instance_dir(c->config, i);
        if (!manifest || !dir)
                return nap_error_errno(e, -ENOMEM, "Failed to create instance");
        if (number > NAP_INSTANCE_NUMBER_MAX || access(manifest, F_OK) >= 0 || access(dir, F_OK) >= 0)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                                            "Instance %s exists on this host already",
                                                            nap_instance_name(i, name)), "number");
        return 0;
}

/* Under the app's lock: number, (intent), port, tree, manifest. */
int ops_create_instance(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                        NapIntent *intent, NapManifest *m, NapError *e) {
        return ops_create_instance_numbered(c, s, p, params, 0, intent, m, e);
}

int ops_create_instance_numbered(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                                 unsigned number, NapIntent *intent, NapManifest *m, NapError *e) {
        _cleanup_free_ char *service_dir = NULL;
        int r = ops_service_dir_checked(c, s, &service_dir, e);
        if (r >= 0 && ops_tree_is_dockerfile_app(service_dir))
                r = ops_container_check(c->scope, e); /* before anything of the instance exists */
        if (r < 0)
                return r;
        /* m's number, when set, was picked by the caller under this lock
         * (a queued start's hand-over named its reservation after it);
         * number, when given, is a cluster app's from its assignment */
        unsigned preset = m->instance.number;
        m->instance = (NapInstance) { .service = *s, .kind = NAP_KIND_COMMON, .number = preset };
        if (number > 0)
                r = take_number(c, &m->instance, number, e);
        else if (preset == 0)
                r = nap_state_next_instance_number(c->config, s, &m->instance.number, e);
        if (r >= 0 && intent)
                r = begin_start_intent(c, intent, m, e);
        if (r < 0)
                return r;
        _cleanup_close_ int port_lock = -1;
        r = nap_state_allocate_port(c->config, &m->instance, &m->port, &port_lock, e);
        if (r < 0)
                return r;
        r = nap_manifest_apply_profile(m, p, params, e);
        if (r >= 0) /* the app's configuration (napctl config): every new instance has it */
                r = ops_app_environment(c, s, &m->environment, e);
        if (r >= 0)
                r = ops_reserve_instance(c, m, e); /* before anything of it exists */
        if (r < 0)
                return r;
        nap_debug_point("start-common:reserved");
        r = create_instance_tree(c, service_dir, &m->instance, m->argv, &m->directory, e);
        if (r < 0)
                return (void) ops_release_instance(c, m, NULL), r;
        DeployMeta meta;
        ops_deploy_meta_read(service_dir, &meta);
        m->commit = TAKE_PTR(meta.commit);
        ops_deploy_meta_clear(&meta);
        m->enabled = true;
        m->cluster = number > 0; /* a cluster assignment's number: nap-node's, not started at boot */
        if (ops_tree_is_dockerfile_app(service_dir)) {
                r = nap_manifest_set_image(m, m->directory, e); /* built and run by podman units */
                if (r < 0)
                        return r;
        }
        /* The manifest is written last and atomically: it is what makes the
         * instance exist for the generator and for every operation. */
        r = nap_manifest_save(c->config->instances_dir, m, e);
        if (r < 0)
                return (void) ops_release_instance(c, m, NULL), r;
        /* Its units for the manager, to start it without a reload. A
         * failure leaves the instance, as a failed start does. */
        return ops_units_install(c, m, e);
}

static int start_unit_reporting(NapContext *c, const NapInstance *i, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_start_unit(bus, nap_instance_unit_name(i, unit), e);
        return r;
}

/* The app's URL (again: a deploy may have found etcd down) and the new
 * instance's port. */
NapPublish ops_publish_instance(NapContext *c, const NapManifest *m) {
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, &m->instance.service);
        _cleanup_(ops_deploy_meta_clear) DeployMeta meta = {};
        if (dir)
                ops_deploy_meta_read(dir, &meta);
        NapPublish p = nap_publish_port(c, &m->instance, m->port, NULL);
        if (p == NAP_PUBLISH_DONE && meta.url)
                p = nap_publish_url(c, &m->instance.service, meta.url, NULL);
        return p;
}

/* The answer about an instance that exists: from its manifest, with
 * systemd's view of its unit. */
static int describe_instance(NapContext *c, const NapManifest *m, NapInstanceInfo *ret, NapError *e) {
        NapUnitStatus u = {};
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = ops_instance_info_from_manifest(c->config, m, ret);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to describe the instance");
        r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_get_unit_status(bus, nap_instance_unit_name(&m->instance, unit), &u, e);
        if (r >= 0 && instance_info_set_state(ret, strempty(u.active_state), strempty(u.sub_state)) < 0)
                r = nap_error_errno(e, -ENOMEM, "Failed to describe the instance");
        nap_unit_status_clear(&u);
        if (r < 0)
                nap_instance_info_clear(ret);
        return r;
}

int ops_request_replayed(NapContext *c, const NapService *s, const char *request_id, NapKind kind, NapInstance *ret,
                         NapError *e) {
        _cleanup_free_ char *instance = NULL;
        int r = nap_request_lookup(c->config, s->user, request_id, &instance);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to look up request %s", request_id);
        if (r == 0)
                return 0;
        if (nap_instance_parse(instance, ret, NULL) < 0 || !streq(ret->service.app, s->app) || ret->kind != kind)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                                            "Request id %s was used for %s already", request_id,
                                                            instance), "requestId");
        return 1;
}

/* A request id seen before (under the lock, after recovery finished any
 * start it was cut short in): 1 and the instance it made, 0 if new. */
static int replay_request(NapContext *c, const NapService *s, const char *request_id, NapInstanceInfo *ret,
                          NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        char name[NAP_UNIT_NAME_MAX];
        NapInstance i;
        int r = ops_request_replayed(c, s, request_id, NAP_KIND_COMMON, &i, e);
        if (r <= 0)
                return r;
        r = ops_load_instance(c, nap_instance_name(&i, name), &m, e);
        if (r < 0)
                return r;
        r = describe_instance(c, m, ret, e);
        return r < 0 ? r : 1;
}

/* Until the instance answers (or the wait is not wanted): UnitFailed with
 * its last log lines when it does not. */
static int wait_answering(NapContext *c, const NapManifest *m, bool no_block, uint64_t timeout_usec, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        if (no_block)
                return 0;
        nap_instance_unit_name(&m->instance, unit);
        int r = ops_wait_instance_answering(c, unit, m->port,
                                            timeout_usec > 0 ? timeout_usec : NAP_START_ANSWER_TIMEOUT_USEC_DEFAULT, e);
        if (r < 0)
                ops_error_add_journal(c, unit, e);
        return r;
}

/* Under the app's lock, intent recorded: create (units installed), load
 * (no reload but in ops_units_load()'s one case), start, record. */
static int start_common_locked(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                               unsigned number, NapIntent *in, NapManifest *m, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = ops_create_instance_numbered(c, s, p, params, number, in, m, e);
        if (r >= 0)
                nap_debug_point("start-common:manifest");
        if (r >= 0)
                r = ops_units_load(c, &m->instance, e);
        if (r >= 0)
                r = ops_container_build(c, m, NULL, e); /* a container's image first */
        if (r >= 0 && (r = start_unit_reporting(c, &m->instance, e)) < 0)
                ops_container_explain(c, m, e);
        if (r >= 0)
                nap_debug_point("start-common:started");
        if (r >= 0 && in->request[0])
                r = nap_request_record(c->config, s->user, in->request, nap_instance_name(&m->instance, name), e);
        return r;
}

/* ---- start-common --queue (ops-queued.c) -------------------------------- */

typedef struct CommonStart {
        const NapService *service;
        const NapProfile *profile;
        const NapParams *params;
        NapIntent *intent;
        NapManifest *manifest;
} CommonStart;

/* Does not fit: nothing of it exists yet (the reservation comes before
 * the tree and the manifest), so the intent goes and the next try picks
 * its own number. */
static int start_common_now(NapContext *c, void *userdata, NapError *e) {
        CommonStart *s = userdata;
        NapError why = NAP_ERROR_NULL;
        int r = start_common_locked(c, s->service, s->profile, s->params, 0, s->intent, s->manifest, &why);
        if (r < 0 && why.kind == NAP_ERROR_INSUFFICIENT_RESOURCES) {
                ops_intent_end(c, s->service);
                s->intent->time_usec = 0;
                s->manifest->instance.number = 0;
        }
        if (r < 0 && e)
                *e = why;
        return r;
}

/* Admitted: the number the instance will have, the hand-over to it
 * (recovery releases the reservation if we die before its manifest),
 * then the ordinary start, which finds its reservation held. */
static int start_common_admitted(NapContext *c, const NapJob *j, void *userdata, NapError *e) {
        CommonStart *s = userdata;
        NapInstance i = { .service = *s->service, .kind = NAP_KIND_COMMON };
        NapReservation held;
        int r = nap_state_next_instance_number(c->config, s->service, &i.number, e);
        if (r >= 0)
                r = ops_queued_take(c, j, s->intent, &i, &held, e);
        if (r < 0)
                return r;
        s->manifest->instance.number = i.number; /* ops_create_instance() makes this one */
        s->manifest->resources = held.compute;   /* as queued: ops_reserve_instance() finds it held */
        return start_common_locked(c, s->service, s->profile, s->params, 0, s->intent, s->manifest, e);
}

static int start_queued_locked(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                               NapIntent *in, NapManifest *m, const NapStartOptions *o, NapError *e) {
        CommonStart start = { .service = s, .profile = p, .params = params, .intent = in, .manifest = m };
        OpsQueuedRequest q = { .kind = "start-common", .method = "StartCommon", .service = s, .params = params,
                               .request = in->request, .reservation = m->resources, .detached = o->no_block };
        OpsQueuedStarter starter = { .start_now = start_common_now, .start_admitted = start_common_admitted,
                                     .userdata = &start };
        return ops_queued_start(c, &q, &starter, o->queued, e);
}

/* --node and --cluster exclude each other, and the queue. */
static int check_cluster_options(const NapStartOptions *o, NapError *e) {
        if (o->node && o->cluster)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "node and cluster exclude each other: a start is "
                                                            "either on the node named or placed in the cluster"),
                                           "cluster");
        if ((o->node || o->cluster) && o->queue)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "A start on a given node or placed in the cluster "
                                                            "cannot wait in the queue (yet)"),
                                           "queue");
        return 0;
}

int nap_start_common(NapContext *c, const char *service, const NapParams *params, const NapStartOptions *o,
                     NapInstanceInfo *ret, NapError *e) {
        NapStartOptions opts = o ? *o : (NapStartOptions) {};
        NapIntent in = { .operation = NAP_INTENT_START_COMMON };
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r = nap_service_parse(service, &in.service, e);
        if (r >= 0 && opts.request_id)
                r = nap_request_id_check(opts.request_id, e);
        if (r >= 0 && !nap_compute_is_empty(&opts.resources))
                r = nap_compute_check(&opts.resources, e);
        if (r >= 0)
                r = check_cluster_options(&opts, e);
        if (r >= 0 && (opts.node || opts.cluster) && opts.number == 0)
                return ops_start_common_on_node(c, &in.service, params, &opts, ret, e);
        if (r >= 0 && opts.queue)
                r = ops_queued_check(c, &opts.resources, opts.request_id, e);
        if (r >= 0)
                r = ops_load_service_profile(c, &in.service, &p, e);
        if (r >= 0)
                r = ops_check_params(p, params, e);
        if (r < 0)
                return r;

        _cleanup_(nap_manifest_freep) NapManifest *m = calloc(1, sizeof *m);
        _cleanup_close_ int lock = -1;
        sd_bus *bus;
        if (!m)
                return nap_error_errno(e, -ENOMEM, "Failed to start");
        m->resources = opts.resources;
        if (opts.request_id)
                snprintf(in.request, sizeof in.request, "%s", opts.request_id);
        r = ops_context_bus(c, &bus, e); /* before writing anything: no bus, no instance */
        if (r >= 0)
                r = ops_lock_service(c, &in.service, &lock, e);
        if (r >= 0 && opts.request_id) {
                r = replay_request(c, &in.service, opts.request_id, ret, e);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        if (r >= 0)
                r = opts.queue ? start_queued_locked(c, &in.service, p, params, &in, m, &opts, e)
                               : start_common_locked(c, &in.service, p, params, opts.number, &in, m, e);
        /* Done or failed whole (a failed start leaves the instance, as a
         * failed `systemctl start` leaves the unit): nothing to recover. */
        if (in.time_usec > 0)
                ops_intent_end(c, &in.service);
        lock = safe_close(lock); /* the app is free while we wait for it to answer */
        if (r > 0)
                return 1; /* queued */
        if (r >= 0)
                r = wait_answering(c, m, opts.no_block, opts.answer_timeout_usec, e);
        if (r < 0)
                return r;
        r = ops_instance_info_from_manifest(c->config, m, ret);
        if (r >= 0)
                r = instance_info_set_state(ret, "active", "running");
        if (r < 0)
                return nap_error_errno(e, r, "Failed to describe the new instance");
        ret->publish = ops_publish_instance(c, m);
        return 0;
}

static int instance_info_compare(const void *a, const void *b) {
        const NapInstanceInfo *x = a, *y = b;
        return x->number < y->number ? -1 : x->number > y->number;
}

/* Every manifest of the service in Instances=. */
static int read_instance_manifests(NapContext *c, const NapService *s, NapInstanceInfo **list, size_t *n, NapError *e) {
        NapManifest **l = NULL;
        size_t k = 0;
        int r = nap_state_load_service_manifests(c->config, s, &l, &k, e);
        if (r >= 0 && k > 0 && !(*list = calloc(k, sizeof **list)))
                r = nap_error_errno(e, -ENOMEM, "Failed to list instances");
        for (size_t i = 0; r >= 0 && i < k; i++) {
                r = ops_instance_info_from_manifest(c->config, l[i], *list + *n);
                if (r < 0)
                        r = nap_error_errno(e, r, "Failed to list instances");
                else
                        ++*n;
        }
        nap_state_manifests_free(l, k);
        return r;
}

static NapInstanceInfo *find_instance_info(NapInstanceInfo *list, size_t n, const char *unit) {
        for (size_t k = 0; k < n; k++)
                if (streq(list[k].unit, unit))
                        return list + k;
        return NULL;
}

/* Adds systemd's view: state of each instance; units systemd has loaded
 * without a manifest (removed behind nap's back, still running) are listed
 * too, so nothing that runs is hidden. One that is inactive is not: a
 * removed instance stays loaded, stopped, until the next reload when the
 * generator had enabled it (its target still wants it). */
static int merge_unit_states(const NapUnitStatus *units, size_t k, NapInstanceInfo **list, size_t *n, NapError *e) {
        int r = 0;
        for (size_t u = 0; r >= 0 && u < k; u++) {
                NapInstanceInfo *i = find_instance_info(*list, *n, units[u].name);
                NapInstance parsed;
                if (!i && streq(units[u].active_state, "inactive"))
                        continue;
                if (!i && nap_instance_parse(units[u].name, &parsed, NULL) >= 0) {
                        NapInstanceInfo *l = reallocarray(*list, *n + 1, sizeof **list);
                        if (!l) {
                                r = -ENOMEM;
                                break;
                        }
                        *list = l;
                        i = l + (*n)++;
                        char name[NAP_UNIT_NAME_MAX];
                        *i = (NapInstanceInfo) { .name = strdup(nap_instance_name(&parsed, name)),
                                                 .unit = strdup(units[u].name), .number = parsed.number };
                }
                if (i && instance_info_set_state(i, units[u].active_state, units[u].sub_state) < 0)
                        r = -ENOMEM;
        }
        for (size_t j = 0; r >= 0 && j < *n; j++)
                if (!(*list)[j].active_state && instance_info_set_state(*list + j, "inactive", "dead") < 0)
                        r = -ENOMEM;
        return r < 0 ? nap_error_errno(e, r, "Failed to list instances") : 0;
}

int nap_list_instances_pattern(const char *service, char **ret, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r < 0)
                return r;
        /* common@ and MPI jobs' mpi_master@/mpi_slave@, not sidecars or builds */
        *ret = strdup_printf("%s_%s_[cm][op][mi]*@*.service", s.user, s.app);
        return *ret ? 0 : nap_error_errno(e, -ENOMEM, "Failed to list instances");
}

/* r < 0: list freed, r returned; else list sorted by number into *ret. */
static int instances_hand_over(int r, NapInstanceInfo *list, size_t n, NapInstanceInfo **ret, size_t *ret_n) {
        if (r < 0) {
                nap_instance_info_array_free(list, n);
                return r;
        }
        if (n > 0)
                qsort(list, n, sizeof *list, instance_info_compare);
        *ret = list;
        *ret_n = n;
        return 0;
}

int nap_list_instances_merge(NapContext *c, const char *service, const NapUnitStatus *units, size_t n_units,
                             NapInstanceInfo **ret, size_t *ret_n, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r < 0)
                return r;
        NapInstanceInfo *list = NULL;
        size_t n = 0;
        r = read_instance_manifests(c, &s, &list, &n, e);
        if (r >= 0)
                r = merge_unit_states(units, n_units, &list, &n, e);
        _cleanup_free_ char *dir = NULL;
        if (r >= 0 && n == 0)
                r = ops_service_dir_checked(c, &s, &dir, e); /* nothing at all: say so */
        return instances_hand_over(r, list, n, ret, ret_n);
}

int nap_list_instances(NapContext *c, const char *service, NapInstanceInfo **ret, size_t *ret_n, NapError *e) {
        _cleanup_free_ char *pattern = NULL;
        NapUnitStatus *units = NULL;
        size_t k = 0;
        sd_bus *bus;
        int r = nap_list_instances_pattern(service, &pattern, e);
        if (r >= 0)
                r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_list_units(bus, pattern, &units, &k, e);
        if (r >= 0)
                r = nap_list_instances_merge(c, service, units, k, ret, ret_n, e);
        nap_unit_status_array_free(units, k);
        return r;
}

int nap_list_instances_everywhere(NapContext *c, const char *service, NapInstanceInfo **ret, size_t *ret_n,
                                  NapError *e) {
        NapInstanceInfo *list = NULL;
        size_t n = 0;
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = nap_list_instances(c, service, &list, &n, e);
        /* not deployed here: the cluster may still run it elsewhere */
        if (r < 0 && c->config->etcd && e->kind == NAP_ERROR_NO_SUCH_SERVICE && nap_service_parse(service, &s, NULL) >= 0) {
                NapError none = NAP_ERROR_NULL;
                r = ops_cluster_instances(c, &s, &list, &n, &none);
                if (r >= 0 && n == 0)
                        r = -ENOENT; /* nothing anywhere: the error stands */
                else if (r >= 0)
                        *e = NAP_ERROR_NULL;
        } else if (r >= 0)
                r = ops_cluster_instances(c, &s, &list, &n, e);
        return instances_hand_over(r, list, n, ret, ret_n);
}

int nap_get_instances_num(NapContext *c, const char *service, unsigned *ret, NapError *e) {
        NapInstanceInfo *list;
        size_t n;
        int r = nap_list_instances_everywhere(c, service, &list, &n, e);
        if (r < 0)
                return r;
        nap_instance_info_array_free(list, n);
        *ret = n;
        return 0;
}

/* Records whether the instance comes back at boot. Only the generator's
 * next run reads it (it decides the .wants/ link), so no reload is needed
 * now: the unit is started or stopped directly. The runtime units are
 * written again with the manifest, as after every rewrite (unchanged
 * files are left alone). */
static int set_enabled(NapContext *c, NapManifest *m, bool enabled, NapError *e) {
        if (m->enabled == enabled)
                return 0;
        m->enabled = enabled;
        int r = nap_manifest_save(c->config->instances_dir, m, e);
        return r < 0 ? r : ops_units_install(c, m, e);
}

/* What start, stop and remove need: the app's lock (held until *lock is
 * closed), the manifest as it is under the lock (a recovery the lock ran
 * may have changed it; an instance that does not exist takes no lock),
 * the bus. */
static int open_instance_locked(NapContext *c, const char *instance, NapManifest **ret, sd_bus **ret_bus,
                                int *lock, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        int r = ops_load_instance(c, instance, &m, e);
        if (r >= 0)
                r = ops_context_bus(c, ret_bus, e);
        if (r >= 0)
                r = ops_lock_service(c, &m->instance.service, lock, e);
        return r < 0 ? r : ops_load_instance(c, instance, ret, e);
}

typedef enum UnitAction {
        UNIT_STOP,
        UNIT_START,
        UNIT_RESTART,
} UnitAction;

/* Start and restart leave the instance enabled, stop disabled: what runs
 * now is what runs after a reboot. */
static int act_on_instance(NapContext *c, const char *instance, UnitAction action, bool no_block, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_close_ int lock = -1;
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        NapInstance i;
        int r = nap_instance_parse(instance, &i, e);
        /* a cluster instance's assignment says whether it runs; one of
         * another node is started, stopped or restarted there */
        if (r >= 0 && action != UNIT_RESTART)
                r = ops_cluster_set_enabled(c, &i, action != UNIT_STOP, action == UNIT_STOP || !no_block, e);
        else if (r >= 0)
                r = ops_cluster_restart(c, &i, no_block, e);
        if (r != 0)
                return r < 0 ? r : 0;
        r = open_instance_locked(c, instance, &m, &bus, &lock, e);
        if (r >= 0)
                r = set_enabled(c, m, action != UNIT_STOP, e);
        if (r < 0)
                return r;
        nap_instance_unit_name(&m->instance, unit);
        if (action == UNIT_STOP)
                return nap_systemd_stop_unit(bus, unit, e);
        /* An explicit start clears a unit that gave up after its start
         * limit, as `systemctl reset-failed; systemctl start` would. */
        (void) nap_systemd_reset_failed_unit(bus, unit);
        r = action == UNIT_RESTART ? nap_systemd_restart_unit(bus, unit, e) : nap_systemd_start_unit(bus, unit, e);
        lock = safe_close(lock);
        return r < 0 ? r : wait_answering(c, m, no_block, 0, e);
}

int nap_start_app(NapContext *c, const char *instance, bool no_block, NapError *e) {
        return act_on_instance(c, instance, UNIT_START, no_block, e);
}

int nap_stop_app(NapContext *c, const char *instance, NapError *e) {
        return act_on_instance(c, instance, UNIT_STOP, true, e);
}

int nap_restart_app(NapContext *c, const char *instance, bool no_block, NapError *e) {
        return act_on_instance(c, instance, UNIT_RESTART, no_block, e);
}

int nap_cat_app(NapContext *c, const char *instance, char **ret, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        int r = ops_load_instance(c, instance, &m, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = path_join(m->directory, "profile", NULL);
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read profile");
        r = read_full_file(path, NAP_PROFILE_MAX_SIZE, ret, NULL);
        return r < 0 ? nap_error_errno(e, r, "Failed to read %s", path) : 0;
}

int nap_get_journal(NapContext *c, const char *instance, size_t lines, NapJournalEntry **ret, size_t *ret_n, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        char unit[NAP_UNIT_NAME_MAX];
        if (lines > NAP_JOURNAL_LINES_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "At most %d journal lines can be asked for",
                                     NAP_JOURNAL_LINES_MAX);
        int r = ops_load_instance(c, instance, &m, e);
        if (r < 0)
                return r;
        return nap_journal_tail(c->scope, nap_instance_unit_name(&m->instance, unit), lines, ret, ret_n, e);
}

/* The manifest's path, unlinked and synced; gone already is fine. */
static int forget_manifest(NapContext *c, const NapInstance *i, NapError *e) {
        _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, i);
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to remove instance");
        if (unlink(path) < 0 && errno != ENOENT)
                return nap_error_errno(e, negative_errno(), "Failed to remove %s", path);
        int r = fsync_directory_of(path);
        return r < 0 ? nap_error_errno(e, r, "Failed to sync %s", path) : 0;
}

/* Stop, release, forget (manifest gone: the generator drops its units at
 * the next reload; its runtime units go now, and no reload is needed: the
 * unit is stopped and nothing lists it), then remove the tree. Each step
 * skips what is gone already, so that recovery can run it again after a
 * crash anywhere in it. */
int ops_remove_instance_locked(NapContext *c, const NapInstance *i, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_free_ char *manifest = nap_manifest_path(c->config->instances_dir, i);
        _cleanup_free_ char *dir = NULL;
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        if (!manifest)
                return nap_error_errno(e, -ENOMEM, "Failed to remove instance");
        int r = access(manifest, F_OK) >= 0 ? nap_manifest_load(manifest, &m, e) : 0;
        if (r >= 0)
                r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_stop_unit(bus, nap_instance_unit_name(i, unit), e);
        /* released first: an instance whose reservation cannot go yet
         * (etcd away) stays, stopped, for the next remove-instance */
        if (r >= 0 && m)
                r = ops_release_instance(c, m, e);
        if (r >= 0)
                r = forget_manifest(c, i, e);
        if (r >= 0)
                nap_debug_point("remove-instance:forgotten");
        if (r >= 0)
                r = ops_units_uninstall(c, i, e);
        if (r < 0)
                return r;
        (void) nap_systemd_reset_failed_unit(bus, unit);
        nap_unpublish_port(c, i);
        dir = m ? strdup(m->directory) : nap_state_instance_dir(c->config, i);
        r = dir ? rm_rf(dir) : -ENOMEM;
        return r < 0 ? nap_error_errno(e, r, "Failed to remove %s", strempty(dir)) : 0;
}

int nap_remove_instance(NapContext *c, const char *instance, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_close_ int lock = -1;
        sd_bus *bus;
        NapInstance i;
        int r = nap_instance_parse(instance, &i, e);
        if (r >= 0)
                r = ops_cluster_remove(c, &i, e); /* assigned to another node: that one removes it */
        if (r != 0)
                return r < 0 ? r : 0;
        r = open_instance_locked(c, instance, &m, &bus, &lock, e);
        if (r >= 0)
                r = ops_unassign_if_realized(c, &m->instance, e); /* a cluster app's: not made again */
        if (r < 0)
                return r;
        NapIntent in = { .operation = NAP_INTENT_REMOVE_INSTANCE, .service = m->instance.service,
                         .number = m->instance.number };
        r = ops_intent_begin(c, &in, e);
        if (r < 0)
                return r;
        r = ops_remove_instance_locked(c, &m->instance, e);
        /* A failure (etcd away, say) leaves the instance as the steps
         * left it, for the next remove-instance: not for recovery. */
        ops_intent_end(c, &m->instance.service);
        return r;
}
