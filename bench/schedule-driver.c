/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Timing driver for bench/schedule (built by that script, not by meson).
 * One process per step, so that the script can read etcd's request
 * counters around exactly what a row does. PREFIX is the inventory's
 * ClusterPrefix=.
 *
 *   schedule-driver setup URL PREFIX NODES      NODES nodes on one lease
 *   schedule-driver wipe URL PREFIX             every reservation gone
 *   schedule-driver raw URL PREFIX NODES N      (a) N bare etcd txns
 *   schedule-driver single URL PREFIX N         (b) N nap_placer_place(1)
 *   schedule-driver batch URL PREFIX N BATCH    (c) nap_placer_place(BATCH)
 *   schedule-driver oneshot URL PREFIX N        (d) N nap_schedule(1)
 *   schedule-driver check URL PREFIX N          usage and names hold N
 *   schedule-driver notready URL PREFIX NODE RUNS LOG CMD...
 *                                    RUNS times: CMD (a nap-node) until
 *                                    NODE is Ready, SIGKILL, until NotReady
 *
 * A row prints "placements calls elapsed_us p50_us p99_us setup_us" (p50
 * and p99 of one call; setup: nap_placer_new). notready prints "p50_ms
 * max_ms" and then each run's ms, sorted. Errors: a message, exit 1. */

#include <signal.h>
#include <spawn.h>

#include "bench-timing.h"
#include "base/clock.h"
#include "cluster/inventory.h"

extern char **environ;

/* Every placement fits: 100000 requests spread over 1000 nodes take a
 * core and 1.6G of each. */
#define NODE_CPU_MILLI (64 * 1000)
#define NODE_MEMORY (UINT64_C(256) << 30)
#define NODE_STORAGE (UINT64_C(1) << 40)
#define REQUEST_CPU_MILLI 10
#define REQUEST_MEMORY (UINT64_C(16) << 20)
/* No agent renews the simulated nodes' lease: it outlives any run (the
 * throwaway etcd goes with the run). */
#define NODES_LEASE_TTL (24 * 3600)
#define POLL_USEC (10 * 1000)
#define READY_TIMEOUT_USEC (15 * USEC_PER_SEC)
/* Beyond any NodeTTL + 1 s target: a node still Ready then is a failure,
 * not a slow result. */
#define NOT_READY_TIMEOUT_USEC (30 * USEC_PER_SEC)
/* nap-node renews its lease on rounds of a second. */
#define AGENT_ROUND_USEC USEC_PER_SEC

static int fail(const NapError *e, int r) {
        fprintf(stderr, "schedule-driver: %s\n", e->message[0] ? e->message : strerror(-r));
        return 1;
}

static void node_name(size_t i, char ret[static NAP_NODE_NAME_MAX + 1]) {
        snprintf(ret, NAP_NODE_NAME_MAX + 1, "node%05zu", i);
}

/* ---- setup and wipe --------------------------------------------------- */

/* Record and membership of each node, as an agent writes them, but all on
 * one lease: no agents run. */
static int setup(EtcdClient *c, const char *prefix, size_t n) {
        NapError e = NAP_ERROR_NULL;
        int64_t lease = 0;
        int r = etcd_lease_grant(c, NODES_LEASE_TTL, &lease, NULL, &e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char address[32];
                NapNode node = { .address = address, .version = (char *) "bench",
                                 .capacity = { NODE_CPU_MILLI, NODE_MEMORY, NODE_STORAGE },
                                 .registered_usec = realtime_usec() };
                node_name(i, node.name);
                snprintf(address, sizeof address, "10.%zu.%zu.%zu", i >> 16 & 255, i >> 8 & 255, i & 255);
                snprintf(node.machine_id, sizeof node.machine_id, "%032zx", i + 1);
                snprintf(node.boot_id, sizeof node.boot_id, "%032zx", i + 1);
                r = nap_node_register(c, prefix, &node, lease, &e);
        }
        return r < 0 ? fail(&e, r) : 0;
}

/* Reservations, their names and the nodes' usage go (and row (a)'s keys,
 * under PREFIX/raw/): every row starts from the inventory as registered. */
static int wipe(EtcdClient *c, const char *prefix) {
        static const char *const dirs[] = { "reservations", "names", "usage", "raw" };
        NapError e = NAP_ERROR_NULL;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *dir = NULL;
                r = asprintf(&dir, "%s/%s/", prefix, dirs[i]) < 0 ? -ENOMEM : etcd_delete(c, dir, true, NULL, &e);
        }
        return r < 0 ? fail(&e, r) : 0;
}

/* ---- the rows --------------------------------------------------------- */

typedef struct Row {
        EtcdClient *etcd;
        const char *prefix;
        NapReservation request; /* name and node set per call */
        const char *tag;        /* names: root_<tag><first placement> */
        NapPlacer *placer;      /* (b), (c); NULL: nap_schedule() (d) */
        char *raw_prefix;       /* (a): its keys, shaped as nap's */
        size_t nodes;           /* (a) */
        NapUsage *raw_usage;    /* (a): each node's, as nap would write it */
        char *raw_value;        /* (a): the reservation's value */
} Row;

static void row_done(Row *row) {
        nap_placer_free(row->placer);
        free(row->raw_prefix);
        free(row->raw_usage);
        free(row->raw_value);
}

/* Places count requests, from the first-th on. */
typedef int (*place_fn)(Row *row, size_t first, unsigned count, NapError *e);

/* (a) The floor: one txn per placement that creates a fresh key (one
 * compare) and puts a reservation and a node's usage, values the size of
 * nap's. No read, no choice of node, no guard on the node. */
static int place_raw(Row *row, size_t first, unsigned count, NapError *e) {
        NapReservation r = row->request;
        NapUsage *u = row->raw_usage + first % row->nodes;
        _cleanup_free_ char *key = NULL, *usage_key = NULL, *usage = NULL;
        snprintf(r.name, sizeof r.name, "root_r%zu", first);
        node_name(first % row->nodes, r.node);
        nap_usage_add(u, &r);
        key = nap_key_reservation(row->raw_prefix, &r);
        usage_key = nap_key_usage(row->raw_prefix, r.node);
        if (!key || !usage_key || nap_usage_to_json(u, &usage) < 0)
                return nap_error_errno(e, -ENOMEM, "Out of memory");
        const EtcdTxnCompare cmp = { .key = key, .target = ETCD_COMPARE_CREATE_REVISION };
        const EtcdTxnOp ops[] = {
                { .type = ETCD_TXN_PUT, .key = key, .value = row->raw_value, .value_size = strlen(row->raw_value) },
                { .type = ETCD_TXN_PUT, .key = usage_key, .value = usage, .value_size = strlen(usage) },
        };
        int k = etcd_txn(row->etcd, &cmp, 1, ops, ELEMENTSOF(ops), NULL, e);
        return k == 0 ? nap_error_set(e, NAP_ERROR_INTERNAL, -EEXIST, "%s existed already", key) : MIN(k, 0);
}

/* (b), (c) on the row's placer; (d) nap_schedule(), which reads the whole
 * inventory first. */
static int place_nap(Row *row, size_t first, unsigned count, NapError *e) {
        _cleanup_free_ NapReservation *placed = NULL;
        NapReservation r = row->request;
        snprintf(r.name, sizeof r.name, "root_%s%zu", row->tag, first);
        int k = row->placer ? nap_placer_place(row->placer, &r, count, NAP_POLICY_SPREAD, NULL, &placed, e)
                            : nap_schedule(row->etcd, row->prefix, &r, count, NAP_POLICY_SPREAD, NULL, &placed, e);
        for (unsigned i = 0; k >= 0 && i < count; i++)
                if (!placed[i].node[0])
                        k = nap_error_set(e, NAP_ERROR_INTERNAL, -EIO, "%s placed on no node", placed[i].name);
        return k;
}

/* total placements, per_call at a time: the row's line. */
static int time_row(Row *row, place_fn place, size_t total, unsigned per_call, uint64_t setup_nsec) {
        size_t calls = (total + per_call - 1) / per_call, i = 0;
        _cleanup_free_ uint64_t *v = calloc(calls, sizeof *v);
        NapError e = NAP_ERROR_NULL;
        int k = v ? 0 : nap_error_errno(&e, -ENOMEM, "Out of memory");
        uint64_t start = now_nsec();
        for (size_t placed = 0; k >= 0 && placed < total; placed += per_call, i++) {
                uint64_t t0 = now_nsec();
                k = place(row, placed, (unsigned) MIN(per_call, total - placed), &e);
                v[i] = now_nsec() - t0;
        }
        uint64_t elapsed = now_nsec() - start;
        if (k < 0)
                return fail(&e, k);
        qsort(v, calls, sizeof *v, cmp_u64);
        printf("%zu %zu %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", total, calls, elapsed / 1000,
               percentile(v, calls, 50) / 1000, percentile(v, calls, 99) / 1000, setup_nsec / 1000);
        return 0;
}

static int row_raw(Row *row, size_t nodes, size_t n) {
        row->nodes = nodes;
        row->raw_usage = calloc(nodes, sizeof(NapUsage));
        if (asprintf(&row->raw_prefix, "%s/raw", row->prefix) < 0 || !row->raw_usage ||
            nap_reservation_to_json(&row->request, &row->raw_value) < 0)
                return fail(&(NapError) {}, -ENOMEM);
        return time_row(row, place_raw, n, 1, 0);
}

/* The placer reads the inventory once, here (setup_us), not per call. */
static int row_placer(Row *row, size_t n, unsigned batch) {
        NapError e = NAP_ERROR_NULL;
        uint64_t t0 = now_nsec();
        int k = nap_placer_new(row->etcd, row->prefix, &row->placer, &e);
        if (k < 0)
                return fail(&e, k);
        row->tag = batch > 1 ? "b" : "s";
        return time_row(row, place_nap, n, batch, now_nsec() - t0);
}

static int row_oneshot(Row *row, size_t n) {
        row->tag = "o";
        return time_row(row, place_nap, n, 1, 0);
}

/* ---- check ------------------------------------------------------------ */

/* After a nap row of n placements: the nodes' usage adds up to n
 * requests, n names are reserved (PREFIX/names/compute/, model/node.h)
 * and every node is still Ready. */
static int check(EtcdClient *c, const char *prefix, size_t n) {
        _cleanup_(etcd_range_done) EtcdRange names = {};
        _cleanup_free_ char *dir = NULL;
        NapError e = NAP_ERROR_NULL;
        NapNodeInfo *nodes = NULL;
        size_t n_nodes = 0, ready = 0;
        NapUsage sum = {};
        int r = asprintf(&dir, "%s/names/compute/", prefix) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = nap_nodes_list(c, prefix, &nodes, &n_nodes, &e);
        if (r >= 0)
                r = etcd_range_prefix(c, dir, 1, true, &names, &e);
        for (size_t i = 0; r >= 0 && i < n_nodes; i++) {
                sum.cpu_milli += nodes[i].usage.cpu_milli;
                sum.memory += nodes[i].usage.memory;
                ready += nodes[i].ready;
        }
        nap_node_info_array_free(nodes, n_nodes);
        if (r < 0)
                return fail(&e, r);
        if (sum.cpu_milli == n * REQUEST_CPU_MILLI && sum.memory == n * REQUEST_MEMORY && names.count == (int64_t) n &&
            ready == n_nodes)
                return 0;
        fprintf(stderr,
                "schedule-driver: after %zu placements: usage %" PRIu64 " milli-CPU and %" PRIu64
                " bytes (expected %zu and %" PRIu64 "), %" PRId64 " names, %zu of %zu nodes Ready\n",
                n, sum.cpu_milli, sum.memory, n * REQUEST_CPU_MILLI, n * REQUEST_MEMORY, names.count, ready, n_nodes);
        return 1;
}

/* ---- agent SIGKILL → NotReady ----------------------------------------- */

typedef struct Agent {
        EtcdClient *etcd;
        const char *prefix, *node, *log;
        char **argv;
        int64_t member; /* the membership last seen Ready */
} Agent;

static int spawn_agent(const Agent *a, pid_t *ret) {
        posix_spawn_file_actions_t fa;
        int r = posix_spawn_file_actions_init(&fa);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, a->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
        if (r == 0)
                r = posix_spawn(ret, a->argv[0], &fa, NULL, a->argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

/* 1 Ready on a membership other than the last one seen (a new agent's),
 * 0 not; a node without a record yet is NotReady. */
static int agent_ready(Agent *a, bool remember, NapError *e) {
        _cleanup_(nap_node_info_done) NapNodeInfo i = {};
        NapError get = NAP_ERROR_NULL; /* NoSuchNode is an answer here; e keeps its first error */
        int k = nap_node_get(a->etcd, a->prefix, a->node, &i, &get);
        if (k == -ENOENT)
                return 0;
        if (k < 0)
                return *e = get, k;
        bool fresh = i.ready && i.member_revision != a->member;
        if (fresh && remember)
                a->member = i.member_revision;
        return remember ? fresh : i.ready;
}

/* Polls until the agent (pid) registered the node anew. */
static int wait_ready(Agent *a, pid_t pid, NapError *e) {
        uint64_t deadline = monotonic_usec() + READY_TIMEOUT_USEC;
        for (;;) {
                int k = agent_ready(a, true, e);
                if (k != 0)
                        return MIN(k, 0);
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        return nap_error_set(e, NAP_ERROR_INTERNAL, -ECHILD, "%s exited; see %s", a->argv[0], a->log);
                if (monotonic_usec() > deadline)
                        return nap_error_set(e, NAP_ERROR_INTERNAL, -ETIMEDOUT, "%s not Ready; see %s", a->node,
                                             a->log);
                usleep(POLL_USEC);
        }
}

static int wait_not_ready(Agent *a, NapError *e) {
        uint64_t deadline = monotonic_usec() + NOT_READY_TIMEOUT_USEC;
        for (;;) {
                int k = agent_ready(a, false, e);
                if (k <= 0)
                        return k;
                if (monotonic_usec() > deadline)
                        return nap_error_set(e, NAP_ERROR_INTERNAL, -ETIMEDOUT,
                                             "%s still Ready %" PRIu64 " s after SIGKILL", a->node,
                                             NOT_READY_TIMEOUT_USEC / USEC_PER_SEC);
                usleep(POLL_USEC);
        }
}

/* One agent: started, Ready, phase_usec later SIGKILLed; the time from the
 * kill to NotReady into *ret_nsec. */
static int kill_once(Agent *a, uint64_t phase_usec, uint64_t *ret_nsec, NapError *e) {
        pid_t pid;
        int k = spawn_agent(a, &pid);
        if (k < 0)
                return nap_error_errno(e, k, "Failed to start %s", a->argv[0]);
        k = wait_ready(a, pid, e);
        if (k >= 0)
                usleep(phase_usec);
        uint64_t t0 = now_nsec();
        if (k != -ECHILD) { /* not reaped already */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
        }
        if (k >= 0)
                k = wait_not_ready(a, e);
        *ret_nsec = now_nsec() - t0;
        return k;
}

/* The time to NotReady depends on how long before the kill the agent last
 * renewed its lease, so the kills are spread over one of its rounds. */
static int not_ready(Agent *a, size_t runs) {
        _cleanup_free_ uint64_t *v = calloc(runs, sizeof *v);
        NapError e = NAP_ERROR_NULL;
        int k = v ? 0 : nap_error_errno(&e, -ENOMEM, "Out of memory");
        for (size_t i = 0; k >= 0 && i < runs; i++)
                k = kill_once(a, AGENT_ROUND_USEC + i * AGENT_ROUND_USEC / runs, v + i, &e);
        if (k < 0)
                return fail(&e, k);
        qsort(v, runs, sizeof *v, cmp_u64);
        printf("%" PRIu64 " %" PRIu64, percentile(v, runs, 50) / 1000000, percentile(v, runs, 100) / 1000000);
        for (size_t i = 0; i < runs; i++)
                printf(" %" PRIu64, v[i] / 1000000);
        printf("\n");
        return 0;
}

/* ---- main ------------------------------------------------------------- */

/* A count > 0, or 0 for anything else. */
static size_t number(const char *s) {
        char *end;
        unsigned long long n = strtoull(s, &end, 10);
        return *s && !*end && n <= 10000000 ? (size_t) n : 0;
}

static int run(EtcdClient *c, const char *mode, const char *prefix, int argc, char **argv) {
        const NapCompute request = { .request_cpu_milli = REQUEST_CPU_MILLI, .request_memory = REQUEST_MEMORY };
        Row row = { .etcd = c, .prefix = prefix,
                    .request = { .kind = NAP_RESERVATION_COMPUTE, .compute = request,
                                 .created_usec = realtime_usec() } };
        size_t n = argc > 0 ? number(argv[0]) : 0, m = argc > 1 ? number(argv[1]) : 0;
        int r = -EINVAL;

        (void) nap_compute_check(&row.request.compute, NULL); /* limits as nap writes them */
        if (streq(mode, "setup") && argc == 1 && n > 0)
                r = setup(c, prefix, n);
        else if (streq(mode, "wipe") && argc == 0)
                r = wipe(c, prefix);
        else if (streq(mode, "raw") && argc == 2 && n > 0 && m > 0)
                r = row_raw(&row, n, m);
        else if (streq(mode, "single") && argc == 1 && n > 0)
                r = row_placer(&row, n, 1);
        else if (streq(mode, "batch") && argc == 2 && n > 0 && m > 0 && m <= NAP_SCHEDULE_BATCH_MAX)
                r = row_placer(&row, n, (unsigned) m);
        else if (streq(mode, "oneshot") && argc == 1 && n > 0)
                r = row_oneshot(&row, n);
        else if (streq(mode, "check") && argc == 1)
                r = check(c, prefix, n);
        else if (streq(mode, "notready") && argc >= 4 && m > 0)
                r = not_ready(&(Agent) { .etcd = c, .prefix = prefix, .node = argv[0], .log = argv[2],
                                         .argv = argv + 3 },
                              m);
        row_done(&row);
        return r;
}

int main(int argc, char **argv) {
        _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
        NapError e = NAP_ERROR_NULL;

        if (argc < 4) {
                fprintf(stderr, "usage: %s setup|wipe|raw|single|batch|oneshot|check|notready URL PREFIX ARGS...\n",
                        argv[0]);
                return 2;
        }
        char *endpoints[] = { argv[2], NULL };
        int r = etcd_client_new(endpoints, &c, &e);
        if (r < 0)
                return fail(&e, r);
        r = run(c, argv[1], argv[3], argc - 4, argv + 4);
        if (r == -EINVAL)
                fprintf(stderr, "%s %s: wrong arguments (see the top of schedule-driver.c)\n", argv[0], argv[1]);
        return r == -EINVAL ? 2 : r;
}
