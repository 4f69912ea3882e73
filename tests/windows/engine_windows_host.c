/*
 * engine_windows_host: pybridge.dll's two Windows-specific engine paths, under
 * wine, on an official embeddable CPython.
 *
 * 1. Coroutines: pybridge's event loop on Windows (asyncio's default loop
 *    there, the proactor, has no add_reader: pybridge runs a selector loop
 *    woken through a loopback socket pair). THREADS host threads each submit
 *    TASKS coroutines and wait for every callback, with its exact result;
 *    cancellations each give PYB_E_CANCELLED; at the end, tasks still pending
 *    when the engine shuts down each get PYB_E_SHUTTING_DOWN exactly once.
 * 2. Thread exit: a host thread's thread-local destructor runs under the
 *    loader lock on Windows, so it must never wait for the GIL. EXITERS host
 *    threads take the GIL, run Python and exit (a quarter of them also with a
 *    state in an own-GIL sub-interpreter), while one thread imports every
 *    extension module (.pyd) of the distribution and another loads and frees
 *    a DLL with LoadLibrary while it holds the GIL (the loader lock against
 *    the GIL: a destructor that waited for the GIL would deadlock with it).
 *    Every thread state they made, main and sub-interpreter, must then be
 *    deleted, most by pybridge's reaper after their threads ended (pyb_stats),
 *    and the shutdown must end by its deadline.
 *
 * Usage: engine_windows_host.exe PYTHON_DIR EXPECTED_VERSION
 *   PYTHON_DIR: the embeddable CPython's folder (a Windows path), given to
 *   pybridge as pyb_config.python; sys.version must start with
 *   EXPECTED_VERSION (e.g. 3.13.2).
 *
 * Waits are for events (Win32 events, thread handles) under deadlines, never
 * for time. Output convention of tests/c: failures end with status 1 and
 * "engine_windows_host: FAILED: ..."; success ends with the line
 * "engine_windows_host: all checks passed" (scripts/wine-run.sh).
 */
#include <windows.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pybridge.h"

#define HOST_CHECK_PROGRAM "engine_windows_host"
#include "host_check.h"

#define THREADS 4
#define TASKS 50
#define CANCELLED_TASKS 10
#define PENDING_AT_SHUTDOWN 8
#define EXITERS 64
#define EXITER_WAVE 8
#define LOADER_ROUNDS 200
/* A scenario that passes this has hung. */
#define DEADLINE_MS 60000
#define SHUTDOWN_DEADLINE_MS 30000

static const char *python_dir;

/* ---- helpers ------------------------------------------------------------ */

static void must(pyb_status status, pyb_status expected, const char *what) {
    if (status != expected) {
        fail("%s: %s, expected %s", what, pyb_status_name(status), pyb_status_name(expected));
    }
}

static HANDLE start_thread(LPTHREAD_START_ROUTINE body, void *arg) {
    /* 4 MiB: CPython wants more than mingw's default stack for deep code. */
    HANDLE thread = CreateThread(NULL, 4u << 20, body, arg, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (thread == NULL) {
        fail("CreateThread: error %lu", (unsigned long)GetLastError());
    }
    return thread;
}

static void join_all(HANDLE *threads, int count, const char *what) {
    for (int i = 0; i < count; i++) {
        DWORD waited = WaitForSingleObject(threads[i], DEADLINE_MS);
        if (waited != WAIT_OBJECT_0) {
            fail("%s: thread %d did not end within %d ms (wait result %lu)", what, i, DEADLINE_MS,
                 (unsigned long)waited);
        }
        DWORD code = 1;
        GetExitCodeThread(threads[i], &code);
        CloseHandle(threads[i]);
        if (code != 0) {
            fail("%s: thread %d ended with %lu", what, i, (unsigned long)code);
        }
    }
}

static void run(const char *code) {
    must(pyb_run(code, "<engine_windows_host>", 0), PYB_OK, code);
}

/* `expr` (a coroutine call) evaluated in __main__: the caller owns the handle. */
static pyb_object coroutine(const char *expr) {
    pyb_value value;
    must(pyb_eval(expr, "<engine_windows_host>", 0, &value), PYB_OK, expr);
    if (value.tag != PYB_VALUE_OBJECT) {
        fail("%s: tag %u, not an object", expr, value.tag);
    }
    return value.data.object;
}

static pyb_stats stats(void) {
    pyb_stats out;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    must(pyb_stats_get(&out), PYB_OK, "pyb_stats_get");
    return out;
}

/* ---- one task's outcome ------------------------------------------------- */

typedef struct {
    HANDLE done; /* set by the callback */
    volatile LONG calls;
    pyb_status status;
    int64_t result;
} outcome;

static volatile LONG callbacks_total;

static void on_done(pyb_task task, pyb_status status, const pyb_value *result, void *user_data) {
    (void)task;
    outcome *out = user_data;
    out->status = status;
    out->result = (status == PYB_OK && result != NULL && result->tag == PYB_VALUE_INT) ? result->data.int64 : -1;
    InterlockedIncrement(&out->calls);
    InterlockedIncrement(&callbacks_total);
    SetEvent(out->done);
}

static void outcome_init(outcome *out) {
    memset(out, 0, sizeof *out);
    out->done = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (out->done == NULL) {
        fail("CreateEvent: error %lu", (unsigned long)GetLastError());
    }
}

static void outcome_wait(outcome *out, const char *what) {
    if (WaitForSingleObject(out->done, DEADLINE_MS) != WAIT_OBJECT_0) {
        fail("%s: no callback within %d ms", what, DEADLINE_MS);
    }
    if (out->calls != 1) {
        fail("%s: %ld callbacks, expected 1", what, (long)out->calls);
    }
}

static pyb_task submit(const char *expr, outcome *out) {
    pyb_object awaitable = coroutine(expr);
    pyb_task task = 0;
    must(pyb_task_submit(awaitable, on_done, out, &task), PYB_OK, "pyb_task_submit");
    must(pyb_object_release(awaitable), PYB_OK, "pyb_object_release");
    return task;
}

/* ---- 1. coroutines from several host threads ---------------------------- */

static DWORD WINAPI submitter(void *arg) {
    int index = (int)(intptr_t)arg;
    static outcome outcomes[THREADS][TASKS];
    for (int i = 0; i < TASKS; i++) {
        outcome *out = &outcomes[index][i];
        outcome_init(out);
        char expr[64];
        snprintf(expr, sizeof expr, "add(%d, %d)", index * 1000, i);
        submit(expr, out);
    }
    for (int i = 0; i < TASKS; i++) {
        outcome *out = &outcomes[index][i];
        outcome_wait(out, "a submitted task");
        must(out->status, PYB_OK, "a task's status");
        if (out->result != index * 1000 + i) {
            fail("task %d of thread %d: result %lld, expected %d", i, index, (long long)out->result,
                 index * 1000 + i);
        }
        CloseHandle(out->done);
    }
    return 0;
}

static DWORD WINAPI canceller(void *arg) {
    (void)arg;
    static outcome outcomes[CANCELLED_TASKS];
    for (int i = 0; i < CANCELLED_TASKS; i++) {
        outcome_init(&outcomes[i]);
        pyb_task task = submit("forever()", &outcomes[i]);
        must(pyb_task_cancel(task), PYB_OK, "pyb_task_cancel");
    }
    for (int i = 0; i < CANCELLED_TASKS; i++) {
        outcome_wait(&outcomes[i], "a cancelled task");
        must(outcomes[i].status, PYB_E_CANCELLED, "a cancelled task's status");
        CloseHandle(outcomes[i].done);
    }
    return 0;
}

static void coroutines(void) {
    HANDLE threads[THREADS + 1];
    for (int i = 0; i < THREADS; i++) {
        threads[i] = start_thread(submitter, (void *)(intptr_t)i);
    }
    threads[THREADS] = start_thread(canceller, NULL);
    join_all(threads, THREADS + 1, "coroutines");
    LONG expected = THREADS * TASKS + CANCELLED_TASKS;
    if (callbacks_total != expected) {
        fail("%ld callbacks, expected %ld", (long)callbacks_total, (long)expected);
    }
    printf("coroutines: %d threads x %d tasks with exact results, %d cancelled: ok\n", THREADS, TASKS,
           CANCELLED_TASKS);
}

/* ---- 2. host threads that exit, against imports and the loader lock ----- */

/* A sub-interpreter (own GIL) some exiting threads also have a state in. */
static pyb_interpreter sub;

static DWORD WINAPI exiter(void *arg) {
    int index = (int)(intptr_t)arg;
    pyb_gil gil;
    if (index % 4 == 1) {
        must(pyb_interpreter_enter(sub, &gil), PYB_OK, "pyb_interpreter_enter (exiter)");
        run("sub_entries = globals().get('sub_entries', 0) + 1");
        must(pyb_gil_release(gil), PYB_OK, "pyb_gil_release (sub-interpreter)");
    }
    must(pyb_gil_acquire(&gil), PYB_OK, "pyb_gil_acquire (exiter)");
    run("exits += 1");
    must(pyb_gil_release(gil), PYB_OK, "pyb_gil_release (exiter)");
    if (index % 16 == 15) {
        /* A host bug: exits with the GIL held. Its exit frees its state
           itself, waiting for nothing. */
        must(pyb_gil_acquire(&gil), PYB_OK, "pyb_gil_acquire (exits holding)");
        run("exits_holding += 1");
    }
    return 0;
}

static volatile LONG helpers_stop;

/* Imports every extension module of the distribution (each a LoadLibrary
   of a .pyd, and of its DLLs), one GIL scope each, until told to stop. */
static DWORD WINAPI importer(void *arg) {
    (void)arg;
    run("import sys, glob, os\n"
        "pyds = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(sys.prefix, '*.pyd')))\n"
        "imported = []\n");
    pyb_value count;
    must(pyb_eval("len(pyds)", NULL, 0, &count), PYB_OK, "len(pyds)");
    if (count.tag != PYB_VALUE_INT || count.data.int64 < 10) {
        fail("only %lld extension modules found in sys.prefix", (long long)count.data.int64);
    }
    for (int64_t i = 0; i < count.data.int64; i++) {
        char code[160];
        snprintf(code, sizeof code,
                 "name = pyds[%lld]\n"
                 "if name != 'winsound':\n"
                 "    __import__(name); imported.append(name)\n",
                 (long long)i);
        run(code);
    }
    pyb_value done;
    must(pyb_eval("len(imported)", NULL, 0, &done), PYB_OK, "len(imported)");
    printf("thread exit: imported %lld extension modules meanwhile\n", (long long)done.data.int64);
    return 0;
}

/* Loads and frees a DLL while it holds the GIL: the loader lock taken by a
   GIL holder, what an extension's init or a host function may do. */
static DWORD WINAPI loader(void *arg) {
    (void)arg;
    wchar_t path[MAX_PATH];
    if (MultiByteToWideChar(CP_UTF8, 0, python_dir, -1, path, MAX_PATH - 32) == 0) {
        fail("python dir too long");
    }
    wcscat(path, L"\\sqlite3.dll");
    int rounds = 0;
    while (rounds < LOADER_ROUNDS || !helpers_stop) {
        pyb_gil gil;
        must(pyb_gil_acquire(&gil), PYB_OK, "pyb_gil_acquire (loader)");
        HMODULE module = LoadLibraryW(path);
        if (module == NULL) {
            fail("LoadLibrary(sqlite3.dll): error %lu", (unsigned long)GetLastError());
        }
        FreeLibrary(module);
        must(pyb_gil_release(gil), PYB_OK, "pyb_gil_release (loader)");
        rounds++;
    }
    printf("thread exit: %d DLL loads under the GIL meanwhile\n", rounds);
    return 0;
}

static void thread_exits(void) {
    run("exits = 0\nexits_holding = 0\n");
    must(pyb_interpreter_new(NULL, &sub), PYB_OK, "pyb_interpreter_new");
    pyb_stats before = stats();
    HANDLE helpers[2] = {start_thread(importer, NULL), start_thread(loader, NULL)};
    for (int wave = 0; wave < EXITERS / EXITER_WAVE; wave++) {
        HANDLE threads[EXITER_WAVE];
        for (int i = 0; i < EXITER_WAVE; i++) {
            threads[i] = start_thread(exiter, (void *)(intptr_t)(wave * EXITER_WAVE + i));
        }
        join_all(threads, EXITER_WAVE, "exiting threads");
    }
    InterlockedExchange(&helpers_stop, 1);
    join_all(helpers, 2, "importer and loader");

    pyb_value value;
    must(pyb_eval("exits * 1000 + exits_holding", NULL, 0, &value), PYB_OK, "exit counts");
    if (value.tag != PYB_VALUE_INT || value.data.int64 != EXITERS * 1000 + EXITERS / 16) {
        fail("exits * 1000 + exits_holding = %lld, expected %d", (long long)value.data.int64,
             EXITERS * 1000 + EXITERS / 16);
    }

    /* Every state of a thread that exited is freed, some by the reaper after
       its thread ended: wait for the count (the event), under a deadline.
       The exiters and the two helpers made EXITERS + 2 main states and
       EXITERS / 4 states in the sub-interpreter. */
    const uint64_t made = EXITERS + 2 + EXITERS / 4;
    DWORD started = GetTickCount();
    pyb_stats now = stats();
    while (now.thread_states_created - before.thread_states_created != made ||
           now.thread_states_deleted - before.thread_states_deleted != made) {
        if (GetTickCount() - started > DEADLINE_MS) {
            fail("%llu thread states created, %llu deleted: expected %llu and %llu",
                 (unsigned long long)(now.thread_states_created - before.thread_states_created),
                 (unsigned long long)(now.thread_states_deleted - before.thread_states_deleted),
                 (unsigned long long)made, (unsigned long long)made);
        }
        SwitchToThread();
        now = stats();
    }
    printf("thread exit: %d threads exited (%d holding the GIL, %d with a sub-interpreter state); %llu states "
           "created and deleted\n",
           EXITERS, EXITERS / 16, EXITERS / 4, (unsigned long long)made);
    must(pyb_interpreter_destroy(sub, 30000), PYB_OK, "pyb_interpreter_destroy");
}

/* ---- 3. the engine's end with tasks pending ----------------------------- */

static outcome pending[PENDING_AT_SHUTDOWN];

static DWORD WINAPI pending_submitter(void *arg) {
    int index = (int)(intptr_t)arg;
    submit("forever()", &pending[index]);
    return 0;
}

static void shutdown_with_pending_tasks(void) {
    LONG before = callbacks_total;
    HANDLE threads[PENDING_AT_SHUTDOWN];
    for (int i = 0; i < PENDING_AT_SHUTDOWN; i++) {
        outcome_init(&pending[i]);
        threads[i] = start_thread(pending_submitter, (void *)(intptr_t)i);
    }
    join_all(threads, PENDING_AT_SHUTDOWN, "pending submitters");
    for (int i = 0; i < PENDING_AT_SHUTDOWN; i++) {
        if (pending[i].calls != 0) {
            fail("a task that never ends was called back before the shutdown");
        }
    }
    DWORD started = GetTickCount();
    must(pyb_engine_shutdown(SHUTDOWN_DEADLINE_MS, 0), PYB_OK, "pyb_engine_shutdown");
    DWORD took = GetTickCount() - started;
    if (took > SHUTDOWN_DEADLINE_MS) {
        fail("the shutdown took %lu ms, past its deadline", (unsigned long)took);
    }
    for (int i = 0; i < PENDING_AT_SHUTDOWN; i++) {
        outcome_wait(&pending[i], "a task pending at shutdown");
        must(pending[i].status, PYB_E_SHUTTING_DOWN, "a task pending at shutdown");
        CloseHandle(pending[i].done);
    }
    if (callbacks_total - before != PENDING_AT_SHUTDOWN) {
        fail("%ld callbacks at shutdown, expected %d", (long)(callbacks_total - before), PENDING_AT_SHUTDOWN);
    }
    must(pyb_engine_state(), PYB_STATE_UNINITIALIZED, "the state after the shutdown");
    printf("shutdown: %d pending tasks each called back once with PYB_E_SHUTTING_DOWN, in %lu ms\n",
           PENDING_AT_SHUTDOWN, (unsigned long)took);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fail("usage: engine_windows_host.exe PYTHON_DIR EXPECTED_VERSION");
    }
    python_dir = argv[1];
    pyb_config config;
    must(pyb_config_default(&config), PYB_OK, "pyb_config_default");
    config.python = python_dir;
    must(pyb_engine_initialize(&config), PYB_OK, "pyb_engine_initialize");

    char expected[64];
    snprintf(expected, sizeof expected, "sys.version.startswith('%s ')", argv[2]);
    run("import sys, asyncio");
    pyb_value same;
    must(pyb_eval(expected, NULL, 0, &same), PYB_OK, expected);
    if (same.tag != PYB_VALUE_BOOL || !same.data.boolean) {
        fail("the engine does not run CPython %s", argv[2]);
    }
    run("async def add(a, b):\n"
        "    await asyncio.sleep(0)\n"
        "    return a + b\n"
        "async def forever():\n"
        "    await asyncio.get_running_loop().create_future()\n");

    coroutines();
    thread_exits();
    shutdown_with_pending_tasks();
    printf(HOST_CHECK_PROGRAM ": all checks passed\n");
    return 0;
}
