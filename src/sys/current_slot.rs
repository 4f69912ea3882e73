//! One pointer per thread in initial-exec TLS, kept in C (`current_slot.c`):
//! a Rust `thread_local!` in a cdylib costs a `__tls_get_addr` call, 30-50% of
//! a nested GIL acquire (docs/CPYTHON-NOTES.md).

use std::ffi::c_void;

unsafe extern "C" {
    fn pyb_current_slot_get() -> *const c_void;
    fn pyb_current_slot_set(slot: *const c_void);
}

/// The calling thread's pointer (NULL until set).
#[inline(always)]
pub(crate) fn get() -> *const c_void {
    // SAFETY: reads the calling thread's own thread-local pointer.
    unsafe { pyb_current_slot_get() }
}

/// Sets the calling thread's pointer.
#[inline(always)]
pub(crate) fn set(slot: *const c_void) {
    // SAFETY: writes the calling thread's own thread-local pointer.
    unsafe { pyb_current_slot_set(slot) }
}
