/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl web: sign-in tokens of nap-web (napctl(1) "web", nap-web(8),
 * lib/model/web-auth.h).
 *   napctl web token [USER]   make USER's token (default: the caller's
 *                             login name), print it once; the old one and
 *                             every session signed in with it stop working
 *   napctl web revoke [USER]  remove USER's token (and so their sessions)
 * Only root or the user may; the token files are in Root=/web/tokens.
 * args is the NULL-terminated argv after the verb. Errors go into e. */

#include <stdbool.h>

#include "ops/ops.h"

int verb_web_token(NapContext *c, char **args, bool json, NapError *e);
int verb_web_revoke(NapContext *c, char **args, bool json, NapError *e);
