/*
 * objects_host: the end-to-end object API scenarios from a C host that uses only
 * bindings/c/pybridge.h (no Python.h): run code, call, convert, Python errors
 * with tracebacks, host functions with and without the release-GIL policy,
 * and a native worker thread that calls back into Python. Built with
 * -Wall -Wextra -Werror and run by tests/c_programs.rs; exits 1 naming the
 * failed check.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pybridge.h"
#define HOST_CHECK_PROGRAM "objects_host"
#include "host_check.h"

/* Like expect, and says so on stdout: the driver looks for some of these lines. */
static void expect_said(const char *what, pyb_status status, const char *expected) {
    expect(what, status, expected);
    printf("objects_host: %s -> %s\n", what, expected);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int64_t eval_int(const char *expr) {
    pyb_value value;
    check(expr, pyb_eval(expr, "<objects_host>", 0, &value));
    if (value.tag != PYB_VALUE_INT) {
        fail("%s gave tag %u, not an int", expr, value.tag);
    }
    return value.data.int64;
}

/* --- host functions --- */

/* Counts the calls inside a host function at once. With the release policy
 * each call waits (up to 10 s) until all four are inside together, which only
 * a released GIL allows; with the GIL held each works 200 ms, in turn. */
struct overlap {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int meet; /* wait for the others instead of working */
    int inside;
    int max_inside;
};
static struct overlap released_calls = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0};
static struct overlap held_calls = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static pyb_status slow(const pyb_value *args, size_t nargs, pyb_value *result, void *user_data) {
    (void)args;
    (void)nargs;
    struct overlap *calls = user_data;
    pthread_mutex_lock(&calls->lock);
    calls->inside++;
    if (calls->inside > calls->max_inside) {
        calls->max_inside = calls->inside;
    }
    pthread_cond_broadcast(&calls->changed);
    if (calls->meet) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        while (calls->max_inside < 4 &&
               pthread_cond_timedwait(&calls->changed, &calls->lock, &deadline) == 0) {
        }
    } else {
        pthread_mutex_unlock(&calls->lock);
        sleep_ms(200);
        pthread_mutex_lock(&calls->lock);
    }
    calls->inside--;
    pthread_mutex_unlock(&calls->lock);
    result->tag = PYB_VALUE_INT;
    result->data.int64 = 200;
    return PYB_OK;
}

static pyb_status refuse(const pyb_value *args, size_t nargs, pyb_value *result, void *user_data) {
    (void)args;
    (void)nargs;
    (void)result;
    (void)user_data;
    pyb_set_error("the host refused");
    return PYB_E_INVALID_ARGUMENT;
}

/* The processor: hands each message to a native worker thread (not created by
 * Python) that calls the Python callback when done. */
struct job {
    int64_t message;
    pyb_object callback;
};

static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t workers_done = PTHREAD_COND_INITIALIZER;
static int active_workers;

static void *worker(void *arg) {
    struct job *job = arg;
    sleep_ms(1); /* "processing" */
    pyb_value done = {.tag = PYB_VALUE_INT, .data.int64 = job->message};
    pyb_value ignored;
    /* No GIL here: pyb_call takes and drops it itself. */
    check("worker pyb_call", pyb_call(job->callback, &done, 1, NULL, 0, &ignored));
    check("worker release", pyb_object_release(job->callback));
    free(job);
    pthread_mutex_lock(&workers_lock);
    if (--active_workers == 0) {
        pthread_cond_broadcast(&workers_done);
    }
    pthread_mutex_unlock(&workers_lock);
    return NULL;
}

static pyb_status process(const pyb_value *args, size_t nargs, pyb_value *result, void *user_data) {
    (void)result;
    (void)user_data;
    if (nargs != 2 || args[0].tag != PYB_VALUE_INT || args[1].tag != PYB_VALUE_OBJECT) {
        pyb_set_error("process(message: int, callback)");
        return PYB_E_INVALID_ARGUMENT;
    }
    struct job *job = malloc(sizeof *job);
    job->message = args[0].data.int64;
    /* The argument handle lives for this call only: keep a clone for the worker. */
    pyb_status status = pyb_object_clone(args[1].data.object, &job->callback);
    if (status != PYB_OK) {
        free(job);
        return status;
    }
    pthread_mutex_lock(&workers_lock);
    active_workers++;
    pthread_mutex_unlock(&workers_lock);
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, job) != 0) {
        pyb_object_release(job->callback);
        free(job);
        pyb_set_error("pthread_create failed");
        return PYB_E_INVALID_ARGUMENT;
    }
    pthread_detach(thread);
    return PYB_OK;
}

static int freed;
static void count_free(void *user_data) {
    (void)user_data;
    freed++;
}

/* --- scenarios --- */

static double four_python_threads_calling(const char *function) {
    char code[512];
    snprintf(code, sizeof code,
             "import threading, time, host\n"
             "threads = [threading.Thread(target=host.%s) for _ in range(4)]\n"
             "start = time.monotonic()\n"
             "for t in threads: t.start()\n"
             "for t in threads: t.join()\n"
             "elapsed_ms = int((time.monotonic() - start) * 1000)\n",
             function);
    check(function, pyb_run(code, "scenario1.py", 0));
    return (double)eval_int("elapsed_ms");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    check("pyb_engine_initialize", pyb_engine_initialize(NULL));
    check("register slow_released",
          pyb_register_function("host", "slow_released", slow, &released_calls, count_free,
                                PYB_FN_RELEASE_GIL));
    check("register slow_held",
          pyb_register_function("host", "slow_held", slow, &held_calls, count_free, 0));
    check("register refuse", pyb_register_function("host", "refuse", refuse, NULL, NULL, 0));
    check("register process", pyb_register_function("host", "process", process, NULL, NULL, 0));

    /* Scenario 1: the release policy lets 4 Python threads overlap. */
    double released = four_python_threads_calling("slow_released");
    double held = four_python_threads_calling("slow_held");
    printf("objects_host: 4 threads calling at once: %d inside together released (%.0f ms), "
           "%d held (4 x 200 ms: %.0f ms)\n",
           released_calls.max_inside, released, held_calls.max_inside, held);
    if (released_calls.max_inside != 4 || held_calls.max_inside != 1 || held < 780) {
        fail("expected all 4 inside at once with the policy, and one at a time for >= 780 ms "
             "without");
    }

    /* Scenario 2: a Python subscriber loop feeds a native worker that calls back. */
    for (int run = 0; run < 20; run++) {
        check("subscriber",
              pyb_run("import queue, threading, host\n"
                      "inbox, acked = queue.Queue(), []\n"
                      "done = threading.Event()\n"
                      "N = 50\n"
                      "def ack(message):\n"
                      "    acked.append(message)\n"
                      "    if len(acked) == N:\n"
                      "        done.set()\n"
                      "def producer():\n"
                      "    for i in range(N):\n"
                      "        inbox.put(i)\n"
                      "threading.Thread(target=producer).start()\n"
                      "received = 0\n"
                      "while received < N:\n"
                      "    host.process(inbox.get(timeout=10), ack)\n"
                      "    received += 1\n"
                      "assert done.wait(10), 'callbacks missing: %d of %d' % (len(acked), N)\n"
                      "ack_total = sum(acked)\n",
                      "scenario2.py", 0));
        if (eval_int("ack_total") != 50 * 49 / 2) {
            fail("run %d: callbacks summed to %lld", run, (long long)eval_int("ack_total"));
        }
    }
    /* Workers finish their last release after the callback: wait for them. */
    pthread_mutex_lock(&workers_lock);
    while (active_workers > 0) {
        pthread_cond_wait(&workers_done, &workers_lock);
    }
    pthread_mutex_unlock(&workers_lock);
    printf("objects_host: 20 runs x 50 messages: every callback arrived\n");

    /* Scenario 4: a Python error names the script's file in its traceback. */
    pyb_status status = pyb_run("def divide(a, b):\n    return a / b\n\ndivide(1, 0)\n",
                                "scenario4.py", 0);
    expect_said("1/0", status, "PYB_E_PYTHON");
    char type[128], traceback[4096];
    pyb_last_error_python_type(type, sizeof type);
    pyb_last_error_python_traceback(traceback, sizeof traceback);
    if (strcmp(type, "ZeroDivisionError") != 0 || strstr(traceback, "File \"scenario4.py\"") == NULL) {
        fail("1/0 reported %s with traceback:\n%s", type, traceback);
    }
    if (eval_int("6 * 7") != 42) {
        fail("the engine does not work after an exception");
    }

    /* A host error becomes a Python exception with the host's message. */
    check("catch host error", pyb_run("import host\n"
                                      "try:\n"
                                      "    host.refuse()\n"
                                      "except RuntimeError as error:\n"
                                      "    refused = str(error) == 'the host refused'\n",
                                      "host_error.py", 0));
    if (eval_int("int(refused)") != 1) {
        fail("the host error's message did not reach Python");
    }

    /* Values: a call with plain arguments and a plain result, strings with NULs. */
    check("define", pyb_run("def add(a, b):\n    return a + b\n", "add.py", 0));
    pyb_value add_value, sum;
    check("eval add", pyb_eval("add", "add.py", 0, &add_value));
    pyb_value args[2] = {{.tag = PYB_VALUE_INT, .data.int64 = 40},
                         {.tag = PYB_VALUE_INT, .data.int64 = 2}};
    check("pyb_call add", pyb_call(add_value.data.object, args, 2, NULL, 0, &sum));
    if (sum.tag != PYB_VALUE_INT || sum.data.int64 != 42) {
        fail("add(40, 2) gave tag %u", sum.tag);
    }
    pyb_value pieces[2] = {{.tag = PYB_VALUE_STR, .data.str = {"a\0b", 3}},
                           {.tag = PYB_VALUE_STR, .data.str = {"c", 1}}};
    pyb_value joined;
    check("pyb_call add str", pyb_call(add_value.data.object, pieces, 2, NULL, 0, &joined));
    if (joined.tag != PYB_VALUE_STR || joined.data.str.len != 4 ||
        memcmp(joined.data.str.ptr, "a\0bc", 4) != 0) {
        fail("embedded NUL lost");
    }

    /* Bad input: documented statuses, and the engine stays usable. */
    pyb_value bad_utf8 = {.tag = PYB_VALUE_STR, .data.str = {"\xff", 1}};
    expect_said("str argument with invalid UTF-8",
           pyb_call(add_value.data.object, &bad_utf8, 1, NULL, 0, &sum), "PYB_E_INVALID_ARGUMENT");
    expect_said("made-up handle", pyb_call(0x12345678, args, 2, NULL, 0, &sum), "PYB_E_BAD_HANDLE");
    check("release add", pyb_object_release(add_value.data.object));
    expect_said("released handle", pyb_call(add_value.data.object, args, 2, NULL, 0, &sum),
           "PYB_E_BAD_HANDLE");
    expect_said("NULL code", pyb_run(NULL, "x.py", 0), "PYB_E_NULL_ARGUMENT");
    if (eval_int("1 + 1") != 2) {
        fail("the engine does not work after bad input");
    }

    check("pyb_engine_shutdown", pyb_engine_shutdown(10000, 0));
    if (freed != 2) {
        fail("free_user_data ran %d times, expected 2", freed);
    }
    host_checks_done();
    return 0;
}
