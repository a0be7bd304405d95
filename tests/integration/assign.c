/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* assign create NODE USER_APP [k=v,k=v] [COMMIT] | assign delete NODE INSTANCE:
 * nap_assignment_create() (the app's counter and the record in one txn)
 * or nap_assignment_delete() (lib/cluster/assignment.h) against Etcd= and
 * ClusterPrefix= of $NAP_CONFIG, until napctl has a verb for them. Prints
 * the instance's name, or the error's kind and message; exits 0 or 1. For
 * tests/integration/test-cluster-apps.sh. */

#include <stdio.h>
#include <string.h>

#include "cluster/assignment.h"

static int create(EtcdClient *c, const NapConfig *conf, char **argv, int argc, NapError *e) {
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
        if (r >= 0)
                printf("%s\n", nap_instance_name(&a.instance, name));
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
        bool is_create = argc >= 4 && argc <= 6 && strcmp(argv[1], "create") == 0;
        if (!is_create && !(argc == 4 && strcmp(argv[1], "delete") == 0)) {
                fprintf(stderr, "usage: assign create NODE USER_APP [k=v,k=v] [COMMIT]\n"
                                "       assign delete NODE INSTANCE\n");
                return 2;
        }
        int r = nap_config_load(&conf, NULL, NULL, &e);
        if (r >= 0)
                r = conf->etcd ? etcd_client_new(conf->etcd, &c, &e)
                               : nap_error_set(&e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "No Etcd= in nap.conf");
        if (r >= 0)
                r = is_create ? create(c, conf, argv + 2, argc - 2, &e) : delete(c, conf, argv + 2, &e);
        if (r < 0)
                printf("%s: %s\n", nap_error_kind_to_string(e.kind), e.message);
        etcd_client_free(c);
        nap_config_free(conf);
        return r < 0;
}
