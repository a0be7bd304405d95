/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A strict JSON parser producing jansson values, for the varlink hot path.
 * It accepts exactly what jansson 2.14's
 * json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL) accepts and builds
 * the same tree, node for node and type for type:
 *   - the top-level value is an object or an array (no JSON_DECODE_ANY),
 *     followed by nothing but whitespace (space, \t, \n, \r);
 *   - a number with '.', 'e' or 'E' is a real (strtod(), as jansson; one
 *     that overflows to ±HUGE_VAL is refused, one that underflows is 0 or
 *     subnormal), any other an integer, refused outside json_int_t; no
 *     '+', no leading zeros, no ".5" or "5.";
 *   - strings are valid UTF-8 (no overlong forms, no encoded surrogates,
 *     nothing above U+10FFFF), without raw bytes < 0x20, with the escapes
 *     \" \\ \/ \b \f \n \r \t \uXXXX (surrogates only in pairs), and
 *     without \u0000 (no JSON_ALLOW_NUL);
 *   - no key twice in an object (JSON_REJECT_DUPLICATES);
 *   - at most JSON_PARSER_MAX_DEPTH (2048) nested values, scalars counted
 *     as jansson counts them: "[[1]]" is three deep.
 * json_loadb() reads through a stream callback per byte and builds every
 * string in a growable buffer; this scans runs of plain bytes eight at a
 * time and hands them to jansson in place, copying only strings with
 * escapes. */

#include <jansson.h>
#include <stddef.h>

#define NAP_JSON_PARSE_DEPTH_MAX 2048U

/* Parses the len bytes at buf (no NUL needed; nothing past buf + len is
 * read) into a new value, *ret, set only on success. A NUL among them is
 * refused, except, as by jansson (whose lexer mistakes a NUL it has put
 * back for an empty buffer), a single NUL right after a number or a
 * keyword, which is skipped: "[1\0]" is [1], "[\"a\0\"]" and "[1]\0"
 * are refused. Returns 0, -EBADMSG for anything jansson would refuse, or
 * -ENOMEM. */
int nap_json_parse(const char *buf, size_t len, json_t **ret);
