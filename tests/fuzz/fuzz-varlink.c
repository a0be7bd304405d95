/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/varlink: message framing, parsing and dispatch as a server and as a
 * client, and the interface language. The first byte picks the mode, the
 * second the chunk size (1–16 bytes), so messages arrive split anywhere:
 *   0  server: the bytes come from a peer over a socketpair, served on
 *      sd-event by handlers that reply at once, stream with "more", defer
 *      to a later event source, fail with an errno, or close the link.
 *      Whatever the server writes back is NUL-terminated JSON objects with
 *      an object as "parameters".
 *   1  client, asynchronous: the bytes are replies to varlink_observe() /
 *      varlink_invoke(), driven by varlink_process().
 *   2  client, blocking: the bytes are all there (then EOF) before
 *      varlink_call() / varlink_collect() read them.
 *   3  the bytes up to a NUL are an interface description, the rest JSON
 *      parameters to validate against it; an accepted interface has a
 *      valid name. */

#include <stdint.h>
#include <sys/socket.h>

#include "protocol/varlink.h"

#define MESSAGE_MAX 4096U
#define DEFERRED_MAX 4U
#define ROUNDS_MAX 256U
#define OUTPUT_MAX (1024U * 1024U)

static const char fuzz_interface[] =
        "interface io.nap.Fuzz\n"
        "type Pair (key: string, value: ?int)\n"
        "type Mode (fast, slow)\n"
        "method Echo(text: ?string, n: ?int, f: ?float, b: ?bool, list: ?[]Pair,\n"
        "            map: ?[string]?string, mode: ?Mode, any: ?object,\n"
        "            nested: ?(a: ?(b: ?[]int))) -> (text: ?string)\n"
        "method Stream(count: int) -> (index: int)\n"
        "method Defer() -> ()\n"
        "method Fail() -> ()\n"
        "method Close() -> ()\n"
        "method Unbound() -> ()\n"
        "method NeedMore() -> ()\n"
        "error Oops (why: string)\n";

typedef struct Fuzz {
        sd_event *event;
        sd_event_source *release;
        Varlink *deferred[DEFERRED_MAX];
        size_t n_deferred;
        char *output;
        size_t output_size;
} Fuzz;

/* ---- server handlers ---- */

static int method_echo(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        return varlink_reply(link, parameters);
}

static int method_stream(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        json_int_t n = json_integer_value(json_object_get(parameters, "count"));
        for (json_int_t i = 0; i + 1 < MIN(n, 5); i++) {
                int r = varlink_notifyf(link, "{s:I}", "index", i);
                if (r < 0 || varlink_is_idle(link))
                        return r;
        }
        return varlink_errorf(link, "io.nap.Fuzz.Oops", "{s:s}", "why", "done");
}

static int method_defer(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        Fuzz *f = userdata;
        if (f->n_deferred >= DEFERRED_MAX)
                return -EBUSY;
        f->deferred[f->n_deferred++] = varlink_ref(link);
        return sd_event_source_set_enabled(f->release, SD_EVENT_ONESHOT);
}

static int method_fail(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        return -EIO;
}

static int method_close(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        return varlink_close(link);
}

static int method_need_more(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        return varlink_reply(link, NULL);
}

/* Deferred replies, from another event source. */
static int release_deferred(sd_event_source *s, void *userdata) {
        Fuzz *f = userdata;
        for (size_t i = 0; i < f->n_deferred; i++) {
                (void) varlink_replyf(f->deferred[i], "{}");
                varlink_unref(f->deferred[i]);
        }
        f->n_deferred = 0;
        return 0;
}

static void on_disconnect(VarlinkServer *s, Varlink *link, void *userdata) {
        Fuzz *f = userdata;
        for (size_t i = 0; i < f->n_deferred; i++)
                if (f->deferred[i] == link) {
                        varlink_unref(link);
                        f->deferred[i] = f->deferred[--f->n_deferred];
                        break;
                }
}

static VarlinkServer *server_new(Fuzz *f) {
        VarlinkServer *s = NULL;

        if (varlink_server_new(&s, VARLINK_SERVER_INHERIT_USERDATA) < 0)
                abort();
        varlink_server_set_userdata(s, f);
        if (varlink_server_add_interface(s, fuzz_interface) < 0 ||
            varlink_server_bind_method_many(s,
                                            "io.nap.Fuzz.Echo", method_echo,
                                            "io.nap.Fuzz.Stream", method_stream,
                                            "io.nap.Fuzz.Defer", method_defer,
                                            "io.nap.Fuzz.Fail", method_fail,
                                            "io.nap.Fuzz.Close", method_close,
                                            NULL) < 0 ||
            varlink_server_bind_method_full(s, "io.nap.Fuzz.NeedMore", method_need_more, VARLINK_BIND_REQUIRES_MORE) < 0 ||
            varlink_server_bind_disconnect(s, on_disconnect) < 0 ||
            varlink_server_set_message_max(s, MESSAGE_MAX) < 0 ||
            varlink_server_attach_event(s, f->event, 0) < 0)
                abort();
        return s;
}

/* ---- the peer's side of the socket ---- */

static void run_loop(sd_event *e) {
        for (unsigned i = 0; i < ROUNDS_MAX; i++)
                if (sd_event_run(e, 0) <= 0)
                        return;
}

static void drain(Fuzz *f, int fd) {
        char buf[4096];
        ssize_t k;

        while ((k = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
                if (f->output_size + k > OUTPUT_MAX)
                        continue;
                char *o = realloc(f->output, f->output_size + k);
                if (!o)
                        abort();
                memcpy(o + f->output_size, buf, k);
                f->output = o;
                f->output_size += k;
        }
}

/* Every complete message the server wrote is a reply-shaped JSON object. */
static void check_output(const Fuzz *f) {
        size_t start = 0;

        for (size_t i = 0; i < f->output_size; i++) {
                if (f->output[i] != 0)
                        continue;
                json_t *m = json_loadb(f->output + start, i - start, JSON_REJECT_DUPLICATES, NULL);
                if (!json_is_object(json_object_get(m, "parameters")))
                        abort();
                json_decref(m);
                start = i + 1;
        }
}

/* Sends one chunk, letting the server catch up while the socket is full.
 * false once the server hung up. */
static bool feed(Fuzz *f, int fd, const uint8_t *p, size_t n) {
        for (unsigned tries = 0; n > 0 && tries < 16; tries++) {
                ssize_t k = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0 && errno != EAGAIN)
                        return false;
                if (k > 0) {
                        p += k;
                        n -= k;
                }
                run_loop(f->event);
                drain(f, fd);
        }
        return true;
}

static void fuzz_server(const uint8_t *data, size_t size, size_t chunk) {
        Fuzz f = {};
        int fds[2];

        if (sd_event_new(&f.event) < 0 || sd_event_add_defer(f.event, &f.release, release_deferred, &f) < 0 ||
            sd_event_source_set_enabled(f.release, SD_EVENT_OFF) < 0)
                abort();
        VarlinkServer *s = server_new(&f);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0 ||
            varlink_server_add_connection(s, fds[0], NULL) < 0)
                abort();
        for (size_t i = 0; i < size; i += chunk)
                if (!feed(&f, fds[1], data + i, MIN(chunk, size - i)))
                        break;
        (void) shutdown(fds[1], SHUT_WR); /* as socat does: EOF, then read the replies */
        run_loop(f.event);
        drain(&f, fds[1]);
        check_output(&f);
        close(fds[1]);
        run_loop(f.event);
        varlink_server_unref(s);
        release_deferred(NULL, &f);
        sd_event_source_unref(f.release);
        sd_event_unref(f.event);
        free(f.output);
}

/* ---- client ---- */

static int on_reply(Varlink *link, json_t *parameters, const char *error_id, VarlinkReplyFlags flags, void *userdata) {
        if (!json_is_object(parameters) || (error_id && !varlink_qualified_name_is_valid(error_id)))
                abort();
        (*(unsigned *) userdata)++;
        return 0;
}

static int client_new(int fd, unsigned *replies, Varlink **ret) {
        Varlink *v = NULL;

        if (varlink_connect_fd(&v, fd) < 0 || varlink_set_message_max(v, MESSAGE_MAX) < 0 ||
            varlink_set_relative_timeout(v, 2 * 1000000ULL) < 0 || varlink_bind_reply(v, on_reply) < 0)
                abort();
        varlink_set_userdata(v, replies);
        *ret = v;
        return 0;
}

/* Calls again whenever the previous call is done, so that every reply in
 * the input meets a call waiting for it. */
static void client_step(Varlink *v, bool more, unsigned *calls) {
        for (unsigned i = 0; i < ROUNDS_MAX && varlink_is_connected(v); i++) {
                if (varlink_is_idle(v) && *calls < 64) {
                        (*calls)++;
                        if ((more ? varlink_observe(v, "io.nap.Fuzz.Stream", NULL)
                                  : varlink_invoke(v, "io.nap.Fuzz.Echo", NULL)) < 0)
                                abort();
                }
                if (varlink_process(v) <= 0)
                        return;
        }
}

static void fuzz_client_async(const uint8_t *data, size_t size, size_t chunk, bool more) {
        unsigned replies = 0, calls = 0;
        char sink[4096];
        Varlink *v = NULL;
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                abort();
        client_new(fds[0], &replies, &v);
        for (size_t i = 0; i < size && varlink_is_connected(v); i += chunk) {
                client_step(v, more, &calls);
                if (send(fds[1], data + i, MIN(chunk, size - i), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                        break;
                while (recv(fds[1], sink, sizeof sink, MSG_DONTWAIT) > 0)
                        ;
        }
        client_step(v, more, &calls);
        close(fds[1]);
        client_step(v, more, &calls);
        if (!varlink_is_idle(v) && varlink_is_connected(v))
                abort(); /* the server is gone: nothing can be pending */
        varlink_unref(v);
}

static void fuzz_client_sync(const uint8_t *data, size_t size, bool collect) {
        unsigned replies = 0;
        Varlink *v = NULL;
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                abort();
        client_new(fds[0], &replies, &v);
        /* Small inputs fit in the socket buffer; then EOF, so no call blocks. */
        if (send(fds[1], data, size, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t) size) {
                close(fds[1]);
                varlink_unref(v);
                return;
        }
        (void) shutdown(fds[1], SHUT_WR);
        for (unsigned i = 0; i < 16; i++) {
                json_t *result = NULL;
                const char *error_id = NULL;
                int r = collect ? varlink_collect(v, "io.nap.Fuzz.Stream", NULL, &result, &error_id)
                                : varlink_call(v, "io.nap.Fuzz.Echo", NULL, &result, &error_id);
                if (r < 0)
                        break;
                if (!(collect ? json_is_array(result) : json_is_object(result)))
                        abort();
        }
        close(fds[1]);
        varlink_unref(v);
}

/* ---- interface language ---- */

static void fuzz_idl(const uint8_t *data, size_t size) {
        static const char *const names[] = { "A", "B", "M", "E", "Echo", "GetInfo" };
        const uint8_t *nul = memchr(data, 0, size);
        size_t n = nul ? (size_t) (nul - data) : size;
        VarlinkIdl *idl = NULL;
        char *text = strndup((const char *) data, n);
        unsigned line, column;

        if (!text)
                return;
        if (varlink_idl_parse(text, &idl, &line, &column) >= 0) {
                if (!varlink_interface_name_is_valid(varlink_idl_get_name(idl)))
                        abort();
                json_t *p = nul ? json_loadb((const char *) nul + 1, size - n - 1, 0, NULL) : NULL;
                for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                        const char *bad = NULL;
                        int r = varlink_idl_validate_method_input(idl, names[i], p, &bad);
                        if (r == -EINVAL && p && json_is_object(p) && !bad)
                                abort(); /* a refusal names its field */
                        (void) varlink_idl_validate_method_output(idl, names[i], p, &bad);
                        (void) varlink_idl_validate_error(idl, names[i], p, &bad);
                }
                json_decref(p);
        }
        varlink_idl_free(idl);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        size_t chunk = data[1] % 16 + 1;
        switch (data[0] % 4) {
        case 0:
                fuzz_server(data + 2, size - 2, chunk);
                break;
        case 1:
                fuzz_client_async(data + 2, size - 2, chunk, data[1] & 0x10);
                break;
        case 2:
                fuzz_client_sync(data + 2, size - 2, data[1] & 0x10);
                break;
        default:
                fuzz_idl(data + 2, size - 2);
        }
        return 0;
}
