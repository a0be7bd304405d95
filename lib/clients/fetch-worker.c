/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "base/socket-util.h"
#include "clients/fetch-worker.h"

static const char *const op_table[_NAP_FETCH_OP_MAX] = {
        [NAP_FETCH_HEAD] = "head",
        [NAP_FETCH_TREE] = "tree",
};

void nap_fetch_request_done(NapFetchRequest *r) {
        free(r->url);
        *r = (NapFetchRequest) {};
}

static int bad_request(NapError *e, const char *why) {
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Not a fetch request: %s", why);
}

int nap_fetch_request_parse(const char *text, size_t len, NapFetchRequest *ret, NapError *e) {
        const char *op, *url, *commit = NULL;
        *ret = (NapFetchRequest) {};
        if (len > NAP_FETCH_LINE_MAX)
                return bad_request(e, "too long");
        json_auto_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        if (!j || json_unpack(j, "{s:s, s:s, s?s !}", "op", &op, "url", &url, "commit", &commit) < 0)
                return bad_request(e, "not {op, url[, commit]}");
        ret->op = (NapFetchOp) string_table_lookup(op_table, ELEMENTSOF(op_table), op);
        if (ret->op < 0)
                return bad_request(e, "unknown op");
        if (isempty(url) || strlen(url) != json_string_length(json_object_get(j, "url")) ||
            strpbrk(url, "\n\r\t"))
                return bad_request(e, "bad url");
        if (commit && (ret->op != NAP_FETCH_TREE || !nap_commit_is_valid(commit)))
                return bad_request(e, "bad commit");
        if (commit)
                memcpy(ret->commit, commit, sizeof ret->commit);
        ret->url = strdup(url);
        return ret->url ? 0 : nap_error_errno(e, -ENOMEM, "Failed to read the request");
}

int nap_fetch_reply_parse(const char *text, size_t len, char ret_commit[static NAP_COMMIT_HEX_LEN + 1],
                          NapError *e) {
        const char *commit = NULL, *kind = NULL, *message = NULL;
        json_auto_t *j = len <= NAP_FETCH_LINE_MAX ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (j && json_unpack(j, "{s:s !}", "commit", &commit) >= 0 && nap_commit_is_valid(commit)) {
                memcpy(ret_commit, commit, NAP_COMMIT_HEX_LEN + 1);
                return 0;
        }
        NapErrorKind k = _NAP_ERROR_KIND_INVALID;
        if (j && json_unpack(j, "{s:s, s:s !}", "error", &kind, "message", &message) >= 0)
                k = nap_error_kind_from_string(kind);
        if (k <= NAP_ERROR_NONE)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "nap-fetch gave an answer that is not one");
        /* Its words, cut to one line: they reach the user as the error. */
        return nap_error_set(e, k, -EIO, "%.*s", (int) strcspn(message, "\n\r"), message);
}

/* ---- the caller's side ------------------------------------------------ */

/* A connect on a full backlog is given up after this. */
#define WORKER_CONNECT_TIMEOUT_USEC (30ULL * 1000ULL * 1000ULL)

static int worker_connect(const char *path, NapError *e) {
        int fd = socket_connect_unix(path, WORKER_CONNECT_TIMEOUT_USEC);
        if (fd == -EINVAL || fd == -ENAMETOOLONG)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "nap-fetch's socket path %s is not one", path);
        if (fd < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, fd,
                                     "Cannot reach nap-fetch at %s (is nap-fetch.socket running?): %s", path,
                                     strerror(-fd));
        /* the fetch's own time is the reply's deadline, not this */
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval) {}, sizeof(struct timeval));
        return fd;
}

static int send_request(int fd, NapFetchOp op, const char *url, const char *commit, NapError *e) {
        json_auto_t *j = json_pack("{s:s, s:s, s:s*}", "op", op_table[op], "url", url, "commit", commit);
        _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        _cleanup_free_ char *line = text ? strdup_printf("%s\n", text) : NULL;
        if (!line)
                return nap_error_errno(e, -ENOMEM, "Failed to ask nap-fetch");
        size_t n = strlen(line);
        if (n > NAP_FETCH_LINE_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -E2BIG, "The URL is too long");
        if (send(fd, line, n, MSG_NOSIGNAL) != (ssize_t) n)
                return nap_error_errno(e, negative_errno(), "Failed to ask nap-fetch");
        return 0;
}

/* One reply line into buf (NUL-terminated), and the fd that came with it. */
static int receive_reply(int fd, char *buf, size_t size, int *ret_tree_fd, NapError *e) {
        int r = socket_receive_line(fd, buf, size, monotonic_usec() + NAP_FETCH_WORKER_TIMEOUT_USEC, ret_tree_fd);
        if (r == -EMSGSIZE)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "nap-fetch's answer is too long");
        if (r == -ETIMEDOUT)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, r, "nap-fetch did not answer in time");
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_FETCH_FAILED, r, "nap-fetch ended without an answer (see its journal)");
        return r;
}

/* One call; *ret_conn is the connection, kept open by the caller while
 * it copies the tree (the worker keeps the tree until we hang up). */
static int worker_call(const char *socket, NapFetchOp op, const char *url, const char *commit,
                       char ret_commit[static NAP_COMMIT_HEX_LEN + 1], int *ret_conn, int *ret_tree_fd, NapError *e) {
        char buf[NAP_FETCH_LINE_MAX + 1];
        *ret_tree_fd = -1;
        *ret_conn = worker_connect(socket, e);
        if (*ret_conn < 0)
                return *ret_conn;
        int r = send_request(*ret_conn, op, url, commit, e);
        if (r >= 0)
                r = receive_reply(*ret_conn, buf, sizeof buf, ret_tree_fd, e);
        if (r >= 0)
                r = nap_fetch_reply_parse(buf, (size_t) r, ret_commit, e);
        if (r >= 0 && commit && !streq(commit, ret_commit))
                r = nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "nap-fetch answered with another commit");
        if (r >= 0 && op == NAP_FETCH_TREE && *ret_tree_fd < 0)
                r = nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "nap-fetch sent no tree");
        if (r < 0)
                *ret_tree_fd = safe_close(*ret_tree_fd);
        return r;
}

int nap_fetch_worker_head(const char *socket, const char *url, char ret_commit[static NAP_COMMIT_HEX_LEN + 1],
                          NapError *e) {
        _cleanup_close_ int conn = -1, tree = -1;
        return worker_call(socket, NAP_FETCH_HEAD, url, NULL, ret_commit, &conn, &tree, e);
}

int nap_fetch_worker_tree(const char *socket, const char *url, const char *commit, const char *dir,
                          char ret_commit[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        _cleanup_close_ int conn = -1, tree = -1;
        int r = worker_call(socket, NAP_FETCH_TREE, url, commit, ret_commit, &conn, &tree, e);
        if (r < 0)
                return r;
        /* Copied while the worker waits (its private /tmp holds the tree
         * until we hang up); the copy is ours, root's in the system. */
        r = copy_tree_fd(tree, dir, NULL);
        if (r < 0) {
                (void) rm_rf(dir);
                return nap_error_errno(e, r, "Failed to copy the fetched tree to %s", dir);
        }
        return 0;
}
