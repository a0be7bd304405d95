/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-discovery's probe: does the app behind a loopback port serve?
 *
 * Two checks (lib/model/discovery.h says which, when). Both connect to
 * 127.0.0.1:PORT (then [::1]:PORT if that is refused or unreachable).
 * The tcp check stops there and closes: cheap, and nothing an app logs,
 * but it cannot tell a serving app from a hung one, as the kernel
 * completes the handshake into the listen backlog whether or not the app
 * ever calls accept(). The http check therefore asks: it sends
 * "HEAD PATH HTTP/1.0" and waits for the first byte of an answer; any byte
 * counts (a 404 or 500 still means the app serves).
 *
 * Results (lib/model/discovery.h): ANSWERED; REFUSED when nothing listens or the
 * peer closed or reset without a byte; TIMEOUT when nothing came within
 * the timeout. Runs on sd-event, never blocks. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "model/discovery.h"

typedef struct Probe Probe;

/* Called once per probe_start(), possibly from within it, with the check
 * it started. why: a short human reason ("connection refused", "no answer
 * in 1000 ms", …). */
typedef void (*probe_done_fn)(Probe *p, DiscoveryCheck check, DiscoveryProbeResult r, const char *why,
                              void *userdata);

struct Probe {
        sd_event *event;
        unsigned port;
        const char *path;            /* borrowed: HEAD PATH for the http check */
        uint64_t timeout_usec;
        probe_done_fn done;
        void *userdata;

        /* Private: one probe in flight. */
        DiscoveryCheck check;
        int fd;
        unsigned address;            /* index into the addresses tried */
        bool sent;                   /* the request went out; waiting for the answer */
        sd_event_source *io;
        sd_event_source *timer;
};

/* path: nap_health_path_is_valid(), kept by the caller. */
void probe_init(Probe *p, sd_event *event, unsigned port, const char *path, uint64_t timeout_usec,
                probe_done_fn done, void *userdata);
/* Starts a check; < 0 only when it could not be set up (then done is not
 * called). A probe already in flight is cancelled first. */
int probe_start(Probe *p, DiscoveryCheck check);
/* Stops a probe in flight without calling done. */
void probe_cancel(Probe *p);
bool probe_running(const Probe *p) _pure_;
