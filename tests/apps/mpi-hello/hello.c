/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nap's MPI test app (tests/integration/test-mpi.sh, bench/mpi): each rank
 * prints its rank, the job's size, the sum of all ranks (MPI_Allreduce),
 * the greeting it was given and the unit it runs in (the last line of
 * /proc/self/cgroup), after sleeping the given seconds (a job that lasts,
 * for the failure tests). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void own_unit(char *buf, size_t size) {
        FILE *f = fopen("/proc/self/cgroup", "re");
        char line[1024];
        snprintf(buf, size, "unknown");
        while (f && fgets(line, sizeof line, f)) {
                char *unit = strrchr(line, '/');
                if (unit) {
                        unit[strcspn(unit, "\n")] = 0;
                        snprintf(buf, size, "%s", unit + 1);
                }
        }
        if (f)
                fclose(f);
}

int main(int argc, char **argv) {
        int rank, size, sum = 0;
        char unit[256];
        const char *greeting = argc > 1 ? argv[1] : "hello";
        int sleep_sec = argc > 2 ? atoi(argv[2]) : 0;

        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (sleep_sec > 0)
                sleep((unsigned) sleep_sec);
        MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        own_unit(unit, sizeof unit);
        printf("rank %d of %d: sum %d, %s from %s\n", rank, size, sum, greeting, unit);
        fflush(stdout);
        MPI_Finalize();
        return 0;
}
