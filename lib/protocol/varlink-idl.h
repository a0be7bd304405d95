/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The varlink interface definition language
 * (https://varlink.org/Interface-Definition): parse an interface
 * description and check JSON parameters against it.
 *
 *   interface  = "interface" interface-name member+
 *   member     = "type" Name (struct | enum)
 *              | "method" Name struct "->" struct
 *              | "error" Name struct
 *   struct     = "(" [field-name ":" type ("," field-name ":" type)*] ")"
 *   enum       = "(" field-name ("," field-name)* ")"
 *   type       = ["?"] ("bool" | "int" | "float" | "string" | "object"
 *                       | Name | struct | enum | "[]" type | "[string]" type)
 *                (no "??": the element of an array or map may be
 *                 nullable again, a type itself only once)
 *   "#" starts a comment that runs to the end of the line.
 *
 * Names: interface [A-Za-z]([-]*[A-Za-z0-9])*(.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+,
 * types/methods/errors [A-Z][A-Za-z0-9]* (one namespace), fields and enum
 * values [A-Za-z](_?[A-Za-z0-9])*. Beyond the grammar the parser refuses
 * duplicate members, duplicate fields or enum values, and named types that
 * are not defined as a "type" of the same interface.
 *
 * Validation is strict: every non-nullable field must be present and not
 * null, every present field must be declared and have the declared type
 * ("float" accepts integers, "object" any JSON object). */

#include <jansson.h>
#include <stdbool.h>

#include "base/macro.h"

typedef struct VarlinkIdl VarlinkIdl;

bool varlink_interface_name_is_valid(const char *s) _pure_;
bool varlink_symbol_name_is_valid(const char *s) _pure_;
bool varlink_field_name_is_valid(const char *s) _pure_;
/* "interface.Symbol", as in a call's "method" or a reply's "error". */
bool varlink_qualified_name_is_valid(const char *s) _pure_;

/* Parses text (NUL-terminated). On a syntax or consistency error returns
 * -EBADMSG and, where given, the 1-based line and column of the offending
 * token; -ENOMEM on allocation failure. *ret is set only on success. */
int varlink_idl_parse(const char *text, VarlinkIdl **ret, unsigned *ret_line, unsigned *ret_column);
VarlinkIdl *varlink_idl_free(VarlinkIdl *idl);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkIdl *, varlink_idl_free);

const char *varlink_idl_get_name(const VarlinkIdl *idl) _pure_;
bool varlink_idl_has_method(const VarlinkIdl *idl, const char *method) _pure_;
bool varlink_idl_has_error(const VarlinkIdl *idl, const char *error) _pure_;

/* Check parameters (an object; NULL means {}) against the input or output
 * struct of a method, or against an error's struct. Names are unqualified
 * ("GetInfo"). Returns 0 if valid, -ENOENT if the member does not exist,
 * -EINVAL if invalid with *ret_bad_field (if given) pointing at the name of
 * the first bad top-level field: first in the order of the object's keys
 * (undeclared or wrongly typed), then in declaration order (missing). The
 * name points into parameters or idl and lives as long as both. */
int varlink_idl_validate_method_input(const VarlinkIdl *idl, const char *method, json_t *parameters, const char **ret_bad_field);
int varlink_idl_validate_method_output(const VarlinkIdl *idl, const char *method, json_t *parameters, const char **ret_bad_field);
int varlink_idl_validate_error(const VarlinkIdl *idl, const char *error, json_t *parameters, const char **ret_bad_field);

/* ---- looking inside: for adapters that map the interface onto another
 * protocol (D-Bus, lib/protocol/bus-json.h). Types are borrowed from idl;
 * a named type is seen as its definition. */

typedef struct Type VarlinkIdlType;

typedef enum VarlinkIdlKind {
        VARLINK_IDL_BOOL,
        VARLINK_IDL_INT,
        VARLINK_IDL_FLOAT,
        VARLINK_IDL_STRING,
        VARLINK_IDL_OBJECT,
        VARLINK_IDL_STRUCT,
        VARLINK_IDL_ENUM,
        VARLINK_IDL_ARRAY,
        VARLINK_IDL_MAP,
} VarlinkIdlKind;

/* The methods in the order of the text. */
size_t varlink_idl_n_methods(const VarlinkIdl *idl) _pure_;
const char *varlink_idl_method_name(const VarlinkIdl *idl, size_t i) _pure_;
/* A method's input and output structs; NULL if there is no such method. */
const VarlinkIdlType *varlink_idl_method_input(const VarlinkIdl *idl, const char *method) _pure_;
const VarlinkIdlType *varlink_idl_method_output(const VarlinkIdl *idl, const char *method) _pure_;

VarlinkIdlKind varlink_idl_type_kind(const VarlinkIdlType *t) _pure_;
bool varlink_idl_type_nullable(const VarlinkIdlType *t) _pure_;
/* ARRAY, MAP: the element's type. */
const VarlinkIdlType *varlink_idl_type_element(const VarlinkIdlType *t) _pure_;
/* STRUCT, ENUM: the fields (values) in declaration order; an enum value
 * has no type (NULL). */
size_t varlink_idl_type_n_fields(const VarlinkIdlType *t) _pure_;
const char *varlink_idl_type_field_name(const VarlinkIdlType *t, size_t i) _pure_;
const VarlinkIdlType *varlink_idl_type_field_type(const VarlinkIdlType *t, size_t i) _pure_;
/* STRUCT: the type of the field called name; NULL if there is none. */
const VarlinkIdlType *varlink_idl_type_field(const VarlinkIdlType *t, const char *name) _pure_;
