/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Every operation of nap, written once (DESIGN.md). napctl, the varlink
 * and D-Bus helpers and the REST API are adapters over these functions.
 * Each validates its arguments first (nothing changes on bad input),
 * returns 0 or a negative errno, and fills e with a named error. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "config.h"
#include "error.h"
#include "journal.h"
#include "names.h"
#include "profile.h"

typedef struct NapContext {
        NapConfig *config;
        NapScope scope;
        sd_bus *bus; /* opened on first use */
} NapContext;

/* Loads the configuration; scope < 0 takes Scope= from it. */
int nap_context_new(NapContext **ret, int scope, nap_warn_fn warn, void *userdata, NapError *e);
/* Takes ownership of config. */
int nap_context_new_with_config(NapContext **ret, NapConfig *config, int scope);
NapContext *nap_context_free(NapContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapContext *, nap_context_free);

typedef struct NapDeployResult {
        char commit[41];
        bool changed; /* false: this commit from this URL was deployed already */
} NapDeployResult;

typedef struct NapServiceInfo {
        char *name;   /* USER_APP */
        char *app;
        char *url;    /* may be NULL */
        char *commit; /* may be NULL */
        uint64_t deployed_usec;
} NapServiceInfo;

typedef struct NapInstanceInfo {
        char *name;          /* USER_APP_common@N */
        char *unit;          /* USER_APP_common@N.service */
        unsigned number;
        unsigned port;
        char *url;           /* http://HOST:PORT, HOST from Host= */
        bool enabled;
        char *active_state;  /* from systemd; "inactive" when not loaded */
        char *sub_state;
        char **argv;
        NapParams *params;
} NapInstanceInfo;

void nap_service_info_array_free(NapServiceInfo *a, size_t n);
void nap_instance_info_clear(NapInstanceInfo *i);
void nap_instance_info_array_free(NapInstanceInfo *a, size_t n);

int nap_deploy_app(NapContext *c, const char *service, const char *url, NapDeployResult *ret, NapError *e);
int nap_list_services(NapContext *c, const char *user, NapServiceInfo **ret, size_t *ret_n, NapError *e);
/* Placeholders of the deployed app's profile, first-appearance order. */
int nap_get_parameters(NapContext *c, const char *service, char ***ret, NapError *e);
/* New instance: copy, substitute, port, manifest, reload, start. */
int nap_start_common(NapContext *c, const char *service, const NapParams *params, NapInstanceInfo *ret, NapError *e);
/* Instances with a manifest, merged with systemd's view (ListUnitsByPatterns). */
int nap_list_instances(NapContext *c, const char *service, NapInstanceInfo **ret, size_t *ret_n, NapError *e);
int nap_get_instances_num(NapContext *c, const char *service, unsigned *ret, NapError *e);
/* Start/stop also record whether the instance comes back at boot. */
int nap_start_app(NapContext *c, const char *instance, NapError *e);
int nap_stop_app(NapContext *c, const char *instance, NapError *e);
int nap_cat_app(NapContext *c, const char *instance, char **ret, NapError *e);
int nap_get_journal(NapContext *c, const char *instance, size_t lines, NapJournalEntry **ret, size_t *ret_n, NapError *e);
/* Stops, drops the manifest, reloads, removes the instance's tree. */
int nap_remove_instance(NapContext *c, const char *instance, NapError *e);
