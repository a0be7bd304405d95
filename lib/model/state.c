/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/strv.h"
#include "base/tcp.h"
#include "model/manifest.h"
#include "model/state.h"

char *nap_state_cluster_realized_dir(const NapConfig *c) {
        return path_join(c->root, "cluster", "realized", NULL);
}

char *nap_state_cluster_realized_mark(const NapConfig *c, const NapInstance *i) {
        char name[NAP_UNIT_NAME_MAX];
        return path_join(c->root, "cluster", "realized", nap_instance_name(i, name), NULL);
}

char *nap_state_user_services_dir(const NapConfig *c, const char *user) {
        return path_join(c->root, "services", user, NULL);
}

char *nap_state_web_tokens_dir(const NapConfig *c) {
        return path_join(c->root, "web", "tokens", NULL);
}

char *nap_state_web_token_file(const NapConfig *c, const char *user) {
        return path_join(c->root, "web", "tokens", user, NULL);
}

char *nap_state_web_key_file(const NapConfig *c) {
        return path_join(c->root, "web", "session.key", NULL);
}

/* ROOT/services/USER/NAME */
static char *user_services_file(const NapConfig *c, const char *user, const char *name) {
        _cleanup_free_ char *dir = nap_state_user_services_dir(c, user);
        return dir && name ? path_join(dir, name, NULL) : NULL;
}

char *nap_state_service_dir(const NapConfig *c, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX];
        return user_services_file(c, s->user, nap_service_name(s, name));
}

char *nap_state_staging_template(const NapConfig *c, const NapService *s) {
        _cleanup_free_ char *dir = nap_state_service_dir(c, s);
        return dir ? strdup_printf("%s.deploy-XXXXXX", dir) : NULL;
}

char *nap_state_staging_tree(const char *staging) {
        return path_join(staging, "tree", NULL);
}

char *nap_state_meta_dir(const char *tree) {
        return path_join(tree, NAP_STATE_META_DIR_NAME, NULL);
}

char *nap_state_deploy_meta_file(const char *tree) {
        return path_join(tree, NAP_STATE_META_DIR_NAME, "deploy.json", NULL);
}

char *nap_state_history_file(const char *tree) {
        return path_join(tree, NAP_STATE_META_DIR_NAME, "history.json", NULL);
}

char *nap_state_git_repo_dir(const NapConfig *c, const NapService *s) {
        _cleanup_free_ char *base = strdup_printf("%s.git", s->app);
        return base ? path_join(c->root, "git", s->user, base, NULL) : NULL;
}

char *nap_state_user_apps_dir(const NapConfig *c, const char *user) {
        return path_join(c->root, "apps", user, NULL);
}

char *nap_state_instance_dir(const NapConfig *c, const NapInstance *i) {
        _cleanup_free_ char *apps = nap_state_user_apps_dir(c, i->service.user);
        _cleanup_free_ char *base = strdup_printf("%s_%s_%u", i->service.user, i->service.app, i->number);
        return apps && base ? path_join(apps, base, NULL) : NULL;
}

char *nap_state_instance_build_dir(const char *instance_dir) {
        return strdup_printf("%s.tmp", instance_dir);
}

char *nap_state_instance_next_dir(const char *instance_dir) {
        return strdup_printf("%s.next", instance_dir);
}

/* ROOT/services/USER/.USER_APP.SUFFIX: beside the tree, so a redeploy that
 * swaps the tree keeps it. */
static char *service_side_file(const NapConfig *c, const NapService *s, const char *suffix) {
        _cleanup_free_ char *base = strdup_printf(".%s_%s.%s", s->user, s->app, suffix);
        return user_services_file(c, s->user, base);
}

char *nap_state_service_env_file(const NapConfig *c, const NapService *s) {
        return service_side_file(c, s, "env");
}

char *nap_state_service_counter_file(const NapConfig *c, const NapService *s) {
        return service_side_file(c, s, "last");
}

int nap_state_list_users(const NapConfig *c, char ***ret, NapError *e) {
        _cleanup_free_ char *dir = path_join(c->root, "services", NULL);
        _cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
        _cleanup_strv_free_ char **l = NULL;
        if (!dir)
                return nap_error_errno(e, -ENOMEM, "Failed to list users");
        if (!d && errno != ENOENT)
                return nap_error_errno(e, negative_errno(), "Failed to read %s", dir);
        for (struct dirent *de; d && (de = readdir(d));)
                if (nap_user_is_valid(de->d_name) && strv_extend(&l, de->d_name) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to list users");
        if (!l && !(l = calloc(1, sizeof *l)))
                return nap_error_errno(e, -ENOMEM, "Failed to list users");
        strv_sort(l);
        *ret = TAKE_PTR(l);
        return 0;
}

static int mkdir_parent(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        *strrchr(copy, '/') = 0;
        return mkdir_p(copy, 0755);
}

/* lock_file() in a directory made on demand. */
static int lock_file_mkdir(const char *path, int *ret_fd) {
        int r = mkdir_parent(path);
        return r < 0 ? r : lock_file(path, ret_fd);
}

int nap_state_lock_service(const NapConfig *c, const NapService *s, int *ret_fd, NapError *e) {
        _cleanup_free_ char *path = service_side_file(c, s, "lock");
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to lock app");
        int r = lock_file_mkdir(path, ret_fd);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to lock %s", path);
        return 0;
}

/* The largest N among entries of dir named PREFIX<N>SUFFIX. */
static int max_number_in_dir(const char *dir, const char *prefix, const char *suffix, unsigned *max) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        size_t sl = strlen(suffix);
        for (struct dirent *de; (de = readdir(d));) {
                const char *n = startswith(de->d_name, prefix);
                size_t l = n ? strlen(n) : 0;
                if (!n || l <= sl || !streq(n + l - sl, suffix) || l - sl >= 16)
                        continue;
                char digits[16];
                memcpy(digits, n, l - sl);
                digits[l - sl] = 0;
                unsigned v;
                if (nap_instance_number_parse(digits, &v) >= 0 && v > *max)
                        *max = v;
        }
        return 0;
}

static int read_counter(const char *path, unsigned *max) {
        _cleanup_free_ char *text = NULL;
        int r = read_full_file(path, 32, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        unsigned v;
        r = nap_instance_number_parse(text, &v);
        if (r < 0)
                return -EBADMSG;
        if (v > *max)
                *max = v;
        return 0;
}

int nap_state_next_instance_number(const NapConfig *c, const NapService *s, unsigned *ret, NapError *e) {
        _cleanup_free_ char *counter = nap_state_service_counter_file(c, s);
        _cleanup_free_ char *apps = nap_state_user_apps_dir(c, s->user);
        _cleanup_free_ char *app_prefix = strdup_printf("%s_%s_", s->user, s->app);
        _cleanup_free_ char *unit_prefix = strdup_printf("%s_%s_common@", s->user, s->app);
        if (!counter || !apps || !app_prefix || !unit_prefix)
                return nap_error_errno(e, -ENOMEM, "Failed to allocate an instance number");

        unsigned max = 0;
        int r = read_counter(counter, &max);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read %s", counter);
        r = max_number_in_dir(apps, app_prefix, "", &max);
        if (r >= 0)
                r = max_number_in_dir(c->instances_dir, unit_prefix, NAP_MANIFEST_SUFFIX, &max);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to scan existing instances");
        if (max >= NAP_INSTANCE_NUMBER_MAX)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -ERANGE, "Instance numbers of %s_%s are exhausted",
                                     s->user, s->app);

        char text[16];
        int n = snprintf(text, sizeof text, "%u\n", max + 1);
        r = mkdir_parent(counter);
        if (r >= 0)
                r = write_file_atomic(counter, text, n, 0644);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to record instance number in %s", counter);
        *ret = max + 1;
        return 0;
}

typedef int (*manifest_fn)(NapManifest **m, void *userdata);

/* Calls fn for each manifest in dir whose name starts with prefix; fn may
 * take *m. A damaged manifest is skipped: the generator skips it too, so
 * nothing of it runs. */
static int foreach_manifest(const char *dir, const char *prefix, manifest_fn fn, void *userdata) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        for (struct dirent *de; (de = readdir(d));) {
                const char *n = de->d_name;
                if (n[0] == '.' || !startswith(n, prefix) || !endswith(n, NAP_MANIFEST_SUFFIX))
                        continue;
                _cleanup_free_ char *path = path_join(dir, n, NULL);
                _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
                if (!path)
                        return -ENOMEM;
                if (nap_manifest_load(path, &m, NULL) < 0)
                        continue;
                int r = fn(&m, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct ManifestList {
        NapManifest **items;
        size_t n;
} ManifestList;

static int manifest_list_take(NapManifest **m, void *userdata) {
        ManifestList *l = userdata;
        NapManifest **items = reallocarray(l->items, l->n + 1, sizeof *items);
        if (!items)
                return -ENOMEM;
        l->items = items;
        l->items[l->n++] = TAKE_PTR(*m);
        return 0;
}

static int manifest_compare(const void *a, const void *b) {
        unsigned x = (*(NapManifest *const *) a)->instance.number, y = (*(NapManifest *const *) b)->instance.number;
        return x < y ? -1 : x > y;
}

void nap_state_manifests_free(NapManifest **l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_manifest_free(l[i]);
        free(l);
}

/* Manifests in Instances= whose names start with prefix, by number. */
static int load_manifests(const NapConfig *c, const char *prefix, NapManifest ***ret, size_t *ret_n, NapError *e) {
        ManifestList l = {};
        int r = foreach_manifest(c->instances_dir, prefix, manifest_list_take, &l);
        if (r < 0) {
                nap_state_manifests_free(l.items, l.n);
                return r == -ENOMEM ? nap_error_errno(e, r, "Failed to list instances")
                                    : nap_error_errno(e, r, "Failed to read %s", c->instances_dir);
        }
        if (l.n > 0)
                qsort(l.items, l.n, sizeof *l.items, manifest_compare);
        *ret = l.items;
        *ret_n = l.n;
        return 0;
}

int nap_state_load_service_manifests(const NapConfig *c, const NapService *s, NapManifest ***ret, size_t *ret_n,
                                     NapError *e) {
        /* '_' is in neither user nor app: only s's instances start so. */
        _cleanup_free_ char *prefix = strdup_printf("%s_%s_", s->user, s->app);
        return prefix ? load_manifests(c, prefix, ret, ret_n, e) : nap_error_errno(e, -ENOMEM, "Failed to list instances");
}

int nap_state_has_manifest_of(const NapConfig *c, const NapService *s, NapKind kind) {
        _cleanup_free_ char *prefix = strdup_printf("%s_%s_%s@", s->user, s->app, nap_kind_to_string(kind));
        if (!prefix)
                return -ENOMEM;
        _cleanup_closedir_ DIR *d = opendir(c->instances_dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        for (struct dirent *de; (de = readdir(d));)
                if (startswith(de->d_name, prefix) && endswith(de->d_name, NAP_MANIFEST_SUFFIX))
                        return 1;
        return 0;
}

int nap_state_load_all_manifests(const NapConfig *c, NapManifest ***ret, size_t *ret_n, NapError *e) {
        return load_manifests(c, "", ret, ret_n, e);
}

/* ---- ports ----------------------------------------------------------------
 * ROOT/ports/PORT -> INSTANCES/NAME.json: which manifest a port was given
 * to, so that allocating one reads no manifest (reading them all cost
 * ~0.5 s with 10,000 instances: bench/host-scale). A claim counts while
 * its manifest exists: instance numbers are never reused, so the claim of
 * a removed instance, or of one whose manifest was never written (a crash
 * in between), is free again. ROOT/ports/ is made once from the manifests
 * there are, the first time a port is allocated. */

static void port_name(unsigned port, char buf[static 8]) {
        snprintf(buf, 8, "%u", port);
}

/* Follows the claim: true when it names a manifest that exists. */
static bool port_claimed(int dir_fd, unsigned port) {
        char name[8];
        struct stat st;
        port_name(port, name);
        return fstatat(dir_fd, name, &st, 0) >= 0;
}

static int claim_port(int dir_fd, unsigned port, const char *manifest) {
        char name[8];
        port_name(port, name);
        if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT) /* a stale claim */
                return negative_errno();
        return symlinkat(manifest, dir_fd, name) < 0 ? negative_errno() : 0;
}

typedef struct PortClaims {
        const NapConfig *config;
        int dir_fd;
} PortClaims;

static int claim_manifest_port(NapManifest **m, void *userdata) {
        PortClaims *p = userdata;
        _cleanup_free_ char *manifest = nap_manifest_path(p->config->instances_dir, &(*m)->instance);
        return manifest ? claim_port(p->dir_fd, (*m)->port, manifest) : -ENOMEM;
}

/* ROOT/ports, made from the manifests (in a temporary directory renamed
 * into place) when it is not there yet. Under the ports lock. */
static int open_port_claims(const NapConfig *c, int *ret_fd) {
        _cleanup_free_ char *dir = path_join(c->root, "ports", NULL);
        _cleanup_free_ char *tmp = path_join(c->root, ".ports.new", NULL);
        if (!dir || !tmp)
                return -ENOMEM;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0 || errno != ENOENT)
                return fd >= 0 ? (*ret_fd = fd, 0) : negative_errno();
        int r = rm_rf(tmp);
        if (r >= 0 && mkdir(tmp, 0755) < 0)
                r = negative_errno();
        _cleanup_close_ int tmp_fd = r >= 0 ? open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        PortClaims claims = { .config = c, .dir_fd = tmp_fd };
        if (r >= 0)
                r = tmp_fd < 0 ? negative_errno() : foreach_manifest(c->instances_dir, "", claim_manifest_port, &claims);
        if (r >= 0 && rename(tmp, dir) < 0)
                r = negative_errno();
        if (r < 0)
                return (void) rm_rf(tmp), r;
        *ret_fd = TAKE_FD(tmp_fd);
        return 0;
}

/* Whether something on this host already listens on port (any address):
 * tcp_port_free() binds it with SO_REUSEADDR, as servers bind (Python's
 * http.server, Go, nginx, node): connections of an instance that went a
 * moment ago linger in TIME_WAIT for a minute, and without it their port
 * would count as taken, so a few rollouts in a row ran out of ports
 * (bench/push: "No free port"). In nap-managerd, whose network is its
 * own, nap-connect(8) probes the host's. */
static int port_is_free(unsigned port, NapError *e) {
        int r = tcp_port_free(port);
        if (r < 0)
                return nap_error_set(e, tcp_error_is_broker(r) ? NAP_ERROR_NOT_AVAILABLE : NAP_ERROR_INTERNAL, r,
                                     "Cannot tell whether port %u is free: %s", port, tcp_strerror(r));
        return r;
}

int nap_state_allocate_port(const NapConfig *c, const NapInstance *i, unsigned *ret, int *ret_lock_fd,
                            NapError *e) {
        _cleanup_free_ char *lock_path = path_join(c->root, ".ports.lock", NULL);
        _cleanup_free_ char *manifest = nap_manifest_path(c->instances_dir, i);
        if (!lock_path || !manifest)
                return nap_error_errno(e, -ENOMEM, "Failed to allocate a port");

        _cleanup_close_ int lock_fd = -1, claims_fd = -1;
        int r = lock_file_mkdir(lock_path, &lock_fd);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to lock %s", lock_path);
        r = open_port_claims(c, &claims_fd);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read the ports given to the manifests in %s", c->instances_dir);

        for (unsigned p = c->port_min; p <= c->port_max; p++) {
                if (port_claimed(claims_fd, p))
                        continue;
                r = port_is_free(p, e);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                r = claim_port(claims_fd, p, manifest);
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to claim port %u", p);
                *ret = p;
                *ret_lock_fd = TAKE_FD(lock_fd);
                return 0;
        }
        return nap_error_set(e, NAP_ERROR_NO_FREE_PORT, -EADDRINUSE,
                             "No free port in PortRange=%u-%u", c->port_min, c->port_max);
}
