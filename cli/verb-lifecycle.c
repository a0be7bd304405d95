/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl scale, config, restart, destroy-app and status (verb-lifecycle.h). */

#include <jansson.h>
#include <pwd.h>
#include <unistd.h>

#include "base/strv.h"
#include "model/names.h"
#include "model/state.h"
#include "napctl-output.h"
#include "verb-lifecycle.h"

/* ---- words ------------------------------------------------------------ */

/* A macro, so that the format is checked. */
#define bad_word(e, fmt, word) nap_error_set((e), NAP_ERROR_INVALID_PARAMETER, -EINVAL, (fmt), (word))

/* N of scale: 0 to NAP_SCALE_MAX, digits only. */
static int parse_count(const char *s, unsigned *ret, NapError *e) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] < '0' || s[0] > '9' || v > NAP_SCALE_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "'%.64s' is not a number of instances (0 to %u)", s, NAP_SCALE_MAX);
        *ret = (unsigned) v;
        return 0;
}

/* KEY=VALUE words into an object {KEY: VALUE}; checked further by the
 * method (names, values). A key given twice is refused here: which one
 * was meant? */
static int parse_assignments(char **words, json_t **ret, NapError *e) {
        json_auto_t *o = json_object();
        if (!o)
                return nap_error_errno(e, -ENOMEM, "Failed to read the arguments");
        STRV_FOREACH(w, words) {
                const char *eq = strchr(*w, '=');
                if (!eq || eq == *w)
                        return bad_word(e, "'%.64s' is not KEY=VALUE", *w);
                _cleanup_free_ char *key = strndup(*w, eq - *w);
                if (!key)
                        return nap_error_errno(e, -ENOMEM, "Failed to read the arguments");
                if (json_object_get(o, key))
                        return bad_word(e, "'%.64s' is given twice", key);
                json_t *v = json_string(eq + 1);
                if (!v)
                        return bad_word(e, "The value of '%.64s' is not valid UTF-8", key);
                if (json_object_set_new(o, key, v) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to read the arguments");
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static json_t *strv_json(char **l) {
        json_t *a = json_array();
        STRV_FOREACH(s, l)
                if (!a || json_array_append_new(a, json_string(*s)) < 0)
                        return json_decref(a), NULL;
        return a;
}

/* ---- scale ------------------------------------------------------------ */

static int append_names(json_t *all, json_t *reply, const char *field, const char *what, bool print) {
        json_t *name;
        size_t i;
        json_array_foreach(json_object_get(reply, field), i, name) {
                if (json_array_append(all, name) < 0)
                        return -ENOMEM;
                if (print)
                        printf("%s: %s\n", json_string_value(name), what);
        }
        return fflush(stdout) == EOF ? -EIO : 0;
}

/* One instance per call (limit 1), so that each line comes as it happens,
 * whatever the transport; until a call changes nothing. */
static int scale_steps(Caller *c, const char *service, unsigned n, json_t *params, const LifecycleOptions *o,
                       json_t *total, NapError *e) {
        for (;;) {
                json_auto_t *reply = NULL;
                int r = caller_call(c, "Scale",
                                    json_pack("{s:s, s:I, s:O, s:i}", "service", service, "instances", (json_int_t) n,
                                              "params", params, "limit", 1),
                                    WRITE_TIMEOUT, &reply, e);
                if (r < 0)
                        return r;
                if (!json_object_get(total, "before"))
                        json_object_set(total, "before", json_object_get(reply, "before"));
                json_object_set(total, "after", json_object_get(reply, "after"));
                json_t *started = json_object_get(total, "started"), *removed = json_object_get(total, "removed");
                if (append_names(started, reply, "started", "started, answering", !o->json) < 0 ||
                    append_names(removed, reply, "removed", "removed", !o->json) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to show the progress");
                if (json_int(reply, "before") == json_int(reply, "after"))
                        return 0;
        }
}

int verb_scale(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *params = NULL, *total = json_pack("{s:[], s:[]}", "started", "removed");
        unsigned n = 0;
        int r = total ? parse_count(args[1], &n, e) : nap_error_errno(e, -ENOMEM, "Failed to scale");
        if (r >= 0)
                r = parse_assignments(args + 2, &params, e);
        if (r >= 0)
                r = scale_steps(c, args[0], n, params, o, total, e);
        if (r < 0)
                return r;
        if (o->json)
                return output_json(json_ordered(total, "before", "after", "started", "removed", NULL));
        if (json_int(total, "before") == json_int(total, "after"))
                printf("%s has %lld instance(s) already (unchanged)\n", args[0], (long long) json_int(total, "after"));
        else
                printf("%s: %lld -> %lld instance(s)\n", args[0], (long long) json_int(total, "before"),
                       (long long) json_int(total, "after"));
        return 0;
}

/* ---- config ----------------------------------------------------------- */

static int print_set_config(const char *service, json_t *reply, const LifecycleOptions *o) {
        if (o->json)
                return output_json(json_ordered(reply, "changed", "restarted", "instances", NULL));
        if (json_is_true(json_object_get(reply, "restarted")))
                printf("%s: configuration applied, %zu instance(s) rebuilt and the running ones restarted\n", service,
                       json_array_size(json_object_get(reply, "instances")));
        else if (json_is_true(json_object_get(reply, "changed")))
                printf("%s: configuration stored (no instances to restart)\n", service);
        else
                printf("%s: configuration unchanged\n", service);
        return 0;
}

int verb_config_set(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *set = NULL;
        int r = parse_assignments(args + 1, &set, e);
        if (r >= 0)
                r = caller_call(c, "SetConfig", json_pack("{s:s, s:o}", "service", args[0], "set", set), WRITE_TIMEOUT,
                                &reply, e);
        return r < 0 ? r : print_set_config(args[0], reply, o);
}

int verb_config_unset(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "SetConfig", json_pack("{s:s, s:o}", "service", args[0], "unset", strv_json(args + 1)),
                            WRITE_TIMEOUT, &reply, e);
        return r < 0 ? r : print_set_config(args[0], reply, o);
}

static int compare_keys(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* KEY=VALUE lines, sorted; the value exactly as stored (it has no
 * control characters: one line each). */
static void print_config(json_t *config) {
        size_t n = json_object_size(config), k = 0;
        _cleanup_free_ const char **keys = calloc(n + 1, sizeof *keys);
        const char *key;
        json_t *v;
        if (!keys)
                return;
        json_object_foreach(config, key, v)
                keys[k++] = key;
        qsort(keys, n, sizeof *keys, compare_keys);
        for (k = 0; k < n; k++)
                printf("%s=%s\n", keys[k], json_str(config, keys[k]));
}

int verb_config_get(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "GetConfig", json_pack("{s:s}", "service", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *config = json_object_get(reply, "config");
        if (args[1] && !json_object_get(config, args[1]))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT, "%s has no configuration key '%.64s'",
                                     args[0], args[1]);
        if (o->json)
                return output_json(args[1] ? json_pack("{s:O}", args[1], json_object_get(config, args[1]))
                                           : json_incref(config));
        if (args[1])
                printf("%s\n", json_str(config, args[1]));
        else
                print_config(config);
        return 0;
}

/* ---- restart ---------------------------------------------------------- */

static int restart_service(Caller *c, const char *service, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *i;
        size_t k;
        int r = caller_call(c, "RestartService", json_pack("{s:s}", "service", service), WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *l = json_object_get(reply, "instances");
        if (o->json)
                return output_json(json_incref(l) ?: json_array());
        json_array_foreach(l, k, i)
                printf("%s: %s\n", json_str(i, "instance"), json_str(i, "active_state"));
        if (json_array_size(l) == 0)
                printf("%s has no instances: nothing restarted\n", service);
        return 0;
}

/* An instance: restart-app; an app: a rolling restart of all. */
int verb_restart(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        NapInstance i;
        if (nap_instance_parse(args[0], &i, NULL) < 0)
                return restart_service(c, args[0], o, e);
        int r = caller_call(c, "RestartApp", json_pack("{s:s, s:b}", "instance", args[0], "noBlock", o->no_block),
                            WRITE_TIMEOUT, &reply, e);
        return r < 0 ? r : o->json ? output_json(json_pack("{s:s}", "instance", args[0])) : 0;
}

/* ---- destroy-app ------------------------------------------------------ */

int verb_destroy_app(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        NapService s;
        int r = nap_service_parse(args[0], &s, e);
        if (r < 0)
                return r;
        if (!o->yes)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EPERM,
                                     "destroy-app removes %s for good: its instances, tree, history, configuration, "
                                     "git repository and etcd keys. Add --yes to go on",
                                     args[0]);
        r = caller_call(c, "DestroyApp", json_pack("{s:s}", "service", args[0]), WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (o->json)
                return output_json(json_pack("{s:s, s:b}", "service", args[0], "destroyed", true));
        printf("Destroyed %s\n", args[0]);
        return 0;
}

/* ---- status ----------------------------------------------------------- */

/* The users whose apps the caller may see: the one given; a user their
 * own (the nap user named like the login name); root every user with a
 * directory in STATE. */
static int status_users(Caller *c, char **args, char ***ret, NapError *e) {
        NapContext *ctx;
        if (geteuid() == 0 && !args[0]) {
                int r = caller_context(c, &ctx, e);
                return r < 0 ? r : nap_state_list_users(ctx->config, ret, e);
        }
        struct passwd *pw = args[0] ? NULL : getpwuid(geteuid());
        if (!args[0] && !pw)
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -ENOENT, "Your uid has no login name: give a USER");
        return strv_extend(ret, args[0] ?: pw->pw_name) < 0 ? nap_error_errno(e, -ENOMEM, "Failed to list users") : 0;
}

static const char *ports_text(json_t *ports, char *buf, size_t size) {
        size_t used = 0, i;
        json_t *p;
        buf[0] = 0;
        json_array_foreach(ports, i, p)
                if (used < size)
                        used += snprintf(buf + used, size - used, "%s%lld", i > 0 ? "," : "",
                                         (long long) json_integer_value(p));
        return buf[0] ? buf : "-";
}

static void print_app_status(json_t *app) {
        char counts[32], health[32], ports[128], b[13];
        json_int_t running = json_int(app, "running"), answering = json_int(app, "answering");
        snprintf(counts, sizeof counts, "%lld/%lld", (long long) running, (long long) json_int(app, "instances"));
        if (running == 0)
                snprintf(health, sizeof health, "-");
        else
                snprintf(health, sizeof health, "%s %lld/%lld", answering == running ? "ok" : "DOWN",
                         (long long) answering, (long long) running);
        const char *commit = json_str(app, "commit");
        printf("%-32s %-9s %-12s %-12s %s\n", json_str(app, "service"), counts,
               *commit ? short_commit(commit, b) : "-", health,
               ports_text(json_object_get(app, "ports"), ports, sizeof ports));
}

int verb_status(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        _cleanup_strv_free_ char **users = NULL;
        json_auto_t *all = json_array();
        int r = status_users(c, args, &users, e);
        if (r < 0)
                return r;
        STRV_FOREACH(u, users) {
                json_auto_t *reply = NULL;
                json_t *app;
                size_t i;
                r = caller_call(c, "ListApps", json_pack("{s:s}", "user", *u), READ_TIMEOUT, &reply, e);
                if (r < 0)
                        return r;
                json_array_foreach(json_object_get(reply, "apps"), i, app)
                        json_array_append_new(all, json_ordered(app, "service", "app", "commit", "instances", "running",
                                                                "answering", "ports", NULL));
        }
        if (o->json)
                return output_json(json_incref(all));
        json_t *app;
        size_t i;
        printf("%-32s %-9s %-12s %-12s %s\n", "APP", "RUNNING", "VERSION", "HEALTH", "PORTS");
        json_array_foreach(all, i, app)
                print_app_status(app);
        return 0;
}
