/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-fetch: one fetch, for the program on the other end of standard input
 * (nap-fetch@.service, started per connection by nap-fetch.socket; the
 * socket is stdin and stdout). git (libgit2) parses the repository here,
 * unprivileged and sandboxed, not in nap-managerd. Reads one request line,
 * fetches into its private /tmp, answers one line — with the checked-out
 * tree's directory fd for a tree — then waits until the caller has copied
 * it and hangs up. The protocol: lib/clients/fetch-worker.h; nap-fetch(8). */

#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <jansson.h>

#include "../common/daemon.h"
#include "../common/log.h"
#include "base/fileio.h"
#include "base/socket-util.h"
#include "clients/fetch-commit.h"
#include "clients/fetch-worker.h"
#include "clients/fetch.h"
#include "nap-config.h"

/* stdin up to the first '\n' (not included), NUL-terminated. */
static int read_request_line(char *buf, size_t size) {
        size_t have = 0;
        while (have < size - 1) {
                ssize_t n = read(STDIN_FILENO, buf + have, 1); /* no further: the rest is the caller's */
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -ECONNRESET;
                if (buf[have] == '\n')
                        break;
                have++;
        }
        buf[have] = 0;
        return have < size - 1 ? (int) have : -E2BIG;
}

static int send_line(json_t *j, int fd_to_pass) {
        _cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        _cleanup_free_ char *line = text ? strdup_printf("%s\n", text) : NULL;
        return line ? socket_send_with_fd(STDOUT_FILENO, line, strlen(line), fd_to_pass) : -ENOMEM;
}

static int answer_error(const NapError *e) {
        json_auto_t *j = json_pack("{s:s, s:s}", "error", nap_error_kind_to_string(e->kind), "message", e->message);
        log_info("Refused: %s", e->message);
        return send_line(j, -1);
}

static int answer_commit(const char *commit, int tree_fd) {
        json_auto_t *j = json_pack("{s:s}", "commit", commit);
        return send_line(j, tree_fd);
}

/* Until the caller hangs up (it has copied the tree), at most as long as a
 * fetch may take. */
static void wait_for_hangup(void) {
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        char c;
        while (poll(&p, 1, (int) (NAP_FETCH_WORKER_TIMEOUT_USEC / 1000)) > 0 && read(STDIN_FILENO, &c, 1) > 0)
                ;
}

/* Into tmp (a mkdtemp() template, made here; the caller removes it). */
static int fetch_tree(const NapFetchRequest *q, char *tmp, char commit[static NAP_COMMIT_HEX_LEN + 1], int *ret_fd,
                      NapError *e) {
        if (!mkdtemp(tmp))
                return nap_error_errno(e, negative_errno(), "Failed to make a directory to fetch into");
        _cleanup_free_ char *tree = path_join(tmp, "tree", NULL);
        int r = tree ? 0 : nap_error_errno(e, -ENOMEM, "Failed to fetch");
        if (r >= 0 && q->commit[0]) {
                r = nap_fetch_commit(q->url, q->commit, tree, e);
                memcpy(commit, q->commit, NAP_COMMIT_HEX_LEN + 1);
        } else if (r >= 0)
                r = nap_fetch(q->url, tree, commit, e);
        if (r >= 0 && (*ret_fd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                r = nap_error_errno(e, negative_errno(), "Failed to open %s", tree);
        return r;
}

static int run(void) {
        char line[NAP_FETCH_LINE_MAX + 1], commit[NAP_COMMIT_HEX_LEN + 1] = "", tmp[] = "/tmp/nap-fetch-XXXXXX";
        NapFetchRequest q = {};
        NapError e = NAP_ERROR_NULL;
        _cleanup_close_ int tree = -1;
        int r = read_request_line(line, sizeof line);
        if (r < 0)
                return log_error_errno(r, "Failed to read the request: %m");
        r = nap_fetch_request_parse(line, (size_t) r, &q, &e);
        if (r >= 0) {
                log_info("Fetching %s%s%s", q.url, q.commit[0] ? " at " : "", q.commit);
                r = q.op == NAP_FETCH_HEAD ? nap_fetch_remote_head(q.url, commit, &e)
                                           : fetch_tree(&q, tmp, commit, &tree, &e);
        }
        nap_fetch_request_done(&q);
        r = r < 0 ? answer_error(&e) : answer_commit(commit, tree);
        if (r < 0)
                return log_error_errno(r, "Failed to answer: %m");
        wait_for_hangup();
        if (!endswith(tmp, "XXXXXX")) /* made: gone with PrivateTmp= anyway, but not run by hand */
                (void) rm_rf(tmp);
        return 0;
}

static void help(void) {
        printf("nap-fetch\n\n"
               "Fetch one git repository for the caller on standard input: started by\n"
               "systemd for each connection to nap-fetch.socket. See nap-fetch(8).\n\n"
               "  -h --help     Show this help\n"
               "     --version  Show the version\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        log_setup();
        for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (c) {
                case 'h':
                case 'V':
                        daemon_answer_help_or_version(c, "nap-fetch", help);
                        return 0;
                default:
                        return 2;
                }
        if (optind < argc) {
                log_error("No arguments are taken (see --help)");
                return 2;
        }
        return run() < 0 ? 1 : 0;
}
