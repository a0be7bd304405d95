/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "model/manifest.h"
#include "model/state.h"

char *nap_state_service_dir(const NapConfig *c, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX];
        return path_join(c->root, "services", s->user, nap_service_name(s, name), NULL);
}

char *nap_state_instance_dir(const NapConfig *c, const NapInstance *i) {
        _cleanup_free_ char *base = strdup_printf("%s_%s_%u", i->service.user, i->service.app, i->number);
        return base ? path_join(c->root, "apps", i->service.user, base, NULL) : NULL;
}

/* ROOT/services/USER/.USER_APP.SUFFIX: beside the tree, so a redeploy that
 * swaps the tree keeps it. */
static char *service_side_file(const NapConfig *c, const NapService *s, const char *suffix) {
        _cleanup_free_ char *base = strdup_printf(".%s_%s.%s", s->user, s->app, suffix);
        return base ? path_join(c->root, "services", s->user, base, NULL) : NULL;
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
        _cleanup_free_ char *counter = service_side_file(c, s, "last");
        _cleanup_free_ char *apps = path_join(c->root, "apps", s->user, NULL);
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

/* Ports named by the manifests in dir. A damaged manifest is skipped:
 * the generator skips it too, so its port is not in use by nap. */
static int ports_in_use(const char *dir, bool in_use[static 65536]) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        for (struct dirent *de; (de = readdir(d));) {
                size_t l = strlen(de->d_name), sl = strlen(NAP_MANIFEST_SUFFIX);
                if (de->d_name[0] == '.' || l <= sl || !streq(de->d_name + l - sl, NAP_MANIFEST_SUFFIX))
                        continue;
                _cleanup_free_ char *path = path_join(dir, de->d_name, NULL);
                _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
                if (!path)
                        return -ENOMEM;
                if (nap_manifest_load(path, &m, NULL) >= 0)
                        in_use[m->port] = true;
        }
        return 0;
}

/* Whether something on this host already listens on port (any address).
 * Binding the wildcard address fails when any address has the port. */
static bool port_is_free(unsigned port) {
        _cleanup_close_ int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
        if (fd >= 0)
                return bind(fd, (struct sockaddr *) &sa6, sizeof sa6) >= 0;
        /* No IPv6: try IPv4. */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
        return fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof sa) >= 0;
}

int nap_state_allocate_port(const NapConfig *c, unsigned *ret, int *ret_lock_fd, NapError *e) {
        _cleanup_free_ char *lock_path = path_join(c->root, ".ports.lock", NULL);
        _cleanup_free_ bool *in_use = calloc(65536, sizeof(bool));
        if (!lock_path || !in_use)
                return nap_error_errno(e, -ENOMEM, "Failed to allocate a port");

        _cleanup_close_ int lock_fd = -1;
        int r = lock_file_mkdir(lock_path, &lock_fd);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to lock %s", lock_path);
        r = ports_in_use(c->instances_dir, in_use);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read manifests in %s", c->instances_dir);

        for (unsigned p = c->port_min; p <= c->port_max; p++)
                if (!in_use[p] && port_is_free(p)) {
                        *ret = p;
                        *ret_lock_fd = TAKE_FD(lock_fd);
                        return 0;
                }
        return nap_error_set(e, NAP_ERROR_NO_FREE_PORT, -EADDRINUSE,
                             "No free port in PortRange=%u-%u", c->port_min, c->port_max);
}
