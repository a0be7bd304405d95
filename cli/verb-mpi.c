/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* napctl start-mpi and mpi-job: thin adapters over StartMpi and
 * GetMpiJob. The wait for a job's end is here, not in the method: a call
 * stays short whatever the job's length (D-Bus calls time out after 25 s). */

#include <jansson.h>
#include <time.h>

#include "model/mpi.h"
#include "napctl-output.h"
#include "verb-mpi.h"
#include "verb-nodes.h"
#include "verb-queue.h"

/* How often a waiting start-mpi asks for the job's state. */
#define POLL_NSEC (10 * 1000 * 1000L)

static void print_instances(json_t *instances) {
        json_t *i;
        size_t k;
        json_array_foreach(instances, k, i)
                printf("%-40s %-10s %s\n", json_str(i, "instance"), json_str(i, "active_state"), json_str(i, "sub_state"));
}

static int job_of_reply(json_t *reply, unsigned *ret, NapError *e) {
        json_t *number = json_object_get(json_object_get(reply, "job"), "number");
        if (!json_is_integer(number) || json_integer_value(number) < 1)
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EBADMSG, "StartMpi answered without the job");
        *ret = (unsigned) json_integer_value(number);
        return 0;
}

static int get_job(Caller *c, const char *service, unsigned job, json_t **ret, NapError *e) {
        return caller_call(c, "GetMpiJob", json_pack("{s:s, s:I}", "service", service, "job", (json_int_t) job),
                           READ_TIMEOUT, ret, e);
}

static void print_job(json_t *j) {
        char a[32], b[32];
        uint64_t started = json_int(j, "started"), finished = json_int(j, "finished");
        printf("Job %lld (%s), %lld ranks\nState: %s", (long long) json_int(j, "number"), json_str(j, "master"),
               (long long) json_int(j, "ranks"), json_str(j, "state"));
        if (json_int(j, "exitStatus") >= 0)
                printf(" (exit status %lld, %s)", (long long) json_int(j, "exitStatus"), json_str(j, "result"));
        printf("\nStarted: %s\n", output_time(started, a));
        if (finished > 0)
                printf("Finished: %s (%.3f s)\n", output_time(finished, b),
                       finished > started ? (double) (finished - started) / 1e6 : 0.0);
}

/* The job's result: printed, and a job that did not succeed is an error. */
static int show_job(json_t *reply, const LifecycleOptions *o, NapError *e) {
        json_t *j = json_object_get(reply, "job");
        if (o->json)
                output_json(json_incref(reply));
        else {
                print_job(j);
                print_instances(json_object_get(reply, "instances"));
        }
        fflush(stdout); /* the result before napctl's error line, if any */
        const char *state = json_str(j, "state");
        if (streq(state, "succeeded") || streq(state, "running"))
                return 0;
        return nap_error_set(e, NAP_ERROR_UNIT_FAILED, -EIO, "MPI job %lld %s (exit status %lld, %s)",
                             (long long) json_int(j, "number"), state, (long long) json_int(j, "exitStatus"),
                             json_str(j, "result"));
}

static int wait_job(Caller *c, const char *service, unsigned job, json_t **ret, NapError *e) {
        for (;;) {
                json_t *reply = NULL;
                int r = get_job(c, service, job, &reply, e);
                if (r < 0)
                        return r;
                if (!streq(json_str(json_object_get(reply, "job"), "state"), "running")) {
                        *ret = reply;
                        return 0;
                }
                json_decref(reply);
                (void) nanosleep(&(struct timespec) { .tv_nsec = POLL_NSEC }, NULL);
        }
}

static int start_mpi_call(Caller *c, char **args, const LifecycleOptions *o, const char *id, json_t **ret,
                          NapError *e) {
        /* with a request id, a call whose answer was lost is safe to send
         * again: nap-managerd answers with the job the first one started */
        return caller_call_retrying(c, "StartMpi",
                                    json_pack("{s:s, s:s*, s:s*, s:s*, s:s, s:b, s:b}", "service", args[0],
                                              "paramsString", args[1], "cpu", o->cpu, "memory", o->memory, "requestId",
                                              id, "noBlock", o->no_block, "queue", o->queue),
                                    WRITE_TIMEOUT, ret, e);
}

/* StartMpi, and with --queue, when the job waits: the wait for its
 * admission, then the same call again. 1: still queued (--no-block). */
static int start_mpi(Caller *c, char **args, const LifecycleOptions *o, json_t **ret, NapError *e) {
        char id[CALLER_REQUEST_ID_MAX];
        json_t *reply = NULL;
        int r = caller_request_id(o->request_id, id, e);
        if (r >= 0)
                r = start_mpi_call(c, args, o, id, &reply, e);
        if (r >= 0 && json_object_get(reply, "queued")) {
                r = queue_wait_start(c, args[0], id, json_object_get(reply, "queued"), o->json, o->no_block, e);
                json_decref(TAKE_PTR(reply));
                if (r == 0) /* admitted: the same call again starts it on the job's reservation */
                        r = start_mpi_call(c, args, o, id, &reply, e);
        }
        *ret = reply;
        return r;
}

int verb_start_mpi(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL, *done = NULL;
        NodeOptions compute = { .cpu = o->cpu, .memory = o->memory };
        NapCompute checked; /* --cpu=/--memory= checked here: bad input goes nowhere */
        unsigned job = 0;
        int r = options_compute(&compute, &checked, e);
        if (r >= 0)
                r = start_mpi(c, args, o, &reply, e);
        if (r > 0)
                return 0; /* queued, said so */
        if (r >= 0)
                r = job_of_reply(reply, &job, e);
        if (r < 0)
                return r;
        if (o->no_block) {
                if (o->json)
                        return output_json(json_pack("{s:I, s:O}", "job", (json_int_t) job, "instances",
                                                     json_object_get(reply, "instances")));
                printf("Job %u started\n", job);
                print_instances(json_object_get(reply, "instances"));
                return 0;
        }
        r = wait_job(c, args[0], job, &done, e);
        return r < 0 ? r : show_job(done, o, e);
}

int verb_mpi_job(Caller *c, char **args, const LifecycleOptions *o, NapError *e) {
        json_auto_t *reply = NULL;
        unsigned job;
        if (nap_instance_number_parse(args[1], &job) < 0 || job > NAP_MPI_JOB_MAX)
                return nap_error_parameter(e, nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                                            "JOB must be a job number, 1 to %u", NAP_MPI_JOB_MAX),
                                           "job");
        int r = get_job(c, args[0], job, &reply, e);
        return r < 0 ? r : show_job(reply, o, e);
}
