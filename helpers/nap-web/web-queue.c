/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The signed-in user's jobs in the resource queue, and cancel and move
 * up/down of one of them, through nap-queued's API on its Unix socket
 * (lib/cluster/queue-client.h), as napctl queue does.
 *
 * nap-queued takes a Unix caller's owner from the peer uid, and nap-web's
 * is root's, for whom nap-queued acts on any owner's job. So nap-web
 * authorizes first, as it does before forwarding a method to
 * nap-managerd: a list names the signed-in user as owner_id; a cancel or
 * move first reads the job and goes on only if the user owns it (another
 * owner's job is NoSuchJob, nap-queued's own answer to that owner). A
 * job's owner never changes and its request_id is never reused (a job
 * stays in the queue's history after it ends), so the job read is the
 * job changed. Root signed in acts for every owner, as on the socket.
 * Why not lib/cluster/queue.h over etcd from here: nap-web has no network
 * (PrivateNetwork=, AF_UNIX only in nap-web.service), and nap-queued is
 * the one program that changes the queue (its index answers a list
 * without reading every job from etcd). docs/ARCHITECTURE.md "nap-web". */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/strv.h"
#include "cluster/queue-client.h"
#include "cluster/queue.h"
#include "web.h"

/* ---- arguments --------------------------------------------------------- */

static const char *string_arg(json_t *args, const char *name, NapError *e) {
        const char *s = json_string_value(json_object_get(args, name));
        if (!s)
                nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "%s must be a string", name),
                                    name);
        return s;
}

/* type and request_id of the body, checked as nap-queued checks them. */
static int job_args(json_t *args, const char **ret_type, const char **ret_id, NapError *e) {
        *ret_type = string_arg(args, "type", e);
        *ret_id = *ret_type ? string_arg(args, "request_id", e) : NULL;
        if (!*ret_id)
                return -EINVAL;
        int r = nap_queue_type_check(*ret_type, e);
        return r < 0 ? r : nap_job_request_id_check(*ret_id, e);
}

static json_t *queue_call(WebRequest *r, const char *method, json_t *body, NapError *e, const char *fmt, ...)
        _printf_(5, 6);
static json_t *queue_call(WebRequest *r, const char *method, json_t *body, NapError *e, const char *fmt, ...) {
        _cleanup_free_ char *path = NULL;
        json_t *data = NULL;
        va_list ap;
        va_start(ap, fmt);
        int k = vasprintf(&path, fmt, ap);
        va_end(ap);
        if (k < 0)
                return json_decref(body), nap_error_errno(e, -ENOMEM, "Out of memory"), NULL;
        return nap_queue_client_call(r->context->queue_address, method, path, body, &data, e) < 0 ? NULL : data;
}

/* ---- the list ---------------------------------------------------------- */

static json_t *queue_list(WebRequest *r, json_t *args, NapError *e) {
        json_auto_t *a = json_array();
        if (!a)
                return nap_error_errno(e, -ENOMEM, "Out of memory"), NULL;
        STRV_FOREACH(t, r->context->queue_types) {
                /* root: every owner's (owner_id empty) */
                json_auto_t *l = queue_call(r, "GET", NULL, e, "%s/?owner_id=%s", *t, r->uid == 0 ? "" : r->user);
                if (!l || json_array_extend(a, l) < 0)
                        return l ? nap_error_errno(e, -ENOMEM, "Out of memory"), NULL : NULL;
        }
        return json_pack("{s:O}", "jobs", a);
}

enum MHD_Result web_route_queue_list(WebRequest *r) {
        return web_respond_post(r, queue_list);
}

/* ---- cancel and move: the user's own job only --------------------------- */

/* The job, when the signed-in user may act on it (theirs, or root). */
static json_t *own_job(WebRequest *r, const char *type, const char *id, NapError *e) {
        json_t *j = queue_call(r, "GET", NULL, e, "%s/%s", type, id);
        if (j && r->uid != 0 && !streq_ptr(json_string_value(json_object_get(j, "OwnerID")), r->user)) {
                json_decref(j);
                return nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ENOENT, "The %s queue has no job %s", type, id), NULL;
        }
        return j;
}

static json_t *queue_cancel(WebRequest *r, json_t *args, NapError *e) {
        const char *type, *id;
        if (job_args(args, &type, &id, e) < 0)
                return NULL;
        json_auto_t *j = own_job(r, type, id, e);
        json_t *done = j ? queue_call(r, "DELETE", NULL, e, "%s/%s", type, id) : NULL;
        return done ? json_pack("{s:o}", "job", done) : NULL;
}

enum MHD_Result web_route_queue_cancel(WebRequest *r) {
        return web_respond_post(r, queue_cancel);
}

static int64_t priority_at(json_t *l, size_t i) {
        return json_integer_value(json_object_get(json_array_get(l, i), "Priority"));
}

/* The priority that moves the job at index i of the queued jobs l (in
 * queue order, every owner's) one place up or down: between the job it
 * passes and the one beyond, or past the end by one (the seed's rules,
 * nap_queue_priority_between()). -ERANGE: first or last already. */
static int priority_moved(json_t *l, size_t i, bool up, int64_t *ret) {
        size_t n = json_array_size(l);
        if (up ? i == 0 : i + 1 >= n)
                return -ERANGE;
        size_t passed = up ? i - 1 : i + 1;
        int64_t p = priority_at(l, passed);
        if (up ? passed == 0 : passed + 1 == n) {
                if (up ? p == INT64_MIN : p == INT64_MAX)
                        return -ERANGE;
                *ret = up ? p - 1 : p + 1;
                return 0;
        }
        return nap_queue_priority_between(p, priority_at(l, up ? passed - 1 : passed + 1), ret);
}

/* Whose the neighbours are does not leave this function: only the number. */
static int move_priority(WebRequest *r, const char *type, const char *id, bool up, int64_t *ret, NapError *e) {
        json_auto_t *l = queue_call(r, "GET", NULL, e, "%s/?status=queued", type);
        size_t i, n = json_array_size(l);
        if (!l)
                return -EIO;
        for (i = 0; i < n; i++)
                if (streq_ptr(json_string_value(json_object_get(json_array_get(l, i), "RequestID")), id))
                        break;
        if (i == n)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT,
                                     "Job %s has left the %s queue (admitted or cancelled)", id, type);
        if (priority_moved(l, i, up, ret) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE, "Job %s is %s of the %s queue already",
                                     id, up ? "at the front" : "at the back", type);
        return 0;
}

static json_t *queue_move(WebRequest *r, json_t *args, NapError *e) {
        const char *type, *id, *direction;
        int64_t priority;
        if (job_args(args, &type, &id, e) < 0 || !(direction = string_arg(args, "direction", e)))
                return NULL;
        if (!streq(direction, "up") && !streq(direction, "down"))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "direction must be \"up\" or \"down\""), "direction"), NULL;
        json_auto_t *j = own_job(r, type, id, e);
        if (!j || move_priority(r, type, id, streq(direction, "up"), &priority, e) < 0)
                return NULL;
        json_t *moved = queue_call(r, "POST", json_pack("{s:I}", "priority", (json_int_t) priority), e, "%s/%s", type,
                                   id);
        return moved ? json_pack("{s:o}", "job", moved) : NULL;
}

enum MHD_Result web_route_queue_move(WebRequest *r) {
        return web_respond_post(r, queue_move);
}
