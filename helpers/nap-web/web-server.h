/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libmicrohttpd's callbacks (web-server.c); cls is the WebContext. */

#include "web.h"

enum MHD_Result web_handle(void *cls, struct MHD_Connection *connection, const char *url, const char *http_method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **state);
void web_request_completed(void *cls, struct MHD_Connection *connection, void **state,
                           enum MHD_RequestTerminationCode toe);
void web_connection_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);
