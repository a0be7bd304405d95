/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Checking out one given commit with libgit2, where lib/clients/fetch.h only knows
 * a remote's default branch: what a push deploys (the commit it brought,
 * from the bare repository it went to) and what a rollback redeploys (a
 * commit recorded in the deploy history, from where it came). */

#include <stdbool.h>

#include "base/error.h"
#include "clients/fetch.h"

/* Resolves rev (40 hex digits, or a full ref name such as
 * "refs/heads/main") in the local repository at path (bare or not) to the
 * commit it names. FetchFailed when there is no such commit. */
int nap_repo_resolve(const char *path, const char *rev, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e);

/* Writes the tree of commit (40 hex digits) into dir, which must not exist
 * and is removed again on failure. url: a local path to a repository or a
 * file:// URL (opened in place, nothing copied), or an http(s):// URL
 * (cloned bare into a temporary directory beside dir first; bounded like
 * nap_fetch()). No .git in dir: it is a plain tree. */
int nap_fetch_commit(const char *url, const char *commit, const char *dir, NapError *e);
