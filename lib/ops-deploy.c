/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Deployed apps: deploy_app, list_services, get_parameters. */

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "fetch.h"
#include "fileio.h"
#include "ops-internal.h"
#include "publish.h"
#include "state.h"
#include "strv.h"

#define NAP_URL_MAX 4096

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
        r = ops_load_profile_in(tree, &p, e);
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

        _cleanup_(ops_deploy_meta_clear) DeployMeta old = {};
        ops_deploy_meta_read(dir, &old);
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
        ops_deploy_meta_read(dir, &m);
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
                r = ops_load_service_profile(c, &s, &p, e);
        if (r < 0)
                return r;
        char **l = strv_copy(nap_profile_parameters(p));
        if (!l)
                return nap_error_errno(e, -ENOMEM, "Failed to list parameters");
        *ret = l;
        return 0;
}
