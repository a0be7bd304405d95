/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small varlink (https://varlink.org) server and client on sd-event.
 *
 * libsystemd 252 has no public sd-varlink, so nap carries this. The API is
 * shaped like sd-varlink (libsystemd >= 257) — varlink_X here is
 * sd_varlink_X there, with jansson's json_t in place of sd_json_variant and
 * interface descriptions given as text (lib/protocol/varlink-idl.h) — so that it can
 * be swapped when a newer libsystemd is found.
 *
 * Transport: AF_UNIX SOCK_STREAM; each message is one JSON object followed
 * by a NUL byte. A call is {method, parameters?, oneway?, more?, upgrade?},
 * a reply {parameters, continues?, error?}. One call per connection is in
 * flight at a time: the next one is read only when the current one got its
 * final reply, so replies come in the order of the calls.
 *
 * Server side: a method handler may reply at once, or keep a reference
 * (varlink_ref) and reply later from any other event source, so a slow
 * call never blocks other connections. When a peer goes away the link is
 * closed and the disconnect callback runs; handlers holding a link then get
 * -ENOTCONN from varlink_reply/varlink_notify and should drop it.
 *
 * A peer that sends something that is not a JSON object, a message larger
 * than the limit, or a call with malformed "method"/"parameters"/"oneway"/
 * "more" fields is disconnected: varlink has no error for a broken message.
 * Other connections are not affected.
 *
 * Single-threaded: a server, its links and its event loop belong to one
 * thread. json_t arguments are borrowed (the callee takes its own reference);
 * json_t results are borrowed too, with the lifetime documented per
 * function (json_incref() to keep one longer). Everything returns 0 or a
 * positive value on success and a negative errno on failure. Nothing logs. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "base/macro.h"
#include "protocol/varlink-idl.h"

typedef struct Varlink Varlink;
typedef struct VarlinkServer VarlinkServer;

/* org.varlink.service errors, with their parameters. */
#define VARLINK_ERROR_INTERFACE_NOT_FOUND "org.varlink.service.InterfaceNotFound"   /* {interface} */
#define VARLINK_ERROR_METHOD_NOT_FOUND "org.varlink.service.MethodNotFound"         /* {method} */
#define VARLINK_ERROR_METHOD_NOT_IMPLEMENTED "org.varlink.service.MethodNotImplemented" /* {method} */
#define VARLINK_ERROR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"     /* {parameter} */
#define VARLINK_ERROR_PERMISSION_DENIED "org.varlink.service.PermissionDenied"     /* {} */
#define VARLINK_ERROR_EXPECTED_MORE "org.varlink.service.ExpectedMore"             /* {} */
/* A bare errno returned by a handler: {errno, errnoName?}, named as
 * sd-varlink names it so clients see no change after a swap. */
#define VARLINK_ERROR_SYSTEM "io.systemd.System"
/* Local errors handed to a client's reply callback, never sent. */
#define VARLINK_ERROR_DISCONNECTED "io.systemd.Disconnected"
#define VARLINK_ERROR_TIMEOUT "io.systemd.TimedOut"
#define VARLINK_ERROR_PROTOCOL "io.systemd.Protocol"

#define VARLINK_DEFAULT_MESSAGE_MAX (8U * 1024U * 1024U)  /* incoming, per message */
#define VARLINK_OUTPUT_MAX (16U * 1024U * 1024U)          /* queued, not yet written */
#define VARLINK_DEFAULT_CONNECTIONS_MAX 1024U
#define VARLINK_DEFAULT_CONNECTIONS_PER_UID_MAX 128U
#define VARLINK_DEFAULT_TIMEOUT_USEC (45ULL * 1000000ULL) /* client calls */
#define VARLINK_TIMEOUT_INFINITY UINT64_MAX

typedef enum VarlinkMethodFlags {
        VARLINK_METHOD_ONEWAY = 1 << 0, /* no reply will be sent; replying is a no-op */
        VARLINK_METHOD_MORE = 1 << 1,   /* the client takes several replies (varlink_notify) */
} VarlinkMethodFlags;

typedef enum VarlinkBindFlags {
        /* Answer calls without "more": true with ExpectedMore, without
         * calling the handler. (sd-varlink takes this from the IDL.) */
        VARLINK_BIND_REQUIRES_MORE = 1 << 0,
} VarlinkBindFlags;

typedef enum VarlinkReplyFlags {
        VARLINK_REPLY_CONTINUES = 1 << 0, /* more replies follow */
        VARLINK_REPLY_ERROR = 1 << 1,     /* error_id is set */
} VarlinkReplyFlags;

typedef enum VarlinkServerFlags {
        VARLINK_SERVER_ROOT_ONLY = 1 << 0,        /* refuse peers with uid != 0 */
        VARLINK_SERVER_MYSELF_ONLY = 1 << 1,      /* refuse peers other than our uid and root */
        VARLINK_SERVER_ACCOUNT_UID = 1 << 2,      /* enforce the per-uid connection cap */
        VARLINK_SERVER_INHERIT_USERDATA = 1 << 3, /* a link's userdata starts as the server's */
} VarlinkServerFlags;

/* parameters: always an object (the empty one when the call had none),
 * already validated against the interface when one is registered;
 * borrowed for the duration of the callback (json_incref() to keep).
 * userdata is the link's (see VARLINK_SERVER_INHERIT_USERDATA). Returning
 * a negative errno without having replied sends VARLINK_ERROR_SYSTEM.
 * Returning 0 without replying defers the reply: keep a reference to link
 * and reply later; the next call on that link waits until then. A oneway
 * call ends when the handler returns, so never defer one: a late reply
 * would answer the link's next call. */
typedef int (*VarlinkMethod)(Varlink *link, json_t *parameters, VarlinkMethodFlags flags, void *userdata);
/* A new connection; returning < 0 refuses it. userdata: the server's. */
typedef int (*VarlinkConnect)(VarlinkServer *server, Varlink *link, void *userdata);
/* A connection is gone (peer hung up, protocol error, shutdown); drop
 * what you keep for it. Must not drop the last reference to server. */
typedef void (*VarlinkDisconnect)(VarlinkServer *server, Varlink *link, void *userdata);
/* nap extension: a connection refused because a cap was reached. */
typedef struct VarlinkRefusal {
        unsigned limit; /* the cap */
        bool per_uid;   /* connections_per_uid_max (else connections_max) */
        uid_t uid;      /* the peer's; (uid_t) -1 when unknown */
} VarlinkRefusal;
/* The parameters of the error a refused connection is sent (a new
 * reference, an object); NULL sends nothing. userdata: the server's. */
typedef json_t *(*VarlinkRefuse)(VarlinkServer *server, const VarlinkRefusal *refusal, void *userdata);
/* A reply on the client side; parameters (an object) and error_id are
 * borrowed for the duration of the callback. Local failures arrive as
 * VARLINK_ERROR_DISCONNECTED/TIMEOUT/PROTOCOL. */
typedef int (*VarlinkReply)(Varlink *link, json_t *parameters, const char *error_id, VarlinkReplyFlags flags, void *userdata);

/* ---- server ---- */

/* Comes with org.varlink.service (GetInfo, GetInterfaceDescription). */
int varlink_server_new(VarlinkServer **ret, VarlinkServerFlags flags);
VarlinkServer *varlink_server_ref(VarlinkServer *s);
/* The last unref shuts the server down (see varlink_server_shutdown). */
VarlinkServer *varlink_server_unref(VarlinkServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkServer *, varlink_server_unref);

/* What GetInfo reports; NULL leaves a value unchanged (default ""). */
int varlink_server_set_info(VarlinkServer *s, const char *vendor, const char *product, const char *version, const char *url);
/* Parses and registers an interface description: calls to its methods are
 * validated against it, GetInterfaceDescription returns the text as given.
 * -EBADMSG if it does not parse, -EEXIST if registered already. */
int varlink_server_add_interface(VarlinkServer *s, const char *description);
/* method is fully qualified ("io.nap.Manager.ListServices"). A method
 * bound without a registered interface is called without validation;
 * a method of a registered interface that is not bound answers
 * MethodNotImplemented. -EEXIST if bound already. */
int varlink_server_bind_method(VarlinkServer *s, const char *method, VarlinkMethod callback);
/* The fully qualified method of the call a server link is handling, as
 * sd_varlink_get_current_method(): one callback can serve many methods.
 * Borrowed from the call; NULL when no call is in progress. */
const char *varlink_get_current_method(Varlink *link);
int varlink_server_bind_method_full(VarlinkServer *s, const char *method, VarlinkMethod callback, VarlinkBindFlags flags);
/* Pairs of (const char *method, VarlinkMethod callback), NULL-terminated. */
int varlink_server_bind_method_many(VarlinkServer *s, ...) _sentinel_;
int varlink_server_bind_connect(VarlinkServer *s, VarlinkConnect callback);
int varlink_server_bind_disconnect(VarlinkServer *s, VarlinkDisconnect callback);
/* nap extension. sd-varlink closes a connection over a cap without a
 * word, and its client sees a reset. With this, such a connection is
 * first sent {"error": error_id, "parameters": callback(...)} in one
 * non-blocking write (a fresh socket's buffer takes it whole): the reply
 * that the client's first call reads, sent or not yet. A connection from
 * a listener is then shut for writing and closed once the peer wrote (its
 * call) or hung up, after 2 s at the latest, so that a client that writes
 * before it reads is not failed by EPIPE first; at most 64 wait so at
 * once, more are closed at once. callback NULL: back to the silent close. */
int varlink_server_bind_refuse(VarlinkServer *s, const char *error_id, VarlinkRefuse callback);
void *varlink_server_set_userdata(VarlinkServer *s, void *userdata); /* returns the old one */
void *varlink_server_get_userdata(VarlinkServer *s);

int varlink_server_set_connections_max(VarlinkServer *s, unsigned m);
int varlink_server_set_connections_per_uid_max(VarlinkServer *s, unsigned m);
/* nap extension: the incoming message cap for new connections. */
int varlink_server_set_message_max(VarlinkServer *s, size_t m);
unsigned varlink_server_current_connections(VarlinkServer *s);

/* Takes a bound, listening AF_UNIX stream socket (e.g. from
 * sd_listen_fds()); owned by the server on success. */
int varlink_server_listen_fd(VarlinkServer *s, int fd);
/* Binds "/path" (a stale socket there is replaced; mode applied with
 * chmod) or "@abstract"; a "unix:" prefix is accepted. */
int varlink_server_listen_address(VarlinkServer *s, const char *address, mode_t mode);
/* Serves an already connected socket; owned by the server on success.
 * *ret (optional) is not a new reference. -ETOOMANYREFS over a cap (the
 * refusal is sent first, see varlink_server_bind_refuse), -EPERM if
 * refused by the server flags or the connect callback's error. */
int varlink_server_add_connection(VarlinkServer *s, int fd, Varlink **ret);

/* NULL: the default event loop of this thread. */
int varlink_server_attach_event(VarlinkServer *s, sd_event *e, int64_t priority);
int varlink_server_detach_event(VarlinkServer *s);
sd_event *varlink_server_get_event(VarlinkServer *s);
/* Closes every connection (disconnect callbacks run) and every listener. */
int varlink_server_shutdown(VarlinkServer *s);

/* ---- links: both sides ---- */

Varlink *varlink_ref(Varlink *v);
Varlink *varlink_unref(Varlink *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(Varlink *, varlink_unref);
/* Disconnects (a server link runs the disconnect callback). */
int varlink_close(Varlink *v);
void *varlink_set_userdata(Varlink *v, void *userdata); /* returns the old one */
void *varlink_get_userdata(Varlink *v);
VarlinkServer *varlink_get_server(Varlink *v); /* NULL for clients and after shutdown */
bool varlink_is_connected(Varlink *v);
/* Credentials of the peer, taken with SO_PEERCRED when connected.
 * -ENODATA if unknown. */
int varlink_get_peer_uid(Varlink *v, uid_t *ret);
int varlink_get_peer_gid(Varlink *v, gid_t *ret);
int varlink_get_peer_pid(Varlink *v, pid_t *ret);
/* The incoming message cap of this link. */
int varlink_set_message_max(Varlink *v, size_t m);

/* ---- replying (server side) ---- */

/* The final reply. parameters: an object or NULL ({}). -EBUSY if no call
 * is waiting for a reply, -ENOTCONN if the peer is gone, -ENOBUFS if the
 * peer does not read and the queue is full (the call stays open). */
int varlink_reply(Varlink *v, json_t *parameters);
/* Same, parameters built with json_pack() format and arguments. */
int varlink_replyf(Varlink *v, const char *fmt, ...);
/* The final reply as an error. error_id: "interface.Name". */
int varlink_error(Varlink *v, const char *error_id, json_t *parameters);
int varlink_errorf(Varlink *v, const char *error_id, const char *fmt, ...);
int varlink_error_invalid_parameter_name(Varlink *v, const char *name);
/* VARLINK_ERROR_SYSTEM {errno} for a negative (or positive) errno. */
int varlink_error_errno(Varlink *v, int error);
/* A reply with continues: true. On a call without "more" this sends
 * ExpectedMore instead and ends the call, as sd-varlink does. */
int varlink_notify(Varlink *v, json_t *parameters);
int varlink_notifyf(Varlink *v, const char *fmt, ...);

/* ---- client side ---- */

int varlink_connect_address(Varlink **ret, const char *address);
/* Takes a connected AF_UNIX stream socket; owned by the link on success. */
int varlink_connect_fd(Varlink **ret, int fd);
/* Per call (and per reply of a "more" call); VARLINK_TIMEOUT_INFINITY. */
int varlink_set_relative_timeout(Varlink *v, uint64_t usec);

/* Blocking call. *ret_parameters (an object) and *ret_error_id are
 * borrowed, valid until the next call on v or its last unref. Returns 0
 * also when the reply is an error if ret_error_id is given; without it an
 * error reply becomes varlink_error_to_errno(). -ETIMEDOUT, -ECONNRESET
 * if the server hung up without a reply, -EPROTO/-EBADMSG on a broken
 * reply (v is then disconnected). What a server sent before it hung up
 * is read even when the call could no longer be written (a refusal,
 * varlink_server_bind_refuse()), and taken as its reply. */
int varlink_call(Varlink *v, const char *method, json_t *parameters, json_t **ret_parameters, const char **ret_error_id);
/* Blocking call with "more": the parameters of every reply, in an array
 * (borrowed as above). An error reply ends the collection; the array then
 * holds the replies before it. */
int varlink_collect(Varlink *v, const char *method, json_t *parameters, json_t **ret_array, const char **ret_error_id);
/* "oneway": queued; varlink_flush() or the event loop sends it. */
int varlink_send(Varlink *v, const char *method, json_t *parameters);
/* Asynchronous call, its reply goes to the reply callback. */
int varlink_invoke(Varlink *v, const char *method, json_t *parameters);
/* Asynchronous call with "more": every reply goes to the reply callback,
 * the last one without VARLINK_REPLY_CONTINUES. */
int varlink_observe(Varlink *v, const char *method, json_t *parameters);
int varlink_bind_reply(Varlink *v, VarlinkReply callback);
/* No call outstanding (or disconnected). */
bool varlink_is_idle(Varlink *v);

/* One step of I/O and dispatch without blocking: > 0 if something
 * happened (call again), 0 if there is nothing to do (varlink_wait()),
 * < 0 on failure (the link is then disconnected). */
int varlink_process(Varlink *v);
/* Waits for I/O up to usec (and the call's deadline). 1: something to
 * process, 0: timeout. */
int varlink_wait(Varlink *v, uint64_t usec);
/* Blocks until everything queued is written. */
int varlink_flush(Varlink *v);
int varlink_attach_event(Varlink *v, sd_event *e, int64_t priority);
int varlink_detach_event(Varlink *v);

/* org.varlink.service errors, VARLINK_ERROR_SYSTEM and the local errors
 * to a negative errno; anything else -EBADR. */
int varlink_error_to_errno(const char *error_id, json_t *parameters) _pure_;
