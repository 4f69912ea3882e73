/*
 * settings_before_load.c: built by tests/package.rs from the unpacked package
 * only. Sets a log callback and switches GIL statistics on before any engine,
 * when the loader has no core yet and keeps both, then starts an engine on
 * the Python named on the command line and checks that the core it loaded got
 * them: the callback receives the engine's "running" record, and the GIL
 * statistics are on and count a GIL round trip.
 *
 *   settings_before_load <python>
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "pybridge.h"

static atomic_int running_records;

static void on_log(int32_t level, const char *message, void *user_data) {
    (void)user_data;
    if (level == PYB_LOG_INFO && strstr(message, "running") != NULL) {
        atomic_fetch_add(&running_records, 1);
    }
}

static int failed(const char *what, pyb_status status) {
    char message[4096];
    pyb_last_error_message(message, sizeof message);
    fprintf(stderr, "settings_before_load: %s: %s: %s\n", what, pyb_status_name(status), message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: settings_before_load <python>\n");
        return 2;
    }
    /* Checked before it is kept, as the core checks it. */
    pyb_status status = pyb_set_log_callback(on_log, NULL, 9);
    printf("settings_before_load: log level 9 before load -> %s\n", pyb_status_name(status));
    if ((status = pyb_set_log_callback(on_log, NULL, PYB_LOG_INFO)) != PYB_OK) {
        return failed("pyb_set_log_callback", status);
    }
    if ((status = pyb_gil_stats_enable(true)) != PYB_OK) {
        return failed("pyb_gil_stats_enable", status);
    }
    pyb_config config;
    if ((status = pyb_config_default(&config)) != PYB_OK) {
        return failed("pyb_config_default", status);
    }
    config.python = argv[1];
    if ((status = pyb_engine_initialize(&config)) != PYB_OK) {
        return failed("pyb_engine_initialize", status);
    }
    pyb_gil gil;
    if ((status = pyb_gil_acquire(&gil)) != PYB_OK) {
        return failed("pyb_gil_acquire", status);
    }
    if ((status = pyb_gil_release(gil)) != PYB_OK) {
        return failed("pyb_gil_release", status);
    }
    pyb_gil_stats total;
    memset(&total, 0, sizeof total);
    total.struct_size = sizeof total;
    if ((status = pyb_gil_stats_total(&total)) != PYB_OK) {
        return failed("pyb_gil_stats_total", status);
    }
    printf("settings_before_load: running records: %d\n", atomic_load(&running_records));
    printf("settings_before_load: gil stats enabled: %s, acquisitions: %s\n",
           total.enabled ? "yes" : "no", total.acquisitions >= 1 ? "counted" : "none");
    if ((status = pyb_engine_shutdown(20000, 0)) != PYB_OK) {
        return failed("pyb_engine_shutdown", status);
    }
    printf("settings_before_load: done\n");
    return 0;
}
