/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/varlink: the interface language, and a real server in this process
 * (its sd-event loop in a thread, or in the test's own loop) driven by the
 * client API and by raw NUL-framed bytes over the socket. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "protocol/varlink.h"

static const char test_interface[] =
        "# An interface for the tests.\n"
        "interface io.nap.Test\n"
        "\n"
        "type Point (x: int, y: int)\n"
        "type Color (red, green, blue)\n"
        "\n"
        "# Echo the text back.\n"
        "method Echo(\n"
        "  text: string,\n"
        "  count: ?int,\n"
        "  ratio: ?float,\n"
        "  flag: ?bool,\n"
        "  tags: ?[]string,\n"
        "  labels: ?[string]string,\n"
        "  point: ?Point,\n"
        "  color: ?Color,\n"
        "  extra: ?object\n"
        ") -> (text: string)\n"
        "method Stream(count: int) -> (index: int)\n"
        "method Slow(token: string) -> (token: string)\n"
        "method Release() -> (released: int)\n"
        "method WhoAmI() -> (uid: int, pid: int)\n"
        "method Record(token: string) -> ()\n"
        "method Stats() -> (connections: int, disconnects: int, pending: int, records: []string)\n"
        "method Unbound() -> ()\n"
        "method NeedMore() -> (n: int)\n"
        "method Fail() -> ()\n"
        "error Boom (reason: string)\n"
        "error TooMany (limit: int, perUid: bool)\n";

#define SLOW_MAX 16

typedef struct TestServer {
        sd_event *event;
        VarlinkServer *server;
        pthread_t thread;
        bool running;
        int stop_fd;
        char dir[64];
        char path[100];
        /* Touched by handlers in the server thread only; read by the test
         * through Stats or after the thread is joined. */
        Varlink *slow[SLOW_MAX];
        json_t *slow_params[SLOW_MAX];
        VarlinkMethodFlags slow_flags[SLOW_MAX];
        size_t n_slow;
        unsigned disconnects;
        json_t *records;
} TestServer;

/* ---- the server's methods ---- */

static int method_echo(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        return varlink_replyf(link, "{s:O}", "text", json_object_get(parameters, "text"));
}

static int method_stream(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        json_int_t n = json_integer_value(json_object_get(parameters, "count"));
        for (json_int_t i = 0; i + 1 < n; i++) {
                int r = varlink_notifyf(link, "{s:I}", "index", i);
                if (r < 0 || varlink_is_idle(link)) /* ExpectedMore ended it */
                        return r;
        }
        return varlink_replyf(link, "{s:I}", "index", n - 1);
}

static int method_slow(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        TestServer *t = userdata;
        if (t->n_slow >= SLOW_MAX)
                return -ENOSPC;
        t->slow[t->n_slow] = varlink_ref(link);
        t->slow_params[t->n_slow] = json_incref(parameters);
        t->slow_flags[t->n_slow] = flags;
        t->n_slow++;
        return 0; /* replied to by Release, from another connection */
}

static int method_release(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        TestServer *t = userdata;
        int released = 0;
        for (size_t i = 0; i < t->n_slow; i++) {
                /* a follower ("more") gets a notification from here first */
                if ((t->slow_flags[i] & VARLINK_METHOD_MORE) &&
                    varlink_notifyf(t->slow[i], "{s:s}", "token", "tick") < 0)
                        continue;
                if (varlink_replyf(t->slow[i], "{s:O}", "token", json_object_get(t->slow_params[i], "token")) >= 0)
                        released++;
                varlink_unref(t->slow[i]);
                json_decref(t->slow_params[i]);
        }
        t->n_slow = 0;
        return varlink_replyf(link, "{s:i}", "released", released);
}

static int method_whoami(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        uid_t uid;
        pid_t pid;
        int r = varlink_get_peer_uid(link, &uid);
        if (r < 0)
                return r;
        r = varlink_get_peer_pid(link, &pid);
        if (r < 0)
                return r;
        return varlink_replyf(link, "{s:I, s:I}", "uid", (json_int_t) uid, "pid", (json_int_t) pid);
}

static int method_record(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        TestServer *t = userdata;
        json_array_append(t->records, json_object_get(parameters, "token"));
        return varlink_reply(link, NULL); /* swallowed for oneway calls */
}

static int method_stats(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        TestServer *t = userdata;
        return varlink_replyf(link, "{s:i, s:i, s:i, s:O}",
                              "connections", (int) varlink_server_current_connections(varlink_get_server(link)),
                              "disconnects", (int) t->disconnects, "pending", (int) t->n_slow, "records", t->records);
}

static int method_need_more(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        assert_true(flags & VARLINK_METHOD_MORE);
        return varlink_replyf(link, "{s:i}", "n", 1);
}

static int method_fail(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata) {
        return -ENOENT;
}

static void forget_slow(TestServer *t, size_t i) {
        varlink_unref(t->slow[i]);
        json_decref(t->slow_params[i]);
        memmove(t->slow + i, t->slow + i + 1, (t->n_slow - i - 1) * sizeof t->slow[0]);
        memmove(t->slow_params + i, t->slow_params + i + 1, (t->n_slow - i - 1) * sizeof t->slow_params[0]);
        memmove(t->slow_flags + i, t->slow_flags + i + 1, (t->n_slow - i - 1) * sizeof t->slow_flags[0]);
        t->n_slow--;
}

/* A follower learns that its client is gone and lets go. */
static void on_disconnect(VarlinkServer *s, Varlink *link, void *userdata) {
        TestServer *t = userdata;
        t->disconnects++;
        for (size_t i = 0; i < t->n_slow; i++)
                if (t->slow[i] == link) {
                        forget_slow(t, i);
                        break;
                }
}

/* ---- setting up ---- */

static void server_new(TestServer *t) {
        *t = (TestServer) { .stop_fd = -1 };
        t->records = json_array();
        assert_int_equal(sd_event_new(&t->event), 0);
        assert_int_equal(varlink_server_new(&t->server, VARLINK_SERVER_INHERIT_USERDATA), 0);
        varlink_server_set_userdata(t->server, t);
        assert_int_equal(varlink_server_set_info(t->server, "nap", "test-varlink", "1.0", "https://example.org/nap"), 0);
        assert_int_equal(varlink_server_add_interface(t->server, test_interface), 0);
        assert_int_equal(varlink_server_bind_method_many(t->server,
                                                         "io.nap.Test.Echo", method_echo,
                                                         "io.nap.Test.Stream", method_stream,
                                                         "io.nap.Test.Slow", method_slow,
                                                         "io.nap.Test.Release", method_release,
                                                         "io.nap.Test.WhoAmI", method_whoami,
                                                         "io.nap.Test.Record", method_record,
                                                         "io.nap.Test.Stats", method_stats,
                                                         "io.nap.Test.Fail", method_fail,
                                                         NULL), 0);
        assert_int_equal(varlink_server_bind_method_full(t->server, "io.nap.Test.NeedMore", method_need_more,
                                                         VARLINK_BIND_REQUIRES_MORE), 0);
        assert_int_equal(varlink_server_bind_disconnect(t->server, on_disconnect), 0);
        assert_int_equal(varlink_server_attach_event(t->server, t->event, 0), 0);
}

static void server_listen(TestServer *t) {
        snprintf(t->dir, sizeof t->dir, "/tmp/test-varlink-XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        assert_int_equal(chmod(t->dir, 0711), 0); /* for the client with another uid */
        snprintf(t->path, sizeof t->path, "%s/io.nap.Test", t->dir);
        assert_int_equal(varlink_server_listen_address(t->server, t->path, 0666), 0);
}

static int stop_callback(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *server_thread(void *p) {
        TestServer *t = p;
        return (void *) (intptr_t) sd_event_loop(t->event);
}

static void server_run(TestServer *t) {
        t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(t->stop_fd >= 0);
        assert_int_equal(sd_event_add_io(t->event, NULL, t->stop_fd, EPOLLIN, stop_callback, NULL), 0);
        assert_int_equal(pthread_create(&t->thread, NULL, server_thread, t), 0);
        t->running = true;
}

static void server_stop(TestServer *t) {
        void *ret;
        if (t->running) {
                assert_int_equal(eventfd_write(t->stop_fd, 1), 0);
                assert_int_equal(pthread_join(t->thread, &ret), 0);
                assert_int_equal((intptr_t) ret, 0);
        }
        while (t->n_slow > 0)
                forget_slow(t, 0);
        t->server = varlink_server_unref(t->server);
        t->event = sd_event_unref(t->event);
        safe_close(t->stop_fd);
        json_decref(t->records);
        if (t->path[0])
                (void) unlink(t->path);
        if (t->dir[0])
                (void) rmdir(t->dir);
}

static int setup(void **state) {
        TestServer *t = calloc(1, sizeof *t);
        server_new(t);
        server_listen(t);
        server_run(t);
        *state = t;
        return 0;
}

static int teardown(void **state) {
        server_stop(*state);
        free(*state);
        return 0;
}

/* ---- raw clients: bytes on the socket ---- */

static int raw_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

/* Stops quietly when the server hangs up on us. */
static void raw_send_bytes(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return;
                c += k;
                n -= k;
        }
}

static void raw_send(int fd, const char *s) {
        raw_send_bytes(fd, s, strlen(s) + 1);
}

/* The next NUL-terminated message, parsed; NULL on EOF or after 5 s. */
static json_t *raw_recv(int fd) {
        static char buf[65536];
        size_t n = 0;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char c;
                if (poll(&p, 1, 5000) <= 0 || recv(fd, &c, 1, 0) <= 0 || n >= sizeof buf)
                        return NULL;
                if (c == 0)
                        return json_loadb(buf, n, 0, NULL);
                buf[n++] = c;
        }
}

/* Whether the server closes fd within 5 s (anything sent before is skipped). */
static bool raw_closed(int fd) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char buf[4096];
                if (poll(&p, 1, 5000) <= 0)
                        return false;
                ssize_t k = recv(fd, buf, sizeof buf, 0);
                if (k == 0 || (k < 0 && errno == ECONNRESET))
                        return true;
                if (k < 0)
                        return false;
        }
}

static bool raw_silent(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 0;
}

static void assert_reply_string(json_t *reply, const char *key, const char *value) {
        assert_non_null(reply);
        assert_string_equal(json_string_value(json_object_get(json_object_get(reply, "parameters"), key)), value);
}

/* ---- client-API helpers ---- */

static Varlink *client_new(const TestServer *t) {
        Varlink *v = NULL;
        assert_int_equal(varlink_connect_address(&v, t->path), 0);
        return v;
}

static void call_ok(Varlink *v, const char *method, const char *params, json_t **ret) {
        json_auto_t *p = json_loads(params, 0, NULL);
        const char *error_id = NULL;
        assert_non_null(p);
        assert_int_equal(varlink_call(v, method, p, ret, &error_id), 0);
        assert_null(error_id);
}

/* The call fails with error_id, and error parameter key (if any) is value. */
static void call_error(Varlink *v, const char *method, const char *params, const char *error_id, const char *key,
                       const char *value) {
        json_auto_t *p = json_loads(params, 0, NULL);
        const char *e = NULL;
        json_t *reply = NULL;
        assert_non_null(p);
        assert_int_equal(varlink_call(v, method, p, &reply, &e), 0);
        assert_non_null(e);
        assert_string_equal(e, error_id);
        if (key)
                assert_string_equal(json_string_value(json_object_get(reply, key)), value);
}

static json_int_t stats_int(const TestServer *t, const char *key) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(t);
        json_t *reply = NULL;
        call_ok(v, "io.nap.Test.Stats", "{}", &reply);
        return json_integer_value(json_object_get(reply, key));
}

/* Waits (5 s at most) until Stats reports value for key. */
static void wait_stats(const TestServer *t, const char *key, json_int_t value) {
        for (unsigned i = 0; i < 500; i++) {
                if (stats_int(t, key) == value)
                        return;
                usleep(10000);
        }
        assert_int_equal(stats_int(t, key), value);
}

/* ---- interface language ---- */

static void test_names(void **state) {
        assert_true(varlink_interface_name_is_valid("io.nap.Manager"));
        assert_true(varlink_interface_name_is_valid("org.varlink.service"));
        assert_true(varlink_interface_name_is_valid("a.b-c.d0"));
        assert_false(varlink_interface_name_is_valid("io"));
        assert_false(varlink_interface_name_is_valid("io..nap"));
        assert_false(varlink_interface_name_is_valid("io.nap."));
        assert_false(varlink_interface_name_is_valid("0io.nap"));
        assert_false(varlink_interface_name_is_valid("io.-nap"));
        assert_false(varlink_interface_name_is_valid("io.nap-"));
        assert_false(varlink_interface_name_is_valid("io.na_p"));
        assert_false(varlink_interface_name_is_valid(""));
        assert_false(varlink_interface_name_is_valid(NULL));
        assert_true(varlink_symbol_name_is_valid("GetInfo"));
        assert_false(varlink_symbol_name_is_valid("getInfo"));
        assert_false(varlink_symbol_name_is_valid("Get_Info"));
        assert_true(varlink_field_name_is_valid("a_b"));
        assert_true(varlink_field_name_is_valid("camelCase2"));
        assert_false(varlink_field_name_is_valid("a__b"));
        assert_false(varlink_field_name_is_valid("_a"));
        assert_false(varlink_field_name_is_valid("a_"));
        assert_false(varlink_field_name_is_valid("2a"));
        assert_true(varlink_qualified_name_is_valid("io.nap.Manager.ListServices"));
        assert_false(varlink_qualified_name_is_valid("io.nap.manager"));
        assert_true(varlink_qualified_name_is_valid("io.nap.Manager")); /* io.nap + Manager */
        assert_false(varlink_qualified_name_is_valid("ListServices"));
        assert_false(varlink_qualified_name_is_valid("io.ListServices"));
}

static void test_idl_parse_good(void **state) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        static const char text[] =
                "# comment before\n"
                "interface org.example.more # trailing comment\n"
                "type T (\n"
                "  b: bool, i: int, f: float, s: string, o: object,\n"
                "  e: (one, two, three),\n"
                "  st: (first: int, second: string),\n"
                "  a: []string, d: [string]string, set: [string](),\n"
                "  n: ?string, nas: ?[](first: int, second: string),\n"
                "  na: []?int, other: U, self: ?T\n"
                ")\n"
                "type U (a, b)\n"
                "type Empty ()\n"
                "method M(t: T) -> (u: U)\n"
                "method N()->()\n"
                "error E ()\n"
                "error F (reason: string)\n";

        assert_int_equal(varlink_idl_parse(text, &idl, NULL, NULL), 0);
        assert_string_equal(varlink_idl_get_name(idl), "org.example.more");
        assert_true(varlink_idl_has_method(idl, "M"));
        assert_true(varlink_idl_has_method(idl, "N"));
        assert_false(varlink_idl_has_method(idl, "T"));
        assert_false(varlink_idl_has_method(idl, "E"));
        assert_true(varlink_idl_has_error(idl, "F"));
        idl = varlink_idl_free(idl);
        assert_int_equal(varlink_idl_parse(test_interface, &idl, NULL, NULL), 0);
}

static void test_idl_parse_bad(void **state) {
        static const struct {
                const char *text;
                unsigned line;
        } cases[] = {
                { "", 1 },
                { "garbage", 1 },
                { "interface io.nap.Test\n", 2 },                        /* no member */
                { "interface io\nmethod A() -> ()\n", 1 },                 /* one label */
                { "interface io.nap\nmethod a() -> ()\n", 2 },             /* lower-case method */
                { "interface io.nap\nmethod A()\n", 3 },                   /* no -> */
                { "interface io.nap\nmethod A() -> (\n", 3 },              /* unterminated */
                { "interface io.nap\nmethod A(x: int,) -> ()\n", 2 },      /* trailing comma */
                { "interface io.nap\nmethod A(x int) -> ()\n", 2 },        /* no colon */
                { "interface io.nap\nmethod A(x: ??int) -> ()\n", 2 },     /* ?? */
                { "interface io.nap\nmethod A(x: ? int) -> ()\n", 2 },     /* ? not glued */
                { "interface io.nap\nmethod A(x: [ ]int) -> ()\n", 2 },    /* [ ] */
                { "interface io.nap\nmethod A(x: [int]int) -> ()\n", 2 },  /* map key not string */
                { "interface io.nap\nmethod A(x: Nope) -> ()\n", 2 },      /* undefined type */
                { "interface io.nap\nmethod A(x: B) -> ()\nmethod B() -> ()\n", 2 }, /* not a type */
                { "interface io.nap\nmethod A() -> ()\nerror A ()\n", 3 }, /* duplicate name */
                { "interface io.nap\nmethod A(x: int, x: int) -> ()\n", 2 },
                { "interface io.nap\ntype E (a, a)\n", 2 },
                { "interface io.nap\nmethod A(x_: int) -> ()\n", 2 },
                { "interface io.nap\nmethod A(a, b) -> ()\n", 2 },        /* enum as method input */
                { "interface io.nap\ntype E (a, b: int)\n", 2 },           /* enum and struct mixed */
                { "interface io.nap\nmethod A() -> () $\n", 2 },
                { "interface io.nap\nmethod A() -> ()\nmethod\n", 4 },
                { "method A() -> ()\ninterface io.nap\n", 1 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                VarlinkIdl *idl = NULL;
                unsigned line = 0, column = 0;
                int r = varlink_idl_parse(cases[i].text, &idl, &line, &column);
                if (r != -EBADMSG || line != cases[i].line)
                        fail_msg("case %zu: %s -> r=%d line=%u (want line %u)", i, cases[i].text, r, line, cases[i].line);
                assert_null(idl);
        }
}

static void test_idl_parse_deep(void **state) {
        char text[2048];
        VarlinkIdl *idl = NULL;
        size_t n = (size_t) snprintf(text, sizeof text, "interface io.nap\nmethod A(x: ");
        for (unsigned i = 0; i < 200; i++)
                n += (size_t) snprintf(text + n, sizeof text - n, "[]");
        snprintf(text + n, sizeof text - n, "int) -> ()\n");
        assert_int_equal(varlink_idl_parse(text, &idl, NULL, NULL), -EBADMSG); /* nesting cap */
}

static void assert_input(const VarlinkIdl *idl, const char *json, const char *bad) {
        json_auto_t *p = json_loads(json, 0, NULL);
        const char *b = NULL;
        assert_non_null(p);
        int r = varlink_idl_validate_method_input(idl, "Echo", p, &b);
        if (!bad) {
                if (r != 0)
                        fail_msg("%s refused (%s)", json, strempty(b));
                return;
        }
        if (r != -EINVAL || !b || !streq(b, bad))
                fail_msg("%s: r=%d bad=%s, want %s", json, r, strempty(b), bad);
}

static void test_idl_validate(void **state) {
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        const char *bad = NULL;

        assert_int_equal(varlink_idl_parse(test_interface, &idl, NULL, NULL), 0);
        assert_input(idl, "{\"text\": \"a\"}", NULL);
        assert_input(idl,
                     "{\"text\": \"a\", \"count\": 3, \"ratio\": 1, \"flag\": false, \"tags\": [\"x\"],"
                     " \"labels\": {\"k\": \"v\"}, \"point\": {\"x\": 1, \"y\": -2}, \"color\": \"green\","
                     " \"extra\": {\"any\": [1, {}]}}",
                     NULL);
        assert_input(idl, "{\"text\": \"a\", \"count\": null, \"point\": null}", NULL);
        assert_input(idl, "{\"text\": \"a\", \"ratio\": 0.5}", NULL);
        assert_input(idl, "{}", "text");
        assert_input(idl, "{\"text\": null}", "text");
        assert_input(idl, "{\"text\": 1}", "text");
        assert_input(idl, "{\"text\": \"a\", \"count\": \"3\"}", "count");
        assert_input(idl, "{\"text\": \"a\", \"count\": 1.5}", "count");
        assert_input(idl, "{\"text\": \"a\", \"ratio\": \"x\"}", "ratio");
        assert_input(idl, "{\"text\": \"a\", \"flag\": 1}", "flag");
        assert_input(idl, "{\"text\": \"a\", \"tags\": [1]}", "tags");
        assert_input(idl, "{\"text\": \"a\", \"tags\": \"x\"}", "tags");
        assert_input(idl, "{\"text\": \"a\", \"labels\": {\"k\": 1}}", "labels");
        assert_input(idl, "{\"text\": \"a\", \"point\": {\"x\": 1}}", "point");
        assert_input(idl, "{\"text\": \"a\", \"point\": {\"x\": 1, \"y\": 2, \"z\": 3}}", "point");
        assert_input(idl, "{\"text\": \"a\", \"point\": {\"x\": 1, \"y\": 2.5}}", "point");
        assert_input(idl, "{\"text\": \"a\", \"color\": \"purple\"}", "color");
        assert_input(idl, "{\"text\": \"a\", \"color\": 0}", "color");
        assert_input(idl, "{\"text\": \"a\", \"extra\": []}", "extra");
        assert_input(idl, "{\"text\": \"a\", \"bogus\": 1}", "bogus");
        /* the first bad one in the order of the keys */
        assert_input(idl, "{\"count\": \"x\", \"text\": 2}", "count");
        assert_int_equal(varlink_idl_validate_method_input(idl, "Nope", NULL, &bad), -ENOENT);
        assert_int_equal(varlink_idl_validate_method_input(idl, "Release", NULL, &bad), 0);
        json_auto_t *out = json_pack("{s:i}", "index", 1);
        assert_int_equal(varlink_idl_validate_method_output(idl, "Stream", out, &bad), 0);
        assert_int_equal(varlink_idl_validate_error(idl, "Boom", NULL, &bad), -EINVAL);
        assert_string_equal(bad, "reason");
}

/* ---- the server, over a socket path ---- */

static void test_get_info(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);
        json_t *reply = NULL;

        call_ok(v, "org.varlink.service.GetInfo", "{}", &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "vendor")), "nap");
        assert_string_equal(json_string_value(json_object_get(reply, "product")), "test-varlink");
        assert_string_equal(json_string_value(json_object_get(reply, "version")), "1.0");
        assert_string_equal(json_string_value(json_object_get(reply, "url")), "https://example.org/nap");
        json_t *ifaces = json_object_get(reply, "interfaces");
        assert_int_equal(json_array_size(ifaces), 2);
        assert_string_equal(json_string_value(json_array_get(ifaces, 0)), "org.varlink.service");
        assert_string_equal(json_string_value(json_array_get(ifaces, 1)), "io.nap.Test");
}

static void test_get_interface_description(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);
        _cleanup_(varlink_idl_freep) VarlinkIdl *idl = NULL;
        json_t *reply = NULL;

        call_ok(v, "org.varlink.service.GetInterfaceDescription", "{\"interface\": \"io.nap.Test\"}", &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "description")), test_interface);
        call_ok(v, "org.varlink.service.GetInterfaceDescription", "{\"interface\": \"org.varlink.service\"}", &reply);
        const char *text = json_string_value(json_object_get(reply, "description"));
        assert_int_equal(varlink_idl_parse(text, &idl, NULL, NULL), 0);
        assert_true(varlink_idl_has_error(idl, "ExpectedMore"));
        assert_true(varlink_idl_has_error(idl, "PermissionDenied"));
        call_error(v, "org.varlink.service.GetInterfaceDescription", "{\"interface\": \"io.nap.Nope\"}",
                   VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", "io.nap.Nope");
        call_error(v, "org.varlink.service.GetInterfaceDescription", "{}",
                   VARLINK_ERROR_INVALID_PARAMETER, "parameter", "interface");
}

static void test_call_good_params(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);
        json_t *reply = NULL;

        call_ok(v, "io.nap.Test.Echo",
                "{\"text\": \"hello\", \"count\": 2, \"tags\": [\"a\"], \"point\": {\"x\": 1, \"y\": 2}, \"color\": \"red\"}",
                &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "text")), "hello");
        /* the same link serves call after call */
        call_ok(v, "io.nap.Test.Echo", "{\"text\": \"again\"}", &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "text")), "again");
}

static void test_unknown_method_interface(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);

        call_error(v, "io.nap.Test.Nope", "{}", VARLINK_ERROR_METHOD_NOT_FOUND, "method", "io.nap.Test.Nope");
        call_error(v, "io.nap.Nope.Echo", "{}", VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", "io.nap.Nope");
        call_error(v, "io.nap.Test.Unbound", "{}", VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, "method", "io.nap.Test.Unbound");
        /* without ret_error_id the error becomes an errno */
        assert_int_equal(varlink_call(v, "io.nap.Test.Nope", NULL, NULL, NULL), -ENXIO);
        assert_int_equal(varlink_call(v, "io.nap.Nope.Echo", NULL, NULL, NULL), -EADDRNOTAVAIL);

        /* a method string without a dot, raw */
        int fd = raw_connect(((TestServer *) *state)->path);
        raw_send(fd, "{\"method\": \"Nodot\"}");
        json_auto_t *r = raw_recv(fd);
        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(r, "error")), VARLINK_ERROR_METHOD_NOT_FOUND);
        close(fd);
}

static void test_bad_parameters(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);

        call_error(v, "io.nap.Test.Echo", "{}", VARLINK_ERROR_INVALID_PARAMETER, "parameter", "text");
        call_error(v, "io.nap.Test.Echo", "{\"text\": 5}", VARLINK_ERROR_INVALID_PARAMETER, "parameter", "text");
        call_error(v, "io.nap.Test.Echo", "{\"text\": \"a\", \"count\": true}", VARLINK_ERROR_INVALID_PARAMETER,
                   "parameter", "count");
        call_error(v, "io.nap.Test.Echo", "{\"text\": \"a\", \"point\": {\"x\": 1}}", VARLINK_ERROR_INVALID_PARAMETER,
                   "parameter", "point");
        call_error(v, "io.nap.Test.Echo", "{\"text\": \"a\", \"color\": \"mauve\"}", VARLINK_ERROR_INVALID_PARAMETER,
                   "parameter", "color");
        call_error(v, "io.nap.Test.Echo", "{\"text\": \"a\", \"unknown\": 1}", VARLINK_ERROR_INVALID_PARAMETER,
                   "parameter", "unknown");
        call_error(v, "io.nap.Test.Stream", "{\"count\": \"3\"}", VARLINK_ERROR_INVALID_PARAMETER, "parameter", "count");
        /* the link survives refused calls */
        json_t *reply = NULL;
        call_ok(v, "io.nap.Test.Echo", "{\"text\": \"still here\"}", &reply);

        /* "parameters" missing altogether is {} */
        int fd = raw_connect(((TestServer *) *state)->path);
        raw_send(fd, "{\"method\": \"io.nap.Test.Echo\"}");
        json_auto_t *r = raw_recv(fd);
        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(json_object_get(r, "parameters"), "parameter")), "text");
        close(fd);
}

static void test_upgrade_refused(void **state) {
        int fd = raw_connect(((TestServer *) *state)->path);
        raw_send(fd, "{\"method\": \"io.nap.Test.Echo\", \"parameters\": {\"text\": \"a\"}, \"upgrade\": true}");
        json_auto_t *r = raw_recv(fd);
        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(r, "error")), VARLINK_ERROR_INVALID_PARAMETER);
        assert_reply_string(r, "parameter", "upgrade");
        close(fd);
}

static void test_system_error(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);
        json_t *reply = NULL;
        const char *e = NULL;

        assert_int_equal(varlink_call(v, "io.nap.Test.Fail", NULL, &reply, &e), 0);
        assert_string_equal(e, VARLINK_ERROR_SYSTEM);
        assert_int_equal(json_integer_value(json_object_get(reply, "errno")), ENOENT);
        assert_string_equal(json_string_value(json_object_get(reply, "errnoName")), "ENOENT");
        assert_int_equal(varlink_call(v, "io.nap.Test.Fail", NULL, NULL, NULL), -ENOENT);
}

/* Broken messages close their connection; a client connected before and one
 * connecting after are served. */
static void test_broken_messages_close(void **state) {
        static const char *const broken[] = {
                "hello",
                "",
                "[1, 2]",
                "\"string\"",
                "{\"method\": 5}",
                "{\"parameters\": {}}",
                "{\"method\": \"io.nap.Test.Echo\", \"parameters\": [1]}",
                "{\"method\": \"io.nap.Test.Echo\", \"oneway\": \"yes\"}",
                "{\"method\": \"io.nap.Test.Stream\", \"oneway\": true, \"more\": true}",
                "{\"method\": \"io.nap.Test.Echo\", \"method\": \"io.nap.Test.Echo\"}",
                "{\"method\": \"io.nap.Test.Echo\"",
        };
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *other = client_new(t);
        json_t *reply = NULL;

        for (size_t i = 0; i < ELEMENTSOF(broken); i++) {
                int fd = raw_connect(t->path);
                raw_send(fd, broken[i]);
                if (!raw_closed(fd))
                        fail_msg("not closed after: %s", broken[i]);
                close(fd);
                call_ok(other, "io.nap.Test.Echo", "{\"text\": \"ok\"}", &reply);
        }
        _cleanup_(varlink_unrefp) Varlink *later = client_new(t);
        call_ok(later, "io.nap.Test.Echo", "{\"text\": \"ok\"}", &reply);
}

static void test_oversized_message(void **state) {
        TestServer *t = *state;
        size_t n = VARLINK_DEFAULT_MESSAGE_MAX + 16;
        _cleanup_free_ char *big = malloc(n);
        _cleanup_(varlink_unrefp) Varlink *other = client_new(t);
        json_t *reply = NULL;

        /* over the cap without a NUL: dropped before the end arrives */
        memset(big, ' ', n);
        int fd = raw_connect(t->path);
        raw_send_bytes(fd, big, n);
        assert_true(raw_closed(fd));
        close(fd);
        call_ok(other, "io.nap.Test.Echo", "{\"text\": \"ok\"}", &reply);

        /* a complete message one byte over the cap */
        static const char head[] = "{\"method\": \"io.nap.Test.Echo\", \"parameters\": {\"text\": \"";
        size_t len = VARLINK_DEFAULT_MESSAGE_MAX + 1;
        memset(big, 'x', len);
        memcpy(big, head, strlen(head));
        memcpy(big + len - 3, "\"}}", 3);
        big[len] = 0;
        fd = raw_connect(t->path);
        raw_send_bytes(fd, big, len + 1);
        assert_true(raw_closed(fd));
        close(fd);

        /* a large message under the cap is fine */
        len = 1024 * 1024;
        _cleanup_free_ char *text = malloc(len + 1);
        memset(text, 'y', len);
        text[len] = 0;
        json_auto_t *p = json_pack("{s:s}", "text", text);
        assert_int_equal(varlink_call(other, "io.nap.Test.Echo", p, &reply, NULL), 0);
        assert_int_equal(strlen(json_string_value(json_object_get(reply, "text"))), len);
}

static void test_closed_mid_message(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *other = client_new(t);
        json_t *reply = NULL;

        wait_stats(t, "connections", 2); /* other + the Stats caller */
        int fd = raw_connect(t->path);
        raw_send_bytes(fd, "{\"method\": \"io.nap.Test.Ec", 25);
        wait_stats(t, "connections", 3);
        close(fd);
        wait_stats(t, "connections", 2);
        call_ok(other, "io.nap.Test.Echo", "{\"text\": \"ok\"}", &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "text")), "ok");
}

static void test_oneway(void **state) {
        TestServer *t = *state;
        int fd = raw_connect(t->path);

        /* no reply to the oneway call: the first reply is Stats' */
        raw_send(fd, "{\"method\": \"io.nap.Test.Record\", \"parameters\": {\"token\": \"a\"}, \"oneway\": true}");
        raw_send(fd, "{\"method\": \"io.nap.Test.Nope\", \"oneway\": true}"); /* errors are not sent either */
        raw_send(fd, "{\"method\": \"io.nap.Test.Stats\"}");
        json_auto_t *r = raw_recv(fd);
        assert_non_null(r);
        json_t *records = json_object_get(json_object_get(r, "parameters"), "records");
        assert_int_equal(json_array_size(records), 1);
        assert_string_equal(json_string_value(json_array_get(records, 0)), "a");
        assert_true(raw_silent(fd, 100));
        close(fd);

        /* client API */
        _cleanup_(varlink_unrefp) Varlink *v = client_new(t);
        json_auto_t *p = json_pack("{s:s}", "token", "b");
        assert_int_equal(varlink_send(v, "io.nap.Test.Record", p), 0);
        assert_int_equal(varlink_flush(v), 1);
        json_t *reply = NULL;
        call_ok(v, "io.nap.Test.Stats", "{}", &reply);
        assert_int_equal(json_array_size(json_object_get(reply, "records")), 2);
}

static void test_more_raw(void **state) {
        int fd = raw_connect(((TestServer *) *state)->path);

        raw_send(fd, "{\"method\": \"io.nap.Test.Stream\", \"parameters\": {\"count\": 3}, \"more\": true}");
        for (int i = 0; i < 3; i++) {
                json_auto_t *r = raw_recv(fd);
                assert_non_null(r);
                assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "parameters"), "index")), i);
                assert_int_equal(json_is_true(json_object_get(r, "continues")), i < 2);
        }
        /* the same method without "more": ExpectedMore at the first notify */
        raw_send(fd, "{\"method\": \"io.nap.Test.Stream\", \"parameters\": {\"count\": 3}}");
        json_auto_t *r = raw_recv(fd);
        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(r, "error")), VARLINK_ERROR_EXPECTED_MORE);
        assert_true(raw_silent(fd, 100));
        close(fd);
}

typedef struct Observed {
        int replies;
        int last_index;
        bool done;
        char error[128];
} Observed;

static int on_reply(Varlink *link, json_t *parameters, const char *error_id, VarlinkReplyFlags flags, void *userdata) {
        Observed *o = userdata;
        if (error_id)
                snprintf(o->error, sizeof o->error, "%s", error_id);
        o->replies++;
        o->last_index = (int) json_integer_value(json_object_get(parameters, "index"));
        o->done = !(flags & VARLINK_REPLY_CONTINUES);
        return 0;
}

static void test_more_client(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *v = client_new(t);
        json_auto_t *p = json_pack("{s:i}", "count", 5);
        json_t *a = NULL;
        const char *e = NULL;

        assert_int_equal(varlink_collect(v, "io.nap.Test.Stream", p, &a, &e), 0);
        assert_null(e);
        assert_int_equal(json_array_size(a), 5);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 4), "index")), 4);

        /* observe, driven by process/wait as a CLI would */
        Observed o = {};
        varlink_set_userdata(v, &o);
        assert_int_equal(varlink_bind_reply(v, on_reply), 0);
        assert_int_equal(varlink_observe(v, "io.nap.Test.Stream", p), 0);
        while (!varlink_is_idle(v)) {
                int r = varlink_process(v);
                assert_true(r >= 0);
                if (r == 0)
                        assert_true(varlink_wait(v, 5 * 1000000ULL) >= 0);
        }
        assert_int_equal(o.replies, 5);
        assert_int_equal(o.last_index, 4);
        assert_true(o.done);

        /* a method bound with VARLINK_BIND_REQUIRES_MORE */
        call_error(v, "io.nap.Test.NeedMore", "{}", VARLINK_ERROR_EXPECTED_MORE, NULL, NULL);
        assert_int_equal(varlink_collect(v, "io.nap.Test.NeedMore", NULL, &a, &e), 0);
        assert_null(e);
        assert_int_equal(json_array_size(a), 1);
}

/* A slow call on one connection blocks neither other connections nor the
 * order of replies on its own. */
static void test_deferred_ordering(void **state) {
        TestServer *t = *state;
        int a = raw_connect(t->path);
        _cleanup_(varlink_unrefp) Varlink *b = client_new(t);
        json_t *reply = NULL;

        raw_send(a, "{\"method\": \"io.nap.Test.Slow\", \"parameters\": {\"token\": \"first\"}}");
        raw_send(a, "{\"method\": \"io.nap.Test.Echo\", \"parameters\": {\"text\": \"second\"}}");
        wait_stats(t, "pending", 1);
        call_ok(b, "io.nap.Test.Echo", "{\"text\": \"b\"}", &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "text")), "b");
        assert_true(raw_silent(a, 200)); /* Echo waits behind Slow */

        call_ok(b, "io.nap.Test.Release", "{}", &reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "released")), 1);
        json_auto_t *r1 = raw_recv(a);
        json_auto_t *r2 = raw_recv(a);
        assert_reply_string(r1, "token", "first");
        assert_reply_string(r2, "text", "second");
        close(a);
}

/* A follower is fed from another connection's handler: notifications and
 * the final reply arrive in order. */
static void test_deferred_more(void **state) {
        TestServer *t = *state;
        int a = raw_connect(t->path);
        _cleanup_(varlink_unrefp) Varlink *b = client_new(t);
        json_t *reply = NULL;

        raw_send(a, "{\"method\": \"io.nap.Test.Slow\", \"parameters\": {\"token\": \"end\"}, \"more\": true}");
        wait_stats(t, "pending", 1);
        assert_true(raw_silent(a, 50));
        call_ok(b, "io.nap.Test.Release", "{}", &reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "released")), 1);
        json_auto_t *r1 = raw_recv(a);
        json_auto_t *r2 = raw_recv(a);
        assert_reply_string(r1, "token", "tick");
        assert_true(json_is_true(json_object_get(r1, "continues")));
        assert_reply_string(r2, "token", "end");
        assert_null(json_object_get(r2, "continues"));
        close(a);
}

static void test_disconnect_notifies_deferred(void **state) {
        TestServer *t = *state;
        json_int_t before = stats_int(t, "disconnects");
        int c = raw_connect(t->path);

        raw_send(c, "{\"method\": \"io.nap.Test.Slow\", \"parameters\": {\"token\": \"gone\"}, \"more\": true}");
        wait_stats(t, "pending", 1);
        close(c);
        wait_stats(t, "pending", 0); /* the disconnect callback dropped it */
        assert_true(stats_int(t, "disconnects") > before);

        _cleanup_(varlink_unrefp) Varlink *v = client_new(t);
        json_t *reply = NULL;
        call_ok(v, "io.nap.Test.Release", "{}", &reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "released")), 0);
}

/* socat-style: send, shut the write side, still get the reply. */
static void test_half_close_gets_reply(void **state) {
        int fd = raw_connect(((TestServer *) *state)->path);
        raw_send(fd, "{\"method\": \"io.nap.Test.Echo\", \"parameters\": {\"text\": \"half\"}}");
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
        json_auto_t *r = raw_recv(fd);
        assert_reply_string(r, "text", "half");
        assert_true(raw_closed(fd));
        close(fd);
}

static void test_client_timeout(void **state) {
        _cleanup_(varlink_unrefp) Varlink *v = client_new(*state);
        json_auto_t *p = json_pack("{s:s}", "token", "late");

        assert_int_equal(varlink_set_relative_timeout(v, 200 * 1000), 0);
        assert_int_equal(varlink_call(v, "io.nap.Test.Slow", p, NULL, NULL), -ETIMEDOUT);
        assert_false(varlink_is_connected(v));
        assert_int_equal(varlink_call(v, "io.nap.Test.Echo", p, NULL, NULL), -ENOTCONN);
}

/* In a forked child, as uid 65534: 0 if the server sees that uid. */
static int child_whoami(const char *path) {
        _cleanup_(varlink_unrefp) Varlink *c = NULL;
        json_t *reply = NULL;

        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                return 2;
        if (varlink_connect_address(&c, path) < 0 || varlink_call(c, "io.nap.Test.WhoAmI", NULL, &reply, NULL) < 0)
                return 3;
        return json_integer_value(json_object_get(reply, "uid")) == 65534 ? 0 : 4;
}

static void test_peer_uid(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *v = client_new(t);
        json_t *reply = NULL;

        call_ok(v, "io.nap.Test.WhoAmI", "{}", &reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "uid")), getuid());
        assert_int_equal(json_integer_value(json_object_get(reply, "pid")), getpid());
        if (geteuid() != 0)
                return;

        /* as another uid: the server sees that one */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                v = varlink_unref(v); /* the parent's; freed so valgrind sees no leak here */
                _exit(child_whoami(t->path));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_listen_address(void **state) {
        TestServer *t = *state;
        char path[96];

        /* a stale socket is replaced, a regular file is not */
        snprintf(path, sizeof path, "%s/second", t->dir);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        close(fd);
        _cleanup_(varlink_server_unrefp) VarlinkServer *s = NULL;
        assert_int_equal(varlink_server_new(&s, 0), 0);
        assert_int_equal(varlink_server_listen_address(s, path, 0600), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(unlink(path), 0);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        close(fd);
        assert_int_equal(varlink_server_listen_address(s, path, 0600), -EADDRINUSE);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(varlink_server_listen_address(s, "relative", 0600), -EINVAL);
        assert_int_equal(varlink_server_listen_fd(s, STDIN_FILENO), -EINVAL);
}

/* As under socket activation: the listening socket comes from outside. */
static void test_listen_fd(void **state) {
        TestServer *t = *state;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        json_t *reply = NULL;

        snprintf(t->dir, sizeof t->dir, "/tmp/test-varlink-XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        snprintf(t->path, sizeof t->path, "%s/activated", t->dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", t->path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(varlink_server_listen_fd(t->server, fd), -EINVAL); /* not listening yet */
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(varlink_server_listen_fd(t->server, fd), 0);
        server_run(t);

        _cleanup_(varlink_unrefp) Varlink *v = client_new(t);
        call_ok(v, "io.nap.Test.Echo", "{\"text\": \"activated\"}", &reply);
        assert_string_equal(json_string_value(json_object_get(reply, "text")), "activated");
        assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
}

/* ---- a server on a socketpair, and a client on the same event loop ---- */

static int server_setup_only(void **state) {
        TestServer *t = calloc(1, sizeof *t);
        server_new(t);
        *state = t;
        return 0;
}

static void test_socketpair(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *c = NULL;
        Varlink *link = NULL;
        json_t *reply = NULL;
        int fds[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(varlink_server_add_connection(t->server, fds[0], &link), 0);
        assert_non_null(link);
        assert_int_equal(varlink_connect_fd(&c, fds[1]), 0);
        server_run(t);
        call_ok(c, "org.varlink.service.GetInfo", "{}", &reply);
        assert_int_equal(json_array_size(json_object_get(reply, "interfaces")), 2);
        call_ok(c, "io.nap.Test.WhoAmI", "{}", &reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "uid")), getuid());
        call_ok(c, "io.nap.Test.Stats", "{}", &reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "connections")), 1);
}

static void test_async_same_loop(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *c = NULL;
        Observed o = {};
        int fds[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(varlink_server_add_connection(t->server, fds[0], NULL), 0);
        assert_int_equal(varlink_connect_fd(&c, fds[1]), 0);
        assert_int_equal(varlink_attach_event(c, t->event, 0), 0);
        varlink_set_userdata(c, &o);
        assert_int_equal(varlink_bind_reply(c, on_reply), 0);

        json_auto_t *p = json_pack("{s:i}", "count", 4);
        assert_int_equal(varlink_observe(c, "io.nap.Test.Stream", p), 0);
        for (unsigned i = 0; i < 1000 && !o.done; i++)
                assert_true(sd_event_run(t->event, 1000000) >= 0);
        assert_int_equal(o.replies, 4);
        assert_int_equal(o.last_index, 3);
        assert_string_equal(o.error, "");

        /* a deferred call, then the server goes away: the client is told */
        o = (Observed) {};
        json_auto_t *q = json_pack("{s:s}", "token", "x");
        assert_int_equal(varlink_invoke(c, "io.nap.Test.Slow", q), 0);
        for (unsigned i = 0; i < 1000 && t->n_slow == 0; i++)
                assert_true(sd_event_run(t->event, 1000000) >= 0);
        assert_int_equal(t->n_slow, 1);
        unsigned before = t->disconnects;
        assert_int_equal(varlink_server_shutdown(t->server), 0);
        assert_int_equal(t->disconnects, before + 1);
        assert_int_equal(t->n_slow, 0);
        for (unsigned i = 0; i < 1000 && !o.done; i++)
                assert_true(sd_event_run(t->event, 1000000) >= 0);
        assert_string_equal(o.error, VARLINK_ERROR_DISCONNECTED);
        assert_false(varlink_is_connected(c));
}

static void test_async_timeout(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *c = NULL;
        Observed o = {};
        int fds[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(varlink_server_add_connection(t->server, fds[0], NULL), 0);
        assert_int_equal(varlink_connect_fd(&c, fds[1]), 0);
        assert_int_equal(varlink_attach_event(c, t->event, 0), 0);
        assert_int_equal(varlink_set_relative_timeout(c, 50 * 1000), 0);
        varlink_set_userdata(c, &o);
        assert_int_equal(varlink_bind_reply(c, on_reply), 0);
        json_auto_t *q = json_pack("{s:s}", "token", "x");
        assert_int_equal(varlink_invoke(c, "io.nap.Test.Slow", q), 0);
        for (unsigned i = 0; i < 1000 && !o.done; i++)
                assert_true(sd_event_run(t->event, 1000000) >= 0);
        assert_string_equal(o.error, VARLINK_ERROR_TIMEOUT);
        /* the server notices the hang-up and drops the deferred call */
        for (unsigned i = 0; i < 1000 && t->n_slow > 0; i++)
                assert_true(sd_event_run(t->event, 1000000) >= 0);
        assert_int_equal(t->n_slow, 0);
}

static void test_connection_caps(void **state) {
        TestServer *t = *state;
        int fds[2][2];

        assert_int_equal(varlink_server_set_connections_max(t->server, 1), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[0]), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[1]), 0);
        assert_int_equal(varlink_server_add_connection(t->server, fds[0][0], NULL), 0);
        assert_int_equal(varlink_server_add_connection(t->server, fds[1][0], NULL), -ETOOMANYREFS);
        assert_int_equal(varlink_server_current_connections(t->server), 1);
        close(fds[1][0]); /* still ours after the refusal */
        close(fds[1][1]);
        close(fds[0][1]);
        for (unsigned i = 0; i < 100 && varlink_server_current_connections(t->server) > 0; i++)
                assert_true(sd_event_run(t->event, 1000000) >= 0);
        assert_int_equal(varlink_server_current_connections(t->server), 0);
        assert_int_equal(t->disconnects, 1);

        /* per uid, with VARLINK_SERVER_ACCOUNT_UID; and ROOT_ONLY */
        _cleanup_(varlink_server_unrefp) VarlinkServer *s = NULL;
        assert_int_equal(varlink_server_new(&s, VARLINK_SERVER_ACCOUNT_UID), 0);
        assert_int_equal(varlink_server_set_connections_per_uid_max(s, 1), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[0]), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[1]), 0);
        assert_int_equal(varlink_server_add_connection(s, fds[0][0], NULL), 0);
        assert_int_equal(varlink_server_add_connection(s, fds[1][0], NULL), -ETOOMANYREFS);
        close(fds[1][0]);
        close(fds[1][1]);
        close(fds[0][1]);
        _cleanup_(varlink_server_unrefp) VarlinkServer *root = NULL;
        assert_int_equal(varlink_server_new(&root, VARLINK_SERVER_ROOT_ONLY), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[0]), 0);
        assert_int_equal(varlink_server_add_connection(root, fds[0][0], NULL), getuid() == 0 ? 0 : -EPERM);
        if (getuid() != 0)
                close(fds[0][0]);
        close(fds[0][1]);
}

/* The server runs with connections_max, and one client is served. */
static Varlink *serve_under_cap(TestServer *t, unsigned connections_max) {
        json_t *reply = NULL;
        assert_int_equal(varlink_server_set_connections_max(t->server, connections_max), 0);
        server_listen(t);
        server_run(t);
        Varlink *a = client_new(t);
        call_ok(a, "io.nap.Test.Echo", "{\"text\": \"a\"}", &reply);
        return a;
}

/* The listener: over the cap, a connection is accepted and closed at once. */
static void test_connection_cap_listener(void **state) {
        TestServer *t = *state;
        _cleanup_(varlink_unrefp) Varlink *a = serve_under_cap(t, 2);
        json_t *reply = NULL;
        int b = raw_connect(t->path);
        raw_send(b, "{\"method\": \"io.nap.Test.Echo\", \"parameters\": {\"text\": \"b\"}}");
        json_auto_t *rb = raw_recv(b);
        assert_reply_string(rb, "text", "b");
        int c = raw_connect(t->path);
        assert_true(raw_closed(c));
        close(c);
        close(b);
        /* a place is free again once the server saw b go: until then the
         * Stats caller itself is refused */
        _cleanup_(varlink_unrefp) Varlink *v = NULL;
        for (unsigned i = 0; i < 500; i++) {
                v = varlink_unref(v);
                v = client_new(t);
                if (varlink_call(v, "io.nap.Test.Stats", NULL, &reply, NULL) == 0)
                        break;
                reply = NULL;
                usleep(10000);
        }
        assert_non_null(reply);
        assert_int_equal(json_integer_value(json_object_get(reply, "connections")), 2);
}

static json_t *refuse_too_many(VarlinkServer *s, const VarlinkRefusal *refusal, void *userdata) {
        return json_pack("{s:i, s:b}", "limit", (int) refusal->limit, "perUid", refusal->per_uid);
}

static void assert_too_many(json_t *reply, int limit, bool per_uid) {
        assert_non_null(reply);
        assert_string_equal(json_string_value(json_object_get(reply, "error")), "io.nap.Test.TooMany");
        json_t *p = json_object_get(reply, "parameters");
        assert_int_equal(json_integer_value(json_object_get(p, "limit")), limit);
        assert_int_equal(json_is_true(json_object_get(p, "perUid")), per_uid);
}

/* With a refuse callback, a connection over a cap is told why before the
 * close: a raw peer reads the error, a client's first call returns it. */
static void test_connection_cap_refusal(void **state) {
        TestServer *t = *state;
        assert_int_equal(varlink_server_bind_refuse(t->server, "no-dots", refuse_too_many), -EINVAL);
        assert_int_equal(varlink_server_bind_refuse(t->server, "io.nap.Test.TooMany", refuse_too_many), 0);
        _cleanup_(varlink_unrefp) Varlink *a = serve_under_cap(t, 1);
        json_t *reply = NULL;
        int c = raw_connect(t->path);
        json_auto_t *rc = raw_recv(c);
        assert_too_many(rc, 1, false);
        assert_true(raw_closed(c));
        close(c);
        /* told before it wrote: its call still goes out (no EPIPE), then
         * the server closes */
        c = raw_connect(t->path);
        json_auto_t *rc2 = raw_recv(c);
        assert_too_many(rc2, 1, false);
        const char call[] = "{\"method\": \"io.nap.Test.Echo\", \"parameters\": {\"text\": \"c\"}}";
        assert_int_equal(send(c, call, sizeof call, MSG_NOSIGNAL), (ssize_t) sizeof call);
        assert_true(raw_closed(c));
        close(c);
        _cleanup_(varlink_unrefp) Varlink *d = client_new(t);
        call_error(d, "io.nap.Test.Echo", "{\"text\": \"d\"}", "io.nap.Test.TooMany", NULL, NULL);
        assert_int_equal(varlink_call(d, "io.nap.Test.Echo", NULL, NULL, NULL), -ECONNRESET);
        call_ok(a, "io.nap.Test.Echo", "{\"text\": \"a again\"}", &reply);

        /* per uid, through varlink_server_add_connection() */
        _cleanup_(varlink_server_unrefp) VarlinkServer *s = NULL;
        int fds[2][2];
        assert_int_equal(varlink_server_new(&s, VARLINK_SERVER_ACCOUNT_UID), 0);
        assert_int_equal(varlink_server_set_connections_per_uid_max(s, 1), 0);
        assert_int_equal(varlink_server_bind_refuse(s, "io.nap.Test.TooMany", refuse_too_many), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[0]), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[1]), 0);
        assert_int_equal(varlink_server_add_connection(s, fds[0][0], NULL), 0);
        assert_int_equal(varlink_server_add_connection(s, fds[1][0], NULL), -ETOOMANYREFS);
        close(fds[1][0]);
        json_auto_t *r1 = raw_recv(fds[1][1]);
        assert_too_many(r1, 1, true);
        close(fds[1][1]);
        close(fds[0][1]);
}

/* A server that answered and hung up before the call could be written:
 * the call fails to be sent, its answer is read all the same. */
static void test_client_reads_answer_after_hangup(void **state) {
        _cleanup_(varlink_unrefp) Varlink *c = NULL;
        const char *error_id = NULL;
        json_t *reply = NULL;
        int fds[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(varlink_connect_fd(&c, fds[0]), 0);
        raw_send(fds[1], "{\"error\": \"io.nap.Test.TooMany\", \"parameters\": {\"limit\": 3, \"perUid\": true}}");
        close(fds[1]);
        assert_int_equal(varlink_call(c, "io.nap.Test.Echo", NULL, &reply, &error_id), 0);
        assert_string_equal(error_id, "io.nap.Test.TooMany");
        assert_int_equal(json_integer_value(json_object_get(reply, "limit")), 3);
        /* and then it is over */
        assert_int_equal(varlink_call(c, "io.nap.Test.Echo", NULL, NULL, NULL), -ECONNRESET);
}

static void test_client_protocol_errors(void **state) {
        static const char *const replies[] = {
                "{\"parameters\": {\"x\": 1}, \"continues\": true}", /* continues without more */
                "{\"error\": \"no-dots\"}",
                "{\"parameters\": 5}",
                "[]",
                "not json",
        };
        for (size_t i = 0; i < ELEMENTSOF(replies); i++) {
                _cleanup_(varlink_unrefp) Varlink *c = NULL;
                int fds[2];
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
                assert_int_equal(varlink_connect_fd(&c, fds[0]), 0);
                raw_send(fds[1], replies[i]);
                int r = varlink_call(c, "io.nap.Test.Echo", NULL, NULL, NULL);
                if (r != -EPROTO && r != -EBADMSG)
                        fail_msg("reply %s: r=%d", replies[i], r);
                assert_false(varlink_is_connected(c));
                close(fds[1]);
        }
        /* a server that hangs up */
        _cleanup_(varlink_unrefp) Varlink *c = NULL;
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(varlink_connect_fd(&c, fds[0]), 0);
        close(fds[1]);
        assert_int_equal(varlink_call(c, "io.nap.Test.Echo", NULL, NULL, NULL), -ECONNRESET);
        assert_int_equal(varlink_error_to_errno(VARLINK_ERROR_PERMISSION_DENIED, NULL), -EACCES);
        assert_int_equal(varlink_error_to_errno("io.nap.Manager.NoSuchService", NULL), -EBADR);
}

static void test_server_api_checks(void **state) {
        _cleanup_(varlink_server_unrefp) VarlinkServer *s = NULL;
        assert_int_equal(varlink_server_new(&s, 0), 0);
        assert_int_equal(varlink_server_add_interface(s, test_interface), 0);
        assert_int_equal(varlink_server_add_interface(s, test_interface), -EEXIST);
        assert_int_equal(varlink_server_add_interface(s, "interface broken"), -EBADMSG);
        assert_int_equal(varlink_server_bind_method(s, "io.nap.Test.Echo", method_echo), 0);
        assert_int_equal(varlink_server_bind_method(s, "io.nap.Test.Echo", method_echo), -EEXIST);
        assert_int_equal(varlink_server_bind_method(s, "Echo", method_echo), -EINVAL);
        assert_int_equal(varlink_server_bind_method(s, "org.varlink.service.GetInfo", method_echo), -EEXIST);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_idl_parse_good),
                cmocka_unit_test(test_idl_parse_bad),
                cmocka_unit_test(test_idl_parse_deep),
                cmocka_unit_test(test_idl_validate),
                cmocka_unit_test_setup_teardown(test_get_info, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_interface_description, setup, teardown),
                cmocka_unit_test_setup_teardown(test_call_good_params, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_method_interface, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_parameters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_system_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_broken_messages_close, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oversized_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_closed_mid_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oneway, setup, teardown),
                cmocka_unit_test_setup_teardown(test_more_raw, setup, teardown),
                cmocka_unit_test_setup_teardown(test_more_client, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_ordering, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_more, setup, teardown),
                cmocka_unit_test_setup_teardown(test_disconnect_notifies_deferred, setup, teardown),
                cmocka_unit_test_setup_teardown(test_half_close_gets_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peer_uid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_listen_address, setup, teardown),
                cmocka_unit_test_setup_teardown(test_listen_fd, server_setup_only, teardown),
                cmocka_unit_test_setup_teardown(test_socketpair, server_setup_only, teardown),
                cmocka_unit_test_setup_teardown(test_async_same_loop, server_setup_only, teardown),
                cmocka_unit_test_setup_teardown(test_async_timeout, server_setup_only, teardown),
                cmocka_unit_test_setup_teardown(test_connection_caps, server_setup_only, teardown),
                cmocka_unit_test_setup_teardown(test_connection_cap_listener, server_setup_only, teardown),
                cmocka_unit_test_setup_teardown(test_connection_cap_refusal, server_setup_only, teardown),
                cmocka_unit_test(test_client_reads_answer_after_hangup),
                cmocka_unit_test(test_client_protocol_errors),
                cmocka_unit_test(test_server_api_checks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
