/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl: one verb per operation of the seed interface. Each verb is one
 * table entry and one small function: it calls io.nap.Manager.<Method> —
 * on nap-managerd over varlink, or in this process with --no-helper
 * (napctl-call.h) — and prints the reply for people, or as JSON with
 * --json (napctl-output.h). The verbs marked local in the table have no
 * method in the interface and always run in this process. */

#include <getopt.h>
#include <jansson.h>
#include <unistd.h>

#include "model/names.h"
#include "nap-config.h"
#include "napctl-call.h"
#include "napctl-output.h"
#include "verb-keys.h"
#include "verb-rollback.h"

/* Calls that change something run to their end in the helper whatever
 * napctl does: wait for them (a deploy may fetch for minutes). */
#define WRITE_TIMEOUT VARLINK_TIMEOUT_INFINITY
#define READ_TIMEOUT VARLINK_DEFAULT_TIMEOUT_USEC

static bool arg_json = false;
static bool arg_follow = false;
static size_t arg_lines = 10;
static Caller arg_caller = { .scope = -1 };

typedef struct Verb {
        const char *name;
        const char *args;
        unsigned min_args, max_args;
        int (*run)(Caller *c, char **args, NapError *e);
        bool local; /* no io.nap.Manager method: always in this process */
        const char *help;
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

static int verb_start_common(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "StartCommon",
                            json_pack("{s:s, s:s*}", "service", args[0], "paramsString", args[1]), WRITE_TIMEOUT,
                            &reply, e);
        if (r < 0)
                return r;
        json_t *i = json_object_get(reply, "instance");
        output_warn_pending(reply, "the instance's port");
        if (arg_json)
                return output_json(instance_json(i));
        printf("%s %s\n", json_str(i, "instance"), json_str(i, "url"));
        return 0;
}

static int verb_list_instances(Caller *c, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *i;
        size_t k;
        int r = caller_call(c, "ListInstances", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        if (!a)
                printf("%-40s %-6s %-8s %-10s %s\n", "INSTANCE", "PORT", "ENABLED", "ACTIVE", "SUB");
        json_array_foreach(json_object_get(reply, "instances"), k, i)
                if (a)
                        json_array_append_new(a, instance_json(i));
                else
                        printf("%-40s %-6lld %-8s %-10s %s\n", json_str(i, "instance"), (long long) json_int(i, "port"),
                               json_is_true(json_object_get(i, "enabled")) ? "yes" : "no",
                               json_str(i, "active_state"), json_str(i, "sub_state"));
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

static int verb_start_app(Caller *c, char **args, NapError *e) {
        return call_instance(c, "StartApp", args[0], e);
}

static int verb_restart_app(Caller *c, char **args, NapError *e) {
        return call_instance(c, "RestartApp", args[0], e);
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

static int verb_rollback_local(Caller *c, char **args, NapError *e) {
        NapContext *ctx;
        int r = caller_context(c, &ctx, e);
        return r < 0 ? r : verb_rollback(ctx, args, arg_json, e);
}

static int verb_history_local(Caller *c, char **args, NapError *e) {
        NapContext *ctx;
        int r = caller_context(c, &ctx, e);
        return r < 0 ? r : verb_history(ctx, args, arg_json, e);
}

static const Verb verbs[] = {
        { "deploy-app", "USER_APP URL", 2, 2, verb_deploy_app, false, "Fetch an app (git URL or path) without running it" },
        { "list-services", "USER", 1, 1, verb_list_services, false, "List the apps a user has deployed" },
        { "get-parameters", "USER_APP", 1, 1, verb_get_parameters, false, "List the {parameters} of an app's profile" },
        { "start-common", "USER_APP [k=v,k=v]", 1, 2, verb_start_common, false, "Start a new instance with these parameters" },
        { "list-instances", "USER_APP", 1, 1, verb_list_instances, false, "List an app's instances and their state" },
        { "get-instances-num", "USER_APP", 1, 1, verb_get_instances_num, false, "Count an app's instances" },
        { "start-app", "INSTANCE", 1, 1, verb_start_app, false, "Start an instance and start it at boot" },
        { "stop-app", "INSTANCE", 1, 1, verb_stop_app, false, "Stop an instance and keep it stopped at boot" },
        { "restart-app", "INSTANCE", 1, 1, verb_restart_app, false, "Stop an instance if it runs and start it again" },
        { "cat-app", "INSTANCE", 1, 1, verb_cat_app, false, "Show an instance's profile" },
        { "get-journal", "INSTANCE", 1, 1, verb_get_journal, false, "Show the last lines of an instance's log (-f: follow it)" },
        { "remove-instance", "INSTANCE", 1, 1, verb_remove_instance, false, "Stop and delete an instance" },
        { "get-service-url", "USER_APP", 1, 2, verb_get_service_url, false, "Show the URL an app was deployed from" },
        { "get-port", "INSTANCE", 1, 1, verb_get_port, false, "Show the port of an instance" },
        { "endpoints", "USER_APP", 1, 1, verb_endpoints, false, "List an app's live endpoints (from etcd)" },
        { "rollback", "USER_APP [COMMIT]", 1, 2, verb_rollback_local, true, "Redeploy an earlier commit and restart the instances" },
        { "history", "USER_APP", 1, 1, verb_history_local, true, "List an app's deploys, newest first" },
        { "keys", "add|list|remove ...", 1, 3, verb_keys_local, true, "Manage who may git push (root)" },
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
               "\nConfiguration: %s, or the file in $NAP_CONFIG.\n"
               "See napctl(1), nap-managerd(8), nap.conf(5) and nap.profile(5).\n",
               NAP_CONFIG_DEFAULT_PATH);
}

enum { ARG_VERSION = 0x100, ARG_USER, ARG_SYSTEM, ARG_JSON, ARG_ADDRESS, ARG_NO_HELPER };

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
                return 0;
        case 'n':
                return parse_lines(optarg);
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

static const Verb *find_verb(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        return verbs + i;
        return NULL;
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
                return 4;
        default:
                return 1;
        }
}

static int report(const NapError *e) {
        char name[128];
        if (arg_json) {
                json_t *j = json_pack("{s:s, s:s}", "error", caller_error_name(&arg_caller, e, name), "message",
                                      e->message);
                json_dumpf(j, stderr, JSON_COMPACT);
                fputc('\n', stderr);
                json_decref(j);
        } else
                fprintf(stderr, "napctl: %s\n", e->message);
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
        const Verb *v = find_verb(argv[optind]);
        unsigned nargs = argc - optind - 1;
        if (!v)
                fprintf(stderr, "napctl: unknown command '%s' (see napctl --help)\n", argv[optind]);
        else if (nargs < v->min_args || nargs > v->max_args)
                fprintf(stderr, "napctl: usage: napctl %s %s\n", v->name, v->args);
        else if (arg_follow && v->run != verb_get_journal)
                fprintf(stderr, "napctl: --follow applies to get-journal only\n");
        else
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
        arg_caller.warn = warn_config;
        r = v->run(&arg_caller, argv + optind + 1, &e);
        if (r < 0 && !nap_error_is_set(&e))
                nap_error_errno(&e, r, "%s failed", v->name);
        caller_done(&arg_caller);
        return r < 0 ? report(&e) : 0;
}
