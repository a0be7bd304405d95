/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/strv.h"
#include "model/mpi.h"
#include "model/unit-files.h"
#include "model/unit.h"

/* A unit file is a few KiB; anything larger in the runtime dir is not
 * ours as written, so it is replaced. */
#define UNIT_FILE_SIZE_MAX (256 * 1024)

int nap_unit_files_runtime_dir(NapScope scope, char **ret) {
        assert(ret);

        if (scope == NAP_SCOPE_SYSTEM)
                *ret = strdup("/run/systemd/system");
        else {
                const char *runtime = getenv("XDG_RUNTIME_DIR");
                if (isempty(runtime) || runtime[0] != '/')
                        return -ENXIO;
                *ret = path_join(runtime, "systemd/user", NULL);
        }
        return *ret ? 0 : -ENOMEM;
}

const char *nap_unit_files_discovery_binary(const char **ret_ignored) {
        const char *env = secure_getenv("NAP_DISCOVERY_BINARY");
        if (ret_ignored)
                *ret_ignored = NULL;
        if (isempty(env))
                return NAP_DISCOVERY_BINARY_DEFAULT;
        if (!nap_unit_exec_path_is_valid(env)) {
                if (ret_ignored)
                        *ret_ignored = env;
                return NAP_DISCOVERY_BINARY_DEFAULT;
        }
        return env;
}

/* ---- rendering ---------------------------------------------------------- */

/* Renders into memory first, so a unit that cannot be written leaves no
 * half-written file behind. */
typedef int (*render_fn)(FILE *f, const NapManifest *m, const NapUnitFiles *o);

static int render(render_fn fn, const NapManifest *m, const NapUnitFiles *o, char **ret) {
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

static bool kind_is_mpi(NapKind k) {
        return k == NAP_KIND_MPI_MASTER || k == NAP_KIND_MPI_SLAVE;
}

/* MPI kinds have templates of their own (model/mpi.h). */
static int render_template(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        if (kind_is_mpi(m->instance.kind))
                return nap_mpi_write_template(f, &m->instance.service, m->instance.kind, o->scope, o->config);
        return nap_unit_write_template(f, &m->instance.service, m->instance.kind, o->scope, o->config);
}

static int render_dropin(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        int r = nap_unit_write_instance_dropin(f, m, o->scope, o->config);
        return r >= 0 ? nap_mpi_write_dropin_extra(f, m) : r;
}

static int render_container_run(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        return nap_unit_write_container_run(f, m, o->scope, o->config);
}

static int render_container_build(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        return nap_unit_write_container_build(f, m, o->scope, o->config);
}

static int render_discovery(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        return nap_unit_write_discovery_template(f, &m->instance.service, o->scope, o->config,
                                                 o->discovery_binary);
}

/* ---- writing ------------------------------------------------------------ */

/* The generator's output dir is new at every run: files are created, never
 * replaced ("wxe" finds a name written twice). */
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

static bool file_has_text(const char *path, const char *text) {
        _cleanup_free_ char *old = NULL;
        return read_full_file(path, UNIT_FILE_SIZE_MAX, &old, NULL) >= 0 && streq(old, text);
}

/* DIR/.NAME.XXXXXX, then renamed over DIR/NAME: the manager, which may
 * load the unit at any moment, sees the old file or the new one, and a
 * hidden name is never a unit. Not synced: the runtime dir is a tmpfs,
 * gone at the next boot anyway. */
static int replace_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = path_join(dir, name, NULL);
        _cleanup_free_ char *tmp = strdup_printf("%s/.%s.XXXXXX", dir, name);
        if (!path || !tmp)
                return -ENOMEM;
        if (file_has_text(path, text))
                return 0;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        FILE *f = fdopen(fd, "we");
        if (!f) {
                int r = negative_errno();
                safe_close(fd);
                return (void) unlink(tmp), r;
        }
        int r = fchmod(fd, 0644) < 0 ? negative_errno() : 0;
        if (r >= 0 && (fputs(text, f) < 0 || fflush(f) != 0))
                r = errno > 0 ? -errno : -EIO;
        if (fclose(f) != 0 && r >= 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

/* A file of o->dir ("NAME" or "UNIT.d/NAME"): created (generator) or
 * replaced when different (runtime). */
static int write_unit_file(const NapUnitFiles *o, const char *subdir, const char *name, const char *text) {
        _cleanup_free_ char *dir = subdir ? path_join(o->dir, subdir, NULL) : strdup(o->dir);
        if (!dir)
                return -ENOMEM;
        if (o->runtime)
                return replace_file(dir, name, text);
        _cleanup_free_ char *path = path_join(dir, name, NULL);
        return path ? write_new_file(path, text) : -ENOMEM;
}

static int mkdir_exist_ok(const char *path) {
        return mkdir(path, 0755) < 0 && errno != EEXIST ? negative_errno() : 0;
}

/* TARGET.wants/UNIT -> ../TEMPLATE: how a generator enables a unit, since
 * "systemctl enable" cannot act on generated units. The runtime dir gets
 * none: boot is the generator's job. */
static int write_wants(const NapUnitFiles *o, const char *unit, const char *template) {
        const char *target = o->scope == NAP_SCOPE_USER ? "default.target" : "multi-user.target";
        if (o->runtime)
                return 0;
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

/* The instance's template and, with etcd, its sidecar's: in the
 * generator once per template. */
static int write_templates(NapUnitFiles *o, const NapManifest *m, const char *template) {
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
                r = write_unit_file(o, NULL, template, text);
        if (r >= 0 && discovery)
                r = write_unit_file(o, NULL, sidecar, sidecar_text);
        if (r < 0)
                return r;
        snprintf(o->last_template, sizeof o->last_template, "%s", template);
        return 0;
}

/* A cluster instance (nap-node's) is started by nap-node once the node is
 * a member again, never at boot: it may have moved to another host
 * meanwhile (fencing, docs/ARCHITECTURE.md "Cluster apps"). */
static bool wanted_at_boot(const NapManifest *m) {
        return m->enabled && !m->cluster;
}

/* USER_APP_common@N.service and USER_APP_build@N.service, enabled through
 * the former. The templates are written as for any instance: the sidecar's
 * is needed, and the app's keeps USER_APP_common@ a known template. */
static int write_container(NapUnitFiles *o, const NapManifest *m) {
        char unit[NAP_UNIT_NAME_MAX], build[NAP_UNIT_NAME_MAX], template[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *run_text = NULL, *build_text = NULL;

        nap_instance_unit_name(&m->instance, unit);
        nap_unit_build_name(&m->instance, build);
        nap_instance_template_name(&m->instance, template);
        int r = render(render_container_run, m, o, &run_text);
        if (r >= 0)
                r = render(render_container_build, m, o, &build_text);
        if (r >= 0)
                r = write_templates(o, m, template);
        if (r >= 0)
                r = write_unit_file(o, NULL, build, build_text);
        if (r >= 0)
                r = write_unit_file(o, NULL, unit, run_text);
        if (r >= 0 && wanted_at_boot(m))
                r = write_wants(o, unit, unit);
        return r;
}

static int write_instance(NapUnitFiles *o, const NapManifest *m) {
        char unit[NAP_UNIT_NAME_MAX], template[NAP_UNIT_NAME_MAX];
        _cleanup_free_ char *dropin_text = NULL;

        nap_instance_unit_name(&m->instance, unit);
        nap_instance_template_name(&m->instance, template);
        int r = render(render_dropin, m, o, &dropin_text);
        if (r >= 0)
                r = write_templates(o, m, template);
        if (r < 0)
                return r;

        _cleanup_free_ char *dropin_dir = strdup_printf("%s.d", unit);
        _cleanup_free_ char *dropin_path = dropin_dir ? path_join(o->dir, dropin_dir, NULL) : NULL;
        if (!dropin_path)
                return -ENOMEM;
        r = mkdir_exist_ok(dropin_path);
        if (r >= 0)
                r = write_unit_file(o, dropin_dir, NAP_UNIT_DROPIN_NAME, dropin_text);
        if (r >= 0 && wanted_at_boot(m))
                r = write_wants(o, unit, template);
        return r;
}

int nap_unit_files_write(NapUnitFiles *o, const NapManifest *m) {
        assert(o);
        assert(m);

        if (o->runtime) {
                int r = mkdir_p(o->dir, 0755);
                if (r < 0)
                        return r;
        }
        return nap_manifest_has_image(m) ? write_container(o, m) : write_instance(o, m);
}

/* ---- removing ----------------------------------------------------------- */

bool nap_unit_files_has_instance(const NapUnitFiles *o, const NapInstance *i) {
        char unit[NAP_UNIT_NAME_MAX];
        nap_instance_unit_name(i, unit);
        _cleanup_free_ char *dropin = strdup_printf("%s/%s.d/" NAP_UNIT_DROPIN_NAME, o->dir, unit);
        _cleanup_free_ char *own = path_join(o->dir, unit, NULL);
        return !dropin || !own || access(dropin, F_OK) >= 0 || access(own, F_OK) >= 0; /* OOM: assume so */
}

static int unlink_in(const char *dir, const char *name, int flags) {
        _cleanup_free_ char *path = path_join(dir, name, NULL);
        if (!path)
                return -ENOMEM;
        if (unlinkat(AT_FDCWD, path, flags) < 0 && errno != ENOENT && errno != ENOTEMPTY)
                return negative_errno();
        return 0;
}

int nap_unit_files_remove(const NapUnitFiles *o, const NapInstance *i, bool templates) {
        char unit[NAP_UNIT_NAME_MAX], build[NAP_UNIT_NAME_MAX], template[NAP_UNIT_NAME_MAX];
        char sidecar[NAP_UNIT_NAME_MAX];

        assert(o);
        assert(i);

        nap_instance_unit_name(i, unit);
        nap_unit_build_name(i, build);
        _cleanup_free_ char *dropin_dir = strdup_printf("%s.d", unit);
        _cleanup_free_ char *dropin = strdup_printf("%s.d/" NAP_UNIT_DROPIN_NAME, unit);
        if (!dropin_dir || !dropin)
                return -ENOMEM;
        /* Either kind's files: what the instance was is not needed to
         * remove it. The drop-in dir goes only when nothing else is in it. */
        int r = unlink_in(o->dir, dropin, 0);
        if (r >= 0)
                r = unlink_in(o->dir, dropin_dir, AT_REMOVEDIR);
        if (r >= 0)
                r = unlink_in(o->dir, unit, 0);
        if (r >= 0)
                r = unlink_in(o->dir, build, 0);
        if (r < 0 || !templates)
                return r;
        r = unlink_in(o->dir, nap_instance_template_name(i, template), 0);
        if (r >= 0)
                r = unlink_in(o->dir, nap_unit_discovery_template_name(&i->service, sidecar), 0);
        return r;
}

/* ---- exporting ---------------------------------------------------------- */

/* fleet (and an operator's own systemd) gets whole units: the template and
 * the instance's drop-in merged as systemd merges them, each section's
 * lines of the unit first, then the drop-in's (later assignments win, lists
 * add up), so the merged unit means what the two files meant. */

typedef struct ExportInput {
        const NapUnitFiles *o;
        const NapManifest *m; /* directory: the tree it runs from */
} ExportInput;

static int render_exported_settings(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        return nap_unit_write_exported_settings(f, m, o->scope, o->config);
}

static int render_exported_sidecar(FILE *f, const NapManifest *m, const NapUnitFiles *o) {
        return nap_unit_write_discovery_exported(f, m, o->scope, o->config, o->discovery_binary);
}

/* Whether a line of a rendered unit is left out of an exported one:
 * comments (the generator's header) and SourcePath=, a manifest that is
 * not on another host. */
static bool line_is_dropped(const char *line, size_t n) {
        return n == 0 || line[0] == '#' || line[0] == ';' || strneq(line, "SourcePath=", strlen("SourcePath="));
}

/* The section headers of text ("[Unit]"…) not in *headers yet, added. */
static int collect_headers(const char *text, char ***headers) {
        for (const char *l = text; *l;) {
                size_t n = strcspn(l, "\n");
                if (l[0] == '[') {
                        _cleanup_free_ char *h = strndup(l, n);
                        if (!h)
                                return -ENOMEM;
                        if (!strv_contains(*headers, h) && strv_consume(headers, TAKE_PTR(h)) < 0)
                                return -ENOMEM;
                }
                l += n + (l[n] == '\n');
        }
        return 0;
}

/* The lines of text's section header, without the header. */
static void write_section_lines(FILE *f, const char *text, const char *header) {
        bool in = false;
        for (const char *l = text; *l;) {
                size_t n = strcspn(l, "\n");
                if (l[0] == '[')
                        in = strlen(header) == n && strneq(l, header, n);
                else if (in && !line_is_dropped(l, n))
                        fprintf(f, "%.*s\n", (int) n, l);
                l += n + (l[n] == '\n');
        }
}

static int write_merged(FILE *f, const NapManifest *m, const char *unit_text, const char *dropin_text,
                        NapScope scope) {
        _cleanup_strv_free_ char **headers = NULL;
        char name[NAP_UNIT_NAME_MAX];
        int r = collect_headers(unit_text, &headers);
        if (r >= 0)
                r = collect_headers(dropin_text, &headers);
        if (r < 0)
                return r;
        fprintf(f, "# %s, exported by napctl export-units: its template and its\n"
                "# " NAP_UNIT_DROPIN_NAME " in one unit, for fleet or any service manager.\n"
                "# It runs from the app's deployed tree (napctl deploy-app on each host).\n",
                nap_instance_unit_name(&m->instance, name));
        if (m->commit)
                fprintf(f, "# The instance ran commit %s.\n", m->commit);
        STRV_FOREACH(h, headers) {
                fprintf(f, "\n%s\n", *h);
                write_section_lines(f, unit_text, *h);
                write_section_lines(f, dropin_text, *h);
        }
        /* systemctl enable works on an operator's host; fleet ignores it */
        fprintf(f, "\n[Install]\nWantedBy=%s\n", scope == NAP_SCOPE_USER ? "default.target" : "multi-user.target");
        return ferror(f) ? -EIO : 0;
}

static int export_unit(const NapUnitFiles *o, const NapManifest *m, NapUnitFile *ret) {
        _cleanup_free_ char *unit_text = NULL, *dropin_text = NULL, *buf = NULL;
        size_t size;
        int r = render(render_template, m, o, &unit_text);
        if (r >= 0)
                r = render(render_exported_settings, m, o, &dropin_text);
        if (r < 0)
                return r;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        r = write_merged(f, m, unit_text, dropin_text, o->scope);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        nap_instance_unit_name(&m->instance, ret->name);
        ret->text = TAKE_PTR(buf);
        return 0;
}

static int export_sidecar(const NapUnitFiles *o, const NapManifest *m, NapUnitFile *ret) {
        int r = render(render_exported_sidecar, m, o, &ret->text);
        if (r < 0)
                return r;
        nap_unit_discovery_name(&m->instance, ret->name);
        return 0;
}

int nap_unit_files_export(const NapUnitFiles *o, const NapManifest *m, const char *tree,
                          NapUnitFile ret[static NAP_UNIT_FILES_EXPORT_MAX], size_t *ret_n) {
        assert(o);
        assert(m);
        assert(tree);
        assert(ret_n);

        if (nap_manifest_has_image(m) || m->instance.kind != NAP_KIND_COMMON)
                return -EOPNOTSUPP;
        NapManifest in_tree = *m;
        in_tree.directory = (char *) tree;
        ret[0] = ret[1] = (NapUnitFile) {};
        *ret_n = 0;
        int r = export_unit(o, &in_tree, ret);
        if (r >= 0 && nap_unit_has_discovery(m->instance.kind, o->config))
                r = export_sidecar(o, &in_tree, ret + 1);
        if (r < 0) {
                nap_unit_file_clear(ret);
                return r;
        }
        *ret_n = ret[1].text ? 2 : 1;
        return 0;
}

void nap_unit_file_clear(NapUnitFile *f) {
        if (!f)
                return;
        free(f->text);
        *f = (NapUnitFile) {};
}
