/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/varlink-idl.h"

/* Nesting of types in a description, and of values during validation.
 * Both bound the recursion; JSON itself is capped by jansson (2048). */
#define IDL_NESTING_MAX 64U
#define VALIDATE_DEPTH_MAX 256U
#define NAME_MAX_LEN 255U

typedef enum TypeKind {
        TYPE_BOOL,
        TYPE_INT,
        TYPE_FLOAT,
        TYPE_STRING,
        TYPE_OBJECT,
        TYPE_NAMED,
        TYPE_STRUCT,
        TYPE_ENUM,
        TYPE_ARRAY,
        TYPE_MAP,
} TypeKind;

typedef struct Type Type;

typedef struct Field {
        char *name;
        Type *type; /* NULL for an enum value */
} Field;

struct Type {
        TypeKind kind;
        bool nullable;
        Type *element;      /* TYPE_ARRAY, TYPE_MAP: owned */
        char *name;         /* TYPE_NAMED */
        const Type *target; /* TYPE_NAMED: the definition, set once all members are parsed */
        size_t offset;      /* TYPE_NAMED: where in the text, for error locations */
        Field *fields;      /* TYPE_STRUCT, TYPE_ENUM */
        size_t n_fields;
};

typedef enum MemberKind {
        MEMBER_TYPE,
        MEMBER_METHOD,
        MEMBER_ERROR,
} MemberKind;

typedef struct Member {
        MemberKind kind;
        char *name;
        Type *type;   /* the type's definition, a method's input, an error's struct */
        Type *output; /* a method's output */
} Member;

struct VarlinkIdl {
        char *name;
        Member *members;
        size_t n_members;
};

/* ---- names ---- */

static bool is_upper(char c) {
        return c >= 'A' && c <= 'Z';
}

static bool is_alpha(char c) {
        return is_upper(c) || (c >= 'a' && c <= 'z');
}

static bool is_alnum(char c) {
        return is_alpha(c) || (c >= '0' && c <= '9');
}

/* One dot-separated label: [A-Za-z0-9]([-]*[A-Za-z0-9])*, the first
 * label starting with a letter. */
static bool label_is_valid(const char *s, size_t n, bool first) {
        if (n == 0 || !(first ? is_alpha(s[0]) : is_alnum(s[0])) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool interface_name_valid_n(const char *s, size_t n) {
        size_t labels = 0;

        if (n == 0 || n > NAME_MAX_LEN)
                return false;
        for (size_t start = 0; start <= n; labels++) {
                const char *dot = memchr(s + start, '.', n - start);
                size_t end = dot ? (size_t) (dot - s) : n;
                if (!label_is_valid(s + start, end - start, labels == 0))
                        return false;
                start = end + 1;
        }
        return labels >= 2;
}

static bool symbol_name_valid_n(const char *s, size_t n) {
        if (n == 0 || n > NAME_MAX_LEN || !is_upper(s[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(s[i]))
                        return false;
        return true;
}

/* [A-Za-z](_?[A-Za-z0-9])*: '_' only between two alphanumerics. */
static bool field_name_valid_n(const char *s, size_t n) {
        if (n == 0 || n > NAME_MAX_LEN || !is_alpha(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(s[i]) && !(s[i] == '_' && s[i - 1] != '_'))
                        return false;
        return true;
}

bool varlink_interface_name_is_valid(const char *s) {
        return s && interface_name_valid_n(s, strlen(s));
}

bool varlink_symbol_name_is_valid(const char *s) {
        return s && symbol_name_valid_n(s, strlen(s));
}

bool varlink_field_name_is_valid(const char *s) {
        return s && field_name_valid_n(s, strlen(s));
}

bool varlink_qualified_name_is_valid(const char *s) {
        const char *dot = s ? strrchr(s, '.') : NULL;
        return dot && interface_name_valid_n(s, dot - s) && varlink_symbol_name_is_valid(dot + 1);
}

/* ---- the model ---- */

static Type *type_new(TypeKind kind) {
        Type *t = calloc(1, sizeof *t);
        if (t)
                t->kind = kind;
        return t;
}

static Type *type_free(Type *t) {
        if (!t)
                return NULL;
        type_free(t->element);
        free(t->name);
        for (size_t i = 0; i < t->n_fields; i++) {
                free(t->fields[i].name);
                type_free(t->fields[i].type);
        }
        free(t->fields);
        free(t);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Type *, type_free);

static void member_done(Member *m) {
        free(m->name);
        type_free(m->type);
        type_free(m->output);
        *m = (Member) {};
}

VarlinkIdl *varlink_idl_free(VarlinkIdl *idl) {
        if (!idl)
                return NULL;
        for (size_t i = 0; i < idl->n_members; i++)
                member_done(idl->members + i);
        free(idl->members);
        free(idl->name);
        free(idl);
        return NULL;
}

static const Field *type_find_field(const Type *t, const char *name) {
        for (size_t i = 0; i < t->n_fields; i++)
                if (streq(t->fields[i].name, name))
                        return t->fields + i;
        return NULL;
}

static const Member *idl_find(const VarlinkIdl *idl, const char *name) {
        for (size_t i = 0; i < idl->n_members; i++)
                if (streq(idl->members[i].name, name))
                        return idl->members + i;
        return NULL;
}

static const Member *idl_find_kind(const VarlinkIdl *idl, MemberKind kind, const char *name) {
        const Member *m = name ? idl_find(idl, name) : NULL;
        return m && m->kind == kind ? m : NULL;
}

const char *varlink_idl_get_name(const VarlinkIdl *idl) {
        return idl ? idl->name : NULL;
}

bool varlink_idl_has_method(const VarlinkIdl *idl, const char *method) {
        return idl && idl_find_kind(idl, MEMBER_METHOD, method);
}

bool varlink_idl_has_error(const VarlinkIdl *idl, const char *error) {
        return idl && idl_find_kind(idl, MEMBER_ERROR, error);
}

/* ---- tokens ---- */

typedef enum TokenKind {
        TOKEN_END,
        TOKEN_WORD,
        TOKEN_LPAREN,
        TOKEN_RPAREN,
        TOKEN_COLON,
        TOKEN_COMMA,
        TOKEN_QUESTION,
        TOKEN_LBRACKET,
        TOKEN_RBRACKET,
        TOKEN_ARROW,
        TOKEN_INVALID,
} TokenKind;

typedef struct Parser {
        const char *text;
        const char *p;    /* the next unread character */
        TokenKind token;  /* the current token … */
        const char *word; /* … starting here … */
        size_t word_len;  /* … this long */
        unsigned depth;
} Parser;

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_word_char(char c) {
        return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

/* Whitespace and comments ("#" to the end of the line) separate tokens. */
static void skip_blank(Parser *P) {
        for (;;) {
                if (is_blank(*P->p))
                        P->p++;
                else if (*P->p == '#')
                        while (*P->p && *P->p != '\n')
                                P->p++;
                else
                        return;
        }
}

static TokenKind punctuation(char c) {
        switch (c) {
        case '(': return TOKEN_LPAREN;
        case ')': return TOKEN_RPAREN;
        case ':': return TOKEN_COLON;
        case ',': return TOKEN_COMMA;
        case '?': return TOKEN_QUESTION;
        case '[': return TOKEN_LBRACKET;
        case ']': return TOKEN_RBRACKET;
        default: return TOKEN_INVALID;
        }
}

static void next_token(Parser *P) {
        skip_blank(P);
        P->word = P->p;
        if (*P->p == 0)
                P->token = TOKEN_END;
        else if (P->p[0] == '-' && P->p[1] == '>') {
                P->token = TOKEN_ARROW;
                P->p += 2;
        } else if (punctuation(*P->p) != TOKEN_INVALID)
                P->token = punctuation(*P->p++);
        else if (is_word_char(*P->p)) {
                P->token = TOKEN_WORD;
                while (is_word_char(*P->p) && !(P->p[0] == '-' && P->p[1] == '>'))
                        P->p++;
        } else
                P->token = TOKEN_INVALID;
        P->word_len = P->p - P->word;
}

static bool word_is(const Parser *P, const char *w) {
        return P->token == TOKEN_WORD && P->word_len == strlen(w) && memcmp(P->word, w, P->word_len) == 0;
}

static int expect(Parser *P, TokenKind t) {
        if (P->token != t)
                return -EBADMSG;
        next_token(P);
        return 0;
}

static int take_word(Parser *P, bool (*valid)(const char *, size_t), char **ret) {
        if (P->token != TOKEN_WORD || !valid(P->word, P->word_len))
                return -EBADMSG;
        char *s = strndup(P->word, P->word_len);
        if (!s)
                return -ENOMEM;
        next_token(P);
        *ret = s;
        return 0;
}

/* "?", "[]" and "[string]" are glued to the type they modify in the
 * reference grammar; a blank after them is refused. */
static int advance_glued(Parser *P, size_t n) {
        P->p += n;
        if (is_blank(*P->p) || *P->p == '#')
                return -EBADMSG;
        next_token(P);
        return 0;
}

/* ---- types ---- */

static int parse_type(Parser *P, Type **ret);

static int fields_append(Type *t, char *name, Type *ft) {
        Field *f = reallocarray(t->fields, t->n_fields + 1, sizeof *f);
        if (!f) {
                free(name);
                type_free(ft);
                return -ENOMEM;
        }
        f[t->n_fields++] = (Field) { .name = name, .type = ft };
        t->fields = f;
        return 0;
}

/* One "name: type" of a struct or one value of an enum; the first field
 * decides which of the two t is. */
static int parse_field(Parser *P, Type *t, bool allow_enum) {
        _cleanup_free_ char *name = NULL;
        _cleanup_(type_freep) Type *ft = NULL;
        int r;

        r = take_word(P, field_name_valid_n, &name);
        if (r < 0)
                return r;
        if (t->n_fields == 0 && P->token != TOKEN_COLON) {
                if (!allow_enum)
                        return -EBADMSG;
                t->kind = TYPE_ENUM;
        }
        if (t->kind == TYPE_STRUCT) {
                r = expect(P, TOKEN_COLON);
                if (r < 0)
                        return r;
                r = parse_type(P, &ft);
                if (r < 0)
                        return r;
        }
        if (type_find_field(t, name))
                return -EBADMSG;
        return fields_append(t, TAKE_PTR(name), TAKE_PTR(ft));
}

/* "(" … ")": a struct, or an enum where allowed. "()" is an empty struct. */
static int parse_fields(Parser *P, bool allow_enum, Type **ret) {
        _cleanup_(type_freep) Type *t = NULL;
        int r;

        r = expect(P, TOKEN_LPAREN);
        if (r < 0)
                return r;
        t = type_new(TYPE_STRUCT);
        if (!t)
                return -ENOMEM;
        while (P->token != TOKEN_RPAREN) {
                if (t->n_fields > 0) {
                        r = expect(P, TOKEN_COMMA);
                        if (r < 0)
                                return r;
                }
                r = parse_field(P, t, allow_enum);
                if (r < 0)
                        return r;
        }
        next_token(P);
        *ret = TAKE_PTR(t);
        return 0;
}

/* "[]" element or "[string]" element; P is at "[". */
static int parse_container(Parser *P, Type **ret) {
        _cleanup_(type_freep) Type *t = NULL;
        TypeKind kind;
        size_t n;
        int r;

        if (P->p[0] == ']') {
                kind = TYPE_ARRAY;
                n = 1;
        } else if (strneq(P->p, "string]", 7)) {
                kind = TYPE_MAP;
                n = 7;
        } else
                return -EBADMSG;
        r = advance_glued(P, n);
        if (r < 0)
                return r;
        t = type_new(kind);
        if (!t)
                return -ENOMEM;
        r = parse_type(P, &t->element);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

static int parse_named(Parser *P, Type **ret) {
        static const struct {
                const char *word;
                TypeKind kind;
        } basic[] = {
                { "bool", TYPE_BOOL },     { "int", TYPE_INT },       { "float", TYPE_FLOAT },
                { "string", TYPE_STRING }, { "object", TYPE_OBJECT },
        };
        _cleanup_(type_freep) Type *t = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(basic); i++)
                if (word_is(P, basic[i].word)) {
                        t = type_new(basic[i].kind);
                        if (!t)
                                return -ENOMEM;
                        next_token(P);
                        *ret = TAKE_PTR(t);
                        return 0;
                }
        t = type_new(TYPE_NAMED);
        if (!t)
                return -ENOMEM;
        t->offset = P->word - P->text;
        r = take_word(P, symbol_name_valid_n, &t->name);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

static int parse_type_nonnull(Parser *P, Type **ret) {
        switch (P->token) {
        case TOKEN_LPAREN:
                return parse_fields(P, true, ret);
        case TOKEN_LBRACKET:
                return parse_container(P, ret);
        case TOKEN_WORD:
                return parse_named(P, ret);
        default:
                return -EBADMSG;
        }
}

static int parse_type(Parser *P, Type **ret) {
        bool nullable = P->token == TOKEN_QUESTION;
        int r;

        if (nullable) {
                r = advance_glued(P, 0);
                if (r < 0)
                        return r;
                if (P->token == TOKEN_QUESTION) /* "??" */
                        return -EBADMSG;
        }
        if (++P->depth > IDL_NESTING_MAX)
                return -EBADMSG;
        r = parse_type_nonnull(P, ret);
        P->depth--;
        if (r >= 0)
                (*ret)->nullable = nullable;
        return r;
}

/* ---- members ---- */

static int parse_member_body(Parser *P, Member *m) {
        int r;

        if (word_is(P, "type"))
                m->kind = MEMBER_TYPE;
        else if (word_is(P, "method"))
                m->kind = MEMBER_METHOD;
        else if (word_is(P, "error"))
                m->kind = MEMBER_ERROR;
        else
                return -EBADMSG;
        next_token(P);
        r = take_word(P, symbol_name_valid_n, &m->name);
        if (r < 0)
                return r;
        r = parse_fields(P, m->kind == MEMBER_TYPE, &m->type);
        if (r < 0 || m->kind != MEMBER_METHOD)
                return r;
        r = expect(P, TOKEN_ARROW);
        if (r < 0)
                return r;
        return parse_fields(P, false, &m->output);
}

static int parse_member(Parser *P, VarlinkIdl *idl) {
        _cleanup_(member_done) Member m = {};
        const char *start = P->word;
        int r;

        r = parse_member_body(P, &m);
        if (r < 0)
                return r;
        if (idl_find(idl, m.name)) {
                P->word = start; /* point the error at the duplicate */
                return -EBADMSG;
        }
        Member *a = reallocarray(idl->members, idl->n_members + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        idl->members = a;
        a[idl->n_members++] = m;
        m = (Member) {};
        return 0;
}

static int parse_interface(Parser *P, VarlinkIdl *idl) {
        int r;

        next_token(P);
        if (!word_is(P, "interface"))
                return -EBADMSG;
        next_token(P);
        r = take_word(P, interface_name_valid_n, &idl->name);
        if (r < 0)
                return r;
        do {
                r = parse_member(P, idl);
                if (r < 0)
                        return r;
        } while (P->token != TOKEN_END);
        return 0;
}

/* Every named type must be a "type" member of this interface. Returns
 * -EBADMSG with *where at the offending reference. */
static int resolve_type(const VarlinkIdl *idl, Type *t, size_t *where) {
        int r;

        if (!t)
                return 0;
        if (t->kind == TYPE_NAMED) {
                const Member *m = idl_find_kind(idl, MEMBER_TYPE, t->name);
                if (!m) {
                        *where = t->offset;
                        return -EBADMSG;
                }
                t->target = m->type;
        }
        r = resolve_type(idl, t->element, where);
        for (size_t i = 0; r >= 0 && i < t->n_fields; i++)
                r = resolve_type(idl, t->fields[i].type, where);
        return r;
}

static int idl_resolve(VarlinkIdl *idl, size_t *where) {
        for (size_t i = 0; i < idl->n_members; i++) {
                int r = resolve_type(idl, idl->members[i].type, where);
                if (r >= 0)
                        r = resolve_type(idl, idl->members[i].output, where);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void locate(const char *text, size_t offset, unsigned *ret_line, unsigned *ret_column) {
        unsigned line = 1, column = 1;

        for (size_t i = 0; i < offset && text[i]; i++) {
                if (text[i] == '\n') {
                        line++;
                        column = 1;
                } else
                        column++;
        }
        if (ret_line)
                *ret_line = line;
        if (ret_column)
                *ret_column = column;
}

int varlink_idl_parse(const char *text, VarlinkIdl **ret, unsigned *ret_line, unsigned *ret_column) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        Parser P = { .text = text, .p = text };
        size_t where = 0;
        int r;

        if (!text || !ret)
                return -EINVAL;
        idl = calloc(1, sizeof *idl);
        if (!idl)
                return -ENOMEM;
        r = parse_interface(&P, idl);
        if (r == -EBADMSG)
                where = P.word - text;
        if (r >= 0)
                r = idl_resolve(idl, &where);
        if (r < 0) {
                if (r == -EBADMSG)
                        locate(text, where, ret_line, ret_column);
                return r;
        }
        *ret = TAKE_PTR(idl);
        return 0;
}

/* ---- validation ---- */

static int validate_value(const Type *t, json_t *v, unsigned depth);

/* The keys of obj in their order (undeclared or wrong), then the
 * declared fields in theirs (missing). */
static int validate_fields(const Type *t, json_t *obj, unsigned depth, const char **ret_bad) {
        const char *key;
        json_t *value;

        json_object_foreach(obj, key, value) {
                const Field *f = type_find_field(t, key);
                if (!f || validate_value(f->type, value, depth + 1) < 0) {
                        *ret_bad = key;
                        return -EINVAL;
                }
        }
        for (size_t i = 0; i < t->n_fields; i++)
                if (!t->fields[i].type->nullable && !json_object_get(obj, t->fields[i].name)) {
                        *ret_bad = t->fields[i].name;
                        return -EINVAL;
                }
        return 0;
}

static int validate_enum(const Type *t, json_t *v) {
        const char *s = json_string_value(v);
        return s && type_find_field(t, s) ? 0 : -EINVAL;
}

static int validate_elements(const Type *element, json_t *v, unsigned depth) {
        size_t i;
        const char *key;
        json_t *e;

        if (json_is_array(v)) {
                json_array_foreach(v, i, e)
                        if (validate_value(element, e, depth + 1) < 0)
                                return -EINVAL;
                return 0;
        }
        json_object_foreach(v, key, e)
                if (validate_value(element, e, depth + 1) < 0)
                        return -EINVAL;
        return 0;
}

static int validate_value(const Type *t, json_t *v, unsigned depth) {
        const char *bad;

        if (depth > VALIDATE_DEPTH_MAX)
                return -EINVAL;
        if (!v || json_is_null(v))
                return t->nullable ? 0 : -EINVAL;
        switch (t->kind) {
        case TYPE_BOOL:
                return json_is_boolean(v) ? 0 : -EINVAL;
        case TYPE_INT:
                return json_is_integer(v) ? 0 : -EINVAL;
        case TYPE_FLOAT:
                return json_is_number(v) ? 0 : -EINVAL;
        case TYPE_STRING:
                return json_is_string(v) ? 0 : -EINVAL;
        case TYPE_OBJECT:
                return json_is_object(v) ? 0 : -EINVAL;
        case TYPE_NAMED:
                return validate_value(t->target, v, depth + 1);
        case TYPE_STRUCT:
                return json_is_object(v) ? validate_fields(t, v, depth, &bad) : -EINVAL;
        case TYPE_ENUM:
                return validate_enum(t, v);
        case TYPE_ARRAY:
                return json_is_array(v) ? validate_elements(t->element, v, depth) : -EINVAL;
        case TYPE_MAP:
                return json_is_object(v) ? validate_elements(t->element, v, depth) : -EINVAL;
        }
        return -EINVAL;
}

static int validate_top(const Type *t, json_t *parameters, const char **ret_bad_field) {
        json_auto_t *empty = NULL;
        const char *bad = NULL;
        int r;

        if (!parameters) {
                parameters = empty = json_object();
                if (!parameters)
                        return -ENOMEM;
        }
        if (!json_is_object(parameters))
                r = -EINVAL;
        else
                r = validate_fields(t, parameters, 0, &bad);
        if (r < 0 && ret_bad_field)
                *ret_bad_field = bad;
        return r;
}

int varlink_idl_validate_method_input(const VarlinkIdl *idl, const char *method, json_t *parameters, const char **ret_bad_field) {
        const Member *m = idl ? idl_find_kind(idl, MEMBER_METHOD, method) : NULL;
        return m ? validate_top(m->type, parameters, ret_bad_field) : -ENOENT;
}

int varlink_idl_validate_method_output(const VarlinkIdl *idl, const char *method, json_t *parameters, const char **ret_bad_field) {
        const Member *m = idl ? idl_find_kind(idl, MEMBER_METHOD, method) : NULL;
        return m ? validate_top(m->output, parameters, ret_bad_field) : -ENOENT;
}

int varlink_idl_validate_error(const VarlinkIdl *idl, const char *error, json_t *parameters, const char **ret_bad_field) {
        const Member *m = idl ? idl_find_kind(idl, MEMBER_ERROR, error) : NULL;
        return m ? validate_top(m->type, parameters, ret_bad_field) : -ENOENT;
}

/* ---- looking inside --------------------------------------------------- */

size_t varlink_idl_n_methods(const VarlinkIdl *idl) {
        size_t n = 0;
        assert(idl);
        for (size_t i = 0; i < idl->n_members; i++)
                n += idl->members[i].kind == MEMBER_METHOD;
        return n;
}

const char *varlink_idl_method_name(const VarlinkIdl *idl, size_t i) {
        assert(idl);
        for (size_t k = 0; k < idl->n_members; k++)
                if (idl->members[k].kind == MEMBER_METHOD && i-- == 0)
                        return idl->members[k].name;
        return NULL;
}

const VarlinkIdlType *varlink_idl_method_input(const VarlinkIdl *idl, const char *method) {
        const Member *m = idl_find_kind(idl, MEMBER_METHOD, method);
        return m ? m->type : NULL;
}

const VarlinkIdlType *varlink_idl_method_output(const VarlinkIdl *idl, const char *method) {
        const Member *m = idl_find_kind(idl, MEMBER_METHOD, method);
        return m ? m->output : NULL;
}

/* A named type is its definition, nullable or not as named. */
static const Type *type_definition(const Type *t) {
        assert(t);
        return t->kind == TYPE_NAMED ? t->target : t;
}

VarlinkIdlKind varlink_idl_type_kind(const VarlinkIdlType *t) {
        static const VarlinkIdlKind kinds[] = {
                [TYPE_BOOL] = VARLINK_IDL_BOOL,     [TYPE_INT] = VARLINK_IDL_INT,
                [TYPE_FLOAT] = VARLINK_IDL_FLOAT,   [TYPE_STRING] = VARLINK_IDL_STRING,
                [TYPE_OBJECT] = VARLINK_IDL_OBJECT, [TYPE_STRUCT] = VARLINK_IDL_STRUCT,
                [TYPE_ENUM] = VARLINK_IDL_ENUM,     [TYPE_ARRAY] = VARLINK_IDL_ARRAY,
                [TYPE_MAP] = VARLINK_IDL_MAP,
        };
        return kinds[type_definition(t)->kind];
}

bool varlink_idl_type_nullable(const VarlinkIdlType *t) {
        assert(t);
        return t->nullable;
}

const VarlinkIdlType *varlink_idl_type_element(const VarlinkIdlType *t) {
        return type_definition(t)->element;
}

size_t varlink_idl_type_n_fields(const VarlinkIdlType *t) {
        return type_definition(t)->n_fields;
}

const char *varlink_idl_type_field_name(const VarlinkIdlType *t, size_t i) {
        t = type_definition(t);
        return i < t->n_fields ? t->fields[i].name : NULL;
}

const VarlinkIdlType *varlink_idl_type_field_type(const VarlinkIdlType *t, size_t i) {
        t = type_definition(t);
        return i < t->n_fields ? t->fields[i].type : NULL;
}

const VarlinkIdlType *varlink_idl_type_field(const VarlinkIdlType *t, const char *name) {
        t = type_definition(t);
        for (size_t i = 0; name && i < t->n_fields; i++)
                if (streq(t->fields[i].name, name))
                        return t->fields[i].type;
        return NULL;
}
