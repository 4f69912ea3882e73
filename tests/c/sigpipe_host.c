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

/* `host.later()`: a promise, whose id the main thread completes. */
static pyb_promise made;

static pyb_status later(const pyb_value *args, size_t nargs, pyb_value *result, void *data) {
    (void)args, (void)nargs, (void)data;
    pyb_object awaitable = 0;
    pyb_status status = pyb_promise_new(NULL, NULL, &awaitable, &made);
    if (status == PYB_OK) {
        result->tag = PYB_VALUE_OBJECT;
        result->data.object = awaitable;
    }
    return status;
}

/* With SIGPIPE's default action: a promise completed while the awaiting
 * loop's wake-up socket has lost its reader (as while asyncio's loop.close()
 * runs) must not kill the host: the completion's write is EPIPE, which asyncio
 * ignores. The test swaps in a broken wake-up socket, so nothing is timed. */
static int promise_mode(void) {
    pyb_status status = pyb_engine_initialize(NULL);
    if (status == PYB_OK) {
        status = pyb_register_function("host", "later", later, NULL, NULL, 0);
    }
    if (status == PYB_OK) {
        status = pyb_run(
            "import asyncio, socket, threading, host\n"
            "awaiting = threading.Event()\n"
            "outcome = []\n"
            "async def main():\n"
            "    global loop\n"
            "    loop = asyncio.get_running_loop()\n"
            "    promise = host.later()\n"
            "    loop.call_soon(awaiting.set)\n"
            "    outcome.append(await promise)\n"
            "thread = threading.Thread(target=lambda: asyncio.run(main()))\n"
            "thread.start()\n"
            "awaiting.wait()\n"
            "reader, broken = socket.socketpair()\n"
            "reader.close()\n"
            "kept, loop._csock = loop._csock, broken\n",
            "<sigpipe>", 0);
    }
    if (status != PYB_OK) {
        fprintf(stderr, "setup: %s\n", pyb_status_name(status));
        return 1;
    }
    printf("sigpipe_host: completing a promise through a broken wake-up socket\n");
    fflush(stdout);
    pyb_value value = {.tag = PYB_VALUE_INT, .data.int64 = 42};
    status = pyb_promise_resolve(made, &value);
    if (status != PYB_OK) {
        fprintf(stderr, "resolve: %s\n", pyb_status_name(status));
        return 1;
    }
    /* The loop did not wake: give it its socket back and wake it. */
    status = pyb_run("loop._csock = kept\nbroken.close()\nloop.call_soon_threadsafe(lambda: None)\n"
                     "thread.join()\nassert outcome == [42], outcome\n",
                     "<sigpipe>", 0);
    if (status != PYB_OK) {
        fprintf(stderr, "the awaiter: %s\n", pyb_status_name(status));
        return 1;
    }
    status = pyb_engine_shutdown(10000, 0);
    if (status != PYB_OK) {
        fprintf(stderr, "shutdown: %s\n", pyb_status_name(status));
        return 1;
    }
    printf("sigpipe_host: the promise's completion survived EPIPE and reached its awaiter\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: sigpipe_host ignore|default|promise\n");
        return 2;
    }
    if (strcmp(argv[1], "promise") == 0) {
        return promise_mode();
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
