/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* An instance's resources on this host's node of the cluster: with Etcd=
 * set, its compute request is reserved (lib/cluster/inventory.h) under the
 * instance's own name on the node of Node=, before anything of the
 * instance exists on disk, and released before its manifest goes. Without
 * Etcd= there is no inventory: nothing is reserved, the limits are still
 * applied by systemd. */

#include "cluster/inventory.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"

int ops_reserve_instance(NapContext *c, NapManifest *m, NapError *e) {
        _cleanup_free_ char *node = NULL;
        char name[NAP_UNIT_NAME_MAX];
        EtcdClient *etcd;
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE, .compute = m->resources };

        assert(c);
        assert(m);
        if (nap_compute_is_empty(&m->resources) || !c->config->etcd)
                return 0;
        int k = nap_config_node(c->config, &node, e);
        if (k >= 0)
                k = nap_context_etcd(c, &etcd, e);
        if (k < 0)
                return k;
        snprintf(r.node, sizeof r.node, "%s", node);
        snprintf(r.name, sizeof r.name, "%s", nap_instance_name(&m->instance, name));
        k = nap_reserve(etcd, c->config->cluster_prefix, &r, e);
        if (k < 0)
                return k;
        m->reservation = TAKE_PTR(node);
        return 0;
}

int ops_release_instance(NapContext *c, const NapManifest *m, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        EtcdClient *etcd;

        assert(c);
        assert(m);
        if (!m->reservation)
                return 0;
        NapError why = NAP_ERROR_NULL;
        int k = nap_context_etcd(c, &etcd, &why);
        if (k >= 0)
                k = nap_release(etcd, c->config->cluster_prefix, NAP_RESERVATION_COMPUTE, m->reservation,
                                nap_instance_name(&m->instance, name), &why);
        /* released already (a removal that crashed after it, or by hand) */
        if (k >= 0 || why.kind == NAP_ERROR_NO_SUCH_RESERVATION)
                return 0;
        return nap_error_set(e, why.kind, k, "%s", why.message);
}

int ops_reservation_node(NapContext *c, const NapCompute *request, char *buf, size_t size, NapError *e) {
        _cleanup_free_ char *node = NULL;
        buf[0] = 0;
        if (nap_compute_is_empty(request) || !c->config->etcd)
                return 0;
        int k = nap_config_node(c->config, &node, e);
        if (k >= 0)
                snprintf(buf, size, "%s", node);
        return k;
}
