/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Nodes for the inventory's tests (test-inventory, test-reconcile), on the
 * shared etcd of test-etcd-server.h (include that first); PREFIX and GIB
 * are the test's. */

#include "base/clock.h"
#include "cluster/inventory.h"

static NapNode make_node(const char *name, uint64_t cpu_milli, uint64_t memory, const char *labels) {
        NapNode n = { .capacity = { cpu_milli, memory, 100 * GIB }, .registered_usec = realtime_usec() };
        snprintf(n.name, sizeof n.name, "%s", name);
        memset(n.machine_id, 'a', 32);
        memset(n.boot_id, 'b', 32);
        n.address = strdup("10.0.0.1");
        n.version = strdup("test");
        assert_int_equal(nap_labels_parse(labels, &n.labels, NULL), 0);
        return n;
}

/* A node registered with a lease of its own; the lease id. */
static int64_t join(const char *name, uint64_t cpu_milli, uint64_t memory, const char *labels) {
        NapNode n = make_node(name, cpu_milli, memory, labels);
        int64_t lease = 0, ttl = 0;
        assert_int_equal(etcd_lease_grant(etcd, 30, &lease, &ttl, NULL), 0);
        assert_int_equal(nap_node_register(etcd, PREFIX, &n, lease, NULL), 0);
        nap_node_done(&n);
        return lease;
}

