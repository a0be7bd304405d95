/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-web: the web console (nap-web(8)). Socket-activated by
 * nap-web.socket (a Unix socket by default, TCP with a drop-in); serves
 * the page and a JSON API over io.nap.Manager's methods, which it
 * authorizes for the signed-in user and forwards to nap-managerd; exits
 * when it has had no connection for --idle-timeout= seconds. */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/log.h"
#include "base/strv.h"
#include "cluster/queue-client.h"
#include "cluster/queue.h"
#include "nap-config.h"
#include "ops/methods.h"
#include "web-server.h"

#define IDLE_TIMEOUT_DEFAULT_SEC 60
#define IDLE_TIMEOUT_MAX_SEC 86400
#define SESSION_DEFAULT_SEC (12 * 3600)
#define CONNECTIONS_MAX 256
/* A connection that sends nothing for this long is closed: browsers keep
 * idle ones open for minutes, which would keep us from exiting. A call
 * being answered or a log being followed (a comment every 15 s) is not
 * idle. */
#define CONNECTION_IDLE_SEC 30

static long long arg_idle_sec = IDLE_TIMEOUT_DEFAULT_SEC;
static long long arg_session_sec = SESSION_DEFAULT_SEC;
static bool arg_secure_cookies = false;
static const char *arg_manager = NULL;
static const char *arg_queue = NULL;
/* the queue page's queues: nap-queued's --types= default */
static const char *arg_queue_types = "vm,kube";

static void warn_config(void *userdata, const char *message) {
        log_warning("%s", message);
}

/* A socket of nap's: given (--manager=, --queue=), else name below the
 * runtime directory of Scope=. */
static int runtime_socket(const NapConfig *config, const char *given, const char *name, char **ret) {
        const char *runtime = "/run";
        if (given)
                return (*ret = strdup(given)) ? 0 : log_error_errno(ENOMEM, "Out of memory");
        if (config->scope == NAP_SCOPE_USER) {
                runtime = getenv("XDG_RUNTIME_DIR");
                if (isempty(runtime) || runtime[0] != '/')
                        return log_error_errno(ENXIO, "Scope=user and $XDG_RUNTIME_DIR is not set: give --manager= and --queue=");
        }
        return asprintf(ret, "%s/%s", runtime, name) < 0 ? log_error_errno(ENOMEM, "Out of memory") : 0;
}

static int context_init(WebContext *c) {
        NapError e = NAP_ERROR_NULL;
        *c = (WebContext) { .secure_cookies = arg_secure_cookies, .session_sec = (uint64_t) arg_session_sec };
        pthread_mutex_init(&c->limit_lock, NULL);
        atomic_init(&c->connections, 0);
        atomic_init(&c->last_activity_usec, web_now_usec());
        int r = nap_config_load(&c->config, warn_config, NULL, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        r = nap_web_key_load(c->config, &c->key, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e.message);
        /* no valid node name (a host name that is none, no Node=): no node shown */
        (void) nap_config_node(c->config, &c->node, &e);
        c->queue_types = strv_split(arg_queue_types, ',');
        if (!c->queue_types)
                return log_error_errno(ENOMEM, "Out of memory");
        r = runtime_socket(c->config, arg_manager, NAP_MANAGER_SOCKET_NAME, &c->manager_address);
        return r < 0 ? r : runtime_socket(c->config, arg_queue, NAP_QUEUE_SOCKET_NAME, &c->queue_address);
}

static void context_done(WebContext *c) {
        nap_config_free(c->config);
        free(c->manager_address);
        free(c->queue_address);
        strv_free(c->queue_types);
        free(c->node);
        pthread_mutex_destroy(&c->limit_lock);
}

static int listen_fd(void) {
        int n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets systemd passed: %m");
        if (n != 1)
                return log_error_errno(EINVAL, "nap-web is started by nap-web.socket with one socket, got %d", n);
        return SD_LISTEN_FDS_START;
}

static struct MHD_Daemon *server_start(WebContext *c, int fd) {
        return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                        MHD_USE_ITC | MHD_USE_ERROR_LOG,
                                0, NULL, NULL, web_handle, c, MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_NOTIFY_COMPLETED, web_request_completed, c,
                                MHD_OPTION_NOTIFY_CONNECTION, web_connection_notify, c,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned) CONNECTIONS_MAX,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) CONNECTION_IDLE_SEC,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 128 * 1024, MHD_OPTION_END);
}

static bool idle(WebContext *c) {
        return arg_idle_sec > 0 && atomic_load(&c->connections) == 0 &&
               web_now_usec() - atomic_load(&c->last_activity_usec) >= (uint64_t) arg_idle_sec * 1000000ULL;
}

/* Until SIGTERM/SIGINT or idle. The signals are blocked in every thread
 * (daemon_signals_setup() before the server's threads exist). */
static void wait_for_end(WebContext *c) {
        sigset_t mask;
        struct timespec tick = { .tv_sec = 0, .tv_nsec = 250 * 1000 * 1000 };
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        while (!idle(c))
                if (sigtimedwait(&mask, NULL, &tick) >= 0)
                        return;
        log_debug("Idle for %llds: exiting", arg_idle_sec);
}

static int run(void) {
        WebContext c;
        int r = context_init(&c);
        int fd = r >= 0 ? listen_fd() : r;
        if (fd < 0)
                return context_done(&c), fd;
        struct MHD_Daemon *d = server_start(&c, fd);
        if (!d)
                return context_done(&c), log_error_errno(EIO, "Failed to start the HTTP server");
        (void) sd_notify(false, "READY=1");
        wait_for_end(&c);
        (void) sd_notify(false, "STOPPING=1");
        /* Take the socket back first: connections that arrive from now on
         * wait in its queue, and systemd starts us again for them. */
        (void) MHD_quiesce_daemon(d);
        MHD_stop_daemon(d);
        context_done(&c);
        return 0;
}

/* ---- command line ----------------------------------------------------- */

static void help(void) {
        printf("nap-web [OPTIONS...]\n\n"
               "The web console of nap: apps, instances, logs, for the signed-in nap user.\n"
               "Started by nap-web.socket; sign in with a token from 'napctl web token'.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --idle-timeout=SEC  Exit after SEC seconds without connections;\n"
               "                         0: never (default %u)\n"
               "     --session=SEC       How long a sign-in lasts (default %u)\n"
               "     --secure-cookies    Mark the session cookie Secure (behind a TLS proxy)\n"
               "     --manager=PATH      nap-managerd's varlink socket (default: the one of\n"
               "                         Scope= in nap.conf)\n"
               "     --queue=PATH        nap-queued's socket (default: the one of Scope=)\n"
               "     --queue-types=T1,T2 The resource queues the queue page lists\n"
               "                         (default: vm,kube, as nap-queued's --types=)\n"
               "\nConfiguration: %s, or the file in $NAP_CONFIG.\n"
               "See nap-web(8).\n",
               IDLE_TIMEOUT_DEFAULT_SEC, SESSION_DEFAULT_SEC, NAP_CONFIG_DEFAULT_PATH);
}

enum { ARG_VERSION = 0x100, ARG_IDLE_TIMEOUT, ARG_SESSION, ARG_SECURE_COOKIES, ARG_MANAGER, ARG_QUEUE, ARG_QUEUE_TYPES };

/* T1,T2: each a queue type nap-queued could serve. */
static int queue_types_check(const char *s) {
        NapError e = NAP_ERROR_NULL;
        _cleanup_strv_free_ char **l = strv_split(s, ',');
        if (!l)
                return log_error_errno(ENOMEM, "Out of memory");
        if (!l[0])
                return log_error_errno(EINVAL, "--queue-types= needs at least one type");
        STRV_FOREACH(t, l)
                if (nap_queue_type_check(*t, &e) < 0)
                        return log_error_errno(EINVAL, "--queue-types=: %s", e.message);
        return 0;
}

/* 1: exit 0 now (help, version); 0: go on; < 0: usage error. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "idle-timeout", required_argument, NULL, ARG_IDLE_TIMEOUT },
                { "session", required_argument, NULL, ARG_SESSION },
                { "secure-cookies", no_argument, NULL, ARG_SECURE_COOKIES },
                { "manager", required_argument, NULL, ARG_MANAGER },
                { "queue", required_argument, NULL, ARG_QUEUE },
                { "queue-types", required_argument, NULL, ARG_QUEUE_TYPES },
                {},
        };
        for (int ch; (ch = getopt_long(argc, argv, "h", options, NULL)) >= 0;)
                switch (ch) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("nap-web %s\n", NAP_VERSION);
                        return 1;
                case ARG_IDLE_TIMEOUT:
                        if (daemon_parse_seconds(optarg, 0, IDLE_TIMEOUT_MAX_SEC, &arg_idle_sec) < 0)
                                return log_error_errno(EINVAL, "--idle-timeout= takes seconds from 0 to %u, not '%s'",
                                                       IDLE_TIMEOUT_MAX_SEC, optarg);
                        break;
                case ARG_SESSION:
                        if (daemon_parse_seconds(optarg, 60, 30 * 86400, &arg_session_sec) < 0)
                                return log_error_errno(EINVAL, "--session= takes seconds from 60 to %u, not '%s'",
                                                       30 * 86400, optarg);
                        break;
                case ARG_SECURE_COOKIES:
                        arg_secure_cookies = true;
                        break;
                case ARG_MANAGER:
                        if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "--manager= takes an absolute path");
                        arg_manager = optarg;
                        break;
                case ARG_QUEUE:
                        if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "--queue= takes an absolute path");
                        arg_queue = optarg;
                        break;
                case ARG_QUEUE_TYPES:
                        if (queue_types_check(optarg) < 0)
                                return -EINVAL;
                        arg_queue_types = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "No arguments are taken, only options (see --help)");
        return 0;
}

int main(int argc, char *argv[]) {
        log_setup();
        int r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : 2;
        if (daemon_signals_setup(false) < 0)
                return EXIT_FAILURE;
        return run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
