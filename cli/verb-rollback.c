/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl rollback, refresh-instances and history: thin adapters over
 * lib/ops/ops.h. */

#include <jansson.h>

#include "napctl-output.h"
#include "verb-rollback.h"

/* Progress on stderr, so stdout stays the result. */
static void on_progress(void *userdata, const char *message) {
        fprintf(stderr, "napctl: %s\n", message);
}

static json_t *instances_json(const NapRolloutResult *res) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < res->n_instances; i++)
                json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:s?}", "instance", res->instances[i].name,
                                                   "url", res->instances[i].url, "port",
                                                   (json_int_t) res->instances[i].port, "active_state",
                                                   res->instances[i].active_state));
        return a;
}

static void print_rollback(const char *service, const NapRolloutResult *res) {
        if (res->deploy.changed)
                printf("Rolled back %s to %.12s (was %.12s)\n", service, res->deploy.commit, res->previous);
        else
                printf("%s is already at %.12s (unchanged)\n", service, res->deploy.commit);
        for (size_t i = 0; i < res->n_instances; i++)
                printf("%s %s %s\n", res->instances[i].name, res->instances[i].url,
                       strempty(res->instances[i].active_state));
}

static json_t *result_json(const char *service, const NapRolloutResult *res) {
        return json_pack("{s:s, s:s, s:s, s:b, s:o}", "service", service, "commit", res->deploy.commit, "previous",
                         res->previous, "changed", res->deploy.changed, "instances", instances_json(res));
}

int verb_rollback(NapContext *c, char **args, bool json, const NapRolloutOptions *options, NapError *e) {
        NapRolloutOptions o = *options;
        NapRolloutResult res;
        o.progress = json ? NULL : on_progress;
        int r = nap_rollback(c, args[0], args[1], &o, &res, e);
        if (r < 0)
                return r;
        if (json)
                r = output_json(result_json(args[0], &res));
        else
                print_rollback(args[0], &res);
        nap_rollout_result_done(&res);
        return r;
}

static void print_refreshed(const char *service, const NapRolloutResult *res) {
        printf("Replaced the instances of %s (%.12s)\n", service, res->deploy.commit);
        for (size_t i = 0; i < res->n_instances; i++)
                printf("%s %s %s\n", res->instances[i].name, res->instances[i].url,
                       strempty(res->instances[i].active_state));
}

int verb_refresh_instances(NapContext *c, char **args, bool json, const NapRolloutOptions *options, NapError *e) {
        NapRolloutOptions o = *options;
        NapRolloutResult res;
        o.progress = json ? NULL : on_progress;
        int r = nap_refresh_instances(c, args[0], &o, &res, e);
        if (r < 0)
                return r;
        if (json)
                r = output_json(result_json(args[0], &res));
        else
                print_refreshed(args[0], &res);
        nap_rollout_result_done(&res);
        return r;
}

int verb_history(NapContext *c, char **args, bool json, NapError *e) {
        NapDeployRecord *l;
        size_t n;
        char b[32];
        int r = nap_deploy_history(c, args[0], &l, &n, e);
        if (r < 0)
                return r;
        json_t *a = json ? json_array() : NULL;
        for (size_t i = 0; i < n; i++)
                if (a)
                        json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "commit", l[i].commit, "url", l[i].url,
                                                           "time", (json_int_t) l[i].time_usec));
                else
                        printf("%.12s %s %s%s\n", l[i].commit, output_time(l[i].time_usec, b), l[i].url,
                               i == 0 ? " (deployed)" : "");
        nap_deploy_record_array_free(l, n);
        return a ? output_json(a) : 0;
}
