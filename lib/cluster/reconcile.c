/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "cluster/reconcile.h"
#include "model/endpoint.h"

#define NOT_READY_REASON "membership lease expired (noted by the reconciler)"

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

/* ---- decisions -------------------------------------------------------- */

bool nap_reconcile_node_due(const NapNodeInfo *n, uint64_t now_usec, uint64_t ttl_usec, uint64_t grace_usec) {
        uint64_t since = n->status.since_usec;
        if (n->ready || since == 0)
                return false;
        /* last alive at since - ttl: due at since - ttl + grace */
        return grace_usec > ttl_usec ? now_usec >= since + (grace_usec - ttl_usec)
                                     : now_usec + (ttl_usec - grace_usec) >= since;
}

static NapReservation assignment_request(const NapAssignment *a) {
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE, .compute = a->resources };
        nap_instance_name(&a->instance, r.name);
        return r;
}

size_t nap_reconcile_plan(NapNodeInfo *nodes, size_t n_nodes, const NapAssignment *l, size_t n,
                          ssize_t *ret_targets) {
        size_t placed = 0;
        for (size_t i = 0; i < n; i++) {
                NapReservation r = assignment_request(l + i);
                ssize_t k = nap_schedule_pick(nodes, n_nodes, &r, NAP_POLICY_SPREAD, NULL);
                if (k >= 0) {
                        nap_usage_add(&nodes[k].usage, &r);
                        placed++;
                }
                ret_targets[i] = k;
        }
        return placed;
}

/* ---- leadership ------------------------------------------------------- */

static char *key_leader(const char *prefix) {
        return strdup_printf("%s/leader", prefix);
}

int nap_leader_get(EtcdClient *c, const char *prefix, char ret[static NAP_NODE_NAME_MAX + 1], NapError *e) {
        _cleanup_free_ char *key = key_leader(prefix);
        EtcdKeyValue kv = {};
        int r = key ? etcd_get(c, key, &kv, e) : oom(e);
        if (r < 0)
                return r;
        snprintf(ret, NAP_NODE_NAME_MAX + 1, "%s", r > 0 ? kv.value : "");
        etcd_key_value_done(&kv);
        return 0;
}

int nap_leader_acquire(EtcdClient *c, const char *prefix, const char *node, int64_t lease, int64_t *ret_revision,
                       char *ret_holder, NapError *e) {
        _cleanup_free_ char *key = key_leader(prefix);
        EtcdKeyValue kv = {};
        assert(c);
        assert(ret_revision);
        int r = key ? etcd_create(c, key, node, strlen(node), lease, NULL, e) : oom(e);
        /* created or not, the key as it is now says who leads, since when */
        if (r >= 0)
                r = etcd_get(c, key, &kv, e);
        if (r <= 0)
                return r < 0 ? r : 0; /* gone again at once: the next round tries */
        bool ours = streq(kv.value, node) && kv.lease == lease;
        if (ret_holder)
                snprintf(ret_holder, NAP_NODE_NAME_MAX + 1, "%s", kv.value);
        *ret_revision = ours ? kv.create_revision : 0;
        etcd_key_value_done(&kv);
        return ours;
}

/* ---- moving ----------------------------------------------------------- */

int nap_reconcile_move(EtcdClient *c, const char *prefix, const NapAssignment *a, const NapNodeInfo *target,
                       int64_t leader_revision, NapError *e) {
        NapAssignment moved = *a;
        _cleanup_free_ char *old_key = nap_key_assignment(prefix, a->node, &a->instance), *value = NULL,
                            *new_key = nap_key_assignment(prefix, target->node.name, &a->instance),
                            *leader = key_leader(prefix), *record = nap_key_node(prefix, target->node.name);
        assert(c);
        assert(a->mod_revision > 0);
        snprintf(moved.node, sizeof moved.node, "%s", target->node.name);
        moved.generation = a->generation + 1;
        if (!old_key || !new_key || !leader || !record || nap_assignment_to_json(&moved, &value) < 0)
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                { .key = old_key, .target = ETCD_COMPARE_MOD_REVISION, .revision = a->mod_revision },
                { .key = leader, .target = ETCD_COMPARE_CREATE_REVISION, .revision = leader_revision },
                { .key = record, .target = ETCD_COMPARE_MOD_REVISION, .revision = target->record_revision },
                { .key = new_key, .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 },
        };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_DELETE, .key = old_key },
                { .type = ETCD_TXN_PUT, .key = new_key, .value = value, .value_size = strlen(value) },
        };
        return etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), NULL, e);
}

/* ---- a round ---------------------------------------------------------- */

typedef struct Round {
        EtcdClient *etcd;
        const NapConfig *config;
        int64_t leader_revision;
        NapNodeInfo *nodes;
        size_t n_nodes;
        NapReservation *reservations; /* the dead node's being reconciled */
        size_t n_reservations;
        EtcdRange endpoints;          /* of the app endpoints_of points to */
        const NapService *endpoints_of;
        NapReconcileStats stats;
} Round;

/* The dead node's reservation of the instance goes, before the move (the
 * new node reserves the same name): gone meanwhile is fine. */
static int release_old(EtcdClient *c, const char *prefix, const NapAssignment *a, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        NapError why = NAP_ERROR_NULL;
        int r = nap_release(c, prefix, NAP_RESERVATION_COMPUTE, a->node, nap_instance_name(&a->instance, name), &why);
        if (r >= 0 || why.kind == NAP_ERROR_NO_SUCH_RESERVATION)
                return 0;
        return nap_error_set(e, why.kind, r, "%s", why.message);
}

/* The dead node's endpoints of the instance (host: its address) go; one
 * re-published meanwhile (another mod_revision) stays. The app's
 * endpoints are read once for all its instances on the node (assignments
 * come in key order: by app). */
static int endpoints_remove(Round *x, const NapAssignment *a, const char *host, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        int r = 0;
        if (!x->endpoints_of || memcmp(x->endpoints_of, &a->instance.service, sizeof a->instance.service) != 0) {
                _cleanup_free_ char *dir = nap_key_endpoints(x->config, &a->instance.service);
                etcd_range_done(&x->endpoints);
                x->endpoints = (EtcdRange) {};
                x->endpoints_of = &a->instance.service;
                r = dir ? etcd_range_prefix(x->etcd, dir, 0, false, &x->endpoints, e) : oom(e);
        }
        nap_instance_name(&a->instance, name);
        for (size_t i = 0; r >= 0 && i < x->endpoints.n_kvs; i++) {
                const EtcdKeyValue *kv = x->endpoints.kvs + i;
                NapEndpoint ep = {};
                if (nap_endpoint_parse(kv->value, kv->value_size, &ep, NULL) < 0)
                        continue;
                bool stale = streq_ptr(ep.host, host) && streq_ptr(ep.instance, name);
                nap_endpoint_clear(&ep);
                if (!stale)
                        continue;
                const EtcdTxnCompare cmp = { .key = kv->key, .target = ETCD_COMPARE_MOD_REVISION,
                                             .revision = kv->mod_revision };
                const EtcdTxnOp op = { .type = ETCD_TXN_DELETE, .key = kv->key };
                r = etcd_txn(x->etcd, &cmp, 1, &op, 1, NULL, e);
                x->stats.endpoints += r > 0;
        }
        return r < 0 ? r : 0;
}

/* Whether the dead node holds a reservation named after the instance. */
static bool reserved(const NapReservation *rs, size_t n, const NapAssignment *a) {
        char name[NAP_UNIT_NAME_MAX];
        nap_instance_name(&a->instance, name);
        for (size_t i = 0; i < n; i++)
                if (rs[i].kind == NAP_RESERVATION_COMPUTE && streq(rs[i].name, name))
                        return true;
        return false;
}


static int move_each(Round *x, const NapNodeInfo *dead, const NapAssignment *l, size_t n, const ssize_t *targets,
                     NapError *e) {
        for (size_t i = 0; i < n; i++) {
                if (targets[i] < 0) {
                        x->stats.no_room++;
                        continue;
                }
                int r = reserved(x->reservations, x->n_reservations, l + i)
                                ? release_old(x->etcd, x->config->cluster_prefix, l + i, e)
                                : 0;
                if (r >= 0)
                        r = nap_reconcile_move(x->etcd, x->config->cluster_prefix, l + i, x->nodes + targets[i],
                                               x->leader_revision, e);
                if (r < 0)
                        return r;
                if (r == 0) {
                        x->stats.lost++;
                        continue;
                }
                x->stats.moved++;
                r = dead->node.address ? endpoints_remove(x, l + i, dead->node.address, e) : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int reconcile_node(Round *x, const NapNodeInfo *dead, NapError *e) {
        NapAssignment *l = NULL;
        size_t n = 0;
        int r = nap_assignments_list(x->etcd, x->config->cluster_prefix, dead->node.name, &l, &n, NULL, NULL, e);
        if (r >= 0)
                r = nap_reservations_list(x->etcd, x->config->cluster_prefix, dead->node.name, &x->reservations,
                                          &x->n_reservations, e);
        if (r < 0)
                return nap_assignment_array_free(l, n), r;
        _cleanup_free_ ssize_t *targets = calloc(n ?: 1, sizeof *targets);
        if (!targets)
                r = oom(e);
        if (r >= 0) {
                x->stats.nodes++;
                nap_reconcile_plan(x->nodes, x->n_nodes, l, n, targets);
                r = move_each(x, dead, l, n, targets, e);
        }
        etcd_range_done(&x->endpoints);
        x->endpoints = (EtcdRange) {};
        x->endpoints_of = NULL;
        free(x->reservations);
        x->reservations = NULL;
        nap_assignment_array_free(l, n);
        return r;
}

int nap_reconcile_round(EtcdClient *c, const NapConfig *config, int64_t leader_revision, uint64_t now_usec,
                        NapReconcileStats *ret, NapError *e) {
        Round x = { .etcd = c, .config = config, .leader_revision = leader_revision };
        uint64_t ttl = (uint64_t) config->node_ttl * 1000000ULL,
                 grace = (uint64_t) nap_config_reconcile_grace_sec(config) * 1000000ULL;
        assert(c);
        assert(ret);
        int r = nap_nodes_mark_not_ready(c, config->cluster_prefix, NOT_READY_REASON, now_usec, NULL, e);
        if (r >= 0)
                r = nap_nodes_list(c, config->cluster_prefix, &x.nodes, &x.n_nodes, e);
        for (size_t i = 0; r >= 0 && i < x.n_nodes; i++)
                if (nap_reconcile_node_due(x.nodes + i, now_usec, ttl, grace))
                        r = reconcile_node(&x, x.nodes + i, e);
        nap_node_info_array_free(x.nodes, x.n_nodes);
        *ret = x.stats;
        return r < 0 ? r : 0;
}
