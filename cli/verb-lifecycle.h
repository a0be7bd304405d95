/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl's verbs of an app as a whole (napctl(1); the methods Scale,
 * GetConfig, SetConfig, RestartService, DestroyApp and ListApps of
 * io.nap.Manager, RestartApp for one instance):
 *   napctl scale USER_APP N [PARAM=VALUE...]
 *   napctl config set USER_APP KEY=VALUE...
 *   napctl config unset USER_APP KEY...
 *   napctl config get USER_APP [KEY]
 *   napctl restart INSTANCE|USER_APP
 *   napctl destroy-app USER_APP --yes
 *   napctl status [USER]
 * Each checks its words before anything is called (a bad number or a word
 * without '=' is InvalidParameter and nothing is sent), then makes one
 * call through caller_call() (varlink, or --no-helper). args is the
 * NULL-terminated argv after the (sub-)verb. Prints the result (JSON with
 * o->json); errors go into e. */

#include <stdbool.h>

#include "napctl-call.h"

typedef struct LifecycleOptions {
        bool json;
        bool yes;      /* destroy-app: the user means it */
        bool no_block; /* restart INSTANCE: as restart-app --no-block */
        const char *cpu, *memory; /* start-mpi: a rank's --cpu=, --memory=; NULL: not given */
        const char *request_id;   /* start-mpi: --request-id=; NULL: one is made */
        bool queue;               /* start-mpi --queue */
} LifecycleOptions;

typedef int (*lifecycle_verb_fn)(Caller *c, char **args, const LifecycleOptions *o, NapError *e);

int verb_scale(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_config_set(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_config_unset(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_config_get(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_restart(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_destroy_app(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
int verb_status(Caller *c, char **args, const LifecycleOptions *o, NapError *e);
