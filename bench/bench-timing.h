/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the timing drivers of bench/ share (each is built by its script
 * with `cc`, not by meson): a clock, percentiles and the summary line,
 * and timing a command. */

#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_nsec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* The pct-th percentile of n values sorted by cmp_u64 (the value below
 * which pct % of them lie; 100: the largest). */
static inline uint64_t percentile(const uint64_t *sorted, size_t n, unsigned pct) {
        return sorted[n * pct / 100 < n ? n * pct / 100 : n - 1];
}

/* A driver's failure, said on stderr: 1, its exit status. */
static inline int bench_failed(const char *what, const char *why) {
        fprintf(stderr, "%s: %s\n", what, why);
        return 1;
}

typedef struct Summary {
        uint64_t p50, p90, p99, mean;
} Summary;

/* The percentiles and mean of the n values (sorted in place), each
 * divided by unit (1: ns as measured, 1000: µs). */
static inline Summary summarize(uint64_t *v, size_t n, uint64_t unit) {
        uint64_t sum = 0;
        qsort(v, n, sizeof *v, cmp_u64);
        for (size_t i = 0; i < n; i++)
                sum += v[i];
        return (Summary) { .p50 = percentile(v, n, 50) / unit, .p90 = percentile(v, n, 90) / unit,
                           .p99 = percentile(v, n, 99) / unit, .mean = sum / n / unit };
}

/* Prints "p50 p99 mean" of the n values (sorted in place), each divided
 * by unit. */
static inline void report(uint64_t *v, size_t n, uint64_t unit) {
        Summary s = summarize(v, n, unit);
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s.p50, s.p99, s.mean);
}

/* n runs of argv (stdout to /dev/null; each must exit 0), in ns; 1 if one
 * failed. */
static inline int run_spawn(uint64_t *v, size_t n, char **argv) {
        extern char **environ;
        posix_spawn_file_actions_t fa;
        int r = 0;

        if (posix_spawn_file_actions_init(&fa) != 0 ||
            posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0) != 0)
                return 1;
        for (size_t i = 0; r == 0 && i < n; i++) {
                uint64_t t0 = now_nsec();
                int status;
                pid_t pid;
                if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0 || waitpid(pid, &status, 0) != pid ||
                    !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "%s failed\n", argv[0]);
                        r = 1;
                }
                v[i] = now_nsec() - t0;
        }
        posix_spawn_file_actions_destroy(&fa);
        return r;
}
