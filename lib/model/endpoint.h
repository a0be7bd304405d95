/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap's keys in etcd, in one place (DESIGN.md "etcd keys"; the prefix is
 * EtcdPrefix=, default /services, as in the seeds):
 *   PREFIX/url/USER/APP           the URL the app was deployed from
 *   PREFIX/port/USER/APP          the port of the app's newest instance (seed)
 *   PREFIX/port/USER/APP/N        the port of instance N
 *   PREFIX/USER_APP/HOST:PORT     a live endpoint, on a lease, written by
 *                                 nap-discovery once the instance answers:
 *                                 {"host":…,"port":…,"instance":…,"unit":…}
 * HOST is written in brackets when it is an IPv6 address. */

#include "model/config.h"
#include "base/error.h"
#include "model/names.h"

#define NAP_ENDPOINT_VALUE_MAX 1024

char *nap_key_url(const NapConfig *c, const NapService *s);
char *nap_key_port(const NapConfig *c, const NapService *s);
char *nap_key_instance_port(const NapConfig *c, const NapInstance *i);
/* "PREFIX/USER_APP/": every endpoint of the app is below it. */
char *nap_key_endpoints(const NapConfig *c, const NapService *s);
char *nap_key_endpoint(const NapConfig *c, const NapService *s, const char *host, unsigned port);

typedef struct NapEndpoint {
        char *host;
        unsigned port;
        char *instance; /* USER_APP_common@N */
        char *unit;     /* USER_APP_common@N.service */
} NapEndpoint;

void nap_endpoint_clear(NapEndpoint *ep);
/* {"host","port","instance","unit"}, keys sorted; NULL on OOM. */
char *nap_endpoint_format(const NapEndpoint *ep);
/* A value read from etcd (outside input): strict types, a valid instance
 * name, unit matching it, port 1..65535, host without control characters;
 * at most NAP_ENDPOINT_VALUE_MAX bytes. */
int nap_endpoint_parse(const char *text, size_t size, NapEndpoint *ret, NapError *e);
