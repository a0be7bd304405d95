/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* $SSH_ORIGINAL_COMMAND parsing and the bare repositories behind
 * nap-git-shell(8). The parser is a whitelist: the two commands, the six
 * path forms, one app name; it reports what it refused without echoing
 * anything a terminal would act on. */

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/dlopen.h"
#include "base/fileio.h"
#include "clients/fetch.h"
#include "clients/gitshell.h"
#include "model/state.h"

#define HOOK_MAX 4096
#define SHOWN_MAX 64

static const char *const verb_table[_NAP_GIT_VERB_MAX] = {
        [NAP_GIT_RECEIVE_PACK] = "git-receive-pack",
        [NAP_GIT_UPLOAD_PACK] = "git-upload-pack",
};

const char *nap_git_verb_to_string(NapGitVerb v) {
        return v >= 0 && v < _NAP_GIT_VERB_MAX ? verb_table[v] : NULL;
}

/* ---- parsing $SSH_ORIGINAL_COMMAND ---- */

static bool has_control_chars(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return true;
        return false;
}

/* At most SHOWN_MAX bytes of s for a message (s has no control characters). */
static const char *shown(const char *s, size_t n, char buf[static SHOWN_MAX + 4]) {
        snprintf(buf, SHOWN_MAX + 4, "%.*s%s", (int) MIN(n, (size_t) SHOWN_MAX), s, n > SHOWN_MAX ? "..." : "");
        return buf;
}

static int refuse_command(const char *s, size_t n, NapError *e) {
        char b[SHOWN_MAX + 4];
        size_t word = strcspn(s, " ");
        return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                             "'%s' is not allowed: this account only serves git push and git clone of an app "
                             "(git-receive-pack 'APP', git-upload-pack 'APP')",
                             shown(s, MIN(word, n), b));
}

/* The command word and the one space after it; NULL if none matches. */
static const char *skip_command(const char *s, NapGitVerb *ret) {
        static const struct {
                const char *prefix;
                NapGitVerb verb;
        } commands[] = {
                { "git-receive-pack ", NAP_GIT_RECEIVE_PACK },
                { "git receive-pack ", NAP_GIT_RECEIVE_PACK }, /* as git-shell(1) accepts */
                { "git-upload-pack ", NAP_GIT_UPLOAD_PACK },
                { "git upload-pack ", NAP_GIT_UPLOAD_PACK },
        };
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                const char *rest = startswith(s, commands[i].prefix);
                if (rest) {
                        *ret = commands[i].verb;
                        return rest;
                }
        }
        return NULL;
}

/* 'PATH' (git's quoting; our names need no escapes) or PATH. */
static int unquote(const char *arg, char *buf, size_t size) {
        size_t n = strlen(arg);
        if (arg[0] == '\'') {
                if (n < 2 || arg[n - 1] != '\'')
                        return -EINVAL;
                arg++;
                n -= 2;
        }
        if (n >= size || memchr(arg, '\'', n) || memchr(arg, ' ', n) || memchr(arg, '"', n) ||
            memchr(arg, '\\', n))
                return -EINVAL;
        memcpy(buf, arg, n);
        buf[n] = 0;
        return 0;
}

/* APP, APP.git, /APP, /APP.git, ~/APP, ~/APP.git → APP. */
static int app_from_path(const char *path, char ret[static NAP_APP_MAX + 1]) {
        const char *p = startswith(path, "~/") ?: startswith(path, "/") ?: path;
        size_t n = strlen(p);
        if (n > 4 && streq(p + n - 4, ".git"))
                n -= 4;
        if (n == 0 || n > NAP_APP_MAX)
                return -EINVAL;
        char app[NAP_APP_MAX + 1];
        memcpy(app, p, n);
        app[n] = 0;
        if (!nap_app_is_valid(app))
                return -EINVAL;
        memcpy(ret, app, n + 1);
        return 0;
}

/* Whether the argument tries to be a path of more than one name. */
static bool looks_like_path(const char *arg) {
        const char *p = arg + (arg[0] == '\'');
        p = startswith(p, "~/") ?: startswith(p, "/") ?: p;
        return strchr(p, '/') || strstr(p, "..");
}

static int refuse_argument(const char *arg, NapError *e) {
        char b[SHOWN_MAX + 4];
        const char *why = strchr(arg, ' ') ? "only one argument is allowed" :
                          looks_like_path(arg) ? "an app is one name, not a path" :
                          "app names are [a-z][a-z0-9-]{0,47}, optionally with .git";
        /* Quoted as git quotes it, or in our quotes. */
        if (arg[0] == '\'')
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL, "%s is not an app: %s",
                                     shown(arg, strlen(arg), b), why);
        return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL, "'%s' is not an app: %s", shown(arg, strlen(arg), b),
                             why);
}

/* The checks every command gets: into cmd, its verb, where its argument
 * starts, and the argument unquoted into path ("" when it cannot be). */
static int split_command(const char *s, size_t size, char cmd[static NAP_GIT_COMMAND_MAX + 1], NapGitVerb *ret_verb,
                         const char **ret_arg, char path[static NAP_GIT_COMMAND_MAX + 1], NapError *e) {
        assert(s || size == 0);

        if (size == 0)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                                     "interactive login is not allowed: this account only serves git push "
                                     "and git clone of an app");
        if (size > NAP_GIT_COMMAND_MAX)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                                     "command refused: longer than %d bytes", NAP_GIT_COMMAND_MAX);
        if (memchr(s, 0, size) || has_control_chars(s, size))
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                                     "command refused: it contains control characters");

        memcpy(cmd, s, size);
        cmd[size] = 0;
        *ret_arg = skip_command(cmd, ret_verb);
        if (!*ret_arg)
                return refuse_command(cmd, size, e);
        if (unquote(*ret_arg, path, NAP_GIT_COMMAND_MAX + 1) < 0)
                path[0] = 0;
        return 0;
}

int nap_git_command_parse(const char *s, size_t size, NapGitCommand *ret, NapError *e) {
        char cmd[NAP_GIT_COMMAND_MAX + 1], path[NAP_GIT_COMMAND_MAX + 1];
        const char *arg;
        NapGitVerb verb;

        assert(ret);
        int r = split_command(s, size, cmd, &verb, &arg, path, e);
        if (r >= 0 && app_from_path(path, ret->app) < 0)
                r = refuse_argument(arg, e);
        if (r >= 0)
                ret->verb = verb;
        return r;
}

/* USER_APP, USER_APP.git, /USER_APP or /USER_APP.git → the service. */
static int service_from_path(const char *path, NapService *ret) {
        char name[NAP_SERVICE_NAME_MAX];
        path = startswith(path, "/") ?: path;
        size_t n = strlen(path);
        if (n > 4 && streq(path + n - 4, ".git"))
                n -= 4;
        if (n == 0 || n >= sizeof name)
                return -EINVAL;
        memcpy(name, path, n);
        name[n] = 0;
        return nap_service_parse(name, ret, NULL);
}

int nap_git_replica_command_parse(const char *s, size_t size, NapService *ret, NapError *e) {
        char cmd[NAP_GIT_COMMAND_MAX + 1], path[NAP_GIT_COMMAND_MAX + 1], b[SHOWN_MAX + 4];
        const char *arg;
        NapGitVerb verb;

        assert(ret);
        int r = split_command(s, size, cmd, &verb, &arg, path, e);
        if (r >= 0 && verb != NAP_GIT_RECEIVE_PACK)
                r = nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                                  "a replica only receives pushes (git-receive-pack 'USER_APP')");
        if (r >= 0 && service_from_path(path, ret) < 0)
                r = nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                  "%s is not an app's repository: USER_APP or /USER_APP.git expected",
                                  shown(arg, strlen(arg), b));
        return r;
}

/* ---- the repository ---- */

char *nap_git_repo_path(const NapConfig *c, const NapService *s) {
        assert(c);
        assert(s);

        return nap_state_git_repo_dir(c, s);
}

static bool path_is_plain(const char *p) {
        return p[strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._+-")] == 0;
}

int nap_git_hook_text(const char *receive, const NapService *s, char **ret, NapError *e) {
        assert(s);
        assert(ret);

        if (!receive || receive[0] != '/' || strlen(receive) > 1024 || strpbrk(receive, "'\\") ||
            has_control_chars(receive, strlen(receive)))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "the post-receive program must be an absolute path without quotes, "
                                     "backslashes or control characters");
        /* User and app are validated names: nothing to quote. */
        char *t = strdup_printf(path_is_plain(receive) ? "#!/bin/sh\nexec %s %s %s\n" : "#!/bin/sh\nexec '%s' %s %s\n",
                                receive, s->user, s->app);
        if (!t)
                return nap_error_errno(e, -ENOMEM, "Failed to make the post-receive hook");
        *ret = t;
        return 0;
}

static int git_error_message(NapError *e, const char *what, const char *path) {
        const git_error *g = sym_git_error_last();
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "Failed to %s %s: %s", what, path,
                             g && g->message ? g->message : "libgit2 error");
}

static int init_bare(const char *dir, NapError *e) {
        git_repository_init_options o;
        git_repository *repo = NULL;

        int r = nap_libgit2_ready(e);
        if (r < 0)
                return r;
        if (sym_git_repository_init_options_init(&o, GIT_REPOSITORY_INIT_OPTIONS_VERSION) < 0)
                return git_error_message(e, "prepare to create", dir);
        o.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_NO_REINIT;
        o.initial_head = "main";
        if (sym_git_repository_init_ext(&repo, dir, &o) < 0)
                return git_error_message(e, "create the repository", dir);
        sym_git_repository_free(repo);
        return 0;
}

/* Writes the hook when missing or different; atomically, so a push never
 * runs half a hook. */
static int ensure_hook(const char *repo, const char *text, NapError *e) {
        _cleanup_free_ char *dir = path_join(repo, "hooks", NULL), *hook = path_join(repo, "hooks", "post-receive", NULL);
        _cleanup_free_ char *old = NULL;
        struct stat st;

        if (!dir || !hook)
                return nap_error_errno(e, -ENOMEM, "Failed to install the hook");
        if (read_full_file(hook, HOOK_MAX, &old, NULL) >= 0 && streq(old, text) && stat(hook, &st) >= 0 &&
            (st.st_mode & 07777) == 0755)
                return 0;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return nap_error_errno(e, negative_errno(), "Failed to create %s", dir);
        int r = write_file_atomic(hook, text, strlen(text), 0755);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to write %s", hook);
        return 0;
}

/* Made whole beside its final place (as .APP.git.XXXXXX, a name no app
 * listing shows), then renamed there. 1: ours is in place; 0: another push
 * made it first and ours is thrown away. */
static int create_repo(const char *parent, const NapService *s, const char *path, const char *hook, NapError *e) {
        _cleanup_free_ char *tmp = strdup_printf("%s/.%s.git.XXXXXX", parent, s->app);
        if (!tmp)
                return nap_error_errno(e, -ENOMEM, "Failed to create the repository");
        if (!mkdtemp(tmp))
                return nap_error_errno(e, negative_errno(), "Failed to create %s", tmp);

        int r = init_bare(tmp, e);
        if (r >= 0)
                r = ensure_hook(tmp, hook, e);
        if (r >= 0 && chmod(tmp, 0755) < 0)
                r = nap_error_errno(e, negative_errno(), "Failed to set the mode of %s", tmp);
        if (r >= 0) {
                if (rename(tmp, path) >= 0)
                        return 1;
                r = errno == EEXIST || errno == ENOTEMPTY ? 0 :
                    nap_error_errno(e, negative_errno(), "Failed to move the repository to %s", path);
        }
        (void) rm_rf(tmp);
        return r;
}

int nap_git_repo_ensure(const NapConfig *c, const NapService *s, const char *receive, NapError *e) {
        assert(c);
        assert(s);

        _cleanup_free_ char *path = nap_git_repo_path(c, s), *hook = NULL;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to find the repository");
        int r = nap_git_hook_text(receive, s, &hook, e);
        if (r < 0)
                return r;
        r = nap_git_repo_exists(c, s, e);
        if (r < 0)
                return r;
        if (r == 0) {
                _cleanup_free_ char *parent = strdup(path);
                if (!parent)
                        return nap_error_errno(e, -ENOMEM, "Failed to create the repository");
                *strrchr(parent, '/') = 0; /* ROOT/git/USER */
                r = mkdir_p(parent, 0755);
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to create %s", parent);
                r = create_repo(parent, s, path, hook, e);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 1;
        }
        r = ensure_hook(path, hook, e);
        return r < 0 ? r : 0;
}

int nap_git_repo_exists(const NapConfig *c, const NapService *s, NapError *e) {
        assert(c);
        assert(s);

        _cleanup_free_ char *path = nap_git_repo_path(c, s);
        struct stat st;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to find the repository");
        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return nap_error_errno(e, negative_errno(), "Failed to look at %s", path);
        }
        if (!S_ISDIR(st.st_mode))
                return nap_error_set(e, NAP_ERROR_INTERNAL, -ENOTDIR, "%s is not a directory", path);
        return 1;
}
