/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "model/manifest.h"
#include "base/strv.h"

#define GOOD_HEAD "{\"version\":1,\"user\":\"alice\",\"app\":\"web\",\"kind\":\"common\",\"number\":3,"
#define GOOD_ARGV "\"argv\":[\"python3\",\"server.py\",\"--port\",\"20003\"],"
#define GOOD_DIR "\"directory\":\"/var/lib/nap/apps/alice/alice_web_3\","
#define GOOD_TAIL "\"port\":20003,\"enabled\":true"
#define GOOD GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL "}"

static int parse(const char *text, NapManifest **ret, NapError *e) {
        return nap_manifest_parse(text, strlen(text), ret, e);
}

/* Parses text, expecting a refusal whose message contains what. */
static void assert_refused(const char *text, const char *what) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;
        int r = parse(text, &m, &e);
        if (r >= 0 || !strstr(e.message, what))
                print_error("input %s\n gave r=%d message '%s', expected '%s'\n", text, r, e.message, what);
        assert_true(r < 0);
        assert_null(m);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_MANIFEST);
        assert_non_null(strstr(e.message, what));
}

static void test_parse_good(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(parse(GOOD, &m, &e), 0);
        assert_string_equal(m->instance.service.user, "alice");
        assert_string_equal(m->instance.service.app, "web");
        assert_int_equal(m->instance.kind, NAP_KIND_COMMON);
        assert_int_equal(m->instance.number, 3);
        assert_int_equal(strv_length(m->argv), 4);
        assert_string_equal(m->argv[0], "python3");
        assert_string_equal(m->argv[3], "20003");
        assert_string_equal(m->directory, "/var/lib/nap/apps/alice/alice_web_3");
        assert_int_equal(m->port, 20003);
        assert_true(m->enabled);
        assert_null(m->params);
        assert_null(m->commit);
}

static void test_parse_optional_keys(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;
        const char *text = GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL
                ",\"params\":{\"greeting\":\"hi there\",\"b\":\"\"},"
                "\"commit\":\"0123456789abcdef0123456789abcdef01234567\"}";

        assert_int_equal(parse(text, &m, &e), 0);
        assert_int_equal(nap_params_size(m->params), 2);
        assert_string_equal(nap_params_get(m->params, "greeting"), "hi there");
        assert_string_equal(nap_params_get(m->params, "b"), "");
        assert_string_equal(m->commit, "0123456789abcdef0123456789abcdef01234567");
}

/* health_path: optional, validated, written back; an old manifest
 * without it loads (nap.conf's path then). */
static void test_health_path(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL, *old = NULL, *back = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(parse(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"health_path\":\"/healthz?x=1\"}", &m, &e), 0);
        assert_string_equal(m->health_path, "/healthz?x=1");
        assert_string_equal(nap_manifest_health_path(m, "/conf"), "/healthz?x=1");
        _cleanup_free_ char *text = nap_manifest_format(m);
        assert_non_null(strstr(text, "\"health_path\": \"/healthz?x=1\""));
        assert_int_equal(parse(text, &back, &e), 0);
        assert_string_equal(back->health_path, "/healthz?x=1");

        assert_int_equal(parse(GOOD, &old, &e), 0);
        assert_null(old->health_path);
        assert_string_equal(nap_manifest_health_path(old, "/conf"), "/conf");
        assert_string_equal(nap_manifest_health_path(NULL, "/conf"), "/conf");
        _cleanup_free_ char *old_text = nap_manifest_format(old);
        assert_null(strstr(old_text, "health_path"));

        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"health_path\":\"healthz\"}",
                       "Key 'health_path' must be an absolute URL path");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"health_path\":\"/a\\r\\nX: y\"}",
                       "Key 'health_path' must be an absolute URL path");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"health_path\":1}",
                       "Key 'health_path' must be a string");
}

/* What an instance takes from its profile: argv, params, HealthPath=. */
static void test_apply_profile(void **state) {
        _cleanup_(nap_profile_freep) NapProfile *with = NULL, *without = NULL;
        NapManifest m = { .port = 20007 };
        NapError e = NAP_ERROR_NULL;
        static const char text[] = "HealthPath=/up\nserve --port {port} --name {name=x}\n";

        assert_int_equal(nap_profile_parse(text, strlen(text), NAP_PROFILE_FORMAT_PROFILE, &with, &e), 0);
        assert_int_equal(nap_profile_parse("serve\n", 6, NAP_PROFILE_FORMAT_PROFILE, &without, &e), 0);
        assert_int_equal(nap_manifest_apply_profile(&m, with, NULL, &e), 0);
        assert_string_equal(m.health_path, "/up");
        assert_string_equal(m.argv[2], "20007");
        assert_string_equal(nap_params_get(m.params, "name"), "x");
        /* A new profile without it (a push): the old path goes. */
        strv_free(m.argv);
        m.argv = NULL;
        nap_params_free(m.params);
        m.params = NULL;
        assert_int_equal(nap_manifest_apply_profile(&m, without, NULL, &e), 0);
        assert_null(m.health_path);
        strv_free(m.argv);
        nap_params_free(m.params);
}

static void test_parse_kinds(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;
        const char *master = "{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"kind\":\"mpi_master\",\"number\":7,"
                GOOD_ARGV GOOD_DIR GOOD_TAIL "}";

        assert_int_equal(parse(master, &m, &e), 0);
        assert_int_equal(m->instance.kind, NAP_KIND_MPI_MASTER);
        assert_int_equal(m->instance.number, 7); /* its job's number */
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"kind\":\"mpi_master\",\"number\":0,"
                       GOOD_ARGV GOOD_DIR GOOD_TAIL "}", "must be 1..999999999 for kind 'mpi_master'");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"kind\":\"batch\"}", "Not valid JSON");
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"web\",\"kind\":\"batch\",\"number\":1,"
                       GOOD_ARGV GOOD_DIR GOOD_TAIL "}", "Key 'kind' must be");
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"web\",\"kind\":\"common\",\"number\":0,"
                       GOOD_ARGV GOOD_DIR GOOD_TAIL "}", "must be 1..999999999");
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"web\",\"kind\":\"common\",\"number\":1000000000,"
                       GOOD_ARGV GOOD_DIR GOOD_TAIL "}", "must be 1..999999999");
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"web\",\"kind\":\"common\",\"number\":-1,"
                       GOOD_ARGV GOOD_DIR GOOD_TAIL "}", "must be 1..999999999");
}

static void test_refuse_syntax(void **state) {
        assert_refused("", "Not valid JSON");
        assert_refused(GOOD_HEAD, "Not valid JSON");            /* truncated */
        assert_refused("\x01\xff garbage", "Not valid JSON");
        assert_refused(GOOD " trailing", "Not valid JSON");
        assert_refused("[1]", "not a JSON object");
        assert_refused("{\"version\":1,\"version\":1}", "Not valid JSON"); /* duplicate key */
        assert_refused(GOOD_HEAD "\"argv\":[\"a\\u0000b\"]," GOOD_DIR GOOD_TAIL "}", "Not valid JSON");
}

static void test_refuse_embedded_nul(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;
        char text[] = GOOD "\0{}";
        assert_true(nap_manifest_parse(text, sizeof text - 1, &m, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_MANIFEST);
}

static void test_refuse_types(void **state) {
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR "\"port\":\"20003\",\"enabled\":true}",
                       "Key 'port' must be an integer");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR "\"port\":20003.0,\"enabled\":true}",
                       "Key 'port' must be an integer");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR "\"port\":20003,\"enabled\":1}",
                       "Key 'enabled' must be a boolean");
        assert_refused(GOOD_HEAD "\"argv\":\"python3\"," GOOD_DIR GOOD_TAIL "}", "Key 'argv' must be an array");
        assert_refused(GOOD_HEAD "\"argv\":[\"a\",1]," GOOD_DIR GOOD_TAIL "}", "array of strings");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"params\":[]}", "Key 'params' must be an object");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"params\":{\"a\":1}}", "map names to strings");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"commit\":null}", "Key 'commit' must be a string");
        assert_refused("{\"version\":\"1\"}", "Key 'version' must be an integer");
}

static void test_refuse_values(void **state) {
        assert_refused("{\"version\":2}", "Unsupported manifest version 2");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"colour\":\"red\"}", "Unknown key 'colour'");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR "\"enabled\":true}", "Missing key 'port'");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR "\"port\":0,\"enabled\":true}", "port number 1..65535");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR "\"port\":65536,\"enabled\":true}", "port number 1..65535");
        assert_refused(GOOD_HEAD "\"argv\":[]," GOOD_DIR GOOD_TAIL "}", "must not be empty");
        assert_refused(GOOD_HEAD "\"argv\":[\"\"]," GOOD_DIR GOOD_TAIL "}", "empty command");
        assert_refused(GOOD_HEAD "\"argv\":[\"a\",\"b\\nc\"]," GOOD_DIR GOOD_TAIL "}", "control character");
        assert_refused(GOOD_HEAD "\"argv\":[\"a\",\"b\\u007f\"]," GOOD_DIR GOOD_TAIL "}", "control character");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"commit\":\"ABC\"}", "40 lowercase");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"params\":{\"port\":\"1\"}}", "Key 'params'");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"params\":{\"a b\":\"1\"}}", "Key 'params'");
}

static void test_refuse_names(void **state) {
        assert_refused("{\"version\":1,\"user\":\"Alice\"}", "Key 'user' is not a valid user name");
        assert_refused("{\"version\":1,\"user\":\"al_ice\"}", "Key 'user' is not a valid user name");
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"../x\"}", "Key 'app' is not a valid app name");
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"\"}", "Key 'app' is not a valid app name");
}

static void test_refuse_directories(void **state) {
        static const char *const bad[] = {
                "relative/x", "", "/", "/a//b", "/a/./b", "/a/../b", "/a/..", "/a/.", "/a/b/", "/a/\\u0001",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char text[1024];
                snprintf(text, sizeof text, GOOD_HEAD GOOD_ARGV "\"directory\":\"%s\"," GOOD_TAIL "}", bad[i]);
                assert_refused(text, "Key 'directory' must be a normalized absolute path");
        }
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(parse(GOOD_HEAD GOOD_ARGV "\"directory\":\"/a/.b/..c/b c\"," GOOD_TAIL "}", &m, &e), 0);
        assert_string_equal(m->directory, "/a/.b/..c/b c");
}

static void test_refuse_too_big(void **state) {
        size_t n = NAP_MANIFEST_MAX_SIZE + 1;
        _cleanup_free_ char *text = malloc(n + 1);
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_non_null(text);
        memset(text, ' ', n);
        memcpy(text, GOOD, strlen(GOOD));
        text[n] = 0;
        assert_int_equal(nap_manifest_parse(text, n, &m, &e), -EFBIG);
        assert_non_null(strstr(e.message, "larger than 65536 bytes"));
}

#define IMAGE_CTX "\"context\":\"/var/lib/nap/apps/alice/alice_web_3\""
#define IMAGE_OK "\"image\":{" IMAGE_CTX ",\"tag\":\"localhost/nap/alice_web:0123456789ab\"}"
#define WITH_IMAGE(img) GOOD_HEAD "\"argv\":[]," GOOD_DIR GOOD_TAIL ",\"image\":" img "}"

static void test_parse_image(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = NULL, *o = NULL, *plain = NULL;
        NapError e = NAP_ERROR_NULL;

        /* An empty argv: the image's own command runs. */
        assert_int_equal(parse(GOOD_HEAD "\"argv\":[]," GOOD_DIR GOOD_TAIL "," IMAGE_OK "}", &m, &e), 0);
        assert_true(nap_manifest_has_image(m));
        assert_string_equal(m->image.context, "/var/lib/nap/apps/alice/alice_web_3");
        assert_string_equal(m->image.tag, "localhost/nap/alice_web:0123456789ab");
        assert_int_equal(strv_length(m->argv), 0);

        /* A command override; key order does not matter. */
        assert_int_equal(parse(GOOD_HEAD IMAGE_OK "," GOOD_ARGV GOOD_DIR GOOD_TAIL "}", &o, &e), 0);
        assert_int_equal(strv_length(o->argv), 4);
        assert_true(nap_manifest_has_image(o));

        assert_int_equal(parse(GOOD, &plain, &e), 0);
        assert_false(nap_manifest_has_image(plain));
        assert_null(plain->image.context);
}

static void test_refuse_image(void **state) {
        assert_refused(WITH_IMAGE("\"localhost/nap/alice_web:1\""), "Key 'image' must be an object");
        assert_refused(WITH_IMAGE("{" IMAGE_CTX "}"), "Missing key 'image.tag'");
        assert_refused(WITH_IMAGE("{\"tag\":\"a:1\"}"), "Missing key 'image.context'");
        assert_refused(WITH_IMAGE("{}"), "Missing key 'image.context'");
        assert_refused(WITH_IMAGE("{" IMAGE_CTX ",\"tag\":\"a:1\",\"pull\":\"always\"}"), "Unknown key 'image.pull'");
        assert_refused(WITH_IMAGE("{" IMAGE_CTX ",\"tag\":\"a:1\",\"\\u0001\":1}"), "Unknown key 'image.?'");
        assert_refused(WITH_IMAGE("{" IMAGE_CTX ",\"tag\":[\"a\"]}"), "Key 'image.tag' must be a string");
        assert_refused(WITH_IMAGE("{\"context\":null,\"tag\":\"a\"}"), "Key 'image.context' must be a string");
        assert_refused(WITH_IMAGE("{\"context\":\"x/y\",\"tag\":\"a\"}"), "Key 'image.context' must be a normalized");
        assert_refused(WITH_IMAGE("{\"context\":\"/a/../b\",\"tag\":\"a\"}"), "Key 'image.context' must be a normalized");
        assert_refused(WITH_IMAGE("{" IMAGE_CTX ",\"tag\":\"A:1\"}"), "Key 'image.tag' is not a valid image name");
        assert_refused(WITH_IMAGE("{" IMAGE_CTX ",\"tag\":\"a:1\",\"tag\":\"b:1\"}"), "Not valid JSON");
        /* Only common instances run containers; without one argv is needed. */
        assert_refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"kind\":\"mpi_master\",\"number\":1,"
                       GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"image\":{" IMAGE_CTX ",\"tag\":\"a:1\"}}",
                       "Key 'image' is only valid for kind 'common'");
        assert_refused(GOOD_HEAD "\"argv\":[]," GOOD_DIR GOOD_TAIL "}", "Key 'argv' must not be empty");
        assert_refused(GOOD_HEAD "\"argv\":[\"\"]," GOOD_DIR GOOD_TAIL "," IMAGE_OK "}", "empty command");
        assert_refused(GOOD_HEAD "\"argv\":[\"a\\tb\"]," GOOD_DIR GOOD_TAIL "," IMAGE_OK "}", "control character");
}

static void test_image_name_is_valid(void **state) {
        static const char *const good[] = {
                "a", "a:1", "localhost/nap/alice_web:0123456789ab", "localhost/nap/alice_web:instance-7",
                "registry.example.org/team__x/bob-web.v2:v1.0_rc-1", "a--b_c.d/e:_x", "x/y/z",
        };
        static const char *const bad[] = {
                "", "A", "a:B", "/a", "a/", "a//b", "-a", "a-", "a_", "a.", "a.-b", "a___b", "a..b", "bob-_web",
                "localhost:5000/a", "a:1:2", "a:", "a:-1", "a:.1", "a@sha256:00", "a b", "a\tb", "a:1 ", "ä",
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                if (!nap_image_name_is_valid(good[i]))
                        print_error("refused: '%s'\n", good[i]);
                assert_true(nap_image_name_is_valid(good[i]));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (nap_image_name_is_valid(bad[i]))
                        print_error("accepted: '%s'\n", bad[i]);
                assert_false(nap_image_name_is_valid(bad[i]));
        }
        char longest[130];
        memset(longest, 'a', sizeof longest);
        longest[1] = ':';
        longest[128] = 0;
        assert_true(nap_image_name_is_valid(longest));
        longest[128] = 'a';
        longest[129] = 0;
        assert_false(nap_image_name_is_valid(longest));
}

static void test_image_tag(void **state) {
        NapInstance i = { .kind = NAP_KIND_COMMON, .number = 7 };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
        assert_int_equal(nap_service_from_parts("alice", "web-2", &i.service, NULL), 0);
        assert_int_equal(nap_manifest_image_tag(&i, "0123456789abcdef0123456789abcdef01234567", &a), 0);
        assert_string_equal(a, "localhost/nap/alice_web-2:0123456789ab");
        assert_int_equal(nap_manifest_image_tag(&i, NULL, &b), 0);
        assert_string_equal(b, "localhost/nap/alice_web-2:instance-7");
        /* Valid nap names that are not valid image names. */
        assert_int_equal(nap_service_from_parts("bob-", "web", &i.service, NULL), 0);
        assert_int_equal(nap_manifest_image_tag(&i, NULL, &c), -EINVAL);
        assert_int_equal(nap_service_from_parts("bob", "web-", &i.service, NULL), 0);
        assert_int_equal(nap_manifest_image_tag(&i, NULL, &c), -EINVAL);
        assert_null(c);
}

static NapManifest *sample(void) {
        NapManifest *m = calloc(1, sizeof *m);
        NapError e = NAP_ERROR_NULL;
        assert_non_null(m);
        assert_int_equal(nap_service_from_parts("alice", "web", &m->instance.service, &e), 0);
        m->instance.kind = NAP_KIND_COMMON;
        m->instance.number = 7;
        assert_int_equal(strv_extend(&m->argv, "python3"), 0);
        assert_int_equal(strv_extend(&m->argv, "say \"hi\" \\ 100% $HOME ünï"), 0);
        assert_int_equal(strv_extend(&m->argv, ""), 0);
        m->directory = strdup("/var/lib/nap/apps/alice/alice_web_7");
        m->port = 20007;
        m->enabled = false;
        assert_int_equal(nap_params_new(&m->params), 0);
        /* Set out of order: the format sorts them. */
        assert_int_equal(nap_params_set(m->params, "zeta", "z", &e), 0);
        assert_int_equal(nap_params_set(m->params, "alpha", "a,b", &e), 0);
        m->commit = strdup("0123456789abcdef0123456789abcdef01234567");
        return m;
}

static const char sample_text[] =
        "{\n"
        "  \"version\": 1,\n"
        "  \"user\": \"alice\",\n"
        "  \"app\": \"web\",\n"
        "  \"kind\": \"common\",\n"
        "  \"number\": 7,\n"
        "  \"argv\": [\n"
        "    \"python3\",\n"
        "    \"say \\\"hi\\\" \\\\ 100% $HOME ünï\",\n"
        "    \"\"\n"
        "  ],\n"
        "  \"directory\": \"/var/lib/nap/apps/alice/alice_web_7\",\n"
        "  \"port\": 20007,\n"
        "  \"enabled\": false,\n"
        "  \"params\": {\n"
        "    \"alpha\": \"a,b\",\n"
        "    \"zeta\": \"z\"\n"
        "  },\n"
        "  \"commit\": \"0123456789abcdef0123456789abcdef01234567\"\n"
        "}\n";

static void test_format_exact(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = sample();
        _cleanup_free_ char *text = nap_manifest_format(m);
        assert_non_null(text);
        assert_string_equal(text, sample_text);
}

static void test_round_trip(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = sample(), *back = NULL;
        _cleanup_free_ char *text = nap_manifest_format(m), *again = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(parse(text, &back, &e), 0);
        assert_true(strv_equal(m->argv, back->argv));
        assert_string_equal(back->directory, m->directory);
        assert_int_equal(back->port, m->port);
        assert_int_equal(back->enabled, m->enabled);
        assert_int_equal(back->instance.number, 7);
        assert_string_equal(nap_params_get(back->params, "alpha"), "a,b");
        assert_string_equal(back->commit, m->commit);
        again = nap_manifest_format(back);
        assert_string_equal(again, text); /* same model, same bytes */
}

/* The app's configuration: kept exactly, sorted on disk, checked on the
 * way in; a manifest without it (written before it existed) loads as
 * ever and writes no key. */
static void test_environment(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = sample(), *back = NULL, *old = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_params_new(&m->environment), 0);
        assert_int_equal(nap_params_set(m->environment, "Z", "50% $x \"q\" \\", NULL), 0);
        assert_int_equal(nap_params_set(m->environment, "A", "", NULL), 0);
        _cleanup_free_ char *text = nap_manifest_format(m), *again = NULL;
        assert_non_null(strstr(text, "\"environment\": {\n    \"A\": \"\",\n    \"Z\": "));
        assert_int_equal(parse(text, &back, &e), 0);
        assert_int_equal(nap_params_size(back->environment), 2);
        assert_string_equal(nap_params_get(back->environment, "Z"), "50% $x \"q\" \\");
        assert_string_equal(nap_params_get(back->environment, "A"), "");
        again = nap_manifest_format(back);
        assert_string_equal(again, text);

        assert_int_equal(parse(GOOD, &old, &e), 0);
        assert_null(old->environment);
        _cleanup_free_ char *old_text = nap_manifest_format(old);
        assert_null(strstr(old_text, "environment"));
}

static void test_refuse_environment(void **state) {
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"environment\":[]}", "must be an object");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"environment\":{\"PORT\":\"1\"}}", "PORT");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"environment\":{\"a-b\":\"1\"}}", "a-b");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"environment\":{\"A\":1}}", "not a string");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"environment\":{\"A\":\"x\\ty\"}}",
                       "control character");
        assert_refused(GOOD_HEAD GOOD_ARGV GOOD_DIR GOOD_TAIL ",\"environment\":{\"A\":\"1\",\"A\":\"2\"}}",
                       "JSON");
}

static void test_format_without_optional(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = sample(), *back = NULL;
        NapError e = NAP_ERROR_NULL;
        m->params = nap_params_free(m->params);
        free(m->commit);
        m->commit = NULL;
        _cleanup_free_ char *text = nap_manifest_format(m);
        assert_null(strstr(text, "params"));
        assert_null(strstr(text, "commit"));
        assert_int_equal(parse(text, &back, &e), 0);
        assert_null(back->params);
        assert_null(back->commit);
}

static const char sample_image_tail[] =
        "  \"commit\": \"0123456789abcdef0123456789abcdef01234567\",\n"
        "  \"image\": {\n"
        "    \"context\": \"/var/lib/nap/apps/alice/alice_web_7\",\n"
        "    \"tag\": \"localhost/nap/alice_web:0123456789ab\"\n"
        "  }\n"
        "}\n";

/* What start_common does for a Dockerfile app: the image, the commit's
 * tag, no command of its own; written and read back as such. */
static void test_set_image(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = sample(), *back = NULL, *bad = sample();
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_manifest_set_image(m, m->directory, &e), 0);
        assert_null(m->argv);
        assert_string_equal(m->image.context, "/var/lib/nap/apps/alice/alice_web_7");
        assert_string_equal(m->image.tag, "localhost/nap/alice_web:0123456789ab");

        _cleanup_free_ char *text = nap_manifest_format(m), *again = NULL;
        assert_non_null(text);
        assert_non_null(strstr(text, "  \"argv\": [],\n"));
        assert_non_null(strstr(text, sample_image_tail));
        assert_int_equal(parse(text, &back, &e), 0);
        assert_true(nap_manifest_has_image(back));
        assert_string_equal(back->image.tag, m->image.tag);
        again = nap_manifest_format(back);
        assert_string_equal(again, text);

        /* Again, without a commit: replaced, tagged by instance. */
        free(m->commit);
        m->commit = NULL;
        assert_int_equal(nap_manifest_set_image(m, "/srv/ctx", &e), 0);
        assert_string_equal(m->image.tag, "localhost/nap/alice_web:instance-7");
        assert_string_equal(m->image.context, "/srv/ctx");

        assert_int_equal(nap_manifest_set_image(bad, "srv/ctx", &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_MANIFEST);
        assert_false(nap_manifest_has_image(bad));
        assert_non_null(bad->argv); /* unchanged on failure */
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_from_parts("alice", "web-", &bad->instance.service, NULL), 0);
        assert_int_equal(nap_manifest_set_image(bad, "/srv/ctx", &e), -EINVAL);
        assert_non_null(strstr(e.message, "alice_web- cannot name a container image"));
}

static void test_path(void **state) {
        NapInstance i = { .kind = NAP_KIND_COMMON, .number = 12 };
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_service_from_parts("bob", "api", &i.service, &e), 0);
        _cleanup_free_ char *p = nap_manifest_path("/etc/nap/instances", &i);
        assert_string_equal(p, "/etc/nap/instances/bob_api_common@12.json");
        i.kind = NAP_KIND_MPI_MASTER;
        i.number = 3;
        _cleanup_free_ char *q = nap_manifest_path("/x", &i);
        assert_string_equal(q, "/x/bob_api_mpi_master@3.json");
}

static void test_save_load(void **state) {
        char dir[] = "/tmp/test-manifest.XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *sub = path_join(dir, "instances", NULL);
        _cleanup_(nap_manifest_freep) NapManifest *m = sample(), *back = NULL, *none = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(nap_manifest_save(sub, m, &e), 0); /* creates the directory */
        _cleanup_free_ char *path = nap_manifest_path(sub, &m->instance), *text = NULL;
        assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
        assert_string_equal(text, sample_text);
        assert_int_equal(nap_manifest_load(path, &back, &e), 0);
        assert_true(strv_equal(back->argv, m->argv));

        /* Under another name it is refused: the name is part of the content. */
        _cleanup_free_ char *other = path_join(sub, "alice_web_common@8.json", NULL);
        assert_int_equal(rename(path, other), 0);
        assert_true(nap_manifest_load(other, &none, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_MANIFEST);
        assert_non_null(strstr(e.message, "expected alice_web_common@7.json"));
        assert_null(none);

        e = NAP_ERROR_NULL;
        assert_true(nap_manifest_load(path, &none, &e) == -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_INTERNAL);
        assert_int_equal(rm_rf(dir), 0);
}

static void test_save_refuses_invalid(void **state) {
        _cleanup_(nap_manifest_freep) NapManifest *m = sample();
        NapError e = NAP_ERROR_NULL;
        m->port = 0;
        assert_true(nap_manifest_save("/nonexistent-nap-dir/should-not-be-created", m, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_MANIFEST);
        assert_int_equal(access("/nonexistent-nap-dir", F_OK), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_good),
                cmocka_unit_test(test_parse_optional_keys),
                cmocka_unit_test(test_parse_kinds),
                cmocka_unit_test(test_refuse_syntax),
                cmocka_unit_test(test_refuse_embedded_nul),
                cmocka_unit_test(test_refuse_types),
                cmocka_unit_test(test_refuse_values),
                cmocka_unit_test(test_refuse_names),
                cmocka_unit_test(test_refuse_directories),
                cmocka_unit_test(test_refuse_too_big),
                cmocka_unit_test(test_parse_image),
                cmocka_unit_test(test_refuse_image),
                cmocka_unit_test(test_image_name_is_valid),
                cmocka_unit_test(test_image_tag),
                cmocka_unit_test(test_format_exact),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_environment),
                cmocka_unit_test(test_refuse_environment),
                cmocka_unit_test(test_format_without_optional),
                cmocka_unit_test(test_set_image),
                cmocka_unit_test(test_path),
                cmocka_unit_test(test_save_load),
                cmocka_unit_test(test_save_refuses_invalid),
                cmocka_unit_test(test_health_path),
                cmocka_unit_test(test_apply_profile),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
