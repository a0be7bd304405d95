/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdlib.h>

#include "dispatch.h"
#include "instance-cache.h"
#include "worker.h"

struct Dispatcher {
        NapContext *context;
        WorkerPool *workers;
        InstanceCache *instances;
};

int dispatcher_new(sd_event *event, NapContext *context, DispatcherChanged changed, void *userdata,
                   Dispatcher **ret) {
        assert(ret);
        Dispatcher *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->context = context;
        int r = worker_pool_new(event, context, changed, userdata, &d->workers);
        if (r >= 0)
                r = instance_cache_new(event, context, &d->instances);
        if (r < 0)
                return dispatcher_free(d), r;
        *ret = d;
        return 0;
}

Dispatcher *dispatcher_free(Dispatcher *d) {
        if (!d)
                return NULL;
        worker_pool_free(d->workers);
        instance_cache_free(d->instances);
        free(d);
        return NULL;
}

NapContext *dispatcher_context(Dispatcher *d) {
        assert(d);
        return d->context;
}

void dispatcher_prepare(Dispatcher *d) {
        assert(d);
        instance_cache_prepare(d->instances);
}

static void answer_error(const NapMethod *m, NapError *e, DispatchDone done, void *userdata) {
        json_auto_t *envelope = nap_method_envelope(m, NULL, e);
        done(envelope, userdata);
}

static void answer_inline(Dispatcher *d, const NapMethod *m, json_t *args, DispatchDone done, void *userdata) {
        json_auto_t *envelope = nap_method_run(d->context, m, args);
        done(envelope, userdata);
}

static void submit(Dispatcher *d, const NapMethod *m, json_t *args, DispatchDone done, void *userdata) {
        NapError e = NAP_ERROR_NULL;
        int r = worker_pool_submit(d->workers, m, args, done, userdata);
        if (r == -ESHUTDOWN)
                nap_error_set(&e, NAP_ERROR_NOT_AVAILABLE, r, "nap-managerd is shutting down; call again");
        else if (r < 0)
                nap_error_errno(&e, r, "Failed to start a worker for %s", m->name);
        if (r < 0)
                answer_error(m, &e, done, userdata);
}

void dispatcher_call(Dispatcher *d, const NapMethod *m, uid_t uid, json_t *args, DispatchDone done,
                     void *userdata) {
        NapError e = NAP_ERROR_NULL;

        assert(d);
        assert(m);
        assert(done);
        if (nap_method_authorize(m, uid, args, &e) < 0)
                return answer_error(m, &e, done, userdata);
        switch (m->run) {
        case NAP_METHOD_INLINE:
                return answer_inline(d, m, args, done, userdata);
        case NAP_METHOD_WORKER:
                return submit(d, m, args, done, userdata);
        case NAP_METHOD_INLINE_OR_CLUSTER:
                if (d->context->config->etcd)
                        return submit(d, m, args, done, userdata);
                return answer_inline(d, m, args, done, userdata);
        case NAP_METHOD_CACHED:
                /* in a cluster the instances of other hosts come from
                 * etcd, which the loop must not wait for */
                if (d->context->config->etcd)
                        return submit(d, m, args, done, userdata);
                return instance_cache_call(d->instances, m, args, done, userdata);
        }
}

void dispatcher_shut_down(Dispatcher *d) {
        assert(d);
        worker_pool_shut_down(d->workers);
}

unsigned dispatcher_calls(const Dispatcher *d) {
        return d ? worker_pool_calls(d->workers) : 0;
}
