/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Fetching through nap-fetch(8): git (libgit2) parses what it fetches —
 * an untrusted repository — in an unprivileged, sandboxed process that
 * systemd starts per connection on nap-fetch.socket, not in the caller.
 *
 * On one connection: the caller sends one request line, a JSON object
 *   {"op":"head", "url":URL}                  the remote's default branch
 *   {"op":"tree", "url":URL}                  its tree, checked out
 *   {"op":"tree", "url":URL, "commit":HEX40}  that commit's tree
 * and the worker answers one line
 *   {"commit":HEX40}                          (tree: with the checked-out
 *                                             directory's fd, SCM_RIGHTS)
 *   {"error":"FetchFailed", "message":TEXT}   a NapError kind and message
 * The caller copies the tree from the fd (it never trusts a path from the
 * worker) and closes the connection; the worker then exits and its
 * private /tmp goes. */

#include "base/error.h"
#include "model/names.h"

#define NAP_FETCH_LINE_MAX (16U * 1024U)
/* A fetch is bounded to 10 minutes of transfer (fetch.h); some slack. */
#define NAP_FETCH_WORKER_TIMEOUT_USEC (11ULL * 60ULL * 1000ULL * 1000ULL)

typedef enum NapFetchOp {
        NAP_FETCH_HEAD,
        NAP_FETCH_TREE,
        _NAP_FETCH_OP_MAX,
        _NAP_FETCH_OP_INVALID = -EINVAL,
} NapFetchOp;

typedef struct NapFetchRequest {
        NapFetchOp op;
        char *url;
        char commit[NAP_COMMIT_HEX_LEN + 1]; /* "": the default branch */
} NapFetchRequest;

void nap_fetch_request_done(NapFetchRequest *r);
/* A request line (without its '\n'); refused: InvalidParameter. */
int nap_fetch_request_parse(const char *text, size_t len, NapFetchRequest *ret, NapError *e);
/* A reply line: 0 and the commit, or the worker's error (its kind and
 * message) as < 0; a line that is not a reply: Internal. */
int nap_fetch_reply_parse(const char *text, size_t len, char ret_commit[static NAP_COMMIT_HEX_LEN + 1],
                          NapError *e);

/* The caller's side. socket: the path of nap-fetch.socket. */
int nap_fetch_worker_head(const char *socket, const char *url, char ret_commit[static NAP_COMMIT_HEX_LEN + 1],
                          NapError *e);
/* commit NULL: the default branch (its commit in ret_commit). dir must not
 * exist; it is made, a copy of the fetched tree, or not at all. */
int nap_fetch_worker_tree(const char *socket, const char *url, const char *commit, const char *dir,
                          char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e);
