/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The app's profile (nap.profile(5)) and Heroku-style Procfile.
 *
 * profile: blank lines and lines starting with '#' are ignored; the first
 * other line is the command (a trailing '\' continues it on the next
 * line); a second command is an error. The command is split into words
 * like a shell would split a simple command, with no expansion at all:
 * whitespace separates words, '…' quotes literally, "…" quotes with \" and
 * \\ escapes, a backslash outside quotes escapes the next character.
 * Placeholders {name} or {name=default} (name: [A-Za-z_][A-Za-z0-9_]{0,63})
 * may stand anywhere, inside quotes too; "{{" and "}}" are literal braces;
 * any other brace is an error (unbalanced). {port}, $PORT and ${PORT} are
 * the instance's port, assigned by nap; "port" is not a parameter.
 *
 * Procfile: "TYPE: COMMAND" lines; nap runs the "web" process; the command
 * is read with the same rules as a profile command.
 *
 * Both may also have one line "HealthPath=PATH" (anywhere but inside the
 * command; blanks around PATH are stripped): the path nap asks for when it
 * checks that the app serves HTTP (nap-discovery(8), start and push). PATH
 * must pass nap_health_path_is_valid(); without the line, nap.conf's
 * HealthPath= applies.
 *
 * MPI apps (Procfile only; nap.profile(5), MPI APPS): an "mpi: COMMAND"
 * process instead of "web:" makes the app an MPI app, started by
 * start-mpi only (nap_profile_substitute() of the app refuses it); its
 * command is a profile of its own (nap_profile_mpi()), with placeholders
 * but no "np": the rank count comes from the params' np=, else
 * "MpiRanks=N" (default NAP_MPI_RANKS_DEFAULT), at most "MpiRanksMax=N"
 * (default NAP_MPI_RANKS_MAX_DEFAULT), both 1..NAP_MPI_RANKS_LIMIT. An
 * optional "build: COMMAND" (no placeholders, no port) is run once per
 * deploy before the first job. "MpiCpu=REQUEST[:LIMIT]" and
 * "MpiMemory=REQUEST[:LIMIT]" (resources.h) are what each rank asks for
 * when start-mpi is not told. "build:" in a Procfile without "mpi:" is
 * another process type, not nap's, as before.
 *
 * Values are substituted into words after splitting, so a value is always
 * exactly (part of) one argument, never re-split or interpreted; a value
 * with a control character (newline, tab, NUL, …) is refused. */

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "model/resources.h"

#define NAP_PROFILE_MAX_SIZE (64 * 1024)
#define NAP_PARAM_NAME_MAX 64
#define NAP_PARAM_VALUE_MAX 4096
#define NAP_PARAMS_MAX 64
#define NAP_HEALTH_PATH_MAX 255
#define NAP_HEALTH_PATH_DEFAULT "/"

#define NAP_MPI_RANKS_PARAM "np"
#define NAP_MPI_RANKS_DEFAULT 2U
#define NAP_MPI_RANKS_MAX_DEFAULT 64U
/* Rank r of job j runs in slave instance j * 1000 + r (model/mpi.h). */
#define NAP_MPI_RANKS_LIMIT 1000U

typedef enum NapProfileFormat {
        NAP_PROFILE_FORMAT_PROFILE,
        NAP_PROFILE_FORMAT_PROCFILE,
        _NAP_PROFILE_FORMAT_MAX,
        _NAP_PROFILE_FORMAT_INVALID = -EINVAL,
} NapProfileFormat;

typedef struct NapProfile NapProfile; /* opaque */

int nap_profile_parse(const char *text, size_t size, NapProfileFormat format,
                      NapProfile **ret, NapError *e);
NapProfile *nap_profile_free(NapProfile *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapProfile *, nap_profile_free);

/* An absolute URL path (and query) nap may put on an HTTP request line
 * as it is: '/' first, at most NAP_HEALTH_PATH_MAX bytes of letters,
 * digits and -._~!$&'()*+,;=:@/?, and %XX escapes (two hex digits). No
 * blank, control character, '#', '\\' or byte above 0x7f. */
bool nap_health_path_is_valid(const char *s) _pure_;
/* The rule above, for messages (a format string: "%%" for "%"). */
#define NAP_HEALTH_PATH_RULE \
        "an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %%XX escapes, at most 255 bytes"

/* The profile's HealthPath=, or NULL when it has none. Borrowed. */
const char *nap_profile_health_path(const NapProfile *p);

/* An MPI app's Procfile: its mpi process (a profile of the command:
 * parameters, defaults, substitution), its build process (NULL: none) and
 * rank counts. Borrowed. NULL/0 for other apps. */
bool nap_profile_is_mpi(const NapProfile *p) _pure_;
const NapProfile *nap_profile_mpi(const NapProfile *p) _pure_;
const NapProfile *nap_profile_build(const NapProfile *p) _pure_;
unsigned nap_profile_mpi_ranks(const NapProfile *p) _pure_;     /* the default */
unsigned nap_profile_mpi_ranks_max(const NapProfile *p) _pure_;
/* MpiCpu= and MpiMemory= (limits filled in as the requests when not
 * given); all 0 when neither. Borrowed. */
const NapCompute *nap_profile_mpi_rank_compute(const NapProfile *p) _pure_;

/* Placeholder names in first-appearance order, once each, without "port".
 * Borrowed: valid as long as p. Never NULL (an empty strv when none). */
char *const *nap_profile_parameters(const NapProfile *p);
/* The default written as {name=default}, or NULL. Borrowed. */
const char *nap_profile_default(const NapProfile *p, const char *name);

/* Parameter values: "k=v,k=v" (the seed's para_str) or set one by one
 * (a varlink/D-Bus map). In the string form "\," is a literal comma and
 * "\\" a literal backslash; keys are placeholder names; a key given twice
 * is an error; size is the string's length, so an embedded NUL is seen and
 * refused. */
typedef struct NapParams NapParams; /* opaque */

int nap_params_new(NapParams **ret);
int nap_params_parse(const char *s, size_t size, NapParams **ret, NapError *e);
NapParams *nap_params_free(NapParams *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapParams *, nap_params_free);
int nap_params_set(NapParams *p, const char *key, const char *value, NapError *e);
size_t nap_params_size(const NapParams *p);
/* i-th key/value in insertion order; NULL past the end. */
const char *nap_params_key(const NapParams *p, size_t i);
const char *nap_params_value(const NapParams *p, size_t i);
const char *nap_params_get(const NapParams *p, const char *key);

/* Fills the placeholders: values from params, else the profile's default;
 * port for {port}/$PORT. Unknown keys in params, a missing value, "port"
 * given as a parameter, or a bad value are NAP_ERROR_INVALID_PARAMETER
 * naming the parameter. ret_values (optional) gets the value used for
 * every parameter, in nap_profile_parameters() order. */
int nap_profile_substitute(const NapProfile *p, const NapParams *params, unsigned port,
                           char ***ret_argv, NapParams **ret_values, NapError *e);

/* argv as one profile command line that parses back to the same argv:
 * words quoted where needed, braces doubled. NULL on OOM. */
char *nap_profile_format_command(char *const *argv);
