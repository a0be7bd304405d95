/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Fetching an app with libgit2: clone url (file://, http(s)://, or a local
 * path to a repository) and check out its default branch into dir, which
 * must not exist. The .git directory is removed afterwards: the deployed
 * tree is a plain tree. */

#include "base/error.h"
#include "model/names.h" /* NAP_COMMIT_HEX_LEN, nap_commit_is_valid() */

/* libgit2 set up once per process and never shut down (it counts
 * references), reading no system or global git configuration: what nap
 * fetches or creates must not depend on whose home runs it. Every libgit2
 * user in lib/ calls this first. */
int nap_libgit2_ready(NapError *e);

/* dir is removed on failure. Only https://, http://, file:// and local paths
 * (ssh is refused: FetchFailed). No connect/read timeout with libgit2 < 1.7. */
int nap_fetch(const char *url, const char *dir, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e);
/* Only resolves the default branch's commit (no checkout), to tell whether
 * a deploy would change anything. */
int nap_fetch_remote_head(const char *url, char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e);
