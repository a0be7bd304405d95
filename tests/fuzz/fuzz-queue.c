/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-queued's request parser (lib/cluster/queue.h): what any client
 * sends over HTTP, and the job records read back from etcd (anything with
 * access to etcd writes there). The first byte picks: 0 a create body, 1 a
 * reorder body, 2 "METHOD PATH" for the router, 3 a stored job record.
 * An accepted body or record must write out and read back to the same job;
 * a refusal has a message and keeps nothing. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "cluster/queue.h"

static void same_job(const NapJob *a, const NapJob *b) {
        if (!streq(a->data, b->data) || !streq(a->callback, b->callback) || !streq(a->request_id, b->request_id) ||
            !streq(a->owner, b->owner) || a->n_instances != b->n_instances || a->priority != b->priority ||
            a->status != b->status || a->n_history != b->n_history || a->delivery != b->delivery ||
            memcmp(a->instances, b->instances, sizeof a->instances) != 0)
                abort();
}

static void round_trip(NapJob *j) {
        _cleanup_free_ char *json = NULL;
        NapJob again = {};
        if (nap_job_to_json(j, &json) < 0 || nap_job_from_json(json, strlen(json), &again, NULL) < 0)
                abort();
        same_job(j, &again);
        json_decref(nap_job_to_wire(&again));
        json_decref(nap_job_history_to_wire(&again));
        /* a stored job's data as nap's own start (admission reads it so) */
        NapReservation r;
        if (nap_job_internal_reservation(&again, &r, NULL) >= 0 && (!r.node[0] || !nap_callback_is_internal(again.callback)))
                abort();
        nap_job_done(&again);
}

static void create_body(const char *p, size_t n) {
        NapJob j = {};
        NapError e = NAP_ERROR_NULL;
        if (nap_job_request_parse(p, n, &j, &e) < 0) {
                if (!e.message[0] || j.data || j.callback)
                        abort();
                return;
        }
        memcpy(j.type, "vm", 3);
        if (nap_job_set_status(&j, NAP_JOB_QUEUED, 1) < 0)
                abort();
        round_trip(&j);
        nap_job_done(&j);
}

static void route(const char *p, size_t n) {
        _cleanup_free_ char *s = strndup(p, n);
        NapQueueRoute r = {};
        NapError e = NAP_ERROR_NULL;
        char *space = s ? strchr(s, ' ') : NULL;
        if (!space)
                return;
        *space = 0;
        if (nap_queue_route_parse(s, space + 1, &r, &e) < 0) {
                if (!e.message[0])
                        abort();
                return;
        }
        if ((r.type[0] && nap_queue_type_check(r.type, NULL) < 0) ||
            (r.request_id[0] && nap_job_request_id_check(r.request_id, NULL) < 0) || strchr(r.request_id, '/'))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *) data + 1;
        int64_t priority;
        NapJob j = {};
        if (size < 1)
                return 0;
        switch (data[0] % 4) {
        case 0:
                create_body(p, size - 1);
                break;
        case 1:
                (void) nap_priority_request_parse(p, size - 1, &priority, NULL);
                break;
        case 2:
                route(p, size - 1);
                break;
        default:
                if (nap_job_from_json(p, size - 1, &j, NULL) >= 0)
                        round_trip(&j);
                nap_job_done(&j);
                break;
        }
        return 0;
}
