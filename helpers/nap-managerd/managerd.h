/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-managerd: io.nap.Manager over varlink and io.nap.Manager1 over D-Bus.
 *
 *   nap-managerd.c       main(), the Manager: event loop, signals, idle exit,
 *                        sd_notify
 *   managerd-methods.c   the methods, protocol-neutral: JSON arguments in,
 *                        lib/ops, JSON result or a NapError out
 *   managerd-worker.c    runs a method in a forked process, so that a slow
 *                        call never blocks the loop
 *   managerd-instances.c ListInstances and GetInstancesNum from a cache kept
 *                        fresh by systemd's signals and inotify
 *   managerd-varlink.c   the varlink adapter: server, dispatch, errors
 *   managerd-dbus.c      the D-Bus adapter: vtable, dispatch, errors, the
 *                        bus name (managerd-dbus.h)
 *   managerd-journal.c   GetJournal with "more": following a log
 *   log.c                logging, at the edge, once (shared with nap-discovery)
 */

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "../common/log.h"
#include "managerd-methods.h"
#include "ops/ops.h"
#include "protocol/varlink.h"

typedef struct Worker Worker;
typedef struct Follow Follow;
typedef struct InstanceCache InstanceCache;

/* A D-Bus caller's euid, by its unique name (managerd-dbus.c). */
typedef struct BusSender {
        char name[32];
        uid_t uid;
} BusSender;
#define MANAGER_BUS_SENDERS 16

typedef struct Manager {
        sd_event *event;
        NapContext *context;

        VarlinkServer *varlink;
        VarlinkIdl *idl;            /* our interface, to check our own replies */
        unsigned n_connections;

        Worker *workers;            /* running */
        Worker *queue_head, *queue_tail; /* waiting for a slot, oldest first */
        unsigned n_workers, n_queued;

        InstanceCache *instances;   /* NULL until the first ListInstances */

        Follow *follows;            /* GetJournal calls with "more" */
        unsigned n_follows;

        sd_bus *bus;                /* NULL: no D-Bus (--no-bus, or --listen) */
        unsigned n_bus_calls;       /* D-Bus calls being handled or waiting for a worker */
        bool bus_name_owned;
        bool bus_required;          /* --bus: no name, no daemon */
        bool ready;                 /* READY=1 sent */
        bool bus_releasing;         /* ReleaseName sent, no reply yet */
        BusSender bus_senders[MANAGER_BUS_SENDERS]; /* recent callers, oldest overwritten */
        unsigned bus_senders_next;

        uint64_t idle_usec;         /* 0: never exit when idle */
        sd_event_source *idle_source;
        bool idle_armed;
        bool exiting;               /* SIGTERM: finish running workers, then exit */
        bool stopping;              /* idle with a bus name: exit once released and not busy */
        char status[64];            /* last STATUS= sent, */
        unsigned status_connections, status_calls; /* ... made from these */
} Manager;

/* Call whenever connections, bus calls or workers come or go: updates
 * STATUS=, arms or disarms the idle timer, ends the loop when exiting and
 * done. */
void manager_update(Manager *m);
/* Whether anything is going on: a varlink connection, a bus call, a worker. */
bool manager_busy(Manager *m);
/* READY=1, once: the varlink socket is served and the bus name, if any,
 * is ours (or given up on). */
void manager_ready(Manager *m);

/* ---- managerd-varlink.c ---- */
/* Serves io.nap.Manager on the sockets systemd passed, or binds address. */
int manager_varlink_setup(Manager *m, const char *address);
void manager_varlink_done(Manager *m);
/* Replies with a checked result (see managerd-varlink.c). */
int manager_varlink_reply(Manager *m, Varlink *link, const char *method, json_t *parameters, bool continues);
/* kind: a NapError kind name ("NoSuchService"); unknown ones become
 * Internal. InvalidParameter names the argument (method_invalid_parameter). */
int manager_varlink_error(Manager *m, Varlink *link, const Method *method, json_t *args, const char *kind,
                          const char *message);

/* ---- managerd-instances.c ---- */
/* Starts following systemd's units right away, so that the first
 * ListInstances finds the list on its way (or there). Failures only make
 * the first call try again. */
void instances_prepare(Manager *m);
/* A method with cached set, authorized already: done gets the envelope,
 * maybe before this returns. */
void instances_call(Manager *m, const Method *method, json_t *args, MethodDone done, void *userdata);
/* Calls still waiting are answered with an error. */
void instances_free(Manager *m);

/* ---- managerd-journal.c ---- */
/* GetJournal with "more", authorized already. Replies itself. */
int journal_follow_start(Manager *m, Varlink *link, json_t *args);
/* The client went away: stop following for it. */
void journal_follow_drop(Manager *m, Varlink *link);
void journal_follow_free_all(Manager *m);

/* ---- logging: log.h ---- */
