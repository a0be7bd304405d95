/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The operations of the seed interface, written once; the context and the
 * pieces the operation files share (ops-internal.h). ops-deploy.c has the
 * deployed apps, ops-instance.c the instances, ops-lookup.c what is read
 * from etcd. Each operation validates everything it was given before it
 * changes anything, takes the app's lock for what it changes, and leaves
 * STATE either as it was or as it should be: trees are built beside their
 * final place and renamed into it. */

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "clients/etcd.h"
#include "base/fileio.h"
#include "model/manifest.h"
#include "ops/ops-internal.h"
#include "model/state.h"
#include "base/strv.h"
#include "clients/systemd1.h"
#include "model/unit-files.h"

#define NAP_DEPLOY_META_MAX (16 * 1024)

int nap_context_new_with_config(NapContext **ret, NapConfig *config, int scope) {
        NapContext *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->config = config;
        c->scope = scope >= 0 ? (NapScope) scope : config->scope;
        *ret = c;
        return 0;
}

int nap_context_new(NapContext **ret, int scope, nap_warn_fn warn, void *userdata, NapError *e) {
        _cleanup_(nap_config_freep) NapConfig *config = NULL;
        int r = nap_config_load(&config, warn, userdata, e);
        if (r < 0)
                return r;
        r = nap_context_new_with_config(ret, config, scope);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to set up");
        TAKE_PTR(config);
        return 0;
}

NapContext *nap_context_free(NapContext *c) {
        if (!c)
                return NULL;
        sd_bus_flush_close_unref(c->bus);
        etcd_client_free(c->etcd);
        free(c->fetch_socket);
        nap_config_free(c->config);
        free(c);
        return NULL;
}

/* RUNTIME/nap/fetch: /run in the system, $XDG_RUNTIME_DIR for a user. */
int nap_context_use_fetch_worker(NapContext *c) {
        const char *runtime = c->scope == NAP_SCOPE_USER ? secure_getenv("XDG_RUNTIME_DIR") : "/run";
        struct stat st;
        if (isempty(runtime))
                return -ENXIO;
        _cleanup_free_ char *path = path_join(runtime, "nap", "fetch", NULL);
        if (!path)
                return -ENOMEM;
        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        free(c->fetch_socket);
        c->fetch_socket = TAKE_PTR(path);
        return 0;
}

int ops_context_bus(NapContext *c, sd_bus **ret, NapError *e) {
        if (!c->bus) {
                int r = nap_systemd_open(c->scope, &c->bus, e);
                if (r < 0)
                        return r;
        }
        *ret = c->bus;
        return 0;
}

void ops_progress(const NapRolloutOptions *o, const char *fmt, ...) {
        char msg[NAP_ERROR_MESSAGE_MAX];
        va_list ap;
        if (!o || !o->progress)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        o->progress(o->userdata, msg);
}

void nap_service_info_array_free(NapServiceInfo *a, size_t n) {
        for (size_t i = 0; a && i < n; i++) {
                free(a[i].name);
                free(a[i].app);
                free(a[i].url);
                free(a[i].commit);
        }
        free(a);
}

void nap_instance_info_clear(NapInstanceInfo *i) {
        free(i->name);
        free(i->unit);
        free(i->url);
        free(i->active_state);
        free(i->sub_state);
        strv_free(i->argv);
        nap_params_free(i->params);
        free(i->commit);
        free(i->node);
        *i = (NapInstanceInfo) {};
}

void nap_instance_info_array_free(NapInstanceInfo *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                nap_instance_info_clear(a + i);
        free(a);
}

/* ROOT/services/USER is made first: the app may not be deployed yet. */
int ops_lock_service_to_deploy(NapContext *c, const NapService *s, int *ret_fd, NapError *e) {
        _cleanup_free_ char *user_dir = nap_state_user_services_dir(c->config, s->user);
        if (!user_dir)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        int r = mkdir_p(user_dir, 0755);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to create %s", user_dir);
        return ops_lock_service(c, s, ret_fd, e);
}

int ops_service_dir_checked(NapContext *c, const NapService *s, char **ret, NapError *e) {
        char name[NAP_SERVICE_NAME_MAX];
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, s);
        if (!dir)
                return nap_error_errno(e, -ENOMEM, "Failed to look up app");
        struct stat st;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return nap_error_set(e, NAP_ERROR_NO_SUCH_SERVICE, -ENOENT,
                                     "No app %s is deployed (deploy it with: napctl deploy-app %s URL)",
                                     nap_service_name(s, name), name);
        *ret = TAKE_PTR(dir);
        return 0;
}

/* A Dockerfile app has no profile: this is the one nap gives it, for
 * validation and for get_parameters (none: a Dockerfile app has no
 * {placeholders}; what varies is built into the image). Its command is
 * not what runs: start_common makes the instance a container
 * (nap_manifest_set_image(), which empties argv) and the generator writes
 * the podman units from the manifest's image (nap-generator(8),
 * CONTAINERS). It only says so to whoever reads it. */
#define DOCKERFILE_PROFILE                                                      \
        "# nap: this app has a Dockerfile and neither a profile nor a Procfile.\n" \
        "# The instance is built and run by podman with $PORT published.\n"      \
        "podman run --env PORT={port} --publish {port}:{port} IMAGE\n"

/* DIR/Dockerfile as a regular file of its own: not a symlink, which would
 * let the build read a file from outside the tree. 0 if it is there,
 * -ENOENT if not, another error otherwise. */
static int check_dockerfile(const char *dir, NapError *e) {
        _cleanup_free_ char *path = path_join(dir, "Dockerfile", NULL);
        struct stat st;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read profile");
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? -ENOENT : nap_error_errno(e, negative_errno(), "Failed to read %s", path);
        if (!S_ISREG(st.st_mode))
                return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "The app's Dockerfile is not a regular file (a symbolic link?)");
        if (st.st_size == 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -EINVAL, "The app's Dockerfile is empty");
        return 0;
}

/* Reads DIR/profile, else DIR/Procfile, else makes the profile of a
 * Dockerfile app (DIR/Dockerfile): the first one found wins, so a tree
 * with a profile and a Dockerfile is a profile app. InvalidProfile
 * (-ENOENT) when there is none of the three. */
int ops_load_profile_in(const char *dir, NapProfile **ret, NapError *e) {
        static const struct {
                const char *file;
                NapProfileFormat format;
        } candidates[] = {
                { "profile", NAP_PROFILE_FORMAT_PROFILE },
                { "Procfile", NAP_PROFILE_FORMAT_PROCFILE },
        };
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                _cleanup_free_ char *path = path_join(dir, candidates[i].file, NULL), *text = NULL;
                size_t size;
                if (!path)
                        return nap_error_errno(e, -ENOMEM, "Failed to read profile");
                int r = read_full_file(path, NAP_PROFILE_MAX_SIZE, &text, &size);
                if (r == -ENOENT)
                        continue;
                if (r == -EFBIG)
                        return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, r, "%s is larger than %u bytes",
                                             candidates[i].file, NAP_PROFILE_MAX_SIZE);
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to read %s", path);
                return nap_profile_parse(text, size, candidates[i].format, ret, e);
        }
        int r = check_dockerfile(dir, e);
        if (r == -ENOENT)
                return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -ENOENT,
                                     "The app has neither a profile, a Procfile nor a Dockerfile at its top level");
        if (r < 0)
                return r;
        return nap_profile_parse(DOCKERFILE_PROFILE, strlen(DOCKERFILE_PROFILE), NAP_PROFILE_FORMAT_PROFILE, ret, e);
}

bool ops_tree_is_dockerfile_app(const char *dir) {
        static const char *const files[] = { "profile", "Procfile" };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = path_join(dir, files[i], NULL);
                if (!p || access(p, F_OK) >= 0)
                        return false;
        }
        return check_dockerfile(dir, NULL) >= 0;
}

int ops_load_service_profile(NapContext *c, const NapService *s, NapProfile **ret, NapError *e) {
        _cleanup_free_ char *dir = NULL;
        int r = ops_service_dir_checked(c, s, &dir, e);
        return r < 0 ? r : ops_load_profile_in(dir, ret, e);
}

void ops_deploy_meta_clear(DeployMeta *m) {
        free(m->url);
        free(m->commit);
        *m = (DeployMeta) {};
}

/* SERVICE_DIR/.nap/deploy.json; missing or damaged: all fields NULL/0. */
void ops_deploy_meta_read(const char *service_dir, DeployMeta *ret) {
        _cleanup_free_ char *path = nap_state_deploy_meta_file(service_dir), *text = NULL;
        *ret = (DeployMeta) {};
        if (!path || read_full_file(path, NAP_DEPLOY_META_MAX, &text, NULL) < 0)
                return;
        json_auto_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        const char *url = json_string_value(json_object_get(j, "url"));
        const char *commit = json_string_value(json_object_get(j, "commit"));
        json_int_t t = json_integer_value(json_object_get(j, "time"));
        ret->url = url ? strdup(url) : NULL;
        ret->commit = commit ? strdup(commit) : NULL;
        ret->time_usec = t > 0 ? (uint64_t) t : 0;
}

/* Loads the manifest of an instance name; NoSuchInstance if there is none. */
int ops_load_instance(NapContext *c, const char *instance, NapManifest **ret, NapError *e) {
        NapInstance i;
        char name[NAP_UNIT_NAME_MAX];
        int r = nap_instance_parse(instance, &i, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, &i);
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to look up instance");
        if (access(path, F_OK) < 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT, "No instance %s (see: napctl list-instances %s_%s)",
                                     nap_instance_name(&i, name), i.service.user, i.service.app);
        return nap_manifest_load(path, ret, e);
}

/* ---- an instance's units for the service manager ------------------------ */

static int runtime_unit_files(NapContext *c, NapUnitFiles *ret, char **ret_dir, NapError *e) {
        int r = nap_unit_files_runtime_dir(c->scope, ret_dir);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to find the service manager's runtime unit directory");
        *ret = (NapUnitFiles) { .dir = *ret_dir, .config = c->config, .scope = c->scope,
                                .discovery_binary = nap_unit_files_discovery_binary(NULL), .runtime = true };
        return 0;
}

int ops_units_install(NapContext *c, const NapManifest *m, NapError *e) {
        _cleanup_free_ char *dir = NULL;
        char name[NAP_UNIT_NAME_MAX];
        NapUnitFiles o;
        int r = runtime_unit_files(c, &o, &dir, e);
        if (r < 0)
                return r;
        r = nap_unit_files_write(&o, m);
        /* A process that may not write there (nap-receive as the nap
         * account in system scope, allowed to reload by polkit) leaves the
         * instance to the generator: ops_units_load() then finds it not
         * loadable and reloads, as before. Not when a runtime file of the
         * instance is there already: it would win over the generator's. */
        if ((r == -EACCES || r == -EPERM || r == -EROFS) && !nap_unit_files_has_instance(&o, &m->instance))
                return 0;
        if (r == -EINVAL)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r,
                                     "The units of %s cannot be written: a value cannot be written in a unit file",
                                     nap_instance_name(&m->instance, name));
        return r < 0 ? nap_error_errno(e, r, "Failed to write the units of %s into %s",
                                       nap_instance_name(&m->instance, name), dir) : 0;
}

int ops_units_uninstall(NapContext *c, const NapInstance *i, NapError *e) {
        _cleanup_free_ char *dir = NULL;
        char name[NAP_UNIT_NAME_MAX];
        NapUnitFiles o;
        int r = runtime_unit_files(c, &o, &dir, e);
        /* Whether a manifest of i's template (its app, its kind) is left. */
        int used = r >= 0 ? nap_state_has_manifest_of(c->config, &i->service, i->kind) : r;
        if (used < 0)
                return r < 0 ? r : nap_error_errno(e, used, "Failed to read %s", c->config->instances_dir);
        r = nap_unit_files_remove(&o, i, !used);
        /* Written by a process that may write there (nap-managerd) and
         * not removable by this one (see ops_units_install()): left until
         * the next boot, harmless without a manifest and a .wants link. */
        if (r == -EACCES || r == -EPERM || r == -EROFS)
                return 0;
        return r < 0 ? nap_error_errno(e, r, "Failed to remove the units of %s from %s", nap_instance_name(i, name),
                                       dir) : 0;
}

int ops_units_load(NapContext *c, const NapInstance *i, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_load_unit_current(bus, nap_instance_unit_name(i, unit), e);
        if (r != 0)
                return r < 0 ? r : 0;
        /* The manager had this name already: loaded earlier as not-found
         * (a status asked before the instance existed), or from an older
         * drop-in (a number used again). A loaded unit keeps what it read
         * until a reload: the one case that still needs one. */
        return nap_systemd_reload(bus, e);
}
