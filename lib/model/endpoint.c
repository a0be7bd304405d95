/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <jansson.h>

#include "model/endpoint.h"
#include "base/fileio.h"

char *nap_key_url(const NapConfig *c, const NapService *s) {
        assert(c);
        assert(s);

        return strdup_printf("%s/url/%s/%s", c->etcd_prefix, s->user, s->app);
}

char *nap_key_port(const NapConfig *c, const NapService *s) {
        assert(c);
        assert(s);

        return strdup_printf("%s/port/%s/%s", c->etcd_prefix, s->user, s->app);
}

char *nap_key_instance_port(const NapConfig *c, const NapInstance *i) {
        assert(c);
        assert(i);

        return strdup_printf("%s/port/%s/%s/%u", c->etcd_prefix, i->service.user, i->service.app, i->number);
}

char *nap_key_endpoints(const NapConfig *c, const NapService *s) {
        assert(c);
        assert(s);

        return strdup_printf("%s/%s_%s/", c->etcd_prefix, s->user, s->app);
}

char *nap_key_endpoint(const NapConfig *c, const NapService *s, const char *host, unsigned port) {
        assert(c);
        assert(s);
        assert(host);

        bool v6 = strchr(host, ':');
        return strdup_printf("%s/%s_%s/%s%s%s:%u", c->etcd_prefix, s->user, s->app, v6 ? "[" : "", host,
                             v6 ? "]" : "", port);
}

void nap_endpoint_clear(NapEndpoint *ep) {
        assert(ep);

        free(ep->host);
        free(ep->instance);
        free(ep->unit);
        *ep = (NapEndpoint) {};
}

char *nap_endpoint_format(const NapEndpoint *ep) {
        assert(ep);

        json_auto_t *j = json_pack("{s:s, s:I, s:s, s:s}", "host", ep->host, "port", (json_int_t) ep->port,
                                   "instance", ep->instance, "unit", ep->unit);
        return j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
}

static bool host_is_clean(const char *s) {
        if (isempty(s) || strlen(s) > 253)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= 0x20 || *s == 0x7f || *s == '/')
                        return false;
        return true;
}

static int endpoint_check(const NapEndpoint *ep, NapError *e) {
        NapInstance i;
        char unit[NAP_UNIT_NAME_MAX];
        if (!host_is_clean(ep->host))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG, "Endpoint has an invalid host");
        if (ep->port < 1 || ep->port > 65535)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG, "Endpoint has an invalid port");
        if (nap_instance_parse(ep->instance, &i, NULL) < 0 || !streq(nap_instance_unit_name(&i, unit), ep->unit))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG,
                                     "Endpoint names an invalid instance or unit");
        return 0;
}

int nap_endpoint_parse(const char *text, size_t size, NapEndpoint *ret, NapError *e) {
        assert(text || size == 0);
        assert(ret);

        if (size > NAP_ENDPOINT_VALUE_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EMSGSIZE, "Endpoint value is too big");
        json_auto_t *j = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        const char *host, *instance, *unit;
        json_int_t port;
        if (!j || json_unpack(j, "{s:s, s:I, s:s, s:s !}", "host", &host, "port", &port, "instance", &instance,
                              "unit", &unit) < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EBADMSG,
                                     "Endpoint value is not {\"host\",\"port\",\"instance\",\"unit\"}");
        NapEndpoint ep = {
                .host = strdup(host),
                .port = port > 0 && port <= 65535 ? (unsigned) port : 0,
                .instance = strdup(instance),
                .unit = strdup(unit),
        };
        if (!ep.host || !ep.instance || !ep.unit) {
                nap_endpoint_clear(&ep);
                return nap_error_errno(e, -ENOMEM, "Failed to read endpoint");
        }
        int r = endpoint_check(&ep, e);
        if (r < 0) {
                nap_endpoint_clear(&ep);
                return r;
        }
        *ret = ep;
        return 0;
}
