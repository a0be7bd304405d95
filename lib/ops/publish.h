/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The seed's keys that nap's operations write to etcd and read back
 * (lib/model/endpoint.h has the layout): the URL an app was deployed from and the
 * ports of its instances. Live endpoints are nap-discovery's, on leases.
 * Without Etcd= nothing is written and lookups use the local state. etcd
 * being down never fails an operation: the write is reported as pending,
 * and the next deploy-app or start-common of the app writes it again. */

#include <stdbool.h>

#include "model/endpoint.h"
#include "ops/ops.h"

/* Requests from operations are short: a down etcd must not stall them. */
#define NAP_PUBLISH_CONNECT_TIMEOUT_USEC (1000ULL * 1000ULL)
#define NAP_PUBLISH_TIMEOUT_USEC (2000ULL * 1000ULL)

const char *nap_publish_to_string(NapPublish p) _pure_;

/* The context's etcd client, made on first use; NotAvailable without Etcd=. */
int nap_context_etcd(NapContext *c, EtcdClient **ret, NapError *e);

/* PREFIX/url/USER/APP = url. why (optional) gets the reason when pending. */
NapPublish nap_publish_url(NapContext *c, const NapService *s, const char *url, NapError *why);
/* PREFIX/port/USER/APP/N and PREFIX/port/USER/APP = port. */
NapPublish nap_publish_port(NapContext *c, const NapInstance *i, unsigned port, NapError *why);
/* Removes PREFIX/port/USER/APP/N (best effort). */
void nap_unpublish_port(NapContext *c, const NapInstance *i);
/* Removes every seed key of the app: PREFIX/url/USER/APP,
 * PREFIX/port/USER/APP and PREFIX/port/USER/APP/N of every N. 0 without
 * Etcd=; < 0 with e set when etcd did not answer. */
int nap_unpublish_service(NapContext *c, const NapService *s, NapError *e);

/* Re-asserts the seed's keys from STATE after etcd lost them (restored
 * from an old snapshot, wiped, a new cluster): PREFIX/url/USER/APP of every
 * deployed app, PREFIX/port/USER/APP/N of every instance, and
 * PREFIX/port/USER/APP where it is missing. Reads both prefixes once and
 * writes only what is missing or different. Without Etcd=: nothing. */
typedef struct NapReassertResult {
        unsigned checked, written;
} NapReassertResult;
int nap_reassert_keys(NapContext *c, NapReassertResult *ret, NapError *e);

/* Reads a key's value as text: 1 found, 0 missing, < 0 error. */
int nap_lookup(NapContext *c, const char *key, char **ret, NapError *e);
