/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap-discovery's probe: does the app behind a loopback port serve?
 *
 * A TCP connect alone cannot tell: the kernel completes the handshake into
 * the listen backlog whether or not the app ever calls accept(), so a
 * SIGSTOPped or hung app still "accepts". The http probe therefore asks:
 * it connects to 127.0.0.1:PORT (then [::1]:PORT if that is refused or
 * unreachable), sends "HEAD / HTTP/1.0" and waits for the first byte of an
 * answer; any byte counts (a 404 or 500 still means the app serves). The
 * tcp probe, for apps that speak something else, stops at the connect and
 * so cannot see a stopped app until its backlog is full.
 *
 * Results (lib/model/discovery.h): ANSWERED; REFUSED when nothing listens or the
 * peer closed or reset without a byte; TIMEOUT when nothing came within
 * the timeout. Runs on sd-event, never blocks. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "model/discovery.h"

typedef enum ProbeMode {
        PROBE_HTTP,
        PROBE_TCP,
        _PROBE_MODE_MAX,
        _PROBE_MODE_INVALID = -EINVAL,
} ProbeMode;

const char *probe_mode_to_string(ProbeMode m) _pure_;
ProbeMode probe_mode_from_string(const char *s) _pure_;

typedef struct Probe Probe;

/* Called once per probe_start(), possibly from within it. why: a short
 * human reason ("connection refused", "no answer in 1000 ms", …). */
typedef void (*probe_done_fn)(Probe *p, DiscoveryProbeResult r, const char *why, void *userdata);

struct Probe {
        sd_event *event;
        ProbeMode mode;
        unsigned port;
        uint64_t timeout_usec;
        probe_done_fn done;
        void *userdata;

        /* Private: one probe in flight. */
        int fd;
        unsigned address;            /* index into the addresses tried */
        bool sent;                   /* the request went out; waiting for the answer */
        sd_event_source *io;
        sd_event_source *timer;
};

void probe_init(Probe *p, sd_event *event, ProbeMode mode, unsigned port, uint64_t timeout_usec,
                probe_done_fn done, void *userdata);
/* Starts a probe; < 0 only when it could not be set up (then done is not
 * called). A probe already in flight is cancelled first. */
int probe_start(Probe *p);
/* Stops a probe in flight without calling done. */
void probe_cancel(Probe *p);
bool probe_running(const Probe *p) _pure_;
