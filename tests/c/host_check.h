/*
 * host_check.h: the failure helpers every C test host shares. Include it after
 * pybridge.h, with HOST_CHECK_PROGRAM defined to the program's name; a host
 * that has more to say on failure (the fuzzer's seed) defines
 * HOST_CHECK_CONTEXT(out) to print it.
 *
 * Failures go to stderr and end the process with _Exit(1) at once: exit()
 * from a worker thread would run atexit handlers while other threads may
 * still be inside Python.
 */
#ifndef PYBRIDGE_TESTS_HOST_CHECK_H
#define PYBRIDGE_TESTS_HOST_CHECK_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HOST_CHECK_PROGRAM
#error "define HOST_CHECK_PROGRAM before including host_check.h"
#endif

/* mingw checks formats against Microsoft's printf unless the host is built
   with -D__USE_MINGW_ANSI_STDIO=1 (as scripts/test-windows.sh does), which
   gives C99's %zu and %lld; this follows whichever printf is in use. */
#ifdef __MINGW_PRINTF_FORMAT
#define HOST_CHECK_PRINTF __MINGW_PRINTF_FORMAT
#else
#define HOST_CHECK_PRINTF printf
#endif

/* Prints "<program>: FAILED: <message>", pybridge's last error, and exits. */
static void fail(const char *format, ...)
    __attribute__((format(HOST_CHECK_PRINTF, 1, 2), noreturn, unused));
static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs(HOST_CHECK_PROGRAM ": FAILED: ", stderr);
    vfprintf(stderr, format, args);
    va_end(args);
#ifdef HOST_CHECK_CONTEXT
    HOST_CHECK_CONTEXT(stderr);
#endif
    char last[2048];
    pyb_last_error_message(last, sizeof last);
    fprintf(stderr, "\n  last error: %s\n", last);
    fflush(stdout);
    fflush(stderr);
    _Exit(1);
}

/* How many expect/check calls passed, from every thread. */
static atomic_ulong host_checks_passed;

/* Compares status names, so a wrong status prints as e.g. "PYB_E_TIMEOUT". */
static void expect(const char *what, pyb_status got, const char *want) __attribute__((unused));
static void expect(const char *what, pyb_status got, const char *want) {
    const char *name = pyb_status_name(got);
    if (strcmp(name, want) != 0) {
        fail("%s: got %s (%d), expected %s", what, name, (int)got, want);
    }
    atomic_fetch_add(&host_checks_passed, 1);
}

/* expect(what, status, "PYB_OK"). */
static void check(const char *what, pyb_status status) __attribute__((unused));
static void check(const char *what, pyb_status status) {
    expect(what, status, "PYB_OK");
}

/* The last lines of a host that passed: "<program>: <N> checks" (the
   expect/check calls) and "<program>: all checks passed", the line the
   drivers (tests/c_programs.rs, scripts/wine-run.sh) judge a run by. */
static void host_checks_done(void) __attribute__((unused));
static void host_checks_done(void) {
    printf(HOST_CHECK_PROGRAM ": %lu checks\n", (unsigned long)atomic_load(&host_checks_passed));
    printf(HOST_CHECK_PROGRAM ": all checks passed\n");
    fflush(stdout);
}

#endif
