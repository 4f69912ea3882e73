//! Process-wide settings: the fork() hook and signal dispositions.

/// Runs `handler` in every `fork()` child, on its only thread. Err carries
/// `pthread_atfork`'s error number.
pub(crate) fn on_fork_in_child(handler: extern "C" fn()) -> Result<(), i32> {
    // SAFETY: registers a plain `extern "C"` function; no other arguments.
    match unsafe { libc::pthread_atfork(None, None, Some(handler)) } {
        0 => Ok(()),
        error => Err(error),
    }
}

/// Ignores SIGPIPE for the whole process, as the `python` program does.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: sets a disposition; no handler of ours runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
