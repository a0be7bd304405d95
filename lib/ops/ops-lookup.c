/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* What the seed reads from etcd: get_service_url, get_port, and the live
 * endpoints. Each falls back to this host's state where that can answer. */

#include "clients/etcd.h"
#include "model/manifest.h"
#include "ops/ops-internal.h"
#include "ops/publish.h"

static const char *const source_table[_NAP_SOURCE_MAX] = {
        [NAP_SOURCE_ETCD] = "etcd",
        [NAP_SOURCE_LOCAL] = "local",
};

const char *nap_source_to_string(NapSource s) {
        return s >= 0 && s < _NAP_SOURCE_MAX ? source_table[s] : NULL;
}

void nap_endpoint_list_done(NapEndpointList *l) {
        for (size_t i = 0; l && i < l->n; i++)
                nap_endpoint_clear(l->items + i);
        free(l ? l->items : NULL);
        if (l)
                *l = (NapEndpointList) {};
}

int nap_get_service_url(NapContext *c, const char *service, char **ret, NapSource *ret_source, NapError *e) {
        NapService s;
        int r = nap_service_parse(service, &s, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *key = nap_key_url(c->config, &s);
        if (c->config->etcd && nap_lookup(c, key, ret, NULL) > 0) {
                *ret_source = NAP_SOURCE_ETCD;
                return 0;
        }
        _cleanup_free_ char *dir = NULL;
        r = ops_service_dir_checked(c, &s, &dir, e);
        if (r < 0)
                return r;
        _cleanup_(ops_deploy_meta_clear) DeployMeta meta = {};
        ops_deploy_meta_read(dir, &meta);
        if (!meta.url)
                return nap_error_set(e, NAP_ERROR_NO_SUCH_SERVICE, -ENOENT, "No URL is recorded for %s", service);
        *ret = TAKE_PTR(meta.url);
        *ret_source = NAP_SOURCE_LOCAL;
        return 0;
}

/* A port as nap writes it: decimal 1..65535. */
static int parse_port(const char *s, unsigned *ret) {
        unsigned v;
        int r = nap_instance_number_parse(s, &v);
        if (r < 0 || v > 65535)
                return -EINVAL;
        *ret = v;
        return 0;
}

int nap_get_port(NapContext *c, const char *instance, unsigned *ret, NapSource *ret_source, NapError *e) {
        NapInstance i;
        int r = nap_instance_parse(instance, &i, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *key = nap_key_instance_port(c->config, &i), *text = NULL;
        unsigned port;
        if (c->config->etcd && nap_lookup(c, key, &text, NULL) > 0 && parse_port(text, &port) >= 0) {
                *ret = port;
                *ret_source = NAP_SOURCE_ETCD;
                return 0;
        }
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        r = ops_load_instance(c, instance, &m, e);
        /* not here: another node's, as it reported it (the seed's key
         * not written yet) */
        if (r < 0 && e && e->kind == NAP_ERROR_NO_SUCH_INSTANCE && ops_cluster_port(c, &i, &port) > 0) {
                *e = NAP_ERROR_NULL;
                *ret = port;
                *ret_source = NAP_SOURCE_ETCD;
                return 0;
        }
        if (r < 0)
                return r;
        *ret = m->port;
        *ret_source = NAP_SOURCE_LOCAL;
        return 0;
}

static int endpoint_list_add(NapEndpointList *l, const EtcdKeyValue *kv) {
        NapEndpoint ep;
        if (nap_endpoint_parse(kv->value, kv->value_size, &ep, NULL) < 0)
                return 0; /* someone else's key, or damaged: not an endpoint */
        NapEndpoint *items = reallocarray(l->items, l->n + 1, sizeof *items);
        if (!items) {
                nap_endpoint_clear(&ep);
                return -ENOMEM;
        }
        l->items = items;
        l->items[l->n++] = ep;
        return 0;
}

int nap_list_endpoints(NapContext *c, const char *service, NapEndpointList *ret, NapError *e) {
        NapService s;
        EtcdClient *etcd;
        EtcdRange range = {};
        int r = nap_service_parse(service, &s, e);
        if (r >= 0)
                r = nap_context_etcd(c, &etcd, e);
        if (r < 0)
                return r;
        _cleanup_free_ char *prefix = nap_key_endpoints(c->config, &s);
        if (!prefix)
                return nap_error_errno(e, -ENOMEM, "Failed to list endpoints");
        r = etcd_range_prefix(etcd, prefix, 0, false, &range, e);
        if (r < 0)
                return r;
        NapEndpointList l = {};
        for (size_t k = 0; r >= 0 && k < range.n_kvs; k++)
                r = endpoint_list_add(&l, range.kvs + k);
        etcd_range_done(&range);
        if (r < 0) {
                nap_endpoint_list_done(&l);
                return nap_error_errno(e, r, "Failed to list endpoints");
        }
        *ret = l;
        return 0;
}
