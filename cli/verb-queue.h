/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl's verbs of the resource queue (napctl(1) "QUEUE", nap-queued(8)):
 *   napctl queue list TYPE [--owner=O] [--status=S]
 *   napctl queue show TYPE ID
 *   napctl queue submit TYPE ID CALLBACK VCPU,MEMORY_MIB,DISK_GIB... [--owner=O]
 *   napctl queue move TYPE ID first|last|PRIORITY|after:OTHER
 *   napctl queue cancel TYPE ID
 *   napctl queue done TYPE ID
 *   napctl queue history TYPE ID
 *   napctl queue token OWNER        (root: a bearer token for TCP)
 *   napctl queue secret [OWNER]     (the owner's callback signing secret)
 * Each is one HTTP request to nap-queued on its Unix socket ($NAP_QUEUE_SOCKET,
 * else /run/nap/queue, or $XDG_RUNTIME_DIR/nap/queue with --user): the
 * operation lives once, in lib/cluster/queue.c, behind nap-queued. move
 * computes the seed's rules from the listing: first is min−1, last max+1,
 * after:OTHER the mean of OTHER's and the next job's priorities. */

#include <stdbool.h>

#include "napctl-call.h"

typedef struct QueueOptions {
        const char *owner, *status; /* NULL: not given */
        bool json;
} QueueOptions;

typedef int (*queue_verb_fn)(Caller *c, char **args, const QueueOptions *o, NapError *e);

int verb_queue_list(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_show(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_submit(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_move(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_cancel(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_done(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_history(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_token(Caller *c, char **args, const QueueOptions *o, NapError *e);
int verb_queue_secret(Caller *c, char **args, const QueueOptions *o, NapError *e);

/* Asks nap-queued for a job: what a job made without it (start-common
 * --queue writes to etcd itself) needs, so that a nap-queued that exited
 * idle is socket-activated and admits it. */
int queue_wake(Caller *c, const char *type, const char *id, NapError *e);

/* A start that StartCommon or StartMpi answered "queued": says so
 * ("Queued: job J (id N), position P; request id ID"; with json on
 * stderr, and with no_block the {"queued": …} answer on stdout) and,
 * unless no_block, waits for the admission (a watch of the job in etcd);
 * SIGINT or SIGTERM meanwhile cancels the job. 1: still queued
 * (no_block), 0: admitted, call again with the same request id. */
int queue_wait_start(Caller *c, const char *service, const char *id, json_t *queued, bool json, bool no_block,
                     NapError *e);
