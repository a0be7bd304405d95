/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The resource queue (seed 003, inwinstack/resource-queue, done for real):
 * per-type queues of jobs that wait until the inventory can place them,
 * then are admitted (lib/cluster/admission.h) and their client called
 * back (lib/cluster/callback.h). Everything lives in etcd, under
 * ClusterPrefix= (default /nap), so any host's nap-queued serves the same
 * queue and a restart loses nothing:
 *
 *   PREFIX/queue/jobs/TYPE/REQUEST_ID   a job (its JSON below); its ID is
 *                                       the key's create_revision
 *   PREFIX/queue/callbacks/HEX          TYPE/REQUEST_ID of the job holding
 *                                       a callback URL (HEX: its SHA-256):
 *                                       a callback is unique
 *   PREFIX/queue/deliveries/TYPE/REQUEST_ID  a callback still to deliver
 *                                       (written with the admission)
 *   PREFIX/queue/secrets/OWNER          the owner's HMAC secret (hex)
 *   PREFIX/queue/tokens/HEX             the owner of a bearer token (HEX:
 *                                       the token's SHA-256; never the token)
 *
 * A request_id is unique per type and a callback unique in the cluster:
 * both are created in one txn that requires both keys absent. A job stays
 * (status done or cancelled, DeletedAt set) after it ends, so its
 * request_id stays taken.
 *
 * Names: TYPE [a-z0-9][a-z0-9-]{0,31}; REQUEST_ID [A-Za-z0-9_.@-]{1,64}
 * (no '/': it is a key and a URL segment); OWNER a nap user name
 * ([a-z][a-z0-9-]{0,31}: a job's reservations are its owner's).
 *
 * data.instances[]: each {"VCPU": N, "Memory": N, "Disk": N}, integers:
 * VCPU in CPUs (1000 milli-cores each), Memory in MiB, Disk in GiB (as
 * an OpenStack flavor says them); VCPU and Memory at least 1, Disk 0 or
 * more; 1 to NAP_JOB_INSTANCES_MAX of them. The rest of data is the
 * client's and is kept as given.
 *
 * Priority: lower first; a new job gets the nanoseconds since
 * 2018-07-26T05:51:00.621743520Z (the seed's epoch), so the queue is FIFO
 * until a client moves a job: to the front with min−1, to the back with
 * max+1, between two with their mean (nap_queue_priority_between()).
 * Ties go to the lower ID.
 *
 * Nothing here logs. */

#include <stdbool.h>
#include <stdint.h>

#include "clients/etcd.h"
#include "model/node.h"

#define NAP_QUEUE_TYPE_MAX 32
#define NAP_REQUEST_ID_MAX 64U /* as model/intent.h: the same limit, the same token */
#define NAP_CALLBACK_MAX 2048
#define NAP_JOB_DATA_MAX (16 * 1024)
#define NAP_JOB_INSTANCES_MAX 16
#define NAP_QUEUE_BODY_MAX (64 * 1024)
/* The seed's priority epoch: UnixNano() - this is a new job's priority. */
#define NAP_QUEUE_PRIORITY_EPOCH_NSEC INT64_C(1532584260621743520)

typedef enum NapJobStatus {
        NAP_JOB_QUEUED,
        NAP_JOB_RUNNING,
        NAP_JOB_DONE,
        NAP_JOB_CANCELLED,
        _NAP_JOB_STATUS_MAX,
        _NAP_JOB_STATUS_INVALID = -EINVAL,
} NapJobStatus;

const char *nap_job_status_to_string(NapJobStatus s) _pure_;
NapJobStatus nap_job_status_from_string(const char *s) _pure_;

typedef enum NapDeliveryState {
        NAP_DELIVERY_NONE,      /* not admitted yet */
        NAP_DELIVERY_PENDING,   /* to be POSTed (again) */
        NAP_DELIVERY_DELIVERED, /* the callback answered 2xx */
        NAP_DELIVERY_FAILED,    /* the retries ran out */
        _NAP_DELIVERY_STATE_MAX,
        _NAP_DELIVERY_STATE_INVALID = -EINVAL,
} NapDeliveryState;

const char *nap_delivery_state_to_string(NapDeliveryState s) _pure_;
NapDeliveryState nap_delivery_state_from_string(const char *s) _pure_;

typedef struct NapJobInstance {
        uint64_t vcpu;       /* CPUs */
        uint64_t memory_mib;
        uint64_t disk_gib;
        char node[NAP_NODE_NAME_MAX + 1]; /* where it was placed; "" while queued */
} NapJobInstance;

typedef struct NapJobEvent {
        NapJobStatus status;
        uint64_t at_usec;
} NapJobEvent;

typedef struct NapJob {
        int64_t id;          /* the key's create_revision (the seed's ID) */
        int64_t revision;    /* its mod_revision: what an update compares */
        char type[NAP_QUEUE_TYPE_MAX + 1];
        char request_id[NAP_REQUEST_ID_MAX + 1];
        char owner[NAP_USER_MAX + 1];
        char *data;          /* the client's data object, compact JSON, keys sorted */
        char *callback;
        int64_t priority;
        NapJobStatus status;
        uint64_t created_usec, updated_usec, deleted_usec; /* deleted 0: not */
        NapJobInstance instances[NAP_JOB_INSTANCES_MAX];
        unsigned n_instances;
        NapJobEvent *history;
        size_t n_history;
        NapDeliveryState delivery;
        char delivery_id[96];
        unsigned attempts;
        uint64_t next_attempt_usec;
        char *delivery_error; /* the last failed attempt's reason, or NULL */
} NapJob;

void nap_job_done(NapJob *j);
void nap_job_array_free(NapJob *l, size_t n);

/* ---- outside input: pure, fuzzed (tests/fuzz/fuzz-queue.c) ------------- */

int nap_queue_type_check(const char *s, NapError *e);
int nap_job_request_id_check(const char *s, NapError *e);
/* http:// or https://, a host, no spaces or control characters. */
int nap_callback_check(const char *s, NapError *e);

/* A create request's body {"request_id", "owner_id", "data", "callback"}
 * into ret (type, priority and times left to the caller). Every field
 * named in the error's parameter. */
int nap_job_request_parse(const char *body, size_t size, NapJob *ret, NapError *e);
/* A reorder's body {"priority": N}, N an integer. */
int nap_priority_request_parse(const char *body, size_t size, int64_t *ret, NapError *e);

/* The job as the seed's API shows it: ID, CreatedAt, UpdatedAt,
 * DeletedAt, RequestID, Type, OwnerID, Data (a string), Callback,
 * Priority, Status (RFC 3339 times, UTC); and what nap adds: Placements,
 * CallbackStatus, CallbackAttempts, DeliveryID. NULL: out of memory. */
json_t *nap_job_to_wire(const NapJob *j);
/* [{"Status", "At"}, …], oldest first. */
json_t *nap_job_history_to_wire(const NapJob *j);
/* RFC 3339 in UTC with nanoseconds: "2018-08-27T03:27:08.564319000Z". */
int nap_rfc3339(uint64_t usec, char buf[static 40]);

/* The stored form (the key's value) and back; id and revision come from
 * the key. */
int nap_job_to_json(const NapJob *j, char **ret);
int nap_job_from_json(const char *text, size_t size, NapJob *ret, NapError *e);

/* Queue order: priority, then ID. */
int nap_job_compare(const NapJob *a, const NapJob *b) _pure_;
/* The seed's rules: before the first (min−1), after the last (max+1),
 * between two (their mean, rounded down; -ERANGE when they are adjacent). */
int nap_queue_priority_between(int64_t before, int64_t after, int64_t *ret);

/* ---- the queue in etcd ------------------------------------------------ */

char *nap_key_queue(const char *prefix);                 /* PREFIX/queue/ */
char *nap_key_jobs(const char *prefix, const char *type); /* PREFIX/queue/jobs/TYPE/ */
char *nap_key_job(const char *prefix, const char *type, const char *request_id);
char *nap_key_deliveries(const char *prefix);            /* PREFIX/queue/deliveries/ */
char *nap_key_delivery(const char *prefix, const char *type, const char *request_id);

typedef struct NapJobFilter {
        const char *owner;   /* NULL: every owner */
        NapJobStatus status; /* _NAP_JOB_STATUS_INVALID: any */
        size_t offset, limit; /* limit 0: all */
} NapJobFilter;

/* j: as nap_job_request_parse() left it, with type. Sets priority, times,
 * status queued, id and revision; makes the owner's secret if none.
 * JobExists when the request_id or the callback is taken. */
int nap_queue_create(EtcdClient *c, const char *prefix, NapJob *j, NapError *e);
/* The jobs of type in queue order, filtered; ret_total: how many passed
 * the filter (before offset and limit). */
int nap_queue_list(EtcdClient *c, const char *prefix, const char *type, const NapJobFilter *f, NapJob **ret,
                   size_t *ret_n, size_t *ret_total, NapError *e);
/* The jobs of every type in memory, kept current by a watch of
 * ClusterPrefix= (nap-queued's): a list of 10,000 jobs without reading
 * them all from etcd each time. Not locked: its user locks. */
typedef struct NapJobIndex NapJobIndex;

int nap_job_index_new(const char *prefix, NapJobIndex **ret);
NapJobIndex *nap_job_index_free(NapJobIndex *x);
/* Every job, read again; ret_revision: the store revision read at (watch
 * from the one after). */
int nap_job_index_load(NapJobIndex *x, EtcdClient *c, int64_t *ret_revision, NapError *e);
/* One event of the watch: job keys are applied, the others ignored.
 * -ENOMEM: the index is incomplete (load it again). */
int nap_job_index_apply(NapJobIndex *x, const EtcdEvent *ev);
/* nap_queue_list() from the index. */
int nap_job_index_list(const NapJobIndex *x, const char *type, const NapJobFilter *f, NapJob **ret, size_t *ret_n,
                       size_t *ret_total, NapError *e);

/* owner NULL: anyone's (root); else NoSuchJob for another owner's job too,
 * so that one owner cannot learn of another's. */
int nap_queue_get(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                  NapJob *ret, NapError *e);
/* Priority: only while queued (a running job has left the queue). */
int nap_queue_move(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                   int64_t priority, NapJob *ret, NapError *e);
/* Cancel (DELETE): a queued job leaves the queue; a running one's
 * reservations are freed. Done: a running job's reservations are freed.
 * Either again on an ended job changes nothing and says so. */
int nap_queue_cancel(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                     NapJob *ret, NapError *e);
int nap_queue_done(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                   NapJob *ret, NapError *e);

/* The owner's HMAC secret, made when missing (hex, 64 characters). */
int nap_queue_secret(EtcdClient *c, const char *prefix, const char *owner, char **ret, NapError *e);
/* A new bearer token for owner (shown once: only its hash is kept). */
int nap_queue_token_create(EtcdClient *c, const char *prefix, const char *owner, char **ret, NapError *e);
/* The owner of a token; PermissionDenied when unknown. */
int nap_queue_token_owner(EtcdClient *c, const char *prefix, const char *token, char ret[static NAP_USER_MAX + 1],
                          NapError *e);

/* The reservation names of a job's instance i: OWNER_q.TYPE.REQUEST_ID.I,
 * compute and storage alike (their kinds keep them apart). */
void nap_job_reservation_name(const NapJob *j, unsigned i, char ret[static NAP_RESERVATION_NAME_MAX + 1]);
/* A job update, read-modify-CAS, retried on conflict: read the job (owner
 * as in nap_queue_get()), change calls f which edits it (< 0: refuse, and
 * nothing is written; 0: write it; > 0: nothing to write), then put it
 * with extra ops in the same txn. Used by admission and callbacks too. */
typedef int (*nap_job_change_fn)(NapJob *j, EtcdTxnOp *extra, size_t *n_extra, void *userdata, NapError *e);
#define NAP_JOB_EXTRA_OPS_MAX 4
int nap_queue_update(EtcdClient *c, const char *prefix, const char *type, const char *request_id, const char *owner,
                     nap_job_change_fn f, void *userdata, NapJob *ret, NapError *e);
/* The same, starting from known (a job just read, with its revision):
 * no read when it is still current. */
int nap_queue_update_job(EtcdClient *c, const char *prefix, const NapJob *known, nap_job_change_fn f, void *userdata,
                         NapJob *ret, NapError *e);
/* A deep copy. */
int nap_job_copy(const NapJob *j, NapJob *ret);
/* Adds an event to the history and sets updated. */
int nap_job_set_status(NapJob *j, NapJobStatus s, uint64_t now_usec);

/* ---- nap's own jobs: start-common --queue ----------------------------- */

/* A StartCommon that does not fit now waits in the queue as a job of type
 * NAP_QUEUE_TYPE_START whose callback is internal: "nap:start-common/
 * REQUEST_ID". nap_callback_check() refuses that scheme, so no client of
 * the HTTP API can make such a job; nothing POSTs it: its admission is
 * waited for by the caller (a watch of the job) and acted on by whoever
 * calls StartCommon again with the same request id (lib/ops). Its data:
 *   {"instances":[{"VCPU":C,"Memory":M,"Disk":0}],
 *    "nap":{"node":NODE,"service":"USER_APP","request":ID,
 *           "reservation":{…the compute reservation's stored form…}}}
 * instances[] says the request in the queue's units (rounded up); the
 * admission reserves data.nap.reservation exactly, on data.nap.node (the
 * instance runs on the host that asked), not through the placer. */
#define NAP_QUEUE_TYPE_START "nap-start"
#define NAP_CALLBACK_INTERNAL_PREFIX "nap:"

bool nap_callback_is_internal(const char *callback) _pure_;
/* The pinned reservation of an internal job (its name set, node from
 * data.nap.node); -EINVAL when the data does not say one. */
int nap_job_internal_reservation(const NapJob *j, NapReservation *ret, NapError *e);

/* ---- the HTTP API's routes (helpers/nap-queued, napctl queue) ---------- */

typedef enum NapQueueOp {
        NAP_QUEUE_OP_LIST,    /* GET    /v1/TYPE/ */
        NAP_QUEUE_OP_CREATE,  /* POST   /v1/TYPE/ */
        NAP_QUEUE_OP_GET,     /* GET    /v1/TYPE/ID[/] */
        NAP_QUEUE_OP_MOVE,    /* POST   /v1/TYPE/ID[/]       {"priority": N} */
        NAP_QUEUE_OP_CANCEL,  /* DELETE /v1/TYPE/ID[/] */
        NAP_QUEUE_OP_DONE,    /* POST   /v1/TYPE/ID/done */
        NAP_QUEUE_OP_HISTORY, /* GET    /v1/TYPE/ID/history */
        NAP_QUEUE_OP_SECRET,  /* GET    /v1/_secret          the caller's HMAC secret */
        NAP_QUEUE_OP_TOKEN,   /* POST   /v1/_tokens/         {"owner_id"}: root only */
        _NAP_QUEUE_OP_MAX,
        _NAP_QUEUE_OP_INVALID = -EINVAL,
} NapQueueOp;

typedef struct NapQueueRoute {
        NapQueueOp op;
        char type[NAP_QUEUE_TYPE_MAX + 1];
        char request_id[NAP_REQUEST_ID_MAX + 1];
} NapQueueRoute;

/* method and path (no query) into a route: -ENOENT for a path that is no
 * route (HTTP 404), -EOPNOTSUPP for a method the path does not take
 * (405); the type and request_id checked (InvalidName, InvalidParameter
 * "request_id"). Pure. */
int nap_queue_route_parse(const char *method, const char *path, NapQueueRoute *ret, NapError *e);
/* ?limit= and ?offset=: a decimal number, at most 1000000. */
int nap_queue_count_parse(const char *name, const char *s, size_t *ret, NapError *e);
