/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "ops/method-json.h"

const char *nap_arg_string(json_t *args, const char *name, NapError *e) {
        const char *s = json_string_value(json_object_get(args, name));
        if (!s)
                nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The argument '%s' is missing or not a string",
                              name);
        return s;
}

json_t *nap_reply(json_t *reply, NapError *e) {
        if (!reply)
                nap_error_errno(e, -ENOMEM, "Failed to build the reply");
        return reply;
}

json_t *nap_json_params(const NapParams *p) {
        json_t *o = json_object();
        for (size_t i = 0; o && p && i < nap_params_size(p); i++)
                if (json_object_set_new(o, nap_params_key(p, i), json_string(nap_params_value(p, i))) < 0)
                        return json_decref(o), NULL;
        return o;
}
