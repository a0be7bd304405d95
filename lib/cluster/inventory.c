/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/strv.h"
#include "cluster/inventory.h"

void nap_node_info_done(NapNodeInfo *i) {
        if (!i)
                return;
        nap_node_done(&i->node);
        nap_node_status_done(&i->status);
}

void nap_node_info_array_free(NapNodeInfo *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_node_info_done(l + i);
        free(l);
}

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

/* ---- nodes ------------------------------------------------------------ */

int nap_node_register(EtcdClient *c, const char *prefix, const NapNode *n, int64_t lease, NapError *e) {
        _cleanup_free_ char *record = NULL, *member = NULL, *key_node = nap_key_node(prefix, n->name),
                            *key_member = nap_key_member(prefix, n->name), *key_status = nap_key_status(prefix, n->name);
        assert(c);
        assert(n);
        if (!key_node || !key_member || !key_status || nap_node_to_json(n, &record) < 0 ||
            asprintf(&member, "{\"boot_id\":\"%s\",\"since\":%" PRIu64 "}", n->boot_id, n->registered_usec) < 0)
                return oom(e);
        /* One txn: a reader never sees the membership without the record. */
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_PUT, .key = key_node, .value = record, .value_size = strlen(record) },
                { .type = ETCD_TXN_DELETE, .key = key_status },
                { .type = ETCD_TXN_PUT, .key = key_member, .value = member, .value_size = strlen(member),
                  .lease = lease },
        };
        int r = etcd_txn(c, NULL, 0, ops, ELEMENTSOF(ops), NULL, e);
        return r < 0 ? r : 0;
}

int nap_node_apply(EtcdClient *c, const char *prefix, const NapNode *n, NapError *e) {
        _cleanup_free_ char *record = NULL, *key = nap_key_node(prefix, n->name);
        assert(c);
        assert(n);
        if (!key || nap_node_to_json(n, &record) < 0)
                return oom(e);
        return etcd_put(c, key, record, strlen(record), 0, NULL, e);
}

int nap_node_deregister(EtcdClient *c, const char *prefix, const char *name, int64_t lease, NapError *e) {
        _cleanup_free_ char *key_node = nap_key_node(prefix, name);
        assert(c);
        if (!key_node)
                return oom(e);
        int r = etcd_delete(c, key_node, false, NULL, e);
        if (r >= 0)
                r = etcd_lease_revoke(c, lease, e);
        return r == -ENOENT ? 0 : r; /* an expired lease took the membership already */
}

/* The keys (and values) under one of the directories of nodes
 * (PREFIX/nodes/, PREFIX/members/, …: the dir functions of model/node.h). */
typedef char *(*KeyDirFn)(const char *prefix);

typedef struct Listing {
        char *dir;
        EtcdRange range;
} Listing;

static void listing_done(Listing *l) {
        free(l->dir);
        l->dir = NULL;
        etcd_range_done(&l->range);
}

static int listing_read(EtcdClient *c, const char *prefix, KeyDirFn dir, bool keys_only, Listing *ret,
                        NapError *e) {
        ret->dir = dir(prefix);
        if (!ret->dir)
                return oom(e);
        return etcd_range_prefix(c, ret->dir, 0, keys_only, &ret->range, e);
}

/* The key of node in the listing; NULL when it has none. */
static const EtcdKeyValue *listing_find(const Listing *l, const char *node) {
        for (size_t i = 0; i < l->range.n_kvs; i++) {
                const char *name = startswith(l->range.kvs[i].key, l->dir);
                if (name && streq(name, node))
                        return l->range.kvs + i;
        }
        return NULL;
}

/* The node of the i-th key; NULL when the key names no node. */
static const char *listing_node(const Listing *l, size_t i) {
        return nap_key_node_name(l->range.kvs[i].key, l->dir);
}

static unsigned listing_count_nodes(const Listing *l) {
        unsigned n = 0;
        for (size_t i = 0; i < l->range.n_kvs; i++)
                n += listing_node(l, i) != NULL;
        return n;
}

/* A node whose membership is gone: its status, unless it came back. */
static int mark_one(EtcdClient *c, const char *prefix, const char *name, const char *reason, uint64_t now_usec,
                    NapError *e) {
        _cleanup_free_ char *key_member = nap_key_member(prefix, name), *key_status = nap_key_status(prefix, name),
                            *key_node = nap_key_node(prefix, name), *value = NULL;
        NapNodeStatus s = { .reason = (char *) reason, .since_usec = now_usec };
        EtcdKeyValue record = {};
        if (!key_member || !key_status || !key_node || nap_node_status_to_json(&s, &value) < 0)
                return oom(e);
        int r = etcd_get(c, key_node, &record, e);
        if (r <= 0)
                return r; /* deregistered meanwhile: nothing to say */
        const EtcdTxnCompare cmp[] = {
                { .key = key_node, .target = ETCD_COMPARE_MOD_REVISION, .revision = record.mod_revision },
                { .key = key_member, .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 },
                { .key = key_status, .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 },
        };
        const EtcdTxnOp op = { .type = ETCD_TXN_PUT, .key = key_status, .value = value, .value_size = strlen(value) };
        etcd_key_value_done(&record);
        return etcd_txn(c, cmp, ELEMENTSOF(cmp), &op, 1, NULL, e);
}

int nap_nodes_mark_not_ready(EtcdClient *c, const char *prefix, const char *reason, uint64_t now_usec,
                             unsigned *ret_members, NapError *e) {
        _cleanup_(listing_done) Listing nodes = {}, members = {}, status = {};
        int marked = 0;
        assert(c);
        /* members before nodes: a node registering in between is seen with
         * its record and without its membership, and the txn's guard on
         * the membership keeps it from being marked */
        int r = listing_read(c, prefix, nap_key_members, true, &members, e);
        if (r >= 0)
                r = listing_read(c, prefix, nap_key_statuses, true, &status, e);
        if (r >= 0)
                r = listing_read(c, prefix, nap_key_nodes, true, &nodes, e);
        for (size_t i = 0; r >= 0 && i < nodes.range.n_kvs; i++) {
                const char *n = listing_node(&nodes, i);
                if (n && !listing_find(&members, n) && !listing_find(&status, n)) {
                        r = mark_one(c, prefix, n, reason, now_usec, e);
                        marked += r > 0;
                }
        }
        if (r >= 0 && ret_members)
                *ret_members = listing_count_nodes(&members);
        return r < 0 ? r : marked;
}

/* ---- reading ---------------------------------------------------------- */

/* A node as its record, usage and membership keys hold it (a key with
 * create_revision 0 is absent). A damaged record or usage is an error. */
static int node_info_parse(const EtcdKeyValue *record, const EtcdKeyValue *usage, const EtcdKeyValue *member,
                           NapNodeInfo *ret, NapError *e) {
        NapNodeInfo i = { .record_revision = record->mod_revision, .usage_revision = usage->mod_revision,
                          .member_revision = member->create_revision, .ready = member->create_revision > 0 };
        int r = nap_node_from_json(record->value, record->value_size, &i.node, e);
        if (r >= 0 && usage->create_revision > 0)
                r = nap_usage_from_json(usage->value, usage->value_size, &i.usage, e);
        if (r < 0)
                return nap_node_info_done(&i), r;
        *ret = i;
        return 0;
}

static const EtcdKeyValue absent = {};

typedef struct NodeRanges {
        Listing records, status, usage, members;
} NodeRanges;

static void node_ranges_done(NodeRanges *x) {
        listing_done(&x->records);
        listing_done(&x->status);
        listing_done(&x->usage);
        listing_done(&x->members);
}

/* A damaged status or usage is reported as none: the record decides. */
static int node_info_from(const NodeRanges *x, const EtcdKeyValue *record, NapNodeInfo *ret, NapError *e) {
        NapNodeInfo i;
        int r = node_info_parse(record, &absent, &absent, &i, e);
        if (r < 0)
                return r;
        const EtcdKeyValue *member = listing_find(&x->members, i.node.name);
        i.member_revision = member ? member->create_revision : 0;
        i.ready = member;
        const EtcdKeyValue *status = i.ready ? NULL : listing_find(&x->status, i.node.name);
        if (status)
                (void) nap_node_status_from_json(status->value, status->value_size, &i.status, NULL);
        const EtcdKeyValue *usage = listing_find(&x->usage, i.node.name);
        if (usage && nap_usage_from_json(usage->value, usage->value_size, &i.usage, NULL) >= 0)
                i.usage_revision = usage->mod_revision;
        *ret = i;
        return 0;
}

static int node_ranges_read(EtcdClient *c, const char *prefix, NodeRanges *x, NapError *e) {
        /* members first: see nap_nodes_mark_not_ready() */
        int r = listing_read(c, prefix, nap_key_members, false, &x->members, e);
        if (r >= 0)
                r = listing_read(c, prefix, nap_key_nodes, false, &x->records, e);
        if (r >= 0)
                r = listing_read(c, prefix, nap_key_statuses, false, &x->status, e);
        if (r >= 0)
                r = listing_read(c, prefix, nap_key_usages, false, &x->usage, e);
        return r;
}

int nap_nodes_list(EtcdClient *c, const char *prefix, NapNodeInfo **ret, size_t *ret_n, NapError *e) {
        _cleanup_(node_ranges_done) NodeRanges x = {};
        NapNodeInfo *l = NULL;
        size_t n = 0;

        assert(c);
        assert(ret);
        assert(ret_n);
        int r = node_ranges_read(c, prefix, &x, e);
        if (r >= 0 && !(l = calloc(x.records.range.n_kvs ?: 1, sizeof *l)))
                r = oom(e);
        /* A damaged record is left out of the list (and of placement), as
         * the generator leaves a damaged manifest out. */
        for (size_t i = 0; r >= 0 && i < x.records.range.n_kvs; i++)
                n += node_info_from(&x, x.records.range.kvs + i, l + n, NULL) >= 0;
        if (r < 0)
                return nap_node_info_array_free(l, n), r;
        *ret = l;
        *ret_n = n;
        return 0;
}

int nap_node_get(EtcdClient *c, const char *prefix, const char *name, NapNodeInfo *ret, NapError *e) {
        _cleanup_(node_ranges_done) NodeRanges x = {};
        assert(c);
        assert(ret);
        int r = nap_node_name_check(name, e);
        if (r >= 0)
                r = node_ranges_read(c, prefix, &x, e);
        if (r < 0)
                return r;
        const EtcdKeyValue *record = listing_find(&x.records, name);
        if (!record)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_NODE, -ENOENT, "No node %s", name);
        return node_info_from(&x, record, ret, e);
}

/* ---- admission -------------------------------------------------------- */

static int exhausted(NapError *e, const char *node, const char *what, uint64_t total, uint64_t used,
                     uint64_t requested) {
        return nap_error_set(e, NAP_ERROR_INSUFFICIENT_RESOURCES, -ENOSPC,
                             "Node %s has not enough %s: total=%" PRIu64 ", used=%" PRIu64 ", requested=%" PRIu64,
                             node, what, total, used, requested);
}

/* Seed 004's CheckCompute and CheckStorage: requests only, exact fit
 * passes, CPU first. */
static int check_fits(const NapNodeInfo *i, const NapReservation *r, NapError *e) {
        const NapCapacity *cap = &i->node.capacity;
        const NapUsage *u = &i->usage;
        if (r->kind == NAP_RESERVATION_STORAGE)
                return u->storage + r->storage.request_bytes > cap->storage
                               ? exhausted(e, i->node.name, "storage", cap->storage, u->storage,
                                           r->storage.request_bytes)
                               : 0;
        if (u->cpu_milli + r->compute.request_cpu_milli > cap->cpu_milli)
                return exhausted(e, i->node.name, "cpu_milli", cap->cpu_milli, u->cpu_milli,
                                 r->compute.request_cpu_milli);
        if (u->memory + r->compute.request_memory > cap->memory)
                return exhausted(e, i->node.name, "memory", cap->memory, u->memory, r->compute.request_memory);
        return 0;
}

/* ---- reserving and releasing ------------------------------------------ */

enum { KEY_RECORD, KEY_USAGE, KEY_RESERVATION, KEY_NAME, _KEYS };

typedef struct ReserveRead {
        EtcdKeyValue kvs[_KEYS];
        char *keys[_KEYS + 1];
} ReserveRead;

static void reserve_read_done(ReserveRead *x) {
        for (size_t i = 0; i < _KEYS; i++) {
                etcd_key_value_done(x->kvs + i);
                free(x->keys[i]);
        }
}

/* The record, usage, reservation and name keys of r, at one revision. */
static int reserve_read(EtcdClient *c, const char *prefix, const NapReservation *r, ReserveRead *x, NapError *e) {
        x->keys[KEY_RECORD] = nap_key_node(prefix, r->node);
        x->keys[KEY_USAGE] = nap_key_usage(prefix, r->node);
        x->keys[KEY_RESERVATION] = nap_key_reservation(prefix, r);
        x->keys[KEY_NAME] = nap_key_reservation_name(prefix, r);
        for (size_t i = 0; i < _KEYS; i++)
                if (!x->keys[i])
                        return oom(e);
        int k = etcd_get_many(c, x->keys, x->kvs, NULL, e);
        if (k < 0)
                return k;
        if (x->kvs[KEY_RECORD].create_revision == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_NODE, -ENOENT, "No node %s", r->node);
        return 0;
}

/* The node as reserve_read() saw it (record and usage). */
static int reserve_node(const ReserveRead *x, NapNodeInfo *ret, NapError *e) {
        return node_info_parse(x->kvs + KEY_RECORD, x->kvs + KEY_USAGE, &absent, ret, e);
}

static int held_elsewhere(NapError *e, const NapReservation *r, const char *node) {
        return nap_error_set(e, NAP_ERROR_RESERVATION_EXISTS, -EEXIST, "%s holds a %s reservation on node %.63s already",
                             r->name, nap_reservation_kind_to_string(r->kind), node);
}

/* The name is taken: 0 if by r's twin on r's node (its creation time into
 * *ret_created), else why not. */
static int reserve_existing(const ReserveRead *x, const NapReservation *r, uint64_t *ret_created, NapError *e) {
        const EtcdKeyValue *name = x->kvs + KEY_NAME, *held = x->kvs + KEY_RESERVATION;
        NapReservation old = *r;
        if (!streq(name->value, r->node) || held->create_revision == 0)
                return held_elsewhere(e, r, name->value);
        int k = nap_reservation_from_json(held->value, held->value_size, &old, e);
        if (k < 0)
                return k;
        if (!nap_reservation_same(&old, r))
                return held_elsewhere(e, r, r->node);
        *ret_created = old.created_usec;
        return 0;
}

static int reserve_txn(EtcdClient *c, const ReserveRead *x, const NapNodeInfo *i, const NapReservation *r,
                       NapError *e) {
        _cleanup_free_ char *value = NULL, *usage = NULL;
        NapUsage u = i->usage;
        nap_usage_add(&u, r);
        if (nap_reservation_to_json(r, &value) < 0 || nap_usage_to_json(&u, &usage) < 0)
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                { .key = x->keys[KEY_RECORD], .target = ETCD_COMPARE_MOD_REVISION, .revision = i->record_revision },
                { .key = x->keys[KEY_USAGE], .target = ETCD_COMPARE_MOD_REVISION, .revision = i->usage_revision },
                { .key = x->keys[KEY_NAME], .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 },
        };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_PUT, .key = x->keys[KEY_RESERVATION], .value = value, .value_size = strlen(value) },
                { .type = ETCD_TXN_PUT, .key = x->keys[KEY_NAME], .value = r->node, .value_size = strlen(r->node) },
                { .type = ETCD_TXN_PUT, .key = x->keys[KEY_USAGE], .value = usage, .value_size = strlen(usage) },
        };
        return etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), NULL, e);
}

/* One round: 1 reserved, 0 conflict (read again), 2 there already (r's
 * creation time is the first one's). */
static int reserve_once(EtcdClient *c, const char *prefix, NapReservation *r, NapError *e) {
        _cleanup_(reserve_read_done) ReserveRead x = {};
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        int k = reserve_read(c, prefix, r, &x, e);
        if (k >= 0 && x.kvs[KEY_NAME].create_revision > 0)
                return (k = reserve_existing(&x, r, &r->created_usec, e)) < 0 ? k : 2;
        if (k >= 0)
                k = reserve_node(&x, &i, e);
        if (k >= 0)
                k = check_fits(&i, r, e);
        return k < 0 ? k : reserve_txn(c, &x, &i, r, e);
}

/* The name and amounts (limit 0 becomes the request). */
static int reservation_check_amounts(NapReservation *r, NapError *e) {
        int k = nap_reservation_name_check(r->name, NULL, e);
        if (k >= 0)
                k = r->kind == NAP_RESERVATION_STORAGE ? nap_storage_check(&r->storage, e)
                                                       : nap_compute_check(&r->compute, e);
        return k;
}

static int reservation_check(NapReservation *r, NapError *e) {
        int k = nap_node_name_check(r->node, e);
        return k < 0 ? k : reservation_check_amounts(r, e);
}

static int too_busy(NapError *e, const char *what) {
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                             "%s lost to other writers %d times in a row; try again", what, NAP_INVENTORY_RETRIES);
}

int nap_reserve(EtcdClient *c, const char *prefix, NapReservation *r, NapError *e) {
        assert(c);
        assert(r);
        int k = reservation_check(r, e);
        if (k < 0)
                return k;
        r->created_usec = realtime_usec();
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++) {
                k = reserve_once(c, prefix, r, e);
                if (k != 0)
                        return k < 0 ? k : k == 1;
        }
        return too_busy(e, "The reservation");
}

/* One round of a release: 1 released, 0 conflict. */
static int release_once(EtcdClient *c, const char *prefix, const NapReservation *key, NapError *e) {
        _cleanup_(reserve_read_done) ReserveRead x = {};
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        _cleanup_free_ char *usage = NULL;
        NapReservation old = *key;
        const EtcdKeyValue *held = x.kvs + KEY_RESERVATION;
        int k = reserve_read(c, prefix, key, &x, e);
        if (k >= 0 && held->create_revision == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_RESERVATION, -ENOENT, "Nothing is reserved as %s (%s) on %s",
                                     key->name, nap_reservation_kind_to_string(key->kind), key->node);
        if (k >= 0)
                k = reserve_node(&x, &i, e);
        if (k >= 0)
                k = nap_reservation_from_json(held->value, held->value_size, &old, e);
        if (k < 0)
                return k;
        nap_usage_remove(&i.usage, &old);
        if (nap_usage_to_json(&i.usage, &usage) < 0)
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                { .key = x.keys[KEY_USAGE], .target = ETCD_COMPARE_MOD_REVISION, .revision = i.usage_revision },
                { .key = x.keys[KEY_RESERVATION], .target = ETCD_COMPARE_MOD_REVISION, .revision = held->mod_revision },
        };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_DELETE, .key = x.keys[KEY_RESERVATION] },
                { .type = ETCD_TXN_DELETE, .key = x.keys[KEY_NAME] },
                { .type = ETCD_TXN_PUT, .key = x.keys[KEY_USAGE], .value = usage, .value_size = strlen(usage) },
        };
        return etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), NULL, e);
}

int nap_release(EtcdClient *c, const char *prefix, NapReservationKind kind, const char *node, const char *name,
                NapError *e) {
        NapReservation key = { .kind = kind };
        assert(c);
        int k = nap_node_name_check(node, e);
        if (k >= 0)
                k = nap_reservation_name_check(name, NULL, e);
        if (k < 0)
                return k;
        snprintf(key.node, sizeof key.node, "%s", node);
        snprintf(key.name, sizeof key.name, "%s", name);
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++) {
                k = release_once(c, prefix, &key, e);
                if (k != 0)
                        return k < 0 ? k : 0;
        }
        return too_busy(e, "The release");
}

/* PREFIX/reservations/NODE/KIND/NAME into r; 0 if key is not one. */
static int reservation_from_kv(const EtcdKeyValue *kv, const char *dir, const char *node, NapReservation *ret) {
        const char *rest = startswith(kv->key, dir), *slash = rest ? strchr(rest, '/') : NULL;
        NapReservation r = {};
        if (!slash)
                return 0;
        r.kind = startswith(rest, "compute/") ? NAP_RESERVATION_COMPUTE
               : startswith(rest, "storage/") ? NAP_RESERVATION_STORAGE
                                              : _NAP_RESERVATION_KIND_INVALID;
        if (r.kind < 0 || nap_reservation_name_check(slash + 1, NULL, NULL) < 0 ||
            nap_reservation_from_json(kv->value, kv->value_size, &r, NULL) < 0)
                return 0;
        snprintf(r.name, sizeof r.name, "%s", slash + 1);
        snprintf(r.node, sizeof r.node, "%s", node);
        *ret = r;
        return 1;
}

int nap_reservations_list(EtcdClient *c, const char *prefix, const char *node, NapReservation **ret,
                          size_t *ret_n, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = NULL;
        NapReservation *l = NULL;
        size_t n = 0;
        assert(ret);
        assert(ret_n);
        int k = nap_node_name_check(node, e);
        if (k >= 0 && !(dir = nap_key_reservations(prefix, node)))
                k = oom(e);
        if (k >= 0)
                k = etcd_range_prefix(c, dir, 0, false, &range, e);
        if (k >= 0 && !(l = calloc(range.n_kvs ?: 1, sizeof *l)))
                k = oom(e);
        for (size_t i = 0; k >= 0 && i < range.n_kvs; i++)
                n += reservation_from_kv(range.kvs + i, dir, node, l + n);
        if (k < 0)
                return free(l), k;
        *ret = l;
        *ret_n = n;
        return 0;
}

/* Every reservation on the node, with its cluster-wide name. */
static int delete_reservations(EtcdClient *c, const char *prefix, const char *node, NapError *e) {
        _cleanup_free_ NapReservation *l = NULL;
        _cleanup_free_ char *dir = nap_key_reservations(prefix, node);
        size_t n = 0;
        int k = dir ? nap_reservations_list(c, prefix, node, &l, &n, e) : oom(e);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                _cleanup_free_ char *name = nap_key_reservation_name(prefix, l + i);
                k = name ? etcd_delete(c, name, false, NULL, e) : oom(e);
        }
        return k < 0 ? k : etcd_delete(c, dir, true, NULL, e);
}

int nap_node_delete(EtcdClient *c, const char *prefix, const char *name, bool force, NapError *e) {
        _cleanup_free_ char *reservations = nap_key_reservations(prefix, name), *node = nap_key_node(prefix, name),
                            *status = nap_key_status(prefix, name), *usage = nap_key_usage(prefix, name),
                            *member = nap_key_member(prefix, name);
        _cleanup_(etcd_range_done) EtcdRange held = {};
        int k = nap_node_name_check(name, e);
        if (k < 0)
                return k;
        if (!reservations || !node || !status || !usage || !member)
                return oom(e);
        k = etcd_range_prefix(c, reservations, 1, true, &held, e);
        if (k >= 0 && held.count > 0 && !force)
                return nap_error_set(e, NAP_ERROR_NODE_IN_USE, -EBUSY,
                                     "Node %s holds %" PRId64 " reservation(s); release them, or delete it with force "
                                     "(napctl node delete --force)",
                                     name, held.count);
        int64_t deleted = 0;
        if (k >= 0)
                k = etcd_delete(c, node, false, &deleted, e);
        if (k >= 0 && deleted == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_NODE, -ENOENT, "No node %s", name);
        const char *const rest[] = { status, usage, member };
        for (size_t i = 0; k >= 0 && i < ELEMENTSOF(rest); i++)
                k = etcd_delete(c, rest[i], false, NULL, e);
        if (k >= 0)
                k = delete_reservations(c, prefix, name, e);
        return k < 0 ? k : 0;
}

/* ---- placement -------------------------------------------------------- */

static const char *const policy_table[_NAP_POLICY_MAX] = {
        [NAP_POLICY_SPREAD] = "spread",
        [NAP_POLICY_BINPACK] = "binpack",
};

const char *nap_policy_to_string(NapPolicy p) {
        return p >= 0 && p < _NAP_POLICY_MAX ? policy_table[p] : NULL;
}

NapPolicy nap_policy_from_string(const char *s) {
        return string_table_lookup(policy_table, ELEMENTSOF(policy_table), s);
}

static double share(uint64_t used, uint64_t add, uint64_t capacity) {
        return capacity > 0 ? (double) (used + add) / (double) capacity : 0.0;
}

/* The largest share of a capacity the node's requests take with r. */
static double load_with(const NapNodeInfo *i, const NapReservation *r) {
        const NapCapacity *c = &i->node.capacity;
        if (r->kind == NAP_RESERVATION_STORAGE)
                return share(i->usage.storage, r->storage.request_bytes, c->storage);
        return MAX(share(i->usage.cpu_milli, r->compute.request_cpu_milli, c->cpu_milli),
                   share(i->usage.memory, r->compute.request_memory, c->memory));
}

/* Whether node i beats best: by load, then (with counts) by fewer
 * instances, then by the name that sorts first. */
static bool beats(const NapNodeInfo *nodes, size_t i, ssize_t best, double load, double best_load, NapPolicy policy,
                  const unsigned *counts) {
        if (best < 0 || (policy == NAP_POLICY_BINPACK ? load > best_load : load < best_load))
                return true;
        if (load != best_load)
                return false;
        if (counts && counts[i] != counts[best])
                return counts[i] < counts[best];
        return strcmp(nodes[i].node.name, nodes[best].node.name) < 0;
}

ssize_t nap_schedule_pick_counted(const NapNodeInfo *nodes, size_t n, const NapReservation *r, NapPolicy policy,
                                  char *const *selector, const unsigned *counts) {
        ssize_t best = -1;
        double best_load = 0;
        assert(r);
        for (size_t i = 0; i < n; i++) {
                if (!nodes[i].ready || !nap_labels_match(nodes[i].node.labels, selector) ||
                    check_fits(nodes + i, r, NULL) < 0)
                        continue;
                double load = load_with(nodes + i, r);
                if (beats(nodes, i, best, load, best_load, policy, counts)) {
                        best = (ssize_t) i;
                        best_load = load;
                }
        }
        return best;
}

ssize_t nap_schedule_pick(const NapNodeInfo *nodes, size_t n, const NapReservation *r, NapPolicy policy,
                          char *const *selector) {
        return nap_schedule_pick_counted(nodes, n, r, policy, selector, NULL);
}

struct NapPlacer {
        EtcdClient *etcd;
        char *prefix;
        NapNodeInfo *nodes;
        size_t n;
};

NapPlacer *nap_placer_free(NapPlacer *p) {
        if (!p)
                return NULL;
        nap_node_info_array_free(p->nodes, p->n);
        free(p->prefix);
        free(p);
        return NULL;
}

int nap_placer_new(EtcdClient *c, const char *prefix, NapPlacer **ret, NapError *e) {
        _cleanup_(nap_placer_freep) NapPlacer *p = calloc(1, sizeof *p);
        assert(c);
        assert(ret);
        if (!p || !(p->prefix = strdup(prefix)))
                return oom(e);
        p->etcd = c;
        int k = nap_nodes_list(c, prefix, &p->nodes, &p->n, e);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Why nothing fits, in the words of the node that came closest. */
static int nothing_fits(NapPlacer *p, const NapReservation *r, char *const *selector, NapError *e) {
        ssize_t closest = -1;
        for (size_t i = 0; i < p->n; i++)
                if (p->nodes[i].ready && nap_labels_match(p->nodes[i].node.labels, selector) &&
                    (closest < 0 || load_with(p->nodes + i, r) < load_with(p->nodes + closest, r)))
                        closest = (ssize_t) i;
        if (closest < 0)
                return nap_error_set(e, NAP_ERROR_INSUFFICIENT_RESOURCES, -ENOSPC,
                                     "No Ready node%s to place %s on", selector ? " with these labels" : "", r->name);
        return check_fits(p->nodes + closest, r, e);
}

/* The name of the i-th of count placements. */
static void placement_name(const NapReservation *r, unsigned count, unsigned i, NapReservation *ret) {
        *ret = *r;
        if (count > 1)
                snprintf(ret->name, sizeof ret->name, "%.*s.%u", (int) (sizeof ret->name - 12), r->name, i + 1);
}

static ssize_t node_index(const NapPlacer *p, const char *name) {
        for (size_t i = 0; i < p->n; i++)
                if (streq(p->nodes[i].node.name, name))
                        return (ssize_t) i;
        return -1;
}

/* The node of ret[i]: the one of ret[i - 1] when it goes with it (an
 * instance's disk beside its cpu and memory), else the best by policy. */
static ssize_t pick_one(NapPlacer *p, const NapReservation *ret, unsigned i, const bool *with_previous,
                        NapPolicy policy, char *const *selector, NapError *e) {
        if (!with_previous || i == 0 || !with_previous[i]) {
                ssize_t k = nap_schedule_pick(p->nodes, p->n, ret + i, policy, selector);
                return k < 0 ? nothing_fits(p, ret + i, selector, e) : k;
        }
        ssize_t k = node_index(p, ret[i - 1].node);
        int r = check_fits(p->nodes + k, ret + i, e);
        return r < 0 ? r : k;
}

/* Picks a node for each of the count placements (ret: their names and
 * amounts), adding each to the view's usage so the next one sees it. */
static int pick_all(NapPlacer *p, unsigned count, const bool *with_previous, NapPolicy policy,
                    char *const *selector, NapReservation *ret, NapError *e) {
        for (unsigned i = 0; i < count; i++) {
                ssize_t k = pick_one(p, ret, i, with_previous, policy, selector, e);
                if (k < 0)
                        return (int) k;
                snprintf(ret[i].node, sizeof ret[i].node, "%s", p->nodes[k].node.name);
                nap_usage_add(&p->nodes[k].usage, ret + i);
        }
        return 0;
}

/* The keys and values of one placement txn, kept alive while it runs. */
typedef struct PlaceTxn {
        EtcdTxnCompare cmp[3 * NAP_SCHEDULE_BATCH_MAX + NAP_SCHEDULE_BATCH_MAX];
        EtcdTxnOp ops[3 * NAP_SCHEDULE_BATCH_MAX];
        size_t n_cmp, n_ops;
        char **strings; /* every key and value below */
        bool touched[]; /* per node of the view */
} PlaceTxn;

static void place_txn_free(PlaceTxn *t) {
        if (t)
                strv_free(t->strings);
        free(t);
}

/* s, kept by t; NULL when out of memory. */
static const char *keep(PlaceTxn *t, char *s) {
        return s && strv_consume(&t->strings, s) >= 0 ? s : NULL;
}

/* A node's guard (record, usage, membership unchanged) and its new usage. */
static int txn_add_node(PlaceTxn *t, const char *prefix, const NapNodeInfo *i) {
        char *usage = NULL;
        const char *k_node = keep(t, nap_key_node(prefix, i->node.name)),
                   *k_usage = keep(t, nap_key_usage(prefix, i->node.name)),
                   *k_member = keep(t, nap_key_member(prefix, i->node.name));
        if (!k_node || !k_usage || !k_member || nap_usage_to_json(&i->usage, &usage) < 0 || !keep(t, usage))
                return -ENOMEM;
        t->cmp[t->n_cmp++] = (EtcdTxnCompare) { .key = k_node, .target = ETCD_COMPARE_MOD_REVISION,
                                                .revision = i->record_revision };
        t->cmp[t->n_cmp++] = (EtcdTxnCompare) { .key = k_usage, .target = ETCD_COMPARE_MOD_REVISION,
                                                .revision = i->usage_revision };
        t->cmp[t->n_cmp++] = (EtcdTxnCompare) { .key = k_member, .target = ETCD_COMPARE_CREATE_REVISION,
                                                .revision = i->member_revision };
        t->ops[t->n_ops++] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = k_usage, .value = usage,
                                           .value_size = strlen(usage) };
        return 0;
}

/* A placement: its name must be free, its reservation and name go in. */
static int txn_add_reservation(PlaceTxn *t, const char *prefix, const NapReservation *r) {
        char *value = NULL;
        const char *k_res = keep(t, nap_key_reservation(prefix, r)), *k_name = keep(t, nap_key_reservation_name(prefix, r));
        if (!k_res || !k_name || nap_reservation_to_json(r, &value) < 0 || !keep(t, value))
                return -ENOMEM;
        t->cmp[t->n_cmp++] = (EtcdTxnCompare) { .key = k_name, .target = ETCD_COMPARE_CREATE_REVISION };
        t->ops[t->n_ops++] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = k_res, .value = value,
                                           .value_size = strlen(value) };
        t->ops[t->n_ops++] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = k_name, .value = r->node,
                                           .value_size = strlen(r->node) };
        return 0;
}

static int place_txn_build(NapPlacer *p, const NapReservation *placed, unsigned count, PlaceTxn **ret) {
        PlaceTxn *t = calloc(1, sizeof *t + p->n * sizeof(bool));
        int k = t ? 0 : -ENOMEM;
        for (unsigned i = 0; k >= 0 && i < count; i++) {
                ssize_t n = node_index(p, placed[i].node);
                if (!t->touched[n] && (k = txn_add_node(t, p->prefix, p->nodes + n)) >= 0)
                        t->touched[n] = true;
                if (k >= 0)
                        k = txn_add_reservation(t, p->prefix, placed + i);
        }
        if (k < 0)
                return place_txn_free(t), k;
        *ret = t;
        return 0;
}

/* Reads one node of the view again (after its txn lost). */
static int refresh_node(NapPlacer *p, NapNodeInfo *i, NapError *e) {
        _cleanup_free_ char *k_node = nap_key_node(p->prefix, i->node.name), *k_usage = nap_key_usage(p->prefix, i->node.name),
                            *k_member = nap_key_member(p->prefix, i->node.name);
        char *keys[] = { k_node, k_usage, k_member, NULL };
        EtcdKeyValue kv[3] = {};
        NapNodeInfo fresh = {};
        if (!k_node || !k_usage || !k_member)
                return oom(e);
        int k = etcd_get_many(p->etcd, keys, kv, NULL, e);
        if (k >= 0 && kv[0].create_revision > 0)
                k = node_info_parse(kv + 0, kv + 1, kv + 2, &fresh, e);
        /* a record gone or damaged: never picked again (not Ready) */
        if (k < 0 || kv[0].create_revision == 0)
                snprintf(fresh.node.name, sizeof fresh.node.name, "%s", i->node.name);
        for (size_t n = 0; n < ELEMENTSOF(kv); n++)
                etcd_key_value_done(kv + n);
        nap_node_info_done(i);
        *i = fresh;
        return k == -ENOMEM || k == -ECONNREFUSED || k == -ETIMEDOUT ? k : 0;
}

static void restore_usage(NapPlacer *p, const NapUsage *saved) {
        for (size_t i = 0; i < p->n; i++)
                p->nodes[i].usage = saved[i];
}

/* One round: 1 placed (ret's nodes filled), 0 lost (the touched nodes
 * read again). */
static int place_once(NapPlacer *p, unsigned count, const bool *with_previous, NapPolicy policy,
                      char *const *selector, NapReservation *ret, NapError *e) {
        _cleanup_free_ NapUsage *saved = malloc((p->n ?: 1) * sizeof *saved);
        PlaceTxn *t = NULL;
        int64_t revision = 0;
        if (!saved)
                return oom(e);
        for (size_t i = 0; i < p->n; i++)
                saved[i] = p->nodes[i].usage;
        int k = pick_all(p, count, with_previous, policy, selector, ret, e);
        if (k >= 0 && (k = place_txn_build(p, ret, count, &t)) < 0)
                k = oom(e);
        if (k >= 0)
                k = etcd_txn(p->etcd, t->cmp, t->n_cmp, t->ops, t->n_ops, &revision, e);
        for (size_t i = 0; k > 0 && i < p->n; i++)
                if (t->touched[i])
                        p->nodes[i].usage_revision = revision;
        if (k <= 0)
                restore_usage(p, saved);
        for (size_t i = 0; k == 0 && i < p->n; i++)
                if (t->touched[i] && (k = refresh_node(p, p->nodes + i, e)) < 0)
                        break;
        place_txn_free(t);
        return k;
}

/* Places the count reservations at rs (names and amounts checked), their
 * nodes filled in rs: all in one txn, retried on conflict. */
static int place_checked(NapPlacer *p, NapReservation *rs, unsigned count, const bool *with_previous,
                         NapPolicy policy, char *const *selector, NapError *e) {
        if (count == 0 || count > NAP_SCHEDULE_BATCH_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Between 1 and %u placements at once",
                                     NAP_SCHEDULE_BATCH_MAX);
        if (policy < 0 || policy >= _NAP_POLICY_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Unknown placement policy");
        uint64_t now = realtime_usec();
        for (unsigned i = 0; i < count; i++)
                rs[i].created_usec = now;
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++) {
                int k = place_once(p, count, with_previous, policy, selector, rs, e);
                if (k != 0)
                        return k < 0 ? k : 0;
        }
        return too_busy(e, "The placement");
}

int nap_placer_place(NapPlacer *p, const NapReservation *r, unsigned count, NapPolicy policy, char *const *selector,
                     NapReservation **ret, NapError *e) {
        NapReservation proto = *r;
        assert(p);
        assert(ret);
        int k = reservation_check_amounts(&proto, e);
        if (k < 0)
                return k;
        _cleanup_free_ NapReservation *placed = calloc(count ?: 1, sizeof *placed);
        if (!placed)
                return oom(e);
        for (unsigned i = 0; i < count && i < NAP_SCHEDULE_BATCH_MAX; i++)
                placement_name(&proto, count, i, placed + i);
        k = place_checked(p, placed, count, NULL, policy, selector, e);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(placed);
        return 0;
}

int nap_placer_place_each(NapPlacer *p, NapReservation *rs, unsigned count, const bool *with_previous,
                          NapPolicy policy, char *const *selector, NapError *e) {
        assert(p);
        assert(rs || count == 0);
        for (unsigned i = 0; i < count; i++) {
                int k = reservation_check_amounts(rs + i, e);
                if (k < 0)
                        return k;
        }
        return place_checked(p, rs, count, with_previous, policy, selector, e);
}

int nap_schedule(EtcdClient *c, const char *prefix, const NapReservation *r, unsigned count, NapPolicy policy,
                 char *const *selector, NapReservation **ret, NapError *e) {
        _cleanup_(nap_placer_freep) NapPlacer *p = NULL;
        int k = nap_placer_new(c, prefix, &p, e);
        return k < 0 ? k : nap_placer_place(p, r, count, policy, selector, ret, e);
}
