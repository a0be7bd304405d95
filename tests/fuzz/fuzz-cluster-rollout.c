/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A rollout's record as etcd hands it back (lib/cluster/rollout.h,
 * PREFIX/rollouts/USER_APP): anything with access to etcd can write there,
 * and the reconciler's leader makes and deletes assignments from what it
 * says. A record that parses must name a commit to roll to, hold only
 * assignments of its own app, and write out and parse again to the same
 * text. */

#include <stdint.h>
#include <stdlib.h>

#include "cluster/rollout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool sane(const NapClusterRollout *r) {
        if (!nap_commit_is_valid(r->to) || !nap_cluster_rollout_phase_to_string(r->phase) ||
            r->n_old > NAP_CLUSTER_ROLLOUT_OLD_MAX)
                return false;
        for (size_t i = 0; i < r->n_old; i++)
                if (memcmp(&r->old[i].instance.service, &r->service, sizeof r->service) != 0)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapClusterRollout r = {}, again = {};
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        if (nap_cluster_rollout_from_json((const char *) data, size, &r, NULL) < 0)
                return 0;
        if (!sane(&r) || nap_cluster_rollout_to_json(&r, &json) < 0 ||
            nap_cluster_rollout_from_json(json, strlen(json), &again, NULL) < 0 ||
            nap_cluster_rollout_to_json(&again, &json2) < 0 || !streq(json, json2))
                abort();
        nap_cluster_rollout_done(&r);
        nap_cluster_rollout_done(&again);
        return 0;
}
