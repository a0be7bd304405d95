/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "protocol/bus-json.h"

/* Deep enough for any interface of ours; a bound all the same, since the
 * reading side follows what a peer sent. */
#define BUS_JSON_DEPTH_MAX 16

static char int_signature(BusJsonInts ints, const char *field) {
        for (const BusJsonInt *i = ints; i && i->field; i++)
                if (field && streq(i->field, field))
                        return i->signature;
        return 'x';
}

static int put(char *buf, size_t size, const char *s) {
        size_t have = strlen(buf), add = strlen(s);
        if (have + add >= size || have + add > BUS_JSON_SIGNATURE_MAX)
                return -E2BIG;
        memcpy(buf + have, s, add + 1);
        return 0;
}

static int put_fields(BusJsonInts ints, const VarlinkIdlType *t, char *buf, size_t size) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < varlink_idl_type_n_fields(t); i++)
                r = bus_json_signature(ints, varlink_idl_type_field_type(t, i), varlink_idl_type_field_name(t, i), buf,
                                       size);
        return r;
}

/* The contents of a struct's signature: the types of an interface do not
 * change while it is loaded, and a reply may hold many structs of one
 * type (every Instance of a list), so each is computed once. A few types
 * are all a D-Bus interface has; past the cache's size they are computed
 * every time. */
#define STRUCT_SIGNATURES_MAX 32

static const char *struct_signature(BusJsonInts ints, const VarlinkIdlType *t, char buf[static 256]) {
        static struct {
                BusJsonInts ints;
                const VarlinkIdlType *type;
                char signature[BUS_JSON_SIGNATURE_MAX + 1];
        } cache[STRUCT_SIGNATURES_MAX];
        static unsigned used;

        for (unsigned i = 0; i < used; i++)
                if (cache[i].type == t && cache[i].ints == ints)
                        return cache[i].signature;
        buf[0] = 0;
        if (put_fields(ints, t, buf, 256) < 0)
                return NULL;
        if (used < STRUCT_SIGNATURES_MAX) {
                cache[used].ints = ints;
                cache[used].type = t;
                snprintf(cache[used].signature, sizeof cache[used].signature, "%s", buf);
                return cache[used++].signature;
        }
        return buf;
}

int bus_json_signature(BusJsonInts ints, const VarlinkIdlType *t, const char *field, char *buf, size_t size) {
        char one[2] = {};
        int r;

        assert(t);
        assert(buf);
        switch (varlink_idl_type_kind(t)) {
        case VARLINK_IDL_BOOL:
                return put(buf, size, "b");
        case VARLINK_IDL_INT:
                one[0] = int_signature(ints, field);
                return put(buf, size, one);
        case VARLINK_IDL_FLOAT:
                return put(buf, size, "d");
        case VARLINK_IDL_STRING:
        case VARLINK_IDL_ENUM:
                return put(buf, size, "s");
        case VARLINK_IDL_ARRAY:
                r = put(buf, size, "a");
                return r < 0 ? r : bus_json_signature(ints, varlink_idl_type_element(t), field, buf, size);
        case VARLINK_IDL_MAP:
                r = put(buf, size, "a{s");
                if (r >= 0)
                        r = bus_json_signature(ints, varlink_idl_type_element(t), field, buf, size);
                return r < 0 ? r : put(buf, size, "}");
        case VARLINK_IDL_STRUCT: {
                char fields[256];
                const char *contents = struct_signature(ints, t, fields);
                r = contents ? put(buf, size, "(") : -E2BIG;
                if (r >= 0)
                        r = put(buf, size, contents);
                return r < 0 ? r : put(buf, size, ")");
        }
        case VARLINK_IDL_OBJECT:
                break;
        }
        return -EOPNOTSUPP;
}

/* The signature of one element, for opening a container. */
static int element_signature(BusJsonInts ints, const VarlinkIdlType *t, const char *field, char buf[static 256]) {
        buf[0] = 0;
        return bus_json_signature(ints, t, field, buf, 256);
}

/* ---- appending -------------------------------------------------------- */

static int append_value(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t *v,
                        unsigned depth);

/* The range of each int signature; a value outside is refused, never
 * wrapped. */
static bool int_fits(char sig, json_int_t i) {
        switch (sig) {
        case 't':
                return i >= 0;
        case 'u':
                return i >= 0 && i <= UINT32_MAX;
        case 'i':
                return i >= INT32_MIN && i <= INT32_MAX;
        case 'q':
                return i >= 0 && i <= UINT16_MAX;
        case 'n':
                return i >= INT16_MIN && i <= INT16_MAX;
        case 'y':
                return i >= 0 && i <= UINT8_MAX;
        default:
                return true;
        }
}

static int append_int(sd_bus_message *m, char sig, json_t *v) {
        json_int_t i = json_integer_value(v); /* null: 0 */
        uint64_t t = (uint64_t) i;
        uint32_t u = (uint32_t) i;
        int32_t s = (int32_t) i;
        int64_t x = i;
        uint16_t q = (uint16_t) i;
        int16_t n = (int16_t) i;
        uint8_t y = (uint8_t) i;

        if (v && !json_is_null(v) && !json_is_integer(v))
                return -EINVAL;
        if (!int_fits(sig, i))
                return -ERANGE;
        switch (sig) {
        case 't':
                return sd_bus_message_append_basic(m, sig, &t);
        case 'u':
                return sd_bus_message_append_basic(m, sig, &u);
        case 'i':
                return sd_bus_message_append_basic(m, sig, &s);
        case 'q':
                return sd_bus_message_append_basic(m, sig, &q);
        case 'n':
                return sd_bus_message_append_basic(m, sig, &n);
        case 'y':
                return sd_bus_message_append_basic(m, sig, &y);
        default:
                return sd_bus_message_append_basic(m, 'x', &x);
        }
}

static int append_array(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t *v,
                        unsigned depth) {
        const VarlinkIdlType *element = varlink_idl_type_element(t);
        char sig[256];
        json_t *item;
        size_t i;
        int r = element_signature(ints, element, field, sig);

        if (v && !json_is_null(v) && !json_is_array(v))
                return -EINVAL;
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', sig);
        json_array_foreach(v, i, item)
                if (r >= 0)
                        r = append_value(m, ints, element, field, item, depth + 1);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_entry(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field,
                        const char *sig, const char *key, json_t *item, unsigned depth) {
        int r = sd_bus_message_open_container(m, 'e', sig);
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', key);
        if (r >= 0)
                r = append_value(m, ints, t, field, item, depth);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_map(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t *v,
                      unsigned depth) {
        const VarlinkIdlType *element = varlink_idl_type_element(t);
        char sig[256] = "s", entry[260];
        const char *key;
        json_t *item;
        int r = bus_json_signature(ints, element, field, sig, sizeof sig);

        if (v && !json_is_null(v) && !json_is_object(v))
                return -EINVAL;
        snprintf(entry, sizeof entry, "{%s}", sig);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', entry);
        json_object_foreach(v, key, item)
                if (r >= 0)
                        r = append_entry(m, ints, element, field, sig, key, item, depth + 1);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_struct(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, json_t *v, unsigned depth) {
        char buf[256];
        const char *sig = struct_signature(ints, t, buf);
        int r = sig ? 0 : -E2BIG;

        if (v && !json_is_null(v) && !json_is_object(v))
                return -EINVAL;
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'r', sig);
        for (size_t i = 0; r >= 0 && i < varlink_idl_type_n_fields(t); i++) {
                const char *name = varlink_idl_type_field_name(t, i);
                r = append_value(m, ints, varlink_idl_type_field_type(t, i), name, json_object_get(v, name),
                                 depth + 1);
        }
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_value(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t *v,
                        unsigned depth) {
        bool null = !v || json_is_null(v);
        int b = json_is_true(v);
        double d = json_number_value(v);

        if (depth > BUS_JSON_DEPTH_MAX)
                return -ELOOP;
        switch (varlink_idl_type_kind(t)) {
        case VARLINK_IDL_BOOL:
                return null || json_is_boolean(v) ? sd_bus_message_append_basic(m, 'b', &b) : -EINVAL;
        case VARLINK_IDL_INT:
                return append_int(m, int_signature(ints, field), v);
        case VARLINK_IDL_FLOAT:
                return null || json_is_number(v) ? sd_bus_message_append_basic(m, 'd', &d) : -EINVAL;
        case VARLINK_IDL_STRING:
        case VARLINK_IDL_ENUM:
                return null || json_is_string(v) ? sd_bus_message_append_basic(m, 's', json_string_value(v) ?: "")
                                                 : -EINVAL;
        case VARLINK_IDL_ARRAY:
                return append_array(m, ints, t, field, v, depth);
        case VARLINK_IDL_MAP:
                return append_map(m, ints, t, field, v, depth);
        case VARLINK_IDL_STRUCT:
                return append_struct(m, ints, t, v, depth);
        case VARLINK_IDL_OBJECT:
                break;
        }
        return -EOPNOTSUPP;
}

int bus_json_append(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t *v) {
        assert(m);
        assert(t);
        return append_value(m, ints, t, field, v, 0);
}

/* ---- reading ---------------------------------------------------------- */

static int read_value(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field,
                      json_t **ret, unsigned depth);

static int read_int(sd_bus_message *m, char sig, json_t **ret) {
        union {
                uint64_t t;
                int64_t x;
                uint32_t u;
                int32_t i;
                uint16_t q;
                int16_t n;
                uint8_t y;
        } v = {};
        int r = sd_bus_message_read_basic(m, sig, &v);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        /* A t above INT64_MAX has no JSON int: refused, never wrapped. */
        json_int_t i = sig == 't' ? (json_int_t) v.t : sig == 'x' ? v.x : sig == 'u' ? (json_int_t) v.u : sig == 'i' ? v.i
                     : sig == 'q' ? v.q : sig == 'n' ? v.n : v.y;
        if (sig == 't' && v.t > INT64_MAX)
                return -ERANGE;
        *ret = json_integer(i);
        return *ret ? 0 : -ENOMEM;
}

static int read_basic(sd_bus_message *m, char sig, json_t **ret) {
        const char *s;
        double d;
        int b, r;

        switch (sig) {
        case 's':
                r = sd_bus_message_read_basic(m, sig, &s);
                *ret = r > 0 ? json_string(s) : NULL; /* D-Bus strings are valid UTF-8 */
                break;
        case 'b':
                r = sd_bus_message_read_basic(m, sig, &b);
                *ret = r > 0 ? json_boolean(b) : NULL;
                break;
        default:
                r = sd_bus_message_read_basic(m, sig, &d);
                *ret = r > 0 ? json_real(d) : NULL;
                break;
        }
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        return *ret ? 0 : -ENOMEM;
}

/* Enters a container of the given type and contents: -EBADMSG if the next
 * value is something else. */
static int enter(sd_bus_message *m, char type, const char *contents) {
        int r = sd_bus_message_enter_container(m, type, contents);
        return r < 0 ? r : r == 0 ? -EBADMSG : 0;
}

/* The end of reading a container into value: on success *ret takes it. */
static int leave(sd_bus_message *m, int r, json_t **value, json_t **ret) {
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(*value);
        return 0;
}

static int read_array(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t **ret,
                      unsigned depth) {
        const VarlinkIdlType *element = varlink_idl_type_element(t);
        json_auto_t *a = json_array();
        char sig[256];
        int r = element_signature(ints, element, field, sig);

        if (!a)
                return -ENOMEM;
        if (r >= 0)
                r = enter(m, 'a', sig);
        while (r >= 0 && (r = sd_bus_message_at_end(m, false)) == 0) {
                json_t *item = NULL;
                r = read_value(m, ints, element, field, &item, depth + 1);
                if (r >= 0 && json_array_append_new(a, item) < 0)
                        r = -ENOMEM;
        }
        return leave(m, r, &a, ret);
}

static int read_entry(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field,
                      const char *sig, json_t *o, unsigned depth) {
        json_t *item = NULL;
        const char *key;
        int r = enter(m, 'e', sig);
        if (r >= 0)
                r = sd_bus_message_read_basic(m, 's', &key);
        if (r >= 0 && json_object_get(o, key))
                r = -ENOTUNIQ; /* a D-Bus dict may repeat a key, a JSON object may not */
        if (r >= 0)
                r = read_value(m, ints, t, field, &item, depth);
        if (r >= 0 && json_object_set_new(o, key, item) < 0)
                r = -ENOMEM;
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

static int read_map(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t **ret,
                    unsigned depth) {
        const VarlinkIdlType *element = varlink_idl_type_element(t);
        json_auto_t *o = json_object();
        char sig[256] = "s", entry[260];
        int r = bus_json_signature(ints, element, field, sig, sizeof sig);

        if (!o)
                return -ENOMEM;
        snprintf(entry, sizeof entry, "{%s}", sig);
        if (r >= 0)
                r = enter(m, 'a', entry);
        while (r >= 0 && (r = sd_bus_message_at_end(m, false)) == 0)
                r = read_entry(m, ints, element, field, sig, o, depth + 1);
        return leave(m, r, &o, ret);
}

static int read_struct(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, json_t **ret, unsigned depth) {
        json_auto_t *o = json_object();
        char buf[256];
        const char *sig = struct_signature(ints, t, buf);
        int r = sig ? 0 : -E2BIG;

        if (!o)
                return -ENOMEM;
        if (r >= 0)
                r = enter(m, 'r', sig);
        for (size_t i = 0; r >= 0 && i < varlink_idl_type_n_fields(t); i++) {
                json_t *item = NULL;
                const char *name = varlink_idl_type_field_name(t, i);
                r = read_value(m, ints, varlink_idl_type_field_type(t, i), name, &item, depth + 1);
                if (r >= 0 && json_object_set_new(o, name, item) < 0)
                        r = -ENOMEM;
        }
        return leave(m, r, &o, ret);
}

static int read_value(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field,
                      json_t **ret, unsigned depth) {
        if (depth > BUS_JSON_DEPTH_MAX)
                return -ELOOP;
        switch (varlink_idl_type_kind(t)) {
        case VARLINK_IDL_BOOL:
                return read_basic(m, 'b', ret);
        case VARLINK_IDL_INT:
                return read_int(m, int_signature(ints, field), ret);
        case VARLINK_IDL_FLOAT:
                return read_basic(m, 'd', ret);
        case VARLINK_IDL_STRING:
        case VARLINK_IDL_ENUM:
                return read_basic(m, 's', ret);
        case VARLINK_IDL_ARRAY:
                return read_array(m, ints, t, field, ret, depth);
        case VARLINK_IDL_MAP:
                return read_map(m, ints, t, field, ret, depth);
        case VARLINK_IDL_STRUCT:
                return read_struct(m, ints, t, ret, depth);
        case VARLINK_IDL_OBJECT:
                break;
        }
        return -EOPNOTSUPP;
}

int bus_json_read(sd_bus_message *m, BusJsonInts ints, const VarlinkIdlType *t, const char *field, json_t **ret) {
        assert(m);
        assert(t);
        assert(ret);
        return read_value(m, ints, t, field, ret, 0);
}
