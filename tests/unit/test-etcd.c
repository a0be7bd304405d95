/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* lib/etcd against a real etcd (Debian's /usr/bin/etcd) started here on
 * free loopback ports with its own data directory, plus its pure parts
 * (base64, answer parsers, stream framing) on fixed inputs. The live
 * tests are skipped only when /usr/bin/etcd is missing. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "base/base64.h"
#include "clients/etcd.h"

#include "base/clock.h"
#include "test-etcd-server.h"

/* A listening socket that never accepts: the kernel completes the TCP
 * handshake, then nothing ever answers. */
static int hung_listener(char url[static 64]) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        snprintf(url, 64, "http://127.0.0.1:%d", ntohs(sa.sin_port));
        return fd;
}

/* ---- pure parts --------------------------------------------------------- */

static void check_base64(const char *plain, size_t n, const char *encoded) {
        _cleanup_free_ char *b = NULL, *d = NULL;
        size_t dn;

        assert_int_equal(base64_encode(plain, n, &b), 0);
        assert_string_equal(b, encoded);
        assert_int_equal(base64_decode(b, strlen(b), &d, &dn), 0);
        assert_int_equal(dn, n);
        assert_memory_equal(d, plain, n);
        assert_int_equal(d[dn], 0);
}

static void test_base64(void **state) {
        /* RFC 4648 §10 vectors, and bytes with every bit pattern class. */
        check_base64("", 0, "");
        check_base64("f", 1, "Zg==");
        check_base64("fo", 2, "Zm8=");
        check_base64("foo", 3, "Zm9v");
        check_base64("foob", 4, "Zm9vYg==");
        check_base64("fooba", 5, "Zm9vYmE=");
        check_base64("foobar", 6, "Zm9vYmFy");
        check_base64("\0\xff\xfe\n", 4, "AP/+Cg==");

        _cleanup_free_ char *d = NULL;
        size_t n;
        assert_int_equal(base64_decode("Zm8", 3, &d, &n), 0); /* padding optional */
        assert_int_equal(n, 2);
        free(TAKE_PTR(d));
        assert_int_equal(base64_decode("Zm9v!", 5, &d, &n), -EINVAL);
        assert_int_equal(base64_decode("Zm9vY", 5, &d, &n), -EINVAL);   /* 1 char tail */
        assert_int_equal(base64_decode("Zm9=", 4, &d, &n), -EINVAL);    /* non-zero tail bits */
        assert_int_equal(base64_decode("Zg=", 3, &d, &n), -EINVAL);     /* half padding */
        assert_int_equal(base64_decode("Zm 9v", 5, &d, &n), -EINVAL);
        assert_null(d);
}

static void test_grpc_codes(void **state) {
        assert_int_equal(etcd_grpc_code_to_errno(5), -ENOENT);
        assert_int_equal(etcd_grpc_code_to_errno(3), -EINVAL);
        assert_int_equal(etcd_grpc_code_to_errno(4), -ETIMEDOUT);
        assert_int_equal(etcd_grpc_code_to_errno(14), -EAGAIN);
        assert_int_equal(etcd_grpc_code_to_errno(11), -ERANGE);
        assert_int_equal(etcd_grpc_code_to_errno(0), -EIO);
        assert_int_equal(etcd_grpc_code_to_errno(-3), -EIO);
        assert_int_equal(etcd_grpc_code_to_errno(999), -EIO);
        for (int t = 0; t < _ETCD_EVENT_TYPE_MAX; t++)
                assert_non_null(etcd_event_type_to_string(t));
        assert_null(etcd_event_type_to_string(_ETCD_EVENT_TYPE_MAX));
}

#define S(x) x, strlen(x)

static void test_parse_range(void **state) {
        _cleanup_(etcd_range_done) EtcdRange r = {};
        NapError e = NAP_ERROR_NULL;
        const char *text =
                "{\"header\":{\"cluster_id\":\"15118495548433857066\",\"revision\":\"9007199254740993\"},"
                "\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":3,\"version\":\"1\","
                "\"value\":\"AP8=\",\"lease\":\"7587869311541379339\"},{\"key\":\"Zm9vMg==\"}],"
                "\"more\":true,\"count\":\"5\"}";

        assert_int_equal(etcd_parse_range_response(S(text), &r, &e), 0);
        assert_false(nap_error_is_set(&e));
        assert_int_equal(r.revision, 9007199254740993LL); /* > 2^53: no double on the way */
        assert_int_equal(r.n_kvs, 2);
        assert_int_equal(r.count, 5);
        assert_true(r.more);
        assert_string_equal(r.kvs[0].key, "foo");
        assert_int_equal(r.kvs[0].value_size, 2);
        assert_memory_equal(r.kvs[0].value, "\0\xff", 2);
        assert_int_equal(r.kvs[0].create_revision, 2);
        assert_int_equal(r.kvs[0].mod_revision, 3);
        assert_int_equal(r.kvs[0].lease, 7587869311541379339LL);
        assert_string_equal(r.kvs[1].key, "foo2");
        assert_string_equal(r.kvs[1].value, ""); /* empty values are left out */

        etcd_range_done(&r);
        assert_int_equal(etcd_parse_range_response(S("{\"header\":{}}"), &r, &e), 0);
        assert_int_equal(r.n_kvs, 0);
}

static void test_parse_errors(void **state) {
        EtcdRange r = {};
        NapError e = NAP_ERROR_NULL;
        int64_t v;

        assert_int_equal(etcd_parse_range_response(S("{\"error\":\"etcdserver: requested lease not found\","
                                                     "\"message\":\"etcdserver: requested lease not found\",\"code\":5}"),
                                                   &r, &e), -ENOENT);
        assert_string_equal(e.message, "etcd: etcdserver: requested lease not found");
        e = NAP_ERROR_NULL;
        /* 3.5's form, and a control character kept out of the log line. */
        assert_int_equal(etcd_parse_put_response(S("{\"code\":3,\"message\":\"bad\\nthing\",\"details\":[]}"), &v, &e), -EINVAL);
        assert_string_equal(e.message, "etcd: bad?thing");
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_parse_put_response(S("{\"header\":"), &v, &e), -EBADMSG);
        assert_true(nap_error_is_set(&e));
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_parse_put_response(S("[]"), &v, &e), -EBADMSG);
        assert_int_equal(etcd_parse_range_response(S("{\"kvs\":[{\"key\":\"!!\"}]}"), &r, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_range_response(S("{\"count\":\"12x\"}"), &r, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_range_response(S("{\"count\":\"99999999999999999999\"}"), &r, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_range_response(S("{\"kvs\":{}}"), &r, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_error(S("<html>bad gateway</html>"), NULL), 0);
        assert_int_equal(etcd_parse_error(S("{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}\n{}"), NULL), -EAGAIN);
}

static void test_parse_lease(void **state) {
        NapError e = NAP_ERROR_NULL;
        int64_t id = 0, ttl = 0;

        assert_int_equal(etcd_parse_lease_grant_response(S("{\"header\":{},\"ID\":\"7587869311541379339\",\"TTL\":\"5\"}"),
                                                         &id, &ttl, &e), 0);
        assert_int_equal(id, 7587869311541379339LL);
        assert_int_equal(ttl, 5);
        assert_int_equal(etcd_parse_lease_grant_response(S("{\"header\":{},\"ID\":\"1\",\"TTL\":\"5\",\"error\":\"exists\"}"),
                                                         &id, &ttl, &e), -EIO);

        /* Keep-alive: a stream; the first line counts. */
        assert_int_equal(etcd_parse_keepalive_response(S("{\"result\":{\"header\":{},\"ID\":\"99\",\"TTL\":\"7\"}}\n"
                                                         "{\"result\":{\"ID\":\"99\"}}\n"), &ttl, NULL), 7);
        assert_int_equal(ttl, 7);
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_parse_keepalive_response(S("{\"result\":{\"header\":{},\"ID\":\"99\"}}\n"), &ttl, &e), -ENOENT);
        assert_string_equal(e.message, "etcd: lease 63 is lost (expired or revoked)");
        assert_int_equal(etcd_parse_keepalive_response(S("{\"result\":{\"ID\":\"99\",\"TTL\":\"0\"}}"), &ttl, NULL), -ENOENT);
        assert_int_equal(etcd_parse_keepalive_response(S("{\"result\":{\"ID\":\"99\",\"TTL\":\"-1\"}}"), &ttl, NULL), -ENOENT);
        assert_int_equal(etcd_parse_keepalive_response(S("{\"error\":{\"grpc_code\":5,\"message\":\"x\"}}"), &ttl, NULL), -ENOENT);
        assert_int_equal(etcd_parse_keepalive_response(S("{\"ID\":\"99\",\"TTL\":\"7\"}"), &ttl, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_keepalive_response(S(""), &ttl, NULL), -EBADMSG);
}

static void test_parse_watch(void **state) {
        _cleanup_(etcd_watch_response_done) EtcdWatchResponse w = {};

        assert_int_equal(etcd_parse_watch_line(S("{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}"), &w, NULL), 0);
        assert_true(w.created);
        assert_int_equal(w.revision, 5);
        assert_int_equal(w.n_events, 0);
        etcd_watch_response_done(&w);

        assert_int_equal(etcd_parse_watch_line(S("{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":["
                                                 "{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"6\",\"value\":\"eA==\"}},"
                                                 "{\"type\":\"DELETE\",\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"7\"}}]}}"),
                                               &w, NULL), 0);
        assert_int_equal(w.n_events, 2);
        assert_int_equal(w.events[0].type, ETCD_EVENT_PUT);
        assert_string_equal(w.events[0].kv.key, "a");
        assert_string_equal(w.events[0].kv.value, "x");
        assert_int_equal(w.events[1].type, ETCD_EVENT_DELETE);
        assert_int_equal(w.events[1].kv.mod_revision, 7);
        etcd_watch_response_done(&w);

        assert_int_equal(etcd_parse_watch_line(S("{\"result\":{\"canceled\":true,\"compact_revision\":\"7\"}}"), &w, NULL), 0);
        assert_true(w.canceled);
        assert_int_equal(w.compact_revision, 7);
        etcd_watch_response_done(&w);

        assert_int_equal(etcd_parse_watch_line(S("{\"result\":{\"events\":[{\"type\":\"EXPIRE\",\"kv\":{}}]}}"), &w, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_watch_line(S("{\"result\":{\"events\":[{\"kv\":[]}]}}"), &w, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_watch_line(S("{\"error\":{\"grpc_code\":14,\"message\":\"x\"}}"), &w, NULL), -EAGAIN);
}

static void test_parse_txn_ops(void **state) {
        EtcdKeyValue kvs[2];
        NapError e = NAP_ERROR_NULL;
        int64_t rev = 0;

        /* As etcd 3.4's gateway answers: ops applied, then a failed compare. */
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"header\":{\"revision\":\"6\"},\"succeeded\":true,\"responses\":["
                                                       "{\"response_put\":{\"header\":{\"revision\":\"6\"}}},"
                                                       "{\"response_delete_range\":{\"header\":{\"revision\":\"6\"},\"deleted\":\"1\"}}]}"),
                                                     2, NULL, &rev, &e), 1);
        assert_int_equal(rev, 6);
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"header\":{\"revision\":\"7\"}}"), 2, NULL, &rev, &e), 0);
        assert_int_equal(rev, 7);
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"header\":{\"revision\":\"7\"},\"succeeded\":true}"), 0, NULL, NULL, &e), 1);
        assert_false(nap_error_is_set(&e));

        /* Ranges moved out, absent keys zeroed. */
        memset(kvs, 0xaa, sizeof kvs);
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"header\":{\"revision\":\"6\"},\"succeeded\":true,\"responses\":["
                                                       "{\"response_range\":{\"header\":{\"revision\":\"6\"}}},"
                                                       "{\"response_range\":{\"kvs\":[{\"key\":\"YQ==\",\"value\":\"eA==\",\"mod_revision\":\"5\"}],\"count\":\"1\"}}]}"),
                                                     2, kvs, &rev, &e), 1);
        assert_null(kvs[0].key);
        assert_null(kvs[0].value);
        assert_string_equal(kvs[1].key, "a");
        assert_string_equal(kvs[1].value, "x");
        assert_int_equal(kvs[1].mod_revision, 5);
        etcd_key_value_done(&kvs[1]);

        /* Not what was sent: another count, or a non-range where ranges
         * were asked; nothing is left to free. */
        memset(kvs, 0xaa, sizeof kvs);
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}"),
                                                     2, NULL, NULL, &e), -EBADMSG);
        assert_non_null(strstr(e.message, "number of requests"));
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"succeeded\":true,\"responses\":["
                                                       "{\"response_range\":{\"kvs\":[{\"key\":\"YQ==\"}]}},{\"response_put\":{}}]}"),
                                                     2, kvs, NULL, NULL), -EBADMSG);
        assert_null(kvs[0].key);
        assert_null(kvs[1].key);
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"succeeded\":true,\"responses\":{}}"), 0, NULL, NULL, NULL), -EBADMSG);
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"header\":{\"revision\":\"x\"}}"), 0, NULL, NULL, NULL), -EBADMSG);
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_parse_txn_ops_response(S("{\"error\":\"etcdserver: duplicate key given in txn request\","
                                                       "\"message\":\"etcdserver: duplicate key given in txn request\",\"code\":3}"),
                                                     1, kvs, NULL, &e), -EINVAL);
        assert_string_equal(e.message, "etcd: etcdserver: duplicate key given in txn request");
}

typedef struct Lines {
        char seen[8][16];
        size_t n;
} Lines;

static int collect_line(const char *line, size_t len, void *userdata) {
        Lines *l = userdata;

        assert_true(l->n < ELEMENTSOF(l->seen));
        assert_true(len < sizeof l->seen[0]);
        memcpy(l->seen[l->n], line, len);
        l->seen[l->n++][len] = 0;
        return streq(l->seen[l->n - 1], "stop") ? 42 : 0;
}

static void test_line_buffer(void **state) {
        EtcdLineBuffer b = { .max = 8 };
        Lines l = {};

        /* Lines split at every byte boundary come out whole. */
        const char *in = "ab\r\n\ncdef\n12345678\ngh";
        for (size_t i = 0; in[i]; i++)
                assert_int_equal(etcd_line_buffer_feed(&b, in + i, 1, collect_line, &l), 0);
        assert_int_equal(l.n, 3);
        assert_string_equal(l.seen[0], "ab");
        assert_string_equal(l.seen[1], "cdef");
        assert_string_equal(l.seen[2], "12345678");
        assert_int_equal(b.size, 2); /* "gh" waits for its newline */

        /* Over the cap, whether in one piece or accumulated. */
        assert_int_equal(etcd_line_buffer_feed(&b, S("1234567"), collect_line, &l), -EMSGSIZE);
        b.size = 0;
        assert_int_equal(etcd_line_buffer_feed(&b, S("123456789\n"), collect_line, &l), -EMSGSIZE);
        /* A callback's non-zero return stops the feed and is returned. */
        l.n = 0;
        assert_int_equal(etcd_line_buffer_feed(&b, S("x\nstop\ny\n"), collect_line, &l), 42);
        assert_int_equal(l.n, 2);
        etcd_line_buffer_done(&b);
        assert_null(b.data);
}

static void test_client_new(void **state) {
        char *ok[] = { "http://127.0.0.1:1/", "https://etcd.example:2379", NULL };
        char *bad[] = { "127.0.0.1:2379", NULL };
        char *empty[] = { NULL };
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(etcd_client_new(ok, &c, &e), 0);
        assert_string_equal(etcd_client_endpoint(c), "http://127.0.0.1:1");
        assert_int_equal(c->timeout_usec, ETCD_TIMEOUT_USEC_DEFAULT);
        assert_int_equal(c->connect_timeout_usec, ETCD_CONNECT_TIMEOUT_USEC_DEFAULT);
        assert_int_equal(c->max_response_size, ETCD_MAX_RESPONSE_SIZE_DEFAULT);

        EtcdClient *d = NULL;
        assert_int_equal(etcd_client_new(bad, &d, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_CONFIG);
        assert_non_null(strstr(e.message, "127.0.0.1:2379"));
        assert_int_equal(etcd_client_new(empty, &d, NULL), -EINVAL);
        assert_int_equal(etcd_client_new(NULL, &d, NULL), -EINVAL);
        assert_null(d);
        assert_null(etcd_client_free(NULL));
}

/* ---- against a real etcd ---------------------------------------------- */

static void put_ok(EtcdClient *c, const char *key, const void *value, size_t size, int64_t lease) {
        NapError e = NAP_ERROR_NULL;
        int64_t rev = 0;
        int r = etcd_put(c, key, value, size, lease, &rev, &e);

        if (r < 0)
                fail_msg("put %s: %s", key, e.message);
        assert_true(rev > 0);
}

static int get_value(EtcdClient *c, const char *key, EtcdKeyValue *kv) {
        NapError e = NAP_ERROR_NULL;
        int r = etcd_get(c, key, kv, &e);

        if (r < 0)
                fail_msg("get %s: %s", key, e.message);
        return r;
}

static void test_put_get(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        static const char binary[] = { 0, (char) 0xff, '\n', '"', '\\', 0x01, (char) 0x80, 0 };
        const char *utf8 = "{\"host\":\"höst\",\"note\":\"ключ ✓\"}";
        EtcdKeyValue kv = {};

        put_ok(c, "/services/alice_web/h:1", binary, sizeof binary, 0);
        assert_int_equal(get_value(c, "/services/alice_web/h:1", &kv), 1);
        assert_string_equal(kv.key, "/services/alice_web/h:1");
        assert_int_equal(kv.value_size, sizeof binary);
        assert_memory_equal(kv.value, binary, sizeof binary);
        assert_true(kv.mod_revision > 0);
        assert_int_equal(kv.create_revision, kv.mod_revision);
        assert_int_equal(kv.version, 1);
        etcd_key_value_done(&kv);

        put_ok(c, "/ключ/ü/ä", utf8, strlen(utf8), 0);
        assert_int_equal(get_value(c, "/ключ/ü/ä", &kv), 1);
        assert_string_equal(kv.key, "/ключ/ü/ä");
        assert_string_equal(kv.value, utf8);
        etcd_key_value_done(&kv);

        /* Overwrite with an empty value: present, empty, version 2. */
        put_ok(c, "/ключ/ü/ä", "", 0, 0);
        assert_int_equal(get_value(c, "/ключ/ü/ä", &kv), 1);
        assert_int_equal(kv.value_size, 0);
        assert_int_equal(kv.version, 2);
        etcd_key_value_done(&kv);

        assert_int_equal(get_value(c, "/no/such/key", &kv), 0);
        assert_null(kv.key);
        assert_int_equal(get_value(c, "/ключ/ü", NULL), 0); /* a prefix is not the key */
}

static void test_range_delete(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        _cleanup_(etcd_range_done) EtcdRange r = {};
        NapError e = NAP_ERROR_NULL;
        int64_t deleted = -1;

        put_ok(c, "/range/b", "2", 1, 0);
        put_ok(c, "/range/a", "1", 1, 0);
        put_ok(c, "/range/c/deep", "3", 1, 0);
        put_ok(c, "/range0", "outside", 7, 0);   /* '0' follows '/': just past the prefix */
        put_ok(c, "/rang", "outside", 7, 0);

        assert_int_equal(etcd_range_prefix(c, "/range/", 0, false, &r, &e), 0);
        assert_int_equal(r.n_kvs, 3);
        assert_int_equal(r.count, 3);
        assert_false(r.more);
        assert_string_equal(r.kvs[0].key, "/range/a");
        assert_string_equal(r.kvs[0].value, "1");
        assert_string_equal(r.kvs[1].key, "/range/b");
        assert_string_equal(r.kvs[2].key, "/range/c/deep");
        assert_true(r.revision >= r.kvs[2].mod_revision);
        etcd_range_done(&r);

        assert_int_equal(etcd_range_prefix(c, "/range/", 2, true, &r, &e), 0);
        assert_int_equal(r.n_kvs, 2);
        assert_int_equal(r.count, 3);
        assert_true(r.more);
        assert_int_equal(r.kvs[0].value_size, 0); /* keys only */
        etcd_range_done(&r);

        assert_int_equal(etcd_range_prefix(c, "", 0, true, &r, &e), 0); /* every key */
        assert_true(r.n_kvs >= 5);
        etcd_range_done(&r);

        assert_int_equal(etcd_delete(c, "/range/a", false, &deleted, &e), 0);
        assert_int_equal(deleted, 1);
        assert_int_equal(etcd_delete(c, "/range/a", false, &deleted, &e), 0);
        assert_int_equal(deleted, 0);
        assert_int_equal(etcd_delete(c, "/range/", true, &deleted, &e), 0);
        assert_int_equal(deleted, 2);
        assert_int_equal(etcd_range_prefix(c, "/range/", 0, false, &r, &e), 0);
        assert_int_equal(r.n_kvs, 0);
        assert_int_equal(get_value(c, "/range0", NULL), 1);
        assert_int_equal(get_value(c, "/rang", NULL), 1);
        assert_false(nap_error_is_set(&e));
}

static void test_txn(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        NapError e = NAP_ERROR_NULL;
        EtcdKeyValue cur = {};

        /* Create if absent: once. */
        assert_int_equal(etcd_create(c, "/txn/k", "first", 5, 0, &cur, &e), 1);
        assert_null(cur.key);
        assert_int_equal(etcd_create(c, "/txn/k", "second", 6, 0, &cur, &e), 0);
        assert_string_equal(cur.value, "first");
        int64_t rev = cur.mod_revision;
        etcd_key_value_done(&cur);

        /* Compare value. */
        EtcdCompare cv = { .target = ETCD_COMPARE_VALUE, .value = "nope", .value_size = 4 };
        assert_int_equal(etcd_txn_cas(c, "/txn/k", &cv, "x", 1, 0, &cur, &e), 0);
        assert_string_equal(cur.value, "first");
        etcd_key_value_done(&cur);
        cv.value = "first";
        cv.value_size = 5;
        assert_int_equal(etcd_txn_cas(c, "/txn/k", &cv, "third", 5, 0, NULL, &e), 1);

        /* Compare mod_revision: the old one no longer matches. */
        EtcdCompare cm = { .target = ETCD_COMPARE_MOD_REVISION, .revision = rev };
        assert_int_equal(etcd_txn_cas(c, "/txn/k", &cm, "fourth", 6, 0, &cur, &e), 0);
        assert_string_equal(cur.value, "third");
        cm.revision = cur.mod_revision;
        etcd_key_value_done(&cur);
        assert_int_equal(etcd_txn_cas(c, "/txn/k", &cm, "fourth", 6, 0, NULL, &e), 1);
        assert_int_equal(get_value(c, "/txn/k", &cur), 1);
        assert_string_equal(cur.value, "fourth");
        etcd_key_value_done(&cur);

        /* Failed compare on an absent key: nothing current. */
        assert_int_equal(etcd_txn_cas(c, "/txn/absent", &cv, "x", 1, 0, &cur, &e), 0);
        assert_null(cur.key);
        assert_int_equal(get_value(c, "/txn/absent", NULL), 0);
        assert_false(nap_error_is_set(&e));
}

static void assert_value(EtcdClient *c, const char *key, const char *value) {
        EtcdKeyValue kv = {};

        if (!value) {
                assert_int_equal(get_value(c, key, NULL), 0);
                return;
        }
        assert_int_equal(get_value(c, key, &kv), 1);
        assert_string_equal(kv.value, value);
        etcd_key_value_done(&kv);
}

static int64_t mod_revision(EtcdClient *c, const char *key) {
        EtcdKeyValue kv = {};
        int64_t rev;

        assert_int_equal(get_value(c, key, &kv), 1);
        rev = kv.mod_revision;
        etcd_key_value_done(&kv);
        return rev;
}

static void test_txn_many(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        NapError e = NAP_ERROR_NULL;
        EtcdKeyValue kv = {};
        int64_t lease = 0, rev = 0;

        put_ok(c, "/inv/node/a", "free", 4, 0);
        put_ok(c, "/inv/old", "x", 1, 0);
        int64_t rev_a = mod_revision(c, "/inv/node/a");
        assert_int_equal(etcd_lease_grant(c, 60, &lease, NULL, &e), 0);

        /* Every compare holds (value, mod revision, absent key): every op
         * runs, in one revision. */
        EtcdTxnCompare cmp[] = {
                { .key = "/inv/node/a", .target = ETCD_COMPARE_VALUE, .value = "free", .value_size = 4 },
                { .key = "/inv/node/a", .target = ETCD_COMPARE_MOD_REVISION, .revision = rev_a },
                { .key = "/inv/resv/1", .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 },
        };
        EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_PUT, .key = "/inv/node/a", .value = "taken", .value_size = 5 },
                { .type = ETCD_TXN_PUT, .key = "/inv/resv/1", .value = "a", .value_size = 1, .lease = lease },
                { .type = ETCD_TXN_DELETE, .key = "/inv/old" },
                { .type = ETCD_TXN_DELETE, .key = "/inv/never" },
                { .type = ETCD_TXN_PUT, .key = "/inv/empty" },
        };
        assert_int_equal(etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), &rev, &e), 1);
        assert_false(nap_error_is_set(&e));
        assert_int_equal(get_value(c, "/inv/resv/1", &kv), 1);
        assert_string_equal(kv.value, "a");
        assert_int_equal(kv.lease, lease);
        assert_int_equal(kv.mod_revision, rev);
        etcd_key_value_done(&kv);
        assert_int_equal(get_value(c, "/inv/node/a", &kv), 1);
        assert_string_equal(kv.value, "taken");
        assert_int_equal(kv.lease, 0);
        assert_int_equal(kv.mod_revision, rev);
        etcd_key_value_done(&kv);
        assert_value(c, "/inv/old", NULL);
        assert_value(c, "/inv/empty", "");

        /* Run again: the mod revision has changed and the key now exists,
         * so one compare after another fails, and nothing is applied. */
        put_ok(c, "/inv/old", "back", 4, 0);
        ops[0].value = "again";
        ops[1].value = "b";
        cmp[0].value = "taken";
        cmp[0].value_size = 5;
        int64_t rev_fail = 0;
        assert_int_equal(etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), &rev_fail, &e), 0);
        assert_true(rev_fail > rev);
        cmp[1].revision = rev;
        assert_int_equal(etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), NULL, &e), 0);
        cmp[2].key = "/inv/resv/2";
        assert_int_equal(etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), &rev, &e), 1);
        assert_value(c, "/inv/node/a", "again");
        assert_value(c, "/inv/old", NULL);
        cmp[1].revision = rev;
        cmp[2] = (EtcdTxnCompare) { .key = "/inv/resv/1", .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 };
        ops[2].key = "/inv/node/a";
        ops[0].key = "/inv/other";
        assert_int_equal(etcd_txn(c, cmp, ELEMENTSOF(cmp), ops, ELEMENTSOF(ops), &rev_fail, &e), 0);
        assert_int_equal(rev_fail, rev); /* nothing written */
        assert_value(c, "/inv/node/a", "again");
        assert_value(c, "/inv/resv/1", "b");
        assert_value(c, "/inv/other", NULL);
        assert_false(nap_error_is_set(&e));

        /* No compares: always applies; no ops: only compares. */
        assert_int_equal(etcd_txn(c, NULL, 0, ops + 3, 1, NULL, &e), 1);
        assert_int_equal(etcd_txn(c, cmp + 2, 1, NULL, 0, &rev_fail, &e), 0);
        assert_int_equal(rev_fail, rev);

        /* etcd's own refusal: one key put twice. Nothing applied. */
        EtcdTxnOp twice[] = {
                { .type = ETCD_TXN_PUT, .key = "/inv/twice", .value = "1", .value_size = 1 },
                { .type = ETCD_TXN_PUT, .key = "/inv/twice", .value = "2", .value_size = 1 },
        };
        assert_int_equal(etcd_txn(c, NULL, 0, twice, 2, NULL, &e), -EINVAL);
        assert_non_null(strstr(e.message, "duplicate key"));
        assert_value(c, "/inv/twice", NULL);
        assert_int_equal(etcd_lease_revoke(c, lease, NULL), 0);
        assert_value(c, "/inv/resv/1", NULL);
}

/* Refused before sending: the client's one endpoint listens nowhere, so
 * anything sent would be -ECONNREFUSED. 128 ops still go through. */
static void test_txn_limits(void **state) {
        REQUIRE_ETCD();
        char dead[64];
        snprintf(dead, sizeof dead, "http://127.0.0.1:%d", free_port());
        _cleanup_(etcd_client_freep) EtcdClient *d = client_for(dead);
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        static EtcdTxnOp ops[ETCD_TXN_OPS_MAX + 1];
        static EtcdTxnCompare cmp[ETCD_TXN_OPS_MAX + 1];
        static char keys[ETCD_TXN_OPS_MAX + 1][16];
        char *many[ETCD_TXN_OPS_MAX + 2] = {};
        EtcdKeyValue kvs[ETCD_TXN_OPS_MAX + 1];
        NapError e = NAP_ERROR_NULL;
        EtcdRange r = {};

        for (size_t i = 0; i <= ETCD_TXN_OPS_MAX; i++) {
                snprintf(keys[i], sizeof keys[i], "/lim/%03zu", i);
                ops[i] = (EtcdTxnOp) { .type = ETCD_TXN_PUT, .key = keys[i], .value = "v", .value_size = 1 };
                cmp[i] = (EtcdTxnCompare) { .key = keys[i], .target = ETCD_COMPARE_CREATE_REVISION };
                many[i] = keys[i];
        }
        assert_int_equal(etcd_txn(d, NULL, 0, ops, ETCD_TXN_OPS_MAX + 1, NULL, &e), -E2BIG);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_non_null(strstr(e.message, "at most 128"));
        assert_int_equal(etcd_txn(c, NULL, 0, ops, ETCD_TXN_OPS_MAX + 1, NULL, NULL), -E2BIG);
        assert_int_equal(etcd_txn(c, cmp, ETCD_TXN_OPS_MAX + 1, ops, 1, NULL, NULL), -E2BIG);
        assert_int_equal(etcd_get_many(d, many, kvs, NULL, NULL), -E2BIG);
        assert_int_equal(etcd_range_prefix(c, "/lim/", 0, true, &r, NULL), 0);
        assert_int_equal(r.n_kvs, 0);
        etcd_range_done(&r);

        /* At the limit, compares and ops alike: applied. */
        assert_int_equal(etcd_txn(c, cmp, ETCD_TXN_OPS_MAX, ops, ETCD_TXN_OPS_MAX, NULL, &e), 1);
        assert_int_equal(etcd_range_prefix(c, "/lim/", 0, true, &r, NULL), 0);
        assert_int_equal(r.n_kvs, ETCD_TXN_OPS_MAX);
        etcd_range_done(&r);
        many[ETCD_TXN_OPS_MAX] = NULL;
        assert_int_equal(etcd_get_many(c, many, kvs, NULL, &e), ETCD_TXN_OPS_MAX);
        for (size_t i = 0; i < ETCD_TXN_OPS_MAX; i++) {
                assert_string_equal(kvs[i].key, keys[i]);
                etcd_key_value_done(&kvs[i]);
        }

        /* Bad arguments, each named. */
        EtcdTxnOp bad_op[] = {
                { .type = _ETCD_TXN_OP_TYPE_MAX, .key = "/k" },
                { .type = -1, .key = "/k" },
                { .type = ETCD_TXN_DELETE, .key = NULL },
                { .type = ETCD_TXN_PUT, .key = "" },
                { .type = ETCD_TXN_PUT, .key = "/k", .value = NULL, .value_size = 1 },
        };
        const char *why_op[] = { "unknown type", "unknown type", "no key", "no key", "no value" };
        for (size_t i = 0; i < ELEMENTSOF(bad_op); i++) {
                EtcdTxnOp two[] = { ops[0], bad_op[i] };
                e = NAP_ERROR_NULL;
                assert_int_equal(etcd_txn(d, NULL, 0, two, 2, NULL, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
                assert_non_null(strstr(e.message, "txn op 1"));
                assert_non_null(strstr(e.message, why_op[i]));
        }
        EtcdTxnCompare bad_cmp[] = {
                { .key = "/k", .target = _ETCD_COMPARE_TARGET_MAX },
                { .key = NULL, .target = ETCD_COMPARE_MOD_REVISION },
                { .key = "/k", .target = ETCD_COMPARE_VALUE, .value = NULL, .value_size = 3 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_cmp); i++) {
                e = NAP_ERROR_NULL;
                assert_int_equal(etcd_txn(d, bad_cmp + i, 1, NULL, 0, NULL, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
                assert_non_null(strstr(e.message, "compare 0"));
        }
        assert_string_equal(e.message, "Invalid etcd compare 0: no value");
        assert_int_equal(etcd_txn(d, NULL, 1, NULL, 0, NULL, NULL), -EINVAL);
        assert_int_equal(etcd_txn(d, NULL, 0, NULL, 1, NULL, NULL), -EINVAL);
        char *empty_key[] = { "/k", "", NULL };
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_get_many(d, empty_key, kvs, NULL, &e), -EINVAL);
        assert_string_equal(e.message, "Invalid etcd read 1: no key");
        const EtcdCompare bad_target = { .target = -1 };
        assert_int_equal(etcd_txn_cas(d, "/k", &bad_target, "v", 1, 0, NULL, NULL), -EINVAL);
        /* Well-formed, the same goes out and finds nobody. */
        assert_int_equal(etcd_txn(d, cmp, 1, ops, 1, NULL, NULL), -ECONNREFUSED);
        assert_int_equal(etcd_delete(c, "/lim/", true, NULL, NULL), 0);
}

static void test_get_many(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        char *keys[] = { "/many/a", "/many/absent", "/many/b", "/many/a", NULL };
        EtcdKeyValue kvs[4];
        NapError e = NAP_ERROR_NULL;
        int64_t rev = 0, rev_b = 0, rev2 = 0;

        put_ok(c, "/many/a", "1", 1, 0);
        assert_int_equal(etcd_put(c, "/many/b", "2", 1, 0, &rev_b, &e), 0);
        assert_int_equal(etcd_get_many(c, keys, kvs, &rev, &e), 3);
        assert_int_equal(rev, rev_b); /* the store as it was, all at once */
        assert_string_equal(kvs[0].key, "/many/a");
        assert_string_equal(kvs[0].value, "1");
        assert_null(kvs[1].key);
        assert_null(kvs[1].value);
        assert_string_equal(kvs[2].value, "2");
        assert_int_equal(kvs[2].mod_revision, rev_b);
        assert_string_equal(kvs[3].key, "/many/a");
        for (size_t i = 0; i < ELEMENTSOF(kvs); i++)
                etcd_key_value_done(&kvs[i]);

        /* A later write moves the revision; nothing read: just the revision. */
        put_ok(c, "/many/a", "3", 1, 0);
        assert_int_equal(etcd_get_many(c, NULL, NULL, &rev2, &e), 0);
        assert_int_equal(rev2, rev + 1);
        char *none[] = { NULL };
        assert_int_equal(etcd_get_many(c, none, kvs, &rev2, &e), 0);
        assert_false(nap_error_is_set(&e));
}

static void test_lease_keepalive_revoke(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        NapError e = NAP_ERROR_NULL;
        int64_t id = 0, ttl = 0;
        EtcdKeyValue kv = {};

        assert_int_equal(etcd_lease_grant(c, 2, &id, &ttl, &e), 0);
        assert_true(id != 0);
        assert_int_equal(ttl, 2);
        put_ok(c, "/lease/kept", "v", 1, id);
        assert_int_equal(get_value(c, "/lease/kept", &kv), 1);
        assert_int_equal(kv.lease, id);
        etcd_key_value_done(&kv);

        /* 3 s > TTL, kept alive every 0.5 s: still there. */
        for (int i = 0; i < 6; i++) {
                usleep(500 * 1000);
                assert_int_equal(etcd_lease_keepalive(c, id, &ttl, &e), 2);
                assert_int_equal(ttl, 2);
        }
        assert_int_equal(get_value(c, "/lease/kept", NULL), 1);

        /* Revoke: gone at once, and the lease is reported lost after. */
        assert_int_equal(etcd_lease_revoke(c, id, &e), 0);
        assert_int_equal(get_value(c, "/lease/kept", NULL), 0);
        assert_false(nap_error_is_set(&e));
        assert_int_equal(etcd_lease_keepalive(c, id, &ttl, &e), -ENOENT);
        assert_non_null(strstr(e.message, "lost"));
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_lease_revoke(c, id, &e), -ENOENT);
        assert_non_null(strstr(e.message, "lease not found"));
        e = NAP_ERROR_NULL;
        /* A put on a lease that is gone is refused with etcd's reason. */
        assert_int_equal(etcd_put(c, "/lease/kept", "v", 1, id, NULL, &e), -ENOENT);
        assert_non_null(strstr(e.message, "requested lease not found"));
        assert_non_null(strstr(e.message, shared_etcd.url));
}

static void test_lease_expiry(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        NapError e = NAP_ERROR_NULL;
        int64_t id = 0, ttl = 0;
        uint64_t t0 = monotonic_usec(), gone = 0;

        assert_int_equal(etcd_lease_grant(c, 2, &id, &ttl, &e), 0);
        put_ok(c, "/lease/expiring", "v", 1, id);
        assert_int_equal(get_value(c, "/lease/expiring", NULL), 1);
        while (monotonic_usec() - t0 < 4 * 1000000ULL) {
                if (get_value(c, "/lease/expiring", NULL) == 0) {
                        gone = monotonic_usec() - t0;
                        break;
                }
                usleep(50 * 1000);
        }
        print_message("lease TTL 2 s: key gone after %.2f s\n", gone / 1e6);
        assert_true(gone > 1000000ULL);            /* not before the TTL (minus slack) */
        assert_true(gone <= 3000000ULL);           /* within TTL + 1 s */
        assert_int_equal(etcd_lease_keepalive(c, id, &ttl, &e), -ENOENT);
        assert_int_equal(e.errnum, ENOENT);
}

static void test_failover(void **state) {
        REQUIRE_ETCD();
        char dead[64];
        snprintf(dead, sizeof dead, "http://127.0.0.1:%d", free_port());
        char *endpoints[] = { dead, shared_etcd.url, NULL };
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(etcd_client_new(endpoints, &c, &e), 0);
        c->connect_timeout_usec = 1000000;
        c->timeout_usec = 2000000;
        uint64_t t0 = monotonic_usec();
        put_ok(c, "/failover", "ok", 2, 0);
        uint64_t took = monotonic_usec() - t0;
        print_message("failover from a dead port: %.1f ms\n", took / 1e3);
        assert_true(took < c->connect_timeout_usec);
        assert_string_equal(etcd_client_endpoint(c), shared_etcd.url); /* remembered */
        assert_int_equal(get_value(c, "/failover", NULL), 1);
        assert_string_equal(etcd_client_endpoint(c), shared_etcd.url);

        /* All dead: the error names the endpoint and the cause. */
        char *all_dead[] = { dead, NULL };
        _cleanup_(etcd_client_freep) EtcdClient *d = NULL;
        assert_int_equal(etcd_client_new(all_dead, &d, &e), 0);
        assert_int_equal(etcd_get(d, "/failover", NULL, &e), -ECONNREFUSED);
        assert_int_equal(e.kind, NAP_ERROR_NOT_AVAILABLE);
        assert_non_null(strstr(e.message, dead));
}

/* An endpoint that accepts and never answers: reads fail over after the
 * total timeout; a txn, once sent, must not be retried elsewhere. */
static void test_timeout_hung_endpoint(void **state) {
        REQUIRE_ETCD();
        char hung[64];
        _cleanup_close_ int fd = hung_listener(hung);
        char *endpoints[] = { hung, shared_etcd.url, NULL };
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_true(fd >= 0);
        assert_int_equal(etcd_client_new(endpoints, &c, &e), 0);
        c->timeout_usec = 300000;
        uint64_t t0 = monotonic_usec();
        assert_int_equal(etcd_create(c, "/hung/txn", "x", 1, 0, NULL, &e), -ETIMEDOUT);
        uint64_t took = monotonic_usec() - t0;
        print_message("txn to a hung endpoint: -ETIMEDOUT after %.1f ms (timeout 300 ms)\n", took / 1e3);
        assert_true(took >= 250000 && took < 1500000);
        assert_non_null(strstr(e.message, hung));
        assert_int_equal(get_value(c, "/hung/txn", NULL), 0); /* the get failed over */
        assert_string_equal(etcd_client_endpoint(c), shared_etcd.url);

        /* The same for a general txn; etcd_get_many() only reads: it fails over. */
        _cleanup_(etcd_client_freep) EtcdClient *d = NULL;
        const EtcdTxnOp op = { .type = ETCD_TXN_PUT, .key = "/hung/txn", .value = "x", .value_size = 1 };
        char *keys[] = { "/hung/txn", NULL };
        EtcdKeyValue kv;

        assert_int_equal(etcd_client_new(endpoints, &d, &e), 0);
        d->timeout_usec = 300000;
        assert_int_equal(etcd_txn(d, NULL, 0, &op, 1, NULL, &e), -ETIMEDOUT);
        assert_string_equal(etcd_client_endpoint(d), hung);
        assert_int_equal(etcd_get_many(d, keys, &kv, NULL, &e), 0);
        assert_null(kv.key);
        assert_string_equal(etcd_client_endpoint(d), shared_etcd.url);
}

static void test_response_cap(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        _cleanup_free_ char *big = malloc(64 * 1024);
        NapError e = NAP_ERROR_NULL;

        assert_non_null(big);
        memset(big, 'B', 64 * 1024);
        put_ok(c, "/cap/big", big, 64 * 1024, 0);
        c->max_response_size = 16 * 1024;
        assert_int_equal(etcd_get(c, "/cap/big", NULL, &e), -EMSGSIZE);
        assert_non_null(strstr(e.message, "larger than 16384 bytes"));
        /* Small answers still fit; the client stays usable. */
        assert_int_equal(get_value(c, "/no/such/key", NULL), 0);
        c->max_response_size = ETCD_MAX_RESPONSE_SIZE_DEFAULT;
        EtcdKeyValue kv = {};
        assert_int_equal(get_value(c, "/cap/big", &kv), 1);
        assert_int_equal(kv.value_size, 64 * 1024);
        etcd_key_value_done(&kv);
}

/* ---- watch -------------------------------------------------------------- */

typedef struct Watcher {
        const char *url;
        const char *key;
        EtcdWatchOptions o;
        size_t stop_after;             /* events */
        volatile sig_atomic_t cancel;
        volatile sig_atomic_t synced;
        int64_t sync_revision;
        EtcdEventType types[8];
        char keys[8][32];
        char values[8][32];
        int64_t revisions[8];
        size_t n;
        int r;
        int64_t next;
        NapError e;
        uint64_t ended;
} Watcher;

static int watcher_event(const EtcdEvent *ev, void *userdata) {
        Watcher *w = userdata;

        if (w->n >= ELEMENTSOF(w->types))
                return -E2BIG;
        w->types[w->n] = ev->type;
        snprintf(w->keys[w->n], sizeof w->keys[0], "%s", ev->kv.key);
        snprintf(w->values[w->n], sizeof w->values[0], "%s", ev->kv.value);
        w->revisions[w->n] = ev->kv.mod_revision;
        w->n++;
        return w->n >= w->stop_after ? 1 : 0;
}

static int watcher_sync(int64_t revision, void *userdata) {
        Watcher *w = userdata;

        w->sync_revision = revision;
        w->synced = 1;
        return 0;
}

static void watcher_init(Watcher *w, const char *url, const char *key, size_t stop_after) {
        *w = (Watcher) {
                .url = url, .key = key, .stop_after = stop_after,
                .o = { .prefix = true, .duration_usec = 10000000, .on_event = watcher_event,
                       .on_sync = watcher_sync, .userdata = w },
        };
        w->o.cancel = &w->cancel;
}

static void *watcher_run(void *userdata) {
        Watcher *w = userdata;
        EtcdClient *c = client_for(w->url);

        w->r = etcd_watch(c, w->key, &w->o, &w->next, &w->e);
        w->ended = monotonic_usec();
        etcd_client_free(c);
        return NULL;
}

static void wait_synced(Watcher *w) {
        for (int i = 0; i < 500 && !w->synced; i++)
                usleep(10 * 1000);
        assert_true(w->synced);
}

static void test_watch_other_client(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        NapError e = NAP_ERROR_NULL;
        int64_t rev_put = 0;
        pthread_t t;
        Watcher w;

        watcher_init(&w, shared_etcd.url, "/watch/", 2);
        assert_int_equal(pthread_create(&t, NULL, watcher_run, &w), 0);
        wait_synced(&w);
        put_ok(c, "/watchers", "outside", 7, 0);
        assert_int_equal(etcd_put(c, "/watch/a", "hello", 5, 0, &rev_put, &e), 0);
        assert_int_equal(etcd_delete(c, "/watch/a", false, NULL, &e), 0);
        assert_int_equal(pthread_join(t, NULL), 0);

        if (w.r < 0)
                fail_msg("watch: %s", w.e.message);
        assert_int_equal(w.r, 1); /* stopped by the callback */
        assert_true(w.sync_revision > 0 && w.sync_revision < rev_put);
        assert_int_equal(w.n, 2);
        assert_int_equal(w.types[0], ETCD_EVENT_PUT);
        assert_string_equal(w.keys[0], "/watch/a");
        assert_string_equal(w.values[0], "hello");
        assert_int_equal(w.revisions[0], rev_put);
        assert_int_equal(w.types[1], ETCD_EVENT_DELETE);
        assert_string_equal(w.keys[1], "/watch/a");
        assert_int_equal(w.revisions[1], rev_put + 1);
        assert_int_equal(w.next, rev_put + 2);
}

static void test_watch_from_revision_and_compaction(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        NapError e = NAP_ERROR_NULL;
        int64_t rev = 0, last = 0;
        char url[128], body[64], out[64];
        Watcher w;

        assert_int_equal(etcd_put(c, "/wr/a", "1", 1, 0, &rev, &e), 0);
        put_ok(c, "/wr/b", "2", 1, 0);
        assert_int_equal(etcd_delete(c, "/wr/a", false, NULL, &e), 0);
        assert_int_equal(etcd_put(c, "/other", "x", 1, 0, &last, &e), 0);

        /* History replays in order, in this thread, without a writer. */
        watcher_init(&w, shared_etcd.url, "/wr/", 3);
        w.o.start_revision = rev;
        assert_int_equal(etcd_watch(c, "/wr/", &w.o, &w.next, &e), 1);
        assert_int_equal(w.n, 3);
        assert_string_equal(w.keys[0], "/wr/a");
        assert_string_equal(w.keys[1], "/wr/b");
        assert_int_equal(w.types[2], ETCD_EVENT_DELETE);
        assert_int_equal(w.next, rev + 3);

        /* After a compaction past the start: -ERANGE and where to resume. */
        snprintf(url, sizeof url, "%s/v3/kv/compaction", shared_etcd.url);
        snprintf(body, sizeof body, "{\"revision\":\"%" PRId64 "\"}", last);
        assert_int_equal(raw_http(url, body, out), 0);
        watcher_init(&w, shared_etcd.url, "/wr/", 3);
        w.o.start_revision = rev;
        assert_int_equal(etcd_watch(c, "/wr/", &w.o, &w.next, &e), -ERANGE);
        assert_int_equal(w.next, last);
        assert_non_null(strstr(e.message, "compacted"));
}

static void test_watch_cancel_and_duration(void **state) {
        REQUIRE_ETCD();
        pthread_t t;
        Watcher w;

        watcher_init(&w, shared_etcd.url, "/quiet/", 1);
        assert_int_equal(pthread_create(&t, NULL, watcher_run, &w), 0);
        wait_synced(&w);
        uint64_t t0 = monotonic_usec();
        w.cancel = 1;
        assert_int_equal(pthread_join(t, NULL), 0);
        print_message("watch cancelled after %.0f ms\n", (w.ended - t0) / 1e3);
        assert_int_equal(w.r, 0);
        assert_true(w.ended - t0 < 1500000);
        assert_int_equal(w.next, w.sync_revision + 1);

        watcher_init(&w, shared_etcd.url, "/quiet/", 1);
        w.o.duration_usec = 300000;
        t0 = monotonic_usec();
        watcher_run(&w);
        assert_int_equal(w.r, 0);
        assert_true(w.ended - t0 >= 290000 && w.ended - t0 < 2000000);
}

static void test_watch_line_cap(void **state) {
        REQUIRE_ETCD();
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(shared_etcd.url);
        char big[4096];
        NapError e = NAP_ERROR_NULL;
        int64_t rev = 0;
        Watcher w;

        memset(big, 'L', sizeof big);
        assert_int_equal(etcd_put(c, "/linecap/big", big, sizeof big, 0, &rev, &e), 0);
        c->max_line_size = 1024;
        watcher_init(&w, shared_etcd.url, "/linecap/", 1);
        w.o.start_revision = rev;
        assert_int_equal(etcd_watch(c, "/linecap/", &w.o, NULL, &e), -EMSGSIZE);
        assert_int_equal(w.n, 0);
        assert_non_null(strstr(e.message, "longer than 1024"));
}

/* etcd goes away: a running watch ends with an error, and every request
 * fails quickly with a message naming the endpoint. Own etcd. */
static void test_etcd_stopped(void **state) {
        REQUIRE_ETCD();
        TestEtcd x = { .pid = -1 };
        NapError e = NAP_ERROR_NULL;
        int64_t id = 0;
        pthread_t t;
        Watcher w;

        test_etcd_start(&x);
        _cleanup_(etcd_client_freep) EtcdClient *c = client_for(x.url);
        c->connect_timeout_usec = 1000000;
        c->timeout_usec = 2000000;
        put_ok(c, "/stopped", "v", 1, 0);
        assert_int_equal(etcd_lease_grant(c, 10, &id, NULL, &e), 0);
        watcher_init(&w, x.url, "/stopped", 1);
        assert_int_equal(pthread_create(&t, NULL, watcher_run, &w), 0);
        wait_synced(&w);

        uint64_t t0 = monotonic_usec();
        test_etcd_kill(&x);
        assert_int_equal(pthread_join(t, NULL), 0);
        print_message("watch ended %.0f ms after etcd stopped: %s\n", (w.ended - t0) / 1e3, w.e.message);
        assert_true(w.r < 0);
        assert_true(w.ended - t0 < 3000000);

        t0 = monotonic_usec();
        assert_int_equal(etcd_put(c, "/stopped", "v", 1, 0, NULL, &e), -ECONNREFUSED);
        assert_int_equal(e.kind, NAP_ERROR_NOT_AVAILABLE);
        assert_non_null(strstr(e.message, x.url));
        print_message("put with etcd stopped: %s\n", e.message);
        e = NAP_ERROR_NULL;
        assert_int_equal(etcd_get(c, "/stopped", NULL, &e), -ECONNREFUSED);
        assert_int_equal(etcd_lease_keepalive(c, id, NULL, NULL), -ECONNREFUSED);
        assert_int_equal(etcd_create(c, "/stopped2", "v", 1, 0, NULL, NULL), -ECONNREFUSED);
        assert_true(monotonic_usec() - t0 < c->timeout_usec);
        test_etcd_destroy(&x);
}

int main(void) {
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_grpc_codes),
                cmocka_unit_test(test_parse_range),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_lease),
                cmocka_unit_test(test_parse_watch),
                cmocka_unit_test(test_parse_txn_ops),
                cmocka_unit_test(test_line_buffer),
                cmocka_unit_test(test_client_new),
        };
        const struct CMUnitTest live[] = {
                cmocka_unit_test(test_put_get),
                cmocka_unit_test(test_range_delete),
                cmocka_unit_test(test_txn),
                cmocka_unit_test(test_txn_many),
                cmocka_unit_test(test_txn_limits),
                cmocka_unit_test(test_get_many),
                cmocka_unit_test(test_lease_keepalive_revoke),
                cmocka_unit_test(test_lease_expiry),
                cmocka_unit_test(test_failover),
                cmocka_unit_test(test_timeout_hung_endpoint),
                cmocka_unit_test(test_response_cap),
                cmocka_unit_test(test_watch_other_client),
                cmocka_unit_test(test_watch_from_revision_and_compaction),
                cmocka_unit_test(test_watch_cancel_and_duration),
                cmocka_unit_test(test_watch_line_cap),
                cmocka_unit_test(test_etcd_stopped),
        };
        int r = cmocka_run_group_tests_name("etcd-pure", pure, NULL, NULL);
        return r + cmocka_run_group_tests_name("etcd-live", live, shared_etcd_group_setup, shared_etcd_group_teardown);
}
