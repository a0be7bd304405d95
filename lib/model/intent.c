/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "model/intent.h"

static const char *const operation_table[_NAP_INTENT_OPERATION_MAX] = {
        [NAP_INTENT_START_COMMON] = "start-common",
        [NAP_INTENT_REMOVE_INSTANCE] = "remove-instance",
        [NAP_INTENT_DEPLOY] = "deploy",
        [NAP_INTENT_ROLLOUT] = "rollout",
        [NAP_INTENT_DESTROY_APP] = "destroy-app",
        [NAP_INTENT_START_MPI] = "start-mpi",
};

const char *nap_intent_operation_to_string(NapIntentOperation o) {
        return o >= 0 && o < _NAP_INTENT_OPERATION_MAX ? operation_table[o] : NULL;
}

NapIntentOperation nap_intent_operation_from_string(const char *s) {
        return (NapIntentOperation) string_table_lookup(operation_table, ELEMENTSOF(operation_table), s);
}

void nap_intent_done(NapIntent *i) {
        free(i->previous_url);
        free(i->instances);
        free(i->running);
        free(i->added);
        *i = (NapIntent) {};
}

bool nap_request_id_is_valid(const char *s) {
        static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
        size_t l = s ? strlen(s) : 0;
        return l > 0 && l <= NAP_REQUEST_ID_MAX && s[0] != '.' && strspn(s, ok) == l;
}

int nap_request_id_check(const char *s, NapError *e) {
        if (nap_request_id_is_valid(s))
                return 0;
        nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                      "A request id is 1 to %u characters of A-Z a-z 0-9 . _ : - and does not start with '.'",
                      NAP_REQUEST_ID_MAX);
        return nap_error_parameter(e, -EINVAL, "requestId");
}

/* ---- parsing ---------------------------------------------------------- */

static int damaged(NapError *e, const char *why) {
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "Damaged intent record: %s", why);
}

static int copy_checked(char *dst, size_t size, const char *s, bool (*valid)(const char *)) {
        if (!s)
                return 0;
        if (strlen(s) >= size || (valid && !valid(s)))
                return -EINVAL;
        memcpy(dst, s, strlen(s) + 1);
        return 0;
}

static bool node_name_ok(const char *s) {
        return !isempty(s) && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == strlen(s);
}

static int numbers_from_json(json_t *a, unsigned **ret, size_t *ret_n) {
        size_t k;
        json_t *v;
        if (!a)
                return 0;
        if (!json_is_array(a) || json_array_size(a) > NAP_INTENT_NUMBERS_MAX)
                return -EINVAL;
        unsigned *l = json_array_size(a) > 0 ? calloc(json_array_size(a), sizeof *l) : NULL;
        if (json_array_size(a) > 0 && !l)
                return -ENOMEM;
        json_array_foreach(a, k, v) {
                json_int_t n = json_integer_value(v);
                if (!json_is_integer(v) || n < 1 || n > NAP_INSTANCE_NUMBER_MAX)
                        return free(l), -EINVAL;
                l[k] = (unsigned) n;
        }
        *ret = l;
        *ret_n = json_array_size(a);
        return 0;
}

static int previous_from_json(json_t *o, NapIntent *i) {
        const char *commit = NULL, *url = NULL;
        if (!o)
                return 0;
        if (json_unpack(o, "{s:s, s:s !}", "commit", &commit, "url", &url) < 0 ||
            copy_checked(i->previous_commit, sizeof i->previous_commit, commit, nap_commit_is_valid) < 0 ||
            isempty(url) || strlen(url) > NAP_URL_MAX || strlen(url) != json_string_length(json_object_get(o, "url")))
                return -EINVAL;
        i->previous_url = strdup(url);
        return i->previous_url ? 0 : -ENOMEM;
}

static int intent_from_json(json_t *root, NapIntent *i, NapError *e) {
        const char *operation, *user, *app, *request = NULL, *node = NULL, *commit = NULL;
        json_int_t version, time, number = 0;
        json_t *previous = NULL, *instances = NULL, *running = NULL, *added = NULL;
        json_error_t jerr;
        if (json_unpack_ex(root, &jerr, JSON_STRICT,
                           "{s:I, s:s, s:s, s:s, s:I, s?I, s?s, s?s, s?s, s?o, s?o, s?o, s?o}", "version", &version,
                           "operation", &operation, "user", &user, "app", &app, "time", &time, "number", &number,
                           "request", &request, "node", &node, "commit", &commit, "previous", &previous,
                           "instances", &instances, "running", &running, "added", &added) < 0)
                return damaged(e, jerr.text);
        i->operation = nap_intent_operation_from_string(operation);
        if (version != NAP_INTENT_VERSION || i->operation < 0 || time < 0 || number < 0 ||
            number > NAP_INSTANCE_NUMBER_MAX)
                return damaged(e, "version, operation, time or number out of range");
        if (nap_service_from_parts(user, app, &i->service, NULL) < 0)
                return damaged(e, "not a valid app name");
        i->time_usec = (uint64_t) time;
        i->number = (unsigned) number;
        int r = copy_checked(i->request, sizeof i->request, request, nap_request_id_is_valid);
        if (r >= 0)
                r = copy_checked(i->node, sizeof i->node, node, node_name_ok);
        if (r >= 0)
                r = copy_checked(i->commit, sizeof i->commit, commit, nap_commit_is_valid);
        if (r >= 0)
                r = previous_from_json(previous, i);
        if (r >= 0)
                r = numbers_from_json(instances, &i->instances, &i->n_instances);
        if (r >= 0)
                r = numbers_from_json(running, &i->running, &i->n_running);
        if (r >= 0)
                r = numbers_from_json(added, &i->added, &i->n_added);
        return r == -ENOMEM ? nap_error_errno(e, r, "Failed to read an intent record")
               : r < 0      ? damaged(e, "a value is not valid")
                            : 0;
}

int nap_intent_parse(const char *text, size_t size, NapIntent *ret, NapError *e) {
        assert(text || size == 0);
        assert(ret);
        *ret = (NapIntent) {};
        if (size > NAP_INTENT_MAX_SIZE)
                return damaged(e, "too large");
        json_auto_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root))
                return damaged(e, "not a JSON object");
        int r = intent_from_json(root, ret, e);
        if (r < 0)
                nap_intent_done(ret);
        return r;
}

/* ---- formatting ------------------------------------------------------- */

static json_t *numbers_to_json(const unsigned *l, size_t n) {
        json_t *a = json_array();
        for (size_t k = 0; a && k < n; k++)
                if (json_array_append_new(a, json_integer(l[k])) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

static int set_optional_string(json_t *o, const char *key, const char *value) {
        return isempty(value) ? 0 : json_object_set_new(o, key, json_string(value));
}

char *nap_intent_format(const NapIntent *i) {
        json_auto_t *o = json_pack("{s:i, s:s, s:s, s:s, s:I}", "version", NAP_INTENT_VERSION, "operation",
                                   nap_intent_operation_to_string(i->operation), "user", i->service.user, "app",
                                   i->service.app, "time", (json_int_t) i->time_usec);
        int r = o ? 0 : -ENOMEM;
        if (r >= 0 && i->number > 0)
                r = json_object_set_new(o, "number", json_integer(i->number));
        if (r >= 0)
                r = set_optional_string(o, "request", i->request);
        if (r >= 0)
                r = set_optional_string(o, "node", i->node);
        if (r >= 0)
                r = set_optional_string(o, "commit", i->commit);
        if (r >= 0 && i->previous_commit[0] && i->previous_url)
                r = json_object_set_new(o, "previous", json_pack("{s:s, s:s}", "commit", i->previous_commit,
                                                                 "url", i->previous_url));
        if (r >= 0 && i->operation == NAP_INTENT_ROLLOUT)
                r = json_object_set_new(o, "instances", numbers_to_json(i->instances, i->n_instances));
        if (r >= 0 && i->operation == NAP_INTENT_ROLLOUT)
                r = json_object_set_new(o, "running", numbers_to_json(i->running, i->n_running));
        if (r >= 0 && i->operation == NAP_INTENT_ROLLOUT && i->n_added > 0)
                r = json_object_set_new(o, "added", numbers_to_json(i->added, i->n_added));
        char *text = r >= 0 ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char *line = text ? strdup_printf("%s\n", text) : NULL;
        free(text);
        return line;
}

/* ---- on disk ---------------------------------------------------------- */

static char *intents_dir(const NapConfig *c) {
        return path_join(c->root, "intents", NULL);
}

char *nap_intent_path(const NapConfig *c, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX + sizeof ".intent"];
        snprintf(name, sizeof name, "%s_%s.intent", s->user, s->app);
        return path_join(c->root, "intents", name, NULL);
}

int nap_intent_save(const NapConfig *c, const NapIntent *i, NapError *e) {
        _cleanup_free_ char *path = nap_intent_path(c, &i->service), *text = nap_intent_format(i);
        _cleanup_free_ char *dir = intents_dir(c);
        if (!path || !text || !dir)
                return nap_error_errno(e, -ENOMEM, "Failed to record the operation");
        int r = mkdir_p(dir, 0700);
        if (r >= 0)
                r = write_file_atomic(path, text, strlen(text), 0600);
        if (r >= 0)
                r = fsync_directory_of(path);
        return r < 0 ? nap_error_errno(e, r, "Failed to write %s", path) : 0;
}

int nap_intent_load(const NapConfig *c, const NapService *s, NapIntent *ret, NapError *e) {
        _cleanup_free_ char *path = nap_intent_path(c, s), *text = NULL;
        size_t size;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read an intent record");
        int r = read_full_file(path, NAP_INTENT_MAX_SIZE + 1, &text, &size);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read %s", path);
        r = nap_intent_parse(text, size, ret, e);
        if (r >= 0 && (!streq(ret->service.user, s->user) || !streq(ret->service.app, s->app))) {
                nap_intent_done(ret);
                r = damaged(e, "it names another app");
        }
        return r;
}

void nap_intent_remove(const NapConfig *c, const NapService *s) {
        _cleanup_free_ char *path = nap_intent_path(c, s);
        /* Not synced: an unlink lost to a power cut only makes the next
         * holder of the lock redo what is finished already. */
        if (path)
                (void) unlink(path);
}

/* "USER_APP.intent" in ROOT/intents. */
static int service_of_intent_file(const char *file, NapService *ret) {
        const char *suffix = endswith(file, ".intent");
        char name[NAP_SERVICE_NAME_MAX];
        if (!suffix || (size_t) (suffix - file) >= sizeof name)
                return -EINVAL;
        memcpy(name, file, suffix - file);
        name[suffix - file] = 0;
        return nap_service_parse(name, ret, NULL);
}

int nap_intent_foreach_service(const NapConfig *c, nap_intent_service_fn f, void *userdata) {
        _cleanup_free_ char *dir = intents_dir(c);
        if (!dir)
                return -ENOMEM;
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        for (struct dirent *de; (de = readdir(d));) {
                NapService s;
                if (service_of_intent_file(de->d_name, &s) < 0)
                        continue;
                int r = f(&s, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- request records -------------------------------------------------- */

static char *request_path(const NapConfig *c, const char *user, const char *id) {
        return path_join(c->root, "requests", user, id, NULL);
}

int nap_request_lookup(const NapConfig *c, const char *user, const char *id, char **ret) {
        _cleanup_free_ char *path = request_path(c, user, id), *text = NULL;
        if (!path)
                return -ENOMEM;
        int r = read_full_file(path, NAP_UNIT_NAME_MAX, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        *ret = TAKE_PTR(text);
        return 1;
}

int nap_request_record(const NapConfig *c, const char *user, const char *id, const char *instance, NapError *e) {
        _cleanup_free_ char *path = request_path(c, user, id), *dir = path_join(c->root, "requests", user, NULL);
        _cleanup_free_ char *text = strdup_printf("%s\n", instance);
        if (!path || !dir || !text)
                return nap_error_errno(e, -ENOMEM, "Failed to record the request");
        int r = mkdir_p(dir, 0700);
        if (r >= 0)
                r = write_file_atomic(path, text, strlen(text), 0600);
        return r < 0 ? nap_error_errno(e, r, "Failed to write %s", path) : 0;
}

static unsigned expire_in(const char *dir, uint64_t before_usec) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        unsigned n = 0;
        struct stat st;
        for (struct dirent *de; d && (de = readdir(d));)
                if (nap_request_id_is_valid(de->d_name) && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    (uint64_t) st.st_mtime * USEC_PER_SEC < before_usec && unlinkat(dirfd(d), de->d_name, 0) >= 0)
                        n++;
        return n;
}

unsigned nap_request_expire(const NapConfig *c, uint64_t max_age_usec) {
        _cleanup_free_ char *requests = path_join(c->root, "requests", NULL);
        _cleanup_closedir_ DIR *d = requests ? opendir(requests) : NULL;
        uint64_t now = realtime_usec(), before = now > max_age_usec ? now - max_age_usec : 0;
        unsigned n = 0;
        for (struct dirent *de; d && (de = readdir(d));) {
                _cleanup_free_ char *dir = nap_user_is_valid(de->d_name) ? path_join(requests, de->d_name, NULL) : NULL;
                if (dir)
                        n += expire_in(dir, before);
        }
        return n;
}

unsigned nap_request_forget_service(const NapConfig *c, const NapService *s) {
        _cleanup_free_ char *dir = path_join(c->root, "requests", s->user, NULL);
        _cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
        unsigned n = 0;
        for (struct dirent *de; d && (de = readdir(d));) {
                _cleanup_free_ char *instance = NULL;
                NapInstance i;
                if (!nap_request_id_is_valid(de->d_name) ||
                    nap_request_lookup(c, s->user, de->d_name, &instance) <= 0 ||
                    nap_instance_parse(instance, &i, NULL) < 0 || !streq(i.service.app, s->app))
                        continue;
                n += unlinkat(dirfd(d), de->d_name, 0) >= 0;
        }
        return n;
}
