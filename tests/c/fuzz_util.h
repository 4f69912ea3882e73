/*
 * fuzz_util.h: what the seeded fuzzers (fuzz_host.c, fuzz_api.c) share: a
 * seeded random stream, a clock, status checks against the header's list,
 * and each thread's current operation with a watchdog that fails a thread
 * stuck in one. Include it after host_check.h.
 */
#ifndef PYBRIDGE_TESTS_FUZZ_UTIL_H
#define PYBRIDGE_TESTS_FUZZ_UTIL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* Fails when one of threads 0..count-1 spent more than `hang_ms` in one
 * operation; `count` points at the number (set before the watchdog starts). */
static void *watch_for_hangs(int count, long long hang_ms) {
    for (;;) {
        sleep_us(100000);
        long long now = now_ms();
        for (int i = 0; i < count; i++) {
            long long last = atomic_load(&progress_ms[i]);
            if (last != 0 && now - last > hang_ms) {
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

/* A PYB_E_PYTHON from code that raises nothing itself: only an interrupt may cause it. */
static void unexpected_python_error(const char *what, pyb_status status) {
    if (status != PYB_E_PYTHON) {
        return;
    }
    if (!last_error_contains("ShutdownInterrupt")) {
        fail("%s raised a Python error", what);
    }
    if (!interrupt) {
        fail("%s got a ShutdownInterrupt, but no shutdown interrupts", what);
    }
    int at = atomic_fetch_add(&interrupts_seen, 1);
    if (at < INTERRUPTS_KEPT) {
        atomic_store(&interrupt_seen_at[at], atomic_load(&attempts));
    }
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
static void check_interrupts_seen(void) {
    int seen = atomic_load(&interrupts_seen);
    for (int i = 0; i < seen && i < INTERRUPTS_KEPT; i++) {
        int attempt = atomic_load(&interrupt_seen_at[i]) - 1;
        if (attempt < 0 || atomic_load(&attempt_outcome[attempt]) != OUTCOME_STOPPED) {
            fail("a ShutdownInterrupt reached a thread during attempt %d, which did not stop "
                 "the engine (outcome %d)",
                 attempt, attempt < 0 ? -1 : atomic_load(&attempt_outcome[attempt]));
        }
    }
}

#endif
