/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "cluster/rollout.h"

static int oom(NapError *e) {
        return nap_error_errno(e, -ENOMEM, "Out of memory");
}

static const char *const phase_table[_NAP_CLUSTER_ROLLOUT_PHASE_MAX] = {
        [NAP_CLUSTER_ROLLOUT_ROLLING] = "rolling",
        [NAP_CLUSTER_ROLLOUT_ROLLING_BACK] = "rolling-back",
};

const char *nap_cluster_rollout_phase_to_string(NapClusterRolloutPhase p) {
        return p >= 0 && p < _NAP_CLUSTER_ROLLOUT_PHASE_MAX ? phase_table[p] : NULL;
}

NapClusterRolloutPhase nap_cluster_rollout_phase_from_string(const char *s) {
        for (int p = 0; s && p < _NAP_CLUSTER_ROLLOUT_PHASE_MAX; p++)
                if (streq(s, phase_table[p]))
                        return p;
        return _NAP_CLUSTER_ROLLOUT_PHASE_INVALID;
}

void nap_cluster_rollout_done(NapClusterRollout *r) {
        if (!r)
                return;
        nap_assignment_array_free(r->old, r->n_old);
        r->old = NULL;
        r->n_old = 0;
}

void nap_cluster_rollout_array_free(NapClusterRollout *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                nap_cluster_rollout_done(l + i);
        free(l);
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *old_json(const NapClusterRollout *r) {
        json_t *l = json_array();
        for (size_t i = 0; l && i < r->n_old; i++) {
                _cleanup_free_ char *text = NULL;
                json_t *a = nap_assignment_to_json(r->old + i, &text) < 0 ? NULL : json_loads(text, 0, NULL);
                if (!a || json_array_append_new(l, a) < 0) {
                        json_decref(l);
                        return NULL;
                }
        }
        return l;
}

int nap_cluster_rollout_to_json(const NapClusterRollout *r, char **ret) {
        char name[NAP_SERVICE_NAME_MAX];
        assert(r);
        assert(ret);
        json_t *old = old_json(r);
        if (!old)
                return -ENOMEM;
        return nap_cluster_json_dump(
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:o}", "app",
                          nap_service_name(&r->service, name), "from", r->from, "to", r->to, "phase",
                          nap_cluster_rollout_phase_to_string(r->phase), "node", r->node, "takenOver",
                          r->taken_over, "generation", (json_int_t) r->generation, "time",
                          (json_int_t) r->time_usec, "old", old),
                ret);
}

static int commit_field(json_t *o, const char *field, char *buf, bool may_be_empty) {
        const char *s = nap_cluster_json_string(o, field, NAP_COMMIT_HEX_LEN);
        if (!s || !(nap_commit_is_valid(s) || (may_be_empty && isempty(s))))
                return -EBADMSG;
        memcpy(buf, s, strlen(s) + 1);
        return 0;
}

/* Each an assignment of the rollout's app. */
static int old_fields(json_t *o, NapClusterRollout *r) {
        json_t *l = json_object_get(o, "old"), *a;
        size_t i;
        if (!json_is_array(l) || json_array_size(l) > NAP_CLUSTER_ROLLOUT_OLD_MAX)
                return -EBADMSG;
        r->old = calloc(json_array_size(l) ?: 1, sizeof *r->old);
        if (!r->old)
                return -ENOMEM;
        json_array_foreach(l, i, a) {
                _cleanup_free_ char *text = json_dumps(a, JSON_COMPACT);
                if (!text)
                        return -ENOMEM;
                if (nap_assignment_from_json(text, strlen(text), r->old + r->n_old, NULL) < 0)
                        return -EBADMSG;
                r->n_old++;
                if (memcmp(&r->old[i].instance.service, &r->service, sizeof r->service) != 0)
                        return -EBADMSG;
        }
        return 0;
}

static int rollout_fields(json_t *o, NapClusterRollout *r, const char **field) {
        const char *s = (*field = "app", nap_cluster_json_string(o, "app", NAP_SERVICE_NAME_MAX));
        int k = s && nap_service_parse(s, &r->service, NULL) >= 0 ? 0 : -EBADMSG;
        if (k >= 0)
                k = (*field = "from", commit_field(o, *field, r->from, true));
        if (k >= 0)
                k = (*field = "to", commit_field(o, *field, r->to, false));
        if (k >= 0) {
                *field = "phase";
                r->phase = nap_cluster_rollout_phase_from_string(nap_cluster_json_string(o, *field, 16));
                k = r->phase < 0 ? -EBADMSG : 0;
        }
        if (k >= 0) {
                *field = "node";
                s = nap_cluster_json_string(o, *field, NAP_NODE_NAME_MAX);
                k = s && nap_node_name_check(s, NULL) >= 0 ? 0 : -EBADMSG;
                if (k >= 0)
                        memcpy(r->node, s, strlen(s) + 1);
        }
        if (k >= 0 && (*field = "takenOver", !json_is_boolean(json_object_get(o, *field))))
                k = -EBADMSG;
        if (k >= 0)
                r->taken_over = json_is_true(json_object_get(o, *field));
        if (k >= 0)
                k = (*field = "generation", nap_cluster_json_u64(o, *field, UINT64_MAX >> 1, &r->generation));
        if (k >= 0)
                k = (*field = "time", nap_cluster_json_u64(o, *field, UINT64_MAX >> 1, &r->time_usec));
        if (k >= 0)
                k = (*field = "old", old_fields(o, r));
        return k;
}

int nap_cluster_rollout_from_json(const char *text, size_t size, NapClusterRollout *ret, NapError *e) {
        json_auto_t *o = NULL;
        NapClusterRollout r = {};
        const char *field = NULL;
        assert(ret);
        int k = nap_cluster_json_load(text, size, &o, "rollout", e);
        if (k < 0)
                return k;
        k = rollout_fields(o, &r, &field);
        if (k < 0) {
                nap_cluster_rollout_done(&r);
                return k == -ENOMEM ? oom(e) : nap_cluster_json_damaged(e, "rollout", field);
        }
        *ret = r;
        return 0;
}

/* ---- in etcd ---------------------------------------------------------- */

char *nap_key_cluster_rollout(const char *prefix, const NapService *s) {
        char name[NAP_SERVICE_NAME_MAX];
        return strdup_printf("%s/rollouts/%s", prefix, nap_service_name(s, name));
}

EtcdTxnCompare nap_cluster_rollout_leader_guard(const char *leader_key, int64_t leader_revision) {
        return (EtcdTxnCompare) { .key = leader_key, .target = ETCD_COMPARE_CREATE_REVISION,
                                  .revision = leader_revision };
}

int nap_cluster_rollout_put(EtcdClient *c, const char *prefix, NapClusterRollout *r, const EtcdTxnCompare *guard,
                            NapError *e) {
        _cleanup_free_ char *key = nap_key_cluster_rollout(prefix, &r->service), *value = NULL;
        NapClusterRollout next = *r;
        int64_t revision = 0;
        assert(c);
        next.generation++;
        next.time_usec = realtime_usec();
        if (!key || nap_cluster_rollout_to_json(&next, &value) < 0)
                return oom(e);
        const EtcdTxnCompare cmp[] = {
                guard ? *guard : (EtcdTxnCompare) {},
                { .key = key, .target = ETCD_COMPARE_MOD_REVISION, .revision = r->mod_revision },
        };
        const EtcdTxnOp op = { .type = ETCD_TXN_PUT, .key = key, .value = value, .value_size = strlen(value) };
        int k = etcd_txn(c, guard ? cmp : cmp + 1, guard ? 2 : 1, &op, 1, &revision, e);
        if (k > 0) {
                r->generation = next.generation;
                r->time_usec = next.time_usec;
                r->mod_revision = revision;
        }
        return k;
}

static int rollout_from_kv(const EtcdKeyValue *kv, NapClusterRollout *ret, NapError *e) {
        const char *slash = strrchr(kv->key, '/');
        char name[NAP_SERVICE_NAME_MAX];
        int k = nap_cluster_rollout_from_json(kv->value, kv->value_size, ret, e);
        if (k < 0)
                return k;
        if (!slash || !streq(slash + 1, nap_service_name(&ret->service, name))) {
                nap_cluster_rollout_done(ret);
                return nap_cluster_json_damaged(e, "rollout", "app (not the key's)");
        }
        ret->mod_revision = kv->mod_revision;
        return 0;
}

int nap_cluster_rollout_get(EtcdClient *c, const char *prefix, const NapService *s, NapClusterRollout *ret,
                            NapError *e) {
        _cleanup_free_ char *key = nap_key_cluster_rollout(prefix, s);
        EtcdKeyValue kv = {};
        assert(c);
        assert(ret);
        *ret = (NapClusterRollout) {};
        int k = key ? etcd_get(c, key, &kv, e) : oom(e);
        if (k > 0)
                k = rollout_from_kv(&kv, ret, e) < 0 ? -EBADMSG : 1;
        etcd_key_value_done(&kv);
        return k;
}

int nap_cluster_rollouts_list(EtcdClient *c, const char *prefix, NapClusterRollout **ret, size_t *ret_n,
                              unsigned *ret_damaged, NapError *e) {
        _cleanup_(etcd_range_done) EtcdRange range = {};
        _cleanup_free_ char *dir = strdup_printf("%s/rollouts/", prefix);
        NapClusterRollout *l = NULL;
        size_t n = 0;
        assert(c);
        assert(ret);
        assert(ret_n);
        int k = dir ? etcd_range_prefix(c, dir, 0, false, &range, e) : oom(e);
        if (k >= 0 && !(l = calloc(range.n_kvs ?: 1, sizeof *l)))
                k = oom(e);
        if (k < 0)
                return k;
        for (size_t i = 0; i < range.n_kvs; i++)
                n += rollout_from_kv(range.kvs + i, l + n, NULL) >= 0;
        if (ret_damaged)
                *ret_damaged = (unsigned) (range.n_kvs - n);
        *ret = l;
        *ret_n = n;
        return 0;
}

/* The app's record at commit, guarded (a txn comparing its mod_revision
 * as read): a deposed leader writes nothing. */
static int app_source_at(EtcdClient *c, const char *prefix, const NapService *s, const char *commit,
                         const EtcdTxnCompare *guard, NapError *e) {
        _cleanup_free_ char *key = nap_key_app_source(prefix, s), *value = NULL;
        _cleanup_(nap_app_source_done) NapAppSource src = {};
        EtcdKeyValue kv = {};
        int k = key ? etcd_get(c, key, &kv, e) : oom(e);
        if (k > 0 && nap_app_source_from_json(kv.value, kv.value_size, &src, NULL) < 0)
                k = 0; /* damaged: a deploy writes it again; nothing to set */
        if (k <= 0 || isempty(commit) || streq(src.commit, commit)) {
                etcd_key_value_done(&kv);
                return k < 0 ? k : 1;
        }
        memcpy(src.commit, commit, sizeof src.commit);
        src.time_usec = realtime_usec();
        const EtcdTxnCompare cmp[] = {
                { .key = key, .target = ETCD_COMPARE_MOD_REVISION, .revision = kv.mod_revision },
                guard ? *guard : (EtcdTxnCompare) {},
        };
        etcd_key_value_done(&kv);
        if (nap_app_source_to_json(&src, &value) < 0)
                return oom(e);
        const EtcdTxnOp op = { .type = ETCD_TXN_PUT, .key = key, .value = value, .value_size = strlen(value) };
        return etcd_txn(c, cmp, ELEMENTSOF(cmp) - !guard, &op, 1, NULL, e);
}

int nap_cluster_rollout_finish(EtcdClient *c, const char *prefix, const NapClusterRollout *r,
                               const EtcdTxnCompare *guard, NapError *e) {
        _cleanup_free_ char *key = nap_key_cluster_rollout(prefix, &r->service);
        const char *at = r->phase == NAP_CLUSTER_ROLLOUT_ROLLING ? r->to : r->from;
        assert(c);
        if (!key)
                return oom(e);
        int k = app_source_at(c, prefix, &r->service, at, guard, e);
        if (k <= 0)
                return k;
        const EtcdTxnCompare cmp[] = {
                { .key = key, .target = ETCD_COMPARE_MOD_REVISION, .revision = r->mod_revision },
                guard ? *guard : (EtcdTxnCompare) {},
        };
        const EtcdTxnOp op = { .type = ETCD_TXN_DELETE, .key = key };
        return etcd_txn(c, cmp, ELEMENTSOF(cmp) - !guard, &op, 1, NULL, e);
}

/* ---- the leader's step ------------------------------------------------ */

typedef struct Step {
        EtcdClient *etcd;
        const char *prefix;
        NapClusterRollout *r;
        const EtcdTxnCompare *guard;
        EtcdTxnCompare guards[2]; /* guard and the record's mod_revision: assignment writes */
        char *record_key;
        NapAssignment *app; /* the app's assignments now, on every node */
        size_t n_app;
        NapClusterRolloutStep stats;
} Step;

static void step_done(Step *x) {
        nap_assignment_array_free(x->app, x->n_app);
        free(x->record_key);
}

static int read_app(Step *x, NapError *e) {
        NapAssignment *l = NULL;
        size_t n = 0, k = 0;
        int r = nap_assignments_list_all(x->etcd, x->prefix, &l, &n, NULL, NULL, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (memcmp(&l[i].instance.service, &x->r->service, sizeof x->r->service) == 0)
                        l[k++] = l[i];
                else
                        nap_assignment_done(l + i);
        x->app = l;
        x->n_app = k;
        return 0;
}

static const NapAssignment *by_number(const Step *x, unsigned number) {
        for (size_t i = 0; i < x->n_app; i++)
                if (x->app[i].instance.number == number)
                        return x->app + i;
        return NULL;
}

/* The replacement of old number `number` at commit: the deploying host's
 * request id, so what it made is found, not made again. */
static void roll_request(char ret[static NAP_REQUEST_ID_MAX + 1], unsigned number, const char *commit) {
        snprintf(ret, NAP_REQUEST_ID_MAX + 1, "roll:%u:%s", number, commit);
}

static const NapAssignment *by_request(const Step *x, unsigned number, const char *commit) {
        char request[NAP_REQUEST_ID_MAX + 1];
        roll_request(request, number, commit);
        for (size_t i = 0; i < x->n_app; i++)
                if (streq(x->app[i].request, request))
                        return x->app + i;
        return NULL;
}

/* Its node's report: active, failed, or neither yet (activating, none, or
 * of an earlier generation). */
static int observed_state(Step *x, const NapAssignment *a, NapObservedState *ret, NapError *e) {
        _cleanup_free_ char *key = nap_key_observed(x->prefix, a->node, &a->instance);
        _cleanup_(nap_observed_done) NapObserved o = {};
        EtcdKeyValue kv = {};
        *ret = NAP_OBSERVED_ACTIVATING;
        int r = key ? etcd_get(x->etcd, key, &kv, e) : oom(e);
        if (r > 0 && nap_observed_from_json(kv.value, kv.value_size, &o, NULL) >= 0 && o.generation >= a->generation)
                *ret = o.state;
        etcd_key_value_done(&kv);
        return r < 0 ? r : 0;
}

/* A replacement of old at commit, on old's node (the reconciler moves it
 * on if that node is dead). */
static int make(Step *x, const NapAssignment *old, const char *commit, NapError *e) {
        _cleanup_(nap_assignment_done) NapAssignment a = {};
        NapError why = NAP_ERROR_NULL;
        if (nap_assignment_copy(old, &a) < 0)
                return oom(e);
        memcpy(a.commit, commit, sizeof a.commit);
        roll_request(a.request, old->instance.number, commit);
        int r = nap_assignment_create_guarded(x->etcd, x->prefix, &a, x->guards, ELEMENTSOF(x->guards), &why);
        if (r < 0 && why.kind == NAP_ERROR_NOT_AVAILABLE) {
                x->stats.lost++; /* the guard no longer holds */
                return 0;
        }
        if (r < 0)
                return nap_error_set(e, why.kind, r, "%s", why.message);
        x->stats.made += r > 0;
        x->stats.pending++;
        return 0;
}

static int withdraw(Step *x, const NapAssignment *a, NapError *e) {
        int r = nap_assignment_delete_guarded(x->etcd, x->prefix, a, x->guards, ELEMENTSOF(x->guards), e);
        if (r < 0)
                return r;
        if (r == 0)
                x->stats.lost++;
        x->stats.withdrawn += r > 0;
        return 0;
}

/* Rolling: old's replacement at `to`, then old withdrawn once it is
 * active. A failed replacement turns the rollout to rolling back (1). */
static int forward(Step *x, const NapAssignment *old, NapError *e) {
        const NapAssignment *cur = by_number(x, old->instance.number), *next = by_request(x, old->instance.number, x->r->to);
        NapObservedState state;
        if (!cur && !next)
                return 0; /* removed meanwhile: nothing to replace */
        if (!next)
                return make(x, old, x->r->to, e);
        int r = observed_state(x, next, &state, e);
        if (r < 0)
                return r;
        if (state == NAP_OBSERVED_FAILED)
                return 1;
        if (state != NAP_OBSERVED_ACTIVE) {
                x->stats.pending++;
                return 0;
        }
        return cur ? withdraw(x, cur, e) : 0;
}

/* Rolling back: old itself, or its replacement back at its own commit
 * once active; then its replacement at `to` withdrawn. */
static int backward(Step *x, const NapAssignment *old, NapError *e) {
        const NapAssignment *cur = by_number(x, old->instance.number),
                            *next = by_request(x, old->instance.number, x->r->to),
                            *back = by_request(x, old->instance.number, old->commit);
        NapObservedState state = NAP_OBSERVED_ACTIVE;
        if (!cur && !next && !back)
                return 0; /* removed meanwhile */
        if (!cur && !back)
                return make(x, old, old->commit, e);
        int r = cur ? 0 : observed_state(x, back, &state, e);
        if (r < 0)
                return r;
        if (state != NAP_OBSERVED_ACTIVE) {
                x->stats.pending++; /* a failed one is tried again by its node */
                return 0;
        }
        return next ? withdraw(x, next, e) : 0;
}

/* Taken over, its phase decided by the rule (rollout.h). 1: written. */
static int take_over(Step *x, const char *recorded, NapError *e) {
        bool back = x->r->phase == NAP_CLUSTER_ROLLOUT_ROLLING_BACK || !streq(recorded, x->r->to);
        if (x->r->taken_over && back == (x->r->phase == NAP_CLUSTER_ROLLOUT_ROLLING_BACK))
                return 1;
        NapClusterRollout next = *x->r;
        next.taken_over = true;
        next.phase = back ? NAP_CLUSTER_ROLLOUT_ROLLING_BACK : NAP_CLUSTER_ROLLOUT_ROLLING;
        x->stats.rolled_back = back && x->r->phase == NAP_CLUSTER_ROLLOUT_ROLLING;
        int r = nap_cluster_rollout_put(x->etcd, x->prefix, &next, x->guard, e);
        if (r > 0)
                *x->r = next; /* the same old array */
        x->stats.lost += r == 0;
        return r;
}

/* The commit the app's record says ("" none or damaged). */
static int recorded_commit(Step *x, char ret[static NAP_COMMIT_HEX_LEN + 1], NapError *e) {
        _cleanup_(nap_app_source_done) NapAppSource src = {};
        NapError why = NAP_ERROR_NULL;
        int r = nap_app_source_get(x->etcd, x->prefix, &x->r->service, &src, &why);
        if (r < 0 && why.kind != NAP_ERROR_INTERNAL)
                return nap_error_set(e, why.kind, r, "%s", why.message);
        memcpy(ret, r > 0 ? src.commit : "", r > 0 ? NAP_COMMIT_HEX_LEN + 1 : 1);
        return 0;
}

/* Assignment writes compare the record as this step holds it too: a
 * deploy that replaced it meanwhile is not undone. */
static int step_each(Step *x, NapError *e) {
        x->record_key = nap_key_cluster_rollout(x->prefix, &x->r->service);
        if (!x->record_key)
                return oom(e);
        x->guards[0] = *x->guard;
        x->guards[1] = (EtcdTxnCompare) { .key = x->record_key, .target = ETCD_COMPARE_MOD_REVISION,
                                          .revision = x->r->mod_revision };
        for (size_t i = 0; i < x->r->n_old; i++) {
                int r = x->r->phase == NAP_CLUSTER_ROLLOUT_ROLLING ? forward(x, x->r->old + i, e)
                                                                   : backward(x, x->r->old + i, e);
                if (r != 0)
                        return r;
        }
        return 0;
}

int nap_cluster_rollout_step(EtcdClient *c, const char *prefix, NapClusterRollout *r, const EtcdTxnCompare *guard,
                             NapClusterRolloutStep *ret, NapError *e) {
        _cleanup_(step_done) Step x = { .etcd = c, .prefix = prefix, .r = r, .guard = guard };
        char recorded[NAP_COMMIT_HEX_LEN + 1];
        assert(c);
        assert(guard);
        assert(ret);
        int k = recorded_commit(&x, recorded, e);
        if (k >= 0)
                k = take_over(&x, recorded, e);
        if (k <= 0) {
                *ret = x.stats;
                return k < 0 ? k : 0;
        }
        k = read_app(&x, e);
        if (k >= 0)
                k = step_each(&x, e);
        if (k > 0) { /* a replacement failed: back, from the next round */
                r->phase = NAP_CLUSTER_ROLLOUT_ROLLING_BACK;
                x.stats.rolled_back = true;
                k = nap_cluster_rollout_put(c, prefix, r, guard, e);
                x.stats.lost += k == 0;
        } else if (k >= 0 && x.stats.pending + x.stats.made + x.stats.lost + x.stats.withdrawn == 0) {
                k = nap_cluster_rollout_finish(c, prefix, r, guard, e);
                x.stats.finished = k > 0;
                x.stats.lost += k == 0;
        }
        *ret = x.stats;
        return k < 0 ? k : 0;
}
