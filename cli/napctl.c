/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl: one verb per operation of the seed interface. Each verb is one
 * table entry and one small function that calls lib/ops and prints the
 * result for people, or as JSON with --json. */

#include <getopt.h>
#include <jansson.h>
#include <time.h>

#include "nap-config.h"
#include "ops.h"
#include "publish.h"
#include "strv.h"

static bool arg_json = false;
static int arg_scope = -1;
static size_t arg_lines = 10;

typedef struct Verb {
        const char *name;
        const char *args;
        unsigned min_args, max_args;
        int (*run)(NapContext *c, char **args, NapError *e);
        const char *help;
} Verb;

/* ---- output ----------------------------------------------------------- */

static int print_json(json_t *j) {
        if (!j)
                return -ENOMEM;
        size_t flags = (isatty(STDOUT_FILENO) ? JSON_INDENT(2) : JSON_COMPACT) | JSON_ENSURE_ASCII;
        int r = json_dumpf(j, stdout, flags);
        json_decref(j);
        fputc('\n', stdout);
        return r < 0 ? -EIO : 0;
}

static json_t *json_strv(char *const *l) {
        json_t *a = json_array();
        STRV_FOREACH(s, l)
                json_array_append_new(a, json_string(*s));
        return a;
}

static json_t *json_params(const NapParams *p) {
        json_t *o = json_object();
        for (size_t i = 0; p && i < nap_params_size(p); i++)
                json_object_set_new(o, nap_params_key(p, i), json_string(nap_params_value(p, i)));
        return o;
}

static json_t *json_instance(const NapInstanceInfo *i) {
        return json_pack("{s:s, s:s, s:I, s:I, s:s?, s:b, s:s?, s:s?, s:o, s:o}",
                         "instance", i->name, "unit", i->unit, "number", (json_int_t) i->number,
                         "port", (json_int_t) i->port, "url", i->url, "enabled", i->enabled,
                         "active_state", i->active_state, "sub_state", i->sub_state,
                         "argv", json_strv(i->argv), "params", json_params(i->params));
}

static const char *short_commit(const char *commit, char buf[static 13]) {
        snprintf(buf, 13, "%.12s", strempty(commit));
        return buf;
}

/* etcd down never fails an operation; say what is not published yet. */
static void warn_pending(NapPublish p, const NapError *why, const char *what) {
        if (p == NAP_PUBLISH_PENDING)
                fprintf(stderr, "napctl: publishing %s to etcd is pending (%s); the next deploy-app or "
                        "start-common writes it\n", what, nap_error_is_set(why) ? why->message : "etcd unreachable");
}

/* ---- verbs ------------------------------------------------------------ */

static int verb_deploy_app(NapContext *c, char **args, NapError *e) {
        NapDeployResult res;
        char b[13];
        int r = nap_deploy_app(c, args[0], args[1], &res, e);
        if (r < 0)
                return r;
        warn_pending(res.publish, &res.publish_error, "the app's URL");
        if (arg_json)
                return print_json(json_pack("{s:s, s:s, s:s, s:b, s:s}", "service", args[0], "commit", res.commit,
                                            "url", args[1], "changed", res.changed,
                                            "etcd", nap_publish_to_string(res.publish)));
        if (res.changed)
                printf("Deployed %s at %s from %s\n", args[0], short_commit(res.commit, b), args[1]);
        else
                printf("%s is already at %s from %s (unchanged)\n", args[0], short_commit(res.commit, b), args[1]);
        return 0;
}

static int verb_list_services(NapContext *c, char **args, NapError *e) {
        NapServiceInfo *l;
        size_t n;
        char b[13];
        int r = nap_list_services(c, args[0], &l, &n, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        for (size_t i = 0; i < n; i++) {
                if (a)
                        json_array_append_new(a, json_pack("{s:s, s:s, s:s?, s:s?, s:I}", "service", l[i].name,
                                                           "app", l[i].app, "commit", l[i].commit, "url", l[i].url,
                                                           "deployed", (json_int_t) l[i].deployed_usec));
                else
                        printf("%s\t%s\t%s\n", l[i].name, short_commit(l[i].commit, b), strempty(l[i].url));
        }
        nap_service_info_array_free(l, n);
        return a ? print_json(a) : 0;
}

static int verb_get_parameters(NapContext *c, char **args, NapError *e) {
        _cleanup_strv_free_ char **l = NULL;
        int r = nap_get_parameters(c, args[0], &l, e);
        if (r < 0)
                return r;
        if (arg_json)
                return print_json(json_strv(l));
        _cleanup_free_ char *s = strv_join(l, ",");
        if (!s)
                return -ENOMEM;
        printf("%s\n", s);
        return 0;
}

static int verb_start_common(NapContext *c, char **args, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        NapInstanceInfo i = {};
        const char *s = args[1] ?: "";
        int r = nap_params_parse(s, strlen(s), &p, e);
        if (r >= 0)
                r = nap_start_common(c, args[0], p, &i, e);
        if (r < 0)
                return r;
        warn_pending(i.publish, NULL, "the instance's port");
        if (arg_json)
                r = print_json(json_instance(&i));
        else
                printf("%s %s\n", i.name, strempty(i.url));
        nap_instance_info_clear(&i);
        return r;
}

static int verb_list_instances(NapContext *c, char **args, NapError *e) {
        NapInstanceInfo *l;
        size_t n;
        int r = nap_list_instances(c, args[0], &l, &n, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        if (!a)
                printf("%-40s %-6s %-8s %-10s %s\n", "INSTANCE", "PORT", "ENABLED", "ACTIVE", "SUB");
        for (size_t k = 0; k < n; k++) {
                if (a)
                        json_array_append_new(a, json_instance(l + k));
                else
                        printf("%-40s %-6u %-8s %-10s %s\n", l[k].name, l[k].port, l[k].enabled ? "yes" : "no",
                               l[k].active_state, l[k].sub_state);
        }
        nap_instance_info_array_free(l, n);
        return a ? print_json(a) : 0;
}

static int verb_get_instances_num(NapContext *c, char **args, NapError *e) {
        unsigned n;
        int r = nap_get_instances_num(c, args[0], &n, e);
        if (r < 0)
                return r;
        if (arg_json)
                return print_json(json_pack("{s:s, s:I}", "service", args[0], "instances", (json_int_t) n));
        printf("%u\n", n);
        return 0;
}

static int verb_start_app(NapContext *c, char **args, NapError *e) {
        return nap_start_app(c, args[0], e);
}

static int verb_stop_app(NapContext *c, char **args, NapError *e) {
        return nap_stop_app(c, args[0], e);
}

static int verb_remove_instance(NapContext *c, char **args, NapError *e) {
        return nap_remove_instance(c, args[0], e);
}

static int verb_cat_app(NapContext *c, char **args, NapError *e) {
        _cleanup_free_ char *text = NULL;
        int r = nap_cat_app(c, args[0], &text, e);
        if (r < 0)
                return r;
        if (arg_json)
                return print_json(json_pack("{s:s, s:s}", "instance", args[0], "profile", text));
        fputs(text, stdout);
        return 0;
}

static void print_journal_entry(const NapJournalEntry *j) {
        char when[64] = "-";
        time_t t = j->realtime_usec / 1000000;
        struct tm tm;
        if (localtime_r(&t, &tm)) {
                /* RFC 3339: the offset as +HH:MM, which %z writes as +HHMM. */
                size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", &tm);
                if (n >= 5 && n + 2 <= sizeof when) {
                        memmove(when + n - 1, when + n - 2, 3);
                        when[n - 2] = ':';
                }
        }
        if (j->pid > 0)
                printf("%s %s[%u]: %s\n", when, j->identifier ?: "-", j->pid, j->message);
        else
                printf("%s %s: %s\n", when, j->identifier ?: "-", j->message);
}

static int verb_get_journal(NapContext *c, char **args, NapError *e) {
        NapJournalEntry *l;
        size_t n;
        int r = nap_get_journal(c, args[0], arg_lines, &l, &n, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        for (size_t k = 0; k < n; k++) {
                if (a)
                        json_array_append_new(a, json_pack("{s:I, s:s, s:i, s:s?, s:I}", "time",
                                                           (json_int_t) l[k].realtime_usec, "message", l[k].message,
                                                           "priority", l[k].priority, "identifier", l[k].identifier,
                                                           "pid", (json_int_t) l[k].pid));
                else
                        print_journal_entry(l + k);
        }
        nap_journal_entry_array_free(l, n);
        return a ? print_json(a) : 0;
}

static int verb_get_service_url(NapContext *c, char **args, NapError *e) {
        _cleanup_free_ char *url = NULL;
        NapSource source;
        int r = nap_get_service_url(c, args[0], args[1], &url, &source, e);
        if (r < 0)
                return r;
        if (arg_json)
                return print_json(json_pack("{s:s, s:s, s:s, s:s}", "user", args[0], "app", args[1], "url", url,
                                            "source", nap_source_to_string(source)));
        printf("%s\n", url);
        return 0;
}

static int verb_get_port(NapContext *c, char **args, NapError *e) {
        unsigned port;
        NapSource source;
        int r = nap_get_port(c, args[0], &port, &source, e);
        if (r < 0)
                return r;
        if (arg_json)
                return print_json(json_pack("{s:s, s:I, s:s}", "instance", args[0], "port", (json_int_t) port,
                                            "source", nap_source_to_string(source)));
        printf("%u\n", port);
        return 0;
}

static int verb_endpoints(NapContext *c, char **args, NapError *e) {
        NapEndpointList l = {};
        int r = nap_list_endpoints(c, args[0], &l, e);
        if (r < 0)
                return r;
        json_t *a = arg_json ? json_array() : NULL;
        for (size_t k = 0; k < l.n; k++) {
                const NapEndpoint *ep = l.items + k;
                if (a)
                        json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:s}", "host", ep->host, "port",
                                                           (json_int_t) ep->port, "instance", ep->instance,
                                                           "unit", ep->unit));
                else
                        printf(strchr(ep->host, ':') ? "[%s]:%u\t%s\n" : "%s:%u\t%s\n", ep->host, ep->port,
                               ep->instance);
        }
        nap_endpoint_list_done(&l);
        return a ? print_json(a) : 0;
}

static const Verb verbs[] = {
        { "deploy-app", "USER_APP URL", 2, 2, verb_deploy_app, "Fetch an app (git URL or path) without running it" },
        { "list-services", "USER", 1, 1, verb_list_services, "List the apps a user has deployed" },
        { "get-parameters", "USER_APP", 1, 1, verb_get_parameters, "List the {parameters} of an app's profile" },
        { "start-common", "USER_APP [k=v,k=v]", 1, 2, verb_start_common, "Start a new instance with these parameters" },
        { "list-instances", "USER_APP", 1, 1, verb_list_instances, "List an app's instances and their state" },
        { "get-instances-num", "USER_APP", 1, 1, verb_get_instances_num, "Count an app's instances" },
        { "start-app", "INSTANCE", 1, 1, verb_start_app, "Start an instance and start it at boot" },
        { "stop-app", "INSTANCE", 1, 1, verb_stop_app, "Stop an instance and keep it stopped at boot" },
        { "cat-app", "INSTANCE", 1, 1, verb_cat_app, "Show an instance's profile" },
        { "get-journal", "INSTANCE", 1, 1, verb_get_journal, "Show the last lines of an instance's log" },
        { "remove-instance", "INSTANCE", 1, 1, verb_remove_instance, "Stop and delete an instance" },
        { "get-service-url", "USER APP", 2, 2, verb_get_service_url, "Show the URL an app was deployed from" },
        { "get-port", "INSTANCE", 1, 1, verb_get_port, "Show the port of an instance" },
        { "endpoints", "USER_APP", 1, 1, verb_endpoints, "List an app's live endpoints (from etcd)" },
};

/* ---- main ------------------------------------------------------------- */

static void help(void) {
        printf("napctl [OPTIONS...] COMMAND ...\n\n"
               "Deploy apps and control their instances on this host.\n\n"
               "Commands (INSTANCE is USER_APP_common@N):\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-18s %-20s %s\n", verbs[i].name, verbs[i].args, verbs[i].help);
        printf("\nOptions:\n"
               "  -h --help            Show this help\n"
               "     --version         Show the version\n"
               "     --user            Use the calling user's service manager\n"
               "     --system          Use the system service manager (Scope= in nap.conf by default)\n"
               "     --json            Print results as JSON\n"
               "  -n --lines=N         Lines for get-journal (default 10)\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG.\n"
               "See napctl(1), nap.conf(5) and nap.profile(5).\n",
               NAP_CONFIG_DEFAULT_PATH);
}

enum { ARG_VERSION = 0x100, ARG_USER, ARG_SYSTEM, ARG_JSON };

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

/* 1: exit 0 now (help, version); 0: go on; <0: usage error. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },       { "version", no_argument, NULL, ARG_VERSION },
                { "user", no_argument, NULL, ARG_USER },  { "system", no_argument, NULL, ARG_SYSTEM },
                { "json", no_argument, NULL, ARG_JSON },  { "lines", required_argument, NULL, 'n' },
                {},
        };
        for (int ch; (ch = getopt_long(argc, argv, "hn:", options, NULL)) >= 0;)
                switch (ch) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("napctl %s\n", NAP_VERSION);
                        return 1;
                case ARG_USER:
                        arg_scope = NAP_SCOPE_USER;
                        break;
                case ARG_SYSTEM:
                        arg_scope = NAP_SCOPE_SYSTEM;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case 'n':
                        if (parse_lines(optarg) < 0)
                                return -EINVAL;
                        break;
                default:
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

static int exit_status(const NapError *e) {
        switch (e->kind) {
        case NAP_ERROR_INVALID_NAME:
        case NAP_ERROR_INVALID_PARAMETER:
        case NAP_ERROR_INVALID_PROFILE:
        case NAP_ERROR_INVALID_CONFIG:
                return 2;
        case NAP_ERROR_NO_SUCH_SERVICE:
        case NAP_ERROR_NO_SUCH_INSTANCE:
                return 4;
        default:
                return 1;
        }
}

static int report(const NapError *e) {
        if (arg_json) {
                json_t *j = json_pack("{s:s+, s:s}", "error", "io.nap.Manager.",
                                      nap_error_kind_to_string(e->kind), "message", e->message);
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

int main(int argc, char *argv[]) {
        int r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? 0 : 2;
        if (optind >= argc) {
                fprintf(stderr, "napctl: a command is needed (see napctl --help)\n");
                return 2;
        }
        const Verb *v = find_verb(argv[optind]);
        unsigned nargs = argc - optind - 1;
        if (!v) {
                fprintf(stderr, "napctl: unknown command '%s' (see napctl --help)\n", argv[optind]);
                return 2;
        }
        if (nargs < v->min_args || nargs > v->max_args) {
                fprintf(stderr, "napctl: usage: napctl %s %s\n", v->name, v->args);
                return 2;
        }

        NapError e = NAP_ERROR_NULL;
        _cleanup_(nap_context_freep) NapContext *c = NULL;
        r = nap_context_new(&c, arg_scope, warn_config, NULL, &e);
        if (r >= 0)
                r = v->run(c, argv + optind + 1, &e);
        if (r < 0) {
                if (!nap_error_is_set(&e))
                        nap_error_errno(&e, r, "%s failed", v->name);
                return report(&e);
        }
        return 0;
}
