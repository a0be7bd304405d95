/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* bench/recovery's driver: what crash safety costs, beside what the same
 * operations cost without it, all timed on the file system that holds DIR.
 *   recovery-driver write DIR N     N manifest-sized atomic writes, synced
 *                                   (what start-common does once anyway)
 *   recovery-driver intent DIR N    N intent records written and removed
 *                                   (what each operation now adds)
 *   recovery-driver scan DIR N      nap_recover_pending() over DIR's apps
 *   recovery-driver readdir DIR N   one readdir of ROOT/services (its floor)
 * Each prints "p50 p99 mean" in ns. */

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "../bench/bench-timing.h"
#include "base/fileio.h"
#include "model/config.h"
#include "model/intent.h"
#include "ops/ops.h"

static const char manifest[] =
        "{\"version\":1,\"user\":\"alice\",\"app\":\"web\",\"kind\":\"common\",\"number\":1,"
        "\"argv\":[\"python3\",\"server.py\",\"--port\",\"20001\"],\"directory\":\"/var/lib/nap/apps/alice/alice_web_1\","
        "\"port\":20001,\"enabled\":true}\n";

static int one(const char *mode, NapConfig *c, const char *dir) {
        NapIntent in = { .operation = NAP_INTENT_START_COMMON, .number = 1 };
        if (streq(mode, "write")) {
                _cleanup_free_ char *path = path_join(dir, "manifest.json", NULL);
                int r = write_file_atomic(path, manifest, strlen(manifest), 0644);
                return r < 0 ? r : fsync_directory_of(path);
        }
        if (streq(mode, "intent")) {
                (void) nap_service_parse("alice_web", &in.service, NULL);
                int r = nap_intent_save(c, &in, NULL);
                nap_intent_remove(c, &in.service);
                return r;
        }
        if (streq(mode, "scan"))
                return nap_recover_pending(c) ? -EEXIST : 0;
        _cleanup_free_ char *services = path_join(dir, "services", NULL);
        _cleanup_closedir_ DIR *d = opendir(services);
        while (d && readdir(d))
                ;
        return d ? 0 : -errno;
}

int main(int argc, char **argv) {
        if (argc != 4)
                return 2;
        size_t n = strtoul(argv[3], NULL, 10);
        uint64_t *v = calloc(n, sizeof *v);
        NapConfig *c = NULL;
        if (!v || n == 0 || nap_config_new_default(&c) < 0)
                return 1;
        free(c->root);
        c->root = strdup(argv[2]);
        for (size_t i = 0; i < n; i++) {
                uint64_t t0 = now_nsec();
                if (one(argv[1], c, argv[2]) < 0) {
                        fprintf(stderr, "%s failed\n", argv[1]);
                        return 1;
                }
                v[i] = now_nsec() - t0;
        }
        report(v, n, 1);
        return 0;
}
