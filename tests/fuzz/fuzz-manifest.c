/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Instance manifest parser (the generator's input): never crashes, leaks
 * or reads past size; a refusal is an InvalidManifest (or Internal on OOM)
 * with a message; an accepted manifest formats to text that parses back to
 * the same bytes, and renders to unit text or a clean -EINVAL. */

#include <stdint.h>

#include "model/manifest.h"
#include "model/unit.h"

static void render(const NapManifest *m, NapScope scope, const NapConfig *c) {
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return;
        int r = nap_unit_write_instance_dropin(f, m, scope, c);
        if (r >= 0)
                r = nap_unit_write_template(f, &m->instance.service, m->instance.kind, scope, c);
        fclose(f);
        if (r < 0 && r != -EINVAL && r != -ENOMEM)
                abort();
        if (r >= 0 && (!buf || !strstr(buf, "ExecStart=")))
                abort();
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL, *back = NULL;
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;

        if (nap_manifest_parse((const char *) data, size, &m, &e) < 0) {
                if (m || (e.kind != NAP_ERROR_INVALID_MANIFEST && e.kind != NAP_ERROR_INTERNAL) || !*e.message)
                        abort();
                return 0;
        }
        _cleanup_free_ char *text = nap_manifest_format(m), *again = NULL;
        if (!text)
                return 0; /* OOM */
        if (nap_manifest_parse(text, strlen(text), &back, &e) < 0)
                abort();
        again = nap_manifest_format(back);
        if (again && strcmp(text, again) != 0)
                abort();
        if (nap_config_new_default(&c) < 0)
                return 0;
        render(m, NAP_SCOPE_SYSTEM, c);
        render(m, NAP_SCOPE_USER, c);
        return 0;
}
