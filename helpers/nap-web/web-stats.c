/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* CPU and memory of instances, from systemd's accounting, and their node.
 * Only for the instances of a ListInstances reply nap-managerd gave this
 * user (the caller authorized that call), and only read.
 *
 * The node: an instance's record (its manifest) names none, because
 * nap-managerd lists this host's units only: every instance of the reply
 * runs on this host, whose node name is nap.conf's Node= (or the host
 * name), as nap-node registers it. null when it makes no node name. */

#include "clients/systemd1.h"
#include "web.h"

static json_t *amount(uint64_t v) {
        return v == UINT64_MAX ? json_null() : json_integer((json_int_t) v);
}

int web_stats_add(WebContext *c, json_t *instances, NapError *e) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        json_t *i;
        size_t k;
        int r = nap_systemd_open(c->config->scope, &bus, e);
        if (r < 0)
                return r;
        json_array_foreach(instances, k, i) {
                uint64_t cpu, memory;
                r = nap_systemd_get_unit_accounting(bus, json_string_value(json_object_get(i, "unit")), &cpu, &memory, e);
                if (r < 0)
                        return r;
                if (json_object_set_new(i, "node", c->node ? json_string(c->node) : json_null()) < 0 ||
                    json_object_set_new(i, "cpu_nsec", amount(cpu)) < 0 ||
                    json_object_set_new(i, "memory_bytes", amount(memory)) < 0)
                        return nap_error_errno(e, -ENOMEM, "Failed to read the instances' accounting");
        }
        return 0;
}
