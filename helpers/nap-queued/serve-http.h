/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-queued's HTTP front (libmicrohttpd): seed 003's API and what nap
 * adds, each request a thin adapter onto lib/cluster/queue.h. One
 * HttpFront per listening socket, each with its own thread and its own
 * etcd client. Who calls: on a Unix socket the peer's uid (SO_PEERCRED;
 * root may act for any owner), on TCP a bearer token (nap_queue_token_*),
 * and nobody without one. */

#include <stdbool.h>
#include <stdint.h>

#include "cluster/queue.h"

/* A queue of 100,000 jobs is ~100 MB of etcd's answer (base64 JSON):
 * nap-queued's etcd clients read that much, not etcd.h's 4 MiB. */
#define QUEUE_ETCD_RESPONSE_MAX ((size_t) 256 * 1024 * 1024)

typedef struct HttpFront HttpFront;

typedef struct HttpSettings {
        char *const *etcd;   /* endpoints */
        const char *prefix;  /* ClusterPrefix= */
        char *const *types;  /* the queues served */
        /* Called from the front's thread at the start and end of every
         * request (nap-queued's idle accounting). */
        void (*activity)(int delta, void *userdata);
        /* Lists from nap-queued's index of the jobs once it has seen
         * min_revision (this front's last write); -EAGAIN: not now, read
         * etcd instead. */
        int (*list)(void *userdata, const char *type, const NapJobFilter *f, int64_t min_revision, NapJob **ret,
                    size_t *ret_n, size_t *ret_total, NapError *e);
        void *userdata;
} HttpSettings;

/* fd: a listening stream socket, Unix or TCP (told apart here); taken. */
int http_front_start(int fd, const HttpSettings *s, HttpFront **ret);
HttpFront *http_front_stop(HttpFront *f);
