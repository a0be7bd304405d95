/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An instance manifest as unit files in a directory: the one place that
 * knows which files an instance has. Two writers use it:
 *   nap-generator  every manifest into its output dir at boot and at each
 *                  daemon-reload, new files only, enabled with .wants links
 *   nap-managerd   (lib/ops) one instance into the manager's runtime unit
 *                  dir, so that the manager loads a never-loaded unit name
 *                  from disk without a daemon-reload (docs/ARCHITECTURE.md,
 *                  "Starting without a reload"); each file replaced
 *                  atomically when missing or different, no .wants links
 *                  (what starts at boot is the generator's business)
 * An instance's files (unit.c has their text):
 *   USER_APP_KIND@.service                          its app's template
 *   USER_APP_discovery@.service                     the sidecar's (Etcd=)
 *   USER_APP_KIND@N.service.d/50-nap-instance.conf  the instance, or for a
 *   USER_APP_common@N.service + USER_APP_build@N.service   container one
 *   TARGET.wants/UNIT                               (generator only) */

#include <stdbool.h>

#include "model/config.h"
#include "model/manifest.h"
#include "model/names.h"
#include "model/unit.h"

#define NAP_UNIT_DROPIN_NAME "50-nap-instance.conf"

typedef struct NapUnitFiles {
        const char *dir;
        const NapConfig *config;
        NapScope scope;
        const char *discovery_binary; /* ExecStart= of the sidecars */
        bool runtime;                 /* the manager's runtime dir, not a generator's output */
        char last_template[NAP_UNIT_NAME_MAX]; /* generator: sorted manifests, one template's come together */
} NapUnitFiles;

/* Writes m's units into o->dir. Everything is rendered before anything is
 * written. -EINVAL when a value cannot be written in a unit file. */
int nap_unit_files_write(NapUnitFiles *o, const NapManifest *m);
/* Whether o->dir holds i's own files (its drop-in or its unit). */
bool nap_unit_files_has_instance(const NapUnitFiles *o, const NapInstance *i);
/* Removes i's own files from o->dir (what is gone already is fine) and,
 * with templates, its app's templates too (its last instance went). */
int nap_unit_files_remove(const NapUnitFiles *o, const NapInstance *i, bool templates);

/* An instance's self-contained units, for fleet (napctl export-units,
 * docs/ARCHITECTURE.md "Cluster apps"): USER_APP_common@N.service, its
 * template and its drop-in merged, running from tree (the app's deployed
 * tree, the same path on every host: ROOT/services/USER/USER_APP) with
 * [Install], and with Etcd= its sidecar USER_APP_discovery@N.service,
 * which reads no manifest and says [X-Fleet] MachineOf= the instance's
 * unit. o->dir is not used. -EOPNOTSUPP for a container instance or
 * another kind than common; -EINVAL as nap_unit_files_write(). */
#define NAP_UNIT_FILES_EXPORT_MAX 2
typedef struct NapUnitFile {
        char name[NAP_UNIT_NAME_MAX];
        char *text;
} NapUnitFile;
int nap_unit_files_export(const NapUnitFiles *o, const NapManifest *m, const char *tree,
                          NapUnitFile ret[static NAP_UNIT_FILES_EXPORT_MAX], size_t *ret_n);
void nap_unit_file_clear(NapUnitFile *f);

/* The manager's runtime unit dir: /run/systemd/system for the system
 * manager, $XDG_RUNTIME_DIR/systemd/user for a user manager (-ENXIO when
 * $XDG_RUNTIME_DIR is not set). A tmpfs: empty at every boot. */
int nap_unit_files_runtime_dir(NapScope scope, char **ret);
/* $NAP_DISCOVERY_BINARY (sidecars run from a build tree in tests) when it
 * is a valid program path, else NAP_DISCOVERY_BINARY_DEFAULT; *ret_ignored
 * (may be NULL) is the value that was set but not valid, for a warning. */
const char *nap_unit_files_discovery_binary(const char **ret_ignored);
