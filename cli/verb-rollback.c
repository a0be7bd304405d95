/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl rollback and history: the methods Rollback and History
 * (caller_call(): nap-managerd, or in this process with --no-helper);
 * refresh-instances: lib/ops/ops.h in this process. */

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

/* The reply's instances as napctl has always shown them. */
static json_t *reply_instances_json(json_t *reply) {
        json_t *a = json_array(), *i;
        size_t k;
        json_array_foreach(json_object_get(reply, "instances"), k, i)
                if (!a || json_array_append_new(a, json_pack("{s:O, s:O?, s:O, s:O?}", "instance",
                                                             json_object_get(i, "instance"), "url",
                                                             json_object_get(i, "url"), "port",
                                                             json_object_get(i, "port"), "active_state",
                                                             json_object_get(i, "active_state"))) < 0)
                        return json_decref(a), NULL;
        return a;
}

static void print_rollback(const char *service, json_t *reply) {
        json_t *i;
        size_t k;
        if (json_is_true(json_object_get(reply, "changed")))
                printf("Rolled back %s to %.12s (was %.12s)\n", service, json_str(reply, "commit"),
                       json_str(reply, "previous"));
        else
                printf("%s is already at %.12s (unchanged)\n", service, json_str(reply, "commit"));
        json_array_foreach(json_object_get(reply, "instances"), k, i)
                printf("%s %s %s\n", json_str(i, "instance"), json_str(i, "url"), json_str(i, "active_state"));
}

/* --batch= and --drain= as the Rollback method takes them; defaults left out. */
static json_t *rollback_args(char **args, const NapRolloutOptions *o) {
        json_t *p = json_pack("{s:s, s:s?}", "service", args[0], "commit", args[1]);
        char batch[16];
        if (p && o->batch.value > 0) {
                snprintf(batch, sizeof batch, "%u%s", o->batch.value, o->batch.percent ? "%" : "");
                if (json_object_set_new(p, "batch", json_string(batch)) < 0)
                        return json_decref(p), NULL;
        }
        if (p && o->drain_usec > 0 &&
            json_object_set_new(p, "drainSec", json_integer(o->drain_usec == NAP_ROLLOUT_NO_DRAIN
                                                                    ? 0 : (json_int_t) (o->drain_usec / 1000000))) < 0)
                return json_decref(p), NULL;
        return p;
}

int verb_rollback(Caller *c, char **args, bool json, const NapRolloutOptions *options, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "Rollback", rollback_args(args, options), WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (json)
                return output_json(json_pack("{s:s, s:O, s:O, s:O, s:o}", "service", args[0], "commit",
                                             json_object_get(reply, "commit"), "previous",
                                             json_object_get(reply, "previous"), "changed",
                                             json_object_get(reply, "changed"), "instances",
                                             reply_instances_json(reply)));
        print_rollback(args[0], reply);
        return 0;
}

static json_t *result_json(const char *service, const NapRolloutResult *res) {
        return json_pack("{s:s, s:s, s:s, s:b, s:o}", "service", service, "commit", res->deploy.commit, "previous",
                         res->previous, "changed", res->deploy.changed, "instances", instances_json(res));
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

int verb_history(Caller *c, char **args, bool json, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *d, *deploys;
        size_t i;
        char b[32];
        int r = caller_call(c, "History", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        deploys = json_object_get(reply, "deploys");
        if (json)
                return output_json(json_copy(deploys));
        json_array_foreach(deploys, i, d)
                printf("%.12s %s %s%s\n", json_str(d, "commit"), output_time((uint64_t) json_int(d, "time"), b),
                       json_str(d, "url"), i == 0 ? " (deployed)" : "");
        return 0;
}
