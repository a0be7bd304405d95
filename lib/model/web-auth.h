/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-web's sign-in (nap-web(8)): per-user tokens and session cookies.
 *
 * A token is "USER.HEX" (64 hex digits from getrandom(2)); only its
 * SHA-256 is kept, in ROOT/web/tokens/USER (model/state.h), one per user:
 * a new token replaces the old one. napctl web token makes them; nap-web
 * checks them.
 *
 * A session cookie is "USER.EXPIRES.MAC": EXPIRES in seconds since the
 * epoch, MAC the HMAC-SHA-256 (key: ROOT/web/session.key) of the user,
 * EXPIRES and the user's current token hash. So a cookie needs no server
 * state (nap-web exits when idle and forgets nothing), cannot be made for
 * another user without the key, and dies with the token it came from
 * (a new token, or none, ends every session of that user). The CSRF token
 * of a session is the HMAC of its cookie value under another label.
 *
 * Every comparison of a secret is in constant time. Nothing logs. */

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "model/config.h"
#include "model/names.h"

#define NAP_WEB_SECRET_HEX 64
/* "USER." + 64 hex digits + NUL */
#define NAP_WEB_TOKEN_MAX (NAP_USER_MAX + 1 + NAP_WEB_SECRET_HEX + 1)
/* "USER.EXPIRES.MAC" + NUL */
#define NAP_WEB_SESSION_MAX (NAP_USER_MAX + 1 + 20 + 1 + NAP_WEB_SECRET_HEX + 1)
#define NAP_WEB_CSRF_MAX (NAP_WEB_SECRET_HEX + 1)

/* A new token for user into ret; its hash replaces the user's old one. */
int nap_web_token_create(const NapConfig *c, const char *user, char ret[static NAP_WEB_TOKEN_MAX], NapError *e);
/* The user's token is removed (and so their sessions end). -ENOENT with
 * NAP_ERROR_NOT_AVAILABLE when there was none. */
int nap_web_token_revoke(const NapConfig *c, const char *user, NapError *e);
/* The user whose current token is token: 0 and ret_user set, or -EACCES
 * with NAP_ERROR_PERMISSION_DENIED for anything else (malformed, unknown
 * user, revoked, wrong), with one message for all of them. */
int nap_web_token_check(const NapConfig *c, const char *token, char ret_user[static NAP_USER_MAX + 1], NapError *e);

typedef struct NapWebKey {
        uint8_t bytes[32];
} NapWebKey;

/* ROOT/web/session.key, made (0600) when missing. */
int nap_web_key_load(const NapConfig *c, NapWebKey *ret, NapError *e);

/* A cookie value taken apart, nothing checked but its form. */
typedef struct NapWebSession {
        char user[NAP_USER_MAX + 1];
        uint64_t expires;
        char mac[NAP_WEB_SECRET_HEX + 1];
} NapWebSession;

/* -EINVAL unless value is USER.EXPIRES.MAC with a valid user name, a
 * decimal EXPIRES without leading zeros and 64 lowercase hex digits. */
int nap_web_session_parse(const char *value, NapWebSession *ret);
/* The cookie value of a session of user until expires (seconds). */
int nap_web_session_make(const NapWebKey *k, const NapConfig *c, const char *user, uint64_t expires,
                         char ret[static NAP_WEB_SESSION_MAX], NapError *e);
/* The user of a cookie value still valid at now (seconds): 0, or -EACCES
 * with NAP_ERROR_PERMISSION_DENIED (malformed, expired, forged, or the
 * token it came from replaced or revoked). */
int nap_web_session_check(const NapWebKey *k, const NapConfig *c, const char *value, uint64_t now,
                          char ret_user[static NAP_USER_MAX + 1], NapError *e);

/* The CSRF token of a session (its cookie value), and whether given is it. */
void nap_web_csrf(const NapWebKey *k, const char *session, char ret[static NAP_WEB_CSRF_MAX]);
bool nap_web_csrf_valid(const NapWebKey *k, const char *session, const char *given);

/* Constant-time equality of two strings of the same length (false when
 * the lengths differ). */
bool nap_web_secret_equal(const char *a, const char *b);
