/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-queued: the resource queue's server (nap-queued(8)): seed 003's
 * HTTP API over the jobs in etcd (serve-http.c), admission against the
 * node inventory and callback delivery (lib/cluster/admission.h,
 * callback.h).
 *
 * Threads: one per listening socket (libmicrohttpd's), one admitting, one
 * delivering callbacks (a slow receiver never holds up admission), and
 * the main one watching ClusterPrefix= in etcd: any change there (a job
 * created, moved, ended; a reservation released; a node joining) marks
 * both passes due at once: a watch, not a poll. Each thread has its own
 * etcd client.
 *
 * Idle exit: only when no request came for --idle-timeout seconds AND no
 * job waits to be admitted AND no callback waits to be delivered: while
 * anything waits it stays, watching. Work after a restart: everything is
 * in etcd; at start both passes run once, so a crash mid-admission or
 * mid-delivery resumes (nap-queued.service is also started at boot, and
 * exits at once when idle). */

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "../common/log.h"
#include "base/clock.h"
#include "base/socket-util.h"
#include "base/strv.h"
#include "cluster/admission.h"
#include "cluster/callback.h"
#include "model/config.h"
#include "nap-config.h"
#include "start-queued.h"
#include "serve-http.h"

#define WATCH_CHUNK_USEC (1 * USEC_PER_SEC)
#define RETRY_USEC (1 * USEC_PER_SEC)

static char *arg_listen = NULL;
static char **arg_types = NULL;
static bool arg_backfill = false;
static uint64_t arg_idle_usec = 30 * USEC_PER_SEC;
static NapCallbackOptions arg_callback = {};

static volatile sig_atomic_t stop_requested = 0;

typedef struct Work {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool admit_due, deliver_due, stop;
        unsigned waiting;           /* queued jobs after the last admission pass */
        uint64_t next_delivery;     /* CLOCK_REALTIME; 0: nothing pending */
        bool admit_failed, deliver_failed;
        NapJobIndex *index;         /* every job, kept by the watch */
        bool index_ok;              /* loaded, and every event applied since */
        int64_t index_revision;     /* the index has seen every change up to it */
        atomic_int requests;        /* in progress */
        _Atomic uint64_t last_request; /* CLOCK_MONOTONIC */
        NapConfig *config;
} Work;

static void work_mark_due(Work *w) {
        pthread_mutex_lock(&w->lock);
        w->admit_due = w->deliver_due = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

static void on_activity(int delta, void *userdata) {
        Work *w = userdata;
        atomic_fetch_add(&w->requests, delta);
        atomic_store(&w->last_request, monotonic_usec());
}

static int etcd_open(const Work *w, EtcdClient **ret) {
        NapError e = NAP_ERROR_NULL;
        int r = etcd_client_new(w->config->etcd, ret, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        (*ret)->max_response_size = QUEUE_ETCD_RESPONSE_MAX;
        return 0;
}

/* ---- admission -------------------------------------------------------- */

static bool wait_due(Work *w, bool *due, uint64_t until_realtime) {
        pthread_mutex_lock(&w->lock);
        while (!*due && !w->stop) {
                if (until_realtime == 0) {
                        pthread_cond_wait(&w->cond, &w->lock);
                        continue;
                }
                struct timespec ts = { .tv_sec = (time_t) (until_realtime / USEC_PER_SEC),
                                       .tv_nsec = (long) (until_realtime % USEC_PER_SEC) * 1000 };
                if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
                        break;
        }
        bool go = !w->stop;
        *due = false;
        pthread_mutex_unlock(&w->lock);
        return go;
}

static int index_list(void *userdata, const char *type, const NapJobFilter *f, int64_t min_revision, NapJob **ret,
                      size_t *ret_n, size_t *ret_total, NapError *e);

#define ADMIT_PAGE 32

/* One pass over a type, its queued jobs read from the index a page at a
 * time (each page once the index has seen the admissions before it);
 * from etcd when the index cannot say. */
static int admit_type(Work *w, EtcdClient *etcd, const char *type, unsigned *ret_admitted, unsigned *ret_waiting,
                      NapError *e) {
        _cleanup_(nap_placer_freep) NapPlacer *p = NULL;
        NapAdmitOptions o = { .backfill = arg_backfill, .policy = NAP_POLICY_SPREAD };
        const char *prefix = w->config->cluster_prefix;
        size_t offset = 0, total = 0;
        unsigned all = 0;
        int64_t revision = 0;
        for (;;) {
                NapJobFilter f = { .status = NAP_JOB_QUEUED, .offset = offset, .limit = ADMIT_PAGE };
                NapJob *l = NULL;
                size_t n = 0;
                unsigned admitted = 0, more = 0;
                bool blocked = false;
                int r = index_list(w, type, &f, revision, &l, &n, &total, e);
                if (r == -EAGAIN) {
                        r = nap_queue_admit(etcd, prefix, type, &o, &more, ret_waiting, e);
                        *ret_admitted = all + more;
                        return r;
                }
                if (r >= 0)
                        r = nap_queue_admit_jobs(etcd, prefix, &p, l, n, &o, &admitted, &blocked, &revision, e);
                nap_job_array_free(l, n);
                if (r < 0)
                        return r;
                all += admitted;
                total -= admitted;
                if (blocked || n < ADMIT_PAGE)
                        break;
                offset += n - admitted; /* backfill: those that did not fit stay, skipped */
        }
        *ret_admitted = all;
        *ret_waiting = (unsigned) total;
        return 0;
}

static void admit_types(Work *w, EtcdClient *etcd) {
        unsigned waiting = 0, total = 0;
        bool failed = false;
        STRV_FOREACH(t, arg_types) {
                NapError e = NAP_ERROR_NULL;
                unsigned admitted = 0, left = 0;
                if (admit_type(w, etcd, *t, &admitted, &left, &e) < 0) {
                        log_warning("Admission in the %s queue failed: %s", *t, e.message);
                        failed = true;
                        continue;
                }
                if (admitted > 0)
                        log_info("Admitted %u job(s) of the %s queue, %u waiting", admitted, *t, left);
                waiting += left;
                total += admitted;
        }
        pthread_mutex_lock(&w->lock);
        w->waiting = waiting;
        w->admit_failed = failed;
        if (total > 0)
                w->deliver_due = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

static void *admission_thread(void *userdata) {
        Work *w = userdata;
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        if (etcd_open(w, &etcd) < 0)
                return NULL;
        for (uint64_t retry = 0; wait_due(w, &w->admit_due, retry);) {
                admit_types(w, etcd);
                retry = w->admit_failed ? realtime_usec() + RETRY_USEC : 0;
        }
        return NULL;
}

/* ---- callbacks -------------------------------------------------------- */

static void *delivery_thread(void *userdata) {
        Work *w = userdata;
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        if (etcd_open(w, &etcd) < 0)
                return NULL;
        for (uint64_t until = 0; wait_due(w, &w->deliver_due, until);) {
                NapError e = NAP_ERROR_NULL;
                unsigned delivered = 0;
                uint64_t next = 0;
                int r = nap_callbacks_deliver(etcd, w->config->cluster_prefix, &arg_callback, &delivered, &next, &e);
                if (r < 0)
                        log_warning("Delivering callbacks failed: %s", e.message);
                else if (delivered > 0)
                        log_info("Delivered %u callback(s)", delivered);
                unsigned started = 0;
                NapError why = NAP_ERROR_NULL;
                int k = queued_starts_run(etcd, w->config, &started, &why);
                if (k < 0)
                        log_warning("Starting queued instances failed: %s", why.message);
                else if (started > 0)
                        log_info("Started %u queued instance(s)", started);
                if (r >= 0 && k < 0)
                        r = k; /* tried again after RETRY_USEC */
                pthread_mutex_lock(&w->lock);
                w->deliver_failed = r < 0;
                w->next_delivery = r < 0 ? realtime_usec() + RETRY_USEC : next;
                until = w->next_delivery;
                pthread_mutex_unlock(&w->lock);
        }
        return NULL;
}

/* ---- the index of the jobs ------------------------------------------- */

#define INDEX_WAIT_USEC (2 * USEC_PER_SEC)

static int index_list(void *userdata, const char *type, const NapJobFilter *f, int64_t min_revision, NapJob **ret,
                      size_t *ret_n, size_t *ret_total, NapError *e) {
        Work *w = userdata;
        uint64_t until = realtime_usec() + INDEX_WAIT_USEC;
        struct timespec ts = { .tv_sec = (time_t) (until / USEC_PER_SEC), .tv_nsec = (long) (until % USEC_PER_SEC) * 1000 };
        int r = 0;
        pthread_mutex_lock(&w->lock);
        while (w->index_ok && w->index_revision < min_revision && r == 0)
                r = pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        r = w->index_ok && w->index_revision >= min_revision
                    ? nap_job_index_list(w->index, type, f, ret, ret_n, ret_total, e)
                    : -EAGAIN;
        pthread_mutex_unlock(&w->lock);
        return r;
}

/* Reads every job again; the watch goes on from *next. */
static void index_load(Work *w, EtcdClient *etcd, int64_t *next) {
        NapError e = NAP_ERROR_NULL;
        int64_t revision = 0;
        pthread_mutex_lock(&w->lock);
        int r = nap_job_index_load(w->index, etcd, &revision, &e);
        w->index_ok = r >= 0;
        if (r >= 0)
                w->index_revision = revision;
        pthread_mutex_unlock(&w->lock);
        if (r < 0)
                log_debug("Loading the jobs: %s", e.message);
        else
                *next = revision + 1;
}

/* ---- the watch and the idle exit -------------------------------------- */

static int on_watch_event(const EtcdEvent *event, void *userdata) {
        Work *w = userdata;
        pthread_mutex_lock(&w->lock);
        if (w->index_ok && nap_job_index_apply(w->index, event) < 0)
                w->index_ok = false; /* loaded again by the watch loop */
        w->index_revision = MAX(w->index_revision, event->kv.mod_revision);
        w->admit_due = w->deliver_due = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static int on_watch_sync(int64_t revision, void *userdata) {
        Work *w = userdata;
        pthread_mutex_lock(&w->lock);
        w->index_revision = MAX(w->index_revision, revision);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static bool work_idle(Work *w) {
        if (arg_idle_usec == 0 || atomic_load(&w->requests) > 0 ||
            monotonic_usec() - atomic_load(&w->last_request) < arg_idle_usec)
                return false;
        pthread_mutex_lock(&w->lock);
        bool idle = !w->admit_due && !w->deliver_due && w->waiting == 0 && w->next_delivery == 0 &&
                    !w->admit_failed && !w->deliver_failed;
        pthread_mutex_unlock(&w->lock);
        return idle;
}

static void watch_loop(Work *w) {
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        _cleanup_free_ char *dir = NULL;
        int64_t next = 0;
        if (etcd_open(w, &etcd) < 0 || asprintf(&dir, "%s/", w->config->cluster_prefix) < 0)
                return;
        while (!stop_requested && !work_idle(w)) {
                NapError e = NAP_ERROR_NULL;
                if (!w->index_ok) /* only this thread sets it true */
                        index_load(w, etcd, &next);
                EtcdWatchOptions o = { .prefix = true, .start_revision = next, .duration_usec = WATCH_CHUNK_USEC,
                                       .cancel = &stop_requested, .on_event = on_watch_event,
                                       .on_sync = on_watch_sync, .userdata = w };
                int r = etcd_watch(etcd, dir, &o, &next, &e);
                if (r == -ERANGE) {
                        /* compacted past us: look at everything again */
                        pthread_mutex_lock(&w->lock);
                        w->index_ok = false;
                        pthread_mutex_unlock(&w->lock);
                        next = 0;
                        work_mark_due(w);
                }
                if (r < 0) {
                        log_debug("Watching %s: %s", dir, e.message);
                        work_mark_due(w); /* etcd back later: whatever changed is seen by the passes */
                        usleep(RETRY_USEC / 2);
                }
        }
        log_info(stop_requested ? "Stopping" : "Idle: nothing waits to be admitted or called back; exiting");
}

/* ---- set-up ----------------------------------------------------------- */

static void on_stop_signal(int sig) {
        stop_requested = 1;
}

static int listen_unix(const char *path) {
        int fd = socket_listen_unix(path, 0666, 0);
        return fd < 0 ? log_error_errno(fd, "Cannot listen on %s: %m", path) : fd;
}

static int fronts_start(Work *w, HttpFront **fronts, size_t max, size_t *ret_n) {
        HttpSettings s = { .etcd = w->config->etcd, .prefix = w->config->cluster_prefix, .types = arg_types,
                           .activity = on_activity, .list = index_list, .userdata = w };
        int n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Socket activation failed: %m");
        if (n == 0 && !arg_listen)
                return log_error_errno(EINVAL, "No socket from systemd and no --listen=PATH");
        if (n == 0) {
                int fd = listen_unix(arg_listen);
                if (fd < 0)
                        return fd;
                *ret_n = 1;
                return http_front_start(fd, &s, fronts);
        }
        for (int i = 0; i < n && (size_t) i < max; i++) {
                int r = http_front_start(SD_LISTEN_FDS_START + i, &s, fronts + i);
                if (r < 0)
                        return r;
                *ret_n = (size_t) i + 1;
        }
        return 0;
}

static void warn_config(void *userdata, const char *message) {
        log_warning("%s", message);
}

static int run(void) {
        _cleanup_(nap_config_freep) NapConfig *config = NULL;
        NapError e = NAP_ERROR_NULL;
        HttpFront *fronts[8] = {};
        size_t n_fronts = 0;
        pthread_t admit, deliver;
        int r = nap_config_load(&config, warn_config, NULL, &e);
        if (r >= 0 && !config->etcd)
                r = nap_error_set(&e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "nap-queued needs etcd: set Etcd= in nap.conf");
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        Work w = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .admit_due = true,
                   .deliver_due = true, .config = config };
        if (nap_job_index_new(config->cluster_prefix, &w.index) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        atomic_store(&w.last_request, monotonic_usec());
        r = fronts_start(&w, fronts, ELEMENTSOF(fronts), &n_fronts);
        if (r >= 0 && (pthread_create(&admit, NULL, admission_thread, &w) != 0 ||
                       pthread_create(&deliver, NULL, delivery_thread, &w) != 0))
                r = log_error_errno(EAGAIN, "Cannot start the threads");
        if (r >= 0) {
                (void) sd_notify(false, "READY=1");
                watch_loop(&w);
                (void) sd_notify(false, "STOPPING=1");
                pthread_mutex_lock(&w.lock);
                w.stop = true;
                pthread_cond_broadcast(&w.cond);
                pthread_mutex_unlock(&w.lock);
                pthread_join(admit, NULL);
                pthread_join(deliver, NULL);
        }
        for (size_t i = 0; i < n_fronts; i++)
                http_front_stop(fronts[i]);
        nap_job_index_free(w.index);
        return r;
}

/* ---- options ---------------------------------------------------------- */

static void help(void) {
        printf("nap-queued [OPTIONS...]\n\n"
               "Serve nap's resource queue (seed 003's HTTP API) from etcd, admit its jobs\n"
               "against the node inventory and call their callbacks. Normally started by\n"
               "nap-queued.socket.\n\n"
               "  -h --help                   Show this help\n"
               "     --version                Show the version\n"
               "     --listen=PATH            Listen on this Unix socket (without socket activation)\n"
               "     --types=T1,T2            The queues served (default: vm,kube)\n"
               "     --backfill               Admit jobs behind one that does not fit (default: strict)\n"
               "     --idle-timeout=SEC       Exit after SEC idle with nothing waiting (0: never; 30)\n"
               "     --callback-attempts=N    Attempts per callback before it is failed (8)\n"
               "     --callback-backoff-ms=MS First retry delay, doubled each time (500)\n"
               "     --callback-timeout-ms=MS Per attempt (10000)\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG (Etcd=, ClusterPrefix=).\n"
               "See nap-queued(8).\n",
               NAP_CONFIG_DEFAULT_PATH);
}

static int parse_number(const char *name, const char *s, uint64_t max, uint64_t *ret) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || !end || *end || end == s || v > max || s[0] == '-')
                return log_error_errno(EINVAL, "--%s takes a number from 0 to %llu: %s", name,
                                       (unsigned long long) max, s);
        *ret = v;
        return 0;
}

static int set_types(const char *s) {
        strv_free(arg_types);
        arg_types = strv_split(s, ',');
        if (!arg_types || !arg_types[0])
                return log_error_errno(EINVAL, "--types needs at least one type");
        STRV_FOREACH(t, arg_types)
                if (nap_queue_type_check(*t, NULL) < 0)
                        return log_error_errno(EINVAL, "Not a queue type ([a-z0-9][a-z0-9-]{0,31}): %s", *t);
        /* nap's own queued starts (start-common --queue) are always served */
        if (!strv_contains(arg_types, NAP_QUEUE_TYPE_START) && strv_extend(&arg_types, NAP_QUEUE_TYPE_START) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_LISTEN, ARG_TYPES, ARG_BACKFILL, ARG_IDLE, ARG_ATTEMPTS, ARG_BACKOFF,
               ARG_TIMEOUT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "types", required_argument, NULL, ARG_TYPES },
                { "backfill", no_argument, NULL, ARG_BACKFILL },
                { "idle-timeout", required_argument, NULL, ARG_IDLE },
                { "callback-attempts", required_argument, NULL, ARG_ATTEMPTS },
                { "callback-backoff-ms", required_argument, NULL, ARG_BACKOFF },
                { "callback-timeout-ms", required_argument, NULL, ARG_TIMEOUT },
                {},
        };
        uint64_t v = 0;
        int r = set_types("vm,kube");
        for (int c; r >= 0 && (c = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("nap-queued %s\n", NAP_VERSION);
                        return 1;
                case ARG_LISTEN:
                        free(arg_listen);
                        arg_listen = strdup(optarg);
                        break;
                case ARG_TYPES:
                        r = set_types(optarg);
                        break;
                case ARG_BACKFILL:
                        arg_backfill = true;
                        break;
                case ARG_IDLE:
                        if ((r = parse_number("idle-timeout", optarg, 86400, &v)) >= 0)
                                arg_idle_usec = v * USEC_PER_SEC;
                        break;
                case ARG_ATTEMPTS:
                        if ((r = parse_number("callback-attempts", optarg, 100, &v)) >= 0)
                                arg_callback.max_attempts = (unsigned) v;
                        break;
                case ARG_BACKOFF:
                        if ((r = parse_number("callback-backoff-ms", optarg, 3600000, &v)) >= 0)
                                arg_callback.backoff_usec = v * 1000;
                        break;
                case ARG_TIMEOUT:
                        if ((r = parse_number("callback-timeout-ms", optarg, 3600000, &v)) >= 0)
                                arg_callback.timeout_usec = v * 1000;
                        break;
                default:
                        return -EINVAL;
                }
        if (r >= 0 && optind < argc)
                r = log_error_errno(EINVAL, "No arguments are taken, only options (see --help)");
        return r;
}

int main(int argc, char *argv[]) {
        log_setup();
        int r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : 2;
        struct sigaction sa = { .sa_handler = on_stop_signal };
        (void) sigaction(SIGTERM, &sa, NULL);
        (void) sigaction(SIGINT, &sa, NULL);
        (void) signal(SIGPIPE, SIG_IGN);
        r = run();
        strv_free(arg_types);
        free(arg_listen);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
