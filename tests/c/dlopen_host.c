/*
 * dlopen_host: loads libpybridge the way CoreCLR does, with dlopen(RTLD_LOCAL)
 * and no link-time dependency on it or on libpython, and imports extension
 * modules (math, _json): they need libpython's symbols in the global namespace,
 * which pybridge must arrange itself. Usage: dlopen_host <path to libpybridge.so>
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "pybridge.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: dlopen_host <libpybridge.so>\n");
        return 2;
    }
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        printf("dlopen_host: FAILED: %s\n", dlerror());
        return 1;
    }
    /* POSIX allows converting dlsym's result to a function pointer; -pedantic
     * wants it spelled through a union. */
    union {
        void *symbol;
        pyb_status (*initialize)(const pyb_config *);
        pyb_status (*run)(const char *, const char *, pyb_object);
        pyb_status (*shutdown)(uint32_t, uint32_t);
        size_t (*last_error)(char *, size_t);
    } initialize, run, shutdown, last_error;
    initialize.symbol = dlsym(library, "pyb_engine_initialize");
    run.symbol = dlsym(library, "pyb_run");
    shutdown.symbol = dlsym(library, "pyb_engine_shutdown");
    last_error.symbol = dlsym(library, "pyb_last_error_message");
    if (!initialize.symbol || !run.symbol || !shutdown.symbol || !last_error.symbol) {
        printf("dlopen_host: FAILED: missing symbols\n");
        return 1;
    }
    pyb_status status = initialize.initialize(NULL);
    if (status == PYB_OK) {
        status = run.run("import math, _json\nassert math.factorial(5) == 120\n", "dlopen.py", 0);
    }
    if (status != PYB_OK) {
        char why[2048];
        last_error.last_error(why, sizeof why);
        printf("dlopen_host: FAILED: status %d: %s\n", (int)status, why);
        return 1;
    }
    if (shutdown.shutdown(10000, 0) != PYB_OK) {
        printf("dlopen_host: FAILED: shutdown\n");
        return 1;
    }
    printf("dlopen_host: extension modules import with RTLD_LOCAL\n");
    return 0;
}
