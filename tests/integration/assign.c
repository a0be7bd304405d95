/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* assign create|start NODE USER_APP [k=v,k=v] [COMMIT]
 * assign delete NODE INSTANCE
 * nap_assignment_create() (the app's counter and the record in one txn)
 * or nap_assignment_delete() (lib/cluster/assignment.h) against Etcd= and
 * ClusterPrefix= of $NAP_CONFIG, until napctl has a verb for them; start
 * also waits (nap_observed_wait(), 60 s) until the node reports the
 * instance and prints its URL from the node's address, as start-common on
 * another node will. Prints the instance's name (and URL), or the error's
 * kind and message; exits 0 or 1. For tests/integration/test-cluster-apps.sh. */

#include <stdio.h>
#include <string.h>

#include "cluster/assignment.h"
#include "cluster/inventory.h"

#define WAIT_USEC (60ULL * 1000000ULL)

/* Until the node reports a's instance: its URL, or why not. */
static int wait_reported(EtcdClient *c, const NapConfig *conf, const NapAssignment *a, NapError *e) {
        NapObserved o = {};
        NapNodeInfo node = {};
        int r = nap_observed_wait(c, conf->cluster_prefix, a->node, &a->instance, a->generation, WAIT_USEC, &o, e);
        if (r >= 0 && o.state == NAP_OBSERVED_FAILED)
                r = nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO, "Node %s failed it: %s", a->node, strempty(o.reason));
        if (r >= 0)
                r = nap_node_get(c, conf->cluster_prefix, a->node, &node, e);
        if (r >= 0)
                printf(" http://%s:%u", node.node.address, o.port);
        nap_node_info_done(&node);
        nap_observed_done(&o);
        return r;
}

static int create(EtcdClient *c, const NapConfig *conf, char **argv, int argc, bool wait, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        NapAssignment a = { .enabled = true };
        snprintf(a.node, sizeof a.node, "%s", argv[0]);
        int r = nap_service_parse(argv[1], &a.instance.service, e);
        if (r >= 0)
                r = argc > 2 ? nap_params_parse(argv[2], strlen(argv[2]), &a.params, e) : nap_params_new(&a.params);
        if (r >= 0 && argc > 3)
                snprintf(a.commit, sizeof a.commit, "%s", argv[3]);
        if (r >= 0)
                r = nap_assignment_create(c, conf->cluster_prefix, &a, e);
        if (r < 0)
                return nap_assignment_done(&a), r;
        printf("%s", nap_instance_name(&a.instance, name));
        if (wait)
                r = wait_reported(c, conf, &a, e);
        printf("\n");
        nap_assignment_done(&a);
        return r;
}

static int delete(EtcdClient *c, const NapConfig *conf, char **argv, NapError *e) {
        NapInstance i;
        int r = nap_instance_parse(argv[1], &i, e);
        if (r >= 0)
                r = nap_assignment_delete(c, conf->cluster_prefix, argv[0], &i, e);
        if (r >= 0)
                printf("%s\n", argv[1]);
        return r;
}

int main(int argc, char *argv[]) {
        NapError e = NAP_ERROR_NULL;
        NapConfig *conf = NULL;
        EtcdClient *c = NULL;
        bool wait = argc >= 2 && strcmp(argv[1], "start") == 0;
        bool is_create = argc >= 4 && argc <= 6 && (wait || strcmp(argv[1], "create") == 0);
        if (!is_create && !(argc == 4 && strcmp(argv[1], "delete") == 0)) {
                fprintf(stderr, "usage: assign create|start NODE USER_APP [k=v,k=v] [COMMIT]\n"
                                "       assign delete NODE INSTANCE\n");
                return 2;
        }
        int r = nap_config_load(&conf, NULL, NULL, &e);
        if (r >= 0)
                r = conf->etcd ? etcd_client_new(conf->etcd, &c, &e)
                               : nap_error_set(&e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "No Etcd= in nap.conf");
        if (r >= 0)
                r = is_create ? create(c, conf, argv + 2, argc - 2, wait, &e) : delete(c, conf, argv + 2, &e);
        if (r < 0)
                printf("%s: %s\n", nap_error_kind_to_string(e.kind), e.message);
        etcd_client_free(c);
        nap_config_free(conf);
        return r < 0;
}
