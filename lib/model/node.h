/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The cluster's nouns as they live in etcd (nap.conf(5) "CLUSTER KEYS"),
 * under ClusterPrefix= (default /nap):
 *
 *   PREFIX/nodes/NODE                    the node's record (NapNode), durable,
 *                                        written by its nap-node agent
 *   PREFIX/members/NODE                  its membership, on the lease the agent
 *                                        keeps alive: {"boot_id", "since"}
 *   PREFIX/status/NODE                   why and since when it is NotReady,
 *                                        written by the agents that saw the
 *                                        membership go: {"reason", "since"}
 *   PREFIX/usage/NODE                    the sums of the requests reserved on
 *                                        it (NapUsage), changed only together
 *                                        with a reservation, in one txn
 *   PREFIX/reservations/NODE/compute/RES a compute reservation (NapReservation)
 *   PREFIX/reservations/NODE/storage/RES a storage reservation
 *   PREFIX/names/KIND/RES                the node holding it: a name is
 *                                        reserved once in the cluster
 *
 * A node is Ready while its record and its membership both exist (seed
 * 004's table), NotReady while only the record does.
 *
 * Names: a node is a DNS label, [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?; a
 * reservation is USER_REST, REST of [A-Za-z0-9_.@-]{1,128} (an instance
 * name is one): its user owns it. Label keys [a-z0-9][a-z0-9._-]{0,62},
 * values [A-Za-z0-9._-]{0,63}, at most 32 labels.
 *
 * Values are JSON; the parsers are strict (unknown fields are ignored,
 * missing or mistyped ones refused) since anything with access to etcd can
 * write there. Nothing here talks to etcd: lib/cluster/ does. */

#include <stdbool.h>
#include <jansson.h>
#include <stdint.h>

#include "base/error.h"
#include "model/names.h"
#include "model/resources.h"

#define NAP_NODE_NAME_MAX 63
#define NAP_RESERVATION_NAME_MAX (NAP_USER_MAX + 1 + 128)
#define NAP_LABELS_MAX 32
#define NAP_CLUSTER_VALUE_MAX (64 * 1024)

int nap_node_name_check(const char *s, NapError *e);
/* The reservation's owner into ret_user (at least NAP_USER_MAX + 1). */
int nap_reservation_name_check(const char *s, char *ret_user, NapError *e);

typedef struct NapCapacity {
        uint64_t cpu_milli;
        uint64_t memory;
        uint64_t storage;
} NapCapacity;

typedef struct NapNode {
        char name[NAP_NODE_NAME_MAX + 1];
        char *address;
        char machine_id[33];
        char boot_id[33];
        NapCapacity capacity;
        char **labels;           /* strv of "key=value", sorted */
        char *version;
        uint64_t registered_usec;
} NapNode;

void nap_node_done(NapNode *n);
int nap_node_to_json(const NapNode *n, char **ret);
int nap_node_from_json(const char *text, size_t size, NapNode *ret, NapError *e);

/* "k=v,k2=v2" (nap.conf Labels=, a schedule's selector): sorted strv,
 * keys unique. "" is no labels. */
int nap_labels_parse(const char *s, char ***ret, NapError *e);
/* As a JSON object {"k": "v", …} (new reference; NULL: out of memory). */
json_t *nap_labels_json(char *const *labels);
/* Every "k=v" of selector is among labels. */
bool nap_labels_match(char *const *labels, char *const *selector) _pure_;

typedef struct NapUsage {
        uint64_t cpu_milli;
        uint64_t memory;
        uint64_t storage;
} NapUsage;

int nap_usage_to_json(const NapUsage *u, char **ret);
int nap_usage_from_json(const char *text, size_t size, NapUsage *ret, NapError *e);

typedef enum NapReservationKind {
        NAP_RESERVATION_COMPUTE,
        NAP_RESERVATION_STORAGE,
        _NAP_RESERVATION_KIND_MAX,
        _NAP_RESERVATION_KIND_INVALID = -EINVAL,
} NapReservationKind;

const char *nap_reservation_kind_to_string(NapReservationKind k) _pure_; /* "compute", "storage" */

typedef struct NapReservation {
        NapReservationKind kind;
        char name[NAP_RESERVATION_NAME_MAX + 1];
        char node[NAP_NODE_NAME_MAX + 1];
        NapCompute compute;      /* NAP_RESERVATION_COMPUTE */
        NapStorage storage;      /* NAP_RESERVATION_STORAGE */
        uint64_t created_usec;
} NapReservation;

/* The reservation's value (kind, name and node are in its key). */
int nap_reservation_to_json(const NapReservation *r, char **ret);
int nap_reservation_from_json(const char *text, size_t size, NapReservation *ret, NapError *e);
/* The same request and limits (a retried reservation is not a new one). */
bool nap_reservation_same(const NapReservation *a, const NapReservation *b) _pure_;
/* What the reservation adds to its node's usage. */
void nap_usage_add(NapUsage *u, const NapReservation *r);
/* ... and takes away again (never below 0). */
void nap_usage_remove(NapUsage *u, const NapReservation *r);

typedef struct NapNodeStatus {
        char *reason;
        uint64_t since_usec;
} NapNodeStatus;

void nap_node_status_done(NapNodeStatus *s);
int nap_node_status_to_json(const NapNodeStatus *s, char **ret);
int nap_node_status_from_json(const char *text, size_t size, NapNodeStatus *ret, NapError *e);

/* The strict reading and writing of the cluster's JSON values, shared by
 * every record under ClusterPrefix= (lib/cluster/assignment.c too): load
 * refuses anything but an object, duplicate keys and values larger than
 * NAP_CLUSTER_VALUE_MAX; dump takes o (compact, keys sorted); damaged sets
 * "A WHAT in etcd is damaged: field 'FIELD'" (-EBADMSG). u64: an integer
 * 0 ≤ v ≤ max, else -EBADMSG; string: at most max bytes and no NUL, else
 * NULL. */
int nap_cluster_json_load(const char *text, size_t size, json_t **ret, const char *what, NapError *e);
int nap_cluster_json_dump(json_t *o, char **ret);
int nap_cluster_json_damaged(NapError *e, const char *what, const char *field);
int nap_cluster_json_u64(json_t *o, const char *field, uint64_t max, uint64_t *ret);
const char *nap_cluster_json_string(json_t *o, const char *field, size_t max);
/* A compute request's four fields of o (a reservation's, an assignment's
 * "resources"), each within its maximum. */
int nap_compute_from_json(json_t *o, NapCompute *c);

/* The keys, malloc'ed; node and reservation names checked already. */
char *nap_key_node(const char *prefix, const char *node);
char *nap_key_nodes(const char *prefix);      /* PREFIX/nodes/ */
char *nap_key_member(const char *prefix, const char *node);
char *nap_key_members(const char *prefix);    /* PREFIX/members/ */
char *nap_key_status(const char *prefix, const char *node);
char *nap_key_statuses(const char *prefix);   /* PREFIX/status/ */
char *nap_key_usage(const char *prefix, const char *node);
char *nap_key_usages(const char *prefix);     /* PREFIX/usage/ */
char *nap_key_reservation(const char *prefix, const NapReservation *r);
char *nap_key_reservations(const char *prefix, const char *node); /* PREFIX/reservations/NODE/ */
char *nap_key_reservation_name(const char *prefix, const NapReservation *r);
/* The node name of a key under PREFIX/nodes/ or PREFIX/members/ (a
 * pointer into key); NULL if key is not one. */
const char *nap_key_node_name(const char *key, const char *dir_prefix);
