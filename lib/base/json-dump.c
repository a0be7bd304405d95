/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json-dump.h"
#include "base/macro.h"

#define ALLOC_MIN 512U

/* The caller's buffer while we append to it. [0, size) is written; end is
 * how far size may grow without a check: below alloc (the NUL needs a
 * byte) and not above max. */
typedef struct Out {
        char *data;
        size_t size, alloc, max, end;
} Out;

static void out_set_end(Out *o) {
        o->end = o->alloc > o->size ? MIN(o->alloc - 1, o->max) : o->size;
}

/* The slow path of out_reserve(): the cap, then a bigger allocation,
 * doubling so that many small appends stay linear. */
static int out_grow(Out *o, size_t n) {
        size_t a;
        char *d;

        if (n > o->max - o->size)
                return -ENOBUFS;
        a = o->alloc > SIZE_MAX / 2 ? SIZE_MAX : MAX(o->alloc * 2, (size_t) ALLOC_MIN);
        a = MAX(MIN(a, o->max + 1), o->size + n + 1);
        if (a > o->alloc) {
                d = realloc(o->data, a);
                if (!d)
                        return -ENOMEM;
                o->data = d;
                o->alloc = a;
        }
        out_set_end(o);
        return 0;
}

static inline int out_reserve(Out *o, size_t n) {
        return n <= o->end - o->size ? 0 : out_grow(o, n);
}

static int out_put(Out *o, const void *p, size_t n) {
        int r = out_reserve(o, n);
        if (r < 0)
                return r;
        memcpy(o->data + o->size, p, n);
        o->size += n;
        return 0;
}

static int out_putc(Out *o, char c) {
        int r = out_reserve(o, 1);
        if (r < 0)
                return r;
        o->data[o->size++] = c;
        return 0;
}

/* ---- strings ---- */

/* What a byte in a string needs: PLAIN bytes are copied in runs; 2–4 start
 * a UTF-8 sequence of that length (copied too, once checked); BAD bytes
 * cannot start one (continuation bytes, overlong 0xC0/0xC1, > U+10FFFF). */
enum { PLAIN = 0, ESCAPE = 1, BAD = 5 };
static const uint8_t byte_class[256] = {
        [0x00 ... 0x1f] = ESCAPE,
        ['"'] = ESCAPE,
        ['\\'] = ESCAPE,
        [0x80 ... 0xc1] = BAD,
        [0xc2 ... 0xdf] = 2,
        [0xe0 ... 0xef] = 3,
        [0xf0 ... 0xf4] = 4,
        [0xf5 ... 0xff] = BAD,
};

/* jansson's utf8_check_full(): continuation bytes, no surrogates, nothing
 * above U+10FFFF, no overlong forms. */
static bool utf8_valid(const uint8_t *p, size_t avail, unsigned len) {
        static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        uint32_t v;

        if (len > avail)
                return false;
        v = p[0] & (0xffU >> (len + 1));
        for (unsigned i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return false;
                v = (v << 6) | (p[i] & 0x3f);
        }
        return v >= min[len] && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff);
}

/* Writes the escape of c (class ESCAPE) to w, which has room for 6 bytes;
 * returns its length. */
static size_t escape(char *w, uint8_t c) {
        static const char hex[16] = "0123456789ABCDEF";
        static const char short_form[0x60] = {
                ['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
        };

        w[0] = '\\';
        if (short_form[c]) {
                w[1] = short_form[c];
                return 2;
        }
        memcpy(w + 1, "u00", 3);
        w[4] = hex[c >> 4];
        w[5] = hex[c & 15];
        return 6;
}

/* Bit 7 set in the bytes of x that are < 0x20, '"', '\\' or >= 0x80. Only
 * the lowest one is sure to be right: a borrow reaches the bytes above, but
 * only from a byte that is itself set. */
static inline uint64_t special_bytes(uint64_t x) {
        const uint64_t ones = 0x0101010101010101ULL, quote = x ^ (ones * '"'), bs = x ^ (ones * '\\');

        return (x | ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((bs - ones) & ~bs)) &
                (ones * 0x80);
}

/* The byte at *p needs more than a copy; false for invalid UTF-8. */
static bool dump_special(const uint8_t **p, const uint8_t *end, char **w) {
        uint8_t c = **p, k = byte_class[c];

        if (k == ESCAPE) {
                *w += escape(*w, c);
                (*p)++;
                return true;
        }
        if (k == BAD || !utf8_valid(*p, end - *p, k))
                return false;
        memcpy(*w, *p, k);
        *w += k;
        *p += k;
        return true;
}

/* With room for the worst case, every byte escaped as \u00XX, nothing is
 * checked per write, and plain bytes go eight at a time while they are
 * scanned: most strings are keys and short names, where a memcpy() call
 * per run would cost more than the bytes. */
static int dump_string_fast(Out *o, const uint8_t *p, size_t n) {
        const uint8_t *end = p + n;
        char *w = o->data + o->size;

        *w++ = '"';
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (end - p >= 8) {
                uint64_t x, m;
                memcpy(&x, p, 8);
                memcpy(w, &x, 8); /* in the room for the worst case of these 8 */
                m = special_bytes(x);
                if (m == 0) {
                        p += 8;
                        w += 8;
                        continue;
                }
                p += __builtin_ctzll(m) / 8;
                w += __builtin_ctzll(m) / 8;
                if (!dump_special(&p, end, &w))
                        return -EINVAL;
        }
#endif
        while (p < end)
                if (byte_class[*p] == PLAIN)
                        *w++ = (char) *p++;
                else if (!dump_special(&p, end, &w))
                        return -EINVAL;
        *w++ = '"';
        o->size = w - o->data;
        return 0;
}

/* Close to the cap or for long strings: runs of plain bytes are copied
 * with memcpy(), each write checked, so max is respected to the byte. */
static int dump_string_checked(Out *o, const uint8_t *p, size_t n) {
        const uint8_t *end = p + n, *run = p;
        char e[6];
        int r = out_putc(o, '"');

        while (r >= 0 && p < end) {
                uint8_t k = byte_class[*p];
                if (k == PLAIN) {
                        p++;
                        continue;
                }
                if (k == BAD || (k != ESCAPE && !utf8_valid(p, end - p, k)))
                        return -EINVAL;
                if (k != ESCAPE) {
                        p += k;
                        continue;
                }
                r = out_put(o, run, p - run);
                if (r >= 0)
                        r = out_put(o, e, escape(e, *p));
                run = ++p;
        }
        if (r >= 0)
                r = out_put(o, run, p - run);
        return r < 0 ? r : out_putc(o, '"');
}

/* Worst-case room is taken (grown into, if need be) only for strings up
 * to this size, so that a long string does not allocate six times its
 * length. */
#define STRING_FAST_MAX 4096U

static int dump_string(Out *o, const char *s, size_t n) {
        size_t worst = 6 * n + 2;

        if (n <= STRING_FAST_MAX &&
            (worst <= o->end - o->size || (worst <= o->max - o->size && out_grow(o, worst) >= 0)))
                return dump_string_fast(o, (const uint8_t *) s, n);
        return dump_string_checked(o, (const uint8_t *) s, n);
}

/* ---- numbers ---- */

static int dump_integer(Out *o, json_int_t i) {
        char b[24], *p = b + sizeof b;
        unsigned long long u = i < 0 ? 0ULL - (unsigned long long) i : (unsigned long long) i;

        do
                *--p = (char) ('0' + u % 10);
        while ((u /= 10) > 0);
        if (i < 0)
                *--p = '-';
        return out_put(o, p, b + sizeof b - p);
}

/* "e+07" becomes "e7", "e-07" "e-7", as jansson has it; returns the new
 * length of the NUL-terminated b. */
static size_t exponent_trim(char *b, size_t n) {
        char *e = memchr(b, 'e', n), *to, *from;

        if (!e)
                return n;
        to = e[1] == '-' ? e + 2 : e + 1;
        from = e[1] == '+' ? e + 2 : to;
        while (*from == '0')
                from++;
        memmove(to, from, b + n + 1 - from);
        return n - (from - to);
}

/* jansson's jsonp_dtostr() with precision 17: the locale's decimal point
 * becomes '.', an integral value gets ".0" so that it reads back as a
 * real, the exponent loses its '+' and leading zeros. */
static int dump_real(Out *o, double d) {
        char b[64], point = localeconv()->decimal_point[0], *dot;
        int l = snprintf(b, sizeof b, "%.17g", d);
        size_t n;

        if (l < 0 || (size_t) l >= sizeof b - 2)
                return -EINVAL;
        n = (size_t) l;
        if (point != '.' && (dot = strchr(b, point)))
                *dot = '.';
        if (!strchr(b, '.') && !strchr(b, 'e')) {
                memcpy(b + n, ".0", 3);
                n += 2;
        }
        return out_put(o, b, exponent_trim(b, n));
}

/* ---- containers ---- */

static int dump_value(Out *o, const json_t *j, unsigned depth);

static int dump_array(Out *o, const json_t *j, unsigned depth) {
        size_t n = json_array_size(j);
        int r = out_putc(o, '[');

        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (i > 0)
                        r = out_putc(o, ',');
                if (r >= 0)
                        r = dump_value(o, json_array_get(j, i), depth);
        }
        return r < 0 ? r : out_putc(o, ']');
}

/* jansson's iterator walks the keys in insertion order, as json_dumps()
 * does without JSON_SORT_KEYS. */
static int dump_object(Out *o, const json_t *j, unsigned depth) {
        json_t *obj = (json_t *) j; /* the iterator API is not const */
        void *first = json_object_iter(obj);
        int r = out_putc(o, '{');

        for (void *it = first; r >= 0 && it; it = json_object_iter_next(obj, it)) {
                if (it != first)
                        r = out_putc(o, ',');
                if (r >= 0)
                        r = dump_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
                if (r >= 0)
                        r = out_putc(o, ':');
                if (r >= 0)
                        r = dump_value(o, json_object_iter_value(it), depth);
        }
        return r < 0 ? r : out_putc(o, '}');
}

static int dump_value(Out *o, const json_t *j, unsigned depth) {
        if (!j)
                return -EINVAL;
        switch (json_typeof(j)) {
        case JSON_OBJECT:
        case JSON_ARRAY:
                /* Also what stops a cycle. */
                if (depth >= NAP_JSON_DUMP_DEPTH_MAX)
                        return -EINVAL;
                return json_is_object(j) ? dump_object(o, j, depth + 1) : dump_array(o, j, depth + 1);
        case JSON_STRING:
                return dump_string(o, json_string_value(j), json_string_length(j));
        case JSON_INTEGER:
                return dump_integer(o, json_integer_value(j));
        case JSON_REAL:
                return dump_real(o, json_real_value(j));
        case JSON_TRUE:
                return out_put(o, "true", 4);
        case JSON_FALSE:
                return out_put(o, "false", 5);
        case JSON_NULL:
                return out_put(o, "null", 4);
        }
        return -EINVAL;
}

int nap_json_dump_append(const json_t *j, char **data, size_t *size, size_t *alloc, size_t max) {
        assert(data);
        assert(size);
        assert(alloc);

        Out o = {
                .data = *data,
                .size = *size,
                .alloc = *alloc,
                .max = MIN(max, SIZE_MAX - 1), /* so that max + 1 bytes can be allocated */
        };
        int r;

        if (!j)
                return -EINVAL;
        /* Every value is at least one byte. */
        if (o.size >= o.max)
                return -ENOBUFS;
        out_set_end(&o);
        r = dump_value(&o, j, 0);
        *data = o.data;
        *alloc = o.alloc;
        if (r < 0)
                return r;
        o.data[o.size] = 0; /* out_reserve() always keeps a byte for it */
        *size = o.size;
        return 0;
}

int nap_json_dump(const json_t *j, char **ret, size_t *ret_len) {
        char *data = NULL;
        size_t size = 0, alloc = 0;
        int r;

        assert(ret);

        r = nap_json_dump_append(j, &data, &size, &alloc, SIZE_MAX);
        if (r < 0) {
                free(data);
                return r;
        }
        *ret = data;
        if (ret_len)
                *ret_len = size;
        return 0;
}
