/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "cluster/assignment.h"
#include "cluster/inventory.h"

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

/* ---- the records ------------------------------------------------------ */

void nap_assignment_done(NapAssignment *a) {
        if (!a)
                return;
        nap_params_free(a->params);
        *a = (NapAssignment) {};
}

void nap_assignment_array_free(NapAssignment *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_assignment_done(l + i);
        free(l);
}

static json_t *params_json(const NapParams *p) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < nap_params_size(p); i++)
                if (json_object_set_new(o, nap_params_key(p, i), json_string(nap_params_value(p, i))) < 0)
                        o = (json_decref(o), NULL);
        return o;
}

static json_t *compute_json(const NapCompute *c) {
        return json_pack("{s:I, s:I, s:I, s:I}", "request_cpu_milli", (json_int_t) c->request_cpu_milli,
                         "limit_cpu_milli", (json_int_t) c->limit_cpu_milli, "request_memory",
                         (json_int_t) c->request_memory, "limit_memory", (json_int_t) c->limit_memory);
}

int nap_assignment_to_json(const NapAssignment *a, char **ret) {
        char name[NAP_SERVICE_NAME_MAX];
        assert(a);
        assert(ret);
        json_t *params = params_json(a->params), *resources = compute_json(&a->resources);
        if (!params || !resources) {
                json_decref(params);
                json_decref(resources);
                return -ENOMEM;
        }
        return nap_cluster_json_dump(
                json_pack("{s:s, s:I, s:s, s:o, s:I, s:s, s:o, s:b, s:s, s:I, s:I, s:I}", "app",
                          nap_service_name(&a->instance.service, name), "number", (json_int_t) a->instance.number,
                          "node", a->node, "params", params, "port", (json_int_t) a->port, "commit", a->commit,
                          "resources", resources, "enabled", a->enabled, "request", a->request, "generation",
                          (json_int_t) a->generation, "restart", (json_int_t) a->restart, "created",
                          (json_int_t) a->created_usec),
                ret);
}

/* A short string field into buf (its size), checked by ok. */
static int string_field(json_t *o, const char *field, char *buf, size_t size, bool (*ok)(const char *s)) {
        const char *s = nap_cluster_json_string(o, field, size - 1);
        if (!s || !ok(s))
                return -EBADMSG;
        memcpy(buf, s, strlen(s) + 1);
        return 0;
}

static bool node_ok(const char *s) {
        return nap_node_name_check(s, NULL) >= 0;
}

static bool commit_ok(const char *s) {
        return isempty(s) || nap_commit_is_valid(s);
}

static bool request_ok(const char *s) {
        return isempty(s) || nap_request_id_is_valid(s);
}

static int instance_fields(json_t *o, NapInstance *ret) {
        uint64_t number;
        const char *app = nap_cluster_json_string(o, "app", NAP_SERVICE_NAME_MAX);
        *ret = (NapInstance) { .kind = NAP_KIND_COMMON };
        if (!app || nap_service_parse(app, &ret->service, NULL) < 0 ||
            nap_cluster_json_u64(o, "number", NAP_INSTANCE_NUMBER_MAX, &number) < 0 || number == 0)
                return -EBADMSG;
        ret->number = (unsigned) number;
        return 0;
}

static int port_field(json_t *o, unsigned *ret) {
        uint64_t port;
        int r = nap_cluster_json_u64(o, "port", 65535, &port);
        *ret = (unsigned) port;
        return r;
}

static int params_from_json(json_t *o, NapParams **ret) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        const char *k;
        json_t *v;
        if (!json_is_object(o) || nap_params_new(&p) < 0)
                return -EBADMSG;
        json_object_foreach(o, k, v)
                if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                    nap_params_set(p, k, json_string_value(v), NULL) < 0)
                        return -EBADMSG;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Each step names the field it reads, so that an error says which. */
static int assignment_fields(json_t *o, NapAssignment *a, const char **field) {
        int r = (*field = "app/number", instance_fields(o, &a->instance));
        if (r >= 0)
                r = (*field = "node", string_field(o, *field, a->node, sizeof a->node, node_ok));
        if (r >= 0)
                r = (*field = "params", params_from_json(json_object_get(o, *field), &a->params));
        if (r >= 0)
                r = (*field = "port", port_field(o, &a->port));
        if (r >= 0)
                r = (*field = "commit", string_field(o, *field, a->commit, sizeof a->commit, commit_ok));
        if (r >= 0)
                r = (*field = "resources", nap_compute_from_json(json_object_get(o, *field), &a->resources));
        if (r >= 0 && (*field = "enabled", !json_is_boolean(json_object_get(o, *field))))
                r = -EBADMSG;
        if (r >= 0)
                a->enabled = json_is_true(json_object_get(o, *field));
        if (r >= 0)
                r = (*field = "request", string_field(o, *field, a->request, sizeof a->request, request_ok));
        if (r >= 0)
                r = (*field = "generation", nap_cluster_json_u64(o, *field, UINT64_MAX >> 1, &a->generation));
        if (r >= 0 && json_object_get(o, "restart")) /* absent: written before restarts were */
                r = (*field = "restart", nap_cluster_json_u64(o, *field, a->generation, &a->restart));
        if (r >= 0)
                r = (*field = "created", nap_cluster_json_u64(o, *field, UINT64_MAX >> 1, &a->created_usec));
        return r;
}

int nap_assignment_from_json(const char *text, size_t size, NapAssignment *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapAssignment a = {};
        const char *field = NULL;
        assert(ret);
        int r = nap_cluster_json_load(text, size, &o, "assignment", e);
        if (r < 0)
                return r;
        r = assignment_fields(o, &a, &field);
        if (r < 0) {
                nap_assignment_done(&a);
                return nap_cluster_json_damaged(e, "assignment", field);
        }
        *ret = a;
        return 0;
}

static const char *const observed_state_table[_NAP_OBSERVED_STATE_MAX] = {
        [NAP_OBSERVED_ACTIVATING] = "activating",
        [NAP_OBSERVED_ACTIVE] = "active",
        [NAP_OBSERVED_FAILED] = "failed",
        [NAP_OBSERVED_INACTIVE] = "inactive",
};

const char *nap_observed_state_to_string(NapObservedState s) {
        return s >= 0 && s < _NAP_OBSERVED_STATE_MAX ? observed_state_table[s] : NULL;
}

NapObservedState nap_observed_state_from_string(const char *s) {
        return string_table_lookup(observed_state_table, ELEMENTSOF(observed_state_table), s);
}

void nap_observed_done(NapObserved *o) {
        if (!o)
                return;
        free(o->reason);
        *o = (NapObserved) {};
}

void nap_observed_array_free(NapObserved *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_observed_done(l + i);
        free(l);
}

int nap_observed_to_json(const NapObserved *o, char **ret) {
        char name[NAP_SERVICE_NAME_MAX];
        assert(o);
        assert(ret);
        const char *state = nap_observed_state_to_string(o->state);
        if (!state)
                return -EINVAL;
        return nap_cluster_json_dump(
                json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:I}", "app",
                          nap_service_name(&o->instance.service, name), "number", (json_int_t) o->instance.number,
                          "node", o->node, "state", state, "port", (json_int_t) o->port, "commit", o->commit,
                          "reason", strempty(o->reason), "generation", (json_int_t) o->generation, "time",
                          (json_int_t) o->time_usec),
                ret);
}

static int reason_field(json_t *o, char **ret) {
        const char *s = nap_cluster_json_string(o, "reason", NAP_OBSERVED_REASON_MAX);
        if (!s)
                return -EBADMSG;
        if (isempty(s))
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int observed_fields(json_t *j, NapObserved *o, const char **field) {
        int r = (*field = "app/number", instance_fields(j, &o->instance));
        if (r >= 0)
                r = (*field = "node", string_field(j, *field, o->node, sizeof o->node, node_ok));
        if (r >= 0 && (*field = "state",
                       (o->state = nap_observed_state_from_string(nap_cluster_json_string(j, "state", 16))) < 0))
                r = -EBADMSG;
        if (r >= 0)
                r = (*field = "port", port_field(j, &o->port));
        if (r >= 0)
                r = (*field = "commit", string_field(j, *field, o->commit, sizeof o->commit, commit_ok));
        if (r >= 0)
                r = (*field = "reason", reason_field(j, &o->reason));
        if (r >= 0)
                r = (*field = "generation", nap_cluster_json_u64(j, *field, UINT64_MAX >> 1, &o->generation));
        if (r >= 0)
                r = (*field = "time", nap_cluster_json_u64(j, *field, UINT64_MAX >> 1, &o->time_usec));
        return r;
}

int nap_observed_from_json(const char *text, size_t size, NapObserved *ret, NapError *e) {
        json_auto_t *j = NULL;
        NapObserved o = {};
        const char *field = NULL;
        assert(ret);
        int r = nap_cluster_json_load(text, size, &j, "observed state", e);
        if (r < 0)
                return r;
        r = observed_fields(j, &o, &field);
        if (r < 0) {
                nap_observed_done(&o);
                return r == -ENOMEM ? oom(e) : nap_cluster_json_damaged(e, "observed state", field);
        }
        *ret = o;
        return 0;
}

/* ---- keys ------------------------------------------------------------- */

static char *key_instance(const char *prefix, const char *dir, const char *node, const NapInstance *i) {
        char name[NAP_UNIT_NAME_MAX];
        return strdup_printf("%s/%s/%s/%s", prefix, dir, node, nap_instance_name(i, name));
}

char *nap_key_assignment(const char *prefix, const char *node, const NapInstance *i) {
        return key_instance(prefix, "assignments", node, i);
}

char *nap_key_assignments(const char *prefix, const char *node) {
        return strdup_printf("%s/assignments/%s/", prefix, node);
}

char *nap_key_counter(const char *prefix, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX];
        return strdup_printf("%s/counters/%s", prefix, nap_service_name(s, name));
}

char *nap_key_request(const char *prefix, const NapService *s, const char *request) {
        char name[NAP_SERVICE_NAME_MAX];
        return strdup_printf("%s/requests/%s/%s", prefix, nap_service_name(s, name), request);
}

char *nap_key_observed(const char *prefix, const char *node, const NapInstance *i) {
        return key_instance(prefix, "observed", node, i);
}

char *nap_key_observeds(const char *prefix, const char *node) {
        return strdup_printf("%s/observed/%s/", prefix, node);
}

/* ---- creating --------------------------------------------------------- */

static int invalid(NapError *e, const char *what) {
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid %s for an assignment", what);
}

static int assignment_check(const NapAssignment *a, NapError *e) {
        NapCompute c = a->resources;
        NapService s;
        int r = nap_service_from_parts(a->instance.service.user, a->instance.service.app, &s, e);
        if (r >= 0)
                r = nap_node_name_check(a->node, e);
        if (r >= 0 && !commit_ok(a->commit))
                r = invalid(e, "commit (40 lowercase hex digits, or none)");
        if (r >= 0 && a->port > 65535)
                r = invalid(e, "port (1-65535, or 0: the host picks)");
        if (r >= 0 && !isempty(a->request))
                r = nap_request_id_check(a->request, e);
        if (r >= 0 && !nap_compute_is_empty(&c))
                r = nap_compute_check(&c, e);
        return r;
}

/* The counter's value (0 when absent or damaged: a damaged counter must
 * not stop an app; the txn's compare still guards it). */
static unsigned counter_value(const EtcdKeyValue *kv) {
        unsigned n = 0;
        return kv->create_revision > 0 && nap_instance_number_parse(kv->value, &n) >= 0 ? n : 0;
}

enum { READ_COUNTER, READ_NODE, READ_REQUEST, _READ_MAX };

typedef struct CreateRead {
        char *keys[_READ_MAX + 1];
        EtcdKeyValue kvs[_READ_MAX];
        const EtcdTxnCompare *guard; /* n_guard of them, compared too */
        size_t n_guard;
} CreateRead;

static void create_read_done(CreateRead *x) {
        for (size_t i = 0; i < _READ_MAX; i++) {
                free(x->keys[i]);
                etcd_key_value_done(x->kvs + i);
        }
}

static int create_read(EtcdClient *c, const char *prefix, const NapAssignment *a, CreateRead *x, NapError *e) {
        x->keys[READ_COUNTER] = nap_key_counter(prefix, &a->instance.service);
        x->keys[READ_NODE] = nap_key_node(prefix, a->node);
        /* without a request id, the counter once more: the list has no hole */
        x->keys[READ_REQUEST] = isempty(a->request) ? nap_key_counter(prefix, &a->instance.service)
                                                    : nap_key_request(prefix, &a->instance.service, a->request);
        for (size_t i = 0; i < _READ_MAX; i++)
                if (!x->keys[i])
                        return oom(e);
        int r = etcd_get_many(c, x->keys, x->kvs, NULL, e);
        if (r >= 0 && x->kvs[READ_NODE].create_revision == 0)
                r = nap_error_set(e, NAP_ERROR_NO_SUCH_NODE, -ENOENT, "No node %s", a->node);
        return r;
}

/* A request id seen before: the number of the instance it made. */
static int create_replayed(const CreateRead *x, NapAssignment *a, NapError *e) {
        NapInstance i;
        const EtcdKeyValue *req = x->kvs + READ_REQUEST;
        if (isempty(a->request) || req->create_revision == 0)
                return 0;
        if (nap_instance_parse(req->value, &i, NULL) < 0 ||
            !streq(i.service.user, a->instance.service.user) || !streq(i.service.app, a->instance.service.app))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                     "Request id %s was used for %.80s already", a->request, req->value);
        a->instance.number = i.number;
        return 1;
}

/* One txn: counter + 1, the assignment, the request; 1 won, 0 lost. */
static int create_txn(EtcdClient *c, const char *prefix, const CreateRead *x, NapAssignment *a, NapError *e) {
        char counter[16], name[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *value = NULL, *key = NULL;
        a->instance.number = counter_value(x->kvs + READ_COUNTER) + 1;
        if (a->instance.number > NAP_INSTANCE_NUMBER_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE, "The app's instance numbers are used up");
        snprintf(counter, sizeof counter, "%u", a->instance.number);
        if (!(key = nap_key_assignment(prefix, a->node, &a->instance)) || nap_assignment_to_json(a, &value) < 0)
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                { .key = x->keys[READ_COUNTER], .target = ETCD_COMPARE_MOD_REVISION,
                  .revision = x->kvs[READ_COUNTER].mod_revision },
                { .key = x->keys[READ_NODE], .target = ETCD_COMPARE_MOD_REVISION,
                  .revision = x->kvs[READ_NODE].mod_revision },
                { .key = x->keys[READ_REQUEST], .target = ETCD_COMPARE_MOD_REVISION,
                  .revision = x->kvs[READ_REQUEST].mod_revision },
                x->n_guard > 0 ? x->guard[0] : (EtcdTxnCompare) {},
                x->n_guard > 1 ? x->guard[1] : (EtcdTxnCompare) {},
        };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_PUT, .key = x->keys[READ_COUNTER], .value = counter, .value_size = strlen(counter) },
                { .type = ETCD_TXN_PUT, .key = key, .value = value, .value_size = strlen(value) },
                { .type = ETCD_TXN_PUT, .key = x->keys[READ_REQUEST], .value = nap_instance_name(&a->instance, name),
                  .value_size = strlen(name) },
        };
        int64_t revision = 0;
        /* without a request id the third op would put the counter twice */
        assert(x->n_guard <= 2);
        int r = etcd_txn(c, cmp, 3 + x->n_guard, ops, isempty(a->request) ? 2 : 3, &revision, e);
        if (r > 0)
                a->mod_revision = revision;
        return r;
}

static int assignment_create(EtcdClient *c, const char *prefix, NapAssignment *a, const EtcdTxnCompare *guard,
                             size_t n_guard, NapError *e) {
        assert(c);
        assert(a);
        int r = assignment_check(a, e);
        if (r < 0)
                return r;
        a->instance.kind = NAP_KIND_COMMON;
        a->generation = 1;
        a->created_usec = realtime_usec();
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++) {
                _cleanup_(create_read_done) CreateRead x = { .guard = guard, .n_guard = n_guard };
                r = create_read(c, prefix, a, &x, e);
                if (r >= 0)
                        r = create_replayed(&x, a, e);
                if (r != 0)
                        return r < 0 ? r : 0;
                r = create_txn(c, prefix, &x, a, e);
                if (r != 0)
                        return r;
        }
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                             "Creating the assignment lost to other writers %u times; try again",
                             NAP_INVENTORY_RETRIES);
}

int nap_assignment_create(EtcdClient *c, const char *prefix, NapAssignment *a, NapError *e) {
        return assignment_create(c, prefix, a, NULL, 0, e);
}

/* ---- reading and deleting --------------------------------------------- */

/* The record under key, checked against it: NULL-named or other fields
 * than the key says are damage. */
static int assignment_from_kv(const EtcdKeyValue *kv, const char *node, NapAssignment *ret) {
        char name[NAP_UNIT_NAME_MAX];
        const char *slash = strrchr(kv->key, '/');
        int r = nap_assignment_from_json(kv->value, kv->value_size, ret, NULL);
        if (r < 0)
                return r;
        if (!slash || !streq(slash + 1, nap_instance_name(&ret->instance, name)) || !streq(ret->node, node)) {
                nap_assignment_done(ret);
                return -EBADMSG;
        }
        ret->mod_revision = kv->mod_revision;
        return 0;
}

int nap_assignments_list(EtcdClient *c, const char *prefix, const char *node, NapAssignment **ret,
                         size_t *ret_n, int64_t *ret_revision, unsigned *ret_damaged, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = nap_key_assignments(prefix, node);
        NapAssignment *l = NULL;
        size_t n = 0;
        assert(c);
        assert(ret);
        assert(ret_n);
        int r = nap_node_name_check(node, e);
        if (r >= 0)
                r = dir ? etcd_range_prefix(c, dir, 0, false, &range, e) : oom(e);
        if (r >= 0 && !(l = calloc(range.n_kvs ?: 1, sizeof *l)))
                r = oom(e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < range.n_kvs; i++)
                n += assignment_from_kv(range.kvs + i, node, l + n) >= 0;
        if (ret_damaged)
                *ret_damaged = (unsigned) (range.n_kvs - n);
        if (ret_revision)
                *ret_revision = range.revision;
        *ret = l;
        *ret_n = n;
        return 0;
}

/* One try: 1 deleted, 0 changed meanwhile (look again). */
static int delete_once(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i, const char *key,
                       NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *request = NULL;
        EtcdKeyValue kv = {};
        NapAssignment a = {};
        int r = etcd_get(c, key, &kv, e);
        if (r == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT, "No assignment of %s to node %s",
                                     nap_instance_name(i, name), node);
        if (r < 0)
                return r;
        /* its request key goes with it; a damaged record just goes */
        if (nap_assignment_from_json(kv.value, kv.value_size, &a, NULL) >= 0 && !isempty(a.request))
                request = nap_key_request(prefix, &i->service, a.request);
        const EtcdTxnCompare cmp = { .key = key, .target = ETCD_COMPARE_MOD_REVISION, .revision = kv.mod_revision };
        const EtcdTxnOp ops[] = { { .type = ETCD_TXN_DELETE, .key = key },
                                  { .type = ETCD_TXN_DELETE, .key = request } };
        r = etcd_txn(c, &cmp, 1, ops, request ? 2 : 1, NULL, e);
        etcd_key_value_done(&kv);
        nap_assignment_done(&a);
        return r;
}

int nap_assignment_delete(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i, NapError *e) {
        _cleanup_free_ char *key = nap_key_assignment(prefix, node, i);
        assert(c);
        int r = nap_node_name_check(node, e);
        if (r < 0)
                return r;
        if (!key)
                return oom(e);
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++)
                if ((r = delete_once(c, prefix, node, i, key, e)) != 0)
                        return r < 0 ? r : 0;
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                             "Deleting the assignment lost to other writers %u times; try again",
                             NAP_INVENTORY_RETRIES);
}

/* ---- observed state --------------------------------------------------- */

int nap_observed_put(EtcdClient *c, const char *prefix, const NapObserved *o, int64_t lease, NapError *e) {
        _cleanup_free_ char *key = nap_key_observed(prefix, o->node, &o->instance), *value = NULL;
        assert(c);
        if (!key || nap_observed_to_json(o, &value) < 0)
                return oom(e);
        return etcd_put(c, key, value, strlen(value), lease, NULL, e);
}

int nap_observed_delete(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i, NapError *e) {
        _cleanup_free_ char *key = nap_key_observed(prefix, node, i);
        assert(c);
        return key ? etcd_delete(c, key, false, NULL, e) : oom(e);
}

int nap_observed_list(EtcdClient *c, const char *prefix, const char *node, NapObserved **ret, size_t *ret_n,
                      NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = nap_key_observeds(prefix, node);
        NapObserved *l = NULL;
        size_t n = 0;
        assert(c);
        assert(ret);
        assert(ret_n);
        int r = nap_node_name_check(node, e);
        if (r >= 0)
                r = dir ? etcd_range_prefix(c, dir, 0, false, &range, e) : oom(e);
        if (r >= 0 && !(l = calloc(range.n_kvs ?: 1, sizeof *l)))
                r = oom(e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < range.n_kvs; i++)
                n += nap_observed_from_json(range.kvs[i].value, range.kvs[i].value_size, l + n, NULL) >= 0;
        *ret = l;
        *ret_n = n;
        return 0;
}

typedef struct ObservedWait {
        uint64_t generation;
        NapObservedState want; /* -1: any final state */
        bool gone;             /* until the report is deleted instead */
        NapObserved last;  /* the last report seen; state -1: none */
} ObservedWait;

/* A report that ends the wait: of the generation waited for, and the
 * state wanted, or failed (or, wanting none, any but activating). */
static bool observed_settled(const NapObserved *o, const ObservedWait *w) {
        if (o->generation < w->generation)
                return false;
        if (w->want < 0)
                return o->state != NAP_OBSERVED_ACTIVATING;
        return o->state == w->want || o->state == NAP_OBSERVED_FAILED;
}

/* 1: settled (in w->last); 0: not yet. Damaged reports are not settled. */
static int observed_take(ObservedWait *w, const char *value, size_t size) {
        NapObserved o = {};
        if (nap_observed_from_json(value, size, &o, NULL) < 0)
                return 0;
        nap_observed_done(&w->last);
        w->last = o;
        return observed_settled(&o, w);
}

static int on_observed(const EtcdEvent *event, void *userdata) {
        ObservedWait *w = userdata;
        if (w->gone)
                return event->type == ETCD_EVENT_DELETE;
        return event->type == ETCD_EVENT_PUT ? observed_take(w, event->kv.value, event->kv.value_size) : 0;
}

static int observed_wait_timeout(const ObservedWait *w, const char *node, const NapInstance *i,
                                 uint64_t timeout_usec, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        const char *state = w->last.state >= 0 ? nap_observed_state_to_string(w->last.state) : NULL;
        if (w->gone)
                return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT, "Node %s did not remove %s within %" PRIu64
                                     " s", node, nap_instance_name(i, name), timeout_usec / 1000000);
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT, "Node %s did not report %s %s within %" PRIu64
                             " s (last reported: %s)", node, nap_instance_name(i, name),
                             w->want < 0 ? "running" : nap_observed_state_to_string(w->want), timeout_usec / 1000000,
                             state ?: "nothing");
}

int nap_observed_wait(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                      uint64_t generation, uint64_t timeout_usec, NapObserved *ret, NapError *e) {
        return nap_observed_wait_state(c, prefix, node, i, generation, _NAP_OBSERVED_STATE_INVALID, timeout_usec, ret,
                                       e);
}

/* A wait that lost its etcd member (killed, or without a leader during an
 * election) tries again this often, on whichever member answers. */
#define OBSERVED_AWAY_RETRY_USEC (250ULL * 1000ULL)

/* The report as it is now: 1 settled, 0 not yet; *revision the read's. */
static int observed_read(EtcdClient *c, char *key, ObservedWait *w, int64_t *revision, NapError *e) {
        char *keys[] = { key, NULL };
        EtcdKeyValue kv = {};
        int r = etcd_get_many(c, keys, &kv, revision, e);
        if (r >= 0 && w->gone)
                r = r == 0; /* absent: gone already */
        else if (r > 0)
                r = observed_take(w, kv.value, kv.value_size);
        etcd_key_value_done(&kv);
        return r;
}

/* The read first, then watches from its revision; 1 settled, 0 not yet. */
static int observed_step(EtcdClient *c, char *key, ObservedWait *w, int64_t *revision, uint64_t deadline,
                         NapError *e) {
        if (*revision == 0)
                return observed_read(c, key, w, revision, e);
        EtcdWatchOptions o = { .start_revision = *revision + 1, .duration_usec = deadline - monotonic_usec(),
                               .on_event = on_observed, .userdata = w };
        int r = etcd_watch(c, key, &o, revision, e);
        *revision = *revision > 0 ? *revision - 1 : *revision; /* one past the last seen: from there */
        return r;
}

static void observed_pause(uint64_t deadline) {
        uint64_t now = monotonic_usec(), usec = MIN(OBSERVED_AWAY_RETRY_USEC, deadline > now ? deadline - now : 0);
        struct timespec ts = { .tv_sec = (time_t) (usec / USEC_PER_SEC), .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000 };
        (void) nanosleep(&ts, NULL);
}

/* Until w says the wait is over (1), or the time is up (UnitFailed; or
 * NotAvailable when etcd did not answer at the end). An etcd member lost
 * meanwhile does not end the wait: the report is read or watched again
 * from where it was, on another member. */
static int observed_wait(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i, ObservedWait *w,
                         uint64_t timeout_usec, NapError *e) {
        _cleanup_free_ char *key = nap_key_observed(prefix, node, i);
        NapError away = NAP_ERROR_NULL;
        int64_t revision = 0;
        uint64_t deadline = monotonic_usec() + timeout_usec;
        int r = 0;
        assert(c);
        if (!key)
                return oom(e);
        while (r == 0 && monotonic_usec() < deadline) {
                NapError le = NAP_ERROR_NULL;
                r = observed_step(c, key, w, &revision, deadline, &le);
                if (r < 0 && le.kind != NAP_ERROR_NOT_AVAILABLE)
                        return nap_error_set(e, le.kind, r, "%s", le.message);
                away = r < 0 ? le : NAP_ERROR_NULL;
                if (r < 0) {
                        r = 0;
                        observed_pause(deadline);
                }
        }
        if (r == 0 && nap_error_is_set(&away))
                return nap_error_set(e, away.kind, -away.errnum, "%s", away.message);
        if (r == 0)
                r = observed_wait_timeout(w, node, i, timeout_usec, e);
        return r;
}

int nap_observed_wait_state(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                            uint64_t generation, NapObservedState want, uint64_t timeout_usec, NapObserved *ret,
                            NapError *e) {
        ObservedWait w = { .generation = generation, .want = want, .last.state = _NAP_OBSERVED_STATE_INVALID };
        assert(ret);
        int r = observed_wait(c, prefix, node, i, &w, timeout_usec, e);
        if (r < 0)
                return nap_observed_done(&w.last), r;
        *ret = w.last;
        return 0;
}

int nap_observed_wait_gone(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                           uint64_t timeout_usec, NapError *e) {
        ObservedWait w = { .gone = true, .last.state = _NAP_OBSERVED_STATE_INVALID };
        int r = observed_wait(c, prefix, node, i, &w, timeout_usec, e);
        nap_observed_done(&w.last);
        return r < 0 ? r : 0;
}

/* ---- app sources (trees reach hosts) ---------------------------------- */

void nap_app_source_done(NapAppSource *s) {
        if (!s)
                return;
        free(s->url);
        *s = (NapAppSource) {};
}

static bool url_ok(const char *s) {
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

static bool source_commit_ok(const char *s) {
        return nap_commit_is_valid(s);
}

int nap_app_source_to_json(const NapAppSource *s, char **ret) {
        char name[NAP_SERVICE_NAME_MAX];
        assert(s);
        assert(ret);
        return nap_cluster_json_dump(json_pack("{s:s, s:s, s:s, s:b, s:s, s:I}", "app",
                                               nap_service_name(&s->service, name), "url", s->url, "commit",
                                               s->commit, "pushed", s->pushed, "node", s->node, "time",
                                               (json_int_t) s->time_usec),
                                     ret);
}

static int url_field(json_t *o, char **ret) {
        const char *s = nap_cluster_json_string(o, "url", NAP_URL_MAX);
        if (!s || !url_ok(s))
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int source_fields(json_t *o, NapAppSource *s, const char **field) {
        const char *app = (*field = "app", nap_cluster_json_string(o, "app", NAP_SERVICE_NAME_MAX));
        int r = app && nap_service_parse(app, &s->service, NULL) >= 0 ? 0 : -EBADMSG;
        if (r >= 0)
                r = (*field = "url", url_field(o, &s->url));
        if (r >= 0)
                r = (*field = "commit", string_field(o, *field, s->commit, sizeof s->commit, source_commit_ok));
        if (r >= 0 && (*field = "pushed", !json_is_boolean(json_object_get(o, *field))))
                r = -EBADMSG;
        if (r >= 0)
                s->pushed = json_is_true(json_object_get(o, *field));
        if (r >= 0)
                r = (*field = "node", string_field(o, *field, s->node, sizeof s->node, node_ok));
        if (r >= 0)
                r = (*field = "time", nap_cluster_json_u64(o, *field, UINT64_MAX >> 1, &s->time_usec));
        return r;
}

int nap_app_source_from_json(const char *text, size_t size, NapAppSource *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapAppSource s = {};
        const char *field = NULL;
        assert(ret);
        int r = nap_cluster_json_load(text, size, &o, "app source", e);
        if (r < 0)
                return r;
        r = source_fields(o, &s, &field);
        if (r < 0) {
                nap_app_source_done(&s);
                return r == -ENOMEM ? oom(e) : nap_cluster_json_damaged(e, "app source", field);
        }
        *ret = s;
        return 0;
}

char *nap_key_app_source(const char *prefix, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX];
        return strdup_printf("%s/apps/%s", prefix, nap_service_name(s, name));
}

static int app_source_check(const NapAppSource *s, NapError *e) {
        NapService checked;
        int r = nap_service_from_parts(s->service.user, s->service.app, &checked, e);
        if (r >= 0 && (!url_ok(s->url) || strlen(s->url) > NAP_URL_MAX))
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                  "Invalid URL for an app source (1 to %u bytes, no control characters)", NAP_URL_MAX);
        if (r >= 0 && !nap_commit_is_valid(s->commit))
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                  "Invalid commit for an app source (40 lowercase hex digits)");
        if (r >= 0)
                r = nap_node_name_check(s->node, e);
        return r;
}

int nap_app_source_put(EtcdClient *c, const char *prefix, const NapAppSource *s, NapError *e) {
        _cleanup_free_ char *key = NULL, *value = NULL;
        assert(c);
        assert(s);
        int r = app_source_check(s, e);
        if (r < 0)
                return r;
        key = nap_key_app_source(prefix, &s->service);
        if (!key || nap_app_source_to_json(s, &value) < 0)
                return oom(e);
        return etcd_put(c, key, value, strlen(value), 0, NULL, e);
}

int nap_app_source_get(EtcdClient *c, const char *prefix, const NapService *s, NapAppSource *ret, NapError *e) {
        _cleanup_free_ char *key = nap_key_app_source(prefix, s);
        EtcdKeyValue kv = {};
        assert(c);
        assert(ret);
        *ret = (NapAppSource) {};
        int r = key ? etcd_get(c, key, &kv, e) : oom(e);
        if (r > 0) {
                r = nap_app_source_from_json(kv.value, kv.value_size, ret, e);
                if (r >= 0 && memcmp(&ret->service, s, sizeof *s) != 0) {
                        nap_app_source_done(ret);
                        r = nap_cluster_json_damaged(e, "app source", "app (not the key's)");
                }
                r = r < 0 ? r : 1;
        }
        etcd_key_value_done(&kv);
        return r;
}

void nap_app_source_array_free(NapAppSource *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_app_source_done(l + i);
        free(l);
}

/* kv's record, when it parses and its app is the key's. */
static int app_source_from_kv(const char *prefix, const EtcdKeyValue *kv, NapAppSource *ret) {
        _cleanup_free_ char *key = NULL;
        int r = nap_app_source_from_json(kv->value, kv->value_size, ret, NULL);
        if (r < 0)
                return r;
        key = nap_key_app_source(prefix, &ret->service);
        if (!key || !streq(key, kv->key)) {
                nap_app_source_done(ret);
                return -EBADMSG;
        }
        return 0;
}

int nap_app_sources_list(EtcdClient *c, const char *prefix, const char *user, NapAppSource **ret, size_t *ret_n,
                         NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = NULL;
        NapAppSource *l = NULL;
        size_t n = 0;
        assert(c);
        assert(ret);
        assert(ret_n);
        if (!nap_user_is_valid(user))
                return nap_service_from_parts(user, "x", &(NapService) {}, e);
        dir = strdup_printf("%s/apps/%s_", prefix, user);
        int r = dir ? etcd_range_prefix(c, dir, 0, false, &range, e) : oom(e);
        if (r >= 0 && !(l = calloc(range.n_kvs ?: 1, sizeof *l)))
                r = oom(e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < range.n_kvs; i++)
                n += app_source_from_kv(prefix, range.kvs + i, l + n) >= 0;
        *ret = l;
        *ret_n = n;
        return 0;
}

/* ---- every node's (shared with the operations from any host) ---------- */

/* The node a key under dir (PREFIX/assignments/ or PREFIX/observed/)
 * names, into node: "" when the key is not NODE/INSTANCE. */
static void node_of_key(const char *key, size_t dir_len, char node[static NAP_NODE_NAME_MAX + 1]) {
        const char *rest = key + dir_len, *slash = strchr(rest, '/');
        size_t len = slash ? (size_t) (slash - rest) : 0;
        node[0] = 0;
        if (len > 0 && len <= NAP_NODE_NAME_MAX) {
                memcpy(node, rest, len);
                node[len] = 0;
        }
}

/* The keys under PREFIX/WHAT/ (ret_dir_len: that prefix's length), and an
 * array of as many elements of size, zeroed, for what they hold. */
static int range_all(EtcdClient *c, const char *prefix, const char *what, size_t size, EtcdRange *range,
                     size_t *ret_dir_len, void **ret, NapError *e) {
        _cleanup_free_ char *dir = strdup_printf("%s/%s/", prefix, what);
        assert(c);
        int r = dir ? etcd_range_prefix(c, dir, 0, false, range, e) : oom(e);
        if (r >= 0 && !(*ret = calloc(range->n_kvs ?: 1, size)))
                r = oom(e);
        if (r >= 0)
                *ret_dir_len = strlen(dir);
        return r;
}

int nap_assignments_list_all(EtcdClient *c, const char *prefix, NapAssignment **ret, size_t *ret_n,
                             int64_t *ret_revision, unsigned *ret_damaged, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        char node[NAP_NODE_NAME_MAX + 1];
        NapAssignment *l = NULL;
        size_t n = 0, dir_len = 0;
        assert(ret);
        assert(ret_n);
        int r = range_all(c, prefix, "assignments", sizeof *l, &range, &dir_len, (void **) &l, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < range.n_kvs; i++) {
                node_of_key(range.kvs[i].key, dir_len, node);
                n += assignment_from_kv(range.kvs + i, node, l + n) >= 0;
        }
        if (ret_damaged)
                *ret_damaged = (unsigned) (range.n_kvs - n);
        if (ret_revision)
                *ret_revision = range.revision;
        *ret = l;
        *ret_n = n;
        return 0;
}

int nap_observed_list_all(EtcdClient *c, const char *prefix, NapObserved **ret, size_t *ret_n, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        char node[NAP_NODE_NAME_MAX + 1];
        NapObserved *l = NULL;
        size_t n = 0, dir_len = 0;
        assert(ret);
        assert(ret_n);
        int r = range_all(c, prefix, "observed", sizeof *l, &range, &dir_len, (void **) &l, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < range.n_kvs; i++) {
                node_of_key(range.kvs[i].key, dir_len, node);
                if (nap_observed_from_json(range.kvs[i].value, range.kvs[i].value_size, l + n, NULL) < 0)
                        continue;
                if (streq(l[n].node, node)) /* a report under another node's name is damage */
                        n++;
                else
                        nap_observed_done(l + n);
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* What a change does to an assignment: true if it changed anything. */
typedef bool (*AssignmentChange)(NapAssignment *a, bool enabled);

static bool change_enabled(NapAssignment *a, bool enabled) {
        bool changed = a->enabled != enabled;
        a->enabled = enabled;
        return changed;
}

static bool change_restart(NapAssignment *a, bool enabled) {
        a->enabled = enabled;
        a->restart = ++a->generation;
        return true;
}

/* One try: 1 written (or already so), 0 changed meanwhile. */
static int change_once(EtcdClient *c, const char *key, AssignmentChange change, bool enabled, NapAssignment *ret,
                       NapError *e) {
        _cleanup_free_ char *value = NULL;
        char node[NAP_NODE_NAME_MAX + 1];
        EtcdKeyValue kv = {};
        NapAssignment a = {};
        snprintf(node, sizeof node, "%s", ret->node);
        int r = etcd_get(c, key, &kv, e);
        if (r == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT, "No assignment %s", key);
        if (r > 0 && assignment_from_kv(&kv, node, &a) < 0)
                r = nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "The assignment %s is damaged", key);
        etcd_key_value_done(&kv);
        if (r < 0)
                return r;
        if (change(&a, enabled)) {
                const EtcdTxnCompare cmp = { .key = key, .target = ETCD_COMPARE_MOD_REVISION, .revision = a.mod_revision };
                r = nap_assignment_to_json(&a, &value) < 0 ? oom(e) : 0;
                const EtcdTxnOp op = { .type = ETCD_TXN_PUT, .key = key, .value = value, .value_size = value ? strlen(value) : 0 };
                if (r >= 0)
                        r = etcd_txn(c, &cmp, 1, &op, 1, &a.mod_revision, e);
        } else
                r = 1;
        if (r > 0) {
                nap_assignment_done(ret);
                *ret = a;
        } else
                nap_assignment_done(&a);
        return r;
}

static int change_assignment(EtcdClient *c, const char *prefix, NapAssignment *a, AssignmentChange change,
                             bool enabled, NapError *e) {
        _cleanup_free_ char *key = nap_key_assignment(prefix, a->node, &a->instance);
        assert(c);
        if (!key)
                return oom(e);
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++) {
                int r = change_once(c, key, change, enabled, a, e);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                             "Changing the assignment lost to other writers %u times; try again",
                             NAP_INVENTORY_RETRIES);
}

int nap_assignment_set_enabled(EtcdClient *c, const char *prefix, NapAssignment *a, bool enabled, NapError *e) {
        return change_assignment(c, prefix, a, change_enabled, enabled, e);
}

int nap_assignment_restart(EtcdClient *c, const char *prefix, NapAssignment *a, NapError *e) {
        return change_assignment(c, prefix, a, change_restart, true, e);
}

int nap_assignment_find(EtcdClient *c, const char *prefix, const NapInstance *i, NapAssignment *ret, NapError *e) {
        char name[NAP_UNIT_NAME_MAX], other[NAP_UNIT_NAME_MAX];
        NapAssignment *l = NULL;
        size_t n = 0;
        int r = nap_assignments_list_all(c, prefix, &l, &n, NULL, NULL, e);
        if (r < 0)
                return r;
        nap_instance_name(i, name);
        r = 0;
        for (size_t k = 0; k < n && r == 0; k++)
                if (streq(nap_instance_name(&l[k].instance, other), name)) {
                        *ret = l[k];
                        l[k] = (NapAssignment) {};
                        r = 1;
                }
        nap_assignment_array_free(l, n);
        return r;
}

/* ---- guarded writes (rollouts the reconciler's leader finishes) ------- */

int nap_assignment_create_guarded(EtcdClient *c, const char *prefix, NapAssignment *a, const EtcdTxnCompare *guard,
                                  size_t n_guard, NapError *e) {
        return assignment_create(c, prefix, a, guard, n_guard, e);
}

int nap_assignment_delete_guarded(EtcdClient *c, const char *prefix, const NapAssignment *a,
                                  const EtcdTxnCompare *guard, size_t n_guard, NapError *e) {
        _cleanup_free_ char *key = nap_key_assignment(prefix, a->node, &a->instance),
                            *request = isempty(a->request) ? NULL
                                                           : nap_key_request(prefix, &a->instance.service, a->request);
        assert(c);
        assert(a->mod_revision > 0);
        assert(n_guard <= 2);
        if (!key || (!isempty(a->request) && !request))
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                { .key = key, .target = ETCD_COMPARE_MOD_REVISION, .revision = a->mod_revision },
                n_guard > 0 ? guard[0] : (EtcdTxnCompare) {},
                n_guard > 1 ? guard[1] : (EtcdTxnCompare) {},
        };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_DELETE, .key = key },
                { .type = ETCD_TXN_DELETE, .key = request },
        };
        return etcd_txn(c, cmp, 1 + n_guard, ops, request ? 2 : 1, NULL, e);
}

int nap_assignment_copy(const NapAssignment *a, NapAssignment *ret) {
        _cleanup_free_ char *text = NULL;
        int r = nap_assignment_to_json(a, &text);
        if (r < 0)
                return r;
        r = nap_assignment_from_json(text, strlen(text), ret, NULL);
        if (r >= 0)
                ret->mod_revision = a->mod_revision;
        return r < 0 ? -ENOMEM : 0;
}
