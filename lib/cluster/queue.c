/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/clock.h"
#include "base/hex.h"
#include "base/json-parse.h"
#include "base/sha256.h"
#include "base/strv.h"
#include "cluster/inventory.h"
#include "cluster/queue.h"

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

static int invalid(NapError *e, const char *parameter, const char *fmt, ...) _printf_(3, 4);
static int invalid(NapError *e, const char *parameter, const char *fmt, ...) {
        char m[NAP_ERROR_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m, sizeof m, fmt, ap);
        va_end(ap);
        nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "%s", m);
        return nap_error_parameter(e, -EINVAL, parameter);
}

/* ---- tables ----------------------------------------------------------- */

static const char *const status_table[_NAP_JOB_STATUS_MAX] = {
        [NAP_JOB_QUEUED] = "queued",
        [NAP_JOB_RUNNING] = "running",
        [NAP_JOB_DONE] = "done",
        [NAP_JOB_CANCELLED] = "cancelled",
};

const char *nap_job_status_to_string(NapJobStatus s) {
        return s >= 0 && s < _NAP_JOB_STATUS_MAX ? status_table[s] : NULL;
}

NapJobStatus nap_job_status_from_string(const char *s) {
        return string_table_lookup(status_table, ELEMENTSOF(status_table), s);
}

static const char *const delivery_table[_NAP_DELIVERY_STATE_MAX] = {
        [NAP_DELIVERY_NONE] = "none",
        [NAP_DELIVERY_PENDING] = "pending",
        [NAP_DELIVERY_DELIVERED] = "delivered",
        [NAP_DELIVERY_FAILED] = "failed",
};

const char *nap_delivery_state_to_string(NapDeliveryState s) {
        return s >= 0 && s < _NAP_DELIVERY_STATE_MAX ? delivery_table[s] : NULL;
}

NapDeliveryState nap_delivery_state_from_string(const char *s) {
        return string_table_lookup(delivery_table, ELEMENTSOF(delivery_table), s);
}

void nap_job_done(NapJob *j) {
        if (!j)
                return;
        free(j->data);
        free(j->callback);
        free(j->history);
        free(j->delivery_error);
        j->data = j->callback = j->delivery_error = NULL;
        j->history = NULL;
        j->n_history = 0;
}

void nap_job_array_free(NapJob *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_job_done(l + i);
        free(l);
}

/* ---- names ------------------------------------------------------------ */

static bool all_of(const char *s, const char *extra, bool upper) {
        for (; *s; s++)
                if (!(islower((unsigned char) *s) || isdigit((unsigned char) *s) ||
                      (upper && isupper((unsigned char) *s)) || strchr(extra, *s)))
                        return false;
        return true;
}

int nap_queue_type_check(const char *s, NapError *e) {
        if (!s || !*s || strlen(s) > NAP_QUEUE_TYPE_MAX || !all_of(s, "-", false) || s[0] == '-')
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "A queue type is [a-z0-9][a-z0-9-]{0,31}");
        return 0;
}

int nap_job_request_id_check(const char *s, NapError *e) {
        if (!s || !*s || strlen(s) > NAP_REQUEST_ID_MAX || !all_of(s, "_.@-", true) || streq(s, ".") ||
            streq(s, ".."))
                return invalid(e, "request_id", "request_id must be 1 to %u of [A-Za-z0-9_.@-] (no '/')",
                               NAP_REQUEST_ID_MAX);
        return 0;
}

int nap_callback_check(const char *s, NapError *e) {
        const char *host = startswith(s, "http://") ?: startswith(s, "https://");
        if (!host || !*host || *host == '/' || strlen(s) > NAP_CALLBACK_MAX)
                return invalid(e, "callback", "callback must be an http:// or https:// URL with a host (at most %d bytes)",
                               NAP_CALLBACK_MAX);
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return invalid(e, "callback", "callback must not contain spaces or control characters");
        return 0;
}

void nap_job_reservation_name(const NapJob *j, unsigned i, char ret[static NAP_RESERVATION_NAME_MAX + 1]) {
        snprintf(ret, NAP_RESERVATION_NAME_MAX + 1, "%s_q.%s.%s.%u", j->owner, j->type, j->request_id, i + 1);
}

/* ---- parsing requests ------------------------------------------------- */

static int load_object(const char *body, size_t size, json_t **ret, NapError *e) {
        if (size > NAP_QUEUE_BODY_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -E2BIG, "The body is larger than %d bytes",
                                     NAP_QUEUE_BODY_MAX);
        if (nap_json_parse(body, size, ret) < 0 || !json_is_object(*ret)) {
                json_decref(*ret);
                *ret = NULL;
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG, "The body is not a JSON object");
        }
        return 0;
}

static int string_field(json_t *o, const char *name, size_t max, char **ret, NapError *e) {
        json_t *v = json_object_get(o, name);
        if (!v)
                return invalid(e, name, "%s is missing", name);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
            strlen(json_string_value(v)) != json_string_length(v))
                return invalid(e, name, "%s must be a string of 1 to %zu bytes", name, max);
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : oom(e);
}

static int amount_field(json_t *inst, const char *name, uint64_t min, uint64_t max, uint64_t *ret, NapError *e) {
        json_t *v = json_object_get(inst, name);
        if (!json_is_integer(v) || json_integer_value(v) < (json_int_t) min || json_integer_value(v) > (json_int_t) max)
                return invalid(e, "data", "data.instances[].%s must be an integer from %" PRIu64 " to %" PRIu64, name,
                               min, max);
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

static int instances_parse(json_t *data, NapJob *j, NapError *e) {
        json_t *l = json_object_get(data, "instances"), *inst;
        size_t i;
        if (!json_is_array(l) || json_array_size(l) == 0 || json_array_size(l) > NAP_JOB_INSTANCES_MAX)
                return invalid(e, "data", "data.instances must be an array of 1 to %d instances",
                               NAP_JOB_INSTANCES_MAX);
        json_array_foreach(l, i, inst) {
                NapJobInstance *x = j->instances + i;
                int r = json_is_object(inst) ? 0 : invalid(e, "data", "data.instances[] must be objects");
                if (r >= 0)
                        r = amount_field(inst, "VCPU", 1, NAP_CPU_MILLI_MAX / 1000, &x->vcpu, e);
                if (r >= 0)
                        r = amount_field(inst, "Memory", 1, NAP_BYTES_MAX >> 20, &x->memory_mib, e);
                if (r >= 0)
                        r = amount_field(inst, "Disk", 0, NAP_BYTES_MAX >> 30, &x->disk_gib, e);
                if (r < 0)
                        return r;
        }
        j->n_instances = (unsigned) json_array_size(l);
        return 0;
}

static int data_parse(json_t *o, NapJob *j, NapError *e) {
        json_t *data = json_object_get(o, "data");
        if (!data)
                return invalid(e, "data", "data is missing");
        if (!json_is_object(data))
                return invalid(e, "data", "data must be an object");
        int r = instances_parse(data, j, e);
        if (r < 0)
                return r;
        j->data = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
        if (!j->data)
                return oom(e);
        if (strlen(j->data) > NAP_JOB_DATA_MAX)
                return invalid(e, "data", "data is larger than %d bytes", NAP_JOB_DATA_MAX);
        return 0;
}

int nap_job_request_parse(const char *body, size_t size, NapJob *ret, NapError *e) {
        json_auto_t *o = NULL;
        _cleanup_free_ char *request_id = NULL, *owner = NULL;
        NapJob j = {};
        int r = load_object(body, size, &o, e);
        if (r >= 0)
                r = string_field(o, "request_id", NAP_REQUEST_ID_MAX, &request_id, e);
        if (r >= 0)
                r = nap_job_request_id_check(request_id, e);
        if (r >= 0)
                r = string_field(o, "owner_id", NAP_USER_MAX, &owner, e);
        if (r >= 0 && !nap_user_is_valid(owner))
                r = invalid(e, "owner_id", "owner_id must be a user name, [a-z][a-z0-9-]{0,31}");
        if (r >= 0)
                r = string_field(o, "callback", NAP_CALLBACK_MAX, &j.callback, e);
        if (r >= 0)
                r = nap_callback_check(j.callback, e);
        if (r >= 0)
                r = data_parse(o, &j, e);
        if (r < 0)
                return nap_job_done(&j), r;
        snprintf(j.request_id, sizeof j.request_id, "%s", request_id);
        snprintf(j.owner, sizeof j.owner, "%s", owner);
        j.status = NAP_JOB_QUEUED;
        *ret = j;
        return 0;
}

int nap_priority_request_parse(const char *body, size_t size, int64_t *ret, NapError *e) {
        json_auto_t *o = NULL;
        int r = load_object(body, size, &o, e);
        if (r < 0)
                return r;
        json_t *p = json_object_get(o, "priority");
        if (!p)
                return invalid(e, "priority", "priority is missing");
        if (!json_is_integer(p))
                return invalid(e, "priority", "priority must be an integer");
        *ret = json_integer_value(p);
        return 0;
}

/* ---- showing ---------------------------------------------------------- */

int nap_rfc3339(uint64_t usec, char buf[static 40]) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return -ERANGE;
        size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 40 - n, ".%06" PRIu64 "000Z", usec % USEC_PER_SEC);
        return 0;
}

static json_t *time_or_null(uint64_t usec) {
        char b[40];
        return usec > 0 && nap_rfc3339(usec, b) >= 0 ? json_string(b) : json_null();
}

static json_t *placements_to_wire(const NapJob *j) {
        json_t *l = json_array();
        for (unsigned i = 0; l && i < j->n_instances && j->instances[i].node[0]; i++) {
                const NapJobInstance *x = j->instances + i;
                if (json_array_append_new(l, json_pack("{s:s, s:I, s:I, s:I}", "Node", x->node, "VCPU",
                                                       (json_int_t) x->vcpu, "Memory", (json_int_t) x->memory_mib,
                                                       "Disk", (json_int_t) x->disk_gib)) < 0)
                        return json_decref(l), NULL;
        }
        return l;
}

json_t *nap_job_to_wire(const NapJob *j) {
        return json_pack("{s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:s, s:i, s:s}", "ID",
                         (json_int_t) j->id, "CreatedAt", time_or_null(j->created_usec), "UpdatedAt",
                         time_or_null(j->updated_usec), "DeletedAt", time_or_null(j->deleted_usec), "RequestID",
                         j->request_id, "Type", j->type, "OwnerID", j->owner, "Data", j->data ?: "{}", "Callback",
                         j->callback ?: "", "Priority", (json_int_t) j->priority, "Status",
                         nap_job_status_to_string(j->status), "Placements", placements_to_wire(j), "CallbackStatus",
                         nap_delivery_state_to_string(j->delivery), "CallbackAttempts", (int) j->attempts,
                         "DeliveryID", j->delivery_id);
}

json_t *nap_job_history_to_wire(const NapJob *j) {
        json_t *l = json_array();
        for (size_t i = 0; l && i < j->n_history; i++)
                if (json_array_append_new(l, json_pack("{s:s, s:o}", "Status",
                                                       nap_job_status_to_string(j->history[i].status), "At",
                                                       time_or_null(j->history[i].at_usec))) < 0)
                        return json_decref(l), NULL;
        return l;
}

/* ---- the stored form -------------------------------------------------- */

static json_t *instances_to_json(const NapJob *j) {
        json_t *l = json_array();
        for (unsigned i = 0; l && i < j->n_instances; i++) {
                const NapJobInstance *x = j->instances + i;
                if (json_array_append_new(l, json_pack("{s:I, s:I, s:I, s:s}", "vcpu", (json_int_t) x->vcpu,
                                                       "memory_mib", (json_int_t) x->memory_mib, "disk_gib",
                                                       (json_int_t) x->disk_gib, "node", x->node)) < 0)
                        return json_decref(l), NULL;
        }
        return l;
}

static json_t *history_to_json(const NapJob *j) {
        json_t *l = json_array();
        for (size_t i = 0; l && i < j->n_history; i++)
                if (json_array_append_new(l, json_pack("{s:s, s:I}", "status",
                                                       nap_job_status_to_string(j->history[i].status), "at",
                                                       (json_int_t) j->history[i].at_usec)) < 0)
                        return json_decref(l), NULL;
        return l;
}

int nap_job_to_json(const NapJob *j, char **ret) {
        json_auto_t *o = json_pack(
                "{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:o, s:o, s:{s:s, s:s, s:i, s:I, s:s*}}", "type",
                j->type, "request_id", j->request_id, "owner", j->owner, "data", j->data ?: "{}", "callback",
                j->callback ?: "", "priority", (json_int_t) j->priority, "status", nap_job_status_to_string(j->status),
                "created", (json_int_t) j->created_usec, "updated", (json_int_t) j->updated_usec, "deleted",
                (json_int_t) j->deleted_usec, "instances", instances_to_json(j), "history", history_to_json(j),
                "delivery", "state", nap_delivery_state_to_string(j->delivery), "id", j->delivery_id, "attempts",
                (int) j->attempts, "next", (json_int_t) j->next_attempt_usec, "error", j->delivery_error);
        if (!o || !(*ret = json_dumps(o, JSON_COMPACT)))
                return -ENOMEM;
        return 0;
}

static int damaged(NapError *e, const char *what) {
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "The queue's job record is damaged: %s", what);
}

static int instances_from_json(json_t *l, NapJob *j, NapError *e) {
        json_t *x;
        size_t i;
        if (!json_is_array(l) || json_array_size(l) > NAP_JOB_INSTANCES_MAX)
                return damaged(e, "instances");
        json_array_foreach(l, i, x) {
                json_int_t vcpu, mem, disk;
                const char *node;
                if (json_unpack(x, "{s:I, s:I, s:I, s:s}", "vcpu", &vcpu, "memory_mib", &mem, "disk_gib", &disk,
                                "node", &node) < 0 ||
                    vcpu < 0 || mem < 0 || disk < 0 || strlen(node) > NAP_NODE_NAME_MAX)
                        return damaged(e, "instances");
                j->instances[i] = (NapJobInstance) { .vcpu = (uint64_t) vcpu, .memory_mib = (uint64_t) mem,
                                                     .disk_gib = (uint64_t) disk };
                snprintf(j->instances[i].node, sizeof j->instances[i].node, "%s", node);
        }
        j->n_instances = (unsigned) json_array_size(l);
        return 0;
}

static int history_from_json(json_t *l, NapJob *j, NapError *e) {
        json_t *x;
        size_t i;
        if (!json_is_array(l) || json_array_size(l) > 1024)
                return damaged(e, "history");
        j->history = calloc(json_array_size(l) ?: 1, sizeof *j->history);
        if (!j->history)
                return oom(e);
        json_array_foreach(l, i, x) {
                const char *s;
                json_int_t at;
                if (json_unpack(x, "{s:s, s:I}", "status", &s, "at", &at) < 0 || nap_job_status_from_string(s) < 0)
                        return damaged(e, "history");
                j->history[i] = (NapJobEvent) { .status = nap_job_status_from_string(s), .at_usec = (uint64_t) at };
        }
        j->n_history = json_array_size(l);
        return 0;
}

static int delivery_from_json(json_t *d, NapJob *j, NapError *e) {
        const char *state, *id, *error = NULL;
        int attempts;
        json_int_t next;
        if (json_unpack(d, "{s:s, s:s, s:i, s:I, s?s}", "state", &state, "id", &id, "attempts", &attempts, "next",
                        &next, "error", &error) < 0 ||
            nap_delivery_state_from_string(state) < 0 || strlen(id) >= sizeof j->delivery_id || attempts < 0)
                return damaged(e, "delivery");
        j->delivery = nap_delivery_state_from_string(state);
        snprintf(j->delivery_id, sizeof j->delivery_id, "%s", id);
        j->attempts = (unsigned) attempts;
        j->next_attempt_usec = (uint64_t) next;
        if (error && !(j->delivery_error = strdup(error)))
                return oom(e);
        return 0;
}

static int job_from_object(json_t *o, NapJob *j, NapError *e) {
        const char *type, *rid, *owner, *data, *callback, *status;
        json_int_t priority, created, updated, deleted;
        json_t *instances, *history, *delivery;
        if (json_unpack(o, "{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:o, s:o, s:o}", "type", &type,
                        "request_id", &rid, "owner", &owner, "data", &data, "callback", &callback, "priority",
                        &priority, "status", &status, "created", &created, "updated", &updated, "deleted", &deleted,
                        "instances", &instances, "history", &history, "delivery", &delivery) < 0)
                return damaged(e, "a field is missing or mistyped");
        if (nap_queue_type_check(type, NULL) < 0 || nap_job_request_id_check(rid, NULL) < 0 || !nap_user_is_valid(owner) ||
            nap_job_status_from_string(status) < 0)
                return damaged(e, "type, request_id, owner or status");
        snprintf(j->type, sizeof j->type, "%s", type);
        snprintf(j->request_id, sizeof j->request_id, "%s", rid);
        snprintf(j->owner, sizeof j->owner, "%s", owner);
        j->priority = priority;
        j->status = nap_job_status_from_string(status);
        j->created_usec = (uint64_t) created;
        j->updated_usec = (uint64_t) updated;
        j->deleted_usec = (uint64_t) deleted;
        if (!(j->data = strdup(data)) || !(j->callback = strdup(callback)))
                return oom(e);
        int r = instances_from_json(instances, j, e);
        if (r >= 0)
                r = history_from_json(history, j, e);
        return r < 0 ? r : delivery_from_json(delivery, j, e);
}

int nap_job_from_json(const char *text, size_t size, NapJob *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapJob j = {};
        if (nap_json_parse(text, size, &o) < 0 || !json_is_object(o))
                return damaged(e, "not a JSON object");
        int r = job_from_object(o, &j, e);
        if (r < 0)
                return nap_job_done(&j), r;
        *ret = j;
        return 0;
}

int nap_job_compare(const NapJob *a, const NapJob *b) {
        if (a->priority != b->priority)
                return a->priority < b->priority ? -1 : 1;
        return a->id < b->id ? -1 : a->id > b->id;
}

int nap_queue_priority_between(int64_t before, int64_t after, int64_t *ret) {
        if (before > after) {
                int64_t t = before;
                before = after;
                after = t;
        }
        /* no overflow: half of each */
        int64_t mean = before / 2 + after / 2 + (before % 2 + after % 2) / 2;
        if (mean <= before || mean >= after)
                return -ERANGE;
        *ret = mean;
        return 0;
}

int nap_job_set_status(NapJob *j, NapJobStatus s, uint64_t now_usec) {
        NapJobEvent *h = reallocarray(j->history, j->n_history + 1, sizeof *h);
        if (!h)
                return -ENOMEM;
        j->history = h;
        h[j->n_history++] = (NapJobEvent) { .status = s, .at_usec = now_usec };
        j->status = s;
        j->updated_usec = now_usec;
        if (s == NAP_JOB_DONE || s == NAP_JOB_CANCELLED)
                j->deleted_usec = now_usec;
        return 0;
}

/* ---- keys ------------------------------------------------------------- */

static char *key(const char *fmt, ...) _printf_(1, 2);
static char *key(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

char *nap_key_queue(const char *prefix) {
        return key("%s/queue/", prefix);
}

char *nap_key_jobs(const char *prefix, const char *type) {
        return key("%s/queue/jobs/%s/", prefix, type);
}

char *nap_key_job(const char *prefix, const char *type, const char *request_id) {
        return key("%s/queue/jobs/%s/%s", prefix, type, request_id);
}

char *nap_key_deliveries(const char *prefix) {
        return key("%s/queue/deliveries/", prefix);
}

char *nap_key_delivery(const char *prefix, const char *type, const char *request_id) {
        return key("%s/queue/deliveries/%s/%s", prefix, type, request_id);
}

static char *key_hashed(const char *prefix, const char *dir, const char *s) {
        uint8_t d[SHA256_DIGEST_SIZE];
        char h[2 * SHA256_DIGEST_SIZE + 1];
        sha256(s, strlen(s), d);
        hex_encode(d, sizeof d, h);
        return key("%s/queue/%s/%s", prefix, dir, h);
}

/* ---- the queue in etcd ------------------------------------------------ */

static int random_hex(size_t bytes, char **ret, NapError *e) {
        uint8_t b[64];
        assert(bytes <= sizeof b);
        if (getrandom(b, bytes, 0) != (ssize_t) bytes)
                return nap_error_errno(e, -errno, "Reading random bytes");
        *ret = malloc(2 * bytes + 1);
        if (!*ret)
                return oom(e);
        hex_encode(b, bytes, *ret);
        return 0;
}

int nap_queue_secret(EtcdClient *c, const char *prefix, const char *owner, char **ret, NapError *e) {
        _cleanup_free_ char *k = key("%s/queue/secrets/%s", prefix, owner), *fresh = NULL;
        EtcdKeyValue old = {};
        if (!k)
                return oom(e);
        /* read first: made once per owner, read on every callback */
        int r = etcd_get(c, k, &old, e);
        if (r == 0 && (r = random_hex(32, &fresh, e)) >= 0)
                r = etcd_create(c, k, fresh, strlen(fresh), 0, &old, e);
        if (r < 0)
                return r;
        if (fresh && r > 0) {
                *ret = TAKE_PTR(fresh);
                return 0;
        }
        *ret = TAKE_PTR(old.value); /* one made before */
        etcd_key_value_done(&old);
        return 0;
}

int nap_queue_token_create(EtcdClient *c, const char *prefix, const char *owner, char **ret, NapError *e) {
        _cleanup_free_ char *token = NULL, *k = NULL;
        if (!nap_user_is_valid(owner))
                return invalid(e, "owner_id", "owner_id must be a user name, [a-z][a-z0-9-]{0,31}");
        int r = random_hex(32, &token, e);
        if (r < 0)
                return r;
        if (!(k = key_hashed(prefix, "tokens", token)))
                return oom(e);
        r = etcd_put(c, k, owner, strlen(owner), 0, NULL, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(token);
        return 0;
}

int nap_queue_token_owner(EtcdClient *c, const char *prefix, const char *token, char ret[static NAP_USER_MAX + 1],
                          NapError *e) {
        _cleanup_free_ char *k = key_hashed(prefix, "tokens", token);
        EtcdKeyValue kv = {};
        if (!k)
                return oom(e);
        int r = etcd_get(c, k, &kv, e);
        if (r < 0)
                return r;
        if (r == 0 || !nap_user_is_valid(kv.value)) {
                etcd_key_value_done(&kv);
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES, "Unknown bearer token");
        }
        snprintf(ret, NAP_USER_MAX + 1, "%s", kv.value);
        etcd_key_value_done(&kv);
        return 0;
}

static int64_t new_priority(void) {
        return (int64_t) (realtime_usec() * 1000) - NAP_QUEUE_PRIORITY_EPOCH_NSEC;
}

static int job_exists(NapError *e, const NapJob *j, const EtcdKeyValue *job, const EtcdKeyValue *cb) {
        if (job->create_revision > 0)
                return nap_error_set(e, NAP_ERROR_JOB_EXISTS, -EEXIST, "The %s queue holds request_id %s already",
                                     j->type, j->request_id);
        return nap_error_set(e, NAP_ERROR_JOB_EXISTS, -EEXIST, "Another job (%s) holds this callback already",
                             cb->value);
}

/* Which of the two keys a refused create found taken. */
static int create_refused(EtcdClient *c, const NapJob *j, char *k_job, char *k_cb, NapError *e) {
        char *keys[] = { k_job, k_cb, NULL };
        EtcdKeyValue kv[2] = {};
        int r = etcd_get_many(c, keys, kv, NULL, e);
        if (r >= 0)
                r = job_exists(e, j, kv + 0, kv + 1);
        etcd_key_value_done(kv + 0);
        etcd_key_value_done(kv + 1);
        return r;
}

int nap_queue_create(EtcdClient *c, const char *prefix, NapJob *j, NapError *e) {
        _cleanup_free_ char *k_job = nap_key_job(prefix, j->type, j->request_id),
                            *k_cb = key_hashed(prefix, "callbacks", j->callback), *value = NULL, *holder = NULL,
                            *secret = NULL;
        int64_t revision = 0;
        int r = nap_queue_type_check(j->type, e);
        if (r < 0)
                return r;
        if (!k_job || !k_cb || !(holder = key("%s/%s", j->type, j->request_id)))
                return oom(e);
        /* the secret first: a job never waits for a callback it cannot sign */
        r = nap_queue_secret(c, prefix, j->owner, &secret, e);
        if (r < 0)
                return r;
        j->priority = new_priority();
        j->created_usec = realtime_usec();
        if (nap_job_set_status(j, NAP_JOB_QUEUED, j->created_usec) < 0 || nap_job_to_json(j, &value) < 0)
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                { .key = k_job, .target = ETCD_COMPARE_CREATE_REVISION },
                { .key = k_cb, .target = ETCD_COMPARE_CREATE_REVISION },
        };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_PUT, .key = k_job, .value = value, .value_size = strlen(value) },
                { .type = ETCD_TXN_PUT, .key = k_cb, .value = holder, .value_size = strlen(holder) },
        };
        r = etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), &revision, e);
        if (r < 0)
                return r;
        if (r == 0)
                return create_refused(c, j, k_job, k_cb, e);
        j->id = j->revision = revision;
        return 0;
}

static int job_from_kv(const EtcdKeyValue *kv, NapJob *ret, NapError *e) {
        int r = nap_job_from_json(kv->value, kv->value_size, ret, e);
        if (r < 0)
                return r;
        ret->id = kv->create_revision;
        ret->revision = kv->mod_revision;
        return 0;
}

static int compare_job_ptrs(const void *a, const void *b) {
        return nap_job_compare(*(NapJob *const *) a, *(NapJob *const *) b);
}

static bool job_passes(const NapJob *j, const NapJobFilter *f) {
        return (!f->owner || streq(j->owner, f->owner)) && (f->status < 0 || j->status == f->status);
}

/* The page f asks for of the n jobs at ptrs (those passing f), in queue
 * order, copied into *ret. */
static int page_of(NapJob **ptrs, size_t n, const NapJobFilter *f, NapJob **ret, size_t *ret_n, size_t *ret_total,
                   NapError *e) {
        qsort(ptrs, n, sizeof *ptrs, compare_job_ptrs);
        size_t from = MIN(f->offset, n), count = f->limit > 0 ? MIN(f->limit, n - from) : n - from;
        NapJob *l = calloc(count ?: 1, sizeof *l);
        if (!l)
                return oom(e);
        for (size_t i = 0; i < count; i++)
                if (nap_job_copy(ptrs[from + i], l + i) < 0)
                        return nap_job_array_free(l, i), oom(e);
        *ret = l;
        *ret_n = count;
        if (ret_total)
                *ret_total = n;
        return 0;
}

int nap_queue_list(EtcdClient *c, const char *prefix, const char *type, const NapJobFilter *f, NapJob **ret,
                   size_t *ret_n, size_t *ret_total, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = nap_key_jobs(prefix, type);
        _cleanup_free_ NapJob **ptrs = NULL;
        NapJob *l = NULL;
        size_t n = 0, k = 0;
        int r = nap_queue_type_check(type, e);
        if (r < 0)
                return r;
        if (!dir)
                return oom(e);
        r = etcd_range_prefix(c, dir, 0, false, &range, e);
        if (r >= 0 && (!(l = calloc(range.n_kvs ?: 1, sizeof *l)) || !(ptrs = calloc(range.n_kvs ?: 1, sizeof *ptrs))))
                r = oom(e);
        /* a damaged job is left out, as a damaged node is */
        for (size_t i = 0; r >= 0 && i < range.n_kvs; i++)
                if (job_from_kv(range.kvs + i, l + n, NULL) >= 0) {
                        if (job_passes(l + n, f))
                                ptrs[k++] = l + n;
                        n++;
                }
        if (r >= 0)
                r = page_of(ptrs, k, f, ret, ret_n, ret_total, e);
        nap_job_array_free(l, n);
        return r;
}

/* ---- an index of the jobs in memory, kept by a watch ------------------- */

struct NapJobIndex {
        char *dir;      /* PREFIX/queue/jobs/ */
        json_t *where;  /* key → position in jobs */
        NapJob *jobs;
        char **keys;
        size_t n, allocated;
};

NapJobIndex *nap_job_index_free(NapJobIndex *x) {
        if (!x)
                return NULL;
        for (size_t i = 0; i < x->n; i++) {
                nap_job_done(x->jobs + i);
                free(x->keys[i]);
        }
        free(x->jobs);
        free(x->keys);
        json_decref(x->where);
        free(x->dir);
        free(x);
        return NULL;
}

int nap_job_index_new(const char *prefix, NapJobIndex **ret) {
        NapJobIndex *x = calloc(1, sizeof *x);
        if (!x || !(x->where = json_object()) || asprintf(&x->dir, "%s/queue/jobs/", prefix) < 0)
                return nap_job_index_free(x), -ENOMEM;
        *ret = x;
        return 0;
}

static void index_remove(NapJobIndex *x, const char *k) {
        json_t *at = json_object_get(x->where, k);
        if (!at)
                return;
        size_t i = (size_t) json_integer_value(at), last = x->n - 1;
        (void) json_object_del(x->where, k); /* k may be keys[i]: before it goes */
        nap_job_done(x->jobs + i);
        free(x->keys[i]);
        if (i != last) {
                x->jobs[i] = x->jobs[last];
                x->keys[i] = x->keys[last];
                (void) json_object_set_new(x->where, x->keys[i], json_integer((json_int_t) i));
        }
        x->n--;
}

static int index_put(NapJobIndex *x, const EtcdKeyValue *kv) {
        NapJob j = {};
        if (job_from_kv(kv, &j, NULL) < 0) {
                index_remove(x, kv->key); /* damaged: left out */
                return 0;
        }
        json_t *at = json_object_get(x->where, kv->key);
        if (at) {
                size_t i = (size_t) json_integer_value(at);
                nap_job_done(x->jobs + i);
                x->jobs[i] = j;
                return 0;
        }
        if (x->n == x->allocated) {
                size_t a = MAX(x->allocated * 2, (size_t) 64);
                NapJob *jobs = reallocarray(x->jobs, a, sizeof *jobs);
                if (jobs)
                        x->jobs = jobs;
                char **keys = jobs ? reallocarray(x->keys, a, sizeof *keys) : NULL;
                if (!keys)
                        return nap_job_done(&j), -ENOMEM;
                x->keys = keys;
                x->allocated = a;
        }
        if (!(x->keys[x->n] = strdup(kv->key)) ||
            json_object_set_new(x->where, kv->key, json_integer((json_int_t) x->n)) < 0)
                return free(x->keys[x->n]), nap_job_done(&j), -ENOMEM;
        x->jobs[x->n++] = j;
        return 0;
}

int nap_job_index_load(NapJobIndex *x, EtcdClient *c, int64_t *ret_revision, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        int r = etcd_range_prefix(c, x->dir, 0, false, &range, e);
        if (r < 0)
                return r;
        while (x->n > 0)
                index_remove(x, x->keys[x->n - 1]);
        for (size_t i = 0; i < range.n_kvs; i++)
                if (index_put(x, range.kvs + i) < 0)
                        return oom(e);
        *ret_revision = range.revision;
        return 0;
}

int nap_job_index_apply(NapJobIndex *x, const EtcdEvent *ev) {
        if (!startswith(ev->kv.key, x->dir))
                return 0;
        if (ev->type == ETCD_EVENT_DELETE) {
                index_remove(x, ev->kv.key);
                return 0;
        }
        return index_put(x, &ev->kv);
}

int nap_job_index_list(const NapJobIndex *x, const char *type, const NapJobFilter *f, NapJob **ret, size_t *ret_n,
                       size_t *ret_total, NapError *e) {
        _cleanup_free_ NapJob **ptrs = calloc(x->n ?: 1, sizeof *ptrs);
        size_t k = 0;
        int r = nap_queue_type_check(type, e);
        if (r < 0)
                return r;
        if (!ptrs)
                return oom(e);
        for (size_t i = 0; i < x->n; i++)
                if (streq(x->jobs[i].type, type) && job_passes(x->jobs + i, f))
                        ptrs[k++] = x->jobs + i;
        return page_of(ptrs, k, f, ret, ret_n, ret_total, e);
}

static int no_such_job(NapError *e, const char *type, const char *request_id) {
        return nap_error_set(e, NAP_ERROR_NO_SUCH_JOB, -ENOENT, "The %s queue has no job %s", type, request_id);
}

int nap_queue_get(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                  NapJob *ret, NapError *e) {
        _cleanup_free_ char *k = NULL;
        EtcdKeyValue kv = {};
        int r = nap_queue_type_check(type, e);
        if (r >= 0)
                r = nap_job_request_id_check(request_id, e);
        if (r < 0)
                return r;
        if (!(k = nap_key_job(prefix, type, request_id)))
                return oom(e);
        r = etcd_get(c, k, &kv, e);
        if (r == 0)
                return no_such_job(e, type, request_id);
        if (r > 0)
                r = job_from_kv(&kv, ret, e);
        etcd_key_value_done(&kv);
        if (r >= 0 && owner && !streq(ret->owner, owner)) {
                nap_job_done(ret);
                return no_such_job(e, type, request_id);
        }
        return r < 0 ? r : 0;
}

int nap_job_copy(const NapJob *j, NapJob *ret) {
        NapJob x = *j;
        x.data = x.callback = x.delivery_error = NULL;
        x.history = NULL;
        if ((j->data && !(x.data = strdup(j->data))) || (j->callback && !(x.callback = strdup(j->callback))) ||
            (j->delivery_error && !(x.delivery_error = strdup(j->delivery_error))) ||
            !(x.history = calloc(j->n_history ?: 1, sizeof *x.history)))
                return nap_job_done(&x), -ENOMEM;
        memcpy(x.history, j->history, j->n_history * sizeof *x.history);
        *ret = x;
        return 0;
}

/* One round of an update: 1 written (or nothing to write), 0 the job
 * changed meanwhile. j: the job as read; taken. */
static int update_once(EtcdClient *c, const char *k, NapJob *j, nap_job_change_fn f, void *userdata, NapJob *ret,
                       NapError *e) {
        _cleanup_free_ char *value = NULL;
        EtcdTxnOp ops[1 + NAP_JOB_EXTRA_OPS_MAX] = {};
        size_t n_extra = 0;
        int64_t revision = 0;
        int r = f(j, ops + 1, &n_extra, userdata, e);
        if (r == 0 && nap_job_to_json(j, &value) < 0)
                r = oom(e);
        if (r == 0) {
                const EtcdTxnCompare cmp = { .key = k, .target = ETCD_COMPARE_MOD_REVISION, .revision = j->revision };
                ops[0] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = k, .value = value, .value_size = strlen(value) };
                r = etcd_txn(c, &cmp, 1, ops, 1 + n_extra, &revision, e);
                if (r == 0)
                        return nap_job_done(j), 0;
                j->revision = revision;
        }
        if (r >= 0 && ret)
                *ret = *j;
        else
                nap_job_done(j);
        return r < 0 ? r : 1;
}

static int update(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                  const NapJob *known, nap_job_change_fn f, void *userdata, NapJob *ret, NapError *e) {
        _cleanup_free_ char *k = nap_key_job(prefix, type, request_id);
        if (!k)
                return oom(e);
        for (unsigned n = 0; n < NAP_INVENTORY_RETRIES; n++) {
                NapJob j = {};
                /* the caller's copy first: one read less when it is current */
                int r = n == 0 && known ? (nap_job_copy(known, &j) < 0 ? oom(e) : 0)
                                        : nap_queue_get(c, prefix, type, request_id, owner, &j, e);
                if (r >= 0)
                        r = update_once(c, k, &j, f, userdata, ret, e);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY, "The job %s changed %d times while updating it; try again",
                             request_id, NAP_INVENTORY_RETRIES);
}

int nap_queue_update(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                     nap_job_change_fn f, void *userdata, NapJob *ret, NapError *e) {
        return update(c, prefix, type, request_id, owner, NULL, f, userdata, ret, e);
}

int nap_queue_update_job(EtcdClient *c, const char *prefix, const NapJob *known, nap_job_change_fn f, void *userdata,
                         NapJob *ret, NapError *e) {
        return update(c, prefix, known->type, known->request_id, NULL, known, f, userdata, ret, e);
}

static int change_priority(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e) {
        if (j->status != NAP_JOB_QUEUED)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBUSY,
                                     "Job %s is %s: only a queued job can be moved", j->request_id,
                                     nap_job_status_to_string(j->status));
        j->priority = *(const int64_t *) userdata;
        j->updated_usec = realtime_usec();
        return 0;
}

int nap_queue_move(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                   int64_t priority, NapJob *ret, NapError *e) {
        return nap_queue_update(c, prefix, type, request_id, owner, change_priority, &priority, ret, e);
}

/* Frees a job's reservations; those already gone are fine (a release
 * retried after a crash). */
static int release_all(EtcdClient *c, const char *prefix, const NapJob *j, NapError *e) {
        for (unsigned i = 0; i < j->n_instances; i++) {
                char name[NAP_RESERVATION_NAME_MAX + 1];
                if (!j->instances[i].node[0])
                        continue;
                nap_job_reservation_name(j, i, name);
                for (NapReservationKind k = 0; k < _NAP_RESERVATION_KIND_MAX; k++) {
                        if (k == NAP_RESERVATION_STORAGE && j->instances[i].disk_gib == 0)
                                continue;
                        NapError e2 = NAP_ERROR_NULL;
                        int r = nap_release(c, prefix, k, j->instances[i].node, name, &e2);
                        if (r < 0 && e2.kind != NAP_ERROR_NO_SUCH_RESERVATION) {
                                if (e)
                                        *e = e2;
                                return r;
                        }
                }
        }
        return 0;
}

typedef struct Ending {
        EtcdClient *etcd;
        const char *prefix;
        NapJobStatus to;
        char *delivery_key;
} Ending;

static int change_end(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e) {
        Ending *x = userdata;
        if (j->status == NAP_JOB_DONE || j->status == NAP_JOB_CANCELLED)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EALREADY, "Job %s is %s already", j->request_id,
                                     nap_job_status_to_string(j->status));
        if (x->to == NAP_JOB_DONE && j->status != NAP_JOB_RUNNING)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBUSY,
                                     "Job %s is %s: only a running job is done (cancel a queued one)", j->request_id,
                                     nap_job_status_to_string(j->status));
        int r = j->status == NAP_JOB_RUNNING ? release_all(x->etcd, x->prefix, j, e) : 0;
        if (r < 0)
                return r;
        if (nap_job_set_status(j, x->to, realtime_usec()) < 0)
                return oom(e);
        if (j->delivery == NAP_DELIVERY_PENDING) {
                /* the client ended it: telling it of its admission is moot */
                j->delivery = NAP_DELIVERY_FAILED;
                free(j->delivery_error);
                j->delivery_error = strdup("the job ended before its callback was delivered");
                extra[(*n_extra)++] = (EtcdTxnOp) { .type = ETCD_TXN_DELETE, .key = x->delivery_key };
        }
        return 0;
}

static int queue_end(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                     NapJobStatus to, NapJob *ret, NapError *e) {
        _cleanup_free_ char *dk = nap_key_delivery(prefix, type, request_id);
        Ending x = { .etcd = c, .prefix = prefix, .to = to, .delivery_key = dk };
        return dk ? nap_queue_update(c, prefix, type, request_id, owner, change_end, &x, ret, e) : oom(e);
}

int nap_queue_cancel(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                     NapJob *ret, NapError *e) {
        return queue_end(c, prefix, type, request_id, owner, NAP_JOB_CANCELLED, ret, e);
}

int nap_queue_done(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                   NapJob *ret, NapError *e) {
        return queue_end(c, prefix, type, request_id, owner, NAP_JOB_DONE, ret, e);
}

/* ---- routes ----------------------------------------------------------- */

static int no_route(NapError *e, const char *path) {
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOENT, "No such resource: %.200s", path);
}

static int bad_method(NapError *e, const char *method, const char *path) {
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EOPNOTSUPP, "%.16s is not allowed on %.200s", method,
                             path);
}

/* The segments of path after /v1/: at most 3, "" for a trailing slash. */
static int split_path(const char *path, char seg[3][NAP_REQUEST_ID_MAX + 2], size_t *ret_n) {
        const char *p = startswith(path, "/v1/");
        size_t n = 0;
        if (!p)
                return -ENOENT;
        while (n < 3) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);
                if (len > NAP_REQUEST_ID_MAX + 1)
                        return -ENOENT;
                memcpy(seg[n], p, len);
                seg[n++][len] = 0;
                if (!slash)
                        break;
                p = slash + 1;
        }
        if (n == 3 && strchr(p, '/'))
                return -ENOENT;
        if (n > 1 && seg[n - 1][0] == 0)
                n--; /* a trailing slash */
        *ret_n = n;
        return 0;
}

static int route_special(const char *method, const char *path, const char *name, size_t n, NapQueueRoute *ret,
                         NapError *e) {
        if (n == 1 && streq(name, "_secret"))
                return streq(method, "GET") ? (ret->op = NAP_QUEUE_OP_SECRET, 0) : bad_method(e, method, path);
        if (n == 1 && streq(name, "_tokens"))
                return streq(method, "POST") ? (ret->op = NAP_QUEUE_OP_TOKEN, 0) : bad_method(e, method, path);
        return no_route(e, path);
}

static int route_job(const char *method, const char *path, const char *action, NapQueueRoute *ret, NapError *e) {
        struct {
                const char *method, *action;
                NapQueueOp op;
        } table[] = {
                { "GET", NULL, NAP_QUEUE_OP_GET },        { "POST", NULL, NAP_QUEUE_OP_MOVE },
                { "DELETE", NULL, NAP_QUEUE_OP_CANCEL },  { "POST", "done", NAP_QUEUE_OP_DONE },
                { "GET", "history", NAP_QUEUE_OP_HISTORY },
        };
        bool path_known = false;
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                if (!(table[i].action == action || streq_ptr(table[i].action, action)))
                        continue;
                path_known = true;
                if (streq(table[i].method, method)) {
                        ret->op = table[i].op;
                        return 0;
                }
        }
        return path_known ? bad_method(e, method, path) : no_route(e, path);
}

int nap_queue_route_parse(const char *method, const char *path, NapQueueRoute *ret, NapError *e) {
        char seg[3][NAP_REQUEST_ID_MAX + 2];
        size_t n = 0;
        NapQueueRoute r = {};
        if (split_path(path, seg, &n) < 0 || seg[0][0] == 0)
                return no_route(e, path);
        int k = seg[0][0] == '_' ? route_special(method, path, seg[0], n, &r, e) : nap_queue_type_check(seg[0], e);
        if (k < 0 || seg[0][0] == '_') {
                if (k >= 0)
                        *ret = r;
                return k;
        }
        snprintf(r.type, sizeof r.type, "%.*s", NAP_QUEUE_TYPE_MAX, seg[0]);
        if (n == 1) {
                if (!streq(method, "GET") && !streq(method, "POST"))
                        return bad_method(e, method, path);
                r.op = streq(method, "GET") ? NAP_QUEUE_OP_LIST : NAP_QUEUE_OP_CREATE;
                *ret = r;
                return 0;
        }
        if ((k = nap_job_request_id_check(seg[1], e)) < 0)
                return k;
        snprintf(r.request_id, sizeof r.request_id, "%.*s", (int) NAP_REQUEST_ID_MAX, seg[1]);
        if ((k = route_job(method, path, n == 3 ? seg[2] : NULL, &r, e)) < 0)
                return k;
        *ret = r;
        return 0;
}

int nap_queue_count_parse(const char *name, const char *s, size_t *ret, NapError *e) {
        char *end = NULL;
        if (!s || !isdigit((unsigned char) s[0]) || strlen(s) > 7)
                return invalid(e, name, "%s must be a number from 0 to 1000000", name);
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || *end || v > 1000000)
                return invalid(e, name, "%s must be a number from 0 to 1000000", name);
        *ret = v;
        return 0;
}

/* ---- nap's own jobs ---------------------------------------------------- */

bool nap_callback_is_internal(const char *callback) {
        return callback && startswith(callback, NAP_CALLBACK_INTERNAL_PREFIX);
}

int nap_job_internal_reservation(const NapJob *j, NapReservation *ret, NapError *e) {
        json_auto_t *data = j->data ? json_loads(j->data, 0, NULL) : NULL;
        json_t *nap = json_object_get(data, "nap");
        const char *node = json_string_value(json_object_get(nap, "node"));
        json_t *res = json_object_get(nap, "reservation");
        _cleanup_free_ char *text = json_is_object(res) ? json_dumps(res, JSON_COMPACT) : NULL;
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE };
        if (!nap_callback_is_internal(j->callback) || !node || nap_node_name_check(node, NULL) < 0 || !text ||
            nap_reservation_from_json(text, strlen(text), &r, e) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Job %s is not one of nap's own starts with a reservation", j->request_id);
        r.kind = NAP_RESERVATION_COMPUTE;
        snprintf(r.node, sizeof r.node, "%s", node);
        nap_job_reservation_name(j, 0, r.name);
        *ret = r;
        return 0;
}
