/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* profile and Procfile parser, substitution and formatting. Each input is
 * read both ways. Never crashes, leaks or reads past size; and for what it
 * accepts:
 *  - the parameter names are valid, distinct, not "port", at most 64;
 *  - with a value for every parameter and a port, substitution succeeds
 *    and no argument holds a control character;
 *  - format(argv) parses back to a profile without parameters whose
 *    substitution gives argv again (the round trip napctl cat relies on);
 *  - an MPI app (Procfile "mpi:"): all of that for its mpi process, which
 *    has no "np" and no port; 1 <= MpiRanks= <= MpiRanksMax= <= the
 *    limit; a build process without parameters substitutes to a command;
 *    the app itself refuses to substitute (start-mpi only). */

#include <stdint.h>

#include "model/profile.h"
#include "base/strv.h"

static void check_names(const NapProfile *p) {
        char *const *names = nap_profile_parameters(p);
        if (!names || strv_length(names) > NAP_PARAMS_MAX)
                abort();
        for (size_t i = 0; names[i]; i++) {
                if (!*names[i] || strlen(names[i]) > NAP_PARAM_NAME_MAX || streq(names[i], "port"))
                        abort();
                for (size_t j = 0; j < i; j++)
                        if (streq(names[i], names[j]))
                                abort();
        }
}

static void check_round_trip(char **argv) {
        _cleanup_free_ char *line = nap_profile_format_command(argv);
        if (!line)
                return;
        _cleanup_(nap_profile_freep) NapProfile *q = NULL;
        _cleanup_strv_free_ char **back = NULL;
        NapError e = NAP_ERROR_NULL;
        int r = nap_profile_parse(line, strlen(line), NAP_PROFILE_FORMAT_PROFILE, &q, &e);
        if (r == -ENOMEM)
                return;
        if (r < 0 || nap_profile_parameters(q)[0])
                abort();
        r = nap_profile_substitute(q, NULL, 0, &back, NULL, &e);
        if (r == -ENOMEM)
                return;
        if (r < 0 || !strv_equal(argv, back))
                abort();
}

static void check_substitution(const NapProfile *p) {
        _cleanup_(nap_params_freep) NapParams *given = NULL, *values = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        char *const *names = nap_profile_parameters(p);

        if (nap_params_new(&given) < 0)
                return;
        /* Leave every other defaulted parameter to its default. */
        for (size_t i = 0; names[i]; i++)
                if ((i % 2 == 0 || !nap_profile_default(p, names[i])) &&
                    nap_params_set(given, names[i], i % 3 ? "v a'l\"ue;$(x)" : "", NULL) < 0)
                        return;
        int r = nap_profile_substitute(p, given, 8080, &argv, &values, NULL);
        if (r == -ENOMEM)
                return;
        if (r < 0 || !argv[0] || nap_params_size(values) != strv_length(names))
                abort();
        STRV_FOREACH(w, argv)
                for (const char *c = *w; *c; c++)
                        if ((unsigned char) *c < 0x20 || *c == 0x7f)
                                abort();
        check_round_trip(argv);
}

static void check_mpi(const NapProfile *p) {
        const NapProfile *mpi = nap_profile_mpi(p), *build = nap_profile_build(p);
        unsigned ranks = nap_profile_mpi_ranks(p), max = nap_profile_mpi_ranks_max(p);
        if (ranks < 1 || ranks > max || max > NAP_MPI_RANKS_LIMIT)
                abort();
        if (nap_profile_substitute(p, NULL, 8080, NULL, NULL, NULL) != -EINVAL)
                abort();
        check_names(mpi);
        if (strv_contains(nap_profile_parameters(mpi), NAP_MPI_RANKS_PARAM))
                abort();
        check_substitution(mpi);
        if (!build)
                return;
        _cleanup_strv_free_ char **argv = NULL;
        int r = nap_profile_substitute(build, NULL, 0, &argv, NULL, NULL);
        if (r != -ENOMEM && (r < 0 || nap_profile_parameters(build)[0] || !argv[0]))
                abort();
}

static void one(const uint8_t *data, size_t size, NapProfileFormat format) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        NapError e = NAP_ERROR_NULL;

        int r = nap_profile_parse((const char *) data, size, format, &p, &e);
        if (r < 0) {
                if (r != -ENOMEM && (e.kind != NAP_ERROR_INVALID_PROFILE || !e.message[0] || p))
                        abort();
                return;
        }
        if (nap_profile_is_mpi(p)) {
                check_mpi(p);
                return;
        }
        check_names(p);
        check_substitution(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        one(data, size, NAP_PROFILE_FORMAT_PROFILE);
        one(data, size, NAP_PROFILE_FORMAT_PROCFILE);
        return 0;
}
