/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl keys: who may git push (napctl(1) "keys", lib/model/authkeys.h).
 *   napctl keys add USER                 the public key on stdin, one line
 *   napctl keys list [USER]
 *   napctl keys remove USER FINGERPRINT  SHA256:… as list shows it
 * args is the NULL-terminated argv after "keys" (1 to 3 words). The path
 * is AuthorizedKeys= of nap.conf; the forced command nap writes is
 * NAP_LIBEXECDIR/nap-git-shell, or $NAP_GIT_SHELL_BINARY (tests).
 * Prints the result (JSON with json); errors go into e, nothing printed. */

#include <stdbool.h>

#include "ops/ops.h"

int verb_keys(NapContext *c, char **args, bool json, NapError *e);
