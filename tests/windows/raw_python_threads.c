/*
 * raw_python_threads: the Windows test environment's first check, with no
 * pybridge in it. A mingw-built C host embeds the official embeddable CPython
 * (python3XY.dll) directly, and 4 Win32 threads each take the GIL with
 * PyGILState_Ensure, run a locked increment in Python and release it, CYCLES
 * times; the total must be exactly 4 x CYCLES. It proves that the toolchain,
 * the import library, the wine prefix and scripts/wine-run.sh work before any
 * pybridge DLL is involved.
 *
 * Usage: raw_python_threads.exe CYCLES EXPECTED_VERSION  (e.g. 1000 3.13.2)
 * The DLL's Py_GetVersion() must start with EXPECTED_VERSION and a space, so a
 * run cannot silently use another CPython than the one it was built for.
 *
 * No Windows CPython headers exist on this machine (the embeddable
 * distribution has none), so the few functions used are declared here; each
 * is part of CPython's stable ABI (checked against 3.12 and 3.13).
 *
 * Output: failures print "raw_python_threads: FAILED: ..." to stderr and end
 * the process with status 1; success ends with the line
 * "raw_python_threads: all checks passed", the same convention as the hosts
 * in tests/c/, which scripts/wine-run.sh looks for (a crash under wine can
 * exit with status 0).
 */
#include <windows.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM "raw_python_threads"
#define THREADS 4
/* Each thread's whole run, and the join, must end within this (a hang is a failure). */
#define JOIN_DEADLINE_MS 60000

/* The CPython API this host uses, declared by hand (stable ABI). */
typedef struct _object PyObject;
typedef struct _ts PyThreadState;
typedef enum { PyGILState_LOCKED, PyGILState_UNLOCKED } PyGILState_STATE;
#define PYAPI __declspec(dllimport)
PYAPI void Py_InitializeEx(int initsigs);
PYAPI int Py_FinalizeEx(void);
PYAPI const char *Py_GetVersion(void);
PYAPI PyThreadState *PyEval_SaveThread(void);
PYAPI void PyEval_RestoreThread(PyThreadState *state);
PYAPI PyGILState_STATE PyGILState_Ensure(void);
PYAPI void PyGILState_Release(PyGILState_STATE state);
PYAPI int PyRun_SimpleString(const char *command);
PYAPI PyObject *PyImport_AddModule(const char *name);
PYAPI PyObject *PyObject_GetAttrString(PyObject *object, const char *name);
PYAPI long long PyLong_AsLongLong(PyObject *object);
PYAPI PyObject *PyErr_Occurred(void);
PYAPI void PyErr_Print(void);
PYAPI void Py_DecRef(PyObject *object);

static void fail(const char *format, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs(PROGRAM ": FAILED: ", stderr);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    fflush(stdout);
    fflush(stderr);
    /* At once: exit() would run atexit handlers while other threads may be in Python. */
    _Exit(1);
}

static long cycles;
/* Cycles that returned from PyRun_SimpleString with 0, counted by each thread. */
static long completed[THREADS];

static DWORD WINAPI worker(LPVOID argument) {
    long index = (long)(INT_PTR)argument;
    for (long i = 0; i < cycles; i++) {
        PyGILState_STATE state = PyGILState_Ensure();
        /* The lock makes the increment atomic: the GIL may switch between bytecodes. */
        int status = PyRun_SimpleString("with lock:\n    total += 1\n");
        PyGILState_Release(state);
        if (status != 0) {
            fail("thread %ld, cycle %ld: PyRun_SimpleString returned %d", index, i, status);
        }
        completed[index]++;
    }
    return 0;
}

/* The value of __main__.<name> as an integer; the GIL must be held. */
static long long main_global(const char *name) {
    PyObject *main_module = PyImport_AddModule("__main__"); /* borrowed */
    if (main_module == NULL) {
        PyErr_Print();
        fail("PyImport_AddModule(\"__main__\") failed");
    }
    PyObject *value = PyObject_GetAttrString(main_module, name);
    if (value == NULL) {
        PyErr_Print();
        fail("__main__.%s is missing", name);
    }
    long long result = PyLong_AsLongLong(value);
    Py_DecRef(value);
    if (result == -1 && PyErr_Occurred() != NULL) {
        PyErr_Print();
        fail("__main__.%s is not an integer", name);
    }
    return result;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fail("usage: %s CYCLES EXPECTED_VERSION", argv[0]);
    }
    char *end = NULL;
    cycles = strtol(argv[1], &end, 10);
    if (*end != '\0' || cycles <= 0) {
        fail("CYCLES must be a positive integer, got \"%s\"", argv[1]);
    }
    const char *expected_version = argv[2];
    int checks = 0;

    Py_InitializeEx(0);
    const char *version = Py_GetVersion();
    size_t length = strlen(expected_version);
    if (strncmp(version, expected_version, length) != 0 || version[length] != ' ') {
        fail("the DLL is CPython %s, expected %s", version, expected_version);
    }
    checks++;
    printf("%s: CPython %.*s, %d Win32 threads x %ld cycles\n", PROGRAM, (int)length, version,
           THREADS, cycles);
    if (PyRun_SimpleString("import threading\nlock = threading.Lock()\ntotal = 0\n") != 0) {
        fail("the setup code failed");
    }
    checks++;
    /* The main thread lets the GIL go, as a host does before its threads start. */
    PyThreadState *main_state = PyEval_SaveThread();

    HANDLE threads[THREADS];
    for (long i = 0; i < THREADS; i++) {
        threads[i] = CreateThread(NULL, 0, worker, (LPVOID)(INT_PTR)i, 0, NULL);
        if (threads[i] == NULL) {
            fail("CreateThread %ld: error %lu", i, GetLastError());
        }
    }
    DWORD waited = WaitForMultipleObjects(THREADS, threads, TRUE, JOIN_DEADLINE_MS);
    if (waited != WAIT_OBJECT_0) {
        fail("the threads did not all end within %d ms (wait returned %lu)", JOIN_DEADLINE_MS,
             waited);
    }
    for (long i = 0; i < THREADS; i++) {
        DWORD code = STILL_ACTIVE;
        if (!GetExitCodeThread(threads[i], &code) || code != 0) {
            fail("thread %ld exited with %lu", i, code);
        }
        CloseHandle(threads[i]);
        if (completed[i] != cycles) {
            fail("thread %ld completed %ld cycles, expected %ld", i, completed[i], cycles);
        }
        checks++;
    }

    PyEval_RestoreThread(main_state);
    long long total = main_global("total");
    long long expected_total = (long long)THREADS * cycles;
    if (total != expected_total) {
        fail("Python counted %lld increments, expected exactly %lld", total, expected_total);
    }
    checks++;
    printf("%s: total %lld (exactly %d x %ld)\n", PROGRAM, total, THREADS, cycles);
    /* On the thread that initialized: under wine, finalizing from another
     * thread crashes 3.13.2 and hangs 3.12.9 (the problem pybridge solves). */
    int finalized = Py_FinalizeEx();
    if (finalized != 0) {
        fail("Py_FinalizeEx returned %d", finalized);
    }
    checks++;
    printf("%s: %d checks\n", PROGRAM, checks);
    printf("%s: all checks passed\n", PROGRAM);
    fflush(stdout);
    return 0;
}
