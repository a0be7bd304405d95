/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* etcd gateway answer parsers and the stream framing: never crash, leak or
 * read past size. The first byte picks the parser (and, for a general txn,
 * how many requests it answered); for streams the second one sets the
 * chunk size, so lines arrive split at arbitrary places. An answer refused
 * for its content always comes with a message; an answer accepted yields
 * NUL-terminated keys and values of the stated sizes. */

#include <stdint.h>
#include <string.h>

#include "clients/etcd.h"

static void check_kv(const EtcdKeyValue *kv) {
        if (!kv->key || !kv->value)
                abort();
        if (kv->key[kv->key_size] != 0 || kv->value[kv->value_size] != 0)
                abort();
}

static void check_error(int r, const NapError *e) {
        if (r >= 0 || r == -ENOMEM)
                return;
        if (!nap_error_is_set(e) || !e->message[0] || e->errnum != -r)
                abort();
}

static int check_watch_line(const char *line, size_t len, void *userdata) {
        EtcdWatchResponse w = {};
        NapError e = NAP_ERROR_NULL;
        int r;

        if (len == 0 || memchr(line, '\n', len))
                abort(); /* the framing hands out whole, non-empty lines */
        r = etcd_parse_watch_line(line, len, &w, &e);
        check_error(r, &e);
        for (size_t i = 0; r >= 0 && i < w.n_events; i++) {
                if (!etcd_event_type_to_string(w.events[i].type))
                        abort();
                check_kv(&w.events[i].kv);
        }
        etcd_watch_response_done(&w);
        (*(size_t *) userdata)++;
        return 0;
}

static void fuzz_stream(const uint8_t *data, size_t size) {
        EtcdLineBuffer b = { .max = 64 + (size > 0 ? data[0] : 0) * 16 };
        size_t chunk = size > 1 ? data[1] % 32 + 1 : 1, lines = 0;
        int r = 0;

        for (size_t i = 2; i < size && r == 0; i += chunk)
                r = etcd_line_buffer_feed(&b, data + i, MIN(chunk, size - i), check_watch_line, &lines);
        if (r != 0 && r != -EMSGSIZE && r != -ENOMEM)
                abort();
        if (b.size > b.max)
                abort();
        etcd_line_buffer_done(&b);
}

/* which's high bits: how many requests the success branch had (0–11),
 * and whether they were ranges to move out. */
static int fuzz_txn_ops(uint8_t which, const char *text, size_t size, NapError *e) {
        EtcdKeyValue kvs[12];
        size_t n = which >> 4;
        bool ranges = which & 8;
        int64_t rev = 0;
        int r;

        memset(kvs, 0xaa, sizeof kvs); /* garbage: the parser must zero them */
        r = etcd_parse_txn_ops_response(text, size, n, ranges ? kvs : NULL, &rev, e);
        if (r > 1)
                abort();
        for (size_t i = 0; ranges && i < n; i++) {
                if (r <= 0 && (kvs[i].key || kvs[i].value))
                        abort(); /* failed or refused: nothing to free */
                if (kvs[i].key)
                        check_kv(&kvs[i]);
                etcd_key_value_done(&kvs[i]);
        }
        return r;
}

static void fuzz_answer(uint8_t which, const char *text, size_t size) {
        NapError e = NAP_ERROR_NULL;
        EtcdRange range = {};
        EtcdKeyValue kv = {};
        int64_t a = 0, b = 0;
        int r;

        switch (which % 8) {
        case 0:
                r = etcd_parse_range_response(text, size, &range, &e);
                for (size_t i = 0; r >= 0 && i < range.n_kvs; i++)
                        check_kv(&range.kvs[i]);
                etcd_range_done(&range);
                break;
        case 1:
                r = etcd_parse_put_response(text, size, &a, &e);
                break;
        case 2:
                r = etcd_parse_delete_response(text, size, &a, &e);
                if (r >= 0 && a < 0)
                        abort();
                break;
        case 3:
                r = etcd_parse_txn_response(text, size, &kv, &e);
                if (r == 0 && kv.key)
                        check_kv(&kv);
                etcd_key_value_done(&kv);
                break;
        case 4:
                r = etcd_parse_lease_grant_response(text, size, &a, &b, &e);
                if (r >= 0 && (a == 0 || b <= 0))
                        abort();
                break;
        case 5:
                r = etcd_parse_keepalive_response(text, size, &b, &e);
                if (r > 0 && b <= 0)
                        abort();
                break;
        case 7:
                r = fuzz_txn_ops(which, text, size, &e);
                break;
        default:
                r = etcd_parse_error(text, size, &e);
                if (r > 0)
                        abort();
                break;
        }
        check_error(r, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] >= 0xc0)
                fuzz_stream(data + 1, size - 1);
        else
                fuzz_answer(data[0], (const char *) data + 1, size - 1);
        return 0;
}
