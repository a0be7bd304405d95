/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A client of nap-queued's HTTP API (nap-queued(8)) over its Unix
 * socket, for napctl queue and nap-web: one request (lib/clients/http.h),
 * the answer's "data" or its error as the NapError nap-queued named
 * ({"ok": false, "kind", "error"}). nap-queued decides who calls by the
 * socket's peer uid: root acts for any owner. Never logs. */

#include <jansson.h>

#include "base/error.h"

#define NAP_QUEUE_SOCKET_NAME "nap/queue" /* below /run, or $XDG_RUNTIME_DIR with Scope=user */

/* method ("GET", "POST", "DELETE"), path below /v1/ ("vm/?status=queued"),
 * body (taken; NULL: none). *ret: the answer's data, a new reference. */
int nap_queue_client_call(const char *socket, const char *method, const char *path, json_t *body, json_t **ret,
                          NapError *e);
