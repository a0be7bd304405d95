/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "model/resources.h"

/* A decimal with at most `decimals` digits after the point, scaled by
 * 10^decimals, into *ret. No sign, no exponent, no blanks: -EINVAL;
 * beyond 2^64: -ERANGE. *end: the first character after the number. */
static int parse_decimal(const char *s, unsigned decimals, uint64_t *ret, const char **end) {
        uint64_t v = 0;
        unsigned seen = 0, fraction = 0;
        bool point = false;
        const char *p = s;

        for (; *p; p++) {
                if (*p == '.' && !point) {
                        point = true;
                        continue;
                }
                if (*p < '0' || *p > '9')
                        break;
                if (point && ++fraction > decimals)
                        return -EINVAL;
                if (v > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
                seen++;
        }
        if (seen == 0 || (point && fraction == 0))
                return -EINVAL;
        for (; fraction < decimals; fraction++) {
                if (v > UINT64_MAX / 10)
                        return -ERANGE;
                v *= 10;
        }
        *ret = v;
        *end = p;
        return 0;
}

static int amount_error(NapError *e, int r, const char *what, const char *s, const char *how) {
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r, "Invalid %s amount '%.64s': %s", what, s, how);
}

int nap_cpu_parse(const char *s, uint64_t *ret_milli, NapError *e) {
        const char *end;
        uint64_t v;

        assert(ret_milli);
        if (!s)
                return amount_error(e, -EINVAL, "CPU", "", "missing");
        /* "500m": milli-cores as a whole number; else cores, 3 decimals */
        size_t n = strlen(s);
        bool milli = n > 0 && s[n - 1] == 'm';
        int r = parse_decimal(s, milli ? 0 : 3, &v, &end);
        if (r < 0 || *end != (milli ? 'm' : 0) || (milli && end[1]))
                return amount_error(e, r == -ERANGE ? -ERANGE : -EINVAL, "CPU", s,
                                    "expected milli-cores (500m) or cores with up to 3 decimals (0.5, 2)");
        if (v == 0 || v > NAP_CPU_MILLI_MAX)
                return amount_error(e, -ERANGE, "CPU", s, "must be more than 0 and at most 1024 CPUs");
        *ret_milli = v;
        return 0;
}

/* K, M, G, T (and Ki…), optionally followed by B: its power of 1024. */
static int bytes_unit(const char *u, unsigned *ret_shift) {
        static const char units[] = "KMGT";
        const char *k = *u ? strchr(units, *u) : NULL;
        unsigned shift = k ? 10 * (unsigned) (k - units + 1) : 0;

        if (k)
                u++;
        if (k && *u == 'i')
                u++;
        if (*u == 'B')
                u++;
        if (*u)
                return -EINVAL;
        *ret_shift = shift;
        return 0;
}

int nap_bytes_parse(const char *s, uint64_t *ret, NapError *e) {
        const char *end;
        unsigned shift;
        uint64_t v;

        assert(ret);
        if (!s)
                return amount_error(e, -EINVAL, "size", "", "missing");
        /* Up to 3 decimals ("1.5G"): parsed in thousandths. */
        int r = parse_decimal(s, 3, &v, &end);
        if (r >= 0)
                r = bytes_unit(end, &shift);
        if (r < 0)
                return amount_error(e, r, "size", s, "expected bytes, or a number with K, M, G or T (powers of 1024)");
        if (shift > 0 && v > (NAP_BYTES_MAX >> shift) * 1000)
                return amount_error(e, -ERANGE, "size", s, "more than 1 EiB");
        /* whole units and thousandths apart, so that nothing overflows */
        if (((v % 1000) << shift) % 1000 != 0)
                return amount_error(e, -EINVAL, "size", s, "not a whole number of bytes");
        v = ((v / 1000) << shift) + ((v % 1000) << shift) / 1000;
        if (v == 0 || v > NAP_BYTES_MAX)
                return amount_error(e, -ERANGE, "size", s, "must be more than 0 bytes and at most 1 EiB");
        *ret = v;
        return 0;
}

typedef int (*amount_parse_fn)(const char *s, uint64_t *ret, NapError *e);

static int amount_parse(const char *s, amount_parse_fn parse, const char *what, uint64_t *ret_request,
                        uint64_t *ret_limit, NapError *e) {
        char request[NAP_AMOUNT_STRING_MAX * 2];
        const char *colon = s ? strchr(s, ':') : NULL;
        uint64_t req, lim;

        assert(ret_request);
        assert(ret_limit);
        if ((colon ? (size_t) (colon - s) : strlen(s ?: "")) >= sizeof request)
                return amount_error(e, -EINVAL, what, s, "too long");
        snprintf(request, sizeof request, "%.*s", colon ? (int) (colon - s) : (int) sizeof request, s ?: "");
        int r = parse(request, &req, e);
        if (r < 0)
                return r;
        lim = req;
        if (colon && (r = parse(colon + 1, &lim, e)) < 0)
                return r;
        if (lim < req)
                return amount_error(e, -EINVAL, what, s, "the limit (after ':') is below the request");
        *ret_request = req;
        *ret_limit = lim;
        return 0;
}

int nap_cpu_amount_parse(const char *s, uint64_t *ret_request, uint64_t *ret_limit, NapError *e) {
        return amount_parse(s, nap_cpu_parse, "CPU", ret_request, ret_limit, e);
}

int nap_bytes_amount_parse(const char *s, uint64_t *ret_request, uint64_t *ret_limit, NapError *e) {
        return amount_parse(s, nap_bytes_parse, "size", ret_request, ret_limit, e);
}

int nap_amount_check(const char *what, uint64_t request, uint64_t *limit, uint64_t max, NapError *e) {
        assert(what);
        assert(limit);
        if (request == 0 && *limit == 0)
                return 0;
        if (request == 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "A %s limit needs a request (more than 0)", what);
        if (request > max || *limit > max)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                     "The %s amount %" PRIu64 " is absurd: at most %" PRIu64, what,
                                     MAX(request, *limit), max);
        if (*limit == 0)
                *limit = request;
        if (*limit < request)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "The %s limit %" PRIu64 " is below its request %" PRIu64, what, *limit, request);
        return 0;
}

int nap_compute_check(NapCompute *c, NapError *e) {
        assert(c);
        int r = nap_amount_check("cpu", c->request_cpu_milli, &c->limit_cpu_milli, NAP_CPU_MILLI_MAX, e);
        if (r >= 0)
                r = nap_amount_check("memory", c->request_memory, &c->limit_memory, NAP_BYTES_MAX, e);
        if (r >= 0 && nap_compute_is_empty(c))
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Nothing to reserve: no CPU and no memory");
        return r;
}

int nap_storage_check(NapStorage *s, NapError *e) {
        assert(s);
        int r = nap_amount_check("storage", s->request_bytes, &s->limit_bytes, NAP_BYTES_MAX, e);
        if (r >= 0 && s->request_bytes == 0)
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Nothing to reserve: no storage");
        return r;
}

bool nap_compute_is_empty(const NapCompute *c) {
        return c->request_cpu_milli == 0 && c->request_memory == 0;
}

const char *nap_cpu_format(uint64_t milli, char *buf) {
        assert(buf);
        if (milli % 1000 == 0)
                snprintf(buf, NAP_AMOUNT_STRING_MAX, "%" PRIu64, milli / 1000);
        else
                snprintf(buf, NAP_AMOUNT_STRING_MAX, "%" PRIu64 "m", milli);
        return buf;
}

const char *nap_bytes_format(uint64_t bytes, char *buf) {
        static const char units[] = "KMGT";
        assert(buf);
        for (int i = 3; i >= 0; i--) {
                unsigned shift = 10 * (unsigned) (i + 1);
                if (bytes > 0 && bytes % (UINT64_C(1) << shift) == 0) {
                        snprintf(buf, NAP_AMOUNT_STRING_MAX, "%" PRIu64 "%c", bytes >> shift, units[i]);
                        return buf;
                }
        }
        snprintf(buf, NAP_AMOUNT_STRING_MAX, "%" PRIu64, bytes);
        return buf;
}

const char *nap_bytes_format_human(uint64_t bytes, char *buf) {
        static const char units[] = "KMGT";
        assert(buf);
        if (strlen(nap_bytes_format(bytes, buf)) <= 5)
                return buf;
        int i = 3;
        while (i > 0 && bytes < UINT64_C(1) << (10 * (i + 1)))
                i--;
        snprintf(buf, NAP_AMOUNT_STRING_MAX, "%.1f%c", (double) bytes / (double) (UINT64_C(1) << (10 * (i + 1))),
                 units[i]);
        return buf;
}

uint64_t nap_cpu_weight(uint64_t request_milli) {
        uint64_t shares = MAX(request_milli * 1024 / 1000, UINT64_C(2));
        uint64_t weight = 1 + (shares - 2) * 9999 / 262142;
        return MIN(weight, UINT64_C(10000));
}

const char *nap_cpu_quota_format(uint64_t limit_milli, char *buf) {
        assert(buf);
        if (limit_milli % 10 == 0)
                snprintf(buf, NAP_AMOUNT_STRING_MAX, "%" PRIu64 "%%", limit_milli / 10);
        else
                snprintf(buf, NAP_AMOUNT_STRING_MAX, "%" PRIu64 ".%" PRIu64 "%%", limit_milli / 10, limit_milli % 10);
        return buf;
}
