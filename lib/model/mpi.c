/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/strv.h"
#include "model/mpi.h"
#include "model/node.h"
#include "model/state.h"
#include "model/unit.h"

static const char *const state_table[_NAP_MPI_STATE_MAX] = {
        [NAP_MPI_RUNNING] = "running",
        [NAP_MPI_SUCCEEDED] = "succeeded",
        [NAP_MPI_FAILED] = "failed",
        [NAP_MPI_STOPPED] = "stopped",
};

const char *nap_mpi_state_to_string(NapMpiState s) {
        return s >= 0 && s < _NAP_MPI_STATE_MAX ? state_table[s] : NULL;
}

NapMpiState nap_mpi_state_from_string(const char *s) {
        return string_table_lookup(state_table, ELEMENTSOF(state_table), s);
}

const char *nap_mpi_binary(void) {
        const char *env = secure_getenv("NAP_MPI_BINARY");
        return !isempty(env) && nap_unit_exec_path_is_valid(env) ? env : NAP_MPI_BINARY_DEFAULT;
}

void nap_mpi_job_done(NapMpiJob *j) {
        if (!j)
                return;
        strv_free(j->argv);
        nap_params_free(j->params);
        free(j->commit);
        free(j->result);
        free(j->node);
        *j = (NapMpiJob) {};
}

/* ---- the record --------------------------------------------------------- */

static int damaged(NapError *e, const char *why) {
        return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EINVAL, "Damaged MPI job record: %s", why);
}

static int argv_from_json(json_t *a, char ***ret) {
        size_t i;
        json_t *v;
        if (json_array_size(a) == 0)
                return -EINVAL;
        json_array_foreach(a, i, v)
                if (!json_is_string(v) || strv_extend(ret, json_string_value(v)) < 0)
                        return -EINVAL;
        return 0;
}

static int params_from_json(json_t *o, NapParams **ret, NapError *e) {
        const char *k;
        json_t *v;
        int r = nap_params_new(ret);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read an MPI job record");
        json_object_foreach(o, k, v)
                if (!json_is_string(v) || nap_params_set(*ret, k, json_string_value(v), NULL) < 0)
                        return damaged(e, "bad params");
        return 0;
}

static int job_fields_check(NapMpiJob *j, json_int_t version, json_int_t number, json_int_t ranks,
                            json_int_t status, json_int_t started, json_int_t finished, const char *state,
                            NapError *e) {
        j->state = nap_mpi_state_from_string(state);
        if (version != 1 || number < 1 || number > NAP_MPI_JOB_MAX || ranks < 1 || ranks > NAP_MPI_RANKS_LIMIT ||
            status < -1 || status > 255 || started < 0 || finished < 0 || j->state < 0)
                return damaged(e, "version, job, ranks, state, exit_status or a time out of range");
        j->number = (unsigned) number;
        j->ranks = (unsigned) ranks;
        j->exit_status = (int) status;
        j->start_usec = (uint64_t) started;
        j->end_usec = (uint64_t) finished;
        return 0;
}

static int job_strings_set(NapMpiJob *j, const char *commit, const char *result, NapError *e) {
        if (commit && !nap_commit_is_valid(commit))
                return damaged(e, "bad commit");
        if (result && (strlen(result) > 64 || strspn(result, "abcdefghijklmnopqrstuvwxyz-") != strlen(result)))
                return damaged(e, "bad result");
        if ((commit && !(j->commit = strdup(commit))) || (result && !(j->result = strdup(result))))
                return nap_error_errno(e, -ENOMEM, "Failed to read an MPI job record");
        return 0;
}

/* The rank's amounts ("REQUEST:LIMIT", either absent) and the node. */
static int job_resources_set(NapMpiJob *j, const char *cpu, const char *memory, const char *node, NapError *e) {
        NapCompute *c = &j->rank;
        if ((cpu && nap_cpu_amount_parse(cpu, &c->request_cpu_milli, &c->limit_cpu_milli, NULL) < 0) ||
            (memory && nap_bytes_amount_parse(memory, &c->request_memory, &c->limit_memory, NULL) < 0))
                return damaged(e, "bad cpu or memory");
        if (node && nap_node_name_check(node, NULL) < 0)
                return damaged(e, "bad node");
        if (node && !(j->node = strdup(node)))
                return nap_error_errno(e, -ENOMEM, "Failed to read an MPI job record");
        return 0;
}

int nap_mpi_job_parse(const char *text, size_t size, NapMpiJob *ret, NapError *e) {
        json_int_t version, number, ranks, status = -1, started = 0, finished = 0;
        const char *user, *app, *state, *commit = NULL, *result = NULL, *cpu = NULL, *memory = NULL, *node = NULL;
        json_t *argv, *params = NULL;
        json_error_t jerr;
        NapMpiJob j = { .exit_status = -1 };

        if (size > NAP_MPI_JOB_MAX_SIZE)
                return damaged(e, "too large");
        json_auto_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!root || json_unpack_ex(root, &jerr, JSON_STRICT,
                                    "{s:I, s:s, s:s, s:I, s:I, s:o, s?o, s?s, s:s, s?s, s?I, s:I, s?I, s?s, s?s, s?s}",
                                    "version", &version, "user", &user, "app", &app, "job", &number, "ranks", &ranks,
                                    "argv", &argv, "params", &params, "commit", &commit, "state", &state, "result",
                                    &result, "exit_status", &status, "started", &started, "finished", &finished, "cpu",
                                    &cpu, "memory", &memory, "node", &node) < 0)
                return damaged(e, root ? jerr.text : "not valid JSON");
        int r = job_fields_check(&j, version, number, ranks, status, started, finished, state, e);
        if (r >= 0 && nap_service_from_parts(user, app, &j.service, NULL) < 0)
                r = damaged(e, "not a valid app name");
        if (r >= 0 && argv_from_json(argv, &j.argv) < 0)
                r = damaged(e, "bad argv");
        if (r >= 0 && params)
                r = params_from_json(params, &j.params, e);
        if (r >= 0)
                r = job_strings_set(&j, commit, result, e);
        if (r >= 0)
                r = job_resources_set(&j, cpu, memory, node, e);
        if (r < 0) {
                nap_mpi_job_done(&j);
                return r;
        }
        *ret = j;
        return 0;
}

static json_t *params_to_json(const NapParams *p) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < nap_params_size(p); i++)
                if (json_object_set_new(o, nap_params_key(p, i), json_string(nap_params_value(p, i))) < 0)
                        o = (json_decref(o), NULL);
        return o;
}

static json_t *strv_to_json(char *const *l) {
        json_t *a = json_array();
        STRV_FOREACH(w, l)
                if (a && json_array_append_new(a, json_string(*w)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* "REQUEST:LIMIT" into buf; NULL when nothing was asked. */
static const char *amount_format(uint64_t request, uint64_t limit, const char *(*format)(uint64_t, char *),
                                 char *buf) {
        char a[NAP_AMOUNT_STRING_MAX], b[NAP_AMOUNT_STRING_MAX];
        if (request == 0)
                return NULL;
        snprintf(buf, 2 * NAP_AMOUNT_STRING_MAX + 1, "%s:%s", format(request, a), format(limit, b));
        return buf;
}

static int job_resources_to_json(json_t *o, const NapMpiJob *j) {
        char cpu[2 * NAP_AMOUNT_STRING_MAX + 1], memory[2 * NAP_AMOUNT_STRING_MAX + 1];
        const char *values[] = {
                amount_format(j->rank.request_cpu_milli, j->rank.limit_cpu_milli, nap_cpu_format, cpu),
                amount_format(j->rank.request_memory, j->rank.limit_memory, nap_bytes_format, memory),
                j->node,
        };
        const char *keys[] = { "cpu", "memory", "node" };
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                if (values[k] && json_object_set_new(o, keys[k], json_string(values[k])) < 0)
                        return -ENOMEM;
        return 0;
}

char *nap_mpi_job_format(const NapMpiJob *j) {
        assert(j);
        json_auto_t *o = json_pack("{s:i, s:s, s:s, s:I, s:I, s:o, s:o, s:s, s:I}", "version", 1, "user",
                                   j->service.user, "app", j->service.app, "job", (json_int_t) j->number, "ranks",
                                   (json_int_t) j->ranks, "argv", strv_to_json(j->argv), "params",
                                   params_to_json(j->params), "state", nap_mpi_state_to_string(j->state), "started",
                                   (json_int_t) j->start_usec);
        if (!o || (j->commit && json_object_set_new(o, "commit", json_string(j->commit)) < 0) ||
            (j->result && json_object_set_new(o, "result", json_string(j->result)) < 0) ||
            (j->exit_status >= 0 && json_object_set_new(o, "exit_status", json_integer(j->exit_status)) < 0) ||
            (j->end_usec > 0 && json_object_set_new(o, "finished", json_integer((json_int_t) j->end_usec)) < 0) ||
            job_resources_to_json(o, j) < 0)
                return NULL;
        char *s = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));
        char *t = s ? strdup_printf("%s\n", s) : NULL;
        free(s);
        return t;
}

/* ---- on disk ------------------------------------------------------------ */

char *nap_mpi_jobs_dir(const NapConfig *c, const NapService *s) {
        _cleanup_free_ char *dir = nap_state_user_services_dir(c, s->user);
        _cleanup_free_ char *name = strdup_printf(".%s_%s.mpi", s->user, s->app);
        return dir && name ? path_join(dir, name, NULL) : NULL;
}

static char *apps_path(const NapConfig *c, const NapService *s, const char *suffix) {
        _cleanup_free_ char *dir = nap_state_user_apps_dir(c, s->user);
        _cleanup_free_ char *name = strdup_printf("%s_%s_mpi_%s", s->user, s->app, suffix);
        return dir && name ? path_join(dir, name, NULL) : NULL;
}

char *nap_mpi_job_tree(const NapConfig *c, const NapService *s, unsigned job) {
        char n[16];
        snprintf(n, sizeof n, "%u", job);
        return apps_path(c, s, n);
}

char *nap_mpi_build_tree(const NapConfig *c, const NapService *s) {
        return apps_path(c, s, "build");
}

static char *job_path(const NapConfig *c, const NapService *s, unsigned job) {
        _cleanup_free_ char *dir = nap_mpi_jobs_dir(c, s);
        return dir ? strdup_printf("%s/%u.json", dir, job) : NULL;
}

int nap_mpi_job_save(const NapConfig *c, const NapMpiJob *j, NapError *e) {
        _cleanup_free_ char *dir = nap_mpi_jobs_dir(c, &j->service), *path = job_path(c, &j->service, j->number);
        _cleanup_free_ char *text = nap_mpi_job_format(j);
        if (!dir || !path || !text)
                return nap_error_errno(e, -ENOMEM, "Failed to record MPI job %u", j->number);
        int r = mkdir_p(dir, 0755);
        if (r >= 0)
                r = write_file_atomic(path, text, strlen(text), 0644);
        if (r >= 0)
                r = fsync_directory_of(path);
        return r < 0 ? nap_error_errno(e, r, "Failed to write %s", path) : 0;
}

int nap_mpi_job_load(const NapConfig *c, const NapService *s, unsigned job, NapMpiJob *ret, NapError *e) {
        _cleanup_free_ char *path = job_path(c, s, job), *text = NULL;
        size_t size;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read MPI job %u", job);
        int r = read_full_file(path, NAP_MPI_JOB_MAX_SIZE + 1, &text, &size);
        if (r == -ENOENT)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, r, "No MPI job %u of %s_%s", job, s->user, s->app);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read %s", path);
        r = nap_mpi_job_parse(text, size, ret, e);
        if (r >= 0 && (ret->number != job || !streq(ret->service.user, s->user) || !streq(ret->service.app, s->app))) {
                nap_mpi_job_done(ret);
                return damaged(e, "it names another job");
        }
        return r;
}

/* "N.json" with N a valid job number: N, else 0. */
static unsigned record_number(const char *name) {
        unsigned n;
        const char *dot = strrchr(name, '.');
        if (!dot || !streq(dot, ".json") || dot - name > 9)
                return 0;
        char digits[10];
        memcpy(digits, name, dot - name);
        digits[dot - name] = 0;
        return nap_instance_number_parse(digits, &n) >= 0 && n <= NAP_MPI_JOB_MAX ? n : 0;
}

static int compare_unsigned(const void *a, const void *b) {
        unsigned x = *(const unsigned *) a, y = *(const unsigned *) b;
        return (x > y) - (x < y);
}

int nap_mpi_job_list(const NapConfig *c, const NapService *s, unsigned **ret, size_t *ret_n, NapError *e) {
        _cleanup_free_ char *dir = nap_mpi_jobs_dir(c, s);
        _cleanup_free_ unsigned *l = NULL;
        size_t n = 0;
        if (!dir)
                return nap_error_errno(e, -ENOMEM, "Failed to list MPI jobs");
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (!d && errno != ENOENT)
                return nap_error_errno(e, negative_errno(), "Failed to open %s", dir);
        for (struct dirent *de; d && (de = readdir(d));) {
                unsigned k = record_number(de->d_name);
                if (k == 0)
                        continue;
                unsigned *m = realloc(l, (n + 1) * sizeof *l);
                if (!m)
                        return nap_error_errno(e, -ENOMEM, "Failed to list MPI jobs");
                l = m;
                l[n++] = k;
        }
        if (n > 0)
                qsort(l, n, sizeof *l, compare_unsigned);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static char *counter_path(const NapConfig *c, const NapService *s) {
        _cleanup_free_ char *dir = nap_mpi_jobs_dir(c, s);
        return dir ? path_join(dir, "last", NULL) : NULL;
}

int nap_mpi_peek_job_number(const NapConfig *c, const NapService *s, unsigned *ret, NapError *e) {
        _cleanup_free_ char *counter = counter_path(c, s), *text = NULL;
        _cleanup_free_ unsigned *l = NULL;
        unsigned max = 0;
        size_t n = 0;
        if (!counter)
                return nap_error_errno(e, -ENOMEM, "Failed to allocate a job number");
        int r = read_full_file(counter, 32, &text, NULL);
        if (r >= 0) {
                text[strcspn(text, "\n")] = 0;
                if (nap_instance_number_parse(text, &max) < 0)
                        max = 0; /* damaged: the records still know */
        }
        if (r < 0 && r != -ENOENT)
                return nap_error_errno(e, r, "Failed to read %s", counter);
        r = nap_mpi_job_list(c, s, &l, &n, e);
        if (r < 0)
                return r;
        max = MAX(max, n > 0 ? l[n - 1] : 0);
        if (max >= NAP_MPI_JOB_MAX)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -ERANGE, "MPI job numbers of %s_%s are exhausted", s->user,
                                     s->app);
        *ret = max + 1;
        return 0;
}

int nap_mpi_record_job_number(const NapConfig *c, const NapService *s, unsigned job, NapError *e) {
        _cleanup_free_ char *dir = nap_mpi_jobs_dir(c, s), *counter = counter_path(c, s);
        char buf[16];
        int k = snprintf(buf, sizeof buf, "%u\n", job);
        int r = dir && counter ? mkdir_p(dir, 0755) : -ENOMEM;
        if (r >= 0)
                r = write_file_atomic(counter, buf, k, 0644);
        return r < 0 ? nap_error_errno(e, r, "Failed to record the job number in %s", strempty(counter)) : 0;
}

/* ---- command lines ------------------------------------------------------ */

char **nap_mpi_master_argv(const char *binary, unsigned ranks, char *const *program) {
        char n[16], w[16];
        snprintf(n, sizeof n, "%u", ranks);
        snprintf(w, sizeof w, "%u", NAP_MPI_WATCHDOG_SEC);
        _cleanup_strv_free_ char **argv = NULL;
        const char *head[] = { binary, "master", n, w, "--" };
        for (size_t i = 0; i < ELEMENTSOF(head); i++)
                if (strv_extend(&argv, head[i]) < 0)
                        return NULL;
        STRV_FOREACH(p, program)
                if (strv_extend(&argv, *p) < 0)
                        return NULL;
        return TAKE_PTR(argv);
}

char **nap_mpi_slave_argv(const char *binary, unsigned rank) {
        char r[16], w[16];
        snprintf(r, sizeof r, "%u", rank);
        snprintf(w, sizeof w, "%u", NAP_MPI_WATCHDOG_SEC);
        _cleanup_strv_free_ char **argv = NULL;
        const char *words[] = { binary, "slave", r, w };
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strv_extend(&argv, words[i]) < 0)
                        return NULL;
        return TAKE_PTR(argv);
}

/* ---- unit text ---------------------------------------------------------- */

/* The app sandbox of unit.c minus what splits one job's ranks apart:
 * ranks in different units share memory (/dev/shm, SysV IPC) and see each
 * other's files, so no PrivateTmp=, PrivateDevices=, PrivateIPC=,
 * PrivateUsers= (a user namespace per unit breaks cross-memory attach)
 * and no RemoveIPC=. */
static const char *const mpi_sandbox[] = {
        "NoNewPrivileges=yes",        "CapabilityBoundingSet=",       "AmbientCapabilities=",
        "ProtectSystem=strict",       "ProtectHome=yes",              "ProtectHostname=yes",
        "ProtectClock=yes",           "ProtectKernelTunables=yes",    "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",      "ProtectControlGroups=yes",     "RestrictNamespaces=yes",
        "RestrictRealtime=yes",       "RestrictSUIDSGID=yes",         "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
};

static void write_sandbox(FILE *f, const NapService *s, NapScope scope) {
        char user[NAP_UNIT_USER_NAME_MAX + 1];
        if (scope == NAP_SCOPE_SYSTEM)
                fprintf(f, "DynamicUser=yes\nUser=%s\n", nap_unit_user_name(s->user, user));
        for (size_t i = 0; i < ELEMENTSOF(mpi_sandbox); i++)
                fprintf(f, "%s\n", mpi_sandbox[i]);
}

int nap_mpi_write_template(FILE *f, const NapService *s, NapKind kind, NapScope scope, const NapConfig *c) {
        _cleanup_free_ char *source = NULL;
        char name[NAP_SERVICE_NAME_MAX];
        assert(kind == NAP_KIND_MPI_MASTER || kind == NAP_KIND_MPI_SLAVE);
        int r = unit_escape_value(c->instances_dir, &source);
        if (r < 0)
                return r;
        nap_service_name(s, name);
        fputs("# Automatically generated by nap-generator\n\n[Unit]\n", f);
        if (kind == NAP_KIND_MPI_MASTER)
                fprintf(f, "Description=nap app %s, MPI job %%i (mpi_master)\n", name);
        else
                fprintf(f, "Description=nap app %s, MPI rank slot %%i (mpi_slave)\n", name);
        fprintf(f, "SourcePath=%s\n", source);
        /* No Restart=: a rank cannot rejoin a running job. The master
         * stays active (exited) after success, so its status stays
         * readable; mpiexec whose proxies never connected ignores SIGTERM:
         * a short stop timeout, then SIGKILL. */
        fputs("\n[Service]\nType=exec\nTimeoutStopSec=3s\n", f);
        if (kind == NAP_KIND_MPI_MASTER)
                fputs("RemainAfterExit=yes\n", f);
        write_sandbox(f, s, scope);
        return ferror(f) ? -EIO : 0;
}

static void master_unit_name(const NapService *s, unsigned job, char *buf) {
        NapInstance i = { .service = *s, .kind = NAP_KIND_MPI_MASTER, .number = job };
        nap_instance_unit_name(&i, buf);
}

int nap_mpi_write_dropin_extra(FILE *f, const NapManifest *m) {
        char unit[NAP_UNIT_NAME_MAX];
        const NapInstance *i = &m->instance;
        if (i->kind == NAP_KIND_MPI_SLAVE) {
                /* No After=: a stop of the job stops master and slaves at
                 * once (with After= the slaves would go first, and mpiexec
                 * would fail on its dead proxies before being stopped);
                 * a slave waits for its proxy command anyway. */
                master_unit_name(&i->service, nap_mpi_slave_job(i->number), unit);
                fprintf(f, "\n[Unit]\nBindsTo=%s\n", unit);
                return ferror(f) ? -EIO : 0;
        }
        if (i->kind != NAP_KIND_MPI_MASTER)
                return 0;
        unsigned ranks;
        const char *np = nap_params_get(m->params, NAP_MPI_RANKS_PARAM);
        if (!np || nap_instance_number_parse(np, &ranks) < 0 || ranks > NAP_MPI_RANKS_LIMIT ||
            i->number > NAP_MPI_JOB_MAX)
                return -EINVAL;
        fputs("\n[Unit]\n", f);
        for (unsigned r = 0; r < ranks; r++) {
                NapInstance slave = { .service = i->service, .kind = NAP_KIND_MPI_SLAVE,
                                      .number = nap_mpi_slave_number(i->number, r) };
                fprintf(f, "Wants=%s\n", nap_instance_unit_name(&slave, unit));
        }
        return ferror(f) ? -EIO : 0;
}

const char *nap_mpi_build_unit_name(const NapService *s, char *buf) {
        snprintf(buf, NAP_UNIT_NAME_MAX, "%s_%s_mpi_build.service", s->user, s->app);
        return buf;
}

int nap_mpi_write_build_unit(FILE *f, const NapService *s, char *const *argv, const char *dir, NapScope scope,
                             const NapConfig *c) {
        _cleanup_free_ char *exec = NULL, *workdir = NULL, *quoted = unit_quote_word(dir);
        char name[NAP_SERVICE_NAME_MAX];
        if (!quoted)
                return -ENOMEM;
        int r = unit_format_exec(argv, &exec);
        if (r >= 0)
                r = unit_escape_value(dir, &workdir);
        if (r < 0)
                return r;
        (void) c;
        /* A compile: long, and behind the apps that serve (as a
         * container's build, unit.c). */
        fprintf(f, "# Written by nap: the build process of an MPI app\n\n[Unit]\nDescription=nap app %s, build\n"
                   "RequiresMountsFor=%s\n\n[Service]\nType=oneshot\nTimeoutStartSec=15min\nCPUWeight=20\n"
                   "IOWeight=20\nWorkingDirectory=%s\nReadWritePaths=%s\nExecStart=%s\n",
                nap_service_name(s, name), quoted, workdir, quoted, exec);
        write_sandbox(f, s, scope);
        return ferror(f) ? -EIO : 0;
}
