/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Deployed apps: deploy_app, list_services, get_parameters. */

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "clients/fetch.h"
#include "clients/fetch-commit.h"
#include "clients/fetch-worker.h"
#include "base/debug-point.h"
#include "base/fileio.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"
#include "model/state.h"
#include "base/strv.h"

#define NAP_HISTORY_FILE_MAX (256 * 1024)


void nap_deploy_record_array_free(NapDeployRecord *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                free(a[i].url);
        free(a);
}

static bool history_entry_parse(json_t *o, NapDeployRecord *ret) {
        const char *commit = json_string_value(json_object_get(o, "commit"));
        const char *url = json_string_value(json_object_get(o, "url"));
        json_int_t t = json_integer_value(json_object_get(o, "time"));
        if (!nap_commit_is_valid(commit) || !url)
                return false;
        *ret = (NapDeployRecord) { .url = strdup(url), .time_usec = t > 0 ? (uint64_t) t : 0 };
        memcpy(ret->commit, commit, sizeof ret->commit);
        return ret->url;
}

/* TREE/.nap/history.json, newest first. Missing or damaged: empty; entries
 * that do not parse are left out. */
void ops_history_read(const char *tree, NapDeployRecord **ret, size_t *ret_n) {
        _cleanup_free_ char *path = nap_state_history_file(tree), *text = NULL;
        *ret = NULL;
        *ret_n = 0;
        if (!path || read_full_file(path, NAP_HISTORY_FILE_MAX, &text, NULL) < 0)
                return;
        json_auto_t *a = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        size_t n = MIN(json_array_size(a), (size_t) NAP_HISTORY_MAX), k = 0;
        NapDeployRecord *l = n > 0 ? calloc(n, sizeof *l) : NULL;
        for (size_t i = 0; l && i < n; i++)
                if (history_entry_parse(json_array_get(a, i), l + k))
                        k++;
        *ret = l;
        *ret_n = l ? k : 0;
}

static json_t *history_entry(const char *url, const char *commit, uint64_t time_usec) {
        return json_pack("{s:s, s:s, s:I}", "commit", commit, "url", url, "time", (json_int_t) time_usec);
}

/* The new entry first, then what the tree being replaced had, capped. */
static int history_write(const char *tree, const char *old_tree, const char *url, const char *commit, uint64_t now) {
        _cleanup_free_ char *path = nap_state_history_file(tree);
        NapDeployRecord *old = NULL;
        size_t n = 0;
        json_auto_t *a = json_array();
        if (!path || !a)
                return -ENOMEM;
        if (old_tree)
                ops_history_read(old_tree, &old, &n);
        int r = json_array_append_new(a, history_entry(url, commit, now));
        for (size_t i = 0; r >= 0 && i < n && i + 1 < NAP_HISTORY_MAX; i++)
                r = json_array_append_new(a, history_entry(old[i].url, old[i].commit, old[i].time_usec));
        nap_deploy_record_array_free(old, n);
        _cleanup_free_ char *text = r >= 0 ? json_dumps(a, JSON_INDENT(1)) : NULL;
        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0644);
}

/* TREE/.nap/deploy.json, and TREE/.nap/history.json continuing the one of
 * old_tree (the tree this one replaces; NULL: none). */
static int deploy_meta_write(const char *tree, const char *old_tree, const char *url, const char *commit) {
        _cleanup_free_ char *dir = nap_state_meta_dir(tree);
        _cleanup_free_ char *path = nap_state_deploy_meta_file(tree);
        uint64_t now = realtime_usec();
        json_auto_t *j = json_pack("{s:s, s:s, s:I}", "url", url, "commit", commit, "time", (json_int_t) now);
        if (!dir || !path || !j)
                return -ENOMEM;
        _cleanup_free_ char *text = json_dumps(j, JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        int r = mkdir(dir, 0755) < 0 ? negative_errno() : 0;
        if (r >= 0)
                r = write_file_atomic(path, text, strlen(text), 0644);
        return r < 0 ? r : history_write(tree, old_tree, url, commit, now);
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

/* The profile is read by nap itself (with nap's rights), and its parse
 * errors go back to whoever deployed: a profile or Procfile that is a
 * symlink could point at a file of nap's and echo pieces of it. */
static int refuse_symlinked_profile(const char *tree, NapError *e) {
        static const char *const names[] = { "profile", "Procfile" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *p = path_join(tree, names[i], NULL);
                struct stat st;
                if (!p)
                        return nap_error_errno(e, -ENOMEM, "Failed to deploy");
                if (lstat(p, &st) >= 0 && !S_ISREG(st.st_mode))
                        return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                             "%s is not a regular file (a symlink?)", names[i]);
        }
        return 0;
}

/* A repository under /tmp or /var/tmp is in the caller's /tmp, not in
 * nap-fetch's (PrivateTmp=yes): say so rather than "not found". */
static int refuse_private_tmp(const char *url, NapError *e) {
        const char *path = startswith(url, "file://") ?: url;
        if (!startswith(path, "/tmp/") && !startswith(path, "/var/tmp/"))
                return 0;
        return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                "%.200s is under /tmp, which nap's services do not share (PrivateTmp=yes in nap-fetch@.service): "
                "move the repository elsewhere (e.g. /srv/git) or deploy with napctl --no-helper", path), "url");
}

/* url's tree (commit NULL: its default branch's) into dir, by nap-fetch
 * when the context has its socket (nap-managerd), else in this process. */
static int fetch_tree(NapContext *c, const char *url, const char *commit, const char *dir,
                      char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        if (c->fetch_socket)
                return refuse_private_tmp(url, e) ?: nap_fetch_worker_tree(c->fetch_socket, url, commit, dir, ret_commit, e);
        if (!commit)
                return nap_fetch(url, dir, ret_commit, e);
        memcpy(ret_commit, commit, NAP_COMMIT_HEX_LEN + 1);
        return nap_fetch_commit(url, commit, dir, e);
}

/* A fetched tree made nap's: .nap/ replaced by the deploy's metadata (the
 * history continuing old_tree's), once its profile is checked (returned). */
static int adopt_fetched_tree(NapScope scope, const char *tree, const char *old_tree, const char *url,
                              const char *commit, NapProfile **ret_profile, NapError *e) {
        _cleanup_free_ char *meta = nap_state_meta_dir(tree);
        if (!meta)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        /* .nap/ is nap's: whatever the repository had there goes. */
        int r = rm_rf(meta);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to clean %s", meta);
        r = refuse_symlinked_profile(tree, e);
        if (r >= 0)
                r = ops_load_profile_in(tree, ret_profile, e);
        if (r >= 0 && ops_tree_is_dockerfile_app(tree))
                r = ops_container_check(scope, e); /* a Dockerfile app needs podman here */
        if (r < 0)
                return r;
        r = deploy_meta_write(tree, old_tree, url, commit);
        return r < 0 ? nap_error_errno(e, r, "Failed to record deploy metadata") : 0;
}

/* Fetches url (at commit; NULL: its default branch) into STAGING/tree,
 * checks it can run, records where it came from. The deployed tree is not
 * touched. */
static int stage_tree(NapContext *c, const char *staging, const char *dir, const char *url, const char *commit,
                      NapDeployResult *ret, NapError *e) {
        _cleanup_free_ char *tree = nap_state_staging_tree(staging);
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        if (!tree)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        int r = fetch_tree(c, url, commit, tree, ret->commit, e);
        return r < 0 ? r : adopt_fetched_tree(c->scope, tree, dir, url, ret->commit, &p, e);
}

/* Puts STAGING/tree at dir: exchanged atomically with an existing tree
 * (which ends up in STAGING and goes with it), or renamed into place. */
int ops_swap_in_tree(const char *staging, const char *dir, NapError *e) {
        _cleanup_free_ char *tree = nap_state_staging_tree(staging);
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

int ops_create_staging(NapContext *c, const NapService *s, char **ret, NapError *e) {
        _cleanup_free_ char *staging = nap_state_staging_template(c->config, s);
        if (!staging)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        if (!mkdtemp(staging))
                return nap_error_errno(e, negative_errno(), "Failed to create %s", staging);
        *ret = TAKE_PTR(staging);
        return 0;
}

/* ret->commit: the commit to deploy; exact: fetch that one, not the
 * default branch (which it was when asked). */
static int deploy_locked(NapContext *c, const NapService *s, const char *url, bool exact, NapDeployResult *ret,
                         NapError *e) {
        char commit[NAP_COMMIT_HEX_LEN + 1];
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, s), *staging = NULL;
        if (!dir)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");

        _cleanup_(ops_deploy_meta_clear) DeployMeta old = {};
        ops_deploy_meta_read(dir, &old);
        if (old.url && old.commit && streq(old.url, url) && streq(ret->commit, old.commit)) {
                ret->changed = false;
                return 0;
        }
        /* A crash from here leaves a staging directory at most: the intent
         * has the next holder of the lock sweep it. */
        NapIntent in = { .operation = NAP_INTENT_DEPLOY, .service = *s };
        int r = ops_intent_begin(c, &in, e);
        if (r >= 0)
                r = ops_create_staging(c, s, &staging, e);
        memcpy(commit, ret->commit, sizeof commit);
        if (r >= 0)
                r = stage_tree(c, staging, dir, url, exact ? commit : NULL, ret, e);
        if (r >= 0)
                nap_debug_point("deploy:staged");
        if (r >= 0)
                r = ops_swap_in_tree(staging, dir, e);
        if (staging)
                (void) rm_rf(staging);
        ops_intent_end(c, s);
        ret->changed = r >= 0;
        return r;
}

static void deployed_before(NapContext *c, const NapService *s, DeployMeta *ret) {
        _cleanup_free_ char *dir = nap_state_service_dir(c->config, s);
        if (dir)
                ops_deploy_meta_read(dir, ret);
}

/* The cluster's instances moved to the commit deployed, with the app's
 * lock released (every node's nap-node, this one's too, takes it to make
 * an instance). When they cannot, this host's tree and the cluster's
 * record go back to what was deployed before, and the deploy fails. */
static int deploy_to_cluster(NapContext *c, const NapService *s, const DeployMeta *before, NapDeployResult *ret,
                             NapError *e) {
        _cleanup_close_ int lock = -1;
        NapDeployResult back = {};
        NapError ignored = NAP_ERROR_NULL;
        char b[96];
        int r = ops_cluster_follow(c, s, before->commit, NULL, ret, e);
        if (r >= 0 || !ret->changed || !before->url || !before->commit || !nap_commit_is_valid(before->commit))
                return r < 0 ? r : 0;
        memcpy(back.commit, before->commit, sizeof back.commit);
        if (ops_lock_service_to_deploy(c, s, &lock, &ignored) >= 0 &&
            deploy_locked(c, s, before->url, true, &back, &ignored) >= 0) {
                ops_publish_app_source(c, s, before->url, &back);
                snprintf(b, sizeof b, "; %.12s is deployed again, here and on every node", before->commit);
                ops_error_append(e, b);
        }
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
        r = c->fetch_socket ? refuse_private_tmp(url, e) ?: nap_fetch_worker_head(c->fetch_socket, url, ret->commit, e)
                            : nap_fetch_remote_head(url, ret->commit, e);
        if (r < 0)
                return r;
        _cleanup_close_ int lock = -1;
        _cleanup_(ops_deploy_meta_clear) DeployMeta before = {};
        r = ops_lock_service_to_deploy(c, &s, &lock, e);
        if (r >= 0) {
                deployed_before(c, &s, &before);
                r = deploy_locked(c, &s, url, false, ret, e);
        }
        if (r >= 0) /* unchanged too: catches up a write that was pending */
                ret->publish = nap_publish_url(c, &s, url, &ret->publish_error);
        if (r >= 0)
                ops_publish_app_source(c, &s, url, ret);
        lock = safe_close(lock);
        if (r >= 0) /* unchanged too: catches up a rollout cut short */
                r = deploy_to_cluster(c, &s, &before, ret, e);
        return r;
}

int nap_deploy_app_at(NapContext *c, const char *service, const char *url, const char *commit,
                      NapDeployResult *ret, NapError *e) {
        _cleanup_close_ int lock = -1;
        NapService s;
        *ret = (NapDeployResult) {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = validate_url(url, e);
        if (r >= 0 && !nap_commit_is_valid(commit))
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                  "'%.64s' is not a commit: 40 lowercase hex digits", strempty(commit));
        if (r >= 0 && c->fetch_socket)
                r = refuse_private_tmp(url, e);
        if (r >= 0)
                r = ops_lock_service_to_deploy(c, &s, &lock, e);
        if (r < 0)
                return r;
        memcpy(ret->commit, commit, sizeof ret->commit);
        return deploy_locked(c, &s, url, true, ret, e);
}

static int service_info_fill(const NapConfig *c, const char *name, const NapService *s, NapServiceInfo *ret) {
        _cleanup_free_ char *dir = nap_state_service_dir(c, s);
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

        _cleanup_free_ char *user_dir = nap_state_user_services_dir(c->config, user);
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
                if (!l || service_info_fill(c->config, de->d_name, &s, (list = l) + n++) < 0) {
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

int nap_list_services_in_cluster(NapContext *c, const char *user, NapServiceInfo **ret, size_t *ret_n,
                                 NapError *e) {
        int r = nap_list_services(c, user, ret, ret_n, e);
        if (r >= 0 && ops_cluster_services(c, user, ret, ret_n) < 0) {
                nap_service_info_array_free(*ret, *ret_n);
                return nap_error_errno(e, -ENOMEM, "Failed to list apps");
        }
        if (r >= 0 && *ret_n > 0)
                qsort(*ret, *ret_n, sizeof **ret, service_info_compare);
        return r;
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

int nap_deploy_history(NapContext *c, const char *service, NapDeployRecord **ret, size_t *ret_n, NapError *e) {
        NapService s;
        _cleanup_free_ char *dir = NULL;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = ops_service_dir_checked(c, &s, &dir, e);
        if (r < 0)
                return r;
        ops_history_read(dir, ret, ret_n);
        return 0;
}

/* A push's or a rollback's STAGING/tree: commit of url, checked, with its
 * metadata, the history continuing old_tree's. */
int ops_stage_commit(NapContext *c, const char *staging, const char *old_tree, const char *url, const char *commit,
                     NapProfile **ret_profile, NapError *e) {
        _cleanup_free_ char *tree = nap_state_staging_tree(staging);
        char fetched[NAP_COMMIT_HEX_LEN + 1];
        if (!tree)
                return nap_error_errno(e, -ENOMEM, "Failed to deploy");
        int r = validate_url(url, e);
        if (r >= 0)
                r = fetch_tree(c, url, commit, tree, fetched, e);
        return r < 0 ? r : adopt_fetched_tree(c->scope, tree, old_tree, url, commit, ret_profile, e);
}
