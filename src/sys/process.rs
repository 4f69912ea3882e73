//! Process-wide settings: the fork() hook and signal dispositions.

/// Runs `prepare` on the forking thread before every `fork()`, then `parent`
/// in the parent and `child` in the child (on its only thread). Err carries
/// `pthread_atfork`'s error number.
pub(crate) fn on_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> Result<(), i32> {
    // SAFETY: registers plain `extern "C"` functions; no other arguments.
    match unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) } {
        0 => Ok(()),
        error => Err(error),
    }
}

/// Ignores SIGPIPE for the whole process, as the `python` program does.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: sets a disposition; no handler of ours runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
