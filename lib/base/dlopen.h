/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libgit2 and libcurl, loaded with dlopen() on first use (as systemd loads
 * its optional libraries), so that no nap binary has them as DT_NEEDED.
 * Why: the two and the ~40 libraries they pull in (gnutls, krb5, ldap,
 * ssh2, nghttp2...) cost ~5 ms at every process start, paid by every napctl
 * command and by each socket-activated nap-managerd although most never
 * fetch or talk to etcd (hyperfine, napctl --version: 7.0 ms linked, 1.3 ms
 * with dlopen; nap-managerd --version: 6.3 ms, 1.2 ms).
 *
 * Call nap_dlopen_libgit2()/nap_dlopen_libcurl() (nap_libgit2_ready() and
 * etcd_client_new() do) before using any sym_ pointer. The sonames are the
 * ones the build found (NAP_LIBGIT2_SONAME, NAP_LIBCURL_SONAME in
 * nap-config.h). Not thread-safe: the first call must not race another. */

#include <curl/curl.h>
#include <git2.h>

#include "base/error.h"

/* Every symbol nap uses, each written once: the lists declare the sym_
 * pointers here and name what dlopen.c resolves. A call missing from a list
 * does not compile (no sym_ pointer), so nothing is left unresolved. */
#define NAP_LIBGIT2_SYMBOLS(X)                          \
        X(git_checkout_options_init)                    \
        X(git_checkout_tree)                            \
        X(git_clone)                                    \
        X(git_clone_options_init)                       \
        X(git_commit_free)                              \
        X(git_commit_lookup)                            \
        X(git_error_last)                               \
        X(git_index_free)                               \
        X(git_index_new)                                \
        X(git_libgit2_init)                             \
        X(git_libgit2_opts)                             \
        X(git_object_free)                              \
        X(git_object_id)                                \
        X(git_object_peel)                              \
        X(git_oid_fmt)                                  \
        X(git_oid_fromstr)                              \
        X(git_reference_is_valid_name)                  \
        X(git_reference_name_to_id)                     \
        X(git_remote_connect)                           \
        X(git_remote_create_detached)                   \
        X(git_remote_free)                              \
        X(git_remote_init_callbacks)                    \
        X(git_remote_ls)                                \
        X(git_repository_free)                          \
        X(git_repository_init_ext)                      \
        X(git_repository_init_options_init)             \
        X(git_repository_open_ext)                      \
        X(git_revparse_single)

/* curl_easy_setopt()/curl_easy_getinfo() are also macros that type-check
 * their arguments with gcc; the sym_ calls bypass that check. */
#define NAP_LIBCURL_SYMBOLS(X)                          \
        X(curl_easy_cleanup)                            \
        X(curl_easy_getinfo)                            \
        X(curl_easy_init)                               \
        X(curl_easy_perform)                            \
        X(curl_easy_setopt)                             \
        X(curl_easy_strerror)                           \
        X(curl_free)                                    \
        X(curl_global_init)                             \
        X(curl_slist_append)                            \
        X(curl_slist_free_all)                          \
        X(curl_url)                                     \
        X(curl_url_cleanup)                             \
        X(curl_url_get)                                 \
        X(curl_url_set)

#define NAP_DLSYM_PROTOTYPE(symbol) extern typeof(symbol) *sym_##symbol;
NAP_LIBGIT2_SYMBOLS(NAP_DLSYM_PROTOTYPE)
NAP_LIBCURL_SYMBOLS(NAP_DLSYM_PROTOTYPE)

/* Load the library and resolve all of its sym_ pointers, or none: on
 * failure every one stays NULL and e says NotAvailable with dlerror()'s
 * reason. Idempotent; a failed load is tried again on the next call. */
int nap_dlopen_libgit2(NapError *e);
int nap_dlopen_libcurl(NapError *e);
