/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Replays inputs through a libFuzzer target without libFuzzer: every file
 * named on the command line, and every regular file in every directory
 * named (not recursively, in name order), goes to LLVMFuzzerTestOneInput()
 * once, in a buffer of exactly its size, so a sanitizer build sees any
 * read past the end. A missing file or directory is an error: a corpus
 * that silently vanished must not pass as "no crash". */

#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/macro.h"

/* Big enough for any corpus entry; libFuzzer's own default is 4 KiB. */
#define REPLAY_MAX_SIZE (16u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
        _cleanup_free_ char *text = NULL, *exact = NULL;
        size_t size;

        int r = read_full_file(path, REPLAY_MAX_SIZE, &text, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        exact = malloc(size ?: 1);
        if (!exact)
                return -ENOMEM;
        memcpy(exact, text, size);
        LLVMFuzzerTestOneInput((const uint8_t *) exact, size);
        return 0;
}

static void free_entries(struct dirent **l, int n) {
        for (int i = 0; i < n; i++)
                free(l[i]);
        free(l);
}

/* Returns the number of files replayed, or a negative errno. */
static int replay_dir(const char *dir) {
        struct dirent **l = NULL;
        int n = scandir(dir, &l, NULL, alphasort), count = 0, r = 0;
        if (n < 0) {
                fprintf(stderr, "%s: %m\n", dir);
                return negative_errno();
        }
        for (int i = 0; i < n && r >= 0; i++) {
                char path[PATH_MAX];
                struct stat st;
                if (l[i]->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof path, "%s/%s", dir, l[i]->d_name);
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                r = replay_file(path);
                count++;
        }
        free_entries(l, n);
        return r < 0 ? r : count;
}

int main(int argc, char **argv) {
        int total = 0;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s FILE|DIR...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %m\n", argv[i]);
                        return 1;
                }
                if (S_ISDIR(st.st_mode))
                        r = replay_dir(argv[i]);
                else
                        r = replay_file(argv[i]) < 0 ? -EIO : 1;
                if (r < 0)
                        return 1;
                total += r;
        }
        printf("%d inputs replayed\n", total);
        return 0;
}
