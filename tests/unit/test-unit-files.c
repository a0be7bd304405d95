/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "base/fileio.h"
#include "base/strv.h"
#include "model/unit-files.h"

typedef struct Fixture {
        char dir[64];
        NapConfig *config;
        NapManifest *m;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        NapError e = NAP_ERROR_NULL;
        char *argv[] = { "python3", "server.py", NULL };
        snprintf(f->dir, sizeof f->dir, "/tmp/nap-test-unit-files.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(nap_config_new_default(&f->config), 0);
        f->m = calloc(1, sizeof *f->m);
        assert_int_equal(nap_service_from_parts("alice", "web", &f->m->instance.service, &e), 0);
        f->m->instance = (NapInstance) { .service = f->m->instance.service, .kind = NAP_KIND_COMMON, .number = 4 };
        f->m->argv = strv_copy(argv);
        f->m->directory = strdup("/srv/nap/apps/alice/alice_web_4");
        f->m->port = 20004;
        f->m->enabled = true;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        (void) rm_rf(f->dir);
        nap_manifest_free(f->m);
        nap_config_free(f->config);
        free(f);
        return 0;
}

static NapUnitFiles files(Fixture *f, bool runtime) {
        return (NapUnitFiles) { .dir = f->dir, .config = f->config, .scope = NAP_SCOPE_USER,
                                .discovery_binary = NAP_DISCOVERY_BINARY_DEFAULT, .runtime = runtime };
}

static bool exists(Fixture *f, const char *name) {
        _cleanup_free_ char *p = path_join(f->dir, name, NULL);
        struct stat st;
        return lstat(p, &st) == 0;
}

/* Entries whose names start with '.' (a temporary left behind) in dir. */
static unsigned hidden_entries(const char *dir) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        unsigned n = 0;
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] == '.' && !streq(de->d_name, ".") && !streq(de->d_name, "..");
        return n;
}

static ino_t inode(Fixture *f, const char *name) {
        _cleanup_free_ char *p = path_join(f->dir, name, NULL);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        return st.st_ino;
}

#define DROPIN "alice_web_common@4.service.d/" NAP_UNIT_DROPIN_NAME

static void test_runtime_writes_instance_and_template_without_wants(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, true);
        assert_int_equal(nap_unit_files_write(&o, f->m), 0);
        assert_true(exists(f, "alice_web_common@.service"));
        assert_true(exists(f, DROPIN));
        assert_false(exists(f, "default.target.wants"));
        _cleanup_free_ char *p = path_join(f->dir, DROPIN, NULL);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(read_full_file(p, 65536, &text, NULL), 0);
        assert_non_null(strstr(text, "Environment=PORT=20004\n"));
}

/* Unchanged files are left alone (the manager sees no change); a changed
 * one is replaced by a new file (renamed over it), no temporary left. */
static void test_runtime_replaces_only_what_differs(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, true);
        assert_int_equal(nap_unit_files_write(&o, f->m), 0);
        ino_t template = inode(f, "alice_web_common@.service"), dropin = inode(f, DROPIN);
        NapUnitFiles again = files(f, true);
        assert_int_equal(nap_unit_files_write(&again, f->m), 0);
        assert_true(inode(f, "alice_web_common@.service") == template);
        assert_true(inode(f, DROPIN) == dropin);

        f->m->port = 20005;
        NapUnitFiles changed = files(f, true);
        assert_int_equal(nap_unit_files_write(&changed, f->m), 0);
        assert_true(inode(f, "alice_web_common@.service") == template);
        assert_true(inode(f, DROPIN) != dropin);
        _cleanup_free_ char *p = path_join(f->dir, DROPIN, NULL);
        _cleanup_free_ char *text = NULL;
        assert_int_equal(read_full_file(p, 65536, &text, NULL), 0);
        assert_non_null(strstr(text, "Environment=PORT=20005\n"));
        _cleanup_free_ char *dropin_dir = path_join(f->dir, "alice_web_common@4.service.d", NULL);
        assert_int_equal(hidden_entries(f->dir), 0);
        assert_int_equal(hidden_entries(dropin_dir), 0);
}

static void test_generator_enables_and_refuses_to_overwrite(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, false);
        assert_int_equal(nap_unit_files_write(&o, f->m), 0);
        assert_true(exists(f, "default.target.wants/alice_web_common@4.service"));
        NapUnitFiles again = files(f, false); /* a new run into the same dir: "wxe" */
        assert_int_equal(nap_unit_files_write(&again, f->m), -EEXIST);
}

static void test_remove_keeps_templates_unless_asked(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, true);
        assert_int_equal(nap_unit_files_write(&o, f->m), 0);
        assert_true(nap_unit_files_has_instance(&o, &f->m->instance));
        assert_int_equal(nap_unit_files_remove(&o, &f->m->instance, false), 0);
        assert_false(nap_unit_files_has_instance(&o, &f->m->instance));
        assert_false(exists(f, "alice_web_common@4.service.d"));
        assert_true(exists(f, "alice_web_common@.service"));
        assert_int_equal(nap_unit_files_remove(&o, &f->m->instance, true), 0); /* gone already: fine */
        assert_false(exists(f, "alice_web_common@.service"));
}

static void test_runtime_dir_by_scope(void **state) {
        _cleanup_free_ char *system = NULL, *user = NULL;
        char *none = NULL;
        assert_int_equal(nap_unit_files_runtime_dir(NAP_SCOPE_SYSTEM, &system), 0);
        assert_string_equal(system, "/run/systemd/system");
        assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1), 0);
        assert_int_equal(nap_unit_files_runtime_dir(NAP_SCOPE_USER, &user), 0);
        assert_string_equal(user, "/run/user/1000/systemd/user");
        assert_int_equal(setenv("XDG_RUNTIME_DIR", "relative", 1), 0);
        assert_int_equal(nap_unit_files_runtime_dir(NAP_SCOPE_USER, &none), -ENXIO);
        assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
        assert_int_equal(nap_unit_files_runtime_dir(NAP_SCOPE_USER, &none), -ENXIO);
        assert_null(none);
}

static void test_discovery_binary(void **state) {
        const char *ignored;
        assert_int_equal(unsetenv("NAP_DISCOVERY_BINARY"), 0);
        assert_string_equal(nap_unit_files_discovery_binary(&ignored), NAP_DISCOVERY_BINARY_DEFAULT);
        assert_null(ignored);
        assert_int_equal(setenv("NAP_DISCOVERY_BINARY", "/opt/nap/nap-discovery", 1), 0);
        assert_string_equal(nap_unit_files_discovery_binary(&ignored), "/opt/nap/nap-discovery");
        assert_null(ignored);
        assert_int_equal(setenv("NAP_DISCOVERY_BINARY", "../x", 1), 0);
        assert_string_equal(nap_unit_files_discovery_binary(&ignored), NAP_DISCOVERY_BINARY_DEFAULT);
        assert_string_equal(ignored, "../x");
        assert_int_equal(unsetenv("NAP_DISCOVERY_BINARY"), 0);
}

/* ---- export ------------------------------------------------------------- */

#define TREE "/srv/nap/services/alice/alice_web"

static size_t count(const char *text, const char *s) {
        size_t n = 0;
        for (const char *p = text; (p = strstr(p, s)); p += strlen(s))
                n++;
        return n;
}

static void test_export_merges_template_and_dropin(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, false);
        NapUnitFile out[NAP_UNIT_FILES_EXPORT_MAX];
        size_t n = 99;

        assert_int_equal(nap_unit_files_export(&o, f->m, TREE, out, &n), 0);
        assert_int_equal(n, 1); /* no Etcd=: no sidecar */
        const char *t = out[0].text;
        assert_string_equal(out[0].name, "alice_web_common@4.service");
        assert_int_equal(count(t, "\n[Unit]\n"), 1);
        assert_int_equal(count(t, "\n[Service]\n"), 1);
        assert_non_null(strstr(t, "\nWorkingDirectory=" TREE "\n"));
        assert_non_null(strstr(t, "\nEnvironment=PORT=20004\n"));
        assert_non_null(strstr(t, "\nExecStart=\"python3\" \"server.py\"\n"));
        assert_non_null(strstr(t, "\nRequiresMountsFor=\"" TREE "\"\n"));
        /* the template's, before the drop-in's, as systemd applies them */
        assert_non_null(strstr(t, "\nNoNewPrivileges=yes\n"));
        assert_true(strstr(t, "\nType=exec\n") < strstr(t, "\nWorkingDirectory="));
        assert_null(strstr(t, "SourcePath="));
        assert_null(strstr(t, "ReadWritePaths="));
        assert_null(strstr(t, "nap-generator"));
        assert_non_null(strstr(t, "\n[Install]\nWantedBy=default.target\n"));
        nap_unit_file_clear(out);

        /* system scope: the app's identity and the system's target */
        o.scope = NAP_SCOPE_SYSTEM;
        assert_int_equal(nap_unit_files_export(&o, f->m, TREE, out, &n), 0);
        assert_non_null(strstr(out[0].text, "\nDynamicUser=yes\nUser=nap-alice\n"));
        assert_non_null(strstr(out[0].text, "\n[Install]\nWantedBy=multi-user.target\n"));
        nap_unit_file_clear(out);
}

static void test_export_sidecar_reads_no_manifest(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, false);
        NapUnitFile out[NAP_UNIT_FILES_EXPORT_MAX];
        size_t n = 0;

        f->config->etcd = strv_split("http://127.0.0.1:2379", ',');
        f->m->health_path = strdup("/healthz");
        assert_int_equal(nap_unit_files_export(&o, f->m, TREE, out, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(out[1].name, "alice_web_discovery@4.service");
        const char *t = out[1].text;
        assert_non_null(strstr(t, "\n[X-Fleet]\nMachineOf=alice_web_common@4.service\n"));
        assert_non_null(strstr(t, " --port=20004 \"--health-path=/healthz\" \"alice_web_common@%i\"\n"));
        assert_non_null(strstr(t, "\nBindsTo=alice_web_common@%i.service\n"));
        assert_null(strstr(t, f->config->instances_dir));
        assert_null(strstr(t, "SourcePath="));
        assert_non_null(strstr(out[0].text, "\nWants=alice_web_discovery@%i.service\n"));
        nap_unit_file_clear(out);
        nap_unit_file_clear(out + 1);
}

static void test_export_refuses_containers(void **state) {
        Fixture *f = *state;
        NapUnitFiles o = files(f, false);
        NapUnitFile out[NAP_UNIT_FILES_EXPORT_MAX];
        size_t n = 0;

        f->m->image = (NapManifestImage) { .context = strdup(TREE), .tag = strdup("localhost/nap/alice_web:1") };
        assert_int_equal(nap_unit_files_export(&o, f->m, TREE, out, &n), -EOPNOTSUPP);
        assert_int_equal(n, 0);
        assert_null(out[0].text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_runtime_writes_instance_and_template_without_wants, setup, teardown),
                cmocka_unit_test_setup_teardown(test_runtime_replaces_only_what_differs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_generator_enables_and_refuses_to_overwrite, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove_keeps_templates_unless_asked, setup, teardown),
                cmocka_unit_test(test_runtime_dir_by_scope),
                cmocka_unit_test(test_discovery_binary),
                cmocka_unit_test_setup_teardown(test_export_merges_template_and_dropin, setup, teardown),
                cmocka_unit_test_setup_teardown(test_export_sidecar_reads_no_manifest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_export_refuses_containers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
