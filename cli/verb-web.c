/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "model/auth.h"
#include "model/web-auth.h"
#include "napctl-output.h"
#include "verb-web.h"

/* USER given, or the caller's login name; checked against the caller's
 * uid as a change of USER's apps would be. */
static int web_user(char **args, char ret[static NAP_USER_MAX + 1], NapError *e) {
        if (args[0])
                snprintf(ret, NAP_USER_MAX + 1, "%s", args[0]);
        else if (nap_auth_uid_name(geteuid(), ret, NAP_USER_MAX + 1) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Your uid has no login name that is a nap user: name the user");
        if (!nap_user_is_valid(ret))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid user name '%.64s': must match [a-z][a-z0-9-]{0,31}", ret);
        return nap_auth_check_user(geteuid(), ret, NAP_ACCESS_WRITE, e);
}

int verb_web_token(NapContext *c, char **args, bool json, NapError *e) {
        char user[NAP_USER_MAX + 1], token[NAP_WEB_TOKEN_MAX];
        int r = web_user(args, user, e);
        if (r >= 0)
                r = nap_web_token_create(c->config, user, token, e);
        if (r < 0)
                return r;
        if (json)
                return output_json(json_pack("{s:s, s:s}", "user", user, "token", token));
        printf("%s\n", token);
        if (isatty(STDOUT_FILENO))
                fprintf(stderr, "napctl: the token of %s; it replaces any earlier one and is not shown again\n", user);
        return 0;
}

int verb_web_revoke(NapContext *c, char **args, bool json, NapError *e) {
        char user[NAP_USER_MAX + 1];
        int r = web_user(args, user, e);
        if (r >= 0)
                r = nap_web_token_revoke(c->config, user, e);
        if (r < 0)
                return r;
        if (json)
                return output_json(json_pack("{s:s, s:b}", "user", user, "revoked", true));
        printf("Revoked the nap-web token of %s\n", user);
        return 0;
}
