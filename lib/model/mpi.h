/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* MPI jobs (issue 13; nap.profile(5) MPI APPS, napctl(1) start-mpi), on
 * one host. A job of app USER_APP is:
 *   USER_APP_mpi_master@J.service   nap-mpi runs MPICH's mpiexec with
 *                                   Hydra's manual launcher; its exit
 *                                   status is the job's; rank output goes
 *                                   to its journal
 *   USER_APP_mpi_slave@N.service    one per rank, N = J * 1000 + rank:
 *                                   nap-mpi runs the hydra proxy mpiexec
 *                                   printed for that rank; BindsTo= the
 *                                   master
 * Why a master per job (the seed named one USER_APP_mpi_master.service):
 * two jobs of one app may run at once, each with its own exit status and
 * journal, and a unit name that was used by a finished job is never
 * reused, so its journal stays that job's. Why N = J * 1000 + rank: a
 * slave's name says its job and rank without any state (recovery, a user
 * reading `systemctl status`), and never collides with another job's.
 *
 * Every unit is an instance with a manifest (kind mpi_master / mpi_slave),
 * installed without a reload as any instance (ops_units_install()); the
 * generator writes them too, but a job does not outlive a boot: its
 * manifests are not enabled, and recovery or the app's next job collects
 * what is left. The job's record stays after its units are collected:
 *   ROOT/services/USER/.USER_APP.mpi/J.json   the job (below)
 *   ROOT/services/USER/.USER_APP.mpi/last     the last job number handed out
 *   ROOT/apps/USER/USER_APP_mpi_J/            the job's tree (params substituted)
 *   ROOT/apps/USER/USER_APP_mpi_build/        the deployed tree, built
 *   JOB_TREE/.nap-mpi/proxy-R                 rank R's proxy command (NUL-separated
 *                                             words), from the master to slave R */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "model/config.h"
#include "model/manifest.h"
#include "model/names.h"
#include "model/profile.h"
#include "nap-config.h"

#define NAP_MPI_SLAVE_STRIDE NAP_MPI_RANKS_LIMIT
#define NAP_MPI_JOB_MAX (NAP_INSTANCE_NUMBER_MAX / NAP_MPI_SLAVE_STRIDE)
#define NAP_MPI_JOB_MAX_SIZE (64 * 1024)
/* The start-up watchdog: every slave must have taken its proxy command
 * within this time, else the master kills mpiexec (which waits forever
 * for a proxy that never connects, and ignores SIGTERM then). */
#define NAP_MPI_WATCHDOG_SEC 10U
#define NAP_MPIEXEC_BINARY "/usr/bin/mpiexec.mpich"
#define NAP_MPI_BINARY_DEFAULT NAP_LIBEXECDIR "/nap-mpi"
#define NAP_MPI_PROXY_DIR ".nap-mpi"

static inline unsigned nap_mpi_slave_number(unsigned job, unsigned rank) {
        return job * NAP_MPI_SLAVE_STRIDE + rank;
}
static inline unsigned nap_mpi_slave_job(unsigned number) {
        return number / NAP_MPI_SLAVE_STRIDE;
}

/* $NAP_MPI_BINARY (tests run it from a build tree) when it is a valid
 * program path, else NAP_MPI_BINARY_DEFAULT. */
const char *nap_mpi_binary(void);

typedef enum NapMpiState {
        NAP_MPI_RUNNING,
        NAP_MPI_SUCCEEDED, /* the master exited 0 */
        NAP_MPI_FAILED,    /* it exited otherwise, or the watchdog stopped it */
        NAP_MPI_STOPPED,   /* stopped (stop-app on the master, or its start was undone) */
        _NAP_MPI_STATE_MAX,
        _NAP_MPI_STATE_INVALID = -EINVAL,
} NapMpiState;

const char *nap_mpi_state_to_string(NapMpiState s) _pure_;
NapMpiState nap_mpi_state_from_string(const char *s) _pure_;

/* A job record, JSON:
 *   {"version":1, "user":"alice", "app":"sim", "job":3, "ranks":4,
 *    "argv":["./hello","hi"], "params":{"greeting":"hi"}, "commit":"<40 hex>",
 *    "state":"failed", "result":"exit-code", "exit_status":9,
 *    "started":USEC, "finished":USEC, "cpu":"500m:1", "memory":"64M:64M",
 *    "node":"n1"}
 * commit, result, exit_status and finished are absent while unknown;
 * params holds the values used (np not among them). cpu and memory are
 * what each rank asked for ("REQUEST:LIMIT", resources.h; absent: not
 * asked), node where the job's reservation is held (absent: none; the
 * reservation is named as the master instance and holds ranks times the
 * rank's request). Strict parsing. */
typedef struct NapMpiJob {
        NapService service;
        unsigned number, ranks;
        char **argv;
        NapParams *params;
        char *commit;
        NapMpiState state;
        char *result;        /* the master's Result= ("success", "exit-code", "signal", …); NULL: running */
        int exit_status;     /* the master's exit status; -1: unknown */
        uint64_t start_usec, end_usec;
        NapCompute rank;     /* each rank's request and limits; all 0: none */
        char *node;          /* the node holding the job's reservation; NULL: none */
} NapMpiJob;

void nap_mpi_job_done(NapMpiJob *j);
int nap_mpi_job_parse(const char *text, size_t size, NapMpiJob *ret, NapError *e);
/* Deterministic, ending in "\n"; NULL on OOM. */
char *nap_mpi_job_format(const NapMpiJob *j);

char *nap_mpi_jobs_dir(const NapConfig *c, const NapService *s);
char *nap_mpi_job_tree(const NapConfig *c, const NapService *s, unsigned job);
char *nap_mpi_build_tree(const NapConfig *c, const NapService *s);
/* Atomic and synced. */
int nap_mpi_job_save(const NapConfig *c, const NapMpiJob *j, NapError *e);
/* NoSuchInstance when there is no such job. */
int nap_mpi_job_load(const NapConfig *c, const NapService *s, unsigned job, NapMpiJob *ret, NapError *e);
/* The numbers of the app's job records, ascending. */
int nap_mpi_job_list(const NapConfig *c, const NapService *s, unsigned **ret, size_t *ret_n, NapError *e);
/* The next job's number: 1 + the largest of the counter and the records;
 * recorded (then never reused) once the job is sure to be made: a job
 * refused before leaves no trace, not even its number. Under the app's
 * lock. */
int nap_mpi_peek_job_number(const NapConfig *c, const NapService *s, unsigned *ret, NapError *e);
int nap_mpi_record_job_number(const NapConfig *c, const NapService *s, unsigned job, NapError *e);

/* argv of the master and of a slave (nap-mpi(8)'s command lines). */
char **nap_mpi_master_argv(const char *binary, unsigned ranks, char *const *program);
char **nap_mpi_slave_argv(const char *binary, unsigned rank);

/* Unit text, for model/unit-files.c: the templates
 * USER_APP_mpi_master@.service and USER_APP_mpi_slave@.service, and what
 * an MPI instance's drop-in adds to nap_unit_write_instance_dropin(): the
 * master Wants= its slaves (its manifest's params hold np), a slave
 * BindsTo= its master (no After=: see mpi.c). */
int nap_mpi_write_template(FILE *f, const NapService *s, NapKind kind, NapScope scope, const NapConfig *c);
int nap_mpi_write_dropin_extra(FILE *f, const NapManifest *m);
/* USER_APP_mpi_build.service: the build process, a oneshot in dir. */
const char *nap_mpi_build_unit_name(const NapService *s, char *buf);
int nap_mpi_write_build_unit(FILE *f, const NapService *s, char *const *argv, const char *dir, NapScope scope,
                             const NapConfig *c);
