//! A function that runs when a thread that armed it exits, while the
//! thread's other thread-locals still live.
//!
//! Linux: a `thread_local!` whose destructor calls it. Windows: a fiber-local
//! slot's callback (`FlsAlloc`). A `thread_local!` destructor there runs in
//! the DLL's TLS callback, under the loader lock, and the exit hook takes the
//! GIL: a thread holding the GIL that then needs the loader lock (starting a
//! thread through the C runtime, loading an extension module) deadlocked with
//! it (objects_host under wine, CPython 3.12.9 and 3.13.2). Wine calls FLS
//! callbacks before it takes the loader lock for the thread's detach, and
//! before the TLS callbacks, so Rust's thread-locals are still there. Whether
//! real Windows does the same could not be checked here, so the hook does
//! not rely on it: on Windows it never waits for the GIL either
//! (`thread::EXIT_MAY_WAIT`; a reaper thread frees what it cannot).

use std::sync::OnceLock;

/// What the exiting thread runs; the first `arm` sets it for the process.
static ON_EXIT: OnceLock<fn()> = OnceLock::new();

#[cfg(unix)]
struct ExitHook;

#[cfg(unix)]
impl Drop for ExitHook {
    fn drop(&mut self) {
        if let Some(on_exit) = ON_EXIT.get() {
            on_exit();
        }
    }
}

#[cfg(unix)]
thread_local! {
    static EXIT_HOOK: ExitHook = const { ExitHook };
}

/// Makes `on_exit` run when the calling thread exits (once per thread; every
/// caller passes the same function).
#[cfg(unix)]
pub(crate) fn arm(on_exit: fn()) {
    ON_EXIT.get_or_init(|| on_exit);
    // Touching the hook registers its destructor for this thread.
    EXIT_HOOK.with(|_| {});
}

/// The process's FLS slot, allocated on first use (`FLS_OUT_OF_INDEXES`
/// when Windows has none left: then nothing runs at thread exit).
#[cfg(windows)]
static FLS_INDEX: OnceLock<u32> = OnceLock::new();

#[cfg(windows)]
unsafe extern "system" fn fls_callback(value: *const std::ffi::c_void) {
    if value.is_null() {
        return;
    }
    if let Some(on_exit) = ON_EXIT.get() {
        on_exit();
    }
}

/// Makes `on_exit` run when the calling thread exits (once per thread; every
/// caller passes the same function).
#[cfg(windows)]
pub(crate) fn arm(on_exit: fn()) {
    use windows_sys::Win32::System::Threading::{FLS_OUT_OF_INDEXES, FlsAlloc, FlsSetValue};
    ON_EXIT.get_or_init(|| on_exit);
    // SAFETY: registers a callback that lives for the process (never freed).
    let index = *FLS_INDEX.get_or_init(|| unsafe { FlsAlloc(Some(fls_callback)) });
    if index == FLS_OUT_OF_INDEXES {
        return;
    }
    // Any non-null value: the callback runs only for threads that set one.
    // SAFETY: the calling thread's own slot of a valid index.
    unsafe { FlsSetValue(index, std::ptr::NonNull::<u8>::dangling().as_ptr().cast()) };
}
