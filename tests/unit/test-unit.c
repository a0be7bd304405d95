/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/strv.h"
#include "model/unit.h"

static void assert_exec_word(const char *word, const char *expected) {
        _cleanup_free_ char *q = unit_quote_exec_word(word);
        assert_non_null(q);
        assert_string_equal(q, expected);
}

static void test_quote_exec_word(void **state) {
        assert_exec_word("python3", "\"python3\"");
        assert_exec_word("", "\"\"");
        assert_exec_word("two words", "\"two words\"");
        assert_exec_word("100%", "\"100%%\"");
        assert_exec_word("%i%%", "\"%%i%%%%\"");
        assert_exec_word("$HOME", "\"$$HOME\"");
        assert_exec_word("${PORT}$", "\"$${PORT}$$\"");
        assert_exec_word("back\\slash", "\"back\\\\slash\"");
        assert_exec_word("say \"hi\"", "\"say \\\"hi\\\"\"");
        assert_exec_word("it's", "\"it's\"");
        assert_exec_word(";", "\";\"");
        assert_exec_word("ünï ✓", "\"ünï ✓\"");
}

static void test_quote_refuses_control(void **state) {
        static const char *const bad[] = { "a\nb", "tab\there", "\x1b[31m", "del\x7f", "\r" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                errno = 0;
                assert_null(unit_quote_exec_word(bad[i]));
                assert_int_equal(errno, EINVAL);
                assert_null(unit_quote_word(bad[i]));
        }
}

static void test_quote_word_keeps_dollar(void **state) {
        _cleanup_free_ char *q = unit_quote_word("/srv/$x/100%/a\"b");
        assert_string_equal(q, "\"/srv/$x/100%%/a\\\"b\"");
}

static void test_format_exec(void **state) {
        char *argv[] = { "python3", "-c", "print('$x %d')", "", NULL };
        _cleanup_free_ char *s = NULL;
        assert_int_equal(unit_format_exec(argv, &s), 0);
        assert_string_equal(s, "\"python3\" \"-c\" \"print('$$x %%d')\" \"\"");
}

static void test_format_exec_refuses(void **state) {
        char *prefixed[][2] = { { "-x", NULL }, { "@x", NULL }, { ":x", NULL }, { "+x", NULL }, { "!x", NULL } };
        char *empty[] = { "", NULL }, *none[] = { NULL }, *ctl[] = { "a", "b\n", NULL };
        char *s = NULL;
        for (size_t i = 0; i < ELEMENTSOF(prefixed); i++)
                assert_int_equal(unit_format_exec(prefixed[i], &s), -EINVAL);
        assert_int_equal(unit_format_exec(empty, &s), -EINVAL);
        assert_int_equal(unit_format_exec(none, &s), -EINVAL);
        assert_int_equal(unit_format_exec(NULL, &s), -EINVAL);
        assert_int_equal(unit_format_exec(ctl, &s), -EINVAL);
        assert_null(s);
        /* Only the first word is special. */
        char *later[] = { "python3", "-x", "@y", NULL };
        assert_int_equal(unit_format_exec(later, &s), 0);
        assert_string_equal(s, "\"python3\" \"-x\" \"@y\"");
        free(s);
}

static void test_escape_value(void **state) {
        char *s = NULL;
        assert_int_equal(unit_escape_value("/srv/a b/100%", &s), 0);
        assert_string_equal(s, "/srv/a b/100%%");
        free(s);
        s = NULL;
        assert_int_equal(unit_escape_value("", &s), -EINVAL);
        assert_int_equal(unit_escape_value(" lead", &s), -EINVAL);
        assert_int_equal(unit_escape_value("trail ", &s), -EINVAL);
        assert_int_equal(unit_escape_value("trail\t", &s), -EINVAL);
        assert_int_equal(unit_escape_value("continued\\", &s), -EINVAL);
        assert_int_equal(unit_escape_value("new\nline", &s), -EINVAL);
        assert_null(s);
}

static void test_user_name(void **state) {
        char buf[NAP_UNIT_USER_NAME_MAX + 1];
        assert_string_equal(nap_unit_user_name("alice", buf), "nap-alice");
        /* 27 bytes still fit "nap-" + USER in 31. */
        assert_string_equal(nap_unit_user_name("abcdefghijklmnopqrstuvwxyz0", buf),
                            "nap-abcdefghijklmnopqrstuvwxyz0");
        /* FNV-1a 32 of 28 'a's, computed independently. */
        assert_string_equal(nap_unit_user_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaa", buf),
                            "nap_aaaaaaaaaaaaaaaaaa_068a66b1");
        char other[NAP_UNIT_USER_NAME_MAX + 1];
        nap_unit_user_name("aaaaaaaaaaaaaaaaaaaaaaaaaaab", other);
        assert_string_not_equal(buf, other);
        assert_int_equal(strlen(nap_unit_user_name("abcdefghijklmnopqrstuvwxyz012345", buf)),
                         NAP_UNIT_USER_NAME_MAX);
}

typedef int (*writer)(FILE *f, const NapManifest *m, NapScope scope, const NapConfig *c);

static NapConfig *config(void) {
        NapConfig *c = NULL;
        assert_int_equal(nap_config_new_default(&c), 0);
        free(c->instances_dir);
        c->instances_dir = strdup("/etc/nap/instances");
        return c;
}

static NapManifest *manifest(const char *directory, char **argv) {
        NapManifest *m = calloc(1, sizeof *m);
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_from_parts("alice", "web", &m->instance.service, &e), 0);
        m->instance.kind = NAP_KIND_COMMON;
        m->instance.number = 4;
        m->argv = strv_copy(argv);
        m->directory = strdup(directory);
        m->port = 20004;
        m->enabled = true;
        return m;
}

static char *render_template(NapScope scope) {
        _cleanup_(nap_config_freep) NapConfig *c = config();
        NapService s;
        NapError e = NAP_ERROR_NULL;
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        assert_int_equal(nap_service_from_parts("alice", "web", &s, &e), 0);
        assert_int_equal(nap_unit_write_template(f, &s, NAP_KIND_COMMON, scope, c), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static int render_dropin(const NapManifest *m, NapScope scope, char **ret) {
        _cleanup_(nap_config_freep) NapConfig *c = config();
        size_t size;
        FILE *f = open_memstream(ret, &size);
        int r = nap_unit_write_instance_dropin(f, m, scope, c);
        assert_int_equal(fclose(f), 0);
        return r;
}

static void assert_line(const char *text, const char *line, bool present) {
        _cleanup_free_ char *needle = NULL;
        assert_int_equal(asprintf(&needle, "\n%s\n", line) > 0, 1);
        if (!!strstr(text, needle) != present)
                print_error("line '%s' %s in:\n%s\n", line, present ? "missing" : "unexpected", text);
        assert_int_equal(!!strstr(text, needle), present);
}

static void test_template_system(void **state) {
        _cleanup_free_ char *t = render_template(NAP_SCOPE_SYSTEM);
        assert_true(startswith(t, "# Automatically generated by nap-generator\n"));
        assert_line(t, "[Unit]", true);
        assert_line(t, "Description=nap app alice_web, common instance %i", true);
        assert_line(t, "SourcePath=/etc/nap/instances", true);
        assert_line(t, "[Service]", true);
        assert_line(t, "Restart=on-failure", true);
        assert_line(t, "RestartSec=2s", true);
        assert_line(t, "DynamicUser=yes", true);
        assert_line(t, "User=nap-alice", true);
        assert_line(t, "NoNewPrivileges=yes", true);
        assert_line(t, "ProtectSystem=strict", true);
        assert_line(t, "MemoryDenyWriteExecute=no", true);
        assert_null(strstr(t, "ExecStart="));
}

static void test_template_user(void **state) {
        _cleanup_free_ char *t = render_template(NAP_SCOPE_USER);
        assert_line(t, "Restart=on-failure", true);
        assert_null(strstr(t, "User="));
        assert_null(strstr(t, "StateDirectory="));
        assert_null(strstr(t, "After=network.target"));
        assert_line(t, "PrivateUsers=yes", true);
}

static void test_dropin(void **state) {
        char *argv[] = { "python3", "server.py", "--greeting", "50% $off", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *m = manifest("/srv/nap/apps/alice/alice_web_4", argv);
        _cleanup_free_ char *sys = NULL, *user = NULL;

        assert_int_equal(render_dropin(m, NAP_SCOPE_SYSTEM, &sys), 0);
        assert_true(startswith(sys, "# Automatically generated by nap-generator\n"));
        assert_line(sys, "SourcePath=/etc/nap/instances/alice_web_common@4.json", true);
        assert_line(sys, "RequiresMountsFor=\"/srv/nap/apps/alice/alice_web_4\"", true);
        assert_line(sys, "WorkingDirectory=/srv/nap/apps/alice/alice_web_4", true);
        assert_line(sys, "Environment=PORT=20004", true);
        assert_line(sys, "ExecStart=\"python3\" \"server.py\" \"--greeting\" \"50%% $$off\"", true);
        assert_null(strstr(sys, "ReadWritePaths="));
        assert_null(strstr(sys, "BindReadOnlyPaths="));

        assert_int_equal(render_dropin(m, NAP_SCOPE_USER, &user), 0);
        assert_line(user, "ReadWritePaths=\"/srv/nap/apps/alice/alice_web_4\"", true);
}

/* The app's configuration: one quoted Environment= line per variable,
 * sorted; '%' doubled (specifiers), '\\' and '"' escaped (unquoting), '$'
 * and ' left alone (Environment= expands no variables). What systemd makes
 * of these lines is tests/integration/test-lifecycle.sh's: the app gets
 * the values exactly. */
static void test_dropin_environment(void **state) {
        char *argv[] = { "app", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *m = manifest("/srv/t", argv);
        _cleanup_free_ char *d = NULL;
        assert_int_equal(nap_params_new(&m->environment), 0);
        assert_int_equal(nap_params_set(m->environment, "Z_LAST", "z", NULL), 0);
        assert_int_equal(nap_params_set(m->environment, "HOSTILE", "50% $HOME ${X} \"q\" \\n 'it' %n", NULL), 0);
        assert_int_equal(nap_params_set(m->environment, "EMPTY", "", NULL), 0);
        assert_int_equal(render_dropin(m, NAP_SCOPE_SYSTEM, &d), 0);
        assert_line(d, "Environment=PORT=20004", true);
        assert_line(d, "Environment=\"EMPTY=\"", true);
        assert_line(d, "Environment=\"HOSTILE=50%% $HOME ${X} \\\"q\\\" \\\\n 'it' %%n\"", true);
        assert_line(d, "Environment=\"Z_LAST=z\"", true);
        assert_true(strstr(d, "EMPTY=") < strstr(d, "HOSTILE=") && strstr(d, "HOSTILE=") < strstr(d, "Z_LAST="));
}

static void test_dropin_without_environment(void **state) {
        char *argv[] = { "app", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *m = manifest("/srv/t", argv);
        _cleanup_free_ char *d = NULL;
        assert_int_equal(render_dropin(m, NAP_SCOPE_SYSTEM, &d), 0);
        assert_null(strstr(d, "Environment=\""));
}

static void test_dropin_relative_command(void **state) {
        char *argv[] = { "./bin/app", "x", NULL }, *bare[] = { "app", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *m = manifest("/srv/t", argv), *b = manifest("/srv/t", bare);
        _cleanup_free_ char *d = NULL, *e = NULL;
        assert_int_equal(render_dropin(m, NAP_SCOPE_SYSTEM, &d), 0);
        assert_line(d, "ExecStart=@\"/srv/t/bin/app\" \"./bin/app\" \"x\"", true);
        assert_int_equal(render_dropin(b, NAP_SCOPE_SYSTEM, &e), 0);
        assert_line(e, "ExecStart=\"app\"", true);
}

static void test_dropin_hidden_trees(void **state) {
        char *argv[] = { "/bin/app", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *home = manifest("/home/alice/apps/x", argv),
                                                  *tmp = manifest("/var/tmp/x", argv),
                                                  *near = manifest("/homework/x", argv);
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(render_dropin(home, NAP_SCOPE_SYSTEM, &a), 0);
        assert_line(a, "ProtectHome=tmpfs", true);
        assert_line(a, "BindReadOnlyPaths=\"/home/alice/apps/x\"", true);
        assert_int_equal(render_dropin(tmp, NAP_SCOPE_USER, &b), 0);
        assert_line(b, "ProtectHome=tmpfs", false);
        assert_line(b, "BindPaths=\"/var/tmp/x\"", true);
        assert_int_equal(render_dropin(near, NAP_SCOPE_SYSTEM, &c), 0);
        assert_null(strstr(c, "Bind"));
}

static void test_dropin_refuses(void **state) {
        char *argv[] = { "/bin/app", NULL }, *dash[] = { "-app", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *trail = manifest("/srv/x ", argv),
                                                  *colon = manifest("/home/a:b", argv),
                                                  *prefix = manifest("/srv/x", dash);
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(render_dropin(trail, NAP_SCOPE_SYSTEM, &a), -EINVAL);
        assert_int_equal(render_dropin(colon, NAP_SCOPE_SYSTEM, &b), -EINVAL);
        assert_int_equal(render_dropin(prefix, NAP_SCOPE_SYSTEM, &c), -EINVAL);
}

static void test_dropin_dollar_program(void **state) {
        char *abs[] = { "/opt/a$b/server", "$5", NULL }, *rel[] = { "./run", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *a = manifest("/srv/t", abs), *b = manifest("/srv/$t", rel);
        _cleanup_free_ char *d = NULL, *e = NULL;
        /* The path is taken literally, argv[0] gets "$$" turned into "$". */
        assert_int_equal(render_dropin(a, NAP_SCOPE_SYSTEM, &d), 0);
        assert_line(d, "ExecStart=@\"/opt/a$b/server\" \"/opt/a$$b/server\" \"$$5\"", true);
        assert_int_equal(render_dropin(b, NAP_SCOPE_SYSTEM, &e), 0);
        assert_line(e, "ExecStart=@\"/srv/$t/run\" \"./run\"", true);
}

static NapConfig *etcd_config(void) {
        NapConfig *c = config();
        c->etcd = strv_split("http://127.0.0.1:2379", ',');
        assert_non_null(c->etcd);
        return c;
}

static char *render_app_template(const NapConfig *c, NapKind kind) {
        NapService s;
        NapError e = NAP_ERROR_NULL;
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        assert_int_equal(nap_service_from_parts("alice", "web", &s, &e), 0);
        assert_int_equal(nap_unit_write_template(f, &s, kind, NAP_SCOPE_SYSTEM, c), 0);
        assert_int_equal(fclose(f), 0);
        return buf;
}

static int render_discovery(const NapConfig *c, NapScope scope, const char *binary, char **ret) {
        NapService s;
        NapError e = NAP_ERROR_NULL;
        size_t size;
        FILE *f = open_memstream(ret, &size);
        assert_int_equal(nap_service_from_parts("alice", "web", &s, &e), 0);
        int r = nap_unit_write_discovery_template(f, &s, scope, c, binary);
        assert_int_equal(fclose(f), 0);
        return r;
}

static void test_template_wants_discovery(void **state) {
        _cleanup_(nap_config_freep) NapConfig *plain = config(), *etcd = etcd_config();
        _cleanup_free_ char *a = render_app_template(plain, NAP_KIND_COMMON),
                            *b = render_app_template(etcd, NAP_KIND_COMMON),
                            *m = render_app_template(etcd, NAP_KIND_MPI_SLAVE);
        assert_false(nap_unit_has_discovery(NAP_KIND_COMMON, plain));
        assert_true(nap_unit_has_discovery(NAP_KIND_COMMON, etcd));
        assert_false(nap_unit_has_discovery(NAP_KIND_MPI_MASTER, etcd));
        assert_null(strstr(a, "discovery"));
        assert_line(b, "Wants=alice_web_discovery@%i.service", true);
        assert_null(strstr(m, "discovery"));
}

static void test_discovery_template_system(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = etcd_config();
        _cleanup_free_ char *t = NULL;
        char name[NAP_UNIT_NAME_MAX];
        NapService s;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(nap_service_from_parts("alice", "web", &s, &e), 0);
        assert_string_equal(nap_unit_discovery_template_name(&s, name), "alice_web_discovery@.service");
        assert_int_equal(render_discovery(c, NAP_SCOPE_SYSTEM, NAP_DISCOVERY_BINARY_DEFAULT, &t), 0);
        assert_true(startswith(t, "# Automatically generated by nap-generator\n"));
        assert_line(t, "BindsTo=alice_web_common@%i.service", true);
        assert_line(t, "After=alice_web_common@%i.service", true);
        assert_line(t, "PartOf=alice_web_common@%i.service", true);
        assert_line(t, "RequiresMountsFor=\"/etc/nap/instances\"", true);
        assert_line(t, "Type=notify", true);
        assert_line(t, "NotifyAccess=main", true);
        assert_line(t, "ExecStart=\"" NAP_LIBEXECDIR "/nap-discovery\" \"alice_web_common@%i\"", true);
        assert_line(t, "WatchdogSec=30s", true);
        assert_line(t, "Restart=on-failure", true);
        assert_line(t, "TimeoutStopSec=10s", true);
        assert_line(t, "DynamicUser=yes", true);
        assert_line(t, "User=nap_discovery", true);
        assert_line(t, "MemoryDenyWriteExecute=yes", true);
        assert_line(t, "MemoryDenyWriteExecute=no", false);
        assert_line(t, "[X-Fleet]", true);
        assert_line(t, "MachineOf=alice_web_common@%i.service", true);
        /* The default configuration needs no pinning and hides nothing. */
        assert_null(strstr(t, "Environment="));
        assert_null(strstr(t, "BindReadOnlyPaths="));
        assert_null(strstr(t, "ProtectHome=tmpfs"));
        assert_null(strstr(t, "[Install]"));
        assert_null(strstr(t, "ReadWritePaths="));
}

static void test_discovery_template_user(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = etcd_config();
        _cleanup_free_ char *t = NULL;
        _cleanup_free_ char *u = NULL;
        assert_int_equal(render_discovery(c, NAP_SCOPE_USER, "/build/helpers/nap-discovery", &t), 0);
        assert_null(strstr(t, "User="));
        assert_line(t, "PrivateUsers=yes", true);
        assert_line(t, "ExecStart=\"/build/helpers/nap-discovery\" \"alice_web_common@%i\"", true);
        /* The manager's notification socket, under /run/user, and nothing else. */
        assert_line(t, "ProtectHome=tmpfs", true);
        assert_line(t, "BindReadOnlyPaths=%t/systemd/notify", true);
        assert_ptr_equal(strstr(t, "BindReadOnlyPaths="), strstr(t, "BindReadOnlyPaths=%t/systemd/notify"));
        assert_null(strstr(strstr(t, "BindReadOnlyPaths=") + 1, "BindReadOnlyPaths="));
        /* A build tree in a home directory is bound in, or it could not run. */
        assert_int_equal(render_discovery(c, NAP_SCOPE_USER, "/home/dev/nap/build/nap-discovery", &u), 0);
        assert_line(u, "ProtectHome=tmpfs", true);
        assert_line(u, "BindReadOnlyPaths=\"/home/dev/nap/build/nap-discovery\"", true);
}

static void test_discovery_watchdog(void **state) {
        static const struct { unsigned ttl; const char *line; } t[] = {
                { 60, "WatchdogSec=30s" }, { 90, "WatchdogSec=45s" }, { 3600, "WatchdogSec=1800s" },
                { 31, "WatchdogSec=15s" }, { 2, "WatchdogSec=15s" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(nap_config_freep) NapConfig *c = etcd_config();
                _cleanup_free_ char *u = NULL;
                c->discovery_ttl = t[i].ttl;
                assert_int_equal(render_discovery(c, NAP_SCOPE_SYSTEM, "/x/nap-discovery", &u), 0);
                assert_line(u, t[i].line, true);
        }
}

/* The configuration the generator read ($NAP_CONFIG) is the one the sidecar
 * reads, made visible where the sandbox would hide it. */
static void test_discovery_hidden_config(void **state) {
        _cleanup_(nap_config_freep) NapConfig *c = etcd_config(), *d = etcd_config();
        _cleanup_free_ char *t = NULL, *u = NULL;
        c->path = strdup("/home/alice/nap 100%.conf");
        free(c->instances_dir);
        c->instances_dir = strdup("/var/tmp/instances");
        assert_int_equal(render_discovery(c, NAP_SCOPE_SYSTEM, "/x/nap-discovery", &t), 0);
        assert_line(t, "Environment=\"NAP_CONFIG=/home/alice/nap 100%%.conf\"", true);
        assert_line(t, "RequiresMountsFor=\"/var/tmp/instances\" \"/home/alice/nap 100%%.conf\"", true);
        assert_line(t, "ProtectHome=tmpfs", true);
        assert_line(t, "BindReadOnlyPaths=\"/var/tmp/instances\"", true);
        assert_line(t, "BindReadOnlyPaths=\"/home/alice/nap 100%%.conf\"", true);
        /* ProtectHome=tmpfs must come after the sandbox's ProtectHome=yes. */
        assert_true(strstr(t, "ProtectHome=tmpfs") > strstr(t, "ProtectHome=yes"));

        d->path = strdup(NAP_CONFIG_DEFAULT_PATH);
        assert_int_equal(render_discovery(d, NAP_SCOPE_SYSTEM, "/x/nap-discovery", &u), 0);
        assert_null(strstr(u, "NAP_CONFIG"));
}

static void test_discovery_refuses(void **state) {
        static const char *const bad[] = { "nap-discovery", "build/nap-discovery", "", "/", "/a//b",
                                           "/a/./b", "/a/../b", "/a/b/", "/a/b\n", "/a\tb" };
        _cleanup_(nap_config_freep) NapConfig *c = etcd_config();
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *t = NULL;
                assert_false(nap_unit_exec_path_is_valid(bad[i]));
                assert_int_equal(render_discovery(c, NAP_SCOPE_SYSTEM, bad[i], &t), -EINVAL);
        }
        assert_true(nap_unit_exec_path_is_valid("/usr/libexec/nap/nap-discovery"));
        assert_true(nap_unit_exec_path_is_valid("/a b/100%/$x/..x/.y"));

        /* A hidden path that Bind*Paths= cannot name. */
        _cleanup_free_ char *t = NULL;
        c->path = strdup("/home/a:b/nap.conf");
        assert_int_equal(render_discovery(c, NAP_SCOPE_SYSTEM, "/x/nap-discovery", &t), -EINVAL);
}

static NapManifest *container(const char *context, char **argv) {
        NapManifest *m = manifest(context, argv);
        m->commit = strdup("0123456789abcdef0123456789abcdef01234567");
        assert_int_equal(nap_manifest_set_image(m, context, NULL), 0);
        if (argv)
                m->argv = strv_copy(argv); /* a command override */
        return m;
}

static int render_container(writer w, const NapManifest *m, NapScope scope, const NapConfig *c, char **ret) {
        size_t size;
        FILE *f = open_memstream(ret, &size);
        int r = w(f, m, scope, c);
        assert_int_equal(fclose(f), 0);
        return r;
}

static void test_container_names(void **state) {
        char buf[NAP_UNIT_NAME_MAX];
        NapInstance i = { .kind = NAP_KIND_COMMON, .number = 12 };
        assert_int_equal(nap_service_from_parts("bob", "my-api", &i.service, NULL), 0);
        assert_string_equal(nap_unit_container_name(&i, buf), "bob_my-api_12");
        assert_string_equal(nap_unit_build_name(&i, buf), "bob_my-api_build@12.service");
}

static const char container_run_system[] =
        "# Automatically generated by nap-generator\n"
        "\n"
        "[Unit]\n"
        "Description=nap app alice_web, container of common instance 4\n"
        "SourcePath=/etc/nap/instances/alice_web_common@4.json\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "Requires=alice_web_build@4.service\n"
        "After=alice_web_build@4.service\n"
        "RequiresMountsFor=%t/containers\n"
        "StartLimitIntervalSec=60s\n"
        "StartLimitBurst=5\n"
        "\n"
        "[Service]\n"
        "Type=notify\n"
        "NotifyAccess=all\n"
        "Environment=PODMAN_SYSTEMD_UNIT=%n\n"
        "KillMode=mixed\n"
        "Delegate=yes\n"
        "SyslogIdentifier=%N\n"
        "Restart=on-failure\n"
        "RestartSec=2s\n"
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n"
        "RestrictRealtime=yes\n"
        "RestrictSUIDSGID=yes\n"
        "LockPersonality=yes\n"
        "KeyringMode=private\n"
        "SystemCallArchitectures=native\n"
        "SystemCallFilter=~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap\n"
        "SystemCallErrorNumber=EPERM\n"
        "CapabilityBoundingSet=~CAP_SYS_MODULE CAP_SYS_BOOT CAP_SYS_TIME CAP_SYSLOG CAP_SYS_RAWIO CAP_SYS_PACCT "
        "CAP_SYS_TTY_CONFIG CAP_MAC_ADMIN CAP_MAC_OVERRIDE CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_LEASE "
        "CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_LINUX_IMMUTABLE CAP_IPC_LOCK\n"
        "ExecStart=\"/usr/bin/podman\" \"run\" \"--name\" \"alice_web_4\" \"--replace\" \"--rm\" "
        "\"--cgroups=split\" \"--sdnotify=conmon\" \"-d\" \"--log-driver=passthrough\" \"--pull=never\" "
        "\"--publish\" \"20004:20004\" \"--env\" \"PORT=20004\" \"--userns=auto\" "
        "\"localhost/nap/alice_web:0123456789ab\"\n"
        "ExecStop=\"/usr/bin/podman\" \"rm\" \"--volumes\" \"--force\" \"--ignore\" \"alice_web_4\"\n"
        "ExecStopPost=-\"/usr/bin/podman\" \"rm\" \"--volumes\" \"--force\" \"--ignore\" \"alice_web_4\"\n";

static const char container_build_system[] =
        "# Automatically generated by nap-generator\n"
        "\n"
        "[Unit]\n"
        "Description=nap app alice_web, image build for common instance 4\n"
        "SourcePath=/etc/nap/instances/alice_web_common@4.json\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "PartOf=alice_web_common@4.service\n"
        "RequiresMountsFor=\"/srv/nap/apps/alice/alice_web_4\" %t/containers\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        "TimeoutStartSec=15min\n"
        "SyslogIdentifier=%N\n"
        "CPUWeight=20\n"
        "IOWeight=20\n"
        "ExecStart=\"/usr/bin/podman\" \"build\" \"--tag\" \"localhost/nap/alice_web:0123456789ab\" "
        "\"--file\" \"/srv/nap/apps/alice/alice_web_4/Dockerfile\" \"/srv/nap/apps/alice/alice_web_4\"\n";

static void test_container_system(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = container("/srv/nap/apps/alice/alice_web_4", NULL);
        _cleanup_(nap_config_freep) NapConfig *c = config();
        _cleanup_free_ char *run = NULL, *build = NULL;
        assert_int_equal(render_container(nap_unit_write_container_run, m, NAP_SCOPE_SYSTEM, c, &run), 0);
        assert_string_equal(run, container_run_system);
        assert_int_equal(render_container(nap_unit_write_container_build, m, NAP_SCOPE_SYSTEM, c, &build), 0);
        assert_string_equal(build, container_build_system);
}

/* Root's user manager: no user namespace of nap's choosing, no
 * network-online.target; an etcd sidecar is wanted by instance name. */
static void test_container_user_etcd(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = container("/home/alice/t", NULL);
        _cleanup_(nap_config_freep) NapConfig *c = etcd_config();
        _cleanup_free_ char *run = NULL, *build = NULL;
        assert_int_equal(render_container(nap_unit_write_container_run, m, NAP_SCOPE_USER, c, &run), 0);
        assert_null(strstr(run, "--userns"));
        assert_null(strstr(run, "network-online"));
        assert_line(run, "Wants=alice_web_discovery@4.service", true);
        assert_line(run, "Requires=alice_web_build@4.service", true);
        assert_null(strstr(run, "User="));
        assert_null(strstr(run, "Protect"));
        assert_int_equal(render_container(nap_unit_write_container_build, m, NAP_SCOPE_USER, c, &build), 0);
        assert_null(strstr(build, "network-online"));
        assert_null(strstr(build, "discovery"));
        assert_line(build, "RequiresMountsFor=\"/home/alice/t\" %t/containers", true);
}

static void test_container_quoting(void **state) {
        char *argv[] = { "-c", "echo $PORT 100%", "", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *m = container("/srv/a b/100%", argv);
        _cleanup_(nap_config_freep) NapConfig *c = config();
        _cleanup_free_ char *run = NULL, *build = NULL;
        assert_int_equal(render_container(nap_unit_write_container_run, m, NAP_SCOPE_SYSTEM, c, &run), 0);
        assert_non_null(strstr(run, " \"localhost/nap/alice_web:0123456789ab\" \"-c\" \"echo $$PORT 100%%\" \"\"\n"));
        assert_int_equal(render_container(nap_unit_write_container_build, m, NAP_SCOPE_SYSTEM, c, &build), 0);
        assert_line(build, "RequiresMountsFor=\"/srv/a b/100%%\" %t/containers", true);
        assert_non_null(strstr(build, " \"--file\" \"/srv/a b/100%%/Dockerfile\" \"/srv/a b/100%%\"\n"));
}

static void test_container_refuses(void **state) {
        char *argv[] = { "/bin/app", NULL };
        _cleanup_(nap_manifest_freep) NapManifest *plain = manifest("/srv/x", argv), *m = container("/srv/x", NULL),
                                                  *ctl = container("/srv/x", NULL);
        _cleanup_(nap_config_freep) NapConfig *c = config();
        _cleanup_free_ char *a = NULL, *b = NULL, *d = NULL, *e = NULL, *g = NULL, *h = NULL;
        /* No image: no container units. An image: no drop-in. */
        assert_int_equal(render_container(nap_unit_write_container_run, plain, NAP_SCOPE_SYSTEM, c, &a), -EINVAL);
        assert_int_equal(render_container(nap_unit_write_container_build, plain, NAP_SCOPE_SYSTEM, c, &b), -EINVAL);
        assert_int_equal(render_dropin(m, NAP_SCOPE_SYSTEM, &d), -EINVAL);
        /* A command with a control character cannot be written. */
        assert_int_equal(strv_extend(&ctl->argv, "a\nb"), 0);
        assert_int_equal(render_container(nap_unit_write_container_run, ctl, NAP_SCOPE_SYSTEM, c, &e), -EINVAL);
        /* Only common instances are containers. */
        m->instance.kind = NAP_KIND_MPI_SLAVE;
        assert_int_equal(render_container(nap_unit_write_container_run, m, NAP_SCOPE_SYSTEM, c, &g), -EINVAL);
        free(m->image.context);
        m->image.context = strdup("/srv/\x01");
        assert_int_equal(render_container(nap_unit_write_container_build, m, NAP_SCOPE_SYSTEM, c, &h), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_quote_exec_word),
                cmocka_unit_test(test_quote_refuses_control),
                cmocka_unit_test(test_quote_word_keeps_dollar),
                cmocka_unit_test(test_format_exec),
                cmocka_unit_test(test_format_exec_refuses),
                cmocka_unit_test(test_escape_value),
                cmocka_unit_test(test_user_name),
                cmocka_unit_test(test_template_system),
                cmocka_unit_test(test_template_user),
                cmocka_unit_test(test_dropin),
                cmocka_unit_test(test_dropin_relative_command),
                cmocka_unit_test(test_dropin_environment),
                cmocka_unit_test(test_dropin_without_environment),
                cmocka_unit_test(test_dropin_hidden_trees),
                cmocka_unit_test(test_dropin_refuses),
                cmocka_unit_test(test_dropin_dollar_program),
                cmocka_unit_test(test_template_wants_discovery),
                cmocka_unit_test(test_discovery_template_system),
                cmocka_unit_test(test_discovery_template_user),
                cmocka_unit_test(test_discovery_watchdog),
                cmocka_unit_test(test_discovery_hidden_config),
                cmocka_unit_test(test_discovery_refuses),
                cmocka_unit_test(test_container_names),
                cmocka_unit_test(test_container_system),
                cmocka_unit_test(test_container_user_etcd),
                cmocka_unit_test(test_container_quoting),
                cmocka_unit_test(test_container_refuses),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
