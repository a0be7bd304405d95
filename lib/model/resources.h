/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Amounts of CPU, memory and storage, as people write them and as
 * systemd's resource control takes them.
 *
 *   CPU      milli-cores: "500m", "0.5", "2", "1.25" (at most 3 decimals)
 *   bytes    "67108864", "64M", "1.5G"; K, M, G, T are powers of 1024 as
 *            in systemd (and Ki, Mi, Gi, Ti mean the same); "B" optional
 *   AMOUNT   one value (request and limit alike) or "REQUEST:LIMIT"
 *
 * Requests are what admission adds up (seed 004's CheckCompute: the sum of
 * requests must fit the capacity, an exact fit passes); limits are what
 * the kernel enforces. How they become unit settings:
 *   CPU limit        CPUQuota= limit/10 %  (1000m = 100 %, one CPU's time;
 *                    a milli-core is 0.1 %, which systemd takes exactly)
 *   CPU request      CPUWeight= 1 + (shares − 2) × 9999 / 262142, shares =
 *                    request × 1024 / 1000 (the cgroup v1 shares → v2
 *                    weight conversion Kubernetes uses), clamped 1..10000
 *   memory limit     MemoryMax=
 *   memory request   MemoryLow= (protected from reclaim up to it) */

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* A host's worth, and then some: absurd values are refused by name. */
#define NAP_CPU_MILLI_MAX (UINT64_C(1024) * 1000)         /* 1024 CPUs */
#define NAP_BYTES_MAX (UINT64_C(1) << 60)                 /* 1 EiB */

typedef struct NapCompute {
        uint64_t request_cpu_milli, limit_cpu_milli;
        uint64_t request_memory, limit_memory;
} NapCompute;

typedef struct NapStorage {
        uint64_t request_bytes, limit_bytes;
} NapStorage;

/* 0 < value <= the maximum; e names what and why. */
int nap_cpu_parse(const char *s, uint64_t *ret_milli, NapError *e);
int nap_bytes_parse(const char *s, uint64_t *ret, NapError *e);
/* "REQUEST" or "REQUEST:LIMIT", limit >= request. */
int nap_cpu_amount_parse(const char *s, uint64_t *ret_request, uint64_t *ret_limit, NapError *e);
int nap_bytes_amount_parse(const char *s, uint64_t *ret_request, uint64_t *ret_limit, NapError *e);

/* A request and limit pair as the API takes it: request > 0 unless both
 * are 0 (nothing asked), limit 0 means "as the request", never below it;
 * what names the resource in the error ("cpu", "memory", "storage"). */
int nap_amount_check(const char *what, uint64_t request, uint64_t *limit, uint64_t max, NapError *e);
int nap_compute_check(NapCompute *c, NapError *e);
int nap_storage_check(NapStorage *s, NapError *e);
bool nap_compute_is_empty(const NapCompute *c) _pure_;

/* "500m", "2"; "64M", "1.5G" when exact, else bytes: short, and read back
 * by the parsers to the same value. buf: at least NAP_AMOUNT_STRING_MAX. */
#define NAP_AMOUNT_STRING_MAX 32
const char *nap_cpu_format(uint64_t milli, char *buf);
const char *nap_bytes_format(uint64_t bytes, char *buf);
/* For people only (not read back): exact as above when it is short, else
 * one decimal of the largest unit, "11.8G". */
const char *nap_bytes_format_human(uint64_t bytes, char *buf);

/* The unit settings of a compute request, per the table above. */
uint64_t nap_cpu_weight(uint64_t request_milli) _pure_;
/* CPUQuota='s value: "50%", "12.5%". */
const char *nap_cpu_quota_format(uint64_t limit_milli, char *buf);
