/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap's own queued starts whose client left (start-common --queue
 * --no-block, start-mpi --queue --no-block): once admitted, this host's
 * nap-queued asks its nap-managerd to start them (StartCommon or StartMpi,
 * as data.nap.method says, with the job's request id, as the client
 * would: the call is idempotent by that id, and nap-managerd hands the
 * job's reservation over to the instance or MPI job). A start that fails is tried
 * again on the next pass; one that succeeded leaves the job done. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "../common/log.h"
#include "cluster/queue.h"
#include "ops/methods.h"
#include "protocol/varlink.h"
#include "start-queued.h"

/* The nap-managerd of this scope: the user's runtime directory when there
 * is one (a user manager's services), else /run. */
static char *managerd_address(void) {
        const char *runtime = secure_getenv("XDG_RUNTIME_DIR");
        char *a = NULL;
        if (asprintf(&a, "unix:%s/%s", runtime && *runtime ? runtime : "/run", NAP_MANAGER_SOCKET_NAME) < 0)
                return NULL;
        return a;
}

/* data.nap of a detached start for node, or NULL. */
static json_t *detached_start(const NapJob *j, const char *node, json_t **ret_data) {
        json_t *data = j->data ? json_loads(j->data, 0, NULL) : NULL;
        json_t *nap = json_object_get(data, "nap");
        if (!nap_callback_is_internal(j->callback) || !json_is_true(json_object_get(nap, "detached")) ||
            !streq_ptr(json_string_value(json_object_get(nap, "node")), node)) {
                json_decref(data);
                return NULL;
        }
        *ret_data = data;
        return nap;
}

/* "REQUEST" or "REQUEST:LIMIT" as StartCommon and StartMpi take them. */
static void amount_format(uint64_t request, uint64_t limit, const char *unit, char *buf, size_t size) {
        if (request == 0)
                buf[0] = 0;
        else if (limit > request)
                snprintf(buf, size, "%" PRIu64 "%s:%" PRIu64 "%s", request, unit, limit, unit);
        else
                snprintf(buf, size, "%" PRIu64 "%s", request, unit);
}

/* The method the start was queued by (data.nap.method, StartCommon when
 * absent), its arguments: what a rank asks (StartMpi: data.nap.rank) or
 * the instance (data.nap.reservation). */
static json_t *start_args(json_t *nap, const char **ret_method, NapError *e) {
        const char *method = json_string_value(json_object_get(nap, "method")) ?: "StartCommon";
        bool mpi = streq(method, "StartMpi");
        NapReservation r = { .kind = NAP_RESERVATION_COMPUTE };
        _cleanup_free_ char *text = json_dumps(json_object_get(nap, mpi ? "rank" : "reservation"), JSON_COMPACT);
        char cpu[48], memory[48];
        if (!mpi && !streq(method, "StartCommon"))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Unknown start method %.32s", method), NULL;
        if (!text || nap_reservation_from_json(text, strlen(text), &r, e) < 0)
                return NULL;
        amount_format(r.compute.request_cpu_milli, r.compute.limit_cpu_milli, "m", cpu, sizeof cpu);
        amount_format(r.compute.request_memory, r.compute.limit_memory, "", memory, sizeof memory);
        *ret_method = method;
        return json_pack("{s:O, s:O, s:s, s:s, s:O, s:b, s:b}", "service", json_object_get(nap, "service"), "params",
                         json_object_get(nap, "params") ?: json_null(), "cpu", cpu, "memory", memory, "requestId",
                         json_object_get(nap, "request"), "queue", 1, "noBlock", 1);
}

static int start_one(const char *address, json_t *nap, NapError *e) {
        _cleanup_(varlink_unrefp) Varlink *v = NULL;
        _cleanup_free_ char *full = NULL;
        const char *method = NULL, *error = NULL;
        json_t *reply = NULL, *args = start_args(nap, &method, e);
        if (!args)
                return -EINVAL;
        int k = asprintf(&full, "io.nap.Manager.%s", method) < 0 ? -ENOMEM : varlink_connect_address(&v, address);
        if (k >= 0)
                k = varlink_call(v, full, args, &reply, &error);
        json_decref(args);
        if (k >= 0 && error)
                k = nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "%s: %s", error,
                                  json_string_value(json_object_get(reply, "message")) ?: "");
        else if (k < 0)
                nap_error_errno(e, k, "Failed to call nap-managerd on %s", address);
        return k;
}

int queued_starts_run(EtcdClient *etcd, const NapConfig *config, unsigned *ret_started, NapError *e) {
        _cleanup_free_ char *node = NULL, *address = NULL;
        NapJobFilter f = { .status = NAP_JOB_RUNNING };
        NapJob *l = NULL;
        size_t n = 0;
        int r = 0;
        *ret_started = 0;
        if (nap_config_node(config, &node, NULL) < 0) /* no node of its own: nothing of nap's starts here */
                return 0;
        if (!(address = managerd_address()))
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        r = nap_queue_list(etcd, config->cluster_prefix, NAP_QUEUE_TYPE_START, &f, &l, &n, NULL, e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_t *data = NULL, *nap = detached_start(l + i, node, &data);
                if (!nap)
                        continue;
                NapError why = NAP_ERROR_NULL;
                int k = start_one(address, nap, &why);
                if (k < 0)
                        log_warning("Starting the queued %s (job %s) failed: %s",
                                    json_string_value(json_object_get(nap, "service")), l[i].request_id, why.message);
                else
                        ++*ret_started;
                if (k < 0 && r >= 0)
                        r = nap_error_set(e, why.kind, k, "%s", why.message);
                json_decref(data);
        }
        nap_job_array_free(l, n);
        return r;
}
