/*
 * engine_host: a multi-threaded C host that checks pybridge's engine and GIL
 * contract through the public header only (plus the CPython C API inside GIL
 * scopes). Driven by tests/c_programs.rs; exits non-zero with a message naming
 * the failed check, and prints "engine_host: all checks passed" at the end.
 */
#ifdef HOST_NO_PYTHON_H
#include <stddef.h>
#include "python_declarations.h" /* Windows' embeddable CPython has no headers */
#else
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: it sets the feature macros (CPython docs) */
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pybridge.h"
#define HOST_CHECK_PROGRAM "engine_host"
#include "host_check.h"

#define WORKERS 4
#define INCREMENTS 2000

static pyb_gil acquire(const char *what) {
    pyb_gil token = 0;
    expect(what, pyb_gil_acquire(&token), "PYB_OK");
    return token;
}

static void release(const char *what, pyb_gil token) {
    expect(what, pyb_gil_release(token), "PYB_OK");
}

/* Runs statements in __main__; the GIL must be held. */
static void run_held(const char *code) {
    if (PyRun_SimpleString(code) != 0) {
        fail("Python code raised (traceback above):\n%s", code);
    }
}

/* Evaluates an integer expression in __main__; the GIL must be held. */
static long eval_long_held(const char *expression) {
    PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__"));
    PyObject *value = PyRun_String(expression, Py_eval_input, globals, globals);
    if (value == NULL) {
        PyErr_Print();
        fail("evaluating %s raised (traceback above)", expression);
    }
    long result = PyLong_AsLong(value);
    Py_DECREF(value);
    if (result == -1 && PyErr_Occurred()) {
        PyErr_Print();
        fail("%s is not an int", expression);
    }
    return result;
}

static long eval_long(const char *expression) {
    pyb_gil token = acquire("acquire to evaluate");
    long result = eval_long_held(expression);
    release("release after evaluating", token);
    return result;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static pthread_t start(void *(*body)(void *), void *arg) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, body, arg) != 0) {
        fail("pthread_create failed");
    }
    return thread;
}

static void join(pthread_t thread) {
    if (pthread_join(thread, NULL) != 0) {
        fail("pthread_join failed");
    }
}

/* --- 4 threads x 2,000 scopes, each incrementing a counter under a Lock --- */

static void *increment_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < INCREMENTS; i++) {
        pyb_gil token = acquire("worker acquire");
        run_held("with lock:\n    counter += 1\n");
        release("worker release", token);
    }
    return NULL;
}

static void check_contended_counter(void) {
    pyb_gil token = acquire("acquire for setup");
    run_held("import threading\ncounter = 0\nlock = threading.Lock()\n");
    release("release after setup", token);

    pthread_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        workers[i] = start(increment_worker, NULL);
    }
    for (int i = 0; i < WORKERS; i++) {
        join(workers[i]);
    }
    long counter = eval_long("counter");
    if (counter != WORKERS * INCREMENTS) {
        fail("counter is %ld after %d threads x %d increments, expected %d", counter, WORKERS,
             INCREMENTS, WORKERS * INCREMENTS);
    }
    printf("engine_host: %d threads x %d scopes: counter = %ld\n", WORKERS, INCREMENTS,
           counter);
}

/* --- tokens: LIFO order and owning thread --- */

static void check_nested_release_order(void) {
    pyb_gil outer = acquire("outer acquire");
    pyb_gil inner = acquire("nested acquire");
    expect("releasing the outer token while the nested one is open", pyb_gil_release(outer),
           "PYB_E_BAD_TOKEN");
    if (!pyb_gil_held()) {
        fail("the failed release gave the GIL away");
    }
    release("releasing the nested token", inner);
    release("releasing the outer token", outer);
    expect("releasing the outer token twice", pyb_gil_release(outer), "PYB_E_BAD_TOKEN");
    printf("engine_host: out-of-order release -> PYB_E_BAD_TOKEN\n");
}

static void *release_foreign_token(void *arg) {
    pyb_gil token = *(const pyb_gil *)arg;
    expect("releasing another thread's token on a thread new to pybridge",
           pyb_gil_release(token), "PYB_E_WRONG_THREAD");
    return NULL;
}

static void *release_foreign_token_known_thread(void *arg) {
    pyb_gil token = *(const pyb_gil *)arg;
    /* Any pybridge call makes this thread known to pybridge first. */
    if (pyb_gil_held()) {
        fail("a fresh thread reports that it holds the GIL");
    }
    expect("releasing another thread's token on a thread known to pybridge",
           pyb_gil_release(token), "PYB_E_WRONG_THREAD");
    return NULL;
}

static void check_release_on_wrong_thread(void) {
    pyb_gil token = acquire("acquire on the owning thread");
    join(start(release_foreign_token, &token));
    join(start(release_foreign_token_known_thread, &token));
    release("the owner releases its token after the foreign attempts", token);
    printf("engine_host: release on another thread -> PYB_E_WRONG_THREAD\n");
}

/* --- the thread state persists between scopes --- */

static void *thread_local_worker(void *arg) {
    (void)arg;
    pyb_gil token = acquire("first scope");
    run_held("import threading\nlocal_data = threading.local()\nlocal_data.value = 42\n");
    release("end of first scope", token);

    token = acquire("second scope");
    long value = eval_long_held("getattr(local_data, 'value', -1)");
    release("end of second scope", token);
    if (value != 42) {
        fail("threading.local value is %ld in the next scope on the same thread, expected 42",
             value);
    }
    return NULL;
}

static void check_threading_local(void) {
    join(start(thread_local_worker, NULL));
    /* Another thread must not see it: the value is per thread, not global. */
    long elsewhere = eval_long("getattr(local_data, 'value', -1)");
    if (elsewhere != -1) {
        fail("threading.local value leaked to another thread: %ld", elsewhere);
    }
    printf("engine_host: threading.local survives between scopes\n");
}

/* --- PyGILState inside a scope nests on the thread's own state --- */

static void *gilstate_worker(void *arg) {
    (void)arg;
    pyb_gil token = acquire("acquire before PyGILState_Ensure");
    PyThreadState *own = PyThreadState_Get();
    PyGILState_STATE state = PyGILState_Ensure();
    if (state != PyGILState_LOCKED) {
        fail("PyGILState_Ensure inside a scope returned UNLOCKED: it made a second thread "
             "state instead of nesting");
    }
    if (PyThreadState_Get() != own || !PyGILState_Check()) {
        fail("PyGILState_Ensure inside a scope switched thread states");
    }
    run_held("gilstate_ok = 1\n");
    PyGILState_Release(state);
    if (!pyb_gil_held() || PyThreadState_Get() != own) {
        fail("PyGILState_Release inside a scope dropped the scope's GIL");
    }
    run_held("gilstate_ok += 1\n");
    release("release after PyGILState_Release", token);
    if (pyb_gil_held()) {
        fail("the GIL is still held after the scope closed");
    }
    return NULL;
}

static void check_gilstate_in_scope(void) {
    join(start(gilstate_worker, NULL));
    if (eval_long("gilstate_ok") != 2) {
        fail("Python code around PyGILState_Ensure/Release did not run");
    }
    printf("engine_host: PyGILState_Ensure/Release inside a scope nests\n");
}

/* --- an allow-threads region lets another thread run Python --- */

static atomic_int region_open;
static atomic_int other_ran;

static void *python_while_region(void *arg) {
    (void)arg;
    while (!atomic_load(&region_open)) {
        sleep_ms(1);
    }
    pyb_gil token = acquire("acquire while another thread is in an allow-threads region");
    run_held("ran_during_region += 1\n");
    release("release while another thread is in an allow-threads region", token);
    atomic_store(&other_ran, 1);
    return NULL;
}

static void check_allow_threads(void) {
    pyb_gil token = acquire("acquire before the region");
    run_held("ran_during_region = 0\n");
    pthread_t other = start(python_while_region, NULL);

    pyb_thread_token region = 0;
    expect("pyb_begin_allow_threads", pyb_begin_allow_threads(&region), "PYB_OK");
    atomic_store(&region_open, 1);
    /* This thread still "holds" its scope, but not the GIL: the other thread
     * must be able to take it, run Python and give it back meanwhile. */
    double deadline = now_ms() + 10000.0;
    while (!atomic_load(&other_ran)) {
        if (now_ms() > deadline) {
            fail("another thread could not run Python within 10 s while this thread was "
                 "inside pyb_begin_allow_threads");
        }
        sleep_ms(1);
    }
    expect("pyb_end_allow_threads", pyb_end_allow_threads(region), "PYB_OK");
    if (!pyb_gil_held()) {
        fail("pyb_end_allow_threads did not take the GIL back");
    }
    long ran = eval_long_held("ran_during_region");
    release("release after the region", token);
    join(other);
    if (ran != 1) {
        fail("ran_during_region is %ld, expected 1", ran);
    }
    printf("engine_host: another thread ran Python inside an allow-threads region\n");
}

/* --- shutdown from a thread that did not initialize --- */

static void *shutdown_worker(void *arg) {
    (void)arg;
    expect("pyb_engine_shutdown from a thread that did not initialize",
           pyb_engine_shutdown(20000, 0), "PYB_OK");
    return NULL;
}

static void *acquire_after_shutdown(void *arg) {
    (void)arg;
    pyb_gil token = 0;
    expect("pyb_gil_acquire on a new thread after shutdown", pyb_gil_acquire(&token),
           "PYB_E_NOT_INITIALIZED");
    return NULL;
}

static void check_shutdown(void) {
    double started = now_ms();
    join(start(shutdown_worker, NULL));
    printf("engine_host: shutdown from another thread -> PYB_OK in %.1f ms\n",
           now_ms() - started);
    if (pyb_engine_state() != PYB_STATE_UNINITIALIZED) {
        fail("engine state is %d after shutdown, expected PYB_STATE_UNINITIALIZED",
             (int)pyb_engine_state());
    }
    pyb_gil token = 0;
    expect("pyb_gil_acquire on the initializing thread after shutdown",
           pyb_gil_acquire(&token), "PYB_E_NOT_INITIALIZED");
    join(start(acquire_after_shutdown, NULL));
    printf("engine_host: acquire after shutdown -> PYB_E_NOT_INITIALIZED\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);

    pyb_config config;
    expect("pyb_config_default", pyb_config_default(&config), "PYB_OK");
    if (config.struct_size != sizeof config) {
        fail("pyb_config_default wrote struct_size %zu, expected %zu", config.struct_size,
             sizeof config);
    }
    expect("pyb_engine_initialize", pyb_engine_initialize(&config), "PYB_OK");
    if (pyb_gil_held()) {
        fail("the initializing thread holds the GIL after pyb_engine_initialize");
    }
    printf("engine_host: initialized pybridge %s\n", pyb_version());

    check_contended_counter();
    check_nested_release_order();
    check_release_on_wrong_thread();
    check_threading_local();
    check_gilstate_in_scope();
    check_allow_threads();
    check_shutdown();

    host_checks_done();
    return 0;
}
