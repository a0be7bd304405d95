/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* nap.conf(5): one [Nap] section.
 *   Root=          app trees (services/, apps/, git/)   default /var/lib/nap
 *   Instances=     generator input (manifests)          default /etc/nap/instances
 *   Scope=         system | user                        default system
 *   Host=          address published for endpoints      default: the host name
 *   PortRange=     LOW-HIGH, 1024 <= LOW <= HIGH <= 65535  default 20000-29999
 *   Etcd=          comma-separated http(s) URLs         default empty (no etcd)
 *   EtcdPrefix=    where nap's keys live                default /services
 *   DiscoveryTTL=  seconds, 2..3600                     default 60
 *   HealthPath=    what HTTP health checks ask for      default /
 *                  (an app's profile may set its own; nap.profile(5))
 *   HealthCheckSec= seconds between nap-discovery's HTTP checks of a
 *                  healthy app, 1..3600                 default 30
 *   AuthorizedKeys= the nap account's authorized_keys    default /var/lib/nap/.ssh/authorized_keys
 * The cluster (nap-node(8)):
 *   ClusterPrefix= where the cluster's keys live         default /nap
 *   Node=          this host's node name (a DNS label)   default: the host name
 *   Labels=        key=value,… of this node              default none
 *   CPU=           capacity: cores or milli-cores        default: the CPUs it may use
 *   Memory=        capacity: bytes, K/M/G/T              default: physical memory
 *   Storage=       capacity: bytes, K/M/G/T              default: Root='s file system
 *   NodeTTL=       membership lease, seconds, 2..600     default 10
 * Forwarding to other hosts (nap-cluster-gate(8)); off unless all three:
 *   ClusterCertificate= this host's certificate (PEM)    default none
 *   ClusterKey=    its private key (PEM)                 default none
 *   ClusterCA=     the cluster's CA certificate (PEM)    default none
 *   ClusterGatePort= TCP port of every host's gate       default 7475
 * Rollouts (push, rollback, refresh-instances: lib/ops/ops-push.c):
 *   RolloutBatch=     instances replaced at once: N, or P% of them (at
 *                     least 1), 1..20000 or 1%..100%   default 25%
 *   RolloutDrainSec=  seconds between withdrawing an old instance's
 *                     endpoint and stopping it, 0..600  default 1
 * nap-managerd(8)'s varlink connections:
 *   MaxConnections=        in all, 1..65536              default 4096
 *   MaxConnectionsPerUser= from one uid, 1..65536        default 1024
 * Lines: "Key=Value", "[Section]", blank, "#" or ";" comments. Whitespace
 * around keys and values is stripped. Unknown keys and unknown sections
 * are reported through warn() and ignored; a bad value is an error that
 * names the key (NAP_ERROR_INVALID_CONFIG). Root=, Instances= and
 * AuthorizedKeys= must be absolute paths. NAP_CONFIG=path replaces the
 * default file as a whole. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum NapScope {
        NAP_SCOPE_SYSTEM,
        NAP_SCOPE_USER,
        _NAP_SCOPE_MAX,
        _NAP_SCOPE_INVALID = -EINVAL,
} NapScope;

const char *nap_scope_to_string(NapScope s) _pure_;
NapScope nap_scope_from_string(const char *s) _pure_;

#define NAP_CONFIG_MAX_SIZE (64 * 1024)

/* How many instances a rollout replaces at once: a number, or a
 * percentage of the app's instances. */
typedef struct NapRolloutBatch {
        unsigned value;
        bool percent;
} NapRolloutBatch;

#define NAP_ROLLOUT_BATCH_DEFAULT ((NapRolloutBatch) { .value = 25, .percent = true })
#define NAP_ROLLOUT_BATCH_MAX 20000u
#define NAP_ROLLOUT_DRAIN_SEC_DEFAULT 1u
#define NAP_ROLLOUT_DRAIN_SEC_MAX 600u

/* "N" (1..NAP_ROLLOUT_BATCH_MAX) or "P%" (1..100): 0, or -EINVAL/-ERANGE. */
int nap_rollout_batch_parse(const char *s, NapRolloutBatch *ret);
/* The batch's size for an app of n instances: at least 1, at most n
 * (1 when n is 0). */
unsigned nap_rollout_batch_size(NapRolloutBatch b, unsigned n) _pure_;

typedef struct NapConfig {
        char *root;
        char *instances_dir;
        NapScope scope;
        char *host;          /* NULL: use the host name at the time of use */
        unsigned port_min, port_max;
        char **etcd;         /* strv, NULL when no etcd */
        char *etcd_prefix;   /* "/services": keys PREFIX/url/…, PREFIX/port/…, PREFIX/USER_APP/… */
        unsigned discovery_ttl;
        char *health_path;   /* "/": nap_health_path_is_valid() (model/profile.h) */
        unsigned health_check_sec;
        char *authorized_keys; /* edited by napctl keys (lib/model/authkeys.h) */
        char *replica_key;   /* ssh key pushes to the other nodes' repositories use; NULL: none */
        char *replica_known_hosts; /* their host keys */
        char *replica_user;  /* the account nap-git-shell --replica serves on them */
        char *cluster_prefix; /* "/nap": PREFIX/nodes/…, see lib/model/node.h */
        char *node;          /* NULL: the host name at the time of use */
        char **labels;       /* sorted "key=value" strv */
        uint64_t cpu_milli, memory, storage; /* capacity; 0: detect */
        unsigned node_ttl;
        char *cluster_certificate, *cluster_key, *cluster_ca; /* NULL: no forwarding */
        unsigned cluster_gate_port;
        unsigned reconcile_grace_sec; /* 0: node_ttl + 5 (nap_config_reconcile_grace_sec()) */
        bool cluster_apps;   /* start-common places in the cluster by default */
        unsigned max_connections, max_connections_per_user; /* nap-managerd's varlink connections */
        NapRolloutBatch rollout_batch;
        unsigned rollout_drain_sec;
        char *path;          /* the file it came from, NULL for built-in defaults */
} NapConfig;

/* ReconcileGraceSec=, its default resolved: NodeTTL= + 5 s. */
unsigned nap_config_reconcile_grace_sec(const NapConfig *c) _pure_;

typedef void (*nap_warn_fn)(void *userdata, const char *message);

int nap_config_new_default(NapConfig **ret);
NapConfig *nap_config_free(NapConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapConfig *, nap_config_free);

/* Applies text (the contents of origin) on top of c. On error c may be
 * partly updated; callers discard it. */
int nap_config_parse(NapConfig *c, const char *text, size_t size, const char *origin,
                     nap_warn_fn warn, void *userdata, NapError *e);

/* Defaults, then $NAP_CONFIG (must exist) or the default path (may be
 * missing: defaults). */
int nap_config_load(NapConfig **ret, nap_warn_fn warn, void *userdata, NapError *e);

/* This node's name: Node=, or the host name (its first label, lower
 * case) when it makes a valid node name; else -EINVAL, and Node= must be
 * set. */
int nap_config_node(const NapConfig *c, char **ret, NapError *e);
/* Whether calls may be forwarded to other hosts: ClusterCertificate=,
 * ClusterKey=, ClusterCA= and Etcd= set. */
bool nap_config_forwards(const NapConfig *c) _pure_;

/* The host to publish: Host= or gethostname(). malloc'ed. */
int nap_config_host(const NapConfig *c, char **ret);
