/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/dlopen.h"
#include "base/strv.h"
#include "clients/curl-connect.h"
#include "clients/etcd.h"

/* ---- small JSON helpers --------------------------------------------- */

static int bad_answer(NapError *e, const char *what) {
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "etcd sent an unexpected answer: %s", what);
}

/* etcd's messages go into logs: keep them on one line. */
static void copy_message(char *buf, size_t size, const char *s) {
        size_t i = 0;

        for (; s && s[i] && i + 1 < size; i++)
                buf[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        buf[i] = 0;
}

/* Decimal int64 as etcd's gateway writes 64-bit numbers: "123", "-1". */
static int parse_int64(const char *s, size_t len, int64_t *ret) {
        char buf[24], *end;
        long long v;

        if (len == 0 || len >= sizeof buf)
                return -EBADMSG;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
                return -EBADMSG;
        errno = 0;
        v = strtoll(buf, &end, 10);
        if (errno != 0 || *end != 0)
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* A missing field is 0: proto3 JSON leaves out default values. */
static int json_get_int64(json_t *o, const char *field, int64_t *ret) {
        json_t *v = json_object_get(o, field);

        if (!v) {
                *ret = 0;
                return 0;
        }
        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return 0;
        }
        if (json_is_string(v))
                return parse_int64(json_string_value(v), json_string_length(v), ret);
        return -EBADMSG;
}

static int json_get_bytes(json_t *o, const char *field, char **ret, size_t *ret_size) {
        json_t *v = json_object_get(o, field);
        int r;

        if (!v) {
                *ret = strdup("");
                *ret_size = 0;
                return *ret ? 0 : -ENOMEM;
        }
        if (!json_is_string(v))
                return -EBADMSG;
        r = base64_decode(json_string_value(v), json_string_length(v), ret, ret_size);
        return r == -EINVAL ? -EBADMSG : r;
}

static int json_set_bytes(json_t *o, const char *field, const void *p, size_t size) {
        _cleanup_free_ char *b = NULL;
        int r;

        r = base64_encode(p, size, &b);
        if (r < 0)
                return r;
        return json_object_set_new(o, field, json_string(b)) < 0 ? -ENOMEM : 0;
}

/* 64-bit numbers go out as strings, like the gateway sends them. */
static int json_set_int64(json_t *o, const char *field, int64_t v) {
        char buf[24];

        snprintf(buf, sizeof buf, "%" PRId64, v);
        return json_object_set_new(o, field, json_string(buf)) < 0 ? -ENOMEM : 0;
}

static int json_set_bool(json_t *o, const char *field, bool b) {
        return json_object_set_new(o, field, json_boolean(b)) < 0 ? -ENOMEM : 0;
}

/* ---- errors ----------------------------------------------------------- */

int etcd_grpc_code_to_errno(int code) {
        static const int table[] = {
                [1] = -ECANCELED,     /* Cancelled */
                [2] = -EIO,           /* Unknown */
                [3] = -EINVAL,        /* InvalidArgument */
                [4] = -ETIMEDOUT,     /* DeadlineExceeded */
                [5] = -ENOENT,        /* NotFound */
                [6] = -EEXIST,        /* AlreadyExists */
                [7] = -EACCES,        /* PermissionDenied */
                [8] = -ENOSPC,        /* ResourceExhausted: quota, too many requests */
                [9] = -EPERM,         /* FailedPrecondition */
                [10] = -EBUSY,        /* Aborted */
                [11] = -ERANGE,       /* OutOfRange: e.g. compacted revision */
                [12] = -EOPNOTSUPP,   /* Unimplemented */
                [13] = -EIO,          /* Internal */
                [14] = -EAGAIN,       /* Unavailable: no leader, request timed out */
                [15] = -EIO,          /* DataLoss */
                [16] = -EACCES,       /* Unauthenticated */
        };

        if (code <= 0 || (size_t) code >= ELEMENTSOF(table))
                return -EIO;
        return table[code];
}

/* The gateway's error objects: {"error":"…","code":N,"message":"…"} (3.4),
 * {"code":N,"message":"…","details":[]} (3.5), and in streams
 * {"error":{"grpc_code":N,"http_code":…,"message":"…"}}. A lease grant's
 * own "error" string has no "code" beside it. Returns 0 if o is none. */
static int check_gateway_error(json_t *o, NapError *e) {
        json_t *err = json_object_get(o, "error"), *code = json_object_get(o, "code");
        const char *msg;
        char buf[256];
        int c;

        if (json_is_object(err)) {
                code = json_object_get(err, "grpc_code");
                msg = json_string_value(json_object_get(err, "message"));
        } else if (json_is_integer(code)) {
                msg = json_string_value(json_object_get(o, "message")) ?: json_string_value(err);
        } else
                return 0;

        c = json_is_integer(code) && json_integer_value(code) > 0 && json_integer_value(code) < 100 ?
                (int) json_integer_value(code) : 2;
        copy_message(buf, sizeof buf, msg ?: "error without a message");
        return nap_error_set(e, NAP_ERROR_INTERNAL, etcd_grpc_code_to_errno(c), "etcd: %s", buf);
}

static int load_object(const char *text, size_t len, json_t **ret, NapError *e) {
        json_error_t err;
        json_t *j;
        int r;

        j = json_loadb(text, len, 0, &err);
        if (!j)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG,
                                     "etcd sent malformed JSON: %s", err.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return bad_answer(e, "not an object");
        }
        r = check_gateway_error(j, e);
        if (r < 0) {
                json_decref(j);
                return r;
        }
        *ret = j;
        return 0;
}

/* Streams (watch, keep-alive) wrap each answer: {"result":{…}}. */
static int load_stream_line(const char *text, size_t len, json_t **ret_root, json_t **ret_result, NapError *e) {
        json_t *root, *result;
        int r;

        r = load_object(text, len, &root, e);
        if (r < 0)
                return r;
        result = json_object_get(root, "result");
        if (!json_is_object(result)) {
                json_decref(root);
                return bad_answer(e, "stream line without a result");
        }
        *ret_root = root;
        *ret_result = result;
        return 0;
}

static int header_revision(json_t *o, int64_t *ret) {
        return json_get_int64(json_object_get(o, "header"), "revision", ret);
}

int etcd_parse_error(const char *text, size_t len, NapError *e) {
        assert(text || len == 0);

        const char *nl = memchr(text, '\n', len);
        json_auto_t *j = NULL;

        /* A streamed error may be the first of several lines. */
        j = json_loadb(text, nl ? (size_t) (nl - text) : len, 0, NULL);
        if (!json_is_object(j))
                return 0;
        return check_gateway_error(j, e);
}

/* ---- key-values ------------------------------------------------------- */

void etcd_key_value_done(EtcdKeyValue *kv) {
        if (!kv)
                return;
        free(kv->key);
        free(kv->value);
        *kv = (EtcdKeyValue) {};
}

void etcd_range_done(EtcdRange *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_kvs; i++)
                etcd_key_value_done(r->kvs + i);
        free(r->kvs);
        *r = (EtcdRange) {};
}

static int parse_kv(json_t *o, EtcdKeyValue *ret) {
        EtcdKeyValue kv = {};
        int r;

        if (!json_is_object(o))
                return -EBADMSG;
        r = json_get_bytes(o, "key", &kv.key, &kv.key_size);
        if (r >= 0)
                r = json_get_bytes(o, "value", &kv.value, &kv.value_size);
        if (r >= 0)
                r = json_get_int64(o, "create_revision", &kv.create_revision);
        if (r >= 0)
                r = json_get_int64(o, "mod_revision", &kv.mod_revision);
        if (r >= 0)
                r = json_get_int64(o, "version", &kv.version);
        if (r >= 0)
                r = json_get_int64(o, "lease", &kv.lease);
        if (r < 0) {
                etcd_key_value_done(&kv);
                return r;
        }
        *ret = kv;
        return 0;
}

static int parse_range_object(json_t *o, EtcdRange *ret, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        json_t *kvs = json_object_get(o, "kvs"), *v;
        size_t i;
        int r;

        if (kvs && !json_is_array(kvs))
                return bad_answer(e, "kvs is not an array");
        range.kvs = calloc(MAX(json_array_size(kvs), (size_t) 1), sizeof(EtcdKeyValue));
        if (!range.kvs)
                return -ENOMEM;
        json_array_foreach(kvs, i, v) {
                r = parse_kv(v, range.kvs + i);
                if (r < 0)
                        return r == -EBADMSG ? bad_answer(e, "malformed key-value") : r;
                range.n_kvs++;
        }
        if (json_get_int64(o, "count", &range.count) < 0 ||
            header_revision(o, &range.revision) < 0)
                return bad_answer(e, "malformed count or revision");
        range.more = json_is_true(json_object_get(o, "more"));
        *ret = range;
        range = (EtcdRange) {};
        return 0;
}

int etcd_parse_range_response(const char *text, size_t len, EtcdRange *ret, NapError *e) {
        json_auto_t *j = NULL;
        int r;

        assert(text || len == 0);
        assert(ret);

        r = load_object(text, len, &j, e);
        if (r < 0)
                return r;
        return parse_range_object(j, ret, e);
}

int etcd_parse_put_response(const char *text, size_t len, int64_t *ret_revision, NapError *e) {
        json_auto_t *j = NULL;
        int64_t rev;
        int r;

        assert(text || len == 0);

        r = load_object(text, len, &j, e);
        if (r < 0)
                return r;
        if (header_revision(j, &rev) < 0)
                return bad_answer(e, "malformed revision");
        if (ret_revision)
                *ret_revision = rev;
        return 0;
}

int etcd_parse_header_response(const char *text, size_t len, NapError *e) {
        return etcd_parse_put_response(text, len, NULL, e);
}

int etcd_parse_delete_response(const char *text, size_t len, int64_t *ret_deleted, NapError *e) {
        json_auto_t *j = NULL;
        int64_t n;
        int r;

        assert(text || len == 0);

        r = load_object(text, len, &j, e);
        if (r < 0)
                return r;
        if (json_get_int64(j, "deleted", &n) < 0 || n < 0)
                return bad_answer(e, "malformed deleted count");
        if (ret_deleted)
                *ret_deleted = n;
        return 0;
}

/* The key of responses[i], a range of one key; zeroed if absent. */
static int txn_range_kv(json_t *responses, size_t i, EtcdKeyValue *ret, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        json_t *rr = json_object_get(json_array_get(responses, i), "response_range");
        int r;

        if (!json_is_object(rr))
                return bad_answer(e, "txn without its range response");
        r = parse_range_object(rr, &range, e);
        if (r < 0)
                return r;
        *ret = (EtcdKeyValue) {};
        if (range.n_kvs > 0) {
                *ret = range.kvs[0];
                range.kvs[0] = (EtcdKeyValue) {};
        }
        return 0;
}

/* {"succeeded":true,…} or {"responses":[{"response_range":{…}}]} */
int etcd_parse_txn_response(const char *text, size_t len, EtcdKeyValue *ret_current, NapError *e) {
        EtcdKeyValue kv = {};
        json_auto_t *j = NULL;
        int r;

        assert(text || len == 0);

        r = load_object(text, len, &j, e);
        if (r < 0)
                return r;
        if (json_is_true(json_object_get(j, "succeeded"))) {
                if (ret_current)
                        *ret_current = (EtcdKeyValue) {};
                return 1;
        }
        r = txn_range_kv(json_object_get(j, "responses"), 0, &kv, e);
        if (r < 0)
                return r;
        if (ret_current)
                *ret_current = kv;
        else
                etcd_key_value_done(&kv);
        return 0;
}

static int txn_range_kvs(json_t *responses, size_t n, EtcdKeyValue *ret, NapError *e) {
        int r;

        for (size_t i = 0; i < n; i++) {
                r = txn_range_kv(responses, i, ret + i, e);
                if (r < 0) {
                        while (i > 0)
                                etcd_key_value_done(ret + --i);
                        return r;
                }
        }
        return 0;
}

/* {"header":…,"succeeded":true,"responses":[{"response_put":…},…]}; a
 * failed txn with an empty failure branch is just the header. */
int etcd_parse_txn_ops_response(const char *text, size_t len, size_t n, EtcdKeyValue *ret_kvs,
                                int64_t *ret_revision, NapError *e) {
        json_auto_t *j = NULL;
        json_t *responses;
        bool succeeded;
        int64_t rev;
        int r;

        assert(text || len == 0);

        if (ret_kvs)
                memset(ret_kvs, 0, n * sizeof *ret_kvs);
        r = load_object(text, len, &j, e);
        if (r < 0)
                return r;
        if (header_revision(j, &rev) < 0)
                return bad_answer(e, "malformed txn revision");
        succeeded = json_is_true(json_object_get(j, "succeeded"));
        responses = json_object_get(j, "responses");
        if (responses && !json_is_array(responses))
                return bad_answer(e, "txn responses is not an array");
        if (succeeded && json_array_size(responses) != n)
                return bad_answer(e, "txn answered another number of requests than sent");
        if (succeeded && ret_kvs) {
                r = txn_range_kvs(responses, n, ret_kvs, e);
                if (r < 0)
                        return r;
        }
        if (ret_revision)
                *ret_revision = rev;
        return succeeded;
}

int etcd_parse_lease_grant_response(const char *text, size_t len, int64_t *ret_id, int64_t *ret_ttl,
                                    NapError *e) {
        json_auto_t *j = NULL;
        const char *err;
        int64_t id, ttl;
        char buf[256];
        int r;

        assert(text || len == 0);

        r = load_object(text, len, &j, e);
        if (r < 0)
                return r;
        err = json_string_value(json_object_get(j, "error"));
        if (!isempty(err)) {
                copy_message(buf, sizeof buf, err);
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "etcd: lease grant failed: %s", buf);
        }
        if (json_get_int64(j, "ID", &id) < 0 || json_get_int64(j, "TTL", &ttl) < 0 || id == 0 || ttl <= 0)
                return bad_answer(e, "lease grant without ID or TTL");
        if (ret_id)
                *ret_id = id;
        if (ret_ttl)
                *ret_ttl = ttl;
        return 0;
}

int etcd_parse_keepalive_response(const char *text, size_t len, int64_t *ret_ttl, NapError *e) {
        assert(text || len == 0);

        const char *nl = memchr(text, '\n', len);
        json_auto_t *root = NULL;
        json_t *result;
        int64_t id, ttl;
        int r;

        r = load_stream_line(text, nl ? (size_t) (nl - text) : len, &root, &result, e);
        if (r < 0)
                return r;
        if (json_get_int64(result, "ID", &id) < 0 || json_get_int64(result, "TTL", &ttl) < 0)
                return bad_answer(e, "malformed keep-alive");
        /* An expired or revoked lease is answered with 200 and no TTL. */
        if (ttl <= 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOENT,
                                     "etcd: lease %" PRIx64 " is lost (expired or revoked)", (uint64_t) id);
        if (ret_ttl)
                *ret_ttl = ttl;
        return (int) MIN(ttl, (int64_t) INT32_MAX);
}

/* ---- watch stream parsing --------------------------------------------- */

static const char *const event_type_table[_ETCD_EVENT_TYPE_MAX] = {
        [ETCD_EVENT_PUT] = "PUT",
        [ETCD_EVENT_DELETE] = "DELETE",
};

const char *etcd_event_type_to_string(EtcdEventType t) {
        if (t < 0 || t >= _ETCD_EVENT_TYPE_MAX)
                return NULL;
        return event_type_table[t];
}

void etcd_watch_response_done(EtcdWatchResponse *w) {
        if (!w)
                return;
        for (size_t i = 0; i < w->n_events; i++)
                etcd_key_value_done(&w->events[i].kv);
        free(w->events);
        free(w->cancel_reason);
        *w = (EtcdWatchResponse) {};
}

static int parse_event(json_t *o, EtcdEvent *ret) {
        json_t *type = json_object_get(o, "type");
        EtcdEventType t;

        if (!json_is_object(o))
                return -EBADMSG;
        /* PUT is the enum's zero value, so the gateway leaves it out. */
        if (!type || (json_is_string(type) && streq(json_string_value(type), "PUT")))
                t = ETCD_EVENT_PUT;
        else if (json_is_string(type) && streq(json_string_value(type), "DELETE"))
                t = ETCD_EVENT_DELETE;
        else
                return -EBADMSG;
        ret->type = t;
        return parse_kv(json_object_get(o, "kv"), &ret->kv);
}

static int parse_events(json_t *a, EtcdWatchResponse *w, NapError *e) {
        json_t *v;
        size_t i;
        int r;

        if (!a)
                return 0;
        if (!json_is_array(a))
                return bad_answer(e, "events is not an array");
        w->events = calloc(MAX(json_array_size(a), (size_t) 1), sizeof(EtcdEvent));
        if (!w->events)
                return -ENOMEM;
        json_array_foreach(a, i, v) {
                r = parse_event(v, w->events + i);
                if (r < 0)
                        return r == -EBADMSG ? bad_answer(e, "malformed watch event") : r;
                w->n_events++;
        }
        return 0;
}

int etcd_parse_watch_line(const char *text, size_t len, EtcdWatchResponse *ret, NapError *e) {
        _cleanup_(etcd_watch_response_done) EtcdWatchResponse w = {};
        json_auto_t *root = NULL;
        json_t *result;
        const char *reason;
        int r;

        assert(text || len == 0);
        assert(ret);

        r = load_stream_line(text, len, &root, &result, e);
        if (r < 0)
                return r;
        w.created = json_is_true(json_object_get(result, "created"));
        w.canceled = json_is_true(json_object_get(result, "canceled"));
        if (header_revision(result, &w.revision) < 0 ||
            json_get_int64(result, "compact_revision", &w.compact_revision) < 0)
                return bad_answer(e, "malformed watch revision");
        reason = json_string_value(json_object_get(result, "cancel_reason"));
        if (!isempty(reason)) {
                w.cancel_reason = strdup(reason);
                if (!w.cancel_reason)
                        return -ENOMEM;
        }
        r = parse_events(json_object_get(result, "events"), &w, e);
        if (r < 0)
                return r;
        *ret = w;
        w = (EtcdWatchResponse) {};
        return 0;
}

/* ---- line framing ----------------------------------------------------- */

void etcd_line_buffer_done(EtcdLineBuffer *b) {
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->size = b->allocated = 0;
}

static int line_buffer_append(EtcdLineBuffer *b, const char *p, size_t n) {
        size_t max = b->max ?: ETCD_MAX_LINE_SIZE_DEFAULT;

        if (n > max - MIN(b->size, max))
                return -EMSGSIZE;
        if (b->size + n > b->allocated) {
                size_t a = MIN(MAX(b->size + n, MAX(b->allocated * 2, (size_t) 256)), max);
                char *d = realloc(b->data, a);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->allocated = a;
        }
        memcpy(b->data + b->size, p, n);
        b->size += n;
        return 0;
}

static int line_emit(const char *line, size_t len, etcd_line_fn f, void *userdata) {
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (len == 0)
                return 0; /* blank lines carry nothing */
        return f(line, len, userdata);
}

int etcd_line_buffer_feed(EtcdLineBuffer *b, const void *p, size_t n, etcd_line_fn f, void *userdata) {
        const char *s = p;
        int r;

        assert(b);
        assert(p || n == 0);
        assert(f);

        while (n > 0) {
                const char *nl = memchr(s, '\n', n);
                size_t take = nl ? (size_t) (nl - s) : n;

                if (!nl)
                        return line_buffer_append(b, s, take);
                if (b->size == 0 && take <= (b->max ?: ETCD_MAX_LINE_SIZE_DEFAULT))
                        r = line_emit(s, take, f, userdata); /* whole line in hand: no copy */
                else {
                        r = line_buffer_append(b, s, take);
                        if (r < 0)
                                return r;
                        r = line_emit(b->data, b->size, f, userdata);
                        b->size = 0;
                }
                if (r != 0)
                        return r;
                s += take + 1;
                n -= take + 1;
        }
        return 0;
}

/* ---- client ----------------------------------------------------------- */

typedef struct Body {
        char *data;
        size_t size;
        size_t allocated;
        size_t max;
        bool too_big;
} Body;

static void body_done(Body *b) {
        free(b->data);
        b->data = NULL;
}

static size_t body_write(char *p, size_t size, size_t nmemb, void *userdata) {
        Body *b = userdata;
        size_t n = size * nmemb;

        if (n > b->max - MIN(b->size, b->max)) {
                b->too_big = true;
                return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
        }
        if (b->size + n + 1 > b->allocated) {
                size_t a = MAX(b->size + n + 1, MIN(MAX(b->allocated * 2, (size_t) 1024), b->max + 1));
                char *d = realloc(b->data, a);
                if (!d)
                        return 0;
                b->data = d;
                b->allocated = a;
        }
        memcpy(b->data + b->size, p, n);
        b->size += n;
        b->data[b->size] = 0;
        return n;
}

static int curl_global_result = 0;
static void curl_global_once(void) {
        curl_global_result = sym_curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

static int curl_ensure_global(NapError *e) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        int r = nap_dlopen_libcurl(e);
        if (r < 0)
                return r;

        pthread_once(&once, curl_global_once);
        return curl_global_result < 0 ?
                nap_error_set(e, NAP_ERROR_INTERNAL, curl_global_result, "Failed to initialize libcurl") : 0;
}

static int endpoint_normalize(const char *url, char **ret) {
        size_t n = strlen(url);

        if (!startswith(url, "http://") && !startswith(url, "https://"))
                return -EINVAL;
        while (n > 0 && url[n - 1] == '/')
                n--;
        if (n <= strlen("https://") || strpbrk(url, " \t\r\n"))
                return -EINVAL;
        *ret = strndup(url, n);
        return *ret ? 0 : -ENOMEM;
}

EtcdClient *etcd_client_free(EtcdClient *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_endpoints; i++)
                free(c->endpoints[i]);
        free(c->endpoints);
        if (c->curl)
                sym_curl_easy_cleanup(c->curl);
        nap_curl_broker_free(c->curl_broker);
        free(c);
        return NULL;
}

int etcd_client_new(char *const *endpoints, EtcdClient **ret, NapError *e) {
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        size_t n = 0;
        int r;

        assert(ret);

        while (endpoints && endpoints[n])
                n++;
        if (n == 0)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "No etcd endpoint configured");
        r = curl_ensure_global(e);
        if (r < 0)
                return r;

        c = calloc(1, sizeof *c);
        if (!c || !(c->endpoints = calloc(n, sizeof(char *))))
                return -ENOMEM;
        for (; c->n_endpoints < n; c->n_endpoints++) {
                r = endpoint_normalize(endpoints[c->n_endpoints], &c->endpoints[c->n_endpoints]);
                if (r == -EINVAL)
                        return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, r,
                                             "Invalid etcd endpoint '%s': expected http:// or https:// URL",
                                             endpoints[c->n_endpoints]);
                if (r < 0)
                        return r;
        }
        c->connect_timeout_usec = ETCD_CONNECT_TIMEOUT_USEC_DEFAULT;
        c->timeout_usec = ETCD_TIMEOUT_USEC_DEFAULT;
        c->max_response_size = ETCD_MAX_RESPONSE_SIZE_DEFAULT;
        c->max_line_size = ETCD_MAX_LINE_SIZE_DEFAULT;
        *ret = TAKE_PTR(c);
        return 0;
}

const char *etcd_client_endpoint(const EtcdClient *c) {
        assert(c);

        return c->endpoints[c->current];
}

static long usec_to_msec(uint64_t u) {
        return (long) MIN((u + 999) / 1000, (uint64_t) LONG_MAX);
}

static int curl_code_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
                return -EPROTO;
        default:
                return -EIO;
        }
}

/* Options every handle gets; the per-request ones are set by the caller. */
static int curl_setup(CURL *h, const EtcdClient *c, NapCurlBroker **broker, struct curl_slist *headers,
                      char *errbuf) {
        if (sym_curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, usec_to_msec(c->connect_timeout_usec)) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            nap_curl_connect_through_broker(h, broker, (long) usec_to_msec(c->connect_timeout_usec)) < 0)
                return -EIO;
        errbuf[0] = 0;
        return 0;
}

static struct curl_slist *json_headers(void) {
        struct curl_slist *l, *h;

        l = sym_curl_slist_append(NULL, "Content-Type: application/json");
        if (!l)
                return NULL;
        /* No "Expect: 100-continue" round trip for large values. */
        h = sym_curl_slist_append(l, "Expect:");
        if (!h)
                sym_curl_slist_free_all(l);
        return h;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, sym_curl_slist_free_all);

typedef struct Attempt {
        const char *path;
        const char *body;
        size_t body_size;
        Body answer;
        long status;
        bool sent;          /* request bytes went out: it may have been applied */
        bool transport;     /* failed below HTTP */
} Attempt;

static int attempt_fail(const EtcdClient *c, size_t idx, Attempt *a, CURLcode code,
                        const char *errbuf, NapError *e) {
        int r;

        if (code == CURLE_WRITE_ERROR && a->answer.too_big)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EMSGSIZE,
                                     "etcd %s: answer to %s larger than %zu bytes",
                                     c->endpoints[idx], a->path, a->answer.max);
        r = curl_code_to_errno(code);
        a->transport = true;
        return nap_error_set(e, r == -EIO ? NAP_ERROR_INTERNAL : NAP_ERROR_NOT_AVAILABLE, r,
                             "etcd %s: %s", c->endpoints[idx], nap_curl_failure(c->curl_broker, code, errbuf));
}

static int attempt_once(EtcdClient *c, size_t idx, Attempt *a, NapError *e) {
        _cleanup_(sym_curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_free_ char *url = NULL;
        char errbuf[CURL_ERROR_SIZE];
        CURLcode code;
        long sent = 0;

        headers = json_headers();
        if (!headers || asprintf(&url, "%s/v3/%s", c->endpoints[idx], a->path) < 0)
                return -ENOMEM;
        if (curl_setup(c->curl, c, (NapCurlBroker **) &c->curl_broker, headers, errbuf) < 0 ||
            sym_curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
            sym_curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, a->body) != CURLE_OK ||
            sym_curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) a->body_size) != CURLE_OK ||
            sym_curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, body_write) != CURLE_OK ||
            sym_curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &a->answer) != CURLE_OK ||
            sym_curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, usec_to_msec(c->timeout_usec)) != CURLE_OK)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "Failed to set up a libcurl request");

        code = sym_curl_easy_perform(c->curl);
        (void) sym_curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &sent);
        (void) sym_curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &a->status);
        /* The handle outlives these: leave it no dangling pointers. */
        (void) sym_curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        (void) sym_curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        (void) sym_curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
        a->sent = sent > 0;
        if (code != CURLE_OK)
                return attempt_fail(c, idx, a, code, errbuf, e);
        return 0;
}

/* A non-200 answer: the gateway's error object, or just the status. */
static int attempt_status(const EtcdClient *c, size_t idx, const Attempt *a, NapError *e) {
        NapError le = NAP_ERROR_NULL;
        int r;

        if (a->status == 200)
                return 0;
        r = etcd_parse_error(a->answer.data ?: "", a->answer.size, &le);
        if (r < 0)
                return nap_error_set(e, le.kind, r, "etcd %s: %s", c->endpoints[idx],
                                     startswith(le.message, "etcd: ") ?: le.message);
        return nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "etcd %s: HTTP status %ld for %s",
                             c->endpoints[idx], a->status, a->path);
}

static bool attempt_may_retry(const Attempt *a, int r, bool idempotent) {
        if (a->transport)
                return !a->sent || idempotent;
        /* Unavailable: this member has no leader or timed out internally. */
        return r == -EAGAIN && idempotent;
}

/* POSTs req to BASE/v3/path, trying the endpoints in turn. On success
 * *ret is the answer of a 200 (NUL-terminated), which the caller parses. */
static int etcd_call(EtcdClient *c, const char *path, json_t *req, bool idempotent,
                     char **ret, size_t *ret_size, NapError *e) {
        _cleanup_free_ char *body = NULL;
        NapError le = NAP_ERROR_NULL;
        int r = -EIO;

        assert(c);
        assert(path);
        assert(req);
        assert(ret);
        assert(ret_size);

        body = json_dumps(req, JSON_COMPACT);
        if (!body)
                return -ENOMEM;
        if (!c->curl && !(c->curl = sym_curl_easy_init()))
                return nap_error_set(e, NAP_ERROR_INTERNAL, -ENOMEM, "Failed to create a libcurl handle");

        for (size_t k = 0; k < c->n_endpoints; k++) {
                size_t idx = (c->current + k) % c->n_endpoints;
                Attempt a = { .path = path, .body = body, .body_size = strlen(body),
                              .answer.max = c->max_response_size };

                le = NAP_ERROR_NULL;
                r = attempt_once(c, idx, &a, &le);
                if (r >= 0)
                        r = attempt_status(c, idx, &a, &le);
                if (r >= 0) {
                        c->current = idx;
                        *ret = a.answer.data ?: strdup("");
                        *ret_size = a.answer.size;
                        return *ret ? 0 : -ENOMEM;
                }
                body_done(&a.answer);
                if (!attempt_may_retry(&a, r, idempotent))
                        break;
        }
        if (nap_error_is_set(&le))
                return nap_error_set(e, le.kind, r, "%s", le.message);
        return r;
}

/* ---- operations ------------------------------------------------------- */

static json_t *request_for_key(const char *key) {
        json_t *o = json_object();

        if (o && json_set_bytes(o, "key", key, strlen(key)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* The first key after every key with this prefix: etcd's range_end. */
static int prefix_range_end(const char *prefix, char **ret, size_t *ret_size) {
        size_t n = strlen(prefix);
        char *end = malloc(n + 1);

        if (!end)
                return -ENOMEM;
        memcpy(end, prefix, n + 1);
        while (n > 0 && (unsigned char) end[n - 1] == 0xff)
                n--;
        if (n == 0) {
                /* "\0": to the end of the key space. */
                end[0] = 0;
                *ret_size = 1;
        } else {
                end[n - 1]++;
                *ret_size = n;
        }
        *ret = end;
        return 0;
}

static int request_add_range(json_t *req, const char *key, bool prefix) {
        _cleanup_free_ char *end = NULL;
        size_t n;
        int r;

        if (!prefix)
                return 0;
        if (isempty(key)) {
                /* key "\0" to range_end "\0": every key. */
                r = json_set_bytes(req, "key", "", 1);
                if (r < 0)
                        return r;
        }
        r = prefix_range_end(key, &end, &n);
        if (r < 0)
                return r;
        return json_set_bytes(req, "range_end", end, n);
}

static json_t *put_request(const char *key, const void *value, size_t size, int64_t lease) {
        json_auto_t *req = request_for_key(key);

        if (!req || json_set_bytes(req, "value", value ?: "", size) < 0 ||
            (lease != 0 && json_set_int64(req, "lease", lease) < 0))
                return NULL;
        return json_incref(req);
}

int etcd_put(EtcdClient *c, const char *key, const void *value, size_t size, int64_t lease,
             int64_t *ret_revision, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        json_auto_t *req = NULL;
        size_t n;
        int r;

        assert(c);
        assert(key);
        assert(value || size == 0);

        req = put_request(key, value, size, lease);
        if (!req)
                return -ENOMEM;
        r = etcd_call(c, "kv/put", req, true, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_put_response(answer, n, ret_revision, e);
}

static int etcd_range(EtcdClient *c, const char *key, bool prefix, size_t limit, bool keys_only,
                      EtcdRange *ret, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        json_auto_t *req = NULL;
        size_t n;
        int r;

        req = request_for_key(key);
        if (!req || request_add_range(req, key, prefix) < 0 ||
            (limit > 0 && json_set_int64(req, "limit", (int64_t) MIN(limit, (size_t) INT64_MAX)) < 0) ||
            (keys_only && json_set_bool(req, "keys_only", true) < 0))
                return -ENOMEM;
        r = etcd_call(c, "kv/range", req, true, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_range_response(answer, n, ret, e);
}

int etcd_get(EtcdClient *c, const char *key, EtcdKeyValue *ret, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        int r;

        assert(c);
        assert(key);

        r = etcd_range(c, key, false, 0, false, &range, e);
        if (r < 0)
                return r;
        if (ret)
                *ret = (EtcdKeyValue) {};
        if (range.n_kvs == 0)
                return 0;
        if (ret) {
                *ret = range.kvs[0];
                range.kvs[0] = (EtcdKeyValue) {};
        }
        return 1;
}

int etcd_range_prefix(EtcdClient *c, const char *prefix, size_t limit, bool keys_only,
                      EtcdRange *ret, NapError *e) {
        assert(c);
        assert(prefix);
        assert(ret);

        return etcd_range(c, prefix, true, limit, keys_only, ret, e);
}

int etcd_delete(EtcdClient *c, const char *key, bool prefix, int64_t *ret_deleted, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        json_auto_t *req = NULL;
        size_t n;
        int r;

        assert(c);
        assert(key);

        req = request_for_key(key);
        if (!req || request_add_range(req, key, prefix) < 0)
                return -ENOMEM;
        r = etcd_call(c, "kv/deleterange", req, true, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_delete_response(answer, n, ret_deleted, e);
}

/* ---- txn -------------------------------------------------------------- */

/* What a compare, an op and a read must have: a known kind (a target, a
 * type), a key, and the bytes of any value they give a size for. */
static int check_item(NapError *e, const char *what, const char *kind, size_t i, bool known, const char *key,
                      bool value_missing) {
        const char *why = !known ? kind : isempty(key) ? "no key" : value_missing ? "no value" : NULL;

        if (!why)
                return 0;
        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid etcd %s %zu: %s", what, i, why);
}

static int check_txn(const EtcdTxnCompare *compares, size_t n_compares, const EtcdTxnOp *ops, size_t n_ops,
                     NapError *e) {
        int r;

        /* etcd would refuse it whole: better before sending. */
        if (n_compares > ETCD_TXN_OPS_MAX || n_ops > ETCD_TXN_OPS_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -E2BIG,
                                     "etcd txn with %zu compares and %zu ops: at most %d of each",
                                     n_compares, n_ops, ETCD_TXN_OPS_MAX);
        if ((!compares && n_compares > 0) || (!ops && n_ops > 0))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "etcd txn without its compares or ops");
        for (size_t i = 0; i < n_compares; i++) {
                const EtcdTxnCompare *p = compares + i;

                r = check_item(e, "compare", "unknown target", i,
                               p->target >= 0 && p->target < _ETCD_COMPARE_TARGET_MAX, p->key,
                               p->target == ETCD_COMPARE_VALUE && !p->value && p->value_size > 0);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n_ops; i++) {
                const EtcdTxnOp *p = ops + i;

                r = check_item(e, "txn op", "unknown type", i, p->type >= 0 && p->type < _ETCD_TXN_OP_TYPE_MAX, p->key,
                               p->type == ETCD_TXN_PUT && !p->value && p->value_size > 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static json_t *txn_compare(const void *p) {
        static const char *const targets[_ETCD_COMPARE_TARGET_MAX] = {
                [ETCD_COMPARE_VALUE] = "VALUE",
                [ETCD_COMPARE_MOD_REVISION] = "MOD",
                [ETCD_COMPARE_CREATE_REVISION] = "CREATE",
        };
        const EtcdTxnCompare *cmp = p;
        json_auto_t *o = request_for_key(cmp->key);
        int r;

        if (!o || json_object_set_new(o, "target", json_string(targets[cmp->target])) < 0 ||
            json_object_set_new(o, "result", json_string("EQUAL")) < 0)
                return NULL;
        if (cmp->target == ETCD_COMPARE_VALUE)
                r = json_set_bytes(o, "value", cmp->value ?: "", cmp->value_size);
        else
                r = json_set_int64(o, cmp->target == ETCD_COMPARE_MOD_REVISION ?
                                   "mod_revision" : "create_revision", cmp->revision);
        return r < 0 ? NULL : json_incref(o);
}

static json_t *txn_op(const void *p) {
        const EtcdTxnOp *op = p;
        json_auto_t *o = op->type == ETCD_TXN_PUT ? put_request(op->key, op->value, op->value_size, op->lease) :
                request_for_key(op->key);

        if (!o)
                return NULL;
        return json_pack("{s:O}", op->type == ETCD_TXN_PUT ? "request_put" : "request_delete_range", o);
}

static json_t *txn_range(const void *p) {
        json_auto_t *o = request_for_key(*(char *const *) p);

        return o ? json_pack("{s:O}", "request_range", o) : NULL;
}

/* The JSON array of n items, each built by f. */
static json_t *txn_array(const void *items, size_t n, size_t size, json_t *(*f)(const void *p)) {
        json_auto_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(a, f((const char *) items + i * size)) < 0)
                        return NULL;
        return json_incref(a);
}

/* Only a txn that just reads is idempotent: any other could report
 * failure for its own earlier success if sent twice. */
static int txn_call(EtcdClient *c, json_t *compare, json_t *success, json_t *failure, bool idempotent,
                    char **ret, size_t *ret_size, NapError *e) {
        json_auto_t *req = NULL;

        if (!compare || !success || !failure)
                return -ENOMEM;
        req = json_pack("{s:O,s:O,s:O}", "compare", compare, "success", success, "failure", failure);
        if (!req)
                return -ENOMEM;
        return etcd_call(c, "kv/txn", req, idempotent, ret, ret_size, e);
}

int etcd_txn_cas(EtcdClient *c, const char *key, const EtcdCompare *cmp,
                 const void *value, size_t size, int64_t lease,
                 EtcdKeyValue *ret_current, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        size_t n;
        int r;

        assert(c);
        assert(key);
        assert(value || size == 0);

        if (!cmp)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "etcd compare-and-swap without a compare");

        const EtcdTxnCompare tc = { .key = key, .target = cmp->target, .value = cmp->value,
                                    .value_size = cmp->value_size, .revision = cmp->revision };
        const EtcdTxnOp op = { .type = ETCD_TXN_PUT, .key = key, .value = value, .value_size = size, .lease = lease };
        json_auto_t *compare = NULL, *success = NULL, *failure = NULL;

        r = check_txn(&tc, 1, &op, 1, e);
        if (r < 0)
                return r;
        compare = txn_array(&tc, 1, sizeof tc, txn_compare);
        success = txn_array(&op, 1, sizeof op, txn_op);
        failure = txn_array(&key, 1, sizeof key, txn_range);
        r = txn_call(c, compare, success, failure, false, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_txn_response(answer, n, ret_current, e);
}

int etcd_txn(EtcdClient *c, const EtcdTxnCompare *compares, size_t n_compares,
             const EtcdTxnOp *ops, size_t n_ops, int64_t *ret_revision, NapError *e) {
        json_auto_t *compare = NULL, *success = NULL, *failure = NULL;
        _cleanup_free_ char *answer = NULL;
        size_t n;
        int r;

        assert(c);

        r = check_txn(compares, n_compares, ops, n_ops, e);
        if (r < 0)
                return r;
        compare = txn_array(compares, n_compares, sizeof *compares, txn_compare);
        success = txn_array(ops, n_ops, sizeof *ops, txn_op);
        failure = json_array();
        r = txn_call(c, compare, success, failure, false, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_txn_ops_response(answer, n, n_ops, NULL, ret_revision, e);
}

static size_t count_present(const EtcdKeyValue *kvs, size_t n) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += !!kvs[i].key;
        return k;
}

int etcd_get_many(EtcdClient *c, char *const *keys, EtcdKeyValue *ret, int64_t *ret_revision, NapError *e) {
        json_auto_t *compare = NULL, *success = NULL, *failure = NULL;
        _cleanup_free_ char *answer = NULL;
        size_t n_keys = strv_length(keys), n;
        int r;

        assert(c);
        assert(ret || n_keys == 0);

        if (n_keys > 0)
                memset(ret, 0, n_keys * sizeof *ret);
        if (n_keys > ETCD_TXN_OPS_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -E2BIG,
                                     "etcd get of %zu keys: at most %d", n_keys, ETCD_TXN_OPS_MAX);
        for (size_t i = 0; i < n_keys; i++) {
                r = check_item(e, "read", NULL, i, true, keys[i], false);
                if (r < 0)
                        return r;
        }
        compare = json_array();
        success = txn_array(keys, n_keys, sizeof *keys, txn_range);
        failure = json_array();
        r = txn_call(c, compare, success, failure, true, &answer, &n, e);
        if (r < 0)
                return r;
        r = etcd_parse_txn_ops_response(answer, n, n_keys, ret, ret_revision, e);
        if (r == 0)
                return bad_answer(e, "txn without compares failed");
        if (r < 0)
                return r;
        return (int) count_present(ret, n_keys);
}

int etcd_create(EtcdClient *c, const char *key, const void *value, size_t size, int64_t lease,
                EtcdKeyValue *ret_current, NapError *e) {
        const EtcdCompare cmp = { .target = ETCD_COMPARE_CREATE_REVISION, .revision = 0 };

        return etcd_txn_cas(c, key, &cmp, value, size, lease, ret_current, e);
}

static int lease_call(EtcdClient *c, const char *path, const char *field, int64_t v,
                      char **ret, size_t *ret_size, NapError *e) {
        json_auto_t *req = json_object();

        if (!req || json_set_int64(req, field, v) < 0)
                return -ENOMEM;
        return etcd_call(c, path, req, true, ret, ret_size, e);
}

int etcd_lease_grant(EtcdClient *c, int64_t ttl, int64_t *ret_id, int64_t *ret_ttl, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        size_t n;
        int r;

        assert(c);

        if (ttl <= 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid lease TTL %" PRId64, ttl);
        /* A retried grant at worst leaves a lease nobody keeps alive: it expires. */
        r = lease_call(c, "lease/grant", "TTL", ttl, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_lease_grant_response(answer, n, ret_id, ret_ttl, e);
}

int etcd_lease_keepalive(EtcdClient *c, int64_t id, int64_t *ret_ttl, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        size_t n;
        int r;

        assert(c);

        r = lease_call(c, "lease/keepalive", "ID", id, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_keepalive_response(answer, n, ret_ttl, e);
}

int etcd_lease_revoke(EtcdClient *c, int64_t id, NapError *e) {
        _cleanup_free_ char *answer = NULL;
        size_t n;
        int r;

        assert(c);

        r = lease_call(c, "lease/revoke", "ID", id, &answer, &n, e);
        if (r < 0)
                return r;
        return etcd_parse_header_response(answer, n, e);
}

/* ---- watch ------------------------------------------------------------ */

typedef struct WatchState {
        const EtcdWatchOptions *o;
        EtcdLineBuffer lines;
        int64_t next_revision;
        bool created;
        int stop;                      /* != 0: why the stream was cut */
        NapError *e;
} WatchState;

static int watch_canceled(const EtcdWatchResponse *w, WatchState *s) {
        char buf[256];

        if (w->compact_revision > 0) {
                s->next_revision = w->compact_revision;
                return nap_error_set(s->e, NAP_ERROR_INTERNAL, -ERANGE,
                                     "etcd: watch from revision %" PRId64 " canceled: compacted up to %" PRId64,
                                     s->o->start_revision, w->compact_revision);
        }
        copy_message(buf, sizeof buf, w->cancel_reason ?: "no reason given");
        return nap_error_set(s->e, NAP_ERROR_INTERNAL, -ECANCELED, "etcd canceled the watch: %s", buf);
}

static int watch_dispatch(const EtcdWatchResponse *w, WatchState *s) {
        const EtcdWatchOptions *o = s->o;
        int r;

        for (size_t i = 0; i < w->n_events; i++) {
                s->next_revision = MAX(s->next_revision, w->events[i].kv.mod_revision + 1);
                r = o->on_event(&w->events[i], o->userdata);
                if (r != 0)
                        return r;
        }
        if (w->canceled)
                return watch_canceled(w, s);
        if (w->n_events > 0)
                return 0;
        /* "created" or a progress notification: nothing up to w->revision
         * is missing. When created with a start revision, the older
         * events are still to come, so the resume point stays. */
        if (w->created)
                s->created = true;
        if (!w->created || o->start_revision <= 0)
                s->next_revision = MAX(s->next_revision, w->revision + 1);
        return o->on_sync ? o->on_sync(w->revision, o->userdata) : 0;
}

static int watch_line(const char *line, size_t len, void *userdata) {
        _cleanup_(etcd_watch_response_done) EtcdWatchResponse w = {};
        WatchState *s = userdata;
        int r;

        r = etcd_parse_watch_line(line, len, &w, s->e);
        if (r < 0)
                return r;
        return watch_dispatch(&w, s);
}

static size_t watch_write(char *p, size_t size, size_t nmemb, void *userdata) {
        WatchState *s = userdata;
        size_t n = size * nmemb;
        int r;

        r = etcd_line_buffer_feed(&s->lines, p, n, watch_line, s);
        if (r == -EMSGSIZE)
                r = nap_error_set(s->e, NAP_ERROR_INTERNAL, r, "etcd: watch stream line longer than %zu bytes",
                                  s->lines.max);
        if (r != 0) {
                s->stop = r;
                return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        return n;
}

static int watch_xferinfo(void *userdata, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
        const WatchState *s = userdata;

        return s->o->cancel && *s->o->cancel ? 1 : 0;
}

static json_t *watch_request(const char *key, const EtcdWatchOptions *o) {
        json_auto_t *cr = request_for_key(key);

        if (!cr || request_add_range(cr, key, o->prefix) < 0 ||
            (o->start_revision > 0 && json_set_int64(cr, "start_revision", o->start_revision) < 0) ||
            (o->progress_notify && json_set_bool(cr, "progress_notify", true) < 0))
                return NULL;
        return json_pack("{s:O}", "create_request", cr);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, sym_curl_easy_cleanup);

static int watch_setup(CURL *h, const EtcdClient *c, const char *url, const char *body,
                       const EtcdWatchOptions *o, WatchState *s) {
        if (sym_curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_WRITEDATA, s) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_xferinfo) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_XFERINFODATA, s) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
            sym_curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, usec_to_msec(o->duration_usec)) != CURLE_OK)
                return -EIO;
        return 0;
}

/* How one streaming attempt ended, as etcd_watch() returns it. */
static int watch_result(const EtcdClient *c, size_t idx, CURL *h, const NapCurlBroker *broker, CURLcode code,
                        const char *errbuf,
                        WatchState *s, bool *ret_retry) {
        long status = 0;
        int r;

        if (s->stop != 0)
                return s->stop;
        if (code == CURLE_ABORTED_BY_CALLBACK)
                return 0; /* cancelled */
        if (code == CURLE_OPERATION_TIMEDOUT && s->created && s->o->duration_usec > 0)
                return 0; /* ran for the duration asked */
        (void) sym_curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 0 && status != 200) {
                r = etcd_parse_error(s->lines.data ?: "", s->lines.size, s->e);
                return r < 0 ? r : nap_error_set(s->e, NAP_ERROR_INTERNAL, -EIO, "etcd %s: HTTP status %ld for watch",
                                                 c->endpoints[idx], status);
        }
        if (code != CURLE_OK) {
                r = curl_code_to_errno(code);
                *ret_retry = !s->created;
                return nap_error_set(s->e, NAP_ERROR_NOT_AVAILABLE, r, "etcd %s: watch: %s", c->endpoints[idx],
                                     nap_curl_failure(broker, code, errbuf));
        }
        return nap_error_set(s->e, NAP_ERROR_NOT_AVAILABLE, -ECONNRESET, "etcd %s: watch stream ended",
                             c->endpoints[idx]);
}

static int watch_once(EtcdClient *c, size_t idx, const char *body, WatchState *s, bool *ret_retry) {
        _cleanup_(sym_curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_(nap_curl_broker_freep) NapCurlBroker *broker = NULL; /* freed after h */
        _cleanup_(sym_curl_easy_cleanupp) CURL *h = NULL;
        _cleanup_free_ char *url = NULL;
        char errbuf[CURL_ERROR_SIZE];
        CURLcode code;

        headers = json_headers();
        h = sym_curl_easy_init();
        if (!headers || !h || asprintf(&url, "%s/v3/watch", c->endpoints[idx]) < 0)
                return -ENOMEM;
        if (curl_setup(h, c, &broker, headers, errbuf) < 0 || watch_setup(h, c, url, body, s->o, s) < 0)
                return nap_error_set(s->e, NAP_ERROR_INTERNAL, -EIO, "Failed to set up a libcurl watch");
        code = sym_curl_easy_perform(h);
        return watch_result(c, idx, h, broker, code, errbuf, s, ret_retry);
}

int etcd_watch(EtcdClient *c, const char *key, const EtcdWatchOptions *o,
               int64_t *ret_next_revision, NapError *e) {
        assert(c);
        assert(key);
        assert(o);

        WatchState s = { .o = o, .next_revision = MAX(o->start_revision, (int64_t) 0),
                         .lines.max = c->max_line_size };
        _cleanup_free_ char *body = NULL;
        NapError le = NAP_ERROR_NULL;
        json_auto_t *req = NULL;
        int r = -EIO;

        if (!o->on_event)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "etcd watch without an event callback");
        req = watch_request(key, o);
        if (!req || !(body = json_dumps(req, JSON_COMPACT)))
                return -ENOMEM;

        for (size_t k = 0; k < c->n_endpoints; k++) {
                size_t idx = (c->current + k) % c->n_endpoints;
                bool retry = false;

                le = NAP_ERROR_NULL;
                s.e = &le;
                s.lines.size = 0;
                s.stop = 0;
                r = watch_once(c, idx, body, &s, &retry);
                if (s.created)
                        c->current = idx;
                if (!retry)
                        break;
        }
        etcd_line_buffer_done(&s.lines);
        if (ret_next_revision)
                *ret_next_revision = s.next_revision;
        if (r < 0 && nap_error_is_set(&le))
                return nap_error_set(e, le.kind, r, "%s", le.message);
        return r;
}
