/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An instance manifest: the generator's whole input for one instance,
 * written by start_common into Instances= as "USER_APP_common@N.json".
 * JSON object, version 1:
 *   {"version":1, "user":"alice", "app":"web", "kind":"common", "number":1,
 *    "argv":["python3","server.py","--port","20001"],
 *    "directory":"/var/lib/nap/apps/alice/alice_web_1",
 *    "port":20001, "enabled":true,
 *    "params":{"greeting":"hi"}, "commit":"<40 hex>"}
 * Parsing is strict: every key above is required except params and commit,
 * types are checked, names validated, argv non-empty with no control
 * characters, directory absolute without "..", port 1..65535, number
 * valid for the kind; unknown keys are refused (a manifest nap did not
 * write is not trusted). The file name must match the instance. */

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "names.h"
#include "profile.h"

#define NAP_MANIFEST_VERSION 1
#define NAP_MANIFEST_MAX_SIZE (64 * 1024)
#define NAP_MANIFEST_SUFFIX ".json"

typedef struct NapManifest {
        NapInstance instance;
        char **argv;
        char *directory;
        unsigned port;
        bool enabled;
        NapParams *params; /* may be NULL */
        char *commit;      /* may be NULL */
} NapManifest;

NapManifest *nap_manifest_free(NapManifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapManifest *, nap_manifest_free);

int nap_manifest_parse(const char *text, size_t size, NapManifest **ret, NapError *e);
/* Deterministic JSON (fixed key order, sorted params), ending in "\n". */
char *nap_manifest_format(const NapManifest *m);

/* "DIR/USER_APP_common@N.json"; NULL on OOM. */
char *nap_manifest_path(const char *dir, const NapInstance *i);
/* Reads (bounded) and parses path; checks the file name matches. */
int nap_manifest_load(const char *path, NapManifest **ret, NapError *e);
/* Atomic write into dir (created if missing). */
int nap_manifest_save(const char *dir, const NapManifest *m, NapError *e);
