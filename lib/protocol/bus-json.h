/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The values of a varlink interface on D-Bus, so that the D-Bus side of an
 * interface is derived from its varlink description instead of being
 * written a second time. A varlink type becomes:
 *
 *   bool b     string s     enum s     float d
 *   int        the signature the caller's table gives for the field's
 *              name (BusJsonInt), else x
 *   []T aT     [string]T a{sT}     struct (…) with the fields in order
 *   ?T         T: D-Bus has no null; null goes out as "", 0, false or
 *              empty
 *   object     not mapped: -EOPNOTSUPP
 *
 * Nothing here knows nap's interface: that is lib/ops/methods.h. The
 * signatures of struct types are remembered by the types' addresses: the
 * interface's types must live as long as the process (the registry's
 * interface, parsed once, does). */

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "protocol/varlink-idl.h"

#define BUS_JSON_SIGNATURE_MAX 255 /* D-Bus's own limit */

/* The D-Bus type of the int fields called field: one of "yqunixt". */
typedef struct BusJsonInt {
        const char *field;
        char signature;
} BusJsonInt;

/* A table ends with { NULL }; ints may be NULL (every int is x). */
typedef const BusJsonInt *BusJsonInts;

/* Appends the signature of t, a value named field, to buf (NUL-terminated,
 * size bytes): -EOPNOTSUPP for a type D-Bus cannot carry, -E2BIG when too
 * long. */
int bus_json_signature(BusJsonInts ints, const VarlinkIdlType *t, const char *field, char *buf, size_t size);

/* Appends v, a value of type t named field, to m. A value of another JSON
 * type than t is a bug of the caller: -EINVAL; an int outside the range of
 * its D-Bus type: -ERANGE. */
int bus_json_append(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t *v);

/* Reads the next value of m, of type t named field, into *ret: -ENOTUNIQ
 * when a map repeats a key, -EBADMSG when m does not hold that type. */
int bus_json_read(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t **ret);
