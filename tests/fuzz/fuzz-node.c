/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The cluster's records as etcd hands them back (lib/model/node.h):
 * anything with access to etcd can write there. The first byte picks the
 * parser; a record that parses must write out and parse again to the same
 * thing. */

#include <stdint.h>

#include "base/strv.h"
#include "model/node.h"

static void node_round_trip(const char *text, size_t size) {
        NapNode n = {}, again = {};
        _cleanup_free_ char *json = NULL;
        if (nap_node_from_json(text, size, &n, NULL) < 0)
                return;
        if (nap_node_to_json(&n, &json) < 0 || nap_node_from_json(json, strlen(json), &again, NULL) < 0 ||
            !streq(n.name, again.name) || !streq(n.address, again.address) ||
            memcmp(&n.capacity, &again.capacity, sizeof n.capacity) != 0 || !strv_equal(n.labels, again.labels))
                abort();
        nap_node_done(&n);
        nap_node_done(&again);
}

static void reservation_round_trip(const char *text, size_t size, NapReservationKind kind) {
        NapReservation r = { .kind = kind }, again = { .kind = kind };
        _cleanup_free_ char *json = NULL;
        if (nap_reservation_from_json(text, size, &r, NULL) < 0)
                return;
        if (nap_reservation_to_json(&r, &json) < 0 || nap_reservation_from_json(json, strlen(json), &again, NULL) < 0 ||
            !nap_reservation_same(&r, &again))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapUsage u;
        NapNodeStatus s = {};
        char **labels = NULL;
        _cleanup_free_ char *text = NULL;
        if (size < 1 || !(text = strndup((const char *) data + 1, size - 1)))
                return 0;
        switch (data[0] % 6) {
        case 0:
                node_round_trip((const char *) data + 1, size - 1);
                break;
        case 1:
                (void) nap_usage_from_json((const char *) data + 1, size - 1, &u, NULL);
                break;
        case 2:
                reservation_round_trip((const char *) data + 1, size - 1, NAP_RESERVATION_COMPUTE);
                break;
        case 3:
                reservation_round_trip((const char *) data + 1, size - 1, NAP_RESERVATION_STORAGE);
                break;
        case 4:
                (void) nap_node_status_from_json((const char *) data + 1, size - 1, &s, NULL);
                nap_node_status_done(&s);
                break;
        default:
                if (nap_labels_parse(text, &labels, NULL) >= 0 && !nap_labels_match(labels, labels))
                        abort();
                strv_free(labels);
                break;
        }
        return 0;
}
