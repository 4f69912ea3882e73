/*
 * demo: a C host that embeds Python through pybridge.
 *
 *  1. start the engine (Python gets its own engine-owned main thread);
 *  2. three host threads each take the GIL, import a module and compute;
 *  3. a Python thread ticks while the host does C work without the GIL;
 *  4. a thread that did not start the engine shuts it down.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* include first: it sets feature macros */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pybridge.h"

/* Every pybridge call returns a status; on error, say which and why. */
#define CHECK(call)                                                               \
    do {                                                                          \
        pyb_status status_ = (call);                                              \
        if (status_ != PYB_OK) {                                                  \
            char why_[1024];                                                      \
            pyb_last_error_message(why_, sizeof why_);                            \
            fprintf(stderr, "%s failed: %s: %s\n", #call, pyb_status_name(status_), \
                    why_);                                                        \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Step 2: each host thread imports a module and evaluates an expression. */
struct job {
    int id;
    const char *module;
    const char *expression;
};

static void *compute(void *arg) {
    const struct job *job = arg;
    pyb_gil gil;
    CHECK(pyb_gil_acquire(&gil)); /* from here on the CPython API may be used */

    PyObject *module = PyImport_ImportModule(job->module);
    PyObject *globals = PyDict_New();
    PyObject *result = NULL;
    if (module != NULL && globals != NULL &&
        PyDict_SetItemString(globals, job->module, module) == 0) {
        result = PyRun_String(job->expression, Py_eval_input, globals, globals);
    }
    PyObject *text = result != NULL ? PyObject_Str(result) : NULL;
    if (text == NULL) {
        PyErr_Print();
        exit(1);
    }
    printf("host thread %d: %s = %s\n", job->id, job->expression, PyUnicode_AsUTF8(text));
    Py_DECREF(text);
    Py_DECREF(result);
    Py_DECREF(globals);
    Py_DECREF(module);

    CHECK(pyb_gil_release(gil)); /* the thread keeps its Python thread state */
    return NULL;
}

/* Step 4: shutdown works from any thread, not only the one that initialized. */
static void *shut_down(void *arg) {
    (void)arg;
    double started = now_ms();
    pyb_status status = pyb_engine_shutdown(10000, 0); /* wait at most 10 s */
    printf("shutdown from another thread: %s in %.1f ms\n", pyb_status_name(status),
           now_ms() - started);
    if (status != PYB_OK) {
        exit(1);
    }
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep C and Python output in order */

    /* Step 1: start Python. */
    pyb_config config;
    CHECK(pyb_config_default(&config));
    CHECK(pyb_engine_initialize(&config));

    /* Step 2: three host threads use Python at the same time. */
    struct job jobs[] = {
        {1, "math", "math.factorial(20)"},
        {2, "statistics", "statistics.median([3, 1, 4, 1, 5])"},
        {3, "hashlib", "hashlib.sha256(b'pybridge').hexdigest()[:16]"},
    };
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        pthread_create(&threads[i], NULL, compute, &jobs[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
    }

    /* Step 3: start a Python thread, then let go of the GIL for C work. */
    pyb_gil gil;
    CHECK(pyb_gil_acquire(&gil));
    PyRun_SimpleString("import threading, time\n"
                       "def tick():\n"
                       "    for i in range(1, 4):\n"
                       "        print(f'python thread: tick {i}', flush=True)\n"
                       "        time.sleep(0.02)\n"
                       "ticker = threading.Thread(target=tick)\n"
                       "ticker.start()\n");
    pyb_thread_token region;
    CHECK(pyb_begin_allow_threads(&region)); /* Python threads run meanwhile */
    double started = now_ms();
    unsigned long sum = 0; /* printed below, so the work cannot be optimized away */
    while (now_ms() - started < 100) { /* ~100 ms of pure C work, no GIL */
        for (unsigned long i = 0; i < 100000; i++) {
            sum += i;
        }
    }
    printf("host: C work done without the GIL (%.0f ms, sum %lu)\n", now_ms() - started, sum);
    CHECK(pyb_end_allow_threads(region)); /* takes the GIL back */
    PyRun_SimpleString("ticker.join()\n");
    CHECK(pyb_gil_release(gil));

    /* Step 4: shut down from a thread that did not initialize. */
    pthread_t stopper;
    pthread_create(&stopper, NULL, shut_down, NULL);
    pthread_join(stopper, NULL);
    printf("demo: done\n");
    return 0;
}
