/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/model/mpi.c: job records, slave numbers, command lines, unit text. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test-util.h"

#include "base/strv.h"
#include "model/mpi.h"

static const char record[] =
        "{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":3,\"ranks\":4,\"argv\":[\"./hello\",\"hi\"],"
        "\"params\":{\"greeting\":\"hi\"},\"state\":\"failed\",\"result\":\"exit-code\",\"exit_status\":9,"
        "\"started\":10,\"finished\":20,\"cpu\":\"500m:1\",\"memory\":\"64M:64M\",\"node\":\"n1\"}";

static void test_state_strings(void **state) {
        for (NapMpiState s = 0; s < _NAP_MPI_STATE_MAX; s++) {
                assert_non_null(nap_mpi_state_to_string(s));
                assert_int_equal(nap_mpi_state_from_string(nap_mpi_state_to_string(s)), s);
        }
        assert_int_equal(nap_mpi_state_from_string("done"), -EINVAL);
}

static void test_slave_numbers(void **state) {
        assert_int_equal(nap_mpi_slave_number(1, 0), 1000);
        assert_int_equal(nap_mpi_slave_number(12, 7), 12007);
        assert_int_equal(nap_mpi_slave_job(12007), 12);
        /* the largest job's last rank is still a valid instance number */
        assert_int_equal(nap_mpi_slave_number(NAP_MPI_JOB_MAX, NAP_MPI_RANKS_LIMIT - 1), NAP_INSTANCE_NUMBER_MAX);
}

static void test_record_round_trip(void **state) {
        NapMpiJob j = {}, again = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_mpi_job_parse(record, strlen(record), &j, &e), 0);
        assert_int_equal(j.number, 3);
        assert_int_equal(j.ranks, 4);
        assert_int_equal(j.state, NAP_MPI_FAILED);
        assert_int_equal(j.exit_status, 9);
        assert_string_equal(j.result, "exit-code");
        assert_string_equal(nap_params_get(j.params, "greeting"), "hi");
        assert_int_equal(j.rank.request_cpu_milli, 500);
        assert_int_equal(j.rank.limit_cpu_milli, 1000);
        assert_int_equal(j.rank.request_memory, 64 << 20);
        assert_string_equal(j.node, "n1");
        _cleanup_free_ char *text = nap_mpi_job_format(&j);
        assert_non_null(text);
        assert_int_equal(nap_mpi_job_parse(text, strlen(text), &again, &e), 0);
        _cleanup_free_ char *text2 = nap_mpi_job_format(&again);
        assert_string_equal(text, text2);
        nap_mpi_job_done(&j);
        nap_mpi_job_done(&again);
}

static void refused(const char *text, const char *why) {
        NapMpiJob j = {};
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_mpi_job_parse(text, strlen(text), &j, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_MANIFEST);
        if (!strstr(e.message, why))
                fail_msg("'%s' does not say '%s'", e.message, why);
}

static void test_record_refused(void **state) {
        refused("{", "not valid JSON");
        refused("{\"version\":1}", "Damaged MPI job record");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":0,\"ranks\":4,\"argv\":[\"a\"],\"state\":\"running\","
                "\"started\":1}", "out of range");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1001,\"argv\":[\"a\"],"
                "\"state\":\"running\",\"started\":1}", "out of range");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[],\"state\":\"running\","
                "\"started\":1}", "bad argv");
        refused("{\"version\":1,\"user\":\"Alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[\"a\"],"
                "\"state\":\"running\",\"started\":1}", "not a valid app name");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[\"a\"],"
                "\"state\":\"running\",\"started\":1,\"extra\":1}", "Damaged");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[\"a\"],"
                "\"params\":{\"g\":\"a\\nb\"},\"state\":\"running\",\"started\":1}", "bad params");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[\"a\"],"
                "\"state\":\"running\",\"started\":1,\"cpu\":\"0\"}", "bad cpu or memory");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[\"a\"],"
                "\"state\":\"running\",\"started\":1,\"memory\":\"2M:1M\"}", "bad cpu or memory");
        refused("{\"version\":1,\"user\":\"alice\",\"app\":\"sim\",\"job\":1,\"ranks\":1,\"argv\":[\"a\"],"
                "\"state\":\"running\",\"started\":1,\"node\":\"Bad_Node\"}", "bad node");
}

static void test_argv(void **state) {
        char *program[] = { "./hello", "hi", NULL };
        _cleanup_strv_free_ char **m = nap_mpi_master_argv("/usr/lib/nap/nap-mpi", 4, program);
        _cleanup_strv_free_ char **s = nap_mpi_slave_argv("/usr/lib/nap/nap-mpi", 3);
        _cleanup_free_ char *mj = strv_join(m, " "), *sj = strv_join(s, " ");
        assert_string_equal(mj, "/usr/lib/nap/nap-mpi master 4 10 -- ./hello hi");
        assert_string_equal(sj, "/usr/lib/nap/nap-mpi slave 3 10");
}

static char *render(int (*fn)(FILE *f, void *userdata), void *userdata, int *ret) {
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        assert_non_null(f);
        *ret = fn(f, userdata);
        fclose(f);
        return buf;
}

static int dropin(FILE *f, void *m) {
        return nap_mpi_write_dropin_extra(f, m);
}

/* A master Wants= every slave of its job; a slave BindsTo= its master. */
static void test_dropins(void **state) {
        NapManifest m = { .instance = { .kind = NAP_KIND_MPI_MASTER, .number = 2 } };
        int r;
        assert_int_equal(nap_service_from_parts("alice", "sim", &m.instance.service, NULL), 0);
        assert_int_equal(nap_params_parse("np=3", 4, &m.params, NULL), 0);
        _cleanup_free_ char *master = render(dropin, &m, &r);
        assert_int_equal(r, 0);
        assert_string_equal(master, "\n[Unit]\nWants=alice_sim_mpi_slave@2000.service\n"
                                    "Wants=alice_sim_mpi_slave@2001.service\nWants=alice_sim_mpi_slave@2002.service\n");
        nap_params_free(m.params);
        m.params = NULL;
        _cleanup_free_ char *none = render(dropin, &m, &r);
        assert_int_equal(r, -EINVAL); /* a master without np */
        m.instance = (NapInstance) { .service = m.instance.service, .kind = NAP_KIND_MPI_SLAVE, .number = 2001 };
        _cleanup_free_ char *slave = render(dropin, &m, &r);
        assert_int_equal(r, 0);
        assert_string_equal(slave, "\n[Unit]\nBindsTo=alice_sim_mpi_master@2.service\n");
}

static int master_template(FILE *f, void *c) {
        NapService s;
        assert_int_equal(nap_service_from_parts("alice", "sim", &s, NULL), 0);
        return nap_mpi_write_template(f, &s, NAP_KIND_MPI_MASTER, NAP_SCOPE_USER, c);
}

static void test_templates(void **state) {
        NapConfig c = { .instances_dir = (char *) "/etc/nap/instances" };
        int r;
        _cleanup_free_ char *t = render(master_template, &c, &r);
        assert_int_equal(r, 0);
        assert_non_null(strstr(t, "Description=nap app alice_sim, MPI job %i (mpi_master)\n"));
        assert_non_null(strstr(t, "RemainAfterExit=yes\n"));
        assert_null(strstr(t, "Restart="));
        assert_null(strstr(t, "PrivateTmp=")); /* ranks share memory across units */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state_strings),
                cmocka_unit_test(test_slave_numbers),
                cmocka_unit_test(test_record_round_trip),
                cmocka_unit_test(test_record_refused),
                cmocka_unit_test(test_argv),
                cmocka_unit_test(test_dropins),
                cmocka_unit_test(test_templates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
