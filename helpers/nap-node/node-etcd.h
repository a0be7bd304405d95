/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-node's etcd clients: one per thread (the loop, the realizer, the
 * reconciler), each connecting within a second and giving up on a request
 * after timeout_usec, so that an unreachable etcd costs each loop
 * seconds, not minutes. */

#include "clients/etcd.h"
#include "model/config.h"

#define NODE_ETCD_CONNECT_TIMEOUT_USEC (1ULL * 1000000ULL)

static inline int node_etcd_client(const NapConfig *config, uint64_t timeout_usec, EtcdClient **ret, NapError *e) {
        int r = etcd_client_new(config->etcd, ret, e);
        if (r < 0)
                return r;
        (*ret)->connect_timeout_usec = NODE_ETCD_CONNECT_TIMEOUT_USEC;
        (*ret)->timeout_usec = timeout_usec;
        return 0;
}
