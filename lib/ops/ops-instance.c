/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Instances: start_common, list_instances, get_instances_num, start_app,
 * stop_app, cat_app, get_journal, remove_instance. */

#include <stdio.h>

#include <inttypes.h>
#include <jansson.h>

#include "base/debug-point.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "base/sha256.h"
#include "cluster/admission.h"
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

/* A request id seen before (under the lock, after recovery finished any
 * start it was cut short in): 1 and the instance it made, 0 if new. */
static int replay_request(NapContext *c, const NapService *s, const char *request_id, NapInstanceInfo *ret,
                          NapError *e) {
        _cleanup_free_ char *instance = NULL;
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapInstance i;
        int r = nap_request_lookup(c->config, s->user, request_id, &instance);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to look up request %s", request_id);
        if (r == 0)
                return 0;
        if (nap_instance_parse(instance, &i, NULL) < 0 || !streq(i.service.app, s->app))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                                            "Request id %s was used for %s already", request_id,
                                                            instance), "requestId");
        r = ops_load_instance(c, instance, &m, e);
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

/* ---- start-common --queue: nap's own jobs in the resource queue -------- */

static int queue_configured(const NapContext *c, NapError *e) {
        if (!c->config->etcd)
                return nap_error_set(e, NAP_ERROR_QUEUE_NOT_CONFIGURED, -EOPNOTSUPP,
                                     "No resource queue on this host: nap.conf has no Etcd=");
        return 0;
}

/* A queued start needs something to wait for, a queue, and a request id
 * (its job's name: the second call, once admitted, finds the job by it). */
static int check_queue_options(NapContext *c, const NapStartOptions *o, NapError *e) {
        if (nap_compute_is_empty(&o->resources))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "queue needs cpu or memory: there is nothing to wait for"),
                                           "queue");
        if (!o->request_id)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "queue needs a request id (the job is found by it)"),
                                           "requestId");
        return queue_configured(c, e);
}

static int pass_error(NapError *e, const NapError *why, int r) {
        if (e)
                *e = *why;
        return r;
}

/* The job's request_id: the queue's ids have no ':' and are per type, a
 * StartCommon's per user, so USER.HEX (the hash of USER/ID). */
static void queued_job_name(const char *user, const char *request, char ret[static 65]) {
        uint8_t h[SHA256_DIGEST_SIZE];
        Sha256 x;
        sha256_init(&x);
        sha256_update(&x, user, strlen(user));
        sha256_update(&x, "/", 1);
        sha256_update(&x, request, strlen(request));
        sha256_final(&x, h);
        int n = snprintf(ret, 65, "%s.", user);
        if (n >= 0 && n + 2 * 12 < 65) /* a valid user name leaves room */
                hex_encode(h, 12, ret + n);
}

static int queue_etcd(NapContext *c, EtcdClient **ret, NapError *e) {
        int r = queue_configured(c, e);
        return r < 0 ? r : nap_context_etcd(c, ret, e);
}

/* The job of a queued start; NoSuchJob when there is none. */
static int queued_job_get(NapContext *c, EtcdClient *etcd, const char *user, const char *request, NapJob *ret,
                          NapError *e) {
        char name[65];
        queued_job_name(user, request, name);
        return nap_queue_get(etcd, c->config->cluster_prefix, NAP_QUEUE_TYPE_START, name, user, ret, e);
}

/* RequestTooLarge when the request exceeds the node's whole capacity: it
 * could never be admitted there. */
static int check_fits_node(EtcdClient *etcd, const char *prefix, const char *node, const NapCompute *r, NapError *e) {
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        int k = nap_node_get(etcd, prefix, node, &i, e);
        if (k < 0)
                return k;
        if (r->request_cpu_milli > i.node.capacity.cpu_milli || r->request_memory > i.node.capacity.memory)
                return nap_error_set(e, NAP_ERROR_REQUEST_TOO_LARGE, -E2BIG,
                                     "The request (cpu_milli=%" PRIu64 ", memory=%" PRIu64 ") is larger than node %s "
                                     "(cpu_milli=%" PRIu64 ", memory=%" PRIu64 "): it would wait forever",
                                     r->request_cpu_milli, r->request_memory, node, i.node.capacity.cpu_milli,
                                     i.node.capacity.memory);
        return 0;
}

static json_t *params_json(const NapParams *p) {
        json_t *o = json_object();
        for (size_t k = 0; o && p && k < nap_params_size(p); k++)
                if (json_object_set_new(o, nap_params_key(p, k), json_string(nap_params_value(p, k))) < 0)
                        return json_decref(o), NULL;
        return o;
}

/* data: the queue's view of the request (whole CPUs and MiB, rounded up)
 * and nap's: the node, the app, its parameters, the request id, the exact
 * reservation, and whether its client left (--no-block: nap-queued
 * starts it once admitted). */
static char *queued_job_data(const NapService *s, const NapParams *params, const char *request, const char *node,
                             const NapCompute *r, bool detached) {
        NapReservation res = { .kind = NAP_RESERVATION_COMPUTE, .compute = *r };
        char service[NAP_SERVICE_NAME_MAX];
        _cleanup_free_ char *stored = NULL;
        if (nap_reservation_to_json(&res, &stored) < 0)
                return NULL;
        json_auto_t *j = json_pack("{s:[{s:I, s:I, s:i}], s:{s:s, s:s, s:s, s:o?, s:o?, s:b}}", "instances", "VCPU",
                                   (json_int_t) MAX((r->request_cpu_milli + 999) / 1000, 1), "Memory",
                                   (json_int_t) MAX((r->request_memory + (1 << 20) - 1) >> 20, 1), "Disk", 0, "nap",
                                   "node", node, "service", nap_service_name(s, service), "request", request,
                                   "reservation", json_loads(stored, 0, NULL), "params", params_json(params),
                                   "detached", detached);
        return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

static int queued_position(EtcdClient *etcd, const char *prefix, const NapJob *j, unsigned *ret, NapError *e) {
        NapJobFilter f = { .status = NAP_JOB_QUEUED };
        NapJob *l = NULL;
        size_t n = 0;
        int r = nap_queue_list(etcd, prefix, NAP_QUEUE_TYPE_START, &f, &l, &n, NULL, e);
        *ret = 0;
        for (size_t i = 0; r >= 0 && i < n && *ret == 0; i++)
                if (streq(l[i].request_id, j->request_id))
                        *ret = i + 1;
        nap_job_array_free(l, n);
        return r;
}

static int queued_answer(EtcdClient *etcd, const char *prefix, const NapJob *j, NapQueuedStart *ret, NapError *e) {
        NapQueuedStart q = { .id = j->id };
        snprintf(q.job, sizeof q.job, "%s", j->request_id);
        int r = j->status == NAP_JOB_QUEUED ? queued_position(etcd, prefix, j, &q.position, e) : 0;
        if (r < 0)
                return r;
        if (ret)
                *ret = q;
        return 1;
}

/* The request did not fit: a job for it, unless it never could. */
static int enqueue_start(NapContext *c, EtcdClient *etcd, const NapService *s, const NapParams *params,
                         const char *request, const NapCompute *res, bool detached, NapQueuedStart *ret, NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        _cleanup_free_ char *node = NULL;
        const char *prefix = c->config->cluster_prefix;
        int r = nap_config_node(c->config, &node, e);
        if (r >= 0)
                r = check_fits_node(etcd, prefix, node, res, e);
        if (r < 0)
                return r;
        snprintf(j.type, sizeof j.type, NAP_QUEUE_TYPE_START);
        snprintf(j.owner, sizeof j.owner, "%s", s->user);
        queued_job_name(s->user, request, j.request_id);
        j.data = queued_job_data(s, params, request, node, res, detached);
        j.callback = strdup_printf(NAP_CALLBACK_INTERNAL_PREFIX "start-common/%s", j.request_id);
        if (!j.data || !j.callback)
                return nap_error_errno(e, -ENOMEM, "Failed to queue the start");
        if (nap_job_request_id_check(j.request_id, NULL) < 0)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "Request id %s cannot name a job", request), "requestId");
        r = nap_queue_create(etcd, prefix, &j, e);
        nap_debug_point("start-common:queued");
        return r < 0 ? r : queued_answer(etcd, prefix, &j, ret, e);
}

/* Admitted: the number the instance will have, an intent naming it and
 * its node (recovery releases the reservation if we die before its
 * manifest), then the job's reservation renamed to the instance's. */
static int take_admitted(NapContext *c, EtcdClient *etcd, const NapJob *j, NapIntent *in, NapManifest *m,
                         NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        NapReservation held;
        NapInstance i = { .service = in->service, .kind = NAP_KIND_COMMON };
        nap_debug_point("start-common:admitted");
        int r = nap_job_internal_reservation(j, &held, e);
        if (r >= 0)
                r = nap_state_next_instance_number(c->config, &in->service, &i.number, e);
        if (r < 0)
                return r;
        in->number = i.number;
        snprintf(in->node, sizeof in->node, "%s", held.node);
        r = ops_intent_begin(c, in, e);
        if (r >= 0)
                r = nap_queue_hand_over(etcd, c->config->cluster_prefix, j, nap_instance_name(&i, name), &held, e);
        if (r >= 0)
                nap_debug_point("start-common:handed-over");
        m->instance.number = i.number; /* ops_create_instance() makes this one */
        m->resources = held.compute;   /* as queued: ops_reserve_instance() finds it held */
        return r;
}

/* 1 when a queued start waits for this host's node. */
static int node_has_waiting(NapContext *c, EtcdClient *etcd, NapError *e) {
        _cleanup_free_ char *node = NULL;
        NapJobFilter f = { .status = NAP_JOB_QUEUED };
        NapJob *l = NULL;
        size_t n = 0;
        bool waiting = false;
        int r = nap_config_node(c->config, &node, e);
        if (r >= 0)
                r = nap_queue_list(etcd, c->config->cluster_prefix, NAP_QUEUE_TYPE_START, &f, &l, &n, NULL, e);
        for (size_t i = 0; r >= 0 && i < n && !waiting; i++) {
                NapReservation held;
                waiting = nap_job_internal_reservation(l + i, &held, NULL) >= 0 && streq(held.node, node);
        }
        nap_job_array_free(l, n);
        return r < 0 ? r : waiting;
}

/* Under the lock, request id not seen before: start now if it fits, else
 * queue; a job queued before: where it stands, or, admitted, start on its
 * reservation. 0 started, 1 queued. */
static int start_queued_locked(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                               NapIntent *in, NapManifest *m, const NapStartOptions *o, NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        NapError why = NAP_ERROR_NULL;
        EtcdClient *etcd;
        int r = queue_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        r = queued_job_get(c, etcd, s->user, in->request, &j, &why);
        if (r < 0 && why.kind != NAP_ERROR_NO_SUCH_JOB)
                return pass_error(e, &why, r);
        if (r >= 0 && j.status == NAP_JOB_QUEUED)
                return queued_answer(etcd, c->config->cluster_prefix, &j, o->queued, e);
        if (r >= 0 && j.status != NAP_JOB_RUNNING)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ENOENT, "The queued start %s was %s without an instance",
                                     in->request, nap_job_status_to_string(j.status));
        if (r >= 0) {
                r = take_admitted(c, etcd, &j, in, m, e);
                return r < 0 ? r : start_common_locked(c, s, p, params, 0, in, m, e);
        }
        r = node_has_waiting(c, etcd, e);
        if (r != 0) /* head of line per node: behind those already waiting for it */
                return r < 0 ? r : enqueue_start(c, etcd, s, params, in->request, &m->resources, o->no_block, o->queued, e);
        why = NAP_ERROR_NULL;
        r = start_common_locked(c, s, p, params, 0, in, m, &why);
        if (r >= 0 || why.kind != NAP_ERROR_INSUFFICIENT_RESOURCES)
                return r < 0 ? pass_error(e, &why, r) : 0;
        ops_intent_end(c, s); /* no tree, no manifest yet: the reservation comes first */
        in->time_usec = 0;
        m->instance.number = 0; /* the next try picks its own */
        return enqueue_start(c, etcd, s, params, in->request, &m->resources, o->no_block, o->queued, e);
}

static int job_event(const EtcdEvent *ev, void *userdata) {
        NapJob j = {};
        bool left = ev->type == ETCD_EVENT_DELETE ||
                    nap_job_from_json(ev->kv.value, ev->kv.value_size, &j, NULL) < 0 || j.status != NAP_JOB_QUEUED;
        nap_job_done(&j);
        (void) userdata;
        return left; /* it left the queue: the watch ends */
}

int nap_queued_start_wait(NapContext *c, const char *user, const char *request_id,
                          const volatile sig_atomic_t *cancel, NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        _cleanup_free_ char *key = NULL;
        EtcdClient *etcd;
        int r = queue_etcd(c, &etcd, e);
        if (r >= 0)
                r = queued_job_get(c, etcd, user, request_id, &j, e);
        if (r >= 0 && j.status == NAP_JOB_QUEUED) {
                EtcdWatchOptions o = { .start_revision = j.revision + 1, .cancel = cancel, .on_event = job_event };
                if (!(key = nap_key_job(c->config->cluster_prefix, j.type, j.request_id)))
                        return nap_error_errno(e, -ENOMEM, "Failed to wait for the queue");
                r = etcd_watch(etcd, key, &o, NULL, e);
                if (r == 0 && cancel && *cancel)
                        return nap_queued_start_cancel(c, user, request_id, e) < 0 ? -ECANCELED
                               : nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ECANCELED, "Cancelled: job %s left the queue",
                                               j.request_id);
                nap_job_done(&j);
                if (r >= 0)
                        r = queued_job_get(c, etcd, user, request_id, &j, e);
        }
        if (r >= 0 && j.status == NAP_JOB_CANCELLED)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ECANCELED, "Job %s was cancelled", j.request_id);
        return r < 0 ? r : 0;
}

int nap_queued_start_cancel(NapContext *c, const char *user, const char *request_id, NapError *e) {
        _cleanup_(nap_job_done) NapJob j = {};
        char name[65];
        EtcdClient *etcd;
        int r = queue_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        queued_job_name(user, request_id, name);
        return nap_queue_cancel(etcd, c->config->cluster_prefix, NAP_QUEUE_TYPE_START, name, user, &j, e);
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
                r = check_queue_options(c, &opts, e);
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
         * another node is started or stopped there */
        if (r >= 0 && action != UNIT_RESTART)
                r = ops_cluster_set_enabled(c, &i, action != UNIT_STOP, action == UNIT_STOP || !no_block, e);
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
