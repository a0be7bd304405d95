/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Cluster apps (docs/ARCHITECTURE.md "Cluster apps"): the desired state,
 * one assignment per instance, and what the assigned host reports back.
 * Under ClusterPrefix= (PREFIX):
 *
 *   PREFIX/assignments/NODE/INSTANCE   an instance the node must run
 *                                      (NapAssignment), durable
 *   PREFIX/counters/USER_APP           the app's last instance number:
 *                                      advanced with each new assignment,
 *                                      in the same txn, never lowered
 *   PREFIX/requests/USER_APP/ID        the instance a request id made (a
 *                                      retried create finds it)
 *   PREFIX/observed/NODE/INSTANCE      the host's report (NapObserved), on
 *                                      its membership lease: it vanishes
 *                                      with the host
 *
 * INSTANCE is USER_APP_common@N. Values are JSON, parsed strictly (unknown
 * fields ignored, missing or mistyped ones refused: anything with access
 * to etcd can write there). Nothing here logs. */

#include <stdbool.h>
#include <stdint.h>

#include "clients/etcd.h"
#include "model/intent.h"
#include "model/names.h"
#include "model/node.h"
#include "model/profile.h"
#include "model/resources.h"

typedef struct NapAssignment {
        NapInstance instance;                  /* common, numbered */
        char node[NAP_NODE_NAME_MAX + 1];
        NapParams *params;                     /* never NULL once parsed */
        unsigned port;                         /* 0: the host picks one */
        char commit[NAP_COMMIT_HEX_LEN + 1];   /* "": what the host deployed */
        NapCompute resources;                  /* all 0: none */
        bool enabled;
        char request[NAP_REQUEST_ID_MAX + 1];  /* "": none */
        uint64_t generation;                   /* + 1 on every move (fencing) and restart */
        uint64_t restart;                      /* the generation a restart was asked at; 0: never */
        uint64_t created_usec;
        int64_t mod_revision;                  /* as read from etcd; 0: not read */
} NapAssignment;

void nap_assignment_done(NapAssignment *a);
void nap_assignment_array_free(NapAssignment *l, size_t n);

/* The value (the key holds node and instance too; so does the value, for
 * whoever reads it alone). */
int nap_assignment_to_json(const NapAssignment *a, char **ret);
/* Strict: a damaged record is NAP_ERROR_INTERNAL naming the field
 * (-EBADMSG). mod_revision is left 0. */
int nap_assignment_from_json(const char *text, size_t size, NapAssignment *ret, NapError *e);

typedef enum NapObservedState {
        NAP_OBSERVED_ACTIVATING, /* being realized, or started and not answering yet */
        NAP_OBSERVED_ACTIVE,     /* running and answered */
        NAP_OBSERVED_FAILED,     /* could not be realized, or its unit failed: reason says why */
        NAP_OBSERVED_INACTIVE,   /* stopped, as its assignment says (enabled false) */
        _NAP_OBSERVED_STATE_MAX,
        _NAP_OBSERVED_STATE_INVALID = -EINVAL,
} NapObservedState;

const char *nap_observed_state_to_string(NapObservedState s) _pure_;
NapObservedState nap_observed_state_from_string(const char *s) _pure_;

#define NAP_OBSERVED_REASON_MAX 1024U

typedef struct NapObserved {
        NapInstance instance;
        char node[NAP_NODE_NAME_MAX + 1];
        NapObservedState state;
        unsigned port;                         /* 0: none yet */
        char commit[NAP_COMMIT_HEX_LEN + 1];   /* "": unknown */
        char *reason;                          /* NULL: none */
        uint64_t generation;                   /* of the assignment realized */
        uint64_t time_usec;
} NapObserved;

void nap_observed_done(NapObserved *o);
void nap_observed_array_free(NapObserved *l, size_t n);
int nap_observed_to_json(const NapObserved *o, char **ret);
int nap_observed_from_json(const char *text, size_t size, NapObserved *ret, NapError *e);

/* Keys, malloc'ed (NULL: out of memory); names checked already. */
char *nap_key_assignment(const char *prefix, const char *node, const NapInstance *i);
char *nap_key_assignments(const char *prefix, const char *node); /* PREFIX/assignments/NODE/ */
char *nap_key_counter(const char *prefix, const NapService *s);
char *nap_key_request(const char *prefix, const NapService *s, const char *request);
char *nap_key_observed(const char *prefix, const char *node, const NapInstance *i);
char *nap_key_observeds(const char *prefix, const char *node);   /* PREFIX/observed/NODE/ */

/* a: instance.service, node, params, port, commit, resources, enabled,
 * request (the number is ignored). The number is the app's counter + 1,
 * written with the assignment in one txn that compares the counter's,
 * the node record's and (with a request id) the request key's revisions;
 * a lost race is tried again. Sets a's number, generation (1), created
 * and mod_revision. Returns 1: created; 0: the request id made it
 * already (a retry: a's number set to that instance's, nothing written).
 * NoSuchNode without the node's record; InvalidName / InvalidParameter
 * for a bad name, node, commit, port or request id. */
int nap_assignment_create(EtcdClient *c, const char *prefix, NapAssignment *a, NapError *e);
/* The node's assignments by key, and the store revision they were read
 * at (a watch goes on from revision + 1). A record that is damaged or
 * whose value disagrees with its key is left out, as a damaged manifest
 * is (ret_damaged, optional: how many). */
int nap_assignments_list(EtcdClient *c, const char *prefix, const char *node, NapAssignment **ret,
                         size_t *ret_n, int64_t *ret_revision, unsigned *ret_damaged, NapError *e);
/* The assignment and its request key go (the counter stays: numbers are
 * never reused). NoSuchInstance when there is none. */
int nap_assignment_delete(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                          NapError *e);

/* The report, on lease (0: none), replacing the last one. */
int nap_observed_put(EtcdClient *c, const char *prefix, const NapObserved *o, int64_t lease, NapError *e);
/* Gone already is fine. */
int nap_observed_delete(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i, NapError *e);
/* Until node reports instance i, at generation or later, active or
 * failed (a watch on its key, from the revision first read): 0 and *ret
 * filled, whichever it is. UnitFailed (-ETIMEDOUT) when timeout_usec
 * passes first, naming the last state seen. What start-common on another
 * node waits for. */
int nap_observed_wait(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                      uint64_t generation, uint64_t timeout_usec, NapObserved *ret, NapError *e);
/* As nap_observed_wait(), until the report says want (or failed): what
 * stop-app (inactive) and start-app (active) of another node's instance
 * wait for. */
int nap_observed_wait_state(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                            uint64_t generation, NapObservedState want, uint64_t timeout_usec, NapObserved *ret,
                            NapError *e);
/* Until node's report of i is gone (withdrawn once the node removed the
 * instance, or with its lease): 0, at once when there is none. UnitFailed
 * (-ETIMEDOUT) when timeout_usec passes first. */
int nap_observed_wait_gone(EtcdClient *c, const char *prefix, const char *node, const NapInstance *i,
                           uint64_t timeout_usec, NapError *e);
/* The node's reports by key; damaged ones left out. */
int nap_observed_list(EtcdClient *c, const char *prefix, const char *node, NapObserved **ret, size_t *ret_n,
                      NapError *e);

/* ---- app sources: where a cluster app's tree comes from (trees) ------- */

/* PREFIX/apps/USER_APP, durable, written by every deploy on a host that is
 * a node of the cluster: the URL and commit a host that lacks the tree
 * fetches. A pushed app's url is the receiving host's bare repository;
 * the push replicated it to every Ready node, and a host fetches the
 * commit from its own replica. */
typedef struct NapAppSource {
        NapService service;
        char *url;                             /* never NULL once parsed; at most NAP_URL_MAX */
        char commit[NAP_COMMIT_HEX_LEN + 1];   /* always a commit */
        bool pushed;                           /* from a git push to node */
        char node[NAP_NODE_NAME_MAX + 1];      /* the host that deployed it */
        uint64_t time_usec;
} NapAppSource;

void nap_app_source_done(NapAppSource *s);
int nap_app_source_to_json(const NapAppSource *s, char **ret);
/* Strict, as nap_assignment_from_json(). */
int nap_app_source_from_json(const char *text, size_t size, NapAppSource *ret, NapError *e);
char *nap_key_app_source(const char *prefix, const NapService *s);
/* InvalidParameter for a bad url, commit or node; replaces the last one. */
int nap_app_source_put(EtcdClient *c, const char *prefix, const NapAppSource *s, NapError *e);
/* 1 and *ret filled; 0 none recorded; < 0 etcd failed or the record is
 * damaged (NAP_ERROR_INTERNAL naming the field). */
int nap_app_source_get(EtcdClient *c, const char *prefix, const NapService *s, NapAppSource *ret, NapError *e);
void nap_app_source_array_free(NapAppSource *l, size_t n);
/* Every app of user recorded in the cluster (one range read of
 * PREFIX/apps/USER_: a user name has no '_'), by key; a damaged record,
 * or one whose value disagrees with its key, is left out. */
int nap_app_sources_list(EtcdClient *c, const char *prefix, const char *user, NapAppSource **ret, size_t *ret_n,
                         NapError *e);

/* ---- every node's (shared with the operations from any host) ---------- */

/* Every node's assignments (one range read of PREFIX/assignments/), as
 * nap_assignments_list() reads one node's. */
int nap_assignments_list_all(EtcdClient *c, const char *prefix, NapAssignment **ret, size_t *ret_n,
                             int64_t *ret_revision, unsigned *ret_damaged, NapError *e);
/* Every node's reports; damaged ones, and one under another node's key,
 * left out. */
int nap_observed_list_all(EtcdClient *c, const char *prefix, NapObserved **ret, size_t *ret_n, NapError *e);
/* a (node and instance) enabled or not, read-modify-CAS on its
 * mod_revision; *a becomes the record as written. Already so: nothing
 * written. NoSuchInstance when it is not assigned (any more). */
int nap_assignment_set_enabled(EtcdClient *c, const char *prefix, NapAssignment *a, bool enabled, NapError *e);
/* a (node and instance) restarted by its node: generation + 1, restart
 * set to it, enabled (a restart leaves an instance running), read-modify-
 * CAS as nap_assignment_set_enabled(); *a as written. */
int nap_assignment_restart(EtcdClient *c, const char *prefix, NapAssignment *a, NapError *e);
/* The assignment of instance i, whichever node it is on: 1 and *ret, or 0
 * when there is none. */
int nap_assignment_find(EtcdClient *c, const char *prefix, const NapInstance *i, NapAssignment *ret, NapError *e);

/* ---- guarded writes (rollouts the reconciler's leader finishes) ------- */

/* nap_assignment_create(), its txn comparing the n_guard (at most 2)
 * guards too: a guard that no longer holds loses every try (NotAvailable,
 * -EBUSY). */
int nap_assignment_create_guarded(EtcdClient *c, const char *prefix, NapAssignment *a, const EtcdTxnCompare *guard,
                                  size_t n_guard, NapError *e);
/* a (as read: its mod_revision) and its request key deleted, comparing its
 * mod_revision and the n_guard (at most 2) guards. 1: deleted; 0: changed
 * meanwhile. */
int nap_assignment_delete_guarded(EtcdClient *c, const char *prefix, const NapAssignment *a,
                                  const EtcdTxnCompare *guard, size_t n_guard, NapError *e);
/* A deep copy of a (a valid one: as read or created). */
int nap_assignment_copy(const NapAssignment *a, NapAssignment *ret);
