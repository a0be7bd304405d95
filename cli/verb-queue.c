/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/strv.h"
#include "cluster/queue-client.h"
#include "cluster/queue.h"
#include "napctl-output.h"
#include "verb-queue.h"

static int queue_socket(Caller *c, char **ret, NapError *e) {
        const char *env = secure_getenv("NAP_QUEUE_SOCKET"), *runtime = "/run";
        NapContext *ctx;
        NapError ignored = NAP_ERROR_NULL;
        bool user = c->scope >= 0 ? c->scope == NAP_SCOPE_USER
                                  : caller_context(c, &ctx, &ignored) >= 0 && ctx->scope == NAP_SCOPE_USER;
        if (!isempty(env))
                *ret = strdup(env);
        else {
                if (user && isempty(runtime = secure_getenv("XDG_RUNTIME_DIR")))
                        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENXIO,
                                             "$XDG_RUNTIME_DIR is not set: give the queue's socket in $NAP_QUEUE_SOCKET");
                if (asprintf(ret, "%s/%s", runtime, NAP_QUEUE_SOCKET_NAME) < 0)
                        *ret = NULL;
        }
        return *ret ? 0 : nap_error_errno(e, -ENOMEM, "Out of memory");
}

/* One request to nap-queued: path below /v1/, body (taken) or NULL. */
static int queue_call(Caller *c, const char *method, const char *path, json_t *body, json_t **ret, NapError *e) {
        _cleanup_free_ char *sock = NULL;
        int r = queue_socket(c, &sock, e);
        if (r < 0)
                return json_decref(body), r;
        return nap_queue_client_call(sock, method, path, body, ret, e);
}

static int path_of(char **ret, const char *fmt, ...) _printf_(2, 3);
static int path_of(char **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(ret, fmt, ap);
        va_end(ap);
        return r < 0 ? -ENOMEM : 0;
}

static int check_job_args(char **args, NapError *e) {
        int r = nap_queue_type_check(args[0], e);
        return r < 0 ? r : nap_job_request_id_check(args[1], e);
}

static void print_job(json_t *j) {
        json_t *p;
        size_t i;
        printf("%s/%s  %s  owner %s  priority %" JSON_INTEGER_FORMAT "  callback %s (%s)\n", json_str(j, "Type"),
               json_str(j, "RequestID"), json_str(j, "Status"), json_str(j, "OwnerID"), json_int(j, "Priority"),
               json_str(j, "Callback"), json_str(j, "CallbackStatus"));
        json_array_foreach(json_object_get(j, "Placements"), i, p)
                printf("  instance %zu on %s: %" JSON_INTEGER_FORMAT " VCPU, %" JSON_INTEGER_FORMAT
                       " MiB, %" JSON_INTEGER_FORMAT " GiB\n",
                       i + 1, json_str(p, "Node"), json_int(p, "VCPU"), json_int(p, "Memory"), json_int(p, "Disk"));
}

static int show_job(const QueueOptions *o, json_t *data) {
        if (o->json)
                return output_json(data);
        print_job(data);
        json_decref(data);
        return 0;
}

int verb_queue_list(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        _cleanup_free_ char *path = NULL;
        json_t *data = NULL, *j;
        size_t i;
        int r = nap_queue_type_check(args[0], e);
        if (r < 0)
                return r;
        if (path_of(&path, "%s/?owner_id=%s&status=%s", args[0], o->owner ?: "", o->status ?: "") < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        if (o->owner && !nap_user_is_valid(o->owner))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "--owner= takes a user name");
        if (o->status && nap_job_status_from_string(o->status) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "--status= takes queued, running, done or cancelled");
        if ((r = queue_call(c, "GET", path, NULL, &data, e)) < 0)
                return r;
        if (o->json)
                return output_json(data);
        json_array_foreach(data, i, j)
                printf("%-24s %-10s %-12s %20" JSON_INTEGER_FORMAT " %s\n", json_str(j, "RequestID"),
                       json_str(j, "Status"), json_str(j, "OwnerID"), json_int(j, "Priority"),
                       json_str(j, "CallbackStatus"));
        json_decref(data);
        return 0;
}

/* A job's verb without a body: show, cancel, done, history. */
static int job_call(Caller *c, char **args, const char *method, const char *suffix, json_t **ret, NapError *e) {
        _cleanup_free_ char *path = NULL;
        int r = check_job_args(args, e);
        if (r < 0)
                return r;
        if (path_of(&path, "%s/%s%s", args[0], args[1], suffix) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        return queue_call(c, method, path, NULL, ret, e);
}

int verb_queue_show(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        json_t *data = NULL;
        int r = job_call(c, args, "GET", "/", &data, e);
        return r < 0 ? r : show_job(o, data);
}

int verb_queue_cancel(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        json_t *data = NULL;
        int r = job_call(c, args, "DELETE", "", &data, e);
        return r < 0 ? r : show_job(o, data);
}

int verb_queue_done(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        json_t *data = NULL;
        int r = job_call(c, args, "POST", "/done", &data, e);
        return r < 0 ? r : show_job(o, data);
}

int verb_queue_history(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        json_t *data = NULL, *h;
        size_t i;
        int r = job_call(c, args, "GET", "/history", &data, e);
        if (r < 0 || o->json)
                return r < 0 ? r : output_json(data);
        json_array_foreach(data, i, h)
                printf("%s %s\n", json_str(h, "At"), json_str(h, "Status"));
        json_decref(data);
        return 0;
}

/* "VCPU,MEMORY_MIB,DISK_GIB" */
static json_t *instance_parse(const char *s, NapError *e) {
        unsigned long long v[3];
        int n = 0;
        if (sscanf(s, "%llu,%llu,%llu%n", v, v + 1, v + 2, &n) != 3 || s[n] || s[0] == '-')
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "An instance is VCPU,MEMORY_MIB,DISK_GIB (e.g. 1,1024,10), not '%s'", s),
                       NULL;
        return json_pack("{s:I, s:I, s:I}", "VCPU", (json_int_t) v[0], "Memory", (json_int_t) v[1], "Disk",
                         (json_int_t) v[2]);
}

static const char *own_name(char buf[static NAP_USER_MAX + 1]) {
        struct passwd *pw = getpwuid(getuid());
        snprintf(buf, NAP_USER_MAX + 1, "%s", pw ? pw->pw_name : "");
        return buf;
}

int verb_queue_submit(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        _cleanup_free_ char *path = NULL;
        char me[NAP_USER_MAX + 1];
        json_t *instances = json_array(), *data = NULL;
        int r = check_job_args(args, e);
        for (size_t i = 3; r >= 0 && args[i]; i++) {
                json_t *x = instance_parse(args[i], e);
                r = x ? json_array_append_new(instances, x) : -EINVAL;
        }
        if (r >= 0 && path_of(&path, "%s/", args[0]) < 0)
                r = nap_error_errno(e, -ENOMEM, "Out of memory");
        if (r < 0)
                return json_decref(instances), r;
        /* checked by nap-queued, as from any client */
        json_t *body = json_pack("{s:s, s:s, s:{s:o}, s:s}", "request_id", args[1], "owner_id",
                                 o->owner ?: own_name(me), "data", "instances", instances, "callback", args[2]);
        if ((r = queue_call(c, "POST", path, body, &data, e)) < 0)
                return r;
        return show_job(o, data);
}

/* The position of OTHER in the queued list l, or -1. */
static ssize_t index_of(json_t *l, const char *other) {
        json_t *j;
        size_t i;
        json_array_foreach(l, i, j)
                if (streq(json_str(j, "RequestID"), other))
                        return (ssize_t) i;
        return -1;
}

/* After OTHER (at k): the mean of its priority and the next job's (not
 * id's, which is the one moving), or OTHER's + 1 when it is the last. */
static int priority_after(json_t *l, size_t k, const char *id, int64_t *ret, NapError *e) {
        int64_t a = json_int(json_array_get(l, k), "Priority");
        json_t *next = NULL;
        for (size_t i = k + 1; !next && i < json_array_size(l); i++)
                if (!streq(json_str(json_array_get(l, i), "RequestID"), id))
                        next = json_array_get(l, i);
        if (!next) {
                *ret = a + 1;
                return 0;
        }
        if (nap_queue_priority_between(a, json_int(next, "Priority"), ret) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                     "No priority is left after %s: move it first or last, or give a number",
                                     json_str(json_array_get(l, k), "RequestID"));
        return 0;
}

/* The priority "first", "last" or "after:OTHER" stand for, from the list. */
static int priority_for(Caller *c, const char *type, const char *id, const char *where, int64_t *ret, NapError *e) {
        _cleanup_free_ char *path = NULL;
        json_t *l = NULL;
        const char *other = startswith(where, "after:");
        if (path_of(&path, "%s/?status=queued", type) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        int r = queue_call(c, "GET", path, NULL, &l, e);
        if (r < 0)
                return r;
        size_t n = json_array_size(l);
        ssize_t k = other ? index_of(l, other) : 0;
        if (n == 0 || k < 0)
                r = nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ENOENT, "%s is not queued in %s", other ?: id, type);
        else if (other)
                r = priority_after(l, (size_t) k, id, ret, e);
        else
                *ret = streq(where, "first") ? json_int(json_array_get(l, 0), "Priority") - 1
                                             : json_int(json_array_get(l, n - 1), "Priority") + 1;
        json_decref(l);
        return r;
}

int verb_queue_move(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        _cleanup_free_ char *path = NULL;
        json_t *data = NULL;
        int64_t priority = 0;
        char *end = NULL;
        int r = check_job_args(args, e);
        if (r < 0)
                return r;
        errno = 0;
        priority = strtoll(args[2], &end, 10);
        if (errno != 0 || end == args[2] || *end) {
                if (!streq(args[2], "first") && !streq(args[2], "last") && !startswith(args[2], "after:"))
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "Where to: first, last, after:OTHER or a priority, not '%s'", args[2]);
                if ((r = priority_for(c, args[0], args[1], args[2], &priority, e)) < 0)
                        return r;
        }
        if (path_of(&path, "%s/%s", args[0], args[1]) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        r = queue_call(c, "POST", path, json_pack("{s:I}", "priority", (json_int_t) priority), &data, e);
        json_decref(data);
        if (r < 0)
                return r;
        if (o->json)
                return output_json(json_pack("{s:s, s:s, s:I}", "type", args[0], "request_id", args[1], "priority",
                                             (json_int_t) priority));
        printf("Moved %s/%s to priority %" PRId64 "\n", args[0], args[1], priority);
        return 0;
}

int verb_queue_token(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        json_t *data = NULL;
        int r = queue_call(c, "POST", "_tokens/", json_pack("{s:s}", "owner_id", args[0]), &data, e);
        if (r < 0 || o->json)
                return r < 0 ? r : output_json(data);
        printf("%s\n", json_str(data, "Token"));
        json_decref(data);
        return 0;
}

int verb_queue_secret(Caller *c, char **args, const QueueOptions *o, NapError *e) {
        _cleanup_free_ char *path = NULL;
        json_t *data = NULL;
        if (args[0] && !nap_user_is_valid(args[0]))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Not a user name: %s", args[0]);
        if (path_of(&path, "_secret%s%s", args[0] ? "?owner_id=" : "", args[0] ?: "") < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        int r = queue_call(c, "GET", path, NULL, &data, e);
        if (r < 0 || o->json)
                return r < 0 ? r : output_json(data);
        printf("%s\n", json_str(data, "Secret"));
        json_decref(data);
        return 0;
}

int queue_wake(Caller *c, const char *type, const char *id, NapError *e) {
        _cleanup_free_ char *path = NULL;
        json_auto_t *data = NULL;
        if (path_of(&path, "%s/%s/", type, id) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        return queue_call(c, "GET", path, NULL, &data, e);
}

/* ---- starts waiting in the queue (start-common --queue, start-mpi --queue) */

static volatile sig_atomic_t queue_interrupted = 0;

static void on_queue_interrupt(int sig) {
        (void) sig;
        queue_interrupted = 1;
}

static int wait_start_watch(Caller *c, const char *service, const char *id, json_t *queued, bool json, bool no_block,
                            NapError *e) {
        NapContext *ctx;
        NapService s;
        /* first: once "Queued" is shown, nap-queued runs (a client killed
         * after it still has its job admitted) */
        NapError why = NAP_ERROR_NULL;
        if (queue_wake(c, NAP_QUEUE_TYPE_START, json_str(queued, "job"), &why) < 0)
                fprintf(stderr, "napctl: warning: %s: nothing admits the start until nap-queued runs\n", why.message);
        fprintf(json ? stderr : stdout, "Queued: job %s (id %" JSON_INTEGER_FORMAT "), position %" JSON_INTEGER_FORMAT
                "; request id %s\n", json_str(queued, "job"), json_integer_value(json_object_get(queued, "id")),
                json_integer_value(json_object_get(queued, "position")), id);
        fflush(stdout);
        if (no_block) {
                if (json)
                        output_json(json_pack("{s:O}", "queued", queued));
                return 1;
        }
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = caller_context(c, &ctx, e);
        return r < 0 ? r : nap_queued_start_wait(ctx, s.user, id, &queue_interrupted, e);
}

int queue_wait_start(Caller *c, const char *service, const char *id, json_t *queued, bool json, bool no_block,
                     NapError *e) {
        struct sigaction sa = { .sa_handler = on_queue_interrupt }, old_int, old_term;
        /* from here on an interrupt cancels the job (the watch sees the flag) */
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        int r = wait_start_watch(c, service, id, queued, json, no_block, e);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        return r;
}
