/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one place where nap's names are validated (DESIGN.md "Names").
 *   user     [a-z][a-z0-9-]{0,31}
 *   app      [a-z][a-z0-9-]{0,47}
 *   service  USER_APP
 *   instance USER_APP_common@N, USER_APP_mpi_master@N, USER_APP_mpi_slave@N
 *            (an optional ".service" suffix is accepted), N = 1..999999999
 *            written without leading zeros.
 * '_' is the separator and appears in neither user nor app, so a name
 * splits one way only. Anything else is refused with NAP_ERROR_INVALID_NAME
 * before it reaches a path, a unit name, an etcd key or a process. */

#include <stdbool.h>

#include "base/error.h"

#define NAP_USER_MAX 32
#define NAP_APP_MAX 48
#define NAP_SERVICE_NAME_MAX (NAP_USER_MAX + 1 + NAP_APP_MAX + 1)
#define NAP_INSTANCE_NUMBER_MAX 999999999u
/* "USER_APP_mpi_slave@999999999.service" fits with room. */
#define NAP_UNIT_NAME_MAX 128

typedef enum NapKind {
        NAP_KIND_COMMON,
        NAP_KIND_MPI_MASTER,
        NAP_KIND_MPI_SLAVE,
        _NAP_KIND_MAX,
        _NAP_KIND_INVALID = -EINVAL,
} NapKind;

const char *nap_kind_to_string(NapKind k) _pure_; /* "common", "mpi_master", "mpi_slave" */
NapKind nap_kind_from_string(const char *s) _pure_;
/* Whether units of this kind are templates carrying an instance number. */
bool nap_kind_has_number(NapKind k) _pure_;

bool nap_user_is_valid(const char *s) _pure_;
bool nap_app_is_valid(const char *s) _pure_;

typedef struct NapService {
        char user[NAP_USER_MAX + 1];
        char app[NAP_APP_MAX + 1];
} NapService;

typedef struct NapInstance {
        NapService service;
        NapKind kind;
        unsigned number; /* 0 for kinds without a number */
} NapInstance;

int nap_service_from_parts(const char *user, const char *app, NapService *ret, NapError *e);
int nap_service_parse(const char *s, NapService *ret, NapError *e);
/* "USER_APP" into buf (at least NAP_SERVICE_NAME_MAX bytes). */
const char *nap_service_name(const NapService *s, char *buf);

int nap_instance_parse(const char *s, NapInstance *ret, NapError *e);
/* Parses a decimal instance number 1..NAP_INSTANCE_NUMBER_MAX, no sign,
 * no leading zero, nothing after it. */
int nap_instance_number_parse(const char *s, unsigned *ret);

/* The name of a variable of an app's environment (napctl config set): a
 * C identifier, [A-Za-z_][A-Za-z0-9_]{0,63}, and none of the names nap or
 * systemd set for the instance (PORT, NOTIFY_SOCKET, LISTEN_FDS, …):
 * InvalidParameter naming it otherwise. */
#define NAP_ENV_NAME_MAX 64
int nap_env_name_check(const char *name, NapError *e);
bool nap_env_name_is_reserved(const char *name) _pure_;

/* A git commit id as nap records it: 40 lowercase hex digits. */
#define NAP_COMMIT_HEX_LEN 40
bool nap_commit_is_valid(const char *commit) _pure_;
/* "USER_APP_common@N.service" into buf (NAP_UNIT_NAME_MAX bytes). */
const char *nap_instance_unit_name(const NapInstance *i, char *buf);
/* The same without ".service": the name users type. */
const char *nap_instance_name(const NapInstance *i, char *buf);
/* The template a numbered instance comes from: "USER_APP_common@.service". */
const char *nap_instance_template_name(const NapInstance *i, char *buf);
