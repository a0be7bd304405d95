/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-generator: instance manifests in, units out (systemd.generator(7)).
 *
 * Reads nap.conf and the manifests in Instances=, nothing else: no network,
 * no D-Bus, no etcd, no git, not Root= (which may be on a /var or /home
 * that is not mounted yet). For each manifest it writes (lib/model/
 * unit-files.h, shared with nap-managerd, which writes one instance's
 * files into the manager's runtime unit dir to start it without a reload)
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
 * and, whatever the manifests, nap-node's writable paths under its
 * ProtectSystem=strict, from nap.conf (nap-node(8)):
 *   nap-node.service.d/50-nap-paths.conf   ReadWritePaths=-ROOT -INSTANCES
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
#include "model/unit.h"
#include "base/strv.h"
#include "model/unit-files.h"

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

/* The sidecars' program: $NAP_DISCOVERY_BINARY in tests, with a warning
 * when it cannot be used. */
static const char *pick_discovery_binary(void) {
        const char *ignored;
        const char *binary = nap_unit_files_discovery_binary(&ignored);
        if (ignored) {
                bool printable = true;
                for (const char *c = ignored; *c; c++)
                        printable = printable && (unsigned char) *c >= 0x20 && *c != 0x7f;
                log_warning("Ignoring NAP_DISCOVERY_BINARY=%s: not a normalized absolute path, using %s",
                            printable ? ignored : "(with control characters)", binary);
        }
        return binary;
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

/* Returns how many manifests were skipped, or a negative errno when
 * nothing could be generated. */
static int generate(NapUnitFiles *o) {
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
                r = nap_unit_files_write(o, m);
                if (r < 0) {
                        log_error("%s: cannot generate units: %s, skipping.", path,
                                  r == -EINVAL ? "a value cannot be written in a unit file" : strerror(-r));
                        failed++;
                }
        }
        return failed;
}

/* nap-node.service confines itself with ProtectSystem=strict; what it
 * must write, Root= and Instances=, is in nap.conf, which only this
 * generator reads at boot and at every reload: it hands the two on as a
 * drop-in ("-": either may not exist yet). The unit's own ReadWritePaths=
 * has the defaults and the runtime unit dir. */
static int write_node_paths(const char *dir, const NapConfig *c) {
        _cleanup_free_ char *root = strdup_printf("-%s", c->root);
        _cleanup_free_ char *instances = strdup_printf("-%s", c->instances_dir);
        _cleanup_free_ char *root_word = root ? unit_quote_word(root) : NULL;
        _cleanup_free_ char *instances_word = instances ? unit_quote_word(instances) : NULL;
        _cleanup_free_ char *dropin = path_join(dir, "nap-node.service.d", NULL);
        _cleanup_free_ char *path = dropin ? path_join(dropin, "50-nap-paths.conf", NULL) : NULL;

        if (!root_word || !instances_word)
                return root && instances && errno == EINVAL ? -EINVAL : -ENOMEM;
        _cleanup_free_ char *text = strdup_printf("# Written by nap-generator from nap.conf: what nap-node "
                                                  "writes (nap-node(8))\n[Service]\nReadWritePaths=%s %s\n",
                                                  root_word, instances_word);
        if (!path || !text)
                return -ENOMEM;
        int r = mkdir_p(dropin, 0755);
        return r < 0 ? r : write_file_atomic(path, text, strlen(text), 0644);
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
        NapUnitFiles o = { .dir = dir, .config = config, .scope = pick_scope(config),
                           .discovery_binary = pick_discovery_binary() };
        int r = generate(&o);
        int paths = write_node_paths(dir, config);
        if (paths < 0)
                log_error("Cannot write nap-node.service's ReadWritePaths= drop-in: %s",
                          paths == -EINVAL ? "Root= or Instances= cannot be written in a unit file"
                                           : strerror(-paths));
        safe_close(log_fd);
        return r == 0 && paths >= 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
