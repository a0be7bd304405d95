/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-receive: the post-receive hook of an app's bare repository
 * (nap-receive(8)). nap-git-shell creates git/USER/APP.git with a hook
 * that runs "nap-receive USER APP"; git feeds it "OLD NEW REF" lines on
 * stdin and sets GIT_DIR. A push to main or master deploys and rolls out
 * that branch (nap_deploy_commit()); everything printed reaches the pusher
 * as "remote: …" lines: progress and errors prefixed "nap: ", and the app's
 * endpoints as bare "http://HOST:PORT" lines. Exit status: 0 deployed (or
 * nothing to deploy), 1 the deploy failed (the previous version runs),
 * 2 bad invocation. The hook may run with more rights than whoever set its
 * environment (setuid-style): variables are read with secure_getenv(),
 * which ignores them then. */

#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "clients/fetch-commit.h"
#include "base/fileio.h"
#include "ops/ops.h"
#include "ops/publish.h"
#include "clients/push.h"
#include "base/strv.h"

#define TIMEOUT_MAX_SEC 3600

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* The branch HEAD names in git_dir ("refs/heads/main"), or "". */
static void head_branch(const char *git_dir, char ret[static 256]) {
        _cleanup_free_ char *path = path_join(git_dir, "HEAD", NULL), *text = NULL;
        const char *ref;
        ret[0] = 0;
        if (path && read_full_file(path, 4096, &text, NULL) >= 0 && (ref = startswith(text, "ref: ")))
                snprintf(ret, 256, "%.*s", (int) strcspn(ref, "\r\n"), ref);
}

static int read_push(const char *git_dir, NapPush *ret) {
        _cleanup_free_ char *text = NULL;
        char head[256];
        size_t size;
        int r = read_full_fd(STDIN_FILENO, NAP_PUSH_INPUT_MAX, &text, &size);
        if (r < 0)
                return r;
        head_branch(git_dir, head);
        r = nap_push_parse(text, size, head, ret, NULL);
        if (r < 0)
                return r;
        STRV_FOREACH(ref, ret->ignored)
                printf("nap: %s is not deployed (only main or master is)\n", *ref);
        return 0;
}

/* NAP_RECEIVE_TIMEOUT: seconds to wait for each instance to answer. */
static int parse_timeout(uint64_t *ret) {
        const char *s = secure_getenv("NAP_RECEIVE_TIMEOUT");
        char *end;
        if (isempty(s))
                return 0;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno != 0 || *end || *s == '-' || v < 1 || v > TIMEOUT_MAX_SEC) {
                fprintf(stderr, "nap: NAP_RECEIVE_TIMEOUT= takes seconds from 1 to %d, not '%s'\n", TIMEOUT_MAX_SEC, s);
                return -EINVAL;
        }
        *ret = v * 1000000ULL;
        return 0;
}

static void on_progress(void *userdata, const char *message) {
        printf("nap: %s\n", message);
}

static void warn_config(void *userdata, const char *message) {
        fprintf(stderr, "nap: warning: %s\n", message);
}

/* A hook started by sshd has no session environment: the user manager's
 * bus is where pam_systemd would have pointed. */
static void default_runtime_dir(const NapContext *c) {
        char dir[64];
        struct stat st;
        if (c->scope != NAP_SCOPE_USER || secure_getenv("XDG_RUNTIME_DIR"))
                return;
        snprintf(dir, sizeof dir, "/run/user/%u", (unsigned) getuid());
        if (stat(dir, &st) >= 0 && S_ISDIR(st.st_mode))
                setenv("XDG_RUNTIME_DIR", dir, 1);
}

static void print_instances(const NapRolloutResult *res, const char *service) {
        for (size_t i = 0; i < res->n_instances; i++) {
                const NapInstanceInfo *in = res->instances + i;
                if (in->active_state && streq(in->active_state, "active"))
                        printf("%s\n", in->url);
                else
                        printf("nap: %s is %s, not restarted (napctl start-app %s): %s\n", in->name,
                               in->active_state ?: "not running", in->name, in->url);
        }
        if (res->needs_parameters)
                printf("nap: the profile has parameters without a default; start an instance with: "
                       "napctl start-common %s NAME=VALUE,...\n", service);
}

static void print_result(const NapRolloutResult *res, const char *service, uint64_t started) {
        char b[13];
        snprintf(b, sizeof b, "%.12s", res->deploy.commit);
        if (!res->deploy.changed)
                printf("nap: %s is already at %s; nothing changed\n", service, b);
        else
                printf("nap: deployed %s at %s in %.1f s\n", service, b, (double) (now_usec() - started) / 1e6);
        if (res->deploy.publish == NAP_PUBLISH_PENDING)
                printf("nap: publishing the app's URL to etcd is pending (%s)\n", res->deploy.publish_error.message);
        print_instances(res, service);
}

static int deploy(const char *service, const char *git_dir, const NapPush *p, uint64_t timeout) {
        NapError e = NAP_ERROR_NULL;
        NapRolloutResult res = {};
        _cleanup_(nap_context_freep) NapContext *c = NULL;
        NapRolloutOptions o = { .answer_timeout_usec = timeout, .progress = on_progress };
        uint64_t started = now_usec();
        char b[13];

        snprintf(b, sizeof b, "%.12s", p->commit);
        printf("nap: deploying %s at %s (%s)\n", service, b, p->ref);
        int r = nap_context_new(&c, -1, warn_config, NULL, &e);
        if (r >= 0) {
                default_runtime_dir(c);
                /* The ref, not the commit: resolved under the app's lock, so of
                 * two pushes at once the last deploy is the branch's tip. */
                r = nap_deploy_commit(c, service, git_dir, p->ref, &o, &res, &e);
        }
        if (r < 0) {
                fprintf(stderr, "nap: deploying %s failed: %s\n", service,
                        nap_error_is_set(&e) ? e.message : strerror(-r));
                return 1;
        }
        print_result(&res, service, started);
        nap_rollout_result_done(&res);
        return 0;
}

int main(int argc, char *argv[]) {
        NapService s;
        NapError e = NAP_ERROR_NULL;
        char service[NAP_SERVICE_NAME_MAX], git_dir[PATH_MAX];
        uint64_t timeout = 0;
        _cleanup_(nap_push_done) NapPush p = {};

        /* git relays our output to the pusher as it comes. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc != 3) {
                fprintf(stderr, "nap: usage: nap-receive USER APP (git's post-receive hook)\n");
                return 2;
        }
        if (nap_service_from_parts(argv[1], argv[2], &s, &e) < 0) {
                fprintf(stderr, "nap: %s\n", e.message);
                return 2;
        }
        nap_service_name(&s, service);
        if (!realpath(secure_getenv("GIT_DIR") ?: ".", git_dir)) {
                fprintf(stderr, "nap: cannot find the repository (GIT_DIR): %m\n");
                return 2;
        }
        if (parse_timeout(&timeout) < 0)
                return 2;
        if (read_push(git_dir, &p) < 0) {
                fprintf(stderr, "nap: cannot read what was pushed (expected \"OLD NEW REF\" lines on stdin)\n");
                return 2;
        }
        if (!p.ref[0])
                return 0;
        if (secure_getenv("NAP_RECEIVE_REPLICA")) { /* nap-git-shell --replica: the pushing node deploys */
                printf("nap: %s replicated here; not deployed by this push\n", service);
                return 0;
        }
        if (p.deleted) {
                printf("nap: %s was deleted; %s stays deployed as it is\n", p.ref, service);
                return 0;
        }
        return deploy(service, git_dir, &p, timeout);
}
