/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <sys/stat.h>

#include "base/fileio.h"
#include "napctl-output.h"
#include "verb-export.h"

/* Larger than any unit nap writes: a file this big is not one of ours. */
#define EXPORTED_UNIT_SIZE_MAX (1024 * 1024)

static int check_directory(const char *dir, NapError *e) {
        struct stat st;
        if (stat(dir, &st) < 0) {
                int r = negative_errno();
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r, "Cannot export into %s: %s", dir, strerror(-r));
        }
        if (!S_ISDIR(st.st_mode))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOTDIR,
                                     "Cannot export into %s: not a directory", dir);
        return 0;
}

/* 1: path holds text already; 0: it does not exist (or force replaces
 * it); InvalidParameter when it holds something else. */
static int check_file(const char *path, const char *text, bool force, NapError *e) {
        _cleanup_free_ char *old = NULL;
        int r = read_full_file(path, EXPORTED_UNIT_SIZE_MAX, &old, NULL);
        if (r == -ENOENT)
                return 0;
        if (r >= 0 && streq(old, text))
                return 1;
        if (force)
                return 0;
        if (r < 0 && r != -EFBIG)
                return nap_error_errno(e, r, "Failed to read %s", path);
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                             "%s exists with other contents: nothing was written (--force replaces it)", path);
}

/* Each unit's path and whether it is written; nothing written yet. */
static int plan(const char *dir, json_t *units, bool force, json_t **ret, NapError *e) {
        json_auto_t *a = json_array();
        json_t *u;
        size_t i;
        json_array_foreach(units, i, u) {
                _cleanup_free_ char *path = path_join(dir, json_str(u, "name"), NULL);
                if (!a || !path)
                        return nap_error_errno(e, -ENOMEM, "Failed to export");
                int same = check_file(path, json_str(u, "text"), force, e);
                if (same < 0)
                        return same;
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b}", "instance", json_str(u, "instance"),
                                                       "unit", json_str(u, "name"), "path", path, "changed",
                                                       !same)) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to export");
        }
        *ret = json_incref(a);
        return 0;
}

static int write_changed(json_t *units, json_t *planned, NapError *e) {
        json_t *p;
        size_t i;
        json_array_foreach(planned, i, p) {
                const char *text = json_str(json_array_get(units, i), "text"), *path = json_str(p, "path");
                if (!json_is_true(json_object_get(p, "changed")))
                        continue;
                int r = write_file_atomic(path, text, strlen(text), 0644);
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to write %s", path);
        }
        return 0;
}

static int print_result(const char *service, const char *dir, json_t *planned, bool json) {
        json_t *p;
        size_t i, changed = 0;
        if (json)
                return output_json(json_pack("{s:s, s:s, s:O}", "service", service, "directory", dir, "units",
                                             planned));
        json_array_foreach(planned, i, p) {
                bool c = json_is_true(json_object_get(p, "changed"));
                changed += c;
                printf("%s %s\n", c ? "wrote    " : "unchanged", json_str(p, "path"));
        }
        if (json_array_size(planned) == 0)
                printf("%s has no instances: nothing to export\n", service);
        else if (changed == 0)
                printf("Nothing changed in %s\n", dir);
        return 0;
}

int verb_export_units(Caller *c, char **args, bool json, bool force, NapError *e) {
        json_auto_t *reply = NULL, *planned = NULL;
        const char *service = args[0], *dir = args[1];
        int r = check_directory(dir, e);
        if (r >= 0)
                r = caller_call(c, "ExportUnits", json_pack("{s:s}", "service", service), READ_TIMEOUT, &reply, e);
        json_t *units = json_object_get(reply, "units");
        if (r >= 0)
                r = plan(dir, units, force, &planned, e);
        if (r >= 0)
                r = write_changed(units, planned, e);
        return r < 0 ? r : print_result(service, dir, planned, json);
}
