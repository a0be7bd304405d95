/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/hex.h"
#include "base/sha256.h"
#include "model/state.h"
#include "model/web-auth.h"

#define TOKEN_FILE_MAX 256

static bool is_lower_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return s[n] == '\0';
}

bool nap_web_secret_equal(const char *a, const char *b) {
        size_t n = strlen(a);
        unsigned char d = 0;
        if (n != strlen(b))
                return false;
        for (size_t i = 0; i < n; i++)
                d |= (unsigned char) a[i] ^ (unsigned char) b[i];
        return d == 0;
}

static int random_bytes(void *p, size_t n) {
        ssize_t k = getrandom(p, n, 0);
        if (k < 0)
                return -errno;
        return (size_t) k == n ? 0 : -EIO;
}

static void token_hash(const char *token, char out[static NAP_WEB_SECRET_HEX + 1]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        sha256(token, strlen(token), d);
        hex_encode(d, sizeof d, out);
}

/* ---- tokens ------------------------------------------------------------ */

static int user_checked(const char *user, NapError *e) {
        if (!nap_user_is_valid(user))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "Invalid user name: must match [a-z][a-z0-9-]{0,31}");
        return 0;
}

int nap_web_token_create(const NapConfig *c, const char *user, char ret[static NAP_WEB_TOKEN_MAX], NapError *e) {
        uint8_t secret[NAP_WEB_SECRET_HEX / 2];
        char token[NAP_WEB_TOKEN_MAX], hash[NAP_WEB_SECRET_HEX + 1];
        int r = user_checked(user, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *dir = nap_state_web_tokens_dir(c), *path = nap_state_web_token_file(c, user);
        if (!dir || !path)
                return nap_error_errno(e, -ENOMEM, "Failed to make a token");
        r = random_bytes(secret, sizeof secret);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to make a token");
        int k = snprintf(token, sizeof token, "%s.", user);
        hex_encode(secret, sizeof secret, token + k);
        token_hash(token, hash);
        hash[NAP_WEB_SECRET_HEX] = '\n'; /* the file's one line, its NUL not written */
        r = mkdir_p(dir, 0700);
        if (r >= 0)
                r = write_file_atomic(path, hash, sizeof hash, 0600);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to write %s", path);
        memcpy(ret, token, sizeof token);
        return 0;
}

int nap_web_token_revoke(const NapConfig *c, const char *user, NapError *e) {
        int r = user_checked(user, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = nap_state_web_token_file(c, user);
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to revoke the token");
        if (unlink(path) < 0)
                return errno == ENOENT ? nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOENT, "%s has no nap-web token", user)
                                       : nap_error_errno(e, -errno, "Failed to remove %s", path);
        return fsync_directory_of(path) < 0 ? nap_error_errno(e, -EIO, "Failed to sync %s", path) : 0;
}

/* The user's stored token hash (64 hex digits), or -ENOENT. */
static int stored_hash(const NapConfig *c, const char *user, char ret[static NAP_WEB_SECRET_HEX + 1]) {
        _cleanup_free_ char *path = nap_state_web_token_file(c, user), *text = NULL;
        size_t n;
        if (!path)
                return -ENOMEM;
        int r = read_full_file(path, TOKEN_FILE_MAX, &text, &n);
        if (r < 0)
                return r;
        if (n != NAP_WEB_SECRET_HEX + 1 || text[NAP_WEB_SECRET_HEX] != '\n')
                return -EBADMSG;
        text[NAP_WEB_SECRET_HEX] = '\0';
        if (!is_lower_hex(text, NAP_WEB_SECRET_HEX))
                return -EBADMSG;
        memcpy(ret, text, NAP_WEB_SECRET_HEX + 1);
        return 0;
}

static int denied(NapError *e, const char *what) {
        return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES, "%s", what);
}

int nap_web_token_check(const NapConfig *c, const char *token, char ret_user[static NAP_USER_MAX + 1], NapError *e) {
        char user[NAP_USER_MAX + 1], given[NAP_WEB_SECRET_HEX + 1], stored[NAP_WEB_SECRET_HEX + 1];
        const char *dot = token ? strchr(token, '.') : NULL;
        if (!dot || (size_t) (dot - token) > NAP_USER_MAX || strlen(dot + 1) != NAP_WEB_SECRET_HEX)
                return denied(e, "This is not a valid nap-web token");
        memcpy(user, token, dot - token);
        user[dot - token] = '\0';
        if (!nap_user_is_valid(user) || !is_lower_hex(dot + 1, NAP_WEB_SECRET_HEX))
                return denied(e, "This is not a valid nap-web token");
        token_hash(token, given);
        int r = stored_hash(c, user, stored);
        if (r < 0 && r != -ENOENT && r != -EBADMSG)
                return nap_error_errno(e, r, "Failed to read the token of %s", user);
        if (r < 0 || !nap_web_secret_equal(given, stored))
                return denied(e, "This is not a valid nap-web token");
        memcpy(ret_user, user, sizeof user);
        return 0;
}

/* ---- the key ----------------------------------------------------------- */

static int key_read(const char *path, NapWebKey *ret) {
        _cleanup_free_ char *data = NULL;
        size_t n;
        int r = read_full_file(path, sizeof ret->bytes + 1, &data, &n);
        if (r < 0)
                return r;
        if (n != sizeof ret->bytes)
                return -EBADMSG;
        memcpy(ret->bytes, data, sizeof ret->bytes);
        return 0;
}

int nap_web_key_load(const NapConfig *c, NapWebKey *ret, NapError *e) {
        _cleanup_free_ char *path = nap_state_web_key_file(c), *dir = path_join(c->root, "web", NULL);
        NapWebKey k;
        if (!path || !dir)
                return nap_error_errno(e, -ENOMEM, "Failed to load nap-web's key");
        int r = key_read(path, ret);
        if (r != -ENOENT)
                return r < 0 ? nap_error_errno(e, r, "Failed to read %s", path) : 0;
        r = random_bytes(k.bytes, sizeof k.bytes);
        if (r >= 0)
                r = mkdir_p(dir, 0700);
        if (r >= 0)
                r = write_file_atomic(path, k.bytes, sizeof k.bytes, 0600);
        if (r >= 0)
                r = key_read(path, ret);
        return r < 0 ? nap_error_errno(e, r, "Failed to make %s", path) : 0;
}

/* ---- sessions ---------------------------------------------------------- */

static void mac(const NapWebKey *k, const char *label, const char *text, char out[static NAP_WEB_SECRET_HEX + 1]) {
        uint8_t d[SHA256_DIGEST_SIZE];
        size_t nl = strlen(label), nt = strlen(text);
        _cleanup_free_ char *m = malloc(nl + 1 + nt);
        if (!m) { /* a MAC nobody can match */
                memset(out, 'x', NAP_WEB_SECRET_HEX);
                out[NAP_WEB_SECRET_HEX] = '\0';
                return;
        }
        memcpy(m, label, nl);
        m[nl] = '\n';
        memcpy(m + nl + 1, text, nt);
        hmac_sha256(k->bytes, sizeof k->bytes, m, nl + 1 + nt, d);
        hex_encode(d, sizeof d, out);
}

int nap_web_session_parse(const char *value, NapWebSession *ret) {
        const char *dot1 = value ? strchr(value, '.') : NULL, *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
        NapWebSession s = {};
        if (!dot2 || (size_t) (dot1 - value) > NAP_USER_MAX || dot2 - dot1 - 1 < 1 || dot2 - dot1 - 1 > 20)
                return -EINVAL;
        memcpy(s.user, value, dot1 - value);
        if (!nap_user_is_valid(s.user) || (dot1[1] == '0' && dot2 - dot1 - 1 > 1))
                return -EINVAL;
        for (const char *p = dot1 + 1; p < dot2; p++) {
                if (*p < '0' || *p > '9' || s.expires > (UINT64_MAX - 9) / 10)
                        return -EINVAL;
                s.expires = s.expires * 10 + (uint64_t) (*p - '0');
        }
        if (strlen(dot2 + 1) != NAP_WEB_SECRET_HEX || !is_lower_hex(dot2 + 1, NAP_WEB_SECRET_HEX))
                return -EINVAL;
        memcpy(s.mac, dot2 + 1, NAP_WEB_SECRET_HEX + 1);
        *ret = s;
        return 0;
}

/* What a session's MAC covers: user, expiry and the user's token hash. */
static int session_mac(const NapWebKey *k, const NapConfig *c, const char *user, uint64_t expires,
                       char out[static NAP_WEB_SECRET_HEX + 1]) {
        char stored[NAP_WEB_SECRET_HEX + 1], text[NAP_USER_MAX + 24 + NAP_WEB_SECRET_HEX];
        int r = stored_hash(c, user, stored);
        if (r < 0)
                return r;
        snprintf(text, sizeof text, "%s\n%" PRIu64 "\n%s", user, expires, stored);
        mac(k, "nap-web-session", text, out);
        return 0;
}

int nap_web_session_make(const NapWebKey *k, const NapConfig *c, const char *user, uint64_t expires,
                         char ret[static NAP_WEB_SESSION_MAX], NapError *e) {
        char m[NAP_WEB_SECRET_HEX + 1];
        int r = user_checked(user, e);
        if (r < 0)
                return r;
        r = session_mac(k, c, user, expires, m);
        if (r < 0)
                return r == -ENOENT || r == -EBADMSG ? denied(e, "The token was revoked")
                                                     : nap_error_errno(e, r, "Failed to read the token of %s", user);
        snprintf(ret, NAP_WEB_SESSION_MAX, "%s.%" PRIu64 ".%s", user, expires, m);
        return 0;
}

int nap_web_session_check(const NapWebKey *k, const NapConfig *c, const char *value, uint64_t now,
                          char ret_user[static NAP_USER_MAX + 1], NapError *e) {
        NapWebSession s;
        char m[NAP_WEB_SECRET_HEX + 1];
        if (nap_web_session_parse(value, &s) < 0)
                return denied(e, "Not signed in");
        if (s.expires <= now)
                return denied(e, "The session has expired: sign in again");
        int r = session_mac(k, c, s.user, s.expires, m);
        if (r < 0 && r != -ENOENT && r != -EBADMSG)
                return nap_error_errno(e, r, "Failed to read the token of %s", s.user);
        if (r < 0 || !nap_web_secret_equal(m, s.mac))
                return denied(e, "Not signed in (the session is not valid any more)");
        memcpy(ret_user, s.user, sizeof s.user);
        return 0;
}

void nap_web_csrf(const NapWebKey *k, const char *session, char ret[static NAP_WEB_CSRF_MAX]) {
        mac(k, "nap-web-csrf", session, ret);
}

bool nap_web_csrf_valid(const NapWebKey *k, const char *session, const char *given) {
        char want[NAP_WEB_CSRF_MAX];
        if (!session || !given)
                return false;
        nap_web_csrf(k, session, want);
        return nap_web_secret_equal(want, given);
}
