/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>
#include <strings.h>

#include "base/macro.h"
#include "web-request.h"

static const struct {
        const char *http_method, *path;
        WebRoute route;
} routes[] = {
        { "GET", "/", WEB_ROUTE_PAGE },
        { "GET", "/index.html", WEB_ROUTE_PAGE },
        { "GET", "/app.js", WEB_ROUTE_SCRIPT },
        { "GET", "/style.css", WEB_ROUTE_STYLE },
        { "POST", "/api/signin", WEB_ROUTE_SIGNIN },
        { "POST", "/api/signout", WEB_ROUTE_SIGNOUT },
        { "GET", "/api/session", WEB_ROUTE_SESSION },
        { "POST", "/api/stats", WEB_ROUTE_STATS },
        { "GET", "/api/follow", WEB_ROUTE_FOLLOW },
        { "POST", "/api/queue/list", WEB_ROUTE_QUEUE_LIST },
        { "POST", "/api/queue/cancel", WEB_ROUTE_QUEUE_CANCEL },
        { "POST", "/api/queue/move", WEB_ROUTE_QUEUE_MOVE },
};

static bool method_name_is_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n >= WEB_METHOD_NAME_MAX || s[0] < 'A' || s[0] > 'Z')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

WebRoute web_route_parse(const char *http_method, const char *path, char ret_name[static WEB_METHOD_NAME_MAX]) {
        bool known = false;
        ret_name[0] = '\0';
        if (!http_method || !path)
                return WEB_ROUTE_NOT_FOUND;
        const char *name = startswith(path, "/api/call/");
        if (name) {
                if (!method_name_is_valid(name))
                        return WEB_ROUTE_NOT_FOUND;
                if (!streq(http_method, "POST"))
                        return WEB_ROUTE_BAD_METHOD;
                snprintf(ret_name, WEB_METHOD_NAME_MAX, "%s", name);
                return WEB_ROUTE_CALL;
        }
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!streq(routes[i].path, path))
                        continue;
                if (streq(routes[i].http_method, http_method))
                        return routes[i].route;
                known = true;
        }
        return known ? WEB_ROUTE_BAD_METHOD : WEB_ROUTE_NOT_FOUND;
}

bool web_route_mutates(WebRoute r) {
        /* A sign-in has no session yet: the rate limit and the token guard
         * it. Stats and the queue's list are reads, but POSTs: the CSRF
         * token costs nothing. */
        return r == WEB_ROUTE_SIGNOUT || r == WEB_ROUTE_CALL || r == WEB_ROUTE_STATS || r == WEB_ROUTE_QUEUE_LIST ||
               r == WEB_ROUTE_QUEUE_CANCEL || r == WEB_ROUTE_QUEUE_MOVE;
}

int web_body_object(const char *body, size_t n, json_t **ret, NapError *e) {
        json_error_t error;
        if (n > WEB_BODY_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -E2BIG, "The request is larger than %u bytes",
                                     WEB_BODY_MAX);
        if (n == 0) {
                *ret = json_object();
                return *ret ? 0 : nap_error_errno(e, -ENOMEM, "Failed to read the request");
        }
        json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &error);
        if (!j)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The request is not valid JSON: %s",
                                     error.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The request must be a JSON object");
        }
        *ret = j;
        return 0;
}

bool web_content_type_is_json(const char *type) {
        static const char json[] = "application/json";
        if (!type || strncasecmp(type, json, strlen(json)) != 0)
                return false;
        type += strlen(json);
        while (*type == ' ' || *type == '\t')
                type++;
        return *type == '\0' || *type == ';';
}

int web_query_uint(const char *s, unsigned max, unsigned def, unsigned *ret) {
        unsigned long long v = 0;
        if (isempty(s)) {
                *ret = def;
                return 0;
        }
        if (s[0] == '0' && s[1])
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*p - '0');
                if (v > max)
                        return -EINVAL;
        }
        *ret = (unsigned) v;
        return 0;
}

void web_token_user(const char *token, char ret[static NAP_USER_MAX + 1]) {
        const char *dot = token ? strchr(token, '.') : NULL;
        ret[0] = '\0';
        if (!dot || (size_t) (dot - token) > NAP_USER_MAX)
                return;
        memcpy(ret, token, dot - token);
        ret[dot - token] = '\0';
        if (!nap_user_is_valid(ret))
                ret[0] = '\0';
}

static uint64_t window_of(uint64_t now_usec) {
        return now_usec / WEB_SIGNIN_WINDOW_USEC;
}

static unsigned window_rest_sec(uint64_t now_usec) {
        uint64_t rest = WEB_SIGNIN_WINDOW_USEC - now_usec % WEB_SIGNIN_WINDOW_USEC;
        return (unsigned) ((rest + 999999) / 1000000);
}

/* The slot of user in this window, or NULL. */
static unsigned *user_failures(WebRateLimit *l, const char *user, uint64_t w) {
        for (size_t i = 0; i < ELEMENTSOF(l->users); i++)
                if (l->users[i].window == w && streq(l->users[i].user, user))
                        return &l->users[i].failures;
        return NULL;
}

unsigned web_rate_limit_wait(WebRateLimit *l, const char *user, uint64_t now_usec) {
        uint64_t w = window_of(now_usec);
        unsigned *f = user_failures(l, user, w);
        if ((l->window == w && l->failures >= WEB_SIGNIN_FAILURES_TOTAL) ||
            (f && *f >= WEB_SIGNIN_FAILURES_PER_USER))
                return window_rest_sec(now_usec);
        return 0;
}

void web_rate_limit_failed(WebRateLimit *l, const char *user, uint64_t now_usec) {
        uint64_t w = window_of(now_usec);
        unsigned *f = user_failures(l, user, w);
        if (l->window != w)
                l->window = w, l->failures = 0;
        l->failures++;
        if (f) {
                (*f)++;
                return;
        }
        /* A free slot: one of an older window (or never used). When every
         * slot is this window's, the total limit is what is left. */
        for (size_t i = 0; i < ELEMENTSOF(l->users); i++)
                if (l->users[i].window != w || l->users[i].failures == 0) {
                        snprintf(l->users[i].user, sizeof l->users[i].user, "%s", user);
                        l->users[i].window = w;
                        l->users[i].failures = 1;
                        return;
                }
}
