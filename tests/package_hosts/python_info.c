/*
 * python_info.c: built by tests/package.rs from the unpacked package only
 * (pkg-config --cflags --libs pybridge). Prints pyb_python_info before any
 * engine (the cores the package has), starts an engine on the Python named on
 * the command line, prints pyb_python_info again (the Python and the core the
 * loader chose) and shuts the engine down.
 *
 *   python_info <python>
 */
#include <stdio.h>

#include "pybridge.h"

static int failed(const char *what, pyb_status status) {
    char message[4096];
    pyb_last_error_message(message, sizeof message);
    fprintf(stderr, "python_info: %s: %s: %s\n", what, pyb_status_name(status), message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: python_info <python>\n");
        return 2;
    }
    char info[8192];
    pyb_python_info(info, sizeof info);
    printf("%s", info);
    pyb_config config;
    pyb_status status = pyb_config_default(&config);
    if (status != PYB_OK) {
        return failed("pyb_config_default", status);
    }
    config.python = argv[1];
    status = pyb_engine_initialize(&config);
    if (status != PYB_OK) {
        return failed("pyb_engine_initialize", status);
    }
    pyb_python_info(info, sizeof info);
    printf("%s", info);
    status = pyb_engine_shutdown(20000, 0);
    if (status != PYB_OK) {
        return failed("pyb_engine_shutdown", status);
    }
    printf("python_info: done\n");
    return 0;
}
