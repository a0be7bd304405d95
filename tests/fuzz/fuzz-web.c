/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What nap-web parses itself from a request (libmicrohttpd splits the
 * request; helpers/nap-web/web-request.h and the session cookie of
 * lib/model/web-auth.h take it from there). The first byte picks the
 * parser, the rest is its input:
 *   0  a path, as GET and as POST: a call's method name is a valid name
 *   1  a call's JSON body: an object, or refused
 *   2  a number of a query: within its bound, and printed back the same
 *   3  a session cookie value: accepted ones print back byte for byte
 *   4  the user part of a typed token: empty or a valid user name; the
 *      same bytes as a Content-Type: JSON only when they say so
 *   5  the sign-in rate limit driven by the bytes: never over its limits
 * Never crashes, leaks or reads past size. */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../helpers/nap-web/web-request.h"
#include "model/web-auth.h"

static void fuzz_route(const char *s) {
        char name[WEB_METHOD_NAME_MAX];
        const char *methods[] = { "GET", "POST", "PUT" };
        for (size_t i = 0; i < 3; i++) {
                WebRoute r = web_route_parse(methods[i], s, name);
                if (r < 0 || r >= _WEB_ROUTE_MAX)
                        abort();
                if (r == WEB_ROUTE_CALL && (strlen(name) == 0 || !strstr(s, name) || name[0] < 'A' || name[0] > 'Z'))
                        abort();
        }
}

static void fuzz_body(const char *s, size_t n) {
        json_t *j = NULL;
        if (web_body_object(s, n, &j, NULL) >= 0) {
                if (!json_is_object(j))
                        abort();
                json_decref(j);
        }
}

static void fuzz_uint(const char *s) {
        unsigned v;
        char back[32];
        if (web_query_uint(s, 1000, 7, &v) < 0)
                return;
        if (v > 1000)
                abort();
        snprintf(back, sizeof back, "%u", v);
        if (*s && !streq(back, s))
                abort();
}

static void fuzz_session(const char *s) {
        NapWebSession p;
        char back[NAP_WEB_SESSION_MAX + 32];
        if (nap_web_session_parse(s, &p) < 0)
                return;
        if (!nap_user_is_valid(p.user) || strlen(p.mac) != NAP_WEB_SECRET_HEX)
                abort();
        snprintf(back, sizeof back, "%s.%" PRIu64 ".%s", p.user, p.expires, p.mac);
        if (!streq(back, s))
                abort();
}

static void fuzz_token_user(const char *s) {
        char user[NAP_USER_MAX + 1];
        if (web_content_type_is_json(s) && strncasecmp(s, "application/json", 16) != 0)
                abort();
        web_token_user(s, user);
        if (user[0] && (!nap_user_is_valid(user) || strncmp(s, user, strlen(user)) != 0 || s[strlen(user)] != '.'))
                abort();
}

/* Each byte: a user (low 2 bits) failing or asking, at a time moving on
 * by the high bits. Asking after the per-user or total limit must wait. */
static void fuzz_rate_limit(const uint8_t *p, size_t n) {
        static const char *const users[] = { "", "alice", "bob", "carol" };
        WebRateLimit *l = calloc(1, sizeof *l);
        unsigned counts[4] = {}, total = 0;
        uint64_t t = 5 * WEB_SIGNIN_WINDOW_USEC, window = t / WEB_SIGNIN_WINDOW_USEC;
        if (!l)
                return;
        for (size_t i = 0; i < n; i++) {
                t += (uint64_t) (p[i] >> 3) * 1000000ULL;
                if (t / WEB_SIGNIN_WINDOW_USEC != window) {
                        window = t / WEB_SIGNIN_WINDOW_USEC;
                        memset(counts, 0, sizeof counts);
                        total = 0;
                }
                const char *u = users[p[i] & 3];
                bool over = counts[p[i] & 3] >= WEB_SIGNIN_FAILURES_PER_USER || total >= WEB_SIGNIN_FAILURES_TOTAL;
                unsigned wait = web_rate_limit_wait(l, u, t);
                if (over != (wait > 0) || wait > 60)
                        abort();
                if (p[i] & 4 && !wait) {
                        web_rate_limit_failed(l, u, t);
                        counts[p[i] & 3]++;
                        total++;
                }
        }
        free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > 70 * 1024)
                return 0;
        char *s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        switch (data[0] % 6) {
        case 0: fuzz_route(s); break;
        case 1: fuzz_body((const char *) data + 1, size - 1); break;
        case 2: fuzz_uint(s); break;
        case 3: fuzz_session(s); break;
        case 4: fuzz_token_user(s); break;
        default: fuzz_rate_limit(data + 1, size - 1); break;
        }
        free(s);
        return 0;
}
