/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <sched.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <systemd/sd-id128.h>

#include "base/clock.h"
#include "base/strv.h"
#include "cluster/host.h"
#include "nap-config.h"

static int detect_cpu(uint64_t *ret, NapError *e) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) < 0)
                return nap_error_errno(e, -errno, "Failed to read the CPUs this process may use");
        *ret = (uint64_t) CPU_COUNT(&set) * 1000;
        return 0;
}

static int detect_memory(uint64_t *ret, NapError *e) {
        struct sysinfo si;
        if (sysinfo(&si) < 0)
                return nap_error_errno(e, -errno, "Failed to read the memory size");
        *ret = (uint64_t) si.totalram * si.mem_unit;
        return 0;
}

/* The file system of Root=, or of the nearest directory above it that
 * exists (before the first deploy Root= may not). */
static int detect_storage(const char *root, uint64_t *ret, NapError *e) {
        _cleanup_free_ char *path = strdup(root);
        struct statvfs st;
        if (!path)
                return nap_error_errno(e, -ENOMEM, "Failed to read the storage size");
        while (statvfs(path, &st) < 0) {
                char *slash = strrchr(path, '/');
                if (errno != ENOENT || !slash || slash == path)
                        return nap_error_errno(e, -errno, "Failed to read the size of the file system of %s", root);
                *slash = 0;
        }
        *ret = (uint64_t) st.f_blocks * st.f_frsize;
        return 0;
}

int nap_host_capacity(const NapConfig *c, NapCapacity *ret, NapError *e) {
        NapCapacity cap = { c->cpu_milli, c->memory, c->storage };
        int r = 0;
        assert(c);
        assert(ret);
        if (cap.cpu_milli == 0)
                r = detect_cpu(&cap.cpu_milli, e);
        if (r >= 0 && cap.memory == 0)
                r = detect_memory(&cap.memory, e);
        if (r >= 0 && cap.storage == 0)
                r = detect_storage(c->root, &cap.storage, e);
        if (r < 0)
                return r;
        *ret = (NapCapacity) { MIN(cap.cpu_milli, NAP_CPU_MILLI_MAX), MIN(cap.memory, NAP_BYTES_MAX),
                               MIN(cap.storage, NAP_BYTES_MAX) };
        return 0;
}

static int host_ids(NapNode *n, NapError *e) {
        sd_id128_t machine, boot;
        int r = sd_id128_get_machine(&machine);
        if (r >= 0)
                r = sd_id128_get_boot(&boot);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to read the machine and boot ids");
        sd_id128_to_string(machine, n->machine_id);
        sd_id128_to_string(boot, n->boot_id);
        return 0;
}

int nap_host_node(const NapConfig *c, NapNode *ret, NapError *e) {
        _cleanup_free_ char *name = NULL;
        NapNode n = { .registered_usec = realtime_usec() };
        assert(c);
        assert(ret);
        int r = nap_config_node(c, &name, e);
        if (r >= 0)
                r = host_ids(&n, e);
        if (r >= 0)
                r = nap_host_capacity(c, &n.capacity, e);
        if (r >= 0 && (nap_config_host(c, &n.address) < 0 || !(n.version = strdup(NAP_VERSION)) ||
                       (c->labels && !(n.labels = strv_copy(c->labels)))))
                r = nap_error_errno(e, -ENOMEM, "Failed to describe this node");
        if (r < 0) {
                nap_node_done(&n);
                return r;
        }
        snprintf(n.name, sizeof n.name, "%s", name);
        *ret = n;
        return 0;
}
