/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An instance manifest: the generator's whole input for one instance,
 * written by start_common into Instances= as "USER_APP_common@N.json".
 * JSON object, version 1:
 *   {"version":1, "user":"alice", "app":"web", "kind":"common", "number":1,
 *    "argv":["python3","server.py","--port","20001"],
 *    "directory":"/var/lib/nap/apps/alice/alice_web_1",
 *    "port":20001, "enabled":true,
 *    "params":{"greeting":"hi"}, "commit":"<40 hex>",
 *    "image":{"context":"/var/lib/nap/apps/alice/alice_web_1",
 *             "tag":"localhost/nap/alice_web:0123456789ab"}}
 *   Optional too: "resources":{"request_cpu_milli":500,"limit_cpu_milli":1000,
 *    "request_memory":67108864,"limit_memory":134217728} (lib/model/resources.h;
 *    the generator writes them as CPUWeight=, CPUQuota=, MemoryLow=,
 *    MemoryMax=) and "reservation":"NODE", the node of the cluster where
 *    the instance's compute reservation (named as the instance) is held.
 *   Optional too: "health_path":"/healthz", the profile's HealthPath=
 *    (nap_health_path_is_valid()): what HTTP health checks of the instance
 *    ask for (nap-discovery, start and push); absent: nap.conf's HealthPath=.
 *   Optional: "environment":{"KEY":"VALUE"}, the app's configuration
 *    (napctl config set) as the instance was made with it: keys pass
 *    nap_env_name_check(), values are checked as parameter values; the
 *    generator writes them as Environment= lines (lib/model/unit.c).
 * Parsing is strict: every key above is required except params, commit,
 * image, resources, reservation and environment, types are checked, names validated, argv with no control
 * characters, directory absolute without "..", port 1..65535, number
 * valid for the kind; unknown keys are refused (a manifest nap did not
 * write is not trusted). The file name must match the instance.
 *
 * "image" makes the instance a container (a Dockerfile app, nap.profile(5)):
 * the generator builds CONTEXT/Dockerfile into TAG and runs TAG with podman
 * (nap-generator(8), CONTAINERS). Then argv is the container's command
 * override, appended after the image, and may be empty: the image's own
 * ENTRYPOINT/CMD runs. Without "image", argv must not be empty. Only kind
 * "common" may have an image; both its keys are required, no others. */

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "model/names.h"
#include "model/profile.h"
#include "model/resources.h"

#define NAP_MANIFEST_VERSION 1
#define NAP_MANIFEST_MAX_SIZE (64 * 1024)
#define NAP_MANIFEST_SUFFIX ".json"

/* Both NULL: not a container instance. */
typedef struct NapManifestImage {
        char *context; /* normalized absolute path: the build context, with its Dockerfile */
        char *tag;     /* nap_image_name_is_valid(): what is built and run */
} NapManifestImage;

typedef struct NapManifest {
        NapInstance instance;
        char **argv;
        char *directory;
        unsigned port;
        bool enabled;
        /* made from a cluster assignment (nap-node): never started at boot,
         * enabled or not; nap-node starts it once the node is a member
         * again and it is still assigned here (fencing) */
        bool cluster;
        NapParams *params; /* may be NULL */
        char *commit;      /* may be NULL */
        NapManifestImage image;
        NapCompute resources;  /* all 0: none */
        char *reservation;     /* the node holding the reservation; NULL: none */
        char *health_path;     /* the profile's HealthPath=; NULL: nap.conf's */
        NapParams *environment; /* the app's configuration; NULL or empty: none */
} NapManifest;

NapManifest *nap_manifest_free(NapManifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapManifest *, nap_manifest_free);

int nap_manifest_parse(const char *text, size_t size, NapManifest **ret, NapError *e);
/* Deterministic JSON (fixed key order, sorted params), ending in "\n". */
char *nap_manifest_format(const NapManifest *m);

/* argv and params from p with params and m->port substituted, and the
 * profile's HealthPath=: what an instance takes from its profile. */
int nap_manifest_apply_profile(NapManifest *m, const NapProfile *p, const NapParams *params, NapError *e);

/* What HTTP health checks of the instance ask for: its profile's
 * HealthPath=, else def (nap.conf's HealthPath=). m may be NULL. */
static inline const char *nap_manifest_health_path(const NapManifest *m, const char *def) {
        return m && m->health_path ? m->health_path : def;
}

static inline bool nap_manifest_has_image(const NapManifest *m) {
        return m->image.tag;
}

/* An image reference podman accepts, as nap writes them: lowercase,
 * at most 128 bytes, NAME[:TAG] where NAME is components separated by '/',
 * each [a-z0-9]+ joined by '.', '_', "__" or runs of '-', and TAG is
 * [a-z0-9_][a-z0-9_.-]{0,127}. No registry port, no digest. */
bool nap_image_name_is_valid(const char *s) _pure_;
/* Where the images nap builds are: NAP_IMAGE_REPOSITORY "USER_APP". */
#define NAP_IMAGE_REPOSITORY "localhost/nap/"
/* The image of a Dockerfile instance: "localhost/nap/USER_APP:C" with C the
 * first 12 digits of commit, or "instance-N" without a commit (instances of
 * one commit share an image; others never do). -EINVAL when USER_APP
 * cannot name an image (a user or app name ending in '-'). */
int nap_manifest_image_tag(const NapInstance *i, const char *commit, char **ret);
/* Makes m a container instance: built from context (normalized absolute)
 * into nap_manifest_image_tag(m->instance, m->commit); argv emptied, so the
 * image's own command runs. For start_common and rollouts of a Dockerfile
 * app. InvalidManifest when that cannot be written. */
int nap_manifest_set_image(NapManifest *m, const char *context, NapError *e);

/* "DIR/USER_APP_common@N.json"; NULL on OOM. */
char *nap_manifest_path(const char *dir, const NapInstance *i);
/* Reads (bounded) and parses path; checks the file name matches. */
int nap_manifest_load(const char *path, NapManifest **ret, NapError *e);
/* Atomic write into dir (created if missing). */
int nap_manifest_save(const char *dir, const NapManifest *m, NapError *e);
