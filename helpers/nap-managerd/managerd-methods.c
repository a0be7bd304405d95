/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "managerd-methods.h"
#include "ops/publish.h"
#include "base/strv.h"

#define JOURNAL_LINES_DEFAULT 10

/* ---- arguments -------------------------------------------------------- */

/* A string argument. The varlink adapter has checked the types against the
 * interface already; this guards other callers (D-Bus) all the same. */
static const char *arg_string(json_t *args, const char *name, NapError *e) {
        const char *s = json_string_value(json_object_get(args, name));
        if (!s)
                nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The argument '%s' is missing or not a string",
                              name);
        return s;
}

static const char *const target_args[] = {
        [TARGET_USER] = "user",
        [TARGET_SERVICE] = "service",
        [TARGET_INSTANCE] = "instance",
};

int method_authorize(const Method *method, uid_t uid, json_t *args, NapError *e) {
        const char *name = arg_string(args, target_args[method->target], e);
        if (!name)
                return -EINVAL;
        switch (method->target) {
        case TARGET_USER:
                return nap_auth_check_user(uid, name, method->access, e);
        case TARGET_SERVICE:
                return nap_auth_check_service(uid, name, method->access, e);
        case TARGET_INSTANCE:
                return nap_auth_check_instance(uid, name, method->access, e);
        }
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EINVAL, "Method %s has no owner argument", method->name);
}

const char *method_invalid_parameter(const Method *method, json_t *args) {
        if (streq(method->name, "DeployApp"))
                return "url";
        if (streq(method->name, "GetJournal"))
                return "lines";
        if (streq(method->name, "StartCommon") || streq(method->name, "StartMpi"))
                return json_is_string(json_object_get(args, "paramsString")) ? "paramsString" : "params";
        return target_args[method->target];
}

/* ---- results ---------------------------------------------------------- */

static json_t *json_strv(char *const *l) {
        json_t *a = json_array();
        STRV_FOREACH(s, l)
                if (json_array_append_new(a, json_string(*s)) < 0)
                        return json_decref(a), NULL;
        return a;
}

static json_t *json_params(const NapParams *p) {
        json_t *o = json_object();
        for (size_t i = 0; o && p && i < nap_params_size(p); i++)
                if (json_object_set_new(o, nap_params_key(p, i), json_string(nap_params_value(p, i))) < 0)
                        return json_decref(o), NULL;
        return o;
}

/* The Instance type. Units systemd lists without a manifest have no argv,
 * params or url: empty and null then. */
static json_t *json_instance(const NapInstanceInfo *i) {
        json_t *argv = json_strv(i->argv), *params = json_params(i->params);
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

json_t *method_journal_entry_json(const NapJournalEntry *j) {
        return json_pack("{s:I, s:s, s:i, s:s?, s:I}", "time", (json_int_t) j->realtime_usec, "message", j->message,
                         "priority", j->priority, "identifier", j->identifier, "pid", (json_int_t) j->pid);
}

/* NULL results: out of memory, said once here for every method. */
static json_t *oom(json_t *j, NapError *e) {
        if (!j)
                nap_error_errno(e, -ENOMEM, "Failed to build the reply");
        return j;
}

/* ---- the methods ------------------------------------------------------ */

static json_t *run_deploy_app(NapContext *c, json_t *args, NapError *e) {
        const char *service = arg_string(args, "service", e), *url = arg_string(args, "url", e);
        NapDeployResult res = {};
        if (!service || !url || nap_deploy_app(c, service, url, &res, e) < 0)
                return NULL;
        /* etcd down does not fail a deploy: the reply says it is pending. */
        const char *why = nap_error_is_set(&res.publish_error) ? res.publish_error.message : NULL;
        return oom(json_pack("{s:s, s:s, s:s, s:b, s:s, s:s?}", "service", service, "commit", res.commit, "url", url,
                             "changed", res.changed, "etcd", nap_publish_to_string(res.publish), "etcdError", why),
                   e);
}

static json_t *run_list_services(NapContext *c, json_t *args, NapError *e) {
        const char *user = arg_string(args, "user", e);
        NapServiceInfo *l = NULL;
        size_t n = 0;
        if (!user || nap_list_services(c, user, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:s?, s:s?, s:I}", "service", l[i].name, "app",
                                                       l[i].app, "url", l[i].url, "commit", l[i].commit, "deployed",
                                                       (json_int_t) l[i].deployed_usec)) < 0)
                        a = (json_decref(a), NULL);
        nap_service_info_array_free(l, n);
        return oom(a ? json_pack("{s:o}", "services", a) : NULL, e);
}

/* ---- ListInstances and GetInstancesNum -------------------------------- */

json_t *method_instances_array(const NapInstanceInfo *l, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_instance(l + i)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

json_t *method_instances_result(const Method *method, const char *service, json_t *instances, NapError *e) {
        if (streq(method->name, "GetInstancesNum"))
                return oom(json_pack("{s:s, s:I}", "service", service, "instances",
                                     (json_int_t) json_array_size(instances)),
                           e);
        return oom(json_pack("{s:O}", "instances", instances), e);
}

/* In-process (napctl --no-helper): asks systemd and reads the manifests
 * every time; nap-managerd answers from its cache (managerd-instances.c). */
static json_t *run_instances(const char *name, NapContext *c, json_t *args, NapError *e) {
        const char *service = arg_string(args, "service", e);
        NapInstanceInfo *l = NULL;
        size_t n = 0;
        if (!service || nap_list_instances(c, service, &l, &n, e) < 0)
                return NULL;
        json_auto_t *a = oom(method_instances_array(l, n), e);
        nap_instance_info_array_free(l, n);
        return a ? method_instances_result(method_find(name), service, a, e) : NULL;
}

static json_t *run_list_instances(NapContext *c, json_t *args, NapError *e) {
        return run_instances("ListInstances", c, args, e);
}

static json_t *run_get_instances_num(NapContext *c, json_t *args, NapError *e) {
        return run_instances("GetInstancesNum", c, args, e);
}

json_t *method_envelope(const Method *method, json_t *result, NapError *e) {
        if (result)
                return json_pack("{s:o}", "parameters", result);
        if (!nap_error_is_set(e))
                nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "%s failed", method->name);
        return json_pack("{s:s, s:s}", "error", nap_error_kind_to_string(e->kind), "message", e->message);
}

int method_journal_lines(json_t *args, size_t *ret, NapError *e) {
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
        const char *instance = arg_string(args, "instance", e);
        NapJournalEntry *l = NULL;
        size_t lines, n = 0;
        if (!instance || method_journal_lines(args, &lines, e) < 0 ||
            nap_get_journal(c, instance, lines, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, method_journal_entry_json(l + i)) < 0)
                        a = (json_decref(a), NULL);
        nap_journal_entry_array_free(l, n);
        return oom(a ? json_pack("{s:o}", "entries", a) : NULL, e);
}

static json_t *run_stop_app(NapContext *c, json_t *args, NapError *e) {
        const char *instance = arg_string(args, "instance", e);
        return instance && nap_stop_app(c, instance, e) >= 0 ? oom(json_object(), e) : NULL;
}

static json_t *run_start_app(NapContext *c, json_t *args, NapError *e) {
        const char *instance = arg_string(args, "instance", e);
        return instance && nap_start_app(c, instance, e) >= 0 ? oom(json_object(), e) : NULL;
}

static json_t *run_remove_instance(NapContext *c, json_t *args, NapError *e) {
        const char *instance = arg_string(args, "instance", e);
        return instance && nap_remove_instance(c, instance, e) >= 0 ? oom(json_object(), e) : NULL;
}

static json_t *run_cat_app(NapContext *c, json_t *args, NapError *e) {
        const char *instance = arg_string(args, "instance", e);
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
        const char *service = arg_string(args, "service", e);
        _cleanup_strv_free_ char **l = NULL;
        if (!service || nap_get_parameters(c, service, &l, e) < 0)
                return NULL;
        json_t *a = json_strv(l);
        return oom(a ? json_pack("{s:o}", "parameters", a) : NULL, e);
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

static json_t *run_start_common(NapContext *c, json_t *args, NapError *e) {
        const char *service = arg_string(args, "service", e);
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapInstanceInfo i = {};
        if (!service || params_from_args(args, &p, e) < 0 || nap_start_common(c, service, p, &i, e) < 0)
                return NULL;
        json_t *j = json_instance(&i);
        const char *etcd = nap_publish_to_string(i.publish);
        nap_instance_info_clear(&i);
        return oom(j ? json_pack("{s:o, s:s}", "instance", j, "etcd", etcd) : NULL, e);
}

static json_t *run_get_service_url(NapContext *c, json_t *args, NapError *e) {
        const char *service = arg_string(args, "service", e);
        _cleanup_free_ char *url = NULL;
        NapSource source;
        if (!service || nap_get_service_url(c, service, &url, &source, e) < 0)
                return NULL;
        return oom(json_pack("{s:s, s:s}", "url", url, "source", nap_source_to_string(source)), e);
}

static json_t *run_get_port(NapContext *c, json_t *args, NapError *e) {
        const char *instance = arg_string(args, "instance", e);
        unsigned port;
        NapSource source;
        if (!instance || nap_get_port(c, instance, &port, &source, e) < 0)
                return NULL;
        return oom(json_pack("{s:I, s:s}", "port", (json_int_t) port, "source", nap_source_to_string(source)), e);
}

static json_t *run_list_endpoints(NapContext *c, json_t *args, NapError *e) {
        const char *service = arg_string(args, "service", e);
        NapEndpointList l = {};
        if (!service || nap_list_endpoints(c, service, &l, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < l.n; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:s}", "host", l.items[i].host, "port",
                                                       (json_int_t) l.items[i].port, "instance",
                                                       l.items[i].instance, "unit", l.items[i].unit)) < 0)
                        a = (json_decref(a), NULL);
        nap_endpoint_list_done(&l);
        return oom(a ? json_pack("{s:o}", "endpoints", a) : NULL, e);
}

/* MPI apps come with a later issue: refused by name, documented in the
 * interface, never silently. */
static json_t *run_start_mpi(NapContext *c, json_t *args, NapError *e) {
        nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "Not available yet: MPI apps are not supported yet");
        return NULL;
}

/* ---- the table -------------------------------------------------------- */

static const Method methods[] = {
        { "DeployApp", TARGET_SERVICE, NAP_ACCESS_WRITE, true, run_deploy_app, false },
        { "ListServices", TARGET_USER, NAP_ACCESS_READ, false, run_list_services, false },
        /* GetServiceUrl, GetPort and ListEndpoints ask etcd first: seconds
         * of timeouts when it is down, so in a worker too. */
        { "GetServiceUrl", TARGET_SERVICE, NAP_ACCESS_READ, true, run_get_service_url, false },
        /* nap-managerd answers these from its cache, in the loop. */
        { "GetInstancesNum", TARGET_SERVICE, NAP_ACCESS_READ, false, run_get_instances_num, true },
        { "ListInstances", TARGET_SERVICE, NAP_ACCESS_READ, false, run_list_instances, true },
        { "GetPort", TARGET_INSTANCE, NAP_ACCESS_READ, true, run_get_port, false },
        { "GetJournal", TARGET_INSTANCE, NAP_ACCESS_READ, true, run_get_journal, false },
        { "StopApp", TARGET_INSTANCE, NAP_ACCESS_WRITE, true, run_stop_app, false },
        { "StartApp", TARGET_INSTANCE, NAP_ACCESS_WRITE, true, run_start_app, false },
        { "CatApp", TARGET_INSTANCE, NAP_ACCESS_READ, false, run_cat_app, false },
        { "GetParameters", TARGET_SERVICE, NAP_ACCESS_READ, false, run_get_parameters, false },
        { "StartCommon", TARGET_SERVICE, NAP_ACCESS_WRITE, true, run_start_common, false },
        { "StartMpi", TARGET_SERVICE, NAP_ACCESS_WRITE, false, run_start_mpi, false },
        { "RemoveInstance", TARGET_INSTANCE, NAP_ACCESS_WRITE, true, run_remove_instance, false },
        { "ListEndpoints", TARGET_SERVICE, NAP_ACCESS_READ, true, run_list_endpoints, false },
};

const Method *method_find(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, name))
                        return methods + i;
        return NULL;
}

json_t *method_run_envelope(NapContext *c, const Method *method, json_t *args) {
        NapError e = NAP_ERROR_NULL;
        json_t *result = method->run(c, args, &e);
        return method_envelope(method, result, &e);
}
