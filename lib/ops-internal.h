/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What lib/ops*.c share; not part of libnap's API. */

#include "manifest.h"
#include "ops.h"

/* The service manager's bus, opened on first use. */
int ops_context_bus(NapContext *c, sd_bus **ret, NapError *e);
/* ROOT/services/USER/USER_APP, or NoSuchService when it is not deployed. */
int ops_service_dir_checked(NapContext *c, const NapService *s, char **ret, NapError *e);
/* DIR/profile, else DIR/Procfile; InvalidProfile when neither exists. */
int ops_load_profile_in(const char *dir, NapProfile **ret, NapError *e);
int ops_load_service_profile(NapContext *c, const NapService *s, NapProfile **ret, NapError *e);
/* The manifest of an instance name; NoSuchInstance if there is none. */
int ops_load_instance(NapContext *c, const char *instance, NapManifest **ret, NapError *e);

/* SERVICE_DIR/.nap/deploy.json: where and what was deployed. */
typedef struct DeployMeta {
        char *url;
        char *commit;
        uint64_t time_usec;
} DeployMeta;

void ops_deploy_meta_clear(DeployMeta *m);
/* Missing or damaged: all fields NULL/0. */
void ops_deploy_meta_read(const char *service_dir, DeployMeta *ret);
