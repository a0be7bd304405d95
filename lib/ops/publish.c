/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "clients/etcd.h"
#include "model/state.h"
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

int nap_unpublish_service(NapContext *c, const NapService *s, NapError *e) {
        _cleanup_free_ char *url = nap_key_url(c->config, s), *port = nap_key_port(c->config, s);
        _cleanup_free_ char *ports = port ? strdup_printf("%s/", port) : NULL; /* not APP2's */
        _cleanup_free_ char *endpoints = nap_key_endpoints(c->config, s);   /* the sidecars' leases */
        EtcdClient *etcd;
        if (!c->config->etcd)
                return 0;
        if (!url || !port || !ports || !endpoints)
                return nap_error_errno(e, -ENOMEM, "Failed to remove the app's keys");
        int r = nap_context_etcd(c, &etcd, e);
        if (r >= 0)
                r = etcd_delete(etcd, url, false, NULL, e);
        if (r >= 0)
                r = etcd_delete(etcd, port, false, NULL, e);
        if (r >= 0)
                r = etcd_delete(etcd, ports, true, NULL, e);
        if (r >= 0)
                r = etcd_delete(etcd, endpoints, true, NULL, e);
        return r < 0 ? r : 0;
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

/* ---- re-asserting the seed's keys --------------------------------------- */

/* What etcd has under PREFIX/url/ and PREFIX/port/ (in key order, as etcd
 * answers), and what was put back. */
typedef struct KeyCheck {
        NapContext *c;
        EtcdClient *etcd;
        EtcdRange urls, ports;
        NapReassertResult *result;
} KeyCheck;

static int compare_key(const void *key, const void *kv) {
        return strcmp(key, ((const EtcdKeyValue *) kv)->key);
}

static const char *value_in(const EtcdRange *r, const char *key) {
        const EtcdKeyValue *kv = bsearch(key, r->kvs, r->n_kvs, sizeof *r->kvs, compare_key);
        return kv ? kv->value : NULL;
}

/* Puts key = value unless etcd has it so already (or, keep_existing, has
 * the key at all: the seed's PREFIX/port/USER/APP is the newest instance's
 * port as last written, not nap's to second-guess). */
static int ensure_key(KeyCheck *k, const EtcdRange *have, const char *key, const char *value, bool keep_existing,
                      NapError *e) {
        const char *now = key ? value_in(have, key) : NULL;
        if (!key)
                return nap_error_errno(e, -ENOMEM, "Failed to check etcd's keys");
        k->result->checked++;
        if (now && (keep_existing || streq(now, value)))
                return 0;
        int r = etcd_put(k->etcd, key, value, strlen(value), 0, NULL, e);
        if (r >= 0)
                k->result->written++;
        return r;
}

static int ensure_instance_keys(KeyCheck *k, NapManifest **l, size_t n, NapError *e) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char port[16];
                _cleanup_free_ char *key = nap_key_instance_port(k->c->config, &l[i]->instance);
                _cleanup_free_ char *latest = nap_key_port(k->c->config, &l[i]->instance.service);
                snprintf(port, sizeof port, "%u", l[i]->port);
                r = ensure_key(k, &k->ports, key, port, false, e);
                if (r >= 0)
                        r = ensure_key(k, &k->ports, latest, port, true, e);
        }
        return r;
}

static int ensure_url_keys(KeyCheck *k, const char *user, NapError *e) {
        NapServiceInfo *l = NULL;
        size_t n = 0;
        int r = nap_list_services(k->c, user, &l, &n, e);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                NapService s;
                if (!l[i].url || nap_service_parse(l[i].name, &s, NULL) < 0)
                        continue;
                _cleanup_free_ char *key = nap_key_url(k->c->config, &s);
                r = ensure_key(k, &k->urls, key, l[i].url, false, e);
        }
        nap_service_info_array_free(l, n);
        return r;
}

static int ensure_every_url_key(KeyCheck *k, NapError *e) {
        _cleanup_free_ char *services = path_join(k->c->config->root, "services", NULL);
        _cleanup_closedir_ DIR *d = services ? opendir(services) : NULL;
        int r = 0;
        for (struct dirent *de; r >= 0 && d && (de = readdir(d));)
                if (nap_user_is_valid(de->d_name))
                        r = ensure_url_keys(k, de->d_name, e);
        return r;
}

static int read_seed_keys(KeyCheck *k, NapError *e) {
        _cleanup_free_ char *urls = strdup_printf("%s/url/", k->c->config->etcd_prefix);
        _cleanup_free_ char *ports = strdup_printf("%s/port/", k->c->config->etcd_prefix);
        if (!urls || !ports)
                return nap_error_errno(e, -ENOMEM, "Failed to check etcd's keys");
        int r = etcd_range_prefix(k->etcd, urls, 0, false, &k->urls, e);
        return r < 0 ? r : etcd_range_prefix(k->etcd, ports, 0, false, &k->ports, e);
}

int nap_reassert_keys(NapContext *c, NapReassertResult *ret, NapError *e) {
        KeyCheck k = { .c = c, .result = ret };
        NapManifest **l = NULL;
        size_t n = 0;
        *ret = (NapReassertResult) {};
        if (!c->config->etcd)
                return 0;
        int r = nap_context_etcd(c, &k.etcd, e);
        if (r >= 0)
                r = read_seed_keys(&k, e);
        if (r >= 0)
                r = nap_state_load_all_manifests(c->config, &l, &n, e);
        if (r >= 0)
                r = ensure_instance_keys(&k, l, n, e);
        if (r >= 0)
                r = ensure_every_url_key(&k, e);
        nap_state_manifests_free(l, n);
        etcd_range_done(&k.urls);
        etcd_range_done(&k.ports);
        return r;
}
