/*
 * pep788_host: native code inside a pybridge host that enters Python with
 * PEP 788's PyThreadState_Ensure (interpreter guards and views) and with
 * PyGILState_Ensure (CPython 3.15+), from threads that use pybridge's GIL
 * scopes and from threads that never call pybridge, inside and outside those
 * scopes; during an engine shutdown (Ensure fails cleanly once finalization
 * began, never hangs; a guard left open keeps a bounded shutdown from
 * finishing); and a benchmark of the three ways in, measured in the same run.
 * Built only against 3.15+: tests/c_programs.rs skips it on older Pythons.
 */
#include <Python.h> /* first: it sets the feature macros (CPython docs) */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pybridge.h"
#define HOST_CHECK_PROGRAM "pep788_host"
#include "host_check.h"

#define CHECK(condition, ...)                                                 \
    do {                                                                      \
        if (!(condition)) {                                                   \
            fail(__VA_ARGS__);                                                \
        }                                                                     \
    } while (0)
#define CHECK_OK(call) check(#call, (call))

#if PY_VERSION_HEX < 0x030F0000
#error "pep788_host needs CPython 3.15+ (PEP 788)"
#endif

static const char *const PROGRAM = HOST_CHECK_PROGRAM;

#define THREADS 4
#define ROUNDS 500

static PyInterpreterView *main_view;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Adds one to __main__.counter; the calling thread holds the GIL. */
static void bump(void) {
    CHECK(PyRun_SimpleString("counter += 1") == 0, "counter += 1 failed");
}

static long long counter(void) {
    pyb_gil token;
    CHECK_OK(pyb_gil_acquire(&token));
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *value = PyObject_GetAttrString(main, "counter");
    CHECK(value != NULL, "no counter");
    long long result = PyLong_AsLongLong(value);
    Py_DECREF(value);
    CHECK_OK(pyb_gil_release(token));
    return result;
}

/* A thread that never calls pybridge: Ensure from the main view, from a guard,
 * and PyGILState_Ensure, ROUNDS times each. */
static void *own_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; ++i) {
        PyThreadStateToken *token = PyThreadState_EnsureFromView(main_view);
        CHECK(token != NULL, "EnsureFromView failed on a running engine");
        bump();
        PyThreadState_Release(token);

        PyInterpreterGuard *guard = PyInterpreterGuard_FromView(main_view);
        CHECK(guard != NULL, "PyInterpreterGuard_FromView failed on a running engine");
        token = PyThreadState_Ensure(guard);
        CHECK(token != NULL, "Ensure(guard) failed on a running engine");
        bump();
        PyThreadState_Release(token);
        PyInterpreterGuard_Close(guard);

        PyGILState_STATE state = PyGILState_Ensure();
        bump();
        PyGILState_Release(state);
    }
    return NULL;
}

/* A thread that opens pybridge GIL scopes: Ensure and PyGILState_Ensure nest
 * inside them, and work outside them too, on the same thread. */
static void *pybridge_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; ++i) {
        pyb_gil scope;
        CHECK_OK(pyb_gil_acquire(&scope));
        PyInterpreterGuard *guard = PyInterpreterGuard_FromCurrent();
        CHECK(guard != NULL, "PyInterpreterGuard_FromCurrent failed inside a scope");
        PyThreadStateToken *token = PyThreadState_Ensure(guard);
        CHECK(token != NULL, "Ensure(guard) failed inside a scope");
        bump();
        PyGILState_STATE state = PyGILState_Ensure();
        CHECK(state == PyGILState_LOCKED, "PyGILState_Ensure inside a scope did not nest");
        bump();
        PyGILState_Release(state);
        PyThreadState_Release(token);
        CHECK(PyGILState_Check(), "the scope lost the GIL to a nested Release");
        CHECK_OK(pyb_gil_release(scope));

        token = PyThreadState_Ensure(guard);
        CHECK(token != NULL, "Ensure(guard) failed outside a scope");
        bump();
        /* pybridge nests inside a PEP 788 thread state too. */
        CHECK_OK(pyb_gil_acquire(&scope));
        bump();
        CHECK_OK(pyb_gil_release(scope));
        PyThreadState_Release(token);
        PyInterpreterGuard_Close(guard);
    }
    return NULL;
}

/* --- during a shutdown --------------------------------------------------- */

static atomic_int stop_ensuring;
static atomic_long ensured;
static atomic_long refused;

/* Ensures from the main view, with a millisecond of native work between
 * calls, until told to stop; counts both outcomes. Every call returns: none
 * may hang once finalization has begun. (Without the pause, four threads
 * keep a guard open at every moment, and the shutdown, which waits for a
 * moment without one, returns PYB_E_TIMEOUT at its deadline.) */
static void *ensure_until_stopped(void *arg) {
    (void)arg;
    const struct timespec native_work = {0, 1000000};
    while (!atomic_load(&stop_ensuring)) {
        PyThreadStateToken *token = PyThreadState_EnsureFromView(main_view);
        if (token == NULL) {
            atomic_fetch_add(&refused, 1);
        } else {
            atomic_fetch_add(&ensured, 1);
            bump();
            PyThreadState_Release(token);
        }
        nanosleep(&native_work, NULL);
    }
    return NULL;
}

struct guard_holder {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    int opened;
    int close_now;
};

/* Opens a guard on the main interpreter (no thread state), signals, and
 * keeps it open until told to close it. */
static void *hold_guard(void *arg) {
    struct guard_holder *holder = arg;
    PyInterpreterGuard *guard = PyInterpreterGuard_FromView(main_view);
    CHECK(guard != NULL, "PyInterpreterGuard_FromView failed on a running engine");
    pthread_mutex_lock(&holder->mutex);
    holder->opened = 1;
    pthread_cond_broadcast(&holder->changed);
    while (!holder->close_now) {
        pthread_cond_wait(&holder->changed, &holder->mutex);
    }
    pthread_mutex_unlock(&holder->mutex);
    PyInterpreterGuard_Close(guard);
    return NULL;
}

static void *restart_and_enter(void *arg) {
    (void)arg;
    CHECK_OK(pyb_engine_initialize(NULL));
    main_view = PyInterpreterView_FromMain();
    CHECK(main_view != NULL, "PyInterpreterView_FromMain after the restart");
    PyThreadStateToken *token = PyThreadState_EnsureFromView(main_view);
    CHECK(token != NULL, "EnsureFromView after the restart");
    CHECK(PyRun_SimpleString("counter = 41\ncounter += 1") == 0, "after restart");
    PyThreadState_Release(token);
    CHECK(counter() == 42, "counter after restart");
    PyInterpreterView_Close(main_view);
    CHECK_OK(pyb_engine_shutdown(30000, 0));
    printf("%s: restart, then Ensure from a fresh thread -> counter = 42\n", PROGRAM);
    return NULL;
}

/* --- benchmark ----------------------------------------------------------- */

/* Round trips per batch: a short run under the test, a long one with --bench. */
static int bench_rounds = 20000;
#define BENCH_BATCHES 7

enum way { PYBRIDGE, GILSTATE_WARM, ENSURE_GUARD_WARM, GILSTATE_COLD, ENSURE_GUARD_COLD, ENSURE_VIEW_COLD, WAYS };
static const char *const WAY_NAMES[WAYS] = {
    "pyb_gil_acquire/release",
    "PyGILState_Ensure/Release (thread state kept)",
    "PyThreadState_Ensure(guard)/Release (thread state kept)",
    "PyGILState_Ensure/Release (new thread state each time)",
    "PyThreadState_Ensure(guard)/Release (new thread state each time)",
    "PyThreadState_EnsureFromView/Release (new thread state each time)",
};

struct bench {
    enum way way;
    double ns_per_round;
};

/* One batch of round trips on a fresh thread; "kept" ways hold an outer state
 * with the GIL given away (as a host thread between calls does). */
static void *bench_batch(void *arg) {
    struct bench *bench = arg;
    PyInterpreterGuard *guard = PyInterpreterGuard_FromView(main_view);
    CHECK(guard != NULL, "no guard for the benchmark");
    PyThreadStateToken *outer = NULL;
    PyGILState_STATE outer_state = PyGILState_UNLOCKED;
    PyThreadState *saved = NULL;
    if (bench->way == GILSTATE_WARM) {
        outer_state = PyGILState_Ensure();
        saved = PyEval_SaveThread();
    } else if (bench->way == ENSURE_GUARD_WARM) {
        outer = PyThreadState_Ensure(guard);
        CHECK(outer != NULL, "outer Ensure failed");
        saved = PyEval_SaveThread();
    } else if (bench->way == PYBRIDGE) {
        pyb_gil first; /* makes the thread's state, kept by pybridge */
        CHECK_OK(pyb_gil_acquire(&first));
        CHECK_OK(pyb_gil_release(first));
    }
    double start = now_ns();
    for (int i = 0; i < bench_rounds; ++i) {
        switch (bench->way) {
        case PYBRIDGE: {
            pyb_gil token;
            CHECK_OK(pyb_gil_acquire(&token));
            CHECK_OK(pyb_gil_release(token));
            break;
        }
        case GILSTATE_WARM:
        case GILSTATE_COLD: {
            PyGILState_STATE state = PyGILState_Ensure();
            PyGILState_Release(state);
            break;
        }
        case ENSURE_GUARD_WARM:
        case ENSURE_GUARD_COLD: {
            PyThreadStateToken *token = PyThreadState_Ensure(guard);
            CHECK(token != NULL, "Ensure failed in the benchmark");
            PyThreadState_Release(token);
            break;
        }
        case ENSURE_VIEW_COLD: {
            PyThreadStateToken *token = PyThreadState_EnsureFromView(main_view);
            CHECK(token != NULL, "EnsureFromView failed in the benchmark");
            PyThreadState_Release(token);
            break;
        }
        case WAYS:
            break;
        }
    }
    bench->ns_per_round = (now_ns() - start) / bench_rounds;
    if (saved != NULL) {
        PyEval_RestoreThread(saved);
        if (bench->way == GILSTATE_WARM) {
            PyGILState_Release(outer_state);
        } else {
            PyThreadState_Release(outer);
        }
    }
    PyInterpreterGuard_Close(guard);
    return NULL;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void benchmark(void) {
    double samples[WAYS][BENCH_BATCHES];
    /* Interleaved batches, so a busy moment on the machine hits every way. */
    for (int batch = 0; batch < BENCH_BATCHES; ++batch) {
        for (int way = 0; way < WAYS; ++way) {
            struct bench bench = {.way = (enum way)way, .ns_per_round = 0};
            pthread_t thread;
            CHECK(pthread_create(&thread, NULL, bench_batch, &bench) == 0, "pthread_create");
            pthread_join(thread, NULL);
            samples[way][batch] = bench.ns_per_round;
        }
    }
    double median[WAYS];
    for (int way = 0; way < WAYS; ++way) {
        qsort(samples[way], BENCH_BATCHES, sizeof(double), compare_doubles);
        median[way] = samples[way][BENCH_BATCHES / 2];
    }
    for (int way = 0; way < WAYS; ++way) {
        printf("%s: bench: %s: %.0f ns (median of %d x %d; %.2fx pyb_gil; range %.0f-%.0f)\n",
               PROGRAM, WAY_NAMES[way], median[way], BENCH_BATCHES, bench_rounds,
               median[way] / median[PYBRIDGE], samples[way][0], samples[way][BENCH_BATCHES - 1]);
    }
}

int main(int argc, char **argv) {
    int bench_only = argc > 1 && strcmp(argv[1], "--bench") == 0;
    CHECK_OK(pyb_engine_initialize(NULL));
    /* A view needs a thread state to be made from current; FromMain needs none. */
    main_view = PyInterpreterView_FromMain();
    CHECK(main_view != NULL, "PyInterpreterView_FromMain failed");
    pyb_gil scope;
    CHECK_OK(pyb_gil_acquire(&scope));
    CHECK(PyRun_SimpleString("counter = 0") == 0, "counter = 0");
    CHECK_OK(pyb_gil_release(scope));

    pthread_t threads[2 * THREADS];
    for (int i = 0; i < THREADS; ++i) {
        CHECK(pthread_create(&threads[i], NULL, own_thread, NULL) == 0, "pthread_create");
        CHECK(pthread_create(&threads[THREADS + i], NULL, pybridge_thread, NULL) == 0,
              "pthread_create");
    }
    for (int i = 0; i < 2 * THREADS; ++i) {
        pthread_join(threads[i], NULL);
    }
    long long expected = (long long)THREADS * ROUNDS * 3 + (long long)THREADS * ROUNDS * 4;
    CHECK(counter() == expected, "counter = %lld, expected %lld", counter(), expected);
    printf("%s: %d own threads x %d x 3 ways in, %d pybridge threads x %d x 4 nested: counter = %lld\n",
           PROGRAM, THREADS, ROUNDS, THREADS, ROUNDS, expected);

    if (bench_only) {
        bench_rounds = 200000;
        benchmark();
        CHECK_OK(pyb_engine_shutdown(30000, 0));
        return 0;
    }
    benchmark();

    /* A guard left open: the bounded shutdown returns PYB_E_TIMEOUT at its
     * deadline with nothing changed (Py_FinalizeEx would wait for the guard),
     * and does not interrupt anything while it is open. */
    struct guard_holder holder = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t holder_thread;
    CHECK(pthread_create(&holder_thread, NULL, hold_guard, &holder) == 0, "pthread_create");
    pthread_mutex_lock(&holder.mutex);
    while (!holder.opened) {
        pthread_cond_wait(&holder.changed, &holder.mutex);
    }
    pthread_mutex_unlock(&holder.mutex);
    const uint32_t flags[2] = {0, PYB_SHUTDOWN_INTERRUPT};
    for (int i = 0; i < 2; ++i) {
        double started = now_ns();
        pyb_status status = pyb_engine_shutdown(300, flags[i]);
        double took_ms = (now_ns() - started) / 1e6;
        char message[1024];
        pyb_last_error_message(message, sizeof message);
        printf("%s: shutdown(300 ms, flags %u) with a guard open -> %s\n", PROGRAM, flags[i],
               pyb_status_name(status));
        printf("%s: (after %.0f ms: %s)\n", PROGRAM, took_ms, message);
        expect("shutdown with a guard open", status, "PYB_E_TIMEOUT");
        CHECK(took_ms < 300 + 250, "shutdown(300) took %.0f ms", took_ms);
        CHECK(strstr(message, "PEP 788 interpreter guard") != NULL, "message: %s", message);
        CHECK(pyb_engine_state() == PYB_STATE_RUNNING, "not running after PYB_E_TIMEOUT");
        CHECK(counter() == expected, "the engine changed");
    }
    pthread_mutex_lock(&holder.mutex);
    holder.close_now = 1;
    pthread_cond_broadcast(&holder.changed);
    pthread_mutex_unlock(&holder.mutex);
    pthread_join(holder_thread, NULL);

    /* Ensure from threads while the shutdown runs: calls get in until
     * finalization begins, are refused (NULL) from then on, none hangs. */
    pthread_t ensurers[THREADS];
    for (int i = 0; i < THREADS; ++i) {
        CHECK(pthread_create(&ensurers[i], NULL, ensure_until_stopped, NULL) == 0,
              "pthread_create");
    }
    while (atomic_load(&ensured) < 10 * THREADS) {
        sched_yield();
    }
    check("shutdown while 4 threads Ensure", pyb_engine_shutdown(30000, 0));
    printf("%s: shutdown while 4 threads Ensure -> PYB_OK\n", PROGRAM);
    long refused_at_end = atomic_load(&refused);
    while (atomic_load(&refused) < refused_at_end + THREADS) {
        sched_yield(); /* each thread is refused at least once more */
    }
    atomic_store(&stop_ensuring, 1);
    for (int i = 0; i < THREADS; ++i) {
        pthread_join(ensurers[i], NULL);
    }
    CHECK(atomic_load(&ensured) >= 10 * THREADS && atomic_load(&refused) >= THREADS,
          "ensured %ld, refused %ld", atomic_load(&ensured), atomic_load(&refused));
    printf("%s: Ensure during and after the shutdown: got in, then refused (NULL), none hung\n",
           PROGRAM);
    CHECK(PyThreadState_EnsureFromView(main_view) == NULL, "a view of the ended interpreter entered");
    PyInterpreterView_Close(main_view);

    /* A restart works, and a fresh thread enters the new interpreter. Not this
     * thread: on 3.15.2 a thread that had a state in the previous interpreter
     * parks for ever inside PyThreadState_EnsureFromView (CPython keeps its
     * GIL-state pointer across finalization; docs/CPYTHON-NOTES.md). */
    pthread_t restarter;
    CHECK(pthread_create(&restarter, NULL, restart_and_enter, NULL) == 0, "pthread_create");
    pthread_join(restarter, NULL);
    printf("%s: all checks passed\n", PROGRAM);
    return 0;
}
