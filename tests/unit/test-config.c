/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model/config.h"
#include "nap-config.h"
#include "base/strv.h"

/* Collects warnings, one per line. */
typedef struct Warnings {
        char text[4096];
        unsigned n;
} Warnings;

static void collect(void *userdata, const char *message) {
        Warnings *w = userdata;
        snprintf(w->text + strlen(w->text), sizeof w->text - strlen(w->text), "%s\n", message);
        w->n++;
}

static NapConfig *parse_ok(const char *text, Warnings *w) {
        NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_new_default(&c), 0);
        int r = nap_config_parse(c, text, strlen(text), "nap.conf", w ? collect : NULL, w, &e);
        if (r < 0)
                print_error("unexpected failure: %s\n", e.message);
        assert_int_equal(r, 0);
        assert_int_equal(e.kind, NAP_ERROR_NONE);
        return c;
}

static void fails_n(const char *text, size_t size, int expected_r, const char *message) {
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_new_default(&c), 0);
        assert_int_equal(nap_config_parse(c, text, size, "nap.conf", NULL, NULL, &e), expected_r);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_CONFIG);
        assert_string_equal(e.message, message);
}

static void fails(const char *text, const char *message) {
        fails_n(text, strlen(text), -EINVAL, message);
}

static void fails_range(const char *text, const char *message) {
        fails_n(text, strlen(text), -ERANGE, message);
}

static void assert_defaults(const NapConfig *c) {
        assert_string_equal(c->root, "/var/lib/nap");
        assert_string_equal(c->instances_dir, "/etc/nap/instances");
        assert_int_equal(c->scope, NAP_SCOPE_SYSTEM);
        assert_null(c->host);
        assert_int_equal(c->port_min, 20000);
        assert_int_equal(c->port_max, 29999);
        assert_null(c->etcd);
        assert_string_equal(c->etcd_prefix, "/services");
        assert_string_equal(c->cluster_prefix, "/nap");
        assert_null(c->node);
        assert_null(c->labels);
        assert_int_equal(c->cpu_milli + c->memory + c->storage, 0);
        assert_int_equal(c->node_ttl, 10);
        assert_int_equal(nap_config_reconcile_grace_sec(c), 15); /* NodeTTL + 5 */
        assert_int_equal(c->discovery_ttl, 60);
        assert_string_equal(c->health_path, "/");
        assert_int_equal(c->health_check_sec, 30);
        assert_string_equal(c->authorized_keys, "/var/lib/nap/.ssh/authorized_keys");
        assert_int_equal(c->max_connections, 4096);
        assert_int_equal(c->max_connections_per_user, 1024);
}

static void test_scope_strings(void **state) {
        for (int s = 0; s < _NAP_SCOPE_MAX; s++) {
                assert_non_null(nap_scope_to_string(s));
                assert_int_equal(nap_scope_from_string(nap_scope_to_string(s)), s);
        }
        assert_string_equal(nap_scope_to_string(NAP_SCOPE_SYSTEM), "system");
        assert_string_equal(nap_scope_to_string(NAP_SCOPE_USER), "user");
        assert_null(nap_scope_to_string(_NAP_SCOPE_MAX));
        assert_null(nap_scope_to_string(-1));
        assert_int_equal(nap_scope_from_string("System"), -EINVAL);
        assert_int_equal(nap_scope_from_string(""), -EINVAL);
        assert_int_equal(nap_scope_from_string(NULL), -EINVAL);
}

static void test_defaults(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        assert_int_equal(nap_config_new_default(&c), 0);
        assert_defaults(c);
        assert_null(c->path);
        assert_null(nap_config_free(NULL));
}

static void test_empty_file(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("", NULL);
        assert_defaults(c);
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("# nothing\n; at all\n\n[Nap]\n", NULL);
        assert_defaults(d);
}

static void test_full(void **state) {
        Warnings w = {};
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok(
                "# nap.conf\n"
                "; another comment\n"
                "[Nap]\n"
                "Root=/srv/nap\n"
                "  Instances = /run/nap/instances/  \n"
                "Scope=user\r\n"
                "Host=node1.example.com\n"
                "PortRange=1024-65535\n"
                "Etcd=http://127.0.0.1:2379, https://[::1]:2379/ ,http://etcd\n"
                "DiscoveryTTL=2\n", &w);
        assert_string_equal(c->root, "/srv/nap");
        assert_string_equal(c->instances_dir, "/run/nap/instances/");
        assert_int_equal(c->scope, NAP_SCOPE_USER);
        assert_string_equal(c->host, "node1.example.com");
        assert_int_equal(c->port_min, 1024);
        assert_int_equal(c->port_max, 65535);
        assert_int_equal(strv_length(c->etcd), 3);
        assert_string_equal(c->etcd[0], "http://127.0.0.1:2379");
        assert_string_equal(c->etcd[1], "https://[::1]:2379");
        assert_string_equal(c->etcd[2], "http://etcd");
        assert_int_equal(c->discovery_ttl, 2);
        assert_int_equal(w.n, 0);
        assert_null(c->path); /* parse does not know a path; load sets it */
}

static void test_empty_value_resets(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok(
                "[Nap]\nRoot=/x\nInstances=/y\nScope=user\nHost=h\nPortRange=2000-3000\nEtcd=http://e\nDiscoveryTTL=9\n"
                "[Nap]\nRoot=\nInstances=\nScope=\nHost=\nPortRange=\nEtcd=\nDiscoveryTTL=\n", NULL);
        assert_defaults(c);
}

static void test_later_value_wins(void **state) {
        Warnings w = {};
        _cleanup_(nap_config_freep) NapConfig *c =
                parse_ok("[Nap]\nPortRange=2000-3000\nEtcd=http://a,http://b\n\nPortRange=4000-5000\nEtcd=http://c\n", &w);
        assert_int_equal(c->port_min, 4000);
        assert_int_equal(c->port_max, 5000);
        assert_int_equal(strv_length(c->etcd), 1);
        assert_string_equal(c->etcd[0], "http://c");
        assert_string_equal(w.text, "nap.conf:5: PortRange= is set again, the later value wins\n"
                                    "nap.conf:6: Etcd= is set again, the later value wins\n");
}

static void test_applies_on_top(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nRoot=/a\nDiscoveryTTL=10\n", NULL);
        NapError e = NAP_ERROR_NULL;
        const char *more = "[Nap]\nDiscoveryTTL=20\n";
        assert_int_equal(nap_config_parse(c, more, strlen(more), "drop-in.conf", NULL, NULL, &e), 0);
        assert_string_equal(c->root, "/a");
        assert_int_equal(c->discovery_ttl, 20);
}

static void test_warnings(void **state) {
        Warnings w = {};
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok(
                "Root=/early\n"
                "[Nap]\n"
                "Colour=blue\n"
                "root=/lowercase\n"
                "[Other]\n"
                "Root=/other\n"
                "Anything=goes\n"
                "[Nap]\n"
                "Scope=user\n", &w);
        assert_string_equal(w.text,
                "nap.conf:1: assignment outside of a section, ignoring\n"
                "nap.conf:3: unknown key 'Colour' in [Nap], ignoring\n"
                "nap.conf:4: unknown key 'root' in [Nap], ignoring\n"
                "nap.conf:5: unknown section [Other], ignoring\n");
        assert_string_equal(c->root, "/var/lib/nap");
        assert_int_equal(c->scope, NAP_SCOPE_USER);

        /* Without a callback, warnings are dropped and parsing still works. */
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nColour=blue\n[X]\n", NULL);
        assert_defaults(d);
}

static void test_syntax_errors(void **state) {
        fails("[Nap]\nRoot\n", "nap.conf:2: expected Key=Value, a [Section] or a comment, got 'Root'");
        fails("[Other]\njunk\n", "nap.conf:2: expected Key=Value, a [Section] or a comment, got 'junk'");
        fails("[Nap]\n=x\n", "nap.conf:2: assignment without a key");
        fails("[Nap\n", "nap.conf:1: invalid section header '[Nap'");
        fails("[]\n", "nap.conf:1: invalid section header '[]'");
        fails_n("[Nap]\nRoot=/a\0b\n", 16, -EINVAL, "nap.conf: contains a NUL byte at offset 13");
}

static void test_size_limit(void **state) {
        size_t n = NAP_CONFIG_MAX_SIZE + 1;
        _cleanup_free_ char *big = malloc(n);
        assert_non_null(big);
        memset(big, '#', n);
        fails_n(big, n, -EFBIG, "nap.conf: too large (65537 bytes, at most 65536)");

        /* Only size bytes are read: no NUL needed. */
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        assert_int_equal(nap_config_new_default(&c), 0);
        const char text[] = { '[', 'N', 'a', 'p', ']', '\n', 'j', 'u', 'n', 'k' };
        assert_int_equal(nap_config_parse(c, text, 6, "x", NULL, NULL, NULL), 0);
        assert_int_equal(nap_config_parse(c, big, n - 1, "x", NULL, NULL, NULL), 0);
}

static void test_paths(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nRoot=/\nInstances=//a//b/\n", NULL);
        assert_string_equal(c->root, "/");
        assert_string_equal(c->instances_dir, "//a//b/");

        fails("[Nap]\nRoot=var/lib/nap\n", "nap.conf:2: Root=: not an absolute, normalized path: 'var/lib/nap'");
        fails("[Nap]\nRoot=/var/../etc\n", "nap.conf:2: Root=: not an absolute, normalized path: '/var/../etc'");
        fails("[Nap]\nRoot=/var/..\n", "nap.conf:2: Root=: not an absolute, normalized path: '/var/..'");
        fails("[Nap]\nInstances=/a/./b\n", "nap.conf:2: Instances=: not an absolute, normalized path: '/a/./b'");
        fails("[Nap]\nInstances=~/x\n", "nap.conf:2: Instances=: not an absolute, normalized path: '~/x'");
        fails("[Nap]\nRoot=/a\x01z\n", "nap.conf:2: Root=: not an absolute, normalized path: '/a?z'");

        /* "..." and ".x" are ordinary names. */
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nRoot=/a/.../.x/..b\n", NULL);
        assert_string_equal(d->root, "/a/.../.x/..b");
}

static void test_scope(void **state) {
        fails("[Nap]\nScope=User\n", "nap.conf:2: Scope=: invalid scope 'User': expected 'system' or 'user'");
        fails("[Nap]\nScope=both\n", "nap.conf:2: Scope=: invalid scope 'both': expected 'system' or 'user'");
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nScope=user\nScope=system\n", NULL);
        assert_int_equal(c->scope, NAP_SCOPE_SYSTEM);
}

static void test_host(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nHost=10.0.0.7\n", NULL);
        assert_string_equal(c->host, "10.0.0.7");
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nHost=fe80::1\n", NULL);
        assert_string_equal(d->host, "fe80::1");
        fails("[Nap]\nHost=a b\n", "nap.conf:2: Host=: invalid host 'a b': expected a host name or an IP address");
        fails("[Nap]\nHost=-x\n", "nap.conf:2: Host=: invalid host '-x': expected a host name or an IP address");
        fails("[Nap]\nHost=a/b\n", "nap.conf:2: Host=: invalid host 'a/b': expected a host name or an IP address");
        fails("[Nap]\nHost=http://x\n", "nap.conf:2: Host=: invalid host 'http://x': expected a host name or an IP address");
        fails("[Nap]\nHost=a_b\n", "nap.conf:2: Host=: invalid host 'a_b': expected a host name or an IP address");
}

static void test_port_range(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nPortRange=1024-1024\n", NULL);
        assert_int_equal(c->port_min, 1024);
        assert_int_equal(c->port_max, 1024);

        fails("[Nap]\nPortRange=x\n", "nap.conf:2: PortRange=: invalid range 'x': expected LOW-HIGH");
        fails("[Nap]\nPortRange=20000\n", "nap.conf:2: PortRange=: invalid range '20000': expected LOW-HIGH");
        fails("[Nap]\nPortRange=20000-\n", "nap.conf:2: PortRange=: invalid range '20000-': expected LOW-HIGH");
        fails("[Nap]\nPortRange=-20000\n", "nap.conf:2: PortRange=: invalid range '-20000': expected LOW-HIGH");
        fails("[Nap]\nPortRange=20000 - 29999\n", "nap.conf:2: PortRange=: invalid range '20000 - 29999': expected LOW-HIGH");
        fails("[Nap]\nPortRange=+2000-3000\n", "nap.conf:2: PortRange=: invalid range '+2000-3000': expected LOW-HIGH");
        fails("[Nap]\nPortRange=2000-+3000\n", "nap.conf:2: PortRange=: invalid range '2000-+3000': expected LOW-HIGH");
        fails("[Nap]\nPortRange=2000-3000x\n", "nap.conf:2: PortRange=: invalid range '2000-3000x': expected LOW-HIGH");
        fails("[Nap]\nPortRange=0x800-3000\n", "nap.conf:2: PortRange=: invalid range '0x800-3000': expected LOW-HIGH");
        fails("[Nap]\nPortRange=99999999999999999999-1\n",
              "nap.conf:2: PortRange=: invalid range '99999999999999999999-1': expected LOW-HIGH");
        fails("[Nap]\nPortRange=4294967297-4294967298\n",
              "nap.conf:2: PortRange=: invalid range '4294967297-4294967298': expected LOW-HIGH");
        fails_range("[Nap]\nPortRange=1023-2000\n", "nap.conf:2: PortRange=: invalid range '1023-2000': need 1024 <= LOW <= HIGH <= 65535");
        fails_range("[Nap]\nPortRange=30000-20000\n", "nap.conf:2: PortRange=: invalid range '30000-20000': need 1024 <= LOW <= HIGH <= 65535");
        fails_range("[Nap]\nPortRange=20000-65536\n", "nap.conf:2: PortRange=: invalid range '20000-65536': need 1024 <= LOW <= HIGH <= 65535");
}

static void test_discovery_ttl(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nDiscoveryTTL=3600\n", NULL);
        assert_int_equal(c->discovery_ttl, 3600);
        fails_range("[Nap]\nDiscoveryTTL=1\n", "nap.conf:2: DiscoveryTTL=: 1 seconds is out of range 2..3600");
        fails_range("[Nap]\nDiscoveryTTL=3601\n", "nap.conf:2: DiscoveryTTL=: 3601 seconds is out of range 2..3600");
        fails_range("[Nap]\nDiscoveryTTL=0\n", "nap.conf:2: DiscoveryTTL=: 0 seconds is out of range 2..3600");
        fails("[Nap]\nDiscoveryTTL=60s\n", "nap.conf:2: DiscoveryTTL=: invalid number of seconds '60s'");
        fails("[Nap]\nDiscoveryTTL=-5\n", "nap.conf:2: DiscoveryTTL=: invalid number of seconds '-5'");
        fails("[Nap]\nDiscoveryTTL=ten\n", "nap.conf:2: DiscoveryTTL=: invalid number of seconds 'ten'");
        fails("[Nap]\nDiscoveryTTL=18446744073709551616\n",
              "nap.conf:2: DiscoveryTTL=: invalid number of seconds '18446744073709551616'");
}

static void test_health_check(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c =
                parse_ok("[Nap]\nHealthPath=/healthz?deep=1\nHealthCheckSec=5\n", NULL);
        assert_string_equal(c->health_path, "/healthz?deep=1");
        assert_int_equal(c->health_check_sec, 5);
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nHealthPath=/x\nHealthPath=\n", NULL);
        assert_string_equal(d->health_path, "/"); /* empty: the default */
        fails("[Nap]\nHealthPath=healthz\n", "nap.conf:2: HealthPath=: 'healthz' is not an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes, at most 255 bytes");
        fails("[Nap]\nHealthPath=/a b\n", "nap.conf:2: HealthPath=: '/a b' is not an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes, at most 255 bytes");
        fails("[Nap]\nHealthPath=/%zz\n", "nap.conf:2: HealthPath=: '/%zz' is not an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes, at most 255 bytes");
        fails("[Nap]\nHealthPath=/a#b\n", "nap.conf:2: HealthPath=: '/a#b' is not an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes, at most 255 bytes");
        fails_range("[Nap]\nHealthCheckSec=0\n", "nap.conf:2: HealthCheckSec=: 0 seconds is out of range 1..3600");
        fails("[Nap]\nHealthCheckSec=30s\n", "nap.conf:2: HealthCheckSec=: invalid number of seconds '30s'");
}

static void test_max_connections(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nMaxConnections=10\nMaxConnectionsPerUser=3\n", NULL);
        assert_int_equal(c->max_connections, 10);
        assert_int_equal(c->max_connections_per_user, 3);
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nMaxConnections=65536\nMaxConnectionsPerUser=\n", NULL);
        assert_int_equal(d->max_connections, 65536);
        assert_int_equal(d->max_connections_per_user, 1024);
        fails_range("[Nap]\nMaxConnections=0\n", "nap.conf:2: MaxConnections=: 0 connections is out of range 1..65536");
        fails_range("[Nap]\nMaxConnectionsPerUser=65537\n",
                    "nap.conf:2: MaxConnectionsPerUser=: 65537 connections is out of range 1..65536");
        fails("[Nap]\nMaxConnections=lots\n", "nap.conf:2: MaxConnections=: invalid number of connections 'lots'");
        fails("[Nap]\nMaxConnectionsPerUser=-1\n",
              "nap.conf:2: MaxConnectionsPerUser=: invalid number of connections '-1'");
}

static void test_rollout(void **state) {
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\n", NULL);
        assert_true(d->rollout_batch.percent);
        assert_int_equal(d->rollout_batch.value, 25);
        assert_int_equal(d->rollout_drain_sec, 1);
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nRolloutBatch=2\nRolloutDrainSec=0\n", NULL);
        assert_false(c->rollout_batch.percent);
        assert_int_equal(c->rollout_batch.value, 2);
        assert_int_equal(c->rollout_drain_sec, 0);
        _cleanup_(nap_config_freep) NapConfig *p = parse_ok("[Nap]\nRolloutBatch=100%\nRolloutBatch=\n", NULL);
        assert_true(p->rollout_batch.percent);
        assert_int_equal(p->rollout_batch.value, 25);
        fails_range("[Nap]\nRolloutBatch=0\n", "nap.conf:2: RolloutBatch=: '0' is not a number of instances "
                                               "(1..20000) or a percentage (1%..100%)");
        fails_range("[Nap]\nRolloutBatch=101%\n", "nap.conf:2: RolloutBatch=: '101%' is not a number of instances "
                                                  "(1..20000) or a percentage (1%..100%)");
        fails("[Nap]\nRolloutBatch=5 %\n", "nap.conf:2: RolloutBatch=: '5 %' is not a number of instances "
                                           "(1..20000) or a percentage (1%..100%)");
        fails("[Nap]\nRolloutBatch=-1\n", "nap.conf:2: RolloutBatch=: '-1' is not a number of instances "
                                          "(1..20000) or a percentage (1%..100%)");
        fails_range("[Nap]\nRolloutDrainSec=601\n", "nap.conf:2: RolloutDrainSec=: 601 seconds is out of range 0..600");
}

static void test_rollout_batch_size(void **state) {
        NapRolloutBatch quarter = { 25, true }, two = { 2, false }, all = { 100, true };
        assert_int_equal(nap_rollout_batch_size(quarter, 100), 25);
        assert_int_equal(nap_rollout_batch_size(quarter, 6), 2);  /* rounded up */
        assert_int_equal(nap_rollout_batch_size(quarter, 1), 1);
        assert_int_equal(nap_rollout_batch_size(quarter, 0), 1);
        assert_int_equal(nap_rollout_batch_size(two, 1), 1);      /* at most all */
        assert_int_equal(nap_rollout_batch_size(two, 7), 2);
        assert_int_equal(nap_rollout_batch_size(all, 7), 7);
        NapRolloutBatch b;
        assert_int_equal(nap_rollout_batch_parse("50%", &b), 0);
        assert_true(b.percent && b.value == 50);
        assert_int_equal(nap_rollout_batch_parse("", &b), -EINVAL);
        assert_int_equal(nap_rollout_batch_parse("%", &b), -EINVAL);
        assert_int_equal(nap_rollout_batch_parse("20001", &b), -ERANGE);
        assert_int_equal(nap_rollout_batch_parse("1x", &b), -EINVAL);
}

static void test_cluster(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok(
                "[Nap]\nClusterPrefix=/c/x\nNode=h1\nLabels=zone=a,gpu=1\nCPU=1.5\nMemory=2G\nStorage=10G\nNodeTTL=5\n",
                NULL);
        assert_string_equal(c->cluster_prefix, "/c/x");
        assert_string_equal(c->node, "h1");
        assert_string_equal(c->labels[0], "gpu=1");
        assert_int_equal(c->cpu_milli, 1500);
        assert_int_equal(c->memory, UINT64_C(2) << 30);
        assert_int_equal(c->storage, UINT64_C(10) << 30);
        assert_int_equal(c->node_ttl, 5);
        assert_int_equal(nap_config_reconcile_grace_sec(c), 10); /* follows NodeTTL= */
        _cleanup_(nap_config_freep) NapConfig *g = parse_ok("[Nap]\nReconcileGraceSec=7\nNodeTTL=3\n", NULL);
        assert_int_equal(nap_config_reconcile_grace_sec(g), 7);
        fails_range("[Nap]\nReconcileGraceSec=3601\n", "nap.conf:2: ReconcileGraceSec=: 3601 seconds is out of range 0..3600");
        assert_false(c->cluster_apps); /* by default */
        _cleanup_(nap_config_freep) NapConfig *apps = parse_ok("[Nap]\nClusterApps=yes\n", NULL);
        assert_true(apps->cluster_apps);
        _cleanup_(nap_config_freep) NapConfig *off = parse_ok("[Nap]\nClusterApps=yes\nClusterApps=off\n", NULL);
        assert_false(off->cluster_apps);
        fails("[Nap]\nClusterApps=maybe\n", "nap.conf:2: ClusterApps=: expected yes or no, got 'maybe'");
        fails("[Nap]\nNode=H/1\n", "nap.conf:2: Node=: Invalid node name 'H/1': expected a DNS label (a-z, 0-9, '-', at most 63)");
        fails("[Nap]\nCPU=0\n", "nap.conf:2: CPU=: Invalid CPU amount '0': must be more than 0 and at most 1024 CPUs");
        fails("[Nap]\nMemory=lots\n",
              "nap.conf:2: Memory=: Invalid size amount 'lots': expected bytes, or a number with K, M, G or T (powers of 1024)");
        fails("[Nap]\nLabels=gpu\n",
              "nap.conf:2: Labels=: Invalid labels 'gpu': expected key=value,… (keys a-z 0-9 . _ -, unique, at most 32)");
        fails_range("[Nap]\nNodeTTL=1\n", "nap.conf:2: NodeTTL=: 1 seconds is out of range 2..600");
        fails("[Nap]\nClusterPrefix=nap\n",
              "nap.conf:2: ClusterPrefix=: invalid key prefix 'nap': expected /NAME[/NAME…], no trailing '/'");

        _cleanup_free_ char *node = NULL;
        assert_int_equal(nap_config_node(c, &node, NULL), 0);
        assert_string_equal(node, "h1");
}

static void test_forwarding(void **state) {
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nEtcd=http://a:2379\n", NULL);
        assert_null(d->cluster_certificate);
        assert_int_equal(d->cluster_gate_port, 7475);
        assert_false(nap_config_forwards(d));

        _cleanup_(nap_config_freep) NapConfig *c = parse_ok(
                "[Nap]\nEtcd=http://a:2379\nClusterCertificate=/etc/nap/h1.crt\nClusterKey=/etc/nap/h1.key\n"
                "ClusterCA=/etc/nap/ca.crt\nClusterGatePort=8000\n",
                NULL);
        assert_string_equal(c->cluster_certificate, "/etc/nap/h1.crt");
        assert_string_equal(c->cluster_key, "/etc/nap/h1.key");
        assert_string_equal(c->cluster_ca, "/etc/nap/ca.crt");
        assert_int_equal(c->cluster_gate_port, 8000);
        assert_true(nap_config_forwards(c));
        /* without Etcd= nothing finds an instance's node */
        _cleanup_(nap_config_freep) NapConfig *n = parse_ok(
                "[Nap]\nClusterCertificate=/a.crt\nClusterKey=/a.key\nClusterCA=/ca.crt\n", NULL);
        assert_false(nap_config_forwards(n));

        fails("[Nap]\nClusterCA=ca.crt\n", "nap.conf:2: ClusterCA=: not an absolute, normalized path: 'ca.crt'");
        fails_range("[Nap]\nClusterGatePort=0\n", "nap.conf:2: ClusterGatePort=: 0 port is out of range 1..65535");
}

static void test_etcd_prefix(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nEtcdPrefix=/nap/prod\n", NULL);
        assert_string_equal(c->etcd_prefix, "/nap/prod");
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nEtcdPrefix=/x\nEtcdPrefix=\n", NULL);
        assert_string_equal(d->etcd_prefix, "/services");
        fails("[Nap]\nEtcdPrefix=services\n",
              "nap.conf:2: EtcdPrefix=: invalid key prefix 'services': expected /NAME[/NAME…], no trailing '/'");
        fails("[Nap]\nEtcdPrefix=/services/\n",
              "nap.conf:2: EtcdPrefix=: invalid key prefix '/services/': expected /NAME[/NAME…], no trailing '/'");
        fails("[Nap]\nEtcdPrefix=/a//b\n",
              "nap.conf:2: EtcdPrefix=: invalid key prefix '/a//b': expected /NAME[/NAME…], no trailing '/'");
        fails("[Nap]\nEtcdPrefix=/a/../b\n",
              "nap.conf:2: EtcdPrefix=: invalid key prefix '/a/../b': expected /NAME[/NAME…], no trailing '/'");
}

static void test_authorized_keys(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nAuthorizedKeys=/home/nap/.ssh/authorized_keys\n", NULL);
        assert_string_equal(c->authorized_keys, "/home/nap/.ssh/authorized_keys");
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("[Nap]\nAuthorizedKeys=/x\nAuthorizedKeys=\n", NULL);
        assert_string_equal(d->authorized_keys, "/var/lib/nap/.ssh/authorized_keys");
        fails("[Nap]\nAuthorizedKeys=.ssh/authorized_keys\n",
              "nap.conf:2: AuthorizedKeys=: not an absolute, normalized path: '.ssh/authorized_keys'");
        fails("[Nap]\nAuthorizedKeys=/var/lib/nap/../../etc/x\n",
              "nap.conf:2: AuthorizedKeys=: not an absolute, normalized path: '/var/lib/nap/../../etc/x'");
}

static void test_replica(void **state) {
        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("", NULL);
        assert_null(d->replica_key);
        assert_string_equal(d->replica_known_hosts, "/var/lib/nap/.ssh/known_hosts");
        assert_string_equal(d->replica_user, "nap");
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok(
                "[Nap]\nReplicaKey=/var/lib/nap/.ssh/replica\nReplicaKnownHosts=/etc/nap/known_hosts\nReplicaUser=git\n",
                NULL);
        assert_string_equal(c->replica_key, "/var/lib/nap/.ssh/replica");
        assert_string_equal(c->replica_known_hosts, "/etc/nap/known_hosts");
        assert_string_equal(c->replica_user, "git");
        _cleanup_(nap_config_freep) NapConfig *e = parse_ok("[Nap]\nReplicaKey=/x\nReplicaKey=\nReplicaUser=\n", NULL);
        assert_null(e->replica_key);
        assert_string_equal(e->replica_user, "nap");
        fails("[Nap]\nReplicaKey=key\n", "nap.conf:2: ReplicaKey=: not an absolute, normalized path: 'key'");
        fails("[Nap]\nReplicaUser=Root!\n", "nap.conf:2: ReplicaUser=: invalid user name 'Root!'");
}

static void test_etcd(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c =
                parse_ok("[Nap]\nEtcd=https://etcd-1.example.com:2379/,http://10.1.2.3,http://[fe80::1]\n", NULL);
        assert_int_equal(strv_length(c->etcd), 3);
        assert_string_equal(c->etcd[0], "https://etcd-1.example.com:2379");
        assert_string_equal(c->etcd[1], "http://10.1.2.3");
        assert_string_equal(c->etcd[2], "http://[fe80::1]");

        static const char *const bad[] = {
                "ftp://etcd", "etcd:2379", "http://", "http:///", "http://:2379", "http://etcd:",
                "http://etcd:0", "http://etcd:65536", "http://etcd:x", "http://user@etcd", "http://etcd/v3",
                "http://etcd:2379/v3", "http://[::1", "http://[]", "http://[::1]x", "http://::1",
                "HTTP://etcd", "http://et cd", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char text[256], message[256];
                snprintf(text, sizeof text, "[Nap]\nEtcd=http://good:2379,%s\n", bad[i]);
                snprintf(message, sizeof message,
                         "nap.conf:2: Etcd=: invalid URL '%s': expected http(s)://HOST[:PORT]", bad[i]);
                fails(text, message);
        }
}

static void test_long_values_are_cut_in_messages(void **state) {
        char text[512], message[512];
        char v[201];
        memset(v, 'x', 200);
        v[200] = 0;
        snprintf(text, sizeof text, "[Nap]\nScope=%s\n", v);
        snprintf(message, sizeof message,
                 "nap.conf:2: Scope=: invalid scope '%.64s…': expected 'system' or 'user'", v);
        fails(text, message);
}

/* ---- loading ---- */

static char *write_temp(const char *text) {
        char *path = strdup("/tmp/test-config-XXXXXX");
        assert_non_null(path);
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        return path;
}

static void test_load_from_env(void **state) {
        _cleanup_free_ char *path = write_temp("[Nap]\nRoot=/tmp/nap-root\nUnknown=1\n");
        Warnings w = {};
        assert_int_equal(setenv("NAP_CONFIG", path, 1), 0);
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_load(&c, collect, &w, &e), 0);
        assert_string_equal(c->root, "/tmp/nap-root");
        assert_string_equal(c->path, path);
        char expected[256];
        snprintf(expected, sizeof expected, "%s:3: unknown key 'Unknown' in [Nap], ignoring\n", path);
        assert_string_equal(w.text, expected);
        unlink(path);
        unsetenv("NAP_CONFIG");
}

static void test_load_bad_value_names_file(void **state) {
        _cleanup_free_ char *path = write_temp("[Nap]\n\nPortRange=x\n");
        assert_int_equal(setenv("NAP_CONFIG", path, 1), 0);
        NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_load(&c, NULL, NULL, &e), -EINVAL);
        assert_null(c);
        char expected[256];
        snprintf(expected, sizeof expected, "%s:3: PortRange=: invalid range 'x': expected LOW-HIGH", path);
        assert_string_equal(e.message, expected);
        unlink(path);
        unsetenv("NAP_CONFIG");
}

static void test_load_env_missing(void **state) {
        assert_int_equal(setenv("NAP_CONFIG", "/nonexistent/nap.conf", 1), 0);
        NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_load(&c, NULL, NULL, &e), -ENOENT);
        assert_null(c);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_CONFIG);
        assert_string_equal(e.message, "Failed to read /nonexistent/nap.conf (NAP_CONFIG): No such file or directory");

        assert_int_equal(setenv("NAP_CONFIG", "", 1), 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_load(&c, NULL, NULL, &e), -EINVAL);
        assert_string_equal(e.message, "NAP_CONFIG is set but empty");
        unsetenv("NAP_CONFIG");
}

static void test_load_too_big(void **state) {
        _cleanup_free_ char *big = malloc(NAP_CONFIG_MAX_SIZE + 2);
        memset(big, '#', NAP_CONFIG_MAX_SIZE + 1);
        big[NAP_CONFIG_MAX_SIZE + 1] = 0;
        _cleanup_free_ char *path = write_temp(big);
        assert_int_equal(setenv("NAP_CONFIG", path, 1), 0);
        NapConfig *c = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_config_load(&c, NULL, NULL, &e), -EFBIG);
        char expected[256];
        snprintf(expected, sizeof expected, "%s: too large (more than 65536 bytes)", path);
        assert_string_equal(e.message, expected);
        unlink(path);
        unsetenv("NAP_CONFIG");
}

static void test_load_default_path(void **state) {
        unsetenv("NAP_CONFIG");
        if (access(NAP_CONFIG_DEFAULT_PATH, F_OK) >= 0 || errno != ENOENT)
                skip(); /* this machine has a nap.conf; its contents are not ours to test */
        _cleanup_(nap_config_freep) NapConfig *c = NULL;
        assert_int_equal(nap_config_load(&c, NULL, NULL, NULL), 0);
        assert_defaults(c);
        assert_null(c->path);
}

static void test_host_lookup(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = parse_ok("[Nap]\nHost=pub.example\n", NULL);
        _cleanup_free_ char *h = NULL;
        assert_int_equal(nap_config_host(c, &h), 0);
        assert_string_equal(h, "pub.example");

        _cleanup_(nap_config_freep) NapConfig *d = parse_ok("", NULL);
        _cleanup_free_ char *h2 = NULL;
        char buf[HOST_NAME_MAX + 1] = {};
        assert_int_equal(gethostname(buf, sizeof buf - 1), 0);
        assert_int_equal(nap_config_host(d, &h2), 0);
        assert_string_equal(h2, buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scope_strings),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_empty_file),
                cmocka_unit_test(test_full),
                cmocka_unit_test(test_empty_value_resets),
                cmocka_unit_test(test_later_value_wins),
                cmocka_unit_test(test_applies_on_top),
                cmocka_unit_test(test_warnings),
                cmocka_unit_test(test_syntax_errors),
                cmocka_unit_test(test_size_limit),
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_scope),
                cmocka_unit_test(test_host),
                cmocka_unit_test(test_port_range),
                cmocka_unit_test(test_discovery_ttl),
                cmocka_unit_test(test_health_check),
                cmocka_unit_test(test_max_connections),
                cmocka_unit_test(test_rollout),
                cmocka_unit_test(test_rollout_batch_size),
                cmocka_unit_test(test_cluster),
                cmocka_unit_test(test_forwarding),
                cmocka_unit_test(test_etcd_prefix),
                cmocka_unit_test(test_authorized_keys),
                cmocka_unit_test(test_replica),
                cmocka_unit_test(test_etcd),
                cmocka_unit_test(test_long_values_are_cut_in_messages),
                cmocka_unit_test(test_load_from_env),
                cmocka_unit_test(test_load_bad_value_names_file),
                cmocka_unit_test(test_load_env_missing),
                cmocka_unit_test(test_load_too_big),
                cmocka_unit_test(test_load_default_path),
                cmocka_unit_test(test_host_lookup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
