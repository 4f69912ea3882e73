/*
 * A seeded fuzzer for pybridge's headline promise: many host threads doing
 * random things with Python while a controller shuts the engine down (with
 * random short deadlines, with or without PYB_SHUTDOWN_INTERRUPT) and starts
 * it again.
 *
 *   fuzz_host <seed> <interrupt 0|1> [threads (6)] [ops per thread (1000)]
 *
 * Workers: nested GIL scopes, allow-threads regions, runs, errors and their
 * formatting, imports, Python threads started and joined, objects handed to
 * another thread and released or used there, host functions that re-enter
 * pybridge, short-lived threads that exit with scopes open, and sub-interpreters
 * (own GIL where the Python has it) made, entered (also from inside another
 * scope, and one inside another) and destroyed under short deadlines.
 *
 * Checked: every status is one the header documents for that call; every
 * shutdown returns within its deadline + 1 s; after PYB_E_TIMEOUT the engine
 * runs; a handle never works in a later engine; no ShutdownInterrupt reaches
 * a thread unless its shutdown passed the point of no return; no call hangs
 * (a watchdog); the final shutdown succeeds and the process exits 0. Any
 * failure prints "FAIL seed=<n> interrupt=<0|1> ..." to replay it with the
 * same arguments (thread scheduling aside, a seed replays the same choices).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pybridge.h"

#define MAX_THREADS 16
#define HANDOFF_SLOTS 16
#define DEADLINE_SLACK_MS 1000
#define HANG_MS 20000

static unsigned long long seed;
static int thread_count = 6;
static int ops_per_thread = 1000;

static atomic_int workers_done;

/* Failures name what replays them, and what each thread was doing (for how
 * long): a stuck thread shows there (tests/c/host_check.h prints this). */
static void print_replay(FILE *out);
#define HOST_CHECK_PROGRAM "fuzz_host"
#define HOST_CHECK_CONTEXT print_replay
#include "host_check.h"
#include "fuzz_util.h"

static void print_replay(FILE *out) {
    fprintf(out, " [replay: fuzz_host %llu %d %d %d]", seed, interrupt, thread_count,
            ops_per_thread);
    print_threads(out, thread_count + 1);
}

/* Objects handed between threads: handle and the engine epoch that made it. */
struct handoff {
    pyb_object handle;
    int epoch;
};
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handoff handoff[HANDOFF_SLOTS];

static atomic_llong ops_done, thread_exits_open;

static void run_code(const char *what, const char *code) {
    pyb_status status = pyb_run(code, "<fuzz>", 0);
    allowed(what, status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error(what, status);
}

static void op_nested_scopes(uint64_t *rng) {
    pyb_gil tokens[4];
    int depth = 1 + below(rng, 3), opened = 0;
    for (; opened < depth; opened++) {
        pyb_status status = pyb_gil_acquire(&tokens[opened]);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
        if (status != PYB_OK) {
            if (opened > 0) {
                fail("a nested pyb_gil_acquire failed with %s", pyb_status_name(status));
            }
            return;
        }
        if (pyb_gil_held() != 1) {
            fail("pyb_gil_held is 0 inside a scope");
        }
    }
    run_code("pyb_run in a scope", "x = sum(range(50))");
    while (opened-- > 0) {
        allowed("pyb_gil_release", pyb_gil_release(tokens[opened]), 1, PYB_OK);
    }
}

static void op_allow_threads(uint64_t *rng) {
    pyb_gil scope = 0;
    int holding = below(rng, 2);
    if (holding) {
        pyb_status status = pyb_gil_acquire(&scope);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
        holding = status == PYB_OK;
    }
    pyb_thread_token region;
    allowed("pyb_begin_allow_threads", pyb_begin_allow_threads(&region), 1, PYB_OK);
    if (pyb_gil_held() != 0) {
        fail("pyb_gil_held is 1 inside an allow-threads region");
    }
    /* Now and then long enough native work to make a shutdown time out. */
    sleep_us(below(rng, 8) == 0 ? 20000 + below(rng, 40000) : below(rng, 2000));
    allowed("pyb_end_allow_threads", pyb_end_allow_threads(region), 1, PYB_OK);
    if (holding) {
        allowed("pyb_gil_release", pyb_gil_release(scope), 1, PYB_OK);
    }
}

static void op_error(void) {
    pyb_status status = pyb_run("def f():\n    raise KeyError('fuzz')\nf()\n", "<fuzz>", 0);
    allowed("pyb_run raising", status, 3, PYB_E_PYTHON, ENGINE_BUSY);
    if (status == PYB_E_PYTHON && !last_error_contains("KeyError")) {
        unexpected_python_error("pyb_run raising KeyError", status);
    }
}

static void op_handoff(uint64_t *rng) {
    int slot = below(rng, HANDOFF_SLOTS);
    pthread_mutex_lock(&handoff_lock);
    struct handoff taken = handoff[slot];
    handoff[slot].handle = 0;
    pthread_mutex_unlock(&handoff_lock);
    if (taken.handle != 0) {
        int epoch_before = atomic_load(&engine_epoch);
        if (below(rng, 2)) {
            size_t length = 0;
            pyb_status status = pyb_len(taken.handle, &length);
            allowed("pyb_len", status, 3, PYB_OK, PYB_E_BAD_HANDLE, PYB_E_SHUTTING_DOWN);
            if (status == PYB_OK && (epoch_before != taken.epoch || length != 3)) {
                fail("a handle from engine %d worked in engine %d (len %zu)", taken.epoch,
                     epoch_before, length);
            }
            /* RUNNING after the call means a later engine (its epoch was bumped
             * first) or this handle's own, which must have accepted it. */
            if (status == PYB_E_BAD_HANDLE && pyb_engine_state() == PYB_STATE_RUNNING &&
                atomic_load(&engine_epoch) == taken.epoch) {
                fail("a live handle of this engine was refused");
            }
        }
        release_handle_of(taken.handle, taken.epoch, epoch_before);
        return;
    }
    int epoch = atomic_load(&engine_epoch);
    pyb_object made = new_list_handle();
    if (made == 0) {
        return;
    }
    pthread_mutex_lock(&handoff_lock);
    struct handoff old = handoff[slot];
    handoff[slot] = (struct handoff){made, epoch};
    pthread_mutex_unlock(&handoff_lock);
    if (old.handle != 0) {
        allowed("pyb_object_release", pyb_object_release(old.handle), 2, PYB_OK,
                PYB_E_BAD_HANDLE);
    }
}

static void *exit_with_scopes_open(void *arg) {
    int with_region = *(int *)arg;
    pyb_gil scope;
    if (pyb_gil_acquire(&scope) == PYB_OK && with_region) {
        pyb_thread_token region;
        allowed("pyb_begin_allow_threads", pyb_begin_allow_threads(&region), 1, PYB_OK);
    }
    return NULL; /* exits with its scope (and region) open */
}

static void op_thread_exit_open(uint64_t *rng) {
    int with_region = below(rng, 2);
    pthread_t child;
    if (pthread_create(&child, NULL, exit_with_scopes_open, &with_region) != 0) {
        fail("pthread_create");
    }
    pthread_join(child, NULL);
    atomic_fetch_add(&thread_exits_open, 1);
}

static void op_host_function(void) {
    const char *what = "host function re-entering pybridge";
    pyb_status status = pyb_run("import fuzz_host\nassert fuzz_host.reenter() == 2\n", "<fuzz>", 0);
    allowed(what, status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    /* Between a restart and the controller's registration the module is missing. */
    if (status == PYB_E_PYTHON && last_error_contains("No module named 'fuzz_host'")) {
        return;
    }
    unexpected_python_error(what, status);
}

static pyb_status reenter(const pyb_value *args, size_t nargs, pyb_value *result, void *data) {
    (void)args, (void)nargs, (void)data;
    pyb_status status = pyb_eval("1 + 1", "<reenter>", 0, result);
    /* During finalization the gate refuses even nested entries. */
    allowed("pyb_eval inside a host function", status, 3, PYB_OK, PYB_E_PYTHON,
            PYB_E_SHUTTING_DOWN);
    if (status != PYB_OK) {
        /* Pass the reason (a ShutdownInterrupt, say) on to the Python caller. */
        char message[2048];
        pyb_last_error_message(message, sizeof message);
        pyb_set_error(message);
    }
    return status;
}

/* Each worker re-imports its own module: popping one that another thread is
 * importing is a race inside importlib itself (KeyError), not pybridge's. */
static void op_reimport(int index) {
    static const char *const modules[MAX_THREADS] = {
        "colorsys", "fnmatch", "shlex",    "sched",  "quopri",  "calendar", "glob",  "pprint",
        "cmd",      "graphlib", "keyword", "tabnanny", "zipapp", "filecmp", "netrc", "fractions"};
    char code[256];
    snprintf(code, sizeof code, "import sys\nsys.modules.pop('%s', None)\nimport %s\n",
             modules[index], modules[index]);
    run_code("re-import", code);
}

/* Sub-interpreters (the slots the workers share are in fuzz_util.h). */
static atomic_uint interp_flags = 2; /* 2: not known yet; else the config flags that work */
static atomic_llong interps_made, interps_destroyed;

/* pyb_interpreter_destroy under a short deadline: PYB_E_SHUTDOWN_COMMITTED when
 * the deadline passed after the interpreter began to end (it can no longer be
 * entered then, and ends in the background). */
static pyb_status destroy_interp(const char *what, pyb_interpreter interp, uint32_t timeout) {
    pyb_status status = pyb_interpreter_destroy(interp, timeout);
    allowed(what, status, 6, PYB_OK, PYB_E_TIMEOUT, PYB_E_SHUTDOWN_COMMITTED, PYB_E_BAD_HANDLE,
            ENGINE_BUSY);
    if (status == PYB_E_SHUTDOWN_COMMITTED) {
        pyb_gil scope = 0;
        allowed("pyb_interpreter_enter (an interpreter left ending)",
                pyb_interpreter_enter(interp, &scope), 2, PYB_E_SHUTTING_DOWN, PYB_E_BAD_HANDLE);
    }
    return status;
}

static void op_interpreter_new(int slot) {
    pyb_interpreter_config config;
    allowed("pyb_interpreter_config_default", pyb_interpreter_config_default(&config), 1, PYB_OK);
    unsigned flags = atomic_load(&interp_flags);
    config.flags = flags == 2 ? 0 : flags;
    pyb_interpreter interp = 0;
    pyb_status status = pyb_interpreter_new(&config, &interp);
    if (status == PYB_E_UNSUPPORTED && config.flags == 0) {
        atomic_store(&interp_flags, PYB_INTERPRETER_SHARED_GIL); /* 3.10 and 3.11 */
        return;
    }
    allowed("pyb_interpreter_new", status, 3, PYB_OK, ENGINE_BUSY);
    if (status != PYB_OK) {
        return;
    }
    if (flags == 2) {
        atomic_store(&interp_flags, 0);
    }
    atomic_fetch_add(&interps_made, 1);
    pthread_mutex_lock(&interp_lock);
    pyb_interpreter replaced = interp_slots[slot];
    interp_slots[slot] = interp;
    pthread_mutex_unlock(&interp_lock);
    if (replaced != 0) {
        destroy_interp("pyb_interpreter_destroy (replaced)", replaced, 20);
    }
}

/* Runs code in a sub-interpreter scope. */
static void run_in_interpreter(uint64_t *rng, pyb_interpreter interp) {
    (void)interp;
    run_code("pyb_run in a sub-interpreter",
             below(rng, 4) == 0 ? "import json\nx = json.dumps(list(range(100)))"
                                : "x = sum(i * i for i in range(2000))");
}

/* Set in main: no sub-interpreter operations. On CPython 3.10 and 3.11 an
 * interrupting shutdown can leave the process-wide import lock held by a Python
 * thread it ended (the exception fires inside importlib's weakref callback,
 * between its acquire and its try), and making a sub-interpreter then waits for
 * that lock for ever: CPython's limit, documented in README.md ("Known limits"). */
static int skip_interpreters;

static void op_interpreter(uint64_t *rng) {
    if (skip_interpreters) {
        return;
    }
    int slot = below(rng, INTERP_SLOTS);
    int what = below(rng, 10);
    if (what == 0 || interp_at(slot) == 0) {
        op_interpreter_new(slot);
    } else if (what == 1) {
        pyb_status status =
            destroy_interp("pyb_interpreter_destroy", interp_at(slot), (uint32_t)below(rng, 20));
        if (status == PYB_OK) {
            atomic_fetch_add(&interps_destroyed, 1);
        }
    } else {
        enter_interpreters(rng, slot, below(rng, 3) == 0 ? below(rng, INTERP_SLOTS) : -1,
                           run_in_interpreter);
    }
}

static void *worker(void *arg) {
    int index = (int)(intptr_t)arg;
    uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)index + 1;
    for (int op = 0; op < ops_per_thread; op++) {
        int choice = below(&rng, 12);
        static const char *const names[] = {
            "nested scopes", "allow-threads", "run", "error", "handoff",
            "import", "python thread", "host function", "thread exit", "handoff",
            "interpreter", "interpreter"};
        track(index, names[choice]);
        switch (choice) {
        case 0: op_nested_scopes(&rng); break;
        case 1: op_allow_threads(&rng); break;
        case 2:
            /* Busy in Python for a few ms: where an interrupt lands. */
            run_code("pyb_run", "import time\n"
                                "def spin():\n"
                                "    end = time.monotonic() + 0.004\n"
                                "    while time.monotonic() < end:\n"
                                "        pass\n"
                                "spin()\n");
            break;
        case 3: op_error(); break;
        case 4: case 9: op_handoff(&rng); break;
        case 5: op_reimport(index); break;
        case 6:
            /* Locals: __main__ is shared by every worker. */
            run_code("python thread", "import threading\n"
                                      "def start_and_join():\n"
                                      "    t = threading.Thread(target=lambda: sum(range(1000)))\n"
                                      "    t.start()\n"
                                      "    t.join()\n"
                                      "start_and_join()\n");
            break;
        case 7: op_host_function(); break;
        case 8: op_thread_exit_open(&rng); break;
        case 10: case 11: op_interpreter(&rng); break;
        }
        atomic_fetch_add(&ops_done, 1);
    }
    atomic_store(&progress_ms[index], 0);
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

static void start_engine(void) {
    allowed("pyb_engine_initialize", pyb_engine_initialize(NULL), 1, PYB_OK);
    allowed("pyb_register_function",
            pyb_register_function("fuzz_host", "reenter", reenter, NULL, NULL, 0), 1, PYB_OK);
}

static void *controller(void *arg) {
    uint64_t rng = seed ^ 0xc0ffee;
    int index = (int)(intptr_t)arg;
    while (atomic_load(&workers_done) < thread_count) {
        track(index, "controller sleep");
        sleep_us(1000 + below(&rng, 10000));
        if (!shutdown_cycle(&rng, index, 40, DEADLINE_SLACK_MS, start_engine)) {
            break;
        }
    }
    atomic_store(&progress_ms[index], 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (read_arguments(argc, argv,
                       "fuzz_host <seed> <interrupt 0|1> [threads] [ops per thread]",
                       &seed, &thread_count, &ops_per_thread, MAX_THREADS) != 0) {
        return 2;
    }
    start_engine();
    if (interrupt) {
        pyb_value minor;
        check("pyb_eval sys.version_info.minor",
              pyb_eval("__import__('sys').version_info.minor", "<fuzz>", 0, &minor));
        if (minor.tag != PYB_VALUE_INT) {
            fail("sys.version_info.minor gave tag %u", minor.tag);
        }
        skip_interpreters = minor.data.int64 < 12;
    }
    run_threads(thread_count, worker, controller, HANG_MS);
    int seen = atomic_load(&interrupts_seen);
    for (int slot = 0; slot < HANDOFF_SLOTS; slot++) {
        if (handoff[slot].handle != 0) {
            allowed("pyb_object_release", pyb_object_release(handoff[slot].handle), 2, PYB_OK,
                    PYB_E_BAD_HANDLE);
        }
    }
    long long start = now_ms();
    pyb_status status = pyb_engine_shutdown(10000, 0);
    if (status != PYB_OK) {
        fail("the final shutdown returned %s after %lld ms", pyb_status_name(status),
             now_ms() - start);
    }
    printf("fuzz_host: seed %llu interrupt %d: %lld ops, %lld restarts, %lld timeouts, %lld "
           "committed, %d interrupts seen, %lld thread exits with scopes open, %lld "
           "sub-interpreters made, %lld destroyed by workers, %lld entries\n",
           seed, interrupt, (long long)ops_done, (long long)cycles_done, (long long)timeouts,
           (long long)commits, seen, (long long)thread_exits_open, (long long)interps_made,
           (long long)interps_destroyed, (long long)interp_entries);
    printf("fuzz_host: ok\n");
    return 0;
}
