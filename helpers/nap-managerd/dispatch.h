/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one way a call of either protocol reaches a method: authorize the
 * caller's uid, then run the method of the registry the way its entry
 * says: inline, in a forked worker (worker.h), or from the cache
 * (instance-cache.h). The varlink and D-Bus adapters only translate. */

#include <jansson.h>
#include <systemd/sd-event.h>
#include <sys/types.h>

#include "ops/methods.h"

typedef struct Dispatcher Dispatcher;

/* Whenever calls running in workers come or go. */
typedef void (*DispatcherChanged)(void *userdata);
/* envelope: as nap_method_envelope(), borrowed; NULL when the call could
 * not be run (out of memory, the worker failed). Exactly once per call,
 * maybe before dispatcher_call() returns. */
typedef void (*DispatchDone)(json_t *envelope, void *userdata);

/* event and context are borrowed and must outlive the dispatcher. */
int dispatcher_new(sd_event *event, NapContext *context, DispatcherChanged changed, void *userdata,
                   Dispatcher **ret);
Dispatcher *dispatcher_free(Dispatcher *d);

NapContext *dispatcher_context(Dispatcher *d);
/* Starts what makes the first cached call fast. */
void dispatcher_prepare(Dispatcher *d);
void dispatcher_call(Dispatcher *d, const NapMethod *m, uid_t uid, json_t *args, DispatchDone done,
                     void *userdata);
/* Calls are refused from now on; those in workers finish. */
void dispatcher_shut_down(Dispatcher *d);
/* Calls running in workers or waiting for one. */
unsigned dispatcher_calls(const Dispatcher *d);
