/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The inventory's methods (seed 004's node service): JSON arguments of
 * io.nap.Manager in, lib/cluster/inventory.h, the reply object out. */

#include <stdio.h>

#include "base/clock.h"
#include "base/strv.h"
#include "cluster/inventory.h"
#include "nap-config.h"
#include "ops/method-json.h"
#include "ops/methods-nodes.h"
#include "ops/publish.h"

/* ---- arguments -------------------------------------------------------- */

/* An int argument ≥ 0; absent or null (D-Bus: 0) is 0. */
static int arg_u64(json_t *args, const char *name, uint64_t *ret, NapError *e) {
        json_t *v = json_object_get(args, name);
        if (!v || json_is_null(v)) {
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "%s must be a number, 0 or more", name);
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

/* A labels map, checked as nap.conf's Labels= is. */
static int arg_labels(json_t *args, char ***ret, NapError *e) {
        _cleanup_strv_free_ char **pairs = NULL;
        _cleanup_free_ char *joined = NULL;
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(args, "labels"), k, v) {
                char *kv = NULL;
                if (!json_is_string(v) || asprintf(&kv, "%s=%s", k, json_string_value(v)) < 0 ||
                    strv_consume(&pairs, kv) < 0)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "labels must map names to strings");
        }
        if (pairs && !(joined = strv_join(pairs, ",")))
                return nap_error_errno(e, -ENOMEM, "Failed to read the labels");
        return nap_labels_parse(joined, ret, e);
}

static int arg_policy(json_t *args, NapPolicy *ret, NapError *e) {
        const char *s = json_string_value(json_object_get(args, "policy"));
        *ret = s && *s ? nap_policy_from_string(s) : NAP_POLICY_SPREAD;
        if (*ret < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Unknown policy '%.32s': spread or binpack", s);
        return 0;
}

static int arg_compute(json_t *args, NapCompute *c, NapError *e) {
        int r = arg_u64(args, "request_cpu_milli_core", &c->request_cpu_milli, e);
        if (r >= 0)
                r = arg_u64(args, "limit_cpu_milli_core", &c->limit_cpu_milli, e);
        if (r >= 0)
                r = arg_u64(args, "request_memory_bytes", &c->request_memory, e);
        if (r >= 0)
                r = arg_u64(args, "limit_memory_bytes", &c->limit_memory, e);
        return r;
}

static int arg_storage(json_t *args, NapStorage *s, NapError *e) {
        int r = arg_u64(args, "request_bytes", &s->request_bytes, e);
        return r < 0 ? r : arg_u64(args, "limit_bytes", &s->limit_bytes, e);
}

/* The reservation the arguments describe; name_arg: compute_name or
 * storage_name; node_arg: NULL for placements. */
static int arg_reservation(json_t *args, NapReservationKind kind, const char *node_arg, NapReservation *ret,
                           NapError *e) {
        const char *name_arg = kind == NAP_RESERVATION_STORAGE ? "storage_name" : "compute_name";
        const char *name = nap_arg_string(args, name_arg, e), *node = node_arg ? nap_arg_string(args, node_arg, e) : "";
        *ret = (NapReservation) { .kind = kind };
        if (!name || !node || nap_reservation_name_check(name, NULL, e) < 0 ||
            (node_arg && nap_node_name_check(node, e) < 0))
                return -EINVAL;
        snprintf(ret->name, sizeof ret->name, "%s", name);
        snprintf(ret->node, sizeof ret->node, "%s", node);
        return kind == NAP_RESERVATION_STORAGE ? arg_storage(args, &ret->storage, e)
                                               : arg_compute(args, &ret->compute, e);
}

/* ---- results ---------------------------------------------------------- */

static json_t *json_node(const NapNodeInfo *i) {
        const NapNode *n = &i->node;
        json_t *labels = nap_labels_json(n->labels);
        bool status = !i->ready && i->status.reason;
        if (!labels)
                return NULL;
        return json_pack("{s:s, s:s, s:b, s:s?, s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:I}", "name",
                         n->name, "address", n->address ?: "", "ready", i->ready, "reason",
                         status ? i->status.reason : NULL, "since",
                         status ? json_integer((json_int_t) i->status.since_usec) : json_null(), "machine_id",
                         n->machine_id, "boot_id", n->boot_id, "cpu_milli_core", (json_int_t) n->capacity.cpu_milli,
                         "memory_bytes", (json_int_t) n->capacity.memory, "storage_bytes",
                         (json_int_t) n->capacity.storage, "used_cpu_milli_core", (json_int_t) i->usage.cpu_milli,
                         "used_memory_bytes", (json_int_t) i->usage.memory, "used_storage_bytes",
                         (json_int_t) i->usage.storage, "labels", labels, "version", n->version ?: "",
                         "registered", (json_int_t) n->registered_usec);
}

static json_t *json_reservation(const NapReservation *r) {
        return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "kind",
                         nap_reservation_kind_to_string(r->kind), "name", r->name, "node", r->node,
                         "request_cpu_milli_core", (json_int_t) r->compute.request_cpu_milli, "limit_cpu_milli_core",
                         (json_int_t) r->compute.limit_cpu_milli, "request_memory_bytes",
                         (json_int_t) r->compute.request_memory, "limit_memory_bytes",
                         (json_int_t) r->compute.limit_memory, "request_bytes",
                         (json_int_t) r->storage.request_bytes, "limit_bytes", (json_int_t) r->storage.limit_bytes,
                         "created", (json_int_t) r->created_usec);
}

static json_t *json_reservations(const NapReservation *l, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_reservation(l + i)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* ---- the methods ------------------------------------------------------ */

json_t *nap_run_list_nodes(NapContext *c, json_t *args, NapError *e) {
        NapNodeInfo *l = NULL;
        EtcdClient *etcd;
        size_t n = 0;
        if (nap_context_etcd(c, &etcd, e) < 0 || nap_nodes_list(etcd, c->config->cluster_prefix, &l, &n, e) < 0)
                return NULL;
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_node(l + i)) < 0)
                        a = (json_decref(a), NULL);
        nap_node_info_array_free(l, n);
        return nap_reply(a ? json_pack("{s:o}", "nodes", a) : NULL, e);
}

json_t *nap_run_get_node(NapContext *c, json_t *args, NapError *e) {
        const char *name = nap_arg_string(args, "name", e);
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        _cleanup_free_ NapReservation *l = NULL;
        EtcdClient *etcd;
        size_t n = 0;
        if (!name || nap_context_etcd(c, &etcd, e) < 0 || nap_node_get(etcd, c->config->cluster_prefix, name, &i, e) < 0 ||
            nap_reservations_list(etcd, c->config->cluster_prefix, name, &l, &n, e) < 0)
                return NULL;
        return nap_reply(json_pack("{s:o, s:o}", "node", json_node(&i), "reservations", json_reservations(l, n)), e);
}

json_t *nap_run_apply_node(NapContext *c, json_t *args, NapError *e) {
        const char *name = nap_arg_string(args, "name", e), *address = nap_arg_string(args, "address", e);
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        EtcdClient *etcd;
        if (!name || !address || nap_node_name_check(name, e) < 0 ||
            arg_u64(args, "cpu_milli_core", &i.node.capacity.cpu_milli, e) < 0 ||
            arg_u64(args, "memory_bytes", &i.node.capacity.memory, e) < 0 ||
            arg_u64(args, "storage_bytes", &i.node.capacity.storage, e) < 0 || arg_labels(args, &i.node.labels, e) < 0)
                return NULL;
        if (i.node.capacity.cpu_milli > NAP_CPU_MILLI_MAX || i.node.capacity.memory > NAP_BYTES_MAX ||
            i.node.capacity.storage > NAP_BYTES_MAX || strlen(address) > 255) {
                nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE, "The capacity or address of %s is absurd", name);
                return NULL;
        }
        snprintf(i.node.name, sizeof i.node.name, "%s", name);
        /* Written by hand: no machine or boot of its own yet. */
        memset(i.node.machine_id, '0', 32);
        memset(i.node.boot_id, '0', 32);
        i.node.registered_usec = realtime_usec();
        if (!(i.node.address = strdup(address)) || !(i.node.version = strdup(NAP_VERSION))) {
                nap_error_errno(e, -ENOMEM, "Failed to apply node %s", name);
                return NULL;
        }
        if (nap_context_etcd(c, &etcd, e) < 0 || nap_node_apply(etcd, c->config->cluster_prefix, &i.node, e) < 0)
                return NULL;
        nap_node_info_done(&i);
        if (nap_node_get(etcd, c->config->cluster_prefix, name, &i, e) < 0)
                return NULL;
        return nap_reply(json_pack("{s:o}", "node", json_node(&i)), e);
}

json_t *nap_run_delete_node(NapContext *c, json_t *args, NapError *e) {
        const char *name = nap_arg_string(args, "name", e);
        EtcdClient *etcd;
        if (!name || nap_context_etcd(c, &etcd, e) < 0 ||
            nap_node_delete(etcd, c->config->cluster_prefix, name, json_is_true(json_object_get(args, "force")), e) < 0)
                return NULL;
        return nap_reply(json_object(), e);
}

static json_t *reserve(NapContext *c, json_t *args, NapReservationKind kind, NapError *e) {
        NapReservation r;
        EtcdClient *etcd;
        int created;
        if (arg_reservation(args, kind, "name", &r, e) < 0 || nap_context_etcd(c, &etcd, e) < 0 ||
            (created = nap_reserve(etcd, c->config->cluster_prefix, &r, e)) < 0)
                return NULL;
        return nap_reply(json_pack("{s:o, s:b}", "reservation", json_reservation(&r), "created", created), e);
}

json_t *nap_run_reserve_compute(NapContext *c, json_t *args, NapError *e) {
        return reserve(c, args, NAP_RESERVATION_COMPUTE, e);
}

json_t *nap_run_reserve_storage(NapContext *c, json_t *args, NapError *e) {
        return reserve(c, args, NAP_RESERVATION_STORAGE, e);
}

static json_t *release(NapContext *c, json_t *args, NapReservationKind kind, NapError *e) {
        const char *name_arg = kind == NAP_RESERVATION_STORAGE ? "storage_name" : "compute_name";
        const char *node = nap_arg_string(args, "name", e), *name = nap_arg_string(args, name_arg, e);
        EtcdClient *etcd;
        if (!node || !name || nap_context_etcd(c, &etcd, e) < 0 ||
            nap_release(etcd, c->config->cluster_prefix, kind, node, name, e) < 0)
                return NULL;
        return nap_reply(json_object(), e);
}

json_t *nap_run_release_compute(NapContext *c, json_t *args, NapError *e) {
        return release(c, args, NAP_RESERVATION_COMPUTE, e);
}

json_t *nap_run_release_storage(NapContext *c, json_t *args, NapError *e) {
        return release(c, args, NAP_RESERVATION_STORAGE, e);
}

static json_t *schedule(NapContext *c, json_t *args, NapReservationKind kind, NapError *e) {
        _cleanup_strv_free_ char **selector = NULL;
        _cleanup_free_ NapReservation *placed = NULL;
        NapReservation r;
        NapPolicy policy;
        EtcdClient *etcd;
        uint64_t count;
        if (arg_reservation(args, kind, NULL, &r, e) < 0 || arg_policy(args, &policy, e) < 0 ||
            arg_labels(args, &selector, e) < 0 || arg_u64(args, "count", &count, e) < 0)
                return NULL;
        if (count > NAP_SCHEDULE_BATCH_MAX) {
                nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "count: at most %u at once",
                              NAP_SCHEDULE_BATCH_MAX);
                return NULL;
        }
        count = count ?: 1;
        if (nap_context_etcd(c, &etcd, e) < 0 ||
            nap_schedule(etcd, c->config->cluster_prefix, &r, (unsigned) count, policy, selector, &placed, e) < 0)
                return NULL;
        return nap_reply(json_pack("{s:o}", "reservations", json_reservations(placed, count)), e);
}

json_t *nap_run_schedule_compute(NapContext *c, json_t *args, NapError *e) {
        return schedule(c, args, NAP_RESERVATION_COMPUTE, e);
}

json_t *nap_run_schedule_storage(NapContext *c, json_t *args, NapError *e) {
        return schedule(c, args, NAP_RESERVATION_STORAGE, e);
}
