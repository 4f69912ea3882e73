/*
 * package_host.c: a host built only from the unpacked package (pkg-config
 * --cflags --libs pybridge) that runs against the Python it is told to use.
 *
 *   package_host run   <config|env> <python> <version> [<venv> <module>]
 *   package_host error <config|env> <python> <status name> <text>...
 *
 * "config" names the Python in pyb_config.python; "env" leaves it NULL (the
 * test sets PYBRIDGE_PYTHON). `run` checks the Python is CPython <version>
 * (and, for a venv, that sys.prefix is <venv> and <module> imports), then:
 * a Python thread keeps ticking while 4 host threads make nested scopes and
 * calls; another thread shuts the engine down (interrupting the ticker); a
 * second engine starts on the same Python. `error` expects initialize to fail
 * with <status name>, a message containing each <text>, and nothing started.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pybridge.h"

#ifdef _WIN32
/* The C runtime's realpath (links and relative parts resolved). */
#define absolute_path(path, out, size) _fullpath((out), (path), (size))
#else
#define absolute_path(path, out, size) realpath((path), (out))
#endif

#define HOST_CHECK_PROGRAM "package_host"
#include "host_check.h"

enum { HOST_THREADS = 4, ROUNDS = 200 };

static pyb_object add_function;

static void initialize(const char *mode, const char *python) {
    pyb_config config;
    check("pyb_config_default", pyb_config_default(&config));
    if (strcmp(mode, "config") == 0) {
        config.python = python;
    } else if (strcmp(mode, "env") != 0) {
        fail("mode must be config or env, not %s", mode);
    }
    check("pyb_engine_initialize", pyb_engine_initialize(&config));
}

static int64_t eval_int(const char *expr) {
    pyb_value value;
    check(expr, pyb_eval(expr, NULL, 0, &value));
    if (value.tag != PYB_VALUE_INT) {
        fail("%s: not an int (tag %u)", expr, value.tag);
    }
    return value.data.int64;
}

static void expect_text(const char *expr, const char *want) {
    pyb_value value;
    check(expr, pyb_eval(expr, NULL, 0, &value));
    if (value.tag != PYB_VALUE_STR || value.data.str.len != strlen(want) ||
        memcmp(value.data.str.ptr, want, value.data.str.len) != 0) {
        fail("%s: expected '%s', got tag %u '%.*s'", expr, want, value.tag,
             value.tag == PYB_VALUE_STR ? (int)value.data.str.len : 0,
             value.tag == PYB_VALUE_STR ? value.data.str.ptr : "");
    }
}

/* Nested scopes and calls from one host thread; returns the sum it computed. */
static void *host_thread(void *arg) {
    int64_t base = (int64_t)(intptr_t)arg;
    int64_t sum = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pyb_gil outer, inner;
        check("outer acquire", pyb_gil_acquire(&outer));
        check("inner acquire", pyb_gil_acquire(&inner));
        pyb_value args[2], out;
        args[0].tag = PYB_VALUE_INT;
        args[0].data.int64 = base;
        args[1].tag = PYB_VALUE_INT;
        args[1].data.int64 = round;
        check("pyb_call", pyb_call(add_function, args, 2, NULL, 0, &out));
        sum += out.data.int64;
        check("inner release", pyb_gil_release(inner));
        check("outer release", pyb_gil_release(outer));
        /* And a call that takes the GIL itself. */
        check("pyb_call without a scope", pyb_call(add_function, args, 2, NULL, 0, &out));
        sum += out.data.int64;
    }
    return (void *)(intptr_t)sum;
}

static void *shutdown_thread(void *arg) {
    (void)arg;
    pyb_status status = pyb_engine_shutdown(20000, PYB_SHUTDOWN_INTERRUPT);
    return (void *)(intptr_t)status;
}

static void run(const char *mode, const char *python, const char *version, const char *venv,
                const char *module) {
    initialize(mode, python);
    char expr[512];
    snprintf(expr, sizeof expr, "'%%d.%%d.%%d' %% __import__('sys').version_info[:3]");
    expect_text(expr, version);
    if (venv != NULL) {
        snprintf(expr, sizeof expr, "__import__('os').path.realpath(__import__('sys').prefix)");
        char want[4096];
        if (absolute_path(venv, want, sizeof want) == NULL) {
            fail("realpath(%s)", venv);
        }
        expect_text(expr, want);
        snprintf(expr, sizeof expr, "__import__('%s').MARKER", module);
        expect_text(expr, "installed into the venv");
    }
    check("define add and the ticker",
          pyb_run("import threading, time\n"
                  "def add(a, b):\n"
                  "    return a + b\n"
                  "ticks = 0\n"
                  "def tick():\n"
                  "    global ticks\n"
                  "    while True:\n"
                  "        ticks += 1\n"
                  "        time.sleep(0.001)\n"
                  "ticker = threading.Thread(target=tick, name='ticker')\n"
                  "ticker.start()\n",
                  NULL, 0));
    pyb_value add;
    check("eval add", pyb_eval("add", NULL, 0, &add));
    add_function = add.data.object;
    int64_t ticks_before = eval_int("ticks");

    pthread_t threads[HOST_THREADS];
    for (intptr_t i = 0; i < HOST_THREADS; i++) {
        if (pthread_create(&threads[i], NULL, host_thread, (void *)(i * 1000)) != 0) {
            fail("pthread_create");
        }
    }
    for (int i = 0; i < HOST_THREADS; i++) {
        void *sum;
        pthread_join(threads[i], &sum);
        int64_t base = (int64_t)i * 1000;
        int64_t want = 2 * (ROUNDS * base + (int64_t)ROUNDS * (ROUNDS - 1) / 2);
        if ((int64_t)(intptr_t)sum != want) {
            fail("host thread %d computed %lld, expected %lld", i, (long long)(intptr_t)sum,
                 (long long)want);
        }
    }
    /* The Python thread keeps running beside the host threads: its count
       moves on (within 10 s; it ticks every millisecond). */
    int64_t ticks_after = eval_int("ticks");
    for (int wait = 0; wait < 1000 && ticks_after <= ticks_before; wait++) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        ticks_after = eval_int("ticks");
    }
    if (ticks_after <= ticks_before) {
        fail("the Python thread stopped running (%lld -> %lld ticks in 10 s)",
             (long long)ticks_before, (long long)ticks_after);
    }
    check("release add", pyb_object_release(add_function));

    pthread_t stopper;
    pthread_create(&stopper, NULL, shutdown_thread, NULL);
    void *status;
    pthread_join(stopper, &status);
    expect("shutdown from another thread", (pyb_status)(intptr_t)status, "PYB_OK");
    if (pyb_engine_state() != PYB_STATE_UNINITIALIZED) {
        fail("state after shutdown is %d", pyb_engine_state());
    }

    /* A second engine on the same Python. */
    initialize(mode, python);
    expect_text("'%d.%d.%d' % __import__('sys').version_info[:3]", version);
    if (eval_int("6 * 7") != 42) {
        fail("6 * 7 in the second engine");
    }
    char info[4096];
    pyb_python_info(info, sizeof info);
    if (strstr(info, python) == NULL) {
        fail("pyb_python_info does not name %s:\n%s", python, info);
    }
    check("final shutdown", pyb_engine_shutdown(20000, 0));
    printf("package_host: %lu checks\n", (unsigned long)atomic_load(&host_checks_passed));
    printf("package_host: CPython %s via %s: %d host threads x %d rounds, %lld ticks, two engines\n",
           version, mode, HOST_THREADS, ROUNDS, (long long)ticks_after);
}

static void expect_error(const char *mode, const char *python, const char *status_name,
                         char **texts, int text_count) {
    pyb_config config;
    check("pyb_config_default", pyb_config_default(&config));
    if (strcmp(mode, "config") == 0) {
        config.python = python;
    }
    pyb_status status = pyb_engine_initialize(&config);
    char message[4096];
    pyb_last_error_message(message, sizeof message);
    if (strcmp(pyb_status_name(status), status_name) != 0) {
        fail("initialize with %s: got %s, expected %s; message: %s", python,
             pyb_status_name(status), status_name, message);
    }
    for (int i = 0; i < text_count; i++) {
        if (strstr(message, texts[i]) == NULL) {
            fail("the message does not contain '%s':\n%s", texts[i], message);
        }
    }
    if (pyb_engine_state() != PYB_STATE_UNINITIALIZED) {
        fail("an engine started anyway (state %d)", pyb_engine_state());
    }
    pyb_value value;
    expect("eval after the failed start", pyb_eval("1", NULL, 0, &value), "PYB_E_NOT_INITIALIZED");
    printf("package_host: %s: %s: %s\n", python, status_name, message);
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "run") == 0) {
        run(argv[2], argv[3], argv[4], argc >= 7 ? argv[5] : NULL, argc >= 7 ? argv[6] : NULL);
    } else if (argc >= 5 && strcmp(argv[1], "error") == 0) {
        expect_error(argv[2], argv[3], argv[4], argv + 5, argc - 5);
    } else {
        fprintf(stderr, "usage: package_host run|error <config|env> <python> ...\n");
        return 2;
    }
    return 0;
}
