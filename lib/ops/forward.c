/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json-parse.h"
#include "cluster/assignment.h"
#include "cluster/inventory.h"
#include "model/manifest.h"
#include "ops/forward.h"
#include "ops/method-json.h"

#define FORWARD_ETCD_TIMEOUT_USEC (5ULL * 1000000ULL)

static const char *const forwarded_methods[] = { "GetJournal", "CatApp", "GetPort" };

bool nap_method_forwards(const NapMethod *m) {
        for (size_t i = 0; m && i < ELEMENTSOF(forwarded_methods); i++)
                if (streq(m->name, forwarded_methods[i]))
                        return true;
        return false;
}

bool nap_forward_is_here(const NapConfig *c, const char *instance) {
        NapInstance i;
        struct stat st;
        if (nap_instance_parse(instance, &i, NULL) < 0)
                return false;
        _cleanup_free_ char *path = nap_manifest_path(c->instances_dir, &i);
        return path && stat(path, &st) >= 0;
}

/* ---- the caller's side ------------------------------------------------ */

void nap_forward_target_done(NapForwardTarget *t) {
        free(t->address);
        t->address = NULL;
}

int nap_forward_find(const NapConfig *c, const char *instance, NapForwardTarget *ret, NapError *e) {
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        _cleanup_(nap_node_info_done) NapNodeInfo node = {};
        _cleanup_(etcd_client_freep) EtcdClient *etcd = NULL;
        NapInstance i;
        int r = nap_instance_parse(instance, &i, e);
        if (r >= 0)
                r = etcd_client_new(c->etcd, &etcd, e);
        if (r < 0)
                return r;
        etcd->timeout_usec = FORWARD_ETCD_TIMEOUT_USEC;
        r = nap_assignment_find(etcd, c->cluster_prefix, &i, &a, e);
        if (r == 0)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT,
                                     "No instance %s: not on this host, and no node is assigned it", instance);
        if (r > 0)
                r = nap_node_get(etcd, c->cluster_prefix, a.node, &node, e);
        if (r < 0)
                return r;
        if (isempty(node.node.address))
                return nap_error_set(e, NAP_ERROR_NODE_UNREACHABLE, -EADDRNOTAVAIL,
                                     "Node %s, which runs %s, has no address in its record", a.node, instance);
        snprintf(ret->node, sizeof ret->node, "%s", a.node);
        ret->ready = node.ready;
        ret->address = TAKE_PTR(node.node.address);
        return 0;
}

/* ---- the gate's side -------------------------------------------------- */

static json_t *parse_object(const char *text, const char *what, NapError *e) {
        json_t *j = NULL;
        if (nap_json_parse(text, strlen(text), &j) < 0 || !json_is_object(j)) {
                json_decref(j);
                nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG, "The %s is not a JSON object", what);
                return NULL;
        }
        return j;
}

int nap_forward_header_parse(const char *text, uid_t *ret_uid, char *node, NapError *e) {
        json_auto_t *h = parse_object(text, "header", e);
        if (!h)
                return -EBADMSG;
        json_t *uid = json_object_get(h, "uid");
        const char *n = json_string_value(json_object_get(h, "node"));
        if (!json_is_integer(uid) || json_integer_value(uid) < 0 || json_integer_value(uid) >= (json_int_t) UINT32_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The header asserts no valid uid");
        if (!n || nap_node_name_check(n, NULL) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The header names no valid node");
        *ret_uid = (uid_t) json_integer_value(uid);
        snprintf(node, NAP_NODE_NAME_MAX + 1, "%s", n);
        return 0;
}

int nap_forward_call_check(const NapConfig *c, const char *text, uid_t uid, const NapMethod **ret_method,
                           NapError *e) {
        json_auto_t *call = parse_object(text, "call", e);
        if (!call)
                return -EBADMSG;
        const char *name = json_string_value(json_object_get(call, "method"));
        const char *short_name = name ? startswith(name, NAP_MANAGER_INTERFACE ".") : NULL;
        const NapMethod *m = short_name ? nap_method_find(short_name) : NULL;
        json_t *args = json_object_get(call, "parameters");
        if (!nap_method_forwards(m))
                return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EPERM,
                                     "Only GetJournal, CatApp and GetPort are served to other hosts, not %.64s",
                                     name ?: "a call without a method");
        if (!json_is_object(args))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "The call has no parameters");
        int r = nap_method_authorize(m, uid, args, e);
        if (r < 0)
                return r;
        const char *instance = json_string_value(json_object_get(args, m->owner));
        /* never on to a third host: the gate's own calls are root's */
        if (!nap_forward_is_here(c, instance))
                return nap_error_set(e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT, "No instance %s on this host", instance);
        *ret_method = m;
        return 0;
}

char *nap_forward_error_message(const NapError *e, size_t *ret_size) {
        char id[128];
        snprintf(id, sizeof id, NAP_MANAGER_INTERFACE ".%s", nap_error_kind_to_string(e->kind) ?: "Internal");
        json_auto_t *m = json_pack("{s:s, s:{s:s}}", "error", id, "parameters", "message", e->message);
        char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
        if (text)
                *ret_size = strlen(text) + 1;
        return text;
}
