//! Linux's `membarrier`: a fence on every running thread of the process, paid
//! by the one caller instead of by every thread on its fast path.

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for private expedited barriers; false (with a
/// warning) when the kernel cannot.
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

/// A full fence on every running thread of the process. Only after a
/// successful `register`.
pub(crate) fn fence_all_threads() {
    // SAFETY: plain syscall with integer arguments.
    let result =
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
    assert_eq!(
        result, 0,
        "membarrier failed after a successful registration"
    );
}
