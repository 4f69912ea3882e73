//! One pointer per thread, read on every GIL entry.
//!
//! Linux: kept in C (`current_slot.c`) in initial-exec TLS, because a Rust
//! `thread_local!` in a cdylib costs a `__tls_get_addr` call, 30-50% of a
//! nested GIL acquire (docs/CPYTHON-NOTES.md). Windows: a DLL's static TLS is
//! already one indexed load (the TLS directory), so a Rust `thread_local!`.

use std::ffi::c_void;

#[cfg(unix)]
unsafe extern "C" {
    fn pyb_current_slot_get() -> *const c_void;
    fn pyb_current_slot_set(slot: *const c_void);
}

#[cfg(windows)]
thread_local! {
    static CURRENT_SLOT: std::cell::Cell<*const c_void> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// The calling thread's pointer (NULL until set).
#[inline(always)]
pub(crate) fn get() -> *const c_void {
    #[cfg(unix)]
    // SAFETY: reads the calling thread's own thread-local pointer.
    return unsafe { pyb_current_slot_get() };
    #[cfg(windows)]
    return CURRENT_SLOT.with(|slot| slot.get());
}

/// Sets the calling thread's pointer.
#[inline(always)]
pub(crate) fn set(slot: *const c_void) {
    #[cfg(unix)]
    // SAFETY: writes the calling thread's own thread-local pointer.
    unsafe {
        pyb_current_slot_set(slot)
    };
    #[cfg(windows)]
    CURRENT_SLOT.with(|current| current.set(slot));
}
