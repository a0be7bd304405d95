/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A cluster app's source record as etcd hands it back
 * (lib/cluster/assignment.h, PREFIX/apps/USER_APP): anything with access
 * to etcd can write there, and a host fetches from the URL it names. A
 * record that parses must write out and parse again to the same text,
 * with a URL free of control characters. */

#include <stdint.h>
#include <stdlib.h>

#include "cluster/assignment.h"

static bool url_clean(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapAppSource s = {}, again = {};
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        if (nap_app_source_from_json((const char *) data, size, &s, NULL) < 0)
                return 0;
        if (!s.url || !url_clean(s.url) || !nap_commit_is_valid(s.commit) || nap_app_source_to_json(&s, &json) < 0 ||
            nap_app_source_from_json(json, strlen(json), &again, NULL) < 0 ||
            nap_app_source_to_json(&again, &json2) < 0 || !streq(json, json2))
                abort();
        nap_app_source_done(&s);
        nap_app_source_done(&again);
        return 0;
}
