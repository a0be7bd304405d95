/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The operations of the seed interface, written once. Each one validates
 * everything it was given before it changes anything, takes the app's lock
 * for what it changes, and leaves STATE either as it was or as it should
 * be: trees are built beside their final place and renamed into it. */

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "etcd.h"
#include "fetch.h"
#include "fileio.h"
#include "manifest.h"
#include "ops.h"
#include "publish.h"
#include "state.h"
#include "strv.h"
#include "systemd1.h"
#include "unit.h"

#define NAP_URL_MAX 4096
#define NAP_DEPLOY_META_MAX (16 * 1024)
#define NAP_JOURNAL_LINES_MAX 10000

/* ---- context ---------------------------------------------------------- */

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
        nap_config_free(c->config);
        free(c);
        return NULL;
}

static int context_bus(NapContext *c, sd_bus **ret, NapError *e) {
        if (!c->bus) {
                int r = nap_systemd_open(c->scope, &c->bus, e);
                if (r < 0)
                        return r;
        }
        *ret = c->bus;
        return 0;
}

/* ---- result types ----------------------------------------------------- */

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
        *i = (NapInstanceInfo) {};
}

void nap_instance_info_array_free(NapInstanceInfo *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                nap_instance_info_clear(a + i);
        free(a);
}

/* ---- deployed apps ---------------------------------------------------- */

static int service_dir_checked(NapContext *c, const NapService *s, char **ret, NapError *e) {
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

/* Reads DIR/profile, else DIR/Procfile. -ENOENT when neither exists. */
static int load_profile_in(const char *dir, NapProfile **ret, NapError *e) {
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
        return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -ENOENT,
                             "The app has neither a profile nor a Procfile at its top level");
}

static int load_service_profile(NapContext *c, const NapService *s, NapProfile **ret, NapError *e) {
        _cleanup_free_ char *dir = NULL;
        int r = service_dir_checked(c, s, &dir, e);
        return r < 0 ? r : load_profile_in(dir, ret, e);
}

typedef struct DeployMeta {
        char *url;
        char *commit;
        uint64_t time_usec;
} DeployMeta;

static void deploy_meta_clear(DeployMeta *m) {
        free(m->url);
        free(m->commit);
        *m = (DeployMeta) {};
}

/* SERVICE_DIR/.nap/deploy.json; missing or damaged: all fields NULL/0. */
static void deploy_meta_read(const char *service_dir, DeployMeta *ret) {
        _cleanup_free_ char *path = path_join(service_dir, ".nap", "deploy.json", NULL), *text = NULL;
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

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + ts.tv_nsec / 1000;
}

static int deploy_meta_write(const char *tree, const char *url, const char *commit) {
        _cleanup_free_ char *dir = path_join(tree, ".nap", NULL);
        _cleanup_free_ char *path = path_join(tree, ".nap", "deploy.json", NULL);
        json_auto_t *j = json_pack("{s:s, s:s, s:I}", "url", url, "commit", commit, "time", (json_int_t) now_usec());
        if (!dir || !path || !j)
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(j, JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        int r = mkdir(dir, 0755) < 0 ? negative_errno() : 0;
        return r < 0 ? r : write_file_atomic(path, text, strlen(text), 0644);
}

static int validate_url(const char *url, NapError *e) {
        if (isempty(url))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The app's URL is empty");
        if (strlen(url) > NAP_URL_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The app's URL is longer than %d bytes",
                                     NAP_URL_MAX);
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                             "The app's URL contains a control character");
        return 0;
}

/* Fetches url into STAGING/tree, checks it can run, records where it came
 * from. The deployed tree is not touched. */
static int stage_tree(const char *staging, const char *url, NapDeployResult *ret, NapError *e) {
        _cleanup_free_ char *tree = path_join(staging, "tree", NULL);
        _cleanup_free_ char *meta = path_join(staging, "tree", ".nap", NULL);
        if (!tree || !meta)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        int r = nap_fetch(url, tree, ret->commit, e);
        if (r < 0)
                return r;
        /* .nap/ is nap's: whatever the repository had there goes. */
        r = rm_rf(meta);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to clean %s", meta);
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        r = load_profile_in(tree, &p, e);
        if (r < 0)
                return r;
        r = deploy_meta_write(tree, url, ret->commit);
        return r < 0 ? nap_error_errno(e, r, "Failed to record deploy metadata") : 0;
}

/* Puts STAGING/tree at dir: exchanged atomically with an existing tree
 * (which ends up in STAGING and goes with it), or renamed into place. */
static int swap_in_tree(const char *staging, const char *dir, NapError *e) {
        _cleanup_free_ char *tree = path_join(staging, "tree", NULL);
        if (!tree)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        if (renameat2(AT_FDCWD, tree, AT_FDCWD, dir, RENAME_EXCHANGE) < 0) {
                if (errno != ENOENT)
                        return nap_error_errno(e, negative_errno(), "Failed to replace %s", dir);
                if (rename(tree, dir) < 0)
                        return nap_error_errno(e, negative_errno(), "Failed to move the app to %s", dir);
        }
        int r = fsync_directory_of(dir);
        return r < 0 ? nap_error_errno(e, r, "Failed to sync %s", dir) : 0;
}

static int deploy_locked(NapContext *c, const NapService *s, const char *url, NapDeployResult *ret, NapError *e) {
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, s);
        _cleanup_free_ char *staging = strdup_printf("%s.deploy-XXXXXX", dir ?: "");
        if (!dir || !staging)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");

        _cleanup_(deploy_meta_clear) DeployMeta old = {};
        deploy_meta_read(dir, &old);
        if (old.url && old.commit && streq(old.url, url) && streq(ret->commit, old.commit)) {
                ret->changed = false;
                return 0;
        }
        if (!mkdtemp(staging))
                return nap_error_errno(e, negative_errno(), "Failed to create %s", staging);
        int r = stage_tree(staging, url, ret, e);
        if (r >= 0)
                r = swap_in_tree(staging, dir, e);
        (void) rm_rf(staging);
        ret->changed = r >= 0;
        return r;
}

int nap_deploy_app(NapContext *c, const char *service, const char *url, NapDeployResult *ret, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = validate_url(url, e);
        if (r < 0)
                return r;

        /* Ask the remote first: a URL that cannot be fetched leaves no trace,
         * and an unchanged one needs no clone. */
        *ret = (NapDeployResult) {};
        r = nap_fetch_remote_head(url, ret->commit, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *user_dir = path_join(c->config->root, "services", s.user, NULL);
        if (!user_dir)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        r = mkdir_p(user_dir, 0755);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to create %s", user_dir);

        _cleanup_close_ int lock = -1;
        r = nap_state_lock_service(c->config, &s, &lock, e);
        if (r >= 0)
                r = deploy_locked(c, &s, url, ret, e);
        if (r >= 0) /* unchanged too: catches up a write that was pending */
                ret->publish = nap_publish_url(c, &s, url, &ret->publish_error);
        return r;
}

static int service_info_fill(const char *user_dir, const char *name, const NapService *s, NapServiceInfo *ret) {
        _cleanup_free_ char *dir = path_join(user_dir, name, NULL);
        if (!dir)
                return -ENOMEM;
        DeployMeta m;
        deploy_meta_read(dir, &m);
        *ret = (NapServiceInfo) {
                .name = strdup(name),
                .app = strdup(s->app),
                .url = m.url,
                .commit = m.commit,
                .deployed_usec = m.time_usec,
        };
        return ret->name && ret->app ? 0 : -ENOMEM;
}

static int service_info_compare(const void *a, const void *b) {
        return strcmp(((const NapServiceInfo *) a)->name, ((const NapServiceInfo *) b)->name);
}

int nap_list_services(NapContext *c, const char *user, NapServiceInfo **ret, size_t *ret_n, NapError *e) {
        if (!nap_user_is_valid(user))
                return nap_service_from_parts(user, "x", &(NapService) {}, e);

        _cleanup_free_ char *user_dir = path_join(c->config->root, "services", user, NULL);
        if (!user_dir)
                return nap_error_errno(e, -ENOMEM, "Failed to list apps");
        NapServiceInfo *list = NULL;
        size_t n = 0;
        _cleanup_closedir_ DIR *d = opendir(user_dir);
        if (!d && errno != ENOENT)
                return nap_error_errno(e, negative_errno(), "Failed to read %s", user_dir);
        for (struct dirent *de; d && (de = readdir(d));) {
                NapService s;
                if (de->d_name[0] == '.' || nap_service_parse(de->d_name, &s, NULL) < 0 || !streq(s.user, user))
                        continue;
                NapServiceInfo *l = reallocarray(list, n + 1, sizeof *list);
                if (!l || service_info_fill(user_dir, de->d_name, &s, (list = l) + n++) < 0) {
                        nap_service_info_array_free(list, n);
                        return nap_error_errno(e, -ENOMEM, "Failed to list apps");
                }
        }
        if (n > 0)
                qsort(list, n, sizeof *list, service_info_compare);
        *ret = list;
        *ret_n = n;
        return 0;
}

int nap_get_parameters(NapContext *c, const char *service, char ***ret, NapError *e) {
        NapService s;
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = load_service_profile(c, &s, &p, e);
        if (r < 0)
                return r;
        char **l = strv_copy(nap_profile_parameters(p));
        if (!l)
                return nap_error_errno(e, -ENOMEM, "Failed to list parameters");
        *ret = l;
        return 0;
}

/* ---- instances -------------------------------------------------------- */

/* The instance's profile as nap ran it: a header and the substituted
 * command, written so that it parses back to exactly argv. */
static int write_instance_profile(const char *dir, const NapInstance *i, char *const *argv) {
        char name[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *command = nap_profile_format_command(argv);
        _cleanup_free_ char *path = path_join(dir, "profile", NULL);
        _cleanup_free_ char *text = command ? strdup_printf(
                "# %s: the profile of this instance, parameters substituted by nap.\n%s\n",
                nap_instance_name(i, name), command) : NULL;
        if (!text || !path)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0644);
}

/* Copies the deployed tree to apps/USER/USER_APP_N via a temporary
 * directory, so the instance directory appears whole or not at all. */
static int create_instance_tree(NapContext *c, const char *service_dir, const NapInstance *i,
                                char *const *argv, char **ret_dir, NapError *e) {
        static const char *const skip[] = { ".nap", ".git", NULL };
        _cleanup_free_ char *dir = nap_state_instance_dir(c->config, i);
        _cleanup_free_ char *tmp = dir ? strdup_printf("%s.tmp", dir) : NULL;
        _cleanup_free_ char *parent = path_join(c->config->root, "apps", i->service.user, NULL);
        if (!dir || !tmp || !parent)
                return nap_error_errno(e, -ENOMEM, "Failed to create instance");

        int r = mkdir_p(parent, 0755);
        if (r >= 0)
                r = rm_rf(tmp); /* left over by a crash */
        if (r >= 0)
                r = copy_tree(service_dir, tmp, skip);
        if (r >= 0)
                r = write_instance_profile(tmp, i, argv);
        if (r >= 0 && rename(tmp, dir) < 0)
                r = negative_errno();
        if (r >= 0)
                r = fsync_directory_of(dir);
        if (r < 0) {
                (void) rm_rf(tmp);
                return nap_error_errno(e, r, "Failed to create %s", dir);
        }
        *ret_dir = TAKE_PTR(dir);
        return 0;
}

static char *instance_url(const NapConfig *c, unsigned port) {
        _cleanup_free_ char *host = NULL;
        if (nap_config_host(c, &host) < 0)
                return NULL;
        /* An IPv6 literal needs brackets in a URL. */
        return strchr(host, ':') ? strdup_printf("http://[%s]:%u", host, port) : strdup_printf("http://%s:%u", host, port);
}

static int instance_info_from_manifest(const NapConfig *c, const NapManifest *m, NapInstanceInfo *ret) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        NapParams *params = NULL;
        int r = nap_params_new(&params);
        for (size_t k = 0; r >= 0 && m->params && k < nap_params_size(m->params); k++)
                r = nap_params_set(params, nap_params_key(m->params, k), nap_params_value(m->params, k), NULL);
        *ret = (NapInstanceInfo) {
                .name = strdup(nap_instance_name(&m->instance, name)),
                .unit = strdup(nap_instance_unit_name(&m->instance, unit)),
                .number = m->instance.number,
                .port = m->port,
                .url = instance_url(c, m->port),
                .enabled = m->enabled,
                .argv = strv_copy(m->argv),
                .params = params,
        };
        if (r < 0 || !ret->name || !ret->unit || !ret->url || !ret->argv) {
                nap_instance_info_clear(ret);
                return -ENOMEM;
        }
        return 0;
}

static int instance_info_set_state(NapInstanceInfo *i, const char *active, const char *sub) {
        free(i->active_state);
        free(i->sub_state);
        i->active_state = strdup(active);
        i->sub_state = strdup(sub);
        return i->active_state && i->sub_state ? 0 : -ENOMEM;
}

/* Params that substitute cleanly with a stand-in port: checked before
 * anything is allocated or written. */
static int check_params(const NapProfile *p, const NapParams *params, NapError *e) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *exec = NULL;
        int r = nap_profile_substitute(p, params, 1, &argv, NULL, e);
        if (r < 0)
                return r;
        /* What the generator will write must be writable: a first word that is
         * empty or starts with one of systemd's ExecStart= prefixes is not. */
        r = unit_format_exec(argv, &exec);
        if (r == -EINVAL)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r,
                                     "The command's first word '%.64s' cannot be run: it is empty or starts with one of -@:+!",
                                     argv[0]);
        return r < 0 ? nap_error_errno(e, r, "Failed to check the command") : 0;
}

/* Under the app's lock: number, port, tree, manifest. */
static int create_instance(NapContext *c, const NapService *s, const NapProfile *p, const NapParams *params,
                           NapManifest *m, NapError *e) {
        _cleanup_free_ char *service_dir = NULL;
        int r = service_dir_checked(c, s, &service_dir, e);
        if (r < 0)
                return r;
        m->instance = (NapInstance) { .service = *s, .kind = NAP_KIND_COMMON };
        r = nap_state_next_instance_number(c->config, s, &m->instance.number, e);
        if (r < 0)
                return r;
        _cleanup_close_ int port_lock = -1;
        r = nap_state_allocate_port(c->config, &m->port, &port_lock, e);
        if (r < 0)
                return r;
        r = nap_profile_substitute(p, params, m->port, &m->argv, &m->params, e);
        if (r < 0)
                return r;
        r = create_instance_tree(c, service_dir, &m->instance, m->argv, &m->directory, e);
        if (r < 0)
                return r;
        DeployMeta meta;
        deploy_meta_read(service_dir, &meta);
        m->commit = TAKE_PTR(meta.commit);
        deploy_meta_clear(&meta);
        m->enabled = true;
        /* The manifest is written last and atomically: it is what makes the
         * instance exist for the generator and for every operation. */
        return nap_manifest_save(c->config->instances_dir, m, e);
}

static int start_unit_reporting(NapContext *c, const NapInstance *i, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_start_unit(bus, nap_instance_unit_name(i, unit), e);
        return r;
}

/* The app's URL (again: a deploy may have found etcd down) and the new
 * instance's port. */
static NapPublish publish_instance(NapContext *c, const NapManifest *m) {
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, &m->instance.service);
        _cleanup_(deploy_meta_clear) DeployMeta meta = {};
        if (dir)
                deploy_meta_read(dir, &meta);
        NapPublish p = nap_publish_port(c, &m->instance, m->port, NULL);
        if (p == NAP_PUBLISH_DONE && meta.url)
                p = nap_publish_url(c, &m->instance.service, meta.url, NULL);
        return p;
}

int nap_start_common(NapContext *c, const char *service, const NapParams *params, NapInstanceInfo *ret, NapError *e) {
        NapService s;
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = load_service_profile(c, &s, &p, e);
        if (r >= 0)
                r = check_params(p, params, e);
        if (r < 0)
                return r;

        _cleanup_(nap_manifest_freep) NapManifest *m = calloc(1, sizeof *m);
        _cleanup_close_ int lock = -1;
        sd_bus *bus;
        if (!m)
                return nap_error_errno(e, -ENOMEM, "Failed to start");
        r = context_bus(c, &bus, e); /* before writing anything: no bus, no instance */
        if (r >= 0)
                r = nap_state_lock_service(c->config, &s, &lock, e);
        if (r >= 0)
                r = create_instance(c, &s, p, params, m, e);
        if (r >= 0)
                r = nap_systemd_reload(bus, e);
        if (r >= 0)
                r = start_unit_reporting(c, &m->instance, e);
        if (r < 0)
                return r;
        r = instance_info_from_manifest(c->config, m, ret);
        if (r >= 0)
                r = instance_info_set_state(ret, "active", "running");
        if (r < 0)
                return nap_error_errno(e, r, "Failed to describe the new instance");
        ret->publish = publish_instance(c, m);
        return 0;
}

/* Loads the manifest of an instance name; NoSuchInstance if there is none. */
static int load_instance(NapContext *c, const char *instance, NapManifest **ret, NapError *e) {
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

static int instance_info_compare(const void *a, const void *b) {
        const NapInstanceInfo *x = a, *y = b;
        return x->number < y->number ? -1 : x->number > y->number;
}

/* Every manifest of the service in Instances=. */
static int read_instance_manifests(NapContext *c, const NapService *s, NapInstanceInfo **list, size_t *n, NapError *e) {
        _cleanup_free_ char *prefix = strdup_printf("%s_%s_", s->user, s->app);
        _cleanup_closedir_ DIR *d = opendir(c->config->instances_dir);
        if (!prefix)
                return nap_error_errno(e, -ENOMEM, "Failed to list instances");
        if (!d)
                return errno == ENOENT ? 0 : nap_error_errno(e, negative_errno(), "Failed to read %s", c->config->instances_dir);
        for (struct dirent *de; (de = readdir(d));) {
                if (!startswith(de->d_name, prefix))
                        continue;
                _cleanup_free_ char *path = path_join(c->config->instances_dir, de->d_name, NULL);
                _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
                if (!path)
                        return nap_error_errno(e, -ENOMEM, "Failed to list instances");
                if (nap_manifest_load(path, &m, NULL) < 0)
                        continue; /* damaged: the generator skips and logs it too */
                NapInstanceInfo *l = reallocarray(*list, *n + 1, sizeof **list);
                if (!l)
                        return nap_error_errno(e, -ENOMEM, "Failed to list instances");
                *list = l;
                if (instance_info_from_manifest(c->config, m, l + *n) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to list instances");
                ++*n;
        }
        return 0;
}

static NapInstanceInfo *find_instance_info(NapInstanceInfo *list, size_t n, const char *unit) {
        for (size_t k = 0; k < n; k++)
                if (streq(list[k].unit, unit))
                        return list + k;
        return NULL;
}

/* Adds systemd's view: state of each instance; units systemd has loaded
 * without a manifest (removed behind nap's back, still running) are listed
 * too, so nothing that runs is hidden. */
static int merge_unit_states(NapContext *c, const NapService *s, NapInstanceInfo **list, size_t *n, NapError *e) {
        _cleanup_free_ char *pattern = strdup_printf("%s_%s_common@*.service", s->user, s->app);
        NapUnitStatus *units = NULL;
        size_t k = 0;
        sd_bus *bus;
        if (!pattern)
                return nap_error_errno(e, -ENOMEM, "Failed to list instances");
        int r = context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_list_units(bus, pattern, &units, &k, e);
        for (size_t u = 0; r >= 0 && u < k; u++) {
                NapInstanceInfo *i = find_instance_info(*list, *n, units[u].name);
                NapInstance parsed;
                if (!i && nap_instance_parse(units[u].name, &parsed, NULL) >= 0) {
                        NapInstanceInfo *l = reallocarray(*list, *n + 1, sizeof **list);
                        if (!l) {
                                r = -ENOMEM;
                                break;
                        }
                        *list = l;
                        i = l + (*n)++;
                        char name[NAP_UNIT_NAME_MAX];
                        *i = (NapInstanceInfo) { .name = strdup(nap_instance_name(&parsed, name)),
                                                 .unit = strdup(units[u].name), .number = parsed.number };
                }
                if (i && instance_info_set_state(i, units[u].active_state, units[u].sub_state) < 0)
                        r = -ENOMEM;
        }
        nap_unit_status_array_free(units, k);
        for (size_t j = 0; r >= 0 && j < *n; j++)
                if (!(*list)[j].active_state && instance_info_set_state(*list + j, "inactive", "dead") < 0)
                        r = -ENOMEM;
        return r < 0 ? nap_error_errno(e, r, "Failed to list instances") : 0;
}

int nap_list_instances(NapContext *c, const char *service, NapInstanceInfo **ret, size_t *ret_n, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r < 0)
                return r;
        NapInstanceInfo *list = NULL;
        size_t n = 0;
        r = read_instance_manifests(c, &s, &list, &n, e);
        if (r >= 0)
                r = merge_unit_states(c, &s, &list, &n, e);
        _cleanup_free_ char *dir = NULL;
        if (r >= 0 && n == 0)
                r = service_dir_checked(c, &s, &dir, e); /* nothing at all: say so */
        if (r < 0) {
                nap_instance_info_array_free(list, n);
                return r;
        }
        if (n > 0)
                qsort(list, n, sizeof *list, instance_info_compare);
        *ret = list;
        *ret_n = n;
        return 0;
}

int nap_get_instances_num(NapContext *c, const char *service, unsigned *ret, NapError *e) {
        NapInstanceInfo *list;
        size_t n;
        int r = nap_list_instances(c, service, &list, &n, e);
        if (r < 0)
                return r;
        nap_instance_info_array_free(list, n);
        *ret = n;
        return 0;
}

/* Records whether the instance comes back at boot. Only the generator's
 * next run reads it (it decides the .wants/ link), so no reload is needed
 * now: the unit is started or stopped directly. */
static int set_enabled(NapContext *c, NapManifest *m, bool enabled, NapError *e) {
        if (m->enabled == enabled)
                return 0;
        m->enabled = enabled;
        return nap_manifest_save(c->config->instances_dir, m, e);
}

/* What start, stop and remove need: the manifest, the bus, the app's lock
 * (held until *lock is closed). */
static int open_instance_locked(NapContext *c, const char *instance, NapManifest **ret, sd_bus **ret_bus,
                                int *lock, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        int r = load_instance(c, instance, &m, e);
        if (r >= 0)
                r = context_bus(c, ret_bus, e);
        if (r >= 0)
                r = nap_state_lock_service(c->config, &m->instance.service, lock, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int start_or_stop(NapContext *c, const char *instance, bool start, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_close_ int lock = -1;
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = open_instance_locked(c, instance, &m, &bus, &lock, e);
        if (r >= 0)
                r = set_enabled(c, m, start, e);
        if (r < 0)
                return r;
        nap_instance_unit_name(&m->instance, unit);
        if (!start)
                return nap_systemd_stop_unit(bus, unit, e);
        /* An explicit start clears a unit that gave up after its start
         * limit, as `systemctl reset-failed; systemctl start` would. */
        (void) nap_systemd_reset_failed_unit(bus, unit);
        return nap_systemd_start_unit(bus, unit, e);
}

int nap_start_app(NapContext *c, const char *instance, NapError *e) {
        return start_or_stop(c, instance, true, e);
}

int nap_stop_app(NapContext *c, const char *instance, NapError *e) {
        return start_or_stop(c, instance, false, e);
}

int nap_cat_app(NapContext *c, const char *instance, char **ret, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        int r = load_instance(c, instance, &m, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = path_join(m->directory, "profile", NULL);
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read profile");
        r = read_full_file(path, NAP_PROFILE_MAX_SIZE, ret, NULL);
        return r < 0 ? nap_error_errno(e, r, "Failed to read %s", path) : 0;
}

int nap_get_journal(NapContext *c, const char *instance, size_t lines, NapJournalEntry **ret, size_t *ret_n, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        char unit[NAP_UNIT_NAME_MAX];
        if (lines > NAP_JOURNAL_LINES_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "At most %d journal lines can be asked for",
                                     NAP_JOURNAL_LINES_MAX);
        int r = load_instance(c, instance, &m, e);
        if (r < 0)
                return r;
        return nap_journal_tail(c->scope, nap_instance_unit_name(&m->instance, unit), lines, ret, ret_n, e);
}

/* Stop, forget (manifest gone: the generator drops the units on reload),
 * then remove the tree. A crash after the manifest is gone leaves only an
 * orphaned directory whose number is never handed out again. */
int nap_remove_instance(NapContext *c, const char *instance, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_close_ int lock = -1;
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = open_instance_locked(c, instance, &m, &bus, &lock, e);
        if (r >= 0)
                r = nap_systemd_stop_unit(bus, nap_instance_unit_name(&m->instance, unit), e);
        if (r < 0)
                return r;
        _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, &m->instance);
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to remove instance");
        if (unlink(path) < 0 || fsync_directory_of(path) < 0)
                return nap_error_errno(e, negative_errno(), "Failed to remove %s", path);
        r = nap_systemd_reload(bus, e);
        if (r < 0)
                return r;
        (void) nap_systemd_reset_failed_unit(bus, unit);
        nap_unpublish_port(c, &m->instance);
        r = rm_rf(m->directory);
        return r < 0 ? nap_error_errno(e, r, "Failed to remove %s", m->directory) : 0;
}

/* ---- lookups in etcd -------------------------------------------------- */

static const char *const source_table[_NAP_SOURCE_MAX] = {
        [NAP_SOURCE_ETCD] = "etcd",
        [NAP_SOURCE_LOCAL] = "local",
};

const char *nap_source_to_string(NapSource s) {
        return s >= 0 && s < _NAP_SOURCE_MAX ? source_table[s] : NULL;
}

void nap_endpoint_list_done(NapEndpointList *l) {
        for (size_t i = 0; l && i < l->n; i++)
                nap_endpoint_clear(l->items + i);
        free(l ? l->items : NULL);
        if (l)
                *l = (NapEndpointList) {};
}

int nap_get_service_url(NapContext *c, const char *user, const char *app, char **ret, NapSource *ret_source,
                        NapError *e) {
        NapService s;
        int r = nap_service_from_parts(user, app, &s, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *key = nap_key_url(c->config, &s);
        if (c->config->etcd && nap_lookup(c, key, ret, NULL) > 0) {
                *ret_source = NAP_SOURCE_ETCD;
                return 0;
        }
        _cleanup_free_ char *dir = NULL;
        r = service_dir_checked(c, &s, &dir, e);
        if (r < 0)
                return r;
        _cleanup_(deploy_meta_clear) DeployMeta meta = {};
        deploy_meta_read(dir, &meta);
        if (!meta.url)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_SERVICE, -ENOENT, "No URL is recorded for %s_%s", user, app);
        *ret = TAKE_PTR(meta.url);
        *ret_source = NAP_SOURCE_LOCAL;
        return 0;
}

/* A port as nap writes it: decimal 1..65535. */
static int parse_port(const char *s, unsigned *ret) {
        unsigned v;
        int r = nap_instance_number_parse(s, &v);
        if (r < 0 || v > 65535)
                return -EINVAL;
        *ret = v;
        return 0;
}

int nap_get_port(NapContext *c, const char *instance, unsigned *ret, NapSource *ret_source, NapError *e) {
        NapInstance i;
        int r = nap_instance_parse(instance, &i, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *key = nap_key_instance_port(c->config, &i), *text = NULL;
        unsigned port;
        if (c->config->etcd && nap_lookup(c, key, &text, NULL) > 0 && parse_port(text, &port) >= 0) {
                *ret = port;
                *ret_source = NAP_SOURCE_ETCD;
                return 0;
        }
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        r = load_instance(c, instance, &m, e);
        if (r < 0)
                return r;
        *ret = m->port;
        *ret_source = NAP_SOURCE_LOCAL;
        return 0;
}

static int endpoint_list_add(NapEndpointList *l, const EtcdKeyValue *kv) {
        NapEndpoint ep;
        if (nap_endpoint_parse(kv->value, kv->value_size, &ep, NULL) < 0)
                return 0; /* someone else's key, or damaged: not an endpoint */
        NapEndpoint *items = reallocarray(l->items, l->n + 1, sizeof *items);
        if (!items) {
                nap_endpoint_clear(&ep);
                return -ENOMEM;
        }
        l->items = items;
        l->items[l->n++] = ep;
        return 0;
}

int nap_list_endpoints(NapContext *c, const char *service, NapEndpointList *ret, NapError *e) {
        NapService s;
        EtcdClient *etcd;
        EtcdRange range = {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = nap_context_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *prefix = nap_key_endpoints(c->config, &s);
        if (!prefix)
                return nap_error_errno(e, -ENOMEM, "Failed to list endpoints");
        r = etcd_range_prefix(etcd, prefix, 0, false, &range, e);
        if (r < 0)
                return r;
        NapEndpointList l = {};
        for (size_t k = 0; r >= 0 && k < range.n_kvs; k++)
                r = endpoint_list_add(&l, range.kvs + k);
        etcd_range_done(&range);
        if (r < 0) {
                nap_endpoint_list_done(&l);
                return nap_error_errno(e, r, "Failed to list endpoints");
        }
        *ret = l;
        return 0;
}
