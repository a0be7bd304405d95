/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The method registry against the interface it serves: every method of
 * io.nap.Manager.varlink is in the registry and the other way round, each
 * entry's arguments exist with the right types, and the D-Bus members
 * derived from the interface keep the signatures io.nap.Manager1 was
 * published with (adding a method adds a member; changing one fails
 * here). Also lib/protocol/bus-json.c both ways on real sd-bus messages. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "ops/methods.h"

static void test_interface_parses(void **state) {
        assert_non_null(nap_manager_idl());
        assert_string_equal(varlink_idl_get_name(nap_manager_idl()), NAP_MANAGER_INTERFACE);
}

static void test_registry_is_the_interface(void **state) {
        const VarlinkIdl *idl = nap_manager_idl();
        assert_int_equal(nap_methods_size(), varlink_idl_n_methods(idl));
        for (size_t i = 0; i < nap_methods_size(); i++) {
                const NapMethod *m = nap_method_at(i);
                /* the same order: the registry reads like the interface */
                assert_string_equal(m->name, varlink_idl_method_name(idl, i));
                assert_ptr_equal(nap_method_find(m->name), m);
        }
        assert_null(nap_method_find("NoSuchMethod"));
        assert_null(nap_method_find(NULL));
        assert_null(nap_method_at(nap_methods_size()));
}

static void test_entries_are_complete(void **state) {
        const VarlinkIdl *idl = nap_manager_idl();
        for (size_t i = 0; i < nap_methods_size(); i++) {
                const NapMethod *m = nap_method_at(i);
                const VarlinkIdlType *in = varlink_idl_method_input(idl, m->name);
                print_message("%s\n", m->name);
                assert_non_null(m->call);
                /* nobody's (the inventory): no owner argument, and only
                 * reads are open to everybody */
                assert_int_equal(m->owns == NAP_OWNER_NONE, m->owner == NULL);
                if (m->owns == NAP_OWNER_NONE)
                        assert_true(m->access == NAP_ACCESS_READ || m->access == NAP_ACCESS_ADMIN);
                else {
                        const VarlinkIdlType *owner = varlink_idl_type_field(in, m->owner);
                        assert_non_null(owner);
                        assert_int_equal(varlink_idl_type_kind(owner), VARLINK_IDL_STRING);
                        assert_false(varlink_idl_type_nullable(owner));
                }
                if (m->parameter)
                        assert_non_null(varlink_idl_type_field(in, m->parameter));
                assert_int_equal(m->run == NAP_METHOD_CACHED, m->from_instances != NULL);
        }
}

static void test_shared_methods_are_root_s_to_change(void **state) {
        NapError e = NAP_ERROR_NULL;
        json_auto_t *args = json_pack("{s:s}", "name", "h1");
        assert_int_equal(nap_method_authorize(nap_method_find("ListNodes"), 65534, args, NULL), 0);
        assert_int_equal(nap_method_authorize(nap_method_find("DeleteNode"), 0, args, NULL), 0);
        assert_int_equal(nap_method_authorize(nap_method_find("DeleteNode"), 65534, args, &e), -EPERM);
        assert_int_equal(e.kind, NAP_ERROR_PERMISSION_DENIED);
        /* a reservation is its name's user's: a bad name is refused first */
        json_auto_t *bad = json_pack("{s:s, s:s}", "name", "h1", "compute_name", "no-user-part");
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_method_authorize(nap_method_find("ReserveCompute"), 0, bad, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
}

static void test_invalid_parameter_names_the_form_given(void **state) {
        const NapMethod *m = nap_method_find("StartCommon");
        json_auto_t *as_map = json_pack("{s:s, s:{}}", "service", "a_b", "params");
        json_auto_t *as_string = json_pack("{s:s, s:s}", "service", "a_b", "paramsString", "x=1");
        assert_string_equal(nap_method_invalid_parameter(m, as_map, NULL), "params");
        assert_string_equal(nap_method_invalid_parameter(m, as_string, NULL), "paramsString");
        assert_string_equal(nap_method_invalid_parameter(nap_method_find("StopApp"), as_map, NULL), "instance");
        /* what the method named wins, if it is one of its arguments */
        assert_string_equal(nap_method_invalid_parameter(m, as_map, "cpu"), "cpu");
        assert_string_equal(nap_method_invalid_parameter(m, as_map, "nonsense"), "params");
}

static void test_authorize_refuses_bad_names_and_strangers(void **state) {
        NapError e = NAP_ERROR_NULL;
        json_auto_t *bad = json_pack("{s:s}", "instance", "../etc");
        json_auto_t *none = json_object();
        assert_int_equal(nap_method_authorize(nap_method_find("StopApp"), 0, bad, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        e = NAP_ERROR_NULL;
        assert_true(nap_method_authorize(nap_method_find("StopApp"), 0, none, &e) < 0);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
}

static void test_envelope_round_trip(void **state) {
        NapError e = NAP_ERROR_NULL;
        const NapMethod *m = nap_method_find("CatApp");
        json_auto_t *ok = nap_method_envelope(m, json_pack("{s:s, s:s}", "instance", "a_b_common@1", "profile", "x"),
                                              &e);
        json_auto_t *result = nap_method_unwrap(ok, &e);
        assert_non_null(result);
        assert_string_equal(json_string_value(json_object_get(result, "profile")), "x");
        assert_int_equal(nap_method_check_result(m, result, NULL), 0);

        nap_error_set(&e, NAP_ERROR_NO_SUCH_INSTANCE, -ENOENT, "No instance a_b_common@9");
        json_auto_t *failed = nap_method_envelope(m, NULL, &e);
        NapError back = NAP_ERROR_NULL;
        assert_null(nap_method_unwrap(failed, &back));
        assert_int_equal(back.kind, NAP_ERROR_NO_SUCH_INSTANCE);
        assert_string_equal(back.message, "No instance a_b_common@9");
}

static void test_check_result_catches_a_wrong_reply(void **state) {
        const char *bad = NULL;
        json_auto_t *wrong = json_pack("{s:s}", "port", "not a number");
        assert_int_equal(nap_method_check_result(nap_method_find("GetPort"), wrong, &bad), -EINVAL);
        assert_string_equal(bad, "port");
}

/* ---- D-Bus ------------------------------------------------------------ */

/* io.nap.Manager1 as published: member, in, out. */
static const char *const published[][3] = {
        { "DeployApp", "ss", "sbss" },
        { "ListServices", "s", "a(sssst)" },
        { "GetServiceUrl", "s", "ss" },
        { "GetInstancesNum", "s", "u" },
        { "ListInstances", "s", "a(ssuusbssasa{ss})" },
        { "GetPort", "s", "us" },
        { "GetJournal", "su", "a(tsisu)" },
        { "StopApp", "s", "" },
        { "StartApp", "s", "" },
        { "CatApp", "s", "s" },
        { "GetParameters", "s", "as" },
        { "StartCommon", "ss", "(ssuusbssasa{ss})s" },
        { "StartCommonWithParams", "sa{ss}", "(ssuusbssasa{ss})s" },
        { "StartCommonQueued", "sa{ss}sssb", "(ssuusbssasa{ss})s(sxu)" },
        { "StartMpi", "ss", "a(ssuusbssasa{ss})" },
        { "RemoveInstance", "s", "" },
        { "ListEndpoints", "s", "a(suss)" },
        /* issue 12: an app's lifecycle */
        { "ListInstancesWithCommits", "s", "a(ssuusbssasa{ss})a{ss}" },
        { "ListInstancesWithNodes", "s", "a(ssuusbssasa{ss})a{ss}a{ss}" },
        { "StartCommonInCluster", "sa{ss}ssssb", "(ssuusbssasa{ss})s" },
        { "Scale", "sua{ss}u", "uuasas" },
        { "GetConfig", "s", "a{ss}" },
        { "SetConfig", "sa{ss}as", "bba(ssuusbssasa{ss})" },
        { "RestartService", "s", "a(ssuusbssasa{ss})" },
        { "DestroyApp", "s", "" },
        { "ListApps", "s", "a(sssuuuau)" },
        /* issue 13: MPI jobs */
        { "StartMpiWithParams", "sa{ss}", "a(ssuusbssasa{ss})" },
        { "GetMpiJob", "su", "(ususisttasa{ss}s)a(ssuusbssasa{ss})" },
        /* issue 14: start-mpi --queue */
        { "StartMpiQueued", "sa{ss}sssbb", "a(ssuusbssasa{ss})(ususisttasa{ss}s)(sxu)" },
        /* issue 16: deploy history and rollback */
        { "History", "s", "a(sst)" },
        { "Rollback", "ss", "sssba(ssuusbssasa{ss})" },
};

static void test_bus_members_keep_the_published_signatures(void **state) {
        size_t found = 0;
        for (size_t i = 0; i < nap_methods_size(); i++) {
                const NapMethod *m = nap_method_at(i);
                const NapBusMember *b;
                for (size_t k = 0; (b = nap_method_bus_member(m, k)); k++) {
                        const char *member = b->member ?: m->name;
                        NapBusFields in, out;
                        print_message("%s\n", member);
                        assert_int_equal(nap_bus_member_fields(m, b, true, &in), 0);
                        assert_int_equal(nap_bus_member_fields(m, b, false, &out), 0);
                        for (size_t p = 0; p < ELEMENTSOF(published); p++)
                                if (streq(published[p][0], member)) {
                                        print_message("%s (%s) → (%s)\n", member, in.signature, out.signature);
                                        assert_string_equal(in.signature, published[p][1]);
                                        assert_string_equal(out.signature, published[p][2]);
                                        found++;
                                }
                }
        }
        assert_int_equal(found, ELEMENTSOF(published)); /* none was lost */
}

static void test_bus_member_fields_name_the_wire(void **state) {
        const NapMethod *m = nap_method_find("DeployApp");
        NapBusFields out;
        assert_int_equal(nap_bus_member_fields(m, nap_method_bus_member(m, 0), false, &out), 0);
        assert_int_equal(out.n, 4);
        assert_string_equal(out.fields[3].field, "etcdError"); /* the varlink name … */
        assert_string_equal(out.fields[3].name, "etcd_error"); /* … and the published D-Bus one */
        /* a method with no member given has one, its own, and no second */
        const NapMethod *l = nap_method_find("ListServices");
        assert_non_null(nap_method_bus_member(l, 0));
        assert_null(nap_method_bus_member(l, 1));
        assert_non_null(nap_method_bus_member(nap_method_find("StartCommon"), 4)); /* StartCommonQueued */
        assert_non_null(nap_method_bus_member(nap_method_find("StartCommon"), 5)); /* StartCommonInCluster */
        assert_null(nap_method_bus_member(nap_method_find("StartCommon"), 6));
}

/* A started bus on one end of a socketpair: enough to build messages. */
static sd_bus *bus_for_messages(void) {
        sd_bus *bus = NULL;
        int fds[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(sd_bus_new(&bus), 0);
        assert_int_equal(sd_bus_set_fd(bus, fds[0], fds[0]), 0);
        assert_int_equal(sd_bus_start(bus), 0);
        close(fds[1]);
        return bus;
}

/* value → message → value, by the type of field of method's output. */
static json_t *through_bus(sd_bus *bus, const char *method, const char *field, json_t *value) {
        const VarlinkIdlType *t = varlink_idl_type_field(varlink_idl_method_output(nap_manager_idl(), method), field);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        json_t *back = NULL;
        assert_non_null(t);
        assert_int_equal(sd_bus_message_new_method_call(bus, &m, "a.b", "/a", "a.b", "M"), 0);
        assert_int_equal(bus_json_append(m, nap_bus_ints, t, field, value), 0);
        assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
        assert_int_equal(sd_bus_message_rewind(m, true), 1);
        assert_int_equal(bus_json_read(m, nap_bus_ints, t, field, &back), 0);
        assert_int_equal(sd_bus_message_at_end(m, true), 1);
        return back;
}

static void test_bus_json_round_trip(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_for_messages();
        json_auto_t *instances = json_pack(
                "[{s:s, s:s, s:i, s:i, s:s, s:b, s:s, s:s, s:[s, s], s:{s:s}}]", "instance", "a_b_common@1", "unit",
                "a_b_common@1.service", "number", 1, "port", 20000, "url", "http://h:20000", "enabled", 1,
                "active_state", "active", "sub_state", "running", "argv", "python3", "x y", "params", "greeting",
                "hi, there");
        json_auto_t *back = through_bus(bus, "ListInstances", "instances", instances);
        assert_true(json_equal(back, instances));

        /* null goes out as "" (D-Bus has no null), and comes back so */
        json_auto_t *entries = json_pack("[{s:I, s:s, s:i, s:n, s:i}]", "time", (json_int_t) 1700000000000000,
                                         "message", "hello", "priority", -1, "identifier", "pid", 42);
        json_auto_t *entries_back = through_bus(bus, "GetJournal", "entries", entries);
        json_t *e = json_array_get(entries_back, 0);
        assert_int_equal(json_integer_value(json_object_get(e, "time")), 1700000000000000);
        assert_int_equal(json_integer_value(json_object_get(e, "priority")), -1);
        assert_string_equal(json_string_value(json_object_get(e, "identifier")), "");
}

static void test_bus_json_refuses_a_wrong_json_type(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_for_messages();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const VarlinkIdlType *t = varlink_idl_type_field(varlink_idl_method_output(nap_manager_idl(), "GetPort"),
                                                         "port");
        json_auto_t *wrong = json_string("20000");
        assert_int_equal(sd_bus_message_new_method_call(bus, &m, "a.b", "/a", "a.b", "M"), 0);
        assert_int_equal(bus_json_append(m, nap_bus_ints, t, "port", wrong), -EINVAL);
}

static void test_bus_json_refuses_a_repeated_key(void **state) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_for_messages();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const VarlinkIdlType *t = varlink_idl_type_field(varlink_idl_method_input(nap_manager_idl(), "StartCommon"),
                                                         "params");
        json_t *back = NULL;
        assert_int_equal(sd_bus_message_new_method_call(bus, &m, "a.b", "/a", "a.b", "M"), 0);
        assert_int_equal(sd_bus_message_append(m, "a{ss}", 2, "k", "1", "k", "2"), 1);
        assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
        assert_int_equal(sd_bus_message_rewind(m, true), 1);
        assert_int_equal(bus_json_read(m, nap_bus_ints, t, "params", &back), -ENOTUNIQ);
        assert_null(back);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_interface_parses),
                cmocka_unit_test(test_registry_is_the_interface),
                cmocka_unit_test(test_entries_are_complete),
                cmocka_unit_test(test_shared_methods_are_root_s_to_change),
                cmocka_unit_test(test_invalid_parameter_names_the_form_given),
                cmocka_unit_test(test_authorize_refuses_bad_names_and_strangers),
                cmocka_unit_test(test_envelope_round_trip),
                cmocka_unit_test(test_check_result_catches_a_wrong_reply),
                cmocka_unit_test(test_bus_members_keep_the_published_signatures),
                cmocka_unit_test(test_bus_member_fields_name_the_wire),
                cmocka_unit_test(test_bus_json_round_trip),
                cmocka_unit_test(test_bus_json_refuses_a_wrong_json_type),
                cmocka_unit_test(test_bus_json_refuses_a_repeated_key),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
