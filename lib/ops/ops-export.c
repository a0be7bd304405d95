/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* ExportUnits (napctl export-units): an app's instances as whole unit
 * files for fleet or any service manager (model/unit-files.h,
 * nap_unit_files_export()). Reads manifests only; the caller writes the
 * files where it wants them. */

#include "model/state.h"
#include "model/unit-files.h"
#include "ops/ops-internal.h"

void nap_exported_units_free(NapExportedUnit *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_unit_file_clear(&l[i].file);
        free(l);
}

static int export_manifest(NapContext *c, const NapManifest *m, const char *tree, NapExportedUnit *l, size_t *n,
                           NapError *e) {
        NapUnitFiles o = { .config = c->config, .scope = c->scope,
                           .discovery_binary = nap_unit_files_discovery_binary(NULL) };
        NapUnitFile files[NAP_UNIT_FILES_EXPORT_MAX];
        char name[NAP_UNIT_NAME_MAX];
        size_t k;

        nap_instance_name(&m->instance, name);
        int r = nap_unit_files_export(&o, m, tree, files, &k);
        if (r == -EOPNOTSUPP)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r,
                                     "%s is a container instance: its units are not exported (only native apps' are)",
                                     name);
        if (r == -EINVAL)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r,
                                     "The units of %s cannot be exported: a value cannot be written in a unit file",
                                     name);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to export the units of %s", name);
        for (size_t i = 0; i < k; i++) {
                l[*n] = (NapExportedUnit) { .file = files[i] };
                snprintf(l[*n].instance, sizeof l[*n].instance, "%s", name);
                (*n)++;
        }
        return 0;
}

int nap_export_units(NapContext *c, const char *service, NapExportedUnit **ret, size_t *ret_n, NapError *e) {
        NapManifest **manifests = NULL;
        _cleanup_free_ char *tree = NULL;
        size_t n_manifests = 0, n = 0;
        NapService s;

        assert(c);
        assert(ret);
        assert(ret_n);

        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &tree, e);
        if (r >= 0)
                r = nap_state_load_service_manifests(c->config, &s, &manifests, &n_manifests, e);
        if (r < 0)
                return r;
        NapExportedUnit *l = calloc(n_manifests * NAP_UNIT_FILES_EXPORT_MAX + 1, sizeof *l);
        if (!l)
                r = nap_error_errno(e, -ENOMEM, "Failed to export the units of %s", service);
        /* MPI jobs' ranks are not services to run anywhere: common ones only */
        for (size_t i = 0; r >= 0 && i < n_manifests; i++)
                if (manifests[i]->instance.kind == NAP_KIND_COMMON)
                        r = export_manifest(c, manifests[i], tree, l, &n, e);
        nap_state_manifests_free(manifests, n_manifests);
        if (r < 0) {
                nap_exported_units_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}
