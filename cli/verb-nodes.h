/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl's verbs of the cluster's node inventory (napctl(1), the methods
 * ListNodes … ScheduleStorage of io.nap.Manager):
 *   napctl nodes
 *   napctl node show NAME
 *   napctl node apply NAME ADDRESS --cpu=CPUS --memory=SIZE --storage=SIZE [--labels=K=V,...]
 *   napctl node delete NAME [--force]
 *   napctl reserve compute NODE NAME [--cpu=REQ[:LIMIT]] [--memory=REQ[:LIMIT]]
 *   napctl reserve storage NODE NAME --storage=REQ[:LIMIT]
 *   napctl release compute|storage NODE NAME
 *   napctl schedule compute NAME [--cpu=...] [--memory=...] [--policy=P] [--labels=...] [--count=N]
 *   napctl schedule storage NAME --storage=... [--policy=P] [--labels=...] [--count=N]
 * Each is one call through caller_call() (varlink, or --no-helper). The
 * options come as typed and are parsed here (lib/model/resources.h,
 * nap_labels_parse()) before anything is called: bad input is
 * InvalidParameter and nothing is sent. Which verb accepts which option
 * is napctl.c's business. args is the NULL-terminated argv after the
 * sub-verb. Prints the result (JSON with o->json); errors go into e. */

#include <stdbool.h>

#include "model/resources.h"
#include "napctl-call.h"

typedef struct NodeOptions {
        const char *cpu, *memory, *storage; /* NULL: not given */
        const char *labels, *policy, *count;
        bool force;
        bool json;
} NodeOptions;

typedef int (*node_verb_fn)(Caller *c, char **args, const NodeOptions *o, NapError *e);

/* --cpu=REQUEST[:LIMIT] and --memory=REQUEST[:LIMIT], either or both (not
 * given: 0), into ret; an error names the option. */
int options_compute(const NodeOptions *o, NapCompute *ret, NapError *e);

int verb_nodes(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_node_show(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_node_apply(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_node_delete(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_reserve_compute(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_reserve_storage(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_release_compute(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_release_storage(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_schedule_compute(Caller *c, char **args, const NodeOptions *o, NapError *e);
int verb_schedule_storage(Caller *c, char **args, const NodeOptions *o, NapError *e);
