/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Why a program of its own (nap-cluster-gate --forward, next to this one)
 * and not a thread: the relay parses what another host sends (TLS,
 * through OpenSSL) and waits on the network for as long as a follow lasts;
 * there a crash or a leak never reaches the daemon, and the daemon never
 * loads OpenSSL (milliseconds at every start, socket-activated). */

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "forward.h"
#include "link-list.h"
#include "ops/forward.h"
#include "worker.h"

#define FORWARDS_MAX 64U /* each is a process and a TCP connection */

typedef struct Forward Forward;

#define GATE_PROGRAM "nap-cluster-gate"

struct Forwards {
        sd_event *event;
        NapContext *context;
        char gate[PATH_MAX]; /* nap-cluster-gate, in this program's directory */
        LinkList list;
};

struct Forward {
        LinkEntry entry; /* first: see link-list.h; its link is the caller's */
        Forwards *owner;
        Varlink *remote; /* the relay process's end */
        pid_t pid;
};

static void forward_free(Forward *f) {
        /* its end of the pair closed, the relay ends its TLS connection */
        if (f->remote)
                (void) varlink_close(f->remote);
        varlink_unref(f->remote);
        link_list_remove(&f->owner->list, &f->entry);
        free(f);
}

static void forward_done(LinkEntry *entry) {
        forward_free((Forward *) entry);
}

/* Replies, as the other host's nap-managerd (or its gate) sent them; a
 * relay that ended without one is a node that went away. */
static int on_remote_reply(Varlink *remote, json_t *parameters, const char *error_id, VarlinkReplyFlags flags,
                           void *userdata) {
        Forward *f = userdata;
        int r;
        if (error_id && startswith(error_id, "io.systemd."))
                r = varlink_errorf(f->entry.link, NAP_MANAGER_INTERFACE ".NodeUnreachable", "{s:s}", "message",
                                   "The host running the instance stopped answering");
        else if (error_id)
                r = varlink_error(f->entry.link, error_id, parameters);
        else if (flags & VARLINK_REPLY_CONTINUES)
                r = varlink_notify(f->entry.link, parameters);
        else
                r = varlink_reply(f->entry.link, parameters);
        if (r == -ENOBUFS)
                log_warning("A client following a log on another host does not read its replies; dropping it");
        if (r == -ENOBUFS)
                (void) varlink_close(f->entry.link);
        if (r < 0 || !(flags & VARLINK_REPLY_CONTINUES))
                forward_free(f);
        return 0;
}

static int on_relay_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        return 0; /* reaped; its end of the pair told the link */
}

_Noreturn static void relay_child(Forwards *o, uid_t uid, const char *instance, int fd) {
        char forward[256], uid_arg[32];
        worker_child_setup(fd);
        if (fcntl(3, F_SETFD, 0) < 0) /* kept across the exec */
                _exit(127);
        snprintf(forward, sizeof forward, "--forward=%s", instance);
        snprintf(uid_arg, sizeof uid_arg, "--uid=%u", (unsigned) uid);
        execl(o->gate, GATE_PROGRAM, forward, uid_arg, (char *) NULL);
        _exit(127); /* the call's link sees the relay gone: NodeUnreachable */
}

static int relay_start(Forwards *o, Forward *f, uid_t uid, const char *instance, int fds[2]) {
        f->pid = fork();
        if (f->pid < 0)
                return -errno;
        if (f->pid == 0)
                relay_child(o, uid, instance, fds[1]);
        fds[1] = safe_close(fds[1]);
        int r = sd_event_add_child(o->event, NULL, f->pid, WEXITED, on_relay_exit, NULL);
        if (r < 0) {
                (void) kill(f->pid, SIGKILL);
                (void) waitpid(f->pid, NULL, 0);
        }
        return r;
}

static int remote_call(Forwards *o, Forward *f, const NapMethod *m, json_t *args, bool more, int fd) {
        char method[128];
        snprintf(method, sizeof method, NAP_MANAGER_INTERFACE ".%s", m->name);
        int r = varlink_connect_fd(&f->remote, fd);
        if (r < 0)
                return r;
        varlink_set_userdata(f->remote, f);
        r = varlink_bind_reply(f->remote, on_remote_reply);
        if (r >= 0 && more) /* a follow waits as long as the log is quiet */
                r = varlink_set_relative_timeout(f->remote, VARLINK_TIMEOUT_INFINITY);
        if (r >= 0)
                r = varlink_attach_event(f->remote, o->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = more ? varlink_observe(f->remote, method, args) : varlink_invoke(f->remote, method, args);
        return r;
}

bool forwards_wanted(Forwards *o, const NapMethod *m, json_t *args) {
        const NapConfig *c = o->context->config;
        const char *instance = nap_method_forwards(m) ? json_string_value(json_object_get(args, m->owner)) : NULL;
        return instance && nap_config_forwards(c) && !nap_forward_is_here(c, instance);
}

int forwards_start(Forwards *o, Varlink *link, const NapMethod *m, json_t *args, bool more, uid_t uid,
                   NapError *e) {
        const char *instance = json_string_value(json_object_get(args, m->owner));
        int fds[2] = { -EBADF, -EBADF };

        assert(o);
        if (o->list.n >= FORWARDS_MAX)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EBUSY,
                                     "Too many calls are being forwarded to other hosts; try again later");
        Forward *f = calloc(1, sizeof *f);
        if (!f)
                return nap_error_errno(e, -ENOMEM, "Failed to forward the call");
        f->owner = o;
        link_list_add(&o->list, &f->entry, link);
        int r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ? -errno : 0;
        if (r >= 0)
                r = relay_start(o, f, uid, instance, fds);
        if (r >= 0) {
                r = remote_call(o, f, m, args, more, fds[0]);
                fds[0] = r >= 0 || f->remote ? -EBADF : fds[0]; /* the link's now */
        }
        safe_close(fds[0]);
        safe_close(fds[1]);
        if (r < 0) {
                forward_free(f);
                return nap_error_errno(e, r, "Failed to forward %s of %s", m->name, instance);
        }
        log_debug("Forwarding %s of %s for uid %u (relay %d)", m->name, instance, (unsigned) uid, (int) f->pid);
        return 0;
}

void forwards_drop(Forwards *o, Varlink *link) {
        if (o)
                link_list_drop(&o->list, link, forward_done);
}

int forwards_new(sd_event *event, NapContext *context, Forwards **ret) {
        assert(ret);
        Forwards *o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        *o = (Forwards) { .event = event, .context = context };
        ssize_t n = readlink("/proc/self/exe", o->gate, sizeof o->gate - sizeof GATE_PROGRAM - 1);
        char *slash = n > 0 ? memrchr(o->gate, '/', (size_t) n) : NULL;
        if (slash)
                memcpy(slash + 1, GATE_PROGRAM, sizeof GATE_PROGRAM);
        else
                snprintf(o->gate, sizeof o->gate, "%s", GATE_PROGRAM);
        *ret = o;
        return 0;
}

Forwards *forwards_free(Forwards *o) {
        if (!o)
                return NULL;
        link_list_drop(&o->list, NULL, forward_done);
        free(o);
        return NULL;
}
