/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test-util.h"

#include "model/profile.h"
#include "base/strv.h"

/* ---- helpers ---- */

static NapProfile *parse_as(const char *text, NapProfileFormat f) {
        NapError e = NAP_ERROR_NULL;
        NapProfile *p = NULL;
        int r = nap_profile_parse(text, strlen(text), f, &p, &e);
        if (r < 0)
                print_error("unexpected failure: %s\n", e.message);
        assert_int_equal(r, 0);
        assert_int_equal(e.kind, NAP_ERROR_NONE);
        assert_non_null(p);
        return p;
}

static NapProfile *parse_ok(const char *text) {
        return parse_as(text, NAP_PROFILE_FORMAT_PROFILE);
}

static void fails_as_n(const char *text, size_t size, NapProfileFormat f, const char *message) {
        NapError e = NAP_ERROR_NULL;
        NapProfile *p = NULL;
        assert_int_equal(nap_profile_parse(text, size, f, &p, &e) < 0, 1);
        assert_null(p);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);
        assert_string_equal(e.message, message);
}

static void fails(const char *text, const char *message) {
        fails_as_n(text, strlen(text), NAP_PROFILE_FORMAT_PROFILE, message);
}


static void procfile_fails(const char *text, const char *message) {
        fails_as_n(text, strlen(text), NAP_PROFILE_FORMAT_PROCFILE, message);
}

/* MPI apps: "mpi:" and "build:" processes, MpiRanks=, MpiRanksMax=,
 * MpiCpu=, MpiMemory=. */
static void test_mpi_procfile(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_as(
                "build: mpicc.mpich -O2 -o hello hello.c\nmpi: ./hello {greeting=hi} {n}\nMpiRanks=3\nMpiRanksMax=8\n"
                "MpiCpu= 250m:1 \nMpiMemory=64M\n",
                NAP_PROFILE_FORMAT_PROCFILE);
        _cleanup_(nap_profile_freep) NapProfile *defaults = parse_as("mpi: ./hello\n", NAP_PROFILE_FORMAT_PROCFILE);
        _cleanup_(nap_profile_freep) NapProfile *web = parse_as("build: make\nweb: ./serve\n", NAP_PROFILE_FORMAT_PROCFILE);
        _cleanup_(nap_params_freep) NapParams *params = NULL;
        _cleanup_strv_free_ char **argv = NULL, **build = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_true(nap_profile_is_mpi(p));
        assert_int_equal(nap_profile_mpi_ranks(p), 3);
        assert_int_equal(nap_profile_mpi_ranks_max(p), 8);
        assert_int_equal(nap_profile_mpi_rank_compute(p)->request_cpu_milli, 250);
        assert_int_equal(nap_profile_mpi_rank_compute(p)->limit_cpu_milli, 1000);
        assert_int_equal(nap_profile_mpi_rank_compute(p)->request_memory, 64 << 20);
        assert_int_equal(nap_profile_mpi_rank_compute(p)->limit_memory, 64 << 20); /* as the request */
        assert_int_equal(nap_params_parse("n=5", 3, &params, NULL), 0);
        assert_int_equal(nap_profile_substitute(nap_profile_mpi(p), params, 0, &argv, NULL, &e), 0);
        assert_string_equal(argv[0], "./hello");
        assert_string_equal(argv[1], "hi");
        assert_string_equal(argv[2], "5");
        assert_int_equal(nap_profile_substitute(nap_profile_build(p), NULL, 0, &build, NULL, &e), 0);
        assert_string_equal(build[3], "hello");
        /* the app itself does not start as a common instance */
        assert_int_equal(nap_profile_substitute(p, params, 20000, NULL, NULL, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PROFILE);

        assert_int_equal(nap_profile_mpi_ranks(defaults), NAP_MPI_RANKS_DEFAULT);
        assert_true(nap_compute_is_empty(nap_profile_mpi_rank_compute(defaults)));
        assert_int_equal(nap_profile_mpi_ranks_max(defaults), NAP_MPI_RANKS_MAX_DEFAULT);
        assert_null(nap_profile_build(defaults));
        /* "build:" without "mpi:": another process type, as before */
        assert_false(nap_profile_is_mpi(web));
        assert_null(nap_profile_build(web));
        nap_profile_free(parse_as("build: echo {\nweb: ./serve\n", NAP_PROFILE_FORMAT_PROCFILE)); /* not even read */

        procfile_fails("mpi: a\nweb: b\n", "a Procfile has a web or an mpi process, not both");
        procfile_fails("mpi: a\nmpi: b\n", "Procfile:2: second 'mpi' process");
        procfile_fails("mpi:\n", "Procfile:1: the mpi process has no command");
        procfile_fails("mpi: a {np}\n", "'np' is the number of ranks, not a placeholder");
        procfile_fails("mpi: a {port}\n", "the mpi process has no port ({port}, $PORT): its ranks talk MPI");
        procfile_fails("mpi: a\nbuild: make {x}\n", "the build process takes no parameters and no port");
        procfile_fails("mpi: a\nMpiRanks=0\n", "Procfile:2: MpiRanks= must be a number of ranks, 1 to 1000, not '0'");
        procfile_fails("mpi: a\nMpiRanksMax=1001\n", "Procfile:2: MpiRanksMax= must be a number of ranks, 1 to 1000, not '1001'");
        procfile_fails("mpi: a\nMpiRanks=2x\n", "Procfile:2: MpiRanks= must be a number of ranks, 1 to 1000, not '2x'");
        procfile_fails("mpi: a\nMpiRanks=2\nMpiRanks=3\n", "Procfile:3: MpiRanks= given twice");
        procfile_fails("mpi: a\nMpiRanks=9\nMpiRanksMax=8\n", "MpiRanks=9 is above MpiRanksMax=8");
        procfile_fails("web: a\nMpiRanks=2\n", "MpiRanks=, MpiRanksMax=, MpiCpu= and MpiMemory= need an mpi process");
        procfile_fails("web: a\nMpiCpu=1\n", "MpiRanks=, MpiRanksMax=, MpiCpu= and MpiMemory= need an mpi process");
        procfile_fails("mpi: a\nMpiCpu=0\n", "Procfile:2: MpiCpu= '0': Invalid CPU amount '0': must be more than 0 and at most 1024 CPUs");
        procfile_fails("mpi: a\nMpiCpu=1:500m\n", "Procfile:2: MpiCpu= '1:500m': Invalid CPU amount '1:500m': the limit (after ':') is below the request");
        procfile_fails("mpi: a\nMpiMemory=64Q\n", "Procfile:2: MpiMemory= '64Q': Invalid size amount '64Q': expected bytes, or a number with K, M, G or T (powers of 1024)");
        procfile_fails("mpi: a\nMpiMemory=64M\nMpiMemory=1G\n", "Procfile:3: MpiMemory= given twice");
}

/* HealthPath=: before or after the command, in a profile and a Procfile;
 * the command is unchanged by it. */
static void test_health_path(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *none = parse_ok("python3 app.py\n");
        _cleanup_(nap_profile_freep) NapProfile *before = parse_ok("# checked\nHealthPath=/healthz\npython3 app.py {port}\n");
        _cleanup_(nap_profile_freep) NapProfile *after = parse_ok("python3 app.py\n  HealthPath= /ready?x=1&y=%2F \r\n");
        _cleanup_(nap_profile_freep) NapProfile *procfile =
                parse_as("worker: w\nHealthPath=/up\nweb: python3 app.py $PORT\n", NAP_PROFILE_FORMAT_PROCFILE);
        assert_null(nap_profile_health_path(none));
        assert_string_equal(nap_profile_health_path(before), "/healthz");
        assert_string_equal(nap_profile_health_path(after), "/ready?x=1&y=%2F");
        assert_string_equal(nap_profile_health_path(procfile), "/up");
        assert_int_equal(strv_length((char **) nap_profile_parameters(before)), 0);

        fails("HealthPath=healthz\ncmd\n", "profile:1: HealthPath= must be an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes, at most 255 bytes, not 'healthz'");
        fails("cmd\nHealthPath=/a\nHealthPath=/b\n", "profile:3: HealthPath= given twice");
        fails("HealthPath=/a\n", "profile has no command");
        fails_as_n("web: x\nHealthPath=/a b\n", strlen("web: x\nHealthPath=/a b\n"), NAP_PROFILE_FORMAT_PROCFILE,
                   "Procfile:2: HealthPath= must be an absolute URL path ('/' first) of letters, digits, -._~!$&'()*+,;=:@/? and %XX escapes, at most 255 bytes, not '/a b'");
        /* Other Key= lines are still commands, as before. */
        _cleanup_(nap_profile_freep) NapProfile *cmd = parse_ok("Health=/x\n");
        assert_null(nap_profile_health_path(cmd));
}

static void test_health_path_is_valid(void **state) {
        char longest[NAP_HEALTH_PATH_MAX + 2];

        assert_true(nap_health_path_is_valid("/"));
        assert_true(nap_health_path_is_valid("/a-b._~!$&'()*+,;=:@/c?d=%7e"));
        assert_false(nap_health_path_is_valid(NULL));
        assert_false(nap_health_path_is_valid(""));
        assert_false(nap_health_path_is_valid("health"));
        assert_false(nap_health_path_is_valid("http://x/"));
        assert_false(nap_health_path_is_valid("/a b"));
        assert_false(nap_health_path_is_valid("/a\r\nHost: evil"));
        assert_false(nap_health_path_is_valid("/a#frag"));
        assert_false(nap_health_path_is_valid("/a\\b"));
        assert_false(nap_health_path_is_valid("/%"));
        assert_false(nap_health_path_is_valid("/%4"));
        assert_false(nap_health_path_is_valid("/%4g"));
        assert_false(nap_health_path_is_valid("/\xc3\xa9"));
        memset(longest, 'a', sizeof longest);
        longest[0] = '/';
        longest[NAP_HEALTH_PATH_MAX] = 0;
        assert_true(nap_health_path_is_valid(longest));
        longest[NAP_HEALTH_PATH_MAX] = 'a';
        longest[NAP_HEALTH_PATH_MAX + 1] = 0;
        assert_false(nap_health_path_is_valid(longest));
}

static NapParams *params(const char *s) {
        NapError e = NAP_ERROR_NULL;
        NapParams *p = NULL;
        int r = nap_params_parse(s, strlen(s), &p, &e);
        if (r < 0)
                print_error("unexpected failure: %s\n", e.message);
        assert_int_equal(r, 0);
        return p;
}

/* Substitutes the parameters in the string form; fails the test on error. */
static char **subst(const NapProfile *p, const char *para_str, unsigned port) {
        _cleanup_(nap_params_freep) NapParams *v = params(para_str);
        NapError e = NAP_ERROR_NULL;
        char **argv = NULL;
        int r = nap_profile_substitute(p, v, port, &argv, NULL, &e);
        if (r < 0)
                print_error("unexpected failure: %s\n", e.message);
        assert_int_equal(r, 0);
        assert_non_null(argv);
        return argv;
}

static void subst_fails(const NapProfile *p, NapParams *v, unsigned port, const char *message) {
        NapError e = NAP_ERROR_NULL;
        char **argv = NULL;
        assert_int_equal(nap_profile_substitute(p, v, port, &argv, NULL, &e), -EINVAL);
        assert_null(argv);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.message, message);
}

static void params_fail_n(const char *s, size_t size, const char *message) {
        NapError e = NAP_ERROR_NULL;
        NapParams *p = NULL;
        assert_int_equal(nap_params_parse(s, size, &p, &e) < 0, 1);
        assert_null(p);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.message, message);
}

static void params_fail(const char *s, const char *message) {
        params_fail_n(s, strlen(s), message);
}

/* ---- splitting ---- */

static void test_words_plain(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("python3  app.py\t--verbose -x=1\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "python3", "app.py", "--verbose", "-x=1");
        assert_null(nap_profile_parameters(p)[0]);
}

static void test_comments_and_blank_lines(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("# the app\n\n   \n  # indented comment\nrun it\n\n# end\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "run", "it");
}

static void test_no_trailing_newline(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run it");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "run", "it");
}

static void test_continuation(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run a \\\n   b\\\nc \\\n\n# after\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        /* "b\<newline>c" joins, as in a shell. */
        ASSERT_STRV(argv, "run", "a", "bc");
}

static void test_quotes(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p =
                parse_ok("cmd 'a b' \"c d\" e\\ f 'it'\\''s' \"say \\\"hi\\\" \\\\ \\x\" \\'q mixed'  x'\"y\" '\\n'\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "cmd", "a b", "c d", "e f", "it's", "say \"hi\" \\ \\x", "'q", "mixed  xy", "\\n");
}

static void test_empty_words(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("cmd '' \"\" a''b\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "cmd", "", "", "ab");
}

static void test_shell_syntax_is_literal(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("sh -c $(id) `id` a;b | c && d > e $HOME ~ *\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "sh", "-c", "$(id)", "`id`", "a;b", "|", "c", "&&", "d", ">", "e", "$HOME", "~", "*");
}

static void test_utf8_words(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("écho 'ünï ✓' 日本 \"😀\"\n");
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "écho", "ünï ✓", "日本", "😀");
}

/* ---- placeholders ---- */

static void test_parameters_in_order_once(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p =
                parse_ok("run {b} --a={a} {b} x{c}y '{d}' \"{e}\" {port} {a}{b}\n");
        ASSERT_STRV(nap_profile_parameters(p), "b", "a", "c", "d", "e");
        _cleanup_strv_free_ char **argv = subst(p, "a=1,b=2,c=3,d=4 4,e=5", 8080);
        ASSERT_STRV(argv, "run", "2", "--a=1", "2", "x3y", "4 4", "5", "8080", "12");
}

static void test_defaults(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run {a=one} {b} {c=} {d}{d=late} {x=a b;c}\n");
        ASSERT_STRV(nap_profile_parameters(p), "a", "b", "c", "d", "x");
        assert_string_equal(nap_profile_default(p, "a"), "one");
        assert_null(nap_profile_default(p, "b"));
        assert_string_equal(nap_profile_default(p, "c"), "");
        assert_string_equal(nap_profile_default(p, "d"), "late");
        assert_string_equal(nap_profile_default(p, "x"), "a b;c");
        assert_null(nap_profile_default(p, "nope"));
        assert_null(nap_profile_default(p, "port"));

        _cleanup_strv_free_ char **argv = subst(p, "b=B", 0);
        ASSERT_STRV(argv, "run", "one", "B", "", "latelate", "a b;c");
        _cleanup_strv_free_ char **argv2 = subst(p, "a=A,b=B,c=C,d=D,x=X", 0);
        ASSERT_STRV(argv2, "run", "A", "B", "C", "DD", "X");
}

static void test_same_default_twice(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run {a=1} {a=1} {a}\n");
        assert_string_equal(nap_profile_default(p, "a"), "1");
        fails("run {a=1} {a=2}\n", "profile:1:11: conflicting defaults for parameter 'a'");
}

static void test_literal_braces(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("echo {{x}} '{{' \"}}\" \\{ {{{y}}}\n");
        ASSERT_STRV(nap_profile_parameters(p), "y");
        _cleanup_strv_free_ char **argv = subst(p, "y=Y", 0);
        ASSERT_STRV(argv, "echo", "{x}", "{", "}", "{", "{Y}");
}

static void test_name_rules(void **state) {
        char text[200];
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run {_a} {A9_z} {x}\n");
        ASSERT_STRV(nap_profile_parameters(p), "_a", "A9_z", "x");

        /* 64 characters is the longest name. */
        snprintf(text, sizeof text, "run {%064d}", 0);
        text[5] = 'n';
        nap_profile_free(parse_ok(text));
        snprintf(text, sizeof text, "run {n%064d}", 0);
        fails(text, "profile:1:5: invalid placeholder '{n000000000000000000000000000000000000000000000000000000000000000…}': "
                    "names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)");
        fails("run {1a}", "profile:1:5: invalid placeholder '{1a}': names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)");
        fails("run {}", "profile:1:5: invalid placeholder '{}': names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)");
        fails("run {a-b}", "profile:1:5: invalid placeholder '{a-b}': names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)");
        fails("run { a }", "profile:1:5: invalid placeholder '{ a }': names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)");
        fails("run {=x}", "profile:1:5: invalid placeholder '{=x}': names match [A-Za-z_][A-Za-z0-9_]{0,63} (write '{{' for a literal brace)");
}

static void test_unbalanced_braces(void **state) {
        fails("run {abc", "profile:1:5: unbalanced '{' (write '{{' for a literal brace)");
        fails("run abc}", "profile:1:8: unbalanced '}' (write '}}' for a literal brace)");
        fails("run {a{b}}", "profile:1:5: unbalanced '{' (write '{{' for a literal brace)");
        fails("run {a}}", "profile:1:8: unbalanced '}' (write '}}' for a literal brace)");
        fails("run '{'", "profile:1:6: unbalanced '{' (write '{{' for a literal brace)");
        fails("run \"}\"", "profile:1:6: unbalanced '}' (write '}}' for a literal brace)");
        fails("run {a\n}", "profile:1:5: unbalanced '{' (write '{{' for a literal brace)");
        fails("# c\n\nrun --opt={x {y}", "profile:3:11: unbalanced '{' (write '{{' for a literal brace)");
        fails("{{{", "profile:1:3: unbalanced '{' (write '{{' for a literal brace)");
        /* Columns count characters, not bytes. */
        fails("é ✓ {", "profile:1:5: unbalanced '{' (write '{{' for a literal brace)");
}

static void test_too_many_parameters(void **state) {
        char text[2048] = "run";
        for (int i = 0; i < NAP_PARAMS_MAX; i++)
                snprintf(text + strlen(text), sizeof text - strlen(text), " {p%d}", i);
        nap_profile_free(parse_ok(text));
        strcat(text, " {one_more}");
        fails(text, "profile:1:379: more than 64 parameters");
}

/* ---- the port ---- */

static void test_port_forms(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p =
                parse_ok("run {port} $PORT ${PORT} :$PORT/ \"$PORT\" \"${PORT}\" '$PORT' '${{PORT}}x' '{port}' $PORTS $ a$ $$ \\$PORT\n");
        assert_null(nap_profile_parameters(p)[0]);
        _cleanup_strv_free_ char **argv = subst(p, "", 20001);
        ASSERT_STRV(argv, "run", "20001", "20001", "20001", ":20001/", "20001", "20001", "$PORT", "${PORT}x", "20001",
                    "$PORTS", "$", "a$", "$$", "$PORT");
}

static void test_port_errors(void **state) {
        fails("run {port=80}", "profile:1:5: {port} cannot have a default: the port is assigned by nap");
        fails("run ${HOME}", "profile:1:5: '${' is not supported, only ${PORT} (write {name} for a parameter, '${{' for a literal '${')");
        fails("run \"${PORT\"", "profile:1:6: '${' is not supported, only ${PORT} (write {name} for a parameter, '${{' for a literal '${')");

        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run $PORT\n");
        subst_fails(p, NULL, 0, "The profile uses the port, but no valid port was assigned (0)");
        subst_fails(p, NULL, 65536, "The profile uses the port, but no valid port was assigned (65536)");

        /* Without a port in the profile, none is needed. */
        _cleanup_(nap_profile_freep) NapProfile *q = parse_ok("run\n");
        _cleanup_strv_free_ char **argv = subst(q, "", 0);
        ASSERT_STRV(argv, "run");
}

/* ---- bad profiles ---- */

static void test_bad_profiles(void **state) {
        fails("", "profile has no command");
        fails("# only a comment\n\n", "profile has no command");
        fails("run a\nrun b\n", "profile:2: second command line (a profile has one command; end a line with '\\' to continue it)");
        fails("run a\n\n# x\n  second\n", "profile:4: second command line (a profile has one command; end a line with '\\' to continue it)");
        fails("run 'abc\n", "profile:1:5: unterminated single quote");
        fails("run 'abc", "profile:1:5: unterminated single quote");
        fails("run \"abc\n\"", "profile:1:5: unterminated double quote");
        fails("run x \"abc", "profile:1:7: unterminated double quote");
        fails("run \\", "profile:1:5: backslash at the end of the file");
        fails("run a\x01", "profile:1:6: control character 0x01 in the command");
        fails("run 'a\tb'", "profile:1:7: control character 0x09 in the command");
        fails("run a\r\n", "profile:1:6: control character 0x0d in the command");
        fails("run \x7f", "profile:1:5: control character 0x7f in the command");
        fails("run \\\x1b", "profile:1:6: control character 0x1b in the command");
        fails("run \xff", "profile:1:5: not valid UTF-8");
        fails("run \xc0\xaf", "profile:1:5: not valid UTF-8");        /* overlong '/' */
        fails("run \xed\xa0\x80", "profile:1:5: not valid UTF-8");    /* surrogate */
        fails("# \xe2\x82\nrun", "profile:1:3: not valid UTF-8");     /* truncated, even in a comment */
        fails("\\\n", "profile:1: no command");
        fails_as_n("run a\0b", 7, NAP_PROFILE_FORMAT_PROFILE, "profile:1:6: NUL byte");
}

static void test_size_limit(void **state) {
        size_t n = NAP_PROFILE_MAX_SIZE + 1;
        _cleanup_free_ char *big = malloc(n);
        assert_non_null(big);
        memset(big, 'a', n);
        fails_as_n(big, n, NAP_PROFILE_FORMAT_PROFILE, "profile is too large (65537 bytes, at most 65536)");

        /* Exactly at the limit is fine. */
        NapProfile *p = NULL;
        assert_int_equal(nap_profile_parse(big, n - 1, NAP_PROFILE_FORMAT_PROFILE, &p, NULL), 0);
        nap_profile_free(p);
}

static void test_size_is_respected(void **state) {
        /* Only the first size bytes count; the text needs no NUL. */
        const char text[] = { 'r', 'u', 'n', ' ', 'a', '{' };
        NapProfile *p = NULL;
        assert_int_equal(nap_profile_parse(text, 5, NAP_PROFILE_FORMAT_PROFILE, &p, NULL), 0);
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "run", "a");
        nap_profile_free(p);
}

/* ---- Procfile ---- */

static void test_procfile(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_as(
                "# processes\n"
                "release: ./migrate {unbalanced\n"
                "web: gunicorn app:app --bind 0.0.0.0:$PORT --workers {workers=2}\n"
                "worker-2: celery 'unterminated\n",
                NAP_PROFILE_FORMAT_PROCFILE);
        ASSERT_STRV(nap_profile_parameters(p), "workers");
        _cleanup_strv_free_ char **argv = subst(p, "", 5000);
        ASSERT_STRV(argv, "gunicorn", "app:app", "--bind", "0.0.0.0:5000", "--workers", "2");
}

static void test_procfile_forms(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_as("  web:./run \\\n  --x\n", NAP_PROFILE_FORMAT_PROCFILE);
        _cleanup_strv_free_ char **argv = subst(p, "", 0);
        ASSERT_STRV(argv, "./run", "--x");
}

static void test_procfile_errors(void **state) {
        fails_as_n("worker: celery\n", 15, NAP_PROFILE_FORMAT_PROCFILE, "Procfile has no web process");
        fails_as_n("", 0, NAP_PROFILE_FORMAT_PROCFILE, "Procfile has no web process");
        fails_as_n("web: a\nweb: b\n", 14, NAP_PROFILE_FORMAT_PROCFILE, "Procfile:2: second 'web' process");
        fails_as_n("web: a\njunk\n", 12, NAP_PROFILE_FORMAT_PROCFILE, "Procfile:2: expected 'TYPE: COMMAND'");
        fails_as_n("web:\n", 5, NAP_PROFILE_FORMAT_PROCFILE, "Procfile:1: the web process has no command");
        fails_as_n("web: run {a\n", 12, NAP_PROFILE_FORMAT_PROCFILE, "Procfile:1:10: unbalanced '{' (write '{{' for a literal brace)");
        fails_as_n("web: 'x\n", 8, NAP_PROFILE_FORMAT_PROCFILE, "Procfile:1:6: unterminated single quote");
        /* "web" is the type, not a prefix of one. */
        fails_as_n("webby: x\nweb2: y\n", 17, NAP_PROFILE_FORMAT_PROCFILE, "Procfile has no web process");
}

/* ---- parameter strings ---- */

static void test_params_parse(void **state) {
        _cleanup_(nap_params_freep) NapParams *p = params("a=1,b=x\\,y, c = v ,d=\\\\,e=,f=k=v");
        assert_int_equal(nap_params_size(p), 6);
        assert_string_equal(nap_params_key(p, 0), "a");
        assert_string_equal(nap_params_value(p, 0), "1");
        assert_string_equal(nap_params_get(p, "b"), "x,y");
        assert_string_equal(nap_params_key(p, 2), "c");
        assert_string_equal(nap_params_value(p, 2), " v ");   /* values are taken as written */
        assert_string_equal(nap_params_get(p, "d"), "\\");
        assert_string_equal(nap_params_get(p, "e"), "");
        assert_string_equal(nap_params_get(p, "f"), "k=v");
        assert_null(nap_params_get(p, "g"));
        assert_null(nap_params_key(p, 6));
        assert_null(nap_params_value(p, 6));

        _cleanup_(nap_params_freep) NapParams *empty = params("");
        assert_int_equal(nap_params_size(empty), 0);
        assert_int_equal(nap_params_size(NULL), 0);
}

static void test_params_shell_metacharacters_are_kept(void **state) {
        _cleanup_(nap_params_freep) NapParams *p = params("m=$(rm -rf /) `id` 'q' \"d\" ; | & > <");
        assert_string_equal(nap_params_get(p, "m"), "$(rm -rf /) `id` 'q' \"d\" ; | & > <");
}

static void test_params_errors(void **state) {
        params_fail("a=1,a=2", "Parameter 'a' is given twice");
        params_fail("port=80", "'port' cannot be given as a parameter: the port is assigned by nap");
        params_fail("a", "Expected KEY=VALUE in the parameters, got 'a'");
        params_fail("a=1,b", "Expected KEY=VALUE in the parameters, got 'b'");
        params_fail("a=1,", "Expected KEY=VALUE after the last ',' of the parameters");
        params_fail("a=1,,b=2", "Expected KEY=VALUE in the parameters, got ''");
        params_fail(",", "Expected KEY=VALUE in the parameters, got ''");
        params_fail("=1", "Invalid parameter name '': must match [A-Za-z_][A-Za-z0-9_]{0,63}");
        params_fail("a-b=1", "Invalid parameter name 'a-b': must match [A-Za-z_][A-Za-z0-9_]{0,63}");
        params_fail("1a=1", "Invalid parameter name '1a': must match [A-Za-z_][A-Za-z0-9_]{0,63}");
        params_fail("a=x\\y", "Invalid escape in the value of parameter 'a': only '\\,' and '\\\\' are allowed");
        params_fail("a=x\\", "Invalid escape in the value of parameter 'a': only '\\,' and '\\\\' are allowed");
        params_fail("a=line\nbreak", "Invalid value for parameter 'a': control character 0x0a at offset 4");
        params_fail("a=x,tab=\t", "Invalid value for parameter 'tab': control character 0x09 at offset 0");
        params_fail("a=\x7f", "Invalid value for parameter 'a': control character 0x7f at offset 0");
        params_fail("a=\xe9t\xe9", "Invalid value for parameter 'a': not valid UTF-8 at offset 0");
        params_fail_n("a=1,b=x\0y", 9, "The parameters contain a NUL byte at offset 7");
        params_fail_n("a=1\0", 4, "The parameters contain a NUL byte at offset 3");
}

static void test_params_limits(void **state) {
        char s[8192] = "", key[80];
        for (int i = 0; i < NAP_PARAMS_MAX; i++)
                snprintf(s + strlen(s), sizeof s - strlen(s), "%sp%d=%d", i ? "," : "", i, i);
        _cleanup_(nap_params_freep) NapParams *p = params(s);
        assert_int_equal(nap_params_size(p), NAP_PARAMS_MAX);
        strcat(s, ",x=1");
        params_fail(s, "Too many parameters (at most 64)");

        /* Longest name and value accepted, one more refused. */
        memset(key, 'k', 64);
        key[64] = 0;
        _cleanup_(nap_params_freep) NapParams *q = NULL;
        assert_int_equal(nap_params_new(&q), 0);
        _cleanup_free_ char *v = malloc(NAP_PARAM_VALUE_MAX + 2);
        memset(v, 'v', NAP_PARAM_VALUE_MAX);
        v[NAP_PARAM_VALUE_MAX] = 0;
        assert_int_equal(nap_params_set(q, key, v, NULL), 0);
        key[64] = 'k';
        key[65] = 0;
        assert_int_equal(nap_params_set(q, key, "1", NULL), -EINVAL);
        NapError e = NAP_ERROR_NULL;
        strcat(v, "v");
        assert_int_equal(nap_params_set(q, "long", v, &e), -EINVAL);
        assert_string_equal(e.message, "Invalid value for parameter 'long': longer than 4096 bytes");
        assert_int_equal(nap_params_size(q), 1);
}

/* ---- substitution ---- */

static void test_values_stay_one_argument(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("sh -c 'echo {msg}' x{msg}y {msg}\n");
        static const char *const nasty = "a b; rm -rf / | cat & $(id) `id` 'q' \"d\" $PORT {x} \\ * ~ ünï";
        _cleanup_(nap_params_freep) NapParams *v = NULL;
        assert_int_equal(nap_params_new(&v), 0);
        assert_int_equal(nap_params_set(v, "msg", nasty, NULL), 0);
        _cleanup_strv_free_ char **argv = NULL;
        assert_int_equal(nap_profile_substitute(p, v, 1234, &argv, NULL, NULL), 0);
        assert_int_equal(strv_length(argv), 5);
        assert_string_equal(argv[2], "echo a b; rm -rf / | cat & $(id) `id` 'q' \"d\" $PORT {x} \\ * ~ ünï");
        assert_string_equal(argv[4], nasty);
}

static void test_substitute_errors(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run {a} {b=2}\n");
        _cleanup_(nap_params_freep) NapParams *unknown = params("a=1,zz=3");
        subst_fails(p, unknown, 0, "Unknown parameter 'zz' (the profile's parameters: a, b)");
        _cleanup_(nap_params_freep) NapParams *missing = params("b=1");
        subst_fails(p, missing, 0, "Missing value for parameter 'a'");
        subst_fails(p, NULL, 0, "Missing value for parameter 'a'");

        _cleanup_(nap_profile_freep) NapProfile *none = parse_ok("run\n");
        _cleanup_(nap_params_freep) NapParams *one = params("a=1");
        subst_fails(none, one, 0, "Unknown parameter 'a' (the profile's parameters: none)");

        /* Values set one by one are checked as in the string form. */
        NapError e = NAP_ERROR_NULL;
        _cleanup_(nap_params_freep) NapParams *v = NULL;
        assert_int_equal(nap_params_new(&v), 0);
        assert_int_equal(nap_params_set(v, "port", "80", &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.message, "'port' cannot be given as a parameter: the port is assigned by nap");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_params_set(v, "a", "x\ny", &e), -EINVAL);
        assert_string_equal(e.message, "Invalid value for parameter 'a': control character 0x0a at offset 1");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_params_set(v, "a/b", "x", &e), -EINVAL);
        assert_string_equal(e.message, "Invalid parameter name 'a/b': must match [A-Za-z_][A-Za-z0-9_]{0,63}");
        assert_int_equal(nap_params_set(v, "a", "1", NULL), 0);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_params_set(v, "a", "1", &e), -EINVAL);
        assert_string_equal(e.message, "Parameter 'a' is given twice");
        assert_int_equal(nap_params_size(v), 1);
}

static void test_substitute_values(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *p = parse_ok("run {b} {a=dflt} {port}\n");
        _cleanup_(nap_params_freep) NapParams *given = params("b=B");
        _cleanup_(nap_params_freep) NapParams *values = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        assert_int_equal(nap_profile_substitute(p, given, 9, &argv, &values, NULL), 0);
        ASSERT_STRV(argv, "run", "B", "dflt", "9");
        assert_int_equal(nap_params_size(values), 2);
        assert_string_equal(nap_params_key(values, 0), "b");
        assert_string_equal(nap_params_value(values, 0), "B");
        assert_string_equal(nap_params_key(values, 1), "a");
        assert_string_equal(nap_params_value(values, 1), "dflt");
}

static void test_default_is_checked(void **state) {
        fails("run {a=x\x01y}", "profile:1:5: default of parameter 'a' contains control character 0x01");
        fails("run {a=x\ty}", "profile:1:5: default of parameter 'a' contains control character 0x09");
}

/* ---- formatting ---- */

static void assert_round_trip(char *const *argv) {
        _cleanup_free_ char *line = nap_profile_format_command(argv);
        assert_non_null(line);
        NapError e = NAP_ERROR_NULL;
        _cleanup_(nap_profile_freep) NapProfile *p = NULL;
        int r = nap_profile_parse(line, strlen(line), NAP_PROFILE_FORMAT_PROFILE, &p, &e);
        if (r < 0)
                print_error("'%s': %s\n", line, e.message);
        assert_int_equal(r, 0);
        assert_null(nap_profile_parameters(p)[0]);
        _cleanup_strv_free_ char **back = NULL;
        assert_int_equal(nap_profile_substitute(p, NULL, 0, &back, NULL, NULL), 0);
        assert_strv(back, (const char *const *) argv);
}

static void test_format_output(void **state) {
        char *argv[] = { "echo", "a b", "", "it's", "{x}", "$PORT", "-x=1,2:/a@b%c+d", "é", NULL };
        _cleanup_free_ char *line = nap_profile_format_command(argv);
        assert_string_equal(line, "echo 'a b' '' 'it'\\''s' '{{x}}' '$PORT' -x=1,2:/a@b%c+d é");
}

static void test_format_round_trip(void **state) {
        char *words[] = {
                "plain", "with space", "  lead", "trail  ", "it's", "''", "\"dq\"", "back\\slash", "trail\\",
                "\\", "{x}", "}{", "{{", "}}", "{", "}", "$PORT", "${PORT}", "$", "a$", "${x}", "$(rm -rf /)",
                "`id`", "", "ünï ✓ 日本 😀", "#hash", "a;b|c&d", "~", "*", "?", "!", "<>", "a=b", "--opt=x y",
                "\\'", "'\\", "\"\\\"", "HealthPath=/x", "HealthPath=", NULL,
        };
        /* Each word alone, as the first word and after another, then all together. */
        for (size_t i = 0; words[i]; i++) {
                char *one[] = { words[i], NULL }, *two[] = { "cmd", words[i], NULL };
                assert_round_trip(one);
                assert_round_trip(two);
        }
        assert_round_trip(words);
}

static void test_format_random_round_trip(void **state) {
        static const char *const atoms[] = { "a", "Z", "0", " ", "'", "\"", "\\", "{", "}", "$", "PORT", "{port}",
                                             "#", ";", "(", ")", "`", "é", "✓", "😀", "=", ",", "*", "-" };
        uint32_t seed = 12345;
        for (int iter = 0; iter < 2000; iter++) {
                char buf[4][64];
                char *argv[5] = {};
                seed = seed * 1103515245 + 12345;
                size_t n = 1 + (seed >> 16) % 4;
                for (size_t w = 0; w < n; w++) {
                        buf[w][0] = 0;
                        seed = seed * 1103515245 + 12345;
                        size_t atoms_n = (seed >> 16) % 8;
                        for (size_t k = 0; k < atoms_n; k++) {
                                seed = seed * 1103515245 + 12345;
                                strcat(buf[w], atoms[(seed >> 16) % ELEMENTSOF(atoms)]);
                        }
                        argv[w] = buf[w];
                }
                assert_round_trip(argv);
        }
}

static void test_format_empty(void **state) {
        _cleanup_free_ char *line = nap_profile_format_command(NULL);
        assert_string_equal(line, "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_words_plain),
                cmocka_unit_test(test_mpi_procfile),
                cmocka_unit_test(test_comments_and_blank_lines),
                cmocka_unit_test(test_no_trailing_newline),
                cmocka_unit_test(test_continuation),
                cmocka_unit_test(test_quotes),
                cmocka_unit_test(test_empty_words),
                cmocka_unit_test(test_shell_syntax_is_literal),
                cmocka_unit_test(test_utf8_words),
                cmocka_unit_test(test_parameters_in_order_once),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_same_default_twice),
                cmocka_unit_test(test_literal_braces),
                cmocka_unit_test(test_name_rules),
                cmocka_unit_test(test_unbalanced_braces),
                cmocka_unit_test(test_too_many_parameters),
                cmocka_unit_test(test_port_forms),
                cmocka_unit_test(test_port_errors),
                cmocka_unit_test(test_bad_profiles),
                cmocka_unit_test(test_size_limit),
                cmocka_unit_test(test_size_is_respected),
                cmocka_unit_test(test_procfile),
                cmocka_unit_test(test_procfile_forms),
                cmocka_unit_test(test_procfile_errors),
                cmocka_unit_test(test_params_parse),
                cmocka_unit_test(test_params_shell_metacharacters_are_kept),
                cmocka_unit_test(test_params_errors),
                cmocka_unit_test(test_params_limits),
                cmocka_unit_test(test_values_stay_one_argument),
                cmocka_unit_test(test_substitute_errors),
                cmocka_unit_test(test_substitute_values),
                cmocka_unit_test(test_default_is_checked),
                cmocka_unit_test(test_format_output),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_format_random_round_trip),
                cmocka_unit_test(test_format_empty),
                cmocka_unit_test(test_health_path),
                cmocka_unit_test(test_health_path_is_valid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
