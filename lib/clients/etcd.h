/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An etcd v3 client over etcd's JSON gateway (POST BASE/v3/..., etcd ≥ 3.4),
 * with libcurl and jansson. Keys and values travel base64-encoded; 64-bit
 * numbers come back as JSON strings (numbers are accepted too) and are sent
 * as strings, so nothing passes through a double.
 *
 * Endpoints: a list of base URLs ("http://10.0.0.1:2379"). A request goes
 * to the endpoint that answered last; when it cannot be reached (refused,
 * unresolvable, connect timeout) the next one is tried, and so on once
 * around the list. Once a request has been sent, only idempotent ones
 * (everything but a txn that writes) are retried elsewhere after a
 * timeout or a dropped connection, so a compare-and-swap is never applied
 * twice. Every attempt is bounded by connect_timeout_usec and
 * timeout_usec, so a call takes at most n_endpoints × timeout_usec.
 *
 * Errors: negative errno, and the NapError (if given) says which endpoint
 * and what etcd said. Unreachable endpoints are NAP_ERROR_NOT_AVAILABLE
 * (-ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -ECONNRESET); errors etcd
 * reports are NAP_ERROR_INTERNAL with etcd's message and the gRPC code
 * mapped by etcd_grpc_code_to_errno() (NotFound → -ENOENT, …); an answer
 * larger than max_response_size (or a stream line larger than
 * max_line_size) is -EMSGSIZE; an answer that is not what the gateway
 * sends is -EBADMSG.
 *
 * An EtcdClient is used by one thread at a time; it never logs. */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define ETCD_CONNECT_TIMEOUT_USEC_DEFAULT (2ULL * 1000000ULL)
#define ETCD_TIMEOUT_USEC_DEFAULT (5ULL * 1000000ULL)
#define ETCD_MAX_RESPONSE_SIZE_DEFAULT ((size_t) 4 * 1024 * 1024)
#define ETCD_MAX_LINE_SIZE_DEFAULT ((size_t) 4 * 1024 * 1024)

typedef struct EtcdClient {
        /* Tunables: defaults set by etcd_client_new(), change them freely
         * between calls. */
        uint64_t connect_timeout_usec; /* per attempt, TCP (+TLS) connect; 0: libcurl's 300 s */
        uint64_t timeout_usec;         /* per attempt, the whole request; 0: none (do not) */
        size_t max_response_size;      /* bigger answers: -EMSGSIZE */
        size_t max_line_size;          /* bigger stream (watch) lines: -EMSGSIZE */

        /* Private. */
        char **endpoints;              /* without trailing '/' */
        size_t n_endpoints;
        size_t current;                /* the endpoint that answered last */
        void *curl;                    /* CURL *, kept for connection reuse */
        void *curl_broker;             /* its NapCurlBroker * (clients/curl-connect.h) */
} EtcdClient;

/* endpoints: http:// or https:// base URLs, at least one (nap.conf Etcd=).
 * Does not connect. -EINVAL (NAP_ERROR_INVALID_CONFIG) for a bad URL. */
int etcd_client_new(char *const *endpoints, EtcdClient **ret, NapError *e);
EtcdClient *etcd_client_free(EtcdClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdClient *, etcd_client_free);

/* The base URL that answered last (or will be tried first). */
const char *etcd_client_endpoint(const EtcdClient *c);

/* Keys are C strings; values are bytes. Decoded keys and values are
 * NUL-terminated (not counted in the sizes) so text can be used as is. */
typedef struct EtcdKeyValue {
        char *key;
        size_t key_size;
        char *value;                   /* never NULL; "" for keys_only and DELETE events */
        size_t value_size;
        int64_t create_revision;
        int64_t mod_revision;
        int64_t version;
        int64_t lease;                 /* 0: none */
} EtcdKeyValue;

void etcd_key_value_done(EtcdKeyValue *kv);

typedef struct EtcdRange {
        EtcdKeyValue *kvs;
        size_t n_kvs;
        int64_t count;                 /* keys matching, even beyond the limit */
        bool more;                     /* the limit cut the answer short */
        int64_t revision;              /* store revision the answer reflects */
} EtcdRange;

void etcd_range_done(EtcdRange *r);

/* lease 0: none. ret_revision (optional): the store revision of the put. */
int etcd_put(EtcdClient *c, const char *key, const void *value, size_t size, int64_t lease,
             int64_t *ret_revision, NapError *e);

/* 1 and *ret filled (etcd_key_value_done() it) when the key exists,
 * 0 and *ret zeroed when it does not. ret may be NULL. */
int etcd_get(EtcdClient *c, const char *key, EtcdKeyValue *ret, NapError *e);

/* Every key starting with prefix ("" is every key), in key order, at most
 * limit of them (0: no limit); keys_only leaves values out. */
int etcd_range_prefix(EtcdClient *c, const char *prefix, size_t limit, bool keys_only,
                      EtcdRange *ret, NapError *e);

/* Deletes key, or every key starting with it when prefix is true.
 * ret_deleted (optional): how many keys went. */
int etcd_delete(EtcdClient *c, const char *key, bool prefix, int64_t *ret_deleted, NapError *e);

/* Compare-and-swap in one txn: if the key's target compares equal, put
 * value (on lease, 0: none) and return 1; else fetch the key and return 0,
 * with *ret_current (optional) filled: zeroed if the key does not exist. */
typedef enum EtcdCompareTarget {
        ETCD_COMPARE_VALUE,            /* value bytes equal .value/.value_size */
        ETCD_COMPARE_MOD_REVISION,     /* mod_revision == .revision */
        ETCD_COMPARE_CREATE_REVISION,  /* create_revision == .revision; 0: key absent */
        _ETCD_COMPARE_TARGET_MAX,
        _ETCD_COMPARE_TARGET_INVALID = -EINVAL,
} EtcdCompareTarget;

typedef struct EtcdCompare {
        EtcdCompareTarget target;
        const void *value;
        size_t value_size;
        int64_t revision;
} EtcdCompare;

int etcd_txn_cas(EtcdClient *c, const char *key, const EtcdCompare *cmp,
                 const void *value, size_t size, int64_t lease,
                 EtcdKeyValue *ret_current, NapError *e);
/* etcd_txn_cas() with create_revision == 0: "create if absent". */
int etcd_create(EtcdClient *c, const char *key, const void *value, size_t size, int64_t lease,
                EtcdKeyValue *ret_current, NapError *e);

/* A general txn: compares on several keys, and puts and deletes of
 * several keys, in one atomic step. */
typedef struct EtcdTxnCompare {
        const char *key;
        EtcdCompareTarget target;      /* as in EtcdCompare */
        const void *value;             /* ETCD_COMPARE_VALUE */
        size_t value_size;
        int64_t revision;              /* the revision targets */
} EtcdTxnCompare;

typedef enum EtcdTxnOpType {
        ETCD_TXN_PUT,
        ETCD_TXN_DELETE,               /* the key only, never a prefix */
        _ETCD_TXN_OP_TYPE_MAX,
        _ETCD_TXN_OP_TYPE_INVALID = -EINVAL,
} EtcdTxnOpType;

typedef struct EtcdTxnOp {
        EtcdTxnOpType type;
        const char *key;
        const void *value;             /* PUT */
        size_t value_size;
        int64_t lease;                 /* PUT; 0: none */
} EtcdTxnOp;

/* etcd's default --max-txn-ops, for the compares and for the ops alike. */
#define ETCD_TXN_OPS_MAX 128

/* If every compare holds, applies every op in order and returns 1; else
 * changes nothing and returns 0. ret_revision (optional): the store
 * revision of the answer (after the ops when they ran). Arguments are
 * checked before anything is sent: a NULL or empty key, a bad target or
 * type, a NULL value or array of non-zero size is -EINVAL, more than
 * ETCD_TXN_OPS_MAX compares or ops -E2BIG (NAP_ERROR_INVALID_PARAMETER).
 * etcd itself refuses (-EINVAL) a txn that puts a key twice or puts and
 * deletes it. Never sent twice, as etcd_txn_cas(): after -ETIMEDOUT,
 * -ECONNRESET and the like whether it was applied is unknown. */
int etcd_txn(EtcdClient *c, const EtcdTxnCompare *compares, size_t n_compares,
             const EtcdTxnOp *ops, size_t n_ops, int64_t *ret_revision, NapError *e);

/* Several keys read at one revision, in one txn of range requests (read
 * only, so retried like etcd_get()). keys: NULL-terminated, at most
 * ETCD_TXN_OPS_MAX (-E2BIG), none empty (-EINVAL); NULL: none. ret:
 * as many entries as keys, filled for present keys (etcd_key_value_done()
 * each) and zeroed for absent ones (all zeroed on error). Returns how many
 * keys are present. */
int etcd_get_many(EtcdClient *c, char *const *keys, EtcdKeyValue *ret, int64_t *ret_revision, NapError *e);

/* Leases. TTLs are in seconds; etcd raises a TTL below its minimum (2 s
 * on a single member). */
int etcd_lease_grant(EtcdClient *c, int64_t ttl, int64_t *ret_id, int64_t *ret_ttl, NapError *e);
/* One keep-alive. > 0: the TTL granted again. -ENOENT: the lease is LOST
 * (expired or revoked: etcd answers without a TTL); grant a new one. */
int etcd_lease_keepalive(EtcdClient *c, int64_t id, int64_t *ret_ttl, NapError *e);
/* The lease's keys are deleted at once. -ENOENT: no such lease (already
 * expired or revoked, perhaps by an earlier retried attempt). */
int etcd_lease_revoke(EtcdClient *c, int64_t id, NapError *e);

/* Watch. */
typedef enum EtcdEventType {
        ETCD_EVENT_PUT,
        ETCD_EVENT_DELETE,
        _ETCD_EVENT_TYPE_MAX,
        _ETCD_EVENT_TYPE_INVALID = -EINVAL,
} EtcdEventType;

const char *etcd_event_type_to_string(EtcdEventType t) _pure_;

typedef struct EtcdEvent {
        EtcdEventType type;
        EtcdKeyValue kv;               /* DELETE: key and mod_revision only */
} EtcdEvent;

/* Return 0 to go on; > 0 stops the watch and etcd_watch() returns it;
 * < 0 stops it and etcd_watch() returns that error. The event is only
 * valid during the call. */
typedef int (*etcd_event_fn)(const EtcdEvent *event, void *userdata);
/* The watcher has seen every change up to revision: called once when the
 * watch is created, and on each progress notification. Same return rule. */
typedef int (*etcd_sync_fn)(int64_t revision, void *userdata);

typedef struct EtcdWatchOptions {
        bool prefix;                   /* every key starting with the key */
        int64_t start_revision;        /* 0: changes after now; else from this revision on */
        bool progress_notify;          /* ask etcd for periodic progress notifications */
        uint64_t duration_usec;        /* 0: no end; else stop (return 0) after this long */
        const volatile sig_atomic_t *cancel; /* non-zero: stop (return 0) within ~1 s */
        etcd_event_fn on_event;
        etcd_sync_fn on_sync;          /* may be NULL */
        void *userdata;
} EtcdWatchOptions;

/* Blocks, calling on_event for each change in order, until a callback or
 * the options stop it, or the stream fails. Connecting fails over like any
 * request; a stream that breaks later returns its error (-ECONNRESET, …).
 * etcd cancelling the watch because start_revision was compacted is
 * -ERANGE. ret_next_revision (optional, always set): the revision to
 * resume from, one past the last one seen (the compact revision after
 * -ERANGE). The watch uses its own connection, not c's. */
int etcd_watch(EtcdClient *c, const char *key, const EtcdWatchOptions *o,
               int64_t *ret_next_revision, NapError *e);

/* gRPC status code (as in the gateway's "code") → negative errno. */
int etcd_grpc_code_to_errno(int code) _pure_;

/* Pure parsers of the gateway's answers, separate from the I/O so that
 * they can be tested and fuzzed on their own. text need not be
 * NUL-terminated. Each accepts the gateway's error object
 * ({"error":…,"code":N,"message":…}) and returns its mapped errno. */
int etcd_parse_error(const char *text, size_t len, NapError *e);
int etcd_parse_put_response(const char *text, size_t len, int64_t *ret_revision, NapError *e);
int etcd_parse_range_response(const char *text, size_t len, EtcdRange *ret, NapError *e);
int etcd_parse_delete_response(const char *text, size_t len, int64_t *ret_deleted, NapError *e);
/* 1: succeeded; 0: failed, *ret_current from the failure branch's range. */
int etcd_parse_txn_response(const char *text, size_t len, EtcdKeyValue *ret_current, NapError *e);
/* etcd_txn()'s and etcd_get_many()'s answer. 1: succeeded, and the
 * success branch answered n requests; 0: failed. ret_revision (optional):
 * the store revision. ret_kvs (optional, n of them): the n answers are
 * ranges, each key moved there (zeroed when absent, and all zeroed on
 * error). */
int etcd_parse_txn_ops_response(const char *text, size_t len, size_t n, EtcdKeyValue *ret_kvs,
                                int64_t *ret_revision, NapError *e);
int etcd_parse_lease_grant_response(const char *text, size_t len, int64_t *ret_id, int64_t *ret_ttl,
                                    NapError *e);
/* A keep-alive answer is a stream: the first line counts. Returns the TTL
 * (> 0), or -ENOENT when the lease is lost. */
int etcd_parse_keepalive_response(const char *text, size_t len, int64_t *ret_ttl, NapError *e);
/* Any other empty-bodied answer (lease revoke): just errors. */
int etcd_parse_header_response(const char *text, size_t len, NapError *e);

/* One line of a watch stream: {"result":{…}} or a stream error
 * ({"error":{"grpc_code":N,"message":…}}). */
typedef struct EtcdWatchResponse {
        bool created;
        bool canceled;
        int64_t revision;              /* header revision */
        int64_t compact_revision;
        char *cancel_reason;           /* NULL if none */
        EtcdEvent *events;
        size_t n_events;
} EtcdWatchResponse;

void etcd_watch_response_done(EtcdWatchResponse *w);
int etcd_parse_watch_line(const char *text, size_t len, EtcdWatchResponse *ret, NapError *e);

/* Newline framing for streams, bounded: feed bytes as they come; f gets
 * each complete line (without '\n'). A line longer than max is -EMSGSIZE.
 * A negative return from f stops and is returned; so is a positive one
 * (the rest of the input is not consumed). */
typedef struct EtcdLineBuffer {
        char *data;
        size_t size;
        size_t allocated;
        size_t max;
} EtcdLineBuffer;

typedef int (*etcd_line_fn)(const char *line, size_t len, void *userdata);

int etcd_line_buffer_feed(EtcdLineBuffer *b, const void *p, size_t n, etcd_line_fn f, void *userdata);
void etcd_line_buffer_done(EtcdLineBuffer *b);
