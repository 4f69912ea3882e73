/*
 * The calling thread's pybridge slot, in initial-exec thread-local storage.
 *
 * Rust's thread_local! in a shared library uses the general-dynamic TLS model:
 * every access calls __tls_get_addr, 30-50% of a nested GIL acquire (measured,
 * see docs/CPYTHON-NOTES.md), and stable Rust cannot choose the model. One
 * pointer in initial-exec TLS is a single %fs-relative load; glibc reserves
 * static TLS space for exactly this in libraries loaded with dlopen.
 */
#include <stddef.h>

static __thread void *current_slot __attribute__((tls_model("initial-exec")));

__attribute__((visibility("hidden"))) void *pyb_current_slot_get(void) {
    return current_slot;
}

__attribute__((visibility("hidden"))) void pyb_current_slot_set(void *slot) {
    current_slot = slot;
}
