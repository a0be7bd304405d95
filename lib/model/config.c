/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap.conf: parsed line by line into a NapConfig, each key through one
 * small parser from a table (quadlet-style: parse, validate against the
 * known keys, store). Choices the header leaves open, made here as systemd
 * does for unit files:
 *  - an empty value resets the key to its default (Etcd= empty: no etcd);
 *  - a key given twice: the later value wins, with a warning;
 *  - assignments before any section are warned about and ignored;
 *  - a line that is no comment, section or Key=Value is an error;
 *  - Etcd= URLs are http(s)://HOST[:PORT] with an optional trailing '/',
 *    which is dropped so clients can append paths. */

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "model/config.h"
#include "base/fileio.h"
#include "nap-config.h"
#include "base/strv.h"
#include "model/node.h"
#include "model/profile.h"
#include "model/resources.h"

#define DEFAULT_ROOT "/var/lib/nap"
#define DEFAULT_INSTANCES "/etc/nap/instances"
#define DEFAULT_PORT_MIN 20000u
#define DEFAULT_PORT_MAX 29999u
#define DEFAULT_DISCOVERY_TTL 60u
#define DEFAULT_ETCD_PREFIX "/services"
#define DEFAULT_AUTHORIZED_KEYS "/var/lib/nap/.ssh/authorized_keys"
#define DEFAULT_REPLICA_KNOWN_HOSTS "/var/lib/nap/.ssh/known_hosts"
#define DEFAULT_REPLICA_USER "nap"
#define ETCD_PREFIX_MAX 128
#define DISCOVERY_TTL_MIN 2u
#define DISCOVERY_TTL_MAX 3600u
#define DEFAULT_HEALTH_CHECK_SEC 30u
#define HEALTH_CHECK_SEC_MIN 1u
#define HEALTH_CHECK_SEC_MAX 3600u
#define PORT_MIN 1024u
#define PORT_MAX 65535u
#define HOST_MAX 253
#define DEFAULT_CLUSTER_PREFIX "/nap"
#define DEFAULT_NODE_TTL 10u
#define NODE_TTL_MIN 2u
#define NODE_TTL_MAX 600u
#define RECONCILE_GRACE_SEC_MAX 3600u
#define RECONCILE_GRACE_MARGIN_SEC 5u
/* sd-varlink's defaults for its services. A quarter of the whole for one
 * uid: one greedy user leaves three quarters to the others, and one uid
 * still has room for hundreds of clients (a web console, a CI pool, the
 * load test's 200, napctl's and every follow besides). */
#define DEFAULT_MAX_CONNECTIONS 4096u
#define DEFAULT_MAX_CONNECTIONS_PER_USER 1024u
#define CONNECTIONS_MAX 65536u
#define DEFAULT_CLUSTER_GATE_PORT 7475u

static const char *const scope_table[_NAP_SCOPE_MAX] = {
        [NAP_SCOPE_SYSTEM] = "system",
        [NAP_SCOPE_USER] = "user",
};

const char *nap_scope_to_string(NapScope s) {
        return s >= 0 && s < _NAP_SCOPE_MAX ? scope_table[s] : NULL;
}

NapScope nap_scope_from_string(const char *s) {
        return string_table_lookup(scope_table, ELEMENTSOF(scope_table), s);
}

NapConfig *nap_config_free(NapConfig *c) {
        if (!c)
                return NULL;
        free(c->root);
        free(c->instances_dir);
        free(c->host);
        strv_free(c->etcd);
        free(c->etcd_prefix);
        free(c->health_path);
        free(c->authorized_keys);
        free(c->replica_key);
        free(c->replica_known_hosts);
        free(c->replica_user);
        free(c->cluster_prefix);
        free(c->node);
        strv_free(c->labels);
        free(c->cluster_certificate);
        free(c->cluster_key);
        free(c->cluster_ca);
        free(c->path);
        free(c);
        return NULL;
}

int nap_config_new_default(NapConfig **ret) {
        assert(ret);

        _cleanup_(nap_config_freep) NapConfig *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->root = strdup(DEFAULT_ROOT);
        c->instances_dir = strdup(DEFAULT_INSTANCES);
        c->etcd_prefix = strdup(DEFAULT_ETCD_PREFIX);
        c->authorized_keys = strdup(DEFAULT_AUTHORIZED_KEYS);
        c->replica_known_hosts = strdup(DEFAULT_REPLICA_KNOWN_HOSTS);
        c->replica_user = strdup(DEFAULT_REPLICA_USER);
        c->cluster_prefix = strdup(DEFAULT_CLUSTER_PREFIX);
        c->health_path = strdup(NAP_HEALTH_PATH_DEFAULT);
        if (!c->root || !c->instances_dir || !c->etcd_prefix || !c->authorized_keys || !c->cluster_prefix ||
            !c->health_path || !c->replica_known_hosts || !c->replica_user)
                return -ENOMEM;
        c->node_ttl = DEFAULT_NODE_TTL;
        c->cluster_gate_port = DEFAULT_CLUSTER_GATE_PORT;
        c->scope = NAP_SCOPE_SYSTEM;
        c->port_min = DEFAULT_PORT_MIN;
        c->port_max = DEFAULT_PORT_MAX;
        c->discovery_ttl = DEFAULT_DISCOVERY_TTL;
        c->health_check_sec = DEFAULT_HEALTH_CHECK_SEC;
        c->max_connections = DEFAULT_MAX_CONNECTIONS;
        c->max_connections_per_user = DEFAULT_MAX_CONNECTIONS_PER_USER;
        c->rollout_batch = NAP_ROLLOUT_BATCH_DEFAULT;
        c->rollout_drain_sec = NAP_ROLLOUT_DRAIN_SEC_DEFAULT;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- the parsing context ---- */

typedef struct Parser {
        NapConfig *config;
        const char *origin;
        unsigned line;
        const char *key;  /* the key being parsed, for messages */
        nap_warn_fn warn;
        void *userdata;
        NapError *e;
        uint64_t seen;    /* bit per key of the table: given already */
} Parser;

/* A value for a message: control characters hidden, long ones cut. */
static const char *shown(const char *s, char buf[static 72]) {
        size_t i = 0;
        for (; s[i] && i < 64; i++)
                buf[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        buf[i] = 0;
        if (s[i])
                memcpy(buf + i, "…", sizeof "…");
        return buf;
}

_printf_(2, 3)
static void warn(Parser *p, const char *fmt, ...) {
        char msg[NAP_ERROR_MESSAGE_MAX], line[NAP_ERROR_MESSAGE_MAX + 64];
        va_list ap;

        if (!p->warn)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(line, sizeof line, "%s:%u: %s", p->origin, p->line, msg);
        p->warn(p->userdata, line);
}

/* "ORIGIN:LINE: KEY=: what 'value'…" */
_printf_(3, 4)
static int bad_value(Parser *p, int r, const char *fmt, ...) {
        char msg[NAP_ERROR_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return nap_error_set(p->e, NAP_ERROR_INVALID_CONFIG, r, "%s:%u: %s=: %s", p->origin, p->line,
                             p->key, msg);
}

static int replace_string(char **dst, const char *v) {
        char *s = v ? strdup(v) : NULL;
        if (v && !s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

/* ---- one parser per key ---- */

/* Strictly decimal: digits only, no sign or blanks, checked for overflow. */
static int parse_unsigned(const char *s, const char **end, unsigned long *ret) {
        char *e;
        if (!(*s >= '0' && *s <= '9'))
                return -EINVAL;
        errno = 0;
        unsigned long v = strtoul(s, &e, 10);
        if (errno == ERANGE || v > UINT_MAX)
                return -ERANGE;
        *end = e;
        *ret = v;
        return 0;
}

static int parse_path(Parser *p, const char *v, char **dst, const char *def) {
        char b[72];
        if (!*v)
                return replace_string(dst, def);
        if (!path_is_safe(v))
                return bad_value(p, -EINVAL, "not an absolute, normalized path: '%s'", shown(v, b));
        return replace_string(dst, v);
}

static int parse_root(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->root, DEFAULT_ROOT);
}

static int parse_instances(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->instances_dir, DEFAULT_INSTANCES);
}

static int parse_authorized_keys(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->authorized_keys, DEFAULT_AUTHORIZED_KEYS);
}

static int parse_replica_key(Parser *p, const char *v) {
        return *v ? parse_path(p, v, &p->config->replica_key, NULL) : replace_string(&p->config->replica_key, NULL);
}

static int parse_replica_known_hosts(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->replica_known_hosts, DEFAULT_REPLICA_KNOWN_HOSTS);
}

static int parse_replica_user(Parser *p, const char *v) {
        char b[72];
        if (*v && !nap_user_is_valid(v))
                return bad_value(p, -EINVAL, "invalid user name '%s'", shown(v, b));
        return replace_string(&p->config->replica_user, *v ? v : DEFAULT_REPLICA_USER);
}

static int parse_scope(Parser *p, const char *v) {
        char b[72];
        NapScope s = *v ? nap_scope_from_string(v) : NAP_SCOPE_SYSTEM;
        if (s < 0)
                return bad_value(p, -EINVAL, "invalid scope '%s': expected 'system' or 'user'", shown(v, b));
        p->config->scope = s;
        return 0;
}

/* A host name or an IPv4/IPv6 address: letters, digits, '.', '-', ':'. */
static bool host_is_valid(const char *s, size_t n) {
        if (n == 0 || n > HOST_MAX || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr(".-:", s[i])))
                        return false;
        return true;
}

static int parse_host(Parser *p, const char *v) {
        char b[72];
        if (*v && !host_is_valid(v, strlen(v)))
                return bad_value(p, -EINVAL, "invalid host '%s': expected a host name or an IP address",
                                 shown(v, b));
        return replace_string(&p->config->host, *v ? v : NULL);
}

static int parse_port_range(Parser *p, const char *v) {
        unsigned long lo, hi;
        const char *end;
        char b[72];

        if (!*v) {
                p->config->port_min = DEFAULT_PORT_MIN;
                p->config->port_max = DEFAULT_PORT_MAX;
                return 0;
        }
        if (parse_unsigned(v, &end, &lo) < 0 || *end != '-' || parse_unsigned(end + 1, &end, &hi) < 0 || *end)
                return bad_value(p, -EINVAL, "invalid range '%s': expected LOW-HIGH", shown(v, b));
        if (lo < PORT_MIN || lo > hi || hi > PORT_MAX)
                return bad_value(p, -ERANGE, "invalid range '%s': need %u <= LOW <= HIGH <= %u", shown(v, b),
                                 PORT_MIN, PORT_MAX);
        p->config->port_min = lo;
        p->config->port_max = hi;
        return 0;
}

/* A number of what (plural) in min..max; empty: def. */
static int parse_count(Parser *p, const char *v, const char *what, unsigned def, unsigned min, unsigned max,
                       unsigned *dst) {
        unsigned long n;
        const char *end;
        char b[72];

        if (!*v) {
                *dst = def;
                return 0;
        }
        if (parse_unsigned(v, &end, &n) < 0 || *end)
                return bad_value(p, -EINVAL, "invalid number of %s '%s'", what, shown(v, b));
        if (n < min || n > max)
                return bad_value(p, -ERANGE, "%lu %s is out of range %u..%u", n, what, min, max);
        *dst = n;
        return 0;
}

static int parse_seconds(Parser *p, const char *v, unsigned def, unsigned min, unsigned max, unsigned *dst) {
        return parse_count(p, v, "seconds", def, min, max, dst);
}

static int parse_max_connections(Parser *p, const char *v) {
        return parse_count(p, v, "connections", DEFAULT_MAX_CONNECTIONS, 1, CONNECTIONS_MAX,
                           &p->config->max_connections);
}

static int parse_max_connections_per_user(Parser *p, const char *v) {
        return parse_count(p, v, "connections", DEFAULT_MAX_CONNECTIONS_PER_USER, 1, CONNECTIONS_MAX,
                           &p->config->max_connections_per_user);
}

/* Forwarding between hosts (nap-cluster-gate(8)): PEM files, no default. */
static int parse_cluster_certificate(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->cluster_certificate, NULL);
}

static int parse_cluster_key(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->cluster_key, NULL);
}

static int parse_cluster_ca(Parser *p, const char *v) {
        return parse_path(p, v, &p->config->cluster_ca, NULL);
}

static int parse_cluster_gate_port(Parser *p, const char *v) {
        return parse_count(p, v, "port", DEFAULT_CLUSTER_GATE_PORT, 1, PORT_MAX, &p->config->cluster_gate_port);
}

static int parse_discovery_ttl(Parser *p, const char *v) {
        return parse_seconds(p, v, DEFAULT_DISCOVERY_TTL, DISCOVERY_TTL_MIN, DISCOVERY_TTL_MAX,
                             &p->config->discovery_ttl);
}

static int parse_health_path(Parser *p, const char *v) {
        char b[72];
        if (*v && !nap_health_path_is_valid(v))
                return bad_value(p, -EINVAL, "'%s' is not " NAP_HEALTH_PATH_RULE, shown(v, b));
        return replace_string(&p->config->health_path, *v ? v : NAP_HEALTH_PATH_DEFAULT);
}

static int parse_health_check_sec(Parser *p, const char *v) {
        return parse_seconds(p, v, DEFAULT_HEALTH_CHECK_SEC, HEALTH_CHECK_SEC_MIN, HEALTH_CHECK_SEC_MAX,
                             &p->config->health_check_sec);
}

int nap_rollout_batch_parse(const char *s, NapRolloutBatch *ret) {
        unsigned long n;
        const char *end;
        if (!s || parse_unsigned(s, &end, &n) < 0)
                return -EINVAL;
        bool percent = streq(end, "%");
        if (*end && !percent)
                return -EINVAL;
        if (n < 1 || n > (percent ? 100u : NAP_ROLLOUT_BATCH_MAX))
                return -ERANGE;
        *ret = (NapRolloutBatch) { .value = n, .percent = percent };
        return 0;
}

unsigned nap_rollout_batch_size(NapRolloutBatch b, unsigned n) {
        unsigned k = b.percent ? (unsigned) (((uint64_t) n * b.value + 99) / 100) : b.value;
        return MAX(MIN(k, n), 1u);
}

/* Replacing 25% at a time: an app of 100 is rolled in 4 batches, while
 * three quarters of it keep serving as before. */
static int parse_rollout_batch(Parser *p, const char *v) {
        char b[72];
        if (!*v) {
                p->config->rollout_batch = NAP_ROLLOUT_BATCH_DEFAULT;
                return 0;
        }
        int r = nap_rollout_batch_parse(v, &p->config->rollout_batch);
        return r < 0 ? bad_value(p, r, "'%s' is not a number of instances (1..%u) or a percentage (1%%..100%%)",
                                 shown(v, b), NAP_ROLLOUT_BATCH_MAX)
                     : 0;
}

/* 1 s: a client reads the endpoints and connects within milliseconds, and
 * most requests it already sent finish within the second; the drains of
 * all batches but the last overlap the next batch's start, so a push
 * takes about one drain longer, however many batches. */
static int parse_rollout_drain_sec(Parser *p, const char *v) {
        return parse_seconds(p, v, NAP_ROLLOUT_DRAIN_SEC_DEFAULT, 0, NAP_ROLLOUT_DRAIN_SEC_MAX,
                             &p->config->rollout_drain_sec);
}

/* yes/no as systemd takes them; empty: the default (no). */
static int parse_cluster_apps(Parser *p, const char *v) {
        static const char *const yes[] = { "1", "yes", "true", "on" }, *const no[] = { "", "0", "no", "false", "off" };
        char b[72];
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(v, yes[i]) == 0)
                        return (p->config->cluster_apps = true), 0;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(v, no[i]) == 0)
                        return (p->config->cluster_apps = false), 0;
        return bad_value(p, -EINVAL, "expected yes or no, got '%s'", shown(v, b));
}

static int parse_node_ttl(Parser *p, const char *v) {
        return parse_seconds(p, v, DEFAULT_NODE_TTL, NODE_TTL_MIN, NODE_TTL_MAX, &p->config->node_ttl);
}

/* 0 (the default): NodeTTL= + 5 s, whatever order the two come in. */
static int parse_reconcile_grace_sec(Parser *p, const char *v) {
        return parse_seconds(p, v, 0, 0, RECONCILE_GRACE_SEC_MAX, &p->config->reconcile_grace_sec);
}

unsigned nap_config_reconcile_grace_sec(const NapConfig *c) {
        return c->reconcile_grace_sec > 0 ? c->reconcile_grace_sec : c->node_ttl + RECONCILE_GRACE_MARGIN_SEC;
}

/* A key prefix in etcd: an absolute key path, no trailing '/'. */
static int parse_prefix(Parser *p, const char *v, const char *def, char **dst) {
        char b[72];
        if (!*v)
                return replace_string(dst, def);
        if (!path_is_normalized(v) || strlen(v) > ETCD_PREFIX_MAX)
                return bad_value(p, -EINVAL, "invalid key prefix '%s': expected /NAME[/NAME…], no trailing '/'",
                                 shown(v, b));
        return replace_string(dst, v);
}

static int parse_etcd_prefix(Parser *p, const char *v) {
        return parse_prefix(p, v, DEFAULT_ETCD_PREFIX, &p->config->etcd_prefix);
}

static int parse_cluster_prefix(Parser *p, const char *v) {
        return parse_prefix(p, v, DEFAULT_CLUSTER_PREFIX, &p->config->cluster_prefix);
}

/* The library's own message, under the key's name. */
static int bad_amount(Parser *p, const NapError *e) {
        return bad_value(p, -EINVAL, "%s", e->message);
}

static int parse_node(Parser *p, const char *v) {
        NapError e = NAP_ERROR_NULL;
        if (*v && nap_node_name_check(v, &e) < 0)
                return bad_amount(p, &e);
        return replace_string(&p->config->node, *v ? v : NULL);
}

static int parse_labels(Parser *p, const char *v) {
        NapError e = NAP_ERROR_NULL;
        char **l = NULL;
        if (nap_labels_parse(v, &l, &e) < 0)
                return bad_amount(p, &e);
        strv_free(p->config->labels);
        p->config->labels = l;
        return 0;
}

static int parse_cpu(Parser *p, const char *v) {
        NapError e = NAP_ERROR_NULL;
        p->config->cpu_milli = 0;
        return *v && nap_cpu_parse(v, &p->config->cpu_milli, &e) < 0 ? bad_amount(p, &e) : 0;
}

static int parse_bytes(Parser *p, const char *v, uint64_t *dst) {
        NapError e = NAP_ERROR_NULL;
        *dst = 0;
        return *v && nap_bytes_parse(v, dst, &e) < 0 ? bad_amount(p, &e) : 0;
}

static int parse_memory(Parser *p, const char *v) {
        return parse_bytes(p, v, &p->config->memory);
}

static int parse_storage(Parser *p, const char *v) {
        return parse_bytes(p, v, &p->config->storage);
}

/* http(s)://HOST[:PORT][/], HOST a name, IPv4 address or [IPv6]. */
static bool etcd_url_is_valid(const char *u) {
        const char *h = startswith(u, "http://") ?: startswith(u, "https://");
        if (!h)
                return false;
        size_t n = strlen(h);
        if (n > 0 && h[n - 1] == '/')
                n--;
        const char *end = h + n, *colon;
        if (h[0] == '[') {
                const char *close = memchr(h, ']', n);
                if (!close || close == h + 1 || !host_is_valid(h + 1, close - h - 1))
                        return false;
                colon = close + 1 < end ? close + 1 : NULL;
                if (colon && *colon != ':')
                        return false;
        } else {
                colon = memchr(h, ':', n);
                if (!host_is_valid(h, colon ? (size_t) (colon - h) : n))
                        return false;
        }
        if (!colon)
                return true;
        unsigned long port;
        const char *pe;
        return parse_unsigned(colon + 1, &pe, &port) >= 0 && pe == end && port >= 1 && port <= PORT_MAX;
}

static int parse_etcd(Parser *p, const char *v) {
        _cleanup_strv_free_ char **l = NULL;
        char b[72];

        if (!*v) {
                p->config->etcd = strv_free(p->config->etcd);
                return 0;
        }
        l = strv_split(v, ',');
        if (!l)
                return -ENOMEM;
        STRV_FOREACH(u, l) {
                /* Blanks after commas are fine: "http://a:2379, http://b:2379". */
                char *s = *u + strspn(*u, " \t"), *t = s + strlen(s);
                while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                        t--;
                *t = 0;
                if (!etcd_url_is_valid(s))
                        return bad_value(p, -EINVAL, "invalid URL '%s': expected http(s)://HOST[:PORT]",
                                         shown(s, b));
                if (t > s && t[-1] == '/')
                        t[-1] = 0;
                memmove(*u, s, strlen(s) + 1);
        }
        strv_free(p->config->etcd);
        p->config->etcd = TAKE_PTR(l);
        return 0;
}

typedef struct KeyParser {
        const char *key;
        int (*parse)(Parser *p, const char *value);
} KeyParser;

static const KeyParser key_table[] = {
        { "Root",         parse_root          },
        { "Instances",    parse_instances     },
        { "Scope",        parse_scope         },
        { "Host",         parse_host          },
        { "PortRange",    parse_port_range    },
        { "Etcd",         parse_etcd          },
        { "EtcdPrefix",   parse_etcd_prefix   },
        { "DiscoveryTTL", parse_discovery_ttl },
        { "HealthPath",   parse_health_path   },
        { "HealthCheckSec", parse_health_check_sec },
        { "AuthorizedKeys", parse_authorized_keys },
        { "ReplicaKey",   parse_replica_key   },
        { "ReplicaKnownHosts", parse_replica_known_hosts },
        { "ReplicaUser",  parse_replica_user  },
        { "ClusterPrefix", parse_cluster_prefix },
        { "Node",         parse_node          },
        { "Labels",       parse_labels        },
        { "CPU",          parse_cpu           },
        { "Memory",       parse_memory        },
        { "Storage",      parse_storage       },
        { "NodeTTL",      parse_node_ttl      },
        { "ReconcileGraceSec", parse_reconcile_grace_sec },
        { "ClusterApps",  parse_cluster_apps  },
        { "MaxConnections", parse_max_connections },
        { "MaxConnectionsPerUser", parse_max_connections_per_user },
        { "RolloutBatch", parse_rollout_batch },
        { "RolloutDrainSec", parse_rollout_drain_sec },
        { "ClusterCertificate", parse_cluster_certificate },
        { "ClusterKey",   parse_cluster_key   },
        { "ClusterCA",    parse_cluster_ca    },
        { "ClusterGatePort", parse_cluster_gate_port },
};

_Static_assert(ELEMENTSOF(key_table) <= 64, "Parser.seen has a bit per key");

/* ---- lines ---- */

static int parse_assignment(Parser *p, char *line, bool in_nap) {
        char *eq = strchr(line, '='), b[72];
        if (!eq)
                return nap_error_set(p->e, NAP_ERROR_INVALID_CONFIG, -EINVAL,
                                     "%s:%u: expected Key=Value, a [Section] or a comment, got '%s'",
                                     p->origin, p->line, shown(line, b));
        char *k = line, *k_end = eq, *v = eq + 1;
        while (k_end > k && strchr(" \t", k_end[-1]))
                k_end--;
        *k_end = 0;
        v += strspn(v, " \t");
        if (!*k)
                return nap_error_set(p->e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "%s:%u: assignment without a key",
                                     p->origin, p->line);
        if (!in_nap)
                return 0;

        for (size_t i = 0; i < ELEMENTSOF(key_table); i++) {
                if (!streq(key_table[i].key, k))
                        continue;
                if (p->seen & (UINT64_C(1) << i))
                        warn(p, "%s= is set again, the later value wins", k);
                p->seen |= UINT64_C(1) << i;
                p->key = k;
                int r = key_table[i].parse(p, v);
                return r == -ENOMEM ? nap_error_errno(p->e, r, "%s:%u: %s=", p->origin, p->line, k) : r;
        }
        warn(p, "unknown key '%s' in [Nap], ignoring", shown(k, b));
        return 0;
}

/* Returns 1 if the section is [Nap], 0 for another. */
static int parse_section(Parser *p, char *line) {
        size_t n = strlen(line);
        char b[72];
        if (n < 3 || line[n - 1] != ']')
                return nap_error_set(p->e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "%s:%u: invalid section header '%s'",
                                     p->origin, p->line, shown(line, b));
        line[n - 1] = 0;
        if (streq(line + 1, "Nap"))
                return 1;
        warn(p, "unknown section [%s], ignoring", shown(line + 1, b));
        return 0;
}

/* One line, modified in place; *section: -1 none yet, 0 other, 1 [Nap]. */
static int parse_line(Parser *p, char *line, int *section) {
        line += strspn(line, " \t\r");
        char *end = line + strlen(line);
        while (end > line && strchr(" \t\r", end[-1]))
                end--;
        *end = 0;

        if (!*line || *line == '#' || *line == ';')
                return 0;
        if (*line == '[') {
                int r = parse_section(p, line);
                if (r >= 0)
                        *section = r;
                return r;
        }
        if (*section < 0) {
                warn(p, "assignment outside of a section, ignoring");
                return 0;
        }
        return parse_assignment(p, line, *section > 0);
}

int nap_config_parse(NapConfig *c, const char *text, size_t size, const char *origin, nap_warn_fn warn_fn,
                     void *userdata, NapError *e) {
        Parser p = {
                .config = c,
                .origin = origin ?: "nap.conf",
                .warn = warn_fn,
                .userdata = userdata,
                .e = e,
        };
        int section = -1;

        if (!c || (!text && size > 0))
                return -EINVAL;
        if (size > NAP_CONFIG_MAX_SIZE)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EFBIG, "%s: too large (%zu bytes, at most %d)",
                                     p.origin, size, NAP_CONFIG_MAX_SIZE);
        const char *nul = size > 0 ? memchr(text, 0, size) : NULL;
        if (nul)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "%s: contains a NUL byte at offset %zu",
                                     p.origin, (size_t) (nul - text));

        _cleanup_free_ char *copy = strndup(text ?: "", size);
        if (!copy)
                return nap_error_errno(e, -ENOMEM, "%s", p.origin);
        for (char *line = copy; line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                p.line++;
                int r = parse_line(&p, line, &section);
                if (r < 0)
                        return r;
                line = nl ? nl + 1 : NULL;
        }
        return 0;
}

/* ---- loading ---- */

static int config_read(NapConfig *c, const char *path, bool must_exist, nap_warn_fn warn_fn, void *userdata,
                       NapError *e) {
        _cleanup_free_ char *text = NULL;
        size_t size;

        int r = read_full_file(path, NAP_CONFIG_MAX_SIZE, &text, &size);
        if (r == -ENOENT && !must_exist)
                return 0;
        if (r == -EFBIG)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, r, "%s: too large (more than %d bytes)", path,
                                     NAP_CONFIG_MAX_SIZE);
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, r, "Failed to read %s%s: %s", path,
                                     must_exist ? " (NAP_CONFIG)" : "", strerror(-r));
        r = nap_config_parse(c, text, size, path, warn_fn, userdata, e);
        if (r < 0)
                return r;
        return replace_string(&c->path, path);
}

int nap_config_load(NapConfig **ret, nap_warn_fn warn_fn, void *userdata, NapError *e) {
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        const char *env = secure_getenv("NAP_CONFIG");
        int r;

        assert(ret);

        if (env && !*env)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL, "NAP_CONFIG is set but empty");
        r = nap_config_new_default(&c);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to allocate configuration");
        r = config_read(c, env ?: NAP_CONFIG_DEFAULT_PATH, !!env, warn_fn, userdata, e);
        if (r == -ENOMEM)
                return nap_error_errno(e, r, "Failed to load configuration");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int nap_config_host(const NapConfig *c, char **ret) {
        char buf[HOST_NAME_MAX + 1] = {};

        assert(c);
        assert(ret);

        if (c->host) {
                char *s = strdup(c->host);
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        if (gethostname(buf, sizeof buf - 1) < 0)
                return negative_errno();
        char *s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

bool nap_config_forwards(const NapConfig *c) {
        return c && c->cluster_certificate && c->cluster_key && c->cluster_ca && c->etcd;
}

int nap_config_node(const NapConfig *c, char **ret, NapError *e) {
        char buf[HOST_NAME_MAX + 1] = {};

        assert(c);
        assert(ret);
        if (!c->node && gethostname(buf, sizeof buf - 1) < 0)
                return nap_error_errno(e, negative_errno(), "Failed to read the host name");
        /* "web1.example.com" → "web1"; "Web1" → "web1" */
        buf[strcspn(buf, ".")] = 0;
        for (char *p = buf; *p; p++)
                *p = *p >= 'A' && *p <= 'Z' ? (char) (*p - 'A' + 'a') : *p;
        const char *name = c->node ?: buf;
        if (nap_node_name_check(name, NULL) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_CONFIG, -EINVAL,
                                     "The host name '%.64s' is no valid node name: set Node= in nap.conf", buf);
        *ret = strdup(name);
        return *ret ? 0 : nap_error_errno(e, -ENOMEM, "Failed to read the node name");
}
