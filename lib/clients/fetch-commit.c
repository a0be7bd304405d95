/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/dlopen.h"
#include "clients/fetch-commit.h"
#include "base/fileio.h"

/* The same bounds as nap_fetch() for what a remote may send. */
#define CLONE_MAX_BYTES (UINT64_C(1) << 30)
#define CLONE_MAX_USEC (UINT64_C(600) * 1000000)

DEFINE_TRIVIAL_CLEANUP_FUNC(git_repository *, sym_git_repository_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(git_commit *, sym_git_commit_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(git_object *, sym_git_object_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(git_index *, sym_git_index_free);

/* libgit2's last error as FetchFailed; control characters replaced (the
 * message may quote what a remote sent). */
static int git_fail(NapError *e, const char *what, int r) {
        const git_error *g = sym_git_error_last();
        char msg[256];
        snprintf(msg, sizeof msg, "%s", g && g->message ? g->message : "unknown libgit2 error");
        for (char *p = msg; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        return nap_error_set(e, NAP_ERROR_FETCH_FAILED, r == GIT_ENOTFOUND ? -ENOENT : -EIO, "%s: %s", what, msg);
}

/* A local path, or file:// stripped to one; NULL for anything else. */
static const char *local_path(const char *url) {
        const char *p = startswith(url, "file://");
        if (p)
                return p;
        return url[0] == '/' || !strstr(url, "://") ? url : NULL;
}

static int open_local(const char *path, git_repository **ret, NapError *e) {
        int r = nap_libgit2_ready(e);
        if (r < 0)
                return r;
        /* NO_SEARCH: exactly this repository, never one of its parents. */
        r = sym_git_repository_open_ext(ret, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
        return r < 0 ? git_fail(e, "Failed to open the repository", r) : 0;
}

int nap_repo_resolve(const char *path, const char *rev, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        _cleanup_(sym_git_repository_freep) git_repository *repo = NULL;
        _cleanup_(sym_git_object_freep) git_object *o = NULL;
        if (isempty(path) || isempty(rev))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No repository or revision given");
        int r = nap_libgit2_ready(e); /* loads libgit2 for the ref name check */
        if (r < 0)
                return r;
        /* Only what a deploy may name: a full commit id or a full ref name,
         * not git's revision language. */
        if (!nap_commit_is_valid(rev) && (!startswith(rev, "refs/") || sym_git_reference_is_valid_name(rev) != 1))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "'%.64s' is neither a 40-digit commit nor a full ref name", rev);
        r = open_local(path, &repo, e);
        if (r < 0)
                return r;
        r = sym_git_revparse_single(&o, repo, rev);
        if (r >= 0) {
                git_object *peeled = NULL;
                r = sym_git_object_peel(&peeled, o, GIT_OBJECT_COMMIT);
                sym_git_object_free(o);
                o = peeled;
        }
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -ENOENT, "The repository has no commit %.64s", rev);
        sym_git_oid_fmt(ret_commit, sym_git_object_id(o));
        ret_commit[NAP_COMMIT_HEX_LEN] = 0;
        return 0;
}

/* Writes the commit's tree into dir (created). The baseline is an empty
 * index, so every file of the tree counts as new and is written. */
static int checkout_commit(git_repository *repo, const char *commit, const char *dir, NapError *e) {
        _cleanup_(sym_git_commit_freep) git_commit *c = NULL;
        _cleanup_(sym_git_index_freep) git_index *empty = NULL;
        git_checkout_options opts;
        git_oid oid;

        int r = sym_git_oid_fromstr(&oid, commit);
        if (r >= 0)
                r = sym_git_commit_lookup(&c, repo, &oid);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -ENOENT, "The repository has no commit %s", commit);
        r = sym_git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
        if (r >= 0)
                r = sym_git_index_new(&empty);
        if (r < 0)
                return git_fail(e, "Failed to prepare the checkout", r);
        opts.checkout_strategy = GIT_CHECKOUT_SAFE | GIT_CHECKOUT_DONT_UPDATE_INDEX | GIT_CHECKOUT_RECREATE_MISSING;
        opts.target_directory = dir;
        opts.baseline_index = empty;
        opts.dir_mode = 0755;
        r = sym_git_checkout_tree(repo, (const git_object *) c, &opts);
        return r < 0 ? git_fail(e, "Failed to check out the commit", r) : 0;
}

typedef struct Transfer {
        uint64_t deadline;
        bool aborted;
} Transfer;


static int on_progress(const git_indexer_progress *stats, void *payload) {
        Transfer *t = payload;
        t->aborted = stats->received_bytes > CLONE_MAX_BYTES || monotonic_usec() > t->deadline;
        return t->aborted ? -1 : 0;
}

/* A bare clone of an http(s) remote, with nap_fetch()'s bounds. */
static int clone_bare(const char *url, const char *dir, git_repository **ret, NapError *e) {
        Transfer t = { .deadline = monotonic_usec() + CLONE_MAX_USEC };
        git_clone_options opts;
        if (!startswith(url, "https://") && !startswith(url, "http://"))
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -EPROTONOSUPPORT,
                                     "Cannot fetch a commit from this URL: use https://, file:// or a local path");
        int r = nap_libgit2_ready(e);
        if (r < 0)
                return r;
        r = sym_git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
        if (r < 0)
                return git_fail(e, "Failed to clone", r);
        opts.bare = 1;
        opts.fetch_opts.callbacks.transfer_progress = on_progress;
        opts.fetch_opts.callbacks.payload = &t;
        opts.fetch_opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
        r = sym_git_clone(ret, url, dir, &opts);
        if (r < 0 && t.aborted)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -EFBIG,
                                     "Failed to clone: larger than 1 GiB or slower than 10 minutes");
        return r < 0 ? git_fail(e, "Failed to clone", r) : 0;
}

static int fetch_commit(const char *url, const char *commit, const char *dir, const char *clone_dir, NapError *e) {
        _cleanup_(sym_git_repository_freep) git_repository *repo = NULL;
        const char *path = local_path(url);
        int r = path ? open_local(path, &repo, e) : clone_bare(url, clone_dir, &repo, e);
        if (r < 0)
                return r;
        r = mkdir(dir, 0755) < 0 ? nap_error_errno(e, negative_errno(), "Failed to create %s", dir) : 0;
        return r < 0 ? r : checkout_commit(repo, commit, dir, e);
}

int nap_fetch_commit(const char *url, const char *commit, const char *dir, NapError *e) {
        if (isempty(url) || isempty(dir))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No repository or directory given");
        if (!nap_commit_is_valid(commit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "'%.64s' is not a 40-digit commit id",
                                     strempty(commit));
        struct stat st;
        if (lstat(dir, &st) >= 0)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EEXIST, "Directory '%s' to fetch into already exists", dir);

        _cleanup_free_ char *clone_dir = strdup_printf("%s.git-clone", dir);
        if (!clone_dir)
                return nap_error_errno(e, -ENOMEM, "Failed to fetch");
        (void) rm_rf(clone_dir); /* left over by a crash */
        int r = fetch_commit(url, commit, dir, clone_dir, e);
        (void) rm_rf(clone_dir);
        if (r < 0)
                (void) rm_rf(dir);
        return r;
}
