/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-generator: instance manifests in, units out (systemd.generator(7)).
 *
 * Reads nap.conf and the manifests in Instances=, nothing else: no network,
 * no D-Bus, no etcd, no git, not Root= (which may be on a /var or /home
 * that is not mounted yet). For each manifest it writes
 *   USER_APP_KIND@.service                          (once per template)
 *   USER_APP_discovery@.service                     (the same, common
 *                                                    instances with Etcd=)
 *   USER_APP_KIND@N.service.d/50-nap-instance.conf  (the instance)
 *   TARGET.wants/USER_APP_KIND@N.service -> ../USER_APP_KIND@.service
 * into the normal generator directory (argv[1]). A sidecar has no .wants
 * link: its app's template Wants= it. A container instance (a manifest
 * with an image: a Dockerfile app) has instead of the drop-in
 *   USER_APP_common@N.service   (podman run; systemd prefers it to the
 *                                template, whose sandbox it cannot use)
 *   USER_APP_build@N.service    (podman build, required by the former)
 *   TARGET.wants/USER_APP_common@N.service -> ../USER_APP_common@N.service
 *
 * A broken manifest is skipped with a logged reason and every other one is
 * still generated. Like systemd's own generators (fstab-generator), the exit
 * status is then 1: systemd logs that the generator failed and keeps its
 * output, so the problem shows in the journal on every reload without
 * costing the other apps anything. A config that cannot be read or an
 * output directory that cannot be written also exit 1, with nothing
 * generated. */

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "model/config.h"
#include "base/fileio.h"
#include "model/manifest.h"
#include "base/strv.h"
#include "model/unit.h"

static int log_fd = -1; /* /dev/kmsg, or -1 for stderr */

/* systemd.generator(7): no syslog or journal (IPC) from a generator; the
 * kernel log is always there, early at boot too. podman's quadlet does the
 * same and falls back to stderr when /dev/kmsg is not writable. */
static void log_open(bool kmsg) {
        if (kmsg)
                log_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
}

static void log_msg(int prio, const char *fmt, ...) _printf_(2, 3);
static void log_msg(int prio, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        int n;

        if (log_fd >= 0)
                n = snprintf(buf, sizeof buf, "<%d>nap-generator[%d]: ", prio, (int) getpid());
        else
                n = snprintf(buf, sizeof buf, "nap-generator: ");
        va_start(ap, fmt);
        vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
        va_end(ap);
        size_t len = strlen(buf);
        buf[len] = '\n'; /* room was kept for it */
        buf[len + 1] = 0;
        /* One write: one kernel log record. */
        if (log_fd < 0 || write(log_fd, buf, strlen(buf)) < 0)
                (void) !write(STDERR_FILENO, buf, strlen(buf));
}

#define log_error(...) log_msg(3, __VA_ARGS__)
#define log_warning(...) log_msg(4, __VA_ARGS__)

static void config_warn(void *userdata, const char *message) {
        log_warning("%s", message);
}

/* $SYSTEMD_SCOPE is set by the manager that runs us; Scope= when run by
 * hand. */
static NapScope pick_scope(const NapConfig *c) {
        const char *env = getenv("SYSTEMD_SCOPE");
        if (!env)
                return c->scope;
        NapScope s = nap_scope_from_string(env);
        if (s < 0) {
                log_warning("Ignoring SYSTEMD_SCOPE=%s, using Scope=%s", env, nap_scope_to_string(c->scope));
                return c->scope;
        }
        return s;
}

/* $NAP_DISCOVERY_BINARY, for running the sidecars from a build tree in
 * tests; the installed nap-discovery otherwise. */
static const char *pick_discovery_binary(void) {
        const char *env = secure_getenv("NAP_DISCOVERY_BINARY");
        if (isempty(env))
                return NAP_DISCOVERY_BINARY_DEFAULT;
        if (!nap_unit_exec_path_is_valid(env)) {
                bool printable = true;
                for (const char *c = env; *c; c++)
                        printable = printable && (unsigned char) *c >= 0x20 && *c != 0x7f;
                log_warning("Ignoring NAP_DISCOVERY_BINARY=%s: not a normalized absolute path, using %s",
                            printable ? env : "(with control characters)", NAP_DISCOVERY_BINARY_DEFAULT);
                return NAP_DISCOVERY_BINARY_DEFAULT;
        }
        return env;
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The manifests' file names, sorted so the output does not depend on
 * readdir() order. Hidden files (editors, the .tmp of an atomic write
 * being renamed) and other suffixes are not manifests. */
static int list_manifests(const char *dir, char ***ret) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;

        if (!d)
                return errno == ENOENT ? 0 : negative_errno(); /* nothing deployed yet */
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de)
                        break;
                size_t l = strlen(de->d_name);
                if (de->d_name[0] == '.' || l <= strlen(NAP_MANIFEST_SUFFIX) ||
                    !streq(de->d_name + l - strlen(NAP_MANIFEST_SUFFIX), NAP_MANIFEST_SUFFIX))
                        continue;
                if (strv_extend(&names, de->d_name) < 0)
                        return -ENOMEM;
                n++;
        }
        if (errno != 0)
                return negative_errno();
        if (n > 0)
                qsort(names, n, sizeof *names, compare_strings);
        *ret = TAKE_PTR(names);
        return 0;
}

typedef struct Output {
        const char *dir;          /* argv[1] */
        const NapConfig *config;
        NapScope scope;
        const char *discovery_binary; /* ExecStart= of the sidecars */
        char last_template[NAP_UNIT_NAME_MAX]; /* manifests are sorted: one template's come together */
} Output;

static int write_new_file(const char *path, const char *text) {
        _cleanup_fclose_ FILE *f = fopen(path, "wxe");
        if (!f)
                return negative_errno();
        fputs(text, f);
        if (fflush(f) != 0 || ferror(f))
                return errno > 0 ? -errno : -EIO;
        int r = fclose(TAKE_PTR(f));
        return r != 0 ? negative_errno() : 0;
}

/* Renders into memory first, so a unit that cannot be written leaves no
 * half-written file behind. */
typedef int (*render_fn)(FILE *f, const NapManifest *m, const Output *o);

static int render(render_fn fn, const NapManifest *m, const Output *o, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        int r = fn(f, m, o);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int render_template(FILE *f, const NapManifest *m, const Output *o) {
        return nap_unit_write_template(f, &m->instance.service, m->instance.kind, o->scope, o->config);
}

static int render_dropin(FILE *f, const NapManifest *m, const Output *o) {
        return nap_unit_write_instance_dropin(f, m, o->scope, o->config);
}

static int render_container_run(FILE *f, const NapManifest *m, const Output *o) {
        return nap_unit_write_container_run(f, m, o->scope, o->config);
}

static int render_container_build(FILE *f, const NapManifest *m, const Output *o) {
        return nap_unit_write_container_build(f, m, o->scope, o->config);
}

static int mkdir_exist_ok(const char *path) {
        return mkdir(path, 0755) < 0 && errno != EEXIST ? negative_errno() : 0;
}

/* TARGET.wants/UNIT -> ../TEMPLATE: how a generator enables a unit, since
 * "systemctl enable" cannot act on generated units. */
static int write_wants(const Output *o, const char *unit, const char *template) {
        const char *target = o->scope == NAP_SCOPE_USER ? "default.target" : "multi-user.target";
        _cleanup_free_ char *wants = strdup_printf("%s/%s.wants", o->dir, target);
        _cleanup_free_ char *link = strdup_printf("%s/%s.wants/%s", o->dir, target, unit);
        _cleanup_free_ char *dest = strdup_printf("../%s", template);
        if (!wants || !link || !dest)
                return -ENOMEM;
        int r = mkdir_exist_ok(wants);
        if (r < 0)
                return r;
        return symlink(dest, link) < 0 ? negative_errno() : 0;
}

static int render_discovery(FILE *f, const NapManifest *m, const Output *o) {
        return nap_unit_write_discovery_template(f, &m->instance.service, o->scope, o->config,
                                                 o->discovery_binary);
}

static int write_unit(const Output *o, const char *name, const char *text) {
        _cleanup_free_ char *path = strdup_printf("%s/%s", o->dir, name);
        return path ? write_new_file(path, text) : -ENOMEM;
}

/* The instance's template and, with etcd, its sidecar's: once per
 * template. Everything is rendered before anything is written. */
static int emit_templates(Output *o, const NapManifest *m, const char *template) {
        _cleanup_free_ char *text = NULL, *sidecar_text = NULL;
        char sidecar[NAP_UNIT_NAME_MAX];
        bool discovery = nap_unit_has_discovery(m->instance.kind, o->config);
        int r;

        if (streq(template, o->last_template))
                return 0;
        r = render(render_template, m, o, &text);
        if (r >= 0 && discovery) {
                nap_unit_discovery_template_name(&m->instance.service, sidecar);
                r = render(render_discovery, m, o, &sidecar_text);
        }
        if (r >= 0)
                r = write_unit(o, template, text);
        if (r >= 0 && discovery)
                r = write_unit(o, sidecar, sidecar_text);
        if (r < 0)
                return r;
        snprintf(o->last_template, sizeof o->last_template, "%s", template);
        return 0;
}

/* USER_APP_common@N.service and USER_APP_build@N.service, enabled through
 * the former. The templates are written as for any instance: the sidecar's
 * is needed, and the app's keeps USER_APP_common@ a known template. */
static int emit_container(Output *o, const NapManifest *m) {
        char unit[NAP_UNIT_NAME_MAX], build[NAP_UNIT_NAME_MAX], template[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *run_text = NULL, *build_text = NULL;

        nap_instance_unit_name(&m->instance, unit);
        nap_unit_build_name(&m->instance, build);
        nap_instance_template_name(&m->instance, template);
        int r = render(render_container_run, m, o, &run_text);
        if (r >= 0)
                r = render(render_container_build, m, o, &build_text);
        if (r >= 0)
                r = emit_templates(o, m, template);
        if (r >= 0)
                r = write_unit(o, build, build_text);
        if (r >= 0)
                r = write_unit(o, unit, run_text);
        if (r >= 0 && m->enabled)
                r = write_wants(o, unit, unit);
        return r;
}

static int emit_instance(Output *o, const NapManifest *m) {
        char unit[NAP_UNIT_NAME_MAX], template[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *dropin_text = NULL;
        int r;

        nap_instance_unit_name(&m->instance, unit);
        nap_instance_template_name(&m->instance, template);
        r = render(render_dropin, m, o, &dropin_text);
        if (r >= 0)
                r = emit_templates(o, m, template);
        if (r < 0)
                return r;

        _cleanup_free_ char *dropin_dir = strdup_printf("%s/%s.d", o->dir, unit);
        _cleanup_free_ char *dropin_path = strdup_printf("%s/%s.d/50-nap-instance.conf", o->dir, unit);
        if (!dropin_dir || !dropin_path)
                return -ENOMEM;
        r = mkdir_exist_ok(dropin_dir);
        if (r >= 0)
                r = write_new_file(dropin_path, dropin_text);
        if (r >= 0 && m->enabled)
                r = write_wants(o, unit, template);
        return r;
}

/* Returns how many manifests were skipped, or a negative errno when
 * nothing could be generated. */
static int generate(Output *o) {
        const char *dir = o->config->instances_dir;
        _cleanup_strv_free_ char **names = NULL;
        int failed = 0, r;

        r = list_manifests(dir, &names);
        if (r < 0) {
                log_error("Cannot read instance manifests in %s: %s", dir, strerror(-r));
                return r;
        }
        STRV_FOREACH(name, names) {
                _cleanup_free_ char *path = strdup_printf("%s/%s", dir, *name);
                _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
                NapError e = NAP_ERROR_NULL;

                if (!path) {
                        log_error("Out of memory");
                        return -ENOMEM;
                }
                r = nap_manifest_load(path, &m, &e);
                if (r < 0) {
                        log_error("%s, skipping.", e.message);
                        failed++;
                        continue;
                }
                r = nap_manifest_has_image(m) ? emit_container(o, m) : emit_instance(o, m);
                if (r < 0) {
                        log_error("%s: cannot generate units: %s, skipping.", path,
                                  r == -EINVAL ? "a value cannot be written in a unit file" : strerror(-r));
                        failed++;
                }
        }
        return failed;
}

static int parse_argv(int argc, char *argv[], bool *ret_kmsg, const char **ret_dir) {
        int i = 1;
        *ret_kmsg = true;
        /* Like quadlet's -no-kmsg-log: tests read our messages on stderr. */
        if (argc > 1 && streq(argv[1], "--no-kmsg-log")) {
                *ret_kmsg = false;
                i++;
        }
        /* systemd passes normal, early and late; one directory is enough by hand. */
        if (argc - i != 1 && argc - i != 3)
                return -EINVAL;
        *ret_dir = argv[i];
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(nap_config_freep) NapConfig *config = NULL;
        NapError e = NAP_ERROR_NULL;
        const char *dir;
        bool kmsg;

        if (parse_argv(argc, argv, &kmsg, &dir) < 0) {
                fprintf(stderr, "Usage: %s [--no-kmsg-log] NORMAL-DIR [EARLY-DIR LATE-DIR]\n", argv[0]);
                return EXIT_FAILURE;
        }
        log_open(kmsg);
        umask(0022); /* the output is read by the manager and by "systemctl cat" */

        if (nap_config_load(&config, config_warn, NULL, &e) < 0) {
                log_error("%s", e.message);
                return EXIT_FAILURE;
        }
        Output o = { .dir = dir, .config = config, .scope = pick_scope(config),
                     .discovery_binary = pick_discovery_binary() };
        int r = generate(&o);
        safe_close(log_fd);
        return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
