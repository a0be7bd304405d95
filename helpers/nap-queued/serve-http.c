/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <microhttpd.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "base/strv.h"
#include "serve-http.h"

struct HttpFront {
        struct MHD_Daemon *daemon;
        bool tcp;
        EtcdClient *etcd; /* used by the front's one thread only */
        HttpSettings settings;
        int64_t written;  /* the revision of this front's last write: a list shows it */
};

/* One request: its body as it arrives, bounded. */
typedef struct Request {
        char *body;
        size_t size;
        bool too_big;
} Request;

typedef struct Caller {
        bool admin; /* root on the Unix socket: any owner */
        char owner[NAP_USER_MAX + 1];
} Caller;

/* ---- answers ---------------------------------------------------------- */

static unsigned http_status(const NapError *e) {
        switch (e->kind) {
        case NAP_ERROR_NO_SUCH_JOB:
                return MHD_HTTP_NOT_FOUND;
        case NAP_ERROR_JOB_EXISTS:
                return MHD_HTTP_CONFLICT;
        case NAP_ERROR_PERMISSION_DENIED:
                return e->errnum == EKEYREJECTED ? MHD_HTTP_UNAUTHORIZED : MHD_HTTP_FORBIDDEN;
        default:
                break;
        }
        switch (e->errnum) {
        case ENOENT:
                return MHD_HTTP_NOT_FOUND;
        case EOPNOTSUPP:
                return MHD_HTTP_METHOD_NOT_ALLOWED;
        case E2BIG:
                return MHD_HTTP_CONTENT_TOO_LARGE;
        case EBUSY:
        case EALREADY:
                return e->kind == NAP_ERROR_INVALID_PARAMETER ? MHD_HTTP_CONFLICT : MHD_HTTP_SERVICE_UNAVAILABLE;
        default:
                break;
        }
        if (e->kind == NAP_ERROR_INVALID_PARAMETER || e->kind == NAP_ERROR_INVALID_NAME)
                return MHD_HTTP_BAD_REQUEST;
        return e->kind == NAP_ERROR_NOT_AVAILABLE ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *o) {
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
                return MHD_NO;
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!r)
                return free(text), MHD_NO;
        (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        enum MHD_Result ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

/* {"ok": false, "error": "…", "kind": "…"[, "parameter": "…"]} */
static enum MHD_Result send_error(struct MHD_Connection *conn, const NapError *e) {
        json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", e->message, "kind",
                              nap_error_kind_to_string(e->kind) ?: "Internal");
        if (o && e->parameter[0])
                (void) json_object_set_new(o, "parameter", json_string(e->parameter));
        return send_json(conn, http_status(e), o);
}

/* {"data": data, "ok": true}, the seed's order; extra fields after. */
static enum MHD_Result send_data(struct MHD_Connection *conn, json_t *data) {
        return send_json(conn, MHD_HTTP_OK, data ? json_pack("{s:o, s:b}", "data", data, "ok", 1) : NULL);
}

/* ---- who calls -------------------------------------------------------- */

static int caller_from_uid(uid_t uid, Caller *ret, NapError *e) {
        struct passwd pw, *found = NULL;
        char buf[4096];
        if (uid == 0) {
                ret->admin = true;
                return 0;
        }
        if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || !found || !nap_user_is_valid(found->pw_name))
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES,
                                     "uid %u has no user name nap takes as an owner", (unsigned) uid);
        snprintf(ret->owner, sizeof ret->owner, "%s", found->pw_name);
        return 0;
}

static int caller_unix(struct MHD_Connection *conn, Caller *ret, NapError *e) {
        const union MHD_ConnectionInfo *i = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ucred cred;
        socklen_t n = sizeof cred;
        if (!i || getsockopt(i->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) < 0)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES, "Cannot tell who is calling");
        return caller_from_uid(cred.uid, ret, e);
}

static int caller_tcp(HttpFront *f, struct MHD_Connection *conn, Caller *ret, NapError *e) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const char *token = auth ? startswith(auth, "Bearer ") : NULL;
        if (!token || !*token)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EKEYREJECTED,
                                     "Over TCP a bearer token is needed (napctl queue token OWNER)");
        return nap_queue_token_owner(f->etcd, f->settings.prefix, token, ret->owner, e);
}

/* The owner a request acts for: the caller, or for root the one asked. */
static int owner_for(const Caller *c, const char *asked, const char **ret, NapError *e) {
        if (c->admin) {
                *ret = asked;
                return 0;
        }
        if (asked && !streq(asked, c->owner))
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES, "%s may not act for owner %.32s",
                                     c->owner, asked);
        *ret = c->owner;
        return 0;
}

/* ---- the operations --------------------------------------------------- */

typedef struct Call {
        HttpFront *front;
        struct MHD_Connection *conn;
        const NapQueueRoute *route;
        const Caller *caller;
        const Request *request;
} Call;

static const char *arg(const Call *c, const char *name) {
        return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
}

static int filter_parse(const Call *c, NapJobFilter *f, NapError *e) {
        const char *status = arg(c, "status"), *limit = arg(c, "limit"), *offset = arg(c, "offset"),
                   *owner = arg(c, "owner_id");
        int r = owner_for(c->caller, isempty(owner) ? NULL : owner, &f->owner, e);
        f->status = _NAP_JOB_STATUS_INVALID;
        if (r >= 0 && status && *status) {
                /* the seed's README says "queue" once for queued */
                f->status = nap_job_status_from_string(streq(status, "queue") ? "queued" : status);
                if (f->status < 0)
                        r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                          "status must be queued, running, done or cancelled");
        }
        if (r >= 0 && limit)
                r = nap_queue_count_parse("limit", limit, &f->limit, e);
        if (r >= 0 && offset)
                r = nap_queue_count_parse("offset", offset, &f->offset, e);
        return r;
}

static enum MHD_Result op_list(const Call *c, NapError *e) {
        NapJobFilter f = {};
        NapJob *l = NULL;
        size_t n = 0, total = 0;
        const HttpSettings *s = &c->front->settings;
        int r = filter_parse(c, &f, e);
        if (r >= 0)
                r = s->list ? s->list(s->userdata, c->route->type, &f, c->front->written, &l, &n, &total, e) : -EAGAIN;
        if (r == -EAGAIN)
                r = nap_queue_list(c->front->etcd, s->prefix, c->route->type, &f, &l, &n, &total, e);
        if (r < 0)
                return send_error(c->conn, e);
        json_t *data = json_array();
        for (size_t i = 0; data && i < n; i++)
                if (json_array_append_new(data, nap_job_to_wire(l + i)) < 0)
                        data = (json_decref(data), NULL);
        nap_job_array_free(l, n);
        json_t *o = data ? json_pack("{s:o, s:b}", "data", data, "ok", 1) : NULL;
        if (o && (f.limit > 0 || f.offset > 0))
                (void) json_object_set_new(o, "total", json_integer((json_int_t) total));
        return send_json(c->conn, MHD_HTTP_OK, o);
}

static enum MHD_Result send_job(const Call *c, int r, NapJob *j, bool empty, const NapError *e) {
        if (r < 0)
                return send_error(c->conn, e);
        c->front->written = MAX(c->front->written, j->revision);
        json_t *data = empty ? json_object() : nap_job_to_wire(j);
        nap_job_done(j);
        return send_data(c->conn, data);
}

static enum MHD_Result op_create(const Call *c, NapError *e) {
        NapJob j = {};
        const char *owner = NULL;
        int r = nap_job_request_parse(c->request->body, c->request->size, &j, e);
        /* nap's own starts are made by nap only (start-common --queue):
         * another job there could hold the line for them */
        if (r >= 0 && streq(c->route->type, NAP_QUEUE_TYPE_START))
                r = nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                                  "The %s queue is nap's own: napctl start-common --queue adds to it", NAP_QUEUE_TYPE_START);
        if (r >= 0)
                r = owner_for(c->caller, j.owner, &owner, e);
        if (r >= 0) {
                snprintf(j.type, sizeof j.type, "%.*s", NAP_QUEUE_TYPE_MAX, c->route->type);
                r = nap_queue_create(c->front->etcd, c->front->settings.prefix, &j, e);
        }
        return send_job(c, r, &j, false, e);
}

static const char *job_owner(const Call *c) {
        return c->caller->admin ? NULL : c->caller->owner;
}

static enum MHD_Result op_job(const Call *c, NapError *e) {
        const NapQueueRoute *q = c->route;
        const char *p = c->front->settings.prefix;
        NapJob j = {};
        int64_t priority = 0;
        int r;
        switch (q->op) {
        case NAP_QUEUE_OP_GET:
                r = nap_queue_get(c->front->etcd, p, q->type, q->request_id, job_owner(c), &j, e);
                return send_job(c, r, &j, false, e);
        case NAP_QUEUE_OP_MOVE:
                r = nap_priority_request_parse(c->request->body, c->request->size, &priority, e);
                if (r >= 0)
                        r = nap_queue_move(c->front->etcd, p, q->type, q->request_id, job_owner(c), priority, &j, e);
                return send_job(c, r, &j, true, e); /* the seed answers {} */
        case NAP_QUEUE_OP_CANCEL:
                r = nap_queue_cancel(c->front->etcd, p, q->type, q->request_id, job_owner(c), &j, e);
                return send_job(c, r, &j, false, e);
        case NAP_QUEUE_OP_DONE:
                r = nap_queue_done(c->front->etcd, p, q->type, q->request_id, job_owner(c), &j, e);
                return send_job(c, r, &j, false, e);
        default:
                r = nap_queue_get(c->front->etcd, p, q->type, q->request_id, job_owner(c), &j, e);
                if (r < 0)
                        return send_error(c->conn, e);
                json_t *h = nap_job_history_to_wire(&j);
                nap_job_done(&j);
                return send_data(c->conn, h);
        }
}

static enum MHD_Result op_secret(const Call *c, NapError *e) {
        _cleanup_free_ char *secret = NULL;
        const char *owner = NULL;
        int r = owner_for(c->caller, arg(c, "owner_id"), &owner, e);
        if (r >= 0 && !owner)
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "root names the owner: ?owner_id=");
        if (r >= 0 && !nap_user_is_valid(owner))
                r = nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "owner_id must be a user name");
        if (r >= 0)
                r = nap_queue_secret(c->front->etcd, c->front->settings.prefix, owner, &secret, e);
        if (r < 0)
                return send_error(c->conn, e);
        return send_data(c->conn, json_pack("{s:s, s:s}", "OwnerID", owner, "Secret", secret));
}

static enum MHD_Result op_token(const Call *c, NapError *e) {
        _cleanup_free_ char *token = NULL;
        json_auto_t *o = NULL;
        const char *owner = NULL;
        if (!c->caller->admin || c->front->tcp)
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EACCES,
                                     "Only root, on the Unix socket, makes tokens"),
                       send_error(c->conn, e);
        if (c->request->size > NAP_QUEUE_BODY_MAX || !(o = json_loadb(c->request->body, c->request->size, 0, NULL)) ||
            json_unpack(o, "{s:s}", "owner_id", &owner) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The body must be {\"owner_id\": USER}"),
                       send_error(c->conn, e);
        if (nap_queue_token_create(c->front->etcd, c->front->settings.prefix, owner, &token, e) < 0)
                return send_error(c->conn, e);
        return send_data(c->conn, json_pack("{s:s, s:s}", "OwnerID", owner, "Token", token));
}

/* ---- the request ------------------------------------------------------ */

static int type_served(const HttpFront *f, const char *type, NapError *e) {
        if (strv_contains(f->settings.types, type))
                return 0;
        _cleanup_free_ char *all = strv_join(f->settings.types, ", ");
        nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT, "No queue of type %s here (the types are %s)", type,
                      all ?: "?");
        return nap_error_parameter(e, -ENOENT, "type");
}

static enum MHD_Result dispatch(HttpFront *f, struct MHD_Connection *conn, const char *url, const char *method,
                                const Request *q) {
        NapError e = NAP_ERROR_NULL;
        NapQueueRoute route = {};
        Caller caller = {};
        int r = f->tcp ? caller_tcp(f, conn, &caller, &e) : caller_unix(conn, &caller, &e);
        if (r >= 0 && q->too_big)
                r = nap_error_set(&e, NAP_ERROR_INVALID_PARAMETER, -E2BIG, "The body is larger than %d bytes",
                                  NAP_QUEUE_BODY_MAX);
        if (r >= 0)
                r = nap_queue_route_parse(method, url, &route, &e);
        if (r >= 0 && route.type[0])
                r = type_served(f, route.type, &e);
        if (r < 0)
                return send_error(conn, &e);
        Call c = { .front = f, .conn = conn, .route = &route, .caller = &caller, .request = q };
        switch (route.op) {
        case NAP_QUEUE_OP_LIST:
                return op_list(&c, &e);
        case NAP_QUEUE_OP_CREATE:
                return op_create(&c, &e);
        case NAP_QUEUE_OP_SECRET:
                return op_secret(&c, &e);
        case NAP_QUEUE_OP_TOKEN:
                return op_token(&c, &e);
        default:
                return op_job(&c, &e);
        }
}

static void request_append(Request *q, const char *p, size_t n) {
        if (q->too_big || q->size + n > NAP_QUEUE_BODY_MAX) {
                q->too_big = true; /* the rest is read and dropped */
                return;
        }
        char *b = realloc(q->body, q->size + n + 1);
        if (!b) {
                q->too_big = true;
                return;
        }
        memcpy(b + q->size, p, n);
        q->size += n;
        b[q->size] = 0;
        q->body = b;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        HttpFront *f = cls;
        Request *q = *con_cls;
        if (!q) {
                if (!(q = calloc(1, sizeof *q)))
                        return MHD_NO;
                *con_cls = q;
                if (f->settings.activity)
                        f->settings.activity(+1, f->settings.userdata);
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                request_append(q, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        enum MHD_Result r = dispatch(f, conn, url, method, q);
        log_debug("%s %s", method, url);
        return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
        HttpFront *f = cls;
        Request *q = *con_cls;
        if (!q)
                return;
        free(q->body);
        free(q);
        *con_cls = NULL;
        if (f->settings.activity)
                f->settings.activity(-1, f->settings.userdata);
}

HttpFront *http_front_stop(HttpFront *f) {
        if (!f)
                return NULL;
        if (f->daemon) {
                /* the listening socket is systemd's too: taken back from
                 * libmicrohttpd, which would shut it down (and the .socket
                 * unit with it), and left open until exit */
                (void) MHD_quiesce_daemon(f->daemon);
                MHD_stop_daemon(f->daemon);
        }
        etcd_client_free(f->etcd);
        free(f);
        return NULL;
}

int http_front_start(int fd, const HttpSettings *s, HttpFront **ret) {
        struct sockaddr_storage sa;
        socklen_t n = sizeof sa;
        NapError e = NAP_ERROR_NULL;
        HttpFront *f = calloc(1, sizeof *f);
        if (!f)
                return log_error_errno(ENOMEM, "Out of memory");
        f->settings = *s;
        if (getsockname(fd, (struct sockaddr *) &sa, &n) < 0)
                return http_front_stop(f), log_error_errno(errno, "Socket %d is not a socket: %m", fd);
        f->tcp = sa.ss_family != AF_UNIX;
        if (etcd_client_new(s->etcd, &f->etcd, &e) < 0)
                return http_front_stop(f), log_error_errno(e.errnum, "%s", e.message);
        f->etcd->max_response_size = QUEUE_ETCD_RESPONSE_MAX;
        f->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0, NULL, NULL, on_request, f,
                                     MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, f,
                                     MHD_OPTION_CONNECTION_TIMEOUT, 60U, MHD_OPTION_CONNECTION_LIMIT, 256U,
                                     MHD_OPTION_END);
        if (!f->daemon)
                return http_front_stop(f), log_error_errno(EIO, "libmicrohttpd refused socket %d", fd);
        log_info("Serving the queue's API on %s socket %d", f->tcp ? "a TCP" : "a Unix", fd);
        *ret = f;
        return 0;
}
