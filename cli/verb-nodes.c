/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl nodes, node, reserve, release, schedule: one call of
 * io.nap.Manager each, the options parsed first with lib/model. */

#include <jansson.h>
#include <stdlib.h>

#include "base/strv.h"
#include "cluster/inventory.h"
#include "model/node.h"
#include "model/resources.h"
#include "napctl-output.h"
#include "verb-nodes.h"

/* What differs between the two kinds of reservation. */
static const struct {
        const char *name_arg, *reserve, *release, *schedule;
} kinds[_NAP_RESERVATION_KIND_MAX] = {
        [NAP_RESERVATION_COMPUTE] = { "compute_name", "ReserveCompute", "ReleaseCompute", "ScheduleCompute" },
        [NAP_RESERVATION_STORAGE] = { "storage_name", "ReserveStorage", "ReleaseStorage", "ScheduleStorage" },
};

typedef const char *(*format_fn)(uint64_t amount, char *buf);

/* The resources as the interface names them: a Node's KEY and used_KEY,
 * a Reservation's request_RES and limit_RES. */
static const struct {
        const char *what, *key, *res;
        format_fn format; /* what people typed, read back exactly */
        format_fn show;   /* a node's capacity and usage, at a glance */
} resources[] = {
        { "cpu", "cpu_milli_core", "cpu_milli_core", nap_cpu_format, nap_cpu_format },
        { "memory", "memory_bytes", "memory_bytes", nap_bytes_format, nap_bytes_format_human },
        { "storage", "storage_bytes", "bytes", nap_bytes_format, nap_bytes_format_human },
};

static json_int_t json_int_key(json_t *o, const char *prefix, const char *key) {
        char k[64];
        snprintf(k, sizeof k, "%s%s", prefix, key);
        return json_int(o, k);
}

/* ---- options ---------------------------------------------------------- */

/* A parser's error, said of the option it came with. */
static int option_failed(const char *option, int r, const NapError *inner, NapError *e) {
        return nap_error_set(e, inner->kind ?: NAP_ERROR_INVALID_PARAMETER, r, "%s: %s", option, inner->message);
}

/* "reserve compute needs --cpu=…": an option a verb cannot do without. */
static int option_missing(const char *verb, const char *sub, const char *options, NapError *e) {
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "%s %s needs %s", verb, sub, options);
}

typedef int (*amount_fn)(const char *s, uint64_t *ret_request, uint64_t *ret_limit, NapError *e);

/* REQUEST[:LIMIT]; not given: 0 and 0. */
static int option_amount(const char *option, const char *s, amount_fn parse, uint64_t *req, uint64_t *lim,
                         NapError *e) {
        NapError inner = NAP_ERROR_NULL;
        *req = *lim = 0;
        int r = s ? parse(s, req, lim, &inner) : 0;
        return r < 0 ? option_failed(option, r, &inner, e) : 0;
}

int options_compute(const NodeOptions *o, NapCompute *ret, NapError *e) {
        int r = option_amount("--cpu", o->cpu, nap_cpu_amount_parse, &ret->request_cpu_milli, &ret->limit_cpu_milli, e);
        return r < 0 ? r
                     : option_amount("--memory", o->memory, nap_bytes_amount_parse, &ret->request_memory,
                                     &ret->limit_memory, e);
}

/* A node's capacity: one amount. */
static int option_capacity(const char *option, const char *s, int (*parse)(const char *, uint64_t *, NapError *),
                           json_int_t *ret, NapError *e) {
        NapError inner = NAP_ERROR_NULL;
        uint64_t v;
        int r = parse(s, &v, &inner);
        if (r < 0)
                return option_failed(option, r, &inner, e);
        *ret = (json_int_t) v;
        return 0;
}

/* --labels as the methods take them: an object; *ret NULL if not given. */
static int option_labels(const NodeOptions *o, json_t **ret, NapError *e) {
        _cleanup_strv_free_ char **l = NULL;
        NapError inner = NAP_ERROR_NULL;
        *ret = NULL;
        if (!o->labels)
                return 0;
        int r = nap_labels_parse(o->labels, &l, &inner);
        if (r < 0)
                return option_failed("--labels", r, &inner, e);
        *ret = nap_labels_json(l);
        return *ret ? 0 : nap_error_errno(e, -ENOMEM, "Failed to read the labels");
}

/* --count: 1 to NAP_SCHEDULE_BATCH_MAX; 0 if not given. */
static int option_count(const char *s, json_int_t *ret, NapError *e) {
        char *end = NULL;
        unsigned long v = 0;
        errno = 0;
        if (s && s[0] >= '0' && s[0] <= '9')
                v = strtoul(s, &end, 10);
        if (s && (errno != 0 || !end || *end || v < 1 || v > NAP_SCHEDULE_BATCH_MAX))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "--count: expected a number from 1 to %u, not '%.32s'", NAP_SCHEDULE_BATCH_MAX, s);
        *ret = (json_int_t) v;
        return 0;
}

static int option_policy(const char *s, NapError *e) {
        if (s && nap_policy_from_string(s) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "--policy: expected spread or binpack, not '%.32s'", s);
        return 0;
}

/* ---- the parameters of a call ----------------------------------------- */

/* value taken, also when p is NULL (out of memory before). */
static int params_set(json_t *p, const char *key, json_t *value, NapError *e) {
        if (json_object_set_new(p, key, value) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to build the call");
        return 0;
}

/* --cpu and --memory, checked as the methods check them (a limit left out
 * is the request). verb: "reserve" or "schedule", for errors. */
static int compute_amounts(const char *verb, const NodeOptions *o, json_t **ret, NapError *e) {
        NapCompute c;
        if (!o->cpu && !o->memory)
                return option_missing(verb, "compute", "--cpu=REQUEST[:LIMIT] or --memory=REQUEST[:LIMIT], or both", e);
        int r = options_compute(o, &c, e);
        if (r >= 0)
                r = nap_compute_check(&c, e);
        if (r < 0)
                return r;
        *ret = json_pack("{s:I, s:I, s:I, s:I}", "request_cpu_milli_core", (json_int_t) c.request_cpu_milli,
                         "limit_cpu_milli_core", (json_int_t) c.limit_cpu_milli, "request_memory_bytes",
                         (json_int_t) c.request_memory, "limit_memory_bytes", (json_int_t) c.limit_memory);
        return 0;
}

static int storage_amounts(const char *verb, const NodeOptions *o, json_t **ret, NapError *e) {
        NapStorage s;
        if (!o->storage)
                return option_missing(verb, "storage", "--storage=REQUEST[:LIMIT]", e);
        int r = option_amount("--storage", o->storage, nap_bytes_amount_parse, &s.request_bytes, &s.limit_bytes, e);
        if (r >= 0)
                r = nap_storage_check(&s, e);
        if (r < 0)
                return r;
        *ret = json_pack("{s:I, s:I}", "request_bytes", (json_int_t) s.request_bytes, "limit_bytes",
                         (json_int_t) s.limit_bytes);
        return 0;
}

/* The name and the amounts of a reservation, as Reserve… and Schedule…
 * take them. */
static int request_params(NapReservationKind kind, const char *verb, const char *name, const NodeOptions *o,
                          json_t **ret, NapError *e) {
        json_t *p = NULL;
        int r = kind == NAP_RESERVATION_STORAGE ? storage_amounts(verb, o, &p, e) : compute_amounts(verb, o, &p, e);
        if (r >= 0)
                r = params_set(p, kinds[kind].name_arg, json_string(name), e);
        if (r < 0)
                return (void) json_decref(p), r;
        *ret = p;
        return 0;
}

/* --policy, --labels and --count of a schedule, into p. */
static int schedule_params(json_t *p, const NodeOptions *o, NapError *e) {
        json_t *labels;
        json_int_t count = 0;
        int r = option_policy(o->policy, e);
        if (r >= 0)
                r = option_count(o->count, &count, e);
        if (r >= 0)
                r = option_labels(o, &labels, e);
        if (r >= 0 && labels)
                r = params_set(p, "labels", labels, e);
        if (r >= 0 && o->policy)
                r = params_set(p, "policy", json_string(o->policy), e);
        if (r >= 0 && count > 0)
                r = params_set(p, "count", json_integer(count), e);
        return r;
}

/* ---- JSON output: the reply's objects, keys in the interface's order --- */

static json_t *node_json(json_t *n) {
        return json_ordered(n, "name", "address", "ready", "reason", "since", "machine_id", "boot_id",
                            "cpu_milli_core", "memory_bytes", "storage_bytes", "used_cpu_milli_core",
                            "used_memory_bytes", "used_storage_bytes", "labels", "version", "registered", NULL);
}

static json_t *reservation_json(json_t *r) {
        return json_ordered(r, "kind", "name", "node", "request_cpu_milli_core", "limit_cpu_milli_core",
                            "request_memory_bytes", "limit_memory_bytes", "request_bytes", "limit_bytes", "created",
                            NULL);
}

static json_t *array_json(json_t *l, json_t *(*f)(json_t *)) {
        json_t *a = json_array(), *x;
        size_t i;
        json_array_foreach(l, i, x)
                if (a && json_array_append_new(a, f(x)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* ---- output for people ------------------------------------------------ */

/* "cpu 500m (limit 1), memory 64M": what a Reservation holds. */
static void print_amounts(json_t *r) {
        const char *sep = "";
        for (size_t i = 0; i < ELEMENTSOF(resources); i++) {
                char a[NAP_AMOUNT_STRING_MAX], b[NAP_AMOUNT_STRING_MAX];
                json_int_t req = json_int_key(r, "request_", resources[i].res);
                json_int_t lim = json_int_key(r, "limit_", resources[i].res);
                if (req <= 0)
                        continue;
                printf("%s%s %s", sep, resources[i].what, resources[i].format(req, a));
                if (lim > req)
                        printf(" (limit %s)", resources[i].format(lim, b));
                sep = ", ";
        }
}

/* "cpu 2, memory 1G, storage 10G": a Node's capacity (prefix "") or its
 * usage ("used_"). */
static void print_resources(json_t *n, const char *prefix) {
        char b[NAP_AMOUNT_STRING_MAX];
        for (size_t i = 0; i < ELEMENTSOF(resources); i++)
                printf("%s%s %s", i > 0 ? ", " : "", resources[i].what,
                       resources[i].show(json_int_key(n, prefix, resources[i].key), b));
        putchar('\n');
}

/* "k=v,k2=v2", "-" for none. */
static void print_labels(json_t *n) {
        json_t *labels = json_object_get(n, "labels"), *v;
        const char *k, *sep = "";
        json_object_foreach(labels, k, v) {
                printf("%s%s=%s", sep, k, strempty(json_string_value(v)));
                sep = ",";
        }
        if (!*sep)
                putchar('-');
}

static void print_status(json_t *n) {
        const char *reason = json_string_value(json_object_get(n, "reason"));
        char b[32];
        if (json_is_true(json_object_get(n, "ready")))
                puts("Ready");
        else if (reason)
                printf("NotReady: %s, since %s\n", reason, output_time(json_int(n, "since"), b));
        else
                puts("NotReady");
}

static void print_node(json_t *n) {
        char b[32];
        printf("Name:         %s\n", json_str(n, "name"));
        printf("Address:      %s\n", json_str(n, "address"));
        printf("Status:       ");
        print_status(n);
        printf("Machine ID:   %s\n", json_str(n, "machine_id"));
        printf("Boot ID:      %s\n", json_str(n, "boot_id"));
        printf("Capacity:     ");
        print_resources(n, "");
        printf("Used:         ");
        print_resources(n, "used_");
        printf("Labels:       ");
        print_labels(n);
        printf("\nVersion:      %s\n", json_str(n, "version"));
        printf("Registered:   %s\n", output_time(json_int(n, "registered"), b));
}

static void print_reservations(json_t *l) {
        json_t *r;
        size_t i;
        char b[32];
        printf("Reservations:%s\n", json_array_size(l) > 0 ? "" : " none");
        json_array_foreach(l, i, r) {
                printf("  %-8s %-24s ", json_str(r, "kind"), json_str(r, "name"));
                print_amounts(r);
                printf("; created %s\n", output_time(json_int(r, "created"), b));
        }
}

/* One line per node: NAME STATUS CPU MEMORY STORAGE LABELS, the resources
 * as used/total. */
static void print_node_row(json_t *n) {
        printf("%-20s %-9s", json_str(n, "name"), json_is_true(json_object_get(n, "ready")) ? "Ready" : "NotReady");
        for (size_t i = 0; i < ELEMENTSOF(resources); i++) {
                char used[NAP_AMOUNT_STRING_MAX], total[NAP_AMOUNT_STRING_MAX], both[2 * NAP_AMOUNT_STRING_MAX];
                json_int_t u = json_int_key(n, "used_", resources[i].key), t = json_int_key(n, "", resources[i].key);
                snprintf(both, sizeof both, "%s/%s", resources[i].show(u, used), resources[i].show(t, total));
                printf(" %-13s", both);
        }
        putchar(' ');
        print_labels(n);
        putchar('\n');
}

/* ---- nodes ------------------------------------------------------------ */

int verb_nodes(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *n;
        size_t i;
        int r = caller_call(c, "ListNodes", json_object(), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *l = json_object_get(reply, "nodes");
        if (o->json)
                return output_json(array_json(l, node_json));
        printf("%-20s %-9s %-13s %-13s %-13s %s\n", "NAME", "STATUS", "CPU", "MEMORY", "STORAGE", "LABELS");
        json_array_foreach(l, i, n)
                print_node_row(n);
        return 0;
}

int verb_node_show(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        int r = caller_call(c, "GetNode", json_pack("{s:s}", "name", args[0]), READ_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *node = json_object_get(reply, "node"), *l = json_object_get(reply, "reservations");
        if (o->json)
                return output_json(json_pack("{s:o, s:o}", "node", node_json(node), "reservations",
                                             array_json(l, reservation_json)));
        print_node(node);
        print_reservations(l);
        return 0;
}

int verb_node_apply(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        json_int_t cpu, memory, storage;
        json_t *labels;
        if (!o->cpu || !o->memory || !o->storage)
                return option_missing("node", "apply", "--cpu=CPUS, --memory=SIZE and --storage=SIZE (capacity)", e);
        int r = option_capacity("--cpu", o->cpu, nap_cpu_parse, &cpu, e);
        if (r >= 0)
                r = option_capacity("--memory", o->memory, nap_bytes_parse, &memory, e);
        if (r >= 0)
                r = option_capacity("--storage", o->storage, nap_bytes_parse, &storage, e);
        if (r >= 0)
                r = option_labels(o, &labels, e);
        if (r >= 0)
                r = caller_call(c, "ApplyNode",
                                json_pack("{s:s, s:s, s:I, s:I, s:I, s:o*}", "name", args[0], "address", args[1],
                                          "cpu_milli_core", cpu, "memory_bytes", memory, "storage_bytes", storage,
                                          "labels", labels),
                                WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        if (o->json)
                return output_json(node_json(json_object_get(reply, "node")));
        print_node(json_object_get(reply, "node"));
        return 0;
}

int verb_node_delete(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        return caller_call(c, "DeleteNode", json_pack("{s:s, s:b}", "name", args[0], "force", o->force),
                           WRITE_TIMEOUT, &reply, e);
}

/* ---- reservations ----------------------------------------------------- */

/* args: NODE NAME. */
static int reserve(Caller *c, NapReservationKind kind, char **args, const NodeOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *p;
        int r = request_params(kind, "reserve", args[1], o, &p, e);
        if (r >= 0 && (r = params_set(p, "name", json_string(args[0]), e)) < 0)
                json_decref(p);
        if (r >= 0)
                r = caller_call(c, kinds[kind].reserve, p, WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *res = json_object_get(reply, "reservation");
        bool created = json_is_true(json_object_get(reply, "created"));
        if (o->json)
                return output_json(json_pack("{s:o, s:b}", "reservation", reservation_json(res), "created", created));
        if (!created) {
                printf("%s was reserved on %s already (unchanged)\n", json_str(res, "name"), json_str(res, "node"));
                return 0;
        }
        printf("Reserved %s on %s: ", json_str(res, "name"), json_str(res, "node"));
        print_amounts(res);
        putchar('\n');
        return 0;
}

int verb_reserve_compute(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        return reserve(c, NAP_RESERVATION_COMPUTE, args, o, e);
}

int verb_reserve_storage(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        return reserve(c, NAP_RESERVATION_STORAGE, args, o, e);
}

/* args: NODE NAME; silent on success. */
static int release(Caller *c, NapReservationKind kind, char **args, NapError *e) {
        json_auto_t *reply = NULL;
        return caller_call(c, kinds[kind].release,
                           json_pack("{s:s, s:s}", "name", args[0], kinds[kind].name_arg, args[1]), WRITE_TIMEOUT,
                           &reply, e);
}

int verb_release_compute(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        return release(c, NAP_RESERVATION_COMPUTE, args, e);
}

int verb_release_storage(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        return release(c, NAP_RESERVATION_STORAGE, args, e);
}

/* args: NAME; one line per placement, "NAME NODE". */
static int schedule(Caller *c, NapReservationKind kind, char **args, const NodeOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        json_t *p, *res;
        size_t i;
        int r = request_params(kind, "schedule", args[0], o, &p, e);
        if (r >= 0 && (r = schedule_params(p, o, e)) < 0)
                json_decref(p);
        if (r >= 0)
                r = caller_call(c, kinds[kind].schedule, p, WRITE_TIMEOUT, &reply, e);
        if (r < 0)
                return r;
        json_t *l = json_object_get(reply, "reservations");
        if (o->json)
                return output_json(array_json(l, reservation_json));
        json_array_foreach(l, i, res)
                printf("%s %s\n", json_str(res, "name"), json_str(res, "node"));
        return 0;
}

int verb_schedule_compute(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        return schedule(c, NAP_RESERVATION_COMPUTE, args, o, e);
}

int verb_schedule_storage(Caller *c, char **args, const NodeOptions *o, NapError *e) {
        return schedule(c, NAP_RESERVATION_STORAGE, args, o, e);
}
