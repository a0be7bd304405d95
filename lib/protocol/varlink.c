/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "base/clock.h"
#include "base/json-dump.h"
#include "base/json-parse.h"
#include "base/socket-util.h"
#include "protocol/varlink.h"

#define READ_CHUNK (64U * 1024U)
/* A refused connection is closed once its peer wrote (its call) or hung
 * up, or after this long; more than REFUSED_MAX at once, at once. */
#define REFUSED_LINGER_USEC (2ULL * 1000000ULL)
#define REFUSED_MAX 64U
/* Steps per wakeup of one connection before the others get their turn. */
#define PROCESS_BURST 8U

static const char service_interface[] =
        "# The varlink service interface, provided by every varlink service.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Vendor, product, version and URL of the service, and the interfaces\n"
        "# it implements.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# The description of one of the interfaces of the service.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# No such interface here.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# No such method in the interface.\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface has the method, the service does not implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# A parameter of the call is missing, unknown or of the wrong type.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# The caller may not do this.\n"
        "error PermissionDenied ()\n"
        "\n"
        "# The method must be called with \"more\": true.\n"
        "error ExpectedMore ()\n";

typedef enum VarlinkState {
        VARLINK_IDLE_CLIENT,
        VARLINK_AWAITING_REPLY,      /* varlink_invoke(): the reply goes to the callback */
        VARLINK_AWAITING_REPLY_MORE, /* varlink_observe() */
        VARLINK_CALLING,             /* varlink_call(): the reply is kept in current */
        VARLINK_COLLECTING,          /* varlink_collect(): replies go to collected */
        VARLINK_CALLED,              /* the kept reply is complete */
        VARLINK_IDLE_SERVER,
        VARLINK_PROCESSING, /* a call waits for its final reply */
        VARLINK_DISCONNECTED,
} VarlinkState;

/* Bytes [index, size) are live; [0, index) are consumed. */
typedef struct Buffer {
        char *data;
        size_t index;
        size_t size;
        size_t alloc;
} Buffer;

struct Varlink {
        unsigned n_ref;
        bool is_server;
        VarlinkServer *server; /* not a reference: NULL once the link left it */
        Varlink *next, *prev;  /* in server->connections */
        int fd;
        VarlinkState state;
        Buffer in, out;
        size_t in_scanned; /* live input bytes known to hold no NUL */
        size_t message_max;
        struct ucred ucred;
        bool ucred_valid;
        bool read_eof;   /* the peer sends nothing more */
        bool got_hup;    /* the peer is gone altogether */
        bool write_dead; /* nobody reads what we write */
        bool processing; /* inside varlink_process() */
        sd_event *event;
        sd_event_source *io_source, *defer_source, *time_source;
        json_t *current; /* server: the call in progress; client: the last reply */
        VarlinkMethodFlags current_flags;
        json_t *collected; /* varlink_collect(): the replies' parameters */
        VarlinkReply reply_callback;
        uint64_t timeout, deadline;
        void *userdata;
};

typedef struct Interface {
        VarlinkIdl *idl;
        json_t *description; /* the text as registered, ready for replies */
} Interface;

typedef struct Binding {
        char *method;
        VarlinkMethod callback;
        VarlinkBindFlags flags;
} Binding;

typedef struct Listener {
        int fd;
        sd_event_source *source;
} Listener;

/* A connection over a cap, told so, waiting to be closed. */
typedef struct Refused Refused;
struct Refused {
        VarlinkServer *server;
        Refused *next, *prev; /* in server->refused */
        int fd;
        sd_event_source *io_source, *time_source;
};

struct VarlinkServer {
        unsigned n_ref;
        VarlinkServerFlags flags;
        char *vendor, *product, *version, *url;
        Interface *interfaces;
        size_t n_interfaces;
        Binding *bindings;
        size_t n_bindings;
        Listener *listeners;
        size_t n_listeners;
        bool listeners_paused;
        Varlink *connections; /* each holds one reference */
        unsigned n_connections, connections_max, connections_per_uid_max;
        Refused *refused;
        unsigned n_refused;
        size_t message_max;
        sd_event *event;
        int64_t priority;
        VarlinkConnect connect_callback;
        VarlinkDisconnect disconnect_callback;
        VarlinkRefuse refuse_callback;
        char *refuse_error;
        void *userdata;
};

static int link_enqueue_reply(Varlink *v, const char *error_id, json_t *parameters, bool continues);

/* ---- small helpers ---- */


static uint64_t deadline_after(uint64_t usec) {
        uint64_t n = monotonic_usec();
        return usec == VARLINK_TIMEOUT_INFINITY || usec > UINT64_MAX - n ? UINT64_MAX : n + usec;
}

static json_t *json_unref(json_t *j) {
        json_decref(j);
        return NULL;
}

static int fd_nonblock_cloexec(int fd) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return negative_errno();
        fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
                return negative_errno();
        return 0;
}

/* A connected AF_UNIX stream socket, made non-blocking. */
static int socket_prepare(int fd) {
        int r = sd_is_socket(fd, AF_UNIX, SOCK_STREAM, -1);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOTSOCK;
        return fd_nonblock_cloexec(fd);
}

/* "/path", "@abstract", either with an optional "unix:" prefix. */
/* Waits for events on fd until deadline: 1 ready, 0 timeout. */
static int fd_wait(int fd, short events, uint64_t deadline, short *ret_revents) {
        struct pollfd p = { .fd = fd, .events = events };
        struct timespec ts, *tsp = NULL;

        if (deadline != UINT64_MAX) {
                uint64_t n = monotonic_usec(), left = deadline > n ? deadline - n : 0;
                ts = (struct timespec) { .tv_sec = left / USEC_PER_SEC, .tv_nsec = (left % USEC_PER_SEC) * 1000U };
                tsp = &ts;
        }
        int r = ppoll(&p, 1, tsp, NULL);
        if (r < 0)
                return errno == EINTR ? 0 : -errno;
        if (ret_revents)
                *ret_revents = p.revents;
        return r > 0;
}

/* ---- buffers ---- */

static size_t buffer_live(const Buffer *b) {
        return b->size - b->index;
}

static void buffer_free(Buffer *b) {
        free(b->data);
        *b = (Buffer) {};
}

static void buffer_consume(Buffer *b, size_t n) {
        b->index += n;
        if (b->index == b->size)
                b->index = b->size = 0;
}

/* Live bytes move to the front only once at least as many were consumed,
 * so moving never costs more than consuming did — many small messages in a
 * full buffer stay linear. */
static void buffer_compact(Buffer *b) {
        if (b->index > 0 && b->index >= buffer_live(b)) {
                memmove(b->data, b->data + b->index, buffer_live(b));
                b->size -= b->index;
                b->index = 0;
        }
}

/* Room for n more bytes. */
static int buffer_reserve(Buffer *b, size_t n) {
        if (b->alloc - b->size >= n)
                return 0;
        buffer_compact(b);
        if (b->alloc - b->size >= n)
                return 0;
        size_t a = MAX(MAX(b->size + n, b->alloc * 2), (size_t) 4096);
        char *d = realloc(b->data, a);
        if (!d)
                return -ENOMEM;
        b->data = d;
        b->alloc = a;
        return 0;
}

/* ---- links: lifetime ---- */

static int link_new(Varlink **ret, int fd) {
        Varlink *v = calloc(1, sizeof *v);
        socklen_t l = sizeof v->ucred;

        assert(ret);

        if (!v)
                return -ENOMEM;
        v->n_ref = 1;
        v->fd = fd;
        v->message_max = VARLINK_DEFAULT_MESSAGE_MAX;
        v->timeout = VARLINK_DEFAULT_TIMEOUT_USEC;
        v->deadline = UINT64_MAX;
        v->ucred_valid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &v->ucred, &l) >= 0 && l == sizeof v->ucred;
        *ret = v;
        return 0;
}

static void link_detach_event(Varlink *v) {
        v->io_source = sd_event_source_disable_unref(v->io_source);
        v->defer_source = sd_event_source_disable_unref(v->defer_source);
        v->time_source = sd_event_source_disable_unref(v->time_source);
        v->event = sd_event_unref(v->event);
}

static Varlink *link_free(Varlink *v) {
        link_detach_event(v);
        safe_close(v->fd);
        buffer_free(&v->in);
        buffer_free(&v->out);
        json_decref(v->current);
        json_decref(v->collected);
        free(v);
        return NULL;
}

DEFINE_REF_UNREF_FUNC(Varlink, varlink, link_free);

static void server_forget(VarlinkServer *s, Varlink *v);

static void link_disconnect(Varlink *v) {
        _cleanup_(varlink_unrefp) _unused_ Varlink *ref = varlink_ref(v);

        if (v->state == VARLINK_DISCONNECTED)
                return;
        v->state = VARLINK_DISCONNECTED;
        link_detach_event(v);
        v->fd = safe_close(v->fd);
        buffer_free(&v->in);
        buffer_free(&v->out);
        if (v->is_server)
                v->current = json_unref(v->current);
        if (v->server)
                server_forget(v->server, v);
}

static bool link_awaiting(const Varlink *v) {
        return v->state == VARLINK_AWAITING_REPLY || v->state == VARLINK_AWAITING_REPLY_MORE ||
                v->state == VARLINK_CALLING || v->state == VARLINK_COLLECTING;
}

static void link_callback(Varlink *v, json_t *parameters, const char *error_id, VarlinkReplyFlags flags) {
        json_auto_t *empty = NULL;

        if (!v->reply_callback)
                return;
        if (!parameters) {
                parameters = empty = json_object();
                if (!parameters)
                        return;
        }
        if (error_id)
                flags |= VARLINK_REPLY_ERROR;
        /* Like sd-varlink, the callback's result only matters to itself. */
        (void) v->reply_callback(v, parameters, error_id, flags, v->userdata);
}

/* A failure ends the link; an asynchronous call learns why first. */
static void link_fail(Varlink *v, int r) {
        _cleanup_(varlink_unrefp) _unused_ Varlink *ref = varlink_ref(v);

        if (v->state == VARLINK_AWAITING_REPLY || v->state == VARLINK_AWAITING_REPLY_MORE) {
                const char *id = r == -ETIMEDOUT ? VARLINK_ERROR_TIMEOUT :
                        r == -EBADMSG || r == -EPROTO || r == -E2BIG ? VARLINK_ERROR_PROTOCOL :
                                                                       VARLINK_ERROR_DISCONNECTED;
                v->state = VARLINK_IDLE_CLIENT;
                link_callback(v, NULL, id, 0);
        }
        link_disconnect(v);
}

/* ---- links: I/O ---- */

/* A server stops reading a peer that reads nothing; a client reads on
 * after its write failed: the server may have answered and hung up first
 * (a refusal, varlink_server_bind_refuse()). */
static bool link_wants_read(const Varlink *v) {
        return v->state != VARLINK_DISCONNECTED && !v->read_eof && !(v->write_dead && v->is_server) &&
                buffer_live(&v->in) <= v->message_max;
}

static bool link_has_message(Varlink *v) {
        size_t live = buffer_live(&v->in);

        if (live <= v->in_scanned)
                return false;
        if (memchr(v->in.data + v->in.index + v->in_scanned, 0, live - v->in_scanned))
                return true;
        v->in_scanned = live;
        return false;
}

static int link_read(Varlink *v) {
        size_t n;
        ssize_t k;
        int r;

        if (!link_wants_read(v))
                return 0;
        n = MIN((size_t) READ_CHUNK, v->message_max + 1 - buffer_live(&v->in));
        r = buffer_reserve(&v->in, n);
        if (r < 0)
                return r;
        k = recv(v->fd, v->in.data + v->in.size, n, MSG_DONTWAIT);
        if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                if (errno != ECONNRESET)
                        return -errno;
                v->got_hup = true;
                k = 0;
        }
        if (k == 0)
                v->read_eof = true;
        v->in.size += k;
        return 1;
}

static int link_write(Varlink *v) {
        size_t live = buffer_live(&v->out);
        ssize_t k;

        if (live == 0 || v->write_dead)
                return 0;
        k = send(v->fd, v->out.data + v->out.index, live, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                if (errno != EPIPE && errno != ECONNRESET)
                        return -errno;
                v->write_dead = true;
                buffer_free(&v->out);
                return 1;
        }
        buffer_consume(&v->out, k);
        return 1;
}

/* 1 and the next message if a complete one is buffered, 0 if not yet.
 * Anything but a JSON object is -EBADMSG, a message over the cap -E2BIG
 * (-ENOMEM if memory runs out): varlink has no error reply for these, the
 * caller drops the link. */
static int link_next_message(Varlink *v, json_t **ret) {
        size_t live = buffer_live(&v->in), len;
        const char *start, *nul;
        json_t *m = NULL;
        int r;

        assert(ret);

        if (!link_has_message(v))
                return live > v->message_max ? -E2BIG : 0;
        start = v->in.data + v->in.index;
        nul = memchr(start + v->in_scanned, 0, live - v->in_scanned);
        len = nul - start;
        if (len > v->message_max)
                return -E2BIG;
        /* What json_loadb(start, len, JSON_REJECT_DUPLICATES) accepts,
         * at a fraction of its cost (json-parse.h). */
        r = nap_json_parse(start, len, &m);
        buffer_consume(&v->in, len + 1);
        v->in_scanned = 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !json_is_object(m)) {
                json_decref(m);
                return -EBADMSG;
        }
        *ret = m;
        return 1;
}

/* Serializes m straight into the output buffer (json-dump.h: the bytes of
 * json_dumps(m, JSON_COMPACT), without its copies). The buffer is compacted
 * first, as buffer_reserve() would before growing, so that a slow reader
 * cannot make it grow without bound; the cap counts the message and its
 * NUL, which json-dump leaves after the text and which terminates the
 * message on the wire. */
static int link_enqueue(Varlink *v, json_t *m) {
        int r;

        buffer_compact(&v->out);
        r = nap_json_dump_append(m, &v->out.data, &v->out.size, &v->out.alloc,
                                 v->out.index + VARLINK_OUTPUT_MAX - 1);
        if (r < 0)
                return r;
        v->out.size++;
        return 0;
}

static int json_get_flag(json_t *m, const char *key, bool *ret) {
        json_t *j = json_object_get(m, key);

        if (!j || json_is_null(j)) {
                *ret = false;
                return 0;
        }
        if (!json_is_boolean(j))
                return -EBADMSG;
        *ret = json_is_true(j);
        return 0;
}

/* "parameters" absent or null becomes {}, anything else but an object is
 * a broken message. Returns the object, owned by m. */
static int json_get_parameters(json_t *m, json_t **ret) {
        json_t *p = json_object_get(m, "parameters");

        if (!p || json_is_null(p)) {
                p = json_object();
                if (json_object_set_new(m, "parameters", p) < 0)
                        return -ENOMEM;
        } else if (!json_is_object(p))
                return -EBADMSG;
        *ret = p;
        return 0;
}

/* ---- links: event loop ---- */

static void link_rearm(Varlink *v, bool more) {
        uint32_t events;
        bool timed;

        if (!v->io_source)
                return;
        events = (link_wants_read(v) ? EPOLLIN : 0) | (buffer_live(&v->out) > 0 ? EPOLLOUT : 0);
        (void) sd_event_source_set_io_events(v->io_source, events);
        if (more)
                (void) sd_event_source_set_enabled(v->defer_source, SD_EVENT_ONESHOT);
        if (!v->time_source)
                return;
        timed = link_awaiting(v) && v->deadline != UINT64_MAX;
        if (timed)
                (void) sd_event_source_set_time(v->time_source, v->deadline);
        (void) sd_event_source_set_enabled(v->time_source, timed ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

/* Work appeared outside varlink_process() (a deferred reply, a new call):
 * let the event loop pick it up. Inside, the processing loop does. */
static void link_schedule(Varlink *v) {
        if (!v->processing)
                link_rearm(v, true);
}

/* Errors end this connection only (varlink_process() disconnects it); the
 * callbacks never fail, so the loop keeps serving everybody else. */
static void link_run_event(Varlink *v) {
        _cleanup_(varlink_unrefp) _unused_ Varlink *ref = varlink_ref(v);
        int r = 0;

        for (unsigned i = 0; i < PROCESS_BURST; i++) {
                r = varlink_process(v);
                if (r <= 0)
                        break;
        }
        link_rearm(v, r > 0);
}

static int link_io_callback(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Varlink *v = userdata;

        if (revents & (EPOLLHUP | EPOLLERR))
                v->got_hup = true;
        link_run_event(v);
        return 0;
}

static int link_defer_callback(sd_event_source *s, void *userdata) {
        link_run_event(userdata);
        return 0;
}

static int link_time_callback(sd_event_source *s, uint64_t usec, void *userdata) {
        link_run_event(userdata);
        return 0;
}

static int link_attach_event(Varlink *v, sd_event *e, int64_t priority) {
        int r;

        r = sd_event_add_io(e, &v->io_source, v->fd, EPOLLIN, link_io_callback, v);
        if (r >= 0)
                r = sd_event_source_set_priority(v->io_source, priority);
        if (r >= 0)
                r = sd_event_add_defer(e, &v->defer_source, link_defer_callback, v);
        if (r >= 0)
                r = sd_event_source_set_priority(v->defer_source, priority);
        if (r >= 0 && !v->is_server)
                r = sd_event_add_time(e, &v->time_source, CLOCK_MONOTONIC, 0, 0, link_time_callback, v);
        if (r >= 0 && v->time_source)
                r = sd_event_source_set_priority(v->time_source, priority);
        if (r < 0) {
                link_detach_event(v);
                return r;
        }
        v->event = sd_event_ref(e);
        link_rearm(v, true); /* also turns the time source off unless needed */
        return 0;
}

int varlink_attach_event(Varlink *v, sd_event *e, int64_t priority) {
        _cleanup_(sd_event_unrefp) sd_event *def = NULL;
        int r;

        if (!v || v->is_server || v->state == VARLINK_DISCONNECTED)
                return -EINVAL;
        if (v->event)
                return -EBUSY;
        if (!e) {
                r = sd_event_default(&def);
                if (r < 0)
                        return r;
                e = def;
        }
        return link_attach_event(v, e, priority);
}

int varlink_detach_event(Varlink *v) {
        if (!v || v->is_server)
                return -EINVAL;
        link_detach_event(v);
        return 0;
}

/* ---- links: processing ---- */

static int server_dispatch(Varlink *v);
static int client_dispatch(Varlink *v);

static int link_dispatch(Varlink *v) {
        return v->is_server ? server_dispatch(v) : client_dispatch(v);
}

static int link_test_timeout(Varlink *v) {
        if (!link_awaiting(v) || v->deadline == UINT64_MAX || monotonic_usec() < v->deadline)
                return 0;
        return -ETIMEDOUT;
}

/* Whether the peer is gone for good, given what it can still send and
 * read. A server link whose peer hung up during a call is closed at once
 * (nobody can read the reply), which tells deferred handlers to stop. A
 * client whose call could not be written waits for what the server said
 * before it hung up. */
static int link_test_disconnect(Varlink *v) {
        bool flushed = buffer_live(&v->out) == 0, gone;

        if (v->write_dead && v->is_server)
                gone = true;
        else if (v->state == VARLINK_IDLE_SERVER)
                gone = v->read_eof && flushed && !link_has_message(v);
        else if (v->state == VARLINK_PROCESSING)
                gone = v->got_hup && flushed;
        else if (v->state == VARLINK_IDLE_CLIENT)
                gone = (v->got_hup || v->read_eof || v->write_dead) && flushed;
        else if (link_awaiting(v) && v->read_eof && !link_has_message(v))
                return -ECONNRESET; /* a reply that cannot come */
        else
                gone = false;
        if (!gone)
                return 0;
        link_disconnect(v);
        return 1;
}

static int link_step(Varlink *v) {
        static int (*const steps[])(Varlink *) = {
                link_write, link_dispatch, link_read, link_test_timeout, link_test_disconnect,
        };
        int progress = 0;

        for (size_t i = 0; i < ELEMENTSOF(steps) && v->state != VARLINK_DISCONNECTED; i++) {
                int r = steps[i](v);
                if (r < 0)
                        return r;
                progress |= r > 0;
        }
        return progress;
}

int varlink_process(Varlink *v) {
        _cleanup_(varlink_unrefp) Varlink *ref = NULL;
        int r;

        if (!v)
                return -EINVAL;
        if (v->state == VARLINK_DISCONNECTED)
                return -ENOTCONN;
        if (v->processing)
                return -EBUSY; /* from a callback of this very link */
        ref = varlink_ref(v);
        v->processing = true;
        r = link_step(v);
        v->processing = false;
        if (r < 0)
                link_fail(v, r);
        return r;
}

int varlink_wait(Varlink *v, uint64_t usec) {
        short events, revents = 0;
        uint64_t deadline;
        int r;

        if (!v)
                return -EINVAL;
        if (v->state == VARLINK_DISCONNECTED)
                return -ENOTCONN;
        events = (link_wants_read(v) ? POLLIN : 0) | (buffer_live(&v->out) > 0 ? POLLOUT : 0);
        if (events == 0 || (!v->is_server && link_has_message(v)))
                return 1; /* varlink_process() has something to decide */
        deadline = deadline_after(usec);
        if (link_awaiting(v))
                deadline = MIN(deadline, v->deadline);
        r = fd_wait(v->fd, events, deadline, &revents);
        if (revents & (POLLHUP | POLLERR))
                v->got_hup = true;
        return r;
}

int varlink_flush(Varlink *v) {
        uint64_t deadline;
        int r, ret = 0;

        if (!v)
                return -EINVAL;
        if (v->state == VARLINK_DISCONNECTED)
                return -ENOTCONN;
        deadline = deadline_after(v->timeout);
        while (buffer_live(&v->out) > 0) {
                r = link_write(v);
                if (r < 0)
                        return r;
                if (r > 0) {
                        ret = 1;
                        continue;
                }
                r = fd_wait(v->fd, POLLOUT, deadline, NULL);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -ETIMEDOUT;
        }
        return v->write_dead ? -ECONNRESET : ret;
}

/* ---- links: accessors ---- */

int varlink_close(Varlink *v) {
        if (!v)
                return -EINVAL;
        link_disconnect(v);
        return 0;
}

void *varlink_set_userdata(Varlink *v, void *userdata) {
        void *old;

        if (!v)
                return NULL;
        old = v->userdata;
        v->userdata = userdata;
        return old;
}

void *varlink_get_userdata(Varlink *v) {
        return v ? v->userdata : NULL;
}

VarlinkServer *varlink_get_server(Varlink *v) {
        return v ? v->server : NULL;
}

bool varlink_is_connected(Varlink *v) {
        return v && v->state != VARLINK_DISCONNECTED;
}

bool varlink_is_idle(Varlink *v) {
        return !v || v->state == VARLINK_IDLE_CLIENT || v->state == VARLINK_IDLE_SERVER ||
                v->state == VARLINK_DISCONNECTED;
}

int varlink_get_peer_uid(Varlink *v, uid_t *ret) {
        if (!v || !ret)
                return -EINVAL;
        if (!v->ucred_valid)
                return -ENODATA;
        *ret = v->ucred.uid;
        return 0;
}

int varlink_get_peer_gid(Varlink *v, gid_t *ret) {
        if (!v || !ret)
                return -EINVAL;
        if (!v->ucred_valid)
                return -ENODATA;
        *ret = v->ucred.gid;
        return 0;
}

int varlink_get_peer_pid(Varlink *v, pid_t *ret) {
        if (!v || !ret)
                return -EINVAL;
        if (!v->ucred_valid || v->ucred.pid <= 0)
                return -ENODATA;
        *ret = v->ucred.pid;
        return 0;
}

int varlink_set_message_max(Varlink *v, size_t m) {
        if (!v || m == 0 || m > SIZE_MAX / 4)
                return -EINVAL;
        v->message_max = m;
        return 0;
}

int varlink_set_relative_timeout(Varlink *v, uint64_t usec) {
        if (!v)
                return -EINVAL;
        v->timeout = usec == 0 ? VARLINK_DEFAULT_TIMEOUT_USEC : usec;
        return 0;
}

int varlink_bind_reply(Varlink *v, VarlinkReply callback) {
        if (!v || v->is_server)
                return -EINVAL;
        v->reply_callback = callback;
        return 0;
}

/* ---- server side of a link: calls and replies ---- */

static void link_finish_call(Varlink *v) {
        v->current = json_unref(v->current);
        v->current_flags = 0;
        v->state = VARLINK_IDLE_SERVER;
        link_schedule(v);
}

static int link_enqueue_reply(Varlink *v, const char *error_id, json_t *parameters, bool continues) {
        json_auto_t *m = json_object();

        if (!m)
                return -ENOMEM;
        if (error_id && json_object_set_new(m, "error", json_string(error_id)) < 0)
                return -ENOMEM;
        if (json_object_set_new(m, "parameters", parameters ? json_incref(parameters) : json_object()) < 0)
                return -ENOMEM;
        if (continues && json_object_set_new(m, "continues", json_true()) < 0)
                return -ENOMEM;
        return link_enqueue(v, m);
}

static int link_check_reply(Varlink *v, json_t *parameters) {
        if (!v || !v->is_server || (parameters && !json_is_object(parameters)))
                return -EINVAL;
        if (v->state == VARLINK_DISCONNECTED)
                return -ENOTCONN;
        return v->state == VARLINK_PROCESSING ? 0 : -EBUSY;
}

/* A oneway call takes no reply: it is swallowed and the call ends. */
static int link_send_reply(Varlink *v, const char *error_id, json_t *parameters, bool continues) {
        int r = link_check_reply(v, parameters);

        if (r < 0)
                return r;
        if (!(v->current_flags & VARLINK_METHOD_ONEWAY)) {
                r = link_enqueue_reply(v, error_id, parameters, continues);
                if (r < 0)
                        return r;
        }
        if (continues)
                link_schedule(v);
        else
                link_finish_call(v);
        return 0;
}

int varlink_reply(Varlink *v, json_t *parameters) {
        return link_send_reply(v, NULL, parameters, false);
}

int varlink_error(Varlink *v, const char *error_id, json_t *parameters) {
        if (!varlink_qualified_name_is_valid(error_id))
                return -EINVAL;
        return link_send_reply(v, error_id, parameters, false);
}

int varlink_notify(Varlink *v, json_t *parameters) {
        int r = link_check_reply(v, parameters);

        if (r < 0)
                return r;
        if (!(v->current_flags & VARLINK_METHOD_MORE))
                return varlink_error(v, VARLINK_ERROR_EXPECTED_MORE, NULL);
        return link_send_reply(v, NULL, parameters, true);
}

int varlink_replyf(Varlink *v, const char *fmt, ...) {
        json_auto_t *p = NULL;
        va_list ap;

        va_start(ap, fmt);
        p = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
        return p ? varlink_reply(v, p) : -EINVAL;
}

int varlink_errorf(Varlink *v, const char *error_id, const char *fmt, ...) {
        json_auto_t *p = NULL;
        va_list ap;

        va_start(ap, fmt);
        p = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
        return p ? varlink_error(v, error_id, p) : -EINVAL;
}

int varlink_notifyf(Varlink *v, const char *fmt, ...) {
        json_auto_t *p = NULL;
        va_list ap;

        va_start(ap, fmt);
        p = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
        return p ? varlink_notify(v, p) : -EINVAL;
}

static int link_error_string(Varlink *v, const char *error_id, const char *key, const char *value, size_t n) {
        json_auto_t *p = json_pack("{s:s%}", key, value, n);
        return p ? varlink_error(v, error_id, p) : -ENOMEM;
}

int varlink_error_invalid_parameter_name(Varlink *v, const char *name) {
        if (!name)
                return -EINVAL;
        return link_error_string(v, VARLINK_ERROR_INVALID_PARAMETER, "parameter", name, strlen(name));
}

int varlink_error_errno(Varlink *v, int error) {
        int e = error < 0 ? -error : error;
        const char *name = strerrorname_np(e);
        json_auto_t *p = NULL;

        if (e == 0)
                return -EINVAL;
        p = name ? json_pack("{s:i, s:s}", "errno", e, "errnoName", name) : json_pack("{s:i}", "errno", e);
        return p ? varlink_error(v, VARLINK_ERROR_SYSTEM, p) : -ENOMEM;
}

/* ---- server side of a link: dispatch ---- */

static const Binding *server_find_binding(VarlinkServer *s, const char *method) {
        for (size_t i = 0; i < s->n_bindings; i++)
                if (streq(s->bindings[i].method, method))
                        return s->bindings + i;
        return NULL;
}

static const Interface *server_find_interface_n(VarlinkServer *s, const char *name, size_t n) {
        for (size_t i = 0; i < s->n_interfaces; i++) {
                const char *iname = varlink_idl_get_name(s->interfaces[i].idl);
                if (strlen(iname) == n && memcmp(iname, name, n) == 0)
                        return s->interfaces + i;
        }
        return NULL;
}

/* Checks in the order of the spec's errors; 1 if the handler may run. */
static int server_check_call(Varlink *v, const char *method, json_t *parameters, VarlinkMethodFlags flags,
                             bool upgrade, const Binding **ret) {
        assert(v);
        assert(v->server);
        assert(method);
        assert(ret);

        const char *dot = strrchr(method, '.'), *bad = NULL;
        const Interface *i = dot ? server_find_interface_n(v->server, method, dot - method) : NULL;
        const Binding *b = server_find_binding(v->server, method);
        int r;

        if (!dot)
                return link_error_string(v, VARLINK_ERROR_METHOD_NOT_FOUND, "method", method, strlen(method));
        if (!i && !b)
                return link_error_string(v, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", method, dot - method);
        if (i && !varlink_idl_has_method(i->idl, dot + 1))
                return link_error_string(v, VARLINK_ERROR_METHOD_NOT_FOUND, "method", method, strlen(method));
        if (!b)
                return link_error_string(v, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, "method", method, strlen(method));
        if ((b->flags & VARLINK_BIND_REQUIRES_MORE) && !(flags & VARLINK_METHOD_MORE))
                return varlink_error(v, VARLINK_ERROR_EXPECTED_MORE, NULL);
        /* No nap method upgrades the connection and the spec has no error
         * for refusing to: name the flag as the invalid parameter. */
        if (upgrade)
                return varlink_error_invalid_parameter_name(v, "upgrade");
        r = i ? varlink_idl_validate_method_input(i->idl, dot + 1, parameters, &bad) : 0;
        if (r == -EINVAL)
                return varlink_error_invalid_parameter_name(v, bad ?: "parameters");
        if (r < 0)
                return r;
        *ret = b;
        return 1;
}

static int call_parse(json_t *m, const char **ret_method, json_t **ret_parameters, VarlinkMethodFlags *ret_flags,
                      bool *ret_upgrade) {
        const char *method = json_string_value(json_object_get(m, "method"));
        bool oneway, more;
        int r;

        assert(m);
        assert(ret_method);
        assert(ret_parameters);
        assert(ret_flags);
        assert(ret_upgrade);

        if (!method)
                return -EBADMSG;
        r = json_get_parameters(m, ret_parameters);
        if (r >= 0)
                r = json_get_flag(m, "oneway", &oneway);
        if (r >= 0)
                r = json_get_flag(m, "more", &more);
        if (r >= 0)
                r = json_get_flag(m, "upgrade", ret_upgrade);
        if (r < 0)
                return r;
        if (oneway && more)
                return -EBADMSG;
        *ret_method = method;
        *ret_flags = (oneway ? VARLINK_METHOD_ONEWAY : 0) | (more ? VARLINK_METHOD_MORE : 0);
        return 0;
}

/* Takes m. A broken call (< 0 from call_parse) drops the link; a handler's
 * negative return becomes VARLINK_ERROR_SYSTEM unless it replied. */
static int server_handle_call(Varlink *v, json_t *m) {
        const Binding *b = NULL;
        VarlinkMethodFlags flags;
        json_t *parameters;
        const char *method;
        bool upgrade;
        int r;

        v->current = m;
        r = call_parse(m, &method, &parameters, &flags, &upgrade);
        if (r < 0)
                return r;
        v->current_flags = flags;
        v->state = VARLINK_PROCESSING;
        r = server_check_call(v, method, parameters, flags, upgrade, &b);
        if (r > 0)
                r = b->callback(v, parameters, flags, v->userdata);
        if (r < 0 && v->state == VARLINK_PROCESSING)
                r = varlink_error_errno(v, r);
        if (v->state == VARLINK_PROCESSING && (flags & VARLINK_METHOD_ONEWAY))
                link_finish_call(v);
        return r < 0 ? r : 1;
}

const char *varlink_get_current_method(Varlink *v) {
        if (!v || !v->server || !v->current)
                return NULL;
        return json_string_value(json_object_get(v->current, "method"));
}

static int server_dispatch(Varlink *v) {
        json_t *m = NULL;
        int r;

        if (v->state != VARLINK_IDLE_SERVER || !v->server)
                return 0;
        r = link_next_message(v, &m);
        if (r <= 0)
                return r;
        return server_handle_call(v, m);
}

/* ---- client side ---- */

static int reply_parse(json_t *m, json_t **ret_parameters, const char **ret_error_id, bool *ret_continues) {
        json_t *e = json_object_get(m, "error");
        const char *error_id = NULL;
        int r;

        assert(m);
        assert(ret_parameters);
        assert(ret_error_id);
        assert(ret_continues);

        r = json_get_parameters(m, ret_parameters);
        if (r < 0)
                return r;
        if (e && !json_is_null(e)) {
                error_id = json_string_value(e);
                if (!varlink_qualified_name_is_valid(error_id))
                        return -EBADMSG;
        }
        *ret_error_id = error_id;
        return json_get_flag(m, "continues", ret_continues);
}

/* Takes m. */
static int client_handle_reply(Varlink *v, json_t *m, json_t *parameters, const char *error_id, bool continues) {
        json_auto_t *reply = m;

        switch (v->state) {
        case VARLINK_CALLING:
                break;
        case VARLINK_COLLECTING:
                if (!error_id && json_array_append(v->collected, parameters) < 0)
                        return -ENOMEM;
                if (continues)
                        return 1;
                break;
        default: /* VARLINK_AWAITING_REPLY(_MORE) */
                if (!continues) {
                        v->state = VARLINK_IDLE_CLIENT;
                        v->deadline = UINT64_MAX;
                }
                link_callback(v, parameters, error_id, continues ? VARLINK_REPLY_CONTINUES : 0);
                return 1;
        }
        json_decref(v->current);
        v->current = TAKE_PTR(reply);
        v->state = VARLINK_CALLED;
        return 1;
}

static int client_dispatch(Varlink *v) {
        bool more = v->state == VARLINK_AWAITING_REPLY_MORE || v->state == VARLINK_COLLECTING, continues;
        json_auto_t *m = NULL;
        const char *error_id;
        json_t *parameters;
        int r;

        if (!link_awaiting(v) && v->state != VARLINK_IDLE_CLIENT)
                return 0;
        r = link_next_message(v, &m);
        if (r <= 0)
                return r;
        if (v->state == VARLINK_IDLE_CLIENT)
                return -EPROTO; /* a reply nobody asked for */
        r = reply_parse(m, &parameters, &error_id, &continues);
        if (r < 0)
                return r;
        if (continues && (error_id || !more))
                return -EPROTO;
        v->deadline = deadline_after(v->timeout); /* each reply restarts the clock */
        return client_handle_reply(v, TAKE_PTR(m), parameters, error_id, continues);
}

static int client_enqueue_call(Varlink *v, const char *method, json_t *parameters, VarlinkMethodFlags flags) {
        json_auto_t *m = NULL;
        int r;

        if (!v || v->is_server || !varlink_qualified_name_is_valid(method) ||
            (parameters && !json_is_object(parameters)))
                return -EINVAL;
        if (v->state == VARLINK_DISCONNECTED)
                return -ENOTCONN;
        if (v->state != VARLINK_IDLE_CLIENT)
                return -EBUSY;
        m = json_object();
        if (!m || json_object_set_new(m, "method", json_string(method)) < 0 ||
            json_object_set_new(m, "parameters", parameters ? json_incref(parameters) : json_object()) < 0 ||
            ((flags & VARLINK_METHOD_ONEWAY) && json_object_set_new(m, "oneway", json_true()) < 0) ||
            ((flags & VARLINK_METHOD_MORE) && json_object_set_new(m, "more", json_true()) < 0))
                return -ENOMEM;
        r = link_enqueue(v, m);
        if (r < 0)
                return r;
        link_schedule(v);
        return 0;
}

/* The previous call's results, borrowed by the caller so far, go now. */
static void client_begin(Varlink *v, VarlinkState state) {
        v->current = json_unref(v->current);
        v->state = state;
        v->deadline = deadline_after(v->timeout);
        link_schedule(v);
}

static int client_run(Varlink *v) {
        for (;;) {
                int r = varlink_process(v);
                if (r < 0)
                        return r;
                if (v->state == VARLINK_CALLED)
                        return 0;
                if (v->state == VARLINK_DISCONNECTED)
                        return -ECONNRESET;
                if (r > 0)
                        continue;
                r = varlink_wait(v, VARLINK_TIMEOUT_INFINITY);
                if (r < 0)
                        return r;
        }
}

static int client_result(Varlink *v, json_t *result, json_t **ret_result, const char **ret_error_id) {
        json_t *parameters = json_object_get(v->current, "parameters");
        const char *error_id = json_string_value(json_object_get(v->current, "error"));

        v->state = VARLINK_IDLE_CLIENT;
        v->deadline = UINT64_MAX;
        if (error_id && !ret_error_id)
                return varlink_error_to_errno(error_id, parameters);
        if (ret_error_id)
                *ret_error_id = error_id;
        if (ret_result)
                *ret_result = result;
        return 0;
}

int varlink_call(Varlink *v, const char *method, json_t *parameters, json_t **ret_parameters, const char **ret_error_id) {
        int r = client_enqueue_call(v, method, parameters, 0);

        if (r < 0)
                return r;
        client_begin(v, VARLINK_CALLING);
        r = client_run(v);
        if (r < 0)
                return r;
        return client_result(v, json_object_get(v->current, "parameters"), ret_parameters, ret_error_id);
}

int varlink_collect(Varlink *v, const char *method, json_t *parameters, json_t **ret_array, const char **ret_error_id) {
        json_t *a = json_array();
        int r;

        if (!a)
                return -ENOMEM;
        r = client_enqueue_call(v, method, parameters, VARLINK_METHOD_MORE);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        client_begin(v, VARLINK_COLLECTING);
        json_decref(v->collected);
        v->collected = a;
        r = client_run(v);
        if (r < 0)
                return r;
        return client_result(v, v->collected, ret_array, ret_error_id);
}

int varlink_send(Varlink *v, const char *method, json_t *parameters) {
        return client_enqueue_call(v, method, parameters, VARLINK_METHOD_ONEWAY);
}

int varlink_invoke(Varlink *v, const char *method, json_t *parameters) {
        int r = client_enqueue_call(v, method, parameters, 0);
        if (r >= 0)
                client_begin(v, VARLINK_AWAITING_REPLY);
        return r;
}

int varlink_observe(Varlink *v, const char *method, json_t *parameters) {
        int r = client_enqueue_call(v, method, parameters, VARLINK_METHOD_MORE);
        if (r >= 0)
                client_begin(v, VARLINK_AWAITING_REPLY_MORE);
        return r;
}

int varlink_connect_fd(Varlink **ret, int fd) {
        Varlink *v;
        int r;

        if (!ret || fd < 0)
                return -EINVAL;
        r = socket_prepare(fd);
        if (r < 0)
                return r;
        r = link_new(&v, fd);
        if (r < 0)
                return r;
        v->state = VARLINK_IDLE_CLIENT;
        *ret = v;
        return 0;
}

int varlink_connect_address(Varlink **ret, const char *address) {
        _cleanup_close_ int fd = -1;
        int r;

        if (!ret || !address)
                return -EINVAL;
        /* connect() blocks on a full AF_UNIX backlog; bound it like a call. */
        fd = socket_connect_unix(address, VARLINK_DEFAULT_TIMEOUT_USEC);
        if (fd < 0)
                return fd;
        r = varlink_connect_fd(ret, fd);
        if (r >= 0)
                TAKE_FD(fd);
        return r;
}

int varlink_error_to_errno(const char *error_id, json_t *parameters) {
        static const struct {
                const char *id;
                int error;
        } table[] = {
                { VARLINK_ERROR_INTERFACE_NOT_FOUND, -EADDRNOTAVAIL },
                { VARLINK_ERROR_METHOD_NOT_FOUND, -ENXIO },
                { VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, -ENOTTY },
                { VARLINK_ERROR_INVALID_PARAMETER, -EINVAL },
                { VARLINK_ERROR_PERMISSION_DENIED, -EACCES },
                { VARLINK_ERROR_EXPECTED_MORE, -EBADE },
                { VARLINK_ERROR_DISCONNECTED, -ECONNRESET },
                { VARLINK_ERROR_TIMEOUT, -ETIMEDOUT },
                { VARLINK_ERROR_PROTOCOL, -EPROTO },
        };

        if (!error_id)
                return 0;
        if (streq(error_id, VARLINK_ERROR_SYSTEM)) {
                json_int_t e = json_integer_value(json_object_get(parameters, "errno"));
                return e > 0 && e < 4096 ? -(int) e : -EIO;
        }
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].id, error_id))
                        return table[i].error;
        return -EBADR;
}

/* ---- server ---- */

static int service_get_info(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        VarlinkServer *s = varlink_get_server(link);
        json_auto_t *interfaces = json_array();

        if (!s)
                return -ENOTCONN;
        if (!interfaces)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_interfaces; i++)
                if (json_array_append_new(interfaces, json_string(varlink_idl_get_name(s->interfaces[i].idl))) < 0)
                        return -ENOMEM;
        return varlink_replyf(link, "{s:s, s:s, s:s, s:s, s:O}",
                              "vendor", strempty(s->vendor), "product", strempty(s->product),
                              "version", strempty(s->version), "url", strempty(s->url),
                              "interfaces", interfaces);
}

static int service_get_interface_description(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        VarlinkServer *s = varlink_get_server(link);
        const char *name = json_string_value(json_object_get(parameters, "interface"));
        const Interface *i;

        if (!s)
                return -ENOTCONN;
        if (!name)
                return varlink_error_invalid_parameter_name(link, "interface");
        i = server_find_interface_n(s, name, strlen(name));
        if (!i)
                return link_error_string(link, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name, strlen(name));
        return varlink_replyf(link, "{s:O}", "description", i->description);
}

int varlink_server_new(VarlinkServer **ret, VarlinkServerFlags flags) {
        _cleanup_(varlink_server_unrefp) VarlinkServer *s = NULL;
        int r;

        if (!ret || (flags & ~(VARLINK_SERVER_ROOT_ONLY | VARLINK_SERVER_MYSELF_ONLY | VARLINK_SERVER_ACCOUNT_UID |
                               VARLINK_SERVER_INHERIT_USERDATA)))
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->flags = flags;
        s->connections_max = VARLINK_DEFAULT_CONNECTIONS_MAX;
        s->connections_per_uid_max = VARLINK_DEFAULT_CONNECTIONS_PER_UID_MAX;
        s->message_max = VARLINK_DEFAULT_MESSAGE_MAX;
        r = varlink_server_add_interface(s, service_interface);
        if (r >= 0)
                r = varlink_server_bind_method_many(s,
                                                    "org.varlink.service.GetInfo", service_get_info,
                                                    "org.varlink.service.GetInterfaceDescription",
                                                    service_get_interface_description,
                                                    NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static VarlinkServer *server_free(VarlinkServer *s) {
        (void) varlink_server_shutdown(s);
        s->event = sd_event_unref(s->event);
        for (size_t i = 0; i < s->n_interfaces; i++) {
                varlink_idl_free(s->interfaces[i].idl);
                json_decref(s->interfaces[i].description);
        }
        for (size_t i = 0; i < s->n_bindings; i++)
                free(s->bindings[i].method);
        free(s->interfaces);
        free(s->bindings);
        free(s->vendor);
        free(s->product);
        free(s->version);
        free(s->url);
        free(s->refuse_error);
        free(s);
        return NULL;
}

DEFINE_REF_UNREF_FUNC(VarlinkServer, varlink_server, server_free);

static int replace_string(char **p, const char *s) {
        char *c;

        if (!s)
                return 0;
        c = strdup(s);
        if (!c)
                return -ENOMEM;
        free(*p);
        *p = c;
        return 0;
}

int varlink_server_set_info(VarlinkServer *s, const char *vendor, const char *product, const char *version, const char *url) {
        int r;

        if (!s)
                return -EINVAL;
        r = replace_string(&s->vendor, vendor);
        if (r >= 0)
                r = replace_string(&s->product, product);
        if (r >= 0)
                r = replace_string(&s->version, version);
        if (r >= 0)
                r = replace_string(&s->url, url);
        return r;
}

int varlink_server_add_interface(VarlinkServer *s, const char *description) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        json_auto_t *text = NULL;
        const char *name;
        Interface *a;
        int r;

        if (!s || !description)
                return -EINVAL;
        r = varlink_idl_parse(description, &idl, NULL, NULL);
        if (r < 0)
                return r;
        name = varlink_idl_get_name(idl);
        if (server_find_interface_n(s, name, strlen(name)))
                return -EEXIST;
        text = json_string(description);
        if (!text)
                return -EINVAL; /* not UTF-8: comments may hold any byte */
        a = reallocarray(s->interfaces, s->n_interfaces + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        s->interfaces = a;
        a[s->n_interfaces++] = (Interface) { .idl = TAKE_PTR(idl), .description = TAKE_PTR(text) };
        return 0;
}

int varlink_server_bind_method_full(VarlinkServer *s, const char *method, VarlinkMethod callback, VarlinkBindFlags flags) {
        _cleanup_free_ char *m = NULL;
        Binding *a;

        if (!s || !callback || !varlink_qualified_name_is_valid(method) || (flags & ~VARLINK_BIND_REQUIRES_MORE))
                return -EINVAL;
        if (server_find_binding(s, method))
                return -EEXIST;
        m = strdup(method);
        if (!m)
                return -ENOMEM;
        a = reallocarray(s->bindings, s->n_bindings + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        s->bindings = a;
        a[s->n_bindings++] = (Binding) { .method = TAKE_PTR(m), .callback = callback, .flags = flags };
        return 0;
}

int varlink_server_bind_method(VarlinkServer *s, const char *method, VarlinkMethod callback) {
        return varlink_server_bind_method_full(s, method, callback, 0);
}

int varlink_server_bind_method_many(VarlinkServer *s, ...) {
        va_list ap;
        int r = 0;

        va_start(ap, s);
        for (;;) {
                const char *method = va_arg(ap, const char *);
                if (!method)
                        break;
                VarlinkMethod callback = va_arg(ap, VarlinkMethod);
                r = varlink_server_bind_method(s, method, callback);
                if (r < 0)
                        break;
        }
        va_end(ap);
        return r;
}

int varlink_server_bind_connect(VarlinkServer *s, VarlinkConnect callback) {
        if (!s)
                return -EINVAL;
        s->connect_callback = callback;
        return 0;
}

int varlink_server_bind_disconnect(VarlinkServer *s, VarlinkDisconnect callback) {
        if (!s)
                return -EINVAL;
        s->disconnect_callback = callback;
        return 0;
}

int varlink_server_bind_refuse(VarlinkServer *s, const char *error_id, VarlinkRefuse callback) {
        int r = 0;

        if (!s || (callback && !varlink_qualified_name_is_valid(error_id)))
                return -EINVAL;
        if (callback)
                r = replace_string(&s->refuse_error, error_id);
        if (r >= 0)
                s->refuse_callback = callback;
        return r;
}

void *varlink_server_set_userdata(VarlinkServer *s, void *userdata) {
        void *old;

        if (!s)
                return NULL;
        old = s->userdata;
        s->userdata = userdata;
        return old;
}

void *varlink_server_get_userdata(VarlinkServer *s) {
        return s ? s->userdata : NULL;
}

int varlink_server_set_connections_max(VarlinkServer *s, unsigned m) {
        if (!s || m == 0)
                return -EINVAL;
        s->connections_max = m;
        return 0;
}

int varlink_server_set_connections_per_uid_max(VarlinkServer *s, unsigned m) {
        if (!s || m == 0)
                return -EINVAL;
        s->connections_per_uid_max = m;
        return 0;
}

int varlink_server_set_message_max(VarlinkServer *s, size_t m) {
        if (!s || m == 0 || m > SIZE_MAX / 4)
                return -EINVAL;
        s->message_max = m;
        return 0;
}

unsigned varlink_server_current_connections(VarlinkServer *s) {
        return s ? s->n_connections : 0;
}

sd_event *varlink_server_get_event(VarlinkServer *s) {
        return s ? s->event : NULL;
}

/* ---- server: connections ---- */

static void server_pause_listeners(VarlinkServer *s, bool pause) {
        for (size_t i = 0; i < s->n_listeners; i++)
                if (s->listeners[i].source)
                        (void) sd_event_source_set_enabled(s->listeners[i].source, pause ? SD_EVENT_OFF : SD_EVENT_ON);
        s->listeners_paused = pause;
}

static void server_forget(VarlinkServer *s, Varlink *v) {
        if (v->prev)
                v->prev->next = v->next;
        else
                s->connections = v->next;
        if (v->next)
                v->next->prev = v->prev;
        v->next = v->prev = NULL;
        s->n_connections--;
        if (s->listeners_paused)
                server_pause_listeners(s, false);
        if (s->disconnect_callback)
                s->disconnect_callback(s, v, s->userdata);
        v->server = NULL;
        varlink_unref(v); /* the server's reference */
}

static unsigned server_count_uid(VarlinkServer *s, uid_t uid) {
        unsigned n = 0;

        for (Varlink *v = s->connections; v; v = v->next)
                if (v->ucred_valid && v->ucred.uid == uid)
                        n++;
        return n;
}

/* -ETOOMANYREFS over a cap, which *ret_refusal then describes. */
static int server_admit(VarlinkServer *s, const Varlink *v, VarlinkRefusal *ret_refusal) {
        const VarlinkServerFlags checks = VARLINK_SERVER_ROOT_ONLY | VARLINK_SERVER_MYSELF_ONLY | VARLINK_SERVER_ACCOUNT_UID;

        *ret_refusal = (VarlinkRefusal) { .limit = s->connections_max, .uid = v->ucred_valid ? v->ucred.uid : (uid_t) -1 };
        if (s->n_connections >= s->connections_max)
                return -ETOOMANYREFS;
        if (!v->ucred_valid)
                return s->flags & checks ? -EPERM : 0;
        if ((s->flags & VARLINK_SERVER_ROOT_ONLY) && v->ucred.uid != 0)
                return -EPERM;
        if ((s->flags & VARLINK_SERVER_MYSELF_ONLY) && v->ucred.uid != 0 && v->ucred.uid != getuid())
                return -EPERM;
        if ((s->flags & VARLINK_SERVER_ACCOUNT_UID) &&
            server_count_uid(s, v->ucred.uid) >= s->connections_per_uid_max) {
                *ret_refusal = (VarlinkRefusal) { .limit = s->connections_per_uid_max, .per_uid = true, .uid = v->ucred.uid };
                return -ETOOMANYREFS;
        }
        return 0;
}

/* One write, which a fresh socket's buffer takes whole; should it not, the
 * peer sees the close alone, as without the callback. */
static void server_send_refusal(VarlinkServer *s, Varlink *v, const VarlinkRefusal *refusal) {
        json_auto_t *p = s->refuse_callback ? s->refuse_callback(s, refusal, s->userdata) : NULL;

        if (json_is_object(p) && link_enqueue_reply(v, s->refuse_error, p, false) >= 0)
                (void) link_write(v);
}

static int server_adopt(VarlinkServer *s, Varlink *v) {
        int r;

        v->is_server = true;
        v->state = VARLINK_IDLE_SERVER;
        v->message_max = s->message_max;
        if (s->flags & VARLINK_SERVER_INHERIT_USERDATA)
                v->userdata = s->userdata;
        if (s->event) {
                r = link_attach_event(v, s->event, s->priority);
                if (r < 0)
                        return r;
        }
        v->server = s;
        r = s->connect_callback ? s->connect_callback(s, v, s->userdata) : 0;
        if (r < 0) {
                v->server = NULL;
                link_detach_event(v);
                return r;
        }
        v->next = s->connections;
        if (v->next)
                v->next->prev = v;
        s->connections = varlink_ref(v);
        s->n_connections++;
        return 0;
}

int varlink_server_add_connection(VarlinkServer *s, int fd, Varlink **ret) {
        _cleanup_(varlink_unrefp) Varlink *v = NULL;
        VarlinkRefusal refusal;
        int r;

        if (!s || fd < 0)
                return -EINVAL;
        r = socket_prepare(fd);
        if (r < 0)
                return r;
        r = link_new(&v, fd);
        if (r < 0)
                return r;
        r = server_admit(s, v, &refusal);
        if (r == -ETOOMANYREFS)
                server_send_refusal(s, v, &refusal);
        if (r >= 0)
                r = server_adopt(s, v);
        if (r < 0) {
                v->fd = -1; /* stays the caller's */
                return r;
        }
        if (ret)
                *ret = v;
        return 0;
}

/* ---- server: refused connections ---- */

static void refused_free(Refused *r) {
        VarlinkServer *s = r->server;

        if (r->prev)
                r->prev->next = r->next;
        else
                s->refused = r->next;
        if (r->next)
                r->next->prev = r->prev;
        s->n_refused--;
        sd_event_source_disable_unref(r->io_source);
        sd_event_source_disable_unref(r->time_source);
        safe_close(r->fd);
        free(r);
}

static int refused_io_callback(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        refused_free(userdata);
        return 0;
}

static int refused_time_callback(sd_event_source *source, uint64_t usec, void *userdata) {
        refused_free(userdata);
        return 0;
}

/* Takes fd, which was sent the refusal. Closed at once, a client that
 * writes its call before it reads would fail on EPIPE without reading the
 * refusal; so the server's side is only shut for writing until the peer
 * wrote or hung up (a bounded wait, for a bounded number). */
static void server_linger_refused(VarlinkServer *s, int fd) {
        Refused *r = NULL;
        int k;

        if (!s->event || s->n_refused >= REFUSED_MAX || shutdown(fd, SHUT_WR) < 0 || !(r = calloc(1, sizeof *r))) {
                safe_close(fd);
                return;
        }
        *r = (Refused) { .server = s, .next = s->refused, .fd = fd };
        if (r->next)
                r->next->prev = r;
        s->refused = r;
        s->n_refused++;
        k = sd_event_add_io(s->event, &r->io_source, fd, EPOLLIN, refused_io_callback, r);
        if (k >= 0)
                k = sd_event_add_time_relative(s->event, &r->time_source, CLOCK_MONOTONIC, REFUSED_LINGER_USEC, 0,
                                               refused_time_callback, r);
        if (k < 0)
                refused_free(r);
}

/* ---- server: listeners ---- */

static int listener_io_callback(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        VarlinkServer *s = userdata;
        _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd < 0) {
                /* Out of fds or memory: stop accepting until a connection
                 * closes, rather than spin on a listener that stays readable.
                 * Anything else (EAGAIN, ECONNABORTED, …) was this attempt's. */
                if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
                    s->n_connections > 0)
                        server_pause_listeners(s, true);
                return 0;
        }
        /* A refused connection is closed right here, unless it was told
         * why (caps, with a refuse callback). */
        int r = varlink_server_add_connection(s, cfd, NULL);
        if (r >= 0)
                TAKE_FD(cfd);
        else if (r == -ETOOMANYREFS && s->refuse_callback)
                server_linger_refused(s, TAKE_FD(cfd));
        return 0;
}

static int listener_attach(VarlinkServer *s, Listener *l) {
        int r = sd_event_add_io(s->event, &l->source, l->fd, EPOLLIN, listener_io_callback, s);
        if (r >= 0)
                r = sd_event_source_set_priority(l->source, s->priority);
        if (r >= 0 && s->listeners_paused)
                r = sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
        if (r < 0)
                l->source = sd_event_source_disable_unref(l->source);
        return r;
}

int varlink_server_listen_fd(VarlinkServer *s, int fd) {
        Listener *a;
        int r;

        if (!s || fd < 0)
                return -EINVAL;
        r = sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1);
        if (r < 0)
                return r;
        if (r == 0)
                return -EINVAL;
        r = fd_nonblock_cloexec(fd);
        if (r < 0)
                return r;
        a = reallocarray(s->listeners, s->n_listeners + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        s->listeners = a;
        a[s->n_listeners] = (Listener) { .fd = fd };
        if (s->event) {
                r = listener_attach(s, a + s->n_listeners);
                if (r < 0)
                        return r;
        }
        s->n_listeners++;
        return 0;
}

/* Only a socket is replaced: never remove a file put there by mistake. */
int varlink_server_listen_address(VarlinkServer *s, const char *address, mode_t mode) {
        if (!s || !address)
                return -EINVAL;
        _cleanup_close_ int fd = socket_listen_unix(address, mode, SOCK_NONBLOCK);
        if (fd < 0)
                return fd;
        int r = varlink_server_listen_fd(s, fd);
        if (r >= 0)
                TAKE_FD(fd);
        return r;
}

int varlink_server_attach_event(VarlinkServer *s, sd_event *e, int64_t priority) {
        int r = 0;

        if (!s)
                return -EINVAL;
        if (s->event)
                return -EBUSY;
        if (e)
                s->event = sd_event_ref(e);
        else {
                r = sd_event_default(&s->event);
                if (r < 0)
                        return r;
        }
        s->priority = priority;
        for (size_t i = 0; r >= 0 && i < s->n_listeners; i++)
                r = listener_attach(s, s->listeners + i);
        for (Varlink *v = s->connections; r >= 0 && v; v = v->next)
                r = link_attach_event(v, s->event, priority);
        if (r < 0)
                (void) varlink_server_detach_event(s);
        return r;
}

int varlink_server_detach_event(VarlinkServer *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < s->n_listeners; i++)
                s->listeners[i].source = sd_event_source_disable_unref(s->listeners[i].source);
        for (Varlink *v = s->connections; v; v = v->next)
                link_detach_event(v);
        while (s->refused)
                refused_free(s->refused);
        s->event = sd_event_unref(s->event);
        return 0;
}

int varlink_server_shutdown(VarlinkServer *s) {
        if (!s)
                return -EINVAL;
        while (s->connections)
                link_disconnect(s->connections);
        while (s->refused)
                refused_free(s->refused);
        for (size_t i = 0; i < s->n_listeners; i++) {
                sd_event_source_disable_unref(s->listeners[i].source);
                safe_close(s->listeners[i].fd);
        }
        free(s->listeners);
        s->listeners = NULL;
        s->n_listeners = 0;
        return 0;
}
