/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* An endpoint value read back from etcd: anyone who can write to etcd
 * controls it. Accepted values must format and parse back to the same. */

#include <stdint.h>
#include <stdlib.h>

#include "model/endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NapEndpoint ep = {}, back = {};
        if (nap_endpoint_parse((const char *) data, size, &ep, NULL) < 0)
                return 0;
        char *text = nap_endpoint_format(&ep);
        if (!text)
                abort();
        if (nap_endpoint_parse(text, strlen(text), &back, NULL) < 0 || !streq(back.host, ep.host) ||
            back.port != ep.port || !streq(back.instance, ep.instance) || !streq(back.unit, ep.unit))
                abort();
        free(text);
        nap_endpoint_clear(&ep);
        nap_endpoint_clear(&back);
        return 0;
}
