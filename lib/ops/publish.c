/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>

#include "clients/etcd.h"
#include "ops/publish.h"

static const char *const publish_table[_NAP_PUBLISH_MAX] = {
        [NAP_PUBLISH_NONE] = "none",
        [NAP_PUBLISH_DONE] = "done",
        [NAP_PUBLISH_PENDING] = "pending",
};

const char *nap_publish_to_string(NapPublish p) {
        return p >= 0 && p < _NAP_PUBLISH_MAX ? publish_table[p] : NULL;
}

int nap_context_etcd(NapContext *c, EtcdClient **ret, NapError *e) {
        if (!c->etcd) {
                if (!c->config->etcd)
                        return nap_error_set(e, NAP_ERROR_NOT_AVAILABLE, -ENOTCONN,
                                             "No etcd is configured (Etcd= in nap.conf)");
                int r = etcd_client_new(c->config->etcd, &c->etcd, e);
                if (r < 0)
                        return r;
                c->etcd->connect_timeout_usec = NAP_PUBLISH_CONNECT_TIMEOUT_USEC;
                c->etcd->timeout_usec = NAP_PUBLISH_TIMEOUT_USEC;
        }
        *ret = c->etcd;
        return 0;
}

static NapPublish put_text(NapContext *c, const char *key, const char *value, NapError *why) {
        EtcdClient *etcd;
        if (!c->config->etcd)
                return NAP_PUBLISH_NONE;
        if (!key || nap_context_etcd(c, &etcd, why) < 0 ||
            etcd_put(etcd, key, value, strlen(value), 0, NULL, why) < 0) {
                if (!key)
                        nap_error_errno(why, -ENOMEM, "Failed to publish");
                return NAP_PUBLISH_PENDING;
        }
        return NAP_PUBLISH_DONE;
}

NapPublish nap_publish_url(NapContext *c, const NapService *s, const char *url, NapError *why) {
        _cleanup_free_ char *key = nap_key_url(c->config, s);
        return put_text(c, key, url, why);
}

NapPublish nap_publish_port(NapContext *c, const NapInstance *i, unsigned port, NapError *why) {
        _cleanup_free_ char *key = nap_key_instance_port(c->config, i);
        _cleanup_free_ char *latest = nap_key_port(c->config, &i->service);
        char text[16];
        snprintf(text, sizeof text, "%u", port);
        NapPublish p = put_text(c, key, text, why);
        /* The seed's one key per app: the newest instance's port. */
        return p == NAP_PUBLISH_DONE ? put_text(c, latest, text, why) : p;
}

void nap_unpublish_port(NapContext *c, const NapInstance *i) {
        _cleanup_free_ char *key = nap_key_instance_port(c->config, i);
        EtcdClient *etcd;
        if (key && c->config->etcd && nap_context_etcd(c, &etcd, NULL) >= 0)
                (void) etcd_delete(etcd, key, false, NULL, NULL);
}

int nap_lookup(NapContext *c, const char *key, char **ret, NapError *e) {
        EtcdClient *etcd;
        EtcdKeyValue kv = {};
        if (!key)
                return nap_error_errno(e, -ENOMEM, "Failed to look up");
        int r = nap_context_etcd(c, &etcd, e);
        if (r >= 0)
                r = etcd_get(etcd, key, &kv, e);
        if (r <= 0)
                return r;
        *ret = TAKE_PTR(kv.value);
        etcd_key_value_done(&kv);
        return 1;
}
