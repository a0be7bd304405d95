/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The calls nap makes to the service manager, org.freedesktop.systemd1,
 * over sd-bus: nothing parses systemctl output. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "model/config.h"
#include "base/error.h"

typedef struct NapUnitStatus {
        char *name;
        char *description;
        char *load_state;
        char *active_state;
        char *sub_state;
} NapUnitStatus;

void nap_unit_status_clear(NapUnitStatus *u);
/* active, activating or reloading: the unit's processes run. */
bool nap_unit_state_is_running(const char *active_state) _pure_;
void nap_unit_status_array_free(NapUnitStatus *a, size_t n);

int nap_systemd_open(NapScope scope, sd_bus **ret, NapError *e);
/* Daemon-reload; returns once the manager has reloaded (generators re-ran). */
int nap_systemd_reload(sd_bus *bus, NapError *e);
/* Start/stop with mode "replace" and wait until the job is done; a job
 * that ends other than "done" is NAP_ERROR_UNIT_FAILED. */
int nap_systemd_start_unit(sd_bus *bus, const char *unit, NapError *e);
int nap_systemd_stop_unit(sd_bus *bus, const char *unit, NapError *e);
/* RestartUnit: starts the unit if it is not running. */
int nap_systemd_restart_unit(sd_bus *bus, const char *unit, NapError *e);
/* The same for every unit of units[0..n) at once: every job asked for
 * before any is waited for, so that the manager runs them side by side;
 * returns once all are done. Fails with the first unit whose call or job
 * failed (after the jobs already asked for are done). */
int nap_systemd_start_units(sd_bus *bus, char *const *units, size_t n, NapError *e);
int nap_systemd_stop_units(sd_bus *bus, char *const *units, size_t n, NapError *e);
int nap_systemd_reset_failed_unit(sd_bus *bus, const char *unit);
/* KillUnit(unit, "all", signo), returning at once: the unit's processes
 * get the signal now, whatever jobs are queued before its stop (a
 * sidecar ordered after it stops first). Not loaded or not running: 0. */
int nap_systemd_kill_unit(sd_bus *bus, const char *unit, int signo);
/* ListUnitsByPatterns(states=[], patterns=[pattern]). */
int nap_systemd_list_units(sd_bus *bus, const char *pattern, NapUnitStatus **ret, size_t *ret_n, NapError *e);
/* The same without waiting, for a bus attached to an event loop: callback
 * gets the reply, or the error sd-bus makes up when there is none within
 * timeout_usec (0: sd-bus's default, 25 s). Read it with
 * nap_systemd_list_units_reply(). ret_slot as sd_bus_call_async(). */
int nap_systemd_list_units_async(sd_bus *bus, sd_bus_slot **ret_slot, const char *pattern, uint64_t timeout_usec,
                                 sd_bus_message_handler_t callback, void *userdata, NapError *e);
/* A reply to ListUnitsByPatterns: the units, or the error it carries. */
int nap_systemd_list_units_reply(sd_bus_message *reply, const char *pattern, NapUnitStatus **ret, size_t *ret_n,
                                 NapError *e);
/* LoadUnit (a name the manager does not have yet is read from disk as it
 * is now), then: 1 when the manager has the unit's current files (LoadState
 * "loaded", NeedDaemonReload false), 0 when not (not found, bad setting,
 * or loaded earlier from files that changed since: only a daemon-reload
 * reads them again). */
int nap_systemd_load_unit_current(sd_bus *bus, const char *unit, NapError *e);
/* Status of one unit (loaded on demand by the manager). */
int nap_systemd_get_unit_status(sd_bus *bus, const char *unit, NapUnitStatus *ret, NapError *e);

/* How a service's main process ended, for a job's result (MPI masters):
 * its ActiveState, Result= ("success", "exit-code", "signal", …),
 * ExecMainCode (CLD_EXITED, CLD_KILLED, CLD_DUMPED; 0: never ran),
 * ExecMainStatus (exit status or signal) and the main process's start and
 * exit times (CLOCK_REALTIME µs; 0: none). */
typedef struct NapUnitExit {
        char *active_state;
        char *result;
        int code, status;
        uint64_t start_usec, exit_usec;
} NapUnitExit;

void nap_unit_exit_clear(NapUnitExit *x);
int nap_systemd_get_unit_exit(sd_bus *bus, const char *unit, NapUnitExit *ret, NapError *e);

/* What systemd's accounting says a unit used: CPU time (ns) and memory
 * (bytes) now, each UINT64_MAX when not known (no accounting, not
 * running, not loaded). */
int nap_systemd_get_unit_accounting(sd_bus *bus, const char *unit, uint64_t *ret_cpu_nsec, uint64_t *ret_memory,
                                    NapError *e);
