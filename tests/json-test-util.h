/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* For the tests of lib/json-dump and lib/json-parse (unit and fuzz). */

#include <jansson.h>
#include <locale.h>
#include <stdbool.h>
#include <string.h>

#include "base/macro.h"

/* Type-strict equality: json_equal() tells 1 from 1.0 but not -0.0 from
 * 0.0, and ignores key order; this tells all three. */
static inline bool json_same(json_t *a, json_t *b) {
        double x, y;

        if (json_typeof(a) != json_typeof(b))
                return false;
        switch (json_typeof(a)) {
        case JSON_OBJECT: {
                void *i = json_object_iter(a), *k = json_object_iter(b);
                if (json_object_size(a) != json_object_size(b))
                        return false;
                for (; i && k; i = json_object_iter_next(a, i), k = json_object_iter_next(b, k))
                        if (json_object_iter_key_len(i) != json_object_iter_key_len(k) ||
                            memcmp(json_object_iter_key(i), json_object_iter_key(k), json_object_iter_key_len(i)) != 0 ||
                            !json_same(json_object_iter_value(i), json_object_iter_value(k)))
                                return false;
                return !i && !k;
        }
        case JSON_ARRAY:
                if (json_array_size(a) != json_array_size(b))
                        return false;
                for (size_t i = 0; i < json_array_size(a); i++)
                        if (!json_same(json_array_get(a, i), json_array_get(b, i)))
                                return false;
                return true;
        case JSON_STRING:
                return json_string_length(a) == json_string_length(b) &&
                        memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
        case JSON_INTEGER:
                return json_integer_value(a) == json_integer_value(b);
        case JSON_REAL:
                x = json_real_value(a);
                y = json_real_value(b);
                return memcmp(&x, &y, sizeof x) == 0;
        default:
                return true;
        }
}

/* Switches LC_NUMERIC to an installed locale whose decimal point is not
 * '.' (jansson works around those); false, and "C" again, if there is
 * none. */
static inline bool json_test_comma_locale(void) {
        static const char *const locales[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "nl_NL.UTF-8" };
        const char *l = NULL;

        for (size_t i = 0; i < ELEMENTSOF(locales) && !l; i++)
                l = setlocale(LC_NUMERIC, locales[i]);
        if (l && localeconv()->decimal_point[0] != '.')
                return true;
        setlocale(LC_NUMERIC, "C");
        return false;
}
