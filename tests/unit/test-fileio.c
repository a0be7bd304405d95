/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "base/fileio.h"

static char *make_tmpdir(void) {
        char *t = strdup("/tmp/nap-test-fileio-XXXXXX");
        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode) {
        _cleanup_free_ char *p = path_join(dir, name, NULL);
        assert_int_equal(write_file_atomic(p, text, strlen(text), mode), 0);
}

static void test_read_full_file_bounded(void **state) {
        _cleanup_free_ char *d = make_tmpdir(), *p = path_join(d, "f", NULL), *buf = NULL;
        size_t n;
        write_file(d, "f", "hello", 0644);
        assert_int_equal(read_full_file(p, 5, &buf, &n), 0);
        assert_string_equal(buf, "hello");
        assert_int_equal(n, 5);
        free(TAKE_PTR(buf));
        assert_int_equal(read_full_file(p, 4, &buf, &n), -EFBIG);
        assert_null(buf);
        _cleanup_free_ char *missing = path_join(d, "nope", NULL);
        assert_int_equal(read_full_file(missing, 10, &buf, NULL), -ENOENT);
        assert_int_equal(rm_rf(d), 0);
}

static void test_write_file_atomic_replaces_and_sets_mode(void **state) {
        _cleanup_free_ char *d = make_tmpdir(), *p = path_join(d, "f", NULL), *buf = NULL;
        write_file(d, "f", "one", 0600);
        write_file(d, "f", "two", 0640);
        assert_int_equal(read_full_file(p, 100, &buf, NULL), 0);
        assert_string_equal(buf, "two");
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        /* No temporary file is left beside it. */
        _cleanup_closedir_ DIR *dir = opendir(d);
        int entries = 0;
        for (struct dirent *de; (de = readdir(dir));)
                entries += de->d_name[0] != '.';
        assert_int_equal(entries, 1);
        assert_int_equal(rm_rf(d), 0);
}

static void test_mkdir_p_and_rm_rf(void **state) {
        _cleanup_free_ char *d = make_tmpdir(), *deep = path_join(d, "a/b/c", NULL);
        assert_int_equal(mkdir_p(deep, 0755), 0);
        assert_int_equal(mkdir_p(deep, 0755), 0); /* idempotent */
        write_file(deep, "f", "x", 0644);
        _cleanup_free_ char *file = path_join(deep, "f", NULL);
        assert_int_equal(mkdir_p(file, 0755), -ENOTDIR);
        assert_int_equal(rm_rf(d), 0);
        assert_int_equal(access(d, F_OK), -1);
        assert_int_equal(rm_rf(d), 0); /* missing is fine */
}

static void test_rm_rf_does_not_follow_symlinks(void **state) {
        _cleanup_free_ char *d = make_tmpdir(), *outside = make_tmpdir();
        _cleanup_free_ char *victim = path_join(outside, "keep", NULL), *link = path_join(d, "link", NULL);
        write_file(outside, "keep", "precious", 0644);
        assert_int_equal(symlink(outside, link), 0);
        assert_int_equal(rm_rf(d), 0);
        assert_int_equal(access(victim, F_OK), 0);
        assert_int_equal(rm_rf(outside), 0);
}

static void test_copy_tree(void **state) {
        _cleanup_free_ char *d = make_tmpdir();
        _cleanup_free_ char *from = path_join(d, "from", NULL), *to = path_join(d, "to", NULL);
        _cleanup_free_ char *sub = path_join(d, "from/sub", NULL), *skipped = path_join(d, "from/.git", NULL);
        assert_int_equal(mkdir_p(sub, 0750), 0);
        assert_int_equal(mkdir_p(skipped, 0755), 0);
        write_file(from, "run.sh", "#!/bin/sh\n", 0755);
        write_file(sub, "data", "d", 0600);
        _cleanup_free_ char *lnk = path_join(from, "l", NULL);
        assert_int_equal(symlink("sub/data", lnk), 0);

        static const char *const skip[] = { ".git", NULL };
        assert_int_equal(copy_tree(from, to, skip), 0);

        struct stat st;
        _cleanup_free_ char *c1 = path_join(to, "run.sh", NULL), *c2 = path_join(to, "sub/data", NULL);
        _cleanup_free_ char *c3 = path_join(to, "l", NULL), *c4 = path_join(to, ".git", NULL), *c5 = path_join(to, "sub", NULL);
        assert_int_equal(stat(c1, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0755);
        assert_int_equal(stat(c2, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(c5, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0750);
        assert_int_equal(lstat(c3, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(access(c4, F_OK), -1);
        /* The destination must not exist. */
        assert_int_equal(copy_tree(from, to, NULL), -EEXIST);
        assert_int_equal(rm_rf(d), 0);
}

static void test_copy_tree_refuses_fifo(void **state) {
        _cleanup_free_ char *d = make_tmpdir();
        _cleanup_free_ char *from = path_join(d, "from", NULL), *to = path_join(d, "to", NULL);
        _cleanup_free_ char *fifo = path_join(d, "from/fifo", NULL);
        assert_int_equal(mkdir(from, 0755), 0);
        assert_int_equal(mkfifo(fifo, 0644), 0);
        assert_int_equal(copy_tree(from, to, NULL), -EBADF);
        assert_int_equal(rm_rf(d), 0);
}

static void test_path_join(void **state) {
        _cleanup_free_ char *a = path_join("/a", "b", "c", NULL), *b = path_join("/a/", "/b", NULL);
        _cleanup_free_ char *c = path_join("/", "x", NULL);
        assert_string_equal(a, "/a/b/c");
        assert_string_equal(b, "/a/b");
        assert_string_equal(c, "/x");
}

static void test_path_is_normalized(void **state) {
        assert_true(path_is_normalized("/a"));
        assert_true(path_is_normalized("/srv/nap/apps/alice/alice_web_1"));
        assert_true(path_is_normalized("/a/.b/c..d"));
        static const char *const bad[] = { "", "/", "a/b", "//a", "/a//b", "/a/", "/a/./b", "/a/../b", "/..",
                                           "/a/.", "/a\nb", "/a\x7f" "b" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(path_is_normalized(bad[i]));
}

static void test_path_is_safe(void **state) {
        static const char *const good[] = { "/", "/a", "/srv/nap/", "//a", "/a//b", "/a/.b/c..d" };
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(path_is_safe(good[i]));
        static const char *const bad[] = { "", "a/b", "/a/./b", "/a/../b", "/..", "/a/.", "//..//", "/a\nb",
                                           "/a\x7f" "b" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(path_is_safe(bad[i]));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_read_full_file_bounded),
                cmocka_unit_test(test_write_file_atomic_replaces_and_sets_mode),
                cmocka_unit_test(test_mkdir_p_and_rm_rf),
                cmocka_unit_test(test_rm_rf_does_not_follow_symlinks),
                cmocka_unit_test(test_copy_tree),
                cmocka_unit_test(test_copy_tree_refuses_fifo),
                cmocka_unit_test(test_path_join),
                cmocka_unit_test(test_path_is_normalized),
                cmocka_unit_test(test_path_is_safe),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
