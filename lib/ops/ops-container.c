/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Dockerfile apps (nap-generator(8), CONTAINERS): what the host must
 * have, the image build before an instance starts (its build unit, with
 * the build's log in the operation's progress and, when it fails, in its
 * error), naming a container runtime that cannot run here, and pruning
 * the app's old images. The units themselves are lib/model/unit.c's. */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "base/spawn.h"
#include "base/strv.h"
#include "clients/journal.h"
#include "clients/systemd1.h"
#include "model/unit.h"
#include "ops/ops-internal.h"

extern char **environ;

#define BUILD_LOG_LINES_READ 60
#define BUILD_LOG_LINES_IN_ERROR 3
#define BUILD_LOG_LINES_SHOWN 10
#define LOG_LINE_SHOWN_MAX 160
#define PODMAN_OUTPUT_MAX (64 * 1024)
#define PODMAN_TIMEOUT_USEC (60ULL * USEC_PER_SEC)
#define LOG_SETTLE_USEC (2ULL * USEC_PER_SEC)
#define LOG_SETTLE_POLL_USEC (100ULL * 1000ULL)

/* Where Debian, Fedora and podman's own packages put an OCI runtime. */
static const char *const runtime_paths[] = {
        "/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc", "/usr/bin/crun", "/usr/local/bin/crun",
};

static int check_binaries(NapError *e) {
        if (access(NAP_PODMAN_BINARY, X_OK) < 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOENT,
                                     "podman is not installed (%s: %s); a Dockerfile app needs it "
                                     "(nap-generator(8), CONTAINERS)", NAP_PODMAN_BINARY, strerror(errno));
        for (size_t i = 0; i < ELEMENTSOF(runtime_paths); i++)
                if (access(runtime_paths[i], X_OK) >= 0)
                        return 0;
        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOENT,
                             "the container runtime cannot run here: neither runc nor crun is installed "
                             "(nap-generator(8), CONTAINERS)");
}

/* A line "containers:START:COUNT" in file (/etc/subuid, /etc/subgid):
 * the ids --userns=auto hands out to the containers of the system scope. */
static bool has_containers_range(const char *file) {
        _cleanup_free_ char *text = NULL;
        if (read_full_file(file, 1024 * 1024, &text, NULL) < 0)
                return false;
        for (const char *l = text; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (startswith(l, "containers:"))
                        return true;
        return false;
}

int ops_container_check(NapScope scope, NapError *e) {
        static const char *const id_files[] = { "/etc/subuid", "/etc/subgid" };
        /* Rootless podman needs newuidmap (setuid), which the run unit's
         * seccomp filters would stop: a user manager not running as root
         * implies NoNewPrivileges= with them. Not verified either. */
        if (scope == NAP_SCOPE_USER && geteuid() != 0)
                return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EPERM,
                                     "the container runtime cannot run here: Dockerfile apps run in the system "
                                     "manager or in root's user manager, not rootless (nap-generator(8), CONTAINERS)");
        for (size_t i = 0; scope == NAP_SCOPE_SYSTEM && i < ELEMENTSOF(id_files); i++)
                if (!has_containers_range(id_files[i]))
                        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOENT,
                                             "the container runtime cannot run here: %s has no range for user "
                                             "'containers', which podman --userns=auto needs (nap-generator(8), "
                                             "CONTAINERS)", id_files[i]);
        return check_binaries(e);
}

/* ---- the build's log ----------------------------------------------------- */

/* The unit's own lines (not the manager's about it), oldest first. */
static int unit_log(NapContext *c, const char *unit, NapJournalEntry **ret, size_t *ret_n) {
        NapJournalEntry *l = NULL;
        size_t n = 0, k = 0;
        int r = nap_journal_tail(c->scope, unit, BUILD_LOG_LINES_READ, &l, &n, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (streq_ptr(l[i].identifier, "systemd") || isempty(l[i].message)) {
                        nap_journal_entry_clear(l + i);
                        continue;
                }
                l[k++] = l[i];
        }
        *ret = l;
        *ret_n = k;
        return 0;
}

/* The unit's log once a line that says why it failed is there: the
 * journal gets a unit's output a moment after the manager saw it fail,
 * so a failure's cause is waited for, up to LOG_SETTLE_USEC. */
static int unit_log_with(NapContext *c, const char *unit, bool (*why)(const char *line), NapJournalEntry **ret,
                         size_t *ret_n) {
        uint64_t deadline = monotonic_usec() + LOG_SETTLE_USEC;
        for (;;) {
                NapJournalEntry *l = NULL;
                size_t n = 0;
                int r = unit_log(c, unit, &l, &n);
                if (r < 0)
                        return r;
                bool found = false;
                for (size_t i = 0; i < n && !found; i++)
                        found = why(l[i].message);
                if (found || monotonic_usec() >= deadline) {
                        *ret = l;
                        *ret_n = n;
                        return found;
                }
                nap_journal_entry_array_free(l, n);
                (void) usleep(LOG_SETTLE_POLL_USEC);
        }
}

/* podman build's last words when it fails. */
static bool is_build_error(const char *line) {
        return startswith(line, "Error: ") || strstr(line, "error building at STEP");
}

/* Every step cached: podman printed "--> Using cache" after each step
 * but the first (FROM, which has nothing to cache). */
static bool build_was_cached(const NapJournalEntry *l, size_t n) {
        size_t steps = 0, cached = 0;
        for (size_t i = 0; i < n; i++) {
                steps += startswith(l[i].message, "STEP ") != NULL;
                cached += startswith(l[i].message, "--> Using cache") != NULL;
        }
        return steps > 0 && cached + 1 >= steps;
}

/* The build's steps as progress lines (a cached build: one line). */
static void report_build(NapContext *c, const char *name, const char *unit, const NapManifest *m,
                         uint64_t usec, const NapRolloutOptions *o) {
        NapJournalEntry *l = NULL;
        size_t n = 0;
        if (!o || !o->progress || unit_log(c, unit, &l, &n) < 0)
                return;
        if (build_was_cached(l, n))
                ops_progress(o, "%s: image %s is up to date (every step cached)", name, m->image.tag);
        else {
                for (size_t i = 0; i < n; i++)
                        if (startswith(l[i].message, "STEP ") || startswith(l[i].message, "COMMIT "))
                                ops_progress(o, "%s: build: %.*s", name, LOG_LINE_SHOWN_MAX, l[i].message);
                ops_progress(o, "%s: image %s built in %.1f s", name, m->image.tag, (double) usec / USEC_PER_SEC);
        }
        nap_journal_entry_array_free(l, n);
}

/* "the image build failed: a | b | c": the build log's last lines, also
 * shown whole as progress lines. */
static int build_failed(NapContext *c, const char *name, const char *unit, const NapRolloutOptions *o,
                        NapError *e) {
        NapJournalEntry *l = NULL;
        size_t n = 0;
        char tail[NAP_ERROR_MESSAGE_MAX] = "";
        if (unit_log_with(c, unit, is_build_error, &l, &n) >= 0) {
                for (size_t i = n > BUILD_LOG_LINES_SHOWN ? n - BUILD_LOG_LINES_SHOWN : 0; i < n; i++)
                        ops_progress(o, "%s: build: %.*s", name, LOG_LINE_SHOWN_MAX, l[i].message);
                for (size_t i = n > BUILD_LOG_LINES_IN_ERROR ? n - BUILD_LOG_LINES_IN_ERROR : 0; i < n; i++) {
                        size_t at = strlen(tail);
                        snprintf(tail + at, sizeof tail - at, "%s%.*s", at ? " | " : "", LOG_LINE_SHOWN_MAX,
                                 l[i].message);
                }
        }
        nap_journal_entry_array_free(l, n);
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO, "the image build failed (%s): %s", unit,
                             tail[0] ? tail : "it logged nothing");
}

/* The start job was given up on (the wait for a job is bounded, a build
 * may take 15 minutes) while the build goes on. */
static bool build_still_running(sd_bus *bus, const char *unit) {
        NapUnitStatus u = {};
        bool running = nap_systemd_get_unit_status(bus, unit, &u, NULL) >= 0 && streq_ptr(u.active_state, "activating");
        nap_unit_status_clear(&u);
        return running;
}

static int build_outlasted(const char *name, const char *unit, const NapRolloutOptions *o, NapError *e) {
        ops_progress(o, "%s: the image build goes on in %s", name, unit);
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -ETIMEDOUT,
                             "the image build did not finish while nap waited; it goes on (journalctl -u %s)", unit);
}

int ops_container_build(NapContext *c, const NapManifest *m, const NapRolloutOptions *o, NapError *e) {
        char name[NAP_UNIT_NAME_MAX], unit[NAP_UNIT_NAME_MAX];
        sd_bus *bus;
        if (!nap_manifest_has_image(m))
                return 0;
        int r = ops_context_bus(c, &bus, e);
        if (r < 0)
                return r;
        nap_instance_name(&m->instance, name);
        nap_unit_build_name(&m->instance, unit);
        (void) nap_systemd_reset_failed_unit(bus, unit);
        ops_progress(o, "%s: building image %s (%s)", name, m->image.tag, unit);
        uint64_t start = monotonic_usec();
        if (nap_systemd_start_unit(bus, unit, NULL) < 0)
                return build_still_running(bus, unit) ? build_outlasted(name, unit, o, e)
                                                      : build_failed(c, name, unit, o, e);
        report_build(c, name, unit, m, monotonic_usec() - start, o);
        return 0;
}

/* ---- a runtime that cannot run here ---------------------------------------- */

/* What podman or its OCI runtime says when it cannot create a container
 * on this host (limits it may not raise, a cgroup layout it does not
 * support, no runtime at all), as opposed to the app failing. */
static bool is_runtime_error(const char *line) {
        static const char *const marks[] = {
                "OCI runtime", "OCI permission denied", "runc create failed", "crun: ",
                "cgroups in hybrid mode", "no valid executable found for OCI runtime",
        };
        for (size_t i = 0; i < ELEMENTSOF(marks); i++)
                if (strstr(line, marks[i]))
                        return true;
        return false;
}

void ops_container_explain(NapContext *c, const NapManifest *m, NapError *e) {
        char unit[NAP_UNIT_NAME_MAX];
        NapJournalEntry *l = NULL;
        size_t n = 0;
        if (!nap_manifest_has_image(m) || !nap_error_is_set(e))
                return;
        if (unit_log_with(c, nap_instance_unit_name(&m->instance, unit), is_runtime_error, &l, &n) <= 0)
                return;
        for (size_t i = n; i > 0; i--)
                if (is_runtime_error(l[i - 1].message)) {
                        *e = NAP_ERROR_NULL; /* the cause replaces "the job failed" */
                        nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -EPERM,
                                      "the container runtime cannot run here: %.300s (nap-generator(8), CONTAINERS)",
                                      l[i - 1].message);
                        break;
                }
        nap_journal_entry_array_free(l, n);
}

/* ---- pruning ------------------------------------------------------------------ */

/* podman ARGV... (no shell), stdout returned (ret may be NULL), stderr
 * discarded; killed after PODMAN_TIMEOUT_USEC. -EIO when it exits
 * non-zero. */
static int run_podman(char *const *argv, char **ret) {
        return nap_spawn_capture(NAP_PODMAN_BINARY, argv, NULL, STDOUT_FILENO, PODMAN_OUTPUT_MAX, PODMAN_TIMEOUT_USEC,
                                 ret);
}

/* The image of app s built from commit: the tag start_common gives it. */
static char *tag_of(const NapService *s, const char *commit) {
        char *tag = NULL;
        NapInstance i = { .service = *s };
        if (isempty(commit) || nap_manifest_image_tag(&i, commit, &tag) < 0)
                return NULL;
        return tag;
}

int ops_container_prune(NapContext *c, const NapService *s, const char *keep, const char *keep_too,
                        const NapRolloutOptions *o) {
        char name[NAP_SERVICE_NAME_MAX];
        /* podman's reference filter matches other apps' names that begin
         * with this one's too (alice_box: alice_boxes): only this app's
         * repository, to the ':', is pruned. */
        _cleanup_free_ char *repository = strdup_printf(NAP_IMAGE_REPOSITORY "%s:", nap_service_name(s, name));
        _cleanup_free_ char *reference = strdup_printf("reference=" NAP_IMAGE_REPOSITORY "%s", name);
        _cleanup_free_ char *kept = tag_of(s, keep), *kept_too = tag_of(s, keep_too), *out = NULL;
        _cleanup_strv_free_ char **tags = NULL;
        unsigned removed = 0;
        if (!repository || !reference)
                return -ENOMEM;
        int r = run_podman((char *const[]) { (char *) "podman", (char *) "images", (char *) "--noheading",
                                             (char *) "--format", (char *) "{{.Repository}}:{{.Tag}}",
                                             (char *) "--filter", reference, NULL }, &out);
        if (r >= 0 && !(tags = strv_split(out, '\n')))
                r = -ENOMEM;
        if (r < 0) {
                ops_progress(o, "old images of %s not pruned: podman images failed (%s)", name, strerror(-r));
                return r;
        }
        STRV_FOREACH(t, tags)
                if (startswith(*t, repository) && !streq_ptr(*t, kept) && !streq_ptr(*t, kept_too) &&
                    run_podman((char *const[]) { (char *) "podman", (char *) "rmi", *t, NULL }, NULL) >= 0)
                        removed++;
        if (removed > 0)
                ops_progress(o, "%u old image%s of %s pruned", removed, removed == 1 ? "" : "s", name);
        return (int) removed;
}
