/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/strv.h"
#include "model/node.h"

/* ---- names ------------------------------------------------------------ */

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int nap_node_name_check(const char *s, NapError *e) {
        size_t n = s ? strlen(s) : 0;
        bool ok = n > 0 && n <= NAP_NODE_NAME_MAX && is_lower_alnum(s[0]) && is_lower_alnum(s[n - 1]);
        for (size_t i = 0; ok && i < n; i++)
                ok = is_lower_alnum(s[i]) || s[i] == '-';
        if (!ok)
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid node name '%.80s': expected a DNS label (a-z, 0-9, '-', at most %d)",
                                     s ?: "", NAP_NODE_NAME_MAX);
        return 0;
}

static bool reservation_char_ok(char c) {
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || strchr("_.@-", c);
}

int nap_reservation_name_check(const char *s, char *ret_user, NapError *e) {
        const char *sep = s ? strchr(s, '_') : NULL;
        size_t user_len = sep ? (size_t) (sep - s) : 0, n = s ? strlen(s) : 0;
        char user[NAP_USER_MAX + 1];
        bool ok = sep && user_len <= NAP_USER_MAX && n > user_len + 1 && n <= NAP_RESERVATION_NAME_MAX;

        for (size_t i = 0; ok && i < n; i++)
                ok = reservation_char_ok(s[i]);
        if (ok) {
                snprintf(user, sizeof user, "%.*s", (int) user_len, s);
                ok = nap_user_is_valid(user);
        }
        if (!ok)
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid reservation name '%.80s': expected USER_NAME (A-Z, a-z, 0-9, '_', "
                                     "'.', '@', '-'), its user the owner",
                                     s ?: "");
        if (ret_user)
                memcpy(ret_user, user, user_len + 1);
        return 0;
}

/* ---- JSON helpers ----------------------------------------------------- */

int nap_cluster_json_damaged(NapError *e, const char *what, const char *field) {
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "A %s in etcd is damaged: field '%s'", what, field);
}

int nap_cluster_json_u64(json_t *o, const char *field, uint64_t max, uint64_t *ret) {
        json_t *v = json_object_get(o, field);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
                return -EBADMSG;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

const char *nap_cluster_json_string(json_t *o, const char *field, size_t max) {
        const char *s = json_string_value(json_object_get(o, field));
        return s && strlen(s) <= max && strlen(s) == json_string_length(json_object_get(o, field)) ? s : NULL;
}

int nap_cluster_json_load(const char *text, size_t size, json_t **ret, const char *what, NapError *e) {
        if (!text || size > NAP_CLUSTER_VALUE_MAX)
                return nap_cluster_json_damaged(e, what, "(size)");
        *ret = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        return json_is_object(*ret) ? 0 : nap_cluster_json_damaged(e, what, "(not a JSON object)");
}

int nap_cluster_json_dump(json_t *o, char **ret) {
        if (!o)
                return -ENOMEM;
        *ret = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        return *ret ? 0 : -ENOMEM;
}

/* ---- labels ----------------------------------------------------------- */

static bool label_ok(const char *kv) {
        const char *eq = strchr(kv, '=');
        size_t k = eq ? (size_t) (eq - kv) : 0, v = eq ? strlen(eq + 1) : 0;
        bool ok = k > 0 && k <= 63 && v <= 63 && is_lower_alnum(kv[0]);
        for (size_t i = 1; ok && i < k; i++)
                ok = is_lower_alnum(kv[i]) || strchr("._-", kv[i]);
        for (size_t i = 0; ok && i < v; i++)
                ok = reservation_char_ok(eq[1 + i]) && eq[1 + i] != '@' && eq[1 + i] != '_';
        return ok;
}

static bool labels_unique(char *const *l) {
        for (size_t i = 1; l && l[i]; i++)
                if (strcspn(l[i], "=") == strcspn(l[i - 1], "=") && strncmp(l[i], l[i - 1], strcspn(l[i], "=")) == 0)
                        return false;
        return true;
}

int nap_labels_parse(const char *s, char ***ret, NapError *e) {
        _cleanup_strv_free_ char **l = NULL;
        assert(ret);
        if (s && *s && !(l = strv_split(s, ',')))
                return nap_error_errno(e, -ENOMEM, "Failed to read labels");
        strv_sort(l);
        bool ok = strv_length(l) <= NAP_LABELS_MAX && labels_unique(l);
        STRV_FOREACH(kv, l)
                ok = ok && label_ok(*kv);
        if (!ok)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Invalid labels '%.120s': expected key=value,… (keys a-z 0-9 . _ -, unique, "
                                     "at most %d)",
                                     s ?: "", NAP_LABELS_MAX);
        *ret = TAKE_PTR(l);
        return 0;
}

bool nap_labels_match(char *const *labels, char *const *selector) {
        STRV_FOREACH(want, selector)
                if (!strv_contains(labels, *want))
                        return false;
        return true;
}

json_t *nap_labels_json(char *const *labels) {
        json_t *o = json_object();
        STRV_FOREACH(kv, labels) {
                size_t k = strcspn(*kv, "=");
                if (o && json_object_setn_new(o, *kv, k, json_string(*kv + k + 1)) < 0)
                        o = (json_decref(o), NULL);
        }
        return o;
}

static int labels_from_json(json_t *o, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const char *k;
        json_t *v;
        if (!json_is_object(o) || json_object_size(o) > NAP_LABELS_MAX)
                return -EBADMSG;
        json_object_foreach(o, k, v) {
                _cleanup_free_ char *kv = NULL;
                if (!json_is_string(v) || asprintf(&kv, "%s=%s", k, json_string_value(v)) < 0 || !label_ok(kv) ||
                    strv_consume(&l, TAKE_PTR(kv)) < 0)
                        return -EBADMSG;
        }
        strv_sort(l);
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- nodes ------------------------------------------------------------ */

void nap_node_done(NapNode *n) {
        if (!n)
                return;
        free(n->address);
        strv_free(n->labels);
        free(n->version);
        *n = (NapNode) {};
}

int nap_node_to_json(const NapNode *n, char **ret) {
        assert(n);
        assert(ret);
        json_t *labels = nap_labels_json(n->labels);
        if (!labels)
                return -ENOMEM;
        return nap_cluster_json_dump(
                json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I}, s:o, s:s, s:I}", "name", n->name, "address",
                              n->address ?: "", "machine_id", n->machine_id, "boot_id", n->boot_id, "capacity",
                              "cpu_milli", (json_int_t) n->capacity.cpu_milli, "memory",
                              (json_int_t) n->capacity.memory, "storage", (json_int_t) n->capacity.storage, "labels",
                              labels, "version", n->version ?: "", "registered", (json_int_t) n->registered_usec),
                    ret);
}

static int id128_copy(char dst[static 33], const char *s) {
        if (!s || strlen(s) != 32 || strspn(s, "0123456789abcdef") != 32)
                return -EBADMSG;
        memcpy(dst, s, 33);
        return 0;
}

static int capacity_from_json(json_t *c, NapCapacity *ret) {
        int r = nap_cluster_json_u64(c, "cpu_milli", NAP_CPU_MILLI_MAX, &ret->cpu_milli);
        if (r >= 0)
                r = nap_cluster_json_u64(c, "memory", NAP_BYTES_MAX, &ret->memory);
        if (r >= 0)
                r = nap_cluster_json_u64(c, "storage", NAP_BYTES_MAX, &ret->storage);
        return r;
}

int nap_node_from_json(const char *text, size_t size, NapNode *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapNode n = {};
        const char *name, *field = "name";

        assert(ret);
        int r = nap_cluster_json_load(text, size, &o, "node record", e);
        if (r < 0)
                return r;
        name = nap_cluster_json_string(o, "name", NAP_NODE_NAME_MAX);
        r = name && nap_node_name_check(name, NULL) >= 0 ? 0 : -EBADMSG;
        if (r >= 0) {
                memcpy(n.name, name, strlen(name) + 1);
                field = "address";
                const char *address = nap_cluster_json_string(o, "address", 255);
                n.address = address ? strdup(address) : NULL;
                r = n.address ? 0 : -EBADMSG;
        }
        if (r >= 0 && (field = "machine_id", r = id128_copy(n.machine_id, nap_cluster_json_string(o, field, 32))) >= 0)
                field = "boot_id", r = id128_copy(n.boot_id, nap_cluster_json_string(o, field, 32));
        if (r >= 0)
                field = "capacity", r = capacity_from_json(json_object_get(o, field), &n.capacity);
        if (r >= 0)
                field = "labels", r = labels_from_json(json_object_get(o, field), &n.labels);
        if (r >= 0 && (field = "version", !nap_cluster_json_string(o, field, 64)))
                r = -EBADMSG;
        if (r >= 0 && !(n.version = strdup(nap_cluster_json_string(o, field, 64))))
                r = -ENOMEM;
        if (r >= 0)
                field = "registered", r = nap_cluster_json_u64(o, field, UINT64_MAX >> 1, &n.registered_usec);
        if (r < 0) {
                nap_node_done(&n);
                return r == -ENOMEM ? nap_error_errno(e, r, "Failed to read a node record")
                                    : nap_cluster_json_damaged(e, "node record", field);
        }
        *ret = n;
        return 0;
}

/* ---- usage ------------------------------------------------------------ */

int nap_usage_to_json(const NapUsage *u, char **ret) {
        assert(u);
        assert(ret);
        return nap_cluster_json_dump(json_pack("{s:I, s:I, s:I}", "cpu_milli", (json_int_t) u->cpu_milli, "memory",
                              (json_int_t) u->memory, "storage", (json_int_t) u->storage),
                    ret);
}

int nap_usage_from_json(const char *text, size_t size, NapUsage *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapCapacity c = {};
        assert(ret);
        int r = nap_cluster_json_load(text, size, &o, "usage record", e);
        if (r < 0)
                return r;
        /* The sums of requests: each at most a maximum, and there can be
         * many; anything up to 2^62 is a plausible total. */
        r = capacity_from_json(o, &c);
        if (r < 0)
                return nap_cluster_json_damaged(e, "usage record", "cpu_milli/memory/storage");
        *ret = (NapUsage) { .cpu_milli = c.cpu_milli, .memory = c.memory, .storage = c.storage };
        return 0;
}

void nap_usage_add(NapUsage *u, const NapReservation *r) {
        u->cpu_milli += r->kind == NAP_RESERVATION_COMPUTE ? r->compute.request_cpu_milli : 0;
        u->memory += r->kind == NAP_RESERVATION_COMPUTE ? r->compute.request_memory : 0;
        u->storage += r->kind == NAP_RESERVATION_STORAGE ? r->storage.request_bytes : 0;
}

static uint64_t minus(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

void nap_usage_remove(NapUsage *u, const NapReservation *r) {
        u->cpu_milli = minus(u->cpu_milli, r->kind == NAP_RESERVATION_COMPUTE ? r->compute.request_cpu_milli : 0);
        u->memory = minus(u->memory, r->kind == NAP_RESERVATION_COMPUTE ? r->compute.request_memory : 0);
        u->storage = minus(u->storage, r->kind == NAP_RESERVATION_STORAGE ? r->storage.request_bytes : 0);
}

/* ---- reservations ----------------------------------------------------- */

const char *nap_reservation_kind_to_string(NapReservationKind k) {
        static const char *const names[] = { [NAP_RESERVATION_COMPUTE] = "compute",
                                             [NAP_RESERVATION_STORAGE] = "storage" };
        return k >= 0 && k < _NAP_RESERVATION_KIND_MAX ? names[k] : NULL;
}

int nap_reservation_to_json(const NapReservation *r, char **ret) {
        assert(r);
        assert(ret);
        if (r->kind == NAP_RESERVATION_STORAGE)
                return nap_cluster_json_dump(json_pack("{s:I, s:I, s:I}", "request_bytes",
                                                       (json_int_t) r->storage.request_bytes, "limit_bytes",
                                                       (json_int_t) r->storage.limit_bytes, "created",
                                                       (json_int_t) r->created_usec),
                            ret);
        return nap_cluster_json_dump(json_pack("{s:I, s:I, s:I, s:I, s:I}", "request_cpu_milli",
                              (json_int_t) r->compute.request_cpu_milli, "limit_cpu_milli",
                              (json_int_t) r->compute.limit_cpu_milli, "request_memory",
                              (json_int_t) r->compute.request_memory, "limit_memory",
                              (json_int_t) r->compute.limit_memory, "created", (json_int_t) r->created_usec),
                    ret);
}

int nap_compute_from_json(json_t *o, NapCompute *c) {
        int r = nap_cluster_json_u64(o, "request_cpu_milli", NAP_CPU_MILLI_MAX, &c->request_cpu_milli);
        if (r >= 0)
                r = nap_cluster_json_u64(o, "limit_cpu_milli", NAP_CPU_MILLI_MAX, &c->limit_cpu_milli);
        if (r >= 0)
                r = nap_cluster_json_u64(o, "request_memory", NAP_BYTES_MAX, &c->request_memory);
        if (r >= 0)
                r = nap_cluster_json_u64(o, "limit_memory", NAP_BYTES_MAX, &c->limit_memory);
        return r;
}

static int storage_from_json(json_t *o, NapStorage *s) {
        int r = nap_cluster_json_u64(o, "request_bytes", NAP_BYTES_MAX, &s->request_bytes);
        return r < 0 ? r : nap_cluster_json_u64(o, "limit_bytes", NAP_BYTES_MAX, &s->limit_bytes);
}

/* ret->kind says which fields to read; name and node are left alone. */
int nap_reservation_from_json(const char *text, size_t size, NapReservation *ret, NapError *e) {
        json_auto_t *o = NULL;
        assert(ret);
        int r = nap_cluster_json_load(text, size, &o, "reservation", e);
        if (r < 0)
                return r;
        r = ret->kind == NAP_RESERVATION_STORAGE ? storage_from_json(o, &ret->storage)
                                                 : nap_compute_from_json(o, &ret->compute);
        if (r >= 0)
                r = nap_cluster_json_u64(o, "created", UINT64_MAX >> 1, &ret->created_usec);
        return r < 0 ? nap_cluster_json_damaged(e, "reservation", "(requests, limits or created)") : 0;
}

bool nap_reservation_same(const NapReservation *a, const NapReservation *b) {
        return a->kind == b->kind && (a->kind == NAP_RESERVATION_STORAGE
                                              ? memcmp(&a->storage, &b->storage, sizeof a->storage) == 0
                                              : memcmp(&a->compute, &b->compute, sizeof a->compute) == 0);
}

/* ---- status ----------------------------------------------------------- */

void nap_node_status_done(NapNodeStatus *s) {
        if (!s)
                return;
        free(s->reason);
        s->reason = NULL;
}

int nap_node_status_to_json(const NapNodeStatus *s, char **ret) {
        assert(s);
        assert(ret);
        return nap_cluster_json_dump(
                json_pack("{s:s, s:I}", "reason", s->reason ?: "", "since", (json_int_t) s->since_usec), ret);
}

int nap_node_status_from_json(const char *text, size_t size, NapNodeStatus *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapNodeStatus s = {};
        assert(ret);
        int r = nap_cluster_json_load(text, size, &o, "node status", e);
        if (r < 0)
                return r;
        const char *reason = nap_cluster_json_string(o, "reason", 256);
        if (!reason || nap_cluster_json_u64(o, "since", UINT64_MAX >> 1, &s.since_usec) < 0)
                return nap_cluster_json_damaged(e, "node status", "reason/since");
        if (!(s.reason = strdup(reason)))
                return nap_error_errno(e, -ENOMEM, "Failed to read a node status");
        *ret = s;
        return 0;
}

/* ---- keys ------------------------------------------------------------- */

static char *key_join(const char *prefix, const char *dir, const char *a, const char *b, const char *c) {
        char *k = NULL;
        if (asprintf(&k, "%s/%s/%s%s%s%s%s", prefix, dir, a ?: "", b ? "/" : "", b ?: "", c ? "/" : "", c ?: "") < 0)
                return NULL;
        return k;
}

char *nap_key_node(const char *prefix, const char *node) {
        return key_join(prefix, "nodes", node, NULL, NULL);
}

char *nap_key_nodes(const char *prefix) {
        return key_join(prefix, "nodes", NULL, NULL, NULL);
}

char *nap_key_member(const char *prefix, const char *node) {
        return key_join(prefix, "members", node, NULL, NULL);
}

char *nap_key_members(const char *prefix) {
        return key_join(prefix, "members", NULL, NULL, NULL);
}

char *nap_key_status(const char *prefix, const char *node) {
        return key_join(prefix, "status", node, NULL, NULL);
}

char *nap_key_statuses(const char *prefix) {
        return key_join(prefix, "status", NULL, NULL, NULL);
}

char *nap_key_usage(const char *prefix, const char *node) {
        return key_join(prefix, "usage", node, NULL, NULL);
}

char *nap_key_usages(const char *prefix) {
        return key_join(prefix, "usage", NULL, NULL, NULL);
}

char *nap_key_reservation(const char *prefix, const NapReservation *r) {
        return key_join(prefix, "reservations", r->node, nap_reservation_kind_to_string(r->kind), r->name);
}

char *nap_key_reservation_name(const char *prefix, const NapReservation *r) {
        return key_join(prefix, "names", nap_reservation_kind_to_string(r->kind), r->name, NULL);
}

char *nap_key_reservations(const char *prefix, const char *node) {
        char *k = key_join(prefix, "reservations", node, NULL, NULL), *slash = NULL;
        if (k && asprintf(&slash, "%s/", k) < 0)
                slash = NULL;
        free(k);
        return slash;
}

const char *nap_key_node_name(const char *key, const char *dir_prefix) {
        const char *name = key && dir_prefix ? startswith(key, dir_prefix) : NULL;
        return name && nap_node_name_check(name, NULL) >= 0 ? name : NULL;
}
