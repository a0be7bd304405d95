/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An app's environment (napctl config): the variables every instance of
 * the app gets besides PORT. It is stored with the app
 * (ROOT/services/USER/.USER_APP.env, lib/model/state.h) as a JSON object
 * {"NAME":"VALUE",…}, copied into each instance's manifest ("environment",
 * lib/model/manifest.h) when the instance is made or rebuilt, and written
 * into its drop-in as Environment= lines (lib/model/unit.h).
 *
 * It is a NapParams (lib/model/profile.h) whose names pass
 * nap_env_name_check() (lib/model/names.h) and whose values are checked
 * as parameter values: at most NAP_PARAM_VALUE_MAX bytes of UTF-8 without
 * control characters, at most NAP_PARAMS_MAX variables. */

#include <jansson.h>
#include <stdbool.h>

#include "base/error.h"
#include "model/profile.h"

/* Every variable at its largest, JSON-escaped (\uXXXX: 6 bytes), with room. */
#define NAP_ENVIRONMENT_MAX_SIZE (NAP_PARAMS_MAX * (NAP_PARAM_NAME_MAX + 6 * NAP_PARAM_VALUE_MAX + 8) + 16)

/* One variable into env, checked: InvalidParameter naming what is wrong. */
int nap_environment_set(NapParams *env, const char *name, const char *value, NapError *e);
/* The variables of a JSON object (strings only). */
int nap_environment_from_json(json_t *o, NapParams **ret, NapError *e);
/* A JSON object of the variables, keys sorted; NULL on OOM. */
json_t *nap_environment_to_json(const NapParams *env);
/* The stored form: parse (bounded) and format (sorted, indented, "\n"). */
int nap_environment_parse(const char *text, size_t size, NapParams **ret, NapError *e);
char *nap_environment_format(const NapParams *env);
/* The same variables with the same values, in any order; NULL is empty. */
bool nap_environment_equal(const NapParams *a, const NapParams *b) _pure_;
