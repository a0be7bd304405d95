/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Waiting until an instance answers HTTP on its port, as a push does for
 * each instance it restarts and start-common, start-app and restart-app
 * do for theirs; and what to say when it does not. */

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "base/socket-util.h"
#include "base/tcp.h"
#include "clients/journal.h"
#include "clients/systemd1.h"
#include "ops/ops-internal.h"


#define PROBE_TIMEOUT_USEC (1000ULL * 1000ULL)
#define PROBE_INTERVAL_USEC (50ULL * 1000ULL)


/* Connected to the loopback address of family, or -errno. Through
 * nap-connect(8) in nap-managerd, whose loopback is not the host's. */
static int probe_connect(int family, unsigned port, uint64_t deadline) {
        uint64_t now = monotonic_usec();
        if (now >= deadline)
                return -ETIMEDOUT;
        return tcp_connect(family == AF_INET ? "127.0.0.1" : "::1", port, deadline - now);
}

/* One HTTP probe: 0 when the first byte of an answer arrived. */
static int probe_once(int family, unsigned port, const char *path, uint64_t deadline) {
        char req[NAP_HEALTH_PATH_MAX + 64];
        int len = snprintf(req, sizeof req, "HEAD %s HTTP/1.0\r\nUser-Agent: nap-receive\r\n\r\n", path);
        _cleanup_close_ int fd = probe_connect(family, port, deadline);
        char buf[64];
        if (fd < 0)
                return fd;
        if (socket_is_connected_to_itself(fd)) /* nothing listens: see socket-util.h */
                return -ECONNREFUSED;
        if (send(fd, req, (size_t) len, MSG_NOSIGNAL) != (ssize_t) len)
                return -ECONNRESET;
        int r = fd_wait_until(fd, POLLIN, deadline);
        if (r <= 0)
                return r < 0 ? r : -ETIMEDOUT;
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        return n > 0 ? 0 : n == 0 ? -ECONNRESET : negative_errno();
}

static int wait_answering(unsigned port, const char *path, uint64_t timeout_usec, nap_wait_check_fn check,
                          void *userdata, NapError *e) {
        uint64_t deadline = monotonic_usec() + timeout_usec;
        if (port == 0 || port > 65535)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid port %u", port);
        if (!nap_health_path_is_valid(path))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "Invalid health path");
        for (;;) {
                uint64_t now = monotonic_usec();
                int r = probe_once(AF_INET, port, path, MIN(deadline, now + PROBE_TIMEOUT_USEC));
                if (r == -ECONNREFUSED || r == -EADDRNOTAVAIL || r == -ENETUNREACH || r == -EAFNOSUPPORT)
                        r = probe_once(AF_INET6, port, path, MIN(deadline, now + PROBE_TIMEOUT_USEC));
                if (r >= 0)
                        return 0;
                if (tcp_error_is_broker(r))
                        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, r, "Cannot probe port %u: %s", port,
                                             tcp_strerror(r));
                if (check && (r = check(userdata, e)) < 0)
                        return r;
                now = monotonic_usec();
                if (now >= deadline)
                        break;
                struct timespec ts = { .tv_nsec = (long) (MIN(PROBE_INTERVAL_USEC, deadline - now) * 1000) };
                (void) nanosleep(&ts, NULL);
        }
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT, "nothing answered HTTP on port %u within %.1f s",
                             port, (double) timeout_usec / 1e6);
}

int nap_wait_answering(unsigned port, uint64_t timeout_usec, nap_wait_check_fn check, void *userdata, NapError *e) {
        return wait_answering(port, NAP_HEALTH_PATH_DEFAULT, timeout_usec, check, userdata, e);
}


/* ---- an instance's unit ------------------------------------------------ */


typedef struct UnitWatch {
        sd_bus *bus;
        const char *unit;
        unsigned calls;
} UnitWatch;

/* Between probes: stop waiting for a unit that is no longer running (it
 * exited, or gave up restarting). Asked every tenth probe only. */
static int unit_still_running(void *userdata, NapError *e) {
        UnitWatch *w = userdata;
        NapUnitStatus u = {};
        if (w->calls++ % 10 != 9 || nap_systemd_get_unit_status(w->bus, w->unit, &u, NULL) < 0)
                return 0;
        /* auto-restart: the app exited (a crash at start, most likely) and
         * systemd will try again; a new version that does that has failed. */
        bool ok = nap_unit_state_is_running(u.active_state) && !streq(strempty(u.sub_state), "auto-restart");
        int r = ok ? 0 : nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ESRCH,
                                       "%s is %s (%s) instead of answering",
                                       w->unit, strempty(u.active_state), strempty(u.sub_state));
        nap_unit_status_clear(&u);
        return r;
}

/* The instance's health path, from the manifest of the unit's instance;
 * nap.conf's when the profile set none (or the manifest cannot be read:
 * the wait then still sees whether the app serves HTTP at all). Copied
 * into buf, as the manifest does not outlive this. */
static const char *instance_health_path(NapContext *c, const char *unit, char buf[static NAP_HEALTH_PATH_MAX + 1]) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        char instance[NAP_UNIT_NAME_MAX];
        const char *dot = strrchr(unit, '.');
        snprintf(instance, sizeof instance, "%.*s", dot ? (int) (dot - unit) : (int) strlen(unit), unit);
        (void) ops_load_instance(c, instance, &m, NULL);
        snprintf(buf, NAP_HEALTH_PATH_MAX + 1, "%s", nap_manifest_health_path(m, c->config->health_path));
        return buf;
}

int ops_wait_instance_answering(NapContext *c, const char *unit, unsigned port, uint64_t timeout_usec, NapError *e) {
        char path[NAP_HEALTH_PATH_MAX + 1];
        UnitWatch w = { .unit = unit };
        int r = ops_context_bus(c, &w.bus, e);
        if (r < 0)
                return r;
        return wait_answering(port, instance_health_path(c, unit, path), timeout_usec, unit_still_running, &w, e);
}

#define JOURNAL_LINES_READ 30   /* systemd's own lines about the unit are among them */
#define JOURNAL_LINES_SHOWN 3
#define JOURNAL_LINE_SHOWN_MAX 160

/* "its last log lines: a | b | c": the app's own (not systemd's about
 * it), each cut; NULL when it logged nothing (or on ENOMEM). */
char *ops_journal_summary(NapContext *c, const char *unit) {
        NapJournalEntry *l = NULL;
        size_t n = 0, shown = 0;
        if (nap_journal_tail(c->scope, unit, JOURNAL_LINES_READ, &l, &n, NULL) < 0)
                return NULL;
        size_t first = n;
        while (first > 0 && shown < JOURNAL_LINES_SHOWN)
                if (!streq_ptr(l[--first].identifier, "systemd"))
                        shown++;
        char *text = NULL;
        for (size_t i = first; i < n; i++) {
                if (streq_ptr(l[i].identifier, "systemd"))
                        continue;
                char *t = strdup_printf("%s%s%.*s", text ?: "its last log lines: ", text ? " | " : "",
                                        JOURNAL_LINE_SHOWN_MAX, strempty(l[i].message));
                free(text);
                text = t;
                if (!text)
                        break;
        }
        nap_journal_entry_array_free(l, n);
        return text;
}

void ops_error_add_journal(NapContext *c, const char *unit, NapError *e) {
        if (!nap_error_is_set(e))
                return;
        _cleanup_free_ char *summary = ops_journal_summary(c, unit);
        size_t at = strlen(e->message);
        snprintf(e->message + at, sizeof e->message - at, "; %s", summary ?: "it logged nothing");
}
