/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The app's profile and Procfile, parsed into a model: the command's words,
 * each a list of parts (literal text, a {placeholder}, or the port), plus
 * the placeholder names in order of first appearance and their defaults.
 * Substitution fills the parts after the words were split, so a value is
 * always exactly (part of) one argument and is never re-split or
 * interpreted. Every input is bounded by the size given, never by a NUL.
 *
 * Choices the header leaves open, made here:
 *  - the whole file must be valid UTF-8 without NUL bytes;
 *  - control characters (tab included) may not appear inside a word, so no
 *    argv word ever holds one; tab and space separate words;
 *  - a newline inside quotes is an unterminated quote, except "\<newline>"
 *    inside double quotes, which continues the line as outside quotes;
 *  - $PORT and ${PORT} are recognised outside quotes and inside "…", not
 *    inside '…' (as a shell would); any other "${" is an error there, a
 *    lone '$' is literal;
 *  - a placeholder's default is raw text up to the first '}', not subject
 *    to quoting; it may not contain '{' or a control character;
 *  - a name given twice with two different defaults is an error;
 *  - a backslash outside quotes makes the next character literal, braces
 *    included ("\{" is a literal '{'). */

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "model/profile.h"
#include "base/strv.h"

typedef enum PartType {
        PART_LITERAL,
        PART_PARAM,
        PART_PORT,
} PartType;

typedef struct Part {
        PartType type;
        char *text; /* literal text or parameter name; NULL for the port */
} Part;

typedef struct Word {
        Part *parts;
        size_t n_parts;
} Word;

struct NapProfile {
        Word *words;
        size_t n_words;
        char **params;   /* strv, first-appearance order, never NULL */
        char **defaults; /* NAP_PARAMS_MAX slots parallel to params; NULL: none */
        bool uses_port;
        char *health_path; /* HealthPath=; NULL: none */
        /* Procfile of an MPI app: the "mpi:" and "build:" processes, each
         * a profile of its own (no words here then); MpiRanks=, MpiRanksMax=,
         * MpiCpu=, MpiMemory= */
        NapProfile *mpi, *build;
        unsigned mpi_ranks, mpi_ranks_max; /* 0: not given */
        NapCompute mpi_rank;               /* all 0: not given */
};

struct NapParams {
        size_t n;
        char *keys[NAP_PARAMS_MAX];
        char *values[NAP_PARAMS_MAX];
};

/* ---- small helpers ---- */

static bool is_name_start(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c) {
        return is_name_start(c) || (c >= '0' && c <= '9');
}

/* [A-Za-z_][A-Za-z0-9_]{0,63} */
static bool param_name_is_valid(const char *s, size_t n) {
        if (n == 0 || n > NAP_PARAM_NAME_MAX || !is_name_start(s[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_name_char(s[i]))
                        return false;
        return true;
}

static bool is_control(char c) {
        return (unsigned char) c < 0x20 || c == 0x7f;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes available), 0 if it
 * is not one: overlong forms, surrogates and values past U+10FFFF too. */
static size_t utf8_sequence_length(const unsigned char *s, size_t n) {
        uint32_t cp, min;
        size_t len;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2, cp = s[0] & 0x1f, min = 0x80;
        else if ((s[0] & 0xf0) == 0xe0)
                len = 3, cp = s[0] & 0x0f, min = 0x800;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                len = 4, cp = s[0] & 0x07, min = 0x10000;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* Offset of the first byte that is not valid UTF-8, or n. */
static size_t utf8_invalid_offset(const char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                size_t k = utf8_sequence_length((const unsigned char *) s + i, n - i);
                if (k == 0)
                        return i;
                i += k;
        }
        return n;
}

/* A refused key for a message: no control characters, not too long. */
static const char *shown(const char *s, size_t n, char buf[static 72]) {
        size_t i = 0;
        for (; i < n && i < 64; i++)
                buf[i] = is_control(s[i]) ? '?' : s[i];
        buf[i] = 0;
        if (i < n)
                memcpy(buf + i, "…", sizeof "…");
        return buf;
}

/* A growing byte buffer; data is NUL-terminated once anything was put. */
typedef struct Buf {
        char *data;
        size_t len, cap;
} Buf;

static int buf_put(Buf *b, const char *s, size_t n) {
        if (n >= SIZE_MAX / 2 - b->len)
                return -ENOMEM;
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(MAX(b->cap * 2, b->len + n + 1), (size_t) 32);
                char *d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

static int buf_puts(Buf *b, const char *s) {
        return buf_put(b, s, strlen(s));
}

/* Hands the contents over (an empty string if nothing was put). */
static char *buf_steal(Buf *b) {
        char *d = b->data ? b->data : strdup("");
        *b = (Buf) {};
        return d;
}

static void buf_done(Buf *b) {
        free(b->data);
        *b = (Buf) {};
}

/* ---- values ---- */

/* A parameter value: bounded, no control characters, valid UTF-8. */
static int value_check(const char *name, const char *v, size_t n, NapError *e) {
        if (n > NAP_PARAM_VALUE_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Invalid value for parameter '%s': longer than %d bytes",
                                     name, NAP_PARAM_VALUE_MAX);
        for (size_t i = 0; i < n; i++)
                if (is_control(v[i]))
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "Invalid value for parameter '%s': control character 0x%02x at offset %zu",
                                             name, (unsigned) (unsigned char) v[i], i);
        size_t bad = utf8_invalid_offset(v, n);
        if (bad < n)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Invalid value for parameter '%s': not valid UTF-8 at offset %zu",
                                     name, bad);
        return 0;
}

/* ---- the model ---- */

static void word_done(Word *w) {
        for (size_t i = 0; i < w->n_parts; i++)
                free(w->parts[i].text);
        free(w->parts);
        *w = (Word) {};
}

NapProfile *nap_profile_free(NapProfile *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_words; i++)
                word_done(&p->words[i]);
        free(p->words);
        for (size_t i = 0; p->defaults && i < NAP_PARAMS_MAX; i++)
                free(p->defaults[i]);
        free(p->defaults);
        strv_free(p->params);
        free(p->health_path);
        nap_profile_free(p->mpi);
        nap_profile_free(p->build);
        free(p);
        return NULL;
}

static int profile_new(NapProfile **ret) {
        _cleanup_(nap_profile_freep) NapProfile *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->params = calloc(1, sizeof(char *));
        p->defaults = calloc(NAP_PARAMS_MAX, sizeof(char *));
        if (!p->params || !p->defaults)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Takes ownership of text (freed on failure). */
static int word_add_part(Word *w, PartType type, char *text) {
        Part *parts = realloc(w->parts, (w->n_parts + 1) * sizeof *parts);
        if (!parts) {
                free(text);
                return -ENOMEM;
        }
        parts[w->n_parts++] = (Part) { .type = type, .text = text };
        w->parts = parts;
        return 0;
}

static int profile_add_word(NapProfile *p, Word *w) {
        Word *words = realloc(p->words, (p->n_words + 1) * sizeof *words);
        if (!words)
                return -ENOMEM;
        words[p->n_words++] = *w;
        *w = (Word) {};
        p->words = words;
        return 0;
}

static ssize_t profile_param_index(const NapProfile *p, const char *name) {
        for (size_t i = 0; p->params[i]; i++)
                if (streq(p->params[i], name))
                        return i;
        return -1;
}

/* ---- the lexer ---- */

typedef struct Lexer {
        const char *text;
        size_t size, pos;
        unsigned line, col; /* of text[pos], 1-based; col counts characters */
        const char *origin; /* "profile" or "Procfile" */
        NapProfile *profile;
        NapError *e;
} Lexer;

static bool lex_at_end(const Lexer *l) {
        return l->pos >= l->size;
}

static char lex_peek(const Lexer *l, size_t k) {
        return l->pos + k < l->size ? l->text[l->pos + k] : 0;
}

static void lex_advance(Lexer *l, size_t n) {
        for (; n > 0 && l->pos < l->size; n--, l->pos++)
                if (l->text[l->pos] == '\n')
                        l->line++, l->col = 1;
                else if (((unsigned char) l->text[l->pos] & 0xc0) != 0x80)
                        l->col++;
}

_printf_(5, 6)
static int lex_error(Lexer *l, int r, unsigned line, unsigned col, const char *fmt, ...) {
        char msg[NAP_ERROR_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (col == 0)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, r, "%s:%u: %s", l->origin, line, msg);
        return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, r, "%s:%u:%u: %s", l->origin, line, col, msg);
}

/* The word being built: literal bytes collect in lit until a placeholder
 * or the end of the word turns them into a part. */
typedef struct WordBuilder {
        Word word;
        Buf lit;
        bool started; /* '' and "" make a word even when empty */
} WordBuilder;

static void word_builder_done(WordBuilder *wb) {
        word_done(&wb->word);
        buf_done(&wb->lit);
}

static int wb_flush(WordBuilder *wb) {
        if (wb->lit.len == 0)
                return 0;
        return word_add_part(&wb->word, PART_LITERAL, buf_steal(&wb->lit));
}

static int wb_literal(Lexer *l, WordBuilder *wb, size_t n) {
        wb->started = true;
        int r = buf_put(&wb->lit, l->text + l->pos, n);
        if (r < 0)
                return r;
        lex_advance(l, n);
        return 0;
}

static int wb_port(Lexer *l, WordBuilder *wb, size_t n) {
        wb->started = true;
        l->profile->uses_port = true;
        lex_advance(l, n);
        int r = wb_flush(wb);
        return r < 0 ? r : word_add_part(&wb->word, PART_PORT, NULL);
}

/* Records name (and its default) as a parameter the first time it appears. */
static int note_param(Lexer *l, const char *name, const char *def, size_t def_len, unsigned line, unsigned col) {
        NapProfile *p = l->profile;
        ssize_t i = profile_param_index(p, name);

        if (i < 0) {
                size_t n = strv_length(p->params);
                if (n >= NAP_PARAMS_MAX)
                        return lex_error(l, -E2BIG, line, col, "more than %d parameters", NAP_PARAMS_MAX);
                if (strv_extend(&p->params, name) < 0)
                        return -ENOMEM;
                i = n;
        }
        if (!def)
                return 0;
        if (p->defaults[i]) {
                if (strlen(p->defaults[i]) != def_len || memcmp(p->defaults[i], def, def_len) != 0)
                        return lex_error(l, -EINVAL, line, col, "conflicting defaults for parameter '%s'", name);
                return 0;
        }
        p->defaults[i] = strndup(def, def_len);
        return p->defaults[i] ? 0 : -ENOMEM;
}

/* Checks the default in {name=default}; the name is valid already. */
static int check_default(Lexer *l, const char *name, const char *def, size_t n, unsigned line, unsigned col) {
        if (streq(name, "port"))
                return lex_error(l, -EINVAL, line, col, "{port} cannot have a default: the port is assigned by nap");
        for (size_t i = 0; i < n; i++)
                if (is_control(def[i]))
                        return lex_error(l, -EINVAL, line, col,
                                         "default of parameter '%s' contains control character 0x%02x",
                                         name, (unsigned) (unsigned char) def[i]);
        if (n > NAP_PARAM_VALUE_MAX)
                return lex_error(l, -EINVAL, line, col, "default of parameter '%s' is longer than %d bytes",
                                 name, NAP_PARAM_VALUE_MAX);
        return 0;
}

/* At a '{' that is not "{{": {name} or {name=default}. */
static int lex_placeholder(Lexer *l, WordBuilder *wb) {
        unsigned line = l->line, col = l->col;
        const char *body = l->text + l->pos + 1;
        size_t end = l->pos + 1;
        char b[72], name[NAP_PARAM_NAME_MAX + 1];

        while (end < l->size && !strchr("{}\n", l->text[end]))
                end++;
        if (end >= l->size || l->text[end] != '}')
                return lex_error(l, -EINVAL, line, col, "unbalanced '{' (write '{{' for a literal brace)");

        size_t len = l->text + end - body;
        const char *eq = memchr(body, '=', len);
        size_t name_len = eq ? (size_t) (eq - body) : len;
        if (!param_name_is_valid(body, name_len))
                return lex_error(l, -EINVAL, line, col,
                                 "invalid placeholder '{%s}': names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)",
                                 shown(body, len, b));
        memcpy(name, body, name_len);
        name[name_len] = 0;

        int r = eq ? check_default(l, name, eq + 1, body + len - eq - 1, line, col) : 0;
        if (r < 0)
                return r;
        if (streq(name, "port"))
                return wb_port(l, wb, len + 2);
        r = note_param(l, name, eq ? eq + 1 : NULL, eq ? (size_t) (body + len - eq - 1) : 0, line, col);
        if (r < 0)
                return r;
        wb->started = true;
        lex_advance(l, len + 2);
        r = wb_flush(wb);
        return r < 0 ? r : word_add_part(&wb->word, PART_PARAM, strdup(name));
}

/* At a '$' outside single quotes. */
static int lex_dollar(Lexer *l, WordBuilder *wb) {
        if (lex_peek(l, 1) == '{') {
                if (l->pos + 7 <= l->size && strneq(l->text + l->pos, "${PORT}", 7))
                        return wb_port(l, wb, 7);
                return lex_error(l, -EINVAL, l->line, l->col,
                                 "'${' is not supported, only ${PORT} (write {name} for a parameter, '${{' for a literal '${')");
        }
        if (l->pos + 5 <= l->size && strneq(l->text + l->pos, "$PORT", 5) && !is_name_char(lex_peek(l, 5)))
                return wb_port(l, wb, 5);
        return wb_literal(l, wb, 1);
}

/* One character that means the same everywhere: braces, '$' (when
 * dollar), control characters, anything else literally. */
static int lex_common(Lexer *l, WordBuilder *wb, bool dollar) {
        char c = lex_peek(l, 0);

        if (c == '{' && lex_peek(l, 1) == '{') {
                lex_advance(l, 1); /* keep one of the two */
                return wb_literal(l, wb, 1);
        }
        if (c == '{')
                return lex_placeholder(l, wb);
        if (c == '}' && lex_peek(l, 1) == '}') {
                lex_advance(l, 1);
                return wb_literal(l, wb, 1);
        }
        if (c == '}')
                return lex_error(l, -EINVAL, l->line, l->col, "unbalanced '}' (write '}}' for a literal brace)");
        if (c == '$' && dollar)
                return lex_dollar(l, wb);
        if (is_control(c))
                return lex_error(l, -EINVAL, l->line, l->col, "control character 0x%02x in the command",
                                 (unsigned) (unsigned char) c);
        return wb_literal(l, wb, 1);
}

/* At a backslash outside quotes. */
static int lex_backslash(Lexer *l, WordBuilder *wb) {
        if (l->pos + 1 >= l->size)
                return lex_error(l, -EINVAL, l->line, l->col, "backslash at the end of the file");
        if (lex_peek(l, 1) == '\n') {
                lex_advance(l, 2); /* line continuation */
                return 0;
        }
        if (is_control(lex_peek(l, 1)))
                return lex_error(l, -EINVAL, l->line, l->col + 1, "control character 0x%02x in the command",
                                 (unsigned) (unsigned char) lex_peek(l, 1));
        lex_advance(l, 1);
        return wb_literal(l, wb, 1);
}

static int lex_single_quoted(Lexer *l, WordBuilder *wb) {
        unsigned line = l->line, col = l->col;
        int r;

        wb->started = true;
        lex_advance(l, 1);
        for (;;) {
                if (lex_at_end(l) || lex_peek(l, 0) == '\n')
                        return lex_error(l, -EINVAL, line, col, "unterminated single quote");
                if (lex_peek(l, 0) == '\'') {
                        lex_advance(l, 1);
                        return 0;
                }
                r = lex_common(l, wb, false);
                if (r < 0)
                        return r;
        }
}

static int lex_double_quoted(Lexer *l, WordBuilder *wb) {
        unsigned line = l->line, col = l->col;
        int r;

        wb->started = true;
        lex_advance(l, 1);
        for (;;) {
                char c = lex_peek(l, 0), next = lex_peek(l, 1);
                if (lex_at_end(l) || c == '\n')
                        return lex_error(l, -EINVAL, line, col, "unterminated double quote");
                if (c == '"') {
                        lex_advance(l, 1);
                        return 0;
                }
                if (c == '\\' && l->pos + 1 < l->size && (next == '"' || next == '\\')) {
                        lex_advance(l, 1);
                        r = wb_literal(l, wb, 1);
                } else if (c == '\\' && l->pos + 1 < l->size && next == '\n') {
                        lex_advance(l, 2);
                        r = 0;
                } else if (c == '\\')
                        r = wb_literal(l, wb, 1);
                else
                        r = lex_common(l, wb, true);
                if (r < 0)
                        return r;
        }
}

static int lex_word(Lexer *l) {
        _cleanup_(word_builder_done) WordBuilder wb = {};
        int r;

        while (!lex_at_end(l)) {
                char c = lex_peek(l, 0);
                if (c == ' ' || c == '\t' || c == '\n')
                        break;
                if (c == '\\')
                        r = lex_backslash(l, &wb);
                else if (c == '\'')
                        r = lex_single_quoted(l, &wb);
                else if (c == '"')
                        r = lex_double_quoted(l, &wb);
                else
                        r = lex_common(l, &wb, true);
                if (r < 0)
                        return r;
        }
        r = wb_flush(&wb);
        if (r < 0)
                return r;
        if (!wb.started)
                return 0; /* only line continuations */
        return profile_add_word(l->profile, &wb.word);
}

/* Blanks between words, and line continuations. */
static void lex_skip_blanks(Lexer *l) {
        for (;;) {
                char c = lex_peek(l, 0);
                if (!lex_at_end(l) && (c == ' ' || c == '\t'))
                        lex_advance(l, 1);
                else if (c == '\\' && lex_peek(l, 1) == '\n' && l->pos + 1 < l->size)
                        lex_advance(l, 2);
                else
                        return;
        }
}

/* Splits one command (continued over "\<newline>") into words; consumes
 * the newline that ends it. Returns 1 if it found a word, 0 if none. */
static int lex_command(Lexer *l) {
        size_t before = l->profile->n_words;

        for (;;) {
                lex_skip_blanks(l);
                if (lex_at_end(l))
                        break;
                if (lex_peek(l, 0) == '\n') {
                        lex_advance(l, 1);
                        break;
                }
                int r = lex_word(l);
                if (r < 0)
                        return r;
        }
        return (int) MIN(l->profile->n_words - before, (size_t) 1);
}

/* The rest of the current line, for lines nap does not look into. */
static void lex_skip_line(Lexer *l) {
        const char *nl = memchr(l->text + l->pos, '\n', l->size - l->pos);
        lex_advance(l, nl ? (size_t) (nl - l->text - l->pos) + 1 : l->size - l->pos);
}

/* Whether the current line is blank or a '#' comment (leading blanks ok). */
static bool lex_line_is_empty(const Lexer *l) {
        size_t i = l->pos;
        while (i < l->size && (l->text[i] == ' ' || l->text[i] == '\t'))
                i++;
        return i >= l->size || l->text[i] == '\n' || l->text[i] == '#';
}

/* ---- profile and Procfile ---- */

#define HEALTH_PATH_KEY "HealthPath="

/* Whether the current line (after leading blanks) is "HealthPath=…". */
/* Whether the current line is "KEY=…" (blanks before KEY allowed). */
static bool lex_line_has_key(const Lexer *l, const char *key) {
        size_t i = l->pos, n = strlen(key);
        while (i < l->size && (l->text[i] == ' ' || l->text[i] == '\t'))
                i++;
        return l->size - i >= n && strneq(l->text + i, key, n);
}

/* The value of the current "KEY=VALUE" line, blanks around it stripped,
 * as text[*ret_start..*ret_end); the line consumed. */
static void lex_key_value(Lexer *l, const char *key, size_t *ret_start, size_t *ret_end) {
        lex_skip_blanks(l);
        lex_advance(l, strlen(key));
        const char *nl = memchr(l->text + l->pos, '\n', l->size - l->pos);
        size_t start = l->pos, end = nl ? (size_t) (nl - l->text) : l->size;
        while (start < end && (l->text[start] == ' ' || l->text[start] == '\t'))
                start++;
        while (end > start && strchr(" \t\r", l->text[end - 1]))
                end--;
        lex_skip_line(l);
        *ret_start = start;
        *ret_end = end;
}

/* "HealthPath=PATH": PATH with blanks around it stripped, checked, once. */
static int lex_health_path(Lexer *l) {
        char b[72];
        unsigned line = l->line;
        size_t start, end;
        lex_key_value(l, HEALTH_PATH_KEY, &start, &end);
        if (l->profile->health_path)
                return lex_error(l, -EINVAL, line, 0, "HealthPath= given twice");
        _cleanup_free_ char *v = strndup(l->text + start, end - start);
        if (!v)
                return -ENOMEM;
        if (!nap_health_path_is_valid(v))
                return lex_error(l, -EINVAL, line, 0, "HealthPath= must be " NAP_HEALTH_PATH_RULE ", not '%s'",
                                 shown(v, strlen(v), b));
        l->profile->health_path = TAKE_PTR(v);
        return 0;
}

/* Blank, comment and HealthPath= lines: 1 if the current line was one
 * (and is consumed), 0 if it is something else. */
static int lex_other_line(Lexer *l) {
        if (lex_line_is_empty(l)) {
                lex_skip_line(l);
                return 1;
        }
        if (!lex_line_has_key(l, HEALTH_PATH_KEY))
                return 0;
        int r = lex_health_path(l);
        return r < 0 ? r : 1;
}

static int parse_profile(Lexer *l) {
        bool have = false;

        while (!lex_at_end(l)) {
                int r = lex_other_line(l);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (have)
                        return lex_error(l, -EINVAL, l->line, 0,
                                         "second command line (a profile has one command; end a line with '\\' to continue it)");
                unsigned line = l->line;
                r = lex_command(l);
                if (r < 0)
                        return r;
                if (r == 0)
                        return lex_error(l, -EINVAL, line, 0, "no command");
                have = true;
        }
        if (!have)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL, "profile has no command");
        return 0;
}

/* "TYPE:" at the start of a Procfile line: returns the length of TYPE, 0
 * if the line does not start so. */
static size_t procfile_type_length(const Lexer *l) {
        size_t i = l->pos;
        while (i < l->size && (is_name_char(l->text[i]) || l->text[i] == '-'))
                i++;
        return i < l->size && l->text[i] == ':' ? i - l->pos : 0;
}

/* ---- MPI apps (Procfile only) ---- */

#define MPI_RANKS_KEY "MpiRanks="
#define MPI_RANKS_MAX_KEY "MpiRanksMax="
#define MPI_CPU_KEY "MpiCpu="
#define MPI_MEMORY_KEY "MpiMemory="

/* Whether the current line (after leading blanks) starts with key. */
/* "KEY=N": N decimal 1..NAP_MPI_RANKS_LIMIT, blanks around it stripped, once. */
static int lex_ranks(Lexer *l, const char *key, unsigned *ret) {
        char b[72];
        unsigned line = l->line;
        size_t start, end;
        lex_key_value(l, key, &start, &end);
        if (*ret != 0)
                return lex_error(l, -EINVAL, line, 0, "%s given twice", key);
        unsigned v = 0;
        size_t i = start;
        for (; i < end && i - start < 5 && l->text[i] >= '0' && l->text[i] <= '9'; i++)
                v = v * 10 + (unsigned) (l->text[i] - '0');
        if (i == start || i != end || l->text[start] == '0' || v > NAP_MPI_RANKS_LIMIT)
                return lex_error(l, -EINVAL, line, 0, "%s must be a number of ranks, 1 to %u, not '%s'", key,
                                 NAP_MPI_RANKS_LIMIT, shown(l->text + start, end - start, b));
        *ret = v;
        return 0;
}

typedef int (*AmountParseFn)(const char *s, uint64_t *ret_request, uint64_t *ret_limit, NapError *e);

/* "KEY=REQUEST[:LIMIT]" (resources.h), blanks around it stripped, once. */
static int lex_amount(Lexer *l, const char *key, AmountParseFn parse, uint64_t *request, uint64_t *limit) {
        char b[72];
        unsigned line = l->line;
        size_t start, end;
        lex_key_value(l, key, &start, &end);
        if (*request != 0)
                return lex_error(l, -EINVAL, line, 0, "%s given twice", key);
        _cleanup_free_ char *v = strndup(l->text + start, end - start);
        NapError why = NAP_ERROR_NULL;
        if (!v)
                return -ENOMEM;
        if (parse(v, request, limit, &why) < 0)
                return lex_error(l, -EINVAL, line, 0, "%s '%s': %s", key, shown(l->text + start, end - start, b),
                                 why.message);
        return 0;
}

/* 1 if the current line was MpiRanks=, MpiRanksMax=, MpiCpu= or
 * MpiMemory= (consumed). */
static int lex_mpi_setting(Lexer *l) {
        NapCompute *c = &l->profile->mpi_rank;
        if (lex_line_has_key(l, MPI_CPU_KEY))
                return lex_amount(l, MPI_CPU_KEY, nap_cpu_amount_parse, &c->request_cpu_milli, &c->limit_cpu_milli) ?: 1;
        if (lex_line_has_key(l, MPI_MEMORY_KEY))
                return lex_amount(l, MPI_MEMORY_KEY, nap_bytes_amount_parse, &c->request_memory, &c->limit_memory) ?: 1;
        if (lex_line_has_key(l, MPI_RANKS_KEY))
                return lex_ranks(l, MPI_RANKS_KEY, &l->profile->mpi_ranks) ?: 1;
        if (lex_line_has_key(l, MPI_RANKS_MAX_KEY))
                return lex_ranks(l, MPI_RANKS_MAX_KEY, &l->profile->mpi_ranks_max) ?: 1;
        return 0;
}

/* The command of "TYPE: COMMAND" (TYPE consumed) into a profile of its
 * own, *slot: the mpi and build processes. */
static int lex_process(Lexer *l, const char *type, NapProfile **slot) {
        unsigned line = l->line;
        if (*slot)
                return lex_error(l, -EINVAL, line, 0, "second '%s' process", type);
        NapProfile *outer = l->profile;
        int r = profile_new(slot);
        if (r < 0)
                return r;
        l->profile = *slot;
        r = lex_command(l);
        l->profile = outer;
        if (r == 0)
                return lex_error(l, -EINVAL, line, 0, "the %s process has no command", type);
        return r < 0 ? r : 0;
}

/* The build runs once per deploy, before any job: nothing to fill in. */
static int check_build(Lexer *l) {
        const NapProfile *b = l->profile->build;
        if (b && (b->params[0] || b->uses_port))
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "the build process takes no parameters and no port");
        return 0;
}

/* An MPI app: "mpi:" and no "web:"; np is the rank count, not a parameter;
 * 1 <= MpiRanks= <= MpiRanksMax=. */
static int check_mpi(Lexer *l, bool web) {
        NapProfile *p = l->profile;
        if (!p->mpi) {
                if (p->mpi_ranks || p->mpi_ranks_max || !nap_compute_is_empty(&p->mpi_rank))
                        return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                             "MpiRanks=, MpiRanksMax=, MpiCpu= and MpiMemory= need an mpi process");
                return 0;
        }
        if (web)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "a Procfile has a web or an mpi process, not both");
        if (p->mpi->uses_port)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "the mpi process has no port ({port}, $PORT): its ranks talk MPI");
        if (profile_param_index(p->mpi, NAP_MPI_RANKS_PARAM) >= 0)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "'" NAP_MPI_RANKS_PARAM "' is the number of ranks, not a placeholder");
        if (!p->mpi_ranks_max)
                p->mpi_ranks_max = MAX(NAP_MPI_RANKS_MAX_DEFAULT, p->mpi_ranks);
        if (!p->mpi_ranks)
                p->mpi_ranks = MIN(NAP_MPI_RANKS_DEFAULT, p->mpi_ranks_max);
        if (p->mpi_ranks > p->mpi_ranks_max)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "MpiRanks=%u is above MpiRanksMax=%u", p->mpi_ranks, p->mpi_ranks_max);
        return check_build(l);
}

/* The web process's command into the profile itself. */
static int lex_web(Lexer *l) {
        unsigned line = l->line;
        int r = lex_command(l);
        if (r == 0)
                return lex_error(l, -EINVAL, line, 0, "the web process has no command");
        return r < 0 ? r : 0;
}

/* Whether a line starts with "mpi:" (after blanks): only then is "build:"
 * nap's; in other Procfiles it stays a process type nap ignores. */
static bool procfile_has_mpi(const Lexer *l) {
        for (size_t i = 0; i < l->size;) {
                while (i < l->size && (l->text[i] == ' ' || l->text[i] == '\t'))
                        i++;
                if (l->size - i >= 4 && strneq(l->text + i, "mpi:", 4))
                        return true;
                const char *nl = memchr(l->text + i, '\n', l->size - i);
                i = nl ? (size_t) (nl - l->text) + 1 : l->size;
        }
        return false;
}

/* One "TYPE: COMMAND" line. */
static int lex_procfile_line(Lexer *l, bool mpi, bool *web) {
        size_t n = procfile_type_length(l);
        if (n == 0)
                return lex_error(l, -EINVAL, l->line, 0, "expected 'TYPE: COMMAND'");
        const char *type = l->text + l->pos;
        if (n == 3 && strneq(type, "web", 3)) {
                if (*web)
                        return lex_error(l, -EINVAL, l->line, 0, "second 'web' process");
                lex_advance(l, 4);
                *web = true;
                return lex_web(l);
        }
        if (n == 3 && strneq(type, "mpi", 3))
                return lex_advance(l, 4), lex_process(l, "mpi", &l->profile->mpi);
        if (mpi && n == 5 && strneq(type, "build", 5))
                return lex_advance(l, 6), lex_process(l, "build", &l->profile->build);
        lex_skip_line(l); /* other process types are not nap's */
        return 0;
}

static int parse_procfile(Lexer *l) {
        bool web = false, mpi = procfile_has_mpi(l);

        while (!lex_at_end(l)) {
                int r = lex_other_line(l);
                if (r == 0)
                        r = lex_mpi_setting(l);
                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                lex_skip_blanks(l);
                r = lex_procfile_line(l, mpi, &web);
                if (r < 0)
                        return r;
        }
        if (!web && !l->profile->mpi)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EINVAL, "Procfile has no web process");
        return check_mpi(l, web);
}

/* Whole-file checks before lexing: size, NUL bytes, UTF-8. */
static int check_text(Lexer *l) {
        if (l->size > NAP_PROFILE_MAX_SIZE)
                return nap_error_set(l->e, NAP_ERROR_INVALID_PROFILE, -EFBIG,
                                     "%s is too large (%zu bytes, at most %d)", l->origin, l->size,
                                     NAP_PROFILE_MAX_SIZE);
        const char *nul = memchr(l->text, 0, l->size);
        size_t bad = utf8_invalid_offset(l->text, nul ? (size_t) (nul - l->text) : l->size);
        if (!nul && bad == l->size)
                return 0;

        Lexer at = *l;
        lex_advance(&at, bad);
        return lex_error(&at, -EINVAL, at.line, at.col, "%s", nul && bad == (size_t) (nul - l->text) ?
                         "NUL byte" : "not valid UTF-8");
}

int nap_profile_parse(const char *text, size_t size, NapProfileFormat format, NapProfile **ret, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r;

        assert(ret);

        if (format < 0 || format >= _NAP_PROFILE_FORMAT_MAX || (!text && size > 0))
                return -EINVAL;
        r = profile_new(&p);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to allocate profile");

        Lexer l = {
                .text = text ?: "",
                .size = size,
                .line = 1,
                .col = 1,
                .origin = format == NAP_PROFILE_FORMAT_PROFILE ? "profile" : "Procfile",
                .profile = p,
                .e = e,
        };
        r = check_text(&l);
        if (r >= 0)
                r = format == NAP_PROFILE_FORMAT_PROFILE ? parse_profile(&l) : parse_procfile(&l);
        if (r == -ENOMEM)
                return nap_error_errno(e, r, "Failed to parse %s", l.origin);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

bool nap_profile_is_mpi(const NapProfile *p) {
        assert(p);
        return p->mpi;
}

const NapProfile *nap_profile_mpi(const NapProfile *p) {
        assert(p);
        return p->mpi;
}

const NapProfile *nap_profile_build(const NapProfile *p) {
        assert(p);
        return p->build;
}

unsigned nap_profile_mpi_ranks(const NapProfile *p) {
        assert(p);
        return p->mpi_ranks;
}

unsigned nap_profile_mpi_ranks_max(const NapProfile *p) {
        assert(p);
        return p->mpi_ranks_max;
}

const NapCompute *nap_profile_mpi_rank_compute(const NapProfile *p) {
        assert(p);
        return &p->mpi_rank;
}

char *const *nap_profile_parameters(const NapProfile *p) {
        assert(p);

        return p->params;
}

const char *nap_profile_health_path(const NapProfile *p) {
        assert(p);

        return p->health_path;
}

static bool is_hex_digit(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool nap_health_path_is_valid(const char *s) {
        size_t n;

        if (!s || s[0] != '/')
                return false;
        n = strnlen(s, NAP_HEALTH_PATH_MAX + 1);
        if (n > NAP_HEALTH_PATH_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '%') {
                        if (!is_hex_digit(s[i + 1]) || !is_hex_digit(s[i + 2]))
                                return false;
                        i += 2;
                } else if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                           !strchr("-._~!$&'()*+,;=:@/?", c))
                        return false;
        }
        return true;
}

const char *nap_profile_default(const NapProfile *p, const char *name) {
        assert(p);

        ssize_t i = name ? profile_param_index(p, name) : -1;
        return i >= 0 ? p->defaults[i] : NULL;
}

/* ---- parameter values ---- */

int nap_params_new(NapParams **ret) {
        assert(ret);

        NapParams *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

NapParams *nap_params_free(NapParams *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n; i++) {
                free(p->keys[i]);
                free(p->values[i]);
        }
        free(p);
        return NULL;
}

static int params_set_n(NapParams *p, const char *key, size_t key_len, const char *value, size_t value_len,
                        NapError *e) {
        char b[72];

        if (!param_name_is_valid(key, key_len))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Invalid parameter name '%s': must match [A-Za-z_][A-Za-z0-9_]{0,63}",
                                     shown(key, key_len, b));
        shown(key, key_len, b); /* a valid name fits: b is now the key, terminated */
        if (streq(b, "port"))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "'port' cannot be given as a parameter: the port is assigned by nap");
        if (nap_params_get(p, b))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Parameter '%s' is given twice", b);
        if (p->n >= NAP_PARAMS_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -E2BIG,
                                     "Too many parameters (at most %d)", NAP_PARAMS_MAX);
        int r = value_check(b, value, value_len, e);
        if (r < 0)
                return r;

        _cleanup_free_ char *k = strdup(b), *v = strndup(value, value_len);
        if (!k || !v)
                return nap_error_errno(e, -ENOMEM, "Failed to store parameter '%s'", b);
        p->keys[p->n] = TAKE_PTR(k);
        p->values[p->n++] = TAKE_PTR(v);
        return 0;
}

int nap_params_set(NapParams *p, const char *key, const char *value, NapError *e) {
        if (!p || !key || !value)
                return -EINVAL;
        return params_set_n(p, key, strlen(key), value, strlen(value), e);
}

size_t nap_params_size(const NapParams *p) {
        return p ? p->n : 0;
}

const char *nap_params_key(const NapParams *p, size_t i) {
        return p && i < p->n ? p->keys[i] : NULL;
}

const char *nap_params_value(const NapParams *p, size_t i) {
        return p && i < p->n ? p->values[i] : NULL;
}

const char *nap_params_get(const NapParams *p, const char *key) {
        for (size_t i = 0; p && key && i < p->n; i++)
                if (streq(p->keys[i], key))
                        return p->values[i];
        return NULL;
}

/* One "KEY=VALUE" item of s starting at *pos; leaves *pos at the ',' or
 * the end. Blanks around KEY are dropped; VALUE is taken as written. */
static int params_parse_item(NapParams *p, const char *s, size_t size, size_t *pos, NapError *e) {
        _cleanup_(buf_done) Buf v = {};
        size_t i = *pos, k0, k1;
        char b[72];

        while (i < size && s[i] == ' ')
                i++;
        for (k0 = i; i < size && s[i] != '=' && s[i] != ','; i++)
                ;
        for (k1 = i; k1 > k0 && s[k1 - 1] == ' '; k1--)
                ;
        if (i >= size || s[i] != '=')
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Expected KEY=VALUE in the parameters, got '%s'", shown(s + *pos, i - *pos, b));
        for (i++; i < size && s[i] != ','; i++) {
                if (s[i] == '\\' && (i + 1 >= size || (s[i + 1] != ',' && s[i + 1] != '\\')))
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "Invalid escape in the value of parameter '%s': only '\\,' and '\\\\' are allowed",
                                             shown(s + k0, k1 - k0, b));
                if (s[i] == '\\')
                        i++;
                if (buf_put(&v, s + i, 1) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to parse parameters");
        }
        *pos = i;
        return params_set_n(p, s + k0, k1 - k0, v.data ?: "", v.len, e);
}

int nap_params_parse(const char *s, size_t size, NapParams **ret, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        int r;

        assert(ret);

        if (!s && size > 0)
                return -EINVAL;
        if (size > 0 && memchr(s, 0, size))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "The parameters contain a NUL byte at offset %zu",
                                     (size_t) ((const char *) memchr(s, 0, size) - s));
        r = nap_params_new(&p);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to allocate parameters");

        for (size_t pos = 0; pos < size;) {
                r = params_parse_item(p, s, size, &pos, e);
                if (r < 0)
                        return r;
                if (pos < size && pos + 1 == size)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "Expected KEY=VALUE after the last ',' of the parameters");
                pos += pos < size; /* the ',' */
        }
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- substitution ---- */

/* Every given key must be a parameter of the profile. */
static int check_param_keys(const NapProfile *p, const NapParams *params, NapError *e) {
        for (size_t i = 0; i < nap_params_size(params); i++) {
                const char *k = params->keys[i];
                if (streq(k, "port"))
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "'port' cannot be given as a parameter: the port is assigned by nap");
                if (profile_param_index(p, k) >= 0)
                        continue;
                _cleanup_free_ char *known = strv_join(p->params, ", ");
                if (!known)
                        return nap_error_errno(e, -ENOMEM, "Failed to check parameters");
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Unknown parameter '%s' (the profile's parameters: %s)", k,
                                     *known ? known : "none");
        }
        return 0;
}

/* The value of every parameter, from params or the default. */
static int collect_values(const NapProfile *p, const NapParams *params, NapParams **ret, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *values = NULL;
        int r = nap_params_new(&values);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to allocate parameters");

        for (size_t i = 0; p->params[i]; i++) {
                const char *v = nap_params_get(params, p->params[i]) ?: p->defaults[i];
                if (!v)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "Missing value for parameter '%s'", p->params[i]);
                r = nap_params_set(values, p->params[i], v, e);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(values);
        return 0;
}

static char *word_substitute(const Word *w, const NapParams *values, const char *port) {
        _cleanup_(buf_done) Buf b = {};

        for (size_t i = 0; i < w->n_parts; i++) {
                const Part *part = &w->parts[i];
                const char *s = part->type == PART_LITERAL ? part->text :
                                part->type == PART_PORT ? port : nap_params_get(values, part->text);
                if (buf_puts(&b, s) < 0)
                        return NULL;
        }
        return buf_steal(&b);
}

int nap_profile_substitute(const NapProfile *p, const NapParams *params, unsigned port,
                           char ***ret_argv, NapParams **ret_values, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *values = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        char port_str[16];
        int r;

        assert(p);

        if (p->mpi)
                return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "This is an MPI app (its Procfile has an mpi process): start it with start-mpi");
        r = check_param_keys(p, params, e);
        if (r < 0)
                return r;
        r = collect_values(p, params, &values, e);
        if (r < 0)
                return r;
        if (p->uses_port && (port == 0 || port > 65535))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "The profile uses the port, but no valid port was assigned (%u)", port);
        snprintf(port_str, sizeof port_str, "%u", port);

        argv = calloc(p->n_words + 1, sizeof(char *));
        if (!argv)
                return nap_error_errno(e, -ENOMEM, "Failed to substitute parameters");
        for (size_t i = 0; i < p->n_words; i++) {
                argv[i] = word_substitute(&p->words[i], values, port_str);
                if (!argv[i])
                        return nap_error_errno(e, -ENOMEM, "Failed to substitute parameters");
        }
        if (ret_argv)
                *ret_argv = TAKE_PTR(argv);
        if (ret_values)
                *ret_values = TAKE_PTR(values);
        return 0;
}

/* ---- formatting ---- */

/* Characters that stand for themselves outside quotes. */
static bool is_plain(char c) {
        return is_name_char(c) || (unsigned char) c >= 0x80 || strchr("-./:=@%+,", c);
}

/* first: the line's first word, which must not read back as a setting. */
static int format_word(Buf *b, const char *w, bool first) {
        bool plain = *w && !(first && startswith(w, HEALTH_PATH_KEY));
        for (const char *c = w; *c && plain; c++)
                plain = is_plain(*c);
        if (plain)
                return buf_puts(b, w);

        /* Single quotes: everything literal but braces, which are doubled;
         * a quote itself closes, adds an escaped quote, and reopens. */
        int r = buf_puts(b, "'");
        for (const char *c = w; *c && r >= 0; c++)
                r = *c == '\'' ? buf_puts(b, "'\\''") :
                    *c == '{' ? buf_puts(b, "{{") :
                    *c == '}' ? buf_puts(b, "}}") : buf_put(b, c, 1);
        return r < 0 ? r : buf_puts(b, "'");
}

char *nap_profile_format_command(char *const *argv) {
        _cleanup_(buf_done) Buf b = {};

        STRV_FOREACH(w, argv) {
                if (w != argv && buf_puts(&b, " ") < 0)
                        return NULL;
                if (format_word(&b, *w, w == argv) < 0)
                        return NULL;
        }
        return buf_steal(&b);
}
