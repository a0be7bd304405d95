/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The inventory's methods (seed 004), for the registry's table in
 * methods.c. Each takes the call's arguments (checked against the
 * interface) and returns the reply object or NULL with e set (a
 * NapMethodFn of ops/methods.h). */

#include <jansson.h>

#include "ops/ops.h"

json_t *nap_run_list_nodes(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_get_node(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_apply_node(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_delete_node(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_reserve_compute(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_release_compute(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_reserve_storage(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_release_storage(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_schedule_compute(NapContext *c, json_t *args, NapError *e);
json_t *nap_run_schedule_storage(NapContext *c, json_t *args, NapError *e);
