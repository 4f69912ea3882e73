/*
 * fuzz_util.h: what the seeded fuzzers (fuzz_host.c, fuzz_api.c) share: a
 * seeded random stream, a clock, status checks against the header's list,
 * and each thread's current operation with a watchdog that fails a thread
 * stuck in one. Include it after host_check.h.
 */
#ifndef PYBRIDGE_TESTS_FUZZ_UTIL_H
#define PYBRIDGE_TESTS_FUZZ_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef PYBRIDGE_TESTS_HOST_CHECK_H
#error "include host_check.h before fuzz_util.h"
#endif

/* Threads the watchdog follows (workers, then the controller). */
#define FUZZ_MAX_TRACKED 33

/* When each followed thread started its current operation (0: done), and its name. */
static atomic_llong progress_ms[FUZZ_MAX_TRACKED];
static const char *_Atomic current_op[FUZZ_MAX_TRACKED];

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static int below(uint64_t *state, int n) { return (int)(next_random(state) % (uint64_t)n); }

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Fails unless `status` is one of the `count` statuses that follow. */
static void allowed(const char *what, pyb_status status, int count, ...) {
    va_list args;
    va_start(args, count);
    for (int i = 0; i < count; i++) {
        if (va_arg(args, int) == status) {
            va_end(args);
            return;
        }
    }
    va_end(args);
    fail("%s returned %s, which the header does not document for it here", what,
         pyb_status_name(status));
}

static int last_error_contains(const char *text) {
    char message[4096];
    pyb_last_error_message(message, sizeof message);
    return strstr(message, text) != NULL;
}

/* Reads "<seed> <interrupt 0|1> [threads] [ops per thread]" into `seed`,
 * `interrupt` and, when given, `threads` and `ops`; returns 0, or 2 after
 * printing `usage` or what is wrong. */
static int read_arguments(int argc, char **argv, const char *usage, unsigned long long *seed,
                          int *threads, int *ops, int max_threads);

/* Marks thread `index` as starting `op` now. */
static void track(int index, const char *op) {
    atomic_store(&current_op[index], op);
    atomic_store(&progress_ms[index], now_ms());
}

/* Prints what each of threads 0..count-1 is doing, and for how long; the last
 * one is the controller. */
static void print_threads(FILE *out, int count) {
    long long now = now_ms();
    for (int i = 0; i < count; i++) {
        long long since = atomic_load(&progress_ms[i]);
        const char *op = atomic_load(&current_op[i]);
        fprintf(out, "\n  %s %d: %s", i == count - 1 ? "controller" : "worker", i,
                since == 0 ? "done" : op != NULL ? op : "starting");
        if (since != 0) {
            fprintf(out, " (for %lld ms)", now - since);
        }
    }
}

/* What the watchdog follows: threads 0..watched_threads-1, each allowed
 * watched_hang_ms in one operation. */
static int watched_threads;
static long long watched_hang_ms;

/* Prints every thread's stack to stderr before a hang is reported, so the
 * report says where each thread waits (gdb is on the test machines; where it
 * is missing or cannot attach, the report goes on without the stacks). */
static void print_own_stacks(void) {
    char command[192];
    snprintf(command, sizeof command,
             "timeout 60 gdb -p %d -batch -ex 'thread apply all bt 30' 2>/dev/null | "
             "grep -E '^(#|Thread)' >&2",
             (int)getpid());
    fflush(stderr);
    if (system(command) != 0) {
        fprintf(stderr, "fuzz: no stacks of the hung process (gdb failed)\n");
    }
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        sleep_us(100000);
        long long now = now_ms();
        for (int i = 0; i < watched_threads; i++) {
            long long last = atomic_load(&progress_ms[i]);
            if (last != 0 && now - last > watched_hang_ms) {
                print_own_stacks();
                fail("thread %d hung for %lld ms in '%s'", i, now - last,
                     atomic_load(&current_op[i]));
            }
        }
    }
    return NULL;
}

/* The engine's life, as the controller saw it. */
#define MAX_ATTEMPTS 65536
#define INTERRUPTS_KEPT 4096
static int interrupt;          /* shutdowns may use PYB_SHUTDOWN_INTERRUPT */
static atomic_int engine_epoch; /* bumped after each shutdown that stopped the engine */
static atomic_int attempts;     /* shutdown attempts started */
static _Atomic int attempt_outcome[MAX_ATTEMPTS];
enum { OUTCOME_PENDING, OUTCOME_STOPPED, OUTCOME_TIMEOUT };
/* Attempts current when a ShutdownInterrupt reached a worker. */
static atomic_int interrupt_seen_at[INTERRUPTS_KEPT];
static atomic_int interrupts_seen;
static atomic_llong cycles_done, timeouts, commits;

/* Notes that an interrupting shutdown's exception reached `what`, for
 * check_interrupts_seen. */
static void note_interrupt_seen(const char *what) {
    if (!interrupt) {
        fail("%s got a shutdown's interrupt, but no shutdown interrupts", what);
    }
    int at = atomic_fetch_add(&interrupts_seen, 1);
    if (at < INTERRUPTS_KEPT) {
        atomic_store(&interrupt_seen_at[at], atomic_load(&attempts));
    }
}

/* A PYB_E_PYTHON from code that raises nothing itself: only an interrupt may cause it. */
static void unexpected_python_error(const char *what, pyb_status status) {
    if (status != PYB_E_PYTHON) {
        return;
    }
    if (!last_error_contains("ShutdownInterrupt")) {
        fail("%s raised a Python error", what);
    }
    note_interrupt_seen(what);
}

#define ENGINE_BUSY PYB_E_NOT_INITIALIZED, PYB_E_SHUTTING_DOWN

/* Releases a handle made in engine `epoch` (read as `epoch_before` before it
 * was used): it may only work in that engine. */
static void release_handle_of(pyb_object handle, int epoch, int epoch_before) {
    pyb_status status = pyb_object_release(handle);
    allowed("pyb_object_release", status, 2, PYB_OK, PYB_E_BAD_HANDLE);
    if (status == PYB_OK && atomic_load(&engine_epoch) != epoch && epoch_before != epoch) {
        fail("a handle from engine %d was released in engine %d", epoch, epoch_before);
    }
}

/* Makes a handle to the list [1, 2, 3] in the calling thread's interpreter;
 * 0 when the engine refused. */
static pyb_object new_list_handle(void) {
    pyb_value value;
    pyb_status status = pyb_eval("[1, 2, 3]", "<fuzz>", 0, &value);
    allowed("pyb_eval", status, 4, PYB_OK, PYB_E_PYTHON, ENGINE_BUSY);
    unexpected_python_error("pyb_eval", status);
    if (status != PYB_OK) {
        return 0;
    }
    if (value.tag != PYB_VALUE_OBJECT) {
        fail("pyb_eval of a list gave tag %u", value.tag);
    }
    return value.data.object;
}

/* Sub-interpreters shared by the workers; 0 = empty slot. Stale ones
 * (destroyed by another worker, or by a shutdown) stay until a failed entry
 * forgets them. */
#define INTERP_SLOTS 4
static pthread_mutex_t interp_lock = PTHREAD_MUTEX_INITIALIZER;
static pyb_interpreter interp_slots[INTERP_SLOTS];
static atomic_llong interp_entries;

/* The interpreter the calling thread's innermost scope is in (0: main, or none). */
static _Thread_local pyb_interpreter current_interp;

static pyb_interpreter interp_at(int slot) {
    pthread_mutex_lock(&interp_lock);
    pyb_interpreter interp = interp_slots[slot];
    pthread_mutex_unlock(&interp_lock);
    return interp;
}

static void forget_interp(pyb_interpreter interp) {
    pthread_mutex_lock(&interp_lock);
    for (int slot = 0; slot < INTERP_SLOTS; slot++) {
        if (interp_slots[slot] == interp) {
            interp_slots[slot] = 0;
        }
    }
    pthread_mutex_unlock(&interp_lock);
}

/* Opens a scope in `interp` and makes it the thread's current interpreter;
 * returns the status (PYB_E_BAD_HANDLE, gone by a destroy or a restart,
 * frees its slot for a new one). */
static pyb_status enter_interp(pyb_interpreter interp, pyb_gil *token) {
    pyb_status status = pyb_interpreter_enter(interp, token);
    allowed("pyb_interpreter_enter", status, 4, PYB_OK, PYB_E_BAD_HANDLE, ENGINE_BUSY);
    if (status == PYB_E_BAD_HANDLE) {
        forget_interp(interp);
    }
    if (status == PYB_OK) {
        atomic_fetch_add(&interp_entries, 1);
        current_interp = interp;
    }
    return status;
}

/* Enters slot `first` (and slot `second` inside it, unless -1), from inside a
 * main scope in one of three, and calls `inside` in each. */
static void enter_interpreters(uint64_t *rng, int first, int second,
                               void (*inside)(uint64_t *rng, pyb_interpreter interp)) {
    pyb_gil outer = 0;
    int from_main = below(rng, 3) == 0;
    if (from_main) {
        pyb_status status = pyb_gil_acquire(&outer);
        allowed("pyb_gil_acquire", status, 3, PYB_OK, ENGINE_BUSY);
        if (status != PYB_OK) {
            return;
        }
    }
    pyb_interpreter interps[2] = {interp_at(first), second >= 0 ? interp_at(second) : 0};
    pyb_gil scopes[2];
    int opened = 0;
    for (int i = 0; i < 2 && interps[i] != 0; i++) {
        if (enter_interp(interps[i], &scopes[i]) != PYB_OK) {
            break;
        }
        opened++;
        inside(rng, interps[i]);
    }
    while (opened-- > 0) {
        allowed("pyb_gil_release (sub-interpreter)", pyb_gil_release(scopes[opened]), 1, PYB_OK);
        current_interp = opened > 0 ? interps[opened - 1] : 0;
    }
    if (from_main) {
        allowed("pyb_gil_release", pyb_gil_release(outer), 1, PYB_OK);
    }
}

static int read_arguments(int argc, char **argv, const char *usage, unsigned long long *seed,
                          int *threads, int *ops, int max_threads) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    *seed = strtoull(argv[1], NULL, 10);
    interrupt = atoi(argv[2]) != 0;
    if (argc > 3) {
        *threads = atoi(argv[3]);
    }
    if (argc > 4) {
        *ops = atoi(argv[4]);
    }
    if (*threads < 1 || *threads > max_threads || *ops < 1) {
        fprintf(stderr, "threads must be 1..%d and ops >= 1\n", max_threads);
        return 2;
    }
    return 0;
}

/* One shutdown by the controller (thread `index`) with a deadline below `max_ms`,
 * interrupting in 3 of 4 when `interrupt` is set, checked against the header
 * and its deadline + `slack_ms`; when it stopped the engine, `start_engine`
 * starts the next. Returns 0 when the attempts are used up. */
static int shutdown_cycle(uint64_t *rng, int index, int max_ms, long long slack_ms,
                          void (*start_engine)(void)) {
    uint32_t timeout = (uint32_t)below(rng, max_ms);
    uint32_t flags = interrupt && below(rng, 4) != 0 ? PYB_SHUTDOWN_INTERRUPT : 0;
    int attempt = atomic_load(&attempts);
    if (attempt >= MAX_ATTEMPTS) {
        return 0;
    }
    atomic_store(&current_op[index], "pyb_engine_shutdown");
    atomic_store(&attempts, attempt + 1);
    long long start = now_ms();
    pyb_status status = pyb_engine_shutdown(timeout, flags);
    long long took = now_ms() - start;
    allowed("pyb_engine_shutdown", status, 3, PYB_OK, PYB_E_TIMEOUT, PYB_E_SHUTDOWN_COMMITTED);
    if (took > (long long)timeout + slack_ms) {
        fail("pyb_engine_shutdown(%u) returned after %lld ms", timeout, took);
    }
    if (status == PYB_E_TIMEOUT) {
        atomic_store(&attempt_outcome[attempt], OUTCOME_TIMEOUT);
        atomic_fetch_add(&timeouts, 1);
        if (pyb_engine_state() != PYB_STATE_RUNNING) {
            fail("the engine is not RUNNING after PYB_E_TIMEOUT");
        }
        return 1;
    }
    if (status == PYB_E_SHUTDOWN_COMMITTED) {
        atomic_fetch_add(&commits, 1);
        start = now_ms();
        status = pyb_engine_shutdown(10000, 0);
        allowed("pyb_engine_shutdown after COMMITTED", status, 2, PYB_OK, PYB_E_NOT_INITIALIZED);
        if (now_ms() - start > 10000 + slack_ms) {
            fail("waiting for a committed shutdown took %lld ms", now_ms() - start);
        }
    }
    atomic_store(&attempt_outcome[attempt], OUTCOME_STOPPED);
    if (pyb_engine_state() != PYB_STATE_UNINITIALIZED) {
        fail("the engine is not UNINITIALIZED after its shutdown");
    }
    atomic_fetch_add(&engine_epoch, 1);
    atomic_fetch_add(&cycles_done, 1);
    atomic_store(&current_op[index], "pyb_engine_initialize");
    start_engine();
    return 1;
}

/* A ShutdownInterrupt may only come from an attempt that went on to stop the engine. */
static void check_interrupts_seen(void);

/* Runs `count` workers (their argument: their index) and the controller (its
 * argument: `count`), with a watchdog that fails any of them that spends
 * `hang_ms` in one operation, until they all end; then checks the interrupts. */
static void run_threads(int count, void *(*worker)(void *), void *(*controller)(void *),
                        long long hang_ms) {
    pthread_t threads[FUZZ_MAX_TRACKED], dog;
    watched_threads = count + 1;
    watched_hang_ms = hang_ms;
    pthread_create(&dog, NULL, watchdog, NULL);
    for (int i = 0; i < count; i++) {
        pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
    }
    pthread_create(&threads[count], NULL, controller, (void *)(intptr_t)count);
    for (int i = 0; i <= count; i++) {
        pthread_join(threads[i], NULL);
    }
    check_interrupts_seen();
}

static void check_interrupts_seen(void) {
    int seen = atomic_load(&interrupts_seen);
    for (int i = 0; i < seen && i < INTERRUPTS_KEPT; i++) {
        int attempt = atomic_load(&interrupt_seen_at[i]) - 1;
        if (attempt < 0 || atomic_load(&attempt_outcome[attempt]) != OUTCOME_STOPPED) {
            fail("a shutdown's interrupt reached a thread during attempt %d, which did not stop "
                 "the engine (outcome %d)",
                 attempt, attempt < 0 ? -1 : atomic_load(&attempt_outcome[attempt]));
        }
    }
}

#endif
