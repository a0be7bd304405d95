/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The signed-in user's jobs in the resource queue (lib/cluster/queue.h),
 * and cancel and move up/down of one of them.
 *
 * nap-web calls queue.h over etcd itself, with the signed-in user as the
 * owner of every call (root: every owner), rather than nap-queued's Unix
 * socket: nap-queued takes the owner from the socket's peer uid, which
 * for nap-web is root's (nap-web runs as root), and root there acts on
 * any owner's job. Through queue.h the owner goes into the very
 * read-modify-CAS that changes the job (nap_queue_move(),
 * nap_queue_cancel(): another owner's job is NoSuchJob), as nap-queued
 * passes its caller's, so nap-web acts for alice exactly as nap-queued
 * does for alice's uid, and no operation exists twice.
 * docs/ARCHITECTURE.md "nap-web", nap-web(8) QUEUE. */

#include <stdlib.h>

#include "base/strv.h"
#include "cluster/queue.h"
#include "web.h"

/* ---- arguments and etcd ------------------------------------------------ */

static const char *string_arg(json_t *args, const char *name, NapError *e) {
        const char *s = json_string_value(json_object_get(args, name));
        if (!s)
                nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "%s must be a string", name),
                                    name);
        return s;
}

/* The owner the calls act for: the signed-in user, or NULL (anyone) for root. */
static const char *owner_of(const WebRequest *r) {
        return r->uid == 0 ? NULL : r->user;
}

static int queue_etcd(WebRequest *r, EtcdClient **ret, NapError *e) {
        if (!r->context->config->etcd || !r->context->config->etcd[0])
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP,
                                     "The resource queue lives in etcd, and nap.conf sets no Etcd=");
        return etcd_client_new(r->context->config->etcd, ret, e);
}

/* ---- the list ---------------------------------------------------------- */

/* One job as nap-queued's API shows it, with its place among the queued
 * jobs of its type (1 first; 0 once it has left the queue). */
static json_t *job_json(const NapJob *j, size_t place) {
        json_t *o = nap_job_to_wire(j);
        if (o && json_object_set_new(o, "Place", json_integer((json_int_t) place)) < 0)
                return json_decref(o), NULL;
        return o;
}

/* The owner's jobs of one type, in queue order, appended to a. */
static int list_type(EtcdClient *etcd, const char *prefix, const char *type, const char *owner, json_t *a,
                     NapError *e) {
        NapJobFilter f = { .status = _NAP_JOB_STATUS_INVALID };
        NapJob *l = NULL;
        size_t n = 0, total, queued = 0;
        int r = nap_queue_list(etcd, prefix, type, &f, &l, &n, &total, e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                queued += l[i].status == NAP_JOB_QUEUED;
                if (owner && !streq(l[i].owner, owner))
                        continue;
                if (json_array_append_new(a, job_json(l + i, l[i].status == NAP_JOB_QUEUED ? queued : 0)) < 0)
                        r = nap_error_errno(e, -ENOMEM, "Failed to list the jobs");
        }
        nap_job_array_free(l, n);
        return r;
}

static json_t *queue_list(WebRequest *r, json_t *args, NapError *e) {
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        json_auto_t *a = json_array();
        if (!a)
                return nap_error_errno(e, -ENOMEM, "Failed to list the jobs"), NULL;
        if (queue_etcd(r, &etcd, e) < 0)
                return NULL;
        STRV_FOREACH(t, r->context->queue_types)
                if (list_type(etcd, r->context->config->cluster_prefix, *t, owner_of(r), a, e) < 0)
                        return NULL;
        return json_pack("{s:O}", "jobs", a);
}

enum MHD_Result web_route_queue_list(WebRequest *r) {
        return web_respond_post(r, queue_list);
}

/* ---- cancel ------------------------------------------------------------ */

static json_t *queue_cancel(WebRequest *r, json_t *args, NapError *e) {
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        const char *type = string_arg(args, "type", e), *id = type ? string_arg(args, "request_id", e) : NULL;
        NapJob j = {};
        if (!id || queue_etcd(r, &etcd, e) < 0 ||
            nap_queue_cancel(etcd, r->context->config->cluster_prefix, type, id, owner_of(r), &j, e) < 0)
                return NULL;
        json_t *o = json_pack("{s:o}", "job", job_json(&j, 0));
        nap_job_done(&j);
        return o;
}

enum MHD_Result web_route_queue_cancel(WebRequest *r) {
        return web_respond_post(r, queue_cancel);
}

/* ---- move up or down --------------------------------------------------- */

/* The priority that puts the job at index i of the queued jobs l one
 * place up (up) or down: between the two jobs it passes and the next, or
 * past the end by one. -ERANGE: already first or last, or no integer
 * between. */
static int priority_moved(const NapJob *l, size_t n, size_t i, bool up, int64_t *ret) {
        if (up ? i == 0 : i + 1 >= n)
                return -ERANGE;
        size_t passed = up ? i - 1 : i + 1;
        bool at_end = up ? passed == 0 : passed + 1 == n;
        if (at_end) {
                int64_t p = l[passed].priority;
                if (up ? p == INT64_MIN : p == INT64_MAX)
                        return -ERANGE;
                *ret = up ? p - 1 : p + 1;
                return 0;
        }
        return nap_queue_priority_between(l[passed].priority, l[up ? passed - 1 : passed + 1].priority, ret);
}

/* The new priority of the job: read from the whole queue of its type
 * (whoever's the neighbours are; only the number leaves this function). */
static int move_priority(EtcdClient *etcd, const char *prefix, const char *type, const char *id, bool up,
                         int64_t *ret, NapError *e) {
        NapJobFilter f = { .status = NAP_JOB_QUEUED };
        NapJob *l = NULL;
        size_t n = 0, total, i;
        int r = nap_queue_list(etcd, prefix, type, &f, &l, &n, &total, e);
        if (r < 0)
                return r;
        for (i = 0; i < n && !streq(l[i].request_id, id); i++)
                ;
        if (i == n)
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT,
                                  "The %s queue has no queued job %s (it may have been admitted or cancelled)", type, id);
        else if (priority_moved(l, n, i, up, ret) < 0)
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE, "The job is already %s of the %s queue",
                                  up ? "at the front" : "at the back", type);
        nap_job_array_free(l, n);
        return r;
}

static json_t *queue_move(WebRequest *r, json_t *args, NapError *e) {
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        const char *type = string_arg(args, "type", e), *id = type ? string_arg(args, "request_id", e) : NULL;
        const char *direction = id ? string_arg(args, "direction", e) : NULL;
        const char *prefix = r->context->config->cluster_prefix;
        NapJob j = {};
        int64_t priority;
        if (!direction)
                return NULL;
        if (!streq(direction, "up") && !streq(direction, "down"))
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "direction must be \"up\" or \"down\""), "direction"), NULL;
        /* The owner is checked by nap_queue_get() first, so that another
         * owner's job is NoSuchJob here too, not "no queued job". */
        if (queue_etcd(r, &etcd, e) < 0 || nap_queue_get(etcd, prefix, type, id, owner_of(r), &j, e) < 0)
                return NULL;
        nap_job_done(&j);
        if (move_priority(etcd, prefix, type, id, streq(direction, "up"), &priority, e) < 0 ||
            nap_queue_move(etcd, prefix, type, id, owner_of(r), priority, &j, e) < 0)
                return NULL;
        json_t *o = json_pack("{s:o}", "job", job_json(&j, 0));
        nap_job_done(&j);
        return o;
}

enum MHD_Result web_route_queue_move(WebRequest *r) {
        return web_respond_post(r, queue_move);
}
