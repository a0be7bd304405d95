/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Intent records: what a multi-step operation on an app is about to do,
 * written (atomically, synced) under the app's lock before its first
 * change and removed when it is finished or undone. The lock is held for
 * the whole operation, so an intent found by whoever holds the lock next
 * belongs to a process that died half-way: lib/ops/ops-recover.c finishes
 * or undoes it before anything else happens to the app.
 *
 * One per app, ROOT/intents/USER_APP.intent (one directory, so that
 * looking for any costs one readdir however many users there are), a JSON
 * object:
 *   {"version":1, "operation":"start-common", "user":"alice", "app":"web",
 *    "time":USEC, "number":3, "request":"ID", "node":"NODE"}
 *   {"version":1, "operation":"remove-instance", ..., "number":3}
 *   {"version":1, "operation":"deploy", ...}
 *   {"version":1, "operation":"rollout", ..., "commit":"<40 hex>",
 *    "previous":{"commit":"<40 hex>", "url":"/srv/git/alice/web.git"},
 *    "instances":[1,2,3], "running":[1,3], "added":[4,5], "number":6, "node":"N"}
 *   {"version":1, "operation":"destroy-app", ...}
 *   {"version":1, "operation":"start-mpi", ..., "number":J, "node":"N"}
 *                                        (J: the job; N: where its reservation is held)
 * "request" (a client's request id, nap_request_id_is_valid()) and
 * "node" (where a compute reservation is held) are optional; a rollout's
 * "commit" is absent for a refresh, "previous" when nothing was deployed.
 * A rollout replaces instances: "instances" are the old ones in the order
 * they are replaced, "added" their replacements made so far (added[k]
 * replaces instances[k]; an app without instances: its first one), and
 * "number" (with "node" when a reservation is made) the replacement being
 * created when the record was written, which may have no manifest yet.
 * Parsing is strict, as for manifests: unknown keys are refused.
 *
 * Request records: ROOT/requests/USER/ID holds the instance a request
 * created ("alice_web_common@3\n"), so that a retried StartCommon with
 * the same id answers with that instance instead of making another. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "model/config.h"
#include "model/names.h"

#define NAP_INTENT_VERSION 1
#define NAP_INTENT_MAX_SIZE (256 * 1024)
#define NAP_INTENT_NUMBERS_MAX 20000U
#define NAP_REQUEST_ID_MAX 64U
#define NAP_URL_MAX 4096U

typedef enum NapIntentOperation {
        NAP_INTENT_START_COMMON,
        NAP_INTENT_REMOVE_INSTANCE,
        NAP_INTENT_DEPLOY,
        NAP_INTENT_ROLLOUT,
        NAP_INTENT_DESTROY_APP,
        NAP_INTENT_START_MPI,
        _NAP_INTENT_OPERATION_MAX,
        _NAP_INTENT_OPERATION_INVALID = -EINVAL,
} NapIntentOperation;

const char *nap_intent_operation_to_string(NapIntentOperation o) _pure_;
NapIntentOperation nap_intent_operation_from_string(const char *s) _pure_;

typedef struct NapIntent {
        NapIntentOperation operation;
        NapService service;
        uint64_t time_usec;
        unsigned number;                               /* start-common, remove-instance; start-mpi: the job */
        char request[NAP_REQUEST_ID_MAX + 1];          /* "": none */
        char node[64];                                 /* "": nothing reserved */
        char commit[NAP_COMMIT_HEX_LEN + 1];           /* rollout; "": a refresh */
        char previous_commit[NAP_COMMIT_HEX_LEN + 1];  /* rollout; "": nothing deployed before */
        char *previous_url;
        unsigned *instances, *running;                 /* rollout: numbers, before it began */
        size_t n_instances, n_running;
        unsigned *added;                               /* rollout: replacements made, in order */
        size_t n_added;
} NapIntent;

void nap_intent_done(NapIntent *i);

/* 1..64 bytes of [A-Za-z0-9._:-], not starting with '.'. */
bool nap_request_id_is_valid(const char *s) _pure_;
/* An id that is not valid: InvalidParameter naming "requestId". */
int nap_request_id_check(const char *s, NapError *e);

int nap_intent_parse(const char *text, size_t size, NapIntent *ret, NapError *e);
/* Deterministic JSON ending in "\n"; NULL on ENOMEM. */
char *nap_intent_format(const NapIntent *i);

char *nap_intent_path(const NapConfig *c, const NapService *s);
/* Written and synced, file and directory, before the first change. */
int nap_intent_save(const NapConfig *c, const NapIntent *i, NapError *e);
/* 0 and *ret filled; -ENOENT when the app has none; InvalidManifest when
 * it cannot be read as one. */
int nap_intent_load(const NapConfig *c, const NapService *s, NapIntent *ret, NapError *e);
void nap_intent_remove(const NapConfig *c, const NapService *s);
/* Calls f for every app with an intent on this host. */
typedef int (*nap_intent_service_fn)(const NapService *s, void *userdata);
int nap_intent_foreach_service(const NapConfig *c, nap_intent_service_fn f, void *userdata);

/* The instance request id created for user ("alice_web_common@3"):
 * 1 and *ret, 0 when there is no record. */
int nap_request_lookup(const NapConfig *c, const char *user, const char *id, char **ret);
int nap_request_record(const NapConfig *c, const char *user, const char *id, const char *instance, NapError *e);
/* Removes the request records of the app's instances (destroy-app); the
 * number removed. */
unsigned nap_request_forget_service(const NapConfig *c, const NapService *s);
/* Removes request records older than max_age_usec; the number removed. */
unsigned nap_request_expire(const NapConfig *c, uint64_t max_age_usec);
