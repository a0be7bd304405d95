/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nap-mpi: what an MPI job's units run (lib/model/mpi.h, nap.profile(5)).
 *
 *   nap-mpi master RANKS WATCHDOG_SEC -- PROGRAM [ARG...]
 *     in USER_APP_mpi_master@J.service: runs MPICH's mpiexec with Hydra's
 *     manual launcher (one proxy per rank), hands proxy R's command to
 *     slave R through .nap-mpi/proxy-R (NUL-separated words: no shell,
 *     no re-quoting), forwards everything else mpiexec prints (the ranks'
 *     output) to its own stdout, the unit's journal, and exits with
 *     mpiexec's status. The watchdog: a proxy command not taken within
 *     WATCHDOG_SEC kills mpiexec (it would wait forever) and exits 124.
 *   nap-mpi slave RANK WATCHDOG_SEC
 *     in USER_APP_mpi_slave@N.service: waits for .nap-mpi/proxy-RANK,
 *     takes it (unlinks it: how the master sees it taken) and execs it.
 * Both run in the job's tree (WorkingDirectory=).
 *   nap-mpi job-ended USER_APP JOB
 *     the master's ExecStopPost=+ (outside its sandbox, as nap): records
 *     the job's end from $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS and
 *     releases its reservation (nap_mpi_job_ended()), within
 *     JOB_ENDED_SEC, under the master's TimeoutStopSec=: a stop never
 *     waits on etcd. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/strv.h"
#include "../common/log.h"
#include "base/clock.h"
#include "model/mpi.h"
#include "clients/etcd.h"
#include "ops/ops-mpi.h"
#include "ops/publish.h"

#define LINE_MAX_BYTES (64 * 1024)
#define WATCHDOG_EXIT 124
/* job-ended: its whole run, and each etcd request's share of it (the
 * master's TimeoutStopSec= is 3 s: a timeout would fail the unit). */
#define JOB_ENDED_SEC 2U
#define JOB_ENDED_ETCD_CONNECT_USEC (300ULL * 1000ULL)
#define JOB_ENDED_ETCD_TIMEOUT_USEC (700ULL * 1000ULL)

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static int parse_count(const char *s, unsigned max, unsigned *ret) {
        unsigned v;
        if (streq(s, "0")) {
                *ret = 0;
                return 0;
        }
        return nap_instance_number_parse(s, &v) < 0 || v > max ? -EINVAL : (*ret = v, 0);
}

static char *proxy_path(unsigned rank) {
        return strdup_printf(NAP_MPI_PROXY_DIR "/proxy-%u", rank);
}

/* ---- master ------------------------------------------------------------- */

typedef struct Master {
        unsigned ranks, launched;
        bool *given; /* proxy command written for rank r */
        pid_t pid;
} Master;

/* "HYDRA_LAUNCH: /usr/bin/hydra_pmi_proxy --control-port H:P … --proxy-id R":
 * the words, NUL-separated, into .nap-mpi/proxy-R (atomically). */
static int give_proxy(Master *m, const char *cmd) {
        _cleanup_strv_free_ char **words = strv_split(cmd, ' ');
        unsigned rank = m->ranks;
        size_t n = 0;
        if (!words)
                return -ENOMEM;
        char **out = words;
        for (char **w = words; *w; w++) {
                if (**w == 0) {
                        free(*w);
                        continue;
                }
                *out++ = *w;
                if (w != words && streq(w[-1], "--proxy-id"))
                        (void) parse_count(*w, m->ranks - 1, &rank);
        }
        *out = NULL;
        if (!words[0] || words[0][0] != '/' || rank >= m->ranks || m->given[rank])
                return log_error_errno(-EBADMSG, "mpiexec printed a proxy command nap cannot use: %s", cmd);
        _cleanup_free_ char *path = proxy_path(rank), *text = NULL;
        for (char **w = words; *w; w++)
                n += strlen(*w) + 1;
        if (!path || !(text = malloc(n)))
                return -ENOMEM;
        n = 0;
        for (char **w = words; *w; w++) {
                size_t k = strlen(*w) + 1;
                memcpy(text + n, *w, k);
                n += k;
        }
        int r = write_file_atomic(path, text, n, 0600);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", path);
        m->given[rank] = true;
        m->launched++;
        return 0;
}

/* Ranks whose command is given and not taken yet ("0 3"); "" when none. */
static void untaken(const Master *m, char *buf, size_t size) {
        size_t used = 0;
        buf[0] = 0;
        for (unsigned r = 0; r < m->ranks && used + 12 < size; r++) {
                _cleanup_free_ char *p = proxy_path(r);
                if (!m->given[r] || (p && access(p, F_OK) >= 0))
                        used += snprintf(buf + used, size - used, "%s%u", used ? " " : "", r);
        }
}

static int handle_line(Master *m, char *line) {
        const char *cmd = startswith(line, "HYDRA_LAUNCH: ");
        if (cmd)
                return give_proxy(m, cmd);
        if (streq(line, "HYDRA_LAUNCH_END"))
                return 0;
        size_t n = strlen(line);
        line[n] = '\n';
        ssize_t k = write(STDOUT_FILENO, line, n + 1);
        line[n] = 0;
        return k < 0 ? -errno : 0;
}

/* Whole lines of buf (and a last "HYDRA_LAUNCH_END", which mpiexec ends
 * without a newline) handled and removed. */
static int handle_lines(Master *m, char *buf, size_t *len) {
        size_t start = 0;
        for (char *nl; (nl = memchr(buf + start, '\n', *len - start));) {
                *nl = 0;
                int r = handle_line(m, buf + start);
                if (r < 0 && r != -EPIPE)
                        return r;
                start = nl - buf + 1;
        }
        memmove(buf, buf + start, *len - start);
        *len -= start;
        if (*len == strlen("HYDRA_LAUNCH_END") && strneq(buf, "HYDRA_LAUNCH_END", *len))
                *len = 0;
        return 0;
}

static pid_t spawn_mpiexec(unsigned ranks, char **program, int *ret_fd) {
        _cleanup_free_ char *hosts = NULL;
        char n[16];
        int p[2];
        snprintf(n, sizeof n, "%u", ranks);
        for (unsigned r = 0; r < ranks; r++) {
                char *h = strdup_printf("%s%sslave%u", hosts ?: "", hosts ? "," : "", r);
                free(hosts);
                if (!(hosts = h))
                        return -ENOMEM;
        }
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                _cleanup_strv_free_ char **argv = NULL;
                const char *head[] = { "mpiexec.mpich", "-launcher", "manual", "-hosts", hosts, "-ppn", "1", "-n", n };
                for (size_t i = 0; i < ELEMENTSOF(head); i++)
                        if (strv_extend(&argv, head[i]) < 0)
                                _exit(127);
                for (char **w = program; *w; w++)
                        if (strv_extend(&argv, *w) < 0)
                                _exit(127);
                (void) setpgid(0, 0);
                if (dup2(p[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execv(NAP_MPIEXEC_BINARY, argv);
                fprintf(stderr, "Failed to run %s: %m\n", NAP_MPIEXEC_BINARY);
                _exit(127);
        }
        close(p[1]);
        *ret_fd = p[0];
        return pid;
}

static int exit_status_of(pid_t pid) {
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return 1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Reads mpiexec's output until it ends; watches the proxies' start until
 * every one was taken. */
static int run_master(Master *m, int fd, uint64_t watchdog_usec) {
        _cleanup_free_ char *buf = malloc(LINE_MAX_BYTES);
        size_t len = 0;
        uint64_t deadline = now_usec() + watchdog_usec;
        bool started = false;
        char list[256];
        if (!buf)
                return -ENOMEM;
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                int k = poll(&pfd, 1, started ? -1 : 20);
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (!started) {
                        untaken(m, list, sizeof list);
                        started = list[0] == 0;
                        if (!started && now_usec() > deadline) {
                                log_error("Watchdog: rank(s) %s did not start within %u s; stopping the job.", list,
                                          (unsigned) (watchdog_usec / 1000000ULL));
                                (void) kill(-m->pid, SIGKILL);
                                (void) kill(m->pid, SIGKILL);
                                (void) exit_status_of(m->pid);
                                return WATCHDOG_EXIT;
                        }
                }
                if (k <= 0 || !(pfd.revents & (POLLIN | POLLHUP)))
                        continue;
                ssize_t n = read(fd, buf + len, LINE_MAX_BYTES - 1 - len);
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n == 0)
                        break;
                len += MAX(n, 0);
                if (handle_lines(m, buf, &len) < 0 || len == LINE_MAX_BYTES - 1)
                        len = 0; /* a line too long to be Hydra's: dropped */
        }
        return exit_status_of(m->pid);
}

static volatile pid_t mpiexec_pid;

/* Stopped (stop-app, or the job's master stopped): mpiexec goes at once
 * (with proxies that never connected it ignores SIGTERM), then this
 * process dies of the SIGTERM it got, which systemd counts as a clean
 * stop. Async-signal-safe calls only. */
static void on_sigterm(int sig) {
        if (mpiexec_pid > 0) {
                (void) kill(-mpiexec_pid, SIGKILL);
                (void) kill(mpiexec_pid, SIGKILL);
        }
        (void) signal(sig, SIG_DFL);
        (void) raise(sig);
}

static int master_main(int argc, char **argv) {
        unsigned ranks, watchdog;
        if (argc < 6 || parse_count(argv[2], NAP_MPI_RANKS_LIMIT, &ranks) < 0 || ranks == 0 ||
            parse_count(argv[3], 86400, &watchdog) < 0 || !streq(argv[4], "--"))
                return log_error("Usage: nap-mpi master RANKS WATCHDOG_SEC -- PROGRAM [ARG...]"), 2;
        /* Hydra's control port is the master's PORT: one nap allotted. */
        const char *port = getenv("PORT");
        if (port) {
                _cleanup_free_ char *range = strdup_printf("%s:%s", port, port);
                if (!range || setenv("MPIEXEC_PORT_RANGE", range, 1) < 0)
                        return 1;
        }
        if (mkdir(NAP_MPI_PROXY_DIR, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Failed to create %s: %m", NAP_MPI_PROXY_DIR), 1;
        Master m = { .ranks = ranks, .given = calloc(ranks, sizeof(bool)) };
        int fd = -1;
        if (!m.given)
                return 1;
        (void) signal(SIGTERM, on_sigterm);
        m.pid = spawn_mpiexec(ranks, argv + 5, &fd);
        if (m.pid < 0)
                return log_error_errno(m.pid, "Failed to start mpiexec: %m"), 1;
        mpiexec_pid = m.pid;
        int r = run_master(&m, fd, (uint64_t) watchdog * 1000000ULL);
        free(m.given);
        if (r < 0)
                return log_error_errno(r, "Failed to follow mpiexec: %m"), 1;
        return r;
}

/* ---- slave -------------------------------------------------------------- */

static int slave_main(int argc, char **argv) {
        unsigned rank, watchdog;
        if (argc != 4 || parse_count(argv[2], NAP_MPI_RANKS_LIMIT - 1, &rank) < 0 ||
            parse_count(argv[3], 86400, &watchdog) < 0)
                return log_error("Usage: nap-mpi slave RANK WATCHDOG_SEC"), 2;
        _cleanup_free_ char *path = proxy_path(rank), *text = NULL;
        size_t size;
        uint64_t deadline = now_usec() + (uint64_t) watchdog * 1000000ULL;
        int r = -ENOMEM;
        while (path && (r = read_full_file(path, LINE_MAX_BYTES, &text, &size)) == -ENOENT && now_usec() < deadline)
                (void) usleep(5000);
        if (!path || r < 0)
                return log_error_errno(r, "No proxy command for rank %u within %u s: %m", rank, watchdog), 1;
        (void) unlink(path); /* taken: the master's watchdog sees it */
        _cleanup_strv_free_ char **words = NULL;
        for (size_t at = 0; at < size; at += strlen(text + at) + 1)
                if (strv_extend(&words, text + at) < 0)
                        return 1;
        if (!words || words[0][0] != '/')
                return log_error("The proxy command for rank %u is not a program path.", rank), 1;
        execv(words[0], words);
        return log_error_errno(-errno, "Failed to run %s: %m", words[0]), 1;
}

/* ---- job-ended ---------------------------------------------------------- */

/* "TERM" (as systemd's $EXIT_STATUS names a signal) or a number. */
static int signal_or_status(const char *s, int *ret) {
        unsigned v;
        for (int sig = 1; sig < NSIG; sig++) {
                const char *name = sigabbrev_np(sig);
                if (name && streq(name, s))
                        return *ret = sig, 0;
        }
        return parse_count(s, 255, &v) < 0 ? -EINVAL : (*ret = (int) v, 0);
}

/* What systemd passes to ExecStopPost=, as nap_systemd_get_unit_exit()
 * would read it from the settled unit. No $EXIT_CODE: the main process
 * never ran. */
static int unit_exit_from_env(NapUnitExit *x) {
        const char *result = getenv("SERVICE_RESULT"), *code = getenv("EXIT_CODE"), *status = getenv("EXIT_STATUS");
        static const char *const codes[] = { [CLD_EXITED] = "exited", [CLD_KILLED] = "killed", [CLD_DUMPED] = "dumped" };
        if (isempty(result))
                return -EINVAL;
        *x = (NapUnitExit) { .result = (char *) result, .exit_usec = realtime_usec(), .status = -1,
                             .active_state = (char *) (streq(result, "success") ? "inactive" : "failed") };
        for (int k = CLD_EXITED; code && k <= CLD_DUMPED; k++)
                if (codes[k] && streq(code, codes[k]))
                        x->code = k;
        if (x->code > 0 && (!status || signal_or_status(status, &x->status) < 0))
                return -EINVAL;
        return 0;
}

static int job_ended_main(int argc, char **argv) {
        _cleanup_(nap_context_freep) NapContext *c = NULL;
        NapError e = NAP_ERROR_NULL;
        NapUnitExit x;
        EtcdClient *etcd;
        unsigned job;
        if (argc != 4 || nap_instance_number_parse(argv[3], &job) < 0)
                return log_error("Usage: nap-mpi " NAP_MPI_JOB_ENDED_VERB " USER_APP JOB"), 2;
        if (unit_exit_from_env(&x) < 0)
                return log_error("No $SERVICE_RESULT, $EXIT_CODE, $EXIT_STATUS: only a master's ExecStopPost= "
                                 "runs this."), 2;
        (void) alarm(JOB_ENDED_SEC); /* SIGALRM ends it: whatever is left, the lazy paths do */
        int r = nap_context_new(&c, -1, NULL, NULL, &e);
        if (r >= 0 && nap_context_etcd(c, &etcd, NULL) >= 0) {
                etcd->connect_timeout_usec = JOB_ENDED_ETCD_CONNECT_USEC;
                etcd->timeout_usec = JOB_ENDED_ETCD_TIMEOUT_USEC;
        }
        if (r >= 0)
                r = nap_mpi_job_ended(c, argv[2], job, &x, &e);
        if (r < 0)
                return log_error("Failed to record the end of job %u of %s or to release its reservation "
                                 "(its next query or collection will): %s",
                                 job, argv[2], e.message[0] ? e.message : strerror(-r)), 1;
        return 0;
}

int main(int argc, char **argv) {
        log_setup();
        if (argc >= 2 && streq(argv[1], "master"))
                return master_main(argc, argv);
        if (argc >= 2 && streq(argv[1], "slave"))
                return slave_main(argc, argv);
        if (argc >= 2 && streq(argv[1], NAP_MPI_JOB_ENDED_VERB))
                return job_ended_main(argc, argv);
        log_error("Usage: nap-mpi master RANKS WATCHDOG_SEC -- PROGRAM [ARG...] | nap-mpi slave RANK WATCHDOG_SEC | "
                  "nap-mpi " NAP_MPI_JOB_ENDED_VERB " USER_APP JOB");
        return 2;
}
