/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Calls about an instance of a cluster app that runs on another host
 * (docs/ARCHITECTURE.md "Cluster apps", Forwarding): GetJournal (with
 * "more" too), CatApp and GetPort. The caller's nap-managerd authorizes the
 * call as always, then hands it, as the varlink bytes its client sent, to
 * `nap-cluster-gate --forward`, which finds the instance's node in its assignment,
 * opens mutual TLS (clients/tls.h) to that node's nap-cluster-gate(8),
 * sends a header asserting the caller's uid, and then relays the call and
 * every reply unchanged. The gate checks the header and the call
 * (nap_forward_header_parse(), nap_forward_call_check()): the uid is
 * authorized there as it would be locally.
 *
 * The wire, over TLS, each message a JSON object and a NUL (as varlink):
 *   caller → gate   {"uid": N, "node": "h1"}     the header
 *   caller → gate   the varlink call             {"method": "io.nap.Manager.GetJournal", …}
 *   gate → caller   the varlink replies, as nap-managerd sent them, or
 *                   one varlink error when the gate refuses. */

#include <stdbool.h>
#include <sys/types.h>

#include "model/config.h"
#include "model/node.h"
#include "ops/methods.h"

#define NAP_FORWARD_HEADER_MAX 512U
/* Either end of a quiet forwarded follow notices a host gone without a
 * word within 30 + 10 * 3 s (TCP keepalive). */
#define NAP_FORWARD_KEEPALIVE_IDLE_SEC 30U
#define NAP_FORWARD_KEEPALIVE_INTERVAL_SEC 10U
#define NAP_FORWARD_KEEPALIVE_COUNT 3U
#define NAP_FORWARD_CALL_MAX (1024U * 1024U)

/* GetJournal, CatApp, GetPort: what may be forwarded. */
bool nap_method_forwards(const NapMethod *m) _pure_;

/* The instance's manifest is on this host: it is served here. */
bool nap_forward_is_here(const NapConfig *c, const char *instance);

/* The caller's side (nap-cluster-gate --forward): the node of instance's
 * assignment and that node's address. NoSuchInstance when no node is
 * assigned it; NoSuchNode, or NodeUnreachable when the node has no address. */
typedef struct NapForwardTarget {
        char node[NAP_NODE_NAME_MAX + 1];
        char *address;
        bool ready; /* its membership lease is alive */
} NapForwardTarget;

void nap_forward_target_done(NapForwardTarget *t);
int nap_forward_find(const NapConfig *c, const char *instance, NapForwardTarget *ret, NapError *e);

/* The gate's side. The header: the uid asserted into *ret_uid, the node
 * that says so into node (size NAP_NODE_NAME_MAX + 1). */
int nap_forward_header_parse(const char *text, uid_t *ret_uid, char *node, NapError *e);
/* The call: a method that forwards, its owner argument an instance that
 * is here, and the asserted uid authorized for it. *ret_method: its entry. */
int nap_forward_call_check(const NapConfig *c, const char *text, uid_t uid, const NapMethod **ret_method,
                           NapError *e);
/* e as a varlink error message with its NUL ({"error":
 * "io.nap.Manager.<Kind>", "parameters": {"message": …}}). NULL: out of memory. */
char *nap_forward_error_message(const NapError *e, size_t *ret_size);
