/*
 * Writes to a pipe whose reader is gone, after initializing the engine with
 * or without PYB_CONFIG_IGNORE_SIGPIPE ("ignore" or "default" as argv[1]).
 * With the flag the write fails with EPIPE and the program exits 0; without
 * it SIGPIPE keeps its default action and kills the program (the test checks
 * the signal). Python code sees the same: BrokenPipeError with the flag.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pybridge.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: sigpipe_host ignore|default\n");
        return 2;
    }
    int ignore = strcmp(argv[1], "ignore") == 0;
    pyb_config config;
    pyb_config_default(&config);
    if (ignore) {
        config.flags |= PYB_CONFIG_IGNORE_SIGPIPE;
    }
    pyb_status status = pyb_engine_initialize(&config);
    if (status != PYB_OK) {
        fprintf(stderr, "initialize: %s\n", pyb_status_name(status));
        return 1;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    close(fds[0]);
    printf("sigpipe_host: writing to a closed pipe\n");
    fflush(stdout);
    ssize_t written = write(fds[1], "x", 1);
    int error = errno;
    if (written != -1 || error != EPIPE) {
        fprintf(stderr, "write gave %zd (%s), expected EPIPE\n", written, strerror(error));
        return 1;
    }
    char code[128];
    snprintf(code, sizeof code,
             "import os\ntry:\n    os.write(%d, b'x')\nexcept BrokenPipeError:\n    pass\n",
             fds[1]);
    status = pyb_run(code, "<sigpipe>", 0);
    if (status != PYB_OK) {
        fprintf(stderr, "Python's write: %s\n", pyb_status_name(status));
        return 1;
    }
    close(fds[1]);
    status = pyb_engine_shutdown(10000, 0);
    if (status != PYB_OK) {
        fprintf(stderr, "shutdown: %s\n", pyb_status_name(status));
        return 1;
    }
    printf("sigpipe_host: EPIPE, and BrokenPipeError in Python\n");
    return 0;
}
