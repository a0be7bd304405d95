/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl: one verb per operation of the seed interface. Each verb is one
 * table entry and one small function: it calls io.nap.Manager.<Method> —
 * on nap-managerd over varlink, or in this process with --no-helper
 * (napctl-call.h) — and prints the reply for people, or as JSON with
 * --json (napctl-output.h). The verbs marked local in the table have no
 * method in the interface and always run in this process. */

#include <getopt.h>
#include <signal.h>
#include <jansson.h>
#include <unistd.h>

#include "cluster/queue.h"
#include "model/names.h"
#include "model/resources.h"
#include "nap-config.h"
#include "napctl-call.h"
#include "napctl-output.h"
#include "verb-export.h"
#include "verb-keys.h"
#include "verb-lifecycle.h"
#include "verb-mpi.h"
#include "verb-nodes.h"
#include "verb-queue.h"
#include "verb-rollback.h"
#include "verb-web.h"

static bool arg_json = false;
static bool arg_follow = false;
static size_t arg_lines = 10;
static Caller arg_caller = { .scope = -1 };
static NodeOptions arg_node = {};
static unsigned arg_given = 0; /* the options below that were given */
static const char *arg_request_id = NULL;
static const char *arg_on_node = NULL; /* start-common --node= */
static bool arg_cluster = false;       /* start-common --cluster */
static bool arg_no_block = false;
static bool arg_wait_in_queue = false;
static NapRolloutOptions arg_rollout = {}; /* --batch=, --drain= */
static bool arg_yes = false;
static QueueOptions arg_queue = {};

/* Options only some verbs take; any other verb refuses them. */
enum {
        OPT_FOLLOW = 1 << 0,
        OPT_CPU = 1 << 1,
        OPT_MEMORY = 1 << 2,
        OPT_STORAGE = 1 << 3,
        OPT_LABELS = 1 << 4,
        OPT_POLICY = 1 << 5,
        OPT_COUNT = 1 << 6,
        OPT_FORCE = 1 << 7,
        OPT_REQUEST_ID = 1 << 8,
        OPT_NO_BLOCK = 1 << 9,
        OPT_YES = 1 << 10,
        OPT_BATCH = 1 << 11,
        OPT_DRAIN = 1 << 12,
        OPT_OWNER = 1 << 13,
        OPT_STATUS = 1 << 14,
        OPT_NODE = 1 << 15,
        OPT_QUEUE = 1 << 16,
        OPT_CLUSTER = 1 << 17,
        OPT_ROLLOUT = OPT_BATCH | OPT_DRAIN,
        OPT_COMPUTE = OPT_CPU | OPT_MEMORY,
        OPT_SCHEDULE = OPT_LABELS | OPT_POLICY | OPT_COUNT,
};

static const struct {
        unsigned bit;
        const char *name;
} option_names[] = {
        { OPT_FOLLOW, "--follow" },   { OPT_CPU, "--cpu=" },       { OPT_MEMORY, "--memory=" },
        { OPT_STORAGE, "--storage=" }, { OPT_LABELS, "--labels=" }, { OPT_POLICY, "--policy=" },
        { OPT_COUNT, "--count=" },     { OPT_FORCE, "--force" },   { OPT_REQUEST_ID, "--request-id=" },
        { OPT_NO_BLOCK, "--no-block" }, { OPT_YES, "--yes" },
        { OPT_BATCH, "--batch=" },     { OPT_DRAIN, "--drain=" },
        { OPT_OWNER, "--owner=" },     { OPT_STATUS, "--status=" }, { OPT_NODE, "--node=" },
        { OPT_QUEUE, "--queue" },      { OPT_CLUSTER, "--cluster" },
};

/* A verb; "node show": the sub-verb show of node. */
typedef struct Verb {
        const char *name;
        const char *args;
        unsigned min_args, max_args;
        int (*run)(Caller *c, char **args, NapError *e);
        bool local; /* no io.nap.Manager method: always in this process */
        const char *help;
        unsigned options;    /* OPT_* it takes */
        node_verb_fn run_node; /* instead of run: verb-nodes.h */
        lifecycle_verb_fn run_app; /* instead of run: verb-lifecycle.h */
        queue_verb_fn run_queue; /* instead of run: verb-queue.h */
} Verb;

/* ---- verbs over io.nap.Manager ---------------------------------------- */

/* The helper's working directory is not ours: a relative path to a local
 * repository is made absolute here. Anything else goes as given. */
static int url_absolute(const char *url, char **ret, NapError *e) {
        _cleanup_free_ char *cwd = NULL;
        if (strstr(url, "://") || url[0] == '/' || access(url, F_OK) < 0)
                *ret = strdup(url);
        else if ((cwd = getcwd(NULL, 0))) {
                if (asprintf(ret, "%s/%s", streq(cwd, "/") ? "" : cwd, url) < 0)
                        *ret = NULL;
        } else
                return nap_error_errno(e, -errno, "Failed to find the current directory");
        return *ret ? 0 : nap_error_errno(e, -ENOMEM, "Failed to read the URL");
}

static int verb_deploy_app(Caller *c, char **args, NapError *e) {
        _cleanup_free_ char *url = NULL;
        json_auto_t *reply = NULL;
        char b[13];
        int r = url_absolute(args[1], &url, e);
        if (r >= 0)
                r = caller_call(c, "DeployApp", json_pack("{s:s, s:s}", "service", args[0], "url", url),
                                WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        output_warn_pending(reply, "the app's URL");
        if (arg_json)
                return output_json(json_ordered(reply, "service", "commit", "url", "changed", "etcd", NULL));
        printf(json_is_true(json_object_get(reply, "changed")) ? "Deployed %s at %s from %s\n"
                                                                : "%s is already at %s from %s (unchanged)\n",
               args[0], short_commit(json_str(reply, "commit"), b), json_str(reply, "url"));
        return 0;
}

static int verb_list_services(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *s;
        size_t i;
        char b[13];
        int r = caller_call(c, "ListServices", json_pack("{s:s}", "user", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        json_array_foreach(json_object_get(reply, "services"), i, s)
                if (a)
                        json_array_append_new(a, json_ordered(s, "service", "app", "commit", "url", "deployed", NULL));
                else
                        printf("%s\t%s\t%s\n", json_str(s, "service"), short_commit(json_str(s, "commit"), b),
                               json_str(s, "url"));
        return a ? output_json(a) : 0;
}

static int verb_get_parameters(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *p;
        size_t i;
        int r = caller_call(c, "GetParameters", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *l = json_object_get(reply, "parameters");
        if (arg_json)
                return output_json(json_incref(l) ?: json_array());
        json_array_foreach(l, i, p)
                printf("%s%s", i > 0 ? "," : "", json_string_value(p) ?: "");
        putchar('\n');
        return 0;
}

static json_t *instance_json(json_t *i) {
        return json_ordered(i, "instance", "unit", "number", "port", "url", "enabled", "active_state", "sub_state",
                            "argv", "params", NULL);
}

static int start_common_call(Caller *c, char **args, const char *id, json_t **reply, NapError *e) {
        /* With a request id, a call whose answer was lost is safe to send
         * again: the helper answers with the instance it made. */
        return caller_call_retrying(c, "StartCommon",
                                    json_pack("{s:s, s:s*, s:s*, s:s*, s:s, s:b, s:b, s:s*, s:b}", "service", args[0],
                                              "paramsString", args[1], "cpu", arg_node.cpu, "memory", arg_node.memory,
                                              "requestId", id, "noBlock", arg_no_block, "queue", arg_wait_in_queue,
                                              "node", arg_on_node, "cluster", arg_cluster),
                                    WRITE_TIMEOUT, reply, e);
}

static int verb_start_common(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        char id[CALLER_REQUEST_ID_MAX];
        NapCompute checked; /* --cpu=/--memory= checked here: bad input goes nowhere */
        int r = options_compute(&arg_node, &checked, e);
        if (r >= 0)
                r = caller_request_id(arg_request_id, id, e);
        if (r >= 0)
                r = start_common_call(c, args, id, &reply, e);
        if (r >= 0 && json_object_get(reply, "queued")) {
                r = queue_wait_start(c, args[0], id, json_object_get(reply, "queued"), arg_json, arg_no_block, e);
                if (r > 0)
                        return 0;
                json_decref(TAKE_PTR(reply));
                if (r >= 0) /* admitted: the same call again starts it on the job's reservation */
                        r = start_common_call(c, args, id, &reply, e);
        }
        if (r < 0)
                return r;
        json_t *i = json_object_get(reply, "instance");
        output_warn_pending(reply, "the instance's port");
        if (arg_json)
                return output_json(instance_json(i));
        printf("%s %s\n", json_str(i, "instance"), json_str(i, "url"));
        return 0;
}

static int verb_recover(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "Recover", json_object(), WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (arg_json)
                return output_json(json_incref(reply));
        printf("Recovered %" JSON_INTEGER_FORMAT " app(s), %" JSON_INTEGER_FORMAT " failed; %" JSON_INTEGER_FORMAT
               " request id(s) expired.\n",
               json_integer_value(json_object_get(reply, "recovered")), json_integer_value(json_object_get(reply, "failed")),
               json_integer_value(json_object_get(reply, "requestsExpired")));
        if (json_object_get(reply, "lastError"))
                fprintf(stderr, "napctl: %s\n", json_str(reply, "lastError"));
        if (json_integer_value(json_object_get(reply, "keysChecked")) > 0)
                printf("etcd: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " keys written again.\n",
                       json_integer_value(json_object_get(reply, "keysWritten")),
                       json_integer_value(json_object_get(reply, "keysChecked")));
        if (json_object_get(reply, "etcdError"))
                fprintf(stderr, "napctl: etcd's keys not checked: %s\n", json_str(reply, "etcdError"));
        return json_integer_value(json_object_get(reply, "failed")) > 0 ? -EIO : 0;
}

static int verb_list_instances(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *i;
        size_t k;
        int r = caller_call(c, "ListInstances", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        json_t *commits = json_object_get(reply, "commits"), *nodes = json_object_get(reply, "nodes");
        /* NODE only in a cluster (Etcd=), before VERSION: a single host's
         * columns stay, and VERSION stays the last */
        bool with_nodes = json_object_size(nodes) > 0;
        char b[13];
        if (!a)
                printf(with_nodes ? "%-40s %-6s %-8s %-10s %-10s %-12s %s\n" : "%-40s %-6s %-8s %-10s %-10s %s%s\n",
                       "INSTANCE", "PORT", "ENABLED", "ACTIVE", "SUB", with_nodes ? "NODE" : "", "VERSION");
        json_array_foreach(json_object_get(reply, "instances"), k, i) {
                const char *commit = json_str(commits, json_str(i, "instance"));
                const char *node = json_str(nodes, json_str(i, "instance"));
                if (a) {
                        json_t *j = instance_json(i);
                        json_object_set_new(j, "commit", *commit ? json_string(commit) : json_null());
                        json_object_set_new(j, "node", *node ? json_string(node) : json_null());
                        json_array_append_new(a, j);
                } else
                        printf(with_nodes ? "%-40s %-6lld %-8s %-10s %-10s %-12s %s\n" : "%-40s %-6lld %-8s %-10s %-10s %s%s\n",
                               json_str(i, "instance"), (long long) json_int(i, "port"),
                               json_is_true(json_object_get(i, "enabled")) ? "yes" : "no", json_str(i, "active_state"),
                               json_str(i, "sub_state"), with_nodes ? (*node ? node : "-") : "",
                               *commit ? short_commit(commit, b) : "-");
        }
        return a ? output_json(a) : 0;
}

static int verb_get_instances_num(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "GetInstancesNum", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (arg_json)
                return output_json(json_ordered(reply, "service", "instances", NULL));
        printf("%lld\n", (long long) json_int(reply, "instances"));
        return 0;
}

/* StartApp, StopApp, RestartApp, RemoveInstance: silent on success. */
static int call_instance(Caller *c, const char *method, const char *instance, NapError *e) {
        json_auto_t *reply = NULL;
        return caller_call(c, method, json_pack("{s:s}", "instance", instance), WRITE_TIMEOUT, &reply, e);
}

/* StartApp, RestartApp: they wait for the instance to answer unless
 * --no-block. */
static int call_starting(Caller *c, const char *method, const char *instance, NapError *e) {
        json_auto_t *reply = NULL;
        return caller_call(c, method, json_pack("{s:s, s:b}", "instance", instance, "noBlock", arg_no_block),
                           WRITE_TIMEOUT, &reply, e);
}

static int verb_start_app(Caller *c, char **args, NapError *e) {
        return call_starting(c, "StartApp", args[0], e);
}

static int verb_restart_app(Caller *c, char **args, NapError *e) {
        return call_starting(c, "RestartApp", args[0], e);
}

static int verb_stop_app(Caller *c, char **args, NapError *e) {
        return call_instance(c, "StopApp", args[0], e);
}

static int verb_remove_instance(Caller *c, char **args, NapError *e) {
        return call_instance(c, "RemoveInstance", args[0], e);
}

static int verb_cat_app(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "CatApp", json_pack("{s:s}", "instance", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (arg_json)
                return output_json(json_ordered(reply, "instance", "profile", NULL));
        fputs(json_str(reply, "profile"), stdout);
        return 0;
}

/* One reply of GetJournal: its entries, as lines or (following, --json)
 * one JSON object per line; flushed, so a pipe sees each as it comes. */
static int print_journal_reply(json_t *reply, void *userdata, NapError *e) {
        json_t *entry;
        size_t i;
        json_array_foreach(json_object_get(reply, "entries"), i, entry)
                if (arg_json)
                        (void) output_json_line(json_ordered(entry, "time", "message", "priority", "identifier",
                                                             "pid", NULL));
                else
                        output_journal_entry(entry);
        if (fflush(stdout) == EOF || ferror(stdout))
                return nap_error_errno(e, -EIO, "Failed to write the log");
        return 0;
}

static int verb_get_journal(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *entry;
        size_t i;
        json_t *p = json_pack("{s:s, s:I}", "instance", args[0], "lines", (json_int_t) arg_lines);
        if (arg_follow)
                return caller_follow(c, "GetJournal", p, print_journal_reply, NULL, e);
        int r = caller_call(c, "GetJournal", p, READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (!arg_json)
                return print_journal_reply(reply, NULL, e);
        json_t *a = json_array();
        json_array_foreach(json_object_get(reply, "entries"), i, entry)
                json_array_append_new(a, json_ordered(entry, "time", "message", "priority", "identifier", "pid", NULL));
        return output_json(a);
}

static int verb_get_service_url(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        NapService s;
        char name[NAP_SERVICE_NAME_MAX];
        /* USER_APP as every verb takes it, or the seed's USER APP. */
        int r = args[1] ? nap_service_from_parts(args[0], args[1], &s, e) : nap_service_parse(args[0], &s, e);
        if (r >= 0)
                r = caller_call(c, "GetServiceUrl", json_pack("{s:s}", "service", nap_service_name(&s, name)),
                                READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (arg_json)
                return output_json(json_pack("{s:s, s:s, s:O?, s:O*}", "user", s.user, "app", s.app, "url",
                                             json_object_get(reply, "url"), "source",
                                             json_object_get(reply, "source")));
        printf("%s\n", json_str(reply, "url"));
        return 0;
}

static int verb_get_port(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "GetPort", json_pack("{s:s}", "instance", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (arg_json)
                return output_json(json_pack("{s:s, s:O?, s:O*}", "instance", args[0], "port",
                                             json_object_get(reply, "port"), "source",
                                             json_object_get(reply, "source")));
        printf("%lld\n", (long long) json_int(reply, "port"));
        return 0;
}

static int verb_endpoints(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *ep;
        size_t k;
        int r = caller_call(c, "ListEndpoints", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        json_array_foreach(json_object_get(reply, "endpoints"), k, ep)
                if (a)
                        json_array_append_new(a, json_ordered(ep, "host", "port", "instance", "unit", NULL));
                else
                        printf(strchr(json_str(ep, "host"), ':') ? "[%s]:%lld\t%s\n" : "%s:%lld\t%s\n",
                               json_str(ep, "host"), (long long) json_int(ep, "port"), json_str(ep, "instance"));
        return a ? output_json(a) : 0;
}

/* ---- verbs in this process -------------------------------------------- */

static int verb_keys_local(Caller *c, char **args, NapError *e) {
        NapContext *ctx;
        int r = caller_context(c, &ctx, e);
        return r < 0 ? r : verb_keys(ctx, args, arg_json, e);
}

static int verb_rollback_call(Caller *c, char **args, NapError *e) {
        return verb_rollback(c, args, arg_json, &arg_rollout, e);
}

static int verb_refresh_instances_local(Caller *c, char **args, NapError *e) {
        NapContext *ctx;
        int r = caller_context(c, &ctx, e);
        return r < 0 ? r : verb_refresh_instances(ctx, args, arg_json, &arg_rollout, e);
}

static int verb_export_units_call(Caller *c, char **args, NapError *e) {
        return verb_export_units(c, args, arg_json, arg_node.force, e);
}

static int verb_history_call(Caller *c, char **args, NapError *e) {
        return verb_history(c, args, arg_json, e);
}

static int verb_web_token_local(Caller *c, char **args, NapError *e) {
        NapContext *ctx;
        int r = caller_context(c, &ctx, e);
        return r < 0 ? r : verb_web_token(ctx, args, arg_json, e);
}

static int verb_web_revoke_local(Caller *c, char **args, NapError *e) {
        NapContext *ctx;
        int r = caller_context(c, &ctx, e);
        return r < 0 ? r : verb_web_revoke(ctx, args, arg_json, e);
}

static const Verb verbs[] = {
        { "deploy-app", "USER_APP URL", 2, 2, .run = verb_deploy_app, .help = "Fetch an app (git URL or path) without running it" },
        { "list-services", "USER", 1, 1, .run = verb_list_services, .help = "List the apps a user has deployed" },
        { "get-parameters", "USER_APP", 1, 1, .run = verb_get_parameters, .help = "List the {parameters} of an app's profile" },
        { "start-common", "USER_APP [k=v,k=v]", 1, 2, .run = verb_start_common, .options = OPT_COMPUTE | OPT_REQUEST_ID | OPT_NO_BLOCK | OPT_NODE | OPT_QUEUE | OPT_CLUSTER, .help = "Start a new instance and wait until it answers (--cpu, --memory, --request-id, --no-block, --node, --cluster, --queue)" },
        { "list-instances", "USER_APP", 1, 1, .run = verb_list_instances, .help = "List an app's instances and their state" },
        { "get-instances-num", "USER_APP", 1, 1, .run = verb_get_instances_num, .help = "Count an app's instances" },
        { "start-app", "INSTANCE", 1, 1, .run = verb_start_app, .options = OPT_NO_BLOCK, .help = "Start an instance (and at boot), wait until it answers" },
        { "stop-app", "INSTANCE", 1, 1, .run = verb_stop_app, .help = "Stop an instance and keep it stopped at boot" },
        { "restart-app", "INSTANCE", 1, 1, .run = verb_restart_app, .options = OPT_NO_BLOCK, .help = "Stop an instance if it runs, start it, wait until it answers" },
        { "cat-app", "INSTANCE", 1, 1, .run = verb_cat_app, .help = "Show an instance's profile" },
        { "get-journal", "INSTANCE", 1, 1, .run = verb_get_journal, .options = OPT_FOLLOW, .help = "Show the last lines of an instance's log (-f: follow it)" },
        { "remove-instance", "INSTANCE", 1, 1, .run = verb_remove_instance, .help = "Stop and delete an instance" },
        { "get-service-url", "USER_APP", 1, 2, .run = verb_get_service_url, .help = "Show the URL an app was deployed from" },
        { "get-port", "INSTANCE", 1, 1, .run = verb_get_port, .help = "Show the port of an instance" },
        { "endpoints", "USER_APP", 1, 1, .run = verb_endpoints, .help = "List an app's live endpoints (from etcd)" },
        { "export-units", "USER_APP DIR", 2, 2, .run = verb_export_units_call, .options = OPT_FORCE, .help = "Write the instances as whole units (and sidecars) for fleet into DIR (--force)" },
        { "rollback", "USER_APP [COMMIT]", 1, 2, .run = verb_rollback_call, .options = OPT_ROLLOUT, .help = "Redeploy an earlier commit and replace the instances (--batch, --drain)" },
        { "refresh-instances", "USER_APP", 1, 1, .run = verb_refresh_instances_local, .local = true, .options = OPT_ROLLOUT, .help = "Replace every instance from the deployed tree, without downtime (--batch, --drain)" },
        { "history", "USER_APP", 1, 1, .run = verb_history_call, .help = "List an app's deploys, newest first" },
        { "scale", "USER_APP N [K=V...]", 2, 66, .run_app = verb_scale, .help = "Start or remove instances until the app has N" },
        { "config set", "USER_APP K=V...", 2, 65, .run_app = verb_config_set, .help = "Set variables of every instance's environment, restart them" },
        { "config unset", "USER_APP KEY...", 2, 65, .run_app = verb_config_unset, .help = "Remove variables of the app's environment, restart" },
        { "config get", "USER_APP [KEY]", 1, 2, .run_app = verb_config_get, .help = "Show the app's environment (KEY=VALUE), or one value" },
        { "restart", "INSTANCE|USER_APP", 1, 1, .run_app = verb_restart, .options = OPT_NO_BLOCK, .help = "Restart an instance, or all of an app's one by one" },
        { "destroy-app", "USER_APP --yes", 1, 1, .run_app = verb_destroy_app, .options = OPT_YES, .help = "Remove an app and everything of it from this host" },
        { "start-mpi", "USER_APP [k=v,k=v]", 1, 2, .run_app = verb_start_mpi, .options = OPT_COMPUTE | OPT_NO_BLOCK | OPT_REQUEST_ID | OPT_QUEUE, .help = "Start an MPI job (np=N ranks, each --cpu, --memory), wait for its end, show its result (--no-block, --request-id, --queue)" },
        { "mpi-job", "USER_APP JOB", 2, 2, .run_app = verb_mpi_job, .help = "Show an MPI job's result and its units" },
        { "status", "[USER]", 0, 1, .run_app = verb_status, .help = "Every app: instances, version, health, ports" },
        { "recover", "", 0, 0, .run = verb_recover, .help = "Finish or undo operations cut short by a crash (root)" },
        { "keys", "add|list|remove ...", 1, 3, .run = verb_keys_local, .local = true, .help = "Manage who may git push (root)" },
        { "web token", "[USER]", 0, 1, .run = verb_web_token_local, .local = true, .help = "Make USER's nap-web sign-in token (replaces the old one)" },
        { "web revoke", "[USER]", 0, 1, .run = verb_web_revoke_local, .local = true, .help = "Remove USER's nap-web token, ending their sessions" },
        { "nodes", "", 0, 0, .run_node = verb_nodes, .help = "List the cluster's nodes, their status and usage" },
        { "node show", "NAME", 1, 1, .run_node = verb_node_show, .help = "Show a node and what is reserved on it" },
        { "node apply", "NAME ADDRESS", 2, 2, .run_node = verb_node_apply, .options = OPT_COMPUTE | OPT_STORAGE | OPT_LABELS, .help = "Write a node's record: --cpu --memory --storage [--labels] (root)" },
        { "node delete", "NAME", 1, 1, .run_node = verb_node_delete, .options = OPT_FORCE, .help = "Remove a node (--force: and its reservations) (root)" },
        { "reserve compute", "NODE NAME", 2, 2, .run_node = verb_reserve_compute, .options = OPT_COMPUTE, .help = "Reserve --cpu and/or --memory on a node" },
        { "reserve storage", "NODE NAME", 2, 2, .run_node = verb_reserve_storage, .options = OPT_STORAGE, .help = "Reserve --storage on a node" },
        { "release compute", "NODE NAME", 2, 2, .run_node = verb_release_compute, .help = "Release a compute reservation" },
        { "release storage", "NODE NAME", 2, 2, .run_node = verb_release_storage, .help = "Release a storage reservation" },
        { "schedule compute", "NAME", 1, 1, .run_node = verb_schedule_compute, .options = OPT_COMPUTE | OPT_SCHEDULE, .help = "Reserve --cpu/--memory on the best node(s)" },
        { "schedule storage", "NAME", 1, 1, .run_node = verb_schedule_storage, .options = OPT_STORAGE | OPT_SCHEDULE, .help = "Reserve --storage on the best node(s)" },
        { "queue list", "TYPE", 1, 1, .run_queue = verb_queue_list, .options = OPT_OWNER | OPT_STATUS, .help = "List a resource queue's jobs in order (--owner, --status)" },
        { "queue show", "TYPE ID", 2, 2, .run_queue = verb_queue_show, .help = "Show a job: status, placements, callback" },
        { "queue submit", "TYPE ID CALLBACK VCPU,MIB,GIB...", 4, 19, .run_queue = verb_queue_submit, .options = OPT_OWNER, .help = "Queue a job of instances; CALLBACK is POSTed when admitted" },
        { "queue move", "TYPE ID first|last|after:ID|N", 3, 3, .run_queue = verb_queue_move, .help = "Reorder a queued job" },
        { "queue cancel", "TYPE ID", 2, 2, .run_queue = verb_queue_cancel, .help = "Cancel a job (a running one's reservations are freed)" },
        { "queue done", "TYPE ID", 2, 2, .run_queue = verb_queue_done, .help = "End a running job, freeing its reservations" },
        { "queue history", "TYPE ID", 2, 2, .run_queue = verb_queue_history, .help = "Show a job's status history" },
        { "queue token", "OWNER", 1, 1, .run_queue = verb_queue_token, .help = "Make a bearer token for the queue over TCP (root)" },
        { "queue secret", "[OWNER]", 0, 1, .run_queue = verb_queue_secret, .help = "Show the secret signing an owner's callbacks" },
};

/* ---- main ------------------------------------------------------------- */

static void help(void) {
        printf("napctl [OPTIONS...] COMMAND ...\n\n"
               "Deploy apps and control their instances on this host.\n\n"
               "Commands (INSTANCE is USER_APP_common@N; * runs in napctl itself):\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-18s %-20s %s%s\n", verbs[i].name, verbs[i].args, verbs[i].local ? "* " : "",
                       verbs[i].help);
        printf("\nOptions:\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "     --user            Use the calling user's service manager and nap-managerd\n"
               "     --system          Use the system ones (Scope= in nap.conf by default)\n"
               "     --address=PATH    Talk to the nap-managerd listening on PATH\n"
               "     --no-helper       Run the operation in this process, not in nap-managerd\n"
               "     --json            Print results as JSON\n"
               "  -n --lines=N         Lines for get-journal (default 10)\n"
               "  -f --follow          get-journal: print new lines as they come, until interrupted\n"
               "     --no-block        start-common, start-app, restart-app, restart INSTANCE:\n"
               "                       return once systemd started it, without waiting for an answer\n"
               "                       (start-common, start-mpi --queue: once the start is queued)\n"
               "     --queue           start-common, start-mpi with --cpu/--memory: when they do not\n"
               "                       fit now, wait in the resource queue (Ctrl-C cancels), then start\n"
               "     --node=NODE       start-common: on that node of the cluster (its nap-node\n"
               "                       starts it; Etcd= needed)\n"
               "     --cluster         start-common: on the Ready node with room that holds the\n"
               "                       fewest instances (ClusterApps=yes in nap.conf by default)\n"
               "     --yes             destroy-app: yes, remove the app for good\n"
               "     --batch=N|P%%      rollback, refresh-instances: instances replaced at once\n"
               "                       (RolloutBatch= in nap.conf by default)\n"
               "     --drain=SEC       rollback, refresh-instances: seconds from withdrawing an old\n"
               "                       instance's endpoint to stopping it (RolloutDrainSec=)\n"
               "\nOptions of the node commands:\n"
               "     --cpu=CPU[:LIMIT]        CPU in milli-cores (500m) or cores (0.5, 2)\n"
               "     --memory=SIZE[:LIMIT]    Memory in bytes, or with K, M, G, T (powers of 1024)\n"
               "     --storage=SIZE[:LIMIT]   Storage, as --memory; node apply: the capacity (one\n"
               "                              amount); reserve, schedule: the request and the limit\n"
               "     --labels=K=V,...         node apply: the node's labels; schedule: only nodes\n"
               "                              with all of them\n"
               "     --policy=spread|binpack  schedule: the least (default) or most loaded node\n"
               "     --count=N                schedule: N reservations NAME.1 ... NAME.N (1 to 32)\n"
               "     --force                  node delete: drop its reservations too;\n"
               "                              export-units: replace files of other contents\n"
               "\nOptions of the queue commands (nap-queued(8); its socket: $NAP_QUEUE_SOCKET):\n"
               "     --owner=USER             list: only USER's jobs; submit: for USER (root)\n"
               "     --status=STATUS          list: queued, running, done or cancelled\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG.\n"
               "See napctl(1), nap-managerd(8), nap.conf(5) and nap.profile(5).\n",
               NAP_CONFIG_DEFAULT_PATH);
}

enum {
        ARG_VERSION = 0x100,
        ARG_USER,
        ARG_SYSTEM,
        ARG_JSON,
        ARG_ADDRESS,
        ARG_NO_HELPER,
        ARG_CPU,
        ARG_MEMORY,
        ARG_STORAGE,
        ARG_LABELS,
        ARG_POLICY,
        ARG_COUNT,
        ARG_FORCE,
        ARG_REQUEST_ID,
        ARG_NO_BLOCK,
        ARG_YES,
        ARG_QUEUE,
        ARG_BATCH,
        ARG_DRAIN,
        ARG_OWNER,
        ARG_STATUS,
        ARG_NODE,
        ARG_CLUSTER,
};

static int parse_lines(const char *s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end || *s == '-' || v > 10000) {
                fprintf(stderr, "napctl: --lines= takes a number from 0 to 10000, not '%s'\n", s);
                return -EINVAL;
        }
        arg_lines = v;
        return 0;
}

static int parse_batch(const char *s) {
        arg_given |= OPT_BATCH;
        if (nap_rollout_batch_parse(s, &arg_rollout.batch) >= 0)
                return 0;
        fprintf(stderr, "napctl: --batch= takes a number of instances (1 to %u) or a percentage (1%% to 100%%), not '%s'\n",
                NAP_ROLLOUT_BATCH_MAX, s);
        return -EINVAL;
}

static int parse_drain(const char *s) {
        char *end;
        arg_given |= OPT_DRAIN;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end || *s < '0' || *s > '9' || v > NAP_ROLLOUT_DRAIN_SEC_MAX) {
                fprintf(stderr, "napctl: --drain= takes seconds from 0 to %u, not '%s'\n", NAP_ROLLOUT_DRAIN_SEC_MAX, s);
                return -EINVAL;
        }
        arg_rollout.drain_usec = v > 0 ? v * 1000000ULL : NAP_ROLLOUT_NO_DRAIN;
        return 0;
}

/* An option of the node verbs: its value as typed, parsed by the verb. */
static int node_option(unsigned bit, const char **value) {
        arg_given |= bit;
        *value = optarg;
        return 0;
}

static int parse_option(int ch) {
        switch (ch) {
        case 'h':
                help();
                return 1;
        case ARG_VERSION:
                printf("napctl %s\n", NAP_VERSION);
                return 1;
        case ARG_USER:
        case ARG_SYSTEM:
                arg_caller.scope = ch == ARG_USER ? NAP_SCOPE_USER : NAP_SCOPE_SYSTEM;
                return 0;
        case ARG_JSON:
                arg_json = true;
                return 0;
        case ARG_ADDRESS:
                if (isempty(optarg)) {
                        fprintf(stderr, "napctl: --address= takes the path of nap-managerd's socket\n");
                        return -EINVAL;
                }
                arg_caller.address = optarg;
                return 0;
        case ARG_NO_HELPER:
                arg_caller.local = true;
                return 0;
        case 'f':
                arg_follow = true;
                arg_given |= OPT_FOLLOW;
                return 0;
        case 'n':
                return parse_lines(optarg);
        case ARG_CPU:
                return node_option(OPT_CPU, &arg_node.cpu);
        case ARG_MEMORY:
                return node_option(OPT_MEMORY, &arg_node.memory);
        case ARG_STORAGE:
                return node_option(OPT_STORAGE, &arg_node.storage);
        case ARG_LABELS:
                return node_option(OPT_LABELS, &arg_node.labels);
        case ARG_POLICY:
                return node_option(OPT_POLICY, &arg_node.policy);
        case ARG_COUNT:
                return node_option(OPT_COUNT, &arg_node.count);
        case ARG_NO_BLOCK:
                arg_given |= OPT_NO_BLOCK;
                arg_no_block = true;
                return 0;
        case ARG_QUEUE:
                arg_given |= OPT_QUEUE;
                arg_wait_in_queue = true;
                return 0;
        case ARG_YES:
                arg_given |= OPT_YES;
                arg_yes = true;
                return 0;
        case ARG_REQUEST_ID:
                arg_given |= OPT_REQUEST_ID;
                arg_request_id = optarg;
                return 0;
        case ARG_NODE:
                arg_given |= OPT_NODE;
                arg_on_node = optarg;
                return 0;
        case ARG_CLUSTER:
                arg_given |= OPT_CLUSTER;
                arg_cluster = true;
                return 0;
        case ARG_BATCH:
                return parse_batch(optarg);
        case ARG_DRAIN:
                return parse_drain(optarg);
        case ARG_OWNER:
                return node_option(OPT_OWNER, &arg_queue.owner);
        case ARG_STATUS:
                return node_option(OPT_STATUS, &arg_queue.status);
        case ARG_FORCE:
                arg_node.force = true;
                arg_given |= OPT_FORCE;
                return 0;
        default:
                return -EINVAL;
        }
}

/* 1: exit 0 now (help, version); 0: go on; <0: usage error. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },       { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },  { "system", no_argument, NULL, ARG_SYSTEM },
                { "json", no_argument, NULL, ARG_JSON },  { "lines", required_argument, NULL, 'n' },
                { "follow", no_argument, NULL, 'f' },     { "address", required_argument, NULL, ARG_ADDRESS },
                { "no-helper", no_argument, NULL, ARG_NO_HELPER },
                { "cpu", required_argument, NULL, ARG_CPU },
                { "memory", required_argument, NULL, ARG_MEMORY },
                { "storage", required_argument, NULL, ARG_STORAGE },
                { "labels", required_argument, NULL, ARG_LABELS },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "count", required_argument, NULL, ARG_COUNT },
                { "force", no_argument, NULL, ARG_FORCE },
                { "request-id", required_argument, NULL, ARG_REQUEST_ID },
                { "no-block", no_argument, NULL, ARG_NO_BLOCK },
                { "yes", no_argument, NULL, ARG_YES },
                { "queue", no_argument, NULL, ARG_QUEUE },
                { "batch", required_argument, NULL, ARG_BATCH },
                { "drain", required_argument, NULL, ARG_DRAIN },
                { "owner", required_argument, NULL, ARG_OWNER },
                { "status", required_argument, NULL, ARG_STATUS },
                { "node", required_argument, NULL, ARG_NODE },
                { "cluster", no_argument, NULL, ARG_CLUSTER },
                {},
        };
        for (int ch; (ch = getopt_long(argc, argv, "hfn:", options, NULL)) >= 0;) {
                int r = parse_option(ch);
                if (r != 0)
                        return r;
        }
        if (arg_caller.local && arg_caller.address) {
                fprintf(stderr, "napctl: --address= and --no-helper exclude each other\n");
                return -EINVAL;
        }
        return 0;
}


/* The words of the verb's name: "node show" is 2. */
static size_t verb_words(const Verb *v) {
        return strchr(v->name, ' ') ? 2 : 1;
}

/* Whether v is a sub-verb of group: "node show" of "node". */
static bool verb_in_group(const Verb *v, const char *group) {
        size_t n = strlen(group);
        return strneq(v->name, group, n) && v->name[n] == ' ';
}

/* The sub-verb's name in v: "show" of "node show". */
static const char *verb_sub(const Verb *v) {
        const char *space = strchr(v->name, ' ');
        return space ? space + 1 : NULL;
}

/* The verb words (argv after the options, n of them) name, or NULL. */
static const Verb *find_verb(char **words, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, words[0]) ||
                    (n > 1 && verb_in_group(verbs + i, words[0]) && streq(verb_sub(verbs + i), words[1])))
                        return verbs + i;
        return NULL;
}

/* "show, apply or delete": the sub-verbs of group, on stderr. */
static void print_choices(const char *group) {
        size_t n = 0, k = 0;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                n += verb_in_group(verbs + i, group);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (verb_in_group(verbs + i, group))
                        fprintf(stderr, "%s%s", k++ == 0 ? "" : k == n ? " or " : ", ", verb_sub(verbs + i));
        fputc('\n', stderr);
}

/* Why words name no verb (usage: exit 2). */
static void unknown_verb(char **words, size_t n) {
        bool group = false;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                group = group || verb_in_group(verbs + i, words[0]);
        if (!group)
                fprintf(stderr, "napctl: unknown command '%s' (see napctl --help)\n", words[0]);
        else {
                if (n > 1)
                        fprintf(stderr, "napctl: unknown command '%s %s': %s takes ", words[0], words[1], words[0]);
                else
                        fprintf(stderr, "napctl: %s needs a sub-command: ", words[0]);
                print_choices(words[0]);
        }
}

/* Whether v takes every option given; if not, says which verbs do. */
static bool check_options(const Verb *v) {
        for (size_t i = 0; i < ELEMENTSOF(option_names); i++) {
                const char *sep = "";
                if (!(arg_given & option_names[i].bit & ~v->options))
                        continue;
                fprintf(stderr, "napctl: %s applies to ", option_names[i].name);
                for (size_t k = 0; k < ELEMENTSOF(verbs); k++)
                        if (verbs[k].options & option_names[i].bit) {
                                fprintf(stderr, "%s%s", sep, verbs[k].name);
                                sep = ", ";
                        }
                fprintf(stderr, " only\n");
                return false;
        }
        return true;
}

/* napctl(1) "EXIT STATUS": the same for every transport. */
static int exit_status(const NapError *e) {
        switch (e->kind) {
        case NAP_ERROR_INVALID_NAME:
        case NAP_ERROR_INVALID_PARAMETER:
        case NAP_ERROR_INVALID_PROFILE:
        case NAP_ERROR_INVALID_CONFIG:
                return 2;
        case NAP_ERROR_NO_SUCH_SERVICE:
        case NAP_ERROR_NO_SUCH_INSTANCE:
        case NAP_ERROR_NO_SUCH_NODE:
        case NAP_ERROR_NO_SUCH_RESERVATION:
        case NAP_ERROR_NO_SUCH_JOB:
                return 4;
        default:
                return 1;
        }
}

/* Whether the n bytes at word are a verb's first word ("node" of "node
 * show"): a command in a message, not the word napctl in prose. */
static bool is_verb_word(const char *word, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strneq(verbs[i].name, word, n) && (verbs[i].name[n] == '\0' || verbs[i].name[n] == ' '))
                        return true;
        return false;
}

static int report(const NapError *e) {
        char name[128], opts[PATH_MAX * 4 + 64];
        /* the commands it suggests with the options typed: --user… */
        const char *o = output_connection_options(arg_caller.scope == NAP_SCOPE_USER,
                                                  arg_caller.scope == NAP_SCOPE_SYSTEM, arg_caller.local,
                                                  arg_caller.address, opts, sizeof opts);
        _cleanup_free_ char *message = output_with_options(e->message, o ?: "", is_verb_word);
        const char *m = message ?: e->message;
        if (arg_json) {
                json_t *j = json_pack("{s:s, s:s}", "error", caller_error_name(&arg_caller, e, name), "message", m);
                json_dumpf(j, stderr, JSON_COMPACT);
                fputc('\n', stderr);
                json_decref(j);
        } else
                fprintf(stderr, "napctl: %s\n", m);
        return exit_status(e);
}

static void warn_config(void *userdata, const char *message) {
        fprintf(stderr, "napctl: warning: %s\n", message);
}

/* The verb to run, or NULL after saying why not (usage: exit 2). */
static const Verb *check_verb(int argc, char *argv[]) {
        if (optind >= argc) {
                fprintf(stderr, "napctl: a command is needed (see napctl --help)\n");
                return NULL;
        }
        const Verb *v = find_verb(argv + optind, argc - optind);
        if (!v) {
                unknown_verb(argv + optind, argc - optind);
                return NULL;
        }
        unsigned nargs = argc - optind - verb_words(v);
        if (nargs < v->min_args || nargs > v->max_args)
                fprintf(stderr, "napctl: usage: napctl %s%s%s\n", v->name, isempty(v->args) ? "" : " ", v->args);
        else if (check_options(v))
                return v;
        return NULL;
}

int main(int argc, char *argv[]) {
        int r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 2;
        const Verb *v = check_verb(argc, argv);
        if (!v)
                return 2;

        NapError e = NAP_ERROR_NULL;
        char **args = argv + optind + verb_words(v);
        arg_caller.warn = warn_config;
        arg_node.json = arg_json;
        LifecycleOptions lifecycle = { .json = arg_json, .yes = arg_yes, .no_block = arg_no_block,
                                       .cpu = arg_node.cpu, .memory = arg_node.memory,
                                       .request_id = arg_request_id, .queue = arg_wait_in_queue };
        arg_queue.json = arg_json;
        r = v->run_queue ? v->run_queue(&arg_caller, args, &arg_queue, &e)
            : v->run_node  ? v->run_node(&arg_caller, args, &arg_node, &e)
            : v->run_app ? v->run_app(&arg_caller, args, &lifecycle, &e)
                         : v->run(&arg_caller, args, &e);
        if (r < 0 && !nap_error_is_set(&e))
                nap_error_errno(&e, r, "%s failed", v->name);
        caller_done(&arg_caller);
        return r < 0 ? report(&e) : 0;
}
