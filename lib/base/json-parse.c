/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json-parse.h"
#include "base/macro.h"

/* The input, [p, end), and a buffer reused for strings with escapes and
 * for reals, which strtod() wants NUL-terminated. */
typedef struct Parser {
        const uint8_t *p, *end;
        char *scratch;
        size_t alloc;
} Parser;

static int scratch_reserve(Parser *ps, size_t n) {
        size_t a;
        char *s;

        if (n <= ps->alloc)
                return 0;
        a = MAX(n, MAX(ps->alloc * 2, (size_t) 256));
        s = realloc(ps->scratch, a);
        if (!s)
                return -ENOMEM;
        ps->scratch = s;
        ps->alloc = a;
        return 0;
}

static inline void skip_space(Parser *ps) {
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
                ps->p++;
}

/* ---- strings ---- */

/* What a byte in a string is: PLAIN bytes are taken as they are; 2–4 start
 * a UTF-8 sequence of that length; BAD bytes cannot start one
 * (continuation bytes, overlong 0xC0/0xC1, > U+10FFFF). */
enum { PLAIN = 0, SPECIAL = 1, BAD = 5 };
static const uint8_t byte_class[256] = {
        [0x00 ... 0x1f] = SPECIAL,
        ['"'] = SPECIAL,
        ['\\'] = SPECIAL,
        [0x80 ... 0xc1] = BAD,
        [0xc2 ... 0xdf] = 2,
        [0xe0 ... 0xef] = 3,
        [0xf0 ... 0xf4] = 4,
        [0xf5 ... 0xff] = BAD,
};

/* The length of the valid UTF-8 sequence at p, or 0: jansson's
 * utf8_check_first() and utf8_check_full() — continuation bytes, no
 * surrogates, nothing above U+10FFFF, no overlong forms. */
static unsigned utf8_length(const uint8_t *p, const uint8_t *end) {
        static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        unsigned len = byte_class[*p];
        uint32_t v;

        if (len < 2 || len > 4 || (size_t) (end - p) < len)
                return 0;
        v = p[0] & (0xffU >> (len + 1));
        for (unsigned i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                v = (v << 6) | (p[i] & 0x3f);
        }
        return v >= min[len] && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff) ? len : 0;
}

/* Bit 7 set in the bytes of x that are < 0x20, '"', '\\' or >= 0x80. Only
 * the lowest one is sure to be right: a borrow reaches the bytes above, but
 * only from a byte that is itself set. (As in json-dump.c.) */
static inline uint64_t special_bytes(uint64_t x) {
        const uint64_t ones = 0x0101010101010101ULL, quote = x ^ (ones * '"'), bs = x ^ (ones * '\\');

        return (x | ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((bs - ones) & ~bs)) &
                (ones * 0x80);
}

/* The first byte at or after p that is not PLAIN, or end. Eight bytes at a
 * time while eight are left, never past end. */
static inline const uint8_t *skip_plain(const uint8_t *p, const uint8_t *end) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (end - p >= 8) {
                uint64_t x, m;
                memcpy(&x, p, 8);
                m = special_bytes(x);
                if (m != 0)
                        return p + __builtin_ctzll(m) / 8;
                p += 8;
        }
#endif
        while (p < end && byte_class[*p] == PLAIN)
                p++;
        return p;
}

static int hex4(const uint8_t *p, const uint8_t *end) {
        int v = 0;

        if (end - p < 4)
                return -1;
        for (unsigned i = 0; i < 4; i++) {
                uint8_t c = p[i];
                int d = c >= '0' && c <= '9' ? c - '0' :
                        c >= 'a' && c <= 'f' ? c - 'a' + 10 :
                        c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0)
                        return -1;
                v = v << 4 | d;
        }
        return v;
}

static size_t utf8_encode(char *w, uint32_t v) {
        if (v < 0x80) {
                w[0] = (char) v;
                return 1;
        }
        if (v < 0x800) {
                w[0] = (char) (0xc0 | v >> 6);
                w[1] = (char) (0x80 | (v & 0x3f));
                return 2;
        }
        if (v < 0x10000) {
                w[0] = (char) (0xe0 | v >> 12);
                w[1] = (char) (0x80 | (v >> 6 & 0x3f));
                w[2] = (char) (0x80 | (v & 0x3f));
                return 3;
        }
        w[0] = (char) (0xf0 | v >> 18);
        w[1] = (char) (0x80 | (v >> 12 & 0x3f));
        w[2] = (char) (0x80 | (v >> 6 & 0x3f));
        w[3] = (char) (0x80 | (v & 0x3f));
        return 4;
}

/* The \uXXXX escape at *p (past the "\u"), with its low surrogate if it is
 * a high one, as jansson decodes it: a lone or mismatched surrogate and
 * U+0000 (no JSON_ALLOW_NUL) are refused. Writes up to 4 bytes to w. */
static int decode_unicode(const uint8_t **p, const uint8_t *end, char *w) {
        int v = hex4(*p, end), lo;

        if (v < 0)
                return -EBADMSG;
        *p += 4;
        if (v >= 0xdc00 && v <= 0xdfff)
                return -EBADMSG;
        if (v >= 0xd800 && v <= 0xdbff) {
                if (end - *p < 2 || (*p)[0] != '\\' || (*p)[1] != 'u')
                        return -EBADMSG;
                lo = hex4(*p + 2, end);
                if (lo < 0xdc00 || lo > 0xdfff)
                        return -EBADMSG;
                *p += 6;
                v = ((v - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
        }
        if (v == 0)
                return -EBADMSG;
        return (int) utf8_encode(w, (uint32_t) v);
}

/* The escape at *p (a '\\'); writes its bytes to w, returns how many. */
static int decode_escape(const uint8_t **p, const uint8_t *end, char *w) {
        static const char simple[0x80] = {
                ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f', ['n'] = '\n', ['r'] = '\r',
                ['t'] = '\t',
        };
        uint8_t c;

        if (end - *p < 2)
                return -EBADMSG;
        c = (*p)[1];
        *p += 2;
        if (c == 'u')
                return decode_unicode(p, end, w);
        if (c >= 0x80 || !simple[c])
                return -EBADMSG;
        w[0] = simple[c];
        return 1;
}

/* The rest of a string that has an escape at p, decoded into the scratch
 * buffer; start is just past the opening quote. Decoding never makes a
 * string longer, so the whole remaining input bounds the room needed, but
 * the buffer grows with the string instead, so that one escape early in a
 * big message does not cost a buffer of the message's size. */
static int parse_string_escaped(Parser *ps, const uint8_t *start, const uint8_t *p, const char **ret,
                                size_t *ret_len) {
        const uint8_t *end = ps->end;
        size_t n = 0;
        int r, k;

        for (const uint8_t *run = start;; run = p) {
                p = skip_plain(p, end);
                while (p < end && byte_class[*p] >= 2 && (k = (int) utf8_length(p, end)) > 0)
                        p = skip_plain(p + k, end);
                /* The run, plus room for what one escape decodes to. */
                r = scratch_reserve(ps, n + (size_t) (p - run) + 4);
                if (r < 0)
                        return r;
                memcpy(ps->scratch + n, run, p - run);
                n += p - run;
                if (p >= end || *p < 0x20 || *p >= 0x80)
                        return -EBADMSG; /* unterminated, control character, invalid UTF-8 */
                if (*p == '"')
                        break;
                k = decode_escape(&p, end, ps->scratch + n);
                if (k < 0)
                        return k;
                n += k;
        }
        ps->p = p + 1;
        *ret = ps->scratch;
        *ret_len = n;
        return 0;
}

/* The string whose opening quote is at ps->p. *ret points into the input
 * if the string has no escapes, else into the scratch buffer, valid until
 * the next string or number is parsed. Never NUL-terminated. */
static int parse_string(Parser *ps, const char **ret, size_t *ret_len) {
        const uint8_t *start = ps->p + 1, *p = start, *end = ps->end;
        unsigned k;

        for (;;) {
                p = skip_plain(p, end);
                if (p >= end)
                        return -EBADMSG;
                if (*p == '"')
                        break;
                if (*p == '\\')
                        return parse_string_escaped(ps, start, p, ret, ret_len);
                k = utf8_length(p, end); /* 0 for control characters too */
                if (k == 0)
                        return -EBADMSG;
                p += k;
        }
        ps->p = p + 1;
        *ret = (const char *) start;
        *ret_len = p - start;
        return 0;
}

/* ---- numbers ---- */

static inline bool is_digit(uint8_t c) {
        return c >= '0' && c <= '9';
}

static const uint8_t *skip_digits(const uint8_t *p, const uint8_t *end) {
        while (p < end && is_digit(*p))
                p++;
        return p;
}

/* strtoll() as jansson calls it, refusing what it would call ERANGE. The
 * digits at [p, end) are a valid JSON integer without its sign. */
static int make_integer(const uint8_t *p, const uint8_t *end, bool negative, json_t **ret) {
        const uint64_t limit = negative ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
        uint64_t u = 0;
        json_int_t i;

        for (; p < end; p++) {
                unsigned d = *p - '0';
                if (u > (limit - d) / 10)
                        return -EBADMSG;
                u = u * 10 + d;
        }
        i = negative && u > 0 ? -(json_int_t) (u - 1) - 1 : (json_int_t) u;
        *ret = json_integer(i);
        return *ret ? 0 : -ENOMEM;
}

/* jansson's jsonp_strtod(): the text with '.' turned into the locale's
 * decimal point, strtod(), and an overflow refused. An underflow is not:
 * jansson takes the 0 or the subnormal strtod() returns. */
static int make_real(Parser *ps, const uint8_t *p, size_t n, json_t **ret) {
        char buf[64], *s = buf, point = localeconv()->decimal_point[0], *dot;
        double d;
        int r;

        if (n >= sizeof buf) {
                r = scratch_reserve(ps, n + 1);
                if (r < 0)
                        return r;
                s = ps->scratch;
        }
        memcpy(s, p, n);
        s[n] = 0;
        if (point != '.' && (dot = memchr(s, '.', n)))
                *dot = point;
        errno = 0;
        d = strtod(s, NULL);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
                return -EBADMSG;
        *ret = json_real(d);
        return *ret ? 0 : -ENOMEM;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, a real if it has a
 * fraction or an exponent. What follows is the caller's to check, so
 * "01" ends after the 0 and fails there, as in jansson. */
static int parse_number(Parser *ps, json_t **ret) {
        const uint8_t *start = ps->p, *p = start, *end = ps->end, *digits;
        bool negative = false, real = false;

        if (*p == '-') {
                negative = true;
                p++;
        }
        digits = p;
        if (p >= end || !is_digit(*p))
                return -EBADMSG;
        p = *p == '0' ? p + 1 : skip_digits(p, end);
        if (p < end && *p == '.') {
                if (++p >= end || !is_digit(*p))
                        return -EBADMSG;
                p = skip_digits(p, end);
                real = true;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
                if (++p < end && (*p == '+' || *p == '-'))
                        p++;
                if (p >= end || !is_digit(*p))
                        return -EBADMSG;
                p = skip_digits(p, end);
                real = true;
        }
        ps->p = p;
        return real ? make_real(ps, start, p - start, ret) : make_integer(digits, p, negative, ret);
}

/* ---- values ---- */

/* A jansson 2.14 quirk, kept so that both accept the same: after a number
 * or a keyword its lexer has read one byte too far and puts it back, and
 * when that byte is a NUL, its stream takes the NUL in the buffer for "no
 * byte buffered" and reads on: one NUL right after a number or keyword is
 * skipped ("[1\0]" is [1]), anywhere else a NUL is refused. varlink frames
 * messages with NUL, so none ever reaches here from there. */
static inline void skip_lookahead_nul(Parser *ps) {
        if (ps->p < ps->end && *ps->p == 0)
                ps->p++;
}

static int parse_value(Parser *ps, unsigned depth, json_t **ret);

static int parse_keyword(Parser *ps, const char *word, size_t n, json_t *value, json_t **ret) {
        if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
                return -EBADMSG;
        ps->p += n;
        skip_lookahead_nul(ps);
        *ret = value;
        return 0;
}

/* After an element: 1 for ',' (another follows), 0 for the closing
 * bracket, else -EBADMSG. */
static int next_element(Parser *ps, uint8_t close) {
        uint8_t c;

        skip_space(ps);
        if (ps->p >= ps->end)
                return -EBADMSG;
        c = *ps->p++;
        return c == ',' ? 1 : c == close ? 0 : -EBADMSG;
}

static int parse_array(Parser *ps, unsigned depth, json_t **ret) {
        json_t *a = json_array(), *v;
        int r = 1;

        if (!a)
                return -ENOMEM;
        ps->p++;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ']') {
                ps->p++;
                r = 0;
        }
        while (r > 0) {
                r = parse_value(ps, depth + 1, &v);
                if (r >= 0 && json_array_append_new(a, v) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = next_element(ps, ']');
        }
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

/* One "key": value pair into o. A duplicate key is seen by the size not
 * growing: json_object_setn_new_nocheck() replaces the value, which costs
 * one hash lookup instead of two; the object is thrown away then anyway. */
static int parse_member(Parser *ps, json_t *o, unsigned depth) {
        _cleanup_free_ char *copy = NULL;
        const char *key;
        size_t len, size = json_object_size(o);
        json_t *v;
        int r;

        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != '"')
                return -EBADMSG;
        r = parse_string(ps, &key, &len);
        if (r < 0)
                return r;
        if (key == ps->scratch) {
                /* The value may reuse the scratch buffer. */
                copy = malloc(MAX(len, (size_t) 1));
                if (!copy)
                        return -ENOMEM;
                key = memcpy(copy, key, len);
        }
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p++ != ':')
                return -EBADMSG;
        r = parse_value(ps, depth + 1, &v);
        if (r < 0)
                return r;
        if (json_object_setn_new_nocheck(o, key, len, v) < 0)
                return -ENOMEM;
        return json_object_size(o) == size ? -EBADMSG : 0;
}

static int parse_object(Parser *ps, unsigned depth, json_t **ret) {
        json_t *o = json_object();
        int r = 1;

        if (!o)
                return -ENOMEM;
        ps->p++;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                r = 0;
        }
        while (r > 0) {
                r = parse_member(ps, o, depth);
                if (r >= 0)
                        r = next_element(ps, '}');
        }
        if (r < 0) {
                json_decref(o);
                return r;
        }
        *ret = o;
        return 0;
}

static int parse_string_value(Parser *ps, json_t **ret) {
        const char *s;
        size_t n;
        int r = parse_string(ps, &s, &n);

        if (r < 0)
                return r;
        /* Checked above: valid UTF-8 without NUL. */
        *ret = json_stringn_nocheck(s, n);
        return *ret ? 0 : -ENOMEM;
}

/* depth is this value's: jansson counts every value, scalars too. */
static int parse_value(Parser *ps, unsigned depth, json_t **ret) {
        if (depth > NAP_JSON_PARSE_DEPTH_MAX)
                return -EBADMSG;
        skip_space(ps);
        if (ps->p >= ps->end)
                return -EBADMSG;
        switch (*ps->p) {
        case '{':
                return parse_object(ps, depth, ret);
        case '[':
                return parse_array(ps, depth, ret);
        case '"':
                return parse_string_value(ps, ret);
        case '-':
        case '0' ... '9': {
                int r = parse_number(ps, ret);
                if (r >= 0)
                        skip_lookahead_nul(ps);
                return r;
        }
        case 't':
                return parse_keyword(ps, "true", 4, json_true(), ret);
        case 'f':
                return parse_keyword(ps, "false", 5, json_false(), ret);
        case 'n':
                return parse_keyword(ps, "null", 4, json_null(), ret);
        default:
                return -EBADMSG;
        }
}

int nap_json_parse(const char *buf, size_t len, json_t **ret) {
        Parser ps = {
                .p = (const uint8_t *) buf,
                .end = (const uint8_t *) buf + len,
        };
        json_t *j = NULL;
        int r;

        assert(ret);

        if (!buf)
                return -EBADMSG;
        /* Without JSON_DECODE_ANY jansson wants a container at the top. */
        skip_space(&ps);
        if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '['))
                return -EBADMSG;
        r = parse_value(&ps, 1, &j);
        free(ps.scratch);
        if (r < 0)
                return r;
        skip_space(&ps);
        if (ps.p != ps.end) {
                json_decref(j);
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}
