/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "base/fileio.h"
#include "model/environment.h"
#include "model/names.h"

int nap_environment_set(NapParams *env, const char *name, const char *value, NapError *e) {
        int r = nap_env_name_check(name, e);
        return r < 0 ? r : nap_params_set(env, name, value, e);
}

int nap_environment_from_json(json_t *o, NapParams **ret, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *p = NULL;
        const char *key;
        json_t *v;
        if (!json_is_object(o))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "An environment must be an object of strings");
        if (nap_params_new(&p) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to read the environment");
        json_object_foreach(o, key, v) {
                if (!json_is_string(v))
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "The value of '%.64s' is not a string", key);
                int r = nap_environment_set(p, key, json_string_value(v), e);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

json_t *nap_environment_to_json(const NapParams *env) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < nap_params_size(env); i++)
                if (json_object_set_new(o, nap_params_key(env, i), json_string(nap_params_value(env, i))) < 0)
                        return json_decref(o), NULL;
        return o;
}

int nap_environment_parse(const char *text, size_t size, NapParams **ret, NapError *e) {
        json_error_t jerr;
        if (size > NAP_ENVIRONMENT_MAX_SIZE)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EFBIG, "An environment is at most %d bytes",
                                     NAP_ENVIRONMENT_MAX_SIZE);
        json_auto_t *o = json_loadb(text, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG, "Not valid JSON (line %d): %s",
                                     jerr.line, jerr.text);
        return nap_environment_from_json(o, ret, e);
}

char *nap_environment_format(const NapParams *env) {
        json_auto_t *o = nap_environment_to_json(env);
        _cleanup_free_ char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        return text ? strdup_printf("%s\n", text) : NULL;
}

bool nap_environment_equal(const NapParams *a, const NapParams *b) {
        if (nap_params_size(a) != nap_params_size(b))
                return false;
        for (size_t i = 0; i < nap_params_size(a); i++)
                if (!streq_ptr(nap_params_value(a, i), nap_params_get(b, nap_params_key(a, i))))
                        return false;
        return true;
}
