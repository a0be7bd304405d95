/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A compact JSON serializer for jansson values, for the varlink hot path.
 * It writes the same bytes as jansson 2.14's
 * json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY): objects in jansson's
 * (insertion) order, no whitespace, '"' '\\' and bytes < 0x20 escaped
 * (\b \f \n \r \t, else \u00XX in upper-case hex), '/' and non-ASCII
 * copied as they are, integers as %lld, reals as jansson formats them
 * (%.17g, the locale's decimal point turned into '.', ".0" appended to
 * integral values, no '+' and no leading zeros in the exponent).
 * json_dumps() costs a callback per character and snprintf() per number;
 * this copies runs of plain bytes with memcpy().
 *
 * Where jansson fails, this fails too: a string that is not valid UTF-8
 * (only json_string_nocheck() makes one) is -EINVAL. Two deliberate
 * differences: a key that is not valid UTF-8 (json_object_set_nocheck())
 * is -EINVAL, where jansson ignores the error and writes a truncated key,
 * i.e. invalid JSON; and nesting deeper than NAP_JSON_DUMP_DEPTH_MAX
 * containers is -EINVAL, where jansson only refuses cycles (a cycle is
 * infinitely deep, so it is refused here too). jansson's parser never
 * produces more than 2048 levels, so whatever json_loadb() returned
 * serializes here. */

#include <jansson.h>
#include <stddef.h>

#define NAP_JSON_DUMP_DEPTH_MAX 2048U

/* Serializes j into a malloc'ed NUL-terminated string; *ret_len (may be
 * NULL) excludes the NUL. A top-level scalar is written as with
 * JSON_ENCODE_ANY. Returns 0, -ENOMEM, or -EINVAL (see above; also for a
 * NULL j). */
int nap_json_dump(const json_t *j, char **ret, size_t *ret_len);

/* Appends the serialization of j to the growable buffer *data, of which
 * bytes [0, *size) are in use and *alloc allocated (realloc() grows it;
 * *data may be NULL with both sizes 0). On success *size includes the new
 * text and a NUL follows it at (*data)[*size], inside *alloc but not
 * counted, so a caller framing messages with NUL can take it with
 * (*size)++. Fails with -ENOBUFS if *size would end up above max, and with
 * the errors of nap_json_dump(); on failure *size is unchanged, *data and
 * *alloc stay valid (possibly grown) and the bytes past *size are
 * undefined. */
int nap_json_dump_append(const json_t *j, char **data, size_t *size, size_t *alloc, size_t max);
