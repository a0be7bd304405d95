/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dlfcn.h>

#include "base/dlopen.h"
#include "nap-config.h"

#define NAP_DLSYM_DEFINE(symbol) typeof(symbol) *sym_##symbol = NULL;
NAP_LIBGIT2_SYMBOLS(NAP_DLSYM_DEFINE)
NAP_LIBCURL_SYMBOLS(NAP_DLSYM_DEFINE)

typedef struct DlSym {
        void **ptr;
        const char *name;
} DlSym;

#define NAP_DLSYM_ARG(symbol) { (void **) &sym_##symbol, #symbol },
static const DlSym libgit2_syms[] = { NAP_LIBGIT2_SYMBOLS(NAP_DLSYM_ARG) };
static const DlSym libcurl_syms[] = { NAP_LIBCURL_SYMBOLS(NAP_DLSYM_ARG) };

static void *libgit2_dl = NULL, *libcurl_dl = NULL;

static void syms_clear(const DlSym *syms, size_t n) {
        for (size_t i = 0; i < n; i++)
                *syms[i].ptr = NULL;
}

/* RTLD_NOW: a library whose own dependencies do not resolve fails here,
 * with dlerror()'s reason, not later in the middle of a deploy.
 * RTLD_NODELETE: never unmapped, as if linked: libgit2 and gnutls register
 * thread-key destructors and atexit handlers that must find their code.
 * RTLD_LOCAL (the default): their symbols do not leak into other lookups. */
static int dlopen_many(void **handle, const char *soname, const char *needed_for,
                       const DlSym *syms, size_t n, NapError *e) {
        if (*handle)
                return 0;

        void *dl = dlopen(soname, RTLD_NOW | RTLD_NODELETE);
        if (!dl) {
                const char *why = dlerror();
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "%s could not be loaded: %s; %s",
                                     soname, why ?: "unknown error", needed_for);
        }
        for (size_t i = 0; i < n; i++) {
                *syms[i].ptr = dlsym(dl, syms[i].name);
                if (*syms[i].ptr)
                        continue;
                /* dlerror()'s text lives until the next dl call: copy it first. */
                const char *why = dlerror();
                int r = nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EOPNOTSUPP, "%s lacks %s: %s; %s",
                                      soname, syms[i].name, why ?: "unknown error", needed_for);
                syms_clear(syms, n);
                (void) dlclose(dl);
                return r;
        }
        *handle = dl;
        return 0;
}

int nap_dlopen_libgit2(NapError *e) {
        return dlopen_many(&libgit2_dl, NAP_LIBGIT2_SONAME, "deploying and pushing apps needs libgit2",
                           libgit2_syms, ELEMENTSOF(libgit2_syms), e);
}

int nap_dlopen_libcurl(NapError *e) {
        return dlopen_many(&libcurl_dl, NAP_LIBCURL_SONAME, "talking to etcd needs libcurl",
                           libcurl_syms, ELEMENTSOF(libcurl_syms), e);
}
