/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The methods of the registry that run NAP_METHOD_CACHED (ListInstances,
 * GetInstancesNum), answered from memory kept fresh by systemd's signals
 * and inotify; see instance-cache.c for why it is never stale. */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "ops/methods.h"

typedef struct InstanceCache InstanceCache;

/* envelope: as nap_method_envelope(), borrowed; NULL when the call could
 * not be run (out of memory). Called exactly once per call, maybe before
 * instance_cache_call() returns. */
typedef void (*InstanceCacheDone)(json_t *envelope, void *userdata);

/* event and context are borrowed and must outlive the cache. */
int instance_cache_new(sd_event *event, NapContext *context, InstanceCache **ret);
/* Starts following systemd's units right away, so that the first call
 * finds the list on its way (or there). Failures only make the first call
 * try again. */
void instance_cache_prepare(InstanceCache *cache);
/* A cached method, authorized already. */
void instance_cache_call(InstanceCache *cache, const NapMethod *method, json_t *args, InstanceCacheDone done,
                         void *userdata);
/* Calls still waiting are answered with an error. */
InstanceCache *instance_cache_free(InstanceCache *cache);
