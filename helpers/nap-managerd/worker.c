/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "../common/log.h"
#include "protocol/varlink.h"
#include "worker.h"

/* What a worker may write back: the reply must fit the varlink output
 * queue anyway. */
#define WORKER_OUTPUT_MAX ((size_t) VARLINK_OUTPUT_MAX)
#define WORKER_READ_CHUNK (64U * 1024U)

typedef struct Worker Worker;

struct WorkerPool {
        sd_event *event;
        NapContext *context;
        WorkerPoolChanged changed;
        void *userdata;
        Worker *workers;                 /* running */
        Worker *queue_head, *queue_tail; /* waiting for a slot, oldest first */
        unsigned n_workers, n_queued;
        bool shut_down;
};

struct Worker {
        WorkerPool *pool;
        Worker *next, *prev; /* running list, or queue (next only) */
        const NapMethod *method;
        json_t *args;
        WorkerDone done;
        void *userdata;

        pid_t pid;
        int fd; /* read end of the pipe */
        sd_event_source *io_source, *child_source;
        char *buf;
        size_t size, allocated;
        bool eof, exited, failed;
};

static Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->io_source);
        sd_event_source_disable_unref(w->child_source);
        safe_close(w->fd);
        json_decref(w->args);
        free(w->buf);
        free(w);
        return NULL;
}

/* ---- the child -------------------------------------------------------- */

void worker_child_setup(int keep) {
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        /* keep is moved to 3 first, so one range covers everything else;
         * close-on-exec still, should anything below exec a helper. */
        if (keep != 3 && dup3(keep, 3, O_CLOEXEC) < 0)
                _exit(EXIT_FAILURE);
        if (close_range(4, ~0U, 0) < 0)
                for (int fd = 4; fd < 65536; fd++)
                        (void) close(fd);
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* In the forked process: no event loop, no logging, only the method. The
 * listening socket and the clients' connections are closed first, so a
 * long worker never keeps them open behind the daemon's back. */
_Noreturn static void worker_child(WorkerPool *p, Worker *w, int fd) {
        worker_child_setup(fd);
        /* The daemon's own connection to the service manager (ListInstances
         * from the loop) belongs to the parent: this one opens its own. */
        p->context->bus = NULL;

        json_t *envelope = nap_method_run(p->context, w->method, w->args);
        char *s = envelope ? json_dumps(envelope, JSON_COMPACT) : NULL;
        if (!s || write_all(3, s, strlen(s)) < 0)
                _exit(EXIT_FAILURE);
        _exit(EXIT_SUCCESS);
}

/* ---- the parent ------------------------------------------------------- */

static void worker_start_queued(WorkerPool *p);

static void worker_finish(Worker *w) {
        WorkerPool *p = w->pool;
        json_auto_t *envelope = NULL;

        if (!w->failed)
                envelope = json_loadb(w->buf, w->size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(envelope))
                log_error("Worker %d for %s failed: %s", (int) w->pid, w->method->name,
                          w->failed ? "it did not exit cleanly" : "its result is not a JSON object");
        if (w->prev)
                w->prev->next = w->next;
        else
                p->workers = w->next;
        if (w->next)
                w->next->prev = w->prev;
        p->n_workers--;
        w->done(json_is_object(envelope) ? envelope : NULL, w->userdata);
        worker_free(w);
        worker_start_queued(p);
        p->changed(p->userdata);
}

static void worker_maybe_finish(Worker *w) {
        if (w->eof && w->exited)
                worker_finish(w);
}

/* Reads what is there; 1 at EOF (or when giving up), 0 to wait for more. */
static int worker_read(Worker *w) {
        for (;;) {
                if (w->size >= WORKER_OUTPUT_MAX) {
                        w->failed = true; /* the child gets EPIPE and exits */
                        return 1;
                }
                if (w->allocated - w->size < WORKER_READ_CHUNK) {
                        size_t n = MIN(MAX(w->allocated * 2, (size_t) WORKER_READ_CHUNK), WORKER_OUTPUT_MAX + 1);
                        char *b = realloc(w->buf, n);
                        if (!b) {
                                w->failed = true;
                                return 1;
                        }
                        w->buf = b;
                        w->allocated = n;
                }
                ssize_t k = read(w->fd, w->buf + w->size, MIN(w->allocated - w->size, WORKER_OUTPUT_MAX + 1 - w->size));
                if (k > 0) {
                        w->size += (size_t) k;
                        continue;
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        return 0;
                if (k < 0)
                        w->failed = true;
                return 1;
        }
}

static int worker_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        if (worker_read(w) == 0)
                return 0;
        w->eof = true;
        w->io_source = sd_event_source_disable_unref(w->io_source);
        w->fd = safe_close(w->fd);
        worker_maybe_finish(w);
        return 0;
}

static int worker_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Worker *w = userdata;
        w->exited = true;
        if (si->si_code != CLD_EXITED || si->si_status != EXIT_SUCCESS)
                w->failed = true;
        w->child_source = sd_event_source_disable_unref(w->child_source);
        worker_maybe_finish(w);
        return 0;
}

static int worker_watch(WorkerPool *p, Worker *w) {
        int r = fcntl(w->fd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
        if (r >= 0)
                r = sd_event_add_io(p->event, &w->io_source, w->fd, EPOLLIN, worker_io, w);
        if (r >= 0)
                r = sd_event_add_child(p->event, &w->child_source, w->pid, WEXITED, worker_exit, w);
        return r;
}

static int worker_start(WorkerPool *p, Worker *w) {
        int fds[2], r;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        w->pid = fork();
        if (w->pid < 0) {
                r = -errno;
                safe_close(fds[0]);
                safe_close(fds[1]);
                return r;
        }
        if (w->pid == 0)
                worker_child(p, w, fds[1]);
        safe_close(fds[1]);
        w->fd = fds[0];
        r = worker_watch(p, w);
        if (r < 0) {
                /* Without a child source nobody would reap it. */
                (void) kill(w->pid, SIGKILL);
                (void) waitpid(w->pid, NULL, 0);
                return r;
        }
        w->next = p->workers;
        if (w->next)
                w->next->prev = w;
        p->workers = w;
        p->n_workers++;
        log_debug("Worker %d runs %s", (int) w->pid, w->method->name);
        return 0;
}

/* A worker that cannot be started answers at once, as a failure. */
static void worker_start_or_fail(WorkerPool *p, Worker *w) {
        int r = worker_start(p, w);
        if (r >= 0)
                return;
        log_error_errno(r, "Failed to start a worker for %s: %m", w->method->name);
        w->done(NULL, w->userdata);
        worker_free(w);
}

static void worker_start_queued(WorkerPool *p) {
        while (p->queue_head && p->n_workers < WORKERS_MAX) {
                Worker *w = p->queue_head;
                p->queue_head = w->next;
                if (!p->queue_head)
                        p->queue_tail = NULL;
                p->n_queued--;
                w->next = NULL;
                worker_start_or_fail(p, w);
        }
}

int worker_pool_submit(WorkerPool *p, const NapMethod *method, json_t *args, WorkerDone done, void *userdata) {
        assert(p);
        assert(method);
        assert(done);
        if (p->shut_down)
                return -ESHUTDOWN;
        Worker *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (Worker) { .pool = p, .method = method, .args = json_incref(args), .done = done,
                        .userdata = userdata, .fd = -1 };
        if (p->queue_tail)
                p->queue_tail->next = w;
        else
                p->queue_head = w;
        p->queue_tail = w;
        p->n_queued++;
        worker_start_queued(p);
        p->changed(p->userdata);
        return 0;
}

int worker_pool_new(sd_event *event, NapContext *context, WorkerPoolChanged changed, void *userdata,
                    WorkerPool **ret) {
        assert(event);
        assert(context);
        assert(changed);
        assert(ret);
        WorkerPool *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        *p = (WorkerPool) { .event = event, .context = context, .changed = changed, .userdata = userdata };
        *ret = p;
        return 0;
}

void worker_pool_shut_down(WorkerPool *p) {
        if (p)
                p->shut_down = true;
}

unsigned worker_pool_calls(const WorkerPool *p) {
        return p ? p->n_workers + p->n_queued : 0;
}

WorkerPool *worker_pool_free(WorkerPool *p) {
        if (!p)
                return NULL;
        while (p->queue_head) {
                Worker *w = p->queue_head;
                p->queue_head = w->next;
                w->done(NULL, w->userdata);
                worker_free(w);
        }
        while (p->workers) {
                Worker *w = p->workers;
                p->workers = w->next;
                w->done(NULL, w->userdata);
                worker_free(w);
        }
        free(p);
        return NULL;
}
