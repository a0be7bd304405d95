/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/debug-point.h"
#include "base/fileio.h"
#include "base/strv.h"
#include "cluster/inventory.h"
#include "cluster/queue.h"
#include "clients/systemd1.h"
#include "model/state.h"
#include "model/unit-files.h"
#include "ops/ops-internal.h"
#include "ops/ops-mpi.h"
#include "ops/publish.h"

#define BUILT_STAMP ".nap-mpi-built"

static const char *const tree_skip[] = { NAP_STATE_META_DIR_NAME, ".git", BUILT_STAMP, NULL };

static NapInstance master_of(const NapService *s, unsigned job) {
        return (NapInstance) { .service = *s, .kind = NAP_KIND_MPI_MASTER, .number = job };
}

static NapInstance slave_of(const NapService *s, unsigned job, unsigned rank) {
        return (NapInstance) { .service = *s, .kind = NAP_KIND_MPI_SLAVE, .number = nap_mpi_slave_number(job, rank) };
}

/* The job an MPI instance belongs to; 0 for other kinds. */
static unsigned job_of(const NapInstance *i) {
        return i->kind == NAP_KIND_MPI_MASTER ? i->number :
               i->kind == NAP_KIND_MPI_SLAVE ? nap_mpi_slave_job(i->number) : 0;
}

/* An empty dir at path (its parent made when missing), then from's tree. */
static int copy_fresh_tree(const char *from, const char *path) {
        _cleanup_free_ char *parent = strdup(path);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        if (!slash)
                return -ENOMEM;
        *slash = 0;
        int r = rm_rf(path);
        if (r >= 0)
                r = mkdir_p(parent, 0755);
        return r < 0 ? r : copy_tree(from, path, tree_skip);
}

/* ---- parameters --------------------------------------------------------- */

static int ranks_out_of_range(unsigned max, const char *given, NapError *e) {
        return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                    "np must be a number of ranks from 1 to %u (MpiRanksMax=), not '%.32s'",
                                                    max, given), NAP_MPI_RANKS_PARAM);
}

/* np from params (else the profile's MpiRanks=), and the other params. */
static int split_params(const NapProfile *p, const NapParams *params, unsigned *ret_ranks, NapParams **ret_rest,
                        NapError *e) {
        _cleanup_(nap_params_freep) NapParams *rest = NULL;
        unsigned ranks = nap_profile_mpi_ranks(p), max = nap_profile_mpi_ranks_max(p);
        int r = nap_params_new(&rest);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read the parameters");
        for (size_t i = 0; i < nap_params_size(params); i++) {
                const char *k = nap_params_key(params, i), *v = nap_params_value(params, i);
                if (!streq(k, NAP_MPI_RANKS_PARAM))
                        r = nap_params_set(rest, k, v, e);
                else if (nap_instance_number_parse(v, &ranks) < 0 || ranks > max)
                        r = ranks_out_of_range(max, v, e);
                if (r < 0)
                        return r;
        }
        *ret_ranks = ranks;
        *ret_rest = TAKE_PTR(rest);
        return 0;
}

/* ---- the build ------------------------------------------------------------ */

/* What identifies this deploy: "COMMIT TIME\n". */
static char *deploy_stamp(const char *service_dir) {
        DeployMeta m;
        ops_deploy_meta_read(service_dir, &m);
        char *s = strdup_printf("%s %llu\n", strempty(m.commit), (unsigned long long) m.time_usec);
        ops_deploy_meta_clear(&m);
        return s;
}

static bool built_for(const char *tree, const char *stamp) {
        _cleanup_free_ char *path = path_join(tree, BUILT_STAMP, NULL), *text = NULL;
        return path && read_full_file(path, 256, &text, NULL) >= 0 && streq(text, stamp);
}

static int write_build_unit(NapContext *c, const NapService *s, char *const *argv, const char *tree, char *unit,
                            NapError *e) {
        _cleanup_free_ char *dir = NULL, *path = NULL, *text = NULL;
        size_t size;
        int r = nap_unit_files_runtime_dir(c->scope, &dir);
        FILE *f = r >= 0 ? open_memstream(&text, &size) : NULL;
        if (!f)
                return nap_error_errno(e, r < 0 ? r : -ENOMEM, "Failed to write the build unit");
        r = nap_mpi_write_build_unit(f, s, argv, tree, c->scope, c->config);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r == -EINVAL)
                return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, r, "The build process cannot be written in a unit");
        if (r >= 0)
                r = mkdir_p(dir, 0755);
        if (r >= 0 && !(path = path_join(dir, nap_mpi_build_unit_name(s, unit), NULL)))
                r = -ENOMEM;
        if (r >= 0)
                r = write_file_atomic(path, text, size, 0644);
        return r < 0 ? nap_error_errno(e, r, "Failed to write the build unit into %s", dir) : 0;
}

/* The build process in its unit, over tree; UnitFailed with its log. */
static int run_build(NapContext *c, const NapService *s, const NapProfile *build, const char *tree, NapError *e) {
        _cleanup_strv_free_ char **argv = NULL;
        char unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        int r = nap_profile_substitute(build, NULL, 0, &argv, NULL, e);
        if (r >= 0)
                r = write_build_unit(c, s, argv, tree, unit, e);
        if (r >= 0)
                r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_load_unit_current(bus, unit, e);
        if (r == 0) /* loaded before from another text */
                r = nap_systemd_reload(bus, e);
        if (r < 0)
                return r;
        (void) nap_systemd_reset_failed_unit(bus, unit);
        r = nap_systemd_start_unit(bus, unit, e);
        if (r < 0) {
                char name[NAP_SERVICE_NAME_MAX];
                nap_error_set(e, NAP_ERROR_UNIT_FAILED, r, "The build of %s failed (%s)", nap_service_name(s, name),
                              unit);
                ops_error_add_journal(c, unit, e);
        }
        return r;
}

/* The tree jobs are copied from: the deployed one, or, with a build
 * process, a copy of it built once per deploy. */
static int built_tree(NapContext *c, const NapService *s, const NapProfile *p, char **ret, NapError *e) {
        _cleanup_free_ char *dir = NULL, *tree = NULL, *stamp = NULL, *stamp_path = NULL;
        int r = ops_service_dir_checked(c, s, &dir, e);
        if (r < 0)
                return r;
        if (!nap_profile_build(p)) {
                *ret = TAKE_PTR(dir);
                return 0;
        }
        if (!(tree = nap_mpi_build_tree(c->config, s)) || !(stamp = deploy_stamp(dir)) ||
            !(stamp_path = path_join(tree, BUILT_STAMP, NULL)))
                return nap_error_errno(e, -ENOMEM, "Failed to build");
        if (!built_for(tree, stamp)) {
                r = copy_fresh_tree(dir, tree);
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to copy %s to %s", dir, tree);
                r = run_build(c, s, nap_profile_build(p), tree, e);
                if (r >= 0)
                        r = write_file_atomic(stamp_path, stamp, strlen(stamp), 0644);
                if (r < 0)
                        return e && nap_error_is_set(e) ? r : nap_error_errno(e, r, "Failed to build");
        }
        *ret = TAKE_PTR(tree);
        return 0;
}

/* ---- resources ------------------------------------------------------------ */

/* What a job of ranks ranks holds: ranks times a rank's request and limit. */
static int job_compute(const NapCompute *rank, unsigned ranks, NapCompute *ret, NapError *e) {
        const uint64_t *from[] = { &rank->request_cpu_milli, &rank->limit_cpu_milli, &rank->request_memory,
                                   &rank->limit_memory };
        uint64_t *to[] = { &ret->request_cpu_milli, &ret->limit_cpu_milli, &ret->request_memory, &ret->limit_memory };
        if (ranks == 0 || ranks > NAP_MPI_RANKS_LIMIT)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                            "A job has 1 to %u ranks", NAP_MPI_RANKS_LIMIT),
                                           NAP_MPI_RANKS_PARAM);
        for (size_t k = 0; k < ELEMENTSOF(from); k++) {
                if (*from[k] > UINT64_MAX / ranks)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                             "%u ranks of this request are more than any node has", ranks);
                *to[k] = *from[k] * ranks;
        }
        NapError why = NAP_ERROR_NULL;
        NapCompute checked = *ret;
        if (nap_compute_check(&checked, &why) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE, "%u ranks of this request: %s", ranks,
                                     why.message);
        return 0;
}

/* A rank's request checked (limits as requests when not given), and the
 * job's total within range. */
static int check_rank_compute(NapCompute *rank, unsigned ranks, NapError *e) {
        NapCompute total;
        if (nap_compute_is_empty(rank))
                return 0;
        int r = nap_compute_check(rank, e);
        return r < 0 ? r : job_compute(rank, ranks, &total, e);
}

/* A rank's request: cpu and memory each as given, else the profile's
 * MpiCpu=/MpiMemory=. */
static NapCompute rank_compute(const NapProfile *p, const NapCompute *given) {
        NapCompute c = *nap_profile_mpi_rank_compute(p);
        if (given && given->request_cpu_milli > 0) {
                c.request_cpu_milli = given->request_cpu_milli;
                c.limit_cpu_milli = given->limit_cpu_milli;
        }
        if (given && given->request_memory > 0) {
                c.request_memory = given->request_memory;
                c.limit_memory = given->limit_memory;
        }
        return c;
}

/* "cpu 500m, memory 64M" into buf; with only_asked, what is 0 is left
 * out ("cpu 500m"). */
static const char *compute_format(uint64_t cpu_milli, uint64_t memory, bool only_asked, char *buf, size_t size) {
        char cpu[NAP_AMOUNT_STRING_MAX], mem[NAP_AMOUNT_STRING_MAX];
        bool both = !only_asked || (cpu_milli > 0 && memory > 0);
        snprintf(buf, size, "%s%s%s%s%s", cpu_milli > 0 || !only_asked ? "cpu " : "",
                 cpu_milli > 0 || !only_asked ? nap_cpu_format(cpu_milli, cpu) : "", both ? ", " : "",
                 memory > 0 || !only_asked ? "memory " : "",
                 memory > 0 || !only_asked ? nap_bytes_format_human(memory, mem) : "");
        return buf;
}

/* InsufficientResources as a user reads it: what the job asked, what the
 * node has free; 0 (e untouched) when the node cannot be read. */
static int does_not_fit(NapContext *c, unsigned ranks, const NapCompute *rank, NapError *e) {
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        _cleanup_free_ char *node = NULL;
        char asked[96], total[96], free_[96], whole[96];
        EtcdClient *etcd;
        if (nap_config_node(c->config, &node, NULL) < 0 || nap_context_etcd(c, &etcd, NULL) < 0 ||
            nap_node_get(etcd, c->config->cluster_prefix, node, &i, NULL) < 0)
                return 0;
        const NapCapacity *cap = &i.node.capacity;
        uint64_t free_cpu = cap->cpu_milli > i.usage.cpu_milli ? cap->cpu_milli - i.usage.cpu_milli : 0;
        uint64_t free_mem = cap->memory > i.usage.memory ? cap->memory - i.usage.memory : 0;
        return nap_error_set(e, NAP_ERROR_INSUFFICIENT_RESOURCES, -ENOSPC,
                             "%u ranks of %s (%s in all) do not fit on node %s: it has %s free of %s", ranks,
                             compute_format(rank->request_cpu_milli, rank->request_memory, true, asked, sizeof asked),
                             compute_format(rank->request_cpu_milli * ranks, rank->request_memory * ranks, true, total,
                                            sizeof total),
                             node, compute_format(free_cpu, free_mem, false, free_, sizeof free_),
                             compute_format(cap->cpu_milli, cap->memory, false, whole, sizeof whole));
}

/* What the job reserves, as the inventory stores it (limits 0 become
 * the requests). */
static int job_total(const NapCompute *rank, unsigned ranks, NapCompute *ret, NapError *e) {
        int r = job_compute(rank, ranks, ret, e);
        return r < 0 ? r : nap_compute_check(ret, e);
}

int ops_mpi_reserve(NapContext *c, const NapService *s, unsigned job, unsigned ranks, const NapCompute *rank,
                    char **ret_node, NapError *e) {
        NapManifest m = { .instance = master_of(s, job) };
        NapError why = NAP_ERROR_NULL;
        *ret_node = NULL;
        if (nap_compute_is_empty(rank))
                return 0;
        int r = job_total(rank, ranks, &m.resources, e);
        if (r < 0)
                return r;
        r = ops_reserve_instance(c, &m, &why);
        if (r >= 0) {
                *ret_node = m.reservation; /* NULL: no inventory (Etcd= unset) */
                return 0;
        }
        if (why.kind == NAP_ERROR_INSUFFICIENT_RESOURCES && does_not_fit(c, ranks, rank, e) < 0)
                return -ENOSPC;
        return nap_error_set(e, why.kind, r, "%s", why.message);
}

int ops_mpi_release(NapContext *c, const NapService *s, unsigned job, const char *node, NapError *e) {
        NapManifest m = { .instance = master_of(s, job), .reservation = (char *) node };
        return node && *node ? ops_release_instance(c, &m, e) : 0;
}

/* The reservation the master's manifest records, released (a job that
 * ended); released already, or the job collected (no manifest): 0. */
static int release_ended_job(NapContext *c, const NapMpiJob *job, NapError *e) {
        NapInstance i = master_of(&job->service, job->number);
        _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, &i);
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to release job %u", job->number);
        return nap_manifest_load(path, &m, NULL) < 0 ? 0 : ops_release_instance(c, m, e);
}

/* ---- units ---------------------------------------------------------------- */

/* Writes and installs one instance of the job; loaded once all are
 * there (master and slaves name each other: the one loaded first would
 * load the other from disk before its files were written). */
static int write_instance(NapContext *c, NapManifest *m, NapError *e) {
        int r = nap_manifest_save(c->config->instances_dir, m, e);
        return r < 0 ? r : ops_units_install(c, m, e);
}

static int new_manifest(const NapInstance *i, const char *tree, char **argv, unsigned port, NapManifest **ret) {
        NapManifest *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        *m = (NapManifest) { .instance = *i, .argv = strv_copy(argv), .directory = strdup(tree), .port = port };
        if (!m->argv || !m->directory)
                return nap_manifest_free(m), -ENOMEM;
        *ret = m;
        return 0;
}

/* The master: port, the one mpiexec listens on for its proxies; np in its
 * params (its drop-in Wants= that many slaves); the app's configuration;
 * the job's reservation (named as the master: its removal releases it),
 * but no limits of its own (mpiexec is light; the ranks are the slaves). */
static int write_master(NapContext *c, const NapMpiJob *job, const char *tree, unsigned port, NapError *e) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        _cleanup_strv_free_ char **argv = nap_mpi_master_argv(nap_mpi_binary(), job->ranks, job->argv);
        NapInstance i = master_of(&job->service, job->number);
        char np[16];
        snprintf(np, sizeof np, "%u", job->ranks);
        int r = argv ? new_manifest(&i, tree, argv, port, &m) : -ENOMEM;
        if (r >= 0)
                r = nap_params_new(&m->params);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to make the job's master");
        for (size_t k = 0; r >= 0 && k < nap_params_size(job->params); k++)
                r = nap_params_set(m->params, nap_params_key(job->params, k), nap_params_value(job->params, k), e);
        if (r >= 0)
                r = nap_params_set(m->params, NAP_MPI_RANKS_PARAM, np, e);
        if (r >= 0 && ((job->commit && !(m->commit = strdup(job->commit))) ||
                       (job->node && !(m->reservation = strdup(job->node)))))
                r = nap_error_errno(e, -ENOMEM, "Failed to make the job's master");
        if (r >= 0)
                r = ops_app_environment(c, &job->service, &m->environment, e);
        return r < 0 ? r : write_instance(c, m, e);
}

/* A slave's PORT is its master's: where its proxy connects. Its limits
 * are a rank's (CPUQuota=, MemoryMax=, … in its drop-in). */
static int write_slaves(NapContext *c, const NapMpiJob *job, const char *tree, unsigned port, NapError *e) {
        for (unsigned rank = 0; rank < job->ranks; rank++) {
                _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
                _cleanup_strv_free_ char **argv = nap_mpi_slave_argv(nap_mpi_binary(), rank);
                NapInstance i = slave_of(&job->service, job->number, rank);
                int r = argv ? new_manifest(&i, tree, argv, port, &m) : -ENOMEM;
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to make the job's slaves");
                m->resources = job->rank;
                r = write_instance(c, m, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Manifests and unit files of the whole job, then the manager loads them. */
static int make_units(NapContext *c, const NapMpiJob *job, const char *tree, NapError *e) {
        NapInstance master = master_of(&job->service, job->number);
        _cleanup_close_ int port_lock = -1;
        unsigned port;
        int r = nap_state_allocate_port(c->config, &master, &port, &port_lock, e);
        if (r >= 0)
                r = write_slaves(c, job, tree, port, e);
        if (r >= 0)
                r = write_master(c, job, tree, port, e);
        if (r < 0)
                return r;
        port_lock = safe_close(port_lock); /* the master's manifest claims it now */
        for (unsigned rank = 0; r >= 0 && rank < job->ranks; rank++) {
                NapInstance slave = slave_of(&job->service, job->number, rank);
                r = ops_units_load(c, &slave, e);
        }
        return r < 0 ? r : ops_units_load(c, &master, e);
}

/* ---- collecting ----------------------------------------------------------- */

static bool exited_zero(const NapUnitExit *x) {
        return x->exit_usec > 0 && x->code == CLD_EXITED && x->status == 0;
}

/* Until the unit settles (failed, inactive, or active after a clean exit:
 * a master written before ExecStopPost=, with RemainAfterExit=yes), the
 * job runs: a master whose main process ended is "deactivating" while its
 * ExecStopPost= records the end (read here, it would be taken for a
 * stop). */
static bool unit_still_runs(const NapUnitExit *x) {
        return (nap_unit_state_is_running(x->active_state) && !exited_zero(x)) ||
               streq_ptr(x->active_state, "deactivating");
}

/* What the settled master's unit says of the job. */
static void job_result_from_unit(NapMpiJob *job, const NapUnitExit *x) {
        job->exit_status = x->code == CLD_EXITED ? x->status : x->code > 0 ? 128 + x->status : -1;
        job->state = exited_zero(x)                    ? NAP_MPI_SUCCEEDED :
                     streq(x->active_state, "failed") ? NAP_MPI_FAILED :
                                                        NAP_MPI_STOPPED; /* stopped, or never ran */
        job->end_usec = x->exit_usec > 0 ? x->exit_usec : realtime_usec();
        free(job->result);
        job->result = strdup(x->result ?: "success");
}

/* A running job's end recorded (the one path for it, whoever sees the
 * end first); release_ended_job() follows. */
static int record_end(NapContext *c, NapMpiJob *job, const NapUnitExit *x, NapError *e) {
        job_result_from_unit(job, x);
        return nap_mpi_job_save(c->config, job, e);
}

/* Whether the master's ExecStopPost= recorded the end since *job was
 * read: it runs before the unit settles, so once the unit is seen settled
 * its record is on disk. Then *job becomes that record. (A master that
 * settled without RemainAfterExit= may be unloaded already, and a unit
 * loaded again says nothing of how it ended: reading it would take a
 * success for a stop.) */
static bool recorded_meanwhile(NapContext *c, NapMpiJob *job) {
        NapMpiJob now = {};
        NapError ignored = NAP_ERROR_NULL;
        if (nap_mpi_job_load(c->config, &job->service, job->number, &now, &ignored) < 0 ||
            now.state == NAP_MPI_RUNNING) {
                nap_mpi_job_done(&now);
                return false;
        }
        nap_mpi_job_done(job);
        *job = now;
        return true;
}

/* A running job whose master is done and whose ExecStopPost= did not
 * record it (failed, or cut short): its result recorded from the unit;
 * its reservation released, best effort (see nap_get_mpi_job()). */
static int update_job(NapContext *c, NapMpiJob *job, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        NapInstance i = master_of(&job->service, job->number);
        NapUnitExit x = {};
        sd_bus *bus;
        if (job->state != NAP_MPI_RUNNING)
                return 0;
        int r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_get_unit_exit(bus, nap_instance_unit_name(&i, unit), &x, e);
        if (r >= 0 && !unit_still_runs(&x) && !recorded_meanwhile(c, job)) {
                r = record_end(c, job, &x, e);
                if (r >= 0)
                        (void) release_ended_job(c, job, NULL);
        }
        nap_unit_exit_clear(&x);
        return r;
}

int nap_mpi_job_ended(NapContext *c, const char *service, unsigned job, const NapUnitExit *x, NapError *e) {
        NapMpiJob j = {};
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = nap_mpi_job_load(c->config, &s, job, &j, e);
        if (r >= 0)
                r = j.state == NAP_MPI_RUNNING ? record_end(c, &j, x, e) : 0;
        if (r >= 0)
                r = release_ended_job(c, &j, e);
        nap_mpi_job_done(&j);
        return r;
}

/* The job's instances that have a manifest (only those: an instance dir
 * without one could be a common instance's, USER_APP_N) and its tree. */
static int remove_job_units(NapContext *c, const NapService *s, unsigned job, unsigned ranks, NapError *e) {
        _cleanup_free_ char *tree = nap_mpi_job_tree(c->config, s, job);
        int r = 0;
        for (unsigned k = 0; r >= 0 && k <= ranks; k++) {
                NapInstance i = k == 0 ? master_of(s, job) : slave_of(s, job, k - 1);
                _cleanup_free_ char *path = nap_manifest_path(c->config->instances_dir, &i);
                if (!path)
                        return nap_error_errno(e, -ENOMEM, "Failed to collect job %u", job);
                if (access(path, F_OK) >= 0)
                        r = ops_remove_instance_locked(c, &i, e);
        }
        if (r >= 0 && tree)
                r = rm_rf(tree) < 0 ? nap_error_errno(e, -EIO, "Failed to remove %s", tree) : 0;
        return r;
}

/* Every MPI manifest of the app whose job is not running: its job
 * collected. A job without a record (a start cut short) too. */
static int collect_finished(NapContext *c, const NapService *s, NapError *e) {
        NapManifest **l = NULL;
        size_t n = 0;
        unsigned last = 0;
        int r = nap_state_load_service_manifests(c->config, s, &l, &n, e);
        for (size_t k = 0; r >= 0 && k < n; k++) {
                unsigned job = job_of(&l[k]->instance);
                if (job == 0 || job == last)
                        continue;
                last = job;
                NapMpiJob j = {};
                NapError ignored = NAP_ERROR_NULL;
                bool known = nap_mpi_job_load(c->config, s, job, &j, &ignored) >= 0;
                if (known)
                        r = update_job(c, &j, e);
                if (r >= 0 && (!known || j.state != NAP_MPI_RUNNING))
                        r = remove_job_units(c, s, job, known ? j.ranks : NAP_MPI_RANKS_LIMIT, e);
                nap_mpi_job_done(&j);
        }
        nap_state_manifests_free(l, n);
        return r;
}

/* The job's units go (the master's releases the reservation it records),
 * then the reservation the intent names, which a start cut short before
 * the master's manifest was written holds without any manifest. */
int ops_mpi_recover(NapContext *c, const NapIntent *in, NapError *e) {
        NapMpiJob j = {};
        NapError ignored = NAP_ERROR_NULL;
        bool known = nap_mpi_job_load(c->config, &in->service, in->number, &j, &ignored) >= 0;
        int r = remove_job_units(c, &in->service, in->number, known ? j.ranks : NAP_MPI_RANKS_LIMIT, e);
        if (r >= 0)
                r = ops_mpi_release(c, &in->service, in->number, in->node, e);
        if (r >= 0 && known && j.state == NAP_MPI_RUNNING) {
                j.state = NAP_MPI_STOPPED;
                j.end_usec = realtime_usec();
                r = nap_mpi_job_save(c->config, &j, e);
        }
        nap_mpi_job_done(&j);
        return r;
}

/* ---- start ---------------------------------------------------------------- */

/* Everything checked, nothing changed yet: the job to start. */
static int prepare_job(NapContext *c, const NapService *s, const NapParams *params, const NapCompute *rank,
                       NapMpiJob *job, NapProfile **ret_profile, NapError *e) {
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        char name[NAP_SERVICE_NAME_MAX];
        int r = ops_load_service_profile(c, s, &p, e);
        if (r < 0)
                return r;
        if (!nap_profile_is_mpi(p))
                return nap_error_set(e, NAP_ERROR_INVALID_PROFILE, -EINVAL,
                                     "%s is not an MPI app: its Procfile has no mpi process (nap.profile(5))",
                                     nap_service_name(s, name));
        r = split_params(p, params, &job->ranks, &job->params, e);
        job->rank = rank_compute(p, rank);
        if (r >= 0)
                r = check_rank_compute(&job->rank, job->ranks, e);
        if (r >= 0) /* the mpi process has no {port} (profile.h) */
                r = nap_profile_substitute(nap_profile_mpi(p), job->params, 0, NULL, NULL, e);
        if (r < 0)
                return r;
        job->service = *s;
        job->state = NAP_MPI_RUNNING;
        job->exit_status = -1;
        *ret_profile = TAKE_PTR(p);
        return 0;
}

/* The program with the params; the values used become the job's params. */
static int job_argv(const NapProfile *p, NapMpiJob *job, NapError *e) {
        _cleanup_(nap_params_freep) NapParams *values = NULL;
        int r = nap_profile_substitute(nap_profile_mpi(p), job->params, 0, &job->argv, &values, e);
        if (r >= 0) {
                nap_params_free(job->params);
                job->params = TAKE_PTR(values);
        }
        return r;
}

static int start_master(NapContext *c, const NapMpiJob *job, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        NapInstance i = master_of(&job->service, job->number);
        sd_bus *bus;
        int r = ops_context_bus(c, &bus, e);
        if (r >= 0)
                r = nap_systemd_start_unit(bus, nap_instance_unit_name(&i, unit), e);
        if (r < 0)
                ops_error_add_journal(c, unit, e);
        return r;
}

/* The job's number, its intent (with the node its reservation goes to),
 * then the reservation, before anything of the job exists; the number is
 * recorded once it fits (a refused job leaves nothing behind). */
static int begin_job(NapContext *c, NapMpiJob *job, NapIntent *in, NapError *e) {
        int r = nap_mpi_peek_job_number(c->config, &job->service, &job->number, e);
        if (r < 0)
                return r;
        in->operation = NAP_INTENT_START_MPI; /* written again after a queued job's hand-over: the same */
        in->service = job->service;
        in->number = job->number;
        r = ops_reservation_node(c, &job->rank, in->node, sizeof in->node, e);
        if (r >= 0)
                r = ops_intent_begin(c, in, e);
        if (r >= 0)
                r = ops_mpi_reserve(c, &job->service, job->number, job->ranks, &job->rank, &job->node, e);
        if (r >= 0)
                nap_debug_point("start-mpi:reserved");
        return r < 0 ? r : nap_mpi_record_job_number(c->config, &job->service, job->number, e);
}

/* Under the lock, after the checks: number, reservation, tree, record,
 * manifests, units, start. */
static int create_job(NapContext *c, const NapProfile *p, const char *from, NapMpiJob *job, NapIntent *in,
                      NapError *e) {
        _cleanup_free_ char *tree = NULL;
        int r = begin_job(c, job, in, e);
        if (r < 0)
                return r;
        if (!(tree = nap_mpi_job_tree(c->config, &job->service, job->number)))
                return nap_error_errno(e, -ENOMEM, "Failed to start the job");
        r = copy_fresh_tree(from, tree);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to copy %s to %s", from, tree);
        DeployMeta meta;
        ops_deploy_meta_read(from, &meta);
        job->commit = TAKE_PTR(meta.commit);
        ops_deploy_meta_clear(&meta);
        r = job_argv(p, job, e);
        if (r >= 0) { /* recorded first: recovery finds it, and says "stopped" */
                job->start_usec = realtime_usec();
                r = nap_mpi_job_save(c->config, job, e);
        }
        if (r >= 0)
                r = make_units(c, job, tree, e);
        if (r < 0)
                return r;
        nap_debug_point("start-mpi:units");
        return start_master(c, job, e);
}

/* A job being started, under the app's lock, everything checked. */
typedef struct JobStart {
        const NapProfile *profile;
        const NapParams *params; /* as given (np among them): a detached queued start's */
        const char *from;        /* the tree it is copied from */
        const char *request;     /* the request id, or NULL */
        NapMpiJob *job;
} JobStart;

static bool same_compute(const NapCompute *a, const NapCompute *b) {
        return a->request_cpu_milli == b->request_cpu_milli && a->limit_cpu_milli == b->limit_cpu_milli &&
               a->request_memory == b->request_memory && a->limit_memory == b->limit_memory;
}

/* The admitted queue job j becomes this job: the request it queued
 * (InvalidParameter, nothing changed, when this one asks another), its
 * number, then the hand-over of its reservation to the job's master. */
static int take_admitted(NapContext *c, const JobStart *st, const NapJob *j, NapIntent *in, NapError *e) {
        NapReservation queued, held;
        NapCompute total;
        NapMpiJob *job = st->job;
        int r = nap_job_internal_reservation(j, &queued, e);
        if (r >= 0)
                r = job_total(&job->rank, job->ranks, &total, e);
        if (r >= 0 && !same_compute(&total, &queued.compute))
                r = nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                                         "Request id %s was queued for another request (np or a "
                                                         "rank's cpu or memory)", st->request), "requestId");
        if (r >= 0)
                r = nap_mpi_peek_job_number(c->config, &job->service, &job->number, e);
        if (r < 0)
                return r;
        NapInstance master = master_of(&job->service, job->number);
        return ops_queued_take(c, j, in, &master, &held, e);
}

/* Number, reservation (a queued job's: handed over first), tree, record,
 * manifests, units, start, the request id recorded; undone whole when
 * anything fails, as recovery would. */
static int start_job(NapContext *c, const JobStart *st, const NapJob *admitted, NapError *e) {
        char name[NAP_UNIT_NAME_MAX];
        NapIntent in = { .operation = NAP_INTENT_START_MPI, .service = st->job->service };
        int r = admitted ? take_admitted(c, st, admitted, &in, e) : 0;
        if (r >= 0)
                r = create_job(c, st->profile, st->from, st->job, &in, e);
        if (r >= 0 && st->request) {
                NapInstance master = master_of(&st->job->service, st->job->number);
                r = nap_request_record(c->config, st->job->service.user, st->request,
                                       nap_instance_name(&master, name), e);
        }
        if (r < 0 && in.time_usec > 0)
                (void) ops_mpi_recover(c, &in, NULL);
        if (in.time_usec > 0)
                ops_intent_end(c, &st->job->service);
        return r;
}

static int start_job_now(NapContext *c, void *userdata, NapError *e) {
        return start_job(c, userdata, NULL, e);
}

static int start_job_admitted(NapContext *c, const NapJob *j, void *userdata, NapError *e) {
        return start_job(c, userdata, j, e);
}

/* start-mpi --queue: started now, or a job of the queue (1). */
static int start_queued(NapContext *c, const JobStart *st, const NapStartOptions *o, NapError *e) {
        OpsQueuedRequest q = { .kind = "start-mpi", .method = "StartMpi", .service = &st->job->service,
                               .params = st->params, .request = o->request_id, .rank = &st->job->rank,
                               .detached = o->no_block };
        OpsQueuedStarter s = { .start_now = start_job_now, .start_admitted = start_job_admitted,
                               .userdata = (void *) st };
        int r = job_total(&st->job->rank, st->job->ranks, &q.reservation, e);
        return r < 0 ? r : ops_queued_start(c, &q, &s, o->queued, e);
}

/* A request id seen before: 1 and the job it started, as it is now. */
static int replay_request(NapContext *c, const NapService *s, const char *request_id, NapMpiJob *ret, NapError *e) {
        NapInstance master;
        int r = ops_request_replayed(c, s, request_id, NAP_KIND_MPI_MASTER, &master, e);
        if (r <= 0)
                return r;
        r = nap_mpi_job_load(c->config, s, master.number, ret, e);
        if (r >= 0)
                r = update_job(c, ret, e); /* ended since? (nothing when not running) */
        return r < 0 ? r : 1;
}

int nap_start_mpi(NapContext *c, const char *service, const NapParams *params, const NapStartOptions *o,
                  NapMpiJob *ret, NapError *e) {
        NapStartOptions opts = o ? *o : (NapStartOptions) {};
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        _cleanup_free_ char *from = NULL;
        _cleanup_close_ int lock = -1;
        NapMpiJob job = {};
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0 && opts.request_id)
                r = nap_request_id_check(opts.request_id, e);
        if (r >= 0)
                r = ops_lock_service(c, &s, &lock, e);
        if (r >= 0 && opts.request_id)
                r = replay_request(c, &s, opts.request_id, &job, e);
        if (r > 0) {
                *ret = job;
                return 0;
        }
        if (r >= 0)
                r = prepare_job(c, &s, params, &opts.resources, &job, &p, e);
        if (r >= 0 && opts.queue)
                r = ops_queued_check(c, &job.rank, opts.request_id, e);
        if (r >= 0)
                r = built_tree(c, &s, p, &from, e);
        if (r >= 0) {
                JobStart st = { .profile = p, .params = params, .from = from, .request = opts.request_id, .job = &job };
                r = opts.queue ? start_queued(c, &st, &opts, e) : start_job(c, &st, NULL, e);
        }
        /* after the new job started, so that it does not wait for this;
         * a leftover that cannot go now goes with the next job */
        if (r == 0)
                (void) collect_finished(c, &s, NULL);
        if (r != 0) /* failed, or queued: no job yet */
                return nap_mpi_job_done(&job), r;
        *ret = job;
        return 0;
}

/* ---- queries -------------------------------------------------------------- */

int nap_get_mpi_job(NapContext *c, const char *service, unsigned job, NapMpiJob *ret, NapError *e) {
        _cleanup_close_ int lock = -1;
        NapMpiJob j = {};
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r >= 0 && (job == 0 || job > NAP_MPI_JOB_MAX))
                r = nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ERANGE,
                                                         "A job number is 1 to %u", NAP_MPI_JOB_MAX), "job");
        if (r >= 0)
                r = nap_mpi_job_load(c->config, &s, job, &j, e);
        if (r >= 0 && j.state == NAP_MPI_RUNNING) { /* ended since? recorded under the lock */
                nap_mpi_job_done(&j);
                r = ops_lock_service(c, &s, &lock, e);
                if (r >= 0)
                        r = nap_mpi_job_load(c->config, &s, job, &j, e);
                if (r >= 0)
                        r = update_job(c, &j, e);
        } else if (r >= 0) /* ended; its ExecStopPost= may have found etcd down */
                (void) release_ended_job(c, &j, NULL);
        if (r < 0)
                return nap_mpi_job_done(&j), r;
        *ret = j;
        return 0;
}

static bool instance_in_job(const NapInstanceInfo *i, unsigned job) {
        NapInstance parsed;
        return nap_instance_parse(i->name, &parsed, NULL) >= 0 && job_of(&parsed) == job;
}

int nap_mpi_job_instances(NapContext *c, const NapMpiJob *job, NapInstanceInfo **ret, size_t *ret_n, NapError *e) {
        char name[NAP_SERVICE_NAME_MAX];
        NapInstanceInfo *all = NULL;
        size_t n = 0, kept = 0;
        int r = nap_list_instances(c, nap_service_name(&job->service, name), &all, &n, e);
        if (r < 0)
                return r;
        for (size_t k = 0; k < n; k++) {
                if (instance_in_job(all + k, job->number))
                        all[kept++] = all[k];
                else
                        nap_instance_info_clear(all + k);
        }
        *ret = all;
        *ret_n = kept;
        return 0;
}
