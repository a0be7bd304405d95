/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Microseconds of a clock: CLOCK_REALTIME for what is recorded (a deploy's
 * time, a reservation's), CLOCK_MONOTONIC for deadlines and durations. */

#include <stdint.h>
#include <time.h>

#define USEC_PER_SEC UINT64_C(1000000)

static inline uint64_t clock_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static inline uint64_t realtime_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}

static inline uint64_t monotonic_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}
