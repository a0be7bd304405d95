/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the methods' JSON adapters (methods.c, methods-nodes.c) and the
 * queue's jobs of nap's own starts (ops-queued.c) share. */

#include <jansson.h>

#include "base/error.h"
#include "model/profile.h"

/* A string argument. The varlink adapter has checked the types against
 * the interface already; this guards other callers all the same. */
const char *nap_arg_string(json_t *args, const char *name, NapError *e);
/* A reply built with jansson: NULL only when out of memory, said in e. */
json_t *nap_reply(json_t *reply, NapError *e);
/* Parameters as a JSON object of strings (none: {}); NULL on ENOMEM. */
json_t *nap_json_params(const NapParams *p);
