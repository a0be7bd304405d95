/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/dlopen.h"
#include "clients/fetch.h"
#include "base/fileio.h"

/* Bounds on what a remote may make us download: bytes received, the size
 * of any one object (a small pack can inflate to a huge blob), and the time
 * spent while data flows.
 * libgit2 1.5 has no connect or read timeout (GIT_OPT_SET_SERVER_CONNECT_
 * TIMEOUT and _SERVER_TIMEOUT arrived in 1.7): a server that accepts the
 * connection and then goes silent blocks nap_fetch() until the kernel gives
 * up on the TCP connection. Our deadline is only checked from libgit2's
 * progress callback, i.e. while data arrives. Callers that must not hang
 * (a varlink method) should bound the whole call themselves. */
#define FETCH_MAX_BYTES (UINT64_C(1) << 30)
#define FETCH_MAX_USEC (UINT64_C(600) * 1000000)
#define URL_MAX 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(git_repository *, sym_git_repository_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(git_remote *, sym_git_remote_free);

static pthread_once_t libgit2_once = PTHREAD_ONCE_INIT;
static int libgit2_init_result;

/* libgit2 keeps process-wide state (settings, per-thread error slots), and
 * sym_git_libgit2_init() counts references: initialise it once per process and
 * never shut it down, so any thread may fetch at any time.
 * The options below are process-wide too, and apply to every libgit2 user
 * in this process once the first fetch has run. */
static void libgit2_setup(void) {
        libgit2_init_result = sym_git_libgit2_init();
        if (libgit2_init_result < 0)
                return;

        /* Do not read /etc/gitconfig or the caller's ~/.gitconfig: there,
         * url.<x>.insteadOf could turn an https:// URL into ssh, and what a
         * daemon fetches must not depend on whose home it has. */
        static const int levels[] = {
                GIT_CONFIG_LEVEL_PROGRAMDATA, GIT_CONFIG_LEVEL_SYSTEM,
                GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL,
        };
        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                (void) sym_git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
        (void) sym_git_libgit2_opts(GIT_OPT_SET_PACK_MAX_OBJECT_SIZE, (size_t) FETCH_MAX_BYTES);
}

int nap_libgit2_ready(NapError *e) {
        int r = nap_dlopen_libgit2(e);
        if (r < 0)
                return r;
        r = pthread_once(&libgit2_once, libgit2_setup);
        if (r != 0)
                return nap_error_errno(e, -r, "Failed to initialise libgit2");
        if (libgit2_init_result < 0)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "Failed to initialise libgit2");
        return 0;
}

/* The URL as we may show it: user:password@ replaced, length capped. */
static const char *shown_url(const char *url, char buf[static 256]) {
        const char *scheme_end = strstr(url, "://");
        const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
        const char *slash = scheme_end ? strchr(scheme_end + 3, '/') : NULL;

        if (at && (!slash || at < slash))
                snprintf(buf, 256, "%.*s***%s", (int) (scheme_end + 3 - url), url, at);
        else
                snprintf(buf, 256, "%s", url);
        if (strlen(buf) == 255)
                memcpy(buf + 252, "...", 4);
        return buf;
}

static bool has_control_chars(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/* http(s)://, file:// and local paths only: no ssh (there is no credential
 * handling yet), no git:// (unauthenticated, unencrypted). */
static int check_url(const char *url, NapError *e) {
        char b[256];

        if (isempty(url))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No URL to fetch given");
        if (has_control_chars(url) || strlen(url) > URL_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "Refusing to fetch a URL with control characters or longer than %d bytes", URL_MAX);
        if (startswith(url, "https://") || startswith(url, "http://") || startswith(url, "file://"))
                return 0;

        const char *scheme_end = strstr(url, "://");
        const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
        bool ssh = startswith(url, "ssh://") || startswith(url, "git+ssh://") || startswith(url, "ssh+git://") ||
                   (!scheme_end && colon && (!slash || colon < slash)); /* scp-like [user@]host:path */
        if (ssh)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -EPROTONOSUPPORT,
                                     "Failed to fetch '%s': ssh URLs are not supported, use https://, file:// or a local path",
                                     shown_url(url, b));
        if (scheme_end)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -EPROTONOSUPPORT,
                                     "Failed to fetch '%s': unsupported URL scheme, use https://, file:// or a local path",
                                     shown_url(url, b));

        /* A local path. libgit2 calls a missing one an "unsupported URL
         * protocol"; say what is wrong instead. */
        struct stat st;
        if (stat(url, &st) < 0)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -errno, "Failed to fetch '%s': %s",
                                     shown_url(url, b), strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -ENOTDIR,
                                     "Failed to fetch '%s': not a git repository", shown_url(url, b));
        return 0;
}


typedef struct Transfer {
        uint64_t deadline;
        const char *why_aborted; /* set when we stopped the transfer */
} Transfer;

static int on_transfer_progress(const git_indexer_progress *stats, void *payload) {
        Transfer *t = payload;

        if (stats->received_bytes > FETCH_MAX_BYTES)
                t->why_aborted = "the repository is larger than 1 GiB";
        else if (monotonic_usec() > t->deadline)
                t->why_aborted = "the transfer took longer than 10 minutes";
        return t->why_aborted ? -1 : 0;
}

/* libgit2's last error as FetchFailed, control characters (a server may
 * send anything) replaced. */
static int git_fail(NapError *e, const char *url, int r, const Transfer *t) {
        const git_error *g = sym_git_error_last();
        char b[256], msg[256];

        snprintf(msg, sizeof msg, "%s",
                 t && t->why_aborted ? t->why_aborted : g && g->message ? g->message : "unknown libgit2 error");
        for (char *p = msg; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        int errnum = t && t->why_aborted ? -EFBIG : r == GIT_ENOTFOUND ? -ENOENT : -EIO;
        return nap_error_set(e, NAP_ERROR_FETCH_FAILED, errnum, "Failed to fetch '%s': %s", shown_url(url, b), msg);
}

static int clone_into(const char *url, const char *dir, git_repository **ret, Transfer *t) {
        git_clone_options opts;
        int r;

        /* The _init() functions rather than the INIT macros, which leave
         * fields to the compiler's zeroing (and -Wmissing-field-initializers). */
        r = sym_git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
        if (r < 0)
                return r;
        /* No credentials callback: a repository that needs one fails. */
        opts.fetch_opts.callbacks.transfer_progress = on_transfer_progress;
        opts.fetch_opts.callbacks.payload = t;
        opts.fetch_opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
        opts.checkout_opts.checkout_strategy = GIT_CHECKOUT_SAFE;
        /* No checkout_branch: the remote's HEAD, i.e. its default branch. */
        return sym_git_clone(ret, url, dir, &opts);
}

static void oid_to_hex(const git_oid *oid, char ret[static NAP_COMMIT_HEX_LEN + 1]) {
        sym_git_oid_fmt(ret, oid);
        ret[NAP_COMMIT_HEX_LEN] = 0;
}

static int checkout(const char *url, const char *dir, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        _cleanup_(sym_git_repository_freep) git_repository *repo = NULL;
        Transfer t = { .deadline = monotonic_usec() + FETCH_MAX_USEC };
        char b[256];
        git_oid oid;
        int r;

        r = clone_into(url, dir, &repo, &t);
        if (r < 0)
                return git_fail(e, url, r, &t);

        r = sym_git_reference_name_to_id(&oid, repo, "HEAD");
        if (r == GIT_ENOTFOUND || r == GIT_EUNBORNBRANCH)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -ENOENT,
                                     "Failed to fetch '%s': the repository has no commits on its default branch",
                                     shown_url(url, b));
        if (r < 0)
                return git_fail(e, url, r, NULL);
        oid_to_hex(&oid, ret_commit);
        return 0;
}

int nap_fetch(const char *url, const char *dir, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        char commit[NAP_COMMIT_HEX_LEN + 1];
        struct stat st;
        int r;

        r = check_url(url, e);
        if (r < 0)
                return r;
        if (isempty(dir))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "No directory to fetch into given");
        r = nap_libgit2_ready(e);
        if (r < 0)
                return r;

        /* Whatever is at dir after a failure is ours to remove. */
        if (lstat(dir, &st) >= 0)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EEXIST, "Directory '%s' to fetch into already exists", dir);
        if (errno != ENOENT)
                return nap_error_errno(e, -errno, "Failed to check '%s'", dir);

        r = checkout(url, dir, commit, e);
        if (r < 0) {
                (void) rm_rf(dir);
                return r;
        }

        /* The deployed tree is a plain tree: no history, no git config. */
        _cleanup_free_ char *dotgit = path_join(dir, ".git", NULL);
        r = dotgit ? rm_rf(dotgit) : -ENOMEM;
        if (r < 0) {
                (void) rm_rf(dir);
                return nap_error_errno(e, r, "Failed to remove the .git directory of '%s'", dir);
        }
        memcpy(ret_commit, commit, sizeof commit);
        return 0;
}

static int find_head(const git_remote_head **heads, size_t n, char ret_commit[static NAP_COMMIT_HEX_LEN + 1]) {
        for (size_t i = 0; i < n; i++)
                if (streq(heads[i]->name, "HEAD")) {
                        oid_to_hex(&heads[i]->oid, ret_commit);
                        return 0;
                }
        return -ENOENT;
}

int nap_fetch_remote_head(const char *url, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        _cleanup_(sym_git_remote_freep) git_remote *remote = NULL;
        git_remote_callbacks callbacks;
        const git_remote_head **heads;
        char b[256];
        size_t n;
        int r;

        r = check_url(url, e);
        if (r < 0)
                return r;
        r = nap_libgit2_ready(e);
        if (r < 0)
                return r;

        r = sym_git_remote_init_callbacks(&callbacks, GIT_REMOTE_CALLBACKS_VERSION);
        if (r < 0)
                return git_fail(e, url, r, NULL);
        r = sym_git_remote_create_detached(&remote, url);
        if (r < 0)
                return git_fail(e, url, r, NULL);
        r = sym_git_remote_connect(remote, GIT_DIRECTION_FETCH, &callbacks, NULL, NULL);
        if (r < 0)
                return git_fail(e, url, r, NULL);
        r = sym_git_remote_ls(&heads, &n, remote);
        if (r < 0)
                return git_fail(e, url, r, NULL);

        /* A remote whose HEAD is unborn (no commits) or dangles lists no HEAD. */
        if (find_head(heads, n, ret_commit) < 0)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, -ENOENT,
                                     "Failed to fetch '%s': the repository has no commits on its default branch",
                                     shown_url(url, b));
        return 0;
}
