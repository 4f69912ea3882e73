//! A fence on every running thread of the process, paid by the one caller
//! instead of by every thread on its fast path: Linux's `membarrier`, Windows'
//! `FlushProcessWriteBuffers` (which needs no registration).

#[cfg(unix)]
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
#[cfg(unix)]
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for private expedited barriers; false (with a
/// warning) when the kernel cannot.
#[cfg(unix)]
pub(crate) fn register() -> bool {
    // SAFETY: plain syscall with integer arguments.
    let result = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
            0,
        )
    };
    if result != 0 {
        log::warn!(
            "membarrier is not available ({}); the GIL path keeps a full fence",
            std::io::Error::last_os_error()
        );
    }
    result == 0
}

/// Always available (Windows Vista and later).
#[cfg(windows)]
pub(crate) fn register() -> bool {
    true
}

/// A full fence on every running thread of the process. Only after a
/// successful `register`.
#[cfg(unix)]
pub(crate) fn fence_all_threads() {
    // SAFETY: plain syscall with integer arguments.
    let result =
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
    assert_eq!(
        result, 0,
        "membarrier failed after a successful registration"
    );
}

/// A full fence on every running thread of the process (an IPI to each
/// processor running one of its threads).
#[cfg(windows)]
pub(crate) fn fence_all_threads() {
    // SAFETY: no arguments; cannot fail.
    unsafe { windows_sys::Win32::System::Threading::FlushProcessWriteBuffers() };
}
