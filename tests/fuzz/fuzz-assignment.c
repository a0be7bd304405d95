/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The cluster apps' records as etcd hands them back
 * (lib/cluster/assignment.h): anything with access to etcd can write
 * there. The first byte picks the parser; a record that parses must write
 * out and parse again to the same text. */

#include <stdint.h>
#include <stdlib.h>

#include "cluster/assignment.h"

static void assignment_round_trip(const char *text, size_t size) {
        NapAssignment a = {}, again = {};
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        if (nap_assignment_from_json(text, size, &a, NULL) < 0)
                return;
        if (!a.params || nap_assignment_to_json(&a, &json) < 0 ||
            nap_assignment_from_json(json, strlen(json), &again, NULL) < 0 ||
            nap_assignment_to_json(&again, &json2) < 0 || !streq(json, json2))
                abort();
        nap_assignment_done(&a);
        nap_assignment_done(&again);
}

static void observed_round_trip(const char *text, size_t size) {
        NapObserved o = {}, again = {};
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        if (nap_observed_from_json(text, size, &o, NULL) < 0)
                return;
        if (nap_observed_to_json(&o, &json) < 0 || nap_observed_from_json(json, strlen(json), &again, NULL) < 0 ||
            nap_observed_to_json(&again, &json2) < 0 || !streq(json, json2))
                abort();
        nap_observed_done(&o);
        nap_observed_done(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] % 2 == 0)
                assignment_round_trip((const char *) data + 1, size - 1);
        else
                observed_round_trip((const char *) data + 1, size - 1);
        return 0;
}
