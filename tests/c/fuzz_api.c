/*
 * A seeded fuzzer for the rest of pybridge's API (fuzz_host.c covers the
 * engine core): many host threads use sub-interpreters, pools, handles across
 * interpreters, buffers, host memory, host objects, tasks and fork() while a
 * controller shuts the engine down (random short deadlines, with or without
 * PYB_SHUTDOWN_INTERRUPT) and starts it again.
 *
 *   fuzz_api <seed> <interrupt 0|1> [threads (6)] [ops per thread (100)]
 *
 * Workers do at least that many operations each, and go on until the
 * controller has made its CONTROLLER_ATTEMPTS shutdown attempts.
 *
 * PYB_FUZZ_SKIP=<family>,... switches families of operations off (to look at
 * the others while one is known broken): interpreters, exits, pools, handles,
 * buffers, host_memory, tasks, task_exits, fork, restarts, py_threads, stdlib,
 * keeper_raises, exit_after_sub, view_owner_release, member_destroy,
 * none_handles, concurrent_submits (see enum family).
 *
 * Checked: every status is one the header documents for that call (plus
 * PYB_E_NOT_INITIALIZED / PYB_E_SHUTTING_DOWN around restarts, and a
 * ShutdownInterrupt only in interrupting runs); every call with a timeout
 * returns within it + 1 s; a handle never works in another interpreter or a
 * later engine; a pool never hands out an interpreter that was destroyed; a
 * pool whose destroy timed out keeps its size; a view's memory is the object's
 * and the object cannot resize under it; every task's on_done runs exactly
 * once when pyb_task_submit returned PYB_OK and never when it failed, with a
 * status the coroutine allows, and a task that returns at once completes
 * within 3 s while the engine runs (the event loop survives sys.exit(),
 * KeyboardInterrupt and loop.stop() in tasks); every host memory, host object
 * and host function user_data is freed exactly once by the final shutdown; a
 * fork() child gets PYB_E_FORKED at once from every call that would enter or
 * stop the engine and exits promptly; no thread spends 10 s in one operation;
 * the final shutdown succeeds. A failure prints "FAILED: ..." with the command
 * that replays it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pybridge.h"

#define MAX_THREADS 16
#define DEADLINE_SLACK_MS 1000
#define HANG_MS 10000
/* Shutdown deadlines are below 100 ms, or in one of four below 500 ms: long
 * enough for sub-interpreter code and pool creation to end, so that restarts
 * happen. */
#define SHUTDOWN_SHORT_MS 100
#define SHUTDOWN_LONG_MS 500

static unsigned long long seed;
static int thread_count = 6;
static int ops_per_thread = 100;
static const char *skip_list = "";

static void print_replay(FILE *out);
#define HOST_CHECK_PROGRAM "fuzz_api"
#define HOST_CHECK_CONTEXT print_replay
#include "host_check.h"
#include "fuzz_util.h"

static void print_replay(FILE *out) {
    fprintf(out, " [replay: PYB_FUZZ_SKIP=%s fuzz_api %llu %d %d %d]", skip_list, seed, interrupt,
            thread_count, ops_per_thread);
    print_threads(out, thread_count + 1);
}

/* Families of operations PYB_FUZZ_SKIP can switch off. */
enum family {
    F_INTERPRETERS, /* sub-interpreters made, entered (nested, from main scopes), destroyed */
    F_EXITS,        /* threads exiting with main / sub-interpreter scopes open */
    F_POOLS,        /* pools made, borrowed, returned across threads, destroyed */
    F_HANDLES,      /* object handles used in other interpreters */
    F_BUFFERS,      /* pyb_buffer_get views held across shutdowns, released elsewhere */
    F_HOST_MEMORY,  /* pyb_buffer_from_host and host objects, frees counted */
    F_TASKS,        /* pyb_task_submit and pyb_task_cancel */
    F_TASK_EXITS,   /* coroutines calling sys.exit(), raising KeyboardInterrupt, loop.stop() */
    F_FORK,         /* fork() children */
    F_RESTARTS,     /* the controller's shutdowns and re-initializations */
    F_PY_THREADS,   /* Python threads left running in sub-interpreters */
    F_STDLIB,       /* datetime, decimal, asyncio imported in sub-interpreters */
    F_KEEPER_RAISES, /* atexit code that raises when a sub-interpreter ends */
    F_EXIT_AFTER_SUB, /* of exits: a main scope open, after a sub-interpreter was used */
    F_VIEW_OWNER_RELEASE, /* of buffers: memoryview.release() under a live view */
    F_MEMBER_DESTROY, /* of pools: a borrowed member destroyed directly (refused), then returned */
    F_NONE_HANDLES, /* interpreter, pool and task handle 0 ("none") passed in */
    F_CONCURRENT_SUBMITS, /* of tasks: submits from many threads at once (off: one at a time) */
    F_PROMISES,     /* async host functions: promises awaited by tasks, completed by any thread */
    F_COUNT
};
static const char *const family_names[F_COUNT] = {
    "interpreters", "exits", "pools",    "handles",  "buffers",    "host_memory",  "tasks",
    "task_exits",   "fork",  "restarts", "py_threads", "stdlib", "keeper_raises",
    "exit_after_sub", "view_owner_release", "member_destroy", "none_handles",
    "concurrent_submits", "promises"};
static int skipped[F_COUNT];

static int on(enum family family) { return !skipped[family]; }

static void parse_skip_list(const char *text) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", text);
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int family = 0; family < F_COUNT; family++) {
            if (strcmp(name, family_names[family]) == 0) {
                skipped[family] = found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "fuzz_api: unknown family '%s' in PYB_FUZZ_SKIP\n", name);
            exit(2);
        }
    }
}

/* The controller makes this many shutdown attempts; workers go on until it is
 * done (and they did their operations): with the engine down, operations fail
 * fast, and a fixed number of them would end before the next restart. */
#define CONTROLLER_ATTEMPTS 4
static atomic_int controller_done;

static int python_minor;    /* 3.<minor> */
static int own_gil;         /* sub-interpreters with their own GIL (3.12+) */
static atomic_llong ops_done, thread_exits_open, forks;

/* The calling worker's index, for describe_op. */
static _Thread_local int worker_index;

/* Names what the calling worker is doing in more detail (the watchdog shows it). */
static void describe_op(const char *what) { atomic_store(&current_op[worker_index], what); }

static int engine_running(void) { return pyb_engine_state() == PYB_STATE_RUNNING; }

/* ---- Sub-interpreters ---------------------------------------------------- */

static atomic_llong interps_made, interps_destroyed, interps_still_ending;

/* Interpreters destroyed with pyb_interpreter_destroy (pool members too), for
 * "a pool handed out a destroyed interpreter". Handles are never reused. */
#define DESTROYED_KEPT 4096
static struct {
    pyb_interpreter interp;
    long long at_ms; /* when its destroy returned */
} destroyed[DESTROYED_KEPT];
static int destroyed_count;
static atomic_llong concurrent_double_destroys;

static void note_destroyed(pyb_interpreter interp) {
    pthread_mutex_lock(&interp_lock);
    if (destroyed_count < DESTROYED_KEPT) {
        destroyed[destroyed_count].interp = interp;
        destroyed[destroyed_count++].at_ms = now_ms();
    }
    pthread_mutex_unlock(&interp_lock);
}

/* When `interp`'s destroy returned PYB_OK, or 0 if it has not. */
static long long destroyed_at(pyb_interpreter interp) {
    long long at = 0;
    pthread_mutex_lock(&interp_lock);
    for (int i = 0; i < destroyed_count && at == 0; i++) {
        at = destroyed[i].interp == interp ? destroyed[i].at_ms : 0;
    }
    pthread_mutex_unlock(&interp_lock);
    return at;
}

static int was_destroyed(pyb_interpreter interp) { return destroyed_at(interp) != 0; }

/* pyb_interpreter_destroy under its deadline; returns its status. */
static pyb_status destroy_interp(const char *what, pyb_interpreter interp, uint32_t timeout) {
    long long start = now_ms();
    pyb_status status = pyb_interpreter_destroy(interp, timeout);
    long long took = now_ms() - start;
    allowed(what, status, 6, PYB_OK, PYB_E_TIMEOUT, PYB_E_SHUTDOWN_COMMITTED, PYB_E_BAD_HANDLE,
            ENGINE_BUSY);
    if (took > (long long)timeout + DEADLINE_SLACK_MS) {
        fail("%s(%u ms) returned %s after %lld ms", what, timeout, pyb_status_name(status), took);
    }
    if (status == PYB_E_SHUTDOWN_COMMITTED) {
        /* Past its point of no return: still ending, or ended since. */
        atomic_fetch_add(&interps_still_ending, 1);
        pyb_gil scope = 0;
        allowed("pyb_interpreter_enter (an interpreter left ending)",
                pyb_interpreter_enter(interp, &scope), 2, PYB_E_SHUTTING_DOWN, PYB_E_BAD_HANDLE);
    }
    long long before = destroyed_at(interp);
    if (status == PYB_OK && before != 0) {
        /* Started after another destroy of it had returned PYB_OK: a bug. Two
         * destroys at once may both see it go. */
        if (before < start) {
            fail("%s: interpreter %llu was destroyed (PYB_OK) again, %lld ms after its "
                 "destroy had returned PYB_OK",
                 what, (unsigned long long)interp, start - before);
        }
        atomic_fetch_add(&concurrent_double_destroys, 1);
    } else if (status == PYB_OK) {
        note_destroyed(interp);
        atomic_fetch_add(&interps_destroyed, 1);
    }
    return status;
}

static void op_interpreter_new(uint64_t *rng, int slot) {
    pyb_interpreter_config config;
    allowed("pyb_interpreter_config_default", pyb_interpreter_config_default(&config), 1, PYB_OK);
    /* Own GIL where it exists, now and then asked for where it does not. */
    int want_own = own_gil ? below(rng, 2) : below(rng, 8) == 0;
    config.flags = want_own ? 0 : PYB_INTERPRETER_SHARED_GIL;
    pyb_interpreter interp = 0;
    pyb_status status = pyb_interpreter_new(&config, &interp);
    if (want_own && !own_gil) {
        allowed("pyb_interpreter_new (own GIL before 3.12)", status, 3, PYB_E_UNSUPPORTED,
                ENGINE_BUSY);
        return;
    }
    allowed("pyb_interpreter_new", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error("pyb_interpreter_new", status);
    if (status != PYB_OK) {
        return;
    }
    atomic_fetch_add(&interps_made, 1);
    pthread_mutex_lock(&interp_lock);
    pyb_interpreter replaced = interp_slots[slot];
    interp_slots[slot] = interp;
    pthread_mutex_unlock(&interp_lock);
    if (replaced != 0) {
        destroy_interp("pyb_interpreter_destroy (replaced)", replaced, (uint32_t)below(rng, 20));
    }
}

static void run_code(const char *what, const char *code) {
    pyb_status status = pyb_run(code, "<fuzz_api>", 0);
    allowed(what, status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error(what, status);
}

/* Python code for a sub-interpreter scope: busy work, imports, Python threads
 * left running, atexit code that raises when the interpreter ends. */
static void run_in_sub_interpreter(uint64_t *rng) {
    int what = below(rng, 8);
    if (what == 0 && on(F_STDLIB)) {
        static const char *const imports[] = {
            "import datetime\nx = datetime.date(2026, 12, 7).isoformat()",
            "import decimal\nx = str(decimal.Decimal('1.1') + decimal.Decimal('2.2'))",
            "import asyncio\nx = asyncio.run(asyncio.sleep(0, 'x'))",
            "import json\nx = json.dumps(list(range(100)))"};
        run_code("stdlib import in a sub-interpreter", imports[below(rng, 4)]);
    } else if (what == 1 && on(F_PY_THREADS)) {
        /* Non-daemon: a destroy or shutdown waits for it (own-GIL interpreters refuse daemons). */
        run_code("Python thread in a sub-interpreter",
                 "import random, threading, time\n"
                 "threading.Thread(target=time.sleep, args=(random.random() * 0.15,)).start()\n");
    } else if (what == 2 && on(F_KEEPER_RAISES)) {
        run_code("atexit code that raises",
                 "import atexit\n"
                 "def _fuzz_raise():\n"
                 "    raise RuntimeError('fuzz: atexit code raising at the end')\n"
                 "atexit.register(_fuzz_raise)\n");
    } else {
        run_code("pyb_run in a sub-interpreter", "x = sum(i * i for i in range(2000))");
    }
}

static void op_handles(uint64_t *rng);

/* In a sub-interpreter scope: runs code, tries to destroy the interpreter it
 * is in, uses handles of other interpreters. */
static void inside_interpreter(uint64_t *rng, pyb_interpreter interp) {
    run_in_sub_interpreter(rng);
    if (below(rng, 8) == 0) {
        pyb_status status = pyb_interpreter_destroy(interp, 0);
        allowed("pyb_interpreter_destroy from inside it", status, 2, PYB_E_WOULD_DEADLOCK,
                PYB_E_SHUTTING_DOWN);
    }
    if (on(F_HANDLES) && below(rng, 3) == 0) {
        op_handles(rng);
    }
}

/* Handle 0 is "none": never made, so PYB_E_BAD_HANDLE (or a refused argument). */
static void op_none_handles(void) {
    pyb_gil scope;
    pyb_interpreter borrowed;
    allowed("pyb_interpreter_destroy(0)", pyb_interpreter_destroy(0, 0), 2, PYB_E_BAD_HANDLE,
            PYB_E_INVALID_ARGUMENT);
    allowed("pyb_interpreter_enter(0)", pyb_interpreter_enter(0, &scope), 4, PYB_E_BAD_HANDLE,
            PYB_E_INVALID_ARGUMENT, ENGINE_BUSY);
    allowed("pyb_pool_borrow(0)", pyb_pool_borrow(0, 0, &borrowed), 2, PYB_E_BAD_HANDLE,
            PYB_E_INVALID_ARGUMENT);
    allowed("pyb_pool_destroy(0)", pyb_pool_destroy(0, 0), 2, PYB_E_BAD_HANDLE,
            PYB_E_INVALID_ARGUMENT);
    allowed("pyb_task_cancel(0)", pyb_task_cancel(0), 4, PYB_E_BAD_HANDLE,
            PYB_E_INVALID_ARGUMENT, ENGINE_BUSY);
}

static void op_interpreter(uint64_t *rng) {
    int slot = below(rng, INTERP_SLOTS);
    int what = below(rng, 10);
    if (on(F_NONE_HANDLES) && below(rng, 20) == 0) {
        describe_op("interpreter: handle 0");
        op_none_handles();
        return;
    }
    if (what == 0 || interp_at(slot) == 0) {
        op_interpreter_new(rng, slot);
    } else if (what == 1) {
        pyb_interpreter interp = interp_at(slot);
        if (interp == 0) {
            return; /* another thread emptied the slot meanwhile */
        }
        /* Sometimes from inside a main scope, which the wait gives away. */
        pyb_gil scope = 0;
        int holding = below(rng, 3) == 0 && pyb_gil_acquire(&scope) == PYB_OK;
        destroy_interp("pyb_interpreter_destroy", interp, (uint32_t)below(rng, 30));
        if (holding) {
            allowed("pyb_gil_release", pyb_gil_release(scope), 1, PYB_OK);
        }
    } else {
        enter_interpreters(rng, slot, below(rng, 3) == 0 ? below(rng, INTERP_SLOTS) : -1,
                           inside_interpreter);
    }
}

/* ---- Threads exiting with scopes open ------------------------------------ */

enum exit_kind {
    EXIT_MAIN,            /* a main scope open */
    EXIT_SUB,             /* a sub-interpreter scope open */
    EXIT_MAIN_AFTER_SUB,  /* a sub-interpreter entered and left, then a main scope open */
    EXIT_MAIN_THEN_SUB,   /* a main scope with a sub-interpreter scope inside */
    EXIT_SUB_THEN_MAIN,   /* a sub-interpreter scope with a main scope inside */
    EXIT_REGION,          /* a main scope with an allow-threads region inside */
    EXIT_KINDS
};

struct exit_plan {
    enum exit_kind kind;
    pyb_interpreter interp;
};

static void *exit_with_scopes_open(void *arg) {
    const struct exit_plan *plan = arg;
    pyb_gil main_scope, sub_scope;
    pyb_thread_token region;
    pyb_status status;
    switch (plan->kind) {
    case EXIT_MAIN:
        allowed("pyb_gil_acquire", pyb_gil_acquire(&main_scope), 3, PYB_OK, ENGINE_BUSY);
        break;
    case EXIT_SUB:
        if (enter_interp(plan->interp, &sub_scope) == PYB_OK) {
            run_code("pyb_run in a sub-interpreter", "x = 1");
        }
        break;
    case EXIT_MAIN_AFTER_SUB:
        if (enter_interp(plan->interp, &sub_scope) == PYB_OK) {
            run_code("pyb_run in a sub-interpreter", "x = 1");
            allowed("pyb_gil_release (sub-interpreter)", pyb_gil_release(sub_scope), 1, PYB_OK);
        }
        status = pyb_gil_acquire(&main_scope);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
        if (status == PYB_OK) {
            run_code("pyb_run in a main scope", "x = 1");
        }
        break;
    case EXIT_MAIN_THEN_SUB:
        status = pyb_gil_acquire(&main_scope);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
        if (status == PYB_OK) {
            enter_interp(plan->interp, &sub_scope);
        }
        break;
    case EXIT_SUB_THEN_MAIN:
        if (enter_interp(plan->interp, &sub_scope) == PYB_OK) {
            status = pyb_gil_acquire(&main_scope);
            allowed("pyb_gil_acquire inside a sub-interpreter scope", status, 3, PYB_OK,
                    ENGINE_BUSY);
        }
        break;
    case EXIT_REGION:
        if (pyb_gil_acquire(&main_scope) == PYB_OK) {
            allowed("pyb_begin_allow_threads", pyb_begin_allow_threads(&region), 1, PYB_OK);
        }
        break;
    case EXIT_KINDS:
        break;
    }
    return NULL; /* exits with whatever it opened still open */
}

static void op_thread_exit(uint64_t *rng) {
    static const char *const names[EXIT_KINDS] = {
        "thread exit: main scope open",
        "thread exit: sub-interpreter scope open",
        "thread exit: main scope open after a sub-interpreter",
        "thread exit: main then sub-interpreter scopes open",
        "thread exit: sub-interpreter then main scopes open",
        "thread exit: allow-threads region open"};
    struct exit_plan plan = {(enum exit_kind)below(rng, EXIT_KINDS),
                             interp_at(below(rng, INTERP_SLOTS))};
    if ((plan.kind != EXIT_MAIN && plan.kind != EXIT_REGION &&
         (!on(F_INTERPRETERS) || plan.interp == 0)) ||
        (plan.kind == EXIT_MAIN_AFTER_SUB && !on(F_EXIT_AFTER_SUB))) {
        plan.kind = EXIT_MAIN;
    }
    describe_op(names[plan.kind]);
    pthread_t child;
    if (pthread_create(&child, NULL, exit_with_scopes_open, &plan) != 0) {
        fail("pthread_create");
    }
    pthread_join(child, NULL);
    atomic_fetch_add(&thread_exits_open, 1);
}

/* ---- Handles across interpreters ------------------------------------------ */

/* Lists made in some interpreter, taken and used by any thread in any. */
#define HANDLE_SLOTS 16
struct held {
    pyb_object handle;
    pyb_interpreter interp; /* 0: main */
    int epoch;
    size_t length; /* its len(); 0 for a host object (which has none) */
};
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static struct held held_slots[HANDLE_SLOTS];
static atomic_llong cross_refusals;

/* Takes the handle in `slot` (0 when empty). */
static struct held take_held(int slot) {
    pthread_mutex_lock(&held_lock);
    struct held taken = held_slots[slot];
    held_slots[slot].handle = 0;
    pthread_mutex_unlock(&held_lock);
    return taken;
}

/* Uses (pyb_len) and releases a handle made in another interpreter or engine,
 * or makes one here (the thread's current interpreter). */
static void op_handles(uint64_t *rng) {
    int slot = below(rng, HANDLE_SLOTS);
    struct held taken = take_held(slot);
    if (taken.handle != 0) {
        int epoch_before = atomic_load(&engine_epoch);
        size_t length = 0;
        pyb_status status;
        if (taken.length == 0) {
            void *pointer = NULL;
            status = pyb_host_object_get(taken.handle, &pointer);
            allowed("pyb_host_object_get", status, 4, PYB_OK, PYB_E_BAD_HANDLE,
                    PYB_E_WRONG_INTERPRETER, PYB_E_SHUTTING_DOWN);
            length = pointer != NULL ? 0 : 1;
        } else {
            status = pyb_len(taken.handle, &length);
            allowed("pyb_len", status, 5, PYB_OK, PYB_E_BAD_HANDLE, PYB_E_WRONG_INTERPRETER,
                    PYB_E_PYTHON, PYB_E_SHUTTING_DOWN);
            unexpected_python_error("pyb_len", status);
        }
        if (status == PYB_OK && (taken.interp != current_interp || length != taken.length ||
                                 taken.epoch != epoch_before)) {
            fail("a handle of interpreter %llu (engine %d) worked in interpreter %llu (engine "
                 "%d), len %zu",
                 (unsigned long long)taken.interp, taken.epoch,
                 (unsigned long long)current_interp, epoch_before, length);
        }
        if (status == PYB_E_WRONG_INTERPRETER) {
            atomic_fetch_add(&cross_refusals, 1);
            if (taken.interp == current_interp) {
                fail("a handle was refused as another interpreter's in its own (%llu)",
                     (unsigned long long)current_interp);
            }
        }
        /* Releasing works from any thread and interpreter: queued if need be. */
        release_handle_of(taken.handle, taken.epoch, epoch_before);
        return;
    }
    int epoch = atomic_load(&engine_epoch);
    pyb_object made = new_list_handle();
    if (made == 0) {
        return;
    }
    pthread_mutex_lock(&held_lock);
    struct held old = held_slots[slot];
    held_slots[slot] = (struct held){made, current_interp, epoch, 3};
    pthread_mutex_unlock(&held_lock);
    if (old.handle != 0) {
        allowed("pyb_object_release", pyb_object_release(old.handle), 2, PYB_OK,
                PYB_E_BAD_HANDLE);
    }
}

/* ---- Pools ------------------------------------------------------------------ */

#define POOL_SLOTS 2
#define LOAN_SLOTS 8
struct pool_slot {
    pyb_pool pool;
    uint64_t size;
};
struct loan {
    pyb_pool pool;
    pyb_interpreter interp;
};
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_slot pool_slots[POOL_SLOTS];
static struct loan loans[LOAN_SLOTS];
static atomic_llong pools_made, borrows, returns_elsewhere, pool_timeouts, pool_destroy_timeouts,
    pools_still_ending;

static struct pool_slot pool_at(int slot) {
    pthread_mutex_lock(&pool_lock);
    struct pool_slot taken = pool_slots[slot];
    pthread_mutex_unlock(&pool_lock);
    return taken;
}

static struct pool_slot find_pool(pyb_pool pool) {
    struct pool_slot found = {0, 0};
    pthread_mutex_lock(&pool_lock);
    for (int slot = 0; slot < POOL_SLOTS; slot++) {
        if (pool_slots[slot].pool == pool) {
            found = pool_slots[slot];
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return found;
}

/* Forgets `pool`'s slot. */
static void forget_pool_slot(pyb_pool pool) {
    pthread_mutex_lock(&pool_lock);
    for (int slot = 0; slot < POOL_SLOTS; slot++) {
        if (pool_slots[slot].pool == pool) {
            pool_slots[slot].pool = 0;
        }
    }
    pthread_mutex_unlock(&pool_lock);
}

static void pool_destroy(uint64_t *rng, struct pool_slot taken) {
    uint32_t timeout = (uint32_t)below(rng, 30);
    long long start = now_ms();
    pyb_status status = pyb_pool_destroy(taken.pool, timeout);
    long long took = now_ms() - start;
    allowed("pyb_pool_destroy", status, 4, PYB_OK, PYB_E_TIMEOUT, PYB_E_SHUTDOWN_COMMITTED,
            PYB_E_BAD_HANDLE);
    if (took > (long long)timeout + DEADLINE_SLACK_MS) {
        fail("pyb_pool_destroy(%u ms) returned %s after %lld ms", timeout,
             pyb_status_name(status), took);
    }
    if (status == PYB_E_SHUTDOWN_COMMITTED) {
        /* Its interpreters are ending: it lends nothing, and the slot keeps it
         * for a later destroy to wait for the end. */
        atomic_fetch_add(&pools_still_ending, 1);
        pyb_interpreter lent = 0;
        allowed("pyb_pool_borrow (a pool left ending)", pyb_pool_borrow(taken.pool, 0, &lent), 2,
                PYB_E_SHUTTING_DOWN, PYB_E_BAD_HANDLE);
        return;
    }
    if (status == PYB_E_TIMEOUT) {
        atomic_fetch_add(&pool_destroy_timeouts, 1);
        pyb_pool_stats stats = {.struct_size = sizeof stats};
        status = pyb_pool_stats_get(taken.pool, &stats);
        allowed("pyb_pool_stats_get", status, 2, PYB_OK, PYB_E_BAD_HANDLE);
        /* Still ours: the same size (a failed destroy changes nothing). */
        struct pool_slot now = find_pool(taken.pool);
        if (status == PYB_OK && now.pool == taken.pool &&
            stats.size != taken.size) {
            fail("a pool of %llu has %llu interpreters after its destroy timed out",
                 (unsigned long long)taken.size, (unsigned long long)stats.size);
        }
    } else {
        forget_pool_slot(taken.pool);
    }
}

static void pool_new(uint64_t *rng, int slot) {
    size_t count = 1 + (size_t)below(rng, 2);
    int raising = below(rng, 10) == 0;
    pyb_pool pool = 0;
    pyb_status status =
        pyb_pool_new(count, raising ? "raise ValueError('fuzz setup')" : "x = 1", &pool);
    if (!own_gil) {
        allowed("pyb_pool_new before 3.12", status, 3, PYB_E_UNSUPPORTED, ENGINE_BUSY);
        return;
    }
    allowed("pyb_pool_new", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    if (raising && status == PYB_OK) {
        fail("pyb_pool_new succeeded although its setup code raised");
    }
    if (!raising) {
        unexpected_python_error("pyb_pool_new", status);
    }
    if (status != PYB_OK) {
        return;
    }
    atomic_fetch_add(&pools_made, 1);
    pthread_mutex_lock(&pool_lock);
    struct pool_slot old = pool_slots[slot];
    pool_slots[slot] = (struct pool_slot){pool, count};
    pthread_mutex_unlock(&pool_lock);
    if (old.pool != 0) {
        pool_destroy(rng, old);
    }
}

/* Returns a loan (any thread's) to its pool. */
static void pool_return(struct loan loan) {
    pyb_status status = pyb_pool_return(loan.pool, loan.interp);
    allowed("pyb_pool_return", status, 3, PYB_OK, PYB_E_INVALID_ARGUMENT, PYB_E_BAD_HANDLE);
}

static void op_pool(uint64_t *rng) {
    int slot = below(rng, POOL_SLOTS);
    struct pool_slot taken = pool_at(slot);
    int what = below(rng, 10);
    if (taken.pool == 0 || (what == 0 && below(rng, 2) == 0)) {
        describe_op("pool: new");
        pool_new(rng, slot);
        return;
    }
    if (what == 1) {
        describe_op("pool: destroy");
        pool_destroy(rng, taken);
        return;
    }
    int loan_slot = below(rng, LOAN_SLOTS);
    if (what <= 4) {
        /* Give back (or first destroy, then give back) what another thread borrowed. */
        pthread_mutex_lock(&pool_lock);
        struct loan loan = loans[loan_slot];
        loans[loan_slot].pool = 0;
        pthread_mutex_unlock(&pool_lock);
        if (loan.pool == 0) {
            return;
        }
        if (what == 2 && on(F_MEMBER_DESTROY)) {
            /* Refused: a pool's interpreters end only with their pool. */
            describe_op("pool: destroy a borrowed member, then return it");
            pyb_status status = pyb_interpreter_destroy(loan.interp, (uint32_t)below(rng, 20));
            allowed("pyb_interpreter_destroy (pool member)", status, 4, PYB_E_INVALID_ARGUMENT,
                    PYB_E_BAD_HANDLE, ENGINE_BUSY);
        } else {
            describe_op("pool: return another thread's loan");
        }
        pool_return(loan);
        atomic_fetch_add(&returns_elsewhere, 1);
        return;
    }
    describe_op("pool: borrow");
    uint32_t timeout = (uint32_t)below(rng, 30);
    pyb_interpreter interp = 0;
    long long start = now_ms();
    pyb_status status = pyb_pool_borrow(taken.pool, timeout, &interp);
    long long took = now_ms() - start;
    allowed("pyb_pool_borrow", status, 4, PYB_OK, PYB_E_TIMEOUT, PYB_E_SHUTTING_DOWN,
            PYB_E_BAD_HANDLE);
    if (took > (long long)timeout + DEADLINE_SLACK_MS) {
        fail("pyb_pool_borrow(%u ms) returned %s after %lld ms", timeout,
             pyb_status_name(status), took);
    }
    if (status == PYB_E_BAD_HANDLE) {
        forget_pool_slot(taken.pool);
    }
    if (status == PYB_E_TIMEOUT) {
        atomic_fetch_add(&pool_timeouts, 1);
    }
    if (status != PYB_OK) {
        return;
    }
    atomic_fetch_add(&borrows, 1);
    if (was_destroyed(interp)) {
        fail("pyb_pool_borrow handed out interpreter %llu, which pyb_interpreter_destroy "
             "had destroyed",
             (unsigned long long)interp);
    }
    pyb_gil scope;
    pyb_interpreter previous = current_interp;
    if (enter_interp(interp, &scope) == PYB_OK) {
        run_in_sub_interpreter(rng);
        allowed("pyb_gil_release (pool member)", pyb_gil_release(scope), 1, PYB_OK);
        current_interp = previous;
    }
    if (below(rng, 2)) {
        pool_return((struct loan){taken.pool, interp});
        return;
    }
    /* Leave it for another thread to give back. */
    pthread_mutex_lock(&pool_lock);
    struct loan old = loans[loan_slot];
    loans[loan_slot] = (struct loan){taken.pool, interp};
    pthread_mutex_unlock(&pool_lock);
    if (old.pool != 0) {
        pool_return(old);
    }
}

/* ---- Views of Python memory (pyb_buffer_get) ------------------------------- */

#define VIEW_SLOTS 8
#define VIEW_BYTES 64
struct view_slot {
    pyb_buffer view;
    pyb_object source; /* the bytearray, or the memoryview of one */
    int source_is_memoryview;
    int source_released; /* memoryview.release() on the source worked: no reading it */
    pyb_interpreter interp;
    int epoch;
};
static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;
static struct view_slot view_slots[VIEW_SLOTS];
static atomic_llong views_made, views_released, views_touched;

static struct view_slot take_view(int slot) {
    pthread_mutex_lock(&view_lock);
    struct view_slot taken = view_slots[slot];
    view_slots[slot].view.owner = 0;
    view_slots[slot].source = 0;
    pthread_mutex_unlock(&view_lock);
    return taken;
}

/* Ends a view and its source handle, on whatever thread, in whatever scope. */
static void release_view(struct view_slot *taken) {
    int epoch_before = atomic_load(&engine_epoch);
    pyb_status status = pyb_buffer_release(&taken->view);
    allowed("pyb_buffer_release", status, 2, PYB_OK, PYB_E_BAD_HANDLE);
    if (status == PYB_OK) {
        if (taken->view.owner != 0 || taken->view.data != NULL) {
            fail("pyb_buffer_release left owner %llu / data %p",
                 (unsigned long long)taken->view.owner, taken->view.data);
        }
        if (atomic_load(&engine_epoch) != taken->epoch && epoch_before != taken->epoch) {
            fail("a view from engine %d was released in engine %d", taken->epoch,
                 epoch_before);
        }
        atomic_fetch_add(&views_released, 1);
    }
    allowed("pyb_object_release (view source)", pyb_object_release(taken->source), 2, PYB_OK,
            PYB_E_BAD_HANDLE);
}

/* Inside a scope of the view's interpreter, in its engine: write the memory
 * and read it back through Python. */
static void touch_view(uint64_t *rng, struct view_slot *taken) {
    if (taken->interp == 0 && current_interp != 0) {
        return; /* a scope opened inside a sub-interpreter's is in that interpreter */
    }
    pyb_gil scope;
    pyb_interpreter previous = current_interp;
    pyb_status status = taken->interp == 0 ? pyb_gil_acquire(&scope)
                                           : enter_interp(taken->interp, &scope);
    allowed("scope for a view", status, 4, PYB_OK, PYB_E_BAD_HANDLE, ENGINE_BUSY);
    if (status != PYB_OK) {
        return;
    }
    current_interp = taken->interp;
    /* The scope holds the engine (and interpreter) up: the memory is live. */
    if (atomic_load(&engine_epoch) == taken->epoch && !taken->source_released) {
        int byte = 1 + below(rng, 250);
        memset(taken->view.data, byte, taken->view.len);
        pyb_value key = {.tag = PYB_VALUE_INT, .data.int64 = VIEW_BYTES - 1}, item;
        status = pyb_getitem(taken->source, &key, &item);
        allowed("pyb_getitem of a viewed object", status, 3, PYB_OK, PYB_E_PYTHON,
                PYB_E_SHUTTING_DOWN);
        unexpected_python_error("pyb_getitem of a viewed object", status);
        if (status == PYB_OK && (item.tag != PYB_VALUE_INT || item.data.int64 != byte)) {
            fail("wrote %d through a view, Python reads tag %u value %lld", byte, item.tag,
                 (long long)item.data.int64);
        }
        atomic_fetch_add(&views_touched, 1);
    }
    allowed("pyb_gil_release (view)", pyb_gil_release(scope), 1, PYB_OK);
    current_interp = previous;
}

/* Ends the memoryview behind the view (or the source memoryview) from Python:
 * the bytearray must still refuse to resize while the view lives. */
static void release_memoryview_under_view(struct view_slot *taken, int owner) {
    pyb_value none;
    pyb_object target = owner ? taken->view.owner : taken->source;
    pyb_status status = pyb_call_method(target, "release", NULL, 0, NULL, 0, &none);
    allowed("memoryview.release() under a view", status, 5, PYB_OK, PYB_E_PYTHON,
            PYB_E_BAD_HANDLE, PYB_E_WRONG_INTERPRETER, PYB_E_SHUTTING_DOWN);
    if (status != PYB_OK) {
        return;
    }
    taken->source_released = !owner;
    pyb_value bytearray_value = {.tag = PYB_VALUE_OBJECT, .data.object = taken->source};
    if (taken->source_is_memoryview) {
        status = pyb_getattr(taken->source, "obj", &bytearray_value);
        allowed("memoryview.obj", status, 5, PYB_OK, PYB_E_PYTHON, PYB_E_BAD_HANDLE,
                PYB_E_WRONG_INTERPRETER, PYB_E_SHUTTING_DOWN);
        if (status != PYB_OK) {
            return; /* a released source memoryview has no obj: ValueError */
        }
    }
    pyb_value more = {.tag = PYB_VALUE_BYTES, .data.str = {"0123456789abcdef", 16}}, result;
    status = pyb_call_method(bytearray_value.data.object, "extend", &more, 1, NULL, 0, &result);
    allowed("bytearray.extend under a view", status, 5, PYB_OK, PYB_E_PYTHON, PYB_E_BAD_HANDLE,
            PYB_E_WRONG_INTERPRETER, PYB_E_SHUTTING_DOWN);
    if (taken->source_is_memoryview) {
        allowed("pyb_object_release (memoryview.obj)",
                pyb_object_release(bytearray_value.data.object), 2, PYB_OK, PYB_E_BAD_HANDLE);
    }
    if (status == PYB_OK) {
        fail("a bytearray was resized while a pyb_buffer view of it was live, after "
             "%s.release(): the view's data dangles",
             owner ? "the view's owner memoryview" : "the viewed memoryview");
    }
}

/* Makes a view in the thread's current interpreter. */
static void new_view(uint64_t *rng, int slot) {
    int kind = below(rng, 3);
    static const char *const sources[] = {"bytearray(64)", "memoryview(bytearray(64))",
                                          "bytes(64)"};
    int epoch = atomic_load(&engine_epoch);
    pyb_value source;
    pyb_status status = pyb_eval(sources[kind], "<fuzz_api>", 0, &source);
    allowed("pyb_eval (buffer source)", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error("pyb_eval (buffer source)", status);
    if (status != PYB_OK) {
        return;
    }
    struct view_slot made = {.view.struct_size = sizeof(pyb_buffer),
                             .source = source.data.object,
                             .source_is_memoryview = kind == 1,
                             .interp = current_interp,
                             .epoch = epoch};
    status = pyb_buffer_get(made.source, PYB_BUFFER_WRITABLE, &made.view);
    if (kind == 2) {
        allowed("pyb_buffer_get (writable bytes)", status, 3, PYB_E_WRONG_TYPE,
                PYB_E_BAD_HANDLE, PYB_E_SHUTTING_DOWN);
        allowed("pyb_object_release", pyb_object_release(made.source), 2, PYB_OK,
                PYB_E_BAD_HANDLE);
        return;
    }
    allowed("pyb_buffer_get", status, 4, PYB_OK, PYB_E_PYTHON, PYB_E_BAD_HANDLE,
            PYB_E_SHUTTING_DOWN);
    unexpected_python_error("pyb_buffer_get", status);
    if (status != PYB_OK) {
        allowed("pyb_object_release", pyb_object_release(made.source), 2, PYB_OK,
                PYB_E_BAD_HANDLE);
        return;
    }
    if (made.view.len != VIEW_BYTES || made.view.itemsize != 1 || made.view.ndim != 1 ||
        made.view.readonly || made.view.owner == 0 || strcmp(made.view.format, "B") != 0) {
        fail("a view of %s: len %zu itemsize %zu ndim %d readonly %d format %s", sources[kind],
             made.view.len, made.view.itemsize, (int)made.view.ndim, (int)made.view.readonly,
             made.view.format);
    }
    atomic_fetch_add(&views_made, 1);
    if (below(rng, 4) == 0 && on(F_VIEW_OWNER_RELEASE)) {
        describe_op("buffers: memoryview.release() under a view");
        release_memoryview_under_view(&made, below(rng, 2));
    }
    pthread_mutex_lock(&view_lock);
    struct view_slot old = view_slots[slot];
    view_slots[slot] = made;
    pthread_mutex_unlock(&view_lock);
    if (old.view.owner != 0) {
        release_view(&old);
    }
}

static void op_buffers(uint64_t *rng) {
    int slot = below(rng, VIEW_SLOTS);
    int what = below(rng, 3);
    if (what == 0) {
        describe_op("buffers: new view");
        new_view(rng, slot);
        return;
    }
    struct view_slot taken = take_view(slot);
    if (taken.view.owner == 0) {
        return;
    }
    if (what == 1) {
        describe_op("buffers: touch a view");
        touch_view(rng, &taken);
        pthread_mutex_lock(&view_lock);
        struct view_slot old = view_slots[slot];
        view_slots[slot] = taken;
        pthread_mutex_unlock(&view_lock);
        if (old.view.owner != 0) {
            release_view(&old);
        }
        return;
    }
    describe_op("buffers: release another thread's view");
    release_view(&taken);
}

/* ---- Host memory and host objects: every free exactly once ----------------- */

#define HOST_RECORDS 8192
struct host_record {
    unsigned char memory[64];
    atomic_int frees;
    atomic_int made; /* the call that shared it returned PYB_OK */
    int host_object; /* pyb_host_object_new rather than pyb_buffer_from_host */
};
static struct host_record host_records[HOST_RECORDS];
static atomic_int host_records_used;

static void host_free(void *user_data) {
    struct host_record *record = user_data;
    if (atomic_fetch_add(&record->frees, 1) != 0) {
        fail("the free callback of %s %td ran twice",
             record->host_object ? "host object" : "host memory", record - host_records);
    }
}

/* Python keeps `handle` in a list in its interpreter's sys.modules: it lets go
 * of it when the interpreter ends. */
static void keep_in_python(pyb_object handle) {
    pyb_value list;
    pyb_status status =
        pyb_eval("__import__('sys').modules.setdefault('fuzz_api_keep', [])", "<fuzz_api>", 0,
                 &list);
    allowed("pyb_eval (keep list)", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error("pyb_eval (keep list)", status);
    if (status != PYB_OK) {
        return;
    }
    pyb_value item = {.tag = PYB_VALUE_OBJECT, .data.object = handle}, none;
    status = pyb_call_method(list.data.object, "append", &item, 1, NULL, 0, &none);
    allowed("list.append(host memory)", status, 5, PYB_OK, PYB_E_PYTHON, PYB_E_BAD_HANDLE,
            PYB_E_WRONG_INTERPRETER, PYB_E_SHUTTING_DOWN);
    unexpected_python_error("list.append(host memory)", status);
    allowed("pyb_object_release (keep list)", pyb_object_release(list.data.object), 2, PYB_OK,
            PYB_E_BAD_HANDLE);
}

/* Shares host memory (or a host pointer) in the thread's current interpreter;
 * keeps it in Python, hands it to another thread, or lets go of it. */
static void op_host_memory(uint64_t *rng) {
    int index = atomic_fetch_add(&host_records_used, 1);
    if (index >= HOST_RECORDS) {
        return;
    }
    struct host_record *record = &host_records[index];
    record->host_object = below(rng, 3) == 0;
    int epoch = atomic_load(&engine_epoch);
    pyb_object handle = 0;
    pyb_status status;
    int ints = 0;
    if (record->host_object) {
        describe_op("host memory: host object");
        status = pyb_host_object_new(record, host_free, &handle);
        allowed("pyb_host_object_new", status, 3, PYB_OK, ENGINE_BUSY);
    } else {
        describe_op("host memory: pyb_buffer_from_host");
        ints = below(rng, 2);
        status = pyb_buffer_from_host(record->memory, sizeof record->memory, ints ? "i" : NULL,
                                      ints ? sizeof(int) : 1,
                                      below(rng, 2) ? PYB_BUFFER_WRITABLE : 0, host_free,
                                      record, &handle);
        allowed("pyb_buffer_from_host", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
        unexpected_python_error("pyb_buffer_from_host", status);
    }
    if (status != PYB_OK) {
        return;
    }
    atomic_store(&record->made, 1);
    if (record->host_object) {
        void *pointer = NULL;
        status = pyb_host_object_get(handle, &pointer);
        allowed("pyb_host_object_get", status, 3, PYB_OK, PYB_E_BAD_HANDLE, PYB_E_SHUTTING_DOWN);
        if (status == PYB_OK && pointer != record) {
            fail("pyb_host_object_get gave %p, not %p", pointer, (void *)record);
        }
    }
    int what = below(rng, 3);
    if (what == 0) {
        keep_in_python(handle);
    }
    if (what == 1) {
        /* Another thread (in another interpreter, maybe) uses and releases it. */
        int slot = below(rng, HANDLE_SLOTS);
        pthread_mutex_lock(&held_lock);
        struct held old = held_slots[slot];
        size_t length = record->host_object ? 0 : ints ? sizeof record->memory / sizeof(int)
                                                       : sizeof record->memory;
        held_slots[slot] =
            (struct held){handle, current_interp, epoch, length};
        pthread_mutex_unlock(&held_lock);
        handle = old.handle;
    }
    if (handle != 0) {
        allowed("pyb_object_release", pyb_object_release(handle), 2, PYB_OK, PYB_E_BAD_HANDLE);
    }
}

/* ---- Tasks ------------------------------------------------------------------- */

enum coroutine_kind {
    CORO_RETURN,       /* returns 42 at once */
    CORO_SLEEP,        /* sleeps up to 20 ms, returns 42 */
    CORO_RAISE,        /* raises ValueError */
    CORO_LONG,         /* sleeps 10 s: cancelled or shut down */
    CORO_SWALLOW,      /* swallows its cancellation, returns 7 */
    CORO_SYS_EXIT,     /* calls sys.exit(3) */
    CORO_KEYBOARD,     /* raises KeyboardInterrupt */
    CORO_LOOP_STOP,    /* calls loop.stop(), then returns 42 */
    CORO_PROMISE,      /* awaits fuzz_api.later(), a promise: 42, HostError, or cancelled */
    CORO_KINDS
};
static const char *const coroutine_calls[CORO_KINDS] = {
    "c_return()", "c_sleep()", "c_raise()", "c_long()", "c_swallow()",
    "c_exit()",   "c_keyboard()", "c_stop()",  "c_promise()"};
static const char coroutine_defs[] =
    "import asyncio, random, sys\n"
    "async def c_return():\n"
    "    return 42\n"
    "async def c_sleep():\n"
    "    await asyncio.sleep(random.random() * 0.02)\n"
    "    return 42\n"
    "async def c_raise():\n"
    "    await asyncio.sleep(0)\n"
    "    raise ValueError('fuzz')\n"
    "async def c_long():\n"
    "    await asyncio.sleep(10)\n"
    "    return 42\n"
    "async def c_swallow():\n"
    "    try:\n"
    "        await asyncio.sleep(0.01)\n"
    "    except asyncio.CancelledError:\n"
    "        pass\n"
    "    return 7\n"
    "async def c_exit():\n"
    "    await asyncio.sleep(0)\n"
    "    sys.exit(3)\n"
    "async def c_keyboard():\n"
    "    await asyncio.sleep(0)\n"
    "    raise KeyboardInterrupt\n"
    "async def c_stop():\n"
    "    asyncio.get_running_loop().stop()\n"
    "    await asyncio.sleep(0.001)\n"
    "    return 42\n"
    "async def c_promise():\n"
    "    import fuzz_api\n"
    "    return await fuzz_api.later()\n";

#define TASK_RECORDS 8192
struct task_record {
    enum coroutine_kind kind;
    atomic_int calls;     /* on_done calls */
    atomic_int submitted; /* 1: pyb_task_submit returned PYB_OK; -1: an error */
    _Atomic pyb_status outcome;
};
static struct task_record task_records[TASK_RECORDS];
static atomic_int task_records_used;
static atomic_llong tasks_ok, tasks_refused, cancels, loop_checks;
static atomic_llong outcomes[4]; /* OK, PYTHON, CANCELLED, SHUTTING_DOWN */

#define TASK_SLOTS 16
static pthread_mutex_t task_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static pyb_task task_slots[TASK_SLOTS];

static void on_done(pyb_task task, pyb_status status, const pyb_value *result, void *user_data) {
    (void)task;
    struct task_record *record = user_data;
    if (atomic_fetch_add(&record->calls, 1) != 0) {
        fail("on_done of task record %td (%s) ran twice, now with %s", record - task_records,
             coroutine_calls[record->kind], pyb_status_name(status));
    }
    atomic_store(&record->outcome, status);
    char type[256] = "";
    pyb_last_error_python_type(type, sizeof type);
    int expected_value = record->kind == CORO_SWALLOW ? 7 : 42;
    switch (status) {
    case PYB_OK:
        atomic_fetch_add(&outcomes[0], 1);
        if (record->kind == CORO_RAISE || record->kind == CORO_SYS_EXIT ||
            record->kind == CORO_KEYBOARD) {
            fail("task %s succeeded", coroutine_calls[record->kind]);
        }
        if (result->tag != PYB_VALUE_INT || result->data.int64 != expected_value) {
            fail("task %s gave tag %u", coroutine_calls[record->kind], result->tag);
        }
        break;
    case PYB_E_PYTHON: {
        atomic_fetch_add(&outcomes[1], 1);
        const char *want = record->kind == CORO_RAISE      ? "ValueError"
                           : record->kind == CORO_SYS_EXIT ? "SystemExit"
                           : record->kind == CORO_KEYBOARD ? "KeyboardInterrupt"
                           : record->kind == CORO_PROMISE  ? "HostError"
                                                           : "(none)";
        if (strcmp(type, want) == 0 ||
            (record->kind == CORO_PROMISE && strcmp(type, "pybridge.HostError") == 0)) {
            break;
        }
        /* The event loop runs on a Python thread: an interrupting shutdown
         * raises SystemExit there, in whichever coroutine is running. */
        if (strcmp(type, "SystemExit") == 0) {
            note_interrupt_seen(coroutine_calls[record->kind]);
            break;
        }
        fail("task %s raised %s", coroutine_calls[record->kind], type);
        break;
    }
    case PYB_E_CANCELLED:
        atomic_fetch_add(&outcomes[2], 1);
        break;
    case PYB_E_SHUTTING_DOWN:
        atomic_fetch_add(&outcomes[3], 1);
        break;
    default:
        fail("on_done of %s got %s, which pyb_task_callback does not document",
             coroutine_calls[record->kind], pyb_status_name(status));
    }
}

/* Waits up to 3 s for `record`'s on_done; fails if none came while the same
 * engine ran all along (the event loop is gone). */
static void expect_completion(struct task_record *record, int epoch) {
    long long start = now_ms();
    while (atomic_load(&record->calls) == 0 && now_ms() - start < 3000) {
        sleep_us(1000);
    }
    atomic_fetch_add(&loop_checks, 1);
    if (atomic_load(&record->calls) == 0 && atomic_load(&engine_epoch) == epoch &&
        engine_running()) {
        fail("a task that returns at once had no on_done after 3 s while the engine ran: the "
             "event loop is not running");
    }
}

/* Submits a coroutine from the thread's current interpreter (only the main
 * one may); now and then waits for a quick one to finish. */
static void op_task_submit(uint64_t *rng) {
    enum coroutine_kind kind;
    do {
        kind = (enum coroutine_kind)below(rng, CORO_KINDS);
    } while ((!on(F_TASK_EXITS) && kind >= CORO_SYS_EXIT && kind <= CORO_LOOP_STOP) ||
             (!on(F_PROMISES) && kind == CORO_PROMISE));
    int index = atomic_fetch_add(&task_records_used, 1);
    if (index >= TASK_RECORDS) {
        return;
    }
    struct task_record *record = &task_records[index];
    record->kind = kind;
    int epoch = atomic_load(&engine_epoch);
    pyb_object scope;
    pyb_status status = pyb_scope_new(&scope);
    allowed("pyb_scope_new", status, 3, PYB_OK, ENGINE_BUSY);
    if (status != PYB_OK) {
        return;
    }
    status = pyb_run(coroutine_defs, "<fuzz_api coroutines>", scope);
    allowed("pyb_run (coroutines)", status, 5, PYB_OK, PYB_E_PYTHON, PYB_E_BAD_HANDLE,
            ENGINE_BUSY);
    unexpected_python_error("pyb_run (coroutines)", status);
    pyb_value coroutine = {.tag = PYB_VALUE_NONE};
    if (status == PYB_OK) {
        status = pyb_eval(coroutine_calls[kind], "<fuzz_api>", scope, &coroutine);
        allowed("pyb_eval (coroutine)", status, 5, PYB_OK, PYB_E_PYTHON, PYB_E_BAD_HANDLE,
                ENGINE_BUSY);
        unexpected_python_error("pyb_eval (coroutine)", status);
    }
    allowed("pyb_object_release (scope)", pyb_object_release(scope), 2, PYB_OK,
            PYB_E_BAD_HANDLE);
    if (coroutine.tag != PYB_VALUE_OBJECT) {
        return;
    }
    /* Submitted from here, or from inside a sub-interpreter (refused). */
    pyb_gil sub_scope;
    pyb_interpreter previous = current_interp;
    pyb_interpreter interp = on(F_INTERPRETERS) && below(rng, 6) == 0
                                 ? interp_at(below(rng, INTERP_SLOTS))
                                 : 0;
    /* Taken before any scope: a thread in a shared-GIL scope that waits for it
     * would hold up the one inside pyb_task_submit. */
    if (!on(F_CONCURRENT_SUBMITS)) {
        pthread_mutex_lock(&submit_lock);
    }
    int inside = interp != 0 && enter_interp(interp, &sub_scope) == PYB_OK;
    pyb_task task = 0;
    status = pyb_task_submit(coroutine.data.object, on_done, record, &task);
    if (inside || current_interp != 0) {
        allowed("pyb_task_submit in a sub-interpreter", status, 4, PYB_E_UNSUPPORTED,
                PYB_E_WRONG_INTERPRETER, PYB_E_BAD_HANDLE, PYB_E_SHUTTING_DOWN);
    } else {
        allowed("pyb_task_submit", status, 5, PYB_OK, PYB_E_BAD_HANDLE, PYB_E_PYTHON,
                ENGINE_BUSY);
        unexpected_python_error("pyb_task_submit", status);
    }
    atomic_store(&record->submitted, status == PYB_OK ? 1 : -1);
    if (inside) {
        allowed("pyb_gil_release (sub-interpreter)", pyb_gil_release(sub_scope), 1, PYB_OK);
        current_interp = previous;
    }
    if (!on(F_CONCURRENT_SUBMITS)) {
        pthread_mutex_unlock(&submit_lock);
    }
    allowed("pyb_object_release (coroutine)", pyb_object_release(coroutine.data.object), 2,
            PYB_OK, PYB_E_BAD_HANDLE);
    if (status != PYB_OK) {
        atomic_fetch_add(&tasks_refused, 1);
        return;
    }
    atomic_fetch_add(&tasks_ok, 1);
    if (kind == CORO_RETURN && current_interp == 0 && below(rng, 4) == 0) {
        describe_op("tasks: waiting for a quick task");
        expect_completion(record, epoch);
        return;
    }
    pthread_mutex_lock(&task_lock);
    task_slots[below(rng, TASK_SLOTS)] = task;
    pthread_mutex_unlock(&task_lock);
}

/* ---- Promises (async host functions) ------------------------------------------ */

#define PROMISE_RECORDS 8192
#define PROMISE_SLOTS 16
/* One per promise made: how often its host heard that nothing awaits it. */
static atomic_int promise_cancel_calls[PROMISE_RECORDS];
static atomic_int promise_records_used;
static atomic_llong promises_made, promises_completed, promises_cancelled, promise_completions[4];
static pthread_mutex_t promise_lock = PTHREAD_MUTEX_INITIALIZER;
static pyb_promise promise_slots[PROMISE_SLOTS];

static void on_promise_cancel(pyb_promise promise, void *user_data) {
    atomic_int *calls = user_data;
    if (atomic_fetch_add(calls, 1) != 0) {
        fail("the cancel callback of promise %#llx ran twice", (unsigned long long)promise);
    }
    atomic_fetch_add(&promises_cancelled, 1);
}

/* `fuzz_api.later()`: makes a promise for a worker to complete (or not). */
static pyb_status later(const pyb_value *args, size_t nargs, pyb_value *result, void *data) {
    (void)args, (void)nargs, (void)data;
    int index = atomic_fetch_add(&promise_records_used, 1);
    if (index >= PROMISE_RECORDS) {
        pyb_set_error("fuzz: out of promise records");
        return PYB_E_INVALID_ARGUMENT;
    }
    pyb_object awaitable = 0;
    pyb_promise promise = 0;
    pyb_status status =
        pyb_promise_new(on_promise_cancel, &promise_cancel_calls[index], &awaitable, &promise);
    /* PYB_E_PYTHON: an interrupting shutdown's exception, as for any call that runs Python. */
    allowed("pyb_promise_new", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    if (status != PYB_OK) {
        return status;
    }
    atomic_fetch_add(&promises_made, 1);
    pthread_mutex_lock(&promise_lock);
    promise_slots[(unsigned)index % PROMISE_SLOTS] = promise;
    pthread_mutex_unlock(&promise_lock);
    result->tag = PYB_VALUE_OBJECT;
    result->data.object = awaitable;
    return PYB_OK;
}

/* Completes a promise some task awaits (or awaited): resolved with 42, or
 * rejected, from this worker, now and then from inside a sub-interpreter
 * (refused there: the promise stays pending for another worker). */
static void op_promise_complete(uint64_t *rng) {
    pthread_mutex_lock(&promise_lock);
    int slot = (int)below(rng, PROMISE_SLOTS);
    pyb_promise promise = promise_slots[slot];
    promise_slots[slot] = 0;
    pthread_mutex_unlock(&promise_lock);
    if (promise == 0) {
        return;
    }
    pyb_gil sub_scope;
    pyb_interpreter previous = current_interp;
    pyb_interpreter interp = on(F_INTERPRETERS) && below(rng, 8) == 0
                                 ? interp_at(below(rng, INTERP_SLOTS))
                                 : 0;
    int inside = interp != 0 && enter_interp(interp, &sub_scope) == PYB_OK;
    pyb_value value = {.tag = PYB_VALUE_INT, .data.int64 = 42};
    int rejecting = below(rng, 3) == 0;
    pyb_status status = rejecting ? pyb_promise_reject(promise, "fuzz rejection")
                                  : pyb_promise_resolve(promise, &value);
    if (inside) {
        allowed("pyb_promise_resolve/reject in a sub-interpreter", status, 2, PYB_E_UNSUPPORTED,
                PYB_E_SHUTTING_DOWN);
        allowed("pyb_gil_release (sub-interpreter)", pyb_gil_release(sub_scope), 1, PYB_OK);
        current_interp = previous;
        pthread_mutex_lock(&promise_lock);
        promise_slots[slot] = promise_slots[slot] == 0 ? promise : promise_slots[slot];
        pthread_mutex_unlock(&promise_lock);
        return;
    }
    allowed("pyb_promise_resolve/reject", status, 6, PYB_OK, PYB_E_CANCELLED, PYB_E_BAD_HANDLE,
            PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error("pyb_promise_resolve/reject", status);
    atomic_fetch_add(&promise_completions[status == PYB_OK            ? 0
                                          : status == PYB_E_CANCELLED ? 1
                                          : status == PYB_E_BAD_HANDLE ? 2
                                                                       : 3],
                     1);
    atomic_fetch_add(&promises_completed, 1);
}

static void op_task_cancel(uint64_t *rng) {
    pthread_mutex_lock(&task_lock);
    pyb_task task = task_slots[below(rng, TASK_SLOTS)];
    pthread_mutex_unlock(&task_lock);
    if (task == 0) {
        return;
    }
    pyb_status status = pyb_task_cancel(task);
    /* PYB_E_PYTHON: an interrupting shutdown's ShutdownInterrupt, as for any
     * call that runs Python code (the header lists it for none of them). */
    allowed("pyb_task_cancel", status, 5, PYB_OK, PYB_E_BAD_HANDLE, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error("pyb_task_cancel", status);
    atomic_fetch_add(&cancels, 1);
}

/* ---- fork() -------------------------------------------------------------------- */

#define CHILD_CALL_MS 500
#define CHILD_WAIT_MS 1000 /* the timeout the child passes, should a call wait after all */
#define CHILD_DEADLINE_MS 8000 /* below HANG_MS, so a hung child's stack is printed before the watchdog ends the run */

/* Calls that failed in this fork() child: each is printed, the child goes on
 * (to show them all) and exits with status 3. */
static int child_failures;

/* In a fork() child: no stdio (its locks may belong to threads that are gone). */
static void child_failed(const char *what, pyb_status got, const char *want, long long took) {
    char text[512];
    int length = snprintf(text, sizeof text,
                          "fuzz_api: FAILED: in a fork() child, %s returned %s after %lld ms, "
                          "expected %s within %d ms [replay: PYB_FUZZ_SKIP=%s fuzz_api %llu %d "
                          "%d %d]\n",
                          what, pyb_status_name(got), took, want, CHILD_CALL_MS, skip_list, seed,
                          interrupt, thread_count, ops_per_thread);
    if (write(STDERR_FILENO, text, (size_t)length) < 0) {
        _exit(4);
    }
    child_failures++;
}

/* Ends a list of other outcomes for child_expect (PYB_OK is 0; no status is positive). */
#define CHILD_END 1

/* The child's call `what` returned `got` after starting at `start`: it must be
 * PYB_E_FORKED (or one of `others`, ended by CHILD_END), at once. */
static void child_expect(const char *what, pyb_status got, long long start,
                         const pyb_status *others) {
    long long took = now_ms() - start;
    int fine = got == PYB_E_FORKED;
    for (; others != NULL && *others != CHILD_END && !fine; others++) {
        fine = got == *others;
    }
    if (!fine || took > CHILD_CALL_MS) {
        child_failed(what, got, "PYB_E_FORKED", took);
    }
}

#define CHILD_CALL(call, others)                                                               \
    do {                                                                                       \
        long long start_ = now_ms();                                                           \
        pyb_status status_ = (call);                                                           \
        child_expect(#call, status_, start_, others);                                          \
    } while (0)

static void child_body(pyb_gil forking_scope, pyb_interpreter interp, pyb_pool pool,
                       struct held handle, struct view_slot view, pyb_task task) {
    int state = pyb_engine_state();
    if (state == PYB_STATE_UNINITIALIZED) {
        _exit(0); /* forked between a shutdown and the next start: an ordinary process */
    }
    if (state != PYB_STATE_FORKED) {
        child_failed("pyb_engine_state", state, "PYB_STATE_FORKED", 0);
        _exit(3);
    }
    /* Releases never block: they may be queued (or refused) as in the parent. */
    static const pyb_status release_outcomes[] = {PYB_OK, PYB_E_BAD_HANDLE, CHILD_END};
    static const pyb_status return_outcomes[] = {PYB_OK, PYB_E_INVALID_ARGUMENT, PYB_E_BAD_HANDLE,
                                                 CHILD_END};
    if (forking_scope != 0) {
        /* The forking thread's own scope goes on working until it closes it. */
        pyb_gil inner;
        static const pyb_status ok[] = {PYB_OK, CHILD_END};
        long long start = now_ms();
        pyb_status status = pyb_gil_acquire(&inner);
        if (status != PYB_OK) {
            child_failed("pyb_gil_acquire inside the forking thread's scope", status, "PYB_OK",
                         now_ms() - start);
        }
        CHILD_CALL(pyb_run("x = [i for i in range(10)]", "<fork child>", 0), ok);
        CHILD_CALL(pyb_gil_release(inner), ok);
        CHILD_CALL(pyb_gil_release(forking_scope), ok);
    }
    pyb_gil scope;
    pyb_interpreter made;
    pyb_object object;
    pyb_task new_task;
    pyb_interpreter_config config;
    pyb_interpreter_config_default(&config);
    config.flags = PYB_INTERPRETER_SHARED_GIL;
    CHILD_CALL(pyb_gil_acquire(&scope), NULL);
    CHILD_CALL(pyb_run("x = 1", "<fork child>", 0), NULL);
    CHILD_CALL(pyb_interpreter_new(&config, &made), NULL);
    CHILD_CALL(pyb_buffer_from_host(view.view.data, 0, NULL, 1, 0, NULL, NULL, &object), NULL);
    CHILD_CALL(pyb_host_object_new(NULL, NULL, &object), NULL);
    /* The interpreter or pool may have been destroyed already (in the parent). */
    static const pyb_status stale[] = {PYB_E_BAD_HANDLE, CHILD_END};
    if (interp != 0) {
        CHILD_CALL(pyb_interpreter_enter(interp, &scope), stale);
        CHILD_CALL(pyb_interpreter_destroy(interp, CHILD_WAIT_MS), stale);
    }
    if (pool != 0) {
        /* A borrow only takes a name off a list; entering it is what is refused. */
        static const pyb_status borrow_outcomes[] = {PYB_OK, PYB_E_TIMEOUT, PYB_E_BAD_HANDLE,
                                                     PYB_E_SHUTTING_DOWN, CHILD_END};
        pyb_interpreter borrowed = 0;
        CHILD_CALL(pyb_pool_borrow(pool, 0, &borrowed), borrow_outcomes);
        if (borrowed != 0) {
            CHILD_CALL(pyb_interpreter_enter(borrowed, &scope), NULL);
            CHILD_CALL(pyb_pool_return(pool, borrowed), return_outcomes);
        }
        CHILD_CALL(pyb_pool_destroy(pool, CHILD_WAIT_MS), stale);
    }
    if (handle.handle != 0) {
        size_t length;
        CHILD_CALL(pyb_len(handle.handle, &length), NULL);
        CHILD_CALL(pyb_task_submit(handle.handle, on_done, &task_records[0], &new_task), NULL);
        CHILD_CALL(pyb_object_release(handle.handle), release_outcomes);
    }
    if (view.view.owner != 0) {
        CHILD_CALL(pyb_buffer_release(&view.view), release_outcomes);
    }
    if (task != 0) {
        CHILD_CALL(pyb_task_cancel(task), NULL);
    }
    CHILD_CALL(pyb_engine_shutdown(CHILD_WAIT_MS, PYB_SHUTDOWN_INTERRUPT), NULL);
    CHILD_CALL(pyb_engine_initialize(NULL), NULL);
    if (pyb_engine_state() != PYB_STATE_FORKED) {
        child_failed("pyb_engine_state at the end", pyb_engine_state(), "PYB_STATE_FORKED", 0);
    }
    _exit(child_failures > 0 ? 3 : 0);
}

static void op_fork(uint64_t *rng) {
    /* What the child tries: things other threads hold and use right now. */
    pyb_interpreter interp = interp_at(below(rng, INTERP_SLOTS));
    pyb_pool pool = pool_at(below(rng, POOL_SLOTS)).pool;
    pthread_mutex_lock(&held_lock);
    struct held handle = held_slots[below(rng, HANDLE_SLOTS)];
    pthread_mutex_unlock(&held_lock);
    pthread_mutex_lock(&view_lock);
    struct view_slot view = view_slots[below(rng, VIEW_SLOTS)];
    pthread_mutex_unlock(&view_lock);
    pthread_mutex_lock(&task_lock);
    pyb_task task = task_slots[below(rng, TASK_SLOTS)];
    pthread_mutex_unlock(&task_lock);
    /* The child runs Python in the forking thread's scope only where no
     * sub-interpreter can be alive: pybridge runs CPython's fork protocol
     * only then (README, "Known limits"; tests/fork.rs covers the scope
     * under GIL contention). */
    pyb_gil scope = 0;
    int scope_allowed = !on(F_INTERPRETERS) && !on(F_POOLS);
    if (scope_allowed && below(rng, 4) == 0 && pyb_gil_acquire(&scope) != PYB_OK) {
        scope = 0;
    }
    pid_t child = fork();
    if (child < 0) {
        fail("fork");
    }
    if (child == 0) {
        child_body(scope, interp, pool, handle, view, task);
    }
    if (scope != 0) {
        allowed("pyb_gil_release (forking scope)", pyb_gil_release(scope), 1, PYB_OK);
    }
    long long start = now_ms();
    int status = 0;
    while (waitpid(child, &status, WNOHANG) == 0) {
        if (now_ms() - start > CHILD_DEADLINE_MS) {
            /* Where it is stuck, for the report (gdb is on the test machines). */
            char command[160];
            snprintf(command, sizeof command,
                     "gdb -p %d -batch -ex 'thread apply all bt 25' 2>/dev/null | grep '^#' >&2",
                     (int)child);
            if (system(command) != 0) {
                fprintf(stderr, "fuzz_api: no stack of the hung child (gdb failed)\n");
            }
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            fail("a fork() child was still running after %d ms", CHILD_DEADLINE_MS);
        }
        sleep_us(1000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail("a fork() child ended with %s %d", WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    atomic_fetch_add(&forks, 1);
}

/* ---- Workers, controller, main --------------------------------------------------- */

/* The thread's current interpreter for a handle, buffer or host memory op:
 * none (main), a main scope, or a sub-interpreter scope. */
static void in_some_interpreter(uint64_t *rng, void (*op)(uint64_t *)) {
    int where = below(rng, 3);
    pyb_gil scope;
    pyb_interpreter previous = current_interp;
    pyb_status status = PYB_OK;
    if (where == 1) {
        status = pyb_gil_acquire(&scope);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
    } else if (where == 2) {
        pyb_interpreter interp = on(F_INTERPRETERS) ? interp_at(below(rng, INTERP_SLOTS)) : 0;
        where = interp != 0 ? 2 : 0;
        if (interp != 0) {
            status = enter_interp(interp, &scope);
        }
    }
    if (status != PYB_OK) {
        return;
    }
    op(rng);
    if (where != 0) {
        allowed("pyb_gil_release", pyb_gil_release(scope), 1, PYB_OK);
        current_interp = previous;
    }
}

static void op_main_scopes(uint64_t *rng) {
    pyb_gil tokens[3];
    int depth = 1 + below(rng, 3), opened = 0;
    for (; opened < depth; opened++) {
        pyb_status status = pyb_gil_acquire(&tokens[opened]);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
        if (status != PYB_OK) {
            break;
        }
    }
    if (opened > 0) {
        run_code("pyb_run in a main scope", "x = sum(range(500))");
    }
    while (opened-- > 0) {
        allowed("pyb_gil_release", pyb_gil_release(tokens[opened]), 1, PYB_OK);
    }
}

enum op {
    OP_MAIN,
    OP_INTERPRETER,
    OP_EXIT,
    OP_POOL,
    OP_HANDLES,
    OP_BUFFERS,
    OP_HOST_MEMORY,
    OP_TASK_SUBMIT,
    OP_TASK_CANCEL,
    OP_FORK,
    OP_PROMISE,
    OP_KINDS
};
static const char *const op_names[OP_KINDS] = {
    "main scopes", "interpreter", "thread exit", "pool", "handles", "buffers", "host memory",
    "task submit", "task cancel", "fork", "promise complete"};
/* Out of 21. */
static const int op_weights[OP_KINDS] = {2, 4, 1, 3, 2, 2, 1, 2, 2, 1, 1};
static const enum family op_families[OP_KINDS] = {
    F_COUNT, F_INTERPRETERS, F_EXITS, F_POOLS, F_HANDLES, F_BUFFERS, F_HOST_MEMORY, F_TASKS,
    F_TASKS, F_FORK, F_PROMISES};

static enum op pick_op(uint64_t *rng) {
    int roll = below(rng, 21);
    for (int op = 0; op < OP_KINDS; op++) {
        if (roll < op_weights[op]) {
            return op_families[op] == F_COUNT || on(op_families[op]) ? (enum op)op : OP_MAIN;
        }
        roll -= op_weights[op];
    }
    return OP_MAIN;
}

static void *worker(void *arg) {
    int index = (int)(intptr_t)arg;
    worker_index = index;
    uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)index + 1;
    for (int op = 0; op < ops_per_thread || !atomic_load(&controller_done); op++) {
        enum op choice = pick_op(&rng);
        track(index, op_names[choice]);
        switch (choice) {
        case OP_MAIN: op_main_scopes(&rng); break;
        case OP_INTERPRETER: op_interpreter(&rng); break;
        case OP_EXIT: op_thread_exit(&rng); break;
        case OP_POOL: op_pool(&rng); break;
        case OP_HANDLES: in_some_interpreter(&rng, op_handles); break;
        case OP_BUFFERS: in_some_interpreter(&rng, op_buffers); break;
        case OP_HOST_MEMORY: in_some_interpreter(&rng, op_host_memory); break;
        case OP_TASK_SUBMIT: op_task_submit(&rng); break;
        case OP_TASK_CANCEL: op_task_cancel(&rng); break;
        case OP_PROMISE: op_promise_complete(&rng); break;
        case OP_FORK:
            /* A fork costs a few ms: one in ten. */
            if (below(&rng, 10) == 0) {
                op_fork(&rng);
            }
            break;
        case OP_KINDS: break;
        }
        if (current_interp != 0) {
            fail("operation '%s' left the thread's current interpreter at %llu",
                 op_names[choice], (unsigned long long)current_interp);
        }
        atomic_fetch_add(&ops_done, 1);
        if (!engine_running()) {
            sleep_us(1000); /* calls fail fast now: leave the cores to the restart */
        }
    }
    atomic_store(&progress_ms[index], 0);
    return NULL;
}

/* Host function user_data: one per engine, freed exactly once at its shutdown. */
static atomic_int registrations, registration_frees;

static void registration_free(void *user_data) {
    (void)user_data;
    atomic_fetch_add(&registration_frees, 1);
}

static pyb_status noop(const pyb_value *args, size_t nargs, pyb_value *result, void *data) {
    (void)args, (void)nargs, (void)result, (void)data;
    return PYB_OK;
}

static void start_engine(void) {
    allowed("pyb_engine_initialize", pyb_engine_initialize(NULL), 1, PYB_OK);
    allowed("pyb_register_function",
            pyb_register_function("fuzz_api", "noop", noop, NULL, registration_free, 0), 1,
            PYB_OK);
    allowed("pyb_register_function (later)",
            pyb_register_function("fuzz_api", "later", later, NULL, NULL, 0), 1, PYB_OK);
    atomic_fetch_add(&registrations, 1);
}

static void *controller(void *arg) {
    uint64_t rng = seed ^ 0xc0ffee;
    int index = (int)(intptr_t)arg;
    for (int attempt = 0; attempt < CONTROLLER_ATTEMPTS && on(F_RESTARTS); attempt++) {
        track(index, "controller sleep");
        /* Running about half the time: most operations need a running engine. */
        sleep_us(10000 + below(&rng, 50000));
        int max_ms = below(&rng, 4) == 0 ? SHUTDOWN_LONG_MS : SHUTDOWN_SHORT_MS;
        if (!shutdown_cycle(&rng, index, max_ms, DEADLINE_SLACK_MS, start_engine)) {
            break;
        }
    }
    atomic_store(&progress_ms[index], 0);
    atomic_store(&controller_done, 1);
    return NULL;
}

/* A crash (CPython's fatal error aborts) says what each thread was doing. */
static void on_crash(int signal_number) {
    fprintf(stderr, "fuzz_api: FAILED: signal %d", signal_number);
    print_replay(stderr);
    fputc('\n', stderr);
    fflush(stderr);
    raise(signal_number); /* SA_RESETHAND: the default action now */
}

static void report_crashes(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_crash;
    action.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGABRT, &action, NULL);
    sigaction(SIGSEGV, &action, NULL);
    sigaction(SIGBUS, &action, NULL);
}

/* 3.<minor> of the running Python, from pyb_python_info's "version: 3.X.Y". */
static int running_minor(void) {
    char info[4096];
    pyb_python_info(info, sizeof info);
    const char *line = strstr(info, "version: 3.");
    if (line == NULL) {
        fail("pyb_python_info has no version line: %s", info);
    }
    return atoi(line + strlen("version: 3."));
}

/* After the final shutdown: every callback and every free exactly once. */
static void check_counts(void) {
    int used = atomic_load(&task_records_used);
    for (int i = 0; i < used && i < TASK_RECORDS; i++) {
        struct task_record *record = &task_records[i];
        int calls = atomic_load(&record->calls), submitted = atomic_load(&record->submitted);
        if (submitted == 1 && calls != 1) {
            fail("task record %d (%s) was submitted (PYB_OK) and had %d on_done calls", i,
                 coroutine_calls[record->kind], calls);
        }
        if (submitted != 1 && calls != 0) {
            fail("task record %d (%s): pyb_task_submit failed, yet on_done ran (%s)", i,
                 coroutine_calls[record->kind], pyb_status_name(atomic_load(&record->outcome)));
        }
    }
    used = atomic_load(&host_records_used);
    for (int i = 0; i < used && i < HOST_RECORDS; i++) {
        struct host_record *record = &host_records[i];
        int frees = atomic_load(&record->frees), made = atomic_load(&record->made);
        if (frees != made) {
            fail("%s %d: shared %s, freed %d times after the final shutdown",
                 record->host_object ? "host object" : "host memory", i,
                 made ? "(PYB_OK)" : "never (an error)", frees);
        }
    }
    if (atomic_load(&registration_frees) != atomic_load(&registrations)) {
        fail("%d host function registrations, %d user_data frees", atomic_load(&registrations),
             atomic_load(&registration_frees));
    }
}

int main(int argc, char **argv) {
    if (read_arguments(argc, argv,
                       "[PYB_FUZZ_SKIP=family,...] fuzz_api <seed> <interrupt 0|1> [threads] "
                       "[ops per thread]",
                       &seed, &thread_count, &ops_per_thread, MAX_THREADS) != 0) {
        return 2;
    }
    if (getenv("PYB_FUZZ_SKIP") != NULL) {
        skip_list = getenv("PYB_FUZZ_SKIP");
        parse_skip_list(skip_list);
    }
    long long started = now_ms();
    report_crashes();
    start_engine();
    python_minor = running_minor();
    own_gil = python_minor >= 12;
    if (interrupt && python_minor < 12) {
        /* README "Known limits": on 3.10 and 3.11 an interrupt can leave the
         * process-wide import lock held, and making a sub-interpreter then
         * waits for ever. */
        skipped[F_INTERPRETERS] = skipped[F_POOLS] = 1;
    }
    if (seed % 4 == 0) {
        /* One seed in four without sub-interpreters on every version: only
         * then do forks come from inside scopes, running CPython's fork
         * protocol (op_fork), several threads at once. */
        skipped[F_INTERPRETERS] = skipped[F_POOLS] = 1;
    }
    run_threads(thread_count, worker, controller, HANG_MS);

    long long start = now_ms();
    pyb_status status = pyb_engine_shutdown(10000, 0);
    if (status != PYB_OK) {
        fail("the final shutdown returned %s after %lld ms", pyb_status_name(status),
             now_ms() - start);
    }
    /* Everything still held belongs to a shut-down engine. */
    for (int slot = 0; slot < HANDLE_SLOTS; slot++) {
        if (held_slots[slot].handle != 0) {
            expect("pyb_object_release after the final shutdown",
                   pyb_object_release(held_slots[slot].handle), "PYB_E_BAD_HANDLE");
        }
    }
    for (int slot = 0; slot < VIEW_SLOTS; slot++) {
        if (view_slots[slot].view.owner != 0) {
            expect("pyb_buffer_release after the final shutdown",
                   pyb_buffer_release(&view_slots[slot].view), "PYB_E_BAD_HANDLE");
        }
    }
    check_counts();
    printf("fuzz_api: seed %llu interrupt %d (3.%d%s%s): %lld ops in %lld ms, %lld restarts, "
           "%lld timeouts, %lld committed, %d interrupts seen; %lld thread exits with scopes "
           "open\n",
           seed, interrupt, python_minor, *skip_list ? ", skipping " : "", skip_list,
           (long long)ops_done, now_ms() - started, (long long)cycles_done, (long long)timeouts,
           (long long)commits, atomic_load(&interrupts_seen), (long long)thread_exits_open);
    printf("  sub-interpreters: %lld made, %lld destroyed (%lld twice at once, %lld left ending "
           "at the deadline), %lld entries; %lld handles refused in another interpreter\n",
           (long long)interps_made, (long long)interps_destroyed,
           (long long)concurrent_double_destroys, (long long)interps_still_ending,
           (long long)interp_entries,
           (long long)cross_refusals);
    printf("  pools: %lld made, %lld borrows (%lld timeouts), %lld returned by another thread, "
           "%lld destroys timed out, %lld left ending\n",
           (long long)pools_made, (long long)borrows, (long long)pool_timeouts,
           (long long)returns_elsewhere, (long long)pool_destroy_timeouts,
           (long long)pools_still_ending);
    printf("  views: %lld made, %lld touched, %lld released; %d host memories/objects; %lld "
           "forks\n",
           (long long)views_made, (long long)views_touched, (long long)views_released,
           atomic_load(&host_records_used), (long long)forks);
    printf("  tasks: %lld submitted, %lld refused, %lld cancels, %lld waited for; outcomes OK "
           "%lld PYTHON %lld CANCELLED %lld SHUTTING_DOWN %lld\n",
           (long long)tasks_ok, (long long)tasks_refused, (long long)cancels,
           (long long)loop_checks, (long long)outcomes[0], (long long)outcomes[1],
           (long long)outcomes[2], (long long)outcomes[3]);
    printf("  promises: %lld made, %lld completions (OK %lld CANCELLED %lld BAD_HANDLE %lld other "
           "%lld), %lld cancel callbacks\n",
           (long long)promises_made, (long long)promises_completed,
           (long long)promise_completions[0], (long long)promise_completions[1],
           (long long)promise_completions[2], (long long)promise_completions[3],
           (long long)promises_cancelled);
    printf("fuzz_api: ok\n");
    return 0;
}
