/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The testable parts of nap-git-shell(8), the forced command of the nap
 * account's authorized_keys (lib/model/authkeys.h writes those lines):
 *
 *  - $SSH_ORIGINAL_COMMAND: exactly one git-receive-pack (git push) or
 *    git-upload-pack (git clone/fetch) of one app, in the forms git sends:
 *        git-receive-pack 'APP'        git-upload-pack 'APP'
 *    where the argument is APP, APP.git, /APP, /APP.git, ~/APP or
 *    ~/APP.git, single-quoted as git quotes it or bare as people type it,
 *    and "git receive-pack" (a space instead of the dash) is taken as
 *    git-shell(1) takes it. One space between the two words, nothing
 *    after the argument. Everything else is refused: other commands,
 *    extra arguments, "../", other users' paths ("bob/app": an app path is
 *    one name), control characters, an empty command (interactive login).
 *    The user is never part of the command: the forced command pins it.
 *
 *  - the bare repository ROOT/git/USER/APP.git, made with libgit2 on the
 *    first push (HEAD → refs/heads/main), with nap's post-receive hook
 *        hooks/post-receive, mode 0755:
 *            #!/bin/sh
 *            exec RECEIVE USER APP
 *    RECEIVE is NAP_LIBEXECDIR/nap-receive (nap-git-shell lets tests
 *    override it with $NAP_RECEIVE_BINARY). The hook's stdin (git's
 *    "OLD NEW REF" lines), cwd (the repository) and environment (GIT_DIR)
 *    pass to nap-receive unchanged. */

#include <stdbool.h>
#include <stddef.h>

#include "model/config.h"
#include "base/error.h"
#include "model/names.h"

typedef enum NapGitVerb {
        NAP_GIT_RECEIVE_PACK, /* git push */
        NAP_GIT_UPLOAD_PACK,  /* git clone, fetch, pull */
        _NAP_GIT_VERB_MAX,
        _NAP_GIT_VERB_INVALID = -EINVAL,
} NapGitVerb;

/* "git-receive-pack", "git-upload-pack": the programs that serve them. */
const char *nap_git_verb_to_string(NapGitVerb v) _pure_;

/* $SSH_ORIGINAL_COMMAND longer than this is refused without a look. */
#define NAP_GIT_COMMAND_MAX 256

typedef struct NapGitCommand {
        NapGitVerb verb;
        char app[NAP_APP_MAX + 1];
} NapGitCommand;

/* Parses size bytes of s (a NUL among them is refused; s may be NULL when
 * size is 0, which is an interactive login). Refusals: NAP_ERROR_PERMISSION_DENIED
 * (-EPERM) for a command that is not one of the two, NAP_ERROR_INVALID_NAME
 * (-EINVAL) for an argument that is not one app name. Messages are one line
 * and never echo control characters. */
int nap_git_command_parse(const char *s, size_t size, NapGitCommand *ret, NapError *e);

/* nap-git-shell --replica: the forced command of another node's replica
 * key. Only "git-receive-pack 'USER_APP'" (or USER_APP.git, with or
 * without a leading '/', quoted or bare): the push of one app's repository from the node that received it.
 * Refusals as nap_git_command_parse()'s; an upload-pack is
 * NAP_ERROR_PERMISSION_DENIED. */
int nap_git_replica_command_parse(const char *s, size_t size, NapService *ret, NapError *e);
/* ROOT/git/USER/APP.git; NULL on OOM. */
char *nap_git_repo_path(const NapConfig *c, const NapService *s);

/* The hook's text for receive (an absolute path). A path of only
 * [A-Za-z0-9/._+-] is written bare, any other is single-quoted; one with a
 * quote, a backslash or a control character is refused (-EINVAL). */
int nap_git_hook_text(const char *receive, const NapService *s, char **ret, NapError *e);

/* Makes sure ROOT/git/USER/APP.git is a bare repository with the hook for
 * receive. A missing repository is created beside (ROOT/git/USER/.APP.git.XXXXXX)
 * and renamed into place, so nobody sees a half-made one and two first
 * pushes at once both end up with the same, whole repository. The hook of
 * an existing repository is rewritten (atomically) when its text differs.
 * Returns 1 if the repository was created, 0 if it existed. */
int nap_git_repo_ensure(const NapConfig *c, const NapService *s, const char *receive, NapError *e);

/* 1 if ROOT/git/USER/APP.git exists (as a directory), 0 if not. */
int nap_git_repo_exists(const NapConfig *c, const NapService *s, NapError *e);
