/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "base/clock.h"
#include "base/strv.h"
#include "io.nap.Manager.varlink.h"
#include "model/environment.h"
#include "ops/journal-stream.h"
#include "ops/method-json.h"
#include "ops/methods-nodes.h"
#include "ops/methods.h"
#include "ops/ops-mpi.h"
#include "ops/publish.h"

#define JOURNAL_LINES_DEFAULT 10

/* ---- results ---------------------------------------------------------- */

static json_t *json_strv(char *const *l) {
        json_t *a = json_array();
        STRV_FOREACH(s, l)
                if (json_array_append_new(a, json_string(*s)) < 0)
                        return json_decref(a), NULL;
        return a;
}

/* An array of one(item) for each of the n items of size bytes at items;
 * NULL when one gives NULL, or out of memory. */
static json_t *json_array_map(const void *items, size_t n, size_t size, json_t *(*one)(const void *item)) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, one((const char *) items + i * size)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* The Instance type. Units systemd lists without a manifest have no argv,
 * params or url: empty and null then. */
static json_t *json_instance(const NapInstanceInfo *i) {
        json_t *argv = json_strv(i->argv), *params = nap_json_params(i->params);
        if (!argv || !params) {
                json_decref(argv);
                json_decref(params);
                return NULL;
        }
        return json_pack("{s:s, s:s, s:I, s:I, s:s?, s:b, s:s, s:s, s:o, s:o}", "instance", i->name, "unit", i->unit,
                         "number", (json_int_t) i->number, "port", (json_int_t) i->port, "url", i->url, "enabled",
                         i->enabled, "active_state", i->active_state ?: "unknown", "sub_state",
                         i->sub_state ?: "unknown", "argv", argv, "params", params);
}

/* An array of Instance. */
static json_t *json_instances(const NapInstanceInfo *l, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_instance(l + i)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* ---- the methods ------------------------------------------------------ */

static json_t *run_deploy_app(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e), *url = nap_arg_string(args, "url", e);
        NapDeployResult res = {};
        if (!service || !url || nap_deploy_app(c, service, url, &res, e) < 0)
                return NULL;
        /* etcd down does not fail a deploy: the reply says it is pending. */
        const char *why = nap_error_is_set(&res.publish_error) ? res.publish_error.message : NULL;
        return nap_reply(json_pack("{s:s, s:s, s:s, s:b, s:s, s:s?}", "service", service, "commit", res.commit, "url", url,
                             "changed", res.changed, "etcd", nap_publish_to_string(res.publish), "etcdError", why),
                   e);
}

static json_t *json_service(const void *item) {
        const NapServiceInfo *i = item;
        return json_pack("{s:s, s:s, s:s?, s:s?, s:I}", "service", i->name, "app", i->app, "url", i->url, "commit",
                         i->commit, "deployed", (json_int_t) i->deployed_usec);
}

static json_t *run_list_services(NapContext *c, json_t *args, NapError *e) {
        const char *user = nap_arg_string(args, "user", e);
        NapServiceInfo *l = NULL;
        size_t n = 0;
        if (!user || nap_list_services_in_cluster(c, user, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array_map(l, n, sizeof *l, json_service);
        nap_service_info_array_free(l, n);
        return nap_reply(a ? json_pack("{s:o}", "services", a) : NULL, e);
}

/* ---- ListInstances and GetInstancesNum -------------------------------- */

/* An Instance, its commit under "commit" and its node under "node" (null:
 * unknown), which the replies take out (Instance was published on D-Bus
 * without them). */
static json_t *json_instance_with_commit(const NapInstanceInfo *i) {
        json_t *j = json_instance(i);
        if (j && (json_object_set_new(j, "commit", i->commit ? json_string(i->commit) : json_null()) < 0 ||
                  json_object_set_new(j, "node", i->node ? json_string(i->node) : json_null()) < 0))
                return json_decref(j), NULL;
        return j;
}

json_t *nap_instances_json(const NapInstanceInfo *l, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_instance_with_commit(l + i)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* field of instance i, when a string, into by_name under the instance's
 * name; taken out of copy. */
static int split_field(json_t *i, json_t *copy, const char *field, json_t *by_name) {
        json_t *v = json_object_get(i, field);
        (void) json_object_del(copy, field);
        return json_is_string(v) ? json_object_set(by_name, json_string_value(json_object_get(i, "instance")), v) : 0;
}

/* Instances (what nap_instances_json() made) as the interface has them:
 * the Instance objects, and their commits and nodes by name. instances is
 * borrowed (nap-managerd's cache keeps it). */
static int instances_split(json_t *instances, json_t **ret_instances, json_t **ret_commits, json_t **ret_nodes) {
        json_auto_t *a = json_array(), *commits = json_object(), *nodes = json_object();
        json_t *i;
        size_t k;
        if (!a || !commits || !nodes)
                return -ENOMEM;
        json_array_foreach(instances, k, i) {
                json_t *copy = json_copy(i);
                if (!copy || json_array_append_new(a, copy) < 0)
                        return -ENOMEM;
                if (split_field(i, copy, "commit", commits) < 0 || split_field(i, copy, "node", nodes) < 0)
                        return -ENOMEM;
        }
        *ret_instances = TAKE_PTR(a);
        *ret_commits = TAKE_PTR(commits);
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

static json_t *instances_num_reply(const char *service, json_t *instances, NapError *e) {
        return nap_reply(json_pack("{s:s, s:I}", "service", service, "instances", (json_int_t) json_array_size(instances)),
                   e);
}

static json_t *instances_reply(const char *service, json_t *instances, NapError *e) {
        json_t *a, *commits, *nodes;
        if (instances_split(instances, &a, &commits, &nodes) < 0)
                return nap_reply(NULL, e);
        return nap_reply(json_pack("{s:o, s:o, s:o}", "instances", a, "commits", commits, "nodes", nodes), e);
}

/* In-process (napctl --no-helper): asks systemd and reads the manifests
 * every time; nap-managerd answers from its cache. */
static json_t *run_instances(NapContext *c, json_t *args, NapInstancesReplyFn reply, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        NapInstanceInfo *l = NULL;
        size_t n = 0;
        if (!service || nap_list_instances_everywhere(c, service, &l, &n, e) < 0)
                return NULL;
        json_auto_t *a = nap_reply(nap_instances_json(l, n), e);
        nap_instance_info_array_free(l, n);
        return a ? reply(service, a, e) : NULL;
}

static json_t *run_list_instances(NapContext *c, json_t *args, NapError *e) {
        return run_instances(c, args, instances_reply, e);
}

static json_t *run_get_instances_num(NapContext *c, json_t *args, NapError *e) {
        return run_instances(c, args, instances_num_reply, e);
}

int nap_method_journal_lines(json_t *args, size_t *ret, NapError *e) {
        json_t *j = json_object_get(args, "lines");
        if (!j || json_is_null(j)) {
                *ret = JOURNAL_LINES_DEFAULT;
                return 0;
        }
        if (!json_is_integer(j) || json_integer_value(j) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "lines must be a number of lines, 0 or more");
        /* ops refuses more than its maximum with its own message. */
        *ret = (size_t) MIN(json_integer_value(j), (json_int_t) 1000000);
        return 0;
}

static json_t *run_get_journal(NapContext *c, json_t *args, NapError *e) {
        const char *instance = nap_arg_string(args, "instance", e);
        NapJournalEntry *l = NULL;
        size_t lines, n = 0;
        if (!instance || nap_method_journal_lines(args, &lines, e) < 0 ||
            nap_get_journal(c, instance, lines, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, nap_journal_entry_json(l + i)) < 0)
                        a = (json_decref(a), NULL);
        nap_journal_entry_array_free(l, n);
        return nap_reply(a ? json_pack("{s:o}", "entries", a) : NULL, e);
}

/* StopApp, RemoveInstance: an instance in, nothing out. */
static json_t *run_on_instance(NapContext *c, json_t *args, int (*op)(NapContext *, const char *, NapError *),
                               NapError *e) {
        const char *instance = nap_arg_string(args, "instance", e);
        return instance && op(c, instance, e) >= 0 ? nap_reply(json_object(), e) : NULL;
}

static json_t *run_stop_app(NapContext *c, json_t *args, NapError *e) {
        return run_on_instance(c, args, nap_stop_app, e);
}

/* StartApp, RestartApp: an instance in, and whether to wait for it to
 * answer (noBlock); nothing out. */
static json_t *run_starting(NapContext *c, json_t *args, int (*op)(NapContext *, const char *, bool, NapError *),
                            NapError *e) {
        const char *instance = nap_arg_string(args, "instance", e);
        bool no_block = json_is_true(json_object_get(args, "noBlock"));
        return instance && op(c, instance, no_block, e) >= 0 ? nap_reply(json_object(), e) : NULL;
}

static json_t *run_start_app(NapContext *c, json_t *args, NapError *e) {
        return run_starting(c, args, nap_start_app, e);
}

static json_t *run_restart_app(NapContext *c, json_t *args, NapError *e) {
        return run_starting(c, args, nap_restart_app, e);
}

static json_t *run_remove_instance(NapContext *c, json_t *args, NapError *e) {
        return run_on_instance(c, args, nap_remove_instance, e);
}

static json_t *run_cat_app(NapContext *c, json_t *args, NapError *e) {
        const char *instance = nap_arg_string(args, "instance", e);
        _cleanup_free_ char *text = NULL;
        if (!instance || nap_cat_app(c, instance, &text, e) < 0)
                return NULL;
        /* The profile is a text file of the instance's tree: not JSON-safe
         * if someone put invalid UTF-8 there. */
        json_t *j = json_pack("{s:s, s:s}", "instance", instance, "profile", text);
        if (!j)
                nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -EBADMSG, "The profile of %s is not valid UTF-8", instance);
        return j;
}

static json_t *run_get_parameters(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        _cleanup_strv_free_ char **l = NULL;
        if (!service || nap_get_parameters(c, service, &l, e) < 0)
                return NULL;
        json_t *a = json_strv(l);
        return nap_reply(a ? json_pack("{s:o}", "parameters", a) : NULL, e);
}

/* params (a map) or paramsString ("k=v,k=v"), not both; neither: none. */
static int params_from_args(json_t *args, NapParams **ret, NapError *e) {
        json_t *map = json_object_get(args, "params"), *str = json_object_get(args, "paramsString");
        bool has_map = map && !json_is_null(map), has_str = str && !json_is_null(str);
        if (has_map && has_str)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Give the parameters either as params or as paramsString, not both");
        if (has_str)
                return nap_params_parse(json_string_value(str), json_string_length(str), ret, e);

        _cleanup_(nap_params_freep) NapParams *p = NULL;
        const char *key;
        json_t *value;
        if (nap_params_new(&p) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to read the parameters");
        json_object_foreach(has_map ? map : NULL, key, value) {
                if (!json_is_string(value))
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "The value of parameter '%.64s' is not a string", key);
                int r = nap_params_set(p, key, json_string_value(value), e);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

/* cpu and memory ("REQUEST[:LIMIT]"); absent or "" (D-Bus): none. */
static int resources_from_args(json_t *args, NapCompute *ret, NapError *e) {
        const char *cpu = json_string_value(json_object_get(args, "cpu"));
        const char *memory = json_string_value(json_object_get(args, "memory"));
        *ret = (NapCompute) {};
        if (cpu && *cpu && nap_cpu_amount_parse(cpu, &ret->request_cpu_milli, &ret->limit_cpu_milli, e) < 0)
                return nap_error_parameter(e, -EINVAL, "cpu");
        if (memory && *memory && nap_bytes_amount_parse(memory, &ret->request_memory, &ret->limit_memory, e) < 0)
                return nap_error_parameter(e, -EINVAL, "memory");
        return 0;
}

static json_t *run_start_common(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapInstanceInfo i = {};
        NapQueuedStart q = {};
        NapStartOptions o = { .request_id = json_string_value(json_object_get(args, "requestId")),
                              .no_block = json_is_true(json_object_get(args, "noBlock")),
                              .node = json_string_value(json_object_get(args, "node")),
                              .cluster = json_is_true(json_object_get(args, "cluster")),
                              .queue = json_is_true(json_object_get(args, "queue")), .queued = &q };
        int r = -EINVAL;
        if (o.node && !*o.node) /* D-Bus: "" is none */
                o.node = NULL;
        if (o.request_id && !*o.request_id)
                o.request_id = NULL;
        /* ClusterApps=yes: a client's plain start is placed in the cluster
         * (not scale's, nor nap-node's start of an assigned number) */
        if (c->config->cluster_apps && !o.node && !o.queue)
                o.cluster = true;
        if (!service || params_from_args(args, &p, e) < 0 || resources_from_args(args, &o.resources, e) < 0 ||
            (r = nap_start_common(c, service, p, &o, &i, e)) < 0)
                return NULL;
        if (r > 0) /* waiting in the queue: no instance yet */
                return nap_reply(json_pack("{s:s, s:{s:s, s:I, s:i}}", "etcd", "none", "queued", "job", q.job, "id",
                                           (json_int_t) q.id, "position", (int) q.position), e);
        json_t *j = json_instance(&i);
        const char *etcd = nap_publish_to_string(i.publish);
        nap_instance_info_clear(&i);
        return nap_reply(j ? json_pack("{s:o, s:s}", "instance", j, "etcd", etcd) : NULL, e);
}

static json_t *run_get_service_url(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        _cleanup_free_ char *url = NULL;
        NapSource source;
        if (!service || nap_get_service_url(c, service, &url, &source, e) < 0)
                return NULL;
        return nap_reply(json_pack("{s:s, s:s}", "url", url, "source", nap_source_to_string(source)), e);
}

static json_t *run_get_port(NapContext *c, json_t *args, NapError *e) {
        const char *instance = nap_arg_string(args, "instance", e);
        unsigned port;
        NapSource source;
        if (!instance || nap_get_port(c, instance, &port, &source, e) < 0)
                return NULL;
        return nap_reply(json_pack("{s:I, s:s}", "port", (json_int_t) port, "source", nap_source_to_string(source)), e);
}

static json_t *json_endpoint(const void *item) {
        const NapEndpoint *p = item;
        return json_pack("{s:s, s:I, s:s, s:s}", "host", p->host, "port", (json_int_t) p->port, "instance",
                         p->instance, "unit", p->unit);
}

static json_t *run_list_endpoints(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        NapEndpointList l = {};
        if (!service || nap_list_endpoints(c, service, &l, e) < 0)
                return NULL;
        json_t *a = json_array_map(l.items, l.n, sizeof *l.items, json_endpoint);
        nap_endpoint_list_done(&l);
        return nap_reply(a ? json_pack("{s:o}", "endpoints", a) : NULL, e);
}

/* Crash recovery, then etcd: what etcd lacks of nap's keys is put back
 * (an etcd that does not answer is reported, not a failure). */
static json_t *run_recover(NapContext *c, json_t *args, NapError *e) {
        NapRecoverResult res;
        NapReassertResult keys;
        NapError why = NAP_ERROR_NULL;
        if (nap_recover(c, &res, e) < 0)
                return NULL;
        bool etcd_failed = nap_reassert_keys(c, &keys, &why) < 0;
        json_t *j = json_pack("{s:i, s:i, s:s*, s:i, s:i, s:i, s:s*}", "recovered", res.recovered, "failed",
                              res.failed, "lastError", res.failed > 0 ? res.last_error : NULL, "requestsExpired",
                              res.requests_expired, "keysChecked", keys.checked, "keysWritten", keys.written,
                              "etcdError", etcd_failed ? why.message : NULL);
        return nap_reply(j, e);
}

/* ---- an app's lifecycle ------------------------------------------------ */

static json_t *run_scale(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        json_int_t n = json_integer_value(json_object_get(args, "instances"));
        json_int_t limit = json_integer_value(json_object_get(args, "limit")); /* absent, null: 0 */
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapScaleResult res;
        if (!service || params_from_args(args, &p, e) < 0)
                return NULL;
        if (n < 0 || n > NAP_SCALE_MAX)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                            "instances must be 0 to %u", NAP_SCALE_MAX),
                                           "instances"), NULL;
        if (limit < 0 || limit > NAP_SCALE_MAX)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                            "limit must be 0 to %u", NAP_SCALE_MAX),
                                           "limit"), NULL;
        if (nap_scale(c, service, (unsigned) n, (unsigned) limit, p, NULL, &res, e) < 0)
                return nap_scale_result_done(&res), NULL;
        json_t *j = json_pack("{s:I, s:I, s:o, s:o}", "before", (json_int_t) res.before, "after",
                              (json_int_t) res.after, "started", json_strv(res.started), "removed",
                              json_strv(res.removed));
        nap_scale_result_done(&res);
        return nap_reply(j, e);
}

static json_t *run_get_config(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        if (!service || nap_app_config_get(c, service, &p, e) < 0)
                return NULL;
        return nap_reply(json_pack("{s:o}", "config", nap_json_params(p)), e);
}

/* set (a map; absent or null: none) as checked variables, unset (an
 * array) as a strv. */
static int env_from_args(json_t *args, NapParams **ret_set, char ***ret_unset, NapError *e) {
        json_t *set = json_object_get(args, "set"), *unset = json_object_get(args, "unset"), *v;
        size_t i;
        int r = json_is_object(set) ? nap_environment_from_json(set, ret_set, e) : nap_params_new(ret_set);
        if (r < 0)
                return nap_error_parameter(e, r, "set");
        json_array_foreach(json_is_array(unset) ? unset : NULL, i, v)
                if (!json_is_string(v) || strv_extend(ret_unset, json_string_value(v)) < 0)
                        return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                                    "unset must name variables"), "unset");
        return 0;
}

static json_t *rollout_instances_json(const NapRolloutResult *res) {
        return json_instances(res->instances, res->n_instances);
}

static json_t *run_set_config(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        _cleanup_(nap_params_freep) NapParams *set = NULL;
        _cleanup_strv_free_ char **unset = NULL;
        NapConfigResult res;
        if (!service || env_from_args(args, &set, &unset, e) < 0 ||
            nap_app_config_update(c, service, set, unset, NULL, &res, e) < 0)
                return NULL;
        json_t *j = json_pack("{s:b, s:b, s:o}", "changed", res.changed, "restarted", res.restarted, "instances",
                              rollout_instances_json(&res.rollout));
        nap_config_result_done(&res);
        return nap_reply(j, e);
}

static json_t *run_restart_service(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        NapRolloutResult res;
        if (!service || nap_restart_service(c, service, NULL, &res, e) < 0)
                return NULL;
        json_t *j = json_pack("{s:o}", "instances", rollout_instances_json(&res));
        nap_rollout_result_done(&res);
        return nap_reply(j, e);
}

static json_t *run_destroy_app(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        return service && nap_destroy_app(c, service, e) >= 0 ? nap_reply(json_object(), e) : NULL;
}

static json_t *json_ports(const NapAppStatus *s) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < s->n_ports; i++)
                if (json_array_append_new(a, json_integer(s->ports[i])) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

static json_t *run_list_apps(NapContext *c, json_t *args, NapError *e) {
        const char *user = nap_arg_string(args, "user", e);
        NapAppStatus *l = NULL;
        size_t n = 0;
        if (!user || nap_app_status(c, user, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:s?, s:I, s:I, s:I, s:o}", "service", l[i].name,
                                                       "app", l[i].app, "commit", l[i].commit, "instances",
                                                       (json_int_t) l[i].instances, "running",
                                                       (json_int_t) l[i].running, "answering",
                                                       (json_int_t) l[i].answering, "ports", json_ports(l + i))) < 0)
                        a = (json_decref(a), NULL);
        nap_app_status_array_free(l, n);
        return nap_reply(a ? json_pack("{s:o}", "apps", a) : NULL, e);
}

/* ---- deploy history and rollback (ops-push.c) ------------------------- */

static json_t *run_history(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        NapDeployRecord *l = NULL;
        size_t n = 0;
        if (!service || nap_deploy_history(c, service, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "commit", l[i].commit, "url", l[i].url,
                                                       "time", (json_int_t) l[i].time_usec)) < 0)
                        a = (json_decref(a), NULL);
        nap_deploy_record_array_free(l, n);
        return nap_reply(a ? json_pack("{s:o}", "deploys", a) : NULL, e);
}

/* batch ("N" or "P%") and drainSec (0: none); absent or null: nap.conf's. */
static int rollout_options_from_args(json_t *args, NapRolloutOptions *ret, NapError *e) {
        json_t *batch = json_object_get(args, "batch"), *drain = json_object_get(args, "drainSec");
        *ret = (NapRolloutOptions) {};
        if (json_is_string(batch) && nap_rollout_batch_parse(json_string_value(batch), &ret->batch) < 0)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "batch must be a number of instances (1 to %u) or a "
                                                            "percentage (1%% to 100%%)", NAP_ROLLOUT_BATCH_MAX),
                                           "batch");
        if (drain && !json_is_null(drain) &&
            (!json_is_integer(drain) || json_integer_value(drain) < 0 ||
             json_integer_value(drain) > NAP_ROLLOUT_DRAIN_SEC_MAX))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                            "drainSec must be 0 to %u seconds",
                                                            NAP_ROLLOUT_DRAIN_SEC_MAX), "drainSec");
        if (json_is_integer(drain))
                ret->drain_usec = json_integer_value(drain) > 0 ? (uint64_t) json_integer_value(drain) * USEC_PER_SEC
                                                                : NAP_ROLLOUT_NO_DRAIN;
        return 0;
}

static json_t *run_rollback(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        const char *commit = json_string_value(json_object_get(args, "commit"));
        NapRolloutOptions o;
        NapRolloutResult res;
        if (!service || rollout_options_from_args(args, &o, e) < 0)
                return NULL;
        if (nap_rollback(c, service, isempty(commit) ? NULL : commit, &o, &res, e) < 0) {
                /* the only argument nap_rollback() itself can refuse */
                if (e->kind == NAP_ERROR_INVALID_PARAMETER && !e->parameter[0])
                        nap_error_parameter(e, 0, "commit");
                return NULL;
        }
        json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:o}", "service", service, "commit", res.deploy.commit,
                              "previous", res.previous, "changed", res.deploy.changed, "instances",
                              rollout_instances_json(&res));
        nap_rollout_result_done(&res);
        return nap_reply(j, e);
}

/* ---- MPI jobs (ops-mpi.c) ------------------------------------------------ */

/* The job's master and slaves as list-instances shows them. */
static json_t *job_instances_json(NapContext *c, const NapMpiJob *job, NapError *e) {
        NapInstanceInfo *l = NULL;
        size_t n = 0;
        if (nap_mpi_job_instances(c, job, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_instances(l, n);
        nap_instance_info_array_free(l, n);
        return a;
}

static json_t *json_mpi_job(const NapMpiJob *j);

static json_t *run_start_mpi(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapQueuedStart q = {};
        NapStartOptions o = { .request_id = json_string_value(json_object_get(args, "requestId")),
                              .no_block = json_is_true(json_object_get(args, "noBlock")),
                              .queue = json_is_true(json_object_get(args, "queue")), .queued = &q };
        NapMpiJob job = {};
        int r = -EINVAL;
        if (!service || params_from_args(args, &p, e) < 0 || resources_from_args(args, &o.resources, e) < 0 ||
            (r = nap_start_mpi(c, service, p, &o, &job, e)) < 0)
                return NULL;
        if (r > 0) /* waiting in the queue: no job yet */
                return nap_reply(json_pack("{s:[], s:{s:s, s:I, s:i}}", "instances", "queued", "job", q.job, "id",
                                           (json_int_t) q.id, "position", (int) q.position), e);
        json_t *j = json_mpi_job(&job), *a = j ? job_instances_json(c, &job, e) : NULL;
        nap_mpi_job_done(&job);
        if (!a)
                return json_decref(j), NULL;
        return nap_reply(json_pack("{s:o, s:o}", "instances", a, "job", j), e);
}

static json_t *json_mpi_job(const NapMpiJob *j) {
        char name[NAP_UNIT_NAME_MAX];
        NapInstance master = { .service = j->service, .kind = NAP_KIND_MPI_MASTER, .number = j->number };
        return json_pack("{s:I, s:s, s:I, s:s, s:i, s:s, s:I, s:I, s:o, s:o, s:s?}", "number", (json_int_t) j->number,
                         "state", nap_mpi_state_to_string(j->state), "ranks", (json_int_t) j->ranks, "master",
                         nap_instance_name(&master, name), "exitStatus", j->exit_status, "result", strempty(j->result),
                         "started", (json_int_t) j->start_usec, "finished", (json_int_t) j->end_usec, "argv",
                         json_strv(j->argv), "params", nap_json_params(j->params), "commit", j->commit);
}

/* An ExportedUnit; NULL when out of memory or the text is not UTF-8. */
static json_t *json_exported_unit(const void *item) {
        const NapExportedUnit *u = item;
        return json_pack("{s:s, s:s, s:s}", "instance", u->instance, "name", u->file.name, "text", u->file.text);
}

static json_t *run_export_units(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        NapExportedUnit *l = NULL;
        size_t n = 0;
        if (!service || nap_export_units(c, service, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array_map(l, n, sizeof *l, json_exported_unit);
        nap_exported_units_free(l, n);
        return nap_reply(a ? json_pack("{s:o}", "units", a) : NULL, e);
}

static json_t *run_get_mpi_job(NapContext *c, json_t *args, NapError *e) {
        const char *service = nap_arg_string(args, "service", e);
        json_int_t number = json_integer_value(json_object_get(args, "job"));
        NapMpiJob job = {};
        if (!service)
                return NULL;
        if (number < 1 || number > NAP_MPI_JOB_MAX)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                            "job must be 1 to %u", NAP_MPI_JOB_MAX), "job"), NULL;
        if (nap_get_mpi_job(c, service, (unsigned) number, &job, e) < 0)
                return NULL;
        json_t *j = json_mpi_job(&job), *a = j ? job_instances_json(c, &job, e) : NULL;
        nap_mpi_job_done(&job);
        if (!a)
                return json_decref(j), NULL;
        return nap_reply(json_pack("{s:o, s:o}", "job", j, "instances", a), e);
}

/* ---- the registry ----------------------------------------------------- */

#define FIELDS(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* In the order of io.nap.Manager.varlink. The D-Bus members are the
 * interface's methods with every field, except where io.nap.Manager1
 * was published with fewer or other names: those stay as published. */
static const NapMethod methods[] = {
        { .name = "DeployApp", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .parameter = "url", .call = run_deploy_app,
          .bus = { { .out = FIELDS("commit", "changed", "etcd", "etcdError:etcd_error") } } },
        { .name = "ListServices", .owns = NAP_OWNER_USER, .owner = "user", .access = NAP_ACCESS_READ, .run = NAP_METHOD_INLINE_OR_CLUSTER,
          .call = run_list_services },
        /* GetServiceUrl, GetPort and ListEndpoints ask etcd first: seconds
         * of timeouts when it is down, so in a worker too. */
        { .name = "GetServiceUrl", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .call = run_get_service_url },
        { .name = "GetInstancesNum", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_CACHED,
          .call = run_get_instances_num, .from_instances = instances_num_reply,
          .bus = { { .out = FIELDS("instances") } } },
        /* commits came later, then nodes: the published members stay as
         * they were, and a new one carries each. CACHED: with Etcd= set
         * the dispatcher runs it in a worker (the cluster's instances) */
        { .name = "ListInstances", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_CACHED,
          .call = run_list_instances, .from_instances = instances_reply,
          .bus = { { .out = FIELDS("instances") }, { .member = "ListInstancesWithCommits", .out = FIELDS("instances", "commits") },
                   { .member = "ListInstancesWithNodes" } } },
        { .name = "GetPort", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .call = run_get_port },
        { .name = "GetJournal", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .streams = true, .parameter = "lines", .call = run_get_journal },
        { .name = "StopApp", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .call = run_stop_app },
        { .name = "StartApp", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .call = run_start_app, .bus = { { .in = FIELDS("instance") } } },
        { .name = "RestartApp", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .call = run_restart_app, .bus = { { .in = FIELDS("instance") } } },
        { .name = "CatApp", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_READ, .run = NAP_METHOD_INLINE,
          .call = run_cat_app, .bus = { { .out = FIELDS("profile") } } },
        { .name = "GetParameters", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_INLINE,
          .call = run_get_parameters },
        { .name = "StartCommon", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .parameter = "params", .call = run_start_common,
          .bus = { { .in = FIELDS("service", "paramsString:params"), .out = FIELDS("instance", "etcd") },
                   { .member = "StartCommonWithParams", .in = FIELDS("service", "params"),
                     .out = FIELDS("instance", "etcd") },
                   { .member = "StartCommonWithResources", .in = FIELDS("service", "params", "cpu", "memory"),
                     .out = FIELDS("instance", "etcd") },
                   { .member = "StartCommonWithRequestId",
                     .in = FIELDS("service", "params", "cpu", "memory", "requestId"), .out = FIELDS("instance", "etcd") },
                   { .member = "StartCommonQueued",
                     .in = FIELDS("service", "params", "cpu", "memory", "requestId", "queue"),
                     .out = FIELDS("instance", "etcd", "queued") },
                   { .member = "StartCommonInCluster",
                     .in = FIELDS("service", "params", "cpu", "memory", "requestId", "node", "cluster"),
                     .out = FIELDS("instance", "etcd") } } },
        { .name = "Recover", .owns = NAP_OWNER_NONE, .access = NAP_ACCESS_ADMIN, .run = NAP_METHOD_WORKER,
          .call = run_recover },
        { .name = "StartMpi", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .parameter = "params", .call = run_start_mpi,
          .bus = { { .in = FIELDS("service", "paramsString:params"), .out = FIELDS("instances") },
                   { .member = "StartMpiWithParams", .in = FIELDS("service", "params"), .out = FIELDS("instances") },
                   { .member = "StartMpiWithResources", .in = FIELDS("service", "params", "cpu", "memory"),
                     .out = FIELDS("instances") },
                   { .member = "StartMpiQueued",
                     .in = FIELDS("service", "params", "cpu", "memory", "requestId", "noBlock", "queue"),
                     .out = FIELDS("instances", "job", "queued") } } },
        { .name = "GetMpiJob", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .parameter = "job", .call = run_get_mpi_job },
        { .name = "RemoveInstance", .owns = NAP_OWNER_INSTANCE, .owner = "instance", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .call = run_remove_instance },
        { .name = "ListEndpoints", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .call = run_list_endpoints },
        /* reads manifests and nap.conf only */
        { .name = "ExportUnits", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_INLINE,
          .call = run_export_units },
        /* An app as a whole: its owner's (or root's) to change. */
        { .name = "Scale", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .parameter = "params", .call = run_scale, .bus = { { .in = FIELDS("service", "instances", "params", "limit") } } },
        { .name = "GetConfig", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_INLINE,
          .call = run_get_config },
        { .name = "SetConfig", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .parameter = "set", .call = run_set_config },
        { .name = "RestartService", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .call = run_restart_service },
        { .name = "DestroyApp", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .call = run_destroy_app },
        /* asks systemd and knocks on every running instance's port */
        { .name = "ListApps", .owns = NAP_OWNER_USER, .owner = "user", .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .call = run_list_apps },
        { .name = "History", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_READ, .run = NAP_METHOD_INLINE,
          .call = run_history },
        /* D-Bus: the commit ("": the one before), nap.conf's batch and drain */
        { .name = "Rollback", .owns = NAP_OWNER_SERVICE, .owner = "service", .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER,
          .parameter = "commit", .call = run_rollback, .bus = { { .in = FIELDS("service", "commit") } } },
        /* The inventory: reading it is for every local user, nodes are
         * root's, a reservation its name's user's. All talk to etcd. */
        { .name = "ListNodes", .owns = NAP_OWNER_NONE, .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .call = nap_run_list_nodes },
        { .name = "GetNode", .owns = NAP_OWNER_NONE, .access = NAP_ACCESS_READ, .run = NAP_METHOD_WORKER,
          .parameter = "name", .call = nap_run_get_node },
        { .name = "ApplyNode", .owns = NAP_OWNER_NONE, .access = NAP_ACCESS_ADMIN, .run = NAP_METHOD_WORKER,
          .parameter = "name", .call = nap_run_apply_node },
        { .name = "DeleteNode", .owns = NAP_OWNER_NONE, .access = NAP_ACCESS_ADMIN, .run = NAP_METHOD_WORKER,
          .parameter = "name", .call = nap_run_delete_node },
        { .name = "ReserveCompute", .owns = NAP_OWNER_RESERVATION, .owner = "compute_name",
          .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER, .parameter = "request_cpu_milli_core",
          .call = nap_run_reserve_compute },
        { .name = "ReleaseCompute", .owns = NAP_OWNER_RESERVATION, .owner = "compute_name",
          .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER, .parameter = "name",
          .call = nap_run_release_compute },
        { .name = "ReserveStorage", .owns = NAP_OWNER_RESERVATION, .owner = "storage_name",
          .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER, .parameter = "request_bytes",
          .call = nap_run_reserve_storage },
        { .name = "ReleaseStorage", .owns = NAP_OWNER_RESERVATION, .owner = "storage_name",
          .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER, .parameter = "name",
          .call = nap_run_release_storage },
        { .name = "ScheduleCompute", .owns = NAP_OWNER_RESERVATION, .owner = "compute_name",
          .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER, .parameter = "request_cpu_milli_core",
          .call = nap_run_schedule_compute },
        { .name = "ScheduleStorage", .owns = NAP_OWNER_RESERVATION, .owner = "storage_name",
          .access = NAP_ACCESS_WRITE, .run = NAP_METHOD_WORKER, .parameter = "request_bytes",
          .call = nap_run_schedule_storage },
};

/* Counts, ports and pids are u, times in µs t, a syslog priority i (-1:
 * unknown); an int field not named here is x. */
const BusJsonInt nap_bus_ints[] = {
        { "number", 'u' },   { "port", 'u' }, { "instances", 'u' }, { "pid", 'u' },
        { "lines", 'u' },    { "time", 't' }, { "deployed", 't' },  { "priority", 'i' },
        /* the inventory: sizes, times and counts */
        { "recovered", 'u' }, { "failed", 'u' }, { "requestsExpired", 'u' },
        /* an app's lifecycle */
        { "before", 'u' }, { "after", 'u' }, { "limit", 'u' }, { "running", 'u' }, { "answering", 'u' }, { "ports", 'u' },
        { "keysChecked", 'u' }, { "keysWritten", 'u' },
        /* a queued start */
        { "id", 'x' }, { "position", 'u' },
        /* MPI jobs */
        { "job", 'u' }, { "ranks", 'u' }, { "exitStatus", 'i' }, { "started", 't' }, { "finished", 't' },
        { "since", 't' },    { "registered", 't' }, { "created", 't' }, { "count", 'u' },
        { "cpu_milli_core", 't' }, { "memory_bytes", 't' }, { "storage_bytes", 't' },
        { "used_cpu_milli_core", 't' }, { "used_memory_bytes", 't' }, { "used_storage_bytes", 't' },
        { "request_cpu_milli_core", 't' }, { "limit_cpu_milli_core", 't' },
        { "request_memory_bytes", 't' }, { "limit_memory_bytes", 't' },
        { "request_bytes", 't' }, { "limit_bytes", 't' },
        {},
};

const NapBusMember *nap_method_bus_member(const NapMethod *m, size_t k) {
        static const NapBusMember all = {};
        assert(m);
        if (k >= NAP_BUS_MEMBERS_MAX)
                return NULL;
        const NapBusMember *b = m->bus + k;
        if (b->member || b->in || b->out)
                return b;
        return k == 0 ? &all : NULL;
}

/* "field" or "field:dbus_name" of the struct t. */
static int bus_field_parse(const char *spec, const VarlinkIdlType *t, NapBusField *ret) {
        const char *colon = strchr(spec, ':'), *name = colon ? colon + 1 : spec;
        size_t n = colon ? (size_t) (colon - spec) : strlen(spec);

        if (strlen(name) >= sizeof ret->name)
                return -E2BIG;
        for (size_t i = 0; i < varlink_idl_type_n_fields(t); i++) {
                const char *field = varlink_idl_type_field_name(t, i);
                if (strlen(field) == n && strncmp(field, spec, n) == 0) {
                        *ret = (NapBusField) { .field = field, .type = varlink_idl_type_field_type(t, i) };
                        snprintf(ret->name, sizeof ret->name, "%s", name);
                        return 0;
                }
        }
        return -ENOENT;
}

int nap_bus_member_fields(const NapMethod *m, const NapBusMember *b, bool in, NapBusFields *ret) {
        const VarlinkIdl *idl = nap_manager_idl();
        assert(m);
        assert(b);
        assert(ret);
        if (!idl)
                return -ENOMEM;
        const VarlinkIdlType *t = in ? varlink_idl_method_input(idl, m->name) : varlink_idl_method_output(idl, m->name);
        const char *const *specs = in ? b->in : b->out;
        size_t n = specs ? strv_length((char **) specs) : varlink_idl_type_n_fields(t);
        if (n > NAP_BUS_FIELDS_MAX)
                return -E2BIG;
        *ret = (NapBusFields) { .n = n };
        for (size_t i = 0; i < n; i++) {
                NapBusField *f = ret->fields + i;
                int r = bus_field_parse(specs ? specs[i] : varlink_idl_type_field_name(t, i), t, f);
                if (r >= 0)
                        r = bus_json_signature(nap_bus_ints, f->type, f->field, ret->signature, sizeof ret->signature);
                if (r < 0)
                        return r;
        }
        return 0;
}

size_t nap_methods_size(void) {
        return ELEMENTSOF(methods);
}

const NapMethod *nap_method_at(size_t i) {
        return i < ELEMENTSOF(methods) ? methods + i : NULL;
}

const NapMethod *nap_method_find(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, name))
                        return methods + i;
        return NULL;
}

const char *nap_manager_interface_text(void) {
        return nap_manager_interface;
}

/* Parsed on first use; the text is compiled in and checked by the unit
 * test, so a failure here is out of memory. */
const VarlinkIdl *nap_manager_idl(void) {
        static VarlinkIdl *idl = NULL;
        if (!idl)
                (void) varlink_idl_parse(nap_manager_interface, &idl, NULL, NULL);
        return idl;
}

/* ---- calls ------------------------------------------------------------ */

const char *nap_method_invalid_parameter(const NapMethod *m, json_t *args, const char *named) {
        char string_form[64];
        assert(m);
        const VarlinkIdlType *in = nap_manager_idl() ? varlink_idl_method_input(nap_manager_idl(), m->name) : NULL;
        for (size_t i = 0; named && in && i < varlink_idl_type_n_fields(in); i++)
                if (streq(varlink_idl_type_field_name(in, i), named))
                        return varlink_idl_type_field_name(in, i);
        if (!m->parameter)
                return m->owner ?: "name";
        /* The seed's "k=v,k=v" form of a map argument is FIELDString;
         * the name returned is the key of args, living as long as args. */
        snprintf(string_form, sizeof string_form, "%sString", m->parameter);
        void *given = json_object_iter_at(args, string_form);
        return given && json_is_string(json_object_iter_value(given)) ? json_object_iter_key(given) : m->parameter;
}

int nap_method_authorize(const NapMethod *m, uid_t uid, json_t *args, NapError *e) {
        assert(m);
        if (m->owns == NAP_OWNER_NONE)
                return nap_auth_check_shared(uid, m->access, "the cluster's nodes", e);
        const char *name = nap_arg_string(args, m->owner, e);
        if (!name)
                return -EINVAL;
        switch (m->owns) {
        case NAP_OWNER_USER:
                return nap_auth_check_user(uid, name, m->access, e);
        case NAP_OWNER_SERVICE:
                return nap_auth_check_service(uid, name, m->access, e);
        case NAP_OWNER_INSTANCE:
                return nap_auth_check_instance(uid, name, m->access, e);
        case NAP_OWNER_RESERVATION:
                return nap_auth_check_reservation(uid, name, m->access, e);
        default:
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EINVAL, "Method %s has no owner argument", m->name);
        }
}

json_t *nap_method_envelope(const NapMethod *m, json_t *result, NapError *e) {
        assert(m);
        if (result)
                return json_pack("{s:o}", "parameters", result);
        if (!nap_error_is_set(e))
                nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "%s failed", m->name);
        return json_pack("{s:s, s:s, s:s*}", "error", nap_error_kind_to_string(e->kind), "message", e->message,
                         "parameter", e->parameter[0] ? e->parameter : NULL);
}

json_t *nap_method_run(NapContext *c, const NapMethod *m, json_t *args) {
        NapError e = NAP_ERROR_NULL;
        assert(c);
        assert(m);
        return nap_method_envelope(m, m->call(c, args, &e), &e);
}

json_t *nap_method_call(NapContext *c, const NapMethod *m, uid_t uid, json_t *args) {
        NapError e = NAP_ERROR_NULL;
        assert(m);
        if (nap_method_authorize(m, uid, args, &e) < 0)
                return nap_method_envelope(m, NULL, &e);
        return nap_method_run(c, m, args);
}

int nap_method_check_result(const NapMethod *m, json_t *result, const char **ret_bad_field) {
        const VarlinkIdl *idl = nap_manager_idl();
        assert(m);
        if (!idl)
                return -ENOMEM;
        return varlink_idl_validate_method_output(idl, m->name, result, ret_bad_field);
}

json_t *nap_method_unwrap(json_t *envelope, NapError *e) {
        json_t *parameters = json_object_get(envelope, "parameters");
        if (!envelope)
                return nap_error_errno(e, -ENOMEM, "Failed to run the call"), NULL;
        if (json_is_object(parameters))
                return json_incref(parameters);
        NapErrorKind k = nap_error_kind_from_string(json_string_value(json_object_get(envelope, "error")));
        const char *message = json_string_value(json_object_get(envelope, "message"));
        nap_error_set(e, k > NAP_ERROR_NONE ? k : NAP_ERROR_INTERNAL, -EIO, "%s", message ?: "Failed");
        nap_error_parameter(e, 0, json_string_value(json_object_get(envelope, "parameter")));
        return NULL;
}
